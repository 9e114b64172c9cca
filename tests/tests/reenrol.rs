//! Setting a phone up again after it wiped itself, against a real server.
//!
//! The promise: a wiped directory takes a new device (new keys, new id) with `init`, and the
//! report of the old device's wipe, which the phone could not send while offline, is not lost:
//! it waits beside the new device and reaches the server once it is back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use eenplan_core::error::CoreError;
use eenplan_core::sync::SyncError;
use eenplan_core::{Device, OpenOptions};
use eenplan_tests::network::{Network, Server, device_keystore};

#[test]
fn a_phone_that_wiped_itself_offline_starts_again_and_its_wipe_report_reaches_the_server_later() {
    let mut net = Network::start(&[("Wim", "Wijkteam Noord", "wijkteam")]);
    let old_id = net.device("wim", "Wim").device_id();
    let dir = net.path("wim");

    // Offline, someone guesses the passphrase until the phone wipes itself.
    let listen = net.server.address();
    net.server.kill();
    let wrong = eenplan_core::keystore::PassphraseKeyStore::with_params(
        "geraden",
        eenplan_core::keystore::KdfParams::INSECURE_FAST_FOR_TESTS,
    );
    let limit = OpenOptions { max_failed_unlocks: 2 };
    assert!(matches!(
        Device::open_with(&dir, &wrong, &limit),
        Err(CoreError::WrongUnlock { attempts_left: 1 })
    ));
    assert!(matches!(Device::open_with(&dir, &wrong, &limit), Err(CoreError::Wiped)));
    assert!(!Device::wipe_marker(&dir).unwrap().reported);

    // The user sets the phone up again: a new device, and the old report kept.
    let fresh = Device::init(&dir, &device_keystore()).unwrap();
    assert_ne!(fresh.device_id(), old_id);
    assert_eq!(Device::previous_wipes(&dir).unwrap().len(), 1);
    let err = Device::send_previous_wipe_reports(&dir).unwrap_err();
    assert!(matches!(err, CoreError::Sync(SyncError::Network(_))), "{err:?}");
    assert_eq!(Device::previous_wipes(&dir).unwrap().len(), 1, "kept for the next try");

    // Back online. The old device is neither revoked nor past its lease, so the server does not
    // take the report yet (a copy of a live phone's files must not mark it wiped); it stays.
    net.server = Server::start_on(&net.server.data.clone(), &listen);
    assert_eq!(Device::send_previous_wipe_reports(&dir).unwrap(), 0);
    assert_eq!(Device::previous_wipes(&dir).unwrap().len(), 1, "kept until the server takes it");
    // The worker tells the administrator, who revokes the old device: now the report counts,
    // and the administrator sees the old device wiped.
    net.admin.run(&["device", "revoke", &old_id.to_string(), "--reason", "lost"]);
    assert_eq!(Device::send_previous_wipe_reports(&dir).unwrap(), 1);
    assert!(Device::previous_wipes(&dir).unwrap().is_empty());
    let devices = net.admin.run(&["device", "list"]);
    let line = devices.lines().find(|l| l.contains(&old_id.to_string()[..8])).unwrap();
    assert!(line.contains("gewist"), "{devices}");

    // The new device enrols with a new code like any new phone.
    let mut fresh = fresh;
    let code = net.admin.run(&["device", "enrol", "--user", "Wim"]);
    fresh
        .enrol(&net.server.url, &code, "Nieuwe telefoon van Wim", eenplan_core::sync::Platform::Desktop)
        .unwrap();
    net.admin.run(&["device", "approve", "--code", &code]);
    fresh.sync().unwrap();
    assert_eq!(Device::send_previous_wipe_reports(&dir).unwrap(), 0);
}
