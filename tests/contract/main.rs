//! The wire contract (/work/shared/ark-auth-contract.md, sections 1-6) over real TCP, each
//! row against both an axum 0.8 app and a plain hyper 1 server, with a raw HTTP/1.1 client
//! that writes request bytes exactly as given.
//!
//! Every response that goes through `send_req`/`send_raw` is also checked for secret
//! hygiene (no token, no token body, in the body or any header) and for "never a 500".
//!
//! One module per section of the contract: `credentials` (1), `outcomes` and `fail_closed`
//! (2), `error_body` (3), `headers` (4), `permissions` (5), `secrets` (6); `support` holds
//! the shared harness (keys, servers, raw requests, response checks).

#[path = "../common/mod.rs"]
mod common;

mod credentials;
mod error_body;
mod fail_closed;
mod headers;
mod outcomes;
mod permissions;
mod secrets;
mod support;
