//! The request id of contract section 3: the client's `X-Request-Id` when it is safe to
//! echo, otherwise a fresh `req_` id.

use http::header::{HeaderMap, HeaderValue};

use super::headers::X_REQUEST_ID;
use super::values;
use crate::redact::{repeats_credentials, repeats_token};
use crate::token::Token;

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

    /// [`from_headers`](Self::from_headers) for a request whose one `Authorization` header
    /// holds the well-formed key `token` (read from these headers).
    pub(crate) fn for_token(headers: &HeaderMap, token: &Token<'_>) -> Self {
        match headers.get(&X_REQUEST_ID) {
            Some(v) if is_valid_request_id(v.as_bytes()) && !repeats_token(v.as_bytes(), token) => {
                RequestId(v.clone())
            }
            _ => RequestId::generate(),
        }
    }

    /// A fresh `req_` id: `req_` and 20 hex digits (80 random bits; unique, not secret).
    pub fn generate() -> Self {
        let n = fastrand::u128(..) & ((1u128 << 80) - 1);
        let id = generated_id(n);
        // Hex digits and `req_`: always a valid value.
        let v = HeaderValue::from_maybe_shared(values::carve(&[&id]))
            .unwrap_or_else(|_| HeaderValue::from_static("req_"));
        RequestId(v)
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

    pub(super) fn into_header_value(self) -> HeaderValue {
        self.0
    }

    /// The id's bytes: 1 to 128 of `[A-Za-z0-9._-]`, nothing to escape in JSON.
    pub(super) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// `req_` and the low 80 bits of `n` as 20 lowercase hex digits (`format!("req_{n:020x}")`
/// for `n < 2^80`).
fn generated_id(n: u128) -> [u8; 24] {
    let mut id = *b"req_00000000000000000000";
    // The low 10 bytes of `n`, big-endian, as 20 hex digits; 20 digits always fit.
    let _ = hex::encode_to_slice(&n.to_be_bytes()[6..], &mut id[4..]);
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

pub(super) fn is_valid_request_id(b: &[u8]) -> bool {
    (1..=128).contains(&b.len())
        && b.iter()
            .fold(true, |ok, &c| ok & REQUEST_ID_BYTE[usize::from(c)])
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn for_token_is_from_headers_for_a_key() {
        let key = "ark_test_0123456789abcdefXYZ";
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {key}")).unwrap(),
        );
        let ids = [
            "trace-1",
            "trace-89abcdefXYZ",
            "x-ark_live_y",
            "01234567",
            "1234567",
            "a b",
            "",
        ];
        for id in ids {
            h.insert(&X_REQUEST_ID, HeaderValue::from_static(id));
            let token = crate::token::bearer_token(&h).unwrap();
            let (a, b) = (
                RequestId::for_token(&h, &token),
                RequestId::from_headers(&h),
            );
            assert_eq!(
                a.as_str().starts_with("req_"),
                b.as_str().starts_with("req_"),
                "{id}"
            );
            if !b.as_str().starts_with("req_") {
                assert_eq!(a, b);
            }
        }
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
}
