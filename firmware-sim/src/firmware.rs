//! The firmware: the CTAPHID device state machine of `tokengate-ctaphid` wired to the
//! [`Authenticator`]. Reports in, reports out, time from the authenticator's clock.
//!
//! While a CTAP2 command waits for a touch the firmware sends KEEPALIVE STATUS_UPNEEDED
//! right away and then every [`KEEPALIVE_INTERVAL`] (CTAP 2.1 §11.2.9.1.7: at least every
//! 100 ms), polls the button every [`PRESENCE_POLL_INTERVAL`], answers CTAPHID_CANCEL with
//! CTAP2_ERR_KEEPALIVE_CANCEL and gives up with CTAP2_ERR_USER_ACTION_TIMEOUT after 30 s.
//! Other channels meanwhile get ERR_CHANNEL_BUSY from the device state machine.
//!
//! The caller (the UDP server, a test) feeds every received report to
//! [`Firmware::handle_report`] and calls [`Firmware::handle_timeout`] once
//! [`Firmware::next_deadline`] has passed. [`Firmware::take_log`] returns one line per
//! command and its status for `--verbose`; it never contains payloads, so no PIN, key or
//! token is ever logged.
//!
//! What it will not do: no sockets, no threads, no sleeping.

use std::fmt;
use std::time::Duration;

use tokengate_ctap::ctap2::{self, StatusCode};
use tokengate_ctaphid::packet::Packet;
use tokengate_ctaphid::{
    Capabilities, Command, Device, DeviceConfig, ErrorCode, Event, KeepaliveStatus, Message,
    Report, SequentialCids,
};

use crate::authenticator::{Authenticator, DEVICE_VERSION, Pending, Step};
use crate::env::Timestamp;

/// Interval between KEEPALIVE reports while a touch is awaited: under the 100 ms the spec
/// demands, with room for scheduling jitter.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(80);
/// Interval between polls of the button while a touch is awaited.
pub const PRESENCE_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// One line of the `--verbose` log: a command and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// The channel.
    pub cid: u32,
    /// The command, e.g. `CBOR GetAssertion` or `MSG U2F AUTHENTICATE`.
    pub command: String,
    /// The outcome, e.g. `0x00 Ok`, `0x6985`, `waiting for touch`.
    pub outcome: String,
}

impl fmt::Display for LogEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cid {:08x}: {} -> {}",
            self.cid, self.command, self.outcome
        )
    }
}

/// A CBOR request waiting for a touch.
struct Waiting {
    cid: u32,
    command: String,
    pending: Pending,
    next_poll: Timestamp,
    next_keepalive: Timestamp,
}

/// The simulated key's firmware.
pub struct Firmware {
    device: Device<SequentialCids>,
    authenticator: Authenticator,
    waiting: Option<Waiting>,
    log: Vec<LogEntry>,
}

impl Firmware {
    /// Firmware around `authenticator`, reporting itself as a YubiKey 5 (device version
    /// 5.7.1, capabilities WINK | CBOR, U2F supported).
    pub fn new(authenticator: Authenticator) -> Self {
        let config = DeviceConfig::new(DEVICE_VERSION, Capabilities::YUBIKEY_5);
        Self {
            device: Device::new(config, SequentialCids::new()),
            authenticator,
            waiting: None,
            log: Vec::new(),
        }
    }

    /// The authenticator.
    pub fn authenticator(&self) -> &Authenticator {
        &self.authenticator
    }

    /// Processes one report from the host; returns the reports to send, in order.
    pub fn handle_report(&mut self, report: &Report) -> Vec<Report> {
        let now = self.authenticator.now();
        let output = self.device.handle_report(now, report);
        let mut reports = output.reports;
        match output.event {
            None => {}
            Some(Event::Request(message)) => self.on_request(now, message, &mut reports),
            Some(Event::Cancel { cid }) => {
                if let Some(waiting) = self.take_waiting(cid) {
                    let payload = self.authenticator.cancel(waiting.pending);
                    self.respond(cid, &waiting.command, &payload, &mut reports);
                }
            }
            Some(Event::Aborted { cid }) => {
                if let Some(waiting) = self.take_waiting(cid) {
                    self.authenticator.abandon(waiting.pending);
                    self.record(cid, &waiting.command, "aborted by INIT".into());
                }
            }
        }
        reports.extend(self.run_timers(now));
        self.log_transport(&reports);
        reports
    }

    /// When [`Firmware::handle_timeout`] next has work: a keepalive, a button poll, or a
    /// stalled request's ERR_MSG_TIMEOUT.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let waiting = self
            .waiting
            .as_ref()
            .map(|w| w.next_poll.min(w.next_keepalive));
        match (self.device.next_timeout(), waiting) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs whatever is due now; returns the reports to send.
    pub fn handle_timeout(&mut self) -> Vec<Report> {
        let now = self.authenticator.now();
        let mut reports = self.device.handle_timeout(now);
        reports.extend(self.run_timers(now));
        self.log_transport(&reports);
        reports
    }

    /// The log lines gathered since the last call.
    pub fn take_log(&mut self) -> Vec<LogEntry> {
        std::mem::take(&mut self.log)
    }

    fn on_request(&mut self, now: Timestamp, message: Message, reports: &mut Vec<Report>) {
        let cid = message.cid;
        match message.cmd {
            Command::Cbor => {
                let command = cbor_name(&message.payload);
                match self.authenticator.process_cbor(&message.payload) {
                    Step::Done(payload) => self.respond(cid, &command, &payload, reports),
                    Step::Pending(pending) => {
                        reports.extend(self.device.keepalive(cid, KeepaliveStatus::UpNeeded));
                        self.record(cid, &command, "waiting for touch".into());
                        self.waiting = Some(Waiting {
                            cid,
                            command,
                            pending,
                            next_poll: now.saturating_add(PRESENCE_POLL_INTERVAL),
                            next_keepalive: now.saturating_add(KEEPALIVE_INTERVAL),
                        });
                    }
                }
            }
            Command::Msg => {
                let command = u2f_name(&message.payload);
                let payload = self.authenticator.process_u2f(&message.payload);
                self.respond(cid, &command, &payload, reports);
            }
            Command::Wink => self.respond(cid, "WINK", &[], reports),
            other => {
                // Vendor commands are disabled in the device configuration; kept total.
                reports.extend(self.device.respond_error(cid, ErrorCode::InvalidCmd));
                self.record(cid, &format!("{other:?}"), "ERR_INVALID_CMD".into());
            }
        }
    }

    /// Polls the button and sends keepalives for a waiting request.
    fn run_timers(&mut self, now: Timestamp) -> Vec<Report> {
        let mut reports = Vec::new();
        let Some(mut waiting) = self.waiting.take() else {
            return reports;
        };
        if now >= waiting.next_poll {
            match self.authenticator.poll(waiting.pending) {
                Step::Done(payload) => {
                    self.respond(waiting.cid, &waiting.command, &payload, &mut reports);
                    return reports;
                }
                Step::Pending(pending) => {
                    waiting.pending = pending;
                    waiting.next_poll = now.saturating_add(PRESENCE_POLL_INTERVAL);
                }
            }
        }
        if now >= waiting.next_keepalive {
            reports.extend(
                self.device
                    .keepalive(waiting.cid, KeepaliveStatus::UpNeeded),
            );
            waiting.next_keepalive = now.saturating_add(KEEPALIVE_INTERVAL);
        }
        self.waiting = Some(waiting);
        reports
    }

    fn take_waiting(&mut self, cid: u32) -> Option<Waiting> {
        match &self.waiting {
            Some(waiting) if waiting.cid == cid => self.waiting.take(),
            _ => None,
        }
    }

    fn respond(&mut self, cid: u32, command: &str, payload: &[u8], reports: &mut Vec<Report>) {
        let outcome = if command.starts_with("CBOR") {
            cbor_status(payload)
        } else if command.starts_with("MSG") {
            u2f_status(payload)
        } else {
            "ok".to_owned()
        };
        match self.device.respond(cid, payload) {
            Ok(frames) => reports.extend(frames),
            // Cannot happen for responses under 7609 bytes; answer rather than stall.
            Err(_) => reports.extend(self.device.respond_error(cid, ErrorCode::Other)),
        }
        self.record(cid, command, outcome);
    }

    fn record(&mut self, cid: u32, command: &str, outcome: String) {
        self.log.push(LogEntry {
            cid,
            command: command.to_owned(),
            outcome,
        });
    }

    /// Logs what the CTAPHID layer answered by itself: INIT, PING and ERROR.
    fn log_transport(&mut self, reports: &[Report]) {
        for report in reports {
            if let Packet::Init(init) = Packet::parse(report) {
                let outcome = match init.cmd {
                    Command::Init => "INIT -> channel allocated or resynced".to_owned(),
                    Command::Ping => format!("PING -> echo of {} bytes", init.bcnt),
                    Command::Error => {
                        let code = init.data.first().copied().unwrap_or_default();
                        let name = ErrorCode::from_byte(code)
                            .map_or_else(|| "unknown".to_owned(), |c| format!("{c:?}"));
                        format!("CTAPHID ERROR {code:#04x} {name}")
                    }
                    _ => continue,
                };
                self.log.push(LogEntry {
                    cid: init.cid,
                    command: "CTAPHID".into(),
                    outcome,
                });
            }
        }
    }
}

fn cbor_name(payload: &[u8]) -> String {
    match payload.first().map(|&b| (b, ctap2::Command::try_from(b))) {
        Some((_, Ok(command))) => format!("CBOR {command:?}"),
        Some((byte, Err(_))) => format!("CBOR command {byte:#04x}"),
        None => "CBOR (empty)".to_owned(),
    }
}

fn cbor_status(payload: &[u8]) -> String {
    match payload.first() {
        Some(&byte) => match StatusCode::try_from(byte) {
            Ok(code) => format!("{byte:#04x} {code:?}"),
            Err(_) => format!("{byte:#04x}"),
        },
        None => "empty".to_owned(),
    }
}

fn u2f_name(apdu: &[u8]) -> String {
    let name = match apdu.get(1) {
        Some(0x01) => "REGISTER",
        Some(0x02) => "AUTHENTICATE",
        Some(0x03) => "VERSION",
        _ => "other",
    };
    format!("MSG U2F {name}")
}

fn u2f_status(response: &[u8]) -> String {
    match response.split_last_chunk::<2>() {
        Some((_, sw)) => format!("{:#06x}", u16::from_be_bytes(*sw)),
        None => "short".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;
    use tokengate_ctaphid::{HostChannel, HostEvent, InitHandshake, InitReply};

    use super::*;
    use crate::env::{Env, ManualClock, MemoryStorage, ScriptedPresence, Touch};

    struct Rig {
        firmware: Firmware,
        clock: ManualClock,
        button: ScriptedPresence,
    }

    fn rig(touch: Touch) -> Rig {
        let clock = ManualClock::new();
        let button = ScriptedPresence::new(touch);
        let env = Env {
            clock: Box::new(clock.clone()),
            rng: Box::new(SystemRandom::new()),
            presence: Box::new(button.clone()),
            storage: Box::new(MemoryStorage::new()),
        };
        Rig {
            firmware: Firmware::new(Authenticator::new(env).unwrap()),
            clock,
            button,
        }
    }

    impl Rig {
        fn open(&mut self, nonce: u8) -> HostChannel {
            let handshake = InitHandshake::allocate([nonce; 8]);
            let replies = self.firmware.handle_report(&handshake.request());
            let InitReply::Ready(init) = handshake.receive(&replies[0]).unwrap() else {
                panic!("no INIT reply");
            };
            assert_eq!(init.device_version, DEVICE_VERSION);
            assert_eq!(init.capabilities, Capabilities::YUBIKEY_5);
            HostChannel::new(init.cid).unwrap()
        }

        /// Sends a request; returns the host events of the immediate replies.
        fn send(&mut self, host: &mut HostChannel, cmd: Command, payload: &[u8]) -> Vec<HostEvent> {
            let reports: Vec<Report> = host.request(cmd, payload).unwrap().collect();
            let mut events = Vec::new();
            for report in reports {
                for reply in self.firmware.handle_report(&report) {
                    events.push(host.receive(&reply).unwrap());
                }
            }
            events
        }

        /// Advances the clock in 5 ms steps, running timers, until the host has a response
        /// or an error; returns (keepalive times, final event, time).
        fn run_until_done(&mut self, host: &mut HostChannel) -> (Vec<u64>, HostEvent, u64) {
            let mut keepalives = Vec::new();
            loop {
                self.clock.advance(Duration::from_millis(5));
                let now = self.firmware.authenticator().now();
                if self.firmware.next_deadline().is_some_and(|d| d <= now) {
                    for reply in self.firmware.handle_timeout() {
                        match host.receive(&reply).unwrap() {
                            HostEvent::Keepalive(KeepaliveStatus::UpNeeded) => {
                                keepalives.push(now.as_millis());
                            }
                            HostEvent::NeedMore => {}
                            done => return (keepalives, done, now.as_millis()),
                        }
                    }
                }
                assert!(now.as_millis() < 40_000, "never finished");
            }
        }
    }

    fn cbor_status(event: &HostEvent) -> StatusCode {
        let HostEvent::Response(message) = event else {
            panic!("expected a response, got {event:?}");
        };
        StatusCode::try_from(message.payload[0]).unwrap()
    }

    #[test]
    fn keepalives_at_least_every_100_ms_until_the_30_second_timeout() {
        let mut rig = rig(Touch::Never);
        let mut host = rig.open(1);
        let first = rig.send(&mut host, Command::Cbor, &[0x0B]);
        assert_eq!(
            first,
            [HostEvent::Keepalive(KeepaliveStatus::UpNeeded)],
            "at once"
        );
        let (keepalives, done, at) = rig.run_until_done(&mut host);
        assert_eq!(cbor_status(&done), StatusCode::UserActionTimeout);
        assert!((30_000..30_100).contains(&at), "timed out at {at} ms");
        let mut last = 0;
        for t in &keepalives {
            assert!(t - last <= 100, "gap {last}..{t}");
            last = *t;
        }
        assert!(at - last <= 100);
        assert!(keepalives.len() > 300);
        assert!(!rig.button.waiting());
    }

    #[test]
    fn a_touch_ends_the_wait_and_other_channels_are_busy_meanwhile() {
        let mut rig = rig(Touch::After(Duration::from_millis(250)));
        let mut host = rig.open(1);
        let mut other = rig.open(2);
        let _ = rig.send(&mut host, Command::Cbor, &[0x0B]);
        let busy = rig.send(&mut other, Command::Ping, b"hi");
        assert_eq!(busy, [HostEvent::DeviceError(ErrorCode::ChannelBusy)]);
        let (keepalives, done, at) = rig.run_until_done(&mut host);
        assert_eq!(cbor_status(&done), StatusCode::Ok);
        assert!((250..300).contains(&at));
        assert_eq!(keepalives.len(), 3, "{keepalives:?}");
        let pong = rig.send(&mut other, Command::Ping, b"hi");
        assert!(matches!(&pong[..], [HostEvent::Response(m)] if m.payload == b"hi"));
    }

    #[test]
    fn cancel_answers_keepalive_cancel() {
        let mut rig = rig(Touch::Never);
        let mut host = rig.open(1);
        let _ = rig.send(&mut host, Command::Cbor, &[0x0B]);
        rig.clock.advance(Duration::from_millis(300));
        let _ = rig.firmware.handle_timeout();
        let replies = rig.firmware.handle_report(&host.cancel());
        assert_eq!(replies.len(), 1);
        let event = host.receive(&replies[0]).unwrap();
        assert_eq!(cbor_status(&event), StatusCode::KeepaliveCancel);
        assert!(!rig.button.waiting());
        assert_eq!(rig.firmware.next_deadline(), None);
    }

    #[test]
    fn resync_init_aborts_the_wait_without_a_response() {
        let mut rig = rig(Touch::Never);
        let mut host = rig.open(1);
        let _ = rig.send(&mut host, Command::Cbor, &[0x0B]);
        let resync = InitHandshake::resync(host.cid(), [9; 8]).unwrap();
        let replies = rig.firmware.handle_report(&resync.request());
        assert!(matches!(
            resync.receive(&replies[0]),
            Ok(InitReply::Ready(_))
        ));
        assert_eq!(replies.len(), 1);
        assert!(!rig.button.waiting());
        let log = rig.firmware.take_log();
        assert!(
            log.iter().any(|e| e.outcome == "aborted by INIT"),
            "{log:?}"
        );
    }

    #[test]
    fn u2f_wink_and_the_log() {
        let mut rig = rig(Touch::Immediately);
        let mut host = rig.open(1);
        let version = rig.send(&mut host, Command::Msg, &[0, 3, 0, 0, 0, 0, 0]);
        assert!(matches!(&version[..], [HostEvent::Response(m)] if m.payload == b"U2F_V2\x90\x00"));
        let wink = rig.send(&mut host, Command::Wink, &[]);
        assert!(matches!(&wink[..], [HostEvent::Response(m)] if m.payload.is_empty()));
        let info = rig.send(&mut host, Command::Cbor, &[0x04]);
        assert!(matches!(info.last(), Some(HostEvent::Response(m)) if m.payload[0] == 0));
        let lines: Vec<String> = rig
            .firmware
            .take_log()
            .iter()
            .map(ToString::to_string)
            .collect();
        let expected = [
            "INIT",
            "MSG U2F VERSION -> 0x9000",
            "WINK -> ok",
            "CBOR GetInfo -> 0x00 Ok",
        ];
        for needle in expected {
            assert!(
                lines.iter().any(|l| l.contains(needle)),
                "{needle} in {lines:?}"
            );
        }
        assert!(rig.firmware.take_log().is_empty());
    }
}
