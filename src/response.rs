//! The responses the layer writes itself: the JSON envelope of contract section 3 and the
//! headers of section 4.

use std::cell::RefCell;
use std::sync::LazyLock;

use bytes::{Bytes, BytesMut};
use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{Response, StatusCode, Version};

use crate::body::ArkAuthBody;
use crate::limit::RateLimitDecision;
use crate::permission::Permissions;
use crate::redact::repeats_credentials;
use crate::token::{CredentialError, Environment};

/// `X-RateLimit-Limit`.
pub static X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`.
pub static X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// `X-RateLimit-Reset`.
pub static X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
/// `X-Request-Id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The `error.code` values of contract section 2.
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

/// Why the layer answered a request itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    Credentials(CredentialError),
    UnknownKey,
    EnvironmentNotAccepted(Environment),
    Revoked,
    Expired,
    MissingPermissions {
        missing: Permissions,
        required: Permissions,
        limit: Option<RateLimitDecision>,
    },
    OtherTenant {
        required: Permissions,
        limit: Option<RateLimitDecision>,
    },
    /// A tenant-scoped key on a route for organisation-level keys only.
    OrganisationOnly {
        required: Permissions,
        limit: Option<RateLimitDecision>,
    },
    RateLimited(RateLimitDecision),
    Unavailable,
}

/// Seconds a client is told to wait after a 503.
const UNAVAILABLE_RETRY_AFTER: &str = "1";

/// Separator of permission names in the error texts (the `scope` of `WWW-Authenticate` uses
/// a space).
const TEXT_NAME_SEP: &str = ", ";

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

/// Prefix of the `WWW-Authenticate` value of a 403; the scope and a closing `"` follow.
const INSUFFICIENT_SCOPE: &str = "Bearer realm=\"ark\", error=\"insufficient_scope\", scope=\"";

/// The `WWW-Authenticate` value of a 403 for a route requiring `required`:
/// `Bearer realm="ark", error="insufficient_scope", scope="<names>"`.
///
/// There are 32 sets of permissions, so all 32 values are rendered once, on first use, and
/// kept for the life of the process (about 3 KB): a 403 then clones a static value, with no
/// allocation and no shared reference count.
fn insufficient_scope(required: Permissions) -> HeaderValue {
    static VALUES: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
        (0..=Permissions::ALL.bits())
            .map(|bits| {
                let mut v = String::from(INSUFFICIENT_SCOPE);
                Permissions::from_bits_truncate(bits).write_names(|s| v.push_str(s), " ");
                v.push('"');
                let v: &'static str = Box::leak(v.into_boxed_str());
                HeaderValue::from_static(v)
            })
            .collect()
    });
    VALUES[usize::from(required.bits())].clone()
}

/// One of the two texts of an error body.
///
/// Invariant (relied on by [`json_head`], which does no escaping): every part is a fixed
/// literal, permission wire names or a decimal number. Nothing from the request, and no part
/// of a token, can ever be in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Text {
    Fixed(&'static str),
    /// `before`, the names joined by [`TEXT_NAME_SEP`], `after`.
    Names(&'static str, Permissions, &'static str),
    /// `before`, the number in decimal, `after`.
    Number(&'static str, u64, &'static str),
}

impl Text {
    fn len(self) -> usize {
        match self {
            Text::Fixed(s) => s.len(),
            Text::Names(before, names, after) => {
                before.len() + names_len(names, TEXT_NAME_SEP) + after.len()
            }
            Text::Number(before, n, after) => before.len() + decimal_len(n) + after.len(),
        }
    }

    fn push_to(self, out: &mut Vec<u8>) {
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
                match small_digits(n) {
                    Some(s) => push(s),
                    None => push(itoa::Buffer::new().format(n)),
                }
                push(after);
            }
        }
    }

    #[cfg(test)]
    fn render(self) -> String {
        let mut s = Vec::new();
        self.push_to(&mut s);
        String::from_utf8(s).unwrap()
    }
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
            Rejection::RateLimited(_) => ErrorCode::RateLimitExceeded,
            Rejection::Unavailable => ErrorCode::ServiceUnavailable,
        }
    }

    /// `(message, suggestion)`. Every text is fixed, or a fixed frame around permission names
    /// or a number (see [`Text`]): none needs JSON escaping, none carries any part of a token,
    /// and none is rendered before it is written into the body.
    fn texts(&self) -> (Text, Text) {
        use Text::Fixed;
        match self {
            Rejection::Credentials(CredentialError::Missing) => (
                Fixed("Missing API key"),
                Fixed("Add the header Authorization: Bearer <key>"),
            ),
            Rejection::Credentials(CredentialError::NoToken) => (
                Fixed("Invalid API key provided: no key after Bearer"),
                Fixed("Ensure key starts with ark_live_ or ark_test_"),
            ),
            Rejection::Credentials(CredentialError::Malformed) => (
                Fixed("Invalid API key provided"),
                Fixed("Ensure key starts with ark_live_ or ark_test_"),
            ),
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
            Rejection::Revoked => (
                Fixed("API key has been revoked"),
                Fixed("Generate a new API key"),
            ),
            Rejection::Expired => (
                Fixed("API key has expired"),
                Fixed("Generate a new API key"),
            ),
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
            Rejection::RateLimited(d) => (
                Text::Number(
                    "Rate limit exceeded: ",
                    u64::from(d.limit),
                    " requests per window",
                ),
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

    /// The `WWW-Authenticate` value: a literal checked at compile time for every rejection
    /// but a 403, whose `scope` lists the required permission names.
    fn www_authenticate(&self) -> Option<HeaderValue> {
        Some(match self {
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
            | Rejection::OrganisationOnly { required, .. } => insufficient_scope(*required),
            Rejection::RateLimited(_) | Rejection::Unavailable => return None,
        })
    }

    fn limit(&self) -> Option<&RateLimitDecision> {
        match self {
            Rejection::MissingPermissions { limit, .. }
            | Rejection::OtherTenant { limit, .. }
            | Rejection::OrganisationOnly { limit, .. } => limit.as_ref(),
            Rejection::RateLimited(d) => Some(d),
            _ => None,
        }
    }

    /// `Retry-After`: on a 429 and a 503.
    fn retry_after(&self) -> Option<HeaderValue> {
        match self {
            Rejection::RateLimited(d) => Some(number_value(d.retry_after_secs())),
            Rejection::Unavailable => {
                Some(const { HeaderValue::from_static(UNAVAILABLE_RETRY_AFTER) })
            }
            _ => None,
        }
    }

    /// The response for this rejection: the JSON envelope, or the gRPC form when the caller
    /// speaks gRPC.
    pub(crate) fn into_response<B>(self, reply: Reply) -> Response<ArkAuthBody<B>> {
        let code = self.code();
        let (message, suggestion) = self.texts();
        let (www, limit, retry) = (self.www_authenticate(), self.limit(), self.retry_after());
        if let Some(grpc) = reply.grpc {
            let id = reply.id.0;
            let mut res = grpc_response(grpc, code, message);
            insert_headers(res.headers_mut(), id, www, limit, retry);
            return res;
        }
        let head = json_head(code, message, suggestion);
        let tail = json_tail(reply.id.0.as_bytes());
        let id = reply.id.0;
        let mut res = Response::new(ArkAuthBody::rejection(head, tail));
        *res.status_mut() = code.status();
        let ct = const { HeaderValue::from_static("application/json") };
        let h = res.headers_mut();
        // Every rejection has one of four shapes (see [`Shapes`]).
        match (www, limit, retry) {
            (Some(www), None, None) => {
                *h = SHAPES.unauthorized.clone();
                fill(h, [ct, id, www]);
            }
            (Some(www), Some(d), None) => {
                let [l, r, s] = rate_limit_values(d);
                *h = SHAPES.forbidden.clone();
                fill(h, [ct, id, www, l, r, s]);
            }
            (None, Some(d), Some(retry)) => {
                let [l, r, s] = rate_limit_values(d);
                *h = SHAPES.limited.clone();
                fill(h, [ct, id, l, r, s, retry]);
            }
            (None, None, Some(retry)) => {
                *h = SHAPES.unavailable.clone();
                fill(h, [ct, id, retry]);
            }
            (www, limit, retry) => {
                h.insert(CONTENT_TYPE, ct);
                insert_headers(h, id, www, limit, retry);
            }
        }
        res
    }
}

/// Inserts `X-Request-Id` and whichever of `WWW-Authenticate`, the rate-limit headers and
/// `Retry-After` a rejection has.
fn insert_headers(
    h: &mut HeaderMap,
    id: HeaderValue,
    www: Option<HeaderValue>,
    limit: Option<&RateLimitDecision>,
    retry: Option<HeaderValue>,
) {
    h.reserve(6);
    h.insert(X_REQUEST_ID.clone(), id);
    if let Some(v) = www {
        h.insert(WWW_AUTHENTICATE, v);
    }
    if let Some(d) = limit {
        set_rate_limit_headers(h, d);
    }
    if let Some(v) = retry {
        h.insert(RETRY_AFTER, v);
    }
}

/// How the layer answers one request it refuses: the request's id, and whether the caller
/// speaks gRPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    id: RequestId,
    grpc: Option<Grpc>,
}

impl Reply {
    /// For a request of this HTTP version with these headers (the presented credentials
    /// among them, which the request id must not repeat).
    pub(crate) fn for_request(version: Version, headers: &HeaderMap) -> Self {
        Reply {
            id: RequestId::from_headers(headers),
            grpc: Grpc::of(version, headers),
        }
    }

    pub(crate) fn id(&self) -> &RequestId {
        &self.id
    }
}

/// A gRPC caller, which reads errors from the `grpc-status` and `grpc-message` of a
/// trailers-only response, not from the HTTP status.
///
/// Only real gRPC callers get that form: gRPC runs over HTTP/2 only, so `application/grpc…`
/// over HTTP/1.x (a plain HTTP client, or key-testing traffic dressed up) gets the JSON form
/// with its real status (a 401 stays a 401 for tools that count them); gRPC-Web, made for
/// HTTP/1.1 too, is recognised by its own content types on any version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grpc {
    /// `application/grpc`, `application/grpc+proto`, … over HTTP/2.
    Http2,
    /// `application/grpc-web`, `application/grpc-web-text`, with `+format` or parameters:
    /// the same trailers-only form, in its own content type.
    Web,
}

impl Grpc {
    fn of(version: Version, headers: &HeaderMap) -> Option<Grpc> {
        let v = headers.get(CONTENT_TYPE)?.as_bytes();
        let rest = v.strip_prefix(b"application/grpc")?;
        // After the type: nothing, a `+format` suffix or `;parameters`.
        let ends = |r: &[u8]| matches!(r.first(), None | Some(b'+' | b';'));
        if ends(rest) {
            return (version == Version::HTTP_2).then_some(Grpc::Http2);
        }
        let web = rest.strip_prefix(b"-web")?;
        let web = web.strip_prefix(b"-text").unwrap_or(web);
        ends(web).then_some(Grpc::Web)
    }
}

static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// A trailers-only gRPC response: HTTP 200, `grpc-status` and `grpc-message` in the headers,
/// no body (the gRPC over HTTP/2 protocol's form for a call that fails before any message).
fn grpc_response<B>(grpc: Grpc, code: ErrorCode, message: Text) -> Response<ArkAuthBody<B>> {
    let mut res = Response::new(ArkAuthBody::empty());
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        match grpc {
            Grpc::Http2 => const { HeaderValue::from_static("application/grpc") },
            Grpc::Web => const { HeaderValue::from_static("application/grpc-web+proto") },
        },
    );
    h.insert(
        GRPC_STATUS.clone(),
        match code {
            ErrorCode::AuthenticationRequired
            | ErrorCode::InvalidApiKey
            | ErrorCode::ExpiredApiKey => const { HeaderValue::from_static("16") },
            ErrorCode::PermissionDenied => const { HeaderValue::from_static("7") },
            ErrorCode::RateLimitExceeded => const { HeaderValue::from_static("8") },
            ErrorCode::ServiceUnavailable => const { HeaderValue::from_static("14") },
        },
    );
    let mut text = Vec::with_capacity(message.len());
    message.push_to(&mut text);
    if let Ok(v) = HeaderValue::try_from(grpc_percent_encode(&text)) {
        h.insert(GRPC_MESSAGE.clone(), v);
    }
    res
}

/// `grpc-message` encoding: bytes outside `0x20..=0x7E`, and `%`, as `%XX`.
fn grpc_percent_encode(text: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text {
        if (0x20..=0x7E).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

/// The error envelope of contract section 3, in this key order:
/// `{"success":false,"error":{"code","message","suggestion"},"meta":{"requestId"}}`, in two
/// pieces: everything before the request id ([`json_head`]), which depends only on the
/// rejection and is kept per thread, and the id with the closing braces ([`json_tail`]).
///
/// Nothing is escaped, so everything interpolated must need no escaping: the code is a fixed
/// wire name, the texts are fixed literals, permission names and numbers (see [`Text`]), and
/// the request id is 1 to 128 characters of `[A-Za-z0-9._-]` (checked by
/// [`RequestId::from_headers`], or generated). Nothing from the token ever enters a response.
///
/// The closing braces after the request id.
const JSON_CLOSE: &str = r#""}}"#;

/// The envelope up to and including `"requestId":"`, built once per thread for the last few
/// distinct rejections (see [`HEADS`]) and shared by reference count: a refusal repeated (the
/// usual case: the same wrong key, the same missing permission, the same exhausted limit)
/// writes no JSON and allocates nothing for it.
fn json_head(code: ErrorCode, message: Text, suggestion: Text) -> Bytes {
    let key = (code, message, suggestion);
    HEADS
        .try_with(|heads| {
            let mut heads = heads.try_borrow_mut().ok()?;
            let Heads { entries, next } = &mut *heads;
            if let Some((_, head)) = entries.iter().flatten().find(|(k, _)| same_head(*k, key)) {
                return Some(head.clone());
            }
            let head = Bytes::from(json_head_bytes(code, message, suggestion));
            entries[*next] = Some((key, head.clone()));
            *next = (*next + 1) % HEADS_KEPT;
            Some(head)
        })
        .ok()
        .flatten()
        // Only while this thread's locals are being destroyed.
        .unwrap_or_else(|| Bytes::from(json_head_bytes(code, message, suggestion)))
}

/// Whether two rejections have the same head. The fixed parts of a text are literals of this
/// module, so comparing where they are is enough (two equal literals at different places
/// only make a second entry).
fn same_head(a: HeadKey, b: HeadKey) -> bool {
    fn same(a: Text, b: Text) -> bool {
        let at = |x: &'static str, y: &'static str| std::ptr::eq(x, y);
        match (a, b) {
            (Text::Fixed(x), Text::Fixed(y)) => at(x, y),
            (Text::Names(x0, n, x1), Text::Names(y0, m, y1)) => n == m && at(x0, y0) && at(x1, y1),
            (Text::Number(x0, n, x1), Text::Number(y0, m, y1)) => {
                n == m && at(x0, y0) && at(x1, y1)
            }
            _ => false,
        }
    }
    a.0 == b.0 && same(a.1, b.1) && same(a.2, b.2)
}

/// What a rejection's head is made of: its code, message and suggestion.
type HeadKey = (ErrorCode, Text, Text);

/// Distinct rejection heads kept per thread (a few hundred bytes each at most).
const HEADS_KEPT: usize = 8;

/// A thread's last [`HEADS_KEPT`] distinct rejection heads, replaced in turn.
#[derive(Default)]
struct Heads {
    entries: [Option<(HeadKey, Bytes)>; HEADS_KEPT],
    next: usize,
}

thread_local! {
    static HEADS: RefCell<Heads> = RefCell::new(Heads::default());
}

fn json_head_bytes(code: ErrorCode, message: Text, suggestion: Text) -> Vec<u8> {
    const OPEN: &str = r#"{"success":false,"error":{"code":""#;
    const MESSAGE: &str = r#"","message":""#;
    const SUGGESTION: &str = r#"","suggestion":""#;
    const REQUEST_ID: &str = r#""},"meta":{"requestId":""#;
    let code = code.as_str();
    let len = OPEN.len()
        + code.len()
        + MESSAGE.len()
        + message.len()
        + SUGGESTION.len()
        + suggestion.len()
        + REQUEST_ID.len();
    let mut json = Vec::with_capacity(len);
    json.extend_from_slice(OPEN.as_bytes());
    json.extend_from_slice(code.as_bytes());
    json.extend_from_slice(MESSAGE.as_bytes());
    message.push_to(&mut json);
    json.extend_from_slice(SUGGESTION.as_bytes());
    suggestion.push_to(&mut json);
    json.extend_from_slice(REQUEST_ID.as_bytes());
    debug_assert_eq!(json.len(), len);
    json
}

/// The request id and the closing `"}}`, carved from this thread's block (see [`carve`]).
fn json_tail(request_id: &[u8]) -> Bytes {
    debug_assert!(is_valid_request_id(request_id));
    carve(&[request_id, JSON_CLOSE.as_bytes()])
}

/// Length of `names` joined by `sep`, as [`Permissions::write_names`] writes them.
fn names_len(names: Permissions, sep: &str) -> usize {
    let (count, bytes) = names
        .iter()
        .fold((0usize, 0usize), |(c, b), p| (c + 1, b + p.as_str().len()));
    bytes + sep.len() * count.saturating_sub(1)
}

/// Writes `X-RateLimit-Limit`, `-Remaining` and `-Reset`.
///
/// Without allocating in the common case: a limit or remaining count of up to four digits is
/// a static value (see [`SMALL_DIGITS`]); a larger limit and the reset time (which changes
/// once a second) come from a one-entry cache per thread (see [`NumberValues`]); only a
/// remaining count above 9999 is rendered afresh, into this thread's block ([`carve`]).
pub(crate) fn set_rate_limit_headers(h: &mut HeaderMap, d: &RateLimitDecision) {
    let [limit, remaining, reset] = rate_limit_values(d);
    if h.capacity() == 0 {
        // A response without headers (nothing allocated yet): a copy of a map that has the
        // three names already, the values filled in place. Copying a few words per header is
        // about half the work of inserting, which hashes every name.
        *h = SHAPES.rate_limit.clone();
        fill(h, [limit, remaining, reset]);
        return;
    }
    // Room for the three at once: a handler's response with a few headers of its own is not
    // regrown one insert at a time.
    h.reserve(3);
    h.insert(X_RATELIMIT_LIMIT.clone(), limit);
    h.insert(X_RATELIMIT_REMAINING.clone(), remaining);
    h.insert(X_RATELIMIT_RESET.clone(), reset);
}

/// The values of `X-RateLimit-Limit`, `-Remaining` and `-Reset`.
fn rate_limit_values(d: &RateLimitDecision) -> [HeaderValue; 3] {
    let limit = u64::from(d.limit);
    let [limit, reset] = NUMBER_VALUES
        .try_with(|values| {
            let mut values = values.try_borrow_mut().ok()?;
            let limit = match small_digits(limit) {
                Some(s) => HeaderValue::from_static(s),
                None => values.limit(limit),
            };
            Some([limit, values.reset(d.reset)])
        })
        .ok()
        .flatten()
        // Only while this thread's locals are being destroyed.
        .unwrap_or_else(|| [limit, d.reset].map(number_value));
    [limit, number_value(u64::from(d.remaining)), reset]
}

/// Header maps with every name of a response the layer writes, in order, and placeholder
/// values: a response's map is a clone of one of them with its values replaced in order
/// ([`fill`]), which copies a few words per header where building it would hash every name.
struct Shapes {
    /// `X-RateLimit-Limit`, `-Remaining`, `-Reset`.
    rate_limit: HeaderMap,
    /// A 401: `Content-Type`, `X-Request-Id`, `WWW-Authenticate`.
    unauthorized: HeaderMap,
    /// A 403: a 401's, then the rate-limit headers.
    forbidden: HeaderMap,
    /// A 429: `Content-Type`, `X-Request-Id`, the rate-limit headers, `Retry-After`.
    limited: HeaderMap,
    /// A 503: `Content-Type`, `X-Request-Id`, `Retry-After`.
    unavailable: HeaderMap,
}

static SHAPES: LazyLock<Shapes> = LazyLock::new(|| {
    let shape = |names: &[&HeaderName]| {
        let mut h = HeaderMap::with_capacity(names.len());
        for &name in names {
            h.append(name.clone(), HeaderValue::from_static(""));
        }
        h
    };
    let json = [&CONTENT_TYPE, &X_REQUEST_ID];
    let limits = [
        &X_RATELIMIT_LIMIT,
        &X_RATELIMIT_REMAINING,
        &X_RATELIMIT_RESET,
    ];
    Shapes {
        rate_limit: shape(&limits),
        unauthorized: shape(&[json[0], json[1], &WWW_AUTHENTICATE]),
        forbidden: shape(&[
            json[0],
            json[1],
            &WWW_AUTHENTICATE,
            limits[0],
            limits[1],
            limits[2],
        ]),
        limited: shape(&[
            json[0],
            json[1],
            limits[0],
            limits[1],
            limits[2],
            &RETRY_AFTER,
        ]),
        unavailable: shape(&[json[0], json[1], &RETRY_AFTER]),
    }
});

/// Replaces the values of `h` (a clone of a [`Shapes`] map), in order.
fn fill<const N: usize>(h: &mut HeaderMap, values: [HeaderValue; N]) {
    debug_assert_eq!(h.len(), N);
    for (slot, v) in h.values_mut().zip(values) {
        *slot = v;
    }
}

/// Largest number whose header value is static (see [`SMALL_DIGITS`]).
const SMALL_MAX: u64 = 9_999;

/// Length of the decimal forms of 0..=9999 back to back.
const SMALL_DIGITS_LEN: usize = 10 + 90 * 2 + 900 * 3 + 9_000 * 4;

// Used once, by reference, to build `SMALL_DIGITS`: one copy in the binary. (A `static`
// could not be read by `str::from_utf8` at compile time before Rust 1.83.)
#[allow(clippy::large_const_arrays)]
const SMALL_DIGIT_BYTES: [u8; SMALL_DIGITS_LEN] = small_digit_bytes();

/// `"0123456789101112…99989999"`: every number of up to four digits, in order, built at
/// compile time. A number's decimal form is a slice of it (see
/// [`small_digits`]), and the `HeaderValue` of that slice is a `from_static` one: no
/// allocation, and cloning or dropping it touches no reference count.
static SMALL_DIGITS: &str = match std::str::from_utf8(&SMALL_DIGIT_BYTES) {
    Ok(s) => s,
    Err(_) => panic!("decimal digits are ASCII"),
};

const fn small_digit_bytes() -> [u8; SMALL_DIGITS_LEN] {
    let mut out = [0u8; SMALL_DIGITS_LEN];
    let mut at = 0;
    let mut n = 0u64;
    while n <= SMALL_MAX {
        let len = decimal_len(n);
        let mut i = len;
        let mut m = n;
        while i > 0 {
            i -= 1;
            out[at + i] = b'0' + (m % 10) as u8;
            m /= 10;
        }
        at += len;
        n += 1;
    }
    assert!(at == SMALL_DIGITS_LEN);
    out
}

/// The decimal form of `n` when `n` ≤ [`SMALL_MAX`], as a `'static` slice.
fn small_digits(n: u64) -> Option<&'static str> {
    // Offsets in SMALL_DIGITS: 10 one-digit forms, then 90 two-digit ones, then 900 of three.
    let (start, len) = match n {
        0..=9 => (n, 1),
        10..=99 => (10 + (n - 10) * 2, 2),
        100..=999 => (190 + (n - 100) * 3, 3),
        1_000..=SMALL_MAX => (2_890 + (n - 1_000) * 4, 4),
        _ => return None,
    };
    let start = start as usize; // < SMALL_DIGITS_LEN
    SMALL_DIGITS.get(start..start + len)
}

/// Number of decimal digits of `n`.
const fn decimal_len(n: u64) -> usize {
    match n.checked_ilog10() {
        Some(l) => l as usize + 1,
        None => 1,
    }
}

/// `HeaderValue::from(n)`: a static value when `n` ≤ 9999, otherwise the digits carved from
/// this thread's block (see [`carve`]; `HeaderValue::from` allocates once or twice).
fn number_value(n: u64) -> HeaderValue {
    match small_digits(n) {
        Some(s) => HeaderValue::from_static(s),
        None => fresh_number_value(n),
    }
}

fn fresh_number_value(n: u64) -> HeaderValue {
    // Digits are always a valid value.
    HeaderValue::from_maybe_shared(carve(&[itoa::Buffer::new().format(n).as_bytes()]))
        .unwrap_or_else(|_| HeaderValue::from(n))
}

/// This thread's last rendered limit above 9999 and reset time, with their values.
///
/// A hit is a clone: a reference-count increment. A miss renders the value into this
/// thread's block ([`carve`]). The reset time changes once a second, and the limit is
/// usually the same for many keys.
struct NumberValues {
    limit: Option<(u64, HeaderValue)>,
    reset: Option<(u64, HeaderValue)>,
}

thread_local! {
    static NUMBER_VALUES: RefCell<NumberValues> = const {
        RefCell::new(NumberValues {
            limit: None,
            reset: None,
        })
    };
}

impl NumberValues {
    fn limit(&mut self, n: u64) -> HeaderValue {
        Self::remembered(&mut self.limit, n)
    }

    fn reset(&mut self, n: u64) -> HeaderValue {
        Self::remembered(&mut self.reset, n)
    }

    /// The value in `slot` if it is `n`'s, otherwise a new one, remembered.
    fn remembered(slot: &mut Option<(u64, HeaderValue)>, n: u64) -> HeaderValue {
        match slot {
            Some((k, v)) if *k == n => v.clone(),
            _ => {
                let v = number_value(n);
                *slot = Some((n, v.clone()));
                v
            }
        }
    }
}

/// The id of a request: its `X-Request-Id` header when that is 1 to 128 characters of
/// `[A-Za-z0-9._-]`, otherwise a fresh `req_` id.
///
/// ```
/// use ark_auth::RequestId;
/// use http::HeaderMap;
///
/// let mut h = HeaderMap::new();
/// h.insert("x-request-id", "abc-123".parse().unwrap());
/// assert_eq!(RequestId::from_headers(&h).as_str(), "abc-123");
/// h.insert("x-request-id", "bad id!".parse().unwrap());
/// assert!(RequestId::from_headers(&h).as_str().starts_with("req_"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// Reads or makes the id of a request with these headers. An id that holds `ark_live_`
    /// or `ark_test_` (a key pasted into the wrong header), or that shares 8 or more
    /// consecutive characters with the credentials the same request presents in
    /// `Authorization` (see [`repeats_credentials`]), is replaced by a fresh one: nothing the
    /// layer writes or logs repeats a key. The check runs only when an id is present.
    ///
    /// ```
    /// use ark_auth::RequestId;
    /// use http::HeaderMap;
    ///
    /// let mut h = HeaderMap::new();
    /// h.insert("authorization", "Bearer ark_test_0123456789abcdefXYZ".parse().unwrap());
    /// h.insert("x-request-id", "trace-89abcdefXYZ".parse().unwrap());
    /// assert!(RequestId::from_headers(&h).as_str().starts_with("req_"));
    /// ```
    pub fn from_headers(headers: &HeaderMap) -> Self {
        match headers.get(&X_REQUEST_ID) {
            Some(v)
                if is_valid_request_id(v.as_bytes())
                    && !repeats_credentials(headers, v.as_bytes()) =>
            {
                RequestId(v.clone())
            }
            _ => RequestId::generate(),
        }
    }

    /// A fresh `req_` id: `req_` and 20 hex digits (80 random bits; unique, not secret).
    pub fn generate() -> Self {
        let n = fastrand::u128(..) & ((1u128 << 80) - 1);
        let id = generated_id(n);
        RequestId(
            HeaderValue::from_maybe_shared(carve(&[&id])).expect("hex is a valid header value"),
        )
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        // Only ever built from validated ASCII.
        std::str::from_utf8(self.0.as_bytes()).unwrap_or("")
    }

    /// The id as a header value (for `X-Request-Id`).
    pub fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }
}

/// Size of a thread's block of small response pieces (generated request ids, the tails of
/// rejection bodies): each thread writes them side by side into its block and hands out each
/// as a view of the block (a reference count, not an allocation per piece). 3 KiB holds 128
/// generated ids.
const BLOCK_BYTES: usize = 3 * 1024;

thread_local! {
    static BLOCK: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// `parts`, concatenated, as a view of this thread's block (a new block when the current one
/// is full; an allocation of its own while the thread's locals are being destroyed, or for a
/// piece larger than a quarter of a block).
fn carve(parts: &[&[u8]]) -> Bytes {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let carved = (len <= BLOCK_BYTES / 4)
        .then(|| {
            BLOCK
                .try_with(|block| {
                    let mut block = block.try_borrow_mut().ok()?;
                    if block.capacity() < len {
                        *block = BytesMut::with_capacity(BLOCK_BYTES);
                    }
                    for p in parts {
                        block.extend_from_slice(p);
                    }
                    Some(block.split().freeze())
                })
                .ok()
                .flatten()
        })
        .flatten();
    carved.unwrap_or_else(|| Bytes::from(parts.concat()))
}

/// `req_` and the low 80 bits of `n` as 20 lowercase hex digits (`format!("req_{n:020x}")`
/// for `n < 2^80`).
fn generated_id(n: u128) -> [u8; 24] {
    let mut id = *b"req_00000000000000000000";
    // The low 10 bytes of `n`, big-endian, as 20 hex digits.
    hex::encode_to_slice(&n.to_be_bytes()[6..], &mut id[4..]).expect("20 digits for 10 bytes");
    id
}

/// Bytes allowed in a request id: `[A-Za-z0-9._-]`.
static REQUEST_ID_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        c += 1;
    }
    t
};

fn is_valid_request_id(b: &[u8]) -> bool {
    (1..=128).contains(&b.len())
        && b.iter()
            .fold(true, |ok, &c| ok & REQUEST_ID_BYTE[usize::from(c)])
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Buf as _;
    use http_body_util::{BodyExt as _, Empty};

    use super::*;
    use crate::permission::Permission;

    #[test]
    fn rejection_heads_are_shared_per_thread_and_keyed_by_the_whole_rejection() {
        let names = |p| Text::Names("API key lacks the required permission: ", p, "");
        let send = Permissions::from(Permission::EmailsSend);
        let read = Permissions::from(Permission::EmailsRead);
        let s = Text::Fixed("s");
        let a = json_head(ErrorCode::PermissionDenied, names(send), s);
        let b = json_head(ErrorCode::PermissionDenied, names(send), s);
        let c = json_head(ErrorCode::PermissionDenied, names(read), s);
        assert_eq!(
            a.as_ptr(),
            b.as_ptr(),
            "a repeated rejection reuses its head"
        );
        assert_ne!(a, c, "another permission is another head");
        // More distinct heads than are kept: each is still right.
        for n in 0..3 * HEADS_KEPT as u64 {
            let t = Text::Number("Retry after ", n, " seconds");
            let head = json_head(ErrorCode::RateLimitExceeded, t, t);
            assert_eq!(head, json_head_bytes(ErrorCode::RateLimitExceeded, t, t));
        }
        assert_eq!(
            json_head(ErrorCode::PermissionDenied, names(send), s),
            json_head_bytes(ErrorCode::PermissionDenied, names(send), s)
        );
    }

    #[test]
    fn request_ids_holding_a_key_are_not_echoed() {
        let mut h = HeaderMap::new();
        for id in [
            "ark_live_AbCdEfGhIjKlMnOpQrSt",
            "trace-ark_test_AbCdEfGhIjKlMnOpQrSt",
        ] {
            h.insert(&X_REQUEST_ID, HeaderValue::from_static(id));
            let got = RequestId::from_headers(&h);
            assert!(got.as_str().starts_with("req_"), "{id} echoed");
        }
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("ark_other_1"));
        assert_eq!(RequestId::from_headers(&h).as_str(), "ark_other_1");
    }

    #[test]
    fn request_id_rules() {
        let mut h = HeaderMap::new();
        assert!(RequestId::from_headers(&h).as_str().starts_with("req_"));
        assert_eq!(RequestId::generate().as_str().len(), 24);
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("a.b_c-D9"));
        assert_eq!(RequestId::from_headers(&h).as_str(), "a.b_c-D9");
        let long = "a".repeat(128);
        h.insert(&X_REQUEST_ID, HeaderValue::from_str(&long).unwrap());
        assert_eq!(RequestId::from_headers(&h).as_str(), long);
        let too_long = "a".repeat(129);
        h.insert(&X_REQUEST_ID, HeaderValue::from_str(&too_long).unwrap());
        assert!(RequestId::from_headers(&h).as_str().starts_with("req_"));
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("\"quoted\""));
        assert!(RequestId::from_headers(&h).as_str().starts_with("req_"));
        h.insert(&X_REQUEST_ID, HeaderValue::from_static(""));
        assert!(RequestId::from_headers(&h).as_str().starts_with("req_"));
    }

    #[test]
    fn request_id_byte_table_is_the_rule() {
        for c in 0..=255u8 {
            let rule = c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-');
            assert_eq!(REQUEST_ID_BYTE[usize::from(c)], rule, "byte {c}");
            assert_eq!(is_valid_request_id(&[c]), rule, "byte {c}");
            assert_eq!(is_valid_request_id(&[b'a', c, b'z']), rule, "byte {c}");
        }
        assert!(!is_valid_request_id(b""));
        assert!(is_valid_request_id(&[b'7'; 128]));
        assert!(!is_valid_request_id(&[b'7'; 129]));
    }

    #[test]
    fn generated_ids_are_the_formatted_ones() {
        let mask = (1u128 << 80) - 1;
        let mut rng = fastrand::Rng::with_seed(7);
        let samples = [0, 1, 0xf, 0x10, 0xabc, mask, mask - 1, 1 << 79]
            .into_iter()
            .chain((0..1000).map(|_| rng.u128(..) & mask));
        for n in samples {
            let id = generated_id(n);
            assert_eq!(std::str::from_utf8(&id).unwrap(), format!("req_{n:020x}"));
        }
        // Same random stream as before: fastrand's u128, masked to 80 bits.
        fastrand::seed(42);
        let id = RequestId::generate();
        fastrand::seed(42);
        let expected = format!("req_{:020x}", fastrand::u128(..) & mask);
        assert_eq!(id.as_str(), expected);
        assert_eq!(id.header_value(), expected.as_str());
        assert!(is_valid_request_id(id.as_str().as_bytes()));
    }

    fn assert_same_value(v: &HeaderValue, n: u64) {
        let expected = HeaderValue::from(n);
        assert_eq!(v, &expected, "{n}");
        assert_eq!(v.as_bytes(), n.to_string().as_bytes(), "{n}");
        assert!(!v.is_sensitive(), "{n}");
    }

    /// Whether `v`'s bytes are a slice of the static digit table (so it never allocated).
    fn is_static(v: &HeaderValue) -> bool {
        SMALL_DIGITS
            .as_bytes()
            .as_ptr_range()
            .contains(&v.as_bytes().as_ptr())
    }

    fn large_numbers() -> Vec<u64> {
        let mut v = vec![
            SMALL_MAX,
            SMALL_MAX + 1,
            12_345,
            65_535,
            1_790_000_000,
            u64::from(u32::MAX) - 1,
            u64::from(u32::MAX),
            u64::from(u32::MAX) + 1,
            u64::MAX - 1,
            u64::MAX,
        ];
        for k in 1..=19 {
            let p = 10u64.pow(k);
            v.extend([p - 1, p, p + 1]);
        }
        v
    }

    #[test]
    fn small_digit_table() {
        assert_eq!(SMALL_DIGITS.len(), SMALL_DIGITS_LEN);
        assert!(SMALL_DIGITS.starts_with("0123456789101112"));
        assert!(SMALL_DIGITS.ends_with("99989999"));
        assert_eq!(small_digits(0), Some("0"));
        assert_eq!(small_digits(9), Some("9"));
        assert_eq!(small_digits(10), Some("10"));
        assert_eq!(small_digits(99), Some("99"));
        assert_eq!(small_digits(100), Some("100"));
        assert_eq!(small_digits(999), Some("999"));
        assert_eq!(small_digits(1_000), Some("1000"));
        assert_eq!(small_digits(SMALL_MAX), Some("9999"));
        assert_eq!(small_digits(SMALL_MAX + 1), None);
        assert_eq!(small_digits(u64::MAX), None);
        for n in 0..=SMALL_MAX {
            assert_eq!(small_digits(n), Some(n.to_string().as_str()));
        }
    }

    #[test]
    fn number_values_equal_header_value_from() {
        for n in 0..=20_000u64 {
            let v = number_value(n);
            assert_same_value(&v, n);
            assert_eq!(is_static(&v), n <= SMALL_MAX, "{n}");
            if let Ok(n32) = u32::try_from(n) {
                assert_eq!(number_value(n), HeaderValue::from(n32));
            }
        }
        for n in large_numbers() {
            let v = number_value(n);
            assert_same_value(&v, n);
            assert_eq!(is_static(&v), n <= SMALL_MAX, "{n}");
            assert_same_value(&fresh_number_value(n), n);
            assert_eq!(decimal_len(n), n.to_string().len(), "{n}");
        }
        for n in [0, 5, 10, 99, 100, 9_999] {
            assert_same_value(&fresh_number_value(n), n);
        }
    }

    fn decision(limit: u32, remaining: u32, reset: u64) -> RateLimitDecision {
        RateLimitDecision {
            allowed: true,
            limit,
            remaining,
            reset,
            retry_after: None,
        }
    }

    fn assert_rate_limit_headers(h: &HeaderMap, d: &RateLimitDecision) {
        for (name, n) in [
            (&X_RATELIMIT_LIMIT, u64::from(d.limit)),
            (&X_RATELIMIT_REMAINING, u64::from(d.remaining)),
            (&X_RATELIMIT_RESET, d.reset),
        ] {
            let all: Vec<_> = h.get_all(name).iter().collect();
            assert_eq!(all.len(), 1, "{name}");
            assert_same_value(all[0], n);
        }
    }

    #[test]
    fn rate_limit_headers_for_every_kind_of_number() {
        // A fresh thread: its cache starts empty.
        std::thread::spawn(|| {
            let numbers: Vec<u64> = (0..=5_000)
                .chain([SMALL_MAX - 1, SMALL_MAX, SMALL_MAX + 1])
                .chain(large_numbers())
                .collect();
            for &n in &numbers {
                let n32 = u32::try_from(n).unwrap_or(u32::MAX);
                for d in [
                    decision(n32, n32, n),
                    decision(n32, n32 / 2, 1_790_000_000),
                    decision(u32::MAX, n32, n / 3),
                ] {
                    let mut h = HeaderMap::new();
                    set_rate_limit_headers(&mut h, &d);
                    assert_rate_limit_headers(&h, &d);
                    assert_eq!(h.len(), 3);
                }
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn reset_and_limit_are_cached_per_thread_and_follow_changes() {
        std::thread::spawn(|| {
            let reset_ptr = |h: &HeaderMap| h[&X_RATELIMIT_RESET].as_bytes().as_ptr();
            let limit_ptr = |h: &HeaderMap| h[&X_RATELIMIT_LIMIT].as_bytes().as_ptr();
            let t = 1_790_000_000u64;
            let d0 = decision(u32::MAX, 7, t);
            let (mut a, mut b) = (HeaderMap::new(), HeaderMap::new());
            set_rate_limit_headers(&mut a, &d0);
            set_rate_limit_headers(&mut b, &d0);
            assert_rate_limit_headers(&a, &d0);
            assert_rate_limit_headers(&b, &d0);
            // The same second and limit: the same buffers, shared (nothing rendered again).
            assert_eq!(reset_ptr(&a), reset_ptr(&b));
            assert_eq!(limit_ptr(&a), limit_ptr(&b));
            // The next second: the new value, in a new buffer; the old one is untouched.
            let d1 = decision(u32::MAX, 6, t + 1);
            let mut c = HeaderMap::new();
            set_rate_limit_headers(&mut c, &d1);
            assert_rate_limit_headers(&c, &d1);
            assert_ne!(reset_ptr(&c), reset_ptr(&a));
            assert_eq!(limit_ptr(&c), limit_ptr(&a));
            assert_rate_limit_headers(&a, &d0);
            // Back to the earlier second (another key's window), and a new limit.
            let d2 = decision(50_000, 49_999, t);
            let mut e = HeaderMap::new();
            set_rate_limit_headers(&mut e, &d2);
            assert_rate_limit_headers(&e, &d2);
            let d3 = decision(50_000, 49_998, t);
            let mut f = HeaderMap::new();
            set_rate_limit_headers(&mut f, &d3);
            assert_rate_limit_headers(&f, &d3);
            assert_eq!(limit_ptr(&e), limit_ptr(&f));
            assert_eq!(reset_ptr(&e), reset_ptr(&f));
            // A small limit is static, and does not disturb the cached large one.
            let d4 = decision(100, 99, t);
            let mut g = HeaderMap::new();
            set_rate_limit_headers(&mut g, &d4);
            assert_rate_limit_headers(&g, &d4);
            assert!(is_static(&g[&X_RATELIMIT_LIMIT]));
            assert!(is_static(&g[&X_RATELIMIT_REMAINING]));
            set_rate_limit_headers(&mut g, &d3);
            assert_rate_limit_headers(&g, &d3);
            assert_eq!(limit_ptr(&g), limit_ptr(&f));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn rate_limit_headers_into_a_map_with_capacity_and_other_headers() {
        let d = decision(1_000, 998, 1_790_000_042);
        let mut h = HeaderMap::with_capacity(16);
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("abc"));
        let cap = h.capacity();
        set_rate_limit_headers(&mut h, &d);
        assert_rate_limit_headers(&h, &d);
        assert_eq!(h.len(), 5);
        assert_eq!(h.capacity(), cap);
        assert_eq!(h[CONTENT_TYPE], "text/plain");
        assert_eq!(h[&X_REQUEST_ID], "abc");
        assert!(is_static(&h[&X_RATELIMIT_LIMIT]) && is_static(&h[&X_RATELIMIT_REMAINING]));
        // Values an inner service set are replaced, not appended to.
        h.append(&X_RATELIMIT_LIMIT, HeaderValue::from_static("1"));
        h.append(&X_RATELIMIT_RESET, HeaderValue::from_static("2"));
        let d = decision(u32::MAX, u32::MAX - 1, u64::MAX);
        set_rate_limit_headers(&mut h, &d);
        assert_rate_limit_headers(&h, &d);
        assert_eq!(h.len(), 5);
    }

    #[test]
    fn rate_limit_headers_while_thread_locals_are_destroyed() {
        use std::sync::Mutex;
        static RESULT: Mutex<Option<bool>> = Mutex::new(None);
        struct OnExit;
        impl Drop for OnExit {
            fn drop(&mut self) {
                let d = decision(u32::MAX, 123_456, 1_790_000_000);
                let mut h = HeaderMap::new();
                set_rate_limit_headers(&mut h, &d);
                let ok = [
                    (&X_RATELIMIT_LIMIT, "4294967295"),
                    (&X_RATELIMIT_REMAINING, "123456"),
                    (&X_RATELIMIT_RESET, "1790000000"),
                ]
                .iter()
                .all(|(name, v)| h[*name] == *v);
                *RESULT.lock().unwrap() = Some(ok);
            }
        }
        thread_local! {
            static ON_EXIT: OnExit = const { OnExit };
        }
        std::thread::spawn(|| {
            // Registered before the cache, so (destroyed in reverse order) it runs after the
            // cache is gone, when `try_with` fails.
            ON_EXIT.with(|_| ());
            let d = decision(u32::MAX, 1, 1_790_000_000);
            set_rate_limit_headers(&mut HeaderMap::new(), &d);
        })
        .join()
        .unwrap();
        assert_eq!(*RESULT.lock().unwrap(), Some(true));
    }

    #[test]
    fn forbidden_names_missing_permissions() {
        let r = Rejection::MissingPermissions {
            missing: Permission::DomainsManage | Permission::WebhooksManage,
            required: Permission::DomainsManage | Permission::WebhooksManage,
            limit: None,
        };
        let res = r.into_response::<()>(Reply::for_request(Version::HTTP_11, &HeaderMap::new()));
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            res.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"ark\", error=\"insufficient_scope\", scope=\"domains:manage webhooks:manage\""
        );
    }

    fn rl(limit: u32, remaining: u32, reset: u64, retry: Option<Duration>) -> RateLimitDecision {
        RateLimitDecision {
            allowed: retry.is_none(),
            limit,
            remaining,
            reset,
            retry_after: retry,
        }
    }

    /// Every kind of rejection, with the edge cases of its interpolated parts.
    fn cases() -> Vec<(&'static str, Rejection)> {
        use Permission::*;
        vec![
            ("missing", Rejection::Credentials(CredentialError::Missing)),
            ("no_token", Rejection::Credentials(CredentialError::NoToken)),
            (
                "malformed",
                Rejection::Credentials(CredentialError::Malformed),
            ),
            (
                "multiple",
                Rejection::Credentials(CredentialError::MultipleHeaders),
            ),
            ("unknown", Rejection::UnknownKey),
            (
                "env_live",
                Rejection::EnvironmentNotAccepted(Environment::Live),
            ),
            (
                "env_test",
                Rejection::EnvironmentNotAccepted(Environment::Test),
            ),
            ("revoked", Rejection::Revoked),
            ("expired", Rejection::Expired),
            (
                "perm1",
                Rejection::MissingPermissions {
                    missing: EmailsSend.into(),
                    required: EmailsSend.into(),
                    limit: None,
                },
            ),
            (
                "perm2",
                Rejection::MissingPermissions {
                    missing: DomainsManage | WebhooksManage,
                    required: EmailsRead | DomainsManage | WebhooksManage,
                    limit: Some(rl(100, 42, 1_790_000_000, None)),
                },
            ),
            (
                "perm_all",
                Rejection::MissingPermissions {
                    missing: Permissions::ALL,
                    required: Permissions::ALL,
                    limit: Some(rl(u32::MAX, 0, u64::MAX, Some(Duration::from_millis(1500)))),
                },
            ),
            (
                "tenant",
                Rejection::OtherTenant {
                    required: EmailsSend.into(),
                    limit: None,
                },
            ),
            (
                "tenant_limit",
                Rejection::OtherTenant {
                    required: EmailsSend | SuppressionsManage,
                    limit: Some(rl(10_000, 9_999, 1_790_000_001, None)),
                },
            ),
            (
                "rl_none",
                Rejection::RateLimited(rl(60, 0, 1_790_000_060, None)),
            ),
            (
                "rl_frac",
                Rejection::RateLimited(rl(1, 0, 1_790_000_002, Some(Duration::from_millis(1200)))),
            ),
            (
                "rl_zero",
                Rejection::RateLimited(rl(4_294_967_295, 0, 9, Some(Duration::ZERO))),
            ),
            (
                "rl_big",
                Rejection::RateLimited(rl(
                    1000,
                    0,
                    1_790_003_600,
                    Some(Duration::from_secs(123_456)),
                )),
            ),
            ("unavailable", Rejection::Unavailable),
        ]
    }

    fn golden_reply() -> Reply {
        let mut h = HeaderMap::new();
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("req-Golden_1.x"));
        Reply::for_request(Version::HTTP_11, &h)
    }

    fn body_of(res: Response<ArkAuthBody<Empty<Bytes>>>) -> (http::response::Parts, String) {
        let (parts, body) = res.into_parts();
        let mut data = futures::executor::block_on(body.collect())
            .unwrap()
            .aggregate();
        let bytes = data.copy_to_bytes(data.remaining());
        (parts, String::from_utf8(bytes.to_vec()).unwrap())
    }

    /// Status, headers in order and body of every case, as the implementation before
    /// `Text`/`json_body`/static values (commit 52e89ca) rendered them, byte for byte.
    const GOLDEN: &str = r####"CASE missing 401
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark"
B {"success":false,"error":{"code":"authentication_required","message":"Missing API key","suggestion":"Add the header Authorization: Bearer <key>"},"meta":{"requestId":"req-Golden_1.x"}}
CASE no_token 401
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="invalid_token", error_description="No API key after Bearer"
B {"success":false,"error":{"code":"invalid_api_key","message":"Invalid API key provided: no key after Bearer","suggestion":"Ensure key starts with ark_live_ or ark_test_"},"meta":{"requestId":"req-Golden_1.x"}}
CASE malformed 401
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="invalid_token", error_description="The API key is malformed"
B {"success":false,"error":{"code":"invalid_api_key","message":"Invalid API key provided","suggestion":"Ensure key starts with ark_live_ or ark_test_"},"meta":{"requestId":"req-Golden_1.x"}}
CASE multiple 401
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="invalid_token", error_description="More than one Authorization header"
B {"success":false,"error":{"code":"invalid_api_key","message":"Invalid API key provided: more than one Authorization header","suggestion":"Send exactly one Authorization: Bearer <key> header"},"meta":{"requestId":"req-Golden_1.x"}}
CASE unknown 401
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="invalid_token", error_description="The API key is invalid"
B {"success":false,"error":{"code":"invalid_api_key","message":"Invalid API key provided","suggestion":"Check that the whole key was copied, or generate a new key"},"meta":{"requestId":"req-Golden_1.x"}}
CASE env_live 401
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="invalid_token", error_description="Keys of this environment are not accepted"
B {"success":false,"error":{"code":"invalid_api_key","message":"Invalid API key provided: live keys are not accepted here","suggestion":"Use a test key (ark_test_...)"},"meta":{"requestId":"req-Golden_1.x"}}
CASE env_test 401
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="invalid_token", error_description="Keys of this environment are not accepted"
B {"success":false,"error":{"code":"invalid_api_key","message":"Invalid API key provided: test keys are not accepted here","suggestion":"Use a live key (ark_live_...)"},"meta":{"requestId":"req-Golden_1.x"}}
CASE revoked 401
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="invalid_token", error_description="The API key has been revoked"
B {"success":false,"error":{"code":"expired_api_key","message":"API key has been revoked","suggestion":"Generate a new API key"},"meta":{"requestId":"req-Golden_1.x"}}
CASE expired 401
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="invalid_token", error_description="The API key has expired"
B {"success":false,"error":{"code":"expired_api_key","message":"API key has expired","suggestion":"Generate a new API key"},"meta":{"requestId":"req-Golden_1.x"}}
CASE perm1 403
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="insufficient_scope", scope="emails:send"
B {"success":false,"error":{"code":"permission_denied","message":"API key lacks the required permission: emails:send","suggestion":"Grant the emails:send permission to this key, or use a key that has it"},"meta":{"requestId":"req-Golden_1.x"}}
CASE perm2 403
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="insufficient_scope", scope="emails:read domains:manage webhooks:manage"
H x-ratelimit-limit: 100
H x-ratelimit-remaining: 42
H x-ratelimit-reset: 1790000000
B {"success":false,"error":{"code":"permission_denied","message":"API key lacks the required permission: domains:manage, webhooks:manage","suggestion":"Grant the domains:manage, webhooks:manage permission to this key, or use a key that has it"},"meta":{"requestId":"req-Golden_1.x"}}
CASE perm_all 403
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="insufficient_scope", scope="emails:send emails:read domains:manage webhooks:manage suppressions:manage"
H x-ratelimit-limit: 4294967295
H x-ratelimit-remaining: 0
H x-ratelimit-reset: 18446744073709551615
B {"success":false,"error":{"code":"permission_denied","message":"API key lacks the required permission: emails:send, emails:read, domains:manage, webhooks:manage, suppressions:manage","suggestion":"Grant the emails:send, emails:read, domains:manage, webhooks:manage, suppressions:manage permission to this key, or use a key that has it"},"meta":{"requestId":"req-Golden_1.x"}}
CASE tenant 403
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="insufficient_scope", scope="emails:send"
B {"success":false,"error":{"code":"permission_denied","message":"API key is scoped to another tenant","suggestion":"Use a key scoped to this tenant, or an organisation-level key"},"meta":{"requestId":"req-Golden_1.x"}}
CASE tenant_limit 403
H content-type: application/json
H x-request-id: req-Golden_1.x
H www-authenticate: Bearer realm="ark", error="insufficient_scope", scope="emails:send suppressions:manage"
H x-ratelimit-limit: 10000
H x-ratelimit-remaining: 9999
H x-ratelimit-reset: 1790000001
B {"success":false,"error":{"code":"permission_denied","message":"API key is scoped to another tenant","suggestion":"Use a key scoped to this tenant, or an organisation-level key"},"meta":{"requestId":"req-Golden_1.x"}}
CASE rl_none 429
H content-type: application/json
H x-request-id: req-Golden_1.x
H x-ratelimit-limit: 60
H x-ratelimit-remaining: 0
H x-ratelimit-reset: 1790000060
H retry-after: 1
B {"success":false,"error":{"code":"rate_limit_exceeded","message":"Rate limit exceeded: 60 requests per window","suggestion":"Retry after 1 second"},"meta":{"requestId":"req-Golden_1.x"}}
CASE rl_frac 429
H content-type: application/json
H x-request-id: req-Golden_1.x
H x-ratelimit-limit: 1
H x-ratelimit-remaining: 0
H x-ratelimit-reset: 1790000002
H retry-after: 2
B {"success":false,"error":{"code":"rate_limit_exceeded","message":"Rate limit exceeded: 1 requests per window","suggestion":"Retry after 2 seconds"},"meta":{"requestId":"req-Golden_1.x"}}
CASE rl_zero 429
H content-type: application/json
H x-request-id: req-Golden_1.x
H x-ratelimit-limit: 4294967295
H x-ratelimit-remaining: 0
H x-ratelimit-reset: 9
H retry-after: 1
B {"success":false,"error":{"code":"rate_limit_exceeded","message":"Rate limit exceeded: 4294967295 requests per window","suggestion":"Retry after 1 second"},"meta":{"requestId":"req-Golden_1.x"}}
CASE rl_big 429
H content-type: application/json
H x-request-id: req-Golden_1.x
H x-ratelimit-limit: 1000
H x-ratelimit-remaining: 0
H x-ratelimit-reset: 1790003600
H retry-after: 123456
B {"success":false,"error":{"code":"rate_limit_exceeded","message":"Rate limit exceeded: 1000 requests per window","suggestion":"Retry after 123456 seconds"},"meta":{"requestId":"req-Golden_1.x"}}
CASE unavailable 503
H content-type: application/json
H x-request-id: req-Golden_1.x
H retry-after: 1
B {"success":false,"error":{"code":"service_unavailable","message":"Authentication is temporarily unavailable","suggestion":"Retry after 1 second"},"meta":{"requestId":"req-Golden_1.x"}}
"####;

    #[test]
    fn responses_are_byte_for_byte_the_previous_ones() {
        let reply = golden_reply();
        let mut out = String::new();
        for (name, r) in cases() {
            let (parts, body) = body_of(r.into_response(reply.clone()));
            out.push_str(&format!("CASE {name} {}\n", parts.status.as_u16()));
            for (k, v) in &parts.headers {
                out.push_str(&format!("H {k}: {}\n", v.to_str().unwrap()));
            }
            out.push_str(&format!("B {body}\n"));
        }
        for (got, want) in out.lines().zip(GOLDEN.lines()) {
            assert_eq!(got, want);
        }
        assert_eq!(out, GOLDEN);
    }

    #[test]
    fn grpc_callers_are_recognised_by_content_type() {
        let grpc = |ct: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            Grpc::of(Version::HTTP_2, &h)
        };
        assert_eq!(grpc("application/grpc"), Some(Grpc::Http2));
        assert_eq!(grpc("application/grpc+proto"), Some(Grpc::Http2));
        assert_eq!(grpc("application/grpc;charset=utf-8"), Some(Grpc::Http2));
        assert_eq!(grpc("application/grpc-web"), Some(Grpc::Web));
        assert_eq!(grpc("application/grpc-web+proto"), Some(Grpc::Web));
        assert_eq!(grpc("application/grpc-web-text"), Some(Grpc::Web));
        assert_eq!(grpc("application/grpc-web-text+proto"), Some(Grpc::Web));
        assert_eq!(grpc("application/grpc-web;charset=utf-8"), Some(Grpc::Web));
        assert_eq!(grpc("application/grpcx"), None);
        assert_eq!(grpc("application/grpc-other"), None);
        assert_eq!(grpc("application/grpc-webx"), None);
        assert_eq!(grpc("application/grpc-web-textual"), None);
        assert_eq!(grpc("application/json"), None);
        assert_eq!(grpc("APPLICATION/GRPC"), None);
        assert_eq!(Grpc::of(Version::HTTP_2, &HeaderMap::new()), None);
    }

    /// `application/grpc` is gRPC only over HTTP/2 (the only transport gRPC has); over
    /// HTTP/1.x it is a plain request, answered in JSON with its real status. gRPC-Web is
    /// gRPC-Web on every version.
    #[test]
    fn grpc_form_only_for_http2_grpc_and_grpc_web_on_any_version() {
        let of = |version, ct: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            Grpc::of(version, &h)
        };
        for version in [
            Version::HTTP_09,
            Version::HTTP_10,
            Version::HTTP_11,
            Version::HTTP_3,
        ] {
            for ct in [
                "application/grpc",
                "application/grpc+proto",
                "application/grpc;a=b",
            ] {
                assert_eq!(of(version, ct), None, "{version:?} {ct}");
            }
        }
        for version in [
            Version::HTTP_10,
            Version::HTTP_11,
            Version::HTTP_2,
            Version::HTTP_3,
        ] {
            for ct in ["application/grpc-web", "application/grpc-web-text+proto"] {
                assert_eq!(of(version, ct), Some(Grpc::Web), "{version:?} {ct}");
            }
        }
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        let (parts, body) =
            body_of(Rejection::UnknownKey.into_response(Reply::for_request(Version::HTTP_11, &h)));
        assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
        assert_eq!(parts.headers[CONTENT_TYPE], "application/json");
        assert!(parts.headers.get("grpc-status").is_none());
        assert!(body.contains("\"invalid_api_key\""), "{body}");
    }

    /// A request id sharing 8 or more consecutive characters with the presented key's body,
    /// or with malformed credentials, is replaced: in the body and in `X-Request-Id`.
    #[test]
    fn request_ids_repeating_the_presented_credentials_are_replaced() {
        let key = "ark_test_0123456789abcdefXYZ";
        for (auth, id, echoed) in [
            (format!("Bearer {key}"), "trace-0123456789abcdefXYZ", false),
            (format!("Bearer {key}"), "89abcdef", false),
            (format!("Bearer {key}"), "x-bcdefXYZ-y", false),
            (format!("Bearer {key}"), "x-cdefXYZ-y", true),
            (format!("Bearer {key}"), "ark_test", true),
            (
                "Bearer sk_live_abcdefgh1234".to_owned(),
                "sk_live_abcd",
                false,
            ),
            ("Bearer sk_live_abcdefgh1234".to_owned(), "abcdefgh", false),
            (format!("Bearer {key}!"), "Bearer-a", true),
            (format!("Bearer {key}!"), "abcdefXYZ", false),
            (
                "Basic dXNlcjpwYXNzd29yZA==".to_owned(),
                "cjpwYXNzd29y",
                false,
            ),
        ] {
            let mut h = HeaderMap::new();
            h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
            h.insert(&X_REQUEST_ID, HeaderValue::from_static(id));
            let got = RequestId::from_headers(&h);
            assert_eq!(
                got.as_str() == id,
                echoed,
                "{auth} / {id}: {}",
                got.as_str()
            );
            if !echoed {
                assert!(got.as_str().starts_with("req_"), "{}", got.as_str());
            }
            let (parts, body) = body_of(
                Rejection::UnknownKey.into_response(Reply::for_request(Version::HTTP_11, &h)),
            );
            assert_eq!(parts.headers[&X_REQUEST_ID] == id, echoed, "{auth} / {id}");
            assert_eq!(body.contains(id), echoed, "{auth} / {id}: {body}");
        }
    }

    #[test]
    fn grpc_rejections_are_trailers_only_with_the_status_and_message() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("rid-1"));
        let reply = Reply::for_request(Version::HTTP_2, &h);
        for (name, r) in cases() {
            let code = r.code();
            let (message, _) = r.texts();
            let limit = r.limit().copied();
            let (parts, body) = body_of(r.into_response(reply.clone()));
            assert_eq!(parts.status, StatusCode::OK, "{name}");
            assert_eq!(parts.headers[CONTENT_TYPE], "application/grpc", "{name}");
            assert_eq!(
                parts.headers["grpc-status"],
                code.grpc_status().to_string().as_str(),
                "{name}"
            );
            assert_eq!(parts.headers["grpc-message"], message.render().as_str());
            assert_eq!(parts.headers[&X_REQUEST_ID], "rid-1", "{name}");
            assert_eq!(body, "", "{name}: trailers-only, no message");
            if let Some(d) = limit {
                assert_rate_limit_headers(&parts.headers, &d);
            }
        }
    }

    #[test]
    fn grpc_message_percent_encoding() {
        assert_eq!(grpc_percent_encode(b"plain text: ok"), "plain text: ok");
        assert_eq!(grpc_percent_encode(b"100%"), "100%25");
        assert_eq!(grpc_percent_encode("a\nb\u{e9}".as_bytes()), "a%0Ab%C3%A9");
    }

    #[test]
    fn bodies_are_the_json_envelope() {
        for reply in [
            golden_reply(),
            Reply::for_request(Version::HTTP_11, &HeaderMap::new()),
        ] {
            let id = &reply.id;
            for (name, r) in cases() {
                let (code, (message, suggestion)) = (r.code(), r.texts());
                assert_eq!(message.render().len(), message.len(), "{name}");
                assert_eq!(suggestion.render().len(), suggestion.len(), "{name}");
                let (parts, body) = body_of(r.into_response(reply.clone()));
                assert_eq!(parts.status, code.status(), "{name}");
                assert_eq!(parts.headers[CONTENT_TYPE], "application/json");
                assert_eq!(parts.headers[&X_REQUEST_ID], id.as_str());
                let v: serde_json::Value = serde_json::from_str(&body).expect(name);
                let keys = |v: &serde_json::Value| {
                    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
                    k.sort();
                    k
                };
                assert_eq!(keys(&v), ["error", "meta", "success"], "{name}");
                assert_eq!(
                    keys(&v["error"]),
                    ["code", "message", "suggestion"],
                    "{name}"
                );
                assert_eq!(keys(&v["meta"]), ["requestId"], "{name}");
                assert_eq!(v["success"], false, "{name}");
                assert_eq!(v["error"]["code"], code.as_str(), "{name}");
                assert_eq!(v["error"]["message"], message.render(), "{name}");
                assert_eq!(v["error"]["suggestion"], suggestion.render(), "{name}");
                assert_eq!(v["meta"]["requestId"], id.as_str(), "{name}");
                // Key order of the contract.
                let at = |k: &str| body.find(&format!("\"{k}\":")).expect(k);
                assert!(
                    at("success") < at("error") && at("error") < at("code"),
                    "{name}"
                );
                assert!(at("code") < at("message") && at("message") < at("suggestion"));
                assert!(at("suggestion") < at("meta") && at("meta") < at("requestId"));
            }
        }
    }
}
