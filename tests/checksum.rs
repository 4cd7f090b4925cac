//! Keys that prove themselves, on real servers (axum and plain hyper) over TCP.
//!
//! - with `require_checksum(true)` a well-formed token whose checksum is wrong is refused
//!   before the store is asked, with the same status, headers and body as an unknown key;
//!   generated keys are served as before;
//! - by default (off) such a token reaches the store, and an imported key without a
//!   checksum authenticates.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ark_auth::{
    generate_key,
    key::{has_valid_checksum, KeyHash, KeyRecord},
    store::{Answer, KeyStore, LookupResult},
    token::Token,
    Environment, MemoryKeyStore, Permissions,
};
use common::{bearer, request, send, RawResponse, FLAVORS};

/// A memory store that counts its lookups.
#[derive(Clone)]
struct Counting {
    inner: MemoryKeyStore,
    lookups: Arc<AtomicUsize>,
}

impl KeyStore for Counting {
    type Future = <MemoryKeyStore as KeyStore>::Future;
    fn lookup(&self, hash: &KeyHash) -> Answer<LookupResult, Self::Future> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.lookup(hash)
    }
}

/// A key minted elsewhere: well-formed, no checksum of ours.
const IMPORTED: &str = "ark_live_importedFromAnotherSystem0123456789";

fn store() -> (Counting, String) {
    let key = generate_key(Environment::Live).unwrap();
    let imported = Token::parse(IMPORTED).unwrap();
    assert!(!has_valid_checksum(IMPORTED));
    let inner = MemoryKeyStore::from_records([
        key.record.with_permissions(Permissions::ALL),
        KeyRecord::new("key_imported", KeyHash::of(&imported), Environment::Live)
            .with_permissions(Permissions::ALL),
    ])
    .unwrap();
    let counting = Counting {
        inner,
        lookups: Arc::new(AtomicUsize::new(0)),
    };
    (counting, key.plaintext.expose_secret().to_owned())
}

/// The same token with its last character changed: CRC32 catches every such change.
fn mistyped(token: &str) -> String {
    let mut t = token.to_owned();
    let last = if t.ends_with('x') { "y" } else { "x" };
    t.replace_range(t.len() - 1.., last);
    assert!(!has_valid_checksum(&t));
    t
}

fn get(token: &str) -> Vec<u8> {
    request(
        "GET",
        "/v1/limits",
        &[bearer(token), b"X-Request-Id: same-id".to_vec()],
    )
}

/// Everything a client sees but the `Date` header: status, header lines, body.
fn seen(r: &RawResponse) -> (u16, Vec<String>, Vec<u8>) {
    let headers = r
        .headers_text()
        .into_iter()
        .filter(|line| !line.starts_with("date:"))
        .collect();
    (r.status, headers, r.body.clone())
}

#[tokio::test]
async fn wrong_checksum_is_refused_before_the_store_like_an_unknown_key() {
    for flavor in FLAVORS {
        let (store, token) = store();
        let lookups = store.lookups.clone();
        let server = common::spawn(flavor, common::own_limiter(store).require_checksum(true)).await;

        let ok = send(server.addr, &get(&token)).await;
        assert_eq!(ok.status, 200, "{flavor:?}: a generated key is served");
        assert_eq!(lookups.swap(0, Ordering::SeqCst), 1);

        // Unknown but with a valid checksum: the store is asked and says no.
        let unknown = generate_key(Environment::Live).unwrap();
        let unknown = send(server.addr, &get(unknown.plaintext.expose_secret())).await;
        assert_eq!(lookups.swap(0, Ordering::SeqCst), 1);

        for bad in [mistyped(&token), IMPORTED.to_owned()] {
            let refused = send(server.addr, &get(&bad)).await;
            assert_eq!(refused.status, 401, "{flavor:?}");
            assert_eq!(refused.json()["error"]["code"], "invalid_api_key");
            assert_eq!(
                seen(&refused),
                seen(&unknown),
                "{flavor:?}: same answer as an unknown key"
            );
            assert!(!refused.contains(&bad.as_bytes()[9..]), "{refused:?}");
            assert_eq!(
                lookups.load(Ordering::SeqCst),
                0,
                "{flavor:?}: refused before any store lookup"
            );
        }
        assert_eq!(
            server.calls(),
            1,
            "{flavor:?}: the handler ran for the key only"
        );
    }
}

#[tokio::test]
async fn off_by_default_imported_keys_work_and_the_store_decides() {
    for flavor in FLAVORS {
        let (store, token) = store();
        let lookups = store.lookups.clone();
        let server = common::spawn(flavor, common::own_limiter(store)).await;

        let imported = send(server.addr, &get(IMPORTED)).await;
        assert_eq!(
            imported.status, 200,
            "{flavor:?}: a key without checksum works"
        );
        let generated = send(server.addr, &get(&token)).await;
        assert_eq!(generated.status, 200, "{flavor:?}");
        assert_eq!(lookups.swap(0, Ordering::SeqCst), 2);

        let refused = send(server.addr, &get(&mistyped(&token))).await;
        assert_eq!(refused.status, 401, "{flavor:?}");
        assert_eq!(refused.json()["error"]["code"], "invalid_api_key");
        assert_eq!(
            lookups.load(Ordering::SeqCst),
            1,
            "{flavor:?}: with the option off the store is asked"
        );
    }
}
