//! The embedded SQLite store (the default).
//!
//! One connection behind a mutex, WAL journal, `synchronous=FULL` (a commit is on disk
//! before the response that depends on it leaves), foreign keys on. Each trait method is
//! one transaction; conditional writes are expressed in SQL (unique constraints, `WHERE`
//! clauses on counts), never as a read in one transaction and a write in another.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, mpsc};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use tokengate_token::Secret;

use tokengate_verifier::totp::{LockoutPolicy, TotpAlgorithm, TotpParams, TotpState};

use crate::seal::Sealer;
use crate::{
    AccessKey, Account, Bootstrap, CeremonyKind, Challenge, Completion, Entity, KeyOwner,
    KeyProtocol, KeyStatus, KeyUse, KeyUseOutcome, MfaDevice, MfaKind, SecurityKey, Store,
    StoreError, StoredSigningKey, TotpCheck, TotpOutcome, User,
};

/// Schema migrations, applied in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE account (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    account_id  TEXT NOT NULL,
    created     INTEGER NOT NULL
);
CREATE TABLE service_secret (
    name    TEXT PRIMARY KEY,
    sealed  BLOB NOT NULL
);
CREATE TABLE signing_key (
    kid           TEXT PRIMARY KEY,
    sealed_pkcs8  BLOB NOT NULL,
    created       INTEGER NOT NULL,
    retired       INTEGER
);
CREATE TABLE iam_user (
    user_id  TEXT PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE COLLATE NOCASE,
    path     TEXT NOT NULL,
    created  INTEGER NOT NULL
);
CREATE TABLE access_key (
    access_key_id  TEXT PRIMARY KEY,
    owner_user_id  TEXT REFERENCES iam_user(user_id),
    status         TEXT NOT NULL CHECK (status IN ('Active', 'Inactive')),
    created        INTEGER NOT NULL,
    sealed_secret  BLOB NOT NULL
);
CREATE INDEX access_key_owner ON access_key(owner_user_id);
"#,
    r#"
CREATE TABLE mfa_device (
    serial        TEXT PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('virtual', 'hardware')),
    -- NULL: unassigned; 'root': the root user; else an iam_user.user_id.
    owner         TEXT,
    enabled_at    INTEGER,
    created       INTEGER NOT NULL,
    sealed_seed   BLOB NOT NULL,
    algorithm     TEXT NOT NULL,
    digits        INTEGER NOT NULL,
    period        INTEGER NOT NULL,
    last_step     INTEGER,
    drift         INTEGER NOT NULL DEFAULT 0,
    failures      INTEGER NOT NULL DEFAULT 0,
    locked_until  INTEGER,
    lockouts      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX mfa_device_owner ON mfa_device(owner);
"#,
    r#"
CREATE TABLE security_key (
    serial              TEXT PRIMARY KEY,
    -- 'root': the root user; else an iam_user.user_id (as mfa_device.owner).
    owner               TEXT NOT NULL,
    name                TEXT NOT NULL,
    protocol            TEXT NOT NULL CHECK (protocol IN ('fido2', 'u2f')),
    credential_id       BLOB NOT NULL UNIQUE,
    public_key          BLOB NOT NULL,
    sign_count          INTEGER NOT NULL CHECK (sign_count BETWEEN 0 AND 4294967295),
    backup_eligible     INTEGER NOT NULL CHECK (backup_eligible IN (0, 1)),
    aaguid              BLOB NOT NULL,
    attestation_format  TEXT NOT NULL,
    attestation         TEXT NOT NULL,
    user_handle         BLOB NOT NULL,
    enabled_at          INTEGER NOT NULL,
    last_used           INTEGER,
    possibly_cloned_at  INTEGER,
    failures            INTEGER NOT NULL DEFAULT 0,
    locked_until        INTEGER,
    lockouts            INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX security_key_owner ON security_key(owner);
CREATE TABLE challenge (
    id           TEXT PRIMARY KEY,
    ceremony     TEXT NOT NULL CHECK (ceremony IN ('register', 'authenticate')),
    requester    TEXT NOT NULL,
    owner        TEXT NOT NULL,
    serial       TEXT NOT NULL,
    protocol     TEXT NOT NULL CHECK (protocol IN ('fido2', 'u2f')),
    device_name  TEXT NOT NULL,
    challenge    BLOB NOT NULL,
    created      INTEGER NOT NULL,
    expires      INTEGER NOT NULL
);
CREATE INDEX challenge_expires ON challenge(expires);
CREATE INDEX challenge_requester ON challenge(requester);
"#,
];

/// Connections that serve reads beside the main one (file databases only; WAL lets
/// readers run while a writer commits).
const READERS: usize = 4;
/// Most replay-mark writes committed in one transaction (one fsync).
const MAX_BATCH: usize = 512;
/// Under load (the previous batch had at least [`LINGER_AFTER_BATCH`] writes), a batch
/// smaller than this waits up to [`LINGER`] for more writes before it commits: each commit
/// costs an fsync (≈ 100 µs of kernel CPU on the reference machine), and at ~12 000 logins/s
/// the wait turns batches of ~10 into batches of ~40 — a quarter of the fsyncs and half the
/// WAL writes (docs/benchmarks.md). A lightly loaded server never waits.
const LINGER_UNTIL_BATCH: usize = 64;
/// The previous batch size from which a batch lingers (see [`LINGER_UNTIL_BATCH`]).
const LINGER_AFTER_BATCH: usize = 8;
/// The longest a batch waits for company (see [`LINGER_UNTIL_BATCH`]).
const LINGER: std::time::Duration = std::time::Duration::from_micros(1_000);

/// Most entries a [`ReadCache`] holds before it starts over (a bound on memory, far above
/// IAM's quotas of users and keys per account).
const MAX_CACHED: usize = 1 << 20;

/// The SQLite-backed [`Store`].
///
/// One process at a time: the store holds an exclusive lock on `DB.lock` beside the
/// database for its lifetime, because its caches assume that every write goes through it.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    committer: Option<GroupCommitter>,
    sealer: Arc<Sealer>,
    /// Access keys by id, as stored (the secret still sealed).
    keys: ReadCache<KeyRow>,
    /// Users by lower-cased name (names are unique ignoring ASCII case, as SQLite's NOCASE).
    users: ReadCache<User>,
    /// Held for the store's lifetime; `None` for an in-memory store.
    _lock: Option<fs::File>,
}

/// A read-through cache of rows that only admin writes change (access keys, users), so that
/// the request path does not read them from SQLite each time: a WAL reader connection
/// drops its whole page cache whenever another connection commits, which on the login
/// path is every group commit (docs/benchmarks.md).
///
/// Coherence: every admin write clears the cache after its commit and bumps the
/// generation; a reader notes the generation before it reads the database and its insert
/// is dropped if the generation moved meanwhile. So an entry is never older than the last
/// admin write that returned, and a deactivated or deleted key stops working as soon as
/// the write that changed it has returned. Misses are not cached.
struct ReadCache<V> {
    map: RwLock<HashMap<String, V>>,
    generation: AtomicU64,
}

impl<V: Clone> ReadCache<V> {
    fn new() -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    fn get(&self, key: &str) -> Option<V> {
        self.map.read().ok()?.get(key).cloned()
    }

    /// The generation to pass to [`ReadCache::insert`]; read it before the database.
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches `value`, read from the database after `generation` was taken, unless an
    /// admin write has cleared the cache since.
    fn insert(&self, key: String, value: V, generation: u64) {
        let Ok(mut map) = self.map.write() else {
            return;
        };
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if map.len() >= MAX_CACHED {
            map.clear();
        }
        map.insert(key, value);
    }

    /// Forgets everything; call after an admin write has committed.
    fn clear(&self) {
        // A poisoned lock still guards a map; clear it all the same.
        let mut map = self
            .map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }
}

/// A write on the login path, batched by the [`GroupCommitter`].
enum HotWrite {
    TotpSuccess {
        serial: String,
        step: i64,
    },
    TotpFailure {
        serial: String,
        policy: LockoutPolicy,
        now: i64,
    },
    TotpCheck(TotpCheck),
    KeyUse(KeyUse),
    KeyFailure {
        serial: String,
        challenge_id: Option<String>,
        policy: LockoutPolicy,
        now: i64,
        possible_clone: bool,
    },
}

enum HotResult {
    Success(bool),
    Failure(TotpState),
    Check(TotpOutcome),
    KeyUse(KeyUseOutcome),
}

struct Job {
    op: HotWrite,
    reply: Completion<HotResult>,
}

/// Group commit: one thread with its own connection takes every queued login-path write,
/// runs them in order in one IMMEDIATE transaction and commits once, then answers each.
/// While it waits on one fsync the next batch queues up, so the fsync cost is shared by
/// every login in flight. A write is answered only after its commit is on disk, and the
/// statements keep their compare-and-set meaning inside a batch (they run in order).
struct GroupCommitter {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl GroupCommitter {
    fn start(mut conn: Connection, sealer: Arc<Sealer>) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("store-group-commit".into())
            .spawn(move || {
                let mut last_batch = 0;
                while let Ok(first) = rx.recv() {
                    let linger = last_batch >= LINGER_AFTER_BATCH;
                    let linger_until = std::time::Instant::now() + LINGER;
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        let next = match rx.try_recv() {
                            Ok(job) => Ok(job),
                            Err(_) if !linger || batch.len() >= LINGER_UNTIL_BATCH => break,
                            Err(_) => rx.recv_timeout(
                                linger_until.saturating_duration_since(std::time::Instant::now()),
                            ),
                        };
                        match next {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    last_batch = batch.len();
                    let results = run_batch(&mut conn, &sealer, &batch);
                    for (job, result) in batch.into_iter().zip(results) {
                        (job.reply)(result);
                    }
                }
            })
            .ok();
        Self {
            jobs: Mutex::new(Some(tx)),
            thread: Mutex::new(thread),
        }
    }

    /// Queues `op`; `reply` is called once its batch is committed (or failed).
    fn submit_then(&self, op: HotWrite, reply: Completion<HotResult>) {
        let sender = match self.jobs.lock() {
            Ok(jobs) => jobs.clone(),
            Err(_) => None,
        };
        let Some(sender) = sender else {
            reply(Err(StoreError::Backend("the store is closed".into())));
            return;
        };
        if let Err(mpsc::SendError(job)) = sender.send(Job { op, reply }) {
            (job.reply)(Err(StoreError::Backend(
                "the group-commit thread stopped".into(),
            )));
        }
    }

    /// Queues `op` and waits for its commit.
    fn submit(&self, op: HotWrite) -> Result<HotResult, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit_then(
            op,
            Box::new(move |result| {
                // The waiter below is still there: it blocks on this channel.
                let _ = tx.send(result);
            }),
        );
        rx.recv()
            .map_err(|_| StoreError::Backend("the group-commit thread stopped".into()))?
    }
}

impl Drop for GroupCommitter {
    fn drop(&mut self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        if let Some(thread) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = thread.join();
        }
    }
}

fn run_batch(
    conn: &mut Connection,
    sealer: &Sealer,
    batch: &[Job],
) -> Vec<Result<HotResult, StoreError>> {
    let fail_all = |e: StoreError| batch.iter().map(|_| Err(e.clone())).collect();
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return fail_all(backend(e)),
    };
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let result = match &job.op {
            HotWrite::TotpSuccess { serial, step } => {
                totp_success(&tx, serial, *step).map(HotResult::Success)
            }
            HotWrite::TotpFailure {
                serial,
                policy,
                now,
            } => totp_failure(&tx, serial, policy, *now).map(HotResult::Failure),
            HotWrite::TotpCheck(check) => totp_check(&tx, sealer, check).map(HotResult::Check),
            HotWrite::KeyUse(key_use) => key_use_cas(&tx, key_use).map(HotResult::KeyUse),
            HotWrite::KeyFailure {
                serial,
                challenge_id,
                policy,
                now,
                possible_clone,
            } => key_failure(
                &tx,
                serial,
                challenge_id.as_deref(),
                policy,
                *now,
                *possible_clone,
            )
            .map(HotResult::Failure),
        };
        // A backend failure poisons the transaction: nothing of this batch is kept.
        if let Err(StoreError::Backend(e)) = &result {
            return fail_all(StoreError::Backend(e.clone()));
        }
        results.push(result);
    }
    match tx.commit() {
        Ok(()) => results,
        Err(e) => fail_all(backend(e)),
    }
}

/// The replay compare-and-set: record `step` only if it is above the last accepted one.
fn totp_success(tx: &Connection, serial: &str, step: i64) -> Result<bool, StoreError> {
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

fn totp_failure(
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

fn write_totp_failure(tx: &Connection, serial: &str, state: &TotpState) -> Result<(), StoreError> {
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

/// A TOTP login in one transaction: read the device, verify the code, then record the
/// step (the replay compare-and-set) or the failure. Run by the group-commit thread, whose
/// connection keeps its page cache across its own commits, so the read is cheap; and as
/// the read and the write share a transaction, the state verified against is the state
/// written over.
fn totp_check(tx: &Connection, sealer: &Sealer, c: &TotpCheck) -> Result<TotpOutcome, StoreError> {
    let row = tx
        .prepare_cached(&format!("SELECT {DEVICE_COLUMNS} WHERE d.serial = ?1"))
        .and_then(|mut stmt| stmt.query_row([&c.serial], device_row).optional())
        .map_err(backend)?;
    let device = row.map(|row| device_from_row(sealer, row)).transpose()?;
    let state = device.as_ref().map(|d| d.state).unwrap_or_default();
    crate::settle_totp_check(
        device.as_ref(),
        c,
        // Cannot lose inside this transaction; it states its expectation all the same.
        |step| totp_success(tx, &c.serial, to_i64(step)?),
        // The state was read in this transaction: count the failure from it.
        || {
            let failed = state.failed(&c.policy, c.now);
            write_totp_failure(tx, &c.serial, &failed)?;
            Ok(failed)
        },
    )
}

/// A security-key login, in one statement pair: spend the challenge (it must still exist,
/// unexpired, for this key), then the counter compare-and-set. A lost race on either is a
/// replay; the challenge stays spent either way.
fn key_use_cas(tx: &Connection, u: &KeyUse) -> Result<KeyUseOutcome, StoreError> {
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

fn key_failure(
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

fn lockout_state(
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

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

/// Maps a unique-constraint violation to `AlreadyExists(entity)`, anything else to a
/// backend error: the compare-and-set of an insert.
fn exists_or_backend(entity: Entity) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| {
        if is_unique_violation(&e) {
            StoreError::AlreadyExists(entity)
        } else {
            backend(e)
        }
    }
}

fn key_aad(access_key_id: &str) -> String {
    format!("access_key/{access_key_id}/secret")
}

fn secret_aad(name: &str) -> String {
    format!("service_secret/{name}")
}

fn seed_aad(serial: &str) -> String {
    format!("mfa_device/{serial}/seed")
}

/// The `owner` column value for `owner`: `root` or the user's id.
fn owner_column(tx: &Connection, owner: &KeyOwner) -> Result<String, StoreError> {
    Ok(SqliteStore::owner_id(tx, owner)?.unwrap_or_else(|| ROOT_OWNER.to_owned()))
}

const ROOT_OWNER: &str = "root";

fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(backend)
}

fn to_u64(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(backend)
}

struct DeviceRow {
    serial: String,
    kind: String,
    owner: Option<String>,
    owner_name: Option<String>,
    enabled_at: Option<i64>,
    created: i64,
    sealed: Vec<u8>,
    algorithm: String,
    digits: i64,
    period: i64,
    last_step: Option<i64>,
    drift: i64,
    failures: i64,
    locked_until: Option<i64>,
    lockouts: i64,
}

const DEVICE_COLUMNS: &str = "d.serial, d.kind, d.owner, u.name, d.enabled_at, d.created,
     d.sealed_seed, d.algorithm, d.digits, d.period, d.last_step, d.drift, d.failures,
     d.locked_until, d.lockouts
     FROM mfa_device d LEFT JOIN iam_user u ON u.user_id = d.owner";

fn device_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceRow> {
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

/// The owner a row's `owner` column and its joined user name describe.
fn owner_from(column: &str, name: Option<String>) -> Option<KeyOwner> {
    match (column, name) {
        (ROOT_OWNER, _) => Some(KeyOwner::Root),
        (_, Some(name)) => Some(KeyOwner::User(name)),
        (_, None) => None,
    }
}

struct SecurityKeyRow {
    serial: String,
    owner: String,
    owner_name: Option<String>,
    name: String,
    protocol: String,
    credential_id: Vec<u8>,
    public_key: Vec<u8>,
    sign_count: i64,
    backup_eligible: bool,
    aaguid: Vec<u8>,
    attestation_format: String,
    attestation: String,
    user_handle: Vec<u8>,
    enabled_at: i64,
    last_used: Option<i64>,
    possibly_cloned_at: Option<i64>,
    failures: i64,
    locked_until: Option<i64>,
    lockouts: i64,
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

fn row_to_security_key(row: SecurityKeyRow) -> Result<SecurityKey, StoreError> {
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

type ChallengeRow = (
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
fn row_to_challenge(row: ChallengeRow) -> Result<Option<Challenge>, StoreError> {
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

/// MFA devices of every kind that `owner_column` has in use.
fn mfa_devices_in_use(tx: &Connection, owner_column: &str) -> Result<usize, StoreError> {
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

fn signing_aad(kid: &str) -> String {
    format!("signing_key/{kid}/pkcs8")
}

/// Takes the exclusive lock on `DB.lock` (created 0600) that says this process serves the
/// database at `path`. A lock file of its own, not the database: SQLite's POSIX locks on
/// the database would be dropped when any other descriptor of it is closed.
fn lock_database(path: &Path) -> Result<fs::File, StoreError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = Path::new(&lock_path);
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(lock_path)
        .map_err(|e| StoreError::Backend(format!("{}: {e}", lock_path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(StoreError::Busy(path.display().to_string())),
        Err(fs::TryLockError::Error(e)) => {
            Err(StoreError::Backend(format!("{}: {e}", lock_path.display())))
        }
    }
}

impl SqliteStore {
    /// Opens (creating with mode 0600 if needed) the database at `path` and migrates it.
    ///
    /// Fails with [`StoreError::Busy`] when another process (or another store in this
    /// process) has the database open.
    pub fn open(path: &Path, master_key: &Secret) -> Result<Self, StoreError> {
        let lock = lock_database(path)?;
        // Create the file ourselves so that it is 0600 from its first byte; SQLite gives
        // its -wal and -shm files the same mode.
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
        let conn = Connection::open(path).map_err(backend)?;
        let mut store = Self::with_connection(conn, master_key)?;
        let open_more = || -> Result<Connection, StoreError> {
            let c = Connection::open(path).map_err(backend)?;
            configure(&c)?;
            Ok(c)
        };
        store.readers = (0..READERS)
            .map(|_| open_more().map(Mutex::new))
            .collect::<Result<_, _>>()?;
        store.committer = Some(GroupCommitter::start(open_more()?, store.sealer.clone()));
        store._lock = Some(lock);
        Ok(store)
    }

    /// An in-memory store, for tests.
    pub fn open_in_memory(master_key: &Secret) -> Result<Self, StoreError> {
        Self::with_connection(Connection::open_in_memory().map_err(backend)?, master_key)
    }

    fn with_connection(mut conn: Connection, master_key: &Secret) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        configure(&conn)?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            readers: Vec::new(),
            next_reader: AtomicUsize::new(0),
            committer: None,
            sealer: Arc::new(Sealer::new(master_key)?),
            keys: ReadCache::new(),
            users: ReadCache::new(),
            _lock: None,
        })
    }

    /// Turns off fsync on commit for this process's admin writes — for seeding a test or
    /// benchmark database in bulk only: a crash loses recent writes. Login-path writes (the
    /// group commit) stay durable.
    pub fn relax_durability_for_bulk_load(&self) -> Result<(), StoreError> {
        self.lock()?
            .pragma_update(None, "synchronous", "OFF")
            .map_err(backend)
    }

    /// A connection for a read: one of the reader pool (a free one if there is), or the
    /// main connection for an in-memory database.
    fn read(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        if self.readers.is_empty() {
            return self.lock();
        }
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let n = self.readers.len();
        for i in 0..n {
            if let Some(Ok(guard)) = self.readers.get((start + i) % n).map(Mutex::try_lock) {
                return Ok(guard);
            }
        }
        self.readers
            .get(start % n)
            .ok_or_else(|| StoreError::Backend("no reader".into()))?
            .lock()
            .map_err(|_| StoreError::Backend("store mutex poisoned".into()))
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn
            .lock()
            .map_err(|_| StoreError::Backend("store mutex poisoned".into()))
    }

    /// Runs `f` in one IMMEDIATE transaction and commits it when `f` succeeds.
    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>, &Sealer) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let out = f(&tx, &self.sealer);
        let committed = match out {
            Ok(out) => tx.commit().map(|()| out).map_err(backend),
            Err(e) => Err(e),
        };
        // Every admin write goes through here: whatever it changed, no cached row survives
        // it (ReadCache).
        self.keys.clear();
        self.users.clear();
        committed
    }

    fn owner_id(tx: &Connection, owner: &KeyOwner) -> Result<Option<String>, StoreError> {
        match owner {
            KeyOwner::Root => Ok(None),
            KeyOwner::User(name) => tx
                .query_row(
                    "SELECT user_id FROM iam_user WHERE name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?
                .map(Some)
                .ok_or(StoreError::NotFound(Entity::User)),
        }
    }

    fn insert_access_key(
        tx: &Connection,
        sealer: &Sealer,
        owner_id: Option<&str>,
        key: &AccessKey,
    ) -> Result<(), StoreError> {
        let sealed = sealer.seal(&key_aad(&key.access_key_id), key.secret.expose())?;
        tx.execute(
            "INSERT INTO access_key (access_key_id, owner_user_id, status, created, sealed_secret)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                key.access_key_id,
                owner_id,
                key.status.as_str(),
                key.created,
                sealed
            ],
        )
        .map_err(exists_or_backend(Entity::AccessKey))?;
        Ok(())
    }

    fn row_to_key(&self, row: KeyRow) -> Result<AccessKey, StoreError> {
        let secret = self
            .sealer
            .open(&key_aad(&row.access_key_id), &row.sealed)?;
        let status = match row.status.as_str() {
            "Active" => KeyStatus::Active,
            "Inactive" => KeyStatus::Inactive,
            other => return Err(StoreError::Backend(format!("bad key status {other:?}"))),
        };
        let owner = row.owner_name.map_or(KeyOwner::Root, KeyOwner::User);
        Ok(AccessKey {
            access_key_id: row.access_key_id,
            owner,
            status,
            created: row.created,
            secret,
        })
    }
}

/// A device from its row, the seed unsealed.
fn device_from_row(sealer: &Sealer, row: DeviceRow) -> Result<MfaDevice, StoreError> {
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

#[derive(Clone)]
struct KeyRow {
    access_key_id: String,
    owner_name: Option<String>,
    status: String,
    created: i64,
    sealed: Vec<u8>,
}

const KEY_COLUMNS: &str = "k.access_key_id, u.name, k.status, k.created, k.sealed_secret
     FROM access_key k LEFT JOIN iam_user u ON u.user_id = k.owner_user_id";

fn key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRow> {
    Ok(KeyRow {
        access_key_id: r.get(0)?,
        owner_name: r.get(1)?,
        status: r.get(2)?,
        created: r.get(3)?,
        sealed: r.get(4)?,
    })
}

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        user_id: r.get(0)?,
        name: r.get(1)?,
        path: r.get(2)?,
        created: r.get(3)?,
    })
}

/// Per-connection settings: `synchronous=FULL` (a commit is on disk before it returns),
/// foreign keys, a busy timeout for the other connections' locks.
fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(backend)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(backend)?;
    // 64 MiB of page cache per connection: the login path touches one key, one user and
    // one device row per request, spread over the whole table.
    conn.pragma_update(None, "cache_size", -65_536)
        .map_err(backend)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(backend)?;
    // The query-planner stability guarantee: without it SQLite marks a statement whose
    // plan *could* depend on a bound value (any `?` compared inside a join) to be
    // re-prepared — re-parsed and re-planned — each time a new value is bound, which made
    // every cached login-path read cost a full parse (docs/benchmarks.md). Our statements
    // are point reads and writes with one right plan.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(backend)?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let applied: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(backend)?;
    let applied = usize::try_from(applied).map_err(backend)?;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "the database has schema version {applied}, newer than this tokengate knows ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction().map_err(backend)?;
        tx.execute_batch(sql).map_err(backend)?;
        let version = i64::try_from(i + 1).map_err(backend)?;
        tx.pragma_update(None, "user_version", version)
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
    }
    Ok(())
}

impl Store for SqliteStore {
    fn account(&self) -> Result<Option<Account>, StoreError> {
        self.lock()?
            .query_row(
                "SELECT account_id, created FROM account WHERE id = 1",
                [],
                |r| {
                    Ok(Account {
                        account_id: r.get(0)?,
                        created: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(backend)
    }

    fn bootstrap(&self, b: &Bootstrap) -> Result<(), StoreError> {
        self.write(|tx, sealer| {
            let inserted = tx
                .execute(
                    "INSERT OR IGNORE INTO account (id, account_id, created) VALUES (1, ?1, ?2)",
                    params![b.account.account_id, b.account.created],
                )
                .map_err(backend)?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists(Entity::Account));
            }
            Self::insert_access_key(tx, sealer, None, &b.root_key)?;
            let name = crate::DERIVATION_KEY;
            let sealed = sealer.seal(&secret_aad(name), b.derivation_key.expose())?;
            tx.execute(
                "INSERT INTO service_secret (name, sealed) VALUES (?1, ?2)",
                params![name, sealed],
            )
            .map_err(backend)?;
            let k = &b.signing_key;
            let sealed = sealer.seal(&signing_aad(&k.kid), k.pkcs8.expose())?;
            tx.execute(
                "INSERT INTO signing_key (kid, sealed_pkcs8, created, retired)
                 VALUES (?1, ?2, ?3, NULL)",
                params![k.kid, sealed, k.created],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn service_secret(&self, name: &str) -> Result<Option<Secret>, StoreError> {
        let sealed: Option<Vec<u8>> = self
            .lock()?
            .query_row(
                "SELECT sealed FROM service_secret WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        sealed
            .map(|s| self.sealer.open(&secret_aad(name), &s))
            .transpose()
    }

    fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        let rows: Vec<(String, Vec<u8>, i64, Option<i64>)> = {
            let conn = self.lock()?;
            let mut stmt = conn
                .prepare(
                    "SELECT kid, sealed_pkcs8, created, retired FROM signing_key
                     ORDER BY created DESC, kid",
                )
                .map_err(backend)?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)?
        };
        rows.into_iter()
            .map(|(kid, sealed, created, retired)| {
                let pkcs8 = self.sealer.open(&signing_aad(&kid), &sealed)?;
                Ok(StoredSigningKey {
                    kid,
                    pkcs8,
                    created,
                    retired,
                })
            })
            .collect()
    }

    fn rotate_signing_key(
        &self,
        expected_current: &str,
        key: &StoredSigningKey,
    ) -> Result<(), StoreError> {
        self.write(|tx, sealer| {
            let current: Option<String> = tx
                .query_row(
                    "SELECT kid FROM signing_key WHERE retired IS NULL
                     ORDER BY created DESC, kid LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            if current.as_deref() != Some(expected_current) {
                return Err(StoreError::AlreadyExists(Entity::Account));
            }
            tx.execute(
                "UPDATE signing_key SET retired = ?1 WHERE retired IS NULL",
                params![key.created],
            )
            .map_err(backend)?;
            let sealed = sealer.seal(&signing_aad(&key.kid), key.pkcs8.expose())?;
            tx.execute(
                "INSERT INTO signing_key (kid, sealed_pkcs8, created, retired)
                 VALUES (?1, ?2, ?3, NULL)",
                params![key.kid, sealed, key.created],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn create_user(&self, user: &User) -> Result<(), StoreError> {
        self.write(|tx, _| {
            tx.execute(
                "INSERT INTO iam_user (user_id, name, path, created) VALUES (?1, ?2, ?3, ?4)",
                params![user.user_id, user.name, user.path, user.created],
            )
            .map_err(exists_or_backend(Entity::User))?;
            Ok(())
        })
    }

    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        let key = name.to_ascii_lowercase();
        if let Some(user) = self.users.get(&key) {
            return Ok(Some(user));
        }
        let generation = self.users.generation();
        let user = self
            .read()?
            .prepare_cached("SELECT user_id, name, path, created FROM iam_user WHERE name = ?1")
            .and_then(|mut stmt| stmt.query_row([name], user_row).optional())
            .map_err(backend)?;
        if let Some(user) = &user {
            self.users.insert(key, user.clone(), generation);
        }
        Ok(user)
    }

    fn list_users(
        &self,
        path_prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<User>, StoreError> {
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare(
                "SELECT user_id, name, path, created FROM iam_user
                 WHERE substr(path, 1, length(?1)) = ?1 AND (?2 IS NULL OR name > ?2)
                 ORDER BY name LIMIT ?3",
            )
            .map_err(backend)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        stmt.query_map(params![path_prefix, after, limit], user_row)
            .map_err(backend)?
            .collect::<Result<_, _>>()
            .map_err(backend)
    }

    fn delete_user(&self, name: &str) -> Result<(), StoreError> {
        self.write(|tx, _| {
            let user_id = Self::owner_id(tx, &KeyOwner::User(name.to_owned()))?;
            let keys: i64 = tx
                .query_row(
                    "SELECT count(*) FROM access_key WHERE owner_user_id = ?1",
                    [&user_id],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if keys > 0 {
                return Err(StoreError::DeleteConflict {
                    entity: Entity::User,
                    dependents: Entity::AccessKey,
                });
            }
            let devices = match &user_id {
                Some(id) => mfa_devices_in_use(tx, id)?,
                None => 0,
            };
            if devices > 0 {
                return Err(StoreError::DeleteConflict {
                    entity: Entity::User,
                    dependents: Entity::MfaDevice,
                });
            }
            tx.execute("DELETE FROM iam_user WHERE user_id = ?1", [&user_id])
                .map_err(backend)?;
            Ok(())
        })
    }

    fn create_access_key(&self, key: &AccessKey, max_per_owner: usize) -> Result<(), StoreError> {
        self.write(|tx, sealer| {
            let owner_id = Self::owner_id(tx, &key.owner)?;
            let count: i64 = tx
                .query_row(
                    "SELECT count(*) FROM access_key WHERE owner_user_id IS ?1",
                    [&owner_id],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if usize::try_from(count).unwrap_or(usize::MAX) >= max_per_owner {
                return Err(StoreError::LimitExceeded(Entity::AccessKey));
            }
            Self::insert_access_key(tx, sealer, owner_id.as_deref(), key)
        })
    }

    fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>, StoreError> {
        if let Some(row) = self.keys.get(access_key_id) {
            return self.row_to_key(row).map(Some);
        }
        let generation = self.keys.generation();
        let row = self
            .read()?
            .prepare_cached(&format!("SELECT {KEY_COLUMNS} WHERE k.access_key_id = ?1"))
            .and_then(|mut stmt| stmt.query_row([access_key_id], key_row).optional())
            .map_err(backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        // The secret stays sealed in the cache; it is opened for each use.
        self.keys
            .insert(access_key_id.to_owned(), row.clone(), generation);
        self.row_to_key(row).map(Some)
    }

    fn access_keys_of(&self, owner: &KeyOwner) -> Result<Vec<AccessKey>, StoreError> {
        let rows: Vec<KeyRow> = {
            let conn = self.lock()?;
            let owner_id = Self::owner_id(&conn, owner)?;
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {KEY_COLUMNS} WHERE k.owner_user_id IS ?1
                     ORDER BY k.created, k.access_key_id"
                ))
                .map_err(backend)?;
            stmt.query_map([owner_id], key_row)
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)?
        };
        rows.into_iter().map(|r| self.row_to_key(r)).collect()
    }

    fn set_access_key_status(
        &self,
        owner: &KeyOwner,
        access_key_id: &str,
        status: KeyStatus,
    ) -> Result<(), StoreError> {
        self.write(|tx, _| {
            let owner_id = Self::owner_id(tx, owner)?;
            let n = tx
                .execute(
                    "UPDATE access_key SET status = ?1
                     WHERE access_key_id = ?2 AND owner_user_id IS ?3",
                    params![status.as_str(), access_key_id, owner_id],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(Entity::AccessKey));
            }
            Ok(())
        })
    }

    fn delete_access_key(&self, owner: &KeyOwner, access_key_id: &str) -> Result<(), StoreError> {
        self.write(|tx, _| {
            let owner_id = Self::owner_id(tx, owner)?;
            let n = tx
                .execute(
                    "DELETE FROM access_key WHERE access_key_id = ?1 AND owner_user_id IS ?2",
                    params![access_key_id, owner_id],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(Entity::AccessKey));
            }
            Ok(())
        })
    }

    fn create_mfa_device(&self, d: &MfaDevice) -> Result<(), StoreError> {
        self.write(|tx, sealer| {
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

    fn mfa_device(&self, serial: &str) -> Result<Option<MfaDevice>, StoreError> {
        Ok(self
            .devices_where("d.serial = ?1", &[&serial])?
            .into_iter()
            .next())
    }

    fn mfa_devices_of(&self, owner: &KeyOwner) -> Result<Vec<MfaDevice>, StoreError> {
        let column = owner_column(&*self.lock()?, owner)?;
        self.devices_where("d.owner = ?1 ORDER BY d.enabled_at, d.serial", &[&column])
    }

    fn list_mfa_devices(&self, assigned: Option<bool>) -> Result<Vec<MfaDevice>, StoreError> {
        let clause = match assigned {
            None => "1 ORDER BY d.serial",
            Some(true) => "d.owner IS NOT NULL ORDER BY d.serial",
            Some(false) => "d.owner IS NULL ORDER BY d.serial",
        };
        self.devices_where(clause, &[])
    }

    fn enable_mfa_device(
        &self,
        serial: &str,
        owner: &KeyOwner,
        enabled_at: i64,
        state: &TotpState,
        max_per_owner: usize,
    ) -> Result<(), StoreError> {
        self.write(|tx, _| {
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

    fn deactivate_mfa_device(&self, serial: &str, owner: &KeyOwner) -> Result<(), StoreError> {
        self.write(|tx, _| {
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

    fn delete_mfa_device(&self, serial: &str) -> Result<(), StoreError> {
        self.write(|tx, _| {
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

    fn record_totp_success(&self, serial: &str, step: u64) -> Result<bool, StoreError> {
        let step = to_i64(step)?;
        match &self.committer {
            Some(c) => match c.submit(HotWrite::TotpSuccess {
                serial: serial.to_owned(),
                step,
            })? {
                HotResult::Success(won) => Ok(won),
                _ => Err(StoreError::Backend("mismatched reply".into())),
            },
            None => self.write(|tx, _| totp_success(tx, serial, step)),
        }
    }

    fn check_totp_then(&self, check: TotpCheck, done: Completion<TotpOutcome>) {
        let Some(c) = &self.committer else {
            return done(self.write(|tx, sealer| totp_check(tx, sealer, &check)));
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

    fn record_totp_failure(
        &self,
        serial: &str,
        policy: &LockoutPolicy,
        now: i64,
    ) -> Result<TotpState, StoreError> {
        match &self.committer {
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
            None => self.write(|tx, _| totp_failure(tx, serial, policy, now)),
        }
    }

    fn resync_mfa_device(
        &self,
        serial: &str,
        owner: &KeyOwner,
        expected_last_step: Option<u64>,
        state: &TotpState,
    ) -> Result<(), StoreError> {
        self.write(|tx, _| {
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

    fn create_challenge(&self, c: &Challenge, max_per_requester: usize) -> Result<(), StoreError> {
        self.write(|tx, _| {
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

    fn challenge(&self, id: &str) -> Result<Option<Challenge>, StoreError> {
        let row = self
            .read()?
            .prepare_cached(&format!("SELECT {CHALLENGE_COLUMNS} WHERE c.id = ?1"))
            .and_then(|mut stmt| stmt.query_row([id], challenge_row).optional())
            .map_err(backend)?;
        Ok(row.map(row_to_challenge).transpose()?.flatten())
    }

    fn discard_challenge(&self, id: &str) -> Result<(), StoreError> {
        self.write(|tx, _| {
            tx.execute("DELETE FROM challenge WHERE id = ?1", [id])
                .map_err(backend)?;
            Ok(())
        })
    }

    fn enable_security_key(
        &self,
        challenge_id: &str,
        now: i64,
        key: &SecurityKey,
        max_devices: usize,
    ) -> Result<(), StoreError> {
        self.write(|tx, _| {
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

    fn security_key(&self, serial: &str) -> Result<Option<SecurityKey>, StoreError> {
        let row = self
            .read()?
            .prepare_cached(&format!(
                "SELECT {SECURITY_KEY_COLUMNS} WHERE k.serial = ?1"
            ))
            .and_then(|mut stmt| stmt.query_row([serial], security_key_row).optional())
            .map_err(backend)?;
        row.map(row_to_security_key).transpose()
    }

    fn security_keys_of(&self, owner: &KeyOwner) -> Result<Vec<SecurityKey>, StoreError> {
        let rows: Vec<SecurityKeyRow> = {
            let conn = self.read()?;
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

    fn delete_security_key(&self, serial: &str, owner: &KeyOwner) -> Result<(), StoreError> {
        self.write(|tx, _| {
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

    fn record_security_key_use(&self, key_use: &KeyUse) -> Result<KeyUseOutcome, StoreError> {
        match &self.committer {
            Some(c) => match c.submit(HotWrite::KeyUse(key_use.clone()))? {
                HotResult::KeyUse(outcome) => Ok(outcome),
                _ => Err(StoreError::Backend("mismatched reply".into())),
            },
            None => self.write(|tx, _| key_use_cas(tx, key_use)),
        }
    }

    fn record_security_key_use_then(&self, key_use: &KeyUse, done: Completion<KeyUseOutcome>) {
        let Some(c) = &self.committer else {
            return done(self.record_security_key_use(key_use));
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

    fn record_security_key_failure(
        &self,
        serial: &str,
        challenge_id: Option<&str>,
        policy: &LockoutPolicy,
        now: i64,
        possible_clone: bool,
    ) -> Result<TotpState, StoreError> {
        match &self.committer {
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
            None => self
                .write(|tx, _| key_failure(tx, serial, challenge_id, policy, now, possible_clone)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokengate_verifier::totp::{self, Refusal};

    fn master() -> Secret {
        Secret::new(vec![9u8; 32])
    }

    fn key(id: &str, owner: KeyOwner) -> AccessKey {
        AccessKey {
            access_key_id: id.into(),
            owner,
            status: KeyStatus::Active,
            created: 1,
            secret: Secret::from(format!("secret-of-{id}")),
        }
    }

    fn user(name: &str) -> User {
        User {
            user_id: format!("AIDA{name}"),
            name: name.into(),
            path: "/".into(),
            created: 1,
        }
    }

    fn bootstrap() -> Bootstrap {
        Bootstrap {
            account: Account {
                account_id: "000000000000".into(),
                created: 1,
            },
            root_key: key("AKIAROOT", KeyOwner::Root),
            derivation_key: Secret::new(vec![1; 32]),
            signing_key: StoredSigningKey {
                kid: "kid1".into(),
                pkcs8: Secret::new(vec![2; 10]),
                created: 1,
                retired: None,
            },
        }
    }

    fn device(serial: &str) -> MfaDevice {
        MfaDevice {
            serial: serial.into(),
            kind: MfaKind::Virtual,
            owner: None,
            enabled_at: None,
            created: 1,
            seed: Secret::new(b"seed-bytes-of-a-device".to_vec()),
            params: TotpParams::AWS,
            state: TotpState::default(),
        }
    }

    fn security_key(serial: &str, owner: KeyOwner, credential_id: &[u8]) -> SecurityKey {
        SecurityKey {
            serial: serial.into(),
            owner,
            name: "yubikey".into(),
            protocol: KeyProtocol::Fido2,
            credential_id: credential_id.to_vec(),
            public_key_cose: vec![0xa5, 1, 2],
            sign_count: 7,
            backup_eligible: false,
            aaguid: [3; 16],
            attestation_format: "packed".into(),
            attestation: "trusted: CN=Test CA".into(),
            user_handle: b"AIDAalice".to_vec(),
            enabled_at: 100,
            last_used: None,
            possibly_cloned_at: None,
            lockout: TotpState::default(),
        }
    }

    fn challenge(id: &str, ceremony: CeremonyKind, owner: KeyOwner, serial: &str) -> Challenge {
        Challenge {
            id: id.into(),
            ceremony,
            requester: "arn:aws:iam::000000000000:root".into(),
            owner,
            serial: serial.into(),
            protocol: KeyProtocol::Fido2,
            device_name: "yubikey".into(),
            challenge: vec![0x42; 32],
            created: 100,
            expires: 220,
        }
    }

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
        // A user with a security key cannot be deleted.
        for i in 0..7 {
            let serial = format!("arn:aws:iam::000000000000:mfa/d{i}");
            s.deactivate_mfa_device(&serial, &alice).unwrap();
        }
        assert!(matches!(
            s.delete_user("alice"),
            Err(StoreError::DeleteConflict { .. })
        ));
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

    /// The code of the test device (`device()`'s seed) at `step`.
    fn code_at(step: u64) -> String {
        totp::Generator::new(b"seed-bytes-of-a-device", TotpParams::AWS).code(step)
    }

    fn totp_check_sync(s: &SqliteStore, check: TotpCheck) -> TotpOutcome {
        let (tx, rx) = mpsc::channel();
        s.check_totp_then(check, Box::new(move |r| tx.send(r).unwrap()));
        rx.recv().unwrap().unwrap()
    }

    /// One device's life through `check`: accepted once, replay refused, other owners and
    /// serials not assigned, lockout after five failures, recovery after it.
    fn totp_scenario(s: &SqliteStore, check: &dyn Fn(TotpCheck) -> TotpOutcome) {
        s.create_user(&user("alice")).unwrap();
        s.create_mfa_device(&device("SERIAL0009")).unwrap();
        let alice = KeyOwner::User("alice".into());
        s.enable_mfa_device("SERIAL0009", &alice, 1, &TotpState::default(), 8)
            .unwrap();
        let policy = LockoutPolicy::default();
        let at = |owner: &KeyOwner, serial: &str, code: String, now: i64| TotpCheck {
            serial: serial.into(),
            owner: owner.clone(),
            code,
            now,
            policy,
        };
        let now = 30_000; // step 1000
        let accepted = check(at(&alice, "SERIAL0009", code_at(1000), now));
        assert_eq!(accepted, TotpOutcome::Accepted { step: 1000 });
        let replay = check(at(&alice, "SERIAL0009", code_at(1000), now));
        assert!(matches!(
            replay,
            TotpOutcome::Refused { refusal: Refusal::Replayed, state } if state.failures == 1
        ));
        for (owner, serial) in [(&KeyOwner::Root, "SERIAL0009"), (&alice, "SERIAL0404")] {
            let r = check(at(owner, serial, code_at(1001), now + 30));
            assert_eq!(r, TotpOutcome::NotAssigned, "{owner:?} {serial}");
        }
        // Three more wrong codes, then the fifth failure locks the device for 60 s …
        for _ in 0..3 {
            let r = check(at(&alice, "SERIAL0009", "000000".into(), now));
            assert!(matches!(
                r,
                TotpOutcome::Refused {
                    refusal: Refusal::WrongCode,
                    ..
                }
            ));
        }
        let locked = check(at(&alice, "SERIAL0009", "000000".into(), now));
        assert!(matches!(
            locked,
            TotpOutcome::Refused { state, .. } if state.locked_until == Some(now + 60)
        ));
        // … during which even the right code is refused, and nothing more is counted …
        let r = check(at(&alice, "SERIAL0009", code_at(1001), now + 30));
        assert!(matches!(
            r,
            TotpOutcome::Refused { refusal: Refusal::LockedOut(u), state }
                if u == now + 60 && state.lockouts == 1 && state.failures == 0
        ));
        // … and after which the next code works and clears the counters.
        let r = check(at(&alice, "SERIAL0009", code_at(1003), now + 90));
        assert_eq!(r, TotpOutcome::Accepted { step: 1003 });
        let d = s.mfa_device("SERIAL0009").unwrap().unwrap();
        assert_eq!(d.state.last_step, Some(1003));
        assert_eq!(
            (d.state.failures, d.state.lockouts, d.state.locked_until),
            (0, 0, None)
        );
    }

    #[test]
    fn a_totp_check_runs_in_the_group_commit_and_survives_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let s = std::sync::Arc::new(SqliteStore::open(&path, &master()).unwrap());
        totp_scenario(&s, &|c| totp_check_sync(&s, c));
        // Eight threads race with one fresh code: exactly one wins.
        let check = TotpCheck {
            serial: "SERIAL0009".into(),
            owner: KeyOwner::User("alice".into()),
            code: code_at(1010),
            now: 30_300,
            policy: LockoutPolicy::default(),
        };
        let wins = (0..8)
            .map(|_| {
                let (s, check) = (s.clone(), check.clone());
                std::thread::spawn(move || totp_check_sync(&s, check))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|o| matches!(o, TotpOutcome::Accepted { .. }))
            .count();
        assert_eq!(wins, 1);
        // The mark is durable: a restarted store refuses the code. (The seven losers each
        // counted a replay as a failure, so the device is locked out by now as well.)
        drop(s);
        let again = SqliteStore::open(&path, &master()).unwrap();
        let d = again.mfa_device("SERIAL0009").unwrap().unwrap();
        assert_eq!(d.state.last_step, Some(1010));
        assert_eq!(d.state.lockouts, 1);
        assert!(matches!(
            totp_check_sync(&again, check),
            TotpOutcome::Refused { .. }
        ));
    }

    #[test]
    fn a_totp_check_never_shows_its_code() {
        let check = TotpCheck {
            serial: "SERIAL0009".into(),
            owner: KeyOwner::Root,
            code: "314159".into(),
            now: 1,
            policy: LockoutPolicy::default(),
        };
        let shown = format!("{check:?}");
        assert!(
            shown.contains("SERIAL0009") && !shown.contains("314159"),
            "{shown}"
        );
    }

    #[test]
    fn the_in_memory_and_default_totp_checks_agree() {
        // In memory: no group commit, the same transaction through `write`.
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        totp_scenario(&s, &|c| totp_check_sync(&s, c));
        // The trait's default, from the read and the two compare-and-set writes.
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        totp_scenario(&s, &|c| crate::check_totp_by_parts(&s, &c).unwrap());
    }

    #[test]
    fn one_store_per_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let s = SqliteStore::open(&path, &master()).unwrap();
        assert!(matches!(
            SqliteStore::open(&path, &master()),
            Err(StoreError::Busy(_))
        ));
        drop(s);
        SqliteStore::open(&path, &master()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let lock = fs::metadata(dir.path().join("t.db.lock")).unwrap();
        assert_eq!(lock.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn cached_keys_and_users_follow_every_admin_write() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("t.db"), &master()).unwrap();
        s.bootstrap(&bootstrap()).unwrap();
        s.create_user(&user("alice")).unwrap();
        let alice = KeyOwner::User("alice".into());
        s.create_access_key(&key("AKIAALICE", alice.clone()), 2)
            .unwrap();
        for _ in 0..2 {
            // The second read is served by the cache; both open the sealed secret.
            let k = s.access_key("AKIAALICE").unwrap().unwrap();
            assert_eq!(k.status, KeyStatus::Active);
            assert_eq!(k.secret.expose(), b"secret-of-AKIAALICE");
            assert_eq!(s.user("ALICE").unwrap().unwrap().user_id, "AIDAalice");
        }
        s.set_access_key_status(&alice, "AKIAALICE", KeyStatus::Inactive)
            .unwrap();
        let k = s.access_key("AKIAALICE").unwrap().unwrap();
        assert_eq!(k.status, KeyStatus::Inactive);
        s.delete_access_key(&alice, "AKIAALICE").unwrap();
        assert!(s.access_key("AKIAALICE").unwrap().is_none());
        assert!(s.user("alice").unwrap().is_some());
        s.delete_user("alice").unwrap();
        assert!(s.user("alice").unwrap().is_none());
        let mut again = user("Alice");
        again.user_id = "AIDAnewalice".into();
        s.create_user(&again).unwrap();
        assert_eq!(s.user("alice").unwrap().unwrap().user_id, "AIDAnewalice");
    }

    #[test]
    fn a_read_that_raced_an_admin_write_is_not_cached() {
        let cache = ReadCache::new();
        let before = cache.generation();
        cache.clear(); // an admin write committed while the reader was reading
        cache.insert("k".into(), 1, before);
        assert_eq!(cache.get("k"), None);
        let now = cache.generation();
        cache.insert("k".into(), 2, now);
        assert_eq!(cache.get("k"), Some(2));
        cache.clear();
        assert_eq!(cache.get("k"), None);
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

    #[test]
    fn bootstrap_once() {
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        assert!(s.account().unwrap().is_none());
        s.bootstrap(&bootstrap()).unwrap();
        assert_eq!(s.account().unwrap().unwrap().account_id, "000000000000");
        assert_eq!(
            s.bootstrap(&bootstrap()).err(),
            Some(StoreError::AlreadyExists(Entity::Account))
        );
        let root = s.access_key("AKIAROOT").unwrap().unwrap();
        assert_eq!(root.owner, KeyOwner::Root);
        assert_eq!(root.secret.expose(), b"secret-of-AKIAROOT");
        assert_eq!(
            s.service_secret(crate::DERIVATION_KEY)
                .unwrap()
                .unwrap()
                .expose(),
            &[1; 32]
        );
        assert_eq!(s.signing_keys().unwrap().len(), 1);
    }

    #[test]
    fn users_are_unique_ignoring_case_and_need_no_keys_to_delete() {
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        s.create_user(&user("alice")).unwrap();
        let mut dup = user("Alice");
        dup.user_id = "AIDAother".into();
        assert_eq!(
            s.create_user(&dup).err(),
            Some(StoreError::AlreadyExists(Entity::User))
        );
        assert_eq!(s.user("ALICE").unwrap().unwrap().name, "alice");
        s.create_access_key(&key("AKIA1", KeyOwner::User("alice".into())), 2)
            .unwrap();
        assert!(matches!(
            s.delete_user("alice"),
            Err(StoreError::DeleteConflict { .. })
        ));
        s.delete_access_key(&KeyOwner::User("alice".into()), "AKIA1")
            .unwrap();
        s.delete_user("alice").unwrap();
        assert_eq!(
            s.delete_user("alice").err(),
            Some(StoreError::NotFound(Entity::User))
        );
    }

    #[test]
    fn two_keys_per_owner() {
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        s.create_user(&user("bob")).unwrap();
        let bob = KeyOwner::User("bob".into());
        s.create_access_key(&key("AKIA1", bob.clone()), 2).unwrap();
        s.create_access_key(&key("AKIA2", bob.clone()), 2).unwrap();
        assert_eq!(
            s.create_access_key(&key("AKIA3", bob.clone()), 2).err(),
            Some(StoreError::LimitExceeded(Entity::AccessKey))
        );
        assert_eq!(s.access_keys_of(&bob).unwrap().len(), 2);
        let nobody = KeyOwner::User("nobody".into());
        assert_eq!(
            s.create_access_key(&key("AKIA4", nobody), 2).err(),
            Some(StoreError::NotFound(Entity::User))
        );
    }

    #[test]
    fn status_and_delete_are_scoped_to_the_owner() {
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        s.create_user(&user("a")).unwrap();
        s.create_user(&user("b")).unwrap();
        s.create_access_key(&key("AKIAA", KeyOwner::User("a".into())), 2)
            .unwrap();
        let b = KeyOwner::User("b".into());
        assert_eq!(
            s.set_access_key_status(&b, "AKIAA", KeyStatus::Inactive)
                .err(),
            Some(StoreError::NotFound(Entity::AccessKey))
        );
        assert_eq!(
            s.delete_access_key(&b, "AKIAA").err(),
            Some(StoreError::NotFound(Entity::AccessKey))
        );
        let a = KeyOwner::User("a".into());
        s.set_access_key_status(&a, "AKIAA", KeyStatus::Inactive)
            .unwrap();
        assert_eq!(
            s.access_key("AKIAA").unwrap().unwrap().status,
            KeyStatus::Inactive
        );
    }

    #[test]
    fn signing_key_rotation_is_compare_and_set() {
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        s.bootstrap(&bootstrap()).unwrap();
        let new = StoredSigningKey {
            kid: "kid2".into(),
            pkcs8: Secret::new(vec![3; 10]),
            created: 5,
            retired: None,
        };
        s.rotate_signing_key("kid1", &new).unwrap();
        // A second replica that still believes kid1 is current loses the race.
        let racer = StoredSigningKey {
            kid: "kid3".into(),
            ..new
        };
        assert!(s.rotate_signing_key("kid1", &racer).is_err());
        let keys = s.signing_keys().unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].kid, "kid2");
        assert_eq!(keys[1].retired, Some(5));
    }

    #[test]
    fn file_store_persists_and_never_holds_secrets_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            let s = SqliteStore::open(&path, &master()).unwrap();
            s.bootstrap(&bootstrap()).unwrap();
        }
        let s = SqliteStore::open(&path, &master()).unwrap();
        assert!(s.access_key("AKIAROOT").unwrap().is_some());
        drop(s);
        let mut raw = fs::read(&path).unwrap();
        if let Ok(wal) = fs::read(dir.path().join("t.db-wal")) {
            raw.extend(wal);
        }
        assert!(!raw.windows(18).any(|w| w == b"secret-of-AKIAROOT"));
        // A wrong master key cannot open the secrets.
        let wrong = SqliteStore::open(&path, &Secret::new(vec![8u8; 32])).unwrap();
        assert_eq!(wrong.access_key("AKIAROOT").err(), Some(StoreError::Unseal));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
