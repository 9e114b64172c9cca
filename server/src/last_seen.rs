//! When each device was last seen, written at most once a minute per device.
//!
//! Every request with a session token (a sync, a live hint's reconnect, a certificate fetch)
//! shows the device is alive, but writing that down each time would turn a morning's syncs
//! into as many writes. [`LastSeen`] remembers, in memory, when it last wrote each device's
//! time and lets a write through only when [`INTERVAL_MS`] has passed since; a session already
//! writes its own time (`last_session_at`) and counts as a write here. An administrator reads
//! "last seen" to the minute, which is what the listing promises.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::storage::{DeviceId, Storage};

/// The least time between two writes of one device's last-seen time.
pub const INTERVAL_MS: i64 = 60_000;

/// Entries kept before the old ones are dropped (an entry dropped early only allows one
/// more write); far above a region's 4,000 devices.
const MAX_ENTRIES: usize = 100_000;

/// Per device, when its last-seen time was last written (server time, ms).
#[derive(Debug, Default)]
pub struct LastSeen {
    written: Mutex<HashMap<DeviceId, i64>>,
}

impl LastSeen {
    /// Whether a request of `device` at `now` should be written, and if so, takes it as
    /// written. A clock that stepped back counts as a minute not yet passed.
    pub fn due(&self, device: DeviceId, now: i64) -> bool {
        let mut written = self.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if written.get(&device).is_some_and(|&at| now.saturating_sub(at) < INTERVAL_MS) {
            return false;
        }
        if written.len() >= MAX_ENTRIES {
            written.retain(|_, at| now.saturating_sub(*at) < INTERVAL_MS);
        }
        written.insert(device, now);
        true
    }

    /// A write that [`LastSeen::due`] let through failed: the next request may try again.
    pub fn forget(&self, device: DeviceId) {
        self.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&device);
    }

    /// Records that `device` was seen at `now` if a minute has passed since the last write.
    /// A failure is logged, never the request's: the device is served either way.
    pub fn seen(&self, storage: &dyn Storage, device: DeviceId, now: i64) {
        if !self.due(device, now) {
            return;
        }
        if let Err(e) = storage.record_last_seen(device, now) {
            self.forget(device);
            tracing::warn!(error = %e, "a device's last-seen time was not recorded");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_is_written_at_most_once_a_minute() {
        let seen = LastSeen::default();
        let a = DeviceId([1; 16]);
        let b = DeviceId([2; 16]);
        assert!(seen.due(a, 1_000));
        assert!(!seen.due(a, 1_000 + INTERVAL_MS - 1));
        assert!(seen.due(b, 1_001), "another device has its own minute");
        assert!(seen.due(a, 1_000 + INTERVAL_MS));
        assert!(!seen.due(a, 500), "a clock that stepped back writes nothing");
    }

    #[test]
    fn a_failed_write_is_tried_again_at_the_next_request() {
        let seen = LastSeen::default();
        let a = DeviceId([1; 16]);
        assert!(seen.due(a, 0));
        seen.forget(a);
        assert!(seen.due(a, 1));
    }
}
