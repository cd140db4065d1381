//! The credential report: the one stored report and the inventory it is written from,
//! read in one REPEATABLE READ snapshot.

use std::collections::HashMap;

use deadpool_postgres::Object;

use super::backend;
use super::iam::user_row;
use super::passwords::{PROFILE_COLUMNS, profile_row};
use crate::{
    CredentialInventory, Entity, KeyLastUsed, KeySummary, PrincipalCredentials, StoreError,
    StoredReport, User,
};

pub(super) async fn credential_report(c: &Object) -> Result<Option<StoredReport>, StoreError> {
    Ok(c.query_opt(
        "SELECT generated, content FROM credential_report WHERE id = 1",
        &[],
    )
    .await
    .map_err(backend)?
    .map(|r| StoredReport {
        generated: r.get(0),
        content: r.get(1),
    }))
}

/// The report is no IAM state: no generation bump.
pub(super) async fn put_credential_report(
    c: &Object,
    report: &StoredReport,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO credential_report (id, generated, content) VALUES (1, $1, $2)
         ON CONFLICT (id) DO UPDATE
         SET generated = excluded.generated, content = excluded.content",
        &[&report.generated, &report.content],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

pub(super) async fn credential_inventory(
    c: &mut Object,
) -> Result<CredentialInventory, StoreError> {
    let tx = c
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(backend)?;
    let account = tx
        .query_opt("SELECT account_id, created FROM account WHERE id = 1", &[])
        .await
        .map_err(backend)?
        .map(|r| crate::Account {
            account_id: r.get(0),
            created: r.get(1),
        })
        .ok_or(StoreError::NotFound(Entity::Account))?;
    let mut by_owner: HashMap<String, PrincipalCredentials> = HashMap::new();
    // Keys in creation order (two made in one second: by the insertion sequence of
    // migration 0011, as SQLite's rowid), so that access_key_1 is the older one.
    let keys = tx
        .query(
            "SELECT coalesce(owner_user_id, 'root'), access_key_id, status, created,
                    last_used_at, last_used_service, last_used_region
             FROM access_key ORDER BY created, seq",
            &[],
        )
        .await
        .map_err(backend)?;
    for r in &keys {
        let at: Option<i64> = r.get(4);
        let status: String = r.get(2);
        let key = KeySummary {
            access_key_id: r.get(1),
            active: status == "Active",
            created: r.get(3),
            last_used: at.map(|at| KeyLastUsed {
                at,
                service: r.get::<_, Option<String>>(5).unwrap_or_default(),
                region: r.get::<_, Option<String>>(6).unwrap_or_default(),
            }),
        };
        by_owner.entry(r.get(0)).or_default().keys.push(key);
    }
    // Every enabled second factor: TOTP devices (virtual and hardware) and security keys.
    let counts = tx
        .query(
            "SELECT owner, count(*) FROM (
                 SELECT owner FROM mfa_device
                 WHERE owner IS NOT NULL AND enabled_at IS NOT NULL
                 UNION ALL SELECT owner FROM security_key) o
             GROUP BY owner",
            &[],
        )
        .await
        .map_err(backend)?;
    for r in &counts {
        let n: i64 = r.get(1);
        by_owner.entry(r.get(0)).or_default().mfa_devices = usize::try_from(n).map_err(backend)?;
    }
    let profiles = tx
        .query(
            &format!(
                "SELECT {PROFILE_COLUMNS}, p.user_id FROM login_profile p
                 JOIN iam_user u ON u.user_id = p.user_id"
            ),
            &[],
        )
        .await
        .map_err(backend)?;
    for r in &profiles {
        by_owner.entry(r.get(7)).or_default().login_profile = Some(profile_row(r));
    }
    let users: Vec<User> = tx
        .query(
            "SELECT user_id, name, path, created FROM iam_user u ORDER BY lower(name)",
            &[],
        )
        .await
        .map_err(backend)?
        .iter()
        .map(user_row)
        .collect();
    let root = by_owner
        .remove(crate::sqlite::ROOT_OWNER)
        .unwrap_or_default();
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
}
