//! `CachedKeyStore` invalidated by key id, on real servers (axum and plain hyper) over TCP:
//! a key revoked in the store behind the cache is served from the cache until its entry is
//! invalidated by id (directly or through a `CacheInvalidator`), then refused; other keys
//! stay cached.

mod common;

use ark_auth::cache::{CacheConfig, CachedKeyStore};
use ark_auth::{generate_key, Environment, MemoryKeyStore, Permissions};
use common::{bearer, request, send, FLAVORS};

#[tokio::test]
async fn a_revoked_key_is_refused_once_its_id_is_invalidated() {
    for flavor in FLAVORS {
        for through_handle in [false, true] {
            let (a, b) = (
                generate_key(Environment::Live).unwrap(),
                generate_key(Environment::Live).unwrap(),
            );
            let id = a.record.id().to_owned();
            let store = MemoryKeyStore::from_records([
                a.record.with_permissions(Permissions::ALL),
                b.record.with_permissions(Permissions::ALL),
            ])
            .unwrap();
            let cached = CachedKeyStore::new(store, CacheConfig::default());
            let server = common::spawn(flavor, common::own_limiter(cached.clone())).await;
            let get = |token: &str| request("GET", "/v1/limits", &[bearer(token)]);
            let (ta, tb) = (a.plaintext.expose_secret(), b.plaintext.expose_secret());

            assert_eq!(send(server.addr, &get(ta)).await.status, 200);
            assert_eq!(send(server.addr, &get(tb)).await.status, 200);
            assert!(cached.inner().revoke(&id));
            let stale = send(server.addr, &get(ta)).await;
            assert_eq!(stale.status, 200, "{flavor:?}: still cached");

            if through_handle {
                cached.invalidator().invalidate_id(&id);
            } else {
                cached.invalidate_id(&id);
            }
            let lookups = cached.inner_lookups();
            let refused = send(server.addr, &get(ta)).await;
            assert_eq!(refused.status, 401, "{flavor:?}");
            assert_eq!(refused.json()["error"]["code"], "expired_api_key");
            assert_eq!(cached.inner_lookups(), lookups + 1, "asked the store again");
            assert_eq!(send(server.addr, &get(tb)).await.status, 200);
            assert_eq!(
                cached.inner_lookups(),
                lookups + 1,
                "the other key stayed cached"
            );
        }
    }
}
