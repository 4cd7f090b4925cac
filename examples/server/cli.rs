//! The command line: flags, the usage text, and arguments shown in errors without a key.

use std::path::PathBuf;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";

pub const USAGE: &str = "\
Demo server for ark-auth: the Ark API's auth surface with stub handlers.

Usage: cargo run --example server -- [--listen ADDR] [--keys FILE]
           [--database-url URL] [--redis-url URL]

Options:
  --listen ADDR  address to listen on (default 127.0.0.1:3000; port 0 picks a free port,
                 the address actually bound is printed as \"listening on http://ADDR\")
  --keys FILE    load API keys from a JSON keys file (see the keygen example):
                 {\"keys\": [{\"key\": \"ark_test_…\", \"name\": \"ci\", \"permissions\": [\"emails:send\"],
                   \"tenant\": \"tn_42\", \"expires_at\": \"2027-01-01T00:00:00Z\", \"revoked\": false,
                   \"rate_limit\": 10}]}
                 A bad file stops the server with a message naming the entry.
                 In memory (no --database-url), the file is reloaded on SIGHUP and when it
                 changes: a bad file then changes nothing and is logged.
                 Without --keys, demo test keys are generated and printed once.
  --database-url URL  keep keys in PostgreSQL (or set DATABASE_URL), e.g.
                 postgres://user:password@host:5432/db: the schema is applied, --keys FILE
                 (or the demo keys) are imported into it (hashes only), lookups go through a
                 verification cache that a LISTEN/NOTIFY listener keeps in step with the
                 table (a revoke reaches every instance within a second).
                 Needs the example built with --features postgres.
  --redis-url URL  count rate limits in Redis (or set REDIS_URL), e.g. redis://host:6379/:
                 every instance sharing it enforces each key's limit together. When Redis is
                 down, requests are served without limits (logged). Needs --features redis.
  -h, --help     print this help

Routes (JSON; Authorization: Bearer <key>):
  GET  /health                                  no authentication
  POST /v1/emails, /v1/emails/batch, /v1/emails/raw     emails:send
  GET  /v1/emails, /v1/emails/{id}              emails:read (organisation keys)
  GET  /v1/limits                               any valid key
  /v1/tenants/{id}/domains…                     domains:manage
  /v1/tenants/{id}/webhooks…                    webhooks:manage
  /v1/tenants/{id}/suppressions…                suppressions:manage
  /v1/platform/webhooks…                        webhooks:manage (organisation keys)
  anything else                                 a full-access organisation key, then 404/405
Tenant-scoped keys: their own tenant's resources, sending email and /v1/limits.
";

#[derive(Debug, PartialEq, Eq)]
pub enum Cli {
    Help,
    Run {
        listen: String,
        keys: Option<PathBuf>,
        database_url: Option<String>,
        redis_url: Option<String>,
    },
}

/// Shows a command-line argument in an error, unless it looks like it holds a key.
pub fn shown(arg: &str) -> String {
    if arg.contains("ark_live_") || arg.contains("ark_test_") {
        "<an argument that looks like an API key>".to_owned()
    } else {
        format!("{arg:?}")
    }
}

pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Cli, String> {
    let mut listen = DEFAULT_LISTEN.to_owned();
    let mut keys = None;
    let mut database_url = None;
    let mut redis_url = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs {what}"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Cli::Help),
            "--listen" => listen = value("an address, e.g. 127.0.0.1:3000")?,
            "--keys" => keys = Some(PathBuf::from(value("a file")?)),
            "--database-url" => database_url = Some(value("a postgres:// URL")?),
            "--redis-url" => redis_url = Some(value("a redis:// URL")?),
            _ => return Err(format!("unknown argument {}", shown(&arg))),
        }
    }
    Ok(Cli::Run {
        listen,
        keys,
        database_url,
        redis_url,
    })
}

/// An address from the environment, when set and not empty.
pub fn env_url(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args() {
        let p = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()));
        assert_eq!(
            p(&[]),
            Ok(Cli::Run {
                listen: DEFAULT_LISTEN.into(),
                keys: None,
                database_url: None,
                redis_url: None,
            })
        );
        assert_eq!(
            p(&["--listen", "0.0.0.0:1", "--keys=k.json"]),
            Ok(Cli::Run {
                listen: "0.0.0.0:1".into(),
                keys: Some("k.json".into()),
                database_url: None,
                redis_url: None,
            })
        );
        assert_eq!(p(&["--help"]), Ok(Cli::Help));
        assert_eq!(
            p(&[
                "--database-url",
                "postgres://db/ark",
                "--redis-url=redis://r/"
            ]),
            Ok(Cli::Run {
                listen: DEFAULT_LISTEN.into(),
                keys: None,
                database_url: Some("postgres://db/ark".into()),
                redis_url: Some("redis://r/".into()),
            })
        );
        assert!(p(&["--listen"]).is_err());
        let e = p(&["ark_test_0123456789abcdefXYZ"]).unwrap_err();
        assert!(!e.contains("0123456789abcdef"), "{e}");
    }
}
