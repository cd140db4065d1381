//! Authentication ceremonies (WebAuthn L3 §7.2 "Verifying an Authentication Assertion")
//! and the signature counter rule (§6.1.1 "Signature Counter Considerations").
//!
//! Order of the checks, after §7.2: clientDataJSON (steps 9–15) → authenticatorData parse
//! → rpIdHash (step 15) → UP, UV (steps 16–17) → BE unchanged and BS only with BE (step 18)
//! → signature over `authenticatorData ‖ clientDataHash` (steps 19–21) → counter (step 22).
//! The counter comes last on purpose: only an authentic assertion may get a key flagged as
//! cloned, or anyone could get honest keys flagged by sending low counters.

use tokengate_ctap::attestation::signed_data;
use tokengate_ctap::auth_data::AuthenticatorData;
use tokengate_ctap::cose::CoseKey;

use super::client_data::{Ceremony, ClientData};
use super::crypto::{sha256, verify_credential_signature};
use super::{AuthenticatorFlags, Rejection, check_flags};

/// What the relying party stored for a credential at registration (and updates after each
/// authentication).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredCredential {
    /// The credential public key.
    pub public_key: CoseKey,
    /// The last accepted signature counter.
    pub sign_count: u32,
    /// BE at registration (WebAuthn L3 §6.1.3): it may not change afterwards.
    pub backup_eligible: bool,
}

/// One assertion response and what the relying party expects of it.
#[derive(Debug, Clone, Copy)]
pub struct AssertionInput<'a> {
    /// authenticatorData as received: the exact bytes the key signed.
    pub authenticator_data: &'a [u8],
    /// clientDataJSON, or the hash the relying party sent the key.
    pub client_data: ClientData<'a>,
    /// The signature: DER ECDSA for ES256, 64 bytes for Ed25519.
    pub signature: &'a [u8],
    /// The challenge the relying party issued for this ceremony (raw bytes).
    pub challenge: &'a [u8],
    /// The expected origin.
    pub origin: &'a str,
    /// The relying party ID whose SHA-256 rpIdHash must be.
    pub rp_id: &'a str,
    /// Require the UV flag.
    pub require_user_verification: bool,
}

/// A verified assertion: what to store with a compare-and-set on the old counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssertionOutcome {
    /// The new signature counter.
    pub sign_count: u32,
    /// The authenticatorData flags (UV, BS for the audit record).
    pub flags: AuthenticatorFlags,
}

/// Verifies an authentication assertion (WebAuthn L3 §7.2) for `stored`.
pub fn verify_assertion(
    stored: &StoredCredential,
    input: &AssertionInput<'_>,
) -> Result<AssertionOutcome, Rejection> {
    let client_data_hash =
        input
            .client_data
            .verify(Ceremony::Get, input.challenge, input.origin)?;
    let auth_data = AuthenticatorData::decode(input.authenticator_data)?;
    if auth_data.rp_id_hash != sha256(input.rp_id.as_bytes()) {
        return Err(Rejection::RpIdMismatch);
    }
    let flags = AuthenticatorFlags(auth_data.flags);
    check_flags(flags, input.require_user_verification)?;
    if flags.backup_eligible() != stored.backup_eligible {
        return Err(Rejection::BackupEligibilityChanged);
    }
    let message = signed_data(input.authenticator_data, &client_data_hash);
    verify_credential_signature(&stored.public_key, &message, input.signature)?;
    check_counter(stored.sign_count, auth_data.sign_count)?;
    Ok(AssertionOutcome {
        sign_count: auth_data.sign_count,
        flags,
    })
}

/// The signature counter rule (WebAuthn L3 §6.1.1, §7.2 step 22): when either counter is
/// non-zero, the received one must be strictly greater than the stored one; otherwise the
/// authenticator may be cloned. Two zeros pass — the key keeps no counter.
pub fn check_counter(stored: u32, received: u32) -> Result<(), Rejection> {
    if (stored != 0 || received != 0) && received <= stored {
        return Err(Rejection::PossibleClone { stored, received });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_rule_table() {
        let clone = |stored, received| Err(Rejection::PossibleClone { stored, received });
        assert_eq!(check_counter(0, 0), Ok(()));
        assert_eq!(check_counter(5, 5), clone(5, 5));
        assert_eq!(check_counter(5, 6), Ok(()));
        assert_eq!(check_counter(3, 0), clone(3, 0));
        assert_eq!(check_counter(0, 1), Ok(()));
        assert_eq!(check_counter(6, 5), clone(6, 5));
        assert_eq!(check_counter(u32::MAX - 1, u32::MAX), Ok(()));
        assert_eq!(check_counter(u32::MAX, u32::MAX), clone(u32::MAX, u32::MAX));
        assert_eq!(check_counter(u32::MAX, 0), clone(u32::MAX, 0));
    }
}
