//! A wrapper for secret bytes: no `Debug`, no `Display`, zeroized on drop.
//!
//! It deliberately implements neither trait, so a struct that holds one cannot derive
//! `Debug` and print it by accident.
//!
//! The only way to the bytes is the explicitly named [`Secret::expose`], so that a
//! secret cannot reach a log line or an error message by accident.

use zeroize::Zeroizing;

/// Secret bytes (a secret access key, a TOTP seed, a master key).
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps `bytes`; they are wiped when the `Secret` is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret bytes. Every call site is a place where the secret leaves its wrapper.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret as UTF-8 text, when it is text (secret access keys are ASCII).
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self::new(s.into_bytes())
    }
}

/// Compares two byte strings in constant time (for equal lengths): MACs, codes, tokens.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_only_through_accessors() {
        let s = Secret::from("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_owned());
        assert_eq!(
            s.expose_str(),
            Some("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        );
        assert_eq!(s.len(), 40);
        assert!(Secret::new(vec![0xff]).expose_str().is_none());
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
