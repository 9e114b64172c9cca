//! The sealed container both keyring files use (integers big-endian):
//!
//! ```text
//! MAGIC (8) || u32 wrapped_len || wrapped data key (eenplan-core PassphraseKeyStore, Argon2id)
//!           || XChaCha20-Poly1305(data key, aad = AAD_LABEL || everything before, contents)
//! ```
//!
//! The random data key is wrapped with the passphrase by eenplan-core's keystore, so this crate
//! adds no key derivation of its own; the contents are sealed with eenplan-core's `SecretKey`.
//! The associated data covers the header and the wrapped key, so neither can be swapped for
//! another file's. Saving re-seals under the same data key (fresh nonce) without running
//! Argon2 again, so the passphrase is needed once per command; wrapping the data key again
//! (a higher Argon2 cost) changes the header and re-seals the same contents.

use std::fs::File;
use std::path::{Path, PathBuf};

use eenplan_core::crypto::SecretKey;
use eenplan_core::keystore::{KdfParams, KeyStore, KeyStoreError, PassphraseKeyStore};
use zeroize::Zeroizing;

use super::{KeyringError, file};

/// A wrapped data key is under 100 bytes; anything far larger is not ours.
const MAX_WRAPPED_LEN: usize = 1024;
/// Thousands of issued codes and revoked devices fit in a few megabytes; refuse to read
/// arbitrarily large files into memory.
const MAX_FILE_LEN: u64 = 16 * 1024 * 1024;

/// What tells one kind of sealed file from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub magic: &'static [u8; 8],
    pub aad_label: &'static [u8],
    /// Said when the magic does not match.
    pub name: &'static str,
}

/// An open sealed file: its place, the unwrapped data key, and the lock that keeps a second
/// `eenplan-admin` from writing it at the same time.
pub struct SealedFile {
    path: PathBuf,
    kind: Kind,
    wrapped: Vec<u8>,
    data_key: SecretKey,
    _lock: File,
}

impl std::fmt::Debug for SealedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedFile").field("path", &self.path).finish_non_exhaustive()
    }
}

fn header(magic: &[u8; 8], wrapped: &[u8]) -> Result<Vec<u8>, KeyringError> {
    let len = u32::try_from(wrapped.len()).map_err(|_| KeyringError::Damaged("wrapped key length"))?;
    let mut out = Vec::with_capacity(magic.len() + 4 + wrapped.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(wrapped);
    Ok(out)
}

pub fn keystore_error(e: KeyStoreError) -> KeyringError {
    match e {
        KeyStoreError::WrongKey => KeyringError::WrongPassphrase,
        KeyStoreError::Malformed(what) => KeyringError::Damaged(what),
        // The passphrase keystore has no platform; should another keystore fail, the keyring
        // cannot be opened either way.
        KeyStoreError::Platform(_) | KeyStoreError::Invalidated(_) => {
            KeyringError::Damaged("the keystore failed")
        }
    }
}

impl SealedFile {
    /// Writes a new file at `path` holding `plain`, under a fresh data key wrapped by
    /// `keystore`. The caller holds `lock` and has checked that nothing is at `path`.
    pub fn create(
        path: PathBuf,
        kind: Kind,
        lock: File,
        keystore: &dyn KeyStore,
        plain: &[u8],
    ) -> Result<SealedFile, KeyringError> {
        let data_key = SecretKey::generate();
        let wrapped = keystore.wrap(&data_key).map_err(keystore_error)?;
        let sealed = SealedFile { path, kind, wrapped, data_key, _lock: lock };
        sealed.save(plain)?;
        Ok(sealed)
    }

    /// Opens the file at `path`; the caller holds `lock`.
    pub fn open(
        path: &Path,
        kind: Kind,
        lock: File,
        keystore: &dyn KeyStore,
    ) -> Result<(SealedFile, Zeroizing<Vec<u8>>), KeyringError> {
        let bytes = file::read_limited(path, MAX_FILE_LEN)?;
        let rest = bytes.strip_prefix(kind.magic).ok_or(KeyringError::Damaged(kind.name))?;
        let len = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or(KeyringError::Damaged("truncated header"))?;
        let len = usize::try_from(len).map_err(|_| KeyringError::Damaged("wrapped key length"))?;
        if len > MAX_WRAPPED_LEN {
            return Err(KeyringError::Damaged("wrapped key length"));
        }
        let wrapped = rest.get(4..4 + len).ok_or(KeyringError::Damaged("truncated header"))?;
        let sealed = &rest[4 + len..];
        let data_key = keystore.unwrap(wrapped).map_err(keystore_error)?;
        let aad = [kind.aad_label, &header(kind.magic, wrapped)?].concat();
        let plain = Zeroizing::new(
            data_key
                .open(&aad, sealed)
                .map_err(|_| KeyringError::Damaged("the contents do not authenticate"))?,
        );
        let file =
            SealedFile { path: path.to_path_buf(), kind, wrapped: wrapped.to_vec(), data_key, _lock: lock };
        Ok((file, plain))
    }

    /// Replaces the file atomically with `plain`, sealed.
    pub fn save(&self, plain: &[u8]) -> Result<(), KeyringError> {
        let head = header(self.kind.magic, &self.wrapped)?;
        let sealed = self.data_key.seal(&[self.kind.aad_label, &head].concat(), plain);
        file::write_atomically(&self.path, &[head, sealed].concat())
    }

    /// The Argon2id parameters the data key is wrapped with.
    pub fn kdf_params(&self) -> Result<KdfParams, KeyringError> {
        PassphraseKeyStore::params_of(&self.wrapped).map_err(keystore_error)
    }

    /// Wraps the same data key again with `keystore` (its own, higher, cost) and saves
    /// `plain` under the new header: the passphrase stays, the file is replaced atomically.
    pub fn rewrap(&mut self, keystore: &dyn KeyStore, plain: &[u8]) -> Result<(), KeyringError> {
        let wrapped = keystore.wrap(&self.data_key).map_err(keystore_error)?;
        let previous = std::mem::replace(&mut self.wrapped, wrapped);
        let saved = self.save(plain);
        if saved.is_err() {
            // The file on disk is still the old one: keep describing it.
            self.wrapped = previous;
        }
        saved
    }
}
