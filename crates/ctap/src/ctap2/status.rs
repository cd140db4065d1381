//! CTAP2 status codes (CTAP 2.1 §8.2 "Status codes"; python-fido2 `CtapError.ERR`, OpenSK
//! `status_code.rs`) and the one mapping from this crate's [`Error`].

use crate::Error;

/// The status byte that starts every CTAP2 response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StatusCode {
    /// CTAP1_ERR_SUCCESS / CTAP2_OK.
    Ok = 0x00,
    /// CTAP1_ERR_INVALID_COMMAND.
    InvalidCommand = 0x01,
    /// CTAP1_ERR_INVALID_PARAMETER.
    InvalidParameter = 0x02,
    /// CTAP1_ERR_INVALID_LENGTH.
    InvalidLength = 0x03,
    /// CTAP1_ERR_INVALID_SEQ.
    InvalidSeq = 0x04,
    /// CTAP1_ERR_TIMEOUT.
    Timeout = 0x05,
    /// CTAP1_ERR_CHANNEL_BUSY.
    ChannelBusy = 0x06,
    /// CTAP1_ERR_LOCK_REQUIRED.
    LockRequired = 0x0A,
    /// CTAP1_ERR_INVALID_CHANNEL.
    InvalidChannel = 0x0B,
    /// CTAP2_ERR_CBOR_UNEXPECTED_TYPE.
    CborUnexpectedType = 0x11,
    /// CTAP2_ERR_INVALID_CBOR.
    InvalidCbor = 0x12,
    /// CTAP2_ERR_MISSING_PARAMETER.
    MissingParameter = 0x14,
    /// CTAP2_ERR_LIMIT_EXCEEDED.
    LimitExceeded = 0x15,
    /// CTAP2_ERR_FP_DATABASE_FULL.
    FpDatabaseFull = 0x17,
    /// CTAP2_ERR_LARGE_BLOB_STORAGE_FULL.
    LargeBlobStorageFull = 0x18,
    /// CTAP2_ERR_CREDENTIAL_EXCLUDED.
    CredentialExcluded = 0x19,
    /// CTAP2_ERR_PROCESSING.
    Processing = 0x21,
    /// CTAP2_ERR_INVALID_CREDENTIAL.
    InvalidCredential = 0x22,
    /// CTAP2_ERR_USER_ACTION_PENDING.
    UserActionPending = 0x23,
    /// CTAP2_ERR_OPERATION_PENDING.
    OperationPending = 0x24,
    /// CTAP2_ERR_NO_OPERATIONS.
    NoOperations = 0x25,
    /// CTAP2_ERR_UNSUPPORTED_ALGORITHM.
    UnsupportedAlgorithm = 0x26,
    /// CTAP2_ERR_OPERATION_DENIED.
    OperationDenied = 0x27,
    /// CTAP2_ERR_KEY_STORE_FULL.
    KeyStoreFull = 0x28,
    /// CTAP2_ERR_UNSUPPORTED_OPTION.
    UnsupportedOption = 0x2B,
    /// CTAP2_ERR_INVALID_OPTION.
    InvalidOption = 0x2C,
    /// CTAP2_ERR_KEEPALIVE_CANCEL.
    KeepaliveCancel = 0x2D,
    /// CTAP2_ERR_NO_CREDENTIALS.
    NoCredentials = 0x2E,
    /// CTAP2_ERR_USER_ACTION_TIMEOUT.
    UserActionTimeout = 0x2F,
    /// CTAP2_ERR_NOT_ALLOWED.
    NotAllowed = 0x30,
    /// CTAP2_ERR_PIN_INVALID.
    PinInvalid = 0x31,
    /// CTAP2_ERR_PIN_BLOCKED.
    PinBlocked = 0x32,
    /// CTAP2_ERR_PIN_AUTH_INVALID.
    PinAuthInvalid = 0x33,
    /// CTAP2_ERR_PIN_AUTH_BLOCKED.
    PinAuthBlocked = 0x34,
    /// CTAP2_ERR_PIN_NOT_SET.
    PinNotSet = 0x35,
    /// CTAP2_ERR_PUAT_REQUIRED (was PIN_REQUIRED).
    PuatRequired = 0x36,
    /// CTAP2_ERR_PIN_POLICY_VIOLATION.
    PinPolicyViolation = 0x37,
    /// Reserved (was CTAP2_ERR_PIN_TOKEN_EXPIRED).
    PinTokenExpired = 0x38,
    /// CTAP2_ERR_REQUEST_TOO_LARGE.
    RequestTooLarge = 0x39,
    /// CTAP2_ERR_ACTION_TIMEOUT.
    ActionTimeout = 0x3A,
    /// CTAP2_ERR_UP_REQUIRED.
    UpRequired = 0x3B,
    /// CTAP2_ERR_UV_BLOCKED.
    UvBlocked = 0x3C,
    /// CTAP2_ERR_INTEGRITY_FAILURE.
    IntegrityFailure = 0x3D,
    /// CTAP2_ERR_INVALID_SUBCOMMAND.
    InvalidSubcommand = 0x3E,
    /// CTAP2_ERR_UV_INVALID.
    UvInvalid = 0x3F,
    /// CTAP2_ERR_UNAUTHORIZED_PERMISSION.
    UnauthorizedPermission = 0x40,
    /// CTAP1_ERR_OTHER.
    Other = 0x7F,
    /// CTAP2_ERR_SPEC_LAST.
    SpecLast = 0xDF,
    /// CTAP2_ERR_EXTENSION_FIRST (0xE0–0xEF are extension-specific).
    ExtensionFirst = 0xE0,
    /// CTAP2_ERR_EXTENSION_LAST.
    ExtensionLast = 0xEF,
    /// CTAP2_ERR_VENDOR_FIRST (0xF0–0xFF are vendor-specific).
    VendorFirst = 0xF0,
    /// CTAP2_ERR_VENDOR_LAST.
    VendorLast = 0xFF,
}

impl From<StatusCode> for u8 {
    fn from(s: StatusCode) -> Self {
        s as u8
    }
}

impl TryFrom<u8> for StatusCode {
    type Error = u8;

    /// Recognises the listed codes; returns the byte itself otherwise (including the
    /// extension and vendor codes between the named ends of their ranges).
    fn try_from(v: u8) -> Result<Self, u8> {
        use StatusCode::*;
        let code = match v {
            0x00 => StatusCode::Ok,
            0x01 => InvalidCommand,
            0x02 => InvalidParameter,
            0x03 => InvalidLength,
            0x04 => InvalidSeq,
            0x05 => Timeout,
            0x06 => ChannelBusy,
            0x0A => LockRequired,
            0x0B => InvalidChannel,
            0x11 => CborUnexpectedType,
            0x12 => InvalidCbor,
            0x14 => MissingParameter,
            0x15 => LimitExceeded,
            0x17 => FpDatabaseFull,
            0x18 => LargeBlobStorageFull,
            0x19 => CredentialExcluded,
            0x21 => Processing,
            0x22 => InvalidCredential,
            0x23 => UserActionPending,
            0x24 => OperationPending,
            0x25 => NoOperations,
            0x26 => UnsupportedAlgorithm,
            0x27 => OperationDenied,
            0x28 => KeyStoreFull,
            0x2B => UnsupportedOption,
            0x2C => InvalidOption,
            0x2D => KeepaliveCancel,
            0x2E => NoCredentials,
            0x2F => UserActionTimeout,
            0x30 => NotAllowed,
            0x31 => PinInvalid,
            0x32 => PinBlocked,
            0x33 => PinAuthInvalid,
            0x34 => PinAuthBlocked,
            0x35 => PinNotSet,
            0x36 => PuatRequired,
            0x37 => PinPolicyViolation,
            0x38 => PinTokenExpired,
            0x39 => RequestTooLarge,
            0x3A => ActionTimeout,
            0x3B => UpRequired,
            0x3C => UvBlocked,
            0x3D => IntegrityFailure,
            0x3E => InvalidSubcommand,
            0x3F => UvInvalid,
            0x40 => UnauthorizedPermission,
            0x7F => Other,
            0xDF => SpecLast,
            0xE0 => ExtensionFirst,
            0xEF => ExtensionLast,
            0xF0 => VendorFirst,
            0xFF => VendorLast,
            other => return Err(other),
        };
        Result::Ok(code)
    }
}

/// The one mapping from this crate's errors to the status an authenticator answers with
/// (CTAP 2.1 §8 "Message Encoding" and the per-command error lists).
impl From<&Error> for StatusCode {
    fn from(e: &Error) -> Self {
        match e {
            Error::Cbor(_) => Self::InvalidCbor,
            Error::UnexpectedType(_) => Self::CborUnexpectedType,
            Error::MissingField(_) => Self::MissingParameter,
            Error::Truncated(_) | Error::TrailingBytes(_) | Error::InvalidLength(_) => {
                Self::InvalidLength
            }
            Error::LimitExceeded(_) => Self::LimitExceeded,
            Error::UnsupportedAlgorithm(_) => Self::UnsupportedAlgorithm,
            Error::UnknownCommand(_) | Error::UnsupportedClass(_) => Self::InvalidCommand,
            Error::UnknownSubcommand(_) => Self::InvalidSubcommand,
            Error::InvalidValue(_)
            | Error::UnknownField(_)
            | Error::InconsistentFlags(_)
            | Error::UnsupportedFormat => Self::InvalidParameter,
            Error::Unencodable(_) => Self::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_code_round_trips() {
        let mut known = 0;
        for b in 0..=u8::MAX {
            if let Ok(code) = StatusCode::try_from(b) {
                assert_eq!(u8::from(code), b);
                known += 1;
            }
        }
        // fido.md §2.8: 47 codes from 0x00 to 0x7F, plus SPEC_LAST and four range ends.
        assert_eq!(known, 47 + 5);
        assert_eq!(StatusCode::try_from(0x29), Err(0x29));
    }

    #[test]
    fn errors_map_to_statuses() {
        assert_eq!(
            StatusCode::from(&Error::Cbor(crate::CborError::DuplicateMapKey)),
            StatusCode::InvalidCbor
        );
        assert_eq!(
            StatusCode::from(&Error::MissingField("rp")),
            StatusCode::MissingParameter
        );
        assert_eq!(
            StatusCode::from(&Error::UnexpectedType("rp")),
            StatusCode::CborUnexpectedType
        );
        assert_eq!(
            StatusCode::from(&Error::UnknownCommand(0x55)),
            StatusCode::InvalidCommand
        );
        assert_eq!(
            StatusCode::from(&Error::UnknownSubcommand(8)),
            StatusCode::InvalidSubcommand
        );
    }
}
