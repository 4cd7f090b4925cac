//! The error envelope of contract section 3, in this key order:
//! `{"success":false,"error":{"code","message","suggestion"},"meta":{"requestId"}}`.
//!
//! The layer writes it in two pieces: everything before the request id ([`head`], which
//! depends only on the rejection and is kept per thread by [`values::json_head`]), and the
//! id with the closing braces ([`tail`]). [`error_body`] writes the same bytes in one piece
//! for any code and texts, so an application's own errors look like the layer's.

use bytes::Bytes;

use super::contract::{ErrorCode, Text};
use super::request_id::{is_valid_request_id, RequestId};
use super::values;

const OPEN: &str = r#"{"success":false,"error":{"code":""#;
const MESSAGE: &str = r#"","message":""#;
const SUGGESTION: &str = r#"","suggestion":""#;
const REQUEST_ID: &str = r#""},"meta":{"requestId":""#;
/// The closing braces after the request id.
const CLOSE: &str = r#""}}"#;

/// The envelope up to and including `"requestId":"`. Nothing is escaped: the code is a
/// fixed wire name and the texts are fixed literals, permission names and numbers (see
/// [`Text`]).
pub(super) fn head(code: ErrorCode, message: Text, suggestion: Text) -> Vec<u8> {
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

/// The request id and the closing `"}}`. The id is 1 to 128 characters of `[A-Za-z0-9._-]`
/// (checked by [`RequestId::from_headers`], or generated): nothing to escape.
pub(super) fn tail(id: &RequestId) -> Bytes {
    debug_assert!(is_valid_request_id(id.as_bytes()));
    values::carve(&[id.as_bytes(), CLOSE.as_bytes()])
}

/// The contract's error envelope, byte for byte as the layer writes its own rejections:
/// `{"success":false,"error":{"code":…,"message":…,"suggestion":…},"meta":{"requestId":…}}`.
///
/// `code` is an [`ErrorCode`] or an application's own code (`"not_found"`); `code`,
/// `message` and `suggestion` are escaped as JSON strings. Pair it with
/// `Content-Type: application/json` and the id's `X-Request-Id`.
///
/// ```
/// use ark_auth::response::{error_body, ErrorCode};
/// use ark_auth::RequestId;
/// use http::HeaderMap;
///
/// let mut h = HeaderMap::new();
/// h.insert("x-request-id", "abc-123".parse().unwrap());
/// let id = RequestId::from_headers(&h);
///
/// let body = error_body("not_found", "No route for \"/v2\"", "See the API reference", &id);
/// assert_eq!(
///     body,
///     r#"{"success":false,"error":{"code":"not_found","message":"No route for \"/v2\"","suggestion":"See the API reference"},"meta":{"requestId":"abc-123"}}"#
/// );
/// let body = error_body(ErrorCode::InvalidApiKey, "Invalid API key provided", "Check the key", &id);
/// assert!(body.starts_with(br#"{"success":false,"error":{"code":"invalid_api_key","#));
/// ```
pub fn error_body(code: impl AsRef<str>, message: &str, suggestion: &str, id: &RequestId) -> Bytes {
    let (code, id) = (code.as_ref(), id.as_str());
    let mut json = Vec::with_capacity(
        OPEN.len()
            + MESSAGE.len()
            + SUGGESTION.len()
            + REQUEST_ID.len()
            + CLOSE.len()
            + code.len()
            + message.len()
            + suggestion.len()
            + id.len(),
    );
    json.extend_from_slice(OPEN.as_bytes());
    escape_into(code, &mut json);
    json.extend_from_slice(MESSAGE.as_bytes());
    escape_into(message, &mut json);
    json.extend_from_slice(SUGGESTION.as_bytes());
    escape_into(suggestion, &mut json);
    json.extend_from_slice(REQUEST_ID.as_bytes());
    escape_into(id, &mut json);
    json.extend_from_slice(CLOSE.as_bytes());
    Bytes::from(json)
}

/// `s` as the inside of a JSON string: `"` and `\` escaped, control characters as `\n`,
/// `\t`… or `\u00XX` (as `serde_json` writes them).
fn escape_into(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0c => b'f',
            0x00..=0x1f => b'u',
            _ => continue,
        };
        out.extend_from_slice(&s.as_bytes()[start..i]);
        out.extend_from_slice(&[b'\\', short]);
        if short == b'u' {
            out.extend_from_slice(&[
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&s.as_bytes()[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = Vec::new();
        escape_into(s, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escaping_is_serde_jsons() {
        let mut samples: Vec<String> = (0u8..=0x7f).map(|b| char::from(b).to_string()).collect();
        samples.extend(
            [
                "",
                "plain",
                "a\"b\\c",
                "tab\tnew\nline\r",
                "\u{e9}t\u{e9} \u{1f600}",
                "\u{7f}\u{0}",
            ]
            .map(String::from),
        );
        for s in samples {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(format!("\"{}\"", escaped(&s)), json, "{s:?}");
        }
    }

    #[test]
    fn error_body_is_valid_json_with_the_texts_as_given() {
        let id = RequestId::generate();
        let body = error_body("not_found", "a \"quoted\"\n\\ text", "\u{1}\u{e9}", &id);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["success"], false);
        assert_eq!(v["error"]["code"], "not_found");
        assert_eq!(v["error"]["message"], "a \"quoted\"\n\\ text");
        assert_eq!(v["error"]["suggestion"], "\u{1}\u{e9}");
        assert_eq!(v["meta"]["requestId"], id.as_str());
    }
}
