//! Sealing secrets at rest: AES-256-GCM (ring) under the master key, a fresh 96-bit random
//! nonce per value, and the value's place (table, column, row id) as associated data, so a
//! sealed value cannot be moved to another row or column and still open.
//!
//! Layout: `version (1 byte) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use tokengate_token::Secret;
use zeroize::Zeroize;

use crate::StoreError;

/// Format version of sealed values.
const VERSION: u8 = 1;
/// Length of the master key (AES-256).
pub const MASTER_KEY_LEN: usize = 32;

/// Seals and opens values under the master key.
pub struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl Sealer {
    /// A sealer for a 32-byte master key.
    pub fn new(master_key: &Secret) -> Result<Self, StoreError> {
        let unbound = UnboundKey::new(&AES_256_GCM, master_key.expose())
            .map_err(|_| StoreError::Backend("the master key must be 32 bytes".into()))?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        })
    }

    /// Seals `plaintext` for the place named by `aad`.
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| StoreError::Backend("rng failed".into()))?;
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| StoreError::Backend("seal failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&in_out);
        in_out.zeroize();
        Ok(out)
    }

    /// Opens a value sealed for the place named by `aad`.
    pub fn open(&self, aad: &str, sealed: &[u8]) -> Result<Secret, StoreError> {
        let (version, rest) = sealed.split_first().ok_or(StoreError::Unseal)?;
        if *version != VERSION || rest.len() < NONCE_LEN {
            return Err(StoreError::Unseal);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| StoreError::Unseal)?;
        let mut in_out = ciphertext.to_vec();
        let len = self
            .key
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut in_out)
            .map_err(|_| StoreError::Unseal)?
            .len();
        in_out.truncate(len);
        Ok(Secret::new(in_out))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sealer(byte: u8) -> Sealer {
        Sealer::new(&Secret::new(vec![byte; 32])).unwrap()
    }

    #[test]
    fn round_trip() {
        let s = sealer(1);
        let sealed = s.seal("access_key/AKIA1", b"secret").unwrap();
        assert_eq!(
            s.open("access_key/AKIA1", &sealed).unwrap().expose(),
            b"secret"
        );
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn wrong_place_key_or_tamper_fails() {
        let s = sealer(1);
        let sealed = s.seal("access_key/AKIA1", b"secret").unwrap();
        assert_eq!(
            s.open("access_key/AKIA2", &sealed).err(),
            Some(StoreError::Unseal)
        );
        assert_eq!(
            sealer(2).open("access_key/AKIA1", &sealed).err(),
            Some(StoreError::Unseal)
        );
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 1;
            assert!(s.open("access_key/AKIA1", &t).is_err(), "byte {i}");
        }
        assert!(s.open("x", &[]).is_err());
        assert!(s.open("x", &[1, 2, 3]).is_err());
        assert!(Sealer::new(&Secret::new(vec![0; 16])).is_err());
    }
}
