//! U2F / FIDO2 security keys, their signature counters and the single-use ceremony
//! challenges. A challenge is spent by whoever deletes it (`DELETE` reports one row to one
//! transaction only); the counter is a conditional `UPDATE` on the value verified against.

use deadpool_postgres::Object;
use tokengate_verifier::totp::{LockoutPolicy, TotpState};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::mfa::devices_in_use as mfa_devices_in_use;
use super::{backend, begin_admin, exists_or_backend, owner_column};
use crate::sqlite::security_keys::{
    ChallengeRow, SecurityKeyRow, lockout_state, row_to_challenge, row_to_security_key,
};
use crate::{Challenge, Entity, KeyOwner, KeyUse, KeyUseOutcome, SecurityKey, StoreError};

const SECURITY_KEY_COLUMNS: &str = "k.serial, k.owner, u.name, k.name, k.protocol,
     k.credential_id, k.public_key, k.sign_count, k.backup_eligible, k.aaguid,
     k.attestation_format, k.attestation, k.user_handle, k.enabled_at, k.last_used,
     k.possibly_cloned_at, k.failures, k.locked_until, k.lockouts
     FROM security_key k LEFT JOIN iam_user u ON u.user_id = k.owner";

const CHALLENGE_COLUMNS: &str = "c.id, c.ceremony, c.requester, c.owner, u.name, c.serial,
     c.protocol, c.device_name, c.challenge, c.created, c.expires
     FROM challenge c LEFT JOIN iam_user u ON u.user_id = c.owner";

fn security_key_row(r: &Row) -> SecurityKeyRow {
    SecurityKeyRow {
        serial: r.get(0),
        owner: r.get(1),
        owner_name: r.get(2),
        name: r.get(3),
        protocol: r.get(4),
        credential_id: r.get(5),
        public_key: r.get(6),
        sign_count: r.get(7),
        backup_eligible: r.get::<_, i64>(8) != 0,
        aaguid: r.get(9),
        attestation_format: r.get(10),
        attestation: r.get(11),
        user_handle: r.get(12),
        enabled_at: r.get(13),
        last_used: r.get(14),
        possibly_cloned_at: r.get(15),
        failures: r.get(16),
        locked_until: r.get(17),
        lockouts: r.get(18),
    }
}

fn challenge_row(r: &Row) -> ChallengeRow {
    (
        r.get(0),
        r.get(1),
        r.get(2),
        r.get(3),
        r.get(4),
        r.get(5),
        r.get(6),
        r.get(7),
        r.get(8),
        r.get(9),
        r.get(10),
    )
}

pub(super) async fn keys_where(
    c: &Object,
    clause: &str,
    args: &[&(dyn ToSql + Sync)],
) -> Result<Vec<SecurityKey>, StoreError> {
    c.query(
        &format!("SELECT {SECURITY_KEY_COLUMNS} WHERE {clause}"),
        args,
    )
    .await
    .map_err(backend)?
    .iter()
    .map(|r| row_to_security_key(security_key_row(r)))
    .collect()
}

/// Stores a challenge under the requester's quota. Challenges are login state, not IAM
/// state, so they do not take the generation lock; a transaction-scoped advisory lock on
/// the requester serialises its own creations so that the quota holds across replicas.
pub(super) async fn create_challenge(
    conn: &mut Object,
    c: &Challenge,
    max_per_requester: usize,
) -> Result<(), StoreError> {
    let tx = conn.transaction().await.map_err(backend)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('tokengate.challenge:' || $1, 0))",
        &[&c.requester],
    )
    .await
    .map_err(backend)?;
    let owner = owner_column(&tx, &c.owner).await?;
    tx.execute("DELETE FROM challenge WHERE expires <= $1", &[&c.created])
        .await
        .map_err(backend)?;
    let live: i64 = tx
        .query_one(
            "SELECT count(*) FROM challenge WHERE requester = $1",
            &[&c.requester],
        )
        .await
        .map_err(backend)?
        .get(0);
    if usize::try_from(live).unwrap_or(usize::MAX) >= max_per_requester {
        return Err(StoreError::LimitExceeded(Entity::Challenge));
    }
    tx.execute(
        "INSERT INTO challenge (id, ceremony, requester, owner, serial, protocol,
             device_name, challenge, created, expires)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &c.id,
            &c.ceremony.as_str(),
            &c.requester,
            &owner,
            &c.serial,
            &c.protocol.as_str(),
            &c.device_name,
            &c.challenge,
            &c.created,
            &c.expires,
        ],
    )
    .await
    .map_err(exists_or_backend(Entity::Challenge))?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn challenge(c: &Object, id: &str) -> Result<Option<Challenge>, StoreError> {
    let row = c
        .query_opt(
            &format!("SELECT {CHALLENGE_COLUMNS} WHERE c.id = $1"),
            &[&id],
        )
        .await
        .map_err(backend)?;
    Ok(row
        .map(|r| row_to_challenge(challenge_row(&r)))
        .transpose()?
        .flatten())
}

pub(super) async fn enable_security_key(
    c: &mut Object,
    challenge_id: &str,
    now: i64,
    key: &SecurityKey,
    max_devices: usize,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let owner = owner_column(&tx, &key.owner).await?;
    let spent = tx
        .execute(
            "DELETE FROM challenge
             WHERE id = $1 AND ceremony = 'register' AND serial = $2 AND owner = $3
               AND expires > $4",
            &[&challenge_id, &key.serial, &owner, &now],
        )
        .await
        .map_err(backend)?;
    if spent != 1 {
        return Err(StoreError::NotFound(Entity::Challenge));
    }
    if mfa_devices_in_use(&tx, &owner).await? >= max_devices {
        return Err(StoreError::LimitExceeded(Entity::MfaDevice));
    }
    tx.execute(
        "INSERT INTO security_key (serial, owner, name, protocol, credential_id,
             public_key, sign_count, backup_eligible, aaguid, attestation_format,
             attestation, user_handle, enabled_at, last_used, possibly_cloned_at,
             failures, locked_until, lockouts)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL, NULL,
             0, NULL, 0)",
        &[
            &key.serial,
            &owner,
            &key.name,
            &key.protocol.as_str(),
            &key.credential_id,
            &key.public_key_cose,
            &i64::from(key.sign_count),
            &i64::from(key.backup_eligible),
            &key.aaguid.as_slice(),
            &key.attestation_format,
            &key.attestation,
            &key.user_handle,
            &key.enabled_at,
        ],
    )
    .await
    .map_err(exists_or_backend(Entity::MfaDevice))?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn delete_security_key(
    c: &mut Object,
    serial: &str,
    owner: &KeyOwner,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let column = owner_column(&tx, owner).await?;
    let n = tx
        .execute(
            "DELETE FROM security_key WHERE serial = $1 AND owner = $2",
            &[&serial, &column],
        )
        .await
        .map_err(backend)?;
    if n == 0 {
        return Err(StoreError::NotFound(Entity::MfaDevice));
    }
    tx.execute("DELETE FROM challenge WHERE serial = $1", &[&serial])
        .await
        .map_err(backend)?;
    tx.commit().await.map_err(backend)
}

/// A verified login: the challenge is spent by this transaction's `DELETE` or by nobody,
/// then the counter moves only from the value verified against (and never for a flagged
/// key). Two replicas racing with one assertion: one deletes the challenge, the other
/// finds it gone (it waits for the first to commit, then re-checks).
pub(super) async fn key_use_cas(c: &mut Object, u: &KeyUse) -> Result<KeyUseOutcome, StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    let spent = tx
        .execute(
            "DELETE FROM challenge
             WHERE id = $1 AND ceremony = 'authenticate' AND serial = $2 AND expires > $3",
            &[&u.challenge_id, &u.serial, &u.now],
        )
        .await
        .map_err(backend)?;
    if spent != 1 {
        return Ok(KeyUseOutcome::ChallengeSpent);
    }
    let n = tx
        .execute(
            "UPDATE security_key
             SET sign_count = $1, last_used = $2, failures = 0, locked_until = NULL, lockouts = 0
             WHERE serial = $3 AND sign_count = $4 AND possibly_cloned_at IS NULL",
            &[
                &i64::from(u.sign_count),
                &u.now,
                &u.serial,
                &i64::from(u.expected_sign_count),
            ],
        )
        .await
        .map_err(backend)?;
    // The challenge stays spent even when the counter lost: commit either way.
    tx.commit().await.map_err(backend)?;
    Ok(if n == 1 {
        KeyUseOutcome::Recorded
    } else {
        KeyUseOutcome::KeyChanged
    })
}

pub(super) async fn key_failure(
    c: &mut Object,
    serial: &str,
    challenge_id: Option<&str>,
    policy: &LockoutPolicy,
    now: i64,
    possible_clone: bool,
) -> Result<TotpState, StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    if let Some(id) = challenge_id {
        tx.execute(
            "DELETE FROM challenge WHERE id = $1 AND serial = $2",
            &[&id, &serial],
        )
        .await
        .map_err(backend)?;
    }
    let row = tx
        .query_opt(
            "SELECT failures, locked_until, lockouts FROM security_key
             WHERE serial = $1 FOR UPDATE",
            &[&serial],
        )
        .await
        .map_err(backend)?
        .ok_or(StoreError::NotFound(Entity::MfaDevice))?;
    let state = lockout_state(row.get(0), row.get(1), row.get(2))?.failed(policy, now);
    tx.execute(
        "UPDATE security_key SET failures = $1, locked_until = $2, lockouts = $3,
             possibly_cloned_at = CASE WHEN $4 THEN coalesce(possibly_cloned_at, $5)
                                       ELSE possibly_cloned_at END
         WHERE serial = $6",
        &[
            &i64::from(state.failures),
            &state.locked_until,
            &i64::from(state.lockouts),
            &possible_clone,
            &now,
            &serial,
        ],
    )
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)?;
    Ok(state)
}
