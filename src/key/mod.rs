//! Keys: [`KeyHash`] (what stores keep), [`KeyRecord`] (a stored key) and key generation.

mod generate;
mod hash;
mod record;
mod rotate;

pub use generate::{generate_key, GeneratedKey, KeyGenError, PlaintextKey, GENERATED_BODY_LEN};
pub(crate) use hash::DigestHasher;
pub use hash::{InvalidKeyHash, KeyHash};
pub use record::KeyRecord;
pub use rotate::RotateError;
pub(crate) use rotate::{check_rotatable, grace_end, successor};
