//! [`AuthenticatedKey`], the key of an accepted request as the application sees it, and
//! (feature `axum`) its axum extractor with the [`MissingAuthenticatedKey`] rejection.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::SystemTime;

use crate::key::KeyRecord;
use crate::limit::{Quotas, RateLimitDecision};
use crate::permission::Permissions;
use crate::token::Environment;

/// The key of an authenticated request, as the application sees it in the request
/// extensions: id, name, environment, permissions, tenant, metadata, and the key's
/// rate-limit state after this request. Never the secret.
///
/// Cloning is cheap (one reference count).
///
/// ```
/// # use ark_auth::AuthenticatedKey;
/// # fn handler(req: http::Request<()>) {
/// if let Some(key) = req.extensions().get::<AuthenticatedKey>() {
///     if key.is_test() { /* don't really send */ }
///     if let Some(limit) = key.rate_limit_state() {
///         println!("{} of {} left", limit.remaining, limit.limit);
///     }
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct AuthenticatedKey {
    record: Arc<KeyRecord>,
    limit: Option<RateLimitDecision>,
}

impl AuthenticatedKey {
    /// Wraps a record (for tests of handlers, or custom middleware).
    pub fn new(record: Arc<KeyRecord>) -> Self {
        AuthenticatedKey {
            record,
            limit: None,
        }
    }

    pub(crate) fn with_limit(record: Arc<KeyRecord>, limit: Option<RateLimitDecision>) -> Self {
        AuthenticatedKey { record, limit }
    }

    /// The key's public id.
    pub fn id(&self) -> &str {
        self.record.id()
    }
    /// The key's name.
    pub fn name(&self) -> &str {
        self.record.name()
    }
    /// Live or test.
    pub fn environment(&self) -> Environment {
        self.record.environment()
    }
    /// Whether this is an `ark_test_` key (avoid real side effects).
    pub fn is_test(&self) -> bool {
        self.record.environment() == Environment::Test
    }
    /// The key's permissions.
    pub fn permissions(&self) -> Permissions {
        self.record.permissions()
    }
    /// The tenant of a tenant-scoped key.
    pub fn tenant(&self) -> Option<&str> {
        self.record.tenant()
    }
    /// When the key expires, if it does.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.record.expires_at()
    }
    /// The key's own limit per second, when its record overrides the layer's default with
    /// limits that include one (see [`KeyRecord::rate_limit`]).
    pub fn rate_limit(&self) -> Option<NonZeroU32> {
        self.record.rate_limit()
    }
    /// The key's own rate limits, each with its window, when its record overrides the
    /// layer's default.
    pub fn rate_limits(&self) -> Option<Quotas> {
        self.record.rate_limits()
    }
    /// The key's rate-limit state after this request was counted (what the
    /// `X-RateLimit-*` headers say); `None` when the limiter failed and the request was
    /// served without a limit.
    pub fn rate_limit_state(&self) -> Option<&RateLimitDecision> {
        self.limit.as_ref()
    }
    /// The key's metadata.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        self.record.metadata()
    }
}

impl fmt::Debug for AuthenticatedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticatedKey")
            .field("id", &self.record.id())
            .field("name", &self.record.name())
            .field("environment", &self.record.environment())
            .field("permissions", &self.record.permissions())
            .field("tenant", &self.record.tenant())
            .field("rate_limit_state", &self.limit)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "axum")]
pub use self::axum_extract::MissingAuthenticatedKey;

#[cfg(feature = "axum")]
mod axum_extract {
    use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
    use axum_core::response::{IntoResponse, Response};
    use http::request::Parts;

    use super::AuthenticatedKey;
    use crate::body::ArkAuthBody;
    use crate::response::{Rejection, Reply};
    use crate::token::CredentialError;

    /// Rejection of the [`AuthenticatedKey`] extractor on a route that
    /// [`ArkAuthLayer`](crate::ArkAuthLayer) does not cover: the contract's 401 `authentication_required`,
    /// so a mis-wired route fails closed.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct MissingAuthenticatedKey(Reply);

    impl IntoResponse for MissingAuthenticatedKey {
        fn into_response(self) -> Response {
            tracing::warn!("ark-auth: AuthenticatedKey extracted on a route without ArkAuthLayer");
            Rejection::Credentials(CredentialError::Missing)
                .into_response::<axum_core::body::Body>(self.0)
                .map(|b: ArkAuthBody<axum_core::body::Body>| axum_core::body::Body::new(b))
        }
    }

    /// ```
    /// use ark_auth::AuthenticatedKey;
    ///
    /// async fn send_email(key: AuthenticatedKey) -> String {
    ///     if key.is_test() { "queued (test)".into() } else { "queued".into() }
    /// }
    /// let app: axum::Router = axum::Router::new().route("/v1/emails", axum::routing::post(send_email));
    /// ```
    impl<S: Send + Sync> FromRequestParts<S> for AuthenticatedKey {
        type Rejection = MissingAuthenticatedKey;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Self, Self::Rejection> {
            parts
                .extensions
                .get::<AuthenticatedKey>()
                .cloned()
                .ok_or_else(|| {
                    MissingAuthenticatedKey(Reply::for_request(parts.version, &parts.headers))
                })
        }
    }

    impl<S: Send + Sync> OptionalFromRequestParts<S> for AuthenticatedKey {
        type Rejection = std::convert::Infallible;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Option<Self>, Self::Rejection> {
            Ok(parts.extensions.get::<AuthenticatedKey>().cloned())
        }
    }
}
