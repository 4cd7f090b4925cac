//! Route decisions follow the router, over real TCP (raw HTTP/1.1, paths sent byte for byte):
//!
//! - the demo server refuses every re-spelling of a protected segment
//!   (`/v1/tenants/tn_1/%64omains`) to keys lacking the permission or of another tenant;
//! - organisation-only routes refuse tenant-scoped keys (403 `permission_denied`);
//! - a `RouteTable` written with full paths keeps tenants apart both as a layer on the outer
//!   router and as a `route_layer` of a router nested under `/v1`.

#[allow(dead_code, unused_imports)]
#[path = "../examples/server/main.rs"]
mod server;

mod common;

use std::net::SocketAddr;

use ark_auth::{
    generate_key, policy::Methods, Access, ArkAuthLayer, AuthenticatedKey, Environment,
    MemoryKeyStore, Permission, Permissions, RouteTable,
};
use axum::extract::Path;
use axum::routing::get;
use axum::Router;
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

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn call(addr: SocketAddr, method: &str, path: &str, key: &str) -> RawResponse {
    send(addr, &request(method, path, &[bearer(key)])).await
}

#[tokio::test]
async fn demo_refuses_every_spelling_of_a_protected_segment() {
    let store = MemoryKeyStore::new();
    let none = mint(&store, Permissions::NONE, None);
    let other_tenant = mint(&store, Permissions::ALL, Some("tn_2"));
    let full = mint(&store, Permissions::ALL, None);
    let addr = serve(server::app(store)).await;

    let mut spellings = Vec::new();
    for resource in ["domains", "webhooks", "suppressions"] {
        for i in 0..resource.len() {
            let (head, tail) = resource.split_at(i);
            let c = tail.as_bytes()[0];
            for enc in [format!("%{c:02x}"), format!("%{c:02X}")] {
                let seg = format!("{head}{enc}{}", &tail[1..]);
                spellings.push(format!("/v1/tenants/tn_1/{seg}"));
                spellings.push(format!("/v1/tenants/tn_1/{seg}/item_1"));
            }
        }
        spellings.push(format!("/v1/tenants/tn_1/{resource}/"));
        spellings.push(format!("/v1/tenants/tn_1//{resource}"));
        spellings.push(format!("/v1/tenants/tn_1/./{resource}"));
        spellings.push(format!("/v1/tenants/tn_1/x/../{resource}"));
        spellings.push(format!("/v1/%74enants/tn_1/{resource}"));
        spellings.push(format!("/%761/tenants/tn_1/{resource}"));
    }
    spellings.push("/v1/platform/%77ebhooks".into());
    spellings.push("/v1/platform/webhooks/%2F".into());
    for path in &spellings {
        for method in ["GET", "POST", "DELETE"] {
            for key in [&none, &other_tenant] {
                let res = call(addr, method, path, key).await;
                assert!(
                    [403, 404, 405].contains(&res.status),
                    "{method} {path}: {res:?}"
                );
                if res.status == 403 {
                    assert_eq!(res.json()["error"]["code"], "permission_denied");
                }
                assert_eq!(res.json()["success"], false, "{method} {path}");
            }
        }
    }
    // The plain spellings: refused to both, served to an organisation key.
    for path in [
        "/v1/tenants/tn_1/domains",
        "/v1/tenants/tn_1/webhooks/w",
        "/v1/tenants/tn%5F1/suppressions",
    ] {
        assert_eq!(call(addr, "GET", path, &none).await.status, 403, "{path}");
        assert_eq!(call(addr, "GET", path, &other_tenant).await.status, 403);
        assert_eq!(call(addr, "GET", path, &full).await.status, 200, "{path}");
    }
}

#[tokio::test]
async fn demo_platform_webhooks_are_organisation_only() {
    let store = MemoryKeyStore::new();
    let tenant = mint(&store, Permissions::ALL, Some("tn_42"));
    let org = mint(&store, Permission::WebhooksManage.into(), None);
    let addr = serve(server::app(store)).await;
    for (method, path) in [
        ("GET", "/v1/platform/webhooks"),
        ("POST", "/v1/platform/webhooks"),
        ("DELETE", "/v1/platform/webhooks/wh_1"),
    ] {
        let res = call(addr, method, path, &tenant).await;
        assert_eq!(res.status, 403, "{method} {path}: {res:?}");
        let json = res.json();
        assert_eq!(json["error"]["code"], "permission_denied");
        assert!(
            json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("organisation-level"),
            "{json}"
        );
        assert_eq!(
            res.header("www-authenticate").unwrap(),
            "Bearer realm=\"ark\", error=\"insufficient_scope\", scope=\"webhooks:manage\""
        );
        // A 403 of a valid key carries its rate-limit state (contract section 4).
        assert!(res.header("x-ratelimit-limit").is_some());
        let res = call(addr, method, path, &org).await;
        assert_eq!(res.status, 200, "{method} {path}: {res:?}");
    }
    // The same tenant key on its own tenant's webhooks and on /v1/limits: served.
    let res = call(addr, "GET", "/v1/tenants/tn_42/webhooks", &tenant).await;
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(call(addr, "GET", "/v1/limits", &tenant).await.status, 200);
    // Reading emails is the organisation's: refused to the tenant key; sending is not.
    assert_eq!(call(addr, "GET", "/v1/emails", &tenant).await.status, 403);
    assert_eq!(
        call(addr, "GET", "/v1/emails/e_1", &tenant).await.status,
        403
    );
    for path in ["/v1/emails", "/v1/emails/batch", "/v1/emails/raw"] {
        let status = call(addr, "POST", path, &tenant).await.status;
        assert!(status != 403 && status != 401, "POST {path}: {status}");
    }
}

/// The routes under `/v1`, as a router to nest.
fn tenant_routes() -> Router {
    Router::new().route(
        "/tenants/{tenant}/domains",
        get(
            |Path(tenant): Path<String>, key: AuthenticatedKey| async move {
                format!("domains of {tenant} for {}", key.id())
            },
        ),
    )
}

/// The table, written with the full paths clients send.
fn table() -> RouteTable {
    RouteTable::builder()
        .tenant_route(
            "/v1/tenants/{tenant}/domains",
            Methods::GET,
            "tenant",
            Access::require(Permission::DomainsManage),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn nested_router_keeps_tenants_apart_in_both_placements() {
    let store = MemoryKeyStore::new();
    let a = mint(&store, Permission::DomainsManage.into(), Some("tn_a"));
    let org = mint(&store, Permission::DomainsManage.into(), None);
    let layer = || ArkAuthLayer::new(store.clone()).policy(table());
    let outer = Router::new().nest("/v1", tenant_routes()).layer(layer());
    let inner = Router::new().nest("/v1", tenant_routes().route_layer(layer()));
    for (placement, app) in [("outer layer", outer), ("nested route_layer", inner)] {
        let addr = serve(app).await;
        let own = call(addr, "GET", "/v1/tenants/tn_a/domains", &a).await;
        assert_eq!(own.status, 200, "{placement}: {own:?}");
        assert!(
            own.body_text().starts_with("domains of tn_a"),
            "{placement}"
        );
        for path in ["/v1/tenants/tn_b/domains", "/v1/tenants/tn%5Fb/domains"] {
            let other = call(addr, "GET", path, &a).await;
            assert_eq!(other.status, 403, "{placement} {path}: {other:?}");
            assert_eq!(other.json()["error"]["code"], "permission_denied");
        }
        let org_res = call(addr, "GET", "/v1/tenants/tn_b/domains", &org).await;
        assert_eq!(org_res.status, 200, "{placement}: {org_res:?}");
        let none = send(addr, &request("GET", "/v1/tenants/tn_a/domains", &[""; 0])).await;
        assert_eq!(none.status, 401, "{placement}");
    }
}
