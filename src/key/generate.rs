//! Minting keys: [`generate_key`], and the [`PlaintextKey`] shown once.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::checksum::{checksum_of, CHECKSUM_LEN};
use super::{KeyHash, KeyRecord};
use crate::token::{Environment, Token};

/// The plaintext of a freshly generated key. Shown once; `Debug`/`Display` show only the
/// prefix. Its buffer is zeroed when dropped ([`ZeroizeOnDrop`]).
///
/// ```
/// fn zeroed_on_drop<T: zeroize::ZeroizeOnDrop>() {}
/// zeroed_on_drop::<ark_auth::key::PlaintextKey>();
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PlaintextKey(String);

impl Drop for PlaintextKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for PlaintextKey {}

impl PlaintextKey {
    /// The whole token, to hand to the key's owner once.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PlaintextKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlaintextKey({}…)", &self.0[..crate::token::PREFIX_LEN])
    }
}

impl fmt::Display for PlaintextKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", &self.0[..crate::token::PREFIX_LEN])
    }
}

/// A new key: the plaintext, to show once, and the record to store.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The token to give to the key's owner. Not stored anywhere.
    pub plaintext: PlaintextKey,
    /// The record to store (holds only the hash).
    pub record: KeyRecord,
}

/// The operating system's random number generator failed; no key was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct KeyGenError;

/// Random characters at the start of a generated key's body: 32 base62 characters, about
/// 190 bits.
const RANDOM_LEN: usize = 32;

/// Length of the body of generated keys: 32 random base62 characters (about 190 bits)
/// followed by the [`CHECKSUM_LEN`] characters of their checksum
/// ([`has_valid_checksum`](super::has_valid_checksum)).
pub const GENERATED_BODY_LEN: usize = RANDOM_LEN + CHECKSUM_LEN;

/// Mints a new key from the operating system's CSPRNG: `ark_live_` or `ark_test_`, 32
/// random base62 characters, then a 6-character checksum of all before it, so that
/// [`has_valid_checksum`](super::has_valid_checksum) holds for every generated key.
///
/// ```
/// use ark_auth::{generate_key, Environment};
/// use ark_auth::key::KeyHash;
/// use ark_auth::token::Token;
///
/// let key = generate_key(Environment::Test).unwrap();
/// let token = Token::parse(key.plaintext.expose_secret()).unwrap();
/// assert_eq!(KeyHash::of(&token), *key.record.hash());
/// assert!(key.record.id().starts_with("key_"));
/// assert!(ark_auth::key::has_valid_checksum(key.plaintext.expose_secret()));
/// ```
pub fn generate_key(environment: Environment) -> Result<GeneratedKey, KeyGenError> {
    const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    // Zeroed on every exit: the token being built and the random bytes it is drawn from.
    let mut token = Zeroizing::new(String::with_capacity(
        crate::token::PREFIX_LEN + GENERATED_BODY_LEN,
    ));
    token.push_str(environment.prefix());
    let mut buf = Zeroizing::new([0u8; 64]);
    while token.len() < crate::token::PREFIX_LEN + RANDOM_LEN {
        getrandom::fill(&mut buf[..]).map_err(|_| KeyGenError)?;
        // Rejection sampling: 248 = 4 * 62, so `b % 62` is uniform for b < 248.
        for &b in buf.iter().filter(|&&b| b < 248) {
            if token.len() == crate::token::PREFIX_LEN + RANDOM_LEN {
                break;
            }
            token.push(BASE62[(b % 62) as usize] as char);
        }
    }
    for &c in &checksum_of(token.as_bytes()) {
        token.push(char::from(c));
    }
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).map_err(|_| KeyGenError)?;
    let parsed = Token::parse(&token).expect("generated token fits the grammar");
    let record = KeyRecord::new(
        format!("key_{}", hex::encode(id)),
        KeyHash::of(&parsed),
        environment,
    );
    Ok(GeneratedKey {
        // Moves the buffer (no copy) and leaves an empty string behind.
        plaintext: PlaintextKey(std::mem::take(&mut *token)),
        record,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_distinct_and_parse() {
        let a = generate_key(Environment::Live).unwrap();
        let b = generate_key(Environment::Live).unwrap();
        assert_ne!(a.plaintext, b.plaintext);
        assert_ne!(a.record.id(), b.record.id());
        assert!(a.plaintext.expose_secret().starts_with("ark_live_"));
        assert_eq!(a.plaintext.expose_secret().len(), 9 + GENERATED_BODY_LEN);
        let dbg = format!("{a:?}");
        assert!(!dbg.contains(&a.plaintext.expose_secret()[9..]), "{dbg}");
        assert!(!dbg.contains(&a.record.hash().to_hex()), "{dbg}");
    }

    #[test]
    fn generated_keys_carry_their_checksum() {
        for env in [Environment::Live, Environment::Test] {
            for _ in 0..200 {
                let key = generate_key(env).unwrap();
                let token = key.plaintext.expose_secret();
                assert!(super::super::has_valid_checksum(token));
                let (rest, tail) = token.split_at(token.len() - CHECKSUM_LEN);
                assert_eq!(tail.as_bytes(), checksum_of(rest.as_bytes()));
            }
        }
    }
}
