//! A rate limiter shared by a fleet through Redis: [`RedisRateLimiter`] (feature `redis`).
//!
//! ```no_run
//! use ark_auth::redis::RedisRateLimiter;
//! use ark_auth::{ArkAuthLayer, LimiterFailure, MemoryKeyStore};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), ark_auth::LimiterError> {
//! let limiter = RedisRateLimiter::connect("redis://127.0.0.1:6379/")
//!     .await?
//!     .key_prefix("my-api:rl:")
//!     .timeout(Duration::from_millis(100));
//! let layer = ArkAuthLayer::new(MemoryKeyStore::new())
//!     .rate_limiter(limiter)
//!     // The default is `Allow`: serve without rate-limit headers while Redis is down.
//!     .on_limiter_failure(LimiterFailure::Refuse);
//! # let _ = layer; Ok(()) }
//! ```
//!
//! # Algorithm and accuracy
//!
//! The same sliding window counter as [`MemoryRateLimiter`](crate::MemoryRateLimiter)
//! (previous window's count weighted by how much of it still overlaps, plus the current
//! window's count), run by one Lua script on the server: the read, the verdict and the
//! increment are one atomic step, so N instances sharing one Redis admit at most the key's
//! limit per window in total, exactly as one in-memory limiter would. The clock is the
//! server's (`TIME`), so instances with skewed clocks agree on the windows. The script
//! returns the counters it saw and the limiter computes `X-RateLimit-Remaining`,
//! `X-RateLimit-Reset` and `Retry-After` from them with the in-memory limiter's own code:
//! the same [`RateLimitDecision`] for the same counters. The script's arithmetic is exact
//! while `limit × window` stays under 2⁵³ microseconds (limit × window-in-seconds under
//! 9·10⁹: any per-second limit).
//!
//! One Redis hash per key *id* (`{prefix}{id}`, fields `w`, `p`, `c`), with an expiry at the
//! end of the window after next, so an idle key leaves nothing behind. A peek (the headers
//! of a 403) writes nothing. The script touches one key, so it also runs on Redis Cluster.
//!
//! # When Redis is down or slow
//!
//! Each check has its own deadline, [`DEFAULT_REDIS_TIMEOUT`] (150 ms) unless set with
//! [`RedisRateLimiter::timeout`], well under the layer's 2 s deadline: a hung Redis costs a
//! request at most that. The check then fails with a [`LimiterError`] and the layer applies
//! its [`LimiterFailure`](crate::LimiterFailure) policy: by default the request is served
//! without rate-limit headers and the failure logged; with `Refuse` it is answered 503.
//!
//! After a connection failure or a timeout the limiter stops asking Redis for a
//! *cooldown* ([`DEFAULT_FAILURE_COOLDOWN`], 1 s, see [`RedisRateLimiter::failure_cooldown`]):
//! checks fail at once, so an outage does not add the timeout to every request. Then one
//! check probes Redis; while it is out, the others keep failing at once. The connection is
//! a redis-rs `ConnectionManager`, which reconnects by itself: when Redis is back, the limiter
//! works again within about two cooldowns, without a restart. Counters stored in a Redis
//! that lost its data start from zero.
//!
//! # Connection
//!
//! One multiplexed connection per limiter (clones share it): requests are pipelined on one
//! socket, so no pool is needed. Needs Redis 5 or later (or a compatible server such as
//! Valkey) and a tokio runtime with timers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::answer::Answer;
use crate::key::KeyRecord;
use crate::rate_limit::{
    decision_at, BoxLimit, LimitResult, LimiterError, Quota, RateLimitDecision, RateLimiter,
    WindowState,
};

/// Default deadline of one check against Redis.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(150);

/// Default time the limiter stops asking Redis after a connection failure or a timeout.
pub const DEFAULT_FAILURE_COOLDOWN: Duration = Duration::from_secs(1);

/// Default prefix of the limiter's Redis keys.
pub const DEFAULT_KEY_PREFIX: &str = "ark-auth:rl:";

/// Deadline of one attempt to (re)connect, off the request path.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The sliding window counter of `WindowState::check`, atomically, on the server's clock.
///
/// KEYS[1]: the key's counters, a hash {w = window index, p = previous count, c = current}.
/// ARGV: window in µs, limit, "1" to count an admitted request ("0": peek, write nothing).
/// Returns {now in µs since the Unix epoch, window index, previous count, current count
/// before this request, 1 if admitted else 0}.
const SCRIPT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local w = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local idx = math.floor(now / w)
if idx * w > now then idx = idx - 1 elseif (idx + 1) * w <= now then idx = idx + 1 end
local st = redis.call('HMGET', KEYS[1], 'w', 'p', 'c')
local sw = tonumber(st[1])
local p = tonumber(st[2]) or 0
local c = tonumber(st[3]) or 0
if sw ~= idx then
  if sw ~= nil and sw + 1 == idx then p = c else p = 0 end
  c = 0
end
local elapsed = now - idx * w
local allowed = 0
if p * (w - elapsed) + (c + 1) * w <= limit * w then allowed = 1 end
if allowed == 1 and ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'w', idx, 'p', p, 'c', c + 1)
  redis.call('PEXPIRE', KEYS[1], math.ceil(((idx + 2) * w - now) / 1000))
end
return {now, idx, p, c, allowed}
";

/// A [`RateLimiter`] whose counters live in Redis, shared by every instance using the same
/// Redis and key prefix. See the [module docs](self) for the algorithm and the failure
/// behaviour.
///
/// Cloning is cheap and shares the connection and the circuit breaker.
#[derive(Clone)]
pub struct RedisRateLimiter {
    conn: ConnectionManager,
    script: Arc<::redis::Script>,
    prefix: Arc<str>,
    timeout: Duration,
    breaker: Arc<Breaker>,
}

impl RedisRateLimiter {
    /// Connects to the Redis at `url` (`redis://[:password@]host[:port][/db]`, or
    /// `redis+unix:///path`). Fails when the URL is invalid or Redis cannot be reached
    /// (after a few quick retries); later outages are handled without failing the limiter.
    pub async fn connect(url: &str) -> Result<RedisRateLimiter, LimiterError> {
        let conn = ConnectionManager::new_with_config(client(url)?, manager_config())
            .await
            .map_err(LimiterError::new)?;
        Ok(Self::with_connection(conn))
    }

    /// Like [`connect`](Self::connect), but connects on the first check instead of now, so
    /// a service can start while Redis is down (its checks fail, and the layer applies its
    /// failure policy, until Redis is reachable). Fails only on an invalid URL. Must be
    /// called inside a tokio runtime.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let limiter = ark_auth::redis::RedisRateLimiter::connect_lazy("redis://127.0.0.1:6379/")
    ///     .expect("a valid URL");
    /// # let _ = limiter; }
    /// ```
    pub fn connect_lazy(url: &str) -> Result<RedisRateLimiter, LimiterError> {
        let conn = ConnectionManager::new_lazy_with_config(client(url)?, manager_config())
            .map_err(LimiterError::new)?;
        Ok(Self::with_connection(conn))
    }

    fn with_connection(conn: ConnectionManager) -> Self {
        RedisRateLimiter {
            conn,
            script: Arc::new(::redis::Script::new(SCRIPT)),
            prefix: Arc::from(DEFAULT_KEY_PREFIX),
            timeout: DEFAULT_REDIS_TIMEOUT,
            breaker: Arc::new(Breaker::new(DEFAULT_FAILURE_COOLDOWN)),
        }
    }

    /// Prefix of the Redis keys (default [`DEFAULT_KEY_PREFIX`]); a key's counters are at
    /// `{prefix}{key id}`. Instances that must share limits use the same prefix.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Arc::from(prefix.into());
        self
    }

    /// Deadline of one check (default [`DEFAULT_REDIS_TIMEOUT`], 150 ms). Keep it well
    /// under the layer's timeout so a hung Redis falls back to the failure policy instead
    /// of the layer's own 503.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long checks fail at once, without asking Redis, after a connection failure or
    /// a timeout (default [`DEFAULT_FAILURE_COOLDOWN`], 1 s). `Duration::ZERO` asks Redis
    /// on every check.
    pub fn failure_cooldown(mut self, cooldown: Duration) -> Self {
        self.breaker = Arc::new(Breaker::new(cooldown));
        self
    }

    /// The prefix of the Redis keys.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn check(&self, key: &KeyRecord, quota: Quota, consume: bool) -> Answer<LimitResult, BoxLimit> {
        if !self.breaker.admit() {
            return Answer::Now(Err(LimiterError::new(RedisUnavailable::CoolingDown)));
        }
        let mut conn = self.conn.clone();
        let script = self.script.clone();
        let breaker = self.breaker.clone();
        let timeout = self.timeout;
        let redis_key = format!("{}{}", self.prefix, key.id());
        Answer::Later(Box::pin(async move {
            let mut call = script.key(redis_key);
            call.arg(quota.window_us())
                .arg(quota.limit().get())
                .arg(u8::from(consume));
            let result =
                tokio::time::timeout(timeout, call.invoke_async::<Counters>(&mut conn)).await;
            match result {
                Ok(Ok(counters)) => {
                    breaker.success();
                    decide(counters, quota, consume)
                }
                Ok(Err(e)) => {
                    if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                        breaker.failure();
                    }
                    Err(LimiterError::new(e))
                }
                Err(_) => {
                    breaker.failure();
                    Err(LimiterError::new(RedisUnavailable::Timeout(timeout)))
                }
            }
        }))
    }
}

impl std::fmt::Debug for RedisRateLimiter {
    /// Never shows the URL (it may carry a password).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("failure_cooldown", &self.breaker.cooldown)
            .finish_non_exhaustive()
    }
}

impl RateLimiter for RedisRateLimiter {
    type Future = BoxLimit;

    /// Checks and counts, in Redis. Answers now (an error) only while cooling down after a
    /// failure.
    fn acquire(&self, key: &KeyRecord, quota: Quota) -> Answer<LimitResult, BoxLimit> {
        self.check(key, quota, true)
    }

    /// Reads the counters, writing nothing.
    fn peek(&self, key: &KeyRecord, quota: Quota) -> Answer<LimitResult, BoxLimit> {
        self.check(key, quota, false)
    }
}

/// What the script returns: now (µs, Unix), window index, previous and current counts
/// before this request, admitted (0/1).
type Counters = (u64, u64, u64, u64, u8);

fn client(url: &str) -> Result<::redis::Client, LimiterError> {
    ::redis::Client::open(url).map_err(LimiterError::new)
}

/// Reconnection off the request path: each attempt bounded, a few quick retries, then the
/// next check after the cooldown starts another round.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500))
}

/// The decision for the counters the script saw, by the in-memory limiter's arithmetic.
fn decide(
    (now, window, prev, curr, admitted): Counters,
    quota: Quota,
    consume: bool,
) -> Result<RateLimitDecision, LimiterError> {
    let count =
        |n: u64| u32::try_from(n).map_err(|_| LimiterError::new(RedisUnavailable::BadReply));
    let mut outcome =
        WindowState::at(window, count(prev)?, count(curr)?).check(now, quota, consume);
    let admitted = admitted == 1;
    // Only beyond the script's exact range (limit × window ≥ 2⁵³ µs) could the two differ:
    // the server's verdict is the one that was counted.
    if outcome.allowed != admitted {
        outcome.allowed = admitted;
        if admitted {
            outcome.retry_after = None;
        } else {
            outcome.remaining = 0;
            outcome.retry_after = Some(outcome.retry_after.unwrap_or(1_000_000));
        }
    }
    Ok(decision_at(0, outcome, quota))
}

/// Why the limiter did not get an answer from Redis.
#[derive(Debug, thiserror::Error)]
enum RedisUnavailable {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis failed recently; not asked again until the cooldown ends")]
    CoolingDown,
    #[error("unexpected reply from the rate-limit script")]
    BadReply,
}

/// A small circuit breaker: after a failure, checks fail at once for `cooldown`; then one
/// check probes Redis while the others keep failing at once.
struct Breaker {
    cooldown: Duration,
    epoch: Instant,
    /// Milliseconds since `epoch` until which Redis is not asked; 0 when Redis is healthy.
    open_until: AtomicU64,
}

impl Breaker {
    fn new(cooldown: Duration) -> Self {
        Breaker {
            cooldown,
            epoch: Instant::now(),
            open_until: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX / 2)
    }

    fn reopen_at(&self, now: u64) -> u64 {
        let cooldown = u64::try_from(self.cooldown.as_millis()).unwrap_or(u64::MAX / 4);
        (now + cooldown).max(1)
    }

    /// Whether this check may ask Redis.
    fn admit(&self) -> bool {
        let until = self.open_until.load(Ordering::Relaxed);
        if until == 0 || self.cooldown.is_zero() {
            return true;
        }
        let now = self.now_ms();
        // Cooled down: the first to claim the probe asks Redis, pushing the others back.
        now >= until
            && self
                .open_until
                .compare_exchange(
                    until,
                    self.reopen_at(now),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    fn success(&self) {
        // A load first: no write to the shared line on the healthy path.
        if self.open_until.load(Ordering::Relaxed) != 0
            && self.open_until.swap(0, Ordering::Relaxed) != 0
        {
            tracing::info!("ark-auth: redis rate limiter reachable again");
        }
    }

    fn failure(&self) {
        if self.cooldown.is_zero() {
            return;
        }
        let until = self.reopen_at(self.now_ms());
        if self.open_until.swap(until, Ordering::Relaxed) == 0 {
            tracing::warn!(
                cooldown = ?self.cooldown,
                "ark-auth: redis rate limiter failed; not asking redis during the cooldown"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    #[test]
    fn breaker_cools_down_then_lets_one_probe_through() {
        let b = Breaker::new(Duration::from_millis(30));
        assert!(b.admit());
        b.failure();
        assert!(!b.admit(), "open right after a failure");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.admit(), "one probe after the cooldown");
        assert!(!b.admit(), "only one");
        b.success();
        assert!(b.admit() && b.admit(), "closed after a success");
    }

    #[test]
    fn zero_cooldown_never_opens() {
        let b = Breaker::new(Duration::ZERO);
        b.failure();
        assert!(b.admit());
    }

    #[test]
    fn decide_matches_the_memory_arithmetic() {
        let quota = Quota::per_second(NonZeroU32::new(10).unwrap());
        let now = 1_764_000_000_250_000; // 0.25 s into a window
        let window = now / 1_000_000;
        // 8 last window, 2 this window: estimate 8 × 0.75 + 2 = 8 → admitted, 1 left.
        let d = decide((now, window, 8, 2, 1), quota, true).unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 1);
        assert_eq!(d.limit, 10);
        assert_eq!(d.reset, window + 2);
        // 10 last window, 3 this window: refused; 10 × (1 − e) + 3 + 1 ≤ 10 at e = 0.4.
        let d = decide((now, window, 10, 3, 0), quota, true).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Some(Duration::from_millis(150)));
        assert_eq!(d.retry_after_secs(), 1);
    }
}
