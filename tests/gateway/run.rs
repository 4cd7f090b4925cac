//! The gateway example as a process, and a client for it.
//!
//! Cargo gives integration tests the path of the crate's binaries but not of its examples;
//! `cargo test` builds the examples before it runs the tests, into
//! `<target>/<profile>/examples/`, beside this test's own `deps/`. When the binary is
//! missing (a test binary run by hand, or `cargo test --test gateway` alone, which does not
//! build examples), the test says how to build it and skips, or fails under `CI=true`.
//! A stale binary is not detected: after changing the example, `cargo build --example
//! gateway` before `cargo test --test gateway`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

#[path = "../common/process.rs"]
mod process;

pub type ClientBody = BoxBody<Bytes, Infallible>;

/// The gateway example's binary, if built.
pub fn gateway_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe
        .parent()? // deps
        .parent()? // <profile>
        .join("examples")
        .join(format!("gateway{}", std::env::consts::EXE_SUFFIX));
    if bin.is_file() {
        return Some(bin);
    }
    let why = format!(
        "no gateway example binary at {} (cargo test builds it; or run \
         `cargo build --example gateway`)",
        bin.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true: {why}");
    }
    eprintln!("skipping: {why}");
    None
}

/// A running gateway process (killed when dropped).
pub struct Gateway {
    pub addr: SocketAddr,
    _child: Child,
}

/// Starts the gateway on a free port in front of `upstream`, with the keys file and
/// `extra` arguments. In memory: no database or Redis even when their variables are set.
pub async fn start(bin: &Path, upstream: &str, keys: &Path, extra: &[&str]) -> Gateway {
    let mut child = Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--upstream", upstream])
        .arg("--keys")
        .arg(keys)
        .args(extra)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the gateway");
    let addr = process::listen_address(&mut child, || "see its stderr above".into()).await;
    Gateway {
        addr,
        _child: child,
    }
}

/// Sends `req` over a fresh HTTP/1.1 connection to `addr`, exactly as built (no header
/// added: the caller sets `host`).
pub async fn send(addr: SocketAddr, req: Request<ClientBody>) -> Response<Incoming> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    tokio::time::timeout(Duration::from_secs(20), sender.send_request(req))
        .await
        .expect("a response within 20 s")
        .unwrap()
}

/// A request body of these bytes.
pub fn full(body: impl Into<Bytes>) -> ClientBody {
    Full::new(body.into()).boxed()
}

/// The whole body of a response.
pub async fn body_of(res: Response<Incoming>) -> (hyper::http::response::Parts, Bytes) {
    let (parts, body) = res.into_parts();
    let bytes = tokio::time::timeout(Duration::from_secs(20), body.collect())
        .await
        .expect("the body within 20 s")
        .unwrap()
        .to_bytes();
    (parts, bytes)
}

/// Sends `req` over a fresh cleartext HTTP/2 connection (prior knowledge) to `addr`.
pub async fn send_h2(addr: SocketAddr, req: Request<ClientBody>) -> Response<Incoming> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    tokio::time::timeout(Duration::from_secs(20), sender.send_request(req))
        .await
        .expect("a response within 20 s")
        .unwrap()
}
