//! `last_used_at`: a throttle per key, a bounded channel and a background writer.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dashmap::DashMap;
use deadpool_postgres::Pool;
use tokio::sync::mpsc;

use super::sql::{err, TOUCH};
use super::PostgresOptions;
use crate::chain::Chain;
use crate::key::DigestHasher;
use crate::key::KeyHash;

/// When each key was last noted, keyed by its hash (already uniform: no SipHash per hit).
type Noted = DashMap<KeyHash, Instant, BuildHasherDefault<DigestHasher>>;

/// The `last_used_at` writer: a throttle per key, a bounded channel, a background task.
pub(super) struct Usage {
    tx: mpsc::Sender<(KeyHash, SystemTime)>,
    last_noted: Arc<Noted>,
    interval: Duration,
    pub(super) state: Arc<UsageState>,
}

#[derive(Default)]
pub(super) struct UsageState {
    pub(super) rows: AtomicU64,
    pub(super) dropped: AtomicU64,
}

impl Usage {
    pub(super) fn start(pool: Pool, options: PostgresOptions) -> Usage {
        let (tx, rx) = mpsc::channel(options.usage_buffer.max(1));
        let state = Arc::new(UsageState::default());
        let last_noted = Arc::new(Noted::default());
        tokio::spawn(usage_writer(
            pool,
            rx,
            options.usage_interval,
            Arc::clone(&state),
            Arc::clone(&last_noted),
        ));
        Usage {
            tx,
            last_noted,
            interval: options.usage_interval,
            state,
        }
    }

    pub(super) fn note(&self, hash: &KeyHash) {
        let now = Instant::now();
        // Throttle: one note per key per interval. The common case (noted recently) takes a
        // shard's read lock only.
        if let Some(t) = self.last_noted.get(hash) {
            if now.duration_since(*t) < self.interval {
                return;
            }
        }
        match self.last_noted.entry(*hash) {
            dashmap::mapref::entry::Entry::Occupied(mut e) => {
                if now.duration_since(*e.get()) < self.interval {
                    return;
                }
                e.insert(now);
            }
            dashmap::mapref::entry::Entry::Vacant(v) => {
                v.insert(now);
            }
        }
        if self.tx.try_send((*hash, SystemTime::now())).is_err() {
            self.state.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Collects notes for one interval, then writes them in one statement. Ends when every
/// sender (every clone of the store) is gone.
async fn usage_writer(
    pool: Pool,
    mut rx: mpsc::Receiver<(KeyHash, SystemTime)>,
    interval: Duration,
    state: Arc<UsageState>,
    last_noted: Arc<Noted>,
) {
    let mut pending: HashMap<KeyHash, SystemTime> = HashMap::new();
    let mut next = tokio::time::Instant::now() + interval;
    loop {
        match tokio::time::timeout_at(next, rx.recv()).await {
            Ok(Some((hash, at))) => {
                pending.insert(hash, at);
                // A steady stream of notes must not postpone the write past the interval.
                if tokio::time::Instant::now() < next {
                    continue;
                }
            }
            Ok(None) => {
                flush(&pool, &mut pending, &state).await;
                return;
            }
            Err(_elapsed) => {}
        }
        flush(&pool, &mut pending, &state).await;
        let now = Instant::now();
        last_noted.retain(|_, t| now.duration_since(*t) < interval);
        next = tokio::time::Instant::now() + interval;
    }
}

async fn flush(pool: &Pool, pending: &mut HashMap<KeyHash, SystemTime>, state: &UsageState) {
    if pending.is_empty() {
        return;
    }
    let (hashes, times): (Vec<&[u8]>, Vec<SystemTime>) = pending
        .iter()
        .map(|(h, t)| (h.as_bytes().as_slice(), *t))
        .unzip();
    let result = async {
        let client = pool.get().await.map_err(err)?;
        client.execute(TOUCH, &[&hashes, &times]).await.map_err(err)
    }
    .await;
    match result {
        Ok(n) => {
            state.rows.fetch_add(n, Ordering::Relaxed);
        }
        Err(e) => tracing::warn!(
            "last_used_at of {} key(s) not recorded: {}",
            pending.len(),
            Chain(&*e)
        ),
    }
    pending.clear();
}
