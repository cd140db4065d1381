//! Console-password hashing with the default parameters (argon2id m=19456,t=2,p=1, OWASP):
//! one hash and one verification, each through `PasswordHashing` — on a blocking thread,
//! behind its semaphore — as CreateLoginProfile, ChangePassword and `verify_password` use it.
//! Measured (docs/passwords.md): hash ≈ 13 ms, verify ≈ 12 ms on the 2-core dev box; the
//! bound, not the speed, is what protects the rest of the API.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tokengate_server::config::PasswordConfig;
use tokengate_server::passwords::{Password, PasswordHashing};

fn hashing(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let hashing = PasswordHashing::new(&PasswordConfig::default()).unwrap();
    let rng = ring::rand::SystemRandom::new();
    let password = Password::new("correct horse battery staple".to_owned());
    let phc = runtime.block_on(hashing.hash(&rng, &password)).unwrap();
    let mut group = c.benchmark_group("passwords");
    group.sample_size(10);
    group.bench_function("hash (argon2id m=19456,t=2,p=1)", |b| {
        b.iter(|| black_box(runtime.block_on(hashing.hash(&rng, &password)).unwrap()))
    });
    group.bench_function("verify", |b| {
        b.iter(|| black_box(runtime.block_on(hashing.verify(&password, &phc)).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, hashing);
criterion_main!(benches);
