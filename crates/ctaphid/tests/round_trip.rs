//! Property tests: assemble ∘ fragment is the identity for every payload of 0..=7609 bytes,
//! and host-side encoding round trips through device-side decoding and back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use tokengate_ctaphid::{
    BROADCAST_CID, Capabilities, Command, Device, DeviceConfig, DeviceVersion, Event, HostChannel,
    HostEvent, InitHandshake, InitReply, MAX_MESSAGE_SIZE, Message, Outcome, Reassembler, Report,
    SequentialCids, Timestamp, defragment, fragment, packet_count,
};

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=MAX_MESSAGE_SIZE)
}

/// Every command but INIT, whose length the reassembler pins to 8 bytes.
fn command() -> impl Strategy<Value = Command> {
    (0u8..=0x7F)
        .prop_map(Command::from_code)
        .prop_filter("INIT", |c| *c != Command::Init)
}

fn device() -> Device {
    let version = DeviceVersion {
        major: 5,
        minor: 2,
        build: 1,
    };
    Device::new(
        DeviceConfig::new(version, Capabilities::YUBIKEY_5),
        SequentialCids::new(),
    )
}

fn open(device: &mut Device, now: Timestamp) -> HostChannel {
    let handshake = InitHandshake::allocate([7; 8]);
    let out = device.handle_report(now, &handshake.request());
    let InitReply::Ready(response) = handshake.receive(&out.reports[0]).unwrap() else {
        panic!("no INIT reply");
    };
    HostChannel::new(response.cid).unwrap()
}

proptest! {
    #[test]
    fn defragment_inverts_fragment(cid in any::<u32>(), cmd in command(), payload in payload()) {
        let message = Message::new(cid, cmd, payload);
        let reports: Vec<Report> = fragment(&message).unwrap().collect();
        prop_assert_eq!(reports.len(), packet_count(message.payload.len()));
        prop_assert_eq!(defragment(&reports).unwrap(), message);
    }

    #[test]
    fn reassembler_inverts_fragment(
        cid in any::<u32>().prop_filter("broadcast", |c| *c != BROADCAST_CID),
        cmd in command(),
        payload in payload(),
    ) {
        let message = Message::new(cid, cmd, payload);
        let reports: Vec<Report> = fragment(&message).unwrap().collect();
        let mut reassembler = Reassembler::new();
        let (last, init_and_middle) = reports.split_last().unwrap();
        for report in init_and_middle {
            let pushed = reassembler.push(Timestamp::ZERO, report);
            prop_assert_eq!(pushed.timed_out, None);
            prop_assert_eq!(pushed.outcome, Outcome::NeedMore);
        }
        let pushed = reassembler.push(Timestamp::ZERO, last);
        prop_assert_eq!(pushed.outcome, Outcome::Complete(message));
        prop_assert_eq!(reassembler.pending_cid(), None);
    }

    #[test]
    fn host_request_reaches_the_caller_and_the_response_comes_back(
        cmd in prop_oneof![Just(Command::Cbor), Just(Command::Msg), Just(Command::Wink)],
        request in payload(),
        response in payload(),
    ) {
        let now = Timestamp::from_millis(1_000);
        let mut device = device();
        let mut host = open(&mut device, now);
        let mut events = Vec::new();
        for report in host.request(cmd, &request).unwrap() {
            let out = device.handle_report(now, &report);
            prop_assert!(out.reports.is_empty());
            events.extend(out.event);
        }
        let expected = Message::new(host.cid(), cmd, request);
        prop_assert_eq!(events, vec![Event::Request(expected)]);

        let reports = device.respond(host.cid(), &response).unwrap();
        let mut received = None;
        for report in &reports {
            match host.receive(report).unwrap() {
                HostEvent::NeedMore => {}
                HostEvent::Response(message) => received = Some(message),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
        prop_assert_eq!(received, Some(Message::new(host.cid(), cmd, response)));
        prop_assert!(!host.is_awaiting_response());
    }

    #[test]
    fn ping_echoes_any_payload(payload in payload()) {
        let now = Timestamp::ZERO;
        let mut device = device();
        let mut host = open(&mut device, now);
        let mut echoed = Vec::new();
        for report in host.request(Command::Ping, &payload).unwrap() {
            echoed.extend(device.handle_report(now, &report).reports);
        }
        prop_assert_eq!(echoed.len(), packet_count(payload.len()));
        let mut last = HostEvent::Ignored;
        for report in &echoed {
            last = host.receive(report).unwrap();
        }
        let expected = Message::new(host.cid(), Command::Ping, payload);
        prop_assert_eq!(last, HostEvent::Response(expected));
    }

    #[test]
    fn other_channels_traffic_does_not_disturb_the_host(
        noise in prop::collection::vec(prop::array::uniform32(any::<u8>()), 0..20),
        response in payload(),
    ) {
        let mut device = device();
        let mut host = open(&mut device, Timestamp::ZERO);
        let _ = host.request(Command::Cbor, &[4]).unwrap();
        let again = host.request(Command::Cbor, &[4]).unwrap_err();
        prop_assert_eq!(again, tokengate_ctaphid::Error::RequestOutstanding);
        let mut packets: Vec<Report> = Vec::new();
        for half in noise {
            let mut report = [0u8; 64];
            report[..32].copy_from_slice(&half);
            report[32..].copy_from_slice(&half);
            if u32::from_be_bytes([report[0], report[1], report[2], report[3]]) == host.cid() {
                report[0] ^= 0x80;
            }
            packets.push(report);
        }
        let reply = Message::new(host.cid(), Command::Cbor, response);
        let mut events = Vec::new();
        for (i, report) in fragment(&reply).unwrap().enumerate() {
            if let Some(noise) = packets.get(i) {
                prop_assert_eq!(host.receive(noise).unwrap(), HostEvent::Ignored);
            }
            events.push(host.receive(&report).unwrap());
        }
        prop_assert_eq!(events.last(), Some(&HostEvent::Response(reply)));
    }

    #[test]
    fn arbitrary_reports_never_break_the_device(
        steps in prop::collection::vec((0u64..700, prop::array::uniform32(any::<u8>())), 0..64),
    ) {
        let mut device = device();
        let mut now = 0;
        for (advance, half) in steps {
            now += advance;
            let mut report = [0u8; 64];
            report[..32].copy_from_slice(&half);
            report[32..].copy_from_slice(&half);
            // Steer some CIDs onto the first allocated channels and the broadcast channel.
            if half[0] < 0x40 {
                report[..4].copy_from_slice(&u32::from(half[1] % 3).to_be_bytes());
            } else if half[0] < 0x50 {
                report[..4].copy_from_slice(&BROADCAST_CID.to_be_bytes());
            }
            let out = device.handle_report(Timestamp::from_millis(now), &report);
            if let Some(Event::Request(message)) = &out.event {
                let reports: Vec<Report> = fragment(message).unwrap().collect();
                prop_assert_eq!(&defragment(&reports).unwrap(), message);
                let _ = device.respond(message.cid, &message.payload).unwrap();
            }
        }
    }
}
