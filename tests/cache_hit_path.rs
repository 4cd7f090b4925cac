//! The verification cache's hit path stays synchronous and allocation-free: a hit answers
//! `Answer::Now` without allocating (counted by an instrumented global allocator), for a
//! cache over the in-memory store and, with `DATABASE_URL`, over PostgreSQL with its
//! `last_used_at` hook. Prints the cost of a hit.

#[path = "common/pg.rs"]
mod pg;

use std::alloc::System;
use std::time::{Duration, Instant};

use ark_auth::cache::{CacheConfig, CachedKeyStore};
use ark_auth::{
    generate_key,
    key::KeyHash,
    store::{Answer, KeyStore},
    Environment, MemoryKeyStore,
};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Looks `hash` (found) and `unknown` (negative entry) up `n` times each; every answer must
/// be `Now`. Returns (allocations, ns per lookup).
fn hits<K: KeyStore>(cache: &CachedKeyStore<K>, hash: &KeyHash, unknown: &KeyHash) -> (usize, f64) {
    let n = 100_000;
    let region = Region::new(GLOBAL);
    let start = Instant::now();
    for _ in 0..n {
        match cache.lookup(hash) {
            Answer::Now(Ok(Some(_))) => {}
            _ => panic!("a cached key must answer now"),
        }
        match cache.lookup(unknown) {
            Answer::Now(Ok(None)) => {}
            _ => panic!("a cached unknown key must answer now"),
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / (2 * n) as f64;
    let stats = region.change();
    (stats.allocations + stats.reallocations, ns)
}

/// One test function (the allocator counts every thread: parallel tests would count each
/// other). A stray allocation of the test harness's own threads may land in a region, so
/// the bound is "not one per hit": at most 4 in 200 000 hits.
#[tokio::test]
async fn hits_answer_now_without_allocating() {
    memory_hits().await;
    postgres_hits().await;
}

async fn memory_hits() {
    let key = generate_key(Environment::Live).unwrap();
    let hash = *key.record.hash();
    let unknown = *generate_key(Environment::Live).unwrap().record.hash();
    let cache = CachedKeyStore::new(
        MemoryKeyStore::from_records([key.record]).unwrap(),
        CacheConfig::default(),
    );
    assert!(cache.lookup(&hash).await.unwrap().is_some());
    assert!(cache.lookup(&unknown).await.unwrap().is_none());
    let (allocs, ns) = hits(&cache, &hash, &unknown);
    println!("CachedKeyStore<MemoryKeyStore>: {allocs} allocations in 200 000 hits, {ns:.0} ns per hit ({})", profile());
    assert!(allocs <= 4, "{allocs} allocations: hits allocate");
}

async fn postgres_hits() {
    let Some(store) = pg::store("postgres_hits_answer_now_without_allocating").await else {
        return;
    };
    let key = generate_key(Environment::Live).unwrap();
    store.create(&key.record).await.unwrap();
    let unknown = *generate_key(Environment::Live).unwrap().record.hash();
    let cache = store.clone().cached(CacheConfig::default());
    assert!(cache.lookup(key.record.hash()).await.unwrap().is_some());
    assert!(cache.lookup(&unknown).await.unwrap().is_none());
    // The first hit after the miss is throttled already (the miss noted the use).
    let queries = store.lookup_queries();
    let (allocs, ns) = hits(&cache, key.record.hash(), &unknown);
    println!("CachedKeyStore<PostgresKeyStore>: {allocs} allocations in 200 000 hits, {ns:.0} ns per hit ({})", profile());
    assert!(allocs <= 4, "{allocs} allocations: hits allocate");
    assert_eq!(store.lookup_queries(), queries, "hits never query");
    tokio::time::sleep(Duration::from_millis(1)).await;
    store.remove(key.record.id()).await.unwrap();
}

fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug build"
    } else {
        "release build"
    }
}
