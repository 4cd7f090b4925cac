//! [`PostgresKeyStore`]: the pool, the schema migration and the store's counters.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use deadpool_postgres::{ManagerConfig, Pool, RecyclingMethod, Runtime};

use super::sql::{err, MIGRATION_LOCK};
use super::usage::Usage;
use super::{ConnectionSettings, PostgresOptions, RevocationListener, SCHEMA};
use crate::cache::{CacheConfig, CacheInvalidator, CachedKeyStore};
use crate::key::KeyRecord;
use crate::store::StoreError;

/// A [`KeyStore`](crate::store::KeyStore) on PostgreSQL. See the [module documentation](super).
///
/// Cloning shares the pool, the counters and the `last_used_at` writer.
#[derive(Clone)]
pub struct PostgresKeyStore {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pool: Pool,
    /// For the listener's dedicated connection (`None` when built from a foreign pool).
    settings: Option<ConnectionSettings>,
    pub(super) lookups: AtomicU64,
    usage: Usage,
}

impl fmt::Debug for PostgresKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresKeyStore")
            .field("lookups", &self.lookup_queries())
            .finish_non_exhaustive()
    }
}

impl PostgresKeyStore {
    /// A store on the database at `url` (`postgres://user:password@host:port/db`, or the
    /// key=value form; `sslmode` and `sslrootcert` as in libpq, see [TLS](super#tls)),
    /// with default [`PostgresOptions`]. Connections are made lazily; call
    /// [`PostgresKeyStore::migrate`] to apply the schema (and check the database answers).
    /// Must be called inside a tokio runtime (it starts the `last_used_at` writer).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// [`PostgresKeyStore::connect`] with options.
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let mut settings = ConnectionSettings::from_url(url)?;
        let config = settings.config_mut();
        config.connect_timeout(options.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("ark-auth");
        }
        let manager = settings.manager(ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        });
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(err)?;
        Ok(Self::build(pool, Some(settings), options))
    }

    /// A store on a pool built elsewhere (say, with [`ConnectionSettings::manager`] and
    /// pool settings of your own). [`PostgresKeyStore::listen`] is then unavailable (it
    /// needs the connection settings); use [`RevocationListener::spawn_with`] with them. Must be called inside a tokio runtime (it
    /// starts the `last_used_at` writer).
    pub fn from_pool(pool: Pool, options: PostgresOptions) -> Self {
        Self::build(pool, None, options)
    }

    fn build(pool: Pool, settings: Option<ConnectionSettings>, options: PostgresOptions) -> Self {
        let usage = Usage::start(pool.clone(), options);
        PostgresKeyStore {
            inner: Arc::new(Inner {
                pool,
                settings,
                lookups: AtomicU64::new(0),
                usage,
            }),
        }
    }

    pub(super) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.inner.pool.get().await.map_err(err)
    }

    /// Applies [`SCHEMA`] in one transaction, under an advisory lock. Idempotent.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(err)?;
        // No "already exists, skipping" notices in the application's log.
        tx.batch_execute("SET LOCAL client_min_messages = warning")
            .await
            .map_err(err)?;
        tx.batch_execute(SCHEMA).await.map_err(err)?;
        tx.commit().await.map_err(err)
    }

    /// How many lookup queries this store (and its clones) sent to the database.
    pub fn lookup_queries(&self) -> u64 {
        self.inner.lookups.load(Ordering::Relaxed)
    }

    /// Rows written by the `last_used_at` writer so far (one per key per write).
    pub fn usage_writes(&self) -> u64 {
        self.inner.usage.state.rows.load(Ordering::Relaxed)
    }

    /// Notes of use dropped because the writer's buffer was full.
    pub fn usage_dropped(&self) -> u64 {
        self.inner.usage.state.dropped.load(Ordering::Relaxed)
    }

    /// Notes that `record`'s key was used now (at most one note per key per interval;
    /// never waits). Lookups call it for the keys they find; a cache in front calls it for
    /// its hits (see [`PostgresKeyStore::cached`]).
    pub fn record_use(&self, record: &KeyRecord) {
        self.inner.usage.note(record.hash());
    }

    /// This store behind a [`CachedKeyStore`] whose hits also record `last_used_at`.
    pub fn cached(self, config: CacheConfig) -> CachedKeyStore<PostgresKeyStore> {
        let usage = self.clone();
        CachedKeyStore::with_found_hook(self, config, move |r| usage.record_use(r))
    }

    /// Starts a [`RevocationListener`] on a dedicated connection with this store's settings,
    /// invalidating `cache`'s entries on notifications. `None` for a store built with
    /// [`PostgresKeyStore::from_pool`]. Must be called inside a tokio runtime.
    pub fn listen(&self, cache: CacheInvalidator) -> Option<RevocationListener> {
        let settings = self.inner.settings.clone()?;
        Some(RevocationListener::spawn_with(settings, cache))
    }
}
