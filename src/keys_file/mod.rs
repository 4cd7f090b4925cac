//! The JSON keys file (feature `serde`): loading it into records, and writing a record in
//! the form the file accepts.
//!
//! ```json
//! {"keys": [
//!   {"key": "ark_test_…", "name": "ci", "permissions": ["emails:send"], "tenant": "tn_42",
//!    "expires_at": "2027-01-01T00:00:00Z", "revoked": false, "rate_limit": 10},
//!   {"hash": "<64 hex digits>", "environment": "live", "id": "key_…", "permissions": ["*"]}
//! ]}
//! ```
//!
//! An entry has either `key` (a plaintext token, hashed at load) or `hash` (as printed by
//! [`record_to_json`] and the `keygen` example) with `environment`. `permissions` is
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::json_members::{first_repeated_member, Repeated, Step};
use crate::key::{KeyHash, KeyRecord};
use crate::limit::{quotas_from_json, quotas_to_json};
use crate::permission::Permissions;
use crate::token::{Environment, Token};

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
        scrub(file_error(format!("cannot read {shown}: {e}")), &shown)
    })?);
    parse(&text)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    keys: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    key: Option<Value>,
    hash: Option<Value>,
    id: Option<Value>,
    name: Option<Value>,
    environment: Option<Value>,
    permissions: Option<Value>,
    tenant: Option<Value>,
    expires_at: Option<Value>,
    revoked: Option<Value>,
    rate_limit: Option<Value>,
    rate_limits: Option<Value>,
    metadata: Option<Value>,
}

/// Parses the text of a keys file into records (plaintext keys hashed here; the decoded
/// plaintexts are zeroed once hashed).
///
/// An error never repeats any 8 or more characters of a key found in the file, whichever
/// field it was put in (they are cut out of the message as `…`).
pub fn parse(json: &str) -> Result<Vec<KeyRecord>, KeysFileError> {
    parse_records(json).map_err(|e| scrub(e, json))
}

fn parse_records(json: &str) -> Result<Vec<KeyRecord>, KeysFileError> {
    // Before anything is read into values, which would keep the last of two members.
    if let Some(repeated) = first_repeated_member(json) {
        return Err(repeated_member_error(json, repeated));
    }
    // serde_json's syntax errors give a line and column, never the text.
    let file: File = serde_json::from_str(json).map_err(|e| {
        let what = if e.is_data() {
            "must be an object {\"keys\": [...]} and nothing else".to_owned()
        } else {
            format!("invalid JSON at line {} column {}", e.line(), e.column())
        };
        file_error(what)
    })?;
    let mut records = Vec::with_capacity(file.keys.len());
    let mut hashes = HashSet::new();
    let mut ids = HashSet::new();
    for (i, value) in file.keys.into_iter().enumerate() {
        let name = entry_name(&value);
        let err = |reason: String| KeysFileError {
            entry: Some(i),
            name: name.clone(),
            reason,
        };
        let record = entry(value).map_err(err)?;
        if !hashes.insert(*record.hash()) {
            return Err(err("the same key appears in an earlier entry".into()));
        }
        if !ids.insert(record.id().to_owned()) {
            return Err(err(format!(
                "id {:?} appears in an earlier entry",
                record.id()
            )));
        }
        records.push(record);
    }
    Ok(records)
}

/// The `name` of an entry as an error shows it: at most 64 characters, and not at all when
/// it holds something like a key.
fn entry_name(entry: &Value) -> Option<String> {
    entry.get("name").and_then(Value::as_str).map(redacted_name)
}

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

/// Why the keys file could not load `record` back, if it could not.
fn unloadable(record: &KeyRecord) -> Option<String> {
    if record.id().is_empty() || record.id().len() > 128 {
        return Some("`id` must be 1 to 128 characters".into());
    }
    if record.tenant() == Some("") {
        return Some("`tenant` must not be empty".into());
    }
    None
}

/// The error for a member that appears twice in one object: it names the entry (when the
/// object is an entry or inside one) and the member.
fn repeated_member_error(json: &str, repeated: Repeated) -> KeysFileError {
    let member: String = repeated.member.chars().take(64).collect();
    let twice = format!("member {member:?} appears twice");
    let (entry, inside) = match repeated.object.as_slice() {
        [] => return file_error(format!("{twice} in the top-level object")),
        [Step::Member(keys), Step::Index(i), inside @ ..] if keys == "keys" => (*i, inside),
        inside => return file_error(format!("{twice} in `{}`", render_path(inside))),
    };
    let name = serde_json::from_str::<Value>(json)
        .ok()
        .and_then(|file| file.get("keys")?.get(entry).and_then(entry_name));
    let reason = if inside.is_empty() {
        twice
    } else {
        format!("{twice} in `{}`", render_path(inside))
    };
    KeysFileError {
        entry: Some(entry),
        name,
        reason,
    }
}

/// `metadata`, `a.b[0]`: where a value is, for an error.
fn render_path(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Member(m) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.extend(m.chars().take(64));
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Runs of 8 or more characters a keys-file error must not repeat: every string under a
/// `key` field, and every `ark_live_`/`ark_test_` word anywhere in the text.
fn secrets_in(json: &str) -> Vec<Zeroizing<String>> {
    let mut out = Vec::new();
    for prefix in ["ark_live_", "ark_test_"] {
        for (i, _) in json.match_indices(prefix) {
            let rest = &json[i + prefix.len()..];
            let n = rest.bytes().take_while(u8::is_ascii_alphanumeric).count();
            out.push(Zeroizing::new(rest[..n].to_owned()));
        }
    }
    if let Ok(Value::Object(file)) = serde_json::from_str::<Value>(json) {
        if let Some(Value::Array(keys)) = file.get("keys") {
            for entry in keys {
                if let Some(Value::String(k)) = entry.get("key") {
                    out.push(Zeroizing::new(k.clone()));
                }
            }
        }
    }
    out.retain(|s| s.len() >= SCRUB_WINDOW);
    out
}

/// Shortest run of a secret that an error must not repeat.
const SCRUB_WINDOW: usize = 8;

/// Replaces every part of `text` that repeats 8+ characters of a secret with `…`.
///
/// Linear in the secrets' total length: the message (short) is indexed by its 8-byte
/// windows, and each secret's windows are looked up in it.
fn scrub_text(text: &str, secrets: &[Zeroizing<String>]) -> String {
    let bytes = text.as_bytes();
    let mut at: HashMap<&[u8], Vec<usize>> = HashMap::new();
    for (i, w) in bytes.windows(SCRUB_WINDOW).enumerate() {
        at.entry(w).or_default().push(i);
    }
    let mut hidden = vec![false; bytes.len()];
    for secret in secrets {
        for window in secret.as_bytes().windows(SCRUB_WINDOW) {
            for &start in at.get(window).into_iter().flatten() {
                hidden[start..start + SCRUB_WINDOW].fill(true);
            }
        }
    }
    if !hidden.contains(&true) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut in_hidden = false;
    for (i, c) in text.char_indices() {
        if hidden[i..i + c.len_utf8()].contains(&true) {
            if !in_hidden {
                out.push('…');
            }
            in_hidden = true;
        } else {
            out.push(c);
            in_hidden = false;
        }
    }
    out
}

fn scrub(mut e: KeysFileError, json: &str) -> KeysFileError {
    let secrets = secrets_in(json);
    if secrets.is_empty() {
        return e;
    }
    e.reason = scrub_text(&e.reason, &secrets);
    e.name = e.name.map(|n| scrub_text(&n, &secrets));
    e
}

fn string(v: &Value, field: &str) -> Result<String, String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("`{field}` must be a string"))
}

fn entry(value: Value) -> Result<KeyRecord, String> {
    if !value.is_object() {
        return Err("must be an object".into());
    }
    let mut e: Entry = serde_json::from_value(value).map_err(|e| {
        // Unknown-field errors name the field, never a value.
        let msg = e.to_string();
        if msg.starts_with("unknown field") {
            msg.split(", expected")
                .next()
                .unwrap_or("unknown field")
                .to_owned()
        } else {
            "malformed entry".to_owned()
        }
    })?;
    let environment = match &e.environment {
        Some(v) => Some(
            string(v, "environment")?
                .parse::<Environment>()
                .map_err(|_| "`environment` must be \"live\" or \"test\"".to_owned())?,
        ),
        None => None,
    };
    // The plaintext, moved out of the JSON value so that it is zeroed when dropped.
    let key = e.key.take().map(|v| match v {
        Value::String(s) => Some(Zeroizing::new(s)),
        _ => None,
    });
    let mut record = match (&key, &e.hash) {
        (Some(_), Some(_)) => return Err("has both `key` and `hash`; give one".into()),
        (None, None) => return Err("needs `key` (plaintext) or `hash`".into()),
        (Some(k), None) => {
            let k = k.as_deref().ok_or("`key` must be a string")?;
            let token = Token::parse(k).ok_or(
                "`key` is not a valid API key (ark_live_ or ark_test_ followed by 16 to 128 letters and digits)",
            )?;
            if environment.is_some_and(|env| env != token.environment()) {
                return Err("`environment` does not match the key's prefix".into());
            }
            KeyRecord::from_token(&token)
        }
        (None, Some(h)) => {
            let h = KeyHash::from_hex(&string(h, "hash")?)
                .map_err(|_| "`hash` must be 64 hex digits (SHA-256 of the key)".to_owned())?;
            let env = environment
                .ok_or("an entry with `hash` needs `environment` (\"live\" or \"test\")")?;
            let id = match &e.id {
                Some(_) => String::new(), // set below
                None => return Err("an entry with `hash` needs `id`".into()),
            };
            KeyRecord::new(id, h, env)
        }
    };
    if let Some(v) = &e.id {
        let id = string(v, "id")?;
        if id.is_empty() || id.len() > 128 {
            return Err("`id` must be 1 to 128 characters".into());
        }
        record.set_id(id);
    }
    if let Some(v) = &e.name {
        record.set_name(string(v, "name")?);
    }
    let perms = e
        .permissions
        .as_ref()
        .ok_or("needs `permissions` (a list; [\"*\"] for full access)")?;
    let names = perms
        .as_array()
        .ok_or("`permissions` must be a list of strings")?
        .iter()
        .map(|p| p.as_str().ok_or("`permissions` must be a list of strings"))
        .collect::<Result<Vec<_>, _>>()?;
    record.set_permissions(Permissions::parse_list(names).map_err(|e| e.to_string())?);
    if let Some(v) = &e.tenant {
        if !v.is_null() {
            let t = string(v, "tenant")?;
            if t.is_empty() {
                return Err("`tenant` must not be empty".into());
            }
            record.set_tenant(Some(t));
        }
    }
    if let Some(v) = &e.expires_at {
        if !v.is_null() {
            let s = string(v, "expires_at")?;
            let at = OffsetDateTime::parse(&s, &Rfc3339).map_err(|_| {
                "`expires_at` must be an RFC 3339 time such as 2027-01-01T00:00:00Z".to_owned()
            })?;
            record.set_expiry(Some(SystemTime::from(at)));
        }
    }
    if let Some(v) = &e.revoked {
        record.set_revoked(v.as_bool().ok_or("`revoked` must be true or false")?);
    }
    if let Some(v) = &e.rate_limit {
        if !v.is_null() {
            let n = v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or("`rate_limit` must be a whole number of requests per second, at least 1")?;
            record = record.with_rate_limit(n);
        }
    }
    if let Some(v) = e.rate_limits.as_ref().filter(|v| !v.is_null()) {
        if e.rate_limit.as_ref().is_some_and(|v| !v.is_null()) {
            return Err("has both `rate_limit` and `rate_limits`; give one".into());
        }
        record.set_rate_limits(Some(quotas_from_json(v)?));
    }
    if let Some(v) = &e.metadata {
        let m = v
            .as_object()
            .ok_or("`metadata` must be an object of strings")?;
        let mut out = BTreeMap::new();
        for (k, v) in m {
            out.insert(
                k.clone(),
                v.as_str()
                    .ok_or("`metadata` values must be strings")?
                    .to_owned(),
            );
        }
        record.set_metadata(out);
    }
    Ok(record)
}

/// The record as a keys-file entry, with `hash` (never a plaintext key).
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
pub fn record_to_json(record: &KeyRecord) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), record.id().into());
    m.insert("name".into(), record.name().into());
    m.insert("hash".into(), record.hash().to_hex().into());
    m.insert("environment".into(), record.environment().as_str().into());
    let perms: Vec<Value> = if record.permissions() == Permissions::ALL {
        vec!["*".into()]
    } else {
        record
            .permissions()
            .iter()
            .map(|p| p.as_str().into())
            .collect()
    };
    m.insert("permissions".into(), perms.into());
    if let Some(t) = record.tenant() {
        m.insert("tenant".into(), t.into());
    }
    if let Some(at) = record.expires_at() {
        if let Ok(s) = OffsetDateTime::from(at).format(&Rfc3339) {
            m.insert("expires_at".into(), s.into());
        }
    }
    m.insert("revoked".into(), record.is_revoked().into());
    if let Some(limits) = record.rate_limits() {
        match record.rate_limit().filter(|_| limits.len() == 1) {
            Some(per_second) => m.insert("rate_limit".into(), per_second.get().into()),
            None => m.insert("rate_limits".into(), quotas_to_json(&limits)),
        };
    }
    if !record.metadata().is_empty() {
        let md: Map<String, Value> = record
            .metadata()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        m.insert("metadata".into(), md.into());
    }
    Value::Object(m)
}

mod save;
#[cfg(test)]
mod save_tests;
#[cfg(test)]
mod tests;

pub use save::save;
