//! The simulated authenticator's command processing: arbitrary CTAP2 and U2F request bytes,
//! several per input so that state carries over (GetNextAssertion after GetAssertion, PIN
//! commands after setPIN, …), against a deterministic environment — a manual clock, a
//! scripted button, memory storage. No panic, and every response well formed: a defined
//! CTAP2 status with canonical CBOR after CTAP2_OK (nothing after an error), or a defined
//! U2F status word (with data only after 0x9000).
//!
//! Input: records of `kind[1] len[1] bytes[len]`; kind bit 0 picks U2F, bit 1 advances the
//! clock by 11 s (past the reset window, token and follow-up timers), bit 2 makes the next
//! touch never come (the command is then cancelled, as CTAPHID_CANCEL would).

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use firmware_sim::env::{Env, ManualClock, MemoryStorage, ScriptedPresence, Touch};
use firmware_sim::{Authenticator, Step};
use libfuzzer_sys::fuzz_target;
use tokengate_ctap::cbor;
use tokengate_ctap::ctap2::StatusCode;
use tokengate_ctap::u2f::StatusWord;

/// One device state, created once: key generation is slow and not what is fuzzed.
fn blank_device() -> Vec<u8> {
    static BLOB: OnceLock<Vec<u8>> = OnceLock::new();
    BLOB.get_or_init(|| {
        let storage = MemoryStorage::new();
        let env = Env::with_system_random(
            ManualClock::new(),
            ScriptedPresence::new(Touch::Immediately),
            storage.clone(),
        );
        Authenticator::new(env).expect("power-up");
        storage.blob().expect("state stored")
    })
    .clone()
}

fn check_cbor(response: &[u8]) {
    let (&status, payload) = response.split_first().expect("a status byte");
    let status = StatusCode::try_from(status).expect("a defined CTAP2 status");
    if status == StatusCode::Ok {
        if !payload.is_empty() {
            let value = cbor::decode(payload).expect("canonical CBOR after CTAP2_OK");
            assert!(value.as_map().is_some(), "a CBOR map");
        }
    } else {
        assert!(payload.is_empty(), "nothing after an error status");
    }
}

fn check_u2f(response: &[u8]) {
    let (data, sw) = response.split_last_chunk::<2>().expect("a status word");
    let sw = StatusWord::try_from(u16::from_be_bytes(*sw)).expect("a defined status word");
    if sw != StatusWord::NoError {
        assert!(data.is_empty(), "no data with an error status word");
    }
}

fuzz_target!(|data: &[u8]| {
    let clock = ManualClock::new();
    let button = ScriptedPresence::new(Touch::Immediately);
    let env = Env::with_system_random(
        clock.clone(),
        button.clone(),
        MemoryStorage::with_blob(blank_device()),
    );
    let mut authenticator = Authenticator::new(env).expect("power-up from a valid state");
    let mut rest = data;
    while let [kind, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (request, after) = tail.split_at(len);
        rest = after;
        if kind & 0x02 != 0 {
            clock.advance(Duration::from_secs(11));
        }
        if kind & 0x04 != 0 {
            button.queue(Touch::Never);
        }
        if kind & 0x01 != 0 {
            check_u2f(&authenticator.process_u2f(request));
            continue;
        }
        let response = match authenticator.process_cbor(request) {
            Step::Done(response) => response,
            Step::Pending(pending) => match authenticator.poll(pending) {
                Step::Done(response) => response,
                Step::Pending(pending) => authenticator.cancel(pending),
            },
        };
        check_cbor(&response);
    }
});
