//! Faults the contract tests do not cover (those cover a store that errors, hangs with a
//! configured deadline, or panics, and a limiter that errors, hangs or panics): a client
//! that disconnects while its request waits on the store; the default deadline; many
//! requests hanging at once; a panicking store under concurrent load. Over real TCP, axum
//! and hyper, with the counting inner handler of `common`.

mod common;

use std::future::IntoFuture;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ark_auth::{
    generate_key,
    key::KeyHash,
    service::DEFAULT_TIMEOUT,
    store::{Answer, BoxLookup, KeyStore, LookupResult},
    token::Token,
    ArkAuthLayer, Environment, MemoryKeyStore, Permissions,
};
use common::{bearer, own_limiter, request, send, spawn_both};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Counts a lookup future that was dropped before it answered (the request was cancelled).
struct DropGuard {
    answered: bool,
    cancelled: Arc<AtomicUsize>,
}

impl DropGuard {
    fn done(&mut self) {
        self.answered = true;
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.answered {
            self.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A store that answers from memory after `delay` (or never, for `poison`), counting
/// lookups started, answered and cancelled.
#[derive(Clone)]
struct SlowStore {
    inner: MemoryKeyStore,
    delay: Duration,
    /// A key hash whose lookup never answers.
    hang_for: Option<KeyHash>,
    /// A key hash whose lookup panics.
    panic_for: Option<KeyHash>,
    started: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
    cancelled: Arc<AtomicUsize>,
}

impl SlowStore {
    fn new(inner: MemoryKeyStore, delay: Duration) -> Self {
        SlowStore {
            inner,
            delay,
            hang_for: None,
            panic_for: None,
            started: Arc::default(),
            answered: Arc::default(),
            cancelled: Arc::default(),
        }
    }
}

impl KeyStore for SlowStore {
    type Future = BoxLookup;
    fn lookup(&self, hash: &KeyHash) -> Answer<LookupResult, BoxLookup> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let hang = self.hang_for == Some(*hash);
        let panics = self.panic_for == Some(*hash);
        let answer = self.inner.lookup(hash).into_future();
        let delay = self.delay;
        let answered = self.answered.clone();
        let mut guard = DropGuard {
            answered: false,
            cancelled: self.cancelled.clone(),
        };
        Answer::Later(Box::pin(async move {
            tokio::time::sleep(delay).await;
            if panics {
                guard.done();
                panic!("store panics for this key");
            }
            if hang {
                std::future::pending::<()>().await;
            }
            guard.done();
            answered.fetch_add(1, Ordering::SeqCst);
            answer.await
        }))
    }
}

fn key() -> (String, ark_auth::key::KeyRecord) {
    let g = generate_key(Environment::Live).unwrap();
    (
        g.plaintext.expose_secret().to_owned(),
        g.record.clone().with_permissions(Permissions::ALL),
    )
}

fn hash_of(token: &str) -> KeyHash {
    KeyHash::of(&Token::parse(token).unwrap())
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool, within: Duration) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A client sends a request and goes away while the store is still looking its key up.
///
/// - A complete request with a valid key: hyper sees the connection close and drops the
///   request, so the store's future is cancelled and the handler never runs, not even
///   once the lookup would have answered.
/// - A request whose body never arrives in full, with a wrong secret: nobody reads the
///   socket while the lookup is pending (hyper cannot notice the close), the lookup
///   answers "no such key", and the layer answers 401 into the void; the handler never
///   runs. (With a valid key the handler would run, authenticated, and its body read would
///   fail: the layer cannot know the client has gone.)
///
/// Either way the server goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnecting_while_the_store_is_pending_never_reaches_the_handler() {
    let (token, record) = key();
    let wrong = [
        format!("{}00", &token[..token.len() - 2]),
        format!("{}11", &token[..token.len() - 2]),
    ]
    .into_iter()
    .find(|w| *w != token)
    .unwrap();
    let store = SlowStore::new(
        MemoryKeyStore::from_records([record]).unwrap(),
        Duration::from_millis(300),
    );
    let servers = spawn_both(|| ArkAuthLayer::new(store.clone())).await;
    for srv in &servers {
        let started = store.started.load(Ordering::SeqCst);
        let cancelled = store.cancelled.load(Ordering::SeqCst);
        let complete = request("GET", "/v1/emails", &[bearer(&token)]);
        let partial_body = format!(
            "POST /v1/emails HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {wrong}\r\nContent-Length: 1000\r\n\r\n{{\"to\":"
        )
        .into_bytes();
        for (raw, cancels) in [(complete, true), (partial_body, false)] {
            let before = store.started.load(Ordering::SeqCst);
            let mut stream = TcpStream::connect(srv.addr).await.unwrap();
            stream.write_all(&raw).await.unwrap();
            wait_for(
                "the lookup to start",
                || store.started.load(Ordering::SeqCst) > before,
                Duration::from_secs(5),
            )
            .await;
            let cancelled_before = store.cancelled.load(Ordering::SeqCst);
            drop(stream);
            // Past the moment the lookup would have answered.
            tokio::time::sleep(Duration::from_millis(600)).await;
            if cancels {
                assert_eq!(
                    store.cancelled.load(Ordering::SeqCst),
                    cancelled_before + 1,
                    "[{:?}] the pending lookup was not cancelled with its connection",
                    srv.flavor
                );
            }
            assert_eq!(
                srv.calls(),
                0,
                "[{:?}] the handler ran for a client that had gone",
                srv.flavor
            );
        }
        assert_eq!(store.started.load(Ordering::SeqCst), started + 2);
        assert!(store.cancelled.load(Ordering::SeqCst) > cancelled);
        // The server goes on serving.
        let res = send(srv.addr, &request("GET", "/v1/emails", &[bearer(&token)])).await;
        assert_eq!(res.status, 200, "[{:?}] {}", srv.flavor, res.body_text());
        assert_eq!(srv.calls(), 1);
    }
}

/// With no `.timeout(…)`, a hanging store is answered 503 after `DEFAULT_TIMEOUT` (2 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_store_503_after_the_default_deadline_of_2_seconds() {
    assert_eq!(DEFAULT_TIMEOUT, Duration::from_secs(2));
    let (token, record) = key();
    let mut store = SlowStore::new(
        MemoryKeyStore::from_records([record]).unwrap(),
        Duration::ZERO,
    );
    store.hang_for = Some(hash_of(&token));
    let servers = spawn_both(|| ArkAuthLayer::new(store.clone())).await;
    // Both servers at once: one deadline of wall time.
    let results = futures::future::join_all(servers.iter().map(|srv| {
        let raw = request("GET", "/v1/emails", &[bearer(&token)]);
        async move {
            let started = Instant::now();
            let res = send(srv.addr, &raw).await;
            (res, started.elapsed())
        }
    }))
    .await;
    for (srv, (res, took)) in servers.iter().zip(results) {
        assert_eq!(res.status, 503, "[{:?}] {}", srv.flavor, res.body_text());
        assert!(
            took >= Duration::from_millis(1950) && took < Duration::from_millis(3000),
            "[{:?}] 503 after {took:?}",
            srv.flavor
        );
        assert_eq!(srv.calls(), 0);
    }
}

/// 200 requests hanging at once each get their 503 within the deadline (plus scheduling
/// slack), while requests for other keys are served meanwhile: a hanging store costs a
/// deadline per request, not the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_hanging_lookups_each_503_within_the_deadline_while_others_are_served() {
    let (stuck, stuck_record) = key();
    let (fine, fine_record) = key();
    let mut store = SlowStore::new(
        MemoryKeyStore::from_records([stuck_record, fine_record]).unwrap(),
        Duration::ZERO,
    );
    store.hang_for = Some(hash_of(&stuck));
    let deadline = Duration::from_millis(400);
    let servers = spawn_both(|| ArkAuthLayer::new(store.clone()).timeout(deadline)).await;
    for srv in &servers {
        let stuck_reqs = (0..200).map(|_| {
            let raw = request("GET", "/v1/emails", &[bearer(&stuck)]);
            async move {
                let started = Instant::now();
                let res = send(srv.addr, &raw).await;
                (res.status, started.elapsed())
            }
        });
        let fine_reqs = async {
            // Meanwhile, the other key is served promptly (the limiter allows 10/s).
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut out = Vec::new();
            for _ in 0..5 {
                let started = Instant::now();
                let res = send(srv.addr, &request("GET", "/", &[bearer(&fine)])).await;
                out.push((res.status, started.elapsed()));
            }
            out
        };
        let (stuck_out, fine_out) = tokio::join!(futures::future::join_all(stuck_reqs), fine_reqs);
        for (status, took) in &stuck_out {
            assert_eq!(*status, 503, "[{:?}]", srv.flavor);
            assert!(
                *took >= deadline && *took < deadline + Duration::from_millis(1500),
                "[{:?}] 503 after {took:?}",
                srv.flavor
            );
        }
        for (status, took) in &fine_out {
            assert_eq!(*status, 200, "[{:?}]", srv.flavor);
            assert!(
                *took < deadline,
                "[{:?}] a healthy key waited {took:?} behind hanging ones",
                srv.flavor
            );
        }
        assert_eq!(srv.calls(), 5, "[{:?}]", srv.flavor);
    }
}

/// A store that panics for one key, under concurrent load mixing that key with a good
/// one: every poisoned request is a 503, every good one a 200, the handler runs exactly
/// once per good request, and the server survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_store_under_concurrent_load_fails_closed_per_request() {
    let (bad, bad_record) = key();
    let mut records = vec![bad_record];
    let mut good = Vec::new();
    for _ in 0..10 {
        let (t, r) = key();
        good.push(t);
        records.push(r);
    }
    let mut store = SlowStore::new(
        MemoryKeyStore::from_records(records).unwrap(),
        Duration::from_millis(1),
    );
    store.panic_for = Some(hash_of(&bad));
    let servers = spawn_both(|| own_limiter(store.clone())).await;
    for srv in &servers {
        let reqs = (0..100).map(|i| {
            let token = if i % 2 == 0 {
                bad.clone()
            } else {
                good[i % 10].clone()
            };
            let want = if i % 2 == 0 { 503 } else { 200 };
            let raw = request("GET", "/", &[bearer(&token)]);
            async move { (send(srv.addr, &raw).await.status, want) }
        });
        for (status, want) in futures::future::join_all(reqs).await {
            assert_eq!(status, want, "[{:?}]", srv.flavor);
        }
        assert_eq!(srv.calls(), 50, "[{:?}]", srv.flavor);
        let res = send(srv.addr, &request("GET", "/", &[bearer(&good[0])])).await;
        assert_eq!(res.status, 200);
    }
}
