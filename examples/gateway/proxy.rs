//! The proxy behind the auth layer: forwards each request it is given to the upstream over
//! hyper-util's pooled client, streaming both bodies, and answers 502 or 504 in the
//! contract's JSON envelope when the upstream cannot be reached or does not answer in time.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use ark_auth::response::{error_body, X_REQUEST_ID};
use ark_auth::RequestId;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, Response, StatusCode, Version};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::forward::{original_host, remove_hop_by_hop, set_forwarded, Upstream};
use super::idle::IdleTimeout;

/// How long the upstream may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To open a TCP connection to it.
    pub connect: Duration,
    /// From sending a request to receiving the head (status and headers) of its response.
    pub response_head: Duration,
    /// Longest pause in a body, either way: a request body the client stops sending, or a
    /// response body the upstream stops sending, fails after this (the upstream request,
    /// or the client's connection, is cut). Bodies have no bound in total.
    pub body_idle: Duration,
    /// A pooled connection unused for this long is closed.
    pub pool_idle: Duration,
}

/// The gateway's timeouts (`response_head` and `body_idle` are set by flags).
pub const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(5),
    response_head: Duration::from_secs(30),
    body_idle: Duration::from_secs(30),
    pool_idle: Duration::from_secs(60),
};

/// Forwards requests to one upstream. Cheap to clone (the client's pool is shared).
#[derive(Clone, Debug)]
pub struct Proxy {
    client: Client<HttpConnector, Body>,
    upstream: Upstream,
    timeouts: Timeouts,
}

impl Proxy {
    /// A proxy to `upstream` with a connection pool of its own.
    pub fn new(upstream: Upstream, timeouts: Timeouts) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeouts.connect));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(timeouts.pool_idle)
            .build(connector);
        Proxy {
            client,
            upstream,
            timeouts,
        }
    }

    /// Forwards `req` and returns the upstream's response (status, headers and streamed
    /// body as they come, hop-by-hop headers removed), or the gateway's 502/504.
    pub async fn forward(self, req: Request<Body>) -> Result<Response<Body>, Infallible> {
        // The id the auth layer decided on (never one that repeats the client's key).
        let id = req
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(RequestId::generate);
        let client_ip = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let (mut parts, body) = req.into_parts();
        let target = match self.upstream.target(parts.uri.path_and_query()) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(target: LOG_TARGET, request_id = id.as_str(), "{e}");
                return Ok(failure(StatusCode::BAD_GATEWAY, &id));
            }
        };
        let host = original_host(&parts.headers, &parts.uri);
        remove_hop_by_hop(&mut parts.headers);
        // The gateway has answered any `Expect: 100-continue` itself (by reading the body).
        parts.headers.remove(header::EXPECT);
        set_forwarded(&mut parts.headers, client_ip, host, "http");
        parts.headers.insert(&X_REQUEST_ID, id.header_value());
        parts.uri = target;
        // The upstream connection is HTTP/1.1, whatever the client spoke.
        parts.version = Version::HTTP_11;
        // Nothing of the server side's extensions travels.
        parts.extensions = Default::default();
        let body = IdleTimeout::wrap(body, self.timeouts.body_idle);
        let sent = self.client.request(Request::from_parts(parts, body));
        match tokio::time::timeout(self.timeouts.response_head, sent).await {
            Ok(Ok(res)) => {
                let (mut parts, body) = res.into_parts();
                remove_hop_by_hop(&mut parts.headers);
                let body = IdleTimeout::wrap(Body::new(body), self.timeouts.body_idle);
                Ok(Response::from_parts(parts, body))
            }
            Ok(Err(e)) => {
                // hyper's errors name the failure (refused, reset…), never a header's value.
                let cause =
                    std::error::Error::source(&e).map_or_else(String::new, |s| format!(": {s}"));
                tracing::warn!(
                    target: LOG_TARGET,
                    request_id = id.as_str(),
                    "upstream {} failed: {e}{cause}",
                    self.upstream.shown()
                );
                Ok(failure(StatusCode::BAD_GATEWAY, &id))
            }
            Err(_) => {
                tracing::warn!(
                    target: LOG_TARGET,
                    request_id = id.as_str(),
                    "upstream {} gave no response within {:?}",
                    self.upstream.shown(),
                    self.timeouts.response_head
                );
                Ok(failure(StatusCode::GATEWAY_TIMEOUT, &id))
            }
        }
    }
}

/// The target of the gateway's own log lines, as `RUST_LOG=gateway=…` expects.
const LOG_TARGET: &str = "gateway";

/// The gateway's answer when the upstream fails (502) or is too slow (504): the contract's
/// envelope with the request's id, and `Retry-After`.
pub fn failure(status: StatusCode, id: &RequestId) -> Response<Body> {
    let (code, message) = if status == StatusCode::GATEWAY_TIMEOUT {
        (
            "gateway_timeout",
            "The upstream service did not answer in time",
        )
    } else {
        ("bad_gateway", "The upstream service could not be reached")
    };
    let body = error_body(
        code,
        message,
        "Retry later; if this persists, contact the API's operator",
        id,
    );
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(&X_REQUEST_ID, id.header_value());
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    res
}
