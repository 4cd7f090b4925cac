//! [`Quotas`]: the limits one request must fit.

use std::fmt;

use super::Quota;

/// The most limits one key may carry.
pub const MAX_QUOTAS: usize = 4;

/// The limits one request must fit (1 to [`MAX_QUOTAS`]; `Copy`, inline, no allocation).
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use ark_auth::limit::{Quota, Quotas};
///
/// let n = |n| NonZeroU32::new(n).unwrap();
/// let two = Quotas::new(&[Quota::per_second(n(10)), Quota::new(n(1000), Duration::from_secs(3600))]).unwrap();
/// assert_eq!(two.len(), 2);
/// assert_eq!(Quotas::one(Quota::DEFAULT).iter().next(), Some(Quota::DEFAULT));
/// assert!(Quotas::new(&[]).is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quotas {
    quotas: [Quota; MAX_QUOTAS],
    len: u8,
}

/// [`Quotas::new`] was given no limit, or more than [`MAX_QUOTAS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a key has 1 to 4 rate limits")]
pub struct QuotasError;

impl Quotas {
    /// One limit.
    pub const fn one(quota: Quota) -> Self {
        Quotas {
            quotas: [quota; MAX_QUOTAS],
            len: 1,
        }
    }

    /// These limits, in this order.
    pub fn new(quotas: &[Quota]) -> Result<Self, QuotasError> {
        let (&first, _) = quotas.split_first().ok_or(QuotasError)?;
        if quotas.len() > MAX_QUOTAS {
            return Err(QuotasError);
        }
        let mut all = [first; MAX_QUOTAS];
        all[..quotas.len()].copy_from_slice(quotas);
        Ok(Quotas {
            quotas: all,
            len: quotas.len() as u8,
        })
    }

    /// The limits.
    pub fn iter(&self) -> impl Iterator<Item = Quota> + '_ {
        self.as_slice().iter().copied()
    }

    /// How many limits.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Never true (there is always one limit at least).
    pub fn is_empty(&self) -> bool {
        false
    }

    fn as_slice(&self) -> &[Quota] {
        &self.quotas[..self.len()]
    }
}

impl fmt::Debug for Quotas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}
