//! [`KeyRecord`], a stored key: everything about it but the secret.

use std::collections::BTreeMap;
use std::fmt;
use std::num::{NonZeroU32, NonZeroU64};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use compact_str::CompactString;
use sha2::{Digest, Sha256};

use super::KeyHash;
use crate::limit::{Quota, Quotas};
use crate::permission::Permissions;
use crate::token::{Environment, Token};

const SECOND: Duration = Duration::from_secs(1);

/// A stored API key: everything about it but the secret, which exists only as its hash.
///
/// Fields are private so that the layout can stay compact (a store holds a million of
/// these): read them with the accessors ([`KeyRecord::id`], [`KeyRecord::permissions`], …),
/// build with [`KeyRecord::new`] and the `with_*` methods, change with the `set_*` methods.
/// The id is kept inline up to 24 bytes (ids look like `key_<16 hex>`, 20 bytes); the
/// per-request fields are inline (a single per-second rate limit among them); the name,
/// tenant, metadata and any other rate limits sit behind one pointer, allocated only when
/// one of them is set.
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
    /// The key's own limits when they are one per-second limit.
    rate_limit: Option<NonZeroU32>,
    permissions: Permissions,
    environment: Environment,
    revoked: bool,
    /// The key's own limits are `details.rate_limits` (any other set than one per second).
    limits_in_details: bool,
}

/// The rarely read fields of a record, allocated only when one is set.
#[derive(Clone, Default)]
struct Details {
    name: String,
    tenant: Option<String>,
    metadata: BTreeMap<String, String>,
    // Boxed: most named keys have no limits of their own, and a `Quotas` inline would make
    // every key's details 104 bytes larger.
    rate_limits: Option<Box<Quotas>>,
}

impl Details {
    fn is_empty(&self) -> bool {
        self.name.is_empty()
            && self.tenant.is_none()
            && self.metadata.is_empty()
            && self.rate_limits.is_none()
    }
}

// A store keeps one record per key; its size is most of the store's bytes per key.
const _: () = assert!(std::mem::size_of::<KeyRecord>() <= 80);
// The details of a named key: three strings' worth, not a `Quotas` more.
const _: () = assert!(std::mem::size_of::<Details>() <= 80);

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
            limits_in_details: false,
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

    /// Sets the key's own rate limit to `per_second` requests per second (0 is treated as
    /// 1), replacing the layer's default and any other limit of the key.
    pub fn with_rate_limit(mut self, per_second: u32) -> Self {
        self.set_rate_limit(Some(NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN)));
        self
    }

    /// Sets the key's own rate limits, each with its window (10 per second and 10 000 per
    /// day, say), replacing the layer's default and any earlier limit of the key: a request
    /// must fit every one of them.
    ///
    /// ```
    /// use ark_auth::Environment;
    /// use ark_auth::key::{KeyHash, KeyRecord};
    /// use ark_auth::limit::Quotas;
    ///
    /// let limits: Quotas = "10/s,10000/d".parse().unwrap();
    /// let record = KeyRecord::new("key_1", KeyHash::from_bytes([1; 32]), Environment::Live)
    ///     .with_rate_limits(limits);
    /// assert_eq!(record.rate_limits(), Some(limits));
    /// assert_eq!(record.rate_limit().map(|n| n.get()), Some(10), "its per-second limit");
    /// ```
    pub fn with_rate_limits(mut self, limits: Quotas) -> Self {
        self.set_rate_limits(Some(limits));
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

    /// The key's own limit per second, if its own limits include one (they replace the
    /// layer's default; see [`KeyRecord::rate_limits`] for all of them).
    pub fn rate_limit(&self) -> Option<NonZeroU32> {
        if self.limits_in_details {
            let limits = self.rate_limits()?;
            let per_second = limits.iter().find(|q| q.window() == SECOND)?;
            return Some(per_second.limit());
        }
        self.rate_limit
    }

    /// The key's own rate limits, each with its window, which replace the layer's default;
    /// `None` when the key has none of its own.
    pub fn rate_limits(&self) -> Option<Quotas> {
        match (self.rate_limit, self.limits_in_details) {
            (Some(n), _) => Some(Quotas::one(Quota::per_second(n))),
            (None, false) => None,
            (None, true) => self.details.as_ref()?.rate_limits.as_deref().copied(),
        }
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

    /// Sets the key's own limits to one limit per second, or (`None`) clears all of the
    /// key's own limits (the layer's default applies).
    pub fn set_rate_limit(&mut self, per_second: Option<NonZeroU32>) {
        self.set_rate_limits(per_second.map(|n| Quotas::one(Quota::per_second(n))));
    }

    /// Sets the key's own limits (see [`KeyRecord::with_rate_limits`]), or (`None`) clears
    /// them. They are kept shortest window first (so two records with the same limits are
    /// equal whatever order they were given in). One limit per second is kept inline; any
    /// other set in the allocated details.
    pub fn set_rate_limits(&mut self, limits: Option<Quotas>) {
        let limits = limits.map(shortest_window_first);
        let inline = limits.and_then(|q| match q.as_slice() {
            [one] if one.window() == SECOND => Some(one.limit()),
            _ => None,
        });
        let boxed = limits.filter(|_| inline.is_none()).map(Box::new);
        self.rate_limit = inline;
        self.limits_in_details = boxed.is_some();
        if boxed.is_some() || self.details.is_some() {
            self.edit_details(|d| d.rate_limits = boxed);
        }
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
            && self.rate_limits() == other.rate_limits()
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
            .field("rate_limits", &self.rate_limits())
            .field("metadata", self.metadata())
            .finish()
    }
}

fn shortest_window_first(quotas: Quotas) -> Quotas {
    let mut sorted = [Quota::DEFAULT; Quotas::MAX];
    let sorted = &mut sorted[..quotas.len()];
    sorted.copy_from_slice(quotas.as_slice());
    sorted.sort_by_key(Quota::window);
    Quotas::new(sorted).unwrap_or(quotas)
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
    fn several_rate_limits_live_in_the_details_one_per_second_inline() {
        let t = Token::parse("ark_test_0123456789abcdefXYZ").unwrap();
        let r = KeyRecord::from_token(&t);
        assert_eq!((r.rate_limits(), r.rate_limit()), (None, None));
        let per_second = r.clone().with_rate_limit(7);
        assert!(
            per_second.details.is_none(),
            "one per-second limit: no allocation"
        );
        assert_eq!(per_second.rate_limits(), Some("7/s".parse().unwrap()));
        let same: Quotas = "7/second".parse().unwrap();
        assert_eq!(r.clone().with_rate_limits(same), per_second);
        assert!(r.clone().with_rate_limits(same).details.is_none());

        let several: Quotas = "10/s,100/min,10000/d".parse().unwrap();
        let shuffled: Quotas = "10000/d,10/s,100/min".parse().unwrap();
        assert_eq!(
            r.clone().with_rate_limits(shuffled).rate_limits(),
            Some(several)
        );
        let mut k = r.clone().with_rate_limits(several);
        assert_eq!(k.rate_limits(), Some(several));
        assert_eq!(k.rate_limit().map(NonZeroU32::get), Some(10));
        assert_eq!(k.name(), "");
        assert_ne!(k, per_second);
        assert!(format!("{k:?}").contains("86400"), "{k:?}");
        let per_minute: Quotas = "100/min".parse().unwrap();
        k.set_rate_limits(Some(per_minute));
        assert_eq!((k.rate_limits(), k.rate_limit()), (Some(per_minute), None));
        // Back to one per second: inline again, the details box gone.
        k.set_rate_limit(NonZeroU32::new(3));
        assert_eq!(k.rate_limits(), Some("3/s".parse().unwrap()));
        assert!(k.details.is_none());
        // Names stay when the limits go.
        let mut named = r.clone().with_name("n").with_rate_limits(several);
        named.set_rate_limits(None);
        assert_eq!((named.name(), named.rate_limits()), ("n", None));
        named.set_name("");
        assert!(named.details.is_none());
        assert_eq!(named, r);
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
