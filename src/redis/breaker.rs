//! The Redis limiter's circuit breaker: after a failure, checks fail at once for a
//! cooldown, then one check probes Redis.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A small circuit breaker: after a failure, checks fail at once for `cooldown`; then one
/// check probes Redis while the others keep failing at once.
pub(super) struct Breaker {
    pub(super) cooldown: Duration,
    epoch: Instant,
    /// Milliseconds since `epoch` until which Redis is not asked; 0 when Redis is healthy.
    open_until: AtomicU64,
}

impl Breaker {
    pub(super) fn new(cooldown: Duration) -> Self {
        Breaker {
            cooldown,
            epoch: Instant::now(),
            open_until: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX / 2)
    }

    fn reopen_at(&self, now: u64) -> u64 {
        let cooldown = u64::try_from(self.cooldown.as_millis()).unwrap_or(u64::MAX / 4);
        (now + cooldown).max(1)
    }

    /// Whether this check may ask Redis.
    pub(super) fn admit(&self) -> bool {
        let until = self.open_until.load(Ordering::Relaxed);
        if until == 0 || self.cooldown.is_zero() {
            return true;
        }
        let now = self.now_ms();
        // Cooled down: the first to claim the probe asks Redis, pushing the others back.
        now >= until
            && self
                .open_until
                .compare_exchange(
                    until,
                    self.reopen_at(now),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    pub(super) fn success(&self) {
        // A load first: no write to the shared line on the healthy path.
        if self.open_until.load(Ordering::Relaxed) != 0
            && self.open_until.swap(0, Ordering::Relaxed) != 0
        {
            tracing::info!("ark-auth: redis rate limiter reachable again");
        }
    }

    pub(super) fn failure(&self) {
        if self.cooldown.is_zero() {
            return;
        }
        let until = self.reopen_at(self.now_ms());
        if self.open_until.swap(until, Ordering::Relaxed) == 0 {
            tracing::warn!(
                cooldown = ?self.cooldown,
                "ark-auth: redis rate limiter failed; not asking redis during the cooldown"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_cools_down_then_lets_one_probe_through() {
        let b = Breaker::new(Duration::from_millis(30));
        assert!(b.admit());
        b.failure();
        assert!(!b.admit(), "open right after a failure");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.admit(), "one probe after the cooldown");
        assert!(!b.admit(), "only one");
        b.success();
        assert!(b.admit() && b.admit(), "closed after a success");
    }

    #[test]
    fn zero_cooldown_never_opens() {
        let b = Breaker::new(Duration::ZERO);
        b.failure();
        assert!(b.admit());
    }
}
