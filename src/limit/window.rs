//! The sliding window counter as a pure function over plain data: two counters per key,
//! a time in microseconds, a quota in, the verdict and the header values out. The in-memory
//! limiter keeps these counters in a table; the Redis limiter gets them from its script.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Quota, RateLimitDecision};

/// One key's two counters. Times are microseconds since the limiter's epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct WindowState {
    pub(crate) window: u64,
    /// After this instant both counters are stale and the entry can be dropped.
    pub(crate) stale_at: u64,
    pub(crate) prev: u32,
    pub(crate) curr: u32,
}

/// The outcome of a check of one window, in microseconds since the epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) allowed: bool,
    pub(crate) remaining: u32,
    pub(crate) reset_at: u64,
    pub(crate) retry_after: Option<u64>,
}

impl WindowState {
    /// The counters of window `window` (a shared limiter's stored state).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn at(window: u64, prev: u32, curr: u32) -> Self {
        WindowState {
            window,
            stale_at: 0,
            prev,
            curr,
        }
    }

    /// The sliding-window step at `now`; counts the request when `consume` and admitted.
    pub(crate) fn check(&mut self, now: u64, quota: Quota, consume: bool) -> Outcome {
        let w = quota.window_us().max(1);
        let limit = quota.limit().get();
        let idx = now / w;
        let elapsed = now % w;
        if self.window != idx {
            self.prev = if idx == self.window.wrapping_add(1) {
                self.curr
            } else {
                0
            };
            self.curr = 0;
            self.window = idx;
        }
        let (w128, prev, curr) = (u128::from(w), u128::from(self.prev), u128::from(self.curr));
        let cap = u128::from(limit) * w128;
        let mut est = prev * u128::from(w - elapsed) + curr * w128;
        let allowed = est + w128 <= cap;
        if allowed && consume {
            self.curr = self.curr.saturating_add(1);
            est += w128;
        }
        let remaining = u32::try_from(cap.saturating_sub(est) / w128).unwrap_or(u32::MAX);
        let window_start = idx * w;
        let reset_at = if self.curr > 0 {
            window_start + 2 * w
        } else if self.prev > 0 {
            window_start + w
        } else {
            now
        };
        self.stale_at = window_start + 2 * w;
        let retry_after = (!allowed).then(|| {
            let need = est + w128 - cap;
            // Still inside this window, as the previous window's weight fades?
            if prev > 0 {
                let t = need.div_ceil(prev);
                if u128::from(elapsed) + t < w128 {
                    return t as u64;
                }
            }
            // Early in the next window, where the current count becomes the fading one:
            // curr × (w − e) + w ≤ cap.
            let e = (cap - w128)
                .checked_div(curr)
                .map_or(0, |x| w128.saturating_sub(x));
            (w - elapsed) + e as u64
        });
        Outcome {
            allowed,
            remaining,
            reset_at,
            retry_after,
        }
    }
}

/// Microseconds since an epoch, and the Unix time of that epoch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    epoch: Instant,
    epoch_unix_us: u64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clock {
            epoch: Instant::now(),
            epoch_unix_us: u64::try_from(unix.as_micros())
                .unwrap_or(0)
                .saturating_sub(1),
        }
    }

    /// Microseconds since the epoch, plus one (a log's times are never 0).
    pub(crate) fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).map_or(u64::MAX / 4, |t| t + 1)
    }

    pub(crate) fn decision(&self, o: Outcome, quota: Quota) -> RateLimitDecision {
        decision_at(self.epoch_unix_us, o, quota)
    }
}

/// The decision for an outcome whose times count microseconds from the Unix time
/// `epoch_unix_us` (0 when they are Unix times already, as a shared limiter's server clock).
pub(crate) fn decision_at(epoch_unix_us: u64, o: Outcome, quota: Quota) -> RateLimitDecision {
    RateLimitDecision {
        allowed: o.allowed,
        limit: quota.limit().get(),
        remaining: o.remaining,
        reset: (epoch_unix_us + o.reset_at).div_ceil(1_000_000),
        retry_after: o.retry_after.map(Duration::from_micros),
        window: quota.window(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    const S: u64 = 1_000_000;

    fn q(n: u32) -> Quota {
        Quota::per_second(NonZeroU32::new(n).unwrap())
    }

    #[test]
    fn burst_is_capped_at_limit() {
        let mut st = WindowState::default();
        let t0 = 100 * S + 10;
        let admitted = (0..25)
            .filter(|_| st.check(t0, q(10), true).allowed)
            .count();
        assert_eq!(admitted, 10);
        let o = st.check(t0, q(10), true);
        assert_eq!(o.remaining, 0);
        // Must wait until the previous window's weight has faded enough: at 0.1 s into
        // the next window 10 × 0.9 = 9 → one more is admitted.
        let wait = o.retry_after.unwrap();
        assert_eq!(t0 + wait, 101 * S + S / 10);
        assert!(!st.check(t0 + wait - 1, q(10), true).allowed);
        assert!(st.check(t0 + wait, q(10), true).allowed);
    }

    #[test]
    fn remaining_counts_down_and_peek_counts_nothing() {
        let mut st = WindowState::default();
        let t = 5 * S;
        assert_eq!(st.check(t, q(3), false).remaining, 3);
        assert_eq!(st.check(t, q(3), true).remaining, 2);
        assert_eq!(st.check(t, q(3), false).remaining, 2);
        assert_eq!(st.check(t, q(3), true).remaining, 1);
        assert_eq!(st.check(t, q(3), true).remaining, 0);
        let refused = st.check(t, q(3), true);
        assert!(!refused.allowed);
        assert_eq!(refused.reset_at, 7 * S);
    }

    #[test]
    fn sliding_estimate_across_boundary() {
        let mut st = WindowState::default();
        for _ in 0..10 {
            assert!(st.check(10 * S + S / 2, q(10), true).allowed);
        }
        // Half-way into the next window: estimate 10 × 0.5 = 5 → 5 more.
        let admitted = (0..10)
            .filter(|_| st.check(11 * S + S / 2, q(10), true).allowed)
            .count();
        assert_eq!(admitted, 5);
        // Two windows later everything is free again.
        assert_eq!(st.check(13 * S, q(10), false).remaining, 10);
    }

    #[test]
    fn limit_one_waits_for_whole_fade() {
        let mut st = WindowState::default();
        assert!(st.check(3 * S, q(1), true).allowed);
        let o = st.check(3 * S, q(1), true);
        assert!(!o.allowed);
        assert_eq!(3 * S + o.retry_after.unwrap(), 5 * S);
    }

    /// One step of the window from a given state, by hand: the limit is 10 per second
    /// unless said, `S` one second in microseconds.
    #[test]
    fn window_step_table() {
        struct Row {
            what: &'static str,
            before: (u64, u32, u32),
            now: u64,
            quota: Quota,
            consume: bool,
            allowed: bool,
            remaining: u32,
            reset_at: u64,
            retry_after: Option<u64>,
            curr_after: u32,
        }
        let ms10 = Quota::new(NonZeroU32::new(5).unwrap(), Duration::from_millis(10));
        #[rustfmt::skip]
        let rows = [
            Row { what: "first request of a fresh key", before: (0, 0, 0), now: 5 * S, quota: q(10), consume: true,
                  allowed: true, remaining: 9, reset_at: 7 * S, retry_after: None, curr_after: 1 },
            Row { what: "a peek counts nothing and resets now", before: (0, 0, 0), now: 5 * S, quota: q(10), consume: false,
                  allowed: true, remaining: 10, reset_at: 5 * S, retry_after: None, curr_after: 0 },
            Row { what: "full window: wait for the next window's start plus a tenth", before: (5, 0, 10), now: 5 * S + S / 2, quota: q(10), consume: true,
                  allowed: false, remaining: 0, reset_at: 7 * S, retry_after: Some(S / 2 + S / 10), curr_after: 10 },
            Row { what: "previous window weighs three quarters", before: (4, 0, 10), now: 5 * S + S / 4, quota: q(10), consume: true,
                  allowed: true, remaining: 1, reset_at: 7 * S, retry_after: None, curr_after: 1 },
            Row { what: "two windows later all is free", before: (3, 5, 10), now: 5 * S, quota: q(10), consume: false,
                  allowed: true, remaining: 10, reset_at: 5 * S, retry_after: None, curr_after: 0 },
            Row { what: "only the previous count: free at the window's end", before: (4, 0, 4), now: 5 * S + S / 2, quota: q(10), consume: false,
                  allowed: true, remaining: 8, reset_at: 6 * S, retry_after: None, curr_after: 0 },
            Row { what: "refused at a window's start, admitted as the previous fades", before: (4, 0, 10), now: 5 * S, quota: q(10), consume: true,
                  allowed: false, remaining: 0, reset_at: 6 * S, retry_after: Some(S / 10), curr_after: 0 },
            Row { what: "limit one waits two windows", before: (3, 0, 1), now: 3 * S, quota: q(1), consume: true,
                  allowed: false, remaining: 0, reset_at: 5 * S, retry_after: Some(2 * S), curr_after: 1 },
            Row { what: "a 10 ms window", before: (0, 0, 0), now: S + 5, quota: ms10, consume: true,
                  allowed: true, remaining: 4, reset_at: S + 20_000, retry_after: None, curr_after: 1 },
        ];
        for r in rows {
            let (window, prev, curr) = r.before;
            let mut st = WindowState::at(window, prev, curr);
            let o = st.check(r.now, r.quota, r.consume);
            let want = Outcome {
                allowed: r.allowed,
                remaining: r.remaining,
                reset_at: r.reset_at,
                retry_after: r.retry_after,
            };
            assert_eq!(o, want, "{}", r.what);
            assert_eq!(st.curr, r.curr_after, "{}: count after", r.what);
        }
    }

    #[test]
    fn decision_rounds_reset_up_to_the_unix_second() {
        let o = Outcome {
            allowed: false,
            remaining: 0,
            reset_at: 1_500_001,
            retry_after: Some(250_000),
        };
        let d = decision_at(0, o, q(10));
        assert_eq!(
            (d.allowed, d.limit, d.remaining, d.reset),
            (false, 10, 0, 2)
        );
        assert_eq!(d.retry_after, Some(Duration::from_millis(250)));
        assert_eq!(decision_at(1_000_000_000_000, o, q(10)).reset, 1_000_002);
    }
}
