//! gRPC callers: a real tonic client against a real tonic server behind `ArkAuthLayer`.
//!
//! A gRPC client reads a failed call from `grpc-status`/`grpc-message`, not from the HTTP
//! status, so for `content-type: application/grpc` the layer answers every rejection in the
//! gRPC form (HTTP 200, trailers-only): 16 UNAUTHENTICATED, 7 PERMISSION_DENIED,
//! 8 RESOURCE_EXHAUSTED, 14 UNAVAILABLE. The service itself is the hand-written equivalent of
//! what tonic's code generator emits for one unary method (no `protoc` needed).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use ark_auth::{
    generate_key,
    key::{KeyHash, KeyRecord},
    policy::RequestHead,
    store::{Answer, KeyStore, LookupResult, StoreError},
    Access, ArkAuthLayer, AuthenticatedKey, Environment, MemoryKeyStore, Permission, Permissions,
};
use http::uri::PathAndQuery;
use tonic::{Code, Request, Response, Status};
use tonic_prost::ProstCodec;

#[derive(Clone, PartialEq, prost::Message)]
struct Ping {
    #[prost(string, tag = "1")]
    text: String,
}

/// Counts the calls that reach the service, and answers with the key id it was given.
#[derive(Clone, Default)]
struct Echo {
    calls: Arc<AtomicUsize>,
}

impl tonic::server::UnaryService<Ping> for Echo {
    type Response = Ping;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Ping>, Status>> + Send>>;

    fn call(&mut self, req: Request<Ping>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let key = req.extensions().get::<AuthenticatedKey>().cloned();
        // The layer hides the caller's credentials: no `authorization` metadata gets here.
        let credentials = req.metadata().get("authorization").is_some();
        Box::pin(async move {
            let key = key.ok_or_else(|| Status::internal("no authenticated key"))?;
            if credentials {
                return Err(Status::internal("the service saw the caller's key"));
            }
            Ok(Response::new(Ping {
                text: format!("{} {}", key.id(), req.into_inner().text),
            }))
        })
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for Echo {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let svc = self.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<Ping, Ping>::default());
            Ok(grpc.unary(svc, req).await)
        })
    }
}

impl tonic::server::NamedService for Echo {
    const NAME: &'static str = "ark.test.Echo";
}

/// The in-memory store, failing for one key (a store outage seen by one caller).
struct FailsFor(MemoryKeyStore, KeyHash);

impl KeyStore for FailsFor {
    type Future = <MemoryKeyStore as KeyStore>::Future;
    fn lookup(&self, hash: &KeyHash) -> Answer<LookupResult, Self::Future> {
        if *hash == self.1 {
            return Answer::Now(Err(StoreError::new("database unreachable")));
        }
        self.0.lookup(hash)
    }
}

struct Keys {
    full: String,
    read_only: String,
    slow: String,
    revoked: String,
    failing: String,
}

async fn serve() -> (SocketAddr, Arc<AtomicUsize>, Keys) {
    let store = MemoryKeyStore::new();
    let add = |f: &dyn Fn(KeyRecord) -> KeyRecord| {
        let k = generate_key(Environment::Test).unwrap();
        store.try_insert(f(k.record)).unwrap();
        k.plaintext.expose_secret().to_owned()
    };
    let keys = Keys {
        full: add(&|r| r.with_permissions(Permissions::ALL)),
        read_only: add(&|r| r.with_permissions(Permission::EmailsRead.into())),
        slow: add(&|r| r.with_permissions(Permissions::ALL).with_rate_limit(1)),
        revoked: add(&|r| r.with_permissions(Permissions::ALL).with_revoked(true)),
        failing: add(&|r| r.with_permissions(Permissions::ALL)),
    };
    let failing = KeyHash::of(
        &ark_auth::token::parse_authorization(format!("Bearer {}", keys.failing).as_bytes())
            .unwrap(),
    );
    let layer =
        ArkAuthLayer::new(Arc::new(FailsFor(store, failing))).policy(|req: &RequestHead<'_>| {
            match req.uri.path() {
                "/ark.test.Echo/Send" => Access::require(Permission::EmailsSend),
                _ => Access::any_key(),
            }
        });
    let echo = Echo::default();
    let calls = Arc::clone(&echo.calls);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(echo)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (addr, calls, keys)
}

async fn call(addr: SocketAddr, method: &'static str, key: Option<&str>) -> Result<String, Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let mut req = Request::new(Ping { text: "hi".into() });
    if let Some(key) = key {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
    }
    client
        .unary(
            req,
            PathAndQuery::from_static(method),
            ProstCodec::<Ping, Ping>::default(),
        )
        .await
        .map(|res| res.into_inner().text)
}

fn assert_status(got: Result<String, Status>, code: Code, message: &str) {
    let status = got.expect_err("the call must be refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(status.message(), message, "{status:?}");
    // The layer's headers travel as metadata.
    assert!(
        status.metadata().get("x-request-id").is_some(),
        "{status:?}"
    );
}

#[tokio::test]
async fn tonic_clients_get_grpc_statuses_and_the_service_sees_only_valid_keys() {
    let (addr, calls, keys) = serve().await;
    const PING: &str = "/ark.test.Echo/Ping";
    const SEND: &str = "/ark.test.Echo/Send";

    assert_status(
        call(addr, PING, None).await,
        Code::Unauthenticated,
        "Missing API key",
    );
    assert_status(
        call(addr, PING, Some("ark_test_notavalidkeybutwellformed1234")).await,
        Code::Unauthenticated,
        "Invalid API key provided",
    );
    assert_status(
        call(addr, PING, Some("sk_live_123")).await,
        Code::Unauthenticated,
        "Invalid API key provided",
    );
    assert_status(
        call(addr, PING, Some(&keys.revoked)).await,
        Code::Unauthenticated,
        "API key has been revoked",
    );
    assert_status(
        call(addr, SEND, Some(&keys.read_only)).await,
        Code::PermissionDenied,
        "API key lacks the required permission: emails:send",
    );
    assert_status(
        call(addr, PING, Some(&keys.failing)).await,
        Code::Unavailable,
        "Authentication is temporarily unavailable",
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "no refused call reached the service"
    );

    // The service runs for a valid key, with the key in its request extensions.
    let ok = call(addr, SEND, Some(&keys.full)).await.unwrap();
    assert!(ok.starts_with("key_") && ok.ends_with(" hi"), "{ok}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // One request per second for this key: the second is refused.
    call(addr, PING, Some(&keys.slow)).await.unwrap();
    let status = call(addr, PING, Some(&keys.slow)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(
        status.message(),
        "Rate limit exceeded: 1 requests per window"
    );
    assert_eq!(status.metadata().get("x-ratelimit-remaining").unwrap(), "0");
    assert!(status.metadata().get("retry-after").is_some());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn plain_http_callers_still_get_the_json_envelope() {
    // The same server, a request without the gRPC content type: the contract's JSON 401.
    let (addr, calls, _) = serve().await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let res = client
        .request(
            http::Request::post(format!("http://{addr}/ark.test.Echo/Ping"))
                .body(http_body_util::Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert!(res.headers().get("grpc-status").is_none());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// Both sides of the line on one axum server speaking HTTP/1.1 and HTTP/2: the gRPC form
/// (HTTP 200 with `grpc-status`) for `application/grpc` over HTTP/2 and for gRPC-Web on any
/// version; the JSON form with the real 401 for `application/grpc` over HTTP/1.1, which no
/// gRPC client sends (tools that count 401s still see key-testing traffic).
#[tokio::test]
async fn grpc_form_only_for_http2_grpc_and_grpc_web() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let layer = ArkAuthLayer::new(MemoryKeyStore::new());
    let app = axum::Router::new()
        .route("/svc/Ping", axum::routing::post(|| async { "served" }))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    // HTTP/1.1 over a raw socket: the status line and headers as sent.
    let h1 = |content_type: &'static str| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "POST /svc/Ping HTTP/1.1\r\nhost: x\r\ncontent-type: {content_type}\r\n\
             authorization: Bearer ark_test_notavalidkeybutwellformed1234\r\n\
             content-length: 0\r\nconnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).to_lowercase()
    };
    for ct in ["application/grpc", "application/grpc+proto"] {
        let res = h1(ct).await;
        assert!(res.starts_with("http/1.1 401 "), "{ct}: {res}");
        assert!(
            res.contains("content-type: application/json"),
            "{ct}: {res}"
        );
        assert!(!res.contains("grpc-status"), "{ct}: {res}");
        assert!(res.contains("\"code\":\"invalid_api_key\""), "{ct}: {res}");
    }
    for ct in ["application/grpc-web+proto", "application/grpc-web-text"] {
        let res = h1(ct).await;
        assert!(res.starts_with("http/1.1 200 "), "{ct}: {res}");
        assert!(res.contains("grpc-status: 16"), "{ct}: {res}");
    }

    // HTTP/2 (prior knowledge, as gRPC clients connect): the gRPC form.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    for (ct, status, grpc) in [
        ("application/grpc", 200, Some("16")),
        ("application/grpc-web", 200, Some("16")),
        ("application/json", 401, None),
    ] {
        let res = client
            .request(
                http::Request::post(format!("http://{addr}/svc/Ping"))
                    .header("content-type", ct)
                    .body(http_body_util::Empty::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.version(), http::Version::HTTP_2);
        assert_eq!(res.status(), status, "{ct}");
        assert_eq!(
            res.headers()
                .get("grpc-status")
                .map(|v| v.to_str().unwrap()),
            grpc,
            "{ct}"
        );
    }
}
