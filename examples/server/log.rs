//! The request log: method, path, outcome and request id of every request, with anything
//! from the request that might carry a key redacted.

use ark_auth::response::X_REQUEST_ID;
use axum::extract::Request;
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;

/// Installs the process's log: `RUST_LOG` (default `info`) to stderr, coloured only on a
/// terminal. The demo server and the gateway start with it.
pub fn init() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Logs method, path, the outcome (status, and `grpc-status` for the gRPC form), request id
/// and the SDKs' retry count; never a header's value otherwise. What comes from the request
/// is checked first (see `logged_method` and `logged_path`); the request id is the one
/// the response carries, which never repeats the presented key.
pub async fn log_request(req: Request, next: Next) -> Response {
    let method = logged_method(req.method(), req.headers());
    let path = logged_path(req.uri().path(), req.headers());
    let retry = req
        .headers()
        .get("x-stainless-retry-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok());
    let res = next.run(req).await;
    let rid = res
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let outcome = outcome(&res);
    match retry {
        Some(n) => {
            tracing::info!(target: LOG_TARGET, "{method} {path} -> {outcome} request_id={rid} retry={n}")
        }
        None => tracing::info!(target: LOG_TARGET, "{method} {path} -> {outcome} request_id={rid}"),
    }
    res
}

/// The target of the log lines: the program's name, as `RUST_LOG=server=…` expects.
const LOG_TARGET: &str = "server";

/// Longest method or path written to the log; longer ones are cut (with their length).
const LOGGED_MAX: usize = 256;

/// The status as decided: `401`, or `200 grpc-status=16` for a rejection in the gRPC form
/// (an HTTP 200 that is not a success).
fn outcome(res: &Response) -> String {
    let status = res.status().as_u16();
    let grpc = res
        .headers()
        .get("grpc-status")
        .map(|v| v.as_bytes())
        .filter(|v| (1..=2).contains(&v.len()) && v.iter().all(u8::is_ascii_digit));
    match grpc {
        Some(g) => format!("{status} grpc-status={}", String::from_utf8_lossy(g)),
        None => status.to_string(),
    }
}

/// `s`, or its first [`LOGGED_MAX`] characters and how long it was.
fn capped(s: &str) -> String {
    match s.char_indices().nth(LOGGED_MAX) {
        Some((end, _)) => format!("{}…({} bytes)", &s[..end], s.len()),
        None => s.to_owned(),
    }
}

/// Whether a text from the request might carry a key: a key prefix or 8 characters of the
/// presented credentials (`ark_auth::token::repeats_credentials`), or a run of 16 letters and
/// digits (as long as the shortest key body).
fn might_hold_a_key(headers: &HeaderMap, text: &str) -> bool {
    let longest_run = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .map(str::len)
        .max()
        .unwrap_or(0);
    ark_auth::token::repeats_credentials(headers, text.as_bytes())
        || longest_run >= ark_auth::token::MIN_BODY_LEN
}

/// The method as logged: a standard one as is; any other redacted when it might hold a key
/// (`curl -X "$KEY"`), cut to [`LOGGED_MAX`] otherwise.
fn logged_method(method: &Method, headers: &HeaderMap) -> String {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::PATCH,
        Method::CONNECT,
        Method::TRACE,
    ];
    if STANDARD.contains(method) {
        method.as_str().to_owned()
    } else if might_hold_a_key(headers, method.as_str()) {
        "<method redacted>".to_owned()
    } else {
        capped(method.as_str())
    }
}

/// The path as logged: redacted when, raw or percent-decoded (repeatedly, so `%2561` is
/// `a` too), it holds a key prefix or 8 characters of the presented credentials; cut to
/// [`LOGGED_MAX`] otherwise.
fn logged_path(path: &str, headers: &HeaderMap) -> String {
    let mut text = path.to_owned();
    for _ in 0..4 {
        if ark_auth::token::repeats_credentials(headers, text.as_bytes()) {
            return "<path redacted>".to_owned();
        }
        let decoded = percent_encoding::percent_decode_str(&text)
            .decode_utf8_lossy()
            .into_owned();
        if decoded == text {
            break;
        }
        text = decoded;
    }
    if ark_auth::token::repeats_credentials(headers, text.as_bytes()) {
        return "<path redacted>".to_owned();
    }
    capped(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    #[test]
    fn logged_methods_and_paths() {
        use axum::http::{HeaderMap, HeaderValue};
        let key = "ark_test_0123456789abcdefXYZ";
        let mut with_key = HeaderMap::new();
        with_key.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {key}")).unwrap(),
        );
        let none = HeaderMap::new();
        let m = |s: &str| Method::from_bytes(s.as_bytes()).unwrap();
        assert_eq!(logged_method(&Method::GET, &with_key), "GET");
        assert_eq!(logged_method(&m("PURGE"), &none), "PURGE");
        assert_eq!(logged_method(&m(key), &none), "<method redacted>");
        assert_eq!(logged_method(&m(&key[9..]), &none), "<method redacted>");
        assert_eq!(
            logged_method(&m("X-89abcdef"), &with_key),
            "<method redacted>"
        );
        let long = "MM-".repeat(20_000);
        let shown = logged_method(&m(&long), &none);
        assert!(
            shown.len() < 300 && shown.ends_with("…(60000 bytes)"),
            "{shown}"
        );

        assert_eq!(logged_path("/v1/emails/e_1", &with_key), "/v1/emails/e_1");
        for p in [
            "/v1/ark_test_x",
            "/v1/%61rk_test_x",
            "/v1/ark%5Ftest%5Fx",
            "/v1/%2561rk_test_x",
            "/v1/emails/89abcdefXY",
            "/v1/emails/%38%39abcdefXY",
        ] {
            assert_eq!(logged_path(p, &with_key), "<path redacted>", "{p}");
        }
        assert_eq!(
            logged_path("/v1/emails/89abcdefXY", &none),
            "/v1/emails/89abcdefXY"
        );
        let long = format!("/{}", "a/".repeat(1000));
        let shown = logged_path(&long, &none);
        assert!(
            shown.len() < 300 && shown.ends_with("…(2001 bytes)"),
            "{shown}"
        );
    }

    #[test]
    fn outcome_shows_the_grpc_status() {
        let mut res = StatusCode::UNAUTHORIZED.into_response();
        assert_eq!(outcome(&res), "401");
        *res.status_mut() = StatusCode::OK;
        res.headers_mut()
            .insert("grpc-status", axum::http::HeaderValue::from_static("16"));
        assert_eq!(outcome(&res), "200 grpc-status=16");
        res.headers_mut()
            .insert("grpc-status", axum::http::HeaderValue::from_static("16; x"));
        assert_eq!(outcome(&res), "200");
    }
}
