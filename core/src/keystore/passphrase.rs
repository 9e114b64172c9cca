//! Argon2id passphrase wrapping.
//!
//! Wrapped form (all integers big-endian):
//! `b"EPW1" || m_cost u32 || t_cost u32 || p_cost u32 || salt[16] || sealed(data key)`.
//! The parameters travel with the blob so that they can be raised later without breaking
//! existing devices, and so that tests can use cheap ones.

use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

use super::{KeyStore, KeyStoreError, WRAP_AAD};
use crate::crypto::{self, SecretKey};

const MAGIC: &[u8; 4] = b"EPW1";
const SALT_LEN: usize = 16;
const HEADER_LEN: usize = 4 + 12 + SALT_LEN;
/// Refuse to spend more than 1 GiB of memory on a blob someone else may have written.
const MAX_M_COST_KIB: u32 = 1024 * 1024;
const MAX_T_COST: u32 = 64;
const MAX_P_COST: u32 = 16;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

impl KdfParams {
    /// OWASP's recommended Argon2id minimum (19 MiB, 2 passes): ≈ 22 ms here.
    pub const RECOMMENDED: KdfParams = KdfParams {
        m_cost_kib: Params::DEFAULT_M_COST,
        t_cost: Params::DEFAULT_T_COST,
        p_cost: Params::DEFAULT_P_COST,
    };
    /// For tests only: the cheapest parameters Argon2 accepts.
    pub const INSECURE_FAST_FOR_TESTS: KdfParams = KdfParams { m_cost_kib: 8, t_cost: 1, p_cost: 1 };
}

/// A keystore that derives the wrapping key from a passphrase with Argon2id.
pub struct PassphraseKeyStore {
    passphrase: Zeroizing<String>,
    params: KdfParams,
}

impl std::fmt::Debug for PassphraseKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassphraseKeyStore").field("params", &self.params).finish_non_exhaustive()
    }
}

impl PassphraseKeyStore {
    pub fn new(passphrase: impl Into<String>) -> Self {
        Self::with_params(passphrase, KdfParams::RECOMMENDED)
    }

    /// Parameters apply to new wraps; unwrapping uses the ones stored in the blob.
    pub fn with_params(passphrase: impl Into<String>, params: KdfParams) -> Self {
        Self { passphrase: Zeroizing::new(passphrase.into()), params }
    }

    /// The parameters a wrapped key was made with (read from its authenticated header), so a
    /// caller can wrap it again at a higher cost after a successful unwrap.
    pub fn params_of(wrapped: &[u8]) -> Result<KdfParams, KeyStoreError> {
        if wrapped.get(..4) != Some(&MAGIC[..]) {
            return Err(KeyStoreError::Malformed("not a passphrase-wrapped key"));
        }
        Ok(KdfParams {
            m_cost_kib: read_u32(wrapped, 4)?,
            t_cost: read_u32(wrapped, 8)?,
            p_cost: read_u32(wrapped, 12)?,
        })
    }

    fn wrapping_key(&self, params: KdfParams, salt: &[u8]) -> Result<SecretKey, KeyStoreError> {
        let argon_params = Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32))
            .map_err(|_| KeyStoreError::Malformed("Argon2 parameters out of range"))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
        let mut out = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(self.passphrase.as_bytes(), salt, out.as_mut())
            .map_err(|_| KeyStoreError::Malformed("Argon2 refused the parameters"))?;
        Ok(SecretKey::from_bytes(*out))
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Result<u32, KeyStoreError> {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or(KeyStoreError::Malformed("truncated header"))
}

impl KeyStore for PassphraseKeyStore {
    fn wrap(&self, data_key: &SecretKey) -> Result<Vec<u8>, KeyStoreError> {
        let salt: [u8; SALT_LEN] = crypto::random_array();
        let kek = self.wrapping_key(self.params, &salt)?;
        let mut out = Vec::with_capacity(HEADER_LEN + 32 + crypto::SEAL_OVERHEAD);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.params.m_cost_kib.to_be_bytes());
        out.extend_from_slice(&self.params.t_cost.to_be_bytes());
        out.extend_from_slice(&self.params.p_cost.to_be_bytes());
        out.extend_from_slice(&salt);
        // The header is authenticated too: nobody can lower the stored cost parameters.
        let sealed = kek.seal(&[WRAP_AAD, &out[..]].concat(), data_key.as_bytes());
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn unwrap(&self, wrapped: &[u8]) -> Result<SecretKey, KeyStoreError> {
        let params = Self::params_of(wrapped)?;
        if params.m_cost_kib > MAX_M_COST_KIB || params.t_cost > MAX_T_COST || params.p_cost > MAX_P_COST {
            return Err(KeyStoreError::Malformed("Argon2 parameters above the accepted maximum"));
        }
        let header = wrapped.get(..HEADER_LEN).ok_or(KeyStoreError::Malformed("truncated header"))?;
        let salt = &header[16..];
        let kek = self.wrapping_key(params, salt)?;
        let plain = kek
            .open(&[WRAP_AAD, header].concat(), &wrapped[HEADER_LEN..])
            .map_err(|_| KeyStoreError::WrongKey)?;
        let bytes: [u8; 32] =
            plain.as_slice().try_into().map_err(|_| KeyStoreError::Malformed("data key length"))?;
        Ok(SecretKey::from_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(p: &str) -> PassphraseKeyStore {
        PassphraseKeyStore::with_params(p, KdfParams::INSECURE_FAST_FOR_TESTS)
    }

    #[test]
    fn passphrase_unwraps_what_it_wrapped() {
        let key = SecretKey::generate();
        let wrapped = store("geheim").wrap(&key).unwrap();
        assert_eq!(store("geheim").unwrap(&wrapped).unwrap(), key);
    }

    #[test]
    fn a_wrapped_key_tells_its_parameters() {
        let wrapped = store("geheim").wrap(&SecretKey::generate()).unwrap();
        assert_eq!(PassphraseKeyStore::params_of(&wrapped), Ok(KdfParams::INSECURE_FAST_FOR_TESTS));
        assert!(PassphraseKeyStore::params_of(&wrapped[..10]).is_err());
        assert!(PassphraseKeyStore::params_of(b"nope").is_err());
    }

    #[test]
    fn wrong_passphrase_is_a_typed_error() {
        let wrapped = store("geheim").wrap(&SecretKey::generate()).unwrap();
        assert_eq!(store("fout").unwrap(&wrapped), Err(KeyStoreError::WrongKey));
    }

    #[test]
    fn tampered_or_truncated_blobs_are_refused_without_panicking() {
        let wrapped = store("geheim").wrap(&SecretKey::generate()).unwrap();
        for len in 0..wrapped.len() {
            assert!(store("geheim").unwrap(&wrapped[..len]).is_err());
        }
        let mut lowered = wrapped.clone();
        lowered[11] ^= 3; // a changed t_cost must not go unnoticed: the header is authenticated
        assert!(store("geheim").unwrap(&lowered).is_err());
        let mut huge = wrapped;
        huge[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(store("geheim").unwrap(&huge), Err(KeyStoreError::Malformed(_))));
    }
}
