//! What the in-memory limiter keeps per active key, counted by the allocator: the table's
//! entry (key, state and the table's own overhead) and whatever the state puts on the heap,
//! for limits of 10, 100 and 1 000 per second; and that it is given back once the keys are
//! idle.
//!
//! run: `cargo test --release --test limiter_memory -- --nocapture` (the figures are the
//! same in debug builds; release runs faster)

use std::alloc::System;
use std::num::NonZeroU32;
use std::time::Duration;

use ark_auth::key::{KeyHash, KeyRecord};
use ark_auth::limit::{Answer, MemoryRateLimiter, Quota, RateLimiter};
use ark_auth::Environment;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn net(region: &Region<'_, System>) -> isize {
    let c = region.change();
    c.bytes_allocated as isize - c.bytes_deallocated as isize
}

fn records(n: usize) -> Vec<KeyRecord> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..n)
        .map(|i| {
            let mut bytes = [0u8; 32];
            rng.fill(&mut bytes);
            KeyRecord::new(
                format!("key_{i:016x}"),
                KeyHash::from_bytes(bytes),
                Environment::Live,
            )
        })
        .collect()
}

/// Bytes per active key of `limiter` after one admitted request of each of `keys`.
fn bytes_per_key(limiter: &MemoryRateLimiter, keys: &[KeyRecord], limit: u32) -> f64 {
    let quota = Quota::per_second(NonZeroU32::new(limit).unwrap()).into();
    let region = Region::new(GLOBAL);
    for k in keys {
        match limiter.acquire(k, &quota) {
            Answer::Now(d) => assert!(d.unwrap().allowed),
            Answer::Later(_) => unreachable!("the in-memory limiter answers now"),
        }
    }
    net(&region) as f64 / keys.len() as f64
}

#[test]
fn bytes_per_active_key_and_reclaimed_when_idle() {
    let n = 100_000;
    let keys = records(n);
    let mut figures = Vec::new();
    for limit in [10, 100, 1_000] {
        let limiter = MemoryRateLimiter::new();
        let per_key = bytes_per_key(&limiter, &keys, limit);
        assert_eq!(limiter.tracked_keys(), n);
        figures.push((limit, per_key, limiter));
    }
    for (limit, per_key, _) in &figures {
        println!("MemoryRateLimiter, {n} active keys, {limit} per second: {per_key:.1} bytes/key");
    }
    let ten = figures[0].1;
    assert!(
        ten <= 64.0,
        "limit 10: {ten:.1} bytes per active key (at most 64)"
    );

    // Idle: a sweep gives it all back once nothing counts any more (a log: a window and
    // its resolution after the last admission; the counter: up to two windows).
    std::thread::sleep(Duration::from_millis(2_100));
    for (limit, per_key, limiter) in &figures {
        let region = Region::new(GLOBAL);
        limiter.sweep();
        let freed = -net(&region) as f64 / n as f64;
        println!("limit {limit}: the sweep freed {freed:.1} bytes/key");
        assert_eq!(limiter.tracked_keys(), 0);
        assert!(
            freed >= 0.9 * per_key,
            "limit {limit}: {freed:.1} of {per_key:.1} bytes/key given back"
        );
    }
}
