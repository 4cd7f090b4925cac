//! The headers of contract section 4 on the layer's own responses, and the rate-limit
//! headers on every response to an authenticated request.

use http::header::{
    Entry, HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};

use super::values::{self, Shape};
use crate::limit::RateLimitDecision;

/// `X-RateLimit-Limit`.
pub static X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`.
pub static X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// `X-RateLimit-Reset`.
pub static X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
/// `X-Request-Id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub(super) static CONTENT_TYPE_NAME: HeaderName = CONTENT_TYPE;
pub(super) static WWW_AUTHENTICATE_NAME: HeaderName = WWW_AUTHENTICATE;
pub(super) static RETRY_AFTER_NAME: HeaderName = RETRY_AFTER;

/// Writes `X-RateLimit-Limit`, `-Remaining` and `-Reset`, replacing any the map has.
///
/// Numbers up to 9999 are static values and large ones are remembered per thread (see
/// [`values::rate_limit_values`]); a map with no headers yet (nothing allocated) becomes a
/// copy of a map holding the three names (see [`values::headers`]).
pub(crate) fn set_rate_limit_headers(h: &mut HeaderMap, d: &RateLimitDecision) {
    let [limit, remaining, reset] = values::rate_limit_values(d);
    if h.capacity() == 0 {
        *h = values::headers(Shape::RateLimit, [limit, remaining, reset]);
        return;
    }
    // Room for the three at once: a handler's response with a few headers of its own is not
    // regrown one insert at a time.
    h.reserve(3);
    h.insert(&X_RATELIMIT_LIMIT, limit);
    h.insert(&X_RATELIMIT_REMAINING, remaining);
    h.insert(&X_RATELIMIT_RESET, reset);
}

/// What the layer adds to the inner service's response: the rate-limit headers of `limit`
/// (replacing any the response has), and `id` as `X-Request-Id` unless the response has one
/// already.
///
/// A map with no headers yet becomes a copy of a map holding the names (see
/// [`values::headers`]); otherwise room for all of them is reserved at once.
pub(crate) fn set_accepted_headers(
    h: &mut HeaderMap,
    limit: Option<&RateLimitDecision>,
    id: Option<HeaderValue>,
) {
    if let (Some(d), 0) = (limit, h.capacity()) {
        let [l, r, s] = values::rate_limit_values(d);
        *h = match id {
            Some(id) => values::headers(Shape::Accepted, [l, r, s, id]),
            None => values::headers(Shape::RateLimit, [l, r, s]),
        };
        return;
    }
    h.reserve(4);
    if let Some(d) = limit {
        let [l, r, s] = values::rate_limit_values(d);
        h.insert(&X_RATELIMIT_LIMIT, l);
        h.insert(&X_RATELIMIT_REMAINING, r);
        h.insert(&X_RATELIMIT_RESET, s);
    }
    if let Some(id) = id {
        if let Entry::Vacant(slot) = h.entry(&X_REQUEST_ID) {
            slot.insert(id);
        }
    }
}

/// The headers of a rejection in the JSON form: `Content-Type`, `X-Request-Id`, then
/// whichever of `WWW-Authenticate`, the rate-limit headers and `Retry-After` it has, in
/// that order.
pub(super) fn json_headers(
    id: HeaderValue,
    www: Option<HeaderValue>,
    limit: Option<&RateLimitDecision>,
    retry: Option<HeaderValue>,
) -> HeaderMap {
    let ct = const { HeaderValue::from_static("application/json") };
    // Every rejection has one of four shapes.
    match (www, limit, retry) {
        (Some(www), None, None) => values::headers(Shape::Unauthorized, [ct, id, www]),
        (Some(www), Some(d), None) => {
            let [l, r, s] = values::rate_limit_values(d);
            values::headers(Shape::Forbidden, [ct, id, www, l, r, s])
        }
        (None, Some(d), Some(retry)) => {
            let [l, r, s] = values::rate_limit_values(d);
            values::headers(Shape::Limited, [ct, id, l, r, s, retry])
        }
        (None, None, Some(retry)) => values::headers(Shape::Unavailable, [ct, id, retry]),
        (www, limit, retry) => {
            let mut h = HeaderMap::with_capacity(6);
            h.insert(CONTENT_TYPE, ct);
            insert_headers(&mut h, id, www, limit, retry);
            h
        }
    }
}

/// Inserts `X-Request-Id` and whichever of `WWW-Authenticate`, the rate-limit headers and
/// `Retry-After` a rejection has.
pub(super) fn insert_headers(
    h: &mut HeaderMap,
    id: HeaderValue,
    www: Option<HeaderValue>,
    limit: Option<&RateLimitDecision>,
    retry: Option<HeaderValue>,
) {
    h.reserve(6);
    h.insert(&X_REQUEST_ID, id);
    if let Some(v) = www {
        h.insert(WWW_AUTHENTICATE, v);
    }
    if let Some(d) = limit {
        set_rate_limit_headers(h, d);
    }
    if let Some(v) = retry {
        h.insert(RETRY_AFTER, v);
    }
}
