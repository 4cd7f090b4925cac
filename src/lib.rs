//! API-key authentication for any tower service: axum, hyper, tonic-style stacks, gateways.
//!
//! [`ArkAuthLayer`] reads `Authorization: Bearer ark_live_…` / `ark_test_…`, verifies the key
//! in constant time against a pluggable async [`KeyStore`](store::KeyStore), checks the permissions the route
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
//! # Where things are
//!
//! An application needs the names at the root: the layer ([`ArkAuthLayer`], its service
//! [`ArkAuth`], [`LimiterFailure`]), what a route requires ([`Access`], [`AccessPolicy`],
//! [`RouteTable`]), what a handler sees ([`AuthenticatedKey`], [`RequestId`]), keys and their
//! permissions ([`generate_key`], [`Environment`], [`Permission`], [`Permissions`]) and the
//! in-memory [`MemoryKeyStore`]. The rest is grouped by who uses it:
//!
//! - [`key`]: key hashes, records and generation, for whoever provisions keys;
//! - [`token`]: the `Authorization: Bearer` grammar;
//! - [`permission`]: the permissions and their set;
//! - [`policy`]: access policies and the route table's parts;
//! - [`store`]: the [`KeyStore`](store::KeyStore) trait and its answer, for store authors;
//! - [`limit`]: the [`RateLimiter`](limit::RateLimiter) trait, quotas and decisions, and the
//!   in-memory limiter, for limiter authors;
//! - [`response`]: the codes and headers of the rejections the layer writes;
//! - [`service`]: the layer's response future and body, and its default bounds.
//!
//! # Cargo features
//!
//! - `serde`: the JSON keys-file loader (module `keys_file`).
//! - `reload`: `keys_file::watch`, reloading a keys file into a running `MemoryKeyStore`
//!   on SIGHUP and when the file changes (enables `serde`).
//! - `axum`: [`AuthenticatedKey`] as an axum extractor; [`RouteTable`] reads the path of
//!   axum's `OriginalUri` (the full path, also behind `nest`).
//! - `cache`: the verification cache `cache::CachedKeyStore` in front of any store.
//! - `postgres`: the PostgreSQL key store `postgres::PostgresKeyStore` with its schema,
//!   revocation listener and `last_used_at` tracking (enables `cache`).
//! - `redis`: `redis::RedisRateLimiter`, a rate limiter shared by a fleet through Redis.
//! - `metrics`: the layer's counters and histogram (module `metrics`) on the `metrics`
//!   facade, for any exporter.
//!
//! On docs.rs every feature is on, and each item says which feature it needs.

#![deny(unsafe_code, unreachable_pub)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod answer;
mod authenticated;
mod chain;
mod outcome;
mod redact;

pub mod either;
pub mod key;
pub mod limit;
pub mod permission;
pub mod policy;
pub mod response;
pub mod service;
pub mod store;
pub mod token;
// The crate path the response writers use for the layer's body.
use service::body;

#[cfg(feature = "cache")]
pub mod cache;
#[cfg(feature = "serde")]
mod json_members;
#[cfg(feature = "serde")]
pub mod keys_file;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;

pub use authenticated::AuthenticatedKey;
#[cfg(feature = "axum")]
pub use authenticated::MissingAuthenticatedKey;
pub use either::Either;
pub use key::generate_key;
pub use outcome::Refusal;
pub use permission::{Permission, Permissions};
pub use policy::{Access, AccessPolicy, RouteTable};
pub use response::RequestId;
pub use service::{ArkAuth, ArkAuthLayer, LimiterFailure};
pub use store::MemoryKeyStore;
pub use token::Environment;
