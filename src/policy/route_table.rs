//! [`RouteTable`]: an [`AccessPolicy`] that decides by route, as the router routes.

use std::fmt;

use http::Method;

use super::access::{Access, AccessPolicy, RequestHead};
use super::route_path::{canonical_path, decode_param};
use crate::permission::Permissions;

/// A set of HTTP methods a route of a [`RouteTable`] answers.
///
/// [`Methods::GET`] also covers `HEAD` when the route declares no `HEAD` of its own, as
/// axum's `get` does. [`Methods::ANY`] covers every method the route does not declare
/// otherwise, as axum's `any`.
///
/// ```
/// use ark_auth::policy::Methods;
///
/// let read_write = Methods::GET | Methods::POST;
/// assert!(read_write.contains(Methods::POST));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Methods(u16);

impl Methods {
    /// `GET` (and `HEAD` unless declared apart).
    pub const GET: Methods = Methods(1);
    /// `HEAD`.
    pub const HEAD: Methods = Methods(1 << 1);
    /// `POST`.
    pub const POST: Methods = Methods(1 << 2);
    /// `PUT`.
    pub const PUT: Methods = Methods(1 << 3);
    /// `PATCH`.
    pub const PATCH: Methods = Methods(1 << 4);
    /// `DELETE`.
    pub const DELETE: Methods = Methods(1 << 5);
    /// `OPTIONS`.
    pub const OPTIONS: Methods = Methods(1 << 6);
    /// `TRACE`.
    pub const TRACE: Methods = Methods(1 << 7);
    /// `CONNECT`.
    pub const CONNECT: Methods = Methods(1 << 8);
    /// Every method not declared otherwise on the same pattern, extension methods included.
    pub const ANY: Methods = Methods(1 << 9);

    const NAMES: [&'static str; 10] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "ANY",
    ];

    /// Whether every method of `other` is in `self`.
    pub const fn contains(self, other: Methods) -> bool {
        self.0 & other.0 == other.0
    }

    const fn intersects(self, other: Methods) -> bool {
        self.0 & other.0 != 0
    }

    /// The bit of a request method; `None` for an extension method.
    fn of(method: &Method) -> Option<Methods> {
        let m = match *method {
            Method::GET => Methods::GET,
            Method::HEAD => Methods::HEAD,
            Method::POST => Methods::POST,
            Method::PUT => Methods::PUT,
            Method::PATCH => Methods::PATCH,
            Method::DELETE => Methods::DELETE,
            Method::OPTIONS => Methods::OPTIONS,
            Method::TRACE => Methods::TRACE,
            Method::CONNECT => Methods::CONNECT,
            _ => return None,
        };
        Some(m)
    }
}

impl std::ops::BitOr for Methods {
    type Output = Methods;
    fn bitor(self, rhs: Methods) -> Methods {
        Methods(self.0 | rhs.0)
    }
}

impl fmt::Debug for Methods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = Methods::NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| n);
        f.debug_set().entries(names).finish()
    }
}

/// Why a [`RouteTable`] could not be built: the pattern and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route table: pattern {pattern:?}: {reason}")]
pub struct RouteTableError {
    pattern: String,
    reason: String,
}

impl RouteTableError {
    fn new(pattern: &str, reason: impl Into<String>) -> Self {
        RouteTableError {
            pattern: pattern.to_owned(),
            reason: reason.into(),
        }
    }

    /// The pattern at fault.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

/// What one method set of one pattern requires.
#[derive(Debug, Clone)]
struct Rule {
    methods: Methods,
    access: Access,
    /// The parameter naming the tenant the request addresses.
    tenant: Option<String>,
}

/// An [`AccessPolicy`] from a table of routes, written in axum's pattern syntax
/// (`/v1/tenants/{tenant}/domains`, `/v1/tenants/{tenant}/domains/{*rest}`) and matched with
/// the same matcher as axum 0.8 (`matchit`), so the route the table picks is the route the
/// router serves.
///
/// Per request:
///
/// - The raw path is matched, as the router matches it. A parameter the route names as the
///   tenant ([`RouteTableBuilder::tenant_route`]) is percent-decoded as axum's `Path`
///   decodes it, so the tenant the layer checks is the one the handler sees.
/// - The path's canonical spelling (each segment percent-decoded, only `%` and `/` left
///   encoded) must land on the same route. A request whose route would change with the
///   spelling (`/v1/tenants/tn_1/%64omains`), or whose path does not decode to UTF-8, gets
///   the fallback: no spelling of a path can reach a looser rule than its plain form, even
///   behind a router that serves it through a decoded `{param}`.
/// - An unmatched path, a method the route does not declare, and the cases above get the
///   fallback, which fails closed: `Access::require(Permissions::ALL).organisation_only()`
///   (only a full-access organisation-level key passes; the router then answers 404 or
///   405) unless [`RouteTableBuilder::fallback`] says otherwise.
/// - `//`, dot segments and trailing slashes are not normalised: the router does not
///   normalise them either.
///
/// Which path: with the `axum` feature, the path of `axum::extract::OriginalUri` when the
/// request carries it (axum's `Router` inserts it), else the request's own URI path (for an
/// absolute-form target, its path). So write the table with the full paths clients send:
/// it is right with the layer on the outer router (`Router::layer`) and as a `route_layer`
/// of a router nested under a prefix (`nest("/v1", …)`), where the request's own URI has
/// lost the prefix. Without the `axum` feature the table sees the request's own URI.
///
/// Building fails ([`RouteTableError`]) on an invalid pattern, two patterns the router
/// could not tell apart, a method declared twice on one pattern, or a tenant parameter the
/// pattern lacks: a table never starts with a rule it would not apply.
///
/// ```
/// use ark_auth::{Access, AccessPolicy, Permission, RouteTable};
/// use ark_auth::policy::{Methods, RequestHead};
///
/// let table = RouteTable::builder()
///     .route("/health", Methods::GET, Access::Public)
///     .route("/v1/emails", Methods::POST, Permission::EmailsSend)
///     .tenant_route("/v1/tenants/{tenant}/domains", Methods::ANY, "tenant", Permission::DomainsManage)
///     .build()
///     .expect("valid routes");
///
/// let access = |method: &str, path: &str| {
///     let req = http::Request::builder().method(method).uri(path).body(()).unwrap();
///     table.access(&RequestHead::of(&req))
/// };
/// assert_eq!(access("HEAD", "/health"), Access::Public);
/// assert_eq!(
///     access("GET", "/v1/tenants/tn%5F1/domains"),
///     Access::require(Permission::DomainsManage).for_tenant("tn_1"),
/// );
/// // Another spelling of the route, an unknown path, a method not declared: the fallback.
/// let closed = ark_auth::RouteTable::default_fallback();
/// assert_eq!(access("GET", "/v1/tenants/tn_1/%64omains"), closed);
/// assert_eq!(access("GET", "/v1/nope"), closed);
/// assert_eq!(access("GET", "/v1/emails"), closed);
/// ```
#[derive(Clone)]
pub struct RouteTable {
    router: matchit::Router<usize>,
    /// Per route (the matcher's value), its rules.
    rules: Vec<Vec<Rule>>,
    fallback: Access,
}

impl fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteTable")
            .field("routes", &self.rules.len())
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}

/// Declares the routes of a [`RouteTable`]; see there.
#[derive(Debug, Clone)]
pub struct RouteTableBuilder {
    routes: Vec<(String, Vec<Rule>)>,
    fallback: Access,
}

impl RouteTable {
    /// An empty table to declare routes in.
    pub fn builder() -> RouteTableBuilder {
        RouteTableBuilder {
            routes: Vec::new(),
            fallback: RouteTable::default_fallback(),
        }
    }

    /// What a request matching no route gets unless the builder says otherwise: a
    /// full-access organisation-level key (`Access::require(Permissions::ALL)
    /// .organisation_only()`).
    pub fn default_fallback() -> Access {
        Access::require(Permissions::ALL).organisation_only()
    }

    /// What a request with this method and path requires (see [`RouteTable`]).
    pub fn access_for(&self, method: &Method, path: &str) -> Access {
        self.matched(method, path)
            .unwrap_or_else(|| self.fallback.clone())
    }

    fn matched(&self, method: &Method, path: &str) -> Option<Access> {
        let raw = self.router.at(path).ok()?;
        let canonical = canonical_path(path)?;
        if *self.router.at(&canonical).ok()?.value != *raw.value {
            return None;
        }
        let rules = &self.rules[*raw.value];
        let rule = rule_for(rules, method)?;
        match &rule.tenant {
            None => Some(rule.access.clone()),
            Some(name) => {
                let tenant = decode_param(raw.params.get(name)?)?;
                Some(rule.access.clone().for_tenant(tenant))
            }
        }
    }
}

/// The rule of `method` among a pattern's rules, as axum's method router picks its
/// handler: the method's own, `HEAD` falling back to `GET`, then `ANY`.
fn rule_for<'a>(rules: &'a [Rule], method: &Method) -> Option<&'a Rule> {
    let find = |m: Methods| rules.iter().find(|r| r.methods.contains(m));
    let own = Methods::of(method).and_then(|m| {
        find(m).or_else(|| (m == Methods::HEAD).then(|| find(Methods::GET)).flatten())
    });
    own.or_else(|| find(Methods::ANY))
}

/// The path of the request as the client sent it (see [`RouteTable`]).
fn request_path<'a>(req: &'a RequestHead<'a>) -> &'a str {
    #[cfg(feature = "axum")]
    if let Some(original) = req.extensions.get::<axum::extract::OriginalUri>() {
        return original.path();
    }
    req.uri.path()
}

impl AccessPolicy for RouteTable {
    fn access(&self, req: &RequestHead<'_>) -> Access {
        self.access_for(req.method, request_path(req))
    }
}

impl RouteTableBuilder {
    /// Requests to `pattern` with one of `methods` require `access`.
    pub fn route(self, pattern: &str, methods: Methods, access: impl Into<Access>) -> Self {
        self.push(pattern, methods, access.into(), None)
    }

    /// Requests to `pattern` with one of `methods` require `access`, for the tenant named by
    /// the pattern's parameter `{tenant_param}` (percent-decoded as axum's `Path` does): a
    /// key scoped to another tenant is refused.
    pub fn tenant_route(
        self,
        pattern: &str,
        methods: Methods,
        tenant_param: &str,
        access: impl Into<Access>,
    ) -> Self {
        self.push(
            pattern,
            methods,
            access.into(),
            Some(tenant_param.to_owned()),
        )
    }

    /// What requests matching no route (path or method) require, instead of
    /// [`RouteTable::default_fallback`].
    pub fn fallback(mut self, access: impl Into<Access>) -> Self {
        self.fallback = access.into();
        self
    }

    fn push(
        mut self,
        pattern: &str,
        methods: Methods,
        access: Access,
        tenant: Option<String>,
    ) -> Self {
        let rule = Rule {
            methods,
            access,
            tenant,
        };
        match self.routes.iter_mut().find(|(p, _)| p == pattern) {
            Some((_, rules)) => rules.push(rule),
            None => self.routes.push((pattern.to_owned(), vec![rule])),
        }
        self
    }

    /// The table, or the first pattern that is invalid or conflicts with another.
    pub fn build(self) -> Result<RouteTable, RouteTableError> {
        let mut router = matchit::Router::new();
        let mut rules = Vec::with_capacity(self.routes.len());
        for (pattern, pattern_rules) in self.routes {
            check_pattern(&pattern)?;
            check_rules(&pattern, &pattern_rules)?;
            router
                .insert(pattern.as_str(), rules.len())
                .map_err(|e| RouteTableError::new(&pattern, e.to_string()))?;
            rules.push(pattern_rules);
        }
        Ok(RouteTable {
            router,
            rules,
            fallback: self.fallback,
        })
    }
}

/// What axum 0.8 refuses, refused at build time too.
fn check_pattern(pattern: &str) -> Result<(), RouteTableError> {
    if !pattern.starts_with('/') {
        return Err(RouteTableError::new(pattern, "must start with '/'"));
    }
    if pattern
        .split('/')
        .any(|s| s.starts_with(':') || s.starts_with('*'))
    {
        return Err(RouteTableError::new(
            pattern,
            "a segment starts with ':' or '*'; parameters are written {name} and {*name}",
        ));
    }
    Ok(())
}

fn check_rules(pattern: &str, rules: &[Rule]) -> Result<(), RouteTableError> {
    let mut seen = Methods(0);
    for rule in rules {
        if rule.methods.0 == 0 {
            return Err(RouteTableError::new(pattern, "a rule with no method"));
        }
        if seen.intersects(rule.methods) {
            return Err(RouteTableError::new(
                pattern,
                format!("{:?} declared twice", Methods(seen.0 & rule.methods.0)),
            ));
        }
        seen = seen | rule.methods;
        if let Some(name) = &rule.tenant {
            let param = format!("{{{name}}}");
            if name.is_empty() || !pattern.split('/').any(|s| s == param) {
                return Err(RouteTableError::new(
                    pattern,
                    format!("no path segment {param} to take the tenant from"),
                ));
            }
        }
    }
    Ok(())
}
