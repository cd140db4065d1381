//! TOTP MFA devices (virtual and hardware) and their replay and lockout state.

use rusqlite::{Connection, OptionalExtension, params};
use tokengate_verifier::totp::{LockoutPolicy, TotpAlgorithm, TotpParams, TotpState};

use super::group_commit::{HotResult, HotWrite};
use super::{ROOT_OWNER, SqliteStore, backend, exists_or_backend, owner_column, to_i64, to_u64};
use crate::seal::Sealer;
use crate::{Completion, Entity, KeyOwner, MfaDevice, MfaKind, StoreError, TotpCheck, TotpOutcome};

/// The replay compare-and-set: record `step` only if it is above the last accepted one.
pub(super) fn totp_success(tx: &Connection, serial: &str, step: i64) -> Result<bool, StoreError> {
    let n = tx
        .prepare_cached(
            "UPDATE mfa_device
             SET last_step = ?1, failures = 0, locked_until = NULL, lockouts = 0
             WHERE serial = ?2 AND owner IS NOT NULL
               AND (last_step IS NULL OR last_step < ?1)",
        )
        .and_then(|mut stmt| stmt.execute(params![step, serial]))
        .map_err(backend)?;
    Ok(n == 1)
}

pub(super) fn totp_failure(
    tx: &Connection,
    serial: &str,
    policy: &LockoutPolicy,
    now: i64,
) -> Result<TotpState, StoreError> {
    let row = tx
        .query_row(
            &format!("SELECT {DEVICE_COLUMNS} WHERE d.serial = ?1"),
            [serial],
            device_row,
        )
        .optional()
        .map_err(backend)?
        .ok_or(StoreError::NotFound(Entity::MfaDevice))?;
    let state = device_state(&row)?.failed(policy, now);
    write_totp_failure(tx, serial, &state)?;
    Ok(state)
}

pub(super) fn write_totp_failure(
    tx: &Connection,
    serial: &str,
    state: &TotpState,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE mfa_device SET failures = ?1, locked_until = ?2, lockouts = ?3 WHERE serial = ?4",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            state.failures,
            state.locked_until,
            state.lockouts,
            serial
        ])
    })
    .map_err(backend)?;
    Ok(())
}

pub(crate) fn seed_aad(serial: &str) -> String {
    format!("mfa_device/{serial}/seed")
}

pub(crate) struct DeviceRow {
    pub(crate) serial: String,
    pub(crate) kind: String,
    pub(crate) owner: Option<String>,
    pub(crate) owner_name: Option<String>,
    pub(crate) enabled_at: Option<i64>,
    pub(crate) created: i64,
    pub(crate) sealed: Vec<u8>,
    pub(crate) algorithm: String,
    pub(crate) digits: i64,
    pub(crate) period: i64,
    pub(crate) last_step: Option<i64>,
    pub(crate) drift: i64,
    pub(crate) failures: i64,
    pub(crate) locked_until: Option<i64>,
    pub(crate) lockouts: i64,
}

pub(super) const DEVICE_COLUMNS: &str =
    "d.serial, d.kind, d.owner, u.name, d.enabled_at, d.created,
     d.sealed_seed, d.algorithm, d.digits, d.period, d.last_step, d.drift, d.failures,
     d.locked_until, d.lockouts
     FROM mfa_device d LEFT JOIN iam_user u ON u.user_id = d.owner";

pub(super) fn device_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceRow> {
    Ok(DeviceRow {
        serial: r.get(0)?,
        kind: r.get(1)?,
        owner: r.get(2)?,
        owner_name: r.get(3)?,
        enabled_at: r.get(4)?,
        created: r.get(5)?,
        sealed: r.get(6)?,
        algorithm: r.get(7)?,
        digits: r.get(8)?,
        period: r.get(9)?,
        last_step: r.get(10)?,
        drift: r.get(11)?,
        failures: r.get(12)?,
        locked_until: r.get(13)?,
        lockouts: r.get(14)?,
    })
}

fn device_state(row: &DeviceRow) -> Result<TotpState, StoreError> {
    Ok(TotpState {
        last_step: row.last_step.map(to_u64).transpose()?,
        drift: row.drift,
        failures: u32::try_from(row.failures).map_err(backend)?,
        locked_until: row.locked_until,
        lockouts: u32::try_from(row.lockouts).map_err(backend)?,
    })
}

/// MFA devices of every kind that `owner_column` has in use.
pub(super) fn mfa_devices_in_use(tx: &Connection, owner_column: &str) -> Result<usize, StoreError> {
    let count: i64 = tx
        .query_row(
            "SELECT (SELECT count(*) FROM mfa_device WHERE owner = ?1)
                  + (SELECT count(*) FROM security_key WHERE owner = ?1)",
            [owner_column],
            |r| r.get(0),
        )
        .map_err(backend)?;
    Ok(usize::try_from(count).unwrap_or(usize::MAX))
}

/// A device from its row, the seed unsealed.
pub(crate) fn device_from_row(sealer: &Sealer, row: DeviceRow) -> Result<MfaDevice, StoreError> {
    let seed = sealer.open(&seed_aad(&row.serial), &row.sealed)?;
    let kind = match row.kind.as_str() {
        "virtual" => MfaKind::Virtual,
        "hardware" => MfaKind::Hardware,
        other => return Err(StoreError::Backend(format!("bad device kind {other:?}"))),
    };
    let algorithm = TotpAlgorithm::parse(&row.algorithm)
        .ok_or_else(|| StoreError::Backend(format!("bad algorithm {:?}", row.algorithm)))?;
    let params = TotpParams::new(
        algorithm,
        u8::try_from(row.digits).map_err(backend)?,
        to_u64(row.period)?,
    )
    .map_err(backend)?;
    let state = device_state(&row)?;
    let owner = match (row.owner.as_deref(), row.owner_name) {
        (None, _) => None,
        (Some(ROOT_OWNER), _) => Some(KeyOwner::Root),
        (Some(_), Some(name)) => Some(KeyOwner::User(name)),
        (Some(id), None) => {
            return Err(StoreError::Backend(format!(
                "device owner {id} does not exist"
            )));
        }
    };
    Ok(MfaDevice {
        serial: row.serial,
        kind,
        owner,
        enabled_at: row.enabled_at,
        created: row.created,
        seed,
        params,
        state,
    })
}

impl SqliteStore {
    fn devices_where(
        &self,
        clause: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<MfaDevice>, StoreError> {
        let rows: Vec<DeviceRow> = {
            let conn = self.read()?;
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {DEVICE_COLUMNS} WHERE {clause}"))
                .map_err(backend)?;
            stmt.query_map(args, device_row)
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)?
        };
        rows.into_iter()
            .map(|r| device_from_row(&self.sealer, r))
            .collect()
    }
}

pub(super) fn create_mfa_device(store: &SqliteStore, d: &MfaDevice) -> Result<(), StoreError> {
    store.write(|tx, sealer| {
        let owner = d.owner.as_ref().map(|o| owner_column(tx, o)).transpose()?;
        let sealed = sealer.seal(&seed_aad(&d.serial), d.seed.expose())?;
        tx.execute(
            "INSERT INTO mfa_device (serial, kind, owner, enabled_at, created, sealed_seed,
                 algorithm, digits, period, last_step, drift, failures, locked_until, lockouts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                d.serial,
                d.kind.as_str(),
                owner,
                d.enabled_at,
                d.created,
                sealed,
                d.params.algorithm.as_str(),
                d.params.digits,
                to_i64(d.params.period)?,
                d.state.last_step.map(to_i64).transpose()?,
                d.state.drift,
                d.state.failures,
                d.state.locked_until,
                d.state.lockouts,
            ],
        )
        .map_err(exists_or_backend(Entity::MfaDevice))?;
        Ok(())
    })
}

pub(super) fn mfa_device(
    store: &SqliteStore,
    serial: &str,
) -> Result<Option<MfaDevice>, StoreError> {
    Ok(store
        .devices_where("d.serial = ?1", &[&serial])?
        .into_iter()
        .next())
}

pub(super) fn mfa_devices_of(
    store: &SqliteStore,
    owner: &KeyOwner,
) -> Result<Vec<MfaDevice>, StoreError> {
    let column = owner_column(&*store.lock()?, owner)?;
    store.devices_where("d.owner = ?1 ORDER BY d.enabled_at, d.serial", &[&column])
}

pub(super) fn list_mfa_devices(
    store: &SqliteStore,
    assigned: Option<bool>,
) -> Result<Vec<MfaDevice>, StoreError> {
    let clause = match assigned {
        None => "1 ORDER BY d.serial",
        Some(true) => "d.owner IS NOT NULL ORDER BY d.serial",
        Some(false) => "d.owner IS NULL ORDER BY d.serial",
    };
    store.devices_where(clause, &[])
}

pub(super) fn enable_mfa_device(
    store: &SqliteStore,
    serial: &str,
    owner: &KeyOwner,
    enabled_at: i64,
    state: &TotpState,
    max_per_owner: usize,
) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let column = owner_column(tx, owner)?;
        let current: Option<Option<String>> = tx
            .query_row(
                "SELECT owner FROM mfa_device WHERE serial = ?1",
                [serial],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        match current {
            None => return Err(StoreError::NotFound(Entity::MfaDevice)),
            Some(Some(_)) => return Err(StoreError::AlreadyExists(Entity::MfaDevice)),
            Some(None) => {}
        }
        if mfa_devices_in_use(tx, &column)? >= max_per_owner {
            return Err(StoreError::LimitExceeded(Entity::MfaDevice));
        }
        tx.execute(
            "UPDATE mfa_device SET owner = ?1, enabled_at = ?2, last_step = ?3, drift = ?4,
                 failures = 0, locked_until = NULL, lockouts = 0
             WHERE serial = ?5 AND owner IS NULL",
            params![
                column,
                enabled_at,
                state.last_step.map(to_i64).transpose()?,
                state.drift,
                serial
            ],
        )
        .map_err(backend)?;
        Ok(())
    })
}

pub(super) fn deactivate_mfa_device(
    store: &SqliteStore,
    serial: &str,
    owner: &KeyOwner,
) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let column = owner_column(tx, owner)?;
        let n = tx
            .execute(
                "UPDATE mfa_device SET owner = NULL, enabled_at = NULL
                 WHERE serial = ?1 AND owner = ?2",
                params![serial, column],
            )
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(Entity::MfaDevice));
        }
        Ok(())
    })
}

pub(super) fn delete_mfa_device(store: &SqliteStore, serial: &str) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let owner: Option<Option<String>> = tx
            .query_row(
                "SELECT owner FROM mfa_device WHERE serial = ?1",
                [serial],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        match owner {
            None => Err(StoreError::NotFound(Entity::MfaDevice)),
            Some(Some(_)) => Err(StoreError::DeleteConflict {
                entity: Entity::MfaDevice,
                dependents: Entity::User,
            }),
            Some(None) => {
                tx.execute(
                    "DELETE FROM mfa_device WHERE serial = ?1 AND owner IS NULL",
                    [serial],
                )
                .map_err(backend)?;
                Ok(())
            }
        }
    })
}

pub(super) fn record_totp_success(
    store: &SqliteStore,
    serial: &str,
    step: u64,
) -> Result<bool, StoreError> {
    let step = to_i64(step)?;
    match &store.committer {
        Some(c) => match c.submit(HotWrite::TotpSuccess {
            serial: serial.to_owned(),
            step,
        })? {
            HotResult::Success(won) => Ok(won),
            _ => Err(StoreError::Backend("mismatched reply".into())),
        },
        None => store.write_login_state(|tx, _| totp_success(tx, serial, step)),
    }
}

pub(super) fn check_totp_then(
    store: &SqliteStore,
    check: TotpCheck,
    done: Completion<TotpOutcome>,
) {
    let Some(c) = &store.committer else {
        return done(
            store.write_login_state(|tx, sealer| {
                super::group_commit::totp_check(tx, sealer, &check)
            }),
        );
    };
    c.submit_then(
        HotWrite::TotpCheck(check),
        Box::new(move |result| {
            done(result.and_then(|r| match r {
                HotResult::Check(outcome) => Ok(outcome),
                _ => Err(StoreError::Backend("mismatched reply".into())),
            }))
        }),
    );
}

pub(super) fn record_totp_failure(
    store: &SqliteStore,
    serial: &str,
    policy: &LockoutPolicy,
    now: i64,
) -> Result<TotpState, StoreError> {
    match &store.committer {
        Some(c) => {
            let op = HotWrite::TotpFailure {
                serial: serial.to_owned(),
                policy: *policy,
                now,
            };
            match c.submit(op)? {
                HotResult::Failure(state) => Ok(state),
                _ => Err(StoreError::Backend("mismatched reply".into())),
            }
        }
        None => store.write_login_state(|tx, _| totp_failure(tx, serial, policy, now)),
    }
}

pub(super) fn resync_mfa_device(
    store: &SqliteStore,
    serial: &str,
    owner: &KeyOwner,
    expected_last_step: Option<u64>,
    state: &TotpState,
) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let column = owner_column(tx, owner)?;
        let n = tx
            .execute(
                "UPDATE mfa_device SET last_step = ?1, drift = ?2, failures = ?3,
                     locked_until = ?4, lockouts = ?5
                 WHERE serial = ?6 AND owner = ?7 AND last_step IS ?8",
                params![
                    state.last_step.map(to_i64).transpose()?,
                    state.drift,
                    state.failures,
                    state.locked_until,
                    state.lockouts,
                    serial,
                    column,
                    expected_last_step.map(to_i64).transpose()?,
                ],
            )
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(Entity::MfaDevice));
        }
        Ok(())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokengate_verifier::totp::{LockoutPolicy, TotpState};

    use crate::sqlite::SqliteStore;
    use crate::sqlite::fixtures::*;
    use crate::{Entity, KeyOwner, Store, StoreError};

    #[test]
    fn mfa_devices_enable_quota_and_delete() {
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        s.create_user(&user("alice")).unwrap();
        let alice = KeyOwner::User("alice".into());
        for i in 0..9 {
            s.create_mfa_device(&device(&format!("arn:aws:iam::000000000000:mfa/d{i}")))
                .unwrap();
        }
        assert_eq!(
            s.create_mfa_device(&device("arn:aws:iam::000000000000:mfa/d0"))
                .err(),
            Some(StoreError::AlreadyExists(Entity::MfaDevice))
        );
        let st = TotpState {
            last_step: Some(10),
            ..TotpState::default()
        };
        for i in 0..8 {
            s.enable_mfa_device(
                &format!("arn:aws:iam::000000000000:mfa/d{i}"),
                &alice,
                5,
                &st,
                8,
            )
            .unwrap();
        }
        assert_eq!(
            s.enable_mfa_device("arn:aws:iam::000000000000:mfa/d8", &alice, 5, &st, 8)
                .err(),
            Some(StoreError::LimitExceeded(Entity::MfaDevice))
        );
        assert_eq!(
            s.enable_mfa_device(
                "arn:aws:iam::000000000000:mfa/d0",
                &KeyOwner::Root,
                5,
                &st,
                8
            )
            .err(),
            Some(StoreError::AlreadyExists(Entity::MfaDevice))
        );
        let d0 = s
            .mfa_device("arn:aws:iam::000000000000:mfa/d0")
            .unwrap()
            .unwrap();
        assert_eq!(d0.owner, Some(alice.clone()));
        assert_eq!(d0.state.last_step, Some(10));
        assert_eq!(d0.seed.expose(), b"seed-bytes-of-a-device");
        assert_eq!(s.mfa_devices_of(&alice).unwrap().len(), 8);
        assert_eq!(s.list_mfa_devices(Some(false)).unwrap().len(), 1);
        assert!(matches!(
            s.delete_user("alice"),
            Err(StoreError::DeleteConflict { .. })
        ));
        assert!(matches!(
            s.delete_mfa_device("arn:aws:iam::000000000000:mfa/d0"),
            Err(StoreError::DeleteConflict { .. })
        ));
        s.deactivate_mfa_device("arn:aws:iam::000000000000:mfa/d0", &alice)
            .unwrap();
        s.delete_mfa_device("arn:aws:iam::000000000000:mfa/d0")
            .unwrap();
        assert!(
            s.mfa_device("arn:aws:iam::000000000000:mfa/d0")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn totp_success_is_compare_and_set_across_threads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let s = std::sync::Arc::new(SqliteStore::open(&path, &master()).unwrap());
        s.create_user(&user("alice")).unwrap();
        s.create_mfa_device(&device("SERIAL0001")).unwrap();
        let alice = KeyOwner::User("alice".into());
        s.enable_mfa_device("SERIAL0001", &alice, 1, &TotpState::default(), 8)
            .unwrap();
        // Eight threads race to use step 100; then step 100 again; then 99.
        let wins: usize = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || s.record_totp_success("SERIAL0001", 100).unwrap())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| usize::from(h.join().unwrap()))
            .sum();
        assert_eq!(wins, 1);
        assert!(!s.record_totp_success("SERIAL0001", 100).unwrap());
        assert!(!s.record_totp_success("SERIAL0001", 99).unwrap());
        assert!(s.record_totp_success("SERIAL0001", 101).unwrap());
        // A restarted process sees the mark.
        drop(s);
        let again = SqliteStore::open(&path, &master()).unwrap();
        assert!(!again.record_totp_success("SERIAL0001", 101).unwrap());
    }

    #[test]
    fn totp_failures_lock_out_durably() {
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        s.create_mfa_device(&device("SERIAL0002")).unwrap();
        s.enable_mfa_device("SERIAL0002", &KeyOwner::Root, 1, &TotpState::default(), 8)
            .unwrap();
        let policy = LockoutPolicy::default();
        for i in 1..5 {
            assert_eq!(
                s.record_totp_failure("SERIAL0002", &policy, 1000)
                    .unwrap()
                    .failures,
                i
            );
        }
        let locked = s.record_totp_failure("SERIAL0002", &policy, 1000).unwrap();
        assert_eq!(locked.locked_until, Some(1060));
        assert_eq!(
            s.mfa_device("SERIAL0002")
                .unwrap()
                .unwrap()
                .state
                .locked_until,
            Some(1060)
        );
        assert!(s.record_totp_success("SERIAL0002", 5).unwrap());
        let d = s.mfa_device("SERIAL0002").unwrap().unwrap();
        assert_eq!(
            (d.state.failures, d.state.lockouts, d.state.locked_until),
            (0, 0, None)
        );
    }

    #[test]
    fn resync_is_conditional_on_the_last_step() {
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        s.create_mfa_device(&device("SERIAL0003")).unwrap();
        let st = TotpState {
            last_step: Some(10),
            ..TotpState::default()
        };
        s.enable_mfa_device("SERIAL0003", &KeyOwner::Root, 1, &st, 8)
            .unwrap();
        let new = TotpState {
            last_step: Some(60),
            drift: 49,
            ..TotpState::default()
        };
        assert!(
            s.resync_mfa_device("SERIAL0003", &KeyOwner::Root, Some(9), &new)
                .is_err()
        );
        s.resync_mfa_device("SERIAL0003", &KeyOwner::Root, Some(10), &new)
            .unwrap();
        assert_eq!(s.mfa_device("SERIAL0003").unwrap().unwrap().state, new);
    }
}
