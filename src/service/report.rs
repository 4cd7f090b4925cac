//! What the layer tells operators about each request: one DEBUG event per decision, the
//! same fields recorded into the current span (where it declares them), TRACE events timing
//! the store and the limiter, and, with the `metrics` feature, the counters of
//! [`crate::metrics`]. Never a secret: the key's id, the request's id and the code only.

use std::time::Instant;

use tracing::level_filters::LevelFilter;

use crate::response::{ErrorCode, RequestId};

use super::options::Options;

/// How the layer decided a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A public route: passed on without authentication.
    Public,
    /// An optional route without an `Authorization` header: passed on without a key.
    Anonymous,
    /// A key authenticated: passed on with it.
    Accepted,
    /// The layer answered.
    Refused(ErrorCode),
}

impl Outcome {
    /// `public`, `anonymous`, `accepted`, or the error code: the `outcome` of the event, of
    /// the span field and of the metrics label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Public => "public",
            Outcome::Anonymous => "anonymous",
            Outcome::Accepted => "accepted",
            Outcome::Refused(code) => code.as_str(),
        }
    }

    fn code(self) -> Option<&'static str> {
        match self {
            Outcome::Refused(code) => Some(code.as_str()),
            _ => None,
        }
    }
}

/// Tells of one decision: its DEBUG event, the current span's fields, and its count.
pub(crate) fn decided(
    outcome: Outcome,
    key_id: Option<&str>,
    request_id: &RequestId,
    options: &Options,
) {
    let (what, code, id) = (outcome.as_str(), outcome.code(), request_id.as_str());
    // Into the current span first, so that the event below shows in it. Only when some
    // subscriber listens at all: there is no span to record into otherwise.
    if LevelFilter::current() != LevelFilter::OFF {
        let span = tracing::Span::current();
        span.record("ark.outcome", what);
        span.record("ark.request_id", id);
        if let Some(code) = code {
            span.record("ark.code", code);
        }
        if let Some(key_id) = key_id {
            span.record("ark.key_id", key_id);
        }
    }
    match outcome {
        Outcome::Refused(_) => {
            tracing::debug!(
                outcome = what,
                code,
                key_id,
                request_id = id,
                "ark-auth: request rejected"
            )
        }
        Outcome::Accepted => {
            tracing::debug!(
                outcome = what,
                key_id,
                request_id = id,
                "ark-auth: request accepted"
            )
        }
        Outcome::Public | Outcome::Anonymous => {
            tracing::debug!(
                outcome = what,
                request_id = id,
                "ark-auth: request passed on without a key"
            )
        }
    }
    #[cfg(feature = "metrics")]
    crate::metrics::request(outcome, key_id, options.metrics_per_key);
    #[cfg(not(feature = "metrics"))]
    let _ = options;
}

/// What a stopwatch times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Lookup,
    Limiter,
}

/// Times the store's or the limiter's answer when TRACE is on (and, with the `metrics`
/// feature, a lookup that answers later); otherwise holds nothing and reads no clock.
#[derive(Debug, Default)]
pub(crate) struct Stopwatch(Option<Instant>);

impl Stopwatch {
    /// Started now if TRACE events of this crate are on.
    pub(crate) fn start() -> Self {
        Stopwatch(tracing::enabled!(tracing::Level::TRACE).then(Instant::now))
    }

    /// For an answer that comes later: started now if nothing started it yet and the
    /// `metrics` feature needs its time.
    pub(crate) fn parked(self) -> Self {
        #[cfg(feature = "metrics")]
        if self.0.is_none() {
            return Stopwatch(Some(Instant::now()));
        }
        self
    }

    /// The step has answered (`later`: after the request was parked).
    pub(crate) fn stop(self, step: Step, later: bool) {
        let Some(started) = self.0 else { return };
        let elapsed = started.elapsed();
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        match step {
            Step::Lookup => {
                tracing::trace!(elapsed_us = micros, later, "ark-auth: key store answered");
                #[cfg(feature = "metrics")]
                if later {
                    crate::metrics::store_lookup(elapsed);
                }
            }
            Step::Limiter => {
                tracing::trace!(
                    elapsed_us = micros,
                    later,
                    "ark-auth: rate limiter answered"
                )
            }
        }
    }
}
