//! The keys in PostgreSQL, through the crate's `PostgresKeyStore`.

use std::time::{Duration, SystemTime};

use ark_auth::key::{GeneratedKey, KeyRecord};
use ark_auth::limit::Quotas;
use ark_auth::postgres::{PostgresKeyStore, StoredKey};
use ark_auth::store::StoreError;

use super::backend::{chain, Imported, Listed};

pub struct Pg {
    store: PostgresKeyStore,
}

fn pg_error(e: StoreError) -> String {
    format!("PostgreSQL: {}", chain(&*e))
}

fn listed(k: StoredKey) -> Listed {
    Listed {
        record: k.record,
        created_at: Some(k.created_at),
        last_used_at: k.last_used_at,
    }
}

impl Pg {
    /// Connects (and with `migrate`, applies the schema, which also checks the database
    /// answers).
    pub async fn connect(url: &str, migrate: bool) -> Result<Pg, String> {
        let store = PostgresKeyStore::connect(url)
            .await
            .map_err(|e| format!("--database-url: {}", chain(&*e)))?;
        if migrate {
            store.migrate().await.map_err(pg_error)?;
        }
        Ok(Pg { store })
    }

    pub async fn create(&self, record: &KeyRecord) -> Result<(), String> {
        self.store.create(record).await.map_err(pg_error)
    }

    pub async fn list(&self) -> Result<Vec<Listed>, String> {
        let all = self.store.list().await.map_err(pg_error)?;
        Ok(all.into_iter().map(listed).collect())
    }

    pub async fn get(&self, id: &str) -> Result<Option<Listed>, String> {
        let found = self.store.get(id).await.map_err(pg_error)?;
        Ok(found.map(listed))
    }

    pub async fn revoke(&self, id: &str) -> Result<bool, String> {
        self.store.revoke(id).await.map_err(pg_error)
    }

    pub async fn set_expiry(&self, id: &str, at: Option<SystemTime>) -> Result<bool, String> {
        self.store.set_expiry(id, at).await.map_err(pg_error)
    }

    pub async fn set_limits(&self, id: &str, limits: Option<Quotas>) -> Result<bool, String> {
        self.store
            .set_rate_limits(id, limits)
            .await
            .map_err(pg_error)
    }

    pub async fn rotate(&self, id: &str, grace: Duration) -> Result<GeneratedKey, String> {
        self.store.rotate(id, grace).await.map_err(|e| match e {
            ark_auth::key::RotateError::Store(e) => pg_error(e),
            other => chain(&other),
        })
    }

    /// Adds or replaces (by id) every record in one transaction.
    pub async fn import(&self, records: Vec<KeyRecord>) -> Result<Imported, String> {
        let existing = self.list().await?;
        let replaced = records
            .iter()
            .filter(|r| existing.iter().any(|k| k.record.id() == r.id()))
            .count();
        let n = self.store.import(records).await.map_err(pg_error)?;
        Ok(Imported {
            added: n - replaced,
            replaced,
        })
    }
}
