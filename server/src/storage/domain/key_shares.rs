//! Which devices lack a key a device holds, and which keys it holds, remembered per device
//! while nothing they depend on changes.
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
//! [`MAX_AGE`](super::access::MAX_AGE) after its read, and emptied with a remembered access
//! ([`super::access`]).
//!
//! The keys a device holds, with whether each is of its document's current epoch
//! ([`ReadRows::held_documents`]), are remembered beside the list under the same stamp: a
//! complete answer weighs them for snapshots, and only their tails, which move with every
//! push, are read each time ([`ReadRows::document_tails`]). They depend on the device's
//! envelopes and commitments and on the documents' current epochs, which bump every
//! participant of the plan; see [`held_documents`] for the entries that can be stale, all
//! of plans the user takes no part in, which the answer leaves out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use eenplan_protocol::DocumentId;

use super::access::young;
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

/// The documents a device holds a key of, each with whether it holds the current epoch's
/// key ([`ReadRows::held_documents`]).
pub(crate) type HeldKeys = Vec<(DocumentId, bool)>;

/// A remembered value: the stamp it was read under, when it was read, and the value.
type Kept<T> = (Stamp, Instant, Arc<T>);

/// Remembered values of one kind, by device, and how often they were served and read.
#[derive(Debug)]
struct Slots<T> {
    kept: Mutex<HashMap<DeviceId, Kept<T>>>,
    tally: Tally,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots { kept: Mutex::new(HashMap::new()), tally: Tally::default() }
    }
}

impl<T> Slots<T> {
    /// The value of `device` as `read` gives it in a transaction in which `version` is the
    /// key-share version of the device's user and `policy` the stored policy's version:
    /// remembered under that stamp, read (and remembered) otherwise, and read without one.
    /// With it, whether it was served; the caller counts that once its read is kept
    /// ([`Tally::count`]): a read run again must not count twice.
    fn remembered(
        &self,
        device: DeviceId,
        version: Option<(UserId, i64)>,
        policy: Option<u32>,
        read: impl FnOnce() -> Result<T>,
    ) -> Result<(Arc<T>, bool)> {
        let Some((user, key_shares)) = version else {
            return Ok((Arc::new(read()?), false));
        };
        let (stamp, now) = (Stamp { user, key_shares, policy }, Instant::now());
        if let Some(value) = self.get(device, stamp, now) {
            return Ok((value, true));
        }
        let value = Arc::new(read()?);
        self.put(device, stamp, now, Arc::clone(&value));
        Ok((value, false))
    }

    /// The value of `device` read under `stamp`, unless it is older than
    /// [`MAX_AGE`](super::access::MAX_AGE) at `now`.
    fn get(&self, device: DeviceId, stamp: Stamp, now: Instant) -> Option<Arc<T>> {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.get(&device)
            .filter(|(kept, read_at, _)| *kept == stamp && young(*read_at, now))
            .map(|(_, _, value)| Arc::clone(value))
    }

    fn put(&self, device: DeviceId, stamp: Stamp, read_at: Instant, value: Arc<T>) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() >= MAX_DEVICES && !kept.contains_key(&device) {
            kept.clear();
        }
        kept.insert(device, (stamp, read_at, value));
    }

    fn clear(&self) {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// The lists of one server process, by device: the devices lacking a key it holds, and the
/// keys it holds.
#[derive(Debug, Default)]
pub(crate) struct KeyShareCache {
    lists: Slots<MissingKeys>,
    held: Slots<HeldKeys>,
}

impl KeyShareCache {
    pub(crate) fn new() -> KeyShareCache {
        KeyShareCache::default()
    }

    /// How often a missing-key list was served, and how often one was computed.
    pub(crate) fn tally(&self) -> &Tally {
        &self.lists.tally
    }

    /// How often a device's held keys were served, and how often they were read.
    pub(crate) fn held_tally(&self) -> &Tally {
        &self.held.tally
    }

    /// The held keys remembered of `device` whatever their stamp and age: a guess, for reads
    /// asked for ahead (`domain::answer`), never served as the device's keys. With them,
    /// whether they and the device's missing-key list are young enough at `now` to be served
    /// if their stamps still hold.
    pub(super) fn remembered_held(&self, device: DeviceId, now: Instant) -> Option<(Arc<HeldKeys>, bool)> {
        let held = {
            let kept = self.held.kept.lock().unwrap_or_else(PoisonError::into_inner);
            kept.get(&device).map(|(_, read_at, held)| (Arc::clone(held), young(*read_at, now)))?
        };
        let list_young = {
            let kept = self.lists.kept.lock().unwrap_or_else(PoisonError::into_inner);
            kept.get(&device).is_some_and(|(_, read_at, _)| young(*read_at, now))
        };
        Some((held.0, held.1 && list_young))
    }

    /// Forgets every list: the database may no longer be the one they were read from.
    pub(crate) fn clear(&self) {
        self.lists.clear();
        self.held.clear();
    }
}

/// [`ReadRows::devices_missing_held_keys`] of `device`, as of the transaction of `rows`, in
/// which `version` is [`ReadRows::key_share_version`] of `device` and `policy` the stored
/// policy's version (both read by the caller in that transaction, with its other facts);
/// with whether the remembered list was served.
pub(super) fn devices_missing_held_keys(
    rows: &dyn ReadRows,
    cache: &KeyShareCache,
    device: DeviceId,
    version: Option<(UserId, i64)>,
    policy: Option<u32>,
) -> Result<(Arc<MissingKeys>, bool)> {
    cache.lists.remembered(device, version, policy, || rows.devices_missing_held_keys(device))
}

/// [`ReadRows::held_documents`] of `device`, under the same stamp as
/// [`devices_missing_held_keys`] (`version` must be of the user whose readable documents the
/// caller keeps). Of the documents whose plans that user takes part in, it is exact: an
/// envelope or a commitment (a new epoch) bumps every participant of its plan, and joining
/// a plan bumps the user. Of a plan the user takes no part in, an envelope sealed to the
/// device or a key it made can be missing, extra or of an older epoch in a remembered list;
/// callers keep only the documents the user reads ([`super::answer`]), all of which are of
/// the user's plans. With whether the remembered keys were served.
pub(super) fn held_documents(
    rows: &dyn ReadRows,
    cache: &KeyShareCache,
    device: DeviceId,
    version: Option<(UserId, i64)>,
    policy: Option<u32>,
) -> Result<(Arc<HeldKeys>, bool)> {
    cache.held.remembered(device, version, policy, || rows.held_documents(device))
}

#[cfg(test)]
mod tests {
    use super::super::access::MAX_AGE;
    use super::*;

    fn stamp(key_shares: i64) -> Stamp {
        Stamp { user: UserId(1), key_shares, policy: Some(2) }
    }

    #[test]
    fn a_list_is_served_only_for_the_stamp_it_was_computed_under() {
        let (cache, now) = (KeyShareCache::new(), Instant::now());
        let device = DeviceId([1; 16]);
        let list = Arc::new(vec![(DocumentId { plan: [7; 16], compartment: 1 }, 1, DeviceId([2; 16]))]);
        cache.lists.put(device, stamp(5), now, Arc::clone(&list));
        assert_eq!(cache.lists.get(device, stamp(5), now), Some(list));
        assert_eq!(cache.lists.get(device, stamp(6), now), None, "a newer key-share version");
        assert_eq!(
            cache.lists.get(device, Stamp { policy: Some(3), ..stamp(5) }, now),
            None,
            "a newer policy"
        );
        assert_eq!(cache.lists.get(device, Stamp { user: UserId(2), ..stamp(5) }, now), None, "another user");
        assert_eq!(cache.lists.get(DeviceId([3; 16]), stamp(5), now), None, "another device");
    }

    #[test]
    fn a_list_is_not_served_once_it_is_older_than_its_maximum_age() {
        let (cache, read_at) = (KeyShareCache::new(), Instant::now());
        let device = DeviceId([1; 16]);
        cache.lists.put(device, stamp(5), read_at, Arc::new(Vec::new()));
        let just_before = read_at + MAX_AGE - std::time::Duration::from_millis(1);
        assert!(cache.lists.get(device, stamp(5), just_before).is_some());
        assert!(cache.lists.get(device, stamp(5), read_at + MAX_AGE).is_none());
    }

    #[test]
    fn held_keys_are_guessed_servable_only_while_they_and_the_missing_key_list_are_young() {
        let (cache, read_at) = (KeyShareCache::new(), Instant::now());
        let device = DeviceId([1; 16]);
        let young = |at| cache.remembered_held(device, at).map(|(_, young)| young);
        assert_eq!(young(read_at), None, "nothing remembered");
        cache.held.put(device, stamp(5), read_at, Arc::new(Vec::new()));
        assert_eq!(young(read_at), Some(false), "no missing-key list remembered");
        let later = read_at + std::time::Duration::from_secs(30);
        cache.lists.put(device, stamp(5), later, Arc::new(Vec::new()));
        assert_eq!(young(later), Some(true));
        assert_eq!(young(read_at + MAX_AGE), Some(false), "the held keys aged, the list not yet");
        cache.held.put(device, stamp(5), later, Arc::new(Vec::new()));
        assert_eq!(young(later + MAX_AGE), Some(false), "the list aged");
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
            cache.lists.put(id(n), stamp(1), now, Arc::new(Vec::new()));
        }
        assert_eq!(cache.lists.len(), MAX_DEVICES);
        cache.lists.put(id(0), stamp(2), now, Arc::new(Vec::new()));
        assert_eq!(cache.lists.len(), MAX_DEVICES, "a known device replaces its own list");
        cache.lists.put(id(MAX_DEVICES), stamp(1), now, Arc::new(Vec::new()));
        assert_eq!(cache.lists.len(), 1, "a new device in a full cache starts it again");
        assert!(cache.lists.get(id(MAX_DEVICES), stamp(1), now).is_some());
    }
}
