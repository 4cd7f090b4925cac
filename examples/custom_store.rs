//! Writing your own `KeyStore`: an async store with a real failure mode.
//!
//! The store below keeps records behind an async lock, as a stand-in for a database or a
//! remote key service. It shows the three answers a store gives: a record, `None` ("no such
//! key": the client gets 401), and an error ("store failed": the client gets 503 and the
//! handler never runs).
//!
//! ```sh
//! cargo run --example custom_store
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ark_auth::{
    generate_key,
    key::{KeyHash, KeyRecord},
    store::{Answer, BoxLookup, KeyStore, LookupResult, StoreError},
    ArkAuthLayer, Environment, Permissions,
};
use http::{Request, Response};
use tokio::sync::RwLock;
use tower::{ServiceBuilder, ServiceExt};

/// Records by hash, plus a switch to simulate an outage.
#[derive(Clone, Default)]
struct RemoteStore {
    records: Arc<RwLock<HashMap<KeyHash, Arc<KeyRecord>>>>,
    down: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
#[error("key service unreachable")]
struct Unreachable;

impl KeyStore for RemoteStore {
    // Real I/O: a boxed future. (The in-memory store answers `Answer::Now` and allocates
    // nothing; a cache in front of a database would answer hits now and misses later.)
    type Future = BoxLookup;

    fn lookup(&self, hash: &KeyHash) -> Answer<LookupResult, BoxLookup> {
        // The future is 'static: clone what it needs, here two Arcs and the 32-byte hash.
        let (records, down, hash) = (self.records.clone(), self.down.clone(), *hash);
        Answer::Later(Box::pin(async move {
            tokio::task::yield_now().await; // a network round trip would be here
            if down.load(Ordering::Relaxed) {
                return Err(StoreError::new(Unreachable));
            }
            Ok(records.read().await.get(&hash).cloned())
        }))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = RemoteStore::default();
    let key = generate_key(Environment::Live)?;
    let record = key
        .record
        .with_name("example")
        .with_permissions(Permissions::ALL);
    store
        .records
        .write()
        .await
        .insert(*record.hash(), Arc::new(record));

    let app = ServiceBuilder::new()
        .layer(ArkAuthLayer::new(store.clone()))
        .service_fn(|_req: Request<String>| async {
            Ok::<_, Infallible>(Response::new("handler ran".to_owned()))
        });

    let request = |token: &str| {
        Request::get("/v1/limits")
            .header("authorization", format!("Bearer {token}"))
            .body(String::new())
            .unwrap()
    };

    let ok = app
        .clone()
        .oneshot(request(key.plaintext.expose_secret()))
        .await?;
    println!("known key        -> {}", ok.status());

    let unknown = app
        .clone()
        .oneshot(request("ark_live_0000000000000000000000000000"))
        .await?;
    println!("unknown key      -> {}", unknown.status());

    store.down.store(true, Ordering::Relaxed);
    let outage = app.oneshot(request(key.plaintext.expose_secret())).await?;
    println!(
        "store unreachable -> {} (Retry-After: {:?})",
        outage.status(),
        outage.headers().get("retry-after")
    );
    Ok(())
}
