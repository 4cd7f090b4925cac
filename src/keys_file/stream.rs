//! Reading a keys file entry by entry, straight from its text: no `serde_json::Value` of
//! the file, so loading holds the text, the records and two small index tables, nothing
//! per member.

use std::fmt;
use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::raw::RawEntry;
use crate::key::KeyRecord;

/// Why [`for_each_entry`] stopped.
pub(super) enum Stopped<E> {
    /// The text is not an object whose only member is `keys`, a list.
    NotKeysObject,
    /// `f` refused an entry.
    Entry(E),
}

/// Hands each entry of `{"keys": [...]}` to `f` with its index, in order, stopping at the
/// first one `f` refuses. The text is expected to be valid JSON (checked beforehand).
pub(super) fn for_each_entry<E>(
    json: &str,
    mut f: impl FnMut(usize, RawEntry) -> Result<(), E>,
) -> Result<(), Stopped<E>> {
    let mut stopped = None;
    let mut de = serde_json::Deserializer::from_str(json);
    let read = FileSeed {
        f: &mut f,
        stopped: &mut stopped,
    }
    .deserialize(&mut de);
    match (read, stopped) {
        (_, Some(s)) => Err(s),
        (Ok(true), None) => Ok(()),
        (_, None) => Err(Stopped::NotKeysObject),
    }
}

struct FileSeed<'a, F, E> {
    f: &'a mut F,
    stopped: &'a mut Option<Stopped<E>>,
}

impl<'de, F, E> DeserializeSeed<'de> for FileSeed<'_, F, E>
where
    F: FnMut(usize, RawEntry) -> Result<(), E>,
{
    /// Whether a `keys` list was read.
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, F, E> Visitor<'de> for FileSeed<'_, F, E>
where
    F: FnMut(usize, RawEntry) -> Result<(), E>,
{
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object {\"keys\": [...]}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut keys = false;
        while let Some(member) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if member != "keys" {
                *self.stopped = Some(Stopped::NotKeysObject);
                return Err(de::Error::custom("not a keys file"));
            }
            keys = map.next_value_seed(EntriesSeed {
                f: &mut *self.f,
                stopped: &mut *self.stopped,
            })?;
        }
        Ok(keys)
    }
}

struct EntriesSeed<'a, F, E> {
    f: &'a mut F,
    stopped: &'a mut Option<Stopped<E>>,
}

impl<'de, F, E> DeserializeSeed<'de> for EntriesSeed<'_, F, E>
where
    F: FnMut(usize, RawEntry) -> Result<(), E>,
{
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, F, E> Visitor<'de> for EntriesSeed<'_, F, E>
where
    F: FnMut(usize, RawEntry) -> Result<(), E>,
{
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut i = 0;
        while let Some(entry) = seq.next_element::<RawEntry>()? {
            if let Err(e) = (self.f)(i, entry) {
                *self.stopped = Some(Stopped::Entry(e));
                return Err(de::Error::custom("entry refused"));
            }
            i += 1;
        }
        Ok(true)
    }

    // Anything else where the list should be: not a keys file.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_unit<Er>(self) -> Result<bool, Er> {
        Ok(false)
    }
    fn visit_bool<Er>(self, _: bool) -> Result<bool, Er> {
        Ok(false)
    }
    fn visit_u64<Er>(self, _: u64) -> Result<bool, Er> {
        Ok(false)
    }
    fn visit_i64<Er>(self, _: i64) -> Result<bool, Er> {
        Ok(false)
    }
    fn visit_f64<Er>(self, _: f64) -> Result<bool, Er> {
        Ok(false)
    }
    fn visit_str<Er>(self, _: &str) -> Result<bool, Er> {
        Ok(false)
    }
}

/// The hashes and ids of the records read so far, as 4-byte indices into them: two records
/// with one hash or one id are refused.
pub(super) struct Seen {
    hashes: HashTable<u32>,
    ids: HashTable<u32>,
    id_hasher: RandomState,
}

impl Seen {
    pub(super) fn new() -> Seen {
        Seen {
            hashes: HashTable::new(),
            ids: HashTable::new(),
            id_hasher: RandomState::new(),
        }
    }

    /// Notes `record`, about to be pushed at the end of `earlier`, or says which earlier
    /// record it repeats.
    pub(super) fn note(&mut self, earlier: &[KeyRecord], record: &KeyRecord) -> Result<(), String> {
        let Ok(index) = u32::try_from(earlier.len()) else {
            return Err("a keys file holds at most 4 294 967 295 entries".into());
        };
        let at = |i: &u32| &earlier[*i as usize];
        let prefix = record.hash().prefix();
        if self
            .hashes
            .find(prefix, |i| at(i).hash() == record.hash())
            .is_some()
        {
            return Err("the same key appears in an earlier entry".into());
        }
        let id_hash = self.id_hasher.hash_one(record.id());
        if self
            .ids
            .find(id_hash, |i| at(i).id() == record.id())
            .is_some()
        {
            return Err(format!("id {:?} appears in an earlier entry", record.id()));
        }
        self.hashes
            .insert_unique(prefix, index, |i| at(i).hash().prefix());
        let hasher = &self.id_hasher;
        self.ids
            .insert_unique(id_hash, index, |i| hasher.hash_one(at(i).id()));
        Ok(())
    }
}
