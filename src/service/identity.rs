//! [`IdentityHeaders`]: the headers that tell an upstream who called, set by the layer on
//! the requests it passes on, after it has removed every copy the client sent.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::authenticated::AuthenticatedKey;
use crate::token::Environment;

/// Bytes of a value that are percent-encoded: controls (newlines among them), space, `%`,
/// DEL and everything outside ASCII; what stays is visible ASCII.
const ENCODED: &AsciiSet = &CONTROLS.add(b' ').add(b'%');

/// Which headers the layer sets on a request it passes on, telling the service behind it
/// (an upstream, for a gateway) which key called: the key's id, name, environment,
/// permissions and tenant. Turned on with
/// [`ArkAuthLayer::identity_headers`](crate::ArkAuthLayer::identity_headers).
///
/// Before setting them the layer removes every header of these names the client sent (a
/// header name matches in any spelling of its case, and every repeated copy goes), on every
/// request it passes on: on a public route, and on an optional one
/// ([`Access::optional`](crate::Access::optional)) without credentials, the upstream gets
/// none of them, so a client can never make one up.
///
/// The defaults ([`IdentityHeaders::default`]):
///
/// | header | value |
/// |---|---|
/// | `x-ark-key-id` | the key's id |
/// | `x-ark-key-name` | the key's name |
/// | `x-ark-environment` | `live` or `test` |
/// | `x-ark-permissions` | the key's permissions, wire names separated by one space (empty for none) |
/// | `x-ark-tenant` | the key's tenant; absent for an organisation-level key |
///
/// Values are always valid header values: id, name and tenant are percent-encoded UTF-8
/// wherever they hold a byte outside visible ASCII, a space or a `%` (a name `"CI bot\n"`
/// arrives as `CI%20bot%0A`; `"Zoë"` as `Zo%C3%AB`), so a newline can never start a header
/// of its own and any percent-decoder gives back the exact text. Values of visible ASCII
/// without `%` (the usual ids and tenants) arrive unchanged.
///
/// ```
/// use ark_auth::service::IdentityHeaders;
/// use ark_auth::ArkAuthLayer;
/// use ark_auth::MemoryKeyStore;
/// use http::HeaderName;
///
/// // Kong's names for the key id and name; no permissions header.
/// let headers = IdentityHeaders::default()
///     .key_id(HeaderName::from_static("x-consumer-id"))
///     .name(HeaderName::from_static("x-consumer-username"))
///     .permissions(None);
/// let gateway = ArkAuthLayer::new(MemoryKeyStore::new()).identity_headers(headers);
/// # drop(gateway);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeaders {
    key_id: Option<HeaderName>,
    name: Option<HeaderName>,
    environment: Option<HeaderName>,
    permissions: Option<HeaderName>,
    tenant: Option<HeaderName>,
}

impl Default for IdentityHeaders {
    /// `x-ark-key-id`, `x-ark-key-name`, `x-ark-environment`, `x-ark-permissions`,
    /// `x-ark-tenant`.
    fn default() -> Self {
        IdentityHeaders {
            key_id: Some(HeaderName::from_static("x-ark-key-id")),
            name: Some(HeaderName::from_static("x-ark-key-name")),
            environment: Some(HeaderName::from_static("x-ark-environment")),
            permissions: Some(HeaderName::from_static("x-ark-permissions")),
            tenant: Some(HeaderName::from_static("x-ark-tenant")),
        }
    }
}

impl IdentityHeaders {
    /// The header carrying the key's id (`None`: not sent).
    pub fn key_id(mut self, name: impl Into<Option<HeaderName>>) -> Self {
        self.key_id = name.into();
        self
    }

    /// The header carrying the key's name (`None`: not sent).
    pub fn name(mut self, name: impl Into<Option<HeaderName>>) -> Self {
        self.name = name.into();
        self
    }

    /// The header carrying `live` or `test` (`None`: not sent).
    pub fn environment(mut self, name: impl Into<Option<HeaderName>>) -> Self {
        self.environment = name.into();
        self
    }

    /// The header carrying the key's permissions (`None`: not sent).
    pub fn permissions(mut self, name: impl Into<Option<HeaderName>>) -> Self {
        self.permissions = name.into();
        self
    }

    /// The header carrying a tenant-scoped key's tenant (`None`: not sent).
    pub fn tenant(mut self, name: impl Into<Option<HeaderName>>) -> Self {
        self.tenant = name.into();
        self
    }

    fn names(&self) -> impl Iterator<Item = &HeaderName> {
        [
            &self.key_id,
            &self.name,
            &self.environment,
            &self.permissions,
            &self.tenant,
        ]
        .into_iter()
        .flatten()
    }

    /// Removes every copy of these headers from `headers`, then sets them for `key`.
    pub(crate) fn apply(&self, headers: &mut HeaderMap, key: Option<&AuthenticatedKey>) {
        for name in self.names() {
            // Takes every value of the name; names are compared case-insensitively.
            headers.remove(name);
        }
        let Some(key) = key else { return };
        let mut set = |name: &Option<HeaderName>, value: HeaderValue| {
            if let Some(name) = name {
                headers.insert(name.clone(), value);
            }
        };
        set(&self.key_id, text_value(key.id()));
        set(&self.name, text_value(key.name()));
        let environment = match key.environment() {
            Environment::Live => "live",
            Environment::Test => "test",
        };
        set(&self.environment, HeaderValue::from_static(environment));
        if self.permissions.is_some() {
            let mut names = String::new();
            key.permissions().write_names(|s| names.push_str(s), " ");
            // Wire names and spaces only: always a valid value.
            let value =
                HeaderValue::try_from(names).unwrap_or_else(|_| HeaderValue::from_static(""));
            set(&self.permissions, value);
        }
        if let Some(tenant) = key.tenant() {
            set(&self.tenant, text_value(tenant));
        }
    }
}

/// `text` as a header value: percent-encoded where it holds a byte of [`ENCODED`].
pub(crate) fn text_value(text: &str) -> HeaderValue {
    let encoded = utf8_percent_encode(text, ENCODED).to_string();
    // Only visible ASCII is left: always a valid value.
    HeaderValue::try_from(encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{KeyHash, KeyRecord};
    use crate::permission::{Permission, Permissions};
    use std::sync::Arc;

    fn key(name: &str, tenant: Option<&str>) -> AuthenticatedKey {
        let mut r = KeyRecord::new("key_1", KeyHash::from_bytes([1; 32]), Environment::Test)
            .with_name(name)
            .with_permissions(Permissions::from(Permission::EmailsSend) | Permission::EmailsRead);
        if let Some(t) = tenant {
            r = r.with_tenant(t);
        }
        AuthenticatedKey::new(Arc::new(r))
    }

    #[test]
    fn values_are_visible_ascii_and_decode_to_the_text() {
        let cases = [
            ("ci", "ci"),
            ("CI bot\n", "CI%20bot%0A"),
            ("Zoë", "Zo%C3%AB"),
            ("100%", "100%25"),
            ("a\r\nx-ark-key-id: admin", "a%0D%0Ax-ark-key-id:%20admin"),
            ("\u{7f}\0\t", "%7F%00%09"),
            ("", ""),
        ];
        for (text, expected) in cases {
            let v = text_value(text);
            assert_eq!(v.to_str().unwrap(), expected, "{text:?}");
            assert!(v.as_bytes().iter().all(|b| (0x21..0x7f).contains(b)));
            let decoded = percent_encoding::percent_decode(v.as_bytes()).decode_utf8();
            assert_eq!(decoded.unwrap(), text);
        }
    }

    #[test]
    fn client_copies_go_in_every_spelling_and_the_keys_are_set() {
        let mut h = HeaderMap::new();
        h.append("X-Ark-Key-Id", HeaderValue::from_static("key_admin"));
        h.append("x-ark-key-id", HeaderValue::from_static("key_admin2"));
        h.append("X-ARK-TENANT", HeaderValue::from_static("tn_other"));
        h.append("x-other", HeaderValue::from_static("kept"));
        IdentityHeaders::default().apply(&mut h, Some(&key("ci\nbot", None)));
        assert_eq!(h.get_all("x-ark-key-id").iter().count(), 1);
        assert_eq!(h["x-ark-key-id"], "key_1");
        assert_eq!(h["x-ark-key-name"], "ci%0Abot");
        assert_eq!(h["x-ark-environment"], "test");
        assert_eq!(h["x-ark-permissions"], "emails:send emails:read");
        assert!(h.get("x-ark-tenant").is_none());
        assert_eq!(h["x-other"], "kept");

        let mut h = HeaderMap::new();
        h.append("x-ark-key-name", HeaderValue::from_static("spoof"));
        IdentityHeaders::default().apply(&mut h, None);
        assert!(h.is_empty());

        let custom = IdentityHeaders::default()
            .key_id(HeaderName::from_static("x-consumer-id"))
            .permissions(None);
        let mut h = HeaderMap::new();
        h.append("x-consumer-id", HeaderValue::from_static("spoof"));
        h.append("x-ark-permissions", HeaderValue::from_static("*"));
        custom.apply(&mut h, Some(&key("n", Some("tn_42"))));
        assert_eq!(h["x-consumer-id"], "key_1");
        assert_eq!(h["x-ark-tenant"], "tn_42");
        assert_eq!(
            h["x-ark-permissions"], "*",
            "a name no longer configured is left alone"
        );
    }
}
