//! The layer's rejections as a whole: the golden bytes of every one, the JSON and gRPC
//! forms, and the request id in both.

use std::time::Duration;

use bytes::{Buf as _, Bytes};
use http::header::{HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use http::{Response, StatusCode, Version};
use http_body_util::{BodyExt as _, Empty};

use super::*;
use crate::body::ArkAuthBody;
use crate::limit::RateLimitDecision;
use crate::permission::{Permission, Permissions};
use crate::response::rejection::Limits::{One, Several};
use crate::token::{CredentialError, Environment};

pub(super) fn assert_same_value(v: &HeaderValue, n: u64) {
    let expected = HeaderValue::from(n);
    assert_eq!(v, &expected, "{n}");
    assert_eq!(v.as_bytes(), n.to_string().as_bytes(), "{n}");
    assert!(!v.is_sensitive(), "{n}");
}

/// Whether `v`'s bytes are a slice of the static digit table (so it never allocated).
pub(super) fn decision(limit: u32, remaining: u32, reset: u64) -> RateLimitDecision {
    RateLimitDecision {
        allowed: true,
        limit,
        remaining,
        reset,
        retry_after: None,
        window: Duration::from_secs(1),
    }
}

pub(super) fn assert_rate_limit_headers(h: &HeaderMap, d: &RateLimitDecision) {
    for (name, n) in [
        (&X_RATELIMIT_LIMIT, u64::from(d.limit)),
        (&X_RATELIMIT_REMAINING, u64::from(d.remaining)),
        (&X_RATELIMIT_RESET, d.reset),
    ] {
        let all: Vec<_> = h.get_all(name).iter().collect();
        assert_eq!(all.len(), 1, "{name}");
        assert_same_value(all[0], n);
    }
}

#[test]
fn forbidden_names_missing_permissions() {
    let r = Rejection::MissingPermissions {
        missing: Permission::DomainsManage | Permission::WebhooksManage,
        required: Permission::DomainsManage | Permission::WebhooksManage,
        limit: None,
    };
    let res = r.into_response::<()>(Reply::for_request(Version::HTTP_11, &HeaderMap::new()));
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()[WWW_AUTHENTICATE],
        "Bearer realm=\"ark\", error=\"insufficient_scope\", scope=\"domains:manage webhooks:manage\""
    );
}

pub(super) fn rl(
    limit: u32,
    remaining: u32,
    reset: u64,
    retry: Option<Duration>,
) -> RateLimitDecision {
    RateLimitDecision {
        allowed: retry.is_none(),
        limit,
        remaining,
        reset,
        retry_after: retry,
        window: Duration::from_secs(1),
    }
}

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);

/// A refusal by a window of `limit` per `window`, one request admitted again in `retry_ms`.
fn rl_per(limit: u32, window: Duration, reset: u64, retry_ms: u64) -> RateLimitDecision {
    RateLimitDecision::refused(limit, reset, Duration::from_millis(retry_ms)).with_window(window)
}

/// Every kind of rejection, with the edge cases of its interpolated parts.
pub(super) fn cases() -> Vec<(&'static str, Rejection)> {
    use Permission::*;
    vec![
        ("missing", Rejection::Credentials(CredentialError::Missing)),
        ("no_token", Rejection::Credentials(CredentialError::NoToken)),
        (
            "malformed",
            Rejection::Credentials(CredentialError::Malformed),
        ),
        (
            "multiple",
            Rejection::Credentials(CredentialError::MultipleHeaders),
        ),
        ("unknown", Rejection::UnknownKey),
        (
            "env_live",
            Rejection::EnvironmentNotAccepted(Environment::Live),
        ),
        (
            "env_test",
            Rejection::EnvironmentNotAccepted(Environment::Test),
        ),
        ("revoked", Rejection::Revoked),
        ("expired", Rejection::Expired),
        (
            "perm1",
            Rejection::MissingPermissions {
                missing: EmailsSend.into(),
                required: EmailsSend.into(),
                limit: None,
            },
        ),
        (
            "perm2",
            Rejection::MissingPermissions {
                missing: DomainsManage | WebhooksManage,
                required: EmailsRead | DomainsManage | WebhooksManage,
                limit: Some(rl(100, 42, 1_790_000_000, None)),
            },
        ),
        (
            "perm_all",
            Rejection::MissingPermissions {
                missing: Permissions::ALL,
                required: Permissions::ALL,
                limit: Some(rl(u32::MAX, 0, u64::MAX, Some(Duration::from_millis(1500)))),
            },
        ),
        (
            "tenant",
            Rejection::OtherTenant {
                required: EmailsSend.into(),
                limit: None,
            },
        ),
        (
            "tenant_limit",
            Rejection::OtherTenant {
                required: EmailsSend | SuppressionsManage,
                limit: Some(rl(10_000, 9_999, 1_790_000_001, None)),
            },
        ),
        (
            "rl_none",
            Rejection::RateLimited(rl(60, 0, 1_790_000_060, None), One),
        ),
        (
            "rl_frac",
            Rejection::RateLimited(
                rl(1, 0, 1_790_000_002, Some(Duration::from_millis(1200))),
                One,
            ),
        ),
        (
            "rl_zero",
            Rejection::RateLimited(rl(4_294_967_295, 0, 9, Some(Duration::ZERO)), One),
        ),
        (
            "rl_big",
            Rejection::RateLimited(
                rl(1000, 0, 1_790_003_600, Some(Duration::from_secs(123_456))),
                One,
            ),
        ),
        // Several windows: the refusing one by name, or counted.
        (
            "rl_minute_of_several",
            Rejection::RateLimited(rl_per(100, MINUTE, 1_790_000_060, 36_200), Several),
        ),
        (
            "rl_second_of_several",
            Rejection::RateLimited(rl_per(10, SECOND, 1_790_000_001, 300), Several),
        ),
        (
            "rl_hour_of_several",
            Rejection::RateLimited(
                rl_per(5_000, 3600 * SECOND, 1_790_003_600, 3_599_001),
                Several,
            ),
        ),
        (
            "rl_30s_of_several",
            Rejection::RateLimited(rl_per(7, 30 * SECOND, 1_790_000_030, 29_000), Several),
        ),
        // One limit of another window than a second: named too.
        (
            "rl_day_only",
            Rejection::RateLimited(
                rl_per(10_000, 86_400 * SECOND, 1_790_086_400, 7_200_000),
                One,
            ),
        ),
        (
            "rl_ms_only",
            Rejection::RateLimited(
                rl_per(3, Duration::from_millis(1500), 1_790_000_002, 1_500),
                One,
            ),
        ),
        ("unavailable", Rejection::Unavailable),
    ]
}

pub(super) fn golden_reply() -> Reply {
    let mut h = HeaderMap::new();
    h.insert(&X_REQUEST_ID, HeaderValue::from_static("req-Golden_1.x"));
    Reply::for_request(Version::HTTP_11, &h)
}

pub(super) fn body_of(res: Response<ArkAuthBody<Empty<Bytes>>>) -> (http::response::Parts, String) {
    let (parts, body) = res.into_parts();
    let mut data = futures::executor::block_on(body.collect())
        .unwrap()
        .aggregate();
    let bytes = data.copy_to_bytes(data.remaining());
    (parts, String::from_utf8(bytes.to_vec()).unwrap())
}

/// Status, headers in order and body of every case, as a plain implementation (no cache,
/// no template, no static value) renders them, byte for byte.
const GOLDEN: &str = r####"CASE missing 401
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark"
B {"success":false,"error":{"code":"authentication_required","message":"Missing API key","suggestion":"Add the header Authorization: Bearer <key>"},"meta":{"requestId":"req-Golden_1.x"}}
CASE no_token 401
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="invalid_token", error_description="No API key after Bearer"
B {"success":false,"error":{"code":"invalid_api_key","message":"Invalid API key provided: no key after Bearer","suggestion":"Ensure key starts with ark_live_ or ark_test_"},"meta":{"requestId":"req-Golden_1.x"}}
CASE malformed 401
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="invalid_token", error_description="The API key is malformed"
B {"success":false,"error":{"code":"invalid_api_key","message":"Invalid API key provided","suggestion":"Ensure key starts with ark_live_ or ark_test_"},"meta":{"requestId":"req-Golden_1.x"}}
CASE multiple 401
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="invalid_token", error_description="More than one Authorization header"
B {"success":false,"error":{"code":"invalid_api_key","message":"Invalid API key provided: more than one Authorization header","suggestion":"Send exactly one Authorization: Bearer <key> header"},"meta":{"requestId":"req-Golden_1.x"}}
CASE unknown 401
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="invalid_token", error_description="The API key is invalid"
B {"success":false,"error":{"code":"invalid_api_key","message":"Invalid API key provided","suggestion":"Check that the whole key was copied, or generate a new key"},"meta":{"requestId":"req-Golden_1.x"}}
CASE env_live 401
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="invalid_token", error_description="Keys of this environment are not accepted"
B {"success":false,"error":{"code":"invalid_api_key","message":"Invalid API key provided: live keys are not accepted here","suggestion":"Use a test key (ark_test_...)"},"meta":{"requestId":"req-Golden_1.x"}}
CASE env_test 401
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="invalid_token", error_description="Keys of this environment are not accepted"
B {"success":false,"error":{"code":"invalid_api_key","message":"Invalid API key provided: test keys are not accepted here","suggestion":"Use a live key (ark_live_...)"},"meta":{"requestId":"req-Golden_1.x"}}
CASE revoked 401
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="invalid_token", error_description="The API key has been revoked"
B {"success":false,"error":{"code":"expired_api_key","message":"API key has been revoked","suggestion":"Generate a new API key"},"meta":{"requestId":"req-Golden_1.x"}}
CASE expired 401
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="invalid_token", error_description="The API key has expired"
B {"success":false,"error":{"code":"expired_api_key","message":"API key has expired","suggestion":"Generate a new API key"},"meta":{"requestId":"req-Golden_1.x"}}
CASE perm1 403
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="insufficient_scope", scope="emails:send"
B {"success":false,"error":{"code":"permission_denied","message":"API key lacks the required permission: emails:send","suggestion":"Grant the emails:send permission to this key, or use a key that has it"},"meta":{"requestId":"req-Golden_1.x"}}
CASE perm2 403
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="insufficient_scope", scope="emails:read domains:manage webhooks:manage"
H x-ratelimit-limit: 100
H x-ratelimit-remaining: 42
H x-ratelimit-reset: 1790000000
B {"success":false,"error":{"code":"permission_denied","message":"API key lacks the required permission: domains:manage, webhooks:manage","suggestion":"Grant the domains:manage, webhooks:manage permission to this key, or use a key that has it"},"meta":{"requestId":"req-Golden_1.x"}}
CASE perm_all 403
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="insufficient_scope", scope="emails:send emails:read domains:manage webhooks:manage suppressions:manage"
H x-ratelimit-limit: 4294967295
H x-ratelimit-remaining: 0
H x-ratelimit-reset: 18446744073709551615
B {"success":false,"error":{"code":"permission_denied","message":"API key lacks the required permission: emails:send, emails:read, domains:manage, webhooks:manage, suppressions:manage","suggestion":"Grant the emails:send, emails:read, domains:manage, webhooks:manage, suppressions:manage permission to this key, or use a key that has it"},"meta":{"requestId":"req-Golden_1.x"}}
CASE tenant 403
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="insufficient_scope", scope="emails:send"
B {"success":false,"error":{"code":"permission_denied","message":"API key is scoped to another tenant","suggestion":"Use a key scoped to this tenant, or an organisation-level key"},"meta":{"requestId":"req-Golden_1.x"}}
CASE tenant_limit 403
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="insufficient_scope", scope="emails:send suppressions:manage"
H x-ratelimit-limit: 10000
H x-ratelimit-remaining: 9999
H x-ratelimit-reset: 1790000001
B {"success":false,"error":{"code":"permission_denied","message":"API key is scoped to another tenant","suggestion":"Use a key scoped to this tenant, or an organisation-level key"},"meta":{"requestId":"req-Golden_1.x"}}
CASE rl_none 429
H content-type: application/json
H x-request-id: req-Golden_1.x
H x-ratelimit-limit: 60
H x-ratelimit-remaining: 0
H x-ratelimit-reset: 1790000060
H retry-after: 1
B {"success":false,"error":{"code":"rate_limit_exceeded","message":"Rate limit exceeded: 60 requests per window","suggestion":"Retry after 1 second"},"meta":{"requestId":"req-Golden_1.x"}}
CASE rl_frac 429
H content-type: application/json
H x-request-id: req-Golden_1.x
H x-ratelimit-limit: 1
H x-ratelimit-remaining: 0
H x-ratelimit-reset: 1790000002
H retry-after: 2
B {"success":false,"error":{"code":"rate_limit_exceeded","message":"Rate limit exceeded: 1 requests per window","suggestion":"Retry after 2 seconds"},"meta":{"requestId":"req-Golden_1.x"}}
CASE rl_zero 429
H content-type: application/json
H x-request-id: req-Golden_1.x
H x-ratelimit-limit: 4294967295
H x-ratelimit-remaining: 0
H x-ratelimit-reset: 9
H retry-after: 1
B {"success":false,"error":{"code":"rate_limit_exceeded","message":"Rate limit exceeded: 4294967295 requests per window","suggestion":"Retry after 1 second"},"meta":{"requestId":"req-Golden_1.x"}}
CASE rl_big 429
H content-type: application/json
H x-request-id: req-Golden_1.x
H x-ratelimit-limit: 1000
H x-ratelimit-remaining: 0
H x-ratelimit-reset: 1790003600
H retry-after: 123456
B {"success":false,"error":{"code":"rate_limit_exceeded","message":"Rate limit exceeded: 1000 requests per window","suggestion":"Retry after 123456 seconds"},"meta":{"requestId":"req-Golden_1.x"}}
CASE rl_minute_of_several 429
H content-type: application/json
H x-request-id: req-Golden_1.x
H x-ratelimit-limit: 100
H x-ratelimit-remaining: 0
H x-ratelimit-reset: 1790000060
H retry-after: 37
B {"success":false,"error":{"code":"rate_limit_exceeded","message":"Rate limit exceeded: 100 requests per minute","suggestion":"Retry after 37 seconds"},"meta":{"requestId":"req-Golden_1.x"}}
CASE rl_second_of_several 429
H content-type: application/json
H x-request-id: req-Golden_1.x
H x-ratelimit-limit: 10
H x-ratelimit-remaining: 0
H x-ratelimit-reset: 1790000001
H retry-after: 1
B {"success":false,"error":{"code":"rate_limit_exceeded","message":"Rate limit exceeded: 10 requests per second","suggestion":"Retry after 1 second"},"meta":{"requestId":"req-Golden_1.x"}}
CASE rl_hour_of_several 429
H content-type: application/json
H x-request-id: req-Golden_1.x
H x-ratelimit-limit: 5000
H x-ratelimit-remaining: 0
H x-ratelimit-reset: 1790003600
H retry-after: 3600
B {"success":false,"error":{"code":"rate_limit_exceeded","message":"Rate limit exceeded: 5000 requests per hour","suggestion":"Retry after 3600 seconds"},"meta":{"requestId":"req-Golden_1.x"}}
CASE rl_30s_of_several 429
H content-type: application/json
H x-request-id: req-Golden_1.x
H x-ratelimit-limit: 7
H x-ratelimit-remaining: 0
H x-ratelimit-reset: 1790000030
H retry-after: 29
B {"success":false,"error":{"code":"rate_limit_exceeded","message":"Rate limit exceeded: 7 requests per 30 seconds","suggestion":"Retry after 29 seconds"},"meta":{"requestId":"req-Golden_1.x"}}
CASE rl_day_only 429
H content-type: application/json
H x-request-id: req-Golden_1.x
H x-ratelimit-limit: 10000
H x-ratelimit-remaining: 0
H x-ratelimit-reset: 1790086400
H retry-after: 7200
B {"success":false,"error":{"code":"rate_limit_exceeded","message":"Rate limit exceeded: 10000 requests per day","suggestion":"Retry after 7200 seconds"},"meta":{"requestId":"req-Golden_1.x"}}
CASE rl_ms_only 429
H content-type: application/json
H x-request-id: req-Golden_1.x
H x-ratelimit-limit: 3
H x-ratelimit-remaining: 0
H x-ratelimit-reset: 1790000002
H retry-after: 2
B {"success":false,"error":{"code":"rate_limit_exceeded","message":"Rate limit exceeded: 3 requests per 1500 milliseconds","suggestion":"Retry after 2 seconds"},"meta":{"requestId":"req-Golden_1.x"}}
CASE unavailable 503
H content-type: application/json
H x-request-id: req-Golden_1.x
H retry-after: 1
B {"success":false,"error":{"code":"service_unavailable","message":"Authentication is temporarily unavailable","suggestion":"Retry after 1 second"},"meta":{"requestId":"req-Golden_1.x"}}
"####;

#[test]
fn responses_are_byte_for_byte_the_previous_ones() {
    let reply = golden_reply();
    let mut out = String::new();
    for (name, r) in cases() {
        let (parts, body) = body_of(r.into_response(reply.clone()));
        out.push_str(&format!("CASE {name} {}\n", parts.status.as_u16()));
        for (k, v) in &parts.headers {
            out.push_str(&format!("H {k}: {}\n", v.to_str().unwrap()));
        }
        out.push_str(&format!("B {body}\n"));
    }
    for (got, want) in out.lines().zip(GOLDEN.lines()) {
        assert_eq!(got, want);
    }
    assert_eq!(out, GOLDEN);
}
