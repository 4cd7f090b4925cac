//! Shared bench harness: a compact port of the team's measuring harness and its "tuned"
//! reference pipeline, plus the ark-auth fixtures both bench targets use.
//!
//! Ported from `/work/shared/perf-reference/src/lib.rs` (the team's scratch harness; see its
//! README and `results/SUMMARY.md`): `SplitMix`, `key_body`/`key_token`, `typical_request`
//! (8 headers), `ready_call_now` (poll_ready + call + one poll with a no-op waker), and the
//! tuned `Authenticator` (`fast = true`: digest-prefix-hasher `HashMap`, word-wise constant-time
//! compare, inline atomic GCRA, branch-free `parse_bearer_fast`) behind `ModelAuthLayer`.
//! It is copied, not depended on: perf-reference must not become a dependency of this crate.
//!
//! Differences from the original, forced by this crate's dependency set:
//! - the GCRA clock is `std::time::Instant` (the original uses `quanta`, not a dependency
//!   here; perf-reference measured 37/39 ns for std vs 31/33 ns for quanta per `now()`);
//! - SHA-256 is `sha2` 0.10 (ark-auth's) instead of 0.11; both take the SHA-NI path at run time;
//! - the model middleware is generic over the response body (`Default`), so the inner service
//!   can return `http_body_util::Empty<Bytes>` like the ark-auth benches.

#![allow(dead_code)]

pub mod echo;
pub mod peer;

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::num::NonZeroU32;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ark_auth::{
    key::{KeyHash, KeyRecord},
    limit::Quota,
    token::Token,
    ArkAuthLayer, Environment, MemoryKeyStore, Permission, Permissions,
};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

pub const PREFIX: &[u8] = b"ark_live_";
pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub const BODY_LEN: usize = 40;
pub const PERM_READ: u64 = 1 << 0;
pub const PERM_WRITE: u64 = 1 << 1;

// ---------------------------------------------------------------------------------------------
// deterministic test data (as perf-reference)
// ---------------------------------------------------------------------------------------------

/// splitmix64.
pub struct SplitMix(pub u64);
impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The order of the `n` variants in round `round` of an interleaved run: a fresh permutation
/// every round (Fisher-Yates on a seeded splitmix64), so that no variant always runs right
/// after the same other one (with a rotated fixed order, variant k+1 follows variant k in
/// almost every round, and inherits its cache and branch-predictor state).
pub fn round_order(n: usize, round: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix(0x5EED ^ (round as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// The secret body of key number `i` (40 base62 chars).
pub fn key_body(i: u64) -> String {
    let mut rng = SplitMix(0xA11CE ^ i.wrapping_mul(0x1000_0000_01B3));
    (0..BODY_LEN)
        .map(|_| BASE62[(rng.next_u64() % 62) as usize] as char)
        .collect()
}

/// `ark_live_<body>` of key number `i` (49 chars; valid for both pipelines).
pub fn key_token(i: u64) -> String {
    format!("ark_live_{}", key_body(i))
}

/// `key_token(i)` with its last character changed: same prefix, wrong secret.
pub fn wrong_secret_token(i: u64) -> String {
    let mut t = key_token(i);
    let last = t.pop().unwrap();
    t.push(if last == 'x' { 'y' } else { 'x' });
    t
}

pub fn sha256_32(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// The requests' body: empty (the layer's refusals read a request's body, so it is an
/// `http_body::Body`).
pub type ReqBody = http_body_util::Empty<bytes::Bytes>;

/// A typical API request with 8 headers, `Authorization: <auth>` (or none).
pub fn typical_request(auth: Option<&str>) -> Request<ReqBody> {
    let mut b = Request::builder()
        .method("GET")
        .uri("/v1/things/42")
        .header(header::HOST, "api.example.com")
        .header(header::USER_AGENT, "example-client/1.2.3 (linux; x86_64)")
        .header(header::ACCEPT, "application/json")
        .header(header::ACCEPT_ENCODING, "gzip, br")
        .header(header::ACCEPT_LANGUAGE, "en-US,en;q=0.9")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-request-id", "8f14e45f-ceea-467f-a8f5-6b1a2c3d4e5f");
    if let Some(auth) = auth {
        b = b.header(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
    }
    b.body(ReqBody::new()).unwrap()
}

/// `typical_request(Some("Bearer <token>"))`.
pub fn bearer_request(token: &str) -> Request<ReqBody> {
    typical_request(Some(&format!("Bearer {token}")))
}

/// `poll_ready` + `call` + one poll with a no-op waker; panics if anything is Pending.
/// (`futures::task::noop_waker_ref()` is the same no-op waker as `Waker::noop()`, which is
/// newer than this crate's MSRV 1.82.)
#[inline]
pub fn ready_call_now<S, R>(svc: &mut S, req: R) -> S::Response
where
    S: Service<R>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        _ => panic!("service not ready"),
    }
    let mut fut = pin!(svc.call(req));
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(r)) => r,
        Poll::Ready(Err(e)) => panic!("service error {e:?}"),
        Poll::Pending => panic!("service pending"),
    }
}

// ---------------------------------------------------------------------------------------------
// the tuned reference pipeline
// ---------------------------------------------------------------------------------------------

pub struct Record {
    pub digest: [u8; 32],
    pub key_id: u64,
    pub perms: u64,
    /// GCRA theoretical arrival time, ns since `RefAuthenticator::epoch`.
    pub tat: AtomicU64,
}

/// Hasher for SHA-256 digests: the first 8 bytes of the (last >= 8 byte) write.
#[derive(Default)]
pub struct DigestPrefixHasher(u64);
impl Hasher for DigestPrefixHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        if bytes.len() >= 8 {
            self.0 = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        }
    }
}

/// GCRA on one atomic: allow if `tat - now <= tau`, then `tat = max(tat, now) + t`.
#[inline]
pub fn gcra_check(tat: &AtomicU64, now: u64, t: u64, tau: u64) -> bool {
    let mut cur = tat.load(Ordering::Relaxed);
    loop {
        let base = cur.max(now);
        if base - now > tau {
            return false;
        }
        match tat.compare_exchange_weak(cur, base + t, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(x) => cur = x,
        }
    }
}

/// Constant-time 32-byte equality as 4 u64 words and one `subtle` compare.
#[inline]
pub fn ct_eq_words(a: &[u8; 32], b: &[u8; 32]) -> subtle::Choice {
    let mut x = 0u64;
    for i in 0..4 {
        let wa = u64::from_ne_bytes(a[i * 8..i * 8 + 8].try_into().unwrap());
        let wb = u64::from_ne_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
        x |= wa ^ wb;
    }
    x.ct_eq(&0)
}

static BASE62_TABLE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 62 {
        t[BASE62[i] as usize] = true;
        i += 1;
    }
    t
};

/// `Bearer ark_live_<32..=40 base62>` -> body; branch-free charset check.
#[inline]
pub fn parse_bearer_fast(v: &[u8]) -> Option<&[u8]> {
    if v.len() < 7 + PREFIX.len() + 32 || v.len() > 7 + PREFIX.len() + 40 {
        return None;
    }
    if !v[..7].eq_ignore_ascii_case(b"bearer ") || &v[7..7 + PREFIX.len()] != PREFIX {
        return None;
    }
    let body = &v[7 + PREFIX.len()..];
    let mut ok = true;
    for &b in body {
        ok &= BASE62_TABLE[b as usize];
    }
    ok.then_some(body)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthedKey {
    pub key_id: u64,
    pub perms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    Malformed,
    Unknown,
    Forbidden,
    RateLimited,
}

pub struct RefAuthenticator {
    pub map: HashMap<[u8; 32], Record, BuildHasherDefault<DigestPrefixHasher>>,
    pub required: u64,
    pub epoch: Instant,
    pub gcra_t: u64,
    pub gcra_tau: u64,
}

impl RefAuthenticator {
    /// `n` keys (`key_token(0..n)`, digest of the 40-char body), all READ|WRITE; GCRA with a
    /// 1 ns emission interval and 1 s burst, so the accept path is always taken.
    pub fn new(n: u64) -> Self {
        let mut map = HashMap::with_capacity_and_hasher(n as usize, Default::default());
        for i in 0..n {
            let d = sha256_32(key_body(i).as_bytes());
            let rec = Record {
                digest: d,
                key_id: i,
                perms: PERM_READ | PERM_WRITE,
                tat: AtomicU64::new(0),
            };
            map.insert(d, rec);
        }
        RefAuthenticator {
            map,
            required: PERM_READ,
            epoch: Instant::now(),
            gcra_t: 1,
            gcra_tau: 1_000_000_000,
        }
    }

    #[inline]
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<AuthedKey, AuthError> {
        let v = headers
            .get(header::AUTHORIZATION)
            .ok_or(AuthError::Missing)?;
        let body = parse_bearer_fast(v.as_bytes()).ok_or(AuthError::Malformed)?;
        let digest = sha256_32(body);
        let rec = self.map.get(&digest).ok_or(AuthError::Unknown)?;
        if !bool::from(ct_eq_words(&rec.digest, &digest)) {
            return Err(AuthError::Unknown);
        }
        if rec.perms & self.required != self.required {
            return Err(AuthError::Forbidden);
        }
        let now = Instant::now().duration_since(self.epoch).as_nanos() as u64;
        if !gcra_check(&rec.tat, now, self.gcra_t, self.gcra_tau) {
            return Err(AuthError::RateLimited);
        }
        Ok(AuthedKey {
            key_id: rec.key_id,
            perms: rec.perms,
        })
    }
}

#[derive(Clone)]
pub struct ModelAuthLayer {
    pub auth: Arc<RefAuthenticator>,
}

impl<S> Layer<S> for ModelAuthLayer {
    type Service = ModelAuth<S>;
    fn layer(&self, inner: S) -> ModelAuth<S> {
        ModelAuth {
            inner,
            auth: self.auth.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ModelAuth<S> {
    inner: S,
    auth: Arc<RefAuthenticator>,
}

impl<S, B, ResBody> Service<Request<B>> for ModelAuth<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ModelFuture<S::Future, ResBody>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        match self.auth.authenticate(req.headers()) {
            Ok(k) => {
                req.extensions_mut().insert(k);
                ModelFuture::Inner {
                    fut: self.inner.call(req),
                }
            }
            Err(e) => {
                let mut res = Response::new(ResBody::default());
                *res.status_mut() = match e {
                    AuthError::Forbidden => StatusCode::FORBIDDEN,
                    AuthError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
                    _ => StatusCode::UNAUTHORIZED,
                };
                ModelFuture::Reject { res: Some(res) }
            }
        }
    }
}

pin_project_lite::pin_project! {
    #[project = ModelFutureProj]
    pub enum ModelFuture<F, ResBody> {
        Inner { #[pin] fut: F },
        Reject { res: Option<Response<ResBody>> },
    }
}

impl<F, ResBody, E> Future for ModelFuture<F, ResBody>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ModelFutureProj::Inner { fut } => fut.poll(cx),
            ModelFutureProj::Reject { res } => {
                Poll::Ready(Ok(res.take().expect("polled after completion")))
            }
        }
    }
}

/// Not from perf-reference: adds the three `X-RateLimit-*` headers that ark-auth's contract puts
/// on every accepted response, rendered as ark-auth renders them (`HeaderValue::from` on the
/// integers). Wrapping the reference in
/// this (`svc.map_response(add_ratelimit_headers)`) gives a reference doing the same work on
/// the wire as ark-auth's accept path. `X-RateLimit-Limit`/`-Remaining` are 4-digit numbers, as
/// with [`huge_quota`]'s 9 999 (realistic limits are smaller still).
pub fn add_ratelimit_headers<B>(mut res: Response<B>) -> Response<B> {
    let h = res.headers_mut();
    h.insert(
        ark_auth::response::X_RATELIMIT_LIMIT.clone(),
        HeaderValue::from(std::hint::black_box(9_999u32)),
    );
    h.insert(
        ark_auth::response::X_RATELIMIT_REMAINING.clone(),
        HeaderValue::from(std::hint::black_box(9_998u32)),
    );
    h.insert(
        ark_auth::response::X_RATELIMIT_RESET.clone(),
        HeaderValue::from(std::hint::black_box(1_790_000_000u64)),
    );
    res
}

// ---------------------------------------------------------------------------------------------
// ark-auth fixtures (not from perf-reference)
// ---------------------------------------------------------------------------------------------

/// Key numbers of the special keys, outside `0..n` of any store size used.
pub const REVOKED_KEY: u64 = 50_000_001;
pub const NO_PERMISSION_KEY: u64 = 50_000_002;
pub const TINY_QUOTA_KEY: u64 = 50_000_003;
/// Well-formed, in no store.
pub const UNKNOWN_KEY: u64 = 60_000_000;

/// What every ark-auth bench layer requires (keys `0..n` hold all permissions).
pub const REQUIRED: Permission = Permission::EmailsSend;

/// A quota the accept path never exceeds at bench rates (9 999 per millisecond, i.e. one call
/// every 100 ns sustained), with header values of realistic size (at most 4 digits; with
/// `u32::MAX` per second the 10-digit `X-RateLimit-Remaining` would be the only value that
/// needs an allocation).
pub fn huge_quota() -> Quota {
    Quota::new(NonZeroU32::new(9_999).unwrap(), Duration::from_millis(1))
}

/// Key number `i`'s record (all permissions), as the bench stores hold it.
pub fn record(i: u64) -> KeyRecord {
    let token = key_token(i);
    let hash = KeyHash::of(&Token::parse(&token).expect("bench token fits the grammar"));
    KeyRecord::new(format!("key_{i:016x}"), hash, Environment::Live)
        .with_permissions(Permissions::ALL)
}

/// A `MemoryKeyStore` with keys `0..n` (all permissions, default quota) plus a revoked key,
/// a key without `REQUIRED`, and a key limited to 1 request/s.
pub fn ark_store(n: u64) -> MemoryKeyStore {
    let specials = [
        record(REVOKED_KEY).with_revoked(true),
        record(NO_PERMISSION_KEY).with_permissions(Permissions::NONE),
        record(TINY_QUOTA_KEY).with_rate_limit(1),
    ];
    MemoryKeyStore::from_records((0..n).map(record).chain(specials)).expect("distinct keys")
}

/// The layer under test: `require(REQUIRED)`, default in-memory limiter, quota never reached.
pub fn ark_layer(store: MemoryKeyStore) -> ArkAuthLayer<MemoryKeyStore> {
    ArkAuthLayer::new(store)
        .require(REQUIRED)
        .default_quota(huge_quota())
}

// ---------------------------------------------------------------------------------------------
// the inner services both bench targets wrap
// ---------------------------------------------------------------------------------------------

/// The response body of every bench stack (works with `ArkAuthBody`).
pub type Body = http_body_util::Empty<bytes::Bytes>;

/// The bare inner service: answers an empty 200 at once.
pub fn inner(
) -> impl Service<Request<ReqBody>, Response = Response<Body>, Error = std::convert::Infallible> + Clone
{
    tower::service_fn(|_req: Request<ReqBody>| {
        std::future::ready(Ok::<_, std::convert::Infallible>(
            Response::new(Body::new()),
        ))
    })
}

/// tower-http 0.7's (deprecated, not constant-time) bearer check, for comparison.
#[allow(deprecated)]
pub fn bearer_layer(
    token: &str,
) -> tower_http::validate_request::ValidateRequestHeaderLayer<
    tower_http::auth::require_authorization::Bearer<Body>,
> {
    tower_http::validate_request::ValidateRequestHeaderLayer::bearer(token)
}
