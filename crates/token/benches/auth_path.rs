//! The per-request authentication path of tokengate, as the server runs it:
//! parse + date/scope checks, session-token verification (an ES256 or EdDSA JWT),
//! temporary-secret derivation, and the SigV4 signature check — for a boto3-shaped
//! GetCallerIdentity POST. Also the long-term-key path (no session token) for comparison,
//! and the signature that every login puts on a session token, for both algorithms.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ring::rand::SystemRandom;
use time::macros::datetime;
use tokengate_token::Principal;
use tokengate_token::keys::DerivationKey;
use tokengate_token::session::{
    ISSUER, MfaContext, MfaMethod, SessionClaims, SigningKey, TokenAlgorithm, TokenSigner,
    TokenVerifier,
};
use tokengate_token::sigv4::{
    HttpRequest, SigningCredentials, parse_authorization, sign_request, verify_signature,
};

const BODY: &[u8] = b"Action=GetCallerIdentity&Version=2011-06-15";
const HOST: &str = "127.0.0.1:8787";
const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

fn signed_headers(creds: &SigningCredentials<'_>) -> Vec<(String, String)> {
    let headers = [("host", HOST), ("content-type", CONTENT_TYPE)];
    let req = HttpRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: BODY,
    };
    let mut all: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    all.extend(sign_request(
        &req,
        creds,
        "us-east-1",
        "sts",
        datetime!(2026-11-22 12:00 UTC),
    ));
    all
}

fn bench(c: &mut Criterion) {
    for algorithm in [TokenAlgorithm::Es256, TokenAlgorithm::EdDsa] {
        bench_temporary(c, algorithm);
    }
    bench_long_term(c);
}

fn bench_temporary(c: &mut Criterion, algorithm: TokenAlgorithm) {
    let alg = algorithm.as_str();
    let rng = SystemRandom::new();
    let now = datetime!(2026-11-22 12:00:30 UTC);
    let signing_key = SigningKey::generate(algorithm, &rng).unwrap();
    let signer = TokenSigner::new(&signing_key).unwrap();
    let verifier = TokenVerifier::new([signing_key.public_key()]);
    let derivation = DerivationKey::new(&[7u8; 32]);

    let akid = "ASIAQWERTYUIOPASDFGH";
    let claims = SessionClaims {
        iss: ISSUER.into(),
        sub: "arn:aws:iam::000000000000:user/alice".into(),
        akid: akid.into(),
        iat: now.unix_timestamp() - 60,
        exp: now.unix_timestamp() + 43_200,
        principal: Principal::User {
            account: "000000000000".into(),
            path: "/".into(),
            name: "alice".into(),
            user_id: "AIDAQWERTYUIOPASDFGHJ".into(),
        },
        src: "AKIAQWERTYUIOPASDFGH".into(),
        mfa: MfaContext {
            present: true,
            method: Some(MfaMethod::Totp),
            device: Some("arn:aws:iam::000000000000:mfa/alice".into()),
            auth_time: Some(now.unix_timestamp() - 60),
        },
        session_policy: None,
        chained: false,
        attributes: Default::default(),
    };
    let token = signer.sign(&claims).unwrap();
    let secret = derivation.temporary_secret(akid);
    let temp_creds = SigningCredentials {
        access_key_id: akid,
        secret_access_key: secret.expose_str().unwrap(),
        session_token: Some(&token),
    };
    let temp_headers = signed_headers(&temp_creds);
    let temp_refs: Vec<(&str, &str)> = temp_headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();

    c.bench_function(
        &format!("auth_path/temporary {alg} (sigv4 + cached session token)"),
        |b| {
            b.iter(|| {
                let req = HttpRequest {
                    method: "POST",
                    path: "/",
                    query: "",
                    headers: black_box(&temp_refs),
                    body: black_box(BODY),
                };
                let auth = parse_authorization(&req, now).unwrap();
                let token = auth.security_token.as_deref().unwrap();
                let claims = verifier
                    .verify(token, &auth.scope.access_key_id, now.unix_timestamp())
                    .unwrap();
                let secret = derivation.temporary_secret(&claims.akid);
                verify_signature(&req, &auth, secret.expose()).unwrap();
            })
        },
    );

    c.bench_function(&format!("auth_path/session token {alg} verify only"), |b| {
        b.iter(|| verifier.verify_uncached(black_box(&token)).unwrap())
    });

    c.bench_function(
        &format!("auth_path/session token {alg} verify, cached"),
        |b| {
            b.iter(|| {
                verifier
                    .verify(black_box(&token), akid, now.unix_timestamp())
                    .unwrap()
            })
        },
    );

    c.bench_function(&format!("login/session token {alg} sign"), |b| {
        b.iter(|| signer.sign(black_box(&claims)).unwrap())
    });
}

fn bench_long_term(c: &mut Criterion) {
    let now = datetime!(2026-11-22 12:00:30 UTC);
    let long_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let long_creds = SigningCredentials {
        access_key_id: "AKIAIOSFODNN7EXAMPLE",
        secret_access_key: long_secret,
        session_token: None,
    };
    let long_headers = signed_headers(&long_creds);
    let long_refs: Vec<(&str, &str)> = long_headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    c.bench_function("auth_path/long-term key (sigv4 only)", |b| {
        b.iter(|| {
            let req = HttpRequest {
                method: "POST",
                path: "/",
                query: "",
                headers: black_box(&long_refs),
                body: black_box(BODY),
            };
            let auth = parse_authorization(&req, now).unwrap();
            verify_signature(&req, &auth, long_secret.as_bytes()).unwrap();
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
