//! A map bounded to a number of entries, for the request path's caches (verified session
//! tokens, SigV4 signing keys): O(1) work per operation and no per-entry bookkeeping.
//!
//! Two generations approximate LRU: inserts go to the young map; when it holds half the
//! capacity it becomes the old map and the previous old map is dropped whole; a hit in the old
//! map moves the entry back to the young one. An entry in use survives as long as it is used
//! at least once per half-capacity inserts; a flood of new entries only pushes out idle ones.

use std::collections::HashMap;
use std::hash::Hash;

/// At most `capacity` entries (see the module docs); `0` holds nothing.
#[derive(Debug)]
pub struct TwoGenerations<K, V> {
    generation_size: usize,
    young: HashMap<K, V>,
    old: HashMap<K, V>,
}

impl<K: Hash + Eq + Copy, V: Clone> TwoGenerations<K, V> {
    /// An empty map that will hold at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            generation_size: capacity / 2,
            young: HashMap::new(),
            old: HashMap::new(),
        }
    }

    /// The most entries this map holds.
    pub fn capacity(&self) -> usize {
        self.generation_size * 2
    }

    /// The entries held now.
    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value for `key`; a hit in the old generation moves to the young one.
    pub fn get(&mut self, key: &K) -> Option<V> {
        if let Some(hit) = self.young.get(key) {
            return Some(hit.clone());
        }
        let hit = self.old.remove(key)?;
        self.insert_young(*key, hit.clone());
        Some(hit)
    }

    /// Whether `key` is held (without moving it).
    pub fn contains_key(&self, key: &K) -> bool {
        self.young.contains_key(key) || self.old.contains_key(key)
    }

    /// Holds `value` under `key`, replacing any older value.
    pub fn insert(&mut self, key: K, value: V) {
        self.old.remove(&key);
        self.insert_young(key, value);
    }

    /// Forgets `key`.
    pub fn remove(&mut self, key: &K) {
        self.young.remove(key);
        self.old.remove(key);
    }

    /// Keeps only the entries for which `keep` says `true`.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.young.retain(|k, v| keep(k, v));
        self.old.retain(|k, v| keep(k, v));
    }

    fn insert_young(&mut self, key: K, value: V) {
        if self.generation_size == 0 {
            return;
        }
        if self.young.len() >= self.generation_size && !self.young.contains_key(&key) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_holds_more_than_its_capacity() {
        let mut map = TwoGenerations::new(100);
        for i in 0..10_000u32 {
            map.insert(i, ());
            assert!(map.len() <= 100);
        }
        assert_eq!(map.capacity(), 100);
        // The newest are there, the oldest gone.
        assert!(map.get(&9_999).is_some());
        assert!(map.get(&0).is_none());
    }

    #[test]
    fn entries_in_use_survive_a_flood() {
        let mut map = TwoGenerations::new(100);
        map.insert(0u32, ());
        for i in 1..10_000 {
            map.insert(i, ());
            // Used every 30 inserts: always found, since a generation holds 50.
            if i % 30 == 0 {
                assert!(map.get(&0).is_some(), "lost after {i}");
            }
        }
    }

    #[test]
    fn capacity_zero_holds_nothing() {
        let mut map = TwoGenerations::new(0);
        map.insert(1u8, ());
        assert!(map.is_empty());
        assert!(map.get(&1).is_none());
    }

    #[test]
    fn remove_and_retain_reach_both_generations() {
        let mut map = TwoGenerations::new(4);
        for i in 0..4u8 {
            map.insert(i, i);
        }
        assert_eq!(map.len(), 4);
        map.remove(&0);
        map.remove(&3);
        assert!(!map.contains_key(&0) && !map.contains_key(&3));
        map.retain(|_, v| *v != 1);
        assert_eq!(map.len(), 1);
        assert_eq!(map.get(&2), Some(2));
    }
}
