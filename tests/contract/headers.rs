//! Contract section 4 (headers): rate limits, their headers, 429 with `Retry-After`, and
//! the order authenticate, permissions, rate limit.

use std::time::Duration;

use serde_json::json;

use crate::common::Server;
use crate::support::*;

async fn rate_limit_3_then_429_on(srv: &Server, keys: &Keys) {
    let k = &keys.limited; // 3 per second
    for remaining in [2, 1, 0] {
        let res = send_req(srv, &get("/v1/limits").bearer(&k.token), keys).await;
        ok_for(srv, &res, k);
        assert_rate(srv, &res, 3, remaining);
    }
    let res = send_req(
        srv,
        &get("/v1/limits").bearer(&k.token).request_id("rl-429"),
        keys,
    )
    .await;
    let v = rejection(srv, &res, 429, "rate_limit_exceeded");
    assert_eq!(v["meta"]["requestId"], json!("rl-429"));
    let wait = retry_after(srv, &res);
    assert!(wait <= 3, "[{:?}] Retry-After {wait}", srv.flavor);
    assert_rate(srv, &res, 3, 0);
    assert_eq!(srv.calls(), 3, "[{:?}] handler ran for a 429", srv.flavor);
    // Retry-After is truthful: after waiting it, the key is admitted again.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let res = send_req(srv, &get("/v1/limits").bearer(&k.token), keys).await;
    ok_for(srv, &res, k);
    assert_eq!(srv.calls(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_of_the_key_then_429_with_retry_after() {
    let keys = Keys::new();
    let servers = keys.servers().await;
    futures::future::join_all(
        servers
            .iter()
            .map(|srv| rate_limit_3_then_429_on(srv, &keys)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_rate_limit_is_10_per_second_and_handler_responses_carry_the_headers() {
    let keys = Keys::new();
    let servers = keys.servers().await;
    for srv in &servers {
        for remaining in (0..10).rev() {
            let res = send_req(srv, &get("/v1/limits").bearer(&keys.full.token), &keys).await;
            ok_for(srv, &res, &keys.full);
            assert_rate(srv, &res, 10, remaining);
        }
        let res = send_req(srv, &get("/v1/limits").bearer(&keys.full.token), &keys).await;
        rejection(srv, &res, 429, "rate_limit_exceeded");
        retry_after(srv, &res);
        assert_rate(srv, &res, 10, 0);
        // Per key: another key is unaffected.
        let res = send_req(srv, &get("/v1/limits").bearer(&keys.test.token), &keys).await;
        ok_for(srv, &res, &keys.test);
        assert_rate(srv, &res, 10, 9);
        assert_eq!(srv.calls(), 11);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_401_and_403_do_not_use_quota() {
    let keys = Keys::new();
    let servers = keys.servers().await;
    let k = &keys.read_only; // emails:read, 5 per second
    for srv in &servers {
        // 401 for this very key (revoked), then restored.
        assert!(keys.store.revoke(&k.id));
        for _ in 0..6 {
            let res = send_req(srv, &get("/v1/emails").bearer(&k.token), &keys).await;
            rejection(srv, &res, 401, "expired_api_key");
        }
        assert!(keys.store.update(&k.id, |r| r.set_revoked(false)));
        // 401 for wrong secrets of this key.
        for i in 9..15 {
            let res = send_req(
                srv,
                &get("/v1/emails").bearer(&with_char_changed(&k.token, i)),
                &keys,
            )
            .await;
            rejection(srv, &res, 401, "invalid_api_key");
        }
        // 403s.
        for _ in 0..6 {
            let res = send_req(srv, &post("/v1/emails").bearer(&k.token), &keys).await;
            rejection(srv, &res, 403, "permission_denied");
            assert_rate(srv, &res, 5, 5);
        }
        // The whole quota is still there.
        for remaining in (0..5).rev() {
            let res = send_req(srv, &get("/v1/emails").bearer(&k.token), &keys).await;
            ok_for(srv, &res, k);
            assert_rate(srv, &res, 5, remaining);
        }
        let res = send_req(srv, &get("/v1/emails").bearer(&k.token), &keys).await;
        rejection(srv, &res, 429, "rate_limit_exceeded");
        assert_eq!(srv.calls(), 5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_is_authenticate_then_permissions_then_rate_limit() {
    let keys = Keys::new();
    let servers = keys.servers().await;
    let k = &keys.one; // emails:read, 1 per second
    for srv in &servers {
        let res = send_req(srv, &get("/v1/emails").bearer(&k.token), &keys).await;
        ok_for(srv, &res, k);
        assert_rate(srv, &res, 1, 0);
        let res = send_req(srv, &get("/v1/emails").bearer(&k.token), &keys).await;
        rejection(srv, &res, 429, "rate_limit_exceeded");
        // Over its limit and without the permission: 403, not 429.
        let res = send_req(srv, &post("/v1/emails").bearer(&k.token), &keys).await;
        rejection(srv, &res, 403, "permission_denied");
        assert_rate(srv, &res, 1, 0);
        assert!(res.header("retry-after").is_none());
        // Over its limit and revoked: 401, not 429.
        assert!(keys.store.revoke(&k.id));
        let res = send_req(srv, &get("/v1/emails").bearer(&k.token), &keys).await;
        rejection(srv, &res, 401, "expired_api_key");
        assert!(keys.store.update(&k.id, |r| r.set_revoked(false)));
        // Over its limit, wrong secret: 401.
        let res = send_req(
            srv,
            &get("/v1/emails").bearer(&with_char_changed(&k.token, 20)),
            &keys,
        )
        .await;
        rejection(srv, &res, 401, "invalid_api_key");
        assert_eq!(srv.calls(), 1);
    }
}
