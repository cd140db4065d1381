//! One 64-byte HID report ⇄ one CTAPHID packet (CTAP 2.1 §11.2.4; fido.md §1.1).
//!
//! ```text
//! init packet:          CID[4, big-endian] | 0x80|CMD | BCNTH | BCNTL | DATA[57]
//! continuation packet:  CID[4, big-endian] | SEQ (0x00..=0x7F)        | DATA[59]
//! ```
//!
//! Every 64-byte array is exactly one of the two, so parsing cannot fail; what a packet
//! *means* (a length too large, a SEQ out of order) is judged by the reassemblers.

use crate::command::Command;

/// Size of a HID report and of a CTAPHID packet: full-speed USB (CTAP 2.1 §11.2.4;
/// fido.md §1.1). Over hidraw the host writes a report-ID byte 0x00 first; that byte is the
/// transport's business and never reaches this crate.
pub const HID_REPORT_SIZE: usize = 64;
/// Size of the channel identifier at the start of every packet (§11.2.4).
pub const CID_SIZE: usize = 4;
/// Header of an initialization packet: CID, CMD, BCNTH, BCNTL (§11.2.4).
pub const INIT_HEADER_SIZE: usize = CID_SIZE + 3;
/// Header of a continuation packet: CID, SEQ (§11.2.4).
pub const CONT_HEADER_SIZE: usize = CID_SIZE + 1;
/// Payload bytes carried by an initialization packet: 64 − 7 = 57 (§11.2.4).
pub const INIT_DATA_SIZE: usize = HID_REPORT_SIZE - INIT_HEADER_SIZE;
/// Payload bytes carried by a continuation packet: 64 − 5 = 59 (§11.2.4).
pub const CONT_DATA_SIZE: usize = HID_REPORT_SIZE - CONT_HEADER_SIZE;
/// Highest continuation sequence number; bit 7 is the packet-type bit (§11.2.4).
pub const MAX_SEQ: u8 = 0x7F;
/// Largest message: (64 − 7) + 128 × (64 − 5) = 7609 bytes (§11.2.4; fido.md §1.1).
pub const MAX_MESSAGE_SIZE: usize = INIT_DATA_SIZE + (MAX_SEQ as usize + 1) * CONT_DATA_SIZE;
/// Most packets one message can take: one init packet and 128 continuations (§11.2.4).
pub const MAX_PACKETS_PER_MESSAGE: usize = 1 + MAX_SEQ as usize + 1;
/// The broadcast channel, valid only for `CTAPHID_INIT` (§11.2.3; fido.md §1.2).
pub const BROADCAST_CID: u32 = 0xFFFF_FFFF;
/// Channel 0 is reserved and never allocated (§11.2.3; fido.md §1.2).
pub const RESERVED_CID: u32 = 0;

/// One HID report as it travels: 64 bytes, no report-ID prefix.
pub type Report = [u8; HID_REPORT_SIZE];

/// A parsed packet: initialization or continuation, told apart by bit 7 of byte 4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    /// The first packet of a message.
    Init(InitPacket),
    /// A following packet of a message.
    Cont(ContPacket),
}

/// The first packet of a message (§11.2.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitPacket {
    /// Channel identifier.
    pub cid: u32,
    /// Command (bit 7 of the CMD byte stripped).
    pub cmd: Command,
    /// Length of the whole message payload (BCNT), unchecked.
    pub bcnt: u16,
    /// The first up-to-57 payload bytes; bytes past BCNT are padding.
    pub data: [u8; INIT_DATA_SIZE],
}

/// A continuation packet (§11.2.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContPacket {
    /// Channel identifier.
    pub cid: u32,
    /// Sequence number, 0..=127; parsed packets always have bit 7 clear.
    pub seq: u8,
    /// The next up-to-59 payload bytes; bytes past the message end are padding.
    pub data: [u8; CONT_DATA_SIZE],
}

impl Packet {
    /// Splits a report into its packet fields. Infallible: every report is a packet.
    pub fn parse(report: &Report) -> Self {
        let [c0, c1, c2, c3, kind, rest @ ..] = *report;
        let cid = u32::from_be_bytes([c0, c1, c2, c3]);
        if kind & Command::TYPE_INIT != 0 {
            let [bcnth, bcntl, data @ ..] = rest;
            Self::Init(InitPacket {
                cid,
                cmd: Command::from_code(kind),
                bcnt: u16::from_be_bytes([bcnth, bcntl]),
                data,
            })
        } else {
            Self::Cont(ContPacket {
                cid,
                seq: kind,
                data: rest,
            })
        }
    }

    /// The packet's channel.
    pub fn cid(&self) -> u32 {
        match self {
            Self::Init(init) => init.cid,
            Self::Cont(cont) => cont.cid,
        }
    }

    /// The 64-byte report for this packet.
    pub fn encode(&self) -> Report {
        match self {
            Self::Init(init) => init.encode(),
            Self::Cont(cont) => cont.encode(),
        }
    }
}

impl InitPacket {
    /// The 64-byte report. The CMD byte is `0x80 | cmd.code()`; callers that build a packet
    /// by hand are responsible for `cmd` being canonical ([`Command::is_canonical`]).
    pub fn encode(&self) -> Report {
        let [bcnth, bcntl] = self.bcnt.to_be_bytes();
        let header = [Command::TYPE_INIT | self.cmd.code(), bcnth, bcntl];
        let bytes = self
            .cid
            .to_be_bytes()
            .into_iter()
            .chain(header)
            .chain(self.data);
        collect_report(bytes)
    }
}

impl ContPacket {
    /// The 64-byte report. Bit 7 of `seq` is cleared so the packet stays a continuation.
    pub fn encode(&self) -> Report {
        let seq = self.seq & MAX_SEQ;
        let bytes = self
            .cid
            .to_be_bytes()
            .into_iter()
            .chain([seq])
            .chain(self.data);
        collect_report(bytes)
    }
}

/// Writes up to 64 bytes into a zeroed report; unused bytes stay zero (fido.md §1.1).
pub(crate) fn collect_report(bytes: impl IntoIterator<Item = u8>) -> Report {
    let mut report = [0; HID_REPORT_SIZE];
    for (slot, byte) in report.iter_mut().zip(bytes) {
        *slot = byte;
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_the_spec() {
        assert_eq!(INIT_DATA_SIZE, 57);
        assert_eq!(CONT_DATA_SIZE, 59);
        assert_eq!(MAX_MESSAGE_SIZE, 7609);
        assert_eq!(MAX_PACKETS_PER_MESSAGE, 129);
    }

    #[test]
    fn parses_an_init_packet() {
        // libfido2 fuzz/wiredata_fido2.h WIREDATA_CTAP_INIT (fido.md §1.2).
        let bytes = [
            0xff, 0xff, 0xff, 0xff, 0x86, 0x00, 0x11, 0x80, 0x43, 0x56, 0x40, 0xb1, 0x4e, 0xd9,
            0x2d, 0x00, 0x22, 0x00, 0x02, 0x02, 0x05, 0x02, 0x01, 0x05,
        ];
        let report = collect_report(bytes);
        let Packet::Init(init) = Packet::parse(&report) else {
            panic!("expected an init packet");
        };
        assert_eq!(init.cid, BROADCAST_CID);
        assert_eq!(init.cmd, Command::Init);
        assert_eq!(init.bcnt, 17);
        assert_eq!(init.data[..4], [0x80, 0x43, 0x56, 0x40]);
        assert_eq!(Packet::Init(init).encode(), report);
    }

    #[test]
    fn parses_a_continuation_packet() {
        let mut report = [0xAB; HID_REPORT_SIZE];
        report[..5].copy_from_slice(&[0x00, 0x22, 0x00, 0x02, 0x7F]);
        let packet = Packet::parse(&report);
        assert_eq!(
            packet,
            Packet::Cont(ContPacket {
                cid: 0x0022_0002,
                seq: 0x7F,
                data: [0xAB; 59]
            })
        );
        assert_eq!(packet.cid(), 0x0022_0002);
        assert_eq!(packet.encode(), report);
    }

    #[test]
    fn every_report_round_trips() {
        for kind in 0..=u8::MAX {
            let mut report = [0u8; HID_REPORT_SIZE];
            for (i, byte) in report.iter_mut().enumerate() {
                *byte = (i as u8).wrapping_mul(kind).wrapping_add(3);
            }
            report[4] = kind;
            assert_eq!(Packet::parse(&report).encode(), report);
        }
    }

    #[test]
    fn encoding_a_seq_with_bit_7_keeps_it_a_continuation() {
        let cont = ContPacket {
            cid: 1,
            seq: 0x85,
            data: [0; CONT_DATA_SIZE],
        };
        assert_eq!(cont.encode()[4], 0x05);
    }
}
