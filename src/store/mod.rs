//! Where keys live: the [`KeyStore`] trait a store implements, what a lookup yields, and
//! the in-memory [`MemoryKeyStore`].

mod memory;
mod shards;

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;

use crate::key::{KeyHash, KeyRecord};

pub use crate::answer::{Answer, AnswerFuture, MapFuture};
pub use memory::KeyChanges;
pub use memory::MemoryKeyStore;

/// What a lookup yields: the record, `None` for no such key, or the store's failure.
pub type LookupResult = Result<Option<Arc<KeyRecord>>, StoreError>;

/// A boxed lookup future, for stores that do real I/O.
pub type BoxLookup = Pin<Box<dyn Future<Output = LookupResult> + Send + 'static>>;

/// A pluggable, async source of key records.
///
/// # Shape of the trait
///
/// A store answers one question: which record has this [`KeyHash`]? The answer separates
/// "no such key" (`Ok(None)`, a 401) from "the store failed" (`Err`, a 503).
///
/// The answer is an [`Answer`]: either the result now, or a future. The future is named as
/// an associated type, like `tower::Service`'s, rather than returned as `impl Future`
/// (axum-login's shape) or always boxed (tower-sessions' shape): the layer's response
/// future must name it to stay unboxed. The in-memory store always answers now and costs
/// nothing; an async store (a database) answers later with a [`BoxLookup`], whose
/// allocation is noise next to its round trip. The future is `'static`: a store clones what
/// it needs (a pool handle) into it. `dyn KeyStore<Future = BoxLookup>` is object-safe for
/// those who want dynamic dispatch.
///
/// ```
/// use std::sync::Arc;
/// use ark_auth::key::{KeyHash, KeyRecord};
/// use ark_auth::store::{Answer, BoxLookup, KeyStore, LookupResult, StoreError};
///
/// /// A store that asks some remote service.
/// #[derive(Clone)]
/// struct RemoteStore;
///
/// impl KeyStore for RemoteStore {
///     type Future = BoxLookup;
///     fn lookup(&self, hash: &KeyHash) -> Answer<LookupResult, BoxLookup> {
///         let hash = *hash;
///         Answer::Later(Box::pin(async move {
///             // ... query by `hash`; map a transport failure to StoreError ...
///             let _ = hash;
///             Ok::<Option<Arc<KeyRecord>>, StoreError>(None)
///         }))
///     }
/// }
/// ```
///
/// A complete store: the crate's `examples/custom_store.rs` (keys in SQLite).
pub trait KeyStore: Send + Sync + 'static {
    /// The future of a lookup answered later.
    type Future: Future<Output = LookupResult> + Send + 'static;

    /// Finds the record whose hash is `hash`. `Ok(None)` when no key matches; `Err` only
    /// when the store could not answer. The layer verifies the returned record's hash in
    /// constant time, so a store may select by a prefix or an index.
    fn lookup(&self, hash: &KeyHash) -> Answer<LookupResult, Self::Future>;
}

impl<K: KeyStore + ?Sized> KeyStore for Arc<K> {
    type Future = K::Future;
    fn lookup(&self, hash: &KeyHash) -> Answer<LookupResult, Self::Future> {
        (**self).lookup(hash)
    }
}

/// A key store that could not answer. Never contains a key.
///
/// Its `Display` is "key store failed"; the store's own error is its
/// [`source`](std::error::Error::source), so a report that walks the chain shows each once
/// (the layer's logs do).
///
/// ```
/// use std::error::Error;
/// use ark_auth::store::StoreError;
///
/// let e = StoreError::new("connection refused");
/// assert_eq!(e.to_string(), "key store failed");
/// assert_eq!(e.source().unwrap().to_string(), "connection refused");
/// ```
///
/// # From any error, with `?`
///
/// Every error type (`E: Error + Send + Sync + 'static`) converts into a `StoreError`, so a
/// store's code uses `?` on its driver's results. As with `anyhow::Error`, that is possible
/// only because `StoreError` does not itself implement [`Error`] (the
/// blanket conversion would otherwise overlap `From<T> for T`). It derefs to one (`&*e` is
/// a `&dyn Error` with the same message and source) and converts into
/// `Box<dyn Error + Send + Sync>` and `Box<dyn Error>`, so `?` still carries it out of a
/// function returning those.
///
/// ```
/// use std::error::Error;
/// use ark_auth::store::StoreError;
///
/// fn parse_limit(column: &str) -> Result<u32, StoreError> {
///     Ok(column.parse::<u32>()?) // ParseIntError -> StoreError
/// }
///
/// fn main() -> Result<(), Box<dyn Error>> {
///     let e = parse_limit("ten").unwrap_err();
///     assert_eq!(e.to_string(), "key store failed");
///     assert_eq!(e.source().unwrap().to_string(), "invalid digit found in string");
///     assert_eq!(parse_limit("10")?, 10); // StoreError -> Box<dyn Error>
///     Ok(())
/// }
/// ```
pub struct StoreError(Failed);

/// The `Error` a [`StoreError`] derefs to.
#[derive(Debug, thiserror::Error)]
#[error("key store failed")]
struct Failed {
    source: Box<dyn Error + Send + Sync>,
}

impl StoreError {
    /// Wraps the store's own error. It must not contain a key (stores see only hashes).
    pub fn new(source: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        StoreError(Failed {
            source: source.into(),
        })
    }
}

impl<E: Error + Send + Sync + 'static> From<E> for StoreError {
    fn from(e: E) -> Self {
        StoreError::new(e)
    }
}

impl Deref for StoreError {
    type Target = dyn Error + Send + Sync + 'static;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl AsRef<dyn Error + Send + Sync + 'static> for StoreError {
    fn as_ref(&self) -> &(dyn Error + Send + Sync + 'static) {
        &self.0
    }
}

impl AsRef<dyn Error + 'static> for StoreError {
    fn as_ref(&self) -> &(dyn Error + 'static) {
        &self.0
    }
}

impl From<StoreError> for Box<dyn Error + Send + Sync + 'static> {
    fn from(e: StoreError) -> Self {
        Box::new(e.0)
    }
}

impl From<StoreError> for Box<dyn Error + Send + 'static> {
    fn from(e: StoreError) -> Self {
        Box::new(e.0)
    }
}

impl From<StoreError> for Box<dyn Error + 'static> {
    fn from(e: StoreError) -> Self {
        Box::new(e.0)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreError")
            .field("source", &self.0.source)
            .finish()
    }
}

/// A key with this hash or id is already in the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DuplicateKey {
    /// Two records with the same hash (the same token).
    #[error("duplicate key (record {id:?} has the same hash as an earlier one)")]
    Hash {
        /// The id of the later record.
        id: String,
    },
    /// Two records with the same id.
    #[error("duplicate key id {id:?}")]
    Id {
        /// The repeated id.
        id: String,
    },
}
