//! One keys-file entry as read, before any rule is applied: each member absent, `null`, a
//! value of the type it must have, or [`Got::Wrong`]. Reading never fails on a value of the
//! wrong type (that is a rule, checked later with a message naming the member), and never
//! builds a `serde_json::Value`: entries are read straight from the text.
//!
//! A new member is one field here, one arm in [`RawEntry`]'s visitor and its rule in
//! `rules.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use zeroize::Zeroizing;

/// A member's value as read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) enum Got<T> {
    /// The member is not in the entry.
    #[default]
    Absent,
    /// `null`.
    Null,
    /// A value of the expected type.
    Value(T),
    /// A value of another type (its text is not kept).
    Wrong,
}

impl<T> Got<T> {
    /// `Absent` and `Null` as `None`; `Err(())` for a value of the wrong type.
    pub(super) fn nullable(self) -> Result<Option<T>, ()> {
        match self {
            Got::Absent | Got::Null => Ok(None),
            Got::Value(v) => Ok(Some(v)),
            Got::Wrong => Err(()),
        }
    }

    /// `None` when absent; `Err(())` for `null` or a value of the wrong type.
    pub(super) fn present(self) -> Result<Option<T>, ()> {
        match self {
            Got::Absent => Ok(None),
            Got::Value(v) => Ok(Some(v)),
            Got::Null | Got::Wrong => Err(()),
        }
    }

    pub(super) fn is_absent(&self) -> bool {
        matches!(self, Got::Absent)
    }
}

impl<T> From<Option<T>> for Got<T> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Got::Absent, Got::Value)
    }
}

/// An entry's members as read.
#[derive(Default)]
pub(super) struct RawEntry {
    /// `false` when the entry is not a JSON object (then every member is absent).
    pub(super) object: bool,
    /// The first member that is not one of an entry's (its name, at most 64 characters).
    pub(super) unknown: Option<String>,
    /// The plaintext, zeroed when dropped.
    pub(super) key: Got<Zeroizing<String>>,
    pub(super) hash: Got<String>,
    pub(super) id: Got<String>,
    pub(super) name: Got<String>,
    pub(super) environment: Got<String>,
    pub(super) permissions: Got<Vec<String>>,
    pub(super) tenant: Got<String>,
    pub(super) expires_at: Got<String>,
    pub(super) revoked: Got<bool>,
    pub(super) rate_limit: Got<u64>,
    /// `rate_limits`: window and limit (`None` when not an unsigned integer), in order.
    pub(super) rate_limits: Got<Vec<(String, Option<u64>)>>,
    pub(super) metadata: Got<BTreeMap<String, String>>,
}

impl RawEntry {
    /// The `key` member's string, if it is one.
    pub(super) fn key(&self) -> Option<&str> {
        match &self.key {
            Got::Value(k) => Some(k),
            _ => None,
        }
    }

    /// Every other string read from the entry (names of members included), for the error
    /// scrubber: a key pasted into any of them must not come back in a message.
    pub(super) fn strings(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for g in [
            &self.hash,
            &self.id,
            &self.name,
            &self.environment,
            &self.tenant,
            &self.expires_at,
        ] {
            if let Got::Value(s) = g {
                out.push(s);
            }
        }
        if let Got::Value(p) = &self.permissions {
            out.extend(p.iter().map(String::as_str));
        }
        if let Got::Value(m) = &self.metadata {
            out.extend(m.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]));
        }
        if let Got::Value(limits) = &self.rate_limits {
            out.extend(limits.iter().map(|(window, _)| window.as_str()));
        }
        out.extend(self.unknown.as_deref());
        out
    }
}

/// What a member's value may be; the default of each is "the wrong type".
pub(super) trait Expected: Sized {
    fn from_str(_: &str) -> Option<Self> {
        None
    }
    fn from_string(s: String) -> Option<Self> {
        Self::from_str(&s)
    }
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
    fn from_u64(_: u64) -> Option<Self> {
        None
    }
    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

impl Expected for String {
    fn from_str(s: &str) -> Option<Self> {
        Some(s.to_owned())
    }
    fn from_string(s: String) -> Option<Self> {
        Some(s)
    }
}

impl Expected for Zeroizing<String> {
    fn from_str(s: &str) -> Option<Self> {
        Some(Zeroizing::new(s.to_owned()))
    }
    fn from_string(s: String) -> Option<Self> {
        Some(Zeroizing::new(s))
    }
}

impl Expected for bool {
    fn from_bool(b: bool) -> Option<Self> {
        Some(b)
    }
}

impl Expected for u64 {
    fn from_u64(n: u64) -> Option<Self> {
        Some(n)
    }
}

/// A list of strings (`Wrong` when any element is not one).
impl Expected for Vec<String> {
    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        let mut out = Vec::new();
        let mut wrong = false;
        while let Some(item) = seq.next_element::<Got<String>>()? {
            match item {
                Got::Value(s) if !wrong => out.push(s),
                _ => wrong = true,
            }
        }
        Ok((!wrong).then_some(out))
    }
}

/// An object of limits by window (a value that is not an unsigned integer kept as `None`,
/// for a message naming its window).
impl Expected for Vec<(String, Option<u64>)> {
    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let mut out = Vec::new();
        while let Some((window, n)) = map.next_entry::<String, Got<u64>>()? {
            out.push((window, n.present().ok().flatten()));
        }
        Ok(Some(out))
    }
}

/// An object of strings (`Wrong` when any value is not one).
impl Expected for BTreeMap<String, String> {
    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let mut out = BTreeMap::new();
        let mut wrong = false;
        while let Some((k, v)) = map.next_entry::<String, Got<String>>()? {
            match v {
                Got::Value(v) if !wrong => {
                    out.insert(k, v);
                }
                _ => wrong = true,
            }
        }
        Ok((!wrong).then_some(out))
    }
}

impl<'de, T: Expected> Deserialize<'de> for Got<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(GotVisitor(PhantomData))
    }
}

struct GotVisitor<T>(PhantomData<T>);

fn got<T>(v: Option<T>) -> Got<T> {
    v.map_or(Got::Wrong, Got::Value)
}

impl<'de, T: Expected> Visitor<'de> for GotVisitor<T> {
    type Value = Got<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Got<T>, E> {
        Ok(Got::Null)
    }
    // Formats with options (a row's NULL column) rather than JSON's null.
    fn visit_none<E>(self) -> Result<Got<T>, E> {
        Ok(Got::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Got<T>, D::Error> {
        Got::deserialize(d)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Got<T>, E> {
        Ok(got(T::from_bool(b)))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Got<T>, E> {
        Ok(got(T::from_u64(n)))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Got<T>, E> {
        Ok(got(u64::try_from(n).ok().and_then(T::from_u64)))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Got<T>, E> {
        Ok(Got::Wrong)
    }
    fn visit_str<E>(self, s: &str) -> Result<Got<T>, E> {
        Ok(got(T::from_str(s)))
    }
    fn visit_string<E>(self, s: String) -> Result<Got<T>, E> {
        Ok(got(T::from_string(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Got<T>, A::Error> {
        T::from_seq(seq).map(got)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Got<T>, A::Error> {
        T::from_map(map).map(got)
    }
}

impl<'de> Deserialize<'de> for RawEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = RawEntry;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a keys-file entry")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEntry, A::Error> {
        let mut e = RawEntry {
            object: true,
            ..RawEntry::default()
        };
        while let Some(member) = map.next_key::<Member>()? {
            match member {
                Member::Key => e.key = map.next_value()?,
                Member::Hash => e.hash = map.next_value()?,
                Member::Id => e.id = map.next_value()?,
                Member::Name => e.name = map.next_value()?,
                Member::Environment => e.environment = map.next_value()?,
                Member::Permissions => e.permissions = map.next_value()?,
                Member::Tenant => e.tenant = map.next_value()?,
                Member::ExpiresAt => e.expires_at = map.next_value()?,
                Member::Revoked => e.revoked = map.next_value()?,
                Member::RateLimit => e.rate_limit = map.next_value()?,
                Member::RateLimits => e.rate_limits = map.next_value()?,
                Member::Metadata => e.metadata = map.next_value()?,
                Member::Other(name) => {
                    if e.unknown.is_none() {
                        e.unknown = Some(name);
                    }
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(e)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawEntry, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(RawEntry::default())
    }

    fn visit_unit<E>(self) -> Result<RawEntry, E> {
        Ok(RawEntry::default())
    }
    fn visit_bool<E>(self, _: bool) -> Result<RawEntry, E> {
        Ok(RawEntry::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<RawEntry, E> {
        Ok(RawEntry::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<RawEntry, E> {
        Ok(RawEntry::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<RawEntry, E> {
        Ok(RawEntry::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<RawEntry, E> {
        Ok(RawEntry::default())
    }
}

/// An entry's member name, read without allocating (an unknown one keeps at most 64
/// characters of its name).
enum Member {
    Key,
    Hash,
    Id,
    Name,
    Environment,
    Permissions,
    Tenant,
    ExpiresAt,
    Revoked,
    RateLimit,
    RateLimits,
    Metadata,
    Other(String),
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_identifier(MemberVisitor)
    }
}

struct MemberVisitor;

impl Visitor<'_> for MemberVisitor {
    type Value = Member;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E>(self, s: &str) -> Result<Member, E> {
        Ok(match s {
            "key" => Member::Key,
            "hash" => Member::Hash,
            "id" => Member::Id,
            "name" => Member::Name,
            "environment" => Member::Environment,
            "permissions" => Member::Permissions,
            "tenant" => Member::Tenant,
            "expires_at" => Member::ExpiresAt,
            "revoked" => Member::Revoked,
            "rate_limit" => Member::RateLimit,
            "rate_limits" => Member::RateLimits,
            "metadata" => Member::Metadata,
            other => Member::Other(other.chars().take(64).collect()),
        })
    }
}
