//! Registration ceremonies (WebAuthn L3 §7.1 "Registering a New Credential") and the
//! attestation statement formats `packed` (§8.2), `fido-u2f` (§8.6) and `none` (§8.7).
//!
//! Order of the checks, after §7.1: clientDataJSON (steps 5–11) → attestationObject parse
//! (step 12) → rpIdHash (step 13) → UP, UV, BE/BS (steps 14–17) → credential key algorithm
//! (step 20) → attestation statement signature and certificates (step 21) → trust (steps
//! 22–23: trust anchors, or the policy's acceptance of self and `none` attestation) →
//! AAGUID allow-list. Checking that the credential ID is not registered yet (step 24) is
//! the store's job.

use tokengate_ctap::attestation::{
    AttestationObject, AttestationStatement, fido_u2f_signed_data, signed_data,
};
use tokengate_ctap::auth_data::AAGUID_LEN;
use tokengate_ctap::cose::{CoseKey, alg};

use super::client_data::{Ceremony, ClientData};
use super::crypto::{check_credential_key, sha256, verify_credential_signature};
use super::trust::{self, TrustAnchor};
use super::{AuthenticatorFlags, Rejection, StoredCredential, check_flags};

/// What a registration must satisfy beyond the protocol itself.
#[derive(Debug, Clone)]
pub struct RegistrationPolicy {
    /// Roots (or directly trusted attestation certificates) that `packed` x5c and
    /// `fido-u2f` attestation must lead to. Empty: no attestation certificate is trusted.
    pub trust_anchors: Vec<TrustAnchor>,
    /// When set, only these AAGUIDs register. U2F keys (raw or `fido-u2f`) count as the
    /// zero AAGUID — a `fido-u2f` signature does not cover the AAGUID — so list `[0; 16]` to
    /// admit them. Only a trusted `packed` attestation binds the AAGUID to a vendor; with
    /// self or `none` attestation it is the authenticator's (or client's) unproven claim.
    pub allowed_aaguids: Option<Vec<[u8; AAGUID_LEN]>>,
    /// Accept `none` attestation (nothing vouches for the authenticator).
    pub allow_none_attestation: bool,
    /// Accept `packed` self attestation (the credential key vouches for itself).
    pub allow_self_attestation: bool,
    /// Require the UV flag (PIN or biometrics); U2F registrations then always fail.
    pub require_user_verification: bool,
    /// Check every attestation certificate's validity period at the input's `now`.
    pub check_certificate_validity: bool,
}

impl Default for RegistrationPolicy {
    /// No anchors, no allow-list, neither `none` nor self attestation, UV not required,
    /// certificate validity checked.
    fn default() -> Self {
        Self {
            trust_anchors: Vec::new(),
            allowed_aaguids: None,
            allow_none_attestation: false,
            allow_self_attestation: false,
            require_user_verification: false,
            check_certificate_validity: true,
        }
    }
}

/// One registration response and what the relying party expects of it.
#[derive(Debug, Clone, Copy)]
pub struct RegistrationInput<'a> {
    /// The attestationObject (WebAuthn L3 §6.5.4; CBOR with text keys).
    pub attestation_object: &'a [u8],
    /// clientDataJSON, or the hash the relying party sent the key.
    pub client_data: ClientData<'a>,
    /// The challenge the relying party issued for this ceremony (raw bytes).
    pub challenge: &'a [u8],
    /// The expected origin, e.g. `https://tokengate.example`.
    pub origin: &'a str,
    /// The relying party ID whose SHA-256 rpIdHash must be.
    pub rp_id: &'a str,
    /// Unix seconds, for certificate validity.
    pub now: i64,
}

/// What vouches for a new credential (WebAuthn L3 §6.5.3 attestation types).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttestationResult {
    /// Basic or AttCA attestation whose path ends at a configured trust anchor.
    Trusted {
        /// The anchor's subject name (RFC 4514 style).
        anchor_subject: String,
    },
    /// `packed` self attestation.
    SelfAttested,
    /// `none` attestation.
    None,
}

/// A credential that passed registration: what to store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegisteredCredential {
    /// The credential ID (U2F: the key handle).
    pub credential_id: Vec<u8>,
    /// The credential public key.
    pub public_key: CoseKey,
    /// The public key as COSE_Key bytes (CTAP2 canonical CBOR).
    pub public_key_cose: Vec<u8>,
    /// The signature counter at registration.
    pub sign_count: u32,
    /// The authenticator model (zero for U2F).
    pub aaguid: [u8; AAGUID_LEN],
    /// The attestation statement format: `packed`, `fido-u2f` or `none` (`fido-u2f` for a
    /// raw U2F registration too).
    pub attestation_format: &'static str,
    /// What vouched for the credential.
    pub attestation: AttestationResult,
    /// The authenticatorData flags of the registration.
    pub flags: AuthenticatorFlags,
}

impl RegisteredCredential {
    /// The state [`super::verify_assertion`] needs, fresh from registration.
    pub fn to_stored(&self) -> StoredCredential {
        StoredCredential {
            public_key: self.public_key,
            sign_count: self.sign_count,
            backup_eligible: self.flags.backup_eligible(),
        }
    }
}

/// Verifies a registration ceremony (WebAuthn L3 §7.1) against `policy`.
pub fn verify_registration(
    policy: &RegistrationPolicy,
    input: &RegistrationInput<'_>,
) -> Result<RegisteredCredential, Rejection> {
    let client_data = &input.client_data;
    let client_data_hash = client_data.verify(Ceremony::Create, input.challenge, input.origin)?;
    let object = AttestationObject::decode(input.attestation_object)?;
    let auth_data = &object.auth_data;
    if auth_data.rp_id_hash != sha256(input.rp_id.as_bytes()) {
        return Err(Rejection::RpIdMismatch);
    }
    let flags = AuthenticatorFlags(auth_data.flags);
    check_flags(flags, policy.require_user_verification)?;
    let credential = auth_data
        .attested_credential_data
        .as_ref()
        .ok_or(Rejection::MissingCredentialData)?;
    check_credential_key(&credential.credential_public_key)?;

    let now = policy.check_certificate_validity.then_some(input.now);
    let attestation = match &object.statement {
        AttestationStatement::Packed { alg, sig, x5c } if x5c.is_empty() => {
            if !policy.allow_self_attestation {
                return Err(Rejection::SelfAttestationNotAllowed);
            }
            // §8.2 verification step 4: self attestation, signed by the credential key.
            let key = &credential.credential_public_key;
            if *alg != key.alg() {
                return Err(Rejection::AlgorithmMismatch {
                    statement: *alg,
                    key: key.alg(),
                });
            }
            let message = signed_data(&auth_data.to_vec(), &client_data_hash);
            verify_credential_signature(key, &message, sig)?;
            AttestationResult::SelfAttested
        }
        AttestationStatement::Packed { alg, sig, x5c } => {
            // §8.2 verification step 2: Basic or AttCA attestation with a certificate path.
            let certs = parse_chain(x5c)?;
            let leaf = certs
                .first()
                .ok_or(Rejection::UntrustedAttestation("empty x5c"))?;
            let message = signed_data(&auth_data.to_vec(), &client_data_hash);
            trust::verify_with_certificate_key(leaf, *alg, &message, sig)?;
            trust::check_packed_certificate(leaf, &credential.aaguid)?;
            trusted(trust::verify_path(&certs, &policy.trust_anchors, now)?)
        }
        AttestationStatement::FidoU2f { sig, certificate } => {
            // §8.6 verification steps 2–6. The signature covers neither the flags nor the
            // counter nor the AAGUID; a U2F key has no UV and no backup, so a client that
            // claims them is making them up.
            if flags.user_verified() || flags.backup_eligible() || flags.backed_up() {
                return Err(Rejection::InconsistentFlags("fido-u2f with UV, BE or BS"));
            }
            let cert = trust::parse(certificate)?;
            trust::check_u2f_certificate(&cert)?;
            let message = fido_u2f_signed_data(auth_data, &client_data_hash)?;
            trust::verify_with_certificate_key(&cert, alg::ES256, &message, sig)?;
            trusted(trust::verify_path(&[cert], &policy.trust_anchors, now)?)
        }
        AttestationStatement::None => {
            if !policy.allow_none_attestation {
                return Err(Rejection::NoneAttestationNotAllowed);
            }
            AttestationResult::None
        }
    };
    // A fido-u2f statement does not vouch for the AAGUID: the allow-list sees zero, as for
    // raw U2F registrations.
    let vouched_aaguid = match object.statement {
        AttestationStatement::FidoU2f { .. } => [0; AAGUID_LEN],
        _ => credential.aaguid,
    };
    check_aaguid(policy, &vouched_aaguid)?;

    Ok(RegisteredCredential {
        credential_id: credential.credential_id.clone(),
        public_key: credential.credential_public_key,
        public_key_cose: credential.credential_public_key.to_vec(),
        sign_count: auth_data.sign_count,
        aaguid: credential.aaguid,
        attestation_format: object.statement.format(),
        attestation,
        flags,
    })
}

/// Parses every certificate of `x5c`, bounded by [`trust::MAX_CERTIFICATE_CHAIN_LEN`].
pub(crate) fn parse_chain(
    x5c: &[Vec<u8>],
) -> Result<Vec<x509_parser::certificate::X509Certificate<'_>>, Rejection> {
    if x5c.len() > trust::MAX_CERTIFICATE_CHAIN_LEN {
        return Err(Rejection::UntrustedAttestation(
            "certificate chain longer than MAX_CERTIFICATE_CHAIN_LEN",
        ));
    }
    x5c.iter().map(|der| trust::parse(der)).collect()
}

pub(crate) fn trusted(anchor: &TrustAnchor) -> AttestationResult {
    AttestationResult::Trusted {
        anchor_subject: anchor.subject().to_owned(),
    }
}

/// The policy's AAGUID allow-list, if any.
pub(crate) fn check_aaguid(
    policy: &RegistrationPolicy,
    aaguid: &[u8; AAGUID_LEN],
) -> Result<(), Rejection> {
    match &policy.allowed_aaguids {
        Some(allowed) if !allowed.contains(aaguid) => Err(Rejection::AaguidNotAllowed(*aaguid)),
        _ => Ok(()),
    }
}
