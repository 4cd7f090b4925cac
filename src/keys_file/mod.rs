//! The JSON keys file (feature `serde`): loading it into records ([`load`], [`parse`]),
//! saving records to it atomically ([`save`]), reloading it into a running store as a diff
//! ([`reload`]; on SIGHUP and file changes with `watch`, feature `reload`), and the plain
//! form of a record that SQL rows and documents map to ([`PlainRecord`], the same rules as
//! a file's entry).
//!
//! ```json
//! {"keys": [
//!   {"key": "ark_test_…", "name": "ci", "permissions": ["emails:send"], "tenant": "tn_42",
//!    "expires_at": "2027-01-01T00:00:00Z", "revoked": false, "rate_limit": 10},
//!   {"hash": "<64 hex digits>", "environment": "live", "id": "key_…", "permissions": ["*"]}
//! ]}
//! ```
//!
//! An entry has either `key` (a plaintext token, hashed at load) or `hash` (as written by
//! [`save`] and [`record_to_json`], and printed by the `keygen` example) with `environment`. `permissions` is
//! required (`["*"]` for full access); `id`, `name`, `tenant`, `expires_at` (RFC 3339),
//! `revoked`, `rate_limit` (requests per second) or `rate_limits` (several limits, each with
//! its window: `{"second": 10, "day": 10000}`; windows `second`, `minute`, `hour`, `day`, or
//! a count with `ms`, `s`, `min`, `h`, `d` such as `30s`) and `metadata` (string values) are
//! optional.
//! Unknown fields, unknown permissions, duplicate keys or ids, and a member repeated inside
//! any object (`"revoked"` twice in an entry, a `metadata` name twice, `"keys"` twice) are
//! errors: loading is all or nothing, and every error names the entry (by index and name)
//! and, for a repeated member, the member, without repeating any key.
//!
//! Loading reads entries straight from the text (no JSON tree of the file): it holds the
//! file's text, the records and 4 bytes per entry for the duplicate checks.
//!
//! ```
//! let records = ark_auth::keys_file::parse(r#"{"keys": [
//!     {"key": "ark_test_0123456789abcdefXYZ", "name": "ci", "permissions": ["emails:send"]}
//! ]}"#).unwrap();
//! assert_eq!(records[0].name(), "ci");
//!
//! let err = ark_auth::keys_file::parse(r#"{"keys": [
//!     {"key": "ark_test_0123456789abcdefXYZ", "name": "ci", "permissions": ["emails:sned"]}
//! ]}"#).unwrap_err();
//! assert!(err.to_string().contains("entry 0 (\"ci\")"));
//! ```

use std::fmt;
use std::path::Path;

use zeroize::Zeroizing;

use crate::key::KeyRecord;

mod parse;
mod plain;
mod raw;
mod reload;
mod rules;
mod save;
mod scrub;
mod stream;

pub use parse::parse;
pub use plain::{InvalidRecord, PlainRecord};
pub use reload::reload;
#[cfg(feature = "reload")]
pub use reload::{watch, KeysFileWatcher};
pub use save::save;

/// A keys file that cannot be loaded. Never contains a key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeysFileError {
    /// Index of the offending entry in `keys`, when the error is about one entry.
    pub entry: Option<usize>,
    /// Its `name`, when it has one.
    pub name: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for KeysFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.entry, &self.name) {
            (Some(i), Some(n)) => write!(f, "keys file entry {i} ({n:?}): {}", self.reason),
            (Some(i), None) => write!(f, "keys file entry {i}: {}", self.reason),
            _ => write!(f, "keys file: {}", self.reason),
        }
    }
}

impl std::error::Error for KeysFileError {}

fn file_error(reason: impl Into<String>) -> KeysFileError {
    KeysFileError {
        entry: None,
        name: None,
        reason: reason.into(),
    }
}

/// Reads and parses a keys file. The file's text (which may hold plaintext keys) is zeroed
/// when dropped.
pub fn load(path: impl AsRef<Path>) -> Result<Vec<KeyRecord>, KeysFileError> {
    let path = path.as_ref();
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        let shown = path.display().to_string();
        let secrets = scrub::secrets_in(&shown, []);
        file_error(scrub::scrub_text(
            &format!("cannot read {shown}: {e}"),
            &secrets,
        ))
    })?);
    parse(&text)
}

/// A name as an error shows it: at most 64 characters, and not at all when it holds
/// something like a key.
fn redacted_name(n: &str) -> String {
    if n.contains("ark_live_") || n.contains("ark_test_") {
        "<redacted>".to_owned()
    } else {
        n.chars().take(64).collect()
    }
}

/// A record's name as an error shows it (`None` when it has none).
fn shown_name(name: &str) -> Option<String> {
    (!name.is_empty()).then(|| redacted_name(name))
}

/// The record as a keys-file entry, with `hash` (never a plaintext key): the JSON form of
/// its [`PlainRecord`].
///
/// ```
/// use ark_auth::{generate_key, Environment, Permission};
///
/// let key = generate_key(Environment::Test).unwrap();
/// let record = key.record.with_name("ci").with_permissions(Permission::EmailsSend.into());
/// let json = ark_auth::keys_file::record_to_json(&record);
/// let text = serde_json::json!({"keys": [json]}).to_string();
/// assert!(!text.contains(key.plaintext.expose_secret()));
/// assert_eq!(ark_auth::keys_file::parse(&text).unwrap()[0], record);
/// ```
pub fn record_to_json(record: &KeyRecord) -> serde_json::Value {
    serde_json::to_value(PlainRecord::from(record)).unwrap_or_default()
}

#[cfg(test)]
mod plain_tests;
#[cfg(test)]
mod save_tests;
#[cfg(test)]
mod tests;
