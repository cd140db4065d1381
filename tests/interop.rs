//! Drives the Python interop suite in `tests/interop/` (boto3, the AWS CLI, curl, PyJWT,
//! python-fido2) against the real `tokengate` binary. The security-key tests reach a
//! firmware-sim started here, in-process: its UDP address is `TOKENGATE_SIM_ADDR`, its
//! attestation CA (PEM) the file `TOKENGATE_SIM_CA`.
//!
//! The suite runs in a virtualenv under Cargo's target dir (`tests/support/venv.rs`),
//! created on first use from `tests/interop/requirements.txt` (and re-created when that
//! file changes). It needs `python3` with the `venv` module and access to the Python package
//! index; `.ci/run` installs both. A missing Python is a failure, never a skip.
//!
//! The suite runs twice, once per store engine, one after the other (two suites at once on a
//! two-core machine push its timing-sensitive tests past their limits): on SQLite, each
//! service in its data dir; then on PostgreSQL at `TOKENGATE_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), each service in a schema of its own named
//! `tg_interop_<pid>_<n>` (tests/interop/conftest.py), all dropped when the run ends, pass or
//! fail. An unreachable PostgreSQL fails the second run, loudly.
//!
//! The sign-in portal's browser tests need Debian's `chromium` and `chromium-driver`: when
//! they are missing, [`ensure_browser`] installs them with apt-get (as root, or through
//! `sudo -n`), so `cargo test --workspace` alone gets the browser on a fresh machine; where
//! it cannot, the test fails saying what to install — never a skip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/venv.rs"]
mod venv;

use std::path::{Path, PathBuf};
use std::process::Command;

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop")
}

/// Debian's headless browser and its driver, as tests/interop/test_portal.py uses them.
const BROWSER: [&str; 2] = ["/usr/bin/chromium", "/usr/bin/chromedriver"];

/// Installs `chromium` and `chromium-driver` with apt-get when either is missing.
fn ensure_browser() {
    if BROWSER.iter().all(|p| Path::new(p).exists()) {
        return;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let apt = |args: &[&str]| {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", "apt-get"]);
            sudo
        };
        command
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    eprintln!("installing Debian's chromium and chromium-driver for the portal's browser tests");
    let installed =
        apt(&["update", "-qq"]) && apt(&["install", "-y", "-qq", "chromium", "chromium-driver"]);
    assert!(
        installed && BROWSER.iter().all(|p| Path::new(p).exists()),
        "the portal's browser tests need Debian's chromium and chromium-driver \
         ({BROWSER:?}); apt-get could not install them here — install them \
         (`sudo apt-get install chromium chromium-driver`) and run the tests again"
    );
}

/// The store engine a run of the suite uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Sqlite,
    Postgresql,
}

#[test]
fn python_clients_interoperate_on_sqlite() {
    run_suite(Engine::Sqlite);
}

#[test]
fn python_clients_interoperate_on_postgresql() {
    run_suite(Engine::Postgresql);
}

/// Runs the whole pytest suite against services on `engine`, one run at a time.
fn run_suite(engine: Engine) {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    ensure_browser();
    let python = venv::python(&suite_dir().join("requirements.txt"));
    // On PostgreSQL: checked reachable first, and this run's schemas dropped on every exit.
    let schemas = (engine == Engine::Postgresql).then(Schemas::new);
    let sim = firmware_sim::spawn(firmware_sim::SimConfig {
        listen: "127.0.0.1:0".parse().expect("a socket address"),
        state: None,
        touch: firmware_sim::TouchPolicy::Auto,
        verbose: false,
    })
    .expect("start firmware-sim");
    let sim_dir = tempfile::tempdir().expect("a temp dir");
    let sim_ca = sim_dir.path().join("firmware-sim-ca.pem");
    std::fs::write(&sim_ca, sim.ca_pem()).expect("write the simulator CA");
    let mut pytest = Command::new(&python);
    pytest
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-rA",
            "--color=no",
            // The simulator's python-fido2 suite has its own driver (firmware-sim/tests).
            "--ignore=firmware_sim",
        ])
        .current_dir(suite_dir())
        .env("TOKENGATE_BIN", env!("CARGO_BIN_EXE_tokengate"))
        .env("TOKENGATE_SIM_ADDR", sim.addr().to_string())
        .env("TOKENGATE_SIM_CA", &sim_ca)
        .env_remove("TOKENGATE_DEVICE")
        .env_remove("TOKENGATE_STORE_URL")
        .env_remove("TOKENGATE_STORE_SCHEMA")
        .env_remove("TOKENGATE_INTEROP_STORE_URL")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN");
    if let Some(schemas) = &schemas {
        pytest
            .env("TOKENGATE_INTEROP_STORE_URL", &schemas.url)
            .env("TOKENGATE_INTEROP_SCHEMA_PREFIX", &schemas.prefix);
    }
    let started = std::time::Instant::now();
    let output = pytest.output().expect("run pytest");
    sim.stop();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    eprintln!(
        "interop suite on {engine:?}: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if let Some(schemas) = &schemas {
        assert!(
            schemas.count() > 0,
            "no service of the PostgreSQL run used a schema of this run"
        );
    }
    assert!(
        output.status.success(),
        "the interop suite failed on {engine:?} (output above)"
    );
    assert!(stdout.contains(" passed"), "pytest ran no test");
    assert!(
        !stdout.contains(" skipped"),
        "no interop test may be skipped"
    );
}

/// The PostgreSQL schemas of one run: `tg_interop_<pid>_<n>`, all dropped on drop. Schemas
/// of earlier runs whose process is gone (killed before they could drop theirs) are
/// dropped when a run starts.
struct Schemas {
    url: String,
    prefix: String,
}

impl Schemas {
    fn new() -> Self {
        let url = std::env::var("TOKENGATE_TEST_PG_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        for name in schema_names(&url, "tg_interop_") {
            let pid = name.split('_').nth(2).unwrap_or_default();
            if !Path::new(&format!("/proc/{pid}")).exists() {
                drop_schema(&url, &name);
            }
        }
        Self {
            prefix: format!("tg_interop_{}_", std::process::id()),
            url,
        }
    }

    /// How many schemas this run made.
    fn count(&self) -> usize {
        schema_names(&self.url, &self.prefix).len()
    }
}

impl Drop for Schemas {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        // On a thread of its own: a failure there (the database gone) is reported, and
        // cannot turn a failing test into an abort.
        let dropped = std::thread::spawn(move || {
            for name in schema_names(&url, &prefix) {
                drop_schema(&url, &name);
            }
        })
        .join();
        if dropped.is_err() {
            eprintln!("warning: could not drop the schemas {}*", self.prefix);
        }
    }
}

/// Runs `f` on a connection to `url`; an unreachable database fails the test, saying so.
fn with_pg<T>(
    url: &str,
    f: impl AsyncFnOnce(&tokio_postgres::Client) -> Result<T, tokio_postgres::Error>,
) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL at {url} is required by the interop suite's PostgreSQL run \
                     (set TOKENGATE_TEST_PG_URL): {e}"
                )
            });
        tokio::spawn(conn);
        f(&client)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL: {e:?}"))
    })
}

/// The schemas whose name begins with `prefix` (a plain identifier).
fn schema_names(url: &str, prefix: &str) -> Vec<String> {
    let pattern = format!("{}%", prefix.replace('_', "\\_"));
    with_pg(url, async |client| {
        let rows = client
            .query(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1",
                &[&pattern],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    })
}

fn drop_schema(url: &str, name: &str) {
    with_pg(url, async |client| {
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
            .await
    });
}
