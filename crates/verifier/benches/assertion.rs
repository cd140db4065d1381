//! Assertion verification cost (issue 6 "Done when": ≤ 1.5× ring's raw signature check).
//!
//! For ES256 (P-256) and EdDSA (Ed25519), in one run:
//! * `fido/<alg>/verify_assertion` — the whole WebAuthn L3 §7.2 check from clientDataJSON:
//!   JSON parse, constant-time challenge compare, two SHA-256s, authenticatorData parse,
//!   flags, signature, counter;
//! * `fido/<alg>/verify_assertion_trusted_hash` — the CTAP-level path (no JSON);
//! * `fido/<alg>/ring_raw_verify` — ring verifying the same signature over the same bytes.
//!
//! Run: `cargo bench -p tokengate-verifier --bench assertion`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, ED25519, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair, UnparsedPublicKey, VerificationAlgorithm,
};
use tokengate_ctap::cose::{CoseKey, P256Point};
use tokengate_verifier::fido::{
    AssertionInput, Ceremony, ClientData, StoredCredential, client_data_json, verify_assertion,
};

const RP_ID: &str = "tokengate.example";
const ORIGIN: &str = "https://tokengate.example";
const CHALLENGE: [u8; 32] = [0x3c; 32];

struct Fixture {
    name: &'static str,
    stored: StoredCredential,
    raw_algorithm: &'static dyn VerificationAlgorithm,
    raw_public_key: Vec<u8>,
    auth_data: Vec<u8>,
    json: Vec<u8>,
    hash: [u8; 32],
    message: Vec<u8>,
    signature: Vec<u8>,
}

fn sha256(data: &[u8]) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .try_into()
        .unwrap()
}

fn fixture(ed25519: bool) -> Fixture {
    let rng = SystemRandom::new();
    let mut auth_data = sha256(RP_ID.as_bytes()).to_vec();
    auth_data.push(0x05); // UP | UV
    auth_data.extend_from_slice(&42u32.to_be_bytes());
    let json = client_data_json(Ceremony::Get, &CHALLENGE, ORIGIN);
    let hash = sha256(&json);
    let mut message = auth_data.clone();
    message.extend_from_slice(&hash);
    let (name, public_key, raw_algorithm, raw_public_key, signature): (
        _,
        _,
        &'static dyn VerificationAlgorithm,
        Vec<u8>,
        Vec<u8>,
    ) = if ed25519 {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let public = key.public_key().as_ref().to_vec();
        (
            "eddsa",
            CoseKey::Ed25519(public.as_slice().try_into().unwrap()),
            &ED25519,
            public,
            key.sign(&message).as_ref().to_vec(),
        )
    } else {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let public = key.public_key().as_ref().to_vec();
        (
            "es256",
            CoseKey::Es256(P256Point::from_sec1_uncompressed(&public).unwrap()),
            &ECDSA_P256_SHA256_ASN1,
            public,
            key.sign(&rng, &message).unwrap().as_ref().to_vec(),
        )
    };
    Fixture {
        name,
        stored: StoredCredential {
            public_key,
            sign_count: 41,
            backup_eligible: false,
        },
        raw_algorithm,
        raw_public_key,
        auth_data,
        json,
        hash,
        message,
        signature,
    }
}

fn assertion(c: &mut Criterion) {
    for f in [fixture(false), fixture(true)] {
        let json_input = AssertionInput {
            authenticator_data: &f.auth_data,
            client_data: ClientData::Json(&f.json),
            signature: &f.signature,
            challenge: &CHALLENGE,
            origin: ORIGIN,
            rp_id: RP_ID,
            require_user_verification: true,
        };
        let hash_input = AssertionInput {
            client_data: ClientData::TrustedHash(&f.hash),
            ..json_input
        };
        assert!(verify_assertion(&f.stored, &json_input).is_ok());
        assert!(verify_assertion(&f.stored, &hash_input).is_ok());
        let raw = UnparsedPublicKey::new(f.raw_algorithm, &f.raw_public_key);
        assert!(raw.verify(&f.message, &f.signature).is_ok());

        let mut group = c.benchmark_group(format!("fido/{}", f.name));
        group.bench_function("verify_assertion", |b| {
            b.iter(|| verify_assertion(black_box(&f.stored), black_box(&json_input)))
        });
        group.bench_function("verify_assertion_trusted_hash", |b| {
            b.iter(|| verify_assertion(black_box(&f.stored), black_box(&hash_input)))
        });
        group.bench_function("ring_raw_verify", |b| {
            b.iter(|| {
                UnparsedPublicKey::new(f.raw_algorithm, black_box(&f.raw_public_key))
                    .verify(black_box(&f.message), black_box(&f.signature))
            })
        });
        group.finish();
    }
}

criterion_group!(benches, assertion);
criterion_main!(benches);
