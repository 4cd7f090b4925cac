//! Keys: [`KeyHash`] (what stores keep), [`KeyRecord`] (a stored key) and key generation.

mod generate;
mod hash;
mod record;

pub use generate::{generate_key, GeneratedKey, KeyGenError, PlaintextKey, GENERATED_BODY_LEN};
pub(crate) use hash::DigestHasher;
pub use hash::{InvalidKeyHash, KeyHash};
pub use record::KeyRecord;
