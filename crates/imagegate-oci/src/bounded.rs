//! A map with a size bound that forgets the least recently used entry, for client
//! state keyed by hosts and repositories an attacker may choose (every image of every
//! Pod names one).
//!
//! Hand-written rather than the `lru` crate: the maps hold at most a few thousand
//! entries and are touched a few times per registry request, so a linear scan on
//! eviction costs nothing measurable and needs no `unsafe` linked list.

use std::collections::HashMap;
use std::hash::Hash;

/// At most `capacity` entries; inserting into a full map drops the entry used longest ago.
#[derive(Debug)]
pub(crate) struct LruMap<K, V> {
    entries: HashMap<K, (V, u64)>,
    capacity: usize,
    /// Ticks once per access: the larger an entry's stamp, the more recently it was used.
    clock: u64,
}

impl<K: Hash + Eq + Clone, V> LruMap<K, V> {
    /// An empty map holding at most `capacity` entries (at least one).
    pub(crate) fn new(capacity: usize) -> LruMap<K, V> {
        LruMap {
            entries: HashMap::new(),
            capacity: capacity.max(1),
            clock: 0,
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The value of `key`, marked as just used.
    pub(crate) fn get(&mut self, key: &K) -> Option<&V> {
        let now = self.tick();
        let (value, used) = self.entries.get_mut(key)?;
        *used = now;
        Some(value)
    }

    /// Inserts or replaces `key`, evicting the least recently used entry if full.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        self.make_room_for(&key);
        let now = self.tick();
        self.entries.insert(key, (value, now));
    }

    /// The value of `key`, inserted with `make` first if absent; marked as just used.
    pub(crate) fn get_or_insert_with(&mut self, key: &K, make: impl FnOnce() -> V) -> &V {
        self.make_room_for(key);
        let now = self.tick();
        let slot = self
            .entries
            .entry(key.clone())
            .or_insert_with(|| (make(), now));
        slot.1 = now;
        &slot.0
    }

    /// Evicts the least recently used entry if `key` is new and the map is full.
    fn make_room_for(&mut self, key: &K) {
        if self.entries.contains_key(key) || self.entries.len() < self.capacity {
            return;
        }
        let oldest = self
            .entries
            .iter()
            .min_by_key(|(_, (_, used))| *used)
            .map(|(k, _)| k.clone());
        if let Some(oldest) = oldest {
            self.entries.remove(&oldest);
        }
    }

    /// Removes `key`.
    pub(crate) fn remove(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used() {
        let mut map = LruMap::new(2);
        map.insert("a", 1);
        map.insert("b", 2);
        assert_eq!(map.get(&"a"), Some(&1)); // "b" is now the oldest
        map.insert("c", 3);
        assert_eq!(map.len(), 2);
        assert_eq!(map.get(&"b"), None);
        assert_eq!(map.get(&"a"), Some(&1));
        assert_eq!(*map.get_or_insert_with(&"d", || 4), 4);
        assert_eq!(map.get(&"c"), None);
        assert_eq!(*map.get_or_insert_with(&"a", || 9), 1);
        map.insert("a", 5); // replacing never evicts
        assert_eq!(map.len(), 2);
        map.remove(&"a");
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn many_keys_stay_within_the_bound() {
        let mut map = LruMap::new(0); // at least one
        for i in 0..10_000 {
            map.insert(i, i);
        }
        assert_eq!(map.len(), 1);
        assert_eq!(map.get(&9_999), Some(&9_999));
    }
}
