//! The FIDO U2F Raw Message Formats v1.2 worked examples (§8.1 registration, §8.2
//! authentication; `data/u2f-raw-message-examples.txt`, which names its source), verified
//! as raw U2F messages and through the WebAuthn paths they convert to, then re-run tampered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fido_common;

use fido_common::{NOW, Sections, arr32, hex, parse};
use tokengate_ctap::cose::{CoseKey, P256Point};
use tokengate_ctap::u2f::{AuthenticateResponse, RegisterResponse};
use tokengate_verifier::fido::{
    AssertionInput, AttestationResult, ClientData, RegistrationInput, RegistrationPolicy,
    Rejection, StoredCredential, TrustAnchor, U2fAuthenticationInput, U2fRegistrationInput,
    verify_assertion, verify_registration, verify_u2f_authentication, verify_u2f_registration,
};

/// A named tampering and the refusal it must cause.
type Tamper<T> = (&'static str, Box<dyn Fn(&mut T)>, Rejection);

fn examples() -> Sections {
    parse(include_str!("data/u2f-raw-message-examples.txt"))
}

/// 2012-10-12, inside the example attestation certificate's validity (2012-08-14 ..
/// 2013-08-14).
const IN_2012: i64 = 1_350_000_000;

/// The example's attestation certificate is self-issued by no CA we have ("Gnubby Pilot"),
/// so it is trusted directly, and it expired in 2013.
fn direct_trust() -> RegistrationPolicy {
    let cert = hex(&examples()["registration"]["attestation_certificate"]);
    RegistrationPolicy {
        trust_anchors: vec![TrustAnchor::from_der(&cert).unwrap()],
        check_certificate_validity: false,
        ..RegistrationPolicy::default()
    }
}

#[derive(Clone)]
struct Reg {
    policy: RegistrationPolicy,
    response: Vec<u8>,
    application: [u8; 32],
    challenge: [u8; 32],
    now: i64,
}

impl Reg {
    fn example() -> Self {
        let v = &examples()["registration"];
        Self {
            policy: direct_trust(),
            response: hex(&v["response"]),
            application: arr32(&hex(&v["application"])),
            challenge: arr32(&hex(&v["challenge"])),
            now: NOW,
        }
    }

    fn run(&self) -> Result<tokengate_verifier::fido::RegisteredCredential, Rejection> {
        verify_u2f_registration(
            &self.policy,
            &U2fRegistrationInput {
                response: &self.response,
                application: &self.application,
                challenge: &self.challenge,
                now: self.now,
            },
        )
    }
}

#[test]
fn registration_example_verifies() {
    let v = &examples()["registration"];
    let cred = Reg::example().run().unwrap();
    assert_eq!(cred.credential_id, hex(&v["key_handle"]));
    let user_key = P256Point::from_sec1_uncompressed(&hex(&v["user_public_key"])).unwrap();
    assert_eq!(cred.public_key, CoseKey::Es256(user_key));
    assert_eq!(cred.public_key_cose, CoseKey::Es256(user_key).to_vec());
    assert_eq!(cred.sign_count, 0);
    assert_eq!(cred.aaguid, [0; 16]);
    assert_eq!(cred.attestation_format, "fido-u2f");
    assert_eq!(
        cred.attestation,
        AttestationResult::Trusted {
            anchor_subject: "CN=PilotGnubby-0.4.1-47901280001155957352".to_owned()
        }
    );
    assert!(cred.flags.user_present() && !cred.flags.user_verified());
}

#[test]
fn registration_example_certificate_validity() {
    let mut reg = Reg::example();
    reg.policy.check_certificate_validity = true;
    assert_eq!(
        reg.run().unwrap_err(),
        Rejection::UntrustedAttestation("certificate outside its validity period")
    );
    reg.now = IN_2012;
    assert!(reg.run().is_ok());
}

#[test]
fn tampered_registrations_are_refused() {
    let untrusted = Rejection::UntrustedAttestation("no configured trust anchor issued the chain");
    let cases: Vec<Tamper<Reg>> = vec![
        (
            "signature byte",
            Box::new(|r| {
                let last = r.response.len() - 1;
                r.response[last] ^= 1;
            }),
            Rejection::BadSignature,
        ),
        (
            "challenge",
            Box::new(|r| r.challenge[0] ^= 1),
            Rejection::BadSignature,
        ),
        (
            "application",
            Box::new(|r| r.application[31] ^= 1),
            Rejection::BadSignature,
        ),
        // 0x05 | userPublicKey[65] | 0x40 | keyHandle[64] | ...
        (
            "user public key",
            Box::new(|r| r.response[40] ^= 1),
            Rejection::BadSignature,
        ),
        (
            "key handle",
            Box::new(|r| r.response[70] ^= 1),
            Rejection::BadSignature,
        ),
        (
            "reserved byte",
            Box::new(|r| r.response[0] = 0x06),
            Rejection::Malformed(tokengate_ctap::Error::InvalidValue("reserved byte")),
        ),
        (
            "point tag",
            Box::new(|r| r.response[1] = 0x02),
            Rejection::Malformed(tokengate_ctap::Error::InvalidValue("P-256 public key")),
        ),
        (
            "cut short",
            Box::new(|r| r.response.truncate(100)),
            Rejection::Malformed(tokengate_ctap::Error::Truncated("key handle")),
        ),
        (
            "no trust anchor",
            Box::new(|r| r.policy.trust_anchors.clear()),
            untrusted.clone(),
        ),
        (
            "another anchor",
            Box::new(|r| {
                r.policy.trust_anchors =
                    TrustAnchor::from_pem(tokengate_verifier::fido::YUBICO_U2F_ROOT_CA_PEM).unwrap()
            }),
            untrusted,
        ),
        (
            "UV required",
            Box::new(|r| r.policy.require_user_verification = true),
            Rejection::UserNotVerified,
        ),
        (
            "AAGUID allow-list without zero",
            Box::new(|r| r.policy.allowed_aaguids = Some(vec![[1; 16]])),
            Rejection::AaguidNotAllowed([0; 16]),
        ),
    ];
    for (what, tamper, expected) in cases {
        let mut reg = Reg::example();
        tamper(&mut reg);
        assert_eq!(reg.run().err(), Some(expected), "{what}");
    }
    let mut reg = Reg::example();
    reg.policy.allowed_aaguids = Some(vec![[0; 16]]);
    assert!(reg.run().is_ok());
}

#[test]
fn registration_example_verifies_as_fido_u2f_attestation() {
    // A client that speaks U2F to the key converts the response into a `fido-u2f`
    // attestationObject (WebAuthn L3 §8.6); the U2F challenge parameter is then the
    // clientDataHash, and the application parameter the rpIdHash of appId
    // "http://example.com".
    let reg = Reg::example();
    let response = RegisterResponse::decode(&reg.response).unwrap();
    let object = response.to_attestation_object(&reg.application).to_vec();
    let run = |rp_id: &str, hash: &[u8; 32]| {
        verify_registration(
            &direct_trust(),
            &RegistrationInput {
                attestation_object: &object,
                client_data: ClientData::TrustedHash(hash),
                challenge: &[],
                origin: "",
                rp_id,
                now: NOW,
            },
        )
    };
    let cred = run("http://example.com", &reg.challenge).unwrap();
    assert_eq!(cred, reg.run().unwrap());
    assert_eq!(
        run("https://example.com", &reg.challenge),
        Err(Rejection::RpIdMismatch)
    );
    assert_eq!(
        run("http://example.com", &[0; 32]),
        Err(Rejection::BadSignature)
    );
}

// ---- Authentication ----

#[derive(Clone)]
struct Auth {
    stored: StoredCredential,
    response: Vec<u8>,
    application: [u8; 32],
    challenge: [u8; 32],
}

impl Auth {
    fn example() -> Self {
        let v = &examples()["authentication"];
        let key = P256Point::from_sec1_uncompressed(&hex(&v["user_public_key"])).unwrap();
        Self {
            stored: StoredCredential {
                public_key: CoseKey::Es256(key),
                sign_count: 0,
                backup_eligible: false,
            },
            response: hex(&v["response"]),
            application: arr32(&hex(&v["application"])),
            challenge: arr32(&hex(&v["challenge"])),
        }
    }

    fn run(&self) -> Result<tokengate_verifier::fido::AssertionOutcome, Rejection> {
        verify_u2f_authentication(
            &self.stored,
            &U2fAuthenticationInput {
                response: &self.response,
                application: &self.application,
                challenge: &self.challenge,
            },
        )
    }
}

#[test]
fn authentication_example_verifies() {
    let outcome = Auth::example().run().unwrap();
    assert_eq!(outcome.sign_count, 1);
    assert!(outcome.flags.user_present());
}

#[test]
fn tampered_authentications_are_refused() {
    let cases: Vec<Tamper<Auth>> = vec![
        (
            "signature byte",
            Box::new(|a| {
                let last = a.response.len() - 1;
                a.response[last] ^= 1;
            }),
            Rejection::BadSignature,
        ),
        (
            "not touched",
            Box::new(|a| a.response[0] = 0x00),
            Rejection::UserNotPresent,
        ),
        (
            "reserved presence bit",
            Box::new(|a| a.response[0] = 0x81),
            Rejection::Malformed(tokengate_ctap::Error::InvalidValue("user presence")),
        ),
        (
            "counter",
            Box::new(|a| a.response[4] = 0x02),
            Rejection::BadSignature,
        ),
        (
            "challenge",
            Box::new(|a| a.challenge[5] ^= 1),
            Rejection::BadSignature,
        ),
        (
            "application",
            Box::new(|a| a.application[0] ^= 1),
            Rejection::BadSignature,
        ),
        (
            "another key",
            Box::new(|a| {
                let other = hex(&examples()["registration"]["user_public_key"]);
                a.stored.public_key =
                    CoseKey::Es256(P256Point::from_sec1_uncompressed(&other).unwrap());
            }),
            Rejection::BadSignature,
        ),
        (
            "Ed25519 key stored",
            Box::new(|a| a.stored.public_key = CoseKey::Ed25519([1; 32])),
            Rejection::UnsupportedAlgorithm(-8),
        ),
        (
            "replayed (stored counter 1)",
            Box::new(|a| a.stored.sign_count = 1),
            Rejection::PossibleClone {
                stored: 1,
                received: 1,
            },
        ),
        (
            "stored counter ahead",
            Box::new(|a| a.stored.sign_count = 5),
            Rejection::PossibleClone {
                stored: 5,
                received: 1,
            },
        ),
        (
            "trailing byte",
            Box::new(|a| a.response.push(0)),
            Rejection::Malformed(tokengate_ctap::Error::TrailingBytes(1)),
        ),
    ];
    for (what, tamper, expected) in cases {
        let mut auth = Auth::example();
        tamper(&mut auth);
        assert_eq!(auth.run().err(), Some(expected), "{what}");
    }
}

#[test]
fn authentication_example_verifies_as_a_webauthn_assertion() {
    // WebAuthn L3 §6.1.2: the first 37 bytes a U2F authentication signs are a valid
    // authenticatorData; with the U2F challenge as clientDataHash the assertion verifies.
    // The application parameter is SHA-256 of appId
    // "https://gstatic.com/securitykey/a/example.com".
    let auth = Auth::example();
    let response = AuthenticateResponse::decode(&auth.response).unwrap();
    let auth_data = response.to_auth_data(&auth.application).to_vec();
    let run = |stored: &StoredCredential, rp_id: &str| {
        verify_assertion(
            stored,
            &AssertionInput {
                authenticator_data: &auth_data,
                client_data: ClientData::TrustedHash(&auth.challenge),
                signature: &response.signature,
                challenge: &[],
                origin: "",
                rp_id,
                require_user_verification: false,
            },
        )
    };
    let app_id = "https://gstatic.com/securitykey/a/example.com";
    let outcome = run(&auth.stored, app_id).unwrap();
    assert_eq!(outcome, auth.run().unwrap());
    assert_eq!(
        run(&auth.stored, "example.com"),
        Err(Rejection::RpIdMismatch)
    );
    let mut seen = auth.stored;
    seen.sign_count = 1;
    assert_eq!(
        run(&seen, app_id),
        Err(Rejection::PossibleClone {
            stored: 1,
            received: 1
        })
    );
}
