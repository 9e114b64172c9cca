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

/// Why a wrapped key could not be produced or opened. What each means, and which count as a
/// failed unlock, is the host contract in [`KeyStore`]'s docs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyStoreError {
    /// The secret the user supplied (a passphrase, a PIN) does not open the wrapped data key.
    /// Counts towards the failed-unlock limit.
    #[error("the passphrase or keystore key does not unlock this device")]
    WrongKey,
    /// The platform key is gone for good (invalidated, expired, deleted, or not on this
    /// phone): the data key can never be unwrapped again. Not counted; `open` wipes the device.
    #[error("the platform key that protects this device's data is gone for good: {0}")]
    Invalidated(String),
    /// The wrapped key's bytes are not in a format this keystore writes.
    #[error("the wrapped data key is malformed: {0}")]
    Malformed(&'static str),
    /// The platform keystore refused or failed for now (the host's message). Not counted.
    #[error("the platform keystore failed: {0}")]
    Platform(String),
}

/// Wraps and unwraps the store's data key. Hosts implement this on the platform keystore.
///
/// Only [`KeyStore::wrap`] and [`KeyStore::unwrap`] are required. The other methods let a
/// platform keystore take part in wiping and in the offline lease; their defaults do nothing,
/// which is right for keystores whose key is not a separate platform object
/// ([`PassphraseKeyStore`], [`MemoryKeyStore`]).
///
/// # The errors, and which count as failed unlocks
///
/// The contract for hosts is written once, in the phone bindings' `KeyStore` trait
/// (`bindings/src/keystore.rs`), since phone apps implement it there; it holds for Rust hosts
/// too. In short, from `unwrap`:
///
/// | error | when | counts towards the self-wipe | the core then |
/// |---|---|---|---|
/// | [`KeyStoreError::WrongKey`] | the secret the user supplied is wrong | yes | [`crate::CoreError::WrongUnlock`], attempts left |
/// | [`KeyStoreError::Invalidated`] | the platform key is gone for good | no | wipes the device: [`crate::CoreError::Wiped`] |
/// | [`KeyStoreError::Platform`] | the platform failed for now (cancelled, busy) | no | returns it; try again |
///
/// # Binding the key to the offline lease
///
/// Every successful sync renews the device's offline lease ([`crate::Device::lease`]). The
/// core refuses plan content once the lease has run out; a keystore can add a hardware
/// deadline under that, so that even a patched app cannot unwrap the data key later.
/// [`KeyStore::bind_to_lease`] receives the data key and `valid_until_ms` (the lease's end
/// plus [`crate::lease::KEYSTORE_GRACE_MS`], so that a device whose lease ran out can still
/// unlock to sync, and only a device that stays offline far longer becomes unreadable for
/// good). It returns the data key wrapped by a key that stops working at that moment; the
/// core stores it in one transaction with the renewed lease, then calls
/// [`KeyStore::lease_binding_stored`].
///
/// - **Android**: generate a new AES-256-GCM key under a fresh alias with
///   `KeyGenParameterSpec.Builder(alias, PURPOSE_ENCRYPT or PURPOSE_DECRYPT)
///   .setKeyValidityEnd(Date(validUntilMs))` (add `.setIsStrongBoxBacked(true)` where
///   available), wrap the data key with it and return a blob that names the alias. Delete
///   the older aliases only in `lease_binding_stored`: until then the stored blob still names
///   the old one, and a crash in between must leave a key that opens it. After the validity
///   end, `Cipher.init` throws `KeyExpiredException`: the key is gone for good, report it as
///   `Invalidated`, never `WrongKey`.
/// - **iOS**: Keychain items have no validity end. Keep the wrapping key in the Keychain
///   with `kSecAttrAccessibleWhenUnlockedThisDeviceOnly` (optionally a Secure Enclave P-256
///   key that wraps via ECIES), put `valid_until_ms` inside the authenticated wrapped blob,
///   and refuse to unwrap (as `Invalidated`) once the device clock has passed it. This is weaker
///   than Android's hardware check (it trusts the app and the clock) but keeps both platforms
///   to one contract.
///
/// # Wiping
///
/// [`KeyStore::destroy`] deletes the platform key (the Android Keystore alias, the Keychain
/// item, the Secure Enclave key). The core calls it when it wipes the device, right after it
/// has destroyed the wrapped data key.
pub trait KeyStore: Send + Sync {
    /// Encrypt `data_key` for storage. Called at init and when re-wrapping.
    fn wrap(&self, data_key: &SecretKey) -> Result<Vec<u8>, KeyStoreError>;
    /// Recover the data key from what [`KeyStore::wrap`] returned.
    fn unwrap(&self, wrapped: &[u8]) -> Result<SecretKey, KeyStoreError>;

    /// Deletes the platform key for good (the device is being wiped).
    fn destroy(&self) -> Result<(), KeyStoreError> {
        Ok(())
    }

    /// Re-wraps `data_key` under a key that stops working at `valid_until_ms`; `None` when this
    /// keystore does not bind its key to the lease (see the trait docs).
    fn bind_to_lease(
        &self,
        data_key: &SecretKey,
        valid_until_ms: i64,
    ) -> Result<Option<Vec<u8>>, KeyStoreError> {
        let _ = (data_key, valid_until_ms);
        Ok(None)
    }

    /// The blob [`KeyStore::bind_to_lease`] returned is now durably the device's wrapped data
    /// key: older platform keys may be deleted. A failure to delete them is harmless (they
    /// stop working at their own, earlier validity end), so this returns nothing.
    fn lease_binding_stored(&self, wrapped: &[u8]) {
        let _ = wrapped;
    }
}

/// Associated data for a wrapped data key: a wrapped key only opens as a data key.
const WRAP_AAD: &[u8] = b"eenplan/data-key/v1";
