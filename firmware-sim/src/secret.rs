//! A wrapper for secret bytes: no `Debug`, no `Display`, wiped on drop, and one explicitly
//! named way out ([`Secret::expose`]). STYLE.md "Secrets".
//!
//! It does not stop copies made by the code that exposes the bytes (ring keys, AES key
//! schedules); it only makes the long-lived copies in this crate safe to drop and impossible
//! to print by accident.

use ring::rand::SecureRandom;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::Error;

/// `N` secret bytes. Compare with [`Secret::ct_eq`], never `==`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret<const N: usize>([u8; N]);

impl<const N: usize> Secret<N> {
    /// Wraps bytes the caller already has (and should wipe).
    pub fn new(bytes: [u8; N]) -> Self {
        Self(bytes)
    }

    /// Fresh random bytes from `rng`.
    pub fn random(rng: &dyn SecureRandom) -> Result<Self, Error> {
        let mut bytes = [0u8; N];
        rng.fill(&mut bytes)
            .map_err(|_| Error::Internal("random source failed"))?;
        Ok(Self(bytes))
    }

    /// Copies a slice of exactly `N` bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let array: [u8; N] = bytes.try_into().ok()?;
        Some(Self(array))
    }

    /// The secret bytes. Keep what you do with them short-lived.
    pub fn expose(&self) -> &[u8; N] {
        &self.0
    }

    /// Constant-time equality (`subtle`).
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        ct_eq(&self.0, other)
    }
}

/// Constant-time comparison of two byte strings; different lengths compare unequal (the
/// length itself is not secret here).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A secret of variable length (a decrypted PIN, a decrypted salt).
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct SecretVec(Vec<u8>);

impl SecretVec {
    /// Takes ownership of `bytes`; they are wiped when this is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret bytes, for in-place decryption.
    pub fn expose_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_in_constant_time_and_by_length() {
        let s = Secret::new([7u8; 4]);
        assert!(s.ct_eq(&[7, 7, 7, 7]));
        assert!(!s.ct_eq(&[7, 7, 7, 8]));
        assert!(!s.ct_eq(&[7, 7, 7]));
        assert!(Secret::<4>::from_slice(&[1, 2, 3]).is_none());
        let rng = ring::rand::SystemRandom::new();
        let a = Secret::<32>::random(&rng).unwrap();
        let b = Secret::<32>::random(&rng).unwrap();
        assert!(!a.ct_eq(b.expose()));
    }
}
