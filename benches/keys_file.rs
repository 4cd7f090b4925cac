//! Memory and time of loading a keys file into a `MemoryKeyStore`, and of reloading it:
//! peak resident memory (`VmHWM`) against the store's own footprint.
//!
//! run: `N=200000 cargo bench --bench keys_file` (default 200 000 keys; `FORM=key` for
//! entries with a plaintext `key` instead of `hash`, as `keys_file::save` writes them).
//! One size per process: the peak is a property of the process (Linux; reset through
//! `/proc/self/clear_refs` after the file is written).

use std::alloc::System;
use std::io::{BufWriter, Write};
use std::time::Instant;

use ark_auth::key::KeyRecord;
use ark_auth::keys_file::{self, PlainRecord};
use ark_auth::token::Token;
use ark_auth::{MemoryKeyStore, Permission};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// A `/proc/self/status` figure in bytes (`VmRSS`, `VmHWM`), 0 elsewhere than Linux.
fn status_bytes(field: &str) -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with(field))?;
            line.split_whitespace().nth(1)?.parse::<i64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// Resets `VmHWM` to the current RSS; `false` where the kernel does not allow it.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn mb(bytes: i64) -> f64 {
    bytes as f64 / 1e6
}

fn token(i: usize) -> String {
    format!("ark_live_{i:0>40}")
}

/// Writes the file entry by entry (nothing of it stays in memory).
fn write_file(path: &std::path::Path, n: usize, plaintext: bool) {
    let mut out = BufWriter::new(std::fs::File::create(path).unwrap());
    out.write_all(b"{\"keys\": [\n").unwrap();
    for i in 0..n {
        if i > 0 {
            out.write_all(b",\n").unwrap();
        }
        let name = format!("service-{i}");
        if plaintext {
            write!(
                out,
                r#"{{"key": "{}", "name": "{name}", "permissions": ["emails:send"]}}"#,
                token(i)
            )
            .unwrap();
        } else {
            let record = KeyRecord::from_token(&Token::parse(&token(i)).unwrap())
                .with_name(name)
                .with_permissions(Permission::EmailsSend.into());
            serde_json::to_writer(&mut out, &PlainRecord::from(&record)).unwrap();
        }
    }
    out.write_all(b"\n]}\n").unwrap();
}

fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let plaintext = std::env::var("FORM").is_ok_and(|f| f == "key");
    let dir = std::env::temp_dir().join(format!("ark-keys-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.json");
    write_file(&path, n, plaintext);
    let file_bytes = std::fs::metadata(&path).unwrap().len() as i64;
    let form = if plaintext { "key" } else { "hash" };

    let reset = reset_peak();
    let base = status_bytes("VmRSS:");
    let region = Region::new(GLOBAL);
    let t = Instant::now();
    let records = keys_file::load(&path).unwrap();
    let parsed = t.elapsed();
    let store = MemoryKeyStore::from_records(records).unwrap();
    let loaded = t.elapsed();
    let c = region.change();
    let heap = c.bytes_allocated as i64 - c.bytes_deallocated as i64;
    let peak = status_bytes("VmHWM:") - base;
    let after = status_bytes("VmRSS:") - base;
    assert_eq!(store.len(), n);

    println!(
        "{n} keys ({form} entries, file {:.1} MB), peak reset: {reset}",
        mb(file_bytes)
    );
    println!(
        "  load: {:.2} s (parse {:.2} s, store {:.2} s)",
        loaded.as_secs_f64(),
        parsed.as_secs_f64(),
        (loaded - parsed).as_secs_f64()
    );
    println!(
        "  store heap {:.1} MB ({} B/key); RSS after load {:.1} MB ({} B/key)",
        mb(heap),
        heap / n as i64,
        mb(after),
        after / n as i64
    );
    println!(
        "  peak RSS during load {:.1} MB ({} B/key) = {:.2}x the store's heap",
        mb(peak),
        peak / n as i64,
        peak as f64 / heap as f64
    );

    // A reload of the same file into the running store: nothing changes.
    reset_peak();
    let base = status_bytes("VmRSS:");
    let t = Instant::now();
    let changes = keys_file::reload(&path, &store).unwrap();
    let took = t.elapsed();
    let peak = status_bytes("VmHWM:") - base;
    assert_eq!(changes.unchanged, n);
    println!(
        "  reload (unchanged): {:.2} s, peak RSS above the loaded store {:.1} MB ({} B/key)",
        took.as_secs_f64(),
        mb(peak),
        peak / n as i64
    );
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
}
