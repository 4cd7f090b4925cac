//! `PostgresKeyStore::rotate` on a real PostgreSQL: the successor row, the old key's new
//! expiry (never later than its own), refusals that leave no successor behind, and a
//! concurrent revoke that wins.
//!
//! Needs `DATABASE_URL` (skipped with a printed reason when unset, a failure under `CI=true`).

#[path = "common/pg.rs"]
mod pg;

use std::time::{Duration, SystemTime};

use ark_auth::key::{KeyRecord, RotateError};
use ark_auth::postgres::{PostgresKeyStore, PostgresOptions};
use ark_auth::store::{Answer, KeyStore};
use ark_auth::{generate_key, Environment, Permission};

fn record() -> KeyRecord {
    generate_key(Environment::Live)
        .unwrap()
        .record
        .with_name("billing")
        .with_permissions(Permission::EmailsSend | Permission::DomainsManage)
        .with_tenant("tn_42")
        .with_rate_limit(9)
        .with_metadata("team", "payments")
}

async fn found(store: &PostgresKeyStore, r: &KeyRecord) -> Option<KeyRecord> {
    match store.lookup(r.hash()) {
        Answer::Now(x) => x.unwrap().map(|r| (*r).clone()),
        Answer::Later(f) => f.await.unwrap().map(|r| (*r).clone()),
    }
}

/// Rows named `name`, to see that a refused rotation left no successor.
async fn rows_named(store: &PostgresKeyStore, name: &str) -> usize {
    let all = store.list().await.unwrap();
    all.iter().filter(|k| k.record.name() == name).count()
}

#[tokio::test]
async fn rotate_inserts_a_successor_and_sets_the_old_expiry_in_one_step() {
    let Some(store) = pg::store("rotate_inserts_a_successor_and_sets_the_old_expiry").await else {
        return;
    };
    let old = record();
    store.create(&old).await.unwrap();
    let before = SystemTime::now();
    let grace = Duration::from_secs(3600);
    let next = store.rotate(old.id(), grace).await.unwrap();
    let after = SystemTime::now();

    let got = found(&store, &next.record).await.expect("successor stored");
    assert_eq!(got, next.record);
    assert_ne!(got.id(), old.id());
    assert_eq!((got.name(), got.tenant()), (old.name(), old.tenant()));
    assert_eq!(got.permissions(), old.permissions());
    assert_eq!(got.environment(), old.environment());
    assert_eq!(got.rate_limit(), old.rate_limit());
    assert_eq!(got.metadata(), old.metadata());
    assert_eq!(got.expires_at(), None);
    assert!(next.plaintext.expose_secret().starts_with("ark_live_"));

    let old_now = found(&store, &old).await.expect("old key still there");
    let end = old_now.expires_at().expect("old key now expires");
    // PostgreSQL keeps microseconds.
    let slack = Duration::from_millis(1);
    assert!(
        end + slack >= before + grace && end <= after + grace,
        "{end:?}"
    );
    assert!(old_now.is_usable_at(after));

    // An old key already expiring before the end of the grace keeps its expiry.
    let soon = old_now.expires_at().unwrap();
    let third = store.rotate(old.id(), 2 * grace).await.unwrap();
    assert_eq!(found(&store, &old).await.unwrap().expires_at(), Some(soon));
    for r in [&old, &next.record, &third.record] {
        assert!(store.remove(r.id()).await.unwrap());
    }
}

#[tokio::test]
async fn rotate_refuses_unknown_revoked_and_expired_keys_by_name() {
    let Some(store) = pg::store("rotate_refuses_unknown_revoked_and_expired_keys").await else {
        return;
    };
    let name = format!(
        "refused-{}",
        generate_key(Environment::Test).unwrap().record.id()
    );
    let revoked = record().with_name(&name).with_revoked(true);
    let past = SystemTime::now() - Duration::from_secs(5);
    let expired = record().with_name(&name).with_expiry(past);
    store.create(&revoked).await.unwrap();
    store.create(&expired).await.unwrap();
    let stored = store.get(expired.id()).await.unwrap().unwrap();
    let grace = Duration::from_secs(60);

    let e = store.rotate("key_no_such_id", grace).await.unwrap_err();
    assert!(matches!(e, RotateError::UnknownKey { .. }), "{e}");
    assert!(e.to_string().contains("key_no_such_id"), "{e}");
    let e = store.rotate(revoked.id(), grace).await.unwrap_err();
    assert!(matches!(e, RotateError::Revoked { .. }), "{e}");
    let e = store.rotate(expired.id(), grace).await.unwrap_err();
    assert!(matches!(e, RotateError::Expired { .. }), "{e}");
    assert_eq!(
        rows_named(&store, &name).await,
        2,
        "no successor left behind"
    );
    let kept = store.get(expired.id()).await.unwrap().unwrap();
    assert_eq!(kept.record.expires_at(), stored.record.expires_at());
    assert!(store.remove(revoked.id()).await.unwrap());
    assert!(store.remove(expired.id()).await.unwrap());
}

/// Many rotations racing a revoke of the same key: each either finished before the revoke
/// (its successor stays) or was refused as revoked (no successor); never a successor of a
/// key that was revoked first.
#[tokio::test]
async fn a_concurrent_revoke_either_lands_first_or_after() {
    let Some(url) = pg::database_url("a_concurrent_revoke_either_lands_first_or_after") else {
        return;
    };
    // Connections are made as the race starts: a loaded machine may take seconds for each.
    let options = PostgresOptions {
        connect_timeout: Duration::from_secs(30),
        ..PostgresOptions::default()
    };
    let store = pg::store_at(&url, options).await;
    let name = format!(
        "race-{}",
        generate_key(Environment::Test).unwrap().record.id()
    );
    let old = record().with_name(&name);
    store.create(&old).await.unwrap();
    let rotations = (0..6).map(|_| store.rotate(old.id(), Duration::from_secs(60)));
    let revoke = store.revoke(old.id());
    let (results, revoked) = tokio::join!(futures::future::join_all(rotations), revoke);
    assert!(revoked.unwrap());
    let done = results.iter().filter(|r| r.is_ok()).count();
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, RotateError::Revoked { .. }), "{e:?}");
        }
    }
    assert_eq!(rows_named(&store, &name).await, 1 + done);
    for r in results.into_iter().flatten() {
        assert!(store.remove(r.record.id()).await.unwrap());
    }
    assert!(store.remove(old.id()).await.unwrap());
}
