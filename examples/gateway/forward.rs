//! What a reverse proxy changes in a message it forwards, as plain functions: the
//! hop-by-hop headers (RFC 9110 section 7.6.1) go, the `X-Forwarded-*` headers are set,
//! and the target URI is the upstream's with the request's path and query.

use std::net::IpAddr;

use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::uri::{Authority, PathAndQuery, Scheme, Uri};

/// Headers that describe one connection, never forwarded in either direction (RFC 9110
/// section 7.6.1, plus the `Proxy-Connection` and `Keep-Alive` of older clients). The
/// headers that `Connection` names are removed too ([`remove_hop_by_hop`]).
pub const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The `X-Forwarded-*` headers the gateway sets upstream.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// See [`X_FORWARDED_FOR`].
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// See [`X_FORWARDED_FOR`].
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes the hop-by-hop headers: those of [`HOP_BY_HOP`], every header any `Connection`
/// header names (each of its comma-separated tokens, in any case), and every other
/// `Proxy-*` header.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy {
        headers.remove(name);
    }
}

/// Where the client's request goes: the upstream's scheme and authority, its base path
/// (without a trailing `/`) followed by the request's path and query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    scheme: Scheme,
    authority: Authority,
    base: String,
}

impl Upstream {
    /// Reads `--upstream`: an `http://host:port` URL with an optional base path and no
    /// query. `https://` is refused: this example has no TLS client.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("--upstream {url:?} is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(
                    "--upstream: https is not supported by this example (no TLS client); \
                     terminate TLS in front of the upstream or use http://"
                        .into(),
                )
            }
            _ => return Err(format!("--upstream {url:?} must start with http://")),
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("--upstream {url:?} has no host"))?;
        if authority.as_str().contains('@') {
            return Err("--upstream must not carry user information".into());
        }
        if uri.query().is_some() {
            return Err(format!("--upstream {url:?} must not have a query"));
        }
        Ok(Upstream {
            scheme: Scheme::HTTP,
            authority,
            base: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// The URI to request upstream for a request to `path_and_query` (a request without
    /// one, as in `OPTIONS *` or an authority-form target, goes to the base path `/`).
    pub fn target(&self, path_and_query: Option<&PathAndQuery>) -> Result<Uri, String> {
        let tail = path_and_query.map_or("/", PathAndQuery::as_str);
        let tail = if tail.starts_with('/') { tail } else { "/" };
        let pq = format!("{}{tail}", self.base);
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|e| format!("cannot build the upstream URI: {e}"))
    }

    /// The upstream as it is written in logs: `http://host:port/base`.
    pub fn shown(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.base)
    }
}

/// Sets the `X-Forwarded-*` headers for a request from `client` to `host` over `proto`,
/// replacing any the client sent, and removes a client-sent `Forwarded`: the gateway is the
/// edge, so what a client says about addresses in front of it is not passed on as if a
/// proxy had said it. The original `Host` goes in `X-Forwarded-Host`; `Host` itself is
/// removed (the client writes the upstream's).
pub fn set_forwarded(
    headers: &mut HeaderMap,
    client: Option<IpAddr>,
    host: Option<HeaderValue>,
    proto: &'static str,
) {
    headers.remove(header::FORWARDED);
    headers.remove(header::HOST);
    headers.remove(&X_FORWARDED_FOR);
    headers.remove(&X_FORWARDED_HOST);
    if let Some(ip) = client {
        if let Ok(v) = HeaderValue::from_str(&ip.to_string()) {
            headers.insert(X_FORWARDED_FOR, v);
        }
    }
    if let Some(h) = host {
        headers.insert(X_FORWARDED_HOST, h);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
}

/// The host the client addressed: its `Host` header, or the authority of an absolute or
/// HTTP/2 request target.
pub fn original_host(headers: &HeaderMap, uri: &Uri) -> Option<HeaderValue> {
    headers.get(header::HOST).cloned().or_else(|| {
        uri.authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = headers(&[
            ("connection", "keep-alive, X-Private , x-other"),
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("x-other", "2"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic eDp5"),
            ("proxy-connection", "keep-alive"),
            ("proxy-foo", "bar"),
            ("content-type", "text/plain"),
            ("x-kept", "yes"),
        ]);
        remove_hop_by_hop(&mut h);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        left.sort();
        assert_eq!(left, ["content-type", "x-kept"]);
        // A Connection header naming junk or nothing is harmless.
        let mut h = headers(&[("connection", ",, \u{20}"), ("x-a", "1")]);
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn upstream_urls() {
        let u = Upstream::parse("http://127.0.0.1:8080/api/").unwrap();
        assert_eq!(u.shown(), "http://127.0.0.1:8080/api");
        let pq = |s: &str| s.parse::<PathAndQuery>().unwrap();
        assert_eq!(
            u.target(Some(&pq("/v1/emails?x=1&y=%20"))).unwrap(),
            "http://127.0.0.1:8080/api/v1/emails?x=1&y=%20"
        );
        assert_eq!(u.target(None).unwrap(), "http://127.0.0.1:8080/api/");
        assert_eq!(
            u.target(Some(&pq("*"))).unwrap(),
            "http://127.0.0.1:8080/api/"
        );
        let root = Upstream::parse("http://up:9000").unwrap();
        assert_eq!(
            root.target(Some(&pq("/a/b"))).unwrap(),
            "http://up:9000/a/b"
        );
        for bad in [
            "https://up",
            "up:9000",
            "ftp://up/",
            "http://u:p@up/",
            "http://up/?q=1",
            "not a url",
        ] {
            assert!(Upstream::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_headers_are_the_gateways() {
        let mut h = headers(&[
            ("host", "api.example.com"),
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-host", "evil"),
            ("x-forwarded-proto", "https"),
        ]);
        let host = original_host(&h, &Uri::from_static("/v1"));
        set_forwarded(&mut h, Some("10.0.0.7".parse().unwrap()), host, "http");
        assert_eq!(h.get("forwarded"), None);
        assert_eq!(h.get("host"), None);
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(h["x-forwarded-for"], "10.0.0.7");
        assert_eq!(h["x-forwarded-host"], "api.example.com");
        assert_eq!(h["x-forwarded-proto"], "http");
        // HTTP/2: the authority of the request target.
        let h2 = original_host(&HeaderMap::new(), &Uri::from_static("http://h2.example/x"));
        assert_eq!(h2.unwrap(), "h2.example");
    }
}
