//! Writing and reading keys: create, import, update, revoke, expire, set limits, rotate,
//! remove, list, get.

use std::time::{Duration, SystemTime};

use super::sql::{err, limit_columns, record, stored_key, Params, COLUMNS, INSERT, UPSERT};
use super::{PostgresKeyStore, StoredKey};
use crate::key::{check_rotatable, grace_end, successor, GeneratedKey, KeyRecord, RotateError};
use crate::limit::Quotas;
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

    /// Sets the own rate limits of the key with this id (`Some`: they replace the layer's
    /// default and any earlier limits of the key, as [`KeyRecord::set_rate_limits`] says), or
    /// clears them (`None`: the default applies). Changes those columns alone, so a
    /// concurrent revoke or expiry is kept; every instance with a
    /// [`RevocationListener`](super::RevocationListener) sees the new limits within a
    /// second. `false` when no such id.
    ///
    /// ```no_run
    /// use ark_auth::limit::Quotas;
    /// use ark_auth::postgres::PostgresKeyStore;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = PostgresKeyStore::connect("postgres://localhost/ark").await?;
    /// let limits: Quotas = "10/s,1000/h,50000/d".parse()?;
    /// assert!(store.set_rate_limits("key_9f0c10d2e1e064a5", Some(limits)).await?);
    /// store.set_rate_limits("key_9f0c10d2e1e064a5", None).await?; // back to the default
    /// # Ok(()) }
    /// ```
    pub async fn set_rate_limits(
        &self,
        id: &str,
        limits: Option<Quotas>,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let (rate_limit, rate_limits) = limit_columns(limits);
        let n = client
            .execute(
                "UPDATE ark_api_keys SET rate_limit = $2, rate_limits = $3::text::jsonb \
                 WHERE id = $1",
                &[&id, &rate_limit, &rate_limits],
            )
            .await
            .map_err(err)?;
        Ok(n > 0)
    }

    /// Rotates the key with this id in one transaction: inserts a successor (a new token and
    /// id, with the same name, environment, permissions, tenant, rate limit and metadata, no
    /// expiry) and gives the old key an expiry `grace` from now, so both work until then. An
    /// old key that already expires before the end of the grace keeps its earlier expiry (a
    /// rotation never extends a key's life). The old row is locked while this runs, so a
    /// concurrent revoke either lands first (and the rotation is refused) or after.
    ///
    /// Refuses an unknown, revoked or expired key ([`RotateError`] names which). Returns the
    /// successor: show its plaintext once; the database gets its hash only. Every instance
    /// with a [`RevocationListener`](super::RevocationListener) sees the old key's new
    /// expiry within a second.
    pub async fn rotate(&self, id: &str, grace: Duration) -> Result<GeneratedKey, RotateError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(err)?;
        let row = tx
            .query_opt(
                &format!("SELECT {COLUMNS} FROM ark_api_keys WHERE id = $1 FOR UPDATE"),
                &[&id],
            )
            .await
            .map_err(err)?;
        let old = match row {
            Some(row) => record(&row)?,
            None => return Err(RotateError::UnknownKey { id: id.to_owned() }),
        };
        let now = SystemTime::now();
        check_rotatable(&old, now)?;
        let next = successor(&old)?;
        let p = Params::of(&next.record);
        tx.execute(INSERT, &p.refs()).await.map_err(err)?;
        tx.execute(
            "UPDATE ark_api_keys SET expires_at = $2 WHERE id = $1",
            &[&id, &grace_end(&old, now, grace)],
        )
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(next)
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
