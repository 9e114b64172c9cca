//! Wiping: on an order, and after too many wrong passphrases. Afterwards the data directory
//! holds nothing that can be decrypted, and the device reports itself wiped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use eenplan_core::crypto::SecretKey;
use eenplan_core::keystore::{KdfParams, KeyStore, KeyStoreError, MemoryKeyStore, PassphraseKeyStore};
use eenplan_core::plan::NewGoal;
use eenplan_core::wipe::MARKER_FILE;
use eenplan_core::{CoreError, Device, OpenOptions, PlanId, WipeReason};

const FAMILY: &str = "Wipe-Familie Verhoeven";
const GOAL: &str = "Schulden volledig in beeld";

fn keystore(p: &str) -> PassphraseKeyStore {
    PassphraseKeyStore::with_params(p, KdfParams::INSECURE_FAST_FOR_TESTS)
}

fn limit(n: u32) -> OpenOptions {
    OpenOptions { max_failed_unlocks: n }
}

/// A device with one plan holding a goal; returns the plan and the wrapped data key's bytes
/// as the database holds them.
fn device_with_a_plan(dir: &Path, ks: &dyn KeyStore) -> (PlanId, Vec<u8>) {
    let plan = {
        let mut device = Device::init(dir, ks).unwrap();
        let plan = device.create_plan(FAMILY).unwrap();
        device
            .edit(&plan, |p| p.add_goal(NewGoal { domain: "financiën".into(), title: GOAL.into() }))
            .unwrap();
        plan
    };
    let conn = rusqlite::Connection::open(dir.join(eenplan_core::store::DB_FILE)).unwrap();
    let wrapped: Vec<u8> = conn
        .query_row("SELECT value FROM meta WHERE name = 'wrapped_data_key'", [], |row| row.get(0))
        .unwrap();
    assert!(wrapped.len() >= 32);
    (plan, wrapped)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every file under `dir`, in subdirectories too.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}

/// Nothing under `dir` holds the wrapped key or any plan text.
fn assert_nothing_decryptable(dir: &Path, wrapped: &[u8]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!contains(&bytes, wrapped), "a file still holds the wrapped data key");
        // Also any 32-byte window of it, in case a copy were stored split or re-encoded in part.
        assert!(!contains(&bytes, &wrapped[wrapped.len() - 32..]), "a file holds part of the wrapped key");
        assert!(!contains(&bytes, FAMILY.as_bytes()) && !contains(&bytes, GOAL.as_bytes()));
    }
}

#[test]
fn after_a_wipe_order_the_directory_holds_only_the_marker_and_nothing_decryptable() {
    let dir = tempfile::tempdir().unwrap();
    let (plan, wrapped) = device_with_a_plan(dir.path(), &keystore("geheim"));
    let mut device = Device::open(dir.path(), &keystore("geheim")).unwrap();
    assert_eq!(device.read(&plan).unwrap().family, FAMILY);
    let id = device.device_id();

    device.wipe(WipeReason::Ordered, Some(b"signed by the device".to_vec())).unwrap();

    assert_eq!(file_names(dir.path()), vec![MARKER_FILE.to_owned()]);
    assert_nothing_decryptable(dir.path(), &wrapped);
    // The Device in memory refuses everything, and still knows who it was.
    assert_eq!(device.device_id(), id);
    assert!(matches!(device.read(&plan), Err(CoreError::Wiped)));
    assert!(matches!(device.list_plans(), Err(CoreError::Wiped)));
    assert!(matches!(device.create_plan("Nieuw"), Err(CoreError::Wiped)));
    assert!(matches!(device.pending_changes(), Err(CoreError::Wiped)));
    assert!(matches!(device.lease(), Err(CoreError::Wiped)));
    assert!(matches!(device.wipe(WipeReason::Ordered, None), Err(CoreError::Wiped)));
    drop(device);
    // Nothing was recreated by the calls above.
    assert_eq!(file_names(dir.path()), vec![MARKER_FILE.to_owned()]);

    // Opening keeps saying so, however often the host asks; only `init` starts again.
    for _ in 0..2 {
        assert!(matches!(Device::open(dir.path(), &keystore("geheim")), Err(CoreError::Wiped)));
        assert!(matches!(Device::open_or_init(dir.path(), &keystore("geheim")), Err(CoreError::Wiped)));
    }
    assert!(Device::is_wiped(dir.path()));
    assert!(!Device::exists(dir.path()));

    let marker = Device::wipe_marker(dir.path()).unwrap();
    assert_eq!(marker.reason, WipeReason::Ordered);
    assert_eq!(marker.report.as_deref(), Some(&b"signed by the device"[..]));
    assert!(!marker.reported);
    Device::mark_wipe_reported(dir.path()).unwrap();
    assert!(Device::wipe_marker(dir.path()).unwrap().reported);
}

#[test]
fn init_in_a_wiped_directory_starts_a_new_device_and_keeps_the_unsent_report() {
    let dir = tempfile::tempdir().unwrap();
    let (_, wrapped) = device_with_a_plan(dir.path(), &keystore("geheim"));
    let mut old = Device::open(dir.path(), &keystore("geheim")).unwrap();
    let old_id = old.device_id();
    old.wipe(WipeReason::Ordered, Some(b"signed by the old device".to_vec())).unwrap();
    drop(old);

    let fresh = Device::init(dir.path(), &keystore("nieuw")).unwrap();
    assert_ne!(fresh.device_id(), old_id, "a new device, with a new id");
    assert!(fresh.list_plans().unwrap().is_empty());
    assert!(Device::exists(dir.path()) && !Device::is_wiped(dir.path()));
    assert_eq!(Device::wipe_marker(dir.path()), None);
    let kept = Device::previous_wipes(dir.path()).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].reason, WipeReason::Ordered);
    assert_eq!(kept[0].report.as_deref(), Some(&b"signed by the old device"[..]));
    drop(fresh);
    // The old data key and plan stay gone; the new device opens with its own key only.
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(!contains(&bytes, &wrapped) && !contains(&bytes, FAMILY.as_bytes()), "{entry:?}");
    }
    assert!(matches!(Device::open(dir.path(), &keystore("geheim")), Err(CoreError::WrongUnlock { .. })));
    Device::open(dir.path(), &keystore("nieuw")).unwrap();
    // A live device is never replaced.
    assert!(matches!(Device::init(dir.path(), &keystore("nieuw")), Err(CoreError::AlreadyInitialised)));
}

#[test]
fn a_report_the_server_already_has_is_not_kept_and_clear_wiped_still_clears() {
    let dir = tempfile::tempdir().unwrap();
    device_with_a_plan(dir.path(), &keystore("geheim"));
    Device::open(dir.path(), &keystore("geheim"))
        .unwrap()
        .wipe(WipeReason::Ordered, Some(b"r".to_vec()))
        .unwrap();
    Device::mark_wipe_reported(dir.path()).unwrap();
    drop(Device::init(dir.path(), &keystore("nieuw")).unwrap());
    assert!(Device::previous_wipes(dir.path()).unwrap().is_empty());

    let other = tempfile::tempdir().unwrap();
    device_with_a_plan(other.path(), &keystore("geheim"));
    Device::open(other.path(), &keystore("geheim")).unwrap().wipe(WipeReason::Ordered, None).unwrap();
    Device::clear_wiped(other.path()).unwrap();
    assert!(file_names(other.path()).is_empty());
    drop(Device::init(other.path(), &keystore("nieuw")).unwrap());
    // Clearing never touches a live device.
    Device::clear_wiped(other.path()).unwrap();
    assert!(Device::open(other.path(), &keystore("nieuw")).is_ok());
}

#[test]
fn at_most_a_bounded_number_of_unsent_reports_is_kept_the_newest_ones() {
    let dir = tempfile::tempdir().unwrap();
    let rounds = eenplan_core::wipe::MAX_KEPT_WIPE_REPORTS + 2;
    for round in 0..rounds {
        let mut device = Device::init(dir.path(), &keystore("geheim")).unwrap();
        device.wipe(WipeReason::Ordered, Some(format!("report {round}").into_bytes())).unwrap();
    }
    drop(Device::init(dir.path(), &keystore("geheim")).unwrap());
    let kept: Vec<Vec<u8>> =
        Device::previous_wipes(dir.path()).unwrap().into_iter().filter_map(|m| m.report).collect();
    let expected: Vec<Vec<u8>> = (rounds - eenplan_core::wipe::MAX_KEPT_WIPE_REPORTS..rounds)
        .map(|round| format!("report {round}").into_bytes())
        .collect();
    assert_eq!(kept, expected);
}

#[test]
fn after_n_wrong_passphrases_the_device_wipes_itself_and_holds_nothing_decryptable() {
    let dir = tempfile::tempdir().unwrap();
    let (_, wrapped) = device_with_a_plan(dir.path(), &keystore("geheim"));
    Device::open(dir.path(), &keystore("geheim"))
        .unwrap()
        .store_self_wipe_report(b"device X wiped itself".to_vec())
        .unwrap();

    let options = limit(3);
    let attempt = || Device::open_with(dir.path(), &keystore("fout"), &options).unwrap_err();
    assert!(matches!(attempt(), CoreError::WrongUnlock { attempts_left: 2 }));
    assert!(matches!(attempt(), CoreError::WrongUnlock { attempts_left: 1 }));
    assert!(matches!(attempt(), CoreError::Wiped));

    assert_eq!(file_names(dir.path()), vec![MARKER_FILE.to_owned()]);
    assert_nothing_decryptable(dir.path(), &wrapped);
    assert!(matches!(Device::open_with(dir.path(), &keystore("geheim"), &options), Err(CoreError::Wiped)));
    let marker = Device::wipe_marker(dir.path()).unwrap();
    assert_eq!(marker.reason, WipeReason::TooManyFailedUnlocks);
    assert_eq!(marker.report.as_deref(), Some(&b"device X wiped itself"[..]));
}

#[test]
fn a_right_passphrase_before_the_limit_resets_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let (plan, _) = device_with_a_plan(dir.path(), &keystore("geheim"));
    let options = limit(3);
    for _ in 0..3 {
        assert!(matches!(
            Device::open_with(dir.path(), &keystore("fout"), &options),
            Err(CoreError::WrongUnlock { attempts_left: 2 })
        ));
        assert!(matches!(
            Device::open_with(dir.path(), &keystore("fout"), &options),
            Err(CoreError::WrongUnlock { attempts_left: 1 })
        ));
        let mut device = Device::open_with(dir.path(), &keystore("geheim"), &options).unwrap();
        assert_eq!(device.read(&plan).unwrap().family, FAMILY);
    }
    // A successful open leaves no counter behind.
    assert!(!file_names(dir.path()).iter().any(|n| n.contains("unlock")));
    // The wipe without a pre-signed report records none.
    for _ in 0..3 {
        let _ = Device::open_with(dir.path(), &keystore("fout"), &options);
    }
    assert_eq!(Device::wipe_marker(dir.path()).unwrap().report, None);
}

#[test]
fn a_damaged_counter_file_leaves_exactly_one_attempt() {
    let dir = tempfile::tempdir().unwrap();
    device_with_a_plan(dir.path(), &keystore("geheim"));
    std::fs::write(dir.path().join("failed-unlocks"), b"\xff garbage").unwrap();
    // The right passphrase still opens, and resets the count.
    Device::open(dir.path(), &keystore("geheim")).unwrap();
    assert!(matches!(
        Device::open(dir.path(), &keystore("fout")),
        Err(CoreError::WrongUnlock { attempts_left: 9 })
    ));
    std::fs::write(dir.path().join("failed-unlocks"), b"\xff garbage").unwrap();
    assert!(matches!(Device::open(dir.path(), &keystore("fout")), Err(CoreError::Wiped)));
}

#[test]
fn a_malformed_marker_still_counts_as_wiped_and_nothing_panics() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(MARKER_FILE), b"{ not json").unwrap();
    assert!(Device::is_wiped(dir.path()));
    assert_eq!(Device::wipe_marker(dir.path()), None);
    assert!(matches!(Device::open(dir.path(), &keystore("geheim")), Err(CoreError::Wiped)));
    assert!(matches!(Device::mark_wipe_reported(dir.path()), Err(CoreError::Io { .. })));
    // Nothing can be sent from it, so nothing is kept when a new device starts there.
    Device::init(dir.path(), &keystore("geheim")).unwrap();
    assert!(Device::previous_wipes(dir.path()).unwrap().is_empty());
    assert!(!Device::is_wiped(dir.path()));
}

/// A platform keystore stand-in that counts how often its key was destroyed.
#[derive(Debug)]
struct PlatformKeyStore {
    inner: MemoryKeyStore,
    destroyed: AtomicUsize,
}

impl KeyStore for PlatformKeyStore {
    fn wrap(&self, data_key: &SecretKey) -> Result<Vec<u8>, KeyStoreError> {
        self.inner.wrap(data_key)
    }
    fn unwrap(&self, wrapped: &[u8]) -> Result<SecretKey, KeyStoreError> {
        if self.destroyed.load(Ordering::SeqCst) > 0 {
            return Err(KeyStoreError::Platform("the key was deleted".into()));
        }
        self.inner.unwrap(wrapped)
    }
    fn destroy(&self) -> Result<(), KeyStoreError> {
        self.destroyed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn a_wipe_destroys_the_platform_key_now_or_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let ks = Arc::new(PlatformKeyStore { inner: MemoryKeyStore::generate(), destroyed: AtomicUsize::new(0) });
    device_with_a_plan(dir.path(), ks.as_ref());
    let mut device = Device::open(dir.path(), ks.as_ref()).unwrap().with_keystore(ks.clone());
    device.wipe(WipeReason::Ordered, None).unwrap();
    assert_eq!(ks.destroyed.load(Ordering::SeqCst), 1);
    assert!(Device::wipe_marker(dir.path()).unwrap().keystore_destroyed);

    // Without the keystore at hand, the wipe leaves the platform key to the next open.
    let other = tempfile::tempdir().unwrap();
    let ks = PlatformKeyStore { inner: MemoryKeyStore::generate(), destroyed: AtomicUsize::new(0) };
    device_with_a_plan(other.path(), &ks);
    Device::open(other.path(), &ks).unwrap().wipe(WipeReason::Ordered, None).unwrap();
    assert!(!Device::wipe_marker(other.path()).unwrap().keystore_destroyed);
    assert!(matches!(Device::open(other.path(), &ks), Err(CoreError::Wiped)));
    assert_eq!(ks.destroyed.load(Ordering::SeqCst), 1);
    assert!(Device::wipe_marker(other.path()).unwrap().keystore_destroyed);
    assert!(matches!(Device::open(other.path(), &ks), Err(CoreError::Wiped)));
    assert_eq!(ks.destroyed.load(Ordering::SeqCst), 1, "destroyed once, not at every open");
}

#[test]
fn a_platform_error_at_unlock_is_not_counted_as_a_wrong_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let ks = PlatformKeyStore { inner: MemoryKeyStore::generate(), destroyed: AtomicUsize::new(0) };
    device_with_a_plan(dir.path(), &ks);
    ks.destroyed.store(1, Ordering::SeqCst);
    for _ in 0..3 {
        let err = Device::open_with(dir.path(), &ks, &limit(2)).unwrap_err();
        assert!(matches!(err, CoreError::KeyStore(KeyStoreError::Platform(_))), "{err:?}");
    }
    assert!(!Device::is_wiped(dir.path()));
}

/// A platform keystore whose key the platform invalidated (Android's
/// `KeyPermanentlyInvalidatedException`, an expired lease-bound key).
#[derive(Debug)]
struct InvalidatedKeyStore {
    inner: MemoryKeyStore,
    invalidated: std::sync::atomic::AtomicBool,
    destroyed: AtomicUsize,
}

impl KeyStore for InvalidatedKeyStore {
    fn wrap(&self, data_key: &SecretKey) -> Result<Vec<u8>, KeyStoreError> {
        self.inner.wrap(data_key)
    }
    fn unwrap(&self, wrapped: &[u8]) -> Result<SecretKey, KeyStoreError> {
        if self.invalidated.load(Ordering::SeqCst) {
            return Err(KeyStoreError::Invalidated("the lock screen was removed".into()));
        }
        self.inner.unwrap(wrapped)
    }
    fn destroy(&self) -> Result<(), KeyStoreError> {
        self.destroyed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn a_platform_key_gone_for_good_wipes_the_device_without_counting_a_failed_unlock() {
    let dir = tempfile::tempdir().unwrap();
    let ks = InvalidatedKeyStore {
        inner: MemoryKeyStore::generate(),
        invalidated: std::sync::atomic::AtomicBool::new(false),
        destroyed: AtomicUsize::new(0),
    };
    let (_, wrapped) = device_with_a_plan(dir.path(), &ks);
    ks.invalidated.store(true, Ordering::SeqCst);

    let err = Device::open_with(dir.path(), &ks, &limit(5)).unwrap_err();
    assert!(matches!(err, CoreError::Wiped), "{err:?}");
    assert_eq!(file_names(dir.path()), vec![MARKER_FILE.to_owned()], "no failed-unlock count either");
    assert_nothing_decryptable(dir.path(), &wrapped);
    let marker = Device::wipe_marker(dir.path()).unwrap();
    assert_eq!(marker.reason, WipeReason::KeyInvalidated);
    assert!(marker.keystore_destroyed);

    // The phone is set up again, under a key the platform makes anew.
    ks.invalidated.store(false, Ordering::SeqCst);
    let fresh = Device::init(dir.path(), &ks).unwrap();
    assert!(fresh.list_plans().unwrap().is_empty());
}
