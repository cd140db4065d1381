//! PostgreSQL going away under a running `tokengate serve` (issue 14): `/readyz` turns 503
//! and every API call answers AWS `ServiceUnavailable` (503, the AWS text) within a bound —
//! never a hang, a 500 or another 5xx — and both recover by themselves when the database
//! is back (the pool reconnects).
//!
//! Each test runs its own throwaway PostgreSQL cluster ([`Cluster`]: `initdb` + `pg_ctl` of
//! the PostgreSQL server package in a temp dir, on a free port), so it can stop, freeze and
//! restart it. Missing server binaries FAIL the test (never a skip).

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{Creds, Reply, Service};
use crate::replicas::{add_device, code_at, login, now_step, user_with_device};

/// Where Debian's PostgreSQL 15 server package puts `initdb` and `pg_ctl`
/// (`TOKENGATE_TEST_PG_BIN` overrides).
const DEFAULT_PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// AWS's text of `ServiceUnavailable`.
const UNAVAILABLE: &str = "The request has failed due to a temporary failure of the server.";

/// The longest one API call may take while the database is down or frozen: the store's
/// operation timeout (10 s by default, 3 s in these tests) and some slack for a loaded
/// machine.
const CALL_BOUND: Duration = Duration::from_secs(8);

/// A PostgreSQL cluster of its own in a temp dir, owned by the `postgres` user (we run as
/// root, and PostgreSQL refuses to), stopped and removed on drop.
pub struct Cluster {
    dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
}

fn as_postgres(bin: &Path, tool: &str, args: &[&str]) -> std::process::Output {
    let program = bin.join(tool);
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&program);
        c
    } else {
        Command::new(&program)
    };
    cmd.args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()))
}

fn is_root() -> bool {
    // The real uid, from /proc (no libc call in the tests).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

impl Cluster {
    /// `initdb`, then `pg_ctl start` on a free loopback port (trust authentication).
    pub fn start() -> Self {
        let bin = std::env::var_os("TOKENGATE_TEST_PG_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PG_BIN));
        for tool in ["initdb", "pg_ctl"] {
            assert!(
                bin.join(tool).is_file(),
                "{} is missing: these tests run a throwaway PostgreSQL cluster and need the \
                 PostgreSQL server binaries (Debian: apt-get install postgresql-15; or set \
                 TOKENGATE_TEST_PG_BIN to the directory holding initdb and pg_ctl)",
                bin.join(tool).display()
            );
        }
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown postgres {}", dir.path().display());
        }
        let data = dir.path().join("data");
        let out = as_postgres(
            &bin,
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Self { dir, port, bin };
        cluster.pg_start();
        cluster
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_str().unwrap().to_owned()
    }

    /// The URL of the cluster's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl start`, waiting until it accepts connections.
    pub fn pg_start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log");
        let out = as_postgres(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// `pg_ctl stop -m immediate`: every backend killed at once, as in a crash.
    pub fn stop_immediate(&self) {
        let out = as_postgres(
            &self.bin,
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The postmaster and every backend, stopped (SIGSTOP) or resumed (SIGCONT): a database
    /// that accepts TCP connections but never answers, like a host gone dark.
    pub fn signal_all(&self, signal: &str) {
        let pid_file = self.dir.path().join("data/postmaster.pid");
        let text = std::fs::read_to_string(&pid_file).unwrap();
        let postmaster = text.lines().next().unwrap().trim().to_owned();
        let children = Command::new("pgrep")
            .args(["-P", &postmaster])
            .output()
            .unwrap();
        let mut pids = vec![postmaster];
        pids.extend(
            String::from_utf8_lossy(&children.stdout)
                .split_whitespace()
                .map(str::to_owned),
        );
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .args(&pids)
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pids:?}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Whatever state the test left it in: running, stopped or frozen.
        if self.dir.path().join("data/postmaster.pid").exists() {
            let _ = std::panic::catch_unwind(|| self.signal_all("CONT"));
        }
        let _ = as_postgres(
            &self.bin,
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }
}

/// `tokengate serve` on `cluster` (schema `tokengate`), with `extra` environment.
pub fn serve_on(cluster: &Cluster, data: &Path, extra: &[(&str, &str)]) -> Service {
    let url = cluster.url();
    let mut env = vec![
        ("TOKENGATE_STORE_URL", url.as_str()),
        ("TOKENGATE_STORE_SCHEMA", "tokengate"),
        ("TOKENGATE_STORE_TIMEOUT_MS", "3000"),
    ];
    env.extend_from_slice(extra);
    Service::start(data, &env)
}

pub fn session_of(r: &Reply) -> Creds {
    Creds {
        access_key_id: r.xml("AccessKeyId").unwrap(),
        secret: r.xml("SecretAccessKey").unwrap(),
        token: Some(r.xml("SessionToken").unwrap()),
    }
}

/// A TOTP step after `last` (the replay mark refuses a step at or below it) that the
/// verification window of now accepts (one step either side): waits for the clock if
/// needed.
fn fresh_step(last: u64) -> u64 {
    loop {
        let now = now_step();
        let step = now.max(last + 1);
        if step <= now + 1 {
            return step;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Polls `GET /readyz` until it answers `want`; returns how long that took.
fn readyz_becomes(svc: &Service, want: u16, bound: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let r = svc.get("/readyz");
        if r.status == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < bound,
            "/readyz still {} ({}) after {bound:?}, expected {want}",
            r.status,
            r.body
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The calls of the test, each named for the message of a failed assertion.
struct Calls<'a> {
    svc: &'a Service,
    root: &'a Creds,
    alice: &'a Creds,
    /// alice's devices: serial, seed, and the last step accepted (logins of one device
    /// need increasing steps; several devices spare the test waiting for the clock).
    devices: Vec<(String, Vec<u8>, Cell<u64>)>,
}

impl Calls<'_> {
    /// Every call once, with how long it took. The login uses a device and step not used
    /// before.
    fn all(&self, session: &Creds) -> Vec<(&'static str, Reply, Duration)> {
        static USERS: AtomicUsize = AtomicUsize::new(0);
        let timed = |name, f: &dyn Fn() -> Reply| {
            let start = Instant::now();
            let r = f();
            (name, r, start.elapsed())
        };
        let ident = [("Action", "GetCallerIdentity")];
        let (serial, seed, last_step) = self
            .devices
            .iter()
            .min_by_key(|(_, _, last)| last.get())
            .unwrap();
        let step = fresh_step(last_step.get());
        let code = code_at(seed, step);
        vec![
            timed("root GetCallerIdentity", &|| {
                self.svc.call(self.root, "sts", &ident)
            }),
            timed("alice GetCallerIdentity", &|| {
                self.svc.call(self.alice, "sts", &ident)
            }),
            timed("root ListUsers", &|| {
                self.svc.call(self.root, "iam", &[("Action", "ListUsers")])
            }),
            timed("root CreateUser", &|| {
                let name = format!("u{}", USERS.fetch_add(1, Ordering::Relaxed));
                self.svc.call(
                    self.root,
                    "iam",
                    &[("Action", "CreateUser"), ("UserName", &name)],
                )
            }),
            timed("alice MFA GetSessionToken", &|| {
                let r = login(self.svc, self.alice, serial, &code);
                if r.status == 200 {
                    last_step.set(step);
                }
                r
            }),
            timed("alice session GetCallerIdentity", &|| {
                self.svc.call(session, "sts", &ident)
            }),
            timed("alice session ListUsers (needs her policies)", &|| {
                self.svc.call(session, "iam", &[("Action", "ListUsers")])
            }),
        ]
    }
}

fn assert_all_ok(calls: &[(&str, Reply, Duration)], when: &str) {
    for (name, r, _) in calls {
        assert_eq!(r.status, 200, "{when}: {name}: {}", r.body);
    }
}

/// Every call answered AWS `ServiceUnavailable` (503, Receiver, AWS's text) within
/// [`CALL_BOUND`].
fn assert_all_unavailable(calls: &[(&str, Reply, Duration)], when: &str) {
    let slowest = calls.iter().map(|(_, _, took)| *took).max().unwrap();
    println!(
        "{when}: {} calls, all 503, slowest {slowest:?}",
        calls.len()
    );
    for (name, r, took) in calls {
        assert!(
            *took < CALL_BOUND,
            "{when}: {name} took {took:?} (bound {CALL_BOUND:?})"
        );
        assert_eq!(r.status, 503, "{when}: {name}: {}", r.body);
        assert_eq!(
            r.code().as_deref(),
            Some("ServiceUnavailable"),
            "{when}: {name}: {}",
            r.body
        );
        assert_eq!(
            r.xml("Message").as_deref(),
            Some(UNAVAILABLE),
            "{when}: {name}"
        );
        assert_eq!(r.xml("Type").as_deref(), Some("Receiver"), "{when}: {name}");
    }
}

#[test]
fn postgres_down_is_service_unavailable_and_readiness_follows_it() {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let svc = serve_on(&cluster, &dir.path().join("data"), &[]);
    let root = svc.root();
    let r = svc.get("/readyz");
    assert_eq!(r.status, 200, "{}", r.body);

    // alice: a long-term key allowed to list users, and a TOTP device.
    let (alice, serial, seed) = user_with_device(&svc, &root, "alice");
    let r = svc.call(
        &root,
        "iam",
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", "alice"),
            ("PolicyName", "list"),
            (
                "PolicyDocument",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:ListUsers","Resource":"*"}]}"#,
            ),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = login(&svc, &alice, &serial, &code_at(&seed, now_step()));
    assert_eq!(r.status, 200, "{}", r.body);
    let session = session_of(&r);
    let mut devices = vec![(serial, seed, Cell::new(now_step()))];
    for i in 1..5 {
        let (serial, seed) = add_device(&svc, &root, "alice", &format!("alice{i}"));
        devices.push((serial, seed, Cell::new(now_step() - 3)));
    }
    let calls = Calls {
        svc: &svc,
        root: &root,
        alice: &alice,
        devices,
    };
    // Everything works, twice (the second time from whatever the service caches).
    for _ in 0..2 {
        assert_all_ok(&calls.all(&session), "database up");
    }

    // (1) Stopped: connections refused.
    cluster.stop_immediate();
    let took = readyz_becomes(&svc, 503, Duration::from_secs(5));
    println!("stopped: /readyz 503 after {took:?}");
    for round in 0..2 {
        let calls = calls.all(&session);
        assert_all_unavailable(&calls, &format!("database stopped, round {round}"));
    }
    cluster.pg_start();
    let took = readyz_becomes(&svc, 200, Duration::from_secs(10));
    println!("restarted: /readyz 200 after {took:?}");
    assert_all_ok(&calls.all(&session), "database back");

    // (2) Frozen: the host accepts connections and never answers (every pooled
    // connection hangs mid-query). Bounded by the store's operation timeout, not TCP's.
    cluster.signal_all("STOP");
    let took = readyz_becomes(&svc, 503, Duration::from_secs(5));
    println!("frozen: /readyz 503 after {took:?}");
    let calls_frozen = calls.all(&session);
    assert_all_unavailable(&calls_frozen, "database frozen");
    cluster.signal_all("CONT");
    let took = readyz_becomes(&svc, 200, Duration::from_secs(10));
    println!("thawed: /readyz 200 after {took:?}");
    assert_all_ok(&calls.all(&session), "database thawed");
}

/// A second replica without the first one's master key file is refused at start-up, before
/// it creates a key of its own (which could not open the store's secrets), with what to do.
#[test]
fn a_replica_without_the_master_key_of_a_bootstrapped_store_refuses_to_create_one() {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let first_key = dir.path().join("first.key");
    let first = serve_on(
        &cluster,
        &dir.path().join("a"),
        &[("TOKENGATE_MASTER_KEY_FILE", first_key.to_str().unwrap())],
    );
    let r = first.get("/readyz");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(first_key.exists());

    let missing = dir.path().join("second.key");
    let out = Command::new(crate::harness::binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("b"))
        .env_remove("TOKENGATE_CONFIG")
        .env("TOKENGATE_STORE_URL", cluster.url())
        .env("TOKENGATE_STORE_SCHEMA", "tokengate")
        .env("TOKENGATE_MASTER_KEY_FILE", &missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "started without the master key: {stderr}"
    );
    assert!(
        stderr.contains("already bootstrapped")
            && stderr.contains("copy the master key file of the first replica")
            && stderr.contains("TOKENGATE_MASTER_KEY_FILE")
            && stderr.contains(missing.to_str().unwrap()),
        "{stderr}"
    );
    assert!(!missing.exists(), "a new master key was created");
    // The first replica's key file, copied, is what the second needs.
    std::fs::copy(&first_key, &missing).unwrap();
    let second = serve_on(
        &cluster,
        &dir.path().join("b"),
        &[("TOKENGATE_MASTER_KEY_FILE", missing.to_str().unwrap())],
    );
    let r = second.get("/readyz");
    assert_eq!(r.status, 200, "{}", r.body);
    let root = first.root();
    let r = second.call(&root, "sts", &[("Action", "GetCallerIdentity")]);
    assert_eq!(r.status, 200, "{}", r.body);
}
