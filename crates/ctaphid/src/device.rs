//! The device side: channels, arbitration, INIT/PING/LOCK/CANCEL handled here, everything
//! else handed to the caller (CTAP 2.1 §11.2.3–§11.2.9; fido.md §1.2–§1.5).

use core::time::Duration;
use std::collections::VecDeque;

use crate::command::{Capabilities, Command, DeviceVersion, ErrorCode, KeepaliveStatus};
use crate::error::{Error, Refusal, Refused, error_report};
use crate::init::{CTAPHID_PROTOCOL_VERSION, INIT_NONCE_SIZE, InitResponse};
use crate::message::{Fragments, Message};
use crate::packet::{BROADCAST_CID, INIT_DATA_SIZE, InitPacket, Packet, RESERVED_CID, Report};
use crate::reassembly::{Outcome, Reassembler};
use crate::time::{FRAME_TIMEOUT, Timestamp};

/// Longest LOCK a host may ask for, in seconds; more is `ERR_INVALID_PAR`
/// (CTAP 2.1 §11.2.9.2.2; fido.md §1.3).
pub const MAX_LOCK_SECONDS: u8 = 10;
/// Default number of channels remembered before the least recently used idle one is
/// forgotten. Vendor specific (§11.2.3 leaves allocation to the device); a host whose
/// channel was forgotten gets `ERR_INVALID_CHANNEL` and allocates a new one.
pub const DEFAULT_MAX_CHANNELS: usize = 64;
/// Floor for [`DeviceConfig::max_channels`]: the channels that can be in use at once (one
/// reassembling, one awaiting a response, one holding a LOCK) plus the one being allocated.
pub const MIN_CHANNELS: usize = 4;
/// How many candidates the device draws from its [`CidSource`] before it gives up on an
/// allocation and answers `ERR_OTHER` (a sane source needs one).
pub const MAX_CID_ATTEMPTS: usize = 16;

/// Where new channel identifiers come from: randomness or a counter, injected so that tests
/// are deterministic. Closures `FnMut() -> u32` implement it.
///
/// The device skips candidates that are 0, the broadcast CID or already allocated.
pub trait CidSource {
    /// The next candidate channel identifier.
    fn next_cid(&mut self) -> u32;
}

impl<F: FnMut() -> u32> CidSource for F {
    fn next_cid(&mut self) -> u32 {
        self()
    }
}

/// Allocates 1, 2, 3, … as OpenSK and LionKey do (fido.md §1.2), wrapping around.
#[derive(Clone, Debug)]
pub struct SequentialCids {
    next: u32,
}

impl SequentialCids {
    /// Starts at 1.
    pub fn new() -> Self {
        Self::starting_at(1)
    }

    /// Starts at `first`.
    pub fn starting_at(first: u32) -> Self {
        Self { next: first }
    }
}

impl Default for SequentialCids {
    fn default() -> Self {
        Self::new()
    }
}

impl CidSource for SequentialCids {
    fn next_cid(&mut self) -> u32 {
        let cid = self.next;
        self.next = self.next.wrapping_add(1);
        cid
    }
}

/// What the device reports about itself and how it arbitrates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Device version in the INIT response, e.g. 5.2.1 for a YubiKey 5 (fido.md §1.2).
    pub device_version: DeviceVersion,
    /// Capability flags in the INIT response; they also decide which commands are accepted:
    /// WINK and CBOR need their flag, MSG needs NMSG clear, LOCK needs the LOCK flag.
    pub capabilities: Capabilities,
    /// Inter-packet timeout of a request being reassembled; [`FRAME_TIMEOUT`] by default.
    pub frame_timeout: Duration,
    /// Channels remembered at most (at least [`MIN_CHANNELS`]).
    pub max_channels: usize,
    /// Whether vendor commands 0x40..=0x7F are handed to the caller; if not they are
    /// answered `ERR_INVALID_CMD`.
    pub vendor_commands: bool,
}

impl DeviceConfig {
    /// A configuration with the given INIT identity and default arbitration settings.
    pub fn new(device_version: DeviceVersion, capabilities: Capabilities) -> Self {
        Self {
            device_version,
            capabilities,
            frame_timeout: FRAME_TIMEOUT,
            max_channels: DEFAULT_MAX_CHANNELS,
            vendor_commands: false,
        }
    }
}

/// Something the caller must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A complete MSG, CBOR, WINK or (if enabled) vendor request. Process it, sending
    /// [`Device::keepalive`] at least every 100 ms meanwhile, then answer it with
    /// [`Device::respond`] or [`Device::respond_error`]. Until then other channels get
    /// `ERR_CHANNEL_BUSY`.
    Request(Message),
    /// `CTAPHID_CANCEL` for the CBOR request being processed on `cid` (§11.2.9.1.5): stop
    /// waiting for user presence and respond, typically with CTAP2 status
    /// `CTAP2_ERR_KEEPALIVE_CANCEL` (0x2D). The device never answers CANCEL itself.
    Cancel {
        /// The channel of the cancelled request.
        cid: u32,
    },
    /// A resync INIT aborted the request being processed on `cid` (§11.2.5.3): drop it and
    /// do not respond ([`Device::respond`] would say [`Error::NoPendingRequest`]).
    Aborted {
        /// The channel of the aborted request.
        cid: u32,
    },
}

/// What one input produced: reports to send, in order, and at most one event.
#[must_use]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// Reports to send to the host, in this order.
    pub reports: Vec<Report>,
    /// An event for the caller, if any.
    pub event: Option<Event>,
}

/// The device-side CTAPHID state machine (sans-IO).
///
/// Feed every received report to [`Device::handle_report`] with the current time, send
/// the returned reports, act on the returned [`Event`]. Call [`Device::handle_timeout`] when
/// [`Device::next_timeout`] has passed, so that a stalled request gets its
/// `ERR_MSG_TIMEOUT` even if no further report arrives.
///
/// Handled here: INIT (allocation on the broadcast channel, resync on an allocated one),
/// PING (echo), LOCK, CANCEL, and every error of fido.md §1.5:
///
/// | input | answer |
/// |---|---|
/// | continuation not continuing the pending request | nothing (ignored) |
/// | CANCEL, any channel, any state | nothing; [`Event::Cancel`] if it cancels |
/// | non-INIT on the broadcast channel | `ERR_INVALID_CHANNEL` on the broadcast channel |
/// | any init packet on channel 0 or an unallocated channel | `ERR_INVALID_CHANNEL` there |
/// | INIT with BCNT ≠ 8, any BCNT > 7609 | `ERR_INVALID_LEN` |
/// | non-INIT while another channel reassembles, is served or holds a LOCK | `ERR_CHANNEL_BUSY` |
/// | non-INIT while this channel's request is processed | `ERR_CHANNEL_BUSY` |
/// | non-INIT init packet while this channel's continuation is expected | `ERR_INVALID_SEQ` |
/// | continuation with the wrong SEQ | `ERR_INVALID_SEQ` |
/// | request not completed within the frame timeout | `ERR_MSG_TIMEOUT` |
/// | unknown or unsupported command, KEEPALIVE, ERROR | `ERR_INVALID_CMD` |
///
/// INIT is answered even while another channel is busy or holds a LOCK, and never
/// disturbs another channel's transaction (Google HIDTest `test_InitOther`,
/// `test_InitUnderLock`).
#[derive(Debug)]
pub struct Device<C = SequentialCids> {
    config: DeviceConfig,
    cid_source: C,
    channels: Channels,
    reassembler: Reassembler,
    transaction: Transaction,
    lock: Option<ChannelLock>,
}

/// The transaction state beyond reassembly, named by what it waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transaction {
    /// No request handed out; the reassembler may be collecting one.
    ExpectRequest,
    /// A request was handed to the caller; waiting for its response.
    ExpectResponse { cid: u32, cmd: Command },
}

/// A `CTAPHID_LOCK` in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ChannelLock {
    cid: u32,
    until: Timestamp,
}

impl<C: CidSource> Device<C> {
    /// A device with no channel allocated yet.
    pub fn new(config: DeviceConfig, cid_source: C) -> Self {
        let channels = Channels::new(config.max_channels.max(MIN_CHANNELS));
        let reassembler = Reassembler::with_frame_timeout(config.frame_timeout);
        Self {
            config,
            cid_source,
            channels,
            reassembler,
            transaction: Transaction::ExpectRequest,
            lock: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DeviceConfig {
        &self.config
    }

    /// Whether `cid` is an allocated channel.
    pub fn is_allocated(&self, cid: u32) -> bool {
        self.channels.contains(cid)
    }

    /// The channel and command of the request awaiting the caller's response, if any.
    pub fn awaiting_response(&self) -> Option<(u32, Command)> {
        match self.transaction {
            Transaction::ExpectRequest => None,
            Transaction::ExpectResponse { cid, cmd } => Some((cid, cmd)),
        }
    }

    /// The channel holding a LOCK at `now`, if any.
    pub fn locked_channel(&self, now: Timestamp) -> Option<u32> {
        self.lock
            .filter(|lock| now < lock.until)
            .map(|lock| lock.cid)
    }

    /// When [`Device::handle_timeout`] next has something to do.
    pub fn next_timeout(&self) -> Option<Timestamp> {
        self.reassembler.deadline()
    }

    /// Expires what is overdue at `now`: a stalled request gets `ERR_MSG_TIMEOUT`, an
    /// elapsed LOCK is released.
    pub fn handle_timeout(&mut self, now: Timestamp) -> Vec<Report> {
        let mut reports = Vec::new();
        self.expire(now, &mut reports);
        reports
    }

    /// Processes one report received from the host at `now`.
    pub fn handle_report(&mut self, now: Timestamp, report: &Report) -> Output {
        let mut out = Output::default();
        self.expire(now, &mut out.reports);
        let packet = Packet::parse(report);
        if let Packet::Init(init) = &packet {
            if init.cmd == Command::Cancel {
                // "Authenticators MUST NOT reply to this message" (§11.2.9.1.5).
                out.event = self.on_cancel(init);
                return out;
            }
            if let Err(refused) = self.admit(now, init) {
                out.reports.push(refused.report());
                return out;
            }
        }
        let pushed = self.reassembler.push_packet(now, &packet);
        // `expire` above already took any timeout; kept for totality.
        out.reports
            .extend(pushed.timed_out.map(|refused| refused.report()));
        match pushed.outcome {
            Outcome::NeedMore | Outcome::Ignored => {}
            Outcome::Refused(refused) => out.reports.push(refused.report()),
            Outcome::Complete(message) => self.dispatch(now, message, &mut out),
        }
        out
    }

    /// Answers the request awaiting a response on `cid` with `payload`, under the request's
    /// command. Ends the transaction.
    ///
    /// Fails with [`Error::NoPendingRequest`] if no request awaits on `cid` (it was aborted:
    /// drop the response) and [`Error::PayloadTooLong`] past 7609 bytes (the transaction
    /// stays open: answer with an error instead).
    pub fn respond(&mut self, cid: u32, payload: &[u8]) -> Result<Vec<Report>, Error> {
        let cmd = self.awaiting(cid)?;
        let reports = Fragments::new(cid, cmd, payload)?.collect();
        self.transaction = Transaction::ExpectRequest;
        Ok(reports)
    }

    /// Answers the request awaiting a response on `cid` with `CTAPHID_ERROR` `code`. Ends
    /// the transaction.
    pub fn respond_error(&mut self, cid: u32, code: ErrorCode) -> Result<Report, Error> {
        self.awaiting(cid)?;
        self.transaction = Transaction::ExpectRequest;
        Ok(error_report(cid, code))
    }

    /// A `CTAPHID_KEEPALIVE` report for the request being processed on `cid`
    /// (§11.2.9.1.7): send one at least every 100 ms and whenever the status changes.
    pub fn keepalive(&self, cid: u32, status: KeepaliveStatus) -> Result<Report, Error> {
        self.awaiting(cid)?;
        let mut data = [0; INIT_DATA_SIZE];
        data[0] = status.to_byte();
        Ok(InitPacket {
            cid,
            cmd: Command::Keepalive,
            bcnt: 1,
            data,
        }
        .encode())
    }

    fn awaiting(&self, cid: u32) -> Result<Command, Error> {
        match self.transaction {
            Transaction::ExpectResponse { cid: awaiting, cmd } if awaiting == cid => Ok(cmd),
            _ => Err(Error::NoPendingRequest(cid)),
        }
    }

    fn expire(&mut self, now: Timestamp, reports: &mut Vec<Report>) {
        reports.extend(self.reassembler.expire(now).map(|refused| refused.report()));
        if self.lock.is_some_and(|lock| now >= lock.until) {
            self.lock = None;
        }
    }

    /// CANCEL cancels the CBOR request being processed on its channel and is otherwise
    /// ignored (§11.2.9.1.5; fido.md §1.3). BCNT must be 0.
    fn on_cancel(&self, init: &InitPacket) -> Option<Event> {
        match self.transaction {
            Transaction::ExpectResponse {
                cid,
                cmd: Command::Cbor,
            } if cid == init.cid && init.bcnt == 0 => Some(Event::Cancel { cid }),
            _ => None,
        }
    }

    /// Channel validity and busy rules for a non-CANCEL init packet (§11.2.3, §11.2.5.1).
    fn admit(&mut self, now: Timestamp, init: &InitPacket) -> Result<(), Refused> {
        let refuse = |reason| Refused {
            cid: init.cid,
            reason,
        };
        if init.cid == BROADCAST_CID {
            return if init.cmd == Command::Init {
                Ok(())
            } else {
                Err(refuse(Refusal::BroadcastNotInit))
            };
        }
        if !self.channels.contains(init.cid) {
            return Err(refuse(Refusal::UnallocatedChannel(init.cid)));
        }
        self.channels.touch(init.cid);
        if init.cmd == Command::Init {
            return Ok(());
        }
        let processing = self.transaction != Transaction::ExpectRequest;
        let locked_by_other = self.locked_channel(now).is_some_and(|cid| cid != init.cid);
        if processing || locked_by_other {
            return Err(refuse(Refusal::Busy));
        }
        Ok(())
    }

    fn dispatch(&mut self, now: Timestamp, message: Message, out: &mut Output) {
        let caps = self.config.capabilities;
        let hand_over = match message.cmd {
            Command::Init => return self.on_init(message, out),
            Command::Ping => return send(&message, &mut out.reports),
            Command::Lock if caps.contains(Capabilities::LOCK) => {
                return self.on_lock(now, &message, &mut out.reports);
            }
            Command::Msg => !caps.contains(Capabilities::NMSG),
            Command::Cbor => caps.contains(Capabilities::CBOR),
            Command::Wink => caps.contains(Capabilities::WINK),
            Command::Vendor(_) => self.config.vendor_commands,
            // LOCK without the capability, CANCEL (handled before reassembly), KEEPALIVE and
            // ERROR (device → host only) and unknown codes.
            _ => false,
        };
        if hand_over {
            self.transaction = Transaction::ExpectResponse {
                cid: message.cid,
                cmd: message.cmd,
            };
            out.event = Some(Event::Request(message));
        } else {
            let reason = Refusal::UnsupportedCommand(message.cmd);
            out.reports.push(
                Refused {
                    cid: message.cid,
                    reason,
                }
                .report(),
            );
        }
    }

    /// INIT (§11.2.9.1.3): allocate on the broadcast channel, resync on an allocated one.
    fn on_init(&mut self, message: Message, out: &mut Output) {
        let Ok(nonce) = <[u8; INIT_NONCE_SIZE]>::try_from(message.payload.as_slice()) else {
            // The reassembler completes INIT only with BCNT 8; kept total.
            let len = u16::try_from(message.payload.len()).unwrap_or(u16::MAX);
            let refused = Refused {
                cid: message.cid,
                reason: Refusal::InitLength(len),
            };
            return out.reports.push(refused.report());
        };
        let cid = if message.cid == BROADCAST_CID {
            match self.allocate() {
                Some(cid) => cid,
                None => {
                    let refused = Refused {
                        cid: message.cid,
                        reason: Refusal::NoChannelAvailable,
                    };
                    return out.reports.push(refused.report());
                }
            }
        } else {
            if self.awaiting(message.cid).is_ok() {
                // §11.2.5.3: resync aborts the channel's transaction.
                self.transaction = Transaction::ExpectRequest;
                out.event = Some(Event::Aborted { cid: message.cid });
            }
            message.cid
        };
        let response = InitResponse {
            nonce,
            cid,
            protocol_version: CTAPHID_PROTOCOL_VERSION,
            device_version: self.config.device_version,
            capabilities: self.config.capabilities,
        };
        // The reply goes on the channel the INIT came on (broadcast or the resynced one).
        let reply = Message::new(message.cid, Command::Init, response.encode().to_vec());
        send(&reply, &mut out.reports);
    }

    fn allocate(&mut self) -> Option<u32> {
        let in_use = [
            self.reassembler.pending_cid(),
            self.awaiting_response().map(|(cid, _)| cid),
            self.lock.map(|lock| lock.cid),
        ];
        for _ in 0..MAX_CID_ATTEMPTS {
            let cid = self.cid_source.next_cid();
            if cid != RESERVED_CID && cid != BROADCAST_CID && !self.channels.contains(cid) {
                self.channels.insert(cid, &in_use);
                return Some(cid);
            }
        }
        None
    }

    /// LOCK (§11.2.9.2.2; fido.md §1.3): one byte of seconds, 0 releases, at most 10.
    /// Traffic does not extend a lock; the holder renews it with another LOCK (U2FHID: "an
    /// application requiring a longer lock has to send repeating lock commands"), as OpenSK.
    fn on_lock(&mut self, now: Timestamp, message: &Message, reports: &mut Vec<Report>) {
        let cid = message.cid;
        let result = match *message.payload.as_slice() {
            [0] => {
                self.lock = None;
                Ok(())
            }
            [seconds] if seconds <= MAX_LOCK_SECONDS => {
                let until = now.saturating_add(Duration::from_secs(seconds.into()));
                self.lock = Some(ChannelLock { cid, until });
                Ok(())
            }
            [seconds] => Err(Refusal::LockTooLong(seconds)),
            ref other => Err(Refusal::LockLength(other.len())),
        };
        match result {
            Ok(()) => send(&Message::new(cid, Command::Lock, Vec::new()), reports),
            Err(reason) => reports.push(Refused { cid, reason }.report()),
        }
    }
}

/// Appends the reports of a device-built reply.
fn send(message: &Message, reports: &mut Vec<Report>) {
    match message.fragments() {
        Ok(fragments) => reports.extend(fragments),
        // Unreachable: replies built here are PING echoes of reassembled requests (at most
        // 7609 bytes, canonical command) or short fixed messages. Answer rather than panic.
        Err(_) => reports.push(error_report(message.cid, ErrorCode::Other)),
    }
}

/// Allocated channels, least recently used first.
#[derive(Clone, Debug)]
struct Channels {
    lru: VecDeque<u32>,
    capacity: usize,
}

impl Channels {
    fn new(capacity: usize) -> Self {
        Self {
            lru: VecDeque::new(),
            capacity,
        }
    }

    fn contains(&self, cid: u32) -> bool {
        self.lru.contains(&cid)
    }

    fn touch(&mut self, cid: u32) {
        if let Some(position) = self.lru.iter().position(|&c| c == cid) {
            self.lru.remove(position);
            self.lru.push_back(cid);
        }
    }

    /// Adds `cid`, forgetting the least recently used channel not `in_use` if full.
    fn insert(&mut self, cid: u32, in_use: &[Option<u32>]) {
        if self.lru.len() >= self.capacity {
            let victim = self.lru.iter().position(|&c| !in_use.contains(&Some(c)));
            if let Some(position) = victim {
                self.lru.remove(position);
            }
        }
        self.lru.push_back(cid);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::message::defragment;
    use crate::packet::{CONT_DATA_SIZE, ContPacket};

    fn ms(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn config() -> DeviceConfig {
        DeviceConfig::new(
            DeviceVersion {
                major: 5,
                minor: 2,
                build: 1,
            },
            Capabilities::YUBIKEY_5,
        )
    }

    fn init(cid: u32, cmd: Command, payload: &[u8]) -> Report {
        Fragments::new(cid, cmd, payload).unwrap().next().unwrap()
    }

    fn raw_init(cid: u32, cmd: Command, bcnt: u16) -> Report {
        InitPacket {
            cid,
            cmd,
            bcnt,
            data: [0; INIT_DATA_SIZE],
        }
        .encode()
    }

    fn cont(cid: u32, seq: u8) -> Report {
        ContPacket {
            cid,
            seq,
            data: [0; CONT_DATA_SIZE],
        }
        .encode()
    }

    fn error(cid: u32, code: ErrorCode) -> Vec<Report> {
        vec![error_report(cid, code)]
    }

    /// Allocates a channel and returns it.
    fn open(device: &mut Device) -> u32 {
        let out = device.handle_report(ms(0), &init(BROADCAST_CID, Command::Init, &[1; 8]));
        let reply = defragment(&out.reports).unwrap();
        InitResponse::parse(&reply.payload).unwrap().cid
    }

    #[test]
    fn allocates_sequential_channels() {
        let mut device = Device::new(config(), SequentialCids::new());
        let nonce = [8, 7, 6, 5, 4, 3, 2, 1];
        let out = device.handle_report(ms(0), &init(BROADCAST_CID, Command::Init, &nonce));
        assert_eq!(out.event, None);
        let reply = defragment(&out.reports).unwrap();
        assert_eq!((reply.cid, reply.cmd), (BROADCAST_CID, Command::Init));
        let response = InitResponse::parse(&reply.payload).unwrap();
        assert_eq!(response.nonce, nonce);
        assert_eq!(response.cid, 1);
        assert_eq!(response.protocol_version, 2);
        assert_eq!(
            response.device_version,
            DeviceVersion {
                major: 5,
                minor: 2,
                build: 1
            }
        );
        assert_eq!(response.capabilities, Capabilities::YUBIKEY_5);
        assert_eq!(open(&mut device), 2);
        assert!(device.is_allocated(1) && device.is_allocated(2) && !device.is_allocated(3));
    }

    #[test]
    fn cid_source_candidates_are_filtered() {
        let mut candidates = vec![0x55, BROADCAST_CID, RESERVED_CID, 0x55, 0x66].into_iter();
        let source = move || candidates.next().unwrap_or(RESERVED_CID);
        let mut device = Device::new(config(), source);
        assert_eq!(open_with(&mut device), Ok(0x55));
        assert_eq!(open_with(&mut device), Ok(0x66));
        // The source is exhausted: only 0 from now on.
        assert_eq!(open_with(&mut device), Err(ErrorCode::Other));
    }

    fn open_with<C: CidSource>(device: &mut Device<C>) -> Result<u32, ErrorCode> {
        let out = device.handle_report(ms(0), &init(BROADCAST_CID, Command::Init, &[1; 8]));
        let reply = defragment(&out.reports).unwrap();
        match reply.cmd {
            Command::Init => Ok(InitResponse::parse(&reply.payload).unwrap().cid),
            _ => Err(ErrorCode::from_byte(reply.payload[0]).unwrap()),
        }
    }

    #[test]
    fn least_recently_used_idle_channel_is_forgotten() {
        let mut cfg = config();
        cfg.max_channels = 1; // raised to MIN_CHANNELS
        let mut device = Device::new(cfg, SequentialCids::new());
        let first: Vec<u32> = (0..MIN_CHANNELS).map(|_| open(&mut device)).collect();
        assert_eq!(first, [1, 2, 3, 4]);
        // Use channel 1 so that 2 is the least recently used.
        let ping = device.handle_report(ms(0), &init(1, Command::Ping, b"x"));
        assert_eq!(defragment(&ping.reports).unwrap().payload, b"x");
        assert_eq!(open(&mut device), 5);
        assert!(device.is_allocated(1) && !device.is_allocated(2));
        let out = device.handle_report(ms(0), &init(2, Command::Ping, b"x"));
        assert_eq!(out.reports, error(2, ErrorCode::InvalidChannel));
    }

    #[test]
    fn a_busy_channel_is_not_forgotten() {
        let mut cfg = config();
        cfg.max_channels = MIN_CHANNELS;
        let mut device = Device::new(cfg, SequentialCids::new());
        for _ in 0..MIN_CHANNELS {
            open(&mut device);
        }
        let out = device.handle_report(ms(0), &init(1, Command::Cbor, &[4]));
        assert!(matches!(out.event, Some(Event::Request(_))));
        open(&mut device);
        assert!(device.is_allocated(1) && !device.is_allocated(2));
    }

    #[test]
    fn hands_over_cbor_and_fragments_the_response() {
        let mut device = Device::new(config(), SequentialCids::new());
        let cid = open(&mut device);
        let out = device.handle_report(ms(0), &init(cid, Command::Cbor, &[0x04]));
        assert!(out.reports.is_empty());
        assert_eq!(
            out.event,
            Some(Event::Request(Message::new(cid, Command::Cbor, vec![4])))
        );
        assert_eq!(device.awaiting_response(), Some((cid, Command::Cbor)));
        let keepalive = device.keepalive(cid, KeepaliveStatus::UpNeeded).unwrap();
        assert_eq!(keepalive[..8], [0, 0, 0, 1, 0xBB, 0, 1, 2]);
        let reports = device.respond(cid, &[0u8; 100]).unwrap();
        assert_eq!(reports.len(), 2);
        assert_eq!(
            defragment(&reports).unwrap(),
            Message::new(cid, Command::Cbor, vec![0; 100])
        );
        assert_eq!(device.awaiting_response(), None);
        assert_eq!(device.respond(cid, &[]), Err(Error::NoPendingRequest(cid)));
        assert_eq!(
            device.keepalive(cid, KeepaliveStatus::Processing),
            Err(Error::NoPendingRequest(cid))
        );
    }

    #[test]
    fn over_long_response_keeps_the_transaction_open() {
        let mut device = Device::new(config(), SequentialCids::new());
        let cid = open(&mut device);
        let _ = device.handle_report(ms(0), &init(cid, Command::Cbor, &[0x04]));
        let too_long = vec![0; 7610];
        assert_eq!(
            device.respond(cid, &too_long),
            Err(Error::PayloadTooLong { len: 7610 })
        );
        assert_eq!(
            device.respond_error(cid, ErrorCode::Other),
            Ok(error_report(cid, ErrorCode::Other))
        );
        assert_eq!(device.awaiting_response(), None);
    }

    #[test]
    fn capabilities_decide_the_commands() {
        let mut device = Device::new(config(), SequentialCids::new());
        let cid = open(&mut device);
        let out = device.handle_report(ms(0), &init(cid, Command::Lock, &[3]));
        assert_eq!(out.reports, error(cid, ErrorCode::InvalidCmd));
        let out = device.handle_report(ms(0), &init(cid, Command::Vendor(0x41), &[]));
        assert_eq!(out.reports, error(cid, ErrorCode::InvalidCmd));
        for cmd in [Command::Keepalive, Command::Error, Command::Unknown(0x3C)] {
            let out = device.handle_report(ms(0), &init(cid, cmd, &[1]));
            assert_eq!(out.reports, error(cid, ErrorCode::InvalidCmd), "{cmd:?}");
        }
        let out = device.handle_report(ms(0), &init(cid, Command::Wink, &[]));
        assert_eq!(
            out.event,
            Some(Event::Request(Message::new(cid, Command::Wink, vec![])))
        );
        assert_eq!(device.respond(cid, &[]).unwrap().len(), 1);
        let out = device.handle_report(ms(0), &init(cid, Command::Msg, &[0; 10]));
        assert!(matches!(out.event, Some(Event::Request(_))));

        let mut cfg = config();
        cfg.capabilities = Capabilities::CBOR | Capabilities::NMSG;
        cfg.vendor_commands = true;
        let mut device = Device::new(cfg, SequentialCids::new());
        let cid = open(&mut device);
        for cmd in [Command::Msg, Command::Wink] {
            let out = device.handle_report(ms(0), &init(cid, cmd, &[]));
            assert_eq!(out.reports, error(cid, ErrorCode::InvalidCmd), "{cmd:?}");
        }
        let out = device.handle_report(ms(0), &init(cid, Command::Vendor(0x41), &[9]));
        assert_eq!(
            out.event,
            Some(Event::Request(Message::new(
                cid,
                Command::Vendor(0x41),
                vec![9]
            )))
        );
    }

    #[test]
    fn lock_rules() {
        let mut cfg = config();
        cfg.capabilities = cfg.capabilities | Capabilities::LOCK;
        let mut device = Device::new(cfg, SequentialCids::new());
        let a = open(&mut device);
        let b = open(&mut device);
        let lock = |secs: &[u8]| init(a, Command::Lock, secs);
        assert_eq!(
            device.handle_report(ms(0), &lock(&[])).reports,
            error(a, ErrorCode::InvalidLen)
        );
        assert_eq!(
            device.handle_report(ms(0), &lock(&[1, 2])).reports,
            error(a, ErrorCode::InvalidLen)
        );
        assert_eq!(
            device.handle_report(ms(0), &lock(&[11])).reports,
            error(a, ErrorCode::InvalidPar)
        );
        let out = device.handle_report(ms(0), &lock(&[3]));
        assert_eq!(
            defragment(&out.reports).unwrap(),
            Message::new(a, Command::Lock, vec![])
        );
        assert_eq!(device.locked_channel(ms(2_999)), Some(a));

        // Others are busy, INIT still works, the holder works.
        let ping_b = init(b, Command::Ping, b"b");
        assert_eq!(
            device.handle_report(ms(10), &ping_b).reports,
            error(b, ErrorCode::ChannelBusy)
        );
        let resync_b = device.handle_report(ms(10), &init(b, Command::Init, &[2; 8]));
        assert_eq!(defragment(&resync_b.reports).unwrap().cmd, Command::Init);
        assert_eq!(open(&mut device), 3);
        let ping_a = device.handle_report(ms(10), &init(a, Command::Ping, b"a"));
        assert_eq!(defragment(&ping_a.reports).unwrap().payload, b"a");

        // The lock expires by itself.
        let out = device.handle_report(ms(3_000), &ping_b);
        assert_eq!(defragment(&out.reports).unwrap().payload, b"b");

        // LOCK 0 releases early.
        let _ = device.handle_report(ms(4_000), &lock(&[10]));
        assert_eq!(
            device.handle_report(ms(4_001), &ping_b).reports,
            error(b, ErrorCode::ChannelBusy)
        );
        let _ = device.handle_report(ms(4_002), &lock(&[0]));
        assert_eq!(device.locked_channel(ms(4_003)), None);
        assert_eq!(
            defragment(&device.handle_report(ms(4_003), &ping_b).reports)
                .unwrap()
                .payload,
            b"b"
        );
    }

    #[test]
    fn cancel_is_never_answered() {
        let mut device = Device::new(config(), SequentialCids::new());
        let a = open(&mut device);
        let b = open(&mut device);
        let cancel = |cid| raw_init(cid, Command::Cancel, 0);
        // Nothing in progress; unallocated channel; broadcast.
        for cid in [a, 77, BROADCAST_CID, RESERVED_CID] {
            assert_eq!(device.handle_report(ms(0), &cancel(cid)), Output::default());
        }
        let _ = device.handle_report(ms(0), &init(a, Command::Cbor, &[2]));
        assert_eq!(device.handle_report(ms(1), &cancel(b)), Output::default());
        assert_eq!(
            device.handle_report(ms(1), &raw_init(a, Command::Cancel, 1)),
            Output::default()
        );
        let out = device.handle_report(ms(1), &cancel(a));
        assert_eq!(
            out,
            Output {
                reports: vec![],
                event: Some(Event::Cancel { cid: a })
            }
        );
        // The caller answers the cancelled request (CTAP2_ERR_KEEPALIVE_CANCEL).
        assert_eq!(device.respond(a, &[0x2D]).unwrap().len(), 1);
    }

    #[test]
    fn cancel_does_not_disturb_reassembly() {
        let mut device = Device::new(config(), SequentialCids::new());
        let a = open(&mut device);
        let _ = device.handle_report(ms(0), &raw_init(a, Command::Cbor, 100));
        assert_eq!(
            device.handle_report(ms(1), &raw_init(a, Command::Cancel, 0)),
            Output::default()
        );
        let out = device.handle_report(ms(2), &cont(a, 0));
        assert!(matches!(out.event, Some(Event::Request(_))));
    }

    #[test]
    fn cancel_only_cancels_cbor() {
        let mut device = Device::new(config(), SequentialCids::new());
        let a = open(&mut device);
        let _ = device.handle_report(ms(0), &init(a, Command::Msg, &[0; 7]));
        assert_eq!(
            device.handle_report(ms(1), &raw_init(a, Command::Cancel, 0)),
            Output::default()
        );
    }

    #[test]
    fn resync_aborts_the_request_being_processed() {
        let mut device = Device::new(config(), SequentialCids::new());
        let a = open(&mut device);
        let _ = device.handle_report(ms(0), &init(a, Command::Cbor, &[2]));
        let out = device.handle_report(ms(5), &init(a, Command::Init, &[3; 8]));
        assert_eq!(out.event, Some(Event::Aborted { cid: a }));
        let reply = defragment(&out.reports).unwrap();
        assert_eq!(reply.cid, a);
        assert_eq!(InitResponse::parse(&reply.payload).unwrap().cid, a);
        assert_eq!(device.respond(a, &[0]), Err(Error::NoPendingRequest(a)));
        let ping = device.handle_report(ms(6), &init(a, Command::Ping, b"ok"));
        assert_eq!(defragment(&ping.reports).unwrap().payload, b"ok");
    }

    #[test]
    fn same_channel_is_busy_while_its_request_is_processed() {
        let mut device = Device::new(config(), SequentialCids::new());
        let a = open(&mut device);
        let _ = device.handle_report(ms(0), &init(a, Command::Cbor, &[2]));
        let out = device.handle_report(ms(1), &init(a, Command::Ping, b"x"));
        assert_eq!(out.reports, error(a, ErrorCode::ChannelBusy));
        assert_eq!(device.awaiting_response(), Some((a, Command::Cbor)));
    }

    #[test]
    fn handle_timeout_answers_a_stalled_request() {
        let mut device = Device::new(config(), SequentialCids::new());
        let a = open(&mut device);
        let _ = device.handle_report(ms(100), &raw_init(a, Command::Ping, 99));
        assert_eq!(device.next_timeout(), Some(ms(600)));
        assert!(device.handle_timeout(ms(599)).is_empty());
        assert_eq!(
            device.handle_timeout(ms(600)),
            error(a, ErrorCode::MsgTimeout)
        );
        assert_eq!(device.next_timeout(), None);
        assert!(device.handle_timeout(ms(10_000)).is_empty());
    }
}
