//! Mints an API key: prints the plaintext once, and the record (hash only) as a keys file
//! for the demo server (`cargo run --example server -- --keys FILE`). It shows the library
//! calls and needs no feature; to manage keys (list, revoke, rotate, …) use the `ark-auth`
//! command line (`cargo install ark-auth --features cli`).
//!
//! ```sh
//! cargo run --example keygen -- --env test --permissions emails:send --name ci
//! # straight into PostgreSQL (hash only; feature postgres):
//! cargo run --example keygen --features postgres -- --permissions '*' --database-url postgres://…
//! ```

use std::process::ExitCode;
use std::time::SystemTime;

use ark_auth::{generate_key, keys_file, Environment, Permissions};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const USAGE: &str = "\
Mints an Ark API key for ark-auth.

Usage: cargo run --example keygen -- --permissions LIST [--env test|live] [--name NAME]
           [--tenant TENANT] [--rate-limit N] [--expires-at RFC3339] [--database-url URL]

Options:
  --permissions LIST  comma-separated permissions, or * for full access (required):
                      emails:send, emails:read, domains:manage, webhooks:manage,
                      suppressions:manage
  --env ENV           test (default) or live: ark_test_… or ark_live_… key
  --name NAME         a human-readable name for the key
  --tenant TENANT     scope the key to one tenant (e.g. tn_42)
  --rate-limit N      requests per second for this key (default: the server's, 10)
  --expires-at TIME   expiry, RFC 3339, e.g. 2027-01-01T00:00:00Z
  --database-url URL  also store the key in PostgreSQL (postgres://user:pw@host/db; the
                      schema is applied first): only its hash, never the key. Needs the
                      example built with --features postgres.
  -h, --help          print this help

Output (stdout), exactly two lines:
  1. the plaintext key: shown this once, stored nowhere; hand it to the key's owner;
  2. a complete keys file, one line of JSON: {\"keys\": [{\"id\": …, \"hash\": …, …}]}.
     It holds the key's SHA-256 hash, never the key. Save it as a file for
     `cargo run --example server -- --keys FILE`, or add its single entry
     (.keys[0]) to the \"keys\" list of an existing file.
";

#[derive(Debug, PartialEq, Eq)]
struct Options {
    environment: Environment,
    permissions: Permissions,
    name: Option<String>,
    tenant: Option<String>,
    rate_limit: Option<u32>,
    expires_at: Option<SystemTime>,
    database_url: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
enum Cli {
    Help,
    Generate(Options),
}

/// Shows a command-line argument in an error, unless it looks like it holds a key.
fn shown(arg: &str) -> String {
    if arg.contains("ark_live_") || arg.contains("ark_test_") {
        "<an argument that looks like an API key>".to_owned()
    } else {
        format!("{arg:?}")
    }
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Cli, String> {
    let mut environment = Environment::Test;
    let mut permissions = None;
    let mut name = None;
    let mut tenant = None;
    let mut rate_limit = None;
    let mut expires_at = None;
    let mut database_url = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value; see --help"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Cli::Help),
            "--env" => {
                let v = value()?;
                environment = v
                    .parse()
                    .map_err(|_| format!("--env must be test or live, not {}", shown(&v)))?;
            }
            "--permissions" => {
                let v = value()?;
                permissions = Some(v.parse::<Permissions>().map_err(|e| {
                    if v.contains("ark_live_") || v.contains("ark_test_") {
                        "--permissions holds something that looks like an API key".to_owned()
                    } else {
                        e.to_string()
                    }
                })?);
            }
            "--name" => name = Some(value()?),
            "--database-url" => database_url = Some(value()?),
            "--tenant" => {
                let v = value()?;
                if v.is_empty() {
                    return Err("--tenant must not be empty".into());
                }
                tenant = Some(v);
            }
            "--rate-limit" => {
                let v = value()?;
                rate_limit = Some(
                    v.parse::<u32>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| {
                            format!(
                                "--rate-limit must be a whole number of requests per second, at least 1, not {}",
                                shown(&v)
                            )
                        })?,
                );
            }
            "--expires-at" => {
                let v = value()?;
                let at = OffsetDateTime::parse(&v, &Rfc3339).map_err(|_| {
                    format!(
                        "--expires-at must be an RFC 3339 time such as 2027-01-01T00:00:00Z, not {}",
                        shown(&v)
                    )
                })?;
                expires_at = Some(SystemTime::from(at));
            }
            _ => return Err(format!("unknown argument {}; see --help", shown(&arg))),
        }
    }
    let permissions = permissions
        .ok_or("--permissions is required (comma-separated, or * for full access); see --help")?;
    Ok(Cli::Generate(Options {
        environment,
        permissions,
        name,
        tenant,
        rate_limit,
        expires_at,
        database_url,
    }))
}

fn run(o: Options) -> Result<(), String> {
    let key = generate_key(o.environment).map_err(|e| e.to_string())?;
    let mut record = key.record.with_permissions(o.permissions);
    if let Some(n) = o.name {
        record = record.with_name(n);
    }
    if let Some(t) = o.tenant {
        record = record.with_tenant(t);
    }
    if let Some(n) = o.rate_limit {
        record = record.with_rate_limit(n);
    }
    if let Some(at) = o.expires_at {
        record = record.with_expiry(at);
        if at <= SystemTime::now() {
            eprintln!(
                "note: --expires-at is in the past; the server will refuse this key as expired"
            );
        }
    }
    if o.permissions.is_empty() {
        eprintln!("note: the key has no permission; it can only call routes open to any valid key");
    }
    let document = serde_json::json!({ "keys": [keys_file::record_to_json(&record)] }).to_string();
    // The output must load back into exactly this record, as the server will load it.
    match keys_file::parse(&document) {
        Ok(loaded) if loaded == [record.clone()] => {}
        Ok(_) => {
            return Err("internal error: the keys file does not load back the same record".into())
        }
        Err(e) => return Err(format!("internal error: {e}")),
    }
    if let Some(url) = &o.database_url {
        store_in_database(url, &record)?;
        eprintln!("stored {} in PostgreSQL (its hash only)", record.id());
    }
    eprintln!(
        "API key below: shown once, stored nowhere. The JSON line after it holds only its hash."
    );
    println!("{}", key.plaintext.expose_secret());
    println!("{document}");
    Ok(())
}

/// Applies the schema and inserts the record (which holds the hash, never the key).
#[cfg(feature = "postgres")]
fn store_in_database(url: &str, record: &ark_auth::key::KeyRecord) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    runtime.block_on(async {
        let store = ark_auth::postgres::PostgresKeyStore::connect(url)
            .await
            .map_err(|e| format!("--database-url: {e}"))?;
        store
            .migrate()
            .await
            .map_err(|e| format!("PostgreSQL: cannot apply the schema: {e}"))?;
        store
            .create(record)
            .await
            .map_err(|e| format!("PostgreSQL: cannot store the key: {e}"))
    })
}

#[cfg(not(feature = "postgres"))]
fn store_in_database(_url: &str, _record: &ark_auth::key::KeyRecord) -> Result<(), String> {
    Err("--database-url needs the example built with --features postgres".into())
}

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
        Ok(Cli::Help) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Cli::Generate(o)) => match run(o) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
