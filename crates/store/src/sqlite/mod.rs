//! The embedded SQLite store (the default).
//!
//! One connection behind a mutex, WAL journal, `synchronous=FULL` (a commit is on disk
//! before the response that depends on it leaves), foreign keys on. Each trait method is
//! one transaction; conditional writes are expressed in SQL (unique constraints, `WHERE`
//! clauses on counts), never as a read in one transaction and a write in another.
//!
//! This module owns the connections, the migrations, the `write()` path and the read
//! cache; each entity family keeps its SQL in its own module ([`accounts`], [`users`],
//! [`mfa`], [`security_keys`], [`iam`], [`roles`], [`passwords`],
//! [`reports`], [`usage`], [`audit`]), and the login-path writes are batched by
//! [`group_commit`].
//! The schema is `crates/store/migrations/NNNN_*.sql`, applied in order.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};
use tokengate_token::Secret;
use tokengate_verifier::totp::{LockoutPolicy, TotpState};

use crate::seal::Sealer;
use crate::{
    AccessKey, Account, AttachedPolicy, Bootstrap, Challenge, Completion, Entity, Group, KeyOwner,
    KeyStatus, KeyUse, KeyUseOutcome, ManagedPolicy, MfaDevice, NewManagedPolicy, PolicyEntities,
    PolicyTarget, PolicyUsage, PolicyUseCounts, PolicyVersion, PrincipalBinding, Role, SecurityKey,
    Store, StoreError, StoredSigningKey, Tag, TotpCheck, TotpOutcome, User, UserPolicies,
};
use crate::{
    AdvisorJob, CredentialInventory, EntityUse, KeyLastUsed, LoginProfile, LoginProfileUpdate,
    NewPassword, PasswordPolicy, PasswordUse, StoredReport, UsageBatch,
};
use crate::{AuditEvent, AuditPage, AuditQuery};
use group_commit::GroupCommitter;

pub(crate) mod accounts;
mod audit;
#[cfg(test)]
mod fixtures;
mod group_commit;
mod iam;
pub(crate) mod mfa;
mod passwords;
mod portal;
mod reports;
mod roles;
pub(crate) mod security_keys;
mod usage;
pub(crate) mod users;

/// Schema migrations, applied in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_users_and_keys.sql"),
    include_str!("../../migrations/0002_mfa_devices.sql"),
    include_str!("../../migrations/0003_security_keys.sql"),
    include_str!("../../migrations/0004_groups_and_policies.sql"),
    include_str!("../../migrations/0005_roles.sql"),
    include_str!("../../migrations/0006_role_usage_and_trust_ids.sql"),
    include_str!("../../migrations/0007_passwords_and_reports.sql"),
    include_str!("../../migrations/0008_usage.sql"),
    include_str!("../../migrations/0009_audit_events.sql"),
    include_str!("../../migrations/0010_portal_sessions.sql"),
    include_str!("../../migrations/0011_access_key_order.sql"),
];

/// How many migrations the SQLite history has (the PostgreSQL twin must have as many).
#[cfg(test)]
pub(crate) const MIGRATION_COUNT: usize = MIGRATIONS.len();

/// Connections that serve reads beside the main one (file databases only; WAL lets
/// readers run while a writer commits).
const READERS: usize = 4;

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
    keys: ReadCache<users::KeyRow>,
    /// Users by lower-cased name (names are unique ignoring ASCII case, as SQLite's NOCASE).
    users: ReadCache<User>,
    /// Users by unique id (sessions resolve their principal by it).
    users_by_id: ReadCache<User>,
    /// [`Store::iam_generation`]: bumped after every committed write through
    /// [`SqliteStore::write`]. In memory: one process owns the database (the lock file).
    iam_generation: AtomicU64,
    /// Held for the store's lifetime; `None` for an in-memory store.
    _lock: Option<fs::File>,
    /// The database file, for the readiness check (`None` in memory).
    path: Option<std::path::PathBuf>,
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

/// The `owner` column value for `owner`: `root` or the user's id.
fn owner_column(tx: &Connection, owner: &KeyOwner) -> Result<String, StoreError> {
    Ok(SqliteStore::owner_id(tx, owner)?.unwrap_or_else(|| ROOT_OWNER.to_owned()))
}

pub(crate) const ROOT_OWNER: &str = "root";

fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(backend)
}

fn to_u64(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(backend)
}

/// The owner a row's `owner` column and its joined user name describe.
pub(crate) fn owner_from(column: &str, name: Option<String>) -> Option<KeyOwner> {
    match (column, name) {
        (ROOT_OWNER, _) => Some(KeyOwner::Root),
        (_, Some(name)) => Some(KeyOwner::User(name)),
        (_, None) => None,
    }
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
        store.path = Some(path.to_owned());
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
            users_by_id: ReadCache::new(),
            iam_generation: AtomicU64::new(0),
            _lock: None,
            path: None,
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
        // it (ReadCache), and authorization caches see a new generation once it committed.
        self.keys.clear();
        self.users.clear();
        self.users_by_id.clear();
        if committed.is_ok() {
            self.iam_generation.fetch_add(1, Ordering::AcqRel);
        }
        committed
    }

    /// Like [`SqliteStore::write`], for the login path's own rows — ceremony challenges and
    /// failure counters — which no cache holds and no authorization reads: it keeps the read
    /// caches and the IAM generation, so a security-key login does not make every principal's
    /// policies compile again.
    fn write_login_state<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>, &Sealer) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let out = f(&tx, &self.sealer)?;
        tx.commit().map_err(backend)?;
        Ok(out)
    }

    /// Runs `f` in one read transaction on a reader connection, so that every statement in
    /// it sees the same snapshot.
    fn read_tx<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.read()?;
        let tx = conn.unchecked_transaction().map_err(backend)?;
        let out = f(&tx)?;
        tx.commit().map_err(backend)?;
        Ok(out)
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
        accounts::account(self)
    }

    fn readiness(&self) -> Result<(), StoreError> {
        // An open connection keeps reading a file that was removed or made unreadable;
        // a restart would not, so the file itself is checked too.
        if let Some(path) = &self.path {
            fs::File::open(path)
                .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
        }
        let applied: i64 = self
            .read()?
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(backend)?;
        if usize::try_from(applied).ok() != Some(MIGRATIONS.len()) {
            return Err(StoreError::Backend(format!(
                "schema version {applied}, this build needs {}",
                MIGRATIONS.len()
            )));
        }
        Ok(())
    }

    fn bootstrap(&self, b: &Bootstrap) -> Result<(), StoreError> {
        accounts::bootstrap(self, b)
    }

    fn service_secret(&self, name: &str) -> Result<Option<Secret>, StoreError> {
        accounts::service_secret(self, name)
    }

    fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        accounts::signing_keys(self)
    }

    fn rotate_signing_key(
        &self,
        expected_current: &str,
        key: &StoredSigningKey,
    ) -> Result<(), StoreError> {
        accounts::rotate_signing_key(self, expected_current, key)
    }

    fn create_user(&self, user: &User) -> Result<(), StoreError> {
        users::create_user(self, user)
    }

    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        users::user(self, name)
    }

    fn user_by_id(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        users::user_by_id(self, user_id)
    }

    fn list_users(
        &self,
        path_prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<User>, StoreError> {
        users::list_users(self, path_prefix, after, limit)
    }

    fn delete_user(&self, name: &str) -> Result<(), StoreError> {
        users::delete_user(self, name)
    }

    fn create_access_key(&self, key: &AccessKey, max_per_owner: usize) -> Result<(), StoreError> {
        users::create_access_key(self, key, max_per_owner)
    }

    fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>, StoreError> {
        users::access_key(self, access_key_id)
    }

    fn access_keys_of(&self, owner: &KeyOwner) -> Result<Vec<AccessKey>, StoreError> {
        users::access_keys_of(self, owner)
    }

    fn set_access_key_status(
        &self,
        owner: &KeyOwner,
        access_key_id: &str,
        status: KeyStatus,
    ) -> Result<(), StoreError> {
        users::set_access_key_status(self, owner, access_key_id, status)
    }

    fn delete_access_key(&self, owner: &KeyOwner, access_key_id: &str) -> Result<(), StoreError> {
        users::delete_access_key(self, owner, access_key_id)
    }

    fn create_mfa_device(&self, d: &MfaDevice) -> Result<(), StoreError> {
        mfa::create_mfa_device(self, d)
    }

    fn mfa_device(&self, serial: &str) -> Result<Option<MfaDevice>, StoreError> {
        mfa::mfa_device(self, serial)
    }

    fn mfa_devices_of(&self, owner: &KeyOwner) -> Result<Vec<MfaDevice>, StoreError> {
        mfa::mfa_devices_of(self, owner)
    }

    fn list_mfa_devices(&self, assigned: Option<bool>) -> Result<Vec<MfaDevice>, StoreError> {
        mfa::list_mfa_devices(self, assigned)
    }

    fn enable_mfa_device(
        &self,
        serial: &str,
        owner: &KeyOwner,
        enabled_at: i64,
        state: &TotpState,
        max_per_owner: usize,
    ) -> Result<(), StoreError> {
        mfa::enable_mfa_device(self, serial, owner, enabled_at, state, max_per_owner)
    }

    fn deactivate_mfa_device(&self, serial: &str, owner: &KeyOwner) -> Result<(), StoreError> {
        mfa::deactivate_mfa_device(self, serial, owner)
    }

    fn delete_mfa_device(&self, serial: &str) -> Result<(), StoreError> {
        mfa::delete_mfa_device(self, serial)
    }

    fn record_totp_success(&self, serial: &str, step: u64) -> Result<bool, StoreError> {
        mfa::record_totp_success(self, serial, step)
    }

    fn check_totp_then(&self, check: TotpCheck, done: Completion<TotpOutcome>) {
        mfa::check_totp_then(self, check, done)
    }

    fn record_totp_failure(
        &self,
        serial: &str,
        policy: &LockoutPolicy,
        now: i64,
    ) -> Result<TotpState, StoreError> {
        mfa::record_totp_failure(self, serial, policy, now)
    }

    fn resync_mfa_device(
        &self,
        serial: &str,
        owner: &KeyOwner,
        expected_last_step: Option<u64>,
        state: &TotpState,
    ) -> Result<(), StoreError> {
        mfa::resync_mfa_device(self, serial, owner, expected_last_step, state)
    }

    fn create_challenge(&self, c: &Challenge, max_per_requester: usize) -> Result<(), StoreError> {
        security_keys::create_challenge(self, c, max_per_requester)
    }

    fn challenge(&self, id: &str) -> Result<Option<Challenge>, StoreError> {
        security_keys::challenge(self, id)
    }

    fn discard_challenge(&self, id: &str) -> Result<(), StoreError> {
        security_keys::discard_challenge(self, id)
    }

    fn enable_security_key(
        &self,
        challenge_id: &str,
        now: i64,
        key: &SecurityKey,
        max_devices: usize,
    ) -> Result<(), StoreError> {
        security_keys::enable_security_key(self, challenge_id, now, key, max_devices)
    }

    fn security_key(&self, serial: &str) -> Result<Option<SecurityKey>, StoreError> {
        security_keys::security_key(self, serial)
    }

    fn security_keys_of(&self, owner: &KeyOwner) -> Result<Vec<SecurityKey>, StoreError> {
        security_keys::security_keys_of(self, owner)
    }

    fn delete_security_key(&self, serial: &str, owner: &KeyOwner) -> Result<(), StoreError> {
        security_keys::delete_security_key(self, serial, owner)
    }

    fn record_security_key_use(&self, key_use: &KeyUse) -> Result<KeyUseOutcome, StoreError> {
        security_keys::record_security_key_use(self, key_use)
    }

    fn record_security_key_use_then(&self, key_use: &KeyUse, done: Completion<KeyUseOutcome>) {
        security_keys::record_security_key_use_then(self, key_use, done)
    }

    fn record_security_key_failure(
        &self,
        serial: &str,
        challenge_id: Option<&str>,
        policy: &LockoutPolicy,
        now: i64,
        possible_clone: bool,
    ) -> Result<TotpState, StoreError> {
        security_keys::record_security_key_failure(
            self,
            serial,
            challenge_id,
            policy,
            now,
            possible_clone,
        )
    }

    fn iam_generation(&self) -> u64 {
        self.iam_generation.load(Ordering::Acquire)
    }

    fn create_group(&self, g: &Group, max_groups: usize) -> Result<(), StoreError> {
        iam::create_group(self, g, max_groups)
    }

    fn group(&self, name: &str) -> Result<Option<Group>, StoreError> {
        iam::group(self, name)
    }

    fn list_groups(&self, path_prefix: &str) -> Result<Vec<Group>, StoreError> {
        iam::list_groups(self, path_prefix)
    }

    fn update_group(
        &self,
        name: &str,
        new_name: Option<&str>,
        new_path: Option<&str>,
    ) -> Result<(), StoreError> {
        iam::update_group(self, name, new_name, new_path)
    }

    fn delete_group(&self, name: &str) -> Result<(), StoreError> {
        iam::delete_group(self, name)
    }

    fn add_user_to_group(
        &self,
        group: &str,
        user: &str,
        max_groups_per_user: usize,
    ) -> Result<(), StoreError> {
        iam::add_user_to_group(self, group, user, max_groups_per_user)
    }

    fn remove_user_from_group(&self, group: &str, user: &str) -> Result<(), StoreError> {
        iam::remove_user_from_group(self, group, user)
    }

    fn group_members(&self, group: &str) -> Result<Vec<User>, StoreError> {
        iam::group_members(self, group)
    }

    fn groups_for_user(&self, user: &str) -> Result<Vec<Group>, StoreError> {
        iam::groups_for_user(self, user)
    }

    fn create_policy(&self, p: &NewManagedPolicy, max_policies: usize) -> Result<(), StoreError> {
        iam::create_policy(self, p, max_policies)
    }

    fn managed_policy(&self, arn: &str) -> Result<Option<ManagedPolicy>, StoreError> {
        iam::managed_policy(self, arn)
    }

    fn list_policies(&self, path_prefix: &str) -> Result<Vec<ManagedPolicy>, StoreError> {
        iam::list_policies(self, path_prefix)
    }

    fn policy_use_counts(&self, arn: &str) -> Result<PolicyUseCounts, StoreError> {
        iam::policy_use_counts(self, arn)
    }

    fn delete_policy(&self, arn: &str) -> Result<(), StoreError> {
        iam::delete_policy(self, arn)
    }

    fn create_policy_version(
        &self,
        arn: &str,
        document: &str,
        set_default: bool,
        max_versions: usize,
        now: i64,
    ) -> Result<PolicyVersion, StoreError> {
        iam::create_policy_version(self, arn, document, set_default, max_versions, now)
    }

    fn policy_version(
        &self,
        arn: &str,
        version_id: &str,
    ) -> Result<Option<PolicyVersion>, StoreError> {
        iam::policy_version(self, arn, version_id)
    }

    fn policy_versions(&self, arn: &str) -> Result<Vec<PolicyVersion>, StoreError> {
        iam::policy_versions(self, arn)
    }

    fn delete_policy_version(&self, arn: &str, version_id: &str) -> Result<(), StoreError> {
        iam::delete_policy_version(self, arn, version_id)
    }

    fn set_default_policy_version(
        &self,
        arn: &str,
        version_id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        iam::set_default_policy_version(self, arn, version_id, now)
    }

    fn attach_policy(
        &self,
        target: &PolicyTarget,
        arn: &str,
        aws_managed: bool,
        max_attached: usize,
    ) -> Result<(), StoreError> {
        iam::attach_policy(self, target, arn, aws_managed, max_attached)
    }

    fn detach_policy(&self, target: &PolicyTarget, arn: &str) -> Result<(), StoreError> {
        iam::detach_policy(self, target, arn)
    }

    fn attached_policies(&self, target: &PolicyTarget) -> Result<Vec<AttachedPolicy>, StoreError> {
        iam::attached_policies(self, target)
    }

    fn policy_entities(
        &self,
        arn: &str,
        usage: Option<PolicyUsage>,
    ) -> Result<PolicyEntities, StoreError> {
        iam::policy_entities(self, arn, usage)
    }

    fn put_inline_policy(
        &self,
        target: &PolicyTarget,
        name: &str,
        document: &str,
        size: usize,
        max_aggregate_size: usize,
    ) -> Result<(), StoreError> {
        iam::put_inline_policy(self, target, name, document, size, max_aggregate_size)
    }

    fn inline_policy(
        &self,
        target: &PolicyTarget,
        name: &str,
    ) -> Result<Option<String>, StoreError> {
        iam::inline_policy(self, target, name)
    }

    fn inline_policy_names(&self, target: &PolicyTarget) -> Result<Vec<String>, StoreError> {
        iam::inline_policy_names(self, target)
    }

    fn delete_inline_policy(&self, target: &PolicyTarget, name: &str) -> Result<(), StoreError> {
        iam::delete_inline_policy(self, target, name)
    }

    fn set_user_permissions_boundary(
        &self,
        user: &str,
        arn: Option<&str>,
        aws_managed: bool,
    ) -> Result<(), StoreError> {
        iam::set_user_permissions_boundary(self, user, arn, aws_managed)
    }

    fn user_permissions_boundary(&self, user: &str) -> Result<Option<String>, StoreError> {
        iam::user_permissions_boundary(self, user)
    }

    fn tag_user(&self, user: &str, tags: &[Tag], max_tags: usize) -> Result<(), StoreError> {
        iam::tag_user(self, user, tags, max_tags)
    }

    fn untag_user(&self, user: &str, keys: &[String]) -> Result<(), StoreError> {
        iam::untag_user(self, user, keys)
    }

    fn user_tags(&self, user: &str) -> Result<Vec<Tag>, StoreError> {
        iam::user_tags(self, user)
    }

    fn tag_policy(&self, arn: &str, tags: &[Tag], max_tags: usize) -> Result<(), StoreError> {
        iam::tag_policy(self, arn, tags, max_tags)
    }

    fn untag_policy(&self, arn: &str, keys: &[String]) -> Result<(), StoreError> {
        iam::untag_policy(self, arn, keys)
    }

    fn policy_tags(&self, arn: &str) -> Result<Vec<Tag>, StoreError> {
        iam::policy_tags(self, arn)
    }

    fn user_policies(&self, user_id: &str) -> Result<Option<UserPolicies>, StoreError> {
        iam::user_policies(self, user_id)
    }

    fn group_policies(&self, name: &str) -> Result<Option<crate::GroupPolicies>, StoreError> {
        iam::group_policies(self, name)
    }

    fn create_role(
        &self,
        role: &Role,
        tags: &[Tag],
        boundary: Option<(&str, bool)>,
        max_roles: usize,
    ) -> Result<(), StoreError> {
        roles::create_role(self, role, tags, boundary, max_roles)
    }

    fn role(&self, name: &str) -> Result<Option<Role>, StoreError> {
        roles::role(self, name)
    }

    fn role_policies(&self, role_id: &str) -> Result<Option<crate::RolePolicies>, StoreError> {
        roles::role_policies(self, role_id)
    }

    fn record_role_use(&self, role_id: &str, now: i64, region: &str) -> Result<(), StoreError> {
        roles::record_role_use(self, role_id, now, region)
    }

    fn list_roles(&self, path_prefix: &str) -> Result<Vec<Role>, StoreError> {
        roles::list_roles(self, path_prefix)
    }

    fn update_role(
        &self,
        name: &str,
        description: Option<&str>,
        max_session_duration: Option<u32>,
    ) -> Result<(), StoreError> {
        roles::update_role(self, name, description, max_session_duration)
    }

    fn update_assume_role_policy(
        &self,
        name: &str,
        document: &str,
        principals: &[PrincipalBinding],
    ) -> Result<(), StoreError> {
        roles::update_assume_role_policy(self, name, document, principals)
    }

    fn delete_role(&self, name: &str) -> Result<(), StoreError> {
        roles::delete_role(self, name)
    }

    fn tag_role(&self, role: &str, tags: &[Tag], max_tags: usize) -> Result<(), StoreError> {
        roles::tag_role(self, role, tags, max_tags)
    }

    fn untag_role(&self, role: &str, keys: &[String]) -> Result<(), StoreError> {
        roles::untag_role(self, role, keys)
    }

    fn role_tags(&self, role: &str) -> Result<Vec<Tag>, StoreError> {
        roles::role_tags(self, role)
    }

    fn set_role_permissions_boundary(
        &self,
        role: &str,
        arn: Option<&str>,
        aws_managed: bool,
    ) -> Result<(), StoreError> {
        roles::set_role_permissions_boundary(self, role, arn, aws_managed)
    }

    fn role_permissions_boundary(&self, role: &str) -> Result<Option<String>, StoreError> {
        roles::role_permissions_boundary(self, role)
    }

    fn password_policy(&self) -> Result<Option<PasswordPolicy>, StoreError> {
        passwords::password_policy(self)
    }

    fn set_password_policy(&self, policy: &PasswordPolicy) -> Result<(), StoreError> {
        passwords::set_password_policy(self, policy)
    }

    fn delete_password_policy(&self) -> Result<(), StoreError> {
        passwords::delete_password_policy(self)
    }

    fn create_login_profile(
        &self,
        user: &str,
        password: &NewPassword,
        reset_required: bool,
        max_session_duration: Option<u32>,
    ) -> Result<LoginProfile, StoreError> {
        passwords::create_login_profile(self, user, password, reset_required, max_session_duration)
    }

    fn login_profile(&self, user: &str) -> Result<Option<LoginProfile>, StoreError> {
        passwords::login_profile(self, user)
    }

    fn password_history(&self, user: &str, n: usize) -> Result<Vec<String>, StoreError> {
        passwords::password_history(self, user, n)
    }

    fn update_login_profile(
        &self,
        user: &str,
        update: &LoginProfileUpdate,
    ) -> Result<(), StoreError> {
        passwords::update_login_profile(self, user, update)
    }

    fn delete_login_profile(&self, user: &str) -> Result<(), StoreError> {
        passwords::delete_login_profile(self, user)
    }

    fn record_password_use(&self, password_use: &PasswordUse) -> Result<(), StoreError> {
        passwords::record_password_use(self, password_use)
    }

    fn credential_report(&self) -> Result<Option<StoredReport>, StoreError> {
        reports::credential_report(self)
    }

    fn put_credential_report(&self, report: &StoredReport) -> Result<(), StoreError> {
        reports::put_credential_report(self, report)
    }

    fn credential_inventory(&self) -> Result<CredentialInventory, StoreError> {
        reports::credential_inventory(self)
    }

    fn record_access_key_last_used(
        &self,
        uses: &[(String, KeyLastUsed)],
    ) -> Result<(), StoreError> {
        reports::record_access_key_last_used(self, uses)
    }

    fn record_usage(&self, batch: &UsageBatch) -> Result<(), StoreError> {
        usage::record_usage(self, batch)
    }

    fn access_key_last_used(&self, access_key_id: &str) -> Result<Option<KeyLastUsed>, StoreError> {
        usage::access_key_last_used(self, access_key_id)
    }

    fn entity_usage(&self, entity_ids: &[String]) -> Result<Vec<EntityUse>, StoreError> {
        usage::entity_usage(self, entity_ids)
    }

    fn put_advisor_job(&self, job: &AdvisorJob, expire_before: i64) -> Result<(), StoreError> {
        usage::put_advisor_job(self, job, expire_before)
    }

    fn advisor_job(&self, job_id: &str) -> Result<Option<AdvisorJob>, StoreError> {
        usage::advisor_job(self, job_id)
    }

    fn account_alias(&self) -> Result<Option<String>, StoreError> {
        usage::account_alias(self)
    }

    fn set_account_alias(&self, alias: &str) -> Result<(), StoreError> {
        usage::set_account_alias(self, alias)
    }

    fn delete_account_alias(&self, alias: &str) -> Result<(), StoreError> {
        usage::delete_account_alias(self, alias)
    }

    fn append_audit_events(&self, events: Vec<AuditEvent>) -> Result<(), StoreError> {
        audit::append_audit_events(self, events)
    }

    fn audit_events(&self, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        audit::audit_events(self, query)
    }

    fn purge_audit_events(&self, before: i64) -> Result<usize, StoreError> {
        audit::purge_audit_events(self, before)
    }

    fn put_portal_session(
        &self,
        replaces: Option<&[u8]>,
        session: &crate::PortalSession,
    ) -> Result<(), StoreError> {
        portal::put_portal_session(self, replaces, session)
    }

    fn portal_session(&self, id_hash: &[u8]) -> Result<Option<crate::PortalSession>, StoreError> {
        portal::portal_session(self, id_hash)
    }

    fn touch_portal_session(&self, id_hash: &[u8], now: i64) -> Result<(), StoreError> {
        portal::touch_portal_session(self, id_hash, now)
    }

    fn delete_portal_session(&self, id_hash: &[u8]) -> Result<(), StoreError> {
        portal::delete_portal_session(self, id_hash)
    }

    fn portal_signin_failures(&self, name: &str, since: i64) -> Result<u32, StoreError> {
        portal::portal_signin_failures(self, name, since)
    }

    fn record_portal_signin_failure(
        &self,
        name: &str,
        now: i64,
        window_secs: i64,
    ) -> Result<(), StoreError> {
        portal::record_portal_signin_failure(self, name, now, window_secs)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sqlite::fixtures::*;

    #[test]
    fn readiness_is_the_file_and_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let s = SqliteStore::open(&path, &master()).unwrap();
        s.readiness().unwrap();
        // Moved away: the open connections would keep working, a restart would not.
        let aside = dir.path().join("r.db.aside");
        fs::rename(&path, &aside).unwrap();
        assert!(s.readiness().is_err());
        fs::rename(&aside, &path).unwrap();
        s.readiness().unwrap();
        // A schema this build does not know is not ready.
        s.lock()
            .unwrap()
            .pragma_update(None, "user_version", 999)
            .unwrap();
        assert!(s.readiness().is_err());
        // In memory: the schema only.
        SqliteStore::open_in_memory(&master())
            .unwrap()
            .readiness()
            .unwrap();
    }

    /// A database made by an earlier tokengate (the first three migrations, user_version 3)
    /// opens, upgrades in place and keeps its rows.
    #[test]
    fn a_database_from_the_first_three_migrations_upgrades() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..3] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 3).unwrap();
            conn.execute(
                "INSERT INTO iam_user (user_id, name, path, created)
                 VALUES ('AIDAold', 'old', '/', 1)",
                [],
            )
            .unwrap();
        }
        let s = SqliteStore::open(&path, &master()).unwrap();
        assert_eq!(s.user("OLD").unwrap().unwrap().user_id, "AIDAold");
        // The tables of later migrations are there and refer to the old rows.
        let devs = crate::Group {
            group_id: "AGPAdevs".into(),
            name: "devs".into(),
            path: "/".into(),
            created: 2,
        };
        s.create_group(&devs, 10).unwrap();
        s.add_user_to_group("devs", "old", 10).unwrap();
        assert_eq!(s.groups_for_user("old").unwrap(), [devs]);
        let version: i64 = s
            .lock()
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(usize::try_from(version).unwrap(), MIGRATIONS.len());
        drop(s);
        // Opening again applies nothing twice.
        SqliteStore::open(&path, &master()).unwrap();
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
