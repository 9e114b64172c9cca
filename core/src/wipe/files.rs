//! The small plaintext files of the data directory (wipe marker, failed-unlock counter,
//! pre-signed wipe report), written so that a crash at any instant leaves either the old or
//! the new content, never a torn file: write a temporary file, fsync it, rename it over the
//! old one, fsync the directory (the rename itself is only durable once the directory is).

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use crate::error::CoreError;

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CoreError + '_ {
    move |source| CoreError::Io { path: path.to_path_buf(), source }
}

/// Replaces `dir/name` with `bytes` atomically and durably.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), CoreError> {
    let path = dir.join(name);
    let temp = dir.join(format!("{name}.tmp"));
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&temp).map_err(io_error(&temp))?;
        file.write_all(bytes).map_err(io_error(&temp))?;
        file.sync_all().map_err(io_error(&temp))?;
    }
    std::fs::rename(&temp, &path).map_err(io_error(&path))?;
    sync_dir(dir)
}

/// Removes `dir/name` if it exists (without making the removal durable: see [`sync_dir`]).
pub(crate) fn remove(dir: &Path, name: &str) -> Result<bool, CoreError> {
    let path = dir.join(name);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error(&path)(e)),
    }
}

/// Makes renames and removals in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), CoreError> {
    // Only Unix lets a directory be opened and fsynced; elsewhere (Windows) the file system
    // journals metadata itself.
    #[cfg(unix)]
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// What `dir/name` holds: `None` when there is no such file, an error when it is larger than
/// `limit` bytes (these files are tiny; a huge one is not ours and is not read into memory).
pub(crate) fn read_small(dir: &Path, name: &str, limit: u64) -> Result<Option<Vec<u8>>, CoreError> {
    let path = dir.join(name);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(&path)(e)),
    };
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io_error(&path))?;
    if bytes.len() as u64 > limit {
        return Err(CoreError::Io {
            path,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "larger than such a file can be"),
        });
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "counter", b"1").unwrap();
        write_atomic(dir.path(), "counter", b"22").unwrap();
        assert_eq!(read_small(dir.path(), "counter", 16).unwrap().as_deref(), Some(&b"22"[..]));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("counter")]);
    }

    #[test]
    fn a_torn_temporary_file_from_a_crash_does_not_replace_the_real_one() {
        // A crash between writing the temporary file and the rename leaves the old content in
        // place; the next write simply truncates the stale temporary file.
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "counter", b"3").unwrap();
        std::fs::write(dir.path().join("counter.tmp"), b"9 torn").unwrap();
        assert_eq!(read_small(dir.path(), "counter", 16).unwrap().as_deref(), Some(&b"3"[..]));
        write_atomic(dir.path(), "counter", b"4").unwrap();
        assert_eq!(read_small(dir.path(), "counter", 16).unwrap().as_deref(), Some(&b"4"[..]));
    }

    #[test]
    fn an_oversized_file_is_refused_not_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big"), vec![b'x'; 100]).unwrap();
        assert!(read_small(dir.path(), "big", 16).is_err());
        assert_eq!(read_small(dir.path(), "missing", 16).unwrap(), None);
    }
}
