//! Wiping a device: on a wipe order from the administrator, or after too many failed unlocks.
//!
//! Order of the steps, and why:
//!
//! 1. **Key material first** (crypto-shredding, `store/shred.rs`): the wrapped data key and the
//!    sealed identity are deleted from the store in one durable transaction that leaves this
//!    wipe's record in their place, and the WAL is checkpointed and truncated. From the moment
//!    that transaction commits, every ciphertext in the directory is noise, even if the process
//!    dies before the next step. Then [`KeyStore::destroy`] deletes the platform key.
//! 2. **The marker** (`WIPED`, plaintext JSON: reason, time, the signed wipe report, whether it
//!    was reported) is written atomically.
//! 3. **The files**: the database, its WAL and every other file the device wrote.
//!
//! The marker comes before the files (not after) so that no crash can leave a directory that
//! looks like no device was ever there: an app that saw an empty directory would offer a fresh
//! `init`, and the host would never learn that the device was wiped. A wipe interrupted after
//! step 1 is recognised by the record in the store, one interrupted after step 2 by the
//! marker; either way the next `open` completes it and returns [`CoreError::Wiped`], and keeps
//! doing so: the host learns of the wipe however often it asks.
//!
//! **Starting again.** [`Device::init`] on a wiped directory (the user chose to set the phone
//! up again, with a new enrolment code) completes the wipe, makes sure the platform key is
//! destroyed, sets the marker aside (its unsent report is kept for sending: `previous.rs`) and
//! creates a new device: new data key, new identity, new id. Nothing of the old device is
//! carried over; there is nothing left to carry.

mod files;
mod previous;
#[cfg(test)]
mod tests;
mod unlock;

use std::path::Path;

use eenplan_protocol::api::{hex, unhex};
use serde::{Deserialize, Serialize};

use crate::clock::{Clock, SystemClock};
use crate::device::Device;
use crate::error::CoreError;
use crate::keystore::KeyStore;
use crate::store::{DB_FILE, Store};

pub(crate) use files::{read_small, sync_dir, write_atomic};
pub use previous::{MAX_KEPT as MAX_KEPT_WIPE_REPORTS, PREVIOUS_WIPES_DIR};
pub use unlock::{DEFAULT_MAX_FAILED_UNLOCKS, OpenOptions};
pub(crate) use unlock::{record_failed_unlock, reset_failed_unlocks};

/// The file a wipe leaves in the data directory.
pub const MARKER_FILE: &str = "WIPED";
/// The wipe report the device signed in advance, sent when it wipes itself.
pub(crate) const SELF_WIPE_REPORT_FILE: &str = "self-wipe-report";
/// A wipe report is a signature over a short statement; anything larger is not one.
const MAX_REPORT_BYTES: usize = 16 * 1024;
/// The marker holds the report in hex, plus a few fields.
const MAX_MARKER_BYTES: u64 = 2 * MAX_REPORT_BYTES as u64 + 1024;

/// Every file a device writes in its data directory besides the marker. A wipe deletes these
/// (and their temporary siblings), and nothing else: a directory the user pointed at by
/// mistake keeps their own files.
const DEVICE_FILES: &[&str] = &[
    DB_FILE,
    "eenplan.db-wal",
    "eenplan.db-shm",
    "eenplan.db-journal",
    unlock::COUNTER_FILE,
    SELF_WIPE_REPORT_FILE,
];

/// Why the device was wiped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WipeReason {
    /// A wipe order signed by an administrator.
    Ordered,
    /// The passphrase or keystore key was wrong too many times in a row.
    TooManyFailedUnlocks,
    /// The platform key that wrapped the data key is gone for good (the keystore said
    /// `Invalidated`): the data could never be read again, and the wipe says so.
    KeyInvalidated,
}

/// What a wipe left behind (the `WIPED` file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WipeMarker {
    pub reason: WipeReason,
    pub wiped_at_ms: i64,
    /// The wipe report signed by the device key before the wipe, for the server.
    pub report: Option<Vec<u8>>,
    /// Whether the report has reached the server ([`Device::mark_wipe_reported`]).
    pub reported: bool,
    /// Whether the platform keystore deleted its key. When false (the wipe came from a
    /// [`Device`] without [`Device::with_keystore`], or the keystore failed), the next
    /// `open`/`init` of the directory with a keystore deletes it.
    pub keystore_destroyed: bool,
}

/// The marker's JSON form: bytes as hex, so the file stays readable with any tool.
#[derive(Serialize, Deserialize)]
struct MarkerJson {
    reason: WipeReason,
    wiped_at_ms: i64,
    report: Option<String>,
    reported: bool,
    #[serde(default)]
    keystore_destroyed: bool,
}

impl WipeMarker {
    fn to_json(&self) -> Vec<u8> {
        let json = MarkerJson {
            reason: self.reason,
            wiped_at_ms: self.wiped_at_ms,
            report: self.report.as_deref().map(hex),
            reported: self.reported,
            keystore_destroyed: self.keystore_destroyed,
        };
        // A struct of plain fields always serialises.
        serde_json::to_vec_pretty(&json).unwrap_or_default()
    }

    fn from_json(bytes: &[u8]) -> Option<WipeMarker> {
        let json: MarkerJson = serde_json::from_slice(bytes).ok()?;
        let report = match json.report {
            Some(text) => Some(unhex(&text)?),
            None => None,
        };
        Some(WipeMarker {
            reason: json.reason,
            wiped_at_ms: json.wiped_at_ms,
            report,
            reported: json.reported,
            keystore_destroyed: json.keystore_destroyed,
        })
    }
}

fn not_found(dir: &Path, what: &str) -> CoreError {
    CoreError::Io {
        path: dir.join(MARKER_FILE),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, what.to_owned()),
    }
}

impl Device {
    /// Wipes this device: destroys its key material, then its files (see the module docs).
    /// `report` is the wipe report the caller signed with the device key beforehand; it is
    /// kept in the marker for [`Device::wipe_marker`]. Afterwards every call on this `Device`,
    /// and every `open`/`init` of its directory, returns [`CoreError::Wiped`].
    pub fn wipe(&mut self, reason: WipeReason, report: Option<Vec<u8>>) -> Result<(), CoreError> {
        self.ensure_not_wiped()?;
        let dir = self.data_dir().to_path_buf();
        let mut marker = WipeMarker {
            reason,
            wiped_at_ms: self.now_ms(),
            report,
            reported: false,
            keystore_destroyed: false,
        };
        self.store_mut().shred(&marker.to_json())?;
        self.forget_everything();
        marker.keystore_destroyed = self.keystore().is_some_and(|k| k.destroy().is_ok());
        finish(&dir, &marker)
    }

    /// Whether `dir` holds a wiped device (without opening anything).
    pub fn is_wiped(dir: &Path) -> bool {
        dir.join(MARKER_FILE).exists()
    }

    /// What the wipe of the device in `dir` recorded; `None` when it was not wiped, or when
    /// its marker is unreadable (the directory still counts as wiped: see
    /// [`Device::is_wiped`]).
    pub fn wipe_marker(dir: &Path) -> Option<WipeMarker> {
        let bytes = read_small(dir, MARKER_FILE, MAX_MARKER_BYTES).ok()??;
        WipeMarker::from_json(&bytes)
    }

    /// Records that the wipe report reached the server.
    pub fn mark_wipe_reported(dir: &Path) -> Result<(), CoreError> {
        let bytes = read_small(dir, MARKER_FILE, MAX_MARKER_BYTES)?
            .ok_or_else(|| not_found(dir, "this directory holds no wiped device"))?;
        let mut marker = WipeMarker::from_json(&bytes).ok_or_else(|| CoreError::Io {
            path: dir.join(MARKER_FILE),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "the wipe marker is malformed"),
        })?;
        marker.reported = true;
        write_atomic(dir, MARKER_FILE, &marker.to_json())
    }

    /// Lets a new device be created in `dir` after a wipe: removes the marker and anything the
    /// wipe had not removed yet. Does nothing when `dir` holds no wiped device (a live
    /// device is never touched).
    pub fn clear_wiped(dir: &Path) -> Result<(), CoreError> {
        let interrupted =
            !Device::is_wiped(dir) && dir.join(DB_FILE).exists() && Store::wipe_record_at(dir)?.is_some();
        if !Device::is_wiped(dir) && !interrupted {
            return Ok(());
        }
        remove_device_files(dir)?;
        files::remove(dir, MARKER_FILE)?;
        files::remove(dir, &format!("{MARKER_FILE}.tmp"))?;
        sync_dir(dir)
    }

    /// Keeps a wipe report signed in advance (by the device key, over "this device wiped
    /// itself"), for the wipe that follows too many failed unlocks: at that moment the device
    /// key is locked away and cannot sign anything.
    pub fn store_self_wipe_report(&self, report: Vec<u8>) -> Result<(), CoreError> {
        self.ensure_not_wiped()?;
        if report.len() > MAX_REPORT_BYTES {
            return Err(CoreError::Io {
                path: self.data_dir().join(SELF_WIPE_REPORT_FILE),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("a wipe report may be at most {MAX_REPORT_BYTES} bytes"),
                ),
            });
        }
        write_atomic(self.data_dir(), SELF_WIPE_REPORT_FILE, &report)
    }
}

/// Steps 2 and 3: the marker, then the files.
fn finish(dir: &Path, marker: &WipeMarker) -> Result<(), CoreError> {
    write_atomic(dir, MARKER_FILE, &marker.to_json())?;
    remove_device_files(dir)?;
    sync_dir(dir)
}

/// Removes every device file; tries them all, and reports the first failure.
fn remove_device_files(dir: &Path) -> Result<(), CoreError> {
    let mut first_error = None;
    for name in DEVICE_FILES {
        for name in [(*name).to_owned(), format!("{name}.tmp")] {
            if let Err(e) = files::remove(dir, &name) {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// For `open` and `init`: `Err(Wiped)` when `dir` holds a wiped device, after completing
/// whatever an interrupted wipe left undone (files not yet deleted, the platform key not yet
/// destroyed).
pub(crate) fn refuse_if_wiped(dir: &Path, keystore: &dyn KeyStore) -> Result<(), CoreError> {
    if !Device::is_wiped(dir) {
        return Ok(());
    }
    remove_device_files(dir)?;
    sync_dir(dir)?;
    if let Some(mut marker) = Device::wipe_marker(dir)
        && !marker.keystore_destroyed
        && keystore.destroy().is_ok()
    {
        marker.keystore_destroyed = true;
        write_atomic(dir, MARKER_FILE, &marker.to_json())?;
    }
    Err(CoreError::Wiped)
}

/// For `init`: makes `dir` ready for a new device when it holds a wiped one (see the module
/// docs), and leaves it alone otherwise (a live device is refused by `Store::create`).
///
/// The platform key is destroyed here unless the wipe recorded that it was: the new device's
/// data key will be wrapped by the same host keystore, and a key that still opened the old
/// wrapped data key (flash may keep its blocks) must not live on. When it cannot be destroyed,
/// `init` is refused with the keystore's error rather than continue.
pub(crate) fn make_room_for_new_device(dir: &Path, keystore: &dyn KeyStore) -> Result<(), CoreError> {
    if !Device::is_wiped(dir) {
        // A wipe interrupted before its marker: complete it first (it writes the marker).
        let record = if Device::exists(dir) { Store::wipe_record_at(dir).ok().flatten() } else { None };
        let Some(record) = record else { return Ok(()) };
        match complete_interrupted(dir, &record, keystore) {
            CoreError::Wiped => {}
            other => return Err(other),
        }
    }
    remove_device_files(dir)?;
    sync_dir(dir)?;
    if !Device::wipe_marker(dir).is_some_and(|m| m.keystore_destroyed) {
        keystore.destroy().map_err(|e| {
            crate::keystore::KeyStoreError::Platform(format!(
                "the wiped device's platform key could not be deleted, so no new device is set up \
                 under it: {e}"
            ))
        })?;
    }
    previous::set_aside_marker(dir)
}

/// The store held a wipe record but there was no marker: the wipe stopped right after the key
/// was destroyed. Completes it from the record.
pub(crate) fn complete_interrupted(dir: &Path, record: &[u8], keystore: &dyn KeyStore) -> CoreError {
    // The record is the marker this build wrote; should it not parse, the wipe still has to be
    // completed and recorded, with what is known.
    let mut marker = WipeMarker::from_json(record).unwrap_or(WipeMarker {
        reason: WipeReason::Ordered,
        wiped_at_ms: SystemClock.now_ms(),
        report: None,
        reported: false,
        keystore_destroyed: false,
    });
    if !marker.keystore_destroyed {
        marker.keystore_destroyed = keystore.destroy().is_ok();
    }
    match finish(dir, &marker) {
        Ok(()) => CoreError::Wiped,
        Err(e) => e,
    }
}

/// Wipes the device in `dir` without opening it (the unlock limit was reached: there is no
/// key to open it with, and none is needed to destroy it).
pub(crate) fn wipe_unopened(
    dir: &Path,
    reason: WipeReason,
    keystore: &dyn KeyStore,
) -> Result<(), CoreError> {
    // A damaged or missing report must not stop the wipe: the device wipes without one.
    let report = read_small(dir, SELF_WIPE_REPORT_FILE, MAX_REPORT_BYTES as u64).ok().flatten();
    let mut marker = WipeMarker {
        reason,
        wiped_at_ms: SystemClock.now_ms(),
        report,
        reported: false,
        keystore_destroyed: false,
    };
    Store::shred_at(dir, &marker.to_json())?;
    marker.keystore_destroyed = keystore.destroy().is_ok();
    finish(dir, &marker)
}
