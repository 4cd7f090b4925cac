//! The `ark-auth` binary, run as a user runs it, against a keys file and a real PostgreSQL,
//! with the demo server (`examples/server/`, compiled in as `tests/demo_server.rs` does)
//! serving the keys over TCP: a created key is accepted, a revoked one refused within a
//! second, a rotated pair both accepted until the grace ends. Every output is checked for
//! secrets: a plaintext appears once, in the answer of the command that made it.
//!
//! The PostgreSQL test needs `DATABASE_URL` (skipped with a printed reason when unset, a
//! failure under `CI=true`); it works in a database of its own, dropped at the end.

#[allow(dead_code, unused_imports)]
#[path = "../examples/server/main.rs"]
mod server;

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use ark_auth::{keys_file, MemoryKeyStore};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const BIN: &str = env!("CARGO_BIN_EXE_ark-auth");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", self.stdout))
    }
}

/// Runs the binary with `store` (`--keys-file PATH` or `--database-url URL`) and `args`,
/// DATABASE_URL unset, `stdin` fed in.
fn ark(store: &[&str], args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(BIN)
        .args(store)
        .args(args)
        .env_remove("DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ark-auth");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Runs and expects success.
fn ok(store: &[&str], args: &[&str]) -> Run {
    let r = ark(store, args, "");
    assert_eq!(r.code, 0, "{args:?} failed: {}{}", r.stdout, r.stderr);
    r
}

/// A created or rotated key: (id, plaintext) from `--json` output.
fn minted(r: &Run) -> (String, String) {
    let v = r.json();
    let key = v["key"].as_str().expect("key in the output").to_owned();
    assert!(key.starts_with("ark_test_") || key.starts_with("ark_live_"));
    (v["record"]["id"].as_str().unwrap().to_owned(), key)
}

/// Neither the secret part of any of `keys` nor a full hash of one appears in `text`.
fn assert_no_secret(text: &str, keys: &[&str], what: &str) {
    for k in keys {
        assert!(!text.contains(&k[9..]), "{what} shows a key: {text}");
        let hash = ark_auth::key::KeyHash::of(&ark_auth::token::Token::parse(k).unwrap());
        assert!(
            !text.contains(&hash.to_hex()),
            "{what} shows a full hash: {text}"
        );
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ark-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rfc3339(s: &str) -> SystemTime {
    OffsetDateTime::parse(s, &Rfc3339).unwrap().into()
}

/// The demo server's router on a TCP port of its own.
async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::serve::serve(
        listener,
        router,
        server::serve::LIMITS,
        std::future::pending(),
    ));
    addr
}

/// The status of `GET /v1/limits` (any valid key) with `key`.
async fn status(addr: SocketAddr, key: &str) -> u16 {
    let req = common::request("GET", "/v1/limits", &[common::bearer(key)]);
    common::send(addr, &req).await.status
}

#[tokio::test]
async fn keys_file_lifecycle_and_the_demo_server_on_it() {
    let dir = scratch("file");
    let path = dir.join("keys.json");
    let file = ["--keys-file", path.to_str().unwrap()];

    // create: the plaintext once, in the answer; the file holds its hash only.
    let created = ok(
        &file,
        &[
            "--json",
            "keys",
            "create",
            "--permissions",
            "emails:send,emails:read",
            "--name",
            "billing",
            "--tenant",
            "tn_42",
            "--rate-limit",
            "7",
            "--metadata",
            "team=pay",
        ],
    );
    let (id, key) = minted(&created);
    assert_eq!(created.stdout.matches(&key[9..]).count(), 1);
    assert!(created.stderr.is_empty(), "{}", created.stderr);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(&key[9..]), "the file holds the key: {text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "a new keys file is readable by its owner only"
        );
    }
    let text_create = ok(
        &file,
        &["keys", "create", "--permissions", "*", "--env", "live"],
    );
    let live = text_create
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("key (shown once, stored nowhere): "))
        .expect("the plaintext line")
        .to_owned();
    assert!(live.starts_with("ark_live_"));

    // list and show: no secret, no full hash.
    let list = ok(&file, &["--json", "keys", "list"]);
    let listed = list.json();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["tenant"], "tn_42");
    assert_eq!(listed[0]["rate_limit"], 7);
    assert_eq!(listed[0]["status"], "active");
    assert_eq!(listed[1]["permissions"], serde_json::json!(["*"]));
    let table = ok(&file, &["keys", "list"]);
    let show = ok(&file, &["keys", "show", &id]);
    assert!(show.stdout.contains("tn_42") && show.stdout.contains("team=pay"));
    for (what, out) in [("list", &list), ("list", &table), ("show", &show)] {
        assert_no_secret(
            &format!("{}{}", out.stdout, out.stderr),
            &[&key, &live],
            what,
        );
    }

    // The demo server on this file accepts both keys.
    let records = keys_file::load(&path).unwrap();
    let addr = serve(server::app(MemoryKeyStore::from_records(records).unwrap())).await;
    assert_eq!(status(addr, &key).await, 200);
    assert_eq!(status(addr, &live).await, 200);

    // rotate: a successor with the same fields; the old key keeps working for the grace.
    let rotated = ok(&file, &["--json", "keys", "rotate", &id, "--grace", "1h"]);
    let (new_id, new_key) = minted(&rotated);
    let r = rotated.json();
    assert_eq!(r["record"]["tenant"], "tn_42");
    assert_eq!(r["record"]["metadata"]["team"], "pay");
    assert_eq!(r["record"]["rate_limit"], 7);
    let old_end = rfc3339(r["old"]["expires_at"].as_str().unwrap());
    let in_an_hour = old_end.duration_since(SystemTime::now()).unwrap();
    assert!(in_an_hour > Duration::from_secs(3500) && in_an_hour <= Duration::from_secs(3600));
    assert_no_secret(&rotated.stdout, &[&key, &live], "rotate");
    assert_eq!(rotated.stdout.matches(&new_key[9..]).count(), 1);

    // revoke, then a rotation of the revoked key is refused by name, exit 1.
    ok(&file, &["keys", "revoke", &id]);
    let refused = ark(&file, &["keys", "rotate", &id, "--grace", "1h"], "");
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("revoked") && refused.stderr.contains(&id));
    // The demo server on the file as it is now.
    let records = keys_file::load(&path).unwrap();
    let addr = serve(server::app(MemoryKeyStore::from_records(records).unwrap())).await;
    assert_eq!(status(addr, &key).await, 401);
    assert_eq!(status(addr, &new_key).await, 200);

    // expire: at once, then cleared.
    ok(&file, &["keys", "expire", &new_id, "--now"]);
    let shown = ok(&file, &["--json", "keys", "show", &new_id]).json();
    assert_eq!(shown["status"], "expired");
    ok(&file, &["keys", "expire", &new_id, "--never"]);
    let shown = ok(&file, &["--json", "keys", "show", &new_id]).json();
    assert_eq!(
        (&shown["status"], &shown["expires_at"]),
        (&"active".into(), &Value::Null)
    );

    // export: hashes only; import it elsewhere, and a plaintext entry from stdin.
    let export = ok(&file, &["keys", "export"]);
    assert!(!export.stdout.contains("\"key\""));
    for k in [&key, &live, &new_key] {
        assert!(!export.stdout.contains(&k[9..]), "export holds a key");
    }
    let copy = dir.join("copy.json");
    let copy_file = ["--keys-file", copy.to_str().unwrap()];
    let imported = ark(
        &copy_file,
        &["--json", "keys", "import", "-"],
        &export.stdout,
    );
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    assert_eq!(imported.json()["added"], 3);
    assert_eq!(
        keys_file::load(&copy).unwrap(),
        keys_file::load(&path).unwrap()
    );
    let plain = "ark_test_ImportedFromElsewhere0123456789";
    let entry = format!(r#"{{"keys": [{{"key": "{plain}", "name": "old", "permissions": []}}]}}"#);
    let imported = ark(&copy_file, &["keys", "import", "-"], &entry);
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    assert!(imported.stdout.contains("1 new"), "{}", imported.stdout);
    let text = std::fs::read_to_string(&copy).unwrap();
    assert!(
        !text.contains(&plain[9..]),
        "the keys file holds the key: {text}"
    );
    let addr = serve(server::app(
        MemoryKeyStore::from_records(keys_file::load(&copy).unwrap()).unwrap(),
    ))
    .await;
    assert_eq!(status(addr, plain).await, 200);

    errors_name_what_was_wrong(&file, &key, &path);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Errors: exit 1 (2 for the command line), named, never repeating a key.
fn errors_name_what_was_wrong(file: &[&str], key: &str, path: &Path) {
    let before = std::fs::read(path).unwrap();
    let unknown = ark(file, &["keys", "revoke", "key_nope"], "");
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("no key with id \"key_nope\""),
        "{}",
        unknown.stderr
    );
    // A key pasted where an id or a value goes is not echoed, by us or by clap.
    for args in [
        vec!["keys", "show", key],
        vec!["keys", "rotate", key, "--grace", "1h"],
        vec!["keys", "rotate", "key_x", "--grace", key],
        vec!["keys", "create", "--permissions", key],
        vec!["keys", "create", "--permissions", "*", "--rate-limit", key],
        vec!["keys", "expire", "key_x", "--at", key],
        vec![key],
    ] {
        let r = ark(file, &args, "");
        assert_ne!(r.code, 0, "{args:?}");
        assert!(r.stderr.starts_with("error: "), "{args:?}: {}", r.stderr);
        assert_no_secret(&format!("{}{}", r.stdout, r.stderr), &[key], "an error");
    }
    let bad = ark(file, &["keys", "rotate", "key_x", "--grace", "24"], "");
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("is not a duration"), "{}", bad.stderr);
    let bad = ark(
        file,
        &["keys", "create", "--permissions", "emails:sned"],
        "",
    );
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("emails:sned"), "{}", bad.stderr);
    let none = ark(&[], &["keys", "list"], "");
    assert_eq!(none.code, 1);
    assert!(none.stderr.contains("--database-url") && none.stderr.contains("--keys-file"));
    let missing = ark(
        &["--keys-file", "/nonexistent/keys.json"],
        &["keys", "list"],
        "",
    );
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("/nonexistent/keys.json"),
        "{}",
        missing.stderr
    );
    let bad_import = ark(
        file,
        &["keys", "import", "-"],
        r#"{"keys": [{"name": "x"}]}"#,
    );
    assert_eq!(bad_import.code, 1);
    assert!(
        bad_import.stderr.contains("entry 0"),
        "{}",
        bad_import.stderr
    );
    assert_eq!(
        std::fs::read(path).unwrap(),
        before,
        "a failed command changes nothing"
    );
}

/// `rate_limits` of a `--json` record as texts; `None` when null (the server's default).
fn limits_of(record: &Value) -> Option<Vec<String>> {
    let list = record["rate_limits"].as_array()?;
    Some(
        list.iter()
            .map(|l| l.as_str().unwrap().to_owned())
            .collect(),
    )
}

/// Rate limits through the command line, on either back-end: `--rate-limit` as a number
/// (per second) and as several limits, shown by `list` and `show` (text and `--json`),
/// copied by `rotate`, changed and cleared by `set-limits`; invalid limits exit 2 naming
/// the problem and change nothing. Returns the key left with `100/s,2/min` (id, plaintext).
fn rate_limits_through_the_cli(store: &[&str]) -> (String, String) {
    let create = |limit: Option<&str>| {
        let mut args = vec!["--json", "keys", "create", "--permissions", "*"];
        args.extend(limit.map(|l| ["--rate-limit", l]).into_iter().flatten());
        ok(store, &args).json()["record"].clone()
    };
    let several = create(Some("10/s,1000/h,50000/d"));
    assert_eq!(several["rate_limit"], 10, "the per-second value, as before");
    assert_eq!(limits_of(&several).unwrap(), ["10/s", "1000/h", "50000/d"]);
    let one = create(Some("7"));
    assert_eq!(one["rate_limit"], 7);
    assert_eq!(limits_of(&one).unwrap(), ["7/s"]);
    let hourly = create(Some("50/h"));
    assert_eq!(hourly["rate_limit"], Value::Null, "no per-second limit");
    assert_eq!(limits_of(&hourly).unwrap(), ["50/h"]);
    let plain = create(None);
    assert_eq!(plain["rate_limit"], Value::Null);
    assert_eq!(plain["rate_limits"], Value::Null);
    let id = several["id"].as_str().unwrap().to_owned();

    let listed = ok(store, &["--json", "keys", "list"]).json();
    let of = |id: &Value| {
        let all = listed.as_array().unwrap();
        all.iter().find(|k| k["id"] == *id).unwrap().clone()
    };
    for record in [&several, &one, &hourly, &plain] {
        let listed = of(&record["id"]);
        assert_eq!(listed["rate_limits"], record["rate_limits"], "{listed}");
        assert_eq!(listed["rate_limit"], record["rate_limit"], "{listed}");
    }
    let table = ok(store, &["keys", "list"]).stdout;
    assert!(
        table.lines().next().unwrap().contains("RATE LIMITS"),
        "{table}"
    );
    let row = table.lines().find(|l| l.starts_with(&id)).unwrap();
    assert!(row.contains("10/s,1000/h,50000/d"), "{table}");
    let show = ok(store, &["keys", "show", &id]).stdout;
    assert!(
        show.contains("rate_limits:  10/s,1000/h,50000/d\n"),
        "{show}"
    );
    let plain_id = plain["id"].as_str().unwrap();
    let show = ok(store, &["keys", "show", plain_id]).stdout;
    assert!(
        show.contains("rate_limits:  - (the server's default)\n"),
        "{show}"
    );

    // rotate: the successor has all of the old key's limits.
    let rotated = ok(store, &["--json", "keys", "rotate", &id, "--grace", "1h"]).json();
    assert_eq!(rotated["record"]["rate_limits"], several["rate_limits"]);

    // Invalid limits: exit 2, the problem named, nothing changed.
    let before = ok(store, &["--json", "keys", "list"]).stdout;
    for (args, problem) in [
        (
            vec![
                "keys",
                "create",
                "--permissions",
                "*",
                "--rate-limit",
                "10/fortnight",
            ],
            "unknown window \"fortnight\"",
        ),
        (
            vec![
                "keys",
                "create",
                "--permissions",
                "*",
                "--rate-limit",
                "10/s,20/s",
            ],
            "the window second is given twice",
        ),
        (
            vec!["keys", "create", "--permissions", "*", "--rate-limit", "0"],
            "limit \"0\" is not a whole number of requests from 1 to 4294967295",
        ),
        (
            vec!["keys", "set-limits", &id, "1/s,1/min,1/h,1/d,1/7d"],
            "more than 4 rate limits",
        ),
    ] {
        let r = ark(store, &args, "");
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.starts_with("error: "), "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(problem), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
    }
    assert_eq!(ok(store, &["--json", "keys", "list"]).stdout, before);

    // set-limits: replaces the key's limits; `default` clears them; an unknown id exits 1.
    let (id, key) = minted(&ok(
        store,
        &[
            "--json",
            "keys",
            "create",
            "--permissions",
            "*",
            "--rate-limit",
            "5",
        ],
    ));
    let set = ok(store, &["keys", "set-limits", &id, "100/s,2/min"]);
    assert_eq!(set.stdout, format!("{id} rate limits: 100/s,2/min\n"));
    let shown = ok(store, &["--json", "keys", "show", &id]).json();
    assert_eq!(limits_of(&shown).unwrap(), ["100/s", "2/min"]);
    assert_eq!(shown["rate_limit"], 100);
    let one_id = one["id"].as_str().unwrap();
    let cleared = ok(store, &["--json", "keys", "set-limits", one_id, "default"]).json();
    assert_eq!(
        (&cleared["rate_limit"], &cleared["rate_limits"]),
        (&Value::Null, &Value::Null)
    );
    let text = ok(store, &["keys", "set-limits", plain_id, "default"]).stdout;
    assert_eq!(
        text,
        format!("{plain_id} rate limits: the server's default\n")
    );
    let unknown = ark(store, &["keys", "set-limits", "key_nope", "5"], "");
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("no key with id \"key_nope\""),
        "{}",
        unknown.stderr
    );
    (id, key)
}

/// The demo server applies the limits `set-limits` gave (`100/s,2/min`): the third request
/// is refused by the minute, named in the message.
async fn refused_by_the_minute(addr: SocketAddr, key: &str) {
    let req = common::request("GET", "/v1/limits", &[common::bearer(key)]);
    for _ in 0..2 {
        assert_eq!(common::send(addr, &req).await.status, 200);
    }
    let res = common::send(addr, &req).await;
    assert_eq!(res.status, 429);
    assert_eq!(
        res.json()["error"]["message"],
        "Rate limit exceeded: 2 requests per minute"
    );
    assert_eq!(res.header("x-ratelimit-limit").as_deref(), Some("2"));
}

#[tokio::test]
async fn rate_limits_in_a_keys_file() {
    let dir = scratch("limits");
    let path = dir.join("keys.json");
    let file = ["--keys-file", path.to_str().unwrap()];
    let (id, key) = rate_limits_through_the_cli(&file);
    let records = keys_file::load(&path).unwrap();
    let stored = records.iter().find(|r| r.id() == id).unwrap();
    assert_eq!(stored.rate_limits(), Some("100/s,2/min".parse().unwrap()));
    let addr = serve(server::app(MemoryKeyStore::from_records(records).unwrap())).await;
    refused_by_the_minute(addr, &key).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_in_postgres() {
    let Some(url) = pg::database_url("rate_limits_in_postgres") else {
        return;
    };
    let name = format!("ark_cli_limits_{}", std::process::id());
    let db = own_database(&url, &name).await;
    let (id, key) = rate_limits_through_the_cli(&["--database-url", db.as_str()]);
    let store = ark_auth::postgres::PostgresKeyStore::connect(&db)
        .await
        .unwrap();
    let stored = store.get(&id).await.unwrap().unwrap().record;
    assert_eq!(stored.rate_limits(), Some("100/s,2/min".parse().unwrap()));
    let (router, listener) = server::backends::fleet_app(Vec::new(), Some(&db), None)
        .await
        .unwrap();
    let addr = serve(router).await;
    refused_by_the_minute(addr, &key).await;
    drop((listener, store));
    drop_database(&url, &name).await;
}

/// A database of this test's own on the server of `DATABASE_URL`.
async fn own_database(url: &str, name: &str) -> String {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    for statement in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        client.batch_execute(&statement).await.unwrap();
    }
    let (base, _) = url.split_once('?').unwrap_or((url, ""));
    let at = base.rfind('/').unwrap();
    format!("{}/{name}", &base[..at])
}

async fn drop_database(url: &str, name: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap_or_else(|e| panic!("drop the test's database {name}: {e:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_and_the_demo_server_with_its_revocation_listener() {
    let Some(url) = pg::database_url("postgres_and_the_demo_server_with_its_revocation_listener")
    else {
        return;
    };
    let name = format!("ark_cli_{}", std::process::id());
    let db = own_database(&url, &name).await;
    let store = ["--database-url", db.as_str()];

    // The first command applies the schema; then the demo server starts on the table.
    let (id, key) = minted(&ok(
        &store,
        &[
            "--json",
            "keys",
            "create",
            "--permissions",
            "*",
            "--rate-limit",
            "1000",
        ],
    ));
    let (router, listener) = server::backends::fleet_app(Vec::new(), Some(&db), None)
        .await
        .unwrap();
    let listener = listener.expect("the demo on PostgreSQL listens for revocations");
    assert!(listener.wait_connected(Duration::from_secs(10)).await);
    let addr = serve(router).await;
    assert_eq!(status(addr, &key).await, 200);

    // A key created while the server runs is accepted; revoked, refused within a second.
    let (id2, key2) = minted(&ok(
        &store,
        &[
            "--json",
            "keys",
            "create",
            "--permissions",
            "emails:send",
            "--name",
            "ci",
        ],
    ));
    assert_eq!(status(addr, &key2).await, 200);
    ok(&store, &["keys", "revoke", &id2]);
    let revoked = Instant::now();
    while status(addr, &key2).await != 401 {
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "still accepted after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "revoked key refused {:.0} ms after `keys revoke` returned",
        revoked.elapsed().as_secs_f64() * 1e3
    );

    // A rotated pair: both accepted until the grace ends, then only the successor.
    let rotated = ok(&store, &["--json", "keys", "rotate", &id, "--grace", "2s"]);
    let (_, new_key) = minted(&rotated);
    let end = rfc3339(rotated.json()["old"]["expires_at"].as_str().unwrap());
    assert_eq!(status(addr, &new_key).await, 200);
    let refused_at = loop {
        let now = SystemTime::now();
        let old = status(addr, &key).await;
        if old == 401 {
            break now;
        }
        assert_eq!(old, 200);
        assert!(
            now < end + Duration::from_secs(1),
            "old key accepted 1 s after the grace"
        );
        assert_eq!(status(addr, &new_key).await, 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Refused only once the grace is over (the request was sent at or after `refused_at`).
    assert!(
        refused_at + Duration::from_millis(100) >= end,
        "old key refused before the grace ended"
    );
    assert_eq!(status(addr, &new_key).await, 200);
    println!(
        "rotated pair: old key refused {:.0} ms after its grace ended, successor still accepted",
        refused_at
            .duration_since(end)
            .unwrap_or_default()
            .as_secs_f64()
            * 1e3
    );

    // list, show and export: no secret, no full hash (export: hashes, never a key).
    let list = ok(&store, &["--json", "keys", "list"]);
    assert_eq!(list.json().as_array().unwrap().len(), 3);
    assert!(list.json()[0]["created_at"].is_string());
    let show = ok(&store, &["keys", "show", &id]);
    for (what, out) in [("list", &list), ("show", &show)] {
        assert_no_secret(&out.stdout, &[&key, &key2, &new_key], what);
    }
    let export = ok(&store, &["keys", "export"]);
    for k in [&key, &key2, &new_key] {
        assert!(!export.stdout.contains(&k[9..]), "export holds a key");
    }
    let exported = keys_file::parse(&export.stdout).unwrap();
    assert_eq!(exported.len(), 3);

    // import (from a file): a plaintext key made elsewhere, accepted by the running server.
    let dir = scratch("pg");
    let plain = "ark_live_MadeByAnotherSystem0123456789";
    let file = dir.join("import.json");
    std::fs::write(
        &file,
        format!(r#"{{"keys": [{{"key": "{plain}", "name": "legacy", "permissions": ["*"]}}]}}"#),
    )
    .unwrap();
    let imported = ok(&store, &["keys", "import", file.to_str().unwrap()]);
    assert!(imported.stdout.contains("1 new"), "{}", imported.stdout);
    assert_no_secret(&imported.stdout, &[plain], "import");
    assert_eq!(status(addr, plain).await, 200);

    let unknown = ark(&store, &["keys", "rotate", "key_nope", "--grace", "1h"], "");
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.contains("key_nope"), "{}", unknown.stderr);
    let down = ark(
        &["--database-url", "postgres://postgres:x@127.0.0.1:1/none"],
        &["keys", "list"],
        "",
    );
    assert_eq!(down.code, 1);
    assert!(
        down.stderr.starts_with("error: PostgreSQL: "),
        "{}",
        down.stderr
    );

    drop(listener);
    let _ = std::fs::remove_dir_all(&dir);
    drop_database(&url, &name).await;
}
