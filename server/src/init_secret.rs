//! The one-time init secret: a fresh server can be claimed (`POST /v1/admin/init`) only by
//! someone who can read its data directory.
//!
//! At a start without a network, the server makes sure `DATA/init-secret` holds a random
//! secret (made once, kept across restarts, mode 0600: readable by the server's own user
//! only) and says where it is. The init request must carry it
//! (`eenplan_protocol::api::InitRequest::init_secret`; `eenplan-admin init --init-secret` or
//! `EENPLAN_INIT_SECRET`). Once the network is initialised the file is deleted, and a server
//! that starts with a network never makes one.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use eenplan_protocol::api::{INIT_SECRET_FILE, hex};

/// How many random bytes a secret has (hex: twice as many characters).
const SECRET_BYTES: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum InitSecretError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0} does not hold an init secret (delete it to have a new one made)")]
    Damaged(PathBuf),
    #[error("no randomness for the init secret: {0}")]
    Random(String),
}

/// The secret and where it is kept.
pub struct InitSecret {
    path: PathBuf,
    secret: String,
}

impl std::fmt::Debug for InitSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret itself never reaches a log.
        f.debug_struct("InitSecret").field("path", &self.path).finish_non_exhaustive()
    }
}

impl InitSecret {
    /// The secret in `dir`, made now if there is none.
    pub fn ensure(dir: &Path) -> Result<InitSecret, InitSecretError> {
        let path = dir.join(INIT_SECRET_FILE);
        let io = |source| InitSecretError::Io { path: path.clone(), source };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let secret = text.trim().to_string();
                if secret.len() != 2 * SECRET_BYTES || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(InitSecretError::Damaged(path));
                }
                Ok(InitSecret { path, secret })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; SECRET_BYTES];
                getrandom::fill(&mut bytes).map_err(|e| InitSecretError::Random(e.to_string()))?;
                let secret = hex(&bytes);
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    options.mode(0o600);
                }
                let mut file = options.open(&path).map_err(io)?;
                file.write_all(format!("{secret}\n").as_bytes()).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(InitSecret { path, secret })
            }
            Err(e) => Err(io(e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Deletes the file: the network is initialised, and the secret will never count again.
    pub fn consume(self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not delete the used init secret");
        }
    }
}

/// Deletes a secret left from before the network was initialised (a crash between the init
/// and the deletion).
pub fn remove_stale(dir: &Path) {
    let path = dir.join(INIT_SECRET_FILE);
    if path.exists()
        && let Err(e) = std::fs::remove_file(&path)
    {
        tracing::warn!(path = %path.display(), error = %e, "could not delete a used init secret");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_secret_is_made_once_readable_by_its_owner_only_and_kept_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let first = InitSecret::ensure(dir.path()).unwrap();
        assert_eq!(first.secret().len(), 48);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(first.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = InitSecret::ensure(dir.path()).unwrap();
        assert_eq!(again.secret(), first.secret());
        again.consume();
        assert!(!dir.path().join(INIT_SECRET_FILE).exists());
        assert_ne!(InitSecret::ensure(dir.path()).unwrap().secret(), first.secret());
        std::fs::write(dir.path().join(INIT_SECRET_FILE), "short\n").unwrap();
        assert!(matches!(InitSecret::ensure(dir.path()), Err(InitSecretError::Damaged(_))));
    }
}
