//! The authenticator: CTAP 2.1 and U2F command processing over an [`Env`], sans-IO.
//!
//! [`Authenticator::process_cbor`] takes a CTAPHID_CBOR payload (command byte ‖ CBOR) and
//! returns the response payload (status byte ‖ CBOR) as [`Step::Done`], or
//! [`Step::Pending`] when the command waits for a touch. The caller then calls
//! [`Authenticator::poll`] (sending KEEPALIVE meanwhile) until it is done, or
//! [`Authenticator::cancel`] on CTAPHID_CANCEL. A wait ends with CTAP2_ERR_USER_ACTION_TIMEOUT
//! after [`USER_PRESENCE_TIMEOUT`] and with CTAP2_ERR_OPERATION_DENIED when declined.
//!
//! [`Authenticator::process_u2f`] takes a CTAPHID_MSG APDU and answers at once: U2F never
//! blocks; REGISTER / AUTHENTICATE answer 0x6985 until a touch has been seen (fido.md §3,
//! §4 "Touch / user presence").
//!
//! Every signature uses the one global counter, which is incremented and written to
//! [`crate::Storage`] *before* the signature is made; a storage failure answers
//! CTAP2_ERR_OTHER / 0x6F00 and the counter value is never reused.
//!
//! What it will not do: no I/O, no sleeping, no logging (the caller logs commands and
//! statuses), no built-in UV.

mod assertion;
mod client_pin;
mod cred_mgmt;
mod make_credential;
mod u2f;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use ring::rand::SecureRandom;
use tokengate_ctap::cbor::Value;
use tokengate_ctap::ctap2::{
    GetInfoResponse, PublicKeyCredentialParameters, Request, StatusCode, encode_response,
};
use tokengate_ctaphid::DeviceVersion;

use crate::Error;
use crate::cert::pem;
use crate::crypto::{Algorithm, CredentialSecrets, MAX_CREDENTIAL_ID_LEN};
use crate::env::{Env, Presence, PresenceReason, PresenceRequest, Timestamp};
use crate::pin::{KeyAgreement, PIN_TOKEN_LEN, PinProtocol};
use crate::secret::Secret;
use crate::state::{DeviceState, MAX_RESIDENT_CREDENTIALS, Resident};

use assertion::{GetAssertionPrepared, NextAssertions};
use cred_mgmt::Enumeration;
use make_credential::MakeCredentialPrepared;

/// This simulator's AAGUID (its own, not Yubico's: its attestation is not Yubico's either).
pub const AAGUID: [u8; 16] = [
    0x7f, 0x6c, 0x3a, 0x1e, 0x2b, 0x9d, 0x4c, 0x58, 0x9e, 0x0a, 0x5d, 0x3b, 0x8f, 0x1c, 0x2a, 0x47,
];
/// The CTAPHID INIT device version and GetInfo `firmwareVersion`: a YubiKey 5 on firmware
/// 5.7.1, the first line to advertise FIDO_2_1.
pub const DEVICE_VERSION: DeviceVersion = DeviceVersion {
    major: 5,
    minor: 7,
    build: 1,
};
/// GetInfo `maxMsgSize` of a YubiKey 5 (fido.md §2.2); longer CTAP2 requests are answered
/// CTAP2_ERR_REQUEST_TOO_LARGE.
pub const MAX_MSG_SIZE: usize = 1200;
/// GetInfo `maxCredentialCountInList` of a YubiKey 5.
pub const MAX_CREDENTIAL_COUNT_IN_LIST: u64 = 8;
/// How long a CTAP2 command waits for a touch (OpenSK `TOUCH_TIMEOUT_MS`; fido.md §1.5).
pub const USER_PRESENCE_TIMEOUT: Duration = Duration::from_secs(30);
/// Reset is refused this long after power-up (OpenSK `RESET_TIMEOUT_DURATION_MS`, fido.md
/// §2.6; a YubiKey's window is shorter, 5 s, and the issue asks for 10 s).
pub const RESET_WINDOW: Duration = Duration::from_secs(10);
/// GetNextAssertion and credential enumeration must follow within this time (CTAP 2.1
/// §6.3 "authenticatorGetNextAssertion": 30 s timer).
pub const FOLLOW_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// A pinUvAuthToken stops working this long after it was issued (CTAP 2.1 §6.5.2.1
/// "maximum usage time period", default 10 minutes).
pub const PIN_TOKEN_LIFETIME: Duration = Duration::from_secs(600);
/// Consecutive wrong PINs before a power cycle is required (CTAP 2.1 §6.5.2.2).
pub const MAX_CONSECUTIVE_PIN_MISMATCHES: u8 = 3;

/// The outcome of a command.
#[must_use]
pub enum Step {
    /// The complete response payload.
    Done(Vec<u8>),
    /// The command waits for a touch: poll it.
    Pending(Pending),
}

/// A command waiting for user presence.
pub struct Pending {
    operation: Operation,
    request: PresenceRequest,
    started: Timestamp,
}

impl Pending {
    /// Why the touch is wanted.
    pub fn request(&self) -> &PresenceRequest {
        &self.request
    }

    /// When the wait ends with CTAP2_ERR_USER_ACTION_TIMEOUT.
    pub fn deadline(&self) -> Timestamp {
        self.started.saturating_add(USER_PRESENCE_TIMEOUT)
    }
}

/// What happens after the touch.
enum Operation {
    MakeCredential(Box<MakeCredentialPrepared>),
    GetAssertion(Box<GetAssertionPrepared>),
    /// CREDENTIAL_EXCLUDED after the touch (CTAP 2.1 §6.1.2 step 8).
    Excluded,
    /// A zero-length pinUvAuthParam: PIN_NOT_SET or PIN_INVALID after the touch.
    PinUvAuthSelection,
    Reset,
    Selection,
}

/// Runtime PIN state: lost at power-off, as on a real key.
struct PinRuntime {
    v1: KeyAgreement,
    v2: KeyAgreement,
    consecutive_mismatches: u8,
    token: Secret<PIN_TOKEN_LEN>,
    token_state: Option<TokenState>,
}

/// What the current pinUvAuthToken may do (CTAP 2.1 §6.5.2.1). Simplified: permissions are
/// not cleared after a MakeCredential, and there is no "user present" flag on the token; a
/// token lives until a new one is issued, the PIN changes, [`PIN_TOKEN_LIFETIME`] passes or
/// the device powers off.
struct TokenState {
    permissions: u64,
    rp_id: Option<String>,
    issued: Timestamp,
}

impl PinRuntime {
    fn new(rng: &dyn SecureRandom) -> Result<Self, Error> {
        Ok(Self {
            v1: KeyAgreement::generate(rng)?,
            v2: KeyAgreement::generate(rng)?,
            consecutive_mismatches: 0,
            token: Secret::random(rng)?,
            token_state: None,
        })
    }

    fn key_agreement(&self, protocol: PinProtocol) -> &KeyAgreement {
        match protocol {
            PinProtocol::V1 => &self.v1,
            PinProtocol::V2 => &self.v2,
        }
    }
}

/// The simulated authenticator.
pub struct Authenticator {
    env: Env,
    state: DeviceState,
    boot: Timestamp,
    pin: PinRuntime,
    next_assertions: Option<NextAssertions>,
    enumeration: Option<Enumeration>,
    /// A U2F touch wait in progress: when it began.
    u2f_wait: Option<Timestamp>,
}

impl Authenticator {
    /// Powers up: loads the state from `env.storage`, or creates and stores a new device
    /// (secret, CA, attestation certificate) on first use.
    pub fn new(mut env: Env) -> Result<Self, Error> {
        let mut state = match env.storage.load()? {
            Some(blob) => DeviceState::decode(&blob, &*env.rng)?,
            None => {
                let state = DeviceState::create(&*env.rng, &AAGUID)?;
                env.storage.store(&state.encode()?)?;
                state
            }
        };
        if let Some(counter) = env.storage.load_counter()? {
            state.counter = state.counter.max(counter);
        }
        let pin = PinRuntime::new(&*env.rng)?;
        let boot = env.clock.now();
        Ok(Self {
            env,
            state,
            boot,
            pin,
            next_assertions: None,
            enumeration: None,
            u2f_wait: None,
        })
    }

    /// The attestation CA certificate (DER).
    pub fn ca_certificate(&self) -> &[u8] {
        self.state.ca_cert()
    }

    /// The attestation CA certificate as PEM.
    pub fn ca_pem(&self) -> String {
        pem(self.state.ca_cert())
    }

    /// The attestation certificate (DER), issued by the CA.
    pub fn attestation_certificate(&self) -> &[u8] {
        self.state.attestation_cert()
    }

    /// The last signature counter value used.
    pub fn signature_counter(&self) -> u32 {
        self.state.counter
    }

    /// The environment's clock, now.
    pub fn now(&self) -> Timestamp {
        self.env.clock.now()
    }

    /// Processes one CTAPHID_CBOR request payload.
    pub fn process_cbor(&mut self, request: &[u8]) -> Step {
        let now = self.now();
        self.end_u2f_wait();
        // GetNextAssertion and the enumeration follow-ups must come directly after their
        // first command; anything else ends the sequence.
        let next_assertions = self.next_assertions.take();
        let enumeration = self.enumeration.take();
        if request.len() > MAX_MSG_SIZE {
            return Step::Done(status(StatusCode::RequestTooLarge));
        }
        let request = match Request::decode(request) {
            Ok(request) => request,
            Err(e) => return Step::Done(status(StatusCode::from(&e))),
        };
        let result = match request {
            Request::GetInfo => Ok(self.get_info()),
            Request::MakeCredential(r) => return self.make_credential(r),
            Request::GetAssertion(r) => return self.get_assertion(r),
            Request::GetNextAssertion => self.get_next_assertion(next_assertions),
            Request::ClientPin(r) => self.client_pin(r),
            Request::Reset => {
                if now.saturating_duration_since(self.boot) > RESET_WINDOW {
                    Err(StatusCode::NotAllowed)
                } else {
                    return self.await_presence(Operation::Reset, PresenceReason::Reset, None);
                }
            }
            Request::Selection => {
                return self.await_presence(Operation::Selection, PresenceReason::Selection, None);
            }
            Request::CredentialManagement(r) | Request::CredentialManagementPreview(r) => {
                self.credential_management(r, enumeration)
            }
        };
        Step::Done(result.unwrap_or_else(status))
    }

    /// Polls a pending command: done when touched, declined or timed out.
    pub fn poll(&mut self, pending: Pending) -> Step {
        let now = self.now();
        match self.env.presence.poll(now) {
            Presence::Touched => {
                self.env.presence.end();
                Step::Done(self.complete(pending.operation).unwrap_or_else(status))
            }
            Presence::Declined => {
                self.env.presence.end();
                Step::Done(status(StatusCode::OperationDenied))
            }
            Presence::Waiting if now >= pending.deadline() => {
                self.env.presence.end();
                Step::Done(status(StatusCode::UserActionTimeout))
            }
            Presence::Waiting => Step::Pending(pending),
        }
    }

    /// CTAPHID_CANCEL for a pending command: CTAP2_ERR_KEEPALIVE_CANCEL.
    pub fn cancel(&mut self, pending: Pending) -> Vec<u8> {
        drop(pending);
        self.env.presence.end();
        status(StatusCode::KeepaliveCancel)
    }

    /// Drops a pending command without a response (a resync INIT aborted it).
    pub fn abandon(&mut self, pending: Pending) {
        drop(pending);
        self.env.presence.end();
    }

    fn await_presence(
        &mut self,
        operation: Operation,
        reason: PresenceReason,
        rp_id: Option<String>,
    ) -> Step {
        let started = self.now();
        let request = PresenceRequest { reason, rp_id };
        self.env.presence.begin(started, &request);
        self.poll(Pending {
            operation,
            request,
            started,
        })
    }

    fn complete(&mut self, operation: Operation) -> Result<Vec<u8>, StatusCode> {
        match operation {
            Operation::MakeCredential(prepared) => self.finish_make_credential(*prepared),
            Operation::GetAssertion(prepared) => self.finish_get_assertion(*prepared),
            Operation::Excluded => Err(StatusCode::CredentialExcluded),
            Operation::PinUvAuthSelection => Err(if self.state.pin.is_some() {
                StatusCode::PinInvalid
            } else {
                StatusCode::PinNotSet
            }),
            Operation::Reset => self.reset(),
            Operation::Selection => Ok(status(StatusCode::Ok)),
        }
    }

    /// authenticatorGetInfo (CTAP 2.1 §6.4), shaped like a YubiKey 5 (fido.md §2.2).
    fn get_info(&self) -> Vec<u8> {
        let options: BTreeMap<String, bool> = [
            ("rk", true),
            ("up", true),
            ("clientPin", self.state.pin.is_some()),
            ("credMgmt", true),
            ("pinUvAuthToken", true),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let remaining = MAX_RESIDENT_CREDENTIALS.saturating_sub(self.state.residents.len());
        let info = GetInfoResponse {
            versions: vec!["U2F_V2".into(), "FIDO_2_0".into(), "FIDO_2_1".into()],
            extensions: Some(vec!["credProtect".into(), "hmac-secret".into()]),
            aaguid: AAGUID,
            options: Some(options),
            max_msg_size: Some(MAX_MSG_SIZE as u64),
            pin_uv_auth_protocols: Some(vec![2, 1]),
            max_credential_count_in_list: Some(MAX_CREDENTIAL_COUNT_IN_LIST),
            max_credential_id_length: Some(MAX_CREDENTIAL_ID_LEN as u64),
            transports: Some(vec!["usb".into()]),
            algorithms: Some(
                Algorithm::ALL
                    .iter()
                    .map(|a| PublicKeyCredentialParameters::public_key(a.cose()))
                    .collect(),
            ),
            min_pin_length: Some(4),
            firmware_version: Some(
                u64::from(DEVICE_VERSION.major) << 16
                    | u64::from(DEVICE_VERSION.minor) << 8
                    | u64::from(DEVICE_VERSION.build),
            ),
            remaining_discoverable_credentials: Some(remaining as u64),
            ..GetInfoResponse::default()
        };
        ok(Some(&info.to_value()))
    }

    /// authenticatorReset after the touch: new device secret, no credentials, no PIN.
    fn reset(&mut self) -> Result<Vec<u8>, StatusCode> {
        self.state.reset(&*self.env.rng).map_err(internal)?;
        self.pin = PinRuntime::new(&*self.env.rng).map_err(internal)?;
        self.persist()?;
        Ok(status(StatusCode::Ok))
    }

    /// Increments the global counter and stores it durably; only then may it be signed.
    fn next_counter(&mut self) -> Result<u32, StatusCode> {
        let next = self.state.counter.checked_add(1).ok_or(StatusCode::Other)?;
        // Kept even if the store fails: a value that may have reached the disk is never
        // handed out again.
        self.state.counter = next;
        // A storage with a separate counter record writes just that (one small in-place
        // write and fdatasync); otherwise the whole state.
        if !self.env.storage.store_counter(next).map_err(internal)? {
            self.persist()?;
        }
        Ok(next)
    }

    /// Stores the whole state.
    fn persist(&mut self) -> Result<(), StatusCode> {
        let blob = self.state.encode().map_err(internal)?;
        self.env.storage.store(&blob).map_err(internal)
    }

    /// Opens a credential ID for `rp_id_hash`: our own ID, and for a discoverable one,
    /// still present (not deleted).
    fn open_credential(
        &self,
        rp_id_hash: &[u8; 32],
        credential_id: &[u8],
    ) -> Option<(CredentialSecrets, Option<&Resident>)> {
        let secrets = self.state.keys().unwrap(rp_id_hash, credential_id)?;
        if !secrets.discoverable {
            return Some((secrets, None));
        }
        let resident = self
            .state
            .residents
            .iter()
            .find(|r| r.credential_id == credential_id)?;
        Some((secrets, Some(resident)))
    }

    /// Checks a pinUvAuthParam made with the pinUvAuthToken over `message` (CTAP 2.1
    /// §6.1.2 step 11, §6.2.2 step 9, §6.8.2): `Ok(true)` when present and valid, with
    /// `permission` and, if `rp_id` is given, bound to that RP (binding an unbound token).
    fn verify_pin_uv_auth(
        &mut self,
        param: Option<&[u8]>,
        protocol: Option<u64>,
        message: &[u8],
        permission: u64,
        rp_id: Option<&str>,
    ) -> Result<bool, StatusCode> {
        let Some(param) = param else {
            return Ok(false);
        };
        let protocol = protocol.ok_or(StatusCode::MissingParameter)?;
        let protocol = PinProtocol::from_wire(protocol).ok_or(StatusCode::InvalidParameter)?;
        let now = self.now();
        let token = &self.pin.token;
        let Some(state) = self.pin.token_state.as_mut() else {
            return Err(StatusCode::PinAuthInvalid);
        };
        if now.saturating_duration_since(state.issued) > PIN_TOKEN_LIFETIME {
            self.pin.token_state = None;
            return Err(StatusCode::PinAuthInvalid);
        }
        if !protocol.verify_token(token, message, param) || state.permissions & permission == 0 {
            return Err(StatusCode::PinAuthInvalid);
        }
        if let Some(rp_id) = rp_id {
            match &state.rp_id {
                Some(bound) if bound != rp_id => return Err(StatusCode::PinAuthInvalid),
                Some(_) => {}
                None => state.rp_id = Some(rp_id.to_owned()),
            }
        }
        Ok(true)
    }

    fn end_u2f_wait(&mut self) {
        if self.u2f_wait.take().is_some() {
            self.env.presence.end();
        }
    }
}

/// A response with only a status byte.
fn status(code: StatusCode) -> Vec<u8> {
    vec![code.into()]
}

/// A CTAP2_OK response with an optional CBOR payload.
fn ok(payload: Option<&Value>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_response(StatusCode::Ok, payload, &mut out);
    out
}

/// Environment failures become CTAP2_ERR_OTHER on the wire; the detail stays here.
fn internal(_: Error) -> StatusCode {
    StatusCode::Other
}
