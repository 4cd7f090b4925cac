//! One limit per key however the layers are built: an axum router with a layer per route
//! (`route_layer`), made from one base layer, from clones of one store and from another
//! store holding the same key, over real TCP, admits a 10/s key's 10 requests in total.

use std::time::{Duration, Instant};

use ark_auth::{generate_key, ArkAuthLayer, Environment, MemoryKeyStore, Permission, Permissions};
use axum::routing::{get, post};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_route_layers_admit_one_limit_per_key() {
    let key = generate_key(Environment::Live).unwrap();
    let record = key.record.clone().with_permissions(Permissions::ALL); // default 10/s
    let store = MemoryKeyStore::from_records([record.clone()]).unwrap();
    // Another store with the same key: a deployment that loads its keys twice.
    let other_store = MemoryKeyStore::from_records([record]).unwrap();
    let base = ArkAuthLayer::new(store.clone());

    let app = axum::Router::new()
        .route(
            "/v1/emails",
            post(|| async { "sent" }).route_layer(base.clone().require(Permission::EmailsSend)),
        )
        .route(
            "/v1/emails/{id}",
            get(|| async { "read" })
                .route_layer(ArkAuthLayer::new(store.clone()).require(Permission::EmailsRead)),
        )
        .route(
            "/v1/limits",
            get(|| async { "limits" }).route_layer(ArkAuthLayer::new(other_store)),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let token = key.plaintext.expose_secret().to_owned();
    let started = Instant::now();
    // Ten requests per route, the three routes at once.
    let routes = [
        ("POST", "/v1/emails"),
        ("GET", "/v1/emails/em_1"),
        ("GET", "/v1/limits"),
    ];
    let tasks = routes.map(|(method, path)| {
        let (client, token) = (client.clone(), token.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..10 {
                let req = http::Request::builder()
                    .method(method)
                    .uri(format!("http://{addr}{path}"))
                    .header("authorization", format!("Bearer {token}"))
                    .body(Full::new(Bytes::from_static(b"{}")))
                    .unwrap();
                let res = client.request(req).await.unwrap();
                let status = res.status().as_u16();
                let limit = res.headers()["x-ratelimit-limit"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                assert_eq!(limit, "10", "{path}");
                res.into_body().collect().await.unwrap();
                statuses.push(status);
            }
            statuses
        })
    });
    let mut admitted = 0;
    let mut refused = 0;
    for task in tasks {
        for status in task.await.unwrap() {
            match status {
                200 => admitted += 1,
                429 => refused += 1,
                other => panic!("unexpected status {other}"),
            }
        }
    }
    let elapsed = started.elapsed();
    // All thirty inside one window (a burst spanning two windows could be admitted 11).
    assert!(
        elapsed < Duration::from_millis(900),
        "burst took {elapsed:?}"
    );
    assert_eq!(
        (admitted, refused),
        (10, 20),
        "a 10/s key across three route layers, in {elapsed:?}"
    );
}
