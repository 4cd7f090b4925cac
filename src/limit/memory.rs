//! [`MemoryRateLimiter`]: the window counters of every active key in one sharded table.

use std::future::Ready;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;

use super::entry::Entry;
use super::window::{Clock, Outcome};
use super::{LimitResult, Quotas, RateLimitDecision, RateLimiter};
use crate::answer::Answer;
use crate::key::{DigestHasher, KeyHash, KeyRecord};

/// How often, at most, idle keys are swept out of the in-memory limiter.
const SWEEP_EVERY_US: u64 = 5_000_000;

/// The in-memory limiter: a sharded map from key hash to each active key's windows.
///
/// # Algorithm: exact sliding window up to a limit of 128
///
/// For a limit `L` up to 128 the limiter keeps a log of the key's last `L` admission times
/// per window `W`: a request at `now` is admitted iff fewer than `L` admissions lie in
/// `(now − W, now]`. No interval of length `W`, wherever it starts, ever holds more than
/// `L` admitted requests, under any schedule (bursts at any instant, steady overload, many
/// threads: a check of all of a key's windows runs under one lock). Times are kept to the
/// window's resolution, `W / 2¹⁶` rounded up to a power of two microseconds (16 µs for a
/// second, 1 ms for a minute, 2.1 s for a day); an admission is counted from its time
/// rounded up to that resolution, so it counts up to one resolution step longer than `W`,
/// never shorter.
///
/// Headers: `X-RateLimit-Remaining` is `L` minus the admissions in the window,
/// `X-RateLimit-Reset` the Unix second (rounded up) when the newest of them leaves it (the
/// whole limit is free again), and `Retry-After` on a 429 the wait, rounded up to whole
/// seconds and at least one, until the admission that blocks leaves the window: a request
/// sent at either announced time is admitted (unless others were admitted meanwhile).
///
/// # Above 128: the sliding window counter
///
/// Larger limits keep two counters (the current fixed window's and the previous one's) and
/// estimate `previous × (1 − elapsed / W) + current`, the "sliding window" of Cloudflare's
/// and Upstash's limiters. It is exact for a burst and for evenly spread traffic; over an
/// arbitrary interval of length `W` it admits at most `2L − 1` (a full burst at the very
/// end of one window, then traffic early in the next, as the previous window's weight
/// fades).
///
/// # Memory
///
/// A key with one window and a limit up to 10 (the default's) or above 128 takes one table
/// entry of 40 bytes (8-byte key, 32 bytes of state; the table adds its control byte and
/// free buckets, 7/16 to 7/8 of it full: 54 bytes per active key measured at 100 000 keys).
/// Limits 11 to 128, and keys with several windows, put their logs on the heap (16-bit
/// times: 2 bytes per unit of the limit, plus 72 bytes per window; 326 bytes per active key
/// measured for 100 per second).
/// Keys are dropped once nothing of theirs counts any more (for an inline log: at most
/// 2¹⁶ resolution steps after its last admission, under two windows), by a sweep that
/// runs at most every 5 seconds, on the request that finds it due, and the table gives its
/// memory back once mostly empty.
///
/// Two keys whose digests share their first 64 bits would share counts; among a million
/// keys the chance is about 3 in 10^8, and nobody can aim for it without inverting SHA-256.
///
/// # One limit per key
///
/// Cloning shares the counters. [`MemoryRateLimiter::shared`] is one process-wide limiter,
/// and it is what [`ArkAuthLayer::new`](crate::ArkAuthLayer::new) uses: every layer of the
/// process built that way (one per route, several over clones of one store, over different
/// stores, over a custom [`KeyStore`](crate::store::KeyStore)) counts a key's requests in one place,
/// so a key limited to 10 per second gets 10 per second in total, not 10 per layer.
/// [`MemoryRateLimiter::new`] makes an independent limiter, for a layer that must not share
/// counts (two separate deployments in one test process, for example).
///
/// ```
/// use std::num::NonZeroU32;
/// use ark_auth::Environment;
/// use ark_auth::key::{KeyHash, KeyRecord};
/// use ark_auth::limit::{Answer, MemoryRateLimiter, Quota, RateLimiter};
///
/// let limiter = MemoryRateLimiter::new();
/// let quota = Quota::per_second(NonZeroU32::new(2).unwrap());
/// let key = KeyRecord::new("key_1", KeyHash::from_bytes([7; 32]), Environment::Live);
/// let check = |l: &MemoryRateLimiter| match l.acquire(&key, &quota.into()) {
///     Answer::Now(decision) => decision.unwrap(),
///     Answer::Later(_) => unreachable!("the in-memory limiter answers now"),
/// };
/// assert!(check(&limiter).allowed);
/// assert!(check(&limiter).allowed);
/// let third = check(&limiter);
/// assert!(!third.allowed);
/// assert_eq!(third.retry_after_secs(), 1);
/// ```
#[derive(Clone)]
pub struct MemoryRateLimiter {
    inner: Arc<LimiterInner>,
}

type EntryMap = DashMap<u64, Entry, BuildHasherDefault<DigestHasher>>;

struct LimiterInner {
    keys: EntryMap,
    clock: Clock,
    last_sweep: AtomicU64,
}

impl LimiterInner {
    /// Drops stale counters, and gives the memory back when the table has become mostly
    /// empty (after a burst of keys went idle), so idle keys cost nothing.
    fn sweep(&self, now: u64) {
        self.keys.retain(|_, e| e.stale_at() > now);
        if self.keys.len() * 4 < self.keys.capacity() {
            self.keys.shrink_to_fit();
        }
    }
}

impl MemoryRateLimiter {
    /// The process-wide limiter: every call returns a handle to the same counters (the
    /// default of [`ArkAuthLayer::new`](crate::ArkAuthLayer::new), so that however many
    /// layers a process builds, a key has one limit). Its memory follows the active keys:
    /// idle keys are swept out as for any other instance.
    ///
    /// ```
    /// use ark_auth::limit::MemoryRateLimiter;
    ///
    /// let a = MemoryRateLimiter::shared();
    /// let b = MemoryRateLimiter::shared();
    /// assert!(a.same_counters(&b));
    /// assert!(!a.same_counters(&MemoryRateLimiter::new()));
    /// ```
    pub fn shared() -> Self {
        static SHARED: OnceLock<MemoryRateLimiter> = OnceLock::new();
        SHARED.get_or_init(MemoryRateLimiter::new).clone()
    }

    /// Whether `self` and `other` count in the same place (clones of one limiter, or both
    /// [`MemoryRateLimiter::shared`]).
    pub fn same_counters(&self, other: &MemoryRateLimiter) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// An empty limiter of its own, sharing counts with nothing but its clones.
    pub fn new() -> Self {
        MemoryRateLimiter {
            inner: Arc::new(LimiterInner {
                keys: EntryMap::default(),
                clock: Clock::new(),
                last_sweep: AtomicU64::new(0),
            }),
        }
    }

    /// Number of keys with live counters.
    pub fn tracked_keys(&self) -> usize {
        self.inner.keys.len()
    }

    /// Drops the counters of keys idle for two windows. Runs by itself; public for tests and
    /// for callers that want to reclaim memory at a moment of their choosing.
    pub fn sweep(&self) {
        self.inner.sweep(self.inner.clock.now());
    }

    fn check(&self, key: &KeyHash, quotas: &Quotas, consume: bool) -> RateLimitDecision {
        let inner = &*self.inner;
        let now = inner.clock.now();
        let last = inner.last_sweep.load(Ordering::Relaxed);
        if now.saturating_sub(last) > SWEEP_EVERY_US
            && inner
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            inner.sweep(now);
        }
        let key = key.prefix();
        let mut out = [Outcome::default(); Quotas::MAX];
        match inner.keys.get_mut(&key) {
            Some(mut e) => e.check(now, quotas, consume, &mut out),
            None if consume => inner
                .keys
                .entry(key)
                .or_insert_with(|| Entry::new(quotas))
                .check(now, quotas, consume, &mut out),
            None => Entry::new(quotas).check(now, quotas, false, &mut out),
        }
        match quotas.as_slice() {
            [q] => inner.clock.decision(out[0], *q),
            qs => {
                let mut each = [RateLimitDecision::admitted(0, 0, 0); Quotas::MAX];
                for ((d, o), q) in each.iter_mut().zip(out).zip(qs) {
                    *d = inner.clock.decision(o, *q);
                }
                RateLimitDecision::combine(&each[..qs.len()]).unwrap_or(each[0])
            }
        }
    }
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRateLimiter")
            .field("tracked_keys", &self.tracked_keys())
            .finish()
    }
}

impl RateLimiter for MemoryRateLimiter {
    /// Never used: the in-memory limiter always answers now.
    type Future = Ready<LimitResult>;

    fn acquire(&self, key: &KeyRecord, quotas: &Quotas) -> Answer<LimitResult, Self::Future> {
        Answer::Now(Ok(self.check(key.hash(), quotas, true)))
    }

    fn peek(&self, key: &KeyRecord, quotas: &Quotas) -> Answer<LimitResult, Self::Future> {
        Answer::Now(Ok(self.check(key.hash(), quotas, false)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::Quota;
    use crate::token::Environment;
    use std::num::NonZeroU32;
    use std::time::Duration;

    #[test]
    fn idle_keys_are_swept() {
        let l = MemoryRateLimiter::new();
        let quota = Quota::new(NonZeroU32::new(5).unwrap(), Duration::from_millis(1));
        for i in 0..100u8 {
            let key = KeyRecord::new(
                format!("key_{i}"),
                KeyHash::from_bytes([i; 32]),
                Environment::Live,
            );
            drop(l.acquire(&key, &quota.into()));
        }
        assert_eq!(l.tracked_keys(), 100);
        let never = KeyRecord::new(
            "key_never",
            KeyHash::from_bytes([255; 32]),
            Environment::Live,
        );
        drop(l.peek(&never, &quota.into()));
        assert_eq!(l.tracked_keys(), 100, "peek stores nothing");
        // An inline log does not store its window: it is dropped at most 65 534 ticks after
        // its last admission (65 ms for windows up to 65 ms, under two windows above).
        std::thread::sleep(Duration::from_millis(70));
        let capacity = l.inner.keys.capacity();
        l.sweep();
        assert_eq!(l.tracked_keys(), 0);
        assert!(
            l.inner.keys.capacity() < capacity,
            "the table gives its memory back ({capacity} -> {})",
            l.inner.keys.capacity()
        );
    }
}
