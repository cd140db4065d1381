//! The PostgreSQL store: several replicas sharing one database (ADR 0006).
//!
//! tokio-postgres on a private runtime owned by the store, a deadpool pool, TLS through
//! rustls when the URL asks for it. Each synchronous [`Store`] method runs one future on that
//! runtime and waits for it on a channel, which is legal on any thread, tokio worker or not.
//!
//! Every compare-and-set is one conditional statement (READ COMMITTED re-checks an
//! `UPDATE`'s `WHERE` against the latest committed row), or a transaction that takes a row
//! lock first. Every admin write starts by bumping the `iam_generation` row, which
//! serialises admin writes across replicas (as SQLite's one writer does) and lets every
//! replica see an IAM change before its next request ([`Store::iam_generation`]).
//!
//! The schema is `crates/store/migrations/postgres/NNNN_*.sql`, the twins of the SQLite
//! migrations with the same numbers, applied at open under an advisory lock.
//!
//! Each entity family has its module with its SQL, as in the SQLite store: [`accounts`],
//! [`users`], [`mfa`], [`security_keys`], [`iam`], [`policies`], [`roles`], [`passwords`],
//! [`reports`], [`usage`] (with the audit trail) and [`portal`].

use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use deadpool_postgres::Transaction;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokengate_token::Secret;
use tokengate_verifier::totp::{LockoutPolicy, TotpState};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Config, NoTls};

use crate::seal::Sealer;
use crate::{
    AccessKey, Account, AdvisorJob, AttachedPolicy, AuditEvent, AuditPage, AuditQuery, Bootstrap,
    Challenge, Completion, CredentialInventory, Entity, EntityUse, Group, GroupPolicies,
    KeyLastUsed, KeyOwner, KeyStatus, KeyUse, KeyUseOutcome, LoginProfile, LoginProfileUpdate,
    ManagedPolicy, MfaDevice, NewManagedPolicy, NewPassword, PasswordPolicy, PasswordUse,
    PolicyEntities, PolicyTarget, PolicyUsage, PolicyUseCounts, PolicyVersion, PortalSession,
    PrincipalBinding, Role, RolePolicies, SecurityKey, Store, StoreError, StoredReport,
    StoredSigningKey, Tag, TotpCheck, TotpOutcome, UsageBatch, User, UserPolicies,
};

mod accounts;
mod iam;
mod mfa;
mod passwords;
mod policies;
mod portal;
mod reports;
mod roles;
mod security_keys;
mod usage;
mod users;

/// The PostgreSQL schema history, applied in order; `tokengate_schema` records each.
/// Numbers and names match the SQLite migrations one for one (tested).
pub(crate) const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_users_and_keys",
        include_str!("../../migrations/postgres/0001_users_and_keys.sql"),
    ),
    (
        "0002_mfa_devices",
        include_str!("../../migrations/postgres/0002_mfa_devices.sql"),
    ),
    (
        "0003_security_keys",
        include_str!("../../migrations/postgres/0003_security_keys.sql"),
    ),
    (
        "0004_groups_and_policies",
        include_str!("../../migrations/postgres/0004_groups_and_policies.sql"),
    ),
    (
        "0005_roles",
        include_str!("../../migrations/postgres/0005_roles.sql"),
    ),
    (
        "0006_role_usage_and_trust_ids",
        include_str!("../../migrations/postgres/0006_role_usage_and_trust_ids.sql"),
    ),
    (
        "0007_passwords_and_reports",
        include_str!("../../migrations/postgres/0007_passwords_and_reports.sql"),
    ),
    (
        "0008_usage",
        include_str!("../../migrations/postgres/0008_usage.sql"),
    ),
    (
        "0009_audit_events",
        include_str!("../../migrations/postgres/0009_audit_events.sql"),
    ),
    (
        "0010_portal_sessions",
        include_str!("../../migrations/postgres/0010_portal_sessions.sql"),
    ),
    (
        "0011_access_key_order",
        include_str!("../../migrations/postgres/0011_access_key_order.sql"),
    ),
];

/// The advisory lock under which a replica migrates (any constant; the same on every
/// replica): two replicas starting together apply each migration once.
const MIGRATION_LOCK: i64 = 0x746f_6b65_6e67_6174; // "tokengat"

/// The NOTIFY channel that carries the IAM generation after each admin write.
pub const IAM_CHANNEL: &str = "tokengate_iam";

/// How long a new connection may take unless the URL says (`connect_timeout`).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections in the pool unless the caller says otherwise.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// The longest one store operation may take unless the caller says otherwise
/// ([`PgOptions::timeout`]): waiting for a pooled connection, connecting, and every
/// statement of the operation. Past it the operation fails with
/// [`StoreError::Unavailable`], so a database that stops answering (a frozen host, a network
/// that drops packets) turns into `ServiceUnavailable` instead of requests that hang until
/// TCP gives up.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// How to open a [`PostgresStore`] beyond its URL.
#[derive(Debug, Clone, Default)]
pub struct PgOptions {
    /// Pool size; [`DEFAULT_POOL_SIZE`] when `None`.
    pub pool_size: Option<usize>,
    /// A schema to use instead of `public` (created if missing): every pooled connection
    /// sets its `search_path` to it. Tests give each run its own.
    pub schema: Option<String>,
    /// The longest one operation may take; [`DEFAULT_OPERATION_TIMEOUT`] when `None`.
    pub timeout: Option<Duration>,
}

/// The PostgreSQL-backed [`Store`].
pub struct PostgresStore {
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    timeout: Duration,
    sealer: Arc<Sealer>,
    generation: Arc<GenerationReader>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

/// A backend error with its whole cause chain (tokio-postgres puts the server's message
/// in the source: "db error: ERROR: …"): [`StoreError::Unavailable`] when the database
/// could not be reached ([`unreachable`]), else [`StoreError::Backend`].
pub(crate) fn backend(e: impl std::error::Error + 'static) -> StoreError {
    let mut message = format!("postgres: {e}");
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    if unreachable(&e) {
        StoreError::Unavailable(message)
    } else {
        StoreError::Backend(message)
    }
}

/// Whether `e` (or a cause of it) says the database cannot be reached now, rather than
/// that a statement failed: an I/O error (refused, reset, timed out), a closed connection,
/// a pool that timed out, or one of PostgreSQL's "connection exception" (class 08),
/// "shutting down" (57P01–57P03, the last while it starts up) and "too many connections"
/// (53300) states.
fn unreachable(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(cause) = next {
        if cause.is::<std::io::Error>() {
            return true;
        }
        if let Some(pg) = cause.downcast_ref::<tokio_postgres::Error>() {
            if pg.is_closed() {
                return true;
            }
            if let Some(code) = pg.code() {
                let code = code.code();
                if code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300") {
                    return true;
                }
            }
        }
        if let Some(pool) = cause.downcast_ref::<deadpool_postgres::PoolError>()
            && matches!(pool, deadpool_postgres::PoolError::Timeout(_))
        {
            return true;
        }
        next = cause.source();
    }
    false
}

/// A unique violation is the compare-and-set of an insert: `AlreadyExists(entity)`.
pub(crate) fn exists_or_backend(entity: Entity) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| {
        if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
            StoreError::AlreadyExists(entity)
        } else {
            backend(e)
        }
    }
}

/// Whether `schema` is safe to splice into SQL as an identifier.
fn valid_schema(schema: &str) -> bool {
    !schema.is_empty()
        && schema.len() <= 63
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !schema.as_bytes()[0].is_ascii_digit()
}

impl PostgresStore {
    /// Connects to the libpq-style `url` (`postgres://user@host:port/db?sslmode=…`),
    /// migrates the schema and returns the store. TLS (rustls) when `sslmode` is `require`;
    /// `sslrootcert=FILE` in the URL names the CA, else the Mozilla roots are trusted.
    pub fn open(url: &str, master_key: &Secret, options: PgOptions) -> Result<Self, StoreError> {
        let (url, root_cert) = split_root_cert(url);
        let mut config = Config::from_str(&url)
            .map_err(|e| StoreError::Backend(format!("store.url is not a PostgreSQL URL: {e}")))?;
        // A black-holed host must not hang start-up or a request forever.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        if let Some(schema) = &options.schema {
            if !valid_schema(schema) {
                return Err(StoreError::Backend(format!(
                    "schema {schema:?}: use lower-case letters, digits and _"
                )));
            }
            config.options(format!("-c search_path={schema}"));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tokengate-pg")
            .enable_all()
            .build()
            .map_err(backend)?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match config.get_ssl_mode() {
            SslMode::Require => {
                let tls = rustls_connector(root_cert.as_deref())?;
                Manager::from_config(config.clone(), tls, manager_config)
            }
            _ => Manager::from_config(config.clone(), NoTls, manager_config),
        };
        let pool = {
            let _guard = runtime.enter();
            Pool::builder(manager)
                .max_size(options.pool_size.unwrap_or(DEFAULT_POOL_SIZE))
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .build()
                .map_err(backend)?
        };
        let timeout = options.timeout.unwrap_or(DEFAULT_OPERATION_TIMEOUT);
        let store = Self {
            generation: Arc::new(GenerationReader::new(
                pool.clone(),
                runtime.handle().clone(),
                timeout,
            )),
            runtime: Some(runtime),
            pool,
            timeout,
            sealer: Arc::new(Sealer::new(master_key)?),
        };
        let pool = store.pool.clone();
        let schema = options.schema.clone();
        store.run(async move { migrate(&pool, schema.as_deref()).await })?;
        Ok(store)
    }

    /// Whether the database at `url` (in `options.schema`) already holds an account, read
    /// without a master key: start-up asks before it creates a master key file, since a new
    /// key cannot open a bootstrapped store's secrets. Migrates the schema as
    /// [`PostgresStore::open`] would.
    pub fn has_account(url: &str, options: PgOptions) -> Result<bool, StoreError> {
        // The account row is not sealed: a placeholder key opens the store for that read
        // (nothing is sealed or opened with it, and it is dropped with the store).
        let placeholder = Secret::new(vec![0u8; crate::seal::MASTER_KEY_LEN]);
        let store = Self::open(url, &placeholder, options)?;
        Ok(store.account()?.is_some())
    }

    /// Runs `fut` on the store's runtime and waits for its result (from any thread).
    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        run_on(self.handle()?, self.timeout, fut)
    }

    fn handle(&self) -> Result<&tokio::runtime::Handle, StoreError> {
        self.runtime
            .as_ref()
            .map(tokio::runtime::Runtime::handle)
            .ok_or_else(|| StoreError::Backend("the PostgreSQL store is closed".into()))
    }

    /// Runs `f` with a pooled connection.
    fn with_conn<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Object, Arc<Sealer>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let pool = self.pool.clone();
        let sealer = self.sealer.clone();
        self.run(async move {
            let conn = pool.get().await.map_err(backend)?;
            f(conn, sealer).await
        })
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which tokio forbids on an async worker; the pool's
        // connections close with their tasks.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Runs `fut` on `handle`'s runtime and waits for it, at most `timeout`
/// ([`StoreError::Unavailable`] past it; the future is dropped, which rolls back an open
/// transaction).
fn run_on<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    timeout: Duration,
    fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = tx.send(within(timeout, fut).await);
    });
    rx.recv()
        .map_err(|_| StoreError::Backend("postgres: the store's task ended".into()))?
}

/// `fut`, or [`StoreError::Unavailable`] when it takes longer than `timeout`.
async fn within<T>(
    timeout: Duration,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "postgres: no answer within {} ms",
                timeout.as_millis()
            )))
        })
}

/// Takes `sslrootcert=FILE` out of the URL (tokio-postgres does not know it).
fn split_root_cert(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut root = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("sslrootcert=") {
            Some(v) => {
                root = Some(v.to_owned());
                false
            }
            None => true,
        })
        .collect();
    if kept.is_empty() {
        (base.to_owned(), root)
    } else {
        (format!("{base}?{}", kept.join("&")), root)
    }
}

fn rustls_connector(
    root_cert: Option<&str>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| StoreError::Backend(format!("sslrootcert {path}: {e}")))?
            {
                let cert =
                    cert.map_err(|e| StoreError::Backend(format!("sslrootcert {path}: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| StoreError::Backend(format!("sslrootcert {path}: {e}")))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(backend)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

async fn migrate(pool: &Pool, schema: Option<&str>) -> Result<(), StoreError> {
    let mut conn = pool.get().await.map_err(backend)?;
    let tx = conn.transaction().await.map_err(backend)?;
    // One replica at a time from here to the commit, the schema's and the table's creation
    // included (two concurrent CREATE SCHEMA IF NOT EXISTS can still collide).
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(backend)?;
    if let Some(schema) = schema {
        // Checked by valid_schema: a plain identifier.
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .await
            .map_err(backend)?;
    }
    // Created only when missing (IF NOT EXISTS alone logs a NOTICE at every start).
    let exists: bool = tx
        .query_one("SELECT to_regclass('tokengate_schema') IS NOT NULL", &[])
        .await
        .map_err(backend)?
        .get(0);
    if !exists {
        tx.batch_execute(
            "CREATE TABLE tokengate_schema (
             version  BIGINT PRIMARY KEY,
             name     TEXT NOT NULL,
             applied  TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
        )
        .await
        .map_err(backend)?;
    }
    let applied: i64 = tx
        .query_one("SELECT count(*) FROM tokengate_schema", &[])
        .await
        .map_err(backend)?
        .get(0);
    let applied = usize::try_from(applied).map_err(backend)?;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "the database has schema version {applied}, newer than this tokengate knows ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.batch_execute(sql)
            .await
            .map_err(|e| StoreError::Backend(format!("postgres migration {name}: {e}")))?;
        let version = i64::try_from(i + 1).map_err(backend)?;
        tx.execute(
            "INSERT INTO tokengate_schema (version, name) VALUES ($1, $2)",
            &[&version, name],
        )
        .await
        .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)
}

/// Starts an admin write: bumps the IAM generation first, which takes that row's lock, so
/// admin writes run one at a time across replicas (each sees every earlier one), and
/// queues the NOTIFY that tells the other replicas (sent at commit).
pub(crate) async fn begin_admin(conn: &mut Object) -> Result<Transaction<'_>, StoreError> {
    let tx = conn.transaction().await.map_err(backend)?;
    let value: i64 = tx
        .query_one(
            "UPDATE iam_generation SET value = value + 1 WHERE id = 1 RETURNING value",
            &[],
        )
        .await
        .map_err(backend)?
        .get(0);
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&IAM_CHANNEL, &value.to_string()],
    )
    .await
    .map_err(backend)?;
    Ok(tx)
}

/// The `owner` column value of `owner` (`root` or the user's id), `NotFound(User)` when
/// the user does not exist.
pub(crate) async fn owner_column(
    tx: &impl deadpool_postgres::GenericClient,
    owner: &KeyOwner,
) -> Result<String, StoreError> {
    Ok(owner_id(tx, owner)
        .await?
        .unwrap_or_else(|| crate::sqlite::ROOT_OWNER.to_owned()))
}

/// The user id of `owner`; `None` for root.
pub(crate) async fn owner_id(
    tx: &impl deadpool_postgres::GenericClient,
    owner: &KeyOwner,
) -> Result<Option<String>, StoreError> {
    match owner {
        KeyOwner::Root => Ok(None),
        KeyOwner::User(name) => tx
            .query_opt(
                "SELECT user_id FROM iam_user WHERE lower(name) = lower($1)",
                &[name],
            )
            .await
            .map_err(backend)?
            .map(|r| Some(r.get(0)))
            .ok_or(StoreError::NotFound(Entity::User)),
    }
}

pub(crate) fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(backend)
}

/// The IAM generation as the database has it, read so that a caller always sees a value
/// read *after* its call began (an admin write that returned on any replica before is
/// counted), while concurrent callers share one in-flight read.
struct GenerationReader {
    pool: Pool,
    handle: tokio::runtime::Handle,
    timeout: Duration,
    state: Mutex<GenerationState>,
    done: Condvar,
    /// Handed out when the database cannot be read: a value never seen before, so no cache
    /// entry matches it and the next read of the store reports the failure.
    unreadable: AtomicU64,
}

struct GenerationState {
    /// Reads started so far (the number of the newest).
    started: u64,
    /// The newest finished read, and its value.
    finished: u64,
    value: Result<u64, StoreError>,
    in_flight: bool,
}

impl GenerationReader {
    fn new(pool: Pool, handle: tokio::runtime::Handle, timeout: Duration) -> Self {
        Self {
            pool,
            handle,
            timeout,
            state: Mutex::new(GenerationState {
                started: 0,
                finished: 0,
                value: Err(StoreError::Unavailable("not read yet".into())),
                in_flight: false,
            }),
            done: Condvar::new(),
            unreadable: AtomicU64::new(u64::MAX),
        }
    }

    /// The generation, or a value never handed out before when it cannot be read (no
    /// cache entry matches it, and the next read of the store reports the failure).
    fn current(&self) -> u64 {
        self.checked()
            .unwrap_or_else(|_| self.unreadable.fetch_sub(1, Ordering::Relaxed))
    }

    /// The generation from a read that began after this call, or why it could not be read.
    fn checked(&self) -> Result<u64, StoreError> {
        let poisoned = || StoreError::Backend("the generation reader's lock is poisoned".into());
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        // A read that is in flight began before this call: only the next one counts.
        let need = state.started + 1;
        loop {
            if state.finished >= need {
                return state.value.clone();
            }
            if !state.in_flight {
                state.in_flight = true;
                state.started += 1;
                let number = state.started;
                drop(state);
                let value = self.read();
                let mut again = self.state.lock().map_err(|_| poisoned())?;
                again.in_flight = false;
                again.finished = number;
                again.value = value;
                self.done.notify_all();
                state = again;
                continue;
            }
            state = self.done.wait(state).map_err(|_| poisoned())?;
        }
    }

    fn read(&self) -> Result<u64, StoreError> {
        let pool = self.pool.clone();
        run_on(&self.handle, self.timeout, async move {
            let conn = pool.get().await.map_err(backend)?;
            let v: i64 = conn
                .query_one("SELECT value FROM iam_generation WHERE id = 1", &[])
                .await
                .map_err(backend)?
                .get(0);
            u64::try_from(v).map_err(backend)
        })
    }
}

impl Store for PostgresStore {
    fn account(&self) -> Result<Option<Account>, StoreError> {
        self.with_conn(|c, _| async move { accounts::account(&c).await })
    }

    fn bootstrap(&self, b: &Bootstrap) -> Result<(), StoreError> {
        let b = accounts::OwnedBootstrap::from(b);
        self.with_conn(|mut c, sealer| async move { accounts::bootstrap(&mut c, &sealer, b).await })
    }

    fn service_secret(&self, name: &str) -> Result<Option<Secret>, StoreError> {
        let name = name.to_owned();
        self.with_conn(
            |c, sealer| async move { accounts::service_secret(&c, &sealer, &name).await },
        )
    }

    fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        self.with_conn(|c, sealer| async move { accounts::signing_keys(&c, &sealer).await })
    }

    fn rotate_signing_key(
        &self,
        expected_current: &str,
        key: &StoredSigningKey,
    ) -> Result<(), StoreError> {
        let expected = expected_current.to_owned();
        let key = accounts::clone_signing_key(key);
        self.with_conn(|mut c, sealer| async move {
            accounts::rotate_signing_key(&mut c, &sealer, &expected, key).await
        })
    }

    fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let user = user.clone();
        self.with_conn(|mut c, _| async move { users::create_user(&mut c, &user).await })
    }

    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        let name = name.to_owned();
        self.with_conn(|c, _| async move { users::user(&c, &name).await })
    }

    fn user_by_id(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        let id = user_id.to_owned();
        self.with_conn(|c, _| async move { users::user_by_id(&c, &id).await })
    }

    fn list_users(
        &self,
        path_prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<User>, StoreError> {
        let prefix = path_prefix.to_owned();
        let after = after.map(str::to_owned);
        self.with_conn(move |c, _| async move {
            users::list_users(&c, &prefix, after.as_deref(), limit).await
        })
    }

    fn delete_user(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.with_conn(|mut c, _| async move { users::delete_user(&mut c, &name).await })
    }

    fn create_access_key(&self, key: &AccessKey, max_per_owner: usize) -> Result<(), StoreError> {
        let key = users::clone_key(key);
        self.with_conn(move |mut c, sealer| async move {
            users::create_access_key(&mut c, &sealer, &key, max_per_owner).await
        })
    }

    fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>, StoreError> {
        let id = access_key_id.to_owned();
        self.with_conn(|c, sealer| async move { users::access_key(&c, &sealer, &id).await })
    }

    fn access_keys_of(&self, owner: &KeyOwner) -> Result<Vec<AccessKey>, StoreError> {
        let owner = owner.clone();
        self.with_conn(|c, sealer| async move { users::access_keys_of(&c, &sealer, &owner).await })
    }

    fn set_access_key_status(
        &self,
        owner: &KeyOwner,
        access_key_id: &str,
        status: KeyStatus,
    ) -> Result<(), StoreError> {
        let owner = owner.clone();
        let id = access_key_id.to_owned();
        self.with_conn(move |mut c, _| async move {
            users::set_access_key_status(&mut c, &owner, &id, status).await
        })
    }

    fn delete_access_key(&self, owner: &KeyOwner, access_key_id: &str) -> Result<(), StoreError> {
        let owner = owner.clone();
        let id = access_key_id.to_owned();
        self.with_conn(move |mut c, _| async move {
            users::delete_access_key(&mut c, &owner, &id).await
        })
    }

    fn create_mfa_device(&self, device: &MfaDevice) -> Result<(), StoreError> {
        let d = mfa::clone_device(device);
        self.with_conn(
            |mut c, sealer| async move { mfa::create_mfa_device(&mut c, &sealer, &d).await },
        )
    }

    fn mfa_device(&self, serial: &str) -> Result<Option<MfaDevice>, StoreError> {
        let serial = serial.to_owned();
        self.with_conn(|c, sealer| async move {
            Ok(mfa::devices_where(&c, &sealer, "d.serial = $1", &[&serial])
                .await?
                .into_iter()
                .next())
        })
    }

    fn mfa_devices_of(&self, owner: &KeyOwner) -> Result<Vec<MfaDevice>, StoreError> {
        let owner = owner.clone();
        self.with_conn(|c, sealer| async move { mfa::mfa_devices_of(&c, &sealer, &owner).await })
    }

    fn list_mfa_devices(&self, assigned: Option<bool>) -> Result<Vec<MfaDevice>, StoreError> {
        self.with_conn(move |c, sealer| async move {
            let clause = match assigned {
                None => "true ORDER BY d.serial",
                Some(true) => "d.owner IS NOT NULL ORDER BY d.serial",
                Some(false) => "d.owner IS NULL ORDER BY d.serial",
            };
            mfa::devices_where(&c, &sealer, clause, &[]).await
        })
    }

    fn enable_mfa_device(
        &self,
        serial: &str,
        owner: &KeyOwner,
        enabled_at: i64,
        state: &TotpState,
        max_per_owner: usize,
    ) -> Result<(), StoreError> {
        let serial = serial.to_owned();
        let owner = owner.clone();
        let state = *state;
        self.with_conn(move |mut c, _| async move {
            mfa::enable_mfa_device(&mut c, &serial, &owner, enabled_at, &state, max_per_owner).await
        })
    }

    fn deactivate_mfa_device(&self, serial: &str, owner: &KeyOwner) -> Result<(), StoreError> {
        let serial = serial.to_owned();
        let owner = owner.clone();
        self.with_conn(move |mut c, _| async move {
            mfa::deactivate_mfa_device(&mut c, &serial, &owner).await
        })
    }

    fn delete_mfa_device(&self, serial: &str) -> Result<(), StoreError> {
        let serial = serial.to_owned();
        self.with_conn(|mut c, _| async move { mfa::delete_mfa_device(&mut c, &serial).await })
    }

    fn record_totp_success(&self, serial: &str, step: u64) -> Result<bool, StoreError> {
        let serial = serial.to_owned();
        let step = to_i64(step)?;
        self.with_conn(move |c, _| async move { mfa::totp_success(&c, &serial, step).await })
    }

    /// Runs the check on the store's blocking pool, so the caller (an async worker) is not
    /// held for its two or three round trips: the device read, then the replay
    /// compare-and-set or the failure count, each a statement of its own
    /// (`settle_totp_check`, shared with SQLite); `done` runs there once the write has
    /// committed.
    fn check_totp_then(&self, check: TotpCheck, done: Completion<TotpOutcome>) {
        let handle = match self.handle() {
            Ok(h) => h.clone(),
            Err(e) => return done(Err(e)),
        };
        let (pool, sealer, timeout) = (self.pool.clone(), self.sealer.clone(), self.timeout);
        let runtime = handle.clone();
        handle.spawn_blocking(move || {
            let serial = check.serial.clone();
            let read = {
                let (pool, serial) = (pool.clone(), serial.clone());
                run_on(&runtime, timeout, async move {
                    let c = pool.get().await.map_err(backend)?;
                    Ok(mfa::devices_where(&c, &sealer, "d.serial = $1", &[&serial])
                        .await?
                        .into_iter()
                        .next())
                })
            };
            let outcome = read.and_then(|device| {
                crate::settle_totp_check(
                    device.as_ref(),
                    &check,
                    |step| {
                        let (pool, serial) = (pool.clone(), serial.clone());
                        run_on(&runtime, timeout, async move {
                            let c = pool.get().await.map_err(backend)?;
                            mfa::totp_success(&c, &serial, to_i64(step)?).await
                        })
                    },
                    || {
                        let (pool, serial, policy, now) =
                            (pool.clone(), serial.clone(), check.policy, check.now);
                        run_on(&runtime, timeout, async move {
                            let mut c = pool.get().await.map_err(backend)?;
                            mfa::totp_failure(&mut c, &serial, &policy, now).await
                        })
                    },
                )
            });
            done(outcome);
        });
    }

    fn record_security_key_use_then(&self, key_use: &KeyUse, done: Completion<KeyUseOutcome>) {
        let handle = match self.handle() {
            Ok(h) => h,
            Err(e) => return done(Err(e)),
        };
        let (pool, u, timeout) = (self.pool.clone(), key_use.clone(), self.timeout);
        handle.spawn(async move {
            let outcome = within(timeout, async {
                let mut c = pool.get().await.map_err(backend)?;
                security_keys::key_use_cas(&mut c, &u).await
            })
            .await;
            // The callback may block briefly (it hands the result to the request).
            done(outcome);
        });
    }

    fn record_totp_failure(
        &self,
        serial: &str,
        policy: &LockoutPolicy,
        now: i64,
    ) -> Result<TotpState, StoreError> {
        let serial = serial.to_owned();
        let policy = *policy;
        self.with_conn(move |mut c, _| async move {
            mfa::totp_failure(&mut c, &serial, &policy, now).await
        })
    }

    fn resync_mfa_device(
        &self,
        serial: &str,
        owner: &KeyOwner,
        expected_last_step: Option<u64>,
        state: &TotpState,
    ) -> Result<(), StoreError> {
        let serial = serial.to_owned();
        let owner = owner.clone();
        let state = *state;
        self.with_conn(move |mut c, _| async move {
            mfa::resync_mfa_device(&mut c, &serial, &owner, expected_last_step, &state).await
        })
    }

    fn create_challenge(&self, c: &Challenge, max_per_requester: usize) -> Result<(), StoreError> {
        let ch = c.clone();
        self.with_conn(move |mut conn, _| async move {
            security_keys::create_challenge(&mut conn, &ch, max_per_requester).await
        })
    }

    fn challenge(&self, id: &str) -> Result<Option<Challenge>, StoreError> {
        let id = id.to_owned();
        self.with_conn(|c, _| async move { security_keys::challenge(&c, &id).await })
    }

    fn discard_challenge(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.with_conn(|c, _| async move {
            c.execute("DELETE FROM challenge WHERE id = $1", &[&id])
                .await
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
        let id = challenge_id.to_owned();
        let key = key.clone();
        self.with_conn(move |mut c, _| async move {
            security_keys::enable_security_key(&mut c, &id, now, &key, max_devices).await
        })
    }

    fn security_key(&self, serial: &str) -> Result<Option<SecurityKey>, StoreError> {
        let serial = serial.to_owned();
        self.with_conn(|c, _| async move {
            Ok(security_keys::keys_where(&c, "k.serial = $1", &[&serial])
                .await?
                .into_iter()
                .next())
        })
    }

    fn security_keys_of(&self, owner: &KeyOwner) -> Result<Vec<SecurityKey>, StoreError> {
        let owner = owner.clone();
        self.with_conn(|c, _| async move {
            let column = match owner_id(&c, &owner).await? {
                Some(id) => id,
                None => crate::sqlite::ROOT_OWNER.to_owned(),
            };
            security_keys::keys_where(
                &c,
                "k.owner = $1 ORDER BY k.enabled_at, k.serial",
                &[&column],
            )
            .await
        })
    }

    fn delete_security_key(&self, serial: &str, owner: &KeyOwner) -> Result<(), StoreError> {
        let serial = serial.to_owned();
        let owner = owner.clone();
        self.with_conn(move |mut c, _| async move {
            security_keys::delete_security_key(&mut c, &serial, &owner).await
        })
    }

    fn record_security_key_use(&self, key_use: &KeyUse) -> Result<KeyUseOutcome, StoreError> {
        let u = key_use.clone();
        self.with_conn(|mut c, _| async move { security_keys::key_use_cas(&mut c, &u).await })
    }

    fn record_security_key_failure(
        &self,
        serial: &str,
        challenge_id: Option<&str>,
        policy: &LockoutPolicy,
        now: i64,
        possible_clone: bool,
    ) -> Result<TotpState, StoreError> {
        let serial = serial.to_owned();
        let id = challenge_id.map(str::to_owned);
        let policy = *policy;
        self.with_conn(move |mut c, _| async move {
            security_keys::key_failure(&mut c, &serial, id.as_deref(), &policy, now, possible_clone)
                .await
        })
    }

    fn iam_generation(&self) -> u64 {
        self.generation.current()
    }

    fn checked_iam_generation(&self) -> Result<u64, StoreError> {
        self.generation.checked()
    }

    fn create_group(&self, g: &Group, max_groups: usize) -> Result<(), StoreError> {
        let g = g.clone();
        self.with_conn(
            move |mut c, _| async move { iam::create_group(&mut c, &g, max_groups).await },
        )
    }

    fn group(&self, name: &str) -> Result<Option<Group>, StoreError> {
        let name = name.to_owned();
        self.with_conn(move |c, _| async move { iam::group(&c, &name).await })
    }

    fn list_groups(&self, path_prefix: &str) -> Result<Vec<Group>, StoreError> {
        let prefix = path_prefix.to_owned();
        self.with_conn(move |c, _| async move { iam::list_groups(&c, &prefix).await })
    }

    fn update_group(
        &self,
        name: &str,
        new_name: Option<&str>,
        new_path: Option<&str>,
    ) -> Result<(), StoreError> {
        let (name, new_name, new_path) = (
            name.to_owned(),
            new_name.map(str::to_owned),
            new_path.map(str::to_owned),
        );
        self.with_conn(move |mut c, _| async move {
            iam::update_group(&mut c, &name, new_name.as_deref(), new_path.as_deref()).await
        })
    }

    fn delete_group(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.with_conn(move |mut c, _| async move { iam::delete_group(&mut c, &name).await })
    }

    fn add_user_to_group(
        &self,
        group: &str,
        user: &str,
        max_groups_per_user: usize,
    ) -> Result<(), StoreError> {
        let (group, user) = (group.to_owned(), user.to_owned());
        self.with_conn(move |mut c, _| async move {
            iam::add_user_to_group(&mut c, &group, &user, max_groups_per_user).await
        })
    }

    fn remove_user_from_group(&self, group: &str, user: &str) -> Result<(), StoreError> {
        let (group, user) = (group.to_owned(), user.to_owned());
        self.with_conn(move |mut c, _| async move {
            iam::remove_user_from_group(&mut c, &group, &user).await
        })
    }

    fn group_members(&self, group: &str) -> Result<Vec<User>, StoreError> {
        let group = group.to_owned();
        self.with_conn(move |mut c, _| async move { iam::group_members(&mut c, &group).await })
    }

    fn groups_for_user(&self, user: &str) -> Result<Vec<Group>, StoreError> {
        let user = user.to_owned();
        self.with_conn(move |mut c, _| async move { iam::groups_for_user(&mut c, &user).await })
    }

    fn create_policy(&self, p: &NewManagedPolicy, max: usize) -> Result<(), StoreError> {
        let p = p.clone();
        self.with_conn(
            move |mut c, _| async move { policies::create_policy(&mut c, &p, max).await },
        )
    }

    fn managed_policy(&self, arn: &str) -> Result<Option<ManagedPolicy>, StoreError> {
        let arn = arn.to_owned();
        self.with_conn(move |c, _| async move { policies::managed_policy(&c, &arn).await })
    }

    fn list_policies(&self, path_prefix: &str) -> Result<Vec<ManagedPolicy>, StoreError> {
        let prefix = path_prefix.to_owned();
        self.with_conn(move |c, _| async move { policies::list_policies(&c, &prefix).await })
    }

    fn policy_use_counts(&self, arn: &str) -> Result<PolicyUseCounts, StoreError> {
        let arn = arn.to_owned();
        self.with_conn(move |c, _| async move { policies::policy_use_counts(&c, &arn).await })
    }

    fn delete_policy(&self, arn: &str) -> Result<(), StoreError> {
        let arn = arn.to_owned();
        self.with_conn(move |mut c, _| async move { policies::delete_policy(&mut c, &arn).await })
    }

    fn create_policy_version(
        &self,
        arn: &str,
        document: &str,
        set_default: bool,
        max_versions: usize,
        now: i64,
    ) -> Result<PolicyVersion, StoreError> {
        let (arn, document) = (arn.to_owned(), document.to_owned());
        self.with_conn(move |mut c, _| async move {
            policies::create_policy_version(&mut c, &arn, &document, set_default, max_versions, now)
                .await
        })
    }

    fn policy_version(
        &self,
        arn: &str,
        version_id: &str,
    ) -> Result<Option<PolicyVersion>, StoreError> {
        let (arn, version) = (arn.to_owned(), version_id.to_owned());
        self.with_conn(
            move |c, _| async move { policies::policy_version(&c, &arn, &version).await },
        )
    }

    fn policy_versions(&self, arn: &str) -> Result<Vec<PolicyVersion>, StoreError> {
        let arn = arn.to_owned();
        self.with_conn(move |mut c, _| async move { policies::policy_versions(&mut c, &arn).await })
    }

    fn delete_policy_version(&self, arn: &str, version_id: &str) -> Result<(), StoreError> {
        let (arn, version) = (arn.to_owned(), version_id.to_owned());
        self.with_conn(move |mut c, _| async move {
            policies::delete_policy_version(&mut c, &arn, &version).await
        })
    }

    fn set_default_policy_version(
        &self,
        arn: &str,
        version_id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let (arn, version) = (arn.to_owned(), version_id.to_owned());
        self.with_conn(move |mut c, _| async move {
            policies::set_default_policy_version(&mut c, &arn, &version, now).await
        })
    }

    fn attach_policy(
        &self,
        target: &PolicyTarget,
        arn: &str,
        aws_managed: bool,
        max_attached: usize,
    ) -> Result<(), StoreError> {
        let (target, arn) = (target.clone(), arn.to_owned());
        self.with_conn(move |mut c, _| async move {
            iam::attach_policy(&mut c, &target, &arn, aws_managed, max_attached).await
        })
    }

    fn detach_policy(&self, target: &PolicyTarget, arn: &str) -> Result<(), StoreError> {
        let (target, arn) = (target.clone(), arn.to_owned());
        self.with_conn(
            move |mut c, _| async move { iam::detach_policy(&mut c, &target, &arn).await },
        )
    }

    fn attached_policies(&self, target: &PolicyTarget) -> Result<Vec<AttachedPolicy>, StoreError> {
        let target = target.clone();
        self.with_conn(move |mut c, _| async move { iam::attached_policies(&mut c, &target).await })
    }

    fn policy_entities(
        &self,
        arn: &str,
        usage: Option<PolicyUsage>,
    ) -> Result<PolicyEntities, StoreError> {
        let arn = arn.to_owned();
        self.with_conn(move |mut c, _| async move {
            policies::policy_entities(&mut c, &arn, usage).await
        })
    }

    fn put_inline_policy(
        &self,
        target: &PolicyTarget,
        name: &str,
        document: &str,
        size: usize,
        max_aggregate_size: usize,
    ) -> Result<(), StoreError> {
        let (target, name, document) = (target.clone(), name.to_owned(), document.to_owned());
        self.with_conn(move |mut c, _| async move {
            iam::put_inline_policy(&mut c, &target, &name, &document, size, max_aggregate_size)
                .await
        })
    }

    fn inline_policy(
        &self,
        target: &PolicyTarget,
        name: &str,
    ) -> Result<Option<String>, StoreError> {
        let (target, name) = (target.clone(), name.to_owned());
        self.with_conn(
            move |mut c, _| async move { iam::inline_policy(&mut c, &target, &name).await },
        )
    }

    fn inline_policy_names(&self, target: &PolicyTarget) -> Result<Vec<String>, StoreError> {
        let target = target.clone();
        self.with_conn(
            move |mut c, _| async move { iam::inline_policy_names(&mut c, &target).await },
        )
    }

    fn delete_inline_policy(&self, target: &PolicyTarget, name: &str) -> Result<(), StoreError> {
        let (target, name) = (target.clone(), name.to_owned());
        self.with_conn(move |mut c, _| async move {
            iam::delete_inline_policy(&mut c, &target, &name).await
        })
    }

    fn set_user_permissions_boundary(
        &self,
        user: &str,
        arn: Option<&str>,
        aws_managed: bool,
    ) -> Result<(), StoreError> {
        let (user, arn) = (user.to_owned(), arn.map(str::to_owned));
        self.with_conn(move |mut c, _| async move {
            iam::set_user_permissions_boundary(&mut c, &user, arn.as_deref(), aws_managed).await
        })
    }

    fn user_permissions_boundary(&self, user: &str) -> Result<Option<String>, StoreError> {
        let user = user.to_owned();
        self.with_conn(move |mut c, _| async move {
            iam::user_permissions_boundary(&mut c, &user).await
        })
    }

    fn tag_user(&self, user: &str, tags: &[Tag], max_tags: usize) -> Result<(), StoreError> {
        let (user, tags) = (user.to_owned(), tags.to_vec());
        self.with_conn(move |mut c, _| async move {
            iam::tag_user(&mut c, &user, &tags, max_tags).await
        })
    }

    fn untag_user(&self, user: &str, keys: &[String]) -> Result<(), StoreError> {
        let (user, keys) = (user.to_owned(), keys.to_vec());
        self.with_conn(move |mut c, _| async move { iam::untag_user(&mut c, &user, &keys).await })
    }

    fn user_tags(&self, user: &str) -> Result<Vec<Tag>, StoreError> {
        let user = user.to_owned();
        self.with_conn(move |mut c, _| async move { iam::user_tags(&mut c, &user).await })
    }

    fn tag_policy(&self, arn: &str, tags: &[Tag], max_tags: usize) -> Result<(), StoreError> {
        let (arn, tags) = (arn.to_owned(), tags.to_vec());
        self.with_conn(move |mut c, _| async move {
            policies::tag_policy(&mut c, &arn, &tags, max_tags).await
        })
    }

    fn untag_policy(&self, arn: &str, keys: &[String]) -> Result<(), StoreError> {
        let (arn, keys) = (arn.to_owned(), keys.to_vec());
        self.with_conn(
            move |mut c, _| async move { policies::untag_policy(&mut c, &arn, &keys).await },
        )
    }

    fn policy_tags(&self, arn: &str) -> Result<Vec<Tag>, StoreError> {
        let arn = arn.to_owned();
        self.with_conn(move |mut c, _| async move { policies::policy_tags(&mut c, &arn).await })
    }

    fn user_policies(&self, user_id: &str) -> Result<Option<UserPolicies>, StoreError> {
        let id = user_id.to_owned();
        self.with_conn(move |mut c, _| async move { iam::user_policies(&mut c, &id).await })
    }

    fn group_policies(&self, name: &str) -> Result<Option<GroupPolicies>, StoreError> {
        let name = name.to_owned();
        self.with_conn(move |mut c, _| async move { iam::group_policies(&mut c, &name).await })
    }

    fn create_role(
        &self,
        role: &Role,
        tags: &[Tag],
        boundary: Option<(&str, bool)>,
        max_roles: usize,
    ) -> Result<(), StoreError> {
        let (role, tags) = (role.clone(), tags.to_vec());
        let boundary = boundary.map(|(arn, aws)| (arn.to_owned(), aws));
        self.with_conn(move |mut c, _| async move {
            let boundary = boundary.as_ref().map(|(arn, aws)| (arn.as_str(), *aws));
            roles::create_role(&mut c, &role, &tags, boundary, max_roles).await
        })
    }

    fn role(&self, name: &str) -> Result<Option<Role>, StoreError> {
        let name = name.to_owned();
        self.with_conn(move |c, _| async move { roles::role(&c, &name).await })
    }

    fn role_policies(&self, role_id: &str) -> Result<Option<RolePolicies>, StoreError> {
        let id = role_id.to_owned();
        self.with_conn(move |mut c, _| async move { roles::role_policies(&mut c, &id).await })
    }

    fn record_role_use(&self, role_id: &str, now: i64, region: &str) -> Result<(), StoreError> {
        let (id, region) = (role_id.to_owned(), region.to_owned());
        self.with_conn(
            move |c, _| async move { roles::record_role_use(&c, &id, now, &region).await },
        )
    }

    fn list_roles(&self, path_prefix: &str) -> Result<Vec<Role>, StoreError> {
        let prefix = path_prefix.to_owned();
        self.with_conn(move |c, _| async move { roles::list_roles(&c, &prefix).await })
    }

    fn update_role(
        &self,
        name: &str,
        description: Option<&str>,
        max_session_duration: Option<u32>,
    ) -> Result<(), StoreError> {
        let (name, description) = (name.to_owned(), description.map(str::to_owned));
        self.with_conn(move |mut c, _| async move {
            roles::update_role(&mut c, &name, description.as_deref(), max_session_duration).await
        })
    }

    fn update_assume_role_policy(
        &self,
        name: &str,
        document: &str,
        principals: &[PrincipalBinding],
    ) -> Result<(), StoreError> {
        let (name, document, principals) =
            (name.to_owned(), document.to_owned(), principals.to_vec());
        self.with_conn(move |mut c, _| async move {
            roles::update_assume_role_policy(&mut c, &name, &document, &principals).await
        })
    }

    fn delete_role(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.with_conn(move |mut c, _| async move { roles::delete_role(&mut c, &name).await })
    }

    fn tag_role(&self, role: &str, tags: &[Tag], max_tags: usize) -> Result<(), StoreError> {
        let (role, tags) = (role.to_owned(), tags.to_vec());
        self.with_conn(move |mut c, _| async move {
            roles::tag_role(&mut c, &role, &tags, max_tags).await
        })
    }

    fn untag_role(&self, role: &str, keys: &[String]) -> Result<(), StoreError> {
        let (role, keys) = (role.to_owned(), keys.to_vec());
        self.with_conn(move |mut c, _| async move { roles::untag_role(&mut c, &role, &keys).await })
    }

    fn role_tags(&self, role: &str) -> Result<Vec<Tag>, StoreError> {
        let role = role.to_owned();
        self.with_conn(move |mut c, _| async move { roles::role_tags(&mut c, &role).await })
    }

    fn set_role_permissions_boundary(
        &self,
        role: &str,
        arn: Option<&str>,
        aws_managed: bool,
    ) -> Result<(), StoreError> {
        let (role, arn) = (role.to_owned(), arn.map(str::to_owned));
        self.with_conn(move |mut c, _| async move {
            roles::set_role_permissions_boundary(&mut c, &role, arn.as_deref(), aws_managed).await
        })
    }

    fn role_permissions_boundary(&self, role: &str) -> Result<Option<String>, StoreError> {
        let role = role.to_owned();
        self.with_conn(move |mut c, _| async move {
            roles::role_permissions_boundary(&mut c, &role).await
        })
    }

    fn password_policy(&self) -> Result<Option<PasswordPolicy>, StoreError> {
        self.with_conn(|c, _| async move { passwords::password_policy(&c).await })
    }

    fn set_password_policy(&self, policy: &PasswordPolicy) -> Result<(), StoreError> {
        let policy = policy.clone();
        self.with_conn(move |mut c, _| async move {
            passwords::set_password_policy(&mut c, &policy).await
        })
    }

    fn delete_password_policy(&self) -> Result<(), StoreError> {
        self.with_conn(|mut c, _| async move { passwords::delete_password_policy(&mut c).await })
    }

    fn create_login_profile(
        &self,
        user: &str,
        password: &NewPassword,
        reset_required: bool,
        max_session_duration: Option<u32>,
    ) -> Result<LoginProfile, StoreError> {
        let (user, password) = (user.to_owned(), password.clone());
        self.with_conn(move |mut c, _| async move {
            passwords::create_login_profile(
                &mut c,
                &user,
                &password,
                reset_required,
                max_session_duration,
            )
            .await
        })
    }

    fn login_profile(&self, user: &str) -> Result<Option<LoginProfile>, StoreError> {
        let user = user.to_owned();
        self.with_conn(move |mut c, _| async move { passwords::login_profile(&mut c, &user).await })
    }

    fn password_history(&self, user: &str, n: usize) -> Result<Vec<String>, StoreError> {
        let user = user.to_owned();
        self.with_conn(move |mut c, _| async move {
            passwords::password_history(&mut c, &user, n).await
        })
    }

    fn update_login_profile(
        &self,
        user: &str,
        update: &LoginProfileUpdate,
    ) -> Result<(), StoreError> {
        let (user, update) = (user.to_owned(), update.clone());
        self.with_conn(move |mut c, _| async move {
            passwords::update_login_profile(&mut c, &user, &update).await
        })
    }

    fn delete_login_profile(&self, user: &str) -> Result<(), StoreError> {
        let user = user.to_owned();
        self.with_conn(move |mut c, _| async move {
            passwords::delete_login_profile(&mut c, &user).await
        })
    }

    fn record_password_use(&self, password_use: &PasswordUse) -> Result<(), StoreError> {
        let u = password_use.clone();
        self.with_conn(
            move |mut c, _| async move { passwords::record_password_use(&mut c, &u).await },
        )
    }

    fn credential_report(&self) -> Result<Option<StoredReport>, StoreError> {
        self.with_conn(|c, _| async move { reports::credential_report(&c).await })
    }

    fn put_credential_report(&self, report: &StoredReport) -> Result<(), StoreError> {
        let report = report.clone();
        self.with_conn(move |c, _| async move { reports::put_credential_report(&c, &report).await })
    }

    fn credential_inventory(&self) -> Result<CredentialInventory, StoreError> {
        self.with_conn(|mut c, _| async move { reports::credential_inventory(&mut c).await })
    }

    fn record_access_key_last_used(
        &self,
        uses: &[(String, KeyLastUsed)],
    ) -> Result<(), StoreError> {
        let uses = uses.to_vec();
        self.with_conn(move |mut c, _| async move {
            usage::record_access_key_last_used(&mut c, &uses).await
        })
    }

    fn record_usage(&self, batch: &UsageBatch) -> Result<(), StoreError> {
        let batch = batch.clone();
        self.with_conn(move |mut c, _| async move { usage::record_usage(&mut c, &batch).await })
    }

    fn access_key_last_used(&self, id: &str) -> Result<Option<KeyLastUsed>, StoreError> {
        let id = id.to_owned();
        self.with_conn(move |c, _| async move { usage::access_key_last_used(&c, &id).await })
    }

    fn entity_usage(&self, entity_ids: &[String]) -> Result<Vec<EntityUse>, StoreError> {
        let ids = entity_ids.to_vec();
        self.with_conn(move |c, _| async move { usage::entity_usage(&c, &ids).await })
    }

    fn put_advisor_job(&self, job: &AdvisorJob, expire_before: i64) -> Result<(), StoreError> {
        let job = job.clone();
        self.with_conn(move |mut c, _| async move {
            usage::put_advisor_job(&mut c, &job, expire_before).await
        })
    }

    fn advisor_job(&self, job_id: &str) -> Result<Option<AdvisorJob>, StoreError> {
        let id = job_id.to_owned();
        self.with_conn(move |c, _| async move { usage::advisor_job(&c, &id).await })
    }

    fn account_alias(&self) -> Result<Option<String>, StoreError> {
        self.with_conn(|c, _| async move { usage::account_alias(&c).await })
    }

    fn set_account_alias(&self, alias: &str) -> Result<(), StoreError> {
        let alias = alias.to_owned();
        self.with_conn(move |c, _| async move { usage::set_account_alias(&c, &alias).await })
    }

    fn delete_account_alias(&self, alias: &str) -> Result<(), StoreError> {
        let alias = alias.to_owned();
        self.with_conn(move |c, _| async move { usage::delete_account_alias(&c, &alias).await })
    }

    fn append_audit_events(&self, events: Vec<AuditEvent>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        self.with_conn(
            move |mut c, _| async move { usage::append_audit_events(&mut c, &events).await },
        )
    }

    fn audit_events(&self, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        let query = query.clone();
        self.with_conn(move |c, _| async move { usage::audit_events(&c, &query).await })
    }

    fn purge_audit_events(&self, before: i64) -> Result<usize, StoreError> {
        self.with_conn(
            move |mut c, _| async move { usage::purge_audit_events(&mut c, before).await },
        )
    }

    fn put_portal_session(
        &self,
        replaces: Option<&[u8]>,
        session: &PortalSession,
    ) -> Result<(), StoreError> {
        let (replaces, session) = (replaces.map(<[u8]>::to_vec), session.clone());
        self.with_conn(move |mut c, _| async move {
            portal::put_portal_session(&mut c, replaces.as_deref(), &session).await
        })
    }

    fn portal_session(&self, id_hash: &[u8]) -> Result<Option<PortalSession>, StoreError> {
        let id = id_hash.to_vec();
        self.with_conn(move |c, _| async move { portal::portal_session(&c, &id).await })
    }

    fn touch_portal_session(&self, id_hash: &[u8], now: i64) -> Result<(), StoreError> {
        let id = id_hash.to_vec();
        self.with_conn(move |c, _| async move { portal::touch_portal_session(&c, &id, now).await })
    }

    fn delete_portal_session(&self, id_hash: &[u8]) -> Result<(), StoreError> {
        let id = id_hash.to_vec();
        self.with_conn(move |c, _| async move { portal::delete_portal_session(&c, &id).await })
    }

    fn portal_signin_failures(&self, name: &str, since: i64) -> Result<u32, StoreError> {
        let name = name.to_owned();
        self.with_conn(
            move |c, _| async move { portal::portal_signin_failures(&c, &name, since).await },
        )
    }

    fn record_portal_signin_failure(
        &self,
        name: &str,
        now: i64,
        window_secs: i64,
    ) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.with_conn(move |mut c, _| async move {
            portal::record_portal_signin_failure(&mut c, &name, now, window_secs).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_postgres_history_mirrors_the_sqlite_history() {
        let sqlite: Vec<String> =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter_map(|n| n.strip_suffix(".sql").map(str::to_owned))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
        let postgres: Vec<String> = MIGRATIONS.iter().map(|(n, _)| (*n).to_owned()).collect();
        assert_eq!(sqlite, postgres);
        assert_eq!(crate::sqlite::MIGRATION_COUNT, MIGRATIONS.len());
    }

    #[test]
    fn root_certificate_is_taken_out_of_the_url() {
        assert_eq!(
            split_root_cert("postgres://u@h/db?sslmode=require&sslrootcert=/ca.pem"),
            (
                "postgres://u@h/db?sslmode=require".into(),
                Some("/ca.pem".into())
            )
        );
        assert_eq!(
            split_root_cert("postgres://u@h/db"),
            ("postgres://u@h/db".into(), None)
        );
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(valid_schema("tg_test_1"));
        assert!(!valid_schema("a;drop table x"));
        assert!(!valid_schema("1abc"));
        assert!(!valid_schema(""));
    }
}
