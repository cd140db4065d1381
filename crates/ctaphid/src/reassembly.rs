//! Device-side reassembly of one request at a time: `(now, &[u8; 64])` in, need-more / a
//! message / a refusal out (CTAP 2.1 §11.2.5; fido.md §1.5).
//!
//! The [`Reassembler`] applies the framing and arbitration rules that concern a message
//! *in flight*; channel allocation, LOCK and requests awaiting a response are the
//! [`Device`](crate::Device)'s business, which wraps it.

use core::time::Duration;

use crate::command::Command;
use crate::error::{Refusal, Refused};
use crate::init::INIT_NONCE_SIZE;
use crate::message::{Message, Partial, Progress, SeqMismatch};
use crate::packet::{ContPacket, InitPacket, Packet, Report};
use crate::time::{FRAME_TIMEOUT, Timestamp};

/// Assembles requests from packets, one message at a time, as the device sees them.
///
/// States, named by what they wait for: *expect an init packet* (no message pending) and
/// *expect a continuation* of the pending message on one channel. Rules (fido.md §1.5):
///
/// * continuation packets that do not continue the pending message are ignored silently;
/// * a continuation with the wrong SEQ aborts the message: `ERR_INVALID_SEQ`;
/// * a non-INIT init packet on the pending channel aborts the message: `ERR_INVALID_SEQ`;
/// * INIT on the pending channel aborts the message and is processed (resync);
/// * a non-INIT init packet on another channel gets `ERR_CHANNEL_BUSY` on that channel;
/// * INIT on another channel is processed without disturbing the pending message;
/// * BCNT over 7609, or an INIT whose BCNT is not 8, gets `ERR_INVALID_LEN` at once;
/// * a pending message whose next packet is [`FRAME_TIMEOUT`] late gets `ERR_MSG_TIMEOUT`.
#[derive(Clone, Debug)]
pub struct Reassembler {
    frame_timeout: Duration,
    expect_continuation: Option<ExpectContinuation>,
}

/// The pending message and when its last packet arrived.
#[derive(Clone, Debug)]
struct ExpectContinuation {
    partial: Partial,
    last_packet_at: Timestamp,
}

/// The result of pushing one report.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// A message that had been pending and timed out before this report arrived: the device
    /// answers `ERR_MSG_TIMEOUT` ([`Refusal::Timeout`]) on its channel. Send it first.
    pub timed_out: Option<Refused>,
    /// What the report itself did.
    pub outcome: Outcome,
}

/// What one report did to the reassembly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The report was accepted; more continuation packets are needed.
    NeedMore,
    /// The report completed a message.
    Complete(Message),
    /// The report must be ignored silently (a spurious continuation packet).
    Ignored,
    /// The report is refused: answer `CTAPHID_ERROR` on the given channel.
    Refused(Refused),
}

impl Default for Reassembler {
    fn default() -> Self {
        Self::new()
    }
}

impl Reassembler {
    /// A reassembler with the [`FRAME_TIMEOUT`] of 500 ms.
    pub fn new() -> Self {
        Self::with_frame_timeout(FRAME_TIMEOUT)
    }

    /// A reassembler with another inter-packet timeout.
    pub fn with_frame_timeout(frame_timeout: Duration) -> Self {
        Self {
            frame_timeout,
            expect_continuation: None,
        }
    }

    /// The channel of the message being assembled, if any.
    pub fn pending_cid(&self) -> Option<u32> {
        self.expect_continuation
            .as_ref()
            .map(|pending| pending.partial.cid())
    }

    /// When the pending message times out, if there is one. Call [`Reassembler::expire`]
    /// (or push a report) at or after that instant.
    pub fn deadline(&self) -> Option<Timestamp> {
        let pending = self.expect_continuation.as_ref()?;
        Some(pending.last_packet_at.saturating_add(self.frame_timeout))
    }

    /// Drops the pending message if its next packet is overdue at `now` and says which
    /// channel gets `ERR_MSG_TIMEOUT`.
    pub fn expire(&mut self, now: Timestamp) -> Option<Refused> {
        let pending = self.expect_continuation.as_ref()?;
        if now.saturating_duration_since(pending.last_packet_at) < self.frame_timeout {
            return None;
        }
        let cid = pending.partial.cid();
        self.expect_continuation = None;
        Some(Refused {
            cid,
            reason: Refusal::Timeout,
        })
    }

    /// Drops the pending message without an answer.
    pub fn abort(&mut self) {
        self.expect_continuation = None;
    }

    /// Feeds one report received at `now`.
    pub fn push(&mut self, now: Timestamp, report: &Report) -> Pushed {
        self.push_packet(now, &Packet::parse(report))
    }

    /// Feeds one already parsed packet received at `now`.
    pub fn push_packet(&mut self, now: Timestamp, packet: &Packet) -> Pushed {
        let timed_out = self.expire(now);
        let outcome = match packet {
            Packet::Init(init) => self.on_init(now, init),
            Packet::Cont(cont) => self.on_cont(now, cont),
        };
        Pushed { timed_out, outcome }
    }

    fn on_init(&mut self, now: Timestamp, init: &InitPacket) -> Outcome {
        match self.expect_continuation.take() {
            Some(pending) if pending.partial.cid() != init.cid => {
                // Another channel's message is in flight and stays so.
                self.expect_continuation = Some(pending);
                if init.cmd == Command::Init {
                    // A valid INIT fits one packet, so it cannot disturb the pending message.
                    match check_init_length(init) {
                        Ok(()) => start(init).unwrap_or_else(|reason| refuse(init, reason)),
                        Err(reason) => refuse(init, reason),
                    }
                } else {
                    refuse(init, Refusal::Busy)
                }
            }
            // The pending message on this channel is aborted either way.
            Some(_) if init.cmd != Command::Init => refuse(init, Refusal::ExpectedContinuation),
            Some(_) | None => self.begin(now, init),
        }
    }

    fn begin(&mut self, now: Timestamp, init: &InitPacket) -> Outcome {
        if let Err(reason) = check_init_length(init) {
            return refuse(init, reason);
        }
        match Partial::start(init) {
            Err(bcnt) => refuse(init, Refusal::MessageTooLong(bcnt)),
            Ok(Progress::Complete(message)) => Outcome::Complete(message),
            Ok(Progress::Incomplete(partial)) => {
                self.expect_continuation = Some(ExpectContinuation {
                    partial,
                    last_packet_at: now,
                });
                Outcome::NeedMore
            }
        }
    }

    fn on_cont(&mut self, now: Timestamp, cont: &ContPacket) -> Outcome {
        match self.expect_continuation.take() {
            Some(pending) if pending.partial.cid() == cont.cid => {
                match pending.partial.push(cont) {
                    Ok(Progress::Complete(message)) => Outcome::Complete(message),
                    Ok(Progress::Incomplete(partial)) => {
                        self.expect_continuation = Some(ExpectContinuation {
                            partial,
                            last_packet_at: now,
                        });
                        Outcome::NeedMore
                    }
                    Err(SeqMismatch { expected, got }) => Outcome::Refused(Refused {
                        cid: cont.cid,
                        reason: Refusal::WrongSequence { expected, got },
                    }),
                }
            }
            other => {
                // Spurious continuation (§11.2.5.4): no message pending, or another channel's.
                self.expect_continuation = other;
                Outcome::Ignored
            }
        }
    }
}

/// INIT carries exactly an 8-byte nonce (§11.2.9.1.3; fido.md §1.2).
fn check_init_length(init: &InitPacket) -> Result<(), Refusal> {
    if init.cmd == Command::Init && usize::from(init.bcnt) != INIT_NONCE_SIZE {
        return Err(Refusal::InitLength(init.bcnt));
    }
    Ok(())
}

/// Starts a message, refusing BCNT over 7609.
fn start(init: &InitPacket) -> Result<Outcome, Refusal> {
    match Partial::start(init).map_err(Refusal::MessageTooLong)? {
        Progress::Complete(message) => Ok(Outcome::Complete(message)),
        // Only reached for an INIT on another channel, which `check_init_length` has bounded
        // to 8 bytes; kept total rather than trusted.
        Progress::Incomplete(_) => Err(Refusal::InitLength(init.bcnt)),
    }
}

fn refuse(init: &InitPacket, reason: Refusal) -> Outcome {
    Outcome::Refused(Refused {
        cid: init.cid,
        reason,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::packet::{CONT_DATA_SIZE, INIT_DATA_SIZE, MAX_MESSAGE_SIZE};

    const A: u32 = 0x0000_0001;
    const B: u32 = 0x0000_0002;

    fn ms(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn init(cid: u32, cmd: Command, bcnt: u16, fill: u8) -> Report {
        InitPacket {
            cid,
            cmd,
            bcnt,
            data: [fill; INIT_DATA_SIZE],
        }
        .encode()
    }

    fn cont(cid: u32, seq: u8, fill: u8) -> Report {
        ContPacket {
            cid,
            seq,
            data: [fill; CONT_DATA_SIZE],
        }
        .encode()
    }

    fn refused(cid: u32, reason: Refusal) -> Outcome {
        Outcome::Refused(Refused { cid, reason })
    }

    fn outcome(r: &mut Reassembler, now: u64, report: &Report) -> Outcome {
        let pushed = r.push(ms(now), report);
        assert_eq!(pushed.timed_out, None);
        pushed.outcome
    }

    #[test]
    fn single_packet_message() {
        let mut r = Reassembler::new();
        let expected = Message::new(A, Command::Cbor, vec![7; 10]);
        assert_eq!(
            outcome(&mut r, 0, &init(A, Command::Cbor, 10, 7)),
            Outcome::Complete(expected)
        );
        assert_eq!(r.pending_cid(), None);
    }

    #[test]
    fn multi_packet_message() {
        let mut r = Reassembler::new();
        assert_eq!(
            outcome(&mut r, 0, &init(A, Command::Ping, 100, 1)),
            Outcome::NeedMore
        );
        assert_eq!(r.pending_cid(), Some(A));
        let Outcome::Complete(msg) = outcome(&mut r, 10, &cont(A, 0, 2)) else {
            panic!("expected a complete message");
        };
        assert_eq!(msg.payload[..57], [1; 57]);
        assert_eq!(msg.payload[57..], [2; 43]);
    }

    #[test]
    fn wrong_seq_aborts() {
        let mut r = Reassembler::new();
        assert_eq!(
            outcome(&mut r, 0, &init(A, Command::Ping, 200, 0)),
            Outcome::NeedMore
        );
        let wrong = Refusal::WrongSequence {
            expected: 0,
            got: 1,
        };
        assert_eq!(outcome(&mut r, 1, &cont(A, 1, 0)), refused(A, wrong));
        assert_eq!(r.pending_cid(), None);
        // The rest of the aborted message is now spurious.
        assert_eq!(outcome(&mut r, 2, &cont(A, 2, 0)), Outcome::Ignored);
    }

    #[test]
    fn init_packet_instead_of_continuation_aborts() {
        let mut r = Reassembler::new();
        let first = init(A, Command::Ping, 99, 0);
        assert_eq!(outcome(&mut r, 0, &first), Outcome::NeedMore);
        assert_eq!(
            outcome(&mut r, 1, &first),
            refused(A, Refusal::ExpectedContinuation)
        );
        assert_eq!(r.pending_cid(), None);
    }

    #[test]
    fn other_channel_is_busy_but_may_init() {
        let mut r = Reassembler::new();
        assert_eq!(
            outcome(&mut r, 0, &init(A, Command::Ping, 99, 0)),
            Outcome::NeedMore
        );
        assert_eq!(
            outcome(&mut r, 1, &init(B, Command::Ping, 99, 0)),
            refused(B, Refusal::Busy)
        );
        let Outcome::Complete(msg) = outcome(&mut r, 2, &init(B, Command::Init, 8, 5)) else {
            panic!("INIT on another channel is processed");
        };
        assert_eq!(msg, Message::new(B, Command::Init, vec![5; 8]));
        assert_eq!(outcome(&mut r, 3, &cont(B, 0, 0)), Outcome::Ignored);
        assert_eq!(r.pending_cid(), Some(A));
        assert!(matches!(
            outcome(&mut r, 4, &cont(A, 0, 0)),
            Outcome::Complete(_)
        ));
    }

    #[test]
    fn init_on_the_pending_channel_resyncs() {
        let mut r = Reassembler::new();
        assert_eq!(
            outcome(&mut r, 0, &init(A, Command::Ping, 99, 0)),
            Outcome::NeedMore
        );
        let expected = Message::new(A, Command::Init, vec![9; 8]);
        assert_eq!(
            outcome(&mut r, 1, &init(A, Command::Init, 8, 9)),
            Outcome::Complete(expected)
        );
        assert_eq!(r.pending_cid(), None);
        assert_eq!(outcome(&mut r, 2, &cont(A, 0, 0)), Outcome::Ignored);
    }

    #[test]
    fn init_with_wrong_length_is_invalid_len() {
        let mut r = Reassembler::new();
        for bcnt in [0, 7, 9, 57, 58, 7609, 7610, u16::MAX] {
            let got = outcome(&mut r, 0, &init(A, Command::Init, bcnt, 0));
            assert_eq!(got, refused(A, Refusal::InitLength(bcnt)));
        }
        assert_eq!(
            outcome(&mut r, 0, &init(A, Command::Ping, 99, 0)),
            Outcome::NeedMore
        );
        assert_eq!(
            outcome(&mut r, 1, &init(B, Command::Init, 17, 0)),
            refused(B, Refusal::InitLength(17))
        );
        assert_eq!(r.pending_cid(), Some(A));
    }

    #[test]
    fn length_limit() {
        let mut r = Reassembler::new();
        let too_long = outcome(&mut r, 0, &init(A, Command::Ping, 7610, 0));
        assert_eq!(too_long, refused(A, Refusal::MessageTooLong(7610)));
        assert_eq!(
            outcome(&mut r, 0, &init(A, Command::Ping, 7609, 0)),
            Outcome::NeedMore
        );
        for seq in 0..127 {
            assert_eq!(outcome(&mut r, 0, &cont(A, seq, 0)), Outcome::NeedMore);
        }
        let Outcome::Complete(msg) = outcome(&mut r, 0, &cont(A, 127, 0)) else {
            panic!("SEQ 127 completes a 7609-byte message");
        };
        assert_eq!(msg.payload.len(), MAX_MESSAGE_SIZE);
    }

    #[test]
    fn timeout_between_frames() {
        let mut r = Reassembler::new();
        assert_eq!(
            outcome(&mut r, 1_000, &init(A, Command::Ping, 200, 0)),
            Outcome::NeedMore
        );
        assert_eq!(r.deadline(), Some(ms(1_500)));
        assert_eq!(r.expire(ms(1_499)), None);
        assert_eq!(outcome(&mut r, 1_499, &cont(A, 0, 0)), Outcome::NeedMore);
        assert_eq!(r.deadline(), Some(ms(1_999)));
        let late = r.push(ms(1_999), &cont(A, 1, 0));
        assert_eq!(
            late.timed_out,
            Some(Refused {
                cid: A,
                reason: Refusal::Timeout
            })
        );
        assert_eq!(late.outcome, Outcome::Ignored);
        assert_eq!(r.deadline(), None);
    }

    #[test]
    fn timeout_reported_alongside_another_channels_packet() {
        let mut r = Reassembler::new();
        assert_eq!(
            outcome(&mut r, 0, &init(A, Command::Ping, 200, 0)),
            Outcome::NeedMore
        );
        let pushed = r.push(ms(600), &init(B, Command::Ping, 1, 0));
        assert_eq!(
            pushed.timed_out,
            Some(Refused {
                cid: A,
                reason: Refusal::Timeout
            })
        );
        assert_eq!(
            pushed.outcome,
            Outcome::Complete(Message::new(B, Command::Ping, vec![0]))
        );
    }

    #[test]
    fn stray_continuations_are_ignored() {
        let mut r = Reassembler::new();
        assert_eq!(outcome(&mut r, 0, &cont(A, 0, 0)), Outcome::Ignored);
        assert_eq!(
            outcome(&mut r, 0, &init(A, Command::Ping, 99, 0)),
            Outcome::NeedMore
        );
        assert_eq!(outcome(&mut r, 0, &cont(B, 0, 0)), Outcome::Ignored);
        assert_eq!(r.pending_cid(), Some(A));
    }

    #[test]
    fn abort_drops_silently() {
        let mut r = Reassembler::with_frame_timeout(Duration::from_millis(100));
        assert_eq!(
            outcome(&mut r, 0, &init(A, Command::Ping, 99, 0)),
            Outcome::NeedMore
        );
        assert_eq!(r.deadline(), Some(ms(100)));
        r.abort();
        assert_eq!(r.expire(ms(10_000)), None);
    }
}
