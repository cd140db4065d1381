//! authenticatorClientPIN (CTAP 2.1 §6.5.5): getPINRetries, getKeyAgreement, setPIN,
//! changePIN, getPinToken and getPinUvAuthTokenUsingPinWithPermissions, with PIN/UV auth
//! protocols 2 and 1.
//!
//! Retries: 8 after a correct PIN; every attempt first decrements and stores the counter;
//! 0 left is CTAP2_ERR_PIN_BLOCKED for good (until Reset). Three consecutive mismatches
//! give CTAP2_ERR_PIN_AUTH_BLOCKED until the next power-up (a simulator restart). A
//! mismatch regenerates the protocol's key-agreement key. No built-in UV: the UV
//! subcommands answer CTAP2_ERR_INVALID_SUBCOMMAND.

use tokengate_ctap::ctap2::{
    ClientPinRequest, ClientPinResponse, ClientPinSubCommand, StatusCode, permissions,
};

use super::{Authenticator, MAX_CONSECUTIVE_PIN_MISMATCHES, TokenState, internal, ok, status};
use crate::crypto::sha256;
use crate::pin::{KeyAgreement, PinProtocol, SharedSecret};
use crate::secret::Secret;
use crate::state::{MAX_PIN_RETRIES, PIN_HASH_LEN, PinRecord};

/// Length of the padded new PIN (CTAP 2.1 §6.5.5.5: 64 bytes).
const PADDED_PIN_LEN: usize = 64;
/// Minimum PIN length in code points (GetInfo `minPINLength`, default 4).
const MIN_PIN_CODE_POINTS: usize = 4;
/// Permissions this authenticator grants: mc, ga, cm (no be, lbw, acfg, pcmr).
const SUPPORTED_PERMISSIONS: u64 =
    permissions::MAKE_CREDENTIAL | permissions::GET_ASSERTION | permissions::CREDENTIAL_MANAGEMENT;

impl Authenticator {
    pub(super) fn client_pin(&mut self, request: ClientPinRequest) -> Result<Vec<u8>, StatusCode> {
        use ClientPinSubCommand as S;
        let protocol = request
            .pin_uv_auth_protocol
            .map(|v| PinProtocol::from_wire(v).ok_or(StatusCode::InvalidParameter))
            .transpose()?;
        // The decoder has checked that every subcommand but getPINRetries / getUVRetries
        // carries a protocol.
        let need_protocol = || protocol.ok_or(StatusCode::MissingParameter);
        match request.sub_command {
            S::GetPinRetries => {
                let response = ClientPinResponse {
                    pin_retries: Some(u64::from(
                        self.state
                            .pin
                            .as_ref()
                            .map_or(MAX_PIN_RETRIES, |p| p.retries),
                    )),
                    power_cycle_state: Some(
                        self.pin.consecutive_mismatches >= MAX_CONSECUTIVE_PIN_MISMATCHES,
                    ),
                    ..ClientPinResponse::default()
                };
                Ok(respond(&response))
            }
            S::GetKeyAgreement => {
                let key = self
                    .pin
                    .key_agreement(need_protocol()?)
                    .public_cose()
                    .map_err(internal)?;
                Ok(respond(&ClientPinResponse {
                    key_agreement: Some(key),
                    ..ClientPinResponse::default()
                }))
            }
            S::SetPin => self.set_pin(need_protocol()?, &request),
            S::ChangePin => self.change_pin(need_protocol()?, &request),
            S::GetPinToken => {
                if request.permissions.is_some() || request.rp_id.is_some() {
                    return Err(StatusCode::InvalidParameter);
                }
                let default = permissions::MAKE_CREDENTIAL | permissions::GET_ASSERTION;
                self.pin_token(need_protocol()?, &request, default, None)
            }
            S::GetPinUvAuthTokenUsingPinWithPermissions => {
                let wanted = request.permissions.ok_or(StatusCode::MissingParameter)?;
                if wanted == 0 {
                    return Err(StatusCode::InvalidParameter);
                }
                if wanted & !SUPPORTED_PERMISSIONS != 0 {
                    return Err(StatusCode::UnauthorizedPermission);
                }
                let rp_bound = permissions::MAKE_CREDENTIAL | permissions::GET_ASSERTION;
                if wanted & rp_bound != 0 && request.rp_id.is_none() {
                    return Err(StatusCode::InvalidParameter);
                }
                let rp_id = request.rp_id.clone();
                self.pin_token(need_protocol()?, &request, wanted, rp_id)
            }
            // No built-in user verification on this authenticator.
            S::GetPinUvAuthTokenUsingUvWithPermissions | S::GetUvRetries => {
                Err(StatusCode::InvalidSubcommand)
            }
        }
    }

    /// The shared secret with the platform's key-agreement key.
    fn platform_secret(
        &self,
        protocol: PinProtocol,
        request: &ClientPinRequest,
    ) -> Result<SharedSecret, StatusCode> {
        let key = request
            .key_agreement
            .as_ref()
            .ok_or(StatusCode::MissingParameter)?;
        self.pin
            .key_agreement(protocol)
            .shared_secret(protocol, key)
            .ok_or(StatusCode::InvalidParameter)
    }

    fn set_pin(
        &mut self,
        protocol: PinProtocol,
        request: &ClientPinRequest,
    ) -> Result<Vec<u8>, StatusCode> {
        let new_pin_enc = request
            .new_pin_enc
            .as_deref()
            .ok_or(StatusCode::MissingParameter)?;
        let param = request
            .pin_uv_auth_param
            .as_deref()
            .ok_or(StatusCode::MissingParameter)?;
        if self.state.pin.is_some() {
            return Err(StatusCode::PinAuthInvalid);
        }
        let shared = self.platform_secret(protocol, request)?;
        if !shared.verify(new_pin_enc, param) {
            return Err(StatusCode::PinAuthInvalid);
        }
        let (hash, code_points) = new_pin(&shared, new_pin_enc)?;
        self.state.pin = Some(PinRecord {
            hash,
            code_points,
            retries: MAX_PIN_RETRIES,
        });
        if let Err(code) = self.persist() {
            self.state.pin = None;
            return Err(code);
        }
        Ok(status(StatusCode::Ok))
    }

    fn change_pin(
        &mut self,
        protocol: PinProtocol,
        request: &ClientPinRequest,
    ) -> Result<Vec<u8>, StatusCode> {
        let new_pin_enc = request
            .new_pin_enc
            .as_deref()
            .ok_or(StatusCode::MissingParameter)?;
        let pin_hash_enc = request
            .pin_hash_enc
            .as_deref()
            .ok_or(StatusCode::MissingParameter)?;
        let param = request
            .pin_uv_auth_param
            .as_deref()
            .ok_or(StatusCode::MissingParameter)?;
        let retries = self
            .state
            .pin
            .as_ref()
            .ok_or(StatusCode::PinNotSet)?
            .retries;
        if retries == 0 {
            return Err(StatusCode::PinBlocked);
        }
        let shared = self.platform_secret(protocol, request)?;
        if !shared.verify(&[new_pin_enc, pin_hash_enc].concat(), param) {
            return Err(StatusCode::PinAuthInvalid);
        }
        self.check_pin(protocol, &shared, pin_hash_enc)?;
        let (hash, code_points) = new_pin(&shared, new_pin_enc)?;
        if let Some(pin) = self.state.pin.as_mut() {
            pin.hash = hash;
            pin.code_points = code_points;
        }
        self.persist()?;
        // Every token issued under the old PIN stops working.
        self.pin.token = Secret::random(&*self.env.rng).map_err(internal)?;
        self.pin.token_state = None;
        Ok(status(StatusCode::Ok))
    }

    fn pin_token(
        &mut self,
        protocol: PinProtocol,
        request: &ClientPinRequest,
        granted: u64,
        rp_id: Option<String>,
    ) -> Result<Vec<u8>, StatusCode> {
        let pin_hash_enc = request
            .pin_hash_enc
            .as_deref()
            .ok_or(StatusCode::MissingParameter)?;
        let retries = self
            .state
            .pin
            .as_ref()
            .ok_or(StatusCode::PinNotSet)?
            .retries;
        if retries == 0 {
            return Err(StatusCode::PinBlocked);
        }
        let shared = self.platform_secret(protocol, request)?;
        self.check_pin(protocol, &shared, pin_hash_enc)?;
        // resetPinUvAuthToken(): a new token, then its permissions.
        self.pin.token = Secret::random(&*self.env.rng).map_err(internal)?;
        self.pin.token_state = Some(TokenState {
            permissions: granted,
            rp_id,
            issued: self.now(),
        });
        let encrypted = shared
            .encrypt(&*self.env.rng, self.pin.token.expose())
            .map_err(internal)?;
        Ok(respond(&ClientPinResponse {
            pin_uv_auth_token: Some(encrypted),
            ..ClientPinResponse::default()
        }))
    }

    /// Compares `pinHashEnc` with the stored PIN hash (CTAP 2.1 §6.5.5.6 step 8–10),
    /// counting the attempt durably before the comparison.
    fn check_pin(
        &mut self,
        protocol: PinProtocol,
        shared: &SharedSecret,
        pin_hash_enc: &[u8],
    ) -> Result<(), StatusCode> {
        if self.pin.consecutive_mismatches >= MAX_CONSECUTIVE_PIN_MISMATCHES {
            return Err(StatusCode::PinAuthBlocked);
        }
        let pin = self.state.pin.as_mut().ok_or(StatusCode::PinNotSet)?;
        pin.retries = pin.retries.saturating_sub(1);
        let matches = shared
            .decrypt(pin_hash_enc)
            .is_ok_and(|hash| pin.hash.ct_eq(hash.expose()));
        let retries_left = pin.retries;
        self.persist()?;
        if !matches {
            let fresh = KeyAgreement::generate(&*self.env.rng).map_err(internal)?;
            match protocol {
                PinProtocol::V1 => self.pin.v1 = fresh,
                PinProtocol::V2 => self.pin.v2 = fresh,
            }
            if retries_left == 0 {
                return Err(StatusCode::PinBlocked);
            }
            self.pin.consecutive_mismatches += 1;
            if self.pin.consecutive_mismatches >= MAX_CONSECUTIVE_PIN_MISMATCHES {
                return Err(StatusCode::PinAuthBlocked);
            }
            return Err(StatusCode::PinInvalid);
        }
        self.pin.consecutive_mismatches = 0;
        if let Some(pin) = self.state.pin.as_mut() {
            pin.retries = MAX_PIN_RETRIES;
        }
        self.persist()
    }
}

/// Decrypts `newPinEnc` and applies the PIN policy: the hash to store and the length.
fn new_pin(
    shared: &SharedSecret,
    new_pin_enc: &[u8],
) -> Result<(Secret<PIN_HASH_LEN>, u8), StatusCode> {
    let padded = shared
        .decrypt(new_pin_enc)
        .map_err(|_| StatusCode::InvalidParameter)?;
    let padded = padded.expose();
    if padded.len() != PADDED_PIN_LEN {
        return Err(StatusCode::InvalidParameter);
    }
    let len = padded.iter().position(|&b| b == 0).unwrap_or(padded.len());
    // A PIN filling all 64 bytes has no terminator: too long (at most 63 bytes).
    let pin = padded
        .get(..len)
        .filter(|_| len < PADDED_PIN_LEN)
        .ok_or(StatusCode::PinPolicyViolation)?;
    let code_points = std::str::from_utf8(pin)
        .map_err(|_| StatusCode::PinPolicyViolation)?
        .chars()
        .count();
    if code_points < MIN_PIN_CODE_POINTS {
        return Err(StatusCode::PinPolicyViolation);
    }
    let digest = sha256(pin);
    let hash = Secret::<PIN_HASH_LEN>::from_slice(digest.get(..PIN_HASH_LEN).unwrap_or_default())
        .ok_or(StatusCode::Other)?;
    // At most 63 code points: fits.
    Ok((hash, u8::try_from(code_points).unwrap_or(u8::MAX)))
}

fn respond(response: &ClientPinResponse) -> Vec<u8> {
    ok(response.to_value().as_ref())
}
