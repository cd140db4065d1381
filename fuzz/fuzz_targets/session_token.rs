//! Fuzz `session::TokenVerifier::verify`: the `X-Amz-Security-Token` a client sends with
//! temporary credentials.
//!
//! The first input byte picks the mode. Even: the rest of the input is the whole token.
//! Odd: the rest is a list of edits (two bytes of position, one byte of value) applied to a
//! genuine token, ES256 or EdDSA by the mode's next bit, so the fuzzer works from the inside
//! of a well-formed JWS. Beyond "never panics", it asserts that nothing forged is accepted:
//! a token that verifies carries exactly the claims the key signed. (Base64's trailing bits
//! may let another string decode to the same signed bytes; that changes nothing a verifier
//! reads, and the assertion allows it.)
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ring::rand::SystemRandom;
use tokengate_token::Principal;
use tokengate_token::session::{
    ISSUER, MfaContext, SessionClaims, SigningKey, TokenAlgorithm, TokenSigner, TokenVerifier,
};

const AKID: &str = "ASIAQWERTYUIOPASDFGH";
const NOW: i64 = 1_800_000_000;

struct Fixture {
    verifier: TokenVerifier,
    claims: SessionClaims,
    tokens: Vec<String>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rng = SystemRandom::new();
        let keys = [TokenAlgorithm::Es256, TokenAlgorithm::EdDsa]
            .map(|alg| SigningKey::generate(alg, &rng).expect("key generation"));
        let claims = SessionClaims {
            iss: ISSUER.into(),
            sub: "arn:aws:iam::000000000000:user/alice".into(),
            akid: AKID.into(),
            iat: NOW - 60,
            exp: NOW + 3600,
            principal: Principal::User {
                account: "000000000000".into(),
                path: "/".into(),
                name: "alice".into(),
                user_id: "AIDAQWERTYUIOPASDFGHJ".into(),
            },
            src: "AKIAQWERTYUIOPASDFGH".into(),
            mfa: MfaContext::default(),
            session_policy: None,
            chained: false,
            attributes: Default::default(),
        };
        let tokens = keys
            .iter()
            .map(|k| TokenSigner::new(k).expect("signer").sign(&claims).expect("sign"))
            .collect();
        Fixture {
            verifier: TokenVerifier::new(keys.iter().map(SigningKey::public_key)),
            claims,
            tokens,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let candidate = if mode & 1 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let mut token = f.tokens[usize::from(mode >> 1) % f.tokens.len()]
            .clone()
            .into_bytes();
        let len = token.len();
        for edit in rest.chunks_exact(3) {
            let pos = usize::from(u16::from_le_bytes([edit[0], edit[1]])) % len;
            token[pos] = edit[2];
        }
        String::from_utf8_lossy(&token).into_owned()
    };
    if let Ok(claims) = f.verifier.verify(&candidate, AKID, NOW) {
        assert_eq!(*claims, f.claims, "a forged claim set verified: {candidate}");
    }
});
