//! What a phone app meets in its first week, end to end against a real server process: a
//! sync that hangs on a server that does not answer never holds up reads and edits; a plan is
//! shared before its first sync, or offline; a wrong phone clock neither breaks the first
//! sync nor stamps notes days ahead.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::mpsc;

use eenplan_core::clock::{Clock, SystemClock};
use eenplan_core::plan::{Compartment, NoteKind};
use eenplan_core::sync::{NetworkFailure, ShareOutcome, SharedDevice, SyncError};
use eenplan_core::{CoreError, Device};
use eenplan_tests::network::{Network, Server, device_keystore};

const USERS: &[(&str, &str, &str)] = &[
    ("Rita", "Wijkteam Noord", "wijkteam"),
    ("Wim", "Wijkteam Noord", "wijkteam"),
    ("Sanne", "Wijkteam Noord", "wijkteam"),
];

fn notes(device: &mut Device, plan: &eenplan_core::PlanId) -> Vec<String> {
    device.read(plan).unwrap().notes.into_iter().map(|n| n.text).collect()
}

#[test]
fn a_plan_shared_before_its_first_sync_is_registered_and_shared_in_one_call() {
    let net = Network::start(USERS);
    let mut rita = net.device("rita", "Rita");
    let mut wim = net.device("wim", "Wim");
    let plan = rita.create_plan("Jansen").unwrap();
    rita.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::HomeVisit, "eerste huisbezoek")).unwrap();
    // No sync in between: the server has never heard of this plan.
    assert_eq!(rita.add_participant(&plan, "Wim", "wijkteam").unwrap(), ShareOutcome::Done);
    assert!(rita.queued_shares().unwrap().is_empty());
    wim.sync().unwrap();
    assert_eq!(notes(&mut wim, &plan), ["eerste huisbezoek"]);
}

#[test]
fn a_share_made_while_the_server_is_down_waits_and_the_next_sync_carries_it_out() {
    let mut net = Network::start(USERS);
    let mut rita = net.device("rita", "Rita");
    let mut wim = net.device("wim", "Wim");
    let plan = rita.create_plan("Jansen").unwrap();
    let address = net.server.address();
    net.server.kill();
    assert_eq!(rita.add_participant(&plan, "Wim", "wijkteam").unwrap(), ShareOutcome::Queued);
    assert_eq!(rita.status().unwrap().queued_shares, 1);
    // The queue is durable: it survives the app being closed.
    drop(rita);
    let mut rita = Device::open(&net.path("rita"), &device_keystore()).unwrap();
    net.server = Server::start_on(&net.server.data.clone(), &address);
    let report = rita.sync().unwrap();
    assert_eq!(report.shares_done, 1, "{report:?}");
    assert!(rita.queued_shares().unwrap().is_empty());
    wim.sync().unwrap();
    assert_eq!(wim.read(&plan).unwrap().family, "Jansen");
}

#[test]
fn a_share_with_an_unknown_user_is_refused_with_its_code_and_leaves_the_queue() {
    let net = Network::start(USERS);
    let mut rita = net.device("rita", "Rita");
    let plan = rita.create_plan("Jansen").unwrap();
    match rita.add_participant(&plan, "Niemand", "wijkteam") {
        Err(CoreError::Sync(SyncError::Server { status: 404, code, .. })) => assert_eq!(code, "unknown_user"),
        other => panic!("expected unknown_user, got {other:?}"),
    }
    assert!(rita.queued_shares().unwrap().is_empty());
    // The plan itself was registered all the same.
    assert!(rita.sync().unwrap().refused.is_empty());
}

#[test]
fn reads_and_edits_go_on_while_a_sync_waits_for_a_server_that_does_not_answer() {
    let mut net = Network::start(USERS);
    let mut rita = net.device("rita", "Rita");
    let mut wim = net.device("wim", "Wim");
    let plan = rita.create_plan("Jansen").unwrap();
    rita.add_participant(&plan, "Wim", "wijkteam").unwrap();
    rita.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "voor de storing")).unwrap();
    rita.sync().unwrap();

    // The server is replaced, on its address, by one that accepts and never answers.
    let address = net.server.address();
    net.server.kill();
    let silent = TcpListener::bind(&address).unwrap();
    let rita = Arc::new(SharedDevice::new(rita));
    let (synced, sync_ended) = mpsc::channel();
    let syncing = {
        let rita = Arc::clone(&rita);
        std::thread::spawn(move || synced.send(rita.sync()).unwrap())
    };
    // The sync is on the wire once the silent server has its connection.
    let (connection, _) = silent.accept().unwrap();

    // Meanwhile the worker reads the plan and writes a note: neither waits for the sync.
    let view = rita.with(|d| d.read(&plan)).unwrap();
    assert_eq!(view.family, "Jansen");
    rita.with(|d| d.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::HomeVisit, "tijdens de sync")))
        .unwrap();
    assert!(sync_ended.try_recv().is_err(), "the sync is still waiting for its answer");

    // The silent server goes away: the sync fails as offline, in plain words.
    drop(connection);
    drop(silent);
    let failed = sync_ended.recv().unwrap();
    syncing.join().unwrap();
    match failed {
        Err(CoreError::Sync(SyncError::Network(failure))) => {
            assert!(!failure.to_string().contains("os error"), "{failure}");
        }
        other => panic!("expected a network failure, got {other:?}"),
    }

    // The server is back: the note written during the failed sync goes at the next one.
    net.server = Server::start_on(&net.server.data.clone(), &address);
    let report = rita.sync().unwrap();
    assert!(report.pushed_bundles >= 1, "{report:?}");
    wim.sync().unwrap();
    assert_eq!(notes(&mut wim, &plan), ["voor de storing", "tijdens de sync"]);
}

#[test]
fn a_sync_against_an_address_nobody_listens_on_reports_no_connection_at_once() {
    let mut net = Network::start(USERS);
    let rita = net.device("rita", "Rita");
    let rita = SharedDevice::new(rita);
    net.server.kill();
    match rita.sync() {
        Err(CoreError::Sync(SyncError::Network(NetworkFailure::NoConnection(why)))) => {
            assert!(why.contains("refused"), "{why}");
        }
        other => panic!("expected no connection, got {other:?}"),
    }
}

/// The system clock, off by a fixed amount: a phone whose clock is wrong.
#[derive(Debug)]
struct Skewed(i64);

impl Clock for Skewed {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.0
    }
}

#[test]
fn a_phone_whose_clock_is_wrong_syncs_after_approval_and_stamps_the_servers_time() {
    const MINUTE: i64 = 60_000;
    let net = Network::start(USERS);
    let mut rita = net.device("rita", "Rita");
    let plan = rita.create_plan("Jansen").unwrap();
    rita.add_participant(&plan, "Wim", "wijkteam").unwrap();
    rita.add_participant(&plan, "Sanne", "wijkteam").unwrap();

    for (name, user, skew) in [("wim", "Wim", -2 * MINUTE), ("sanne", "Sanne", 3 * 24 * 60 * MINUTE)] {
        let mut device =
            Device::init(&net.path(name), &device_keystore()).unwrap().with_clock(Arc::new(Skewed(skew)));
        let code = net.admin.run(&["device", "enrol", "--user", user]);
        device
            .enrol(&net.server.url, &code, &format!("Telefoon {name}"), eenplan_core::sync::Platform::Desktop)
            .unwrap();
        net.admin.run(&["device", "approve", "--code", &code]);
        // Just after approval, with the certificate's start ahead of (or far behind) the
        // phone's clock: the session's time sets the device clock right.
        device.sync().unwrap_or_else(|e| panic!("{name}'s first sync: {e}"));
        // Rita's device seals the plan's keys for the new device; it fetches them.
        rita.sync().unwrap();
        device.sync().unwrap();
        device.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, name)).unwrap();
        let stamped = device.read(&plan).unwrap().notes.into_iter().find(|n| n.text == name).unwrap();
        let off = (stamped.created_at_ms - SystemClock.now_ms()).abs();
        assert!(off < MINUTE, "{name}'s note is stamped {off} ms away from the real time");
        let lease = device.status().unwrap().lease_expires_at_ms.unwrap();
        let off = (lease - (SystemClock.now_ms() + 72 * 60 * MINUTE)).abs();
        assert!(off < MINUTE, "{name}'s lease ends {off} ms away from 72 hours from now");
    }
}
