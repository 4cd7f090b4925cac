//! Contract section 1 (credentials) and the 401s of section 2 decided before any store is
//! asked: what is refused, and what is accepted.

use ark_auth::{Environment, MemoryKeyStore, Permissions};
use serde_json::json;

use crate::common::{own_limiter, spawn_both};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_empty_or_non_bearer_credentials_401_authentication_required() {
    let keys = Keys::new();
    let servers = keys.servers().await;
    let t = &keys.full.token;
    let cases: Vec<(&str, Req)> = vec![
        ("no header", get("/v1/limits")),
        ("empty header", get("/v1/limits").line(b"Authorization:")),
        (
            "blank header",
            get("/v1/limits").line(b"Authorization:    "),
        ),
        ("Basic", get("/v1/limits").auth(b"Basic dXNlcjpwYXNz")),
        ("Bearerxyz", get("/v1/limits").auth(b"Bearerxyz")),
        (
            "Bearer glued to a valid key",
            get("/v1/limits")
                .auth(format!("Bearer{t}").as_bytes())
                .presents(t),
        ),
        (
            "other scheme with a valid key",
            get("/v1/limits")
                .auth(format!("Token {t}").as_bytes())
                .presents(t),
        ),
        (
            "bare valid key",
            get("/v1/limits").auth(t.as_bytes()).presents(t),
        ),
        (
            "Bearers",
            get("/v1/limits")
                .auth(format!("Bearers {t}").as_bytes())
                .presents(t),
        ),
        ("POST without header", post("/v1/emails")),
    ];
    for srv in &servers {
        for (what, req) in &cases {
            let res = send_req(srv, req, &keys).await;
            let v = rejection(srv, &res, 401, "authentication_required");
            www_missing(srv, &res);
            assert!(
                suggestion(&v).contains("Authorization: Bearer"),
                "[{:?}] {what}: {v}",
                srv.flavor
            );
            assert!(rate(&res).is_none(), "[{:?}] {what}", srv.flavor);
        }
        assert_eq!(srv.calls(), 0, "[{:?}] handler ran", srv.flavor);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_in_query_cookie_or_other_header_is_never_read() {
    let keys = Keys::new();
    let servers = keys.servers().await;
    let t = &keys.full.token;
    let cases = [
        get(&format!("/v1/limits?api_key={t}")),
        get(&format!("/v1/limits?access_token={t}")),
        get(&format!("/v1/limits?authorization=Bearer%20{t}")),
        get("/v1/limits").line(format!("Cookie: api_key={t}; session={t}").as_bytes()),
        get("/v1/limits").line(format!("X-API-Key: {t}").as_bytes()),
        get("/v1/limits").line(format!("Api-Key: Bearer {t}").as_bytes()),
        get("/v1/limits").line(format!("X-Authorization: Bearer {t}").as_bytes()),
        get("/v1/limits").line(format!("Proxy-Authorization: Bearer {t}").as_bytes()),
    ];
    for srv in &servers {
        for req in &cases {
            let res = send_req(srv, &req.clone().presents(t), &keys).await;
            rejection(srv, &res, 401, "authentication_required");
            www_missing(srv, &res);
        }
        assert_eq!(srv.calls(), 0, "[{:?}]", srv.flavor);
    }
}

// ---------------------------------------------------------------------------------------
// 401 invalid_api_key: before any store is asked
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_without_token_401_invalid_api_key() {
    let keys = Keys::new();
    let servers = keys.servers().await;
    for srv in &servers {
        for value in [
            &b"Bearer"[..],
            b"bearer",
            b"BEARER",
            b"Bearer     ",
            b"  Bearer  ",
        ] {
            let res = send_req(srv, &get("/v1/limits").auth(value), &keys).await;
            let v = rejection(srv, &res, 401, "invalid_api_key");
            www_invalid(srv, &res);
            assert!(suggestion(&v).contains("ark_live_"), "{v}");
        }
        assert_eq!(srv.calls(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_outside_the_grammar_401_invalid_api_key() {
    let keys = Keys::new();
    let servers = keys.servers().await;
    let full = &keys.full;
    let body20 = alnum(20, 1);
    let tokens: Vec<String> = vec![
        "ark_live_".into(),
        "ark_test_".into(),
        format!("ark_live_{}", alnum(15, 2)),
        format!("ark_test_{}", alnum(1, 2)),
        format!("ark_live_{}", alnum(129, 3)),
        format!("ark_test_{}", alnum(200, 3)),
        format!("ark_prod_{body20}"),
        format!("ark_Live_{body20}"),
        format!("ARK_LIVE_{body20}"),
        format!("ark_liv_{body20}"),
        format!("ark_tests_{body20}"),
        format!("ark__live_{body20}"),
        format!("ark_live{body20}"),
        format!("ark_live__{body20}"),
        format!("ark-live-{body20}"),
        format!("sk_live_{body20}"),
        format!("xark_live_{body20}"),
        body20.clone(),
        format!("ark_live_{}-{}", alnum(10, 4), alnum(10, 5)),
        format!("ark_live_{}_{}", alnum(10, 4), alnum(10, 5)),
        format!("ark_live_{}.{}", alnum(10, 4), alnum(10, 5)),
        format!("ark_live_{}+/=", alnum(20, 4)),
        format!("ark_live_{}%41", alnum(20, 4)),
        format!("ark_live_{}\"", alnum(20, 4)),
        format!("\"{}\"", full.token),
        format!("{} extra", full.token),
        format!("{}, Bearer {}", full.token, full.token),
        format!("{},{}", full.token, full.token),
        format!("{0}x{0}x", full.token),
        format!("<{}>", full.token),
        format!("{}=", full.token),
    ];
    for srv in &servers {
        for t in &tokens {
            let res = send_req(srv, &get("/v1/limits").bearer(t), &keys).await;
            let v = rejection(srv, &res, 401, "invalid_api_key");
            www_invalid(srv, &res);
            let s = suggestion(&v);
            // Contract section 3: bad format -> ensure the key starts with ark_live_ or ark_test_.
            assert!(
                s.contains("ark_live_") && s.contains("ark_test_"),
                "[{:?}] {t:?}: {v}",
                srv.flavor
            );
        }
        assert_eq!(srv.calls(), 0, "[{:?}]", srv.flavor);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_ascii_and_control_bytes_in_the_token_401_invalid_api_key() {
    let keys = Keys::new();
    let servers = keys.servers().await;
    let t = keys.full.token.as_bytes();
    let splice = |at: usize, bytes: &[u8]| {
        let mut v = b"Bearer ".to_vec();
        v.extend_from_slice(&t[..at]);
        v.extend_from_slice(bytes);
        v.extend_from_slice(&t[at..]);
        v
    };
    let replace = |at: usize, bytes: &[u8]| {
        let mut v = b"Bearer ".to_vec();
        v.extend_from_slice(&t[..at]);
        v.extend_from_slice(bytes);
        v.extend_from_slice(&t[at + 1..]);
        v
    };
    let mut cases: Vec<Vec<u8>> = vec![
        splice(20, b"\x80"),
        splice(20, b"\xff"),
        splice(t.len(), "é".as_bytes()),
        replace(12, "é".as_bytes()),
        replace(9, b"\xc3"),
        splice(9, "日本".as_bytes()),
        [b"Bearer ark_live_".as_slice(), "ü".repeat(20).as_bytes()].concat(),
        [b"Bearer ".as_slice(), &[0xA0; 30]].concat(),
        // A tab inside the token and right after the scheme.
        splice(20, b"\t"),
        replace(20, b"\t"),
        [b"Bearer\t".as_slice(), t].concat(),
        [b"Bearer\t\t".as_slice(), t].concat(),
        // A space inside the token.
        splice(20, b" "),
    ];
    // The same token prefixed with a byte 0x80..=0xFF.
    cases.extend((0x80..=0xFFu8).step_by(17).map(|b| splice(0, &[b])));
    // A non-ASCII byte right after the scheme, like a tab there: a pasted non-breaking
    // space (UTF-8 `C2 A0`, Latin-1 `A0`), before or instead of the space.
    cases.extend([
        [b"Bearer\xc2\xa0".as_slice(), t].concat(),
        [b"Bearer\xa0".as_slice(), t].concat(),
        [b"Bearer \xc2\xa0".as_slice(), t].concat(),
    ]);
    cases.extend(
        (0x80..=0xFFu8)
            .step_by(17)
            .map(|b| [b"Bearer".as_slice(), &[b], t].concat()),
    );
    for srv in &servers {
        for value in &cases {
            let req = get("/v1/limits").auth(value).presents(&keys.full.token);
            let res = send_req(srv, &req, &keys).await;
            rejection(srv, &res, 401, "invalid_api_key");
            www_invalid(srv, &res);
        }
        assert_eq!(srv.calls(), 0, "[{:?}]", srv.flavor);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_one_authorization_header_401_invalid_api_key() {
    let keys = Keys::new();
    let servers = keys.servers().await;
    let (a, b) = (&keys.full.token, &keys.test.token);
    let a_line = format!("Authorization: Bearer {a}").into_bytes();
    let cases = [
        get("/v1/limits").bearer(a).bearer(a),
        get("/v1/limits").bearer(a).bearer(b),
        get("/v1/limits").bearer(a).line(b"Authorization:"),
        get("/v1/limits").line(b"Authorization:").bearer(a),
        get("/v1/limits").bearer(a).auth(b"Basic dXNlcjpwYXNz"),
        get("/v1/limits").auth(b"Basic dXNlcjpwYXNz").bearer(a),
        get("/v1/limits")
            .line(&a_line)
            .line(format!("authorization: Bearer {a}").as_bytes())
            .presents(a),
        get("/v1/limits")
            .line(format!("AUTHORIZATION: Bearer {a}").as_bytes())
            .line(b"X-Other: 1")
            .line(&a_line)
            .presents(a),
    ];
    for srv in &servers {
        for req in &cases {
            let res = send_req(srv, req, &keys).await;
            rejection(srv, &res, 401, "invalid_api_key");
            www_invalid(srv, &res);
        }
        assert_eq!(srv.calls(), 0, "[{:?}]", srv.flavor);
    }
}

/// Contract section 1: the scheme is "followed by one or more spaces"; only whitespace
/// around the whole value is ignored (RFC 7235: `auth-scheme 1*SP token68`). A tab between
/// the scheme and the token is neither, and the parser refuses `Bearer\t<key>` already.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tab_between_scheme_and_token_401_invalid_api_key() {
    let keys = Keys::new();
    let servers = keys.servers().await;
    let t = &keys.full.token;
    for srv in &servers {
        for value in [
            format!("Bearer\t{t}"),
            format!("Bearer\t {t}"),
            format!("Bearer \t{t}"),
            format!("Bearer \t {t}"),
            format!("Bearer  \t\t  {t}"),
        ] {
            let req = get("/v1/limits").auth(value.as_bytes()).presents(t);
            let res = send_req(srv, &req, &keys).await;
            let shape = value.replace(t.as_str(), "<valid key>");
            assert_eq!(res.status, 401, "[{:?}] {shape:?} accepted", srv.flavor);
            rejection(srv, &res, 401, "invalid_api_key");
            www_invalid(srv, &res);
        }
        assert_eq!(srv.calls(), 0, "[{:?}]", srv.flavor);
    }
}

// ---------------------------------------------------------------------------------------
// Section 1: what is accepted
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheme_case_spaces_and_surrounding_whitespace_accepted() {
    let keys = Keys::new();
    let servers = keys.servers().await;
    let t = &keys.full.token;
    let values: Vec<String> = vec![
        format!("Bearer {t}"),
        format!("bearer {t}"),
        format!("BEARER {t}"),
        format!("bEaReR {t}"),
        format!("Bearer  {t}"),
        format!("Bearer     {t}"),
        format!("   Bearer {t}"),
        format!("Bearer {t}   "),
        format!("\tBearer {t}\t"),
        format!(" \t Bearer   {t} \t "),
    ];
    for srv in &servers {
        for value in &values {
            let req = get("/v1/limits").auth(value.as_bytes()).presents(t);
            let res = send_req(srv, &req, &keys).await;
            ok_for(srv, &res, &keys.full);
        }
        assert_eq!(srv.calls(), values.len(), "[{:?}]", srv.flavor);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grammar_boundaries_16_and_128_char_bodies_are_parsed() {
    // Keys whose bodies are exactly 16 and 128 characters (and the shortest example shape,
    // 20), for both environments: known ones get 200, unknown ones of the same shapes
    // get invalid_api_key (they reached the store: the message is the unknown-key one).
    let mut records = Vec::new();
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for (i, env) in ["live", "test"].into_iter().enumerate() {
        for len in [16, 20, 128] {
            let seed = (i * 3 + len) as u8;
            let (k, r) = key_from_token(&format!("ark_{env}_{}", alnum(len, seed)), |r| {
                r.with_permissions(Permissions::ALL)
            });
            records.push(r);
            known.push(k);
            unknown.push(format!("ark_{env}_{}", alnum(len, seed.wrapping_add(100))));
        }
    }
    let store = MemoryKeyStore::from_records(records).unwrap();
    let keys = Keys::new();
    let servers = spawn_both(|| own_limiter(store.clone())).await;
    let full_unknown = {
        let srv = &servers[0];
        let res = send_req(
            srv,
            &get("/").bearer(&unknown_token(Environment::Live)),
            &keys,
        )
        .await;
        rejection(srv, &res, 401, "invalid_api_key")
    };
    for srv in &servers {
        for k in &known {
            let res = send_req(srv, &get("/v1/limits").bearer(&k.token), &keys).await;
            let v = ok_for(srv, &res, k);
            assert_eq!(v["environment"], json!(&k.token[4..8]));
        }
        for t in &unknown {
            let res = send_req(srv, &get("/v1/limits").bearer(t), &keys).await;
            let v = rejection(srv, &res, 401, "invalid_api_key");
            www_invalid(srv, &res);
            assert_eq!(
                message(&v),
                message(&full_unknown),
                "[{:?}] {t}",
                srv.flavor
            );
        }
        assert_eq!(srv.calls(), known.len());
    }
}
