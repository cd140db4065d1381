//! U2F (CTAP1) over CTAPHID_MSG: VERSION, REGISTER, AUTHENTICATE (FIDO U2F Raw Message
//! Formats v1.2; fido.md §3). A U2F key answers 0x6985 until touched; the client polls
//! (libfido2 `U2F_PACE_MS` 100 ms) until the touch or the deadline.

use std::time::Duration;

use tokengate_ctap::u2f::{
    self, AuthenticateRequest, AuthenticateResponse, Control, RegisterRequest, RegisterResponse,
    ResponseApdu, StatusWord,
};
use tokengate_ctaphid::Command;

use crate::device::{Authenticator, Op};
use crate::error::Error;

/// Pause between two polls of a U2F request waiting for a touch (libfido2 `U2F_PACE_MS`).
pub const U2F_POLL_INTERVAL: Duration = Duration::from_millis(100);

impl Authenticator {
    /// One APDU over CTAPHID_MSG.
    fn apdu(&mut self, op: &mut Op, request: &u2f::Request) -> Result<ResponseApdu, Error> {
        if !self.has_u2f() {
            return Err(Error::Unsupported(
                "U2F / CTAP1 (it sets the NMSG capability)",
            ));
        }
        let mut bytes = Vec::new();
        request.encode(&mut bytes)?;
        let response = self.transact(op, Command::Msg, &bytes)?;
        Ok(ResponseApdu::decode(&response)?)
    }

    /// Sends `request` until it is not 0x6985 (touch needed), prompting once.
    fn apdu_until_touched(
        &mut self,
        op: &mut Op,
        request: &u2f::Request,
    ) -> Result<Vec<u8>, Error> {
        loop {
            let response = self.apdu(op, request)?;
            match response.status() {
                Some(StatusWord::NoError) => return Ok(response.data),
                Some(StatusWord::ConditionsNotSatisfied) => {
                    op.prompt_touch();
                    op.sleep(U2F_POLL_INTERVAL)?;
                    // `transact` reports the deadline on the next round.
                }
                Some(StatusWord::WrongData) => return Err(Error::NoCredentials),
                _ => return Err(Error::U2fStatus(response.sw)),
            }
        }
    }

    /// U2F_VERSION: "U2F_V2" on every U2F key.
    pub fn u2f_version(&mut self) -> Result<String, Error> {
        let mut op = self.op();
        let response = self.apdu(&mut op, &u2f::Request::Version)?;
        match response.status() {
            Some(StatusWord::NoError) => String::from_utf8(response.data)
                .map_err(|_| Error::unexpected("a U2F version that is not UTF-8")),
            _ => Err(Error::U2fStatus(response.sw)),
        }
    }

    /// U2F_REGISTER: a new key pair for `application` (SHA-256 of the AppID or RP ID),
    /// attesting `challenge` (SHA-256 of the client data). Waits for a touch.
    pub fn u2f_register(
        &mut self,
        challenge: &[u8; 32],
        application: &[u8; 32],
    ) -> Result<RegisterResponse, Error> {
        let mut op = self.op();
        self.u2f_register_with(&mut op, challenge, application)
    }

    pub(crate) fn u2f_register_with(
        &mut self,
        op: &mut Op,
        challenge: &[u8; 32],
        application: &[u8; 32],
    ) -> Result<RegisterResponse, Error> {
        let request = u2f::Request::Register(RegisterRequest {
            challenge: *challenge,
            application: *application,
        });
        let data = self.apdu_until_touched(op, &request)?;
        Ok(RegisterResponse::decode(&data)?)
    }

    /// U2F_AUTHENTICATE with "enforce-user-presence-and-sign": signs `challenge` with the
    /// key pair `key_handle` of `application`. Waits for a touch. A key handle this key did
    /// not issue is [`Error::NoCredentials`].
    pub fn u2f_authenticate(
        &mut self,
        challenge: &[u8; 32],
        application: &[u8; 32],
        key_handle: &[u8],
    ) -> Result<AuthenticateResponse, Error> {
        let mut op = self.op();
        self.u2f_authenticate_with(
            &mut op,
            Control::EnforceUserPresenceAndSign,
            challenge,
            application,
            key_handle,
        )
    }

    pub(crate) fn u2f_authenticate_with(
        &mut self,
        op: &mut Op,
        control: Control,
        challenge: &[u8; 32],
        application: &[u8; 32],
        key_handle: &[u8],
    ) -> Result<AuthenticateResponse, Error> {
        let request = authenticate_request(control, challenge, application, key_handle)?;
        let data = self.apdu_until_touched(op, &request)?;
        Ok(AuthenticateResponse::decode(&data)?)
    }

    /// U2F_AUTHENTICATE "check-only": whether `key_handle` belongs to this key and
    /// `application` (0x6985 yes, 0x6A80 no). Needs no touch.
    pub fn u2f_is_registered(
        &mut self,
        application: &[u8; 32],
        key_handle: &[u8],
    ) -> Result<bool, Error> {
        let mut op = self.op();
        self.u2f_is_registered_with(&mut op, application, key_handle)
    }

    pub(crate) fn u2f_is_registered_with(
        &mut self,
        op: &mut Op,
        application: &[u8; 32],
        key_handle: &[u8],
    ) -> Result<bool, Error> {
        let request = authenticate_request(Control::CheckOnly, &[0; 32], application, key_handle)?;
        let response = self.apdu(op, &request)?;
        match response.status() {
            // 0x6985 "test-of-user-presence-required" is the success of check-only.
            Some(StatusWord::ConditionsNotSatisfied | StatusWord::NoError) => Ok(true),
            Some(StatusWord::WrongData) => Ok(false),
            _ => Err(Error::U2fStatus(response.sw)),
        }
    }
}

fn authenticate_request(
    control: Control,
    challenge: &[u8; 32],
    application: &[u8; 32],
    key_handle: &[u8],
) -> Result<u2f::Request, Error> {
    if key_handle.len() > u2f::MAX_KEY_HANDLE_LEN {
        return Err(Error::InvalidRequest(format!(
            "a U2F key handle has at most {} bytes",
            u2f::MAX_KEY_HANDLE_LEN
        )));
    }
    Ok(u2f::Request::Authenticate(AuthenticateRequest {
        control,
        challenge: *challenge,
        application: *application,
        key_handle: key_handle.to_vec(),
    }))
}
