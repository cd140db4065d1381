//! U2F / FIDO2 security keys and their ceremony challenges.

use rusqlite::{Connection, OptionalExtension, params};
use tokengate_verifier::totp::{LockoutPolicy, TotpState};

use super::group_commit::{HotResult, HotWrite};
use super::mfa::mfa_devices_in_use;
use super::{SqliteStore, backend, exists_or_backend, owner_column, owner_from};
use crate::{
    CeremonyKind, Challenge, Completion, Entity, KeyOwner, KeyProtocol, KeyUse, KeyUseOutcome,
    SecurityKey, Store, StoreError,
};

/// A security-key login, in one statement pair: spend the challenge (it must still exist,
/// unexpired, for this key), then the counter compare-and-set. A lost race on either is a
/// replay; the challenge stays spent either way.
pub(super) fn key_use_cas(tx: &Connection, u: &KeyUse) -> Result<KeyUseOutcome, StoreError> {
    let spent = tx
        .prepare_cached(
            "DELETE FROM challenge
             WHERE id = ?1 AND ceremony = 'authenticate' AND serial = ?2 AND expires > ?3",
        )
        .and_then(|mut stmt| stmt.execute(params![u.challenge_id, u.serial, u.now]))
        .map_err(backend)?;
    if spent != 1 {
        return Ok(KeyUseOutcome::ChallengeSpent);
    }
    let n = tx
        .prepare_cached(
            "UPDATE security_key
             SET sign_count = ?1, last_used = ?2, failures = 0, locked_until = NULL, lockouts = 0
             WHERE serial = ?3 AND sign_count = ?4 AND possibly_cloned_at IS NULL",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                u.sign_count,
                u.now,
                u.serial,
                u.expected_sign_count
            ])
        })
        .map_err(backend)?;
    Ok(if n == 1 {
        KeyUseOutcome::Recorded
    } else {
        KeyUseOutcome::KeyChanged
    })
}

pub(super) fn key_failure(
    tx: &Connection,
    serial: &str,
    challenge_id: Option<&str>,
    policy: &LockoutPolicy,
    now: i64,
    possible_clone: bool,
) -> Result<TotpState, StoreError> {
    if let Some(id) = challenge_id {
        tx.prepare_cached("DELETE FROM challenge WHERE id = ?1 AND serial = ?2")
            .and_then(|mut stmt| stmt.execute(params![id, serial]))
            .map_err(backend)?;
    }
    let (failures, locked_until, lockouts): (i64, Option<i64>, i64) = tx
        .prepare_cached(
            "SELECT failures, locked_until, lockouts FROM security_key WHERE serial = ?1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([serial], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .map_err(backend)?
        .ok_or(StoreError::NotFound(Entity::MfaDevice))?;
    let state = lockout_state(failures, locked_until, lockouts)?.failed(policy, now);
    tx.prepare_cached(
        "UPDATE security_key SET failures = ?1, locked_until = ?2, lockouts = ?3,
             possibly_cloned_at = CASE WHEN ?4 THEN coalesce(possibly_cloned_at, ?5)
                                       ELSE possibly_cloned_at END
         WHERE serial = ?6",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            state.failures,
            state.locked_until,
            state.lockouts,
            possible_clone,
            now,
            serial
        ])
    })
    .map_err(backend)?;
    Ok(state)
}

pub(crate) fn lockout_state(
    failures: i64,
    locked_until: Option<i64>,
    lockouts: i64,
) -> Result<TotpState, StoreError> {
    Ok(TotpState {
        failures: u32::try_from(failures).map_err(backend)?,
        locked_until,
        lockouts: u32::try_from(lockouts).map_err(backend)?,
        ..TotpState::default()
    })
}

pub(crate) struct SecurityKeyRow {
    pub(crate) serial: String,
    pub(crate) owner: String,
    pub(crate) owner_name: Option<String>,
    pub(crate) name: String,
    pub(crate) protocol: String,
    pub(crate) credential_id: Vec<u8>,
    pub(crate) public_key: Vec<u8>,
    pub(crate) sign_count: i64,
    pub(crate) backup_eligible: bool,
    pub(crate) aaguid: Vec<u8>,
    pub(crate) attestation_format: String,
    pub(crate) attestation: String,
    pub(crate) user_handle: Vec<u8>,
    pub(crate) enabled_at: i64,
    pub(crate) last_used: Option<i64>,
    pub(crate) possibly_cloned_at: Option<i64>,
    pub(crate) failures: i64,
    pub(crate) locked_until: Option<i64>,
    pub(crate) lockouts: i64,
}

const SECURITY_KEY_COLUMNS: &str = "k.serial, k.owner, u.name, k.name, k.protocol,
     k.credential_id, k.public_key, k.sign_count, k.backup_eligible, k.aaguid,
     k.attestation_format, k.attestation, k.user_handle, k.enabled_at, k.last_used,
     k.possibly_cloned_at, k.failures, k.locked_until, k.lockouts
     FROM security_key k LEFT JOIN iam_user u ON u.user_id = k.owner";

fn security_key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SecurityKeyRow> {
    Ok(SecurityKeyRow {
        serial: r.get(0)?,
        owner: r.get(1)?,
        owner_name: r.get(2)?,
        name: r.get(3)?,
        protocol: r.get(4)?,
        credential_id: r.get(5)?,
        public_key: r.get(6)?,
        sign_count: r.get(7)?,
        backup_eligible: r.get(8)?,
        aaguid: r.get(9)?,
        attestation_format: r.get(10)?,
        attestation: r.get(11)?,
        user_handle: r.get(12)?,
        enabled_at: r.get(13)?,
        last_used: r.get(14)?,
        possibly_cloned_at: r.get(15)?,
        failures: r.get(16)?,
        locked_until: r.get(17)?,
        lockouts: r.get(18)?,
    })
}

pub(crate) fn row_to_security_key(row: SecurityKeyRow) -> Result<SecurityKey, StoreError> {
    let owner = owner_from(&row.owner, row.owner_name).ok_or_else(|| {
        StoreError::Backend(format!("security key owner {} does not exist", row.owner))
    })?;
    let protocol = KeyProtocol::parse(&row.protocol)
        .ok_or_else(|| StoreError::Backend(format!("bad key protocol {:?}", row.protocol)))?;
    let aaguid = <[u8; 16]>::try_from(row.aaguid.as_slice())
        .map_err(|_| StoreError::Backend("bad AAGUID length".into()))?;
    Ok(SecurityKey {
        serial: row.serial,
        owner,
        name: row.name,
        protocol,
        credential_id: row.credential_id,
        public_key_cose: row.public_key,
        sign_count: u32::try_from(row.sign_count).map_err(backend)?,
        backup_eligible: row.backup_eligible,
        aaguid,
        attestation_format: row.attestation_format,
        attestation: row.attestation,
        user_handle: row.user_handle,
        enabled_at: row.enabled_at,
        last_used: row.last_used,
        possibly_cloned_at: row.possibly_cloned_at,
        lockout: lockout_state(row.failures, row.locked_until, row.lockouts)?,
    })
}

const CHALLENGE_COLUMNS: &str = "c.id, c.ceremony, c.requester, c.owner, u.name, c.serial,
     c.protocol, c.device_name, c.challenge, c.created, c.expires
     FROM challenge c LEFT JOIN iam_user u ON u.user_id = c.owner";

pub(crate) type ChallengeRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    Vec<u8>,
    i64,
    i64,
);

fn challenge_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChallengeRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

/// A stored challenge; `None` when its owner no longer exists (a deleted user's challenge
/// is as good as gone).
pub(crate) fn row_to_challenge(row: ChallengeRow) -> Result<Option<Challenge>, StoreError> {
    let (
        id,
        ceremony,
        requester,
        owner,
        owner_name,
        serial,
        protocol,
        name,
        bytes,
        created,
        expires,
    ) = row;
    let Some(owner) = owner_from(&owner, owner_name) else {
        return Ok(None);
    };
    let ceremony = match ceremony.as_str() {
        "register" => CeremonyKind::Register,
        "authenticate" => CeremonyKind::Authenticate,
        other => return Err(StoreError::Backend(format!("bad ceremony {other:?}"))),
    };
    let protocol = KeyProtocol::parse(&protocol)
        .ok_or_else(|| StoreError::Backend(format!("bad key protocol {protocol:?}")))?;
    Ok(Some(Challenge {
        id,
        ceremony,
        requester,
        owner,
        serial,
        protocol,
        device_name: name,
        challenge: bytes,
        created,
        expires,
    }))
}

pub(super) fn create_challenge(
    store: &SqliteStore,
    c: &Challenge,
    max_per_requester: usize,
) -> Result<(), StoreError> {
    store.write_login_state(|tx, _| {
        let owner = owner_column(tx, &c.owner)?;
        tx.execute("DELETE FROM challenge WHERE expires <= ?1", [c.created])
            .map_err(backend)?;
        let live: i64 = tx
            .query_row(
                "SELECT count(*) FROM challenge WHERE requester = ?1",
                [&c.requester],
                |r| r.get(0),
            )
            .map_err(backend)?;
        if usize::try_from(live).unwrap_or(usize::MAX) >= max_per_requester {
            return Err(StoreError::LimitExceeded(Entity::Challenge));
        }
        tx.execute(
            "INSERT INTO challenge (id, ceremony, requester, owner, serial, protocol,
                 device_name, challenge, created, expires)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                c.id,
                c.ceremony.as_str(),
                c.requester,
                owner,
                c.serial,
                c.protocol.as_str(),
                c.device_name,
                c.challenge,
                c.created,
                c.expires
            ],
        )
        .map_err(exists_or_backend(Entity::Challenge))?;
        Ok(())
    })
}

pub(super) fn challenge(store: &SqliteStore, id: &str) -> Result<Option<Challenge>, StoreError> {
    let row = store
        .read()?
        .prepare_cached(&format!("SELECT {CHALLENGE_COLUMNS} WHERE c.id = ?1"))
        .and_then(|mut stmt| stmt.query_row([id], challenge_row).optional())
        .map_err(backend)?;
    Ok(row.map(row_to_challenge).transpose()?.flatten())
}

pub(super) fn discard_challenge(store: &SqliteStore, id: &str) -> Result<(), StoreError> {
    store.write_login_state(|tx, _| {
        tx.execute("DELETE FROM challenge WHERE id = ?1", [id])
            .map_err(backend)?;
        Ok(())
    })
}

pub(super) fn enable_security_key(
    store: &SqliteStore,
    challenge_id: &str,
    now: i64,
    key: &SecurityKey,
    max_devices: usize,
) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let owner = owner_column(tx, &key.owner)?;
        let spent = tx
            .execute(
                "DELETE FROM challenge
                 WHERE id = ?1 AND ceremony = 'register' AND serial = ?2 AND owner = ?3
                   AND expires > ?4",
                params![challenge_id, key.serial, owner, now],
            )
            .map_err(backend)?;
        if spent != 1 {
            return Err(StoreError::NotFound(Entity::Challenge));
        }
        if mfa_devices_in_use(tx, &owner)? >= max_devices {
            return Err(StoreError::LimitExceeded(Entity::MfaDevice));
        }
        tx.execute(
            "INSERT INTO security_key (serial, owner, name, protocol, credential_id,
                 public_key, sign_count, backup_eligible, aaguid, attestation_format,
                 attestation, user_handle, enabled_at, last_used, possibly_cloned_at,
                 failures, locked_until, lockouts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, NULL, NULL,
                 0, NULL, 0)",
            params![
                key.serial,
                owner,
                key.name,
                key.protocol.as_str(),
                key.credential_id,
                key.public_key_cose,
                key.sign_count,
                key.backup_eligible,
                key.aaguid.as_slice(),
                key.attestation_format,
                key.attestation,
                key.user_handle,
                key.enabled_at,
            ],
        )
        .map_err(exists_or_backend(Entity::MfaDevice))?;
        Ok(())
    })
}

pub(super) fn security_key(
    store: &SqliteStore,
    serial: &str,
) -> Result<Option<SecurityKey>, StoreError> {
    let row = store
        .read()?
        .prepare_cached(&format!(
            "SELECT {SECURITY_KEY_COLUMNS} WHERE k.serial = ?1"
        ))
        .and_then(|mut stmt| stmt.query_row([serial], security_key_row).optional())
        .map_err(backend)?;
    row.map(row_to_security_key).transpose()
}

pub(super) fn security_keys_of(
    store: &SqliteStore,
    owner: &KeyOwner,
) -> Result<Vec<SecurityKey>, StoreError> {
    let rows: Vec<SecurityKeyRow> = {
        let conn = store.read()?;
        let column = owner_column(&conn, owner)?;
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {SECURITY_KEY_COLUMNS} WHERE k.owner = ?1
                 ORDER BY k.enabled_at, k.serial"
            ))
            .map_err(backend)?;
        stmt.query_map([column], security_key_row)
            .map_err(backend)?
            .collect::<Result<_, _>>()
            .map_err(backend)?
    };
    rows.into_iter().map(row_to_security_key).collect()
}

pub(super) fn delete_security_key(
    store: &SqliteStore,
    serial: &str,
    owner: &KeyOwner,
) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let column = owner_column(tx, owner)?;
        let n = tx
            .execute(
                "DELETE FROM security_key WHERE serial = ?1 AND owner = ?2",
                params![serial, column],
            )
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(Entity::MfaDevice));
        }
        tx.execute("DELETE FROM challenge WHERE serial = ?1", [serial])
            .map_err(backend)?;
        Ok(())
    })
}

pub(super) fn record_security_key_use(
    store: &SqliteStore,
    key_use: &KeyUse,
) -> Result<KeyUseOutcome, StoreError> {
    match &store.committer {
        Some(c) => match c.submit(HotWrite::KeyUse(key_use.clone()))? {
            HotResult::KeyUse(outcome) => Ok(outcome),
            _ => Err(StoreError::Backend("mismatched reply".into())),
        },
        None => store.write_login_state(|tx, _| key_use_cas(tx, key_use)),
    }
}

pub(super) fn record_security_key_use_then(
    store: &SqliteStore,
    key_use: &KeyUse,
    done: Completion<KeyUseOutcome>,
) {
    let Some(c) = &store.committer else {
        return done(store.record_security_key_use(key_use));
    };
    c.submit_then(
        HotWrite::KeyUse(key_use.clone()),
        Box::new(move |result| {
            done(result.and_then(|r| match r {
                HotResult::KeyUse(outcome) => Ok(outcome),
                _ => Err(StoreError::Backend("mismatched reply".into())),
            }))
        }),
    );
}

pub(super) fn record_security_key_failure(
    store: &SqliteStore,
    serial: &str,
    challenge_id: Option<&str>,
    policy: &LockoutPolicy,
    now: i64,
    possible_clone: bool,
) -> Result<TotpState, StoreError> {
    match &store.committer {
        Some(c) => {
            let op = HotWrite::KeyFailure {
                serial: serial.to_owned(),
                challenge_id: challenge_id.map(str::to_owned),
                policy: *policy,
                now,
                possible_clone,
            };
            match c.submit(op)? {
                HotResult::Failure(state) => Ok(state),
                _ => Err(StoreError::Backend("mismatched reply".into())),
            }
        }
        None => store.write_login_state(|tx, _| {
            key_failure(tx, serial, challenge_id, policy, now, possible_clone)
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokengate_verifier::totp::{LockoutPolicy, TotpState};

    use crate::sqlite::SqliteStore;
    use crate::sqlite::fixtures::*;
    use crate::{CeremonyKind, Entity, KeyOwner, KeyUse, KeyUseOutcome, Store, StoreError};

    const KEY: &str = "arn:aws:iam::000000000000:u2f/user/alice/yubikey-ABC";

    /// A store with user alice and her key `KEY` (counter 7), registered through a challenge.
    fn store_with_key(s: &SqliteStore) -> KeyOwner {
        s.create_user(&user("alice")).unwrap();
        let alice = KeyOwner::User("alice".into());
        s.create_challenge(
            &challenge("r1", CeremonyKind::Register, alice.clone(), KEY),
            16,
        )
        .unwrap();
        s.enable_security_key("r1", 150, &security_key(KEY, alice.clone(), b"cred-1"), 8)
            .unwrap();
        alice
    }

    fn key_use(challenge_id: &str, expected: u32, new: u32) -> KeyUse {
        KeyUse {
            serial: KEY.into(),
            challenge_id: challenge_id.into(),
            expected_sign_count: expected,
            sign_count: new,
            now: 150,
        }
    }

    #[test]
    fn security_keys_register_through_one_challenge_and_share_the_quota() {
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        let alice = store_with_key(&s);
        let stored = s.security_key(KEY).unwrap().unwrap();
        assert_eq!(stored, security_key(KEY, alice.clone(), b"cred-1"));
        // The registration challenge is spent.
        assert!(s.challenge("r1").unwrap().is_none());
        assert_eq!(
            s.enable_security_key("r1", 150, &security_key(KEY, alice.clone(), b"cred-1"), 8),
            Err(StoreError::NotFound(Entity::Challenge))
        );
        // Expired, or for another serial or owner: not consumable.
        let other = "arn:aws:iam::000000000000:u2f/user/alice/other-DEF";
        s.create_challenge(
            &challenge("r2", CeremonyKind::Register, alice.clone(), other),
            16,
        )
        .unwrap();
        let k2 = security_key(other, alice.clone(), b"cred-2");
        assert_eq!(
            s.enable_security_key("r2", 220, &k2, 8),
            Err(StoreError::NotFound(Entity::Challenge))
        );
        assert_eq!(
            s.enable_security_key("r2", 150, &security_key(KEY, alice.clone(), b"x"), 8),
            Err(StoreError::NotFound(Entity::Challenge))
        );
        // The same credential ID cannot register twice.
        let dup = security_key(other, alice.clone(), b"cred-1");
        assert_eq!(
            s.enable_security_key("r2", 150, &dup, 8),
            Err(StoreError::AlreadyExists(Entity::MfaDevice))
        );
        // One key plus seven TOTP devices fill the eight slots, for either kind.
        for i in 0..8 {
            s.create_mfa_device(&device(&format!("arn:aws:iam::000000000000:mfa/d{i}")))
                .unwrap();
        }
        let st = TotpState::default();
        for i in 0..7 {
            let serial = format!("arn:aws:iam::000000000000:mfa/d{i}");
            s.enable_mfa_device(&serial, &alice, 5, &st, 8).unwrap();
        }
        assert_eq!(
            s.enable_mfa_device("arn:aws:iam::000000000000:mfa/d7", &alice, 5, &st, 8),
            Err(StoreError::LimitExceeded(Entity::MfaDevice))
        );
        s.create_challenge(
            &challenge("r3", CeremonyKind::Register, alice.clone(), other),
            16,
        )
        .unwrap();
        assert_eq!(
            s.enable_security_key("r3", 150, &k2, 8),
            Err(StoreError::LimitExceeded(Entity::MfaDevice))
        );
        assert_eq!(s.security_keys_of(&alice).unwrap().len(), 1);
        // A user with a security key cannot be deleted; TOTP devices are named first.
        assert_eq!(
            s.delete_user("alice"),
            Err(StoreError::DeleteConflict {
                entity: Entity::User,
                dependents: Entity::MfaDevice
            })
        );
        for i in 0..7 {
            let serial = format!("arn:aws:iam::000000000000:mfa/d{i}");
            s.deactivate_mfa_device(&serial, &alice).unwrap();
        }
        assert_eq!(
            s.delete_user("alice"),
            Err(StoreError::DeleteConflict {
                entity: Entity::User,
                dependents: Entity::SecurityKey
            })
        );
        s.delete_security_key(KEY, &alice).unwrap();
        assert_eq!(
            s.delete_security_key(KEY, &alice),
            Err(StoreError::NotFound(Entity::MfaDevice))
        );
        s.delete_user("alice").unwrap();
        // Its leftover challenge reads as gone, not as an error.
        assert!(s.challenge("r3").unwrap().is_none());
    }

    #[test]
    fn challenges_expire_and_are_limited_per_requester() {
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        let root = KeyOwner::Root;
        let generation = s.iam_generation();
        for i in 0..3 {
            s.create_challenge(
                &challenge(
                    &format!("c{i}"),
                    CeremonyKind::Authenticate,
                    root.clone(),
                    KEY,
                ),
                3,
            )
            .unwrap();
        }
        assert_eq!(
            s.create_challenge(
                &challenge("c3", CeremonyKind::Authenticate, root.clone(), KEY),
                3
            ),
            Err(StoreError::LimitExceeded(Entity::Challenge))
        );
        assert_eq!(
            s.create_challenge(
                &challenge("c0", CeremonyKind::Authenticate, root.clone(), KEY),
                9
            ),
            Err(StoreError::AlreadyExists(Entity::Challenge))
        );
        // Once they expired, a new challenge drops them.
        let mut later = challenge("c4", CeremonyKind::Authenticate, root.clone(), KEY);
        later.created = 220;
        later.expires = 340;
        s.create_challenge(&later, 3).unwrap();
        assert!(s.challenge("c0").unwrap().is_none());
        assert_eq!(s.challenge("c4").unwrap().unwrap(), later);
        s.discard_challenge("c4").unwrap();
        s.discard_challenge("c4").unwrap();
        assert!(s.challenge("c4").unwrap().is_none());
        // Challenges are login state: no cache holds them and no authorization reads them,
        // so they leave the IAM generation (and every compiled policy) alone.
        assert_eq!(s.iam_generation(), generation);
    }

    #[test]
    fn a_key_use_is_one_compare_and_set_across_threads_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let s = std::sync::Arc::new(SqliteStore::open(&path, &master()).unwrap());
        let alice = store_with_key(&s);
        let login = |id: &str| {
            s.create_challenge(
                &challenge(id, CeremonyKind::Authenticate, alice.clone(), KEY),
                16,
            )
            .unwrap();
        };
        login("a1");
        // Eight requests race with one assertion: one wins, the rest find the challenge spent.
        let outcomes: Vec<KeyUseOutcome> = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || s.record_security_key_use(&key_use("a1", 7, 8)).unwrap())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| **o == KeyUseOutcome::Recorded)
                .count(),
            1,
            "{outcomes:?}"
        );
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, KeyUseOutcome::Recorded | KeyUseOutcome::ChallengeSpent))
        );
        let stored = s.security_key(KEY).unwrap().unwrap();
        assert_eq!((stored.sign_count, stored.last_used), (8, Some(150)));
        // A second challenge, verified against a counter that moved meanwhile: refused.
        login("a2");
        assert_eq!(
            s.record_security_key_use(&key_use("a2", 7, 9)).unwrap(),
            KeyUseOutcome::KeyChanged
        );
        assert!(
            s.challenge("a2").unwrap().is_none(),
            "a lost race spends the challenge"
        );
        // The async form answers through its callback.
        login("a3");
        let (tx, rx) = std::sync::mpsc::channel();
        s.record_security_key_use_then(
            &key_use("a3", 8, 9),
            Box::new(move |r| tx.send(r).unwrap()),
        );
        assert_eq!(rx.recv().unwrap().unwrap(), KeyUseOutcome::Recorded);
        drop(s);
        // A restarted process sees the counter.
        let again = SqliteStore::open(&path, &master()).unwrap();
        assert_eq!(again.security_key(KEY).unwrap().unwrap().sign_count, 9);
    }

    #[test]
    fn key_failures_lock_out_and_a_clone_flag_stops_the_key() {
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        let alice = store_with_key(&s);
        let policy = LockoutPolicy::default();
        s.create_challenge(
            &challenge("f1", CeremonyKind::Authenticate, alice.clone(), KEY),
            16,
        )
        .unwrap();
        let st = s
            .record_security_key_failure(KEY, Some("f1"), &policy, 150, false)
            .unwrap();
        assert_eq!(st.failures, 1);
        assert!(
            s.challenge("f1").unwrap().is_none(),
            "a failure spends the challenge"
        );
        for _ in 0..3 {
            s.record_security_key_failure(KEY, None, &policy, 150, false)
                .unwrap();
        }
        let st = s
            .record_security_key_failure(KEY, None, &policy, 150, true)
            .unwrap();
        assert_eq!(st.locked_until, Some(210));
        let stored = s.security_key(KEY).unwrap().unwrap();
        assert_eq!(stored.lockout.locked_until, Some(210));
        assert_eq!(stored.possibly_cloned_at, Some(150));
        s.record_security_key_failure(KEY, None, &policy, 400, true)
            .unwrap();
        assert_eq!(
            s.security_key(KEY).unwrap().unwrap().possibly_cloned_at,
            Some(150),
            "the first detection is kept"
        );
        // A flagged key records no login, even with a fresh challenge and the right counter.
        s.create_challenge(
            &challenge("f2", CeremonyKind::Authenticate, alice.clone(), KEY),
            16,
        )
        .unwrap();
        assert_eq!(
            s.record_security_key_use(&key_use("f2", 7, 8)).unwrap(),
            KeyUseOutcome::KeyChanged
        );
        assert_eq!(
            s.record_security_key_failure("no-such-key", None, &policy, 1, false),
            Err(StoreError::NotFound(Entity::MfaDevice))
        );
    }
}
