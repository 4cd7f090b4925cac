//! The demo server PROCESS (`examples/server/`, in memory) with `--keys FILE`, driven over
//! real TCP while its keys file changes under it:
//!
//! - a key added to the file (by `keys_file::save`, a rename) is accepted;
//! - a key removed from it (by a write in place) is refused; the others stay accepted;
//! - a bad file changes nothing (the old set is still served) and is logged, naming the
//!   entry and never a key;
//! - SIGHUP reloads a change the watcher cannot see (the file is a symbolic link to a file
//!   in another directory, as a Kubernetes ConfigMap mounts it).
//!
//! The example binary is found beside the test binary (`cargo test` builds examples first,
//! see `tests/fleet.rs`); without it the test skips, or fails under `CI=true`.

#![cfg(unix)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ark_auth::key::KeyRecord;
use ark_auth::{generate_key, keys_file, Environment, Permissions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[path = "common/process.rs"]
mod process;
use process::status;

fn server_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe
        .parent()?
        .parent()?
        .join("examples")
        .join(format!("server{}", std::env::consts::EXE_SUFFIX));
    if bin.is_file() {
        return Some(bin);
    }
    let why = format!(
        "no server example binary at {} (cargo test builds it; or run `cargo build --example server`)",
        bin.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true: {why}");
    }
    eprintln!("skipping: {why}");
    None
}

struct Server {
    addr: SocketAddr,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

async fn start(bin: &Path, keys: &Path) -> Server {
    let mut child = Command::new(bin)
        .args(["--listen", "127.0.0.1:0"])
        .arg("--keys")
        .arg(keys)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the demo server");
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut err_lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let sink = Arc::clone(&log);
    tokio::spawn(async move {
        while let Ok(Some(line)) = err_lines.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });
    let addr = process::listen_address(&mut child, || format!("{:?}", log.lock().unwrap())).await;
    Server { addr, child, log }
}

/// Polls (every 20 ms, at most 5 s) until the key gets `want`; the time it took.
async fn until_status(addr: SocketAddr, token: &str, want: u16) -> Duration {
    let start = Instant::now();
    loop {
        let got = status(addr, token).await;
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still {got}, not {want}, after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls (at most 5 s) until a log line contains `needle`; that line.
async fn until_logged(server: &Server, needle: &str) -> String {
    let start = Instant::now();
    loop {
        if let Some(l) = server
            .log
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(needle))
        {
            return l.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no log line with {needle:?}: {:?}",
            server.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn key(name: &str) -> (String, KeyRecord) {
    let g = generate_key(Environment::Test).unwrap();
    let r = g.record.with_name(name).with_permissions(Permissions::ALL);
    (g.plaintext.expose_secret().to_owned(), r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_file_changes_under_a_running_server() {
    let Some(bin) = server_binary() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("ark-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.json");
    let (a, ra) = key("a");
    let (b, rb) = key("b");
    let (c, rc) = key("c");
    keys_file::save(&path, [&ra]).unwrap();
    let server = start(&bin, &path).await;
    let addr = server.addr;
    assert_eq!(status(addr, &a).await, 200);
    assert_eq!(status(addr, &b).await, 401);

    // Added (a rename over the file): accepted.
    keys_file::save(&path, [&ra, &rb]).unwrap();
    let took = until_status(addr, &b, 200).await;
    eprintln!("added key accepted after {took:?}");
    until_logged(&server, "keys file reloaded").await;

    // Removed (a write in place): refused; the other key stays accepted.
    let text = format!("{{\"keys\": [{}]}}", keys_file::record_to_json(&rb));
    std::fs::write(&path, text).unwrap();
    let took = until_status(addr, &a, 401).await;
    eprintln!("removed key refused after {took:?}");
    assert_eq!(status(addr, &b).await, 200);

    // A bad file: nothing changes, and the log names the entry, never a key.
    let bad = format!(
        "{{\"keys\": [{}, {}, {{\"key\": \"{a}\", \"name\": \"broken\", \"permissions\": [\"emails:sned\"]}}]}}",
        keys_file::record_to_json(&rb),
        keys_file::record_to_json(&rc),
    );
    std::fs::write(&path, bad).unwrap();
    let line = until_logged(&server, "not reloaded").await;
    eprintln!("logged: {line}");
    assert!(line.contains("entry 2 (\"broken\")"), "{line}");
    for token in [&a, &b, &c] {
        assert!(
            !line.contains(&token[9..17]),
            "the log repeats a key: {line}"
        );
    }
    assert_eq!(status(addr, &b).await, 200, "the old set is still served");
    assert_eq!(
        status(addr, &c).await,
        401,
        "nothing of the bad file was applied"
    );
    assert_eq!(status(addr, &a).await, 401);
    drop(server);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_what_the_watcher_cannot_see() {
    let Some(bin) = server_binary() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("ark-reload-hup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let real = dir.join("data").join("keys.json");
    let link = dir.join("keys.json");
    let (a, ra) = key("a");
    let (b, rb) = key("b");
    keys_file::save(&real, [&ra]).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let mut server = start(&bin, &link).await;
    let addr = server.addr;
    assert_eq!(status(addr, &a).await, 200);

    // The target changes in a directory nobody watches: no reload by itself.
    keys_file::save(&real, [&rb]).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status(addr, &b).await, 401);

    let pid = server.child.id().unwrap().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let took = until_status(addr, &b, 200).await;
    eprintln!("SIGHUP reload took {took:?}");
    assert_eq!(status(addr, &a).await, 401);
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "SIGHUP did not stop the server"
    );
    drop(server);
    std::fs::remove_dir_all(&dir).ok();
}
