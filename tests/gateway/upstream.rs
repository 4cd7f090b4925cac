//! A real upstream for the gateway: a hyper server on 127.0.0.1 that records every request
//! it receives (head at once, body once read) and answers by path:
//!
//! - `/reply?status=N`: status N with headers of its own ([`REPLY_HEADERS`]) and hop-by-hop
//!   headers ([`REPLY_HOP_HEADERS`]) that must not come back through the gateway;
//! - `/stream-in`: reads the body frame by frame, signals [`Upstream::first_bytes`] at the
//!   first data, answers `received N bytes`;
//! - `/stream-out`: streams `first-chunk`, waits for [`Upstream::release`], then
//!   `last-chunk`;
//! - `/stall-out`: streams `first-chunk`, then nothing, never ending;
//! - `/hang`: answers after a minute;
//! - anything else: `200 upstream ok`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub type Body = BoxBody<Bytes, Infallible>;

/// One request as the upstream received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The upstream's own headers on `/reply` (multi-valued ones twice).
pub const REPLY_HEADERS: [(&str, &str); 6] = [
    ("content-type", "text/plain; charset=utf-8"),
    ("x-upstream", "yes"),
    ("set-cookie", "a=1; Path=/"),
    ("set-cookie", "b=2; Path=/"),
    ("cache-control", "no-store"),
    ("etag", "\"v1\""),
];

/// Hop-by-hop headers the upstream adds to `/reply`; none may reach the client.
pub const REPLY_HOP_HEADERS: [(&str, &str); 4] = [
    ("connection", "x-hop-out"),
    ("x-hop-out", "private to the upstream's connection"),
    ("keep-alive", "timeout=5"),
    ("proxy-authenticate", "Basic realm=\"up\""),
];

/// The body of `/reply`.
pub const REPLY_BODY: &str = "hello from upstream";

pub struct Upstream {
    pub addr: SocketAddr,
    arrivals: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
    /// Notified when `/stream-in` has read its first data.
    pub first_bytes: Notify,
    /// Notify to let `/stream-out` send its last chunk.
    pub release: Notify,
}

impl Upstream {
    /// Starts the upstream on a free port.
    pub async fn start() -> Arc<Upstream> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up = Arc::new(Upstream {
            addr: listener.local_addr().unwrap(),
            arrivals: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            first_bytes: Notify::new(),
            release: Notify::new(),
        });
        let serving = Arc::clone(&up);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let up = Arc::clone(&serving);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let up = Arc::clone(&up);
                        async move { Ok::<_, Infallible>(up.answer(req).await) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        up
    }

    /// Requests whose head reached the upstream.
    pub fn arrivals(&self) -> usize {
        self.arrivals.load(Ordering::SeqCst)
    }

    /// Requests received in full (head and body), in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    async fn answer(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        self.arrivals.fetch_add(1, Ordering::SeqCst);
        let (parts, mut body) = req.into_parts();
        let mut data = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            if let Ok(chunk) = frame.into_data() {
                if data.is_empty() && !chunk.is_empty() {
                    self.first_bytes.notify_one();
                }
                data.extend_from_slice(&chunk);
            }
        }
        let received = data.len();
        self.seen.lock().unwrap().push(Seen {
            method: parts.method,
            uri: parts.uri.clone(),
            headers: parts.headers,
            body: Bytes::from(data),
        });
        match parts.uri.path() {
            "/reply" => reply(parts.uri.query().unwrap_or("")),
            "/stream-in" => text(format!("received {received} bytes")),
            "/stream-out" => Arc::clone(&self).stream_out(),
            "/stall-out" => {
                let first = futures::stream::once(async { Bytes::from_static(b"first-chunk") });
                let frames = first
                    .chain(futures::stream::pending())
                    .map(|b| Ok::<_, Infallible>(Frame::data(b)));
                Response::new(BodyExt::boxed(StreamBody::new(frames)))
            }
            "/hang" => {
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                text("too late".to_owned())
            }
            _ => text("upstream ok".to_owned()),
        }
    }

    fn stream_out(self: Arc<Self>) -> Response<Body> {
        let first = futures::stream::once(async { Bytes::from_static(b"first-chunk") });
        let last = futures::stream::once(async move {
            self.release.notified().await;
            Bytes::from_static(b"last-chunk")
        });
        let frames = first
            .chain(last)
            .map(|b| Ok::<_, Infallible>(Frame::data(b)));
        Response::new(BodyExt::boxed(StreamBody::new(frames)))
    }
}

fn text(s: String) -> Response<Body> {
    Response::new(Full::new(Bytes::from(s)).boxed())
}

fn reply(query: &str) -> Response<Body> {
    let status = query
        .strip_prefix("status=")
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut res = Response::new(Full::new(Bytes::from_static(REPLY_BODY.as_bytes())).boxed());
    *res.status_mut() = status;
    for (k, v) in REPLY_HEADERS.iter().chain(REPLY_HOP_HEADERS.iter()) {
        res.headers_mut().append(*k, v.parse().unwrap());
    }
    res
}
