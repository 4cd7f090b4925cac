//! One conformance suite for every `KeyStore`: the same test functions run against
//! `MemoryKeyStore`, `PostgresKeyStore`, `CachedKeyStore<MemoryKeyStore>` and
//! `CachedKeyStore<PostgresKeyStore>`. A store is driven through a small harness (how to
//! write a key into it); what is checked is what the layer sees through `lookup`.
//!
//! The PostgreSQL runs need `DATABASE_URL` (skipped with a printed reason when unset, a
//! failure under `CI=true`). Each test uses fresh random keys, so runs can share a database.

#[path = "common/pg.rs"]
mod pg;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ark_auth::cache::{CacheConfig, CachedKeyStore};
use ark_auth::postgres::PostgresKeyStore;
use ark_auth::{
    generate_key,
    key::{KeyHash, KeyRecord},
    store::KeyStore,
    token::Token,
    Environment, MemoryKeyStore, Permission, Permissions,
};

/// How a test writes keys into the store under test.
trait Harness {
    type Store: KeyStore;
    fn name(&self) -> &'static str;
    fn store(&self) -> &Self::Store;
    async fn insert(&self, record: &KeyRecord);
    async fn update(&self, record: &KeyRecord);
    async fn revoke(&self, id: &str);
    async fn set_expiry(&self, id: &str, at: Option<SystemTime>);
    async fn remove(&self, id: &str);
    /// A write changed the key that had this hash (a cache drops its entry, as the
    /// application or the revocation listener would).
    fn changed(&self, _hash: &KeyHash) {}
}

struct Memory(MemoryKeyStore);

impl Harness for Memory {
    type Store = MemoryKeyStore;
    fn name(&self) -> &'static str {
        "MemoryKeyStore"
    }
    fn store(&self) -> &MemoryKeyStore {
        &self.0
    }
    async fn insert(&self, record: &KeyRecord) {
        self.0.try_insert(record.clone()).unwrap();
    }
    async fn update(&self, record: &KeyRecord) {
        self.0.upsert(record.clone());
    }
    async fn revoke(&self, id: &str) {
        assert!(self.0.revoke(id));
    }
    async fn set_expiry(&self, id: &str, at: Option<SystemTime>) {
        assert!(self.0.set_expiry(id, at));
    }
    async fn remove(&self, id: &str) {
        assert!(self.0.remove(id));
    }
}

struct Postgres(PostgresKeyStore);

impl Harness for Postgres {
    type Store = PostgresKeyStore;
    fn name(&self) -> &'static str {
        "PostgresKeyStore"
    }
    fn store(&self) -> &PostgresKeyStore {
        &self.0
    }
    async fn insert(&self, record: &KeyRecord) {
        self.0.create(record).await.unwrap();
    }
    async fn update(&self, record: &KeyRecord) {
        assert!(self.0.update(record).await.unwrap());
    }
    async fn revoke(&self, id: &str) {
        assert!(self.0.revoke(id).await.unwrap());
    }
    async fn set_expiry(&self, id: &str, at: Option<SystemTime>) {
        assert!(self.0.set_expiry(id, at).await.unwrap());
    }
    async fn remove(&self, id: &str) {
        assert!(self.0.remove(id).await.unwrap());
    }
}

/// A cache in front of another harness's store; writes go to the inner store, then the
/// cache entry of the changed hash is invalidated.
struct Cached<H: Harness> {
    inner: H,
    cache: CachedKeyStore<H::Store>,
    name: &'static str,
}

impl<H: Harness> Cached<H>
where
    H::Store: Clone,
{
    fn new(inner: H, name: &'static str) -> Self {
        let cache = CachedKeyStore::new(inner.store().clone(), CacheConfig::default());
        Cached { inner, cache, name }
    }
}

impl<H: Harness> Harness for Cached<H> {
    type Store = CachedKeyStore<H::Store>;
    fn name(&self) -> &'static str {
        self.name
    }
    fn store(&self) -> &Self::Store {
        &self.cache
    }
    async fn insert(&self, record: &KeyRecord) {
        self.inner.insert(record).await;
        self.changed(record.hash());
    }
    async fn update(&self, record: &KeyRecord) {
        self.inner.update(record).await;
        self.changed(record.hash());
    }
    async fn revoke(&self, id: &str) {
        self.inner.revoke(id).await;
    }
    async fn set_expiry(&self, id: &str, at: Option<SystemTime>) {
        self.inner.set_expiry(id, at).await;
    }
    async fn remove(&self, id: &str) {
        self.inner.remove(id).await;
    }
    fn changed(&self, hash: &KeyHash) {
        self.cache.invalidate(hash);
    }
}

/// A time PostgreSQL stores exactly (whole microseconds).
fn at(offset_secs: i64) -> SystemTime {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(now.checked_add_signed(offset_secs).unwrap())
}

fn new_record() -> (String, KeyRecord) {
    let key = generate_key(Environment::Live).unwrap();
    let record = key
        .record
        .with_name("conformance")
        .with_permissions(Permissions::from(Permission::EmailsSend) | Permission::EmailsRead)
        .with_tenant("tn_42")
        .with_rate_limit(7)
        .with_metadata("plan", "pro")
        .with_metadata("région", "eu \"west\"");
    (key.plaintext.expose_secret().to_owned(), record)
}

async fn get<H: Harness>(h: &H, hash: &KeyHash) -> Option<Arc<KeyRecord>> {
    h.store()
        .lookup(hash)
        .await
        .unwrap_or_else(|e| panic!("{}: lookup failed: {e}", h.name()))
}

async fn known_key_is_found_with_every_field<H: Harness>(h: &H) {
    let (token, record) = new_record();
    let record = record.with_expiry(at(3600));
    h.insert(&record).await;
    let hash = KeyHash::of(&Token::parse(&token).unwrap());
    let found = get(h, &hash).await.expect("known key");
    assert_eq!(*found, record, "{}", h.name());
    // Twice (a cache answers the second from memory).
    assert_eq!(*get(h, &hash).await.unwrap(), record, "{}", h.name());
}

async fn unknown_key_is_none<H: Harness>(h: &H) {
    let (_, record) = new_record();
    h.insert(&record).await;
    let other = *generate_key(Environment::Live).unwrap().record.hash();
    assert!(get(h, &other).await.is_none(), "{}", h.name());
    assert!(get(h, &other).await.is_none(), "{}", h.name());
    // A wrong secret with a real key's prefix is just another unknown hash.
    let wrong = Token::parse("ark_live_0000000000000000000000000000000").unwrap();
    assert!(get(h, &KeyHash::of(&wrong)).await.is_none(), "{}", h.name());
}

async fn revocation_is_visible<H: Harness>(h: &H) {
    let (_, record) = new_record();
    h.insert(&record).await;
    assert!(!get(h, record.hash()).await.unwrap().is_revoked());
    h.revoke(record.id()).await;
    h.changed(record.hash());
    let found = get(h, record.hash()).await.unwrap();
    assert!(found.is_revoked(), "{}", h.name());
    assert!(!found.is_usable_at(SystemTime::now()), "{}", h.name());
}

async fn expiry_changes_are_visible<H: Harness>(h: &H) {
    let (_, record) = new_record();
    h.insert(&record).await;
    assert_eq!(get(h, record.hash()).await.unwrap().expires_at(), None);
    // Rotation: a grace period ahead, still usable.
    h.set_expiry(record.id(), Some(at(60))).await;
    h.changed(record.hash());
    let found = get(h, record.hash()).await.unwrap();
    assert_eq!(found.expires_at(), Some(at(60)), "{}", h.name());
    assert!(found.is_usable_at(SystemTime::now()));
    // Past: refused.
    h.set_expiry(record.id(), Some(at(-1))).await;
    h.changed(record.hash());
    assert!(!get(h, record.hash())
        .await
        .unwrap()
        .is_usable_at(SystemTime::now()));
    // Cleared.
    h.set_expiry(record.id(), None).await;
    h.changed(record.hash());
    assert_eq!(get(h, record.hash()).await.unwrap().expires_at(), None);
}

async fn updates_are_visible<H: Harness>(h: &H) {
    let (_, record) = new_record();
    h.insert(&record).await;
    assert!(get(h, record.hash()).await.is_some());
    let changed = record
        .clone()
        .with_permissions(Permission::DomainsManage.into())
        .with_name("renamed")
        .with_rate_limit(3);
    h.update(&changed).await;
    assert_eq!(
        *get(h, record.hash()).await.unwrap(),
        changed,
        "{}",
        h.name()
    );
}

async fn a_new_hash_replaces_the_old<H: Harness>(h: &H) {
    let (_, record) = new_record();
    h.insert(&record).await;
    assert!(get(h, record.hash()).await.is_some());
    let mut rotated = record.clone();
    rotated.set_hash(*generate_key(Environment::Live).unwrap().record.hash());
    h.update(&rotated).await;
    h.changed(record.hash());
    assert!(get(h, record.hash()).await.is_none(), "{}", h.name());
    assert_eq!(get(h, rotated.hash()).await.unwrap().id(), record.id());
}

async fn removal_is_visible<H: Harness>(h: &H) {
    let (_, record) = new_record();
    h.insert(&record).await;
    assert!(get(h, record.hash()).await.is_some());
    h.remove(record.id()).await;
    h.changed(record.hash());
    assert!(get(h, record.hash()).await.is_none(), "{}", h.name());
}

async fn a_key_created_after_a_miss_is_found_once_invalidated<H: Harness>(h: &H) {
    let (_, record) = new_record();
    assert!(get(h, record.hash()).await.is_none());
    h.insert(&record).await;
    assert!(get(h, record.hash()).await.is_some(), "{}", h.name());
}

async fn concurrent_lookups_agree<H: Harness>(h: &H) {
    let (_, record) = new_record();
    h.insert(&record).await;
    let unknown = *generate_key(Environment::Test).unwrap().record.hash();
    let lookups = (0..64).map(|i| {
        let hash = if i % 2 == 0 { *record.hash() } else { unknown };
        async move { (i, h.store().lookup(&hash).await) }
    });
    for (i, r) in futures::future::join_all(lookups).await {
        let r = r.unwrap();
        assert_eq!(r.is_some(), i % 2 == 0, "{} lookup {i}", h.name());
    }
}

async fn conformance<H: Harness>(h: H) {
    known_key_is_found_with_every_field(&h).await;
    unknown_key_is_none(&h).await;
    revocation_is_visible(&h).await;
    expiry_changes_are_visible(&h).await;
    updates_are_visible(&h).await;
    a_new_hash_replaces_the_old(&h).await;
    removal_is_visible(&h).await;
    a_key_created_after_a_miss_is_found_once_invalidated(&h).await;
    concurrent_lookups_agree(&h).await;
    eprintln!("{}: conformance passed", h.name());
}

#[tokio::test]
async fn memory_store() {
    conformance(Memory(MemoryKeyStore::new())).await;
}

#[tokio::test]
async fn cached_memory_store() {
    conformance(Cached::new(
        Memory(MemoryKeyStore::new()),
        "CachedKeyStore<MemoryKeyStore>",
    ))
    .await;
}

#[tokio::test]
async fn postgres_store() {
    let Some(store) = pg::store("postgres_store").await else {
        return;
    };
    conformance(Postgres(store)).await;
}

#[tokio::test]
async fn cached_postgres_store() {
    let Some(store) = pg::store("cached_postgres_store").await else {
        return;
    };
    conformance(Cached::new(
        Postgres(store),
        "CachedKeyStore<PostgresKeyStore>",
    ))
    .await;
}

/// The cache with the revocation listener and no local invalidation: every change made in
/// the database reaches the cache by NOTIFY (the suite waits up to 1 s for each).
#[tokio::test]
async fn cached_postgres_store_with_listener() {
    let Some(store) = pg::store("cached_postgres_store_with_listener").await else {
        return;
    };
    let cache = store.clone().cached(CacheConfig::default());
    let listener = store.listen(cache.invalidator()).unwrap();
    assert!(listener.wait_connected(Duration::from_secs(5)).await);
    conformance(Listened {
        inner: Postgres(store),
        cache,
    })
    .await;
}

/// Writes go to PostgreSQL; the cache learns of them only through the listener, so every
/// write waits (up to 1 s, then the test fails) until the cache no longer holds the old
/// entry.
struct Listened {
    inner: Postgres,
    cache: CachedKeyStore<PostgresKeyStore>,
}

impl Listened {
    async fn settle(&self, hash: &KeyHash, before: Option<Arc<KeyRecord>>) {
        let start = std::time::Instant::now();
        loop {
            match self.cache.lookup(hash) {
                ark_auth::store::Answer::Now(Ok(now)) if now == before => {}
                _ => return,
            }
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "change not seen by the cache within 1 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn cached(&self, hash: &KeyHash) -> Option<Arc<KeyRecord>> {
        match self.cache.lookup(hash) {
            ark_auth::store::Answer::Now(Ok(r)) => r,
            _ => None,
        }
    }

    async fn by_id(&self, id: &str) -> KeyHash {
        *self.inner.0.get(id).await.unwrap().unwrap().record.hash()
    }
}

impl Harness for Listened {
    type Store = CachedKeyStore<PostgresKeyStore>;
    fn name(&self) -> &'static str {
        "CachedKeyStore<PostgresKeyStore> + RevocationListener"
    }
    fn store(&self) -> &Self::Store {
        &self.cache
    }
    async fn insert(&self, record: &KeyRecord) {
        let before = self.cached(record.hash());
        self.inner.insert(record).await;
        if before.is_none()
            && matches!(
                self.cache.lookup(record.hash()),
                ark_auth::store::Answer::Now(_)
            )
        {
            // A negative entry: the INSERT notification must drop it.
            self.settle(record.hash(), None).await;
        }
    }
    async fn update(&self, record: &KeyRecord) {
        let old = self.by_id(record.id()).await;
        let before = self.cached(&old);
        self.inner.update(record).await;
        if before.is_some() {
            self.settle(&old, before).await;
        }
    }
    async fn revoke(&self, id: &str) {
        let hash = self.by_id(id).await;
        let before = self.cached(&hash);
        self.inner.revoke(id).await;
        if before.is_some() {
            self.settle(&hash, before).await;
        }
    }
    async fn set_expiry(&self, id: &str, at: Option<SystemTime>) {
        let hash = self.by_id(id).await;
        let before = self.cached(&hash);
        self.inner.set_expiry(id, at).await;
        if before.is_some() {
            self.settle(&hash, before).await;
        }
    }
    async fn remove(&self, id: &str) {
        let hash = self.by_id(id).await;
        let before = self.cached(&hash);
        self.inner.remove(id).await;
        if before.is_some() {
            self.settle(&hash, before).await;
        }
    }
}
