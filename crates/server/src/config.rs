//! Configuration: defaults, then the TOML file (`--config`), then `TOKENGATE_…` environment
//! variables, then command-line flags — each later source overrides the earlier.
//!
//! [`SETTINGS`] is the one table of every key, its environment variable and its default;
//! `docs/configuration.md` is written from it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokengate_token::session::TokenAlgorithm;

/// The service configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on. Loopback by default: tokengate hands out credentials.
    pub listen: SocketAddr,
    /// Where the store, the master key and the root credentials live.
    pub data_dir: PathBuf,
    /// The 12-digit account id.
    pub account_id: String,
    /// `[store]`: which database holds the state (SQLite in `data_dir` by default).
    pub store: StoreConfig,
    /// The master key file; `data_dir/master.key` when unset. Every replica sharing one
    /// PostgreSQL store must use the same key.
    pub master_key_file: Option<PathBuf>,
    /// Second-factor policy.
    pub mfa: MfaConfig,
    /// Session-token signing.
    pub session_tokens: SessionTokenConfig,
    /// U2F / FIDO2 security keys: relying party, attestation trust, challenges.
    pub security_keys: SecurityKeyConfig,
    /// Console passwords: argon2id parameters and the hashing bound.
    pub passwords: PasswordConfig,
    /// `[audit]`: the audit trail (docs/audit.md).
    pub audit: AuditConfig,
    /// Logging.
    pub log: LogConfig,
    /// The sign-in portal's sessions and sign-in throttle (docs/portal.md).
    pub portal: PortalConfig,
    /// `[http]`: connection limits and timeouts (docs/operations.md).
    pub http: HttpConfig,
    /// `[throttle]`: the failed-authentication throttle (docs/operations.md).
    pub throttle: ThrottleConfig,
}

/// `[http]` (docs/operations.md): what one connection may hold, and for how long.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// A connection that has not sent a whole request head this long after it became ready
    /// for one — just opened, or kept alive after a response — is closed (hyper's
    /// header-read timer, which is also the idle keep-alive timeout).
    pub header_read_timeout_ms: u64,
    /// Whether connections are kept alive between requests.
    pub keep_alive: bool,
    /// A request body that sends nothing for this long is abandoned (the wait between two
    /// reads; the body is at most 64 KiB).
    pub body_read_timeout_ms: u64,
    /// Connections served at once; beyond that new ones wait in the kernel's backlog.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: 10_000,
            keep_alive: true,
            body_read_timeout_ms: 10_000,
            max_connections: 8_192,
        }
    }
}

/// `[throttle]` (docs/operations.md): token buckets of failed authentications per source
/// address and per access key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    /// Whether failed authentications are throttled at all.
    pub enabled: bool,
    /// Failures a fresh address or key may have before it is throttled (bucket size).
    pub burst: u32,
    /// Failures forgiven per second (the bucket's refill).
    pub refill_per_sec: u32,
    /// Addresses (and, separately, access keys) tracked at once; the memory bound.
    pub max_tracked: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            burst: 40,
            refill_per_sec: 1,
            max_tracked: 65_536,
        }
    }
}

/// `[store]` (docs/configuration.md, ADR 0006): the database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// A libpq-style PostgreSQL URL (`postgres://user@host:port/db?sslmode=require`); `None`
    /// for the embedded SQLite store in `data_dir`.
    pub url: Option<String>,
    /// PostgreSQL connections per replica.
    pub pool_size: usize,
    /// A PostgreSQL schema for tokengate's tables (created if missing); `None`: the URL's
    /// `search_path` (`public`).
    pub schema: Option<String>,
    /// The longest one PostgreSQL operation may take (waiting for a connection included)
    /// before the request is answered `ServiceUnavailable`, in milliseconds.
    pub timeout_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: None,
            pool_size: DEFAULT_STORE_POOL_SIZE,
            schema: None,
            timeout_ms: DEFAULT_STORE_TIMEOUT_MS,
        }
    }
}

/// Default PostgreSQL pool size per replica.
pub const DEFAULT_STORE_POOL_SIZE: usize = 16;

/// Default bound on one PostgreSQL operation, in milliseconds.
pub const DEFAULT_STORE_TIMEOUT_MS: u64 = 10_000;

/// `[portal]` (docs/portal.md): browser sessions of the sign-in portal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortalConfig {
    /// A session with no request for this long is void.
    pub idle_timeout_secs: u32,
    /// A session is void this long after its sign-in, whatever its use (capped by the
    /// login profile's `MaxSigninSessionDuration` where set).
    pub absolute_timeout_secs: u32,
    /// Failed password sign-ins per user name within the window before the portal stops
    /// checking passwords for that name until the window has passed.
    pub max_signin_failures: u32,
    /// The window of `max_signin_failures`, seconds.
    pub signin_failure_window_secs: u32,
    /// Lifetime of the temporary credentials the portal shows (900–129600 s).
    pub credentials_secs: u32,
}

impl Default for PortalConfig {
    fn default() -> Self {
        Self {
            idle_timeout_secs: 900,
            absolute_timeout_secs: 43_200,
            max_signin_failures: 5,
            signin_failure_window_secs: 300,
            credentials_secs: 3_600,
        }
    }
}

/// `[security_keys]` (docs/security-keys.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityKeyConfig {
    /// The WebAuthn relying-party ID every credential is bound to (its SHA-256 is the
    /// rpIdHash / U2F application parameter). Changing it orphans every registered key.
    pub rp_id: String,
    /// The origin clients put in clientDataJSON; `None`: see [`SecurityKeyConfig::origin_for`].
    pub origin: Option<String>,
    /// PEM files of further attestation roots (or attestation certificates trusted
    /// directly), e.g. a simulator's CA.
    pub trust_anchors: Vec<PathBuf>,
    /// Trust the Yubico U2F root CA (shipped with tokengate).
    pub yubico_root: bool,
    /// Register keys whose attestation is `none` (nothing vouches for them).
    pub allow_none_attestation: bool,
    /// When not empty, only authenticators with these AAGUIDs register (U2F keys have the
    /// zero AAGUID, `00000000-0000-0000-0000-000000000000`).
    pub allowed_aaguids: Vec<String>,
    /// Seconds a ceremony challenge stays usable (at most 120).
    pub challenge_ttl_secs: u32,
    /// The attestation the portal asks browsers for when it registers a key: `direct` (the
    /// key's attestation certificate, checked against the trust anchors as for the CLI) or
    /// `none` (nothing vouches for the key; needs `allow_none_attestation`). Chromium's
    /// virtual authenticator re-signs its self-signed batch certificate on every
    /// registration, so a test with it uses `none` (docs/portal.md).
    pub browser_attestation: BrowserAttestation,
}

/// `security_keys.browser_attestation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrowserAttestation {
    /// Ask for the key's attestation certificate.
    Direct,
    /// Ask for none.
    None,
}

impl BrowserAttestation {
    /// The WebAuthn `attestation` conveyance value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::None => "none",
        }
    }
}

impl SecurityKeyConfig {
    /// The origin for a service listening on `listen`: the configured one; else, for a
    /// loopback listener and a relying party under `localhost` (the default
    /// `tokengate.localhost`), `http://RP_ID:PORT` — what a browser opening
    /// `http://RP_ID:PORT/signin` sends, scheme and port included (browsers refuse WebAuthn
    /// on `http://127.0.0.1`, portal.md §5.4); else `https://RP_ID` (behind TLS).
    pub fn origin_for(&self, listen: SocketAddr) -> String {
        if let Some(origin) = &self.origin {
            return origin.clone();
        }
        if self.is_loopback_rp() && listen.ip().is_loopback() {
            format!("http://{}:{}", self.rp_id, listen.port())
        } else {
            format!("https://{}", self.rp_id)
        }
    }

    /// Whether the relying-party ID is `localhost` or a name under it (RFC 6761 §6.3).
    pub fn is_loopback_rp(&self) -> bool {
        self.rp_id == "localhost" || self.rp_id.ends_with(".localhost")
    }
}

/// `[passwords]` (docs/passwords.md): how login-profile passwords are hashed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    /// argon2id memory cost in KiB (OWASP: 19456 with 2 iterations).
    pub argon2_memory_kib: u32,
    /// argon2id iterations (time cost).
    pub argon2_iterations: u32,
    /// argon2id lanes.
    pub argon2_parallelism: u32,
    /// Hashes computed at once, each on a blocking thread; the rest wait their turn.
    pub max_concurrent_hashes: u32,
    /// Hashes that may wait for a turn; beyond that a request is refused (`Throttling`).
    pub max_queued_hashes: u32,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self {
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            max_concurrent_hashes: 2,
            max_queued_hashes: 64,
        }
    }
}

/// `[audit]` (docs/audit.md): the CloudTrail-format audit trail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Whether decided requests are recorded.
    pub enabled: bool,
    /// Days an event is kept (CloudTrail's event history: 90).
    pub retention_days: u32,
    /// Events that may wait for the writer; more are dropped (and counted).
    pub queue_capacity: usize,
    /// A JSON-lines file the writer also appends every event to (for a SIEM), mode 0600.
    pub file: Option<PathBuf>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            retention_days: 90,
            queue_capacity: 65_536,
            file: None,
        }
    }
}

/// `[mfa]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MfaConfig {
    /// While true, GetSessionToken issues nothing without a verified second factor.
    /// False gives AWS's behaviour (MFA optional).
    pub required: bool,
    /// Consecutive failed codes that lock a device out.
    pub max_failures: u32,
    /// The first lockout, in seconds; each further lockout doubles it (at most one day).
    pub lockout_secs: u32,
}

/// `[session_tokens]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionTokenConfig {
    /// A signing key older than this many days is replaced at start-up; the old one keeps
    /// verifying the tokens it signed until they expire.
    pub rotate_after_days: u32,
    /// The algorithm of new signing keys; a current key of another algorithm is replaced
    /// at start-up, as if it were due.
    #[serde(deserialize_with = "token_algorithm")]
    pub algorithm: TokenAlgorithm,
}

fn token_algorithm<'de, D: serde::Deserializer<'de>>(d: D) -> Result<TokenAlgorithm, D::Error> {
    let name = String::deserialize(d)?;
    parse_token_algorithm(&name).map_err(serde::de::Error::custom)
}

fn parse_token_algorithm(name: &str) -> Result<TokenAlgorithm, String> {
    TokenAlgorithm::parse(name)
        .ok_or_else(|| format!("unknown session-token algorithm {name:?}: expected ES256 or EdDSA"))
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter, e.g. `info` or `tokengate_server=debug`.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl MfaConfig {
    /// The lockout policy these settings describe.
    pub fn lockout_policy(&self) -> tokengate_verifier::totp::LockoutPolicy {
        tokengate_verifier::totp::LockoutPolicy {
            max_failures: self.max_failures,
            base_secs: i64::from(self.lockout_secs),
            max_secs: 86_400,
        }
    }
}

/// Default relying-party ID: under the `.localhost` name reserved for loopback (RFC 6761
/// §6.3), so that no public website can share it.
pub const DEFAULT_RP_ID: &str = "tokengate.localhost";
/// The longest a security-key challenge may stay usable, and the default.
pub const MAX_CHALLENGE_TTL_SECS: u32 = 120;

/// Default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
/// Default account id, as AWS emulators use.
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            data_dir: default_data_dir(),
            account_id: DEFAULT_ACCOUNT_ID.to_owned(),
            store: StoreConfig::default(),
            master_key_file: None,
            mfa: MfaConfig::default(),
            session_tokens: SessionTokenConfig::default(),
            security_keys: SecurityKeyConfig::default(),
            passwords: PasswordConfig::default(),
            audit: AuditConfig::default(),
            log: LogConfig::default(),
            portal: PortalConfig::default(),
            http: HttpConfig::default(),
            throttle: ThrottleConfig::default(),
        }
    }
}

impl Default for SecurityKeyConfig {
    fn default() -> Self {
        Self {
            rp_id: DEFAULT_RP_ID.to_owned(),
            origin: None,
            trust_anchors: Vec::new(),
            yubico_root: true,
            allow_none_attestation: false,
            allowed_aaguids: Vec::new(),
            challenge_ttl_secs: MAX_CHALLENGE_TTL_SECS,
            browser_attestation: BrowserAttestation::Direct,
        }
    }
}

impl Default for MfaConfig {
    fn default() -> Self {
        Self {
            required: true,
            max_failures: 5,
            lockout_secs: 60,
        }
    }
}

impl Default for SessionTokenConfig {
    fn default() -> Self {
        Self {
            rotate_after_days: 30,
            algorithm: TokenAlgorithm::Es256,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// `$XDG_DATA_HOME/tokengate`, else `~/.local/share/tokengate`, else `./tokengate-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("tokengate");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/tokengate");
    }
    PathBuf::from("tokengate-data")
}

/// One configuration key: where it lives in the TOML file, its environment variable,
/// its default and what it does.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Dotted TOML key.
    pub key: &'static str,
    /// Environment variable.
    pub env: &'static str,
    /// Default, as text.
    pub default: &'static str,
    /// What it does.
    pub doc: &'static str,
}

/// Every setting. `TOKENGATE_` + the dotted key upper-cased with `.` as `_`.
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "listen",
        env: "TOKENGATE_LISTEN",
        default: DEFAULT_LISTEN,
        doc: "Address to listen on (`--listen`). Keep it on loopback unless behind TLS.",
    },
    Setting {
        key: "data_dir",
        env: "TOKENGATE_DATA_DIR",
        default: "$XDG_DATA_HOME/tokengate or ~/.local/share/tokengate",
        doc: "Store, master key and root credentials (`--data-dir`). Created 0700.",
    },
    Setting {
        key: "store.url",
        env: "TOKENGATE_STORE_URL",
        default: "unset (SQLite in data_dir)",
        doc: "PostgreSQL URL `postgres://user@host:port/db?sslmode=require` (`--store-url`): \
              replicas sharing it share all state.",
    },
    Setting {
        key: "store.pool_size",
        env: "TOKENGATE_STORE_POOL_SIZE",
        default: "16",
        doc: "PostgreSQL connections per replica.",
    },
    Setting {
        key: "store.schema",
        env: "TOKENGATE_STORE_SCHEMA",
        default: "unset (public)",
        doc: "PostgreSQL schema for tokengate's tables, created if missing (lower-case \
              letters, digits, _): several deployments can share one database.",
    },
    Setting {
        key: "store.timeout_ms",
        env: "TOKENGATE_STORE_TIMEOUT_MS",
        default: "10000",
        doc: "The longest one PostgreSQL operation may take (waiting for a connection \
              included) before the request is answered `ServiceUnavailable`.",
    },
    Setting {
        key: "master_key_file",
        env: "TOKENGATE_MASTER_KEY_FILE",
        default: "data_dir/master.key",
        doc: "The master key sealing secrets at rest; created 0600 if absent. The same on \
              every replica of one PostgreSQL store.",
    },
    Setting {
        key: "account_id",
        env: "TOKENGATE_ACCOUNT_ID",
        default: DEFAULT_ACCOUNT_ID,
        doc: "The 12-digit account id; fixed at first start.",
    },
    Setting {
        key: "mfa.required",
        env: "TOKENGATE_MFA_REQUIRED",
        default: "true",
        doc: "Refuse GetSessionToken without a verified second factor. `false`: AWS behaviour.",
    },
    Setting {
        key: "mfa.max_failures",
        env: "TOKENGATE_MFA_MAX_FAILURES",
        default: "5",
        doc: "Consecutive wrong codes after which a device refuses every code for a while.",
    },
    Setting {
        key: "mfa.lockout_secs",
        env: "TOKENGATE_MFA_LOCKOUT_SECS",
        default: "60",
        doc: "The first lockout in seconds; each further one doubles (at most a day).",
    },
    Setting {
        key: "session_tokens.rotate_after_days",
        env: "TOKENGATE_SESSION_TOKENS_ROTATE_AFTER_DAYS",
        default: "30",
        doc: "Replace the session-token signing key at start-up when older than this.",
    },
    Setting {
        key: "session_tokens.algorithm",
        env: "TOKENGATE_SESSION_TOKENS_ALGORITHM",
        default: "ES256",
        doc: "`ES256` (P-256) or `EdDSA` (Ed25519) for new signing keys; a current key of the \
              other kind is replaced at start-up and keeps verifying its tokens.",
    },
    Setting {
        key: "security_keys.rp_id",
        env: "TOKENGATE_SECURITY_KEYS_RP_ID",
        default: DEFAULT_RP_ID,
        doc: "WebAuthn relying-party ID of every security key; changing it orphans them all.",
    },
    Setting {
        key: "security_keys.origin",
        env: "TOKENGATE_SECURITY_KEYS_ORIGIN",
        default: "http://<rp_id>:<port>",
        doc: "The origin clients write in clientDataJSON and the portal's URL; the default is \
              for an rp_id under localhost on a loopback listener (else https://<rp_id>).",
    },
    Setting {
        key: "security_keys.browser_attestation",
        env: "TOKENGATE_SECURITY_KEYS_BROWSER_ATTESTATION",
        default: "direct",
        doc: "Attestation the portal asks browsers for: `direct` or `none` (needs \
              allow_none_attestation).",
    },
    Setting {
        key: "security_keys.trust_anchors",
        env: "TOKENGATE_SECURITY_KEYS_TRUST_ANCHORS",
        default: "none",
        doc: "PEM files of extra attestation roots (env: `:`-separated), e.g. a simulator CA.",
    },
    Setting {
        key: "security_keys.yubico_root",
        env: "TOKENGATE_SECURITY_KEYS_YUBICO_ROOT",
        default: "true",
        doc: "Trust the Yubico U2F root CA (shipped) for attestation.",
    },
    Setting {
        key: "security_keys.allow_none_attestation",
        env: "TOKENGATE_SECURITY_KEYS_ALLOW_NONE_ATTESTATION",
        default: "false",
        doc: "Register keys that send `none` attestation (nothing vouches for them).",
    },
    Setting {
        key: "security_keys.allowed_aaguids",
        env: "TOKENGATE_SECURITY_KEYS_ALLOWED_AAGUIDS",
        default: "any",
        doc: "Only these authenticator models register (env: `,`-separated UUIDs).",
    },
    Setting {
        key: "security_keys.challenge_ttl_secs",
        env: "TOKENGATE_SECURITY_KEYS_CHALLENGE_TTL_SECS",
        default: "120",
        doc: "Seconds a registration or login challenge stays usable (1–120).",
    },
    Setting {
        key: "passwords.argon2_memory_kib",
        env: "TOKENGATE_PASSWORDS_ARGON2_MEMORY_KIB",
        default: "19456",
        doc: "argon2id memory cost (KiB) of new password hashes; older hashes are redone at \
              their next use.",
    },
    Setting {
        key: "passwords.argon2_iterations",
        env: "TOKENGATE_PASSWORDS_ARGON2_ITERATIONS",
        default: "2",
        doc: "argon2id iterations of new password hashes (OWASP: 2 with 19456 KiB).",
    },
    Setting {
        key: "passwords.argon2_parallelism",
        env: "TOKENGATE_PASSWORDS_ARGON2_PARALLELISM",
        default: "1",
        doc: "argon2id lanes of new password hashes.",
    },
    Setting {
        key: "passwords.max_concurrent_hashes",
        env: "TOKENGATE_PASSWORDS_MAX_CONCURRENT_HASHES",
        default: "2",
        doc: "Password hashes computed at once (each takes a blocking thread).",
    },
    Setting {
        key: "passwords.max_queued_hashes",
        env: "TOKENGATE_PASSWORDS_MAX_QUEUED_HASHES",
        default: "64",
        doc: "Password hashes that may wait; more are refused with `Throttling`.",
    },
    Setting {
        key: "audit.enabled",
        env: "TOKENGATE_AUDIT_ENABLED",
        default: "true",
        doc: "Record every decided request as a CloudTrail-format event (docs/audit.md).",
    },
    Setting {
        key: "audit.retention_days",
        env: "TOKENGATE_AUDIT_RETENTION_DAYS",
        default: "90",
        doc: "Days an audit event is kept (1–3650; CloudTrail's event history keeps 90).",
    },
    Setting {
        key: "audit.queue_capacity",
        env: "TOKENGATE_AUDIT_QUEUE_CAPACITY",
        default: "65536",
        doc: "Audit events that may wait for the writer; beyond that they are dropped and \
              counted (the request path never waits).",
    },
    Setting {
        key: "audit.file",
        env: "TOKENGATE_AUDIT_FILE",
        default: "(none)",
        doc: "Also append every audit event, one CloudTrail JSON record per line, to this \
              file (created 0600) for a SIEM; empty for none.",
    },
    Setting {
        key: "portal.idle_timeout_secs",
        env: "TOKENGATE_PORTAL_IDLE_TIMEOUT_SECS",
        default: "900",
        doc: "A portal session with no request for this long is signed out.",
    },
    Setting {
        key: "portal.absolute_timeout_secs",
        env: "TOKENGATE_PORTAL_ABSOLUTE_TIMEOUT_SECS",
        default: "43200",
        doc: "A portal session ends this long after sign-in (or the login profile's \
              MaxSigninSessionDuration, if shorter).",
    },
    Setting {
        key: "portal.max_signin_failures",
        env: "TOKENGATE_PORTAL_MAX_SIGNIN_FAILURES",
        default: "5",
        doc: "Wrong passwords per user name within the window before portal sign-in pauses.",
    },
    Setting {
        key: "portal.signin_failure_window_secs",
        env: "TOKENGATE_PORTAL_SIGNIN_FAILURE_WINDOW_SECS",
        default: "300",
        doc: "The window of `portal.max_signin_failures`, seconds.",
    },
    Setting {
        key: "portal.credentials_secs",
        env: "TOKENGATE_PORTAL_CREDENTIALS_SECS",
        default: "3600",
        doc: "Lifetime of the temporary credentials the portal shows (900–129600).",
    },
    Setting {
        key: "http.header_read_timeout_ms",
        env: "TOKENGATE_HTTP_HEADER_READ_TIMEOUT_MS",
        default: "10000",
        doc: "Close a connection that has not sent a whole request head this long after it \
              opened or after its last response (also the idle keep-alive timeout).",
    },
    Setting {
        key: "http.keep_alive",
        env: "TOKENGATE_HTTP_KEEP_ALIVE",
        default: "true",
        doc: "Keep connections open between requests (HTTP/1.1 keep-alive).",
    },
    Setting {
        key: "http.body_read_timeout_ms",
        env: "TOKENGATE_HTTP_BODY_READ_TIMEOUT_MS",
        default: "10000",
        doc: "Abandon a request whose body sends nothing for this long (`RequestTimeout`).",
    },
    Setting {
        key: "http.max_connections",
        env: "TOKENGATE_HTTP_MAX_CONNECTIONS",
        default: "8192",
        doc: "Connections served at once; more wait in the listen backlog. Keep it under the \
              file-descriptor limit (`ulimit -n`).",
    },
    Setting {
        key: "throttle.enabled",
        env: "TOKENGATE_THROTTLE_ENABLED",
        default: "true",
        doc: "Throttle failed authentications per source address and per access key.",
    },
    Setting {
        key: "throttle.burst",
        env: "TOKENGATE_THROTTLE_BURST",
        default: "40",
        doc: "Failed authentications an address or key may have before its requests get \
              `Throttling` (token-bucket size).",
    },
    Setting {
        key: "throttle.refill_per_sec",
        env: "TOKENGATE_THROTTLE_REFILL_PER_SEC",
        default: "1",
        doc: "Failures forgiven per second, per address and per key (token-bucket refill).",
    },
    Setting {
        key: "throttle.max_tracked",
        env: "TOKENGATE_THROTTLE_MAX_TRACKED",
        default: "65536",
        doc: "Addresses, and separately access keys, tracked at once (bounds the memory).",
    },
    Setting {
        key: "log.level",
        env: "TOKENGATE_LOG_LEVEL",
        default: "info",
        doc: "Tracing filter (`RUST_LOG` syntax).",
    },
    Setting {
        key: "log.format",
        env: "TOKENGATE_LOG_FORMAT",
        default: "text",
        doc: "`text` or `json` log lines on stderr.",
    },
];

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An environment variable has a value of the wrong form.
    #[error("{env}={value:?}: {message}")]
    Env {
        /// The variable.
        env: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        message: String,
    },
    /// The result is not a usable configuration.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, overridden by `file` (if any), then by `env` (a lookup such as
    /// `std::env::var`).
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: shown.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: shown,
                    message: e.to_string(),
                })?
            }
            None => Config::default(),
        };
        for setting in SETTINGS {
            if let Some(value) = env(setting.env) {
                config.set(setting, &value)?;
            }
        }
        config.validate()?;
        Ok(config)
    }

    fn set(&mut self, setting: &'static Setting, value: &str) -> Result<(), ConfigError> {
        let bad = |message: &str| ConfigError::Env {
            env: setting.env,
            value: value.to_owned(),
            message: message.to_owned(),
        };
        match setting.key {
            "listen" => self.listen = value.parse().map_err(|_| bad("expected HOST:PORT"))?,
            "data_dir" => self.data_dir = PathBuf::from(value),
            "account_id" => self.account_id = value.to_owned(),
            "store.url" => self.store.url = Some(value.to_owned()).filter(|v| !v.is_empty()),
            "store.pool_size" => {
                self.store.pool_size = value.parse().map_err(|_| bad("expected a count"))?;
            }
            "store.schema" => self.store.schema = Some(value.to_owned()).filter(|v| !v.is_empty()),
            "store.timeout_ms" => {
                self.store.timeout_ms = value.parse().map_err(|_| bad("expected milliseconds"))?;
            }
            "master_key_file" => {
                self.master_key_file =
                    Some(PathBuf::from(value)).filter(|p| !p.as_os_str().is_empty());
            }
            "mfa.required" => {
                self.mfa.required =
                    parse_bool(value).ok_or_else(|| bad("expected true or false"))?
            }
            "mfa.max_failures" => {
                self.mfa.max_failures = value.parse().map_err(|_| bad("expected a count"))?;
            }
            "mfa.lockout_secs" => {
                self.mfa.lockout_secs = value.parse().map_err(|_| bad("expected seconds"))?;
            }
            "session_tokens.rotate_after_days" => {
                self.session_tokens.rotate_after_days = value
                    .parse()
                    .map_err(|_| bad("expected a number of days"))?;
            }
            "session_tokens.algorithm" => {
                self.session_tokens.algorithm =
                    parse_token_algorithm(value).map_err(|_| bad("expected ES256 or EdDSA"))?;
            }
            "security_keys.rp_id" => self.security_keys.rp_id = value.to_owned(),
            "security_keys.origin" => {
                self.security_keys.origin = Some(value.to_owned()).filter(|v| !v.is_empty());
            }
            "security_keys.browser_attestation" => {
                self.security_keys.browser_attestation = match value {
                    "direct" => BrowserAttestation::Direct,
                    "none" => BrowserAttestation::None,
                    _ => return Err(bad("expected direct or none")),
                };
            }
            "security_keys.trust_anchors" => {
                self.security_keys.trust_anchors = std::env::split_paths(value)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect();
            }
            "security_keys.yubico_root" => {
                self.security_keys.yubico_root =
                    parse_bool(value).ok_or_else(|| bad("expected true or false"))?;
            }
            "security_keys.allow_none_attestation" => {
                self.security_keys.allow_none_attestation =
                    parse_bool(value).ok_or_else(|| bad("expected true or false"))?;
            }
            "security_keys.allowed_aaguids" => {
                self.security_keys.allowed_aaguids = value
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "security_keys.challenge_ttl_secs" => {
                self.security_keys.challenge_ttl_secs =
                    value.parse().map_err(|_| bad("expected seconds"))?;
            }
            "passwords.argon2_memory_kib" => {
                self.passwords.argon2_memory_kib =
                    value.parse().map_err(|_| bad("expected KiB"))?;
            }
            "passwords.argon2_iterations" => {
                self.passwords.argon2_iterations =
                    value.parse().map_err(|_| bad("expected a count"))?;
            }
            "passwords.argon2_parallelism" => {
                self.passwords.argon2_parallelism =
                    value.parse().map_err(|_| bad("expected a count"))?;
            }
            "passwords.max_concurrent_hashes" => {
                self.passwords.max_concurrent_hashes =
                    value.parse().map_err(|_| bad("expected a count"))?;
            }
            "passwords.max_queued_hashes" => {
                self.passwords.max_queued_hashes =
                    value.parse().map_err(|_| bad("expected a count"))?;
            }
            "audit.enabled" => {
                self.audit.enabled =
                    parse_bool(value).ok_or_else(|| bad("expected true or false"))?;
            }
            "audit.retention_days" => {
                self.audit.retention_days = value
                    .parse()
                    .map_err(|_| bad("expected a number of days"))?;
            }
            "audit.queue_capacity" => {
                self.audit.queue_capacity = value.parse().map_err(|_| bad("expected a count"))?;
            }
            "audit.file" => {
                self.audit.file = Some(PathBuf::from(value)).filter(|p| !p.as_os_str().is_empty());
            }
            "portal.idle_timeout_secs" => {
                self.portal.idle_timeout_secs =
                    value.parse().map_err(|_| bad("expected seconds"))?;
            }
            "portal.absolute_timeout_secs" => {
                self.portal.absolute_timeout_secs =
                    value.parse().map_err(|_| bad("expected seconds"))?;
            }
            "portal.max_signin_failures" => {
                self.portal.max_signin_failures =
                    value.parse().map_err(|_| bad("expected a count"))?;
            }
            "portal.signin_failure_window_secs" => {
                self.portal.signin_failure_window_secs =
                    value.parse().map_err(|_| bad("expected seconds"))?;
            }
            "portal.credentials_secs" => {
                self.portal.credentials_secs =
                    value.parse().map_err(|_| bad("expected seconds"))?;
            }
            "http.header_read_timeout_ms" => {
                self.http.header_read_timeout_ms =
                    value.parse().map_err(|_| bad("expected milliseconds"))?;
            }
            "http.keep_alive" => {
                self.http.keep_alive =
                    parse_bool(value).ok_or_else(|| bad("expected true or false"))?;
            }
            "http.body_read_timeout_ms" => {
                self.http.body_read_timeout_ms =
                    value.parse().map_err(|_| bad("expected milliseconds"))?;
            }
            "http.max_connections" => {
                self.http.max_connections = value.parse().map_err(|_| bad("expected a count"))?;
            }
            "throttle.enabled" => {
                self.throttle.enabled =
                    parse_bool(value).ok_or_else(|| bad("expected true or false"))?;
            }
            "throttle.burst" => {
                self.throttle.burst = value.parse().map_err(|_| bad("expected a count"))?;
            }
            "throttle.refill_per_sec" => {
                self.throttle.refill_per_sec =
                    value.parse().map_err(|_| bad("expected a count"))?;
            }
            "throttle.max_tracked" => {
                self.throttle.max_tracked = value.parse().map_err(|_| bad("expected a count"))?;
            }
            "log.level" => self.log.level = value.to_owned(),
            "log.format" => {
                self.log.format = match value {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    _ => return Err(bad("expected text or json")),
                }
            }
            _ => return Err(bad("unknown setting")),
        }
        Ok(())
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        tokengate_token::AccountId::parse(&self.account_id)
            .map_err(|e| ConfigError::Invalid(format!("account_id {:?}: {e}", self.account_id)))?;
        if self.mfa.max_failures == 0 || self.mfa.lockout_secs == 0 {
            return Err(ConfigError::Invalid(
                "mfa.max_failures and mfa.lockout_secs must be ≥ 1".into(),
            ));
        }
        if !(1..=3650).contains(&self.audit.retention_days) || self.audit.queue_capacity == 0 {
            return Err(ConfigError::Invalid(
                "audit.retention_days must be 1–3650 and audit.queue_capacity ≥ 1".into(),
            ));
        }
        if self.store.pool_size == 0 {
            return Err(ConfigError::Invalid("store.pool_size must be ≥ 1".into()));
        }
        if !(100..=600_000).contains(&self.store.timeout_ms) {
            return Err(ConfigError::Invalid(
                "store.timeout_ms must be 100–600000".into(),
            ));
        }
        if let Some(url) = &self.store.url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid(
                "store.url must be a postgres:// URL (unset it for SQLite in data_dir)".into(),
            ));
        }
        if self.session_tokens.rotate_after_days == 0 {
            return Err(ConfigError::Invalid(
                "session_tokens.rotate_after_days must be ≥ 1".into(),
            ));
        }
        crate::passwords::argon2_params(&self.passwords)
            .map_err(|e| ConfigError::Invalid(format!("passwords: {e}")))?;
        if self.passwords.max_concurrent_hashes == 0 {
            return Err(ConfigError::Invalid(
                "passwords.max_concurrent_hashes must be ≥ 1".into(),
            ));
        }
        let portal = &self.portal;
        if portal.idle_timeout_secs == 0
            || portal.absolute_timeout_secs == 0
            || portal.max_signin_failures == 0
            || portal.signin_failure_window_secs == 0
        {
            return Err(ConfigError::Invalid(
                "portal timeouts, max_signin_failures and signin_failure_window_secs must be ≥ 1"
                    .into(),
            ));
        }
        if !(900..=129_600).contains(&portal.credentials_secs) {
            return Err(ConfigError::Invalid(
                "portal.credentials_secs must be 900–129600".into(),
            ));
        }
        let http = &self.http;
        if http.header_read_timeout_ms == 0
            || http.body_read_timeout_ms == 0
            || http.max_connections == 0
        {
            return Err(ConfigError::Invalid(
                "http timeouts and http.max_connections must be ≥ 1".into(),
            ));
        }
        let throttle = &self.throttle;
        if throttle.burst == 0 || throttle.refill_per_sec == 0 || throttle.max_tracked == 0 {
            return Err(ConfigError::Invalid(
                "throttle.burst, throttle.refill_per_sec and throttle.max_tracked must be ≥ 1"
                    .into(),
            ));
        }
        self.security_keys.validate()
    }
}

impl SecurityKeyConfig {
    /// Checks the relying party, the origin, the AAGUIDs and the challenge lifetime.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(format!("security_keys.{m}")));
        let rp_id = &self.rp_id;
        let host_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
        if rp_id.is_empty()
            || rp_id.len() > 253
            || !rp_id.chars().all(host_char)
            || rp_id.starts_with('.')
            || rp_id.ends_with('.')
        {
            return invalid(format!("rp_id {rp_id:?} is not a host name"));
        }
        if self.browser_attestation == BrowserAttestation::None && !self.allow_none_attestation {
            return invalid(
                "browser_attestation = \"none\" needs allow_none_attestation = true".into(),
            );
        }
        let Some(origin) = &self.origin else {
            return self.validate_rest();
        };
        let Some(rest) = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
        else {
            return invalid(format!("origin {origin:?} is not an http(s) origin"));
        };
        if rest.is_empty() || rest.contains('/') {
            return invalid(format!("origin {origin:?}: scheme://host[:port], no path"));
        }
        self.validate_rest()
    }

    fn validate_rest(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(format!("security_keys.{m}")));
        for aaguid in &self.allowed_aaguids {
            if parse_aaguid(aaguid).is_none() {
                return invalid(format!("allowed_aaguids: {aaguid:?} is not a UUID"));
            }
        }
        if !(1..=MAX_CHALLENGE_TTL_SECS).contains(&self.challenge_ttl_secs) {
            return invalid(format!(
                "challenge_ttl_secs must be 1–{MAX_CHALLENGE_TTL_SECS}"
            ));
        }
        Ok(())
    }
}

/// An AAGUID written as a UUID (`2fc0579f-8113-47ea-b116-bb5a8db9202a`) or 32 hex digits.
pub fn parse_aaguid(text: &str) -> Option<[u8; 16]> {
    let hex: String = text.chars().filter(|&c| c != '-').collect();
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(hex.as_bytes())
        .ok()?;
    <[u8; 16]>::try_from(bytes.as_slice()).ok()
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8787))
    }

    #[test]
    fn defaults_file_then_env() {
        let c = Config::load(None, |_| None).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert!(c.mfa.required);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "account_id = \"123456789012\"\n[mfa]\nrequired = false\n",
        )
        .unwrap();
        let c = Config::load(Some(&path), |_| None).unwrap();
        assert_eq!(c.account_id, "123456789012");
        assert!(!c.mfa.required);
        let c = Config::load(Some(&path), |k| {
            (k == "TOKENGATE_MFA_REQUIRED").then(|| "true".into())
        })
        .unwrap();
        assert!(c.mfa.required);
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let e = Config::load(None, |k| (k == "TOKENGATE_LISTEN").then(|| "nope".into()));
        assert!(e.unwrap_err().to_string().contains("TOKENGATE_LISTEN"));
        let e = Config::load(None, |k| (k == "TOKENGATE_ACCOUNT_ID").then(|| "12".into()));
        assert!(e.unwrap_err().to_string().contains("12 digits"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "no_such_key = 1\n").unwrap();
        assert!(matches!(
            Config::load(Some(&path), |_| None),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn session_token_algorithm_from_file_and_env() {
        assert_eq!(
            Config::default().session_tokens.algorithm,
            TokenAlgorithm::Es256
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[session_tokens]\nalgorithm = \"EdDSA\"\n").unwrap();
        let c = Config::load(Some(&path), |_| None).unwrap();
        assert_eq!(c.session_tokens.algorithm, TokenAlgorithm::EdDsa);
        let var = "TOKENGATE_SESSION_TOKENS_ALGORITHM";
        let c = Config::load(Some(&path), |k| (k == var).then(|| "ES256".into())).unwrap();
        assert_eq!(c.session_tokens.algorithm, TokenAlgorithm::Es256);
        // Names are exact, as in a JWS header; others are refused, naming the setting.
        for bad in ["es256", "RS256", "none", ""] {
            let e = Config::load(None, |k| (k == var).then(|| bad.into())).unwrap_err();
            assert!(e.to_string().contains(var), "{bad:?}: {e}");
        }
        std::fs::write(&path, "[session_tokens]\nalgorithm = \"HS256\"\n").unwrap();
        let e = Config::load(Some(&path), |_| None).unwrap_err();
        assert!(e.to_string().contains("ES256 or EdDSA"), "{e}");
    }

    #[test]
    fn security_key_settings_from_env_and_their_checks() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let c = Config::load(
            None,
            env(&[
                ("TOKENGATE_SECURITY_KEYS_RP_ID", "login.example.com"),
                ("TOKENGATE_SECURITY_KEYS_TRUST_ANCHORS", "/a.pem:/b.pem"),
                ("TOKENGATE_SECURITY_KEYS_YUBICO_ROOT", "off"),
                (
                    "TOKENGATE_SECURITY_KEYS_ALLOWED_AAGUIDS",
                    " 2fc0579f-8113-47ea-b116-bb5a8db9202a, 00000000000000000000000000000000",
                ),
                ("TOKENGATE_SECURITY_KEYS_CHALLENGE_TTL_SECS", "30"),
            ]),
        )
        .unwrap();
        let k = &c.security_keys;
        assert_eq!(k.origin_for(listen()), "https://login.example.com");
        assert_eq!(
            k.trust_anchors,
            [PathBuf::from("/a.pem"), PathBuf::from("/b.pem")]
        );
        assert!(!k.yubico_root);
        assert_eq!(k.allowed_aaguids.len(), 2);
        assert_eq!(k.challenge_ttl_secs, 30);
        let c = Config::load(
            None,
            env(&[("TOKENGATE_SECURITY_KEYS_ORIGIN", "http://localhost:8080")]),
        )
        .unwrap();
        assert_eq!(
            c.security_keys.origin_for(listen()),
            "http://localhost:8080"
        );
        // The default: the browser's origin on a loopback listener, scheme and port
        // included; https behind anything else.
        let k = SecurityKeyConfig::default();
        assert_eq!(k.origin_for(listen()), "http://tokengate.localhost:8787");
        let public = SocketAddr::from(([0, 0, 0, 0], 443));
        assert_eq!(k.origin_for(public), "https://tokengate.localhost");
        let k = SecurityKeyConfig {
            rp_id: "login.example.com".into(),
            ..SecurityKeyConfig::default()
        };
        assert_eq!(k.origin_for(listen()), "https://login.example.com");
        // `none` from browsers only where `none` attestation is allowed.
        let none = env(&[("TOKENGATE_SECURITY_KEYS_BROWSER_ATTESTATION", "none")]);
        assert!(Config::load(None, none).is_err());
        let c = Config::load(
            None,
            env(&[
                ("TOKENGATE_SECURITY_KEYS_BROWSER_ATTESTATION", "none"),
                ("TOKENGATE_SECURITY_KEYS_ALLOW_NONE_ATTESTATION", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.security_keys.browser_attestation,
            BrowserAttestation::None
        );
        for bad in [
            &[("TOKENGATE_SECURITY_KEYS_CHALLENGE_TTL_SECS", "121")][..],
            &[("TOKENGATE_SECURITY_KEYS_CHALLENGE_TTL_SECS", "0")],
            &[("TOKENGATE_SECURITY_KEYS_RP_ID", "")],
            &[("TOKENGATE_SECURITY_KEYS_RP_ID", "https://x.example")],
            &[("TOKENGATE_SECURITY_KEYS_ORIGIN", "x.example")],
            &[("TOKENGATE_SECURITY_KEYS_ORIGIN", "https://x.example/path")],
            &[("TOKENGATE_SECURITY_KEYS_ALLOWED_AAGUIDS", "not-a-uuid")],
            &[("TOKENGATE_SECURITY_KEYS_ALLOW_NONE_ATTESTATION", "maybe")],
        ] {
            let found = bad.to_vec();
            let e = Config::load(None, move |k: &str| {
                found
                    .iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| (*v).to_owned())
            });
            assert!(e.is_err(), "{bad:?} was accepted");
        }
        assert_eq!(
            parse_aaguid("2FC0579F811347EAB116BB5A8DB9202A").map(|a| a[0]),
            Some(0x2f)
        );
        assert_eq!(parse_aaguid("2fc0579f"), None);
    }

    #[test]
    fn every_setting_has_a_matching_env_name() {
        for s in SETTINGS {
            let expected = format!("TOKENGATE_{}", s.key.replace('.', "_").to_uppercase());
            assert_eq!(s.env, expected);
        }
    }
}
