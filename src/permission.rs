//! The five Ark permissions and a compact set of them.

use std::fmt;
use std::str::FromStr;

/// One Ark permission (contract section 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// `emails:send`: send emails.
    EmailsSend,
    /// `emails:read`: read email status and details.
    EmailsRead,
    /// `domains:manage`: create and configure domains.
    DomainsManage,
    /// `webhooks:manage`: create and configure webhooks.
    WebhooksManage,
    /// `suppressions:manage`: manage the suppression list.
    SuppressionsManage,
}

impl Permission {
    /// Every permission, in wire order.
    pub const ALL: [Permission; 5] = [
        Permission::EmailsSend,
        Permission::EmailsRead,
        Permission::DomainsManage,
        Permission::WebhooksManage,
        Permission::SuppressionsManage,
    ];

    /// The wire name, e.g. `"emails:send"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Permission::EmailsSend => "emails:send",
            Permission::EmailsRead => "emails:read",
            Permission::DomainsManage => "domains:manage",
            Permission::WebhooksManage => "webhooks:manage",
            Permission::SuppressionsManage => "suppressions:manage",
        }
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A permission name that is not one of the five.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission {name:?} (known: emails:send, emails:read, domains:manage, webhooks:manage, suppressions:manage, or * for all)")]
pub struct UnknownPermission {
    /// The offending name, truncated to 64 characters.
    pub name: String,
}

impl FromStr for Permission {
    type Err = UnknownPermission;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPermission {
                name: s.chars().take(64).collect(),
            })
    }
}

/// A set of [`Permission`]s in one byte.
///
/// Parses from and prints to the wire names; `*` is the full set.
///
/// ```
/// use ark_auth::{Permission, Permissions};
///
/// let held = Permissions::parse_list(["emails:send", "emails:read"]).unwrap();
/// let required = Permissions::from(Permission::EmailsSend) | Permission::DomainsManage;
/// assert!(held.contains(Permission::EmailsSend));
/// assert_eq!(held.missing(required).to_string(), "domains:manage");
/// assert_eq!(Permissions::parse_list(["*"]).unwrap(), Permissions::ALL);
/// assert!(Permissions::parse_list(["emails:delete"]).is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Permissions(u8);

impl Permissions {
    /// The set as bits, one per permission in the order of [`Permission::ALL`].
    pub(crate) const fn bits(self) -> u8 {
        self.0
    }

    /// The set of the bits of `bits` that name a permission.
    pub(crate) const fn from_bits_truncate(bits: u8) -> Self {
        Permissions(bits & Permissions::ALL.0)
    }

    /// No permission.
    pub const NONE: Permissions = Permissions(0);
    /// Every permission (a full-access key).
    pub const ALL: Permissions = Permissions(0b1_1111);

    /// The set holding exactly `p`.
    pub const fn only(p: Permission) -> Self {
        Permissions(p.bit())
    }

    /// This set plus `p`.
    pub const fn with(self, p: Permission) -> Self {
        Permissions(self.0 | p.bit())
    }

    /// Whether `p` is in the set.
    pub const fn contains(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    /// Whether every permission of `other` is in this set.
    pub const fn contains_all(self, other: Permissions) -> bool {
        self.0 & other.0 == other.0
    }

    /// The permissions of `required` that this set lacks.
    pub const fn missing(self, required: Permissions) -> Permissions {
        Permissions(required.0 & !self.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The permissions in the set, in wire order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .into_iter()
            .filter(move |p| self.contains(*p))
    }

    /// Parses a list of wire names; `"*"` anywhere in it grants all. An unknown name is an
    /// error, never ignored.
    pub fn parse_list<I, S>(names: I) -> Result<Self, UnknownPermission>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = Permissions::NONE;
        for name in names {
            let name = name.as_ref();
            if name == "*" {
                set = Permissions::ALL;
            } else {
                set = set.with(name.parse()?);
            }
        }
        Ok(set)
    }

    /// The wire names separated by `sep`, each piece handed to `push` in order.
    pub(crate) fn write_names(self, mut push: impl FnMut(&str), sep: &str) {
        for (i, p) in self.iter().enumerate() {
            if i > 0 {
                push(sep);
            }
            push(p.as_str());
        }
    }
}

impl From<Permission> for Permissions {
    fn from(p: Permission) -> Self {
        Permissions::only(p)
    }
}

impl std::ops::BitOr for Permissions {
    type Output = Permissions;
    fn bitor(self, rhs: Permissions) -> Permissions {
        Permissions(self.0 | rhs.0)
    }
}

impl std::ops::BitOr<Permission> for Permissions {
    type Output = Permissions;
    fn bitor(self, rhs: Permission) -> Permissions {
        self.with(rhs)
    }
}

impl std::ops::BitOr for Permission {
    type Output = Permissions;
    fn bitor(self, rhs: Permission) -> Permissions {
        Permissions::only(self).with(rhs)
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        iter.into_iter().fold(Permissions::NONE, Permissions::with)
    }
}

/// Space-separated wire names (`emails:send domains:manage`); empty for the empty set.
impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut result = Ok(());
        self.write_names(|s| result = result.and_then(|()| f.write_str(s)), " ");
        result
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Permission::as_str))
            .finish()
    }
}

/// Parses space- or comma-separated wire names, or `*`.
impl FromStr for Permissions {
    type Err = UnknownPermission;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permissions::parse_list(
            s.split(|c: char| c == ',' || c.is_ascii_whitespace())
                .filter(|n| !n.is_empty()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>().unwrap(), p);
        }
        assert_eq!(
            Permissions::ALL.to_string(),
            "emails:send emails:read domains:manage webhooks:manage suppressions:manage"
        );
        assert_eq!(
            Permissions::ALL.to_string().parse::<Permissions>().unwrap(),
            Permissions::ALL
        );
        assert_eq!(Permissions::NONE.to_string(), "");
    }

    #[test]
    fn set_operations() {
        let s = Permission::EmailsSend | Permission::EmailsRead;
        assert!(s.contains(Permission::EmailsRead));
        assert!(!s.contains(Permission::DomainsManage));
        assert!(s.contains_all(Permissions::only(Permission::EmailsSend)));
        assert!(!s.contains_all(Permissions::ALL));
        assert!(Permissions::ALL.contains_all(s));
        assert!(s.contains_all(Permissions::NONE));
        assert_eq!(
            s.missing(Permission::EmailsSend | Permission::WebhooksManage),
            Permissions::only(Permission::WebhooksManage)
        );
        assert_eq!(Permissions::ALL.iter().count(), 5);
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(Permissions::parse_list(["emails:send", "emails:sendx"]).is_err());
        assert!(Permissions::parse_list(["Emails:Send"]).is_err());
        assert!(Permissions::parse_list([""]).is_err());
        assert_eq!(
            Permissions::parse_list(Vec::<String>::new()).unwrap(),
            Permissions::NONE
        );
        assert_eq!(
            "emails:send, emails:read"
                .parse::<Permissions>()
                .unwrap()
                .iter()
                .count(),
            2
        );
        assert_eq!("*".parse::<Permissions>().unwrap(), Permissions::ALL);
    }
}
