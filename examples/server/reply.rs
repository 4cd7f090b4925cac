//! The JSON answers of the handlers: the success and error envelopes with the request id,
//! and the ids and times they carry.

use std::convert::Infallible;
use std::time::SystemTime;

use ark_auth::{response::X_REQUEST_ID, RequestId};
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The request id a handler answers with: the one the layer handed on (the request's valid
/// `X-Request-Id`, or a fresh `req_` id). The fallbacks and 404s of the router reach here
/// through the layer too; the computation is only a fallback for a request that did not.
pub fn request_id(parts: &Parts) -> RequestId {
    parts
        .extensions
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(|| RequestId::from_headers(&parts.headers))
}

/// The request id of a request (its valid `X-Request-Id`, or a fresh `req_` id).
pub struct Rid(pub RequestId);

impl<S: Send + Sync> FromRequestParts<S> for Rid {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(Rid(request_id(parts)))
    }
}

/// `axum::extract::Path` whose rejection (say, a segment that is not UTF-8 once decoded) is
/// the JSON error envelope rather than plain text.
pub struct JsonPath<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for JsonPath<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(t)) => Ok(JsonPath(t)),
            Err(_) => Err(error(
                &Rid(request_id(parts)),
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The request path is not valid",
                "Percent-encode path segments as UTF-8",
            )),
        }
    }
}

/// A JSON response carrying the request id in `X-Request-Id`.
pub fn reply(rid: &Rid, status: StatusCode, body: impl Serialize) -> Response {
    let mut res = (status, Json(body)).into_response();
    res.headers_mut()
        .insert(X_REQUEST_ID.clone(), rid.0.header_value());
    res
}

pub fn meta(rid: &Rid) -> Value {
    json!({ "requestId": rid.0.as_str() })
}

/// `{"success": true, "data": …, "meta": {"requestId": …}}`, serialized straight from `data`
/// (a typed value or a `json!` one).
pub fn ok(rid: &Rid, data: impl Serialize) -> Response {
    #[derive(Serialize)]
    struct Ok<'a, T> {
        success: bool,
        data: T,
        meta: Meta<'a>,
    }
    #[derive(Serialize)]
    struct Meta<'a> {
        #[serde(rename = "requestId")]
        request_id: &'a str,
    }
    let meta = Meta {
        request_id: rid.0.as_str(),
    };
    reply(
        rid,
        StatusCode::OK,
        Ok {
            success: true,
            data,
            meta,
        },
    )
}

/// The contract's error envelope, for the errors the handlers themselves give: the bytes
/// the layer writes for its own rejections (`ark_auth::response::error_body`).
pub fn error(
    rid: &Rid,
    status: StatusCode,
    code: &str,
    message: &str,
    suggestion: &str,
) -> Response {
    let body = ark_auth::response::error_body(code, message, suggestion, &rid.0);
    let mut res = (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    res.headers_mut()
        .insert(X_REQUEST_ID.clone(), rid.0.header_value());
    res
}

pub fn rfc3339(t: SystemTime) -> String {
    OffsetDateTime::from(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{:016x}", fastrand::u64(..))
}
