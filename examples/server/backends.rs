//! The back-ends of a run: keys in memory or in PostgreSQL (cached, revocations pushed by
//! LISTEN/NOTIFY), rate limits in memory or in Redis; chosen at start as `ark_auth::Either`.

use ark_auth::{key::KeyRecord, limit::MemoryRateLimiter, Either, MemoryKeyStore};
use axum::Router;

use super::app::app_with;

/// Keys in PostgreSQL, behind the verification cache.
#[cfg(feature = "postgres")]
pub type Database = ark_auth::cache::CachedKeyStore<ark_auth::postgres::PostgresKeyStore>;
/// Without the `postgres` feature no run has a database (the right side is never built).
#[cfg(not(feature = "postgres"))]
pub type Database = MemoryKeyStore;

/// Rate limits in Redis, shared by the fleet.
#[cfg(feature = "redis")]
pub type Shared = ark_auth::redis::RedisRateLimiter;
/// Without the `redis` feature no run shares its limits (the right side is never built).
#[cfg(not(feature = "redis"))]
pub type Shared = MemoryRateLimiter;

/// The key store of a run: in memory, or PostgreSQL.
pub type DemoStore = Either<MemoryKeyStore, Database>;

/// The rate limiter of a run: in memory, or Redis.
pub type DemoLimiter = Either<MemoryRateLimiter, Shared>;

/// What keeps a PostgreSQL-backed run in step with the table (dropped at exit).
#[cfg(feature = "postgres")]
pub type Listener = ark_auth::postgres::RevocationListener;
#[cfg(not(feature = "postgres"))]
pub type Listener = ();

/// PostgreSQL: apply the schema, import `records`, cache, listen for revocations.
#[cfg(feature = "postgres")]
async fn postgres_store(
    url: &str,
    records: Vec<KeyRecord>,
) -> Result<(Database, Option<Listener>), String> {
    use ark_auth::cache::CacheConfig;
    use ark_auth::postgres::PostgresKeyStore;
    let store = PostgresKeyStore::connect(url)
        .await
        .map_err(|e| format!("--database-url: {e}"))?;
    store
        .migrate()
        .await
        .map_err(|e| format!("PostgreSQL: cannot apply the schema: {e}"))?;
    let n = store
        .import(records)
        .await
        .map_err(|e| format!("PostgreSQL: cannot import the keys: {e}"))?;
    let total = store.list().await.map(|l| l.len()).unwrap_or(n);
    println!("key store: PostgreSQL ({n} key(s) imported, {total} in the table); cached, revocations by LISTEN/NOTIFY");
    let cached = store.clone().cached(CacheConfig::default());
    let listener = store.listen(cached.invalidator());
    Ok((cached, listener))
}

#[cfg(not(feature = "postgres"))]
async fn postgres_store(
    _url: &str,
    _records: Vec<KeyRecord>,
) -> Result<(Database, Option<Listener>), String> {
    Err("--database-url needs the example built with --features postgres".into())
}

/// Redis: connect now; when Redis is unreachable (but the URL valid), start anyway and serve
/// without limits until it is back, as the layer does for any limiter failure (logged).
#[cfg(feature = "redis")]
async fn redis_limiter(url: &str) -> Result<Shared, String> {
    use ark_auth::redis::RedisRateLimiter;
    let limiter = match RedisRateLimiter::connect(url).await {
        Ok(l) => l,
        Err(e) => {
            let lazy =
                RedisRateLimiter::connect_lazy(url).map_err(|_| format!("--redis-url: {e}"))?;
            eprintln!(
                "warning: Redis unreachable ({e}); serving without rate limits until it is back"
            );
            lazy
        }
    };
    println!("rate limits: Redis (shared by every instance using it)");
    Ok(limiter)
}

#[cfg(not(feature = "redis"))]
async fn redis_limiter(_url: &str) -> Result<Shared, String> {
    Err("--redis-url needs the example built with --features redis".into())
}

/// The router of a run on real services (either flag or variable set).
pub async fn fleet_app(
    records: Vec<KeyRecord>,
    database_url: Option<&str>,
    redis_url: Option<&str>,
) -> Result<(Router, Option<Listener>), String> {
    let (store, limiter, listener) = backends(records, database_url, redis_url).await?;
    Ok((app_with(store, limiter), listener))
}

/// The key store, rate limiter and revocation listener of a run: PostgreSQL and Redis when
/// their URLs are given, memory otherwise (also used by the gateway example).
pub async fn backends(
    records: Vec<KeyRecord>,
    database_url: Option<&str>,
    redis_url: Option<&str>,
) -> Result<(DemoStore, DemoLimiter, Option<Listener>), String> {
    let (store, listener) = match database_url {
        Some(url) => {
            let (database, listener) = postgres_store(url, records).await?;
            (DemoStore::Right(database), listener)
        }
        None => (
            DemoStore::Left(
                MemoryKeyStore::from_records(records).map_err(|e| format!("keys file: {e}"))?,
            ),
            None,
        ),
    };
    let limiter = match redis_url {
        Some(url) => DemoLimiter::Right(redis_limiter(url).await?),
        None => DemoLimiter::Left(MemoryRateLimiter::new()),
    };
    Ok((store, limiter, listener))
}
