//! The demo's routes: one list that builds both the router and the layer's `RouteTable`.

use ark_auth::{policy::Methods, Access, Permission, RouteTable};
use axum::handler::Handler;
use axum::routing::{any, on, MethodFilter, MethodRouter};

use super::emails::{get_email, list_emails, send_batch, send_email, send_raw, AppState};
use super::handlers::{
    health, limits, platform_webhook_item, platform_webhooks, tenant_item, tenant_resource,
};
use super::metrics::metrics;

/// One route of the demo: the router's pattern, the methods it answers, what it requires,
/// and its handler. [`app_with`](super::app::app_with) builds the router from these and [`route_table`] the
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
/// Tenant-scoped keys (contract section 5) reach their own tenant's resources, send email
/// (the contract's own keys-file example is a tenant key holding `emails:send`) and read
/// `GET /v1/limits` (which is about the key itself). Reading emails and
/// `/v1/platform/webhooks` act for the whole organisation and are organisation-only: emails
/// are not kept per tenant here (the list shows every email), and the platform webhooks are
/// the organisation's own.
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
            "/metrics",
            Methods::GET,
            Access::Public,
            on_methods(Methods::GET, metrics),
        ),
        route(
            "/v1/emails",
            Methods::POST,
            Permission::EmailsSend.into(),
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
            Permission::EmailsSend.into(),
            on_methods(Methods::POST, send_batch),
        ),
        route(
            "/v1/emails/raw",
            Methods::POST,
            Permission::EmailsSend.into(),
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_route_table_builds() {
        let _ = super::route_table();
    }
}
