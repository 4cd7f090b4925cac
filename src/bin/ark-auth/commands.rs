//! The `keys` commands: what each asks of the store and what it prints.

use std::io::{Read, Write};
use std::path::Path;
use std::time::SystemTime;

use ark_auth::key::{GeneratedKey, KeyRecord};
use ark_auth::{generate_key, keys_file};
use serde_json::json;
use zeroize::Zeroizing;

use super::args::{Cli, Command, Create, Expire, Keys};
use super::backend::{location, Backend};
use super::file;
use super::output::{details, human, key_json, limits_text, summary, table, when};

/// Prints `text` (human output) or `value` (`--json`, one document).
fn print(
    json: bool,
    text: impl FnOnce() -> String,
    value: impl FnOnce() -> serde_json::Value,
) -> Result<(), String> {
    if json {
        stdout(&format!("{:#}\n", value()))
    } else {
        stdout(&text())
    }
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn stdout(text: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write to stdout: {e}"))
        }
        _ => Ok(()),
    }
}

pub async fn run(cli: Cli) -> Result<(), String> {
    let Command::Keys(cmd) = cli.command;
    let writing = matches!(cmd, Keys::Create(_) | Keys::Import { .. });
    let mut store = Backend::open(location(cli.database_url, cli.keys_file)?, writing).await?;
    let json = cli.json;
    let now = SystemTime::now();
    match cmd {
        Keys::Create(c) => {
            let key = generate_key(c.environment).map_err(|e| e.to_string())?;
            let key = GeneratedKey {
                record: record_of(key.record, c),
                plaintext: key.plaintext,
            };
            store.create(&key.record).await?;
            let shown = store.get(key.record.id()).await?;
            print(
                json,
                || {
                    format!(
                        "created {}\nkey (shown once, stored nowhere): {}\n",
                        summary(&shown),
                        key.plaintext.expose_secret()
                    )
                },
                || json!({"key": key.plaintext.expose_secret(), "record": key_json(&shown, now)}),
            )?;
        }
        Keys::List => {
            let keys = store.list().await?;
            print(
                json,
                || table(&keys, now),
                || keys.iter().map(|k| key_json(k, now)).collect(),
            )?;
        }
        Keys::Show { id } => {
            let k = store.get(&id).await?;
            print(json, || details(&k, now), || key_json(&k, now))?;
        }
        Keys::Revoke { id } => {
            store.revoke(&id).await?;
            let k = store.get(&id).await?;
            print(
                json,
                || format!("revoked {}: refused from now on\n", summary(&k)),
                || key_json(&k, now),
            )?;
        }
        Keys::Rotate { id, grace } => {
            let next = store.rotate(&id, grace).await?;
            let old = store.get(&id).await?;
            let new = store.get(next.record.id()).await?;
            let until = old.record.expires_at().map_or_else(|| "?".into(), when);
            print(
                json,
                || {
                    format!(
                        "rotated {id} to {}\n{id} keeps working until {until}, then is refused\n\
                         new key (shown once, stored nowhere): {}\n",
                        summary(&new),
                        next.plaintext.expose_secret()
                    )
                },
                || {
                    json!({
                        "key": next.plaintext.expose_secret(),
                        "record": key_json(&new, now),
                        "old": key_json(&old, now),
                    })
                },
            )?;
        }
        Keys::Expire(e) => expire(&mut store, e, json, now).await?,
        Keys::SetLimits { id, limits } => {
            store.set_limits(&id, limits.0).await?;
            let k = store.get(&id).await?;
            print(
                json,
                || match limits.0 {
                    Some(_) => format!("{id} rate limits: {}\n", limits_text(&k.record)),
                    None => format!("{id} rate limits: the server's default\n"),
                },
                || key_json(&k, now),
            )?;
        }
        Keys::Import { file } => {
            let records = read_keys(&file)?;
            let n = records.len();
            let done = store.import(records).await?;
            print(
                json,
                || {
                    format!(
                        "imported {n} key(s): {} new, {} replaced\n",
                        done.added, done.replaced
                    )
                },
                || json!({"imported": n, "added": done.added, "replaced": done.replaced}),
            )?;
        }
        Keys::Export { file } => {
            let records: Vec<KeyRecord> =
                store.list().await?.into_iter().map(|k| k.record).collect();
            match file.filter(|f| f.as_os_str() != "-") {
                None => stdout(&file::document(&records))?,
                Some(path) => {
                    keys_file::save(&path, &records).map_err(|e| e.to_string())?;
                    let n = records.len();
                    print(
                        json,
                        || format!("exported {n} key(s) to {} (hashes only)\n", path.display()),
                        || json!({"exported": n, "path": path.display().to_string()}),
                    )?;
                }
            }
        }
    }
    Ok(())
}

fn record_of(record: KeyRecord, c: Create) -> KeyRecord {
    let mut r = record.with_permissions(c.permissions);
    if let Some(n) = c.name {
        r = r.with_name(n);
    }
    if let Some(t) = c.tenant {
        r = r.with_tenant(t);
    }
    if let Some(limits) = c.rate_limit {
        r = r.with_rate_limits(limits);
    }
    let expiry = c
        .expires_at
        .or_else(|| c.expires_in.map(|d| SystemTime::now() + d));
    r.set_expiry(expiry);
    for (k, v) in c.metadata {
        r = r.with_metadata(k, v);
    }
    r
}

async fn expire(store: &mut Backend, e: Expire, json: bool, now: SystemTime) -> Result<(), String> {
    let at = match (e.when.in_, e.when.at, e.when.now) {
        (Some(d), _, _) => Some(now + d),
        (_, Some(at), _) => Some(at),
        (_, _, true) => Some(now),
        _ => None,
    };
    store.set_expiry(&e.id, at).await?;
    let k = store.get(&e.id).await?;
    print(
        json,
        || match at {
            Some(at) if at <= now => format!("{} expired: refused from now on\n", e.id),
            Some(at) => format!(
                "{} expires at {} (in {})\n",
                e.id,
                when(at),
                human(at.duration_since(now).unwrap_or_default())
            ),
            None => format!("{} no longer expires\n", e.id),
        },
        || key_json(&k, SystemTime::now()),
    )?;
    Ok(())
}

/// The records of a keys file, or of stdin for `-` (its text zeroed once parsed).
fn read_keys(path: &Path) -> Result<Vec<KeyRecord>, String> {
    if path.as_os_str() != "-" {
        return keys_file::load(path).map_err(|e| e.to_string());
    }
    let mut text = Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    keys_file::parse(&text).map_err(|e| e.to_string())
}
