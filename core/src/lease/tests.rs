//! The offline lease with an injected clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use super::*;
use crate::clock::ManualClock;
use crate::crypto::SecretKey;
use crate::keystore::{KdfParams, KeyStore, KeyStoreError, MemoryKeyStore, PassphraseKeyStore};
use crate::plan::NewGoal;

const HOUR: i64 = 60 * 60 * 1000;
const START: i64 = 1_800_000_000_000;

fn keystore() -> PassphraseKeyStore {
    PassphraseKeyStore::with_params("geheim", KdfParams::INSECURE_FAST_FOR_TESTS)
}

fn goal(title: &str) -> NewGoal {
    NewGoal { domain: "financiën".into(), title: title.into() }
}

fn expired(result: Result<impl std::fmt::Debug, CoreError>, at: i64) {
    match result {
        Err(CoreError::LeaseExpired { expired_at_ms }) => assert_eq!(expired_at_ms, at),
        other => panic!("expected LeaseExpired at {at}, got {other:?}"),
    }
}

#[test]
fn an_expired_lease_locks_plan_content_and_keeps_offline_edits_pending_until_renewed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let mut device = Device::init(dir.path(), &keystore()).unwrap().with_clock(Arc::new(clock.clone()));
    let plan = device.create_plan("Jansen").unwrap();
    device.renew_lease(72 * HOUR).unwrap();
    let end = START + 72 * HOUR;
    assert_eq!(
        device.lease().unwrap(),
        Some(LeaseStatus { renewed_at_ms: START, expires_at_ms: end, expired: false })
    );

    // Offline, before the expiry: an edit is made and kept.
    clock.advance_ms(70 * HOUR);
    device.edit(&plan, |p| p.add_goal(goal("Schulden in beeld"))).unwrap();
    let pending = device.pending_changes().unwrap();
    assert!(pending > 0);

    clock.advance_ms(3 * HOUR);
    assert!(device.lease().unwrap().unwrap().expired);
    expired(device.edit(&plan, |p| p.add_goal(goal("Na de afloop"))), end);
    expired(device.read(&plan), end);
    expired(device.open_plan(&plan), end);
    expired(device.conflicts(&plan), end);
    expired(device.list_plans(), end);
    expired(device.find_plan(&plan.to_string()[..6]), end);
    expired(device.create_plan("Nieuw"), end);
    expired(device.export_changes(&plan, "overdracht"), end);
    expired(device.import_changes(b"whatever", "overdracht"), end);
    expired(device.compact_plan(&plan), end);
    // What a sync needs keeps working, and the offline edit is still waiting to be pushed.
    assert_eq!(device.pending_changes().unwrap(), pending);
    device.status().unwrap();
    assert_eq!(device.plan_entries().unwrap().len(), 1);
    assert!(device.loaded_plan(plan).is_ok());

    // A sync renews the lease: the plan opens again, with the offline edit in it.
    device.renew_lease(72 * HOUR).unwrap();
    let view = device.read(&plan).unwrap();
    assert_eq!(view.goals.len(), 1);
    assert_eq!(view.goals[0].title, "Schulden in beeld");
    device.edit(&plan, |p| p.add_goal(goal("Na de synchronisatie"))).unwrap();
}

#[test]
fn setting_the_clock_back_does_not_unlock_an_expired_lease_not_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let plan = {
        let mut device = Device::init(dir.path(), &keystore()).unwrap().with_clock(Arc::new(clock.clone()));
        let plan = device.create_plan("Jansen").unwrap();
        device.renew_lease(72 * HOUR).unwrap();
        clock.advance_ms(73 * HOUR);
        expired(device.read(&plan), START + 72 * HOUR);
        // Back to the day of the last sync.
        clock.advance_ms(-73 * HOUR);
        expired(device.read(&plan), START + 72 * HOUR);
        assert!(device.lease().unwrap().unwrap().expired);
        plan
    };
    // A new process with the clock still set back: the high-water mark was persisted.
    let mut device = Device::open(dir.path(), &keystore()).unwrap().with_clock(Arc::new(clock.clone()));
    expired(device.read(&plan), START + 72 * HOUR);
    expired(device.list_plans(), START + 72 * HOUR);
}

#[test]
fn a_clock_pushed_far_ahead_once_cannot_hold_the_lease_open_after_a_renewal_on_the_servers_time() {
    // Finding 6 of the hardening: the phone's clock is pushed to 2100 and the device syncs.
    const YEAR_2100: i64 = 4_102_444_800_000;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let mut device = Device::init(dir.path(), &keystore()).unwrap().with_clock(Arc::new(clock.clone()));
    let plan = device.create_plan("Jansen").unwrap();
    // The phone restarts with its clock pushed to 2100 (so no time since boot links the two).
    clock.set_ms(YEAR_2100);
    clock.reboot();
    device.read(&plan).unwrap();
    // The sync's session states the server's time; the renewal is measured from it.
    device.anchor_clock(START);
    device.renew_lease(72 * HOUR).unwrap();
    assert_eq!(device.lease().unwrap().unwrap().expires_at_ms, START + 72 * HOUR);
    // The clock goes back to the real date and the phone stays offline for 73 hours.
    clock.set_ms(START);
    device.read(&plan).unwrap();
    clock.advance_ms(73 * HOUR);
    expired(device.read(&plan), START + 72 * HOUR);
}

#[test]
fn a_phone_clock_three_days_fast_stamps_the_servers_time_and_put_right_ends_the_lease_after_72_hours() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START + 72 * HOUR);
    let mut device = Device::init(dir.path(), &keystore()).unwrap().with_clock(Arc::new(clock.clone()));
    let plan = device.create_plan("Jansen").unwrap();
    device.anchor_clock(START);
    device.renew_lease(72 * HOUR).unwrap();
    device
        .edit(&plan, |p| {
            p.add_note(crate::plan::Compartment::Basis, crate::plan::NoteKind::Note, "huisbezoek")
        })
        .unwrap();
    let note = device.read(&plan).unwrap().notes.remove(0);
    assert_eq!(note.created_at_ms, START, "stamped with the server's time, not three days ahead");
    // The user puts the clock right; the lease still ends 72 hours after the renewal.
    clock.set_ms(START);
    clock.advance_ms(71 * HOUR);
    device.read(&plan).unwrap();
    clock.advance_ms(2 * HOUR);
    expired(device.read(&plan), START + 72 * HOUR);
}

#[test]
fn the_clock_high_water_mark_is_written_once_a_minute_not_on_every_read() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let mut device = Device::init(dir.path(), &keystore()).unwrap().with_clock(Arc::new(clock.clone()));
    let plan = device.create_plan("Jansen").unwrap();
    device.renew_lease(72 * HOUR).unwrap();
    let stored = |device: &Device| match device.lease_record() {
        LeaseRecord::Some(state) => state.high_water_ms,
        other => panic!("{other:?}"),
    };
    clock.advance_ms(30_000);
    device.read(&plan).unwrap();
    assert_eq!(stored(&device), START);
    clock.advance_ms(31_000);
    device.read(&plan).unwrap();
    assert_eq!(stored(&device), START + 61_000);
}

#[test]
fn a_device_that_never_synced_has_no_lease_and_never_locks() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let mut device = Device::init(dir.path(), &keystore()).unwrap().with_clock(Arc::new(clock.clone()));
    let plan = device.create_plan("Jansen").unwrap();
    clock.advance_ms(10 * 365 * 24 * HOUR);
    assert_eq!(device.lease().unwrap(), None);
    assert_eq!(device.read(&plan).unwrap().family, "Jansen");
}

#[test]
fn a_damaged_lease_record_locks_plans_until_a_renewal_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let plan = {
        let mut device = Device::init(dir.path(), &keystore()).unwrap();
        let plan = device.create_plan("Jansen").unwrap();
        device.store_mut().write(|w| w.put_state(STATE_LEASE, b"\xff\x00 not cbor")).unwrap();
        plan
    };
    let mut device = Device::open(dir.path(), &keystore()).unwrap();
    assert!(matches!(device.read(&plan), Err(CoreError::Store(StoreError::Corrupt(_)))));
    assert!(device.lease().is_err());
    device.renew_lease(72 * HOUR).unwrap();
    assert_eq!(device.read(&plan).unwrap().family, "Jansen");
}

/// A platform keystore stand-in that binds: every binding moves to a new wrapping key (as an
/// Android host makes a new Keystore key with `setKeyValidityEnd`).
#[derive(Debug)]
struct BindingKeyStore {
    current: Mutex<MemoryKeyStore>,
    bound_until: Mutex<Vec<i64>>,
    stored: Mutex<Vec<Vec<u8>>>,
}

impl KeyStore for BindingKeyStore {
    fn wrap(&self, data_key: &SecretKey) -> Result<Vec<u8>, KeyStoreError> {
        self.current.lock().unwrap().wrap(data_key)
    }
    fn unwrap(&self, wrapped: &[u8]) -> Result<SecretKey, KeyStoreError> {
        self.current.lock().unwrap().unwrap(wrapped)
    }
    fn bind_to_lease(
        &self,
        data_key: &SecretKey,
        valid_until_ms: i64,
    ) -> Result<Option<Vec<u8>>, KeyStoreError> {
        let next = MemoryKeyStore::generate();
        let wrapped = next.wrap(data_key)?;
        *self.current.lock().unwrap() = next;
        self.bound_until.lock().unwrap().push(valid_until_ms);
        Ok(Some(wrapped))
    }
    fn lease_binding_stored(&self, wrapped: &[u8]) {
        self.stored.lock().unwrap().push(wrapped.to_vec());
    }
}

#[test]
fn a_keystore_that_binds_to_the_lease_gets_the_data_key_rewrapped_until_the_lease_end_plus_grace() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let ks = Arc::new(BindingKeyStore {
        current: Mutex::new(MemoryKeyStore::generate()),
        bound_until: Mutex::new(Vec::new()),
        stored: Mutex::new(Vec::new()),
    });
    let plan = {
        let mut device = Device::init(dir.path(), ks.as_ref())
            .unwrap()
            .with_clock(Arc::new(clock.clone()))
            .with_keystore(ks.clone());
        let plan = device.create_plan("Jansen").unwrap();
        device.renew_lease(72 * HOUR).unwrap();
        plan
    };
    assert_eq!(*ks.bound_until.lock().unwrap(), vec![START + 72 * HOUR + KEYSTORE_GRACE_MS]);
    assert_eq!(ks.stored.lock().unwrap().len(), 1);
    // The store now holds the data key wrapped by the new key: it opens with it, and only it.
    let mut device = Device::open(dir.path(), ks.as_ref()).unwrap().with_clock(Arc::new(clock));
    assert_eq!(device.read(&plan).unwrap().family, "Jansen");
    drop(device);
    let stale = MemoryKeyStore::generate();
    assert!(matches!(Device::open(dir.path(), &stale), Err(CoreError::WrongUnlock { .. })));
}

#[test]
fn lease_times_print_as_utc() {
    assert_eq!(format_ms(0), "1970-01-01 00:00 UTC");
    assert_eq!(format_ms(i64::MAX), format!("{} ms after 1970", i64::MAX));
}
