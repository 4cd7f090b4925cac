//! The SQL the store sends, and the mapping between rows and [`KeyRecord`]s.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use tokio_postgres::Row;

use super::StoredKey;
use crate::key::{KeyHash, KeyRecord};
use crate::limit::{quotas_from_json, quotas_to_json, Quotas};
use crate::permission::Permissions;
use crate::store::StoreError;
use crate::token::Environment;

/// Arbitrary constant naming the advisory lock that serializes migrations.
pub(super) const MIGRATION_LOCK: i64 = 0x61726b5f61757468; // "ark_auth"

pub(super) const COLUMNS: &str =
    "id, key_hash, name, environment, permissions, tenant, expires_at, \
                       revoked, rate_limit, metadata::text, rate_limits::text";

pub(super) const LOOKUP: &str =
    "SELECT id, key_hash, name, environment, permissions, tenant, expires_at, \
                      revoked, rate_limit, metadata::text, rate_limits::text \
                      FROM ark_api_keys WHERE key_hash = $1";

pub(super) const UPSERT: &str = "INSERT INTO ark_api_keys \
     (id, key_hash, name, environment, permissions, tenant, expires_at, revoked, rate_limit, metadata, \
      rate_limits) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::jsonb, $11::text::jsonb) \
     ON CONFLICT (id) DO UPDATE SET key_hash = EXCLUDED.key_hash, name = EXCLUDED.name, \
     environment = EXCLUDED.environment, permissions = EXCLUDED.permissions, \
     tenant = EXCLUDED.tenant, expires_at = EXCLUDED.expires_at, revoked = EXCLUDED.revoked, \
     rate_limit = EXCLUDED.rate_limit, metadata = EXCLUDED.metadata, \
     rate_limits = EXCLUDED.rate_limits";

pub(super) const INSERT: &str = "INSERT INTO ark_api_keys \
     (id, key_hash, name, environment, permissions, tenant, expires_at, revoked, rate_limit, metadata, \
      rate_limits) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::jsonb, $11::text::jsonb)";

pub(super) const TOUCH: &str = "UPDATE ark_api_keys AS k SET last_used_at = v.t \
     FROM unnest($1::bytea[], $2::timestamptz[]) AS v(h, t) \
     WHERE k.key_hash = v.h AND (k.last_used_at IS NULL OR k.last_used_at < v.t)";

pub(super) fn err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::new(e)
}

#[derive(Debug, thiserror::Error)]
#[error("invalid key row {id:?} in PostgreSQL: {reason}")]
struct InvalidRow {
    id: String,
    reason: String,
}

/// The parameters of a write, in column order.
pub(super) struct Params {
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
    rate_limits: Option<String>,
}

impl Params {
    pub(super) fn of(r: &KeyRecord) -> Self {
        let (rate_limit, rate_limits) = limit_columns(r.rate_limits());
        Params {
            id: r.id().to_owned(),
            hash: r.hash().as_bytes().to_vec(),
            name: r.name().to_owned(),
            environment: r.environment().as_str(),
            permissions: r.permissions().iter().map(|p| p.as_str()).collect(),
            tenant: r.tenant().map(str::to_owned),
            expires_at: r.expires_at(),
            revoked: r.is_revoked(),
            rate_limit,
            metadata: metadata_json(r.metadata()),
            rate_limits,
        }
    }

    pub(super) fn refs(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 11] {
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
            &self.rate_limits,
        ]
    }
}

/// The `rate_limit` and `rate_limits` columns of a key's own limits: one limit per second
/// goes to `rate_limit`, any other set to `rate_limits` (a JSON object); none leaves both
/// NULL.
pub(super) fn limit_columns(limits: Option<Quotas>) -> (Option<i32>, Option<String>) {
    match limits.as_ref().map(Quotas::as_slice) {
        Some([one]) if one.window() == Duration::from_secs(1) => {
            let n = i32::try_from(one.limit().get()).unwrap_or(i32::MAX);
            (Some(n), None)
        }
        _ => (None, limits.map(|q| quotas_to_json(&q).to_string())),
    }
}

fn metadata_json(m: &BTreeMap<String, String>) -> String {
    serde_json::to_string(m).unwrap_or_else(|_| "{}".to_owned())
}

/// The record of a row of [`COLUMNS`]; any surprise is an error, never a default.
pub(super) fn record(row: &Row) -> Result<KeyRecord, StoreError> {
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
    let rate_limits: Option<String> = row.try_get(10).map_err(err)?;
    let rate_limits = match (rate_limits, rate_limit) {
        (None, _) => None,
        (Some(_), Some(_)) => return Err(bad("both rate_limit and rate_limits are set".into())),
        (Some(text), None) => Some(
            serde_json::from_str(&text)
                .map_err(|_| bad("rate_limits is not JSON".into()))
                .and_then(|v| quotas_from_json(&v).map_err(bad))?,
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
    if rate_limits.is_some() {
        record.set_rate_limits(rate_limits);
    }
    record.set_metadata(metadata);
    Ok(record)
}

pub(super) fn stored_key(row: &Row) -> Result<StoredKey, StoreError> {
    Ok(StoredKey {
        record: record(row)?,
        created_at: row.try_get(11).map_err(err)?,
        last_used_at: row.try_get(12).map_err(err)?,
    })
}
