//! U2F (CTAP1) messages: ISO 7816-4 command/response APDUs as carried in CTAPHID_MSG, and
//! the REGISTER, AUTHENTICATE and VERSION requests and responses.
//!
//! Sources: FIDO U2F Raw Message Formats v1.2 (§3 framing, §4 registration, §5
//! authentication, §6 version), ISO/IEC 7816-4 §5.1 (APDU cases), and what python-fido2
//! (`Ctap1.send_apdu`) and libfido2 (`iso7816.c`) put on the wire.
//!
//! [`CommandApdu::decode`] accepts every ISO case in short and extended form, plus the
//! U2F-over-HID habit of an extended Lc of `00 00 00` for an empty body followed by a 2-byte
//! Le. Encoders pick the form explicitly: [`CommandApdu::encode_extended`] produces exactly
//! what python-fido2 and libfido2 send (`CLA INS P1 P2 00 Lc_hi Lc_lo data 00 00`).
//!
//! [`registration_signed_data`] and [`authentication_signed_data`] build the bytes the
//! attestation key and the credential key sign; the verifier checks the signatures.

use crate::Error;
use crate::attestation::{AttestationObject, AttestationStatement};
use crate::auth_data::{AAGUID_LEN, AttestedCredentialData, AuthenticatorData, flags};
use crate::codec::Reader;
use crate::cose::{CoseKey, P256_UNCOMPRESSED_LEN, P256Point};

/// The only class byte U2F uses (U2F Raw Message Formats §3.1.1).
pub const CLA: u8 = 0x00;

/// Instruction bytes (U2F Raw Message Formats §4.1, §5.1, §6.1).
pub mod ins {
    /// U2F_REGISTER.
    pub const REGISTER: u8 = 0x01;
    /// U2F_AUTHENTICATE.
    pub const AUTHENTICATE: u8 = 0x02;
    /// U2F_VERSION.
    pub const VERSION: u8 = 0x03;
}

/// Length of the challenge parameter, a SHA-256 (U2F Raw Message Formats §4.1).
pub const CHALLENGE_LEN: usize = 32;
/// Length of the application parameter, a SHA-256 (U2F Raw Message Formats §4.1).
pub const APPLICATION_LEN: usize = 32;
/// Longest key handle: its length travels in one byte (U2F Raw Message Formats §4.3, §5.1).
pub const MAX_KEY_HANDLE_LEN: usize = 255;
/// First byte of a registration response, "reserved byte [1 byte], which for legacy
/// reasons has the value 0x05" (U2F Raw Message Formats §4.3).
pub const REGISTER_RESERVED_BYTE: u8 = 0x05;
/// The VERSION response body (U2F Raw Message Formats §6.1).
pub const VERSION_STRING: &[u8] = b"U2F_V2";
/// Longest DER ECDSA P-256 signature: SEQUENCE header (2) + two INTEGERs of at most 33
/// content bytes each with their 2-byte headers (SEC 1 §C.5, X.690 §8.3).
pub const MAX_ECDSA_P256_SIGNATURE_LEN: usize = 72;
/// Most length octets accepted in a DER length (X.690 §8.1.3.5): two cover 65535 bytes,
/// more than a whole CTAPHID message (7609 bytes, CTAP 2.1 §11.2.4) can carry.
pub const MAX_DER_LENGTH_OCTETS: usize = 2;
/// Largest Lc in a short APDU (ISO 7816-4 §5.1).
pub const MAX_SHORT_LC: usize = 255;
/// Largest Lc in an extended APDU (ISO 7816-4 §5.1).
pub const MAX_EXTENDED_LC: usize = 65_535;
/// Largest Ne a short Le can express (`00` means 256; ISO 7816-4 §5.1).
pub const MAX_SHORT_NE: u32 = 256;
/// Largest Ne an extended Le can express (`00 00` means 65536; ISO 7816-4 §5.1).
pub const MAX_EXTENDED_NE: u32 = 65_536;

/// Status words (ISO 7816-4 §5.1.3 as used by U2F Raw Message Formats §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum StatusWord {
    /// SW_NO_ERROR.
    NoError = 0x9000,
    /// SW_WRONG_LENGTH: the request length is invalid.
    WrongLength = 0x6700,
    /// SW_CONDITIONS_NOT_SATISFIED: test of user presence required (touch needed).
    ConditionsNotSatisfied = 0x6985,
    /// SW_COMMAND_NOT_ALLOWED.
    CommandNotAllowed = 0x6986,
    /// SW_WRONG_DATA: invalid key handle or application.
    WrongData = 0x6A80,
    /// SW_INS_NOT_SUPPORTED.
    InsNotSupported = 0x6D00,
    /// SW_CLA_NOT_SUPPORTED.
    ClaNotSupported = 0x6E00,
    /// No precise diagnosis (ISO 7816-4): the answer to an internal error.
    Unknown = 0x6F00,
}

impl From<StatusWord> for u16 {
    fn from(sw: StatusWord) -> Self {
        sw as u16
    }
}

impl TryFrom<u16> for StatusWord {
    type Error = u16;

    /// Recognises the listed words; returns the value itself otherwise.
    fn try_from(v: u16) -> Result<Self, u16> {
        Ok(match v {
            0x9000 => Self::NoError,
            0x6700 => Self::WrongLength,
            0x6985 => Self::ConditionsNotSatisfied,
            0x6986 => Self::CommandNotAllowed,
            0x6A80 => Self::WrongData,
            0x6D00 => Self::InsNotSupported,
            0x6E00 => Self::ClaNotSupported,
            0x6F00 => Self::Unknown,
            other => return Err(other),
        })
    }
}

/// The one mapping from this crate's errors to a U2F status word.
impl From<&Error> for StatusWord {
    fn from(e: &Error) -> Self {
        match e {
            Error::Truncated(_) | Error::TrailingBytes(_) | Error::InvalidLength(_) => {
                Self::WrongLength
            }
            Error::UnknownCommand(_) => Self::InsNotSupported,
            Error::UnsupportedClass(_) => Self::ClaNotSupported,
            Error::Unencodable(_) => Self::Unknown,
            _ => Self::WrongData,
        }
    }
}

/// AUTHENTICATE control byte, carried in P1 (U2F Raw Message Formats §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Control {
    /// "enforce-user-presence-and-sign".
    EnforceUserPresenceAndSign = 0x03,
    /// "check-only": answer 0x6985 for a valid key handle, 0x6A80 otherwise.
    CheckOnly = 0x07,
    /// "dont-enforce-user-presence-and-sign".
    DontEnforceUserPresenceAndSign = 0x08,
}

impl TryFrom<u8> for Control {
    type Error = Error;

    fn try_from(v: u8) -> Result<Self, Error> {
        match v {
            0x03 => Ok(Self::EnforceUserPresenceAndSign),
            0x07 => Ok(Self::CheckOnly),
            0x08 => Ok(Self::DontEnforceUserPresenceAndSign),
            _ => Err(Error::InvalidValue("control byte")),
        }
    }
}

/// A command APDU (ISO 7816-4 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandApdu {
    /// Class byte.
    pub cla: u8,
    /// Instruction byte.
    pub ins: u8,
    /// Parameter 1.
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    /// Command data (Nc = its length).
    pub data: Vec<u8>,
    /// Ne, the maximum response length expected, if Le is present: 1..=65536.
    pub ne: Option<u32>,
}

impl CommandApdu {
    /// Parses any ISO 7816-4 case (1, 2S/3S/4S, 2E/3E/4E) and the U2F form with an
    /// extended Lc of zero (`00 00 00`) before a 2-byte Le.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let (&[cla, ins, p1, p2], body) = bytes
            .split_first_chunk::<4>()
            .ok_or(Error::Truncated("APDU header"))?;
        let (data, ne) = match body {
            // Case 1.
            [] => (&[][..], None),
            // Case 2S.
            &[le] => (&[][..], Some(short_ne(le))),
            // Extended cases: a zero byte then at least two more.
            [0, rest @ ..] if rest.len() >= 2 => decode_extended_body(rest)?,
            // Short cases 3S and 4S.
            [lc, rest @ ..] => {
                let lc = usize::from(*lc);
                if lc == 0 {
                    return Err(Error::InvalidLength("Lc"));
                }
                match rest.len() {
                    n if n == lc => (rest, None),
                    n if n == lc + 1 => {
                        let (&le, data) = rest.split_last().ok_or(Error::InvalidLength("Lc"))?;
                        (data, Some(short_ne(le)))
                    }
                    _ => return Err(Error::InvalidLength("Lc")),
                }
            }
        };
        Ok(Self {
            cla,
            ins,
            p1,
            p2,
            data: data.to_vec(),
            ne,
        })
    }

    /// Appends the extended-length encoding U2F-over-HID clients send: Lc as `00 hi lo`
    /// whenever data or Le is present (`00 00 00` for no data), Le as `hi lo`
    /// (`00 00` for 65536). With neither data nor Le only the header is written.
    pub fn encode_extended(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        if self.data.len() > MAX_EXTENDED_LC {
            return Err(Error::Unencodable("APDU data"));
        }
        let le = match self.ne {
            None => None,
            Some(ne @ 1..MAX_EXTENDED_NE) => Some(ne),
            Some(MAX_EXTENDED_NE) => Some(0),
            Some(_) => return Err(Error::Unencodable("Ne")),
        };
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        if self.data.is_empty() && le.is_none() {
            return Ok(());
        }
        out.push(0);
        // Checked against MAX_EXTENDED_LC above.
        let lc = u16::try_from(self.data.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&lc.to_be_bytes());
        out.extend_from_slice(&self.data);
        if let Some(le) = le {
            let le = u16::try_from(le).unwrap_or(0);
            out.extend_from_slice(&le.to_be_bytes());
        }
        Ok(())
    }

    /// Appends the short encoding (data ≤ 255 bytes, Ne ≤ 256).
    pub fn encode_short(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let lc = u8::try_from(self.data.len()).map_err(|_| Error::Unencodable("APDU data"))?;
        let le = match self.ne {
            None => None,
            Some(ne @ 1..MAX_SHORT_NE) => Some(u8::try_from(ne).unwrap_or(0)),
            Some(MAX_SHORT_NE) => Some(0),
            Some(_) => return Err(Error::Unencodable("Ne")),
        };
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        if lc > 0 {
            out.push(lc);
            out.extend_from_slice(&self.data);
        }
        out.extend(le);
        Ok(())
    }
}

fn short_ne(le: u8) -> u32 {
    if le == 0 { MAX_SHORT_NE } else { u32::from(le) }
}

fn extended_ne(le: u16) -> u32 {
    if le == 0 {
        MAX_EXTENDED_NE
    } else {
        u32::from(le)
    }
}

/// The body after the extended marker byte; `rest.len() >= 2`.
fn decode_extended_body(rest: &[u8]) -> Result<(&[u8], Option<u32>), Error> {
    let (&n, after) = rest
        .split_first_chunk::<2>()
        .ok_or(Error::InvalidLength("Lc"))?;
    let n = u16::from_be_bytes(n);
    let lc = usize::from(n);
    let le_of = |b: &[u8]| -> Result<u32, Error> {
        let b: [u8; 2] = b.try_into().map_err(|_| Error::InvalidLength("Le"))?;
        Ok(extended_ne(u16::from_be_bytes(b)))
    };
    match after.len() {
        // Case 2E: the two bytes were Le.
        0 => Ok((&[], Some(extended_ne(n)))),
        // U2F: an explicit Lc of zero, then Le.
        2 if lc == 0 => Ok((&[], Some(le_of(after)?))),
        len if len == lc && lc > 0 => Ok((after, None)),
        len if len == lc + 2 && lc > 0 => {
            let (data, le) = after.split_at(lc);
            Ok((data, Some(le_of(le)?)))
        }
        _ => Err(Error::InvalidLength("Lc")),
    }
}

/// A response APDU: body then SW1 SW2 (ISO 7816-4 §5.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseApdu {
    /// The response body.
    pub data: Vec<u8>,
    /// The status word as received (see [`ResponseApdu::status`]).
    pub sw: u16,
}

impl ResponseApdu {
    /// A response with `data` and `sw`.
    pub fn new(data: Vec<u8>, sw: StatusWord) -> Self {
        Self {
            data,
            sw: sw.into(),
        }
    }

    /// Splits off the trailing status word.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let (data, sw) = bytes
            .split_last_chunk::<2>()
            .ok_or(Error::Truncated("status word"))?;
        Ok(Self {
            data: data.to_vec(),
            sw: u16::from_be_bytes(*sw),
        })
    }

    /// Appends body and status word.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&self.sw.to_be_bytes());
    }

    /// The status word, if it is one of [`StatusWord`].
    pub fn status(&self) -> Option<StatusWord> {
        StatusWord::try_from(self.sw).ok()
    }
}

/// U2F_REGISTER request body (U2F Raw Message Formats §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisterRequest {
    /// SHA-256 of the client data.
    pub challenge: [u8; CHALLENGE_LEN],
    /// SHA-256 of the AppID (or RP ID).
    pub application: [u8; APPLICATION_LEN],
}

/// U2F_AUTHENTICATE request body (U2F Raw Message Formats §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticateRequest {
    /// What to do (P1).
    pub control: Control,
    /// SHA-256 of the client data.
    pub challenge: [u8; CHALLENGE_LEN],
    /// SHA-256 of the AppID.
    pub application: [u8; APPLICATION_LEN],
    /// The key handle from registration, at most [`MAX_KEY_HANDLE_LEN`] bytes.
    pub key_handle: Vec<u8>,
}

/// A U2F request, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// U2F_REGISTER.
    Register(RegisterRequest),
    /// U2F_AUTHENTICATE.
    Authenticate(AuthenticateRequest),
    /// U2F_VERSION.
    Version,
}

impl Request {
    /// Parses an APDU and then the request in it. Errors map to the status words the
    /// Google U2F conformance tests expect via [`StatusWord::from`]: CLA ≠ 0 → 0x6E00,
    /// unknown INS → 0x6D00, a body of the wrong size → 0x6700, bad control byte → 0x6A80.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        Self::from_apdu(&CommandApdu::decode(bytes)?)
    }

    /// Interprets a command APDU. P1 of REGISTER is ignored (libfido2 sends 0x00,
    /// Firefox 0x03); P2 is ignored throughout.
    pub fn from_apdu(apdu: &CommandApdu) -> Result<Self, Error> {
        if apdu.cla != CLA {
            return Err(Error::UnsupportedClass(apdu.cla));
        }
        match apdu.ins {
            ins::REGISTER => {
                let mut r = Reader::new(&apdu.data);
                let req = RegisterRequest {
                    challenge: r.array("challenge")?,
                    application: r.array("application")?,
                };
                r.finish()?;
                Ok(Self::Register(req))
            }
            ins::AUTHENTICATE => {
                let control = Control::try_from(apdu.p1)?;
                let mut r = Reader::new(&apdu.data);
                let challenge = r.array("challenge")?;
                let application = r.array("application")?;
                let kh_len = usize::from(r.u8("key handle length")?);
                if r.rest().len() != kh_len {
                    return Err(Error::InvalidLength("key handle"));
                }
                let key_handle = r.take(kh_len, "key handle")?.to_vec();
                r.finish()?;
                Ok(Self::Authenticate(AuthenticateRequest {
                    control,
                    challenge,
                    application,
                    key_handle,
                }))
            }
            ins::VERSION if apdu.data.is_empty() => Ok(Self::Version),
            ins::VERSION => Err(Error::InvalidLength("VERSION request")),
            other => Err(Error::UnknownCommand(other)),
        }
    }

    /// The request as an APDU, with Le = 65536 as python-fido2 and libfido2 send it.
    pub fn to_apdu(&self) -> Result<CommandApdu, Error> {
        let (ins, p1, data) = match self {
            Self::Register(r) => (ins::REGISTER, 0, [r.challenge, r.application].concat()),
            Self::Authenticate(r) => {
                let kh_len = u8::try_from(r.key_handle.len())
                    .map_err(|_| Error::Unencodable("key handle"))?;
                let mut data = Vec::with_capacity(65 + r.key_handle.len());
                data.extend_from_slice(&r.challenge);
                data.extend_from_slice(&r.application);
                data.push(kh_len);
                data.extend_from_slice(&r.key_handle);
                (ins::AUTHENTICATE, r.control as u8, data)
            }
            Self::Version => (ins::VERSION, 0, Vec::new()),
        };
        Ok(CommandApdu {
            cla: CLA,
            ins,
            p1,
            p2: 0,
            data,
            ne: Some(MAX_EXTENDED_NE),
        })
    }

    /// Appends the extended-length APDU ([`CommandApdu::encode_extended`]).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        self.to_apdu()?.encode_extended(out)
    }
}

/// U2F_REGISTER response body (U2F Raw Message Formats §4.3), without the status word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterResponse {
    /// The new credential's public key (uncompressed P-256 point on the wire).
    pub user_public_key: P256Point,
    /// The key handle, at most [`MAX_KEY_HANDLE_LEN`] bytes.
    pub key_handle: Vec<u8>,
    /// The attestation certificate, DER (one element; its length comes from its header).
    pub attestation_certificate: Vec<u8>,
    /// ECDSA signature (DER) over [`registration_signed_data`].
    pub signature: Vec<u8>,
}

impl RegisterResponse {
    /// Parses `0x05 | pubkey[65] | L | keyHandle[L] | cert (DER) | signature (DER)`.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        if r.u8("reserved byte")? != REGISTER_RESERVED_BYTE {
            return Err(Error::InvalidValue("reserved byte"));
        }
        let user_public_key =
            P256Point::from_sec1_uncompressed(r.take(P256_UNCOMPRESSED_LEN, "user public key")?)?;
        let kh_len = usize::from(r.u8("key handle length")?);
        let key_handle = r.take(kh_len, "key handle")?.to_vec();
        let cert_len = der_element_len(r.rest(), "attestation certificate")?;
        let attestation_certificate = r.take(cert_len, "attestation certificate")?.to_vec();
        let signature = read_signature(&mut r)?;
        r.finish()?;
        Ok(Self {
            user_public_key,
            key_handle,
            attestation_certificate,
            signature,
        })
    }

    /// Appends the response body (no status word).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let kh_len =
            u8::try_from(self.key_handle.len()).map_err(|_| Error::Unencodable("key handle"))?;
        out.push(REGISTER_RESERVED_BYTE);
        out.extend_from_slice(&self.user_public_key.to_sec1_uncompressed());
        out.push(kh_len);
        out.extend_from_slice(&self.key_handle);
        out.extend_from_slice(&self.attestation_certificate);
        out.extend_from_slice(&self.signature);
        Ok(())
    }

    /// The bytes the attestation key signed for this response and `request`.
    pub fn signed_data(&self, request: &RegisterRequest) -> Vec<u8> {
        registration_signed_data(
            &request.application,
            &request.challenge,
            &self.key_handle,
            &self.user_public_key,
        )
    }

    /// The equivalent `fido-u2f` attestationObject (WebAuthn L3 §8.6; python-fido2
    /// `AttestationObject.from_ctap1`): flags UP|AT, counter 0, zero AAGUID, the key handle
    /// as credential ID and the user key as ES256 COSE key. When the registration's
    /// challenge was a WebAuthn clientDataHash,
    /// [`crate::attestation::fido_u2f_signed_data`] of the result equals
    /// [`RegisterResponse::signed_data`], so one verifier path covers both.
    pub fn to_attestation_object(&self, application: &[u8; APPLICATION_LEN]) -> AttestationObject {
        AttestationObject {
            auth_data: AuthenticatorData {
                rp_id_hash: *application,
                flags: flags::UP | flags::AT,
                sign_count: 0,
                attested_credential_data: Some(AttestedCredentialData {
                    aaguid: [0; AAGUID_LEN],
                    credential_id: self.key_handle.clone(),
                    credential_public_key: CoseKey::Es256(self.user_public_key),
                }),
                extensions: None,
            },
            statement: AttestationStatement::FidoU2f {
                sig: self.signature.clone(),
                certificate: self.attestation_certificate.clone(),
            },
        }
    }
}

/// U2F_AUTHENTICATE response body (U2F Raw Message Formats §5.4), without the status word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticateResponse {
    /// The user presence byte: 0x01 if the user touched, else 0x00.
    pub user_presence: u8,
    /// The signature counter.
    pub counter: u32,
    /// ECDSA signature (DER) over [`authentication_signed_data`].
    pub signature: Vec<u8>,
}

impl AuthenticateResponse {
    /// Parses `UP | counter[4, BE] | signature (DER)`. Reserved presence bits must be 0.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let user_presence = r.u8("user presence")?;
        if user_presence & !flags::UP != 0 {
            return Err(Error::InvalidValue("user presence"));
        }
        let counter = r.u32_be("counter")?;
        let signature = read_signature(&mut r)?;
        r.finish()?;
        Ok(Self {
            user_presence,
            counter,
            signature,
        })
    }

    /// Appends the response body (no status word).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.user_presence);
        out.extend_from_slice(&self.counter.to_be_bytes());
        out.extend_from_slice(&self.signature);
    }

    /// The bytes the credential key signed for this response and `request`.
    pub fn signed_data(&self, application: &[u8; 32], challenge: &[u8; 32]) -> Vec<u8> {
        authentication_signed_data(application, self.user_presence, self.counter, challenge)
    }

    /// The 37-byte authenticatorData that starts the signed data (WebAuthn L3 §6.1.2
    /// "FIDO U2F Signature Format Compatibility"), so U2F assertions can be verified like
    /// FIDO2 ones.
    pub fn to_auth_data(&self, application: &[u8; APPLICATION_LEN]) -> AuthenticatorData {
        AuthenticatorData {
            rp_id_hash: *application,
            flags: self.user_presence,
            sign_count: self.counter,
            attested_credential_data: None,
            extensions: None,
        }
    }
}

/// `0x00 ‖ application ‖ challenge ‖ keyHandle ‖ userPublicKey`: what the attestation key
/// signs in a registration (U2F Raw Message Formats §4.3).
pub fn registration_signed_data(
    application: &[u8; APPLICATION_LEN],
    challenge: &[u8; CHALLENGE_LEN],
    key_handle: &[u8],
    user_public_key: &P256Point,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 64 + key_handle.len() + P256_UNCOMPRESSED_LEN);
    out.push(0x00);
    out.extend_from_slice(application);
    out.extend_from_slice(challenge);
    out.extend_from_slice(key_handle);
    out.extend_from_slice(&user_public_key.to_sec1_uncompressed());
    out
}

/// `application ‖ userPresence ‖ counter[4, BE] ‖ challenge`: what the credential key signs
/// in an authentication (U2F Raw Message Formats §5.4).
pub fn authentication_signed_data(
    application: &[u8; APPLICATION_LEN],
    user_presence: u8,
    counter: u32,
    challenge: &[u8; CHALLENGE_LEN],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(APPLICATION_LEN + 1 + 4 + CHALLENGE_LEN);
    out.extend_from_slice(application);
    out.push(user_presence);
    out.extend_from_slice(&counter.to_be_bytes());
    out.extend_from_slice(challenge);
    out
}

/// The DER signature that ends a response: one SEQUENCE spanning exactly the rest.
fn read_signature(r: &mut Reader<'_>) -> Result<Vec<u8>, Error> {
    let len = der_element_len(r.rest(), "signature")?;
    if len > MAX_ECDSA_P256_SIGNATURE_LEN {
        return Err(Error::LimitExceeded("signature"));
    }
    Ok(r.take(len, "signature")?.to_vec())
}

/// Total length (header plus content) of the DER SEQUENCE at the start of `bytes`
/// (X.690 §8.1.2–8.1.3, DER rules §10.1: definite, minimal length).
fn der_element_len(bytes: &[u8], what: &'static str) -> Result<usize, Error> {
    const SEQUENCE: u8 = 0x30;
    let mut r = Reader::new(bytes);
    if r.u8(what)? != SEQUENCE {
        return Err(Error::InvalidValue(what));
    }
    let first = r.u8(what)?;
    let (header, content) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 {
            // Indefinite length: BER only.
            return Err(Error::InvalidValue(what));
        }
        if octets > MAX_DER_LENGTH_OCTETS {
            return Err(Error::LimitExceeded(what));
        }
        let mut len = 0usize;
        for &b in r.take(octets, what)? {
            len = len << 8 | usize::from(b);
        }
        // Minimal: long form only from 128, and no leading zero octet.
        if len < 0x80 || (octets == 2 && len < 0x100) {
            return Err(Error::InvalidValue(what));
        }
        (2 + octets, len)
    };
    let total = header + content;
    if total > bytes.len() {
        return Err(Error::Truncated(what));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use proptest::prelude::*;

    use super::*;
    use crate::test_util::hex;

    #[test]
    fn version_apdu_matches_python_fido2() {
        let mut out = Vec::new();
        Request::Version.encode(&mut out).unwrap();
        assert_eq!(out, hex("00 03 00 00 00 00 00 00 00"));
        assert_eq!(Request::decode(&out), Ok(Request::Version));
    }

    #[test]
    fn register_apdu_layout() {
        let req = Request::Register(RegisterRequest {
            challenge: [1; 32],
            application: [2; 32],
        });
        let mut out = Vec::new();
        req.encode(&mut out).unwrap();
        assert_eq!(out[..7], hex("00 01 00 00 00 00 40")[..]);
        assert_eq!(out.len(), 7 + 64 + 2);
        assert_eq!(Request::decode(&out), Ok(req));
    }

    #[test]
    fn all_iso_cases_decode() {
        let cases: &[(&str, &[u8], Option<u32>)] = &[
            ("00030000", &[], None),
            ("0003000000", &[], Some(256)),
            ("0003000010", &[], Some(16)),
            ("0003000002aabb", &[0xaa, 0xbb], None),
            ("0003000002aabb00", &[0xaa, 0xbb], Some(256)),
            ("0003000000 0000", &[], Some(65536)),
            ("0003000000 0100", &[], Some(256)),
            ("0003000000 0002 aabb", &[0xaa, 0xbb], None),
            ("0003000000 0002 aabb 0000", &[0xaa, 0xbb], Some(65536)),
            ("0003000000 0000 0005", &[], Some(5)),
        ];
        for (h, data, ne) in cases {
            let apdu = CommandApdu::decode(&hex(h)).unwrap();
            assert_eq!((apdu.data.as_slice(), apdu.ne), (*data, *ne), "{h}");
        }
    }

    #[test]
    fn bad_apdus_map_to_u2f_status_words() {
        let cases: &[(&str, StatusWord)] = &[
            ("000300", StatusWord::WrongLength),
            ("0003000003aabb", StatusWord::WrongLength),
            ("0003000001aabbcc", StatusWord::WrongLength),
            ("0003000000 0003 aabb", StatusWord::WrongLength),
            ("0003000000 0000 00", StatusWord::WrongLength),
            // VERSION with data.
            ("0003000001aa", StatusWord::WrongLength),
            // REGISTER with 3 bytes.
            ("0001000003aabbcc", StatusWord::WrongLength),
            ("00090000", StatusWord::InsNotSupported),
            ("80030000", StatusWord::ClaNotSupported),
            // AUTHENTICATE with an unknown control byte.
            ("00020500", StatusWord::WrongData),
        ];
        for (h, sw) in cases {
            let err = Request::decode(&hex(h)).unwrap_err();
            assert_eq!(StatusWord::from(&err), *sw, "{h}: {err}");
        }
    }

    #[test]
    fn key_handle_length_perturbed_is_wrong_length() {
        let req = Request::Authenticate(AuthenticateRequest {
            control: Control::EnforceUserPresenceAndSign,
            challenge: [1; 32],
            application: [2; 32],
            key_handle: vec![3; 64],
        });
        let mut apdu = req.to_apdu().unwrap();
        assert_eq!(Request::from_apdu(&apdu), Ok(req));
        apdu.data[64] -= 8;
        let err = Request::from_apdu(&apdu).unwrap_err();
        assert_eq!(StatusWord::from(&err), StatusWord::WrongLength);
    }

    #[test]
    fn der_lengths() {
        assert_eq!(der_element_len(&hex("3000"), "x"), Ok(2));
        assert_eq!(
            der_element_len(&hex("30 81 80"), "x"),
            Err(Error::Truncated("x"))
        );
        assert_eq!(
            der_element_len(&hex("30 81 7f"), "x"),
            Err(Error::InvalidValue("x"))
        );
        assert_eq!(
            der_element_len(&hex("30 82 00 ff"), "x"),
            Err(Error::InvalidValue("x"))
        );
        assert_eq!(
            der_element_len(&hex("30 80"), "x"),
            Err(Error::InvalidValue("x"))
        );
        assert_eq!(
            der_element_len(&hex("30 83 010000"), "x"),
            Err(Error::LimitExceeded("x"))
        );
        assert_eq!(
            der_element_len(&hex("31 00"), "x"),
            Err(Error::InvalidValue("x"))
        );
        let mut long = hex("30 82 01 00");
        long.resize(4 + 256, 0);
        assert_eq!(der_element_len(&long, "x"), Ok(260));
    }

    #[test]
    fn status_words_convert() {
        for sw in [
            StatusWord::NoError,
            StatusWord::WrongLength,
            StatusWord::ConditionsNotSatisfied,
            StatusWord::CommandNotAllowed,
            StatusWord::WrongData,
            StatusWord::InsNotSupported,
            StatusWord::ClaNotSupported,
            StatusWord::Unknown,
        ] {
            assert_eq!(StatusWord::try_from(u16::from(sw)), Ok(sw));
        }
        assert_eq!(StatusWord::try_from(0x6a82), Err(0x6a82));
        let resp = ResponseApdu::decode(&hex("5532465f5632 9000")).unwrap();
        assert_eq!(resp.data, VERSION_STRING);
        assert_eq!(resp.status(), Some(StatusWord::NoError));
        assert_eq!(
            ResponseApdu::decode(&[0x90]),
            Err(Error::Truncated("status word"))
        );
    }

    fn arb_apdu() -> impl Strategy<Value = CommandApdu> {
        (
            any::<[u8; 4]>(),
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::option::of(1..=MAX_EXTENDED_NE),
        )
            .prop_map(|([cla, ins, p1, p2], data, ne)| CommandApdu {
                cla,
                ins,
                p1,
                p2,
                data,
                ne,
            })
    }

    fn arb_signature() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..=70).prop_map(|body| {
            let mut sig = vec![0x30, u8::try_from(body.len()).unwrap()];
            sig.extend(body);
            sig
        })
    }

    proptest! {
        #[test]
        fn apdu_round_trips(apdu in arb_apdu()) {
            let mut out = Vec::new();
            apdu.encode_extended(&mut out).unwrap();
            prop_assert_eq!(CommandApdu::decode(&out), Ok(apdu.clone()));
            let mut short = Vec::new();
            if apdu.encode_short(&mut short).is_ok() {
                prop_assert_eq!(CommandApdu::decode(&short), Ok(apdu));
            }
        }

        #[test]
        fn apdu_decoding_is_stable(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(apdu) = CommandApdu::decode(&bytes) {
                let mut out = Vec::new();
                apdu.encode_extended(&mut out).unwrap();
                prop_assert_eq!(CommandApdu::decode(&out), Ok(apdu));
            }
        }

        #[test]
        fn requests_round_trip(
            control in prop_oneof![
                Just(Control::EnforceUserPresenceAndSign),
                Just(Control::CheckOnly),
                Just(Control::DontEnforceUserPresenceAndSign),
            ],
            challenge in any::<[u8; 32]>(),
            application in any::<[u8; 32]>(),
            key_handle in proptest::collection::vec(any::<u8>(), 0..=255),
        ) {
            for req in [
                Request::Register(RegisterRequest { challenge, application }),
                Request::Authenticate(AuthenticateRequest {
                    control, challenge, application, key_handle: key_handle.clone(),
                }),
                Request::Version,
            ] {
                let mut out = Vec::new();
                req.encode(&mut out).unwrap();
                prop_assert_eq!(Request::decode(&out), Ok(req));
            }
        }

        #[test]
        fn responses_round_trip(
            x in any::<[u8; 32]>(),
            y in any::<[u8; 32]>(),
            key_handle in proptest::collection::vec(any::<u8>(), 0..=255),
            cert_body in proptest::collection::vec(any::<u8>(), 0..600),
            signature in arb_signature(),
            up in 0u8..=1,
            counter in any::<u32>(),
        ) {
            let mut certificate = vec![0x30];
            match cert_body.len() {
                n @ 0..=0x7f => certificate.push(u8::try_from(n).unwrap()),
                n @ 0x80..=0xff => certificate.extend([0x81, u8::try_from(n).unwrap()]),
                n => certificate.extend([0x82, (n >> 8) as u8, n as u8]),
            }
            certificate.extend(cert_body);
            let reg = RegisterResponse {
                user_public_key: P256Point { x, y },
                key_handle,
                attestation_certificate: certificate,
                signature: signature.clone(),
            };
            let mut out = Vec::new();
            reg.encode(&mut out).unwrap();
            prop_assert_eq!(RegisterResponse::decode(&out), Ok(reg));

            let auth = AuthenticateResponse { user_presence: up, counter, signature };
            let mut out = Vec::new();
            auth.encode(&mut out);
            prop_assert_eq!(AuthenticateResponse::decode(&out), Ok(auth));
        }
    }
}
