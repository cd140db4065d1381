//! Sign-in portal sessions and the sign-in throttle: login-path state shared by every
//! replica (a session signed in on one is valid on all; the throttle counts every
//! replica's failures). No generation bump.

use deadpool_postgres::Object;

use super::backend;
use crate::{PortalSession, PortalStage, StoreError};

const COLUMNS: &str =
    "id_hash, user_id, stage, mfa_method, mfa_device, mfa_time, created, last_seen, expires";

pub(super) async fn put_portal_session(
    c: &mut Object,
    replaces: Option<&[u8]>,
    s: &PortalSession,
) -> Result<(), StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    tx.execute(
        "DELETE FROM portal_session WHERE expires <= $1",
        &[&s.created.max(s.last_seen)],
    )
    .await
    .map_err(backend)?;
    if let Some(old) = replaces {
        tx.execute("DELETE FROM portal_session WHERE id_hash = $1", &[&old])
            .await
            .map_err(backend)?;
    }
    tx.execute(
        &format!(
            "INSERT INTO portal_session ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ),
        &[
            &s.id_hash,
            &s.user_id,
            &s.stage.as_str(),
            &s.mfa_method,
            &s.mfa_device,
            &s.mfa_time,
            &s.created,
            &s.last_seen,
            &s.expires,
        ],
    )
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn portal_session(
    c: &Object,
    id_hash: &[u8],
) -> Result<Option<PortalSession>, StoreError> {
    let Some(r) = c
        .query_opt(
            &format!("SELECT {COLUMNS} FROM portal_session WHERE id_hash = $1"),
            &[&id_hash],
        )
        .await
        .map_err(backend)?
    else {
        return Ok(None);
    };
    let stage: String = r.get(2);
    let stage = PortalStage::parse(&stage)
        .ok_or_else(|| StoreError::Backend(format!("unknown portal session stage {stage:?}")))?;
    Ok(Some(PortalSession {
        id_hash: r.get(0),
        user_id: r.get(1),
        stage,
        mfa_method: r.get(3),
        mfa_device: r.get(4),
        mfa_time: r.get(5),
        created: r.get(6),
        last_seen: r.get(7),
        expires: r.get(8),
    }))
}

pub(super) async fn touch_portal_session(
    c: &Object,
    id_hash: &[u8],
    now: i64,
) -> Result<(), StoreError> {
    c.execute(
        "UPDATE portal_session SET last_seen = greatest(last_seen, $2) WHERE id_hash = $1",
        &[&id_hash, &now],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

pub(super) async fn delete_portal_session(c: &Object, id_hash: &[u8]) -> Result<(), StoreError> {
    c.execute("DELETE FROM portal_session WHERE id_hash = $1", &[&id_hash])
        .await
        .map_err(backend)?;
    Ok(())
}

pub(super) async fn portal_signin_failures(
    c: &Object,
    name: &str,
    since: i64,
) -> Result<u32, StoreError> {
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM portal_signin_failure WHERE name = $1 AND at > $2",
            &[&name.to_ascii_lowercase(), &since],
        )
        .await
        .map_err(backend)?
        .get(0);
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

pub(super) async fn record_portal_signin_failure(
    c: &mut Object,
    name: &str,
    now: i64,
    window_secs: i64,
) -> Result<(), StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    tx.execute(
        "DELETE FROM portal_signin_failure WHERE at <= $1",
        &[&now.saturating_sub(window_secs)],
    )
    .await
    .map_err(backend)?;
    tx.execute(
        "INSERT INTO portal_signin_failure (name, at) VALUES ($1, $2)",
        &[&name.to_ascii_lowercase(), &now],
    )
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)
}
