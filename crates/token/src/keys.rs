//! Access key ids, secret access keys, unique ids, and the derivation of temporary secrets.
//!
//! Formats follow AWS's conventions (IAM User Guide, "IAM identifiers"): a 4-character
//! prefix (`AKIA` long-term key, `ASIA` temporary key, `AIDA` user) and 16 more characters
//! of base32 (`A–Z2–7`), 20 in all; a secret access key is 40 characters of base64.
//!
//! A temporary secret is not stored: it is `HMAC-SHA256(derivation key, access key id)`
//! (DESIGN.md, "Temporary credentials"), so that any replica holding the derivation key can
//! verify SigV4 for temporary credentials without a per-session row.

use ring::hmac;
use ring::rand::SecureRandom;

use crate::secret::Secret;

/// Prefix of long-term access key ids.
pub const LONG_TERM_PREFIX: &str = "AKIA";
/// Prefix of temporary (STS) access key ids.
pub const TEMPORARY_PREFIX: &str = "ASIA";
/// Prefix of IAM user unique ids.
pub const USER_ID_PREFIX: &str = "AIDA";
/// Prefix of an IAM group's unique id (sts-iam.md §1.2).
pub const GROUP_ID_PREFIX: &str = "AGPA";
/// Prefix of a managed policy's unique id (sts-iam.md §1.2).
pub const POLICY_ID_PREFIX: &str = "ANPA";
/// Prefix of an IAM role's unique id (sts-iam.md §1.2).
pub const ROLE_ID_PREFIX: &str = "AROA";
/// Length of an access key id (AWS convention, e.g. `AKIAIOSFODNN7EXAMPLE`).
pub const ACCESS_KEY_ID_LEN: usize = 20;
/// Length of a secret access key (AWS convention).
pub const SECRET_ACCESS_KEY_LEN: usize = 40;
/// Length of an IAM unique id (`AIDA` + 17 characters, as AWS's `AIDAJ465PRJTNHYBY4JVY`).
pub const UNIQUE_ID_LEN: usize = 21;

/// The randomness source failed (the OS RNG is unavailable): an internal error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomFailed;

/// The kind of an access key id, read from its prefix (`GetAccessKeyInfo` does the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `AKIA…`: long-term credentials of a user or root.
    LongTerm,
    /// `ASIA…`: temporary credentials from STS.
    Temporary,
}

/// What an access key id's prefix says it is, if it is one of ours.
pub fn key_kind(access_key_id: &str) -> Option<KeyKind> {
    if access_key_id.starts_with(LONG_TERM_PREFIX) {
        Some(KeyKind::LongTerm)
    } else if access_key_id.starts_with(TEMPORARY_PREFIX) {
        Some(KeyKind::Temporary)
    } else {
        None
    }
}

fn random_base32(
    rng: &dyn SecureRandom,
    prefix: &str,
    total_len: usize,
) -> Result<String, RandomFailed> {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes).map_err(|_| RandomFailed)?;
    let mut out = String::with_capacity(total_len);
    out.push_str(prefix);
    out.push_str(&data_encoding::BASE32_NOPAD.encode(&bytes));
    out.truncate(total_len);
    Ok(out)
}

/// A new long-term access key id, `AKIA` + 16 base32 characters.
pub fn new_long_term_key_id(rng: &dyn SecureRandom) -> Result<String, RandomFailed> {
    random_base32(rng, LONG_TERM_PREFIX, ACCESS_KEY_ID_LEN)
}

/// A new temporary access key id, `ASIA` + 16 base32 characters.
pub fn new_temporary_key_id(rng: &dyn SecureRandom) -> Result<String, RandomFailed> {
    random_base32(rng, TEMPORARY_PREFIX, ACCESS_KEY_ID_LEN)
}

/// A new IAM user unique id, `AIDA` + 17 base32 characters.
pub fn new_user_id(rng: &dyn SecureRandom) -> Result<String, RandomFailed> {
    random_base32(rng, USER_ID_PREFIX, UNIQUE_ID_LEN)
}

/// A new IAM group unique id, `AGPA` + 17 base32 characters.
pub fn new_group_id(rng: &dyn SecureRandom) -> Result<String, RandomFailed> {
    random_base32(rng, GROUP_ID_PREFIX, UNIQUE_ID_LEN)
}

/// A new IAM role unique id, `AROA` + 17 base32 characters.
pub fn new_role_id(rng: &dyn SecureRandom) -> Result<String, RandomFailed> {
    random_base32(rng, ROLE_ID_PREFIX, UNIQUE_ID_LEN)
}

/// A new managed policy unique id, `ANPA` + 17 base32 characters.
pub fn new_policy_id(rng: &dyn SecureRandom) -> Result<String, RandomFailed> {
    random_base32(rng, POLICY_ID_PREFIX, UNIQUE_ID_LEN)
}

/// A new secret access key: 30 random bytes as 40 characters of base64.
pub fn new_secret_access_key(rng: &dyn SecureRandom) -> Result<Secret, RandomFailed> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 30]);
    rng.fill(bytes.as_mut()).map_err(|_| RandomFailed)?;
    Ok(Secret::from(data_encoding::BASE64.encode(bytes.as_ref())))
}

/// The server-held key from which temporary secrets are derived.
pub struct DerivationKey(hmac::Key);

impl DerivationKey {
    /// A derivation key from 32 secret bytes (kept encrypted in the store).
    pub fn new(key_bytes: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, key_bytes))
    }

    /// The secret access key that belongs to temporary access key id `access_key_id`:
    /// base64 of the first 30 bytes of `HMAC-SHA256(key, "tokengate temporary secret v1" ‖
    /// 0x00 ‖ access_key_id)`, 40 characters like every other secret access key.
    pub fn temporary_secret(&self, access_key_id: &str) -> Secret {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(b"tokengate temporary secret v1\0");
        ctx.update(access_key_id.as_bytes());
        let tag = ctx.sign();
        // HMAC-SHA256 tags are 32 bytes, so the first 30 always exist.
        let head = tag.as_ref().get(..30).unwrap_or(tag.as_ref());
        Secret::from(data_encoding::BASE64.encode(head))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    #[test]
    fn formats() {
        let rng = SystemRandom::new();
        let akia = new_long_term_key_id(&rng).unwrap();
        assert_eq!(akia.len(), ACCESS_KEY_ID_LEN);
        assert!(akia.starts_with("AKIA"));
        assert!(
            akia.bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        );
        let asia = new_temporary_key_id(&rng).unwrap();
        assert!(asia.starts_with("ASIA") && asia.len() == 20);
        let uid = new_user_id(&rng).unwrap();
        assert!(uid.starts_with("AIDA") && uid.len() == UNIQUE_ID_LEN);
        let rid = new_role_id(&rng).unwrap();
        assert!(rid.starts_with("AROA") && rid.len() == UNIQUE_ID_LEN);
        let secret = new_secret_access_key(&rng).unwrap();
        assert_eq!(secret.len(), SECRET_ACCESS_KEY_LEN);
        assert_ne!(new_long_term_key_id(&rng).unwrap(), akia);
        assert_eq!(key_kind(&akia), Some(KeyKind::LongTerm));
        assert_eq!(key_kind(&asia), Some(KeyKind::Temporary));
        assert_eq!(key_kind("AIDAXXXXXXXXXXXXXXXX"), None);
    }

    #[test]
    fn temporary_secret_is_deterministic_and_keyed() {
        let a = DerivationKey::new(&[7u8; 32]);
        let b = DerivationKey::new(&[8u8; 32]);
        let s1 = a.temporary_secret("ASIAAAAAAAAAAAAAAAAA");
        let s2 = a.temporary_secret("ASIAAAAAAAAAAAAAAAAA");
        let s3 = a.temporary_secret("ASIAAAAAAAAAAAAAAAAB");
        let s4 = b.temporary_secret("ASIAAAAAAAAAAAAAAAAA");
        assert_eq!(s1.expose(), s2.expose());
        assert_ne!(s1.expose(), s3.expose());
        assert_ne!(s1.expose(), s4.expose());
        assert_eq!(s1.len(), SECRET_ACCESS_KEY_LEN);
    }
}
