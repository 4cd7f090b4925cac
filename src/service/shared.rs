//! [`Shared`]: what every clone of one service holds, and the step after the store's answer
//! that the synchronous path (`call`) and the asynchronous one (the response future) share.

use std::time::SystemTime;

use http::Request;

use crate::answer::Answer;
use crate::authenticated::AuthenticatedKey;
use crate::limit::RateLimiter;
use crate::response::RequestId;
use crate::store::KeyStore;

use super::decide::{self, Checked, Decision, Found, Need, Verified};
use super::guard::{catch_panic, Failure, Timers};
use super::options::Options;

/// What every clone of one service shares: the store, the limiter, the policy, the options,
/// and what is known of the runtime's timers.
pub(crate) struct Shared<K, L, P> {
    pub(super) store: K,
    pub(super) limiter: L,
    pub(super) policy: P,
    pub(crate) options: Options,
    pub(crate) timers: Timers,
}

impl<K, L, P> Shared<K, L, P> {
    pub(super) fn new(store: K, limiter: L, policy: P, options: Options) -> Self {
        Shared {
            store,
            limiter,
            policy,
            options,
            timers: Timers::default(),
        }
    }
}

/// What the inner service gets with a request: the request's id (the one a rejection would
/// have carried) when the layer hands it on, and, unless the route is public, the key.
pub(crate) fn pass_on<B>(req: &mut Request<B>, key: Option<AuthenticatedKey>, request_id: bool) {
    if request_id {
        let id = RequestId::from_headers(req.headers());
        req.extensions_mut().insert(id);
    }
    let extensions = req.extensions_mut();
    if let Some(key) = key {
        extensions.insert(key);
    }
}

/// Where a request stands once the store has answered.
pub(crate) enum Authorized<RF> {
    Decided(Decision),
    WaitLimit { fut: RF, verified: Verified },
}

impl<K: KeyStore, L: RateLimiter, P> Shared<K, L, P> {
    /// Everything after the store's answer that can be decided now: the 401/503, or the
    /// limiter's verdict when it answers at once; otherwise the limiter's future. Shared by
    /// the synchronous path in `call` and the asynchronous one in the response future.
    pub(crate) fn authorize(&self, found: Found, need: &Need) -> Authorized<L::Future> {
        let environments = self.options.environments;
        let verified = match decide::verify(found, need, environments, SystemTime::now) {
            Ok(verified) => verified,
            Err(rejection) => return Authorized::Decided(Decision::Reject(rejection)),
        };
        let record = &*verified.record;
        let quota = decide::quota(record, self.options.default_quota);
        // Acquire for an authorised request, peek for a 403 (its headers).
        let answer = catch_panic(|| match verified.denied {
            Some(_) => self.limiter.peek(record, &quota),
            None => self.limiter.acquire(record, &quota),
        });
        match answer {
            Some(Answer::Now(checked)) => {
                Authorized::Decided(self.settle(checked.map_err(Failure::Error), verified))
            }
            Some(Answer::Later(fut)) => Authorized::WaitLimit { fut, verified },
            None => Authorized::Decided(self.settle(Err(Failure::Panic), verified)),
        }
    }

    /// What the limiter's answer leads to.
    pub(crate) fn settle(&self, checked: Checked, verified: Verified) -> Decision {
        decide::settle(checked, verified, self.options.limiter_failure)
    }
}
