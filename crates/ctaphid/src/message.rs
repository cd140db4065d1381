//! Messages ⇄ packets: fragmenting is an iterator, defragmenting one message is a function,
//! and [`Partial`] is the policy-free assembly step both reassemblers share
//! (CTAP 2.1 §11.2.4; fido.md §1.1).

use core::iter::FusedIterator;

use crate::command::{Command, ErrorCode};
use crate::error::{Error, Malformed};
use crate::packet::{
    CONT_DATA_SIZE, ContPacket, INIT_DATA_SIZE, InitPacket, MAX_MESSAGE_SIZE, MAX_SEQ, Packet,
    Report,
};

/// A CTAPHID message: channel, command and payload of at most 7609 bytes once framed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Channel identifier.
    pub cid: u32,
    /// Command.
    pub cmd: Command,
    /// Payload (BCNT bytes on the wire).
    pub payload: Vec<u8>,
}

impl Message {
    /// A message.
    pub fn new(cid: u32, cmd: Command, payload: Vec<u8>) -> Self {
        Self { cid, cmd, payload }
    }

    /// A `CTAPHID_ERROR` message carrying `code` (§11.2.9.1.6).
    pub fn error(cid: u32, code: ErrorCode) -> Self {
        Self::new(cid, Command::Error, vec![code.to_byte()])
    }

    /// The reports of this message; see [`fragment`].
    pub fn fragments(&self) -> Result<Fragments<'_>, Error> {
        Fragments::new(self.cid, self.cmd, &self.payload)
    }
}

/// The reports that carry `message`, in order: one init packet, then continuations with
/// SEQ 0, 1, …, 127 as needed, zero padded.
///
/// Fails with [`Error::PayloadTooLong`] past 7609 bytes and [`Error::NonCanonicalCommand`]
/// for a hand-built command with no unique encoding.
pub fn fragment(message: &Message) -> Result<Fragments<'_>, Error> {
    message.fragments()
}

/// Number of packets a payload of `len` bytes takes (one for an empty payload).
pub const fn packet_count(len: usize) -> usize {
    if len <= INIT_DATA_SIZE {
        1
    } else {
        1 + (len - INIT_DATA_SIZE).div_ceil(CONT_DATA_SIZE)
    }
}

/// Iterator over the reports of one message; built by [`fragment`] or [`Fragments::new`].
#[derive(Clone, Debug)]
pub struct Fragments<'a> {
    cid: u32,
    cmd: Command,
    total: u16,
    /// Payload not yet put into a packet.
    rest: &'a [u8],
    /// SEQ of the next continuation packet; `None` before the init packet.
    next_seq: Option<u8>,
}

impl<'a> Fragments<'a> {
    /// Reports for a message on `cid` with command `cmd` carrying `payload`.
    pub fn new(cid: u32, cmd: Command, payload: &'a [u8]) -> Result<Self, Error> {
        if !cmd.is_canonical() {
            return Err(Error::NonCanonicalCommand(cmd));
        }
        let too_long = Error::PayloadTooLong { len: payload.len() };
        if payload.len() > MAX_MESSAGE_SIZE {
            return Err(too_long);
        }
        let total = u16::try_from(payload.len()).map_err(|_| too_long)?;
        Ok(Self {
            cid,
            cmd,
            total,
            rest: payload,
            next_seq: None,
        })
    }

    /// Takes up to `N` bytes off the front of the unsent payload, zero padded.
    fn take_chunk<const N: usize>(&mut self) -> [u8; N] {
        let (chunk, rest) = self.rest.split_at(self.rest.len().min(N));
        self.rest = rest;
        let mut data = [0; N];
        for (slot, byte) in data.iter_mut().zip(chunk) {
            *slot = *byte;
        }
        data
    }
}

impl Iterator for Fragments<'_> {
    type Item = Report;

    fn next(&mut self) -> Option<Report> {
        match self.next_seq {
            None => {
                let data = self.take_chunk::<INIT_DATA_SIZE>();
                self.next_seq = Some(0);
                Some(
                    InitPacket {
                        cid: self.cid,
                        cmd: self.cmd,
                        bcnt: self.total,
                        data,
                    }
                    .encode(),
                )
            }
            Some(seq) if !self.rest.is_empty() => {
                let data = self.take_chunk::<CONT_DATA_SIZE>();
                // `new` bounds the payload at 7609 bytes, which needs SEQ 0..=127 only; the
                // checked add merely keeps a broken invariant from wrapping.
                self.next_seq = seq.checked_add(1);
                Some(
                    ContPacket {
                        cid: self.cid,
                        seq,
                        data,
                    }
                    .encode(),
                )
            }
            Some(_) => None,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = match self.next_seq {
            None => packet_count(self.rest.len()),
            Some(_) => self.rest.len().div_ceil(CONT_DATA_SIZE),
        };
        (remaining, Some(remaining))
    }
}

impl ExactSizeIterator for Fragments<'_> {}
impl FusedIterator for Fragments<'_> {}

/// Reassembles exactly one message from its reports, strictly: an init packet first, then
/// continuations on the same channel with SEQ 0, 1, …, and no report left over.
///
/// This is framing only; channel rules (busy, broadcast, INIT length) belong to
/// [`Reassembler`](crate::Reassembler), [`Device`](crate::Device) and
/// [`HostChannel`](crate::HostChannel).
pub fn defragment<'r>(reports: impl IntoIterator<Item = &'r Report>) -> Result<Message, Error> {
    let mut reports = reports.into_iter();
    let Some(Packet::Init(init)) = reports.next().map(Packet::parse) else {
        return Err(Malformed::ExpectedInitPacket.into());
    };
    let mut partial = match Partial::start(&init).map_err(Malformed::MessageTooLong)? {
        Progress::Complete(message) => {
            return match reports.next() {
                None => Ok(message),
                Some(_) => Err(Malformed::TrailingPacket.into()),
            };
        }
        Progress::Incomplete(partial) => partial,
    };
    loop {
        let cont = match reports.next().map(Packet::parse) {
            None => return Err(Malformed::Truncated.into()),
            Some(Packet::Init(_)) => return Err(Malformed::ExpectedContinuation.into()),
            Some(Packet::Cont(cont)) => cont,
        };
        if cont.cid != partial.cid() {
            return Err(Malformed::WrongChannel {
                expected: partial.cid(),
                got: cont.cid,
            }
            .into());
        }
        match partial.push(&cont) {
            Err(SeqMismatch { expected, got }) => {
                return Err(Malformed::WrongSequence { expected, got }.into());
            }
            Ok(Progress::Incomplete(next)) => partial = next,
            Ok(Progress::Complete(message)) => {
                return match reports.next() {
                    None => Ok(message),
                    Some(_) => Err(Malformed::TrailingPacket.into()),
                };
            }
        }
    }
}

/// A message whose init packet has arrived and whose payload is not complete yet.
///
/// Policy-free: it knows BCNT and SEQ, nothing about channels, busy or time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Partial {
    cid: u32,
    cmd: Command,
    /// BCNT from the init packet, at most [`MAX_MESSAGE_SIZE`].
    total: usize,
    /// SEQ the next continuation packet must carry.
    next_seq: u8,
    payload: Vec<u8>,
}

/// What one packet did to a message being assembled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    /// More continuation packets are needed.
    Incomplete(Partial),
    /// The message is complete.
    Complete(Message),
}

/// A continuation packet with the wrong SEQ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SeqMismatch {
    pub(crate) expected: u8,
    pub(crate) got: u8,
}

impl Partial {
    /// Starts a message from its init packet; `Err(bcnt)` if BCNT exceeds 7609.
    pub(crate) fn start(init: &InitPacket) -> Result<Progress, u16> {
        let total = usize::from(init.bcnt);
        if total > MAX_MESSAGE_SIZE {
            return Err(init.bcnt);
        }
        let mut payload = Vec::with_capacity(total);
        payload.extend(init.data.iter().take(total));
        let partial = Self {
            cid: init.cid,
            cmd: init.cmd,
            total,
            next_seq: 0,
            payload,
        };
        Ok(partial.progress())
    }

    /// The channel of the message.
    pub(crate) fn cid(&self) -> u32 {
        self.cid
    }

    /// Appends a continuation packet of this channel (the caller has checked the CID).
    pub(crate) fn push(mut self, cont: &ContPacket) -> Result<Progress, SeqMismatch> {
        if cont.seq != self.next_seq {
            return Err(SeqMismatch {
                expected: self.next_seq,
                got: cont.seq,
            });
        }
        let missing = self.total.saturating_sub(self.payload.len());
        self.payload.extend(cont.data.iter().take(missing));
        // SEQ 127 completes even a 7609-byte message, so this never saturates for a
        // message that is still incomplete.
        self.next_seq = self.next_seq.saturating_add(1).min(MAX_SEQ);
        Ok(self.progress())
    }

    fn progress(self) -> Progress {
        if self.payload.len() >= self.total {
            Progress::Complete(Message {
                cid: self.cid,
                cmd: self.cmd,
                payload: self.payload,
            })
        } else {
            Progress::Incomplete(self)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::packet::HID_REPORT_SIZE;

    fn message(len: usize) -> Message {
        let payload = (0..len).map(|i| (i % 251) as u8).collect();
        Message::new(0x0102_0304, Command::Cbor, payload)
    }

    #[test]
    fn packet_counts() {
        assert_eq!(packet_count(0), 1);
        assert_eq!(packet_count(57), 1);
        assert_eq!(packet_count(58), 2);
        assert_eq!(packet_count(57 + 59), 2);
        assert_eq!(packet_count(57 + 59 + 1), 3);
        assert_eq!(packet_count(MAX_MESSAGE_SIZE), 129);
    }

    #[test]
    fn empty_payload_is_one_init_packet() {
        let reports: Vec<_> = message(0).fragments().unwrap().collect();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0][..7], [0x01, 0x02, 0x03, 0x04, 0x90, 0x00, 0x00]);
        assert!(reports[0][7..].iter().all(|&b| b == 0));
    }

    #[test]
    fn two_packets_are_laid_out_as_the_spec_says() {
        let msg = message(58);
        let reports: Vec<_> = msg.fragments().unwrap().collect();
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0][..7], [0x01, 0x02, 0x03, 0x04, 0x90, 0x00, 58]);
        assert_eq!(reports[0][7..], msg.payload[..57]);
        assert_eq!(reports[1][..5], [0x01, 0x02, 0x03, 0x04, 0x00]);
        assert_eq!(reports[1][5], msg.payload[57]);
        assert!(reports[1][6..].iter().all(|&b| b == 0));
    }

    #[test]
    fn size_hint_is_exact_while_iterating() {
        let msg = message(1000);
        let mut fragments = msg.fragments().unwrap();
        let mut left = packet_count(1000);
        while left > 0 {
            assert_eq!(fragments.len(), left);
            assert!(fragments.next().is_some());
            left -= 1;
        }
        assert_eq!(fragments.len(), 0);
        assert!(fragments.next().is_none());
    }

    #[test]
    fn max_message_uses_seq_0_to_127() {
        let msg = message(MAX_MESSAGE_SIZE);
        let reports: Vec<_> = msg.fragments().unwrap().collect();
        assert_eq!(reports.len(), 129);
        for (seq, report) in reports[1..].iter().enumerate() {
            assert_eq!(usize::from(report[4]), seq);
        }
        assert_eq!(defragment(&reports).unwrap(), msg);
    }

    #[test]
    fn one_byte_over_the_limit_is_refused() {
        let msg = message(MAX_MESSAGE_SIZE + 1);
        assert_eq!(
            msg.fragments().unwrap_err(),
            Error::PayloadTooLong { len: 7610 }
        );
        let huge = message(0x1_0000 + 5);
        assert_eq!(
            huge.fragments().unwrap_err(),
            Error::PayloadTooLong { len: 0x1_0005 }
        );
    }

    #[test]
    fn non_canonical_commands_are_refused() {
        let msg = Message::new(1, Command::Vendor(0x01), vec![]);
        assert_eq!(
            msg.fragments().unwrap_err(),
            Error::NonCanonicalCommand(Command::Vendor(1))
        );
    }

    #[test]
    fn defragment_is_strict() {
        let msg = message(200);
        let reports: Vec<_> = msg.fragments().unwrap().collect();
        assert_eq!(defragment(&reports).unwrap(), msg);

        let err = |r: &[Report]| defragment(r).unwrap_err();
        assert_eq!(err(&reports[1..]), Malformed::ExpectedInitPacket.into());
        assert_eq!(err(&reports[..2]), Malformed::Truncated.into());
        assert_eq!(err(&[]), Malformed::ExpectedInitPacket.into());

        let mut extra = reports.clone();
        extra.push(reports[1]);
        assert_eq!(err(&extra), Malformed::TrailingPacket.into());

        let mut swapped = reports.clone();
        swapped.swap(1, 2);
        assert_eq!(
            err(&swapped),
            Malformed::WrongSequence {
                expected: 0,
                got: 1
            }
            .into()
        );

        let mut other_cid = reports.clone();
        other_cid[1][3] ^= 1;
        let expected = Malformed::WrongChannel {
            expected: 0x0102_0304,
            got: 0x0102_0305,
        };
        assert_eq!(err(&other_cid), expected.into());

        let mut init_again = reports.clone();
        init_again[1] = reports[0];
        assert_eq!(err(&init_again), Malformed::ExpectedContinuation.into());

        let mut too_long = [0u8; HID_REPORT_SIZE];
        too_long[..7].copy_from_slice(&[0, 0, 0, 1, 0x81, 0x1D, 0xBA]);
        assert_eq!(err(&[too_long]), Malformed::MessageTooLong(7610).into());

        let single: Vec<_> = message(3).fragments().unwrap().collect();
        assert_eq!(
            err(&[single[0], reports[1]]),
            Malformed::TrailingPacket.into()
        );
    }

    #[test]
    fn padding_bytes_are_ignored() {
        let mut report = [0xEE; HID_REPORT_SIZE];
        report[..7].copy_from_slice(&[0, 0, 0, 9, 0x81, 0x00, 0x02]);
        let msg = defragment(&[report]).unwrap();
        assert_eq!(msg, Message::new(9, Command::Ping, vec![0xEE, 0xEE]));
    }
}
