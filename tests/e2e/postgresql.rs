//! End-to-end tests on PostgreSQL (target `e2e_postgresql`): the suite of `suite.rs`, every
//! service on PostgreSQL at `TOKENGATE_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) in a schema of its own per data dir, dropped
//! when the test ends; then the tests of PostgreSQL alone, which run once. An unreachable
//! database fails every test here, saying so — never a skip. See main.rs for the layout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::{Service, no_mfa, user_with_key};
// The helpers the suite's modules reach as `crate::…`.
use harness::session;

/// The engine of this target (harness.rs).
const ENGINE: harness::Engine = harness::Engine::Postgresql;

/// The suite, on PostgreSQL: tests are named `postgresql::…`.
#[path = "suite.rs"]
mod postgresql;

// ---- PostgreSQL alone (each module is declared here only, so it runs once) ----

mod pg_outage;
mod pg_signing;
mod replica_races;
mod replicas;

/// SQLite locks the data dir (main.rs); PostgreSQL keeps no per-process cache, so a second
/// server on the same data dir and store is one more replica: it starts, serves the same
/// account, sees the first one's writes at once (and the first its writes), leaves the root
/// credentials alone, and serves on when the first stops.
#[test]
fn a_second_server_on_one_data_dir_joins_as_a_replica() {
    let dir = tempfile::tempdir().unwrap();
    let first = Service::start(dir.path(), &no_mfa());
    let root = first.root();
    let before = std::fs::read(dir.path().join("root-credentials.json")).unwrap();
    let second = Service::start(dir.path(), &no_mfa());
    assert_eq!(second.schema(), first.schema());
    assert!(!dir.path().join("tokengate.db.lock").exists());
    assert_eq!(
        std::fs::read(dir.path().join("root-credentials.json")).unwrap(),
        before
    );
    let alice = user_with_key(&first, &root, "alice");
    let bob = user_with_key(&second, &root, "bob");
    for svc in [&first, &second] {
        for creds in [&root, &alice, &bob] {
            let r = svc.call(creds, "sts", &[("Action", "GetCallerIdentity")]);
            assert_eq!(r.status, 200, "{}", r.body);
        }
    }
    assert!(first.stop().success());
    let r = second.call(&alice, "sts", &[("Action", "GetCallerIdentity")]);
    assert_eq!(r.status, 200, "{}", r.body);
}
