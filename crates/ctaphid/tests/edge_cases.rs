//! The arbitration and framing rules of fido.md §1.5 (CTAP 2.1 §11.2.5), one scenario per
//! test, mostly after Google's u2f-ref-code `HIDTest.cc`, driven through the public API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tokengate_ctaphid::packet::{ContPacket, InitPacket};
use tokengate_ctaphid::{
    BROADCAST_CID, CONT_DATA_SIZE, Capabilities, Command, Device, DeviceConfig, DeviceVersion,
    Error, ErrorCode, Event, HostChannel, HostEvent, INIT_DATA_SIZE, InitHandshake, InitReply,
    KeepaliveStatus, MAX_MESSAGE_SIZE, Message, Output, RESERVED_CID, Report, SequentialCids,
    Timestamp, defragment,
};

/// A YubiKey-5-like device and the time the test has reached.
struct Bench {
    device: Device,
    now: u64,
}

impl Bench {
    fn new() -> Self {
        Self::with_capabilities(Capabilities::YUBIKEY_5)
    }

    fn with_capabilities(capabilities: Capabilities) -> Self {
        let version = DeviceVersion {
            major: 5,
            minor: 2,
            build: 1,
        };
        let config = DeviceConfig::new(version, capabilities);
        Self {
            device: Device::new(config, SequentialCids::new()),
            now: 0,
        }
    }

    fn at(&self) -> Timestamp {
        Timestamp::from_millis(self.now)
    }

    fn advance(&mut self, ms: u64) {
        self.now += ms;
    }

    fn send(&mut self, report: &Report) -> Output {
        let now = self.at();
        self.device.handle_report(now, report)
    }

    /// Sends a report that must produce no answer and no event.
    fn send_silent(&mut self, report: &Report) {
        assert_eq!(self.send(report), Output::default());
    }

    /// Sends a report and returns its single answer message.
    fn send_answered(&mut self, report: &Report) -> Message {
        let out = self.send(report);
        assert_eq!(out.event, None);
        defragment(&out.reports).unwrap()
    }

    /// Allocates a channel through the host-side handshake.
    fn open(&mut self) -> u32 {
        let handshake = InitHandshake::allocate(*b"12345678");
        let out = self.send(&handshake.request());
        assert_eq!(out.reports.len(), 1);
        let InitReply::Ready(response) = handshake.receive(&out.reports[0]).unwrap() else {
            panic!("no INIT reply");
        };
        response.cid
    }
}

fn error(cid: u32, code: ErrorCode) -> Message {
    Message::error(cid, code)
}

/// The init packet of a message of `bcnt` bytes, data filled with `fill`.
fn first(cid: u32, cmd: Command, bcnt: u16, fill: u8) -> Report {
    InitPacket {
        cid,
        cmd,
        bcnt,
        data: [fill; INIT_DATA_SIZE],
    }
    .encode()
}

fn next(cid: u32, seq: u8, fill: u8) -> Report {
    ContPacket {
        cid,
        seq,
        data: [fill; CONT_DATA_SIZE],
    }
    .encode()
}

fn nonce_init(cid: u32, bcnt: u16) -> Report {
    first(cid, Command::Init, bcnt, 0x5A)
}

// --- channels ------------------------------------------------------------------------------

#[test]
fn two_inits_yield_distinct_channels() {
    let mut bench = Bench::new();
    let a = bench.open();
    let b = bench.open();
    assert_ne!(a, b);
    assert!(![a, b].contains(&RESERVED_CID) && ![a, b].contains(&BROADCAST_CID));
}

#[test]
fn broadcast_only_carries_init() {
    let mut bench = Bench::new();
    for cmd in [
        Command::Ping,
        Command::Cbor,
        Command::Msg,
        Command::Wink,
        Command::Lock,
    ] {
        let reply = bench.send_answered(&first(BROADCAST_CID, cmd, 8, 0));
        assert_eq!(
            reply,
            error(BROADCAST_CID, ErrorCode::InvalidChannel),
            "{cmd:?}"
        );
    }
    // A multi-packet PING on broadcast is refused at its first packet; its continuation is
    // then a stray packet.
    let reply = bench.send_answered(&first(BROADCAST_CID, Command::Ping, 100, 0));
    assert_eq!(reply, error(BROADCAST_CID, ErrorCode::InvalidChannel));
    bench.send_silent(&next(BROADCAST_CID, 0, 0));
}

#[test]
fn channel_zero_is_reserved() {
    let mut bench = Bench::new();
    bench.open();
    // Google HIDTest test_NothingOnChannel0: INIT on CID 0 is an invalid-channel error on 0.
    let reply = bench.send_answered(&nonce_init(RESERVED_CID, 8));
    assert_eq!(reply, error(RESERVED_CID, ErrorCode::InvalidChannel));
    let reply = bench.send_answered(&first(RESERVED_CID, Command::Ping, 1, 0));
    assert_eq!(reply, error(RESERVED_CID, ErrorCode::InvalidChannel));
    assert!(!bench.device.is_allocated(RESERVED_CID));
    assert_eq!(
        HostChannel::new(RESERVED_CID).unwrap_err(),
        Error::UnusableCid(0)
    );
}

#[test]
fn unallocated_channels_are_invalid() {
    let mut bench = Bench::new();
    let a = bench.open();
    // fido.md §1.5 caveat: CTAP 2.1 answers ERR_INVALID_CHANNEL where U2FHID's
    // test_LeadingZero (0x100) and test_InitOnNonBroadcastEchoesCID (0xdeadbeef) expected
    // an answer.
    for cid in [0x0000_0100, 0xDEAD_BEEF, a + 1] {
        assert_eq!(
            bench.send_answered(&first(cid, Command::Ping, 10, 0)),
            error(cid, ErrorCode::InvalidChannel)
        );
        assert_eq!(
            bench.send_answered(&nonce_init(cid, 8)),
            error(cid, ErrorCode::InvalidChannel)
        );
    }
}

#[test]
fn resync_init_echoes_the_channel() {
    let mut bench = Bench::new();
    let a = bench.open();
    let handshake = InitHandshake::resync(a, *b"resync!!").unwrap();
    let out = bench.send(&handshake.request());
    let InitReply::Ready(response) = handshake.receive(&out.reports[0]).unwrap() else {
        panic!("no resync reply");
    };
    assert_eq!(response.cid, a);
    assert_eq!(response.nonce, *b"resync!!");
    assert_eq!(defragment(&out.reports).unwrap().cid, a);
}

// --- INIT length ---------------------------------------------------------------------------

#[test]
fn init_with_wrong_length_is_invalid_len() {
    let mut bench = Bench::new();
    let a = bench.open();
    for cid in [BROADCAST_CID, a] {
        for bcnt in [0, 1, 7, 9, 17, 57] {
            let reply = bench.send_answered(&nonce_init(cid, bcnt));
            assert_eq!(
                reply,
                error(cid, ErrorCode::InvalidLen),
                "cid {cid:#x} bcnt {bcnt}"
            );
        }
        // A multi-packet INIT is refused at once; its continuation is a stray packet.
        let reply = bench.send_answered(&nonce_init(cid, 58));
        assert_eq!(reply, error(cid, ErrorCode::InvalidLen));
        bench.send_silent(&next(cid, 0, 0));
    }
    // No channel was allocated by the refused INITs.
    assert_eq!(bench.open(), a + 1);
}

// --- busy ----------------------------------------------------------------------------------

#[test]
fn busy_while_another_channel_is_mid_message() {
    // Google HIDTest test_Busy.
    let mut bench = Bench::new();
    let a = bench.open();
    let b = bench.open();
    bench.send_silent(&first(a, Command::Ping, 99, 1));
    bench.advance(10);
    assert_eq!(
        bench.send_answered(&first(b, Command::Ping, 99, 1)),
        error(b, ErrorCode::ChannelBusy)
    );
    // The busy packet did not restart A's timer: A times out 500 ms after its own packet.
    bench.advance(489);
    assert!(bench.device.handle_timeout(bench.at()).is_empty());
    bench.advance(1);
    let timed_out = bench.device.handle_timeout(bench.at());
    assert_eq!(
        defragment(&timed_out).unwrap(),
        error(a, ErrorCode::MsgTimeout)
    );
    assert!(bench.now >= 450);
}

#[test]
fn busy_while_a_request_is_processed() {
    let mut bench = Bench::new();
    let a = bench.open();
    let b = bench.open();
    let out = bench.send(&first(a, Command::Cbor, 1, 0x04));
    assert_eq!(
        out.event,
        Some(Event::Request(Message::new(a, Command::Cbor, vec![0x04])))
    );
    for cmd in [Command::Ping, Command::Cbor, Command::Msg, Command::Wink] {
        assert_eq!(
            bench.send_answered(&first(b, cmd, 1, 0)),
            error(b, ErrorCode::ChannelBusy)
        );
    }
    // INIT still works for others, and a new channel can be allocated.
    assert_eq!(bench.send_answered(&nonce_init(b, 8)).cmd, Command::Init);
    let c = bench.open();
    // Once the response is out, the device is idle again.
    let reply = bench.device.respond(a, &[0x00]).unwrap();
    assert_eq!(
        defragment(&reply).unwrap(),
        Message::new(a, Command::Cbor, vec![0x00])
    );
    assert_eq!(
        bench.send_answered(&first(c, Command::Ping, 1, 7)).payload,
        [7]
    );
}

#[test]
fn interleaved_channels() {
    // Google HIDTest test_Interleave: B's message is refused, its continuation ignored, A's
    // message completes.
    let mut bench = Bench::new();
    let a = bench.open();
    let b = bench.open();
    let size = (INIT_DATA_SIZE + CONT_DATA_SIZE) as u16;
    bench.send_silent(&first(a, Command::Ping, size, 0x11));
    assert_eq!(
        bench.send_answered(&first(b, Command::Ping, size, 0x22)),
        error(b, ErrorCode::ChannelBusy)
    );
    bench.send_silent(&next(b, 0, 0x22));
    let echo = bench.send_answered(&next(a, 0, 0x11));
    assert_eq!(
        echo,
        Message::new(a, Command::Ping, vec![0x11; usize::from(size)])
    );
}

#[test]
fn init_on_another_channel_does_not_abort() {
    // Google HIDTest test_InitOther.
    let mut bench = Bench::new();
    let a = bench.open();
    let b = bench.open();
    bench.send_silent(&first(a, Command::Ping, 99, 0));
    assert_eq!(bench.send_answered(&nonce_init(b, 8)).cmd, Command::Init);
    let c = bench.open();
    assert_eq!(c, b + 1);
    bench.advance(500);
    let timed_out = bench.send(&next(a, 0, 0));
    // The late continuation is answered with the timeout and otherwise ignored.
    assert_eq!(timed_out.reports.len(), 1);
    assert_eq!(
        defragment(&timed_out.reports).unwrap(),
        error(a, ErrorCode::MsgTimeout)
    );
}

// --- sequencing ----------------------------------------------------------------------------

#[test]
fn wrong_seq_is_invalid_seq_and_aborts() {
    // Google HIDTest test_WrongSeq.
    let mut bench = Bench::new();
    let a = bench.open();
    bench.send_silent(&first(a, Command::Ping, 99, 0));
    assert_eq!(
        bench.send_answered(&next(a, 1, 0)),
        error(a, ErrorCode::InvalidSeq)
    );
    // Nothing else is pending: no timeout later, and the right SEQ now is a stray packet.
    bench.send_silent(&next(a, 0, 0));
    bench.advance(1_000);
    assert!(bench.device.handle_timeout(bench.at()).is_empty());
}

#[test]
fn seq_must_count_up_from_zero() {
    let mut bench = Bench::new();
    let a = bench.open();
    bench.send_silent(&first(a, Command::Ping, 300, 0));
    bench.send_silent(&next(a, 0, 0));
    bench.send_silent(&next(a, 1, 0));
    assert_eq!(
        bench.send_answered(&next(a, 1, 0)),
        error(a, ErrorCode::InvalidSeq)
    );
}

#[test]
fn init_packet_where_continuation_belongs_is_invalid_seq() {
    // Google HIDTest test_NotCont.
    let mut bench = Bench::new();
    let a = bench.open();
    let packet = first(a, Command::Ping, 99, 0);
    bench.send_silent(&packet);
    assert_eq!(
        bench.send_answered(&packet),
        error(a, ErrorCode::InvalidSeq)
    );
    bench.advance(1_000);
    assert!(bench.device.handle_timeout(bench.at()).is_empty());
}

#[test]
fn stray_continuations_are_ignored() {
    // Google HIDTest test_NotFirst, and strays on every kind of channel.
    let mut bench = Bench::new();
    let a = bench.open();
    for cid in [a, a + 1, RESERVED_CID, BROADCAST_CID] {
        for seq in [0, 1, 0x7F] {
            bench.send_silent(&next(cid, seq, 0));
        }
    }
    // Also while another channel's message is pending, without disturbing it.
    bench.send_silent(&first(a, Command::Ping, 60, 3));
    bench.send_silent(&next(a + 1, 0, 0));
    bench.send_silent(&next(RESERVED_CID, 0, 0));
    assert_eq!(bench.send_answered(&next(a, 0, 3)).payload, vec![3; 60]);
}

#[test]
fn resync_init_mid_message_aborts_it() {
    // Google HIDTest test_InitSelfAborts.
    let mut bench = Bench::new();
    let a = bench.open();
    bench.send_silent(&first(a, Command::Ping, 99, 0));
    let reply = bench.send_answered(&nonce_init(a, 8));
    assert_eq!((reply.cid, reply.cmd), (a, Command::Init));
    assert_eq!(reply.payload[..8], [0x5A; 8]);
    bench.send_silent(&next(a, 0, 0));
    bench.advance(1_000);
    assert!(bench.device.handle_timeout(bench.at()).is_empty());
}

// --- length limit --------------------------------------------------------------------------

#[test]
fn over_long_message_is_invalid_len() {
    // Google HIDTest test_Limits: BCNT 7610 is refused at the first packet.
    let mut bench = Bench::new();
    let a = bench.open();
    for bcnt in [7610, 0x8000, u16::MAX] {
        assert_eq!(
            bench.send_answered(&first(a, Command::Ping, bcnt, 0)),
            error(a, ErrorCode::InvalidLen)
        );
    }
    bench.send_silent(&next(a, 0, 0));
    // Host side: 7610 cannot even be framed.
    let mut host = HostChannel::new(a).unwrap();
    let err = host
        .request(Command::Cbor, &[0; MAX_MESSAGE_SIZE + 1])
        .unwrap_err();
    assert_eq!(err, Error::PayloadTooLong { len: 7610 });
}

#[test]
fn max_size_ping_echoes_across_129_packets() {
    let mut bench = Bench::new();
    let a = bench.open();
    let mut host = HostChannel::new(a).unwrap();
    let payload: Vec<u8> = (0..MAX_MESSAGE_SIZE).map(|i| (i * 7 % 256) as u8).collect();
    let request: Vec<Report> = host.request(Command::Ping, &payload).unwrap().collect();
    assert_eq!(request.len(), 129);
    for (seq, report) in request[1..].iter().enumerate() {
        assert_eq!(usize::from(report[4]), seq, "request SEQ");
    }
    let mut echo = Vec::new();
    for (i, report) in request.iter().enumerate() {
        let out = bench.send(report);
        assert_eq!(out.event, None);
        if i + 1 < request.len() {
            assert!(out.reports.is_empty(), "answer before the last packet");
        } else {
            echo = out.reports;
        }
    }
    assert_eq!(echo.len(), 129);
    assert_eq!(echo[0][4..7], [0x81, 0x1D, 0xB9]);
    for (seq, report) in echo[1..].iter().enumerate() {
        assert_eq!(usize::from(report[4]), seq, "response SEQ");
    }
    let mut events = echo.iter().map(|report| host.receive(report).unwrap());
    assert!(
        events
            .by_ref()
            .take(128)
            .all(|event| event == HostEvent::NeedMore)
    );
    let Some(HostEvent::Response(response)) = events.next() else {
        panic!("no response");
    };
    assert_eq!(response, Message::new(a, Command::Ping, payload));
}

// --- timeout -------------------------------------------------------------------------------

#[test]
fn timeout_between_frames_is_msg_timeout() {
    // Google HIDTest test_Timeout: the error comes between 0.4 s and 1.0 s.
    let mut bench = Bench::new();
    let a = bench.open();
    bench.send_silent(&first(a, Command::Ping, 200, 0));
    bench.advance(300);
    bench.send_silent(&next(a, 0, 0));
    // The timer restarted with SEQ 0.
    assert_eq!(
        bench.device.next_timeout(),
        Some(Timestamp::from_millis(800))
    );
    bench.advance(499);
    bench.send_silent(&next(a, 1, 0));
    bench.advance(500);
    let out = bench.send(&next(a, 2, 0));
    assert_eq!(out.event, None);
    assert_eq!(
        defragment(&out.reports).unwrap(),
        error(a, ErrorCode::MsgTimeout)
    );
    // The channel is usable again at once.
    assert_eq!(
        bench.send_answered(&first(a, Command::Ping, 2, 9)).payload,
        [9, 9]
    );
}

#[test]
fn timeout_is_reported_to_the_stalled_channel_not_the_newcomer() {
    let mut bench = Bench::new();
    let a = bench.open();
    let b = bench.open();
    bench.send_silent(&first(a, Command::Ping, 99, 0));
    bench.advance(600);
    let out = bench.send(&first(b, Command::Ping, 1, 4));
    assert_eq!(out.reports.len(), 2);
    assert_eq!(
        defragment(&out.reports[..1]).unwrap(),
        error(a, ErrorCode::MsgTimeout)
    );
    assert_eq!(
        defragment(&out.reports[1..]).unwrap(),
        Message::new(b, Command::Ping, vec![4])
    );
}

// --- commands ------------------------------------------------------------------------------

#[test]
fn unknown_and_unsupported_commands_are_invalid_cmd() {
    // Google HIDTest test_Unknown and test_Lock (LOCK not advertised by a YubiKey 5).
    let mut bench = Bench::new();
    let a = bench.open();
    for code in [0x00, 0x02, 0x05, 0x07, 0x12, 0x3B, 0x3C, 0x3F, 0x40, 0x7F] {
        let reply = bench.send_answered(&first(a, Command::from_code(code), 0, 0));
        assert_eq!(reply, error(a, ErrorCode::InvalidCmd), "code {code:#04x}");
    }
    let reply = bench.send_answered(&first(a, Command::Lock, 1, 0));
    assert_eq!(reply, error(a, ErrorCode::InvalidCmd));
}

#[test]
fn init_works_under_lock() {
    // Google HIDTest test_Lock and test_InitUnderLock, with LOCK advertised.
    let mut bench = Bench::with_capabilities(Capabilities::YUBIKEY_5 | Capabilities::LOCK);
    let a = bench.open();
    let b = bench.open();
    assert_eq!(
        bench.send_answered(&first(a, Command::Lock, 1, 3)),
        Message::new(a, Command::Lock, vec![])
    );
    assert_eq!(
        bench.send_answered(&first(b, Command::Ping, 1, 0)),
        error(b, ErrorCode::ChannelBusy)
    );
    assert_eq!(bench.send_answered(&nonce_init(b, 8)).cmd, Command::Init);
    let c = bench.open();
    assert_eq!(
        bench.send_answered(&first(c, Command::Ping, 1, 0)),
        error(c, ErrorCode::ChannelBusy)
    );
    bench.advance(2_999);
    assert_eq!(
        bench.send_answered(&first(b, Command::Ping, 1, 0)),
        error(b, ErrorCode::ChannelBusy)
    );
    bench.advance(1);
    assert_eq!(
        bench.send_answered(&first(b, Command::Ping, 1, 6)).payload,
        [6]
    );
    assert_eq!(
        bench.send_answered(&first(a, Command::Lock, 1, 11)),
        error(a, ErrorCode::InvalidPar)
    );
    assert_eq!(
        bench.send_answered(&first(a, Command::Lock, 2, 1)),
        error(a, ErrorCode::InvalidLen)
    );
}

#[test]
fn wink_is_handed_to_the_caller() {
    let mut bench = Bench::new();
    let a = bench.open();
    let out = bench.send(&first(a, Command::Wink, 0, 0));
    assert_eq!(
        out.event,
        Some(Event::Request(Message::new(a, Command::Wink, vec![])))
    );
    let reply = bench.device.respond(a, &[]).unwrap();
    assert_eq!(
        defragment(&reply).unwrap(),
        Message::new(a, Command::Wink, vec![])
    );
}

// --- CANCEL --------------------------------------------------------------------------------

fn cancel(cid: u32) -> Report {
    first(cid, Command::Cancel, 0, 0)
}

#[test]
fn cancel_aborts_a_user_presence_wait() {
    let mut bench = Bench::new();
    let a = bench.open();
    let mut host = HostChannel::new(a).unwrap();
    // makeCredential-ish request.
    for report in host.request(Command::Cbor, &[0x01, 0xA0]).unwrap() {
        let out = bench.send(&report);
        assert_eq!(
            out.event,
            Some(Event::Request(Message::new(
                a,
                Command::Cbor,
                vec![1, 0xA0]
            )))
        );
    }
    let keepalive = bench
        .device
        .keepalive(a, KeepaliveStatus::UpNeeded)
        .unwrap();
    assert_eq!(
        host.receive(&keepalive).unwrap(),
        HostEvent::Keepalive(KeepaliveStatus::UpNeeded)
    );
    // The host cancels: no reply on the wire, an event for the authenticator.
    let out = bench.send(&host.cancel());
    assert!(out.reports.is_empty());
    assert_eq!(out.event, Some(Event::Cancel { cid: a }));
    // The authenticator ends the request with CTAP2_ERR_KEEPALIVE_CANCEL.
    let reply = bench.device.respond(a, &[0x2D]).unwrap();
    let event = host.receive(&reply[0]).unwrap();
    assert_eq!(
        event,
        HostEvent::Response(Message::new(a, Command::Cbor, vec![0x2D]))
    );
}

#[test]
fn cancel_is_otherwise_ignored() {
    let mut bench = Bench::new();
    let a = bench.open();
    let b = bench.open();
    // Nothing being processed.
    bench.send_silent(&cancel(a));
    // On a non-active channel, an unallocated one, channel 0, broadcast.
    let _ = bench.send(&first(a, Command::Cbor, 1, 2));
    for cid in [b, b + 1, RESERVED_CID, BROADCAST_CID] {
        bench.send_silent(&cancel(cid));
    }
    // With a payload (BCNT must be 0).
    bench.send_silent(&first(a, Command::Cancel, 1, 0));
    assert_eq!(bench.device.awaiting_response(), Some((a, Command::Cbor)));
    assert_eq!(bench.send(&cancel(a)).event, Some(Event::Cancel { cid: a }));
}

#[test]
fn resync_aborts_a_request_being_processed() {
    let mut bench = Bench::new();
    let a = bench.open();
    let _ = bench.send(&first(a, Command::Cbor, 1, 2));
    let out = bench.send(&nonce_init(a, 8));
    assert_eq!(out.event, Some(Event::Aborted { cid: a }));
    assert_eq!(defragment(&out.reports).unwrap().cmd, Command::Init);
    assert_eq!(
        bench.device.respond(a, &[0]).unwrap_err(),
        Error::NoPendingRequest(a)
    );
}

// --- host against device -------------------------------------------------------------------

#[test]
fn host_sees_busy_as_an_event_and_can_retry() {
    let mut bench = Bench::new();
    let a = bench.open();
    let b = bench.open();
    let _ = bench.send(&first(a, Command::Cbor, 1, 4));
    let mut host = HostChannel::new(b).unwrap();
    let request: Vec<Report> = host.request(Command::Ping, b"retry").unwrap().collect();
    let out = bench.send(&request[0]);
    assert_eq!(
        host.receive(&out.reports[0]).unwrap(),
        HostEvent::DeviceError(ErrorCode::ChannelBusy)
    );
    let _ = bench.device.respond(a, &[0]).unwrap();
    let request: Vec<Report> = host.request(Command::Ping, b"retry").unwrap().collect();
    let out = bench.send(&request[0]);
    let event = host.receive(&out.reports[0]).unwrap();
    assert_eq!(
        event,
        HostEvent::Response(Message::new(b, Command::Ping, b"retry".to_vec()))
    );
}
