//! [`parse`]: the text of a keys file to records, all or nothing.

use crate::json_members::{self, Problem, Repeated, Step};
use crate::key::KeyRecord;

use super::raw::Got;
use super::stream::{for_each_entry, Seen, Stopped};
use super::{file_error, redacted_name, rules, scrub, KeysFileError};

/// Parses the text of a keys file into records (plaintext keys hashed here; the decoded
/// plaintexts are zeroed once hashed).
///
/// An error never repeats any 8 or more characters of a key found in the file, whichever
/// field it was put in (they are cut out of the message as `…`).
pub fn parse(json: &str) -> Result<Vec<KeyRecord>, KeysFileError> {
    parse_records(json).map_err(|e| scrub_error(e, json))
}

fn parse_records(json: &str) -> Result<Vec<KeyRecord>, KeysFileError> {
    // Before any entry is read, which would keep the last of two members. serde_json's
    // syntax errors give a line and column, never the text.
    match json_members::check(json) {
        Ok(()) => {}
        Err(Problem::Repeated(repeated)) => return Err(repeated_member_error(json, repeated)),
        Err(Problem::Syntax { line, column }) => {
            return Err(file_error(format!(
                "invalid JSON at line {line} column {column}"
            )))
        }
    }
    let mut records = Vec::new();
    let mut seen = Seen::new();
    let read = for_each_entry(json, |i, raw| {
        let name = match &raw.name {
            Got::Value(n) => Some(redacted_name(n)),
            _ => None,
        };
        let err = |reason: String| KeysFileError {
            entry: Some(i),
            name: name.clone(),
            reason,
        };
        let record = rules::record(raw).map_err(err)?;
        seen.note(&records, &record).map_err(err)?;
        records.push(record);
        Ok(())
    });
    match read {
        Ok(()) => Ok(records),
        Err(Stopped::Entry(e)) => Err(e),
        Err(Stopped::NotKeysObject) => Err(file_error(
            "must be an object {\"keys\": [...]} and nothing else",
        )),
    }
}

/// The name of entry `index`, as an error shows it.
fn name_of_entry(json: &str, index: usize) -> Option<String> {
    let mut name = None;
    let _ = for_each_entry(json, |i, raw| {
        if i < index {
            return Ok(());
        }
        if let Got::Value(n) = &raw.name {
            name = Some(redacted_name(n));
        }
        Err(())
    });
    name
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
    let reason = if inside.is_empty() {
        twice
    } else {
        format!("{twice} in `{}`", render_path(inside))
    };
    KeysFileError {
        entry: Some(entry),
        name: name_of_entry(json, entry),
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

/// Cuts out of `e` every run of 8+ characters of a key in `json`: a `key` value of any
/// entry, or an `ark_live_`/`ark_test_` word anywhere.
fn scrub_error(mut e: KeysFileError, json: &str) -> KeysFileError {
    let mut keys = Vec::new();
    let _ = for_each_entry(json, |_, mut raw| {
        if let Got::Value(k) = std::mem::take(&mut raw.key) {
            keys.push(k);
        }
        Ok::<(), ()>(())
    });
    let secrets = scrub::secrets_in(json, keys.iter().map(|k| k.as_str()));
    e.reason = scrub::scrub_text(&e.reason, &secrets);
    e.name = e.name.map(|n| scrub::scrub_text(&n, &secrets));
    e
}
