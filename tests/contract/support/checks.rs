//! Checks on responses: the rejection envelope, `WWW-Authenticate`, rate-limit headers,
//! `Retry-After`, and what the echo handler saw.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::common::{RawResponse, Server};

use super::keys::TestKey;

pub fn sorted_keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

/// A rejection: status, `Content-Type`, the exact envelope, the code, and `X-Request-Id`
/// equal to `meta.requestId`. Returns the JSON.
#[track_caller]
pub fn rejection(srv: &Server, res: &RawResponse, status: u16, code: &str) -> Value {
    let f = srv.flavor;
    assert_eq!(
        res.status,
        status,
        "[{f:?}] {} {:?}",
        res.body_text(),
        res.headers_text()
    );
    assert_eq!(
        res.header("content-type").as_deref(),
        Some("application/json"),
        "[{f:?}]"
    );
    let v = res.json();
    assert_eq!(sorted_keys(&v), ["error", "meta", "success"], "[{f:?}] {v}");
    assert_eq!(v["success"], json!(false), "[{f:?}] {v}");
    assert_eq!(
        sorted_keys(&v["error"]),
        ["code", "message", "suggestion"],
        "[{f:?}] {v}"
    );
    for field in ["code", "message", "suggestion"] {
        let s = v["error"][field]
            .as_str()
            .unwrap_or_else(|| panic!("[{f:?}] {field}: {v}"));
        assert!(!s.trim().is_empty(), "[{f:?}] empty {field}: {v}");
    }
    assert_eq!(v["error"]["code"], json!(code), "[{f:?}] {v}");
    assert_eq!(sorted_keys(&v["meta"]), ["requestId"], "[{f:?}] {v}");
    let id = v["meta"]["requestId"]
        .as_str()
        .expect("requestId is a string");
    assert!(!id.is_empty() && id.len() <= 128, "[{f:?}] {id:?}");
    assert_eq!(res.header("x-request-id").as_deref(), Some(id), "[{f:?}]");
    v
}

pub fn message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap()
}

pub fn suggestion(v: &Value) -> &str {
    v["error"]["suggestion"].as_str().unwrap()
}

/// `WWW-Authenticate: Bearer realm="ark"` (credentials missing).
#[track_caller]
pub fn www_missing(srv: &Server, res: &RawResponse) {
    assert_eq!(
        res.header("www-authenticate").as_deref(),
        Some("Bearer realm=\"ark\""),
        "[{:?}]",
        srv.flavor
    );
}

/// `WWW-Authenticate: Bearer realm="ark", error="invalid_token", error_description="…"`;
/// returns the description.
#[track_caller]
pub fn www_invalid(srv: &Server, res: &RawResponse) -> String {
    let w = res
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("[{:?}] no WWW-Authenticate", srv.flavor));
    let desc = w
        .strip_prefix("Bearer realm=\"ark\", error=\"invalid_token\", error_description=\"")
        .and_then(|d| d.strip_suffix('"'))
        .unwrap_or_else(|| panic!("[{:?}] WWW-Authenticate {w:?}", srv.flavor));
    assert!(!desc.is_empty(), "[{:?}] {w}", srv.flavor);
    // RFC 6750 section 3: error_description is %x20-21 / %x23-5B / %x5D-7E.
    assert!(
        desc.bytes()
            .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)),
        "[{:?}] {w}",
        srv.flavor
    );
    desc.to_owned()
}

#[track_caller]
pub fn www_scope(srv: &Server, res: &RawResponse, scope: &str) {
    assert_eq!(
        res.header("www-authenticate"),
        Some(format!(
            "Bearer realm=\"ark\", error=\"insufficient_scope\", scope=\"{scope}\""
        )),
        "[{:?}]",
        srv.flavor
    );
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `(limit, remaining, reset)`, all three or none.
#[track_caller]
pub fn rate(res: &RawResponse) -> Option<(u64, u64, u64)> {
    let get = |n: &str| {
        res.header(n)
            .map(|v| v.parse::<u64>().unwrap_or_else(|_| panic!("{n}: {v:?}")))
    };
    match (
        get("x-ratelimit-limit"),
        get("x-ratelimit-remaining"),
        get("x-ratelimit-reset"),
    ) {
        (Some(l), Some(r), Some(t)) => Some((l, r, t)),
        (None, None, None) => None,
        other => panic!(
            "partial rate-limit headers {other:?}: {:?}",
            res.headers_text()
        ),
    }
}

/// Rate-limit headers present, with this limit and remaining, and a plausible reset (a Unix
/// time in seconds, not in the past, at most a few windows of one second ahead).
#[track_caller]
pub fn assert_rate(srv: &Server, res: &RawResponse, limit: u64, remaining: u64) {
    let (l, r, reset) = rate(res).unwrap_or_else(|| {
        panic!(
            "[{:?}] no rate-limit headers: {:?}",
            srv.flavor,
            res.headers_text()
        )
    });
    assert_eq!(
        (l, r),
        (limit, remaining),
        "[{:?}] limit/remaining",
        srv.flavor
    );
    let now = unix_now();
    assert!(
        reset + 1 >= now && reset <= now + 3,
        "[{:?}] X-RateLimit-Reset {reset} vs now {now}",
        srv.flavor
    );
}

#[track_caller]
pub fn retry_after(srv: &Server, res: &RawResponse) -> u64 {
    let v = res.header("retry-after").unwrap_or_else(|| {
        panic!(
            "[{:?}] no Retry-After: {:?}",
            srv.flavor,
            res.headers_text()
        )
    });
    let secs: u64 = v
        .parse()
        .unwrap_or_else(|_| panic!("[{:?}] Retry-After not whole seconds: {v:?}", srv.flavor));
    assert!(secs >= 1, "[{:?}] Retry-After {secs}", srv.flavor);
    secs
}

/// A 200 from the echo handler for `key`; returns what the handler saw.
#[track_caller]
pub fn ok_for(srv: &Server, res: &RawResponse, key: &TestKey) -> Value {
    assert_eq!(
        res.status,
        200,
        "[{:?}] {} {:?}",
        srv.flavor,
        res.body_text(),
        res.headers_text()
    );
    let v = res.json();
    assert_eq!(v["id"], json!(key.id), "[{:?}] {v}", srv.flavor);
    v
}
