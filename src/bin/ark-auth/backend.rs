//! Where the keys are: PostgreSQL or a keys file, behind one set of calls.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use ark_auth::key::{GeneratedKey, KeyRecord};
use ark_auth::limit::Quotas;

use super::file::KeysFile;
use super::pg::Pg;

/// A key as the commands show it: the record (a hash, never a secret) and, in PostgreSQL,
/// its bookkeeping.
pub struct Listed {
    pub record: KeyRecord,
    pub created_at: Option<SystemTime>,
    pub last_used_at: Option<SystemTime>,
}

impl From<KeyRecord> for Listed {
    fn from(record: KeyRecord) -> Self {
        Listed {
            record,
            created_at: None,
            last_used_at: None,
        }
    }
}

/// What an import did.
pub struct Imported {
    pub added: usize,
    pub replaced: usize,
}

pub enum Backend {
    Pg(Pg),
    File(KeysFile),
}

/// Where the command line says the keys are. `--keys-file` wins over the DATABASE_URL
/// variable (a `--database-url` flag with it is refused by the parser).
pub enum Location {
    Database(String),
    File(PathBuf),
}

pub fn location(
    database_url: Option<String>,
    keys_file: Option<PathBuf>,
) -> Result<Location, String> {
    if let Some(path) = keys_file {
        return Ok(Location::File(path));
    }
    let url = database_url.or_else(|| {
        std::env::var("DATABASE_URL")
            .ok()
            .filter(|v| !v.trim().is_empty())
    });
    url.map(Location::Database).ok_or_else(|| {
        "no key store named: give --database-url URL (or set DATABASE_URL) or --keys-file PATH"
            .to_owned()
    })
}

impl Backend {
    /// Opens the store; `writing` when the command may be its first use (PostgreSQL: the
    /// schema is applied; keys file: a missing file is an empty one, created on write).
    pub async fn open(at: Location, writing: bool) -> Result<Backend, String> {
        Ok(match at {
            Location::Database(url) => Backend::Pg(Pg::connect(&url, writing).await?),
            Location::File(path) => Backend::File(KeysFile::open(path, writing)?),
        })
    }

    pub async fn create(&mut self, record: &KeyRecord) -> Result<(), String> {
        match self {
            Backend::Pg(pg) => pg.create(record).await,
            Backend::File(f) => f.create(record),
        }
    }

    pub async fn list(&mut self) -> Result<Vec<Listed>, String> {
        match self {
            Backend::Pg(pg) => pg.list().await,
            Backend::File(f) => Ok(f.records().iter().cloned().map(Listed::from).collect()),
        }
    }

    /// The key with this id; an error naming it when there is none.
    pub async fn get(&mut self, id: &str) -> Result<Listed, String> {
        let found = match self {
            Backend::Pg(pg) => pg.get(id).await?,
            Backend::File(f) => f.get(id).cloned().map(Listed::from),
        };
        found.ok_or_else(|| no_such_key(id))
    }

    pub async fn revoke(&mut self, id: &str) -> Result<(), String> {
        let done = match self {
            Backend::Pg(pg) => pg.revoke(id).await?,
            Backend::File(f) => f.update(id, |r| r.set_revoked(true))?,
        };
        done.then_some(()).ok_or_else(|| no_such_key(id))
    }

    pub async fn set_expiry(&mut self, id: &str, at: Option<SystemTime>) -> Result<(), String> {
        let done = match self {
            Backend::Pg(pg) => pg.set_expiry(id, at).await?,
            Backend::File(f) => f.update(id, |r| r.set_expiry(at))?,
        };
        done.then_some(()).ok_or_else(|| no_such_key(id))
    }

    /// Sets (or with `None` clears) the key's own rate limits.
    pub async fn set_limits(&mut self, id: &str, limits: Option<Quotas>) -> Result<(), String> {
        let done = match self {
            Backend::Pg(pg) => pg.set_limits(id, limits).await?,
            Backend::File(f) => f.update(id, |r| r.set_rate_limits(limits))?,
        };
        done.then_some(()).ok_or_else(|| no_such_key(id))
    }

    pub async fn rotate(&mut self, id: &str, grace: Duration) -> Result<GeneratedKey, String> {
        match self {
            Backend::Pg(pg) => pg.rotate(id, grace).await,
            Backend::File(f) => f.rotate(id, grace),
        }
    }

    pub async fn import(&mut self, records: Vec<KeyRecord>) -> Result<Imported, String> {
        match self {
            Backend::Pg(pg) => pg.import(records).await,
            Backend::File(f) => f.import(records),
        }
    }
}

pub fn no_such_key(id: &str) -> String {
    let hint = if id.starts_with("ark_live_") || id.starts_with("ark_test_") {
        " (that is an API key, not a key id: ids look like key_3f9a…; `keys list` shows them)"
    } else {
        ""
    };
    format!("no key with id {}{hint}", super::args::shown(id))
}

/// An error and its sources, each once: `key store failed: db error: …`.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
