//! Contract section 2 (outcomes), the failure rows: stores and limiters that fail (503,
//! fail closed), and hostile input (no panic, no 500, no hang).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ark_auth::{Environment, LimiterFailure};
use serde_json::json;

use crate::common::{own_limiter, spawn_both, try_send, Bad, BadLimiter, RawResponse, Server};
use crate::support::*;

#[track_caller]
fn unavailable(srv: &Server, res: &RawResponse) {
    rejection(srv, res, 503, "service_unavailable");
    retry_after(srv, res);
    assert!(rate(res).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_key_store_503_and_handler_never_runs() {
    let keys = Keys::new();
    let store = bad_store(&keys, None, Bad::Error);
    let servers = spawn_both(|| own_limiter(store.clone()).policy(ark_policy)).await;
    for srv in &servers {
        for t in [
            &keys.full.token,
            &keys.revoked.token,
            &unknown_token(Environment::Live),
        ] {
            let res = send_req(srv, &get("/v1/emails").bearer(t), &keys).await;
            unavailable(srv, &res);
        }
        // Rejected before the store: unchanged.
        let res = send_req(srv, &get("/v1/emails"), &keys).await;
        rejection(srv, &res, 401, "authentication_required");
        let res = send_req(srv, &get("/v1/emails").bearer("ark_live_short"), &keys).await;
        rejection(srv, &res, 401, "invalid_api_key");
        assert_eq!(srv.calls(), 0);
    }
    assert_eq!(store.lookups.load(Ordering::SeqCst), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_key_store_503_within_the_deadline() {
    let keys = Keys::new();
    let store = bad_store(&keys, Some(&keys.full), Bad::Hang);
    let servers = spawn_both(|| {
        own_limiter(store.clone())
            .policy(ark_policy)
            .timeout(Duration::from_millis(200))
    })
    .await;
    for srv in &servers {
        let started = Instant::now();
        let res = send_req(srv, &get("/v1/emails").bearer(&keys.full.token), &keys).await;
        let took = started.elapsed();
        unavailable(srv, &res);
        assert!(
            took >= Duration::from_millis(180) && took < Duration::from_millis(1500),
            "[{:?}] 503 after {took:?}",
            srv.flavor
        );
        // The server goes on serving other keys.
        let res = send_req(srv, &get("/v1/emails").bearer(&keys.read_only.token), &keys).await;
        ok_for(srv, &res, &keys.read_only);
        assert_eq!(srv.calls(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_key_store_503_and_the_server_keeps_serving() {
    let keys = Keys::new();
    for mode in [Bad::PanicNow, Bad::PanicInFuture] {
        let store = bad_store(&keys, Some(&keys.full), mode);
        let servers = spawn_both(|| own_limiter(store.clone()).policy(ark_policy)).await;
        for srv in &servers {
            for round in 0..3 {
                let res = send_req(srv, &get("/v1/emails").bearer(&keys.full.token), &keys).await;
                unavailable(srv, &res);
                let res =
                    send_req(srv, &get("/v1/emails").bearer(&keys.read_only.token), &keys).await;
                ok_for(srv, &res, &keys.read_only);
                assert_eq!(srv.calls(), round + 1, "[{:?}] {mode:?}", srv.flavor);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_rate_limiter_serves_without_rate_headers_by_default() {
    let keys = Keys::new();
    for mode in BAD_MODES {
        let store = keys.store.clone();
        let servers = spawn_both(|| {
            own_limiter(store.clone())
                .policy(ark_policy)
                .rate_limiter(BadLimiter(mode))
                .timeout(Duration::from_millis(150))
        })
        .await;
        for srv in &servers {
            let res = send_req(srv, &get("/v1/emails").bearer(&keys.read_only.token), &keys).await;
            ok_for(srv, &res, &keys.read_only);
            assert!(
                rate(&res).is_none(),
                "[{:?}] {mode:?}: {:?}",
                srv.flavor,
                res.headers_text()
            );
            // Authentication and permissions still apply.
            let res = send_req(
                srv,
                &post("/v1/emails").bearer(&keys.read_only.token),
                &keys,
            )
            .await;
            rejection(srv, &res, 403, "permission_denied");
            assert!(rate(&res).is_none());
            let res = send_req(srv, &get("/v1/emails").bearer(&keys.revoked.token), &keys).await;
            rejection(srv, &res, 401, "expired_api_key");
            assert_eq!(srv.calls(), 1, "[{:?}] {mode:?}", srv.flavor);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_rate_limiter_503_when_the_deployment_fails_closed() {
    let keys = Keys::new();
    for mode in BAD_MODES {
        let store = keys.store.clone();
        let servers = spawn_both(|| {
            own_limiter(store.clone())
                .policy(ark_policy)
                .rate_limiter(BadLimiter(mode))
                .timeout(Duration::from_millis(150))
                .on_limiter_failure(LimiterFailure::Refuse)
        })
        .await;
        for srv in &servers {
            let res = send_req(srv, &get("/v1/emails").bearer(&keys.read_only.token), &keys).await;
            unavailable(srv, &res);
            let res = send_req(srv, &get("/v1/emails").bearer(&keys.revoked.token), &keys).await;
            rejection(srv, &res, 401, "expired_api_key");
            assert_eq!(srv.calls(), 0, "[{:?}] {mode:?}", srv.flavor);
        }
    }
}

/// Contract section 2: "Order: authenticate, then permissions, then rate limit." A key
/// without the route's permission is refused with 403 before the rate limiter matters,
/// even when the limiter is down and the deployment fails closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_permission_is_403_even_when_a_fail_closed_limiter_is_down() {
    let keys = Keys::new();
    let store = keys.store.clone();
    let servers = spawn_both(|| {
        own_limiter(store.clone())
            .policy(ark_policy)
            .rate_limiter(BadLimiter(Bad::Error))
            .on_limiter_failure(LimiterFailure::Refuse)
    })
    .await;
    for srv in &servers {
        let res = send_req(
            srv,
            &post("/v1/emails").bearer(&keys.read_only.token),
            &keys,
        )
        .await;
        rejection(srv, &res, 403, "permission_denied");
        let res = send_req(
            srv,
            &get("/v1/tenants/tn_b/domains").bearer(&keys.tenant_a.token),
            &keys,
        )
        .await;
        rejection(srv, &res, 403, "permission_denied");
        assert_eq!(srv.calls(), 0);
    }
}

// ---------------------------------------------------------------------------------------
// Hostile input: no panic, no 500, no hang
// ---------------------------------------------------------------------------------------

/// Bytes an HTTP/1.1 parser may refuse in a header value (it then answers 400 itself).
fn framing_byte(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7F
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_never_panics_500s_or_hangs() {
    let keys = Keys::new();
    let servers = keys.servers().await;
    for srv in &servers {
        let check =
            |res: Result<RawResponse, String>, what: &str, allow_400: bool, ok_statuses: &[u16]| {
                let res = res.unwrap_or_else(|e| panic!("[{:?}] {what}: {e}", srv.flavor));
                check_hygiene(srv, &res, &keys.secrets());
                if res.status == 401 {
                    rejection(srv, &res, 401, "invalid_api_key");
                    www_invalid(srv, &res);
                } else {
                    assert!(
                        (allow_400 && res.status == 400) || ok_statuses.contains(&res.status),
                        "[{:?}] {what}: {} {}",
                        srv.flavor,
                        res.status,
                        res.body_text()
                    );
                }
            };
        let timeout = Duration::from_secs(5);

        // One 60 KB Authorization header, 129 and 10 000 character tokens.
        for t in [
            format!("ark_live_{}", "A".repeat(60 * 1024)),
            "B".repeat(60 * 1024),
            format!("ark_live_{}", alnum(129, 9)),
            format!("ark_test_{}", alnum(10_000, 9)),
            alnum(10_000, 9),
        ] {
            let raw = get("/v1/limits").bearer(&t).raw();
            check(
                try_send(srv.addr, &raw, timeout).await,
                "long token",
                false,
                &[],
            );
        }
        // A 60 KB unrelated header next to a valid key: the key still works.
        let filler = format!("X-Filler: {}", "f".repeat(60 * 1024));
        let raw = get("/v1/limits")
            .bearer(&keys.full.token)
            .line(filler.as_bytes())
            .raw();
        let res = try_send(srv.addr, &raw, timeout).await.unwrap();
        check_hygiene(srv, &res, &keys.secrets());
        ok_for(srv, &res, &keys.full);
        // Fifty Authorization headers.
        let mut req = get("/v1/limits");
        for _ in 0..50 {
            req = req.bearer(&keys.full.token);
        }
        check(
            try_send(srv.addr, &req.raw(), timeout).await,
            "50 headers",
            false,
            &[],
        );
        // A request id of 60 KB is replaced, not echoed.
        let raw = get("/v1/limits").request_id(&"r".repeat(60 * 1024)).raw();
        let res = try_send(srv.addr, &raw, timeout).await.unwrap();
        let v = rejection(srv, &res, 401, "authentication_required");
        assert!(v["meta"]["requestId"].as_str().unwrap().starts_with("req_"));
        // Headers beyond what the HTTP parser takes: its own 4xx, never a 500 or a hang.
        let huge = format!("X-Huge: {}", "h".repeat(1024 * 1024));
        let raw = get("/v1/limits")
            .bearer(&keys.full.token)
            .line(huge.as_bytes())
            .raw();
        match try_send(srv.addr, &raw, timeout).await {
            Ok(res) => assert!(
                matches!(res.status, 400 | 413 | 431),
                "[{:?}] {}",
                srv.flavor,
                res.status
            ),
            // The server may reset the connection while we are still writing; a hang is
            // the only failure.
            Err(e) => assert!(!e.contains("hang"), "[{:?}] {e}", srv.flavor),
        }

        // All 256 byte values in the token position: alone, and inside a grammar-shaped token.
        for b in 0..=255u8 {
            let what = format!("byte {b:#04x}");
            let alone = [b"Bearer ".as_slice(), &[b]].concat();
            let inside = [
                b"Bearer ark_live_".as_slice(),
                alnum(10, 1).as_bytes(),
                &[b],
                alnum(10, 2).as_bytes(),
            ]
            .concat();
            let first = [b"Bearer ".as_slice(), &[b], keys.full.token.as_bytes()].concat();
            for value in [alone, inside] {
                let raw = get("/v1/limits").auth(&value).raw();
                let res = try_send(srv.addr, &raw, timeout).await;
                check(res, &what, framing_byte(b), &[]);
            }
            let raw = get("/v1/limits").auth(&first).raw();
            let res = try_send(srv.addr, &raw, timeout).await;
            match b {
                // "Bearer  <key>": one more space, accepted.
                b' ' => ok_for(srv, &res.unwrap(), &keys.full),
                // "Bearer \t<key>": see tab_between_scheme_and_token_401_invalid_api_key.
                b'\t' => {
                    let res = res.unwrap();
                    check_hygiene(srv, &res, &keys.secrets());
                    json!(null)
                }
                _ => {
                    check(res, &what, framing_byte(b), &[]);
                    json!(null)
                }
            };
        }
        // The 60 KB filler request, "Bearer  <key>", and maybe "Bearer \t<key>".
        assert!(
            (2..=3).contains(&srv.calls()),
            "[{:?}] {}",
            srv.flavor,
            srv.calls()
        );
    }
}
