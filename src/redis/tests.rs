//! The Redis limiter against the model of the exact sliding window, on a controlled clock
//! (the script's test-only time argument): two limiters, each with its own connection,
//! share one Redis and take turns. Needs `REDIS_URL` (skipped with a printed reason without
//! it, a failure under `CI=true`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use proptest::prelude::*;

use super::RedisRateLimiter;
use crate::key::{KeyHash, KeyRecord};
use crate::limit::model_tests::{max_in_window, quota, quotas, run_with, times};
use crate::limit::{Quotas, RateLimitDecision, RateLimiter};
use crate::token::Environment;

impl RedisRateLimiter {
    /// The controlled clock, when set.
    pub(super) fn clock_arg(&self) -> String {
        self.test_clock
            .as_ref()
            .map_or_else(String::new, |c| c.load(Ordering::Relaxed).to_string())
    }
}

fn redis_url() -> Option<String> {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("REDIS_URL is not set, and CI=true: the Redis tests must run")
        }
        _ => {
            eprintln!("skipping: REDIS_URL is not set (e.g. REDIS_URL=redis://127.0.0.1:6379/)");
            None
        }
    }
}

/// Two limiters on their own connections, one prefix, one controlled clock.
struct Pair {
    rt: tokio::runtime::Runtime,
    limiters: [RedisRateLimiter; 2],
    clock: Arc<AtomicU64>,
}

impl Pair {
    fn new(url: &str) -> Pair {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let clock = Arc::new(AtomicU64::new(1));
        let prefix = format!("ark-auth-test:model:{}:", fastrand::u64(..));
        let limiters = [0, 1].map(|_| {
            let mut l = rt
                .block_on(RedisRateLimiter::connect(url))
                .expect("REDIS_URL reachable")
                .key_prefix(prefix.clone());
            l.test_clock = Some(clock.clone());
            l
        });
        Pair {
            rt,
            limiters,
            clock,
        }
    }

    fn acquire(&self, i: usize, key: &KeyRecord, quotas: &Quotas, now: u64) -> RateLimitDecision {
        self.clock.store(now, Ordering::Relaxed);
        let l = &self.limiters[i % 2];
        self.rt
            .block_on(async { l.acquire(key, quotas).await })
            .expect("Redis answers")
    }
}

fn key() -> KeyRecord {
    let n = fastrand::u64(..);
    KeyRecord::new(
        format!("key_{n:016x}"),
        KeyHash::from_bytes([7; 32]),
        Environment::Live,
    )
}

/// A Unix time in µs (the script's arithmetic on doubles must stay exact there).
const NOW: u64 = 1_764_000_000_000_000;

fn run_pair(pair: &Pair, q: &Quotas, ts: &[u64]) -> Vec<u64> {
    let k = key();
    let mut i = 0;
    run_with(q, ts, |now| {
        i += 1;
        pair.acquire(i, &k, q, now)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn two_limiters_on_one_redis_match_the_model(
        q in quotas(),
        start in 0u64..100_000_000_000,
        gaps in prop::collection::vec(prop_oneof![Just(0u64), 0u64..2_000, 0u64..2_000_000], 1..150),
    ) {
        let Some(url) = redis_url() else { return Ok(()) };
        let pair = Pair::new(&url);
        let admitted = run_pair(&pair, &q, &times(NOW + start, &gaps));
        for quota in &q {
            let w = quota.window().as_micros() as u64;
            prop_assert!(max_in_window(&admitted, w) <= quota.limit().get() as usize);
        }
    }

    #[test]
    fn two_limiters_burst_before_a_boundary_and_steady_overload(
        limit in 1u32..=128,
        window_ms in prop_oneof![Just(1_000u64), Just(60_000), 1u64..3_000],
        before in 1u64..1_000,
    ) {
        let Some(url) = redis_url() else { return Ok(()) };
        let pair = Pair::new(&url);
        let w = window_ms * 1_000;
        let q = Quotas::one(quota(limit, window_ms));
        // A burst just before a boundary, then steady traffic at three times the limit.
        let boundary = (NOW / w + 1) * w;
        let t0 = boundary - before.min(w - 1);
        let mut ts = vec![t0; limit as usize];
        let gap = (w / (3 * u64::from(limit))).max(1);
        ts.extend((1..).map(|i| t0 + i * gap).take_while(|&t| t < t0 + 3 * w).take(400));
        let admitted = run_pair(&pair, &q, &ts);
        prop_assert_eq!(max_in_window(&admitted, w), limit as usize);
    }
}
