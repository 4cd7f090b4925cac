//! Keys of the test app: the standard key set in one in-memory store, and tokens made
//! to measure (unknown, one character changed, of a given length).

use std::time::{Duration, SystemTime};

use ark_auth::{
    generate_key,
    key::{GeneratedKey, KeyRecord},
    token::Token,
    Environment, MemoryKeyStore, Permission, Permissions,
};

#[derive(Clone, Debug)]
pub struct TestKey {
    pub token: String,
    pub id: String,
}

impl TestKey {
    /// The secret part of the token (after `ark_live_` / `ark_test_`).
    pub fn body(&self) -> &str {
        &self.token[9..]
    }
}

pub fn make_key(env: Environment, f: impl FnOnce(KeyRecord) -> KeyRecord) -> (TestKey, KeyRecord) {
    let GeneratedKey { plaintext, record } = generate_key(env).unwrap();
    let record = f(record);
    (
        TestKey {
            token: plaintext.expose_secret().to_owned(),
            id: record.id().to_owned(),
        },
        record,
    )
}

/// A key from a fixed token (for exact grammar boundaries).
pub fn key_from_token(token: &str, f: impl FnOnce(KeyRecord) -> KeyRecord) -> (TestKey, KeyRecord) {
    let record = f(KeyRecord::from_token(&Token::parse(token).unwrap()));
    (
        TestKey {
            token: token.to_owned(),
            id: record.id().to_owned(),
        },
        record,
    )
}

/// The standard key set of a test, in one in-memory store.
pub struct Keys {
    pub store: MemoryKeyStore,
    /// Live, organisation-level, every permission, name and metadata.
    pub full: TestKey,
    /// Test environment, every permission.
    pub test: TestKey,
    /// Live, `emails:read` only, 5 per second.
    pub read_only: TestKey,
    /// Live, `emails:send` only.
    pub send_only: TestKey,
    /// No permission at all.
    pub none: TestKey,
    pub revoked: TestKey,
    pub expired: TestKey,
    /// Expires in an hour: still valid (rotation grace period).
    pub grace: TestKey,
    /// Scoped to tenant `tn_a`, every permission.
    pub tenant_a: TestKey,
    /// Every permission, 3 per second.
    pub limited: TestKey,
    /// `emails:read`, 1 per second.
    pub one: TestKey,
}

impl Keys {
    pub fn new() -> Keys {
        let now = SystemTime::now();
        let mut records = Vec::new();
        let mut k = |env, f: &dyn Fn(KeyRecord) -> KeyRecord| {
            let (key, record) = make_key(env, f);
            records.push(record);
            key
        };
        let full = k(Environment::Live, &|r| {
            r.with_name("full-access")
                .with_permissions(Permissions::ALL)
                .with_metadata("plan", "pro")
                .with_metadata("team", "mail")
        });
        let test = k(Environment::Test, &|r| {
            r.with_name("ci-test").with_permissions(Permissions::ALL)
        });
        let read_only = k(Environment::Live, &|r| {
            r.with_name("reader")
                .with_permissions(Permission::EmailsRead.into())
                .with_rate_limit(5)
        });
        let send_only = k(Environment::Live, &|r| {
            r.with_name("sender")
                .with_permissions(Permission::EmailsSend.into())
        });
        let none = k(Environment::Live, &|r| r.with_name("nothing"));
        let revoked = k(Environment::Live, &|r| {
            r.with_permissions(Permissions::ALL).with_revoked(true)
        });
        let expired = k(Environment::Live, &|r| {
            r.with_permissions(Permissions::ALL)
                .with_expiry(now - Duration::from_secs(1))
        });
        let grace = k(Environment::Live, &|r| {
            r.with_permissions(Permissions::ALL)
                .with_expiry(now + Duration::from_secs(3600))
        });
        let tenant_a = k(Environment::Live, &|r| {
            r.with_name("tenant-a")
                .with_permissions(Permissions::ALL)
                .with_tenant("tn_a")
        });
        let limited = k(Environment::Live, &|r| {
            r.with_permissions(Permissions::ALL).with_rate_limit(3)
        });
        let one = k(Environment::Live, &|r| {
            r.with_permissions(Permission::EmailsRead.into())
                .with_rate_limit(1)
        });
        Keys {
            store: MemoryKeyStore::from_records(records).unwrap(),
            full,
            test,
            read_only,
            send_only,
            none,
            revoked,
            expired,
            grace,
            tenant_a,
            limited,
            one,
        }
    }

    pub fn all(&self) -> Vec<&TestKey> {
        vec![
            &self.full,
            &self.test,
            &self.read_only,
            &self.send_only,
            &self.none,
            &self.revoked,
            &self.expired,
            &self.grace,
            &self.tenant_a,
            &self.limited,
            &self.one,
        ]
    }

    pub fn secrets(&self) -> Vec<String> {
        self.all().into_iter().map(|k| k.token.clone()).collect()
    }
}

/// A token of the grammar that no store holds.
pub fn unknown_token(env: Environment) -> String {
    generate_key(env)
        .unwrap()
        .plaintext
        .expose_secret()
        .to_owned()
}

/// The token with one body character changed (same key id prefix, wrong secret).
pub fn with_char_changed(token: &str, index: usize) -> String {
    let mut b = token.as_bytes().to_vec();
    b[index] = if b[index] == b'Z' { b'Y' } else { b'Z' };
    String::from_utf8(b).unwrap()
}

pub fn alnum(n: usize, seed: u8) -> String {
    const C: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..n)
        .map(|i| C[(i * 7 + usize::from(seed) * 13) % C.len()] as char)
        .collect()
}
