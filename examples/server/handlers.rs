//! The handlers besides the emails: health, the key's limits, the management stubs and the
//! router's fallbacks.

use std::time::{Duration, SystemTime};

use ark_auth::{AuthenticatedKey, Permission, Permissions};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::app::DEFAULT_QUOTA;
use super::reply::{error, meta, new_id, ok, reply, rfc3339, JsonPath, Rid};

pub async fn health(rid: Rid) -> Response {
    #[derive(Serialize)]
    struct Health {
        status: &'static str,
    }
    ok(&rid, Health { status: "ok" })
}

/// `GET /v1/limits`: the calling key's rate limit as the layer left it (this request
/// already counted), in the SDKs' `LimitsData` shape, plus who the key is.
pub async fn limits(key: AuthenticatedKey, rid: Rid) -> Response {
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
    // The window the layer's headers describe (of several, the one closest to refusing).
    const MINUTE: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3600);
    const DAY: Duration = Duration::from_secs(86_400);
    let period = |window: Duration| match window {
        MINUTE => "minute",
        HOUR => "hour",
        DAY => "day",
        _ => "second",
    };
    let rate_limit = match key.rate_limit_state() {
        Some(d) => RateLimit {
            limit: d.limit,
            period: period(d.window),
            remaining: Some(d.remaining),
            reset: Some(d.reset),
        },
        // The limiter failed and the layer served the request without a limit: the key's
        // shortest window.
        None => {
            let quota = key.rate_limits().map_or(DEFAULT_QUOTA, |q| q.as_slice()[0]);
            RateLimit {
                limit: quota.limit().get(),
                period: period(quota.window()),
                remaining: None,
                reset: None,
            }
        }
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

/// `/v1/tenants/{tenant}/{domains|webhooks|suppressions}`: list (GET) or create (POST).
pub async fn tenant_resource(
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
pub async fn tenant_item(
    resource: &'static str,
    method: Method,
    JsonPath((tenant, rest)): JsonPath<(String, String)>,
    rid: Rid,
) -> Response {
    stub(&rid, &method, &tenant, resource, Some(&rest))
}

/// `/v1/platform/webhooks`: list (GET) or create.
pub async fn platform_webhooks(method: Method, rid: Rid) -> Response {
    if method == Method::GET || method == Method::HEAD {
        return ok(&rid, json!([]));
    }
    stub(&rid, &method, "", "webhooks", None)
}

/// `/v1/platform/webhooks/…`.
pub async fn platform_webhook_item(
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

pub async fn not_found(rid: Rid) -> Response {
    error(
        &rid,
        StatusCode::NOT_FOUND,
        "not_found",
        "No such endpoint",
        "Check the method and path against the API reference",
    )
}

pub async fn method_not_allowed(rid: Rid) -> Response {
    error(
        &rid,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This endpoint does not support this method",
        "Check the method and path against the API reference",
    )
}
