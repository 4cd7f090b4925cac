//! Rotation: a successor for a key, and the end of the old key's grace period.
//!
//! The decisions are plain functions here; the stores
//! ([`MemoryKeyStore::rotate`](crate::MemoryKeyStore::rotate), and `PostgresKeyStore::rotate`
//! with the `postgres` feature) apply them.

use std::fmt;
use std::time::{Duration, SystemTime};

use super::{generate_key, GeneratedKey, KeyGenError, KeyRecord};
use crate::store::StoreError;

/// Why a key was not rotated. Never contains a key.
#[derive(Debug)]
#[non_exhaustive]
pub enum RotateError {
    /// No key has this id.
    UnknownKey {
        /// The id asked for.
        id: String,
    },
    /// The key is revoked: it is refused already, there is nothing to hand over.
    Revoked {
        /// The key's id.
        id: String,
    },
    /// The key has expired: it is refused already, there is nothing to hand over.
    Expired {
        /// The key's id.
        id: String,
    },
    /// No successor could be minted.
    KeyGen(KeyGenError),
    /// The store could not answer or could not store the successor (the cause is its
    /// [`source`](std::error::Error::source)).
    Store(StoreError),
}

impl fmt::Display for RotateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RotateError::UnknownKey { id } => write!(f, "no key with id {id:?}"),
            RotateError::Revoked { id } => write!(
                f,
                "key {id:?} is revoked; a revoked key is not rotated (create a new key instead)"
            ),
            RotateError::Expired { id } => write!(
                f,
                "key {id:?} has expired; an expired key is not rotated (create a new key instead)"
            ),
            RotateError::KeyGen(e) => fmt::Display::fmt(e, f),
            RotateError::Store(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for RotateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RotateError::Store(e) => e.source(),
            _ => None,
        }
    }
}

impl From<KeyGenError> for RotateError {
    fn from(e: KeyGenError) -> Self {
        RotateError::KeyGen(e)
    }
}

impl From<StoreError> for RotateError {
    fn from(e: StoreError) -> Self {
        RotateError::Store(e)
    }
}

/// Whether `old` may be rotated at `now`: it must be neither revoked nor expired.
pub(crate) fn check_rotatable(old: &KeyRecord, now: SystemTime) -> Result<(), RotateError> {
    if old.is_revoked() {
        return Err(RotateError::Revoked {
            id: old.id().to_owned(),
        });
    }
    if old.is_expired_at(now) {
        return Err(RotateError::Expired {
            id: old.id().to_owned(),
        });
    }
    Ok(())
}

/// When the old key stops working: `grace` after `now`, or its own expiry when that comes
/// first (a rotation never extends a key's life).
pub(crate) fn grace_end(old: &KeyRecord, now: SystemTime, grace: Duration) -> SystemTime {
    let end = now
        .checked_add(grace)
        .unwrap_or(now + Duration::from_secs(1 << 40));
    match old.expires_at() {
        Some(at) if at < end => at,
        _ => end,
    }
}

/// The successor of `old`: a new token and id, the same name, environment, permissions,
/// tenant, rate limit and metadata, no expiry, not revoked.
pub(crate) fn successor(old: &KeyRecord) -> Result<GeneratedKey, KeyGenError> {
    let fresh = generate_key(old.environment())?;
    let mut record = old.clone();
    record.set_id(fresh.record.id());
    record.set_hash(*fresh.record.hash());
    record.set_expiry(None);
    record.set_revoked(false);
    Ok(GeneratedKey {
        plaintext: fresh.plaintext,
        record,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permission::Permission;
    use crate::token::{Environment, Token};

    fn old() -> KeyRecord {
        let t = Token::parse("ark_live_0123456789abcdefXYZ").unwrap();
        KeyRecord::from_token(&t)
            .with_name("billing")
            .with_permissions(Permission::EmailsSend | Permission::EmailsRead)
            .with_tenant("tn_42")
            .with_rate_limit(7)
            .with_metadata("team", "payments")
    }

    #[test]
    fn successor_copies_everything_but_the_secret_id_expiry_and_revocation() {
        let old = old().with_expiry(SystemTime::now() + Duration::from_secs(60));
        let next = successor(&old).unwrap();
        let r = &next.record;
        assert_ne!(r.id(), old.id());
        assert_ne!(r.hash(), old.hash());
        let token = Token::parse(next.plaintext.expose_secret()).unwrap();
        assert_eq!(crate::key::KeyHash::of(&token), *r.hash());
        assert_eq!(r.environment(), Environment::Live);
        assert!(next.plaintext.expose_secret().starts_with("ark_live_"));
        assert_eq!(
            (r.name(), r.permissions(), r.tenant()),
            (old.name(), old.permissions(), old.tenant())
        );
        assert_eq!(r.rate_limit(), old.rate_limit());
        assert_eq!(r.metadata(), old.metadata());
        assert_eq!(r.expires_at(), None);
        assert!(!r.is_revoked());
    }

    #[test]
    fn grace_ends_at_the_earlier_of_grace_and_own_expiry() {
        let now = SystemTime::now();
        let h = Duration::from_secs(3600);
        assert_eq!(grace_end(&old(), now, h), now + h);
        let soon = now + Duration::from_secs(60);
        assert_eq!(grace_end(&old().with_expiry(soon), now, h), soon);
        let later = now + 2 * h;
        assert_eq!(grace_end(&old().with_expiry(later), now, h), now + h);
        assert_eq!(grace_end(&old(), now, Duration::ZERO), now);
        assert!(grace_end(&old(), now, Duration::MAX) > now + h);
    }

    #[test]
    fn revoked_and_expired_keys_are_refused_by_name() {
        let now = SystemTime::now();
        assert!(check_rotatable(&old(), now).is_ok());
        let e = check_rotatable(&old().with_revoked(true), now).unwrap_err();
        assert!(matches!(e, RotateError::Revoked { .. }), "{e}");
        assert!(e.to_string().contains(old().id()), "{e}");
        let e = check_rotatable(&old().with_expiry(now), now).unwrap_err();
        assert!(matches!(e, RotateError::Expired { .. }), "{e}");
    }
}
