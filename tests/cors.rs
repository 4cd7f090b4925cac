//! The README's CORS setup over TCP: tower-http's `CorsLayer` outside `ArkAuthLayer`
//! answers a browser's preflight without a key, and every answer to a cross-origin request,
//! the layer's rejections included, exposes the rate-limit headers, `Retry-After` and
//! `X-Request-Id` to the script. With the `CorsLayer` inside, the preflight is a 401 and
//! rejections carry no CORS header (checked too, so the advice is shown to matter).

use std::net::SocketAddr;

use ark_auth::response::{
    X_RATELIMIT_LIMIT, X_RATELIMIT_REMAINING, X_RATELIMIT_RESET, X_REQUEST_ID,
};
use ark_auth::{generate_key, ArkAuthLayer, Environment, MemoryKeyStore};
use axum::{routing::get, Router};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tower_http::cors::CorsLayer;

const ORIGIN: &str = "https://app.example.com";

/// The README's `CorsLayer`.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(HeaderValue::from_static(ORIGIN))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([AUTHORIZATION, CONTENT_TYPE])
        .expose_headers([
            X_RATELIMIT_LIMIT.clone(),
            X_RATELIMIT_REMAINING.clone(),
            X_RATELIMIT_RESET.clone(),
            RETRY_AFTER,
            X_REQUEST_ID.clone(),
        ])
}

/// Serves the app with the `CorsLayer` outside (as the README says) or inside the auth
/// layer; returns the address and a key limited to one request per second.
async fn serve(cors_outside: bool) -> (SocketAddr, String) {
    let key = generate_key(Environment::Test).unwrap();
    let store = MemoryKeyStore::from_records([key.record.with_rate_limit(1)]).unwrap();
    let routes = Router::new().route("/v1/limits", get(|| async { "{}" }));
    let auth = ArkAuthLayer::new(store);
    let app = if cors_outside {
        routes.layer(auth).layer(cors())
    } else {
        routes.layer(cors()).layer(auth)
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, key.plaintext.expose_secret().to_owned())
}

async fn send(addr: SocketAddr, req: Request<Empty<Bytes>>) -> http::Response<Bytes> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let res = sender.send_request(req).await.unwrap();
    let (parts, body) = res.into_parts();
    http::Response::from_parts(parts, body.collect().await.unwrap().to_bytes())
}

fn get_limits(key: Option<&str>) -> Request<Empty<Bytes>> {
    let mut req = Request::get("/v1/limits")
        .header("host", "api.example.com")
        .header("origin", ORIGIN);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    req.body(Empty::new()).unwrap()
}

fn preflight() -> Request<Empty<Bytes>> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri("/v1/limits")
        .header("host", "api.example.com")
        .header("origin", ORIGIN)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .body(Empty::new())
        .unwrap()
}

fn exposed(res: &http::Response<Bytes>) -> Vec<String> {
    let mut names: Vec<String> = res
        .headers()
        .get_all("access-control-expose-headers")
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn cors_outside_the_layer_exposes_the_contract_headers() {
    let (addr, key) = serve(true).await;

    let pre = send(addr, preflight()).await;
    assert_eq!(pre.status(), StatusCode::OK);
    assert_eq!(pre.headers()["access-control-allow-origin"], ORIGIN);
    let allowed = pre.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(allowed.contains("authorization"), "{allowed}");

    let expected = [
        "retry-after",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "x-request-id",
    ];
    let unauthenticated = send(addr, get_limits(None)).await;
    let accepted = send(addr, get_limits(Some(&key))).await;
    let limited = send(addr, get_limits(Some(&key))).await;
    for (res, status) in [
        (&unauthenticated, StatusCode::UNAUTHORIZED),
        (&accepted, StatusCode::OK),
        (&limited, StatusCode::TOO_MANY_REQUESTS),
    ] {
        assert_eq!(res.status(), status);
        assert_eq!(
            res.headers()["access-control-allow-origin"],
            ORIGIN,
            "{status}"
        );
        assert_eq!(exposed(res), expected, "{status}");
    }
    // What the script may now read is there.
    assert!(limited.headers().contains_key("retry-after"));
    assert!(accepted.headers().contains_key("x-ratelimit-remaining"));
    assert!(unauthenticated.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn cors_inside_the_layer_fails_the_browser() {
    let (addr, _) = serve(false).await;
    let pre = send(addr, preflight()).await;
    assert_eq!(pre.status(), StatusCode::UNAUTHORIZED);
    let res = send(addr, get_limits(None)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get("access-control-allow-origin").is_none());
}
