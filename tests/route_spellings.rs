//! No spelling of a path reaches a handler the key may not use.
//!
//! For every route of the demo server's list (`examples/server/`, compiled in with
//! `#[path]`), a real axum `Router` is built the way the demo builds it (same patterns, same
//! methods, the demo's `RouteTable` in an `ArkAuthLayer` on the whole router), with
//! handlers that record which route they served and the tenant axum's `Path` gave them.
//! Generated spellings of each route (any subset of characters percent-encoded in either hex
//! case, `/` as `%2F`, `//`, `/./`, `/../`, a trailing `/`, any method) are sent with keys
//! lacking permissions or scoped to a tenant; whenever a handler runs, the key must satisfy
//! that route's requirement for the tenant the handler saw.

#[allow(dead_code, unused_imports)]
#[path = "../examples/server/main.rs"]
mod server;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ark_auth::{
    generate_key, key::KeyRecord, policy::KeyScope, Access, ArkAuthLayer, Environment,
    MemoryKeyStore, Permission, Permissions,
};
use axum::body::Body;
use axum::extract::Path;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use proptest::prelude::*;
use tower::ServiceExt;

/// What a handler saw: the route's index and the decoded tenant parameter, if any.
type Seen = Arc<Mutex<Vec<(usize, Option<String>)>>>;

struct Fixture {
    app: Router,
    seen: Seen,
    routes: Vec<(String, Access, Option<&'static str>)>,
    keys: Vec<(String, KeyRecord)>,
    full: String,
}

fn fixture() -> Fixture {
    let store = MemoryKeyStore::new();
    let mint = |perms: Permissions, tenant: Option<&str>| {
        let k = generate_key(Environment::Test).unwrap();
        let mut r = k.record.with_permissions(perms).with_rate_limit(1_000_000);
        if let Some(t) = tenant {
            r = r.with_tenant(t);
        }
        store.try_insert(r.clone()).unwrap();
        (k.plaintext.expose_secret().to_owned(), r)
    };
    let keys = vec![
        mint(Permissions::NONE, None),
        mint(Permissions::ALL, Some("tn_1")),
        mint(Permission::DomainsManage.into(), Some("tn_2")),
        mint(Permission::EmailsRead | Permission::WebhooksManage, None),
    ];
    let (full, _) = mint(Permissions::ALL, None);
    let seen: Seen = Arc::default();
    let mut router = Router::new();
    let mut routes = Vec::new();
    for (i, r) in server::routes().into_iter().enumerate() {
        let log = seen.clone();
        let param = r.tenant_param;
        let handler = move |params: Result<Path<HashMap<String, String>>, _>| async move {
            let params: Result<_, axum::extract::rejection::PathRejection> = params;
            let tenant = match (param, params) {
                (Some(name), Ok(Path(p))) => Some(p.get(name).cloned().unwrap_or_default()),
                // Not UTF-8: the handler ran without a tenant it could read.
                (Some(_), Err(_)) => Some("<undecodable>".to_owned()),
                (None, _) => None,
            };
            log.lock().unwrap().push((i, tenant));
            StatusCode::OK
        };
        router = router.route(r.pattern, server::on_methods(r.methods, handler));
        routes.push((r.pattern.to_owned(), r.access, r.tenant_param));
    }
    let app = router.layer(ArkAuthLayer::new(store).policy(server::route_table()));
    Fixture {
        app,
        seen,
        routes,
        keys,
        full,
    }
}

/// Whether `key` meets `access` on a resource of `tenant`.
fn allowed(key: &KeyRecord, access: &Access, tenant: Option<&str>) -> bool {
    match access {
        Access::Public => true,
        Access::Key { permissions, scope } | Access::Optional { permissions, scope } => {
            key.permissions().contains_all(*permissions)
                && match (key.tenant(), scope, tenant) {
                    (None, _, _) => true,
                    (Some(_), KeyScope::Organisation, _) => false,
                    (Some(k), _, Some(t)) => k == t,
                    (Some(_), KeyScope::Any, None) => true,
                    (Some(_), KeyScope::Tenant(_), None) => false,
                }
        }
    }
}

/// A concrete path of a pattern.
fn instantiate(pattern: &str, tenant: &str) -> String {
    pattern
        .replace("{tenant}", tenant)
        .replace("{id}", "msg_1")
        .replace("{*rest}", "d_1/verify")
}

/// Applies the spelling: per character an op (0-3 as is, 4 lower-hex, 5 upper-hex; `/` is
/// encoded only by 5), then one insertion at a slash and an optional trailing slash.
fn respell(path: &str, ops: &[u8], insert: (u8, usize), trailing: bool) -> String {
    let mut out = String::new();
    for (i, c) in path.chars().enumerate() {
        let op = ops.get(i).copied().unwrap_or(0);
        let encode = (op == 4 && c != '/') || op == 5;
        if encode && i > 0 {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                if op == 4 {
                    out.push_str(&format!("%{b:02x}"));
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        } else {
            out.push(c);
        }
    }
    let slashes: Vec<usize> = out.match_indices('/').map(|(i, _)| i).collect();
    let at = slashes[insert.1 % slashes.len()];
    let piece = ["", "/", "/.", "/..", "/x/.."][usize::from(insert.0) % 5];
    out.insert_str(at, piece);
    if trailing {
        out.push('/');
    }
    out
}

const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "PURGE"];
const TENANTS: [&str; 4] = ["tn_1", "tn_2", "tn_3", "tn%5F1"];

async fn send(app: &Router, method: &str, path: &str, key: &str) -> StatusCode {
    let req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    app.clone().oneshot(req).await.unwrap().status()
}

/// The recorder works: a full-access organisation key reaches every route by its plain
/// spelling, and the handler sees the decoded tenant.
#[tokio::test]
async fn plain_spellings_reach_their_route() {
    let f = fixture();
    for (i, (pattern, _, param)) in f.routes.iter().enumerate() {
        let method = if server::routes()[i]
            .methods
            .contains(ark_auth::policy::Methods::POST)
        {
            "POST"
        } else {
            "GET"
        };
        let path = instantiate(pattern, "tn%5F9");
        assert_eq!(
            send(&f.app, method, &path, &f.full).await,
            StatusCode::OK,
            "{path}"
        );
        let seen = f.seen.lock().unwrap().pop();
        assert_eq!(seen, Some((i, param.map(|_| "tn_9".to_owned()))), "{path}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn no_spelling_reaches_a_route_the_key_may_not_use(
        route in any::<prop::sample::Index>(),
        tenant in 0..TENANTS.len(),
        ops in prop::collection::vec(0u8..6, 0..64),
        insert in (0u8..5, any::<usize>()),
        trailing in any::<bool>(),
        method in 0..METHODS.len(),
    ) {
        thread_local! {
            static F: (Fixture, tokio::runtime::Runtime) = (
                fixture(),
                tokio::runtime::Builder::new_current_thread().build().unwrap(),
            );
        }
        F.with(|(f, rt)| {
            let (pattern, _, _) = &f.routes[route.index(f.routes.len())];
            let path = respell(&instantiate(pattern, TENANTS[tenant]), &ops, insert, trailing);
            if path.parse::<axum::http::Uri>().is_err() {
                return Ok(());
            }
            for (token, record) in &f.keys {
                f.seen.lock().unwrap().clear();
                let status = rt.block_on(send(&f.app, METHODS[method], &path, token));
                prop_assert!(!status.is_server_error(), "{} {path}: {status}", METHODS[method]);
                for (i, seen_tenant) in f.seen.lock().unwrap().drain(..) {
                    let (served, access, _) = &f.routes[i];
                    prop_assert!(
                        allowed(record, access, seen_tenant.as_deref()),
                        "{} {path} reached {served} (tenant {seen_tenant:?}) with a key of {:?} tenant {:?}",
                        METHODS[method], record.permissions(), record.tenant()
                    );
                }
            }
            Ok(())
        })?;
    }
}
