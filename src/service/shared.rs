//! [`Shared`]: what every clone of one service holds, and the step after the store's answer
//! that the synchronous path (`call`) and the asynchronous one (the response future) share.

use std::time::SystemTime;

use http::header::{HeaderValue, AUTHORIZATION};
use http::Request;

use crate::answer::Answer;
use crate::authenticated::AuthenticatedKey;
use crate::limit::RateLimiter;
use crate::response::RequestId;
use crate::store::KeyStore;

use super::decide::{self, Checked, Decision, Found, Need, Verified};
use super::guard::{catch_panic, Failure, Timers};
use super::options::Options;
use super::report::{self, Outcome, Step, Stopwatch};

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
/// have carried) and, when one authenticated, the key, in its extensions; without the
/// client's `Authorization` header when credentials are hidden; with the identity headers
/// (and without the client's copies of them) when they are on. Returns the id's header value
/// for the response when the layer puts `X-Request-Id` there.
pub(crate) fn pass_on<B>(
    req: &mut Request<B>,
    key: Option<AuthenticatedKey>,
    id: RequestId,
    options: &Options,
) -> Option<HeaderValue> {
    let headers = req.headers_mut();
    if options.hide_credentials {
        headers.remove(AUTHORIZATION);
    }
    if let Some(identity) = &options.identity {
        identity.apply(headers, key.as_ref());
    }
    if let Some(key) = &key {
        report::decided(Outcome::Accepted, Some(key.id()), &id, options);
    }
    let echo = options.request_id_header.then(|| id.header_value());
    let extensions = req.extensions_mut();
    extensions.insert(id);
    if let Some(key) = key {
        extensions.insert(key);
    }
    echo
}

/// Where a request stands once the store has answered.
pub(crate) enum Authorized<RF> {
    Decided(Decision),
    WaitLimit {
        fut: RF,
        verified: Verified,
        watch: Stopwatch,
    },
}

impl<K: KeyStore, L: RateLimiter, P> Shared<K, L, P> {
    /// Everything after the store's answer that can be decided now: the 401/503, or the
    /// limiter's verdict when it answers at once; otherwise the limiter's future. Shared by
    /// the synchronous path in `call` and the asynchronous one in the response future.
    pub(crate) fn authorize(&self, found: Found, need: &Need) -> Authorized<L::Future> {
        let environments = self.options.environments;
        let verified = match decide::verify(found, need, environments, SystemTime::now) {
            Ok(verified) => verified,
            Err((rejection, key)) => return Authorized::Decided(Decision::Reject(rejection, key)),
        };
        let record = &*verified.record;
        let quota = decide::quota(record, &self.options.default_quotas);
        // Acquire for an authorised request, peek for a 403 (its headers).
        let watch = Stopwatch::start();
        let answer = catch_panic(|| match verified.denied {
            Some(_) => self.limiter.peek(record, &quota),
            None => self.limiter.acquire(record, &quota),
        });
        let checked = match answer {
            Some(Answer::Now(checked)) => checked.map_err(Failure::Error),
            Some(Answer::Later(fut)) => {
                return Authorized::WaitLimit {
                    fut,
                    verified,
                    watch,
                }
            }
            None => Err(Failure::Panic),
        };
        watch.stop(Step::Limiter, false);
        Authorized::Decided(self.settle(checked, verified))
    }

    /// What the limiter's answer leads to.
    pub(crate) fn settle(&self, checked: Checked, verified: Verified) -> Decision {
        decide::settle(
            checked,
            verified,
            &self.options.default_quotas,
            self.options.limiter_failure,
        )
    }
}
