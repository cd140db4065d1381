//! FIDO2 (W3C WebAuthn Level 3) and FIDO U2F verification for the relying party.
//!
//! * [`verify_registration`] — a registration ceremony (WebAuthn L3 §7.1 "Registering a New
//!   Credential"): clientDataJSON, rpIdHash, flags, attested credential data, and the
//!   `packed` (§8.2), `fido-u2f` (§8.6) and `none` (§8.7) attestation statements, judged by a
//!   [`RegistrationPolicy`] (trust anchors, AAGUID allow-list, which attestation types pass).
//! * [`verify_assertion`] — an authentication ceremony (WebAuthn L3 §7.2 "Verifying an
//!   Authentication Assertion"), including the signature counter rule (§6.1.1).
//! * [`verify_u2f_registration`] and [`verify_u2f_authentication`] — the raw U2F messages
//!   (FIDO U2F Raw Message Formats v1.2 §4.3 and §5.4), for keys driven over CTAP1.
//!
//! Either ceremony can be checked from the clientDataJSON a browser or python-fido2 produced
//! ([`ClientData::Json`]), or — when tokengate itself plays the client and sends the key a
//! clientDataHash over CTAP — from the hash of the JSON it built ([`ClientData::TrustedHash`],
//! [`client_data_json`]).
//!
//! Everything here is a pure function of its arguments: no I/O, no clock (the time for
//! certificate validity is passed in), no randomness. Nothing is stored either: the caller
//! persists the returned counter with a compare-and-set.
//!
//! Every refusal is a [`Rejection`] that names the reason, for the log and the audit trail.
//! The service shows none of it to the client: all MFA failures look the same on the wire.
//! [`Rejection::PossibleClone`] is the one the service must act on besides refusing — it
//! marks the key as possibly cloned. It is only ever returned for an assertion whose
//! signature verified, so a forged message cannot get an honest key flagged.
//!
//! ```
//! use tokengate_verifier::fido::{AssertionInput, ClientData, StoredCredential, verify_assertion};
//!
//! /// The service's login step: the new counter to store (compare-and-set on the old one),
//! /// or one generic failure for the client.
//! fn login(
//!     stored: &StoredCredential,
//!     authenticator_data: &[u8],
//!     client_data_json: &[u8],
//!     signature: &[u8],
//!     challenge: &[u8],
//! ) -> Result<u32, &'static str> {
//!     let input = AssertionInput {
//!         authenticator_data,
//!         client_data: ClientData::Json(client_data_json),
//!         signature,
//!         challenge,
//!         origin: "https://tokengate.example",
//!         rp_id: "tokengate.example",
//!         require_user_verification: false,
//!     };
//!     match verify_assertion(stored, &input) {
//!         Ok(outcome) => Ok(outcome.sign_count),
//!         Err(reason) => {
//!             if reason.is_possible_clone() {
//!                 // Flag the key as possibly cloned and audit it.
//!             }
//!             eprintln!("MFA refused: {} ({reason})", reason.code());
//!             Err("MultiFactorAuthentication failed")
//!         }
//!     }
//! }
//! # let stored = StoredCredential {
//! #     public_key: tokengate_ctap::cose::CoseKey::Ed25519([0; 32]),
//! #     sign_count: 0,
//! #     backup_eligible: false,
//! # };
//! # assert!(login(&stored, &[0; 37], b"{}", &[0; 64], &[1; 32]).is_err());
//! ```
//!
//! Algorithms: credential keys are ES256 (ECDSA P-256 with SHA-256, DER signatures) or EdDSA
//! (Ed25519); certificate signatures may also be RSA PKCS #1 v1.5 (SHA-256/384/512) — the
//! Yubico U2F root is RSA — or ECDSA P-384; SHA-1 is refused. All checks use ring.

use tokengate_ctap::auth_data::flags;

mod assertion;
mod client_data;
mod crypto;
mod registration;
mod trust;
mod u2f;

pub use assertion::{
    AssertionInput, AssertionOutcome, StoredCredential, check_counter, verify_assertion,
};
pub use client_data::{
    Ceremony, ClientData, MAX_CLIENT_DATA_JSON_LEN, MIN_CHALLENGE_LEN, client_data_json,
};
pub use registration::{
    AttestationResult, RegisteredCredential, RegistrationInput, RegistrationPolicy,
    verify_registration,
};
pub use trust::{
    InvalidTrustAnchor, MAX_CERTIFICATE_CHAIN_LEN, TrustAnchor, YUBICO_U2F_ROOT_CA_PEM,
};
pub use u2f::{
    U2fAuthenticationInput, U2fRegistrationInput, verify_u2f_authentication,
    verify_u2f_registration,
};

/// Why a FIDO registration or assertion was refused.
///
/// For the log and the audit trail only ([`Rejection::code`] gives a stable short name);
/// the client sees one generic MFA failure whatever the variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    // ---- Malformed input from the client or the key ----
    /// authenticatorData, the attestationObject or a U2F message does not parse.
    #[error("malformed FIDO message: {0}")]
    Malformed(tokengate_ctap::Error),
    /// clientDataJSON is not the JSON object WebAuthn L3 §5.8.1 describes.
    #[error("malformed clientDataJSON: {0}")]
    MalformedClientData(&'static str),
    /// The registration's authenticatorData has no attested credential data (AT clear).
    #[error("registration without attested credential data")]
    MissingCredentialData,
    /// Flags contradict each other: BS set without BE (WebAuthn L3 §6.1.3).
    #[error("inconsistent authenticatorData flags: {0}")]
    InconsistentFlags(&'static str),

    // ---- The ceremony does not match what the relying party asked for ----
    /// clientDataJSON's `type`, `challenge`, `origin`, `crossOrigin` or `topOrigin` (named)
    /// is not what this ceremony expects (WebAuthn L3 §7.1 steps 7–10, §7.2 steps 11–14).
    #[error("clientDataJSON {0} does not match the ceremony")]
    ClientDataMismatch(&'static str),
    /// rpIdHash is not SHA-256 of the expected RP ID (or the U2F application parameter).
    #[error("rpIdHash does not match the relying party")]
    RpIdMismatch,
    /// The UP flag (or U2F presence bit) is clear: nobody touched the key.
    #[error("user not present")]
    UserNotPresent,
    /// User verification was required and the UV flag is clear (U2F cannot verify users).
    #[error("user not verified")]
    UserNotVerified,
    /// BE differs from the value stored at registration (WebAuthn L3 §7.2 step 18).
    #[error("backup eligibility changed since registration")]
    BackupEligibilityChanged,

    // ---- Cryptography and attestation ----
    /// A signature did not verify (assertion, attestation or self attestation).
    #[error("signature does not verify")]
    BadSignature,
    /// A key or signature algorithm this verifier does not accept (COSE identifier).
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(i64),
    /// A `packed` statement's `alg` is not the algorithm of the key that must have signed.
    #[error("attestation alg {statement} does not match the signing key's alg {key}")]
    AlgorithmMismatch {
        /// `alg` in the attestation statement.
        statement: i64,
        /// The COSE algorithm of the credential key or attestation certificate key.
        key: i64,
    },
    /// An attestation statement format other than `packed`, `fido-u2f` and `none`.
    #[error("unsupported attestation statement format")]
    UnsupportedAttestation,
    /// The certificate path does not lead to a configured trust anchor, or a certificate
    /// breaks a rule (the detail names which).
    #[error("untrusted attestation: {0}")]
    UntrustedAttestation(&'static str),
    /// The attestation certificate's id-fido-gen-ce-aaguid differs from the authData
    /// AAGUID (WebAuthn L3 §8.2.1).
    #[error("attestation certificate AAGUID does not match authenticatorData")]
    AaguidMismatch,
    /// `none` attestation, and the policy does not accept it.
    #[error("none attestation not allowed by policy")]
    NoneAttestationNotAllowed,
    /// `packed` self attestation, and the policy does not accept it.
    #[error("self attestation not allowed by policy")]
    SelfAttestationNotAllowed,
    /// The AAGUID is not on the policy's allow-list (U2F keys count as the zero AAGUID).
    #[error("AAGUID {} not allowed by policy", hex(.0))]
    AaguidNotAllowed([u8; 16]),

    // ---- Replay and cloning ----
    /// The signature counter did not increase although one of the two values is non-zero
    /// (WebAuthn L3 §6.1.1): the key may have been cloned. The signature was valid.
    #[error("signature counter {received} not above stored {stored}: possible clone")]
    PossibleClone {
        /// The counter stored for the credential.
        stored: u32,
        /// The counter in the assertion.
        received: u32,
    },

    // ---- Caller misuse ----
    /// The relying party's own arguments are unusable (e.g. a challenge shorter than
    /// [`MIN_CHALLENGE_LEN`], a time the certificate code cannot represent).
    #[error("verifier called with an invalid argument: {0}")]
    CallerMisuse(&'static str),
}

impl Rejection {
    /// A stable short name for logs, metrics and the audit trail.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::MalformedClientData(_) => "malformed_client_data",
            Self::MissingCredentialData => "missing_credential_data",
            Self::InconsistentFlags(_) => "inconsistent_flags",
            Self::ClientDataMismatch(_) => "client_data_mismatch",
            Self::RpIdMismatch => "rp_id_mismatch",
            Self::UserNotPresent => "user_not_present",
            Self::UserNotVerified => "user_not_verified",
            Self::BackupEligibilityChanged => "backup_eligibility_changed",
            Self::BadSignature => "bad_signature",
            Self::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            Self::AlgorithmMismatch { .. } => "algorithm_mismatch",
            Self::UnsupportedAttestation => "unsupported_attestation",
            Self::UntrustedAttestation(_) => "untrusted_attestation",
            Self::AaguidMismatch => "aaguid_mismatch",
            Self::NoneAttestationNotAllowed => "none_attestation_not_allowed",
            Self::SelfAttestationNotAllowed => "self_attestation_not_allowed",
            Self::AaguidNotAllowed(_) => "aaguid_not_allowed",
            Self::PossibleClone { .. } => "possible_clone",
            Self::CallerMisuse(_) => "caller_misuse",
        }
    }

    /// Whether this refusal means the key may be cloned and must be flagged.
    pub fn is_possible_clone(&self) -> bool {
        matches!(self, Self::PossibleClone { .. })
    }
}

impl From<tokengate_ctap::Error> for Rejection {
    fn from(e: tokengate_ctap::Error) -> Self {
        match e {
            tokengate_ctap::Error::UnsupportedAlgorithm(alg) => Self::UnsupportedAlgorithm(alg),
            tokengate_ctap::Error::UnsupportedFormat => Self::UnsupportedAttestation,
            other => Self::Malformed(other),
        }
    }
}

/// The authenticatorData flags byte (WebAuthn L3 §6.1, table "flags").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthenticatorFlags(pub u8);

impl AuthenticatorFlags {
    /// The raw byte.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// UP, bit 0: the user touched the key.
    pub fn user_present(self) -> bool {
        self.0 & flags::UP != 0
    }

    /// UV, bit 2: the key verified the user (PIN or biometrics).
    pub fn user_verified(self) -> bool {
        self.0 & flags::UV != 0
    }

    /// BE, bit 3: the credential may be backed up (a synced passkey).
    pub fn backup_eligible(self) -> bool {
        self.0 & flags::BE != 0
    }

    /// BS, bit 4: the credential is backed up now.
    pub fn backed_up(self) -> bool {
        self.0 & flags::BS != 0
    }
}

/// Checks shared by both ceremonies: UP (WebAuthn L3 §7.1 step 14, §7.2 step 16), UV when
/// required (§7.1 step 15, §7.2 step 17), and "BS only with BE" (§6.1.3).
fn check_flags(flags: AuthenticatorFlags, require_uv: bool) -> Result<(), Rejection> {
    if !flags.user_present() {
        return Err(Rejection::UserNotPresent);
    }
    if require_uv && !flags.user_verified() {
        return Err(Rejection::UserNotVerified);
    }
    if flags.backed_up() && !flags.backup_eligible() {
        return Err(Rejection::InconsistentFlags("BS set without BE"));
    }
    Ok(())
}

/// Lower-case hex, for AAGUIDs in messages.
fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctap_errors_map_to_reasons() {
        use tokengate_ctap::Error as E;
        assert_eq!(
            Rejection::from(E::UnsupportedAlgorithm(-35)),
            Rejection::UnsupportedAlgorithm(-35)
        );
        assert_eq!(
            Rejection::from(E::UnsupportedFormat),
            Rejection::UnsupportedAttestation
        );
        assert_eq!(
            Rejection::from(E::Truncated("rpIdHash")),
            Rejection::Malformed(E::Truncated("rpIdHash"))
        );
    }

    #[test]
    fn flags_rules() {
        assert_eq!(check_flags(AuthenticatorFlags(0x01), false), Ok(()));
        assert_eq!(
            check_flags(AuthenticatorFlags(0x00), false),
            Err(Rejection::UserNotPresent)
        );
        assert_eq!(
            check_flags(AuthenticatorFlags(0x01), true),
            Err(Rejection::UserNotVerified)
        );
        assert_eq!(check_flags(AuthenticatorFlags(0x05), true), Ok(()));
        assert_eq!(
            check_flags(AuthenticatorFlags(0x11), false),
            Err(Rejection::InconsistentFlags("BS set without BE"))
        );
        assert_eq!(check_flags(AuthenticatorFlags(0x19), false), Ok(()));
    }

    #[test]
    fn codes_are_distinct() {
        let all = [
            Rejection::Malformed(tokengate_ctap::Error::TrailingBytes(1)),
            Rejection::MalformedClientData("x"),
            Rejection::MissingCredentialData,
            Rejection::InconsistentFlags("x"),
            Rejection::ClientDataMismatch("x"),
            Rejection::RpIdMismatch,
            Rejection::UserNotPresent,
            Rejection::UserNotVerified,
            Rejection::BackupEligibilityChanged,
            Rejection::BadSignature,
            Rejection::UnsupportedAlgorithm(0),
            Rejection::AlgorithmMismatch {
                statement: 0,
                key: 0,
            },
            Rejection::UnsupportedAttestation,
            Rejection::UntrustedAttestation("x"),
            Rejection::AaguidMismatch,
            Rejection::NoneAttestationNotAllowed,
            Rejection::SelfAttestationNotAllowed,
            Rejection::AaguidNotAllowed([0; 16]),
            Rejection::PossibleClone {
                stored: 1,
                received: 1,
            },
            Rejection::CallerMisuse("x"),
        ];
        let codes: std::collections::BTreeSet<_> = all.iter().map(Rejection::code).collect();
        assert_eq!(codes.len(), all.len());
        assert!(all.iter().filter(|r| r.is_possible_clone()).count() == 1);
        assert_eq!(
            Rejection::AaguidNotAllowed([0xab; 16]).to_string(),
            "AAGUID abababababababababababababababab not allowed by policy"
        );
    }
}
