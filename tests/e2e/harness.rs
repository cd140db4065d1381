//! Test harness: runs the real `tokengate` binary on a free loopback port with its own data
//! dir, and talks to it over HTTP/1.1 with SigV4-signed AWS query requests.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokengate_token::query::encode_form;
use tokengate_token::sigv4::{HttpRequest, SigningCredentials, sign_request};

/// The binary under test: Cargo's, or `TOKENGATE_E2E_BIN` when set (a release build, for
/// the measurements some tests print, e.g. the slowloris one of docs/benchmarks.md).
pub fn binary() -> PathBuf {
    std::env::var_os("TOKENGATE_E2E_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tokengate")))
}

/// The store engine every service of a test target runs on, chosen at compile time by the
/// target's root: `main.rs` (target `e2e`) says SQLite, `postgresql.rs` (target
/// `e2e_postgresql`) PostgreSQL. The shared suite (`suite.rs`) runs under both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The default store: `tokengate.db` in the data dir.
    Sqlite,
    /// PostgreSQL at [`pg_url`], a schema of its own per data dir.
    Postgresql,
}

/// This target's engine.
pub const ENGINE: Engine = crate::ENGINE;

/// The PostgreSQL the tests use: `TOKENGATE_TEST_PG_URL`, by default the local server's
/// `test` database (the same variable as crates/store/tests/both_engines.rs).
pub fn pg_url() -> String {
    std::env::var("TOKENGATE_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Runs `f` with a connection to [`pg_url`] on a runtime of its own; an unreachable
/// database fails the test, saying so (never a skip).
pub fn with_pg<T>(
    f: impl AsyncFnOnce(&tokio_postgres::Client) -> Result<T, tokio_postgres::Error>,
) -> T {
    let url = pg_url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL at {url} is required by the PostgreSQL e2e tests \
                     (set TOKENGATE_TEST_PG_URL): {e}"
                )
            });
        tokio::spawn(conn);
        f(&client)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL: {e:?}"))
    })
}

/// The PostgreSQL schema of the services on `data_dir` (the same one when a test restarts
/// the service on that dir), or `None` on SQLite. Named `tg_e2e_<pid>_<hash of the dir>`.
pub fn schema_of(data_dir: &Path) -> Option<String> {
    use std::hash::{Hash, Hasher};
    if ENGINE == Engine::Sqlite {
        return None;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut h);
    Some(format!("tg_e2e_{}_{:016x}", std::process::id(), h.finish()))
}

/// The environment that puts a `tokengate serve` on `data_dir` on this target's engine:
/// nothing on SQLite; on PostgreSQL the URL and the data dir's schema, which is dropped
/// when the test that first used it ends (pass or fail) and no service on it is left.
/// For a `serve` started without [`Service::start`] (`Command::envs`).
pub fn store_env(data_dir: &Path) -> Vec<(&'static str, String)> {
    match schema_guard(data_dir) {
        Some(guard) => vec![
            ("TOKENGATE_STORE_URL", guard.url.clone()),
            ("TOKENGATE_STORE_SCHEMA", guard.name.clone()),
        ],
        None => Vec::new(),
    }
}

/// A data dir's PostgreSQL schema; dropping the last reference drops the schema (and any
/// schema whose name it begins, e.g. a test's `…_aside`).
struct SchemaGuard {
    url: String,
    name: String,
}

thread_local! {
    /// The schemas the current test thread used: released when the thread ends, after the
    /// test's own locals (its services) are gone, so a schema outlives restarts within the
    /// test and no test leaves one behind.
    static TEST_SCHEMAS: std::cell::RefCell<Vec<Arc<SchemaGuard>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The live schema guards by data dir, so that a restart on one dir shares its guard.
static LIVE_SCHEMAS: Mutex<Vec<(PathBuf, Weak<SchemaGuard>)>> = Mutex::new(Vec::new());

fn schema_guard(data_dir: &Path) -> Option<Arc<SchemaGuard>> {
    let name = schema_of(data_dir)?;
    // Not a `Once`: an unreachable database fails every test with the same message.
    static SWEPT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    SWEPT.get_or_init(sweep_finished_runs);
    let mut live = LIVE_SCHEMAS.lock().unwrap_or_else(|e| e.into_inner());
    live.retain(|(_, weak)| weak.strong_count() > 0);
    let guard = match live.iter().find(|(dir, _)| dir == data_dir) {
        Some((_, weak)) => weak.upgrade()?,
        None => {
            let guard = Arc::new(SchemaGuard {
                url: pg_url(),
                name,
            });
            live.push((data_dir.to_owned(), Arc::downgrade(&guard)));
            guard
        }
    };
    // `try_with`: a service started while the thread is being torn down gets no test guard
    // (its own reference still drops the schema).
    let _ = TEST_SCHEMAS.try_with(|schemas| {
        let mut schemas = schemas.borrow_mut();
        if !schemas.iter().any(|g| Arc::ptr_eq(g, &guard)) {
            schemas.push(Arc::clone(&guard));
        }
    });
    Some(guard)
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // On a thread of its own: this may run among the test thread's thread-local
        // destructors, where the runtime's own thread-locals may already be gone.
        let dropped = std::thread::spawn(move || drop_schemas(&url, &name)).join();
        if !matches!(dropped, Ok(Ok(()))) {
            // No panic in a destructor; the next run's sweep drops it.
            eprintln!("warning: could not drop the e2e schema {}", self.name);
        }
    }
}

/// Drops every schema whose name begins with `prefix` (a plain identifier, so a LIKE
/// pattern once `_` is escaped).
fn drop_schemas(url: &str, prefix: &str) -> Result<(), tokio_postgres::Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        let pattern = format!("{}%", prefix.replace('_', "\\_"));
        let rows = client
            .query(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1",
                &[&pattern],
            )
            .await?;
        for row in rows {
            let name: String = row.get(0);
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .await?;
        }
        Ok(())
    })
}

/// Drops the schemas of earlier runs whose process is gone (killed before its guards ran).
fn sweep_finished_runs() {
    let names: Vec<String> = with_pg(async |client| {
        let rows = client
            .query(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tg\\_e2e\\_%'",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    });
    for name in names {
        let pid = name.split('_').nth(2).unwrap_or_default();
        if !Path::new(&format!("/proc/{pid}")).exists() {
            with_pg(async |client| {
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await
            });
        }
    }
}

/// Every row of every table of `schema`, as bytes: `bytea` columns as stored, the others
/// as their text — the PostgreSQL counterpart of reading the SQLite database file.
pub fn pg_rows(schema: &str) -> Vec<u8> {
    with_pg(async |client| {
        let columns = client
            .query(
                "SELECT c.table_name::text, c.column_name::text, c.data_type::text
                 FROM information_schema.columns c
                 JOIN information_schema.tables t
                   ON t.table_schema = c.table_schema AND t.table_name = c.table_name
                 WHERE c.table_schema = $1 AND t.table_type = 'BASE TABLE'
                 ORDER BY c.table_name, c.ordinal_position",
                &[&schema],
            )
            .await?;
        let mut tables: Vec<(String, Vec<String>)> = Vec::new();
        for row in &columns {
            let (table, column, kind): (String, String, String) =
                (row.get(0), row.get(1), row.get(2));
            let expr = if kind == "bytea" {
                format!("coalesce(\"{column}\", ''::bytea)")
            } else {
                format!("convert_to(coalesce(\"{column}\"::text, ''), 'UTF8')")
            };
            match tables.last_mut() {
                Some((name, exprs)) if *name == table => exprs.push(expr),
                _ => tables.push((table, vec![expr])),
            }
        }
        let mut raw = Vec::new();
        for (table, exprs) in tables {
            let sql = format!(
                "SELECT {} FROM {schema}.\"{table}\"",
                exprs.join(" || '\\x00'::bytea || ")
            );
            for row in client.query(&sql, &[]).await? {
                raw.extend(row.get::<_, Vec<u8>>(0));
                raw.push(b'\n');
            }
        }
        Ok(raw)
    })
}

/// The first column of the one row `sql` answers, as an `i64` (e.g. a `count(*)`).
pub fn pg_i64(sql: &str) -> i64 {
    with_pg(async |client| Ok(client.query_one(sql, &[]).await?.get(0)))
}

/// Runs `sql` (one or more statements) on [`pg_url`].
pub fn pg_execute(sql: &str) {
    with_pg(async |client| client.batch_execute(sql).await);
}

/// A running `tokengate serve`.
pub struct Service {
    pub child: Child,
    pub addr: String,
    pub data_dir: PathBuf,
    /// The data dir's PostgreSQL schema, kept while the service runs.
    schema: Option<Arc<SchemaGuard>>,
}

impl Service {
    /// Starts the service on a free port with `data_dir` and extra environment.
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(binary());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("TOKENGATE_LOG_FORMAT", "json")
            .env_remove("TOKENGATE_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // A test that names its own store (replicas.rs) gets it as given.
        let own_store = env
            .iter()
            .any(|(k, _)| *k == "TOKENGATE_STORE_URL" || *k == "TOKENGATE_STORE_SCHEMA");
        let schema = if own_store {
            None
        } else {
            schema_guard(data_dir)
        };
        if let Some(guard) = &schema {
            cmd.env("TOKENGATE_STORE_URL", &guard.url)
                .env("TOKENGATE_STORE_SCHEMA", &guard.name);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn tokengate");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("tokengate exited before it listened")
                .expect("read stderr");
            let v: serde_json::Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(_) => panic!("non-JSON log line: {line}"),
            };
            if let Some(listen) = v["fields"]["listen"].as_str() {
                break listen.to_owned();
            }
        };
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            addr,
            data_dir: data_dir.to_owned(),
            schema,
        }
    }

    /// The root credentials written at first start.
    pub fn root(&self) -> Creds {
        let text = std::fs::read_to_string(self.data_dir.join("root-credentials.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        Creds {
            access_key_id: v["AccessKeyId"].as_str().unwrap().to_owned(),
            secret: v["SecretAccessKey"].as_str().unwrap().to_owned(),
            token: None,
        }
    }

    /// The PostgreSQL schema this service runs in (`None` on SQLite).
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_ref().map(|guard| guard.name.as_str())
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        // Dropping `self` after the wait kills nothing: a reaped child is not signalled.
        self.child.wait().unwrap()
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// A raw GET.
    pub fn get(&self, path: &str) -> Reply {
        http(&self.addr, "GET", path, &[], b"")
    }

    /// A signed query-API POST for `service` ("sts" or "iam").
    pub fn call(&self, creds: &Creds, service: &str, params: &[(&str, &str)]) -> Reply {
        self.call_at(creds, service, params, time::OffsetDateTime::now_utc())
    }

    /// Like `call`, signed at `when`.
    pub fn call_at(
        &self,
        creds: &Creds,
        service: &str,
        params: &[(&str, &str)],
        when: time::OffsetDateTime,
    ) -> Reply {
        self.call_via(None, creds, service, params, when)
    }

    /// Like `call`, from the local address `source` (e.g. 127.0.0.2, another loopback
    /// address) when given.
    pub fn call_from(
        &self,
        source: std::net::IpAddr,
        creds: &Creds,
        service: &str,
        params: &[(&str, &str)],
    ) -> Reply {
        self.call_via(
            Some(source),
            creds,
            service,
            params,
            time::OffsetDateTime::now_utc(),
        )
    }

    fn call_via(
        &self,
        source: Option<std::net::IpAddr>,
        creds: &Creds,
        service: &str,
        params: &[(&str, &str)],
        when: time::OffsetDateTime,
    ) -> Reply {
        let (all_headers, body) = signed_post(&self.addr, creds, service, params, when);
        let refs: Vec<(&str, &str)> = all_headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        http_via(source, &self.addr, "POST", "/", &refs, body.as_bytes())
    }
}

/// A query-API POST of `params` (and the service's `Version`) to `addr`, signed for
/// `service` by `creds` at `when`: every header (host, content type, SigV4) and the body.
pub fn signed_post(
    addr: &str,
    creds: &Creds,
    service: &str,
    params: &[(&str, &str)],
    when: time::OffsetDateTime,
) -> (Vec<(String, String)>, String) {
    let version = if service == "iam" {
        "2010-05-08"
    } else {
        "2011-06-15"
    };
    let mut all = params.to_vec();
    all.push(("Version", version));
    let body = encode_form(&all);
    let headers = [
        ("host", addr),
        (
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
    ];
    let req = HttpRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: body.as_bytes(),
    };
    let signing = SigningCredentials {
        access_key_id: &creds.access_key_id,
        secret_access_key: &creds.secret,
        session_token: creds.token.as_deref(),
    };
    let signed = sign_request(&req, &signing, "us-east-1", service, when);
    let mut all_headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    all_headers.extend(signed);
    (all_headers, body)
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Credentials for signing.
#[derive(Debug, Clone)]
pub struct Creds {
    pub access_key_id: String,
    pub secret: String,
    pub token: Option<String>,
}

/// An HTTP reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    /// The text of the first `<name>…</name>`.
    pub fn xml(&self, name: &str) -> Option<String> {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let start = self.body.find(&open)? + open.len();
        let end = self.body[start..].find(&close)? + start;
        Some(self.body[start..end].to_owned())
    }

    /// The AWS error code, if this is an error.
    pub fn code(&self) -> Option<String> {
        self.xml("Code")
    }
}

/// A TCP connection to `addr` from the local address `source`.
pub fn connect_from(source: std::net::IpAddr, addr: &str) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(std::net::SocketAddr::new(source, 0)).unwrap();
        let stream = socket.connect(addr.parse().unwrap()).await.unwrap();
        let stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream
    })
}

/// One HTTP/1.1 request with `Connection: close`.
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    http_via(None, addr, method, path, headers, body)
}

/// Like [`http`], from the local address `source` when given.
pub fn http_via(
    source: Option<std::net::IpAddr>,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = match source {
        Some(source) => connect_from(source, addr),
        None => TcpStream::connect(addr).unwrap(),
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("host: {addr}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply { status, body }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

// ---- Helpers the tests share (`crate::user_with_key` etc. through each root's imports) ----

/// The permission bits of `path`.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The environment of a service with `mfa.required = false` (AWS behaviour).
pub fn no_mfa() -> [(&'static str, &'static str); 1] {
    [("TOKENGATE_MFA_REQUIRED", "false")]
}

/// Creates user `name` with an access key as root; returns the key.
pub fn user_with_key(svc: &Service, root: &Creds, name: &str) -> Creds {
    let r = svc.call(root, "iam", &[("Action", "CreateUser"), ("UserName", name)]);
    assert_eq!(r.status, 200, "{}", r.body);
    access_key(svc, root, name)
}

/// A new access key of user `name`, created by root.
pub fn access_key(svc: &Service, root: &Creds, name: &str) -> Creds {
    let r = svc.call(
        root,
        "iam",
        &[("Action", "CreateAccessKey"), ("UserName", name)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    Creds {
        access_key_id: r.xml("AccessKeyId").unwrap(),
        secret: r.xml("SecretAccessKey").unwrap(),
        token: None,
    }
}

/// GetSessionToken (no MFA) for `creds`; returns the temporary credentials.
pub fn session(svc: &Service, creds: &Creds, duration: &str) -> Creds {
    let r = svc.call(
        creds,
        "sts",
        &[("Action", "GetSessionToken"), ("DurationSeconds", duration)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    Creds {
        access_key_id: r.xml("AccessKeyId").unwrap(),
        secret: r.xml("SecretAccessKey").unwrap(),
        token: Some(r.xml("SessionToken").unwrap()),
    }
}
