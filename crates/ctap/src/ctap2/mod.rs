//! CTAP2 messages (CTAP 2.1 §6 "Authenticator API"): command bytes, status codes, and the
//! requests and responses of MakeCredential, GetAssertion, GetNextAssertion, GetInfo,
//! ClientPIN, Reset, CredentialManagement and Selection.
//!
//! On CTAPHID a request is `command byte ‖ CBOR map with integer keys` and a response is
//! `status byte ‖ optional CBOR map` (CTAP 2.1 §8 "Message Encoding"). [`Request::decode`]
//! parses the former (authenticator side) and [`Request::encode`] writes it (client side);
//! each response type has `decode` (client side) and `encode` (authenticator side) for the
//! CBOR part, and [`split_response`] / [`encode_response`] handle the status byte.
//!
//! Decoding follows CTAP 2.1 conventions: map keys the spec does not define are ignored
//! (forward compatibility), a missing required parameter is [`Error::MissingField`], a wrong
//! CBOR type is [`Error::UnexpectedType`], and so on; [`StatusCode::from`] turns any
//! [`Error`] into the status the authenticator must answer with. Semantic checks that depend
//! on authenticator state (PIN set, algorithms supported, pinUvAuthParam verification) are
//! the caller's.
//!
//! Encoding is always CTAP2 canonical. Round trips are semantic: a decoded request re-encodes
//! to a canonical message that decodes to the same value (unknown keys are dropped, an
//! empty optional list is omitted).

mod entities;
mod request;
mod response;
mod status;

pub use entities::{
    MAX_USER_ID_LEN, PUBLIC_KEY_CREDENTIAL_TYPE, PublicKeyCredentialDescriptor,
    PublicKeyCredentialParameters, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
};
pub use request::{
    ClientPinRequest, ClientPinSubCommand, CredentialManagementParams, CredentialManagementRequest,
    CredentialManagementSubCommand, EXT_CRED_PROTECT, EXT_HMAC_SECRET, GetAssertionExtensions,
    GetAssertionOptions, GetAssertionRequest, HmacSecretInput, MakeCredentialExtensions,
    MakeCredentialOptions, MakeCredentialRequest, Request, permissions,
};
pub use response::{
    ClientPinResponse, CredentialManagementResponse, GetAssertionResponse, GetInfoResponse,
    MakeCredentialResponse,
};
pub use status::StatusCode;

use crate::Error;
use crate::cbor::Value;

/// CTAP2 command bytes (CTAP 2.1 §6 and §8.1 "Commands"; python-fido2 `Ctap2.CMD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Command {
    /// authenticatorMakeCredential.
    MakeCredential = 0x01,
    /// authenticatorGetAssertion.
    GetAssertion = 0x02,
    /// authenticatorGetInfo.
    GetInfo = 0x04,
    /// authenticatorClientPIN.
    ClientPin = 0x06,
    /// authenticatorReset.
    Reset = 0x07,
    /// authenticatorGetNextAssertion.
    GetNextAssertion = 0x08,
    /// authenticatorBioEnrollment.
    BioEnrollment = 0x09,
    /// authenticatorCredentialManagement.
    CredentialManagement = 0x0A,
    /// authenticatorSelection.
    Selection = 0x0B,
    /// authenticatorLargeBlobs.
    LargeBlobs = 0x0C,
    /// authenticatorConfig.
    Config = 0x0D,
    /// authenticatorBioEnrollment, FIDO_2_1_PRE prototype.
    BioEnrollmentPreview = 0x40,
    /// authenticatorCredentialManagement, FIDO_2_1_PRE prototype (YubiKey 5 firmware 5.2
    /// advertises `credentialMgmtPreview`).
    CredentialManagementPreview = 0x41,
}

impl From<Command> for u8 {
    fn from(c: Command) -> Self {
        c as u8
    }
}

impl TryFrom<u8> for Command {
    type Error = Error;

    fn try_from(v: u8) -> Result<Self, Error> {
        Ok(match v {
            0x01 => Self::MakeCredential,
            0x02 => Self::GetAssertion,
            0x04 => Self::GetInfo,
            0x06 => Self::ClientPin,
            0x07 => Self::Reset,
            0x08 => Self::GetNextAssertion,
            0x09 => Self::BioEnrollment,
            0x0A => Self::CredentialManagement,
            0x0B => Self::Selection,
            0x0C => Self::LargeBlobs,
            0x0D => Self::Config,
            0x40 => Self::BioEnrollmentPreview,
            0x41 => Self::CredentialManagementPreview,
            other => return Err(Error::UnknownCommand(other)),
        })
    }
}

/// Splits a CTAPHID_CBOR response into its status byte and the CBOR payload after it
/// (empty when the command returns no data).
pub fn split_response(bytes: &[u8]) -> Result<(u8, &[u8]), Error> {
    bytes
        .split_first()
        .map(|(&status, payload)| (status, payload))
        .ok_or(Error::Truncated("status byte"))
}

/// Appends a CTAPHID_CBOR response: the status byte, then the payload's canonical
/// encoding if there is one.
pub fn encode_response(status: StatusCode, payload: Option<&Value>, out: &mut Vec<u8>) {
    out.push(status.into());
    if let Some(p) = payload {
        p.encode(out);
    }
}

#[cfg(test)]
mod tests;
