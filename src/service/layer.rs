//! [`ArkAuthLayer`]: the builder of the layer and its options.

use std::time::Duration;

use tower_layer::Layer;

use crate::limit::{MemoryRateLimiter, Quota, RateLimiter};
use crate::permission::Permissions;
use crate::policy::{Access, AccessPolicy};
use crate::store::KeyStore;
use crate::token::Environment;

use super::drain::DrainBound;
use super::options::{Environments, Options, DEFAULT_TIMEOUT};
use super::service::ArkAuth;

use super::options::LimiterFailure;

/// Puts Ark API-key authentication in front of a service.
///
/// Per request: reads `Authorization: Bearer ark_…`, looks the key's hash up in the
/// [`KeyStore`], verifies it in constant time, checks revocation, expiry, permissions and
/// tenant, applies the key's rate limit, then either calls the inner service with an
/// [`AuthenticatedKey`](crate::AuthenticatedKey) in the request extensions or answers itself
/// with the JSON error of the contract. It never fails: its error type is the inner
/// service's.
///
/// With [`ArkAuthLayer::request_id_extension`], every request it passes on (public routes
/// too) carries in its extensions the [`RequestId`](crate::RequestId) a rejection would have
/// carried: the client's valid `X-Request-Id`, or a fresh `req_` id, for a handler's own
/// `meta.requestId`.
///
/// ```
/// use std::convert::Infallible;
/// use ark_auth::{generate_key, ArkAuthLayer, AuthenticatedKey, Environment, MemoryKeyStore, Permission, Permissions, RequestId};
/// use http::{Request, Response, StatusCode};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let key = generate_key(Environment::Test).unwrap();
/// let store = MemoryKeyStore::from_records([key.record.with_permissions(Permissions::ALL)]).unwrap();
///
/// let svc = ServiceBuilder::new()
///     .layer(ArkAuthLayer::new(store).require(Permission::EmailsSend).request_id_extension(true))
///     .service_fn(|req: Request<String>| async move {
///         let key = req.extensions().get::<AuthenticatedKey>().unwrap();
///         let id = req.extensions().get::<RequestId>().unwrap();
///         Ok::<_, Infallible>(Response::new(format!("hello {} ({})", key.id(), id.as_str())))
///     });
///
/// // Accepted: the handler runs, with rate-limit headers on its response.
/// let req = Request::post("/v1/emails")
///     .header("authorization", format!("Bearer {}", key.plaintext.expose_secret()))
///     .header("x-request-id", "trace-1")
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
                environments: Environments::ALL,
                default_quota: Quota::DEFAULT,
                timeout: DEFAULT_TIMEOUT,
                limiter_failure: LimiterFailure::Allow,
                drain: DrainBound::DEFAULT,
                request_id: false,
                require_checksum: false,
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
        self.options.environments = Environments::of(environments);
        self
    }

    /// The limit of keys whose record sets none (default: 10 per second).
    pub fn default_quota(mut self, quota: Quota) -> Self {
        self.options.default_quota = quota;
        self
    }

    /// Deadline for the store lookup and the rate-limit check of one request, counted from
    /// the first time either is not immediately ready (default [`DEFAULT_TIMEOUT`]). Needs a
    /// Tokio runtime with timers; without one, no deadline applies (whether the runtime has
    /// timers is found out once, the first time the service needs one).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = timeout;
        self
    }

    /// Puts the [`RequestId`](crate::RequestId) of every request the layer passes on into
    /// its extensions: the id a rejection of it would have carried (the client's valid
    /// `X-Request-Id`, or a fresh `req_` id), for handlers to read instead of recomputing it
    /// (default off).
    ///
    /// Off by default because it costs: checking a client's id against the presented key
    /// (so that no id repeats a part of it) and the extension insert add about 3 600
    /// instructions to an accepted request that carries an `X-Request-Id`, about 45 % of
    /// the layer's own accept path (`benches/callgrind.sh 5_ark_accept_100k`).
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use ark_auth::{ArkAuthLayer, MemoryKeyStore, RequestId, Access};
    /// use http::{Request, Response};
    /// use tower::{ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = ArkAuthLayer::new(MemoryKeyStore::new()).policy(Access::Public);
    /// let svc = ServiceBuilder::new()
    ///     .layer(layer.request_id_extension(true))
    ///     .service_fn(|req: Request<String>| async move {
    ///         let id = req.extensions().get::<RequestId>().unwrap();
    ///         assert_eq!(id.as_str(), "abc-1");
    ///         Ok::<_, Infallible>(Response::new(String::new()))
    ///     });
    /// let req = Request::get("/").header("x-request-id", "abc-1").body(String::new()).unwrap();
    /// assert!(svc.oneshot(req).await.unwrap().status().is_success());
    /// # }
    /// ```
    pub fn request_id_extension(mut self, on: bool) -> Self {
        self.options.request_id = on;
        self
    }

    /// Refuses, before asking the key store, every token whose last characters are not its
    /// checksum ([`has_valid_checksum`](crate::key::has_valid_checksum)), with the same
    /// 401 `invalid_api_key` (body and headers) as an unknown key (default off).
    ///
    /// For deployments whose keys are all minted by [`generate_key`](crate::generate_key):
    /// a mistyped or random token then costs no store lookup, so a flood of made-up tokens
    /// never reaches the database. Keys imported from elsewhere usually carry no checksum
    /// and are refused while this is on; with it off they keep working.
    ///
    /// Timing: the checksum is computed from the presented token alone, never from a stored
    /// key. A token with a wrong checksum is refused sooner than one that reaches the store,
    /// and that difference tells a client only what it can compute itself; the
    /// constant-time guarantees about stored keys are unchanged.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use ark_auth::{generate_key, ArkAuthLayer, Environment, MemoryKeyStore};
    /// use http::{Request, Response, StatusCode};
    /// use tower::{ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let key = generate_key(Environment::Live).unwrap();
    /// let store = MemoryKeyStore::from_records([key.record]).unwrap();
    /// let svc = ServiceBuilder::new()
    ///     .layer(ArkAuthLayer::new(store).require_checksum(true))
    ///     .service_fn(|_req: Request<String>| async {
    ///         Ok::<_, Infallible>(Response::new(String::new()))
    ///     });
    /// let call = |token: String| {
    ///     let req = Request::get("/").header("authorization", format!("Bearer {token}"));
    ///     svc.clone().oneshot(req.body(String::new()).unwrap())
    /// };
    /// let ok = call(key.plaintext.expose_secret().to_owned()).await.unwrap();
    /// assert_eq!(ok.status(), StatusCode::OK);
    /// // Well-formed, but no checksum: refused without a lookup.
    /// let made_up = call("ark_live_0123456789abcdefghijklmnopqrstuvwxyzAB".to_owned()).await.unwrap();
    /// assert_eq!(made_up.status(), StatusCode::UNAUTHORIZED);
    /// # }
    /// ```
    pub fn require_checksum(mut self, on: bool) -> Self {
        self.options.require_checksum = on;
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
        ArkAuth::new(
            inner,
            self.store.clone(),
            self.limiter.clone(),
            self.policy.clone(),
            self.options,
        )
    }
}
