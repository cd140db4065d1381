//! Attestation certificate rules, driven one by one to failure with certificate chains made
//! on the fly (rcgen): WebAuthn L3 §8.2.1 (packed certificate requirements), §8.6 (fido-u2f
//! key type), and the path rules of the verifier's trust module (issuer names, CA flags,
//! Key Usage, path lengths, validity, critical extensions, direct trust, chain length).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fido_common;

use fido_common::{NOW, sha256};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519,
    PublicKeyData, SignatureAlgorithm, SigningKey, date_time_ymd,
};
use tokengate_ctap::attestation::{
    AttestationObject, AttestationStatement, fido_u2f_signed_data, signed_data,
};
use tokengate_ctap::auth_data::{AttestedCredentialData, AuthenticatorData, flags};
use tokengate_ctap::cose::{CoseKey, P256Point};
use tokengate_ctap::u2f::{RegisterResponse, registration_signed_data};
use tokengate_verifier::fido::{
    AttestationResult, Ceremony, ClientData, RegisteredCredential, RegistrationInput,
    RegistrationPolicy, Rejection, TrustAnchor, U2fRegistrationInput, client_data_json,
    verify_registration, verify_u2f_registration,
};

const RP_ID: &str = "login.tokengate.test";
const ORIGIN: &str = "https://login.tokengate.test";
const CHALLENGE: [u8; 32] = [0x5a; 32];
const AAGUID: [u8; 16] = [0x42; 16];
const ID_FIDO_GEN_CE_AAGUID: [u64; 10] = [1, 3, 6, 1, 4, 1, 45724, 1, 1, 4];

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    der: Vec<u8>,
}

impl Ca {
    fn anchor(&self) -> TrustAnchor {
        TrustAnchor::from_der(&self.der).unwrap()
    }
}

fn name(cn: &str, ou: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "SE");
    dn.push(DnType::OrganizationName, "tokengate tests");
    dn.push(DnType::OrganizationalUnitName, ou);
    dn.push(DnType::CommonName, cn);
    dn
}

fn ca_params(cn: &str, path_len: Option<u8>) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = name(cn, "Authenticator Attestation CA");
    p.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = date_time_ymd(2024, 1, 1);
    p.not_after = date_time_ymd(2050, 1, 1);
    p
}

fn issue(params: CertificateParams, alg: &'static SignatureAlgorithm, issuer: Option<&Ca>) -> Ca {
    let key = KeyPair::generate_for(alg).unwrap();
    let cert = match issuer {
        None => params.self_signed(&key),
        Some(ca) => params.signed_by(&key, &Issuer::from_params(&ca.params, &ca.key)),
    }
    .unwrap();
    Ca {
        der: cert.der().to_vec(),
        params,
        key,
    }
}

fn root() -> Ca {
    issue(ca_params("Test Root", None), &PKCS_ECDSA_P256_SHA256, None)
}

/// A §8.2.1-conforming attestation certificate with a matching AAGUID extension.
fn leaf_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = name("Test Authenticator", "Authenticator Attestation");
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.not_before = date_time_ymd(2024, 1, 1);
    p.not_after = date_time_ymd(2050, 1, 1);
    p.custom_extensions = vec![aaguid_extension(&AAGUID, false)];
    p
}

fn aaguid_extension(aaguid: &[u8], critical: bool) -> CustomExtension {
    let mut content = vec![0x04, 0x10];
    content.extend_from_slice(aaguid);
    let mut ext = CustomExtension::from_oid_content(&ID_FIDO_GEN_CE_AAGUID, content);
    ext.set_criticality(critical);
    ext
}

fn leaf(params: CertificateParams, issuer: &Ca) -> Ca {
    issue(params, &PKCS_ECDSA_P256_SHA256, Some(issuer))
}

/// A `packed` registration signed by `attestation_key` carrying `x5c`.
fn packed(attestation_key: &KeyPair, alg: i64, x5c: Vec<Vec<u8>>) -> (Vec<u8>, Vec<u8>) {
    let (auth_data, json) = new_credential();
    let message = signed_data(&auth_data.to_vec(), &sha256(&json));
    let object = AttestationObject {
        auth_data,
        statement: AttestationStatement::Packed {
            alg,
            sig: attestation_key.sign(&message).unwrap(),
            x5c,
        },
    };
    (object.to_vec(), json)
}

/// A fresh ES256 credential in authenticatorData, and the clientDataJSON of the ceremony.
fn new_credential() -> (AuthenticatorData, Vec<u8>) {
    let credential_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let point = P256Point::from_sec1_uncompressed(credential_key.der_bytes()).unwrap();
    let auth_data = AuthenticatorData {
        rp_id_hash: sha256(RP_ID.as_bytes()),
        flags: flags::UP | flags::AT,
        sign_count: 0,
        attested_credential_data: Some(AttestedCredentialData {
            aaguid: AAGUID,
            credential_id: vec![7; 32],
            credential_public_key: CoseKey::Es256(point),
        }),
        extensions: None,
    };
    (
        auth_data,
        client_data_json(Ceremony::Create, &CHALLENGE, ORIGIN),
    )
}

fn verify(
    anchors: Vec<TrustAnchor>,
    (object, json): &(Vec<u8>, Vec<u8>),
) -> Result<RegisteredCredential, Rejection> {
    verify_with(
        RegistrationPolicy {
            trust_anchors: anchors,
            ..RegistrationPolicy::default()
        },
        object,
        json,
    )
}

fn verify_with(
    policy: RegistrationPolicy,
    object: &[u8],
    json: &[u8],
) -> Result<RegisteredCredential, Rejection> {
    verify_registration(
        &policy,
        &RegistrationInput {
            attestation_object: object,
            client_data: ClientData::Json(json),
            challenge: &CHALLENGE,
            origin: ORIGIN,
            rp_id: RP_ID,
            now: NOW,
        },
    )
}

fn trusted_by(ca: &Ca) -> AttestationResult {
    AttestationResult::Trusted {
        anchor_subject: ca.anchor().subject().to_owned(),
    }
}

fn untrusted(why: &'static str) -> Result<AttestationResult, Rejection> {
    Err(Rejection::UntrustedAttestation(why))
}

fn attestation(r: Result<RegisteredCredential, Rejection>) -> Result<AttestationResult, Rejection> {
    r.map(|c| c.attestation)
}

#[test]
fn leaf_under_root() {
    let root = root();
    let leaf = leaf(leaf_params(), &root);
    let reg = packed(&leaf.key, -7, vec![leaf.der.clone()]);
    assert_eq!(
        attestation(verify(vec![root.anchor()], &reg)),
        Ok(trusted_by(&root))
    );
    // The root may also travel in x5c; it is recognised as the anchor.
    let reg = packed(&leaf.key, -7, vec![leaf.der.clone(), root.der.clone()]);
    assert_eq!(
        attestation(verify(vec![root.anchor()], &reg)),
        Ok(trusted_by(&root))
    );
    // Anchors are tried in turn.
    let other = self::root();
    let reg = packed(&leaf.key, -7, vec![leaf.der.clone()]);
    let anchors = vec![other.anchor(), root.anchor()];
    assert_eq!(attestation(verify(anchors, &reg)), Ok(trusted_by(&root)));
}

#[test]
fn leaf_under_an_intermediate() {
    let root = root();
    let intermediate = issue(
        ca_params("Test Intermediate", Some(0)),
        &PKCS_ECDSA_P256_SHA256,
        Some(&root),
    );
    let leaf = leaf(leaf_params(), &intermediate);
    let reg = packed(
        &leaf.key,
        -7,
        vec![leaf.der.clone(), intermediate.der.clone()],
    );
    assert_eq!(
        attestation(verify(vec![root.anchor()], &reg)),
        Ok(trusted_by(&root))
    );
    // Without the intermediate the path is broken.
    let reg = packed(&leaf.key, -7, vec![leaf.der.clone()]);
    assert_eq!(
        attestation(verify(vec![root.anchor()], &reg)),
        untrusted("no configured trust anchor issued the chain")
    );
    // The intermediate itself may be the anchor.
    let reg = packed(
        &leaf.key,
        -7,
        vec![leaf.der.clone(), intermediate.der.clone()],
    );
    assert_eq!(
        attestation(verify(vec![intermediate.anchor()], &reg)),
        Ok(trusted_by(&intermediate))
    );
}

#[test]
fn path_length_constraints() {
    // Root with pathlen 0 may not have an intermediate below it.
    let root = issue(
        ca_params("Test Root", Some(0)),
        &PKCS_ECDSA_P256_SHA256,
        None,
    );
    let intermediate = issue(
        ca_params("Test Intermediate", None),
        &PKCS_ECDSA_P256_SHA256,
        Some(&root),
    );
    let leaf = leaf(leaf_params(), &intermediate);
    let reg = packed(
        &leaf.key,
        -7,
        vec![leaf.der.clone(), intermediate.der.clone()],
    );
    assert_eq!(
        attestation(verify(vec![root.anchor()], &reg)),
        untrusted("no configured trust anchor issued the chain")
    );

    // An intermediate with pathlen 0 may not have another intermediate below it.
    let root = self::root();
    let upper = issue(
        ca_params("Upper", Some(0)),
        &PKCS_ECDSA_P256_SHA256,
        Some(&root),
    );
    let lower = issue(
        ca_params("Lower", None),
        &PKCS_ECDSA_P256_SHA256,
        Some(&upper),
    );
    let leaf = self::leaf(leaf_params(), &lower);
    let x5c = vec![leaf.der.clone(), lower.der.clone(), upper.der.clone()];
    let reg = packed(&leaf.key, -7, x5c);
    assert_eq!(
        attestation(verify(vec![root.anchor()], &reg)),
        untrusted("path length constraint exceeded")
    );
}

#[test]
fn issuers_must_be_certificate_signing_cas() {
    let root = root();
    let mut not_ca = ca_params("Not A CA", None);
    not_ca.is_ca = IsCa::ExplicitNoCa;
    let not_ca = issue(not_ca, &PKCS_ECDSA_P256_SHA256, Some(&root));
    let leaf_under = |issuer: &Ca| {
        let leaf = leaf(leaf_params(), issuer);
        packed(&leaf.key, -7, vec![leaf.der.clone(), issuer.der.clone()])
    };
    assert_eq!(
        attestation(verify(vec![root.anchor()], &leaf_under(&not_ca))),
        untrusted("issuing certificate is not a CA")
    );

    let mut no_cert_sign = ca_params("No keyCertSign", None);
    no_cert_sign.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let no_cert_sign = issue(no_cert_sign, &PKCS_ECDSA_P256_SHA256, Some(&root));
    assert_eq!(
        attestation(verify(vec![root.anchor()], &leaf_under(&no_cert_sign))),
        untrusted("issuing certificate may not sign certificates")
    );

    // A configured anchor that is not a CA cannot issue either.
    let leaf = leaf(leaf_params(), &not_ca);
    let reg = packed(&leaf.key, -7, vec![leaf.der.clone()]);
    assert_eq!(
        attestation(verify(vec![not_ca.anchor()], &reg)),
        untrusted("no configured trust anchor issued the chain")
    );
}

#[test]
fn names_and_signatures_must_link() {
    let root = root();
    // Same subject name as the anchor, different key: the signature gives it away.
    let impostor = issue(ca_params("Test Root", None), &PKCS_ECDSA_P256_SHA256, None);
    let leaf = leaf(leaf_params(), &impostor);
    let reg = packed(&leaf.key, -7, vec![leaf.der.clone()]);
    assert_eq!(
        attestation(verify(vec![root.anchor()], &reg)),
        untrusted("no configured trust anchor issued the chain")
    );
    // x5c[1] is not the issuer of x5c[0].
    let unrelated = issue(
        ca_params("Unrelated", None),
        &PKCS_ECDSA_P256_SHA256,
        Some(&root),
    );
    let reg = packed(&leaf.key, -7, vec![leaf.der.clone(), unrelated.der.clone()]);
    assert_eq!(
        attestation(verify(vec![root.anchor()], &reg)),
        untrusted("issuer name does not match the next certificate")
    );
    // Self-signed leaf, not configured.
    let mut params = leaf_params();
    params.distinguished_name = name("Self", "Authenticator Attestation");
    let selfish = issue(params, &PKCS_ECDSA_P256_SHA256, None);
    let reg = packed(&selfish.key, -7, vec![selfish.der.clone()]);
    assert_eq!(
        attestation(verify(vec![root.anchor()], &reg)),
        untrusted("no configured trust anchor issued the chain")
    );
    // ... unless trusted directly.
    assert_eq!(
        attestation(verify(vec![selfish.anchor()], &reg)),
        Ok(trusted_by(&selfish))
    );
}

#[test]
fn packed_leaf_requirements() {
    let root = root();
    let run = |params: CertificateParams| {
        let leaf = leaf(params, &root);
        attestation(verify(
            vec![root.anchor()],
            &packed(&leaf.key, -7, vec![leaf.der.clone()]),
        ))
    };
    assert_eq!(run(leaf_params()), Ok(trusted_by(&root)));

    let mut p = leaf_params();
    p.custom_extensions.clear();
    assert_eq!(
        run(p),
        Ok(trusted_by(&root)),
        "the AAGUID extension is optional"
    );

    let mut p = leaf_params();
    p.custom_extensions = vec![aaguid_extension(&[0x43; 16], false)];
    assert_eq!(run(p), Err(Rejection::AaguidMismatch));

    let mut p = leaf_params();
    p.custom_extensions = vec![aaguid_extension(&AAGUID, true)];
    assert_eq!(run(p), untrusted("id-fido-gen-ce-aaguid is critical"));

    let mut p = leaf_params();
    p.custom_extensions = vec![CustomExtension::from_oid_content(
        &ID_FIDO_GEN_CE_AAGUID,
        AAGUID.to_vec(),
    )];
    assert_eq!(
        run(p),
        untrusted("id-fido-gen-ce-aaguid is not a 16-byte OCTET STRING")
    );

    let mut p = leaf_params();
    p.custom_extensions.push(aaguid_extension(&AAGUID, false));
    assert_eq!(run(p), untrusted("id-fido-gen-ce-aaguid appears twice"));

    let mut p = leaf_params();
    p.distinguished_name = name("Test Authenticator", "Authenticator");
    assert_eq!(
        run(p),
        untrusted("attestation certificate subject OU is not \"Authenticator Attestation\"")
    );

    let mut p = leaf_params();
    p.distinguished_name.remove(DnType::CountryName);
    assert_eq!(
        run(p),
        untrusted("attestation certificate subject lacks C, O or CN")
    );

    let mut p = leaf_params();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    assert_eq!(run(p), untrusted("attestation certificate is a CA"));

    let mut p = leaf_params();
    p.is_ca = IsCa::NoCa;
    assert_eq!(
        run(p),
        untrusted("attestation certificate lacks Basic Constraints")
    );

    let mut p = leaf_params();
    let mut unknown = CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], vec![5, 0]);
    unknown.set_criticality(true);
    p.custom_extensions.push(unknown);
    assert_eq!(
        run(p),
        untrusted("certificate has an unsupported critical extension")
    );
}

#[test]
fn validity_periods() {
    let root = root();
    let mut p = leaf_params();
    p.not_after = date_time_ymd(2025, 1, 1);
    let leaf = leaf(p, &root);
    let (object, json) = packed(&leaf.key, -7, vec![leaf.der.clone()]);
    let policy = RegistrationPolicy {
        trust_anchors: vec![root.anchor()],
        ..RegistrationPolicy::default()
    };
    assert_eq!(
        attestation(verify_with(policy.clone(), &object, &json)),
        untrusted("certificate outside its validity period")
    );
    let relaxed = RegistrationPolicy {
        check_certificate_validity: false,
        ..policy
    };
    assert_eq!(
        attestation(verify_with(relaxed, &object, &json)),
        Ok(trusted_by(&root))
    );
}

#[test]
fn chain_shape_limits() {
    let root = root();
    let leaf = leaf(leaf_params(), &root);
    let reg = packed(&leaf.key, -7, vec![leaf.der.clone(); 5]);
    assert_eq!(
        attestation(verify(vec![root.anchor()], &reg)),
        untrusted("certificate chain longer than MAX_CERTIFICATE_CHAIN_LEN")
    );
    let mut trailing = leaf.der.clone();
    trailing.push(0);
    let reg = packed(&leaf.key, -7, vec![trailing]);
    assert_eq!(
        attestation(verify(vec![root.anchor()], &reg)),
        untrusted("bytes after the certificate")
    );
    let reg = packed(&leaf.key, -7, vec![vec![0x30, 0x03, 0x02, 0x01, 0x01]]);
    assert_eq!(
        attestation(verify(vec![root.anchor()], &reg)),
        untrusted("certificate does not parse")
    );
}

#[test]
fn other_key_algorithms() {
    // Ed25519 attestation key (alg -8) under a P-256 root.
    let root = root();
    let ed_leaf = issue(leaf_params(), &PKCS_ED25519, Some(&root));
    let reg = packed(&ed_leaf.key, -8, vec![ed_leaf.der.clone()]);
    assert_eq!(
        attestation(verify(vec![root.anchor()], &reg)),
        Ok(trusted_by(&root))
    );
    let reg = packed(&ed_leaf.key, -7, vec![ed_leaf.der.clone()]);
    assert_eq!(
        attestation(verify(vec![root.anchor()], &reg)),
        Err(Rejection::AlgorithmMismatch {
            statement: -7,
            key: -8
        })
    );

    // Ed25519 and P-384 roots (certificate signatures Ed25519, ecdsa-with-SHA384).
    for alg in [&PKCS_ED25519, &PKCS_ECDSA_P384_SHA384] {
        let root = issue(ca_params("Other Root", None), alg, None);
        let leaf = leaf(leaf_params(), &root);
        let reg = packed(&leaf.key, -7, vec![leaf.der.clone()]);
        assert_eq!(
            attestation(verify(vec![root.anchor()], &reg)),
            Ok(trusted_by(&root))
        );
    }
}

/// A `fido-u2f` registration attested by `cert` (any key; signed by `key`).
fn fido_u2f(key: &KeyPair, certificate: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
    let (auth_data, json) = new_credential();
    let message = fido_u2f_signed_data(&auth_data, &sha256(&json)).unwrap();
    let object = AttestationObject {
        auth_data,
        statement: AttestationStatement::FidoU2f {
            sig: key.sign(&message).unwrap(),
            certificate,
        },
    };
    (object.to_vec(), json)
}

#[test]
fn fido_u2f_attestation_key_must_be_p256() {
    let root = root();
    // U2F attestation certificates carry no §8.2.1 subject requirements.
    let mut p = leaf_params();
    p.distinguished_name = name("U2F Key", "Anything");
    p.is_ca = IsCa::NoCa;
    let p256 = leaf(p.clone(), &root);
    let reg = fido_u2f(&p256.key, p256.der.clone());
    assert_eq!(
        attestation(verify(vec![root.anchor()], &reg)),
        Ok(trusted_by(&root))
    );

    let ed = issue(p, &PKCS_ED25519, Some(&root));
    let reg = fido_u2f(&ed.key, ed.der.clone());
    assert_eq!(
        attestation(verify(vec![root.anchor()], &reg)),
        untrusted("U2F attestation key is not EC P-256")
    );
}

#[test]
fn raw_u2f_registration_under_a_configured_ca() {
    let root = root();
    let mut p = leaf_params();
    p.custom_extensions.clear();
    let attestation_cert = leaf(p, &root);
    let user_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let user_public_key = P256Point::from_sec1_uncompressed(user_key.der_bytes()).unwrap();
    let application = sha256(b"https://login.tokengate.test");
    let key_handle = vec![0xab; 64];
    let message = registration_signed_data(&application, &CHALLENGE, &key_handle, &user_public_key);
    let response = RegisterResponse {
        user_public_key,
        key_handle: key_handle.clone(),
        attestation_certificate: attestation_cert.der.clone(),
        signature: attestation_cert.key.sign(&message).unwrap(),
    };
    let mut bytes = Vec::new();
    response.encode(&mut bytes).unwrap();
    let run = |anchors: Vec<TrustAnchor>, challenge: &[u8; 32]| {
        verify_u2f_registration(
            &RegistrationPolicy {
                trust_anchors: anchors,
                ..RegistrationPolicy::default()
            },
            &U2fRegistrationInput {
                response: &bytes,
                application: &application,
                challenge,
                now: NOW,
            },
        )
    };
    let cred = run(vec![root.anchor()], &CHALLENGE).unwrap();
    assert_eq!(cred.attestation, trusted_by(&root));
    assert_eq!(cred.credential_id, key_handle);
    assert_eq!(cred.public_key, CoseKey::Es256(user_public_key));
    assert_eq!(
        run(vec![root.anchor()], &[0; 32]),
        Err(Rejection::BadSignature)
    );
    assert_eq!(
        attestation(run(vec![self::root().anchor()], &CHALLENGE)),
        untrusted("no configured trust anchor issued the chain")
    );
}

#[test]
fn self_attestation_signed_by_the_credential_key() {
    // Self attestation made here (the W3C vector covers ES256 too): EdDSA credential.
    let credential_key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let public: [u8; 32] = credential_key.der_bytes().try_into().unwrap();
    let auth_data = AuthenticatorData {
        rp_id_hash: sha256(RP_ID.as_bytes()),
        flags: flags::UP | flags::UV | flags::AT,
        sign_count: 3,
        attested_credential_data: Some(AttestedCredentialData {
            aaguid: AAGUID,
            credential_id: vec![1; 16],
            credential_public_key: CoseKey::Ed25519(public),
        }),
        extensions: None,
    };
    let json = client_data_json(Ceremony::Create, &CHALLENGE, ORIGIN);
    let message = signed_data(&auth_data.to_vec(), &sha256(&json));
    let object = AttestationObject {
        auth_data,
        statement: AttestationStatement::Packed {
            alg: -8,
            sig: credential_key.sign(&message).unwrap(),
            x5c: Vec::new(),
        },
    }
    .to_vec();
    let policy = RegistrationPolicy {
        allow_self_attestation: true,
        require_user_verification: true,
        ..RegistrationPolicy::default()
    };
    let cred = verify_with(policy.clone(), &object, &json).unwrap();
    assert_eq!(cred.attestation, AttestationResult::SelfAttested);
    assert_eq!(cred.sign_count, 3);
    assert_eq!(cred.to_stored().sign_count, 3);

    let other_json = client_data_json(Ceremony::Create, &[0x5b; 32], ORIGIN);
    let err = verify_registration(
        &policy,
        &RegistrationInput {
            attestation_object: &object,
            client_data: ClientData::Json(&other_json),
            challenge: &[0x5b; 32],
            origin: ORIGIN,
            rp_id: RP_ID,
            now: NOW,
        },
    );
    assert_eq!(err.unwrap_err(), Rejection::BadSignature);
}
