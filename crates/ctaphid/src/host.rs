//! The host side: INIT handshake, requests, and responses reassembled on one channel while
//! other channels' traffic is skipped (CTAP 2.1 §11.2; fido.md §1.2, §1.3).
//!
//! No timeouts are kept here: how long to wait for a response (touch prompts take up to
//! 30 s, with keepalives every 100 ms) is the bridge's policy, applied around
//! [`HostChannel::receive`].

use crate::command::{Command, ErrorCode, KeepaliveStatus};
use crate::error::{Error, Malformed};
use crate::init::{INIT_NONCE_SIZE, INIT_RESPONSE_SIZE, InitResponse};
use crate::message::{Fragments, Message, Partial, Progress, SeqMismatch};
use crate::packet::{BROADCAST_CID, INIT_DATA_SIZE, InitPacket, Packet, RESERVED_CID, Report};

/// One `CTAPHID_INIT` exchange: allocation on the broadcast channel, or resync of an
/// allocated channel (§11.2.9.1.3). The nonce comes from the caller's random source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitHandshake {
    cid: u32,
    nonce: [u8; INIT_NONCE_SIZE],
}

/// What a report means to an [`InitHandshake`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitReply {
    /// Not the reply: another channel, another host's nonce, or a leftover message.
    Ignored,
    /// The reply: use `response.cid` (equal to the resynced channel for a resync).
    Ready(InitResponse),
    /// The device answered `CTAPHID_ERROR` on the handshake's channel. On the broadcast
    /// channel this may be another host's error; python-fido2 fails the same way.
    DeviceError(ErrorCode),
}

impl InitHandshake {
    /// Allocation of a new channel: INIT on the broadcast channel.
    pub fn allocate(nonce: [u8; INIT_NONCE_SIZE]) -> Self {
        Self {
            cid: BROADCAST_CID,
            nonce,
        }
    }

    /// Resynchronisation of channel `cid`: INIT on that channel aborts its transaction
    /// (§11.2.5.3). Channel 0 and the broadcast channel are refused.
    pub fn resync(cid: u32, nonce: [u8; INIT_NONCE_SIZE]) -> Result<Self, Error> {
        check_usable(cid)?;
        Ok(Self { cid, nonce })
    }

    /// The channel the INIT goes on.
    pub fn cid(&self) -> u32 {
        self.cid
    }

    /// The nonce.
    pub fn nonce(&self) -> [u8; INIT_NONCE_SIZE] {
        self.nonce
    }

    /// The INIT request report.
    pub fn request(&self) -> Report {
        let mut data = [0; INIT_DATA_SIZE];
        for (slot, byte) in data.iter_mut().zip(self.nonce) {
            *slot = byte;
        }
        let bcnt = INIT_NONCE_SIZE as u16;
        InitPacket {
            cid: self.cid,
            cmd: Command::Init,
            bcnt,
            data,
        }
        .encode()
    }

    /// Looks at one received report.
    ///
    /// Fails on a malformed INIT response or ERROR message on this channel, and on a resync
    /// reply that names another channel.
    pub fn receive(&self, report: &Report) -> Result<InitReply, Error> {
        let Packet::Init(init) = Packet::parse(report) else {
            return Ok(InitReply::Ignored);
        };
        if init.cid != self.cid {
            return Ok(InitReply::Ignored);
        }
        match init.cmd {
            Command::Init => {
                let response = InitResponse::parse(single_packet_payload(&init)?)?;
                if response.nonce != self.nonce {
                    return Ok(InitReply::Ignored);
                }
                if self.cid != BROADCAST_CID && response.cid != self.cid {
                    let mismatch = Malformed::ResyncCidMismatch {
                        expected: self.cid,
                        got: response.cid,
                    };
                    return Err(mismatch.into());
                }
                Ok(InitReply::Ready(response))
            }
            Command::Error => Ok(InitReply::DeviceError(error_code(&init)?)),
            _ => Ok(InitReply::Ignored),
        }
    }
}

/// What a received report meant to a [`HostChannel`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostEvent {
    /// Not for this channel, or not expected (a stray continuation, a leftover message while
    /// no request is outstanding).
    Ignored,
    /// Part of the response; more packets follow.
    NeedMore,
    /// `CTAPHID_KEEPALIVE`: the device is still working (`UpNeeded`: ask for a touch).
    Keepalive(KeepaliveStatus),
    /// The complete response; the channel is idle again.
    Response(Message),
    /// `CTAPHID_ERROR` instead of a response; the channel is idle again.
    /// `ChannelBusy` means: retry after a short delay (python-fido2 retries every 100 ms).
    DeviceError(ErrorCode),
}

/// A host's view of one allocated channel: one request at a time, its response reassembled.
#[derive(Clone, Debug)]
pub struct HostChannel {
    cid: u32,
    state: HostState,
}

/// Named by what the channel waits for.
#[derive(Clone, Debug)]
enum HostState {
    /// No request outstanding.
    Idle,
    /// Waiting for the first packet of the response to a `cmd` request.
    ExpectResponse { cmd: Command },
    /// Waiting for the continuation packets of the response.
    ExpectContinuation { partial: Partial },
}

impl HostChannel {
    /// A channel allocated by an INIT handshake (`InitResponse::cid`). Channel 0 and the
    /// broadcast channel are refused.
    pub fn new(cid: u32) -> Result<Self, Error> {
        check_usable(cid)?;
        Ok(Self {
            cid,
            state: HostState::Idle,
        })
    }

    /// The channel.
    pub fn cid(&self) -> u32 {
        self.cid
    }

    /// Whether a request awaits its response.
    pub fn is_awaiting_response(&self) -> bool {
        !matches!(self.state, HostState::Idle)
    }

    /// The reports of a request; the channel then expects the response.
    ///
    /// `cmd` is what the host may send and expect an answer to: PING, MSG, LOCK, WINK, CBOR
    /// or a vendor command. INIT goes through [`InitHandshake`], CANCEL through
    /// [`HostChannel::cancel`]. Fails with [`Error::RequestOutstanding`] while the previous
    /// request is unanswered (see [`HostChannel::abandon`]).
    pub fn request<'a>(&mut self, cmd: Command, payload: &'a [u8]) -> Result<Fragments<'a>, Error> {
        if self.is_awaiting_response() {
            return Err(Error::RequestOutstanding);
        }
        match cmd {
            Command::Init | Command::Cancel | Command::Keepalive | Command::Error => {
                return Err(Error::NotARequest(cmd));
            }
            _ => {}
        }
        let fragments = Fragments::new(self.cid, cmd, payload)?;
        self.state = HostState::ExpectResponse { cmd };
        Ok(fragments)
    }

    /// A `CTAPHID_CANCEL` report (§11.2.9.1.5). The outstanding CBOR request still gets a
    /// response, normally CTAP2 status `CTAP2_ERR_KEEPALIVE_CANCEL` (0x2D); keep receiving.
    pub fn cancel(&self) -> Report {
        InitPacket {
            cid: self.cid,
            cmd: Command::Cancel,
            bcnt: 0,
            data: [0; INIT_DATA_SIZE],
        }
        .encode()
    }

    /// Forgets the outstanding request (after the caller's own timeout, say). A late
    /// response may still arrive; a resync via [`InitHandshake::resync`] flushes the device.
    pub fn abandon(&mut self) {
        self.state = HostState::Idle;
    }

    /// Looks at one received report.
    ///
    /// Reports on other channels are [`HostEvent::Ignored`]. Fails, and returns to idle, on
    /// a response that breaks framing: an init packet where a continuation belongs, a wrong
    /// SEQ, BCNT over 7609, a KEEPALIVE or ERROR that is not one byte, an unknown error code,
    /// or a command other than the request's.
    pub fn receive(&mut self, report: &Report) -> Result<HostEvent, Error> {
        let packet = Packet::parse(report);
        if packet.cid() != self.cid {
            return Ok(HostEvent::Ignored);
        }
        match (core::mem::replace(&mut self.state, HostState::Idle), packet) {
            (HostState::Idle, _) => Ok(HostEvent::Ignored),
            (HostState::ExpectResponse { cmd }, Packet::Cont(_)) => {
                // Stray continuation (§11.2.5.4).
                self.state = HostState::ExpectResponse { cmd };
                Ok(HostEvent::Ignored)
            }
            (HostState::ExpectResponse { cmd }, Packet::Init(init)) => {
                self.first_packet(cmd, &init)
            }
            (HostState::ExpectContinuation { .. }, Packet::Init(_)) => {
                Err(Malformed::ExpectedContinuation.into())
            }
            (HostState::ExpectContinuation { partial }, Packet::Cont(cont)) => {
                match partial.push(&cont) {
                    Ok(progress) => Ok(self.progress(progress)),
                    Err(SeqMismatch { expected, got }) => {
                        Err(Malformed::WrongSequence { expected, got }.into())
                    }
                }
            }
        }
    }

    fn first_packet(&mut self, cmd: Command, init: &InitPacket) -> Result<HostEvent, Error> {
        match init.cmd {
            Command::Keepalive => {
                let status = KeepaliveStatus::from_byte(one_byte(init)?);
                self.state = HostState::ExpectResponse { cmd };
                Ok(HostEvent::Keepalive(status))
            }
            Command::Error => Ok(HostEvent::DeviceError(error_code(init)?)),
            got if got == cmd => {
                let progress = Partial::start(init).map_err(Malformed::MessageTooLong)?;
                Ok(self.progress(progress))
            }
            got => Err(Malformed::UnexpectedCommand { expected: cmd, got }.into()),
        }
    }

    fn progress(&mut self, progress: Progress) -> HostEvent {
        match progress {
            Progress::Complete(message) => HostEvent::Response(message),
            Progress::Incomplete(partial) => {
                self.state = HostState::ExpectContinuation { partial };
                HostEvent::NeedMore
            }
        }
    }
}

fn check_usable(cid: u32) -> Result<(), Error> {
    if cid == RESERVED_CID || cid == BROADCAST_CID {
        return Err(Error::UnusableCid(cid));
    }
    Ok(())
}

/// The payload of a message that must fit its init packet (the 17-byte INIT response).
fn single_packet_payload(init: &InitPacket) -> Result<&[u8], Malformed> {
    init.data
        .get(..usize::from(init.bcnt))
        .ok_or(Malformed::BadLength {
            cmd: init.cmd,
            len: init.bcnt,
            expected: INIT_RESPONSE_SIZE as u16,
        })
}

/// The single payload byte of a KEEPALIVE or ERROR message.
fn one_byte(init: &InitPacket) -> Result<u8, Malformed> {
    let [byte, ..] = init.data;
    if init.bcnt != 1 {
        return Err(Malformed::BadLength {
            cmd: init.cmd,
            len: init.bcnt,
            expected: 1,
        });
    }
    Ok(byte)
}

fn error_code(init: &InitPacket) -> Result<ErrorCode, Malformed> {
    let byte = one_byte(init)?;
    ErrorCode::from_byte(byte).ok_or(Malformed::UnknownErrorCode(byte))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::command::{Capabilities, DeviceVersion};
    use crate::error::error_report;
    use crate::init::CTAPHID_PROTOCOL_VERSION;
    use crate::packet::{CONT_DATA_SIZE, ContPacket};

    const NONCE: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

    fn init_reply(on: u32, nonce: [u8; 8], cid: u32) -> Report {
        let response = InitResponse {
            nonce,
            cid,
            protocol_version: CTAPHID_PROTOCOL_VERSION,
            device_version: DeviceVersion {
                major: 5,
                minor: 2,
                build: 1,
            },
            capabilities: Capabilities::YUBIKEY_5,
        };
        let payload = response.encode();
        Fragments::new(on, Command::Init, &payload)
            .unwrap()
            .next()
            .unwrap()
    }

    fn one(cid: u32, cmd: Command, payload: &[u8]) -> Report {
        Fragments::new(cid, cmd, payload).unwrap().next().unwrap()
    }

    #[test]
    fn init_request_layout() {
        let report = InitHandshake::allocate(NONCE).request();
        assert_eq!(
            report[..15],
            [0xFF, 0xFF, 0xFF, 0xFF, 0x86, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]
        );
        assert!(report[15..].iter().all(|&b| b == 0));
    }

    #[test]
    fn allocation_skips_other_hosts_and_channels() {
        let handshake = InitHandshake::allocate(NONCE);
        let other_nonce = init_reply(BROADCAST_CID, [9; 8], 7);
        assert_eq!(handshake.receive(&other_nonce), Ok(InitReply::Ignored));
        assert_eq!(
            handshake.receive(&init_reply(5, NONCE, 5)),
            Ok(InitReply::Ignored)
        );
        let keepalive = one(BROADCAST_CID, Command::Keepalive, &[1]);
        assert_eq!(handshake.receive(&keepalive), Ok(InitReply::Ignored));
        let cont = ContPacket {
            cid: BROADCAST_CID,
            seq: 0,
            data: [0; CONT_DATA_SIZE],
        };
        assert_eq!(handshake.receive(&cont.encode()), Ok(InitReply::Ignored));
        let InitReply::Ready(response) = handshake
            .receive(&init_reply(BROADCAST_CID, NONCE, 7))
            .unwrap()
        else {
            panic!("expected the INIT reply");
        };
        assert_eq!(response.cid, 7);
        let busy = error_report(BROADCAST_CID, ErrorCode::Other);
        assert_eq!(
            handshake.receive(&busy),
            Ok(InitReply::DeviceError(ErrorCode::Other))
        );
    }

    #[test]
    fn init_replies_are_checked() {
        let handshake = InitHandshake::allocate(NONCE);
        let mut long = init_reply(BROADCAST_CID, NONCE, 7);
        long[6] = 58;
        assert!(matches!(
            handshake.receive(&long),
            Err(Error::Malformed(Malformed::BadLength {
                cmd: Command::Init,
                len: 58,
                ..
            }))
        ));
        let zero = init_reply(BROADCAST_CID, NONCE, 0);
        assert_eq!(
            handshake.receive(&zero),
            Err(Malformed::UnusableCid(0).into())
        );
        let resync = InitHandshake::resync(5, NONCE).unwrap();
        assert_eq!(
            resync.receive(&init_reply(5, NONCE, 5)).unwrap(),
            InitReply::Ready(InitResponse::parse(&init_reply(5, NONCE, 5)[7..24]).unwrap())
        );
        let moved = init_reply(5, NONCE, 6);
        let mismatch = Malformed::ResyncCidMismatch {
            expected: 5,
            got: 6,
        };
        assert_eq!(resync.receive(&moved), Err(mismatch.into()));
        assert_eq!(InitHandshake::resync(0, NONCE), Err(Error::UnusableCid(0)));
        assert_eq!(
            InitHandshake::resync(BROADCAST_CID, NONCE),
            Err(Error::UnusableCid(BROADCAST_CID))
        );
    }

    #[test]
    fn request_response_with_keepalives() {
        let mut host = HostChannel::new(7).unwrap();
        let reports: Vec<_> = host.request(Command::Cbor, &[4]).unwrap().collect();
        assert_eq!(reports.len(), 1);
        assert!(host.is_awaiting_response());
        assert_eq!(
            host.request(Command::Cbor, &[4]).unwrap_err(),
            Error::RequestOutstanding
        );
        let up = one(7, Command::Keepalive, &[2]);
        assert_eq!(
            host.receive(&up),
            Ok(HostEvent::Keepalive(KeepaliveStatus::UpNeeded))
        );
        assert_eq!(
            host.receive(&one(8, Command::Cbor, &[0])),
            Ok(HostEvent::Ignored)
        );
        let stray = ContPacket {
            cid: 7,
            seq: 3,
            data: [0; CONT_DATA_SIZE],
        }
        .encode();
        assert_eq!(host.receive(&stray), Ok(HostEvent::Ignored));
        let response = Message::new(7, Command::Cbor, (0..150).map(|i| i as u8).collect());
        let mut parts = response.fragments().unwrap();
        assert_eq!(
            host.receive(&parts.next().unwrap()),
            Ok(HostEvent::NeedMore)
        );
        assert_eq!(
            host.receive(&one(9, Command::Cbor, &[0])),
            Ok(HostEvent::Ignored)
        );
        assert_eq!(
            host.receive(&parts.next().unwrap()),
            Ok(HostEvent::NeedMore)
        );
        assert_eq!(
            host.receive(&parts.next().unwrap()),
            Ok(HostEvent::Response(response))
        );
        assert!(!host.is_awaiting_response());
        assert_eq!(
            host.receive(&one(7, Command::Cbor, &[0])),
            Ok(HostEvent::Ignored)
        );
    }

    #[test]
    fn device_errors_end_the_request() {
        let mut host = HostChannel::new(7).unwrap();
        let _ = host.request(Command::Ping, b"hi").unwrap();
        let busy = error_report(7, ErrorCode::ChannelBusy);
        assert_eq!(
            host.receive(&busy),
            Ok(HostEvent::DeviceError(ErrorCode::ChannelBusy))
        );
        assert!(!host.is_awaiting_response());
    }

    #[test]
    fn malformed_responses_fail_and_reset() {
        let mut host = HostChannel::new(7).unwrap();
        let cases: [(Report, Error); 5] = [
            (
                one(7, Command::Error, &[0x42]),
                Malformed::UnknownErrorCode(0x42).into(),
            ),
            (
                one(7, Command::Keepalive, &[1, 2]),
                Malformed::BadLength {
                    cmd: Command::Keepalive,
                    len: 2,
                    expected: 1,
                }
                .into(),
            ),
            (
                one(7, Command::Error, &[]),
                Malformed::BadLength {
                    cmd: Command::Error,
                    len: 0,
                    expected: 1,
                }
                .into(),
            ),
            (
                one(7, Command::Wink, &[]),
                Malformed::UnexpectedCommand {
                    expected: Command::Ping,
                    got: Command::Wink,
                }
                .into(),
            ),
            (
                InitPacket {
                    cid: 7,
                    cmd: Command::Ping,
                    bcnt: 7610,
                    data: [0; 57],
                }
                .encode(),
                Malformed::MessageTooLong(7610).into(),
            ),
        ];
        for (report, expected) in cases {
            let _ = host.request(Command::Ping, b"x").unwrap();
            assert_eq!(host.receive(&report), Err(expected));
            assert!(!host.is_awaiting_response());
        }

        let long = Message::new(7, Command::Ping, vec![0; 100]);
        let parts: Vec<_> = long.fragments().unwrap().collect();
        let _ = host.request(Command::Ping, &long.payload).unwrap();
        assert_eq!(host.receive(&parts[0]), Ok(HostEvent::NeedMore));
        assert_eq!(
            host.receive(&parts[0]),
            Err(Malformed::ExpectedContinuation.into())
        );
        let _ = host.request(Command::Ping, &long.payload).unwrap();
        assert_eq!(host.receive(&parts[0]), Ok(HostEvent::NeedMore));
        let mut wrong = parts[1];
        wrong[4] = 1;
        let expected = Malformed::WrongSequence {
            expected: 0,
            got: 1,
        };
        assert_eq!(host.receive(&wrong), Err(expected.into()));
    }

    #[test]
    fn request_misuse() {
        assert_eq!(HostChannel::new(0).unwrap_err(), Error::UnusableCid(0));
        let mut host = HostChannel::new(7).unwrap();
        for cmd in [
            Command::Init,
            Command::Cancel,
            Command::Keepalive,
            Command::Error,
        ] {
            assert_eq!(host.request(cmd, &[]).unwrap_err(), Error::NotARequest(cmd));
        }
        let too_long = vec![0; 7610];
        let err = host.request(Command::Cbor, &too_long).unwrap_err();
        assert_eq!(err, Error::PayloadTooLong { len: 7610 });
        assert!(!host.is_awaiting_response());
        let _ = host.request(Command::Cbor, &[1]).unwrap();
        host.abandon();
        assert!(host.request(Command::Cbor, &[1]).is_ok());
        assert_eq!(host.cancel()[..7], [0, 0, 0, 7, 0x91, 0, 0]);
    }
}
