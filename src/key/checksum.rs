//! Keys that prove themselves: the checksum in the last characters of generated keys.
//!
//! A generated key ends in [`CHECKSUM_LEN`] characters that are the CRC32 of everything
//! before them (prefix included), in base62, zero-padded: the scheme of GitHub's tokens. It
//! lets a secret scanner tell a real `ark_live_` key from a random string with few false
//! positives, and lets a server refuse a mistyped or made-up token without asking its key
//! store ([`ArkAuthLayer::require_checksum`](crate::ArkAuthLayer::require_checksum)).
//!
//! The checksum is not a secret and proves nothing about a key's validity: anyone can
//! compute it for any string. It depends on the token only, never on a stored key.
//!
//! CRC32 (the IEEE polynomial of zip, PNG and `crc32fast`) is a dozen lines and a table
//! built at compile time; a crate for it would not pay for itself over tokens of at most
//! 137 bytes.

use crate::token::{Token, PREFIX_LEN};

/// Characters of the checksum at the end of a generated key's body.
pub const CHECKSUM_LEN: usize = 6;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// CRC32 lookup table (reflected IEEE polynomial 0xEDB88320).
static CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
};

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c = CRC_TABLE[usize::from((c as u8) ^ b)] ^ (c >> 8);
    }
    !c
}

/// The checksum of `rest` (a token without its last [`CHECKSUM_LEN`] characters): CRC32 in
/// base62, most significant digit first, zero-padded (62⁶ > 2³²).
pub(crate) fn checksum_of(rest: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut n = crc32(rest);
    let mut out = [b'0'; CHECKSUM_LEN];
    for digit in out.iter_mut().rev() {
        *digit = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// Whether a grammar-valid token ends in the checksum of the rest of it.
pub(crate) fn token_has_valid_checksum(token: &Token<'_>) -> bool {
    let bytes = token.expose_secret().as_bytes();
    // The grammar guarantees a body of at least 16 characters, so the checksum never
    // reaches into the prefix.
    debug_assert!(bytes.len() >= PREFIX_LEN + CHECKSUM_LEN);
    let (rest, tail) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    checksum_of(rest) == tail
}

/// Whether `candidate` is a key of the API key grammar whose last [`CHECKSUM_LEN`]
/// characters are the checksum of the rest: what every key made by
/// [`generate_key`](crate::generate_key) is, and a random string almost never is (one chance
/// in 62⁶, about 5.7·10¹⁰).
///
/// Offline and pure: it reads nothing but `candidate`, so a secret scanner can run it over
/// every match of its pattern to drop false positives. `true` does not mean the key exists
/// or is valid; only the key store knows that. Keys imported from elsewhere (not minted by
/// this crate) usually have no checksum and get `false`.
///
/// ```
/// use ark_auth::key::has_valid_checksum;
/// use ark_auth::{generate_key, Environment};
///
/// let key = generate_key(Environment::Live).unwrap();
/// assert!(has_valid_checksum(key.plaintext.expose_secret()));
///
/// // One character changed: the checksum no longer matches.
/// let mut typo = key.plaintext.expose_secret().to_owned();
/// let flipped = if typo.ends_with('a') { "b" } else { "a" };
/// typo.replace_range(typo.len() - 1.., flipped);
/// assert!(!has_valid_checksum(&typo));
///
/// // Outside the grammar: never valid.
/// assert!(!has_valid_checksum("ghp_0123456789abcdefghijklmnopqrstuvwxyz"));
/// ```
pub fn has_valid_checksum(candidate: &str) -> bool {
    Token::parse(candidate).is_some_and(|t| token_has_valid_checksum(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_of_the_standard_check_value() {
        // The CRC-32/ISO-HDLC check value (the one of zip, PNG and crc32fast).
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    #[test]
    fn base62_zero_padded_most_significant_first() {
        // crc32("a") = 0xE8B7BE43 = 3904355907 = 4·62⁵ + 16·62⁴ + 14·62³ + 17·62² + 20·62 + 23
        assert_eq!(crc32(b"a"), 3_904_355_907);
        assert_eq!(&checksum_of(b"a"), b"4GEHKN");
        // crc32("") = 0: all padding.
        assert_eq!(&checksum_of(b""), b"000000");
    }

    #[test]
    fn the_largest_crc_fits_in_six_digits() {
        // 62⁶ = 56 800 235 584 > u32::MAX: six digits always suffice.
        assert!(62u64.pow(CHECKSUM_LEN as u32) > u64::from(u32::MAX));
    }

    #[test]
    fn checksummed_tokens_verify_and_every_single_change_is_caught() {
        let rest = "ark_live_0123456789abcdefghijklmnopqrstuv";
        let token = format!(
            "{rest}{}",
            std::str::from_utf8(&checksum_of(rest.as_bytes())).unwrap()
        );
        assert!(has_valid_checksum(&token), "{token}");
        // CRC32 detects every single-character substitution.
        for i in 0..token.len() {
            for &c in BASE62 {
                let mut b = token.clone().into_bytes();
                if b[i] == c || i < PREFIX_LEN {
                    continue;
                }
                b[i] = c;
                let changed = String::from_utf8(b).unwrap();
                assert!(!has_valid_checksum(&changed), "{changed}");
            }
        }
        // The prefix is covered too: a live key's body under the test prefix fails.
        let swapped = token.replacen("ark_live_", "ark_test_", 1);
        assert!(!has_valid_checksum(&swapped));
    }

    #[test]
    fn outside_the_grammar_is_never_valid() {
        for s in [
            "",
            "ark_live_",
            "ark_live_000000",
            "ark_prod_0123456789abcdef000000",
        ] {
            assert!(!has_valid_checksum(s), "{s}");
        }
    }
}
