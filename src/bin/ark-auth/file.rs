//! The keys in a JSON keys file: read whole, changed in memory, written back atomically
//! by `keys_file::save`, with hashes only (`key` entries come back as `hash` entries).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use ark_auth::key::{GeneratedKey, KeyRecord};
use ark_auth::{keys_file, MemoryKeyStore};

use super::backend::{chain, Imported};

pub struct KeysFile {
    path: PathBuf,
    records: Vec<KeyRecord>,
}

impl KeysFile {
    /// Loads the file; with `create`, a missing file is an empty one (written on change).
    pub fn open(path: PathBuf, create: bool) -> Result<KeysFile, String> {
        if create && !path.exists() {
            return Ok(KeysFile {
                path,
                records: Vec::new(),
            });
        }
        let records = keys_file::load(&path).map_err(|e| e.to_string())?;
        Ok(KeysFile { path, records })
    }

    pub fn records(&self) -> &[KeyRecord] {
        &self.records
    }

    pub fn get(&self, id: &str) -> Option<&KeyRecord> {
        self.records.iter().find(|r| r.id() == id)
    }

    pub fn create(&mut self, record: &KeyRecord) -> Result<(), String> {
        let mut next = self.records.clone();
        next.push(record.clone());
        self.replace(next)
    }

    /// Changes the record with this id and saves; `false` when no such id.
    pub fn update(&mut self, id: &str, f: impl FnOnce(&mut KeyRecord)) -> Result<bool, String> {
        let mut next = self.records.clone();
        let Some(r) = next.iter_mut().find(|r| r.id() == id) else {
            return Ok(false);
        };
        f(r);
        self.replace(next)?;
        Ok(true)
    }

    /// Rotation by the crate's `MemoryKeyStore::rotate`; the file keeps its order, the
    /// successor comes last.
    pub fn rotate(&mut self, id: &str, grace: Duration) -> Result<GeneratedKey, String> {
        let store = MemoryKeyStore::from_records(self.records.iter().cloned())
            .map_err(|e| e.to_string())?;
        let next = store.rotate(id, grace).map_err(|e| chain(&e))?;
        let mut records: Vec<KeyRecord> = self
            .records
            .iter()
            .map(|r| {
                store
                    .get(r.id())
                    .map_or_else(|| r.clone(), |s| (*s).clone())
            })
            .collect();
        records.push(next.record.clone());
        self.replace(records)?;
        Ok(next)
    }

    /// Adds the records, replacing those with the same id; all or nothing.
    pub fn import(&mut self, records: Vec<KeyRecord>) -> Result<Imported, String> {
        let mut next = self.records.clone();
        let (mut added, mut replaced) = (0, 0);
        for r in records {
            match next.iter_mut().find(|old| old.id() == r.id()) {
                Some(old) => {
                    *old = r;
                    replaced += 1;
                }
                None => {
                    next.push(r);
                    added += 1;
                }
            }
        }
        self.replace(next)?;
        Ok(Imported { added, replaced })
    }

    /// Checks `records` (no repeated id or key) and writes them; the file is unchanged on
    /// any error.
    fn replace(&mut self, records: Vec<KeyRecord>) -> Result<(), String> {
        let mut ids = HashSet::new();
        let mut hashes = HashSet::new();
        for r in &records {
            if !ids.insert(r.id()) {
                return Err(format!("id {} is already in the keys file", r.id()));
            }
            if !hashes.insert(*r.hash()) {
                return Err(format!(
                    "key {} is the same key as another entry of the keys file",
                    r.id()
                ));
            }
        }
        keys_file::save(&self.path, &records).map_err(|e| e.to_string())?;
        self.records = records;
        Ok(())
    }
}

/// The keys file of `records`: one entry per line, hashes only.
pub fn document(records: &[KeyRecord]) -> String {
    let entries: Vec<String> = records
        .iter()
        .map(|r| format!("  {}", keys_file::record_to_json(r)))
        .collect();
    if entries.is_empty() {
        return "{\"keys\": []}\n".to_owned();
    }
    format!("{{\"keys\": [\n{}\n]}}\n", entries.join(",\n"))
}
