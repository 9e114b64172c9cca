//! Counting failed unlocks.
//!
//! The count lives in a small plaintext file (`failed-unlocks`, a decimal number) in the data
//! directory: it must be readable before anything is unlocked. It is written atomically
//! (temporary file, fsync, rename, fsync of the directory), so a crash leaves the old or the
//! new count. The failure is counted before `open` returns it, so no caller learns that a
//! guess was wrong without the guess having been counted.
//!
//! A counter file that is not a number (it was damaged, or tampered with) counts as one
//! attempt short of the limit: the next wrong unlock wipes the device, a right one resets the
//! count. Reading it as zero would hand whoever can damage the file unlimited guesses, and
//! wiping outright would destroy data over a damaged file although the right passphrase may be
//! typed next.
//!
//! This protects against guessing through the app. Whoever copies the data directory can guess
//! offline, and only the keystore stops them (Argon2id's cost, or a key in secure hardware).

use std::path::Path;

use super::files::{self, read_small, sync_dir, write_atomic};
use super::{WipeReason, wipe_unopened};
use crate::error::CoreError;
use crate::keystore::KeyStore;

pub(super) const COUNTER_FILE: &str = "failed-unlocks";
/// The failed-unlock limit when the host sets none (DESIGN §4, issue 4).
pub const DEFAULT_MAX_FAILED_UNLOCKS: u32 = 10;

/// How [`crate::Device::open_with`] treats unlock failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    /// Wrong passphrases (or keystore keys) in a row after which the device wipes itself. At
    /// least 1: a 0 is taken as 1, because a device that never wipes is not a choice the
    /// design leaves open.
    pub max_failed_unlocks: u32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self { max_failed_unlocks: DEFAULT_MAX_FAILED_UNLOCKS }
    }
}

impl OpenOptions {
    fn limit(&self) -> u32 {
        self.max_failed_unlocks.max(1)
    }
}

/// Failed unlocks so far, as the module docs describe.
fn failures_so_far(dir: &Path, limit: u32) -> Result<u32, CoreError> {
    let bytes = match read_small(dir, COUNTER_FILE, 32) {
        Ok(None) => return Ok(0),
        Ok(Some(bytes)) => bytes,
        // Too large to be ours: damaged.
        Err(CoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::InvalidData => {
            return Ok(limit - 1);
        }
        Err(e) => return Err(e),
    };
    Ok(std::str::from_utf8(&bytes).ok().and_then(|text| text.trim().parse::<u32>().ok()).unwrap_or(limit - 1))
}

/// Counts one failed unlock and returns what `open` reports: the attempts left, or
/// [`CoreError::Wiped`] once the limit is reached (the device has then been wiped).
pub(crate) fn record_failed_unlock(dir: &Path, keystore: &dyn KeyStore, options: &OpenOptions) -> CoreError {
    let limit = options.limit();
    let failures = match failures_so_far(dir, limit) {
        Ok(n) => n.saturating_add(1),
        Err(e) => return e,
    };
    // Written before the wipe: should the wipe fail (an I/O error), the next wrong attempt
    // tries it again.
    if let Err(e) = write_atomic(dir, COUNTER_FILE, format!("{failures}\n").as_bytes()) {
        return e;
    }
    if failures >= limit {
        return match wipe_unopened(dir, WipeReason::TooManyFailedUnlocks, keystore) {
            Ok(()) => CoreError::Wiped,
            Err(e) => e,
        };
    }
    CoreError::WrongUnlock { attempts_left: limit - failures }
}

/// A successful unlock: the count starts again from zero. Writes only when there was a count.
pub(crate) fn reset_failed_unlocks(dir: &Path) -> Result<(), CoreError> {
    if files::remove(dir, COUNTER_FILE)? {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_counter_leaves_exactly_one_attempt() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(failures_so_far(dir.path(), 10).unwrap(), 0);
        std::fs::write(dir.path().join(COUNTER_FILE), b"not a number").unwrap();
        assert_eq!(failures_so_far(dir.path(), 10).unwrap(), 9);
        std::fs::write(dir.path().join(COUNTER_FILE), vec![b'7'; 1000]).unwrap();
        assert_eq!(failures_so_far(dir.path(), 10).unwrap(), 9);
        std::fs::write(dir.path().join(COUNTER_FILE), b"4\n").unwrap();
        assert_eq!(failures_so_far(dir.path(), 10).unwrap(), 4);
    }

    #[test]
    fn a_limit_of_zero_is_taken_as_one() {
        assert_eq!(OpenOptions { max_failed_unlocks: 0 }.limit(), 1);
        assert_eq!(OpenOptions::default().limit(), 10);
    }
}
