//! A keyring that waits for the root: `eenplan-admin admin request` makes a new
//! administrator's key here, in the new administrator's own data directory, and prints only
//! its public half; `admin accept` turns it into a daily keyring once the root has certified
//! the key. The secret never leaves this file.
//!
//! Same container as the daily keyring (see `sealed.rs`), magic `EPADMRQ1`, file
//! `admin-request.eenplan` beside where the keyring will be.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use eenplan_core::keystore::KeyStore;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::sealed::{Kind, SealedFile};
use super::{KeyringError, file, secret32};

const KIND: Kind = Kind {
    magic: b"EPADMRQ1",
    aad_label: b"eenplan/admin-request/v1",
    name: "not an eenplan-admin administrator request",
};
const FILE_NAME: &str = "admin-request.eenplan";
const FORMAT_VERSION: u32 = 1;

/// The administrator-to-be: a name, the server, and the key the root is asked to certify.
pub struct PendingAdmin {
    pub server: String,
    pub name: String,
    pub admin: SigningKey,
}

impl std::fmt::Debug for PendingAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAdmin")
            .field("server", &self.server)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    server: String,
    name: String,
    #[serde(with = "eenplan_protocol::bytes")]
    admin_secret: Vec<u8>,
}

impl Drop for Stored {
    fn drop(&mut self) {
        self.admin_secret.zeroize();
    }
}

fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

fn lock_path(dir: &Path) -> PathBuf {
    dir.join(format!("{FILE_NAME}.lock"))
}

pub fn exists(dir: &Path) -> bool {
    path_in(dir).exists()
}

/// An open request file, locked until dropped.
#[derive(Debug)]
pub struct RequestFile {
    _sealed: SealedFile,
    path: PathBuf,
}

impl RequestFile {
    /// Writes `pending` into `dir` (created, mode 0700, if needed); refuses to replace one.
    pub fn create(
        dir: &Path,
        pending: &PendingAdmin,
        keystore: &dyn KeyStore,
    ) -> Result<RequestFile, KeyringError> {
        file::create_private_dir(dir).map_err(KeyringError::io("cannot create", dir))?;
        let lock = file::lock_file(&lock_path(dir))?;
        let path = path_in(dir);
        if path.exists() {
            return Err(KeyringError::Exists(path));
        }
        let stored = Stored {
            version: FORMAT_VERSION,
            server: pending.server.clone(),
            name: pending.name.clone(),
            admin_secret: pending.admin.to_bytes().to_vec(),
        };
        let mut plain = Zeroizing::new(Vec::new());
        ciborium::into_writer(&stored, &mut *plain).map_err(|_| KeyringError::Damaged("cannot encode"))?;
        let sealed = SealedFile::create(path.clone(), KIND, lock, keystore, &plain)?;
        Ok(RequestFile { _sealed: sealed, path })
    }

    pub fn open(dir: &Path, keystore: &dyn KeyStore) -> Result<(RequestFile, PendingAdmin), KeyringError> {
        let path = path_in(dir);
        if !path.is_file() {
            return Err(KeyringError::Missing(dir.to_path_buf()));
        }
        let lock = file::lock_file(&lock_path(dir))?;
        let (sealed, plain) = SealedFile::open(&path, KIND, lock, keystore)?;
        let stored: Stored = ciborium::from_reader(plain.as_slice())
            .map_err(|_| KeyringError::Damaged("the contents do not decode"))?;
        if stored.version != FORMAT_VERSION {
            return Err(KeyringError::UnsupportedVersion(stored.version));
        }
        let admin = SigningKey::from_bytes(&*secret32(&stored.admin_secret, "admin key length")?);
        let pending = PendingAdmin { server: stored.server.clone(), name: stored.name.clone(), admin };
        Ok((RequestFile { _sealed: sealed, path }, pending))
    }

    /// Deletes the request once the keyring holding its key is written.
    pub fn remove(self) -> Result<(), KeyringError> {
        std::fs::remove_file(&self.path).map_err(KeyringError::io("cannot remove", &self.path))
    }
}
