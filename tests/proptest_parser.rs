//! Properties of the credential parser (contract section 1).
//!
//! - Every grammar-valid token (`ark_` + `live`|`test` + `_` + 16..=128 of `[A-Za-z0-9]`)
//!   parses with any case of `Bearer`, 1 to 5 spaces after it, and spaces/tabs around the
//!   value.
//! - Arbitrary bytes never panic, and whatever is accepted fits the grammar exactly
//!   (checked by hand: prefix, body charset, length) and is the value's last word.
//! - On values built from pieces of the grammar, the parser agrees exactly with an
//!   independent model of the contract's rule (accepts iff the model does, same token);
//!   bare tokens parse iff they fit the grammar; a second `Authorization` header is always
//!   refused.

use ark_auth::{
    token::{parse_authorization, CredentialError, Token, MAX_BODY_LEN, MIN_BODY_LEN},
    Environment,
};
use proptest::prelude::*;

/// The grammar, by hand: `ark_live_` or `ark_test_`, then 16 to 128 ASCII alphanumerics.
fn fits_grammar(t: &[u8]) -> bool {
    let Some(body) = t
        .strip_prefix(b"ark_live_")
        .or_else(|| t.strip_prefix(b"ark_test_"))
    else {
        return false;
    };
    (16..=128).contains(&body.len()) && body.iter().all(|b| b.is_ascii_alphanumeric())
}

fn ws() -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof![Just(' '), Just('\t')], 0..4)
        .prop_map(|v| v.into_iter().collect())
}

/// `bearer` with each letter's case chosen at random.
fn scheme() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<bool>(), 6).prop_map(|upper| {
        "bearer"
            .chars()
            .zip(upper)
            .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

fn env() -> impl Strategy<Value = Environment> {
    prop_oneof![Just(Environment::Live), Just(Environment::Test)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_grammar_valid_token_parses(
        env in env(),
        body in "[A-Za-z0-9]{16,128}",
        scheme in scheme(),
        spaces in 1usize..=5,
        lead in ws(),
        trail in ws(),
    ) {
        let token = format!("{}{body}", env.prefix());
        let value = format!("{lead}{scheme}{}{token}{trail}", " ".repeat(spaces));
        let parsed = parse_authorization(value.as_bytes());
        prop_assert!(parsed.is_ok(), "{value:?}: {parsed:?}");
        let parsed = parsed.unwrap();
        prop_assert_eq!(parsed.expose_secret(), token.as_str());
        prop_assert_eq!(parsed.environment(), env);
        // Debug/Display never show the body.
        let (debug, display) = (format!("{:?}", parsed), parsed.to_string());
        prop_assert!(!debug.contains(&body), "{}", debug);
        prop_assert!(!display.contains(&body), "{}", display);
        // The bare token parses the same.
        prop_assert_eq!(Token::parse(&token), Some(parsed));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_accept_only_the_grammar(
        value in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        check_arbitrary(&value)?;
    }

    /// Random bytes rarely come close to a token: mutate valid values instead (change,
    /// insert or delete a few bytes anywhere).
    #[test]
    fn mutated_valid_values_accept_only_the_grammar(
        env in env(),
        body in "[A-Za-z0-9]{10,134}",
        scheme in scheme(),
        spaces in 1usize..=3,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..4),
    ) {
        let mut value = format!("{scheme}{}{}{body}", " ".repeat(spaces), env.prefix()).into_bytes();
        for (at, byte, kind) in edits {
            let i = at.index(value.len() + 1);
            match kind {
                0 if i < value.len() => value[i] = byte,
                1 => value.insert(i, byte),
                _ if i < value.len() => { value.remove(i); }
                _ => {}
            }
        }
        check_arbitrary(&value)?;
    }

    #[test]
    fn body_length_outside_16_to_128_is_refused(
        env in env(),
        body in prop_oneof!["[A-Za-z0-9]{0,15}", "[A-Za-z0-9]{129,300}"],
    ) {
        let value = format!("Bearer {}{body}", env.prefix());
        prop_assert_eq!(parse_authorization(value.as_bytes()), Err(CredentialError::Malformed));
    }

    #[test]
    fn one_non_alphanumeric_byte_in_the_body_is_refused(
        env in env(),
        body in "[A-Za-z0-9]{16,128}",
        at in any::<prop::sample::Index>(),
        byte in any::<u8>().prop_filter("not alphanumeric", |b| !b.is_ascii_alphanumeric()),
    ) {
        let mut value = format!("Bearer {}{body}", env.prefix()).into_bytes();
        let start = "Bearer ".len() + 9;
        let i = start + at.index(body.len());
        value[i] = byte;
        // A space or tab at either end of the body is trimmed whitespace: the body is then
        // shorter, and still refused when that makes it too short; otherwise refused.
        let parsed = parse_authorization(&value);
        if let Ok(t) = parsed {
            prop_assert!(fits_grammar(t.expose_secret().as_bytes()));
            prop_assert!(matches!(byte, b' ' | b'\t') && (i == start || i == value.len() - 1), "{value:?}");
        }
    }
}

/// The contract's acceptance rule written independently: trimmed of spaces/tabs, `bearer`
/// in any case, one space, more spaces, then a grammar-valid token and nothing else.
fn model(value: &[u8]) -> Option<&[u8]> {
    let v = value.trim_ascii_matches();
    if v.len() < 7 || !v[..6].eq_ignore_ascii_case(b"bearer") || v[6] != b' ' {
        return None;
    }
    let token = &v[6..];
    let token = &token[token.iter().take_while(|&&b| b == b' ').count()..];
    fits_grammar(token).then_some(token)
}

/// Bytes near the grammar: pieces of valid values and the bytes that matter at its edges.
fn near_grammar() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"Bearer".to_vec()),
        Just(b"bearer".to_vec()),
        Just(b"BEARER".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\t".to_vec()),
        Just(b"ark_live_".to_vec()),
        Just(b"ark_test_".to_vec()),
        Just(b"ark_".to_vec()),
        Just(b"live".to_vec()),
        Just(b"_".to_vec()),
        "[A-Za-z0-9]{1,40}".prop_map(String::into_bytes),
        "[A-Za-z0-9]{16,128}".prop_map(String::into_bytes),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    proptest::collection::vec(piece, 0..8).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// The parser agrees exactly with the independent model: it accepts precisely what
    /// the model accepts, and then yields precisely the model's token.
    #[test]
    fn parser_agrees_with_an_independent_model(value in near_grammar()) {
        let parsed = parse_authorization(&value).ok().map(|t| t.expose_secret().as_bytes());
        prop_assert_eq!(parsed, model(&value), "{:?}", String::from_utf8_lossy(&value));
    }

    /// A bare token parses iff it fits the grammar, and round-trips unchanged.
    #[test]
    fn bare_tokens_parse_iff_they_fit_the_grammar(value in near_grammar()) {
        let parsed = Token::parse_bytes(&value);
        prop_assert_eq!(parsed.is_some(), fits_grammar(&value));
        if let Some(t) = parsed {
            prop_assert_eq!(t.expose_secret().as_bytes(), value.as_slice());
        }
    }

    /// Through a header map: one header parses like its value; any second one is refused,
    /// whatever the values.
    #[test]
    fn one_header_parses_like_its_value_and_two_are_refused(
        first in near_grammar(),
        second in near_grammar(),
    ) {
        use http::{header::AUTHORIZATION, HeaderMap, HeaderValue};
        let (Ok(a), Ok(b)) = (HeaderValue::from_bytes(&first), HeaderValue::from_bytes(&second))
        else {
            return Ok(());
        };
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, a.clone());
        prop_assert_eq!(ark_auth::token::bearer_token(&headers), parse_authorization(a.as_bytes()));
        headers.append(AUTHORIZATION, b);
        prop_assert_eq!(ark_auth::token::bearer_token(&headers), Err(CredentialError::MultipleHeaders));
    }
}

fn check_arbitrary(value: &[u8]) -> Result<(), TestCaseError> {
    let Ok(token) = parse_authorization(value) else {
        return Ok(());
    };
    let t = token.expose_secret().as_bytes();
    prop_assert!(fits_grammar(t), "accepted outside the grammar: {value:?}");
    prop_assert!((9 + MIN_BODY_LEN..=9 + MAX_BODY_LEN).contains(&t.len()));
    let env = if t.starts_with(b"ark_live_") {
        Environment::Live
    } else {
        Environment::Test
    };
    prop_assert_eq!(token.environment(), env);
    // The value is `bearer` (any case), whitespace, the token, whitespace: nothing else.
    let trimmed = value.trim_ascii_matches();
    prop_assert!(
        trimmed.len() > 6 && trimmed[..6].eq_ignore_ascii_case(b"bearer"),
        "{value:?}"
    );
    prop_assert_eq!(trimmed[6], b' ', "{:?}", value);
    prop_assert!(trimmed.ends_with(t), "{value:?}");
    let between = &trimmed[6..trimmed.len() - t.len()];
    prop_assert!(
        between.iter().all(|b| matches!(b, b' ' | b'\t')),
        "{value:?}"
    );
    Ok(())
}

trait TrimWs {
    fn trim_ascii_matches(&self) -> &[u8];
}

impl TrimWs for [u8] {
    /// Trims spaces and tabs (what the contract calls surrounding whitespace).
    fn trim_ascii_matches(&self) -> &[u8] {
        let mut v = self;
        while let [b' ' | b'\t', rest @ ..] = v {
            v = rest;
        }
        while let [rest @ .., b' ' | b'\t'] = v {
            v = rest;
        }
        v
    }
}

#[test]
fn examples_from_the_contract() {
    let ok = |v: &str| parse_authorization(v.as_bytes()).map(|t| t.expose_secret().to_owned());
    let t = "ark_live_0123456789abcdefghij";
    for v in [
        format!("Bearer {t}"),
        format!("bearer {t}"),
        format!("BEARER {t}"),
        format!("Bearer     {t}"),
        format!("  Bearer {t}  "),
    ] {
        assert_eq!(ok(&v).as_deref(), Ok(t), "{v:?}");
    }
    assert_eq!(ok(""), Err(CredentialError::Missing));
    assert_eq!(ok("Basic abc"), Err(CredentialError::Missing));
    assert_eq!(ok("Bearerxyz"), Err(CredentialError::Missing));
    assert_eq!(ok("Bearer"), Err(CredentialError::NoToken));
    assert_eq!(ok("Bearer "), Err(CredentialError::NoToken));
    assert_eq!(
        ok("Bearer ark_live_0123456789abcde"),
        Err(CredentialError::Malformed)
    );
}
