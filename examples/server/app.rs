//! The whole application: the routes, the router's fallbacks, one auth layer over all of
//! it, and the request log outside.

use ark_auth::{
    limit::{MemoryRateLimiter, Quota, RateLimiter},
    store::KeyStore,
    ArkAuthLayer, MemoryKeyStore,
};
use axum::Router;

use super::emails::AppState;
use super::handlers::{method_not_allowed, not_found};
use super::log::log_request;
use super::routes::{route_table, routes};

/// Limit of keys whose record sets none (the contract's default, 10 per second).
pub const DEFAULT_QUOTA: Quota = Quota::DEFAULT;

/// The whole demo application: routes, the auth layer, the request log.
pub fn app(store: MemoryKeyStore) -> Router {
    app_with(store, MemoryRateLimiter::new())
}

/// The demo application on any key store and rate limiter (PostgreSQL and Redis for a
/// fleet).
pub fn app_with<K, L>(store: K, limiter: L) -> Router
where
    K: KeyStore + Clone,
    L: RateLimiter + Clone,
{
    let state = AppState::default();
    let auth = ArkAuthLayer::new(store)
        .rate_limiter(limiter)
        .default_quota(DEFAULT_QUOTA)
        .policy(route_table());
    routes()
        .into_iter()
        .fold(Router::new(), |router, r| {
            router.route(r.pattern, r.handler)
        })
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        // One layer for everything, routes and fallbacks alike; the policy decides per request.
        .layer(auth)
        .layer(axum::middleware::from_fn(log_request))
}
