//! The demo server's `GET /metrics` over TCP (the example's source compiled in with
//! `#[path]`, served by its own serve loop on 127.0.0.1): public, in the Prometheus text
//! format, and every count right: `/metrics` is read before and after a known mix of
//! requests, and each series moves by exactly what the mix should add (every line of the
//! body parses as a sample or a comment). One test in this binary: the recorder is
//! process-wide, so nothing else may count meanwhile.

#[allow(dead_code, unused_imports)]
#[path = "../examples/server/main.rs"]
mod server;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use ark_auth::key::{KeyHash, KeyRecord};
use ark_auth::limit::{LimitResult, LimiterError, MemoryRateLimiter, Quotas, RateLimiter};
use ark_auth::store::{Answer, BoxLookup, KeyStore, LookupResult};
use ark_auth::{generate_key, Environment, MemoryKeyStore, Permission, Permissions};
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Serves `app` on a free port until the test ends.
async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::serve::serve(
        listener,
        app,
        server::serve::LIMITS,
        std::future::pending(),
    ));
    addr
}

/// One request over a fresh connection: status, head and body.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let auth = key.map_or_else(String::new, |k| format!("authorization: Bearer {k}\r\n"));
    let req = format!("{method} {path} HTTP/1.1\r\nhost: x\r\n{auth}content-length: 0\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// The in-memory store answering later, as a database would: its lookups are the ones
/// `ark_auth_store_lookup_seconds` times.
#[derive(Clone)]
struct Deferred(MemoryKeyStore);

impl KeyStore for Deferred {
    type Future = BoxLookup;
    fn lookup(&self, hash: &KeyHash) -> Answer<LookupResult, BoxLookup> {
        let answer = self.0.lookup(hash);
        Answer::Later(Box::pin(async move {
            tokio::task::yield_now().await;
            answer.await
        }))
    }
}

/// A rate limiter that always fails (the layer serves anyway, by default).
#[derive(Clone)]
struct Broken;

impl RateLimiter for Broken {
    type Future = std::future::Ready<LimitResult>;
    fn acquire(&self, _: &KeyRecord, _: &Quotas) -> Answer<LimitResult, Self::Future> {
        Answer::Now(Err(LimiterError::new("the limiter is down")))
    }
    fn peek(&self, _: &KeyRecord, _: &Quotas) -> Answer<LimitResult, Self::Future> {
        Answer::Now(Err(LimiterError::new("the limiter is down")))
    }
}

/// Every sample of a Prometheus text body: `name{labels}` to value.
fn samples(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse::<f64>().unwrap())
        })
        .collect()
}

/// A key in `store`, with `edit` applied to its record.
fn mint(
    store: &MemoryKeyStore,
    perms: Permissions,
    edit: impl Fn(KeyRecord) -> KeyRecord,
) -> String {
    let k = generate_key(Environment::Test).unwrap();
    store
        .try_insert(edit(k.record.with_permissions(perms)))
        .unwrap();
    k.plaintext.expose_secret().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_every_outcome() {
    let store = MemoryKeyStore::new();
    let full = mint(&store, Permissions::ALL, |r| r);
    let read = mint(&store, Permission::EmailsRead.into(), |r| r);
    let revoked = mint(&store, Permissions::ALL, |r| r.with_revoked(true));
    let past = SystemTime::now() - Duration::from_secs(60);
    let expired = mint(&store, Permissions::ALL, |r| r.with_expiry(past));
    let slow = mint(&store, Permissions::ALL, |r| r.with_rate_limit(1));
    let unknown = generate_key(Environment::Test).unwrap();
    let unknown = unknown.plaintext.expose_secret().to_owned();
    let addr = serve(server::app_with(
        Deferred(store.clone()),
        MemoryRateLimiter::new(),
    ))
    .await;
    // The same keys behind a limiter that fails.
    let broken = serve(server::app_with(store, Broken)).await;

    let (status, _, before) = call(addr, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    let before = samples(&before);

    let mix: [(SocketAddr, &str, &str, Option<&str>, u16); 15] = [
        (addr, "GET", "/health", None, 200),
        // Only GET /metrics is public: another method is undeclared, so it fails closed.
        (addr, "POST", "/metrics", None, 401),
        (addr, "GET", "/v1/limits", None, 401),
        (addr, "POST", "/v1/emails", None, 401),
        (addr, "GET", "/v1/limits", Some("ark_test_short"), 401),
        (addr, "GET", "/v1/limits", Some(&unknown), 401),
        (addr, "GET", "/v1/limits", Some(&revoked), 401),
        (addr, "GET", "/v1/limits", Some(&expired), 401),
        (addr, "POST", "/v1/emails", Some(&read), 403),
        (addr, "GET", "/v1/limits", Some(&slow), 200),
        (addr, "GET", "/v1/limits", Some(&slow), 429),
        (addr, "GET", "/v1/limits", Some(&full), 200),
        (addr, "GET", "/v1/emails", Some(&full), 200),
        (broken, "GET", "/v1/limits", Some(&full), 200),
        (broken, "GET", "/v1/limits", Some(&full), 200),
    ];
    for (at, method, path, key, expected) in mix {
        let (status, head, body) = call(at, method, path, key).await;
        assert_eq!(status, expected, "{method} {path}\n{head}\n{body}");
    }

    let (status, head, after) = call(addr, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    let after = samples(&after);
    let delta = |series: &str| {
        after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0)
    };
    let requests =
        |outcome: &str| delta(&format!("ark_auth_requests_total{{outcome=\"{outcome}\"}}"));
    // /health, and the second read of /metrics itself.
    assert_eq!(requests("public"), 2.0);
    assert_eq!(requests("authentication_required"), 3.0);
    assert_eq!(requests("invalid_api_key"), 2.0);
    assert_eq!(requests("expired_api_key"), 2.0);
    assert_eq!(requests("permission_denied"), 1.0);
    assert_eq!(requests("rate_limit_exceeded"), 1.0);
    // slow, full twice, and the two the broken limiter let through.
    assert_eq!(requests("accepted"), 5.0);
    assert_eq!(requests("service_unavailable"), 0.0);
    assert_eq!(requests("anonymous"), 0.0);
    // Lookups that went to the (deferred) store: every well-formed token on `addr`.
    assert_eq!(delta("ark_auth_store_lookup_seconds_count"), 8.0);
    assert!(delta("ark_auth_store_lookup_seconds_sum") > 0.0);
    assert_eq!(
        delta("ark_auth_limiter_failures_total{failure=\"error\"}"),
        2.0
    );
    // No per-key series by default.
    assert!(after.keys().all(|s| !s.contains("key_id")), "{after:?}");
}
