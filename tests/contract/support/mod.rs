//! The shared harness of the contract tests: keys, servers, raw requests and response
//! checks.

mod checks;
mod keys;
mod requests;
mod servers;

pub use checks::*;
pub use keys::*;
pub use requests::*;
pub use servers::*;
