//! Per-key rate limiting: the [`RateLimiter`] trait and the in-memory [`MemoryRateLimiter`].

use std::future::{Future, Ready};
use std::hash::BuildHasherDefault;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;

use crate::answer::Answer;
use crate::key::{DigestHasher, KeyHash, KeyRecord};

/// A rate limit: `limit` requests per `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    limit: NonZeroU32,
    window: Duration,
}

impl Quota {
    /// The contract's default: 10 requests per second.
    pub const DEFAULT: Quota = Quota {
        limit: match NonZeroU32::new(10) {
            Some(n) => n,
            None => unreachable!(),
        },
        window: Duration::from_secs(1),
    };

    /// `limit` requests per second.
    pub const fn per_second(limit: NonZeroU32) -> Self {
        Quota {
            limit,
            window: Duration::from_secs(1),
        }
    }

    /// `limit` requests per `window` (a window under one millisecond is raised to one).
    pub fn new(limit: NonZeroU32, window: Duration) -> Self {
        Quota {
            limit,
            window: window.max(Duration::from_millis(1)),
        }
    }

    /// Requests allowed per window.
    pub const fn limit(&self) -> NonZeroU32 {
        self.limit
    }

    /// The window.
    pub const fn window(&self) -> Duration {
        self.window
    }

    pub(crate) fn window_us(&self) -> u64 {
        u64::try_from(self.window.as_micros()).unwrap_or(u64::MAX / 4)
    }
}

impl Default for Quota {
    fn default() -> Self {
        Quota::DEFAULT
    }
}

/// The state of one key's limit after a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitDecision {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// Requests allowed per window (`X-RateLimit-Limit`).
    pub limit: u32,
    /// Requests left now (`X-RateLimit-Remaining`).
    pub remaining: u32,
    /// Unix time, seconds, when the whole limit is free again (`X-RateLimit-Reset`).
    pub reset: u64,
    /// When refused: how long until one request would be admitted.
    pub retry_after: Option<Duration>,
}

impl RateLimitDecision {
    /// `Retry-After` in whole seconds: rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let d = self.retry_after.unwrap_or(Duration::from_secs(1));
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        secs.max(1)
    }
}

/// What a limiter's check yields.
pub type LimitResult = Result<RateLimitDecision, LimiterError>;

/// A boxed limiter future, for limiters that do real I/O.
pub type BoxLimit = Pin<Box<dyn Future<Output = LimitResult> + Send + 'static>>;

/// A rate limiter shared by all requests of a key. Same [`Answer`] shape as
/// [`KeyStore`](crate::KeyStore) and for the same reason.
///
/// A limiter keys its counters by the record's [`KeyRecord::hash`] (unique per key, and
/// already uniformly distributed) or by its [`KeyRecord::id`] (readable, for a shared store).
pub trait RateLimiter: Send + Sync + 'static {
    /// The future of a check answered later.
    type Future: Future<Output = LimitResult> + Send + 'static;

    /// Checks the limit of `key` and, when admitted, counts the request.
    fn acquire(&self, key: &KeyRecord, quota: Quota) -> Answer<LimitResult, Self::Future>;

    /// The current state of `key`'s limit, counting nothing (for the headers of a 403).
    fn peek(&self, key: &KeyRecord, quota: Quota) -> Answer<LimitResult, Self::Future>;
}

impl<L: RateLimiter + ?Sized> RateLimiter for Arc<L> {
    type Future = L::Future;
    fn acquire(&self, key: &KeyRecord, quota: Quota) -> Answer<LimitResult, Self::Future> {
        (**self).acquire(key, quota)
    }
    fn peek(&self, key: &KeyRecord, quota: Quota) -> Answer<LimitResult, Self::Future> {
        (**self).peek(key, quota)
    }
}

/// A rate limiter that could not answer.
#[derive(Debug, thiserror::Error)]
#[error("rate limiter failed: {source}")]
pub struct LimiterError {
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl LimiterError {
    /// Wraps the limiter's own error.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        LimiterError {
            source: source.into(),
        }
    }
}

/// One key's two counters. Times are microseconds since the limiter's epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct WindowState {
    window: u64,
    /// After this instant both counters are stale and the entry can be dropped.
    stale_at: u64,
    prev: u32,
    curr: u32,
}

/// The outcome of [`WindowState::check`], in microseconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) allowed: bool,
    pub(crate) remaining: u32,
    pub(crate) reset_at: u64,
    pub(crate) retry_after: Option<u64>,
}

impl WindowState {
    /// The counters of window `window` (a shared limiter's stored state).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn at(window: u64, prev: u32, curr: u32) -> Self {
        WindowState {
            window,
            stale_at: 0,
            prev,
            curr,
        }
    }

    /// The sliding-window step at `now`; counts the request when `consume` and admitted.
    pub(crate) fn check(&mut self, now: u64, quota: Quota, consume: bool) -> Outcome {
        let w = quota.window_us().max(1);
        let limit = quota.limit.get();
        let idx = now / w;
        let elapsed = now % w;
        if self.window != idx {
            self.prev = if idx == self.window.wrapping_add(1) {
                self.curr
            } else {
                0
            };
            self.curr = 0;
            self.window = idx;
        }
        let (w128, prev, curr) = (u128::from(w), u128::from(self.prev), u128::from(self.curr));
        let cap = u128::from(limit) * w128;
        let mut est = prev * u128::from(w - elapsed) + curr * w128;
        let allowed = est + w128 <= cap;
        if allowed && consume {
            self.curr = self.curr.saturating_add(1);
            est += w128;
        }
        let remaining = u32::try_from(cap.saturating_sub(est) / w128).unwrap_or(u32::MAX);
        let window_start = idx * w;
        let reset_at = if self.curr > 0 {
            window_start + 2 * w
        } else if self.prev > 0 {
            window_start + w
        } else {
            now
        };
        self.stale_at = window_start + 2 * w;
        let retry_after = (!allowed).then(|| {
            let need = est + w128 - cap;
            // Still inside this window, as the previous window's weight fades?
            if prev > 0 {
                let t = need.div_ceil(prev);
                if u128::from(elapsed) + t < w128 {
                    return t as u64;
                }
            }
            // Early in the next window, where the current count becomes the fading one:
            // curr × (w − e) + w ≤ cap.
            let e = (cap - w128)
                .checked_div(curr)
                .map_or(0, |x| w128.saturating_sub(x));
            (w - elapsed) + e as u64
        });
        Outcome {
            allowed,
            remaining,
            reset_at,
            retry_after,
        }
    }
}

/// Microseconds since an epoch, and the Unix time of that epoch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    epoch: Instant,
    epoch_unix_us: u64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clock {
            epoch: Instant::now(),
            epoch_unix_us: u64::try_from(unix.as_micros()).unwrap_or(0),
        }
    }

    pub(crate) fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX / 4)
    }

    pub(crate) fn decision(&self, o: Outcome, quota: Quota) -> RateLimitDecision {
        decision_at(self.epoch_unix_us, o, quota)
    }
}

/// The decision for an outcome whose times count microseconds from the Unix time
/// `epoch_unix_us` (0 when they are Unix times already, as a shared limiter's server clock).
pub(crate) fn decision_at(epoch_unix_us: u64, o: Outcome, quota: Quota) -> RateLimitDecision {
    RateLimitDecision {
        allowed: o.allowed,
        limit: quota.limit.get(),
        remaining: o.remaining,
        reset: (epoch_unix_us + o.reset_at).div_ceil(1_000_000),
        retry_after: o.retry_after.map(Duration::from_micros),
    }
}

/// How often, at most, idle keys are swept out of the in-memory limiter.
const SWEEP_EVERY_US: u64 = 5_000_000;

/// The in-memory limiter: a sharded map from key hash to two counters (32-byte key and 24
/// bytes of state per active key).
///
/// # Algorithm: sliding window counter
///
/// Each key has a counter for the current fixed window and the count of the previous one.
/// A request at `elapsed` into the current window sees the estimate
/// `previous × (1 − elapsed / window) + current` and is admitted when the estimate plus
/// itself stays within the limit. This is the "sliding window" of Cloudflare's and
/// Upstash's limiters: two counters per key instead of a log of timestamps, exact for a
/// burst (never more than `limit` admitted at once) and for evenly spread traffic, and
/// within 2× of the limit over an arbitrary one-window span in the worst case (a full
/// burst at the very end of one window followed by traffic early in the next).
///
/// Headers: `X-RateLimit-Remaining` is `limit − ⌈estimate⌉`, `X-RateLimit-Reset` is the
/// Unix second (rounded up) at which the estimate is back to zero (the whole limit is free
/// again), and `Retry-After` on a 429 is the wait, rounded up to whole seconds and at least
/// one, until one request would be admitted.
///
///
/// Keys idle for two windows are dropped by a sweep that runs at most every 5 seconds, on
/// the request that finds it due, and the table gives its memory back once mostly empty.
///
/// # One limit per key
///
/// Cloning shares the counters. [`MemoryRateLimiter::shared`] is one process-wide limiter,
/// and it is what [`ArkAuthLayer::new`](crate::ArkAuthLayer::new) uses: every layer of the
/// process built that way (one per route, several over clones of one store, over different
/// stores, over a custom [`KeyStore`](crate::KeyStore)) counts a key's requests in one place,
/// so a key limited to 10 per second gets 10 per second in total, not 10 per layer.
/// [`MemoryRateLimiter::new`] makes an independent limiter, for a layer that must not share
/// counts (two separate deployments in one test process, for example).
///
/// ```
/// use std::num::NonZeroU32;
/// use ark_auth::{Answer, Environment, KeyHash, KeyRecord, MemoryRateLimiter, Quota, RateLimiter};
///
/// let limiter = MemoryRateLimiter::new();
/// let quota = Quota::per_second(NonZeroU32::new(2).unwrap());
/// let key = KeyRecord::new("key_1", KeyHash::from_bytes([7; 32]), Environment::Live);
/// let check = |l: &MemoryRateLimiter| match l.acquire(&key, quota) {
///     Answer::Now(decision) => decision.unwrap(),
///     Answer::Later(_) => unreachable!("the in-memory limiter answers now"),
/// };
/// assert!(check(&limiter).allowed);
/// assert!(check(&limiter).allowed);
/// let third = check(&limiter);
/// assert!(!third.allowed);
/// assert!(third.retry_after_secs() >= 1);
/// ```
#[derive(Clone)]
pub struct MemoryRateLimiter {
    inner: Arc<LimiterInner>,
}

/// What the limiter keeps per active key: 16 bytes, under the first 8 bytes of the key's
/// hash (a table bucket of 24 bytes). Two keys whose digests share their first 64 bits would
/// share counters; among a million keys the chance is about 3 in 10^8, and nobody can aim
/// for it without inverting SHA-256.
#[derive(Clone, Copy, Default)]
struct Counters {
    /// When both counters are stale: `(window + 2) × window length`, so the window index is
    /// `stale_at / window length − 2` (any other quota finds it stale and starts afresh).
    stale_at: u64,
    prev: u32,
    curr: u32,
}

impl Counters {
    fn step(&mut self, now: u64, quota: Quota, consume: bool) -> Outcome {
        let mut st = WindowState {
            window: (self.stale_at / quota.window_us().max(1)).wrapping_sub(2),
            stale_at: self.stale_at,
            prev: self.prev,
            curr: self.curr,
        };
        let outcome = st.check(now, quota, consume);
        *self = Counters {
            stale_at: st.stale_at,
            prev: st.prev,
            curr: st.curr,
        };
        outcome
    }
}

type CounterMap = DashMap<u64, Counters, BuildHasherDefault<DigestHasher>>;

struct LimiterInner {
    keys: CounterMap,
    clock: Clock,
    last_sweep: AtomicU64,
}

impl LimiterInner {
    /// Drops stale counters, and gives the memory back when the table has become mostly
    /// empty (after a burst of keys went idle), so idle keys cost nothing.
    fn sweep(&self, now: u64) {
        self.keys.retain(|_, st| st.stale_at > now);
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
    /// use ark_auth::MemoryRateLimiter;
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
                keys: CounterMap::default(),
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

    fn check(&self, key: &KeyHash, quota: Quota, consume: bool) -> RateLimitDecision {
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
        let outcome = match inner.keys.get_mut(&key) {
            Some(mut c) => c.step(now, quota, consume),
            None if consume => inner.keys.entry(key).or_default().step(now, quota, consume),
            None => Counters::default().step(now, quota, false),
        };
        inner.clock.decision(outcome, quota)
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

    fn acquire(&self, key: &KeyRecord, quota: Quota) -> Answer<LimitResult, Self::Future> {
        Answer::Now(Ok(self.check(key.hash(), quota, true)))
    }

    fn peek(&self, key: &KeyRecord, quota: Quota) -> Answer<LimitResult, Self::Future> {
        Answer::Now(Ok(self.check(key.hash(), quota, false)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::Environment;

    const S: u64 = 1_000_000;

    fn q(n: u32) -> Quota {
        Quota::per_second(NonZeroU32::new(n).unwrap())
    }

    #[test]
    fn burst_is_capped_at_limit() {
        let mut st = WindowState::default();
        let t0 = 100 * S + 10;
        let admitted = (0..25)
            .filter(|_| st.check(t0, q(10), true).allowed)
            .count();
        assert_eq!(admitted, 10);
        let o = st.check(t0, q(10), true);
        assert_eq!(o.remaining, 0);
        // Must wait until the previous window's weight has faded enough: at 0.1 s into
        // the next window 10 × 0.9 = 9 → one more is admitted.
        let wait = o.retry_after.unwrap();
        assert_eq!(t0 + wait, 101 * S + S / 10);
        assert!(!st.check(t0 + wait - 1, q(10), true).allowed);
        assert!(st.check(t0 + wait, q(10), true).allowed);
    }

    #[test]
    fn remaining_counts_down_and_peek_counts_nothing() {
        let mut st = WindowState::default();
        let t = 5 * S;
        assert_eq!(st.check(t, q(3), false).remaining, 3);
        assert_eq!(st.check(t, q(3), true).remaining, 2);
        assert_eq!(st.check(t, q(3), false).remaining, 2);
        assert_eq!(st.check(t, q(3), true).remaining, 1);
        assert_eq!(st.check(t, q(3), true).remaining, 0);
        let refused = st.check(t, q(3), true);
        assert!(!refused.allowed);
        assert_eq!(refused.reset_at, 7 * S);
    }

    #[test]
    fn sliding_estimate_across_boundary() {
        let mut st = WindowState::default();
        for _ in 0..10 {
            assert!(st.check(10 * S + S / 2, q(10), true).allowed);
        }
        // Half-way into the next window: estimate 10 × 0.5 = 5 → 5 more.
        let admitted = (0..10)
            .filter(|_| st.check(11 * S + S / 2, q(10), true).allowed)
            .count();
        assert_eq!(admitted, 5);
        // Two windows later everything is free again.
        assert_eq!(st.check(13 * S, q(10), false).remaining, 10);
    }

    #[test]
    fn limit_one_waits_for_whole_fade() {
        let mut st = WindowState::default();
        assert!(st.check(3 * S, q(1), true).allowed);
        let o = st.check(3 * S, q(1), true);
        assert!(!o.allowed);
        assert_eq!(3 * S + o.retry_after.unwrap(), 5 * S);
    }

    #[test]
    fn retry_after_never_zero_seconds() {
        let d = RateLimitDecision {
            allowed: false,
            limit: 1,
            remaining: 0,
            reset: 0,
            retry_after: Some(Duration::from_millis(1)),
        };
        assert_eq!(d.retry_after_secs(), 1);
        let d = RateLimitDecision {
            retry_after: Some(Duration::from_millis(1500)),
            ..d
        };
        assert_eq!(d.retry_after_secs(), 2);
    }

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
            drop(l.acquire(&key, quota));
        }
        assert_eq!(l.tracked_keys(), 100);
        let never = KeyRecord::new(
            "key_never",
            KeyHash::from_bytes([255; 32]),
            Environment::Live,
        );
        drop(l.peek(&never, quota));
        assert_eq!(l.tracked_keys(), 100, "peek stores nothing");
        std::thread::sleep(Duration::from_millis(5));
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
