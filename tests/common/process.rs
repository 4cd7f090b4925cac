//! Test servers run as processes (the demo server, the gateway): where a started one
//! listens, and one request to it. Included with `#[path]` by the tests that start them.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Child;

/// Reads the `listening on http://ADDR` line from `child`'s piped stdout (within 30 s), then
/// keeps draining stdout so the process never writes into a full pipe. `exited` describes
/// the process when it ends before listening (its log, or where to look for it).
pub async fn listen_address(child: &mut Child, exited: impl FnOnce() -> String) -> SocketAddr {
    let mut lines = BufReader::new(child.stdout.take().expect("stdout piped")).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
            .await
            .expect("the process printed its address in time")
            .unwrap();
        let Some(line) = line else {
            panic!("the process exited before listening: {}", exited());
        };
        if let Some(a) = line.strip_prefix("listening on http://") {
            break a.trim().parse::<SocketAddr>().unwrap();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    addr
}

/// One `GET /v1/limits` with the key over a fresh connection; the status.
pub async fn status(addr: SocketAddr, token: &str) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /v1/limits HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..buf.len().min(12)]).into_owned();
    head.get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {head:?}"))
}
