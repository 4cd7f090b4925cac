//! API-key authentication for any tower service: axum, hyper, tonic-style stacks, gateways.
//!
//! [`ArkAuthLayer`] reads `Authorization: Bearer ark_live_…` / `ark_test_…`, verifies the key
//! in constant time against a pluggable async [`KeyStore`], checks the permissions the route
//! requires, applies the key's rate limit, and either calls the inner service with the
//! [`AuthenticatedKey`] in the request extensions or answers itself with the JSON error of
//! the Ark wire contract (401, 403, 429, 503).
//!
//! ```
//! use std::convert::Infallible;
//! use ark_auth::{generate_key, ArkAuthLayer, Environment, MemoryKeyStore, Permission};
//! use http::{Request, Response, StatusCode};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let key = generate_key(Environment::Live).unwrap();
//! let record = key.record.clone().with_permissions(Permission::EmailsSend.into());
//! let store = MemoryKeyStore::from_records([record]).unwrap();
//! let app = ServiceBuilder::new()
//!     .layer(ArkAuthLayer::new(store).require(Permission::EmailsSend))
//!     .service_fn(|_req: Request<String>| async { Ok::<_, Infallible>(Response::new(String::from("sent"))) });
//!
//! let ok = Request::post("/v1/emails")
//!     .header("authorization", format!("Bearer {}", key.plaintext.expose_secret()))
//!     .body(String::new()).unwrap();
//! assert_eq!(app.clone().oneshot(ok).await.unwrap().status(), StatusCode::OK);
//!
//! let bad = Request::post("/v1/emails")
//!     .header("authorization", "Bearer ark_live_0000000000000000000000")
//!     .body(String::new()).unwrap();
//! let res = app.oneshot(bad).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(res.headers()["content-type"], "application/json");
//! # }
//! ```
//!
//! # Cargo features
//!
//! - `serde`: the JSON keys-file loader (module `keys_file`).
//! - `axum`: [`AuthenticatedKey`] as an axum extractor; [`RouteTable`] reads the path of
//!   axum's `OriginalUri` (the full path, also behind `nest`).
//! - `cache`: the verification cache `cache::CachedKeyStore` in front of any store.
//! - `postgres`: the PostgreSQL key store `postgres::PostgresKeyStore` with its schema,
//!   revocation listener and `last_used_at` tracking (enables `cache`).
//! - `redis`: `redis::RedisRateLimiter`, a rate limiter shared by a fleet through Redis.
//!
//! On docs.rs every feature is on, and each item says which feature it needs.

#![deny(unsafe_code, unreachable_pub)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod answer;
mod authenticated;
mod key;
mod permission;
mod policy;
mod rate_limit;
mod redact;
mod response;
mod route_path;
mod route_table;
pub mod service;
mod store;
// The crate path the response writers use for the layer's body.
use service::body;
mod token;

#[cfg(feature = "cache")]
pub mod cache;
#[cfg(feature = "axum")]
mod extract;
#[cfg(feature = "serde")]
mod json_members;
#[cfg(feature = "serde")]
pub mod keys_file;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;

pub use answer::{Answer, AnswerFuture};
pub use authenticated::AuthenticatedKey;
#[cfg(feature = "axum")]
pub use extract::MissingAuthenticatedKey;
pub use key::{
    generate_key, GeneratedKey, InvalidKeyHash, KeyGenError, KeyHash, KeyRecord, PlaintextKey,
    GENERATED_BODY_LEN,
};
pub use permission::{Permission, Permissions, UnknownPermission};
pub use policy::{Access, AccessPolicy, KeyScope, RequestHead};
pub use rate_limit::{
    BoxLimit, LimitResult, LimiterError, MemoryRateLimiter, Quota, RateLimitDecision, RateLimiter,
};
pub use redact::repeats_credentials;
pub use response::{
    ErrorCode, RequestId, X_RATELIMIT_LIMIT, X_RATELIMIT_REMAINING, X_RATELIMIT_RESET, X_REQUEST_ID,
};
pub use route_table::{Methods, RouteTable, RouteTableBuilder, RouteTableError};
pub use service::{
    ArkAuth, ArkAuthBody, ArkAuthLayer, LimiterFailure, ResponseFuture, DEFAULT_DRAIN_LIMIT,
    DEFAULT_DRAIN_TIMEOUT, DEFAULT_TIMEOUT,
};
pub use store::{BoxLookup, DuplicateKey, KeyStore, LookupResult, MemoryKeyStore, StoreError};
pub use token::{
    bearer_token, parse_authorization, CredentialError, Environment, Token, UnknownEnvironment,
    MAX_BODY_LEN, MIN_BODY_LEN,
};
