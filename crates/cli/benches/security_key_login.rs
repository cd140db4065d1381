//! The end-to-end security-key login round trip (issue 6 goal: < 10 ms), with nothing
//! mocked: the release `tokengate` binary on loopback with its data dir on disk, firmware-sim
//! in-process with touch `auto`, the bridge over UDP. One iteration is what `tokengate login`
//! does once it has read its profile:
//!
//! 1. STS GetSecurityKeyChallenge (SigV4 check, the challenge stored durably);
//! 2. open the key (CTAPHID INIT, GetInfo), then GetAssertion (CTAP2) or U2F AUTHENTICATE;
//! 3. STS GetSessionTokenWithSecurityKey (SigV4, verification, the challenge spent and the
//!    counter compare-and-set committed — fsync — before the credentials leave).
//!
//! Each HTTP request opens its own connection, as a fresh `tokengate login` process does.
//! Run: `cargo bench -p tokengate-cli --bench security_key_login`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../tests/e2e/harness.rs"]
mod harness;

#[path = "../../../tests/e2e/security_keys/client.rs"]
mod client;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use firmware_sim::TouchPolicy;

use crate::client::{login, register, service, spawn_sim};
use crate::harness::user_with_key;

/// The store the harness puts the service on: SQLite in the data dir (tests/e2e/harness.rs).
const ENGINE: harness::Engine = harness::Engine::Sqlite;

fn login_round_trip(c: &mut Criterion) {
    // On the target dir's disk, not a tmpfs: the fsyncs are part of the cost.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let sim = spawn_sim(TouchPolicy::Auto, None);
    let svc = service(dir.path(), &sim, &[]);
    let root = svc.root();
    let mut group = c.benchmark_group("security_key_login");
    group
        .sample_size(100)
        .measurement_time(Duration::from_secs(10));
    for protocol in ["fido2", "u2f"] {
        let creds = user_with_key(&svc, &root, protocol);
        let serial = register(&svc, &root, &sim, protocol, "bench", protocol);
        group.bench_function(protocol, |b| {
            b.iter(|| {
                let r = login(&svc, &creds, &sim, &serial);
                assert_eq!(r.status, 200, "{}", r.body);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, login_round_trip);
criterion_main!(benches);
