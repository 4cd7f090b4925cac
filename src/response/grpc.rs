//! The gRPC form of a rejection: a trailers-only response with `grpc-status` and
//! `grpc-message`.

use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Response, Version};

use super::contract::{ErrorCode, Text};
use crate::body::ArkAuthBody;

/// A gRPC caller, which reads errors from the `grpc-status` and `grpc-message` of a
/// trailers-only response, not from the HTTP status.
///
/// Only real gRPC callers get that form: gRPC runs over HTTP/2 only, so `application/grpc…`
/// over HTTP/1.x (a plain HTTP client, or key-testing traffic dressed up) gets the JSON form
/// with its real status (a 401 stays a 401 for tools that count them); gRPC-Web, made for
/// HTTP/1.1 too, is recognised by its own content types on any version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Grpc {
    /// `application/grpc`, `application/grpc+proto`, … over HTTP/2.
    Http2,
    /// `application/grpc-web`, `application/grpc-web-text`, with `+format` or parameters:
    /// the same trailers-only form, in its own content type.
    Web,
}

impl Grpc {
    pub(super) fn of(version: Version, headers: &HeaderMap) -> Option<Grpc> {
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
pub(super) fn grpc_response<B>(
    grpc: Grpc,
    code: ErrorCode,
    message: Text,
) -> Response<ArkAuthBody<B>> {
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
        &GRPC_STATUS,
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
    if let Ok(v) = HeaderValue::try_from(percent_encode(&text)) {
        h.insert(&GRPC_MESSAGE, v);
    }
    res
}

/// `grpc-message` encoding: bytes outside `0x20..=0x7E`, and `%`, as `%XX`.
fn percent_encode(text: &[u8]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_message_percent_encoding() {
        assert_eq!(percent_encode(b"plain text: ok"), "plain text: ok");
        assert_eq!(percent_encode(b"100%"), "100%25");
        assert_eq!(percent_encode("a\nb\u{e9}".as_bytes()), "a%0Ab%C3%A9");
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
}
