//! Contract section 2 (outcomes): unknown, wrong, revoked, expired keys and environments;
//! the axum extractor failing closed; revocation while requests are in flight.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ark_auth::{ArkAuthLayer, AuthenticatedKey, Environment, MemoryKeyStore, Permissions};
use serde_json::{json, Value};

use crate::common::{own_limiter, spawn, spawn_both, try_send, Flavor, Server, FLAVORS};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_and_wrong_secret_are_the_same_401_invalid_api_key() {
    let keys = Keys::new();
    let servers = keys.servers().await;
    let t = &keys.full.token;
    let tokens = [
        unknown_token(Environment::Live),
        unknown_token(Environment::Test),
        with_char_changed(t, t.len() - 1),
        with_char_changed(t, 9),
        format!("{}{}", t, "A"),
        t[..t.len() - 1].to_owned(),
        // Same body, other environment: a different key.
        format!("ark_test_{}", keys.full.body()),
    ];
    for srv in &servers {
        let mut seen: Vec<(Value, String)> = Vec::new();
        for tok in &tokens {
            let res = send_req(srv, &get("/v1/limits").bearer(tok), &keys).await;
            let mut v = rejection(srv, &res, 401, "invalid_api_key");
            let w = www_invalid(srv, &res);
            v["meta"]["requestId"] = json!(null);
            seen.push((v, w));
        }
        for s in &seen {
            assert_eq!(
                s, &seen[0],
                "[{:?}] unknown vs wrong secret differ",
                srv.flavor
            );
        }
        assert_eq!(srv.calls(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_or_expired_401_expired_api_key_and_future_expiry_is_a_grace_period() {
    let keys = Keys::new();
    let servers = keys.servers().await;
    for srv in &servers {
        for k in [&keys.revoked, &keys.expired] {
            for path in ["/v1/limits", "/v1/all"] {
                let res = send_req(srv, &get(path).bearer(&k.token), &keys).await;
                let v = rejection(srv, &res, 401, "expired_api_key");
                www_invalid(srv, &res);
                let s = suggestion(&v).to_ascii_lowercase();
                assert!(s.contains("generate") && s.contains("new"), "{v}");
                assert!(rate(&res).is_none());
            }
        }
        let res = send_req(srv, &get("/v1/all").bearer(&keys.grace.token), &keys).await;
        ok_for(srv, &res, &keys.grace);
        assert_eq!(srv.calls(), 1);
    }
    // Expiry passing while the server runs.
    let store = keys.store.clone();
    assert!(store.set_expiry(
        &keys.grace.id,
        Some(SystemTime::now() + Duration::from_millis(800))
    ));
    for srv in &servers {
        let res = send_req(srv, &get("/v1/limits").bearer(&keys.grace.token), &keys).await;
        ok_for(srv, &res, &keys.grace);
    }
    tokio::time::sleep(Duration::from_millis(900)).await;
    for srv in &servers {
        let res = send_req(srv, &get("/v1/limits").bearer(&keys.grace.token), &keys).await;
        rejection(srv, &res, 401, "expired_api_key");
        // And revocation at run time.
        assert!(store.revoke(&keys.full.id));
        let res = send_req(srv, &get("/v1/limits").bearer(&keys.full.token), &keys).await;
        rejection(srv, &res, 401, "expired_api_key");
        assert_eq!(srv.calls(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_and_test_keys_authenticate_and_the_key_reaches_the_handler() {
    let keys = Keys::new();
    let servers = keys.servers().await;
    for srv in &servers {
        let res = send_req(srv, &post("/v1/emails").bearer(&keys.full.token), &keys).await;
        let v = ok_for(srv, &res, &keys.full);
        let mut metadata = BTreeMap::new();
        metadata.insert("plan", "pro");
        metadata.insert("team", "mail");
        assert_eq!(
            v,
            json!({
                "id": keys.full.id,
                "name": "full-access",
                "environment": "live",
                "test": false,
                "permissions": ["emails:send", "emails:read", "domains:manage", "webhooks:manage", "suppressions:manage"],
                "tenant": null,
                "metadata": metadata,
                "path": "/v1/emails",
            }),
            "[{:?}]",
            srv.flavor
        );
        let res = send_req(srv, &post("/v1/emails").bearer(&keys.test.token), &keys).await;
        let v = ok_for(srv, &res, &keys.test);
        assert_eq!(v["environment"], json!("test"));
        assert_eq!(v["test"], json!(true));
        assert_eq!(v["name"], json!("ci-test"));

        let res = send_req(
            srv,
            &get("/v1/tenants/tn_a/domains").bearer(&keys.tenant_a.token),
            &keys,
        )
        .await;
        let v = ok_for(srv, &res, &keys.tenant_a);
        assert_eq!(v["tenant"], json!("tn_a"));
        assert_eq!(v["metadata"], json!({}));

        let res = send_req(
            srv,
            &get("/v1/emails/em_1").bearer(&keys.read_only.token),
            &keys,
        )
        .await;
        let v = ok_for(srv, &res, &keys.read_only);
        assert_eq!(v["permissions"], json!(["emails:read"]));
        assert_eq!(v["name"], json!("reader"));
        assert_eq!(srv.calls(), 4);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_not_accepted_401_invalid_api_key() {
    let keys = Keys::new();
    let store = keys.store.clone();
    let live_only = spawn_both(|| {
        own_limiter(store.clone())
            .policy(ark_policy)
            .accept_environments(&[Environment::Live])
    })
    .await;
    let test_only = spawn_both(|| {
        own_limiter(store.clone())
            .policy(ark_policy)
            .accept_environments(&[Environment::Test])
    })
    .await;
    for srv in &live_only {
        for t in [&keys.test.token, &unknown_token(Environment::Test)] {
            let res = send_req(srv, &get("/v1/limits").bearer(t), &keys).await;
            rejection(srv, &res, 401, "invalid_api_key");
            www_invalid(srv, &res);
            assert!(rate(&res).is_none());
        }
        let res = send_req(srv, &get("/v1/limits").bearer(&keys.full.token), &keys).await;
        ok_for(srv, &res, &keys.full);
        assert_eq!(srv.calls(), 1);
    }
    for srv in &test_only {
        let res = send_req(srv, &get("/v1/limits").bearer(&keys.full.token), &keys).await;
        rejection(srv, &res, 401, "invalid_api_key");
        www_invalid(srv, &res);
        let res = send_req(srv, &get("/v1/limits").bearer(&keys.test.token), &keys).await;
        ok_for(srv, &res, &keys.test);
        assert_eq!(srv.calls(), 1);
    }
}

// ---------------------------------------------------------------------------------------
// axum extractor
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_extractor_fails_closed_on_a_route_without_the_layer() {
    use axum::routing::get as axum_get;
    let keys = Keys::new();
    let app = axum::Router::new()
        .route(
            "/required",
            axum_get(|key: AuthenticatedKey| async move { key.id().to_owned() }),
        )
        .route(
            "/optional",
            axum_get(|key: Option<AuthenticatedKey>| async move { format!("{}", key.is_some()) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let srv_like = Server::external(Flavor::Axum, addr);
    let res = send_req(&srv_like, &get("/required").bearer(&keys.full.token), &keys).await;
    rejection(&srv_like, &res, 401, "authentication_required");
    www_missing(&srv_like, &res);
    let res = send_req(&srv_like, &get("/optional").bearer(&keys.full.token), &keys).await;
    assert_eq!((res.status, res.body_text().as_str()), (200, "false"));
}

// ---------------------------------------------------------------------------------------
// Revocation while requests are in flight
// ---------------------------------------------------------------------------------------

struct Outcome {
    started_after_revoke: bool,
    started_at: Instant,
    status: u16,
    code: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_applies_to_every_request_started_after_revoke_returns() {
    for flavor in FLAVORS {
        let (key, record) = make_key(Environment::Live, |r| {
            r.with_permissions(Permissions::ALL)
                .with_rate_limit(1_000_000)
        });
        let store = MemoryKeyStore::from_records([record]).unwrap();
        let srv = Arc::new(spawn(flavor, ArkAuthLayer::new(store.clone())).await);
        let revoked = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
        let mut workers = Vec::new();
        for _ in 0..8 {
            let (srv, revoked, stop, outcomes, token) = (
                srv.clone(),
                revoked.clone(),
                stop.clone(),
                outcomes.clone(),
                key.token.clone(),
            );
            workers.push(tokio::spawn(async move {
                let raw = get("/v1/limits").bearer(&token).raw();
                while !stop.load(Ordering::SeqCst) {
                    let started_after_revoke = revoked.load(Ordering::SeqCst);
                    let started_at = Instant::now();
                    let res = try_send(srv.addr, &raw, Duration::from_secs(5))
                        .await
                        .unwrap_or_else(|e| panic!("[{flavor:?}] {e}"));
                    assert!(!res.contains(&token.as_bytes()[9..]));
                    let code = (res.status != 200)
                        .then(|| res.json()["error"]["code"].as_str().map(str::to_owned))
                        .flatten();
                    outcomes.lock().unwrap().push(Outcome {
                        started_after_revoke,
                        started_at,
                        status: res.status,
                        code,
                    });
                }
            }));
        }
        let count = |after: bool| {
            outcomes
                .lock()
                .unwrap()
                .iter()
                .filter(|o| o.started_after_revoke == after)
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while count(false) < 60 {
            assert!(Instant::now() < deadline, "[{flavor:?}] too slow");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(store.revoke(&key.id));
        let revoke_returned = Instant::now();
        revoked.store(true, Ordering::SeqCst);
        while count(true) < 60 {
            assert!(Instant::now() < deadline, "[{flavor:?}] too slow");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        stop.store(true, Ordering::SeqCst);
        for w in workers {
            w.await.unwrap();
        }
        let outcomes = outcomes.lock().unwrap();
        let mut ok_before = 0;
        for o in outcomes.iter() {
            assert!(o.status < 500, "[{flavor:?}] {} {:?}", o.status, o.code);
            let after = o.started_after_revoke || o.started_at > revoke_returned;
            if after {
                assert_eq!(
                    (o.status, o.code.as_deref()),
                    (401, Some("expired_api_key")),
                    "[{flavor:?}] request started after revoke() returned"
                );
            } else {
                assert!(
                    o.status == 200
                        || (o.status, o.code.as_deref()) == (401, Some("expired_api_key")),
                    "[{flavor:?}] {} {:?}",
                    o.status,
                    o.code
                );
                ok_before += usize::from(o.status == 200);
            }
        }
        assert!(
            ok_before >= 60,
            "[{flavor:?}] only {ok_before} successes before revoke"
        );
        assert_eq!(
            srv.calls(),
            outcomes.iter().filter(|o| o.status == 200).count()
        );
    }
}
