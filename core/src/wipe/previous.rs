//! Wipe reports that outlive the wipe of their directory.
//!
//! [`Device::init`] starts a new device in a directory that held a wiped one. The wipe's
//! marker may still hold a report the server has not received (the phone wiped itself after
//! too many failed unlocks while offline, or obeyed a wipe order and lost the connection
//! before the report went out). `init` works offline and must not wait on the network, so it
//! neither sends the report nor drops it: it moves the marker, byte for byte, to
//! `previous-wipes/<n>/WIPED`. Each such slot is a wiped directory of its own, so
//! [`Device::send_wipe_report`] sends it as it would have sent it from the original place;
//! [`Device::send_previous_wipe_reports`] does that for every slot once the host is online
//! (after a sync or an enrolment) and removes the slots the server has.
//!
//! ```text
//! dir/
//!   eenplan.db …                  the new device
//!   previous-wipes/3/WIPED        the report of an earlier wipe, not yet sent
//! ```
//!
//! At most [`MAX_KEPT`] slots are kept (the oldest goes first): a phone re-initialised that
//! often without ever reaching its server has no server that wants the oldest report.

use std::path::{Path, PathBuf};

use super::files::sync_dir;
use super::{MARKER_FILE, WipeMarker};
use crate::device::Device;
use crate::error::CoreError;
use crate::sync::SyncError;

/// The directory, inside the data directory, that holds the slots.
pub const PREVIOUS_WIPES_DIR: &str = "previous-wipes";
/// Reports kept for sending at most.
pub const MAX_KEPT: usize = 8;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CoreError + '_ {
    move |source| CoreError::Io { path: path.to_path_buf(), source }
}

/// The slots, oldest first (by number; anything else in the directory is left alone).
fn slots(dir: &Path) -> Result<Vec<(u64, PathBuf)>, CoreError> {
    let kept = dir.join(PREVIOUS_WIPES_DIR);
    let entries = match std::fs::read_dir(&kept) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&kept)(e)),
    };
    let mut slots = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(&kept))?;
        if let Some(n) = entry.file_name().to_str().and_then(|name| name.parse::<u64>().ok()) {
            slots.push((n, entry.path()));
        }
    }
    slots.sort();
    Ok(slots)
}

fn remove_slot(slot: &Path) -> Result<(), CoreError> {
    match std::fs::remove_dir_all(slot) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(slot)(e)),
    }
}

/// For `init`: takes the wipe marker out of `dir`, keeping it in a slot when it holds a report
/// the server has not received, and removing it otherwise.
pub(super) fn set_aside_marker(dir: &Path) -> Result<(), CoreError> {
    let unsent = Device::wipe_marker(dir).is_some_and(|m| m.report.is_some() && !m.reported);
    if unsent {
        let kept = dir.join(PREVIOUS_WIPES_DIR);
        std::fs::create_dir_all(&kept).map_err(io(&kept))?;
        let mut existing = slots(dir)?;
        while existing.len() >= MAX_KEPT {
            let (_, oldest) = existing.remove(0);
            remove_slot(&oldest)?;
        }
        let next = existing.last().map_or(1, |(n, _)| n.saturating_add(1));
        let slot = kept.join(next.to_string());
        std::fs::create_dir(&slot).map_err(io(&slot))?;
        let target = slot.join(MARKER_FILE);
        std::fs::rename(dir.join(MARKER_FILE), &target).map_err(io(&target))?;
        sync_dir(&slot)?;
        sync_dir(&kept)?;
    } else {
        super::files::remove(dir, MARKER_FILE)?;
    }
    super::files::remove(dir, &format!("{MARKER_FILE}.tmp"))?;
    sync_dir(dir)
}

impl Device {
    /// The markers of earlier wipes of the device in `dir` whose reports wait to be sent.
    pub fn previous_wipes(dir: &Path) -> Result<Vec<WipeMarker>, CoreError> {
        Ok(slots(dir)?.into_iter().filter_map(|(_, slot)| Device::wipe_marker(&slot)).collect())
    }

    /// Sends the reports of earlier wipes kept in `dir` (see the module docs) and forgets each
    /// one the server has or refused for good (a 4xx answer); returns how many it sent. Stops
    /// at the first other failure (offline: the others would fail the same way) and reports
    /// it; the unsent ones stay for the next try.
    /// Hosts call this after a sync or an enrolment succeeded, off the device's lock.
    pub fn send_previous_wipe_reports(dir: &Path) -> Result<usize, CoreError> {
        let mut sent = 0;
        for (_, slot) in slots(dir)? {
            match Device::send_wipe_report(&slot) {
                Ok(true) => sent += 1,
                // The server takes the report only once the old device is revoked or its lease
                // has lapsed (a copy of the files must not mark a live device wiped): kept for
                // a later try.
                Ok(false)
                    if Device::wipe_marker(&slot).is_some_and(|m| m.report.is_some() && !m.reported) =>
                {
                    continue;
                }
                // Nothing in it could be sent; retrying would not change that.
                Ok(false) | Err(CoreError::Sync(SyncError::Protocol(_))) => {}
                // The server refused this report for good (not a failure to reach it).
                Err(CoreError::Sync(SyncError::Server { status: 400..=499, .. })) => {}
                Err(e) => return Err(e),
            }
            remove_slot(&slot)?;
        }
        sync_dir(&dir.join(PREVIOUS_WIPES_DIR)).or_else(|e| match &e {
            CoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(e),
        })?;
        Ok(sent)
    }
}
