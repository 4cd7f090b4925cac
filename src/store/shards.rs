//! Sharded hash tables: a power-of-two number of `RwLock`ed hashbrown tables.

use std::sync::{OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use hashbrown::hash_table::HashTable;

/// One shard: a lock around a table, on its own cache line(s).
#[repr(align(128))]
struct Shard<T>(RwLock<HashTable<T>>);

impl<T> Default for Shard<T> {
    fn default() -> Self {
        Shard(RwLock::new(HashTable::new()))
    }
}

/// A power-of-two number of shards, chosen by the bits of a 64-bit hash just below the 7
/// that hashbrown keeps for its control bytes.
pub(super) struct Shards<T> {
    shards: Box<[Shard<T>]>,
    shift: u32,
}

/// Four shards per hardware thread, rounded up to a power of two (at least 2), as dashmap.
fn shard_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        (std::thread::available_parallelism().map_or(1, usize::from) * 4)
            .next_power_of_two()
            .max(2)
    })
}

impl<T> Shards<T> {
    pub(super) fn new() -> Self {
        let n = shard_count();
        Shards {
            shards: (0..n).map(|_| Shard::default()).collect(),
            shift: 64 - n.trailing_zeros(),
        }
    }

    fn shard(&self, hash: u64) -> &Shard<T> {
        &self.shards[((hash << 7) >> self.shift) as usize]
    }

    pub(super) fn read(&self, hash: u64) -> RwLockReadGuard<'_, HashTable<T>> {
        self.shard(hash)
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn write(&self, hash: u64) -> RwLockWriteGuard<'_, HashTable<T>> {
        self.shard(hash)
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Calls `f` on every entry, one shard's read lock at a time.
    pub(super) fn for_each(&self, mut f: impl FnMut(&T)) {
        for shard in self.shards.iter() {
            let table = shard.0.read().unwrap_or_else(PoisonError::into_inner);
            table.iter().for_each(&mut f);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}
