//! The gateway example (`examples/gateway/`) as a process in front of a real upstream that
//! records what it receives ([`upstream`]), both over TCP on 127.0.0.1:
//!
//! - no request the layer refuses reaches the upstream;
//! - accepted requests arrive without the client's key, hop-by-hop headers or client-made
//!   identity and `X-Forwarded-*` headers, with the gateway's identity headers and
//!   `X-Request-Id`;
//! - the upstream's status, headers and body come back unchanged apart from the contract's
//!   headers (its hop-by-hop headers removed);
//! - bodies stream both ways: the upstream reads a request body's first chunk before the
//!   client has sent the rest, and the client reads a response's first chunk before the
//!   upstream has written the rest;
//! - an unreachable upstream is a 502 in the contract's envelope, a silent one a 504;
//! - a body that stalls, either way, is cut.
//!
//! The example's own modules are compiled in too, so their unit tests (arguments, headers,
//! upstream URLs) run here.

#[allow(dead_code, unused_imports)]
#[path = "../../examples/gateway/main.rs"]
mod gateway_example;

mod run;
mod upstream;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ark_auth::{generate_key, keys_file, Environment, Permission, Permissions};
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{HeaderMap, Method, Request, StatusCode};
use serde_json::Value;

use run::{body_of, full, gateway_binary, send, start, ClientBody, Gateway};
use upstream::{Upstream, REPLY_BODY, REPLY_HEADERS, REPLY_HOP_HEADERS};

/// The keys of a run, as plaintext tokens.
struct Keys {
    /// `emails:send`: what the gateway (`--require emails:send`) wants.
    send: String,
    send_id: String,
    /// `emails:read` only: 403.
    read: String,
    revoked: String,
    expired: String,
    /// `emails:send`, 1 request per second.
    slow: String,
    /// `emails:send`, scoped to tenant `tn_42`, named `Zoë bot`.
    tenant: String,
    tenant_id: String,
    file: PathBuf,
}

fn keys(test: &str) -> Keys {
    let mut records = Vec::new();
    let mut mint =
        |perms: Permissions,
         edit: &dyn Fn(ark_auth::key::KeyRecord) -> ark_auth::key::KeyRecord| {
            let k = generate_key(Environment::Test).unwrap();
            let record = edit(k.record.with_permissions(perms));
            let id = record.id().to_owned();
            records.push(keys_file::record_to_json(&record));
            (k.plaintext.expose_secret().to_owned(), id)
        };
    let send = Permission::EmailsSend.into();
    let (send_key, send_id) = mint(send, &|r| r.with_name("gw-send"));
    let (read, _) = mint(Permission::EmailsRead.into(), &|r| r);
    let (revoked, _) = mint(send, &|r| r.with_revoked(true));
    let past = SystemTime::now() - Duration::from_secs(3600);
    let (expired, _) = mint(send, &|r| r.with_expiry(past));
    let (slow, _) = mint(send, &|r| r.with_rate_limit(1));
    let (tenant, tenant_id) = mint(send, &|r| r.with_name("Zoë bot").with_tenant("tn_42"));
    let dir = std::env::temp_dir().join(format!("ark-gateway-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keys.json");
    std::fs::File::create(&file)
        .unwrap()
        .write_all(
            serde_json::json!({ "keys": records })
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    Keys {
        send: send_key,
        send_id,
        read,
        revoked,
        expired,
        slow,
        tenant,
        tenant_id,
        file,
    }
}

/// An upstream, a gateway in front of it requiring `emails:send`, and the keys.
async fn setup(test: &str) -> Option<(Arc<Upstream>, Gateway, Keys)> {
    let bin = gateway_binary()?;
    let up = Upstream::start().await;
    let keys = keys(test);
    let url = format!("http://{}", up.addr);
    let gw = start(&bin, &url, &keys.file, &["--require", "emails:send"]).await;
    Some((up, gw, keys))
}

fn request(method: Method, path: &str, key: Option<&str>, body: ClientBody) -> Request<ClientBody> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "api.example.test");
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    req.body(body).unwrap()
}

fn json(bytes: &Bytes) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(bytes)))
}

/// No refused request reaches the upstream, whatever its method, body or reason; the
/// accepted ones at the end do (so the count is not vacuous).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_never_reach_the_upstream() {
    let Some((up, gw, k)) = setup("refused").await else {
        return;
    };
    let unknown = generate_key(Environment::Test).unwrap();
    let unknown = unknown.plaintext.expose_secret().to_owned();
    let twice = {
        let mut r = request(Method::GET, "/v1/x", Some(&k.send), full(""));
        r.headers_mut().append(
            "authorization",
            format!("Bearer {}", k.send).parse().unwrap(),
        );
        r
    };
    let basic = {
        let mut r = request(Method::GET, "/v1/x", None, full(""));
        r.headers_mut()
            .insert("authorization", "Basic dXNlcjpwdw==".parse().unwrap());
        r
    };
    let cases: Vec<(&str, Request<ClientBody>, StatusCode, &str)> = vec![
        (
            "no key",
            request(Method::GET, "/v1/x", None, full("")),
            StatusCode::UNAUTHORIZED,
            "authentication_required",
        ),
        (
            "no key, with a body",
            request(Method::POST, "/v1/emails", None, full("{\"to\":1}")),
            StatusCode::UNAUTHORIZED,
            "authentication_required",
        ),
        (
            "Basic",
            basic,
            StatusCode::UNAUTHORIZED,
            "authentication_required",
        ),
        (
            "malformed",
            request(Method::GET, "/v1/x", Some("ark_live_short"), full("")),
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
        ),
        (
            "unknown",
            request(Method::DELETE, "/v1/x", Some(&unknown), full("")),
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
        ),
        (
            "two headers",
            twice,
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
        ),
        (
            "revoked",
            request(Method::GET, "/v1/x", Some(&k.revoked), full("")),
            StatusCode::UNAUTHORIZED,
            "expired_api_key",
        ),
        (
            "expired",
            request(
                Method::PUT,
                "/v1/x",
                Some(&k.expired),
                full("x".repeat(10_000)),
            ),
            StatusCode::UNAUTHORIZED,
            "expired_api_key",
        ),
        (
            "no permission",
            request(Method::POST, "/v1/emails", Some(&k.read), full("{}")),
            StatusCode::FORBIDDEN,
            "permission_denied",
        ),
    ];
    for (what, req, status, code) in cases {
        let (parts, body) = body_of(send(gw.addr, req).await).await;
        assert_eq!(parts.status, status, "{what}");
        assert_eq!(json(&body)["error"]["code"], code, "{what}");
        assert_eq!(up.arrivals(), 0, "{what} reached the upstream");
    }
    // Over the limit: the first is forwarded, the second refused.
    let first = send(
        gw.addr,
        request(Method::GET, "/v1/x", Some(&k.slow), full("")),
    )
    .await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(up.arrivals(), 1);
    let (parts, body) = body_of(
        send(
            gw.addr,
            request(Method::POST, "/v1/x", Some(&k.slow), full("{}")),
        )
        .await,
    )
    .await;
    assert_eq!(parts.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(json(&body)["error"]["code"], "rate_limit_exceeded");
    assert_eq!(up.arrivals(), 1, "a 429 reached the upstream");
    let ok = send(
        gw.addr,
        request(Method::GET, "/v1/x", Some(&k.send), full("")),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(up.arrivals(), 2);
}

/// What the upstream receives for an accepted request: the method, path, query and body as
/// sent; none of the client's key, hop-by-hop headers, made-up identity headers or claims
/// about forwarding; the gateway's identity headers, `X-Forwarded-*` and `X-Request-Id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_requests_arrive_without_the_key() {
    let Some((up, gw, k)) = setup("accepted").await else {
        return;
    };
    let mut req = request(
        Method::POST,
        "/v1/emails?dry=1&x=%20",
        Some(&k.send),
        full("{\"to\":[\"b@example.com\"]}"),
    );
    let h = req.headers_mut();
    for (name, value) in [
        ("content-type", "application/json"),
        ("x-request-id", "trace-42"),
        ("x-client-thing", "kept"),
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-host", "spoofed.example"),
        ("x-forwarded-proto", "https"),
        ("forwarded", "for=6.6.6.6"),
        ("connection", "x-hop-in"),
        ("x-hop-in", "private to the client's connection"),
        ("keep-alive", "timeout=5"),
        ("proxy-authorization", "Basic dXNlcjpwdw=="),
        // Identity made up by the client, repeated: none of it may arrive.
        ("x-ark-key-id", "key_admin_spoof"),
        ("x-ark-key-id", "key_root_spoof"),
        ("x-ark-key-name", "admin-spoof"),
        ("x-ark-environment", "live-spoof"),
        ("x-ark-permissions", "* spoof"),
        ("x-ark-tenant", "tn_spoof"),
    ] {
        h.append(name, value.parse().unwrap());
    }
    let res = send(gw.addr, req).await;
    let (parts, body) = body_of(res).await;
    assert_eq!(parts.status, StatusCode::OK, "{body:?}");
    assert_eq!(body, "upstream ok");
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.method, Method::POST);
    assert_eq!(s.uri, "/v1/emails?dry=1&x=%20");
    assert_eq!(s.body, "{\"to\":[\"b@example.com\"]}");
    assert_eq!(s.headers["content-type"], "application/json");
    assert_eq!(s.headers["x-client-thing"], "kept");
    assert_eq!(s.headers["host"], up.addr.to_string().as_str());
    assert_eq!(s.headers["x-forwarded-host"], "api.example.test");
    assert_eq!(s.headers["x-forwarded-proto"], "http");
    assert_eq!(
        s.headers
            .get_all("x-forwarded-for")
            .iter()
            .collect::<Vec<_>>(),
        ["127.0.0.1"]
    );
    assert_eq!(s.headers["x-request-id"], "trace-42");
    assert_eq!(parts.headers["x-ratelimit-limit"], "10");
    for gone in [
        "forwarded",
        "connection",
        "x-hop-in",
        "keep-alive",
        "proxy-authorization",
    ] {
        assert!(s.headers.get(gone).is_none(), "{gone} reached the upstream");
    }
    // The client's key is not passed on, in any header.
    assert!(s.headers.get("authorization").is_none());
    let upstream_saw = format!("{:?} {:?}", s.headers, s.uri);
    assert!(
        !upstream_saw.contains(&k.send[9..]),
        "the key reached the upstream: {upstream_saw}"
    );
    assert!(
        !upstream_saw.contains("spoof"),
        "client-made identity reached the upstream: {upstream_saw}"
    );
    // The gateway's identity headers, one of each.
    let one = |name: &str| {
        let values: Vec<_> = s.headers.get_all(name).iter().collect();
        assert_eq!(values.len(), 1, "{name}: {values:?}");
        values[0].to_str().unwrap().to_owned()
    };
    assert_eq!(one("x-ark-key-id"), k.send_id);
    assert_eq!(one("x-ark-key-name"), "gw-send");
    assert_eq!(one("x-ark-environment"), "test");
    assert_eq!(one("x-ark-permissions"), "emails:send");
    assert!(
        s.headers.get("x-ark-tenant").is_none(),
        "an organisation key has no tenant"
    );

    // A tenant key with a name that needs encoding: the tenant, the name percent-encoded.
    let res = send(
        gw.addr,
        request(Method::GET, "/v1/x", Some(&k.tenant), full("")),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let seen = up.seen();
    let s = &seen[1];
    assert!(s.headers.get("authorization").is_none());
    assert_eq!(s.headers["x-ark-key-id"], k.tenant_id.as_str());
    assert_eq!(s.headers["x-ark-key-name"], "Zo%C3%AB%20bot");
    assert_eq!(s.headers["x-ark-tenant"], "tn_42");
}

/// Whatever the upstream answers (success, client error, its own 5xx) comes back with its
/// status, headers (repeated ones in order) and body; only its hop-by-hop headers are gone
/// and the contract's headers added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_answers_come_back_unchanged() {
    let Some((_up, gw, k)) = setup("unchanged").await else {
        return;
    };
    for status in [200u16, 201, 204, 404, 418, 500, 503] {
        let path = format!("/reply?status={status}");
        let (parts, body) = body_of(
            send(
                gw.addr,
                request(Method::GET, &path, Some(&k.send), full("")),
            )
            .await,
        )
        .await;
        assert_eq!(parts.status.as_u16(), status);
        let mut expected = HeaderMap::new();
        for (name, value) in REPLY_HEADERS {
            expected.append(name, value.parse().unwrap());
        }
        let added = [
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
            "x-request-id",
            // Written by the upstream's HTTP server.
            "date",
            "content-length",
        ];
        let mut got = parts.headers.clone();
        for name in added {
            got.remove(name);
        }
        assert_eq!(got, expected, "{status}: {:?}", parts.headers);
        for (name, _) in REPLY_HOP_HEADERS {
            assert!(
                parts.headers.get(name).is_none(),
                "{status}: {name} came back"
            );
        }
        if status == 204 {
            assert!(body.is_empty());
        } else {
            assert_eq!(body, REPLY_BODY, "{status}");
            assert_eq!(
                parts.headers["content-length"],
                REPLY_BODY.len().to_string().as_str()
            );
        }
        assert_eq!(parts.headers["x-ratelimit-limit"], "10", "{status}");
    }
}

/// A large request body in chunks: the upstream reads the first before the client sends
/// the rest (the gateway does not buffer), and the whole body arrives intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_stream_to_the_upstream() {
    let Some((up, gw, k)) = setup("stream-in").await else {
        return;
    };
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 64;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(4);
    let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed();
    let req = request(Method::POST, "/stream-in", Some(&k.send), body);
    let addr = gw.addr;
    let response = tokio::spawn(async move { body_of(send(addr, req).await).await });
    let chunk = |i: usize| Bytes::from(vec![b'a' + (i % 26) as u8; CHUNK]);
    tx.send(Ok(Frame::data(chunk(0)))).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), up.first_bytes.notified())
        .await
        .expect("the upstream reads the first chunk while the client still holds the rest");
    assert!(up.seen().is_empty(), "the upstream is still reading");
    for i in 1..CHUNKS {
        tx.send(Ok(Frame::data(chunk(i)))).await.unwrap();
    }
    drop(tx);
    let (parts, body) = response.await.unwrap();
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(body, format!("received {} bytes", CHUNK * CHUNKS));
    let seen = up.seen();
    let expected: Vec<u8> = (0..CHUNKS).flat_map(|i| chunk(i).to_vec()).collect();
    assert!(seen[0].body == expected, "the body arrived intact");
}

/// A response streamed slowly: the client reads its first chunk while the upstream still
/// holds the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_bodies_stream_to_the_client() {
    let Some((up, gw, k)) = setup("stream-out").await else {
        return;
    };
    let res = send(
        gw.addr,
        request(Method::GET, "/stream-out", Some(&k.send), full("")),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("the first chunk arrives while the upstream holds the rest")
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(first, "first-chunk");
    up.release.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "last-chunk");
}

/// An upstream that refuses connections: a 502 in the contract's envelope, with the request
/// id in the body and the header; refusals are still the layer's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_a_502() {
    let Some(bin) = gateway_binary() else {
        return;
    };
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let k = keys("502");
    let gw = start(&bin, &format!("http://{closed}"), &k.file, &[]).await;
    let mut req = request(Method::GET, "/v1/x", Some(&k.send), full(""));
    req.headers_mut()
        .insert("x-request-id", "trace-502".parse().unwrap());
    let (parts, body) = body_of(send(gw.addr, req).await).await;
    assert_eq!(parts.status, StatusCode::BAD_GATEWAY);
    assert_eq!(parts.headers["content-type"], "application/json");
    assert_eq!(parts.headers["x-request-id"], "trace-502");
    let v = json(&body);
    assert_eq!(v["success"], false);
    assert_eq!(v["error"]["code"], "bad_gateway");
    assert_eq!(v["meta"]["requestId"], "trace-502");
    let (parts, _) =
        body_of(send(gw.addr, request(Method::GET, "/v1/x", None, full(""))).await).await;
    assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
}

/// An upstream that does not answer within `--upstream-timeout`: a 504 in the contract's
/// envelope, in about that time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_upstream_is_a_504() {
    let Some(bin) = gateway_binary() else {
        return;
    };
    let up = Upstream::start().await;
    let k = keys("504");
    let url = format!("http://{}", up.addr);
    let gw = start(&bin, &url, &k.file, &["--upstream-timeout", "0.5"]).await;
    let started = std::time::Instant::now();
    let (parts, body) = body_of(
        send(
            gw.addr,
            request(Method::GET, "/hang", Some(&k.send), full("")),
        )
        .await,
    )
    .await;
    let took = started.elapsed();
    assert_eq!(parts.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(parts.headers["content-type"], "application/json");
    let v = json(&body);
    assert_eq!(v["error"]["code"], "gateway_timeout");
    assert_eq!(
        v["meta"]["requestId"],
        parts.headers["x-request-id"].to_str().unwrap()
    );
    assert_eq!(up.arrivals(), 1, "the request did reach the upstream");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

/// A body that stops moving is cut after `--body-idle-timeout`, either way: an upstream
/// that stalls its response (the client's body fails after the first chunk), and a client
/// that stalls its request body (the gateway gives up on the upstream request: 502).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_are_cut() {
    let Some(bin) = gateway_binary() else {
        return;
    };
    let up = Upstream::start().await;
    let k = keys("stall");
    let url = format!("http://{}", up.addr);
    let gw = start(&bin, &url, &k.file, &["--body-idle-timeout", "0.5"]).await;

    let res = send(
        gw.addr,
        request(Method::GET, "/stall-out", Some(&k.send), full("")),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "first-chunk");
    let started = std::time::Instant::now();
    let rest = tokio::time::timeout(Duration::from_secs(5), body.collect())
        .await
        .expect("a stalled response is cut, not held open");
    assert!(
        rest.is_err(),
        "the body ends in an error, not as if complete"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(1);
    let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed();
    tx.send(Ok(Frame::data(Bytes::from_static(b"only this"))))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (parts, body) = body_of(
        send(
            gw.addr,
            request(Method::POST, "/stream-in", Some(&k.send), body),
        )
        .await,
    )
    .await;
    assert_eq!(parts.status, StatusCode::BAD_GATEWAY, "{body:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    // The upstream records the request once its body has failed (it may be a moment behind).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while up.seen().len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = up.seen();
    assert_eq!(seen[1].uri, "/stream-in");
    assert_eq!(
        seen[1].body, "only this",
        "the upstream got what it was sent"
    );
    drop(tx);
}

/// An HTTP/2 client: the upstream gets HTTP/1.1, with the `:authority` the client used as
/// `X-Forwarded-Host`, and the answer comes back over HTTP/2; a refusal is refused there
/// too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_are_forwarded_over_http1() {
    let Some((up, gw, k)) = setup("h2").await else {
        return;
    };
    let req = Request::get("http://api.example.test/reply?status=201")
        .header("authorization", format!("Bearer {}", k.send))
        .body(full(""))
        .unwrap();
    let (parts, body) = body_of(run::send_h2(gw.addr, req).await).await;
    assert_eq!(parts.version, hyper::Version::HTTP_2);
    assert_eq!(parts.status, StatusCode::CREATED);
    assert_eq!(parts.headers["x-upstream"], "yes");
    assert_eq!(body, REPLY_BODY);
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/reply?status=201");
    assert_eq!(seen[0].headers["x-forwarded-host"], "api.example.test");
    assert_eq!(seen[0].headers["host"], up.addr.to_string().as_str());

    let req = Request::get("http://api.example.test/reply")
        .body(full(""))
        .unwrap();
    let res = run::send_h2(gw.addr, req).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(up.arrivals(), 1);
}
