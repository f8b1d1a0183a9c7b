//! The request ids of committed lake files, as sets that dedupe checks against.
//!
//! An ingest refuses a request id its table already holds for that day. Reading
//! the day's files back as strings on every push cost a 10M-request month 70 ms
//! per push (hundreds of thousands of ids, a `String` each); instead each file's
//! ids are hashed once into a sorted [`IdSet`] and kept by path. Lake files are
//! immutable and their names unique, so an entry never goes stale; the cache is
//! bounded by the ids it holds and forgets the oldest files first.
//!
//! Ids are compared by their 128-bit XXH3 hash: the chance that two different ids
//! of one day collide (and a new request is taken for a duplicate) is below
//! 10^-25 even at a million ids a day.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// The hash an id is compared by.
pub fn id_hash(id: &str) -> u128 {
    twox_hash::XxHash3_128::oneshot(id.as_bytes())
}

/// The ids of one file: sorted, without repeats.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IdSet(Box<[u128]>);

impl IdSet {
    pub fn of<'a>(ids: impl IntoIterator<Item = &'a str>) -> IdSet {
        IdSet::from_hashes(ids.into_iter().map(id_hash).collect())
    }

    /// The set of ids hashed by [`id_hash`].
    pub fn from_hashes(mut hashes: Vec<u128>) -> IdSet {
        hashes.sort_unstable();
        hashes.dedup();
        IdSet(hashes.into_boxed_slice())
    }

    pub fn contains_hash(&self, hash: u128) -> bool {
        self.0.binary_search(&hash).is_ok()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.contains_hash(id_hash(id))
    }

    /// Whether any id is in both sets (a merge walk of the two sorted lists).
    pub fn meets(&self, other: &IdSet) -> bool {
        let (mut a, mut b) = (self.0.iter().peekable(), other.0.iter().peekable());
        while let (Some(x), Some(y)) = (a.peek(), b.peek()) {
            match x.cmp(y) {
                std::cmp::Ordering::Less => _ = a.next(),
                std::cmp::Ordering::Greater => _ = b.next(),
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Id sets kept by (file path, column), at most `capacity` ids in all.
#[derive(Debug)]
pub struct IdCache {
    inner: Mutex<Held>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Held {
    sets: HashMap<(String, &'static str), Arc<IdSet>>,
    /// Keys in the order they came, for forgetting the oldest first.
    order: VecDeque<(String, &'static str)>,
    ids: usize,
}

impl IdCache {
    /// About 16 bytes an id: the default holds a few days of a 10M-request month
    /// in some 60 MB.
    pub const DEFAULT_CAPACITY: usize = 4_000_000;

    pub fn new(capacity: usize) -> IdCache {
        IdCache {
            inner: Mutex::default(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        // A panic elsewhere cannot leave a half-made entry: sets are inserted whole.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, path: &str, column: &'static str) -> Option<Arc<IdSet>> {
        self.lock().sets.get(&(path.to_owned(), column)).cloned()
    }

    /// Keeps `set`, forgetting the oldest sets while more than the capacity is held.
    /// A set larger than the capacity on its own is not kept.
    pub fn put(&self, path: &str, column: &'static str, set: Arc<IdSet>) {
        if set.len() > self.capacity {
            return;
        }
        let mut held = self.lock();
        let key = (path.to_owned(), column);
        if held.sets.contains_key(&key) {
            return;
        }
        held.ids += set.len();
        held.sets.insert(key.clone(), set);
        held.order.push_back(key);
        while held.ids > self.capacity {
            let Some(oldest) = held.order.pop_front() else {
                break;
            };
            if let Some(gone) = held.sets.remove(&oldest) {
                held.ids -= gone.len();
            }
        }
    }

    /// Ids held, over all sets.
    pub fn ids_held(&self) -> usize {
        self.lock().ids
    }
}

impl Default for IdCache {
    fn default() -> Self {
        IdCache::new(IdCache::DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[&str]) -> Arc<IdSet> {
        Arc::new(IdSet::of(ids.iter().copied()))
    }

    #[test]
    fn a_set_holds_exactly_its_ids() {
        let s = IdSet::of(["a", "b", "b", "req-1"]);
        assert_eq!(s.len(), 3);
        for id in ["a", "b", "req-1"] {
            assert!(s.contains(id), "{id}");
        }
        for id in ["", "c", "req-2", "A"] {
            assert!(!s.contains(id), "{id}");
        }
    }

    #[test]
    fn sets_meet_when_they_share_an_id() {
        let check = |a: &[&str], b: &[&str], expect: bool| {
            let (a, b) = (IdSet::of(a.iter().copied()), IdSet::of(b.iter().copied()));
            assert_eq!(a.meets(&b), expect, "{a:?} {b:?}");
            assert_eq!(b.meets(&a), expect);
        };
        check(&[], &[], false);
        check(&["x"], &[], false);
        check(&["x", "y"], &["z"], false);
        check(&["x", "y"], &["z", "y"], true);
        check(&["1", "2", "3", "4"], &["4"], true);
    }

    #[test]
    fn the_cache_forgets_the_oldest_files_past_its_capacity() {
        let cache = IdCache::new(4);
        cache.put("f1", "request_id", set(&["a", "b"]));
        cache.put("f2", "request_id", set(&["c", "d"]));
        assert_eq!(cache.ids_held(), 4);
        cache.put("f3", "request_id", set(&["e"]));
        assert!(cache.get("f1", "request_id").is_none(), "oldest forgotten");
        assert!(cache.get("f2", "request_id").is_some());
        assert!(cache.get("f3", "request_id").is_some());
        assert_eq!(cache.ids_held(), 3);
        // Too large to keep at all: nothing else is forgotten for it.
        cache.put("huge", "request_id", set(&["1", "2", "3", "4", "5"]));
        assert!(cache.get("huge", "request_id").is_none());
        assert_eq!(cache.ids_held(), 3);
        // Keyed by column too.
        assert!(cache.get("f2", "other").is_none());
    }
}
