//! The exact sliding window as pure functions over plain data: a log of the last `limit`
//! admission times of one key in one window, a time in microseconds, the verdict and the
//! header values out. A request at `now` is admitted iff fewer than `limit` admissions lie
//! in `(now − window, now]`.
//!
//! Times are kept in *ticks* of 2^`shift` µs, the finest power of two for which a window
//! spans at most [`MAX_TICKS`] ticks (1 µs up to 65 ms windows, 16 µs for 1 s, 1 ms for
//! 1 min, 65 ms for 1 h, 2.1 s for a day), as 16-bit offsets from a base. An admission's time
//! is rounded *up* to its tick, so it counts for at most one tick longer than the window,
//! never shorter: no interval of one window's length ever holds more than `limit`
//! admissions, and the announced times (`Retry-After`, `X-RateLimit-Reset`) are computed
//! from the stored ticks, so a request sent then is admitted.

use super::window::Outcome;
use super::Quota;

/// The most ticks one window spans (so that a new admission's offset, `window + 1` ticks
/// after a rebase, fits 16 bits).
pub(crate) const MAX_TICKS: u64 = 65_534;

/// Limits up to this are kept exactly, in a log; above, by the sliding window counter.
pub(crate) const EXACT_MAX: u32 = 128;

/// A quota as the log reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Spec {
    pub(crate) limit: u32,
    pub(crate) window_us: u64,
    pub(crate) shift: u32,
}

impl Spec {
    pub(crate) fn of(quota: Quota) -> Self {
        let window_us = quota.window_us().max(1);
        let per_tick = window_us.div_ceil(MAX_TICKS);
        let shift = if per_tick <= 1 {
            0
        } else {
            64 - (per_tick - 1).leading_zeros()
        };
        Spec {
            limit: quota.limit().get(),
            window_us,
            shift,
        }
    }

    /// Whether the limit is kept exactly (in a log).
    pub(crate) fn exact(&self) -> bool {
        self.limit <= EXACT_MAX
    }

    /// The tick of an admission at `now` (rounded up).
    pub(crate) fn tick(&self, now: u64) -> u64 {
        now.div_ceil(1 << self.shift)
    }

    /// When an admission of tick `t` stops counting, in µs.
    pub(crate) fn expiry(&self, t: u64) -> u64 {
        (t << self.shift).saturating_add(self.window_us)
    }

    fn window_ticks(&self) -> u64 {
        self.window_us.div_ceil(1 << self.shift)
    }
}

/// What a log holds at `now`, all a decision needs (a shared limiter's script returns it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    /// Admissions still counting.
    pub(crate) live: u32,
    /// When `live ≥ limit`: when enough of them have expired to admit one more (µs).
    pub(crate) unblock: u64,
    /// When the newest stops counting (µs); meaningless when `live` is 0.
    pub(crate) newest: u64,
}

impl Summary {
    /// The summary of admission ticks `ticks`, oldest first, at `now`.
    pub(crate) fn of<I: Iterator<Item = u64> + Clone>(ticks: I, now: u64, spec: Spec) -> Self {
        let expiries = ticks.map(|t| spec.expiry(t)).filter(|&e| e > now);
        let mut s = Summary::default();
        for e in expiries.clone() {
            s.live += 1;
            s.newest = e;
        }
        // One more fits once all but `limit − 1` of the live ones have expired (more live
        // than the limit only after the limit was lowered).
        if s.live >= spec.limit {
            let n = s.live - spec.limit;
            s.unblock = expiries.clone().nth(n as usize).unwrap_or(s.newest);
        }
        s
    }

    /// The verdict and header values at `now`; `counted` when this request was admitted
    /// and recorded (it fit every window of the check).
    pub(crate) fn outcome(&self, now: u64, spec: Spec, counted: bool) -> Outcome {
        let allowed = self.live < spec.limit;
        let live = self.live + u32::from(counted && allowed);
        let reset_at = if counted && allowed {
            spec.expiry(spec.tick(now))
        } else if self.live > 0 {
            self.newest
        } else {
            now
        };
        Outcome {
            allowed,
            remaining: spec.limit.saturating_sub(live),
            reset_at,
            retry_after: (!allowed).then(|| self.unblock.saturating_sub(now).max(1)),
        }
    }
}

/// One key's log in one window: the offsets (ticks after `base`, 0 for an empty slot) of
/// the last `ring.len()` admissions, the oldest at `head`.
pub(crate) struct Log<'a> {
    pub(crate) base: &'a mut u64,
    pub(crate) head: &'a mut u8,
    pub(crate) ring: &'a mut [u16],
}

impl Log<'_> {
    /// The admission ticks, oldest first.
    pub(crate) fn ticks(&self) -> impl Iterator<Item = u64> + Clone + '_ {
        let (newer, older) = self.ring.split_at(usize::from(*self.head));
        let base = *self.base;
        older
            .iter()
            .chain(newer)
            .filter(|&&o| o != 0)
            .map(move |&o| base + u64::from(o))
    }

    /// The newest admission's tick.
    pub(crate) fn newest(&self) -> Option<u64> {
        let len = self.ring.len();
        let i = (usize::from(*self.head) + len - 1) % len;
        let o = self.ring[i];
        (o != 0).then(|| *self.base + u64::from(o))
    }

    /// What the log holds at `now`.
    pub(crate) fn summary(&self, now: u64, spec: Spec) -> Summary {
        Summary::of(self.ticks(), now, spec)
    }

    /// Records an admission at `now` (`now ≥ 1` and never earlier than the last one), over
    /// the oldest entry.
    pub(crate) fn push(&mut self, now: u64, spec: Spec) {
        // Never at or before the base (a clock that went back counts the admission later,
        // which only ever counts it longer).
        let t = spec.tick(now).max(*self.base + 1);
        if t - *self.base > u64::from(u16::MAX) {
            // Rebase: everything at or before the new base has expired.
            let base = t.saturating_sub(spec.window_ticks() + 1);
            let d = base.saturating_sub(*self.base);
            for o in self.ring.iter_mut() {
                *o = u16::try_from(u64::from(*o).saturating_sub(d)).unwrap_or(0);
            }
            *self.base = base;
        }
        let head = usize::from(*self.head);
        self.ring[head] = u16::try_from(t - *self.base).unwrap_or(u16::MAX);
        *self.head = u8::try_from((head + 1) % self.ring.len()).unwrap_or(0);
    }

    /// Refills the log with `ticks` (oldest first), keeping the newest that fit.
    pub(crate) fn refill(&mut self, ticks: &[u64], spec: Spec) {
        self.ring.fill(0);
        *self.head = 0;
        *self.base = 0;
        let keep = ticks.len().saturating_sub(self.ring.len());
        for &t in &ticks[keep..] {
            self.push(t << spec.shift, spec);
        }
    }
}
