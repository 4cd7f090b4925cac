//! The only home of the response's caches and per-thread buffers, each behind a plain
//! function and each beside a plain fallback (`plain_*`, or the writer it caches) that the
//! tests below hold byte-for-byte equal.
//!
//! What each saves is measured with `benches/callgrind.sh` (see `benches/README.md`):
//! - [`number_value`]: numbers up to 9999 are slices of one static table, so the rate-limit
//!   headers of the accept path allocate nothing;
//! - [`rate_limit_values`]: this thread's last large limit and reset time, rendered once;
//! - [`carve`]: small pieces (generated request ids, body tails, large numbers) written side
//!   by side into one block per thread, handed out as views of it;
//! - [`json_head`]: the envelope up to the request id, kept per thread for the last few
//!   distinct rejections;
//! - [`scope_value`]: the 32 `insufficient_scope` challenges, rendered once per process;
//! - [`headers`]: header maps cloned from a template holding the names, values filled in
//!   by name (never by position).

use std::cell::RefCell;
use std::sync::LazyLock;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::contract::{insufficient_scope, ErrorCode, Text};
use super::headers::{
    CONTENT_TYPE_NAME, RETRY_AFTER_NAME, WWW_AUTHENTICATE_NAME, X_RATELIMIT_LIMIT,
    X_RATELIMIT_REMAINING, X_RATELIMIT_RESET, X_REQUEST_ID,
};
use super::json;
use crate::limit::RateLimitDecision;
use crate::permission::Permissions;

// ---- carve: one block of small pieces per thread ----

/// Size of a thread's block of small response pieces. 3 KiB holds 128 generated ids.
const BLOCK_BYTES: usize = 3 * 1024;

thread_local! {
    static BLOCK: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// `parts`, concatenated, as a view of this thread's block (a new block when the current one
/// is full): a reference count, not an allocation per piece. Falls back to
/// [`plain_carve`] while the thread's locals are being destroyed, and for a piece larger
/// than a quarter of a block.
pub(super) fn carve(parts: &[&[u8]]) -> Bytes {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > BLOCK_BYTES / 4 {
        return plain_carve(parts);
    }
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
        .unwrap_or_else(|| plain_carve(parts))
}

fn plain_carve(parts: &[&[u8]]) -> Bytes {
    Bytes::from(parts.concat())
}

// ---- numbers: a static table up to 9999, a per-thread memory of two large ones ----

/// Largest number whose header value is static (see [`SMALL_DIGITS`]).
const SMALL_MAX: u64 = 9_999;

/// Length of the decimal forms of 0..=9999 back to back.
const SMALL_DIGITS_LEN: usize = 10 + 90 * 2 + 900 * 3 + 9_000 * 4;

// Used once, by reference, to build `SMALL_DIGITS`: one copy in the binary.
#[allow(clippy::large_const_arrays)]
const SMALL_DIGIT_BYTES: [u8; SMALL_DIGITS_LEN] = small_digit_bytes();

/// `"0123456789101112…99989999"`: every number of up to four digits, in order, built at
/// compile time. A number's decimal form is a slice of it, and the `HeaderValue` of that
/// slice is a `from_static` one: no allocation, no reference count.
static SMALL_DIGITS: &str = match std::str::from_utf8(&SMALL_DIGIT_BYTES) {
    Ok(s) => s,
    Err(_) => panic!("decimal digits are ASCII"),
};

const fn small_digit_bytes() -> [u8; SMALL_DIGITS_LEN] {
    let mut out = [0u8; SMALL_DIGITS_LEN];
    let mut at = 0;
    let mut n = 0u64;
    while n <= SMALL_MAX {
        let len = match n.checked_ilog10() {
            Some(l) => l as usize + 1,
            None => 1,
        };
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

/// [`plain_number_value`]`(n)`: a static value when `n` ≤ 9999, otherwise the digits carved
/// from this thread's block.
pub(super) fn number_value(n: u64) -> HeaderValue {
    match small_digits(n) {
        Some(s) => HeaderValue::from_static(s),
        None => fresh_number_value(n),
    }
}

fn fresh_number_value(n: u64) -> HeaderValue {
    // Digits are always a valid value.
    HeaderValue::from_maybe_shared(carve(&[itoa::Buffer::new().format(n).as_bytes()]))
        .unwrap_or_else(|_| plain_number_value(n))
}

fn plain_number_value(n: u64) -> HeaderValue {
    HeaderValue::from(n)
}

/// This thread's last rendered limit above 9999 and reset time, with their values. The
/// reset time changes once a second, and the limit is usually the same for many keys.
struct NumberValues {
    limit: Option<(u64, HeaderValue)>,
    reset: Option<(u64, HeaderValue)>,
}

thread_local! {
    static NUMBER_VALUES: RefCell<NumberValues> = const {
        RefCell::new(NumberValues { limit: None, reset: None })
    };
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

/// The values of `X-RateLimit-Limit`, `-Remaining` and `-Reset`; [`plain_rate_limit_values`]
/// when this thread's locals are being destroyed.
pub(super) fn rate_limit_values(d: &RateLimitDecision) -> [HeaderValue; 3] {
    let limit = u64::from(d.limit);
    let [limit, reset] = NUMBER_VALUES
        .try_with(|values| {
            let mut values = values.try_borrow_mut().ok()?;
            let limit = match small_digits(limit) {
                Some(s) => HeaderValue::from_static(s),
                None => remembered(&mut values.limit, limit),
            };
            Some([limit, remembered(&mut values.reset, d.reset)])
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| [limit, d.reset].map(number_value));
    [limit, number_value(u64::from(d.remaining)), reset]
}

#[cfg(test)]
fn plain_rate_limit_values(d: &RateLimitDecision) -> [HeaderValue; 3] {
    [u64::from(d.limit), u64::from(d.remaining), d.reset].map(plain_number_value)
}

// ---- the 403 challenge: 32 values, once per process ----

/// [`insufficient_scope`]`(required)` as a header value. There are 32 sets of permissions,
/// so all 32 values are rendered on first use and kept (about 3 KB): a 403 then clones a
/// static value, with no allocation and no shared reference count.
pub(super) fn scope_value(required: Permissions) -> HeaderValue {
    static VALUES: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
        (0..=Permissions::ALL.bits())
            .map(|bits| {
                let v = insufficient_scope(Permissions::from_bits_truncate(bits));
                HeaderValue::from_static(Box::leak(v.into_boxed_str()))
            })
            .collect()
    });
    match VALUES.get(usize::from(required.bits())) {
        Some(v) => v.clone(),
        None => plain_scope_value(required),
    }
}

fn plain_scope_value(required: Permissions) -> HeaderValue {
    // Quotes, spaces, `=`, `,` and permission names: always a valid value.
    HeaderValue::try_from(insufficient_scope(required))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer realm=\"ark\""))
}

// ---- rejection heads: the last few per thread ----

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

/// [`json::head`] of this rejection, shared by reference count with the last refusals of
/// the same kind on this thread: a refusal repeated (the same wrong key, the same missing
/// permission, the same exhausted limit) writes no JSON and allocates nothing for it.
pub(super) fn json_head(code: ErrorCode, message: Text, suggestion: Text) -> Bytes {
    let key = (code, message, suggestion);
    HEADS
        .try_with(|heads| {
            let mut heads = heads.try_borrow_mut().ok()?;
            let Heads { entries, next } = &mut *heads;
            if let Some((_, head)) = entries.iter().flatten().find(|(k, _)| same_head(*k, key)) {
                return Some(head.clone());
            }
            let head = Bytes::from(json::head(code, message, suggestion));
            entries[*next] = Some((key, head.clone()));
            *next = (*next + 1) % HEADS_KEPT;
            Some(head)
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| Bytes::from(json::head(code, message, suggestion)))
}

/// Whether two rejections have the same head. The fixed parts of a text are literals of the
/// contract table, so comparing where they are is enough (two equal literals at different
/// places only make a second entry).
fn same_head(a: HeadKey, b: HeadKey) -> bool {
    fn same(a: Text, b: Text) -> bool {
        let at = |x: &'static str, y: &'static str| std::ptr::eq(x, y);
        match (a, b) {
            (Text::Fixed(x), Text::Fixed(y)) => at(x, y),
            (Text::Names(x0, n, x1), Text::Names(y0, m, y1)) => n == m && at(x0, y0) && at(x1, y1),
            (Text::Number(x0, n, x1), Text::Number(y0, m, y1)) => {
                n == m && at(x0, y0) && at(x1, y1)
            }
            (Text::Numbers(x0, n, x1, k, x2), Text::Numbers(y0, m, y1, l, y2)) => {
                n == m && k == l && at(x0, y0) && at(x1, y1) && at(x2, y2)
            }
            _ => false,
        }
    }
    a.0 == b.0 && same(a.1, b.1) && same(a.2, b.2)
}

// ---- header maps: templates with the names, values filled by name ----

/// The sets of headers the layer writes itself, each in its order on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// `X-RateLimit-Limit`, `-Remaining`, `-Reset`.
    RateLimit,
    /// An accepted request's: the rate-limit headers, then `X-Request-Id`.
    Accepted,
    /// A 401: `Content-Type`, `X-Request-Id`, `WWW-Authenticate`.
    Unauthorized,
    /// A 403: a 401's, then the rate-limit headers.
    Forbidden,
    /// A 429: `Content-Type`, `X-Request-Id`, the rate-limit headers, `Retry-After`.
    Limited,
    /// A 503: `Content-Type`, `X-Request-Id`, `Retry-After`.
    Unavailable,
}

impl Shape {
    const ALL: [Shape; 6] = [
        Shape::RateLimit,
        Shape::Accepted,
        Shape::Unauthorized,
        Shape::Forbidden,
        Shape::Limited,
        Shape::Unavailable,
    ];

    /// The names of the shape's headers, in order.
    pub(super) fn names(self) -> &'static [&'static HeaderName] {
        static RATE_LIMIT: [&HeaderName; 3] = [
            &X_RATELIMIT_LIMIT,
            &X_RATELIMIT_REMAINING,
            &X_RATELIMIT_RESET,
        ];
        static ACCEPTED: [&HeaderName; 4] = [
            &X_RATELIMIT_LIMIT,
            &X_RATELIMIT_REMAINING,
            &X_RATELIMIT_RESET,
            &X_REQUEST_ID,
        ];
        static UNAUTHORIZED: [&HeaderName; 3] =
            [&CONTENT_TYPE_NAME, &X_REQUEST_ID, &WWW_AUTHENTICATE_NAME];
        static FORBIDDEN: [&HeaderName; 6] = [
            &CONTENT_TYPE_NAME,
            &X_REQUEST_ID,
            &WWW_AUTHENTICATE_NAME,
            &X_RATELIMIT_LIMIT,
            &X_RATELIMIT_REMAINING,
            &X_RATELIMIT_RESET,
        ];
        static LIMITED: [&HeaderName; 6] = [
            &CONTENT_TYPE_NAME,
            &X_REQUEST_ID,
            &X_RATELIMIT_LIMIT,
            &X_RATELIMIT_REMAINING,
            &X_RATELIMIT_RESET,
            &RETRY_AFTER_NAME,
        ];
        static UNAVAILABLE: [&HeaderName; 3] =
            [&CONTENT_TYPE_NAME, &X_REQUEST_ID, &RETRY_AFTER_NAME];
        match self {
            Shape::RateLimit => &RATE_LIMIT,
            Shape::Accepted => &ACCEPTED,
            Shape::Unauthorized => &UNAUTHORIZED,
            Shape::Forbidden => &FORBIDDEN,
            Shape::Limited => &LIMITED,
            Shape::Unavailable => &UNAVAILABLE,
        }
    }
}

/// One map per [`Shape`], holding its names with empty values.
static TEMPLATES: LazyLock<[HeaderMap; 6]> = LazyLock::new(|| {
    Shape::ALL.map(|shape| {
        let names = shape.names();
        let mut h = HeaderMap::with_capacity(names.len());
        for &name in names {
            h.append(name.clone(), HeaderValue::from_static(""));
        }
        h
    })
});

/// The map of `shape` with `values` (one per name of [`Shape::names`], in that order): a
/// clone of the shape's template with each value put in place by its name, which copies a
/// few words per header where [`plain_headers`] hashes every name. The template's order is
/// never relied on: each slot is matched to its value by name (looked for from the slot's
/// own place first, so the usual order costs one comparison per header), and a value no
/// slot took is inserted by name.
pub(super) fn headers<const N: usize>(shape: Shape, values: [HeaderValue; N]) -> HeaderMap {
    let names = shape.names();
    if names.len() != N {
        return plain_headers(shape, values);
    }
    fill_by_name(TEMPLATES[shape as usize].clone(), names, values)
}

/// `template` (a map holding `names` once each, in any order) with each name's value from
/// `values`. Each slot takes its value only after its name is checked: slots in the names'
/// order (the usual case) cost one pointer comparison each; from the first slot that is
/// not, the remaining values are inserted by name, replacing the placeholders.
fn fill_by_name<const N: usize>(
    mut h: HeaderMap,
    names: &[&'static HeaderName],
    mut values: [HeaderValue; N],
) -> HeaderMap {
    let mut matched = 0;
    for (name, slot) in h.iter_mut() {
        match (names.get(matched), values.get_mut(matched)) {
            (Some(&expected), Some(v)) if same_name(expected, name) => {
                std::mem::swap(slot, v);
                matched += 1;
            }
            _ => break,
        }
    }
    if matched < N {
        for (name, v) in names.iter().zip(values).skip(matched) {
            h.insert(*name, v);
        }
    }
    h
}

/// `a == b`, without comparing the bytes when both are views of the same name (as a
/// template's clone and the static it was made from are).
fn same_name(a: &HeaderName, b: &HeaderName) -> bool {
    let (x, y) = (a.as_str(), b.as_str());
    std::ptr::eq(x, y) || x == y
}

/// The map of `shape` with `values`, built by inserting each name and value in order.
pub(super) fn plain_headers<const N: usize>(shape: Shape, values: [HeaderValue; N]) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(N);
    for (&name, v) in shape.names().iter().zip(values) {
        h.insert(name.clone(), v);
    }
    h
}

#[cfg(test)]
#[path = "values_tests.rs"]
mod tests;
