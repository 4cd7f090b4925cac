//! Rate limits as text: `"10/s,1000/h"` ([`Quotas`]' `FromStr` and `Display`), the members
//! of a keys file's `rate_limits` object, and the names of windows the 429 message uses.
//!
//! A window is written as a name (`second`, `minute`, `hour`, `day`) or as a unit with an
//! optional whole count before it: `ms`, `s`, `min` (or `m`), `h`, `d` (`s` is one second,
//! `30s` thirty, `1500ms` one and a half). A limit is a whole number of requests, at least 1.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use super::quotas::Quotas;
use super::Quota;

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// Why a text is not a rate limit (or a list of them). Its `Display` says what is wrong and
/// what is expected.
///
/// ```
/// use ark_auth::limit::Quotas;
///
/// let e = "10/week".parse::<Quotas>().unwrap_err();
/// assert!(e.to_string().starts_with("unknown window \"week\""));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QuotaParseError(String);

const WINDOWS: &str = "second, minute, hour, day, or a count with ms, s, min, h or d";

/// The window a text names, if any (see the module's grammar).
pub(crate) fn parse_window(text: &str) -> Result<Duration, QuotaParseError> {
    let named = match text {
        "second" => Some(SECOND),
        "minute" => Some(MINUTE),
        "hour" => Some(HOUR),
        "day" => Some(DAY),
        _ => None,
    };
    if let Some(w) = named {
        return Ok(w);
    }
    let unknown = || {
        let shown: String = text.chars().take(16).collect();
        QuotaParseError(format!("unknown window {shown:?} ({WINDOWS})"))
    };
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (count, unit) = text.split_at(digits);
    let count = match count {
        "" => 1,
        c => c
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(unknown)?,
    };
    let unit = match unit {
        "ms" => Duration::from_millis(1),
        "s" => SECOND,
        "m" | "min" => MINUTE,
        "h" => HOUR,
        "d" => DAY,
        _ => return Err(unknown()),
    };
    Ok(unit * count)
}

/// The name of a window in texts: `second`, `minute`, `hour`, `day`, else `None`.
pub(crate) fn window_name(window: Duration) -> Option<&'static str> {
    match window {
        SECOND => Some("second"),
        MINUTE => Some("minute"),
        HOUR => Some("hour"),
        DAY => Some("day"),
        _ => None,
    }
}

/// The window as a keys file's `rate_limits` member names it: its name, else `30s` or
/// `1500ms`.
pub(crate) fn window_member(window: Duration) -> String {
    match window_name(window) {
        Some(name) => name.to_owned(),
        None => count_and_unit(window),
    }
}

fn count_and_unit(window: Duration) -> String {
    if window.subsec_nanos() == 0 {
        format!("{}s", window.as_secs())
    } else {
        format!("{}ms", window.as_millis())
    }
}

fn parse_limit(text: &str) -> Result<NonZeroU32, QuotaParseError> {
    text.parse::<NonZeroU32>()
        .ok()
        .filter(|_| text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            let shown: String = text.chars().take(16).collect();
            QuotaParseError(format!(
                "limit {shown:?} is not a whole number of requests from 1 to 4294967295"
            ))
        })
}

/// Builds the limits of a key from (window, limit) pairs, refusing a window given twice and
/// more than four limits.
pub(crate) fn collect(
    pairs: impl IntoIterator<Item = Result<Quota, QuotaParseError>>,
) -> Result<Quotas, QuotaParseError> {
    let mut all: Vec<Quota> = Vec::with_capacity(Quotas::MAX);
    for q in pairs {
        let q = q?;
        if let Some(same) = all.iter().find(|p| p.window() == q.window()) {
            return Err(QuotaParseError(format!(
                "the window {} is given twice",
                window_member(same.window())
            )));
        }
        if all.len() == Quotas::MAX {
            return Err(QuotaParseError(format!(
                "more than {} rate limits",
                Quotas::MAX
            )));
        }
        all.push(q);
    }
    Quotas::new(&all).map_err(|_| QuotaParseError("no rate limit given".into()))
}

#[cfg(any(feature = "serde", feature = "postgres"))]
/// The limits of a `rate_limits` object's members, `(window, limit)` in order (`limit`
/// `None` when the value is not an unsigned integer): strict, as [`collect`].
pub(crate) fn quotas_from_members<'a>(
    members: impl IntoIterator<Item = (&'a str, Option<u64>)>,
) -> Result<Quotas, QuotaParseError> {
    collect(members.into_iter().map(|(w, n)| member(w, n)))
}

#[cfg(any(feature = "serde", feature = "postgres"))]
/// One member of a keys file's `rate_limits` object: `"minute": 100`. `limit` is `None`
/// when the member's value is not an unsigned integer.
pub(crate) fn member(window: &str, limit: Option<u64>) -> Result<Quota, QuotaParseError> {
    let window = parse_window(window)?;
    let limit = limit
        .and_then(|n| u32::try_from(n).ok())
        .and_then(NonZeroU32::new)
        .ok_or_else(|| {
            QuotaParseError(format!(
                "the limit per {} must be a whole number of requests from 1 to 4294967295",
                window_member(window)
            ))
        })?;
    Ok(Quota::new(limit, window))
}

/// `10/s`, `1000/h`, `5/30s`: a limit, `/`, a window.
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use ark_auth::limit::Quota;
///
/// let q: Quota = "1000/h".parse().unwrap();
/// assert_eq!((q.limit().get(), q.window()), (1000, Duration::from_secs(3600)));
/// assert_eq!(q.to_string(), "1000/h");
/// assert!("0/s".parse::<Quota>().is_err());
/// ```
impl FromStr for Quota {
    type Err = QuotaParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (limit, window) = s.trim().split_once('/').ok_or_else(|| {
            QuotaParseError("a rate limit is written as requests/window, e.g. 10/s".into())
        })?;
        Ok(Quota::new(parse_limit(limit)?, parse_window(window)?))
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.window() {
            SECOND => "s".to_owned(),
            MINUTE => "min".to_owned(),
            HOUR => "h".to_owned(),
            DAY => "d".to_owned(),
            w => count_and_unit(w),
        };
        write!(f, "{}/{unit}", self.limit())
    }
}

/// A key's limits as one text, comma-separated: `"10/s,1000/h"` (what a command line's
/// `--rate-limit` takes). Strict: an unknown window, a zero or missing limit, a window given
/// twice and more than four limits are errors; spaces around each limit are allowed.
///
/// ```
/// use ark_auth::limit::Quotas;
///
/// let q: Quotas = "10/s, 1000/h".parse().unwrap();
/// assert_eq!(q.len(), 2);
/// assert_eq!(q.to_string(), "10/s,1000/h");
/// for bad in ["", "10", "10/s,20/second", "0/s", "10/fortnight", "1/s,1/m,1/h,1/d,1/30s"] {
///     assert!(bad.parse::<Quotas>().is_err(), "{bad}");
/// }
/// ```
impl FromStr for Quotas {
    type Err = QuotaParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Err(QuotaParseError("no rate limit given".into()));
        }
        collect(s.split(',').map(str::parse))
    }
}

impl fmt::Display for Quotas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, q) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{q}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(limit: u32, window: Duration) -> Quota {
        Quota::new(NonZeroU32::new(limit).unwrap(), window)
    }

    #[test]
    fn windows_by_name_and_by_unit() {
        let ms = Duration::from_millis;
        for (text, window) in [
            ("second", SECOND),
            ("s", SECOND),
            ("1s", SECOND),
            ("minute", MINUTE),
            ("m", MINUTE),
            ("min", MINUTE),
            ("hour", HOUR),
            ("h", HOUR),
            ("day", DAY),
            ("d", DAY),
            ("7d", DAY * 7),
            ("30s", Duration::from_secs(30)),
            ("1500ms", ms(1500)),
            ("ms", ms(1)),
        ] {
            assert_eq!(parse_window(text), Ok(window), "{text}");
        }
        for bad in [
            "",
            "0s",
            "-1s",
            "+1s",
            "1 s",
            "S",
            "Second",
            "seconds",
            "1.5s",
            "week",
            "1w",
            "99999999999s",
            "s1",
        ] {
            assert!(parse_window(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn texts_round_trip() {
        let ms = Duration::from_millis;
        for (text, quotas) in [
            ("10/s", vec![q(10, SECOND)]),
            ("10/s,1000/h", vec![q(10, SECOND), q(1000, HOUR)]),
            (
                "1/min,2/d,3/30s,4/1500ms",
                vec![
                    q(1, MINUTE),
                    q(2, DAY),
                    q(3, Duration::from_secs(30)),
                    q(4, ms(1500)),
                ],
            ),
            ("4294967295/s", vec![q(u32::MAX, SECOND)]),
        ] {
            let parsed: Quotas = text.parse().unwrap();
            assert_eq!(parsed, Quotas::new(&quotas).unwrap(), "{text}");
            assert_eq!(parsed.to_string(), text);
            assert_eq!(parsed.to_string().parse::<Quotas>(), Ok(parsed));
        }
        assert_eq!(
            " 10/second , 5/day ".parse::<Quotas>().unwrap().to_string(),
            "10/s,5/d"
        );
    }

    #[test]
    fn strict_texts() {
        for (bad, says) in [
            ("", "no rate limit"),
            (",", "requests/window"),
            ("10", "requests/window"),
            ("10/s,", "requests/window"),
            ("0/s", "limit \"0\""),
            ("+5/s", "limit \"+5\""),
            ("4294967296/s", "limit"),
            ("x/s", "limit"),
            ("10/week", "unknown window \"week\""),
            ("10/s,20/1s", "window second is given twice"),
            ("1/s,1/min,60/m", "window minute is given twice"),
            ("1/s,1/m,1/h,1/d,1/30s", "more than 4"),
        ] {
            let e = bad.parse::<Quotas>().unwrap_err().to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn members_of_a_keys_file() {
        assert_eq!(member("minute", Some(100)), Ok(q(100, MINUTE)));
        for (window, limit, says) in [
            ("minute", Some(0), "limit per minute"),
            ("minute", None, "limit per minute"),
            ("30s", Some(1 << 32), "limit per 30s"),
            ("week", Some(1), "unknown window"),
        ] {
            let e = member(window, limit).unwrap_err().to_string();
            assert!(e.contains(says), "{window} {limit:?}: {e}");
        }
        for w in [
            SECOND,
            MINUTE,
            HOUR,
            DAY,
            Duration::from_secs(30),
            Duration::from_millis(1500),
        ] {
            assert_eq!(parse_window(&window_member(w)), Ok(w));
        }
        assert_eq!(window_name(Duration::from_secs(30)), None);
    }
}
