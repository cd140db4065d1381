//! End-to-end tests: the real `tokengate` binary, over real HTTP, with a real data dir.
//!
//! Two test targets run the same suite (`suite.rs` and the modules it names), each on one
//! store engine chosen at compile time by its root ([`ENGINE`]):
//! - `e2e` (this file): SQLite, the default store, plus the tests of SQLite alone;
//! - `e2e_postgresql` (`postgresql.rs`): PostgreSQL at `TOKENGATE_TEST_PG_URL` (default
//!   `postgres://postgres@127.0.0.1:5432/test`), each data dir in a schema of its own that
//!   the test drops when it ends, plus the tests of PostgreSQL alone (replicas).
//!
//! `cargo test --workspace` runs both; an unreachable PostgreSQL fails the second, loudly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::{Service, mode};
// The helpers the suite's modules reach as `crate::…`.
use harness::{no_mfa, session, user_with_key};

/// The engine of this target (harness.rs).
const ENGINE: harness::Engine = harness::Engine::Sqlite;

/// The suite, on SQLite: tests are named `sqlite::…`.
#[path = "suite.rs"]
mod sqlite;

// ---- SQLite alone ----

/// The SQLite store caches keys and users and must see every write (ADR 0003), so it locks
/// the data dir. (PostgreSQL has no such cache: there a second server is a replica —
/// postgresql.rs.)
#[test]
fn a_second_server_on_one_data_dir_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &no_mfa());
    assert_eq!(mode(&dir.path().join("tokengate.db.lock")), 0o600);
    let out = std::process::Command::new(harness::binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is in use by another process"), "{stderr}");
    // The first server is unharmed, and once it stops the data dir can be served again.
    let root = svc.root();
    let r = svc.call(&root, "sts", &[("Action", "GetCallerIdentity")]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(svc.stop().success());
    let svc = Service::start(dir.path(), &no_mfa());
    let r = svc.call(&root, "sts", &[("Action", "GetCallerIdentity")]);
    assert_eq!(r.status, 200, "{}", r.body);
}
