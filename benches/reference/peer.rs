//! The peer: the stack a user would assemble from the field's crates instead of ark-auth.
//!
//! - tower-http's `AsyncRequireAuthorizationLayer` with an authorizer that parses
//!   `Bearer ark_live_…`, hashes the token with SHA-256, looks the digest up in a std
//!   `HashMap` (SipHash, the default a user gets) of 100 000 keys, compares the stored digest
//!   with `subtle`, checks one permission bit and puts the key's id into the request's
//!   extensions; a refusal is a 401 with a small JSON body (`{"error":{"code":…}}`).
//! - tower_governor (governor's GCRA, keyed by that id through a custom `KeyExtractor`) with
//!   `use_headers()`: `x-ratelimit-limit` and `x-ratelimit-remaining` on every accepted
//!   response (two headers, where ark-auth writes three).
//!
//! tower_governor answers its own errors with `Response<axum::body::Body>`, so this stack's
//! inner service returns `axum::body::Body` and is measured against `inner_axum_body`, the
//! same bare service with that body type.

use std::collections::HashMap;
use std::future::{ready, Ready};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body as AxumBody;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower::{Layer, Service};
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};
use tower_http::auth::{AsyncAuthorizeRequest, AsyncRequireAuthorizationLayer};

use super::{key_body, ReqBody, PERM_READ, PERM_WRITE};

/// One key of the peer's map.
pub struct PeerKey {
    pub digest: [u8; 32],
    pub id: u64,
    pub perms: u64,
}

/// The authenticated key's id, put into the request's extensions by [`PeerAuth`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerKeyId(pub u64);

/// The authorizer: parse, SHA-256, `HashMap` lookup, `subtle` compare, permission bit.
#[derive(Clone)]
pub struct PeerAuth {
    keys: Arc<HashMap<[u8; 32], PeerKey>>,
    required: u64,
}

impl PeerAuth {
    /// Keys `key_token(0..n)` (their 40-character bodies hashed), all permissions.
    pub fn new(n: u64) -> Self {
        let keys = (0..n)
            .map(|i| {
                let digest: [u8; 32] = Sha256::digest(key_body(i).as_bytes()).into();
                let key = PeerKey {
                    digest,
                    id: i,
                    perms: PERM_READ | PERM_WRITE,
                };
                (digest, key)
            })
            .collect();
        PeerAuth {
            keys: Arc::new(keys),
            required: PERM_READ,
        }
    }

    fn check(&self, req: &Request<ReqBody>) -> Option<u64> {
        let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
        let token = value.strip_prefix("Bearer ")?;
        let body = token
            .strip_prefix("ark_live_")
            .or_else(|| token.strip_prefix("ark_test_"))?;
        if !(16..=128).contains(&body.len()) || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let digest: [u8; 32] = Sha256::digest(body.as_bytes()).into();
        let key = self.keys.get(&digest)?;
        if !bool::from(key.digest.ct_eq(&digest)) || key.perms & self.required != self.required {
            return None;
        }
        Some(key.id)
    }
}

fn unauthorized() -> Response<AxumBody> {
    let mut res = Response::new(AxumBody::from(
        r#"{"error":{"code":"invalid_api_key","message":"Invalid API key"}}"#,
    ));
    *res.status_mut() = StatusCode::UNAUTHORIZED;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

impl AsyncAuthorizeRequest<ReqBody> for PeerAuth {
    type RequestBody = ReqBody;
    type ResponseBody = AxumBody;
    type Future = Ready<Result<Request<ReqBody>, Response<AxumBody>>>;

    fn authorize(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        ready(match self.check(&req) {
            Some(id) => {
                req.extensions_mut().insert(PeerKeyId(id));
                Ok(req)
            }
            None => Err(unauthorized()),
        })
    }
}

/// tower_governor's key: the id [`PeerAuth`] put into the extensions.
#[derive(Clone)]
pub struct PeerKeyExtractor;

impl KeyExtractor for PeerKeyExtractor {
    type Key = u64;

    fn extract<T>(&self, req: &Request<T>) -> Result<u64, GovernorError> {
        req.extensions()
            .get::<PeerKeyId>()
            .map(|id| id.0)
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

/// The bare inner service with tower_governor's body type: an empty 200 at once.
pub fn inner_axum_body() -> impl Service<
    Request<ReqBody>,
    Response = Response<AxumBody>,
    Error = std::convert::Infallible,
    Future = Ready<Result<Response<AxumBody>, std::convert::Infallible>>,
> + Clone {
    tower::service_fn(|_req: Request<ReqBody>| ready(Ok(Response::new(AxumBody::empty()))))
}

/// The peer stack around [`inner_axum_body`] with `n` keys: authorization outside, governor
/// inside; a quota never reached at bench rates (one request per 100 ns, burst 9 999).
pub fn peer_stack(
    n: u64,
) -> impl Service<Request<ReqBody>, Response = Response<AxumBody>, Error = std::convert::Infallible>
{
    let config = GovernorConfigBuilder::default()
        .key_extractor(PeerKeyExtractor)
        .period(Duration::from_nanos(100))
        .burst_size(9_999)
        .use_headers()
        .finish()
        .expect("valid governor quota");
    let governed = GovernorLayer::new(config).layer(inner_axum_body());
    AsyncRequireAuthorizationLayer::new(PeerAuth::new(n)).layer(governed)
}
