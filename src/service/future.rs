//! [`ResponseFuture`]: a request's way after `call`, as a small state machine. It waits for
//! the store, then the limiter (when they answer later), then runs the inner service or
//! answers the rejection (after draining a refused HTTP/1 body).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::header::{HeaderValue, CONNECTION};
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::key::KeyRecord;
use crate::limit::{RateLimitDecision, RateLimiter};
use crate::outcome::Refusal;
use crate::response::{set_accepted_headers, Rejection, Reply, RequestId};
use crate::store::KeyStore;

use super::body::ArkAuthBody;
use super::decide::{Checked, Decision, Found, Need, Verified};
use super::drain::{plan, Drain, Drained, Plan};
use super::guard::{poll_guarded, Deadline};
use super::report::{self, Outcome, Step, Stopwatch};
use super::shared::{pass_on, Authorized, Shared};

/// A request waiting for the store or the limiter, with the inner service that was polled
/// ready for it (boxed: only asynchronous stores and limiters get here, and the response
/// future stays small for the synchronous path).
pub(crate) struct Parked<S, B, K, L, P> {
    inner: S,
    req: Request<B>,
    need: Need,
    id: RequestId,
    // Times what the request waits for (the store's answer, then the limiter's).
    watch: Stopwatch,
    shared: Arc<Shared<K, L, P>>,
    // One deadline for the store and the limiter together.
    deadline: Deadline,
}

impl<S, B, K, L, P> Parked<S, B, K, L, P> {
    pub(crate) fn new(
        inner: S,
        req: Request<B>,
        need: Need,
        id: RequestId,
        watch: Stopwatch,
        shared: Arc<Shared<K, L, P>>,
    ) -> Box<Self> {
        let deadline = Deadline::new(shared.options.timeout, shared.timers.clock());
        Box::new(Parked {
            inner,
            req,
            need,
            id,
            watch,
            shared,
            deadline,
        })
    }
}

type Park<S, B, K, L, P> = Box<Parked<S, B, K, L, P>>;

pin_project! {
    #[project = StateProj]
    #[project_replace = StateOwn]
    enum State<S, B, K, L, P, LF, RF, SF> {
        Lookup { #[pin] fut: LF, parked: Park<S, B, K, L, P> },
        Limit { #[pin] fut: RF, parked: Park<S, B, K, L, P>, verified: Verified },
        // `echo`: the `X-Request-Id` for the response, unless the inner service sets one.
        Call { #[pin] fut: SF, limit: Option<RateLimitDecision>, echo: Option<HeaderValue> },
        Reject {
            rejection: Rejection,
            reply: Reply,
            // The key the store found, for the response's `Refusal`.
            key: Option<Arc<KeyRecord>>,
            // A refused HTTP/1 request's body still to be read (boxed: most refusals have none).
            drain: Option<Pin<Box<Drain<B>>>>,
        },
        Done,
    }
}

pin_project! {
    /// Response future of [`ArkAuth`](crate::ArkAuth).
    pub struct ResponseFuture<S, B, K, L, P>
    where
        S: Service<Request<B>>,
        K: KeyStore,
        L: RateLimiter,
    {
        #[pin]
        state: State<S, B, K, L, P, K::Future, L::Future, S::Future>,
    }
}

/// What the state that was just polled has been waiting for.
enum Ready {
    Found(Found),
    Checked(Checked),
    Drained(Drained),
}

impl<S, B, K, L, P> ResponseFuture<S, B, K, L, P>
where
    S: Service<Request<B>>,
    K: KeyStore,
    L: RateLimiter,
{
    /// The inner service runs the request; `limit` and `echo` (the `X-Request-Id`) go into
    /// its response's headers.
    pub(crate) fn call(
        fut: S::Future,
        limit: Option<RateLimitDecision>,
        echo: Option<HeaderValue>,
    ) -> Self {
        ResponseFuture {
            state: State::Call { fut, limit, echo },
        }
    }

    /// The layer answers `rejection`, with the request's id when it is known already.
    pub(crate) fn reject(
        rejection: Rejection,
        req: Request<B>,
        shared: &Shared<K, L, P>,
        id: Option<RequestId>,
        key: Option<Arc<KeyRecord>>,
    ) -> Self
    where
        B: Body,
    {
        ResponseFuture {
            state: reject_state(rejection, req, shared, id, key),
        }
    }

    /// The request waits for the store's answer.
    pub(crate) fn lookup(fut: K::Future, parked: Park<S, B, K, L, P>) -> Self {
        ResponseFuture {
            state: State::Lookup { fut, parked },
        }
    }

    /// The request waits for the limiter's answer.
    pub(crate) fn limit(fut: L::Future, parked: Park<S, B, K, L, P>, verified: Verified) -> Self {
        ResponseFuture {
            state: State::Limit {
                fut,
                parked,
                verified,
            },
        }
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
        let mut state = self.project().state;
        loop {
            // Poll what the state waits for; nothing moves yet.
            let ready = match state.as_mut().project() {
                StateProj::Call { fut, limit, echo } => {
                    let (mut parts, body) = ready!(fut.poll(cx))?.into_parts();
                    set_accepted_headers(&mut parts.headers, limit.as_ref(), echo.take());
                    return Poll::Ready(Ok(Response::from_parts(parts, ArkAuthBody::inner(body))));
                }
                StateProj::Lookup { fut, parked } => {
                    Ready::Found(ready!(poll_guarded(fut, &mut parked.deadline, cx)))
                }
                StateProj::Limit { fut, parked, .. } => {
                    Ready::Checked(ready!(poll_guarded(fut, &mut parked.deadline, cx)))
                }
                StateProj::Reject { drain, .. } => Ready::Drained(match drain {
                    Some(d) => ready!(d.as_mut().poll(cx)),
                    None => Drained::Whole,
                }),
                StateProj::Done => panic!("polled after completion"),
            };
            // Move the state's data on to the next state (the body of a refused request is
            // dropped here, before the answer leaves).
            let next = match (state.as_mut().project_replace(State::Done), ready) {
                (StateOwn::Lookup { mut parked, .. }, Ready::Found(found)) => {
                    std::mem::take(&mut parked.watch).stop(Step::Lookup, true);
                    after_lookup(found, parked)
                }
                (
                    StateOwn::Limit {
                        mut parked,
                        verified,
                        ..
                    },
                    Ready::Checked(checked),
                ) => {
                    std::mem::take(&mut parked.watch).stop(Step::Limiter, true);
                    let decision = parked.shared.settle(checked, verified);
                    enter(decision, *parked)
                }
                (
                    StateOwn::Reject {
                        rejection,
                        reply,
                        key,
                        ..
                    },
                    Ready::Drained(drained),
                ) => {
                    return Poll::Ready(Ok(answer(rejection, reply, key, drained)));
                }
                // `ready` came from the state just replaced, so the pairs above are the only
                // ones; any other would stop here as `Done`.
                _ => State::Done,
            };
            state.set(next);
        }
    }
}

type StateOf<S, B, K, L, P> = State<
    S,
    B,
    K,
    L,
    P,
    <K as KeyStore>::Future,
    <L as RateLimiter>::Future,
    <S as Service<Request<B>>>::Future,
>;

/// The state after the store's answer, for a parked request.
fn after_lookup<S, B, K, L, P>(
    found: Found,
    mut parked: Park<S, B, K, L, P>,
) -> StateOf<S, B, K, L, P>
where
    S: Service<Request<B>>,
    B: Body,
    K: KeyStore,
    L: RateLimiter,
{
    match parked.shared.authorize(found, &parked.need) {
        Authorized::Decided(decision) => enter(decision, *parked),
        Authorized::WaitLimit {
            fut,
            verified,
            watch,
        } => {
            parked.watch = watch;
            State::Limit {
                fut,
                parked,
                verified,
            }
        }
    }
}

/// The state a parked request enters once decided: the inner call, or the rejection.
fn enter<S, B, K, L, P>(decision: Decision, parked: Parked<S, B, K, L, P>) -> StateOf<S, B, K, L, P>
where
    S: Service<Request<B>>,
    B: Body,
    K: KeyStore,
    L: RateLimiter,
{
    let Parked {
        mut inner,
        mut req,
        shared,
        id,
        ..
    } = parked;
    match decision {
        Decision::Call(key, limit) => {
            let echo = pass_on(&mut req, Some(key), id, &shared.options);
            State::Call {
                fut: inner.call(req),
                limit,
                echo,
            }
        }
        Decision::Reject(rejection, key) => reject_state(rejection, req, &shared, Some(id), key),
    }
}

/// The state of a refused request: its answer, and the drain of its body if it needs one.
fn reject_state<S, B: Body, K, L, P, LF, RF, SF>(
    rejection: Rejection,
    req: Request<B>,
    shared: &Shared<K, L, P>,
    id: Option<RequestId>,
    key: Option<Arc<KeyRecord>>,
) -> State<S, B, K, L, P, LF, RF, SF> {
    let reply = Reply::with_id(req.version(), req.headers(), id);
    // The code, the key's id and the request id only: never a header, the path or the query
    // string (a client may have put its key there).
    let outcome = Outcome::Refused(rejection.code());
    let key_id = key.as_deref().map(KeyRecord::id);
    report::decided(outcome, key_id, reply.id(), &shared.options);
    let bound = shared.options.drain;
    let body = req.body();
    let drain = match plan(
        req.version(),
        req.headers(),
        body.is_end_stream(),
        body.size_hint().lower(),
        bound,
    ) {
        Plan::Answer => None,
        p => {
            let clock = shared.timers.clock();
            Some(Box::pin(Drain::new(req.into_body(), p, bound, clock)))
        }
    };
    State::Reject {
        rejection,
        reply,
        key,
        drain,
    }
}

/// The layer's answer to a refused request, with its [`Refusal`]; `Connection: close` when
/// its body could not be read.
fn answer<B>(
    rejection: Rejection,
    reply: Reply,
    key: Option<Arc<KeyRecord>>,
    drained: Drained,
) -> Response<ArkAuthBody<B>> {
    let refusal = Refusal::new(rejection.code(), key, reply.id().clone());
    let mut res = rejection.into_response(reply);
    res.extensions_mut().insert(refusal);
    if drained == Drained::Close {
        let v = const { HeaderValue::from_static("close") };
        res.headers_mut().insert(CONNECTION, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::Answer;
    use crate::key::{generate_key, KeyHash, KeyRecord};
    use crate::limit::BoxLimit;
    use crate::limit::{LimitResult, MemoryRateLimiter, Quotas};
    use crate::service::ArkAuthLayer;
    use crate::store::{BoxLookup, MemoryKeyStore};
    use crate::token::Environment;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
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
        fn acquire(&self, key: &KeyRecord, quota: &Quotas) -> Answer<LimitResult, BoxLimit> {
            let answer = self.0.acquire(key, quota);
            Answer::Later(Box::pin(async move {
                tokio::task::yield_now().await;
                answer.await
            }))
        }
        fn peek(&self, key: &KeyRecord, quota: &Quotas) -> Answer<LimitResult, BoxLimit> {
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
