//! The keys of a run: a keys file, or demo keys generated now and printed once.

use ark_auth::{
    generate_key, key::KeyRecord, keys_file, Environment, MemoryKeyStore, Permission, Permissions,
};

use super::reply::rfc3339;

fn describe(record: &KeyRecord) -> String {
    let mut s = if record.permissions() == Permissions::ALL {
        "full access (*)".to_owned()
    } else if record.permissions().is_empty() {
        "no permissions (GET /v1/limits only)".to_owned()
    } else {
        permission_names(record.permissions()).join(", ")
    };
    if let Some(t) = record.tenant() {
        s.push_str(&format!("; tenant {t} only"));
    }
    if let Some(limits) = record.rate_limits() {
        s.push_str(&format!("; rate limits {limits}"));
    }
    if record.is_revoked() {
        s.push_str("; revoked");
    }
    if let Some(at) = record.expires_at() {
        s.push_str(&format!("; expires {}", rfc3339(at)));
    }
    s
}

/// The keys of the demo when no keys file is given: generated now, printed once.
/// `lifetime` says how long they work: while this server runs, or as long as they stay in
/// the database.
pub fn demo_records(lifetime: &str) -> Result<Vec<KeyRecord>, Box<dyn std::error::Error>> {
    let specs: [(&str, Permissions, Option<&str>); 3] = [
        ("demo-full", Permissions::ALL, None),
        ("demo-send", Permission::EmailsSend.into(), None),
        (
            "demo-tenant",
            Permission::DomainsManage.into(),
            Some("tn_42"),
        ),
    ];
    let mut records = Vec::new();
    println!("Demo test keys (generated now, shown once, valid {lifetime}):");
    for (name, permissions, tenant) in specs {
        let key = generate_key(Environment::Test)?;
        let mut record = key.record.with_name(name).with_permissions(permissions);
        if let Some(t) = tenant {
            record = record.with_tenant(t);
        }
        println!(
            "  {}  {name}: {}",
            key.plaintext.expose_secret(),
            describe(&record)
        );
        records.push(record);
    }
    println!();
    Ok(records)
}

pub fn load_keys(path: &std::path::Path) -> Result<MemoryKeyStore, String> {
    let records = load_records(path)?;
    MemoryKeyStore::from_records(records).map_err(|e| format!("keys file: {e}"))
}

/// The records of a keys file, listed (hashes and names only).
pub fn load_records(path: &std::path::Path) -> Result<Vec<KeyRecord>, String> {
    let records = keys_file::load(path).map_err(|e| e.to_string())?;
    println!("Loaded {} key(s) from {}:", records.len(), path.display());
    for r in &records {
        let name = if r.name().is_empty() {
            "(no name)"
        } else {
            r.name()
        };
        println!(
            "  {} {name} [{}]: {}",
            r.id(),
            r.environment().as_str(),
            describe(r)
        );
    }
    println!();
    // No duplicate id or hash: the keys file refuses them, before any import.
    Ok(records)
}

/// Reloads the keys file into the running in-memory store on SIGHUP and whenever the file
/// changes, as a diff, all or nothing (a bad file is logged, naming the entry, and the keys
/// loaded before are still served). Keep the watcher while serving.
pub fn watch_keys(
    path: &std::path::Path,
    store: &MemoryKeyStore,
) -> Result<keys_file::KeysFileWatcher, String> {
    let watcher = keys_file::watch(path, store.clone()).map_err(|e| e.to_string())?;
    println!(
        "Reloading {} on SIGHUP and when it changes.",
        path.display()
    );
    Ok(watcher)
}

fn permission_names(p: Permissions) -> Vec<&'static str> {
    p.iter().map(Permission::as_str).collect()
}
