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
//! one table. Connections are made without TLS (PostgreSQL on a private network or a local
//! socket); for TLS build the pool yourself and use [`PostgresKeyStore::from_pool`].
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

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::poll_fn;
use std::hash::BuildHasherDefault;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dashmap::DashMap;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls, Row};

use crate::cache::{CacheConfig, CacheInvalidator, CachedKeyStore};
use crate::key::{KeyHash, KeyRecord};
use crate::permission::Permissions;
use crate::store::{Answer, BoxLookup, DigestHasher, KeyStore, LookupResult, StoreError};
use crate::token::Environment;

/// The channel the trigger notifies on.
pub const CHANNEL: &str = "ark_api_keys";

/// The schema: the keys table, its hash index, and the notify trigger. Idempotent (safe to
/// apply at every start, from several instances at once: [`PostgresKeyStore::migrate`]
/// serializes it with an advisory lock).
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS ark_api_keys (
    id           text        PRIMARY KEY,
    key_hash     bytea       NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    name         text        NOT NULL DEFAULT '',
    environment  text        NOT NULL CHECK (environment IN ('live', 'test')),
    permissions  text[]      NOT NULL DEFAULT '{}',
    tenant       text,
    expires_at   timestamptz,
    revoked      boolean     NOT NULL DEFAULT false,
    rate_limit   integer     CHECK (rate_limit IS NULL OR rate_limit > 0),
    metadata     jsonb       NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);

CREATE OR REPLACE FUNCTION ark_api_keys_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('ark_api_keys', '*');
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('ark_api_keys', encode(OLD.key_hash, 'hex'));
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.key_hash IS DISTINCT FROM OLD.key_hash) THEN
        PERFORM pg_notify('ark_api_keys', encode(NEW.key_hash, 'hex'));
    END IF;
    RETURN NULL;
END
$$;

-- Created only when missing: re-creating would lock the table against lookups at every start.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'ark_api_keys'::regclass
                   AND tgname = 'ark_api_keys_changed') THEN
        CREATE TRIGGER ark_api_keys_changed
            AFTER INSERT OR DELETE
               OR UPDATE OF id, key_hash, name, environment, permissions, tenant, expires_at,
                            revoked, rate_limit, metadata
            ON ark_api_keys FOR EACH ROW EXECUTE FUNCTION ark_api_keys_notify();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'ark_api_keys'::regclass
                   AND tgname = 'ark_api_keys_truncated') THEN
        CREATE TRIGGER ark_api_keys_truncated
            AFTER TRUNCATE ON ark_api_keys
            FOR EACH STATEMENT EXECUTE FUNCTION ark_api_keys_notify();
    END IF;
END
$$;
"#;

/// Arbitrary constant naming the advisory lock that serializes migrations.
const MIGRATION_LOCK: i64 = 0x61726b5f61757468; // "ark_auth"

const COLUMNS: &str = "id, key_hash, name, environment, permissions, tenant, expires_at, \
                       revoked, rate_limit, metadata::text";

const LOOKUP: &str = "SELECT id, key_hash, name, environment, permissions, tenant, expires_at, \
                      revoked, rate_limit, metadata::text FROM ark_api_keys WHERE key_hash = $1";

const UPSERT: &str = "INSERT INTO ark_api_keys \
     (id, key_hash, name, environment, permissions, tenant, expires_at, revoked, rate_limit, metadata) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::jsonb) \
     ON CONFLICT (id) DO UPDATE SET key_hash = EXCLUDED.key_hash, name = EXCLUDED.name, \
     environment = EXCLUDED.environment, permissions = EXCLUDED.permissions, \
     tenant = EXCLUDED.tenant, expires_at = EXCLUDED.expires_at, revoked = EXCLUDED.revoked, \
     rate_limit = EXCLUDED.rate_limit, metadata = EXCLUDED.metadata";

const INSERT: &str = "INSERT INTO ark_api_keys \
     (id, key_hash, name, environment, permissions, tenant, expires_at, revoked, rate_limit, metadata) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::jsonb)";

const TOUCH: &str = "UPDATE ark_api_keys AS k SET last_used_at = v.t \
     FROM unnest($1::bytea[], $2::timestamptz[]) AS v(h, t) \
     WHERE k.key_hash = v.h AND (k.last_used_at IS NULL OR k.last_used_at < v.t)";

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

/// A [`KeyStore`] on PostgreSQL. See the [module documentation](self).
///
/// Cloning shares the pool, the counters and the `last_used_at` writer.
#[derive(Clone)]
pub struct PostgresKeyStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// For the listener's dedicated connection (`None` when built from a foreign pool).
    config: Option<tokio_postgres::Config>,
    lookups: AtomicU64,
    usage: Usage,
}

impl fmt::Debug for PostgresKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresKeyStore")
            .field("lookups", &self.lookup_queries())
            .finish_non_exhaustive()
    }
}

fn err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::new(e)
}

/// A row that does not make a valid record.
#[derive(Debug, thiserror::Error)]
#[error("invalid key row {id:?} in PostgreSQL: {reason}")]
struct InvalidRow {
    id: String,
    reason: String,
}

impl PostgresKeyStore {
    /// A store on the database at `url` (`postgres://user:password@host:port/db`, or the
    /// key=value form), with default [`PostgresOptions`]. Connections are made lazily; call
    /// [`PostgresKeyStore::migrate`] to apply the schema (and check the database answers).
    /// Must be called inside a tokio runtime (it starts the `last_used_at` writer).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// [`PostgresKeyStore::connect`] with options.
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(err)?;
        config.connect_timeout(options.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("ark-auth");
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(err)?;
        Ok(Self::build(pool, Some(config), options))
    }

    /// A store on a pool built elsewhere (say, with TLS). [`PostgresKeyStore::listen`] is
    /// then unavailable (it needs the connection settings); use
    /// [`RevocationListener::spawn`] with them. Must be called inside a tokio runtime (it
    /// starts the `last_used_at` writer).
    pub fn from_pool(pool: Pool, options: PostgresOptions) -> Self {
        Self::build(pool, None, options)
    }

    fn build(pool: Pool, config: Option<tokio_postgres::Config>, options: PostgresOptions) -> Self {
        let usage = Usage::start(pool.clone(), options);
        PostgresKeyStore {
            inner: Arc::new(Inner {
                pool,
                config,
                lookups: AtomicU64::new(0),
                usage,
            }),
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
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

    /// Stores a new key; fails if its id or hash is already there. Takes the record of a
    /// [`GeneratedKey`](crate::GeneratedKey) (`&key.record`), which holds the hash only.
    pub async fn create(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(INSERT).await.map_err(err)?;
        let p = Params::of(record);
        client.execute(&stmt, &p.refs()).await.map_err(err)?;
        Ok(())
    }

    /// Stores the records, adding new ids and replacing existing ones, in one transaction
    /// (all or nothing). For the demo server's `--keys FILE`. Returns how many were written.
    pub async fn import(
        &self,
        records: impl IntoIterator<Item = KeyRecord>,
    ) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(err)?;
        let stmt = tx.prepare(UPSERT).await.map_err(err)?;
        let mut n = 0;
        for record in records {
            let p = Params::of(&record);
            tx.execute(&stmt, &p.refs()).await.map_err(err)?;
            n += 1;
        }
        tx.commit().await.map_err(err)?;
        Ok(n)
    }

    /// Replaces every field of the key with this record's id (hash included). `false` when
    /// no such id.
    pub async fn update(&self, record: &KeyRecord) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let p = Params::of(record);
        let n = client
            .execute(
                "UPDATE ark_api_keys SET key_hash = $2, name = $3, environment = $4, \
                 permissions = $5, tenant = $6, expires_at = $7, revoked = $8, \
                 rate_limit = $9, metadata = $10::text::jsonb WHERE id = $1",
                &p.refs(),
            )
            .await
            .map_err(err)?;
        Ok(n > 0)
    }

    /// Revokes the key with this id at once (every instance within a second, see the module
    /// docs). `false` when no such id.
    pub async fn revoke(&self, id: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE ark_api_keys SET revoked = true WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(err)?;
        Ok(n > 0)
    }

    /// Sets or clears the expiry of the key with this id (rotation: set it a grace period
    /// ahead). `false` when no such id.
    pub async fn set_expiry(&self, id: &str, at: Option<SystemTime>) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE ark_api_keys SET expires_at = $2 WHERE id = $1",
                &[&id, &at],
            )
            .await
            .map_err(err)?;
        Ok(n > 0)
    }

    /// Deletes the key with this id. `false` when no such id.
    pub async fn remove(&self, id: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute("DELETE FROM ark_api_keys WHERE id = $1", &[&id])
            .await
            .map_err(err)?;
        Ok(n > 0)
    }

    /// Every key, ordered by id (records hold hashes, never a secret). A row that is not a
    /// valid record fails the whole listing.
    pub async fn list(&self) -> Result<Vec<StoredKey>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS}, created_at, last_used_at FROM ark_api_keys ORDER BY id"
                ),
                &[],
            )
            .await
            .map_err(err)?;
        rows.iter().map(stored_key).collect()
    }

    /// The key with this id.
    pub async fn get(&self, id: &str) -> Result<Option<StoredKey>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {COLUMNS}, created_at, last_used_at FROM ark_api_keys WHERE id = $1"
                ),
                &[&id],
            )
            .await
            .map_err(err)?;
        row.as_ref().map(stored_key).transpose()
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
        let config = self.inner.config.clone()?;
        Some(RevocationListener::spawn(config, cache))
    }
}

/// The parameters of a write, in column order.
struct Params {
    id: String,
    hash: Vec<u8>,
    name: String,
    environment: &'static str,
    permissions: Vec<&'static str>,
    tenant: Option<String>,
    expires_at: Option<SystemTime>,
    revoked: bool,
    rate_limit: Option<i32>,
    metadata: String,
}

impl Params {
    fn of(r: &KeyRecord) -> Self {
        Params {
            id: r.id().to_owned(),
            hash: r.hash().as_bytes().to_vec(),
            name: r.name().to_owned(),
            environment: r.environment().as_str(),
            permissions: r.permissions().iter().map(|p| p.as_str()).collect(),
            tenant: r.tenant().map(str::to_owned),
            expires_at: r.expires_at(),
            revoked: r.is_revoked(),
            rate_limit: r
                .rate_limit()
                .map(|n| i32::try_from(n.get()).unwrap_or(i32::MAX)),
            metadata: metadata_json(r.metadata()),
        }
    }

    fn refs(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 10] {
        [
            &self.id,
            &self.hash,
            &self.name,
            &self.environment,
            &self.permissions,
            &self.tenant,
            &self.expires_at,
            &self.revoked,
            &self.rate_limit,
            &self.metadata,
        ]
    }
}

fn metadata_json(m: &BTreeMap<String, String>) -> String {
    serde_json::to_string(m).unwrap_or_else(|_| "{}".to_owned())
}

/// The record of a row of [`COLUMNS`]; any surprise is an error, never a default.
fn record(row: &Row) -> Result<KeyRecord, StoreError> {
    let id: String = row.try_get(0).map_err(err)?;
    let bad = |reason: String| {
        err(InvalidRow {
            id: id.chars().take(64).collect(),
            reason,
        })
    };
    let hash: Vec<u8> = row.try_get(1).map_err(err)?;
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| bad("key_hash is not 32 bytes".into()))?;
    let environment: String = row.try_get(3).map_err(err)?;
    let environment =
        Environment::from_str(&environment).map_err(|e| bad(format!("environment: {e}")))?;
    let names: Vec<String> = row.try_get(4).map_err(err)?;
    let permissions = Permissions::parse_list(&names).map_err(|e| bad(e.to_string()))?;
    let rate_limit: Option<i32> = row.try_get(8).map_err(err)?;
    let rate_limit = match rate_limit {
        None => None,
        Some(n) => Some(
            u32::try_from(n)
                .ok()
                .and_then(NonZeroU32::new)
                .ok_or_else(|| bad(format!("rate_limit {n} is not positive")))?,
        ),
    };
    let metadata: String = row.try_get(9).map_err(err)?;
    let metadata: BTreeMap<String, String> = serde_json::from_str(&metadata)
        .map_err(|_| bad("metadata is not an object of strings".into()))?;
    let name: String = row.try_get(2).map_err(err)?;
    let tenant: Option<String> = row.try_get(5).map_err(err)?;
    let expires_at: Option<SystemTime> = row.try_get(6).map_err(err)?;
    let revoked: bool = row.try_get(7).map_err(err)?;
    let mut record = KeyRecord::new(id, KeyHash::from_bytes(hash), environment)
        .with_permissions(permissions)
        .with_revoked(revoked);
    record.set_name(name);
    record.set_tenant(tenant);
    record.set_expiry(expires_at);
    record.set_rate_limit(rate_limit);
    record.set_metadata(metadata);
    Ok(record)
}

fn stored_key(row: &Row) -> Result<StoredKey, StoreError> {
    Ok(StoredKey {
        record: record(row)?,
        created_at: row.try_get(10).map_err(err)?,
        last_used_at: row.try_get(11).map_err(err)?,
    })
}

impl KeyStore for PostgresKeyStore {
    type Future = BoxLookup;

    fn lookup(&self, hash: &KeyHash) -> Answer<LookupResult, BoxLookup> {
        let store = self.clone();
        let hash = *hash;
        Answer::Later(Box::pin(async move {
            let client = store.client().await?;
            let stmt = client.prepare_cached(LOOKUP).await.map_err(err)?;
            store.inner.lookups.fetch_add(1, Ordering::Relaxed);
            let row = client
                .query_opt(&stmt, &[&hash.as_bytes().as_slice()])
                .await
                .map_err(err)?;
            let Some(row) = row else { return Ok(None) };
            match record(&row) {
                Ok(record) => {
                    store.record_use(&record);
                    Ok(Some(Arc::new(record)))
                }
                Err(e) => {
                    tracing::error!("refusing a key whose row cannot be loaded: {e}");
                    Err(e)
                }
            }
        }))
    }
}

/// When each key was last noted, keyed by its hash (already uniform: no SipHash per hit).
type Noted = DashMap<KeyHash, Instant, BuildHasherDefault<DigestHasher>>;

/// The `last_used_at` writer: a throttle per key, a bounded channel, a background task.
struct Usage {
    tx: mpsc::Sender<(KeyHash, SystemTime)>,
    last_noted: Arc<Noted>,
    interval: Duration,
    state: Arc<UsageState>,
}

#[derive(Default)]
struct UsageState {
    rows: AtomicU64,
    dropped: AtomicU64,
}

impl Usage {
    fn start(pool: Pool, options: PostgresOptions) -> Usage {
        let (tx, rx) = mpsc::channel(options.usage_buffer.max(1));
        let state = Arc::new(UsageState::default());
        let last_noted = Arc::new(Noted::default());
        tokio::spawn(usage_writer(
            pool,
            rx,
            options.usage_interval,
            Arc::clone(&state),
            Arc::clone(&last_noted),
        ));
        Usage {
            tx,
            last_noted,
            interval: options.usage_interval,
            state,
        }
    }

    fn note(&self, hash: &KeyHash) {
        let now = Instant::now();
        // Throttle: one note per key per interval. The common case (noted recently) takes a
        // shard's read lock only.
        if let Some(t) = self.last_noted.get(hash) {
            if now.duration_since(*t) < self.interval {
                return;
            }
        }
        match self.last_noted.entry(*hash) {
            dashmap::mapref::entry::Entry::Occupied(mut e) => {
                if now.duration_since(*e.get()) < self.interval {
                    return;
                }
                e.insert(now);
            }
            dashmap::mapref::entry::Entry::Vacant(v) => {
                v.insert(now);
            }
        }
        if self.tx.try_send((*hash, SystemTime::now())).is_err() {
            self.state.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Collects notes for one interval, then writes them in one statement. Ends when every
/// sender (every clone of the store) is gone.
async fn usage_writer(
    pool: Pool,
    mut rx: mpsc::Receiver<(KeyHash, SystemTime)>,
    interval: Duration,
    state: Arc<UsageState>,
    last_noted: Arc<Noted>,
) {
    let mut pending: HashMap<KeyHash, SystemTime> = HashMap::new();
    let mut next = tokio::time::Instant::now() + interval;
    loop {
        match tokio::time::timeout_at(next, rx.recv()).await {
            Ok(Some((hash, at))) => {
                pending.insert(hash, at);
                // A steady stream of notes must not postpone the write past the interval.
                if tokio::time::Instant::now() < next {
                    continue;
                }
            }
            Ok(None) => {
                flush(&pool, &mut pending, &state).await;
                return;
            }
            Err(_elapsed) => {}
        }
        flush(&pool, &mut pending, &state).await;
        let now = Instant::now();
        last_noted.retain(|_, t| now.duration_since(*t) < interval);
        next = tokio::time::Instant::now() + interval;
    }
}

async fn flush(pool: &Pool, pending: &mut HashMap<KeyHash, SystemTime>, state: &UsageState) {
    if pending.is_empty() {
        return;
    }
    let (hashes, times): (Vec<&[u8]>, Vec<SystemTime>) = pending
        .iter()
        .map(|(h, t)| (h.as_bytes().as_slice(), *t))
        .unzip();
    let result = async {
        let client = pool.get().await.map_err(err)?;
        client.execute(TOUCH, &[&hashes, &times]).await.map_err(err)
    }
    .await;
    match result {
        Ok(n) => {
            state.rows.fetch_add(n, Ordering::Relaxed);
        }
        Err(e) => tracing::warn!("last_used_at of {} key(s) not recorded: {e}", pending.len()),
    }
    pending.clear();
}

/// The task that keeps one instance's cache in step with the keys table through
/// `LISTEN ark_api_keys`. See the module docs for the guarantee. Stops when dropped.
pub struct RevocationListener {
    task: tokio::task::JoinHandle<()>,
    state: Arc<ListenerState>,
}

#[derive(Default)]
struct ListenerState {
    connected: AtomicBool,
    notifications: AtomicU64,
    connections: AtomicU64,
}

impl fmt::Debug for RevocationListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationListener")
            .field("connected", &self.is_connected())
            .field("notifications", &self.notifications())
            .finish()
    }
}

impl Drop for RevocationListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const HEALTH_EVERY: Duration = Duration::from_secs(1);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

impl RevocationListener {
    /// Starts listening with these connection settings (no TLS) and invalidating `cache`.
    /// Must be called inside a tokio runtime.
    pub fn spawn(config: tokio_postgres::Config, cache: CacheInvalidator) -> Self {
        let state = Arc::new(ListenerState::default());
        let task = tokio::spawn(listen_loop(config, cache, Arc::clone(&state)));
        RevocationListener { task, state }
    }

    /// Whether `LISTEN` is established now.
    pub fn is_connected(&self) -> bool {
        self.state.connected.load(Ordering::Acquire)
    }

    /// Notifications received so far.
    pub fn notifications(&self) -> u64 {
        self.state.notifications.load(Ordering::Relaxed)
    }

    /// Successful `LISTEN`s so far (1 plus reconnections).
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// Waits until `LISTEN` is established, up to `timeout`; whether it is.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.is_connected() {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

async fn listen_loop(
    config: tokio_postgres::Config,
    cache: CacheInvalidator,
    state: Arc<ListenerState>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        match listen_once(&config, &cache, &state).await {
            Ok(()) => backoff = BACKOFF_MIN,
            Err(e) => tracing::warn!(
                "revocation listener: {e}; reconnecting in {} ms (cache TTL is the backstop)",
                backoff.as_millis()
            ),
        }
        state.connected.store(false, Ordering::Release);
        // Notifications are lost from here until the next LISTEN, which clears the cache.
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One connection's life: connect, `LISTEN`, dispatch notifications until it fails.
async fn listen_once(
    config: &tokio_postgres::Config,
    cache: &CacheInvalidator,
    state: &Arc<ListenerState>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let dispatch_cache = cache.clone();
    let dispatch_state = Arc::clone(state);
    let mut driver = tokio::spawn(async move {
        loop {
            match poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    dispatch_state.notifications.fetch_add(1, Ordering::Relaxed);
                    match KeyHash::from_hex(n.payload()) {
                        Ok(hash) => dispatch_cache.invalidate(&hash),
                        Err(_) => dispatch_cache.invalidate_all(),
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    });
    let result = async {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        // Whatever changed before this LISTEN (while disconnected, or before the first
        // connection) was not heard: forget every entry.
        cache.invalidate_all();
        state.connections.fetch_add(1, Ordering::Relaxed);
        state.connected.store(true, Ordering::Release);
        loop {
            match tokio::time::timeout(HEALTH_EVERY, &mut driver).await {
                Ok(Ok(r)) => return r,
                Ok(Err(_join)) => return Ok(()),
                Err(_still_running) => {}
            }
            match tokio::time::timeout(HEALTH_TIMEOUT, client.simple_query("SELECT 1")).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    tracing::warn!("revocation listener: health query timed out");
                    return Ok(());
                }
            }
        }
    }
    .await;
    driver.abort();
    result
}
