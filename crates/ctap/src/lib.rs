//! Sans-IO codecs for the FIDO protocols a YubiKey speaks, in both directions.
//!
//! The authenticator side (firmware-sim), the client side (the bridge) and the relying-party
//! side (the verifier) share these types:
//!
//! * [`cbor`] — a small CBOR (RFC 8949) value type with the CTAP2 canonical encoding
//!   (CTAP 2.1 §8 "Message Encoding") and a strict, bounded decoder.
//! * [`auth_data`] — authenticatorData (WebAuthn L3 §6.1).
//! * [`cose`] — COSE_Key for ES256, EdDSA and the PIN protocols' ECDH key (RFC 9053,
//!   WebAuthn L3 §6.5.1.1, CTAP 2.1 §6.5.6).
//! * [`attestation`] — the `packed`, `fido-u2f` and `none` attestation statements and the
//!   attestationObject (WebAuthn L3 §6.5, §8.2, §8.6, §8.7).
//! * [`u2f`] — ISO 7816-4 APDUs and the U2F REGISTER / AUTHENTICATE / VERSION messages
//!   (FIDO U2F Raw Message Formats v1.2).
//! * [`ctap2`] — CTAP2 command and status bytes, requests and responses (CTAP 2.1 §6).
//!
//! What this crate will not do: no I/O, no clock, no randomness, and no cryptography.
//! Signatures and keys are plain bytes here; [`u2f`] and [`attestation`] build the exact
//! byte strings that get signed, and the verifier crate checks them with ring.
//!
//! Conventions (after rustls `msgs/codec.rs`): parsers take `&[u8]` and reject trailing
//! bytes; encoders append to a `Vec<u8>`. Every limit is a named constant that cites its
//! spec. Nothing here panics on input: malformed bytes give an [`Error`], which maps to the
//! protocol's own wire status with [`ctap2::StatusCode::from`] or [`u2f::StatusWord::from`].
//!
//! # Authenticator side (firmware-sim)
//!
//! ```
//! use tokengate_ctap::ctap2::{self, Request, StatusCode};
//!
//! fn handle_cbor(message: &[u8]) -> Vec<u8> {
//!     let mut reply = Vec::new();
//!     match Request::decode(message) {
//!         Ok(Request::GetInfo) => {
//!             let info = ctap2::GetInfoResponse {
//!                 versions: vec!["FIDO_2_0".into()],
//!                 ..Default::default()
//!             };
//!             reply.push(StatusCode::Ok.into());
//!             info.encode(&mut reply);
//!         }
//!         Ok(_) => reply.push(StatusCode::InvalidCommand.into()),
//!         Err(e) => reply.push(StatusCode::from(&e).into()),
//!     }
//!     reply
//! }
//!
//! assert_eq!(handle_cbor(&[0x04])[0], 0x00);
//! assert_eq!(handle_cbor(&[0x01])[0], u8::from(StatusCode::MissingParameter));
//! assert_eq!(handle_cbor(&[0x55])[0], u8::from(StatusCode::InvalidCommand));
//! ```
//!
//! # Relying-party side (verifier)
//!
//! ```
//! use tokengate_ctap::attestation::{self, AttestationObject, AttestationStatement};
//! # fn check(attestation_object: &[u8], client_data_hash: &[u8; 32])
//! #     -> Result<(), tokengate_ctap::Error> {
//! let obj = AttestationObject::decode(attestation_object)?;
//! let credential = obj.auth_data.attested_credential_data.as_ref();
//! let message = match &obj.statement {
//!     AttestationStatement::Packed { .. } => {
//!         attestation::signed_data(&obj.auth_data.to_vec(), client_data_hash)
//!     }
//!     AttestationStatement::FidoU2f { .. } => {
//!         attestation::fido_u2f_signed_data(&obj.auth_data, client_data_hash)?
//!     }
//!     AttestationStatement::None => Vec::new(),
//! };
//! // ... verify the statement's `sig` over `message` with ring, using
//! // `credential.credential_public_key.public_key_bytes()` or the certificate's key.
//! # let _ = (credential, message);
//! # Ok(())
//! # }
//! ```
//!
//! # Client side (bridge)
//!
//! ```
//! use tokengate_ctap::u2f::{Request, ResponseApdu, StatusWord};
//!
//! let mut apdu = Vec::new();
//! Request::Version.encode(&mut apdu)?;
//! assert_eq!(apdu, [0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
//! let reply = ResponseApdu::decode(b"U2F_V2\x90\x00")?;
//! assert_eq!(reply.status(), Some(StatusWord::NoError));
//! # Ok::<(), tokengate_ctap::Error>(())
//! ```

pub mod attestation;
pub mod auth_data;
pub mod cbor;
pub mod cose;
pub mod ctap2;
pub mod u2f;

mod codec;
#[cfg(test)]
mod test_util;

pub use cbor::CborError;

/// Everything that can go wrong in this crate.
///
/// Grouped by cause (STYLE.md): malformed input from the peer, then caller misuse. There is
/// no "rejected check" group because this crate checks syntax only; the verifier crate owns
/// the cryptographic and policy checks. Field names in the variants are the spec's names,
/// for the log; map to a wire status with [`ctap2::StatusCode::from`] or
/// [`u2f::StatusWord::from`] before anything reaches a peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- Malformed input from the peer ----
    /// The bytes are not CBOR this crate accepts (see [`CborError`]).
    #[error("invalid CBOR: {0}")]
    Cbor(#[from] CborError),
    /// A binary structure ends before the named part is complete.
    #[error("input ends inside {0}")]
    Truncated(&'static str),
    /// Bytes remain after a complete structure.
    #[error("{0} trailing byte(s) after the structure")]
    TrailingBytes(usize),
    /// A field has the wrong CBOR type (CTAP2_ERR_CBOR_UNEXPECTED_TYPE).
    #[error("{0} has an unexpected CBOR type")]
    UnexpectedType(&'static str),
    /// A required field is absent (CTAP2_ERR_MISSING_PARAMETER).
    #[error("required field {0} is missing")]
    MissingField(&'static str),
    /// A field or message has the wrong length (CTAP1_ERR_INVALID_LENGTH, U2F 0x6700).
    #[error("{0} has an invalid length")]
    InvalidLength(&'static str),
    /// A field is well-typed but its value is not allowed.
    #[error("{0} has an invalid value")]
    InvalidValue(&'static str),
    /// A closed structure (COSE key, attestation statement) carries a field it must not.
    #[error("unexpected field in {0}")]
    UnknownField(&'static str),
    /// A length or count is beyond a limit named in this crate.
    #[error("{0} exceeds its limit")]
    LimitExceeded(&'static str),
    /// The authenticatorData flags contradict its content (AT or ED).
    #[error("authenticatorData flag {0} does not match the data present")]
    InconsistentFlags(&'static str),
    /// A COSE algorithm, key type or curve this crate does not handle.
    #[error("unsupported COSE algorithm, key type or curve {0}")]
    UnsupportedAlgorithm(i64),
    /// An attestation statement format other than `packed`, `fido-u2f` and `none`.
    #[error("unsupported attestation statement format")]
    UnsupportedFormat,
    /// An unknown CTAP2 command byte or U2F instruction.
    #[error("unknown command {0:#04x}")]
    UnknownCommand(u8),
    /// An unknown CTAP2 subcommand (ClientPIN, CredentialManagement).
    #[error("unknown subcommand {0}")]
    UnknownSubcommand(u64),
    /// A U2F APDU with a class byte other than 0x00.
    #[error("unsupported APDU class {0:#04x}")]
    UnsupportedClass(u8),

    // ---- Caller misuse ----
    /// The value cannot be put on the wire (e.g. APDU data longer than 65535 bytes).
    #[error("{0} cannot be encoded")]
    Unencodable(&'static str),
}
