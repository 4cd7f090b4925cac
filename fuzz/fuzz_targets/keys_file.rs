//! The keys-file loader on arbitrary text: never panics; what it accepts has no duplicate
//! hash or id and writes back (`record_to_json`) to a file that loads the same records; an
//! error never repeats a grammar-valid token found anywhere in the input. Accepted records
//! also round-trip through `PlainRecord`.
#![no_main]

use std::collections::HashSet;

use ark_auth::key::KeyRecord;
use ark_auth::keys_file::{parse, record_to_json, PlainRecord};
use libfuzzer_sys::fuzz_target;

/// Every `ark_live_`/`ark_test_` token (16+ alphanumerics) in `text`, by its body.
fn token_bodies(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for prefix in ["ark_live_", "ark_test_"] {
        for (i, _) in text.match_indices(prefix) {
            let rest = &text[i + prefix.len()..];
            let n = rest.bytes().take_while(u8::is_ascii_alphanumeric).count();
            if n >= 16 {
                out.push(&rest[..16]);
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text) {
        Ok(records) => {
            let hashes: HashSet<_> = records.iter().map(|r| *r.hash()).collect();
            let ids: HashSet<_> = records.iter().map(|r| r.id()).collect();
            assert_eq!(hashes.len(), records.len());
            assert_eq!(ids.len(), records.len());
            let keys: Vec<_> = records.iter().map(record_to_json).collect();
            let written = format!("{{\"keys\": {}}}", serde_json_text(&keys));
            let again = parse(&written).expect("written keys file loads");
            assert_eq!(again, records, "round trip through record_to_json");
            for r in &records {
                let plain: PlainRecord = serde_json::from_value(record_to_json(r)).unwrap();
                assert_eq!(
                    KeyRecord::try_from(plain).unwrap(),
                    *r,
                    "round trip through PlainRecord"
                );
            }
        }
        Err(e) => {
            let shown = format!("{e} {e:?}");
            for body in token_bodies(text) {
                assert!(!shown.contains(body), "error repeats a token: {shown}");
            }
        }
    }
});

fn serde_json_text(values: &[serde_json::Value]) -> String {
    serde_json::Value::Array(values.to_vec()).to_string()
}
