//! Unit tests of [`save`](super::save): atomic, hashes only, mode kept, nothing half written.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{load, save};
use crate::key::{generate_key, KeyRecord};
use crate::permission::{Permission, Permissions};
use crate::token::Environment;

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!(
            "ark-save-{tag}-{}-{:x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn keys(n: usize) -> (Vec<String>, Vec<KeyRecord>) {
    (0..n)
        .map(|i| {
            let g = generate_key(Environment::Live).unwrap();
            let r = g
                .record
                .clone()
                .with_name(format!("k{i}"))
                .with_permissions(Permission::EmailsSend.into());
            (g.plaintext.expose_secret().to_owned(), r)
        })
        .unzip()
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn saved_file_loads_the_same_records_and_holds_no_plaintext() {
    let dir = Dir::new("roundtrip");
    let path = dir.0.join("keys.json");
    let (plain, mut records) = keys(3);
    records[0] = records[0]
        .clone()
        .with_tenant("tn_1")
        .with_rate_limit(7)
        .with_metadata("team", "mail")
        .with_expiry(SystemTime::UNIX_EPOCH + Duration::from_nanos(1_798_761_600_123_456_789));
    records[1] = records[1]
        .clone()
        .with_revoked(true)
        .with_permissions(Permissions::ALL);
    save(&path, &records).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    for p in &plain {
        assert!(!text.contains(&p[9..]), "plaintext in the saved file");
    }
    assert_eq!(load(&path).unwrap(), records);
    assert_eq!(text.lines().count(), 5, "one entry per line:\n{text}");
    assert_eq!(dir.entries(), ["keys.json"], "no temporary file left");
    // An empty set is a valid file too.
    save(&path, Vec::<KeyRecord>::new()).unwrap();
    assert!(load(&path).unwrap().is_empty());
}

#[test]
fn mode_is_kept_and_new_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new("mode");
    let path = dir.0.join("keys.json");
    let (_, records) = keys(1);
    save(&path, &records).unwrap();
    assert_eq!(mode(&path), 0o600);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    save(&path, &records).unwrap();
    assert_eq!(mode(&path), 0o640);
}

#[test]
fn a_refused_save_leaves_the_old_file_whole() {
    let dir = Dir::new("refused");
    let path = dir.0.join("keys.json");
    let (_, records) = keys(4);
    save(&path, &records[..2]).unwrap();
    let before = std::fs::read(&path).unwrap();
    // Refused at the fourth entry, after three were written to the temporary file.
    let mut dup = records.clone();
    dup.push(records[2].clone().with_name("again"));
    let e = save(&path, &dup).unwrap_err();
    assert_eq!(e.entry, Some(4));
    assert_eq!(
        e.to_string(),
        "keys file entry 4 (\"again\"): the same key appears in an earlier entry"
    );
    let mut same_id = records[3].clone();
    same_id.set_id(records[0].id());
    let e = save(&path, [records[0].clone(), same_id]).unwrap_err();
    assert!(e.to_string().contains("appears in an earlier entry"), "{e}");
    let mut bad = records[3].clone();
    bad.set_id("");
    let e = save(&path, [bad]).unwrap_err();
    assert!(e.to_string().contains("`id` must be 1 to 128"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(dir.entries(), ["keys.json"], "no temporary file left");
    // A directory that does not exist: an error naming the path, nothing created.
    let e = save(dir.0.join("nope/keys.json"), &records).unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
}

#[test]
fn a_symlink_keeps_pointing_at_the_replaced_file() {
    let dir = Dir::new("link");
    let real = dir.0.join("real.json");
    let link = dir.0.join("keys.json");
    let (_, records) = keys(2);
    save(&real, &records[..1]).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    save(&link, &records).unwrap();
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(load(&real).unwrap(), records);
}

/// A reader loading the file while it is saved over and over always sees a whole file,
/// the old set or the new one (`std::fs::write` truncates first: readers see empty or
/// partial files).
#[test]
fn readers_never_see_half_a_file() {
    let dir = Dir::new("readers");
    let path = dir.0.join("keys.json");
    let (_, records) = keys(2_000);
    let (small, big) = (&records[..10], &records[..]);
    save(&path, small).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut loads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || loads == 0 {
                let n = load(&path).expect("a whole file").len();
                assert!(n == small.len() || n == big.len(), "{n} records");
                loads += 1;
            }
            loads
        });
        for round in 0..30 {
            save(&path, if round % 2 == 0 { big } else { small }).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    });
}
