//! TLS to PostgreSQL (`sslmode`, `sslrootcert`) and Redis (`rediss://`) against servers
//! with TLS on and certificates made by `.ci/tls.sh`: the right CA is served, a wrong CA or
//! a certificate for another host is refused (and the layer answers 503 over real HTTP, fail
//! closed), `require` encrypts, `disable` cannot reach a server that demands TLS.
//!
//! Reads `ARK_TLS_DIR` (`ca.pem`, `wrong-ca.pem`), `ARK_TLS_PG_URL` (a role the server only
//! accepts over TLS, on a database it owns) and `ARK_TLS_REDIS_URL` (`rediss://`); skipped
//! with a printed reason when unset, a failure under `CI=true`.

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::time::Duration;

use ark_auth::postgres::{ConnectionSettings, PostgresKeyStore, PostgresOptions};
use ark_auth::redis::RedisRateLimiter;
use ark_auth::{
    generate_key, ArkAuthLayer, Environment, LimiterFailure, MemoryKeyStore, Permissions,
};
use common::{bearer, request, send};

/// The TLS servers' settings, or `None` (after printing why) when the run has none.
struct Tls {
    dir: String,
    pg: String,
    redis: String,
}

fn tls(test: &str) -> Option<Tls> {
    Some(Tls {
        dir: pg::service_url("ARK_TLS_DIR", test)?,
        pg: pg::service_url("ARK_TLS_PG_URL", test)?,
        redis: pg::service_url("ARK_TLS_REDIS_URL", test)?,
    })
}

impl Tls {
    fn ca(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }

    /// The PostgreSQL URL with these query parameters.
    fn pg_with(&self, params: &str) -> String {
        let sep = if self.pg.contains('?') { '&' } else { '?' };
        format!("{}{sep}{params}", self.pg)
    }

    /// The PostgreSQL URL for the host name `host`, the TCP connection still going to the
    /// server's own address (`hostaddr`), so the certificate is checked against `host`.
    fn pg_as_host(&self, host: &str, params: &str) -> String {
        let rest = self.pg.split_once("://").unwrap().1;
        let (auth, hostpath) = rest.rsplit_once('@').unwrap();
        let (hostport, path) = hostpath.split_once('/').unwrap();
        let (ip, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
        format!("postgres://{auth}@{host}:{port}/{path}?hostaddr={ip}&{params}")
    }
}

/// An error with its causes, as the layer's log shows it.
fn chain(e: &dyn std::error::Error) -> String {
    std::iter::successors(Some(e), |e| e.source())
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

fn options() -> PostgresOptions {
    PostgresOptions {
        pool_size: 2,
        // SCRAM and a TLS handshake in a debug build on a loaded 2-core machine.
        connect_timeout: Duration::from_secs(5),
        ..PostgresOptions::default()
    }
}

/// Whether this connection's session is encrypted, by the server's own account.
async fn server_says_encrypted(url: &str) -> bool {
    let client = ConnectionSettings::from_url(url)
        .unwrap()
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    row.get(0)
}

/// A key in the store at `url`, then a request with it through the layer over real HTTP:
/// the status.
async fn status_through_layer(url: &str) -> (u16, String) {
    let store = PostgresKeyStore::connect_with(url, options())
        .await
        .unwrap();
    let key = generate_key(Environment::Live).unwrap();
    let token = key.plaintext.expose_secret().to_owned();
    // Written when the store reaches the database; otherwise the lookup must fail (503),
    // never answer "no such key" (401).
    if store.migrate().await.is_ok() {
        store
            .create(&key.record.with_permissions(Permissions::ALL))
            .await
            .unwrap();
    }
    let server = common::spawn(
        common::Flavor::Axum,
        ArkAuthLayer::new(store).timeout(Duration::from_secs(10)),
    )
    .await;
    let res = send(
        server.addr,
        &request("GET", "/v1/limits", &[bearer(&token)]),
    )
    .await;
    (res.status, res.body_text())
}

#[tokio::test]
async fn postgres_verify_full_with_the_right_ca_is_served_encrypted() {
    let Some(t) = tls("postgres_verify_full_with_the_right_ca_is_served_encrypted") else {
        return;
    };
    let url = t.pg_with(&format!(
        "sslmode=verify-full&sslrootcert={}",
        t.ca("ca.pem")
    ));
    assert_eq!(status_through_layer(&url).await.0, 200);
    assert!(server_says_encrypted(&url).await);
    // The key=value form reads the same parameters.
    let store = PostgresKeyStore::connect_with(
        &format!(
            "host=127.0.0.1 user=ark_tls_only password=ark-ci dbname={} sslmode=verify-full sslrootcert='{}'",
            t.pg.rsplit('/').next().unwrap(),
            t.ca("ca.pem")
        ),
        options(),
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
}

#[tokio::test]
async fn postgres_wrong_ca_is_refused_and_the_layer_answers_503() {
    let Some(t) = tls("postgres_wrong_ca_is_refused_and_the_layer_answers_503") else {
        return;
    };
    for mode in ["verify-full", "verify-ca", "require"] {
        let url = t.pg_with(&format!(
            "sslmode={mode}&sslrootcert={}",
            t.ca("wrong-ca.pem")
        ));
        let store = PostgresKeyStore::connect_with(&url, options())
            .await
            .unwrap();
        let e = chain(&*store.migrate().await.unwrap_err());
        println!("sslmode={mode} with the wrong CA: {e}");
        assert!(e.contains("certificate"), "{mode}: {e}");
        assert!(!e.contains("ark-ci"), "{mode}: the password leaked: {e}");
        let (status, body) = status_through_layer(&url).await;
        assert_eq!(status, 503, "{mode}: {body}");
        assert!(body.contains("\"success\":false"), "{body}");
    }
}

#[tokio::test]
async fn postgres_host_name_is_checked_by_verify_full_only() {
    let Some(t) = tls("postgres_host_name_is_checked_by_verify_full_only") else {
        return;
    };
    let ca = t.ca("ca.pem");
    // The certificate names 127.0.0.1 and localhost.
    let full = t.pg_as_host(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    assert!(server_says_encrypted(&full).await);
    let other = t.pg_as_host(
        "db.example.com",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let e = chain(
        &*ConnectionSettings::from_url(&other)
            .unwrap()
            .connect()
            .await
            .unwrap_err(),
    );
    println!("verify-full, another host name: {e}");
    assert!(e.contains("certificate") && e.contains("name"), "{e}");
    assert_eq!(status_through_layer(&other).await.0, 503);
    let ca_only = t.pg_as_host(
        "db.example.com",
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    );
    assert!(server_says_encrypted(&ca_only).await);
    assert_eq!(status_through_layer(&ca_only).await.0, 200);
    // libpq's `require` with a root certificate checks like verify-ca: the chain, not the name.
    let require = t.pg_as_host(
        "db.example.com",
        &format!("sslmode=require&sslrootcert={ca}"),
    );
    assert!(server_says_encrypted(&require).await);
    let require_wrong = t.pg_as_host(
        "db.example.com",
        &format!("sslmode=require&sslrootcert={}", t.ca("wrong-ca.pem")),
    );
    assert!(ConnectionSettings::from_url(&require_wrong)
        .unwrap()
        .connect()
        .await
        .is_err());
}

#[tokio::test]
async fn postgres_require_and_prefer_encrypt_and_disable_is_refused_by_a_tls_only_server() {
    let Some(t) =
        tls("postgres_require_and_prefer_encrypt_and_disable_is_refused_by_a_tls_only_server")
    else {
        return;
    };
    // Without roots: encrypted, the certificate not checked (as libpq).
    assert!(server_says_encrypted(&t.pg_with("sslmode=require")).await);
    assert!(server_says_encrypted(&t.pg).await, "prefer is the default");
    assert_eq!(
        status_through_layer(&t.pg_with("sslmode=require")).await.0,
        200
    );
    let plain = t.pg_with("sslmode=disable");
    let e = chain(
        &*ConnectionSettings::from_url(&plain)
            .unwrap()
            .connect()
            .await
            .unwrap_err(),
    );
    println!("sslmode=disable against a TLS-only role: {e}");
    assert!(e.contains("no encryption"), "{e}");
    assert_eq!(status_through_layer(&plain).await.0, 503);
}

#[tokio::test]
async fn postgres_tls_settings_that_cannot_be_honoured_fail_at_connect() {
    let Some(t) = tls("postgres_tls_settings_that_cannot_be_honoured_fail_at_connect") else {
        return;
    };
    for (params, expect) in [
        ("sslmode=verify-full", "needs a root certificate"),
        ("sslmode=verify-ca", "needs a root certificate"),
        (
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
            "/nonexistent/ca.pem",
        ),
        (
            "sslmode=require&sslrootcert=/nonexistent/ca.pem",
            "/nonexistent/ca.pem",
        ),
        (
            "sslmode=require&sslrootcert=system",
            "sslrootcert=system needs sslmode=verify-full",
        ),
        ("sslmode=allow", "not supported"),
        ("sslmode=verify_full", "invalid sslmode"),
    ] {
        let e = chain(
            &*PostgresKeyStore::connect(&t.pg_with(params))
                .await
                .unwrap_err(),
        );
        assert!(e.contains(expect), "{params}: {e}");
        assert!(!e.contains("ark-ci"), "{params}: the password leaked: {e}");
    }
}

#[tokio::test]
async fn redis_right_ca_is_served_and_wrong_ca_refused() {
    let Some(t) = tls("redis_right_ca_is_served_and_wrong_ca_refused") else {
        return;
    };
    let ca = std::fs::read(t.ca("ca.pem")).unwrap();
    let wrong = std::fs::read(t.ca("wrong-ca.pem")).unwrap();
    let key = generate_key(Environment::Live).unwrap();
    let token = key.plaintext.expose_secret().to_owned();
    let store = std::sync::Arc::new(
        MemoryKeyStore::from_records([key
            .record
            .with_permissions(Permissions::ALL)
            .with_rate_limit(1000)])
        .unwrap(),
    );
    let prefix = format!("ark-auth:tls-test:{}:", std::process::id());

    let limiter = RedisRateLimiter::connect_with_root_ca(&t.redis, &ca)
        .await
        .unwrap_or_else(|e| panic!("rediss with the right CA: {e}"))
        .key_prefix(prefix.clone())
        .timeout(Duration::from_secs(2));
    let server = common::spawn(
        common::Flavor::Hyper,
        ArkAuthLayer::new(store.clone())
            .rate_limiter(limiter)
            .on_limiter_failure(LimiterFailure::Refuse),
    )
    .await;
    let res = send(
        server.addr,
        &request("GET", "/v1/limits", &[bearer(&token)]),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body_text());
    assert_eq!(res.header("x-ratelimit-remaining").as_deref(), Some("999"));

    let e = chain(
        &RedisRateLimiter::connect_with_root_ca(&t.redis, &wrong)
            .await
            .unwrap_err(),
    );
    println!("rediss:// with the wrong CA: {e}");
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    // With the system's roots, which do not hold the test CA (unless SSL_CERT_FILE names
    // it), the lazily started limiter fails its first check: 503 under `Refuse`.
    let lazy = RedisRateLimiter::connect_lazy(&t.redis)
        .unwrap()
        .key_prefix(prefix)
        .timeout(Duration::from_secs(2));
    let server = common::spawn(
        common::Flavor::Hyper,
        ArkAuthLayer::new(store)
            .rate_limiter(lazy)
            .on_limiter_failure(LimiterFailure::Refuse),
    )
    .await;
    let res = send(
        server.addr,
        &request("GET", "/v1/limits", &[bearer(&token)]),
    )
    .await;
    let system_roots_hold_the_ca =
        std::env::var("SSL_CERT_FILE").is_ok_and(|f| f.ends_with("/ca.pem"));
    let expected = if system_roots_hold_the_ca { 200 } else { 503 };
    assert_eq!(res.status, expected, "{}", res.body_text());
    // No check at all is never an option.
    let e = chain(
        &RedisRateLimiter::connect(&format!("{}#insecure", t.redis))
            .await
            .unwrap_err(),
    );
    assert!(e.contains("#insecure"), "{e}");
}

/// What TLS adds to making a connection (printed): sequential connections to the same
/// server as the same user, in plain text (`DATABASE_URL`'s user, when set) and with
/// verify-full. Each one includes SCRAM, which dominates in a debug build.
#[tokio::test]
async fn postgres_tls_connection_cost() {
    let Some(t) = tls("postgres_tls_connection_cost") else {
        return;
    };
    const N: u32 = 8;
    async fn time(url: &str) -> Duration {
        let settings = ConnectionSettings::from_url(url).unwrap();
        let start = std::time::Instant::now();
        for _ in 0..N {
            let client = settings.connect().await.unwrap();
            client.simple_query("SELECT 1").await.unwrap();
        }
        start.elapsed() / N
    }
    let tls = time(&t.pg_with(&format!(
        "sslmode=verify-full&sslrootcert={}",
        t.ca("ca.pem")
    )))
    .await;
    println!(
        "connect + SELECT 1 with verify-full: {:.1} ms",
        tls.as_secs_f64() * 1e3
    );
    if let Ok(plain) = std::env::var("DATABASE_URL") {
        if !plain.contains("sslmode") {
            let plain = time(&format!("{plain}?sslmode=disable")).await;
            println!(
                "connect + SELECT 1 in plain text: {:.1} ms",
                plain.as_secs_f64() * 1e3
            );
        }
    }
}
