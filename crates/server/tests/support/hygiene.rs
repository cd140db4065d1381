//! A service on an in-memory (or file) store with a clock the test moves, and signed IAM
//! calls through the real router: the account-hygiene tests' harness.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::http::StatusCode;
use time::OffsetDateTime;
use tokengate_server::config::{Config, PasswordConfig};
use tokengate_server::state::{self, AppState, Clock};
use tokengate_store::{AccessKey, KeyOwner, KeyStatus, SqliteStore, Store};
use tokengate_token::sigv4::{HttpRequest, SigningCredentials, sign_request};
use tokengate_token::{Secret, keys};
use tower::ServiceExt;

pub const T0: i64 = 1_800_000_000;
pub const DAY: i64 = 86_400;

/// A clock the test moves.
pub struct TestClock(pub AtomicI64);

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.0.load(Ordering::SeqCst))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

pub struct Service {
    pub state: Arc<AppState>,
    pub clock: Arc<TestClock>,
    pub root: (String, String),
    pub dir: tempfile::TempDir,
}

/// Cheap argon2 parameters, so that tests do not spend 40 ms a hash.
pub fn cheap_passwords() -> PasswordConfig {
    PasswordConfig {
        argon2_memory_kib: 64,
        argon2_iterations: 1,
        argon2_parallelism: 1,
        ..PasswordConfig::default()
    }
}

impl Service {
    /// A fresh service on an in-memory store.
    pub fn new() -> Self {
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open_in_memory(&Secret::new(vec![3; 32])).unwrap());
        Self::with_store(store, cheap_passwords(), tempfile::tempdir().unwrap())
    }

    /// A fresh service on a store in `dir`'s `tokengate.db`.
    pub fn on_disk(dir: tempfile::TempDir) -> Self {
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("tokengate.db"), &Secret::new(vec![3; 32])).unwrap(),
        );
        Self::with_store(store, cheap_passwords(), dir)
    }

    pub fn with_store(
        store: Arc<dyn Store>,
        passwords: PasswordConfig,
        dir: tempfile::TempDir,
    ) -> Self {
        let clock = Arc::new(TestClock(AtomicI64::new(T0)));
        let config = Config {
            data_dir: dir.path().to_owned(),
            passwords,
            ..Config::default()
        };
        let state = Arc::new(state::open_with_store(config, store, clock.clone()).unwrap());
        let root = state
            .store
            .access_keys_of(&KeyOwner::Root)
            .unwrap()
            .into_iter()
            .next()
            .map(|k| (k.access_key_id, k.secret.expose_str().unwrap().to_owned()))
            .unwrap();
        Self {
            state,
            clock,
            root,
            dir,
        }
    }

    /// The same store, another service on it (e.g. new argon2 parameters).
    pub fn restart(&self, passwords: PasswordConfig) -> Arc<AppState> {
        let config = Config {
            data_dir: self.dir.path().to_owned(),
            passwords,
            ..Config::default()
        };
        Arc::new(
            state::open_with_store(config, self.state.store.clone(), self.clock.clone()).unwrap(),
        )
    }

    pub fn advance(&self, secs: i64) {
        self.clock.0.fetch_add(secs, Ordering::SeqCst);
    }

    pub fn now(&self) -> i64 {
        self.clock.0.load(Ordering::SeqCst)
    }

    /// Creates user `name` with an access key; returns the key.
    pub async fn user(&self, name: &str) -> (String, String) {
        let (status, body) = self
            .iam(&self.root, &[("Action", "CreateUser"), ("UserName", name)])
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let key = AccessKey {
            access_key_id: keys::new_long_term_key_id(&self.state.rng).unwrap(),
            owner: KeyOwner::User(name.into()),
            status: KeyStatus::Active,
            created: self.now(),
            secret: keys::new_secret_access_key(&self.state.rng).unwrap(),
        };
        self.state.store.create_access_key(&key, 2).unwrap();
        let secret = key.secret.expose_str().unwrap().to_owned();
        (key.access_key_id, secret)
    }

    /// An IAM call (Version added) signed with `creds`.
    pub async fn iam(
        &self,
        creds: &(String, String),
        params: &[(&str, &str)],
    ) -> (StatusCode, String) {
        self.call(creds, "iam", "us-east-1", params).await
    }

    /// A call to `service` (`iam` or `sts`; Version added) signed with `creds` for
    /// `region`.
    pub async fn call(
        &self,
        creds: &(String, String),
        service: &str,
        region: &str,
        params: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let version = if service == "sts" {
            "2011-06-15"
        } else {
            "2010-05-08"
        };
        let mut pairs: Vec<(&str, &str)> = params.to_vec();
        pairs.push(("Version", version));
        let body: String = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let host = [("host", "localhost")];
        let req = HttpRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &host,
            body: body.as_bytes(),
        };
        let signing = SigningCredentials {
            access_key_id: &creds.0,
            secret_access_key: &creds.1,
            session_token: None,
        };
        let signed = sign_request(&req, &signing, region, service, self.clock.now());
        let mut builder = axum::http::Request::post("/").header("host", "localhost");
        for (name, value) in signed {
            builder = builder.header(name, value);
        }
        let response = tokengate_server::router(Arc::clone(&self.state))
            .oneshot(builder.body(axum::body::Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    /// An IAM call that must succeed; its body.
    pub async fn ok(&self, creds: &(String, String), params: &[(&str, &str)]) -> String {
        let (status, body) = self.iam(creds, params).await;
        assert_eq!(status, StatusCode::OK, "{params:?}: {body}");
        body
    }

    /// An IAM call that must fail with `code` and `status`; its message.
    pub async fn fails(
        &self,
        creds: &(String, String),
        params: &[(&str, &str)],
        status: StatusCode,
        code: &str,
    ) -> String {
        let (got, body) = self.iam(creds, params).await;
        assert_eq!(got, status, "{params:?}: {body}");
        assert_eq!(element(&body, "Code").as_deref(), Some(code), "{body}");
        element(&body, "Message").unwrap_or_default()
    }
}

/// Percent-encodes a form value (RFC 3986 unreserved kept).
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text of the first `<name>` element, XML entities decoded.
pub fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(
        xml[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// Every file under `dir`, read whole.
pub fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    out
}
