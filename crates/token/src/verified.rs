//! The verified session-token cache: a token whose signature and claims were verified once
//! is not verified again on later requests.
//!
//! Verifying an ES256 session token costs ≈ 60 µs (ring's P-256 arithmetic plus JSON), while
//! the rest of a request costs a few microseconds; clients send the same token with every
//! call until it expires. [`VerifiedTokens`] remembers that a token verified — which key
//! signed it and when it expires — keyed by the SHA-256 digest of the *whole* token (never a
//! prefix): a token that differs in one byte has another digest, misses, and is verified in
//! full. On a hit the claims are read again from the token itself (it is byte for byte the
//! one that verified: ≈ 1–2 µs of base64 and JSON), so an entry is a few dozen bytes rather
//! than the ≈ 700 that parsed claims take, and 100 000 tokens fit in a few megabytes.
//!
//! What the cache replaces is the signature check, nothing else:
//! - only a token that passed every check (signature by a known key, `alg`, issuer, its
//!   access key id, `iat` ≤ `exp`, not expired) is ever inserted, so garbage never enters;
//! - a hit is checked again against the request: its access key id (constant time) and its
//!   expiry against the `now` passed in, so a token that expired while cached is refused with
//!   `ExpiredToken` on the very next request and leaves the cache;
//! - each entry remembers the `kid` that signed it: a removed signing key takes its tokens out
//!   of the cache ([`VerifiedTokens::remove_kid`]), and a hit whose key is gone is refused
//!   ([`crate::session::TokenVerifier`] checks it);
//! - everything the service checks against its current state (the principal still exists,
//!   authorization) runs on every request after this, cached or not.
//!
//! Memory is bounded by a number of entries fixed at construction
//! ([`DEFAULT_CAPACITY`]); an entry is 56 bytes plus the hash table's overhead
//! (docs/benchmarks.md measures the process). Eviction is a two-
//! generation scheme (an approximation of LRU with O(1) work per operation): inserts go to the
//! young map; when it holds half the capacity it becomes the old map and the previous old
//! map is dropped; a hit in the old map moves the entry back to the young one. So tokens in
//! use stay, and a flood of distinct valid tokens only pushes out idle ones.
//!
//! The lookup's timing depends on the digest only, which an observer cannot steer toward
//! another client's token: nothing secret is compared by `==` here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Entries kept by default: 100 000 tokens in use at once (≈ 7 MB at most; docs/benchmarks.md
/// measures the whole process with the cache full). A deployment with more concurrently
/// active sessions than this still works: the excess is verified in full, as without a cache.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// SHA-256 of a whole session token.
pub type TokenDigest = [u8; 32];

/// The digest that keys [`VerifiedTokens`].
pub fn digest(token: &str) -> TokenDigest {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    // SHA-256 digests are 32 bytes: `as_ref()` is exactly `out`'s length.
    out.copy_from_slice(d.as_ref());
    out
}

/// A verified token: the key that signed it and when it expires.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The `kid` of the signing key.
    pub kid: Arc<str>,
    /// The token's `exp` (seconds since the Unix epoch).
    pub exp: i64,
}

/// Bounded map from token digests to verified claims (see the module docs).
#[derive(Debug)]
pub struct VerifiedTokens {
    /// Entries per generation: half the capacity.
    generation_size: usize,
    inner: Mutex<Generations>,
}

#[derive(Debug, Default)]
struct Generations {
    young: HashMap<TokenDigest, Verified>,
    old: HashMap<TokenDigest, Verified>,
}

impl VerifiedTokens {
    /// A cache of at most `capacity` entries; `0` caches nothing.
    pub fn new(capacity: usize) -> Self {
        Self {
            generation_size: capacity / 2,
            inner: Mutex::new(Generations::default()),
        }
    }

    /// The entries held now (both generations).
    pub fn len(&self) -> usize {
        let g = self.lock();
        g.young.len() + g.old.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries this cache holds.
    pub fn capacity(&self) -> usize {
        self.generation_size * 2
    }

    /// The entry for `digest`, if cached; a hit in the old generation moves to the young one.
    pub fn get(&self, digest: &TokenDigest) -> Option<Verified> {
        let mut g = self.lock();
        if let Some(hit) = g.young.get(digest) {
            return Some(hit.clone());
        }
        let hit = g.old.remove(digest)?;
        g.insert_young(*digest, hit.clone(), self.generation_size);
        Some(hit)
    }

    /// Caches `verified` under `digest`. Only for a token that passed every check.
    pub fn insert(&self, digest: TokenDigest, verified: Verified) {
        if self.generation_size == 0 {
            return;
        }
        let mut g = self.lock();
        g.old.remove(&digest);
        g.insert_young(digest, verified, self.generation_size);
    }

    /// Forgets `digest` (its token expired or its key is gone).
    pub fn remove(&self, digest: &TokenDigest) {
        let mut g = self.lock();
        g.young.remove(digest);
        g.old.remove(digest);
    }

    /// Forgets every token signed by key `kid`; returns how many.
    pub fn remove_kid(&self, kid: &str) -> usize {
        let mut g = self.lock();
        let before = g.young.len() + g.old.len();
        g.young.retain(|_, v| &*v.kid != kid);
        g.old.retain(|_, v| &*v.kid != kid);
        before - (g.young.len() + g.old.len())
    }

    /// Forgets the tokens that expired at or before `now`.
    pub fn remove_expired(&self, now: i64) {
        let mut g = self.lock();
        g.young.retain(|_, v| now < v.exp);
        g.old.retain(|_, v| now < v.exp);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // A panic while holding the lock cannot leave a half-made entry (each operation is
        // one map call); the maps stay valid, so a poisoned lock is used as it is.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Generations {
    fn insert_young(&mut self, digest: TokenDigest, verified: Verified, generation_size: usize) {
        if generation_size == 0 {
            return;
        }
        if self.young.len() >= generation_size && !self.young.contains_key(&digest) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(digest, verified);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(kid: &str, exp: i64) -> Verified {
        Verified {
            kid: kid.into(),
            exp,
        }
    }

    fn d(i: u32) -> TokenDigest {
        digest(&format!("token-{i}"))
    }

    #[test]
    fn never_holds_more_than_its_capacity() {
        let cache = VerifiedTokens::new(100);
        for i in 0..10_000 {
            cache.insert(d(i), entry("k", 10));
            assert!(cache.len() <= 100);
        }
        assert_eq!(cache.capacity(), 100);
        // The newest are there, the oldest gone.
        assert!(cache.get(&d(9_999)).is_some());
        assert!(cache.get(&d(0)).is_none());
    }

    #[test]
    fn tokens_in_use_survive_a_flood() {
        let cache = VerifiedTokens::new(100);
        cache.insert(d(0), entry("k", 10));
        for i in 1..10_000 {
            cache.insert(d(i), entry("k", 10));
            // Used every 30 inserts: always found, since a generation holds 50.
            if i % 30 == 0 {
                assert!(cache.get(&d(0)).is_some(), "lost after {i}");
            }
        }
    }

    #[test]
    fn a_removed_key_takes_its_tokens() {
        let cache = VerifiedTokens::new(100);
        for i in 0..80 {
            cache.insert(d(i), entry(if i % 2 == 0 { "a" } else { "b" }, 10));
        }
        assert_eq!(cache.remove_kid("a"), 40);
        assert!(cache.get(&d(0)).is_none());
        assert!(cache.get(&d(1)).is_some());
        assert_eq!(cache.len(), 40);
    }

    #[test]
    fn expired_entries_can_be_swept() {
        let cache = VerifiedTokens::new(100);
        cache.insert(d(0), entry("k", 10));
        cache.insert(d(1), entry("k", 20));
        cache.remove_expired(10);
        assert!(cache.get(&d(0)).is_none());
        assert!(cache.get(&d(1)).is_some());
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let cache = VerifiedTokens::new(0);
        cache.insert(d(0), entry("k", 10));
        assert!(cache.is_empty());
        assert!(cache.get(&d(0)).is_none());
    }

    #[test]
    fn the_digest_covers_the_whole_token() {
        let a = "x".repeat(1000);
        let mut b = a.clone();
        b.replace_range(999..1000, "y");
        assert_ne!(digest(&a), digest(&b));
    }
}
