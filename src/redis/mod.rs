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
//! The same windows as [`MemoryRateLimiter`](crate::limit::MemoryRateLimiter): the exact
//! sliding window (a log of the last `limit` admission times) up to a limit of 128, the
//! sliding window counter above. One Lua script per request checks every window of the
//! check and records the request in all of them when it fits all, in one atomic step on the
//! server's clock (`TIME`): N instances sharing one Redis never admit more than the key's
//! limit in any interval of one window's length, measured by Redis's clock, exactly as one
//! in-memory limiter would, and skewed instance clocks do not matter. Whatever the number
//! of windows, a check is one round trip. The script returns what it saw (per window: the
//! admissions still counting, the one that blocks, the newest) and the limiter computes
//! `X-RateLimit-Remaining`, `X-RateLimit-Reset` and `Retry-After` from it with the
//! in-memory limiter's own code: the same [`RateLimitDecision`](crate::limit::RateLimitDecision)
//! for the same admissions. The script's arithmetic (Lua numbers) is exact below 2⁵³ µs,
//! past the year 2255.
//!
//! One Redis hash per key *id* (`{prefix}{id}`), one field per window (named by the window in
//! microseconds: the admission times of a log, or a counter's three numbers), with an expiry
//! when the newest admission leaves the longest window, so an idle key leaves nothing
//! behind. A peek (the headers of a 403) writes nothing. The script touches one key, so it
//! also runs on Redis Cluster.
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
mod reply;

use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::answer::Answer;
use crate::key::KeyRecord;
use crate::limit::{BoxLimit, LimitResult, LimiterError, Quotas, RateLimiter, Spec};
use breaker::Breaker;

/// Default deadline of one check against Redis.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(150);

/// Default time the limiter stops asking Redis after a connection failure or a timeout.
pub const DEFAULT_FAILURE_COOLDOWN: Duration = Duration::from_secs(1);

/// Default prefix of the limiter's Redis keys.
pub const DEFAULT_KEY_PREFIX: &str = "ark-auth:rl:";

/// Deadline of one attempt to (re)connect, off the request path.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The windows of a check, atomically, on the server's clock (arguments and reply described
/// in the script).
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
    /// A controlled clock (µs) the script uses instead of `TIME`, in unit tests only.
    #[cfg(test)]
    test_clock: Option<Arc<std::sync::atomic::AtomicU64>>,
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
            #[cfg(test)]
            test_clock: None,
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

    fn check(
        &self,
        key: &KeyRecord,
        quotas: &Quotas,
        consume: bool,
    ) -> Answer<LimitResult, BoxLimit> {
        if !self.breaker.admit() {
            return Answer::Now(Err(LimiterError::new(RedisUnavailable::CoolingDown)));
        }
        let mut conn = self.conn.clone();
        let script = self.script.clone();
        let breaker = self.breaker.clone();
        let timeout = self.timeout;
        let quotas = *quotas;
        let redis_key = format!("{}{}", self.prefix, key.id());
        let clock = self.clock_arg();
        Answer::Later(Box::pin(async move {
            let mut call = script.key(redis_key);
            call.arg(clock).arg(u8::from(consume));
            for q in &quotas {
                let spec = Spec::of(*q);
                let shift = if spec.exact() {
                    i64::from(spec.shift)
                } else {
                    -1
                };
                call.arg(spec.window_us)
                    .arg(spec.limit)
                    .arg(spec.window_us)
                    .arg(shift);
            }
            let result =
                tokio::time::timeout(timeout, call.invoke_async::<Vec<i64>>(&mut conn)).await;
            match result {
                Ok(Ok(reply)) => {
                    breaker.success();
                    reply::decide(&reply, &quotas, consume)
                        .ok_or_else(|| LimiterError::new(RedisUnavailable::BadReply))
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

    /// The script's clock argument: empty for the server's `TIME`.
    #[cfg(not(test))]
    fn clock_arg(&self) -> String {
        String::new()
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
    fn acquire(&self, key: &KeyRecord, quotas: &Quotas) -> Answer<LimitResult, BoxLimit> {
        self.check(key, quotas, true)
    }

    /// Reads the counters, writing nothing.
    fn peek(&self, key: &KeyRecord, quotas: &Quotas) -> Answer<LimitResult, BoxLimit> {
        self.check(key, quotas, false)
    }
}

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

/// Why the limiter did not get an answer from Redis.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RedisUnavailable {
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
mod tests;

#[cfg(test)]
mod tls_tests {
    use super::*;

    #[test]
    fn insecure_tls_is_refused() {
        let e = refuse_unchecked_tls("rediss://:pw@cache:6380/#insecure").unwrap_err();
        let why = std::error::Error::source(&e).unwrap().to_string();
        assert!(why.contains("#insecure"), "{why}");
        assert!(!why.contains("pw"), "{why}");
        assert!(refuse_unchecked_tls("rediss://cache:6380/0").is_ok());
    }
}
