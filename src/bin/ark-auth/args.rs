//! The command line: clap's declaration, durations like `24h`, and the redaction of anything
//! that looks like a key before it is shown.

use std::path::PathBuf;
use std::time::Duration;

use ark_auth::limit::Quotas;
use ark_auth::{Environment, Permissions};
use clap::{Args, Parser, Subcommand};

/// Manage ark-auth API keys in PostgreSQL or in a keys file.
///
/// The keys live in PostgreSQL (--database-url, or the DATABASE_URL variable) or in a JSON
/// keys file (--keys-file). Plaintext keys are printed once, by `create` and `rotate`, and
/// stored nowhere: the store keeps their SHA-256 hashes only.
#[derive(Debug, Parser)]
#[command(name = "ark-auth", version, propagate_version = true)]
pub struct Cli {
    /// PostgreSQL holding the keys, e.g. postgres://user:password@host:5432/db (default: the
    /// DATABASE_URL variable)
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// A JSON keys file holding the keys (the format the demo server's --keys reads); it is
    /// rewritten atomically, with hashes only
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        conflicts_with = "database_url"
    )]
    pub keys_file: Option<PathBuf>,
    /// One JSON document on stdout, for scripts
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// API keys: create, list, show, revoke, rotate, expire, set-limits, import, export
    #[command(subcommand)]
    Keys(Keys),
}

#[derive(Debug, Subcommand)]
pub enum Keys {
    /// Mint a key; prints its plaintext once
    Create(Create),
    /// Every key, without secrets or full hashes
    List,
    /// One key
    Show {
        /// The key's id (key_…)
        id: String,
    },
    /// Refuse a key from now on
    Revoke {
        /// The key's id (key_…)
        id: String,
    },
    /// Replace a key: a successor now, the old key refused after the grace; prints the new
    /// plaintext once
    ///
    /// The successor has the old key's name, environment, permissions, tenant, rate limits and
    /// metadata, and no expiry. The old key keeps working for the grace period (or until its
    /// own earlier expiry), then is refused. A revoked or expired key is not rotated.
    Rotate {
        /// The key's id (key_…)
        id: String,
        /// How long the old key keeps working, e.g. 24h, 30m, 7d, 1h30m, 0s
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        grace: Duration,
    },
    /// Set or clear a key's expiry
    Expire(Expire),
    /// Set a key's own rate limits, or go back to the server's default
    ///
    /// The limits replace any the key had and the server's default limits entirely.
    SetLimits {
        /// The key's id (key_…)
        id: String,
        /// N requests per second, or up to 4 limits with their windows such as
        /// 10/s,1000/h,50000/d; or `default` to clear the key's own limits
        #[arg(value_name = "LIMITS", value_parser = parse_new_limits)]
        limits: NewLimits,
    },
    /// Add keys from a keys file (plaintext `key` or `hash` entries)
    ///
    /// An entry whose id is already stored replaces that key. All or nothing: a bad entry is
    /// named and nothing changes.
    Import {
        /// The keys file to read, or - for stdin
        file: PathBuf,
    },
    /// Write every key as a keys file, hashes only (stdout, or FILE written atomically)
    Export {
        /// Where to write it (default: stdout)
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct Create {
    /// What the key may do: comma-separated (emails:send, emails:read, domains:manage,
    /// webhooks:manage, suppressions:manage), or * for full access
    #[arg(long, value_name = "LIST", value_parser = parse_permissions)]
    pub permissions: Permissions,
    /// test (ark_test_… keys) or live (ark_live_…)
    #[arg(long = "env", value_name = "ENV", default_value = "test", value_parser = parse_environment)]
    pub environment: Environment,
    /// A human-readable name
    #[arg(long)]
    pub name: Option<String>,
    /// Scope the key to one tenant, e.g. tn_42
    #[arg(long, value_parser = non_empty)]
    pub tenant: Option<String>,
    /// This key's rate limits, replacing the server's default: N requests per second, or up
    /// to 4 limits with their windows (s, min, h, d, or a count such as 30s), e.g.
    /// 10/s,1000/h,50000/d (default: the server's)
    #[arg(long, value_name = "LIMITS", value_parser = parse_limits)]
    pub rate_limit: Option<Quotas>,
    /// The key stops working after this long, e.g. 90d
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "expires_at")]
    pub expires_in: Option<Duration>,
    /// The key stops working at this time (RFC 3339, e.g. 2027-01-01T00:00:00Z)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub expires_at: Option<std::time::SystemTime>,
    /// Metadata handed to the application with the key, NAME=VALUE (repeatable)
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_metadata)]
    pub metadata: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct Expire {
    /// The key's id (key_…)
    pub id: String,
    #[command(flatten)]
    pub when: When,
}

/// When the key expires: exactly one of these.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct When {
    /// Expire this long from now, e.g. 24h
    #[arg(long = "in", value_name = "DURATION", value_parser = parse_duration)]
    pub in_: Option<Duration>,
    /// Expire at this time (RFC 3339, e.g. 2027-01-01T00:00:00Z)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub at: Option<std::time::SystemTime>,
    /// Expire now
    #[arg(long)]
    pub now: bool,
    /// Never expire (clear the expiry)
    #[arg(long)]
    pub never: bool,
}

/// A duration such as `24h`, `30m`, `7d`, `1h30m`, `90s` or `2w`: whole numbers, each with a
/// unit (s, m, h, d, w).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{} is not a duration; use whole numbers with units s, m, h, d or w, \
             e.g. 24h, 30m, 7d, 1h30m",
            shown(s)
        )
    };
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, tail) = rest.split_at(digits);
        let mut units = tail.chars();
        let unit = units.next().ok_or_else(bad)?;
        let n: u64 = number.parse().map_err(|_| bad())?;
        let seconds = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(seconds)
            .and_then(|x| total.checked_add(x))
            .filter(|t| *t <= 100 * 365 * 86_400)
            .ok_or_else(|| format!("{} is longer than 100 years", shown(s)))?;
        rest = units.as_str();
    }
    Ok(Duration::from_secs(total))
}

/// Rate limits as `--rate-limit` takes them: `10` (requests per second, as a whole number
/// alone) or the text of [`Quotas`], `10/s,1000/h,50000/d`.
pub fn parse_limits(s: &str) -> Result<Quotas, String> {
    let per_second = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let text = if per_second {
        format!("{s}/s")
    } else {
        s.to_owned()
    };
    text.parse::<Quotas>().map_err(|e| {
        redact(&format!(
            "{e} (write N requests per second, or limits with their windows such as \
             10/s,1000/h,50000/d)"
        ))
    })
}

/// What `set-limits` sets: the key's own limits, or none (`default`).
#[derive(Debug, Clone, Copy)]
pub struct NewLimits(pub Option<Quotas>);

fn parse_new_limits(s: &str) -> Result<NewLimits, String> {
    match s {
        "default" => Ok(NewLimits(None)),
        _ => parse_limits(s).map(|q| NewLimits(Some(q))),
    }
}

fn parse_permissions(s: &str) -> Result<Permissions, String> {
    s.parse::<Permissions>().map_err(|e| redact(&e.to_string()))
}

fn parse_environment(s: &str) -> Result<Environment, String> {
    s.parse()
        .map_err(|_| format!("{} is not an environment; use test or live", shown(s)))
}

fn parse_time(s: &str) -> Result<std::time::SystemTime, String> {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(s, &Rfc3339)
        .map(Into::into)
        .map_err(|_| {
            format!(
                "{} is not an RFC 3339 time such as 2027-01-01T00:00:00Z",
                shown(s)
            )
        })
}

fn parse_metadata(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{} is not NAME=VALUE", shown(s))),
    }
}

fn non_empty(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(s.to_owned())
    }
}

/// An argument as an error shows it: quoted, with any key in it redacted.
pub fn shown(arg: &str) -> String {
    redact(&format!("{arg:?}"))
}

/// `text` with every `ark_live_…`/`ark_test_…` word cut to its prefix: whatever is printed
/// (errors included, clap's own among them) goes through this.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = ["ark_live_", "ark_test_"]
        .iter()
        .filter_map(|p| rest.find(p))
        .min()
    {
        let body = &rest[i + 9..];
        let n = body.bytes().take_while(u8::is_ascii_alphanumeric).count();
        out.push_str(&rest[..i + 9]);
        if n > 0 {
            out.push('…');
        }
        rest = &body[n..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let h = 3600;
        for (s, secs) in [
            ("24h", 24 * h),
            ("30m", 1800),
            ("7d", 7 * 24 * h),
            ("1h30m", h + 1800),
            ("90s", 90),
            ("2w", 14 * 24 * h),
            ("0s", 0),
        ] {
            assert_eq!(parse_duration(s), Ok(Duration::from_secs(secs)), "{s}");
        }
        for s in [
            "",
            "24",
            "h",
            "1x",
            "-1h",
            "1.5h",
            "1h 30m",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
        assert!(parse_duration("36501d").unwrap_err().contains("100 years"));
        let e = parse_duration("ark_live_0123456789abcdefXYZ").unwrap_err();
        assert!(!e.contains("0123456789"), "{e}");
    }

    #[test]
    fn limits() {
        let text = |s: &str| parse_limits(s).map(|q| q.to_string());
        assert_eq!(text("10").as_deref(), Ok("10/s"));
        assert_eq!(
            text("10/s,1000/h,50000/d").as_deref(),
            Ok("10/s,1000/h,50000/d")
        );
        assert_eq!(text("5/30s").as_deref(), Ok("5/30s"));
        for (bad, problem) in [
            ("0", "from 1 to 4294967295"),
            ("", "no rate limit given"),
            ("10/fortnight", "unknown window \"fortnight\""),
            ("10/s,20/s", "given twice"),
            ("1/s,1/min,1/h,1/d,1/7d", "more than 4"),
            ("-3", "requests/window"),
        ] {
            let e = parse_limits(bad).unwrap_err();
            assert!(e.contains(problem), "{bad}: {e}");
            assert!(e.contains("10/s,1000/h,50000/d"), "{bad}: {e}");
        }
        let e = parse_limits("1/ark_live_0123456789abcdefXYZ").unwrap_err();
        assert!(!e.contains("0123456789"), "{e}");
        assert!(parse_new_limits("default").unwrap().0.is_none());
        assert_eq!(parse_new_limits("7").unwrap().0, parse_limits("7/s").ok());
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact("no key \"ark_live_0123456789abcdefXYZ\" here, ark_test_Q!"),
            "no key \"ark_live_…\" here, ark_test_…!"
        );
        assert_eq!(redact("ark_live_"), "ark_live_");
        assert_eq!(redact("plain"), "plain");
    }

    #[test]
    fn the_declaration_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
