//! authenticatorMakeCredential (CTAP 2.1 §6.1): checks in the spec's order, the touch,
//! then a new ES256 or EdDSA key, resident or not, with `packed` attestation (x5c: the
//! attestation certificate issued by the simulator CA). No enterprise attestation, no
//! built-in UV, no largeBlobKey.

use tokengate_ctap::attestation::{AttestationObject, AttestationStatement, signed_data};
use tokengate_ctap::auth_data::{AttestedCredentialData, AuthenticatorData, flags};
use tokengate_ctap::cbor::Map;
use tokengate_ctap::cose::alg;
use tokengate_ctap::ctap2::{
    EXT_CRED_PROTECT, EXT_HMAC_SECRET, MakeCredentialRequest, MakeCredentialResponse,
    PUBLIC_KEY_CREDENTIAL_TYPE, PublicKeyCredentialUserEntity, StatusCode, permissions,
};

use super::{AAGUID, Authenticator, Operation, Step, internal, ok, status};
use crate::crypto::{Algorithm, CredProtect, CredentialKey, CredentialSecrets, sha256};
use crate::env::PresenceReason;
use crate::pin::PinProtocol;
use crate::state::{MAX_RESIDENT_CREDENTIALS, Resident};

/// A MakeCredential that passed every check and waits for the touch.
pub(super) struct MakeCredentialPrepared {
    client_data_hash: [u8; 32],
    rp_id: String,
    rp_name: Option<String>,
    rp_id_hash: [u8; 32],
    user: PublicKeyCredentialUserEntity,
    algorithm: Algorithm,
    resident: bool,
    user_verified: bool,
    cred_protect: Option<CredProtect>,
    hmac_secret: bool,
}

impl Authenticator {
    pub(super) fn make_credential(&mut self, request: MakeCredentialRequest) -> Step {
        let rp_id = request.rp.id.clone();
        match self.prepare_make_credential(request) {
            Ok(operation) => {
                let reason = match operation {
                    Operation::Excluded => PresenceReason::ExcludedCredential,
                    Operation::PinUvAuthSelection => PresenceReason::PinUvAuthSelection,
                    _ => PresenceReason::MakeCredential,
                };
                self.await_presence(operation, reason, Some(rp_id))
            }
            Err(code) => Step::Done(status(code)),
        }
    }

    fn prepare_make_credential(
        &mut self,
        request: MakeCredentialRequest,
    ) -> Result<Operation, StatusCode> {
        // Step 1: a zero-length pinUvAuthParam asks the user to pick this authenticator.
        if request
            .pin_uv_auth_param
            .as_ref()
            .is_some_and(Vec::is_empty)
        {
            return Ok(Operation::PinUvAuthSelection);
        }
        // Step 2: the protocol must be given and supported.
        if request.pin_uv_auth_param.is_some() {
            let protocol = request
                .pin_uv_auth_protocol
                .ok_or(StatusCode::MissingParameter)?;
            PinProtocol::from_wire(protocol).ok_or(StatusCode::InvalidParameter)?;
        }
        // Step 3: the first supported public-key algorithm; other types are skipped.
        let algorithm = request
            .pub_key_cred_params
            .iter()
            .filter(|p| p.cred_type == PUBLIC_KEY_CREDENTIAL_TYPE)
            .find_map(|p| Algorithm::from_cose(p.alg))
            .ok_or(StatusCode::UnsupportedAlgorithm)?;
        // Step 5: options. No built-in UV; `up` may not be false.
        if request.options.up == Some(false) || request.options.uv == Some(true) {
            return Err(StatusCode::InvalidOption);
        }
        let resident = request.options.rk == Some(true);
        // Step 6: no enterprise attestation.
        if request.enterprise_attestation.is_some() {
            return Err(StatusCode::InvalidParameter);
        }
        // Steps 10–11: with a PIN set, a pinUvAuthParam is required (no makeCredUvNotRqd).
        if request.pin_uv_auth_param.is_none() && self.state.pin.is_some() {
            return Err(StatusCode::PuatRequired);
        }
        let user_verified = self.verify_pin_uv_auth(
            request.pin_uv_auth_param.as_deref(),
            request.pin_uv_auth_protocol,
            &request.client_data_hash,
            permissions::MAKE_CREDENTIAL,
            Some(&request.rp.id),
        )?;
        let rp_id_hash = sha256(request.rp.id.as_bytes());
        // Step 12: excludeList. A match still needs the touch, then CREDENTIAL_EXCLUDED.
        let excluded = request
            .exclude_list
            .iter()
            .filter(|d| d.cred_type == PUBLIC_KEY_CREDENTIAL_TYPE)
            .filter_map(|d| self.open_credential(&rp_id_hash, &d.id))
            .any(|(secrets, _)| secrets.cred_protect != CredProtect::Required || user_verified);
        if excluded {
            return Ok(Operation::Excluded);
        }
        let replaces = |r: &Resident| r.rp_id_hash == rp_id_hash && r.user.id == request.user.id;
        if resident
            && self.state.residents.len() >= MAX_RESIDENT_CREDENTIALS
            && !self.state.residents.iter().any(replaces)
        {
            return Err(StatusCode::KeyStoreFull);
        }
        // Extensions: unknown credProtect levels are ignored, as OpenSK does.
        let cred_protect = request
            .extensions
            .cred_protect
            .and_then(CredProtect::from_level);
        Ok(Operation::MakeCredential(Box::new(
            MakeCredentialPrepared {
                client_data_hash: request.client_data_hash,
                rp_id: request.rp.id,
                rp_name: request.rp.name,
                rp_id_hash,
                user: request.user,
                algorithm,
                resident,
                user_verified,
                cred_protect,
                hmac_secret: request.extensions.hmac_secret == Some(true),
            },
        )))
    }

    pub(super) fn finish_make_credential(
        &mut self,
        mc: MakeCredentialPrepared,
    ) -> Result<Vec<u8>, StatusCode> {
        let secrets = CredentialSecrets {
            key: CredentialKey::generate(mc.algorithm, &*self.env.rng).map_err(internal)?,
            discoverable: mc.resident,
            hmac_secret: mc.hmac_secret,
            cred_protect: mc.cred_protect.unwrap_or_default(),
        };
        let credential_id = self
            .state
            .keys()
            .wrap(&*self.env.rng, &mc.rp_id_hash, &secrets)
            .map_err(internal)?;
        let previous = mc.resident.then(|| self.state.residents.clone());
        if mc.resident {
            let sequence = self.state.next_sequence();
            self.state
                .residents
                .retain(|r| !(r.rp_id_hash == mc.rp_id_hash && r.user.id == mc.user.id));
            self.state.residents.push(Resident {
                credential_id: credential_id.clone(),
                rp_id: mc.rp_id,
                rp_name: mc.rp_name,
                rp_id_hash: mc.rp_id_hash,
                user: mc.user,
                sequence,
            });
        }
        // One durable write carries the new resident credential and the counter.
        let counter = match self.next_counter() {
            Ok(counter) => counter,
            Err(code) => {
                if let Some(residents) = previous {
                    self.state.residents = residents;
                }
                return Err(code);
            }
        };
        let mut extensions = Map::new();
        if let Some(level) = mc.cred_protect {
            extensions.insert(EXT_CRED_PROTECT, level.level());
        }
        if mc.hmac_secret {
            extensions.insert(EXT_HMAC_SECRET, true);
        }
        let mut flag_bits = flags::UP;
        if mc.user_verified {
            flag_bits |= flags::UV;
        }
        let auth_data = AuthenticatorData {
            rp_id_hash: mc.rp_id_hash,
            flags: flag_bits,
            sign_count: counter,
            attested_credential_data: Some(AttestedCredentialData {
                aaguid: AAGUID,
                credential_id,
                credential_public_key: secrets.key.cose_key(),
            }),
            extensions: (!extensions.is_empty()).then_some(extensions),
        };
        let message = signed_data(&auth_data.to_vec(), &mc.client_data_hash);
        let signature = self
            .state
            .attestation_key()
            .sign(&*self.env.rng, &message)
            .map_err(|_| StatusCode::Other)?;
        let response = MakeCredentialResponse {
            attestation_object: AttestationObject {
                auth_data,
                statement: AttestationStatement::Packed {
                    alg: alg::ES256,
                    sig: signature.as_ref().to_vec(),
                    x5c: vec![self.state.attestation_cert().to_vec()],
                },
            },
            enterprise_attestation: None,
            large_blob_key: None,
            unsigned_extension_outputs: None,
        };
        Ok(ok(Some(&response.to_value())))
    }
}
