//! A GetAssertion round trip over UDP on loopback with touch `auto` (issue 4 goal: < 2 ms):
//! request fragmented into CTAPHID reports, sent, processed (counter stored, ECDSA
//! signature), response reassembled. Measured twice: with the state in memory, and with a
//! state file, where every assertion waits for the atomic replace + fsync of the counter.
//!
//! `cargo bench -p firmware-sim --bench udp_roundtrip`

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/client.rs"]
mod client;

use std::path::PathBuf;
use std::time::Duration;

use client::UdpDevice;
use criterion::{Criterion, criterion_group, criterion_main};
use firmware_sim::{SimConfig, TouchPolicy};
use tokengate_ctap::cose::alg;
use tokengate_ctap::ctap2::{
    GetAssertionExtensions, GetAssertionOptions, GetAssertionRequest, MakeCredentialExtensions,
    MakeCredentialOptions, MakeCredentialRequest, MakeCredentialResponse,
    PublicKeyCredentialDescriptor, PublicKeyCredentialParameters, PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity, Request,
};
use tokengate_ctaphid::Command;

const CDH: [u8; 32] = [0x42; 32];

/// A simulator with one ES256 credential: (simulator, device, GetAssertion request bytes).
fn setup(state: Option<PathBuf>) -> (firmware_sim::RunningSim, UdpDevice, Vec<u8>) {
    let sim = firmware_sim::spawn(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        state,
        touch: TouchPolicy::Auto,
        verbose: false,
    })
    .unwrap();
    let mut device = UdpDevice::connect(sim.addr(), Duration::from_secs(5)).unwrap();
    let make = Request::MakeCredential(MakeCredentialRequest {
        client_data_hash: CDH,
        rp: PublicKeyCredentialRpEntity {
            id: "example.com".into(),
            name: None,
        },
        user: PublicKeyCredentialUserEntity {
            id: b"bench".to_vec(),
            name: None,
            display_name: None,
        },
        pub_key_cred_params: vec![PublicKeyCredentialParameters::public_key(alg::ES256)],
        exclude_list: vec![],
        extensions: MakeCredentialExtensions::default(),
        options: MakeCredentialOptions::default(),
        pin_uv_auth_param: None,
        pin_uv_auth_protocol: None,
        enterprise_attestation: None,
    });
    let (status, payload) = device.cbor(&make).unwrap();
    assert_eq!(status, 0);
    let made = MakeCredentialResponse::decode(&payload).unwrap();
    let id = made
        .attestation_object
        .auth_data
        .attested_credential_data
        .unwrap()
        .credential_id;
    let request = Request::GetAssertion(GetAssertionRequest {
        rp_id: "example.com".into(),
        client_data_hash: CDH,
        allow_list: vec![PublicKeyCredentialDescriptor::public_key(id)],
        extensions: GetAssertionExtensions::default(),
        options: GetAssertionOptions::default(),
        pin_uv_auth_param: None,
        pin_uv_auth_protocol: None,
    })
    .to_vec();
    (sim, device, request)
}

fn get_assertion_round_trip(c: &mut Criterion) {
    let (sim, mut device, request) = setup(None);
    c.bench_function("get_assertion_udp_round_trip/in_memory", |b| {
        b.iter(|| {
            let response = device.call(Command::Cbor, &request).unwrap();
            assert_eq!(response.payload[0], 0);
        });
    });
    sim.stop();

    let dir = tempfile::tempdir().unwrap();
    let (sim, mut device, request) = setup(Some(dir.path().join("state.json")));
    c.bench_function("get_assertion_udp_round_trip/state_file_fsync", |b| {
        b.iter(|| {
            let response = device.call(Command::Cbor, &request).unwrap();
            assert_eq!(response.payload[0], 0);
        });
    });
    sim.stop();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = get_assertion_round_trip
}
criterion_main!(benches);
