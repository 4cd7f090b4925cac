//! `examples/custom_store.rs` (a key store on SQLite) behind real servers (axum and plain
//! hyper) over TCP: a key inserted through it is served, a revoked one refused, an unknown
//! one refused; a row the keys file's rules refuse, or a database that fails, is a 503
//! (fail closed), and the handler never runs for any of them.

mod common;
#[path = "../examples/custom_store.rs"]
#[allow(dead_code)]
mod custom_store;

use ark_auth::{generate_key, Environment, Permission, Permissions};
use common::{bearer, request, send, FLAVORS};
use custom_store::SqliteStore;

fn get(token: &str) -> Vec<u8> {
    request("GET", "/v1/limits", &[bearer(token)])
}

/// A database file of its own, removed at the end.
struct TempDb(std::path::PathBuf);

impl TempDb {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "ark-auth-{name}-{}-{}.db",
            std::process::id(),
            fastrand::u64(..)
        ));
        TempDb(path)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_over_tcp() {
    for flavor in FLAVORS {
        let db = TempDb::new("custom-store");
        let store = SqliteStore::open(db.path()).unwrap();
        let (full, scoped, other) = (
            generate_key(Environment::Live).unwrap(),
            generate_key(Environment::Test).unwrap(),
            generate_key(Environment::Live).unwrap(),
        );
        store
            .insert(
                &full
                    .record
                    .clone()
                    .with_name("ops")
                    .with_permissions(Permissions::ALL),
            )
            .unwrap();
        let scoped_record = scoped
            .record
            .clone()
            .with_permissions(Permission::EmailsRead.into())
            .with_tenant("tn_42")
            .with_rate_limit(50)
            .with_metadata("plan", "pro");
        store.insert(&scoped_record).unwrap();
        let server = common::spawn(flavor, common::own_limiter(store.clone())).await;

        let ok = send(server.addr, &get(full.plaintext.expose_secret())).await;
        assert_eq!(ok.status, 200, "{flavor:?}: {ok:?}");
        assert_eq!(ok.json()["name"], "ops");
        let ok = send(server.addr, &get(scoped.plaintext.expose_secret())).await;
        assert_eq!(ok.status, 200, "{flavor:?}: {ok:?}");
        assert_eq!(ok.header("x-ratelimit-limit").as_deref(), Some("50"));
        let seen = ok.json();
        assert_eq!(seen["tenant"], "tn_42", "the row round-trips: {seen}");
        assert_eq!(seen["permissions"], serde_json::json!(["emails:read"]));
        assert_eq!(seen["metadata"]["plan"], "pro");
        assert_eq!(seen["test"], true);

        let unknown = send(server.addr, &get(other.plaintext.expose_secret())).await;
        assert_eq!(unknown.status, 401);
        assert_eq!(unknown.json()["error"]["code"], "invalid_api_key");

        let raw = rusqlite::Connection::open(db.path()).unwrap();
        let revoke = "UPDATE api_keys SET revoked = 1 WHERE id = ?";
        assert_eq!(raw.execute(revoke, [full.record.id()]).unwrap(), 1);
        let revoked = send(server.addr, &get(full.plaintext.expose_secret())).await;
        assert_eq!(revoked.status, 401);
        assert_eq!(revoked.json()["error"]["code"], "expired_api_key");
        let calls = server.calls();

        // A row the keys file's rules refuse (an unknown permission): fail closed.
        raw.execute(
            "UPDATE api_keys SET permissions = 'emails:read emails:delete' WHERE id = ?",
            [scoped.record.id()],
        )
        .unwrap();
        let bad_row = send(server.addr, &get(scoped.plaintext.expose_secret())).await;
        assert_eq!(bad_row.status, 503, "{flavor:?}: {bad_row:?}");
        assert_eq!(bad_row.json()["error"]["code"], "service_unavailable");

        // The database fails (its table is gone): fail closed too.
        raw.execute_batch("DROP TABLE api_keys").unwrap();
        let failed = send(server.addr, &get(other.plaintext.expose_secret())).await;
        assert_eq!(failed.status, 503, "{flavor:?}: {failed:?}");
        assert_eq!(server.calls(), calls, "the handler never ran for a refusal");
    }
}
