//! Published test vectors, each re-run tampered (STYLE.md "Tests"):
//!
//! * `data/u2f-raw-message-examples.txt` — FIDO U2F Raw Message Formats §8.1/§8.2.
//! * `data/webauthn-l3-test-vectors.txt` — W3C WebAuthn L3 §"Test Vectors".
//! * `data/yubikey5-nfc-get-info.txt` — a real YubiKey 5 NFC authenticatorGetInfo.
//!
//! Each data file names its source in its header.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use tokengate_ctap::Error;
use tokengate_ctap::attestation::{AttestationObject, AttestationStatement, fido_u2f_signed_data};
use tokengate_ctap::auth_data::{AuthenticatorData, flags};
use tokengate_ctap::cbor::{self, CborError};
use tokengate_ctap::cose::{CoseKey, P256Point};
use tokengate_ctap::ctap2::GetInfoResponse;
use tokengate_ctap::u2f::{
    AuthenticateResponse, RegisterRequest, RegisterResponse, ResponseApdu, StatusWord,
};

/// `[section]` → `name` → hex-decoded bytes.
type Vectors = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

fn parse(file: &str) -> Vectors {
    let mut out = Vectors::new();
    let mut section = String::new();
    for line in file.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line.split_once(" = ").expect("name = hex");
        let bytes = data_encoding::HEXLOWER
            .decode(value.as_bytes())
            .expect("hex");
        out.entry(section.clone())
            .or_default()
            .insert(key.to_owned(), bytes);
    }
    out
}

fn u2f() -> Vectors {
    parse(include_str!("data/u2f-raw-message-examples.txt"))
}

fn w3c() -> Vectors {
    parse(include_str!("data/webauthn-l3-test-vectors.txt"))
}

fn arr32(b: &[u8]) -> [u8; 32] {
    b.try_into().unwrap()
}

// ---- U2F raw message examples ----

#[test]
fn u2f_registration_example() {
    let v = &u2f()["registration"];
    let resp = RegisterResponse::decode(&v["response"]).unwrap();
    assert_eq!(
        resp.user_public_key.to_sec1_uncompressed()[..],
        v["user_public_key"][..]
    );
    assert_eq!(resp.key_handle, v["key_handle"]);
    assert_eq!(resp.key_handle.len(), 64);
    assert_eq!(resp.attestation_certificate, v["attestation_certificate"]);
    assert_eq!(resp.attestation_certificate.len(), 0x140);
    assert_eq!(resp.signature, v["signature"]);

    let request = RegisterRequest {
        challenge: arr32(&v["challenge"]),
        application: arr32(&v["application"]),
    };
    assert_eq!(resp.signed_data(&request), v["signed_data"]);

    let mut out = Vec::new();
    resp.encode(&mut out).unwrap();
    assert_eq!(out, v["response"]);

    // The same registration as a fido-u2f attestationObject signs the same bytes.
    let obj = resp.to_attestation_object(&request.application);
    let decoded = AttestationObject::decode(&obj.to_vec()).unwrap();
    assert_eq!(decoded.auth_data.flags, flags::UP | flags::AT);
    assert_eq!(
        fido_u2f_signed_data(&decoded.auth_data, &request.challenge).unwrap(),
        v["signed_data"]
    );

    // As a full response APDU.
    let mut apdu = v["response"].clone();
    apdu.extend_from_slice(&[0x90, 0x00]);
    let apdu = ResponseApdu::decode(&apdu).unwrap();
    assert_eq!(apdu.status(), Some(StatusWord::NoError));
    assert_eq!(RegisterResponse::decode(&apdu.data), Ok(resp));
}

#[test]
fn u2f_registration_example_tampered() {
    let good = u2f()["registration"]["response"].clone();

    let mut trailing = good.clone();
    trailing.push(0);
    assert!(RegisterResponse::decode(&trailing).is_err());

    for cut in [
        0,
        1,
        65,
        66,
        100,
        131,
        132,
        200,
        131 + 0x140,
        good.len() - 1,
    ] {
        assert!(
            RegisterResponse::decode(&good[..cut]).is_err(),
            "cut at {cut}"
        );
    }

    let mut reserved = good.clone();
    reserved[0] = 0x04;
    assert_eq!(
        RegisterResponse::decode(&reserved),
        Err(Error::InvalidValue("reserved byte"))
    );

    let mut compressed = good.clone();
    compressed[1] = 0x02;
    assert!(RegisterResponse::decode(&compressed).is_err());

    // Key handle length one longer: the certificate header is now misaligned.
    let mut kh_len = good.clone();
    kh_len[66] = 0x41;
    assert!(RegisterResponse::decode(&kh_len).is_err());

    // Certificate DER length (0x82 01 3c) off by one either way.
    for delta in [-1i16, 1] {
        let mut cert_len = good.clone();
        let len = u16::from_be_bytes([cert_len[133], cert_len[134]]);
        let len = u16::try_from(i32::from(len) + i32::from(delta)).unwrap();
        cert_len[133..135].copy_from_slice(&len.to_be_bytes());
        assert!(
            RegisterResponse::decode(&cert_len).is_err(),
            "delta {delta}"
        );
    }
}

#[test]
fn u2f_authentication_example() {
    let v = &u2f()["authentication"];
    let resp = AuthenticateResponse::decode(&v["response"]).unwrap();
    assert_eq!(resp.user_presence, v["user_presence"][0]);
    assert_eq!(resp.counter.to_be_bytes()[..], v["counter"][..]);
    assert_eq!(resp.signature, v["signature"]);

    let application = arr32(&v["application"]);
    let challenge = arr32(&v["challenge"]);
    assert_eq!(resp.signed_data(&application, &challenge), v["signed_data"]);

    // The signed data starts with a valid authenticatorData (WebAuthn L3 §6.1.2).
    let auth_data = resp.to_auth_data(&application);
    assert_eq!(auth_data.to_vec()[..], v["signed_data"][..37]);
    assert_eq!(
        AuthenticatorData::decode(&v["signed_data"][..37]),
        Ok(auth_data)
    );

    let mut out = Vec::new();
    resp.encode(&mut out);
    assert_eq!(out, v["response"]);
}

#[test]
fn u2f_authentication_example_tampered() {
    let good = u2f()["authentication"]["response"].clone();
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(AuthenticateResponse::decode(&trailing).is_err());
    for cut in [0, 1, 4, 5, 6, good.len() - 1] {
        assert!(
            AuthenticateResponse::decode(&good[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    let mut presence = good.clone();
    presence[0] = 0x81;
    assert_eq!(
        AuthenticateResponse::decode(&presence),
        Err(Error::InvalidValue("user presence"))
    );
    let mut sig_len = good;
    sig_len[6] -= 1;
    assert!(AuthenticateResponse::decode(&sig_len).is_err());
}

// ---- W3C WebAuthn L3 test vectors ----

/// SHA-256("example.org"), the rpIdHash of every W3C vector.
const EXAMPLE_ORG_HASH: &str = "bfabc37432958b063360d3ad6461c9c4735ae7f8edd46592a5e0f01452b2e4b5";

/// What decoding each W3C registration must give.
enum Expect {
    /// Parses; the statement has this format, the key this algorithm.
    Ok {
        fmt: &'static str,
        alg: i64,
        self_attestation: bool,
    },
    /// The credential key uses an algorithm this crate does not handle.
    UnsupportedAlgorithm,
    /// The attestation format is not one this crate handles.
    UnsupportedFormat,
}

fn expectation(section: &str) -> Expect {
    let ok = |fmt, alg, self_attestation| Expect::Ok {
        fmt,
        alg,
        self_attestation,
    };
    match section {
        "none-es256"
        | "none-es256-crossOrigin"
        | "none-es256-topOrigin"
        | "none-es256-long-credential-id" => ok("none", -7, false),
        "packed-self-es256" => ok("packed", -7, true),
        "packed-es256" => ok("packed", -7, false),
        "packed-eddsa" => ok("packed", -8, false),
        "fido-u2f-es256" => ok("fido-u2f", -7, false),
        "packed-es384" | "packed-es512" | "packed-rs256" | "packed-ed448" => {
            Expect::UnsupportedAlgorithm
        }
        "tpm-es256" | "android-key-es256" | "apple-es256" => Expect::UnsupportedFormat,
        other => panic!("no expectation for vector {other}"),
    }
}

#[test]
fn w3c_registrations() {
    let vectors = w3c();
    assert_eq!(vectors.len(), 15);
    for (section, v) in &vectors {
        let bytes = &v["attestationObject"];
        let result = AttestationObject::decode(bytes);
        match expectation(section) {
            Expect::UnsupportedAlgorithm => {
                assert!(
                    matches!(result, Err(Error::UnsupportedAlgorithm(_))),
                    "{section}: {result:?}"
                );
                continue;
            }
            Expect::UnsupportedFormat => {
                assert_eq!(result, Err(Error::UnsupportedFormat), "{section}");
                continue;
            }
            Expect::Ok {
                fmt,
                alg,
                self_attestation,
            } => {
                let obj = result.unwrap_or_else(|e| panic!("{section}: {e}"));
                assert_eq!(obj.statement.format(), fmt, "{section}");
                assert_eq!(
                    obj.statement.is_self_attestation(),
                    self_attestation,
                    "{section}"
                );
                let ad = &obj.auth_data;
                assert_eq!(hex(&ad.rp_id_hash), EXAMPLE_ORG_HASH, "{section}");
                assert!(ad.user_present(), "{section}");
                assert_ne!(ad.flags & flags::AT, 0, "{section}");
                let acd = ad.attested_credential_data.as_ref().unwrap();
                assert_eq!(acd.aaguid[..], v["aaguid"][..], "{section}");
                assert_eq!(acd.credential_id, v["credential_id"], "{section}");
                assert_eq!(acd.credential_public_key.alg(), alg, "{section}");
                // The vectors are canonical: re-encoding gives the same bytes.
                assert_eq!(&obj.to_vec(), bytes, "{section}");
                if let AttestationStatement::Packed {
                    alg: att_alg, x5c, ..
                } = &obj.statement
                {
                    assert_eq!(
                        *att_alg,
                        if self_attestation { alg } else { -7 },
                        "{section}"
                    );
                    assert_eq!(x5c.is_empty(), self_attestation, "{section}");
                }
            }
        }
    }
}

#[test]
fn w3c_long_credential_id_is_at_the_limit() {
    let v = &w3c()["none-es256-long-credential-id"];
    let obj = AttestationObject::decode(&v["attestationObject"]).unwrap();
    let id = &obj
        .auth_data
        .attested_credential_data
        .as_ref()
        .unwrap()
        .credential_id;
    assert_eq!(id.len(), tokengate_ctap::auth_data::MAX_CREDENTIAL_ID_LEN);
}

#[test]
fn w3c_eddsa_key_gives_raw_bytes() {
    let v = &w3c()["packed-eddsa"];
    let obj = AttestationObject::decode(&v["attestationObject"]).unwrap();
    let key = obj
        .auth_data
        .attested_credential_data
        .unwrap()
        .credential_public_key;
    assert!(matches!(key, CoseKey::Ed25519(_)));
    assert_eq!(key.public_key_bytes().len(), 32);
    // fido.md §2.10: A4 01 01 03 27 20 06 21 58 20 <x>.
    assert_eq!(hex(&key.to_vec()[..10]), "a4010103272006215820");
}

#[test]
fn w3c_fido_u2f_signed_data() {
    let v = &w3c()["fido-u2f-es256"];
    let obj = AttestationObject::decode(&v["attestationObject"]).unwrap();
    let AttestationStatement::FidoU2f { certificate, .. } = &obj.statement else {
        panic!("not fido-u2f");
    };
    assert_eq!(certificate.first(), Some(&0x30));
    let data = fido_u2f_signed_data(&obj.auth_data, &[0x42; 32]).unwrap();
    let CoseKey::Es256(point) = obj
        .auth_data
        .attested_credential_data
        .unwrap()
        .credential_public_key
    else {
        panic!("not ES256");
    };
    let expected = [
        &[0x00][..],
        &hex_decode(EXAMPLE_ORG_HASH),
        &[0x42; 32],
        &v["credential_id"],
        &point.to_sec1_uncompressed(),
    ]
    .concat();
    assert_eq!(data, expected);
    assert_eq!(
        P256Point::from_sec1_uncompressed(&data[data.len() - 65..]),
        Ok(point)
    );
}

#[test]
fn w3c_assertions() {
    for (section, v) in &w3c() {
        let bytes = &v["authenticatorData"];
        let ad = AuthenticatorData::decode(bytes).unwrap_or_else(|e| panic!("{section}: {e}"));
        assert_eq!(hex(&ad.rp_id_hash), EXAMPLE_ORG_HASH, "{section}");
        assert_eq!(ad.flags & (flags::AT | flags::ED), 0, "{section}");
        assert!(ad.user_present(), "{section}");
        assert_eq!(ad.sign_count, 0, "{section}");
        assert_eq!(&ad.to_vec(), bytes, "{section}");

        let mut at = bytes.clone();
        at[32] |= flags::AT;
        assert!(
            matches!(AuthenticatorData::decode(&at), Err(Error::Truncated(_))),
            "{section}"
        );
        let mut trailing = bytes.clone();
        trailing.push(0xa0);
        assert_eq!(
            AuthenticatorData::decode(&trailing),
            Err(Error::InconsistentFlags("ED")),
            "{section}"
        );
        assert!(
            AuthenticatorData::decode(&bytes[..36]).is_err(),
            "{section}"
        );
    }
}

#[test]
fn w3c_registrations_tampered() {
    for (section, v) in &w3c() {
        if !matches!(expectation(section), Expect::Ok { .. }) {
            continue;
        }
        let good = &v["attestationObject"];

        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            AttestationObject::decode(&trailing),
            Err(Error::Cbor(CborError::TrailingBytes)),
            "{section}"
        );
        for cut in [1, good.len() / 2, good.len() - 1] {
            assert!(
                AttestationObject::decode(&good[..cut]).is_err(),
                "{section} cut {cut}"
            );
        }

        // Non-canonical: "fmt" with a one-byte length argument (78 03) instead of 63.
        assert_eq!(good[1], 0x63, "{section}");
        let non_canonical = [&[0xa3, 0x78, 0x03][..], &good[2..]].concat();
        assert_eq!(
            AttestationObject::decode(&non_canonical),
            Err(Error::Cbor(CborError::NonMinimalEncoding)),
            "{section}"
        );

        // Clearing AT in the embedded authData leaves attested data unaccounted for.
        let obj = AttestationObject::decode(good).unwrap();
        let mut auth_data = obj.auth_data.to_vec();
        auth_data[32] &= !flags::AT;
        assert_eq!(
            AuthenticatorData::decode(&auth_data),
            Err(Error::InconsistentFlags("AT")),
            "{section}"
        );
        let value = cbor::decode(good).unwrap();
        let tampered = value
            .as_map()
            .unwrap()
            .clone()
            .with("authData", auth_data)
            .into_value_bytes();
        assert_eq!(
            AttestationObject::decode(&tampered),
            Err(Error::InconsistentFlags("AT")),
            "{section}"
        );
    }
}

// ---- YubiKey 5 GetInfo ----

#[test]
fn yubikey_5_nfc_get_info() {
    let v = parse(include_str!("data/yubikey5-nfc-get-info.txt"));
    let payload = &v["get-info"]["payload"];
    let info = GetInfoResponse::decode(payload).unwrap();
    assert_eq!(info.versions, ["U2F_V2", "FIDO_2_0", "FIDO_2_1_PRE"]);
    assert_eq!(hex(&info.aaguid), "2fc0579f811347eab116bb5a8db9202a");
    assert_eq!(info.max_msg_size, Some(1200));
    assert_eq!(info.option("credentialMgmtPreview"), Some(true));
    let mut out = Vec::new();
    info.encode(&mut out);
    assert_eq!(&out, payload);
    let mut trailing = payload.clone();
    trailing.push(0);
    assert!(GetInfoResponse::decode(&trailing).is_err());
    assert!(GetInfoResponse::decode(&payload[..payload.len() - 1]).is_err());
}

// ---- helpers ----

fn hex(b: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(b)
}

fn hex_decode(s: &str) -> Vec<u8> {
    data_encoding::HEXLOWER.decode(s.as_bytes()).unwrap()
}

trait IntoValueBytes {
    fn into_value_bytes(self) -> Vec<u8>;
}

impl IntoValueBytes for cbor::Map {
    fn into_value_bytes(self) -> Vec<u8> {
        cbor::Value::Map(self).to_vec()
    }
}
