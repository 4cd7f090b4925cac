//! The gateway's command line: its own `--upstream` and `--require`, and the demo server's
//! flags (`--listen`, `--keys`, `--database-url`, `--redis-url`) read by the demo's parser.

use ark_auth::{Access, Permissions};

use super::forward::Upstream;
use super::server::cli::{parse_args, shown, Cli};

pub const USAGE: &str = "\
API gateway on ark-auth: checks the Ark API key of every request, forwards accepted ones.

Usage: cargo run --example gateway -- --upstream URL [--require PERMISSIONS]
           [--listen ADDR] [--keys FILE] [--database-url URL] [--redis-url URL]

Options:
  --upstream URL       where accepted requests go: http://host:port, optionally with a base
                       path (http://app:8080/api); the request's path and query follow it
  --require PERMISSIONS  comma-separated permissions every request's key must hold, e.g.
                       emails:send,emails:read (default: any valid key)
  --listen ADDR        address to listen on (default 127.0.0.1:3000; port 0 picks a free
                       port, printed as \"listening on http://ADDR\")
  --keys FILE          a JSON keys file, as the demo server's; without it, demo test keys
                       are generated and printed once
  --database-url URL   keys in PostgreSQL (or DATABASE_URL), as the demo server
  --redis-url URL      rate limits in Redis (or REDIS_URL), as the demo server
  -h, --help           print this help

Upstream requests carry no Authorization header; X-Forwarded-For/-Host/-Proto and
X-Request-Id are the gateway's.
";

/// What a run of the gateway is given.
#[derive(Debug)]
pub struct Gateway {
    /// Where accepted requests go (a placeholder with `--help`).
    pub upstream: Upstream,
    /// What every request requires.
    pub access: Access,
    /// The demo server's flags; `Cli::Help` for `--help`.
    pub cli: Cli,
}

/// Reads the gateway's flags and hands the others to the demo server's parser.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Gateway, String> {
    let mut upstream = None;
    let mut require = None;
    let mut rest = Vec::new();
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
            "--upstream" => upstream = Some(value("a URL, e.g. http://127.0.0.1:8080")?),
            "--require" => require = Some(value("permissions, e.g. emails:send")?),
            _ => rest.push(arg),
        }
    }
    let cli = parse_args(rest)?;
    if cli == Cli::Help {
        return Ok(Gateway {
            upstream: Upstream::parse("http://127.0.0.1/")?,
            access: Access::any_key(),
            cli,
        });
    }
    let upstream = Upstream::parse(&upstream.ok_or("--upstream URL is required")?)?;
    let access = match require {
        None => Access::any_key(),
        Some(list) => {
            let permissions = Permissions::parse_list(list.split(',').map(str::trim))
                .map_err(|e| format!("--require {}: {e}", shown(&list)))?;
            Access::require(permissions)
        }
    };
    Ok(Gateway {
        upstream,
        access,
        cli,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<Gateway, String> {
        parse(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn flags() {
        let g = p(&[
            "--upstream",
            "http://127.0.0.1:9/api",
            "--listen=127.0.0.1:0",
            "--require",
            "emails:send, emails:read",
        ])
        .unwrap();
        assert_eq!(g.upstream.shown(), "http://127.0.0.1:9/api");
        assert_eq!(
            g.access,
            Access::require(Permissions::parse_list(["emails:send", "emails:read"]).unwrap())
        );
        assert!(matches!(g.cli, Cli::Run { ref listen, .. } if listen == "127.0.0.1:0"));
        assert_eq!(
            p(&["--upstream=http://u:1"]).unwrap().access,
            Access::any_key()
        );
        assert_eq!(p(&["--help"]).unwrap().cli, Cli::Help);
        assert!(p(&[]).unwrap_err().contains("--upstream"));
        assert!(p(&["--upstream"]).is_err());
        assert!(p(&["--upstream", "https://u"]).is_err());
        assert!(p(&["--upstream", "http://u", "--require", "emails:fly"]).is_err());
        assert!(p(&["--upstream", "http://u", "--bogus"]).is_err());
    }
}
