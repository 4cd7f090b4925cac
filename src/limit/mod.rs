//! Per-key rate limiting: the [`RateLimiter`] trait a limiter implements, its [`Quota`]s
//! ([`Quotas`], the limits one request must fit) and [`RateLimitDecision`], and the
//! in-memory [`MemoryRateLimiter`]. The windows both built-in limiters share are pure
//! functions: the exact sliding window (module `log`) and, above its range, the sliding
//! window counter (module `window`).

mod combine;
mod entry;
#[cfg(feature = "postgres")]
mod json;
mod log;
mod memory;
#[cfg(test)]
pub(crate) mod model_tests;
mod quotas;
mod text;
mod window;

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::key::KeyRecord;

pub use crate::store::{Answer, AnswerFuture, MapFuture};
#[cfg(feature = "postgres")]
pub(crate) use json::{quotas_from_json, quotas_to_json};
#[cfg(feature = "redis")]
pub(crate) use log::{Spec, Summary};
pub use memory::MemoryRateLimiter;
pub use quotas::{Quotas, QuotasError};
pub(crate) use text::window_name;
pub use text::QuotaParseError;
#[cfg(feature = "serde")]
pub(crate) use text::{quotas_from_members, window_member};
#[cfg(feature = "redis")]
pub(crate) use window::{decision_at, WindowState};

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
///
/// A limiter of its own makes one with [`RateLimitDecision::admitted`] or
/// [`RateLimitDecision::refused`]; the fields are public to read.
///
/// ```
/// use std::time::Duration;
/// use ark_auth::limit::RateLimitDecision;
///
/// let ok = RateLimitDecision::admitted(10, 9, 1_764_000_002);
/// assert!(ok.allowed && ok.retry_after.is_none());
/// let no = RateLimitDecision::refused(10, 1_764_000_002, Duration::from_millis(1500));
/// assert_eq!((no.allowed, no.remaining, no.retry_after_secs()), (false, 0, 2));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
    /// The window this decision describes (of the check's [`Quotas`], the one
    /// [`RateLimitDecision::combine`] picks).
    pub window: Duration,
}

impl RateLimitDecision {
    /// An admitted request: `remaining` of `limit` left after it, the whole limit free
    /// again at the Unix second `reset`; a one-second window unless
    /// [`with_window`](Self::with_window) says otherwise.
    pub const fn admitted(limit: u32, remaining: u32, reset: u64) -> Self {
        RateLimitDecision {
            allowed: true,
            limit,
            remaining,
            reset,
            retry_after: None,
            window: Duration::from_secs(1),
        }
    }

    /// The same decision, describing the window `window`.
    pub const fn with_window(self, window: Duration) -> Self {
        RateLimitDecision { window, ..self }
    }

    /// A refused request: nothing of `limit` left, one request admitted again after
    /// `retry_after`, the whole limit free again at the Unix second `reset`.
    pub const fn refused(limit: u32, reset: u64, retry_after: Duration) -> Self {
        RateLimitDecision {
            allowed: false,
            limit,
            remaining: 0,
            reset,
            retry_after: Some(retry_after),
            window: Duration::from_secs(1),
        }
    }

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
/// [`KeyStore`](crate::store::KeyStore) and for the same reason.
///
/// A limiter keys its counters by the record's [`KeyRecord::hash`] (unique per key, and
/// already uniformly distributed) or by its [`KeyRecord::id`] (readable, for a shared store).
pub trait RateLimiter: Send + Sync + 'static {
    /// The future of a check answered later.
    type Future: Future<Output = LimitResult> + Send + 'static;

    /// Checks the limits of `key` and, when the request fits every one of `quotas`, counts
    /// it in each; when one refuses, it is counted in none. The decision describes the
    /// window [`RateLimitDecision::combine`] picks.
    fn acquire(&self, key: &KeyRecord, quotas: &Quotas) -> Answer<LimitResult, Self::Future>;

    /// The current state of `key`'s limits, counting nothing (for the headers of a 403).
    fn peek(&self, key: &KeyRecord, quotas: &Quotas) -> Answer<LimitResult, Self::Future>;
}

impl<L: RateLimiter + ?Sized> RateLimiter for Arc<L> {
    type Future = L::Future;
    fn acquire(&self, key: &KeyRecord, quotas: &Quotas) -> Answer<LimitResult, Self::Future> {
        (**self).acquire(key, quotas)
    }
    fn peek(&self, key: &KeyRecord, quotas: &Quotas) -> Answer<LimitResult, Self::Future> {
        (**self).peek(key, quotas)
    }
}

/// A rate limiter that could not answer.
///
/// Its `Display` is "rate limiter failed"; the limiter's own error is its
/// [`source`](std::error::Error::source), so a report that walks the chain shows each once
/// (the layer's logs do).
///
/// ```
/// use std::error::Error;
/// use ark_auth::limit::LimiterError;
///
/// let e = LimiterError::new("connection refused");
/// assert_eq!(e.to_string(), "rate limiter failed");
/// assert_eq!(e.source().unwrap().to_string(), "connection refused");
/// ```
#[derive(Debug, thiserror::Error)]
#[error("rate limiter failed")]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_never_zero_seconds() {
        let d = RateLimitDecision {
            allowed: false,
            limit: 1,
            remaining: 0,
            reset: 0,
            retry_after: Some(Duration::from_millis(1)),
            window: Duration::from_secs(1),
        };
        assert_eq!(d.retry_after_secs(), 1);
        let d = RateLimitDecision {
            retry_after: Some(Duration::from_millis(1500)),
            ..d
        };
        assert_eq!(d.retry_after_secs(), 2);
    }
}
