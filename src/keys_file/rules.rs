//! The rules of a keys-file entry: one [`RawEntry`] to one [`KeyRecord`], or what is wrong
//! with it (naming the member, never repeating its value). Keys files and
//! [`PlainRecord`](super::PlainRecord)s both go through [`record`].

use std::time::SystemTime;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::raw::{Got, RawEntry};
use crate::key::{KeyHash, KeyRecord};
use crate::limit::quotas_from_members;
use crate::permission::Permissions;
use crate::token::{Environment, Token};

/// The record an entry describes (a plaintext `key` is hashed here and dropped, zeroed).
pub(super) fn record(e: RawEntry) -> Result<KeyRecord, String> {
    if !e.object {
        return Err("must be an object".into());
    }
    if let Some(name) = e.unknown {
        return Err(format!("unknown field `{name}`"));
    }
    let environment = e
        .environment
        .present()
        .map_err(|()| "`environment` must be a string")?
        .map(|s| {
            s.parse::<Environment>()
                .map_err(|_| "`environment` must be \"live\" or \"test\"")
        })
        .transpose()?;
    let mut record = match (e.key, e.hash) {
        (Got::Absent, Got::Absent) => return Err("needs `key` (plaintext) or `hash`".into()),
        (k, h) if !k.is_absent() && !h.is_absent() => {
            return Err("has both `key` and `hash`; give one".into())
        }
        (Got::Value(k), _) => {
            let token = Token::parse(&k).ok_or(
                "`key` is not a valid API key (ark_live_ or ark_test_ followed by 16 to 128 letters and digits)",
            )?;
            if environment.is_some_and(|env| env != token.environment()) {
                return Err("`environment` does not match the key's prefix".into());
            }
            KeyRecord::from_token(&token)
        }
        (Got::Null | Got::Wrong, _) => return Err("`key` must be a string".into()),
        (Got::Absent, h) => {
            let h = h
                .present()
                .ok()
                .flatten()
                .ok_or("`hash` must be a string")?;
            let h = KeyHash::from_hex(&h)
                .map_err(|_| "`hash` must be 64 hex digits (SHA-256 of the key)")?;
            let env = environment
                .ok_or("an entry with `hash` needs `environment` (\"live\" or \"test\")")?;
            if e.id.is_absent() {
                return Err("an entry with `hash` needs `id`".into());
            }
            KeyRecord::new(String::new(), h, env) // id set below
        }
    };
    if let Some(id) = e.id.present().map_err(|()| "`id` must be a string")? {
        if id.is_empty() || id.len() > 128 {
            return Err("`id` must be 1 to 128 characters".into());
        }
        record.set_id(id);
    }
    if let Some(name) = e.name.present().map_err(|()| "`name` must be a string")? {
        record.set_name(name);
    }
    let names = e
        .permissions
        .present()
        .map_err(|()| "`permissions` must be a list of strings")?
        .ok_or("needs `permissions` (a list; [\"*\"] for full access)")?;
    record.set_permissions(Permissions::parse_list(names).map_err(|e| e.to_string())?);
    if let Some(t) = e
        .tenant
        .nullable()
        .map_err(|()| "`tenant` must be a string")?
    {
        if t.is_empty() {
            return Err("`tenant` must not be empty".into());
        }
        record.set_tenant(Some(t));
    }
    let expires_at = e
        .expires_at
        .nullable()
        .map_err(|()| "`expires_at` must be a string")?;
    if let Some(s) = expires_at {
        let at = OffsetDateTime::parse(&s, &Rfc3339).map_err(|_| {
            "`expires_at` must be an RFC 3339 time such as 2027-01-01T00:00:00Z".to_owned()
        })?;
        record.set_expiry(Some(SystemTime::from(at)));
    }
    if let Some(r) = e
        .revoked
        .present()
        .map_err(|()| "`revoked` must be true or false")?
    {
        record.set_revoked(r);
    }
    let rate_limit = e.rate_limit.nullable().and_then(|n| {
        n.map(|n| u32::try_from(n).ok().filter(|n| *n > 0).ok_or(()))
            .transpose()
    });
    if let Some(n) = rate_limit
        .map_err(|()| "`rate_limit` must be a whole number of requests per second, at least 1")?
    {
        record = record.with_rate_limit(n);
    }
    let rate_limits = e.rate_limits.nullable().map_err(|()| {
        "`rate_limits` must be an object from window to limit, e.g. {\"second\": 10, \"day\": 10000}"
    })?;
    if let Some(limits) = rate_limits {
        if record.rate_limits().is_some() {
            return Err("has both `rate_limit` and `rate_limits`; give one".into());
        }
        let limits = quotas_from_members(limits.iter().map(|(w, n)| (w.as_str(), *n)))
            .map_err(|e| format!("`rate_limits`: {e}"))?;
        record.set_rate_limits(Some(limits));
    }
    match e.metadata {
        Got::Absent => {}
        Got::Value(m) => record.set_metadata(m),
        Got::Null | Got::Wrong => return Err("`metadata` must be an object of strings".into()),
    }
    Ok(record)
}
