//! [`RevocationListener`]: `LISTEN ark_api_keys` on a dedicated connection, invalidating
//! the cache entry of every notified hash.

use std::fmt;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, NoTls, Socket};

use super::connect::Tls;
use super::{ConnectionSettings, CHANNEL};
use crate::cache::CacheInvalidator;
use crate::key::KeyHash;

/// The task that keeps one instance's cache in step with the keys table through
/// `LISTEN ark_api_keys`. See the module docs for the guarantee. Stops when dropped.
pub struct RevocationListener {
    task: tokio::task::JoinHandle<()>,
    state: Arc<ListenerState>,
}

#[derive(Default)]
struct ListenerState {
    connected: AtomicBool,
    notifications: AtomicU64,
    connections: AtomicU64,
}

impl fmt::Debug for RevocationListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationListener")
            .field("connected", &self.is_connected())
            .field("notifications", &self.notifications())
            .finish()
    }
}

impl Drop for RevocationListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const HEALTH_EVERY: Duration = Duration::from_secs(1);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

impl RevocationListener {
    /// Starts listening with these connection settings (no TLS: see
    /// [`RevocationListener::spawn_with`]) and invalidating `cache`. Must be called inside a
    /// tokio runtime.
    pub fn spawn(config: tokio_postgres::Config, cache: CacheInvalidator) -> Self {
        Self::spawn_with(
            ConnectionSettings {
                config,
                tls: Tls::Off,
            },
            cache,
        )
    }

    /// Starts listening with these settings, their TLS included (say,
    /// `ConnectionSettings::from_url(url)?`), and invalidating `cache`. Must be called
    /// inside a tokio runtime.
    pub fn spawn_with(settings: ConnectionSettings, cache: CacheInvalidator) -> Self {
        let state = Arc::new(ListenerState::default());
        let task = tokio::spawn(listen_loop(settings, cache, Arc::clone(&state)));
        RevocationListener { task, state }
    }

    /// Whether `LISTEN` is established now.
    pub fn is_connected(&self) -> bool {
        self.state.connected.load(Ordering::Acquire)
    }

    /// Notifications received so far.
    pub fn notifications(&self) -> u64 {
        self.state.notifications.load(Ordering::Relaxed)
    }

    /// Successful `LISTEN`s so far (1 plus reconnections).
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// Waits until `LISTEN` is established, up to `timeout`; whether it is.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.is_connected() {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

async fn listen_loop(
    settings: ConnectionSettings,
    cache: CacheInvalidator,
    state: Arc<ListenerState>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let config = settings.config();
        let outcome = match &settings.tls {
            Tls::Off => listen_once(config, NoTls, &cache, &state).await,
            #[cfg(feature = "postgres-tls")]
            Tls::Rustls(tls) => listen_once(config, tls.clone(), &cache, &state).await,
        };
        match outcome {
            Ok(()) => backoff = BACKOFF_MIN,
            Err(e) => tracing::warn!(
                "revocation listener: {e}; reconnecting in {} ms (cache TTL is the backstop)",
                backoff.as_millis()
            ),
        }
        state.connected.store(false, Ordering::Release);
        // Notifications are lost from here until the next LISTEN, which clears the cache.
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One connection's life: connect, `LISTEN`, dispatch notifications until it fails.
async fn listen_once<T>(
    config: &tokio_postgres::Config,
    tls: T,
    cache: &CacheInvalidator,
    state: &Arc<ListenerState>,
) -> Result<(), tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let (client, mut connection) = config.connect(tls).await?;
    let dispatch_cache = cache.clone();
    let dispatch_state = Arc::clone(state);
    let mut driver = tokio::spawn(async move {
        loop {
            match poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    dispatch_state.notifications.fetch_add(1, Ordering::Relaxed);
                    match KeyHash::from_hex(n.payload()) {
                        Ok(hash) => dispatch_cache.invalidate(&hash),
                        Err(_) => dispatch_cache.invalidate_all(),
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    });
    let result = async {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        // Whatever changed before this LISTEN (while disconnected, or before the first
        // connection) was not heard: forget every entry.
        cache.invalidate_all();
        state.connections.fetch_add(1, Ordering::Relaxed);
        state.connected.store(true, Ordering::Release);
        loop {
            match tokio::time::timeout(HEALTH_EVERY, &mut driver).await {
                Ok(Ok(r)) => return r,
                Ok(Err(_join)) => return Ok(()),
                Err(_still_running) => {}
            }
            match tokio::time::timeout(HEALTH_TIMEOUT, client.simple_query("SELECT 1")).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    tracing::warn!("revocation listener: health query timed out");
                    return Ok(());
                }
            }
        }
    }
    .await;
    driver.abort();
    result
}
