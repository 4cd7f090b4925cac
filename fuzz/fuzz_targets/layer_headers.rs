//! The whole layer on arbitrary requests: method, path and a header map built from the fuzz
//! input (any names, any values, duplicates), in front of a counting inner service, over a
//! `MemoryKeyStore` holding a few keys (full access, read-only, revoked, expired,
//! tenant-scoped, 1 request/s).
//!
//! Checked per request: no panic; the answer is ready at once (the in-memory store and
//! limiter answer synchronously); the status is one of 200/401/403/429 (never a 5xx), and a
//! gRPC rejection is a 200 with `grpc-status` 16, 7 or 8; the
//! inner service runs only for a request carrying exactly one `Authorization` header whose
//! value parses to a stored, usable key, and then sees that key; no response header or body
//! repeats a key's secret.
//!
//! Input format: the first line is `METHOD PATH`, every further line `name:value`. In a
//! value, `@0`..`@5` stand for the tokens of the stored keys (so the fuzzer reaches the
//! accepted paths) and `@9` for a well-formed unknown token.
#![no_main]

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use ark_auth::{
    key::KeyRecord,
    limit::MemoryRateLimiter,
    policy::RequestHead,
    token::{parse_authorization, Token},
    Access, ArkAuth, ArkAuthLayer, AuthenticatedKey, MemoryKeyStore, Permission, Permissions,
};
use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::{Method, Request, Response};
use http_body::Body;
use libfuzzer_sys::fuzz_target;
use tower_layer::Layer;
use tower_service::Service;

const TOKENS: [&str; 6] = [
    "ark_live_FullAccess0123456789abcdefABCDEF",
    "ark_test_ReadOnly0123456789abcdefABCDEFG",
    "ark_live_Revoked0123456789abcdefABCDEFGH",
    "ark_live_Expired0123456789abcdefABCDEFGH",
    "ark_live_TenantA0123456789abcdefABCDEFGH",
    "ark_live_OnePerSecond0123456789abcdefABC",
];
const UNKNOWN: &str = "ark_live_Unknown0123456789abcdefABCDEFGH";

/// The inner service: counts calls and remembers the key it was handed.
#[derive(Clone)]
struct Inner {
    calls: Arc<AtomicUsize>,
    seen: Arc<Mutex<Option<String>>>,
}

impl Service<Request<String>> for Inner {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: Request<String>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let key = req
            .extensions()
            .get::<AuthenticatedKey>()
            .map(|k| k.id().to_owned());
        *self.seen.lock().unwrap() = key;
        std::future::ready(Ok(Response::new(String::from("inner"))))
    }
}

fn policy(req: &RequestHead<'_>) -> Access {
    let path = req.uri.path();
    match (req.method.as_str(), path) {
        ("GET", "/public") => Access::Public,
        ("POST", p) if p.starts_with("/v1/emails") => Access::require(Permission::EmailsSend),
        (_, p) if p.starts_with("/v1/tenants/") => {
            let tenant = p.split('/').nth(3).unwrap_or_default();
            Access::require(Permission::DomainsManage).for_tenant(tenant)
        }
        _ => Access::any_key(),
    }
}

type Svc = ArkAuth<Inner, MemoryKeyStore, MemoryRateLimiter, fn(&RequestHead<'_>) -> Access>;

struct World {
    svc: Mutex<Svc>,
    inner: Inner,
    records: Vec<KeyRecord>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let now = SystemTime::now();
        let rec = |i: usize| KeyRecord::from_token(&Token::parse(TOKENS[i]).unwrap());
        let records = vec![
            rec(0).with_permissions(Permissions::ALL),
            rec(1).with_permissions(Permission::EmailsRead.into()),
            rec(2).with_permissions(Permissions::ALL).with_revoked(true),
            rec(3)
                .with_permissions(Permissions::ALL)
                .with_expiry(now - Duration::from_secs(1)),
            rec(4)
                .with_permissions(Permissions::ALL)
                .with_tenant("tn_a"),
            rec(5).with_permissions(Permissions::ALL).with_rate_limit(1),
        ];
        let store = MemoryKeyStore::from_records(records.clone()).unwrap();
        let inner = Inner {
            calls: Arc::new(AtomicUsize::new(0)),
            seen: Arc::new(Mutex::new(None)),
        };
        let layer = ArkAuthLayer::new(store).policy(policy as fn(&RequestHead<'_>) -> Access);
        World {
            svc: Mutex::new(layer.layer(inner.clone())),
            inner,
            records,
        }
    })
}

/// Expands `@N` into the N-th token.
fn expand(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        if value[i] == b'@' && i + 1 < value.len() {
            let tok = match value[i + 1] {
                d @ b'0'..=b'5' => Some(TOKENS[usize::from(d - b'0')]),
                b'9' => Some(UNKNOWN),
                _ => None,
            };
            if let Some(t) = tok {
                out.extend_from_slice(t.as_bytes());
                i += 2;
                continue;
            }
        }
        out.push(value[i]);
        i += 1;
    }
    out
}

fn poll_now<F: Future>(fut: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(fut).poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the synchronous path returned Pending"),
    }
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let mut lines = data.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    let (method, path) = match first.iter().position(|&b| b == b' ') {
        Some(i) => (&first[..i], &first[i + 1..]),
        None => (first, &b"/"[..]),
    };
    let method = Method::from_bytes(method).unwrap_or(Method::GET);
    let mut builder = Request::builder().method(method);
    if let Ok(uri) = http::Uri::try_from(path) {
        builder = builder.uri(uri);
    }
    let Ok(mut req) = builder.body(String::new()) else {
        return;
    };
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(&expand(&line[colon + 1..])),
        ) else {
            continue;
        };
        req.headers_mut().append(name, value);
    }

    // What the layer may let through: exactly one Authorization header, holding a stored
    // key that is neither revoked nor expired.
    let auth: Vec<_> = req.headers().get_all(AUTHORIZATION).iter().collect();
    let public = req.method() == Method::GET && req.uri().path() == "/public";
    let usable = match auth.as_slice() {
        [one] => parse_authorization(one.as_bytes()).ok().and_then(|t| {
            let presented = KeyRecord::from_token(&t);
            w.records
                .iter()
                .find(|r| r.hash() == presented.hash())
                .filter(|r| r.is_usable_at(SystemTime::now()))
                .map(|r| r.id().to_owned())
        }),
        _ => None,
    };

    let request_id = req.headers().get("x-request-id").cloned();
    let before = w.inner.calls.load(Ordering::SeqCst);
    *w.inner.seen.lock().unwrap() = None;
    let res = {
        let mut svc = w.svc.lock().unwrap();
        assert!(matches!(
            poll_now(std::future::poll_fn(|cx| svc.poll_ready(cx))),
            Ok(())
        ));
        let fut = svc.call(req);
        drop(svc);
        poll_now(fut).unwrap()
    };
    let called = w.inner.calls.load(Ordering::SeqCst) - before;
    let status = res.status().as_u16();
    assert!(
        matches!(status, 200 | 401 | 403 | 429),
        "status {status} for {data:?}"
    );
    // A gRPC caller (`Content-Type: application/grpc…`) gets its rejections as HTTP 200
    // with `grpc-status` 16 (the 401s), 7 (403) or 8 (429); never 14 (no store failure here).
    let grpc_status = res
        .headers()
        .get("grpc-status")
        .map(|v| v.as_bytes().to_vec());
    if let Some(g) = &grpc_status {
        assert_eq!(status, 200, "grpc-status on an HTTP {status}");
        assert!(
            matches!(g.as_slice(), b"16" | b"7" | b"8"),
            "grpc-status {:?}",
            String::from_utf8_lossy(g)
        );
    }
    let accepted = status == 200 && grpc_status.is_none();
    assert!(called <= 1);
    assert_eq!(
        called == 1,
        accepted,
        "status {status}, grpc-status {grpc_status:?}, inner calls {called}"
    );
    if called == 1 && !public {
        let seen = w.inner.seen.lock().unwrap().clone();
        assert!(
            usable.is_some(),
            "inner service called without a usable key: {data:?}"
        );
        assert_eq!(seen, usable, "inner service saw another key than presented");
    }

    // Nothing in the answer repeats a secret.
    let (parts, body) = res.into_parts();
    let mut body = pin!(body);
    let mut bytes = Vec::new();
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        match body.as_mut().poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(d) = frame.into_data() {
                    bytes.extend_from_slice(d.as_ref());
                }
            }
            Poll::Ready(None) => break,
            Poll::Ready(Some(Err(_))) => panic!("body error"),
            Poll::Pending => panic!("body pending"),
        }
    }
    for (_, v) in &parts.headers {
        bytes.extend_from_slice(b"\n");
        bytes.extend_from_slice(v.as_bytes());
    }
    // The contract echoes a valid client `X-Request-Id` (1-128 of [A-Za-z0-9._-]) verbatim
    // in the header and `meta.requestId`: a client that put a key there gets it back. That
    // echo is cut out before looking; every other byte of the answer must be free of
    // secrets. (See the README's Security section: ids holding `ark_live_`/`ark_test_`
    // are better replaced by a fresh id.)
    if let (Some(echoed), Some(sent)) = (parts.headers.get("x-request-id"), request_id.as_ref()) {
        if echoed == sent && !sent.is_empty() {
            let id = sent.as_bytes();
            let mut cut = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i..].starts_with(id) {
                    i += id.len();
                } else {
                    cut.push(bytes[i]);
                    i += 1;
                }
            }
            bytes = cut;
        }
    }
    for t in TOKENS.iter().chain([&UNKNOWN]) {
        let secret = &t.as_bytes()[9..];
        assert!(
            // First byte first: a slice comparison per position is slow under ASan.
            !bytes
                .windows(secret.len())
                .any(|w| w[0] == secret[0] && w == secret),
            "a secret in the response"
        );
    }
});
