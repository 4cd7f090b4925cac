//! Several rate limits per key, over real TCP on both servers (axum and plain hyper): a
//! request must fit every window; the `X-RateLimit-*` headers describe the window closest
//! to refusing; a refusal names its window in the message and gives that window's
//! `Retry-After`; a refused request is counted in no window. In memory, and through Redis
//! shared by two servers (`REDIS_URL`; skipped with a printed reason when unset, a failure
//! under `CI=true`).

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::time::Duration;

use ark_auth::key::KeyRecord;
use ark_auth::limit::Quotas;
use ark_auth::policy::RequestHead;
use ark_auth::Access;
use ark_auth::{generate_key, Environment, MemoryKeyStore, Permission, Permissions};
use common::{bearer, own_limiter, request, send, spawn_both, RawResponse, Server};

fn key(limits: &str, permissions: Permissions) -> (String, KeyRecord) {
    let key = generate_key(Environment::Live).unwrap();
    let limits: Quotas = limits.parse().unwrap();
    let record = key
        .record
        .with_permissions(permissions)
        .with_rate_limits(limits);
    (key.plaintext.expose_secret().to_owned(), record)
}

async fn get(srv: &Server, token: &str, path: &str) -> RawResponse {
    send(srv.addr, &request("GET", path, &[bearer(token)])).await
}

/// `(status, X-RateLimit-Limit, X-RateLimit-Remaining)`.
fn state(res: &RawResponse) -> (u16, u32, u32) {
    let n = |h: &str| {
        res.header(h)
            .unwrap_or_else(|| panic!("{h} missing"))
            .parse()
            .unwrap()
    };
    (
        res.status,
        n("x-ratelimit-limit"),
        n("x-ratelimit-remaining"),
    )
}

fn retry_after(res: &RawResponse) -> u64 {
    res.header("retry-after").unwrap().parse().unwrap()
}

/// `X-RateLimit-Reset` minus the current Unix second (rounded down). The reset is the
/// newest admission's time plus the window and its resolution (up to 66 ms for an hour),
/// rounded up to a second: up to window + 2 seconds ahead of the rounded-down now.
fn reset_in(res: &RawResponse) -> i64 {
    let reset: i64 = res.header("x-ratelimit-reset").unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    reset - now as i64
}

/// 100 per second and 3 per minute: the minute is closest to refusing from the first
/// request, and refuses the fourth, with a wait of about a minute (not a second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_minute_window_refuses_with_its_retry_after() {
    let (token, record) = key("100/s,3/min", Permissions::ALL);
    let store = MemoryKeyStore::from_records([record]).unwrap();
    for srv in spawn_both(|| own_limiter(store.clone())).await {
        for remaining in [2, 1, 0] {
            let res = get(&srv, &token, "/v1/limits").await;
            assert_eq!(state(&res), (200, 3, remaining), "[{:?}]", srv.flavor);
            let reset = reset_in(&res);
            assert!(
                (50..=62).contains(&reset),
                "[{:?}] reset in {reset}",
                srv.flavor
            );
        }
        let res = get(&srv, &token, "/v1/limits").await;
        assert_eq!(state(&res), (429, 3, 0), "[{:?}]", srv.flavor);
        let v = res.json();
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        assert_eq!(
            v["error"]["message"],
            "Rate limit exceeded: 3 requests per minute"
        );
        let wait = retry_after(&res);
        // The minute's wait (until the first of the three leaves the sliding minute), not
        // the second's one second.
        assert!(
            (55..=60).contains(&wait),
            "[{:?}] Retry-After {wait}",
            srv.flavor
        );
        assert_eq!(
            v["error"]["suggestion"],
            format!("Retry after {wait} seconds")
        );
        assert_eq!(srv.calls(), 3, "[{:?}] handler ran for a 429", srv.flavor);
    }
}

/// 5 per second and 6 per minute. The second window is closest to refusing at first, and
/// refuses the sixth request (1 s, named "second"); that refusal is counted in neither
/// window, so after the second's wait one more request fits the minute, whose headers then
/// show it closest to refusing, and the next is refused by the minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_follow_the_window_closest_to_refusing() {
    let (token, record) = key("5/s,6/min", Permissions::ALL);
    let store = MemoryKeyStore::from_records([record]).unwrap();
    let servers = spawn_both(|| own_limiter(store.clone())).await;
    let token = &token;
    futures::future::join_all(servers.iter().map(|srv| async move {
        for remaining in [4, 3, 2, 1, 0] {
            let res = get(srv, token, "/v1/limits").await;
            assert_eq!(state(&res), (200, 5, remaining), "[{:?}]", srv.flavor);
        }
        let res = get(srv, token, "/v1/limits").await;
        assert_eq!(state(&res), (429, 5, 0), "[{:?}]", srv.flavor);
        assert_eq!(
            res.json()["error"]["message"],
            "Rate limit exceeded: 5 requests per second",
            "[{:?}]",
            srv.flavor
        );
        let wait = retry_after(&res);
        assert!(wait <= 2, "[{:?}] Retry-After {wait}", srv.flavor);
        tokio::time::sleep(Duration::from_secs(wait)).await;
        // The minute has one left (the refusal was not counted): admitted, and now the
        // minute is the window closest to refusing.
        let res = get(srv, token, "/v1/limits").await;
        assert_eq!(state(&res), (200, 6, 0), "[{:?}]", srv.flavor);
        let res = get(srv, token, "/v1/limits").await;
        assert_eq!(state(&res), (429, 6, 0), "[{:?}]", srv.flavor);
        assert_eq!(
            res.json()["error"]["message"],
            "Rate limit exceeded: 6 requests per minute"
        );
        let wait = retry_after(&res);
        assert!(
            (55..=60).contains(&wait),
            "[{:?}] Retry-After {wait}",
            srv.flavor
        );
        assert_eq!(srv.calls(), 6);
    }))
    .await;
}

/// A 403 of a key with several limits shows the same window the next admission would
/// (closest to refusing), and uses none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_shows_the_closest_window_and_uses_none() {
    let (token, record) = key("10/s,2/h", Permission::EmailsRead.into());
    let store = MemoryKeyStore::from_records([record]).unwrap();
    // Sending email needs `emails:send`, which the key lacks.
    let policy = |req: &RequestHead<'_>| match req.method.as_str() {
        "POST" => Access::require(Permission::EmailsSend),
        _ => Access::any_key(),
    };
    for srv in spawn_both(|| own_limiter(store.clone()).policy(policy)).await {
        let denied = send(srv.addr, &request("POST", "/v1/emails", &[bearer(&token)])).await;
        assert_eq!(state(&denied), (403, 2, 2), "[{:?}]", srv.flavor);
        let ok = get(&srv, &token, "/v1/emails").await;
        assert_eq!(state(&ok), (200, 2, 1), "[{:?}]", srv.flavor);
        let reset = reset_in(&ok);
        assert!(
            (3500..=3602).contains(&reset),
            "[{:?}] reset in {reset}",
            srv.flavor
        );
    }
}

/// The layer's default limits (`default_quotas`: 100 per second and 3 per minute) for a key
/// whose record sets none: every default window applies, and the fourth request is refused
/// by the second, the minute, named in the message, with the minute's wait. A key with a
/// limit of its own (20 per second) has that limit alone: the defaults are replaced
/// entirely, so the default minute never refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_limits_apply_together_and_a_keys_own_replace_them() {
    let plain = generate_key(Environment::Live).unwrap();
    let plain_token = plain.plaintext.expose_secret().to_owned();
    let (own_token, own) = key("20/s", Permissions::ALL);
    let store =
        MemoryKeyStore::from_records([plain.record.with_permissions(Permissions::ALL), own])
            .unwrap();
    let defaults: Quotas = "100/s,3/min".parse().unwrap();
    for srv in spawn_both(|| own_limiter(store.clone()).default_quotas(defaults)).await {
        for remaining in [2, 1, 0] {
            let res = get(&srv, &plain_token, "/v1/limits").await;
            assert_eq!(state(&res), (200, 3, remaining), "[{:?}]", srv.flavor);
        }
        let res = get(&srv, &plain_token, "/v1/limits").await;
        assert_eq!(state(&res), (429, 3, 0), "[{:?}]", srv.flavor);
        assert_eq!(
            res.json()["error"]["message"],
            "Rate limit exceeded: 3 requests per minute",
            "[{:?}]",
            srv.flavor
        );
        let wait = retry_after(&res);
        assert!(
            (55..=60).contains(&wait),
            "[{:?}] Retry-After {wait}",
            srv.flavor
        );
        for remaining in (14..20).rev() {
            let res = get(&srv, &own_token, "/v1/limits").await;
            assert_eq!(state(&res), (200, 20, remaining), "[{:?}]", srv.flavor);
        }
        assert_eq!(srv.calls(), 3 + 6, "[{:?}]", srv.flavor);
    }
}

/// Several default limits name the refusing window even when it is the second (a single
/// per-second limit keeps the contract's "N requests per window").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_by_the_default_second_names_it_when_there_are_several_defaults() {
    let plain = generate_key(Environment::Live).unwrap();
    let token = plain.plaintext.expose_secret().to_owned();
    let store =
        MemoryKeyStore::from_records([plain.record.with_permissions(Permissions::ALL)]).unwrap();
    let defaults: Quotas = "2/s,100/h".parse().unwrap();
    for srv in spawn_both(|| own_limiter(store.clone()).default_quotas(defaults)).await {
        let mut last = None;
        for _ in 0..3 {
            last = Some(get(&srv, &token, "/v1/limits").await);
        }
        let res = last.unwrap();
        assert_eq!(state(&res), (429, 2, 0), "[{:?}]", srv.flavor);
        assert_eq!(
            res.json()["error"]["message"],
            "Rate limit exceeded: 2 requests per second",
            "[{:?}]",
            srv.flavor
        );
    }
}

/// Through Redis (two servers, one count): 100 per second and 3 per minute across both; the
/// fourth request, on either server, is refused by the minute with the minute's wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_windows_through_redis_across_two_servers() {
    let Some(url) = pg::service_url(
        "REDIS_URL",
        "several_windows_through_redis_across_two_servers",
    ) else {
        return;
    };
    let (token, record) = key("100/s,3/min", Permissions::ALL);
    let store = MemoryKeyStore::from_records([record]).unwrap();
    let limiter = ark_auth::redis::RedisRateLimiter::connect(&url)
        .await
        .unwrap();
    let servers = spawn_both(|| {
        ark_auth::ArkAuthLayer::new(store.clone())
            .rate_limiter(limiter.clone())
            .on_limiter_failure(ark_auth::LimiterFailure::Refuse)
    })
    .await;
    for (srv, remaining) in servers.iter().cycle().zip([2, 1, 0]) {
        let res = get(srv, &token, "/v1/limits").await;
        assert_eq!(state(&res), (200, 3, remaining), "[{:?}]", srv.flavor);
    }
    for srv in &servers {
        let res = get(srv, &token, "/v1/limits").await;
        assert_eq!(state(&res), (429, 3, 0), "[{:?}]", srv.flavor);
        assert_eq!(
            res.json()["error"]["message"],
            "Rate limit exceeded: 3 requests per minute"
        );
        let wait = retry_after(&res);
        assert!(
            (55..=60).contains(&wait),
            "[{:?}] Retry-After {wait}",
            srv.flavor
        );
    }
}
