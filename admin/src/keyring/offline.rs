//! The offline keyring: the network root and the escrow secret, kept apart from daily
//! administration.
//!
//! `eenplan-admin init --offline-keyring PATH` writes them to PATH (a file on a stick or an
//! offline machine, under a passphrase of its own) instead of into the daily keyring. Daily
//! commands do without them; the few that need them (signing a sharing policy with the root,
//! recovering keys that only escrow still holds) ask for `--offline-keyring PATH` and say so.
//! A stolen laptop with the daily keyring then cannot certify administrators, sign a policy,
//! or open escrowed keys.
//!
//! Same container as the daily keyring (see `sealed.rs`), magic `EPADMOF1`.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use eenplan_core::keystore::KeyStore;
use eenplan_protocol::envelope;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::sealed::{Kind, SealedFile};
use super::{KeyringError, file, secret32};
use crate::passphrase::Cost;

const KIND: Kind = Kind {
    magic: b"EPADMOF1",
    aad_label: b"eenplan/admin-offline-keyring/v1",
    name: "not an offline keyring",
};
const FORMAT_VERSION: u32 = 1;
const LOCK_SUFFIX: &str = ".lock";

/// The root signing key and the escrow secret.
pub struct OfflineKeys {
    pub root: SigningKey,
    pub escrow_secret: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for OfflineKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfflineKeys").finish_non_exhaustive()
    }
}

impl OfflineKeys {
    pub fn root_public(&self) -> [u8; 32] {
        self.root.verifying_key().to_bytes()
    }

    /// Whether the escrow secret opens what is sealed to `escrow_public`.
    pub fn escrow_matches(&self, escrow_public: &[u8]) -> bool {
        match escrow_public.len() {
            // The escrow secret is the X-Wing seed: it must give the public key the network
            // knows, or every key sealed to escrow would be lost to this keyring.
            envelope::XWING_PUBLIC_LEN => {
                envelope::public_key_of(&self.escrow_secret).ok().as_deref() == Some(escrow_public)
            }
            // A keyring made before escrow became hybrid: its X25519 key still opens the
            // envelopes sealed to it.
            envelope::X25519_PUBLIC_LEN => true,
            _ => false,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    #[serde(with = "eenplan_protocol::bytes")]
    root_secret: Vec<u8>,
    #[serde(with = "eenplan_protocol::bytes")]
    escrow_secret: Vec<u8>,
    #[serde(with = "eenplan_protocol::bytes")]
    escrow_public: Vec<u8>,
}

impl Drop for Stored {
    fn drop(&mut self) {
        self.root_secret.zeroize();
        self.escrow_secret.zeroize();
    }
}

/// An open offline keyring file, locked until dropped.
#[derive(Debug)]
pub struct OfflineKeyringFile {
    sealed: SealedFile,
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(LOCK_SUFFIX);
    PathBuf::from(name)
}

fn encode(keys: &OfflineKeys, escrow_public: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyringError> {
    let stored = Stored {
        version: FORMAT_VERSION,
        root_secret: keys.root.to_bytes().to_vec(),
        escrow_secret: keys.escrow_secret.to_vec(),
        escrow_public: escrow_public.to_vec(),
    };
    let mut plain = Zeroizing::new(Vec::new());
    ciborium::into_writer(&stored, &mut *plain).map_err(|_| KeyringError::Damaged("cannot encode"))?;
    Ok(plain)
}

impl OfflineKeyringFile {
    /// Writes `keys` to a new file at `path`; refuses to replace anything there.
    pub fn create(
        path: &Path,
        keys: &OfflineKeys,
        escrow_public: &[u8],
        keystore: &dyn KeyStore,
    ) -> Result<OfflineKeyringFile, KeyringError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            file::create_private_dir(parent).map_err(KeyringError::io("cannot create", parent))?;
        }
        let lock = file::lock_file(&lock_path(path))?;
        if path.exists() {
            return Err(KeyringError::Exists(path.to_path_buf()));
        }
        let plain = encode(keys, escrow_public)?;
        let sealed = SealedFile::create(path.to_path_buf(), KIND, lock, keystore, &plain)?;
        Ok(OfflineKeyringFile { sealed })
    }

    /// Opens the offline keyring at `path`: its keys and the escrow public key they open.
    pub fn open(
        path: &Path,
        keystore: &dyn KeyStore,
    ) -> Result<(OfflineKeyringFile, OfflineKeys, Vec<u8>), KeyringError> {
        if !path.is_file() {
            return Err(KeyringError::OfflineMissing(path.to_path_buf()));
        }
        let lock = file::lock_file(&lock_path(path))?;
        let (sealed, plain) = SealedFile::open(path, KIND, lock, keystore)?;
        let stored: Stored = ciborium::from_reader(plain.as_slice())
            .map_err(|_| KeyringError::Damaged("the contents do not decode"))?;
        if stored.version != FORMAT_VERSION {
            return Err(KeyringError::UnsupportedVersion(stored.version));
        }
        let keys = OfflineKeys {
            root: SigningKey::from_bytes(&*secret32(&stored.root_secret, "root key length")?),
            escrow_secret: secret32(&stored.escrow_secret, "escrow key length")?,
        };
        if !keys.escrow_matches(&stored.escrow_public) {
            return Err(KeyringError::Damaged("the escrow secret does not belong to the escrow public key"));
        }
        let escrow_public = stored.escrow_public.clone();
        Ok((OfflineKeyringFile { sealed }, keys, escrow_public))
    }

    /// Wraps the file's data key again when it was wrapped below `cost` (a keyring from
    /// before the current Argon2 cost); `Ok(true)` when it did.
    pub fn upgrade_kdf(
        &mut self,
        keys: &OfflineKeys,
        escrow_public: &[u8],
        keystore: &dyn KeyStore,
        cost: Cost,
    ) -> Result<bool, KeyringError> {
        if !cost.upgrades(self.sealed.kdf_params()?) {
            return Ok(false);
        }
        self.sealed.rewrap(keystore, &encode(keys, escrow_public)?)?;
        Ok(true)
    }
}
