//! [`MemoryKeyStore::replace_all`]: a whole new set of keys, applied as a diff.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use hashbrown::HashTable;

use super::{hash_key, MemoryKeyStore};
use crate::key::KeyRecord;
use crate::store::DuplicateKey;

/// What [`MemoryKeyStore::replace_all`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyChanges {
    /// Records whose id was not in the store.
    pub added: usize,
    /// Records whose id was in the store with other contents (hash, permissions, expiry…).
    pub changed: usize,
    /// Records of the store whose id is not in the new set.
    pub removed: usize,
    /// Records already in the store as they are.
    pub unchanged: usize,
}

impl MemoryKeyStore {
    /// Makes the store hold exactly `records`, changing only what differs: records with a
    /// new id are added, records whose contents changed are replaced, ids missing from
    /// `records` are removed, and equal records are left as they are (in-flight requests
    /// and their `Arc`s are untouched).
    ///
    /// All or nothing: a set that could not be stored whole (two records with one id, one
    /// hash, or hashes sharing the 64-bit prefix the store is keyed by) is refused before
    /// anything changes. Each record changes atomically for the requests that read it; the
    /// set as a whole is applied key by key, additions and changes before removals. A key
    /// whose hash moves to another id is not found while it moves (microseconds).
    ///
    /// ```
    /// use ark_auth::{generate_key, Environment, MemoryKeyStore, Permissions};
    ///
    /// let a = generate_key(Environment::Live)?.record;
    /// let b = generate_key(Environment::Live)?.record;
    /// let store = MemoryKeyStore::from_records([a.clone()])?;
    ///
    /// let changes = store.replace_all([a.clone().with_permissions(Permissions::ALL), b.clone()])?;
    /// assert_eq!((changes.added, changes.changed, changes.removed), (1, 1, 0));
    ///
    /// let changes = store.replace_all([b.clone()])?;
    /// assert_eq!((changes.removed, changes.unchanged), (1, 1));
    /// assert!(store.get(a.id()).is_none());
    ///
    /// // Refused whole: nothing changes.
    /// assert!(store.replace_all([a.clone(), a]).is_err());
    /// assert_eq!(store.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn replace_all(
        &self,
        records: impl IntoIterator<Item = KeyRecord>,
    ) -> Result<KeyChanges, DuplicateKey> {
        let records: Vec<Arc<KeyRecord>> = records.into_iter().map(Arc::new).collect();
        let ids = check_storable(&records)?;
        let mut changes = KeyChanges::default();

        // Additions and changes first, so that a key edited in place is never missing.
        let mut pending = Vec::new();
        for record in &records {
            match self.get(record.id()) {
                Some(old) if old == *record => changes.unchanged += 1,
                Some(_) => {
                    changes.changed += 1;
                    pending.push(Arc::clone(record));
                }
                None => {
                    changes.added += 1;
                    pending.push(Arc::clone(record));
                }
            }
        }
        pending.retain(|r| !self.put(r));

        // Then removals, which may free the hashes that the rest of `pending` needs.
        let mut gone = Vec::new();
        self.inner.ids.for_each(|r| {
            if !ids.contains(r.id()) {
                gone.push(r.id().to_owned());
            }
        });
        for id in &gone {
            changes.removed += usize::from(self.remove(id));
        }

        // What still collides is held by records that are themselves pending (two keys
        // swapping hashes, say): retry while that makes progress, then free their hashes.
        loop {
            let before = pending.len();
            pending.retain(|r| !self.put(r));
            if pending.is_empty() || pending.len() == before {
                break;
            }
        }
        for r in &pending {
            self.remove(r.id());
        }
        for r in &pending {
            if !self.put(r) {
                // Unreachable for a set `check_storable` accepted, unless another writer
                // added a key meanwhile: said, never silent.
                let e = DuplicateKey::Hash {
                    id: r.id().to_owned(),
                };
                tracing::error!(error = %e, "ark-auth: record not stored");
            }
        }
        Ok(changes)
    }

    /// Stores `new` under its id, replacing the id's record, unless another record holds
    /// its hash prefix (`false`, nothing changed).
    fn put(&self, new: &Arc<KeyRecord>) -> bool {
        let inner = &*self.inner;
        let id_key = inner.id_key(new.id());
        let mut ids = inner.ids.write(id_key);
        match ids.find_entry(id_key, |r| r.id() == new.id()) {
            Ok(mut entry) => {
                let old = Arc::clone(entry.get());
                if hash_key(&old) == hash_key(new) {
                    inner.replace_hash(&old, new);
                } else if inner.insert_hash(new) {
                    inner.remove_hash(&old);
                } else {
                    return false;
                }
                *entry.get_mut() = Arc::clone(new);
                true
            }
            Err(_) => {
                if !inner.insert_hash(new) {
                    return false;
                }
                ids.insert_unique(id_key, Arc::clone(new), |r| inner.id_key(r.id()));
                true
            }
        }
    }
}

/// The ids of a set the store can hold whole, or the first record that it could not.
fn check_storable(records: &[Arc<KeyRecord>]) -> Result<IdSet<'_>, DuplicateKey> {
    let mut prefixes: HashTable<u32> = HashTable::with_capacity(records.len());
    let mut ids = IdSet {
        records,
        table: HashTable::with_capacity(records.len()),
        hasher: RandomState::new(),
    };
    for (i, r) in records.iter().enumerate() {
        let Ok(index) = u32::try_from(i) else {
            return Err(DuplicateKey::Id {
                id: r.id().to_owned(),
            });
        };
        let prefix = hash_key(r);
        let at = |j: &u32| &records[*j as usize];
        if prefixes
            .find(prefix, |j| hash_key(at(j)) == prefix)
            .is_some()
        {
            return Err(DuplicateKey::Hash {
                id: r.id().to_owned(),
            });
        }
        if ids.contains(r.id()) {
            return Err(DuplicateKey::Id {
                id: r.id().to_owned(),
            });
        }
        prefixes.insert_unique(prefix, index, |j| hash_key(at(j)));
        let h = ids.hasher.hash_one(r.id());
        let hasher = &ids.hasher;
        ids.table
            .insert_unique(h, index, |j| hasher.hash_one(at(j).id()));
    }
    Ok(ids)
}

/// The ids of `records`, as 4-byte indices.
struct IdSet<'a> {
    records: &'a [Arc<KeyRecord>],
    table: HashTable<u32>,
    hasher: RandomState,
}

impl IdSet<'_> {
    fn contains(&self, id: &str) -> bool {
        let h = self.hasher.hash_one(id);
        self.table
            .find(h, |j| self.records[*j as usize].id() == id)
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::Answer;
    use crate::key::KeyHash;
    use crate::permission::Permissions;
    use crate::store::KeyStore;
    use crate::token::Token;

    fn rec(i: u32) -> KeyRecord {
        let s = format!("ark_test_{:0>20}", i);
        KeyRecord::from_token(&Token::parse(&s).unwrap())
    }

    fn found(store: &MemoryKeyStore, hash: &KeyHash) -> Option<Arc<KeyRecord>> {
        match store.lookup(hash) {
            Answer::Now(found) => found.unwrap(),
            Answer::Later(_) => panic!("the memory store answers now"),
        }
    }

    /// Both tables hold exactly `want`, each record findable by id and by hash.
    fn assert_holds(store: &MemoryKeyStore, want: &[KeyRecord]) {
        assert_eq!(store.len(), want.len());
        assert_eq!(store.inner.by_hash.len(), want.len());
        for r in want {
            assert_eq!(*store.get(r.id()).unwrap(), *r);
            assert_eq!(*found(store, r.hash()).unwrap(), *r);
        }
    }

    #[test]
    fn applies_the_difference_and_counts_it() {
        let store = MemoryKeyStore::from_records((0..10).map(rec)).unwrap();
        let kept = store.get(rec(0).id()).unwrap();
        let mut next: Vec<KeyRecord> = (0..5).map(rec).collect(); // 5..10 removed
        next[1] = rec(1).with_permissions(Permissions::ALL); // changed
        next[2] = rec(2).with_revoked(true); // changed
        next.extend((20..23).map(rec)); // added
        let changes = store.replace_all(next.clone()).unwrap();
        assert_eq!(
            changes,
            KeyChanges {
                added: 3,
                changed: 2,
                removed: 5,
                unchanged: 3
            }
        );
        assert_holds(&store, &next);
        assert!(found(&store, rec(7).hash()).is_none());
        assert!(
            Arc::ptr_eq(&store.get(rec(0).id()).unwrap(), &kept),
            "an unchanged record is left as it is"
        );
        let again = store.replace_all(next.clone()).unwrap();
        assert_eq!(
            (again.unchanged, again.added + again.changed + again.removed),
            (8, 0)
        );
        assert_eq!(store.replace_all([]).unwrap().removed, 8);
        assert!(store.is_empty());
    }

    #[test]
    fn a_set_that_cannot_be_stored_changes_nothing() {
        let before: Vec<KeyRecord> = (0..4).map(rec).collect();
        let store = MemoryKeyStore::from_records(before.clone()).unwrap();
        let mut same_id = rec(9);
        same_id.set_id(rec(8).id());
        for bad in [
            vec![rec(5), rec(6), rec(5).with_name("again")],
            vec![rec(7), rec(8), same_id],
        ] {
            assert!(store.replace_all(bad).is_err());
            assert_holds(&store, &before);
        }
    }

    #[test]
    fn hashes_may_move_between_ids() {
        let (a, b) = (rec(1), rec(2));
        let store = MemoryKeyStore::from_records([a.clone(), b.clone()]).unwrap();
        // A key renamed: the same hash under a new id.
        let mut renamed = a.clone();
        renamed.set_id("key_renamed");
        let changes = store.replace_all([renamed.clone(), b.clone()]).unwrap();
        assert_eq!((changes.added, changes.removed), (1, 1));
        assert_holds(&store, &[renamed.clone(), b.clone()]);
        // Two ids swapping their hashes.
        let mut x = renamed.clone();
        x.set_hash(*b.hash());
        let mut y = b.clone();
        y.set_hash(*renamed.hash());
        assert_eq!(
            store.replace_all([x.clone(), y.clone()]).unwrap().changed,
            2
        );
        assert_holds(&store, &[x, y]);
    }

    /// Readers of keys that stay in the set find them during every reload.
    #[test]
    fn kept_keys_answer_throughout() {
        let store = MemoryKeyStore::from_records((0..64).map(rec)).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || n == 0 {
                    for i in 0..32 {
                        assert!(found(&store, rec(i).hash()).is_some(), "key {i} missing");
                    }
                    n += 1;
                }
                n
            });
            for round in 0..200u32 {
                let set = (0..32)
                    .map(|i| rec(i).with_rate_limit(round + 1))
                    .chain((100 + round % 3 * 10..110 + round % 3 * 10).map(rec));
                store.replace_all(set).unwrap();
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            assert!(reader.join().unwrap() > 0);
        });
        assert_eq!(store.len(), 42);
    }
}
