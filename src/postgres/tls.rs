//! `sslmode` and `sslrootcert` in a connection string: taken out of it (tokio-postgres knows
//! neither `verify-ca`/`verify-full` nor `sslrootcert`) and turned into a [`Plan`] with
//! libpq's meaning. Pure: the caller says whether libpq's default root file exists.

use std::fmt;
use std::path::PathBuf;

use tokio_postgres::config::SslMode;

/// The two TLS parameters of a connection string, and the string without them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TlsParams {
    pub(super) sslmode: Option<String>,
    pub(super) sslrootcert: Option<String>,
    /// The connection string without `sslmode` and `sslrootcert`.
    pub(super) rest: String,
}

/// How the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verify {
    /// Any certificate (encryption without authentication: libpq's `require` without a root
    /// certificate).
    Nothing,
    /// Signed by one of the roots; the host name is not compared (`verify-ca`).
    Chain,
    /// Signed by one of the roots and issued for the host connected to (`verify-full`).
    ChainAndHost,
}

/// Where the trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Roots {
    /// A PEM file (`sslrootcert=/path`, or libpq's default `~/.postgresql/root.crt`).
    File(PathBuf),
    /// The system's trusted roots (`sslrootcert=system`).
    System,
}

/// What a connection string asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Plan {
    /// No TLS (`sslmode=disable`).
    Plain,
    /// TLS, falling back to plain when the server does not offer it (`prefer`, the default).
    Prefer(Verify, Option<Roots>),
    /// TLS or no connection (`require`, `verify-ca`, `verify-full`).
    Require(Verify, Option<Roots>),
}

impl Plan {
    /// tokio-postgres's mode for this plan (with a TLS connector).
    #[cfg_attr(not(feature = "postgres-tls"), allow(dead_code))]
    pub(super) fn ssl_mode(&self) -> SslMode {
        match self {
            Plan::Plain => SslMode::Disable,
            Plan::Prefer(..) => SslMode::Prefer,
            Plan::Require(..) => SslMode::Require,
        }
    }
}

/// A connection string whose TLS parameters cannot be honoured. Names the parameter, never
/// the connection string (it may hold a password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TlsConfigError(pub(super) String);

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsConfigError {}

/// libpq's rules. `default_root` is `~/.postgresql/root.crt` when that file exists.
///
/// - `sslmode` unset is `prefer`, or `verify-full` with `sslrootcert=system`.
/// - `disable`: no TLS. `prefer`: TLS when the server offers it. `require`: TLS or nothing.
///   Both check the certificate only when a root certificate is given (or the default file
///   exists), and then like `verify-ca`, as libpq does; otherwise they encrypt without
///   authenticating the server.
/// - `verify-ca`: the chain must lead to a trusted root. `verify-full`: and the certificate
///   must be issued for the host name (or IP address) connected to. Both need roots.
/// - `sslrootcert=system` (the system's roots) only with `verify-full`, as in libpq 16.
/// - `allow` (plain first) is refused: tokio-postgres cannot try plain before TLS.
pub(super) fn plan(
    sslmode: Option<&str>,
    sslrootcert: Option<&str>,
    default_root: Option<PathBuf>,
) -> Result<Plan, TlsConfigError> {
    let roots = match sslrootcert {
        Some("system") => Some(Roots::System),
        Some(path) if !path.is_empty() => Some(Roots::File(PathBuf::from(path))),
        _ => default_root.map(Roots::File),
    };
    let system = roots == Some(Roots::System);
    let mode = sslmode.unwrap_or(if system { "verify-full" } else { "prefer" });
    if system && mode != "verify-full" {
        return Err(TlsConfigError(format!(
            "sslrootcert=system needs sslmode=verify-full (sslmode is {mode})"
        )));
    }
    let checked = if roots.is_some() {
        Verify::Chain
    } else {
        Verify::Nothing
    };
    let need_roots = |verify: Verify| match roots.clone() {
        Some(r) => Ok(Plan::Require(verify, Some(r))),
        None => Err(TlsConfigError(format!(
            "sslmode={mode} needs a root certificate: set sslrootcert=/path/to/ca.pem \
             (or sslrootcert=system), or put it in ~/.postgresql/root.crt"
        ))),
    };
    match mode {
        "disable" => Ok(Plan::Plain),
        "prefer" => Ok(Plan::Prefer(checked, roots)),
        "require" => Ok(Plan::Require(checked, roots)),
        "verify-ca" => need_roots(Verify::Chain),
        "verify-full" => need_roots(Verify::ChainAndHost),
        "allow" => Err(TlsConfigError(
            "sslmode=allow is not supported (use prefer, require, verify-ca or verify-full)".into(),
        )),
        _ => Err(TlsConfigError(format!(
            "invalid sslmode {mode:?} (disable, prefer, require, verify-ca or verify-full)"
        ))),
    }
}

/// Takes `sslmode` and `sslrootcert` out of a connection string, in the URL form
/// (`postgres://…?sslmode=verify-full&sslrootcert=/ca.pem`, percent-decoded) or the
/// key=value form (`host=db sslmode=verify-full sslrootcert='/ca.pem'`). The last value
/// of a parameter given twice wins, as in tokio-postgres.
pub(super) fn split_tls_params(conn: &str) -> TlsParams {
    let (mut sslmode, mut sslrootcert) = (None, None);
    let mut take = |key: &str, value: String| {
        if key == "sslmode" {
            sslmode = Some(value);
        } else {
            sslrootcert = Some(value);
        }
    };
    let is_tls = |key: &str| key == "sslmode" || key == "sslrootcert";
    let mut rest = String::with_capacity(conn.len());
    if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        let after_auth = conn.rfind('@').map_or(0, |at| at + 1);
        let q = conn[after_auth..]
            .find('?')
            .map_or(conn.len(), |q| q + after_auth);
        rest.push_str(&conn[..q]);
        let mut sep = '?';
        for pair in conn.get(q + 1..).unwrap_or("").split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(key);
            if is_tls(&key) {
                take(&key, decode(value));
            } else if !pair.is_empty() {
                rest.push(sep);
                rest.push_str(pair);
                sep = '&';
            }
        }
    } else {
        let mut last = 0;
        for (start, end, key, value) in key_values(conn) {
            if is_tls(&key) {
                rest.push_str(&conn[last..start]);
                last = end;
                take(&key, value);
            }
        }
        rest.push_str(&conn[last..]);
    }
    TlsParams {
        sslmode,
        sslrootcert,
        rest,
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The pairs of a key=value string, each with its byte span: `key = value`, the value bare
/// or in single quotes, `\` escaping the next character (libpq's grammar).
fn key_values(s: &str) -> Vec<(usize, usize, String, String)> {
    let b = s.as_bytes();
    let mut pairs = Vec::new();
    let mut i = 0;
    let skip_ws = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    loop {
        i = skip_ws(i);
        if i >= b.len() {
            return pairs;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = s[start..i].to_owned();
        i = skip_ws(i);
        if i >= b.len() || b[i] != b'=' {
            return pairs; // malformed: tokio-postgres reports it
        }
        i = skip_ws(i + 1);
        let mut value = Vec::new();
        let quoted = i < b.len() && b[i] == b'\'';
        if quoted {
            i += 1;
        }
        while i < b.len() {
            match b[i] {
                b'\\' if i + 1 < b.len() => {
                    value.push(b[i + 1]);
                    i += 2;
                    continue;
                }
                b'\'' if quoted => {
                    i += 1;
                    break;
                }
                c if !quoted && c.is_ascii_whitespace() => break,
                c => value.push(c),
            }
            i += 1;
        }
        let value = String::from_utf8_lossy(&value).into_owned();
        pairs.push((start, i, key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(p: &str) -> Option<Roots> {
        Some(Roots::File(PathBuf::from(p)))
    }

    #[test]
    fn libpq_modes() {
        use Verify::*;
        assert_eq!(plan(None, None, None), Ok(Plan::Prefer(Nothing, None)));
        assert_eq!(plan(Some("disable"), Some("/ca"), None), Ok(Plan::Plain));
        assert_eq!(
            plan(Some("require"), None, None),
            Ok(Plan::Require(Nothing, None))
        );
        // With a root certificate, `require` (and `prefer`) check the chain, like verify-ca.
        assert_eq!(
            plan(Some("require"), Some("/ca"), None),
            Ok(Plan::Require(Chain, file("/ca")))
        );
        assert_eq!(
            plan(
                Some("prefer"),
                None,
                Some("/home/u/.postgresql/root.crt".into())
            ),
            Ok(Plan::Prefer(Chain, file("/home/u/.postgresql/root.crt")))
        );
        assert_eq!(
            plan(Some("verify-ca"), Some("/ca"), None),
            Ok(Plan::Require(Chain, file("/ca")))
        );
        assert_eq!(
            plan(Some("verify-full"), Some("/ca"), None),
            Ok(Plan::Require(ChainAndHost, file("/ca")))
        );
        // An explicit sslrootcert wins over the default file.
        assert_eq!(
            plan(Some("verify-full"), Some("/ca"), Some("/default".into())),
            Ok(Plan::Require(ChainAndHost, file("/ca")))
        );
        assert_eq!(
            plan(None, Some("system"), None),
            Ok(Plan::Require(ChainAndHost, Some(Roots::System)))
        );
    }

    #[test]
    fn refusals_name_the_parameter() {
        for mode in ["verify-ca", "verify-full"] {
            let e = plan(Some(mode), None, None).unwrap_err();
            assert!(e.0.contains("needs a root certificate"), "{e}");
            assert!(e.0.contains(mode), "{e}");
        }
        let e = plan(Some("require"), Some("system"), None).unwrap_err();
        assert!(
            e.0.contains("sslrootcert=system needs sslmode=verify-full"),
            "{e}"
        );
        assert!(plan(Some("allow"), None, None).is_err());
        assert!(plan(Some("VERIFY-FULL"), Some("/ca"), None).is_err());
        assert!(plan(Some(""), None, None).is_err());
    }

    #[test]
    fn url_form() {
        let p = split_tls_params(
            "postgres://u:p%3Fw@db:5432/ark?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
        );
        assert_eq!(p.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(p.sslrootcert.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(
            p.rest,
            "postgres://u:p%3Fw@db:5432/ark?application_name=x&connect_timeout=3"
        );
        let p = split_tls_params("postgresql://db/ark?sslmode=require");
        assert_eq!(p.sslmode.as_deref(), Some("require"));
        assert_eq!(p.rest, "postgresql://db/ark");
        let p = split_tls_params("postgres://db/ark");
        assert_eq!((p.sslmode, p.rest.as_str()), (None, "postgres://db/ark"));
        // A '?' in the password (before the '@') is not the query.
        let p = split_tls_params("postgres://u:a?b@db/ark?sslmode=disable");
        assert_eq!(p.sslmode.as_deref(), Some("disable"));
        assert_eq!(p.rest, "postgres://u:a?b@db/ark");
    }

    #[test]
    fn key_value_form() {
        let p = split_tls_params(
            "host=db sslmode = verify-ca  sslrootcert='/my certs/ca.pem' password='a\\'b c'",
        );
        assert_eq!(p.sslmode.as_deref(), Some("verify-ca"));
        assert_eq!(p.sslrootcert.as_deref(), Some("/my certs/ca.pem"));
        assert_eq!(p.rest, "host=db    password='a\\'b c'");
        let p = split_tls_params("host=db user=ark");
        assert_eq!((p.sslmode, p.rest.as_str()), (None, "host=db user=ark"));
    }
}
