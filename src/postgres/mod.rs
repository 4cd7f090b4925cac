//! Keys in PostgreSQL: [`PostgresKeyStore`], its schema ([`SCHEMA`], [`PostgresKeyStore::migrate`]),
//! the revocation listener ([`RevocationListener`]) and `last_used_at` tracking.
//!
//! # Client and pool
//!
//! [`tokio_postgres`], the async PostgreSQL client of the tokio ecosystem (its connection
//! also yields the asynchronous `NOTIFY` messages the revocation listener needs), behind a
//! [`deadpool_postgres`] pool, the pool most used with it: small, async, per-connection
//! statement cache (the lookup is prepared once per connection, then one round trip), and
//! wait/create timeouts so a dead database answers an error instead of hanging. sqlx was the
//! alternative; its compile-time query machinery and larger dependency tree buy nothing for
//! one table.
//!
//! # TLS
//!
//! `sslmode` and `sslrootcert` in the URL (`?sslmode=verify-full&sslrootcert=/etc/ca.pem`,
//! or `sslmode=verify-full sslrootcert=/etc/ca.pem` in the key=value form) mean what they
//! mean to libpq, for the pool and the revocation listener alike, through rustls (feature
//! `postgres-tls`):
//!
//! | `sslmode` | TLS | server certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (the default) | when the server offers it | not checked, unless roots are given (then as `verify-ca`) |
//! | `require` | always | not checked (encrypted, not authenticated), unless roots are given (then as `verify-ca`) |
//! | `verify-ca` | always | signed by a root of `sslrootcert`; any host name |
//! | `verify-full` | always | signed by a root of `sslrootcert` and issued for the host (name or IP address) |
//!
//! `sslrootcert` is a PEM file of trusted roots, or `system` for the system's (then
//! `sslmode` must be `verify-full`, and is by default, as in libpq 16); without it, libpq's
//! `~/.postgresql/root.crt` is used when it exists, and `verify-ca`/`verify-full` fail
//! without roots. Unlike libpq, an `sslrootcert` file that cannot be read is an error in
//! every mode but `disable` (libpq skips the check in `prefer`/`require`). `allow` is not
//! supported. There is no channel binding (SCRAM without `-PLUS`; `channel_binding=require`
//! fails) and no client certificate. Without the `postgres-tls` feature, `prefer` connects
//! in plain text and every mode that needs TLS is refused. A certificate that fails the
//! check fails the connection: lookups answer [`StoreError`] and the layer 503.
//!
//! # Schema
//!
//! One table, `ark_api_keys`, keyed by `id` with a unique index on `key_hash` (the SHA-256
//! of the token, 32 bytes): the lookup is one indexed query by hash. Plaintext keys never
//! reach the database: every write takes a [`KeyRecord`], which holds only the hash.
//! Permissions are stored by their wire names (`text[]`); an unknown name, an unknown
//! environment or malformed metadata makes the lookup fail with a [`StoreError`] (the layer
//! answers 503 and logs it), never a silently granted or dropped permission. Any database
//! error is a [`StoreError`] too: the store fails closed.
//!
//! # Revocation within a second
//!
//! A trigger on `ark_api_keys` calls `pg_notify('ark_api_keys', <hash in hex>)` for every
//! inserted, updated (except `last_used_at` alone) or deleted row, when the transaction
//! commits; `TRUNCATE` notifies `*`. Hashes are not secrets (the token cannot be recovered
//! from them). A [`RevocationListener`] per instance holds a dedicated connection that
//! `LISTEN`s and invalidates the entry of the notified hash in the instance's
//! [`CachedKeyStore`], so a revoke, an expiry change or a delete, made through any instance
//! or directly in SQL, reaches every instance in the time of one notification (a few
//! milliseconds on a LAN; the fleet test measures it).
//!
//! When the listen connection fails (or a 1-second health query on it does not answer within
//! 2 s), the listener reconnects with exponential backoff (100 ms to 5 s) and invalidates the
//! whole cache as soon as `LISTEN` is re-established, because notifications sent meanwhile
//! are lost. While it is down, the cache keeps serving what it holds (so a database outage
//! does not turn every cached key into a 503), and the cache's positive TTL
//! ([`CacheConfig::positive_ttl`], 30 s by default) is the bound on how long a revoked key may
//! still be accepted by an instance that had it cached: that is the documented backstop.
//! Lower the TTL to tighten it, at the cost of more queries.
//!
//! # `last_used_at`
//!
//! Recorded off the request path: a found key is noted in a bounded channel with `try_send`
//! (a full channel drops the note; nothing on the request path ever waits for the database),
//! at most once per key per [`PostgresOptions::usage_interval`], and a background task writes
//! the notes of each interval in one `UPDATE`.
//!
//! ```no_run
//! use ark_auth::postgres::PostgresKeyStore;
//! use ark_auth::cache::CacheConfig;
//! use ark_auth::{generate_key, ArkAuthLayer, Environment, Permissions};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresKeyStore::connect("postgres://ark:secret@db/ark").await?;
//! store.migrate().await?;
//! let key = generate_key(Environment::Live)?;
//! store.create(&key.record.clone().with_permissions(Permissions::ALL)).await?;
//! println!("your key (shown once): {}", key.plaintext.expose_secret());
//!
//! let cached = store.clone().cached(CacheConfig::default());
//! let _listener = store.listen(cached.invalidator());
//! let layer = ArkAuthLayer::new(cached);
//! // Later: revoke; every instance refuses the key within a second.
//! store.revoke(key.record.id()).await?;
//! # let _ = layer; Ok(()) }
//! ```

mod admin;
mod connect;
mod listener;
mod lookup;
#[cfg(feature = "postgres-tls")]
mod rustls;
mod sql;
mod store;
mod tls;
mod usage;

use std::time::{Duration, SystemTime};

#[cfg(doc)]
use crate::cache::{CacheConfig, CachedKeyStore};
use crate::key::KeyRecord;
#[cfg(doc)]
use crate::store::StoreError;

pub use connect::ConnectionSettings;
pub use listener::RevocationListener;
pub use store::PostgresKeyStore;

/// The channel the trigger notifies on.
pub const CHANNEL: &str = "ark_api_keys";

/// The schema: the keys table, its hash index, and the notify trigger. Idempotent (safe to
/// apply at every start, from several instances at once: [`PostgresKeyStore::migrate`]
/// serializes it with an advisory lock).
pub const SCHEMA: &str = include_str!("schema.sql");

/// Tuning of a [`PostgresKeyStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostgresOptions {
    /// Connections in the pool (default 16).
    pub pool_size: usize,
    /// How long a lookup waits for a pooled connection or for a new connection to be made
    /// before failing (default 2 s). The layer's own timeout also applies.
    pub connect_timeout: Duration,
    /// `last_used_at` is written at most once per key per this interval (default 60 s).
    pub usage_interval: Duration,
    /// Notes of use waiting to be written; beyond it they are dropped (default 4096).
    pub usage_buffer: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 16,
            connect_timeout: Duration::from_secs(2),
            usage_interval: Duration::from_secs(60),
            usage_buffer: 4096,
        }
    }
}

/// A key as [`PostgresKeyStore::list`] shows it: the record (hash, never a secret) and its
/// bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredKey {
    /// The record.
    pub record: KeyRecord,
    /// When the row was created.
    pub created_at: SystemTime,
    /// The last recorded use (at most one interval old, see the module docs).
    pub last_used_at: Option<SystemTime>,
}
