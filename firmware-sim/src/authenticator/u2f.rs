//! U2F over CTAPHID_MSG (FIDO U2F Raw Message Formats v1.2; fido.md §3): VERSION,
//! REGISTER (`fido-u2f` attestation by the same leaf certificate as CTAP2), AUTHENTICATE
//! with control bytes 0x07 check-only, 0x03 enforce-user-presence-and-sign and 0x08
//! dont-enforce-user-presence-and-sign.
//!
//! U2F never waits: without a touch REGISTER and AUTHENTICATE answer 0x6985
//! CONDITIONS_NOT_SATISFIED and the host re-sends; the first poll starts a touch request,
//! a touch is consumed by one command (Google U2FTest; fido.md §4). A key handle that is
//! not ours for this application answers 0x6A80 WRONG_DATA. No short-APDU-only quirks,
//! no legacy U2FHID LOCK.

use tokengate_ctap::cose::CoseKey;
use tokengate_ctap::u2f::{
    AuthenticateRequest, AuthenticateResponse, Control, RegisterRequest, RegisterResponse, Request,
    StatusWord, VERSION_STRING, authentication_signed_data, registration_signed_data,
};

use super::{Authenticator, USER_PRESENCE_TIMEOUT};
use crate::crypto::{Algorithm, CredProtect, CredentialKey, CredentialSecrets};
use crate::env::{Presence, PresenceReason, PresenceRequest};

/// The UP bit of an authentication response.
const USER_PRESENT: u8 = 0x01;

impl Authenticator {
    /// Processes one CTAPHID_MSG request APDU; returns the response APDU (data ‖ SW1 SW2).
    pub fn process_u2f(&mut self, apdu: &[u8]) -> Vec<u8> {
        let result = match Request::decode(apdu) {
            Err(e) => Err(StatusWord::from(&e)),
            Ok(Request::Version) => Ok(VERSION_STRING.to_vec()),
            Ok(Request::Register(request)) => self.u2f_register(&request),
            Ok(Request::Authenticate(request)) => self.u2f_authenticate(&request),
        };
        let (mut data, sw) = match result {
            Ok(data) => (data, StatusWord::NoError),
            Err(sw) => (Vec::new(), sw),
        };
        data.extend_from_slice(&u16::from(sw).to_be_bytes());
        data
    }

    fn u2f_register(&mut self, request: &RegisterRequest) -> Result<Vec<u8>, StatusWord> {
        if !self.u2f_touched(PresenceReason::U2fRegister) {
            return Err(StatusWord::ConditionsNotSatisfied);
        }
        let rng = &*self.env.rng;
        let secrets = CredentialSecrets {
            key: CredentialKey::generate(Algorithm::Es256, rng).map_err(|_| StatusWord::Unknown)?,
            discoverable: false,
            hmac_secret: false,
            cred_protect: CredProtect::Optional,
        };
        let CoseKey::Es256(user_public_key) = secrets.key.cose_key() else {
            return Err(StatusWord::Unknown);
        };
        let key_handle = self
            .state
            .keys()
            .wrap(rng, &request.application, &secrets)
            .map_err(|_| StatusWord::Unknown)?;
        let message = registration_signed_data(
            &request.application,
            &request.challenge,
            &key_handle,
            &user_public_key,
        );
        let signature = self
            .state
            .attestation_key()
            .sign(rng, &message)
            .map_err(|_| StatusWord::Unknown)?;
        let response = RegisterResponse {
            user_public_key,
            key_handle,
            attestation_certificate: self.state.attestation_cert().to_vec(),
            signature: signature.as_ref().to_vec(),
        };
        let mut out = Vec::new();
        response.encode(&mut out).map_err(|_| StatusWord::Unknown)?;
        Ok(out)
    }

    fn u2f_authenticate(&mut self, request: &AuthenticateRequest) -> Result<Vec<u8>, StatusWord> {
        let usable = self
            .open_credential(&request.application, &request.key_handle)
            .map(|(secrets, _)| secrets)
            .filter(|s| {
                s.key.algorithm() == Algorithm::Es256 && s.cred_protect != CredProtect::Required
            });
        let Some(secrets) = usable else {
            return Err(StatusWord::WrongData);
        };
        let user_presence = match request.control {
            // "If the key handle is valid, SW_CONDITIONS_NOT_SATISFIED" — i.e. success.
            Control::CheckOnly => return Err(StatusWord::ConditionsNotSatisfied),
            Control::EnforceUserPresenceAndSign => {
                if !self.u2f_touched(PresenceReason::U2fAuthenticate) {
                    return Err(StatusWord::ConditionsNotSatisfied);
                }
                USER_PRESENT
            }
            Control::DontEnforceUserPresenceAndSign => 0,
        };
        let counter = self.next_counter().map_err(|_| StatusWord::Unknown)?;
        let message = authentication_signed_data(
            &request.application,
            user_presence,
            counter,
            &request.challenge,
        );
        let signature = secrets
            .key
            .sign(&*self.env.rng, &message)
            .map_err(|_| StatusWord::Unknown)?;
        let mut out = Vec::new();
        AuthenticateResponse {
            user_presence,
            counter,
            signature,
        }
        .encode(&mut out);
        Ok(out)
    }

    /// Whether the user has touched since the current U2F wait began; starts a wait if none
    /// is running (or the last one is older than the 30 s timeout). A touch is consumed.
    fn u2f_touched(&mut self, reason: PresenceReason) -> bool {
        let now = self.now();
        let stale = self
            .u2f_wait
            .is_none_or(|since| now >= since.saturating_add(USER_PRESENCE_TIMEOUT));
        if stale {
            self.end_u2f_wait();
            let request = PresenceRequest {
                reason,
                rp_id: None,
            };
            self.env.presence.begin(now, &request);
            self.u2f_wait = Some(now);
        }
        let presence = self.env.presence.poll(now);
        if presence != Presence::Waiting {
            self.end_u2f_wait();
        }
        presence == Presence::Touched
    }
}
