//! A rate limiter shared by a fleet through Redis: [`RedisRateLimiter`] (feature `redis`).
//!
//! ```no_run
//! use ark_auth::redis::RedisRateLimiter;
//! use ark_auth::{ArkAuthLayer, LimiterFailure, MemoryKeyStore};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), ark_auth::limit::LimiterError> {
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
//! The same sliding window counter as [`MemoryRateLimiter`](crate::limit::MemoryRateLimiter)
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
//!
//! # TLS
//!
//! With the `redis-tls` feature, `rediss://host:port/` connects through rustls and checks
//! the server's certificate: signed by a trusted root and issued for `host` (name or IP
//! address). The roots are the system's, read by rustls-native-certs, which takes
//! `SSL_CERT_FILE` (a PEM file) or `SSL_CERT_DIR` from the environment instead when set; or
//! a CA of your own with [`RedisRateLimiter::connect_with_root_ca`]. A certificate that
//! fails the check fails the connection (the limiter's failure policy applies). redis-rs's
//! `#insecure` (no check at all) is refused. Without the feature, `rediss://` URLs are
//! refused.

mod breaker;

use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::answer::Answer;
use crate::key::KeyRecord;
use crate::limit::{
    decision_at, BoxLimit, LimitResult, LimiterError, Quota, RateLimitDecision, RateLimiter,
    WindowState,
};
use breaker::Breaker;

/// Default deadline of one check against Redis.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(150);

/// Default time the limiter stops asking Redis after a connection failure or a timeout.
pub const DEFAULT_FAILURE_COOLDOWN: Duration = Duration::from_secs(1);

/// Default prefix of the limiter's Redis keys.
pub const DEFAULT_KEY_PREFIX: &str = "ark-auth:rl:";

/// Deadline of one attempt to (re)connect, off the request path.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The sliding window counter of `WindowState::check`, atomically, on the server's clock
/// (arguments and reply described in the script).
const SCRIPT: &str = include_str!("window.lua");

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

    /// Like [`connect`](Self::connect), for a `rediss://` URL whose server certificate is
    /// checked against the CA certificates in `root_ca_pem` (PEM) instead of the system's
    /// roots (the host name is still checked).
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = std::fs::read("/etc/ark/redis-ca.pem")?;
    /// let limiter =
    ///     ark_auth::redis::RedisRateLimiter::connect_with_root_ca("rediss://cache:6380/", &ca)
    ///         .await?;
    /// # let _ = limiter; Ok(()) }
    /// ```
    #[cfg(feature = "redis-tls")]
    pub async fn connect_with_root_ca(
        url: &str,
        root_ca_pem: &[u8],
    ) -> Result<RedisRateLimiter, LimiterError> {
        refuse_unchecked_tls(url)?;
        install_crypto_provider();
        let certs = ::redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root_ca_pem.to_vec()),
        };
        let client = ::redis::Client::build_with_tls(url, certs).map_err(LimiterError::new)?;
        let conn = ConnectionManager::new_with_config(client, manager_config())
            .await
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
    refuse_unchecked_tls(url)?;
    #[cfg(feature = "redis-tls")]
    install_crypto_provider();
    ::redis::Client::open(url).map_err(LimiterError::new)
}

/// redis-rs's `#insecure` turns the certificate check off when its `tls-rustls-insecure`
/// feature is on somewhere in the build; the limiter never connects that way.
fn refuse_unchecked_tls(url: &str) -> Result<(), LimiterError> {
    match url.split_once('#') {
        Some((_, "insecure")) => Err(LimiterError::new(RedisUnavailable::Insecure)),
        _ => Ok(()),
    }
}

/// redis-rs builds its rustls configuration with the process's default crypto provider,
/// which rustls cannot choose (and would panic over) when an application enables more
/// than one: ring becomes the default unless the application installed one already.
#[cfg(feature = "redis-tls")]
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err only when another thread installed one meanwhile: that one serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
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
    #[error("rediss:// with #insecure (no certificate check) is refused")]
    Insecure,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    #[test]
    fn insecure_tls_is_refused() {
        let e = refuse_unchecked_tls("rediss://:pw@cache:6380/#insecure").unwrap_err();
        let why = std::error::Error::source(&e).unwrap().to_string();
        assert!(why.contains("#insecure"), "{why}");
        assert!(!why.contains("pw"), "{why}");
        assert!(refuse_unchecked_tls("rediss://cache:6380/0").is_ok());
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
