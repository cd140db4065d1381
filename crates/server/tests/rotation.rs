//! Session-token signing keys rotate at start-up when older than
//! `session_tokens.rotate_after_days`; tokens signed by the old key keep verifying until
//! they expire, and both keys are in the JWKS.

use std::sync::Arc;

use time::OffsetDateTime;
use tokengate_server::config::Config;
use tokengate_server::state::{self, Clock};
use tokengate_store::{SqliteStore, Store};
use tokengate_token::Principal;
use tokengate_token::Secret;
use tokengate_token::session::{ISSUER, MfaContext, SessionClaims};

struct At(i64);

impl Clock for At {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.0).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

fn claims(now: i64) -> SessionClaims {
    SessionClaims {
        iss: ISSUER.into(),
        sub: "arn:aws:iam::000000000000:root".into(),
        akid: "ASIAAAAAAAAAAAAAAAAA".into(),
        iat: now,
        exp: now + 3600,
        principal: Principal::Root {
            account: "000000000000".into(),
        },
        src: "AKIAAAAAAAAAAAAAAAAA".into(),
        mfa: MfaContext::default(),
    }
}

#[test]
fn keys_rotate_and_old_tokens_stay_valid() {
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open_in_memory(&Secret::new(vec![3; 32])).expect("store"));
    let day = 86_400;
    let t0 = 1_800_000_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    let first = state::open_with_store(config.clone(), store.clone(), Arc::new(At(t0)))
        .expect("first start");
    let old_token = first.signer.sign(&claims(t0 + 29 * day)).expect("sign");
    let old_kid = first.signer.kid().to_owned();

    // 29 days later: no rotation yet.
    let again = state::open_with_store(config.clone(), store.clone(), Arc::new(At(t0 + 29 * day)))
        .expect("restart");
    assert_eq!(again.signer.kid(), old_kid);
    assert_eq!(
        again.verifier.jwks()["keys"].as_array().map(Vec::len),
        Some(1)
    );

    // 30 days: a new key signs; the old one still verifies and is published.
    let rotated =
        state::open_with_store(config.clone(), store.clone(), Arc::new(At(t0 + 30 * day)))
            .expect("restart after 30 days");
    assert_ne!(rotated.signer.kid(), old_kid);
    assert_eq!(
        rotated.verifier.jwks()["keys"].as_array().map(Vec::len),
        Some(2)
    );
    let verified = rotated
        .verifier
        .verify(&old_token, "ASIAAAAAAAAAAAAAAAAA", t0 + 29 * day + 60);
    assert!(verified.is_ok(), "{verified:?}");

    // 36 hours after retirement the old key is gone.
    let later = state::open_with_store(
        config,
        store,
        Arc::new(At(t0 + 30 * day + state::MAX_SESSION_SECS)),
    )
    .expect("restart");
    assert_eq!(
        later.verifier.jwks()["keys"].as_array().map(Vec::len),
        Some(1)
    );
    assert!(
        later
            .verifier
            .verify(&old_token, "ASIAAAAAAAAAAAAAAAAA", t0)
            .is_err()
    );
}
