//! The credential report (issue 12): the one stored report, the inventory it is written
//! from (users, login profiles, access keys with their last use, MFA devices of every kind,
//! read in one snapshot), and the access-key last-used columns.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use super::passwords::{PROFILE_COLUMNS, profile_row};
use super::users::user_row;
use super::{ROOT_OWNER, SqliteStore, backend};
use crate::{
    CredentialInventory, Entity, KeyLastUsed, KeySummary, PrincipalCredentials, StoreError,
    StoredReport, User,
};

pub(super) fn credential_report(store: &SqliteStore) -> Result<Option<StoredReport>, StoreError> {
    store
        .read()?
        .prepare_cached("SELECT generated, content FROM credential_report WHERE id = 1")
        .and_then(|mut stmt| {
            stmt.query_row([], |r| {
                Ok(StoredReport {
                    generated: r.get(0)?,
                    content: r.get(1)?,
                })
            })
            .optional()
        })
        .map_err(backend)
}

pub(super) fn put_credential_report(
    store: &SqliteStore,
    report: &StoredReport,
) -> Result<(), StoreError> {
    // The report is no IAM state: no authorization cache needs to hear of it.
    store.write_login_state(|tx, _| {
        tx.execute(
            "INSERT OR REPLACE INTO credential_report (id, generated, content)
             VALUES (1, ?1, ?2)",
            params![report.generated, report.content],
        )
        .map_err(backend)?;
        Ok(())
    })
}

/// Owner column value (`root` or a user id) → credentials, filled from each table.
type ByOwner = HashMap<String, PrincipalCredentials>;

fn entry<'a>(map: &'a mut ByOwner, owner: &str) -> &'a mut PrincipalCredentials {
    map.entry(owner.to_owned()).or_default()
}

pub(super) fn credential_inventory(store: &SqliteStore) -> Result<CredentialInventory, StoreError> {
    store.read_tx(|tx| {
        let account = tx
            .query_row(
                "SELECT account_id, created FROM account WHERE id = 1",
                [],
                |r| {
                    Ok(crate::Account {
                        account_id: r.get(0)?,
                        created: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(backend)?
            .ok_or(StoreError::NotFound(Entity::Account))?;
        let mut by_owner = ByOwner::new();

        // Keys in creation order (two made in one second: in insertion order), so that
        // access_key_1 is the older one.
        let mut stmt = tx
            .prepare(
                "SELECT coalesce(owner_user_id, 'root'), access_key_id, status, created,
                        last_used_at, last_used_service, last_used_region
                 FROM access_key ORDER BY created, rowid",
            )
            .map_err(backend)?;
        let keys = stmt
            .query_map([], |r| {
                let at: Option<i64> = r.get(4)?;
                let service: Option<String> = r.get(5)?;
                let region: Option<String> = r.get(6)?;
                let status: String = r.get(2)?;
                Ok((
                    r.get::<_, String>(0)?,
                    KeySummary {
                        access_key_id: r.get(1)?,
                        active: status == "Active",
                        created: r.get(3)?,
                        last_used: at.map(|at| KeyLastUsed {
                            at,
                            service: service.unwrap_or_default(),
                            region: region.unwrap_or_default(),
                        }),
                    },
                ))
            })
            .map_err(backend)?;
        for key in keys {
            let (owner, key) = key.map_err(backend)?;
            entry(&mut by_owner, &owner).keys.push(key);
        }

        // Every enabled second factor: TOTP devices (virtual and hardware) and security keys.
        let mut stmt = tx
            .prepare(
                "SELECT owner, count(*) FROM (
                     SELECT owner FROM mfa_device
                     WHERE owner IS NOT NULL AND enabled_at IS NOT NULL
                     UNION ALL SELECT owner FROM security_key)
                 GROUP BY owner",
            )
            .map_err(backend)?;
        let counts = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(backend)?;
        for count in counts {
            let (owner, n) = count.map_err(backend)?;
            entry(&mut by_owner, &owner).mfa_devices = usize::try_from(n).map_err(backend)?;
        }

        let mut stmt = tx
            .prepare(&format!(
                "SELECT {PROFILE_COLUMNS}, p.user_id FROM login_profile p
                 JOIN iam_user u ON u.user_id = p.user_id"
            ))
            .map_err(backend)?;
        let profiles = stmt
            .query_map([], |r| Ok((r.get::<_, String>(7)?, profile_row(r)?)))
            .map_err(backend)?;
        for profile in profiles {
            let (id, profile) = profile.map_err(backend)?;
            entry(&mut by_owner, &id).login_profile = Some(profile);
        }

        let mut stmt = tx
            .prepare("SELECT user_id, name, path, created FROM iam_user ORDER BY name")
            .map_err(backend)?;
        let users: Vec<User> = stmt
            .query_map([], user_row)
            .map_err(backend)?
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        let root = by_owner.remove(ROOT_OWNER).unwrap_or_default();
        let users = users
            .into_iter()
            .map(|u| {
                let credentials = by_owner.remove(&u.user_id).unwrap_or_default();
                (u, credentials)
            })
            .collect();
        Ok(CredentialInventory {
            account,
            root: PrincipalCredentials {
                login_profile: None,
                ..root
            },
            users,
        })
    })
}

pub(super) fn record_access_key_last_used(
    store: &SqliteStore,
    uses: &[(String, KeyLastUsed)],
) -> Result<(), StoreError> {
    if uses.is_empty() {
        return Ok(());
    }
    // Usage is no IAM state: the key cache (which holds no usage) and authorization
    // caches stay valid.
    store.write_login_state(|tx, _| {
        let mut stmt = tx
            .prepare_cached(
                "UPDATE access_key
                 SET last_used_at = ?2, last_used_service = ?3, last_used_region = ?4
                 WHERE access_key_id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
            )
            .map_err(backend)?;
        for (id, u) in uses {
            stmt.execute(params![id, u.at, u.service, u.region])
                .map_err(backend)?;
        }
        Ok(())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use tokengate_verifier::totp::TotpState;

    use crate::sqlite::SqliteStore;
    use crate::sqlite::fixtures::*;
    use crate::{CeremonyKind, KeyLastUsed, KeyOwner, KeyStatus, NewPassword, Store, StoredReport};

    #[test]
    fn one_report_is_kept() {
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        assert_eq!(s.credential_report().unwrap(), None);
        for generated in [10, 20] {
            s.put_credential_report(&StoredReport {
                generated,
                content: format!("report {generated}").into_bytes(),
            })
            .unwrap();
        }
        let stored = s.credential_report().unwrap().unwrap();
        assert_eq!(
            (stored.generated, stored.content),
            (20, b"report 20".to_vec())
        );
    }

    #[test]
    fn the_inventory_has_every_credential_of_every_principal() {
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        s.bootstrap(&bootstrap()).unwrap();
        for name in ["carol", "alice", "bob"] {
            s.create_user(&user(name)).unwrap();
        }
        let alice = KeyOwner::User("alice".into());
        let mut k1 = key("AKIAALICE1", alice.clone());
        k1.created = 5;
        let mut k2 = key("AKIAALICE2", alice.clone());
        k2.created = 6;
        s.create_access_key(&k1, 2).unwrap();
        s.create_access_key(&k2, 2).unwrap();
        s.set_access_key_status(&alice, "AKIAALICE2", KeyStatus::Inactive)
            .unwrap();
        s.create_login_profile(
            "bob",
            &NewPassword {
                hash: "$argon2id$…".into(),
                at: 7,
                expected: None,
            },
            true,
            None,
        )
        .unwrap();
        // A TOTP device for alice (enabled) and one unassigned; a security key for bob.
        s.create_mfa_device(&device("arn:aws:iam::000000000000:mfa/a"))
            .unwrap();
        s.create_mfa_device(&device("arn:aws:iam::000000000000:mfa/spare"))
            .unwrap();
        s.enable_mfa_device(
            "arn:aws:iam::000000000000:mfa/a",
            &alice,
            9,
            &TotpState::default(),
            8,
        )
        .unwrap();
        let bob = KeyOwner::User("bob".into());
        let serial = "arn:aws:iam::000000000000:u2f/user/bob/yubikey-X";
        s.create_challenge(
            &challenge("c1", CeremonyKind::Register, bob.clone(), serial),
            4,
        )
        .unwrap();
        s.enable_security_key("c1", 150, &security_key(serial, bob, b"cred"), 8)
            .unwrap();
        // The last-used hook: a newer use replaces an older one, never the reverse.
        let used = |at, service: &str| KeyLastUsed {
            at,
            service: service.into(),
            region: "eu-west-1".into(),
        };
        s.record_access_key_last_used(&[
            ("AKIAALICE1".into(), used(100, "sts")),
            ("AKIANOSUCHKEY".into(), used(100, "sts")),
        ])
        .unwrap();
        s.record_access_key_last_used(&[("AKIAALICE1".into(), used(50, "iam"))])
            .unwrap();

        let inventory = s.credential_inventory().unwrap();
        assert_eq!(inventory.account.created, 1);
        assert_eq!(inventory.root.keys.len(), 1);
        assert_eq!(inventory.root.keys[0].access_key_id, "AKIAROOT");
        assert!(inventory.root.login_profile.is_none());
        assert_eq!(inventory.root.mfa_devices, 0);
        let names: Vec<&str> = inventory
            .users
            .iter()
            .map(|(u, _)| u.name.as_str())
            .collect();
        assert_eq!(names, ["alice", "bob", "carol"]);
        let a = &inventory.users[0].1;
        assert_eq!(a.mfa_devices, 1);
        assert!(a.login_profile.is_none());
        assert_eq!(
            a.keys
                .iter()
                .map(|k| (k.access_key_id.as_str(), k.active))
                .collect::<Vec<_>>(),
            [("AKIAALICE1", true), ("AKIAALICE2", false)]
        );
        assert_eq!(a.keys[0].last_used, Some(used(100, "sts")));
        assert_eq!(a.keys[1].last_used, None);
        let b = &inventory.users[1].1;
        assert_eq!(b.mfa_devices, 1);
        let profile = b.login_profile.as_ref().unwrap();
        assert_eq!((profile.created, profile.reset_required), (7, true));
        assert_eq!(inventory.users[2].1, Default::default());
    }
}
