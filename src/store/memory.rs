//! [`MemoryKeyStore`]: keys in process memory, in two sharded tables.

use std::future::Ready;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::SystemTime;

use hashbrown::hash_table;

use super::shards::Shards;

mod replace;
use super::{DuplicateKey, KeyStore, LookupResult};
use crate::answer::Answer;
use crate::key::{KeyHash, KeyRecord};
pub use replace::KeyChanges;

/// The embedded default store: sharded concurrent tables from [`KeyHash`] and from id to
/// record.
///
/// Reads take one shard's read lock (no global lock); inserts, revocations and expiry
/// changes apply at run time while requests flow, and take effect for every request that
/// starts after the call returns. Cloning shares the same keys.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use ark_auth::{generate_key, Environment, MemoryKeyStore, Permissions};
///
/// let key = generate_key(Environment::Live).unwrap();
/// let id = key.record.id().to_owned();
/// let store = MemoryKeyStore::from_records([key.record.with_permissions(Permissions::ALL)]).unwrap();
/// assert_eq!(store.len(), 1);
/// // Rotation: the old key keeps working for an hour, then stops.
/// store.set_expiry(&id, Some(SystemTime::now() + Duration::from_secs(3600)));
/// // Or at once:
/// assert!(store.revoke(&id));
/// ```
#[derive(Clone, Default)]
pub struct MemoryKeyStore {
    inner: Arc<Inner>,
}

/// Two sharded tables of the same `Arc`s, so a key costs a 16-byte and an 8-byte bucket (and
/// two control bytes) besides its record.
///
/// - `by_hash` is keyed by the first 8 bytes of the key's hash ([`KeyHash::prefix`]), kept in
///   the bucket beside the record. A lookup selects the record whose prefix equals the
///   presented hash's and the layer then compares the whole hash in constant time, so an
///   unknown key and a wrong secret cost the same work. Two keys whose hashes share the
///   64-bit prefix cannot both be stored (the later one is refused as a duplicate hash; among
///   a million keys the chance of that is about 3 in 10^8): a lookup never has to choose
///   between candidates. The prefix sits in the bucket so that a lookup reads no record while
///   it holds the shard's lock: with 8-byte buckets (the record's own hash compared there),
///   one key used from two threads scaled 0.97× instead of 1.57×, since the record's first
///   cache line also holds its reference count, which the other thread keeps writing.
/// - `ids` holds the record alone (8-byte buckets), keyed by a keyed 64-bit hash of the id
///   recomputed from the record, and compares whole ids, so ids whose digests collide
///   coexist. Only the administrative calls read it.
///
/// Writers take the id's `ids` shard first, then (one at a time) `by_hash` shards; readers
/// take one shard. A record is in both tables or in neither, as seen by any writer.
struct Inner {
    by_hash: Shards<(u64, Arc<KeyRecord>)>,
    ids: Shards<Arc<KeyRecord>>,
    id_digest: RandomState,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            by_hash: Shards::new(),
            ids: Shards::new(),
            id_digest: RandomState::new(),
        }
    }
}
/// `by_hash`'s hash of a record.
fn hash_key(r: &KeyRecord) -> u64 {
    r.hash().prefix()
}

impl Inner {
    fn id_key(&self, id: &str) -> u64 {
        self.id_digest.hash_one(id)
    }

    /// Inserts `record` into `by_hash` unless another record has its prefix (`false`).
    fn insert_hash(&self, record: &Arc<KeyRecord>) -> bool {
        let prefix = hash_key(record);
        let mut table = self.by_hash.write(prefix);
        match table.entry(prefix, |(p, _)| *p == prefix, |(p, _)| *p) {
            hash_table::Entry::Occupied(_) => false,
            hash_table::Entry::Vacant(v) => {
                v.insert((prefix, Arc::clone(record)));
                true
            }
        }
    }

    /// Replaces the `by_hash` entry of `old` (same prefix) by `new`.
    fn replace_hash(&self, old: &Arc<KeyRecord>, new: &Arc<KeyRecord>) {
        let prefix = hash_key(old);
        let mut table = self.by_hash.write(prefix);
        if let Some((_, slot)) = table.find_mut(prefix, |(_, r)| Arc::ptr_eq(r, old)) {
            *slot = Arc::clone(new);
        }
    }

    /// Removes `old` from `by_hash`.
    fn remove_hash(&self, old: &Arc<KeyRecord>) {
        let prefix = hash_key(old);
        let mut table = self.by_hash.write(prefix);
        if let Ok(entry) = table.find_entry(prefix, |(_, r)| Arc::ptr_eq(r, old)) {
            entry.remove();
        }
    }
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `records`; refuses duplicate hashes or ids.
    pub fn from_records(
        records: impl IntoIterator<Item = KeyRecord>,
    ) -> Result<Self, DuplicateKey> {
        let store = Self::new();
        for r in records {
            store.try_insert(r)?;
        }
        Ok(store)
    }

    /// Adds a record; refuses one whose hash or id is already present.
    pub fn try_insert(&self, record: KeyRecord) -> Result<(), DuplicateKey> {
        let inner = &*self.inner;
        let id_key = inner.id_key(record.id());
        let mut ids = inner.ids.write(id_key);
        if ids.find(id_key, |r| r.id() == record.id()).is_some() {
            return Err(DuplicateKey::Id {
                id: record.id().to_owned(),
            });
        }
        let record = Arc::new(record);
        if !inner.insert_hash(&record) {
            return Err(DuplicateKey::Hash {
                id: record.id().to_owned(),
            });
        }
        ids.insert_unique(id_key, record, |r| inner.id_key(r.id()));
        Ok(())
    }

    /// Adds or replaces the record with this id (its hash may change: the new hash answers
    /// before the old one stops). A record that cannot be stored (its hash prefix is another
    /// key's) is left out and logged, and the id's previous record is removed.
    pub fn upsert(&self, record: KeyRecord) {
        let inner = &*self.inner;
        let id_key = inner.id_key(record.id());
        let mut ids = inner.ids.write(id_key);
        let new = Arc::new(record);
        match ids.find_entry(id_key, |r| r.id() == new.id()) {
            Ok(mut entry) => {
                let old = Arc::clone(entry.get());
                if hash_key(&old) == hash_key(&new) {
                    inner.replace_hash(&old, &new);
                    *entry.get_mut() = new;
                    return;
                }
                let stored = inner.insert_hash(&new);
                inner.remove_hash(&old);
                if stored {
                    *entry.get_mut() = new;
                    return;
                }
                entry.remove();
            }
            Err(_) => {
                if inner.insert_hash(&new) {
                    ids.insert_unique(id_key, new, |r| inner.id_key(r.id()));
                    return;
                }
            }
        }
        let e = DuplicateKey::Hash {
            id: new.id().to_owned(),
        };
        tracing::error!(error = %e, "ark-auth: record not stored");
    }

    /// The record with this id.
    pub fn get(&self, id: &str) -> Option<Arc<KeyRecord>> {
        let id_key = self.inner.id_key(id);
        let ids = self.inner.ids.read(id_key);
        ids.find(id_key, |r| r.id() == id).map(Arc::clone)
    }

    /// Applies `f` to a copy of the record with this id and stores the result (its hash and
    /// id stay: `f` cannot change them). `false` when no such id.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut KeyRecord)) -> bool {
        let inner = &*self.inner;
        let id_key = inner.id_key(id);
        let mut ids = inner.ids.write(id_key);
        let Some(slot) = ids.find_mut(id_key, |r| r.id() == id) else {
            return false;
        };
        let old = Arc::clone(slot);
        let mut record = KeyRecord::clone(&old);
        f(&mut record);
        record.keep_identity_of(&old);
        let new = Arc::new(record);
        inner.replace_hash(&old, &new);
        *slot = new;
        true
    }

    /// Revokes the key with this id at once. `false` when no such id.
    pub fn revoke(&self, id: &str) -> bool {
        self.update(id, |r| r.set_revoked(true))
    }

    /// Sets or clears the expiry of the key with this id. `false` when no such id.
    pub fn set_expiry(&self, id: &str, at: Option<SystemTime>) -> bool {
        self.update(id, |r| r.set_expiry(at))
    }

    /// Deletes the key with this id. `false` when no such id.
    pub fn remove(&self, id: &str) -> bool {
        let inner = &*self.inner;
        let id_key = inner.id_key(id);
        let mut ids = inner.ids.write(id_key);
        match ids.find_entry(id_key, |r| r.id() == id) {
            Ok(entry) => {
                let (old, _) = entry.remove();
                inner.remove_hash(&old);
                true
            }
            Err(_) => false,
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.inner.ids.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every record (a snapshot; records hold hashes only).
    pub fn records(&self) -> Vec<Arc<KeyRecord>> {
        let mut out = Vec::with_capacity(self.len());
        self.inner.ids.for_each(|r| out.push(Arc::clone(r)));
        out
    }
}

impl std::fmt::Debug for MemoryKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryKeyStore")
            .field("keys", &self.len())
            .finish()
    }
}

impl KeyStore for MemoryKeyStore {
    /// Never used: the in-memory store always answers now.
    type Future = Ready<LookupResult>;

    fn lookup(&self, hash: &KeyHash) -> Answer<LookupResult, Self::Future> {
        let prefix = hash.prefix();
        let table = self.inner.by_hash.read(prefix);
        Answer::Now(Ok(table
            .find(prefix, |(p, _)| *p == prefix)
            .map(|(_, r)| Arc::clone(r))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{Environment, Token};

    fn rec(i: u32) -> KeyRecord {
        let s = format!("ark_test_{:0>20}", i);
        KeyRecord::from_token(&Token::parse(&s).unwrap())
    }

    fn lookup_now(store: &MemoryKeyStore, hash: &KeyHash) -> Option<Arc<KeyRecord>> {
        match store.lookup(hash) {
            Answer::Now(found) => found.unwrap(),
            Answer::Later(_) => panic!("the memory store answers now"),
        }
    }

    #[test]
    fn insert_lookup_revoke_remove() {
        let store = MemoryKeyStore::from_records((0..100).map(rec)).unwrap();
        assert_eq!(store.len(), 100);
        let r = rec(7);
        assert_eq!(lookup_now(&store, r.hash()).unwrap().id(), r.id());
        assert!(lookup_now(&store, rec(1000).hash()).is_none());
        assert!(store.revoke(r.id()));
        assert!(lookup_now(&store, r.hash()).unwrap().is_revoked());
        assert!(!store.revoke("key_nope"));
        assert!(store.remove(r.id()));
        assert!(lookup_now(&store, r.hash()).is_none());
        assert!(store.get(r.id()).is_none());
    }

    #[test]
    fn duplicates_refused() {
        assert!(matches!(
            MemoryKeyStore::from_records([rec(1), rec(1)]),
            Err(DuplicateKey::Id { .. })
        ));
        let mut other = rec(1);
        other.set_id("key_other");
        assert!(matches!(
            MemoryKeyStore::from_records([rec(1), other]),
            Err(DuplicateKey::Hash { .. })
        ));
    }

    #[test]
    fn upsert_moves_hash() {
        let store = MemoryKeyStore::new();
        let a = rec(1);
        store.upsert(a.clone());
        let mut b = rec(2);
        b.set_id(a.id());
        store.upsert(b.clone());
        assert_eq!(store.len(), 1);
        assert!(lookup_now(&store, a.hash()).is_none());
        assert!(lookup_now(&store, b.hash()).is_some());
        assert_eq!(store.get(a.id()).unwrap().environment(), Environment::Test);
    }

    /// Both tables agree: every record is found by its id and by its hash, and nothing else.
    fn assert_consistent(store: &MemoryKeyStore) {
        let records = store.records();
        assert_eq!(records.len(), store.len());
        assert_eq!(store.inner.by_hash.len(), store.inner.ids.len());
        for r in &records {
            assert!(Arc::ptr_eq(&store.get(r.id()).unwrap(), r));
            assert!(Arc::ptr_eq(&lookup_now(store, r.hash()).unwrap(), r));
        }
    }

    #[test]
    fn update_keeps_hash_and_id() {
        let store = MemoryKeyStore::from_records([rec(1), rec(2)]).unwrap();
        let a = rec(1);
        assert!(store.update(a.id(), |r| {
            r.set_id("key_changed");
            r.set_hash(*rec(3).hash());
            r.set_name("renamed");
        }));
        let found = store.get(a.id()).unwrap();
        assert_eq!(
            (found.id(), found.hash(), found.name()),
            (a.id(), a.hash(), "renamed")
        );
        assert!(store.get("key_changed").is_none());
        assert!(lookup_now(&store, rec(3).hash()).is_none());
        assert_consistent(&store);
    }

    #[test]
    fn upsert_onto_another_keys_hash_is_refused() {
        let store = MemoryKeyStore::from_records([rec(1), rec(2)]).unwrap();
        // Rotating key 1 onto key 2's token: refused; key 1's old record is gone, key 2 stays.
        let mut moved = rec(2);
        moved.set_id(rec(1).id());
        store.upsert(moved);
        assert!(store.get(rec(1).id()).is_none());
        assert_eq!(lookup_now(&store, rec(2).hash()).unwrap().id(), rec(2).id());
        assert_eq!(store.len(), 1);
        assert_consistent(&store);
        // A new id with a taken hash: refused, nothing changes.
        let mut other = rec(2);
        other.set_id("key_new");
        store.upsert(other);
        assert!(store.get("key_new").is_none());
        assert_consistent(&store);
        // Same id and hash: replaced in place.
        store.upsert(rec(2).with_name("again"));
        assert_eq!(lookup_now(&store, rec(2).hash()).unwrap().name(), "again");
        assert_consistent(&store);
    }

    #[test]
    fn many_keys_insert_remove() {
        let store = MemoryKeyStore::from_records((0..5000).map(rec)).unwrap();
        assert_consistent(&store);
        for i in (0..5000).step_by(2) {
            assert!(store.remove(rec(i).id()));
            assert!(!store.remove(rec(i).id()));
        }
        assert_eq!(store.len(), 2500);
        assert!(lookup_now(&store, rec(0).hash()).is_none());
        assert!(lookup_now(&store, rec(1).hash()).is_some());
        assert_consistent(&store);
        for i in (0..5000).step_by(2) {
            store.try_insert(rec(i)).unwrap();
        }
        assert_eq!(store.len(), 5000);
        assert_consistent(&store);
    }

    #[test]
    fn readers_never_miss_a_key_being_updated() {
        let store = MemoryKeyStore::from_records((0..64).map(rec)).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let mut n = 0u64;
                        loop {
                            for i in 0..64 {
                                assert!(lookup_now(&store, rec(i).hash()).is_some());
                                assert!(store.get(rec(i).id()).is_some());
                                n += 1;
                            }
                            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                                break n;
                            }
                        }
                    })
                })
                .collect();
            for round in 0..200 {
                for i in 0..64 {
                    store.set_expiry(rec(i).id(), Some(SystemTime::now()));
                    store.upsert(rec(i).with_rate_limit(round));
                }
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            for r in readers {
                assert!(r.join().unwrap() > 0);
            }
        });
        assert_consistent(&store);
    }
}
