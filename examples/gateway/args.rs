//! The gateway's command line: its own `--upstream` and `--require`, and the demo server's
//! flags (`--listen`, `--keys`, `--database-url`, `--redis-url`) read by the demo's parser.

use std::time::Duration;

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
  --upstream-timeout SECONDS  how long the upstream may take to start its answer (status
                       and headers; default 30); then the client gets 504. Bodies stream
                       without a total bound
  --body-idle-timeout SECONDS  longest pause in a request or response body (default 30);
                       then that body is cut
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

/// How long the upstream may take to start its answer, unless `--upstream-timeout` says.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest pause in a body, unless `--body-idle-timeout` says.
pub const DEFAULT_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a run of the gateway is given.
#[derive(Debug)]
pub struct Gateway {
    /// Where accepted requests go (a placeholder with `--help`).
    pub upstream: Upstream,
    /// What every request requires.
    pub access: Access,
    /// How long the upstream may take to answer with its status and headers.
    pub upstream_timeout: Duration,
    /// Longest pause in a body, either way.
    pub body_idle_timeout: Duration,
    /// The demo server's flags; `Cli::Help` for `--help`.
    pub cli: Cli,
}

/// Reads the gateway's flags and hands the others to the demo server's parser.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Gateway, String> {
    let mut upstream = None;
    let mut require = None;
    let mut timeout = None;
    let mut idle = None;
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
            "--upstream-timeout" => timeout = Some(value("a number of seconds, e.g. 30")?),
            "--body-idle-timeout" => idle = Some(value("a number of seconds, e.g. 30")?),
            _ => rest.push(arg),
        }
    }
    let cli = parse_args(rest)?;
    if cli == Cli::Help {
        return Ok(Gateway {
            upstream: Upstream::parse("http://127.0.0.1/")?,
            access: Access::any_key(),
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            body_idle_timeout: DEFAULT_BODY_IDLE_TIMEOUT,
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
    let upstream_timeout = seconds("--upstream-timeout", timeout, DEFAULT_UPSTREAM_TIMEOUT)?;
    let body_idle_timeout = seconds("--body-idle-timeout", idle, DEFAULT_BODY_IDLE_TIMEOUT)?;
    Ok(Gateway {
        upstream,
        access,
        upstream_timeout,
        body_idle_timeout,
        cli,
    })
}

/// A flag's number of seconds (above 0, at most an hour), or `default` when not given.
fn seconds(flag: &str, text: Option<String>, default: Duration) -> Result<Duration, String> {
    let Some(text) = text else {
        return Ok(default);
    };
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{flag} {}: seconds, above 0 and at most 3600", shown(&text)))
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
        assert_eq!(
            p(&["--upstream", "http://u"]).unwrap().upstream_timeout,
            DEFAULT_UPSTREAM_TIMEOUT
        );
        assert_eq!(
            p(&["--upstream", "http://u", "--upstream-timeout", "0.5"])
                .unwrap()
                .upstream_timeout,
            Duration::from_millis(500)
        );
        assert_eq!(
            p(&["--upstream", "http://u", "--body-idle-timeout=2"])
                .unwrap()
                .body_idle_timeout,
            Duration::from_secs(2)
        );
        for bad in ["0", "-1", "NaN", "inf", "5000", "soon"] {
            assert!(
                p(&["--upstream", "http://u", "--upstream-timeout", bad]).is_err(),
                "{bad}"
            );
        }
    }
}
