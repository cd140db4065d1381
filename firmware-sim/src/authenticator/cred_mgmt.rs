//! authenticatorCredentialManagement (CTAP 2.1 §6.8; also answered as the FIDO_2_1_PRE
//! command 0x41): getCredsMetadata, enumerateRPs, enumerateCredentials, deleteCredential
//! and updateUserInformation, authorised by a pinUvAuthToken with the `cm` permission. No
//! persistent read-only (`pcmr`) tokens.

use std::collections::VecDeque;

use tokengate_ctap::ctap2::{
    CredentialManagementRequest, CredentialManagementResponse, CredentialManagementSubCommand,
    PublicKeyCredentialDescriptor, PublicKeyCredentialRpEntity, StatusCode, permissions,
};

use super::{Authenticator, FOLLOW_UP_TIMEOUT, ok, status};
use crate::env::Timestamp;
use crate::state::{MAX_RESIDENT_CREDENTIALS, Resident};

/// An enumeration in progress: what the GetNext subcommands still return.
pub(super) struct Enumeration {
    kind: EnumerationKind,
    remaining: VecDeque<CredentialManagementResponse>,
    expires: Timestamp,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum EnumerationKind {
    Rps,
    Credentials,
}

impl Authenticator {
    pub(super) fn credential_management(
        &mut self,
        request: CredentialManagementRequest,
        enumeration: Option<Enumeration>,
    ) -> Result<Vec<u8>, StatusCode> {
        use CredentialManagementSubCommand as S;
        let follow_up = match request.sub_command {
            S::EnumerateRpsGetNextRp => Some(EnumerationKind::Rps),
            S::EnumerateCredentialsGetNextCredential => Some(EnumerationKind::Credentials),
            _ => None,
        };
        if let Some(kind) = follow_up {
            return self.next_in_enumeration(kind, enumeration);
        }
        let param = request
            .pin_uv_auth_param
            .as_deref()
            .ok_or(StatusCode::PuatRequired)?;
        if request.pin_uv_auth_protocol.is_none() {
            return Err(StatusCode::MissingParameter);
        }
        self.verify_pin_uv_auth(
            Some(param),
            request.pin_uv_auth_protocol,
            &request.pin_uv_auth_message(),
            permissions::CREDENTIAL_MANAGEMENT,
            None,
        )?;
        let params = request.params.unwrap_or_default();
        match request.sub_command {
            S::GetCredsMetadata => {
                let count = self.state.residents.len();
                Ok(respond(&CredentialManagementResponse {
                    existing_resident_credentials_count: Some(count as u64),
                    max_possible_remaining_resident_credentials_count: Some(
                        MAX_RESIDENT_CREDENTIALS.saturating_sub(count) as u64,
                    ),
                    ..CredentialManagementResponse::default()
                }))
            }
            S::EnumerateRpsBegin => {
                let mut rps: Vec<&Resident> = Vec::new();
                for resident in &self.state.residents {
                    if !rps.iter().any(|r| r.rp_id_hash == resident.rp_id_hash) {
                        rps.push(resident);
                    }
                }
                let responses: VecDeque<_> = rps
                    .iter()
                    .map(|r| CredentialManagementResponse {
                        rp: Some(PublicKeyCredentialRpEntity {
                            id: r.rp_id.clone(),
                            name: r.rp_name.clone(),
                        }),
                        rp_id_hash: Some(r.rp_id_hash),
                        ..CredentialManagementResponse::default()
                    })
                    .collect();
                self.begin_enumeration(EnumerationKind::Rps, responses, |r, total| {
                    r.total_rps = Some(total);
                })
            }
            S::EnumerateCredentialsBegin => {
                let rp_id_hash = params.rp_id_hash.ok_or(StatusCode::MissingParameter)?;
                self.check_token_rp(&rp_id_hash)?;
                let mut residents: Vec<&Resident> = self
                    .state
                    .residents
                    .iter()
                    .filter(|r| r.rp_id_hash == rp_id_hash)
                    .collect();
                residents.sort_by_key(|r| std::cmp::Reverse(r.sequence));
                let responses: VecDeque<_> = residents
                    .iter()
                    .filter_map(|r| {
                        let secrets = self.state.keys().unwrap(&r.rp_id_hash, &r.credential_id)?;
                        Some(CredentialManagementResponse {
                            user: Some(r.user.clone()),
                            credential_id: Some(PublicKeyCredentialDescriptor::public_key(
                                r.credential_id.clone(),
                            )),
                            public_key: Some(secrets.key.cose_key()),
                            cred_protect: Some(secrets.cred_protect.level()),
                            ..CredentialManagementResponse::default()
                        })
                    })
                    .collect();
                self.begin_enumeration(EnumerationKind::Credentials, responses, |r, total| {
                    r.total_credentials = Some(total);
                })
            }
            S::DeleteCredential => {
                let id = params
                    .credential_id
                    .map(|d| d.id)
                    .ok_or(StatusCode::MissingParameter)?;
                let index = self
                    .state
                    .residents
                    .iter()
                    .position(|r| r.credential_id == id)
                    .ok_or(StatusCode::NoCredentials)?;
                let rp_id_hash = self.state.residents.get(index).map(|r| r.rp_id_hash);
                if let Some(hash) = rp_id_hash {
                    self.check_token_rp(&hash)?;
                }
                let removed = self.state.residents.remove(index);
                if let Err(code) = self.persist() {
                    self.state.residents.insert(index, removed);
                    return Err(code);
                }
                Ok(status(StatusCode::Ok))
            }
            S::UpdateUserInformation => {
                let id = params
                    .credential_id
                    .map(|d| d.id)
                    .ok_or(StatusCode::MissingParameter)?;
                let user = params.user.ok_or(StatusCode::MissingParameter)?;
                let index = self
                    .state
                    .residents
                    .iter()
                    .position(|r| r.credential_id == id)
                    .ok_or(StatusCode::NoCredentials)?;
                let Some(resident) = self.state.residents.get(index).cloned() else {
                    return Err(StatusCode::NoCredentials);
                };
                self.check_token_rp(&resident.rp_id_hash)?;
                if resident.user.id != user.id {
                    return Err(StatusCode::InvalidParameter);
                }
                if let Some(slot) = self.state.residents.get_mut(index) {
                    slot.user = user;
                }
                if let Err(code) = self.persist() {
                    if let Some(slot) = self.state.residents.get_mut(index) {
                        *slot = resident;
                    }
                    return Err(code);
                }
                Ok(status(StatusCode::Ok))
            }
            S::EnumerateRpsGetNextRp | S::EnumerateCredentialsGetNextCredential => {
                Err(StatusCode::NotAllowed)
            }
        }
    }

    /// A token bound to an RP may only manage that RP's credentials.
    fn check_token_rp(&self, rp_id_hash: &[u8; 32]) -> Result<(), StatusCode> {
        let bound = self
            .pin
            .token_state
            .as_ref()
            .and_then(|t| t.rp_id.as_deref());
        match bound {
            Some(rp_id) if &crate::crypto::sha256(rp_id.as_bytes()) != rp_id_hash => {
                Err(StatusCode::PinAuthInvalid)
            }
            _ => Ok(()),
        }
    }

    fn begin_enumeration(
        &mut self,
        kind: EnumerationKind,
        mut responses: VecDeque<CredentialManagementResponse>,
        set_total: impl FnOnce(&mut CredentialManagementResponse, u64),
    ) -> Result<Vec<u8>, StatusCode> {
        let total = responses.len() as u64;
        let mut first = responses.pop_front().ok_or(StatusCode::NoCredentials)?;
        set_total(&mut first, total);
        if !responses.is_empty() {
            self.enumeration = Some(Enumeration {
                kind,
                remaining: responses,
                expires: self.now().saturating_add(FOLLOW_UP_TIMEOUT),
            });
        }
        Ok(respond(&first))
    }

    fn next_in_enumeration(
        &mut self,
        kind: EnumerationKind,
        enumeration: Option<Enumeration>,
    ) -> Result<Vec<u8>, StatusCode> {
        let mut enumeration = enumeration
            .filter(|e| e.kind == kind)
            .ok_or(StatusCode::NotAllowed)?;
        let now = self.now();
        if now > enumeration.expires {
            return Err(StatusCode::NotAllowed);
        }
        let next = enumeration
            .remaining
            .pop_front()
            .ok_or(StatusCode::NotAllowed)?;
        if !enumeration.remaining.is_empty() {
            enumeration.expires = now.saturating_add(FOLLOW_UP_TIMEOUT);
            self.enumeration = Some(enumeration);
        }
        Ok(respond(&next))
    }
}

fn respond(response: &CredentialManagementResponse) -> Vec<u8> {
    ok(response.to_value().as_ref())
}
