//! An API gateway on ark-auth: a reverse proxy that checks the Ark API key of every request
//! and forwards only the accepted ones to an upstream, without the key and with the
//! caller's identity in headers (`x-ark-key-id`, `x-ark-key-name`, `x-ark-environment`,
//! `x-ark-permissions`, `x-ark-tenant`; any the client sent are removed first).
//!
//! ```sh
//! cargo run --example gateway -- --upstream http://127.0.0.1:8080 --keys keys.json
//! # keys in PostgreSQL, limits in Redis, exactly as the demo server:
//! cargo run --example gateway --features postgres,redis -- --upstream http://app:8080 \
//!   --database-url postgres://user:pw@db/ark --redis-url redis://cache:6379/ --keys keys.json
//! ```
//!
//! Per request, in order: the connection limits of the demo server ([`server::serve`]:
//! header-read and idle timeouts, a connection cap), the request log, the `ArkAuthLayer`
//! (refusals are answered here and never reach the upstream), then the [`proxy`]: hop-by-hop
//! headers removed both ways, `X-Forwarded-For/-Host/-Proto` set by the gateway,
//! `X-Request-Id` set to the id the layer decided on, bodies streamed both ways (cut when
//! one stalls: [`idle`]), and a 502
//! or 504 in the contract's JSON envelope when the upstream fails or is slow.
//!
//! The command line, keys and back-ends are the demo server's own modules (compiled in from
//! `examples/server/`), so both take the same `--listen`, `--keys`, `--database-url` and
//! `--redis-url`.

#[allow(dead_code, unused_imports)]
#[path = "../server/main.rs"]
mod server;

pub mod args;
pub mod forward;
pub mod idle;
pub mod proxy;

use std::process::ExitCode;

use ark_auth::service::IdentityHeaders;
use ark_auth::{limit::Quota, ArkAuthLayer};
use axum::Router;

use args::{parse, Gateway, USAGE};
use forward::Upstream;
use proxy::{Proxy, Timeouts, TIMEOUTS};
use server::backends::{backends, DemoLimiter, DemoStore};
use server::cli::{env_url, shown, Cli};
use server::keys::{demo_records, load_records};

/// The gateway's router: every path and method goes through the layer to the proxy.
pub fn gateway(
    store: DemoStore,
    limiter: DemoLimiter,
    access: ark_auth::Access,
    upstream: Upstream,
    timeouts: Timeouts,
) -> Router {
    let auth = ArkAuthLayer::new(store)
        .rate_limiter(limiter)
        .default_quota(Quota::DEFAULT)
        // The client's key stays here (the default, said out loud: this is a gateway)...
        .hide_credentials(true)
        // ...and the upstream learns who called from headers no client can make up.
        .identity_headers(IdentityHeaders::default())
        .policy(access);
    let proxy = Proxy::new(upstream, timeouts);
    Router::new()
        .fallback_service(tower::service_fn(move |req| proxy.clone().forward(req)))
        .layer(auth)
        .layer(axum::middleware::from_fn(server::log::log_request))
}

#[tokio::main]
async fn main() -> ExitCode {
    let Gateway {
        upstream,
        access,
        upstream_timeout,
        body_idle_timeout,
        cli,
    } = match parse(std::env::args().skip(1)) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let Cli::Run {
        listen,
        keys,
        database_url,
        redis_url,
    } = cli
    else {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    };
    let database_url = database_url.or_else(|| env_url("DATABASE_URL"));
    let redis_url = redis_url.or_else(|| env_url("REDIS_URL"));
    server::log::init();

    // All or nothing, as the demo server: a bad keys file or an unreachable database stops
    // here, before anything listens.
    let records = match &keys {
        Some(path) => load_records(path),
        None => demo_records("while this gateway runs")
            .map_err(|e| format!("cannot generate demo keys: {e}")),
    };
    let built = match records {
        Ok(records) => backends(records, database_url.as_deref(), redis_url.as_deref()).await,
        Err(e) => Err(e),
    };
    let (store, limiter, _listener) = match built {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shown_upstream = upstream.shown();
    let timeouts = Timeouts {
        response_head: upstream_timeout,
        body_idle: body_idle_timeout,
        ..TIMEOUTS
    };
    let router = gateway(store, limiter, access, upstream, timeouts);

    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", shown(&listen));
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .map_or_else(|_| listen.clone(), |a| a.to_string());
    println!("forwarding to {shown_upstream}");
    println!("listening on http://{addr}");
    server::serve::serve(
        listener,
        router,
        server::serve::LIMITS,
        server::serve::shutdown_signal(),
    )
    .await;
    ExitCode::SUCCESS
}
