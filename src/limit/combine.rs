//! Which window one decision over several quotas describes: a pure rule over the decisions
//! of each window.

use std::cmp::Ordering;

use super::RateLimitDecision;

impl RateLimitDecision {
    /// The one decision that describes a check of several windows, given each window's
    /// decision (`None` for none).
    ///
    /// - Refused (some window refuses): the refusing window whose `retry_after` is the
    ///   latest, so that a request sent then fits every window (waiting admits nothing
    ///   new, so the others still fit). On a tie, the longest window.
    /// - Admitted (every window admits): the window closest to refusing, the smallest
    ///   `remaining`; on a tie, the longest window.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ark_auth::limit::RateLimitDecision;
    ///
    /// let second = RateLimitDecision::admitted(10, 9, 100).with_window(Duration::from_secs(1));
    /// let day = RateLimitDecision::admitted(1000, 3, 200).with_window(Duration::from_secs(86_400));
    /// assert_eq!(RateLimitDecision::combine(&[second, day]), Some(day));
    /// ```
    pub fn combine(decisions: &[RateLimitDecision]) -> Option<RateLimitDecision> {
        decisions.iter().copied().max_by(closer_to_refusing)
    }
}

/// `Greater` when `a` describes the check better than `b`.
fn closer_to_refusing(a: &RateLimitDecision, b: &RateLimitDecision) -> Ordering {
    match (a.allowed, b.allowed) {
        (false, true) => Ordering::Greater,
        (true, false) => Ordering::Less,
        (false, false) => a.retry_after.cmp(&b.retry_after),
        (true, true) => b.remaining.cmp(&a.remaining),
    }
    .then(a.window.cmp(&b.window))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SEC: Duration = Duration::from_secs(1);
    const MIN: Duration = Duration::from_secs(60);
    const DAY: Duration = Duration::from_secs(86_400);

    fn ok(window: Duration, remaining: u32) -> RateLimitDecision {
        RateLimitDecision::admitted(100, remaining, 7).with_window(window)
    }

    fn no(window: Duration, retry_ms: u64) -> RateLimitDecision {
        RateLimitDecision::refused(100, 7, Duration::from_millis(retry_ms)).with_window(window)
    }

    #[test]
    fn combination_table() {
        #[rustfmt::skip]
        let rows: [(&str, Vec<RateLimitDecision>, Option<RateLimitDecision>); 10] = [
            ("nothing to combine", vec![], None),
            ("one window is itself", vec![ok(SEC, 4)], Some(ok(SEC, 4))),
            ("admitted: the smallest remaining", vec![ok(SEC, 4), ok(MIN, 2), ok(DAY, 9)], Some(ok(MIN, 2))),
            ("admitted: a tie goes to the longest window", vec![ok(DAY, 2), ok(SEC, 2), ok(MIN, 2)], Some(ok(DAY, 2))),
            ("refused beats admitted", vec![ok(SEC, 0), no(MIN, 10)], Some(no(MIN, 10))),
            ("refused beats admitted, in any order", vec![no(SEC, 10), ok(DAY, 0)], Some(no(SEC, 10))),
            ("refused: the latest retry", vec![no(SEC, 900), no(MIN, 30_000), no(DAY, 5)], Some(no(MIN, 30_000))),
            ("refused: a tie goes to the longest window", vec![no(DAY, 500), no(SEC, 500)], Some(no(DAY, 500))),
            ("one refusal among admissions", vec![ok(SEC, 1), ok(MIN, 0), no(DAY, 1)], Some(no(DAY, 1))),
            ("admitted with nothing left", vec![ok(SEC, 0), ok(MIN, 0)], Some(ok(MIN, 0))),
        ];
        for (what, decisions, want) in rows {
            assert_eq!(RateLimitDecision::combine(&decisions), want, "{what}");
        }
    }
}
