//! Secret hygiene, every code path: with `tracing` capturing everything at TRACE, requests
//! that reach every outcome of the layer (200; 401 of each kind; 403 for a permission and
//! for a tenant; 429; 503 for a store that errors, hangs or panics; a limiter that errors,
//! hangs or panics, failing open and closed; the gRPC form of the rejections), keys-file
//! loading with every kind of error,
//! and key generation. No captured log line, no response (status line, headers, body) and
//! no `Debug`/`Display` string contains any 8 consecutive characters of any secret's body.
//!
//! Plaintext buffers: `PlaintextKey` is `ZeroizeOnDrop` (checked at compile time below).

mod common;

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ark_auth::{
    generate_key,
    key::{KeyHash, KeyRecord, PlaintextKey},
    keys_file,
    limit::MemoryRateLimiter,
    policy::RequestHead,
    token::{bearer_token, Token},
    Access, ArkAuthLayer, AuthenticatedKey, Environment, LimiterFailure, MemoryKeyStore,
    Permission, Permissions,
};
use bytes::Bytes;
use common::{Bad, BadLimiter, BadStore, Capture};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt};

/// Shortest run of a secret that must never be repeated.
const WINDOW: usize = 8;

/// Every 8-character window of every secret body.
struct Secrets(HashSet<Vec<u8>>);

impl Secrets {
    fn new() -> Self {
        Secrets(HashSet::new())
    }
    /// Adds a token (`ark_live_…`) or a bare body.
    fn add(&mut self, secret: &str) {
        let body = secret
            .strip_prefix("ark_live_")
            .or_else(|| secret.strip_prefix("ark_test_"))
            .unwrap_or(secret);
        for w in body.as_bytes().windows(WINDOW) {
            self.0.insert(w.to_vec());
        }
    }
    /// The first window of a secret found in `text`, if any.
    fn found_in(&self, text: &[u8]) -> Option<String> {
        text.windows(WINDOW)
            .find(|w| self.0.contains(*w))
            .map(|w| String::from_utf8_lossy(w).into_owned())
    }
    #[track_caller]
    fn assert_absent(&self, what: &str, text: &[u8]) {
        if let Some(w) = self.found_in(text) {
            panic!(
                "{what} repeats 8 characters of a secret ({w:?}): {}",
                String::from_utf8_lossy(text)
            );
        }
    }
}

/// The keys of the test: one per outcome.
struct Keys {
    records: Vec<KeyRecord>,
    tokens: Vec<String>,
    full: String,
    read_only: String,
    revoked: String,
    expired: String,
    tenant_a: String,
    one_per_second: String,
    test_env: String,
    /// A key the store will fail on (error, hang or panic).
    poisoned: String,
}

fn keys() -> Keys {
    let now = SystemTime::now();
    let mut records = Vec::new();
    let mut tokens = Vec::new();
    let mut k = |env: Environment, f: &dyn Fn(KeyRecord) -> KeyRecord| {
        let g = generate_key(env).unwrap();
        records.push(f(g.record));
        tokens.push(g.plaintext.expose_secret().to_owned());
        g.plaintext.expose_secret().to_owned()
    };
    let full = k(Environment::Live, &|r| {
        r.with_name("full")
            .with_permissions(Permissions::ALL)
            .with_metadata("team", "mail")
    });
    let read_only = k(Environment::Live, &|r| {
        r.with_permissions(Permission::EmailsRead.into())
    });
    let revoked = k(Environment::Live, &|r| {
        r.with_permissions(Permissions::ALL).with_revoked(true)
    });
    let expired = k(Environment::Live, &|r| {
        r.with_permissions(Permissions::ALL)
            .with_expiry(now - Duration::from_secs(1))
    });
    let tenant_a = k(Environment::Live, &|r| {
        r.with_permissions(Permissions::ALL).with_tenant("tn_a")
    });
    let one_per_second = k(Environment::Live, &|r| {
        r.with_permissions(Permissions::ALL).with_rate_limit(1)
    });
    let test_env = k(Environment::Test, &|r| r.with_permissions(Permissions::ALL));
    let poisoned = k(Environment::Live, &|r| r.with_permissions(Permissions::ALL));
    Keys {
        records,
        tokens,
        full,
        read_only,
        revoked,
        expired,
        tenant_a,
        one_per_second,
        test_env,
        poisoned,
    }
}

fn policy(req: &RequestHead<'_>) -> Access {
    let path = req.uri.path();
    match (req.method.as_str(), path) {
        ("POST", "/v1/emails") => Access::require(Permission::EmailsSend),
        (_, "/v1/tenants/tn_b/domains") => {
            Access::require(Permission::DomainsManage).for_tenant("tn_b")
        }
        _ => Access::any_key(),
    }
}

/// A captured response, as text: status, every header, the body.
async fn run<S>(svc: S, req: Request<Full<Bytes>>) -> (u16, String)
where
    S: Service<
        Request<Full<Bytes>>,
        Response = Response<ark_auth::service::ArkAuthBody<Full<Bytes>>>,
    >,
    S::Error: std::fmt::Debug,
{
    let res = svc.oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let mut text = format!("{status}\n");
    for (name, value) in res.headers() {
        text.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    let body = res.into_body().collect().await.unwrap().to_bytes();
    text.push_str(&String::from_utf8_lossy(&body));
    (status, text)
}

fn req(method: &str, path: &str, auth: &[&[u8]]) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri(path);
    for a in auth {
        b = b.header("authorization", *a);
    }
    b.body(Full::new(Bytes::new())).unwrap()
}

/// The last `n` characters of the longest run of letters and digits in `value`.
fn run_of(value: &[u8], n: usize) -> Option<String> {
    let run = value
        .split(|b| !b.is_ascii_alphanumeric())
        .max_by_key(|r| r.len())?;
    (run.len() >= n).then(|| String::from_utf8_lossy(&run[run.len() - n..]).into_owned())
}

fn bearer(token: &str) -> Vec<u8> {
    format!("Bearer {token}").into_bytes()
}

#[test]
fn the_detector_finds_a_repeated_secret() {
    let mut s = Secrets::new();
    s.add("ark_live_0123456789abcdefGHIJ");
    assert!(s.found_in(b"xx 6789abcd yy").is_some());
    assert!(s.found_in(b"xx 6789abc yy").is_none());
    assert!(s.found_in(b"ark_live_ prefix only").is_none());
}

#[test]
fn no_log_line_response_or_debug_string_repeats_a_secret_on_any_path() {
    use tracing_subscriber::util::SubscriberInitExt;

    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = subscriber.set_default();

    let keys = keys();
    let mut secrets = Secrets::new();
    for t in &keys.tokens {
        secrets.add(t);
    }
    // Wrong secrets presented below are secrets too.
    let wrong = format!("{}{}", &keys.full[..keys.full.len() - 1], "0");
    let wrong = if wrong == keys.full {
        format!("{}1", &keys.full[..keys.full.len() - 1])
    } else {
        wrong
    };
    secrets.add(&wrong);
    let unknown = generate_key(Environment::Live).unwrap();
    let unknown = unknown.plaintext.expose_secret().to_owned();
    secrets.add(&unknown);

    let store = MemoryKeyStore::from_records(keys.records.clone()).unwrap();
    let poison = KeyHash::of(&Token::parse(&keys.poisoned).unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = {
        let calls = calls.clone();
        tower::service_fn(move |req: Request<Full<Bytes>>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let id = req
                .extensions()
                .get::<AuthenticatedKey>()
                .map(|k| k.id().to_owned())
                .unwrap_or_default();
            async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(id)))) }
        })
    };

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut statuses = HashSet::new();
    let mut shown: Vec<String> = Vec::new();
    rt.block_on(async {
        // Every outcome of a healthy deployment.
        shown.push(format!(
            "{:?}",
            ArkAuthLayer::new(store.clone()).require(Permission::EmailsSend)
        ));
        let layer = ArkAuthLayer::new(store.clone())
            .policy(policy)
            .accept_environments(&[Environment::Live]);
        let svc = layer.layer(inner.clone());
        shown.push(format!("{svc:?}"));
        let long = format!("ark_live_{}", "a".repeat(200));
        secrets.add(&long);
        let cases: Vec<(&str, &str, Vec<Vec<u8>>, u16)> = vec![
            ("GET", "/v1/emails", vec![bearer(&keys.full)], 200),
            ("GET", "/v1/emails", vec![], 401),
            ("GET", "/v1/emails", vec![b"Bearer".to_vec()], 401),
            (
                "GET",
                "/v1/emails",
                vec![format!("Basic {}", keys.full).into_bytes()],
                401,
            ),
            (
                "GET",
                "/v1/emails",
                vec![bearer(&format!("{}!", keys.full))],
                401,
            ),
            ("GET", "/v1/emails", vec![bearer(&keys.full[4..])], 401),
            ("GET", "/v1/emails", vec![bearer(&long)], 401),
            (
                "GET",
                "/v1/emails",
                vec![format!("Bearer\t{}", keys.full).into_bytes()],
                401,
            ),
            (
                "GET",
                "/v1/emails",
                vec![format!("Bearer {} {}", keys.full, keys.read_only).into_bytes()],
                401,
            ),
            (
                "GET",
                "/v1/emails",
                vec![bearer(&keys.full), bearer(&keys.read_only)],
                401,
            ),
            ("GET", "/v1/emails", vec![bearer(&wrong)], 401),
            ("GET", "/v1/emails", vec![bearer(&unknown)], 401),
            ("GET", "/v1/emails", vec![bearer(&keys.test_env)], 401),
            ("GET", "/v1/emails", vec![bearer(&keys.revoked)], 401),
            ("GET", "/v1/emails", vec![bearer(&keys.expired)], 401),
            ("POST", "/v1/emails", vec![bearer(&keys.read_only)], 403),
            (
                "GET",
                "/v1/tenants/tn_b/domains",
                vec![bearer(&keys.tenant_a)],
                403,
            ),
            ("GET", "/v1/emails", vec![bearer(&keys.one_per_second)], 200),
            ("GET", "/v1/emails", vec![bearer(&keys.one_per_second)], 429),
        ];
        for (method, path, auth, want) in &cases {
            let auth: Vec<&[u8]> = auth.iter().map(Vec::as_slice).collect();
            let (status, text) = run(svc.clone(), req(method, path, &auth)).await;
            assert_eq!(status, *want, "{method} {path}: {text}");
            secrets.assert_absent(&format!("response to {method} {path}"), text.as_bytes());
            statuses.insert(status);
        }
        // The same requests with an `X-Request-Id` repeating 12 characters of the presented
        // credentials: a fresh id instead, in the body and the header.
        for (method, path, auth, want) in &cases {
            let Some(id) = auth.first().and_then(|a| run_of(a, 12)) else {
                continue;
            };
            let auth: Vec<&[u8]> = auth.iter().map(Vec::as_slice).collect();
            let mut r = req(method, path, &auth);
            r.headers_mut()
                .insert("x-request-id", format!("trace-{id}").parse().unwrap());
            let (status, text) = run(svc.clone(), r).await;
            // The one-per-second key has used its quota by now.
            if status != 429 {
                assert_eq!(status, *want, "{method} {path} with a request id: {text}");
            }
            secrets.assert_absent(
                &format!("response to {method} {path} with a request id"),
                text.as_bytes(),
            );
            assert!(!text.contains(&id), "{text}");
        }
        // The same requests from a gRPC caller (over HTTP/2, gRPC's transport): every
        // rejection in the gRPC form (HTTP 200, `grpc-status`, `grpc-message`), none of it
        // repeating a secret.
        for (method, path, auth, want) in &cases {
            let auth: Vec<&[u8]> = auth.iter().map(Vec::as_slice).collect();
            let mut r = req(method, path, &auth);
            *r.version_mut() = http::Version::HTTP_2;
            r.headers_mut()
                .insert("content-type", "application/grpc".parse().unwrap());
            let (status, text) = run(svc.clone(), r).await;
            assert_eq!(status, 200, "gRPC {method} {path}: {text}");
            if *want != 200 {
                assert!(
                    text.contains("grpc-status: "),
                    "gRPC {method} {path}: {text}"
                );
            }
            secrets.assert_absent(
                &format!("gRPC response to {method} {path}"),
                text.as_bytes(),
            );
        }

        // The store fails for one key, every way it can.
        for mode in Bad::ALL {
            let bad = BadStore::new(store.clone(), Some(poison), mode);
            let svc = ArkAuthLayer::new(bad)
                .policy(policy)
                .timeout(Duration::from_millis(50))
                .layer(inner.clone());
            let before = calls.load(Ordering::SeqCst);
            let (status, text) = run(
                svc.clone(),
                req("GET", "/v1/emails", &[&bearer(&keys.poisoned)]),
            )
            .await;
            assert_eq!(status, 503, "{mode:?}: {text}");
            assert_eq!(calls.load(Ordering::SeqCst), before, "{mode:?}");
            secrets.assert_absent(&format!("503 for store {mode:?}"), text.as_bytes());
            statuses.insert(status);
            let mut r = req("GET", "/v1/emails", &[&bearer(&keys.poisoned)]);
            *r.version_mut() = http::Version::HTTP_2;
            r.headers_mut()
                .insert("content-type", "application/grpc".parse().unwrap());
            let (status, text) = run(svc.clone(), r).await;
            assert_eq!(status, 200, "gRPC {mode:?}: {text}");
            assert!(text.contains("grpc-status: 14"), "gRPC {mode:?}: {text}");
            assert_eq!(calls.load(Ordering::SeqCst), before, "{mode:?}");
            secrets.assert_absent(&format!("gRPC 14 for store {mode:?}"), text.as_bytes());
            // And keeps serving the others.
            let (status, _) = run(svc, req("GET", "/v1/emails", &[&bearer(&keys.full)])).await;
            assert_eq!(status, 200, "{mode:?}");
        }

        // The limiter fails, open and closed, for allowed and denied requests.
        for mode in Bad::ALL {
            for failure in [LimiterFailure::Allow, LimiterFailure::Refuse] {
                let svc = ArkAuthLayer::new(store.clone())
                    .policy(policy)
                    .rate_limiter(BadLimiter(mode))
                    .on_limiter_failure(failure)
                    .timeout(Duration::from_millis(50))
                    .layer(inner.clone());
                let want = match failure {
                    LimiterFailure::Allow => 200,
                    LimiterFailure::Refuse => 503,
                };
                for (method, token, want) in
                    [("GET", &keys.full, want), ("POST", &keys.read_only, 403)]
                {
                    let (status, text) =
                        run(svc.clone(), req(method, "/v1/emails", &[&bearer(token)])).await;
                    assert_eq!(status, want, "{mode:?} {failure:?}: {text}");
                    secrets
                        .assert_absent(&format!("limiter {mode:?} {failure:?}"), text.as_bytes());
                }
            }
        }
    });
    assert_eq!(
        statuses,
        HashSet::from([200, 401, 403, 429, 503]),
        "every outcome was reached"
    );

    // Keys-file errors, each with keys in the file (in `key` and in other fields).
    let k = &keys.full;
    let body = &k[9..];
    let files = [
        format!(
            r#"{{"keys": [{{"key": "{k}", "permissions": []}}, {{"key": "{k}", "permissions": []}}]}}"#
        ),
        format!(r#"{{"keys": [{{"key": "{k}!", "name": "x", "permissions": []}}]}}"#),
        format!(r#"{{"keys": [{{"key": "{k}", "permissions": ["{body}"]}}]}}"#),
        format!(r#"{{"keys": [{{"key": "{k}", "permissions": ["{k}"]}}]}}"#),
        format!(r#"{{"keys": [{{"key": "{k}", "name": "{k}", "permissions": ["nope"]}}]}}"#),
        format!(
            r#"{{"keys": [{{"key": "{k}", "id": "{k}", "permissions": []}}, {{"key": "{}", "id": "{k}", "permissions": []}}]}}"#,
            keys.read_only
        ),
        format!(r#"{{"keys": [{{"key": "{k}", "permissions": [], "expires_at": "{k}"}}]}}"#),
        format!(r#"{{"keys": [{{"key": "{k}", "permissions": [], "rate_limit": "{k}"}}]}}"#),
        format!(r#"{{"keys": [{{"key": "{k}", "permissions": [], "{k}": 1}}]}}"#),
        format!(r#"{{"keys": [{{"key": "{k}", "hash": "{k}", "permissions": []}}]}}"#),
        format!(
            r#"{{"keys": [{{"hash": "{body}", "environment": "live", "id": "x", "permissions": []}}]}}"#
        ),
        format!(r#"{{"keys": [{{"key": "{k}", "environment": "{k}", "permissions": []}}]}}"#),
        format!(r#"{{"keys": [{{"key": "{k}", "permissions": [], "metadata": {{"a": 1}}}}]}}"#),
        format!(r#"{{"keys": [{{"key": "{k}", "permissions": []}}], "{k}": 1}}"#),
        format!(r#"{{"keys": [{{"key": "{k}", "permissions": []}}"#),
        format!(r#"{{"keys": "{k}"}}"#),
        format!(r#"["{k}"]"#),
    ];
    for f in &files {
        let e = keys_file::parse(f).unwrap_err();
        shown.push(format!("{e}"));
        shown.push(format!("{e:?}"));
    }
    let dir = std::env::temp_dir().join(format!("ark-hygiene-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.json");
    std::fs::write(&path, &files[2]).unwrap();
    let e = keys_file::load(&path).unwrap_err();
    shown.push(format!("{e} {e:?}"));
    let missing = dir.join(format!("{k}.json"));
    let e = keys_file::load(&missing).unwrap_err();
    assert!(e.to_string().contains("cannot read"), "{e}");
    shown.push(format!("{e} {e:?}"));
    std::fs::remove_dir_all(&dir).ok();

    // Key generation and every public type holding key material.
    for env in [Environment::Live, Environment::Test] {
        let g = generate_key(env).unwrap();
        let t = g.plaintext.expose_secret().to_owned();
        secrets.add(&t);
        let token = Token::parse(&t).unwrap();
        let record = g.record.clone().with_permissions(Permissions::ALL);
        let store = MemoryKeyStore::from_records([record.clone()]).unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", bearer(&t).try_into().unwrap());
        shown.extend([
            format!("{g:?}"),
            format!("{g:#?}"),
            format!("{:?} {}", g.plaintext, g.plaintext),
            format!("{token:?} {token}"),
            format!("{:?}", bearer_token(&headers)),
            format!("{record:?}"),
            format!("{:?}", AuthenticatedKey::new(Arc::new(record.clone()))),
            format!("{store:?} {:?}", store.records()),
            format!("{:?}", *record.hash()),
            format!("{}", keys_file::record_to_json(&record)),
            format!("{:?}", MemoryRateLimiter::new()),
        ]);
    }
    for s in &shown {
        secrets.assert_absent("Debug/Display", s.as_bytes());
    }

    let logs = capture.0.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&logs);
    for expected in [
        "request rejected",
        "key store failed",
        "rate limiter failed; serving without rate limit",
        "rate limiter failed; answering 503",
        "403 without rate-limit headers",
        // one event per decision, and the timings at TRACE
        "request accepted",
        "outcome=\"accepted\"",
        "key store answered",
        "rate limiter answered",
    ] {
        assert!(
            text.contains(expected),
            "no {expected:?} in the logs:\n{text}"
        );
    }
    assert!(text.contains("TRACE") || text.contains("DEBUG"));
    secrets.assert_absent("the logs", &logs);
}

/// `PlaintextKey` zeroes its buffer when dropped.
#[test]
fn plaintext_key_is_zeroize_on_drop() {
    fn zeroed_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    zeroed_on_drop::<PlaintextKey>();
    // Dropping it (and its clone) is fine, and the clone is independent.
    let g = generate_key(Environment::Test).unwrap();
    let copy = g.plaintext.clone();
    drop(g);
    assert_eq!(
        copy.expose_secret().len(),
        9 + ark_auth::key::GENERATED_BODY_LEN
    );
}
