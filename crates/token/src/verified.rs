//! The verified session-token cache: a token whose signature and claims were verified once
//! is not verified again on later requests.
//!
//! Verifying an ES256 session token costs ≈ 60 µs (ring's P-256 arithmetic plus JSON), while
//! the rest of a request costs a few microseconds; clients send the same token with every
//! call until it expires. [`VerifiedTokens`] remembers that a token verified — which key
//! signed it and when it expires — keyed by the SHA-256 digest of the *whole* token (never a
//! prefix): a token that differs in one byte has another digest, misses, and is verified in
//! full.
//!
//! Two tiers, so that memory stays small with many tokens in use:
//! - **verified** ([`DEFAULT_CAPACITY`] entries of 56 bytes): the digest, the `kid` and the
//!   expiry. A hit here reads the claims again from the token itself — it is byte for byte the
//!   one that verified — which costs ≈ 2 µs of base64 and JSON instead of ≈ 60 µs of P-256;
//! - **claims** ([`DEFAULT_HOT_CAPACITY`] entries of ≈ 700 bytes): the parsed claims of the
//!   tokens used most recently, shared with the request, so a hot token costs neither.
//!
//! What the cache replaces is the signature check and the claim parsing, nothing else:
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
//! Memory is bounded by the two capacities fixed at construction (docs/benchmarks.md
//! measures the process with both full). Eviction is [`TwoGenerations`]': tokens in use stay,
//! and a flood of distinct valid tokens only pushes out idle ones.
//!
//! The lookup's timing depends on the digest only, which an observer cannot steer toward
//! another client's token: nothing secret is compared by `==` here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::bounded::TwoGenerations;
use crate::session::SessionClaims;

/// Tokens remembered as verified, by default: 100 000 tokens in use at once (≈ 7 MB with the
/// hash tables). A deployment with more concurrently active sessions than this still works:
/// the excess is verified in full, as without a cache.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Tokens whose parsed claims are kept, by default (≈ 12 MB).
pub const DEFAULT_HOT_CAPACITY: usize = 16_384;

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

/// What a lookup found: the token verified; its claims when they are still held.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The key and expiry.
    pub verified: Verified,
    /// The parsed claims, for a hot token.
    pub claims: Option<Arc<SessionClaims>>,
}

/// Bounded map from token digests to verification results (see the module docs).
#[derive(Debug)]
pub struct VerifiedTokens {
    inner: Mutex<Tiers>,
    /// Lookups that found the token, and those that did not (for the service's metrics).
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug)]
struct Tiers {
    verified: TwoGenerations<TokenDigest, Verified>,
    claims: TwoGenerations<TokenDigest, Arc<SessionClaims>>,
}

impl VerifiedTokens {
    /// A cache of at most `capacity` verified tokens, `hot` of them with their claims; `0`
    /// caches nothing.
    pub fn new(capacity: usize, hot: usize) -> Self {
        Self {
            inner: Mutex::new(Tiers {
                verified: TwoGenerations::new(capacity),
                claims: TwoGenerations::new(hot.min(capacity)),
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The tokens held now.
    pub fn len(&self) -> usize {
        self.lock().verified.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most tokens this cache holds.
    pub fn capacity(&self) -> usize {
        self.lock().verified.capacity()
    }

    /// The entry for `digest`, if cached.
    pub fn get(&self, digest: &TokenDigest) -> Option<Hit> {
        let mut t = self.lock();
        let Some(verified) = t.verified.get(digest) else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        self.hits.fetch_add(1, Ordering::Relaxed);
        let claims = t.claims.get(digest);
        Some(Hit { verified, claims })
    }

    /// Lookups so far that found their token, and those that did not: `(hits, misses)`.
    pub fn lookups(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Caches `verified` (and its claims) under `digest`. Only for a token that passed every
    /// check.
    pub fn insert(&self, digest: TokenDigest, verified: Verified, claims: Arc<SessionClaims>) {
        let mut t = self.lock();
        t.verified.insert(digest, verified);
        t.claims.insert(digest, claims);
    }

    /// Keeps the claims of cached token `digest`, read again on a hit that had none.
    pub fn keep_claims(&self, digest: TokenDigest, claims: Arc<SessionClaims>) {
        let mut t = self.lock();
        if t.verified.contains_key(&digest) {
            t.claims.insert(digest, claims);
        }
    }

    /// Forgets `digest` (its token expired or its key is gone).
    pub fn remove(&self, digest: &TokenDigest) {
        let mut t = self.lock();
        t.verified.remove(digest);
        t.claims.remove(digest);
    }

    /// Forgets every token signed by key `kid`; returns how many.
    pub fn remove_kid(&self, kid: &str) -> usize {
        let mut t = self.lock();
        let before = t.verified.len();
        t.verified.retain(|_, v| &*v.kid != kid);
        let Tiers { verified, claims } = &mut *t;
        claims.retain(|digest, _| verified.contains_key(digest));
        before - verified.len()
    }

    /// Forgets the tokens that expired at or before `now`.
    pub fn remove_expired(&self, now: i64) {
        let mut t = self.lock();
        t.verified.retain(|_, v| now < v.exp);
        let Tiers { verified, claims } = &mut *t;
        claims.retain(|digest, _| verified.contains_key(digest));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tiers> {
        // A panic while holding the lock cannot leave a half-made entry (each map operation
        // completes or does nothing); a poisoned lock is used as it is.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::arn::Principal;
    use crate::session::{ISSUER, MfaContext};

    fn entry(kid: &str, exp: i64) -> Verified {
        Verified {
            kid: kid.into(),
            exp,
        }
    }

    fn claims() -> Arc<SessionClaims> {
        Arc::new(SessionClaims {
            iss: ISSUER.into(),
            sub: "arn:aws:iam::000000000000:root".into(),
            akid: "ASIAAAAAAAAAAAAAAAAA".into(),
            iat: 0,
            exp: 10,
            principal: Principal::Root {
                account: "000000000000".into(),
            },
            src: "AKIAAAAAAAAAAAAAAAAA".into(),
            mfa: MfaContext::default(),
            session_policy: None,
            chained: false,
            attributes: Default::default(),
        })
    }

    fn d(i: u32) -> TokenDigest {
        digest(&format!("token-{i}"))
    }

    #[test]
    fn bounded_in_both_tiers() {
        let cache = VerifiedTokens::new(100, 10);
        let c = claims();
        for i in 0..10_000 {
            cache.insert(d(i), entry("k", 10), Arc::clone(&c));
            assert!(cache.len() <= 100);
            assert!(cache.lock().claims.len() <= 10);
        }
        assert_eq!(cache.capacity(), 100);
        // The newest keep their claims; older ones are verified without them.
        assert!(cache.get(&d(9_999)).unwrap().claims.is_some());
        let older = cache.get(&d(9_950)).unwrap();
        assert!(older.claims.is_none());
        assert!(cache.get(&d(0)).is_none());
    }

    #[test]
    fn a_removed_key_takes_its_tokens() {
        let cache = VerifiedTokens::new(100, 100);
        for i in 0..80 {
            let kid = if i % 2 == 0 { "a" } else { "b" };
            cache.insert(d(i), entry(kid, 10), claims());
        }
        assert_eq!(cache.remove_kid("a"), 40);
        assert!(cache.get(&d(0)).is_none());
        assert!(cache.get(&d(1)).is_some());
        assert_eq!(cache.len(), 40);
        assert_eq!(cache.lock().claims.len(), 40);
    }

    #[test]
    fn expired_entries_can_be_swept() {
        let cache = VerifiedTokens::new(100, 100);
        cache.insert(d(0), entry("k", 10), claims());
        cache.insert(d(1), entry("k", 20), claims());
        cache.remove_expired(10);
        assert!(cache.get(&d(0)).is_none());
        assert!(cache.get(&d(1)).is_some());
        assert_eq!(cache.lock().claims.len(), 1);
    }

    #[test]
    fn claims_are_kept_only_for_cached_tokens() {
        let cache = VerifiedTokens::new(100, 100);
        cache.keep_claims(d(0), claims());
        assert!(cache.get(&d(0)).is_none());
        assert!(cache.lock().claims.is_empty());
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let cache = VerifiedTokens::new(0, 0);
        cache.insert(d(0), entry("k", 10), claims());
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
