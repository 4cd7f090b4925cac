//! The `Authorization` parser on arbitrary bytes: never panics, accepts exactly the grammar
//! (`Bearer` in any case, one or more spaces, `ark_live_`|`ark_test_` + 16..=128 ASCII
//! alphanumerics, spaces/tabs around the value), and a bare token parses iff it fits.
#![no_main]

use ark_auth::{
    token::{bearer_token, parse_authorization, CredentialError, Token},
    Environment,
};
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use libfuzzer_sys::fuzz_target;

/// The grammar, written independently of the crate.
fn fits_grammar(t: &[u8]) -> bool {
    let Some(body) = t
        .strip_prefix(b"ark_live_")
        .or_else(|| t.strip_prefix(b"ark_test_"))
    else {
        return false;
    };
    (16..=128).contains(&body.len()) && body.iter().all(u8::is_ascii_alphanumeric)
}

fn trim_ws(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// What the value should parse to, by the contract's rules, written independently.
fn expected(value: &[u8]) -> Option<&[u8]> {
    let v = trim_ws(value);
    if v.len() < 7 || !v[..6].eq_ignore_ascii_case(b"bearer") || v[6] != b' ' {
        return None;
    }
    let token = &v[6..];
    let token = &token[token.iter().take_while(|&&b| b == b' ').count()..];
    fits_grammar(token).then_some(token)
}

fuzz_target!(|data: &[u8]| {
    // Bare tokens: accepted iff they fit the grammar, environment from the prefix.
    match Token::parse_bytes(data) {
        Some(t) => {
            assert!(fits_grammar(data), "accepted outside the grammar: {data:?}");
            assert_eq!(t.expose_secret().as_bytes(), data);
            let env = if data.starts_with(b"ark_live_") {
                Environment::Live
            } else {
                Environment::Test
            };
            assert_eq!(t.environment(), env);
            // Debug/Display show the prefix only.
            assert_eq!(format!("{t}"), format!("{}…", env.prefix()));
            assert_eq!(format!("{t:?}"), format!("Token({}…)", env.prefix()));
        }
        None => assert!(!fits_grammar(data), "grammar-valid token refused: {data:?}"),
    }

    // Header values: exactly the contract's acceptance rule.
    let parsed = parse_authorization(data);
    match (&parsed, expected(data)) {
        (Ok(t), Some(want)) => assert_eq!(t.expose_secret().as_bytes(), want),
        (Ok(_), None) => panic!("accepted a value outside the contract: {data:?}"),
        (Err(e), Some(_)) => panic!("refused a valid value ({e:?}): {data:?}"),
        (Err(_), None) => {}
    }
    if let Err(e) = &parsed {
        // Missing means "no Bearer attempt": the trimmed value does not start with the
        // scheme followed by a space/control byte/end.
        if *e == CredentialError::Missing {
            let v = trim_ws(data);
            assert!(
                v.len() < 6
                    || !v[..6].eq_ignore_ascii_case(b"bearer")
                    || v.get(6)
                        .is_some_and(|&c| c != b' ' && !c.is_ascii_control()),
                "{data:?}"
            );
        }
    }

    // Through a header map: one header parses as the value does; two are always refused.
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value.clone());
        assert_eq!(
            bearer_token(&headers),
            parse_authorization(value.as_bytes())
        );
        headers.append(AUTHORIZATION, value);
        assert_eq!(
            bearer_token(&headers),
            Err(CredentialError::MultipleHeaders)
        );
    }
});
