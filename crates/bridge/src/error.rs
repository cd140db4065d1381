//! The crate's one error type, grouped by cause (STYLE.md): reaching the key, what the key
//! (or the person at it) answered, time and cancellation, malformed bytes from the key, and
//! caller misuse. Every message says what to do next.

use std::time::Duration;

use tokengate_ctap::ctap2::StatusCode;
use tokengate_ctaphid::ErrorCode;

/// Everything that can go wrong talking to a security key.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- Finding and reaching the key ----
    /// Discovery found no FIDO security key.
    #[error(
        "no FIDO security key found over USB HID; plug one in (for the simulator use \
         --device udp:127.0.0.1:8111)"
    )]
    NoDevice,
    /// The address could not be opened or did not answer CTAPHID_INIT.
    #[error("cannot reach the security key at {address}: {reason}")]
    Unreachable {
        /// The device address, as given.
        address: String,
        /// What went wrong, for a person.
        reason: String,
    },
    /// The key went away in the middle of an exchange (unplugged, simulator stopped).
    #[error(
        "the security key stopped answering ({0}); check that it is still plugged in (or \
         that the simulator still runs) and try again"
    )]
    Disconnected(String),
    /// USB HID enumeration is not available on this machine.
    #[error("USB HID is not available: {0}")]
    Hid(String),
    /// An operating-system error on the transport.
    #[error("I/O error talking to the security key: {0}")]
    Io(#[from] std::io::Error),

    // ---- What the key, or the person at it, answered ----
    /// Another program holds the key for longer than the deadline (CTAPHID ERR_CHANNEL_BUSY).
    #[error("the security key is busy with another program; finish or close it and try again")]
    DeviceBusy,
    /// The key needs its PIN for this operation and no PIN could be asked for.
    #[error(
        "this security key needs its PIN; run the command in a terminal so that the PIN can \
         be asked for"
    )]
    PinRequired,
    /// The PIN was wrong (CTAP2_ERR_PIN_INVALID).
    #[error("{}", pin_invalid_message(*.retries))]
    PinInvalid {
        /// Attempts left before the PIN is blocked, if the key said.
        retries: Option<u64>,
    },
    /// No PIN attempts are left (CTAP2_ERR_PIN_BLOCKED).
    #[error(
        "the security key's PIN is blocked (no attempts left); only a reset of the key's FIDO \
         application unblocks it, and a reset deletes its credentials"
    )]
    PinBlocked,
    /// Too many wrong PINs since the key was plugged in (CTAP2_ERR_PIN_AUTH_BLOCKED).
    #[error("too many wrong PINs in a row; remove and re-insert the security key, then try again")]
    PinAuthBlocked,
    /// User verification was required but the key has no PIN (CTAP2_ERR_PIN_NOT_SET).
    #[error(
        "this operation needs user verification but the security key has no PIN; set one \
         first (e.g. `ykman fido access change-pin`)"
    )]
    PinNotSet,
    /// The PIN does not meet the key's policy (length, CTAP2_ERR_PIN_POLICY_VIOLATION).
    #[error("the PIN is not acceptable: {0}")]
    PinPolicy(String),
    /// The person declined, or the key refused (CTAP2_ERR_OPERATION_DENIED).
    #[error("the security key declined the operation (the touch was refused); try again")]
    OperationDenied,
    /// The key stopped waiting for a touch (CTAP2_ERR_USER_ACTION_TIMEOUT / ACTION_TIMEOUT).
    #[error("the security key was not touched in time; try again and touch it when it blinks")]
    TouchTimedOut,
    /// The key holds no credential for the request (CTAP2_ERR_NO_CREDENTIALS, U2F 0x6A80).
    #[error(
        "this security key holds no credential for this account; use the key that was \
         registered"
    )]
    NoCredentials,
    /// The key already holds a credential from the exclude list (CTAP2_ERR_CREDENTIAL_EXCLUDED).
    #[error("this security key is already registered for this account")]
    CredentialExcluded,
    /// The key lacks a feature the operation needs.
    #[error("the security key does not support {0}")]
    Unsupported(&'static str),
    /// Any other CTAP2 status.
    #[error("the security key refused the request: {}", status_name(*.0))]
    Status(u8),
    /// Any other U2F status word.
    #[error("the security key refused the U2F request: status word {0:#06x}")]
    U2fStatus(u16),

    // ---- Time and cancellation ----
    /// The overall deadline passed.
    #[error(
        "no answer from the security key within {} s; touch it when it blinks, or allow more \
         time (--timeout)", .after.as_secs()
    )]
    TimedOut {
        /// The deadline that passed.
        after: Duration,
    },
    /// The caller cancelled (Ctrl-C).
    #[error("cancelled")]
    Cancelled,

    // ---- Malformed input from the key ----
    /// The key's bytes break CTAPHID, CTAP2 or U2F.
    #[error("the security key sent a malformed answer: {0}")]
    Protocol(#[from] ProtocolError),

    // ---- Caller misuse ----
    /// A device address that is not `udp:HOST:PORT`, `hid:PATH` or `auto`.
    #[error("`{0}` is not a device address; use udp:HOST:PORT, hid:PATH or auto")]
    InvalidAddress(String),
    /// A request this crate cannot put on the wire.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

/// How the key's bytes were malformed, for the log and for bug reports.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// CTAPHID framing (fido.md §1).
    #[error("CTAPHID: {0}")]
    Framing(#[from] tokengate_ctaphid::Error),
    /// CTAP2 CBOR or U2F APDU encoding.
    #[error("encoding: {0}")]
    Encoding(#[from] tokengate_ctap::Error),
    /// A `CTAPHID_ERROR` other than the ones handled (busy, invalid channel).
    #[error("CTAPHID error {0:?}")]
    Ctaphid(ErrorCode),
    /// Something else the protocol does not allow.
    #[error("{0}")]
    Unexpected(&'static str),
}

fn pin_invalid_message(retries: Option<u64>) -> String {
    match retries {
        Some(1) => "wrong PIN; 1 attempt left before the PIN is blocked".to_owned(),
        Some(n) => format!("wrong PIN; {n} attempts left"),
        None => "wrong PIN".to_owned(),
    }
}

fn status_name(status: u8) -> String {
    match StatusCode::try_from(status) {
        Ok(code) => format!("{code:?} ({status:#04x})"),
        Err(_) => format!("status {status:#04x}"),
    }
}

impl Error {
    /// The error a CTAP2 status other than OK means (CTAP 2.1 §8.2). PIN_INVALID needs the
    /// retry count, which the caller asks for separately.
    pub(crate) fn from_status(status: u8) -> Self {
        match StatusCode::try_from(status) {
            Ok(StatusCode::ChannelBusy) => Self::DeviceBusy,
            Ok(StatusCode::PuatRequired) => Self::PinRequired,
            Ok(StatusCode::PinInvalid) => Self::PinInvalid { retries: None },
            Ok(StatusCode::PinBlocked) => Self::PinBlocked,
            Ok(StatusCode::PinAuthBlocked) => Self::PinAuthBlocked,
            Ok(StatusCode::PinNotSet) => Self::PinNotSet,
            Ok(StatusCode::PinPolicyViolation) => {
                Self::PinPolicy("the key's PIN policy refused it".to_owned())
            }
            Ok(StatusCode::OperationDenied) => Self::OperationDenied,
            Ok(StatusCode::UserActionTimeout | StatusCode::ActionTimeout) => Self::TouchTimedOut,
            Ok(StatusCode::NoCredentials) => Self::NoCredentials,
            Ok(StatusCode::CredentialExcluded) => Self::CredentialExcluded,
            Ok(StatusCode::KeepaliveCancel) => Self::Cancelled,
            _ => Self::Status(status),
        }
    }

    pub(crate) fn unexpected(what: &'static str) -> Self {
        Self::Protocol(ProtocolError::Unexpected(what))
    }
}

impl From<tokengate_ctaphid::Error> for Error {
    fn from(e: tokengate_ctaphid::Error) -> Self {
        Self::Protocol(ProtocolError::Framing(e))
    }
}

impl From<tokengate_ctap::Error> for Error {
    fn from(e: tokengate_ctap::Error) -> Self {
        Self::Protocol(ProtocolError::Encoding(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_typed_errors() {
        assert!(matches!(Error::from_status(0x27), Error::OperationDenied));
        assert!(matches!(Error::from_status(0x2D), Error::Cancelled));
        assert!(matches!(Error::from_status(0x2F), Error::TouchTimedOut));
        assert!(matches!(Error::from_status(0x3A), Error::TouchTimedOut));
        assert!(matches!(Error::from_status(0x31), Error::PinInvalid { .. }));
        assert!(matches!(Error::from_status(0x32), Error::PinBlocked));
        assert!(matches!(Error::from_status(0x34), Error::PinAuthBlocked));
        assert!(matches!(Error::from_status(0x35), Error::PinNotSet));
        assert!(matches!(Error::from_status(0x36), Error::PinRequired));
        assert!(matches!(Error::from_status(0x2E), Error::NoCredentials));
        assert!(matches!(
            Error::from_status(0x19),
            Error::CredentialExcluded
        ));
        assert!(matches!(Error::from_status(0x06), Error::DeviceBusy));
        assert!(matches!(Error::from_status(0x26), Error::Status(0x26)));
    }

    #[test]
    fn messages_say_what_to_do() {
        let wrong = Error::PinInvalid { retries: Some(2) }.to_string();
        assert_eq!(wrong, "wrong PIN; 2 attempts left");
        let last = Error::PinInvalid { retries: Some(1) }.to_string();
        assert!(last.contains("1 attempt left"), "{last}");
        let refused = Error::Status(0x26).to_string();
        assert!(refused.contains("UnsupportedAlgorithm (0x26)"), "{refused}");
        let unknown = Error::Status(0x99).to_string();
        assert!(unknown.contains("status 0x99"), "{unknown}");
        let timeout = Error::TimedOut {
            after: Duration::from_secs(30),
        }
        .to_string();
        assert!(timeout.contains("30 s"), "{timeout}");
        assert!(Error::NoDevice.to_string().contains("udp:127.0.0.1:8111"));
    }
}
