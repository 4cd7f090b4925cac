//! [`KeyRecord`], a stored key: everything about it but the secret.

use std::collections::BTreeMap;
use std::fmt;
use std::num::{NonZeroU32, NonZeroU64};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use compact_str::CompactString;
use sha2::{Digest, Sha256};

use super::KeyHash;
use crate::permission::Permissions;
use crate::token::{Environment, Token};

/// A stored API key: everything about it but the secret, which exists only as its hash.
///
/// Fields are private so that the layout can stay compact (a store holds a million of
/// these): read them with the accessors ([`KeyRecord::id`], [`KeyRecord::permissions`], …),
/// build with [`KeyRecord::new`] and the `with_*` methods, change with the `set_*` methods.
/// The id is kept inline up to 24 bytes (ids look like `key_<16 hex>`, 20 bytes); the
/// per-request fields are inline; the name, tenant and metadata sit behind one pointer,
/// allocated only when one of them is set.
///
/// ```
/// use ark_auth::{Environment, Permissions};
/// use ark_auth::key::{KeyHash, KeyRecord};
/// use ark_auth::token::Token;
///
/// let token = Token::parse("ark_live_0123456789abcdefXYZ").unwrap();
/// let record = KeyRecord::new("key_1", KeyHash::of(&token), Environment::Live)
///     .with_name("billing")
///     .with_permissions(Permissions::ALL)
///     .with_rate_limit(100);
/// assert!(record.is_usable_at(std::time::SystemTime::now()));
/// assert_eq!(record.name(), "billing");
/// assert!(!format!("{record:?}").contains("0123456789"));
/// ```
#[derive(Clone)]
pub struct KeyRecord {
    hash: KeyHash,
    id: CompactString,
    /// Expiry as nanoseconds since the Unix epoch, plus one (see [`encode_expiry`]).
    expires_at: Option<NonZeroU64>,
    /// Name, tenant and metadata; `None` while all are empty.
    details: Option<Box<Details>>,
    rate_limit: Option<NonZeroU32>,
    permissions: Permissions,
    environment: Environment,
    revoked: bool,
}

/// The rarely read fields of a record, allocated only when one is set.
#[derive(Clone, Default)]
struct Details {
    name: String,
    tenant: Option<String>,
    metadata: BTreeMap<String, String>,
}

impl Details {
    fn is_empty(&self) -> bool {
        self.name.is_empty() && self.tenant.is_none() && self.metadata.is_empty()
    }
}

// A store keeps one record per key; its size is most of the store's bytes per key.
const _: () = assert!(std::mem::size_of::<KeyRecord>() <= 80);

static NO_METADATA: BTreeMap<String, String> = BTreeMap::new();

/// An expiry as stored: nanoseconds since the Unix epoch plus one (so that the epoch itself
/// is representable), exact from 1970 to about 2554. An instant before the epoch is stored as
/// the epoch (already expired either way); one after 2554 as the last representable
/// nanosecond.
fn encode_expiry(at: SystemTime) -> NonZeroU64 {
    let nanos = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    NonZeroU64::MIN.saturating_add(nanos)
}

fn decode_expiry(stored: NonZeroU64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(stored.get() - 1)
}

impl KeyRecord {
    /// A key with no permission, no tenant, no expiry, not revoked, default rate limit.
    pub fn new(id: impl Into<String>, hash: KeyHash, environment: Environment) -> Self {
        KeyRecord {
            hash,
            id: CompactString::from(id.into()),
            expires_at: None,
            details: None,
            rate_limit: None,
            permissions: Permissions::NONE,
            environment,
            revoked: false,
        }
    }

    /// The record of a plaintext token imported from elsewhere (hashed here; the id is derived
    /// from the hash with domain separation, so it is stable across imports).
    pub fn from_token(token: &Token<'_>) -> Self {
        let hash = KeyHash::of(token);
        KeyRecord::new(derived_id(&hash), hash, token.environment())
    }

    /// Sets the name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.set_name(name);
        self
    }

    /// Sets the permissions.
    pub fn with_permissions(mut self, permissions: Permissions) -> Self {
        self.permissions = permissions;
        self
    }

    /// Scopes the key to one tenant.
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.set_tenant(Some(tenant.into()));
        self
    }

    /// Sets an expiry time (see [`KeyRecord::set_expiry`] for its precision).
    pub fn with_expiry(mut self, at: SystemTime) -> Self {
        self.set_expiry(Some(at));
        self
    }

    /// Marks the key revoked.
    pub fn with_revoked(mut self, revoked: bool) -> Self {
        self.revoked = revoked;
        self
    }

    /// Sets the per-key rate limit in requests per second (0 is treated as 1).
    pub fn with_rate_limit(mut self, per_second: u32) -> Self {
        self.rate_limit = Some(NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN));
        self
    }

    /// Adds a metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata_mut().insert(key.into(), value.into());
        self
    }

    /// Public identifier (never secret), e.g. `key_3f9a…`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Human-readable name (empty when unset).
    pub fn name(&self) -> &str {
        self.details.as_ref().map_or("", |d| &d.name)
    }

    /// SHA-256 of the token.
    pub fn hash(&self) -> &KeyHash {
        &self.hash
    }

    /// Live or test.
    pub fn environment(&self) -> Environment {
        self.environment
    }

    /// What the key may do.
    pub fn permissions(&self) -> Permissions {
        self.permissions
    }

    /// `Some(tenant)` for a tenant-scoped key, `None` for an organisation-level one.
    pub fn tenant(&self) -> Option<&str> {
        self.details.as_ref()?.tenant.as_deref()
    }

    /// After this instant the key is refused (`expired_api_key`).
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at.map(decode_expiry)
    }

    /// Whether the key is revoked (refused at once, `expired_api_key`).
    pub fn is_revoked(&self) -> bool {
        self.revoked
    }

    /// Requests per second for this key, overriding the layer's default.
    pub fn rate_limit(&self) -> Option<NonZeroU32> {
        self.rate_limit
    }

    /// Free metadata handed to the application with the key.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        self.details.as_ref().map_or(&NO_METADATA, |d| &d.metadata)
    }

    /// Sets the public identifier.
    pub fn set_id(&mut self, id: impl Into<String>) {
        self.id = CompactString::from(id.into());
    }

    /// Sets the hash (a rotation: the record now answers to another token).
    pub fn set_hash(&mut self, hash: KeyHash) {
        self.hash = hash;
    }

    /// Sets the environment.
    pub fn set_environment(&mut self, environment: Environment) {
        self.environment = environment;
    }

    /// Sets the permissions.
    pub fn set_permissions(&mut self, permissions: Permissions) {
        self.permissions = permissions;
    }

    /// Sets the name (empty for none).
    pub fn set_name(&mut self, name: impl Into<String>) {
        let name = name.into();
        self.edit_details(|d| d.name = name);
    }

    /// Scopes the key to a tenant, or (`None`) makes it organisation-level.
    pub fn set_tenant(&mut self, tenant: Option<String>) {
        self.edit_details(|d| d.tenant = tenant);
    }

    /// Sets or clears the expiry. Kept to the nanosecond from 1970 to about 2554; an instant
    /// before the Unix epoch reads back as the epoch (the key is expired either way), one
    /// after 2554 as the end of that range.
    pub fn set_expiry(&mut self, at: Option<SystemTime>) {
        self.expires_at = at.map(encode_expiry);
    }

    /// Revokes the key, or lifts its revocation.
    pub fn set_revoked(&mut self, revoked: bool) {
        self.revoked = revoked;
    }

    /// Sets (`None`: clears) the key's own rate limit in requests per second.
    pub fn set_rate_limit(&mut self, per_second: Option<NonZeroU32>) {
        self.rate_limit = per_second;
    }

    /// Replaces the metadata.
    pub fn set_metadata(&mut self, metadata: BTreeMap<String, String>) {
        self.edit_details(|d| d.metadata = metadata);
    }

    /// The metadata, to change in place.
    pub fn metadata_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.details.get_or_insert_with(Box::default).metadata
    }

    fn edit_details(&mut self, f: impl FnOnce(&mut Details)) {
        let details = self.details.get_or_insert_with(Box::default);
        f(details);
        if details.is_empty() {
            self.details = None;
        }
    }

    /// Neither revoked nor expired at `now`.
    pub fn is_usable_at(&self, now: SystemTime) -> bool {
        !self.revoked && !self.is_expired_at(now)
    }

    /// Whether the key has an expiry and `now` is at or past it.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| now >= decode_expiry(at))
    }

    /// Gives this record `other`'s hash and id (a store's update may change neither).
    pub(crate) fn keep_identity_of(&mut self, other: &KeyRecord) {
        self.hash = other.hash;
        self.id.clone_from(&other.id);
    }
}

impl PartialEq for KeyRecord {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
            && self.id == other.id
            && self.expires_at == other.expires_at
            && self.rate_limit == other.rate_limit
            && self.permissions == other.permissions
            && self.environment == other.environment
            && self.revoked == other.revoked
            && self.name() == other.name()
            && self.tenant() == other.tenant()
            && self.metadata() == other.metadata()
    }
}

impl Eq for KeyRecord {}

impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRecord")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("hash", &self.hash)
            .field("environment", &self.environment)
            .field("permissions", &self.permissions)
            .field("tenant", &self.tenant())
            .field("expires_at", &self.expires_at())
            .field("revoked", &self.revoked)
            .field("rate_limit", &self.rate_limit)
            .field("metadata", self.metadata())
            .finish()
    }
}

fn derived_id(hash: &KeyHash) -> String {
    let mut h = Sha256::new();
    h.update(b"ark-auth key id v1\0");
    h.update(hash.as_bytes());
    let d = h.finalize();
    format!("key_{}", hex::encode(&d[..8]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn usable_checks_revocation_and_expiry() {
        let t = Token::parse("ark_test_0123456789abcdefXYZ").unwrap();
        let now = SystemTime::now();
        let r = KeyRecord::from_token(&t);
        assert!(r.is_usable_at(now));
        assert!(!r.clone().with_revoked(true).is_usable_at(now));
        assert!(!r.clone().with_expiry(now).is_usable_at(now));
        assert!(r
            .clone()
            .with_expiry(now + Duration::from_secs(60))
            .is_usable_at(now));
        assert_eq!(
            KeyRecord::from_token(&t).id(),
            r.id(),
            "derived id is stable"
        );
    }

    #[test]
    fn compact_layout() {
        assert!(std::mem::size_of::<KeyRecord>() <= 80);
        let t = Token::parse("ark_test_0123456789abcdefXYZ").unwrap();
        let r = KeyRecord::from_token(&t);
        assert!(
            r.details.is_none(),
            "no name, tenant or metadata: no allocation"
        );
        assert_eq!(r.id().len(), 20);
        let named = r
            .clone()
            .with_name("n")
            .with_tenant("t")
            .with_metadata("k", "v");
        assert_eq!((named.name(), named.tenant()), ("n", Some("t")));
        assert_eq!(named.metadata()["k"], "v");
        let mut cleared = named.clone();
        cleared.set_name("");
        cleared.set_tenant(None);
        cleared.set_metadata(BTreeMap::new());
        assert!(cleared.details.is_none());
        assert_eq!(cleared, r);
        let mut emptied = named;
        emptied.set_name("");
        emptied.set_tenant(None);
        emptied.metadata_mut().clear();
        assert_eq!(emptied, r, "equality ignores an empty details box");
        let long = KeyRecord::new("x".repeat(100), r.hash, Environment::Live);
        assert_eq!(long.id(), "x".repeat(100));
    }

    #[test]
    fn expiry_round_trips_and_clamps() {
        let t = Token::parse("ark_test_0123456789abcdefXYZ").unwrap();
        let mut r = KeyRecord::from_token(&t);
        let now = SystemTime::now();
        for at in [
            now,
            now + Duration::from_nanos(1),
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::from_secs(4_000_000_000),
        ] {
            r.set_expiry(Some(at));
            assert_eq!(r.expires_at(), Some(at));
        }
        r.set_expiry(Some(now));
        assert!(r.is_expired_at(now) && !r.is_expired_at(now - Duration::from_nanos(1)));
        // Before the epoch: kept as the epoch, expired.
        r.set_expiry(Some(UNIX_EPOCH - Duration::from_secs(10)));
        assert_eq!(r.expires_at(), Some(UNIX_EPOCH));
        assert!(!r.is_usable_at(now));
        // Far future: clamped, still in the future.
        r.set_expiry(Some(UNIX_EPOCH + Duration::from_secs(1 << 40)));
        assert!(r.expires_at().unwrap() > UNIX_EPOCH + Duration::from_secs(18_000_000_000));
        assert!(r.is_usable_at(now));
        r.set_expiry(None);
        assert_eq!(r.expires_at(), None);
    }
}
