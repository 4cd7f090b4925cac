//! The layer's logs of a failing store or limiter carry the whole cause: the crate's errors
//! print only their own message and return the cause from `source()`, so the layer prints
//! the chain (each message once).

mod common;

use std::convert::Infallible;
use std::sync::Arc;

use ark_auth::key::{KeyHash, KeyRecord};
use ark_auth::limit::{BoxLimit, LimitResult, LimiterError, Quotas, RateLimiter};
use ark_auth::store::{Answer, BoxLookup, KeyStore, LookupResult, StoreError};
use ark_auth::{
    generate_key, ArkAuthLayer, Environment, LimiterFailure, MemoryKeyStore, Permissions,
};
use common::Capture;
use http::{Request, Response, StatusCode};
use tower::{Service, ServiceBuilder, ServiceExt};

/// An error with a cause of its own, as a database client's errors have.
#[derive(Debug, thiserror::Error)]
#[error("pool timed out")]
struct PoolTimedOut(#[source] std::io::Error);

#[derive(Clone)]
struct DownStore;

impl KeyStore for DownStore {
    type Future = BoxLookup;
    fn lookup(&self, _: &KeyHash) -> Answer<LookupResult, BoxLookup> {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        Answer::Now(Err(StoreError::new(PoolTimedOut(io))))
    }
}

#[derive(Clone)]
struct DownLimiter;

impl RateLimiter for DownLimiter {
    type Future = BoxLimit;
    fn acquire(&self, _: &KeyRecord, _: &Quotas) -> Answer<LimitResult, BoxLimit> {
        Answer::Later(Box::pin(async { Err(LimiterError::new("redis is down")) }))
    }
    fn peek(&self, key: &KeyRecord, quota: &Quotas) -> Answer<LimitResult, BoxLimit> {
        self.acquire(key, quota)
    }
}

async fn status<S>(app: S, token: &str) -> StatusCode
where
    S: Service<Request<String>, Response = Response<ark_auth::service::ArkAuthBody<String>>>,
    S::Error: std::fmt::Debug,
{
    let req = Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(String::new())
        .unwrap();
    app.oneshot(req).await.unwrap().status()
}

#[test]
fn failure_logs_name_the_cause_once() {
    use tracing_subscriber::util::SubscriberInitExt;

    let capture = Capture::default();
    let writer = capture.clone();
    let _guard = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish()
        .set_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let inner = tower::service_fn(|_req: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::from("ok")))
    });

    let key = generate_key(Environment::Live).unwrap();
    let token = key.plaintext.expose_secret().to_owned();
    let store =
        MemoryKeyStore::from_records([key.record.with_permissions(Permissions::ALL)]).unwrap();
    rt.block_on(async {
        let app = ServiceBuilder::new()
            .layer(ArkAuthLayer::new(DownStore))
            .service(inner);
        assert_eq!(status(app, &token).await, StatusCode::SERVICE_UNAVAILABLE);
        let app = ServiceBuilder::new()
            .layer(
                ArkAuthLayer::new(Arc::new(store))
                    .rate_limiter(DownLimiter)
                    .on_limiter_failure(LimiterFailure::Refuse),
            )
            .service(inner);
        assert_eq!(status(app, &token).await, StatusCode::SERVICE_UNAVAILABLE);
    });

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    for chain in [
        "key store failed: pool timed out: connection refused",
        "rate limiter failed: redis is down",
    ] {
        assert_eq!(logs.matches(chain).count(), 1, "{chain:?} once in:\n{logs}");
    }
    assert_eq!(logs.matches("connection refused").count(), 1, "{logs}");
}
