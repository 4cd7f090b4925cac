//! Memory and allocation counts (deterministic, unlike wall time): bytes per key of the
//! in-memory store and the in-memory limiter, reclamation of idle limiter state, and heap
//! allocations per call of the accept path next to a bare service and the reference pipeline.
//!
//! run: `cargo bench --bench memory` (N=100000 for a quicker run; default 1 000 000 keys)

mod reference;

use std::alloc::System;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use ark_auth::limit::{Answer, MemoryRateLimiter, Quota, RateLimiter};
use reference::*;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tower::Layer;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Net bytes of a region. (stats_alloc already counts a growing `realloc`'s difference in
/// `bytes_allocated` and a shrinking one's in `bytes_deallocated`; `bytes_reallocated` is the
/// same difference again, so it is not added.)
fn net_bytes(region: &Region<'_, System>) -> isize {
    let c = region.change();
    c.bytes_allocated as isize - c.bytes_deallocated as isize
}

/// Heap allocations per call of `svc` on `req`, over `calls` calls (responses dropped).
fn allocs_per_call<S>(mut svc: S, auth: Option<&str>, calls: usize) -> f64
where
    S: tower::Service<http::Request<ReqBody>>,
    S::Error: std::fmt::Debug,
{
    let reqs: Vec<_> = (0..calls).map(|_| typical_request(auth)).collect();
    let region = Region::new(GLOBAL);
    for req in reqs {
        drop(ready_call_now(&mut svc, req));
    }
    region.change().allocations as f64 / calls as f64
}

/// Resident set size of this process (`/proc/self/statm`, Linux), 0 elsewhere.
fn rss_bytes() -> i64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<i64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn main() {
    let n: u64 = std::env::var("N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);

    // What the "metadata aside" leaves: the fixture's records have an empty name, no
    // tenant and empty metadata, so nothing here is metadata content; only the inline
    // (empty) fields of `KeyRecord` count. The id (`key_<16 hex>`, 20 bytes) is not metadata:
    // the handler reads it from every `AuthenticatedKey`.
    println!(
        "size_of: KeyRecord {} B (in its Arc: +16), KeyHash {} B, AuthenticatedKey {} B",
        std::mem::size_of::<ark_auth::key::KeyRecord>(),
        std::mem::size_of::<ark_auth::key::KeyHash>(),
        std::mem::size_of::<ark_auth::AuthenticatedKey>()
    );

    // The store: records (with their id strings) built and moved in; the whole footprint,
    // counted by the allocator (requested bytes) and, as a cross-check, by RSS (which adds
    // malloc's per-allocation overhead).
    let rss0 = rss_bytes();
    let region = Region::new(GLOBAL);
    let store = ark_store(n);
    let store_bytes = net_bytes(&region);
    let rss1 = rss_bytes();
    // The records alone (structs and id strings, in a Vec), for the breakdown (after
    // the store, so that the RSS figure above is not memory these freed).
    let region = Region::new(GLOBAL);
    let records: Vec<ark_auth::key::KeyRecord> = (0..n).map(record).collect();
    let records_bytes = net_bytes(&region);
    drop(records);

    println!(
        "MemoryKeyStore: {n} keys, {:.0} bytes/key (records, ids, both maps; goal <= 160), of \
         which the records with their id strings {:.0} (as a Vec) and the maps and the Arcs \
         the rest; RSS growth {:.0} bytes/key",
        store_bytes as f64 / n as f64,
        records_bytes as f64 / n as f64,
        (rss1 - rss0) as f64 / n as f64
    );

    // The limiter: one active window per key (10, 100 and 1 000 per second: an inline
    // log, a log on the heap, the counter), then all idle and swept.
    let records = store.records();
    for limit in [10, 100, 1_000] {
        let limiter = MemoryRateLimiter::new();
        let quota = Quota::per_second(NonZeroU32::new(limit).unwrap()).into();
        let region = Region::new(GLOBAL);
        for r in &records {
            if let Answer::Later(_) = limiter.acquire(r, &quota) {
                unreachable!("the in-memory limiter answers now");
            }
        }
        let limiter_bytes = net_bytes(&region);
        println!(
            "MemoryRateLimiter, {limit} per second: {} active keys, {:.0} bytes/active key{}",
            limiter.tracked_keys(),
            limiter_bytes as f64 / records.len() as f64,
            if limit == 10 { " (goal <= 64)" } else { "" }
        );
        std::thread::sleep(Duration::from_millis(2_100));
        let region = Region::new(GLOBAL);
        limiter.sweep();
        println!(
            "after the keys went idle and a sweep: {} tracked keys, {:.0} bytes/key freed",
            limiter.tracked_keys(),
            -net_bytes(&region) as f64 / n as f64
        );
    }
    drop(records);

    // Allocations per call.
    let token = format!("Bearer {}", key_token(0));
    let calls = 10_000;
    let bare = allocs_per_call(inner(), Some(&token), calls);
    let reference = allocs_per_call(
        ModelAuthLayer {
            auth: Arc::new(RefAuthenticator::new(1_000)),
        }
        .layer(inner()),
        Some(&token),
        calls,
    );
    let ark = allocs_per_call(ark_layer(store.clone()).layer(inner()), Some(&token), calls);
    let unknown = format!("Bearer {}", key_token(UNKNOWN_KEY));
    let ark_401 = allocs_per_call(ark_layer(store).layer(inner()), Some(&unknown), calls);
    println!(
        "allocations per call: bare {bare:.2}, reference accept {reference:.2}, ark accept {ark:.2}, ark 401 unknown key {ark_401:.2}"
    );
}
