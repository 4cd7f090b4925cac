//! The layer's decisions, as plain functions over plain data: [`verify`] the store's answer,
//! pick the key's quotas ([`quota`]), and [`settle`] the limiter's answer into a call or a
//! rejection (a 429 names the refusing window).
//! Order of the contract: authenticate, then permissions, then the rate limit; a 401 or 403
//! uses no quota.

use std::sync::Arc;
use std::time::SystemTime;

use crate::authenticated::AuthenticatedKey;
use crate::key::{KeyHash, KeyRecord};
use crate::limit::{LimiterError, Quotas, RateLimitDecision};
use crate::permission::Permissions;
use crate::policy::KeyScope;
use crate::response::{Limits, Rejection};
use crate::store::StoreError;

use super::guard::Failure;
use super::options::{Environments, LimiterFailure};

/// The store's answer to a lookup, with its failures.
pub(crate) type Found = Result<Option<Arc<KeyRecord>>, Failure<StoreError>>;
/// The limiter's answer to a check, with its failures.
pub(crate) type Checked = Result<RateLimitDecision, Failure<LimiterError>>;

/// What the route requires of the key, and the hash of the presented key.
#[derive(Debug)]
pub(crate) struct Need {
    pub(crate) hash: KeyHash,
    pub(crate) permissions: Permissions,
    pub(crate) scope: KeyScope,
}

/// A key that authenticated, and the 403 it earns on this route, if any (decided before the
/// rate limit; its headers wait for the key's limit state).
#[derive(Debug)]
pub(crate) struct Verified {
    pub(crate) record: Arc<KeyRecord>,
    pub(crate) denied: Option<Rejection>,
}

/// What the request leads to once the limiter has answered.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Call the inner service with this key, and these rate-limit headers on its response.
    Call(AuthenticatedKey, Option<RateLimitDecision>),
    /// Answer the rejection; with the key the store found, if it found one.
    Reject(Rejection, Option<Arc<KeyRecord>>),
}

/// A rejection of [`verify`], with the key the store found, if it found one.
pub(crate) type Refused = (Rejection, Option<Arc<KeyRecord>>);

/// The all-zero hash a lookup miss is compared against, so that a miss costs the same
/// constant-time comparison as a hit.
static NO_KEY: KeyHash = KeyHash::from_bytes([0; 32]);

/// Verifies a lookup's answer: the key, and the 403 it earns if any; or the 401/503.
/// `now` is asked only of a key that expires.
pub(crate) fn verify(
    found: Found,
    need: &Need,
    environments: Environments,
    now: impl FnOnce() -> SystemTime,
) -> Result<Verified, Refused> {
    let found = found.map_err(|e| {
        tracing::error!(error = %e, "ark-auth: key store failed; answering 503");
        (Rejection::Unavailable, None)
    })?;
    // Constant time: a miss compares against a dummy, a hit against the stored hash.
    let stored = found.as_ref().map_or(&NO_KEY, |r| r.hash());
    let matches = stored.ct_eq(&need.hash);
    let record = match found {
        Some(r) if matches => r,
        _ => return Err((Rejection::UnknownKey, None)),
    };
    if !environments.accepts(record.environment()) {
        let environment = record.environment();
        return Err((Rejection::EnvironmentNotAccepted(environment), Some(record)));
    }
    if record.is_revoked() {
        return Err((Rejection::Revoked, Some(record)));
    }
    if record.expires_at().is_some_and(|at| now() >= at) {
        return Err((Rejection::Expired, Some(record)));
    }
    let denied = denial(&record, need);
    Ok(Verified { record, denied })
}

/// The 403 a valid key earns on a route: a missing permission, another tenant, or a
/// tenant-scoped key on a route for the organisation.
fn denial(record: &KeyRecord, need: &Need) -> Option<Rejection> {
    let required = need.permissions;
    if !record.permissions().contains_all(required) {
        return Some(Rejection::MissingPermissions {
            missing: record.permissions().missing(required),
            required,
            limit: None,
        });
    }
    match (record.tenant(), &need.scope) {
        (Some(k), KeyScope::Tenant(r)) if k != r => Some(Rejection::OtherTenant {
            required,
            limit: None,
        }),
        (Some(_), KeyScope::Organisation) => Some(Rejection::OrganisationOnly {
            required,
            limit: None,
        }),
        _ => None,
    }
}

/// The limits a request of this key must fit: the key's own (all of them, each with its
/// window; they replace the default entirely), or else all of the deployment's defaults.
pub(crate) fn quota(record: &KeyRecord, default: &Quotas) -> Quotas {
    record.rate_limits().unwrap_or(*default)
}

/// How many limits a refused key was checked against, its own or the defaults (its 429
/// names the window when there are several).
fn limits_of(record: &KeyRecord, default: &Quotas) -> Limits {
    match quota(record, default).len() {
        1 => Limits::One,
        _ => Limits::Several,
    }
}

/// What the limiter's answer leads to, for a key checked against its own limits or
/// `default`. A denied key's check was a peek (its headers only).
pub(crate) fn settle(
    checked: Checked,
    verified: Verified,
    default: &Quotas,
    on_failure: LimiterFailure,
) -> Decision {
    let Verified { record, denied } = verified;
    #[cfg(feature = "metrics")]
    if let Err(failure) = &checked {
        crate::metrics::limiter_failure(failure.kind());
    }
    match (checked, denied) {
        (Ok(d), Some(denied)) => Decision::Reject(with_limit(denied, d), Some(record)),
        (Ok(d), None) if !d.allowed => {
            let limits = limits_of(&record, default);
            Decision::Reject(Rejection::RateLimited(d, limits), Some(record))
        }
        (Ok(d), None) => Decision::Call(AuthenticatedKey::with_limit(record, Some(d)), Some(d)),
        // The 403 was decided before the rate limit; only its headers are lost.
        (Err(failure), Some(denied)) => {
            tracing::warn!(key_id = %record.id(), error = %failure, "ark-auth: rate limiter failed; 403 without rate-limit headers");
            Decision::Reject(denied, Some(record))
        }
        (Err(failure), None) => match on_failure {
            LimiterFailure::Refuse => {
                tracing::error!(key_id = %record.id(), error = %failure, "ark-auth: rate limiter failed; answering 503");
                Decision::Reject(Rejection::Unavailable, Some(record))
            }
            LimiterFailure::Allow => {
                tracing::warn!(key_id = %record.id(), error = %failure, "ark-auth: rate limiter failed; serving without rate limit");
                Decision::Call(AuthenticatedKey::with_limit(record, None), None)
            }
        },
    }
}

/// Adds the key's current limit state to a 403.
fn with_limit(rejection: Rejection, d: RateLimitDecision) -> Rejection {
    match rejection {
        Rejection::MissingPermissions {
            missing, required, ..
        } => Rejection::MissingPermissions {
            missing,
            required,
            limit: Some(d),
        },
        Rejection::OtherTenant { required, .. } => Rejection::OtherTenant {
            required,
            limit: Some(d),
        },
        Rejection::OrganisationOnly { required, .. } => Rejection::OrganisationOnly {
            required,
            limit: Some(d),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::Quota;
    use crate::permission::Permission;
    use crate::token::bearer_token;
    use crate::token::Environment;
    use std::time::Duration;

    const TOKEN: &str = "ark_live_0123456789abcdefABCDEF";
    const T0: SystemTime = SystemTime::UNIX_EPOCH;

    fn hash_of(token: &str) -> KeyHash {
        let mut h = http::HeaderMap::new();
        h.insert("authorization", format!("Bearer {token}").parse().unwrap());
        KeyHash::of(&bearer_token(&h).unwrap())
    }

    fn record() -> KeyRecord {
        KeyRecord::new("key_1", hash_of(TOKEN), Environment::Live)
            .with_permissions(Permission::EmailsSend.into())
    }

    fn need(permissions: Permissions, scope: KeyScope) -> Need {
        Need {
            hash: hash_of(TOKEN),
            permissions,
            scope,
        }
    }

    fn limit(allowed: bool) -> RateLimitDecision {
        RateLimitDecision {
            allowed,
            limit: 10,
            remaining: if allowed { 9 } else { 0 },
            reset: 1,
            retry_after: (!allowed).then_some(Duration::from_millis(100)),
            window: Duration::from_secs(1),
        }
    }

    /// The outcome of `verify` as a code: "ok", or the rejection's contract code and kind.
    fn outcome(r: Result<Verified, Refused>) -> String {
        match r {
            Ok(Verified { denied: None, .. }) => "ok".into(),
            Ok(Verified {
                denied: Some(d), ..
            }) => format!("ok, then {d:?}"),
            // The key goes with every rejection after the store found one.
            Err((e, key)) => {
                let found = !matches!(e, Rejection::UnknownKey | Rejection::Unavailable);
                assert_eq!(key.is_some(), found, "{e:?}");
                format!("{e:?}")
            }
        }
    }

    #[test]
    fn verify_table() {
        let send: Permissions = Permission::EmailsSend.into();
        let read: Permissions = Permission::EmailsRead.into();
        let live_only = Environments::of(&[Environment::Live]);
        let test_only = Environments::of(&[Environment::Test]);
        let later = T0 + Duration::from_secs(10);
        let other = hash_of("ark_live_ffffffffffffffffffffff");
        let tenant = |t: &str| KeyScope::Tenant(t.into());
        let then = |r: Rejection| format!("ok, then {r:?}");
        let missing = then(Rejection::MissingPermissions {
            missing: read,
            required: read,
            limit: None,
        });
        let other_tenant = then(Rejection::OtherTenant {
            required: send,
            limit: None,
        });
        let organisation_only = then(Rejection::OrganisationOnly {
            required: send,
            limit: None,
        });
        #[rustfmt::skip]
        let rows: Vec<(&str, Found, Need, Environments, &str)> = vec![
            ("a hit", Ok(Some(record().into())), need(send, KeyScope::Any), Environments::ALL, "ok"),
            ("a miss", Ok(None), need(send, KeyScope::Any), Environments::ALL, "UnknownKey"),
            ("another key's record", Ok(Some(KeyRecord::new("k", other, Environment::Live).into())), need(send, KeyScope::Any), Environments::ALL, "UnknownKey"),
            ("store failed", Err(Failure::Error(StoreError::new("down"))), need(send, KeyScope::Any), Environments::ALL, "Unavailable"),
            ("store timed out", Err(Failure::Timeout), need(send, KeyScope::Any), Environments::ALL, "Unavailable"),
            ("store panicked", Err(Failure::Panic), need(send, KeyScope::Any), Environments::ALL, "Unavailable"),
            ("environment accepted", Ok(Some(record().into())), need(send, KeyScope::Any), live_only, "ok"),
            ("environment refused", Ok(Some(record().into())), need(send, KeyScope::Any), test_only, "EnvironmentNotAccepted(Live)"),
            ("revoked", Ok(Some(record().with_revoked(true).into())), need(send, KeyScope::Any), Environments::ALL, "Revoked"),
            ("expires later", Ok(Some(record().with_expiry(later).into())), need(send, KeyScope::Any), Environments::ALL, "ok"),
            ("expires now", Ok(Some(record().with_expiry(T0).into())), need(send, KeyScope::Any), Environments::ALL, "Expired"),
            ("revoked beats a missing permission", Ok(Some(record().with_revoked(true).into())), need(read, KeyScope::Any), Environments::ALL, "Revoked"),
            ("missing permission", Ok(Some(record().into())), need(read, KeyScope::Any), Environments::ALL,
                &missing),
            ("own tenant", Ok(Some(record().with_tenant("tn_a").into())), need(send, tenant("tn_a")), Environments::ALL, "ok"),
            ("other tenant", Ok(Some(record().with_tenant("tn_a").into())), need(send, tenant("tn_b")), Environments::ALL,
                &other_tenant),
            ("organisation key on a tenant", Ok(Some(record().into())), need(send, tenant("tn_b")), Environments::ALL, "ok"),
            ("tenant key on an organisation route", Ok(Some(record().with_tenant("tn_a").into())), need(send, KeyScope::Organisation), Environments::ALL,
                &organisation_only),
            ("organisation key on an organisation route", Ok(Some(record().into())), need(send, KeyScope::Organisation), Environments::ALL, "ok"),
        ];
        for (name, found, need, envs, expected) in rows {
            assert_eq!(
                outcome(verify(found, &need, envs, || T0)),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn now_is_asked_only_of_a_key_that_expires() {
        let need = need(Permission::EmailsSend.into(), KeyScope::Any);
        let asked = std::cell::Cell::new(0);
        let now = || {
            asked.set(asked.get() + 1);
            T0
        };
        assert!(verify(Ok(Some(record().into())), &need, Environments::ALL, now).is_ok());
        assert_eq!(asked.get(), 0);
        let expiring = record().with_expiry(T0 + Duration::from_secs(1));
        assert!(verify(Ok(Some(expiring.into())), &need, Environments::ALL, now).is_ok());
        assert_eq!(asked.get(), 1);
    }

    #[test]
    fn quota_is_the_keys_own_or_the_default() {
        let default = Quota::per_second(std::num::NonZeroU32::new(3).unwrap());
        assert_eq!(quota(&record(), &default.into()), default.into());
        assert_eq!(
            quota(&record().with_rate_limit(7), &default.into()),
            Quota::per_second(std::num::NonZeroU32::new(7).unwrap()).into()
        );
    }

    #[test]
    fn quotas_are_all_the_keys_own_or_all_the_defaults() {
        let default: Quotas = "3/s,20/h".parse().unwrap();
        let several: Quotas = "10/s,100/min,10000/d".parse().unwrap();
        assert_eq!(
            quota(&record().with_rate_limits(several), &default),
            several
        );
        let hourly: Quotas = "50/h".parse().unwrap();
        assert_eq!(quota(&record().with_rate_limits(hourly), &default), hourly);
        assert_eq!(quota(&record().with_rate_limit(7), &default).len(), 1);
        assert_eq!(quota(&record(), &default), default);
    }

    #[test]
    fn a_refusal_says_whether_the_key_was_checked_against_several_limits() {
        let refused = |r: KeyRecord, default: &str| {
            let v = Verified {
                record: r.into(),
                denied: None,
            };
            let default = default.parse().unwrap();
            outcome_of(settle(Ok(limit(false)), v, &default, LimiterFailure::Allow))
        };
        let one = |l: Limits| format!("{:?}", Rejection::RateLimited(limit(false), l));
        assert_eq!(refused(record(), "10/s"), one(Limits::One));
        assert_eq!(
            refused(record().with_rate_limit(4), "10/s"),
            one(Limits::One)
        );
        let hourly = "50/h".parse().unwrap();
        assert_eq!(
            refused(record().with_rate_limits(hourly), "10/s"),
            one(Limits::One)
        );
        let several = "10/s,50/h".parse().unwrap();
        assert_eq!(
            refused(record().with_rate_limits(several), "10/s"),
            one(Limits::Several)
        );
        // A key without limits of its own has the defaults' count; its own replace them.
        assert_eq!(refused(record(), "10/s,50/h"), one(Limits::Several));
        assert_eq!(
            refused(record().with_rate_limit(4), "10/s,50/h"),
            one(Limits::One)
        );
    }

    fn outcome_of(d: Decision) -> String {
        match d {
            Decision::Call(key, limit) => {
                format!("call {} {:?}", key.id(), limit.map(|l| l.remaining))
            }
            Decision::Reject(r, key) => {
                assert_eq!(key.as_deref().map(KeyRecord::id), Some("key_1"), "{r:?}");
                format!("{r:?}")
            }
        }
    }

    #[test]
    fn settle_table() {
        let denied = || {
            Some(Rejection::OtherTenant {
                required: Permission::EmailsSend.into(),
                limit: None,
            })
        };
        let v = |denied: Option<Rejection>| Verified {
            record: record().into(),
            denied,
        };
        let (allow, refuse) = (LimiterFailure::Allow, LimiterFailure::Refuse);
        let failed = || Err(Failure::Error(LimiterError::new("redis down")));
        #[rustfmt::skip]
        let rows: Vec<(&str, Checked, Verified, LimiterFailure, String)> = vec![
            ("admitted", Ok(limit(true)), v(None), allow, "call key_1 Some(9)".into()),
            ("over the limit", Ok(limit(false)), v(None), allow, format!("{:?}", Rejection::RateLimited(limit(false), Limits::One))),
            ("a 403 gets the limit state", Ok(limit(true)), v(denied()), allow,
                format!("{:?}", Rejection::OtherTenant { required: Permission::EmailsSend.into(), limit: Some(limit(true)) })),
            ("a 403 stays a 403 over the limit", Ok(limit(false)), v(denied()), refuse,
                format!("{:?}", Rejection::OtherTenant { required: Permission::EmailsSend.into(), limit: Some(limit(false)) })),
            ("limiter failed, allow", failed(), v(None), allow, "call key_1 None".into()),
            ("limiter timed out, allow", Err(Failure::Timeout), v(None), allow, "call key_1 None".into()),
            ("limiter failed, refuse", failed(), v(None), refuse, "Unavailable".into()),
            ("limiter panicked, refuse", Err(Failure::Panic), v(None), refuse, "Unavailable".into()),
            ("limiter failed on a 403", failed(), v(denied()), refuse, format!("{:?}", denied().unwrap())),
        ];
        for (name, checked, verified, on_failure, expected) in rows {
            assert_eq!(
                outcome_of(settle(checked, verified, &Quotas::default(), on_failure)),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn environments() {
        assert!(
            Environments::ALL.accepts(Environment::Live)
                && Environments::ALL.accepts(Environment::Test)
        );
        let live = Environments::of(&[Environment::Live]);
        assert!(live.accepts(Environment::Live) && !live.accepts(Environment::Test));
        assert!(!Environments::of(&[]).accepts(Environment::Live));
    }
}
