//! What the in-memory limiter keeps per active key, counted by the allocator: the table's
//! entry (key, state and the table's own overhead) and whatever the state puts on the heap,
//! for limits of 10, 100 and 1 000 per second and for two windows (10 per second and
//! 10 000 per day, a default of several windows); and that it is given back once the keys
//! are idle.
//!
//! run: `cargo test --release --test limiter_memory -- --nocapture` (the figures are the
//! same in debug builds; release runs faster).
//!
//! `KEYS=1000000` measures at another number of keys (default 100 000), with windows of an
//! hour instead of a second: filling a million keys takes longer than a second in a debug
//! build, and the limiter's own sweep (every 5 s) would drop the first keys before the
//! count is taken. A key's state is the same size whatever its window's length (it depends
//! on the limit and the number of windows), so the figures are those of the per-second
//! limits; the reclaim after idling is checked at the default size only (it would take an
//! hour). The bound of 64 bytes for a limit of 10 is also asserted at the default only:
//! the table's free buckets depend on where the number of keys falls between two of its
//! sizes (each of its shards doubles when 7/8 full).
use std::alloc::System;
use std::time::Duration;

use ark_auth::key::{KeyHash, KeyRecord};
use ark_auth::limit::{Answer, MemoryRateLimiter, Quotas, RateLimiter};
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
fn bytes_per_key(limiter: &MemoryRateLimiter, keys: &[KeyRecord], quotas: &Quotas) -> f64 {
    let region = Region::new(GLOBAL);
    for k in keys {
        match limiter.acquire(k, quotas) {
            Answer::Now(d) => assert!(d.unwrap().allowed),
            Answer::Later(_) => unreachable!("the in-memory limiter answers now"),
        }
    }
    net(&region) as f64 / keys.len() as f64
}

const DEFAULT_KEYS: usize = 100_000;

#[test]
fn bytes_per_active_key_and_reclaimed_when_idle() {
    let n = std::env::var("KEYS")
        .ok()
        .map(|s| s.parse().expect("KEYS is a number of keys"))
        .unwrap_or(DEFAULT_KEYS);
    let default_size = n == DEFAULT_KEYS;
    let keys = records(n);
    let mut figures = Vec::new();
    for limits in ["10/s", "100/s", "1000/s", "10/s,10000/d"] {
        let limits = match default_size {
            true => limits.to_owned(),
            false => limits.replace("/s", "/h"),
        };
        let limiter = MemoryRateLimiter::new();
        let per_key = bytes_per_key(&limiter, &keys, &limits.parse().unwrap());
        assert_eq!(limiter.tracked_keys(), n, "{limits}: a sweep ran meanwhile");
        figures.push((limits, per_key, limiter));
    }
    let shards =
        (std::thread::available_parallelism().map_or(1, usize::from) * 4).next_power_of_two();
    for (limits, per_key, _) in &figures {
        println!("MemoryRateLimiter, {n} active keys ({shards} shards), {limits}: {per_key:.1} bytes/key");
    }
    if !default_size {
        return;
    }
    let ten = figures[0].1;
    assert!(
        ten <= 64.0,
        "limit 10: {ten:.1} bytes per active key (at most 64)"
    );

    // Idle: a sweep gives it all back once nothing counts any more (a log: a window and
    // its resolution after the last admission; the counter: up to two windows). The keys
    // with a daily window still count for a day: kept.
    std::thread::sleep(Duration::from_millis(2_100));
    let (daily, per_second) = figures.split_last().unwrap();
    daily.2.sweep();
    assert_eq!(daily.2.tracked_keys(), n, "the day window still counts");
    for (limits, per_key, limiter) in per_second {
        let region = Region::new(GLOBAL);
        limiter.sweep();
        let freed = -net(&region) as f64 / n as f64;
        println!("{limits}: the sweep freed {freed:.1} bytes/key");
        assert_eq!(limiter.tracked_keys(), 0);
        assert!(
            freed >= 0.9 * per_key,
            "{limits}: {freed:.1} of {per_key:.1} bytes/key given back"
        );
    }
}
