//! The demo server of the wire contract (section 7): a miniature of the Ark API's auth
//! surface on axum 0.8. The handlers are stubs; the authentication, permissions, tenant
//! scoping and per-key rate limits are the real `ArkAuthLayer`.
//!
//! ```sh
//! cargo run --example server                        # generates demo test keys, prints them once
//! cargo run --example server -- --keys keys.json    # keys from a file (see the keygen example)
//! cargo run --example server -- --listen 0.0.0.0:8080
//! # a fleet: keys in PostgreSQL (cached, revocations pushed by LISTEN/NOTIFY), limits in Redis
//! cargo run --example server --features postgres,redis -- \
//!   --database-url postgres://user:pw@db/ark --redis-url redis://cache:6379/ --keys keys.json
//! ```
//!
//! Then, with a key it printed:
//!
//! ```sh
//! curl -i http://127.0.0.1:3000/v1/emails -H "Authorization: Bearer ark_test_…" \
//!   -H 'content-type: application/json' \
//!   -d '{"from": "a@example.com", "to": ["b@example.com"], "subject": "hi", "text": "hello"}'
//! ```
//!
//! or point the official SDKs at it with `ARK_BASE_URL=http://127.0.0.1:3000/v1`.
//!
//! One `ArkAuthLayer` covers the whole router (`Router::layer`, so unknown paths and wrong
//! methods are authenticated too). One list of routes ([`routes()`]) builds both the router
//! and the layer's `RouteTable`, so the route the layer decides on is the route the router
//! serves. Requests are logged to stderr (method, path, status and `grpc-status`, request id;
//! never a header value; a method or path that might hold a key redacted, both cut to 256
//! characters), `RUST_LOG` sets the level. Connections are served with a header-read timeout,
//! an idle timeout and a connection cap (`serve::LIMITS`).
//!
//! The modules, in the order a request meets them: [`cli`] (the command line), [`keys`]
//! (keys file or demo keys), [`backends`] (memory, PostgreSQL, Redis), [`app`](mod@app) (the router
//! and its layers), [`routes`](mod@routes) (the one list of routes), [`handlers`] and [`emails`] (the
//! stubs), [`reply`] (their JSON answers), [`metrics`] (`GET /metrics`), [`log`] (the
//! request log), [`serve`] (the connections).

pub mod app;
pub mod backends;
pub mod cli;
pub mod emails;
pub mod handlers;
pub mod keys;
pub mod log;
pub mod metrics;
pub mod reply;
pub mod routes;
pub mod serve;

use std::process::ExitCode;

pub use app::{app, app_with};
pub use keys::load_keys;
pub use routes::{on_methods, route_table, routes, DemoRoute, TENANT_RESOURCES};

use ark_auth::MemoryKeyStore;
use backends::fleet_app;
use cli::{env_url, parse_args, shown, Cli, USAGE};
use keys::{demo_records, load_records, watch_keys};
use serve::shutdown_signal;

#[tokio::main]
async fn main() -> ExitCode {
    let (listen, keys, database_url, redis_url) = match parse_args(std::env::args().skip(1)) {
        Ok(Cli::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Cli::Run {
            listen,
            keys,
            database_url,
            redis_url,
        }) => (listen, keys, database_url, redis_url),
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let database_url = database_url.or_else(|| env_url("DATABASE_URL"));
    let redis_url = redis_url.or_else(|| env_url("REDIS_URL"));
    log::init();

    // All or nothing: a bad keys file (or an unreachable database) stops here, before
    // anything listens.
    let records = match &keys {
        Some(path) => load_records(path),
        None => demo_records(if database_url.is_some() {
            "until removed from the database, where only their hashes are stored"
        } else {
            "while this server runs"
        })
        .map_err(|e| format!("cannot generate demo keys: {e}")),
    };
    let mut reloading = None;
    let routed = match records {
        Err(e) => Err(e),
        // In memory, as ever.
        Ok(records) if database_url.is_none() && redis_url.is_none() => {
            MemoryKeyStore::from_records(records)
                .map_err(|e| format!("keys file: {e}"))
                .and_then(|store| {
                    // A keys file is reloaded while serving.
                    reloading = keys.as_deref().map(|p| watch_keys(p, &store)).transpose()?;
                    Ok((app(store), None))
                })
        }
        Ok(records) => fleet_app(records, database_url.as_deref(), redis_url.as_deref()).await,
    };
    let (router, _listener) = match routed {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };

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
    println!("listening on http://{addr}");
    println!("  try: curl -s http://{addr}/v1/limits -H \"Authorization: Bearer <key>\"");
    println!("  SDKs: ARK_BASE_URL=http://{addr}/v1 ARK_API_KEY=<key>");
    serve::serve(listener, router, serve::LIMITS, shutdown_signal()).await;
    drop(reloading);
    ExitCode::SUCCESS
}
