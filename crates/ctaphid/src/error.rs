//! Errors, kept apart by kind (STYLE.md "three kinds, never mixed"):
//!
//! * [`ErrorCode`] (in `command`) is the wire status a device puts in `CTAPHID_ERROR`;
//! * [`Refusal`] is the device-side cause, mapped onto [`ErrorCode`] in exactly one place
//!   (`impl From<Refusal> for ErrorCode`), and [`Refused`] says which channel gets it;
//! * [`Error`] is this library's error for callers: malformed bytes from the peer, an error
//!   the device answered, or caller misuse.

use crate::command::{Command, ErrorCode};
use crate::message::Message;
use crate::packet::{INIT_DATA_SIZE, InitPacket, Report};

/// Why a device refuses a host's packet or message; each cause has one [`ErrorCode`]
/// (CTAP 2.1 §11.2.5, §11.2.9; fido.md §1.5).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The command is unknown, device → host only, or not in the device's capabilities.
    #[error("command {0:?} is not supported")]
    UnsupportedCommand(Command),
    /// LOCK asked for more than 10 seconds (§11.2.9.2.2).
    #[error("LOCK for {0} s exceeds the 10 s maximum")]
    LockTooLong(u8),
    /// BCNT exceeds 7609 (§11.2.4; Google HIDTest `test_Limits`).
    #[error("BCNT {0} exceeds the 7609-byte message limit")]
    MessageTooLong(u16),
    /// INIT whose BCNT is not 8 (§11.2.9.1.3).
    #[error("INIT with BCNT {0}, expected 8")]
    InitLength(u16),
    /// LOCK whose payload is not one byte (§11.2.9.2.2).
    #[error("LOCK with {0} payload bytes, expected 1")]
    LockLength(usize),
    /// A new non-INIT init packet on the channel whose continuation was expected
    /// (§11.2.5.4; Google HIDTest `test_NotCont`).
    #[error("init packet while a continuation packet was expected")]
    ExpectedContinuation,
    /// A continuation packet out of sequence (§11.2.5.4; `test_WrongSeq`).
    #[error("continuation SEQ {got}, expected {expected}")]
    WrongSequence {
        /// The SEQ that would have been accepted.
        expected: u8,
        /// The SEQ received.
        got: u8,
    },
    /// The next packet of a message did not arrive within the frame timeout (§11.2.5.2).
    #[error("message not completed within the frame timeout")]
    Timeout,
    /// Another channel holds the device: a transaction or a LOCK (§11.2.5.1).
    #[error("device busy with another channel")]
    Busy,
    /// A command other than INIT on the broadcast channel (§11.2.3).
    #[error("only INIT may use the broadcast channel")]
    BroadcastNotInit,
    /// A channel that was never allocated, including the reserved channel 0 (§11.2.3).
    #[error("channel {0:#010x} is not allocated")]
    UnallocatedChannel(u32),
    /// The device's CID source produced no usable new channel identifier.
    #[error("no channel identifier could be allocated")]
    NoChannelAvailable,
}

impl From<Refusal> for ErrorCode {
    /// The one mapping from device-side causes to wire codes (fido.md §1.4, §1.5).
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::UnsupportedCommand(_) => Self::InvalidCmd,
            Refusal::LockTooLong(_) => Self::InvalidPar,
            Refusal::MessageTooLong(_) | Refusal::InitLength(_) | Refusal::LockLength(_) => {
                Self::InvalidLen
            }
            Refusal::ExpectedContinuation | Refusal::WrongSequence { .. } => Self::InvalidSeq,
            Refusal::Timeout => Self::MsgTimeout,
            Refusal::Busy => Self::ChannelBusy,
            Refusal::BroadcastNotInit | Refusal::UnallocatedChannel(_) => Self::InvalidChannel,
            Refusal::NoChannelAvailable => Self::Other,
        }
    }
}

/// A refusal addressed to a channel: the device answers `CTAPHID_ERROR` with
/// `ErrorCode::from(reason)` on `cid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The channel the ERROR message goes to (the channel the offending packet came on).
    pub cid: u32,
    /// Why.
    pub reason: Refusal,
}

impl Refused {
    /// The wire error code.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::from(self.reason)
    }

    /// The `CTAPHID_ERROR` message.
    pub fn message(&self) -> Message {
        Message::error(self.cid, self.code())
    }

    /// The `CTAPHID_ERROR` message as its single report.
    pub fn report(&self) -> Report {
        error_report(self.cid, self.code())
    }
}

/// The single report of a `CTAPHID_ERROR` message (§11.2.9.1.6).
pub(crate) fn error_report(cid: u32, code: ErrorCode) -> Report {
    let mut data = [0; INIT_DATA_SIZE];
    data[0] = code.to_byte();
    InitPacket {
        cid,
        cmd: Command::Error,
        bcnt: 1,
        data,
    }
    .encode()
}

/// How the peer's bytes break CTAPHID framing, as seen by a host or by [`defragment`].
///
/// [`defragment`]: crate::message::defragment
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// The first packet of a message was a continuation packet.
    #[error("a message must start with an init packet")]
    ExpectedInitPacket,
    /// An init packet came while a continuation was expected.
    #[error("init packet while a continuation packet was expected")]
    ExpectedContinuation,
    /// A continuation packet out of sequence.
    #[error("continuation SEQ {got}, expected {expected}")]
    WrongSequence {
        /// The SEQ that would have been accepted.
        expected: u8,
        /// The SEQ received.
        got: u8,
    },
    /// A packet of the message on another channel.
    #[error("packet on channel {got:#010x}, expected {expected:#010x}")]
    WrongChannel {
        /// The channel of the message.
        expected: u32,
        /// The channel of the packet.
        got: u32,
    },
    /// BCNT exceeds 7609 (§11.2.4).
    #[error("BCNT {0} exceeds the 7609-byte message limit")]
    MessageTooLong(u16),
    /// The packets ended before BCNT bytes arrived.
    #[error("message truncated")]
    Truncated,
    /// More packets than BCNT needs.
    #[error("packets after the end of the message")]
    TrailingPacket,
    /// A fixed-length message (INIT response, ERROR, KEEPALIVE) had another length.
    #[error("{cmd:?} message with {len} payload bytes, expected {expected}")]
    BadLength {
        /// The command of the message.
        cmd: Command,
        /// Its BCNT.
        len: u16,
        /// The length the command requires.
        expected: u16,
    },
    /// An ERROR byte CTAP 2.1 does not define.
    #[error("unknown CTAPHID error code {0:#04x}")]
    UnknownErrorCode(u8),
    /// An INIT response allocated channel 0 or the broadcast channel.
    #[error("INIT response assigns unusable channel {0:#010x}")]
    UnusableCid(u32),
    /// A resync INIT response named another channel than the one it was sent on.
    #[error("resync INIT response names channel {got:#010x}, expected {expected:#010x}")]
    ResyncCidMismatch {
        /// The channel being resynchronised.
        expected: u32,
        /// The channel in the response.
        got: u32,
    },
    /// A reply whose command is neither the request's, KEEPALIVE nor ERROR.
    #[error("reply with command {got:?} to a {expected:?} request")]
    UnexpectedCommand {
        /// The command of the request.
        expected: Command,
        /// The command of the reply.
        got: Command,
    },
}

/// This crate's error for callers (STYLE.md: one `#[non_exhaustive] pub enum Error`).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    // --- malformed input from the peer ---
    /// The peer's packets break CTAPHID framing.
    #[error("malformed CTAPHID data: {0}")]
    Malformed(#[from] Malformed),

    // --- caller misuse ---
    /// A payload longer than 7609 bytes cannot be framed (§11.2.4).
    #[error("payload of {len} bytes exceeds the 7609-byte CTAPHID message limit")]
    PayloadTooLong {
        /// The payload length asked for.
        len: usize,
    },
    /// A hand-built [`Command`] with no unique wire encoding ([`Command::is_canonical`]).
    #[error("command {0:?} has no canonical wire encoding")]
    NonCanonicalCommand(Command),
    /// Channel 0 or the broadcast channel where an allocated channel is required.
    #[error("channel {0:#010x} cannot carry a transaction")]
    UnusableCid(u32),
    /// A response, error or keepalive for a channel with no request awaiting a response;
    /// e.g. the request was aborted by a resync INIT. Drop the response.
    #[error("no request awaits a response on channel {0:#010x}")]
    NoPendingRequest(u32),
    /// A host request with a command that is not a request (INIT, CANCEL, KEEPALIVE, ERROR).
    #[error("{0:?} is not a request command")]
    NotARequest(Command),
    /// A host request while the previous one has not been answered; call `abandon` first.
    #[error("the previous request has not been answered")]
    RequestOutstanding,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{BROADCAST_CID, Packet};

    #[test]
    fn each_refusal_maps_to_the_fido_md_code() {
        let cases = [
            (
                Refusal::UnsupportedCommand(Command::Keepalive),
                ErrorCode::InvalidCmd,
            ),
            (Refusal::LockTooLong(11), ErrorCode::InvalidPar),
            (Refusal::MessageTooLong(7610), ErrorCode::InvalidLen),
            (Refusal::InitLength(9), ErrorCode::InvalidLen),
            (Refusal::LockLength(0), ErrorCode::InvalidLen),
            (Refusal::ExpectedContinuation, ErrorCode::InvalidSeq),
            (
                Refusal::WrongSequence {
                    expected: 0,
                    got: 1,
                },
                ErrorCode::InvalidSeq,
            ),
            (Refusal::Timeout, ErrorCode::MsgTimeout),
            (Refusal::Busy, ErrorCode::ChannelBusy),
            (Refusal::BroadcastNotInit, ErrorCode::InvalidChannel),
            (Refusal::UnallocatedChannel(0), ErrorCode::InvalidChannel),
            (Refusal::NoChannelAvailable, ErrorCode::Other),
        ];
        for (refusal, code) in cases {
            assert_eq!(ErrorCode::from(refusal), code, "{refusal:?}");
        }
    }

    #[test]
    fn refused_report_is_a_one_byte_error_message() {
        let refused = Refused {
            cid: BROADCAST_CID,
            reason: Refusal::BroadcastNotInit,
        };
        let Packet::Init(init) = Packet::parse(&refused.report()) else {
            panic!("expected an init packet");
        };
        assert_eq!(
            (init.cid, init.cmd, init.bcnt),
            (BROADCAST_CID, Command::Error, 1)
        );
        assert_eq!(init.data[0], 0x0B);
        assert!(init.data[1..].iter().all(|&b| b == 0));
        assert_eq!(refused.message().payload, vec![0x0B]);
    }
}
