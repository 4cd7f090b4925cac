//! [`PlainRecord`]: a key record as plain strings, numbers and options, for stores that keep
//! keys in rows or documents.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;

use serde::{Deserialize, Deserializer, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::raw::{Got, RawEntry};
use super::{rules, scrub, shown_name};
use crate::key::KeyRecord;
use crate::limit::window_member;
use crate::permission::Permissions;

/// A [`KeyRecord`] in plain fields: what a row of an SQL table (or a document of an HTTP
/// service) maps to and from. It holds the key's hash, never the key.
///
/// Its JSON form (`Serialize`/`Deserialize`) is a keys-file entry, and turning one into a
/// [`KeyRecord`] applies the keys file's rules, by the same code: a hash of 64 hex digits,
/// `environment` `"live"` or `"test"`, known permission names (`"*"` for all), an id of 1 to
/// 128 characters, a non-empty tenant, an RFC 3339 expiry, a rate limit of at least 1.
/// Deserializing checks all of them (and accepts a keys-file entry with a plaintext `key`,
/// hashed at once); [`KeyRecord::try_from`] checks a value built by hand. Errors name the
/// field, never repeat a key, and never repeat a value that holds one.
///
/// ```
/// use ark_auth::keys_file::PlainRecord;
/// use ark_auth::key::KeyRecord;
/// use ark_auth::{generate_key, Environment, Permission};
///
/// let key = generate_key(Environment::Live)?;
/// let record = key.record.with_name("billing").with_permissions(Permission::EmailsSend.into());
///
/// // To a row: strings, integers, options.
/// let row = PlainRecord::from(&record);
/// assert_eq!(row.environment, "live");
/// assert_eq!(row.permissions, ["emails:send"]);
/// assert_eq!(row.hash.len(), 64);
///
/// // From a row, with the keys file's rules.
/// assert_eq!(KeyRecord::try_from(row.clone())?, record);
/// let mut bad = row;
/// bad.permissions = vec!["emails:sned".into()];
/// let err = KeyRecord::try_from(bad).unwrap_err();
/// assert!(err.to_string().contains("emails:sned"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlainRecord {
    /// Public identifier, 1 to 128 characters.
    pub id: String,
    /// Human-readable name (empty for none).
    pub name: String,
    /// SHA-256 of the key, 64 lowercase hex digits.
    pub hash: String,
    /// `"live"` or `"test"`.
    pub environment: String,
    /// Permission names (`["*"]`: all of them).
    pub permissions: Vec<String>,
    /// The tenant a tenant-scoped key is limited to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Expiry, RFC 3339 (`2027-01-01T00:00:00Z`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Whether the key is revoked.
    pub revoked: bool,
    /// The key's own rate limit, requests per second (at least 1), when that is its only
    /// limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
    /// The key's own rate limits otherwise: limit by window (`"second"`, `"minute"`,
    /// `"hour"`, `"day"`, or a count with `ms`, `s`, `min`, `h`, `d` such as `"30s"`), one to
    /// four of them. At most one of `rate_limit` and `rate_limits` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<BTreeMap<String, u32>>,
    /// Free metadata handed to the application with the key.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl From<&KeyRecord> for PlainRecord {
    fn from(r: &KeyRecord) -> Self {
        let permissions = if r.permissions() == Permissions::ALL {
            vec!["*".to_owned()]
        } else {
            r.permissions()
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect()
        };
        // One per-second limit is `rate_limit`; any other set, `rate_limits`.
        let per_second = r
            .rate_limit()
            .filter(|_| r.rate_limits().is_some_and(|q| q.len() == 1));
        PlainRecord {
            id: r.id().to_owned(),
            name: r.name().to_owned(),
            hash: r.hash().to_hex(),
            environment: r.environment().as_str().to_owned(),
            permissions,
            tenant: r.tenant().map(str::to_owned),
            expires_at: r
                .expires_at()
                .and_then(|at| OffsetDateTime::from(at).format(&Rfc3339).ok()),
            revoked: r.is_revoked(),
            rate_limit: per_second.map(NonZeroU32::get),
            rate_limits: r.rate_limits().filter(|_| per_second.is_none()).map(|q| {
                q.iter()
                    .map(|q| (window_member(q.window()), q.limit().get()))
                    .collect()
            }),
            metadata: r.metadata().clone(),
        }
    }
}

impl From<KeyRecord> for PlainRecord {
    fn from(r: KeyRecord) -> Self {
        PlainRecord::from(&r)
    }
}

impl From<PlainRecord> for RawEntry {
    fn from(p: PlainRecord) -> Self {
        RawEntry {
            object: true,
            hash: Got::Value(p.hash),
            id: Got::Value(p.id),
            name: Got::Value(p.name),
            environment: Got::Value(p.environment),
            permissions: Got::Value(p.permissions),
            tenant: p.tenant.into(),
            expires_at: p.expires_at.into(),
            revoked: Got::Value(p.revoked),
            rate_limit: p.rate_limit.map(u64::from).into(),
            rate_limits: p
                .rate_limits
                .map(|m| {
                    m.into_iter()
                        .map(|(w, n)| (w, Some(u64::from(n))))
                        .collect()
                })
                .into(),
            metadata: Got::Value(p.metadata),
            ..RawEntry::default()
        }
    }
}

impl TryFrom<PlainRecord> for KeyRecord {
    type Error = InvalidRecord;

    /// Applies the keys file's rules to the fields.
    fn try_from(p: PlainRecord) -> Result<Self, InvalidRecord> {
        checked(RawEntry::from(p))
    }
}

/// The keys file's rules on one entry; the error named by the entry's name and scrubbed of
/// every key it holds.
fn checked(raw: RawEntry) -> Result<KeyRecord, InvalidRecord> {
    let name = match &raw.name {
        Got::Value(n) => shown_name(n),
        _ => None,
    };
    let secrets = scrub::secrets_of(raw.key(), &raw.strings());
    rules::record(raw).map_err(|reason| InvalidRecord {
        name: name.map(|n| scrub::scrub_text(&n, &secrets)),
        reason: scrub::scrub_text(&reason, &secrets),
    })
}

impl<'de> Deserialize<'de> for PlainRecord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawEntry::deserialize(d)?;
        checked(raw)
            .map(|r| PlainRecord::from(&r))
            .map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for PlainRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("hash", &format_args!("{:.8}…", self.hash))
            .field("environment", &self.environment)
            .field("permissions", &self.permissions)
            .field("tenant", &self.tenant)
            .field("expires_at", &self.expires_at)
            .field("revoked", &self.revoked)
            .field("rate_limit", &self.rate_limit)
            .field("rate_limits", &self.rate_limits)
            .field("metadata", &self.metadata)
            .finish()
    }
}

/// A [`PlainRecord`] the keys file's rules refuse. Never contains a key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InvalidRecord {
    /// The record's `name`, when it has one (not shown when it looks like a key).
    pub name: Option<String>,
    /// What is wrong, naming the field.
    pub reason: String,
}

impl fmt::Display for InvalidRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "key record {n:?}: {}", self.reason),
            None => write!(f, "key record: {}", self.reason),
        }
    }
}

impl std::error::Error for InvalidRecord {}
