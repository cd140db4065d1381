//! Wire vocabulary: command codes, error codes, keepalive statuses, INIT capability flags
//! (CTAP 2.1 §11.2.9; fido.md §1.2–§1.4).

use core::ops::BitOr;

/// A CTAPHID command, the low 7 bits of the CMD byte of an initialization packet
/// (CTAP 2.1 §11.2.4, §11.2.9; fido.md §1.3).
///
/// Every 7-bit code maps to exactly one variant ([`Command::from_code`]), so a parsed
/// command always re-encodes to the byte it came from. `Vendor` must hold a code in
/// `0x40..=0x7F` and `Unknown` a code that no other variant claims; [`Command::is_canonical`]
/// says whether a hand-built value obeys that, and the encoders refuse those that do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// `CTAPHID_PING` 0x01: the device echoes the payload (§11.2.9.1.4).
    Ping,
    /// `CTAPHID_MSG` 0x03: a U2F/CTAP1 APDU (§11.2.9.1.1).
    Msg,
    /// `CTAPHID_LOCK` 0x04: optional exclusive channel lock (§11.2.9.2.2).
    Lock,
    /// `CTAPHID_INIT` 0x06: channel allocation and resync (§11.2.9.1.3).
    Init,
    /// `CTAPHID_WINK` 0x08: optional "identify yourself" blink (§11.2.9.2.1).
    Wink,
    /// `CTAPHID_CBOR` 0x10: a CTAP2 command byte and CBOR map (§11.2.9.1.2).
    Cbor,
    /// `CTAPHID_CANCEL` 0x11: abort the pending CBOR request; never answered (§11.2.9.1.5).
    Cancel,
    /// `CTAPHID_KEEPALIVE` 0x3B: device → host status while processing (§11.2.9.1.7).
    Keepalive,
    /// `CTAPHID_ERROR` 0x3F: device → host, one [`ErrorCode`] byte (§11.2.9.1.6).
    Error,
    /// Vendor-specific command, code `0x40..=0x7F` (§11.2.9.3).
    Vendor(u8),
    /// Any other code, including the legacy U2FHID `SYNC` 0x3C; devices answer
    /// `ERR_INVALID_CMD`.
    Unknown(u8),
}

impl Command {
    /// Bit 7 of the CMD byte: set on initialization packets (§11.2.4).
    pub const TYPE_INIT: u8 = 0x80;
    /// First vendor-specific code (§11.2.9.3; fido.md §1.3).
    pub const VENDOR_FIRST: u8 = 0x40;
    /// Last vendor-specific code (§11.2.9.3; fido.md §1.3).
    pub const VENDOR_LAST: u8 = 0x7F;

    /// The command for a CMD byte; bit 7 (the packet-type bit) is ignored.
    pub const fn from_code(code: u8) -> Self {
        match code & !Self::TYPE_INIT {
            0x01 => Self::Ping,
            0x03 => Self::Msg,
            0x04 => Self::Lock,
            0x06 => Self::Init,
            0x08 => Self::Wink,
            0x10 => Self::Cbor,
            0x11 => Self::Cancel,
            0x3B => Self::Keepalive,
            0x3F => Self::Error,
            vendor @ Self::VENDOR_FIRST..=Self::VENDOR_LAST => Self::Vendor(vendor),
            other => Self::Unknown(other),
        }
    }

    /// The 7-bit command code, without the packet-type bit.
    pub const fn code(self) -> u8 {
        match self {
            Self::Ping => 0x01,
            Self::Msg => 0x03,
            Self::Lock => 0x04,
            Self::Init => 0x06,
            Self::Wink => 0x08,
            Self::Cbor => 0x10,
            Self::Cancel => 0x11,
            Self::Keepalive => 0x3B,
            Self::Error => 0x3F,
            Self::Vendor(code) | Self::Unknown(code) => code,
        }
    }

    /// Whether this value is what [`Command::from_code`] returns for its own code, i.e. it
    /// has exactly one wire encoding.
    pub fn is_canonical(self) -> bool {
        self.code() & Self::TYPE_INIT == 0 && Self::from_code(self.code()) == self
    }
}

impl From<u8> for Command {
    fn from(code: u8) -> Self {
        Self::from_code(code)
    }
}

/// The one-byte payload of a `CTAPHID_ERROR` message (CTAP 2.1 §11.2.9.1.6; fido.md §1.4).
///
/// A plain wire enum. Internal causes map onto it in exactly one place,
/// `impl From<Refusal> for ErrorCode` in the `error` module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorCode {
    /// `ERR_INVALID_CMD`: the command is not known or not supported.
    InvalidCmd = 0x01,
    /// `ERR_INVALID_PAR`: a parameter in the request is invalid.
    InvalidPar = 0x02,
    /// `ERR_INVALID_LEN`: the length field (BCNT) is invalid.
    InvalidLen = 0x03,
    /// `ERR_INVALID_SEQ`: a continuation packet was expected and something else came.
    InvalidSeq = 0x04,
    /// `ERR_MSG_TIMEOUT`: the message was not completed in time.
    MsgTimeout = 0x05,
    /// `ERR_CHANNEL_BUSY`: another channel holds the device; retry after a short delay.
    ChannelBusy = 0x06,
    /// `ERR_LOCK_REQUIRED`: the command requires a channel lock.
    LockRequired = 0x0A,
    /// `ERR_INVALID_CHANNEL`: the CID is not valid (`ERR_INVALID_CID` in U2FHID).
    InvalidChannel = 0x0B,
    /// `ERR_OTHER`: unspecified error.
    Other = 0x7F,
}

impl ErrorCode {
    /// The wire byte.
    pub const fn to_byte(self) -> u8 {
        self as u8
    }

    /// The error code for a wire byte, if CTAP 2.1 defines one.
    pub const fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            0x01 => Self::InvalidCmd,
            0x02 => Self::InvalidPar,
            0x03 => Self::InvalidLen,
            0x04 => Self::InvalidSeq,
            0x05 => Self::MsgTimeout,
            0x06 => Self::ChannelBusy,
            0x0A => Self::LockRequired,
            0x0B => Self::InvalidChannel,
            0x7F => Self::Other,
            _ => return None,
        })
    }
}

/// The one-byte payload of a `CTAPHID_KEEPALIVE` message (CTAP 2.1 §11.2.9.1.7; fido.md §1.3),
/// sent by the device at least every 100 ms while it processes a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeepaliveStatus {
    /// `STATUS_PROCESSING` 1: the authenticator is still working.
    Processing,
    /// `STATUS_UPNEEDED` 2: the authenticator waits for the user's touch.
    UpNeeded,
    /// A status byte CTAP 2.1 does not define; hosts should keep waiting.
    Other(u8),
}

impl KeepaliveStatus {
    /// The status for a wire byte.
    pub const fn from_byte(byte: u8) -> Self {
        match byte {
            1 => Self::Processing,
            2 => Self::UpNeeded,
            other => Self::Other(other),
        }
    }

    /// The wire byte.
    pub const fn to_byte(self) -> u8 {
        match self {
            Self::Processing => 1,
            Self::UpNeeded => 2,
            Self::Other(byte) => byte,
        }
    }
}

/// The capability byte of the INIT response (CTAP 2.1 §11.2.9.1.3; fido.md §1.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Capabilities(u8);

impl Capabilities {
    /// No optional capability.
    pub const NONE: Self = Self(0);
    /// `CAPABILITY_WINK` 0x01: the device implements `CTAPHID_WINK`.
    pub const WINK: Self = Self(0x01);
    /// `CAPFLAG_LOCK` 0x02 (legacy U2FHID): the device implements `CTAPHID_LOCK`. Without
    /// it LOCK is answered `ERR_INVALID_CMD` (Google HIDTest `test_Lock`).
    pub const LOCK: Self = Self(0x02);
    /// `CAPABILITY_CBOR` 0x04: the device implements `CTAPHID_CBOR`.
    pub const CBOR: Self = Self(0x04);
    /// `CAPABILITY_NMSG` 0x08: the device does **not** implement `CTAPHID_MSG` (U2F).
    pub const NMSG: Self = Self(0x08);
    /// What a YubiKey 5 reports: WINK | CBOR, U2F supported (fido.md §1.2, §4).
    pub const YUBIKEY_5: Self = Self(0x05);

    /// Flags from the wire byte, undefined bits included.
    pub const fn from_bits(bits: u8) -> Self {
        Self(bits)
    }

    /// The wire byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every flag of `other` is set here.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Capabilities {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// The vendor-defined device version of the INIT response (CTAP 2.1 §11.2.9.1.3), e.g.
/// firmware 5.2.1 for a YubiKey 5 (fido.md §1.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DeviceVersion {
    /// Major device version number.
    pub major: u8,
    /// Minor device version number.
    pub minor: u8,
    /// Build device version number.
    pub build: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for code in 0..=0x7F_u8 {
            let cmd = Command::from_code(code);
            assert_eq!(cmd.code(), code);
            assert!(cmd.is_canonical());
            assert_eq!(Command::from_code(code | Command::TYPE_INIT), cmd);
        }
        assert_eq!(Command::from_code(0x86), Command::Init);
        assert_eq!(Command::from_code(0x40), Command::Vendor(0x40));
        assert_eq!(Command::from_code(0x3C), Command::Unknown(0x3C));
    }

    #[test]
    fn hand_built_commands_can_be_non_canonical() {
        assert!(!Command::Vendor(0x01).is_canonical());
        assert!(!Command::Unknown(0x10).is_canonical());
        assert!(!Command::Vendor(0xC0).is_canonical());
        assert!(Command::Vendor(0x7F).is_canonical());
    }

    #[test]
    fn error_codes_round_trip() {
        for byte in 0..=u8::MAX {
            if let Some(code) = ErrorCode::from_byte(byte) {
                assert_eq!(code.to_byte(), byte);
            }
        }
        assert_eq!(ErrorCode::from_byte(0x0B), Some(ErrorCode::InvalidChannel));
        assert_eq!(ErrorCode::from_byte(0x07), None);
    }

    #[test]
    fn keepalive_and_capabilities() {
        assert_eq!(KeepaliveStatus::from_byte(2), KeepaliveStatus::UpNeeded);
        assert_eq!(KeepaliveStatus::Other(9).to_byte(), 9);
        assert_eq!(
            Capabilities::WINK | Capabilities::CBOR,
            Capabilities::YUBIKEY_5
        );
        assert!(Capabilities::YUBIKEY_5.contains(Capabilities::CBOR));
        assert!(!Capabilities::YUBIKEY_5.contains(Capabilities::NMSG));
    }
}
