//! The host's keystore, adapted to the core's [`eenplan_core::keystore::KeyStore`].
//!
//! A phone implements [`KeyStore`] on the platform keystore (an Android Keystore AES-GCM key,
//! an iOS Keychain / Secure Enclave key): `wrap` encrypts the 32-byte data key that seals
//! everything on the device, `unwrap` decrypts it. Only the wrapped bytes are stored, so
//! copying the app's files yields nothing without the device's secure hardware.

use std::sync::Arc;

use eenplan_core::crypto::SecretKey;
use eenplan_core::keystore::{
    KeyStore as CoreKeyStore, KeyStoreError as CoreKeyStoreError, PassphraseKeyStore,
};
use zeroize::Zeroizing;

use crate::error::KeyStoreError;

/// Wraps and unwraps the device's data key. Implemented by the host app.
///
/// This is the one place the keystore contract is written; the core's
/// `eenplan_core::keystore::KeyStore` and the README refer here.
///
/// # One keystore, one device
///
/// A keystore object belongs to one data directory. `wrap` makes the platform key when there
/// is none (at the first `init`, and at the `init` after a wipe, which deleted it).
///
/// # Which error, when
///
/// | throw | when | counts towards the self-wipe | the app then sees |
/// |---|---|---|---|
/// | `WrongKey` | the secret the *user supplied* is wrong: the passphrase, or a PIN the wrapping key is derived from | **yes**: after 10 in a row the device wipes itself | `ApiException.WrongKey` with `attemptsLeft` |
/// | `KeyInvalidated(reason)` | the platform key is **gone for good**: invalidated (Android `KeyPermanentlyInvalidatedException`: the lock screen was removed, biometrics changed), expired (`KeyExpiredException` after the lease binding below; iOS: `validUntilMs` passed), deleted, or not on this phone (data restored from a backup onto another device, a Keychain item that is `ThisDeviceOnly`) | no: the user did nothing wrong | `ApiException.Wiped`: nothing can open the data again, so the device wipes itself; `Device.init` sets it up anew |
/// | `Platform(reason)` | the platform failed **for now**: the user cancelled authentication or has not given it yet (`UserNotAuthenticatedException`), the keystore is busy or locked, a hardware error | no | `ApiException.KeyStore`; ask again later |
///
/// Any other exception a method throws arrives as `Platform`: never counted, never a wipe.
/// So: a key that *was replaced* is `KeyInvalidated`, not `WrongKey` (no person guessed
/// anything); `WrongKey` is only ever the answer to a secret someone typed. A wrapped blob
/// this keystore did not write (damaged, or from another app) is `Platform` as well.
///
/// # Binding the key to the offline lease
///
/// `bind_to_lease` wraps the data key under a new platform key that stops working at
/// `valid_until_ms` (the lease's end plus a 30-day grace, so that a device whose lease ran out
/// can still unlock to sync):
///
/// - **Android**: a new AES-256-GCM key under a fresh alias with `KeyGenParameterSpec.Builder(
///   alias, PURPOSE_ENCRYPT or PURPOSE_DECRYPT).setKeyValidityEnd(Date(validUntilMs))`
///   (`.setIsStrongBoxBacked(true)` where available); return a blob that names the alias.
///   Delete older aliases only in `lease_binding_stored`. After the validity end
///   `Cipher.init` throws `KeyExpiredException`: throw `KeyInvalidated`.
/// - **iOS**: keep the wrapping key in the Keychain with
///   `kSecAttrAccessibleWhenUnlockedThisDeviceOnly` (optionally a Secure Enclave key), put
///   `validUntilMs` inside the authenticated blob, and throw `KeyInvalidated` from `unwrap`
///   once the clock has passed it.
/// - A keystore that does not bind returns null.
///
/// # Wiping
///
/// `destroy_key` deletes the platform key for good (the alias, the Keychain item). The core
/// calls it when the device wipes itself, after it destroyed the wrapped data key, and again
/// at the next `open`/`init` if it failed then; `init` after a wipe refuses to set up a new
/// device while the old key cannot be deleted.
#[uniffi::export(with_foreign)]
pub trait KeyStore: Send + Sync {
    /// Encrypts the 32-byte `data_key` for storage (at init and when re-wrapping).
    fn wrap(&self, data_key: Vec<u8>) -> Result<Vec<u8>, KeyStoreError>;
    /// Returns the 32-byte data key from what [`KeyStore::wrap`] returned.
    fn unwrap(&self, wrapped: Vec<u8>) -> Result<Vec<u8>, KeyStoreError>;
    /// Deletes the platform key for good: the device is being wiped (it already destroyed
    /// the wrapped data key; this makes sure no copy of it can be opened either).
    /// (Not `destroy`: generated Kotlin objects already have a `destroy()` that frees them.)
    fn destroy_key(&self) -> Result<(), KeyStoreError>;
    /// Binds the data key to the offline lease (see the trait docs). Return null when this
    /// keystore does not bind.
    fn bind_to_lease(&self, data_key: Vec<u8>, valid_until_ms: i64)
    -> Result<Option<Vec<u8>>, KeyStoreError>;
    /// What [`KeyStore::bind_to_lease`] returned is now durably the wrapped data key: older
    /// platform keys may be deleted. A failure here is logged and otherwise harmless (the
    /// older keys stop working at their own validity end).
    fn lease_binding_stored(&self, wrapped: Vec<u8>) -> Result<(), KeyStoreError>;
}

/// A keystore that derives its key from a passphrase with Argon2id (the core's
/// `PassphraseKeyStore`): for the desktop, the JVM demo and tests. Phones use the platform
/// keystore instead.
#[uniffi::export]
pub fn passphrase_keystore(passphrase: String) -> Arc<dyn KeyStore> {
    Arc::new(Passphrase(PassphraseKeyStore::new(passphrase)))
}

#[derive(Debug)]
struct Passphrase(PassphraseKeyStore);

impl KeyStore for Passphrase {
    fn wrap(&self, data_key: Vec<u8>) -> Result<Vec<u8>, KeyStoreError> {
        Ok(self.0.wrap(&secret_key(data_key)?)?)
    }

    fn unwrap(&self, wrapped: Vec<u8>) -> Result<Vec<u8>, KeyStoreError> {
        Ok(self.0.unwrap(&wrapped)?.as_bytes().to_vec())
    }

    // A passphrase is no platform key: nothing to delete, no validity to bind.
    fn destroy_key(&self) -> Result<(), KeyStoreError> {
        Ok(())
    }

    fn bind_to_lease(&self, _: Vec<u8>, _: i64) -> Result<Option<Vec<u8>>, KeyStoreError> {
        Ok(None)
    }

    fn lease_binding_stored(&self, _: Vec<u8>) -> Result<(), KeyStoreError> {
        Ok(())
    }
}

/// The host's [`KeyStore`] seen as the core's.
pub(crate) struct HostKeyStore(pub(crate) Arc<dyn KeyStore>);

impl CoreKeyStore for HostKeyStore {
    fn wrap(&self, data_key: &SecretKey) -> Result<Vec<u8>, CoreKeyStoreError> {
        Ok(self.0.wrap(data_key.as_bytes().to_vec())?)
    }

    fn unwrap(&self, wrapped: &[u8]) -> Result<SecretKey, CoreKeyStoreError> {
        secret_key(self.0.unwrap(wrapped.to_vec())?)
    }

    fn destroy(&self) -> Result<(), CoreKeyStoreError> {
        Ok(self.0.destroy_key()?)
    }

    fn bind_to_lease(
        &self,
        data_key: &SecretKey,
        valid_until_ms: i64,
    ) -> Result<Option<Vec<u8>>, CoreKeyStoreError> {
        let key = Zeroizing::new(data_key.as_bytes().to_vec());
        Ok(self.0.bind_to_lease(key.to_vec(), valid_until_ms)?)
    }

    fn lease_binding_stored(&self, wrapped: &[u8]) {
        if let Err(e) = self.0.lease_binding_stored(wrapped.to_vec()) {
            crate::log::warn(&format!("the app's KeyStore.lease_binding_stored failed: {e}"));
        }
    }
}

/// The data key from the bytes a keystore handed over; the copy is wiped when dropped.
fn secret_key(bytes: Vec<u8>) -> Result<SecretKey, CoreKeyStoreError> {
    let bytes = Zeroizing::new(bytes);
    let array: [u8; 32] =
        bytes.as_slice().try_into().map_err(|_| CoreKeyStoreError::Malformed("data key length"))?;
    Ok(SecretKey::from_bytes(array))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_passphrase_keystore_unwraps_what_it_wrapped_through_the_ffi_trait() {
        let keystore = HostKeyStore(passphrase_keystore("geheim".into()));
        let key = SecretKey::generate();
        let wrapped = keystore.wrap(&key).unwrap();
        assert_eq!(keystore.unwrap(&wrapped).unwrap(), key);
        let other = HostKeyStore(passphrase_keystore("fout".into()));
        assert_eq!(other.unwrap(&wrapped), Err(CoreKeyStoreError::WrongKey));
    }

    #[test]
    fn a_host_that_returns_a_key_of_the_wrong_length_gets_a_typed_error() {
        struct Short;
        impl KeyStore for Short {
            fn wrap(&self, data_key: Vec<u8>) -> Result<Vec<u8>, KeyStoreError> {
                Ok(data_key)
            }
            fn unwrap(&self, _: Vec<u8>) -> Result<Vec<u8>, KeyStoreError> {
                Ok(vec![1, 2, 3])
            }
            fn destroy_key(&self) -> Result<(), KeyStoreError> {
                Ok(())
            }
            fn bind_to_lease(&self, _: Vec<u8>, _: i64) -> Result<Option<Vec<u8>>, KeyStoreError> {
                Ok(None)
            }
            fn lease_binding_stored(&self, _: Vec<u8>) -> Result<(), KeyStoreError> {
                Ok(())
            }
        }
        let keystore = HostKeyStore(Arc::new(Short));
        assert!(matches!(keystore.unwrap(b"x"), Err(CoreKeyStoreError::Malformed(_))));
    }
}
