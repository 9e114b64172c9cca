//! The keyring's file handling: a private directory, one writer at a time, and replacement
//! that is atomic, so a crash or a full disk leaves either the old keyring or the new one and
//! never a half-written file that would lose the network's root key.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use super::KeyringError;

/// Held (exclusively) by every command that opens the keyring.
pub const LOCK_NAME: &str = "keyring.lock";
const TMP_SUFFIX: &str = ".tmp";

/// Creates `dir` (and its parents) if missing; a new directory is readable only by its owner.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Takes the directory's lock, waiting for another `eenplan-admin` to finish. Released when the
/// returned file is dropped (or the process ends, however it ends).
pub fn lock(dir: &Path) -> Result<File, KeyringError> {
    lock_file(&dir.join(LOCK_NAME))
}

/// Takes the lock held in the file at `path` (created if missing), waiting for another
/// `eenplan-admin` to let go of it.
pub fn lock_file(path: &Path) -> Result<File, KeyringError> {
    let path = path.to_path_buf();
    let file = private_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(KeyringError::io("cannot open", &path))?;
    file.lock().map_err(KeyringError::io("cannot lock", &path))?;
    Ok(file)
}

/// Reads a file that must not be larger than `limit` bytes.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, KeyringError> {
    let file = File::open(path).map_err(KeyringError::io("cannot open", path))?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(KeyringError::io("cannot read", path))?;
    if bytes.len() as u64 > limit {
        return Err(KeyringError::Damaged("the file is far larger than any keyring"));
    }
    Ok(bytes)
}

/// Replaces `path` with `bytes`: a private temporary file beside it, flushed to disk, renamed
/// over the old one, and the directory flushed so the rename itself survives a power cut.
/// Callers hold the lock, so the temporary name cannot collide with another writer.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), KeyringError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(TMP_SUFFIX);
    let tmp = Path::new(&tmp_name);
    let result = write_then_rename(tmp, path, bytes);
    if result.is_err() {
        // Best effort: a leftover temporary file holds only sealed bytes and is replaced by the
        // next write anyway.
        let _ = fs::remove_file(tmp);
    }
    result
}

fn write_then_rename(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<(), KeyringError> {
    // A temporary file left by a crash may have other permissions; start from nothing so the
    // mode below applies.
    match fs::remove_file(tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(KeyringError::io("cannot remove", tmp)(e));
        }
        _ => {}
    }
    let mut file = private_options()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(KeyringError::io("cannot create", tmp))?;
    file.write_all(bytes).map_err(KeyringError::io("cannot write", tmp))?;
    file.sync_all().map_err(KeyringError::io("cannot flush", tmp))?;
    drop(file);
    fs::rename(tmp, path).map_err(KeyringError::io("cannot replace", path))?;
    sync_parent(path)
}

#[cfg(unix)]
fn sync_parent(path: &Path) -> Result<(), KeyringError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(dir).and_then(|d| d.sync_all()).map_err(KeyringError::io("cannot flush", dir))
}

#[cfg(not(unix))]
fn sync_parent(_path: &Path) -> Result<(), KeyringError> {
    // Directories cannot be opened for flushing here; the rename is as durable as the OS makes it.
    Ok(())
}

fn private_options() -> OpenOptions {
    #[allow(unused_mut)] // mutated on unix only
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_file_and_clears_a_stale_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        fs::write(dir.path().join("k.tmp"), b"left by a crash").unwrap();
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert!(!dir.path().join("k.tmp").exists());
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        write_atomically(&path, b"old").unwrap();
        // Renaming a file over a non-empty directory fails, after the temporary file was written.
        let blocked = dir.path().join("d");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("x"), b"").unwrap();
        assert!(write_atomically(&blocked, b"new").is_err());
        assert!(!dir.path().join("d.tmp").exists());
        assert_eq!(fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn a_file_beyond_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        fs::write(&path, vec![0u8; 11]).unwrap();
        assert!(read_limited(&path, 10).is_err());
        assert_eq!(read_limited(&path, 11).unwrap().len(), 11);
    }
}
