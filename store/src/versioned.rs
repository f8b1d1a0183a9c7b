//! What a process derives from stored state, kept with the version of that
//! state it was derived at ([`crate::StateVersion`],
//! [`crate::StateDb::inputs_version`]) and reused while the version stays the
//! same. One lock-and-replace for every such cache: the served keys, views
//! and lineage graph, and the chargeback and daily answers.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// One value and the version it was derived at. Readers share it as an
/// `Arc`; a newer value replaces it whole, never an older one.
#[derive(Debug)]
pub struct Versioned<T> {
    slot: RwLock<(i64, Arc<T>)>,
}

impl<T> Versioned<T> {
    /// `value`, derived at no version yet: any stored version is newer.
    pub fn new(value: T) -> Self {
        Self {
            slot: RwLock::new((-1, Arc::new(value))),
        }
    }

    /// The value as last derived.
    pub fn current(&self) -> Arc<T> {
        self.read().1.clone()
    }

    /// The version the value was derived at (-1 before the first).
    pub fn version(&self) -> i64 {
        self.read().0
    }

    /// Whether the state moved on from the version the value holds.
    pub fn is_stale(&self, version: i64) -> bool {
        self.version() != version
    }

    /// Keeps `value`, derived at `version`, whatever was kept (a restored
    /// database moves versions back, and a revoked key must still go).
    pub fn replace(&self, version: i64, value: T) {
        *self.write() = (version, Arc::new(value));
    }

    /// Keeps `value`, derived at `version`, unless a newer one is kept (two
    /// loads racing: the later one read more).
    pub fn keep_newest(&self, version: i64, value: T) {
        let mut slot = self.write();
        if slot.0 <= version {
            *slot = (version, Arc::new(value));
        }
    }

    /// Brings the value to `version` in place with `change`, if it holds the
    /// version just before (nothing else changed in between); else `false`,
    /// and the caller derives it again. Copies only while a reader still
    /// holds the previous value.
    pub fn advance(&self, version: i64, change: impl FnOnce(&mut T)) -> bool
    where
        T: Clone,
    {
        let mut slot = self.write();
        if slot.0 != version - 1 {
            return false;
        }
        change(Arc::make_mut(&mut slot.1));
        slot.0 = version;
        true
    }

    // A panic while holding the lock leaves a whole value behind (values
    // are only ever replaced whole), so a poisoned lock is still good.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, (i64, Arc<T>)> {
        self.slot
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, (i64, Arc<T>)> {
        self.slot
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<T: Default> Default for Versioned<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

/// Values by key, each with the version it was derived at. Keeping a value
/// of a new version drops those of the others; past `bound` values, all go
/// (a cache of answers, not of every question ever asked).
#[derive(Debug)]
pub struct VersionedMap<K, V> {
    entries: Mutex<HashMap<K, (i64, Arc<V>)>>,
    bound: usize,
}

impl<K: Eq + Hash, V> VersionedMap<K, V> {
    pub fn new(bound: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            bound,
        }
    }

    /// The value kept for `key`, if it was derived at `version`.
    pub fn get(&self, key: &K, version: i64) -> Option<Arc<V>> {
        self.lock()
            .get(key)
            .filter(|(at, _)| *at == version)
            .map(|(_, value)| value.clone())
    }

    /// Keeps `value` for `key`, derived at `version`.
    pub fn insert(&self, key: K, version: i64, value: Arc<V>) {
        let mut entries = self.lock();
        entries.retain(|_, (at, _)| *at == version);
        if entries.len() >= self.bound {
            entries.clear();
        }
        entries.insert(key, (version, value));
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, (i64, Arc<V>)>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_kept_newest_and_advanced_only_from_the_one_before() {
        let v = Versioned::new(0);
        assert!(v.is_stale(0), "nothing derived yet");
        v.keep_newest(3, 30);
        v.keep_newest(2, 20);
        assert_eq!(
            (v.version(), *v.current()),
            (3, 30),
            "an older value is dropped"
        );
        assert!(!v.advance(5, |n| *n += 1), "version 4 was missed");
        assert!(v.advance(4, |n| *n += 1));
        assert_eq!((v.version(), *v.current()), (4, 31));
        assert!(!v.is_stale(4));
        v.replace(1, 10);
        assert_eq!(
            (v.version(), *v.current()),
            (1, 10),
            "replace takes any version"
        );
    }

    #[test]
    fn a_map_keeps_one_version_and_at_most_its_bound() {
        let map = VersionedMap::new(2);
        map.insert("a", 1, Arc::new(1));
        map.insert("b", 1, Arc::new(2));
        assert_eq!(map.get(&"a", 1).as_deref(), Some(&1));
        assert_eq!(map.get(&"a", 2), None, "derived at another version");
        map.insert("c", 1, Arc::new(3));
        assert_eq!(map.get(&"a", 1), None, "past the bound, all went");
        assert_eq!(map.get(&"c", 1).as_deref(), Some(&3));
        map.insert("d", 2, Arc::new(4));
        assert_eq!(map.get(&"c", 1), None, "a new version drops the old ones");
    }
}
