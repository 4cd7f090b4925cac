//! The `metrics` feature with a real recorder (metrics-util's `DebuggingRecorder`, installed
//! as the process's recorder): a known mix of requests over TCP (axum and plain hyper), and
//! every count it must leave, read before and after: `ark_auth_requests_total` per outcome
//! (and per key when asked), `ark_auth_store_lookup_seconds` once per lookup that went to
//! the store, `ark_auth_limiter_failures_total` per failed limiter check.
//!
//! Runs with the `metrics` feature (`cargo test --all-features`); the benches build without
//! it, so they measure the default build.

#![cfg(feature = "metrics")]

mod common;
mod echo;

use std::collections::BTreeMap;

use ark_auth::{
    key::KeyHash, limit::MemoryRateLimiter, policy::RequestHead, token::Token, Access,
    ArkAuthLayer, Environment, LimiterFailure, MemoryKeyStore, Permission, Permissions,
};
use common::{bearer, request, send, Bad, BadLimiter, BadStore, FLAVORS};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

fn policy(head: &RequestHead<'_>) -> Access {
    match head.uri.path() {
        "/health" => Access::Public,
        "/docs" => Access::optional(),
        _ => Access::require(Permission::EmailsSend),
    }
}

/// Every series: counters by value, histograms by their number of samples since the last
/// snapshot.
fn series(snapshotter: &Snapshotter) -> BTreeMap<String, u64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            let n = match value {
                DebugValue::Counter(n) => n,
                DebugValue::Histogram(samples) => samples.len() as u64,
                DebugValue::Gauge(_) => 0,
            };
            (name, n)
        })
        .collect()
}

/// What changed between two readings (histograms: the second reading's samples).
fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, &v)| {
            let was = if k.starts_with("ark_auth_store_lookup_seconds") {
                0
            } else {
                before.get(k).copied().unwrap_or(0)
            };
            (v > was).then(|| (k.clone(), v - was))
        })
        .collect()
}

fn counts(rows: &[(&str, u64)]) -> BTreeMap<String, u64> {
    rows.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[tokio::test]
async fn every_decision_is_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let gen = |env| ark_auth::generate_key(env).unwrap();
    let (ok, revoked, weak, poisoned, slow) = (
        gen(Environment::Live),
        gen(Environment::Live),
        gen(Environment::Test),
        gen(Environment::Live),
        gen(Environment::Live),
    );
    let poison = KeyHash::of(&Token::parse(poisoned.plaintext.expose_secret()).unwrap());
    let store = MemoryKeyStore::from_records([
        ok.record.clone().with_permissions(Permissions::ALL),
        revoked
            .record
            .clone()
            .with_revoked(true)
            .with_permissions(Permissions::ALL),
        weak.record.clone(),
        poisoned.record.clone().with_permissions(Permissions::ALL),
        slow.record
            .clone()
            .with_permissions(Permissions::ALL)
            .with_rate_limit(1),
    ])
    .unwrap();
    let t = |k: &ark_auth::key::GeneratedKey| k.plaintext.expose_secret().to_owned();

    for flavor in FLAVORS {
        // Every lookup answers later (through the store), the poisoned one with an error.
        let layer = ArkAuthLayer::new(BadStore::new(store.clone(), Some(poison), Bad::ErrorLater))
            .rate_limiter(MemoryRateLimiter::new())
            .policy(policy);
        let server = echo::spawn(flavor, layer).await;
        let before = series(&snapshotter);
        let get = |path: &str, token: Option<String>| {
            let lines: Vec<Vec<u8>> = token.iter().map(|t| bearer(t)).collect();
            request("GET", path, &lines)
        };
        let mix = [
            (get("/send", Some(t(&ok))), 200),
            (get("/send", Some(t(&ok))), 200),
            (get("/docs", Some(t(&ok))), 200),
            (
                get("/send", Some("ark_live_00000000000000000000".into())),
                401,
            ),
            (
                get("/send", Some("ark_live_00000000000000000001".into())),
                401,
            ),
            (get("/send", None), 401),
            (get("/send", Some(t(&revoked))), 401),
            (get("/send", Some(t(&weak))), 403),
            (get("/send", Some(t(&poisoned))), 503),
            (get("/send", Some(t(&slow))), 200),
            (get("/send", Some(t(&slow))), 429),
            (get("/health", None), 200),
            (get("/docs", None), 200),
            (get("/docs", None), 200),
        ];
        for (raw, status) in &mix {
            assert_eq!(send(server.addr, raw).await.status, *status, "{flavor:?}");
        }
        let after = series(&snapshotter);
        assert_eq!(
            delta(&before, &after),
            counts(&[
                ("ark_auth_requests_total{outcome=accepted}", 4),
                ("ark_auth_requests_total{outcome=anonymous}", 2),
                (
                    "ark_auth_requests_total{outcome=authentication_required}",
                    1
                ),
                ("ark_auth_requests_total{outcome=expired_api_key}", 1),
                ("ark_auth_requests_total{outcome=invalid_api_key}", 2),
                ("ark_auth_requests_total{outcome=permission_denied}", 1),
                ("ark_auth_requests_total{outcome=public}", 1),
                ("ark_auth_requests_total{outcome=rate_limit_exceeded}", 1),
                ("ark_auth_requests_total{outcome=service_unavailable}", 1),
                // every request that presented a well-formed key looked it up in the store
                ("ark_auth_store_lookup_seconds{}", 10),
            ]),
            "{flavor:?}"
        );

        // A failing limiter, per-key labels on; a synchronous store: no lookup timed.
        let layer = ArkAuthLayer::new(store.clone())
            .rate_limiter(BadLimiter(Bad::Error))
            .on_limiter_failure(LimiterFailure::Refuse)
            .metrics_per_key(true);
        let server = echo::spawn(flavor, layer).await;
        let before = series(&snapshotter);
        for _ in 0..2 {
            assert_eq!(
                send(server.addr, &get("/x", Some(t(&ok)))).await.status,
                503
            );
        }
        assert_eq!(send(server.addr, &get("/x", None)).await.status, 401);
        let after = series(&snapshotter);
        let per_key = format!(
            "ark_auth_requests_total{{key_id={},outcome=service_unavailable}}",
            ok.record.id()
        );
        assert_eq!(
            delta(&before, &after),
            counts(&[
                (&per_key, 2),
                ("ark_auth_limiter_failures_total{failure=error}", 2),
                (
                    "ark_auth_requests_total{outcome=authentication_required}",
                    1
                ),
            ]),
            "{flavor:?}"
        );
    }
}
