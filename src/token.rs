//! Extracting and parsing `Authorization: Bearer ark_…` credentials.
//!
//! The grammar is contract section 1: `ark_` + `live`|`test` + `_` + 16 to 128 ASCII
//! alphanumerics. The parser borrows from the header value and never allocates; the parsed
//! [`Token`] never shows its secret body in `Debug` or `Display`.

use std::fmt;

use http::header::{HeaderMap, AUTHORIZATION};

pub use crate::redact::repeats_credentials;

/// Shortest accepted key body (characters after `ark_live_` / `ark_test_`).
pub const MIN_BODY_LEN: usize = 16;
/// Longest accepted key body.
pub const MAX_BODY_LEN: usize = 128;
/// Length of `ark_live_` and `ark_test_`.
pub(crate) const PREFIX_LEN: usize = 9;

/// The environment a key belongs to, from its prefix.
///
/// Both authenticate identically; the application reads it from
/// [`AuthenticatedKey::environment`](crate::AuthenticatedKey::environment) to avoid real
/// side effects for test keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Environment {
    /// `ark_live_…` keys.
    Live,
    /// `ark_test_…` keys.
    Test,
}

impl Environment {
    /// `"live"` or `"test"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Environment::Live => "live",
            Environment::Test => "test",
        }
    }

    /// The token prefix, `"ark_live_"` or `"ark_test_"`.
    pub const fn prefix(self) -> &'static str {
        match self {
            Environment::Live => "ark_live_",
            Environment::Test => "ark_test_",
        }
    }

    pub(crate) const fn bit(self) -> u8 {
        match self {
            Environment::Live => 1,
            Environment::Test => 2,
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Environment {
    type Err = UnknownEnvironment;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "live" => Ok(Environment::Live),
            "test" => Ok(Environment::Test),
            _ => Err(UnknownEnvironment),
        }
    }
}

/// Error of parsing an [`Environment`] from anything but `live` or `test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown environment (expected \"live\" or \"test\")")]
pub struct UnknownEnvironment;

/// `[A-Za-z0-9]` as a 256-entry table.
pub(crate) static ALPHANUMERIC: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = (c as u8).is_ascii_alphanumeric();
        c += 1;
    }
    t
};

/// A grammar-valid API key token, borrowed from where it was read.
///
/// `Debug` and `Display` show only the public prefix (`ark_live_…`), never the secret body.
///
/// ```
/// use ark_auth::token::{Environment, Token};
///
/// let token = Token::parse("ark_test_0123456789abcdefXYZ").unwrap();
/// assert_eq!(token.environment(), Environment::Test);
/// assert_eq!(format!("{token:?}"), "Token(ark_test_…)");
/// assert!(Token::parse("ark_test_short").is_none());
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    full: &'a str,
    environment: Environment,
}

impl<'a> Token<'a> {
    /// Parses a bare token (no `Bearer ` scheme). `None` when it is outside the grammar.
    pub fn parse(s: &'a str) -> Option<Self> {
        Self::parse_bytes(s.as_bytes())
    }

    /// Parses a bare token from bytes. `None` when it is outside the grammar.
    pub fn parse_bytes(b: &'a [u8]) -> Option<Self> {
        if b.len() < PREFIX_LEN + MIN_BODY_LEN || b.len() > PREFIX_LEN + MAX_BODY_LEN {
            return None;
        }
        let environment = match &b[..PREFIX_LEN] {
            b"ark_live_" => Environment::Live,
            b"ark_test_" => Environment::Test,
            _ => return None,
        };
        // Branch-free over the body (a table AND, no early exit whose timing depends on
        // the content).
        let mut ok = true;
        for &c in &b[PREFIX_LEN..] {
            ok &= ALPHANUMERIC[usize::from(c)];
        }
        if !ok {
            return None;
        }
        // All bytes are ASCII (prefix literal + alphanumerics), so this cannot fail.
        let full = std::str::from_utf8(b).ok()?;
        Some(Token { full, environment })
    }

    /// The environment named by the token's prefix.
    pub fn environment(&self) -> Environment {
        self.environment
    }

    /// The whole token, secret included. Hash it, never log it.
    pub fn expose_secret(&self) -> &'a str {
        self.full
    }
}

impl fmt::Debug for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}…)", self.environment.prefix())
    }
}

impl fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", self.environment.prefix())
    }
}

/// Why the credentials of a request were refused before any key store was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// No `Authorization` header, an empty one, or a scheme other than `Bearer`.
    #[error("no Bearer credentials")]
    Missing,
    /// `Bearer` without a token.
    #[error("Bearer scheme without a token")]
    NoToken,
    /// A token outside the grammar (including non-ASCII or control bytes).
    #[error("token outside the API key grammar")]
    Malformed,
    /// More than one `Authorization` header.
    #[error("more than one Authorization header")]
    MultipleHeaders,
}

/// Reads the API key of a request from its `Authorization: Bearer …` header.
///
/// Rules (contract sections 1 and 2): the scheme is matched case-insensitively and followed
/// by one or more spaces; whitespace around the value is ignored; more than one
/// `Authorization` header is refused; no other header, query string or cookie is read.
///
/// ```
/// use ark_auth::token::{bearer_token, CredentialError};
/// use http::HeaderMap;
///
/// let mut headers = HeaderMap::new();
/// assert_eq!(bearer_token(&headers), Err(CredentialError::Missing));
/// headers.insert("authorization", "bearer   ark_live_0123456789abcdefABCD ".parse().unwrap());
/// assert!(bearer_token(&headers).is_ok());
/// headers.insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
/// assert_eq!(bearer_token(&headers), Err(CredentialError::Missing));
/// ```
pub fn bearer_token(headers: &HeaderMap) -> Result<Token<'_>, CredentialError> {
    let mut all = headers.get_all(AUTHORIZATION).iter();
    let value = all.next().ok_or(CredentialError::Missing)?;
    if all.next().is_some() {
        return Err(CredentialError::MultipleHeaders);
    }
    parse_authorization(value.as_bytes())
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = v {
        if !is_ws(*first) {
            break;
        }
        v = rest;
    }
    while let [rest @ .., last] = v {
        if !is_ws(*last) {
            break;
        }
        v = rest;
    }
    v
}

/// Parses the value of one `Authorization` header (`Bearer <token>`).
///
/// ```
/// use ark_auth::token::{parse_authorization, CredentialError};
///
/// assert!(parse_authorization(b"BEARER ark_test_0123456789abcdef").is_ok());
/// assert_eq!(parse_authorization(b"Bearer"), Err(CredentialError::NoToken));
/// assert_eq!(parse_authorization(b"Bearer ark_prod_0123456789abcdef"), Err(CredentialError::Malformed));
/// assert_eq!(parse_authorization(b""), Err(CredentialError::Missing));
/// ```
pub fn parse_authorization(value: &[u8]) -> Result<Token<'_>, CredentialError> {
    let v = trim(value);
    if v.is_empty() {
        return Err(CredentialError::Missing);
    }
    const SCHEME: &[u8] = b"bearer";
    if v.len() < SCHEME.len() || !v[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return Err(CredentialError::Missing);
    }
    let rest = &v[SCHEME.len()..];
    match rest.first() {
        // "Bearer" alone (the value was trimmed).
        None => return Err(CredentialError::NoToken),
        Some(b' ') => {}
        // "Bearer\t…", "Bearer\x01…" or "Bearer\u{a0}…" (a pasted non-breaking space): a
        // Bearer attempt with a control or non-ASCII byte (contract section 2).
        Some(&c) if c.is_ascii_control() || !c.is_ascii() => {
            return Err(CredentialError::Malformed)
        }
        // "Bearerx…", "Bearers …": another scheme.
        Some(_) => return Err(CredentialError::Missing),
    }
    // One or more spaces (not tabs: a tab there is a control byte inside the credentials).
    let token = &rest[rest.iter().take_while(|&&c| c == b' ').count()..];
    if token.is_empty() {
        return Err(CredentialError::NoToken);
    }
    Token::parse_bytes(token).ok_or(CredentialError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const BODY: &str = "0123456789abcdefXYZ";

    #[test]
    fn accepts_grammar() {
        for env in ["live", "test"] {
            for len in [16, 17, 64, 127, 128] {
                let t = format!("ark_{env}_{}", "a".repeat(len));
                assert!(Token::parse(&t).is_some(), "{t}");
            }
        }
    }

    #[test]
    fn rejects_outside_grammar() {
        for t in [
            "ark_live_",
            "ark_live_0123456789abcde", // 15
            &format!("ark_live_{}", "a".repeat(129)),
            "ark_prod_0123456789abcdef",
            "ARK_LIVE_0123456789abcdef",
            "ark_Live_0123456789abcdef",
            "ark_live-0123456789abcdef",
            "ark_live_0123456789abcde_",
            "ark_live_0123456789abcde-",
            "ark_live_0123456789abcdé",
            "ark_live_0123456789 abcdef",
            "xark_live_0123456789abcdef",
        ] {
            assert!(Token::parse(t).is_none(), "{t}");
        }
    }

    #[test]
    fn scheme_and_spaces() {
        let ok = |v: &str| parse_authorization(v.as_bytes()).map(|t| t.expose_secret().len());
        let n = Ok(9 + BODY.len());
        assert_eq!(ok(&format!("Bearer ark_live_{BODY}")), n);
        assert_eq!(ok(&format!("bearer ark_live_{BODY}")), n);
        assert_eq!(ok(&format!("BEARER ark_live_{BODY}")), n);
        assert_eq!(ok(&format!("bEaReR    ark_live_{BODY}")), n);
        assert_eq!(ok(&format!("  Bearer ark_live_{BODY}  ")), n);
        assert_eq!(ok(&format!("\tBearer ark_live_{BODY}\t")), n);
        assert_eq!(ok("Basic abc"), Err(CredentialError::Missing));
        assert_eq!(
            ok("Bearerark_live_0123456789abcdef"),
            Err(CredentialError::Missing)
        );
        assert_eq!(
            ok("Token ark_live_0123456789abcdef"),
            Err(CredentialError::Missing)
        );
        assert_eq!(ok("   "), Err(CredentialError::Missing));
        assert_eq!(ok("Bearer"), Err(CredentialError::NoToken));
        assert_eq!(ok("Bearer    "), Err(CredentialError::NoToken));
        assert_eq!(
            ok(&format!("Bearer\tark_live_{BODY}")),
            Err(CredentialError::Malformed)
        );
        assert_eq!(
            ok(&format!("Bearer ark_live_{BODY} extra")),
            Err(CredentialError::Malformed)
        );
        assert_eq!(
            ok("Bearer sk_live_0123456789abcdef"),
            Err(CredentialError::Malformed)
        );
    }

    #[test]
    fn non_ascii_and_control_bytes() {
        let mut v = format!("Bearer ark_live_{BODY}").into_bytes();
        v[20] = 0xC3;
        assert_eq!(parse_authorization(&v), Err(CredentialError::Malformed));
        v[20] = 0x01;
        assert_eq!(parse_authorization(&v), Err(CredentialError::Malformed));
        v[20] = 0x7F;
        assert_eq!(parse_authorization(&v), Err(CredentialError::Malformed));
    }

    /// Every byte right after the scheme, by class: a space starts the token; a control
    /// byte (tab included) or a non-ASCII byte (a pasted non-breaking space, U+00A0 as
    /// `C2 A0`, or a Latin-1 `A0`) is a malformed Bearer attempt; any other printable ASCII
    /// byte makes another scheme (`Bearerx`).
    #[test]
    fn byte_after_the_scheme_by_class() {
        let token = format!("ark_live_{BODY}");
        for b in 0..=255u8 {
            let mut v = b"Bearer".to_vec();
            v.push(b);
            v.extend_from_slice(token.as_bytes());
            let got = parse_authorization(&v).map(|t| t.expose_secret());
            let want = match b {
                b' ' => Ok(token.as_str()),
                0x00..=0x1F | 0x7F | 0x80..=0xFF => Err(CredentialError::Malformed),
                _ => Err(CredentialError::Missing),
            };
            assert_eq!(got, want, "byte {b:#04x} after Bearer");
        }
        let nbsp = [b"Bearer".as_slice(), "\u{a0}".as_bytes(), token.as_bytes()].concat();
        assert_eq!(parse_authorization(&nbsp), Err(CredentialError::Malformed));
        let nbsp_after_space =
            [b"Bearer ".as_slice(), "\u{a0}".as_bytes(), token.as_bytes()].concat();
        assert_eq!(
            parse_authorization(&nbsp_after_space),
            Err(CredentialError::Malformed)
        );
    }

    #[test]
    fn multiple_headers_refused() {
        let mut h = HeaderMap::new();
        let v = HeaderValue::from_str(&format!("Bearer ark_live_{BODY}")).unwrap();
        h.append(AUTHORIZATION, v.clone());
        assert!(bearer_token(&h).is_ok());
        h.append(AUTHORIZATION, v);
        assert_eq!(bearer_token(&h), Err(CredentialError::MultipleHeaders));
    }

    #[test]
    fn debug_and_display_hide_the_body() {
        let s = format!("ark_live_{BODY}");
        let t = Token::parse(&s).unwrap();
        assert!(!format!("{t:?}").contains("0123"));
        assert!(!format!("{t}").contains("0123"));
        assert_eq!(t.to_string(), "ark_live_…");
    }
}
