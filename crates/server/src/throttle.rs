//! The failed-authentication throttle: token buckets per source address and per access key
//! (docs/operations.md, "Throttling").
//!
//! Each failure (a bad signature, an unknown key, a wrong MFA code, a bad assertion) takes
//! one token from the bucket of the address it came from and from that of the access key it
//! claimed; buckets refill at `throttle.refill_per_sec` up to `throttle.burst`. A request
//! whose address or key has an empty bucket is refused with AWS's `Throttling` before any
//! signature is checked or any store row read. Successes take nothing, so a client that
//! does not fail is never slowed by another's failures (unless they share its address or
//! its key).
//!
//! Memory is bounded: at most `throttle.max_tracked` addresses and as many keys are
//! tracked. A full table first forgets the buckets that have refilled (they are the same as
//! none), then the fullest one: a flood of fresh addresses can make the throttle forget the
//! least-throttled sources, never grow past its bound. The tables are sharded behind
//! small locks; while nothing has failed lately a check takes no lock at all.
//!
//! [`TokenBuckets`] is the reusable part: any key type, any refusal. The throttle is per
//! process (per replica); the MFA lockout, which is in the store, stays global.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use axum::http::StatusCode;

use crate::config::ThrottleConfig;
use crate::error::ApiError;

/// Shards of each table: contention stays low with many workers.
const SHARDS: usize = 32;
/// Tokens are counted in thousandths, so that refill is exact at any rate.
const MILLI: u64 = 1_000;

/// AWS's answer to a throttled request (HTTP 400, `Throttling`, "Rate exceeded").
pub fn throttled() -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "Throttling", "Rate exceeded")
}

/// One bucket: its tokens (in thousandths) as of `at_ms`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    milli_tokens: u64,
    at_ms: u64,
}

/// Token buckets keyed by `K`, bounded in number (see the module docs).
#[derive(Debug)]
pub struct TokenBuckets<K> {
    shards: Vec<Mutex<HashMap<K, Bucket>>>,
    hasher: RandomState,
    /// Buckets held, over all shards; zero means every check can skip the locks.
    held: AtomicUsize,
    per_shard: usize,
    burst_milli: u64,
    /// Thousandths of a token added per millisecond = tokens per second.
    refill_per_sec: u64,
}

impl<K: Hash + Eq + Clone> TokenBuckets<K> {
    /// Buckets of `burst` tokens refilled at `refill_per_sec`, at most `max_tracked` of them.
    pub fn new(burst: u32, refill_per_sec: u32, max_tracked: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            held: AtomicUsize::new(0),
            per_shard: max_tracked.div_ceil(SHARDS).max(1),
            burst_milli: u64::from(burst.max(1)) * MILLI,
            refill_per_sec: u64::from(refill_per_sec),
        }
    }

    /// Whether `key` may be served at `now_ms`: its bucket has a whole token left (or it
    /// has none, which is a full one).
    pub fn allows(&self, key: &K, now_ms: u64) -> bool {
        if self.held.load(Ordering::Relaxed) == 0 {
            return true;
        }
        let mut shard = self.shard(key);
        let Some(bucket) = shard.get_mut(key) else {
            return true;
        };
        self.refill(bucket, now_ms);
        if bucket.milli_tokens >= self.burst_milli {
            // Refilled: the same as no bucket at all.
            shard.remove(key);
            self.held.fetch_sub(1, Ordering::Relaxed);
            return true;
        }
        bucket.milli_tokens >= MILLI
    }

    /// Takes one token from `key`'s bucket for a failure at `now_ms`.
    pub fn take(&self, key: &K, now_ms: u64) {
        let mut shard = self.shard(key);
        if let Some(bucket) = shard.get_mut(key) {
            self.refill(bucket, now_ms);
            bucket.milli_tokens = bucket.milli_tokens.saturating_sub(MILLI);
            return;
        }
        if shard.len() >= self.per_shard {
            self.make_room(&mut shard, now_ms);
        }
        shard.insert(
            key.clone(),
            Bucket {
                milli_tokens: self.burst_milli.saturating_sub(MILLI),
                at_ms: now_ms,
            },
        );
        self.held.fetch_add(1, Ordering::Relaxed);
    }

    /// Buckets held now.
    pub fn len(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn refill(&self, bucket: &mut Bucket, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(bucket.at_ms);
        let added = elapsed.saturating_mul(self.refill_per_sec);
        bucket.milli_tokens = bucket
            .milli_tokens
            .saturating_add(added)
            .min(self.burst_milli);
        bucket.at_ms = bucket.at_ms.max(now_ms);
    }

    /// Forgets the refilled buckets of a full shard, else its fullest one.
    fn make_room(&self, shard: &mut HashMap<K, Bucket>, now_ms: u64) {
        let before = shard.len();
        shard.retain(|_, b| {
            self.refill(b, now_ms);
            b.milli_tokens < self.burst_milli
        });
        if shard.len() >= self.per_shard {
            let fullest = shard
                .iter()
                .max_by_key(|(_, b)| b.milli_tokens)
                .map(|(k, _)| k.clone());
            if let Some(k) = fullest {
                shard.remove(&k);
            }
        }
        self.held.fetch_sub(before - shard.len(), Ordering::Relaxed);
    }

    fn shard(&self, key: &K) -> MutexGuard<'_, HashMap<K, Bucket>> {
        // `SHARDS` is not zero, so the index is in range.
        let i = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        // A panic under the lock leaves a map that is whole (each operation completes or
        // does nothing): a poisoned lock is used as it is.
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Which bucket refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottledBy {
    /// The source address failed too often.
    Address,
    /// The access key failed too often.
    AccessKey,
}

impl ThrottledBy {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            ThrottledBy::Address => "address",
            ThrottledBy::AccessKey => "access_key",
        }
    }
}

/// The service's failed-authentication throttle: one table of addresses, one of keys.
#[derive(Debug)]
pub struct FailureThrottle {
    enabled: bool,
    start: Instant,
    addresses: TokenBuckets<IpAddr>,
    keys: TokenBuckets<Box<str>>,
}

impl FailureThrottle {
    /// The throttle `config` describes.
    pub fn new(config: &ThrottleConfig) -> Self {
        let (b, r, m) = (config.burst, config.refill_per_sec, config.max_tracked);
        Self {
            enabled: config.enabled,
            start: Instant::now(),
            addresses: TokenBuckets::new(b, r, m),
            keys: TokenBuckets::new(b, r, m),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether a request from `address` claiming `access_key_id` may be served.
    pub fn check(
        &self,
        address: Option<IpAddr>,
        access_key_id: Option<&str>,
    ) -> Result<(), ThrottledBy> {
        if !self.enabled {
            return Ok(());
        }
        let now = self.now_ms();
        if let Some(ip) = address
            && !self.addresses.allows(&ip, now)
        {
            return Err(ThrottledBy::Address);
        }
        if let Some(key) = access_key_id
            && !self.keys.allows(&Box::from(key), now)
        {
            return Err(ThrottledBy::AccessKey);
        }
        Ok(())
    }

    /// Counts one failed authentication from `address` claiming `access_key_id`.
    pub fn failure(&self, address: Option<IpAddr>, access_key_id: Option<&str>) {
        if !self.enabled {
            return;
        }
        let now = self.now_ms();
        if let Some(ip) = address {
            self.addresses.take(&ip, now);
        }
        if let Some(key) = access_key_id {
            self.keys.take(&Box::from(key), now);
        }
    }

    /// Addresses and keys tracked now.
    pub fn tracked(&self) -> (usize, usize) {
        (self.addresses.len(), self.keys.len())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_empties_after_the_burst_and_refills_with_time() {
        let b = TokenBuckets::new(3, 2, 100);
        let k = "AKIAEXAMPLE".to_owned();
        for _ in 0..3 {
            assert!(b.allows(&k, 0));
            b.take(&k, 0);
        }
        assert!(!b.allows(&k, 0));
        assert!(!b.allows(&k, 499), "half a token is not a token");
        assert!(b.allows(&k, 500), "2 per second: one token after 500 ms");
        b.take(&k, 500);
        assert!(!b.allows(&k, 500));
        // Refilled to the brim, the bucket is dropped: it is the same as none.
        assert!(b.allows(&k, 10_000));
        assert!(b.is_empty());
    }

    #[test]
    fn others_are_unaffected() {
        let b = TokenBuckets::new(1, 1, 100);
        b.take(&1u32, 0);
        assert!(!b.allows(&1, 0));
        assert!(b.allows(&2, 0));
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_within_the_bound_and_keeps_the_worst() {
        let b = TokenBuckets::new(5, 1, 64);
        // The attacker of interest fails five times: throttled.
        for _ in 0..5 {
            b.take(&u32::MAX, 0);
        }
        for i in 0..100_000u32 {
            b.take(&i, 0);
            assert!(b.len() <= 64 + SHARDS, "{}", b.len());
        }
        // Each flood entry has 4 tokens left, the attacker none: it is never the one
        // evicted.
        assert!(!b.allows(&u32::MAX, 0));
    }

    #[test]
    fn the_throttle_refuses_by_address_or_by_key() {
        let t = FailureThrottle::new(&ThrottleConfig {
            enabled: true,
            burst: 2,
            refill_per_sec: 1,
            max_tracked: 10,
        });
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        t.failure(Some(a), Some("AKIA1"));
        t.failure(Some(a), Some("AKIA2"));
        assert_eq!(t.check(Some(a), None), Err(ThrottledBy::Address));
        assert_eq!(t.check(Some(b), Some("AKIA1")), Ok(()));
        t.failure(Some(b), Some("AKIA1"));
        assert_eq!(t.check(None, Some("AKIA1")), Err(ThrottledBy::AccessKey));
        assert_eq!(t.check(Some(b), Some("AKIA3")), Ok(()));
        let off = FailureThrottle::new(&ThrottleConfig {
            enabled: false,
            ..ThrottleConfig::default()
        });
        for _ in 0..100 {
            off.failure(Some(a), None);
        }
        assert_eq!(off.check(Some(a), None), Ok(()));
    }
}
