//! The [`KeyStore`] lookup: one prepared query by hash.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::sql::{err, record, LOOKUP};
use super::PostgresKeyStore;
use crate::answer::Answer;
use crate::chain::Chain;
use crate::key::KeyHash;
use crate::store::{BoxLookup, KeyStore, LookupResult};

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
                    tracing::error!("refusing a key whose row cannot be loaded: {}", Chain(&*e));
                    Err(e)
                }
            }
        }))
    }
}
