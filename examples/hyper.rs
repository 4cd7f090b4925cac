//! ArkAuthLayer in front of a plain hyper 1 server: no axum.
//!
//! ```sh
//! cargo run --example hyper
//! # then, with the key it prints:
//! curl -i -H "Authorization: Bearer ark_test_…" http://127.0.0.1:3001/
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;

use ark_auth::{
    generate_key, ArkAuthLayer, AuthenticatedKey, Environment, MemoryKeyStore, Permission,
};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceBuilder;

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // The layer only calls this handler for an authenticated, authorised, admitted request.
    let key = req
        .extensions()
        .get::<AuthenticatedKey>()
        .expect("ArkAuthLayer puts the key in the extensions");
    let body = format!("hello, key {} ({})\n", key.id(), key.environment());
    Ok(Response::new(Full::new(Bytes::from(body))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3001".into())
        .parse()?;

    let key = generate_key(Environment::Test)?;
    println!("demo key (shown once): {}", key.plaintext.expose_secret());
    let store =
        MemoryKeyStore::from_records([key.record.with_permissions(Permission::EmailsRead.into())])?;

    let service = ServiceBuilder::new()
        .layer(ArkAuthLayer::new(store).require(Permission::EmailsRead))
        .service_fn(hello);

    let listener = TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection error: {e}");
            }
        });
    }
}
