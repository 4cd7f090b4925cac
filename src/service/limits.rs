//! The rate-limit settings of [`ArkAuthLayer`]: which limiter, the limits of keys whose
//! record sets none, and what a failing limiter leads to.

use crate::limit::{Quota, Quotas, RateLimiter};

use super::layer::ArkAuthLayer;
use super::options::LimiterFailure;

impl<K, L, P> ArkAuthLayer<K, L, P> {
    /// Uses another rate limiter (for example a shared one).
    pub fn rate_limiter<L2: RateLimiter + Clone>(self, limiter: L2) -> ArkAuthLayer<K, L2, P> {
        ArkAuthLayer {
            store: self.store,
            limiter,
            policy: self.policy,
            options: self.options,
        }
    }

    /// The limit of keys whose record sets none (default: 10 per second): the same as
    /// [`default_quotas`](Self::default_quotas)`(Quotas::from(quota))`.
    pub fn default_quota(self, quota: Quota) -> Self {
        self.default_quotas(Quotas::from(quota))
    }

    /// The limits of keys whose record sets none, each with its window (default: 10 per
    /// second alone). A key without limits of its own is checked against every one of
    /// them exactly as against a record's own several limits: admitted only if the request
    /// fits all, then counted in all; a 429 names the refusing window ("Rate limit
    /// exceeded: 10000 requests per day") and gives its `Retry-After`; the `X-RateLimit-*`
    /// headers describe the window closest to refusing. A key with limits of its own (even
    /// one) is checked against those alone: they replace the defaults entirely, no default
    /// window is added to them.
    ///
    /// Memory: with the in-memory limiter, a key checked against several windows keeps its
    /// state on the heap: about 218 bytes per active key for 10 per second and 10 000 per
    /// day, against 54 for the single default of 10 per second (at 100 000 active keys).
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use ark_auth::limit::Quotas;
    /// use ark_auth::{generate_key, ArkAuthLayer, Environment, MemoryKeyStore, Permissions};
    /// use http::{Request, Response, StatusCode};
    /// use tower::{ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let plain = generate_key(Environment::Test).unwrap();
    /// let own = generate_key(Environment::Test).unwrap();
    /// let own_limits: Quotas = "100/s".parse().unwrap();
    /// let store = MemoryKeyStore::from_records([
    ///     plain.record.with_permissions(Permissions::ALL),
    ///     own.record.with_permissions(Permissions::ALL).with_rate_limits(own_limits),
    /// ])
    /// .unwrap();
    /// // 10 per second and 2 per day for every key whose record sets no limit.
    /// let defaults: Quotas = "10/s,2/d".parse().unwrap();
    /// let svc = ServiceBuilder::new()
    ///     .layer(ArkAuthLayer::new(store).default_quotas(defaults))
    ///     .service_fn(|_req: Request<String>| async {
    ///         Ok::<_, Infallible>(Response::new(String::new()))
    ///     });
    /// let call = |token: &str| {
    ///     let req = Request::get("/v1/emails")
    ///         .header("authorization", format!("Bearer {token}"))
    ///         .body(String::new())
    ///         .unwrap();
    ///     svc.clone().oneshot(req)
    /// };
    ///
    /// let plain = plain.plaintext.expose_secret();
    /// let res = call(plain).await.unwrap();
    /// assert_eq!(res.status(), StatusCode::OK);
    /// // The day is closest to refusing: its headers.
    /// assert_eq!(res.headers()["x-ratelimit-limit"], "2");
    /// assert_eq!(res.headers()["x-ratelimit-remaining"], "1");
    /// call(plain).await.unwrap();
    /// let refused = call(plain).await.unwrap();
    /// assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    ///
    /// // A key with its own limit has that limit alone: no daily default.
    /// for _ in 0..3 {
    ///     let res = call(own.plaintext.expose_secret()).await.unwrap();
    ///     assert_eq!(res.status(), StatusCode::OK);
    ///     assert_eq!(res.headers()["x-ratelimit-limit"], "100");
    /// }
    /// # }
    /// ```
    pub fn default_quotas(mut self, quotas: Quotas) -> Self {
        self.options.default_quotas = quotas;
        self
    }

    /// What to do when the rate limiter fails (default [`LimiterFailure::Allow`]).
    pub fn on_limiter_failure(mut self, behaviour: LimiterFailure) -> Self {
        self.options.limiter_failure = behaviour;
        self
    }
}
