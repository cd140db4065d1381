//! TOTP MFA devices and their replay and lockout state, decided in the database so that
//! replicas agree: the replay mark is one conditional `UPDATE`, a failure is counted under
//! the device's row lock.

use deadpool_postgres::Object;
use tokengate_verifier::totp::{LockoutPolicy, TotpState};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{backend, begin_admin, exists_or_backend, owner_column, to_i64};
use crate::seal::Sealer;
use crate::sqlite::mfa::{DeviceRow, device_from_row, seed_aad};
use crate::{Entity, KeyOwner, MfaDevice, StoreError};

const DEVICE_COLUMNS: &str = "d.serial, d.kind, d.owner, u.name, d.enabled_at, d.created,
     d.sealed_seed, d.algorithm, d.digits, d.period, d.last_step, d.drift, d.failures,
     d.locked_until, d.lockouts
     FROM mfa_device d LEFT JOIN iam_user u ON u.user_id = d.owner";

fn device_row(r: &Row) -> DeviceRow {
    DeviceRow {
        serial: r.get(0),
        kind: r.get(1),
        owner: r.get(2),
        owner_name: r.get(3),
        enabled_at: r.get(4),
        created: r.get(5),
        sealed: r.get(6),
        algorithm: r.get(7),
        digits: r.get(8),
        period: r.get(9),
        last_step: r.get(10),
        drift: r.get(11),
        failures: r.get(12),
        locked_until: r.get(13),
        lockouts: r.get(14),
    }
}

pub(super) fn clone_device(d: &MfaDevice) -> MfaDevice {
    MfaDevice {
        serial: d.serial.clone(),
        kind: d.kind,
        owner: d.owner.clone(),
        enabled_at: d.enabled_at,
        created: d.created,
        seed: d.seed.clone(),
        params: d.params,
        state: d.state,
    }
}

pub(super) async fn devices_where(
    c: &Object,
    sealer: &Sealer,
    clause: &str,
    args: &[&(dyn ToSql + Sync)],
) -> Result<Vec<MfaDevice>, StoreError> {
    c.query(&format!("SELECT {DEVICE_COLUMNS} WHERE {clause}"), args)
        .await
        .map_err(backend)?
        .iter()
        .map(|r| device_from_row(sealer, device_row(r)))
        .collect()
}

/// MFA devices of every kind that `owner_column` has in use.
pub(super) async fn devices_in_use(
    tx: &impl deadpool_postgres::GenericClient,
    owner_column: &str,
) -> Result<usize, StoreError> {
    let n: i64 = tx
        .query_one(
            "SELECT (SELECT count(*) FROM mfa_device WHERE owner = $1)
                  + (SELECT count(*) FROM security_key WHERE owner = $1)",
            &[&owner_column],
        )
        .await
        .map_err(backend)?
        .get(0);
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

pub(super) async fn create_mfa_device(
    c: &mut Object,
    sealer: &Sealer,
    d: &MfaDevice,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let owner = match &d.owner {
        Some(o) => Some(owner_column(&tx, o).await?),
        None => None,
    };
    let sealed = sealer.seal(&seed_aad(&d.serial), d.seed.expose())?;
    let digits = i64::from(d.params.digits);
    let period = to_i64(d.params.period)?;
    let last_step = d.state.last_step.map(to_i64).transpose()?;
    let failures = i64::from(d.state.failures);
    let lockouts = i64::from(d.state.lockouts);
    tx.execute(
        "INSERT INTO mfa_device (serial, kind, owner, enabled_at, created, sealed_seed,
             algorithm, digits, period, last_step, drift, failures, locked_until, lockouts)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        &[
            &d.serial,
            &d.kind.as_str(),
            &owner,
            &d.enabled_at,
            &d.created,
            &sealed,
            &d.params.algorithm.as_str(),
            &digits,
            &period,
            &last_step,
            &d.state.drift,
            &failures,
            &d.state.locked_until,
            &lockouts,
        ],
    )
    .await
    .map_err(exists_or_backend(Entity::MfaDevice))?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn mfa_devices_of(
    c: &Object,
    sealer: &Sealer,
    owner: &KeyOwner,
) -> Result<Vec<MfaDevice>, StoreError> {
    let column = owner_column(c, owner).await?;
    devices_where(
        c,
        sealer,
        "d.owner = $1 ORDER BY d.enabled_at, d.serial",
        &[&column],
    )
    .await
}

pub(super) async fn enable_mfa_device(
    c: &mut Object,
    serial: &str,
    owner: &KeyOwner,
    enabled_at: i64,
    state: &TotpState,
    max_per_owner: usize,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let column = owner_column(&tx, owner).await?;
    let current: Option<Option<String>> = tx
        .query_opt("SELECT owner FROM mfa_device WHERE serial = $1", &[&serial])
        .await
        .map_err(backend)?
        .map(|r| r.get(0));
    match current {
        None => return Err(StoreError::NotFound(Entity::MfaDevice)),
        Some(Some(_)) => return Err(StoreError::AlreadyExists(Entity::MfaDevice)),
        Some(None) => {}
    }
    if devices_in_use(&tx, &column).await? >= max_per_owner {
        return Err(StoreError::LimitExceeded(Entity::MfaDevice));
    }
    let last_step = state.last_step.map(to_i64).transpose()?;
    tx.execute(
        "UPDATE mfa_device SET owner = $1, enabled_at = $2, last_step = $3, drift = $4,
             failures = 0, locked_until = NULL, lockouts = 0
         WHERE serial = $5 AND owner IS NULL",
        &[&column, &enabled_at, &last_step, &state.drift, &serial],
    )
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn deactivate_mfa_device(
    c: &mut Object,
    serial: &str,
    owner: &KeyOwner,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let column = owner_column(&tx, owner).await?;
    let n = tx
        .execute(
            "UPDATE mfa_device SET owner = NULL, enabled_at = NULL
             WHERE serial = $1 AND owner = $2",
            &[&serial, &column],
        )
        .await
        .map_err(backend)?;
    if n == 0 {
        return Err(StoreError::NotFound(Entity::MfaDevice));
    }
    tx.commit().await.map_err(backend)
}

pub(super) async fn delete_mfa_device(c: &mut Object, serial: &str) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let owner: Option<Option<String>> = tx
        .query_opt("SELECT owner FROM mfa_device WHERE serial = $1", &[&serial])
        .await
        .map_err(backend)?
        .map(|r| r.get(0));
    match owner {
        None => Err(StoreError::NotFound(Entity::MfaDevice)),
        Some(Some(_)) => Err(StoreError::DeleteConflict {
            entity: Entity::MfaDevice,
            dependents: Entity::User,
        }),
        Some(None) => {
            tx.execute(
                "DELETE FROM mfa_device WHERE serial = $1 AND owner IS NULL",
                &[&serial],
            )
            .await
            .map_err(backend)?;
            tx.commit().await.map_err(backend)
        }
    }
}

/// The replay compare-and-set, one statement: true when this call recorded `step`; false
/// when this or a later step was recorded first, by any replica.
pub(super) async fn totp_success(c: &Object, serial: &str, step: i64) -> Result<bool, StoreError> {
    let n = c
        .execute(
            "UPDATE mfa_device
             SET last_step = $1, failures = 0, locked_until = NULL, lockouts = 0
             WHERE serial = $2 AND owner IS NOT NULL
               AND (last_step IS NULL OR last_step < $1)",
            &[&step, &serial],
        )
        .await
        .map_err(backend)?;
    Ok(n == 1)
}

/// Counts a failure under the device's row lock: concurrent failures on several replicas
/// are each counted, so a lockout is reached as on one replica.
pub(super) async fn totp_failure(
    c: &mut Object,
    serial: &str,
    policy: &LockoutPolicy,
    now: i64,
) -> Result<TotpState, StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    let row = tx
        .query_opt(
            "SELECT last_step, drift, failures, locked_until, lockouts FROM mfa_device
             WHERE serial = $1 FOR UPDATE",
            &[&serial],
        )
        .await
        .map_err(backend)?
        .ok_or(StoreError::NotFound(Entity::MfaDevice))?;
    let last_step: Option<i64> = row.get(0);
    let state = TotpState {
        last_step: last_step.map(u64::try_from).transpose().map_err(backend)?,
        drift: row.get(1),
        failures: u32::try_from(row.get::<_, i64>(2)).map_err(backend)?,
        locked_until: row.get(3),
        lockouts: u32::try_from(row.get::<_, i64>(4)).map_err(backend)?,
    }
    .failed(policy, now);
    tx.execute(
        "UPDATE mfa_device SET failures = $1, locked_until = $2, lockouts = $3
         WHERE serial = $4",
        &[
            &i64::from(state.failures),
            &state.locked_until,
            &i64::from(state.lockouts),
            &serial,
        ],
    )
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)?;
    Ok(state)
}

pub(super) async fn resync_mfa_device(
    c: &mut Object,
    serial: &str,
    owner: &KeyOwner,
    expected_last_step: Option<u64>,
    state: &TotpState,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let column = owner_column(&tx, owner).await?;
    let last_step = state.last_step.map(to_i64).transpose()?;
    let expected = expected_last_step.map(to_i64).transpose()?;
    let n = tx
        .execute(
            "UPDATE mfa_device SET last_step = $1, drift = $2, failures = $3,
                 locked_until = $4, lockouts = $5
             WHERE serial = $6 AND owner = $7 AND last_step IS NOT DISTINCT FROM $8",
            &[
                &last_step,
                &state.drift,
                &i64::from(state.failures),
                &state.locked_until,
                &i64::from(state.lockouts),
                &serial,
                &column,
                &expected,
            ],
        )
        .await
        .map_err(backend)?;
    if n == 0 {
        return Err(StoreError::NotFound(Entity::MfaDevice));
    }
    tx.commit().await.map_err(backend)
}
