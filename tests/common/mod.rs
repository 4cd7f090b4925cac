//! Helpers for the wire-contract tests: the two servers (axum and plain hyper) with
//! `ArkAuthLayer` in front of a counting echo handler, and a raw HTTP/1.1 client that writes
//! request bytes exactly as given.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::future::IntoFuture;

use ark_auth::{
    key::{KeyHash, KeyRecord},
    limit::{BoxLimit, LimitResult, LimiterError, MemoryRateLimiter, Quotas, RateLimiter},
    store::{Answer, BoxLookup, KeyStore, LookupResult, StoreError},
    AccessPolicy, ArkAuthLayer, AuthenticatedKey, MemoryKeyStore,
};
use bytes::Bytes;
use http_body_util::Full;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Which server a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// axum 0.8 `Router` with the layer applied by `Router::layer`.
    Axum,
    /// hyper 1 `http1` connection, tower `service_fn` wrapped by the layer, no axum.
    Hyper,
}

pub const FLAVORS: [Flavor; 2] = [Flavor::Axum, Flavor::Hyper];

/// A running test server.
pub struct Server {
    pub flavor: Flavor,
    pub addr: SocketAddr,
    calls: Arc<AtomicUsize>,
}

impl Server {
    /// A server started elsewhere (no counting handler).
    pub fn external(flavor: Flavor, addr: SocketAddr) -> Server {
        Server {
            flavor,
            addr,
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// How many times the inner handler ran.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// What the echo handler answers: the authenticated key as the application sees it.
pub fn key_json(key: &AuthenticatedKey, path: &str) -> Value {
    json!({
        "id": key.id(),
        "name": key.name(),
        "environment": key.environment().as_str(),
        "test": key.is_test(),
        "permissions": key.permissions().iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "tenant": key.tenant(),
        "metadata": key.metadata(),
        "path": path,
    })
}

/// Spawns `layer` in front of a counting echo handler on the given server flavor.
pub async fn spawn<K, L, P>(flavor: Flavor, layer: ArkAuthLayer<K, L, P>) -> Server
where
    K: KeyStore + Clone,
    L: RateLimiter + Clone,
    P: AccessPolicy,
{
    let calls = Arc::new(AtomicUsize::new(0));
    let addr = match flavor {
        Flavor::Axum => spawn_axum(layer, calls.clone()).await,
        Flavor::Hyper => spawn_hyper(layer, calls.clone()).await,
    };
    Server {
        flavor,
        addr,
        calls,
    }
}

/// One server of each flavor, each with its own layer from `make` (the key store and the
/// limiter are whatever `make` gives; see [`own_limiter`] for servers that must not share
/// counts).
pub async fn spawn_both<K, L, P>(make: impl Fn() -> ArkAuthLayer<K, L, P>) -> Vec<Server>
where
    K: KeyStore + Clone,
    L: RateLimiter + Clone,
    P: AccessPolicy,
{
    let mut servers = Vec::new();
    for flavor in FLAVORS {
        servers.push(spawn(flavor, make()).await);
    }
    servers
}

/// A layer over `store` with an in-memory limiter of its own, for tests that send the same
/// keys to both servers of [`spawn_both`] and expect each to count them alone (as two
/// separate deployments would); `ArkAuthLayer::new` alone shares the process-wide limiter.
pub fn own_limiter<K: KeyStore + Clone>(store: K) -> ArkAuthLayer<K> {
    ArkAuthLayer::new(store).rate_limiter(MemoryRateLimiter::new())
}

/// axum: every path goes to one echo handler that takes `AuthenticatedKey` as an extractor.
pub async fn spawn_axum<K, L, P>(
    layer: ArkAuthLayer<K, L, P>,
    calls: Arc<AtomicUsize>,
) -> SocketAddr
where
    K: KeyStore + Clone,
    L: RateLimiter + Clone,
    P: AccessPolicy,
{
    let handler = move |key: AuthenticatedKey, uri: axum::http::Uri| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            axum::Json(key_json(&key, uri.path()))
        }
    };
    let app = axum::Router::new().fallback(handler).layer(layer);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    addr
}

/// Plain hyper 1: `http1` connections, a tower `service_fn` echo handler reading the key
/// from the request extensions, wrapped with the layer and adapted by
/// `TowerToHyperService`.
pub async fn spawn_hyper<K, L, P>(
    layer: ArkAuthLayer<K, L, P>,
    calls: Arc<AtomicUsize>,
) -> SocketAddr
where
    K: KeyStore + Clone,
    L: RateLimiter + Clone,
    P: AccessPolicy,
{
    use hyper::body::Incoming;
    use hyper::{Request, Response};

    let inner = tower::service_fn(move |req: Request<Incoming>| {
        calls.fetch_add(1, Ordering::SeqCst);
        let res = match req.extensions().get::<AuthenticatedKey>() {
            Some(key) => {
                let body = key_json(key, req.uri().path()).to_string();
                Response::builder()
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap()
            }
            // Would be a layer bug: the handler ran without a key.
            None => Response::builder()
                .status(599)
                .body(Full::new(Bytes::from_static(b"no key")))
                .unwrap(),
        };
        async move { Ok::<_, Infallible>(res) }
    });
    let svc = tower::ServiceBuilder::new().layer(layer).service(inner);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let svc = hyper_util::service::TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// A response as read off the wire.
#[derive(Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Every header line in order, names lower-cased, repeated names kept.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for RawResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawResponse")
            .field("status", &self.status)
            .field("headers", &self.headers_text())
            .field("body", &self.body_text())
            .finish()
    }
}

impl RawResponse {
    /// The headers as `name: value` lines (values lossily decoded), for messages.
    pub fn headers_text(&self) -> Vec<String> {
        self.headers
            .iter()
            .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v)))
            .collect()
    }

    /// All values of a header.
    pub fn header_all(&self, name: &str) -> Vec<&[u8]> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    /// The value of a header that must appear at most once, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        let all = self.header_all(name);
        assert!(
            all.len() <= 1,
            "header {name} repeated: {:?}",
            self.headers_text()
        );
        all.first()
            .map(|v| String::from_utf8(v.to_vec()).expect("header value is UTF-8"))
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body_text()))
    }

    /// Whether `needle` occurs anywhere in the body or in any header value.
    pub fn contains(&self, needle: &[u8]) -> bool {
        find(&self.body, needle)
            || self
                .headers
                .iter()
                .any(|(n, v)| find(v, needle) || find(n.as_bytes(), needle))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// A raw request: request line, `Host`, the given header lines (bytes as given, without
/// CRLF), `Connection: close`, and for POST an empty body.
pub fn request<H: AsRef<[u8]>>(method: &str, path: &str, header_lines: &[H]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n").into_bytes();
    for line in header_lines {
        r.extend_from_slice(line.as_ref());
        r.extend_from_slice(b"\r\n");
    }
    if method == "POST" || method == "PUT" {
        r.extend_from_slice(b"Content-Length: 0\r\n");
    }
    r.extend_from_slice(b"Connection: close\r\n\r\n");
    r
}

/// `Authorization: <value>` as a header line.
pub fn authorization(value: &[u8]) -> Vec<u8> {
    let mut l = b"Authorization: ".to_vec();
    l.extend_from_slice(value);
    l
}

/// `Authorization: Bearer <token>` as a header line.
pub fn bearer(token: &str) -> Vec<u8> {
    authorization(format!("Bearer {token}").as_bytes())
}

/// Default deadline of one request/response exchange.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `raw` and reads the response; panics on a timeout or an unreadable response.
pub async fn send(addr: SocketAddr, raw: &[u8]) -> RawResponse {
    match try_send(addr, raw, REQUEST_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => panic!("request to {addr} failed: {e}"),
    }
}

/// Sends `raw` over a new connection and reads one response, within `timeout`.
pub async fn try_send(
    addr: SocketAddr,
    raw: &[u8],
    timeout: Duration,
) -> Result<RawResponse, String> {
    match tokio::time::timeout(timeout, exchange(addr, raw)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no response within {timeout:?} (hang)")),
    }
}

async fn exchange(addr: SocketAddr, raw: &[u8]) -> Result<RawResponse, String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    // The server may answer (and close) before reading everything, e.g. a 400 for a bad
    // byte: a write error is not the end, the response may be waiting.
    let write_err = stream.write_all(raw).await.err();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(res) = parse_response(&buf, false)? {
            return Ok(res);
        }
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => {
                if buf.is_empty() {
                    return Err(format!("read failed: {e} (write error: {write_err:?})"));
                }
                break;
            }
        }
    }
    parse_response(&buf, true)?.ok_or_else(|| {
        format!(
            "connection closed before a complete response (write error: {write_err:?}); got {:?}",
            String::from_utf8_lossy(&buf)
        )
    })
}

/// `Ok(None)` while the response is incomplete.
fn parse_response(buf: &[u8], eof: bool) -> Result<Option<RawResponse>, String> {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = &buf[..head_end];
    let rest = &buf[head_end + 4..];
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().ok_or("empty response")?;
    let status_line = std::str::from_utf8(status_line).map_err(|e| e.to_string())?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("bad status line {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| format!("bad header line {:?}", String::from_utf8_lossy(line)))?;
        let name = String::from_utf8_lossy(&line[..colon]).to_ascii_lowercase();
        let value = trim_ows(&line[colon + 1..]).to_vec();
        headers.push((name, value));
    }
    let get = |n: &str| {
        headers
            .iter()
            .find(|(h, _)| h == n)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let body = if let Some(len) = get("content-length") {
        let len: usize = len
            .trim()
            .parse()
            .map_err(|_| format!("bad content-length {len:?}"))?;
        if rest.len() < len {
            return Ok(None);
        }
        rest[..len].to_vec()
    } else if get("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    {
        match dechunk(rest)? {
            Some(b) => b,
            None => return Ok(None),
        }
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else if eof {
        // Body delimited by the end of the connection.
        rest.to_vec()
    } else {
        return Ok(None);
    };
    Ok(Some(RawResponse {
        status,
        headers,
        body,
    }))
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_text = String::from_utf8_lossy(&rest[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim().to_owned();
        let size = usize::from_str_radix(&size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(Some(out));
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

// ---------------------------------------------------------------------------------------
// Stores and limiters that fail
// ---------------------------------------------------------------------------------------

/// A key store that errors, hangs or panics for one poisoned key hash, and otherwise
/// answers from a memory store.
#[derive(Clone)]
pub struct BadStore {
    pub inner: MemoryKeyStore,
    /// `None`: every lookup misbehaves.
    pub poison: Option<KeyHash>,
    pub mode: Bad,
    pub lookups: Arc<AtomicUsize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    /// Answers an error at once.
    Error,
    /// Answers an error from its future.
    ErrorLater,
    Hang,
    /// Panics in `lookup` itself.
    PanicNow,
    /// Panics when the lookup future is polled.
    PanicInFuture,
}

impl Bad {
    /// Every way to fail.
    pub const ALL: [Bad; 5] = [
        Bad::Error,
        Bad::ErrorLater,
        Bad::Hang,
        Bad::PanicNow,
        Bad::PanicInFuture,
    ];
}

impl BadStore {
    /// Misbehaves for `poison` (`None`: for every lookup), answers from `inner` otherwise.
    pub fn new(inner: MemoryKeyStore, poison: Option<KeyHash>, mode: Bad) -> Self {
        BadStore {
            inner,
            poison,
            mode,
            lookups: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl KeyStore for BadStore {
    type Future = BoxLookup;
    fn lookup(&self, hash: &KeyHash) -> Answer<LookupResult, BoxLookup> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        if self.poison.is_some_and(|p| p != *hash) {
            let answer = self.inner.lookup(hash);
            return Answer::Later(Box::pin(answer.into_future()));
        }
        match self.mode {
            Bad::Error => Answer::Now(Err(StoreError::new("database is down"))),
            Bad::ErrorLater => {
                Answer::Later(Box::pin(async { Err(StoreError::new("database is down")) }))
            }
            Bad::Hang => Answer::Later(Box::pin(std::future::pending())),
            Bad::PanicNow => panic!("test store panics in lookup"),
            Bad::PanicInFuture => Answer::Later(Box::pin(async {
                tokio::task::yield_now().await;
                panic!("test store panics in its future")
            })),
        }
    }
}

/// A rate limiter that errors, hangs or panics.
#[derive(Clone)]
pub struct BadLimiter(pub Bad);

impl BadLimiter {
    fn check(&self) -> Answer<LimitResult, BoxLimit> {
        match self.0 {
            Bad::Error => Answer::Now(Err(LimiterError::new("redis is down"))),
            Bad::ErrorLater => {
                Answer::Later(Box::pin(async { Err(LimiterError::new("redis is down")) }))
            }
            Bad::Hang => Answer::Later(Box::pin(std::future::pending())),
            Bad::PanicNow => panic!("test limiter panics"),
            Bad::PanicInFuture => Answer::Later(Box::pin(async {
                tokio::task::yield_now().await;
                panic!("test limiter panics in its future")
            })),
        }
    }
}

impl RateLimiter for BadLimiter {
    type Future = BoxLimit;
    fn acquire(&self, _key: &KeyRecord, _quota: &Quotas) -> Answer<LimitResult, BoxLimit> {
        self.check()
    }
    fn peek(&self, _key: &KeyRecord, _quota: &Quotas) -> Answer<LimitResult, BoxLimit> {
        self.check()
    }
}

/// A `tracing` writer that keeps everything written to it, for tests that read the logs.
#[derive(Clone, Default)]
pub struct Capture(pub Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
