//! The shared state of the service, and its start-up: first start creates the account, the
//! master key, the root credentials and the service keys; later starts reuse them.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use ring::rand::{SecureRandom, SystemRandom};
use time::OffsetDateTime;
use tokengate_store::{
    AccessKey, Account, Bootstrap, KeyOwner, KeyStatus, PgOptions, PostgresStore, SqliteStore,
    Store, StoredSigningKey,
};
use tokengate_token::Secret;
use tokengate_token::keys::{self, DerivationKey};
use tokengate_token::session::{SigningKey, TokenSigner, TokenVerifier};
use tokengate_token::sigv4::{DEFAULT_SIGNING_KEYS, SigningKeys};

use crate::config::Config;

/// File (in the data dir) holding the root credentials, written once at first start.
pub const ROOT_CREDENTIALS_FILE: &str = "root-credentials.json";
/// File (in the data dir) holding the master key.
pub const MASTER_KEY_FILE: &str = "master.key";
/// The SQLite database file (in the data dir).
pub const DATABASE_FILE: &str = "tokengate.db";
/// The longest a session token can live (GetSessionToken's maximum, 36 h); a retired
/// signing key keeps verifying this long after it stopped signing.
pub const MAX_SESSION_SECS: i64 = 129_600;

/// The time source. Production uses the system clock; tests use a fixed one.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> OffsetDateTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// Everything a request handler needs.
pub struct AppState {
    /// The configuration.
    pub config: Config,
    /// The account id of this store.
    pub account_id: String,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Randomness for ids, keys and request ids.
    pub rng: SystemRandom,
    /// Derives temporary secrets.
    pub derivation: DerivationKey,
    /// Signs session tokens with the current key, kept equal to the store's
    /// ([`crate::key_ring`]).
    pub signer: crate::key_ring::KeyRing,
    /// Verifies session tokens against current and retired keys.
    pub verifier: TokenVerifier,
    /// SigV4 signing keys derived for recent requests.
    pub signing_keys: SigningKeys,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The relying party and attestation policy of security keys.
    pub security_keys: crate::relying_party::Settings,
    /// Compiled identity policies per user, valid until the next IAM change.
    pub policies: crate::principals::PolicyCache,
    /// Console-password hashing: argon2id parameters and the bound on hashing at once.
    pub password_hashing: crate::passwords::PasswordHashing,
    /// Access-key and per-action usage, batched in memory and flushed (issue 12).
    pub usage: crate::usage::UsageRecorder,
    /// The audit trail's queue and writer (docs/audit.md).
    pub audit: crate::audit::AuditTrail,
    /// The metrics of `GET /metrics` (docs/operations.md).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The failed-authentication throttle (docs/operations.md).
    pub throttle: crate::throttle::FailureThrottle,
}

/// Start-up failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A file or directory could not be made or read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The master key file is unusable.
    #[error(transparent)]
    MasterKey(#[from] tokengate_store::master_key::MasterKeyError),
    /// The store failed (the cause is the error's source, printed by `{:#}`).
    #[error("store")]
    Store(#[from] tokengate_store::StoreError),
    /// The data dir is in a state we will not guess about.
    #[error("{0}")]
    Inconsistent(String),
    /// The security-key settings cannot be used (e.g. an unreadable trust anchor).
    #[error("{0}")]
    SecurityKeys(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StartError + '_ {
    move |source| StartError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Opens (or on first start, creates) the data dir and returns the service state.
pub fn open(config: Config, clock: Arc<dyn Clock>) -> Result<AppState, StartError> {
    let dir = config.data_dir.clone();
    if !dir.exists() {
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io_err(&dir))?;
    }
    let key_file = config
        .master_key_file
        .clone()
        .unwrap_or_else(|| dir.join(MASTER_KEY_FILE));
    let pg_options = || PgOptions {
        pool_size: Some(config.store.pool_size),
        schema: config.store.schema.clone(),
        timeout: Some(std::time::Duration::from_millis(config.store.timeout_ms)),
    };
    if let Some(url) = &config.store.url
        && !key_file.exists()
        && PostgresStore::has_account(url, pg_options())?
    {
        // A new key could not open this store's secrets: say what to do instead of
        // creating one (the check after opening would catch it one step later).
        return Err(StartError::Inconsistent(format!(
            "the PostgreSQL store is already bootstrapped, but the master key file {} does \
             not exist: copy the master key file of the first replica there (or point \
             master_key_file / TOKENGATE_MASTER_KEY_FILE at it); refusing to create a new \
             master key, which could not open this store's secrets",
            key_file.display()
        )));
    }
    let (master, _) = tokengate_store::master_key::load_or_create(&key_file)?;
    let store: Arc<dyn Store> = match &config.store.url {
        None => Arc::new(SqliteStore::open(&dir.join(DATABASE_FILE), &master)?),
        Some(url) => Arc::new(PostgresStore::open(url, &master, pg_options())?),
    };
    open_with_store(config, store, clock)
}

/// Like [`open`], with a store the caller made (tests use an in-memory one).
pub fn open_with_store(
    config: Config,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
) -> Result<AppState, StartError> {
    let config_throttle = config.throttle.clone();
    let security_keys =
        crate::relying_party::Settings::from_config(&config.security_keys, config.listen)
            .map_err(StartError::SecurityKeys)?;
    let password_hashing = crate::passwords::PasswordHashing::new(&config.passwords)
        .map_err(StartError::Inconsistent)?;
    let rng = SystemRandom::new();
    let now = clock.now().unix_timestamp();
    let account = match store.account()? {
        Some(account) => account,
        None => first_start(&config, store.as_ref(), &rng, now)?,
    };
    if account.account_id != config.account_id {
        return Err(StartError::Inconsistent(format!(
            "the data dir {} belongs to account {}, but account_id is {}",
            config.data_dir.display(),
            account.account_id,
            config.account_id
        )));
    }
    let derivation = match store.service_secret(tokengate_store::DERIVATION_KEY) {
        Err(tokengate_store::StoreError::Unseal) => {
            return Err(StartError::Inconsistent(
                "the master key does not open this store's secrets: every replica of one \
                 store must use the same master key file (master_key_file / \
                 TOKENGATE_MASTER_KEY_FILE)"
                    .into(),
            ));
        }
        other => other?,
    }
    .ok_or_else(|| StartError::Inconsistent("the store has no derivation key".into()))?;
    let derivation = DerivationKey::new(derivation.expose());
    rotate_if_due(&config, store.as_ref(), &rng, now)?;
    let stored = store.signing_keys()?;
    let current = stored
        .iter()
        .find(|k| k.retired.is_none())
        .ok_or_else(|| StartError::Inconsistent("the store has no current signing key".into()))?;
    let signer = TokenSigner::new(&signing_key(current)?)
        .map_err(|e| StartError::Inconsistent(format!("signing key {}: {e}", current.kid)))?;
    let mut verifying = Vec::new();
    for k in &stored {
        if k.retired
            .is_none_or(|retired| retired + MAX_SESSION_SECS > now)
        {
            verifying.push(signing_key(k)?);
        }
    }
    let verifier = TokenVerifier::new(verifying.iter().map(SigningKey::public_key));
    let audit = if config.audit.enabled {
        let clock = Arc::clone(&clock);
        let file = match &config.audit.file {
            Some(path) => Some(crate::audit::open_json_lines(path).map_err(io_err(path))?),
            None => None,
        };
        crate::audit::AuditTrail::start_with_file(
            Arc::clone(&store),
            account.account_id.clone(),
            config.audit.queue_capacity,
            config.audit.retention_days,
            Arc::new(move || clock.now().unix_timestamp()),
            file,
        )
    } else {
        crate::audit::AuditTrail::disabled()
    };
    Ok(AppState {
        config,
        account_id: account.account_id,
        store,
        rng,
        derivation,
        signer: crate::key_ring::KeyRing::new(signer),
        verifier,
        signing_keys: SigningKeys::new(DEFAULT_SIGNING_KEYS),
        clock,
        security_keys,
        policies: crate::principals::PolicyCache::new(),
        password_hashing,
        usage: crate::usage::UsageRecorder::new(),
        audit,
        metrics: Arc::new(crate::metrics::Metrics::new()),
        throttle: crate::throttle::FailureThrottle::new(&config_throttle),
    })
}

fn signing_key(stored: &StoredSigningKey) -> Result<SigningKey, StartError> {
    SigningKey::from_pkcs8(stored.pkcs8.clone())
        .map_err(|e| StartError::Inconsistent(format!("signing key {}: {e}", stored.kid)))
}

fn new_signing_key(
    config: &Config,
    rng: &SystemRandom,
    now: i64,
) -> Result<StoredSigningKey, StartError> {
    let key = SigningKey::generate(config.session_tokens.algorithm, rng)
        .map_err(|e| StartError::Inconsistent(e.to_string()))?;
    Ok(StoredSigningKey {
        kid: key.kid().to_owned(),
        pkcs8: key.pkcs8().clone(),
        created: now,
        retired: None,
    })
}

fn rotate_if_due(
    config: &Config,
    store: &dyn Store,
    rng: &SystemRandom,
    now: i64,
) -> Result<(), StartError> {
    let keys = store.signing_keys()?;
    let Some(current) = keys.iter().find(|k| k.retired.is_none()) else {
        return Ok(());
    };
    let max_age = i64::from(config.session_tokens.rotate_after_days) * 86_400;
    let algorithm = signing_key(current)?.algorithm();
    if now - current.created < max_age && algorithm == config.session_tokens.algorithm {
        return Ok(());
    }
    let new = new_signing_key(config, rng, now)?;
    match store.rotate_signing_key(&current.kid, &new) {
        Ok(()) => {
            tracing::info!(
                old = %current.kid,
                new = %new.kid,
                algorithm = config.session_tokens.algorithm.as_str(),
                "rotated the session-token signing key"
            );
            Ok(())
        }
        // Another replica rotated first; its key is as good.
        Err(tokengate_store::StoreError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// First start: account, root key, derivation key, signing key; the root credentials are
/// written to a new 0600 file before the store commits, so they are never lost.
fn first_start(
    config: &Config,
    store: &dyn Store,
    rng: &SystemRandom,
    now: i64,
) -> Result<Account, StartError> {
    let account = Account {
        account_id: config.account_id.clone(),
        created: now,
    };
    let random = |_| StartError::Inconsistent("the system RNG failed".into());
    let access_key_id = keys::new_long_term_key_id(rng).map_err(random)?;
    let secret = keys::new_secret_access_key(rng).map_err(random)?;
    let mut derivation = vec![0u8; 32];
    rng.fill(&mut derivation)
        .map_err(|_| StartError::Inconsistent("the system RNG failed".into()))?;
    let path = config.data_dir.join(ROOT_CREDENTIALS_FILE);
    write_root_credentials(&path, &account.account_id, &access_key_id, &secret)?;
    let bootstrap = Bootstrap {
        account: account.clone(),
        root_key: AccessKey {
            access_key_id,
            owner: KeyOwner::Root,
            status: KeyStatus::Active,
            created: now,
            secret,
        },
        derivation_key: Secret::new(derivation),
        signing_key: new_signing_key(config, rng, now)?,
    };
    if let Err(e) = store.bootstrap(&bootstrap) {
        let _ = fs::remove_file(&path);
        if e == tokengate_store::StoreError::AlreadyExists(tokengate_store::Entity::Account) {
            // Another replica of a shared store created the account first: join it. Its
            // root credentials are in its own data dir; ours were never valid.
            tracing::info!("another replica created the account; joining it");
            return store.account()?.ok_or_else(|| {
                StartError::Inconsistent("the store lost its account during start-up".into())
            });
        }
        return Err(e.into());
    }
    tracing::info!(
        account = %account.account_id,
        path = %path.display(),
        "first start: created the account; the root credentials are in this file (mode 0600) — \
         lock them away"
    );
    Ok(account)
}

fn write_root_credentials(
    path: &Path,
    account_id: &str,
    access_key_id: &str,
    secret: &Secret,
) -> Result<(), StartError> {
    let secret = secret
        .expose_str()
        .ok_or_else(|| StartError::Inconsistent("secret access key is not text".into()))?;
    let body = zeroize::Zeroizing::new(
        serde_json::to_string_pretty(&serde_json::json!({
            "AccountId": account_id,
            "AccessKeyId": access_key_id,
            "SecretAccessKey": secret,
        }))
        .map_err(|e| StartError::Inconsistent(e.to_string()))?,
    );
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                StartError::Inconsistent(format!(
                    "{} exists but the store has no account: a first start was interrupted. \
                     Move the file away and start again.",
                    path.display()
                ))
            } else {
                StartError::Io {
                    path: path.display().to_string(),
                    source: e,
                }
            }
        })?;
    file.write_all(body.as_bytes()).map_err(io_err(path))?;
    file.write_all(b"\n").map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))?;
    Ok(())
}
