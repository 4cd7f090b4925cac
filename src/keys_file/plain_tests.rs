//! Unit tests of [`PlainRecord`]: the keys file's rules, by the same code, on plain fields.

use std::time::{Duration, SystemTime};

use super::{parse, record_to_json, PlainRecord};
use crate::key::KeyRecord;
use crate::permission::{Permission, Permissions};
use crate::token::{Environment, Token};

const K: &str = "ark_test_0123456789abcdefXYZ";

fn record() -> KeyRecord {
    KeyRecord::from_token(&Token::parse(K).unwrap())
        .with_name("ci")
        .with_permissions(Permission::EmailsSend | Permission::EmailsRead)
        .with_tenant("tn_1")
        .with_rate_limit(5)
        .with_metadata("team", "mail")
        .with_expiry(SystemTime::UNIX_EPOCH + Duration::from_millis(1_798_761_600_250))
}

#[test]
fn records_round_trip_through_plain_fields() {
    let r = record();
    let p = PlainRecord::from(&r);
    assert_eq!(p.id, r.id());
    assert_eq!(p.environment, "test");
    assert_eq!(p.permissions, ["emails:send", "emails:read"]);
    assert_eq!(p.expires_at.as_deref(), Some("2027-01-01T00:00:00.25Z"));
    assert_eq!(p.rate_limit, Some(5));
    assert_eq!(KeyRecord::try_from(p.clone()).unwrap(), r);
    let all = KeyRecord::new("k", *r.hash(), Environment::Live).with_permissions(Permissions::ALL);
    let pa = PlainRecord::from(&all);
    assert_eq!(pa.permissions, ["*"]);
    assert_eq!(
        (pa.tenant, pa.expires_at, pa.rate_limit),
        (None, None, None)
    );
    assert_eq!(KeyRecord::try_from(PlainRecord::from(&all)).unwrap(), all);
    // Its JSON is the keys-file entry, and reads back the same.
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json, record_to_json(&r));
    assert_eq!(serde_json::from_value::<PlainRecord>(json).unwrap(), p);
}

#[test]
fn a_keys_file_entry_with_a_plaintext_reads_as_its_hash() {
    let p: PlainRecord = serde_json::from_str(&format!(
        r#"{{"key": "{K}", "name": "ci", "permissions": ["*"]}}"#
    ))
    .unwrap();
    let r = KeyRecord::from_token(&Token::parse(K).unwrap());
    assert_eq!(p.hash, r.hash().to_hex());
    assert_eq!(p.id, r.id());
    assert!(!serde_json::to_string(&p).unwrap().contains(&K[9..]));
    assert!(
        !format!("{p:?}").contains(&p.hash),
        "Debug shows a hash prefix only"
    );
}

/// The error for a bad field is the keys file's error for the same entry, word for word.
#[test]
fn errors_are_the_keys_files_errors() {
    let good = PlainRecord::from(&record());
    type Spoil = fn(&mut PlainRecord);
    let cases: Vec<(Spoil, &str)> = vec![
        (|p| p.hash = "00".into(), "`hash` must be 64 hex digits"),
        (|p| p.environment = "prod".into(), "\"live\" or \"test\""),
        (
            |p| p.permissions = vec!["emails:sned".into()],
            "emails:sned",
        ),
        (|p| p.id = String::new(), "`id` must be 1 to 128"),
        (|p| p.id = "x".repeat(129), "`id` must be 1 to 128"),
        (
            |p| p.tenant = Some(String::new()),
            "`tenant` must not be empty",
        ),
        (|p| p.expires_at = Some("tomorrow".into()), "RFC 3339"),
        (|p| p.rate_limit = Some(0), "at least 1"),
    ];
    for (spoil, want) in cases {
        let mut p = good.clone();
        spoil(&mut p);
        let e = KeyRecord::try_from(p.clone()).unwrap_err();
        assert!(e.reason.contains(want), "{e}");
        assert_eq!(e.to_string(), format!("key record \"ci\": {}", e.reason));
        let file = format!("{{\"keys\": [{}]}}", serde_json::to_string(&p).unwrap());
        let fe = parse(&file).unwrap_err();
        assert_eq!((fe.entry, fe.reason.as_str()), (Some(0), e.reason.as_str()));
        let de = serde_json::from_str::<PlainRecord>(&serde_json::to_string(&p).unwrap());
        assert!(de.unwrap_err().to_string().starts_with(&e.to_string()));
    }
}

/// A key pasted into a field never comes back in an error: not from `try_from`, not from
/// deserializing (serde's own messages quote the value of a field of the wrong type).
#[test]
fn errors_never_repeat_a_key() {
    let mut p = PlainRecord::from(&record());
    p.permissions = vec![K.into()];
    p.name = format!("name {K}");
    let e = KeyRecord::try_from(p).unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(&K[9..17]), "{shown}");
    for json in [
        format!(r#"{{"key": "{K}", "permissions": [], "revoked": "{K}"}}"#),
        format!(r#"{{"key": "{K}", "permissions": [], "rate_limit": "{K}"}}"#),
        format!(r#"{{"key": "{K}", "permissions": [], "metadata": {{"a": ["{K}"]}}}}"#),
        format!(r#"{{"key": "{K}", "permissions": ["{}"]}}"#, &K[9..]),
        format!(r#"{{"key": "{K}", "permissions": [], "{K}": 1}}"#),
        format!(r#"{{"key": "{K}!", "permissions": []}}"#),
    ] {
        let e = serde_json::from_str::<PlainRecord>(&json)
            .unwrap_err()
            .to_string();
        assert!(!e.contains(&K[9..17]), "{e}");
        assert!(e.starts_with("key record: `") || e.contains('…'), "{e}");
    }
}
