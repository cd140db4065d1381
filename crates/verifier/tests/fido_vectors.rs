//! Published FIDO2 data, each positive case re-run tampered (STYLE.md "Tests"):
//!
//! * `data/webauthn-l3-test-vectors.txt` — W3C WebAuthn L3 §"Test Vectors": registrations
//!   with `none`, `packed` self, `packed` x5c (under the vectors' attestation root) and
//!   `fido-u2f` attestation, and their ES256 and EdDSA assertions.
//! * `data/yubikey5-registrations.txt` — two registrations by real YubiKey 5 keys, attested
//!   under the Yubico U2F root that this crate ships.
//!
//! Each data file names its source in its header.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fido_common;

use fido_common::{NOW, Sections, arr16, hex, parse, replace_once, sha256};
use tokengate_ctap::attestation::{AttestationObject, AttestationStatement};
use tokengate_ctap::auth_data::{AuthenticatorData, flags};
use tokengate_verifier::fido::{
    AssertionInput, AttestationResult, ClientData, RegisteredCredential, RegistrationInput,
    RegistrationPolicy, Rejection, StoredCredential, TrustAnchor, YUBICO_U2F_ROOT_CA_PEM,
    verify_assertion, verify_registration,
};

const RP_ID: &str = "example.org";
const ORIGIN: &str = "https://example.org";

fn w3c() -> Sections {
    parse(include_str!("data/webauthn-l3-test-vectors.txt"))
}

fn w3c_root() -> TrustAnchor {
    TrustAnchor::from_der(&hex(&w3c()["attestation-root-cert"]["attestation_ca_cert"])).unwrap()
}

fn yubico_root() -> TrustAnchor {
    TrustAnchor::from_pem(YUBICO_U2F_ROOT_CA_PEM)
        .unwrap()
        .remove(0)
}

/// Every attestation type accepted; the vectors' root as the only anchor.
fn permissive() -> RegistrationPolicy {
    RegistrationPolicy {
        trust_anchors: vec![w3c_root()],
        allow_none_attestation: true,
        allow_self_attestation: true,
        ..RegistrationPolicy::default()
    }
}

/// A registration ceremony's inputs, owned so that tests can tamper with them.
#[derive(Clone)]
struct Reg {
    policy: RegistrationPolicy,
    attestation_object: Vec<u8>,
    client_data_json: Vec<u8>,
    trusted_hash: Option<[u8; 32]>,
    challenge: Vec<u8>,
    origin: String,
    rp_id: String,
    now: i64,
}

impl Reg {
    fn w3c(name: &str) -> Self {
        let v = &w3c()[name];
        Self {
            policy: permissive(),
            attestation_object: hex(&v["attestationObject"]),
            client_data_json: hex(&v["reg_clientDataJSON"]),
            trusted_hash: None,
            challenge: hex(&v["reg_challenge"]),
            origin: ORIGIN.to_owned(),
            rp_id: RP_ID.to_owned(),
            now: NOW,
        }
    }

    fn run(&self) -> Result<RegisteredCredential, Rejection> {
        let client_data = match &self.trusted_hash {
            Some(hash) => ClientData::TrustedHash(hash),
            None => ClientData::Json(&self.client_data_json),
        };
        verify_registration(
            &self.policy,
            &RegistrationInput {
                attestation_object: &self.attestation_object,
                client_data,
                challenge: &self.challenge,
                origin: &self.origin,
                rp_id: &self.rp_id,
                now: self.now,
            },
        )
    }

    fn object(&self) -> AttestationObject {
        AttestationObject::decode(&self.attestation_object).unwrap()
    }

    fn edit_object(&mut self, edit: impl FnOnce(&mut AttestationObject)) {
        let mut object = self.object();
        edit(&mut object);
        self.attestation_object = object.to_vec();
    }

    fn edit_json(&mut self, from: &str, to: &str) {
        self.client_data_json =
            replace_once(&self.client_data_json, from.as_bytes(), to.as_bytes());
    }
}

/// An authentication ceremony's inputs, owned so that tests can tamper with them.
#[derive(Clone)]
struct Assert {
    stored: StoredCredential,
    authenticator_data: Vec<u8>,
    client_data_json: Vec<u8>,
    trusted_hash: Option<[u8; 32]>,
    signature: Vec<u8>,
    challenge: Vec<u8>,
    origin: String,
    rp_id: String,
    require_user_verification: bool,
}

impl Assert {
    fn w3c(name: &str) -> Self {
        let v = &w3c()[name];
        let registered = Reg::w3c(name).run().unwrap();
        Self {
            stored: registered.to_stored(),
            authenticator_data: hex(&v["authenticatorData"]),
            client_data_json: hex(&v["auth_clientDataJSON"]),
            trusted_hash: None,
            signature: hex(&v["signature"]),
            challenge: hex(&v["auth_challenge"]),
            origin: ORIGIN.to_owned(),
            rp_id: RP_ID.to_owned(),
            require_user_verification: false,
        }
    }

    fn run(&self) -> Result<tokengate_verifier::fido::AssertionOutcome, Rejection> {
        let client_data = match &self.trusted_hash {
            Some(hash) => ClientData::TrustedHash(hash),
            None => ClientData::Json(&self.client_data_json),
        };
        verify_assertion(
            &self.stored,
            &AssertionInput {
                authenticator_data: &self.authenticator_data,
                client_data,
                signature: &self.signature,
                challenge: &self.challenge,
                origin: &self.origin,
                rp_id: &self.rp_id,
                require_user_verification: self.require_user_verification,
            },
        )
    }

    fn edit_auth_data(&mut self, edit: impl FnOnce(&mut AuthenticatorData)) {
        let mut ad = AuthenticatorData::decode(&self.authenticator_data).unwrap();
        edit(&mut ad);
        self.authenticator_data = ad.to_vec();
    }

    fn edit_json(&mut self, from: &str, to: &str) {
        self.client_data_json =
            replace_once(&self.client_data_json, from.as_bytes(), to.as_bytes());
    }
}

/// The registrations that must verify: (section, format, attestation, COSE alg).
fn positive() -> Vec<(&'static str, &'static str, AttestationResult, i64)> {
    let trusted = AttestationResult::Trusted {
        anchor_subject: w3c_root().subject().to_owned(),
    };
    vec![
        ("none-es256", "none", AttestationResult::None, -7),
        (
            "none-es256-long-credential-id",
            "none",
            AttestationResult::None,
            -7,
        ),
        (
            "packed-self-es256",
            "packed",
            AttestationResult::SelfAttested,
            -7,
        ),
        ("packed-es256", "packed", trusted.clone(), -7),
        ("packed-eddsa", "packed", trusted.clone(), -8),
        ("fido-u2f-es256", "fido-u2f", trusted, -7),
    ]
}

fn is_signed(name: &str) -> bool {
    !name.starts_with("none")
}

fn has_certificate(name: &str) -> bool {
    matches!(name, "packed-es256" | "packed-eddsa" | "fido-u2f-es256")
}

#[test]
fn w3c_root_is_the_documented_one() {
    assert_eq!(
        w3c_root().subject(),
        "CN=WebAuthn test vectors, O=W3C, OU=Authenticator Attestation CA, C=AA"
    );
}

#[test]
fn attestation_objects_re_encode_byte_exact() {
    // The tampering below edits parsed objects and re-encodes them; that must be lossless.
    for (name, ..) in positive() {
        let reg = Reg::w3c(name);
        assert_eq!(reg.object().to_vec(), reg.attestation_object, "{name}");
    }
}

#[test]
fn registrations_verify() {
    for (name, format, attestation, alg) in positive() {
        let v = &w3c()[name];
        let cred = Reg::w3c(name)
            .run()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(cred.attestation_format, format, "{name}");
        assert_eq!(cred.attestation, attestation, "{name}");
        assert_eq!(cred.public_key.alg(), alg, "{name}");
        assert_eq!(cred.credential_id, hex(&v["credential_id"]), "{name}");
        assert_eq!(cred.aaguid, arr16(&hex(&v["aaguid"])), "{name}");
        assert_eq!(cred.sign_count, 0, "{name}");
        assert!(cred.flags.user_present(), "{name}");
        let auth_data = Reg::w3c(name).object().auth_data;
        assert_eq!(cred.flags.bits(), auth_data.flags, "{name}");
        let acd = auth_data.attested_credential_data.unwrap();
        assert_eq!(
            cred.public_key_cose,
            acd.credential_public_key.to_vec(),
            "{name}"
        );
    }
}

#[test]
fn registrations_verify_from_a_trusted_client_data_hash() {
    for (name, ..) in positive() {
        let mut reg = Reg::w3c(name);
        reg.trusted_hash = Some(sha256(&reg.client_data_json));
        // The hash binds challenge and origin; the expected values are not consulted.
        reg.challenge.clear();
        reg.origin.clear();
        assert!(reg.run().is_ok(), "{name}");
        if is_signed(name) {
            reg.trusted_hash = Some([0; 32]);
            assert_eq!(reg.run().unwrap_err(), Rejection::BadSignature, "{name}");
        }
    }
}

type Tamper = (&'static str, Box<dyn Fn(&mut Reg)>, Rejection);

/// Tamperings every registration must refuse, whatever its format.
fn tampered_registrations(name: &str) -> Vec<Tamper> {
    let aaguid = arr16(&hex(&w3c()[name]["aaguid"]));
    let challenge_b64 = data_encoding::BASE64URL_NOPAD.encode(&hex(&w3c()[name]["reg_challenge"]));
    let mut other_b64 = challenge_b64.clone().into_bytes();
    other_b64[0] = if other_b64[0] == b'A' { b'B' } else { b'A' };
    let other_b64 = String::from_utf8(other_b64).unwrap();
    vec![
        (
            "UP cleared",
            Box::new(|r: &mut Reg| r.edit_object(|o| o.auth_data.flags &= !flags::UP)),
            Rejection::UserNotPresent,
        ),
        (
            "BS without BE",
            Box::new(|r: &mut Reg| {
                r.edit_object(|o| o.auth_data.flags = (o.auth_data.flags | flags::BS) & !flags::BE)
            }),
            Rejection::InconsistentFlags("BS set without BE"),
        ),
        (
            "rpIdHash",
            Box::new(|r: &mut Reg| r.edit_object(|o| o.auth_data.rp_id_hash[0] ^= 1)),
            Rejection::RpIdMismatch,
        ),
        (
            "wrong rpId",
            Box::new(|r: &mut Reg| r.rp_id = "example.com".to_owned()),
            Rejection::RpIdMismatch,
        ),
        (
            "clientDataJSON challenge",
            Box::new(move |r: &mut Reg| r.edit_json(&challenge_b64, &other_b64)),
            Rejection::ClientDataMismatch("challenge"),
        ),
        (
            "expected challenge",
            Box::new(|r: &mut Reg| r.challenge[31] ^= 0x80),
            Rejection::ClientDataMismatch("challenge"),
        ),
        (
            "clientDataJSON origin",
            Box::new(|r: &mut Reg| r.edit_json("https://example.org", "https://example.com")),
            Rejection::ClientDataMismatch("origin"),
        ),
        (
            "expected origin",
            Box::new(|r: &mut Reg| r.origin = "https://example.org:443".to_owned()),
            Rejection::ClientDataMismatch("origin"),
        ),
        (
            "clientDataJSON type",
            Box::new(|r: &mut Reg| r.edit_json("webauthn.create", "webauthn.get")),
            Rejection::ClientDataMismatch("type"),
        ),
        (
            "clientDataJSON cut short",
            Box::new(|r: &mut Reg| {
                let len = r.client_data_json.len();
                r.client_data_json.truncate(len - 1);
            }),
            Rejection::MalformedClientData("not a CollectedClientData JSON object"),
        ),
        (
            "AAGUID not allowed",
            Box::new(|r: &mut Reg| r.policy.allowed_aaguids = Some(vec![[0xff; 16]])),
            // fido-u2f does not vouch for the AAGUID: the allow-list sees zero.
            Rejection::AaguidNotAllowed(if name == "fido-u2f-es256" {
                [0; 16]
            } else {
                aaguid
            }),
        ),
        (
            "attestationObject cut short",
            Box::new(|r: &mut Reg| {
                let len = r.attestation_object.len();
                r.attestation_object.truncate(len - 1);
            }),
            Rejection::Malformed(tokengate_ctap::Error::Cbor(
                tokengate_ctap::CborError::Truncated,
            )),
        ),
        (
            "AT cleared",
            Box::new(|r: &mut Reg| r.edit_object(|o| o.auth_data.attested_credential_data = None)),
            Rejection::MissingCredentialData,
        ),
    ]
}

/// Tamperings that only a signature can catch (a `none` registration has none).
fn tampered_signed_registrations(name: &str) -> Vec<Tamper> {
    let mut out: Vec<Tamper> = Vec::new();
    if name == "fido-u2f-es256" {
        // fido-u2f signs neither flags, counter nor AAGUID (WebAuthn L3 §8.6 step 5).
        out.push((
            "UV set",
            Box::new(|r: &mut Reg| r.edit_object(|o| o.auth_data.flags |= flags::UV)),
            Rejection::InconsistentFlags("fido-u2f with UV, BE or BS"),
        ));
    } else {
        out.extend::<Vec<Tamper>>(vec![
            (
                "signCount",
                Box::new(|r: &mut Reg| r.edit_object(|o| o.auth_data.sign_count += 1)),
                Rejection::BadSignature,
            ),
            (
                "UV flipped",
                Box::new(|r: &mut Reg| r.edit_object(|o| o.auth_data.flags ^= flags::UV)),
                Rejection::BadSignature,
            ),
            (
                "AAGUID",
                Box::new(|r: &mut Reg| {
                    r.edit_object(|o| {
                        o.auth_data
                            .attested_credential_data
                            .as_mut()
                            .unwrap()
                            .aaguid[15] ^= 1
                    })
                }),
                Rejection::BadSignature,
            ),
        ]);
    }
    out.extend::<Vec<Tamper>>(vec![
        (
            "credential ID",
            Box::new(|r: &mut Reg| {
                r.edit_object(|o| {
                    o.auth_data
                        .attested_credential_data
                        .as_mut()
                        .unwrap()
                        .credential_id[0] ^= 1
                })
            }),
            Rejection::BadSignature,
        ),
        (
            "clientDataJSON member added",
            Box::new(|r: &mut Reg| r.edit_json("{", "{\"x\":1,")),
            Rejection::BadSignature,
        ),
        (
            "attestation signature",
            Box::new(|r: &mut Reg| {
                r.edit_object(|o| match &mut o.statement {
                    AttestationStatement::Packed { sig, .. }
                    | AttestationStatement::FidoU2f { sig, .. } => {
                        let last = sig.len() - 1;
                        sig[last] ^= 1;
                    }
                    AttestationStatement::None => unreachable!(),
                })
            }),
            Rejection::BadSignature,
        ),
    ]);
    if has_certificate(name) {
        out.extend::<Vec<Tamper>>(vec![
            (
                "Yubico root instead of the vectors' root",
                Box::new(|r: &mut Reg| r.policy.trust_anchors = vec![yubico_root()]),
                Rejection::UntrustedAttestation("no configured trust anchor issued the chain"),
            ),
            (
                "no trust anchor",
                Box::new(|r: &mut Reg| r.policy.trust_anchors.clear()),
                Rejection::UntrustedAttestation("no configured trust anchor issued the chain"),
            ),
            (
                "before the certificates' validity",
                Box::new(|r: &mut Reg| r.now = 1_600_000_000),
                Rejection::UntrustedAttestation("certificate outside its validity period"),
            ),
            (
                "leaf replaced by the root",
                Box::new(|r: &mut Reg| {
                    let root = w3c_root().der().to_vec();
                    r.edit_object(|o| match &mut o.statement {
                        AttestationStatement::Packed { x5c, .. } => x5c[0] = root,
                        AttestationStatement::FidoU2f { certificate, .. } => *certificate = root,
                        AttestationStatement::None => unreachable!(),
                    })
                }),
                Rejection::BadSignature,
            ),
        ]);
    }
    out
}

#[test]
fn tampered_registrations_are_refused() {
    for (name, ..) in positive() {
        let mut tampers = tampered_registrations(name);
        if is_signed(name) {
            tampers.extend(tampered_signed_registrations(name));
        }
        for (what, tamper, expected) in tampers {
            let mut reg = Reg::w3c(name);
            tamper(&mut reg);
            assert_eq!(reg.run().err(), Some(expected), "{name}: {what}");
        }
    }
}

#[test]
fn registration_policy_decides_what_vouches() {
    let mut reg = Reg::w3c("none-es256");
    reg.policy.allow_none_attestation = false;
    assert_eq!(reg.run().unwrap_err(), Rejection::NoneAttestationNotAllowed);

    let mut reg = Reg::w3c("packed-self-es256");
    reg.policy.allow_self_attestation = false;
    assert_eq!(reg.run().unwrap_err(), Rejection::SelfAttestationNotAllowed);

    // AAGUID allow-list that names the vector's AAGUID (zero for fido-u2f, which does not
    // vouch for it; the credential still reports what authData said).
    for (name, ..) in positive() {
        let aaguid = arr16(&hex(&w3c()[name]["aaguid"]));
        let mut reg = Reg::w3c(name);
        reg.policy.allowed_aaguids = Some(vec![aaguid]);
        if name == "fido-u2f-es256" {
            assert_eq!(reg.run().unwrap_err(), Rejection::AaguidNotAllowed([0; 16]));
            reg.policy.allowed_aaguids = Some(vec![[0; 16]]);
        }
        assert_eq!(reg.run().unwrap().aaguid, aaguid, "{name}");
    }

    // Validity not checked: the same certificates pass at any time.
    let mut reg = Reg::w3c("packed-es256");
    reg.now = 0;
    reg.policy.check_certificate_validity = false;
    assert!(reg.run().is_ok());
}

#[test]
fn user_verification_requirement() {
    for (name, ..) in positive() {
        let mut reg = Reg::w3c(name);
        reg.policy.require_user_verification = true;
        let uv = reg.object().auth_data.user_verified();
        match reg.run() {
            Ok(cred) => assert!(uv && cred.flags.user_verified(), "{name}"),
            Err(e) => assert!(!uv && e == Rejection::UserNotVerified, "{name}: {e}"),
        }
    }
}

#[test]
fn statement_algorithm_must_match_the_signing_key() {
    let set_alg = |name: &str, new_alg: i64| {
        let mut reg = Reg::w3c(name);
        reg.edit_object(|o| {
            if let AttestationStatement::Packed { alg, .. } = &mut o.statement {
                *alg = new_alg;
            }
        });
        reg.run().unwrap_err()
    };
    assert_eq!(
        set_alg("packed-self-es256", -8),
        Rejection::AlgorithmMismatch {
            statement: -8,
            key: -7
        }
    );
    assert_eq!(
        set_alg("packed-es256", -8),
        Rejection::AlgorithmMismatch {
            statement: -8,
            key: -7
        }
    );
    assert_eq!(
        set_alg("packed-es256", -35),
        Rejection::UnsupportedAlgorithm(-35)
    );
}

#[test]
fn unsupported_credentials_and_formats_are_refused() {
    for name in [
        "packed-es384",
        "packed-es512",
        "packed-rs256",
        "packed-ed448",
    ] {
        let err = Reg::w3c(name).run().unwrap_err();
        assert!(
            matches!(err, Rejection::UnsupportedAlgorithm(_)),
            "{name}: {err}"
        );
    }
    for name in ["tpm-es256", "android-key-es256", "apple-es256"] {
        assert_eq!(
            Reg::w3c(name).run().unwrap_err(),
            Rejection::UnsupportedAttestation,
            "{name}"
        );
    }
}

#[test]
fn cross_origin_ceremonies_are_refused() {
    for name in ["none-es256-crossOrigin", "none-es256-topOrigin"] {
        assert_eq!(
            Reg::w3c(name).run().unwrap_err(),
            Rejection::ClientDataMismatch("crossOrigin"),
            "{name}"
        );
        let mut reg = Reg::w3c(name);
        reg.edit_json("\"crossOrigin\":true", "\"crossOrigin\":false");
        let expected = if name.ends_with("topOrigin") {
            Err(Rejection::ClientDataMismatch("topOrigin"))
        } else {
            Ok(())
        };
        assert_eq!(reg.run().map(|_| ()), expected, "{name}");
    }
}

// ---- Assertions ----

/// The vectors whose assertions must verify: the ES256 ones and the EdDSA one.
const ASSERTIONS: [&str; 6] = [
    "none-es256",
    "none-es256-long-credential-id",
    "packed-self-es256",
    "packed-es256",
    "packed-eddsa",
    "fido-u2f-es256",
];

#[test]
fn assertions_verify() {
    for name in ASSERTIONS {
        let a = Assert::w3c(name);
        let outcome = a.run().unwrap_or_else(|e| panic!("{name}: {e}"));
        // Every vector's counter is 0, stored and received: the (0, 0) case of the rule.
        assert_eq!(outcome.sign_count, 0, "{name}");
        assert_eq!(outcome.flags.bits(), a.authenticator_data[32], "{name}");

        let mut a = Assert::w3c(name);
        a.trusted_hash = Some(sha256(&a.client_data_json));
        a.challenge.clear();
        assert!(a.run().is_ok(), "{name}");
    }
}

type AssertTamper = (&'static str, Box<dyn Fn(&mut Assert)>, Rejection);

fn tampered_assertions(name: &str) -> Vec<AssertTamper> {
    let challenge_b64 = data_encoding::BASE64URL_NOPAD.encode(&hex(&w3c()[name]["auth_challenge"]));
    let mut other_b64 = challenge_b64.clone().into_bytes();
    other_b64[5] = if other_b64[5] == b'A' { b'B' } else { b'A' };
    let other_b64 = String::from_utf8(other_b64).unwrap();
    let other_key = if name == "packed-eddsa" {
        "packed-es256"
    } else {
        "packed-eddsa"
    };
    let other_key = Reg::w3c(other_key).run().unwrap().public_key;
    vec![
        (
            "signature byte",
            Box::new(|a: &mut Assert| {
                let last = a.signature.len() - 1;
                a.signature[last] ^= 0x01;
            }),
            Rejection::BadSignature,
        ),
        (
            "signature first byte",
            Box::new(|a: &mut Assert| a.signature[0] ^= 0x40),
            Rejection::BadSignature,
        ),
        (
            "UP cleared",
            Box::new(|a: &mut Assert| a.edit_auth_data(|d| d.flags &= !flags::UP)),
            Rejection::UserNotPresent,
        ),
        (
            "UV flipped",
            Box::new(|a: &mut Assert| a.edit_auth_data(|d| d.flags ^= flags::UV)),
            Rejection::BadSignature,
        ),
        (
            "BE flipped",
            Box::new(|a: &mut Assert| {
                a.edit_auth_data(|d| d.flags = (d.flags ^ flags::BE) & !flags::BS)
            }),
            Rejection::BackupEligibilityChanged,
        ),
        (
            "rpIdHash",
            Box::new(|a: &mut Assert| a.edit_auth_data(|d| d.rp_id_hash[31] ^= 1)),
            Rejection::RpIdMismatch,
        ),
        (
            "signCount",
            Box::new(|a: &mut Assert| a.edit_auth_data(|d| d.sign_count = 1)),
            Rejection::BadSignature,
        ),
        (
            "authenticatorData cut short",
            Box::new(|a: &mut Assert| a.authenticator_data.truncate(36)),
            Rejection::Malformed(tokengate_ctap::Error::Truncated("signCount")),
        ),
        (
            "wrong rpId",
            Box::new(|a: &mut Assert| a.rp_id = "example.net".to_owned()),
            Rejection::RpIdMismatch,
        ),
        (
            "clientDataJSON challenge",
            Box::new(move |a: &mut Assert| a.edit_json(&challenge_b64, &other_b64)),
            Rejection::ClientDataMismatch("challenge"),
        ),
        (
            "expected challenge",
            Box::new(|a: &mut Assert| a.challenge[0] ^= 1),
            Rejection::ClientDataMismatch("challenge"),
        ),
        (
            "clientDataJSON origin",
            Box::new(|a: &mut Assert| a.edit_json("https://example.org", "https://evil.example")),
            Rejection::ClientDataMismatch("origin"),
        ),
        (
            "clientDataJSON type",
            Box::new(|a: &mut Assert| a.edit_json("webauthn.get", "webauthn.create")),
            Rejection::ClientDataMismatch("type"),
        ),
        (
            "clientDataJSON member added",
            Box::new(|a: &mut Assert| a.edit_json("{", "{\"x\":1,")),
            Rejection::BadSignature,
        ),
        (
            "trusted hash of other data",
            Box::new(|a: &mut Assert| a.trusted_hash = Some([1; 32])),
            Rejection::BadSignature,
        ),
        (
            "another credential's key",
            Box::new(move |a: &mut Assert| a.stored.public_key = other_key),
            Rejection::BadSignature,
        ),
        (
            "stored counter 5, received 0",
            Box::new(|a: &mut Assert| a.stored.sign_count = 5),
            Rejection::PossibleClone {
                stored: 5,
                received: 0,
            },
        ),
    ]
}

#[test]
fn tampered_assertions_are_refused() {
    for name in ASSERTIONS {
        for (what, tamper, expected) in tampered_assertions(name) {
            let mut a = Assert::w3c(name);
            tamper(&mut a);
            assert_eq!(a.run().err(), Some(expected), "{name}: {what}");
        }
        let mut a = Assert::w3c(name);
        a.require_user_verification = true;
        let uv = a.authenticator_data[32] & flags::UV != 0;
        assert_eq!(a.run().is_ok(), uv, "{name}: UV required");
        if !uv {
            assert_eq!(a.run().unwrap_err(), Rejection::UserNotVerified, "{name}");
        }
    }
}

#[test]
fn cross_origin_assertions_are_refused() {
    for name in ["none-es256-crossOrigin", "none-es256-topOrigin"] {
        let v = &w3c()[name];
        let mut reg = Reg::w3c(name);
        reg.edit_json("\"crossOrigin\":true", "\"crossOrigin\":false");
        if name.ends_with("topOrigin") {
            reg.edit_json(",\"topOrigin\":\"https://example.com\"", "");
        }
        // Re-hashed client data breaks nothing here: `none` attestation carries no signature.
        let stored = reg.run().unwrap().to_stored();
        let json = hex(&v["auth_clientDataJSON"]);
        let err = verify_assertion(
            &stored,
            &AssertionInput {
                authenticator_data: &hex(&v["authenticatorData"]),
                client_data: ClientData::Json(&json),
                signature: &hex(&v["signature"]),
                challenge: &hex(&v["auth_challenge"]),
                origin: ORIGIN,
                rp_id: RP_ID,
                require_user_verification: false,
            },
        )
        .unwrap_err();
        assert_eq!(err, Rejection::ClientDataMismatch("crossOrigin"), "{name}");
    }
}

// ---- Real YubiKey 5 registrations under the Yubico U2F root ----

fn yubikey(name: &str) -> Reg {
    let v = &parse(include_str!("data/yubikey5-registrations.txt"))[name];
    Reg {
        policy: RegistrationPolicy {
            trust_anchors: vec![yubico_root()],
            ..RegistrationPolicy::default()
        },
        attestation_object: hex(&v["attestationObject"]),
        client_data_json: hex(&v["clientDataJSON"]),
        trusted_hash: None,
        challenge: hex(&v["challenge"]),
        origin: v["origin"].clone(),
        rp_id: v["rp_id"].clone(),
        now: NOW,
    }
}

#[test]
fn yubikey_registrations_chain_to_the_shipped_yubico_root() {
    let yubico = AttestationResult::Trusted {
        anchor_subject: "CN=Yubico U2F Root CA Serial 457200631".to_owned(),
    };
    let cred = yubikey("yubikey5-fido-u2f").run().unwrap();
    assert_eq!(cred.attestation_format, "fido-u2f");
    assert_eq!(cred.attestation, yubico);
    assert_eq!(cred.aaguid, [0; 16]);
    assert_eq!(cred.credential_id.len(), 64);

    let cred = yubikey("yubikey5-nfc-packed").run().unwrap();
    assert_eq!(cred.attestation_format, "packed");
    assert_eq!(cred.attestation, yubico);
    assert_eq!(cred.sign_count, 2);
    assert!(cred.flags.user_verified());
    let aaguid = arr16(&hex("2fc0579f811347eab116bb5a8db9202a"));
    assert_eq!(cred.aaguid, aaguid);

    let mut reg = yubikey("yubikey5-nfc-packed");
    reg.policy.allowed_aaguids = Some(vec![aaguid]);
    reg.policy.require_user_verification = true;
    assert!(reg.run().is_ok());
}

#[test]
fn tampered_yubikey_registrations_are_refused() {
    for name in ["yubikey5-fido-u2f", "yubikey5-nfc-packed"] {
        let mut reg = yubikey(name);
        reg.policy.trust_anchors = vec![w3c_root()];
        assert_eq!(
            reg.run().unwrap_err(),
            Rejection::UntrustedAttestation("no configured trust anchor issued the chain"),
            "{name}"
        );

        // One bit of the leaf's RSA signature by the root.
        let mut reg = yubikey(name);
        reg.edit_object(|o| {
            let cert = match &mut o.statement {
                AttestationStatement::Packed { x5c, .. } => &mut x5c[0],
                AttestationStatement::FidoU2f { certificate, .. } => certificate,
                AttestationStatement::None => unreachable!(),
            };
            let last = cert.len() - 1;
            cert[last] ^= 1;
        });
        assert_eq!(
            reg.run().unwrap_err(),
            Rejection::UntrustedAttestation("no configured trust anchor issued the chain"),
            "{name}"
        );

        let mut reg = yubikey(name);
        reg.challenge[0] = 1;
        assert_eq!(
            reg.run().unwrap_err(),
            Rejection::ClientDataMismatch("challenge")
        );

        let mut reg = yubikey(name);
        reg.edit_object(|o| o.auth_data.rp_id_hash[0] ^= 1);
        assert_eq!(reg.run().unwrap_err(), Rejection::RpIdMismatch);

        let mut reg = yubikey(name);
        reg.edit_object(|o| {
            o.auth_data
                .attested_credential_data
                .as_mut()
                .unwrap()
                .credential_id[9] ^= 4
        });
        assert_eq!(reg.run().unwrap_err(), Rejection::BadSignature);
    }
}

#[test]
fn yubikey_certificate_aaguid_must_match_auth_data() {
    // Change one byte of the AAGUID inside the certificate's id-fido-gen-ce-aaguid
    // extension. The attestation signature does not cover the certificate, so it still
    // verifies; the §8.2.1 check must catch the mismatch (as kanidm's test of a doctored
    // extension expects).
    let mut reg = yubikey("yubikey5-nfc-packed");
    let aaguid = hex("2fc0579f811347eab116bb5a8db9202a");
    let mut doctored = vec![0x04, 0x10];
    doctored.extend_from_slice(&aaguid);
    reg.edit_object(|o| {
        if let AttestationStatement::Packed { x5c, .. } = &mut o.statement {
            let mut other = doctored.clone();
            other[17] ^= 0xff;
            x5c[0] = replace_once(&x5c[0], &doctored, &other);
        }
    });
    assert_eq!(reg.run().unwrap_err(), Rejection::AaguidMismatch);
}
