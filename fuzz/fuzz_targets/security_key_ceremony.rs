//! The untrusted bytes of tokengate's security-key ceremonies, through the same calls the
//! service makes (crates/server/src/security_keys.rs):
//!
//! * EnableSecurityKey's raw U2F `RegistrationData`: decoded, turned into its `fido-u2f`
//!   attestationObject, which must re-decode to the same object, then verified — with no
//!   trust anchor configured nothing may register;
//! * GetSessionTokenWithSecurityKey's `AuthenticatorData` and `Signature` against a stored
//!   Ed25519 credential, with a well-formed clientDataJSON: nothing forged may verify;
//! * `ClientDataJSON` itself: whatever the fuzzer writes is parsed, and what the CLI builds
//!   for any challenge and origin (`client_data_json`) must pass the service's check for
//!   exactly that challenge and origin.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate_ctap::attestation::AttestationObject;
use tokengate_ctap::cose::CoseKey;
use tokengate_ctap::u2f::RegisterResponse;
use tokengate_verifier::fido::{
    AssertionInput, Ceremony, ClientData, MAX_CLIENT_DATA_JSON_LEN, MIN_CHALLENGE_LEN,
    RegistrationInput, RegistrationPolicy, StoredCredential, client_data_json, verify_assertion,
    verify_registration,
};

const RP_ID: &str = "tokengate.localhost";
const ORIGIN: &str = "https://tokengate.localhost";
const CHALLENGE: [u8; 32] = [0x5a; 32];
const NOW: i64 = 1_800_000_000;

fn rp_id_hash() -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, RP_ID.as_bytes()).as_ref());
    out
}

fn u2f_registration(data: &[u8]) {
    let Ok(response) = RegisterResponse::decode(data) else {
        return;
    };
    let object = response.to_attestation_object(&rp_id_hash());
    let bytes = object.to_vec();
    assert_eq!(
        AttestationObject::decode(&bytes).expect("a converted registration decodes"),
        object
    );
    let json = client_data_json(Ceremony::Create, &CHALLENGE, ORIGIN);
    let input = RegistrationInput {
        attestation_object: &bytes,
        client_data: ClientData::Json(&json),
        challenge: &CHALLENGE,
        origin: ORIGIN,
        rp_id: RP_ID,
        now: NOW,
    };
    assert!(verify_registration(&RegistrationPolicy::default(), &input).is_err());
}

fn assertion(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (authenticator_data, signature) = rest.split_at(usize::from(split).min(rest.len()));
    let stored = StoredCredential {
        public_key: CoseKey::Ed25519([0x11; 32]),
        sign_count: 5,
        backup_eligible: false,
    };
    let json = client_data_json(Ceremony::Get, &CHALLENGE, ORIGIN);
    let input = AssertionInput {
        authenticator_data,
        client_data: ClientData::Json(&json),
        signature,
        challenge: &CHALLENGE,
        origin: ORIGIN,
        rp_id: RP_ID,
        require_user_verification: false,
    };
    if let Err(rejection) = verify_assertion(&stored, &input) {
        let _ = (rejection.code(), rejection.to_string());
        // Only a verified signature may report a clone.
        assert!(!rejection.is_possible_clone());
    } else {
        panic!("a forged assertion verified");
    }
}

fn client_data(data: &[u8]) {
    // As the service reads it: any bytes, one refusal or a hash.
    let input = AssertionInput {
        authenticator_data: &[0; 37],
        client_data: ClientData::Json(data),
        signature: &[],
        challenge: &CHALLENGE,
        origin: ORIGIN,
        rp_id: RP_ID,
        require_user_verification: false,
    };
    let stored = StoredCredential {
        public_key: CoseKey::Ed25519([0x11; 32]),
        sign_count: 0,
        backup_eligible: false,
    };
    assert!(verify_assertion(&stored, &input).is_err());

    // As the CLI builds it: the service accepts it for exactly its challenge and origin.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (challenge, origin) = rest.split_at(usize::from(split).min(rest.len()));
    let Ok(origin) = std::str::from_utf8(origin) else {
        return;
    };
    if challenge.len() < MIN_CHALLENGE_LEN {
        return;
    }
    let json = client_data_json(Ceremony::Create, challenge, origin);
    if json.len() > MAX_CLIENT_DATA_JSON_LEN {
        return; // refused by design, whatever its content
    }
    let registration = RegistrationInput {
        // Not an attestationObject: the check must get past clientDataJSON to refuse it.
        attestation_object: &[],
        client_data: ClientData::Json(&json),
        challenge,
        origin,
        rp_id: RP_ID,
        now: NOW,
    };
    match verify_registration(&RegistrationPolicy::default(), &registration) {
        Err(tokengate_verifier::fido::Rejection::Malformed(_)) => {}
        other => panic!(
            "built clientDataJSON {:?} was judged {other:?}",
            String::from_utf8_lossy(&json)
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => u2f_registration(rest),
        1 => assertion(rest),
        _ => client_data(rest),
    }
});
