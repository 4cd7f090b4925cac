//! The demo server's `GET /metrics` over TCP (the example's source compiled in with
//! `#[path]`, served by its own serve loop on 127.0.0.1): public, in the Prometheus text
//! format. One test in this binary: the recorder is process-wide, so nothing else may
//! count meanwhile.

#[allow(dead_code, unused_imports)]
#[path = "../examples/server/main.rs"]
mod server;

use std::net::SocketAddr;

use ark_auth::MemoryKeyStore;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_public_prometheus_text() {
    let addr = serve(server::app(MemoryKeyStore::new())).await;
    let (status, head, body) = call(addr, "GET", "/metrics", None).await;
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(
        head.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    // Every line is a comment or `name{labels} value`.
    for line in body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
    // Only GET is public: another method is undeclared, so it fails closed.
    let (status, _, _) = call(addr, "POST", "/metrics", None).await;
    assert_eq!(status, 401);
}
