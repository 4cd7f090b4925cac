//! Keys: [`KeyHash`] (what stores keep), [`KeyRecord`] (a stored key), key generation and
//! the checksum generated keys carry ([`has_valid_checksum`]).

mod checksum;
mod generate;
mod hash;
mod record;

pub(crate) use checksum::token_has_valid_checksum;
pub use checksum::{has_valid_checksum, CHECKSUM_LEN};
pub use generate::{generate_key, GeneratedKey, KeyGenError, PlaintextKey, GENERATED_BODY_LEN};
pub(crate) use hash::DigestHasher;
pub use hash::{InvalidKeyHash, KeyHash};
pub use record::KeyRecord;
