//! A keys file that changes while serving: [`reload`] applies it to a running
//! [`MemoryKeyStore`] as a diff, all or nothing; [`watch`] (feature `reload`) does it on
//! SIGHUP and whenever the file changes.

use std::path::Path;

use super::{file_error, load, scrub, KeysFileError};
use crate::store::{KeyChanges, MemoryKeyStore};

/// Reads and parses the whole file at `path`, then makes `store` hold exactly its keys,
/// changing only what differs ([`MemoryKeyStore::replace_all`]).
///
/// All or nothing: a file that does not load (any entry refused, the file missing or half
/// written) or a set the store cannot hold changes nothing, and the error names the entry
/// (never a key). Requests keep being served from the store throughout.
///
/// ```
/// use ark_auth::{keys_file, MemoryKeyStore};
///
/// let dir = std::env::temp_dir().join(format!("ark-reload-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("keys.json");
/// std::fs::write(&path, r#"{"keys": [
///     {"key": "ark_test_0123456789abcdefXYZ", "name": "ci", "permissions": ["emails:send"]}
/// ]}"#)?;
/// let store = MemoryKeyStore::new();
/// assert_eq!(keys_file::reload(&path, &store)?.added, 1);
///
/// std::fs::write(&path, r#"{"keys": [{"key": "ark_test_0123456789abcdefXYZ", "permissions": ["emails:sned"]}]}"#)?;
/// let err = keys_file::reload(&path, &store).unwrap_err();
/// assert!(err.to_string().starts_with("keys file entry 0: unknown permission"));
/// assert_eq!(store.records()[0].name(), "ci", "the keys loaded before are still served");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn reload(path: impl AsRef<Path>, store: &MemoryKeyStore) -> Result<KeyChanges, KeysFileError> {
    let records = load(path)?;
    store.replace_all(records).map_err(|e| {
        let msg = e.to_string();
        let secrets = scrub::secrets_in(&msg, []);
        file_error(scrub::scrub_text(&msg, &secrets))
    })
}

#[cfg(feature = "reload")]
pub use watch::{watch, KeysFileWatcher};

#[cfg(feature = "reload")]
mod watch {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use notify::{EventKind, RecursiveMode, Watcher};
    use tokio::sync::mpsc;
    use tokio::task::JoinHandle;

    use super::{file_error, reload, KeysFileError};
    use crate::store::MemoryKeyStore;

    /// How long after the first sign of a change the file is read, so that a burst of
    /// writes (an editor saving, a copy in progress) is read once, when done.
    const SETTLE: Duration = Duration::from_millis(100);

    /// Reloads the keys file at `path` into `store` ([`reload`]) on SIGHUP (Unix) and
    /// whenever the file changes, until the returned watcher is dropped.
    ///
    /// The file's directory is watched, not the file: editors, `cp`, and
    /// [`save`](super::super::save) replace a file by renaming another over it. Every
    /// reload is logged (`tracing`): the counts of added, changed and removed keys at
    /// `info`, or, for a file that does not load, the error naming the entry at `error`,
    /// with the keys loaded before still served. Must be called inside a Tokio runtime;
    /// the file is read on its blocking pool. From this call on, SIGHUP no longer stops
    /// the process (it reloads).
    ///
    /// ```no_run
    /// use ark_auth::{keys_file, MemoryKeyStore};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = MemoryKeyStore::from_records(keys_file::load("keys.json")?)?;
    /// let _watcher = keys_file::watch("keys.json", store.clone())?;
    /// // Serve with `ArkAuthLayer::new(store)`; keep `_watcher` alive while serving.
    /// # Ok(()) }
    /// ```
    pub fn watch(
        path: impl Into<PathBuf>,
        store: MemoryKeyStore,
    ) -> Result<KeysFileWatcher, KeysFileError> {
        let path: PathBuf = path.into();
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| file_error("watching a keys file needs a Tokio runtime"))?;
        let name = path
            .file_name()
            .map(|n| n.to_owned())
            .ok_or_else(|| file_error("a keys file path must name a file"))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        // One pending reload at most: signs of change arriving meanwhile join it.
        let (tx, rx) = mpsc::channel::<()>(1);
        let file_tx = tx.clone();
        let mut fs = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            let touches_file = event.paths.iter().any(|p| p.file_name() == Some(&name));
            let writes = !matches!(event.kind, EventKind::Access(a) if !is_close_write(a));
            if touches_file && writes {
                let _ = file_tx.try_send(());
            }
        })
        .map_err(|e| watch_error(&dir, e))?;
        fs.watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| watch_error(&dir, e))?;

        let mut tasks = vec![runtime.spawn(reloads(rx, path, store))];
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let _guard = runtime.enter();
            let mut hup = signal(SignalKind::hangup())
                .map_err(|e| file_error(format!("cannot listen for SIGHUP: {e}")))?;
            tasks.push(runtime.spawn(async move {
                while hup.recv().await.is_some() {
                    let _ = tx.try_send(());
                }
            }));
        }
        #[cfg(not(unix))]
        drop(tx);
        Ok(KeysFileWatcher { _fs: fs, tasks })
    }

    fn is_close_write(a: notify::event::AccessKind) -> bool {
        use notify::event::{AccessKind, AccessMode};
        matches!(a, AccessKind::Close(AccessMode::Write))
    }

    fn watch_error(dir: &Path, e: notify::Error) -> KeysFileError {
        let shown = format!("cannot watch {}: {e}", dir.display());
        let secrets = super::scrub::secrets_in(&shown, []);
        file_error(super::scrub::scrub_text(&shown, &secrets))
    }

    async fn reloads(mut rx: mpsc::Receiver<()>, path: PathBuf, store: MemoryKeyStore) {
        while rx.recv().await.is_some() {
            tokio::time::sleep(SETTLE).await;
            while rx.try_recv().is_ok() {}
            let (path, store) = (path.clone(), store.clone());
            match tokio::task::spawn_blocking(move || reload(&path, &store)).await {
                Ok(Ok(c)) => tracing::info!(
                    added = c.added,
                    changed = c.changed,
                    removed = c.removed,
                    unchanged = c.unchanged,
                    "ark-auth: keys file reloaded"
                ),
                Ok(Err(e)) => tracing::error!(
                    error = %e,
                    "ark-auth: keys file not reloaded; the keys loaded before are still served"
                ),
                Err(e) => tracing::error!(error = %e, "ark-auth: keys file reload failed"),
            }
        }
    }

    /// Keeps a keys file reloading ([`watch`]); dropping it stops the watching.
    #[must_use = "the keys file is watched only while the watcher lives"]
    pub struct KeysFileWatcher {
        _fs: notify::RecommendedWatcher,
        tasks: Vec<JoinHandle<()>>,
    }

    impl Drop for KeysFileWatcher {
        fn drop(&mut self) {
            for t in &self.tasks {
                t.abort();
            }
        }
    }

    impl std::fmt::Debug for KeysFileWatcher {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("KeysFileWatcher").finish_non_exhaustive()
        }
    }
}
