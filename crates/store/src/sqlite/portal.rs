//! Sign-in portal sessions and the sign-in throttle (issue 13). Login-path state: no read
//! cache holds it and no authorization reads it, so writes keep the IAM generation.

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, backend};
use crate::{PortalSession, PortalStage, StoreError};

const COLUMNS: &str =
    "id_hash, user_id, stage, mfa_method, mfa_device, mfa_time, created, last_seen, expires";

pub(super) fn put_portal_session(
    store: &SqliteStore,
    replaces: Option<&[u8]>,
    s: &PortalSession,
) -> Result<(), StoreError> {
    store.write_login_state(|tx, _| {
        tx.execute(
            "DELETE FROM portal_session WHERE expires <= ?1",
            [s.created.max(s.last_seen)],
        )
        .map_err(backend)?;
        if let Some(old) = replaces {
            tx.execute("DELETE FROM portal_session WHERE id_hash = ?1", [old])
                .map_err(backend)?;
        }
        tx.execute(
            &format!(
                "INSERT INTO portal_session ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ),
            params![
                s.id_hash,
                s.user_id,
                s.stage.as_str(),
                s.mfa_method,
                s.mfa_device,
                s.mfa_time,
                s.created,
                s.last_seen,
                s.expires
            ],
        )
        .map_err(backend)?;
        Ok(())
    })
}

pub(super) fn portal_session(
    store: &SqliteStore,
    id_hash: &[u8],
) -> Result<Option<PortalSession>, StoreError> {
    let conn = store.lock()?;
    let row = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM portal_session WHERE id_hash = ?1"),
            [id_hash],
            |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, i64>(8)?,
                ))
            },
        )
        .optional()
        .map_err(backend)?;
    let Some((
        id_hash,
        user_id,
        stage,
        mfa_method,
        mfa_device,
        mfa_time,
        created,
        last_seen,
        expires,
    )) = row
    else {
        return Ok(None);
    };
    let stage = PortalStage::parse(&stage)
        .ok_or_else(|| StoreError::Backend(format!("unknown portal session stage {stage:?}")))?;
    Ok(Some(PortalSession {
        id_hash,
        user_id,
        stage,
        mfa_method,
        mfa_device,
        mfa_time,
        created,
        last_seen,
        expires,
    }))
}

pub(super) fn touch_portal_session(
    store: &SqliteStore,
    id_hash: &[u8],
    now: i64,
) -> Result<(), StoreError> {
    store.write_login_state(|tx, _| {
        tx.execute(
            "UPDATE portal_session SET last_seen = max(last_seen, ?2) WHERE id_hash = ?1",
            params![id_hash, now],
        )
        .map_err(backend)?;
        Ok(())
    })
}

pub(super) fn delete_portal_session(store: &SqliteStore, id_hash: &[u8]) -> Result<(), StoreError> {
    store.write_login_state(|tx, _| {
        tx.execute("DELETE FROM portal_session WHERE id_hash = ?1", [id_hash])
            .map_err(backend)?;
        Ok(())
    })
}

pub(super) fn portal_signin_failures(
    store: &SqliteStore,
    name: &str,
    since: i64,
) -> Result<u32, StoreError> {
    let conn = store.lock()?;
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM portal_signin_failure WHERE name = ?1 AND at > ?2",
            params![name.to_ascii_lowercase(), since],
            |r| r.get(0),
        )
        .map_err(backend)?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

pub(super) fn record_portal_signin_failure(
    store: &SqliteStore,
    name: &str,
    now: i64,
    window_secs: i64,
) -> Result<(), StoreError> {
    store.write_login_state(|tx, _| {
        tx.execute(
            "DELETE FROM portal_signin_failure WHERE at <= ?1",
            [now.saturating_sub(window_secs)],
        )
        .map_err(backend)?;
        tx.execute(
            "INSERT INTO portal_signin_failure (name, at) VALUES (?1, ?2)",
            params![name.to_ascii_lowercase(), now],
        )
        .map_err(backend)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use crate::sqlite::SqliteStore;
    use crate::sqlite::fixtures::{master, user};
    use crate::{PortalSession, PortalStage, Store};

    #[test]
    fn sessions_rotate_expire_and_throttle() {
        let store = SqliteStore::open_in_memory(&master()).unwrap();
        let user = user("alice");
        store.create_user(&user).unwrap();
        let session = |hash: &[u8], stage| PortalSession {
            id_hash: hash.to_vec(),
            user_id: user.user_id.clone(),
            stage,
            mfa_method: None,
            mfa_device: None,
            mfa_time: None,
            created: 100,
            last_seen: 100,
            expires: 1_000,
        };
        store
            .put_portal_session(None, &session(b"one", PortalStage::Mfa))
            .unwrap();
        let rotated = PortalSession {
            mfa_method: Some("totp".into()),
            ..session(b"two", PortalStage::SignedIn)
        };
        store.put_portal_session(Some(b"one"), &rotated).unwrap();
        assert_eq!(store.portal_session(b"one").unwrap(), None);
        assert_eq!(store.portal_session(b"two").unwrap(), Some(rotated.clone()));
        store.touch_portal_session(b"two", 150).unwrap();
        assert_eq!(
            store.portal_session(b"two").unwrap().unwrap().last_seen,
            150
        );
        store.delete_portal_session(b"two").unwrap();
        assert_eq!(store.portal_session(b"two").unwrap(), None);

        for at in [10, 20, 30] {
            store.record_portal_signin_failure("Alice", at, 60).unwrap();
        }
        assert_eq!(store.portal_signin_failures("alice", 0).unwrap(), 3);
        assert_eq!(store.portal_signin_failures("ALICE", 15).unwrap(), 2);
        assert_eq!(store.portal_signin_failures("bob", 0).unwrap(), 0);
    }
}
