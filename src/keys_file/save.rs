//! Writing a keys file atomically: [`save`].

use std::borrow::Borrow;
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{file_error, KeysFileError, PlainRecord};
use crate::key::KeyRecord;

/// Writes `records` to `path` as a keys file, atomically: the file is written in full to a
/// temporary file in the same directory, flushed to disk, renamed over `path`, and the
/// directory is flushed too. A reader (or a crash) sees the old file or the new one, never
/// half of one.
///
/// Entries carry `hash` (never a plaintext key), one entry per line. An existing file keeps
/// its permission bits (a new one is created readable by its owner only, `0600`); when
/// `path` is a symbolic link, the file it points to is replaced. Records that the keys file
/// could not load back (two with one id or one hash, an id of 0 or more than 128
/// characters, an empty tenant) are refused before anything is written, with the entry
/// named.
///
/// ```
/// use ark_auth::{generate_key, keys_file, Environment, MemoryKeyStore, Permissions};
///
/// let dir = std::env::temp_dir().join(format!("ark-save-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("keys.json");
/// let key = generate_key(Environment::Test)?;
/// let store = MemoryKeyStore::from_records([key.record.with_permissions(Permissions::ALL)])?;
///
/// keys_file::save(&path, store.records())?;
/// let text = std::fs::read_to_string(&path)?;
/// assert!(!text.contains(key.plaintext.expose_secret()));
/// assert_eq!(keys_file::load(&path)?.len(), 1);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn save<I>(path: impl AsRef<Path>, records: I) -> Result<(), KeysFileError>
where
    I: IntoIterator,
    I::Item: Borrow<KeyRecord>,
{
    let path = target(path.as_ref());
    let shown = path.display().to_string();
    let io = |what: &str, e: std::io::Error| file_error(format!("cannot {what} {shown}: {e}"));
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| file_error(format!("cannot write {shown}: not a file name")))?;
    let mode = fs::metadata(&path).ok().map(|m| m.permissions());

    let temp = Temp::create(&dir, file_name).map_err(|e| io("create a file beside", e))?;
    let mut out = BufWriter::new(&temp.file);
    write_entries(&mut out, records).map_err(|e| match e {
        Written::Io(e) => io("write", e),
        Written::Invalid(e) => e,
    })?;
    out.flush().map_err(|e| io("write", e))?;
    drop(out);
    if let Some(mode) = mode {
        temp.file
            .set_permissions(mode)
            .map_err(|e| io("keep the mode of", e))?;
    }
    temp.file.sync_all().map_err(|e| io("flush", e))?;
    temp.rename_to(&path).map_err(|e| io("replace", e))?;
    sync_dir(&dir).map_err(|e| io("flush the directory of", e))
}

/// The file to replace: `path`, or the file a symbolic link at `path` points to.
fn target(path: &Path) -> PathBuf {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(path).unwrap_or(path.to_owned()),
        _ => path.to_owned(),
    }
}

enum Written {
    Io(std::io::Error),
    Invalid(KeysFileError),
}

impl From<std::io::Error> for Written {
    fn from(e: std::io::Error) -> Self {
        Written::Io(e)
    }
}

/// `{"keys": [` one entry per line `]}`, refusing what would not load back.
fn write_entries<I>(out: &mut impl Write, records: I) -> Result<(), Written>
where
    I: IntoIterator,
    I::Item: Borrow<KeyRecord>,
{
    let mut hashes = HashSet::new();
    let mut ids = HashSet::new();
    out.write_all(b"{\"keys\": [")?;
    for (i, record) in records.into_iter().enumerate() {
        let record = record.borrow();
        let invalid = |reason: String| {
            Written::Invalid(KeysFileError {
                entry: Some(i),
                name: super::shown_name(record.name()),
                reason,
            })
        };
        let plain = PlainRecord::from(record);
        // The keys file's own rules decide what it could load back.
        match KeyRecord::try_from(plain.clone()) {
            Ok(back) if back == *record => {}
            Ok(_) => return Err(invalid("would not load back as the same record".into())),
            Err(e) => return Err(invalid(e.reason)),
        }
        if !hashes.insert(*record.hash()) {
            return Err(invalid("the same key appears in an earlier entry".into()));
        }
        if !ids.insert(record.id().to_owned()) {
            return Err(invalid(format!(
                "id {:?} appears in an earlier entry",
                record.id()
            )));
        }
        out.write_all(if i == 0 { b"\n  " } else { b",\n  " })?;
        serde_json::to_writer(&mut *out, &plain).map_err(std::io::Error::from)?;
    }
    out.write_all(b"\n]}\n")?;
    Ok(())
}

/// A temporary file beside the target, removed unless renamed.
struct Temp {
    file: File,
    path: Option<PathBuf>,
}

impl Temp {
    fn create(dir: &Path, name: &std::ffi::OsStr) -> std::io::Result<Temp> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut attempt = 0;
        loop {
            let mut temp_name = std::ffi::OsString::from(".");
            temp_name.push(name);
            temp_name.push(format!(
                ".tmp-{}-{:08x}",
                std::process::id(),
                fastrand::u32(..)
            ));
            let path = dir.join(temp_name);
            match options.open(&path) {
                Ok(file) => {
                    return Ok(Temp {
                        file,
                        path: Some(path),
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 16 => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn rename_to(mut self, to: &Path) -> std::io::Result<()> {
        let Some(from) = self.path.take() else {
            return Ok(());
        };
        match fs::rename(&from, to) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.path = Some(from);
                Err(e)
            }
        }
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = fs::remove_file(p);
        }
    }
}

/// Flushes a directory's entries (the rename) to disk; a no-op where directories cannot be
/// opened as files.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}
