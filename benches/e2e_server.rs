//! The end-to-end comparison's server (`REFERENCE=1 benches/e2e.sh`): not a measurement, a
//! server with two listeners in one process serving the same axum `Router` (one handler,
//! `GET /v1/things`, a fixed 30-byte JSON answer), on `--ark ADDR` behind `ArkAuthLayer` and
//! on `--reference ADDR` behind the reference pipeline (`ModelAuthLayer`) writing the same
//! response headers: the three `X-RateLimit-*` (`add_ratelimit_headers`) and `X-Request-Id`
//! (the client's valid one or a fresh `req_` id, as ark-auth writes it by default). Both
//! accept `key_token(0)`, printed on stdout at start (a fixture key, not a secret).
//!
//! ```text
//! cargo bench --bench e2e_server --no-run      # prints the binary's path
//! <binary> --ark 127.0.0.1:3932 --reference 127.0.0.1:3933 [--outside]
//! ```
//!
//! Layers go on the router with `Router::layer` (as the demo server and axum's docs put
//! them); `--outside` wraps the router from outside instead (`layer.layer(router)`, so the
//! response body is not boxed into axum's `Body` after the layer).
//!
//! env: KEYS (keys in each pipeline's store, `key_token(0..KEYS)`; default 100000).
//!
//! Runtime: tokio's current-thread runtime. The script pins the process on one core, so a
//! second worker thread could only add cross-thread wake-ups; on one thread both listeners
//! are served by the same loop, and under callgrind (which runs one thread at a time) the
//! instructions are the same ones the wall-clock run executes.
//!
//! Connections are served as the demo server serves them (hyper-util's `auto` builder,
//! HTTP/1 header-read timeout on tokio's timer, `TCP_NODELAY`). Without `--ark` and
//! `--reference` (as under `cargo bench` or `cargo test --benches`) it exits at once.

mod reference;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::header::{self, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use reference::echo::EchoRequestIdLayer;
use reference::*;
use tokio::net::TcpListener;
use tower::util::MapResponseLayer;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

/// The one handler: a fixed JSON answer.
async fn things() -> ([(header::HeaderName, HeaderValue); 1], &'static str) {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        r#"{"data":[],"meta":{"count":0}}"#,
    )
}

fn router() -> Router {
    Router::new().route("/v1/things", get(things))
}

/// One listener's accept loop.
type Server = Pin<Box<dyn Future<Output = ()>>>;

/// Accepts connections on `listener` and serves `svc` on each, as the demo server does.
async fn serve<S, B>(listener: TcpListener, svc: S)
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let builder = Arc::new(builder);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let svc = svc.clone();
        let builder = Arc::clone(&builder);
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| svc.clone().oneshot(req));
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

fn main() {
    let mut ark_addr: Option<SocketAddr> = None;
    let mut ref_addr: Option<SocketAddr> = None;
    let mut outside = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut addr = || {
            let v = args.next().unwrap_or_default();
            Some(v.parse().unwrap_or_else(|e| panic!("{a} {v}: {e}")))
        };
        match a.as_str() {
            "--ark" => ark_addr = addr(),
            "--reference" => ref_addr = addr(),
            "--outside" => outside = true,
            _ => {} // `--bench` and whatever else cargo passes
        }
    }
    let (Some(ark_addr), Some(ref_addr)) = (ark_addr, ref_addr) else {
        eprintln!("e2e_server: nothing to serve without --ark ADDR --reference ADDR");
        return;
    };
    let n: u64 = std::env::var("KEYS")
        .ok()
        .map(|v| v.parse().expect("KEYS: a number"))
        .unwrap_or(100_000);

    let ark = ark_layer(ark_store(n));
    let model = ModelAuthLayer {
        auth: Arc::new(RefAuthenticator::new(n)),
    };
    let headers = MapResponseLayer::new(add_ratelimit_headers::<Body>);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let ark_listener = TcpListener::bind(ark_addr).await.expect("bind --ark");
        let ref_listener = TcpListener::bind(ref_addr).await.expect("bind --reference");
        println!("{}", key_token(0));
        eprintln!(
            "e2e_server: {n} keys; ark on {ark_addr}, reference on {ref_addr}; layers {}",
            if outside {
                "outside the router"
            } else {
                "on the router (Router::layer)"
            }
        );
        let (ark_srv, ref_srv): (Server, Server) = if outside {
            let ark_svc = ark.layer(router());
            let ref_svc = ServiceBuilder::new()
                .layer(EchoRequestIdLayer)
                .layer(model)
                .layer(headers)
                .service(router());
            (
                Box::pin(serve(ark_listener, ark_svc)),
                Box::pin(serve(ref_listener, ref_svc)),
            )
        } else {
            let ark_svc = router().layer(ark);
            // One `Router::layer` call for the reference's three layers, as for ark-auth's one
            // (each call boxes the route once more: a cloned boxed service and a boxed future
            // per request). Outermost first: the request id on every answer, the rate-limit
            // headers on accepted responses only, as ark-auth's accept path writes them.
            let ref_svc = router().layer(
                ServiceBuilder::new()
                    .layer(EchoRequestIdLayer)
                    .layer(model)
                    .layer(headers),
            );
            (
                Box::pin(serve(ark_listener, ark_svc)),
                Box::pin(serve(ref_listener, ref_svc)),
            )
        };
        tokio::select! {
            () = ark_srv => {},
            () = ref_srv => {},
            () = terminated() => {},
        }
    });
}

/// SIGTERM or Ctrl-C: `main` returns, so that valgrind writes its output on a normal exit.
async fn terminated() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}
