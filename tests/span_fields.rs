//! The layer records its decision into the current span where the span declares the fields
//! (`ark.outcome`, `ark.code`, `ark.key_id`, `ark.request_id`): with tower-http's
//! `TraceLayer` outside it, the request's span shows who called and what was decided, and
//! its events (TraceLayer's own "finished processing request" among them) carry those
//! fields. Nothing in the captured output repeats a secret. An axum server over TCP.

mod common;

use ark_auth::{ArkAuthLayer, Environment, MemoryKeyStore, Permission, Permissions};
use common::{bearer, request, send, Capture};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use tracing::field::Empty;

#[tokio::test]
async fn the_request_span_shows_the_decision() {
    use tracing_subscriber::util::SubscriberInitExt;
    let capture = Capture::default();
    let writer = capture.clone();
    let _guard = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish()
        .set_default();

    let key = ark_auth::generate_key(Environment::Live).unwrap();
    let token = key.plaintext.expose_secret().to_owned();
    let weak = ark_auth::generate_key(Environment::Live).unwrap();
    let weak_token = weak.plaintext.expose_secret().to_owned();
    let store = MemoryKeyStore::from_records([
        key.record.clone().with_permissions(Permissions::ALL),
        weak.record.clone(),
    ])
    .unwrap();
    let trace = TraceLayer::new_for_http().make_span_with(|req: &http::Request<_>| {
        tracing::info_span!(
            "request",
            path = %req.uri().path(),
            ark.outcome = Empty,
            ark.code = Empty,
            ark.key_id = Empty,
            ark.request_id = Empty,
        )
    });
    let app = axum::Router::new()
        .fallback(|| async { "ok" })
        .layer(ArkAuthLayer::new(store).require(Permission::EmailsSend))
        .layer(trace);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let res = send(
        addr,
        &request(
            "GET",
            "/a",
            &[bearer(&token), b"x-request-id: t-1".to_vec()],
        ),
    )
    .await;
    assert_eq!(res.status, 200);
    let res = send(
        addr,
        &request(
            "GET",
            "/b",
            &[bearer(&weak_token), b"x-request-id: t-2".to_vec()],
        ),
    )
    .await;
    assert_eq!(res.status, 403);
    let res = send(
        addr,
        &request("GET", "/c", &[b"x-request-id: t-3".to_vec()]),
    )
    .await;
    assert_eq!(res.status, 401);

    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    let finished = |path: &str| {
        logs.lines()
            .find(|l| {
                l.contains("finished processing request") && l.contains(&format!("path={path}"))
            })
            .unwrap_or_else(|| panic!("no finished line for {path}:\n{logs}"))
            .to_owned()
    };
    let a = finished("/a");
    assert!(a.contains("ark.outcome=\"accepted\""), "{a}");
    assert!(
        a.contains(&format!("ark.key_id=\"{}\"", key.record.id())),
        "{a}"
    );
    assert!(a.contains("ark.request_id=\"t-1\""), "{a}");
    assert!(!a.contains("ark.code"), "{a}");
    let b = finished("/b");
    assert!(b.contains("ark.outcome=\"permission_denied\""), "{b}");
    assert!(b.contains("ark.code=\"permission_denied\""), "{b}");
    assert!(
        b.contains(&format!("ark.key_id=\"{}\"", weak.record.id())),
        "{b}"
    );
    let c = finished("/c");
    assert!(c.contains("ark.code=\"authentication_required\""), "{c}");
    assert!(
        c.contains("ark.request_id=\"t-3\"") && !c.contains("ark.key_id"),
        "{c}"
    );
    // One DEBUG event per decision, with its fields.
    let events: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("ark-auth: request"))
        .collect();
    assert_eq!(events.len(), 3, "{logs}");
    assert!(events
        .iter()
        .all(|l| l.contains("DEBUG") && l.contains("request_id=")));
    for secret in [&token, &weak_token] {
        for w in secret.as_bytes()[9..].windows(8) {
            assert!(
                !logs.as_bytes().windows(8).any(|x| x == w),
                "a secret in the logs"
            );
        }
    }
}
