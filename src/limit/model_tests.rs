//! The in-memory limiter's per-key state against an independent model of the exact sliding
//! window (the admitted requests' times in a `Vec`), on schedules with a controlled clock:
//! the same admissions and the same headers, and never more than the limit admitted in any
//! interval of one window's length.

use std::num::NonZeroU32;
use std::time::Duration;

use proptest::prelude::*;

use super::entry::Entry;
use super::window::{decision_at, Outcome};
use super::{Quota, Quotas, RateLimitDecision};

/// The model of one window: every admission's time, rounded up to the window's resolution
/// (the finest power of two of µs in which the window spans at most 65 534 steps).
struct ModelWindow {
    limit: u32,
    window: u64,
    step: u64,
    admitted: Vec<u64>,
}

impl ModelWindow {
    fn new(q: Quota) -> Self {
        let window = q.window().as_micros() as u64;
        let mut step = 1;
        while window.div_ceil(step) > 65_534 {
            step *= 2;
        }
        ModelWindow {
            limit: q.limit().get(),
            window,
            step,
            admitted: Vec::new(),
        }
    }

    fn live(&self, now: u64) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .admitted
            .iter()
            .map(|a| a + self.window)
            .filter(|&e| e > now)
            .collect();
        v.sort_unstable();
        v
    }

    fn fits(&self, now: u64) -> bool {
        (self.live(now).len() as u32) < self.limit
    }

    fn decide(&mut self, now: u64, quota: Quota, record: bool) -> RateLimitDecision {
        let live = self.live(now);
        let allowed = (live.len() as u32) < self.limit;
        if record {
            self.admitted.push(now.div_ceil(self.step) * self.step);
        }
        let all = self.live(now);
        let reset_at = all.last().copied().unwrap_or(now);
        let retry = (!allowed).then(|| live[live.len() - self.limit as usize] - now);
        decision_at(
            0,
            Outcome {
                allowed,
                remaining: self.limit.saturating_sub(all.len() as u32),
                reset_at,
                retry_after: retry,
            },
            quota,
        )
    }
}

/// The model's choice of the window a decision describes, written out.
fn model_pick(each: &[RateLimitDecision]) -> RateLimitDecision {
    let mut best = each[0];
    for d in &each[1..] {
        let better = match (d.allowed, best.allowed) {
            (false, true) => true,
            (true, false) => false,
            (false, false) => {
                d.retry_after > best.retry_after
                    || (d.retry_after == best.retry_after && d.window > best.window)
            }
            (true, true) => {
                d.remaining < best.remaining
                    || (d.remaining == best.remaining && d.window > best.window)
            }
        };
        if better {
            best = *d;
        }
    }
    best
}

/// Runs `times` (µs, nondecreasing, ≥ 1) through an entry and the model; returns the
/// admitted times.
fn run(quotas: &Quotas, times: &[u64]) -> Vec<u64> {
    let mut entry = Entry::new(quotas);
    run_with(quotas, times, |now| {
        let mut out = [Outcome::default(); Quotas::MAX];
        entry.check(now, quotas, true, &mut out);
        let each: Vec<_> = out
            .iter()
            .zip(quotas)
            .map(|(o, q)| decision_at(0, *o, *q))
            .collect();
        RateLimitDecision::combine(&each).unwrap()
    })
}

/// Runs `times` through `acquire` (a limiter's check at a controlled time) and the model,
/// asserting the same decisions; returns the admitted times.
pub(crate) fn run_with(
    quotas: &Quotas,
    times: &[u64],
    mut acquire: impl FnMut(u64) -> RateLimitDecision,
) -> Vec<u64> {
    let mut model: Vec<ModelWindow> = quotas.iter().map(|q| ModelWindow::new(*q)).collect();
    let mut admitted = Vec::new();
    for (i, &now) in times.iter().enumerate() {
        let got = acquire(now);
        let fits = model.iter().all(|m| m.fits(now));
        let each: Vec<_> = model
            .iter_mut()
            .zip(quotas)
            .map(|(m, q)| m.decide(now, *q, fits))
            .collect();
        let want = model_pick(&each);
        assert_eq!(got, want, "request {i} at {now} µs of {times:?}");
        if got.allowed {
            admitted.push(now);
        }
    }
    admitted
}

/// The most admissions in any interval of length `window` (µs).
pub(crate) fn max_in_window(admitted: &[u64], window: u64) -> usize {
    (0..admitted.len())
        .map(|i| {
            admitted[i..]
                .iter()
                .take_while(|&&t| t < admitted[i] + window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

pub(crate) fn quota(limit: u32, window_ms: u64) -> Quota {
    Quota::new(
        NonZeroU32::new(limit).unwrap(),
        Duration::from_millis(window_ms),
    )
}

fn windows_ms() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(1),
        Just(10),
        Just(1_000),
        Just(60_000),
        Just(3_600_000),
        1u64..5_000
    ]
}

pub(crate) fn quotas() -> impl Strategy<Value = Quotas> {
    prop::collection::vec((1u32..=128, windows_ms()), 1..=4)
        .prop_filter_map("distinct windows", |v| {
            Quotas::new(&v.iter().map(|&(l, w)| quota(l, w)).collect::<Vec<_>>()).ok()
        })
}

/// Times from gaps, starting at `start`.
pub(crate) fn times(start: u64, gaps: &[u64]) -> Vec<u64> {
    gaps.iter()
        .scan(start, |t, g| {
            *t += g;
            Some(*t)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random schedules (bursts and pauses), one to four windows.
    #[test]
    fn random_schedules_match_the_model(
        q in quotas(),
        start in 1u64..10_000_000_000,
        gaps in prop::collection::vec(prop_oneof![Just(0u64), 0u64..2_000, 0u64..2_000_000], 1..300),
    ) {
        let ts = times(start, &gaps);
        let admitted = run(&q, &ts);
        for quota in &q {
            let w = quota.window().as_micros() as u64;
            prop_assert!(max_in_window(&admitted, w) <= quota.limit().get() as usize);
        }
    }

    /// A full burst just before a window boundary, then polling: the boundary frees
    /// nothing, and any window-length interval holds exactly the limit.
    #[test]
    fn burst_before_a_boundary_then_polling(
        limit in 1u32..=128,
        window_ms in prop_oneof![Just(1_000u64), Just(60_000), 1u64..3_000],
        before in 1u64..1_000,
        poll in 1u64..5_000,
    ) {
        let w = window_ms * 1_000;
        let boundary = 1_000 * w;
        let mut ts = vec![boundary - before.min(w - 1); limit as usize];
        let t0 = ts[0];
        ts.extend((1..).map(|i| t0 + i * poll).take_while(|&t| t < t0 + 3 * w).take(400));
        let q = Quotas::one(quota(limit, window_ms));
        let admitted = run(&q, &ts);
        prop_assert_eq!(max_in_window(&admitted, w), limit as usize);
    }

    /// Steady traffic at three times the limit: exactly the limit in the busiest interval.
    #[test]
    fn steady_three_times_overload(
        limit in 1u32..=128,
        window_ms in prop_oneof![Just(1_000u64), Just(10), 1u64..3_000],
        start in 1u64..1_000_000_000,
    ) {
        let w = window_ms * 1_000;
        let gap = (w / (3 * u64::from(limit))).max(1);
        let ts: Vec<u64> = (0..).map(|i| start + i * gap).take_while(|&t| t < start + 4 * w).take(800).collect();
        let q = Quotas::one(quota(limit, window_ms));
        let admitted = run(&q, &ts);
        prop_assert_eq!(max_in_window(&admitted, w), limit as usize);
    }

    /// A request sent at the announced `Retry-After` (whole seconds, rounded up) after
    /// a refusal is admitted, and so is one at the announced `X-RateLimit-Reset`.
    #[test]
    fn announced_times_are_honoured(
        limit in 1u32..=20,
        window_s in 1u64..5,
        start_ms in 1_000u64..100_000_000,
        gaps in prop::collection::vec(0u64..300_000, 1..40),
    ) {
        let q = Quotas::one(quota(limit, window_s * 1_000));
        let mut entry = Entry::new(&q);
        let mut now = start_ms * 1_000;
        for g in gaps {
            now += g;
            let mut out = [Outcome::default(); Quotas::MAX];
            entry.check(now, &q, true, &mut out);
            let d = decision_at(0, out[0], q.as_slice()[0]);
            if !d.allowed {
                // Peeks, which record nothing.
                let mut probe = [Outcome::default(); Quotas::MAX];
                entry.check(now + d.retry_after_secs() * 1_000_000, &q, false, &mut probe);
                prop_assert!(probe[0].allowed, "refused at the announced retry: {:?}", d);
                entry.check((d.reset * 1_000_000).max(now), &q, false, &mut probe);
                prop_assert_eq!(probe[0].remaining, limit, "the reset frees the whole limit");
            }
        }
    }
}

#[test]
fn a_lowered_limit_keeps_the_admissions() {
    let ten = Quotas::one(quota(10, 1_000));
    let three = Quotas::one(quota(3, 1_000));
    let mut e = Entry::new(&ten);
    let mut out = [Outcome::default(); Quotas::MAX];
    for i in 0..5 {
        e.check(1_000_000 + i, &ten, true, &mut out);
        assert!(out[0].allowed);
    }
    e.check(1_000_010, &three, true, &mut out);
    assert!(
        !out[0].allowed,
        "5 in the window already, the new limit is 3"
    );
    // 3 of the 5 must expire: the third oldest was admitted at 1 000 002 µs, kept to 16 µs.
    assert_eq!(out[0].retry_after, Some(1_000_016 + 1_000_000 - 1_000_010));
}
