//! Why the layer answers a request itself, and the response it answers with.

use http::header::{HeaderMap, HeaderValue};
use http::{Response, Version};

use super::contract::Challenge;
use super::grpc::{grpc_response, Grpc};
use super::headers::{insert_headers, json_headers};
use super::request_id::RequestId;
use super::{json, values};
use crate::body::ArkAuthBody;
use crate::limit::RateLimitDecision;
use crate::permission::Permissions;
use crate::token::{CredentialError, Environment};

/// Why the layer answered a request itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    Credentials(CredentialError),
    UnknownKey,
    EnvironmentNotAccepted(Environment),
    Revoked,
    Expired,
    MissingPermissions {
        missing: Permissions,
        required: Permissions,
        limit: Option<RateLimitDecision>,
    },
    OtherTenant {
        required: Permissions,
        limit: Option<RateLimitDecision>,
    },
    /// A tenant-scoped key on a route for organisation-level keys only.
    OrganisationOnly {
        required: Permissions,
        limit: Option<RateLimitDecision>,
    },
    /// Over a rate limit: the refusing window's decision, and how many limits the key has.
    RateLimited(RateLimitDecision, Limits),
    Unavailable,
}

/// How many rate limits a refused key has. A 429's message names the refusing window,
/// except for the contract's own case, one limit per second, which keeps its text
/// ("N requests per window").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limits {
    One,
    Several,
}

/// Seconds a client is told to wait after a 503.
const UNAVAILABLE_RETRY_AFTER: &str = "1";

impl Rejection {
    pub(super) fn limit(&self) -> Option<&RateLimitDecision> {
        match self {
            Rejection::MissingPermissions { limit, .. }
            | Rejection::OtherTenant { limit, .. }
            | Rejection::OrganisationOnly { limit, .. } => limit.as_ref(),
            Rejection::RateLimited(d, _) => Some(d),
            _ => None,
        }
    }

    /// `Retry-After`: on a 429 and a 503.
    fn retry_after(&self) -> Option<HeaderValue> {
        match self {
            Rejection::RateLimited(d, _) => Some(values::number_value(d.retry_after_secs())),
            Rejection::Unavailable => {
                Some(const { HeaderValue::from_static(UNAVAILABLE_RETRY_AFTER) })
            }
            _ => None,
        }
    }

    fn www_authenticate(&self) -> Option<HeaderValue> {
        self.challenge().map(|c| match c {
            Challenge::Fixed(v) => v,
            Challenge::Scope(required) => values::scope_value(required),
        })
    }

    /// The response for this rejection: the JSON envelope, or the gRPC form when the caller
    /// speaks gRPC.
    pub(crate) fn into_response<B>(self, reply: Reply) -> Response<ArkAuthBody<B>> {
        let code = self.code();
        let (message, suggestion) = self.texts();
        let (www, limit, retry) = (self.www_authenticate(), self.limit(), self.retry_after());
        if let Some(grpc) = reply.grpc {
            let mut res = grpc_response(grpc, code, message);
            insert_headers(
                res.headers_mut(),
                reply.id.into_header_value(),
                www,
                limit,
                retry,
            );
            return res;
        }
        let head = values::json_head(code, message, suggestion);
        let tail = json::tail(&reply.id);
        let mut res = Response::new(ArkAuthBody::rejection(head, tail));
        *res.status_mut() = code.status();
        *res.headers_mut() = json_headers(reply.id.into_header_value(), www, limit, retry);
        res
    }
}

/// How the layer answers one request it refuses: the request's id, and whether the caller
/// speaks gRPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(super) id: RequestId,
    grpc: Option<Grpc>,
}

impl Reply {
    /// For a request of this HTTP version with these headers (the presented credentials
    /// among them, which the request id must not repeat).
    #[cfg(any(test, feature = "axum"))]
    pub(crate) fn for_request(version: Version, headers: &HeaderMap) -> Self {
        Reply::with_id(version, headers, None)
    }

    /// How the layer answers a request of this version with these headers, with the
    /// request's id when it is known already (read from the headers otherwise).
    pub(crate) fn with_id(version: Version, headers: &HeaderMap, id: Option<RequestId>) -> Self {
        Reply {
            id: id.unwrap_or_else(|| RequestId::from_headers(headers)),
            grpc: Grpc::of(version, headers),
        }
    }

    pub(crate) fn id(&self) -> &RequestId {
        &self.id
    }
}
