//! CTAPHID reassembly and arbitration under arbitrary reports.
//!
//! The input is a sequence of 65-byte steps: one control byte, then one 64-byte HID report.
//! Control bits 0–5 advance the clock by 0..=1008 ms (so the 500 ms frame timeout is
//! crossed), bit 6 runs `handle_timeout` first, bit 7 makes the "authenticator" answer the
//! request it holds (after a keepalive). Every report also goes to a host-side channel.
//!
//! Checked, beyond "never panics":
//! * canonical form: every request handed out, re-fragmented and reassembled (both by
//!   `defragment` and by a fresh `Reassembler`), is identical, and so is every response the
//!   host side completes;
//! * everything the device sends is a sequence of well-formed messages of device → host
//!   commands.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate_ctaphid::packet::Packet;
use tokengate_ctaphid::{
    Capabilities, Command, Device, DeviceConfig, DeviceVersion, Event, HostChannel, HostEvent,
    KeepaliveStatus, Message, Outcome, Reassembler, Report, SequentialCids, Timestamp,
    defragment, fragment, packet_count,
};

const STEP: usize = 1 + 64;

fuzz_target!(|data: &[u8]| {
    let version = DeviceVersion { major: 5, minor: 2, build: 1 };
    let capabilities = Capabilities::YUBIKEY_5 | Capabilities::LOCK;
    let mut config = DeviceConfig::new(version, capabilities);
    config.vendor_commands = true;
    config.max_channels = 8;
    let mut device = Device::new(config, SequentialCids::new());
    let mut host = HostChannel::new(1).expect("channel 1 is usable");
    let mut now = 0u64;

    for step in data.chunks_exact(STEP) {
        let Some((&control, rest)) = step.split_first() else { continue };
        let Ok(report) = <Report>::try_from(rest) else { continue };
        now += u64::from(control & 0x3F) * 16;
        let at = Timestamp::from_millis(now);

        if control & 0x40 != 0 {
            check_device_output(&device.handle_timeout(at));
        }
        let out = device.handle_report(at, &report);
        check_device_output(&out.reports);
        match &out.event {
            Some(Event::Request(message)) => {
                assert_ne!(message.cmd, Command::Init);
                assert_eq!(device.awaiting_response(), Some((message.cid, message.cmd)));
                check_canonical(message);
            }
            Some(Event::Cancel { cid }) => {
                assert_eq!(device.awaiting_response(), Some((*cid, Command::Cbor)));
            }
            Some(Event::Aborted { .. }) => assert_eq!(device.awaiting_response(), None),
            None => {}
        }

        if control & 0x80 != 0 {
            if let Some((cid, _)) = device.awaiting_response() {
                let keepalive = device.keepalive(cid, KeepaliveStatus::UpNeeded);
                check_device_output(&[keepalive.expect("a request is awaiting")]);
                let echo = report.to_vec();
                let reply = device.respond(cid, &echo).expect("a request is awaiting");
                check_device_output(&reply);
                assert_eq!(device.awaiting_response(), None);
            }
        }

        // The host side sees the same untrusted bytes.
        if !host.is_awaiting_response() {
            let _ = host.request(Command::Cbor, &[0x04]).expect("host is idle");
        }
        if let Ok(HostEvent::Response(message)) = host.receive(&report) {
            check_canonical(&message);
        }
    }
});

/// Re-fragmenting and reassembling a message gives it back unchanged.
fn check_canonical(message: &Message) {
    let reports: Vec<Report> = fragment(message).expect("reassembled messages fit").collect();
    assert_eq!(reports.len(), packet_count(message.payload.len()));
    assert_eq!(&defragment(&reports).expect("own fragments reassemble"), message);
    if message.cmd != Command::Init && message.cid != tokengate_ctaphid::BROADCAST_CID {
        let mut reassembler = Reassembler::new();
        let mut last = Outcome::NeedMore;
        for report in &reports {
            last = reassembler.push(Timestamp::ZERO, report).outcome;
        }
        assert_eq!(last, Outcome::Complete(message.clone()));
    }
}

/// Device output is a sequence of complete, well-formed device → host messages.
fn check_device_output(reports: &[Report]) {
    let mut rest = reports;
    while let Some(report) = rest.first() {
        let Packet::Init(init) = Packet::parse(report) else {
            panic!("device output does not start a message with an init packet");
        };
        let count = packet_count(usize::from(init.bcnt));
        let (message, tail) = rest.split_at(count.min(rest.len()));
        let message = defragment(message).expect("device output is well formed");
        match message.cmd {
            Command::Error | Command::Keepalive => assert_eq!(message.payload.len(), 1),
            Command::Init => assert_eq!(message.payload.len(), 17),
            Command::Lock | Command::Wink => {}
            Command::Ping | Command::Cbor | Command::Msg | Command::Vendor(_) => {}
            other => panic!("device sent {other:?}"),
        }
        rest = tail;
    }
}
