//! The client core against an in-test fake key (tests/fake_key): channel handling, PING,
//! WINK, GetInfo, keepalives and the touch prompt, CANCEL, deadlines, busy, a vanished key,
//! U2F polling.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_key;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_key::{FakeKey, Prompts, Script, is_ctap2, ok};
use tokengate_bridge::ctap::ctap2::GetInfoResponse;
use tokengate_bridge::ctaphid::{Capabilities, Command, ErrorCode};
use tokengate_bridge::{
    CancelToken, DeviceAddress, Error, Interaction, ProtocolError, TOUCH_PROMPT, open,
};

const AAGUID: [u8; 16] = [
    0x2f, 0xc0, 0x57, 0x9f, 0x81, 0x13, 0x47, 0xea, 0xb1, 0x16, 0xbb, 0x5a, 0x8d, 0xb9, 0x20, 0x2a,
];

fn canned_info() -> Vec<u8> {
    let info = GetInfoResponse {
        versions: vec!["U2F_V2".into(), "FIDO_2_0".into(), "FIDO_2_1".into()],
        aaguid: AAGUID,
        pin_uv_auth_protocols: Some(vec![2, 1]),
        ..Default::default()
    };
    let mut body = Vec::new();
    info.encode(&mut body);
    ok(&body)
}

/// PING and WINK are answered by the device core; GetInfo canned; Selection after three
/// keepalives; ClientPIN waits for CANCEL; 0x40 is silent; U2F VERSION answered.
fn standard(message: &tokengate_bridge::ctaphid::Message) -> Script {
    if message.cmd == Command::Wink {
        Script::Respond(Vec::new())
    } else if is_ctap2(message, 0x04) {
        Script::Respond(canned_info())
    } else if is_ctap2(message, 0x0B) {
        Script::TouchThenRespond {
            keepalives: 3,
            payload: ok(&[]),
        }
    } else if is_ctap2(message, 0x06) {
        Script::WaitForCancel
    } else if is_ctap2(message, 0x40) {
        Script::Silent
    } else if message.cmd == Command::Msg {
        Script::Respond(b"U2F_V2\x90\x00".to_vec())
    } else {
        Script::Error(ErrorCode::InvalidCmd)
    }
}

fn start() -> FakeKey {
    FakeKey::start(Capabilities::YUBIKEY_5, Arc::new(standard))
}

fn address(key: &FakeKey) -> DeviceAddress {
    key.address().parse().unwrap()
}

#[test]
fn init_ping_wink_and_get_info() {
    let key = start();
    let mut auth = open(&address(&key), Interaction::new()).unwrap();
    assert_eq!(auth.init_response().device_version.major, 5);
    assert!(auth.has_ctap2() && auth.has_u2f());
    assert_eq!(auth.init_response().cid, 0x0100);
    auth.ping(b"hello").unwrap();
    auth.ping(&[0x5A; 1000]).unwrap();
    auth.wink().unwrap();
    let info = auth.info().unwrap().clone();
    assert_eq!(info.aaguid, AAGUID);
    assert!(info.versions.contains(&"FIDO_2_1".to_owned()));
    assert_eq!(auth.u2f_version().unwrap(), "U2F_V2");
    // GetInfo is cached.
    let before = key.seen.requests.load(std::sync::atomic::Ordering::SeqCst);
    auth.info().unwrap();
    assert_eq!(
        key.seen.requests.load(std::sync::atomic::Ordering::SeqCst),
        before
    );
}

#[test]
fn wink_needs_the_capability() {
    let key = FakeKey::start(Capabilities::CBOR, Arc::new(standard));
    let mut auth = open(&address(&key), Interaction::new()).unwrap();
    assert!(matches!(auth.wink(), Err(Error::Unsupported(_))));
}

#[test]
fn keepalives_prompt_once() {
    let key = start();
    let prompts = Prompts::default();
    let interaction = Interaction::new().on_touch(prompts.callback());
    let mut auth = open(&address(&key), interaction).unwrap();
    auth.selection().unwrap();
    assert_eq!(prompts.count(), 1, "one prompt for three keepalives");
    assert_eq!(prompts.messages.lock().unwrap()[0], TOUCH_PROMPT);
    auth.selection().unwrap();
    assert_eq!(prompts.count(), 2, "once per operation");
}

#[test]
fn cancel_sends_ctaphid_cancel() {
    let key = start();
    let token = CancelToken::new();
    let interaction = Interaction::new().cancel_token(token.clone());
    let mut auth = open(&address(&key), interaction).unwrap();
    let canceller = {
        let token = token.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            token.cancel();
        })
    };
    let started = Instant::now();
    let err = auth.pin_retries().unwrap_err();
    canceller.join().unwrap();
    assert!(matches!(err, Error::Cancelled), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        key.seen.cancels.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    // A cancelled token cancels the next operation before it starts.
    assert!(matches!(auth.ping(b"x"), Err(Error::Cancelled)));
}

#[test]
fn deadline_cancels_and_leaves_the_channel_usable() {
    let key = start();
    let interaction = Interaction::new().timeout(Duration::from_millis(400));
    let mut auth = open(&address(&key), interaction).unwrap();
    let started = Instant::now();
    let err = auth.pin_retries().unwrap_err();
    assert!(
        matches!(err, Error::TimedOut { after } if after == Duration::from_millis(400)),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        key.seen.cancels.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    auth.set_interaction(Interaction::new());
    auth.ping(b"still there").unwrap();
}

#[test]
fn busy_device_waits_then_gives_up() {
    let key = FakeKey::start(
        Capabilities::YUBIKEY_5,
        Arc::new(|message: &tokengate_bridge::ctaphid::Message| {
            if is_ctap2(message, 0x0B) {
                Script::TouchThenRespond {
                    keepalives: 10,
                    payload: ok(&[]),
                }
            } else {
                standard(message)
            }
        }),
    );
    let mut first = open(&address(&key), Interaction::new()).unwrap();
    let mut impatient = open(
        &address(&key),
        Interaction::new().timeout(Duration::from_millis(300)),
    )
    .unwrap();
    let mut patient = open(&address(&key), Interaction::new()).unwrap();
    assert_ne!(first.init_response().cid, impatient.init_response().cid);
    let busy = std::thread::spawn(move || first.selection());
    std::thread::sleep(Duration::from_millis(150));
    let err = impatient.ping(b"x").unwrap_err();
    assert!(matches!(err, Error::DeviceBusy), "{err:?}");
    // CHANNEL_BUSY is retried every 100 ms until the other channel is done (≈1 s).
    let started = Instant::now();
    patient.ping(b"y").unwrap();
    assert!(started.elapsed() > Duration::from_millis(300));
    busy.join().unwrap().unwrap();
}

fn silent_get_info() -> FakeKey {
    FakeKey::start(
        Capabilities::YUBIKEY_5,
        Arc::new(|message: &tokengate_bridge::ctaphid::Message| {
            if is_ctap2(message, 0x04) {
                Script::Silent
            } else {
                standard(message)
            }
        }),
    )
}

#[test]
fn a_silent_key_is_a_disconnect() {
    // GetInfo is neither answered nor kept alive, but the socket stays open.
    let key = silent_get_info();
    let interaction = Interaction::new().timeout(Duration::from_secs(20));
    let mut auth = open(&address(&key), interaction).unwrap();
    let started = Instant::now();
    let err = auth.info().unwrap_err();
    assert!(matches!(err, Error::Disconnected(_)), "{err:?}");
    let waited = started.elapsed();
    assert!(
        waited >= tokengate_bridge::SILENCE_LIMIT && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    assert!(err.to_string().contains("stopped answering"), "{err}");
}

#[test]
fn a_vanished_key_is_noticed_quickly() {
    let key = silent_get_info();
    let addr = address(&key);
    let mut auth = open(&addr, Interaction::new().timeout(Duration::from_secs(20))).unwrap();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        key.stop();
    });
    let started = Instant::now();
    let err = auth.info().unwrap_err();
    stopper.join().unwrap();
    assert!(matches!(err, Error::Disconnected(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_forgotten_channel_is_reallocated() {
    let key = start();
    let mut auth = open(&address(&key), Interaction::new()).unwrap();
    auth.ping(b"a").unwrap();
    let inits = key.seen.inits.load(std::sync::atomic::Ordering::SeqCst);
    key.forget_channels();
    std::thread::sleep(Duration::from_millis(50));
    auth.ping(b"b").unwrap();
    // ERR_INVALID_CHANNEL, then one new CTAPHID_INIT, then the PING again.
    assert_eq!(
        key.seen.inits.load(std::sync::atomic::Ordering::SeqCst),
        inits + 1
    );
}

#[test]
fn ctaphid_errors_are_protocol_errors() {
    let key = FakeKey::start(
        Capabilities::YUBIKEY_5,
        Arc::new(|_: &tokengate_bridge::ctaphid::Message| Script::Error(ErrorCode::Other)),
    );
    let mut auth = open(&address(&key), Interaction::new()).unwrap();
    let err = auth.wink().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Protocol(ProtocolError::Ctaphid(ErrorCode::Other))
        ),
        "{err:?}"
    );
}

#[test]
fn nobody_listening_is_unreachable() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = format!("udp:{}", socket.local_addr().unwrap());
    drop(socket);
    let started = Instant::now();
    let err = open(&addr.parse().unwrap(), Interaction::new()).unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("is firmware-sim running"), "{err}");
    assert!(started.elapsed() <= Duration::from_secs(3));
}

/// The U2F spec §8.1 registration response (fido.md §3.1), from the ctap crate's test data.
fn spec_register_response() -> Vec<u8> {
    let data = include_str!("../../ctap/tests/data/u2f-raw-message-examples.txt");
    let section = data.split("[authentication]").next().unwrap();
    let line = section
        .lines()
        .find_map(|l| l.strip_prefix("response = "))
        .unwrap();
    data_encoding::HEXLOWER
        .decode(line.trim().as_bytes())
        .unwrap()
}

/// A U2F-only key (no CBOR capability): REGISTER answers 0x6985 twice before the "touch";
/// check-only AUTHENTICATE knows only key handle [1; 64].
fn u2f_only() -> FakeKey {
    let polls = std::sync::atomic::AtomicUsize::new(0);
    FakeKey::start(
        Capabilities::WINK,
        Arc::new(move |message: &tokengate_bridge::ctaphid::Message| {
            let apdu = &message.payload;
            let ins = apdu.get(1).copied();
            let mut reply = match ins {
                Some(0x03) => b"U2F_V2".to_vec(),
                Some(0x01) => {
                    if polls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                        return Script::Respond(vec![0x69, 0x85]);
                    }
                    spec_register_response()
                }
                Some(0x02) => {
                    // CLA INS P1 P2 00 Lc Lc | challenge app L kh
                    let kh = &apdu[7 + 64 + 1..apdu.len() - 2];
                    return Script::Respond(if kh == [1u8; 64] {
                        vec![0x69, 0x85]
                    } else {
                        vec![0x6A, 0x80]
                    });
                }
                _ => return Script::Respond(vec![0x6D, 0x00]),
            };
            reply.extend_from_slice(&[0x90, 0x00]);
            Script::Respond(reply)
        }),
    )
}

#[test]
fn u2f_polls_until_touched_and_prompts_once() {
    let key = u2f_only();
    let prompts = Prompts::default();
    let mut auth = open(
        &address(&key),
        Interaction::new().on_touch(prompts.callback()),
    )
    .unwrap();
    assert!(!auth.has_ctap2());
    assert_eq!(auth.u2f_version().unwrap(), "U2F_V2");
    let started = Instant::now();
    let response = auth.u2f_register(&[1; 32], &[2; 32]).unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "two polls 100 ms apart"
    );
    assert_eq!(prompts.count(), 1);
    assert_eq!(response.key_handle.len(), 64);
    assert!(auth.u2f_is_registered(&[2; 32], &[1; 64]).unwrap());
    assert!(!auth.u2f_is_registered(&[2; 32], &[9; 64]).unwrap());
    assert!(matches!(
        auth.u2f_authenticate(&[0; 32], &[2; 32], &[9; 64]),
        Err(Error::NoCredentials)
    ));
    assert!(matches!(auth.info(), Err(Error::Unsupported(_))));
}

#[test]
fn register_falls_back_to_u2f() {
    let key = u2f_only();
    let mut auth = open(&address(&key), Interaction::new()).unwrap();
    let request = tokengate_bridge::CredentialRequest::new([3; 32], "example.com", b"u", "alice");
    let registration = auth.register(&request).unwrap();
    assert_eq!(registration.protocol, tokengate_bridge::Protocol::U2f);
    assert_eq!(
        registration.attestation_object.statement.format(),
        "fido-u2f"
    );
    assert_eq!(registration.credential_id().unwrap().len(), 64);
    assert_eq!(
        registration.attestation_object.auth_data.rp_id_hash,
        tokengate_bridge::rp_id_hash("example.com")
    );
    // Authentication: no key handle of the allow list is known to this key.
    let request =
        tokengate_bridge::AssertionRequest::new([4; 32], "example.com", vec![vec![9; 64]]);
    assert!(matches!(
        auth.authenticate(&request),
        Err(Error::NoCredentials)
    ));
}

#[test]
fn u2f_deadline_while_waiting_for_touch() {
    let key = FakeKey::start(
        Capabilities::NONE,
        Arc::new(|_: &tokengate_bridge::ctaphid::Message| Script::Respond(vec![0x69, 0x85])),
    );
    let mut auth = open(
        &address(&key),
        Interaction::new().timeout(Duration::from_millis(350)),
    )
    .unwrap();
    let started = Instant::now();
    let err = auth.u2f_register(&[0; 32], &[0; 32]).unwrap_err();
    assert!(matches!(err, Error::TimedOut { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn the_touched_key_is_selected_and_the_others_cancelled() {
    let untouched = FakeKey::start(
        Capabilities::YUBIKEY_5,
        Arc::new(|message: &tokengate_bridge::ctaphid::Message| {
            if is_ctap2(message, 0x0B) {
                Script::WaitForCancel
            } else {
                standard(message)
            }
        }),
    );
    let touched = start(); // Selection answers after three keepalives.
    let prompts = Prompts::default();
    let interaction = Interaction::new().on_touch(prompts.callback());
    let candidates = vec![
        open(&address(&untouched), interaction.clone()).unwrap(),
        open(&address(&touched), interaction.clone()).unwrap(),
    ];
    let chosen = tokengate_bridge::select_by_touch(candidates, interaction).unwrap();
    assert_eq!(chosen.address(), &address(&touched));
    assert_eq!(
        *prompts.messages.lock().unwrap(),
        vec![tokengate_bridge::SELECT_PROMPT.to_owned()]
    );
    assert_eq!(
        untouched
            .seen
            .cancels
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    // The chosen key got its own interaction back: its touch prompt works again.
    let mut chosen = chosen;
    chosen.selection().unwrap();
    assert_eq!(prompts.count(), 2);
}

#[test]
fn selection_ends_with_the_deadline() {
    let waiting = |_: ()| {
        FakeKey::start(
            Capabilities::YUBIKEY_5,
            Arc::new(|message: &tokengate_bridge::ctaphid::Message| {
                if is_ctap2(message, 0x0B) {
                    Script::WaitForCancel
                } else {
                    standard(message)
                }
            }),
        )
    };
    let (a, b) = (waiting(()), waiting(()));
    let interaction = Interaction::new().timeout(Duration::from_millis(500));
    let candidates = vec![
        open(&address(&a), interaction.clone()).unwrap(),
        open(&address(&b), interaction.clone()).unwrap(),
    ];
    let err = tokengate_bridge::select_by_touch(candidates, interaction).unwrap_err();
    assert!(matches!(err, Error::TimedOut { .. }), "{err:?}");
}
