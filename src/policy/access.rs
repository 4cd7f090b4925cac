//! What a request requires: [`Access`], decided per request by an [`AccessPolicy`].

use http::{HeaderMap, Method, Request, Uri};

use crate::permission::{Permission, Permissions};

/// The parts of a request a policy may look at (borrowed, no copy).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RequestHead<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URI.
    pub uri: &'a Uri,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The extensions (for example a router's matched path, when the layer runs after
    /// routing).
    pub extensions: &'a http::Extensions,
}

impl<'a> RequestHead<'a> {
    /// Borrows the head of a request.
    pub fn of<B>(req: &'a Request<B>) -> Self {
        RequestHead {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
            extensions: req.extensions(),
        }
    }
}

/// What a request needs to pass the layer.
///
/// ```
/// use ark_auth::{Access, Permission};
///
/// let send = Access::require(Permission::EmailsSend);
/// let tenant_domains = Access::require(Permission::DomainsManage).for_tenant("tn_42");
/// let platform = Access::require(Permission::WebhooksManage).organisation_only();
/// let any_key = Access::any_key();
/// let health = Access::Public;
/// let docs = Access::optional();
/// # let _ = (send, tenant_domains, platform, any_key, health, docs);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No authentication at all: the request goes straight to the inner service.
    Public,
    /// A valid key holding every permission of the set, of a kind `scope` accepts.
    Key {
        /// Permissions the key must hold (empty: any valid key).
        permissions: Permissions,
        /// Which keys may act: any, an organisation-level key or one of a tenant, or only an
        /// organisation-level key.
        scope: KeyScope,
    },
    /// Authentication when the client asks for it: a request without any `Authorization`
    /// header passes anonymously (the inner service finds no
    /// [`AuthenticatedKey`](crate::AuthenticatedKey), and the `Option<AuthenticatedKey>`
    /// extractor gives `None`); a request with one is held to `permissions` and `scope`
    /// exactly as [`Access::Key`] holds it, and refused as it would be, so a mistyped key is
    /// never silently anonymous.
    ///
    /// A header with another scheme (`Authorization: Basic …`), or an empty one, is a
    /// present header: refused with 401 `authentication_required`, as on a route that needs
    /// a key. The contract puts another scheme with missing credentials, and the only
    /// request this variant lets through without a key is one without the header at all.
    Optional {
        /// Permissions a presented key must hold (empty: any valid key).
        permissions: Permissions,
        /// Which keys may act, when one is presented.
        scope: KeyScope,
    },
}

/// Which keys a request accepts, by how they are scoped (contract section 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyScope {
    /// Organisation-level and tenant-scoped keys alike: the request addresses nothing that
    /// belongs to a tenant (for example what the key itself may do).
    Any,
    /// The request addresses this tenant's resources: organisation-level keys, and keys
    /// scoped to this tenant. A key scoped to another tenant gets 403 `permission_denied`.
    Tenant(String),
    /// The request acts for the whole organisation: only organisation-level keys. A
    /// tenant-scoped key gets 403 `permission_denied`.
    Organisation,
}

impl Access {
    /// Any valid key.
    pub const fn any_key() -> Self {
        Access::Key {
            permissions: Permissions::NONE,
            scope: KeyScope::Any,
        }
    }

    /// A valid key when the request presents one, anonymous when it has no `Authorization`
    /// header at all (see [`Access::Optional`]).
    ///
    /// ```
    /// use ark_auth::{Access, ArkAuthLayer, AuthenticatedKey, MemoryKeyStore};
    /// use http::{Request, Response, StatusCode};
    /// use std::convert::Infallible;
    /// use tower::{ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let svc = ServiceBuilder::new()
    ///     .layer(ArkAuthLayer::new(MemoryKeyStore::new()).policy(Access::optional()))
    ///     .service_fn(|req: Request<String>| async move {
    ///         let who = match req.extensions().get::<AuthenticatedKey>() {
    ///             Some(key) => key.id().to_owned(),
    ///             None => "anonymous".to_owned(),
    ///         };
    ///         Ok::<_, Infallible>(Response::new(who))
    ///     });
    /// let anonymous = Request::get("/").body(String::new()).unwrap();
    /// assert_eq!(svc.clone().oneshot(anonymous).await.unwrap().status(), StatusCode::OK);
    /// let typo = Request::get("/")
    ///     .header("authorization", "Bearer ark_live_typo")
    ///     .body(String::new())
    ///     .unwrap();
    /// assert_eq!(svc.oneshot(typo).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    /// # }
    /// ```
    pub const fn optional() -> Self {
        Access::Optional {
            permissions: Permissions::NONE,
            scope: KeyScope::Any,
        }
    }

    /// A valid key holding all of `permissions`.
    pub fn require(permissions: impl Into<Permissions>) -> Self {
        Access::Key {
            permissions: permissions.into(),
            scope: KeyScope::Any,
        }
    }

    /// The request addresses `tenant`'s resources: a key scoped to another tenant is
    /// refused (with [`Access::Optional`], when one is presented). No effect on
    /// [`Access::Public`], nor on an organisation-only requirement (the stricter of the two
    /// stays).
    pub fn for_tenant(self, tenant: impl Into<String>) -> Self {
        match self {
            Access::Key {
                permissions,
                scope: KeyScope::Any | KeyScope::Tenant(_),
            } => Access::Key {
                permissions,
                scope: KeyScope::Tenant(tenant.into()),
            },
            Access::Optional {
                permissions,
                scope: KeyScope::Any | KeyScope::Tenant(_),
            } => Access::Optional {
                permissions,
                scope: KeyScope::Tenant(tenant.into()),
            },
            other => other,
        }
    }

    /// The request acts for the whole organisation: tenant-scoped keys are refused (403
    /// `permission_denied`), whatever tenant they belong to. No effect on
    /// [`Access::Public`].
    ///
    /// ```
    /// use ark_auth::{Access, Permission};
    /// use ark_auth::policy::KeyScope;
    ///
    /// let access = Access::require(Permission::WebhooksManage).organisation_only();
    /// assert!(matches!(access, Access::Key { scope: KeyScope::Organisation, .. }));
    /// ```
    pub fn organisation_only(self) -> Self {
        match self {
            Access::Public => Access::Public,
            Access::Key { permissions, .. } => Access::Key {
                permissions,
                scope: KeyScope::Organisation,
            },
            Access::Optional { permissions, .. } => Access::Optional {
                permissions,
                scope: KeyScope::Organisation,
            },
        }
    }
}

/// Decides per request what it requires.
///
/// Implemented by [`RouteTable`](crate::RouteTable) (routes declared in the router's own
/// pattern syntax, matched as the router matches them, failing closed on anything else: the
/// policy to use with a router), for closures `Fn(&RequestHead<'_>) -> Access`, and by
/// [`Access`] itself for a fixed requirement.
///
/// A closure sees the request as it is, and its pitfalls are the user's to avoid:
///
/// - `req.uri.path()` is the raw path. A router that decodes path parameters serves
///   `/v1/tenants/tn_1/%64omains` to a `{resource}` handler as `domains`, while a closure
///   comparing strings sees `%64omains`.
/// - Behind axum's `nest("/v1", …)` with the layer as a `route_layer` of the nested router,
///   the path is the one without the prefix (`/tenants/…`), so a closure written with full
///   paths matches nothing there.
/// - A permissive default arm (`_ => Access::any_key()`) turns every path the closure did
///   not foresee, including both cases above, into "any valid key".
///
/// [`RouteTable`](crate::RouteTable) avoids all three.
///
/// ```
/// use ark_auth::{Access, AccessPolicy, Permission, Permissions};
/// use ark_auth::policy::RequestHead;
/// use http::Method;
///
/// let policy = |req: &RequestHead<'_>| match (req.method, req.uri.path()) {
///     (_, "/health") => Access::Public,
///     (&Method::POST, "/v1/emails") => Access::require(Permission::EmailsSend),
///     // Fail closed on everything else.
///     _ => Access::require(Permissions::ALL).organisation_only(),
/// };
/// let req = http::Request::post("/v1/emails").body(()).unwrap();
/// assert_eq!(policy.access(&RequestHead::of(&req)), Access::require(Permission::EmailsSend));
/// ```
pub trait AccessPolicy: Clone + Send + Sync + 'static {
    /// What `req` requires.
    fn access(&self, req: &RequestHead<'_>) -> Access;
}

impl<F> AccessPolicy for F
where
    F: Fn(&RequestHead<'_>) -> Access + Clone + Send + Sync + 'static,
{
    fn access(&self, req: &RequestHead<'_>) -> Access {
        self(req)
    }
}

impl AccessPolicy for Access {
    fn access(&self, _req: &RequestHead<'_>) -> Access {
        self.clone()
    }
}

impl From<Permission> for Access {
    fn from(p: Permission) -> Self {
        Access::require(p)
    }
}

impl From<Permissions> for Access {
    fn from(p: Permissions) -> Self {
        Access::require(p)
    }
}
