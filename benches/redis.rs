//! The Redis rate limiter's latency next to the in-memory limiter's: one check awaited at a
//! time (a request's view: one round trip plus the script), and 64 checks in flight at once
//! on the one multiplexed connection (a busy server's view: time per check).
//!
//! run: `REDIS_URL=redis://127.0.0.1:6379/ cargo bench --bench redis`
//! (without `REDIS_URL` only the in-memory limiter is measured).

use std::future::IntoFuture;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use ark_auth::redis::RedisRateLimiter;
use ark_auth::{
    key::{KeyHash, KeyRecord},
    limit::{MemoryRateLimiter, Quota, RateLimiter},
    Environment,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Every check admitted (and counted): the write path of the script.
fn quota() -> Quota {
    Quota::new(
        NonZeroU32::new(1_000_000_000).unwrap(),
        Duration::from_secs(1),
    )
}

fn keys() -> Vec<KeyRecord> {
    (0..64u8)
        .map(|i| {
            KeyRecord::new(
                format!("key_{i}"),
                KeyHash::from_bytes([i; 32]),
                Environment::Live,
            )
        })
        .collect()
}

/// `iters` checks of `l`, one at a time, timed inside the runtime.
fn sequential<L: RateLimiter>(
    rt: &tokio::runtime::Runtime,
    l: &L,
    key: &KeyRecord,
    peek: bool,
    iters: u64,
) -> Duration {
    rt.block_on(async {
        let q = quota();
        let start = Instant::now();
        for _ in 0..iters {
            let answer = if peek {
                l.peek(key, &q.into())
            } else {
                l.acquire(key, &q.into())
            };
            let d = answer.await.expect("limiter answers");
            std::hint::black_box(d);
        }
        start.elapsed()
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keys = keys();
    let mut g = c.benchmark_group("limiter");

    let memory = MemoryRateLimiter::new();
    g.bench_function("memory_acquire", |b| {
        b.iter_custom(|iters| sequential(&rt, &memory, &keys[0], false, iters))
    });

    let Some(url) = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty()) else {
        eprintln!("REDIS_URL is not set: only the in-memory limiter is measured");
        g.finish();
        return;
    };
    let redis = rt
        .block_on(RedisRateLimiter::connect(&url))
        .expect("connect to REDIS_URL")
        .key_prefix(format!("ark-auth-bench:{}:", std::process::id()));
    g.bench_function("redis_acquire", |b| {
        b.iter_custom(|iters| sequential(&rt, &redis, &keys[0], false, iters))
    });
    g.bench_function("redis_peek", |b| {
        b.iter_custom(|iters| sequential(&rt, &redis, &keys[0], true, iters))
    });

    // 64 checks (64 keys) in flight together; criterion reports time per check.
    g.throughput(Throughput::Elements(keys.len() as u64));
    g.bench_function("redis_acquire_64_in_flight", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let q = quota();
                let start = Instant::now();
                for _ in 0..iters {
                    let checks = keys
                        .iter()
                        .map(|k| redis.acquire(k, &q.into()).into_future());
                    for d in futures::future::join_all(checks).await {
                        std::hint::black_box(d.expect("limiter answers"));
                    }
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
