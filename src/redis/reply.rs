//! The decision for what the script saw, by the in-memory limiter's own arithmetic: the
//! same [`RateLimitDecision`] for the same admissions.

use crate::limit::{decision_at, Quotas, RateLimitDecision, Spec, Summary, WindowState};

/// The decision for the script's reply (`{now, fit, then three values per window}`, see
/// `window.lua`) to a check of `quotas`; `None` for a reply of another shape.
pub(crate) fn decide(reply: &[i64], quotas: &Quotas, consume: bool) -> Option<RateLimitDecision> {
    let (head, rest) = reply.split_at_checked(2)?;
    if rest.len() != 3 * quotas.len() {
        return None;
    }
    let now = u64::try_from(head[0]).ok()?;
    let fit = head[1] == 1;
    let counted = consume && fit;
    let mut each = [RateLimitDecision::admitted(0, 0, 0); Quotas::MAX];
    for ((d, q), v) in each.iter_mut().zip(quotas).zip(rest.chunks_exact(3)) {
        let [a, b, c] = [v[0], v[1], v[2]].map(|x| u64::try_from(x).ok());
        let (a, b, c) = (a?, b?, c?);
        let spec = Spec::of(*q);
        let outcome = if spec.exact() {
            let summary = Summary {
                live: u32::try_from(a).ok()?,
                unblock: spec.expiry(b),
                newest: spec.expiry(c),
            };
            summary.outcome(now, spec, counted)
        } else {
            let (prev, curr) = (u32::try_from(b).ok()?, u32::try_from(c).ok()?);
            WindowState::at(a, prev, curr).check(now, *q, counted)
        };
        *d = decision_at(0, outcome, *q);
    }
    let mut d = RateLimitDecision::combine(&each[..quotas.len()])?;
    // The server's verdict is the one that was recorded (the two could differ only beyond
    // the script's exact arithmetic, limit × window ≥ 2⁵³ µs, for the counter).
    if d.allowed != fit {
        d.allowed = fit;
        if fit {
            d.retry_after = None;
        } else {
            d.remaining = 0;
            d.retry_after = Some(d.retry_after.unwrap_or(std::time::Duration::from_secs(1)));
        }
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::Quota;
    use std::num::NonZeroU32;
    use std::time::Duration;

    fn q(n: u32, secs: u64) -> Quota {
        Quota::new(NonZeroU32::new(n).unwrap(), Duration::from_secs(secs))
    }

    #[test]
    fn replies_decode_into_the_memory_arithmetic() {
        let now: i64 = 1_764_000_000_250_000;
        let second = Quotas::one(q(3, 1));
        // A 1 s window has 16 µs ticks; two admissions, the newest 0.1 s ago.
        let t = |us: i64| (us + 15) / 16;
        let reply = [now, 1, 2, 0, t(now - 100_000)];
        let d = decide(&reply, &second, true).unwrap();
        assert!(d.allowed);
        assert_eq!(
            (d.limit, d.remaining, d.window),
            (3, 0, Duration::from_secs(1))
        );
        assert_eq!(
            d.reset, 1_764_000_002,
            "the new admission's expiry, rounded up"
        );
        // Full: the oldest of the three, 0.6 s ago, frees one in 0.4 s.
        let reply = [now, 0, 3, t(now - 600_000), t(now - 100_000)];
        let d = decide(&reply, &second, true).unwrap();
        assert!(!d.allowed);
        let retry = d.retry_after.unwrap();
        assert!(retry >= Duration::from_millis(400) && retry < Duration::from_micros(400_016));
        assert_eq!(d.retry_after_secs(), 1);
        // Two windows: the day refuses, the second would not; the day is described.
        let both = Quotas::new(&[q(3, 1), q(2, 86_400)]).unwrap();
        let day_tick = |us: i64| (us + (1 << 21) - 1) >> 21;
        let reply = [
            now,
            0,
            0,
            0,
            0,
            2,
            day_tick(now - 3_600_000_000),
            day_tick(now - 60_000_000),
        ];
        let d = decide(&reply, &both, true).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.window, Duration::from_secs(86_400));
        assert!(d.retry_after.unwrap() > Duration::from_secs(82_700));
        // A reply of the wrong shape is refused, not guessed.
        assert_eq!(decide(&[now, 1, 0], &second, true), None);
        assert_eq!(decide(&[now, 1, -1, 0, 0], &second, true), None);
    }
}
