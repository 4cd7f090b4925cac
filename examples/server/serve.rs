//! The demo server's connections: HTTP/1.1 and cleartext HTTP/2 on hyper-util, with the
//! limits that keep slow, idle or too many clients from holding the server (see
//! [`LIMITS`]; the README's "Running it in production" gives the reasons for each value).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

/// How long clients may take, and how many may be connected at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// HTTP/1: the whole request head (request line and headers) must arrive within this,
    /// counted from when the server starts waiting for it: on a new connection, and on a
    /// kept-alive one as soon as the previous response is written (so it is also how long an
    /// HTTP/1 connection may sit idle between requests).
    pub header_read_timeout: Duration,
    /// A connection with no request in flight (HTTP/2 with no open stream, HTTP/1 between
    /// requests, or one still sending its first bytes) is shut down gracefully after this.
    pub idle_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// HTTP/2: streams (requests) one connection may have open at once.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2: a PING is sent after this long without frames from the client…
    pub h2_keep_alive_interval: Duration,
    /// …and the connection is closed when it is not acknowledged within this.
    pub h2_keep_alive_timeout: Duration,
    /// On shutdown (and after an idle connection is told to close), how long requests in
    /// flight may take to finish before their connections are dropped.
    pub shutdown_grace: Duration,
}

/// The demo server's limits.
pub const LIMITS: Limits = Limits {
    header_read_timeout: Duration::from_secs(10),
    idle_timeout: Duration::from_secs(60),
    max_connections: 512,
    h2_max_concurrent_streams: 100,
    h2_keep_alive_interval: Duration::from_secs(20),
    h2_keep_alive_timeout: Duration::from_secs(10),
    shutdown_grace: Duration::from_secs(10),
};

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting, lets
/// requests in flight finish (up to [`Limits::shutdown_grace`]) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .keep_alive_interval(limits.h2_keep_alive_interval)
        .keep_alive_timeout(limits.h2_keep_alive_timeout);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        // A free slot first: at the cap, new connections wait in the backlog, unaccepted.
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // wait a little rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            Arc::clone(&builder),
            stream,
            peer,
            router.clone(),
            limits,
            stopping.clone(),
            slot,
        ));
    }
    drop(listener);
    let _ = stop.send(true);
    // Every slot back means every connection has finished.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(limits.shutdown_grace, slots.acquire_many(all)).await;
}

/// Counts a request in flight on its connection while it lives.
struct InFlight(Arc<watch::Sender<usize>>);

impl InFlight {
    fn new(count: &Arc<watch::Sender<usize>>) -> Self {
        count.send_modify(|n| *n += 1);
        InFlight(Arc::clone(count))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// Serves one connection, holding its slot, until it ends: closed by the client, by a
/// timeout, idle for [`Limits::idle_timeout`], or by the server's shutdown. Every request
/// carries the client's address in its extensions (axum's `ConnectInfo<SocketAddr>`).
async fn connection(
    builder: Arc<auto::Builder<TokioExecutor>>,
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    mut stopping: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let (in_flight, mut busy) = watch::channel(0usize);
    let in_flight = Arc::new(in_flight);
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let counted = InFlight::new(&in_flight);
        let router = router.clone();
        async move {
            let res = router.oneshot(req).await;
            drop(counted);
            res
        }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    loop {
        let idle = *busy.borrow_and_update() == 0;
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!("connection closed: {e}");
                }
                return;
            }
            Ok(()) = busy.changed() => continue,
            () = tokio::time::sleep(limits.idle_timeout), if idle => break,
            _ = stopping.wait_for(|stop| *stop) => break,
        }
    }
    // HTTP/2: GOAWAY, open streams finish. HTTP/1: closed now between requests, after the
    // response otherwise. A connection still sending its first bytes: closed now.
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(limits.shutdown_grace, conn).await;
}

/// Completes on Ctrl-C or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
