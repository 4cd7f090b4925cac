//! The layer hands the request id it used on to the inner service, in the request's
//! extensions: the client's `X-Request-Id` when it is valid (1 to 128 characters of
//! `[A-Za-z0-9._-]`, repeating no part of the key), otherwise a fresh `req_` id; on public
//! routes too, and when the store answers later. Real servers (axum, plain hyper) over TCP.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::num::NonZeroU32;

use ark_auth::{
    key::KeyHash,
    limit::{MemoryRateLimiter, Quota},
    policy::RequestHead,
    store::{Answer, BoxLookup, KeyStore, LookupResult},
    Access, ArkAuthLayer, Environment, MemoryKeyStore, Permissions, RequestId,
};
use bytes::Bytes;
use common::{bearer, request, send, Flavor, FLAVORS};
use http_body_util::Full;
use tokio::net::TcpListener;

/// `/health` is public; every other path needs a key.
fn policy(head: &RequestHead<'_>) -> Access {
    match head.uri.path() {
        "/health" => Access::Public,
        _ => Access::any_key(),
    }
}

/// A store that answers from a memory store after yielding once (the parked path).
#[derive(Clone)]
struct Later(MemoryKeyStore);

impl KeyStore for Later {
    type Future = BoxLookup;
    fn lookup(&self, hash: &KeyHash) -> Answer<LookupResult, BoxLookup> {
        let answer = self.0.lookup(hash);
        Answer::Later(Box::pin(async move {
            tokio::task::yield_now().await;
            answer.await
        }))
    }
}

/// The body is the `RequestId` the handler found in the request's extensions ("none" if
/// none).
fn seen(id: Option<&RequestId>) -> String {
    id.map_or("none", RequestId::as_str).to_owned()
}

async fn spawn<K: KeyStore + Clone>(flavor: Flavor, store: K) -> SocketAddr {
    let layer = ArkAuthLayer::new(store)
        .policy(policy)
        .rate_limiter(MemoryRateLimiter::new())
        .default_quota(Quota::per_second(NonZeroU32::new(1000).unwrap()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    match flavor {
        Flavor::Axum => {
            let app = axum::Router::new()
                .fallback(|req: axum::extract::Request| async move {
                    seen(req.extensions().get::<RequestId>())
                })
                .layer(layer);
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        }
        Flavor::Hyper => {
            let inner = tower::service_fn(|req: hyper::Request<hyper::body::Incoming>| {
                let body = seen(req.extensions().get::<RequestId>());
                async move { Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(body)))) }
            });
            let svc = tower::ServiceBuilder::new().layer(layer).service(inner);
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let svc = hyper_util::service::TowerToHyperService::new(svc.clone());
                    tokio::spawn(async move {
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, svc)
                            .await;
                    });
                }
            });
        }
    }
    addr
}

fn is_fresh(id: &str) -> bool {
    id.len() == 24
        && id.starts_with("req_")
        && id[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test]
async fn the_inner_service_gets_the_request_id_the_layer_used() {
    let key = ark_auth::generate_key(Environment::Live).unwrap();
    let token = key.plaintext.expose_secret().to_owned();
    let record = key.record.with_permissions(Permissions::ALL);
    let store = MemoryKeyStore::from_records([record]).unwrap();
    // The key's last 8 characters, in an id: not handed on.
    let pasted = format!("trace-{}", &token[token.len() - 8..]);
    for flavor in FLAVORS {
        for addr in [
            spawn(flavor, store.clone()).await,
            spawn(flavor, Later(store.clone())).await,
        ] {
            for path in ["/v1/emails", "/health"] {
                let given = |id: &str| {
                    request(
                        "GET",
                        path,
                        &[bearer(&token), format!("X-Request-Id: {id}").into_bytes()],
                    )
                };
                let res = send(addr, &given("trace-42_a.b")).await;
                assert_eq!(
                    (res.status, res.body_text().as_str()),
                    (200, "trace-42_a.b"),
                    "{flavor:?} {path}"
                );
                // The response says the same id.
                assert_eq!(res.header_all("x-request-id"), [b"trace-42_a.b"]);

                for raw in [
                    request("GET", path, &[bearer(&token)]),
                    given("bad/id"),
                    given(&pasted),
                    given(&"a".repeat(129)),
                ] {
                    let res = send(addr, &raw).await;
                    assert_eq!(res.status, 200, "{flavor:?} {path}");
                    assert_eq!(res.header("x-request-id"), Some(res.body_text()));
                    assert!(
                        is_fresh(&res.body_text()),
                        "{flavor:?} {path}: {}",
                        res.body_text()
                    );
                }
            }
            // Fresh ids differ from one request to the next.
            let a = send(addr, &request("GET", "/health", &[] as &[&[u8]]))
                .await
                .body_text();
            let b = send(addr, &request("GET", "/health", &[] as &[&[u8]]))
                .await
                .body_text();
            assert!(is_fresh(&a) && is_fresh(&b) && a != b, "{a} {b}");
        }
    }
}

/// `X-Request-Id` on the inner service's responses: the handler's own is kept, and
/// `request_id_header(false)` leaves the response alone (the extension stays).
#[tokio::test]
async fn the_response_header_keeps_the_handlers_own_and_can_be_turned_off() {
    use tower::{ServiceBuilder, ServiceExt};
    let handler = |req: http::Request<String>| async move {
        let mut res = http::Response::new(seen(req.extensions().get::<RequestId>()));
        if req.uri().path() == "/own" {
            res.headers_mut()
                .insert("x-request-id", http::HeaderValue::from_static("handler-1"));
        }
        Ok::<_, std::convert::Infallible>(res)
    };
    let req = |path: &str| {
        http::Request::get(path)
            .header("x-request-id", "abc-1")
            .body(String::new())
            .unwrap()
    };
    let layer = ArkAuthLayer::new(ark_auth::MemoryKeyStore::new()).policy(Access::Public);
    let on = ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(handler);
    let res = on.clone().oneshot(req("/")).await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-1");
    let res = on.oneshot(req("/own")).await.unwrap();
    let ids: Vec<_> = res.headers().get_all("x-request-id").iter().collect();
    assert_eq!(ids, ["handler-1"]);
    let off = ServiceBuilder::new()
        .layer(layer.request_id_header(false))
        .service_fn(handler);
    let res = off.oneshot(req("/")).await.unwrap();
    assert!(res.headers().get("x-request-id").is_none());
    assert_eq!(
        http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes(),
        "abc-1"
    );
}
