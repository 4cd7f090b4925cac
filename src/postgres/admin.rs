//! Writing and reading keys: create, import, update, revoke, expire, remove, list, get.

use std::time::SystemTime;

use super::sql::{err, stored_key, Params, COLUMNS, INSERT, UPSERT};
use super::{PostgresKeyStore, StoredKey};
use crate::key::KeyRecord;
use crate::store::StoreError;

impl PostgresKeyStore {
    /// Stores a new key; fails if its id or hash is already there. Takes the record of a
    /// [`GeneratedKey`](crate::key::GeneratedKey) (`&key.record`), which holds the hash only.
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
                 rate_limit = $9, metadata = $10::text::jsonb, rate_limits = $11::text::jsonb \
                 WHERE id = $1",
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
}
