//! The contract's texts in one table: for each [`Rejection`], its `error.code` (section 2),
//! its message and suggestion (section 3) and its `WWW-Authenticate` value (section 4).

use http::header::HeaderValue;
use http::StatusCode;

use super::rejection::{Limits, Rejection};
use crate::limit::{window_name, RateLimitDecision};
use crate::permission::Permissions;
use crate::token::{CredentialError, Environment};

/// The `error.code` values of contract section 2.
///
/// ```
/// use ark_auth::response::ErrorCode;
///
/// assert_eq!(ErrorCode::InvalidApiKey.as_str(), "invalid_api_key");
/// assert_eq!("rate_limit_exceeded".parse(), Ok(ErrorCode::RateLimitExceeded));
/// assert_eq!(ErrorCode::ALL.len(), 6);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 401: no credentials.
    AuthenticationRequired,
    /// 401: malformed, unknown or not-accepted key.
    InvalidApiKey,
    /// 401: revoked or expired key.
    ExpiredApiKey,
    /// 403: missing permission or other tenant.
    PermissionDenied,
    /// 429.
    RateLimitExceeded,
    /// 503: a store failed.
    ServiceUnavailable,
}

impl ErrorCode {
    /// Every code, in the order of contract section 2.
    pub const ALL: [ErrorCode; 6] = [
        ErrorCode::AuthenticationRequired,
        ErrorCode::InvalidApiKey,
        ErrorCode::ExpiredApiKey,
        ErrorCode::PermissionDenied,
        ErrorCode::RateLimitExceeded,
        ErrorCode::ServiceUnavailable,
    ];

    /// The wire form, e.g. `"invalid_api_key"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::AuthenticationRequired => "authentication_required",
            ErrorCode::InvalidApiKey => "invalid_api_key",
            ErrorCode::ExpiredApiKey => "expired_api_key",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::RateLimitExceeded => "rate_limit_exceeded",
            ErrorCode::ServiceUnavailable => "service_unavailable",
        }
    }

    /// The HTTP status that goes with the code.
    pub const fn status(self) -> StatusCode {
        match self {
            ErrorCode::AuthenticationRequired
            | ErrorCode::InvalidApiKey
            | ErrorCode::ExpiredApiKey => StatusCode::UNAUTHORIZED,
            ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorCode::RateLimitExceeded => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The gRPC status code that goes with the code, for callers speaking gRPC:
    /// 16 `UNAUTHENTICATED`, 7 `PERMISSION_DENIED`, 8 `RESOURCE_EXHAUSTED`, 14 `UNAVAILABLE`.
    ///
    /// ```
    /// use ark_auth::response::ErrorCode;
    /// assert_eq!(ErrorCode::InvalidApiKey.grpc_status(), 16);
    /// assert_eq!(ErrorCode::RateLimitExceeded.grpc_status(), 8);
    /// ```
    pub const fn grpc_status(self) -> u8 {
        match self {
            ErrorCode::AuthenticationRequired
            | ErrorCode::InvalidApiKey
            | ErrorCode::ExpiredApiKey => 16,
            ErrorCode::PermissionDenied => 7,
            ErrorCode::RateLimitExceeded => 8,
            ErrorCode::ServiceUnavailable => 14,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for ErrorCode {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// A string that is not one of the [`ErrorCode`] wire forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownErrorCode;

impl std::fmt::Display for UnknownErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not an error code of the contract")
    }
}

impl std::error::Error for UnknownErrorCode {}

impl std::str::FromStr for ErrorCode {
    type Err = UnknownErrorCode;

    /// The code whose wire form is `s` (exactly; codes are lowercase).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or(UnknownErrorCode)
    }
}

/// Separator of permission names in the error texts (the `scope` of `WWW-Authenticate` uses
/// a space).
pub(super) const TEXT_NAME_SEP: &str = ", ";

/// One of the two texts of an error body.
///
/// Invariant (relied on by the body writer, which does no escaping of these): every part is
/// a fixed literal, permission wire names or a decimal number. Nothing from the request, and
/// no part of a token, can ever be in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Text {
    Fixed(&'static str),
    /// `before`, the names joined by [`TEXT_NAME_SEP`], `after`.
    Names(&'static str, Permissions, &'static str),
    /// `before`, the number in decimal, `after`.
    Number(&'static str, u64, &'static str),
    /// `before`, a number, `middle`, another number, `after`.
    Numbers(&'static str, u64, &'static str, u64, &'static str),
}

impl Text {
    pub(super) fn len(self) -> usize {
        match self {
            Text::Fixed(s) => s.len(),
            Text::Names(before, names, after) => {
                let (count, bytes) = names
                    .iter()
                    .fold((0usize, 0usize), |(c, b), p| (c + 1, b + p.as_str().len()));
                let seps = TEXT_NAME_SEP.len() * count.saturating_sub(1);
                before.len() + bytes + seps + after.len()
            }
            Text::Number(before, n, after) => {
                before.len() + itoa::Buffer::new().format(n).len() + after.len()
            }
            Text::Numbers(before, n, middle, m, after) => {
                Text::Number(before, n, middle).len() + Text::Number("", m, after).len()
            }
        }
    }

    pub(super) fn push_to(self, out: &mut Vec<u8>) {
        let mut push = |s: &str| out.extend_from_slice(s.as_bytes());
        match self {
            Text::Fixed(s) => push(s),
            Text::Names(before, names, after) => {
                push(before);
                names.write_names(&mut push, TEXT_NAME_SEP);
                push(after);
            }
            Text::Number(before, n, after) => {
                push(before);
                push(itoa::Buffer::new().format(n));
                push(after);
            }
            Text::Numbers(before, n, middle, m, after) => {
                push(before);
                push(itoa::Buffer::new().format(n));
                push(middle);
                push(itoa::Buffer::new().format(m));
                push(after);
            }
        }
    }

    /// The text as a string.
    #[cfg(test)]
    pub(super) fn render(self) -> String {
        let mut s = Vec::with_capacity(self.len());
        self.push_to(&mut s);
        // Literals, permission names and digits: always UTF-8.
        String::from_utf8(s).unwrap_or_default()
    }
}

/// The message of a 429: the refusing window's limit, and the window by name
/// ("Rate limit exceeded: 100 requests per minute"), except for a key whose one limit is per
/// second, which keeps the contract's text ("Rate limit exceeded: 10 requests per window").
/// A window without a name is counted: "per 30 seconds", "per 1500 milliseconds".
fn rate_limit_message(d: &RateLimitDecision, limits: Limits) -> Text {
    const BEFORE: &str = "Rate limit exceeded: ";
    let n = u64::from(d.limit);
    let per_second = d.window == std::time::Duration::from_secs(1);
    if per_second && limits == Limits::One {
        return Text::Number(BEFORE, n, " requests per window");
    }
    match window_name(d.window) {
        Some("second") => Text::Number(BEFORE, n, " requests per second"),
        Some("minute") => Text::Number(BEFORE, n, " requests per minute"),
        Some("hour") => Text::Number(BEFORE, n, " requests per hour"),
        Some("day") => Text::Number(BEFORE, n, " requests per day"),
        _ if d.window.subsec_nanos() == 0 => {
            Text::Numbers(BEFORE, n, " requests per ", d.window.as_secs(), " seconds")
        }
        _ => {
            let ms = u64::try_from(d.window.as_millis()).unwrap_or(u64::MAX);
            Text::Numbers(BEFORE, n, " requests per ", ms, " milliseconds")
        }
    }
}

/// `Bearer realm="ark", error="invalid_token", error_description="<literal>"`, checked and
/// built at compile time.
macro_rules! invalid_token {
    ($description:literal) => {
        const {
            HeaderValue::from_static(concat!(
                "Bearer realm=\"ark\", error=\"invalid_token\", error_description=\"",
                $description,
                "\""
            ))
        }
    };
}

/// The `WWW-Authenticate` value of a 403 for a route requiring `required`:
/// `Bearer realm="ark", error="insufficient_scope", scope="<names, space-separated>"`.
pub(super) fn insufficient_scope(required: Permissions) -> String {
    let mut v = String::from("Bearer realm=\"ark\", error=\"insufficient_scope\", scope=\"");
    required.write_names(|s| v.push_str(s), " ");
    v.push('"');
    v
}

/// What a rejection's `WWW-Authenticate` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Challenge {
    /// A value fixed at compile time (a 401).
    Fixed(HeaderValue),
    /// [`insufficient_scope`] of these permissions (a 403).
    Scope(Permissions),
}

impl Rejection {
    pub(crate) fn code(&self) -> ErrorCode {
        match self {
            Rejection::Credentials(CredentialError::Missing) => ErrorCode::AuthenticationRequired,
            Rejection::Credentials(_)
            | Rejection::UnknownKey
            | Rejection::EnvironmentNotAccepted(_) => ErrorCode::InvalidApiKey,
            Rejection::Revoked | Rejection::Expired => ErrorCode::ExpiredApiKey,
            Rejection::MissingPermissions { .. }
            | Rejection::OtherTenant { .. }
            | Rejection::OrganisationOnly { .. } => ErrorCode::PermissionDenied,
            Rejection::RateLimited(..) => ErrorCode::RateLimitExceeded,
            Rejection::Unavailable => ErrorCode::ServiceUnavailable,
        }
    }

    /// `(message, suggestion)`. Every text is fixed, or a fixed frame around permission names
    /// or a number (see [`Text`]): none needs JSON escaping, none carries any part of a token,
    /// and none is rendered before it is written into the body.
    pub(super) fn texts(&self) -> (Text, Text) {
        use Text::Fixed;
        const KEY_FORMAT: Text = Fixed("Ensure key starts with ark_live_ or ark_test_");
        const NEW_KEY: Text = Fixed("Generate a new API key");
        match self {
            Rejection::Credentials(CredentialError::Missing) => (
                Fixed("Missing API key"),
                Fixed("Add the header Authorization: Bearer <key>"),
            ),
            Rejection::Credentials(CredentialError::NoToken) => (
                Fixed("Invalid API key provided: no key after Bearer"),
                KEY_FORMAT,
            ),
            Rejection::Credentials(CredentialError::Malformed) => {
                (Fixed("Invalid API key provided"), KEY_FORMAT)
            }
            Rejection::Credentials(CredentialError::MultipleHeaders) => (
                Fixed("Invalid API key provided: more than one Authorization header"),
                Fixed("Send exactly one Authorization: Bearer <key> header"),
            ),
            Rejection::UnknownKey => (
                Fixed("Invalid API key provided"),
                Fixed("Check that the whole key was copied, or generate a new key"),
            ),
            Rejection::EnvironmentNotAccepted(Environment::Live) => (
                Fixed("Invalid API key provided: live keys are not accepted here"),
                Fixed("Use a test key (ark_test_...)"),
            ),
            Rejection::EnvironmentNotAccepted(Environment::Test) => (
                Fixed("Invalid API key provided: test keys are not accepted here"),
                Fixed("Use a live key (ark_live_...)"),
            ),
            Rejection::Revoked => (Fixed("API key has been revoked"), NEW_KEY),
            Rejection::Expired => (Fixed("API key has expired"), NEW_KEY),
            Rejection::MissingPermissions { missing, .. } => (
                Text::Names("API key lacks the required permission: ", *missing, ""),
                Text::Names(
                    "Grant the ",
                    *missing,
                    " permission to this key, or use a key that has it",
                ),
            ),
            Rejection::OtherTenant { .. } => (
                Fixed("API key is scoped to another tenant"),
                Fixed("Use a key scoped to this tenant, or an organisation-level key"),
            ),
            Rejection::OrganisationOnly { .. } => (
                Fixed(
                    "API key is scoped to a tenant; this request needs an organisation-level key",
                ),
                Fixed("Use an organisation-level key"),
            ),
            Rejection::RateLimited(d, limits) => (
                rate_limit_message(d, *limits),
                match d.retry_after_secs() {
                    1 => Fixed("Retry after 1 second"),
                    n => Text::Number("Retry after ", n, " seconds"),
                },
            ),
            Rejection::Unavailable => (
                Fixed("Authentication is temporarily unavailable"),
                Fixed("Retry after 1 second"),
            ),
        }
    }

    /// The `WWW-Authenticate` value: a literal checked at compile time for every 401, the
    /// required permission names for a 403, none for a 429 or a 503.
    pub(super) fn challenge(&self) -> Option<Challenge> {
        Some(Challenge::Fixed(match self {
            Rejection::Credentials(CredentialError::Missing) => {
                const { HeaderValue::from_static("Bearer realm=\"ark\"") }
            }
            Rejection::Credentials(CredentialError::NoToken) => {
                invalid_token!("No API key after Bearer")
            }
            Rejection::Credentials(CredentialError::Malformed) => {
                invalid_token!("The API key is malformed")
            }
            Rejection::Credentials(CredentialError::MultipleHeaders) => {
                invalid_token!("More than one Authorization header")
            }
            Rejection::UnknownKey => invalid_token!("The API key is invalid"),
            Rejection::EnvironmentNotAccepted(_) => {
                invalid_token!("Keys of this environment are not accepted")
            }
            Rejection::Revoked => invalid_token!("The API key has been revoked"),
            Rejection::Expired => invalid_token!("The API key has expired"),
            Rejection::MissingPermissions { required, .. }
            | Rejection::OtherTenant { required, .. }
            | Rejection::OrganisationOnly { required, .. } => {
                return Some(Challenge::Scope(*required))
            }
            Rejection::RateLimited(..) | Rejection::Unavailable => return None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_through_their_wire_form() {
        for code in ErrorCode::ALL {
            assert_eq!(code.as_str().parse(), Ok(code));
            assert_eq!(code.to_string(), code.as_str());
            assert_eq!(code.as_ref(), code.as_str());
        }
        for s in ["", "Invalid_api_key", "invalid_api_key ", "not_found"] {
            assert_eq!(s.parse::<ErrorCode>(), Err(UnknownErrorCode), "{s:?}");
        }
    }

    /// Contract section 2: the status of each code.
    #[test]
    fn codes_and_statuses_are_the_contract_table() {
        let table = [
            ("authentication_required", 401, 16),
            ("invalid_api_key", 401, 16),
            ("expired_api_key", 401, 16),
            ("permission_denied", 403, 7),
            ("rate_limit_exceeded", 429, 8),
            ("service_unavailable", 503, 14),
        ];
        for (code, (wire, status, grpc)) in ErrorCode::ALL.into_iter().zip(table) {
            assert_eq!(code.as_str(), wire);
            assert_eq!(code.status().as_u16(), status, "{wire}");
            assert_eq!(code.grpc_status(), grpc, "{wire}");
        }
    }

    #[test]
    fn text_lengths_are_the_rendered_lengths() {
        for n in [0, 9, 10, 99_999, u64::MAX] {
            let t = Text::Number("a ", n, " b");
            assert_eq!(t.len(), t.render().len());
            assert_eq!(t.render(), format!("a {n} b"));
        }
        for bits in 0..=Permissions::ALL.bits() {
            let t = Text::Names("x", Permissions::from_bits_truncate(bits), "y");
            assert_eq!(t.len(), t.render().len());
        }
    }

    #[test]
    fn insufficient_scope_lists_names_space_separated() {
        use crate::permission::Permission;
        assert_eq!(
            insufficient_scope(Permission::DomainsManage | Permission::WebhooksManage),
            "Bearer realm=\"ark\", error=\"insufficient_scope\", scope=\"domains:manage webhooks:manage\""
        );
    }
}
