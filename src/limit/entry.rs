//! What the in-memory limiter keeps per active key: [`Entry`], the logs (or counters) of the
//! key's windows, and one check of all of them at once under the table's lock.

use super::log::{Log, Spec, MAX_TICKS};
use super::window::{Outcome, WindowState};
use super::{Quota, Quotas};

/// The longest log kept inline (the layer's default limit is 10).
pub(crate) const INLINE: usize = 10;

/// One key's state: 32 bytes in the table (40 with the 8-byte key) when the key has one
/// window and a limit up to [`INLINE`] (or above the exact range); on the heap otherwise.
pub(crate) enum Entry {
    /// One exact window, `len` = its limit, inline.
    Small {
        base: u64,
        head: u8,
        len: u8,
        shift: u8,
        ring: [u16; INLINE],
    },
    /// One window above the exact range: the sliding window counter.
    Counter(Counters),
    /// Any other set of windows: one [`Window`] per quota, in the quotas' order.
    Many(Box<[Window]>),
}

/// The sliding window counter's state: when it is stale (`(index + 2) × window`, so the
/// index is `stale_at / window − 2`), the previous and the current count.
#[derive(Clone, Copy, Default)]
pub(crate) struct Counters {
    stale_at: u64,
    prev: u32,
    curr: u32,
}

impl Counters {
    fn step(&mut self, now: u64, quota: Quota, consume: bool) -> Outcome {
        let mut st = WindowState {
            window: (self.stale_at / quota.window_us().max(1)).wrapping_sub(2),
            stale_at: self.stale_at,
            prev: self.prev,
            curr: self.curr,
        };
        let outcome = st.check(now, quota, consume);
        *self = Counters {
            stale_at: st.stale_at,
            prev: st.prev,
            curr: st.curr,
        };
        outcome
    }
}

/// One window of a key with several (or a long log).
pub(crate) struct Window {
    quota: Quota,
    base: u64,
    head: u8,
    /// The log when the limit is exact, else empty and `counters` used.
    ring: Box<[u16]>,
    counters: Counters,
}

impl Window {
    fn new(quota: Quota) -> Self {
        let spec = Spec::of(quota);
        let len = if spec.exact() { spec.limit as usize } else { 0 };
        Window {
            quota,
            base: 0,
            head: 0,
            ring: vec![0; len].into_boxed_slice(),
            counters: Counters::default(),
        }
    }

    fn log(&mut self) -> Log<'_> {
        Log {
            base: &mut self.base,
            head: &mut self.head,
            ring: &mut self.ring,
        }
    }

    /// Whether one more request fits at `now`.
    fn fits(&mut self, now: u64) -> bool {
        let (quota, spec) = (self.quota, Spec::of(self.quota));
        if self.ring.is_empty() {
            let mut c = self.counters;
            return c.step(now, quota, false).allowed;
        }
        self.log().summary(now, spec).live < spec.limit
    }

    /// The outcome at `now`, recording the request when `counted`.
    fn step(&mut self, now: u64, counted: bool) -> Outcome {
        let (quota, spec) = (self.quota, Spec::of(self.quota));
        if self.ring.is_empty() {
            return self.counters.step(now, quota, counted);
        }
        let mut log = self.log();
        let summary = log.summary(now, spec);
        if counted {
            log.push(now, spec);
        }
        summary.outcome(now, spec, counted)
    }

    /// When nothing of this window counts any more.
    fn stale_at(&mut self) -> u64 {
        let spec = Spec::of(self.quota);
        if self.ring.is_empty() {
            return self.counters.stale_at;
        }
        self.log().newest().map_or(0, |t| spec.expiry(t))
    }
}

impl Entry {
    /// A fresh entry for `quotas`.
    pub(crate) fn new(quotas: &Quotas) -> Self {
        match quotas.as_slice() {
            [q] => {
                let spec = Spec::of(*q);
                if !spec.exact() {
                    Entry::Counter(Counters::default())
                } else if spec.limit as usize <= INLINE {
                    Entry::Small {
                        base: 0,
                        head: 0,
                        len: spec.limit as u8,
                        shift: spec.shift as u8,
                        ring: [0; INLINE],
                    }
                } else {
                    Entry::Many(Box::new([Window::new(*q)]))
                }
            }
            qs => Entry::Many(qs.iter().map(|q| Window::new(*q)).collect()),
        }
    }

    /// Checks `quotas` at `now` (recording the request in every window when it fits all of
    /// them and `consume`), writing each window's outcome into `out`.
    pub(crate) fn check(
        &mut self,
        now: u64,
        quotas: &Quotas,
        consume: bool,
        out: &mut [Outcome; Quotas::MAX],
    ) {
        self.fit(quotas);
        match self {
            Entry::Small {
                base,
                head,
                len,
                ring,
                ..
            } => {
                let spec = Spec::of(quotas.as_slice()[0]);
                let mut log = Log {
                    base,
                    head,
                    ring: &mut ring[..usize::from(*len)],
                };
                let summary = log.summary(now, spec);
                let counted = consume && summary.live < spec.limit;
                if counted {
                    log.push(now, spec);
                }
                out[0] = summary.outcome(now, spec, counted);
            }
            Entry::Counter(c) => out[0] = c.step(now, quotas.as_slice()[0], consume),
            Entry::Many(windows) => {
                let mut fits = true;
                for w in windows.iter_mut() {
                    fits &= w.fits(now);
                }
                for (o, w) in out.iter_mut().zip(windows.iter_mut()) {
                    *o = w.step(now, consume && fits);
                }
            }
        }
    }

    /// When nothing of this entry counts any more (for the sweep; at most one window late
    /// for an inline log, which does not store its window).
    pub(crate) fn stale_at(&mut self) -> u64 {
        match self {
            Entry::Small {
                base,
                head,
                len,
                shift,
                ring,
            } => {
                let log = Log {
                    base,
                    head,
                    ring: &mut ring[..usize::from(*len)],
                };
                log.newest()
                    .map_or(0, |t| (t + MAX_TICKS).saturating_mul(1 << *shift))
            }
            Entry::Counter(c) => c.stale_at,
            Entry::Many(windows) => windows.iter_mut().map(Window::stale_at).max().unwrap_or(0),
        }
    }

    /// Reshapes the entry when the key's quotas are not those it was made for (its
    /// limits were changed), keeping the admissions of the windows it keeps.
    fn fit(&mut self, quotas: &Quotas) {
        let fits = match (&*self, quotas.as_slice()) {
            (Entry::Small { len, shift, .. }, [q]) => {
                let spec = Spec::of(*q);
                spec.exact() && spec.limit == u32::from(*len) && spec.shift == u32::from(*shift)
            }
            (Entry::Counter(_), [q]) => !Spec::of(*q).exact(),
            (Entry::Many(ws), qs) => {
                ws.len() == qs.len() && ws.iter().zip(qs).all(|(w, q)| w.quota == *q)
            }
            _ => false,
        };
        if fits {
            return;
        }
        let mut old = std::mem::replace(self, Entry::new(quotas));
        // The admissions of the old windows, in µs, oldest first, by window.
        let history: Vec<(Option<Quota>, u32, Vec<u64>)> = match &mut old {
            Entry::Small {
                base,
                head,
                len,
                shift,
                ring,
            } => {
                let s = u32::from(*shift);
                let log = Log {
                    base,
                    head,
                    ring: &mut ring[..usize::from(*len)],
                };
                vec![(None, s, log.ticks().map(|t| t << s).collect())]
            }
            Entry::Counter(_) => Vec::new(),
            Entry::Many(ws) => ws
                .iter_mut()
                .filter(|w| !w.ring.is_empty())
                .map(|w| {
                    let (q, s) = (w.quota, Spec::of(w.quota).shift);
                    (Some(q), s, w.log().ticks().map(|t| t << s).collect())
                })
                .collect(),
        };
        let carried = |q: Quota| {
            let spec = Spec::of(q);
            history.iter().find_map(|(wq, s, times)| {
                let same = wq.map_or(*s == spec.shift, |wq| wq.window() == q.window());
                same.then_some(times)
            })
        };
        match self {
            Entry::Small {
                base,
                head,
                len,
                ring,
                ..
            } => {
                let spec = Spec::of(quotas.as_slice()[0]);
                if let Some(times) = carried(quotas.as_slice()[0]) {
                    let ticks: Vec<u64> = times.iter().map(|&t| spec.tick(t)).collect();
                    let mut log = Log {
                        base,
                        head,
                        ring: &mut ring[..usize::from(*len)],
                    };
                    log.refill(&ticks, spec);
                }
            }
            Entry::Counter(_) => {}
            Entry::Many(ws) => {
                for w in ws.iter_mut().filter(|w| !w.ring.is_empty()) {
                    let spec = Spec::of(w.quota);
                    if let Some(times) = carried(w.quota) {
                        let ticks: Vec<u64> = times.iter().map(|&t| spec.tick(t)).collect();
                        w.log().refill(&ticks, spec);
                    }
                }
            }
        }
    }
}
