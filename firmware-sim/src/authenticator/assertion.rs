//! authenticatorGetAssertion (CTAP 2.1 §6.2) and authenticatorGetNextAssertion (§6.3),
//! with the hmac-secret extension (§12.5) and credProtect filtering (§12.1).
//!
//! With an allowList the first usable credential answers. Without one, every discoverable
//! credential of the RP does, newest first: the first response carries
//! `numberOfCredentials`, the rest come from GetNextAssertion within 30 s. Each assertion
//! takes the next value of the global counter. No largeBlobKey, no account selection on
//! the device (it has no display).

use std::collections::VecDeque;

use tokengate_ctap::attestation::signed_data;
use tokengate_ctap::auth_data::{AuthenticatorData, flags};
use tokengate_ctap::cbor::Map;
use tokengate_ctap::ctap2::{
    EXT_HMAC_SECRET, GetAssertionRequest, GetAssertionResponse, HmacSecretInput,
    PUBLIC_KEY_CREDENTIAL_TYPE, PublicKeyCredentialDescriptor, PublicKeyCredentialUserEntity,
    StatusCode, permissions,
};
use zeroize::Zeroizing;

use super::{Authenticator, FOLLOW_UP_TIMEOUT, Operation, Step, internal, ok, status};
use crate::crypto::{CredProtect, CredentialSecrets, hmac_sha256, sha256};
use crate::env::{PresenceReason, Timestamp};
use crate::pin::{PinProtocol, SharedSecret};
use crate::secret::SecretVec;

/// Salt length of hmac-secret (CTAP 2.1 §12.5: one or two 32-byte salts).
const SALT_LEN: usize = 32;

/// A GetAssertion that passed every check (and, if `up`, waits for the touch).
pub(super) struct GetAssertionPrepared {
    rp_id_hash: [u8; 32],
    client_data_hash: [u8; 32],
    user_present: bool,
    user_verified: bool,
    /// Discoverable-credential mode: `numberOfCredentials` and GetNextAssertion apply.
    discoverable: bool,
    candidates: VecDeque<Candidate>,
    hmac_secret: Option<HmacSecretPrepared>,
}

struct Candidate {
    credential_id: Vec<u8>,
    secrets: CredentialSecrets,
    user: Option<PublicKeyCredentialUserEntity>,
}

struct HmacSecretPrepared {
    shared: SharedSecret,
    salts: SecretVec,
}

/// The rest of a discoverable-credential batch, for GetNextAssertion.
pub(super) struct NextAssertions {
    prepared: GetAssertionPrepared,
    expires: Timestamp,
}

impl Authenticator {
    pub(super) fn get_assertion(&mut self, request: GetAssertionRequest) -> Step {
        let rp_id = request.rp_id.clone();
        match self.prepare_get_assertion(request) {
            Ok(Operation::GetAssertion(prepared)) if !prepared.user_present => {
                Step::Done(self.finish_get_assertion(*prepared).unwrap_or_else(status))
            }
            Ok(operation) => {
                let reason = match operation {
                    Operation::PinUvAuthSelection => PresenceReason::PinUvAuthSelection,
                    _ => PresenceReason::GetAssertion,
                };
                self.await_presence(operation, reason, Some(rp_id))
            }
            Err(code) => Step::Done(status(code)),
        }
    }

    fn prepare_get_assertion(
        &mut self,
        request: GetAssertionRequest,
    ) -> Result<Operation, StatusCode> {
        if request
            .pin_uv_auth_param
            .as_ref()
            .is_some_and(Vec::is_empty)
        {
            return Ok(Operation::PinUvAuthSelection);
        }
        if request.pin_uv_auth_param.is_some() {
            let protocol = request
                .pin_uv_auth_protocol
                .ok_or(StatusCode::MissingParameter)?;
            PinProtocol::from_wire(protocol).ok_or(StatusCode::InvalidParameter)?;
        }
        if request.options.rk.is_some() {
            return Err(StatusCode::UnsupportedOption);
        }
        if request.options.uv == Some(true) {
            return Err(StatusCode::InvalidOption);
        }
        let user_verified = self.verify_pin_uv_auth(
            request.pin_uv_auth_param.as_deref(),
            request.pin_uv_auth_protocol,
            &request.client_data_hash,
            permissions::GET_ASSERTION,
            Some(&request.rp_id),
        )?;
        let rp_id_hash = sha256(request.rp_id.as_bytes());
        let discoverable = request.allow_list.is_empty();
        let candidates = if discoverable {
            self.discoverable_candidates(&rp_id_hash, user_verified)
        } else {
            self.allowed_candidate(&rp_id_hash, &request.allow_list, user_verified)
        };
        if candidates.is_empty() {
            return Err(StatusCode::NoCredentials);
        }
        let hmac_secret = request
            .extensions
            .hmac_secret
            .as_ref()
            .map(|input| self.prepare_hmac_secret(input))
            .transpose()?;
        Ok(Operation::GetAssertion(Box::new(GetAssertionPrepared {
            rp_id_hash,
            client_data_hash: request.client_data_hash,
            user_present: request.options.up != Some(false),
            user_verified,
            discoverable,
            candidates,
            hmac_secret,
        })))
    }

    /// Every discoverable credential of the RP that credProtect lets out, newest first.
    fn discoverable_candidates(
        &self,
        rp_id_hash: &[u8; 32],
        user_verified: bool,
    ) -> VecDeque<Candidate> {
        let mut residents: Vec<_> = self
            .state
            .residents
            .iter()
            .filter(|r| &r.rp_id_hash == rp_id_hash)
            .collect();
        residents.sort_by_key(|r| std::cmp::Reverse(r.sequence));
        residents
            .into_iter()
            .filter_map(|r| {
                let secrets = self.state.keys().unwrap(rp_id_hash, &r.credential_id)?;
                let allowed = user_verified || secrets.cred_protect == CredProtect::Optional;
                allowed.then(|| Candidate {
                    credential_id: r.credential_id.clone(),
                    secrets,
                    user: Some(r.user.clone()),
                })
            })
            .collect()
    }

    /// The first credential of the allowList that is ours and usable.
    fn allowed_candidate(
        &self,
        rp_id_hash: &[u8; 32],
        allow_list: &[PublicKeyCredentialDescriptor],
        user_verified: bool,
    ) -> VecDeque<Candidate> {
        allow_list
            .iter()
            .filter(|d| d.cred_type == PUBLIC_KEY_CREDENTIAL_TYPE)
            .find_map(|d| {
                let (secrets, resident) = self.open_credential(rp_id_hash, &d.id)?;
                let allowed = user_verified || secrets.cred_protect != CredProtect::Required;
                let user = resident.map(|r| r.user.clone());
                allowed.then(|| Candidate {
                    credential_id: d.id.clone(),
                    secrets,
                    user,
                })
            })
            .into_iter()
            .collect()
    }

    /// Checks and decrypts the hmac-secret input (CTAP 2.1 §12.5 "authenticator
    /// processing").
    fn prepare_hmac_secret(
        &self,
        input: &HmacSecretInput,
    ) -> Result<HmacSecretPrepared, StatusCode> {
        let protocol = PinProtocol::from_wire(input.pin_uv_auth_protocol.unwrap_or(1))
            .ok_or(StatusCode::InvalidParameter)?;
        let shared = self
            .pin
            .key_agreement(protocol)
            .shared_secret(protocol, &input.key_agreement)
            .ok_or(StatusCode::InvalidParameter)?;
        if !shared.verify(&input.salt_enc, &input.salt_auth) {
            return Err(StatusCode::PinAuthInvalid);
        }
        let salts = shared
            .decrypt(&input.salt_enc)
            .map_err(|_| StatusCode::InvalidLength)?;
        if salts.expose().len() != SALT_LEN && salts.expose().len() != 2 * SALT_LEN {
            return Err(StatusCode::InvalidLength);
        }
        Ok(HmacSecretPrepared { shared, salts })
    }

    pub(super) fn finish_get_assertion(
        &mut self,
        mut prepared: GetAssertionPrepared,
    ) -> Result<Vec<u8>, StatusCode> {
        let total = prepared.candidates.len();
        let first = prepared
            .candidates
            .pop_front()
            .ok_or(StatusCode::NoCredentials)?;
        let count = (prepared.discoverable && total > 1).then_some(total as u64);
        let response = self.assertion(&prepared, first, count)?;
        if !prepared.candidates.is_empty() {
            let expires = self.now().saturating_add(FOLLOW_UP_TIMEOUT);
            self.next_assertions = Some(NextAssertions { prepared, expires });
        }
        Ok(ok(Some(&response.to_value())))
    }

    pub(super) fn get_next_assertion(
        &mut self,
        next: Option<NextAssertions>,
    ) -> Result<Vec<u8>, StatusCode> {
        let mut next = next.ok_or(StatusCode::NotAllowed)?;
        let now = self.now();
        if now > next.expires {
            return Err(StatusCode::NotAllowed);
        }
        let candidate = next
            .prepared
            .candidates
            .pop_front()
            .ok_or(StatusCode::NotAllowed)?;
        let response = self.assertion(&next.prepared, candidate, None)?;
        if !next.prepared.candidates.is_empty() {
            next.expires = now.saturating_add(FOLLOW_UP_TIMEOUT);
            self.next_assertions = Some(next);
        }
        Ok(ok(Some(&response.to_value())))
    }

    fn assertion(
        &mut self,
        prepared: &GetAssertionPrepared,
        candidate: Candidate,
        number_of_credentials: Option<u64>,
    ) -> Result<GetAssertionResponse, StatusCode> {
        let counter = self.next_counter()?;
        let extensions = match &prepared.hmac_secret {
            Some(hmac) if candidate.secrets.hmac_secret => {
                let cred_random = self
                    .state
                    .keys()
                    .cred_random(&candidate.credential_id, prepared.user_verified);
                let mut outputs = Zeroizing::new(Vec::with_capacity(2 * SALT_LEN));
                for salt in hmac.salts.expose().chunks(SALT_LEN) {
                    outputs.extend_from_slice(&hmac_sha256(cred_random.expose(), salt));
                }
                let encrypted = hmac
                    .shared
                    .encrypt(&*self.env.rng, &outputs)
                    .map_err(internal)?;
                Some(Map::new().with(EXT_HMAC_SECRET, encrypted))
            }
            _ => None,
        };
        let mut flag_bits = 0;
        if prepared.user_present {
            flag_bits |= flags::UP;
        }
        if prepared.user_verified {
            flag_bits |= flags::UV;
        }
        let auth_data = AuthenticatorData {
            rp_id_hash: prepared.rp_id_hash,
            flags: flag_bits,
            sign_count: counter,
            attested_credential_data: None,
            extensions,
        };
        let message = signed_data(&auth_data.to_vec(), &prepared.client_data_hash);
        let signature = candidate
            .secrets
            .key
            .sign(&*self.env.rng, &message)
            .map_err(internal)?;
        // Without user verification only the user handle leaves the device (CTAP 2.1 §6.2.2
        // "User identifiable information … MUST NOT be returned if user verification is not
        // done").
        let user = candidate.user.map(|user| {
            if prepared.user_verified {
                user
            } else {
                PublicKeyCredentialUserEntity {
                    id: user.id,
                    name: None,
                    display_name: None,
                }
            }
        });
        Ok(GetAssertionResponse {
            credential: Some(PublicKeyCredentialDescriptor::public_key(
                candidate.credential_id,
            )),
            auth_data,
            signature,
            user,
            number_of_credentials,
            user_selected: None,
            large_blob_key: None,
        })
    }
}
