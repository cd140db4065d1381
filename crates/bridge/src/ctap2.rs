//! CTAP2 client operations over CTAPHID_CBOR (CTAP 2.1 §6): GetInfo, MakeCredential,
//! GetAssertion, GetNextAssertion, Selection, ClientPIN; and the request types a relying
//! party fills in ([`CredentialRequest`], [`AssertionRequest`]) with the PIN handled here.

use tokengate_ctap::attestation::CLIENT_DATA_HASH_LEN;
use tokengate_ctap::cose::alg;
use tokengate_ctap::ctap2::{
    self, ClientPinRequest, ClientPinResponse, GetAssertionOptions, GetAssertionRequest,
    GetAssertionResponse, GetInfoResponse, MakeCredentialExtensions, MakeCredentialOptions,
    MakeCredentialRequest, MakeCredentialResponse, PublicKeyCredentialDescriptor,
    PublicKeyCredentialParameters, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
    Request, permissions, split_response,
};
use tokengate_ctaphid::Command;

use crate::device::{Authenticator, Op};
use crate::error::Error;
use crate::interaction::{Pin, PinPrompt};
use crate::pin::{self, DEFAULT_MIN_PIN_LENGTH, PinProtocol, PinToken};

/// Whether to verify the person (PIN) in addition to their touch (WebAuthn L3 §5.8.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UserVerification {
    /// Fail with [`Error::PinNotSet`] unless the PIN is set, and ask for it.
    Required,
    /// Ask for the PIN if the key has one.
    Preferred,
    /// Touch only, unless the key insists (a CTAP 2.0 key with a PIN set wants it for every
    /// MakeCredential; `alwaysUv`).
    #[default]
    Discouraged,
}

/// A registration, as a relying party asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialRequest {
    /// SHA-256 of the client data (the relying party's challenge is inside it).
    pub client_data_hash: [u8; CLIENT_DATA_HASH_LEN],
    /// The relying party; `rp.id` is what assertions are later asked for.
    pub rp: PublicKeyCredentialRpEntity,
    /// The account.
    pub user: PublicKeyCredentialUserEntity,
    /// COSE algorithms in order of preference; default ES256 then EdDSA.
    pub algorithms: Vec<i64>,
    /// Credential IDs already registered for this account: a key holding one refuses
    /// ([`Error::CredentialExcluded`]).
    pub exclude_list: Vec<Vec<u8>>,
    /// A discoverable (resident) credential.
    pub resident_key: bool,
    /// PIN policy.
    pub user_verification: UserVerification,
    /// Extension inputs (credProtect, hmac-secret).
    pub extensions: MakeCredentialExtensions,
}

impl CredentialRequest {
    /// A non-discoverable ES256/EdDSA credential for `user_id` at `rp_id`, touch only.
    pub fn new(
        client_data_hash: [u8; CLIENT_DATA_HASH_LEN],
        rp_id: &str,
        user_id: &[u8],
        user_name: &str,
    ) -> Self {
        Self {
            client_data_hash,
            rp: PublicKeyCredentialRpEntity {
                id: rp_id.to_owned(),
                name: Some(rp_id.to_owned()),
            },
            user: PublicKeyCredentialUserEntity {
                id: user_id.to_vec(),
                name: Some(user_name.to_owned()),
                display_name: Some(user_name.to_owned()),
            },
            algorithms: vec![alg::ES256, alg::EDDSA],
            exclude_list: Vec::new(),
            resident_key: false,
            user_verification: UserVerification::Discouraged,
            extensions: MakeCredentialExtensions::default(),
        }
    }

    /// The CTAP2 request, with `pinUvAuthParam` from `token` if there is one.
    pub fn to_ctap2(&self, token: Option<&PinToken>) -> MakeCredentialRequest {
        MakeCredentialRequest {
            client_data_hash: self.client_data_hash,
            rp: self.rp.clone(),
            user: self.user.clone(),
            pub_key_cred_params: self
                .algorithms
                .iter()
                .map(|&a| PublicKeyCredentialParameters::public_key(a))
                .collect(),
            exclude_list: descriptors(&self.exclude_list),
            extensions: self.extensions.clone(),
            options: MakeCredentialOptions {
                rk: self.resident_key.then_some(true),
                up: None,
                uv: None,
            },
            pin_uv_auth_param: token.map(|t| t.authenticate(&self.client_data_hash)),
            pin_uv_auth_protocol: token.map(|t| t.protocol().number()),
            enterprise_attestation: None,
        }
    }
}

/// An authentication, as a relying party asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssertionRequest {
    /// SHA-256 of the client data (the relying party's challenge is inside it).
    pub client_data_hash: [u8; CLIENT_DATA_HASH_LEN],
    /// The relying party ID the credentials were registered for.
    pub rp_id: String,
    /// The credential IDs registered for the account; empty asks for discoverable ones.
    pub allow_list: Vec<Vec<u8>>,
    /// PIN policy.
    pub user_verification: UserVerification,
    /// Test user presence (a touch). `false` only proves possession; default `true`.
    pub user_presence: bool,
}

impl AssertionRequest {
    /// An assertion by one of `allow_list` at `rp_id`, touch only.
    pub fn new(
        client_data_hash: [u8; CLIENT_DATA_HASH_LEN],
        rp_id: &str,
        allow_list: Vec<Vec<u8>>,
    ) -> Self {
        Self {
            client_data_hash,
            rp_id: rp_id.to_owned(),
            allow_list,
            user_verification: UserVerification::Discouraged,
            user_presence: true,
        }
    }

    /// The CTAP2 request, with `pinUvAuthParam` from `token` if there is one.
    pub fn to_ctap2(&self, token: Option<&PinToken>) -> GetAssertionRequest {
        GetAssertionRequest {
            rp_id: self.rp_id.clone(),
            client_data_hash: self.client_data_hash,
            allow_list: descriptors(&self.allow_list),
            extensions: Default::default(),
            options: GetAssertionOptions {
                up: (!self.user_presence).then_some(false),
                uv: None,
                rk: None,
            },
            pin_uv_auth_param: token.map(|t| t.authenticate(&self.client_data_hash)),
            pin_uv_auth_protocol: token.map(|t| t.protocol().number()),
        }
    }
}

fn descriptors(ids: &[Vec<u8>]) -> Vec<PublicKeyCredentialDescriptor> {
    ids.iter()
        .map(|id| PublicKeyCredentialDescriptor::public_key(id.clone()))
        .collect()
}

/// What getPINRetries says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinRetries {
    /// Attempts left before the PIN blocks.
    pub retries: Option<u64>,
    /// The key must be re-plugged before the next attempt (three wrong PINs in a row).
    pub power_cycle_required: bool,
}

/// The relying-party ID libfido2 uses for its touch probe (`FIDO_DUMMY_RP_ID`).
const DUMMY_RP_ID: &str = ".dummy";

impl Authenticator {
    /// authenticatorGetInfo, asked once and cached.
    pub fn info(&mut self) -> Result<&GetInfoResponse, Error> {
        let mut op = self.op();
        self.info_with(&mut op)?;
        self.info
            .as_ref()
            .ok_or_else(|| Error::unexpected("GetInfo was not kept"))
    }

    pub(crate) fn info_with(&mut self, op: &mut Op) -> Result<GetInfoResponse, Error> {
        if let Some(info) = &self.info {
            return Ok(info.clone());
        }
        let body = self.cbor(op, &Request::GetInfo)?;
        let info = GetInfoResponse::decode(&body)?;
        self.info = Some(info.clone());
        Ok(info)
    }

    /// One CTAP2 command; the payload after a CTAP2_OK status, or the status as an error.
    pub(crate) fn cbor(&mut self, op: &mut Op, request: &Request) -> Result<Vec<u8>, Error> {
        if !self.has_ctap2() {
            return Err(Error::Unsupported("CTAP2 (it is a U2F-only key)"));
        }
        let response = self.transact(op, Command::Cbor, &request.to_vec())?;
        let (status, body) = split_response(&response)?;
        if status != u8::from(ctap2::StatusCode::Ok) {
            return Err(Error::from_status(status));
        }
        Ok(body.to_vec())
    }

    /// authenticatorMakeCredential as given (build `pinUvAuthParam` with [`Self::pin_token`]).
    pub fn make_credential_raw(
        &mut self,
        request: &MakeCredentialRequest,
    ) -> Result<MakeCredentialResponse, Error> {
        let mut op = self.op();
        let body = self.cbor(&mut op, &Request::MakeCredential(request.clone()))?;
        Ok(MakeCredentialResponse::decode(&body)?)
    }

    /// authenticatorGetAssertion as given.
    pub fn get_assertion_raw(
        &mut self,
        request: &GetAssertionRequest,
    ) -> Result<GetAssertionResponse, Error> {
        let mut op = self.op();
        let body = self.cbor(&mut op, &Request::GetAssertion(request.clone()))?;
        Ok(GetAssertionResponse::decode(&body)?)
    }

    /// Registers a credential (CTAP2 MakeCredential), asking for the PIN when the request or
    /// the key needs it. Waits for a touch.
    pub fn make_credential(
        &mut self,
        request: &CredentialRequest,
    ) -> Result<MakeCredentialResponse, Error> {
        let mut op = self.op();
        self.make_credential_with(&mut op, request)
    }

    pub(crate) fn make_credential_with(
        &mut self,
        op: &mut Op,
        request: &CredentialRequest,
    ) -> Result<MakeCredentialResponse, Error> {
        let info = self.info_with(op)?;
        let use_uv = should_use_uv(&info, request.user_verification, true)?;
        let rp_id = request.rp.id.clone();
        self.with_pin_token(
            op,
            &info,
            use_uv,
            permissions::MAKE_CREDENTIAL,
            &rp_id,
            |this, op, token| {
                let raw = request.to_ctap2(token);
                let body = this.cbor(op, &Request::MakeCredential(raw))?;
                Ok(MakeCredentialResponse::decode(&body)?)
            },
        )
    }

    /// Gets an assertion (CTAP2 GetAssertion), asking for the PIN when the request or the
    /// key needs it. Waits for a touch unless `user_presence` is false. With several
    /// matching credentials the response says how many (`number_of_credentials`); fetch the
    /// rest with [`Self::get_next_assertion`].
    pub fn get_assertion(
        &mut self,
        request: &AssertionRequest,
    ) -> Result<GetAssertionResponse, Error> {
        let mut op = self.op();
        self.get_assertion_with(&mut op, request)
    }

    pub(crate) fn get_assertion_with(
        &mut self,
        op: &mut Op,
        request: &AssertionRequest,
    ) -> Result<GetAssertionResponse, Error> {
        let info = self.info_with(op)?;
        let use_uv = should_use_uv(&info, request.user_verification, false)?;
        self.with_pin_token(
            op,
            &info,
            use_uv,
            permissions::GET_ASSERTION,
            &request.rp_id,
            |this, op, token| {
                let raw = request.to_ctap2(token);
                let body = this.cbor(op, &Request::GetAssertion(raw))?;
                Ok(GetAssertionResponse::decode(&body)?)
            },
        )
    }

    /// authenticatorGetNextAssertion: the next of `number_of_credentials` assertions.
    pub fn get_next_assertion(&mut self) -> Result<GetAssertionResponse, Error> {
        let mut op = self.op();
        let body = self.cbor(&mut op, &Request::GetNextAssertion)?;
        Ok(GetAssertionResponse::decode(&body)?)
    }

    /// Every assertion the key has for the request: GetAssertion, then GetNextAssertion
    /// for the rest.
    pub fn get_assertions(
        &mut self,
        request: &AssertionRequest,
    ) -> Result<Vec<GetAssertionResponse>, Error> {
        let first = self.get_assertion(request)?;
        let count = first.number_of_credentials.unwrap_or(1).max(1);
        let mut all = vec![first];
        for _ in 1..count {
            all.push(self.get_next_assertion()?);
        }
        Ok(all)
    }

    /// authenticatorSelection (CTAP 2.1 §6.9): returns once the person touches the key.
    pub fn selection(&mut self) -> Result<(), Error> {
        let mut op = self.op();
        self.cbor(&mut op, &Request::Selection).map(drop)
    }

    /// Waits for a touch on this key, whatever it speaks: Selection on CTAP 2.1 keys, a
    /// MakeCredential probe with an empty pinUvAuthParam on CTAP 2.0 keys (CTAP 2.1 §6.1.2
    /// step 1, libfido2 `fido_dev_get_touch_begin`), a dummy U2F REGISTER on U2F-only keys
    /// (libfido2 `u2f_get_touch_begin`). Nothing is stored on the key by the CTAP2 paths.
    pub fn wait_for_touch(&mut self) -> Result<(), Error> {
        let mut op = self.op();
        if !self.has_ctap2() {
            let dummy = [0u8; 32];
            return self.u2f_register_with(&mut op, &dummy, &dummy).map(drop);
        }
        let info = self.info_with(&mut op)?;
        if info.versions.iter().any(|v| v == "FIDO_2_1") {
            return self.cbor(&mut op, &Request::Selection).map(drop);
        }
        let mut probe = CredentialRequest::new([0; 32], DUMMY_RP_ID, &[0], "dummy").to_ctap2(None);
        probe.pub_key_cred_params = vec![PublicKeyCredentialParameters::public_key(alg::ES256)];
        if info.option("clientPin").is_some() {
            probe.pin_uv_auth_param = Some(Vec::new());
            probe.pin_uv_auth_protocol = Some(PinProtocol::One.number());
        }
        match self.cbor(&mut op, &Request::MakeCredential(probe)) {
            Ok(_) | Err(Error::PinNotSet | Error::PinInvalid { .. }) => Ok(()),
            Err(Error::Status(status)) if status == u8::from(ctap2::StatusCode::PinAuthInvalid) => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    // ---- ClientPIN (CTAP 2.1 §6.5) ----

    /// getPINRetries.
    pub fn pin_retries(&mut self) -> Result<PinRetries, Error> {
        let mut op = self.op();
        self.pin_retries_with(&mut op)
    }

    fn pin_retries_with(&mut self, op: &mut Op) -> Result<PinRetries, Error> {
        let protocol = self.pin_protocol_with(op).ok().map(PinProtocol::number);
        let request = ClientPinRequest::get_pin_retries(protocol);
        let response = ClientPinResponse::decode(&self.cbor(op, &Request::ClientPin(request))?)?;
        Ok(PinRetries {
            retries: response.pin_retries,
            power_cycle_required: response.power_cycle_state == Some(true),
        })
    }

    /// setPIN: sets the first PIN of a key that has none.
    pub fn set_pin(&mut self, new_pin: &Pin) -> Result<(), Error> {
        let mut op = self.op();
        let info = self.info_with(&mut op)?;
        let padded = pin::padded_pin(new_pin.expose_secret(), min_pin_length(&info))?;
        let protocol = self.pin_protocol_with(&mut op)?;
        let (key_agreement, secret) = self.shared_secret(&mut op, protocol)?;
        let new_pin_enc = protocol.encrypt(&secret, &padded, &self.rng)?;
        let param = protocol.authenticate(&secret, &new_pin_enc);
        let request =
            ClientPinRequest::set_pin(protocol.number(), key_agreement, new_pin_enc, param);
        self.info = None;
        self.cbor(&mut op, &Request::ClientPin(request)).map(drop)
    }

    /// changePIN.
    pub fn change_pin(&mut self, current: &Pin, new_pin: &Pin) -> Result<(), Error> {
        let mut op = self.op();
        let info = self.info_with(&mut op)?;
        let padded = pin::padded_pin(new_pin.expose_secret(), min_pin_length(&info))?;
        let protocol = self.pin_protocol_with(&mut op)?;
        let (key_agreement, secret) = self.shared_secret(&mut op, protocol)?;
        let pin_hash_enc =
            protocol.encrypt(&secret, &pin::pin_hash(current.expose_secret()), &self.rng)?;
        let new_pin_enc = protocol.encrypt(&secret, &padded, &self.rng)?;
        let param =
            protocol.authenticate(&secret, &[new_pin_enc.as_slice(), &pin_hash_enc].concat());
        let request = ClientPinRequest::change_pin(
            protocol.number(),
            key_agreement,
            pin_hash_enc,
            new_pin_enc,
            param,
        );
        self.info = None;
        let result = self.cbor(&mut op, &Request::ClientPin(request)).map(drop);
        self.pin_error_with_retries(&mut op, result)
    }

    /// A pinUvAuthToken for `permissions` ([`permissions`]) at `rp_id`:
    /// getPinUvAuthTokenUsingPinWithPermissions on keys that support it (option
    /// `pinUvAuthToken`), getPinToken on CTAP 2.0 keys. A wrong PIN is
    /// [`Error::PinInvalid`] with the attempts left.
    pub fn pin_token(
        &mut self,
        pin: &Pin,
        permissions: u64,
        rp_id: Option<&str>,
    ) -> Result<PinToken, Error> {
        let mut op = self.op();
        self.pin_token_with(&mut op, pin, permissions, rp_id)
    }

    fn pin_token_with(
        &mut self,
        op: &mut Op,
        pin: &Pin,
        permissions: u64,
        rp_id: Option<&str>,
    ) -> Result<PinToken, Error> {
        let info = self.info_with(op)?;
        let protocol = self.pin_protocol_with(op)?;
        let (key_agreement, secret) = self.shared_secret(op, protocol)?;
        let pin_hash_enc =
            protocol.encrypt(&secret, &pin::pin_hash(pin.expose_secret()), &self.rng)?;
        let request = if info.option("pinUvAuthToken") == Some(true) {
            ClientPinRequest::get_pin_uv_auth_token_using_pin(
                protocol.number(),
                key_agreement,
                pin_hash_enc,
                permissions,
                rp_id.map(str::to_owned),
            )
        } else {
            ClientPinRequest::get_pin_token(protocol.number(), key_agreement, pin_hash_enc)
        };
        let result = self.cbor(op, &Request::ClientPin(request));
        let body = self.pin_error_with_retries(op, result)?;
        let response = ClientPinResponse::decode(&body)?;
        let encrypted = response
            .pin_uv_auth_token
            .ok_or_else(|| Error::unexpected("a ClientPIN token response without a token"))?;
        PinToken::decrypt(protocol, &secret, &encrypted)
    }

    /// Adds the attempts left to a PIN_INVALID (and says BLOCKED when none are left).
    fn pin_error_with_retries<T>(
        &mut self,
        op: &mut Op,
        result: Result<T, Error>,
    ) -> Result<T, Error> {
        match result {
            Err(Error::PinInvalid { .. }) => {
                let retries = self.pin_retries_with(op).ok();
                Err(match retries {
                    Some(PinRetries {
                        retries: Some(0), ..
                    }) => Error::PinBlocked,
                    Some(PinRetries {
                        power_cycle_required: true,
                        ..
                    }) => Error::PinAuthBlocked,
                    other => Error::PinInvalid {
                        retries: other.and_then(|r| r.retries),
                    },
                })
            }
            other => other,
        }
    }

    /// The protocol forced with [`Self::set_pin_protocol`], else the key's first that this
    /// crate implements.
    fn pin_protocol_with(&mut self, op: &mut Op) -> Result<PinProtocol, Error> {
        if let Some(protocol) = self.pin_protocol {
            return Ok(protocol);
        }
        let info = self.info_with(op)?;
        PinProtocol::negotiate(info.pin_uv_auth_protocols.as_deref()).ok_or(Error::Unsupported(
            "any PIN/UV auth protocol this client implements",
        ))
    }

    /// getKeyAgreement, then encapsulate.
    fn shared_secret(
        &mut self,
        op: &mut Op,
        protocol: PinProtocol,
    ) -> Result<(tokengate_ctap::cose::CoseKey, pin::SharedSecret), Error> {
        let request = ClientPinRequest::get_key_agreement(protocol.number());
        let response = ClientPinResponse::decode(&self.cbor(op, &Request::ClientPin(request))?)?;
        let peer = response
            .key_agreement
            .ok_or_else(|| Error::unexpected("getKeyAgreement answered without a key"))?;
        protocol.encapsulate(&peer, &self.rng)
    }

    /// Asks the person for the PIN (after checking that attempts are left) and gets a token.
    fn obtain_pin_token(
        &mut self,
        op: &mut Op,
        info: &GetInfoResponse,
        permissions: u64,
        rp_id: &str,
    ) -> Result<PinToken, Error> {
        let source = self.interaction.pin.clone().ok_or(Error::PinRequired)?;
        let retries = self.pin_retries_with(op)?;
        if retries.retries == Some(0) {
            return Err(Error::PinBlocked);
        }
        if retries.power_cycle_required {
            return Err(Error::PinAuthBlocked);
        }
        let prompt = PinPrompt {
            device: self.address().to_string(),
            retries: retries.retries,
            min_length: min_pin_length(info),
        };
        let pin = source(&prompt)?;
        op.restart_clock();
        self.pin_token_with(op, &pin, permissions, Some(rp_id))
    }

    /// Runs `send` with a token when `use_uv`, and once more with one if the key answers
    /// PUAT_REQUIRED (CTAP 2.0: PIN_REQUIRED) although the client thought it unnecessary.
    fn with_pin_token<T>(
        &mut self,
        op: &mut Op,
        info: &GetInfoResponse,
        use_uv: bool,
        permissions: u64,
        rp_id: &str,
        send: impl Fn(&mut Self, &mut Op, Option<&PinToken>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let token = if use_uv {
            Some(self.obtain_pin_token(op, info, permissions, rp_id)?)
        } else {
            None
        };
        match send(self, op, token.as_ref()) {
            Err(Error::PinRequired)
                if token.is_none()
                    && info.option("clientPin") == Some(true)
                    && self.interaction.pin.is_some() =>
            {
                let token = self.obtain_pin_token(op, info, permissions, rp_id)?;
                send(self, op, Some(&token))
            }
            other => other,
        }
    }
}

fn min_pin_length(info: &GetInfoResponse) -> u64 {
    info.min_pin_length.unwrap_or(DEFAULT_MIN_PIN_LENGTH)
}

/// Whether to get a PIN token for a request (python-fido2 `_should_use_uv`, with
/// "preferred" not failing on a key without a PIN, as WebAuthn L3 §5.8.6 intends).
pub(crate) fn should_use_uv(
    info: &GetInfoResponse,
    requirement: UserVerification,
    make_credential: bool,
) -> Result<bool, Error> {
    let pin_set = info.option("clientPin") == Some(true);
    match requirement {
        UserVerification::Required if pin_set => Ok(true),
        UserVerification::Required if info.option("uv") == Some(true) => Err(Error::Unsupported(
            "user verification without a PIN (built-in UV is not implemented by this client)",
        )),
        UserVerification::Required => Err(Error::PinNotSet),
        UserVerification::Preferred => Ok(pin_set),
        UserVerification::Discouraged => Ok(pin_set
            && (info.option("alwaysUv") == Some(true)
                || (make_credential && info.option("makeCredUvNotRqd") != Some(true)))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn info(options: &[(&str, bool)]) -> GetInfoResponse {
        GetInfoResponse {
            versions: vec!["FIDO_2_0".into()],
            options: Some(
                options
                    .iter()
                    .map(|&(k, v)| (k.to_owned(), v))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn uv_policy() {
        use UserVerification::*;
        let no_pin = info(&[("clientPin", false)]);
        let pin = info(&[("clientPin", true)]);
        let pin_21 = info(&[("clientPin", true), ("makeCredUvNotRqd", true)]);
        let always = info(&[("clientPin", true), ("alwaysUv", true)]);
        assert!(matches!(
            should_use_uv(&no_pin, Required, false),
            Err(Error::PinNotSet)
        ));
        assert!(should_use_uv(&pin, Required, false).unwrap());
        assert!(!should_use_uv(&no_pin, Preferred, true).unwrap());
        assert!(should_use_uv(&pin, Preferred, false).unwrap());
        // A CTAP 2.0 key with a PIN wants it for every MakeCredential, not for assertions.
        assert!(should_use_uv(&pin, Discouraged, true).unwrap());
        assert!(!should_use_uv(&pin, Discouraged, false).unwrap());
        assert!(!should_use_uv(&pin_21, Discouraged, true).unwrap());
        assert!(should_use_uv(&always, Discouraged, false).unwrap());
        assert!(!should_use_uv(&no_pin, Discouraged, true).unwrap());
    }

    #[test]
    fn requests_carry_the_pin_param_only_with_a_token() {
        let request = CredentialRequest::new([7; 32], "example.org", b"user", "alice");
        let raw = request.to_ctap2(None);
        assert_eq!(raw.rp.id, "example.org");
        assert_eq!(raw.pub_key_cred_params.len(), 2);
        assert_eq!(raw.pin_uv_auth_param, None);
        assert_eq!(raw.options.rk, None);
        let assertion = AssertionRequest::new([7; 32], "example.org", vec![vec![1, 2, 3]]);
        let raw = assertion.to_ctap2(None);
        assert_eq!(raw.allow_list.len(), 1);
        assert_eq!(raw.options.up, None);
        assert_eq!(raw.pin_uv_auth_protocol, None);
    }
}
