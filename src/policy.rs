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
/// let any_key = Access::any_key();
/// let health = Access::Public;
/// # let _ = (send, tenant_domains, any_key, health);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No authentication at all: the request goes straight to the inner service.
    Public,
    /// A valid key holding every permission of the set, and, when `tenant` is given, either
    /// organisation-level or scoped to that tenant.
    Key {
        /// Permissions the key must hold (empty: any valid key).
        permissions: Permissions,
        /// The tenant whose resource the request addresses.
        tenant: Option<String>,
    },
}

impl Access {
    /// Any valid key.
    pub const fn any_key() -> Self {
        Access::Key {
            permissions: Permissions::NONE,
            tenant: None,
        }
    }

    /// A valid key holding all of `permissions`.
    pub fn require(permissions: impl Into<Permissions>) -> Self {
        Access::Key {
            permissions: permissions.into(),
            tenant: None,
        }
    }

    /// The request addresses `tenant`'s resources: a key scoped to another tenant is
    /// refused. No effect on [`Access::Public`].
    pub fn for_tenant(self, tenant: impl Into<String>) -> Self {
        match self {
            Access::Public => Access::Public,
            Access::Key { permissions, .. } => Access::Key {
                permissions,
                tenant: Some(tenant.into()),
            },
        }
    }
}

/// Decides per request what it requires.
///
/// Implemented for closures `Fn(&RequestHead<'_>) -> Access`, and by [`Access`] itself for a
/// fixed requirement.
///
/// ```
/// use ark_auth::{Access, AccessPolicy, Permission, RequestHead};
/// use http::Method;
///
/// let policy = |req: &RequestHead<'_>| match (req.method, req.uri.path()) {
///     (_, "/health") => Access::Public,
///     (&Method::POST, "/v1/emails") => Access::require(Permission::EmailsSend),
///     _ => Access::any_key(),
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
