//! An error and its sources on one line, for logs: `key store failed: pool timed out: …`.
//!
//! Errors of this crate print only their own message and return their cause from
//! `source()` (the Rust API guidelines); a log line that printed only the outer message
//! would lose the cause, so the layer logs errors through [`Chain`].

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its sources, separated by `": "`.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn Error + 'static));

/// What [`Chain`] can show: every error, and [`StoreError`](crate::store::StoreError), which
/// is not an `Error` itself (so that any error converts into it) but holds one.
pub(crate) trait AsError {
    fn as_error(&self) -> &(dyn Error + 'static);
}

impl<E: Error + 'static> AsError for E {
    fn as_error(&self) -> &(dyn Error + 'static) {
        self
    }
}

impl AsError for crate::store::StoreError {
    fn as_error(&self) -> &(dyn Error + 'static) {
        self.as_ref()
    }
}

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::LimiterError;
    use crate::store::StoreError;

    #[derive(Debug, thiserror::Error)]
    #[error("pool timed out")]
    struct Pool(#[source] std::io::Error);

    #[test]
    fn each_message_once_outermost_first() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let store = StoreError::new(Pool(io));
        assert_eq!(
            Chain(store.as_error()).to_string(),
            "key store failed: pool timed out: connection refused"
        );
        let limiter = LimiterError::new("redis did not answer");
        assert_eq!(
            Chain(&limiter).to_string(),
            "rate limiter failed: redis did not answer"
        );
    }
}
