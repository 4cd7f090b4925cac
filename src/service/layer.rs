//! [`ArkAuthLayer`]: the builder of the layer and its options.

use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use crate::limit::{MemoryRateLimiter, Quota, Quotas};
use crate::permission::Permissions;
use crate::policy::{Access, AccessPolicy};
use crate::store::KeyStore;
use crate::token::Environment;

use super::drain::DrainBound;
use super::identity::IdentityHeaders;
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
/// Every request it passes on (public routes too) carries in its extensions the
/// [`RequestId`](crate::RequestId) a rejection would have carried (the client's valid
/// `X-Request-Id`, or a fresh `req_` id), for a handler's own `meta.requestId`, and the
/// response gets it as `X-Request-Id` ([`request_id_header`](Self::request_id_header)). The
/// client's `Authorization` header is removed before the inner service runs
/// ([`hide_credentials`](Self::hide_credentials)). Every response the layer writes itself
/// carries a [`Refusal`](crate::Refusal) in its extensions, for outer layers.
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
///     .layer(ArkAuthLayer::new(store).require(Permission::EmailsSend))
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
    pub(super) store: K,
    pub(super) limiter: L,
    pub(super) policy: P,
    pub(super) options: Options,
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
                default_quotas: Quotas::one(Quota::DEFAULT),
                timeout: DEFAULT_TIMEOUT,
                limiter_failure: LimiterFailure::Allow,
                drain: DrainBound::DEFAULT,
                request_id_header: true,
                hide_credentials: true,
                identity: None,
                #[cfg(feature = "metrics")]
                metrics_per_key: false,
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

    /// Accepts only keys of these environments; others get 401 `invalid_api_key`.
    pub fn accept_environments(mut self, environments: &[Environment]) -> Self {
        self.options.environments = Environments::of(environments);
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

    /// Whether the layer puts `X-Request-Id` on the responses of the inner service (default
    /// on): the id of the request's [`RequestId`](crate::RequestId) extension, so a client
    /// can quote it whatever the answer. A response that already has an `X-Request-Id` (the
    /// handler set one) keeps it.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use ark_auth::{Access, ArkAuthLayer, MemoryKeyStore};
    /// use http::{Request, Response};
    /// use tower::{ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let handler = |_req: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) };
    /// let req = || Request::get("/").header("x-request-id", "abc-1").body(String::new()).unwrap();
    /// let layer = ArkAuthLayer::new(MemoryKeyStore::new()).policy(Access::Public);
    ///
    /// let on = ServiceBuilder::new().layer(layer.clone()).service_fn(handler);
    /// assert_eq!(on.oneshot(req()).await.unwrap().headers()["x-request-id"], "abc-1");
    /// let off = ServiceBuilder::new().layer(layer.request_id_header(false)).service_fn(handler);
    /// assert!(off.oneshot(req()).await.unwrap().headers().get("x-request-id").is_none());
    /// # }
    /// ```
    pub fn request_id_header(mut self, on: bool) -> Self {
        self.options.request_id_header = on;
        self
    }

    /// Whether the layer removes the client's `Authorization` header from every request it
    /// passes on (default on), so that the secret stays at the edge: neither a handler nor
    /// an upstream behind a gateway ever sees it (for gRPC this is the `authorization`
    /// metadata, the same HTTP/2 header). A handler reads the key from the request's
    /// [`AuthenticatedKey`](crate::AuthenticatedKey) extension instead.
    ///
    /// Public routes lose the header too. Turn this off only when something behind the
    /// layer reads another scheme from `Authorization` (a `Basic` login on a public route).
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use ark_auth::{generate_key, ArkAuthLayer, AuthenticatedKey, Environment, MemoryKeyStore};
    /// use http::{Request, Response};
    /// use tower::{ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let key = generate_key(Environment::Test).unwrap();
    /// let store = MemoryKeyStore::from_records([key.record.clone()]).unwrap();
    /// let svc = ServiceBuilder::new()
    ///     .layer(ArkAuthLayer::new(store))
    ///     .service_fn(|req: Request<String>| async move {
    ///         assert!(req.headers().get("authorization").is_none());
    ///         assert!(req.extensions().get::<AuthenticatedKey>().is_some());
    ///         Ok::<_, Infallible>(Response::new(String::new()))
    ///     });
    /// let req = Request::get("/")
    ///     .header("authorization", format!("Bearer {}", key.plaintext.expose_secret()))
    ///     .body(String::new())
    ///     .unwrap();
    /// assert!(svc.oneshot(req).await.unwrap().status().is_success());
    /// # }
    /// ```
    pub fn hide_credentials(mut self, on: bool) -> Self {
        self.options.hide_credentials = on;
        self
    }

    /// Sets headers naming the caller's key on every request the layer passes on, after
    /// removing every copy of those names the client sent (default: none set, none removed).
    /// See [`IdentityHeaders`] for the names, the values and their encoding.
    ///
    /// For a gateway, whose upstream knows the caller only by its headers. An application
    /// does not need them: its handlers read the
    /// [`AuthenticatedKey`](crate::AuthenticatedKey) extension, which no client can forge
    /// (and with this off, a header such as `x-ark-key-id` is whatever the client sent).
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use ark_auth::service::IdentityHeaders;
    /// use ark_auth::{generate_key, ArkAuthLayer, Environment, MemoryKeyStore};
    /// use http::{Request, Response};
    /// use tower::{ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let key = generate_key(Environment::Live).unwrap();
    /// let record = key.record.clone().with_name("billing").with_tenant("tn_42");
    /// let store = MemoryKeyStore::from_records([record]).unwrap();
    /// let upstream = |req: Request<String>| async move {
    ///     let h = req.headers();
    ///     assert_eq!(h.get_all("x-ark-key-id").iter().count(), 1);
    ///     assert_ne!(h["x-ark-key-id"], "key_admin");
    ///     assert_eq!(h["x-ark-key-name"], "billing");
    ///     assert_eq!(h["x-ark-environment"], "live");
    ///     assert_eq!(h["x-ark-tenant"], "tn_42");
    ///     Ok::<_, Infallible>(Response::new(String::new()))
    /// };
    /// let gateway = ServiceBuilder::new()
    ///     .layer(ArkAuthLayer::new(store).identity_headers(IdentityHeaders::default()))
    ///     .service_fn(upstream);
    /// let req = Request::get("/")
    ///     .header("authorization", format!("Bearer {}", key.plaintext.expose_secret()))
    ///     .header("X-Ark-Key-Id", "key_admin") // made up by the client: removed
    ///     .body(String::new())
    ///     .unwrap();
    /// assert!(gateway.oneshot(req).await.unwrap().status().is_success());
    /// # }
    /// ```
    pub fn identity_headers(mut self, headers: IdentityHeaders) -> Self {
        self.options.identity = Some(Arc::new(headers));
        self
    }

    /// Whether the request counter of [`crate::metrics`] carries a `key_id` label on
    /// requests whose key is known (default off: one series per key and outcome, which a
    /// deployment with many keys may not want to store).
    ///
    /// ```
    /// use ark_auth::{ArkAuthLayer, MemoryKeyStore};
    ///
    /// let layer = ArkAuthLayer::new(MemoryKeyStore::new()).metrics_per_key(true);
    /// # drop(layer);
    /// ```
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn metrics_per_key(mut self, on: bool) -> Self {
        self.options.metrics_per_key = on;
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
            self.options.clone(),
        )
    }
}
