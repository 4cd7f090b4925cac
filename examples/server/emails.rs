//! The stub emails: what is kept, and the handlers that send, list and read them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ark_auth::AuthenticatedKey;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::reply::{error, meta, new_id, ok, reply, rfc3339, JsonPath, Rid};

/// Emails kept for `GET /v1/emails` and `GET /v1/emails/{id}` (oldest dropped first).
const MAX_STORED_EMAILS: usize = 1000;

/// What handlers share: the stub emails.
#[derive(Clone, Default)]
pub struct AppState {
    emails: Arc<Mutex<VecDeque<StoredEmail>>>,
}

#[derive(Clone)]
struct StoredEmail {
    id: String,
    from: String,
    to: Vec<String>,
    subject: String,
    tag: Option<String>,
    sent_at: SystemTime,
    test: bool,
}

/// The JSON object of a request body (an empty body counts as `{}`); `None` when it is not
/// a JSON object.
fn json_body(body: &Bytes) -> Option<Map<String, Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Some(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

fn bad_body(rid: &Rid) -> Response {
    error(
        rid,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "The request body must be a JSON object",
        "Send Content-Type: application/json with a JSON object body",
    )
}

fn str_field(body: &Map<String, Value>, name: &str) -> String {
    body.get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// `to` as a list of addresses (a single string is accepted too).
fn recipients(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

impl AppState {
    fn store_email(&self, email: StoredEmail) {
        let mut emails = self.emails.lock().unwrap_or_else(|e| e.into_inner());
        if emails.len() == MAX_STORED_EMAILS {
            emails.pop_front();
        }
        emails.push_back(email);
    }

    fn new_email(
        &self,
        key: &AuthenticatedKey,
        from: String,
        to: Vec<String>,
        subject: String,
        tag: Option<String>,
    ) -> StoredEmail {
        let email = StoredEmail {
            id: new_id("msg"),
            from,
            to,
            subject,
            tag,
            sent_at: SystemTime::now(),
            test: key.is_test(),
        };
        self.store_email(email.clone());
        email
    }
}

impl StoredEmail {
    /// `data` of a send: the SDKs' `EmailSendResponse.data`, plus the contract's `test`.
    fn sent(&self) -> Value {
        json!({
            "id": self.id,
            "status": "pending",
            "to": self.to,
            "messageId": format!("<{}@demo.ark-auth.invalid>", self.id),
            "test": self.test,
        })
    }

    /// An item of `GET /v1/emails` (`EmailListResponse`).
    fn summary(&self) -> Value {
        json!({
            "id": self.id,
            "from": self.from,
            "to": self.to.first().cloned().unwrap_or_default(),
            "subject": self.subject,
            "status": "pending",
            "tag": self.tag,
            "timestamp": unix_seconds(self.sent_at),
            "timestampIso": rfc3339(self.sent_at),
            "test": self.test,
        })
    }

    /// `data` of `GET /v1/emails/{id}` (`EmailRetrieveResponse.data`).
    fn detail(&self) -> Value {
        let mut v = self.summary();
        v["scope"] = "outgoing".into();
        v["messageId"] = format!("<{}@demo.ark-auth.invalid>", self.id).into();
        v
    }
}

/// `POST /v1/emails`: `data` has the message `id` and `"test": true` for a test key (nothing
/// is sent by this stub either way).
pub async fn send_email(
    State(st): State<AppState>,
    key: AuthenticatedKey,
    rid: Rid,
    body: Bytes,
) -> Response {
    let Some(body) = json_body(&body) else {
        return bad_body(&rid);
    };
    let email = st.new_email(
        &key,
        str_field(&body, "from"),
        recipients(body.get("to")),
        str_field(&body, "subject"),
        body.get("tag").and_then(Value::as_str).map(str::to_owned),
    );
    ok(&rid, email.sent())
}

/// `POST /v1/emails/batch`: one message per email of `emails`.
pub async fn send_batch(
    State(st): State<AppState>,
    key: AuthenticatedKey,
    rid: Rid,
    body: Bytes,
) -> Response {
    let Some(body) = json_body(&body) else {
        return bad_body(&rid);
    };
    let from = str_field(&body, "from");
    let emails = body
        .get("emails")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut messages = Map::new();
    for e in &emails {
        let e = e.as_object().cloned().unwrap_or_default();
        let to = recipients(e.get("to"));
        let email = st.new_email(
            &key,
            from.clone(),
            to.clone(),
            str_field(&e, "subject"),
            e.get("tag").and_then(Value::as_str).map(str::to_owned),
        );
        for addr in to {
            messages.insert(addr, json!({ "id": email.id }));
        }
    }
    ok(
        &rid,
        json!({
            "total": emails.len(),
            "accepted": emails.len(),
            "failed": 0,
            "messages": messages,
            "test": key.is_test(),
        }),
    )
}

/// `POST /v1/emails/raw`.
pub async fn send_raw(
    State(st): State<AppState>,
    key: AuthenticatedKey,
    rid: Rid,
    body: Bytes,
) -> Response {
    let Some(body) = json_body(&body) else {
        return bad_body(&rid);
    };
    let email = st.new_email(
        &key,
        str_field(&body, "from"),
        recipients(body.get("to")),
        "(raw message)".to_owned(),
        None,
    );
    ok(&rid, email.sent())
}

/// `GET /v1/emails?page=&perPage=`: newest first, in the SDKs' page-number pagination shape
/// (`data` is the list, `page`/`perPage`/`total`/`totalPages` beside it).
pub async fn list_emails(
    State(st): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
    rid: Rid,
) -> Response {
    let param = |name: &str| {
        q.iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    let page = param("page").unwrap_or(1).max(1);
    let per_page = param("perPage")
        .or_else(|| param("per_page"))
        .unwrap_or(30)
        .clamp(1, 100);
    let emails = st.emails.lock().unwrap_or_else(|e| e.into_inner());
    let total = emails.len();
    let items: Vec<Value> = emails
        .iter()
        .rev()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(StoredEmail::summary)
        .collect();
    reply(
        &rid,
        StatusCode::OK,
        json!({
            "success": true,
            "data": items,
            "page": page,
            "perPage": per_page,
            "total": total,
            "totalPages": total.div_ceil(per_page),
            "meta": meta(&rid),
        }),
    )
}

/// `GET /v1/emails/{id}`.
pub async fn get_email(
    State(st): State<AppState>,
    JsonPath(id): JsonPath<String>,
    rid: Rid,
) -> Response {
    let found = st
        .emails
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|e| e.id == id)
        .cloned();
    match found {
        Some(email) => ok(&rid, email.detail()),
        None => error(
            &rid,
            StatusCode::NOT_FOUND,
            "not_found",
            "No email with this id",
            "Use an id returned by POST /v1/emails",
        ),
    }
}
