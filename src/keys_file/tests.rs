//! Unit tests of the keys file: parsing rules and their errors.

use super::*;
use crate::permission::Permissions;
use crate::token::{Environment, Token};
use std::time::SystemTime;

const K: &str = "ark_test_0123456789abcdefXYZ";

fn one(entry: &str) -> Result<Vec<KeyRecord>, KeysFileError> {
    parse(&format!("{{\"keys\": [{entry}]}}"))
}

#[test]
fn full_entry() {
    let r = one(&format!(
        r#"{{"key": "{K}", "name": "ci", "permissions": ["emails:send"], "tenant": "tn_42",
            "expires_at": "2027-01-01T00:00:00Z", "revoked": false, "rate_limit": 10,
            "metadata": {{"team": "mail"}}}}"#
    ))
    .unwrap()
    .remove(0);
    assert_eq!(r.name(), "ci");
    assert_eq!(r.tenant(), Some("tn_42"));
    assert_eq!(r.rate_limit().unwrap().get(), 10);
    assert_eq!(r.environment(), Environment::Test);
    assert_eq!(r.metadata()["team"], "mail");
    assert_eq!(
        r.expires_at().unwrap(),
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_798_761_600)
    );
}

#[test]
fn errors_name_the_entry_and_never_the_key() {
    let cases = [
        format!(
            r#"{{"key": "{K}", "permissions": ["emails:send"]}}, {{"key": "{K}", "name": "dup", "permissions": []}}"#
        ),
        format!(r#"{{"key": "{K}x!", "name": "bad", "permissions": []}}"#),
        format!(r#"{{"key": "{K}", "name": "perm", "permissions": ["emails:nope"]}}"#),
        format!(r#"{{"key": "{K}", "name": "when", "permissions": [], "expires_at": "tomorrow"}}"#),
        format!(r#"{{"key": "{K}", "name": "typo", "permisions": []}}"#),
        format!(r#"{{"key": "{K}", "name": "noperm"}}"#),
        format!(r#"{{"key": "{K}", "name": "rl", "permissions": [], "rate_limit": 0}}"#),
        format!(r#"{{"key": "{K}", "hash": "00", "name": "both", "permissions": []}}"#),
        format!(
            r#"{{"hash": "{}", "name": "noenv", "id": "k1", "permissions": []}}"#,
            "0".repeat(64)
        ),
        format!(r#"{{"key": 5, "name": "{K}", "permissions": []}}"#),
        format!(r#"{{"key": "{K}", "name": "env", "environment": "live", "permissions": []}}"#),
        format!(r#"{{"key": "{K}", "name": "rev", "permissions": [], "revoked": "{K}"}}"#),
    ];
    for c in &cases {
        let e = one(c).unwrap_err();
        let msg = e.to_string();
        assert!(e.entry.is_some(), "{msg}");
        assert!(!msg.contains("0123456789abcdef"), "leaks the key: {msg}");
    }
    assert!(parse("{").unwrap_err().to_string().contains("line 1"));
    assert!(parse(r#"{"keys": 1}"#).is_err());
    assert!(parse(r#"{"keys": [], "extra": 1}"#).is_err());
    assert_eq!(parse(r#"{"keys": []}"#).unwrap().len(), 0);
}

/// Found by fuzzing: a key pasted into another field (a permission, an id) came back
/// in the error message.
#[test]
fn errors_never_repeat_a_key_from_any_field() {
    let body = &K[9..];
    for c in [
        format!(r#"{{"key": "{K}", "permissions": ["{body}"]}}"#),
        format!(
            r#"{{"key": "{K}", "permissions": ["emails:{}"]}}"#,
            &body[..8]
        ),
        format!(
            r#"{{"key": "{K}", "id": "{K}", "permissions": []}}, {{"key": "ark_test_zz{body}", "id": "{K}", "permissions": []}}"#
        ),
        format!(r#"{{"key": "ark_live_{body}", "permissions": ["{K}"]}}"#),
    ] {
        let e = one(&c).unwrap_err();
        let shown = format!("{e} {e:?}");
        for w in body.as_bytes().windows(8) {
            let w = std::str::from_utf8(w).unwrap();
            assert!(!shown.contains(w), "{w} in {shown}");
        }
        assert!(shown.contains('…'), "{shown}");
    }
    // Errors without a key in them are unchanged.
    let e = one(r#"{"key": 5, "name": "n", "permissions": []}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "keys file entry 0 (\"n\"): `key` must be a string"
    );
}

/// A member repeated inside an object would otherwise be last-wins (`revoked: true`
/// then `revoked: false` loading as not revoked): refused at every level, naming the
/// entry and the member.
#[test]
fn repeated_members_are_refused_at_every_level() {
    let e = parse(r#"{"keys": [], "keys": [{"key": "x"}]}"#).unwrap_err();
    assert_eq!(e.entry, None);
    assert_eq!(
        e.to_string(),
        "keys file: member \"keys\" appears twice in the top-level object"
    );
    let ok = format!(r#"{{"key": "{K}", "name": "first", "permissions": []}}"#);
    let cases = [
        (
            format!(
                r#"{{"key": "ark_test_{}", "name": "ci", "revoked": true, "permissions": [], "revoked": false}}"#,
                "b".repeat(20)
            ),
            "keys file entry 1 (\"ci\"): member \"revoked\" appears twice",
        ),
        (
            format!(
                r#"{{"key": "ark_test_{}", "name": "ci", "permissions": ["emails:read"], "permissions": ["*"]}}"#,
                "b".repeat(20)
            ),
            "keys file entry 1 (\"ci\"): member \"permissions\" appears twice",
        ),
        (
            format!(
                r#"{{"key": "ark_test_{}", "permissions": [], "metadata": {{"team": "a", "team": "b"}}}}"#,
                "b".repeat(20)
            ),
            "keys file entry 1: member \"team\" appears twice in `metadata`",
        ),
        (
            format!(
                r#"{{"key": "ark_test_{}", "name": "deep", "permissions": [], "metadata": {{"x": [{{"y": 1, "y": 2}}]}}}}"#,
                "b".repeat(20)
            ),
            "keys file entry 1 (\"deep\"): member \"y\" appears twice in `metadata.x[0]`",
        ),
    ];
    for (entry, want) in &cases {
        let e = parse(&format!(r#"{{"keys": [{ok}, {entry}]}}"#)).unwrap_err();
        assert_eq!(e.to_string(), *want);
        assert_eq!(e.entry, Some(1));
    }
    // A repeated `key` holding keys: named, never shown.
    let e = one(&format!(
        r#"{{"key": "{K}", "key": "{K}", "permissions": []}}"#
    ))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "keys file entry 0: member \"key\" appears twice"
    );
    let e = one(&format!(
        r#"{{"key": "{K}", "{K}": 1, "{K}": 2, "permissions": []}}"#
    ))
    .unwrap_err();
    assert!(!e.to_string().contains(&K[9..17]), "{e}");
    // The same member names in different entries are fine.
    assert_eq!(
        parse(&format!(
            r#"{{"keys": [{ok}, {{"key": "ark_test_{}", "name": "second", "permissions": []}}]}}"#,
            "c".repeat(20)
        ))
        .unwrap()
        .len(),
        2
    );
}

#[test]
fn hash_entries_round_trip() {
    let t = Token::parse(K).unwrap();
    let r = KeyRecord::from_token(&t)
        .with_name("x")
        .with_permissions(Permissions::ALL)
        .with_tenant("tn_1")
        .with_rate_limit(5)
        .with_metadata("a", "b");
    let text = serde_json::json!({ "keys": [record_to_json(&r)] }).to_string();
    assert!(!text.contains(K));
    assert_eq!(parse(&text).unwrap(), vec![r]);
}

#[test]
fn rate_limits_several_windows_strictly() {
    let r = &one(&format!(
        r#"{{"key": "{K}", "permissions": [], "rate_limits": {{"day": 10000, "second": 10, "30s": 3}}}}"#
    ))
    .unwrap()[0];
    assert_eq!(r.rate_limits(), Some("10/s,3/30s,10000/d".parse().unwrap()));
    assert_eq!(r.rate_limit().map(|n| n.get()), Some(10));
    // Written back as `rate_limits`, read back the same; one per-second limit stays
    // `rate_limit`.
    let json = record_to_json(r);
    assert_eq!(
        json["rate_limits"],
        serde_json::json!({"second": 10, "30s": 3, "day": 10000})
    );
    assert!(json.get("rate_limit").is_none());
    let text = serde_json::json!({"keys": [json]}).to_string();
    assert_eq!(&parse(&text).unwrap()[0], r);
    let one_per_second = &one(&format!(
        r#"{{"key": "{K}", "permissions": [], "rate_limits": {{"second": 4}}}}"#
    ))
    .unwrap()[0];
    assert_eq!(record_to_json(one_per_second)["rate_limit"], 4);
    assert!(record_to_json(one_per_second).get("rate_limits").is_none());
    let null = &one(&format!(
        r#"{{"key": "{K}", "permissions": [], "rate_limits": null}}"#
    ))
    .unwrap()[0];
    assert_eq!(null.rate_limits(), None);

    for (limits, says) in [
        (r#"{"week": 1}"#.to_owned(), "unknown window \"week\""),
        (r#"{"second": 0}"#.to_owned(), "limit per second"),
        (r#"{"minute": "10"}"#.to_owned(), "limit per minute"),
        (
            r#"{"second": 1, "1s": 2}"#.to_owned(),
            "window second is given twice",
        ),
        (r#"{"second": 1, "second": 2}"#.to_owned(), "rate_limits"),
        (r#"{}"#.to_owned(), "no rate limit"),
        (r#"[10]"#.to_owned(), "must be an object"),
        (
            r#"{"s": 1, "m": 1, "h": 1, "d": 1, "2d": 1}"#.to_owned(),
            "more than 4",
        ),
        (format!(r#"{{"{K}": 1}}"#), "unknown window"),
    ] {
        let entry = format!(
            r#"{{"key": "{K}", "name": "multi", "permissions": [], "rate_limits": {limits}}}"#
        );
        let e = one(&entry).unwrap_err();
        let msg = e.to_string();
        assert_eq!(
            (e.entry, e.name.as_deref()),
            (Some(0), Some("multi")),
            "{msg}"
        );
        assert!(msg.contains(says), "{limits}: {msg}");
        assert!(!msg.contains("0123456789"), "leaks the key: {msg}");
    }
    let both = format!(
        r#"{{"key": "{K}", "name": "both", "permissions": [], "rate_limit": 5, "rate_limits": {{"day": 9}}}}"#
    );
    let e = one(&both).unwrap_err();
    assert!(
        e.to_string()
            .contains("both `rate_limit` and `rate_limits`"),
        "{e}"
    );
    assert_eq!(e.entry, Some(0));
}

#[test]
fn plain_records_carry_several_rate_limits() {
    let several: crate::limit::Quotas = "10/s,100/min,10000/d".parse().unwrap();
    let record = one(&format!(r#"{{"key": "{K}", "permissions": []}}"#)).unwrap()[0]
        .clone()
        .with_rate_limits(several);
    let plain = PlainRecord::from(&record);
    assert_eq!(plain.rate_limit, None);
    let limits = plain.rate_limits.clone().unwrap();
    assert_eq!(
        limits,
        std::collections::BTreeMap::from([
            ("second".into(), 10),
            ("minute".into(), 100),
            ("day".into(), 10000)
        ])
    );
    assert_eq!(KeyRecord::try_from(plain.clone()).unwrap(), record);
    let json = serde_json::to_string(&plain).unwrap();
    assert_eq!(serde_json::from_str::<PlainRecord>(&json).unwrap(), plain);
    // One per second: `rate_limit`, as before.
    let per_second = PlainRecord::from(&record.clone().with_rate_limit(3));
    assert_eq!(
        (per_second.rate_limit, per_second.rate_limits),
        (Some(3), None)
    );
    // The keys file's rules, by the same code.
    let mut both = plain.clone();
    both.rate_limit = Some(4);
    let e = KeyRecord::try_from(both).unwrap_err().to_string();
    assert!(e.contains("both `rate_limit` and `rate_limits`"), "{e}");
    let mut week = plain;
    week.rate_limits = Some(std::collections::BTreeMap::from([("week".into(), 1)]));
    let e = KeyRecord::try_from(week).unwrap_err().to_string();
    assert!(e.contains("`rate_limits`: unknown window \"week\""), "{e}");
}
