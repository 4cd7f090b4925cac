//! The layer's settings as plain data: what the builder sets and the decisions read.

use std::sync::Arc;
use std::time::Duration;

use crate::limit::Quotas;
use crate::token::Environment;

use super::drain::DrainBound;
use super::identity::IdentityHeaders;

/// Default deadline for the key store and the rate limiter together, per request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the layer does when the rate limiter fails (errors, times out or panics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LimiterFailure {
    /// Serve the request without rate-limit headers and log the failure (the default: a
    /// failing shared limiter does not take the API down).
    #[default]
    Allow,
    /// Answer 503 `service_unavailable`.
    Refuse,
}

/// The layer's settings, as the builder left them.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) environments: Environments,
    /// The limits of keys whose record sets none.
    pub(crate) default_quotas: Quotas,
    pub(crate) timeout: Duration,
    pub(crate) limiter_failure: LimiterFailure,
    pub(crate) drain: DrainBound,
    /// `X-Request-Id` on the inner service's responses (when it set none).
    pub(crate) request_id_header: bool,
    /// `Authorization` removed from the requests passed on.
    pub(crate) hide_credentials: bool,
    /// The identity headers set on the requests passed on, if any.
    pub(crate) identity: Option<Arc<IdentityHeaders>>,
    /// A `key_id` label on the request counter (feature `metrics`).
    #[cfg(feature = "metrics")]
    pub(crate) metrics_per_key: bool,
    pub(crate) require_checksum: bool,
}

/// Which environments a deployment accepts, as a set of [`Environment::bit`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Environments(pub(crate) u8);

impl Environments {
    pub(crate) const ALL: Environments =
        Environments(Environment::Live.bit() | Environment::Test.bit());

    pub(crate) fn of(environments: &[Environment]) -> Self {
        Environments(environments.iter().fold(0, |acc, e| acc | e.bit()))
    }

    pub(crate) fn accepts(self, environment: Environment) -> bool {
        self.0 & environment.bit() != 0
    }
}
