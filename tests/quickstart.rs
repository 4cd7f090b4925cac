//! The quick-start example (`examples/quickstart.rs`, compiled in with `#[path]`) over real
//! TCP: its table makes `/health` public, `/v1/emails` need `emails:send`, a tenant's domains
//! need `domains:manage` and that tenant, and anything undeclared a full-access key.

#[allow(dead_code)]
#[path = "../examples/quickstart.rs"]
mod quickstart;

mod common;

use std::net::SocketAddr;

use ark_auth::{generate_key, Environment, MemoryKeyStore, Permission, Permissions};
use common::{bearer, request, send, RawResponse};

fn mint(store: &MemoryKeyStore, perms: Permissions, tenant: Option<&str>) -> String {
    let k = generate_key(Environment::Test).unwrap();
    let mut r = k.record.with_permissions(perms);
    if let Some(t) = tenant {
        r = r.with_tenant(t);
    }
    store.try_insert(r).unwrap();
    k.plaintext.expose_secret().to_owned()
}

async fn serve(store: MemoryKeyStore) -> SocketAddr {
    let app = quickstart::app(store).expect("the quick start's table builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn call(addr: SocketAddr, method: &str, path: &str, key: Option<&str>) -> RawResponse {
    let headers: Vec<Vec<u8>> = key.map(bearer).into_iter().collect();
    send(addr, &request(method, path, &headers)).await
}

#[tokio::test]
async fn the_quick_start_table_decides_each_route() {
    let store = MemoryKeyStore::new();
    let sender = mint(&store, Permission::EmailsSend.into(), None);
    let tenant = mint(
        &store,
        Permission::EmailsSend | Permission::DomainsManage,
        Some("tn_42"),
    );
    let full = mint(&store, Permissions::ALL, None);
    let addr = serve(store).await;

    let health = call(addr, "GET", "/health", None).await;
    assert_eq!((health.status, health.body_text().as_str()), (200, "ok\n"));

    let anonymous = call(addr, "POST", "/v1/emails", None).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.json()["error"]["code"], "authentication_required");
    let sent = call(addr, "POST", "/v1/emails", Some(&sender)).await;
    assert_eq!(sent.status, 200, "{sent:?}");
    assert!(sent.body_text().starts_with("sent with key "), "{sent:?}");

    let domains = "/v1/tenants/tn_42/domains";
    let denied = call(addr, "GET", domains, Some(&sender)).await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.json()["error"]["code"], "permission_denied");
    assert_eq!(call(addr, "GET", domains, Some(&tenant)).await.status, 200);
    let other = call(addr, "GET", "/v1/tenants/tn_7/domains", Some(&tenant)).await;
    assert_eq!(other.status, 403, "another tenant's domains");

    // Undeclared: refused to a limited key, then the router's 404/405 for a full one.
    for (method, path) in [("GET", "/v1/nothing"), ("DELETE", "/v1/emails")] {
        assert_eq!(call(addr, method, path, Some(&sender)).await.status, 403);
    }
    assert_eq!(
        call(addr, "GET", "/v1/nothing", Some(&full)).await.status,
        404
    );
    assert_eq!(
        call(addr, "DELETE", "/v1/emails", Some(&full)).await.status,
        405
    );
}
