//! [`AuthenticatedKey`] as an axum extractor (feature `axum`).

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;

use crate::authenticated::AuthenticatedKey;
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

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
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
