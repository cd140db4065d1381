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
        session_policy: None,
        chained: false,
        attributes: Default::default(),
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

#[test]
fn a_change_of_algorithm_rotates_at_start_up() {
    use tokengate_server::config::SessionTokenConfig;
    use tokengate_token::session::TokenAlgorithm;

    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open_in_memory(&Secret::new(vec![3; 32])).expect("store"));
    let t0 = 1_800_000_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = |algorithm| Config {
        data_dir: dir.path().to_owned(),
        session_tokens: SessionTokenConfig {
            algorithm,
            ..SessionTokenConfig::default()
        },
        ..Config::default()
    };
    let alg_of = |s: &state::AppState| {
        let token = s.signer.sign(&claims(t0)).expect("sign");
        let header = token.split('.').next().unwrap_or_default().to_owned();
        let json = data_encoding::BASE64URL_NOPAD
            .decode(header.as_bytes())
            .expect("base64url header");
        let value: serde_json::Value = serde_json::from_slice(&json).expect("json header");
        (value["alg"].as_str().unwrap_or_default().to_owned(), token)
    };

    // An Ed25519 data dir (as every data dir before ES256 became the default) …
    let ed = state::open_with_store(
        config(TokenAlgorithm::EdDsa),
        store.clone(),
        Arc::new(At(t0)),
    )
    .expect("first start");
    let (alg, ed_token) = alg_of(&ed);
    assert_eq!(alg, "EdDSA");
    // … restarted the next minute with the default: an ES256 key signs at once, and the
    // Ed25519 key stays published and keeps verifying what it signed.
    let es = state::open_with_store(
        config(TokenAlgorithm::default()),
        store.clone(),
        Arc::new(At(t0 + 60)),
    )
    .expect("restart with ES256");
    let (alg, es_token) = alg_of(&es);
    assert_eq!(alg, "ES256");
    let kinds: Vec<String> = es.verifier.jwks()["keys"]
        .as_array()
        .map(|keys| keys.iter().map(|k| k["kty"].to_string()).collect())
        .unwrap_or_default();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    for token in [&ed_token, &es_token] {
        let verified = es.verifier.verify(token, "ASIAAAAAAAAAAAAAAAAA", t0 + 120);
        assert!(verified.is_ok(), "{verified:?}");
    }
    // Restarting again with the same setting changes nothing.
    let again =
        state::open_with_store(config(TokenAlgorithm::Es256), store, Arc::new(At(t0 + 180)))
            .expect("restart");
    assert_eq!(again.signer.kid(), es.signer.kid());
}
