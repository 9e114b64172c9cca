//! Wipes interrupted between their steps: whatever the crash left, the next open reports the
//! device wiped (a typed error, never a panic) and completes the wipe.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::keystore::{KdfParams, PassphraseKeyStore};

fn keystore() -> PassphraseKeyStore {
    PassphraseKeyStore::with_params("geheim", KdfParams::INSECURE_FAST_FOR_TESTS)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn marker(reason: WipeReason) -> WipeMarker {
    WipeMarker {
        reason,
        wiped_at_ms: 42,
        report: Some(vec![1, 2, 3]),
        reported: false,
        keystore_destroyed: false,
    }
}

/// A device with a plan, shredded (step 1) and then abandoned as a crash would.
fn shredded_device(dir: &Path) -> Vec<u8> {
    let mut device = Device::init(dir, &keystore()).unwrap();
    device.create_plan("Familie Onderbroken").unwrap();
    let wrapped = device.store().wrapped_key_for_tests();
    device.store_mut().shred(&marker(WipeReason::Ordered).to_json()).unwrap();
    wrapped
}

#[test]
fn shredding_leaves_no_copy_of_the_wrapped_key_in_the_database_or_its_wal() {
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::init(dir.path(), &keystore()).unwrap();
    device.create_plan("Familie Onderbroken").unwrap();
    // A passphrase change writes a second wrapped key: neither may survive.
    let first = device.store().wrapped_key_for_tests();
    device.change_keystore(&keystore(), &keystore()).unwrap();
    let second = device.store().wrapped_key_for_tests();
    device.store_mut().shred(&marker(WipeReason::Ordered).to_json()).unwrap();
    // The files are still there (step 3 has not run), but hold no copy of either key.
    assert!(dir.path().join(DB_FILE).exists());
    for name in names(dir.path()) {
        let bytes = std::fs::read(dir.path().join(&name)).unwrap();
        assert!(!contains(&bytes, &first) && !contains(&bytes, &second), "{name} holds a wrapped key");
    }
}

#[test]
fn a_wipe_interrupted_right_after_the_key_was_destroyed_opens_as_wiped_and_is_completed() {
    let dir = tempfile::tempdir().unwrap();
    shredded_device(dir.path());
    assert!(!Device::is_wiped(dir.path()), "no marker yet: the crash came before it");

    let err = Device::open(dir.path(), &keystore()).unwrap_err();
    assert!(matches!(err, CoreError::Wiped), "{err:?}");
    assert_eq!(names(dir.path()), vec![MARKER_FILE.to_owned()]);
    let marker = Device::wipe_marker(dir.path()).unwrap();
    assert_eq!(marker.reason, WipeReason::Ordered);
    assert_eq!(marker.report, Some(vec![1, 2, 3]));
}

#[test]
fn init_over_an_interrupted_wipe_completes_it_and_starts_a_new_device() {
    let dir = tempfile::tempdir().unwrap();
    let wrapped = shredded_device(dir.path());
    let fresh = Device::init(dir.path(), &keystore()).unwrap();
    drop(fresh);
    assert_eq!(names(dir.path()), vec![DB_FILE.to_owned(), previous::PREVIOUS_WIPES_DIR.to_owned()]);
    let kept = Device::previous_wipes(dir.path()).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].report, Some(vec![1, 2, 3]));
    let bytes = std::fs::read(dir.path().join(DB_FILE)).unwrap();
    assert!(!contains(&bytes, &wrapped), "the new store holds the old wrapped key");
}

/// A keystore whose platform key cannot be deleted.
#[derive(Debug)]
struct Undeletable;

impl KeyStore for Undeletable {
    fn wrap(&self, data_key: &crate::crypto::SecretKey) -> Result<Vec<u8>, crate::keystore::KeyStoreError> {
        keystore().wrap(data_key)
    }
    fn unwrap(&self, wrapped: &[u8]) -> Result<crate::crypto::SecretKey, crate::keystore::KeyStoreError> {
        keystore().unwrap(wrapped)
    }
    fn destroy(&self) -> Result<(), crate::keystore::KeyStoreError> {
        Err(crate::keystore::KeyStoreError::Platform("the keystore is locked".into()))
    }
}

#[test]
fn no_new_device_starts_under_a_platform_key_that_could_not_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::init(dir.path(), &Undeletable).unwrap();
    device.wipe(WipeReason::Ordered, None).unwrap();
    drop(device);
    assert!(!Device::wipe_marker(dir.path()).unwrap().keystore_destroyed);
    let err = Device::init(dir.path(), &Undeletable).unwrap_err();
    assert!(
        matches!(&err, CoreError::KeyStore(crate::keystore::KeyStoreError::Platform(m)) if m.contains("could not be deleted")),
        "{err:?}"
    );
    // Still wiped, so the next try (with a keystore that works again) can start over.
    assert!(Device::is_wiped(dir.path()) && !Device::exists(dir.path()));
    Device::init(dir.path(), &keystore()).unwrap();
}

#[test]
fn a_wipe_interrupted_after_the_marker_is_completed_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    shredded_device(dir.path());
    write_atomic(dir.path(), MARKER_FILE, &marker(WipeReason::TooManyFailedUnlocks).to_json()).unwrap();
    std::fs::write(dir.path().join(SELF_WIPE_REPORT_FILE), b"report").unwrap();
    assert!(matches!(Device::open(dir.path(), &keystore()), Err(CoreError::Wiped)));
    assert_eq!(names(dir.path()), vec![MARKER_FILE.to_owned()]);
    assert_eq!(Device::wipe_marker(dir.path()).unwrap().reason, WipeReason::TooManyFailedUnlocks);
}

#[test]
fn a_wipe_record_that_does_not_parse_still_completes_the_wipe() {
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::init(dir.path(), &keystore()).unwrap();
    device.store_mut().shred(b"\x00 not a marker").unwrap();
    drop(device);
    assert!(matches!(Device::open(dir.path(), &keystore()), Err(CoreError::Wiped)));
    assert!(Device::wipe_marker(dir.path()).is_some());
}

#[test]
fn the_marker_round_trips_and_garbage_is_refused() {
    let m = marker(WipeReason::TooManyFailedUnlocks);
    assert_eq!(WipeMarker::from_json(&m.to_json()), Some(m));
    let text = String::from_utf8(marker(WipeReason::Ordered).to_json()).unwrap();
    assert!(text.contains("\"ordered\"") && text.contains("\"010203\""), "{text}");
    for garbage in [
        &b""[..],
        b"{}",
        b"[1]",
        b"{\"reason\":\"ordered\",\"wiped_at_ms\":1,\"report\":\"zz\",\"reported\":false}",
    ] {
        assert_eq!(WipeMarker::from_json(garbage), None);
    }
}
