//! One security key behind a [`Transport`]: CTAPHID channel allocation and resync, request
//! and response with keepalives, busy retries, CANCEL, deadlines; PING and WINK. The CTAP2
//! and U2F operations build on [`Authenticator::transact`] in `ctap2.rs` and `u2f.rs`.

use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};
use tokengate_ctap::ctap2::{GetInfoResponse, StatusCode};
use tokengate_ctaphid::{
    Capabilities, Command, ErrorCode, HostChannel, HostEvent, INIT_NONCE_SIZE, InitHandshake,
    InitReply, InitResponse, KeepaliveStatus,
};

use crate::address::DeviceAddress;
use crate::error::{Error, ProtocolError};
use crate::interaction::{CancelToken, Interaction, TOUCH_PROMPT, TouchCallback};
use crate::pin::PinProtocol;
use crate::transport::Transport;

/// How long CTAPHID_INIT may take. INIT is answered at once even by a busy key (CTAP 2.1
/// §11.2.9.1.3; Google HIDTest `test_InitOther`), so silence means nobody is there.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest single read, so that Ctrl-C and the deadline are noticed promptly.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// After CTAPHID_CANCEL, how long the key may take to answer the cancelled request (with
/// CTAP2_ERR_KEEPALIVE_CANCEL) before the channel is given up and resynchronised.
const CANCEL_GRACE: Duration = Duration::from_secs(1);
/// Delay before retrying a request refused with ERR_CHANNEL_BUSY ("The client SHOULD retry
/// the request after a short delay", CTAP 2.1 §11.2.9.1.6; python-fido2 uses 100 ms).
pub const BUSY_RETRY_DELAY: Duration = Duration::from_millis(100);
/// After this much silence while a response is awaited, ask the transport to probe.
const PROBE_AFTER: Duration = Duration::from_millis(500);
/// A key processing a request sends KEEPALIVE at least every 100 ms (CTAP 2.1
/// §11.2.9.1.7; fido.md §1.3); this long without any report means it is gone.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(3);

/// One security key, reached over one CTAPHID channel. Not `Sync`: one operation at a time.
pub struct Authenticator {
    transport: Box<dyn Transport>,
    address: DeviceAddress,
    channel: HostChannel,
    init: InitResponse,
    pub(crate) info: Option<GetInfoResponse>,
    pub(crate) interaction: Interaction,
    pub(crate) pin_protocol: Option<PinProtocol>,
    /// The channel may hold an abandoned transaction: resync before the next request.
    needs_resync: bool,
    pub(crate) rng: SystemRandom,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("address", &self.address)
            .field("cid", &self.channel.cid())
            .field("init", &self.init)
            .finish_non_exhaustive()
    }
}

/// Why the wait for a response stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Cancelled,
    TimedOut,
}

/// What one request/response exchange ended with, besides errors.
enum Exchanged {
    Response(Vec<u8>),
    Busy,
    InvalidChannel,
}

/// One operation's clock, cancellation and touch prompt (shown once).
pub(crate) struct Op {
    deadline: Instant,
    timeout: Duration,
    cancel: CancelToken,
    on_touch: TouchCallback,
    touch_prompted: bool,
}

impl Op {
    pub(crate) fn new(interaction: &Interaction) -> Self {
        Self {
            deadline: Instant::now() + interaction.timeout,
            timeout: interaction.timeout,
            cancel: interaction.cancel.clone(),
            on_touch: interaction.on_touch.clone(),
            touch_prompted: false,
        }
    }

    /// Starts the clock again (after the person typed a PIN: typing is not waiting for the
    /// key).
    pub(crate) fn restart_clock(&mut self) {
        self.deadline = Instant::now() + self.timeout;
    }

    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.cancel.is_cancelled() {
            Err(Error::Cancelled)
        } else if Instant::now() >= self.deadline {
            Err(self.timed_out())
        } else {
            Ok(())
        }
    }

    pub(crate) fn prompt_touch(&mut self) {
        if !self.touch_prompted {
            self.touch_prompted = true;
            (self.on_touch)(TOUCH_PROMPT);
        }
    }

    /// Sleeps `duration` or until the deadline, waking early on cancellation.
    pub(crate) fn sleep(&self, duration: Duration) -> Result<(), Error> {
        let until = (Instant::now() + duration).min(self.deadline);
        loop {
            if self.cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            std::thread::sleep(left.min(Duration::from_millis(20)));
        }
    }

    fn timed_out(&self) -> Error {
        Error::TimedOut {
            after: self.timeout,
        }
    }

    fn stopped(&self, stop: Stop) -> Error {
        match stop {
            Stop::Cancelled => Error::Cancelled,
            Stop::TimedOut => self.timed_out(),
        }
    }
}

/// The outcome of one CTAPHID_INIT.
enum InitOutcome {
    Ready(InitResponse),
    Refused(ErrorCode),
    NoAnswer,
}

impl Authenticator {
    /// Allocates a CTAPHID channel on the key behind `transport` (CTAPHID_INIT on the
    /// broadcast channel). `address` is only for messages.
    pub fn connect(
        transport: Box<dyn Transport>,
        address: DeviceAddress,
        interaction: Interaction,
    ) -> Result<Self, Error> {
        let rng = SystemRandom::new();
        let mut transport = transport;
        let deadline = Instant::now() + interaction.timeout.min(INIT_TIMEOUT);
        let handshake = InitHandshake::allocate(nonce(&rng)?);
        let outcome = init_exchange(&mut *transport, &handshake, deadline, &interaction.cancel);
        let init = match outcome {
            Ok(InitOutcome::Ready(init)) => init,
            // A UDP port nobody listens on answers "connection refused".
            Err(Error::Disconnected(_)) => {
                return Err(Error::Unreachable {
                    address: address.to_string(),
                    reason: "nothing answers there (for the simulator: is firmware-sim \
                             running on that port?)"
                        .into(),
                });
            }
            Err(e) => return Err(e),
            Ok(InitOutcome::Refused(code)) => {
                return Err(Error::Unreachable {
                    address: address.to_string(),
                    reason: format!("CTAPHID_INIT was refused with {code:?}"),
                });
            }
            Ok(InitOutcome::NoAnswer) => {
                return Err(Error::Unreachable {
                    address: address.to_string(),
                    reason: "no answer to CTAPHID_INIT (for the simulator: is firmware-sim \
                             running on that port?)"
                        .into(),
                });
            }
        };
        Ok(Self {
            transport,
            address,
            channel: HostChannel::new(init.cid)?,
            init,
            info: None,
            interaction,
            pin_protocol: None,
            needs_resync: false,
            rng,
        })
    }

    /// The address the key was opened at.
    pub fn address(&self) -> &DeviceAddress {
        &self.address
    }

    /// The CTAPHID_INIT response: channel, device version, capabilities.
    pub fn init_response(&self) -> &InitResponse {
        &self.init
    }

    /// The CTAPHID capabilities (WINK, CBOR, NMSG).
    pub fn capabilities(&self) -> Capabilities {
        self.init.capabilities
    }

    /// Whether the key speaks CTAP2 (CTAPHID_CBOR).
    pub fn has_ctap2(&self) -> bool {
        self.init.capabilities.contains(Capabilities::CBOR)
    }

    /// Whether the key speaks U2F / CTAP1 (CTAPHID_MSG; the NMSG flag is clear).
    pub fn has_u2f(&self) -> bool {
        !self.init.capabilities.contains(Capabilities::NMSG)
    }

    /// The people-and-time settings.
    pub fn interaction(&self) -> &Interaction {
        &self.interaction
    }

    /// Replaces the people-and-time settings.
    pub fn set_interaction(&mut self, interaction: Interaction) {
        self.interaction = interaction;
    }

    /// Forces a PIN/UV auth protocol instead of the first one the key lists that this crate
    /// implements.
    pub fn set_pin_protocol(&mut self, protocol: Option<PinProtocol>) {
        self.pin_protocol = protocol;
    }

    /// CTAPHID_PING: the key echoes `data` (at most 7609 bytes).
    pub fn ping(&mut self, data: &[u8]) -> Result<(), Error> {
        let mut op = self.op();
        let echo = self.transact(&mut op, Command::Ping, data)?;
        if echo != data {
            return Err(Error::unexpected("the PING echo differs from the request"));
        }
        Ok(())
    }

    /// CTAPHID_WINK: the key blinks so that the person can tell which one it is.
    pub fn wink(&mut self) -> Result<(), Error> {
        if !self.init.capabilities.contains(Capabilities::WINK) {
            return Err(Error::Unsupported(
                "WINK (it does not advertise the capability)",
            ));
        }
        let mut op = self.op();
        self.transact(&mut op, Command::Wink, &[])?;
        Ok(())
    }

    pub(crate) fn op(&self) -> Op {
        Op::new(&self.interaction)
    }

    /// One request and its response on this channel: keepalives shown as a touch prompt,
    /// ERR_CHANNEL_BUSY retried every 100 ms until the deadline ([`Error::DeviceBusy`]), a
    /// forgotten channel (ERR_INVALID_CHANNEL) reallocated once, Ctrl-C and the deadline
    /// answered with CTAPHID_CANCEL for CBOR requests.
    pub(crate) fn transact(
        &mut self,
        op: &mut Op,
        cmd: Command,
        payload: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let mut reallocated = false;
        loop {
            op.check()?;
            if self.needs_resync {
                self.resync(op)?;
            }
            match self.exchange(op, cmd, payload)? {
                Exchanged::Response(payload) => return Ok(payload),
                Exchanged::Busy => {
                    if Instant::now() + BUSY_RETRY_DELAY >= op.deadline {
                        return Err(Error::DeviceBusy);
                    }
                    op.sleep(BUSY_RETRY_DELAY)?;
                }
                Exchanged::InvalidChannel if !reallocated => {
                    reallocated = true;
                    self.allocate(op)?;
                }
                Exchanged::InvalidChannel => {
                    return Err(ProtocolError::Ctaphid(ErrorCode::InvalidChannel).into());
                }
            }
        }
    }

    fn exchange(&mut self, op: &mut Op, cmd: Command, payload: &[u8]) -> Result<Exchanged, Error> {
        let reports: Vec<_> = self.channel.request(cmd, payload)?.collect();
        for report in &reports {
            if let Err(e) = self.transport.write_report(report) {
                self.abandon();
                return Err(e);
            }
        }
        let mut stopping: Option<(Stop, Instant)> = None;
        let mut last_heard = Instant::now();
        let mut last_probe = last_heard;
        loop {
            let now = Instant::now();
            if stopping.is_none() {
                let stop = if op.cancel.is_cancelled() {
                    Some(Stop::Cancelled)
                } else if now >= op.deadline {
                    Some(Stop::TimedOut)
                } else {
                    None
                };
                if let Some(stop) = stop {
                    if cmd != Command::Cbor {
                        // Only CBOR requests can be cancelled (§11.2.9.1.5); for the rest
                        // the channel is resynchronised before its next use.
                        self.abandon();
                        return Err(op.stopped(stop));
                    }
                    let cancel = self.channel.cancel();
                    if let Err(e) = self.transport.write_report(&cancel) {
                        self.abandon();
                        return Err(e);
                    }
                    stopping = Some((stop, now + CANCEL_GRACE));
                }
            }
            let until = match stopping {
                Some((stop, until)) if now >= until => {
                    self.abandon();
                    return Err(op.stopped(stop));
                }
                Some((_, until)) => until,
                None => op.deadline,
            };
            let report = match self.transport.read_report(until.min(now + POLL_INTERVAL)) {
                Ok(report) => report,
                Err(e) => {
                    self.abandon();
                    return Err(e);
                }
            };
            let Some(report) = report else {
                let now = Instant::now();
                let silent = now.saturating_duration_since(last_heard);
                if silent >= SILENCE_LIMIT {
                    self.abandon();
                    return Err(Error::Disconnected(format!(
                        "no keepalive or response for {} s",
                        silent.as_secs()
                    )));
                }
                if silent >= PROBE_AFTER && now.saturating_duration_since(last_probe) >= PROBE_AFTER
                {
                    last_probe = now;
                    if let Err(e) = self.transport.probe() {
                        self.abandon();
                        return Err(e);
                    }
                }
                continue;
            };
            last_heard = Instant::now();
            match self.channel.receive(&report) {
                Err(e) => {
                    // The channel is idle again, but the key may still be sending.
                    self.needs_resync = true;
                    return Err(e.into());
                }
                Ok(HostEvent::Ignored | HostEvent::NeedMore) => {}
                Ok(HostEvent::Keepalive(KeepaliveStatus::UpNeeded)) => op.prompt_touch(),
                Ok(HostEvent::Keepalive(_)) => {}
                Ok(HostEvent::Response(message)) => {
                    let cancelled = u8::from(StatusCode::KeepaliveCancel);
                    if let Some((stop, _)) = stopping
                        && message.payload.first() == Some(&cancelled)
                    {
                        return Err(op.stopped(stop));
                    }
                    return Ok(Exchanged::Response(message.payload));
                }
                Ok(HostEvent::DeviceError(ErrorCode::ChannelBusy)) => return Ok(Exchanged::Busy),
                Ok(HostEvent::DeviceError(ErrorCode::InvalidChannel)) => {
                    return Ok(Exchanged::InvalidChannel);
                }
                Ok(HostEvent::DeviceError(code)) => {
                    return Err(ProtocolError::Ctaphid(code).into());
                }
            }
        }
    }

    fn abandon(&mut self) {
        self.channel.abandon();
        self.needs_resync = true;
    }

    /// CTAPHID_INIT on our own channel: aborts whatever the key still does for it and
    /// flushes late reports (§11.2.5.3). A key that forgot the channel gets a new one.
    fn resync(&mut self, op: &Op) -> Result<(), Error> {
        let handshake = InitHandshake::resync(self.channel.cid(), nonce(&self.rng)?)?;
        let deadline = op.deadline.min(Instant::now() + INIT_TIMEOUT);
        match init_exchange(&mut *self.transport, &handshake, deadline, &op.cancel)? {
            InitOutcome::Ready(init) => {
                self.channel = HostChannel::new(init.cid)?;
                self.needs_resync = false;
                Ok(())
            }
            InitOutcome::Refused(ErrorCode::InvalidChannel) => self.allocate(op),
            InitOutcome::Refused(code) => Err(ProtocolError::Ctaphid(code).into()),
            InitOutcome::NoAnswer => Err(Error::Disconnected("no answer to CTAPHID_INIT".into())),
        }
    }

    /// A new channel (the key forgot ours, or was restarted).
    fn allocate(&mut self, op: &Op) -> Result<(), Error> {
        let handshake = InitHandshake::allocate(nonce(&self.rng)?);
        let deadline = op.deadline.min(Instant::now() + INIT_TIMEOUT);
        match init_exchange(&mut *self.transport, &handshake, deadline, &op.cancel)? {
            InitOutcome::Ready(init) => {
                self.channel = HostChannel::new(init.cid)?;
                self.init = init;
                self.needs_resync = false;
                Ok(())
            }
            InitOutcome::Refused(code) => Err(ProtocolError::Ctaphid(code).into()),
            InitOutcome::NoAnswer => Err(Error::Disconnected("no answer to CTAPHID_INIT".into())),
        }
    }
}

fn nonce(rng: &SystemRandom) -> Result<[u8; INIT_NONCE_SIZE], Error> {
    let mut nonce = [0u8; INIT_NONCE_SIZE];
    rng.fill(&mut nonce)
        .map_err(|_| Error::unexpected("the system random source failed"))?;
    Ok(nonce)
}

/// Sends an INIT and waits for its reply, skipping everything else (other channels, late
/// responses of an abandoned request).
fn init_exchange(
    transport: &mut dyn Transport,
    handshake: &InitHandshake,
    deadline: Instant,
    cancel: &CancelToken,
) -> Result<InitOutcome, Error> {
    transport.write_report(&handshake.request())?;
    loop {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(InitOutcome::NoAnswer);
        }
        let Some(report) = transport.read_report(deadline.min(now + POLL_INTERVAL))? else {
            continue;
        };
        match handshake.receive(&report)? {
            InitReply::Ignored => {}
            InitReply::Ready(init) => return Ok(InitOutcome::Ready(init)),
            InitReply::DeviceError(code) => return Ok(InitOutcome::Refused(code)),
        }
    }
}
