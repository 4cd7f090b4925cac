//! Path spellings: the canonical form of a request path, and path parameters decoded the
//! way axum's `Path` extractor decodes them.
//!
//! A router matches the raw path; its handlers see percent-decoded parameters. Two raw
//! paths with the same canonical form address the same resource for any handler that reads
//! its parameters, so [`crate::RouteTable`] checks that a request's raw path and its
//! canonical form land on the same route (see there).

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

/// A path parameter as axum's `Path` sees it: percent-decoded (either hex case), `None` when
/// the decoded bytes are not UTF-8 (axum refuses such a parameter).
pub(crate) fn decode_param(raw: &str) -> Option<Cow<'_, str>> {
    percent_decode_str(raw).decode_utf8().ok()
}

/// The canonical spelling of `path`: each `/`-separated segment percent-decoded in full,
/// then `%` and `/` inside a segment re-encoded (`%25`, `%2F`), so that decoding never
/// changes the segment structure and every other character is spelled literally. `None`
/// when a segment does not decode to UTF-8.
///
/// Nothing else is normalised: `//`, dot segments and a trailing `/` stay, as a router
/// keeps them.
pub(crate) fn canonical_path(path: &str) -> Option<Cow<'_, str>> {
    if !path.contains('%') {
        return Some(Cow::Borrowed(path));
    }
    let mut out = String::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        for c in decode_param(segment)?.chars() {
            match c {
                '%' => out.push_str("%25"),
                '/' => out.push_str("%2F"),
                c => out.push(c),
            }
        }
    }
    Some(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_spellings() {
        let cases: &[(&str, Option<&str>)] = &[
            ("/v1/tenants/tn_1/domains", Some("/v1/tenants/tn_1/domains")),
            (
                "/v1/tenants/tn_1/%64omains",
                Some("/v1/tenants/tn_1/domains"),
            ),
            (
                "/v1/tenants/tn_1/%44omains",
                Some("/v1/tenants/tn_1/Domains"),
            ),
            (
                "/v1/tenants/tn%5f1/domains",
                Some("/v1/tenants/tn_1/domains"),
            ),
            (
                "/v1/tenants/tn%5F1/domains",
                Some("/v1/tenants/tn_1/domains"),
            ),
            (
                "/v1/%74enants/a%2Fb/domains",
                Some("/v1/tenants/a%2Fb/domains"),
            ),
            (
                "/v1/tenants/a%2fb/domains",
                Some("/v1/tenants/a%2Fb/domains"),
            ),
            (
                "/v1/tenants/100%25/domains",
                Some("/v1/tenants/100%25/domains"),
            ),
            (
                "/v1/tenants/%2564/domains",
                Some("/v1/tenants/%2564/domains"),
            ),
            ("/v1/tenants/%FF/domains", None),
            ("/v1/tenants/%C3%A9/domains", Some("/v1/tenants/é/domains")),
            ("/v1/tenants/%zz/domains", Some("/v1/tenants/%25zz/domains")),
            ("/v1/tenants/%4/domains", Some("/v1/tenants/%254/domains")),
            ("/v1//tenants/%74n/domains", Some("/v1//tenants/tn/domains")),
            ("/v1/./tenants/%2E%2E/x", Some("/v1/./tenants/../x")),
            ("/v1/emails/%62atch/", Some("/v1/emails/batch/")),
            ("/", Some("/")),
            ("", Some("")),
        ];
        for (raw, want) in cases {
            assert_eq!(canonical_path(raw).as_deref(), *want, "{raw}");
        }
    }

    #[test]
    fn canonical_form_is_a_fixed_point() {
        for raw in ["/a%2Fb/%25/c%41", "/x%2f%2F/%252F", "/%C3%A9%20"] {
            let once = canonical_path(raw).unwrap().into_owned();
            let twice = canonical_path(&once).unwrap().into_owned();
            assert_eq!(once, twice, "{raw}");
        }
    }

    #[test]
    fn params_decode_like_axum_path() {
        assert_eq!(decode_param("tn%5F42").as_deref(), Some("tn_42"));
        assert_eq!(decode_param("tn%5f42").as_deref(), Some("tn_42"));
        assert_eq!(decode_param("a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(decode_param("100%25").as_deref(), Some("100%"));
        assert_eq!(decode_param("a%zz%4").as_deref(), Some("a%zz%4"));
        assert_eq!(decode_param("%FF"), None);
        assert_eq!(decode_param("plain").as_deref(), Some("plain"));
    }
}
