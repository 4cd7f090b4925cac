//! [`ArkAuth`], the service the layer makes: `call` moves a request between the policy, the
//! store, the limiter and the decisions of [`decide`](super::decide), and hands the outcome
//! to the [`ResponseFuture`].

use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::answer::Answer;
use crate::key::{token_has_valid_checksum, KeyHash};
use crate::limit::{MemoryRateLimiter, RateLimiter};
use crate::policy::{Access, AccessPolicy, RequestHead};
use crate::response::{Rejection, RequestId};
use crate::store::KeyStore;
use crate::token::bearer_token;

use super::body::ArkAuthBody;
use super::decide::{Decision, Need};
use super::future::{Parked, ResponseFuture};
use super::guard::{catch_panic, Failure};
use super::options::Options;
use super::report::{self, Outcome, Step, Stopwatch};
use super::shared::{pass_on, Authorized, Shared};

/// The service made by [`ArkAuthLayer`](crate::ArkAuthLayer).
///
/// Like tower-http's services it gives access to the service it wraps:
///
/// ```
/// use ark_auth::{ArkAuthLayer, MemoryKeyStore};
/// use tower::Layer;
///
/// let mut svc = ArkAuthLayer::new(MemoryKeyStore::new()).layer(String::from("inner"));
/// assert_eq!(svc.get_ref(), "inner");
/// svc.get_mut().push_str(" service");
/// assert_eq!(svc.into_inner(), "inner service");
/// ```
pub struct ArkAuth<S, K, L = MemoryRateLimiter, P = Access> {
    inner: S,
    shared: Arc<Shared<K, L, P>>,
}

impl<S, K, L, P> ArkAuth<S, K, L, P> {
    pub(crate) fn new(inner: S, store: K, limiter: L, policy: P, options: Options) -> Self {
        let shared = Shared::new(store, limiter, policy, options);
        ArkAuth {
            inner,
            shared: Arc::new(shared),
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Takes the inner service out, dropping the layer's part.
    pub fn into_inner(self) -> S {
        self.inner
    }
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
            Access::Public => return self.without_key(req, Outcome::Public),
            Access::Optional { .. } if !req.headers().contains_key(AUTHORIZATION) => {
                return self.without_key(req, Outcome::Anonymous)
            }
            Access::Key { permissions, scope } | Access::Optional { permissions, scope } => {
                (permissions, scope)
            }
        };
        let token = match bearer_token(req.headers()) {
            Ok(token) => token,
            Err(e) => {
                let rejection = Rejection::Credentials(e);
                return ResponseFuture::reject(rejection, req, shared, None, None);
            }
        };
        let environment = token.environment();
        if !shared.options.environments.accepts(environment) {
            let rejection = Rejection::EnvironmentNotAccepted(environment);
            return ResponseFuture::reject(rejection, req, shared, None, None);
        }
        // Depends on the token only: refusing here says nothing about any stored key.
        if shared.options.require_checksum && !token_has_valid_checksum(&token) {
            return ResponseFuture::reject(Rejection::UnknownKey, req, shared, None, None);
        }
        let id = RequestId::for_token(req.headers(), &token);
        let need = Need {
            hash: KeyHash::of(&token),
            permissions,
            scope,
        };
        let watch = Stopwatch::start();
        let found = match catch_panic(|| shared.store.lookup(&need.hash)) {
            Some(Answer::Now(found)) => found.map_err(Failure::Error),
            Some(Answer::Later(fut)) => {
                let parked = self.park(req, need, id, watch.parked());
                return ResponseFuture::lookup(fut, parked);
            }
            None => Err(Failure::Panic),
        };
        watch.stop(Step::Lookup, false);
        match shared.authorize(found, &need) {
            Authorized::Decided(Decision::Call(key, limit)) => {
                // Everything was answered synchronously: the inner service that was polled
                // ready runs the request, no clone needed.
                let echo = pass_on(&mut req, Some(key), id, &shared.options);
                ResponseFuture::call(self.inner.call(req), limit, echo)
            }
            Authorized::Decided(Decision::Reject(rejection, key)) => {
                ResponseFuture::reject(rejection, req, shared, Some(id), key)
            }
            Authorized::WaitLimit {
                fut,
                verified,
                watch,
            } => ResponseFuture::limit(fut, self.park(req, need, id, watch), verified),
        }
    }
}

impl<S, K, L, P> ArkAuth<S, K, L, P> {
    /// Passes a request on without a key (a public route, or an optional one without
    /// credentials).
    fn without_key<B, ResBody>(
        &mut self,
        mut req: Request<B>,
        outcome: Outcome,
    ) -> ResponseFuture<S, B, K, L, P>
    where
        S: Service<Request<B>, Response = Response<ResBody>>,
        K: KeyStore,
        L: RateLimiter,
    {
        let id = RequestId::from_headers(req.headers());
        report::decided(outcome, None, &id, &self.shared.options);
        let echo = pass_on(&mut req, None, id, &self.shared.options);
        ResponseFuture::call(self.inner.call(req), None, echo)
    }
}

impl<S: Clone, K, L, P> ArkAuth<S, K, L, P> {
    /// Parks a request that must wait for the store or the limiter, with the inner service
    /// that was polled ready (a clone takes its place, as `tower` recommends).
    fn park<B>(
        &mut self,
        req: Request<B>,
        need: Need,
        id: RequestId,
        watch: Stopwatch,
    ) -> Box<Parked<S, B, K, L, P>> {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Parked::new(inner, req, need, id, watch, Arc::clone(&self.shared))
    }
}
