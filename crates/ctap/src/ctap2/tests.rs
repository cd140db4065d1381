//! Unit tests for the CTAP2 codecs: status mapping of malformed requests, a real YubiKey 5
//! GetInfo, and decode∘encode round trips.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;

use super::*;
use crate::attestation::{AttestationObject, AttestationStatement};
use crate::auth_data::tests::arb_auth_data;
use crate::cbor::Map;
use crate::cose::CoseKey;
use crate::cose::tests::arb_cose_key;
use crate::test_util::hex;

/// Real YubiKey 5 NFC (firmware 5.2/5.4) GetInfo payload; the data file names its source.
const YUBIKEY_5_NFC_GET_INFO_FILE: &str =
    include_str!("../../tests/data/yubikey5-nfc-get-info.txt");

fn yubikey_get_info_hex() -> String {
    YUBIKEY_5_NFC_GET_INFO_FILE
        .lines()
        .find_map(|l| l.strip_prefix("payload = "))
        .unwrap()
        .to_owned()
}

fn status_of(bytes: &[u8]) -> StatusCode {
    StatusCode::from(&Request::decode(bytes).unwrap_err())
}

fn sample_make_credential() -> MakeCredentialRequest {
    MakeCredentialRequest {
        client_data_hash: [0x11; 32],
        rp: PublicKeyCredentialRpEntity {
            id: "example.org".into(),
            name: Some("Example".into()),
        },
        user: PublicKeyCredentialUserEntity {
            id: vec![1, 2, 3],
            name: Some("alice".into()),
            display_name: Some("Alice".into()),
        },
        pub_key_cred_params: vec![
            PublicKeyCredentialParameters::public_key(-7),
            PublicKeyCredentialParameters::public_key(-8),
        ],
        exclude_list: vec![PublicKeyCredentialDescriptor::public_key(vec![9; 16])],
        extensions: MakeCredentialExtensions {
            cred_protect: Some(2),
            hmac_secret: Some(true),
        },
        options: MakeCredentialOptions {
            rk: Some(true),
            up: None,
            uv: None,
        },
        pin_uv_auth_param: Some(vec![0xaa; 32]),
        pin_uv_auth_protocol: Some(2),
        enterprise_attestation: None,
    }
}

#[test]
fn yubikey_5_get_info_decodes_and_re_encodes() {
    let bytes = hex(&yubikey_get_info_hex());
    let info = GetInfoResponse::decode(&bytes).unwrap();
    assert_eq!(info.versions, ["U2F_V2", "FIDO_2_0", "FIDO_2_1_PRE"]);
    assert_eq!(
        info.extensions.as_deref().unwrap(),
        ["credProtect", "hmac-secret"]
    );
    assert_eq!(info.aaguid[..], hex("2fc0579f811347eab116bb5a8db9202a")[..]);
    assert_eq!(info.option("rk"), Some(true));
    assert_eq!(info.option("up"), Some(true));
    assert_eq!(info.option("plat"), Some(false));
    assert_eq!(info.option("clientPin"), Some(true));
    assert_eq!(info.option("credentialMgmtPreview"), Some(true));
    assert_eq!(info.option("uv"), None);
    assert_eq!(info.max_msg_size, Some(1200));
    assert_eq!(info.pin_uv_auth_protocols, Some(vec![1]));
    assert_eq!(info.max_credential_count_in_list, Some(8));
    assert_eq!(info.max_credential_id_length, Some(128));
    assert_eq!(info.transports.as_deref().unwrap(), ["nfc", "usb"]);
    let algs: Vec<i64> = info
        .algorithms
        .as_ref()
        .unwrap()
        .iter()
        .map(|a| a.alg)
        .collect();
    assert_eq!(algs, [-7, -8]);
    assert_eq!(info.firmware_version, None);
    let mut out = Vec::new();
    info.encode(&mut out);
    assert_eq!(out, bytes);
}

#[test]
fn get_info_tampered_fails() {
    let bytes = hex(&yubikey_get_info_hex());
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(GetInfoResponse::decode(&trailing).is_err());
    assert!(GetInfoResponse::decode(&bytes[..bytes.len() - 1]).is_err());
    // maxMsgSize 1200 as a 4-byte integer: non-canonical.
    let non_canonical = yubikey_get_info_hex().replace("051904b0", "051a000004b0");
    assert!(matches!(
        GetInfoResponse::decode(&hex(&non_canonical)),
        Err(crate::Error::Cbor(crate::CborError::NonMinimalEncoding))
    ));
    // The AAGUID one byte short (the map then ends early).
    let short = yubikey_get_info_hex().replace("03502fc0579f", "034f2fc0579f");
    assert!(GetInfoResponse::decode(&hex(&short)).is_err());
    // The AAGUID one byte short and the map still complete: a length error.
    let short = yubikey_get_info_hex().replace("03502fc0579f", "034fc0579f");
    assert_eq!(
        GetInfoResponse::decode(&hex(&short)),
        Err(crate::Error::InvalidLength("aaguid"))
    );
}

#[test]
fn malformed_requests_get_the_right_status() {
    assert_eq!(status_of(&[]), StatusCode::InvalidLength);
    assert_eq!(status_of(&[0x55]), StatusCode::InvalidCommand);
    assert_eq!(status_of(&[0x0C, 0xa0]), StatusCode::InvalidCommand);
    assert_eq!(status_of(&[0x04, 0x00]), StatusCode::InvalidLength);
    assert_eq!(status_of(&[0x01]), StatusCode::MissingParameter);
    assert_eq!(status_of(&[0x01, 0xa1]), StatusCode::InvalidCbor);
    assert_eq!(status_of(&[0x01, 0x80]), StatusCode::CborUnexpectedType);
    assert_eq!(status_of(&[0x02, 0xa0]), StatusCode::MissingParameter);
    // Indefinite-length map.
    assert_eq!(status_of(&hex("02 bf ff")), StatusCode::InvalidCbor);
    // Nesting deeper than four.
    assert_eq!(
        status_of(&hex("02 a1 04 a1 01 a1 01 a1 01 a1 01 00")),
        StatusCode::InvalidCbor
    );

    let good = Request::MakeCredential(sample_make_credential()).to_vec();
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(status_of(&trailing), StatusCode::InvalidCbor);

    let Value::Map(mut m) = sample_make_credential().to_value() else {
        unreachable!()
    };
    let with_command = |m: &Map| [&[0x01], &Value::Map(m.clone()).to_vec()[..]].concat();
    m.insert(0x01, vec![0u8; 31]);
    assert_eq!(status_of(&with_command(&m)), StatusCode::InvalidLength);
    m.insert(0x01, vec![0u8; 32]);
    m.insert(0x02, "example.org");
    assert_eq!(status_of(&with_command(&m)), StatusCode::CborUnexpectedType);
    m.remove(0x02);
    assert_eq!(status_of(&with_command(&m)), StatusCode::MissingParameter);

    // ClientPIN: unknown subcommand, then setPIN without newPinEnc.
    assert_eq!(
        status_of(&hex("06 a2 01 02 02 08")),
        StatusCode::InvalidSubcommand
    );
    let key = CoseKey::EcdhEsHkdf256(crate::cose::P256Point {
        x: [1; 32],
        y: [2; 32],
    });
    let mut set_pin = ClientPinRequest::set_pin(2, key, vec![0; 64], vec![0; 32]);
    set_pin.new_pin_enc = None;
    let bytes = Request::ClientPin(set_pin).to_vec();
    assert_eq!(status_of(&bytes), StatusCode::MissingParameter);
    assert_eq!(status_of(&hex("06 a1 02 02")), StatusCode::MissingParameter);
    assert!(Request::decode(&hex("06 a1 02 01")).is_ok());

    // CredentialManagement: enumerateCredentialsBegin without rpIDHash.
    assert_eq!(status_of(&hex("0a a1 01 04")), StatusCode::MissingParameter);
    assert_eq!(
        status_of(&hex("0a a1 01 09")),
        StatusCode::InvalidSubcommand
    );
    assert!(Request::decode(&hex("0a a1 01 03")).is_ok());
    assert!(matches!(
        Request::decode(&hex("41 a1 01 05")),
        Ok(Request::CredentialManagementPreview(_))
    ));
}

#[test]
fn unknown_keys_are_ignored() {
    let mut mc = sample_make_credential().to_value();
    let Value::Map(m) = &mut mc else {
        unreachable!()
    };
    m.insert(0x20, "future");
    m.insert("text key", 1);
    let bytes = [&[0x01], &mc.to_vec()[..]].concat();
    let Request::MakeCredential(decoded) = Request::decode(&bytes).unwrap() else {
        panic!("wrong command");
    };
    assert_eq!(decoded, sample_make_credential());
}

#[test]
fn make_credential_layout() {
    let bytes = Request::MakeCredential(sample_make_credential()).to_vec();
    // Command byte, then a map of 9 entries whose first key is 1 (clientDataHash).
    assert_eq!(bytes[..4], hex("01 a9 01 58")[..]);
    let value = crate::cbor::decode(&bytes[1..]).unwrap();
    let m = value.as_map().unwrap();
    let options = m.get(7).unwrap().as_map().unwrap();
    assert_eq!(options.get("rk"), Some(&Value::Bool(true)));
    let ext = m.get(6).unwrap().as_map().unwrap();
    assert_eq!(ext.get("credProtect"), Some(&Value::from(2)));
}

#[test]
fn cred_mgmt_auth_message() {
    let req = CredentialManagementRequest {
        sub_command: CredentialManagementSubCommand::EnumerateCredentialsBegin,
        params: Some(CredentialManagementParams {
            rp_id_hash: Some([7; 32]),
            ..Default::default()
        }),
        pin_uv_auth_protocol: Some(1),
        pin_uv_auth_param: Some(vec![0; 16]),
    };
    let msg = req.pin_uv_auth_message();
    assert_eq!(msg[..5], hex("04 a1 01 58 20")[..]);
    assert_eq!(msg.len(), 5 + 32);
}

#[test]
fn responses_with_no_payload() {
    assert_eq!(
        ClientPinResponse::decode(&[]),
        Ok(ClientPinResponse::default())
    );
    assert_eq!(
        CredentialManagementResponse::decode(&[]),
        Ok(CredentialManagementResponse::default())
    );
    let mut out = Vec::new();
    ClientPinResponse::default().encode(&mut out);
    assert!(out.is_empty());
    assert!(GetAssertionResponse::decode(&[]).is_err());
    let mut framed = Vec::new();
    encode_response(StatusCode::PinInvalid, None, &mut framed);
    assert_eq!(split_response(&framed), Ok((0x31, &[][..])));
    assert!(split_response(&[]).is_err());
}

// ---- Strategies ----

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 .-]{0,12}"
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn arb_rp() -> impl Strategy<Value = PublicKeyCredentialRpEntity> {
    (text(), proptest::option::of(text()))
        .prop_map(|(id, name)| PublicKeyCredentialRpEntity { id, name })
}

fn arb_user() -> impl Strategy<Value = PublicKeyCredentialUserEntity> {
    (
        bytes(MAX_USER_ID_LEN + 1),
        proptest::option::of(text()),
        proptest::option::of(text()),
    )
        .prop_map(|(id, name, display_name)| PublicKeyCredentialUserEntity {
            id,
            name,
            display_name,
        })
}

fn arb_params() -> impl Strategy<Value = PublicKeyCredentialParameters> {
    (
        prop_oneof![Just("public-key".to_owned()), text()],
        any::<i64>(),
    )
        .prop_map(|(cred_type, alg)| PublicKeyCredentialParameters { cred_type, alg })
}

fn arb_descriptor() -> impl Strategy<Value = PublicKeyCredentialDescriptor> {
    (
        prop_oneof![Just("public-key".to_owned()), text()],
        bytes(48),
        proptest::option::of(proptest::collection::vec(text(), 0..3)),
    )
        .prop_map(
            |(cred_type, id, transports)| PublicKeyCredentialDescriptor {
                cred_type,
                id,
                transports,
            },
        )
}

fn arb_make_credential() -> impl Strategy<Value = MakeCredentialRequest> {
    (
        (any::<[u8; 32]>(), arb_rp(), arb_user()),
        proptest::collection::vec(arb_params(), 0..4),
        proptest::collection::vec(arb_descriptor(), 0..3),
        (
            proptest::option::of(1u64..4),
            proptest::option::of(any::<bool>()),
        ),
        any::<[Option<bool>; 3]>(),
        (
            proptest::option::of(bytes(33)),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u64>()),
        ),
    )
        .prop_map(
            |((hash, rp, user), params, exclude, (cp, hs), [rk, up, uv], (pa, pr, ep))| {
                MakeCredentialRequest {
                    client_data_hash: hash,
                    rp,
                    user,
                    pub_key_cred_params: params,
                    exclude_list: exclude,
                    extensions: MakeCredentialExtensions {
                        cred_protect: cp,
                        hmac_secret: hs,
                    },
                    options: MakeCredentialOptions { rk, up, uv },
                    pin_uv_auth_param: pa,
                    pin_uv_auth_protocol: pr,
                    enterprise_attestation: ep,
                }
            },
        )
}

fn arb_hmac_secret() -> impl Strategy<Value = HmacSecretInput> {
    (
        arb_cose_key(),
        bytes(80),
        bytes(33),
        proptest::option::of(1u64..3),
    )
        .prop_map(
            |(key_agreement, salt_enc, salt_auth, pin_uv_auth_protocol)| HmacSecretInput {
                key_agreement,
                salt_enc,
                salt_auth,
                pin_uv_auth_protocol,
            },
        )
}

fn arb_get_assertion() -> impl Strategy<Value = GetAssertionRequest> {
    (
        (text(), any::<[u8; 32]>()),
        proptest::collection::vec(arb_descriptor(), 0..3),
        proptest::option::of(arb_hmac_secret()),
        any::<[Option<bool>; 3]>(),
        (
            proptest::option::of(bytes(33)),
            proptest::option::of(any::<u64>()),
        ),
    )
        .prop_map(
            |((rp_id, hash), allow, hs, [up, uv, rk], (pa, pr))| GetAssertionRequest {
                rp_id,
                client_data_hash: hash,
                allow_list: allow,
                extensions: GetAssertionExtensions { hmac_secret: hs },
                options: GetAssertionOptions { up, uv, rk },
                pin_uv_auth_param: pa,
                pin_uv_auth_protocol: pr,
            },
        )
}

fn arb_client_pin() -> impl Strategy<Value = ClientPinRequest> {
    (
        0usize..8,
        1u64..3,
        arb_cose_key(),
        (bytes(80), bytes(33), bytes(33)),
        any::<u8>(),
        proptest::option::of(text()),
    )
        .prop_map(
            |(which, protocol, key, (new_pin, pin_hash, param), perms, rp_id)| {
                let perms = u64::from(perms);
                match which {
                    0 => ClientPinRequest::get_pin_retries(Some(protocol)),
                    1 => ClientPinRequest::get_uv_retries(None),
                    2 => ClientPinRequest::get_key_agreement(protocol),
                    3 => ClientPinRequest::set_pin(protocol, key, new_pin, param),
                    4 => ClientPinRequest::change_pin(protocol, key, pin_hash, new_pin, param),
                    5 => ClientPinRequest::get_pin_token(protocol, key, pin_hash),
                    6 => ClientPinRequest::get_pin_uv_auth_token_using_pin(
                        protocol, key, pin_hash, perms, rp_id,
                    ),
                    _ => ClientPinRequest::get_pin_uv_auth_token_using_uv(
                        protocol, key, perms, rp_id,
                    ),
                }
            },
        )
}

fn arb_cred_mgmt() -> impl Strategy<Value = CredentialManagementRequest> {
    use CredentialManagementSubCommand as S;
    (
        prop_oneof![
            Just(S::GetCredsMetadata),
            Just(S::EnumerateRpsBegin),
            Just(S::EnumerateRpsGetNextRp),
            Just(S::EnumerateCredentialsBegin),
            Just(S::EnumerateCredentialsGetNextCredential),
            Just(S::DeleteCredential),
            Just(S::UpdateUserInformation),
        ],
        (any::<[u8; 32]>(), arb_descriptor(), arb_user()),
        proptest::option::of(1u64..3),
        proptest::option::of(bytes(33)),
    )
        .prop_map(
            |(sub_command, (hash, cred, user), pin_uv_auth_protocol, pin_uv_auth_param)| {
                let params = match sub_command {
                    S::EnumerateCredentialsBegin => Some(CredentialManagementParams {
                        rp_id_hash: Some(hash),
                        ..Default::default()
                    }),
                    S::DeleteCredential => Some(CredentialManagementParams {
                        credential_id: Some(cred),
                        ..Default::default()
                    }),
                    S::UpdateUserInformation => Some(CredentialManagementParams {
                        rp_id_hash: None,
                        credential_id: Some(cred),
                        user: Some(user),
                    }),
                    _ => None,
                };
                CredentialManagementRequest {
                    sub_command,
                    params,
                    pin_uv_auth_protocol,
                    pin_uv_auth_param,
                }
            },
        )
}

fn arb_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        arb_make_credential().prop_map(Request::MakeCredential),
        arb_get_assertion().prop_map(Request::GetAssertion),
        arb_client_pin().prop_map(Request::ClientPin),
        arb_cred_mgmt().prop_map(Request::CredentialManagement),
        arb_cred_mgmt().prop_map(Request::CredentialManagementPreview),
        Just(Request::GetInfo),
        Just(Request::Reset),
        Just(Request::GetNextAssertion),
        Just(Request::Selection),
    ]
}

fn arb_get_info() -> impl Strategy<Value = GetInfoResponse> {
    let opt_u64 = || proptest::option::of(any::<u64>());
    let texts = || proptest::collection::vec(text(), 0..3);
    (
        (texts(), proptest::option::of(texts()), any::<[u8; 16]>()),
        proptest::option::of(proptest::collection::btree_map(text(), any::<bool>(), 0..4)),
        (
            opt_u64(),
            proptest::option::of(proptest::collection::vec(any::<u64>(), 0..3)),
        ),
        (opt_u64(), opt_u64(), proptest::option::of(texts())),
        proptest::option::of(proptest::collection::vec(arb_params(), 0..3)),
        (
            opt_u64(),
            proptest::option::of(any::<bool>()),
            opt_u64(),
            opt_u64(),
            opt_u64(),
        ),
        (opt_u64(), opt_u64(), opt_u64()),
        proptest::option::of(proptest::collection::btree_map(text(), any::<u64>(), 0..3)),
        (
            opt_u64(),
            proptest::option::of(proptest::collection::vec(any::<u64>(), 0..3)),
        ),
    )
        .prop_map(
            |(
                (versions, extensions, aaguid),
                options,
                (max_msg_size, pin_uv_auth_protocols),
                (max_credential_count_in_list, max_credential_id_length, transports),
                algorithms,
                (blob, force_pin_change, min_pin_length, firmware_version, max_cred_blob_length),
                (max_rp_ids, preferred_platform_uv_attempts, uv_modality),
                certifications,
                (remaining_discoverable_credentials, vendor_prototype_config_commands),
            )| GetInfoResponse {
                versions,
                extensions,
                aaguid,
                options,
                max_msg_size,
                pin_uv_auth_protocols,
                max_credential_count_in_list,
                max_credential_id_length,
                transports,
                algorithms,
                max_serialized_large_blob_array: blob,
                force_pin_change,
                min_pin_length,
                firmware_version,
                max_cred_blob_length,
                max_rp_ids_for_set_min_pin_length: max_rp_ids,
                preferred_platform_uv_attempts,
                uv_modality,
                certifications,
                remaining_discoverable_credentials,
                vendor_prototype_config_commands,
            },
        )
}

fn arb_statement() -> impl Strategy<Value = AttestationStatement> {
    prop_oneof![
        (
            any::<i64>(),
            bytes(72),
            proptest::collection::vec(bytes(40), 0..3)
        )
            .prop_map(|(alg, sig, x5c)| AttestationStatement::Packed { alg, sig, x5c }),
        (bytes(72), bytes(40))
            .prop_map(|(sig, certificate)| AttestationStatement::FidoU2f { sig, certificate }),
        Just(AttestationStatement::None),
    ]
}

fn arb_make_credential_response() -> impl Strategy<Value = MakeCredentialResponse> {
    (
        arb_auth_data(),
        arb_statement(),
        proptest::option::of(any::<bool>()),
        proptest::option::of(bytes(33)),
        proptest::option::of(
            proptest::collection::vec((text(), any::<u32>()), 0..3)
                .prop_map(|e| e.into_iter().collect::<Map>()),
        ),
    )
        .prop_map(
            |(auth_data, statement, ep, lbk, ueo)| MakeCredentialResponse {
                attestation_object: AttestationObject {
                    auth_data,
                    statement,
                },
                enterprise_attestation: ep,
                large_blob_key: lbk,
                unsigned_extension_outputs: ueo,
            },
        )
}

fn arb_get_assertion_response() -> impl Strategy<Value = GetAssertionResponse> {
    (
        proptest::option::of(arb_descriptor()),
        arb_auth_data(),
        bytes(72),
        proptest::option::of(arb_user()),
        (
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<bool>()),
            proptest::option::of(bytes(33)),
        ),
    )
        .prop_map(|(credential, auth_data, signature, user, (n, sel, lbk))| {
            GetAssertionResponse {
                credential,
                auth_data,
                signature,
                user,
                number_of_credentials: n,
                user_selected: sel,
                large_blob_key: lbk,
            }
        })
}

fn arb_client_pin_response() -> impl Strategy<Value = ClientPinResponse> {
    (
        proptest::option::of(arb_cose_key()),
        proptest::option::of(bytes(48)),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(
            |(key_agreement, pin_uv_auth_token, pin_retries, pcs, uv_retries)| ClientPinResponse {
                key_agreement,
                pin_uv_auth_token,
                pin_retries,
                power_cycle_state: pcs,
                uv_retries,
            },
        )
}

fn arb_cred_mgmt_response() -> impl Strategy<Value = CredentialManagementResponse> {
    let n = || proptest::option::of(any::<u64>());
    (
        (
            n(),
            n(),
            proptest::option::of(arb_rp()),
            proptest::option::of(any::<[u8; 32]>()),
        ),
        (
            n(),
            proptest::option::of(arb_user()),
            proptest::option::of(arb_descriptor()),
        ),
        (
            proptest::option::of(arb_cose_key()),
            n(),
            n(),
            proptest::option::of(bytes(33)),
        ),
    )
        .prop_map(
            |((existing, remaining, rp, rp_id_hash), (total_rps, user, cred), last)| {
                let (public_key, total_credentials, cred_protect, large_blob_key) = last;
                CredentialManagementResponse {
                    existing_resident_credentials_count: existing,
                    max_possible_remaining_resident_credentials_count: remaining,
                    rp,
                    rp_id_hash,
                    total_rps,
                    user,
                    credential_id: cred,
                    public_key,
                    total_credentials,
                    cred_protect,
                    large_blob_key,
                }
            },
        )
}

proptest! {
    #[test]
    fn requests_round_trip(req in arb_request()) {
        let bytes = req.to_vec();
        prop_assert_eq!(Request::decode(&bytes), Ok(req));
    }

    #[test]
    fn get_info_round_trips(info in arb_get_info()) {
        let mut out = Vec::new();
        info.encode(&mut out);
        prop_assert_eq!(GetInfoResponse::decode(&out), Ok(info));
    }

    #[test]
    fn make_credential_response_round_trips(resp in arb_make_credential_response()) {
        let mut out = Vec::new();
        resp.encode(&mut out);
        prop_assert_eq!(MakeCredentialResponse::decode(&out), Ok(resp));
    }

    #[test]
    fn get_assertion_response_round_trips(resp in arb_get_assertion_response()) {
        let mut out = Vec::new();
        resp.encode(&mut out);
        prop_assert_eq!(GetAssertionResponse::decode(&out), Ok(resp));
    }

    #[test]
    fn client_pin_response_round_trips(resp in arb_client_pin_response()) {
        let mut out = Vec::new();
        resp.encode(&mut out);
        prop_assert_eq!(ClientPinResponse::decode(&out), Ok(resp));
    }

    #[test]
    fn cred_mgmt_response_round_trips(resp in arb_cred_mgmt_response()) {
        let mut out = Vec::new();
        resp.encode(&mut out);
        prop_assert_eq!(CredentialManagementResponse::decode(&out), Ok(resp));
    }

    #[test]
    fn decoded_requests_re_encode_stably(bytes in proptest::collection::vec(any::<u8>(), 1..64)) {
        if let Ok(req) = Request::decode(&bytes) {
            prop_assert_eq!(Request::decode(&req.to_vec()), Ok(req));
        }
    }
}
