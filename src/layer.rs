//! [`ArkAuthLayer`], the [`ArkAuth`] service it makes, and their response future.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime};

use http::header::{HeaderValue, CONNECTION};
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::answer::Answer;
use crate::authenticated::AuthenticatedKey;
use crate::body::ArkAuthBody;
use crate::chain::Chain;
use crate::drain::{plan, Drain, DrainBound, Drained, Plan};
use crate::key::{KeyHash, KeyRecord};
use crate::limit::LimiterError;
use crate::limit::{MemoryRateLimiter, Quota, RateLimitDecision, RateLimiter};
use crate::permission::Permissions;
use crate::policy::{Access, AccessPolicy, KeyScope, RequestHead};
use crate::response::{set_rate_limit_headers, Rejection, Reply};
use crate::store::{KeyStore, StoreError};
use crate::token::{bearer_token, Environment};

/// Default deadline for the key store and the rate limiter together, per request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the layer does when the rate limiter fails (errors, times out or panics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LimiterFailure {
    /// Serve the request without rate-limit headers and log the failure (the default: a
    /// failing shared limiter does not take the API down).
    #[default]
    Allow,
    /// Answer 503 `service_unavailable`.
    Refuse,
}

#[derive(Debug, Clone, Copy)]
struct Options {
    environments: u8,
    default_quota: Quota,
    timeout: Duration,
    limiter_failure: LimiterFailure,
    drain: DrainBound,
}

/// Puts Ark API-key authentication in front of a service.
///
/// Per request: reads `Authorization: Bearer ark_…`, looks the key's hash up in the
/// [`KeyStore`], verifies it in constant time, checks revocation, expiry, permissions and
/// tenant, applies the key's rate limit, then either calls the inner service with an
/// [`AuthenticatedKey`] in the request extensions or answers itself with the JSON error of
/// the contract. It never fails: its error type is the inner service's.
///
/// ```
/// use std::convert::Infallible;
/// use ark_auth::{generate_key, ArkAuthLayer, AuthenticatedKey, Environment, MemoryKeyStore, Permission, Permissions};
/// use http::{Request, Response, StatusCode};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let key = generate_key(Environment::Test).unwrap();
/// let store = MemoryKeyStore::from_records([key.record.with_permissions(Permissions::ALL)]).unwrap();
///
/// let svc = ServiceBuilder::new()
///     .layer(ArkAuthLayer::new(store).require(Permission::EmailsSend))
///     .service_fn(|req: Request<String>| async move {
///         let key = req.extensions().get::<AuthenticatedKey>().unwrap();
///         Ok::<_, Infallible>(Response::new(format!("hello {}", key.id())))
///     });
///
/// // Accepted: the handler runs, with rate-limit headers on its response.
/// let req = Request::post("/v1/emails")
///     .header("authorization", format!("Bearer {}", key.plaintext.expose_secret()))
///     .body(String::new())
///     .unwrap();
/// let res = svc.clone().oneshot(req).await.unwrap();
/// assert_eq!(res.status(), StatusCode::OK);
/// assert_eq!(res.headers()["x-ratelimit-limit"], "10");
///
/// // Rejected: the layer answers, the handler never runs.
/// let req = Request::post("/v1/emails").body(String::new()).unwrap();
/// let res = svc.oneshot(req).await.unwrap();
/// assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"ark\"");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ArkAuthLayer<K, L = MemoryRateLimiter, P = Access> {
    store: K,
    limiter: L,
    policy: P,
    options: Options,
}

impl<K: KeyStore + Clone> ArkAuthLayer<K> {
    /// A layer over `store` accepting any valid key of either environment, with the
    /// process-wide in-memory rate limiter ([`MemoryRateLimiter::shared`]) at 10 requests
    /// per second per key.
    ///
    /// One limit per key: every layer built with `new` counts in that one limiter, keyed by
    /// the key's hash, so layers per route (axum's `route_layer`), layers over clones of one
    /// store or over different stores all admit a key's limit once in total. A fleet of
    /// processes shares a limit through a shared limiter instead
    /// ([`rate_limiter`](Self::rate_limiter)).
    pub fn new(store: K) -> Self {
        ArkAuthLayer {
            store,
            limiter: MemoryRateLimiter::shared(),
            policy: Access::any_key(),
            options: Options {
                environments: Environment::Live.bit() | Environment::Test.bit(),
                default_quota: Quota::DEFAULT,
                timeout: DEFAULT_TIMEOUT,
                limiter_failure: LimiterFailure::Allow,
                drain: DrainBound::DEFAULT,
            },
        }
    }
}

impl<K, L, P> ArkAuthLayer<K, L, P> {
    /// Every request needs a key holding all of `permissions`.
    pub fn require(self, permissions: impl Into<Permissions>) -> ArkAuthLayer<K, L, Access> {
        self.policy(Access::require(permissions))
    }

    /// Decides per request what it requires (public, permissions, tenant). See
    /// [`AccessPolicy`].
    pub fn policy<P2: AccessPolicy>(self, policy: P2) -> ArkAuthLayer<K, L, P2> {
        ArkAuthLayer {
            store: self.store,
            limiter: self.limiter,
            policy,
            options: self.options,
        }
    }

    /// Uses another rate limiter (for example a shared one).
    pub fn rate_limiter<L2: RateLimiter + Clone>(self, limiter: L2) -> ArkAuthLayer<K, L2, P> {
        ArkAuthLayer {
            store: self.store,
            limiter,
            policy: self.policy,
            options: self.options,
        }
    }

    /// Accepts only keys of these environments; others get 401 `invalid_api_key`.
    pub fn accept_environments(mut self, environments: &[Environment]) -> Self {
        self.options.environments = environments.iter().fold(0, |acc, e| acc | e.bit());
        self
    }

    /// The limit of keys whose record sets none (default: 10 per second).
    pub fn default_quota(mut self, quota: Quota) -> Self {
        self.options.default_quota = quota;
        self
    }

    /// Deadline for the store lookup and the rate-limit check of one request, counted from
    /// the first time either is not immediately ready (default [`DEFAULT_TIMEOUT`]). Needs a
    /// Tokio runtime with timers; without one, no deadline applies.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = timeout;
        self
    }

    /// What to do when the rate limiter fails (default [`LimiterFailure::Allow`]).
    pub fn on_limiter_failure(mut self, behaviour: LimiterFailure) -> Self {
        self.options.limiter_failure = behaviour;
        self
    }

    /// How much of a refused HTTP/1 request's body the layer reads and discards before it
    /// answers, and for how long it waits for it (defaults [`DEFAULT_DRAIN_LIMIT`](crate::service::DEFAULT_DRAIN_LIMIT), 256 KiB,
    /// and [`DEFAULT_DRAIN_TIMEOUT`](crate::service::DEFAULT_DRAIN_TIMEOUT), 1 second).
    ///
    /// Reading the whole body keeps the keep-alive connection usable for the client's next
    /// request. A body announced larger than `max_bytes` (its `Content-Length`) is not read;
    /// one that turns out larger, arrives too slowly, fails, or whose client waits for
    /// `100 Continue` gets its answer with `Connection: close`, and the connection ends after
    /// the response. HTTP/2 and HTTP/3 bodies are never read: dropping one resets its own
    /// stream only. Accepted requests are not affected. `max_bytes` 0 reads nothing (every
    /// refused request with a body closes its connection).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ark_auth::{ArkAuthLayer, MemoryKeyStore};
    ///
    /// let layer = ArkAuthLayer::new(MemoryKeyStore::new())
    ///     .drain_refused_bodies(64 * 1024, Duration::from_millis(500));
    /// # drop(layer);
    /// ```
    pub fn drain_refused_bodies(mut self, max_bytes: u64, timeout: Duration) -> Self {
        self.options.drain = DrainBound { max_bytes, timeout };
        self
    }
}

impl<S, K: Clone, L: Clone, P: Clone> Layer<S> for ArkAuthLayer<K, L, P> {
    type Service = ArkAuth<S, K, L, P>;

    fn layer(&self, inner: S) -> Self::Service {
        ArkAuth {
            inner,
            shared: Arc::new(Shared {
                store: self.store.clone(),
                limiter: self.limiter.clone(),
                policy: self.policy.clone(),
                options: self.options,
            }),
        }
    }
}

struct Shared<K, L, P> {
    store: K,
    limiter: L,
    policy: P,
    options: Options,
}

/// The service made by [`ArkAuthLayer`].
pub struct ArkAuth<S, K, L = MemoryRateLimiter, P = Access> {
    inner: S,
    shared: Arc<Shared<K, L, P>>,
}

impl<S: Clone, K, L, P> Clone for ArkAuth<S, K, L, P> {
    fn clone(&self) -> Self {
        ArkAuth {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: std::fmt::Debug, K, L, P> std::fmt::Debug for ArkAuth<S, K, L, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArkAuth")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody, K, L, P> Service<Request<B>> for ArkAuth<S, K, L, P>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    B: Body,
    K: KeyStore,
    L: RateLimiter,
    P: AccessPolicy,
{
    type Response = Response<ArkAuthBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B, K, L, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let shared = &*self.shared;
        let (permissions, scope) = match shared.policy.access(&RequestHead::of(&req)) {
            Access::Public => return ResponseFuture::calling(self.inner.call(req), None),
            Access::Key { permissions, scope } => (permissions, scope),
        };
        let token = match bearer_token(req.headers()) {
            Ok(token) => token,
            Err(e) => return ResponseFuture::rejected(Rejection::Credentials(e), req, shared),
        };
        let environment = token.environment();
        if shared.options.environments & environment.bit() == 0 {
            return ResponseFuture::rejected(
                Rejection::EnvironmentNotAccepted(environment),
                req,
                shared,
            );
        }
        let need = Need {
            hash: KeyHash::of(&token),
            permissions,
            scope,
        };
        let found = match catch_unwind(AssertUnwindSafe(|| shared.store.lookup(&need.hash))) {
            Ok(Answer::Now(found)) => found.map_err(Failure::Error),
            Ok(Answer::Later(fut)) => {
                let pending = self.pending(req, need);
                return ResponseFuture::waiting(State::Lookup { fut, pending }, &self.shared);
            }
            Err(_) => Err(Failure::Panic),
        };
        match shared.authorize(found, &need) {
            Authorized::Decided(Decision::Call(key, limit)) => {
                // Everything was answered synchronously: the inner service that was polled
                // ready runs the request, no clone needed.
                req.extensions_mut().insert(key);
                ResponseFuture::calling(self.inner.call(req), limit)
            }
            Authorized::Decided(Decision::Reject(rejection)) => {
                ResponseFuture::rejected(rejection, req, shared)
            }
            Authorized::WaitLimit {
                fut,
                record,
                denied,
            } => {
                let pending = self.pending(req, need);
                ResponseFuture::waiting(
                    State::Limit {
                        fut,
                        pending,
                        record: Some(record),
                        denied,
                    },
                    &self.shared,
                )
            }
        }
    }
}

impl<S: Clone, K, L, P> ArkAuth<S, K, L, P> {
    /// Parks a request that must wait for the store or the limiter, with the inner service
    /// that was polled ready (a clone takes its place, as `tower` recommends).
    fn pending<B>(&mut self, req: Request<B>, need: Need) -> Option<Box<Pending<S, B>>> {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Some(Box::new(Pending { inner, req, need }))
    }
}

/// What the route requires of the key, and the hash of the presented key.
struct Need {
    hash: KeyHash,
    permissions: Permissions,
    scope: KeyScope,
}

/// A request waiting for the store or the limiter (boxed: only asynchronous stores and
/// limiters get here, and the response future stays small for the synchronous path).
struct Pending<S, B> {
    inner: S,
    req: Request<B>,
    need: Need,
}

/// What the rate-limit check leads to.
enum Decision {
    Call(AuthenticatedKey, Option<RateLimitDecision>),
    Reject(Rejection),
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, LF, RF, SF> {
        Lookup { #[pin] fut: LF, pending: Option<Box<Pending<S, B>>> },
        Limit {
            #[pin] fut: RF,
            pending: Option<Box<Pending<S, B>>>,
            record: Option<Arc<KeyRecord>>,
            // A 403 waiting for the key's current limit state, for its headers.
            denied: Option<Rejection>,
        },
        Call { #[pin] fut: SF, limit: Option<RateLimitDecision> },
        Reject {
            rejection: Option<(Rejection, Reply)>,
            // A refused HTTP/1 request's body still to be read (boxed: most refusals have none).
            drain: Option<Pin<Box<Drain<B>>>>,
        },
    }
}

pin_project! {
    /// Response future of [`ArkAuth`].
    pub struct ResponseFuture<S, B, K, L, P>
    where
        S: Service<Request<B>>,
        K: KeyStore,
        L: RateLimiter,
    {
        #[pin]
        state: State<S, B, K::Future, L::Future, S::Future>,
        // Only for a request waiting on the store or the limiter.
        waiting: Option<Waiting<K, L, P>>,
    }
}

struct Waiting<K, L, P> {
    shared: Arc<Shared<K, L, P>>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// Why the store or the limiter did not answer.
#[derive(Debug)]
enum Failure<E> {
    Error(E),
    Timeout,
    Panic,
}

impl<E: std::error::Error + 'static> std::fmt::Display for Failure<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Error(e) => Chain(e).fmt(f),
            Failure::Timeout => f.write_str("timed out"),
            Failure::Panic => f.write_str("panicked"),
        }
    }
}

type Found = Result<Option<Arc<KeyRecord>>, Failure<StoreError>>;
type Checked = Result<RateLimitDecision, Failure<LimiterError>>;

/// The all-zero hash a lookup miss is compared against, so that a miss costs the same
/// constant-time comparison as a hit.
static NO_KEY: KeyHash = KeyHash::from_bytes([0; 32]);

impl<S, B, K, L, P> ResponseFuture<S, B, K, L, P>
where
    S: Service<Request<B>>,
    K: KeyStore,
    L: RateLimiter,
{
    fn calling(fut: S::Future, limit: Option<RateLimitDecision>) -> Self {
        ResponseFuture {
            state: State::Call { fut, limit },
            waiting: None,
        }
    }

    fn rejected<Q>(rejection: Rejection, req: Request<B>, shared: &Shared<K, L, Q>) -> Self
    where
        B: Body,
    {
        ResponseFuture {
            state: reject_state(rejection, req, shared.options.drain),
            waiting: None,
        }
    }

    fn waiting(
        state: State<S, B, K::Future, L::Future, S::Future>,
        shared: &Arc<Shared<K, L, P>>,
    ) -> Self {
        ResponseFuture {
            state,
            waiting: Some(Waiting {
                shared: Arc::clone(shared),
                deadline: None,
            }),
        }
    }
}

fn reject_state<S, B: Body, LF, RF, SF>(
    rejection: Rejection,
    req: Request<B>,
    bound: DrainBound,
) -> State<S, B, LF, RF, SF> {
    let reply = Reply::for_request(req.version(), req.headers());
    // The code and the request id only: never a header, the path or the query string (a
    // client may have put its key there).
    tracing::debug!(
        code = rejection.code().as_str(),
        request_id = reply.id().as_str(),
        "ark-auth: request rejected"
    );
    let body = req.body();
    let drain = match plan(
        req.version(),
        req.headers(),
        body.is_end_stream(),
        body.size_hint().lower(),
        bound,
    ) {
        Plan::Answer => None,
        p => Some(Box::pin(Drain::new(req.into_body(), p, bound))),
    };
    State::Reject {
        rejection: Some((rejection, reply)),
        drain,
    }
}

/// Polls a store or limiter future, turning a panic into [`Failure::Panic`] and a missed
/// deadline into [`Failure::Timeout`].
fn poll_guarded<F, T, E>(
    fut: Pin<&mut F>,
    deadline: &mut Option<Pin<Box<tokio::time::Sleep>>>,
    timeout: Duration,
    cx: &mut Context<'_>,
) -> Poll<Result<T, Failure<E>>>
where
    F: Future<Output = Result<T, E>>,
{
    match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
        Ok(Poll::Ready(r)) => Poll::Ready(r.map_err(Failure::Error)),
        Err(_) => Poll::Ready(Err(Failure::Panic)),
        Ok(Poll::Pending) => {
            if deadline.is_none() {
                *deadline = start_deadline(timeout);
            }
            match deadline.as_mut().map(|sleep| sleep.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Err(Failure::Timeout)),
                _ => Poll::Pending,
            }
        }
    }
}

pub(crate) fn start_deadline(timeout: Duration) -> Option<Pin<Box<tokio::time::Sleep>>> {
    tokio::runtime::Handle::try_current().ok()?;
    // A runtime without timers panics here; then there is no deadline.
    catch_unwind(|| Box::pin(tokio::time::sleep(timeout))).ok()
}

impl<K: KeyStore, L: RateLimiter, P> Shared<K, L, P> {
    /// Verifies a lookup's answer: the key, and the 403 it earns if any; or the 401/503.
    fn verify(
        &self,
        found: Found,
        need: &Need,
    ) -> Result<(Arc<KeyRecord>, Option<Rejection>), Rejection> {
        let found = found.map_err(|e| {
            tracing::error!(error = %e, "ark-auth: key store failed; answering 503");
            Rejection::Unavailable
        })?;
        // Constant time: a miss compares against a dummy, a hit against the stored hash.
        let stored = found.as_ref().map_or(&NO_KEY, |r| r.hash());
        let matches = stored.ct_eq(&need.hash);
        let record = match found {
            Some(r) if matches => r,
            _ => return Err(Rejection::UnknownKey),
        };
        if self.options.environments & record.environment().bit() == 0 {
            return Err(Rejection::EnvironmentNotAccepted(record.environment()));
        }
        if record.is_revoked() {
            return Err(Rejection::Revoked);
        }
        if record
            .expires_at()
            .is_some_and(|at| SystemTime::now() >= at)
        {
            return Err(Rejection::Expired);
        }
        let denied = if !record.permissions().contains_all(need.permissions) {
            Some(Rejection::MissingPermissions {
                missing: record.permissions().missing(need.permissions),
                required: need.permissions,
                limit: None,
            })
        } else {
            match (record.tenant(), &need.scope) {
                (Some(k), KeyScope::Tenant(r)) if k != r => Some(Rejection::OtherTenant {
                    required: need.permissions,
                    limit: None,
                }),
                (Some(_), KeyScope::Organisation) => Some(Rejection::OrganisationOnly {
                    required: need.permissions,
                    limit: None,
                }),
                _ => None,
            }
        };
        Ok((record, denied))
    }

    /// Asks the limiter: acquire for an authorised request, peek for a 403 (its headers).
    fn check_limit(&self, record: &KeyRecord, denied: bool) -> Answer<Checked, L::Future> {
        let quota = record
            .rate_limit()
            .map_or(self.options.default_quota, Quota::per_second);
        let limiter = &self.limiter;
        let answer = catch_unwind(AssertUnwindSafe(|| {
            if denied {
                limiter.peek(record, quota)
            } else {
                limiter.acquire(record, quota)
            }
        }));
        match answer {
            Ok(Answer::Now(checked)) => Answer::Now(checked.map_err(Failure::Error)),
            Ok(Answer::Later(fut)) => Answer::Later(fut),
            Err(_) => Answer::Now(Err(Failure::Panic)),
        }
    }

    /// What the limiter's answer leads to.
    fn decide(
        &self,
        checked: Checked,
        record: Arc<KeyRecord>,
        denied: Option<Rejection>,
    ) -> Decision {
        match (checked, denied) {
            (Ok(d), Some(denied)) => Decision::Reject(with_limit(denied, d)),
            (Ok(d), None) if !d.allowed => Decision::Reject(Rejection::RateLimited(d)),
            (Ok(d), None) => Decision::Call(AuthenticatedKey::with_limit(record, Some(d)), Some(d)),
            // The 403 was decided before the rate limit; only its headers are lost.
            (Err(failure), Some(denied)) => {
                tracing::warn!(key_id = %record.id(), error = %failure, "ark-auth: rate limiter failed; 403 without rate-limit headers");
                Decision::Reject(denied)
            }
            (Err(failure), None) => match self.options.limiter_failure {
                LimiterFailure::Refuse => {
                    tracing::error!(key_id = %record.id(), error = %failure, "ark-auth: rate limiter failed; answering 503");
                    Decision::Reject(Rejection::Unavailable)
                }
                LimiterFailure::Allow => {
                    tracing::warn!(key_id = %record.id(), error = %failure, "ark-auth: rate limiter failed; serving without rate limit");
                    Decision::Call(AuthenticatedKey::with_limit(record, None), None)
                }
            },
        }
    }

    /// Everything after the store's answer that can be decided now: the 401/503, or the
    /// limiter's verdict when it answers at once; otherwise the limiter's future. Shared by
    /// the synchronous path in `call` and the asynchronous one in the response future.
    fn authorize(&self, found: Found, need: &Need) -> Authorized<L::Future> {
        let (record, denied) = match self.verify(found, need) {
            Ok(verified) => verified,
            Err(rejection) => return Authorized::Decided(Decision::Reject(rejection)),
        };
        match self.check_limit(&record, denied.is_some()) {
            Answer::Now(checked) => Authorized::Decided(self.decide(checked, record, denied)),
            Answer::Later(fut) => Authorized::WaitLimit {
                fut,
                record,
                denied,
            },
        }
    }

    /// The state after the store's answer, for a parked request.
    fn after_lookup<S, B>(
        &self,
        found: Found,
        pending: Box<Pending<S, B>>,
    ) -> State<S, B, K::Future, L::Future, S::Future>
    where
        S: Service<Request<B>>,
        B: Body,
    {
        match self.authorize(found, &pending.need) {
            Authorized::Decided(decision) => enter(decision, *pending, self.options.drain),
            Authorized::WaitLimit {
                fut,
                record,
                denied,
            } => State::Limit {
                fut,
                pending: Some(pending),
                record: Some(record),
                denied,
            },
        }
    }
}

/// Where a request stands once the store has answered.
enum Authorized<RF> {
    Decided(Decision),
    WaitLimit {
        fut: RF,
        record: Arc<KeyRecord>,
        denied: Option<Rejection>,
    },
}

/// The state a parked request enters once decided: the inner call, or the rejection.
fn enter<S, B, LF, RF>(
    decision: Decision,
    pending: Pending<S, B>,
    bound: DrainBound,
) -> State<S, B, LF, RF, S::Future>
where
    S: Service<Request<B>>,
    B: Body,
{
    let Pending {
        mut inner, mut req, ..
    } = pending;
    match decision {
        Decision::Call(key, limit) => {
            req.extensions_mut().insert(key);
            State::Call {
                fut: inner.call(req),
                limit,
            }
        }
        Decision::Reject(rejection) => reject_state(rejection, req, bound),
    }
}

impl<S, B, ResBody, K, L, P> Future for ResponseFuture<S, B, K, L, P>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    B: Body,
    K: KeyStore,
    L: RateLimiter,
{
    type Output = Result<Response<ArkAuthBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Call { fut, limit } => {
                    let res = ready!(fut.poll(cx))?;
                    let (mut parts, body) = res.into_parts();
                    if let Some(d) = limit {
                        set_rate_limit_headers(&mut parts.headers, d);
                    }
                    return Poll::Ready(Ok(Response::from_parts(parts, ArkAuthBody::inner(body))));
                }
                StateProj::Reject { rejection, drain } => {
                    let close = match drain {
                        Some(d) => ready!(d.as_mut().poll(cx)) == Drained::Close,
                        None => false,
                    };
                    // The body is dropped before the answer leaves.
                    *drain = None;
                    let (rejection, reply) = rejection.take().expect("polled after completion");
                    let mut res = rejection.into_response(reply);
                    if close {
                        let v = const { HeaderValue::from_static("close") };
                        res.headers_mut().insert(CONNECTION, v);
                    }
                    return Poll::Ready(Ok(res));
                }
                StateProj::Lookup { fut, pending } => {
                    let w = this
                        .waiting
                        .as_mut()
                        .expect("a waiting state has its context");
                    let found: Found = ready!(poll_guarded(
                        fut,
                        &mut w.deadline,
                        w.shared.options.timeout,
                        cx
                    ));
                    let pending = pending.take().expect("lookup state holds the request");
                    w.shared.after_lookup(found, pending)
                }
                StateProj::Limit {
                    fut,
                    pending,
                    record,
                    denied,
                } => {
                    let w = this
                        .waiting
                        .as_mut()
                        .expect("a waiting state has its context");
                    let checked: Checked = ready!(poll_guarded(
                        fut,
                        &mut w.deadline,
                        w.shared.options.timeout,
                        cx
                    ));
                    let pending = pending.take().expect("limit state holds the request");
                    let record = record.take().expect("limit state holds the key");
                    let decision = w.shared.decide(checked, record, denied.take());
                    enter(decision, *pending, w.shared.options.drain)
                }
            };
            this.state.set(next);
        }
    }
}

/// Adds the key's current limit state to a 403.
fn with_limit(rejection: Rejection, d: RateLimitDecision) -> Rejection {
    match rejection {
        Rejection::MissingPermissions {
            missing, required, ..
        } => Rejection::MissingPermissions {
            missing,
            required,
            limit: Some(d),
        },
        Rejection::OtherTenant { required, .. } => Rejection::OtherTenant {
            required,
            limit: Some(d),
        },
        Rejection::OrganisationOnly { required, .. } => Rejection::OrganisationOnly {
            required,
            limit: Some(d),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::generate_key;
    use crate::limit::BoxLimit;
    use crate::limit::LimitResult;
    use crate::store::{BoxLookup, MemoryKeyStore};
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::{ServiceBuilder, ServiceExt};

    /// A store that answers from a memory store after yielding to the runtime (Pending once).
    #[derive(Clone)]
    struct Yielding(MemoryKeyStore);

    impl KeyStore for Yielding {
        type Future = BoxLookup;
        fn lookup(&self, hash: &KeyHash) -> Answer<crate::store::LookupResult, BoxLookup> {
            let answer = self.0.lookup(hash);
            Answer::Later(Box::pin(async move {
                tokio::task::yield_now().await;
                answer.await
            }))
        }
    }

    /// A limiter that yields before answering from a memory limiter.
    #[derive(Clone)]
    struct YieldingLimiter(MemoryRateLimiter);

    impl RateLimiter for YieldingLimiter {
        type Future = BoxLimit;
        fn acquire(&self, key: &KeyRecord, quota: Quota) -> Answer<LimitResult, BoxLimit> {
            let answer = self.0.acquire(key, quota);
            Answer::Later(Box::pin(async move {
                tokio::task::yield_now().await;
                answer.await
            }))
        }
        fn peek(&self, key: &KeyRecord, quota: Quota) -> Answer<LimitResult, BoxLimit> {
            let answer = self.0.peek(key, quota);
            Answer::Later(Box::pin(async move {
                tokio::task::yield_now().await;
                answer.await
            }))
        }
    }

    fn request(token: &str) -> Request<String> {
        Request::get("/")
            .header("authorization", format!("Bearer {token}"))
            .body(String::new())
            .unwrap()
    }

    #[tokio::test]
    async fn pending_store_and_limiter_resume_and_limit() {
        let key = generate_key(Environment::Live).unwrap();
        let store = MemoryKeyStore::from_records([key.record.clone().with_rate_limit(2)]).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let svc = ServiceBuilder::new()
            .layer(
                ArkAuthLayer::new(Yielding(store))
                    .rate_limiter(YieldingLimiter(MemoryRateLimiter::new())),
            )
            .service_fn(move |_req: Request<String>| {
                counter.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, Infallible>(Response::new(String::new())) }
            });
        let token = key.plaintext.expose_secret();
        let mut statuses = Vec::new();
        for _ in 0..3 {
            let res = svc.clone().oneshot(request(token)).await.unwrap();
            statuses.push(res.status().as_u16());
        }
        assert_eq!(statuses, [200, 200, 429]);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let res = svc
            .oneshot(request("ark_live_00000000000000000000"))
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 401);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn hanging_store_times_out_with_503() {
        #[derive(Clone)]
        struct Hang;
        impl KeyStore for Hang {
            type Future = std::future::Pending<crate::store::LookupResult>;
            fn lookup(&self, _: &KeyHash) -> Answer<crate::store::LookupResult, Self::Future> {
                Answer::Later(std::future::pending())
            }
        }
        let svc = ServiceBuilder::new()
            .layer(ArkAuthLayer::new(Hang).timeout(Duration::from_millis(250)))
            .service_fn(|_req: Request<String>| async {
                Ok::<_, Infallible>(Response::new(String::from("must not run")))
            });
        let started = tokio::time::Instant::now();
        let res = svc
            .oneshot(request("ark_live_00000000000000000000"))
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 503);
        assert_eq!(started.elapsed(), Duration::from_millis(250));
        assert_eq!(res.headers()["retry-after"], "1");
    }
}
