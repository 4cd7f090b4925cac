//! Where keys live: the [`KeyStore`] trait and the in-memory [`MemoryKeyStore`].

use std::future::{Future, IntoFuture, Ready};
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use dashmap::DashMap;

use crate::key::{KeyHash, KeyRecord};

/// What a lookup yields: the record, `None` for no such key, or the store's failure.
pub type LookupResult = Result<Option<Arc<KeyRecord>>, StoreError>;

/// A boxed lookup future, for stores that do real I/O.
pub type BoxLookup = Pin<Box<dyn Future<Output = LookupResult> + Send + 'static>>;

/// The answer of a store or a limiter: available now, or a future that yields it.
///
/// A store that can answer synchronously (the in-memory store, a cache hit) says
/// [`Answer::Now`] and the layer decides the request inside `Service::call`, with no
/// state machine, no allocation and no extra poll; one that must do I/O says
/// [`Answer::Later`] with its future.
#[derive(Debug)]
pub enum Answer<T, F> {
    /// The result, already known.
    Now(T),
    /// A future that yields the result.
    Later(F),
}

impl<T, F: Future<Output = T>> IntoFuture for Answer<T, F> {
    type Output = T;
    type IntoFuture = AnswerFuture<T, F>;

    /// Awaiting an answer yields its result, now or later: handy for a store that wraps
    /// another (`inner.lookup(&hash).await`).
    fn into_future(self) -> AnswerFuture<T, F> {
        AnswerFuture {
            inner: match self {
                Answer::Now(value) => AnswerInner::Now { value: Some(value) },
                Answer::Later(fut) => AnswerInner::Later { fut },
            },
        }
    }
}

pin_project! {
    /// The future of an awaited [`Answer`].
    pub struct AnswerFuture<T, F> {
        #[pin]
        inner: AnswerInner<T, F>,
    }
}

pin_project! {
    #[project = AnswerProj]
    enum AnswerInner<T, F> {
        Now { value: Option<T> },
        Later { #[pin] fut: F },
    }
}

impl<T, F: Future<Output = T>> Future for AnswerFuture<T, F> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.project().inner.project() {
            AnswerProj::Now { value } => {
                Poll::Ready(value.take().expect("polled after completion"))
            }
            AnswerProj::Later { fut } => fut.poll(cx),
        }
    }
}

/// A pluggable, async source of key records.
///
/// # Shape of the trait
///
/// A store answers one question: which record has this [`KeyHash`]? The answer separates
/// "no such key" (`Ok(None)`, a 401) from "the store failed" (`Err`, a 503).
///
/// The answer is an [`Answer`]: either the result now, or a future. The future is named as
/// an associated type, like `tower::Service`'s, rather than returned as `impl Future`
/// (axum-login's shape) or always boxed (tower-sessions' shape): the layer's response
/// future must name it to stay unboxed. The in-memory store always answers now and costs
/// nothing; an async store (a database) answers later with a [`BoxLookup`], whose
/// allocation is noise next to its round trip. The future is `'static`: a store clones what
/// it needs (a pool handle) into it. `dyn KeyStore<Future = BoxLookup>` is object-safe for
/// those who want dynamic dispatch.
///
/// ```
/// use std::sync::Arc;
/// use ark_auth::{Answer, BoxLookup, KeyHash, KeyRecord, KeyStore, LookupResult, StoreError};
///
/// /// A store that asks some remote service.
/// #[derive(Clone)]
/// struct RemoteStore;
///
/// impl KeyStore for RemoteStore {
///     type Future = BoxLookup;
///     fn lookup(&self, hash: &KeyHash) -> Answer<LookupResult, BoxLookup> {
///         let hash = *hash;
///         Answer::Later(Box::pin(async move {
///             // ... query by `hash`; map a transport failure to StoreError ...
///             let _ = hash;
///             Ok::<Option<Arc<KeyRecord>>, StoreError>(None)
///         }))
///     }
/// }
/// ```
///
/// A complete store: the crate's `examples/custom_store.rs`.
pub trait KeyStore: Send + Sync + 'static {
    /// The future of a lookup answered later.
    type Future: Future<Output = LookupResult> + Send + 'static;

    /// Finds the record whose hash is `hash`. `Ok(None)` when no key matches; `Err` only
    /// when the store could not answer. The layer verifies the returned record's hash in
    /// constant time, so a store may select by a prefix or an index.
    fn lookup(&self, hash: &KeyHash) -> Answer<LookupResult, Self::Future>;
}

impl<K: KeyStore + ?Sized> KeyStore for Arc<K> {
    type Future = K::Future;
    fn lookup(&self, hash: &KeyHash) -> Answer<LookupResult, Self::Future> {
        (**self).lookup(hash)
    }
}

/// A key store that could not answer. Its `Display` never contains a key.
#[derive(Debug, thiserror::Error)]
#[error("key store failed: {source}")]
pub struct StoreError {
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl StoreError {
    /// Wraps the store's own error. It must not contain a key (stores see only hashes).
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError {
            source: source.into(),
        }
    }
}

/// Hasher for maps keyed by a 64-bit digest (of a [`KeyHash`] or an id): already uniform, so
/// it is the hash. Only keys the operator inserted are in the table, so an attacker choosing
/// lookup digests cannot build long probe chains.
#[derive(Default)]
pub(crate) struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }
}

/// A key with this hash or id is already in the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DuplicateKey {
    /// Two records with the same hash (the same token).
    #[error("duplicate key (record {id:?} has the same hash as an earlier one)")]
    Hash {
        /// The id of the later record.
        id: String,
    },
    /// Two records with the same id.
    #[error("duplicate key id {id:?}")]
    Id {
        /// The repeated id.
        id: String,
    },
}

/// The embedded default store: a sharded concurrent map from [`KeyHash`] to record.
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
/// let id = key.record.id.clone();
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

/// Both tables are keyed by 64-bit digests, so a key costs two 16-byte buckets besides its
/// record: `by_hash` by the first 8 bytes of the key's hash (the layer then compares the whole
/// hash in constant time), `ids` by a keyed 64-bit hash of the id, pointing at the record's
/// `by_hash` slot. Two keys, or two ids, with the same 64-bit digest cannot both be stored
/// (they are refused as duplicates); among a million keys the chance of that is about
/// 3 in 10^8.
#[derive(Default)]
struct Inner {
    by_hash: DashMap<u64, Arc<KeyRecord>, BuildHasherDefault<DigestHasher>>,
    ids: DashMap<u64, u64, BuildHasherDefault<DigestHasher>>,
    id_digest: RandomState,
}

impl Inner {
    fn id_key(&self, id: &str) -> u64 {
        self.id_digest.hash_one(id)
    }

    /// The `by_hash` slot of the record with this id.
    fn slot_of(&self, id: &str) -> Option<u64> {
        let slot = *self.ids.get(&self.id_key(id))?;
        let found = self.by_hash.get(&slot)?;
        (found.id == id).then_some(slot)
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
        use dashmap::mapref::entry::Entry;
        let slot = record.hash.prefix();
        match self.inner.ids.entry(self.inner.id_key(&record.id)) {
            Entry::Occupied(_) => Err(DuplicateKey::Id { id: record.id }),
            Entry::Vacant(v) => match self.inner.by_hash.entry(slot) {
                Entry::Occupied(_) => Err(DuplicateKey::Hash { id: record.id }),
                Entry::Vacant(e) => {
                    e.insert(Arc::new(record));
                    v.insert(slot);
                    Ok(())
                }
            },
        }
    }

    /// Adds or replaces the record with this id (its hash may change). A record that cannot
    /// be stored (its hash or id digest is another key's) is left out and logged.
    pub fn upsert(&self, record: KeyRecord) {
        let id = record.id.clone();
        if let Some(slot) = self.inner.slot_of(&id) {
            if slot == record.hash.prefix() {
                self.inner.by_hash.insert(slot, Arc::new(record));
                return;
            }
            self.remove(&id);
        }
        if let Err(e) = self.try_insert(record) {
            tracing::error!(error = %e, "ark-auth: record not stored");
        }
    }

    /// The record with this id.
    pub fn get(&self, id: &str) -> Option<Arc<KeyRecord>> {
        let slot = self.inner.slot_of(id)?;
        self.inner.by_hash.get(&slot).map(|r| Arc::clone(&r))
    }

    /// Applies `f` to a copy of the record with this id and stores the result. `false` when
    /// no such id.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut KeyRecord)) -> bool {
        let Some(slot) = self.inner.slot_of(id) else {
            return false;
        };
        match self.inner.by_hash.get_mut(&slot) {
            Some(mut current) if current.id == id => {
                let mut record = KeyRecord::clone(&current);
                f(&mut record);
                record.hash = current.hash;
                record.id = current.id.clone();
                *current = Arc::new(record);
                true
            }
            _ => false,
        }
    }

    /// Revokes the key with this id at once. `false` when no such id.
    pub fn revoke(&self, id: &str) -> bool {
        self.update(id, |r| r.revoked = true)
    }

    /// Sets or clears the expiry of the key with this id. `false` when no such id.
    pub fn set_expiry(&self, id: &str, at: Option<SystemTime>) -> bool {
        self.update(id, |r| r.expires_at = at)
    }

    /// Deletes the key with this id. `false` when no such id.
    pub fn remove(&self, id: &str) -> bool {
        let Some(slot) = self.inner.slot_of(id) else {
            return false;
        };
        self.inner.ids.remove(&self.inner.id_key(id));
        self.inner
            .by_hash
            .remove_if(&slot, |_, r| r.id == id)
            .is_some()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.inner.by_hash.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.inner.by_hash.is_empty()
    }

    /// Every record (a snapshot; records hold hashes only).
    pub fn records(&self) -> Vec<Arc<KeyRecord>> {
        self.inner
            .by_hash
            .iter()
            .map(|r| Arc::clone(r.value()))
            .collect()
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
        Answer::Now(Ok(self
            .inner
            .by_hash
            .get(&hash.prefix())
            .map(|r| Arc::clone(&r))))
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
        assert_eq!(lookup_now(&store, &r.hash).unwrap().id, r.id);
        assert!(lookup_now(&store, &rec(1000).hash).is_none());
        assert!(store.revoke(&r.id));
        assert!(lookup_now(&store, &r.hash).unwrap().revoked);
        assert!(!store.revoke("key_nope"));
        assert!(store.remove(&r.id));
        assert!(lookup_now(&store, &r.hash).is_none());
        assert!(store.get(&r.id).is_none());
    }

    #[test]
    fn duplicates_refused() {
        assert!(matches!(
            MemoryKeyStore::from_records([rec(1), rec(1)]),
            Err(DuplicateKey::Id { .. })
        ));
        let mut other = rec(1);
        other.id = "key_other".into();
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
        b.id = a.id.clone();
        store.upsert(b.clone());
        assert_eq!(store.len(), 1);
        assert!(lookup_now(&store, &a.hash).is_none());
        assert!(lookup_now(&store, &b.hash).is_some());
        assert_eq!(store.get(&a.id).unwrap().environment, Environment::Test);
    }
}
