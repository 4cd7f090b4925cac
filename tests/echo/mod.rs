//! Servers (axum and plain hyper, over TCP) with a layer in front of a handler that echoes
//! what it received: the key it found (from the `Option<AuthenticatedKey>` extractor on
//! axum, the extensions on hyper) and every request header, one `name: value` line each.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ark_auth::{limit::RateLimiter, store::KeyStore, AccessPolicy, ArkAuthLayer, AuthenticatedKey};
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::Full;
use tokio::net::TcpListener;

pub use crate::common::Flavor;

/// A running echo server and the number of requests its handler saw.
pub struct Echo {
    pub addr: SocketAddr,
    calls: Arc<AtomicUsize>,
}

impl Echo {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// `key: <id>` (or `key: none`), then the request's headers, one line each in order.
pub fn echo(key: Option<&AuthenticatedKey>, headers: &HeaderMap) -> String {
    let mut out = format!("key: {}\n", key.map_or("none", AuthenticatedKey::id));
    for (name, value) in headers {
        out.push_str(name.as_str());
        out.push_str(": ");
        out.push_str(&String::from_utf8_lossy(value.as_bytes()));
        out.push('\n');
    }
    out
}

/// The lines of an echoed body that are headers named `name` (lower case).
pub fn echoed<'a>(body: &'a str, name: &str) -> Vec<&'a str> {
    body.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
        .collect()
}

/// The key an echoed body names.
pub fn echoed_key(body: &str) -> &str {
    body.lines()
        .next()
        .and_then(|l| l.strip_prefix("key: "))
        .unwrap_or("")
}

pub async fn spawn<K, L, P>(flavor: Flavor, layer: ArkAuthLayer<K, L, P>) -> Echo
where
    K: KeyStore + Clone,
    L: RateLimiter + Clone,
    P: AccessPolicy,
{
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    match flavor {
        Flavor::Axum => {
            let handler = move |key: Option<AuthenticatedKey>, headers: HeaderMap| {
                counter.fetch_add(1, Ordering::SeqCst);
                async move { echo(key.as_ref(), &headers) }
            };
            let app = axum::Router::new().fallback(handler).layer(layer);
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        }
        Flavor::Hyper => {
            let inner = tower::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                counter.fetch_add(1, Ordering::SeqCst);
                let body = echo(req.extensions().get::<AuthenticatedKey>(), req.headers());
                async move { Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(body)))) }
            });
            let svc = tower::ServiceBuilder::new().layer(layer).service(inner);
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
        }
    }
    Echo { addr, calls }
}
