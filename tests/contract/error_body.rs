//! Contract section 3 (error body): request ids. (The envelope itself is checked on every
//! rejection by `support::rejection`.)

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_echoed_when_valid_and_replaced_otherwise() {
    let keys = Keys::new();
    let servers = keys.servers().await;
    let valid = [
        "abc".to_owned(),
        "a".to_owned(),
        "A.b_C-9".to_owned(),
        "req_0123456789abcdef0123".to_owned(),
        "x".repeat(128),
    ];
    let invalid: Vec<Vec<u8>> = vec![
        "y".repeat(129).into_bytes(),
        b"bad id".to_vec(),
        b"bad!".to_vec(),
        b"a/b".to_vec(),
        b"a:b".to_vec(),
        b"\"quoted\"".to_vec(),
        "h\u{e9}llo".as_bytes().to_vec(),
        b"caf\xe9".to_vec(),
        b"{json}".to_vec(),
        b"".to_vec(),
        // A key pasted into the wrong header is never echoed (section 3: nothing repeats a
        // key), although its characters are all allowed in an id.
        keys.read_only.token.clone().into_bytes(),
        format!("trace-{}", keys.revoked.token).into_bytes(),
    ];
    for srv in &servers {
        for id in &valid {
            for (req, status, code) in [
                (get("/v1/limits"), 401, "authentication_required"),
                (
                    get("/v1/limits").bearer(&keys.revoked.token),
                    401,
                    "expired_api_key",
                ),
                (
                    post("/v1/emails").bearer(&keys.read_only.token),
                    403,
                    "permission_denied",
                ),
            ] {
                let res = send_req(srv, &req.request_id(id), &keys).await;
                let v = rejection(srv, &res, status, code);
                assert_eq!(v["meta"]["requestId"], json!(id), "[{:?}]", srv.flavor);
            }
        }
        let mut fresh = Vec::new();
        for id in &invalid {
            let mut line = b"X-Request-Id: ".to_vec();
            line.extend_from_slice(id);
            let res = send_req(srv, &get("/v1/limits").line(&line), &keys).await;
            let v = rejection(srv, &res, 401, "authentication_required");
            let got = v["meta"]["requestId"].as_str().unwrap().to_owned();
            assert!(
                got.starts_with("req_") && got.len() > 4,
                "[{:?}] {got:?}",
                srv.flavor
            );
            assert!(
                got.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_'),
                "[{:?}] {got:?}",
                srv.flavor
            );
            assert_ne!(got.as_bytes(), id.as_slice());
            fresh.push(got);
        }
        // Without any X-Request-Id.
        let res = send_req(srv, &get("/v1/limits"), &keys).await;
        let v = rejection(srv, &res, 401, "authentication_required");
        fresh.push(v["meta"]["requestId"].as_str().unwrap().to_owned());
        let n = fresh.len();
        fresh.sort();
        fresh.dedup();
        assert_eq!(fresh.len(), n, "fresh request ids repeat");
        assert_eq!(srv.calls(), 0);
    }
}
