//! Flood with `require_checksum(true)`: 1 000 000 random well-formed tokens (the shape of
//! generated keys, `ark_live_` + 38 base62) through `ArkAuthLayer` in front of
//! `CachedKeyStore<PostgresKeyStore>` make zero database queries, counted by the store
//! itself (`PostgresKeyStore::lookup_queries`). Part of the flood goes over TCP to a real
//! axum server, the rest straight into the layer's service (a million TCP connections would
//! measure the network stack, not the layer).
//!
//! Controls, so that the zero means something: unknown keys with a valid checksum, through
//! the same layer, cost one query each, and the real key is served. Needs `DATABASE_URL`
//! (skipped with a printed reason when unset, a failure under `CI=true`).

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use ark_auth::key::{has_valid_checksum, GENERATED_BODY_LEN};
use ark_auth::limit::MemoryRateLimiter;
use ark_auth::postgres::PostgresOptions;
use ark_auth::{generate_key, ArkAuthLayer, Environment, Permissions};
use common::{bearer, request, send};
use http::{Request, Response, StatusCode};
use tower::{Layer, Service, ServiceExt};

const FLOOD: usize = 1_000_000;
/// Of the flood, how many go over TCP (one connection each).
const OVER_TCP: usize = 2_000;
/// Unknown keys with a valid checksum (the control).
const CONTROL: usize = 500;

/// A random token of the shape of generated keys; almost never with a valid checksum
/// (one chance in 62⁶), checked anyway so the expected count stays exact.
fn random_token(out: &mut String) {
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    loop {
        out.clear();
        out.push_str("ark_live_");
        for _ in 0..GENERATED_BODY_LEN {
            out.push(char::from(BASE62[fastrand::usize(..62)]));
        }
        if !has_valid_checksum(out) {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_of_random_tokens_with_checksums_required_makes_no_query() {
    let Some(url) = pg::database_url("flood_of_random_tokens_with_checksums_required") else {
        return;
    };
    let store = pg::store_at(
        &url,
        PostgresOptions {
            connect_timeout: Duration::from_secs(30),
            ..PostgresOptions::default()
        },
    )
    .await;
    let real = generate_key(Environment::Live).unwrap();
    store
        .create(&real.record.clone().with_permissions(Permissions::ALL))
        .await
        .unwrap();
    let cached = store.clone().cached(Default::default());
    let layer = ArkAuthLayer::new(cached.clone())
        .rate_limiter(MemoryRateLimiter::new())
        .require_checksum(true);
    let svc = layer
        .clone()
        .layer(tower::service_fn(|_req: Request<String>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
    let server = common::spawn(common::Flavor::Axum, layer).await;
    let q0 = store.lookup_queries();
    let start = Instant::now();

    let mut token = String::new();
    for _ in 0..OVER_TCP {
        random_token(&mut token);
        let r = send(
            server.addr,
            &request("GET", "/v1/limits", &[bearer(&token)]),
        )
        .await;
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["error"]["code"], "invalid_api_key");
    }
    let mut svc = svc;
    for _ in OVER_TCP..FLOOD {
        random_token(&mut token);
        let req = Request::get("/v1/limits")
            .header("authorization", format!("Bearer {token}"))
            .body(String::new())
            .unwrap();
        let res = svc.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let elapsed = start.elapsed();
    let queries = store.lookup_queries() - q0;
    println!(
        "flood with checksums required: {FLOOD} random well-formed tokens ({OVER_TCP} over TCP) \
         -> {queries} database queries, {} cache lookups reaching the store, {} cache \
         entries, in {:.1} s",
        cached.inner_lookups(),
        cached.entry_count(),
        elapsed.as_secs_f64()
    );
    assert_eq!(
        queries, 0,
        "no token with a wrong checksum reaches the database"
    );
    assert_eq!(cached.inner_lookups(), 0);
    assert_eq!(cached.entry_count(), 0, "nor fills the cache");
    assert_eq!(server.calls(), 0);

    // Controls: a valid checksum reaches the database, once per unknown key; the real key
    // is served.
    let q1 = store.lookup_queries();
    for _ in 0..CONTROL {
        let unknown = generate_key(Environment::Live).unwrap();
        let req = Request::get("/v1/limits")
            .header(
                "authorization",
                format!("Bearer {}", unknown.plaintext.expose_secret()),
            )
            .body(String::new())
            .unwrap();
        let res = svc.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(store.lookup_queries() - q1, CONTROL as u64);
    let ok = send(
        server.addr,
        &request(
            "GET",
            "/v1/limits",
            &[bearer(real.plaintext.expose_secret())],
        ),
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(server.calls(), 1);
    store.remove(real.record.id()).await.unwrap();
}
