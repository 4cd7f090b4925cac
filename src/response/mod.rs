//! The responses the layer writes itself: the JSON envelope of contract section 3 (or its
//! gRPC form) and the headers of section 4; and [`error_body`], the same envelope for an
//! application's own errors.
//!
//! - `contract`: the codes, messages, suggestions and `WWW-Authenticate` texts, one table;
//! - `rejection`: why the layer refused a request, and the response it builds for it;
//! - `json`, `grpc`, `headers`, `request_id`: the pieces of that response;
//! - `values`: the only caches and per-thread buffers, each with a plain fallback.

mod contract;
mod grpc;
mod headers;
mod json;
mod rejection;
mod request_id;
mod values;

pub use contract::{ErrorCode, UnknownErrorCode};
pub(crate) use headers::set_accepted_headers;
#[cfg(test)]
pub(crate) use headers::set_rate_limit_headers;
pub use headers::{X_RATELIMIT_LIMIT, X_RATELIMIT_REMAINING, X_RATELIMIT_RESET, X_REQUEST_ID};
pub use json::error_body;
pub(crate) use rejection::{Limits, Rejection, Reply};
pub use request_id::RequestId;

#[cfg(test)]
mod forms_tests;
#[cfg(test)]
mod tests;
