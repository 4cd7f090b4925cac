//! The layer's metrics (feature `metrics`), on the [`metrics`](https://docs.rs/metrics)
//! facade: whichever recorder the application installs (Prometheus, StatsD, OpenTelemetry
//! exporters) receives them; without one they cost a check each.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `ark_auth_requests_total` | counter | `outcome` | requests decided: `accepted` (a key authenticated), `public` (a public route), `anonymous` (an optional route without credentials), or the error code of the refusal (`authentication_required`, `invalid_api_key`, `expired_api_key`, `permission_denied`, `rate_limit_exceeded`, `service_unavailable`) |
//! | `ark_auth_store_lookup_seconds` | histogram | | time the key store took to answer, for lookups that went to the store (answered later, not from memory or a cache hit) |
//! | `ark_auth_limiter_failures_total` | counter | `failure` | rate-limiter checks that failed: `error`, `timeout` or `panic` (whether the request was then served or refused is in `ark_auth_requests_total`) |
//!
//! With [`ArkAuthLayer::metrics_per_key`](crate::ArkAuthLayer::metrics_per_key), requests
//! whose key is known (accepted, and refused after the store found the key: revoked,
//! expired, 403, 429, a limiter's 503) also carry a `key_id` label: one series per key and
//! outcome, so off by default.
//!
//! ```
//! use ark_auth::metrics::{REQUESTS_TOTAL, STORE_LOOKUP_SECONDS, LIMITER_FAILURES_TOTAL};
//! assert_eq!(REQUESTS_TOTAL, "ark_auth_requests_total");
//! # let _ = (STORE_LOOKUP_SECONDS, LIMITER_FAILURES_TOTAL);
//! ```

use std::time::Duration;

use metrics::{Key, Label, Level, Metadata};

use crate::response::ErrorCode;
use crate::service::report::Outcome;

/// Counter of decided requests, labelled `outcome` (and `key_id` when per-key labels are on).
pub const REQUESTS_TOTAL: &str = "ark_auth_requests_total";
/// Histogram of the key store's answer time, in seconds, for lookups that went to the store.
pub const STORE_LOOKUP_SECONDS: &str = "ark_auth_store_lookup_seconds";
/// Counter of failed rate-limiter checks, labelled `failure` (`error`, `timeout`, `panic`).
pub const LIMITER_FAILURES_TOTAL: &str = "ark_auth_limiter_failures_total";

const METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// A key of `name` with the one label `label=value`, built once (no allocation per use).
macro_rules! static_key {
    ($name:expr, $label:literal, $value:expr) => {{
        static LABELS: [Label; 1] = [Label::from_static_parts($label, $value)];
        static KEY: Key = Key::from_static_parts($name, &LABELS);
        &KEY
    }};
}

/// The request counter's key of an outcome.
fn outcome_key(outcome: Outcome) -> &'static Key {
    macro_rules! outcome {
        ($v:expr) => {
            static_key!(REQUESTS_TOTAL, "outcome", $v)
        };
    }
    match outcome {
        Outcome::Public => outcome!("public"),
        Outcome::Anonymous => outcome!("anonymous"),
        Outcome::Accepted => outcome!("accepted"),
        Outcome::Refused(code) => match code {
            ErrorCode::AuthenticationRequired => {
                outcome!(ErrorCode::AuthenticationRequired.as_str())
            }
            ErrorCode::InvalidApiKey => outcome!(ErrorCode::InvalidApiKey.as_str()),
            ErrorCode::ExpiredApiKey => outcome!(ErrorCode::ExpiredApiKey.as_str()),
            ErrorCode::PermissionDenied => outcome!(ErrorCode::PermissionDenied.as_str()),
            ErrorCode::RateLimitExceeded => outcome!(ErrorCode::RateLimitExceeded.as_str()),
            ErrorCode::ServiceUnavailable => outcome!(ErrorCode::ServiceUnavailable.as_str()),
        },
    }
}

/// Counts one decided request.
pub(crate) fn request(outcome: Outcome, key_id: Option<&str>, per_key: bool) {
    match key_id {
        Some(id) if per_key => {
            metrics::counter!(REQUESTS_TOTAL, "outcome" => outcome.as_str(), "key_id" => id.to_owned())
                .increment(1)
        }
        _ => metrics::with_recorder(|r| r.register_counter(outcome_key(outcome), &METADATA))
            .increment(1),
    }
}

/// Records the time of a lookup that went to the store.
pub(crate) fn store_lookup(elapsed: Duration) {
    metrics::histogram!(STORE_LOOKUP_SECONDS).record(elapsed.as_secs_f64());
}

/// Counts one failed limiter check.
pub(crate) fn limiter_failure(failure: &'static str) {
    let key = match failure {
        "timeout" => static_key!(LIMITER_FAILURES_TOTAL, "failure", "timeout"),
        "panic" => static_key!(LIMITER_FAILURES_TOTAL, "failure", "panic"),
        _ => static_key!(LIMITER_FAILURES_TOTAL, "failure", "error"),
    };
    metrics::with_recorder(|r| r.register_counter(key, &METADATA)).increment(1);
}
