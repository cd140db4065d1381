//! Crash safety of the signature counter: the simulator binary is SIGKILLed again and
//! again during 1,000 assertions — before, while and after it writes the counter — and
//! restarted on the same state file. No counter value at or below one already received may
//! ever be sent again (the counter is stored with atomic replace + fsync *before* the
//! response leaves).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::client::UdpDevice;
use support::process::SimProcess;
use tokengate_ctap::attestation::signed_data;
use tokengate_ctap::cose::alg;
use tokengate_ctap::ctap2::{GetAssertionResponse, MakeCredentialResponse, Request};
use tokengate_ctaphid::Command;

const ASSERTIONS: usize = 1_000;
const CDH: [u8; 32] = [0x5A; 32];

/// xorshift64*: a fixed-seed source of kill points, so a failure reproduces.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound
    }
}

fn connect(sim: &SimProcess) -> UdpDevice {
    UdpDevice::connect(sim.addr, Duration::from_secs(5)).expect("INIT")
}

#[test]
fn sigkill_never_makes_a_counter_value_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let mut sim = SimProcess::start(&state, &["--touch", "auto"]);
    let mut device = connect(&sim);

    let (status, payload) = device
        .cbor(&Request::MakeCredential(support::make_credential(
            CDH,
            alg::ES256,
        )))
        .unwrap();
    assert_eq!(status, 0);
    let made = MakeCredentialResponse::decode(&payload).unwrap();
    let acd = made
        .attestation_object
        .auth_data
        .attested_credential_data
        .clone()
        .unwrap();
    let mut highest = made.attestation_object.auth_data.sign_count;
    let request = Request::GetAssertion(support::get_assertion(CDH, &acd.credential_id)).to_vec();

    let check = |response: &[u8], highest: &mut u32| {
        assert_eq!(response[0], 0, "status");
        let assertion = GetAssertionResponse::decode(&response[1..]).unwrap();
        let counter = assertion.auth_data.sign_count;
        assert!(
            counter > *highest,
            "counter {counter} sent again after {highest} had been received"
        );
        let message = signed_data(&assertion.auth_data.to_vec(), &CDH);
        assert!(support::verify_es256(
            &acd.credential_public_key,
            &message,
            &assertion.signature
        ));
        *highest = counter;
    };

    let mut rng = Lcg(0x9E37_79B9_7F4A_7C15);
    let mut received = 0;
    let mut kills = 0;
    let mut answered_before_kill = 0;
    let mut next_kill = 20 + rng.next(60) as usize;
    let started = Instant::now();
    while received < ASSERTIONS {
        device.send(Command::Cbor, &request).unwrap();
        if received == next_kill {
            // Kill somewhere between "request just arrived" and "response long gone".
            let delay = rng.next(1_500);
            std::thread::sleep(Duration::from_micros(delay));
            sim.kill();
            kills += 1;
            next_kill = received + 20 + rng.next(80) as usize;
            // A response that left before the kill was received and counts.
            if let Ok(response) = device.receive_within(Duration::from_millis(200)) {
                check(&response.payload, &mut highest);
                received += 1;
                answered_before_kill += 1;
            }
            sim = SimProcess::start(&state, &["--touch", "auto"]);
            device = connect(&sim);
            continue;
        }
        let response = device.receive().unwrap();
        check(&response.payload, &mut highest);
        received += 1;
    }
    assert!(kills >= 10, "only {kills} kills");
    // Values stored but never received (killed between the store and the send) are
    // skipped, never reused.
    let skipped = u64::from(highest) - ASSERTIONS as u64 - 1;
    eprintln!(
        "{ASSERTIONS} assertions, {kills} SIGKILLs ({answered_before_kill} answered before \
         dying), {skipped} counter values skipped, last counter {highest}, {:?}",
        started.elapsed()
    );
}
