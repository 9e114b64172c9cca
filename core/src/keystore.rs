//! Wrapping the store's data key.
//!
//! Every plan byte on disk is sealed under one random 256-bit data key. That key is never
//! stored in the clear: a [`KeyStore`] wraps it, and only the wrapped form is written. On a
//! phone the host implements the trait with the platform keystore (an Android Keystore or iOS
//! Keychain key that never leaves secure hardware), so copying the app's files yields nothing.
//! Changing the passphrase, or moving to a new keystore key, re-wraps this one key; no plan
//! data is rewritten.
//!
//! Two implementations ship: [`PassphraseKeyStore`] (Argon2id, for the desktop and tests) and
//! [`MemoryKeyStore`] (a key held in memory, for tests and for hosts that manage the wrapping
//! key themselves).

mod memory;
mod passphrase;

pub use memory::MemoryKeyStore;
pub use passphrase::{KdfParams, PassphraseKeyStore};

use crate::crypto::SecretKey;

/// Why a wrapped key could not be produced or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyStoreError {
    /// The passphrase or the platform key does not open the wrapped data key.
    #[error("the passphrase or keystore key does not unlock this device")]
    WrongKey,
    /// The wrapped key's bytes are not in a format this keystore writes.
    #[error("the wrapped data key is malformed: {0}")]
    Malformed(&'static str),
    /// The platform keystore refused or failed (the host's message).
    #[error("the platform keystore failed: {0}")]
    Platform(String),
}

/// Wraps and unwraps the store's data key. Hosts implement this on the platform keystore.
pub trait KeyStore: Send + Sync {
    /// Encrypt `data_key` for storage. Called at init and when re-wrapping.
    fn wrap(&self, data_key: &SecretKey) -> Result<Vec<u8>, KeyStoreError>;
    /// Recover the data key from what [`KeyStore::wrap`] returned.
    fn unwrap(&self, wrapped: &[u8]) -> Result<SecretKey, KeyStoreError>;
}

/// Associated data for a wrapped data key: a wrapped key only opens as a data key.
const WRAP_AAD: &[u8] = b"eenplan/data-key/v1";
