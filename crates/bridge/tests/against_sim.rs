//! The bridge against firmware-sim over UDP (issue 5 "Done when"): every operation, the PIN
//! flows, touch denied, touch timeout, cancel, a second client while one is busy, and the
//! simulator killed mid-transaction. Signatures are checked with ring, independently of
//! the simulator's own code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_key;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fake_key::Prompts;
use firmware_sim::{RunningSim, SimConfig, TouchPolicy};
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use tokengate_bridge::ctap::attestation::{self, AttestationStatement};
use tokengate_bridge::ctap::cose::CoseKey;
use tokengate_bridge::ctap::ctap2::permissions;
use tokengate_bridge::ctap::u2f;
use tokengate_bridge::ctaphid::Capabilities;
use tokengate_bridge::{
    AssertionRequest, Authenticator, CancelToken, CredentialRequest, DeviceAddress, Error,
    Interaction, Pin, PinProtocol, Protocol, TOUCH_PROMPT, UserVerification, open, rp_id_hash,
};

const RP: &str = "tokengate.test";

fn spawn(touch: TouchPolicy, state: Option<PathBuf>) -> RunningSim {
    firmware_sim::spawn(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        state,
        touch,
        verbose: false,
    })
    .unwrap()
}

fn sim(touch: TouchPolicy) -> RunningSim {
    spawn(touch, None)
}

fn address(sim: &RunningSim) -> DeviceAddress {
    DeviceAddress::Udp(sim.addr().to_string())
}

fn connect(sim: &RunningSim, interaction: Interaction) -> Authenticator {
    open(&address(sim), interaction).unwrap()
}

fn pin_source(pin: &'static str) -> Interaction {
    Interaction::new().pin_source(move |_| Ok(Pin::new(pin)))
}

fn credential_key(registration: &tokengate_bridge::Registration) -> CoseKey {
    registration
        .attestation_object
        .auth_data
        .attested_credential_data
        .as_ref()
        .unwrap()
        .credential_public_key
}

fn verify_es256(key: &CoseKey, message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_key_bytes())
        .verify(message, signature)
        .is_ok()
}

/// A fresh directory for a state file.
fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tokengate-bridge-{}-{name}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- Every operation ----

#[test]
fn init_ping_wink_get_info_and_u2f_version() {
    let sim = sim(TouchPolicy::Auto);
    let mut key = connect(&sim, Interaction::new());
    assert!(key.capabilities().contains(Capabilities::WINK));
    assert!(key.has_ctap2() && key.has_u2f());
    key.ping(b"ping").unwrap();
    key.ping(&vec![0xA5; 7609]).unwrap();
    key.wink().unwrap();
    let info = key.info().unwrap().clone();
    assert_eq!(info.aaguid, firmware_sim::AAGUID);
    assert!(info.versions.iter().any(|v| v == "FIDO_2_1"));
    assert_eq!(info.pin_uv_auth_protocols, Some(vec![2, 1]));
    assert_eq!(key.u2f_version().unwrap(), "U2F_V2");
    key.selection().unwrap();
    key.wait_for_touch().unwrap();
}

#[test]
fn make_credential_then_get_assertion() {
    let sim = sim(TouchPolicy::Delay(Duration::from_millis(300)));
    let prompts = Prompts::default();
    let mut key = connect(&sim, Interaction::new().on_touch(prompts.callback()));
    let registration = key
        .register(&CredentialRequest::new([1; 32], RP, b"alice-id", "alice"))
        .unwrap();
    assert_eq!(registration.protocol, Protocol::Ctap2);
    assert_eq!(
        *prompts.messages.lock().unwrap(),
        vec![TOUCH_PROMPT.to_owned()],
        "one prompt for the whole touch wait"
    );
    let object = &registration.attestation_object;
    assert_eq!(object.auth_data.rp_id_hash, rp_id_hash(RP));
    assert!(object.auth_data.user_present());
    assert!(!object.auth_data.user_verified());
    assert!(matches!(
        object.statement,
        AttestationStatement::Packed { .. }
    ));
    let credential_id = registration.credential_id().unwrap().to_vec();
    let public_key = credential_key(&registration);

    let cdh = [2; 32];
    let assertion = key
        .authenticate(&AssertionRequest::new(cdh, RP, vec![credential_id.clone()]))
        .unwrap();
    assert_eq!(assertion.credential_id, credential_id);
    assert!(assertion.auth_data.user_present());
    let signed = attestation::signed_data(&assertion.auth_data.to_vec(), &cdh);
    assert!(verify_es256(&public_key, &signed, &assertion.signature));
    let mut tampered = signed.clone();
    tampered[0] ^= 1;
    assert!(!verify_es256(&public_key, &tampered, &assertion.signature));

    // Another key's credential is not here.
    let err = key
        .get_assertion(&AssertionRequest::new(cdh, RP, vec![vec![7; 64]]))
        .unwrap_err();
    assert!(matches!(err, Error::NoCredentials), "{err:?}");
    // Registering the same account again with the exclude list is refused.
    let mut again = CredentialRequest::new([3; 32], RP, b"alice-id", "alice");
    again.exclude_list = vec![credential_id];
    let err = key.make_credential(&again).unwrap_err();
    assert!(matches!(err, Error::CredentialExcluded), "{err:?}");
}

#[test]
fn get_next_assertion_walks_discoverable_credentials() {
    let sim = sim(TouchPolicy::Auto);
    let mut key = connect(&sim, Interaction::new());
    for user in [&b"user-1"[..], b"user-2"] {
        let mut request = CredentialRequest::new([1; 32], RP, user, "someone");
        request.resident_key = true;
        key.make_credential(&request).unwrap();
    }
    let request = AssertionRequest::new([5; 32], RP, Vec::new());
    let first = key.get_assertion(&request).unwrap();
    assert_eq!(first.number_of_credentials, Some(2));
    let second = key.get_next_assertion().unwrap();
    let users: Vec<Vec<u8>> = [&first, &second]
        .iter()
        .map(|a| a.user.as_ref().unwrap().id.clone())
        .collect();
    assert!(users.contains(&b"user-1".to_vec()) && users.contains(&b"user-2".to_vec()));
    assert_ne!(first.credential, second.credential);
    // No third one.
    assert!(key.get_next_assertion().is_err());
    assert_eq!(key.get_assertions(&request).unwrap().len(), 2);
}

#[test]
fn u2f_register_and_authenticate() {
    let sim = sim(TouchPolicy::Delay(Duration::from_millis(250)));
    let prompts = Prompts::default();
    let mut key = connect(&sim, Interaction::new().on_touch(prompts.callback()));
    let (challenge, application) = ([0x11; 32], rp_id_hash("https://u2f.example"));
    let registration = key.u2f_register(&challenge, &application).unwrap();
    assert_eq!(prompts.count(), 1, "0x6985 polls prompt once");
    let handle = registration.key_handle.clone();
    assert!(key.u2f_is_registered(&application, &handle).unwrap());
    assert!(
        !key.u2f_is_registered(&rp_id_hash("other"), &handle)
            .unwrap()
    );

    let signature_challenge = [0x22; 32];
    let response = key
        .u2f_authenticate(&signature_challenge, &application, &handle)
        .unwrap();
    assert_eq!(response.user_presence, 0x01);
    let user_key = CoseKey::Es256(registration.user_public_key);
    let signed = response.signed_data(&application, &signature_challenge);
    assert!(verify_es256(&user_key, &signed, &response.signature));
    let second = key
        .u2f_authenticate(&signature_challenge, &application, &handle)
        .unwrap();
    assert!(second.counter > response.counter);
    let err = key
        .u2f_authenticate(&signature_challenge, &application, &[0; 64])
        .unwrap_err();
    assert!(matches!(err, Error::NoCredentials), "{err:?}");
    assert!(registration.key_handle.len() <= u2f::MAX_KEY_HANDLE_LEN);
}

// ---- PIN ----

#[test]
fn set_pin_then_tokens_with_both_protocols() {
    let sim = sim(TouchPolicy::Auto);
    let mut key = connect(&sim, Interaction::new());
    assert_eq!(key.info().unwrap().option("clientPin"), Some(false));
    let err = key.set_pin(&Pin::new("123")).unwrap_err();
    assert!(matches!(err, Error::PinPolicy(_)), "{err:?}");
    key.set_pin(&Pin::new("1234")).unwrap();
    assert_eq!(key.info().unwrap().option("clientPin"), Some(true));
    assert_eq!(key.pin_retries().unwrap().retries, Some(8));
    for protocol in [PinProtocol::Two, PinProtocol::One] {
        key.set_pin_protocol(Some(protocol));
        let token = key
            .pin_token(&Pin::new("1234"), permissions::GET_ASSERTION, Some(RP))
            .unwrap();
        assert_eq!(token.protocol(), protocol);
    }
    key.set_pin_protocol(None);
    key.change_pin(&Pin::new("1234"), &Pin::new("987654"))
        .unwrap();
    let err = key
        .pin_token(&Pin::new("1234"), permissions::GET_ASSERTION, Some(RP))
        .unwrap_err();
    assert!(
        matches!(err, Error::PinInvalid { retries: Some(7) }),
        "{err:?}"
    );
    key.pin_token(&Pin::new("987654"), permissions::GET_ASSERTION, Some(RP))
        .unwrap();
    assert_eq!(key.pin_retries().unwrap().retries, Some(8));
}

#[test]
fn a_key_with_a_pin_asks_for_it() {
    let sim = sim(TouchPolicy::Auto);
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    let interaction = Interaction::new().pin_source(move |prompt| {
        counter.fetch_add(1, Ordering::SeqCst);
        assert_eq!(prompt.retries, Some(8));
        assert_eq!(prompt.min_length, 4);
        Ok(Pin::new("4321"))
    });
    let mut key = connect(&sim, interaction);
    key.set_pin(&Pin::new("4321")).unwrap();
    // The simulator (like a CTAP 2.0 YubiKey) wants the PIN for every MakeCredential.
    let registration = key
        .register(&CredentialRequest::new([1; 32], RP, b"bob", "bob"))
        .unwrap();
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    assert!(registration.attestation_object.auth_data.user_verified());
    let id = registration.credential_id().unwrap().to_vec();
    // Assertions: touch only by default, PIN when required.
    let mut request = AssertionRequest::new([2; 32], RP, vec![id]);
    let plain = key.authenticate(&request).unwrap();
    assert!(!plain.auth_data.user_verified());
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    request.user_verification = UserVerification::Required;
    let verified = key.authenticate(&request).unwrap();
    assert!(verified.auth_data.user_verified());
    assert_eq!(asked.load(Ordering::SeqCst), 2);

    // Without a PIN source the same registration cannot be done.
    key.set_interaction(Interaction::new());
    let err = key
        .register(&CredentialRequest::new([1; 32], RP, b"carol", "carol"))
        .unwrap_err();
    assert!(matches!(err, Error::PinRequired), "{err:?}");
}

#[test]
fn user_verification_required_without_a_pin() {
    let sim = sim(TouchPolicy::Auto);
    let mut key = connect(&sim, pin_source("1234"));
    let mut request = CredentialRequest::new([1; 32], RP, b"dan", "dan");
    request.user_verification = UserVerification::Required;
    let err = key.make_credential(&request).unwrap_err();
    assert!(matches!(err, Error::PinNotSet), "{err:?}");
}

#[test]
fn wrong_pins_count_down_then_block() {
    let dir = temp_dir("pin-block");
    let state = dir.join("state.bin");
    let wrong = Pin::new("0000");
    let try_wrong = |key: &mut Authenticator| {
        key.pin_token(&wrong, permissions::GET_ASSERTION, Some(RP))
            .unwrap_err()
    };
    {
        let sim = spawn(TouchPolicy::Auto, Some(state.clone()));
        let mut key = connect(&sim, Interaction::new());
        key.set_pin(&Pin::new("1234")).unwrap();
        let err = try_wrong(&mut key);
        assert!(
            matches!(err, Error::PinInvalid { retries: Some(7) }),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "wrong PIN; 7 attempts left");
        let err = try_wrong(&mut key);
        assert!(
            matches!(err, Error::PinInvalid { retries: Some(6) }),
            "{err:?}"
        );
        // The third mismatch in a row needs a power cycle (CTAP 2.1 §6.5.5.7).
        let err = try_wrong(&mut key);
        assert!(matches!(err, Error::PinAuthBlocked), "{err:?}");
        let err = key
            .pin_token(&Pin::new("1234"), permissions::GET_ASSERTION, Some(RP))
            .unwrap_err();
        assert!(matches!(err, Error::PinAuthBlocked), "{err:?}");
        sim.stop();
    }
    // Power cycles (a restart on the same state file) allow three more attempts each.
    let mut last = None;
    for _ in 0..2 {
        let sim = spawn(TouchPolicy::Auto, Some(state.clone()));
        let mut key = connect(&sim, pin_source("1234"));
        for _ in 0..3 {
            let err = try_wrong(&mut key);
            let done = matches!(err, Error::PinBlocked | Error::PinAuthBlocked);
            last = Some(err);
            if done {
                break;
            }
        }
        sim.stop();
    }
    assert!(matches!(last, Some(Error::PinBlocked)), "{last:?}");
    // Blocked is blocked: even the right PIN is refused, and it is not asked for.
    let sim = spawn(TouchPolicy::Auto, Some(state));
    let mut key = connect(&sim, Interaction::new().pin_source(|_| panic!("not asked")));
    assert_eq!(key.pin_retries().unwrap().retries, Some(0));
    let err = key
        .pin_token(&Pin::new("1234"), permissions::GET_ASSERTION, Some(RP))
        .unwrap_err();
    assert!(matches!(err, Error::PinBlocked), "{err:?}");
    let err = key
        .register(&CredentialRequest::new([1; 32], RP, b"eve", "eve"))
        .unwrap_err();
    assert!(matches!(err, Error::PinBlocked), "{err:?}");
    sim.stop();
    let _ = std::fs::remove_dir_all(dir);
}

// ---- People and time ----

#[test]
fn touch_denied() {
    let sim = sim(TouchPolicy::Deny);
    let mut key = connect(&sim, Interaction::new().timeout(Duration::from_millis(600)));
    let err = key
        .make_credential(&CredentialRequest::new([1; 32], RP, b"u", "u"))
        .unwrap_err();
    assert!(matches!(err, Error::OperationDenied), "{err:?}");
    assert!(matches!(key.selection(), Err(Error::OperationDenied)));
    // U2F has no "denied": the key keeps answering 0x6985 until the deadline.
    let started = Instant::now();
    let err = key.u2f_register(&[0; 32], &[0; 32]).unwrap_err();
    assert!(matches!(err, Error::TimedOut { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn touch_timeout_cancels_and_the_key_stays_usable() {
    let sim = sim(TouchPolicy::Delay(Duration::from_secs(20)));
    let prompts = Prompts::default();
    let interaction = Interaction::new()
        .timeout(Duration::from_millis(800))
        .on_touch(prompts.callback());
    let mut key = connect(&sim, interaction);
    let started = Instant::now();
    let err = key
        .make_credential(&CredentialRequest::new([1; 32], RP, b"u", "u"))
        .unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, Error::TimedOut { .. }), "{err:?}");
    assert!(waited >= Duration::from_millis(800) && waited < Duration::from_secs(3));
    assert_eq!(prompts.count(), 1);
    assert!(err.to_string().contains("touch it when it blinks"), "{err}");
    // The CANCEL left the key idle: another client gets through at once.
    let mut other = connect(&sim, Interaction::new().timeout(Duration::from_millis(500)));
    other.ping(b"free").unwrap();
    key.ping(b"me too").unwrap();
}

#[test]
fn ctrl_c_cancels_a_touch_wait() {
    let sim = sim(TouchPolicy::Delay(Duration::from_secs(20)));
    let token = CancelToken::new();
    let prompts = Prompts::default();
    let interaction = Interaction::new()
        .cancel_token(token.clone())
        .on_touch(prompts.callback());
    let mut key = connect(&sim, interaction);
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        token.cancel();
    });
    let started = Instant::now();
    let err = key.selection().unwrap_err();
    canceller.join().unwrap();
    assert!(matches!(err, Error::Cancelled), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert_eq!(prompts.count(), 1);
    let mut other = connect(&sim, Interaction::new().timeout(Duration::from_millis(500)));
    other.ping(b"free").unwrap();
}

#[test]
fn a_second_client_waits_for_a_busy_key() {
    let sim = sim(TouchPolicy::Delay(Duration::from_millis(1200)));
    let mut busy = connect(&sim, Interaction::new());
    let mut impatient = connect(&sim, Interaction::new().timeout(Duration::from_millis(300)));
    let mut patient = connect(&sim, Interaction::new());
    assert_ne!(busy.init_response().cid, impatient.init_response().cid);
    let first = std::thread::spawn(move || busy.selection());
    std::thread::sleep(Duration::from_millis(200));
    let err = impatient.ping(b"x").unwrap_err();
    assert!(matches!(err, Error::DeviceBusy), "{err:?}");
    assert!(err.to_string().contains("busy with another program"));
    let started = Instant::now();
    patient.info().unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "CHANNEL_BUSY retried until the first client was done"
    );
    first.join().unwrap().unwrap();
}

#[test]
fn simulator_killed_mid_transaction() {
    let sim = sim(TouchPolicy::Delay(Duration::from_secs(30)));
    let mut key = connect(&sim, Interaction::new().timeout(Duration::from_secs(20)));
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        sim.kill();
    });
    let started = Instant::now();
    let err = key
        .make_credential(&CredentialRequest::new([1; 32], RP, b"u", "u"))
        .unwrap_err();
    killer.join().unwrap();
    assert!(matches!(err, Error::Disconnected(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("stopped answering"), "{err}");
    // And the next operation fails fast too.
    let started = Instant::now();
    assert!(key.ping(b"x").is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn opening_a_stopped_simulator_is_unreachable() {
    let sim = sim(TouchPolicy::Auto);
    let address = address(&sim);
    sim.stop();
    let err = open(&address, Interaction::new()).unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("is firmware-sim running"), "{err}");
}

// ---- USB HID on this machine ----

#[test]
fn hid_enumeration_and_auto() {
    let keys = tokengate_bridge::list().unwrap();
    if keys.is_empty() {
        let err = open(&DeviceAddress::Auto, Interaction::new()).unwrap_err();
        assert!(matches!(err, Error::NoDevice), "{err:?}");
    }
}
