//! One conformance suite for every `RateLimiter`: the same test functions run against the
//! in-memory limiter and the Redis limiter (`REDIS_URL`; skipped with a printed reason when
//! unset, a failure when `CI=true`). Then Redis-only tests over real TCP servers: two
//! instances sharing one Redis, and a Redis killed, hung and restarted under a running
//! server (these start their own `redis-server` on a free port).

mod common;

use std::net::TcpListener as StdListener;
use std::num::NonZeroU32;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ark_auth::redis::RedisRateLimiter;
use ark_auth::{
    generate_key,
    key::{KeyHash, KeyRecord},
    limit::{Quota, RateLimitDecision, RateLimiter},
    ArkAuthLayer, Environment, LimiterFailure, MemoryKeyStore,
};
use common::{bearer, request, send, Flavor, RawResponse};

// ---------------------------------------------------------------------------------------
// Environment

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `REDIS_URL`, or `None` after printing why the test is skipped (a panic under `CI=true`).
fn redis_url() -> Option<String> {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if in_ci() => panic!("REDIS_URL is not set, and CI=true: the Redis tests must run"),
        _ => {
            eprintln!("skipping: REDIS_URL is not set (e.g. REDIS_URL=redis://127.0.0.1:6379/)");
            None
        }
    }
}

/// A prefix no other test or run shares, so tests never see each other's counters.
fn unique_prefix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "ark-auth-test:{}:{nanos}:{}:",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn connect_redis(url: &str) -> RedisRateLimiter {
    RedisRateLimiter::connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to REDIS_URL: {e}"))
}

/// A Redis limiter on `REDIS_URL` with a fresh prefix.
async fn redis_limiter() -> Option<RedisRateLimiter> {
    let url = redis_url()?;
    Some(connect_redis(&url).await.key_prefix(unique_prefix()))
}

// ---------------------------------------------------------------------------------------
// The conformance suite: generic over the limiter.

fn key(n: u8) -> KeyRecord {
    KeyRecord::new(
        format!("key_{n}"),
        KeyHash::from_bytes([n; 32]),
        Environment::Live,
    )
}

fn quota(limit: u32, window: Duration) -> Quota {
    Quota::new(NonZeroU32::new(limit).unwrap(), window)
}

/// A window long enough that a burst never straddles two windows in practice.
const LONG: Duration = Duration::from_secs(60);

async fn acquire<L: RateLimiter>(l: &L, k: &KeyRecord, q: Quota) -> RateLimitDecision {
    l.acquire(k, &q.into()).await.expect("the limiter answers")
}

async fn peek<L: RateLimiter>(l: &L, k: &KeyRecord, q: Quota) -> RateLimitDecision {
    l.peek(k, &q.into()).await.expect("the limiter answers")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Up to 2 s between the test's clock and a Redis server's.
const CLOCK_SLACK: u64 = 2;

async fn admits_exactly_limit_then_refuses<L: RateLimiter>(l: &L) {
    let (k, q) = (key(1), quota(5, LONG));
    for expect_remaining in (0..5).rev() {
        let d = acquire(l, &k, q).await;
        assert!(d.allowed, "{d:?}");
        assert_eq!(d.limit, 5);
        assert_eq!(d.remaining, expect_remaining, "{d:?}");
        assert_eq!(d.retry_after, None);
    }
    for _ in 0..3 {
        let d = acquire(l, &k, q).await;
        assert!(!d.allowed, "the 6th and later requests are refused: {d:?}");
        assert_eq!(d.remaining, 0);
        let retry = d.retry_after.expect("a refusal says when to retry");
        assert!(retry > Duration::ZERO && retry <= 2 * LONG, "{retry:?}");
        assert!(d.retry_after_secs() >= 1);
    }
    // Refusals are not counted: still exactly full.
    assert_eq!(peek(l, &k, q).await.remaining, 0);
}

async fn peek_counts_nothing<L: RateLimiter>(l: &L) {
    let (k, q) = (key(2), quota(3, LONG));
    for _ in 0..10 {
        let d = peek(l, &k, q).await;
        assert!(d.allowed);
        assert_eq!(d.remaining, 3, "{d:?}");
    }
    assert_eq!(acquire(l, &k, q).await.remaining, 2);
    for _ in 0..10 {
        assert_eq!(peek(l, &k, q).await.remaining, 2);
    }
    assert!(acquire(l, &k, q).await.allowed);
    assert!(acquire(l, &k, q).await.allowed);
    let full = peek(l, &k, q).await;
    assert!(!full.allowed, "peek reports a full limit: {full:?}");
    assert_eq!(full.remaining, 0);
    assert!(!acquire(l, &k, q).await.allowed);
}

async fn keys_are_isolated<L: RateLimiter>(l: &L) {
    let (a, b, q) = (key(3), key(4), quota(4, LONG));
    for _ in 0..4 {
        assert!(acquire(l, &a, q).await.allowed);
    }
    assert!(!acquire(l, &a, q).await.allowed);
    assert_eq!(peek(l, &b, q).await.remaining, 4, "b untouched by a");
    for n in (0..4).rev() {
        assert_eq!(acquire(l, &b, q).await.remaining, n);
    }
    assert!(!acquire(l, &b, q).await.allowed);
}

/// Per-key limits (`KeyRecord::rate_limit`, requests per second) as the layer applies them.
async fn per_key_quota_override<L: RateLimiter>(l: &L) {
    let default = Quota::DEFAULT;
    let slow = key(5).with_rate_limit(2);
    let fast = key(6).with_rate_limit(7);
    let plain = key(7);
    for (record, expect) in [(&slow, 2), (&fast, 7), (&plain, 10)] {
        let q = record.rate_limit().map_or(default, Quota::per_second);
        let mut admitted = 0;
        for _ in 0..15 {
            let d = acquire(l, record, q).await;
            assert_eq!(d.limit, expect);
            admitted += u32::from(d.allowed);
        }
        assert_eq!(admitted, expect, "key {} admits its own limit", record.id());
    }
}

async fn window_slides<L: RateLimiter>(l: &L) {
    let window = Duration::from_millis(400);
    let (k, q) = (key(8), quota(2, window));
    for _ in 0..2 {
        let d = acquire(l, &k, q).await;
        assert!(d.allowed, "within a limit of 2: {d:?}");
    }
    let refused = acquire(l, &k, q).await;
    assert!(!refused.allowed);
    let wait = refused.retry_after.unwrap();
    assert!(wait <= 2 * window, "{wait:?}");
    // Not much earlier than promised...
    if wait > Duration::from_millis(120) {
        tokio::time::sleep(wait - Duration::from_millis(100)).await;
        assert!(
            !peek(l, &k, q).await.allowed,
            "admitted 100 ms before retry-after {wait:?}"
        );
        tokio::time::sleep(Duration::from_millis(130)).await;
    } else {
        tokio::time::sleep(wait + Duration::from_millis(30)).await;
    }
    // ...and admitted once it has passed: the previous window's weight has faded.
    let again = acquire(l, &k, q).await;
    assert!(
        again.allowed,
        "still refused after retry-after {wait:?}: {again:?}"
    );
    // Two whole windows later everything is free again.
    tokio::time::sleep(2 * window + Duration::from_millis(50)).await;
    assert_eq!(peek(l, &k, q).await.remaining, 2);
}

async fn remaining_and_reset_are_consistent<L: RateLimiter>(l: &L) {
    let window = Duration::from_secs(10);
    let (k, q) = (key(9), quota(3, window));
    let fresh = peek(l, &k, q).await;
    let now = unix_now();
    assert_eq!((fresh.limit, fresh.remaining), (3, 3));
    assert!(
        fresh.reset + CLOCK_SLACK >= now && fresh.reset <= now + 1 + CLOCK_SLACK,
        "an untouched key is free now: reset {} vs now {now}",
        fresh.reset
    );
    let mut last_reset = 0;
    for n in (0..3).rev() {
        let d = acquire(l, &k, q).await;
        assert_eq!((d.allowed, d.limit, d.remaining), (true, 3, n));
        // Free again at most two windows from now (the end of the next window).
        assert!(d.reset + CLOCK_SLACK > now, "{d:?}");
        assert!(
            d.reset <= now + 2 * window.as_secs() + 1 + CLOCK_SLACK,
            "{d:?}"
        );
        assert!(d.reset >= last_reset, "reset never moves back");
        last_reset = d.reset;
    }
    let refused = acquire(l, &k, q).await;
    assert_eq!((refused.allowed, refused.remaining), (false, 0));
    assert_eq!(refused.reset, last_reset, "a refusal does not move reset");
    // One request is free before the whole limit is.
    assert!(now + refused.retry_after_secs() <= refused.reset + CLOCK_SLACK + 1);
}

/// Generates `#[tokio::test]`s running each suite function against each limiter.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory_limiter {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&ark_auth::limit::MemoryRateLimiter::new()).await;
                }
            )*
        }
        mod redis_limiter {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(limiter) = super::redis_limiter().await {
                        super::$name(&limiter).await;
                    }
                }
            )*
        }
    };
}

conformance!(
    admits_exactly_limit_then_refuses,
    peek_counts_nothing,
    keys_are_isolated,
    per_key_quota_override,
    window_slides,
    remaining_and_reset_are_consistent,
);

// ---------------------------------------------------------------------------------------
// Redis only: a fleet sharing one Redis.

/// Two limiters, two connections, one Redis: a concurrent burst admits the limit in total.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_limiters_share_one_limit() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let a = connect_redis(&url).await.key_prefix(prefix.clone());
    let b = connect_redis(&url).await.key_prefix(prefix);
    let (k, q) = (key(10), quota(10, LONG));
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let l = if i % 2 == 0 { a.clone() } else { b.clone() };
            let k = k.clone();
            tokio::spawn(async move { acquire(&l, &k, q).await })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        admitted += u32::from(t.await.unwrap().allowed);
    }
    assert_eq!(admitted, 10, "60 concurrent requests over two instances");
    assert_eq!(peek(&a, &k, q).await.remaining, 0);
    assert_eq!(peek(&b, &k, q).await.remaining, 0);
}

/// One command to the Redis at `url` (`redis://host:port[/db]` only), by raw RESP; the
/// reply line, e.g. `:1`.
async fn redis_command(url: &str, args: &[&str]) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let rest = url.trim_start_matches("redis://");
    let (addr, db) = rest.split_once('/').unwrap_or((rest, ""));
    let db = if db.is_empty() { "0" } else { db };
    let mut cmd = String::new();
    for command in [&["SELECT", db][..], args] {
        cmd.push_str(&format!("*{}\r\n", command.len()));
        for a in command {
            cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
    }
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(cmd.as_bytes()).await.unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    assert_eq!(line.trim_end(), "+OK", "SELECT {db}");
    line.clear();
    reader.read_line(&mut line).await.unwrap();
    line.trim_end().to_owned()
}

/// Counters live at `{prefix}{key id}`, expire after two windows, and a peek writes none.
#[tokio::test]
async fn counters_are_per_key_id_and_expire() {
    let Some(url) = redis_url() else { return };
    if url.contains('@') || url.starts_with("rediss") || url.starts_with("redis+unix") {
        eprintln!("skipping: this test speaks plain RESP to redis://host:port/ only");
        return;
    }
    let prefix = unique_prefix();
    let l = connect_redis(&url).await.key_prefix(prefix.clone());
    let (k, q) = (key(11), quota(3, Duration::from_millis(300)));
    let name = format!("{prefix}{}", k.id());
    peek(&l, &k, q).await;
    assert_eq!(
        redis_command(&url, &["EXISTS", &name]).await,
        ":0",
        "peek wrote"
    );
    acquire(&l, &k, q).await;
    assert_eq!(redis_command(&url, &["EXISTS", &name]).await, ":1");
    let ttl: i64 = redis_command(&url, &["PTTL", &name]).await[1..]
        .parse()
        .unwrap();
    assert!(
        (250..=600).contains(&ttl),
        "expires after the next window: {ttl} ms"
    );
    tokio::time::sleep(Duration::from_millis(650)).await;
    assert_eq!(
        redis_command(&url, &["EXISTS", &name]).await,
        ":0",
        "idle key gone"
    );
}

fn rate_headers(res: &RawResponse) -> Vec<String> {
    res.headers_text()
        .into_iter()
        .filter(|h| h.starts_with("x-ratelimit-"))
        .collect()
}

/// Two servers (axum and hyper), each with its own Redis limiter, one key: a concurrent
/// burst spread over both admits the key's limit (+1 at a window edge), with the headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_share_one_limit_over_tcp() {
    let Some(url) = redis_url() else { return };
    let key = generate_key(Environment::Live).unwrap();
    let token = key.plaintext.expose_secret().to_owned();
    let store = MemoryKeyStore::from_records([key.record.clone()]).unwrap();
    let prefix = unique_prefix();
    let limit = 10;
    let mut servers = Vec::new();
    for flavor in [Flavor::Axum, Flavor::Hyper] {
        let limiter = connect_redis(&url).await.key_prefix(prefix.clone());
        let layer = ArkAuthLayer::new(store.clone())
            .default_quota(quota(limit, Duration::from_secs(30)))
            .rate_limiter(limiter);
        servers.push(common::spawn(flavor, layer).await);
    }
    let raw = request("GET", "/v1/emails", &[bearer(&token)]);
    let sends: Vec<_> = (0..40)
        .map(|i| {
            let addr = servers[i % 2].addr;
            let raw = raw.clone();
            tokio::spawn(async move { send(addr, &raw).await })
        })
        .collect();
    let (mut ok, mut limited) = (0, 0);
    for s in sends {
        let res = s.await.unwrap();
        match res.status {
            200 => {
                ok += 1;
                assert_eq!(res.header("x-ratelimit-limit").as_deref(), Some("10"));
            }
            429 => {
                limited += 1;
                assert_eq!(res.header("x-ratelimit-remaining").as_deref(), Some("0"));
                assert!(res.header("retry-after").is_some(), "{res:?}");
            }
            _ => panic!("unexpected {res:?}"),
        }
    }
    eprintln!("burst of 40 over two servers: {ok} admitted, {limited} limited (limit {limit})");
    assert!((limit..=limit + 1).contains(&ok), "{ok} admitted");
    assert_eq!(servers[0].calls() + servers[1].calls(), ok as usize);
}

// ---------------------------------------------------------------------------------------
// Redis only: outages, with a redis-server of our own.

/// A `redis-server` child on a free port, killed on drop.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    /// Starts one, or `None` (after printing why) when there is no `redis-server` binary;
    /// under `CI=true` a missing binary is a failure.
    fn start() -> Option<OwnRedis> {
        let port = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = OwnRedis { port, child: None };
        match redis.spawn() {
            Ok(()) => Some(redis),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !in_ci() => {
                eprintln!("skipping: no redis-server binary ({e}); apt-get install redis-server");
                None
            }
            Err(e) => panic!("cannot start redis-server: {e}"),
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the server on the same port and waits until it accepts connections.
    fn spawn(&mut self) -> std::io::Result<()> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal (`STOP`, `CONT`) to the server (the shell's `kill` builtin: no
    /// procps needed).
    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("sh")
            .args(["-c", &format!("kill -{sig} {pid}")])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{sig} {pid}");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too.
        self.kill();
    }
}

/// A key, a store, and two servers sharing one Redis limiter: one failing open (the
/// default) and one failing closed.
struct OutageFixture {
    token: String,
    open: common::Server,
    closed: common::Server,
}

impl OutageFixture {
    async fn new(limiter: RedisRateLimiter) -> OutageFixture {
        let key = generate_key(Environment::Live).unwrap();
        let token = key.plaintext.expose_secret().to_owned();
        let store = MemoryKeyStore::from_records([key.record.clone()]).unwrap();
        let big = quota(1000, Duration::from_secs(1));
        let open = ArkAuthLayer::new(store.clone())
            .default_quota(big)
            .rate_limiter(limiter.clone());
        let closed = ArkAuthLayer::new(store)
            .default_quota(big)
            .rate_limiter(limiter)
            .on_limiter_failure(LimiterFailure::Refuse);
        OutageFixture {
            token,
            open: common::spawn(Flavor::Hyper, open).await,
            closed: common::spawn(Flavor::Axum, closed).await,
        }
    }

    /// GET on one server, with its wall time.
    async fn get(&self, closed: bool) -> (RawResponse, Duration) {
        let addr = if closed {
            self.closed.addr
        } else {
            self.open.addr
        };
        let start = Instant::now();
        let res = send(addr, &request("GET", "/v1/emails", &[bearer(&self.token)])).await;
        (res, start.elapsed())
    }

    async fn expect_limited(&self) {
        for closed in [false, true] {
            let (res, _) = self.get(closed).await;
            assert_eq!(res.status, 200, "{res:?}");
            assert_eq!(res.header("x-ratelimit-limit").as_deref(), Some("1000"));
        }
    }

    /// While Redis fails: the open server serves without rate-limit headers, the closed one
    /// answers the contract's 503. Returns the slowest answer.
    async fn expect_failure_policies(&self) -> Duration {
        let mut slowest = Duration::ZERO;
        for _ in 0..5 {
            let (res, took) = self.get(false).await;
            assert_eq!(res.status, 200, "fail open: {res:?}");
            assert!(
                rate_headers(&res).is_empty(),
                "no rate-limit headers: {res:?}"
            );
            slowest = slowest.max(took);
            let (res, took) = self.get(true).await;
            assert_eq!(res.status, 503, "fail closed: {res:?}");
            assert_eq!(
                res.json()["error"]["code"],
                "service_unavailable",
                "{res:?}"
            );
            assert!(
                res.header("retry-after").is_some(),
                "a 503 carries Retry-After"
            );
            assert!(rate_headers(&res).is_empty(), "{res:?}");
            slowest = slowest.max(took);
        }
        slowest
    }

    /// Polls the open server until its answers carry rate-limit headers again.
    async fn wait_recovery(&self) -> Duration {
        let start = Instant::now();
        loop {
            let (res, _) = self.get(false).await;
            assert_eq!(res.status, 200, "{res:?}");
            if !rate_headers(&res).is_empty() {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "the limiter did not recover within 15 s of Redis coming back"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Redis killed under a running server, then restarted on the same port: fail open / fail
/// closed per policy, promptly, then recovery without rebuilding the limiter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_then_restarted() {
    let Some(mut redis) = OwnRedis::start() else {
        return;
    };
    let limiter = connect_redis(&redis.url()).await;
    let fx = OutageFixture::new(limiter).await;
    fx.expect_limited().await;

    redis.kill();
    let slowest = fx.expect_failure_policies().await;
    eprintln!("redis down: slowest answer {slowest:?}");
    assert!(
        slowest < Duration::from_millis(1000),
        "an outage must not hold requests: {slowest:?}"
    );

    redis.spawn().expect("restart redis-server");
    let recovered = fx.wait_recovery().await;
    eprintln!("redis back: limiter recovered after {recovered:?}");
    fx.expect_limited().await;
}

/// A Redis that hangs (SIGSTOP) costs a request at most the limiter's timeout, then the
/// cooldown answers at once; it recovers when the server resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_redis_costs_at_most_the_timeout() {
    let Some(redis) = OwnRedis::start() else {
        return;
    };
    let limiter = connect_redis(&redis.url())
        .await
        .timeout(Duration::from_millis(100));
    let fx = OutageFixture::new(limiter).await;
    fx.expect_limited().await;

    redis.signal("STOP");
    let (res, first) = fx.get(false).await;
    assert_eq!(res.status, 200, "{res:?}");
    assert!(rate_headers(&res).is_empty(), "{res:?}");
    assert!(
        first >= Duration::from_millis(90) && first < Duration::from_millis(1000),
        "the first request waits for the 100 ms timeout, no more: {first:?}"
    );
    let slowest = fx.expect_failure_policies().await;
    eprintln!("redis hung: first answer {first:?}, then slowest {slowest:?} (cooling down)");
    assert!(slowest < Duration::from_millis(500), "{slowest:?}");

    redis.signal("CONT");
    let recovered = fx.wait_recovery().await;
    eprintln!("redis resumed: limiter recovered after {recovered:?}");
    fx.expect_limited().await;
}

/// A service started while Redis is down (`connect_lazy`) serves per its failure policy and
/// starts limiting once Redis comes up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_startup_then_up() {
    let Some(mut redis) = OwnRedis::start() else {
        return;
    };
    redis.kill();
    let limiter = RedisRateLimiter::connect_lazy(&redis.url()).expect("a valid URL");
    assert!(
        RedisRateLimiter::connect(&redis.url()).await.is_err(),
        "connect (not lazy) fails while Redis is down"
    );
    let fx = OutageFixture::new(limiter).await;
    let slowest = fx.expect_failure_policies().await;
    eprintln!("redis down at startup: slowest answer {slowest:?}");
    assert!(slowest < Duration::from_millis(1000), "{slowest:?}");

    redis.spawn().expect("start redis-server");
    let recovered = fx.wait_recovery().await;
    eprintln!("redis up: limiter working after {recovered:?}");
    fx.expect_limited().await;
}
