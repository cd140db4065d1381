//! Raw FIDO U2F messages (FIDO U2F Raw Message Formats v1.2), for keys driven over CTAP1.
//!
//! * Registration (§4.3): `0x05 | userPublicKey[65] | L | keyHandle[L] | attestationCert |
//!   signature`, the signature by the attestation key over
//!   `0x00 ‖ application ‖ challenge ‖ keyHandle ‖ userPublicKey`. The attestation
//!   certificate must hold a P-256 key and lead to a trust anchor of the policy.
//! * Authentication (§5.4): `userPresence | counter[4, BE] | signature`, the signature by
//!   the credential key over `application ‖ userPresence ‖ counter ‖ challenge`. Bit 0 of
//!   the presence byte must be set; the counter rule is that of FIDO2 (WebAuthn L3
//!   §6.1.1), which U2F's "counter MUST increase" (§5.4) implies.
//!
//! The application and challenge parameters are not echoed in the responses: the caller
//! passes the values it sent, and the signatures bind them. U2F has no user verification
//! and no AAGUID: a policy that requires UV refuses every U2F registration, and the AAGUID
//! allow-list sees the zero AAGUID.

use tokengate_ctap::attestation::fmt;
use tokengate_ctap::auth_data::{AAGUID_LEN, flags};
use tokengate_ctap::cose::{CoseKey, alg};
use tokengate_ctap::u2f::{
    APPLICATION_LEN, AuthenticateResponse, CHALLENGE_LEN, RegisterResponse,
    authentication_signed_data, registration_signed_data,
};

use super::assertion::{AssertionOutcome, StoredCredential, check_counter};
use super::crypto::verify_credential_signature;
use super::registration::{RegisteredCredential, RegistrationPolicy, check_aaguid, trusted};
use super::{AuthenticatorFlags, Rejection, trust};

/// A U2F_REGISTER response and what the relying party sent.
#[derive(Debug, Clone, Copy)]
pub struct U2fRegistrationInput<'a> {
    /// The response data, without the status word.
    pub response: &'a [u8],
    /// The application parameter sent: SHA-256 of the AppID (or RP ID).
    pub application: &'a [u8; APPLICATION_LEN],
    /// The challenge parameter sent.
    pub challenge: &'a [u8; CHALLENGE_LEN],
    /// Unix seconds, for certificate validity.
    pub now: i64,
}

/// A U2F_AUTHENTICATE response and what the relying party sent.
#[derive(Debug, Clone, Copy)]
pub struct U2fAuthenticationInput<'a> {
    /// The response data, without the status word.
    pub response: &'a [u8],
    /// The application parameter sent.
    pub application: &'a [u8; APPLICATION_LEN],
    /// The challenge parameter sent.
    pub challenge: &'a [u8; CHALLENGE_LEN],
}

/// Verifies a U2F registration response (U2F Raw Message Formats §4.3) against `policy`.
pub fn verify_u2f_registration(
    policy: &RegistrationPolicy,
    input: &U2fRegistrationInput<'_>,
) -> Result<RegisteredCredential, Rejection> {
    if policy.require_user_verification {
        return Err(Rejection::UserNotVerified);
    }
    let response = RegisterResponse::decode(input.response)?;
    let cert = trust::parse(&response.attestation_certificate)?;
    trust::check_u2f_certificate(&cert)?;
    let message = registration_signed_data(
        input.application,
        input.challenge,
        &response.key_handle,
        &response.user_public_key,
    );
    trust::verify_with_certificate_key(&cert, alg::ES256, &message, &response.signature)?;
    let now = policy.check_certificate_validity.then_some(input.now);
    let anchor = trust::verify_path(&[cert], &policy.trust_anchors, now)?;
    let aaguid = [0u8; AAGUID_LEN];
    check_aaguid(policy, &aaguid)?;

    let public_key = CoseKey::Es256(response.user_public_key);
    Ok(RegisteredCredential {
        credential_id: response.key_handle,
        public_key,
        public_key_cose: public_key.to_vec(),
        sign_count: 0,
        aaguid,
        attestation_format: fmt::FIDO_U2F,
        attestation: trusted(anchor),
        flags: AuthenticatorFlags(flags::UP | flags::AT),
    })
}

/// Verifies a U2F authentication response (U2F Raw Message Formats §5.4) for `stored`.
pub fn verify_u2f_authentication(
    stored: &StoredCredential,
    input: &U2fAuthenticationInput<'_>,
) -> Result<AssertionOutcome, Rejection> {
    let response = AuthenticateResponse::decode(input.response)?;
    if response.user_presence & flags::UP == 0 {
        return Err(Rejection::UserNotPresent);
    }
    if !matches!(stored.public_key, CoseKey::Es256(_)) {
        return Err(Rejection::UnsupportedAlgorithm(stored.public_key.alg()));
    }
    let message = authentication_signed_data(
        input.application,
        response.user_presence,
        response.counter,
        input.challenge,
    );
    verify_credential_signature(&stored.public_key, &message, &response.signature)?;
    check_counter(stored.sign_count, response.counter)?;
    Ok(AssertionOutcome {
        sign_count: response.counter,
        flags: AuthenticatorFlags(response.user_presence),
    })
}
