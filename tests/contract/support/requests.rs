//! Raw requests, and sending them with the secret-hygiene and never-a-500 checks.

use crate::common::{authorization, request, send, RawResponse, Server};

use super::keys::Keys;

/// A raw request under construction.
#[derive(Clone)]
pub struct Req {
    pub method: &'static str,
    pub path: String,
    pub lines: Vec<Vec<u8>>,
    /// Tokens this request presents (checked for hygiene on the response).
    pub presented: Vec<String>,
}

pub fn get(path: &str) -> Req {
    Req {
        method: "GET",
        path: path.to_owned(),
        lines: Vec::new(),
        presented: Vec::new(),
    }
}

pub fn post(path: &str) -> Req {
    Req {
        method: "POST",
        ..get(path)
    }
}

impl Req {
    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Req {
        self.auth(format!("Bearer {token}").as_bytes())
            .presents(token)
    }
    /// `Authorization: <value>` (bytes as given).
    pub fn auth(self, value: &[u8]) -> Req {
        self.line(&authorization(value))
    }
    /// Any header line, bytes as given.
    pub fn line(mut self, line: &[u8]) -> Req {
        self.lines.push(line.to_vec());
        self
    }
    pub fn request_id(self, id: &str) -> Req {
        self.line(format!("X-Request-Id: {id}").as_bytes())
    }
    /// Declares a secret this request carries somewhere.
    pub fn presents(mut self, secret: &str) -> Req {
        self.presented.push(secret.to_owned());
        self
    }
    pub fn raw(&self) -> Vec<u8> {
        request(self.method, &self.path, &self.lines)
    }
}

/// Sends a request and checks the response never leaks a secret nor is a 500.
pub async fn send_req(srv: &Server, req: &Req, keys: &Keys) -> RawResponse {
    let res = send(srv.addr, &req.raw()).await;
    let mut secrets = keys.secrets();
    secrets.extend(req.presented.iter().cloned());
    check_hygiene(srv, &res, &secrets);
    res
}

/// The parts of a secret that must never be echoed: the whole token and its body.
pub fn secret_parts(secret: &str) -> Vec<&str> {
    let mut parts = vec![secret];
    if let Some(body) = secret
        .strip_prefix("ark_live_")
        .or_else(|| secret.strip_prefix("ark_test_"))
    {
        parts.push(body);
    }
    parts.retain(|p| p.len() >= 12);
    parts
}

pub fn check_hygiene(srv: &Server, res: &RawResponse, secrets: &[String]) {
    assert_ne!(
        res.status,
        500,
        "[{:?}] 500: {}",
        srv.flavor,
        res.body_text()
    );
    assert_ne!(
        res.status, 599,
        "[{:?}] handler ran without a key",
        srv.flavor
    );
    for s in secrets {
        for part in secret_parts(s) {
            assert!(
                !res.contains(part.as_bytes()),
                "[{:?}] response repeats a secret ({} chars): {:?} {}",
                srv.flavor,
                part.len(),
                res.headers_text(),
                res.body_text()
            );
        }
    }
}
