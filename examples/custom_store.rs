//! A `KeyStore` on SQLite: rows map to and from records through `keys_file::PlainRecord` (the
//! keys file's rules: a bad row is an error, a 503), driver errors become `StoreError`s by `?`.
//! `cargo run --example custom_store -- keys.db` serves `GET /` on
//! 127.0.0.1:3000 with one new key, printed once. `tests/custom_store.rs` tests it over TCP.

use std::sync::{Arc, Mutex, PoisonError};

use ark_auth::key::{KeyHash, KeyRecord};
use ark_auth::keys_file::PlainRecord;
use ark_auth::store::{Answer, BoxLookup, KeyStore, LookupResult, StoreError};
use ark_auth::{generate_key, ArkAuthLayer, Environment, Permissions};
use rusqlite::{Connection, OptionalExtension, Row};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS api_keys (hash TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE, name TEXT NOT NULL, environment TEXT NOT NULL,
    permissions TEXT NOT NULL, tenant TEXT, expires_at TEXT, revoked INTEGER NOT NULL,
    rate_limit INTEGER, metadata TEXT NOT NULL)";
const INSERT: &str = "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const SELECT: &str = "SELECT * FROM api_keys WHERE hash = ?";

/// Keys in one SQLite database (a file, or `:memory:`).
#[derive(Clone)]
pub struct SqliteStore(Arc<Mutex<Connection>>);

impl SqliteStore {
    pub fn open(path: &str) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteStore(Arc::new(Mutex::new(conn))))
    }

    pub fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let p = PlainRecord::from(record);
        let (perms, meta) = (p.permissions.join(" "), serde_json::to_string(&p.metadata)?);
        let first = rusqlite::params![p.hash, p.id, p.name, p.environment, perms, p.tenant];
        let then = rusqlite::params![p.expires_at, p.revoked, p.rate_limit, meta];
        self.conn().execute(INSERT, &*[first, then].concat())?;
        Ok(())
    }

    /// The record of this hash, through the keys file's rules.
    fn find(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError> {
        let conn = self.conn();
        let row = conn.query_row(SELECT, [hash.to_hex()], plain).optional()?;
        let Some((mut plain, metadata)) = row else {
            return Ok(None);
        };
        plain.metadata = serde_json::from_str(&metadata)?;
        Ok(Some(KeyRecord::try_from(plain)?))
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic elsewhere while holding the lock leaves the connection usable.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A row as plain fields (but the metadata), and its metadata column (JSON text).
fn plain(r: &Row<'_>) -> rusqlite::Result<(PlainRecord, String)> {
    let permissions: String = r.get("permissions")?;
    let plain = PlainRecord {
        hash: r.get("hash")?,
        id: r.get("id")?,
        name: r.get("name")?,
        environment: r.get("environment")?,
        permissions: permissions.split_whitespace().map(str::to_owned).collect(),
        tenant: r.get("tenant")?,
        expires_at: r.get("expires_at")?,
        revoked: r.get("revoked")?,
        rate_limit: r.get("rate_limit")?,
        ..Default::default() // no metadata yet, one rate limit per second
    };
    Ok((plain, r.get("metadata")?))
}

impl KeyStore for SqliteStore {
    type Future = BoxLookup;
    fn lookup(&self, hash: &KeyHash) -> Answer<LookupResult, BoxLookup> {
        let (store, hash) = (self.clone(), *hash);
        // SQLite blocks: query on tokio's blocking pool (`?` turns a JoinError too).
        Answer::Later(Box::pin(async move {
            let record = tokio::task::spawn_blocking(move || store.find(&hash)).await??;
            Ok(record.map(Arc::new))
        }))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = SqliteStore::open(&std::env::args().nth(1).unwrap_or(":memory:".into()))?;
    let key = generate_key(Environment::Live)?;
    store.insert(&key.record.with_permissions(Permissions::ALL))?;
    let token = key.plaintext.expose_secret();
    println!("curl -H 'Authorization: Bearer {token}' 127.0.0.1:3000/");
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(listener, app.layer(ArkAuthLayer::new(store))).await?;
    Ok(())
}
