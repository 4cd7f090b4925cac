//! `RouteTable` as a pure decision: method and path in, `Access` out. The spellings a client
//! may send (either hex case, `%2F`, `%25`, invalid UTF-8, `//`, dot segments, trailing `/`,
//! absolute form), the method rules axum applies (HEAD served by GET, `any`), the fail-closed
//! fallback, and the patterns refused at build time.

use ark_auth::{
    policy::{KeyScope, Methods, RequestHead},
    Access, AccessPolicy, Permission, Permissions, RouteTable,
};
use http::{Method, Request};

fn table() -> RouteTable {
    RouteTable::builder()
        .route("/health", Methods::GET, Access::Public)
        .route("/v1/emails", Methods::POST, Permission::EmailsSend)
        .route("/v1/emails", Methods::GET, Permission::EmailsRead)
        .route("/v1/emails/{id}", Methods::GET, Permission::EmailsRead)
        .route("/v1/items/public", Methods::GET, Access::Public)
        .route("/v1/items/{id}", Methods::GET, Permission::DomainsManage)
        .tenant_route(
            "/v1/tenants/{tenant}/domains",
            Methods::ANY,
            "tenant",
            Permission::DomainsManage,
        )
        .tenant_route(
            "/v1/tenants/{tenant}/domains/{*rest}",
            Methods::ANY,
            "tenant",
            Permission::DomainsManage,
        )
        .route(
            "/v1/platform/webhooks",
            Methods::GET | Methods::POST,
            Access::require(Permission::WebhooksManage).organisation_only(),
        )
        .build()
        .unwrap()
}

fn closed() -> Access {
    Access::require(Permissions::ALL).organisation_only()
}

fn domains(tenant: &str) -> Access {
    Access::require(Permission::DomainsManage).for_tenant(tenant)
}

#[test]
fn plain_paths_get_their_rule() {
    let t = table();
    assert_eq!(t.access_for(&Method::GET, "/health"), Access::Public);
    assert_eq!(
        t.access_for(&Method::POST, "/v1/emails"),
        Access::require(Permission::EmailsSend)
    );
    assert_eq!(
        t.access_for(&Method::GET, "/v1/emails"),
        Access::require(Permission::EmailsRead)
    );
    assert_eq!(
        t.access_for(&Method::DELETE, "/v1/tenants/tn_1/domains/d/verify"),
        domains("tn_1")
    );
    assert_eq!(
        t.access_for(&Method::GET, "/v1/platform/webhooks"),
        Access::Key {
            permissions: Permission::WebhooksManage.into(),
            scope: KeyScope::Organisation
        }
    );
}

#[test]
fn the_default_fallback_fails_closed() {
    let t = table();
    assert_eq!(RouteTable::default_fallback(), closed());
    for (m, p) in [
        (Method::GET, "/"),
        (Method::GET, "/v1/nope"),
        (Method::GET, "/v1/tenants/tn_1"),
        (Method::GET, "/v1/tenants/tn_1/tracking"),
        (Method::DELETE, "/v1/emails"),
        (Method::PUT, "/v1/platform/webhooks"),
        (Method::from_bytes(b"PURGE").unwrap(), "/v1/emails"),
    ] {
        assert_eq!(t.access_for(&m, p), closed(), "{m} {p}");
    }
    let open = RouteTable::builder()
        .route("/health", Methods::GET, Access::Public)
        .fallback(Access::any_key())
        .build()
        .unwrap();
    assert_eq!(open.access_for(&Method::GET, "/nope"), Access::any_key());
}

#[test]
fn head_follows_get_and_any_covers_the_rest() {
    let t = table();
    assert_eq!(t.access_for(&Method::HEAD, "/health"), Access::Public);
    assert_eq!(t.access_for(&Method::POST, "/health"), closed());
    let purge = Method::from_bytes(b"PURGE").unwrap();
    assert_eq!(t.access_for(&purge, "/v1/tenants/a/domains"), domains("a"));
    // A HEAD of its own wins over GET; explicit methods win over ANY.
    let t = RouteTable::builder()
        .route("/x", Methods::GET, Permission::EmailsRead)
        .route("/x", Methods::HEAD, Access::Public)
        .route("/y", Methods::ANY, Permission::DomainsManage)
        .route("/y", Methods::GET, Access::any_key())
        .build()
        .unwrap();
    assert_eq!(t.access_for(&Method::HEAD, "/x"), Access::Public);
    assert_eq!(
        t.access_for(&Method::GET, "/x"),
        Access::require(Permission::EmailsRead)
    );
    assert_eq!(t.access_for(&Method::GET, "/y"), Access::any_key());
    assert_eq!(t.access_for(&Method::HEAD, "/y"), Access::any_key());
    assert_eq!(
        t.access_for(&Method::DELETE, "/y"),
        Access::require(Permission::DomainsManage)
    );
}

#[test]
fn the_tenant_is_decoded_as_axum_path_decodes_it() {
    let t = table();
    for (path, tenant) in [
        ("/v1/tenants/tn%5F42/domains", "tn_42"),
        ("/v1/tenants/tn%5f42/domains", "tn_42"),
        ("/v1/tenants/a%2Fb/domains", "a/b"),
        ("/v1/tenants/a%2fb/domains/x", "a/b"),
        ("/v1/tenants/100%25/domains", "100%"),
        ("/v1/tenants/%2574/domains", "%74"),
        ("/v1/tenants/%C3%A9/domains", "é"),
        ("/v1/tenants/a%zz/domains", "a%zz"),
    ] {
        assert_eq!(t.access_for(&Method::GET, path), domains(tenant), "{path}");
    }
}

#[test]
fn respellings_that_change_the_route_get_the_fallback() {
    let t = table();
    for path in [
        // A protected static segment spelled differently: the router does not serve the
        // domains route for it; a `{resource}` router would. Either way: fail closed.
        "/v1/tenants/tn_1/%64omains",
        "/v1/tenants/tn_1/%64OMAINS",
        "/v1/tenants/tn_1/dom%61ins",
        "/v1/tenants/tn_1/dom%61ins/x",
        "/v1/%74enants/tn_1/domains",
        "/%761/emails",
        "/%68ealth",
        // The router serves `{id}` = "public" here: not the public route.
        "/v1/items/%70ublic",
        // Not UTF-8 once decoded.
        "/v1/tenants/%FF/domains",
        "/v1/emails/%ff",
    ] {
        assert_eq!(t.access_for(&Method::GET, path), closed(), "{path}");
    }
    assert_eq!(
        t.access_for(&Method::GET, "/v1/items/public"),
        Access::Public
    );
    assert_eq!(
        t.access_for(&Method::GET, "/v1/items/x%70"),
        Access::require(Permission::DomainsManage)
    );
}

#[test]
fn slashes_and_dot_segments_are_not_normalised() {
    let t = table();
    for path in [
        "//health",
        "/health/",
        "/v1//emails",
        "/v1/emails/",
        "/v1/./emails",
        "/v1/tenants/tn_1/./domains",
        "/v1/tenants/tn_1//domains",
        "/v1/tenants/tn_1/domains/",
        "/v1/tenants/tn_1/x/../domains",
    ] {
        assert_eq!(t.access_for(&Method::GET, path), closed(), "{path}");
    }
    // As the router sees them: a catch-all takes the rest verbatim; an empty segment is an
    // empty tenant (matchit matches it, axum's `Path` gives "").
    assert_eq!(
        t.access_for(&Method::GET, "/v1/tenants//domains"),
        domains("")
    );
    assert_eq!(
        t.access_for(&Method::GET, "/v1/tenants/tn_1/domains//x"),
        domains("tn_1")
    );
    assert_eq!(
        t.access_for(&Method::GET, "/v1/tenants/../domains"),
        domains("..")
    );
    assert_eq!(
        t.access_for(&Method::GET, "/v1/tenants/%2E%2E/domains"),
        domains("..")
    );
}

#[test]
fn absolute_form_and_the_query_use_the_path() {
    let t = table();
    let req = Request::get("http://api.example.com/v1/tenants/tn%5F7/domains?tenant=tn_1")
        .body(())
        .unwrap();
    assert_eq!(t.access(&RequestHead::of(&req)), domains("tn_7"));
    let req = Request::get("http://api.example.com/health")
        .body(())
        .unwrap();
    assert_eq!(t.access(&RequestHead::of(&req)), Access::Public);
}

#[test]
fn invalid_or_conflicting_patterns_are_build_errors() {
    let bad: Vec<(&str, ark_auth::policy::RouteTableBuilder)> = vec![
        (
            "no slash",
            RouteTable::builder().route("v1/x", Methods::GET, Access::Public),
        ),
        (
            "old syntax",
            RouteTable::builder().route("/v1/:id", Methods::GET, Access::Public),
        ),
        (
            "old catch-all",
            RouteTable::builder().route("/v1/*rest", Methods::GET, Access::Public),
        ),
        (
            "unclosed",
            RouteTable::builder().route("/v1/{id", Methods::GET, Access::Public),
        ),
        (
            "catch-all not last",
            RouteTable::builder().route("/v1/{*rest}/x", Methods::GET, Access::Public),
        ),
        (
            "two names",
            RouteTable::builder()
                .route("/v1/{a}", Methods::GET, Access::Public)
                .route("/v1/{b}", Methods::POST, Access::Public),
        ),
        (
            "method twice",
            RouteTable::builder()
                .route("/v1/x", Methods::GET | Methods::POST, Access::Public)
                .route("/v1/x", Methods::POST, Access::any_key()),
        ),
        (
            "any twice",
            RouteTable::builder()
                .route("/v1/x", Methods::ANY, Access::Public)
                .route("/v1/x", Methods::ANY, Access::any_key()),
        ),
        (
            "no tenant param",
            RouteTable::builder().tenant_route(
                "/v1/t/{id}",
                Methods::GET,
                "tenant",
                Access::any_key(),
            ),
        ),
        (
            "tenant is a catch-all",
            RouteTable::builder().tenant_route(
                "/v1/t/{*tenant}",
                Methods::GET,
                "tenant",
                Access::any_key(),
            ),
        ),
    ];
    for (what, builder) in bad {
        let err = builder.build().expect_err(what);
        assert!(
            err.to_string().starts_with("route table: pattern "),
            "{what}: {err}"
        );
        assert!(!err.pattern().is_empty(), "{what}");
    }
}
