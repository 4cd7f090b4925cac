//! Flood: 100 000 distinct random well-formed keys against `CachedKeyStore<PostgresKeyStore>`.
//! Database queries are counted by the store itself (`PostgresKeyStore::lookup_queries`).
//!
//! - every unknown key reaches the database at most once while its negative entry lives,
//!   even when presented twice concurrently (coalesced misses): queries ≤ distinct keys;
//! - a replay of the flood within the TTL costs no query at all (cache bound above the flood);
//! - with a cache bound below the flood, the cache never holds more than its bound, and a key
//!   in real use stays cached through the scan (S3-FIFO);
//!
//! and prints the numbers. Needs `DATABASE_URL` (skipped with a printed reason when unset, a
//! failure under `CI=true`).

#[path = "common/pg.rs"]
mod pg;

use std::time::{Duration, Instant};

use ark_auth::cache::{CacheConfig, CachedKeyStore};
use ark_auth::postgres::{PostgresKeyStore, PostgresOptions};
use ark_auth::{
    generate_key, key::KeyHash, store::KeyStore, token::Token, Environment, Permissions,
};
use futures::StreamExt;

const FLOOD: usize = 100_000;
/// Lookups in flight at once: twice the pool, so requests also queue for connections.
const CONCURRENCY: usize = 32;

/// Distinct random keys in the token grammar (`ark_live_` + 32 base62), as hashes.
fn random_keys(n: usize) -> Vec<KeyHash> {
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let body: String = (0..32)
            .map(|_| BASE62[fastrand::usize(..62)] as char)
            .collect();
        let token = format!("ark_live_{body}");
        let hash = KeyHash::of(&Token::parse(&token).expect("well-formed"));
        if seen.insert(hash) {
            out.push(hash);
        }
    }
    out
}

/// Looks every hash up, `CONCURRENCY` at a time; every answer must be "no such key" except
/// for `known`.
async fn run(cache: &CachedKeyStore<PostgresKeyStore>, hashes: &[KeyHash], known: &KeyHash) {
    futures::stream::iter(hashes.iter().copied())
        .map(|h| async move { (h, cache.lookup(&h).await) })
        .buffer_unordered(CONCURRENCY)
        .for_each(|(h, r)| async move {
            let found = r
                .unwrap_or_else(|e| panic!("store failed during the flood: {e}"))
                .is_some();
            assert_eq!(found, h == *known, "only the real key is found");
        })
        .await;
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_of_random_keys() {
    let Some(url) = pg::database_url("flood_of_random_keys") else {
        return;
    };
    let store = pg::store_at(
        &url,
        PostgresOptions {
            pool_size: 16,
            // A loaded CI machine may take a while to hand out a connection; the point here
            // is counting queries, not latency.
            connect_timeout: Duration::from_secs(30),
            ..PostgresOptions::default()
        },
    )
    .await;
    let real = generate_key(Environment::Live).unwrap();
    let real_hash = *real.record.hash();
    store
        .create(&real.record.clone().with_permissions(Permissions::ALL))
        .await
        .unwrap();
    let flood = random_keys(FLOOD);
    let rss_before = rss_kib();

    // 1. Cache bound above the flood: each key presented twice (the second copy often while
    //    the first is in flight), then the whole flood replayed.
    let big = store.clone().cached(
        CacheConfig::default()
            .with_capacity(2 * FLOOD)
            .with_negative_ttl(Duration::from_secs(600)),
    );
    // Both copies of a key are adjacent, so they are in flight together (coalesced).
    let twice: Vec<KeyHash> = flood.iter().flat_map(|h| [*h, *h]).collect();
    let q0 = store.lookup_queries();
    let start = Instant::now();
    run(&big, &twice, &real_hash).await;
    let first = store.lookup_queries() - q0;
    let t_first = start.elapsed();
    println!(
        "flood: {} requests for {FLOOD} distinct random keys -> {first} database queries \
         in {:.1} s ({:.0} req/s); cache entries {}",
        twice.len(),
        t_first.as_secs_f64(),
        twice.len() as f64 / t_first.as_secs_f64(),
        big.entry_count()
    );
    assert!(
        first <= FLOOD as u64,
        "queries {first} > distinct keys {FLOOD}"
    );
    assert!(first >= FLOOD as u64 * 9 / 10, "the store really was asked");

    let q1 = store.lookup_queries();
    let start = Instant::now();
    run(&big, &flood, &real_hash).await;
    let replay = store.lookup_queries() - q1;
    println!(
        "replay within the negative TTL: {FLOOD} requests -> {replay} database queries in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(replay, 0, "a replay within the TTL costs no query");
    assert!(big.entry_count() <= 2 * FLOOD);
    drop(big);

    // 2. Cache bound below the flood, with a real client's key used all along.
    let bound = 10_000;
    let small = store.clone().cached(
        CacheConfig::default()
            .with_capacity(bound)
            .with_negative_ttl(Duration::from_secs(600)),
    );
    let mut mixed = Vec::with_capacity(FLOOD + FLOOD / 50);
    for (i, h) in flood.iter().enumerate() {
        mixed.push(*h);
        if i % 50 == 0 {
            mixed.push(real_hash);
        }
    }
    let q2 = store.lookup_queries();
    let inner0 = small.inner_lookups();
    let mut max_entries = 0;
    for chunk in mixed.chunks(5_000) {
        run(&small, chunk, &real_hash).await;
        max_entries = max_entries.max(small.entry_count());
        assert!(
            small.entry_count() <= bound,
            "bounded: {}",
            small.entry_count()
        );
    }
    let queries = store.lookup_queries() - q2;
    let real_queries = {
        // How often the real key reached the store: replay it alone and count.
        let before = store.lookup_queries();
        for _ in 0..100 {
            assert!(small.lookup(&real_hash).await.unwrap().is_some());
        }
        store.lookup_queries() - before
    };
    println!(
        "bounded cache ({bound} entries): {} requests ({FLOOD} random + {} of a real key) -> \
         {queries} database queries, cache entries at most {max_entries}, real key cached after \
         the flood: {}",
        mixed.len(),
        mixed.len() - FLOOD,
        real_queries == 0
    );
    assert!(queries <= FLOOD as u64 + (mixed.len() - FLOOD) as u64);
    assert!(small.inner_lookups() - inner0 <= mixed.len() as u64);
    assert_eq!(
        real_queries, 0,
        "the hot key survives a scan of one-off keys"
    );
    if let (Some(a), Some(b)) = (rss_before, rss_kib()) {
        println!("process RSS: {a} KiB before the floods, {b} KiB after");
    }
    store.remove(real.record.id()).await.unwrap();
}
