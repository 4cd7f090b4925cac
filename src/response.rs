//! The responses the layer writes itself: the JSON envelope of contract section 3 and the
//! headers of section 4.

use std::fmt::Write as _;

use bytes::Bytes;
use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{Response, StatusCode};

use crate::body::ArkAuthBody;
use crate::permission::Permissions;
use crate::rate_limit::RateLimitDecision;
use crate::token::{CredentialError, Environment};

/// `X-RateLimit-Limit`.
pub static X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`.
pub static X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// `X-RateLimit-Reset`.
pub static X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
/// `X-Request-Id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The `error.code` values of contract section 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 401: no credentials.
    AuthenticationRequired,
    /// 401: malformed, unknown or not-accepted key.
    InvalidApiKey,
    /// 401: revoked or expired key.
    ExpiredApiKey,
    /// 403: missing permission or other tenant.
    PermissionDenied,
    /// 429.
    RateLimitExceeded,
    /// 503: a store failed.
    ServiceUnavailable,
}

impl ErrorCode {
    /// The wire form, e.g. `"invalid_api_key"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::AuthenticationRequired => "authentication_required",
            ErrorCode::InvalidApiKey => "invalid_api_key",
            ErrorCode::ExpiredApiKey => "expired_api_key",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::RateLimitExceeded => "rate_limit_exceeded",
            ErrorCode::ServiceUnavailable => "service_unavailable",
        }
    }

    /// The HTTP status that goes with the code.
    pub const fn status(self) -> StatusCode {
        match self {
            ErrorCode::AuthenticationRequired
            | ErrorCode::InvalidApiKey
            | ErrorCode::ExpiredApiKey => StatusCode::UNAUTHORIZED,
            ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorCode::RateLimitExceeded => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// Why the layer answered a request itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    Credentials(CredentialError),
    UnknownKey,
    EnvironmentNotAccepted(Environment),
    Revoked,
    Expired,
    MissingPermissions {
        missing: Permissions,
        required: Permissions,
        limit: Option<RateLimitDecision>,
    },
    OtherTenant {
        required: Permissions,
        limit: Option<RateLimitDecision>,
    },
    RateLimited(RateLimitDecision),
    Unavailable,
}

/// Seconds a client is told to wait after a 503.
const UNAVAILABLE_RETRY_AFTER: &str = "1";

impl Rejection {
    pub(crate) fn code(&self) -> ErrorCode {
        match self {
            Rejection::Credentials(CredentialError::Missing) => ErrorCode::AuthenticationRequired,
            Rejection::Credentials(_)
            | Rejection::UnknownKey
            | Rejection::EnvironmentNotAccepted(_) => ErrorCode::InvalidApiKey,
            Rejection::Revoked | Rejection::Expired => ErrorCode::ExpiredApiKey,
            Rejection::MissingPermissions { .. } | Rejection::OtherTenant { .. } => {
                ErrorCode::PermissionDenied
            }
            Rejection::RateLimited(_) => ErrorCode::RateLimitExceeded,
            Rejection::Unavailable => ErrorCode::ServiceUnavailable,
        }
    }

    /// `(message, suggestion)`. Every string here is either fixed or made of permission names
    /// and numbers: none needs JSON escaping, and none carries any part of a token.
    fn texts(&self) -> (String, String) {
        let fixed = |m: &str, s: &str| (m.to_owned(), s.to_owned());
        match self {
            Rejection::Credentials(CredentialError::Missing) => fixed(
                "Missing API key",
                "Add the header Authorization: Bearer <key>",
            ),
            Rejection::Credentials(CredentialError::NoToken) => fixed(
                "Invalid API key provided: no key after Bearer",
                "Ensure key starts with ark_live_ or ark_test_",
            ),
            Rejection::Credentials(CredentialError::Malformed) => fixed(
                "Invalid API key provided",
                "Ensure key starts with ark_live_ or ark_test_",
            ),
            Rejection::Credentials(CredentialError::MultipleHeaders) => fixed(
                "Invalid API key provided: more than one Authorization header",
                "Send exactly one Authorization: Bearer <key> header",
            ),
            Rejection::UnknownKey => fixed(
                "Invalid API key provided",
                "Check that the whole key was copied, or generate a new key",
            ),
            Rejection::EnvironmentNotAccepted(env) => (
                format!("Invalid API key provided: {env} keys are not accepted here"),
                match env {
                    Environment::Live => "Use a test key (ark_test_...)".to_owned(),
                    Environment::Test => "Use a live key (ark_live_...)".to_owned(),
                },
            ),
            Rejection::Revoked => fixed("API key has been revoked", "Generate a new API key"),
            Rejection::Expired => fixed("API key has expired", "Generate a new API key"),
            Rejection::MissingPermissions { missing, .. } => {
                let mut names = String::new();
                missing.write_names(&mut names, ", ");
                (
                    format!("API key lacks the required permission: {names}"),
                    format!("Grant the {names} permission to this key, or use a key that has it"),
                )
            }
            Rejection::OtherTenant { .. } => fixed(
                "API key is scoped to another tenant",
                "Use a key scoped to this tenant, or an organisation-level key",
            ),
            Rejection::RateLimited(d) => (
                format!("Rate limit exceeded: {} requests per window", d.limit),
                format!("Retry after {} seconds", d.retry_after_secs()),
            ),
            Rejection::Unavailable => fixed(
                "Authentication is temporarily unavailable",
                "Retry after 1 second",
            ),
        }
    }

    fn www_authenticate(&self) -> Option<HeaderValue> {
        let description = match self {
            Rejection::Credentials(CredentialError::Missing) => {
                return Some(HeaderValue::from_static("Bearer realm=\"ark\""));
            }
            Rejection::Credentials(CredentialError::NoToken) => "No API key after Bearer",
            Rejection::Credentials(CredentialError::Malformed) => "The API key is malformed",
            Rejection::Credentials(CredentialError::MultipleHeaders) => {
                "More than one Authorization header"
            }
            Rejection::UnknownKey => "The API key is invalid",
            Rejection::EnvironmentNotAccepted(_) => "Keys of this environment are not accepted",
            Rejection::Revoked => "The API key has been revoked",
            Rejection::Expired => "The API key has expired",
            Rejection::MissingPermissions { required, .. }
            | Rejection::OtherTenant { required, .. } => {
                let mut v =
                    String::from("Bearer realm=\"ark\", error=\"insufficient_scope\", scope=\"");
                required.write_names(&mut v, " ");
                v.push('"');
                return HeaderValue::try_from(v).ok();
            }
            Rejection::RateLimited(_) | Rejection::Unavailable => return None,
        };
        let v = format!(
            "Bearer realm=\"ark\", error=\"invalid_token\", error_description=\"{description}\""
        );
        HeaderValue::try_from(v).ok()
    }

    fn limit(&self) -> Option<&RateLimitDecision> {
        match self {
            Rejection::MissingPermissions { limit, .. } | Rejection::OtherTenant { limit, .. } => {
                limit.as_ref()
            }
            Rejection::RateLimited(d) => Some(d),
            _ => None,
        }
    }

    /// The JSON response for this rejection.
    pub(crate) fn into_response<B>(self, request_id: &RequestId) -> Response<ArkAuthBody<B>> {
        let code = self.code();
        let (message, suggestion) = self.texts();
        let mut json = String::with_capacity(160 + message.len() + suggestion.len());
        let _ = write!(
            json,
            "{{\"success\":false,\"error\":{{\"code\":\"{}\",\"message\":\"{}\",\"suggestion\":\"{}\"}},\"meta\":{{\"requestId\":\"{}\"}}}}",
            code.as_str(),
            message,
            suggestion,
            request_id.as_str()
        );
        let mut res = Response::new(ArkAuthBody::rejection(Bytes::from(json)));
        *res.status_mut() = code.status();
        let h = res.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(X_REQUEST_ID.clone(), request_id.header_value());
        if let Some(v) = self.www_authenticate() {
            h.insert(WWW_AUTHENTICATE, v);
        }
        if let Some(d) = self.limit() {
            set_rate_limit_headers(h, d);
        }
        match &self {
            Rejection::RateLimited(d) => {
                h.insert(RETRY_AFTER, HeaderValue::from(d.retry_after_secs()));
            }
            Rejection::Unavailable => {
                h.insert(
                    RETRY_AFTER,
                    HeaderValue::from_static(UNAVAILABLE_RETRY_AFTER),
                );
            }
            _ => {}
        }
        res
    }
}

/// Writes `X-RateLimit-Limit`, `-Remaining` and `-Reset`.
pub(crate) fn set_rate_limit_headers(h: &mut HeaderMap, d: &RateLimitDecision) {
    h.insert(X_RATELIMIT_LIMIT.clone(), HeaderValue::from(d.limit));
    h.insert(
        X_RATELIMIT_REMAINING.clone(),
        HeaderValue::from(d.remaining),
    );
    h.insert(X_RATELIMIT_RESET.clone(), HeaderValue::from(d.reset));
}

/// The id of a request: its `X-Request-Id` header when that is 1 to 128 characters of
/// `[A-Za-z0-9._-]`, otherwise a fresh `req_` id.
///
/// ```
/// use ark_auth::RequestId;
/// use http::HeaderMap;
///
/// let mut h = HeaderMap::new();
/// h.insert("x-request-id", "abc-123".parse().unwrap());
/// assert_eq!(RequestId::from_headers(&h).as_str(), "abc-123");
/// h.insert("x-request-id", "bad id!".parse().unwrap());
/// assert!(RequestId::from_headers(&h).as_str().starts_with("req_"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// Reads or makes the id of a request with these headers.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        match headers.get(&X_REQUEST_ID) {
            Some(v) if is_valid_request_id(v.as_bytes()) => RequestId(v.clone()),
            _ => RequestId::generate(),
        }
    }

    /// A fresh `req_` id: `req_` and 20 hex digits (80 random bits; unique, not secret).
    pub fn generate() -> Self {
        let n = fastrand::u128(..);
        let s = format!("req_{:020x}", n & ((1u128 << 80) - 1));
        RequestId(HeaderValue::try_from(s).expect("hex is a valid header value"))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        // Only ever built from validated ASCII.
        self.0.to_str().unwrap_or("")
    }

    /// The id as a header value (for `X-Request-Id`).
    pub fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }
}

fn is_valid_request_id(b: &[u8]) -> bool {
    (1..=128).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permission::Permission;

    #[test]
    fn request_id_rules() {
        let mut h = HeaderMap::new();
        assert!(RequestId::from_headers(&h).as_str().starts_with("req_"));
        assert_eq!(RequestId::generate().as_str().len(), 24);
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("a.b_c-D9"));
        assert_eq!(RequestId::from_headers(&h).as_str(), "a.b_c-D9");
        let long = "a".repeat(128);
        h.insert(&X_REQUEST_ID, HeaderValue::from_str(&long).unwrap());
        assert_eq!(RequestId::from_headers(&h).as_str(), long);
        let too_long = "a".repeat(129);
        h.insert(&X_REQUEST_ID, HeaderValue::from_str(&too_long).unwrap());
        assert!(RequestId::from_headers(&h).as_str().starts_with("req_"));
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("\"quoted\""));
        assert!(RequestId::from_headers(&h).as_str().starts_with("req_"));
        h.insert(&X_REQUEST_ID, HeaderValue::from_static(""));
        assert!(RequestId::from_headers(&h).as_str().starts_with("req_"));
    }

    #[test]
    fn forbidden_names_missing_permissions() {
        let r = Rejection::MissingPermissions {
            missing: Permission::DomainsManage | Permission::WebhooksManage,
            required: Permission::DomainsManage | Permission::WebhooksManage,
            limit: None,
        };
        let res = r.into_response::<()>(&RequestId::generate());
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            res.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"ark\", error=\"insufficient_scope\", scope=\"domains:manage webhooks:manage\""
        );
    }
}
