//! Registration and authentication whatever the key speaks: CTAP2 when it can, U2F
//! otherwise, mapped as WebAuthn L3 §6.1.2 and CTAP 2.1 §10 map CTAP1 (python-fido2
//! `Fido2Client`, libfido2 `u2f_register` / `u2f_authenticate`). The relying-party ID is
//! hashed into the U2F application parameter; the clientDataHash is the U2F challenge.

use ring::digest;
use tokengate_ctap::attestation::AttestationObject;
use tokengate_ctap::auth_data::AuthenticatorData;
use tokengate_ctap::cose::alg;
use tokengate_ctap::ctap2::PublicKeyCredentialUserEntity;
use tokengate_ctap::u2f::{self, AuthenticateResponse, Control};

use crate::ctap2::{AssertionRequest, CredentialRequest, UserVerification};
use crate::device::{Authenticator, Op};
use crate::error::Error;

/// Which protocol produced a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// CTAP2 over CTAPHID_CBOR.
    Ctap2,
    /// U2F (CTAP1) over CTAPHID_MSG.
    U2f,
}

/// A new credential, ready for the relying party's verifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The attestationObject: `fmt: "fido-u2f"` for U2F keys
    /// ([`u2f::RegisterResponse::to_attestation_object`]).
    pub attestation_object: AttestationObject,
    /// How it was made.
    pub protocol: Protocol,
}

impl Registration {
    /// The credential ID to store and put in later allow lists.
    pub fn credential_id(&self) -> Option<&[u8]> {
        self.attestation_object
            .auth_data
            .attested_credential_data
            .as_ref()
            .map(|c| c.credential_id.as_slice())
    }
}

/// A signature by a registered credential, ready for the relying party's verifier: the
/// signature is over `auth_data ‖ clientDataHash` for both protocols.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assertion {
    /// The credential that signed.
    pub credential_id: Vec<u8>,
    /// authenticatorData (for U2F, the 37 bytes at the start of the signed data).
    pub auth_data: AuthenticatorData,
    /// ECDSA (DER) or EdDSA signature.
    pub signature: Vec<u8>,
    /// The account, for discoverable credentials.
    pub user: Option<PublicKeyCredentialUserEntity>,
    /// How it was made.
    pub protocol: Protocol,
}

/// SHA-256 of the RP ID: the U2F application parameter and the authData rpIdHash.
pub fn rp_id_hash(rp_id: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, rp_id.as_bytes()).as_ref());
    out
}

impl Authenticator {
    /// Registers a credential: CTAP2 MakeCredential, or U2F REGISTER on a U2F-only key.
    /// Waits for a touch ("Touch your security key…" through the touch callback).
    pub fn register(&mut self, request: &CredentialRequest) -> Result<Registration, Error> {
        let mut op = self.op();
        if self.speaks_ctap2(&mut op)? {
            let response = self.make_credential_with(&mut op, request)?;
            return Ok(Registration {
                attestation_object: response.attestation_object,
                protocol: Protocol::Ctap2,
            });
        }
        self.register_u2f(&mut op, request)
    }

    /// Authenticates: CTAP2 GetAssertion (the first matching credential), or U2F
    /// AUTHENTICATE with the first key handle of the allow list this key recognises.
    pub fn authenticate(&mut self, request: &AssertionRequest) -> Result<Assertion, Error> {
        let mut op = self.op();
        if self.speaks_ctap2(&mut op)? {
            let response = self.get_assertion_with(&mut op, request)?;
            let credential_id = match (response.credential, request.allow_list.as_slice()) {
                (Some(credential), _) => credential.id,
                // "may be omitted if the allowList has exactly one credential" (§6.2.2).
                (None, [only]) => only.clone(),
                (None, _) => {
                    return Err(Error::unexpected(
                        "an assertion that does not name its credential",
                    ));
                }
            };
            return Ok(Assertion {
                credential_id,
                auth_data: response.auth_data,
                signature: response.signature,
                user: response.user,
                protocol: Protocol::Ctap2,
            });
        }
        self.authenticate_u2f(&mut op, request)
    }

    /// CTAP2 if the key has the CBOR capability and answers GetInfo; a key that claims CBOR
    /// but refuses GetInfo falls back to U2F if it has that.
    fn speaks_ctap2(&mut self, op: &mut Op) -> Result<bool, Error> {
        if !self.has_ctap2() {
            return Ok(false);
        }
        match self.info_with(op) {
            Ok(_) => Ok(true),
            Err(Error::Status(_) | Error::Protocol(_)) if self.has_u2f() => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn register_u2f(
        &mut self,
        op: &mut Op,
        request: &CredentialRequest,
    ) -> Result<Registration, Error> {
        if request.resident_key {
            return Err(Error::Unsupported(
                "discoverable credentials (it is a U2F-only key)",
            ));
        }
        if request.user_verification == UserVerification::Required {
            return Err(Error::Unsupported(
                "user verification (it is a U2F-only key)",
            ));
        }
        if !request.algorithms.contains(&alg::ES256) {
            return Err(Error::Unsupported(
                "algorithms other than ES256 (it is a U2F-only key)",
            ));
        }
        let application = rp_id_hash(&request.rp.id);
        for key_handle in &request.exclude_list {
            if key_handle.len() <= u2f::MAX_KEY_HANDLE_LEN
                && self.u2f_is_registered_with(op, &application, key_handle)?
            {
                // Ask for a touch before saying so, as CTAP2 keys do (libfido2
                // `send_dummy_register`), so that no one learns it without presence.
                self.u2f_register_with(op, &[0xFF; 32], &[0xFF; 32])?;
                return Err(Error::CredentialExcluded);
            }
        }
        let response = self.u2f_register_with(op, &request.client_data_hash, &application)?;
        Ok(Registration {
            attestation_object: response.to_attestation_object(&application),
            protocol: Protocol::U2f,
        })
    }

    fn authenticate_u2f(
        &mut self,
        op: &mut Op,
        request: &AssertionRequest,
    ) -> Result<Assertion, Error> {
        if request.allow_list.is_empty() {
            return Err(Error::Unsupported(
                "discoverable credentials (it is a U2F-only key; give an allow list)",
            ));
        }
        if request.user_verification == UserVerification::Required {
            return Err(Error::Unsupported(
                "user verification (it is a U2F-only key)",
            ));
        }
        let application = rp_id_hash(&request.rp_id);
        let control = if request.user_presence {
            Control::EnforceUserPresenceAndSign
        } else {
            Control::DontEnforceUserPresenceAndSign
        };
        for key_handle in &request.allow_list {
            if key_handle.len() > u2f::MAX_KEY_HANDLE_LEN
                || !self.u2f_is_registered_with(op, &application, key_handle)?
            {
                continue;
            }
            let response: AuthenticateResponse = self.u2f_authenticate_with(
                op,
                control,
                &request.client_data_hash,
                &application,
                key_handle,
            )?;
            return Ok(Assertion {
                credential_id: key_handle.clone(),
                auth_data: response.to_auth_data(&application),
                signature: response.signature,
                user: None,
                protocol: Protocol::U2f,
            });
        }
        Err(Error::NoCredentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rp_id_hash_is_sha256() {
        // U2F spec §8.1 example: SHA-256("http://example.com") (fido.md §3.1).
        let expected = "f0e6a6a97042a4f1f1c87f5f7d44315b2d852c2df5c7991cc66241bf7072d1c4";
        let got: String = rp_id_hash("http://example.com")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, expected);
    }
}
