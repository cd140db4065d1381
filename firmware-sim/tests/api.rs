//! The library API other crates' tests use: `spawn`, `RunningSim::{addr, ca_pem, stop,
//! kill}`, over real UDP on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::UdpSocket;
use std::time::Duration;

use firmware_sim::{SimConfig, TouchPolicy};
use support::client::UdpDevice;
use tokengate_ctap::ctap2::{GetInfoResponse, Request};
use tokengate_ctaphid::packet::InitPacket;
use tokengate_ctaphid::{Command, MAX_MESSAGE_SIZE};

fn config(touch: TouchPolicy) -> SimConfig {
    SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        state: None,
        touch,
        verbose: false,
    }
}

#[test]
fn spawn_serves_ctaphid_on_a_free_port() {
    let sim = firmware_sim::spawn(config(TouchPolicy::Auto)).unwrap();
    assert_ne!(sim.addr().port(), 0);
    assert!(sim.addr().ip().is_loopback());
    assert!(sim.ca_pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
    let mut device = UdpDevice::connect(sim.addr(), Duration::from_secs(5)).unwrap();
    let echo: Vec<u8> = (0..MAX_MESSAGE_SIZE).map(|i| i as u8).collect();
    assert_eq!(device.call(Command::Ping, &echo).unwrap().payload, echo);
    let (status, payload) = device.cbor(&Request::GetInfo).unwrap();
    assert_eq!(status, 0);
    let info = GetInfoResponse::decode(&payload).unwrap();
    assert_eq!(info.aaguid, firmware_sim::AAGUID);
    sim.stop();
}

#[test]
fn an_over_long_message_is_refused_with_invalid_len() {
    let sim = firmware_sim::spawn(config(TouchPolicy::Auto)).unwrap();
    let device = UdpDevice::connect(sim.addr(), Duration::from_secs(5)).unwrap();
    drop(device);
    // A fresh raw channel: INIT by hand, then a PING claiming 7610 bytes.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let handshake = tokengate_ctaphid::InitHandshake::allocate([3; 8]);
    socket.send_to(&handshake.request(), sim.addr()).unwrap();
    let mut buffer = [0u8; 64];
    socket.recv_from(&mut buffer).unwrap();
    let tokengate_ctaphid::InitReply::Ready(init) = handshake.receive(&buffer).unwrap() else {
        panic!("no INIT reply");
    };
    let too_long = InitPacket {
        cid: init.cid,
        cmd: Command::Ping,
        bcnt: (MAX_MESSAGE_SIZE + 1) as u16,
        data: [0; 57],
    };
    socket.send_to(&too_long.encode(), sim.addr()).unwrap();
    socket.recv_from(&mut buffer).unwrap();
    assert_eq!(buffer[4], 0xBF, "CTAPHID_ERROR");
    assert_eq!(buffer[7], 0x03, "ERR_INVALID_LEN");
    sim.stop();
}

#[test]
fn kill_stops_answering_even_mid_transaction() {
    let sim = firmware_sim::spawn(config(TouchPolicy::Delay(Duration::from_secs(20)))).unwrap();
    let addr = sim.addr();
    let mut device = UdpDevice::connect(addr, Duration::from_secs(5)).unwrap();
    // Selection waits for the (delayed) touch: keepalives flow.
    device.send(Command::Cbor, &[0x0B]).unwrap();
    let early = device.receive_within(Duration::from_millis(300));
    assert!(early.is_err(), "no answer yet: {early:?}");
    assert!(
        device.keepalives >= 2,
        "keepalives while waiting: {}",
        device.keepalives
    );
    sim.kill();
    // Loopback delivery happens inside `send_to`: whatever was sent before `kill` returned
    // is queued already. After that, silence — not even a keepalive.
    device.drain().unwrap();
    assert_eq!(
        device.datagrams_within(Duration::from_millis(400)).unwrap(),
        0
    );
    // The socket is closed: the port can be bound again.
    UdpSocket::bind(addr).unwrap();
}

#[test]
fn stop_is_graceful_and_state_files_persist_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut with_state = config(TouchPolicy::Auto);
    with_state.state = Some(path.clone());
    let sim = firmware_sim::spawn(with_state.clone()).unwrap();
    let ca = sim.ca_pem();
    let mut device = UdpDevice::connect(sim.addr(), Duration::from_secs(5)).unwrap();
    assert_eq!(device.cbor(&Request::Selection).unwrap().0, 0);
    sim.stop();
    let again = firmware_sim::spawn(with_state.clone()).unwrap();
    assert_eq!(again.ca_pem(), ca, "same device after restart");
    again.stop();

    std::fs::write(&path, b"{\"format\": \"something else\"}").unwrap();
    let err = firmware_sim::spawn(with_state).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("invalid state file"), "{err}");
}

#[test]
fn deny_answers_operation_denied() {
    let sim = firmware_sim::spawn(config(TouchPolicy::Deny)).unwrap();
    let mut device = UdpDevice::connect(sim.addr(), Duration::from_secs(5)).unwrap();
    assert_eq!(device.cbor(&Request::Selection).unwrap().0, 0x27);
    // U2F keeps answering "conditions not satisfied".
    let register = [&[0u8, 1, 0, 0, 0, 0, 64][..], &[0; 64], &[0, 0]].concat();
    assert_eq!(device.apdu(&register).unwrap().1, 0x6985);
}
