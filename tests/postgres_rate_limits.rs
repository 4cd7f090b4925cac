//! A key's several rate limits in PostgreSQL: the `rate_limits` column written by create,
//! import, update and `set_rate_limits` and read by lookup, list and get; its migration on a
//! database made before it existed (the column added in place, the change trigger made to
//! watch it); rows that are not valid limits failing closed; and the limits applied over
//! TCP.
//!
//! Need `DATABASE_URL` (skipped with a printed reason when unset, a failure under `CI=true`).

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::time::Duration;

use ark_auth::key::KeyRecord;
use ark_auth::limit::Quotas;
use ark_auth::postgres::PostgresOptions;
use ark_auth::store::KeyStore;
use ark_auth::{generate_key, ArkAuthLayer, Environment, Permissions};
use common::{bearer, request, send, Flavor};
use futures::{FutureExt as _, SinkExt as _, StreamExt as _};
use serde_json::json;

fn key(limits: &str) -> (String, KeyRecord) {
    let key = generate_key(Environment::Live).unwrap();
    let mut record = key.record.with_permissions(Permissions::ALL);
    if !limits.is_empty() {
        record = record.with_rate_limits(limits.parse::<Quotas>().unwrap());
    }
    (key.plaintext.expose_secret().to_owned(), record)
}

async fn client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// `(rate_limit, rate_limits)` of the row with this id.
async fn columns(url: &str, id: &str) -> (Option<i32>, Option<serde_json::Value>) {
    let row = client(url)
        .await
        .query_one(
            "SELECT rate_limit, rate_limits::text FROM ark_api_keys WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let limits: Option<String> = row.get(1);
    (
        row.get(0),
        limits.map(|t| serde_json::from_str(&t).unwrap()),
    )
}

#[tokio::test]
async fn several_limits_are_written_and_read_by_every_path() {
    let Some(url) = pg::database_url("several_limits_are_written_and_read_by_every_path") else {
        return;
    };
    let db = Scratch::new(&url).await;
    let url = db.url.clone();
    let store = pg::store_at(&url, PostgresOptions::default()).await;
    let (_, record) = key("10/s,100/min,10000/d");
    store.create(&record).await.unwrap();
    let found = store.lookup(record.hash()).await.unwrap().unwrap();
    assert_eq!(*found, record);
    assert_eq!(found.rate_limits(), record.rate_limits());
    assert_eq!(
        columns(&url, record.id()).await,
        (
            None,
            Some(json!({"second": 10, "minute": 100, "day": 10000}))
        )
    );
    // update: one per second goes to `rate_limit`, the other column cleared.
    let per_second = record.clone().with_rate_limit(5);
    assert!(store.update(&per_second).await.unwrap());
    assert_eq!(columns(&url, record.id()).await, (Some(5), None));
    assert_eq!(
        *store.lookup(record.hash()).await.unwrap().unwrap(),
        per_second
    );
    // import (upsert): back to several, one per hour only.
    let hourly = record.clone().with_rate_limits("50/h".parse().unwrap());
    assert_eq!(store.import([hourly.clone()]).await.unwrap(), 1);
    assert_eq!(
        columns(&url, record.id()).await,
        (None, Some(json!({"hour": 50})))
    );
    assert_eq!(
        store.get(record.id()).await.unwrap().unwrap().record,
        hourly
    );
    let listed = store.list().await.unwrap();
    let row = listed
        .iter()
        .find(|k| k.record.id() == record.id())
        .unwrap();
    assert_eq!(row.record.rate_limits(), hourly.rate_limits());
    assert_eq!(row.record.rate_limit(), None);
    // No own limit: both NULL.
    let mut none = hourly.clone();
    none.set_rate_limits(None);
    assert!(store.update(&none).await.unwrap());
    assert_eq!(columns(&url, record.id()).await, (None, None));
    assert_eq!(
        store
            .lookup(record.hash())
            .await
            .unwrap()
            .unwrap()
            .rate_limits(),
        None
    );
    drop(store);
    db.drop().await;
}

/// `set_rate_limits` writes the two limit columns alone: the split between them as every
/// other write makes it, the key's other fields (a revocation made meanwhile) untouched,
/// `None` back to the default, `false` for an unknown id.
#[tokio::test]
async fn set_rate_limits_changes_the_limits_alone() {
    let Some(url) = pg::database_url("set_rate_limits_changes_the_limits_alone") else {
        return;
    };
    let db = Scratch::new(&url).await;
    let url = db.url.clone();
    let store = pg::store_at(&url, PostgresOptions::default()).await;
    let (_, record) = key("");
    store.create(&record).await.unwrap();
    assert!(store.revoke(record.id()).await.unwrap());
    let several: Quotas = "10/min,10/s".parse().unwrap();
    assert!(store
        .set_rate_limits(record.id(), Some(several))
        .await
        .unwrap());
    assert_eq!(
        columns(&url, record.id()).await,
        (None, Some(json!({"second": 10, "minute": 10})))
    );
    let got = store.get(record.id()).await.unwrap().unwrap().record;
    assert_eq!(
        got,
        record.clone().with_revoked(true).with_rate_limits(several)
    );
    let per_second: Quotas = "7/s".parse().unwrap();
    assert!(store
        .set_rate_limits(record.id(), Some(per_second))
        .await
        .unwrap());
    assert_eq!(columns(&url, record.id()).await, (Some(7), None));
    assert!(store.set_rate_limits(record.id(), None).await.unwrap());
    assert_eq!(columns(&url, record.id()).await, (None, None));
    let got = store.get(record.id()).await.unwrap().unwrap().record;
    assert_eq!(got, record.clone().with_revoked(true));
    assert!(!store.set_rate_limits("key_nope", None).await.unwrap());
    drop(store);
    db.drop().await;
}

/// Rows whose limits cannot be loaded are refused (the layer answers 503), never served
/// with the limits dropped: an unknown window, a zero, both columns at once.
#[tokio::test]
async fn bad_limits_in_a_row_fail_closed() {
    let Some(url) = pg::database_url("bad_limits_in_a_row_fail_closed") else {
        return;
    };
    // A database of its own: a bad row fails every listing of the shared one.
    let db = Scratch::new(&url).await;
    let url = db.url.clone();
    let store = pg::store_at(&url, PostgresOptions::default()).await;
    let (token, record) = key("");
    store.create(&record).await.unwrap();
    let sql = client(&url).await;
    for (set, says) in [
        (r#"rate_limits = '{"week": 1}'"#, "unknown window"),
        (r#"rate_limits = '{"second": 0}'"#, "limit per second"),
        (r#"rate_limits = '{}'"#, "no rate limit"),
        (
            r#"rate_limits = '{"day": 5}', rate_limit = 3"#,
            "both rate_limit and rate_limits",
        ),
    ] {
        sql.batch_execute(&format!(
            "UPDATE ark_api_keys SET rate_limit = NULL WHERE id = '{0}'; \
             UPDATE ark_api_keys SET {set} WHERE id = '{0}'",
            record.id()
        ))
        .await
        .unwrap();
        let err = store.lookup(record.hash()).await.unwrap_err();
        let chain = std::iter::successors(Some(&*err as &dyn std::error::Error), |e| e.source())
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(": ");
        assert!(
            chain.contains(says) && chain.contains(record.id()),
            "{set}: {chain}"
        );
        assert!(!chain.contains(&token[9..]), "no secret in errors");
    }
    let rejected = sql
        .batch_execute(&format!(
            "UPDATE ark_api_keys SET rate_limit = NULL, rate_limits = '[1]' WHERE id = '{}'",
            record.id()
        ))
        .await;
    assert!(rejected.is_err(), "the column holds objects only");
    let server = common::spawn(Flavor::Hyper, ArkAuthLayer::new(store.clone())).await;
    let res = send(
        server.addr,
        &request("GET", "/v1/limits", &[bearer(&token)]),
    )
    .await;
    assert_eq!(res.status, 503);
    assert_eq!(server.calls(), 0);
    drop((sql, store, server));
    db.drop().await;
}

/// The schema as it was before `rate_limits`: the table and the change trigger.
const SCHEMA_BEFORE: &str = r#"
CREATE TABLE ark_api_keys (
    id           text        PRIMARY KEY,
    key_hash     bytea       NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    name         text        NOT NULL DEFAULT '',
    environment  text        NOT NULL CHECK (environment IN ('live', 'test')),
    permissions  text[]      NOT NULL DEFAULT '{}',
    tenant       text,
    expires_at   timestamptz,
    revoked      boolean     NOT NULL DEFAULT false,
    rate_limit   integer     CHECK (rate_limit IS NULL OR rate_limit > 0),
    metadata     jsonb       NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);
CREATE FUNCTION ark_api_keys_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('ark_api_keys', encode(OLD.key_hash, 'hex'));
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.key_hash IS DISTINCT FROM OLD.key_hash) THEN
        PERFORM pg_notify('ark_api_keys', encode(NEW.key_hash, 'hex'));
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER ark_api_keys_changed
    AFTER INSERT OR DELETE
       OR UPDATE OF id, key_hash, name, environment, permissions, tenant, expires_at,
                    revoked, rate_limit, metadata
    ON ark_api_keys FOR EACH ROW EXECUTE FUNCTION ark_api_keys_notify();
"#;

/// A database of its own (other tests share the main one), dropped at the end.
struct Scratch {
    admin: tokio_postgres::Client,
    name: String,
    url: String,
}

impl Scratch {
    async fn new(url: &str) -> Scratch {
        let admin = client(url).await;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("ark_windows_{}_{nanos}", std::process::id());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let (base, _) = url
            .rsplit_once('/')
            .expect("DATABASE_URL ends with /dbname");
        let url = format!("{base}/{name}");
        Scratch { admin, name, url }
    }

    async fn drop(self) {
        self.admin
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .await
            .unwrap();
    }
}

/// A database made by the schema before `rate_limits`, with a key in it: migrating adds the
/// column (the old key still loads, with its per-second limit), and the change trigger is
/// made again so that a change to `rate_limits` alone notifies (caches drop the key).
#[tokio::test]
async fn migration_adds_the_column_to_an_existing_database() {
    let Some(url) = pg::database_url("migration_adds_the_column_to_an_existing_database") else {
        return;
    };
    let db = Scratch::new(&url).await;
    let old = client(&db.url).await;
    old.batch_execute(SCHEMA_BEFORE).await.unwrap();
    let (_, before) = key("7/s");
    old.execute(
        "INSERT INTO ark_api_keys (id, key_hash, environment, permissions, rate_limit) \
         VALUES ($1, $2, 'live', '{emails:send}', 7)",
        &[&before.id(), &before.hash().as_bytes().as_slice()],
    )
    .await
    .unwrap();

    let store = pg::store_at(&db.url, PostgresOptions::default()).await;
    store.migrate().await.unwrap(); // and again: nothing more to do
    let found = store.lookup(before.hash()).await.unwrap().unwrap();
    assert_eq!(found.rate_limits(), Some("7/s".parse().unwrap()));
    let (_, several) = key("2/s,30/min");
    store.create(&several).await.unwrap();
    assert_eq!(
        *store.lookup(several.hash()).await.unwrap().unwrap(),
        several
    );

    // A change of `rate_limits` alone notifies.
    let (listen, mut conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let (tx, mut notes) = futures::channel::mpsc::unbounded();
    let stream = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
    tokio::spawn(
        stream
            .forward(tx.sink_map_err(|e| panic!("{e}")))
            .map(|_| ()),
    );
    listen.batch_execute("LISTEN ark_api_keys").await.unwrap();
    old.execute(
        r#"UPDATE ark_api_keys SET rate_limits = '{"minute": 31, "second": 2}' WHERE id = $1"#,
        &[&several.id()],
    )
    .await
    .unwrap();
    let note = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match notes.next().await {
                Some(tokio_postgres::AsyncMessage::Notification(n)) => return n,
                Some(_) => continue,
                None => panic!("connection closed"),
            }
        }
    })
    .await
    .expect("a notification for the change of rate_limits");
    assert_eq!(note.payload(), several.hash().to_hex());
    drop((listen, old, store));
    db.drop().await;
}

/// Over TCP, a key stored with 100 per second and 2 per minute: the third request is
/// refused by the minute window.
#[tokio::test]
async fn limits_from_the_database_apply_over_tcp() {
    let Some(url) = pg::database_url("limits_from_the_database_apply_over_tcp") else {
        return;
    };
    let db = Scratch::new(&url).await;
    let url = db.url.clone();
    let store = pg::store_at(&url, PostgresOptions::default()).await;
    let (token, record) = key("100/s,2/min");
    store.create(&record).await.unwrap();
    let server = common::spawn(Flavor::Hyper, common::own_limiter(store.clone())).await;
    let get = request("GET", "/v1/limits", &[bearer(&token)]);
    for remaining in ["1", "0"] {
        let res = send(server.addr, &get).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.header("x-ratelimit-limit").as_deref(), Some("2"));
        assert_eq!(
            res.header("x-ratelimit-remaining").as_deref(),
            Some(remaining)
        );
    }
    let res = send(server.addr, &get).await;
    assert_eq!(res.status, 429);
    assert_eq!(
        res.json()["error"]["message"],
        "Rate limit exceeded: 2 requests per minute"
    );
    let retry: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!((55..=60).contains(&retry), "{retry}");
    drop((store, server));
    db.drop().await;
}
