//! Which devices lack a key a device holds, remembered per device while nothing it depends
//! on changes.
//!
//! Every sync answer lists them so that the device seals its keys to the devices that lack
//! them ([`ReadRows::devices_missing_held_keys`]). Computing the list joins the device's held
//! keys with every participant, device and envelope of their plans: on PostgreSQL it was half
//! of the database's CPU per push, and most of an idle sync (`load_bench` profile,
//! 2026-12-05), while the answer is almost always the list of the sync before.
//!
//! The list depends only on rows whose every change bumps the key-share version of the
//! device's user in the same transaction (the schema's triggers,
//! [`ReadRows::key_share_version`]), and on the policy's access rows, which change only with
//! the policy's version. A list computed in a read transaction is therefore exact for every
//! later transaction that reads the same user and the same two versions: it is reused then,
//! and computed again otherwise. A user's version only grows and every change of what the
//! user's devices' lists depend on makes a new one, so a list from an older snapshot, stored
//! after a newer one, is never served for the newer state. Several server processes each
//! keep their own lists; the versions come from the shared database. A database that loses
//! committed transactions under running servers (a standby promoted while behind, a restore
//! from a backup) can reach a version again with other rows, so a list is served for at most
//! [`MAX_AGE`] after its read, and emptied with a remembered access ([`super::access`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use eenplan_protocol::DocumentId;

use super::access::MAX_AGE;
use super::tally::Tally;
use crate::storage::backend::ReadRows;
use crate::storage::{DeviceId, Result, UserId};

/// (document, epoch, device lacking that key), in the order of
/// [`ReadRows::devices_missing_held_keys`].
pub(crate) type MissingKeys = Vec<(DocumentId, u32, DeviceId)>;

/// The most devices remembered; a region has about 4,000. Only authenticated devices reach
/// the cache, and when it is full it starts again empty, so no peer can grow it without end.
const MAX_DEVICES: usize = 16_384;

/// What a remembered list was computed from: the device's user, that user's key-share
/// version, and the policy's version. The versions are per user, so the user is part of
/// the stamp: a device that moved to another user whose version happened to be the same
/// number must not find its old list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    user: UserId,
    key_shares: i64,
    policy: Option<u32>,
}

/// A remembered list: the stamp it was computed under, and when it was read.
type Kept = (Stamp, Instant, Arc<MissingKeys>);

/// The lists of one server process, by device.
#[derive(Debug, Default)]
pub(crate) struct KeyShareCache {
    lists: Mutex<HashMap<DeviceId, Kept>>,
    tally: Tally,
}

impl KeyShareCache {
    pub(crate) fn new() -> KeyShareCache {
        KeyShareCache::default()
    }

    /// How often a list was served, and how often one was computed.
    pub(crate) fn tally(&self) -> &Tally {
        &self.tally
    }

    /// The list of `device` read under `stamp`, unless it is older than [`MAX_AGE`] at `now`.
    fn get(&self, device: DeviceId, stamp: Stamp, now: Instant) -> Option<Arc<MissingKeys>> {
        let lists = self.lists.lock().unwrap_or_else(PoisonError::into_inner);
        lists
            .get(&device)
            .filter(|(kept, read_at, _)| *kept == stamp && now.saturating_duration_since(*read_at) < MAX_AGE)
            .map(|(_, _, list)| Arc::clone(list))
    }

    fn put(&self, device: DeviceId, stamp: Stamp, read_at: Instant, list: Arc<MissingKeys>) {
        let mut lists = self.lists.lock().unwrap_or_else(PoisonError::into_inner);
        if lists.len() >= MAX_DEVICES && !lists.contains_key(&device) {
            lists.clear();
        }
        lists.insert(device, (stamp, read_at, list));
    }

    /// Forgets every list: the database may no longer be the one they were read from.
    pub(crate) fn clear(&self) {
        self.lists.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// How many devices have a list remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lists.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// [`ReadRows::devices_missing_held_keys`] of `device`, as of the transaction of `rows`, in
/// which `version` is [`ReadRows::key_share_version`] of `device` and `policy` the stored
/// policy's version (both read by the caller in that transaction, with its other facts).
pub(super) fn devices_missing_held_keys(
    rows: &dyn ReadRows,
    cache: &KeyShareCache,
    device: DeviceId,
    version: Option<(UserId, i64)>,
    policy: Option<u32>,
) -> Result<Arc<MissingKeys>> {
    let Some((user, key_shares)) = version else {
        cache.tally.read();
        return Ok(Arc::new(rows.devices_missing_held_keys(device)?));
    };
    let (stamp, now) = (Stamp { user, key_shares, policy }, Instant::now());
    if let Some(list) = cache.get(device, stamp, now) {
        cache.tally.served();
        return Ok(list);
    }
    cache.tally.read();
    let list = Arc::new(rows.devices_missing_held_keys(device)?);
    cache.put(device, stamp, now, Arc::clone(&list));
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(key_shares: i64) -> Stamp {
        Stamp { user: UserId(1), key_shares, policy: Some(2) }
    }

    #[test]
    fn a_list_is_served_only_for_the_stamp_it_was_computed_under() {
        let (cache, now) = (KeyShareCache::new(), Instant::now());
        let device = DeviceId([1; 16]);
        let list = Arc::new(vec![(DocumentId { plan: [7; 16], compartment: 1 }, 1, DeviceId([2; 16]))]);
        cache.put(device, stamp(5), now, Arc::clone(&list));
        assert_eq!(cache.get(device, stamp(5), now), Some(list));
        assert_eq!(cache.get(device, stamp(6), now), None, "a newer key-share version");
        assert_eq!(cache.get(device, Stamp { policy: Some(3), ..stamp(5) }, now), None, "a newer policy");
        assert_eq!(cache.get(device, Stamp { user: UserId(2), ..stamp(5) }, now), None, "another user");
        assert_eq!(cache.get(DeviceId([3; 16]), stamp(5), now), None, "another device");
    }

    #[test]
    fn a_list_is_not_served_once_it_is_older_than_its_maximum_age() {
        let (cache, read_at) = (KeyShareCache::new(), Instant::now());
        let device = DeviceId([1; 16]);
        cache.put(device, stamp(5), read_at, Arc::new(Vec::new()));
        let just_before = read_at + MAX_AGE - std::time::Duration::from_millis(1);
        assert!(cache.get(device, stamp(5), just_before).is_some());
        assert!(cache.get(device, stamp(5), read_at + MAX_AGE).is_none());
    }

    #[test]
    fn a_full_cache_starts_again_and_never_holds_more_than_its_bound() {
        let (cache, now) = (KeyShareCache::new(), Instant::now());
        let id = |n: usize| {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&(n as u64).to_le_bytes());
            DeviceId(id)
        };
        for n in 0..MAX_DEVICES {
            cache.put(id(n), stamp(1), now, Arc::new(Vec::new()));
        }
        assert_eq!(cache.len(), MAX_DEVICES);
        cache.put(id(0), stamp(2), now, Arc::new(Vec::new()));
        assert_eq!(cache.len(), MAX_DEVICES, "a known device replaces its own list");
        cache.put(id(MAX_DEVICES), stamp(1), now, Arc::new(Vec::new()));
        assert_eq!(cache.len(), 1, "a new device in a full cache starts it again");
        assert!(cache.get(id(MAX_DEVICES), stamp(1), now).is_some());
    }
}
