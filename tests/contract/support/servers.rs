//! The servers under test: both flavours over the standard key set with the test app's
//! policy, and key stores that fail on purpose.

use ark_auth::{key::KeyHash, policy::RequestHead, token::Token, Access, Permission, Permissions};

use crate::common::{own_limiter, spawn_both, Bad, BadStore, Server};

use super::keys::{Keys, TestKey};

impl Keys {
    /// Both servers, each with its own layer and rate limiter over the shared store.
    pub async fn servers(&self) -> Vec<Server> {
        let store = self.store.clone();
        spawn_both(|| own_limiter(store.clone()).policy(ark_policy)).await
    }
}

/// What each route of the test app requires (a miniature of the demo server's table).
pub fn ark_policy(req: &RequestHead<'_>) -> Access {
    let segments: Vec<&str> = req.uri.path().trim_start_matches('/').split('/').collect();
    match (req.method.as_str(), segments.as_slice()) {
        ("POST", ["v1", "emails", ..]) => Access::require(Permission::EmailsSend),
        ("GET", ["v1", "emails", ..]) => Access::require(Permission::EmailsRead),
        (_, ["v1", "tenants", id, "domains", ..]) => {
            Access::require(Permission::DomainsManage).for_tenant(*id)
        }
        (_, ["v1", "tenants", id, "webhooks", ..]) => {
            Access::require(Permission::WebhooksManage).for_tenant(*id)
        }
        (_, ["v1", "read-and-send"]) => {
            Access::require(Permission::EmailsRead | Permission::EmailsSend)
        }
        (_, ["v1", "all"]) => Access::require(Permissions::ALL),
        _ => Access::any_key(),
    }
}

pub fn bad_store(keys: &Keys, poison: Option<&TestKey>, mode: Bad) -> BadStore {
    BadStore::new(
        keys.store.clone(),
        poison.map(|k| KeyHash::of(&Token::parse(&k.token).unwrap())),
        mode,
    )
}

pub const BAD_MODES: [Bad; 5] = [
    Bad::Error,
    Bad::ErrorLater,
    Bad::Hang,
    Bad::PanicNow,
    Bad::PanicInFuture,
];
