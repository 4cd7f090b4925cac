//! What the commands print: a key as JSON or text, never a secret or a full hash.

use std::time::{Duration, SystemTime};

use ark_auth::key::KeyRecord;
use ark_auth::Permissions;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::backend::Listed;

/// Hex digits of the hash shown: enough to tell keys apart, never the whole hash.
const HASH_SHOWN: usize = 8;

/// An instant for `--json`: RFC 3339, to the stored precision.
pub fn rfc3339(at: SystemTime) -> String {
    OffsetDateTime::from(at)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "?".into())
}

/// An instant for people: RFC 3339 to the second.
pub fn when(at: SystemTime) -> String {
    let t = OffsetDateTime::from(at);
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "?".into())
}

/// `3d4h`, `23h59m`, `4m10s`, `12s`: the two largest units.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (d_, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d_, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d_}d{h}h"),
    }
}

pub fn status(k: &Listed, now: SystemTime) -> String {
    let r = &k.record;
    if r.is_revoked() {
        "revoked".into()
    } else if r.is_expired_at(now) {
        "expired".into()
    } else if let Some(at) = r.expires_at() {
        format!(
            "expires in {}",
            human(at.duration_since(now).unwrap_or_default())
        )
    } else {
        "active".into()
    }
}

fn permission_names(p: Permissions) -> Vec<&'static str> {
    if p == Permissions::ALL {
        vec!["*"]
    } else {
        p.iter().map(|p| p.as_str()).collect()
    }
}

pub fn hash_prefix(k: &Listed) -> String {
    format!("{}…", &k.record.hash().to_hex()[..HASH_SHOWN])
}

/// A key for `--json`.
pub fn key_json(k: &Listed, now: SystemTime) -> Value {
    let r = &k.record;
    json!({
        "id": r.id(),
        "name": r.name(),
        "environment": r.environment().as_str(),
        "status": status(k, now),
        "permissions": permission_names(r.permissions()),
        "tenant": r.tenant(),
        "expires_at": r.expires_at().map(rfc3339),
        "revoked": r.is_revoked(),
        "rate_limit": r.rate_limit().map(|n| n.get()),
        "rate_limits": r.rate_limits().map(|q| q.iter().map(ToString::to_string).collect::<Vec<_>>()),
        "metadata": r.metadata(),
        "hash_prefix": hash_prefix(k),
        "created_at": k.created_at.map(rfc3339),
        "last_used_at": k.last_used_at.map(rfc3339),
    })
}

fn or_dash(s: Option<String>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or_else(|| "-".into())
}

fn permissions_text(p: Permissions) -> String {
    or_dash(Some(permission_names(p).join(",")))
}

/// `key_… "name" (test; emails:send)`.
pub fn summary(k: &Listed) -> String {
    let r = &k.record;
    format!(
        "{} {:?} ({}; {})",
        r.id(),
        r.name(),
        r.environment(),
        permissions_text(r.permissions())
    )
}

/// The key's own rate limits, `10/s,1000/h`, or that the server's default applies.
pub fn limits_text(r: &KeyRecord) -> String {
    r.rate_limits()
        .map_or_else(|| "- (the server's default)".into(), |q| q.to_string())
}

/// `show`: one field per line.
pub fn details(k: &Listed, now: SystemTime) -> String {
    let r = &k.record;
    let metadata: Vec<String> = r
        .metadata()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let rows = [
        ("id", r.id().to_owned()),
        ("name", or_dash(Some(r.name().to_owned()))),
        ("environment", r.environment().to_string()),
        ("status", status(k, now)),
        ("permissions", permissions_text(r.permissions())),
        ("tenant", or_dash(r.tenant().map(str::to_owned))),
        ("expires_at", or_dash(r.expires_at().map(when))),
        ("rate_limits", limits_text(r)),
        ("metadata", or_dash(Some(metadata.join(", ")))),
        ("hash", hash_prefix(k)),
        ("created_at", or_dash(k.created_at.map(when))),
        ("last_used_at", or_dash(k.last_used_at.map(when))),
    ];
    rows.iter()
        .map(|(name, value)| format!("{:<13} {value}\n", format!("{name}:")))
        .collect()
}

/// `list`: a table.
pub fn table(keys: &[Listed], now: SystemTime) -> String {
    let mut rows = vec![[
        "ID".to_owned(),
        "NAME".into(),
        "ENV".into(),
        "STATUS".into(),
        "PERMISSIONS".into(),
        "TENANT".into(),
        "RATE LIMITS".into(),
        "HASH".into(),
    ]];
    for k in keys {
        let r = &k.record;
        rows.push([
            r.id().to_owned(),
            or_dash(Some(r.name().to_owned())),
            r.environment().to_string(),
            status(k, now),
            permissions_text(r.permissions()),
            or_dash(r.tenant().map(str::to_owned)),
            r.rate_limits()
                .map_or_else(|| "-".into(), |q| q.to_string()),
            hash_prefix(k),
        ]);
    }
    let mut widths = [0; 8];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_secs(12)), "12s");
        assert_eq!(human(Duration::from_secs(250)), "4m10s");
        assert_eq!(human(Duration::from_secs(86_399)), "23h59m");
        assert_eq!(human(Duration::from_secs(3 * 86_400 + 4 * 3600)), "3d4h");
    }
}
