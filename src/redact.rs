//! Whether a text taken from a request (a request id, a path, a method) repeats the
//! credentials the request presented, and so must not be echoed or logged.

use http::header::{HeaderMap, AUTHORIZATION};

use crate::token::{parse_authorization, Token, ALPHANUMERIC, PREFIX_LEN};

/// Shortest run of presented credentials that counts as repeating them.
const RUN: usize = 8;

/// Up to this many windows of the text, each window of the secret is compared with every
/// one of them instead of searched for in their sorted list.
const FEW: usize = 8;

/// Bytes of the text read at once (a UUID request id is one chunk): 64 bits of mask, one
/// per byte.
const BATCH: usize = 64;

/// Whether `text` must not be repeated to the client or in a log line: it holds `ark_live_`
/// or `ark_test_`, or 8 or more consecutive bytes of the credentials of `headers` (the body
/// of the presented key when the `Authorization` value is `Bearer` and a well-formed key;
/// the whole value of each `Authorization` header otherwise, since a malformed key, or a
/// `Basic` password, is a secret too).
///
/// [`RequestId::from_headers`](crate::RequestId::from_headers) uses it for `X-Request-Id`;
/// use it for anything else from a request that goes into a response or a log.
///
/// ```
/// use ark_auth::token::repeats_credentials;
/// use http::HeaderMap;
///
/// let mut h = HeaderMap::new();
/// h.insert("authorization", "Bearer ark_test_0123456789abcdefXYZ".parse().unwrap());
/// assert!(repeats_credentials(&h, b"trace-6789abcdef"));
/// assert!(repeats_credentials(&h, b"/v1/ark_live_x"));
/// assert!(!repeats_credentials(&h, b"trace-6789abc"));
/// assert!(!repeats_credentials(&HeaderMap::new(), b"trace-6789abcdef"));
/// ```
pub fn repeats_credentials(headers: &HeaderMap, text: &[u8]) -> bool {
    if looks_like_a_key(text) {
        return true;
    }
    if text.len() < RUN {
        return false;
    }
    headers.get_all(AUTHORIZATION).iter().any(|value| {
        let value = value.as_bytes();
        match parse_authorization(value) {
            // The grammar makes a key's body alphanumeric.
            Ok(token) => shares_a_run(text, &token.expose_secret().as_bytes()[PREFIX_LEN..], true),
            Err(_) => shares_a_run(text, value, false),
        }
    })
}

/// [`repeats_credentials`] for a request whose only credential is the well-formed key
/// `token` (what a request that authenticates presents): the same answer without reading
/// the headers again.
pub(crate) fn repeats_token(text: &[u8], token: &Token<'_>) -> bool {
    looks_like_a_key(text)
        || shares_a_run(text, &token.expose_secret().as_bytes()[PREFIX_LEN..], true)
}

/// Whether `b` contains a key prefix, `ark_live_` or `ark_test_`.
pub(crate) fn looks_like_a_key(b: &[u8]) -> bool {
    // One byte compared per position; the nine only where an `a` is.
    (0..b.len().saturating_sub(8))
        .any(|i| b[i] == b'a' && matches!(&b[i..i + 9], b"ark_live_" | b"ark_test_"))
}

/// Whether `text` and `secret` have [`RUN`] consecutive bytes in common. When
/// `secret_is_alphanumeric` (the body of a well-formed key), only the text's windows of
/// [`RUN`] alphanumerics can match, and only those are compared (a UUID request id has 6 of
/// its 29).
///
/// The text is read in chunks of at most [`BATCH`] bytes: a bit mask marks its candidate bytes,
/// three shifts and ands turn it into the mask of windows made of candidates only, and those
/// windows (as 8-byte words, on the stack) are looked for among the secret's windows by
/// [`holds_a_window`]. No allocation.
fn shares_a_run(text: &[u8], secret: &[u8], secret_is_alphanumeric: bool) -> bool {
    if text.len() < RUN || secret.len() < RUN {
        return false;
    }
    let mut words = [0u64; BATCH];
    // Chunks overlap by RUN - 1 bytes, so that every window lies wholly in one chunk.
    let mut start = 0;
    while start + RUN <= text.len() {
        let chunk = &text[start..text.len().min(start + BATCH)];
        let mut candidates: u64 = if secret_is_alphanumeric {
            chunk.iter().enumerate().fold(0, |m, (i, &b)| {
                m | (u64::from(ALPHANUMERIC[usize::from(b)]) << i)
            })
        } else {
            u64::MAX >> (BATCH - chunk.len())
        };
        // Bit i: the RUN bytes from i on are all candidates.
        candidates &= candidates >> 1;
        candidates &= candidates >> 2;
        candidates &= candidates >> 4;
        let mut n = 0;
        while candidates != 0 {
            let i = candidates.trailing_zeros() as usize;
            words[n] = word(&chunk[i..]);
            n += 1;
            candidates &= candidates - 1;
        }
        if holds_a_window(&mut words[..n], secret) {
            return true;
        }
        start += BATCH - (RUN - 1);
    }
    false
}

/// Whether some window of `secret` is one of `words`. A 256-bit filter of the words (one bit
/// per word, picked by a multiplicative hash) rules out almost every window of the secret
/// with a load, a multiply and a bit test; only a window whose bit is set is looked for
/// among the words (one by one when they are few, else in their sorted list).
fn holds_a_window(words: &mut [u64], secret: &[u8]) -> bool {
    let mut filter = [0u64; 4];
    for &w in words.iter() {
        let bit = filter_bit(w);
        filter[bit >> 6] |= 1 << (bit & 63);
    }
    let few = words.len() <= FEW;
    if !few {
        words.sort_unstable();
    }
    secret.windows(RUN).any(|window| {
        let w = word(window);
        let bit = filter_bit(w);
        filter[bit >> 6] & (1 << (bit & 63)) != 0
            && if few {
                words.contains(&w)
            } else {
                words.binary_search(&w).is_ok()
            }
    })
}

/// The filter bit of a word: the top 8 bits of a Fibonacci hash.
fn filter_bit(w: u64) -> usize {
    (w.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize
}

/// The first [`RUN`] bytes of `b` (which has at least that many) as one word.
fn word(b: &[u8]) -> u64 {
    let mut w = [0u8; RUN];
    w.copy_from_slice(&b[..RUN]);
    u64::from_le_bytes(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// The plain definition: some 8-byte window of `text` is a window of `secret`.
    fn model(text: &[u8], secret: &[u8]) -> bool {
        text.windows(RUN)
            .any(|w| secret.windows(RUN).any(|s| s == w))
    }

    #[test]
    fn shares_a_run_is_the_plain_definition() {
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..5_000 {
            // A small alphabet, so that shared runs happen; texts longer than one batch.
            let mut gen = |max: usize| -> Vec<u8> {
                (0..rng.usize(0..max))
                    .map(|_| b"ab"[rng.usize(..2)])
                    .collect()
            };
            let (text, secret) = (gen(300), gen(40));
            assert_eq!(
                shares_a_run(&text, &secret, false),
                model(&text, &secret),
                "{:?} / {:?}",
                String::from_utf8_lossy(&text),
                String::from_utf8_lossy(&secret)
            );
        }
        for alnum in [false, true] {
            assert!(shares_a_run(b"xx01234567yy", b"01234567", alnum));
            assert!(!shares_a_run(b"xx0123456yy", b"01234567", alnum));
            // A run found only in a later batch.
            let long = [vec![b'a'; 400], b"01234567".to_vec()].concat();
            assert!(shares_a_run(&long, b"xx01234567xx", alnum));
        }
        let long = [vec![b'.'; 400], b"01234567".to_vec()].concat();
        assert!(shares_a_run(&long, b"--01234567--", false));
    }

    #[test]
    fn an_alphanumeric_secret_is_compared_with_the_alphanumeric_windows_only() {
        let mut rng = fastrand::Rng::with_seed(13);
        for _ in 0..5_000 {
            // Texts with separators (like a UUID), secrets of the key alphabet only.
            let text: Vec<u8> = (0..rng.usize(0..300))
                .map(|_| b"ab-"[rng.usize(..3)])
                .collect();
            let secret: Vec<u8> = (0..rng.usize(0..40))
                .map(|_| b"ab"[rng.usize(..2)])
                .collect();
            assert_eq!(
                shares_a_run(&text, &secret, true),
                model(&text, &secret),
                "{:?} / {:?}",
                String::from_utf8_lossy(&text),
                String::from_utf8_lossy(&secret)
            );
        }
    }

    #[test]
    fn looks_like_a_key_finds_every_key_prefix_and_nothing_else() {
        let model = |b: &[u8]| b.windows(9).any(|w| w == b"ark_live_" || w == b"ark_test_");
        let mut rng = fastrand::Rng::with_seed(7);
        let pieces: [&[u8]; 8] = [
            b"ark_live_",
            b"ark_test_",
            b"ark_",
            b"a",
            b"ark_liv",
            b"_test_",
            b"x",
            b"aark_test",
        ];
        for _ in 0..20_000 {
            let mut b = Vec::new();
            for _ in 0..rng.usize(0..6) {
                b.extend_from_slice(pieces[rng.usize(..pieces.len())]);
            }
            assert_eq!(
                looks_like_a_key(&b),
                model(&b),
                "{:?}",
                String::from_utf8_lossy(&b)
            );
        }
        assert!(looks_like_a_key(b"ark_live_"));
        assert!(looks_like_a_key(b"trace-ark_test_x"));
        assert!(!looks_like_a_key(b"ark_live"));
    }

    fn auth(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn the_body_of_a_key_the_whole_value_otherwise() {
        let key = auth(&[b"Bearer ark_live_0123456789abcdefXYZ"]);
        assert!(repeats_credentials(&key, b"01234567"));
        assert!(repeats_credentials(&key, b"id-9abcdefXYZ"));
        assert!(!repeats_credentials(&key, b"0123456"));
        // The key's prefix and scheme are not secret: `Bearer a`, `ark_live` are fine.
        assert!(!repeats_credentials(&key, b"xark_live"));
        assert!(!repeats_credentials(&key, b"Bearer a"));
        // Malformed credentials: every part of the value counts.
        let malformed = auth(&[b"Bearer sk_live_SECRETSECRET"]);
        assert!(repeats_credentials(&malformed, b"k_live_S"));
        let basic = auth(&[b"Basic dXNlcjpwYXNzd29yZA=="]);
        assert!(repeats_credentials(&basic, b"req-cjpwYXNz"));
        // Two headers: each is malformed credentials, both count.
        let two = auth(&[
            b"Bearer ark_live_0123456789abcdefXYZ",
            b"Bearer ark_test_ZYXWVUTSRQPONMLKJ",
        ]);
        assert!(repeats_credentials(&two, b"VUTSRQPO"));
        assert!(repeats_credentials(&two, b"23456789"));
        assert!(!repeats_credentials(&HeaderMap::new(), b"01234567"));
    }
}
