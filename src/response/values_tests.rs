//! Each cache of `values` against its plain fallback, byte for byte, and its sharing.

use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

use super::*;
use crate::permission::Permission;
use crate::response::tests::{assert_rate_limit_headers, assert_same_value, decision};
use crate::response::{
    set_rate_limit_headers, X_RATELIMIT_LIMIT, X_RATELIMIT_REMAINING, X_RATELIMIT_RESET,
    X_REQUEST_ID,
};

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
        assert_eq!(head, json::head(ErrorCode::RateLimitExceeded, t, t));
    }
    assert_eq!(
        json_head(ErrorCode::PermissionDenied, names(send), s),
        json::head(ErrorCode::PermissionDenied, names(send), s)
    );
}

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
    }
    for n in [0, 5, 10, 99, 100, 9_999] {
        assert_same_value(&fresh_number_value(n), n);
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

// ---- every cache equals its plain fallback, byte for byte ----

#[test]
fn carved_pieces_equal_plain_concatenation() {
    let id = [b'a'; 24];
    let big = vec![b'x'; BLOCK_BYTES / 4 + 1];
    for parts in [
        vec![&b""[..]],
        vec![&id[..], b"\"}}"],
        vec![&big[..]],
        vec![&big[..BLOCK_BYTES / 4], &b""[..]],
    ] {
        // Many times over: across the end of a block too.
        for _ in 0..200 {
            assert_eq!(carve(&parts), plain_carve(&parts));
        }
    }
}

#[test]
fn number_values_equal_plain_ones() {
    let samples = (0..=20_000u64).chain(large_numbers());
    for n in samples {
        let (v, plain) = (number_value(n), plain_number_value(n));
        assert_eq!(v.as_bytes(), plain.as_bytes(), "{n}");
        assert_eq!(v.is_sensitive(), plain.is_sensitive(), "{n}");
    }
}

#[test]
fn rate_limit_values_equal_plain_ones() {
    std::thread::spawn(|| {
        for n in (0..=3_000u64).step_by(7).chain(large_numbers()) {
            let n32 = u32::try_from(n).unwrap_or(u32::MAX);
            for d in [
                decision(n32, n32 / 3, n),
                decision(u32::MAX, n32, 1_790_000_000),
            ] {
                // Twice: a miss, then a hit.
                for _ in 0..2 {
                    assert_eq!(rate_limit_values(&d), plain_rate_limit_values(&d), "{d:?}");
                }
            }
        }
    })
    .join()
    .unwrap();
}

#[test]
fn scope_values_equal_plain_ones_for_every_set() {
    for bits in 0..=Permissions::ALL.bits() {
        let p = Permissions::from_bits_truncate(bits);
        assert_eq!(scope_value(p), plain_scope_value(p), "{p:?}");
        assert_eq!(scope_value(p).as_bytes(), insufficient_scope(p).as_bytes());
    }
}

#[test]
fn json_heads_equal_plain_ones() {
    let texts = [
        Text::Fixed("Invalid API key provided"),
        Text::Names("Grant the ", Permissions::ALL, " permission"),
        Text::Number("Retry after ", 123_456, " seconds"),
    ];
    std::thread::spawn(move || {
        for _ in 0..2 {
            for code in ErrorCode::ALL {
                for m in texts {
                    for s in texts {
                        assert_eq!(json_head(code, m, s), json::head(code, m, s));
                    }
                }
            }
        }
    })
    .join()
    .unwrap();
}

/// Names and values of a map, in its iteration order.
fn listed(h: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    h.iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect()
}

fn sample_values<const N: usize>() -> [HeaderValue; N] {
    std::array::from_fn(|i| HeaderValue::from_str(&format!("value-{i}")).unwrap())
}

#[test]
fn header_maps_from_templates_equal_plain_ones() {
    for shape in Shape::ALL {
        let names = shape.names();
        let check = |h: HeaderMap, plain: HeaderMap| {
            assert_eq!(listed(&h), listed(&plain), "{shape:?}");
            assert_eq!(h.len(), names.len(), "{shape:?}");
        };
        match names.len() {
            3 => check(
                headers(shape, sample_values::<3>()),
                plain_headers(shape, sample_values::<3>()),
            ),
            4 => check(
                headers(shape, sample_values::<4>()),
                plain_headers(shape, sample_values::<4>()),
            ),
            6 => check(
                headers(shape, sample_values::<6>()),
                plain_headers(shape, sample_values::<6>()),
            ),
            n => panic!("{shape:?}: {n} names"),
        }
        // Names distinct: each template slot is one header.
        let mut distinct: Vec<_> = names.iter().map(|n| n.as_str()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), names.len(), "{shape:?}");
    }
}

/// Filling goes by name: a template whose iteration order is not the names' order (as a
/// `HeaderMap` may iterate in any order) still gets every value under its own name.
#[test]
fn filling_a_template_does_not_depend_on_its_order() {
    let names = Shape::Forbidden.names();
    let n = names.len();
    for rotate in 0..n {
        for reverse in [false, true] {
            let mut order: Vec<usize> = (0..n).map(|i| (i + rotate) % n).collect();
            if reverse {
                order.reverse();
            }
            let mut template = HeaderMap::new();
            for &i in &order {
                template.append(names[i], HeaderValue::from_static(""));
            }
            let h = fill_by_name(template, names, sample_values::<6>());
            assert_eq!(h.len(), n);
            for (i, name) in names.iter().enumerate() {
                let all: Vec<_> = h.get_all(*name).iter().collect();
                assert_eq!(all, [&format!("value-{i}")], "{order:?} {name}");
            }
        }
    }
    // Names made afresh (not views of the statics) are matched by their bytes.
    let mut fresh = HeaderMap::new();
    for name in names.iter().rev() {
        let copy = HeaderName::from_bytes(name.as_str().as_bytes()).unwrap();
        fresh.append(copy, HeaderValue::from_static(""));
    }
    let h = fill_by_name(fresh, names, sample_values::<6>());
    assert_eq!(h.len(), n);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(h[*name], format!("value-{i}").as_str());
    }
    // A template missing a name: the value is inserted, not lost.
    let mut partial = HeaderMap::new();
    partial.append(names[1], HeaderValue::from_static(""));
    let h = fill_by_name(partial, names, sample_values::<6>());
    assert_eq!(h.len(), n);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(h[*name], format!("value-{i}").as_str());
    }
}
