//! The forms of a rejection: gRPC (trailers-only) against JSON, the JSON envelope and the
//! public writer of it, and the request id in both.

use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use http::{StatusCode, Version};

use super::grpc::Grpc;
use super::tests::{assert_rate_limit_headers, body_of, cases, golden_reply};
use super::*;

#[test]
fn grpc_form_only_for_http2_grpc_and_grpc_web_on_any_version() {
    let of = |version, ct: &'static str| {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        Grpc::of(version, &h)
    };
    for version in [
        Version::HTTP_09,
        Version::HTTP_10,
        Version::HTTP_11,
        Version::HTTP_3,
    ] {
        for ct in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc;a=b",
        ] {
            assert_eq!(of(version, ct), None, "{version:?} {ct}");
        }
    }
    for version in [
        Version::HTTP_10,
        Version::HTTP_11,
        Version::HTTP_2,
        Version::HTTP_3,
    ] {
        for ct in ["application/grpc-web", "application/grpc-web-text+proto"] {
            assert_eq!(of(version, ct), Some(Grpc::Web), "{version:?} {ct}");
        }
    }
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    let (parts, body) =
        body_of(Rejection::UnknownKey.into_response(Reply::for_request(Version::HTTP_11, &h)));
    assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
    assert_eq!(parts.headers[CONTENT_TYPE], "application/json");
    assert!(parts.headers.get("grpc-status").is_none());
    assert!(body.contains("\"invalid_api_key\""), "{body}");
}

/// A request id sharing 8 or more consecutive characters with the presented key's body,
/// or with malformed credentials, is replaced: in the body and in `X-Request-Id`.
#[test]
fn request_ids_repeating_the_presented_credentials_are_replaced() {
    let key = "ark_test_0123456789abcdefXYZ";
    for (auth, id, echoed) in [
        (format!("Bearer {key}"), "trace-0123456789abcdefXYZ", false),
        (format!("Bearer {key}"), "89abcdef", false),
        (format!("Bearer {key}"), "x-bcdefXYZ-y", false),
        (format!("Bearer {key}"), "x-cdefXYZ-y", true),
        (format!("Bearer {key}"), "ark_test", true),
        (
            "Bearer sk_live_abcdefgh1234".to_owned(),
            "sk_live_abcd",
            false,
        ),
        ("Bearer sk_live_abcdefgh1234".to_owned(), "abcdefgh", false),
        (format!("Bearer {key}!"), "Bearer-a", true),
        (format!("Bearer {key}!"), "abcdefXYZ", false),
        (
            "Basic dXNlcjpwYXNzd29yZA==".to_owned(),
            "cjpwYXNzd29y",
            false,
        ),
    ] {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        h.insert(&X_REQUEST_ID, HeaderValue::from_static(id));
        let got = RequestId::from_headers(&h);
        assert_eq!(
            got.as_str() == id,
            echoed,
            "{auth} / {id}: {}",
            got.as_str()
        );
        if !echoed {
            assert!(got.as_str().starts_with("req_"), "{}", got.as_str());
        }
        let (parts, body) =
            body_of(Rejection::UnknownKey.into_response(Reply::for_request(Version::HTTP_11, &h)));
        assert_eq!(parts.headers[&X_REQUEST_ID] == id, echoed, "{auth} / {id}");
        assert_eq!(body.contains(id), echoed, "{auth} / {id}: {body}");
    }
}

#[test]
fn grpc_rejections_are_trailers_only_with_the_status_and_message() {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert(&X_REQUEST_ID, HeaderValue::from_static("rid-1"));
    let reply = Reply::for_request(Version::HTTP_2, &h);
    for (name, r) in cases() {
        let code = r.code();
        let (message, _) = r.texts();
        let limit = r.limit().copied();
        let (parts, body) = body_of(r.into_response(reply.clone()));
        assert_eq!(parts.status, StatusCode::OK, "{name}");
        assert_eq!(parts.headers[CONTENT_TYPE], "application/grpc", "{name}");
        assert_eq!(
            parts.headers["grpc-status"],
            code.grpc_status().to_string().as_str(),
            "{name}"
        );
        assert_eq!(parts.headers["grpc-message"], message.render().as_str());
        assert_eq!(parts.headers[&X_REQUEST_ID], "rid-1", "{name}");
        assert_eq!(body, "", "{name}: trailers-only, no message");
        if let Some(d) = limit {
            assert_rate_limit_headers(&parts.headers, &d);
        }
    }
}

#[test]
fn bodies_are_the_json_envelope() {
    for reply in [
        golden_reply(),
        Reply::for_request(Version::HTTP_11, &HeaderMap::new()),
    ] {
        let id = &reply.id;
        for (name, r) in cases() {
            let (code, (message, suggestion)) = (r.code(), r.texts());
            assert_eq!(message.render().len(), message.len(), "{name}");
            assert_eq!(suggestion.render().len(), suggestion.len(), "{name}");
            let (parts, body) = body_of(r.into_response(reply.clone()));
            assert_eq!(parts.status, code.status(), "{name}");
            assert_eq!(parts.headers[CONTENT_TYPE], "application/json");
            assert_eq!(parts.headers[&X_REQUEST_ID], id.as_str());
            let v: serde_json::Value = serde_json::from_str(&body).expect(name);
            let keys = |v: &serde_json::Value| {
                let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
                k.sort();
                k
            };
            assert_eq!(keys(&v), ["error", "meta", "success"], "{name}");
            assert_eq!(
                keys(&v["error"]),
                ["code", "message", "suggestion"],
                "{name}"
            );
            assert_eq!(keys(&v["meta"]), ["requestId"], "{name}");
            assert_eq!(v["success"], false, "{name}");
            assert_eq!(v["error"]["code"], code.as_str(), "{name}");
            assert_eq!(v["error"]["message"], message.render(), "{name}");
            assert_eq!(v["error"]["suggestion"], suggestion.render(), "{name}");
            assert_eq!(v["meta"]["requestId"], id.as_str(), "{name}");
            // Key order of the contract.
            let at = |k: &str| body.find(&format!("\"{k}\":")).expect(k);
            assert!(
                at("success") < at("error") && at("error") < at("code"),
                "{name}"
            );
            assert!(at("code") < at("message") && at("message") < at("suggestion"));
            assert!(at("suggestion") < at("meta") && at("meta") < at("requestId"));
        }
    }
}

/// The public envelope writer gives exactly the bytes of the layer's own rejections.
#[test]
fn error_body_writes_the_bytes_of_every_rejection() {
    for reply in [
        golden_reply(),
        Reply::for_request(Version::HTTP_11, &HeaderMap::new()),
    ] {
        for (name, r) in cases() {
            let (code, (message, suggestion)) = (r.code(), r.texts());
            let expected = error_body(code, &message.render(), &suggestion.render(), reply.id());
            let (_, body) = body_of(r.into_response(reply.clone()));
            assert_eq!(body.as_bytes(), &expected[..], "{name}");
        }
    }
}
