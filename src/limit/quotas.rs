//! [`Quotas`]: the limits one request must fit, inline and `Copy`.

use std::fmt;

use super::Quota;

/// The most quotas one check takes.
const MAX: usize = 4;

/// The limits one request must fit: one to four [`Quota`]s with different windows (for
/// example 10 per second and 10 000 per day). `Copy` and inline: building one allocates
/// nothing.
///
/// A request is admitted only if it fits every quota, and when one refuses it is counted in
/// none; the decision then describes one window, as [`RateLimitDecision::combine`] says.
///
/// [`RateLimitDecision::combine`]: super::RateLimitDecision::combine
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use ark_auth::limit::{Quota, Quotas, QuotasError};
///
/// let n = |n| NonZeroU32::new(n).unwrap();
/// let per_second = Quota::per_second(n(10));
/// let per_day = Quota::new(n(10_000), Duration::from_secs(86_400));
/// let both = Quotas::new(&[per_second, per_day]).unwrap();
/// assert_eq!(both.len(), 2);
/// assert_eq!(both.iter().map(|q| q.limit().get()).collect::<Vec<_>>(), [10, 10_000]);
/// assert_eq!(Quotas::one(per_second).as_slice(), &[per_second]);
/// assert_eq!(Quotas::new(&[]), Err(QuotasError::Empty));
/// assert_eq!(Quotas::new(&[per_second, per_second]), Err(QuotasError::SameWindow));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quotas {
    len: u8,
    items: [Quota; MAX],
}

/// Why a list of quotas is not a [`Quotas`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuotasError {
    /// No quota at all.
    #[error("no rate limit given")]
    Empty,
    /// More than four quotas.
    #[error("at most 4 rate limits per key")]
    TooMany,
    /// Two quotas with the same window.
    #[error("two rate limits with the same window")]
    SameWindow,
}

impl Quotas {
    /// The most quotas a `Quotas` holds.
    pub const MAX: usize = MAX;

    /// A single quota.
    pub const fn one(quota: Quota) -> Self {
        Quotas {
            len: 1,
            items: [quota; MAX],
        }
    }

    /// One to four quotas, each with its own window, in the order given.
    pub fn new(quotas: &[Quota]) -> Result<Self, QuotasError> {
        let (first, rest) = quotas.split_first().ok_or(QuotasError::Empty)?;
        if quotas.len() > MAX {
            return Err(QuotasError::TooMany);
        }
        let mut items = [*first; MAX];
        for (i, q) in rest.iter().enumerate() {
            if quotas[..=i].iter().any(|p| p.window() == q.window()) {
                return Err(QuotasError::SameWindow);
            }
            items[i + 1] = *q;
        }
        Ok(Quotas {
            len: quotas.len() as u8,
            items,
        })
    }

    /// The quotas, in the order given.
    pub fn as_slice(&self) -> &[Quota] {
        &self.items[..usize::from(self.len)]
    }

    /// The quotas, in the order given.
    pub fn iter(&self) -> std::slice::Iter<'_, Quota> {
        self.as_slice().iter()
    }

    /// How many quotas (1 to 4).
    #[allow(clippy::len_without_is_empty)] // never empty
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }
}

impl From<Quota> for Quotas {
    fn from(quota: Quota) -> Self {
        Quotas::one(quota)
    }
}

impl Default for Quotas {
    /// The contract's default, [`Quota::DEFAULT`] (10 per second).
    fn default() -> Self {
        Quotas::one(Quota::DEFAULT)
    }
}

impl fmt::Debug for Quotas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a Quotas {
    type Item = &'a Quota;
    type IntoIter = std::slice::Iter<'a, Quota>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;
    use std::time::Duration;

    fn q(n: u32, secs: u64) -> Quota {
        Quota::new(NonZeroU32::new(n).unwrap(), Duration::from_secs(secs))
    }

    #[test]
    fn new_checks_count_and_windows() {
        let four = [q(1, 1), q(2, 60), q(3, 3600), q(4, 86_400)];
        assert_eq!(Quotas::new(&four).unwrap().as_slice(), &four);
        let five = [q(1, 1), q(2, 60), q(3, 3600), q(4, 86_400), q(5, 7)];
        assert_eq!(Quotas::new(&five), Err(QuotasError::TooMany));
        assert_eq!(
            Quotas::new(&[q(1, 1), q(2, 60), q(3, 1)]),
            Err(QuotasError::SameWindow)
        );
        assert_eq!(Quotas::new(&[q(1, 1)]).unwrap(), Quotas::one(q(1, 1)));
        assert_eq!(
            format!("{:?}", Quotas::one(q(1, 1)))
                .matches("Quota")
                .count(),
            1
        );
    }
}
