//! Optional authentication (`Access::optional()`): no `Authorization` header at all passes
//! anonymously; a valid Bearer key authenticates (the `Option<AuthenticatedKey>` extractor
//! is `Some`); a present but bad credential, another scheme or an empty header is refused
//! exactly as on a route that needs a key; `RouteTable` routes hold tenant-scoped keys to
//! their tenant. Real servers (axum, plain hyper) over TCP.

mod common;
mod echo;

use ark_auth::{
    policy::Methods, Access, ArkAuthLayer, Environment, MemoryKeyStore, Permission, RouteTable,
};
use common::{authorization, bearer, request, send, FLAVORS};
use echo::{echoed, echoed_key, spawn};

fn table() -> RouteTable {
    RouteTable::builder()
        .route("/docs", Methods::GET, Access::optional())
        .route(
            "/send",
            Methods::GET,
            Access::Optional {
                permissions: Permission::EmailsSend.into(),
                scope: ark_auth::policy::KeyScope::Any,
            },
        )
        .tenant_route(
            "/t/{tenant}/docs",
            Methods::GET,
            "tenant",
            Access::optional(),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn optional_routes_authenticate_when_asked_and_refuse_bad_credentials() {
    let key = ark_auth::generate_key(Environment::Live).unwrap();
    let token = key.plaintext.expose_secret().to_owned();
    let id = key.record.id().to_owned();
    let tenant_key = ark_auth::generate_key(Environment::Test).unwrap();
    let tenant_token = tenant_key.plaintext.expose_secret().to_owned();
    let revoked = ark_auth::generate_key(Environment::Live).unwrap();
    let store = MemoryKeyStore::from_records([
        key.record.clone(),
        tenant_key.record.clone().with_tenant("tn_a"),
        revoked.record.clone().with_revoked(true),
    ])
    .unwrap();
    for flavor in FLAVORS {
        let layer = ArkAuthLayer::new(store.clone()).policy(table());
        let server = spawn(flavor, layer).await;
        let at = |path: &str, lines: Vec<Vec<u8>>| request("GET", path, &lines);

        // No header at all: anonymous.
        let res = send(server.addr, &at("/docs", vec![])).await;
        assert_eq!(res.status, 200, "{flavor:?}");
        assert_eq!(echoed_key(&res.body_text()), "none");
        assert!(res.header("x-ratelimit-limit").is_none());
        assert!(res.header("x-request-id").is_some());

        // A valid key: authenticated, with the contract's headers; credentials hidden.
        let res = send(server.addr, &at("/docs", vec![bearer(&token)])).await;
        assert_eq!(res.status, 200, "{flavor:?}");
        assert_eq!(echoed_key(&res.body_text()), id, "{flavor:?}");
        assert!(echoed(&res.body_text(), "authorization").is_empty());
        assert_eq!(res.header("x-ratelimit-limit").as_deref(), Some("10"));

        let calls = server.calls();
        let refused = [
            // a typo is never silently anonymous
            (
                vec![bearer("ark_live_00000000000000000000")],
                401,
                "invalid_api_key",
            ),
            (
                vec![authorization(b"Bearer ark_live_typo")],
                401,
                "invalid_api_key",
            ),
            (vec![authorization(b"Bearer")], 401, "invalid_api_key"),
            (
                vec![bearer(revoked.plaintext.expose_secret())],
                401,
                "expired_api_key",
            ),
            // another scheme, or an empty header: present, so refused as missing credentials
            (
                vec![authorization(b"Basic dXNlcjpwYXNz")],
                401,
                "authentication_required",
            ),
            (vec![authorization(b"")], 401, "authentication_required"),
            (vec![bearer(&token), bearer(&token)], 401, "invalid_api_key"),
        ];
        for (lines, status, code) in refused {
            let res = send(server.addr, &at("/docs", lines)).await;
            assert_eq!(res.status, status, "{flavor:?} {code}");
            assert_eq!(res.json()["error"]["code"], code, "{flavor:?}");
        }
        assert_eq!(
            server.calls(),
            calls,
            "{flavor:?}: a refused request reached the handler"
        );

        // Permissions and tenants hold for a presented key; none needed without one.
        let res = send(server.addr, &at("/send", vec![bearer(&token)])).await;
        assert_eq!(res.status, 403, "{flavor:?}");
        let res = send(server.addr, &at("/send", vec![])).await;
        assert_eq!(res.status, 200, "{flavor:?}");
        let res = send(
            server.addr,
            &at("/t/tn_b/docs", vec![bearer(&tenant_token)]),
        )
        .await;
        assert_eq!(res.status, 403, "{flavor:?}");
        let res = send(
            server.addr,
            &at("/t/tn_a/docs", vec![bearer(&tenant_token)]),
        )
        .await;
        assert_eq!(res.status, 200, "{flavor:?}");
        assert_eq!(echoed_key(&res.body_text()), tenant_key.record.id());
        let res = send(server.addr, &at("/t/tn_b/docs", vec![])).await;
        assert_eq!(res.status, 200, "{flavor:?}");
    }
}

#[test]
fn optional_takes_tenant_and_organisation_scopes() {
    use ark_auth::policy::KeyScope;
    let t = Access::optional().for_tenant("tn_1");
    assert!(matches!(t, Access::Optional { scope: KeyScope::Tenant(ref x), .. } if x == "tn_1"));
    let o = Access::optional().organisation_only().for_tenant("tn_1");
    assert!(matches!(
        o,
        Access::Optional {
            scope: KeyScope::Organisation,
            ..
        }
    ));
}
