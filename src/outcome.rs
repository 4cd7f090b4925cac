//! [`Refusal`]: what the layer decided about a request it answered itself, in the extensions
//! of that response, for the layers outside it (metrics, logs, audits) to read without
//! parsing the body.

use std::fmt;
use std::sync::Arc;

use http::StatusCode;

use crate::key::KeyRecord;
use crate::response::{ErrorCode, RequestId};

/// Why the layer refused a request: in the extensions of every response the layer writes
/// itself (401, 403, 429, 503), never in an inner service's response. An outer layer tells
/// the two apart by it: `res.extensions().get::<Refusal>()` is `Some` exactly when the layer
/// answered.
///
/// It names the error code, the request's id, and the key's id when the store found a key
/// (revoked, expired, 403, 429, and a 503 of the rate limiter); never the secret.
///
/// ```
/// use ark_auth::response::ErrorCode;
/// use ark_auth::{ArkAuthLayer, MemoryKeyStore, Refusal};
/// use http::{Request, Response};
/// use std::convert::Infallible;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let svc = ServiceBuilder::new()
///     .layer(ArkAuthLayer::new(MemoryKeyStore::new()))
///     .service_fn(|_req: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) });
/// let req = Request::get("/")
///     .header("authorization", "Bearer ark_live_0000000000000000000000")
///     .body(String::new())
///     .unwrap();
/// let res = svc.oneshot(req).await.unwrap();
/// let refusal = res.extensions().get::<Refusal>().unwrap();
/// assert_eq!(refusal.code(), ErrorCode::InvalidApiKey);
/// assert_eq!(refusal.key_id(), None); // no stored key matched
/// assert_eq!(refusal.request_id().as_str(), res.headers()["x-request-id"]);
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refusal {
    code: ErrorCode,
    key: Option<Arc<KeyRecord>>,
    request_id: RequestId,
}

impl Refusal {
    pub(crate) fn new(code: ErrorCode, key: Option<Arc<KeyRecord>>, request_id: RequestId) -> Self {
        Refusal {
            code,
            key,
            request_id,
        }
    }

    /// The response's `error.code`.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The response's status.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The id of the key the store found for the request, if it found one: set for a
    /// revoked or expired key, a 403, a 429 and a 503 of the rate limiter; `None` for
    /// missing or malformed credentials, an unknown key, and a failed store.
    pub fn key_id(&self) -> Option<&str> {
        self.key.as_deref().map(KeyRecord::id)
    }

    /// The request's id, as in the response's `X-Request-Id` and `meta.requestId`.
    pub fn request_id(&self) -> &RequestId {
        &self.request_id
    }
}

impl fmt::Debug for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refusal")
            .field("code", &self.code)
            .field("key_id", &self.key_id())
            .field("request_id", &self.request_id.as_str())
            .finish()
    }
}
