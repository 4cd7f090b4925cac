//! The demo server of the wire contract (section 7): a miniature of the Ark API's auth
//! surface on axum 0.8. The handlers are stubs; the authentication, permissions, tenant
//! scoping and per-key rate limits are the real `ArkAuthLayer`.
//!
//! ```sh
//! cargo run --example server                        # generates demo test keys, prints them once
//! cargo run --example server -- --keys keys.json    # keys from a file (see the keygen example)
//! cargo run --example server -- --listen 0.0.0.0:8080
//! # a fleet: keys in PostgreSQL (cached, revocations pushed by LISTEN/NOTIFY), limits in Redis
//! cargo run --example server --features postgres,redis -- \
//!   --database-url postgres://user:pw@db/ark --redis-url redis://cache:6379/ --keys keys.json
//! ```
//!
//! Then, with a key it printed:
//!
//! ```sh
//! curl -i http://127.0.0.1:3000/v1/emails -H "Authorization: Bearer ark_test_…" \
//!   -H 'content-type: application/json' \
//!   -d '{"from": "a@example.com", "to": ["b@example.com"], "subject": "hi", "text": "hello"}'
//! ```
//!
//! or point the official SDKs at it with `ARK_BASE_URL=http://127.0.0.1:3000/v1`.
//!
//! One `ArkAuthLayer` covers the whole router (`Router::layer`, so unknown paths and wrong
//! methods are authenticated too). One list of routes ([`routes`]) builds both the router
//! and the layer's `RouteTable`, so the route the layer decides on is the route the router
//! serves. Requests are logged to stderr (method, path, status and `grpc-status`, request id;
//! never a header value; a method or path that might hold a key redacted, both cut to 256
//! characters), `RUST_LOG` sets the level. Connections are served with a header-read timeout,
//! an idle timeout and a connection cap (`serve::LIMITS`).

#[path = "server/serve.rs"]
pub mod serve;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ark_auth::{
    generate_key, keys_file, Access, ArkAuthLayer, AuthenticatedKey, Environment, KeyRecord,
    KeyStore, MemoryKeyStore, MemoryRateLimiter, Methods, Permission, Permissions, Quota,
    RateLimiter, RequestId, RouteTable, X_REQUEST_ID,
};
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, on, MethodFilter, MethodRouter};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const DEFAULT_LISTEN: &str = "127.0.0.1:3000";

/// Limit of keys whose record sets none (the contract's default, 10 per second).
const DEFAULT_QUOTA: Quota = Quota::DEFAULT;

/// Emails kept for `GET /v1/emails` and `GET /v1/emails/{id}` (oldest dropped first).
const MAX_STORED_EMAILS: usize = 1000;

const USAGE: &str = "\
Demo server for ark-auth: the Ark API's auth surface with stub handlers.

Usage: cargo run --example server -- [--listen ADDR] [--keys FILE]
           [--database-url URL] [--redis-url URL]

Options:
  --listen ADDR  address to listen on (default 127.0.0.1:3000; port 0 picks a free port,
                 the address actually bound is printed as \"listening on http://ADDR\")
  --keys FILE    load API keys from a JSON keys file (see the keygen example):
                 {\"keys\": [{\"key\": \"ark_test_…\", \"name\": \"ci\", \"permissions\": [\"emails:send\"],
                   \"tenant\": \"tn_42\", \"expires_at\": \"2027-01-01T00:00:00Z\", \"revoked\": false,
                   \"rate_limit\": 10}]}
                 A bad file stops the server with a message naming the entry.
                 Without --keys, demo test keys are generated and printed once.
  --database-url URL  keep keys in PostgreSQL (or set DATABASE_URL), e.g.
                 postgres://user:password@host:5432/db: the schema is applied, --keys FILE
                 (or the demo keys) are imported into it (hashes only), lookups go through a
                 verification cache that a LISTEN/NOTIFY listener keeps in step with the
                 table (a revoke reaches every instance within a second).
                 Needs the example built with --features postgres.
  --redis-url URL  count rate limits in Redis (or set REDIS_URL), e.g. redis://host:6379/:
                 every instance sharing it enforces each key's limit together. When Redis is
                 down, requests are served without limits (logged). Needs --features redis.
  -h, --help     print this help

Routes (JSON; Authorization: Bearer <key>):
  GET  /health                                  no authentication
  POST /v1/emails, /v1/emails/batch, /v1/emails/raw     emails:send (organisation keys)
  GET  /v1/emails, /v1/emails/{id}              emails:read (organisation keys)
  GET  /v1/limits                               any valid key
  /v1/tenants/{id}/domains…                     domains:manage
  /v1/tenants/{id}/webhooks…                    webhooks:manage
  /v1/tenants/{id}/suppressions…                suppressions:manage
  /v1/platform/webhooks…                        webhooks:manage (organisation keys)
  anything else                                 a full-access organisation key, then 404/405
Tenant-scoped keys: their own tenant's resources and /v1/limits only.
";

#[derive(Debug, PartialEq, Eq)]
enum Cli {
    Help,
    Run {
        listen: String,
        keys: Option<PathBuf>,
        database_url: Option<String>,
        redis_url: Option<String>,
    },
}

/// Shows a command-line argument in an error, unless it looks like it holds a key.
fn shown(arg: &str) -> String {
    if arg.contains("ark_live_") || arg.contains("ark_test_") {
        "<an argument that looks like an API key>".to_owned()
    } else {
        format!("{arg:?}")
    }
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Cli, String> {
    let mut listen = DEFAULT_LISTEN.to_owned();
    let mut keys = None;
    let mut database_url = None;
    let mut redis_url = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs {what}"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Cli::Help),
            "--listen" => listen = value("an address, e.g. 127.0.0.1:3000")?,
            "--keys" => keys = Some(PathBuf::from(value("a file")?)),
            "--database-url" => database_url = Some(value("a postgres:// URL")?),
            "--redis-url" => redis_url = Some(value("a redis:// URL")?),
            _ => return Err(format!("unknown argument {}", shown(&arg))),
        }
    }
    Ok(Cli::Run {
        listen,
        keys,
        database_url,
        redis_url,
    })
}

/// What handlers share: the stub emails.
#[derive(Clone)]
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

/// The whole demo application: routes, the auth layer, the request log.
pub fn app(store: MemoryKeyStore) -> Router {
    app_with(store, MemoryRateLimiter::new())
}

/// The demo application on any key store and rate limiter (PostgreSQL and Redis for a
/// fleet).
pub fn app_with<K, L>(store: K, limiter: L) -> Router
where
    K: KeyStore + Clone,
    L: RateLimiter + Clone,
{
    let state = AppState {
        emails: Arc::default(),
    };
    let auth = ArkAuthLayer::new(store)
        .rate_limiter(limiter)
        .default_quota(DEFAULT_QUOTA)
        .policy(route_table());
    routes()
        .into_iter()
        .fold(Router::new(), |router, r| {
            router.route(r.pattern, r.handler)
        })
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        // One layer for everything, routes and fallbacks alike; the policy decides per request.
        .layer(auth)
        .layer(axum::middleware::from_fn(log_request))
}

/// One route of the demo: the router's pattern, the methods it answers, what it requires,
/// and its handler. [`app_with`] builds the router from these and [`route_table`] the
/// layer's policy, so both always agree on every pattern and method.
pub struct DemoRoute {
    /// The pattern, in axum's syntax.
    pub pattern: &'static str,
    /// The methods it answers ([`Methods::GET`] with HEAD, as axum's `get`).
    pub methods: Methods,
    /// What a request requires.
    pub access: Access,
    /// The path parameter naming the tenant, on tenant resources.
    pub tenant_param: Option<&'static str>,
    /// The handler.
    pub handler: MethodRouter<AppState>,
}

/// The resources of a tenant: name, list and item patterns, what they require.
pub const TENANT_RESOURCES: [(&str, &str, &str, Permission); 3] = [
    (
        "domains",
        "/v1/tenants/{tenant}/domains",
        "/v1/tenants/{tenant}/domains/{*rest}",
        Permission::DomainsManage,
    ),
    (
        "webhooks",
        "/v1/tenants/{tenant}/webhooks",
        "/v1/tenants/{tenant}/webhooks/{*rest}",
        Permission::WebhooksManage,
    ),
    (
        "suppressions",
        "/v1/tenants/{tenant}/suppressions",
        "/v1/tenants/{tenant}/suppressions/{*rest}",
        Permission::SuppressionsManage,
    ),
];

/// The routes of contract section 7.
///
/// Tenant-scoped keys (contract section 5) reach their own tenant's resources and
/// `GET /v1/limits` (which is about the key itself). Every other route acts for the whole
/// organisation and is organisation-only: emails are not kept per tenant here (the list
/// shows every email), and `/v1/platform/webhooks` configures the organisation's own
/// webhooks.
pub fn routes() -> Vec<DemoRoute> {
    let org = |p: Permission| Access::require(p).organisation_only();
    let route = |pattern, methods, access, handler| DemoRoute {
        pattern,
        methods,
        access,
        tenant_param: None,
        handler,
    };
    let mut routes = vec![
        route(
            "/health",
            Methods::GET,
            Access::Public,
            on_methods(Methods::GET, health),
        ),
        route(
            "/v1/emails",
            Methods::POST,
            org(Permission::EmailsSend),
            on_methods(Methods::POST, send_email),
        ),
        route(
            "/v1/emails",
            Methods::GET,
            org(Permission::EmailsRead),
            on_methods(Methods::GET, list_emails),
        ),
        route(
            "/v1/emails/batch",
            Methods::POST,
            org(Permission::EmailsSend),
            on_methods(Methods::POST, send_batch),
        ),
        route(
            "/v1/emails/raw",
            Methods::POST,
            org(Permission::EmailsSend),
            on_methods(Methods::POST, send_raw),
        ),
        route(
            "/v1/emails/{id}",
            Methods::GET,
            org(Permission::EmailsRead),
            on_methods(Methods::GET, get_email),
        ),
        route(
            "/v1/limits",
            Methods::GET,
            Access::any_key(),
            on_methods(Methods::GET, limits),
        ),
        route(
            "/v1/platform/webhooks",
            Methods::ANY,
            org(Permission::WebhooksManage),
            on_methods(Methods::ANY, platform_webhooks),
        ),
        route(
            "/v1/platform/webhooks/{*rest}",
            Methods::ANY,
            org(Permission::WebhooksManage),
            on_methods(Methods::ANY, platform_webhook_item),
        ),
    ];
    for (resource, list, item, permission) in TENANT_RESOURCES {
        routes.push(DemoRoute {
            pattern: list,
            methods: Methods::ANY,
            access: Access::require(permission),
            tenant_param: Some("tenant"),
            handler: any(move |method, path, rid| tenant_resource(resource, method, path, rid)),
        });
        routes.push(DemoRoute {
            pattern: item,
            methods: Methods::ANY,
            access: Access::require(permission),
            tenant_param: Some("tenant"),
            handler: any(move |method, path, rid| tenant_item(resource, method, path, rid)),
        });
    }
    routes
}

/// The layer's policy: [`routes`] as a `RouteTable`. Anything else (unknown path or
/// method) needs a full-access organisation key, then gets the router's 404 or 405.
pub fn route_table() -> RouteTable {
    routes()
        .into_iter()
        .fold(RouteTable::builder(), |table, r| match r.tenant_param {
            Some(param) => table.tenant_route(r.pattern, r.methods, param, r.access),
            None => table.route(r.pattern, r.methods, r.access),
        })
        .build()
        .expect("the demo's routes are valid patterns")
}

/// `handler` on exactly `methods` (GET with HEAD, as `get`; `ANY` as `any`).
pub fn on_methods<H, T, S>(methods: Methods, handler: H) -> MethodRouter<S>
where
    H: Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    if methods == Methods::ANY {
        return any(handler);
    }
    let filters = [
        (Methods::GET, MethodFilter::GET),
        (Methods::HEAD, MethodFilter::HEAD),
        (Methods::POST, MethodFilter::POST),
        (Methods::PUT, MethodFilter::PUT),
        (Methods::PATCH, MethodFilter::PATCH),
        (Methods::DELETE, MethodFilter::DELETE),
        (Methods::OPTIONS, MethodFilter::OPTIONS),
        (Methods::TRACE, MethodFilter::TRACE),
        (Methods::CONNECT, MethodFilter::CONNECT),
    ];
    let filter = filters
        .iter()
        .filter(|(m, _)| methods.contains(*m))
        .map(|(_, f)| *f)
        .reduce(MethodFilter::or)
        .expect("a demo route has at least one method besides ANY");
    on(filter, handler)
}

/// The request id of a request (its valid `X-Request-Id`, or a fresh `req_` id).
struct Rid(RequestId);

impl<S: Send + Sync> FromRequestParts<S> for Rid {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(Rid(RequestId::from_headers(&parts.headers)))
    }
}

/// `axum::extract::Path` whose rejection (say, a segment that is not UTF-8 once decoded) is
/// the JSON error envelope rather than plain text.
struct JsonPath<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for JsonPath<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(t)) => Ok(JsonPath(t)),
            Err(_) => Err(error(
                &Rid(RequestId::from_headers(&parts.headers)),
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The request path is not valid",
                "Percent-encode path segments as UTF-8",
            )),
        }
    }
}

/// A JSON response carrying the request id in `X-Request-Id`.
fn reply(rid: &Rid, status: StatusCode, body: impl Serialize) -> Response {
    let mut res = (status, Json(body)).into_response();
    res.headers_mut()
        .insert(X_REQUEST_ID.clone(), rid.0.header_value());
    res
}

fn meta(rid: &Rid) -> Value {
    json!({ "requestId": rid.0.as_str() })
}

/// `{"success": true, "data": …, "meta": {"requestId": …}}`, serialized straight from `data`
/// (a typed value or a `json!` one).
fn ok(rid: &Rid, data: impl Serialize) -> Response {
    #[derive(Serialize)]
    struct Ok<'a, T> {
        success: bool,
        data: T,
        meta: Meta<'a>,
    }
    #[derive(Serialize)]
    struct Meta<'a> {
        #[serde(rename = "requestId")]
        request_id: &'a str,
    }
    let meta = Meta {
        request_id: rid.0.as_str(),
    };
    reply(
        rid,
        StatusCode::OK,
        Ok {
            success: true,
            data,
            meta,
        },
    )
}

/// The contract's error envelope, for the errors the handlers themselves give.
fn error(rid: &Rid, status: StatusCode, code: &str, message: &str, suggestion: &str) -> Response {
    reply(
        rid,
        status,
        json!({
            "success": false,
            "error": { "code": code, "message": message, "suggestion": suggestion },
            "meta": meta(rid),
        }),
    )
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

fn rfc3339(t: SystemTime) -> String {
    OffsetDateTime::from(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{:016x}", fastrand::u64(..))
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

async fn health(rid: Rid) -> Response {
    #[derive(Serialize)]
    struct Health {
        status: &'static str,
    }
    ok(&rid, Health { status: "ok" })
}

/// `POST /v1/emails`: `data` has the message `id` and `"test": true` for a test key (nothing
/// is sent by this stub either way).
async fn send_email(
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
async fn send_batch(
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
async fn send_raw(
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
async fn list_emails(
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
async fn get_email(
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

/// `GET /v1/limits`: the calling key's rate limit as the layer left it (this request
/// already counted), in the SDKs' `LimitsData` shape, plus who the key is.
async fn limits(key: AuthenticatedKey, rid: Rid) -> Response {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Limits<'a> {
        rate_limit: RateLimit,
        key: Key<'a>,
    }
    #[derive(Serialize)]
    struct RateLimit {
        limit: u32,
        period: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        remaining: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reset: Option<u64>,
    }
    #[derive(Serialize)]
    struct Key<'a> {
        id: &'a str,
        name: &'a str,
        environment: &'static str,
        permissions: Names,
        tenant: Option<&'a str>,
    }
    let rate_limit = match key.rate_limit_state() {
        Some(d) => RateLimit {
            limit: d.limit,
            period: "second",
            remaining: Some(d.remaining),
            reset: Some(d.reset),
        },
        // The limiter failed and the layer served the request without a limit.
        None => RateLimit {
            limit: key
                .rate_limit()
                .map_or(DEFAULT_QUOTA, Quota::per_second)
                .limit()
                .get(),
            period: "second",
            remaining: None,
            reset: None,
        },
    };
    ok(
        &rid,
        Limits {
            rate_limit,
            key: Key {
                id: key.id(),
                name: key.name(),
                environment: key.environment().as_str(),
                permissions: Names(key.permissions()),
                tenant: key.tenant(),
            },
        },
    )
}

/// Permission wire names as a JSON array.
struct Names(Permissions);

impl Serialize for Names {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(Permission::as_str))
    }
}

fn permission_names(p: Permissions) -> Vec<&'static str> {
    p.iter().map(Permission::as_str).collect()
}

/// `/v1/tenants/{tenant}/{domains|webhooks|suppressions}`: list (GET) or create (POST).
async fn tenant_resource(
    resource: &'static str,
    method: Method,
    JsonPath(tenant): JsonPath<String>,
    rid: Rid,
) -> Response {
    if method == Method::GET || method == Method::HEAD {
        return match resource {
            // Page-number pagination, like GET /v1/emails.
            "suppressions" => reply(
                &rid,
                StatusCode::OK,
                json!({
                    "success": true, "data": [], "page": 1, "perPage": 30,
                    "total": 0, "totalPages": 0, "meta": meta(&rid),
                }),
            ),
            _ => {
                let mut data = Map::new();
                data.insert(resource.into(), json!([]));
                data.insert("tenantId".into(), tenant.into());
                ok(&rid, Value::Object(data))
            }
        };
    }
    stub(&rid, &method, &tenant, resource, None)
}

/// `/v1/tenants/{tenant}/{resource}/…`: one item of a tenant resource.
async fn tenant_item(
    resource: &'static str,
    method: Method,
    JsonPath((tenant, rest)): JsonPath<(String, String)>,
    rid: Rid,
) -> Response {
    stub(&rid, &method, &tenant, resource, Some(&rest))
}

/// `/v1/platform/webhooks`: list (GET) or create.
async fn platform_webhooks(method: Method, rid: Rid) -> Response {
    if method == Method::GET || method == Method::HEAD {
        return ok(&rid, json!([]));
    }
    stub(&rid, &method, "", "webhooks", None)
}

/// `/v1/platform/webhooks/…`.
async fn platform_webhook_item(
    method: Method,
    JsonPath(rest): JsonPath<String>,
    rid: Rid,
) -> Response {
    stub(&rid, &method, "", "webhooks", Some(&rest))
}

/// What the stubs of the management routes answer: what was asked, and that it is a stub.
fn stub(rid: &Rid, method: &Method, tenant: &str, resource: &str, item: Option<&str>) -> Response {
    let mut data = json!({
        "stub": true,
        "resource": resource,
        "method": method.as_str(),
        "createdAt": rfc3339(SystemTime::now()),
    });
    if !tenant.is_empty() {
        data["tenantId"] = tenant.into();
    }
    match item {
        Some(item) => {
            data["id"] = item.split('/').next().unwrap_or_default().into();
            if method == Method::DELETE {
                data["message"] = format!("{resource} item deleted (stub)").into();
            }
        }
        None => data["id"] = new_id(resource.trim_end_matches('s')).into(),
    }
    ok(rid, data)
}

async fn not_found(rid: Rid) -> Response {
    error(
        &rid,
        StatusCode::NOT_FOUND,
        "not_found",
        "No such endpoint",
        "Check the method and path against the API reference",
    )
}

async fn method_not_allowed(rid: Rid) -> Response {
    error(
        &rid,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This endpoint does not support this method",
        "Check the method and path against the API reference",
    )
}

/// Logs method, path, the outcome (status, and `grpc-status` for the gRPC form), request id
/// and the SDKs' retry count; never a header's value otherwise. What comes from the request
/// is checked first (see [`logged_method`] and [`logged_path`]); the request id is the one
/// the response carries, which never repeats the presented key.
async fn log_request(req: Request, next: Next) -> Response {
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
        Some(n) => tracing::info!("{method} {path} -> {outcome} request_id={rid} retry={n}"),
        None => tracing::info!("{method} {path} -> {outcome} request_id={rid}"),
    }
    res
}

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
/// presented credentials (`ark_auth::repeats_credentials`), or a run of 16 letters and
/// digits (as long as the shortest key body).
fn might_hold_a_key(headers: &axum::http::HeaderMap, text: &str) -> bool {
    let longest_run = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .map(str::len)
        .max()
        .unwrap_or(0);
    ark_auth::repeats_credentials(headers, text.as_bytes()) || longest_run >= ark_auth::MIN_BODY_LEN
}

/// The method as logged: a standard one as is; any other redacted when it might hold a key
/// (`curl -X "$KEY"`), cut to [`LOGGED_MAX`] otherwise.
fn logged_method(method: &Method, headers: &axum::http::HeaderMap) -> String {
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
fn logged_path(path: &str, headers: &axum::http::HeaderMap) -> String {
    let mut text = path.to_owned();
    for _ in 0..4 {
        if ark_auth::repeats_credentials(headers, text.as_bytes()) {
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
    if ark_auth::repeats_credentials(headers, text.as_bytes()) {
        return "<path redacted>".to_owned();
    }
    capped(path)
}

fn describe(record: &KeyRecord) -> String {
    let mut s = if record.permissions() == Permissions::ALL {
        "full access (*)".to_owned()
    } else if record.permissions().is_empty() {
        "no permissions (GET /v1/limits only)".to_owned()
    } else {
        permission_names(record.permissions()).join(", ")
    };
    if let Some(t) = record.tenant() {
        s.push_str(&format!("; tenant {t} only"));
    }
    if let Some(n) = record.rate_limit() {
        s.push_str(&format!("; {n} requests/s"));
    }
    if record.is_revoked() {
        s.push_str("; revoked");
    }
    if let Some(at) = record.expires_at() {
        s.push_str(&format!("; expires {}", rfc3339(at)));
    }
    s
}

/// The keys of the demo when no keys file is given: generated now, printed once.
/// `lifetime` says how long they work: while this server runs, or as long as they stay in
/// the database.
fn demo_records(lifetime: &str) -> Result<Vec<KeyRecord>, Box<dyn std::error::Error>> {
    let specs: [(&str, Permissions, Option<&str>); 3] = [
        ("demo-full", Permissions::ALL, None),
        ("demo-send", Permission::EmailsSend.into(), None),
        (
            "demo-tenant",
            Permission::DomainsManage.into(),
            Some("tn_42"),
        ),
    ];
    let mut records = Vec::new();
    println!("Demo test keys (generated now, shown once, valid {lifetime}):");
    for (name, permissions, tenant) in specs {
        let key = generate_key(Environment::Test)?;
        let mut record = key.record.with_name(name).with_permissions(permissions);
        if let Some(t) = tenant {
            record = record.with_tenant(t);
        }
        println!(
            "  {}  {name}: {}",
            key.plaintext.expose_secret(),
            describe(&record)
        );
        records.push(record);
    }
    println!();
    Ok(records)
}

pub fn load_keys(path: &std::path::Path) -> Result<MemoryKeyStore, String> {
    let records = load_records(path)?;
    MemoryKeyStore::from_records(records).map_err(|e| format!("keys file: {e}"))
}

/// The records of a keys file, listed (hashes and names only).
fn load_records(path: &std::path::Path) -> Result<Vec<KeyRecord>, String> {
    let records = keys_file::load(path).map_err(|e| e.to_string())?;
    println!("Loaded {} key(s) from {}:", records.len(), path.display());
    for r in &records {
        let name = if r.name().is_empty() {
            "(no name)"
        } else {
            r.name()
        };
        println!(
            "  {} {name} [{}]: {}",
            r.id(),
            r.environment().as_str(),
            describe(r)
        );
    }
    println!();
    // The same checks as the in-memory store (no duplicate id or hash), before any import.
    MemoryKeyStore::from_records(records.clone()).map_err(|e| format!("keys file: {e}"))?;
    Ok(records)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// The key store of a demo run: in memory, or PostgreSQL behind the verification cache.
#[derive(Clone)]
enum DemoStore {
    Memory(MemoryKeyStore),
    #[cfg(feature = "postgres")]
    Postgres(ark_auth::cache::CachedKeyStore<ark_auth::postgres::PostgresKeyStore>),
}

impl KeyStore for DemoStore {
    type Future = ark_auth::BoxLookup;

    fn lookup(
        &self,
        hash: &ark_auth::KeyHash,
    ) -> ark_auth::Answer<ark_auth::LookupResult, ark_auth::BoxLookup> {
        use ark_auth::Answer;
        match self {
            DemoStore::Memory(s) => match s.lookup(hash) {
                Answer::Now(r) => Answer::Now(r),
                Answer::Later(f) => Answer::Later(Box::pin(f)),
            },
            #[cfg(feature = "postgres")]
            DemoStore::Postgres(s) => s.lookup(hash),
        }
    }
}

/// The rate limiter of a demo run: in memory, or Redis shared by the fleet.
#[derive(Clone)]
enum DemoLimiter {
    Memory(MemoryRateLimiter),
    #[cfg(feature = "redis")]
    Redis(ark_auth::redis::RedisRateLimiter),
}

impl RateLimiter for DemoLimiter {
    type Future = ark_auth::BoxLimit;

    fn acquire(
        &self,
        key: &KeyRecord,
        quota: Quota,
    ) -> ark_auth::Answer<ark_auth::LimitResult, ark_auth::BoxLimit> {
        match self {
            DemoLimiter::Memory(l) => boxed(l.acquire(key, quota)),
            #[cfg(feature = "redis")]
            DemoLimiter::Redis(l) => boxed(l.acquire(key, quota)),
        }
    }

    fn peek(
        &self,
        key: &KeyRecord,
        quota: Quota,
    ) -> ark_auth::Answer<ark_auth::LimitResult, ark_auth::BoxLimit> {
        match self {
            DemoLimiter::Memory(l) => boxed(l.peek(key, quota)),
            #[cfg(feature = "redis")]
            DemoLimiter::Redis(l) => boxed(l.peek(key, quota)),
        }
    }
}

fn boxed<F>(
    answer: ark_auth::Answer<ark_auth::LimitResult, F>,
) -> ark_auth::Answer<ark_auth::LimitResult, ark_auth::BoxLimit>
where
    F: std::future::Future<Output = ark_auth::LimitResult> + Send + 'static,
{
    match answer {
        ark_auth::Answer::Now(r) => ark_auth::Answer::Now(r),
        ark_auth::Answer::Later(f) => ark_auth::Answer::Later(Box::pin(f)),
    }
}

/// An address from the environment, when set and not empty.
fn env_url(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

/// What keeps a PostgreSQL-backed run in step with the table (dropped at exit).
#[cfg(feature = "postgres")]
type Listener = ark_auth::postgres::RevocationListener;
#[cfg(not(feature = "postgres"))]
type Listener = ();

/// PostgreSQL: apply the schema, import `records`, cache, listen for revocations.
#[cfg(feature = "postgres")]
async fn postgres_store(
    url: &str,
    records: Vec<KeyRecord>,
) -> Result<(DemoStore, Option<Listener>), String> {
    use ark_auth::cache::CacheConfig;
    use ark_auth::postgres::PostgresKeyStore;
    let store = PostgresKeyStore::connect(url)
        .await
        .map_err(|e| format!("--database-url: {e}"))?;
    store
        .migrate()
        .await
        .map_err(|e| format!("PostgreSQL: cannot apply the schema: {e}"))?;
    let n = store
        .import(records)
        .await
        .map_err(|e| format!("PostgreSQL: cannot import the keys: {e}"))?;
    let total = store.list().await.map(|l| l.len()).unwrap_or(n);
    println!("key store: PostgreSQL ({n} key(s) imported, {total} in the table); cached, revocations by LISTEN/NOTIFY");
    let cached = store.clone().cached(CacheConfig::default());
    let listener = store.listen(cached.invalidator());
    Ok((DemoStore::Postgres(cached), listener))
}

#[cfg(not(feature = "postgres"))]
async fn postgres_store(
    _url: &str,
    _records: Vec<KeyRecord>,
) -> Result<(DemoStore, Option<Listener>), String> {
    Err("--database-url needs the example built with --features postgres".into())
}

/// Redis: connect now; when Redis is unreachable (but the URL valid), start anyway and serve
/// without limits until it is back, as the layer does for any limiter failure (logged).
#[cfg(feature = "redis")]
async fn redis_limiter(url: &str) -> Result<DemoLimiter, String> {
    use ark_auth::redis::RedisRateLimiter;
    let limiter = match RedisRateLimiter::connect(url).await {
        Ok(l) => l,
        Err(e) => {
            let lazy =
                RedisRateLimiter::connect_lazy(url).map_err(|_| format!("--redis-url: {e}"))?;
            eprintln!(
                "warning: Redis unreachable ({e}); serving without rate limits until it is back"
            );
            lazy
        }
    };
    println!("rate limits: Redis (shared by every instance using it)");
    Ok(DemoLimiter::Redis(limiter))
}

#[cfg(not(feature = "redis"))]
async fn redis_limiter(_url: &str) -> Result<DemoLimiter, String> {
    Err("--redis-url needs the example built with --features redis".into())
}

/// The router of a run on real services (either flag or variable set).
async fn fleet_app(
    records: Vec<KeyRecord>,
    database_url: Option<&str>,
    redis_url: Option<&str>,
) -> Result<(Router, Option<Listener>), String> {
    let (store, listener) = match database_url {
        Some(url) => postgres_store(url, records).await?,
        None => (
            DemoStore::Memory(
                MemoryKeyStore::from_records(records).map_err(|e| format!("keys file: {e}"))?,
            ),
            None,
        ),
    };
    let limiter = match redis_url {
        Some(url) => redis_limiter(url).await?,
        None => DemoLimiter::Memory(MemoryRateLimiter::new()),
    };
    Ok((app_with(store, limiter), listener))
}

#[tokio::main]
async fn main() -> ExitCode {
    let (listen, keys, database_url, redis_url) = match parse_args(std::env::args().skip(1)) {
        Ok(Cli::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Cli::Run {
            listen,
            keys,
            database_url,
            redis_url,
        }) => (listen, keys, database_url, redis_url),
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let database_url = database_url.or_else(|| env_url("DATABASE_URL"));
    let redis_url = redis_url.or_else(|| env_url("REDIS_URL"));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    // All or nothing: a bad keys file (or an unreachable database) stops here, before
    // anything listens.
    let records = match &keys {
        Some(path) => load_records(path),
        None => demo_records(if database_url.is_some() {
            "until removed from the database, where only their hashes are stored"
        } else {
            "while this server runs"
        })
        .map_err(|e| format!("cannot generate demo keys: {e}")),
    };
    let routed = match records {
        Err(e) => Err(e),
        // In memory, as ever.
        Ok(records) if database_url.is_none() && redis_url.is_none() => {
            MemoryKeyStore::from_records(records)
                .map(|store| (app(store), None))
                .map_err(|e| format!("keys file: {e}"))
        }
        Ok(records) => fleet_app(records, database_url.as_deref(), redis_url.as_deref()).await,
    };
    let (router, _listener) = match routed {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };

    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", shown(&listen));
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .map_or_else(|_| listen.clone(), |a| a.to_string());
    println!("listening on http://{addr}");
    println!("  try: curl -s http://{addr}/v1/limits -H \"Authorization: Bearer <key>\"");
    println!("  SDKs: ARK_BASE_URL=http://{addr}/v1 ARK_API_KEY=<key>");
    serve::serve(listener, router, serve::LIMITS, shutdown_signal()).await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args() {
        let p = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()));
        assert_eq!(
            p(&[]),
            Ok(Cli::Run {
                listen: DEFAULT_LISTEN.into(),
                keys: None,
                database_url: None,
                redis_url: None,
            })
        );
        assert_eq!(
            p(&["--listen", "0.0.0.0:1", "--keys=k.json"]),
            Ok(Cli::Run {
                listen: "0.0.0.0:1".into(),
                keys: Some("k.json".into()),
                database_url: None,
                redis_url: None,
            })
        );
        assert_eq!(p(&["--help"]), Ok(Cli::Help));
        assert_eq!(
            p(&[
                "--database-url",
                "postgres://db/ark",
                "--redis-url=redis://r/"
            ]),
            Ok(Cli::Run {
                listen: DEFAULT_LISTEN.into(),
                keys: None,
                database_url: Some("postgres://db/ark".into()),
                redis_url: Some("redis://r/".into()),
            })
        );
        assert!(p(&["--listen"]).is_err());
        let e = p(&["ark_test_0123456789abcdefXYZ"]).unwrap_err();
        assert!(!e.contains("0123456789abcdef"), "{e}");
    }

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

    #[test]
    fn the_route_table_builds() {
        let _ = route_table();
    }
}
