//! Unit tests of the authenticator over a deterministic environment: a manual clock, a
//! scripted button and memory storage. Signatures are checked with ring, the platform side
//! of the PIN protocols is played by the crate's own `pin` module.

use std::time::Duration;

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1, ED25519, UnparsedPublicKey};
use tokengate_ctap::attestation::{AttestationStatement, signed_data};
use tokengate_ctap::auth_data::flags;
use tokengate_ctap::cbor::{self, Value};
use tokengate_ctap::cose::{CoseKey, alg};
use tokengate_ctap::ctap2::{
    ClientPinRequest, ClientPinResponse, CredentialManagementParams, CredentialManagementRequest,
    CredentialManagementResponse, CredentialManagementSubCommand, GetAssertionExtensions,
    GetAssertionOptions, GetAssertionRequest, GetAssertionResponse, GetInfoResponse,
    HmacSecretInput, MakeCredentialExtensions, MakeCredentialOptions, MakeCredentialRequest,
    MakeCredentialResponse, PublicKeyCredentialDescriptor, PublicKeyCredentialParameters,
    PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity, Request, StatusCode, permissions,
};
use tokengate_ctap::u2f::{
    self, AuthenticateRequest, AuthenticateResponse, Control, RegisterRequest, RegisterResponse,
};

use super::*;
use crate::cert::tests::split_certificate;
use crate::crypto::sha256;
use crate::env::{ManualClock, MemoryStorage, ScriptedPresence, Touch};
use crate::pin::{KeyAgreement, PinProtocol, SharedSecret};
use crate::state::DeviceState;

const RP: &str = "example.com";
const CDH: [u8; 32] = [0xCD; 32];

struct Harness {
    auth: Authenticator,
    clock: ManualClock,
    button: ScriptedPresence,
    storage: MemoryStorage,
}

fn harness() -> Harness {
    harness_with(MemoryStorage::new(), Touch::Immediately)
}

fn harness_with(storage: MemoryStorage, touch: Touch) -> Harness {
    let clock = ManualClock::new();
    let button = ScriptedPresence::new(touch);
    let env = Env {
        clock: Box::new(clock.clone()),
        rng: Box::new(SystemRandom::new()),
        presence: Box::new(button.clone()),
        storage: Box::new(storage.clone()),
    };
    Harness {
        auth: Authenticator::new(env).unwrap(),
        clock,
        button,
        storage,
    }
}

/// The CTAP2 status and payload of a response.
fn split(response: &[u8]) -> (StatusCode, Vec<u8>) {
    let (&status, payload) = response.split_first().unwrap();
    (StatusCode::try_from(status).unwrap(), payload.to_vec())
}

impl Harness {
    fn raw(&mut self, bytes: &[u8]) -> Vec<u8> {
        match self.auth.process_cbor(bytes) {
            Step::Done(response) => response,
            Step::Pending(_) => panic!("unexpected wait for touch"),
        }
    }

    fn send(&mut self, request: &Request) -> (StatusCode, Vec<u8>) {
        split(&self.raw(&request.to_vec()))
    }

    fn status(&mut self, request: &Request) -> StatusCode {
        self.send(request).0
    }

    fn info(&mut self) -> GetInfoResponse {
        let (status, payload) = self.send(&Request::GetInfo);
        assert_eq!(status, StatusCode::Ok);
        GetInfoResponse::decode(&payload).unwrap()
    }

    fn make_credential(&mut self, request: MakeCredentialRequest) -> MakeCredentialResponse {
        let (status, payload) = self.send(&Request::MakeCredential(request));
        assert_eq!(status, StatusCode::Ok);
        MakeCredentialResponse::decode(&payload).unwrap()
    }

    fn get_assertion(&mut self, request: GetAssertionRequest) -> GetAssertionResponse {
        let (status, payload) = self.send(&Request::GetAssertion(request));
        assert_eq!(status, StatusCode::Ok);
        GetAssertionResponse::decode(&payload).unwrap()
    }

    fn next_assertion(&mut self) -> GetAssertionResponse {
        let (status, payload) = self.send(&Request::GetNextAssertion);
        assert_eq!(status, StatusCode::Ok);
        GetAssertionResponse::decode(&payload).unwrap()
    }

    fn u2f(&mut self, request: &u2f::Request) -> (Vec<u8>, u16) {
        let mut apdu = Vec::new();
        request.encode(&mut apdu).unwrap();
        self.u2f_raw(&apdu)
    }

    fn u2f_raw(&mut self, apdu: &[u8]) -> (Vec<u8>, u16) {
        let response = self.auth.process_u2f(apdu);
        let (data, sw) = response.split_last_chunk::<2>().unwrap();
        (data.to_vec(), u16::from_be_bytes(*sw))
    }

    /// The counter as stored (what survives a crash).
    fn stored_counter(&self) -> u32 {
        let rng = SystemRandom::new();
        DeviceState::decode(&self.storage.blob().unwrap(), &rng)
            .unwrap()
            .counter
    }

    /// getKeyAgreement, then the platform's half of the ECDH.
    fn handshake(&mut self, protocol: PinProtocol) -> (CoseKey, SharedSecret) {
        let version = match protocol {
            PinProtocol::V1 => 1,
            PinProtocol::V2 => 2,
        };
        let request = Request::ClientPin(ClientPinRequest::get_key_agreement(version));
        let (status, payload) = self.send(&request);
        assert_eq!(status, StatusCode::Ok);
        let device_key = ClientPinResponse::decode(&payload)
            .unwrap()
            .key_agreement
            .unwrap();
        let platform = KeyAgreement::generate(&SystemRandom::new()).unwrap();
        let secret = platform.shared_secret(protocol, &device_key).unwrap();
        (platform.public_cose().unwrap(), secret)
    }

    fn set_pin(&mut self, protocol: PinProtocol, pin: &str) -> StatusCode {
        let (key, shared) = self.handshake(protocol);
        let rng = SystemRandom::new();
        let new_pin_enc = shared.encrypt(&rng, &pad(pin)).unwrap();
        let param = shared.authenticate(&new_pin_enc);
        let request = ClientPinRequest::set_pin(version(protocol), key, new_pin_enc, param);
        self.status(&Request::ClientPin(request))
    }

    fn change_pin(&mut self, protocol: PinProtocol, old: &str, new: &str) -> StatusCode {
        let (key, shared) = self.handshake(protocol);
        let rng = SystemRandom::new();
        let pin_hash_enc = shared.encrypt(&rng, &sha256(old.as_bytes())[..16]).unwrap();
        let new_pin_enc = shared.encrypt(&rng, &pad(new)).unwrap();
        let param = shared.authenticate(&[&new_pin_enc[..], &pin_hash_enc].concat());
        let request =
            ClientPinRequest::change_pin(version(protocol), key, pin_hash_enc, new_pin_enc, param);
        self.status(&Request::ClientPin(request))
    }

    /// getPinUvAuthTokenUsingPinWithPermissions: the decrypted token or the status.
    fn token(
        &mut self,
        protocol: PinProtocol,
        pin: &str,
        permissions: u64,
        rp_id: Option<&str>,
    ) -> Result<Vec<u8>, StatusCode> {
        let (key, shared) = self.handshake(protocol);
        let rng = SystemRandom::new();
        let pin_hash_enc = shared.encrypt(&rng, &sha256(pin.as_bytes())[..16]).unwrap();
        let request = ClientPinRequest::get_pin_uv_auth_token_using_pin(
            version(protocol),
            key,
            pin_hash_enc,
            permissions,
            rp_id.map(str::to_owned),
        );
        let (status, payload) = self.send(&Request::ClientPin(request));
        if status != StatusCode::Ok {
            return Err(status);
        }
        let encrypted = ClientPinResponse::decode(&payload)
            .unwrap()
            .pin_uv_auth_token
            .unwrap();
        Ok(shared.decrypt(&encrypted).unwrap().expose().to_vec())
    }

    fn retries(&mut self) -> (u64, bool) {
        let (status, payload) =
            self.send(&Request::ClientPin(ClientPinRequest::get_pin_retries(None)));
        assert_eq!(status, StatusCode::Ok);
        let response = ClientPinResponse::decode(&payload).unwrap();
        (
            response.pin_retries.unwrap(),
            response.power_cycle_state.unwrap(),
        )
    }

    fn power_cycle(self) -> Harness {
        harness_with(self.storage, Touch::Immediately)
    }
}

fn version(protocol: PinProtocol) -> u64 {
    match protocol {
        PinProtocol::V1 => 1,
        PinProtocol::V2 => 2,
    }
}

fn pad(pin: &str) -> Vec<u8> {
    let mut padded = pin.as_bytes().to_vec();
    padded.resize(64, 0);
    padded
}

fn mc_request(user_id: &[u8], alg: i64, rk: bool) -> MakeCredentialRequest {
    MakeCredentialRequest {
        client_data_hash: CDH,
        rp: PublicKeyCredentialRpEntity {
            id: RP.into(),
            name: Some("Example".into()),
        },
        user: PublicKeyCredentialUserEntity {
            id: user_id.to_vec(),
            name: Some(format!("user-{}", user_id.first().copied().unwrap_or(0))),
            display_name: Some("User".into()),
        },
        pub_key_cred_params: vec![PublicKeyCredentialParameters::public_key(alg)],
        exclude_list: vec![],
        extensions: MakeCredentialExtensions::default(),
        options: MakeCredentialOptions {
            rk: rk.then_some(true),
            up: None,
            uv: None,
        },
        pin_uv_auth_param: None,
        pin_uv_auth_protocol: None,
        enterprise_attestation: None,
    }
}

fn ga_request(allow: &[&[u8]]) -> GetAssertionRequest {
    GetAssertionRequest {
        rp_id: RP.into(),
        client_data_hash: CDH,
        allow_list: allow
            .iter()
            .map(|id| PublicKeyCredentialDescriptor::public_key(id.to_vec()))
            .collect(),
        extensions: GetAssertionExtensions::default(),
        options: GetAssertionOptions::default(),
        pin_uv_auth_param: None,
        pin_uv_auth_protocol: None,
    }
}

fn credential(response: &MakeCredentialResponse) -> (Vec<u8>, CoseKey) {
    let acd = response
        .attestation_object
        .auth_data
        .attested_credential_data
        .as_ref()
        .unwrap();
    (acd.credential_id.clone(), acd.credential_public_key)
}

fn verify(key: &CoseKey, message: &[u8], signature: &[u8]) -> bool {
    match key {
        CoseKey::Es256(p) => {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, p.to_sec1_uncompressed())
                .verify(message, signature)
                .is_ok()
        }
        CoseKey::Ed25519(x) => UnparsedPublicKey::new(&ED25519, x)
            .verify(message, signature)
            .is_ok(),
        CoseKey::EcdhEsHkdf256(_) => false,
    }
}

fn assertion_verifies(key: &CoseKey, response: &GetAssertionResponse) -> bool {
    verify(
        key,
        &signed_data(&response.auth_data.to_vec(), &CDH),
        &response.signature,
    )
}

// ---------------------------------------------------------------------------------------
// GetInfo, power-up, malformed input

#[test]
fn get_info_looks_like_a_yubikey_5() {
    let mut h = harness();
    let raw = h.raw(&[0x04]);
    let info = GetInfoResponse::decode(&raw[1..]).unwrap();
    assert_eq!(info.to_value().to_vec(), raw[1..], "canonical CBOR");
    assert_eq!(info.versions, ["U2F_V2", "FIDO_2_0", "FIDO_2_1"]);
    assert_eq!(
        info.extensions.as_deref().unwrap(),
        ["credProtect", "hmac-secret"]
    );
    assert_eq!(info.aaguid, AAGUID);
    for (option, value) in [
        ("rk", true),
        ("up", true),
        ("clientPin", false),
        ("credMgmt", true),
        ("pinUvAuthToken", true),
    ] {
        assert_eq!(info.option(option), Some(value), "{option}");
    }
    assert_eq!(info.max_msg_size, Some(1200));
    assert_eq!(info.pin_uv_auth_protocols, Some(vec![2, 1]));
    let algs: Vec<i64> = info.algorithms.unwrap().iter().map(|a| a.alg).collect();
    assert_eq!(algs, [alg::ES256, alg::EDDSA]);
    assert_eq!(info.max_credential_id_length, Some(127));
    assert_eq!(h.set_pin(PinProtocol::V2, "1234"), StatusCode::Ok);
    assert_eq!(h.info().option("clientPin"), Some(true));
}

#[test]
fn first_power_up_stores_a_new_device_and_reloads_it() {
    let h = harness();
    assert_eq!(h.storage.stores(), 1);
    let ca = h.auth.ca_certificate().to_vec();
    assert!(h.auth.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    let h = h.power_cycle();
    assert_eq!(h.auth.ca_certificate(), ca);
    let corrupt = MemoryStorage::with_blob(b"{not json".to_vec());
    let env = Env {
        clock: Box::new(ManualClock::new()),
        rng: Box::new(SystemRandom::new()),
        presence: Box::new(ScriptedPresence::new(Touch::Immediately)),
        storage: Box::new(corrupt),
    };
    assert!(matches!(
        Authenticator::new(env),
        Err(Error::CorruptState(_))
    ));
}

#[test]
fn malformed_requests_get_their_status() {
    let mut h = harness();
    let cases: [(&[u8], StatusCode); 6] = [
        (&[], StatusCode::InvalidLength),
        (&[0x55], StatusCode::InvalidCommand),
        (&[0x04, 0x00], StatusCode::InvalidLength),
        (&[0x01, 0xFF], StatusCode::InvalidCbor),
        (&[0x01, 0xA0], StatusCode::MissingParameter),
        (&[0x02, 0x01], StatusCode::CborUnexpectedType),
    ];
    for (request, expected) in cases {
        assert_eq!(split(&h.raw(request)).0, expected, "{request:02x?}");
    }
    let mut big = vec![0x01];
    big.resize(MAX_MSG_SIZE + 1, 0);
    assert_eq!(split(&h.raw(&big)).0, StatusCode::RequestTooLarge);
}

// ---------------------------------------------------------------------------------------
// MakeCredential and GetAssertion

#[test]
fn make_credential_gives_packed_attestation_for_both_algorithms() {
    let mut h = harness();
    let (_, _, ca_key) = split_certificate(h.auth.ca_certificate());
    let (att_tbs, att_sig, att_key) = split_certificate(h.auth.attestation_certificate());
    assert!(
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &ca_key)
            .verify(&att_tbs, &att_sig)
            .is_ok()
    );
    for (i, algorithm) in [alg::ES256, alg::EDDSA].into_iter().enumerate() {
        let response = h.make_credential(mc_request(b"u", algorithm, false));
        let obj = &response.attestation_object;
        let ad = &obj.auth_data;
        assert_eq!(ad.rp_id_hash, sha256(RP.as_bytes()));
        assert_eq!(ad.encoded_flags(), flags::UP | flags::AT);
        assert_eq!(ad.sign_count, i as u32 + 1);
        let acd = ad.attested_credential_data.as_ref().unwrap();
        assert_eq!(acd.aaguid, AAGUID);
        assert_eq!(acd.credential_public_key.alg(), algorithm);
        let AttestationStatement::Packed { alg, sig, x5c } = &obj.statement else {
            panic!("not packed");
        };
        assert_eq!(*alg, alg::ES256);
        assert_eq!(x5c, &[h.auth.attestation_certificate().to_vec()]);
        let message = signed_data(&ad.to_vec(), &CDH);
        let leaf = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &att_key);
        assert!(leaf.verify(&message, sig).is_ok());
        let mut tampered = message.clone();
        tampered[0] ^= 1;
        assert!(leaf.verify(&tampered, sig).is_err());
    }
    assert_eq!(h.button.requests().len(), 2, "one touch each");
}

#[test]
fn make_credential_checks() {
    let mut h = harness();
    let mut unsupported = mc_request(b"u", -257, false);
    assert_eq!(
        h.status(&Request::MakeCredential(unsupported.clone())),
        StatusCode::UnsupportedAlgorithm
    );
    unsupported.pub_key_cred_params.insert(
        0,
        PublicKeyCredentialParameters {
            cred_type: "other".into(),
            alg: alg::ES256,
        },
    );
    unsupported
        .pub_key_cred_params
        .push(PublicKeyCredentialParameters::public_key(alg::EDDSA));
    let response = h.make_credential(unsupported);
    assert_eq!(
        credential(&response).1.alg(),
        alg::EDDSA,
        "first supported public-key"
    );
    let mut up_false = mc_request(b"u", alg::ES256, false);
    up_false.options.up = Some(false);
    assert_eq!(
        h.status(&Request::MakeCredential(up_false)),
        StatusCode::InvalidOption
    );
    let mut uv = mc_request(b"u", alg::ES256, false);
    uv.options.uv = Some(true);
    assert_eq!(
        h.status(&Request::MakeCredential(uv)),
        StatusCode::InvalidOption
    );
    let mut param_without_protocol = mc_request(b"u", alg::ES256, false);
    param_without_protocol.pin_uv_auth_param = Some(vec![1; 16]);
    assert_eq!(
        h.status(&Request::MakeCredential(param_without_protocol.clone())),
        StatusCode::MissingParameter
    );
    param_without_protocol.pin_uv_auth_protocol = Some(3);
    assert_eq!(
        h.status(&Request::MakeCredential(param_without_protocol.clone())),
        StatusCode::InvalidParameter
    );
    param_without_protocol.pin_uv_auth_protocol = Some(2);
    assert_eq!(
        h.status(&Request::MakeCredential(param_without_protocol)),
        StatusCode::PinAuthInvalid,
        "no token issued"
    );
    let mut zero_length = mc_request(b"u", alg::ES256, false);
    zero_length.pin_uv_auth_param = Some(vec![]);
    assert_eq!(
        h.status(&Request::MakeCredential(zero_length)),
        StatusCode::PinNotSet
    );
}

#[test]
fn exclude_list_needs_a_touch_then_refuses() {
    let mut h = harness();
    let (id, _) = credential(&h.make_credential(mc_request(b"u", alg::ES256, false)));
    let mut again = mc_request(b"u", alg::ES256, false);
    again.exclude_list = vec![
        PublicKeyCredentialDescriptor::public_key(vec![9; 40]),
        PublicKeyCredentialDescriptor::public_key(id.clone()),
    ];
    h.button.queue(Touch::Never);
    let Step::Pending(pending) = h
        .auth
        .process_cbor(&Request::MakeCredential(again.clone()).to_vec())
    else {
        panic!("an excluded credential still waits for the touch");
    };
    assert_eq!(pending.request().reason, PresenceReason::ExcludedCredential);
    h.auth.abandon(pending);
    assert_eq!(
        h.status(&Request::MakeCredential(again.clone())),
        StatusCode::CredentialExcluded
    );
    // Another RP's exclude list does not match.
    again.rp.id = "other.example".into();
    assert_eq!(h.status(&Request::MakeCredential(again)), StatusCode::Ok);
}

#[test]
fn assertions_with_allow_list_verify_and_count_up() {
    let mut h = harness();
    let (id, key) = credential(&h.make_credential(mc_request(b"u", alg::ES256, false)));
    let mut last = h.auth.signature_counter();
    for _ in 0..5 {
        let response = h.get_assertion(ga_request(&[&b"unknown"[..], &id]));
        assert!(assertion_verifies(&key, &response));
        assert_eq!(response.credential.as_ref().unwrap().id, id);
        assert_eq!(response.auth_data.encoded_flags(), flags::UP);
        assert!(
            response.auth_data.sign_count > last,
            "counter strictly increases"
        );
        last = response.auth_data.sign_count;
        assert_eq!(h.stored_counter(), last, "stored before the response left");
        assert_eq!(response.number_of_credentials, None);
        assert_eq!(response.user, None);
    }
    let mut silent = ga_request(&[&id]);
    silent.options.up = Some(false);
    let response = h.get_assertion(silent);
    assert_eq!(
        response.auth_data.encoded_flags(),
        0,
        "up=false: no UP flag, no touch"
    );
    assert!(assertion_verifies(&key, &response));
    let mut other_rp = ga_request(&[&id]);
    other_rp.rp_id = "evil.example".into();
    assert_eq!(
        h.status(&Request::GetAssertion(other_rp)),
        StatusCode::NoCredentials
    );
    assert_eq!(
        h.status(&Request::GetAssertion(ga_request(&[]))),
        StatusCode::NoCredentials
    );
    assert_eq!(h.status(&Request::GetNextAssertion), StatusCode::NotAllowed);
    let mut rk_option = ga_request(&[&id]);
    rk_option.options.rk = Some(true);
    assert_eq!(
        h.status(&Request::GetAssertion(rk_option)),
        StatusCode::UnsupportedOption
    );
}

#[test]
fn discoverable_credentials_come_newest_first_through_get_next_assertion() {
    let mut h = harness();
    let mut keys = Vec::new();
    for user in [1u8, 2, 3] {
        let alg = if user == 2 { alg::EDDSA } else { alg::ES256 };
        keys.push(credential(&h.make_credential(mc_request(
            &[user],
            alg,
            true,
        ))));
    }
    // Same user again replaces the first credential.
    keys[0] = credential(&h.make_credential(mc_request(&[1], alg::ES256, true)));
    let first = h.get_assertion(ga_request(&[]));
    assert_eq!(first.number_of_credentials, Some(3));
    let second = h.next_assertion();
    let third = h.next_assertion();
    let users: Vec<u8> = [&first, &second, &third]
        .iter()
        .map(|r| r.user.as_ref().unwrap().id[0])
        .collect();
    assert_eq!(users, [1, 3, 2], "newest first");
    for response in [&first, &second, &third] {
        let user = response.user.as_ref().unwrap();
        assert_eq!(
            (user.name.as_ref(), user.display_name.as_ref()),
            (None, None),
            "no UV"
        );
        let id = &response.credential.as_ref().unwrap().id;
        let (_, key) = keys.iter().find(|(k, _)| k == id).unwrap();
        assert!(assertion_verifies(key, response));
        assert_eq!(second.number_of_credentials, None);
    }
    assert!(first.auth_data.sign_count < second.auth_data.sign_count);
    assert!(second.auth_data.sign_count < third.auth_data.sign_count);
    assert_eq!(h.status(&Request::GetNextAssertion), StatusCode::NotAllowed);
    // Another command ends the batch; so does the 30 s timer.
    let _ = h.get_assertion(ga_request(&[]));
    let _ = h.info();
    assert_eq!(h.status(&Request::GetNextAssertion), StatusCode::NotAllowed);
    let _ = h.get_assertion(ga_request(&[]));
    h.clock
        .advance(FOLLOW_UP_TIMEOUT + Duration::from_millis(1));
    assert_eq!(h.status(&Request::GetNextAssertion), StatusCode::NotAllowed);
    // A resident credential in an allowList answers alone, with its user handle.
    let (id, key) = &keys[1];
    let response = h.get_assertion(ga_request(&[id]));
    assert!(assertion_verifies(key, &response));
    assert_eq!(response.user.as_ref().unwrap().id, [2]);
    assert_eq!(response.number_of_credentials, None);
}

#[test]
fn counter_is_global_monotonic_and_never_reused_after_a_failed_store() {
    let mut h = harness();
    let (id, _) = credential(&h.make_credential(mc_request(b"u", alg::ES256, false)));
    let mut seen = vec![h.auth.signature_counter()];
    let app = sha256(b"https://u2f.example");
    let (data, sw) = h.u2f(&u2f::Request::Register(RegisterRequest {
        challenge: [1; 32],
        application: app,
    }));
    assert_eq!(sw, 0x9000);
    let kh = RegisterResponse::decode(&data).unwrap().key_handle;
    for round in 0..10 {
        let counter = if round % 2 == 0 {
            h.get_assertion(ga_request(&[&id])).auth_data.sign_count
        } else {
            let (data, sw) = h.u2f(&u2f::Request::Authenticate(AuthenticateRequest {
                control: Control::EnforceUserPresenceAndSign,
                challenge: [2; 32],
                application: app,
                key_handle: kh.clone(),
            }));
            assert_eq!(sw, 0x9000);
            AuthenticateResponse::decode(&data).unwrap().counter
        };
        assert!(counter > *seen.last().unwrap());
        seen.push(counter);
    }
    let before = h.auth.signature_counter();
    h.storage.fail_stores(true);
    assert_eq!(
        h.status(&Request::GetAssertion(ga_request(&[&id]))),
        StatusCode::Other
    );
    h.storage.fail_stores(false);
    let after = h.get_assertion(ga_request(&[&id])).auth_data.sign_count;
    assert_eq!(
        after,
        before + 2,
        "the value that may have reached the disk is skipped"
    );
}

#[test]
fn a_copied_state_is_a_clone_with_the_same_counter() {
    let mut h = harness();
    let (id, key) = credential(&h.make_credential(mc_request(b"u", alg::ES256, false)));
    let copy = MemoryStorage::with_blob(h.storage.blob().unwrap());
    let mut clone = harness_with(copy, Touch::Immediately);
    let original = h.get_assertion(ga_request(&[&id]));
    let cloned = clone.get_assertion(ga_request(&[&id]));
    assert!(
        assertion_verifies(&key, &cloned),
        "the clone holds the same keys"
    );
    assert_eq!(original.auth_data.sign_count, cloned.auth_data.sign_count);
}

#[test]
fn cred_protect_limits_what_leaves_without_uv() {
    let mut h = harness();
    let mut ids = Vec::new();
    for (user, level) in [(1u8, 1), (2, 2), (3, 3)] {
        let mut request = mc_request(&[user], alg::ES256, true);
        request.extensions.cred_protect = Some(level);
        let response = h.make_credential(request);
        let ext = response
            .attestation_object
            .auth_data
            .extensions
            .clone()
            .unwrap();
        assert_eq!(ext.get("credProtect").and_then(Value::as_u64), Some(level));
        ids.push(credential(&response).0);
    }
    let discoverable = h.get_assertion(ga_request(&[]));
    assert_eq!(
        discoverable.user.unwrap().id,
        [1],
        "only level 1 is discoverable without UV"
    );
    assert_eq!(discoverable.number_of_credentials, None);
    assert_eq!(
        h.get_assertion(ga_request(&[&ids[1]])).user.unwrap().id,
        [2]
    );
    assert_eq!(
        h.status(&Request::GetAssertion(ga_request(&[&ids[2]]))),
        StatusCode::NoCredentials
    );
}

// ---------------------------------------------------------------------------------------
// User presence

#[test]
fn waiting_for_a_touch_times_out_after_30_seconds() {
    let mut h = harness_with(MemoryStorage::new(), Touch::Never);
    let Step::Pending(mut pending) = h.auth.process_cbor(&[0x0B]) else {
        panic!("Selection waits for the touch");
    };
    for _ in 0..299 {
        h.clock.advance(Duration::from_millis(100));
        pending = match h.auth.poll(pending) {
            Step::Pending(p) => p,
            Step::Done(r) => panic!("done early: {r:02x?}"),
        };
    }
    h.clock.advance(Duration::from_millis(100));
    let Step::Done(response) = h.auth.poll(pending) else {
        panic!("still waiting after 30 s");
    };
    assert_eq!(split(&response).0, StatusCode::UserActionTimeout);
    assert!(!h.button.waiting());
}

#[test]
fn touch_decline_and_cancel() {
    let mut h = harness_with(MemoryStorage::new(), Touch::Never);
    h.button.queue(Touch::After(Duration::from_millis(250)));
    let Step::Pending(pending) = h.auth.process_cbor(&[0x0B]) else {
        panic!()
    };
    h.clock.advance(Duration::from_millis(249));
    let Step::Pending(pending) = h.auth.poll(pending) else {
        panic!()
    };
    h.clock.advance(Duration::from_millis(1));
    let Step::Done(response) = h.auth.poll(pending) else {
        panic!()
    };
    assert_eq!(response, [0x00]);

    h.button.queue(Touch::Decline);
    let Step::Done(response) = h.auth.process_cbor(&[0x0B]) else {
        panic!()
    };
    assert_eq!(split(&response).0, StatusCode::OperationDenied);

    let (id, _) = {
        h.button.queue(Touch::Immediately);
        credential(&h.make_credential(mc_request(b"u", alg::ES256, false)))
    };
    let counter = h.auth.signature_counter();
    let Step::Pending(pending) = h
        .auth
        .process_cbor(&Request::GetAssertion(ga_request(&[&id])).to_vec())
    else {
        panic!()
    };
    assert_eq!(pending.request().rp_id.as_deref(), Some(RP));
    assert_eq!(
        split(&h.auth.cancel(pending)).0,
        StatusCode::KeepaliveCancel
    );
    assert!(!h.button.waiting());
    assert_eq!(h.auth.signature_counter(), counter, "nothing signed");
}

#[test]
fn reset_only_within_ten_seconds_of_power_up_and_with_a_touch() {
    let mut h = harness();
    let (id, _) = credential(&h.make_credential(mc_request(b"u", alg::ES256, true)));
    assert_eq!(h.set_pin(PinProtocol::V2, "1234"), StatusCode::Ok);
    let counter = h.auth.signature_counter();
    h.button.queue(Touch::Decline);
    assert_eq!(h.status(&Request::Reset), StatusCode::OperationDenied);
    h.clock.advance(Duration::from_secs(9));
    assert_eq!(h.status(&Request::Reset), StatusCode::Ok);
    assert_eq!(
        h.button.requests().last().unwrap().reason,
        PresenceReason::Reset
    );
    assert_eq!(
        h.status(&Request::GetAssertion(ga_request(&[&id]))),
        StatusCode::NoCredentials
    );
    assert_eq!(
        h.status(&Request::GetAssertion(ga_request(&[]))),
        StatusCode::NoCredentials
    );
    assert_eq!(h.info().option("clientPin"), Some(false));
    assert_eq!(
        h.auth.signature_counter(),
        counter,
        "the counter survives a reset"
    );
    h.clock.advance(Duration::from_millis(1_001));
    assert_eq!(h.status(&Request::Reset), StatusCode::NotAllowed);
    let mut h = h.power_cycle();
    assert_eq!(
        h.status(&Request::Reset),
        StatusCode::Ok,
        "a new window after power-up"
    );
}

// ---------------------------------------------------------------------------------------
// ClientPIN

#[test]
fn pin_set_change_and_tokens_with_both_protocols() {
    for protocol in [PinProtocol::V2, PinProtocol::V1] {
        let mut h = harness();
        assert_eq!(h.retries(), (8, false));
        assert_eq!(
            h.token(protocol, "1234", 3, Some(RP)),
            Err(StatusCode::PinNotSet)
        );
        assert_eq!(h.set_pin(protocol, "123"), StatusCode::PinPolicyViolation);
        assert_eq!(h.set_pin(protocol, "1234"), StatusCode::Ok);
        assert_eq!(
            h.set_pin(protocol, "5678"),
            StatusCode::PinAuthInvalid,
            "already set"
        );
        // With a PIN, MakeCredential needs a pinUvAuthParam.
        assert_eq!(
            h.status(&Request::MakeCredential(mc_request(b"u", alg::ES256, true))),
            StatusCode::PuatRequired
        );
        let token = h.token(protocol, "1234", 3, Some(RP)).unwrap();
        assert_eq!(token.len(), 32);
        let mut request = mc_request(b"u", alg::ES256, true);
        request.pin_uv_auth_param = Some(protocol.authenticate_with_token(&token, &CDH));
        request.pin_uv_auth_protocol = Some(version(protocol));
        let response = h.make_credential(request.clone());
        assert_eq!(
            response.attestation_object.auth_data.encoded_flags(),
            flags::UP | flags::UV | flags::AT
        );
        let (id, key) = credential(&response);
        // GetAssertion with the token: UV, and the full user entity.
        let mut ga = ga_request(&[]);
        ga.pin_uv_auth_param = request.pin_uv_auth_param.clone();
        ga.pin_uv_auth_protocol = Some(version(protocol));
        let assertion = h.get_assertion(ga.clone());
        assert_eq!(assertion.auth_data.encoded_flags(), flags::UP | flags::UV);
        assert_eq!(assertion.user.unwrap().name.as_deref(), Some("user-117"));
        assert!(assertion_verifies(
            &key,
            &h.get_assertion(ga_request(&[&id]))
        ));
        // A tampered param, another RP, a missing permission.
        let mut bad = ga.clone();
        bad.pin_uv_auth_param.as_mut().unwrap()[0] ^= 1;
        assert_eq!(
            h.status(&Request::GetAssertion(bad)),
            StatusCode::PinAuthInvalid
        );
        let mut other_rp = ga.clone();
        other_rp.rp_id = "other.example".into();
        assert_eq!(
            h.status(&Request::GetAssertion(other_rp)),
            StatusCode::PinAuthInvalid
        );
        let ga_only = h
            .token(protocol, "1234", permissions::GET_ASSERTION, Some(RP))
            .unwrap();
        request.pin_uv_auth_param = Some(protocol.authenticate_with_token(&ga_only, &CDH));
        assert_eq!(
            h.status(&Request::MakeCredential(request)),
            StatusCode::PinAuthInvalid
        );
        // The token expires.
        h.clock.advance(PIN_TOKEN_LIFETIME + Duration::from_secs(1));
        let mut late = ga_request(&[&id]);
        late.pin_uv_auth_param = Some(protocol.authenticate_with_token(&ga_only, &CDH));
        late.pin_uv_auth_protocol = Some(version(protocol));
        assert_eq!(
            h.status(&Request::GetAssertion(late)),
            StatusCode::PinAuthInvalid
        );
        // changePIN: the old PIN stops working, the new one works, old tokens die.
        assert_eq!(
            h.change_pin(protocol, "0000", "5678"),
            StatusCode::PinInvalid
        );
        assert_eq!(h.change_pin(protocol, "1234", "5678"), StatusCode::Ok);
        assert_eq!(
            h.token(protocol, "1234", 3, Some(RP)),
            Err(StatusCode::PinInvalid)
        );
        assert!(h.token(protocol, "5678", 3, Some(RP)).is_ok());
        assert_eq!(h.retries(), (8, false));
        assert_eq!(
            h.token(protocol, "5678", 0x08, None),
            Err(StatusCode::UnauthorizedPermission)
        );
        assert_eq!(
            h.token(protocol, "5678", 0, None),
            Err(StatusCode::InvalidParameter)
        );
        assert_eq!(
            h.token(protocol, "5678", 3, None),
            Err(StatusCode::InvalidParameter)
        );
    }
}

#[test]
fn wrong_pins_block_until_power_cycle_and_then_for_good() {
    let mut h = harness();
    assert_eq!(h.set_pin(PinProtocol::V2, "1234"), StatusCode::Ok);
    assert_eq!(
        h.token(PinProtocol::V2, "0000", 3, Some(RP)),
        Err(StatusCode::PinInvalid)
    );
    assert_eq!(h.retries(), (7, false));
    assert_eq!(
        h.token(PinProtocol::V1, "0000", 3, Some(RP)),
        Err(StatusCode::PinInvalid)
    );
    assert_eq!(
        h.token(PinProtocol::V2, "0000", 3, Some(RP)),
        Err(StatusCode::PinAuthBlocked)
    );
    assert_eq!(h.retries(), (5, true));
    assert_eq!(
        h.token(PinProtocol::V2, "1234", 3, Some(RP)),
        Err(StatusCode::PinAuthBlocked),
        "even the right PIN, until power cycle"
    );
    assert_eq!(h.retries(), (5, true), "a blocked attempt does not count");
    let mut h = h.power_cycle();
    assert_eq!(h.retries(), (5, false));
    assert!(h.token(PinProtocol::V2, "1234", 3, Some(RP)).is_ok());
    assert_eq!(h.retries(), (8, false));
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        for _ in 0..2 {
            outcomes.push(h.token(PinProtocol::V2, "0000", 3, Some(RP)).unwrap_err());
        }
        h = h.power_cycle();
    }
    for _ in 0..2 {
        outcomes.push(h.token(PinProtocol::V2, "0000", 3, Some(RP)).unwrap_err());
    }
    assert_eq!(outcomes.last(), Some(&StatusCode::PinBlocked));
    assert_eq!(h.retries(), (0, false));
    assert_eq!(
        h.token(PinProtocol::V2, "1234", 3, Some(RP)),
        Err(StatusCode::PinBlocked)
    );
    assert_eq!(
        h.change_pin(PinProtocol::V2, "1234", "5678"),
        StatusCode::PinBlocked
    );
}

#[test]
fn the_key_agreement_key_lasts_until_a_mismatch() {
    // python-fido2 fetches the key once for hmac-secret, then gets a token (same key), then
    // uses the first shared secret: the key must not change in between.
    let mut h = harness();
    assert_eq!(h.set_pin(PinProtocol::V2, "1234"), StatusCode::Ok);
    let (key, shared) = h.handshake(PinProtocol::V2);
    assert!(h.token(PinProtocol::V2, "1234", 3, Some(RP)).is_ok());
    let rng = SystemRandom::new();
    let pin_hash_enc = shared.encrypt(&rng, &sha256(b"1234")[..16]).unwrap();
    let request = ClientPinRequest::get_pin_token(2, key, pin_hash_enc.clone());
    assert_eq!(
        h.status(&Request::ClientPin(request.clone())),
        StatusCode::Ok
    );
    assert_eq!(
        h.token(PinProtocol::V2, "9999", 3, Some(RP)),
        Err(StatusCode::PinInvalid)
    );
    // After the mismatch the old shared secret no longer decrypts to the PIN hash.
    assert_eq!(
        h.status(&Request::ClientPin(request)),
        StatusCode::PinInvalid
    );
}

#[test]
fn client_pin_misuse() {
    let mut h = harness();
    let request = |sub: ClientPinRequest| Request::ClientPin(sub);
    assert_eq!(
        h.status(&request(ClientPinRequest::get_key_agreement(3))),
        StatusCode::InvalidParameter
    );
    assert_eq!(
        h.status(&request(ClientPinRequest::get_uv_retries(Some(2)))),
        StatusCode::InvalidSubcommand
    );
    let (key, shared) = h.handshake(PinProtocol::V2);
    let rng = SystemRandom::new();
    let new_pin_enc = shared.encrypt(&rng, &pad("1234")).unwrap();
    let bad_param = vec![0; 32];
    assert_eq!(
        h.status(&request(ClientPinRequest::set_pin(
            2,
            key,
            new_pin_enc.clone(),
            bad_param
        ))),
        StatusCode::PinAuthInvalid
    );
    let short = shared.encrypt(&rng, &[0x31; 32]).unwrap();
    let param = shared.authenticate(&short);
    assert_eq!(
        h.status(&request(ClientPinRequest::set_pin(2, key, short, param))),
        StatusCode::InvalidParameter
    );
    let full = shared.encrypt(&rng, &[0x31; 64]).unwrap();
    let param = shared.authenticate(&full);
    assert_eq!(
        h.status(&request(ClientPinRequest::set_pin(2, key, full, param))),
        StatusCode::PinPolicyViolation,
        "64 bytes leave no terminator"
    );
    assert_eq!(
        h.change_pin(PinProtocol::V2, "1234", "5678"),
        StatusCode::PinNotSet
    );
}

// ---------------------------------------------------------------------------------------
// hmac-secret

fn hmac_input(
    h: &mut Harness,
    protocol: PinProtocol,
    salts: &[u8],
) -> (HmacSecretInput, SharedSecret) {
    let (key, shared) = h.handshake(protocol);
    let salt_enc = shared.encrypt(&SystemRandom::new(), salts).unwrap();
    let salt_auth = shared.authenticate(&salt_enc);
    let input = HmacSecretInput {
        key_agreement: key,
        salt_enc,
        salt_auth,
        pin_uv_auth_protocol: Some(version(protocol)),
    };
    (input, shared)
}

#[test]
fn hmac_secret_outputs_are_stable_per_credential_and_salt() {
    let mut h = harness();
    let mut request = mc_request(b"u", alg::ES256, false);
    request.extensions.hmac_secret = Some(true);
    let response = h.make_credential(request);
    let ext = response
        .attestation_object
        .auth_data
        .extensions
        .clone()
        .unwrap();
    assert_eq!(ext.get("hmac-secret"), Some(&Value::Bool(true)));
    let (id, key) = credential(&response);
    let (plain_id, _) = credential(&h.make_credential(mc_request(b"v", alg::ES256, false)));

    let mut outputs = Vec::new();
    for protocol in [PinProtocol::V2, PinProtocol::V1, PinProtocol::V2] {
        let salts = [[0x11; 32], [0x22; 32]].concat();
        let (input, shared) = hmac_input(&mut h, protocol, &salts);
        let mut ga = ga_request(&[&id]);
        ga.extensions.hmac_secret = Some(input);
        let assertion = h.get_assertion(ga);
        assert!(assertion_verifies(&key, &assertion));
        let ext = assertion.auth_data.extensions.clone().unwrap();
        let encrypted = ext.get("hmac-secret").and_then(Value::as_bytes).unwrap();
        let output = shared.decrypt(encrypted).unwrap().expose().to_vec();
        assert_eq!(output.len(), 64);
        assert_ne!(output[..32], output[32..]);
        outputs.push(output);
    }
    assert!(
        outputs.windows(2).all(|w| w[0] == w[1]),
        "same credential, same salts"
    );

    // One salt; a credential without hmac-secret gets no output.
    let (input, _) = hmac_input(&mut h, PinProtocol::V2, &[0x11; 32]);
    let mut ga = ga_request(&[&plain_id]);
    ga.extensions.hmac_secret = Some(input.clone());
    assert_eq!(h.get_assertion(ga).auth_data.extensions, None);
    let mut ga = ga_request(&[&id]);
    ga.extensions.hmac_secret = Some(input.clone());
    let ext = h.get_assertion(ga).auth_data.extensions.unwrap();
    assert_eq!(
        ext.get("hmac-secret")
            .and_then(Value::as_bytes)
            .unwrap()
            .len(),
        48
    );

    let mut bad_auth = input.clone();
    bad_auth.salt_auth[0] ^= 1;
    let mut ga = ga_request(&[&id]);
    ga.extensions.hmac_secret = Some(bad_auth);
    assert_eq!(
        h.status(&Request::GetAssertion(ga)),
        StatusCode::PinAuthInvalid
    );
    let (bad_len, _) = hmac_input(&mut h, PinProtocol::V2, &[0x11; 48]);
    let mut ga = ga_request(&[&id]);
    ga.extensions.hmac_secret = Some(bad_len);
    assert_eq!(
        h.status(&Request::GetAssertion(ga)),
        StatusCode::InvalidLength
    );
}

// ---------------------------------------------------------------------------------------
// Credential management

fn cm_request(
    token: &[u8],
    sub_command: CredentialManagementSubCommand,
    params: Option<CredentialManagementParams>,
) -> Request {
    let mut request = CredentialManagementRequest {
        sub_command,
        params,
        pin_uv_auth_protocol: Some(2),
        pin_uv_auth_param: None,
    };
    request.pin_uv_auth_param =
        Some(PinProtocol::V2.authenticate_with_token(token, &request.pin_uv_auth_message()));
    Request::CredentialManagement(request)
}

#[test]
fn credential_management_lists_updates_and_deletes() {
    use CredentialManagementSubCommand as S;
    let mut h = harness();
    let mut ids = Vec::new();
    for (rp, user) in [("a.example", 1u8), ("b.example", 2), ("b.example", 3)] {
        let mut request = mc_request(&[user], alg::ES256, true);
        request.rp.id = rp.into();
        ids.push(credential(&h.make_credential(request)).0);
    }
    assert_eq!(h.set_pin(PinProtocol::V2, "1234"), StatusCode::Ok);
    let no_token = Request::CredentialManagement(CredentialManagementRequest {
        sub_command: S::GetCredsMetadata,
        params: None,
        pin_uv_auth_protocol: Some(2),
        pin_uv_auth_param: None,
    });
    assert_eq!(h.status(&no_token), StatusCode::PuatRequired);
    let ga_token = h
        .token(PinProtocol::V2, "1234", 3, Some("a.example"))
        .unwrap();
    assert_eq!(
        h.status(&cm_request(&ga_token, S::GetCredsMetadata, None)),
        StatusCode::PinAuthInvalid
    );
    let token = h
        .token(
            PinProtocol::V2,
            "1234",
            permissions::CREDENTIAL_MANAGEMENT,
            None,
        )
        .unwrap();
    let decode = |(status, payload): (StatusCode, Vec<u8>)| {
        assert_eq!(status, StatusCode::Ok);
        CredentialManagementResponse::decode(&payload).unwrap()
    };
    let meta = decode(h.send(&cm_request(&token, S::GetCredsMetadata, None)));
    assert_eq!(meta.existing_resident_credentials_count, Some(3));
    assert_eq!(
        meta.max_possible_remaining_resident_credentials_count,
        Some(97)
    );

    let first = decode(h.send(&cm_request(&token, S::EnumerateRpsBegin, None)));
    assert_eq!(first.total_rps, Some(2));
    let second = decode(h.send(&Request::CredentialManagement(
        CredentialManagementRequest {
            sub_command: S::EnumerateRpsGetNextRp,
            params: None,
            pin_uv_auth_protocol: None,
            pin_uv_auth_param: None,
        },
    )));
    let second_rp = second.rp.unwrap().id;
    assert_eq!(second.rp_id_hash, Some(sha256(second_rp.as_bytes())));
    let mut rps = vec![first.rp.unwrap().id, second_rp];
    rps.sort();
    assert_eq!(rps, ["a.example", "b.example"]);

    let b = CredentialManagementParams {
        rp_id_hash: Some(sha256(b"b.example")),
        ..CredentialManagementParams::default()
    };
    let creds = decode(h.send(&cm_request(
        &token,
        S::EnumerateCredentialsBegin,
        Some(b.clone()),
    )));
    assert_eq!(creds.total_credentials, Some(2));
    assert_eq!(creds.user.as_ref().unwrap().id, [3], "newest first");
    assert_eq!(creds.user.unwrap().name.as_deref(), Some("user-3"));
    assert_eq!(creds.cred_protect, Some(1));
    assert!(matches!(creds.public_key, Some(CoseKey::Es256(_))));
    let next = decode(h.send(&Request::CredentialManagement(
        CredentialManagementRequest {
            sub_command: S::EnumerateCredentialsGetNextCredential,
            params: None,
            pin_uv_auth_protocol: None,
            pin_uv_auth_param: None,
        },
    )));
    assert_eq!(next.user.unwrap().id, [2]);

    let update = CredentialManagementParams {
        credential_id: Some(PublicKeyCredentialDescriptor::public_key(ids[1].clone())),
        user: Some(PublicKeyCredentialUserEntity {
            id: vec![2],
            name: Some("renamed".into()),
            display_name: None,
        }),
        ..CredentialManagementParams::default()
    };
    assert_eq!(
        h.status(&cm_request(&token, S::UpdateUserInformation, Some(update))),
        StatusCode::Ok
    );
    let delete = CredentialManagementParams {
        credential_id: Some(PublicKeyCredentialDescriptor::public_key(ids[2].clone())),
        ..CredentialManagementParams::default()
    };
    assert_eq!(
        h.status(&cm_request(
            &token,
            S::DeleteCredential,
            Some(delete.clone())
        )),
        StatusCode::Ok
    );
    assert_eq!(
        h.status(&cm_request(&token, S::DeleteCredential, Some(delete))),
        StatusCode::NoCredentials
    );
    let creds = decode(h.send(&cm_request(&token, S::EnumerateCredentialsBegin, Some(b))));
    assert_eq!(creds.total_credentials, Some(1));
    assert_eq!(creds.user.unwrap().name.as_deref(), Some("renamed"));
    // A deleted discoverable credential is gone for GetAssertion too, allowList or not.
    let mut ga = ga_request(&[&ids[2]]);
    ga.rp_id = "b.example".into();
    assert_eq!(
        h.status(&Request::GetAssertion(ga)),
        StatusCode::NoCredentials
    );
    let h = h.power_cycle();
    assert_eq!(h.auth.state.residents.len(), 2, "deletion was stored");
}

// ---------------------------------------------------------------------------------------
// U2F

#[test]
fn u2f_register_and_authenticate() {
    let mut h = harness_with(
        MemoryStorage::new(),
        Touch::After(Duration::from_millis(300)),
    );
    let app = sha256(b"https://u2f.example");
    let register = u2f::Request::Register(RegisterRequest {
        challenge: [7; 32],
        application: app,
    });
    assert_eq!(h.u2f(&register), (vec![], 0x6985), "not touched yet");
    h.clock.advance(Duration::from_millis(200));
    assert_eq!(h.u2f(&register).1, 0x6985);
    h.clock.advance(Duration::from_millis(100));
    let (data, sw) = h.u2f(&register);
    assert_eq!(sw, 0x9000);
    let response = RegisterResponse::decode(&data).unwrap();
    assert_eq!(
        response.attestation_certificate,
        h.auth.attestation_certificate()
    );
    let (_, _, att_key) = split_certificate(h.auth.attestation_certificate());
    let message = u2f::registration_signed_data(
        &app,
        &[7; 32],
        &response.key_handle,
        &response.user_public_key,
    );
    assert!(
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &att_key)
            .verify(&message, &response.signature)
            .is_ok()
    );
    assert_eq!(h.u2f(&register).1, 0x6985, "the touch was consumed");

    let authenticate = |control, key_handle: &[u8], application| {
        u2f::Request::Authenticate(AuthenticateRequest {
            control,
            challenge: [8; 32],
            application,
            key_handle: key_handle.to_vec(),
        })
    };
    let kh = response.key_handle.clone();
    let user_key = CoseKey::Es256(response.user_public_key);
    assert_eq!(h.u2f(&authenticate(Control::CheckOnly, &kh, app)).1, 0x6985);
    assert_eq!(
        h.u2f(&authenticate(Control::CheckOnly, &[1; 64], app)).1,
        0x6A80
    );
    assert_eq!(
        h.u2f(&authenticate(Control::CheckOnly, &kh, sha256(b"other")))
            .1,
        0x6A80
    );
    let sign = authenticate(Control::EnforceUserPresenceAndSign, &kh, app);
    assert_eq!(h.u2f(&sign).1, 0x6985);
    h.clock.advance(Duration::from_millis(300));
    let (data, sw) = h.u2f(&sign);
    assert_eq!(sw, 0x9000);
    let signed = AuthenticateResponse::decode(&data).unwrap();
    assert_eq!(signed.user_presence, 1);
    assert!(verify(
        &user_key,
        &signed.signed_data(&app, &[8; 32]),
        &signed.signature
    ));
    let (data, sw) = h.u2f(&authenticate(
        Control::DontEnforceUserPresenceAndSign,
        &kh,
        app,
    ));
    assert_eq!(sw, 0x9000);
    let silent = AuthenticateResponse::decode(&data).unwrap();
    assert_eq!(silent.user_presence, 0);
    assert_eq!(silent.counter, signed.counter + 1);
    assert!(verify(
        &user_key,
        &silent.signed_data(&app, &[8; 32]),
        &silent.signature
    ));
    // A U2F key handle is an ES256 credential ID: CTAP2 GetAssertion with appid works too.
    assert_eq!(h.stored_counter(), silent.counter);
}

#[test]
fn u2f_refuses_malformed_apdus_with_the_spec_status_words() {
    let mut h = harness();
    let (data, sw) = h.u2f(&u2f::Request::Version);
    assert_eq!((data.as_slice(), sw), (&b"U2F_V2"[..], 0x9000));
    let cases: [(&[u8], u16); 5] = [
        (&[0x00, 0x03, 0, 0, 0, 0, 1, 0x55, 0, 0], 0x6700),
        (&[0x80, 0x03, 0, 0], 0x6E00),
        (&[0x00, 0x55, 0, 0], 0x6D00),
        (&[0x00, 0x01, 0, 0, 0, 0, 3, 1, 2, 3, 0, 0], 0x6700),
        (&[0x00], 0x6700),
    ];
    for (apdu, expected) in cases {
        assert_eq!(h.u2f_raw(apdu).1, expected, "{apdu:02x?}");
    }
    let mut h = harness_with(MemoryStorage::new(), Touch::Decline);
    let register = u2f::Request::Register(RegisterRequest {
        challenge: [7; 32],
        application: [1; 32],
    });
    assert_eq!(h.u2f(&register).1, 0x6985, "declined: never registers");
    assert_eq!(h.u2f(&register).1, 0x6985);
}

#[test]
fn selection_and_zero_length_pin_auth_wait_for_the_touch() {
    let mut h = harness();
    assert_eq!(h.status(&Request::Selection), StatusCode::Ok);
    let mut ga = ga_request(&[]);
    ga.pin_uv_auth_param = Some(vec![]);
    assert_eq!(
        h.status(&Request::GetAssertion(ga.clone())),
        StatusCode::PinNotSet
    );
    assert_eq!(h.set_pin(PinProtocol::V2, "1234"), StatusCode::Ok);
    assert_eq!(h.status(&Request::GetAssertion(ga)), StatusCode::PinInvalid);
    let reasons: Vec<_> = h.button.requests().iter().map(|r| r.reason).collect();
    assert_eq!(
        reasons,
        [
            PresenceReason::Selection,
            PresenceReason::PinUvAuthSelection,
            PresenceReason::PinUvAuthSelection
        ]
    );
    let encoded = cbor::decode(&h.raw(&[0x04])[1..]).unwrap();
    assert!(encoded.as_map().is_some());
}
