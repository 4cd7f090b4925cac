//! The demo server (`examples/server/`, contract section 7) in process: the example's
//! source is compiled into this test with `#[path]`, so no example binary has to be built or
//! found; its `app` router is driven with `tower::ServiceExt::oneshot`. The black-box run
//! over TCP with the official SDK is `tests/sdk/run.sh`.

#[allow(dead_code, unused_imports)]
#[path = "../examples/server/main.rs"]
mod server;

use std::io::Write;

use ark_auth::{generate_key, Environment, MemoryKeyStore, Permission, Permissions};
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

struct Keys {
    full: String,
    live: String,
    send: String,
    read: String,
    none: String,
    tenant: String,
    slow: String,
}

fn keys_and_app() -> (Keys, Router) {
    let store = MemoryKeyStore::new();
    let mint = |env: Environment, perms: Permissions, tenant: Option<&str>, rate: Option<u32>| {
        let k = generate_key(env).unwrap();
        let mut r = k.record.with_permissions(perms);
        if let Some(t) = tenant {
            r = r.with_tenant(t);
        }
        if let Some(n) = rate {
            r = r.with_rate_limit(n);
        }
        store.try_insert(r).unwrap();
        k.plaintext.expose_secret().to_owned()
    };
    let keys = Keys {
        full: mint(Environment::Test, Permissions::ALL, None, None),
        live: mint(Environment::Live, Permission::EmailsSend.into(), None, None),
        send: mint(Environment::Test, Permission::EmailsSend.into(), None, None),
        read: mint(Environment::Test, Permission::EmailsRead.into(), None, None),
        none: mint(Environment::Test, Permissions::NONE, None, None),
        tenant: mint(
            Environment::Test,
            Permission::DomainsManage | Permission::SuppressionsManage,
            Some("tn_42"),
            None,
        ),
        slow: mint(Environment::Test, Permissions::ALL, None, Some(1)),
    };
    (keys, server::app(store))
}

struct Res {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

async fn call(app: &Router, method: Method, path: &str, key: Option<&str>, body: &str) -> Res {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    if !body.is_empty() {
        req = req.header("content-type", "application/json");
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{path}: body is not JSON ({}): {:?}",
            parts.status,
            String::from_utf8_lossy(&bytes)
        )
    });
    let res = Res {
        status: parts.status,
        headers: parts.headers,
        json,
    };
    // Every answer: JSON envelope with the request id that is in X-Request-Id, and never
    // any part of the key.
    assert_eq!(
        res.headers["content-type"], "application/json",
        "{path}: content type"
    );
    assert_eq!(
        res.json["meta"]["requestId"].as_str().unwrap(),
        res.headers["x-request-id"].to_str().unwrap(),
        "{path}: request id"
    );
    assert_eq!(res.json["success"], res.status.is_success(), "{path}");
    if let Some(k) = key.filter(|k| k.len() > 9) {
        let text = format!("{:?} {}", res.headers, res.json);
        assert!(!text.contains(&k[9..]), "{path}: the key leaks: {text}");
    }
    res
}

const EMAIL: &str =
    r#"{"from": "a@example.com", "to": ["b@example.com"], "subject": "hi", "text": "x"}"#;

/// Every route of the contract's table: no key → 401, a key lacking the permission → 403
/// naming it, a key holding it → served.
#[tokio::test]
async fn route_table() {
    let (k, app) = keys_and_app();
    let table: &[(Method, &str, Option<Permission>)] = &[
        (Method::POST, "/v1/emails", Some(Permission::EmailsSend)),
        (
            Method::POST,
            "/v1/emails/batch",
            Some(Permission::EmailsSend),
        ),
        (Method::POST, "/v1/emails/raw", Some(Permission::EmailsSend)),
        (Method::GET, "/v1/emails", Some(Permission::EmailsRead)),
        (
            Method::GET,
            "/v1/emails/msg_1",
            Some(Permission::EmailsRead),
        ),
        (Method::GET, "/v1/limits", None),
        (
            Method::GET,
            "/v1/tenants/tn_1/domains",
            Some(Permission::DomainsManage),
        ),
        (
            Method::POST,
            "/v1/tenants/tn_1/domains",
            Some(Permission::DomainsManage),
        ),
        (
            Method::DELETE,
            "/v1/tenants/tn_1/domains/7",
            Some(Permission::DomainsManage),
        ),
        (
            Method::POST,
            "/v1/tenants/tn_1/domains/7/verify",
            Some(Permission::DomainsManage),
        ),
        (
            Method::GET,
            "/v1/tenants/tn_1/webhooks",
            Some(Permission::WebhooksManage),
        ),
        (
            Method::PATCH,
            "/v1/tenants/tn_1/webhooks/wh_1",
            Some(Permission::WebhooksManage),
        ),
        (
            Method::GET,
            "/v1/platform/webhooks",
            Some(Permission::WebhooksManage),
        ),
        (
            Method::POST,
            "/v1/platform/webhooks/wh_1/test",
            Some(Permission::WebhooksManage),
        ),
        (
            Method::GET,
            "/v1/tenants/tn_1/suppressions",
            Some(Permission::SuppressionsManage),
        ),
        (
            Method::DELETE,
            "/v1/tenants/tn_1/suppressions/a@b.c",
            Some(Permission::SuppressionsManage),
        ),
    ];
    for (method, path, perm) in table {
        let body = if *method == Method::GET { "" } else { "{}" };
        let none = call(&app, method.clone(), path, None, body).await;
        assert_eq!(none.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(none.json["error"]["code"], "authentication_required");

        if let Some(p) = perm {
            let res = call(&app, method.clone(), path, Some(&k.none), body).await;
            assert_eq!(res.status, StatusCode::FORBIDDEN, "{method} {path}");
            assert_eq!(res.json["error"]["code"], "permission_denied");
            assert!(res.json["error"]["message"]
                .as_str()
                .unwrap()
                .contains(p.as_str()));
            assert_eq!(
                res.headers["www-authenticate"],
                format!("Bearer realm=\"ark\", error=\"insufficient_scope\", scope=\"{p}\"")
                    .as_str()
            );
        }
        let ok_key = match perm {
            None => &k.none,
            Some(Permission::EmailsRead) => &k.read,
            Some(Permission::EmailsSend) => &k.send,
            Some(_) => &k.full,
        };
        let res = call(&app, method.clone(), path, Some(ok_key), body).await;
        let expected = if *path == "/v1/emails/msg_1" {
            StatusCode::NOT_FOUND // authorised; no such email
        } else {
            StatusCode::OK
        };
        assert_eq!(res.status, expected, "{method} {path}: {}", res.json);
        assert!(
            res.headers.contains_key("x-ratelimit-limit"),
            "{method} {path}"
        );
        assert!(res.headers.contains_key("x-ratelimit-remaining"));
        assert!(res.headers.contains_key("x-ratelimit-reset"));
    }
}

#[tokio::test]
async fn health_is_public() {
    let (_, app) = keys_and_app();
    let res = call(&app, Method::GET, "/health", None, "").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json["data"]["status"], "ok");
    assert!(!res.headers.contains_key("x-ratelimit-limit"));
}

#[tokio::test]
async fn unknown_paths_and_methods_need_a_key_first() {
    let (k, app) = keys_and_app();
    for path in [
        "/v1/nope",
        "/v1/emails/msg_1/deliveries",
        "/v1/tenants/tn_1",
        "/",
        "/v2/emails",
        "/health/x",
    ] {
        let res = call(&app, Method::GET, path, None, "").await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{path}");
        let res = call(&app, Method::GET, path, Some(&k.full), "").await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(res.json["error"]["code"], "not_found");
    }
    let res = call(&app, Method::DELETE, "/v1/limits", None, "").await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let res = call(&app, Method::DELETE, "/v1/limits", Some(&k.full), "").await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.json["error"]["code"], "method_not_allowed");
    // Path segments that are not UTF-8 once decoded: a JSON 400, after authentication.
    for path in ["/v1/emails/%FF", "/v1/tenants/%FF/domains"] {
        let res = call(&app, Method::GET, path, None, "").await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{path}");
        let res = call(&app, Method::GET, path, Some(&k.full), "").await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(res.json["error"]["code"], "invalid_request");
    }
    // A tenant path outside the table still respects the key's tenant.
    let res = call(
        &app,
        Method::GET,
        "/v1/tenants/tn_7/tracking",
        Some(&k.tenant),
        "",
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn send_answers_id_and_test_flag() {
    let (k, app) = keys_and_app();
    let res = call(&app, Method::POST, "/v1/emails", Some(&k.send), EMAIL).await;
    assert_eq!(res.status, StatusCode::OK);
    let id = res.json["data"]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("msg_"));
    assert_eq!(res.json["data"]["test"], true);
    assert_eq!(res.json["data"]["to"], serde_json::json!(["b@example.com"]));
    assert_eq!(res.headers["x-ratelimit-limit"], "10");

    let live = call(&app, Method::POST, "/v1/emails", Some(&k.live), EMAIL).await;
    assert_eq!(live.json["data"]["test"], false);

    let got = call(
        &app,
        Method::GET,
        &format!("/v1/emails/{id}"),
        Some(&k.read),
        "",
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json["data"]["id"], id.as_str());
    assert_eq!(got.json["data"]["to"], "b@example.com");

    let list = call(&app, Method::GET, "/v1/emails?perPage=1", Some(&k.read), "").await;
    assert_eq!(list.json["data"].as_array().unwrap().len(), 1);
    assert_eq!(list.json["total"], 2);
    assert_eq!(list.json["totalPages"], 2);

    let bad = call(&app, Method::POST, "/v1/emails", Some(&k.send), "[1, 2]").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn request_id_is_echoed() {
    let (k, app) = keys_and_app();
    let req = Request::post("/v1/emails")
        .header("authorization", format!("Bearer {}", k.send))
        .header("x-request-id", "abc-123")
        .body(Body::from(EMAIL))
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["meta"]["requestId"], "abc-123");
}

/// An `X-Request-Id` repeating 8+ characters of the presented key is not echoed: neither by
/// a handler's answer (200) nor by the layer's (403, 401 for a malformed key).
#[tokio::test]
async fn request_id_repeating_the_key_is_replaced() {
    let (k, app) = keys_and_app();
    for (method, path, auth, status) in [
        (
            Method::POST,
            "/v1/emails",
            format!("Bearer {}", k.send),
            200,
        ),
        (Method::GET, "/v1/emails", format!("Bearer {}", k.send), 403),
        (
            Method::GET,
            "/v1/limits",
            format!("Bearer {}!", k.send),
            401,
        ),
    ] {
        let id = format!("trace-{}", &k.send[12..24]);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .header("x-request-id", &id)
            .body(Body::from(EMAIL))
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), status, "{path}");
        let header = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(header.starts_with("req_"), "{path}: {header}");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["meta"]["requestId"], header.as_str(), "{path}");
        assert!(!String::from_utf8_lossy(&body).contains(&k.send[12..24]));
    }
}

#[tokio::test]
async fn tenant_scoped_key() {
    let (k, app) = keys_and_app();
    let own = call(
        &app,
        Method::GET,
        "/v1/tenants/tn_42/domains",
        Some(&k.tenant),
        "",
    )
    .await;
    assert_eq!(own.status, StatusCode::OK);
    let other = call(
        &app,
        Method::GET,
        "/v1/tenants/tn_7/domains",
        Some(&k.tenant),
        "",
    )
    .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert_eq!(other.json["error"]["code"], "permission_denied");
    let other = call(
        &app,
        Method::DELETE,
        "/v1/tenants/tn_7/suppressions/x",
        Some(&k.tenant),
        "",
    )
    .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    // The tenant the layer checks is the one the handler sees, percent-encoded or not.
    let enc = call(
        &app,
        Method::POST,
        "/v1/tenants/tn%5F42/domains/d1/verify",
        Some(&k.tenant),
        "",
    )
    .await;
    assert_eq!(enc.status, StatusCode::OK);
    assert_eq!(enc.json["data"]["tenantId"], "tn_42");
    let enc = call(
        &app,
        Method::GET,
        "/v1/tenants/tn%5F7/domains",
        Some(&k.tenant),
        "",
    )
    .await;
    assert_eq!(enc.status, StatusCode::FORBIDDEN);
    // Organisation-level keys reach every tenant.
    let org = call(
        &app,
        Method::GET,
        "/v1/tenants/tn_7/domains",
        Some(&k.full),
        "",
    )
    .await;
    assert_eq!(org.status, StatusCode::OK);
}

#[tokio::test]
async fn rate_limit_and_limits_route() {
    let (k, app) = keys_and_app();
    let first = call(&app, Method::GET, "/v1/limits", Some(&k.slow), "").await;
    assert_eq!(first.status, StatusCode::OK);
    let rl = &first.json["data"]["rateLimit"];
    assert_eq!(rl["limit"], 1);
    assert_eq!(rl["period"], "second");
    assert_eq!(rl["remaining"], 0);
    assert_eq!(
        rl["remaining"].to_string(),
        first.headers["x-ratelimit-remaining"].to_str().unwrap()
    );
    let second = call(&app, Method::POST, "/v1/emails", Some(&k.slow), EMAIL).await;
    assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.json["error"]["code"], "rate_limit_exceeded");
    let retry: u64 = second.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);

    let full = call(&app, Method::GET, "/v1/limits", Some(&k.full), "").await;
    assert_eq!(full.json["data"]["rateLimit"]["limit"], 10);
    assert_eq!(full.json["data"]["key"]["environment"], "test");
}

#[test]
fn bad_keys_file_names_the_entry_and_loads_nothing() {
    let dir = std::env::temp_dir().join(format!("ark-demo-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.json");
    let mut f = std::fs::File::create(&path).unwrap();
    write!(
        f,
        r#"{{"keys": [
            {{"key": "ark_test_0123456789abcdefXYZ", "name": "good", "permissions": ["*"]}},
            {{"key": "ark_test_0123456789abcdefXYW", "name": "typo", "permissions": ["emails:sned"]}}
        ]}}"#
    )
    .unwrap();
    drop(f);
    let err = server::load_keys(&path).unwrap_err();
    assert!(err.contains("entry 1") && err.contains("typo"), "{err}");
    assert!(!err.contains("0123456789abcdef"), "{err}");
    // A member given twice is not last-wins: the server does not start.
    std::fs::write(
        &path,
        r#"{"keys": [{"key": "ark_test_0123456789abcdefXYZ", "name": "old", "revoked": true, "permissions": ["*"], "revoked": false}]}"#,
    )
    .unwrap();
    let err = server::load_keys(&path).unwrap_err();
    assert!(
        err.contains("entry 0") && err.contains("old") && err.contains("\"revoked\" appears twice"),
        "{err}"
    );
    std::fs::write(
        &path,
        r#"{"keys": [{"key": "ark_test_0123456789abcdefXYZ", "name": "good", "permissions": ["*"], "rate_limit": 5}]}"#,
    )
    .unwrap();
    assert_eq!(server::load_keys(&path).unwrap().len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A keys file entry with several limits: `/v1/limits` and the headers describe the window
/// closest to refusing (the minute), and the minute's refusal names it.
#[tokio::test]
async fn keys_file_rate_limits_apply_with_their_windows() {
    let dir = std::env::temp_dir().join(format!("ark-demo-windows-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.json");
    let token = "ark_test_0123456789abcdefWIN";
    std::fs::write(
        &path,
        format!(
            r#"{{"keys": [{{"key": "{token}", "name": "windows", "permissions": ["*"], "rate_limits": {{"second": 5, "minute": 2}}}}]}}"#
        ),
    )
    .unwrap();
    let app = server::app(server::load_keys(&path).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
    for remaining in [1, 0] {
        let res = call(&app, Method::GET, "/v1/limits", Some(token), "").await;
        assert_eq!(res.status, StatusCode::OK);
        let rl = &res.json["data"]["rateLimit"];
        assert_eq!(
            (rl["limit"].as_u64(), rl["period"].as_str()),
            (Some(2), Some("minute"))
        );
        assert_eq!(rl["remaining"], remaining);
        assert_eq!(res.headers["x-ratelimit-limit"], "2");
    }
    let res = call(&app, Method::GET, "/v1/limits", Some(token), "").await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        res.json["error"]["message"],
        "Rate limit exceeded: 2 requests per minute"
    );
}

/// The demo server's connection limits exist with the values the README gives.
#[test]
fn connection_limits_have_the_documented_values() {
    use std::time::Duration;
    let l = server::serve::LIMITS;
    assert_eq!(l.header_read_timeout, Duration::from_secs(10));
    assert_eq!(l.idle_timeout, Duration::from_secs(60));
    assert_eq!(l.max_connections, 512);
    assert_eq!(l.h2_max_concurrent_streams, 100);
    assert_eq!(l.h2_keep_alive_interval, Duration::from_secs(20));
    assert_eq!(l.h2_keep_alive_timeout, Duration::from_secs(10));
    assert_eq!(l.shutdown_grace, Duration::from_secs(10));
}

mod slow_clients {
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::server;

    const HEADER_READ: Duration = Duration::from_millis(1000);
    const IDLE: Duration = Duration::from_millis(1500);
    /// Scheduling slack on a loaded machine.
    const SLACK: Duration = Duration::from_millis(1500);

    /// Opens a connection that sends `head` one byte per second (never a complete request
    /// head); returns how long the server took to close it (`None`: still open after 10 s).
    async fn trickle(addr: SocketAddr, head: &'static [u8]) -> Option<Duration> {
        let start = Instant::now();
        let (mut r, mut w) = TcpStream::connect(addr).await.unwrap().into_split();
        let writer = tokio::spawn(async move {
            for &b in head.iter().chain(std::iter::repeat(&b'a')).take(30) {
                if w.write_all(&[b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let mut buf = [0u8; 512];
        let closed = loop {
            match tokio::time::timeout(Duration::from_secs(10), r.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => break Some(start.elapsed()),
                Ok(Ok(_)) => continue, // a 408, or HTTP/2 frames before the close
                Err(_) => break None,
            }
        };
        writer.abort();
        closed
    }

    /// One whole request on a new connection: its status line.
    async fn get_health(addr: SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned()
    }

    /// How long a connection stays open after `sent`, reading until the server closes it.
    async fn open_for(mut s: TcpStream, sent: &[u8]) -> Option<Duration> {
        s.write_all(sent).await.unwrap();
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
                Ok(Ok(_)) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Slowloris: connections trickling their request head one byte per second are closed
    /// within the header-read timeout (an HTTP/2 preface trickled the same way within the
    /// idle timeout); other clients are served meanwhile, and once every slot is taken by
    /// tricklers, a new client is served as soon as they are cut off. Idle keep-alive
    /// connections, HTTP/1 and HTTP/2, are closed too; shutdown is graceful and bounded.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn trickling_and_idle_connections_are_closed_while_others_are_served() {
        let limits = server::serve::Limits {
            header_read_timeout: HEADER_READ,
            idle_timeout: IDLE,
            max_connections: 8,
            shutdown_grace: Duration::from_secs(1),
            ..server::serve::LIMITS
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = server::app(ark_auth::MemoryKeyStore::new());
        let serving = tokio::spawn(server::serve::serve(listener, app, limits, async {
            let _ = stopped.await;
        }));

        const H1: &[u8] = b"GET /health HTTP/1.1\r\nhost: x\r\nx-slow: ";
        const H2: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        let started = Instant::now();
        let mut h1 = Vec::new();
        for _ in 0..4 {
            h1.push(tokio::spawn(trickle(addr, H1)));
        }
        let h2 = tokio::spawn(trickle(addr, H2));
        tokio::time::sleep(Duration::from_millis(200)).await;

        // Served at once while five tricklers hold their connections.
        let t = Instant::now();
        assert_eq!(get_health(addr).await, "HTTP/1.1 200 OK");
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        assert!(h1.iter().all(|t| !t.is_finished()) && !h2.is_finished());

        // Three more take every slot; a new client waits for one, not forever.
        for _ in 0..3 {
            h1.push(tokio::spawn(trickle(addr, H1)));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        assert_eq!(get_health(addr).await, "HTTP/1.1 200 OK");
        assert!(
            t.elapsed() < HEADER_READ + SLACK,
            "waited {:?}",
            t.elapsed()
        );

        for t in h1 {
            let closed = t
                .await
                .unwrap()
                .expect("a trickling HTTP/1 head is cut off");
            assert!(closed < HEADER_READ + SLACK, "closed after {closed:?}");
        }
        let closed = h2
            .await
            .unwrap()
            .expect("a trickling HTTP/2 preface is cut off");
        assert!(closed < IDLE + SLACK, "closed after {closed:?}");
        assert!(started.elapsed() < IDLE + 2 * SLACK);

        // A kept-alive HTTP/1 connection after its response: closed once idle.
        let s = TcpStream::connect(addr).await.unwrap();
        let open = open_for(s, b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").await;
        let open = open.expect("an idle HTTP/1 connection is closed");
        assert!(open < HEADER_READ + SLACK, "open for {open:?}");
        // An HTTP/2 connection (preface and SETTINGS) that opens no stream: GOAWAY, closed.
        let s = TcpStream::connect(addr).await.unwrap();
        let mut hello = H2.to_vec();
        hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // empty SETTINGS frame
        let open = open_for(s, &hello).await;
        let open = open.expect("an idle HTTP/2 connection is closed");
        assert!(
            open >= IDLE - Duration::from_millis(200),
            "closed early: {open:?}"
        );
        assert!(open < IDLE + SLACK, "open for {open:?}");

        // Graceful shutdown: stops accepting and returns.
        let t = Instant::now();
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(3), serving)
            .await
            .expect("serve returns after shutdown")
            .unwrap();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(TcpStream::connect(addr).await.is_err(), "still listening");
    }
}
