//! [`KeyHash`], what stores keep instead of a key, and the hasher of maps keyed by digests.

use std::fmt;
use std::hash::Hasher;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::token::Token;

/// SHA-256 of a whole token (`ark_live_…`): what stores keep instead of the key.
///
/// Lookup scheme: the digest of the presented token selects the record (it is the map or
/// index key), and the layer then compares the stored digest with the computed one in
/// constant time. A wrong secret for an existing key and an unknown key are therefore the
/// same event, a digest that selects nothing, and cost the same work.
///
/// `Debug` shows the first 8 hex digits only; `Display` and [`KeyHash::to_hex`] the whole
/// digest (the form the keys file's `hash` field takes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// Hashes a parsed token.
    pub fn of(token: &Token<'_>) -> Self {
        KeyHash(Sha256::digest(token.expose_secret().as_bytes()).into())
    }

    /// Wraps a digest computed elsewhere (for example read from a database).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        KeyHash(bytes)
    }

    /// The raw digest.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 8 bytes, as a number: a uniform 64-bit hash of the key, for tables.
    pub(crate) fn prefix(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(b)
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, InvalidKeyHash> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut out).map_err(|_| InvalidKeyHash)?;
        Ok(KeyHash(out))
    }

    /// Constant-time equality: the OR of the XORs of the four 64-bit words, then one
    /// `subtle` comparison (no early exit, one optimisation barrier instead of 32).
    pub fn ct_eq(&self, other: &KeyHash) -> bool {
        let mut diff = 0u64;
        for (a, b) in self.0.chunks_exact(8).zip(other.0.chunks_exact(8)) {
            let a = u64::from_ne_bytes(a.try_into().expect("8-byte chunk"));
            let b = u64::from_ne_bytes(b.try_into().expect("8-byte chunk"));
            diff |= a ^ b;
        }
        bool::from(diff.ct_eq(&0))
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({}…)", hex::encode(&self.0[..4]))
    }
}

impl fmt::Display for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A key hash that is not 64 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("key hash must be 64 hex digits (SHA-256)")]
pub struct InvalidKeyHash;

/// Hasher for maps keyed by a 64-bit digest (of a [`KeyHash`] or an id): already uniform, so
/// it is the hash. Only keys the operator inserted are in the table, so an attacker choosing
/// lookup digests cannot build long probe chains.
#[derive(Default)]
pub(crate) struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_hex_round_trip() {
        let t = Token::parse("ark_test_0123456789abcdefXYZ").unwrap();
        let h = KeyHash::of(&t);
        assert_eq!(KeyHash::from_hex(&h.to_hex()).unwrap(), h);
        assert!(KeyHash::from_hex("abc").is_err());
        assert!(h.ct_eq(&h));
        for i in 0..32 {
            let mut other = *h.as_bytes();
            other[i] ^= 0x40;
            assert!(!h.ct_eq(&KeyHash::from_bytes(other)), "byte {i}");
        }
    }
}
