//! Quick start: an axum app whose routes say, in one `RouteTable`, what each requires.
//!
//! ```sh
//! cargo run --example quickstart
//! # then, with the key it prints:
//! curl -i http://127.0.0.1:3000/health
//! curl -i -X POST http://127.0.0.1:3000/v1/emails -H "Authorization: Bearer ark_test_…"
//! curl -i http://127.0.0.1:3000/v1/tenants/tn_42/domains -H "Authorization: Bearer ark_test_…"
//! curl -i http://127.0.0.1:3000/v1/tenants/tn_7/domains -H "Authorization: Bearer ark_test_…"  # 403
//! ```
//!
//! A path or method the table does not declare needs a full-access organisation key, and
//! the router then answers 404 or 405: nothing is open by omission.

use ark_auth::{
    generate_key,
    policy::{Methods, RouteTableError},
    Access, ArkAuthLayer, AuthenticatedKey, Environment, MemoryKeyStore, Permission, RouteTable,
};
use axum::extract::Path;
use axum::routing::{get, post};
use axum::Router;

async fn health() -> &'static str {
    "ok\n"
}

async fn send(key: AuthenticatedKey) -> String {
    format!("sent with key {} (test: {})\n", key.id(), key.is_test())
}

async fn domains(key: AuthenticatedKey, Path(tenant): Path<String>) -> String {
    format!("domains of {tenant}, for key {}\n", key.id())
}

/// The router and its table, with the same patterns and methods.
pub fn app(store: MemoryKeyStore) -> Result<Router, RouteTableError> {
    let table = RouteTable::builder()
        .route("/health", Methods::GET, Access::Public)
        .route("/v1/emails", Methods::POST, Permission::EmailsSend)
        // A tenant-scoped key reaches only its own tenant's domains.
        .tenant_route(
            "/v1/tenants/{tenant}/domains",
            Methods::GET,
            "tenant",
            Permission::DomainsManage,
        )
        .build()?;
    Ok(Router::new()
        .route("/health", get(health))
        .route("/v1/emails", post(send))
        .route("/v1/tenants/{tenant}/domains", get(domains))
        .layer(ArkAuthLayer::new(store).policy(table)))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());

    let key = generate_key(Environment::Test)?;
    println!("demo key (shown once): {}", key.plaintext.expose_secret());
    let record = key
        .record
        .with_permissions(Permission::EmailsSend | Permission::DomainsManage)
        .with_tenant("tn_42");
    let store = MemoryKeyStore::from_records([record])?;

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(store)?).await?;
    Ok(())
}
