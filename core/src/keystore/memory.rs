use super::{KeyStore, KeyStoreError, WRAP_AAD};
use crate::crypto::SecretKey;

/// A keystore whose wrapping key lives in memory. For tests, and for hosts that derive the
/// wrapping key themselves.
#[derive(Debug, Clone)]
pub struct MemoryKeyStore {
    wrapping_key: SecretKey,
}

impl MemoryKeyStore {
    pub fn new(wrapping_key: SecretKey) -> Self {
        Self { wrapping_key }
    }

    pub fn generate() -> Self {
        Self::new(SecretKey::generate())
    }
}

impl KeyStore for MemoryKeyStore {
    fn wrap(&self, data_key: &SecretKey) -> Result<Vec<u8>, KeyStoreError> {
        Ok(self.wrapping_key.seal(WRAP_AAD, data_key.as_bytes()))
    }

    fn unwrap(&self, wrapped: &[u8]) -> Result<SecretKey, KeyStoreError> {
        let plain = self.wrapping_key.open(WRAP_AAD, wrapped).map_err(|_| KeyStoreError::WrongKey)?;
        let bytes: [u8; 32] =
            plain.as_slice().try_into().map_err(|_| KeyStoreError::Malformed("data key length"))?;
        Ok(SecretKey::from_bytes(bytes))
    }
}
