//! Refusals keep the connection: over real TCP (plain hyper and axum), a keep-alive client
//! sends refused POSTs with JSON bodies (401, 403, 429) between accepted ones on one
//! connection, with no transport error and no second connection; bodies past the drain
//! bound get `Connection: close` and a clean close after the full response; over HTTP/2 a
//! refused request with a large body does not hold up another stream.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ark_auth::{
    generate_key, limit::Quota, ArkAuthLayer, Environment, MemoryKeyStore, Permission, Permissions,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Keys {
    store: MemoryKeyStore,
    ok: String,
    no_permission: String,
    limited: String,
}

fn keys() -> Keys {
    let k = |f: &dyn Fn(ark_auth::key::KeyRecord) -> ark_auth::key::KeyRecord| {
        let g = generate_key(Environment::Live).unwrap();
        (g.plaintext.expose_secret().to_owned(), f(g.record))
    };
    let (ok, r1) = k(&|r| {
        r.with_permissions(Permissions::ALL)
            .with_rate_limit(1_000_000)
    });
    let (no_permission, r2) = k(&|r| r.with_permissions(Permissions::NONE));
    // The layer's default quota is 1 per hour: one admitted, then 429.
    let (limited, r3) = k(&|r| r.with_permissions(Permissions::ALL));
    Keys {
        store: MemoryKeyStore::from_records([r1, r2, r3]).unwrap(),
        ok,
        no_permission,
        limited,
    }
}

fn layer(keys: &Keys) -> ArkAuthLayer<MemoryKeyStore> {
    ArkAuthLayer::new(keys.store.clone())
        .require(Permission::EmailsSend)
        .default_quota(Quota::new(
            NonZeroU32::new(1).unwrap(),
            Duration::from_secs(3600),
        ))
}

#[derive(Clone, Copy, Debug)]
enum Flavor {
    Hyper,
    Axum,
}

/// A server counting the connections it accepted; the handler reads the whole body and
/// answers its length.
async fn serve(
    flavor: Flavor,
    layer: ArkAuthLayer<MemoryKeyStore>,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    match flavor {
        Flavor::Hyper => {
            let inner = tower::service_fn(|req: http::Request<Incoming>| async move {
                let n = req.into_body().collect().await.map(|b| b.to_bytes().len());
                let body = match n {
                    Ok(n) => format!("{{\"read\":{n}}}"),
                    Err(e) => format!("{{\"error\":\"{e}\"}}"),
                };
                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(body))))
            });
            let svc = tower::ServiceBuilder::new().layer(layer).service(inner);
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                    let svc = hyper_util::service::TowerToHyperService::new(svc.clone());
                    tokio::spawn(async move {
                        let _ = hyper_util::server::conn::auto::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        )
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                    });
                }
            });
        }
        Flavor::Axum => {
            let app = axum::Router::new()
                .route(
                    "/v1/emails",
                    axum::routing::post(|body: Bytes| async move {
                        format!("{{\"read\":{}}}", body.len())
                    }),
                )
                .layer(layer);
            let listener = Counting {
                listener,
                accepted: counter,
            };
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        }
    }
    (addr, accepted)
}

/// axum's listener, counting accepted connections.
struct Counting {
    listener: TcpListener,
    accepted: Arc<AtomicUsize>,
}

impl axum::serve::Listener for Counting {
    type Io = TcpStream;
    type Addr = SocketAddr;
    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        let io = axum::serve::Listener::accept(&mut self.listener).await;
        self.accepted.fetch_add(1, Ordering::SeqCst);
        io
    }
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A response read off a keep-alive connection.
#[derive(Debug)]
struct Res {
    status: u16,
    close: bool,
    body: Vec<u8>,
}

/// Reads one response (`Content-Length` framed, as both servers answer here) from `conn`,
/// keeping any bytes past it in `buf`.
async fn read_response(conn: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Res> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status = head[9..12].parse().unwrap();
            let header = |name: &str| {
                head.lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            };
            let len: usize = header("content-length:")
                .expect("content-length")
                .parse()
                .unwrap();
            let close = header("connection:").is_some_and(|v| v == "close");
            while buf.len() < end + 4 + len {
                read_more(conn, buf).await?;
            }
            let body = buf[end + 4..end + 4 + len].to_vec();
            buf.drain(..end + 4 + len);
            return Ok(Res {
                status,
                close,
                body,
            });
        }
        read_more(conn, buf).await?;
    }
}

async fn read_more(conn: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 16 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk))
        .await
        .map_err(|_| std::io::Error::other("read timed out"))??;
    if n == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "closed",
        ));
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

fn json_body(i: usize) -> String {
    // 60 B to about 20 KiB
    let pad = "x".repeat((i * 997) % 20_000);
    format!(
        "{{\"from\":\"a@example.com\",\"to\":[\"b@example.com\"],\"n\":{i},\"html\":\"{pad}\"}}"
    )
}

/// A POST with a JSON body, `Content-Length` framed or (every fourth) chunked.
fn post(token: &str, body: &str, chunked: bool) -> Vec<u8> {
    let mut r = format!(
        "POST /v1/emails HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\n"
    );
    if chunked {
        let (a, b) = body.split_at(body.len() / 2);
        r.push_str("transfer-encoding: chunked\r\n\r\n");
        for part in [a, b] {
            if !part.is_empty() {
                r.push_str(&format!("{:x}\r\n{part}\r\n", part.len()));
            }
        }
        r.push_str("0\r\n\r\n");
    } else {
        r.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    }
    r.into_bytes()
}

const REFUSED: usize = 10_002;

async fn refusals_keep_the_connection(flavor: Flavor) {
    let keys = keys();
    let (addr, accepted) = serve(flavor, layer(&keys)).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.set_nodelay(true).unwrap();
    let mut buf = Vec::new();
    let unknown = "ark_live_0000000000000000000000000000";
    let started = Instant::now();
    let mut seen = [0usize; 3];
    for i in 0..REFUSED {
        let body = json_body(i);
        let (token, status) = match i % 3 {
            0 => (unknown, 401),
            1 => (keys.no_permission.as_str(), 403),
            _ => (keys.limited.as_str(), 429),
        };
        // The 429 key's one admitted request comes first.
        let status = if i == 2 { 200 } else { status };
        conn.write_all(&post(token, &body, i % 4 == 3))
            .await
            .unwrap();
        let res = read_response(&mut conn, &mut buf)
            .await
            .unwrap_or_else(|e| panic!("[{flavor:?}] refused request {i}: {e}"));
        assert_eq!(
            res.status,
            status,
            "[{flavor:?}] {i}: {}",
            String::from_utf8_lossy(&res.body)
        );
        assert!(!res.close, "[{flavor:?}] {i}: Connection: close");
        if status != 200 {
            seen[i % 3] += 1;
        }
        // Every other refusal is followed by an accepted request on the same connection.
        if i % 2 == 0 {
            let body = json_body(i + 1);
            conn.write_all(&post(&keys.ok, &body, i % 8 == 0))
                .await
                .unwrap();
            let res = read_response(&mut conn, &mut buf)
                .await
                .unwrap_or_else(|e| panic!("[{flavor:?}] accepted request after {i}: {e}"));
            assert_eq!(res.status, 200, "[{flavor:?}] {i}");
            assert_eq!(
                res.body,
                format!("{{\"read\":{}}}", body.len()).into_bytes()
            );
        }
    }
    assert!(seen.iter().all(|&n| n >= 3_300), "{seen:?}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "[{flavor:?}] connections accepted"
    );
    eprintln!(
        "[{flavor:?}] {REFUSED} refused + {} accepted POSTs on one connection in {:?}",
        REFUSED.div_ceil(2),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_posts_keep_the_connection_hyper() {
    refusals_keep_the_connection(Flavor::Hyper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_posts_keep_the_connection_axum() {
    refusals_keep_the_connection(Flavor::Axum).await;
}

/// Reads a response, then expects the connection to end with a clean EOF.
async fn response_then_clean_close(conn: &mut TcpStream) -> Res {
    let mut buf = Vec::new();
    let res = read_response(conn, &mut buf)
        .await
        .expect("the full response");
    assert!(buf.is_empty(), "bytes after the response: {buf:?}");
    let mut rest = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut rest))
        .await
        .expect("the server closes the connection")
        .expect("a clean close, not a reset");
    assert_eq!(n, 0, "EOF after the response");
    res
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_past_the_bound_get_connection_close_and_a_clean_close() {
    for flavor in [Flavor::Hyper, Flavor::Axum] {
        let keys = keys();
        let layer = layer(&keys).drain_refused_bodies(64 * 1024, Duration::from_millis(300));
        let (addr, _) = serve(flavor, layer).await;

        // Announced above the bound: answered at once, without reading.
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /v1/emails HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {}\r\ncontent-length: {}\r\n\r\n",
            keys.no_permission,
            10 << 20
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        let res = response_then_clean_close(&mut conn).await;
        assert_eq!((res.status, res.close), (403, true), "[{flavor:?}]");

        // Chunked, turning out larger than the bound (sent whole, then the client reads).
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let big = "y".repeat(100 * 1024);
        conn.write_all(&post("ark_live_0000000000000000000000000000", &big, true))
            .await
            .unwrap();
        let mut buf = Vec::new();
        let res = read_response(&mut conn, &mut buf)
            .await
            .expect("the full response");
        assert_eq!((res.status, res.close), (401, true), "[{flavor:?}]");
        assert!(String::from_utf8_lossy(&res.body).contains("invalid_api_key"));

        // Too slow: part of the body, then nothing until the deadline has passed.
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /v1/emails HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {}\r\ncontent-length: 100\r\n\r\n{{\"a\":",
            keys.no_permission
        );
        let t = Instant::now();
        conn.write_all(head.as_bytes()).await.unwrap();
        let res = response_then_clean_close(&mut conn).await;
        assert_eq!((res.status, res.close), (403, true), "[{flavor:?}]");
        let waited = t.elapsed();
        assert!(
            waited >= Duration::from_millis(290) && waited < Duration::from_secs(3),
            "[{flavor:?}] answered after {waited:?}"
        );

        // Within the bound, sent slowly but in time: read whole, the connection stays.
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /v1/emails HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {}\r\ncontent-length: 8\r\n\r\n{{\"a\":",
            keys.no_permission
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        conn.write_all(b"1}\n").await.unwrap();
        let mut buf = Vec::new();
        let res = read_response(&mut conn, &mut buf).await.unwrap();
        assert_eq!((res.status, res.close), (403, false), "[{flavor:?}]");
        conn.write_all(&post(&keys.ok, "{}", false)).await.unwrap();
        let res = read_response(&mut conn, &mut buf).await.unwrap();
        assert_eq!(res.status, 200, "[{flavor:?}]");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_refused_large_body_does_not_hold_up_another_stream() {
    let keys = keys();
    let (addr, accepted) = serve(Flavor::Hyper, layer(&keys)).await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);

    // The refused stream: 4 MiB offered at once, then a body that never ends (answered well
    // inside the drain deadline: an HTTP/2 body is not read).
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(64);
    let feeder = tokio::spawn(async move {
        for _ in 0..64 {
            if tx
                .send(Ok(Frame::data(Bytes::from(vec![b'z'; 64 * 1024]))))
                .await
                .is_err()
            {
                return;
            }
        }
        std::future::pending::<()>().await;
    });
    let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let req = http::Request::post(format!("http://{addr}/v1/emails"))
        .header(
            "authorization",
            "Bearer ark_live_0000000000000000000000000000",
        )
        .body(body.boxed())
        .unwrap();
    let started = Instant::now();
    let refused = sender.clone().send_request(req);
    let refused = tokio::time::timeout(Duration::from_millis(500), refused)
        .await
        .expect("the refusal comes at once")
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().get("connection").is_none());

    // Another stream on the same connection, with a body larger than a flow-control window.
    let body = json_body(1).repeat(200); // several MiB
    let len = body.len();
    let req = http::Request::post(format!("http://{addr}/v1/emails"))
        .header("authorization", format!("Bearer {}", keys.ok))
        .body(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed())
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(5), sender.clone().send_request(req))
        .await
        .expect("the other stream is not held up")
        .unwrap();
    assert_eq!(res.status(), 200);
    let got = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(got, format!("{{\"read\":{len}}}").as_bytes());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    feeder.abort();
}
