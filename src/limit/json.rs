//! A key's rate limits as JSON for the PostgreSQL column `rate_limits` (jsonb), in the form
//! of a keys file's `rate_limits` member: an object from window to limit,
//! `{"second": 10, "day": 10000}` (windows as [`text`](super::text) writes them).

use serde_json::{Map, Value};

use super::text::{quotas_from_members, window_member};
use super::Quotas;

/// The limits of a `rate_limits` object. Strict: an unknown window, a limit that is not a
/// whole number from 1 to 2^32 − 1, a window given twice (`"second"` and `"1s"`), an empty
/// object and more than four limits are errors. The message never repeats a limit's value.
pub(crate) fn quotas_from_json(value: &Value) -> Result<Quotas, String> {
    let object = value
        .as_object()
        .ok_or("`rate_limits` must be an object from window to limit, e.g. {\"second\": 10, \"day\": 10000}")?;
    quotas_from_members(object.iter().map(|(w, n)| (w.as_str(), n.as_u64())))
        .map_err(|e| format!("`rate_limits`: {e}"))
}

/// The `rate_limits` object of these limits, in their order.
pub(crate) fn quotas_to_json(quotas: &Quotas) -> Value {
    let members: Map<String, Value> = quotas
        .iter()
        .map(|q| (window_member(q.window()), q.limit().get().into()))
        .collect();
    Value::Object(members)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_round_trip() {
        for v in [
            json!({"second": 10}),
            json!({"second": 10, "day": 10000}),
            json!({"minute": 1, "hour": 2, "30s": 3, "1500ms": 4}),
        ] {
            let q = quotas_from_json(&v).unwrap();
            assert_eq!(quotas_to_json(&q), v);
        }
        let q = quotas_from_json(&json!({"s": 10, "d": 5})).unwrap();
        assert_eq!(quotas_to_json(&q), json!({"second": 10, "day": 5}));
    }

    #[test]
    fn strict_objects() {
        for (v, says) in [
            (json!([10]), "must be an object"),
            (json!("10/s"), "must be an object"),
            (json!({}), "no rate limit"),
            (json!({"week": 1}), "unknown window \"week\""),
            (json!({"second": 0}), "limit per second"),
            (json!({"second": -1}), "limit per second"),
            (json!({"second": 1.5}), "limit per second"),
            (json!({"second": "10"}), "limit per second"),
            (json!({"second": 4_294_967_296_u64}), "limit per second"),
            (
                json!({"second": 1, "1s": 2}),
                "window second is given twice",
            ),
            (
                json!({"s": 1, "m": 1, "h": 1, "d": 1, "30s": 1}),
                "more than 4",
            ),
        ] {
            let e = quotas_from_json(&v).unwrap_err();
            assert!(
                e.starts_with("`rate_limits`") && e.contains(says),
                "{v}: {e}"
            );
        }
    }
}
