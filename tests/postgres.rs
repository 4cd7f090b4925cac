//! PostgreSQL integration tests beyond the conformance suite: revocation across instances by
//! NOTIFY (measured), the store failing closed over real TCP (503), listener reconnection,
//! `last_used_at` batching, permissions that fail closed, the schema applied twice.
//!
//! Need `DATABASE_URL` (skipped with a printed reason when unset, a failure under `CI=true`).

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::time::{Duration, Instant, SystemTime};

use ark_auth::cache::CacheConfig;
use ark_auth::postgres::{PostgresKeyStore, PostgresOptions};
use ark_auth::{
    generate_key,
    store::{Answer, KeyStore},
    ArkAuthLayer, Environment, Permissions,
};
use common::{bearer, request, send, Flavor};

fn full_key() -> (String, ark_auth::key::KeyRecord) {
    let key = generate_key(Environment::Live).unwrap();
    (
        key.plaintext.expose_secret().to_owned(),
        key.record.with_permissions(Permissions::ALL),
    )
}

/// Two instances, each with its own store, cache and listener. A revoke through one (and a
/// change made directly in SQL) must leave the other's cache within 1 s.
#[tokio::test]
async fn revocation_reaches_another_instance_within_a_second() {
    let Some(url) = pg::database_url("revocation_reaches_another_instance_within_a_second") else {
        return;
    };
    let a = pg::store_at(&url, PostgresOptions::default()).await;
    let b = pg::store_at(&url, PostgresOptions::default()).await;
    let cache_a = a.clone().cached(CacheConfig::default());
    let cache_b = b.clone().cached(CacheConfig::default());
    let la = a.listen(cache_a.invalidator()).unwrap();
    let lb = b.listen(cache_b.invalidator()).unwrap();
    assert!(la.wait_connected(Duration::from_secs(5)).await);
    assert!(lb.wait_connected(Duration::from_secs(5)).await);

    let mut worst = Duration::ZERO;
    for how in [
        "revoke through instance A",
        "UPDATE in SQL",
        "DELETE in SQL",
    ] {
        let (_, record) = full_key();
        a.create(&record).await.unwrap();
        // Let the INSERT's own notification pass, so that it cannot be mistaken for the
        // revocation's.
        tokio::time::sleep(Duration::from_millis(300)).await;
        for c in [&cache_a, &cache_b] {
            let start = Instant::now();
            while !matches!(c.lookup(record.hash()), Answer::Now(Ok(Some(_)))) {
                assert!(c.lookup(record.hash()).await.unwrap().is_some());
                assert!(start.elapsed() < Duration::from_secs(1));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let start = Instant::now();
        match how {
            "revoke through instance A" => assert!(a.revoke(record.id()).await.unwrap()),
            "UPDATE in SQL" => sql(
                &url,
                &format!(
                    "UPDATE ark_api_keys SET expires_at = now() - interval '1 second' WHERE id = '{}'",
                    record.id()
                ),
            )
            .await,
            _ => sql(
                &url,
                &format!("DELETE FROM ark_api_keys WHERE id = '{}'", record.id()),
            )
            .await,
        }
        let committed = start.elapsed();
        // Instance B refuses the key (its cache asks the database again) within 1 s.
        let seen = loop {
            let usable = match cache_b.lookup(record.hash()) {
                Answer::Now(r) => r
                    .unwrap()
                    .is_some_and(|r| r.is_usable_at(SystemTime::now())),
                Answer::Later(f) => f
                    .await
                    .unwrap()
                    .is_some_and(|r| r.is_usable_at(SystemTime::now())),
            };
            if !usable {
                break start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "{how}: instance B still accepts the key after 1 s"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        println!(
            "revocation ({how}): write returned after {:.1} ms, instance B refuses after \
             {:.1} ms ({:.1} ms after the write returned)",
            committed.as_secs_f64() * 1e3,
            seen.as_secs_f64() * 1e3,
            seen.saturating_sub(committed).as_secs_f64() * 1e3
        );
        worst = worst.max(seen);
    }
    println!(
        "revocation latency across instances: worst {:.1} ms (bound 1000 ms)",
        worst.as_secs_f64() * 1e3
    );
    assert!(lb.notifications() >= 3);
}

async fn sql(url: &str, statement: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    client.batch_execute(statement).await.unwrap();
    drop(client);
    let _ = task.await;
}

/// The database behind a TCP proxy that the test cuts: lookups over real HTTP answer 503
/// while it is down (fail closed), and 200 again once it is back, without a restart.
#[tokio::test]
async fn database_down_is_503_over_tcp_then_recovers() {
    let Some(url) = pg::database_url("database_down_is_503_over_tcp_then_recovers") else {
        return;
    };
    let proxy = pg::Proxy::start(pg::upstream(&url).await).await;
    // Generous: SCRAM authentication in a debug build on a loaded machine is slow, and the
    // cut below fails at once anyway (the proxy closes the connections).
    let options = PostgresOptions {
        connect_timeout: Duration::from_secs(5),
        ..PostgresOptions::default()
    };
    let store = pg::store_at(&pg::via(&url, proxy.addr), options).await;
    let (token, record) = full_key();
    store.create(&record).await.unwrap();
    for flavor in common::FLAVORS {
        let server = common::spawn(
            flavor,
            ArkAuthLayer::new(store.clone()).timeout(Duration::from_secs(2)),
        )
        .await;
        let get = || request("GET", "/v1/limits", &[bearer(&token)]);
        assert_eq!(send(server.addr, &get()).await.status, 200, "{flavor:?}");

        proxy.cut();
        let start = Instant::now();
        let res = send(server.addr, &get()).await;
        assert_eq!(res.status, 503, "{flavor:?}: {}", res.body_text());
        assert!(res.body_text().contains("\"success\":false"));
        println!(
            "{flavor:?}: database down -> 503 in {:.0} ms",
            start.elapsed().as_secs_f64() * 1e3
        );
        assert_eq!(
            server.calls(),
            1,
            "the handler never ran for the failed request"
        );

        proxy.restore();
        let mut status = 0;
        for _ in 0..50 {
            status = send(server.addr, &get()).await.status;
            if status == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status, 200, "{flavor:?}: recovered");
    }
}

/// The listener notices a dead connection and reconnects with backoff; meanwhile the cache
/// keeps serving (the TTL is the backstop), and on reconnect it drops every entry, since
/// notifications sent while it was away are lost.
#[tokio::test]
async fn listener_reconnects_and_invalidates_everything() {
    let Some(url) = pg::database_url("listener_reconnects_and_invalidates_everything") else {
        return;
    };
    let proxy = pg::Proxy::start(pg::upstream(&url).await).await;
    let direct = pg::store_at(&url, PostgresOptions::default()).await;
    let cache = direct.clone().cached(CacheConfig::default());
    let listener = ark_auth::postgres::RevocationListener::spawn(
        pg::via(&url, proxy.addr).parse().unwrap(),
        cache.invalidator(),
    );
    assert!(listener.wait_connected(Duration::from_secs(5)).await);
    let (_, record) = full_key();
    direct.create(&record).await.unwrap();
    // Let the INSERT's own notification pass before caching the key.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(cache.lookup(record.hash()).await.unwrap().is_some());
    assert!(matches!(
        cache.lookup(record.hash()),
        Answer::Now(Ok(Some(_)))
    ));

    proxy.cut();
    let start = Instant::now();
    while listener.is_connected() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "disconnect noticed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "listener noticed the cut after {:.0} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    // Revoked while the listener is down: its notification is lost, and the cache still
    // serves the old record (until its TTL, or until the listener is back).
    direct.revoke(record.id()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    match cache.lookup(record.hash()) {
        Answer::Now(Ok(Some(r))) => assert!(!r.is_revoked(), "still the cached record"),
        _ => panic!("the cache keeps serving while the listener is down"),
    }

    proxy.restore();
    let start = Instant::now();
    while listener.connections() < 2 {
        assert!(start.elapsed() < Duration::from_secs(10), "reconnected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "listener reconnected {:.0} ms after the proxy came back",
        start.elapsed().as_secs_f64() * 1e3
    );
    // The reconnect dropped every entry: the revocation made meanwhile is seen.
    assert!(cache
        .lookup(record.hash())
        .await
        .unwrap()
        .unwrap()
        .is_revoked());
    // And notifications are delivered again.
    let (_, other) = full_key();
    direct.create(&other).await.unwrap();
    assert!(cache.lookup(other.hash()).await.unwrap().is_some());
    direct.revoke(other.id()).await.unwrap();
    let start = Instant::now();
    while !cache
        .lookup(other.hash())
        .await
        .unwrap()
        .unwrap()
        .is_revoked()
    {
        assert!(start.elapsed() < Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// N lookups of a few keys (cache hits mostly): at most one `last_used_at` write per key per
/// interval, and the column is set.
#[tokio::test]
async fn last_used_at_is_batched_one_write_per_key_per_interval() {
    let Some(url) = pg::database_url("last_used_at_is_batched_one_write_per_key_per_interval")
    else {
        return;
    };
    let interval = Duration::from_millis(400);
    let store = pg::store_at(
        &url,
        PostgresOptions {
            usage_interval: interval,
            ..PostgresOptions::default()
        },
    )
    .await;
    let keys: Vec<_> = (0..3).map(|_| full_key().1).collect();
    for r in &keys {
        store.create(r).await.unwrap();
        assert!(store
            .get(r.id())
            .await
            .unwrap()
            .unwrap()
            .last_used_at
            .is_none());
    }
    let cache = store.clone().cached(CacheConfig::default());
    let start = Instant::now();
    let mut lookups = 0;
    while start.elapsed() < Duration::from_millis(1500) {
        for r in &keys {
            let t = Instant::now();
            assert!(cache.lookup(r.hash()).await.unwrap().is_some());
            lookups += 1;
            assert!(
                t.elapsed() < Duration::from_millis(200),
                "a lookup never waits for the usage writer"
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = start.elapsed();
    tokio::time::sleep(interval * 2).await;
    let writes = store.usage_writes();
    let intervals = (elapsed + interval * 2).as_millis() / interval.as_millis() + 1;
    println!(
        "last_used_at: {lookups} lookups of {} keys over {} ms -> {writes} row writes \
         (bound: {} keys x {intervals} intervals)",
        keys.len(),
        elapsed.as_millis(),
        keys.len()
    );
    assert!(writes >= keys.len() as u64, "every key recorded");
    assert!(
        writes <= keys.len() as u64 * intervals as u64,
        "at most one write per key per interval"
    );
    for r in &keys {
        let used = store.get(r.id()).await.unwrap().unwrap().last_used_at;
        assert!(used.is_some(), "last_used_at set");
    }
    assert_eq!(store.usage_dropped(), 0);
}

/// An unknown permission name (or environment) in the database is a load error, so the
/// layer answers 503, never a key with the permission silently dropped or granted.
#[tokio::test]
async fn unknown_permission_in_the_database_fails_closed() {
    let Some(url) = pg::database_url("unknown_permission_in_the_database_fails_closed") else {
        return;
    };
    let store = pg::store_at(&url, PostgresOptions::default()).await;
    let (token, record) = full_key();
    store.create(&record).await.unwrap();
    assert!(store.lookup(record.hash()).await.unwrap().is_some());
    sql(
        &url,
        &format!(
            "UPDATE ark_api_keys SET permissions = '{{emails:send,emails:delete}}' WHERE id = '{}'",
            record.id()
        ),
    )
    .await;
    let err = store.lookup(record.hash()).await.unwrap_err();
    // The error and its causes, as the layer logs them.
    let e = std::iter::successors(Some(&*err as &dyn std::error::Error), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ");
    assert!(e.contains("emails:delete"), "{e}");
    assert!(!e.contains(&token[9..]), "no secret in errors");
    assert!(store.list().await.is_err(), "list fails closed too");

    let server = common::spawn(Flavor::Hyper, ArkAuthLayer::new(store.clone())).await;
    let res = send(
        server.addr,
        &request("GET", "/v1/limits", &[bearer(&token)]),
    )
    .await;
    assert_eq!(res.status, 503);
    assert_eq!(server.calls(), 0);
    store.remove(record.id()).await.unwrap();
}

#[tokio::test]
async fn schema_applies_twice_and_list_shows_no_secret() {
    let Some(store) = pg::store("schema_applies_twice_and_list_shows_no_secret").await else {
        return;
    };
    store.migrate().await.unwrap();
    let (token, record) = full_key();
    store.create(&record).await.unwrap();
    assert!(store.create(&record).await.is_err(), "duplicate refused");
    // Import: upsert by id, all or nothing.
    let renamed = record.clone().with_name("imported");
    assert_eq!(store.import([renamed.clone()]).await.unwrap(), 1);
    let stored = store.get(record.id()).await.unwrap().unwrap();
    assert_eq!(stored.record, renamed);
    let listed = store.list().await.unwrap();
    assert!(listed.iter().any(|k| k.record.id() == record.id()));
    let dump = format!("{listed:?}");
    assert!(!dump.contains(&token[9..]), "no secret in a listing");
    assert!(store.remove(record.id()).await.unwrap());
    assert!(!store.remove(record.id()).await.unwrap());
    assert!(!store.revoke(record.id()).await.unwrap());
}

/// Concurrent migrations (several instances starting at once) do not fail.
#[tokio::test]
async fn concurrent_migrations() {
    let Some(url) = pg::database_url("concurrent_migrations") else {
        return;
    };
    let store = PostgresKeyStore::connect(&url).await.unwrap();
    let runs = (0..4).map(|_| store.migrate());
    for r in futures::future::join_all(runs).await {
        r.unwrap();
    }
}
