//! Every response the layer writes carries a `Refusal` in its extensions, which a layer
//! outside it reads without parsing the body: the error code, the request's id, and the
//! key's id wherever the store found the key (revoked, expired, 403, 429, the limiter's 503);
//! the inner service's responses carry none. Here the outer layer copies what it reads into
//! response headers; real servers (axum, plain hyper) over TCP.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use ark_auth::{
    limit::{MemoryRateLimiter, RateLimiter},
    store::KeyStore,
    ArkAuthLayer, Environment, LimiterFailure, MemoryKeyStore, Permission, Permissions, Refusal,
};
use bytes::Bytes;
use common::{bearer, request, send, Bad, BadLimiter, BadStore, Flavor, FLAVORS};
use http::{HeaderValue, Response};
use http_body_util::Full;
use tokio::net::TcpListener;

/// What an outer layer saw: the refusal's code, key id and request id, as headers.
fn copy_refusal<B>(mut res: Response<B>) -> Response<B> {
    let seen = res.extensions().get::<Refusal>().map(|r| {
        (
            r.code().as_str(),
            r.key_id().unwrap_or("none").to_owned(),
            r.request_id().as_str().to_owned(),
            r.status(),
        )
    });
    let h = res.headers_mut();
    match seen {
        Some((code, key, id, status)) => {
            h.insert("x-seen-code", HeaderValue::from_static(code));
            h.insert("x-seen-key", key.parse().unwrap());
            h.insert("x-seen-request-id", id.parse().unwrap());
            h.insert("x-seen-status", status.as_str().parse().unwrap());
        }
        None => {
            h.insert("x-seen-code", HeaderValue::from_static("none"));
        }
    }
    res
}

async fn spawn<K, L>(flavor: Flavor, layer: ArkAuthLayer<K, L, ark_auth::Access>) -> SocketAddr
where
    K: KeyStore + Clone,
    L: RateLimiter + Clone,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    match flavor {
        Flavor::Axum => {
            let app = axum::Router::new()
                .fallback(|| async { "ok" })
                .layer(layer)
                .layer(tower::util::MapResponseLayer::new(
                    copy_refusal::<axum::body::Body>,
                ));
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        }
        Flavor::Hyper => {
            let inner = tower::service_fn(|_req: hyper::Request<hyper::body::Incoming>| async {
                Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
            });
            type Body = ark_auth::service::ArkAuthBody<Full<Bytes>>;
            let svc = tower::ServiceBuilder::new()
                .map_response(copy_refusal::<Body>)
                .layer(layer)
                .service(inner);
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let svc = hyper_util::service::TowerToHyperService::new(svc.clone());
                    tokio::spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        }
    }
    addr
}

#[tokio::test]
async fn outer_layers_read_every_refusal_and_the_key_behind_it() {
    let gen = |f: &dyn Fn(ark_auth::key::KeyRecord) -> ark_auth::key::KeyRecord| {
        let g = ark_auth::generate_key(Environment::Live).unwrap();
        let record = f(g.record.with_permissions(Permissions::ALL));
        (g.plaintext.expose_secret().to_owned(), record)
    };
    let past = SystemTime::now() - Duration::from_secs(1);
    let (ok, ok_r) = gen(&|r| r);
    let (revoked, revoked_r) = gen(&|r| r.with_revoked(true));
    let (expired, expired_r) = gen(&|r| r.with_expiry(past));
    let (weak, weak_r) = gen(&|r| r.with_permissions(Permissions::NONE));
    let (once, once_r) = gen(&|r| r.with_rate_limit(1));
    let ids: Vec<String> = [&ok_r, &revoked_r, &expired_r, &weak_r, &once_r]
        .iter()
        .map(|r| r.id().to_owned())
        .collect();
    let store = MemoryKeyStore::from_records([ok_r, revoked_r, expired_r, weak_r, once_r]).unwrap();

    for flavor in FLAVORS {
        let layer = ArkAuthLayer::new(store.clone())
            .rate_limiter(MemoryRateLimiter::new())
            .require(Permission::EmailsSend);
        let addr = spawn(flavor, layer).await;
        let cases = [
            (Some(ok.as_str()), 200, "none", None),
            (None, 401, "authentication_required", Some("none")),
            (
                Some("ark_live_00000000000000000000"),
                401,
                "invalid_api_key",
                Some("none"),
            ),
            (
                Some(revoked.as_str()),
                401,
                "expired_api_key",
                Some(ids[1].as_str()),
            ),
            (
                Some(expired.as_str()),
                401,
                "expired_api_key",
                Some(ids[2].as_str()),
            ),
            (
                Some(weak.as_str()),
                403,
                "permission_denied",
                Some(ids[3].as_str()),
            ),
            (Some(once.as_str()), 200, "none", None),
            (
                Some(once.as_str()),
                429,
                "rate_limit_exceeded",
                Some(ids[4].as_str()),
            ),
        ];
        for (token, status, code, key) in cases {
            let lines: Vec<Vec<u8>> = token.iter().map(|t| bearer(t)).collect();
            let res = send(addr, &request("GET", "/v1/emails", &lines)).await;
            assert_eq!(res.status, status, "{flavor:?} {code}");
            assert_eq!(
                res.header("x-seen-code").as_deref(),
                Some(code),
                "{flavor:?}"
            );
            assert_eq!(
                res.header("x-seen-key").as_deref(),
                key,
                "{flavor:?} {code}"
            );
            if key.is_some() {
                assert_eq!(res.header("x-seen-request-id"), res.header("x-request-id"));
                assert_eq!(res.header("x-seen-status"), Some(status.to_string()));
            }
        }

        // The limiter failed and the deployment refuses: the key was found.
        let layer = ArkAuthLayer::new(store.clone())
            .rate_limiter(BadLimiter(Bad::Error))
            .on_limiter_failure(LimiterFailure::Refuse);
        let addr = spawn(flavor, layer).await;
        let res = send(addr, &request("GET", "/", &[bearer(&ok)])).await;
        assert_eq!(
            (res.status, res.header("x-seen-key")),
            (503, Some(ids[0].clone()))
        );

        // The store failed: no key.
        let layer = ArkAuthLayer::new(BadStore::new(store.clone(), None, Bad::ErrorLater));
        let addr = spawn(flavor, layer).await;
        let res = send(addr, &request("GET", "/", &[bearer(&ok)])).await;
        assert_eq!(res.status, 503);
        assert_eq!(
            res.header("x-seen-code").as_deref(),
            Some("service_unavailable")
        );
        assert_eq!(res.header("x-seen-key").as_deref(), Some("none"));
    }
}
