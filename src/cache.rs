//! A verification cache in front of any [`KeyStore`]: [`CachedKeyStore`].
//!
//! A database round trip per request is what a fleet cannot afford, and a flood of random
//! keys must reach the database neither once per request nor grow memory without bound. The
//! cache keeps, per [`KeyHash`]:
//!
//! - **positive entries** (the key's record) for [`CacheConfig::positive_ttl`];
//! - **negative entries** (no such key) for [`CacheConfig::negative_ttl`], so an unknown key
//!   costs one store lookup per negative TTL, however often it is presented;
//! - at most [`CacheConfig::capacity`] entries in all, evicting when full;
//! - one store call per key at a time: concurrent misses of the same key wait for the first
//!   one's answer instead of each asking the store.
//!
//! Store errors are never cached: the next request asks again (and the layer answers 503,
//! fail closed).
//!
//! # Fast path
//!
//! A hit answers [`Answer::Now`]: no future, no allocation, no `await`, so the layer decides
//! the request inside `Service::call` exactly as with the in-memory store. Only a miss (or an
//! expired entry) answers [`Answer::Later`] with a boxed future.
//!
//! # Invalidation
//!
//! [`CachedKeyStore::invalidate`] (by hash), [`CachedKeyStore::invalidate_id`] (by key id,
//! for code that knows a key by its id, as admin tools do), [`CachedKeyStore::invalidate_all`]
//! and the [`CacheInvalidator`] handle (cheap to clone, for a revocation listener such as
//! `ark_auth::postgres::RevocationListener`) drop entries so that the next request asks the
//! store. An invalidation that arrives while a lookup of the same key is in flight wins: the
//! in-flight answer is returned to its waiters but not cached.
//!
//! # Choice of cache crate
//!
//! [`quick_cache`]: its `get` is synchronous and lock-light (the hit path above), its
//! placeholder guards give the coalescing of concurrent misses, and its S3-FIFO eviction
//! resists scans, so a flood of one-off random keys evicts other one-off keys rather than the
//! hot keys of real clients. moka was the alternative; its async cache only answers through
//! a future, which would cost the synchronous fast path. Time-to-live is kept per entry (one
//! deadline beside the record), because quick_cache has none of its own.
//!
//! ```
//! use std::time::Duration;
//! use ark_auth::cache::{CacheConfig, CachedKeyStore};
//! use ark_auth::{generate_key, Environment, MemoryKeyStore};
//! use ark_auth::store::{Answer, KeyStore};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let key = generate_key(Environment::Test).unwrap();
//! let hash = *key.record.hash();
//! let store = MemoryKeyStore::from_records([key.record]).unwrap();
//! let cached = CachedKeyStore::new(
//!     store,
//!     CacheConfig::default().with_capacity(10_000).with_positive_ttl(Duration::from_secs(30)),
//! );
//! // First lookup: a miss, answered later (from the inner store).
//! assert!(cached.lookup(&hash).await.unwrap().is_some());
//! // Second: a hit, answered now.
//! assert!(matches!(cached.lookup(&hash), Answer::Now(Ok(Some(_)))));
//! cached.invalidate(&hash);
//! assert!(matches!(cached.lookup(&hash), Answer::Later(_)));
//! # }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quick_cache::sync::{Cache, EntryAction, EntryResult};

use crate::answer::Answer;
use crate::key::{KeyHash, KeyRecord};
use crate::store::{BoxLookup, KeyStore, LookupResult};

/// Sizes and lifetimes of a [`CachedKeyStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    capacity: usize,
    positive_ttl: Duration,
    negative_ttl: Duration,
}

impl CacheConfig {
    /// 100 000 entries, records kept 30 s, unknown keys 10 s.
    pub const DEFAULT: CacheConfig = CacheConfig {
        capacity: 100_000,
        positive_ttl: Duration::from_secs(30),
        negative_ttl: Duration::from_secs(10),
    };

    /// At most this many entries, positive and negative together (at least 1).
    pub fn with_capacity(mut self, entries: usize) -> Self {
        self.capacity = entries.max(1);
        self
    }

    /// How long a found record is served from the cache: the bound on staleness when no
    /// revocation listener invalidates entries.
    pub fn with_positive_ttl(mut self, ttl: Duration) -> Self {
        self.positive_ttl = ttl;
        self
    }

    /// How long "no such key" is served from the cache: a key created elsewhere may be
    /// refused for this long on an instance that saw it before it existed, unless a
    /// listener invalidates it.
    pub fn with_negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// At most this many entries are held.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ark_auth::cache::CacheConfig;
    ///
    /// let config = CacheConfig::default().with_capacity(0).with_negative_ttl(Duration::ZERO);
    /// assert_eq!(config.capacity(), 1);
    /// assert_eq!(config.negative_ttl(), Duration::ZERO);
    /// assert_eq!(config.positive_ttl(), CacheConfig::DEFAULT.positive_ttl());
    /// ```
    pub const fn capacity(&self) -> usize {
        self.capacity
    }

    /// How long a found record is served from the cache.
    pub const fn positive_ttl(&self) -> Duration {
        self.positive_ttl
    }

    /// How long "no such key" is served from the cache.
    pub const fn negative_ttl(&self) -> Duration {
        self.negative_ttl
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig::DEFAULT
    }
}

/// A cached answer and when it stops being fresh.
#[derive(Clone)]
struct Entry {
    record: Option<Arc<KeyRecord>>,
    fresh_until: Instant,
}

/// What a hook sees: the record a lookup found (a hit or a miss that found it).
type FoundHook = Box<dyn Fn(&KeyRecord) + Send + Sync>;

struct Shared<K> {
    inner: K,
    cache: Cache<KeyHash, Entry>,
    config: CacheConfig,
    /// Bumped by `invalidate_all` and `invalidate_id`: a miss that started before does not
    /// cache its answer.
    generation: AtomicU64,
    inner_lookups: AtomicU64,
    on_found: Option<FoundHook>,
}

/// A [`KeyStore`] that caches the answers of another, with TTLs, a size bound and coalesced
/// misses. See the [module documentation](self).
///
/// Cloning shares the cache and the inner store.
pub struct CachedKeyStore<K> {
    shared: Arc<Shared<K>>,
}

impl<K> Clone for CachedKeyStore<K> {
    fn clone(&self) -> Self {
        CachedKeyStore {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K: KeyStore> CachedKeyStore<K> {
    /// Caches the answers of `inner`.
    pub fn new(inner: K, config: CacheConfig) -> Self {
        Self::build(inner, config, None)
    }

    /// Like [`CachedKeyStore::new`], with `hook` called (synchronously, on the request
    /// path: keep it cheap and non-blocking) with every record a lookup finds, hit or miss.
    /// The PostgreSQL store uses it to record `last_used_at` for cache hits.
    pub fn with_found_hook(
        inner: K,
        config: CacheConfig,
        hook: impl Fn(&KeyRecord) + Send + Sync + 'static,
    ) -> Self {
        Self::build(inner, config, Some(Box::new(hook)))
    }

    fn build(inner: K, config: CacheConfig, on_found: Option<FoundHook>) -> Self {
        CachedKeyStore {
            shared: Arc::new(Shared {
                inner,
                cache: Cache::new(config.capacity),
                config,
                generation: AtomicU64::new(0),
                inner_lookups: AtomicU64::new(0),
                on_found,
            }),
        }
    }

    /// The store behind the cache (for writes: after changing a key through it, call
    /// [`CachedKeyStore::invalidate`] for an immediate local effect).
    pub fn inner(&self) -> &K {
        &self.shared.inner
    }

    /// The configuration.
    pub fn config(&self) -> CacheConfig {
        self.shared.config
    }

    /// Drops the entry of this key: the next lookup asks the inner store.
    pub fn invalidate(&self, hash: &KeyHash) {
        self.shared.invalidate(hash);
    }

    /// Drops the entry of the key with this id: the next lookup of it asks the inner store.
    ///
    /// The cache is keyed by hash, so this visits every entry (a few milliseconds at 100 000
    /// entries); a caller that knows the hash uses [`invalidate`](Self::invalidate). Lookups
    /// in flight when it is called do not cache their answers.
    ///
    /// ```
    /// use ark_auth::cache::{CacheConfig, CachedKeyStore};
    /// use ark_auth::{generate_key, Environment, MemoryKeyStore};
    /// use ark_auth::store::{Answer, KeyStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let key = generate_key(Environment::Test).unwrap();
    /// let (id, hash) = (key.record.id().to_owned(), *key.record.hash());
    /// let store = MemoryKeyStore::from_records([key.record]).unwrap();
    /// let cached = CachedKeyStore::new(store, CacheConfig::default());
    /// assert!(cached.lookup(&hash).await.unwrap().is_some());
    /// assert!(matches!(cached.lookup(&hash), Answer::Now(_)));
    ///
    /// cached.inner().revoke(&id);
    /// cached.invalidate_id(&id);
    /// let record = cached.lookup(&hash).await.unwrap().unwrap();
    /// assert!(record.is_revoked());
    /// # }
    /// ```
    pub fn invalidate_id(&self, id: &str) {
        self.shared.invalidate_id(id);
    }

    /// Drops every entry.
    pub fn invalidate_all(&self) {
        self.shared.invalidate_all();
    }

    /// A handle that invalidates entries of this cache, for a revocation listener.
    pub fn invalidator(&self) -> CacheInvalidator {
        CacheInvalidator {
            target: Arc::clone(&self.shared) as Arc<dyn Invalidate>,
        }
    }

    /// Entries held now (fresh or not yet evicted), never above the capacity.
    pub fn entry_count(&self) -> usize {
        self.shared.cache.len()
    }

    /// How many lookups reached the inner store.
    pub fn inner_lookups(&self) -> u64 {
        self.shared.inner_lookups.load(Ordering::Relaxed)
    }
}

impl<K> fmt::Debug for CachedKeyStore<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedKeyStore")
            .field("config", &self.shared.config)
            .field("entries", &self.shared.cache.len())
            .field(
                "inner_lookups",
                &self.shared.inner_lookups.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

trait Invalidate: Send + Sync {
    fn invalidate(&self, hash: &KeyHash);
    fn invalidate_id(&self, id: &str);
    fn invalidate_all(&self);
}

impl<K: Send + Sync> Invalidate for Shared<K> {
    fn invalidate(&self, hash: &KeyHash) {
        // Also removes the placeholder of a lookup in flight, whose answer is then not cached.
        self.cache.remove(hash);
    }

    fn invalidate_id(&self, id: &str) {
        // First the generation: a miss in flight (maybe of this key, whose id it does not
        // know yet) then drops what it caches; see `Shared::miss`.
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache
            .retain(|_, e| e.record.as_ref().is_none_or(|r| r.id() != id));
    }

    fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.clear();
    }
}

/// Invalidates entries of one [`CachedKeyStore`]; cheap to clone and to send to a task.
#[derive(Clone)]
pub struct CacheInvalidator {
    target: Arc<dyn Invalidate>,
}

impl CacheInvalidator {
    /// Drops the entry of this key.
    pub fn invalidate(&self, hash: &KeyHash) {
        self.target.invalidate(hash);
    }

    /// Drops the entry of the key with this id (see [`CachedKeyStore::invalidate_id`]).
    pub fn invalidate_id(&self, id: &str) {
        self.target.invalidate_id(id);
    }

    /// Drops every entry (say, after missed notifications).
    pub fn invalidate_all(&self) {
        self.target.invalidate_all();
    }
}

impl fmt::Debug for CacheInvalidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheInvalidator").finish_non_exhaustive()
    }
}

impl<K: KeyStore> Shared<K> {
    fn found(&self, record: &Option<Arc<KeyRecord>>) {
        if let (Some(hook), Some(record)) = (&self.on_found, record) {
            hook(record);
        }
    }

    /// A miss: one inner lookup per key at a time, its answer cached unless invalidated
    /// meanwhile.
    async fn miss(self: Arc<Self>, hash: KeyHash) -> LookupResult {
        let generation = self.generation.load(Ordering::Acquire);
        let fresh = |_: &KeyHash, e: &mut Entry| {
            if Instant::now() < e.fresh_until {
                EntryAction::Retain(e.record.clone())
            } else {
                EntryAction::ReplaceWithGuard
            }
        };
        let guard = match self.cache.entry_async(&hash, fresh).await {
            // Filled by a concurrent lookup of the same key while we waited.
            EntryResult::Retained(record) => {
                self.found(&record);
                return Ok(record);
            }
            EntryResult::Replaced(guard, _) | EntryResult::Vacant(guard) => Some(guard),
            // Not produced by this callback; asking the store is always correct.
            EntryResult::Removed(..) | EntryResult::Timeout => None,
        };
        self.inner_lookups.fetch_add(1, Ordering::Relaxed);
        let result = self.inner.lookup(&hash).await;
        if let (Ok(record), Some(guard)) = (&result, guard) {
            if self.generation.load(Ordering::Acquire) == generation {
                let ttl = if record.is_some() {
                    self.config.positive_ttl
                } else {
                    self.config.negative_ttl
                };
                // Err: the entry was invalidated while we asked; leave it out.
                let inserted = guard.insert(Entry {
                    record: record.clone(),
                    fresh_until: Instant::now() + ttl,
                });
                // An invalidation by id or of everything between the check above and the
                // insert: its scan may have run before the entry was there, so drop it here.
                // (The scan and the insert take the same shard lock: either the scan saw the
                // entry, or this load sees the new generation.)
                if inserted.is_ok() && self.generation.load(Ordering::Acquire) != generation {
                    self.cache.remove(&hash);
                }
            }
            self.found(record);
        }
        result
    }
}

impl<K: KeyStore> KeyStore for CachedKeyStore<K> {
    type Future = BoxLookup;

    fn lookup(&self, hash: &KeyHash) -> Answer<LookupResult, BoxLookup> {
        if let Some(entry) = self.shared.cache.get(hash) {
            if Instant::now() < entry.fresh_until {
                self.shared.found(&entry.record);
                return Answer::Now(Ok(entry.record));
            }
        }
        Answer::Later(Box::pin(Arc::clone(&self.shared).miss(*hash)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryKeyStore, StoreError};
    use crate::token::Environment;
    use crate::{generate_key, Permissions};
    use std::sync::atomic::AtomicUsize;

    /// Counts lookups and answers after a delay, so that concurrent misses overlap.
    #[derive(Clone)]
    struct Slow {
        inner: MemoryKeyStore,
        calls: Arc<AtomicUsize>,
        fail: Arc<std::sync::atomic::AtomicBool>,
    }

    impl KeyStore for Slow {
        type Future = BoxLookup;
        fn lookup(&self, hash: &KeyHash) -> Answer<LookupResult, BoxLookup> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let answer = self.inner.lookup(hash);
            let fail = self.fail.load(Ordering::SeqCst);
            Answer::Later(Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if fail {
                    return Err(StoreError::new("down"));
                }
                answer.await
            }))
        }
    }

    fn slow() -> (Slow, KeyHash) {
        let key = generate_key(Environment::Test).unwrap();
        let hash = *key.record.hash();
        let inner =
            MemoryKeyStore::from_records([key.record.with_permissions(Permissions::ALL)]).unwrap();
        let s = Slow {
            inner,
            calls: Arc::default(),
            fail: Arc::default(),
        };
        (s, hash)
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_inner_call() {
        let (inner, hash) = slow();
        let calls = inner.calls.clone();
        let cached = CachedKeyStore::new(inner, CacheConfig::default());
        let lookups = (0..32).map(|_| {
            let c = cached.clone();
            tokio::spawn(async move { c.lookup(&hash).await })
        });
        for r in futures::future::join_all(lookups).await {
            assert!(r.unwrap().unwrap().is_some());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(matches!(cached.lookup(&hash), Answer::Now(Ok(Some(_)))));
    }

    #[tokio::test]
    async fn negative_entries_and_ttls() {
        let (inner, _) = slow();
        let calls = inner.calls.clone();
        let cached = CachedKeyStore::new(
            inner,
            CacheConfig::default()
                .with_negative_ttl(Duration::from_millis(200))
                .with_positive_ttl(Duration::from_secs(60)),
        );
        let unknown = KeyHash::from_bytes([7; 32]);
        assert!(cached.lookup(&unknown).await.unwrap().is_none());
        assert!(matches!(cached.lookup(&unknown), Answer::Now(Ok(None))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(matches!(cached.lookup(&unknown), Answer::Later(_)));
        assert!(cached.lookup(&unknown).await.unwrap().is_none());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let (inner, hash) = slow();
        let fail = inner.fail.clone();
        let cached = CachedKeyStore::new(inner, CacheConfig::default());
        fail.store(true, Ordering::SeqCst);
        assert!(cached.lookup(&hash).await.is_err());
        assert_eq!(cached.entry_count(), 0);
        fail.store(false, Ordering::SeqCst);
        assert!(cached.lookup(&hash).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn invalidation_during_a_lookup_is_not_overwritten() {
        let (inner, hash) = slow();
        let cached = CachedKeyStore::new(inner, CacheConfig::default());
        let c = cached.clone();
        let pending = tokio::spawn(async move { c.lookup(&hash).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        cached.invalidate(&hash);
        assert!(pending.await.unwrap().unwrap().is_some());
        assert!(
            matches!(cached.lookup(&hash), Answer::Later(_)),
            "not cached"
        );

        let c = cached.clone();
        let pending = tokio::spawn(async move { c.lookup(&hash).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        cached.invalidator().invalidate_all();
        assert!(pending.await.unwrap().unwrap().is_some());
        assert!(
            matches!(cached.lookup(&hash), Answer::Later(_)),
            "not cached"
        );
    }

    #[tokio::test]
    async fn invalidate_id_drops_that_key_only() {
        let (a, b) = (
            generate_key(Environment::Test).unwrap(),
            generate_key(Environment::Live).unwrap(),
        );
        let (id_a, hash_a, hash_b) = (a.record.id().to_owned(), *a.record.hash(), *b.record.hash());
        let unknown = KeyHash::from_bytes([9; 32]);
        let cached = CachedKeyStore::new(
            MemoryKeyStore::from_records([a.record, b.record]).unwrap(),
            CacheConfig::default(),
        );
        for h in [hash_a, hash_b, unknown] {
            let _ = cached.lookup(&h).await;
        }
        assert_eq!(cached.inner_lookups(), 3);
        cached.invalidate_id("key_not_there");
        assert_eq!(cached.entry_count(), 3);
        cached.invalidator().invalidate_id(&id_a);
        assert_eq!(cached.entry_count(), 2);
        assert!(matches!(cached.lookup(&hash_a), Answer::Later(_)));
        assert!(matches!(cached.lookup(&hash_b), Answer::Now(Ok(Some(_)))));
        assert!(matches!(cached.lookup(&unknown), Answer::Now(Ok(None))));
    }

    #[tokio::test]
    async fn invalidate_id_during_a_lookup_is_not_overwritten() {
        let (inner, hash) = slow();
        let id = inner
            .inner
            .lookup(&hash)
            .await
            .unwrap()
            .unwrap()
            .id()
            .to_owned();
        let cached = CachedKeyStore::new(inner, CacheConfig::default());
        let c = cached.clone();
        let pending = tokio::spawn(async move { c.lookup(&hash).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        cached.invalidate_id(&id);
        assert!(pending.await.unwrap().unwrap().is_some());
        assert!(
            matches!(cached.lookup(&hash), Answer::Later(_)),
            "not cached"
        );
    }

    #[tokio::test]
    async fn bounded() {
        let (inner, _) = slow();
        let cached = CachedKeyStore::new(inner.inner, CacheConfig::default().with_capacity(100));
        for i in 0..1000u32 {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&i.to_le_bytes());
            let _ = cached.lookup(&KeyHash::from_bytes(b)).await;
        }
        assert!(cached.entry_count() <= 100, "{}", cached.entry_count());
        assert_eq!(cached.inner_lookups(), 1000);
    }
}
