//! The middleware itself: [`ArkAuthLayer`] (the builder), the [`ArkAuth`] service it makes,
//! its [`ResponseFuture`] and its [`ArkAuthBody`].
//!
//! A request's way through it: `service` reads the policy and the credential and asks the
//! store and the limiter; `decide` turns their answers into a call or a rejection (plain
//! functions over plain data); `future` waits for whatever answers later; `guard` turns a
//! panic or a missed deadline into a failure; `drain` reads a refused HTTP/1 body so that its
//! connection survives; `body` is the response body, the inner service's or the layer's own.

pub(crate) mod body;
mod decide;
pub(crate) mod drain;
mod future;
mod guard;
mod identity;
mod layer;
mod limits;
mod options;
pub(crate) mod report;
#[allow(clippy::module_inception)]
mod service;
mod shared;

pub use body::ArkAuthBody;
pub use drain::{DEFAULT_DRAIN_LIMIT, DEFAULT_DRAIN_TIMEOUT};
pub use future::ResponseFuture;
pub use identity::IdentityHeaders;
pub use layer::ArkAuthLayer;
pub use options::{LimiterFailure, DEFAULT_TIMEOUT};
pub use service::ArkAuth;
