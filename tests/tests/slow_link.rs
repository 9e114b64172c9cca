//! A phone on a poor link, end to end: a real server process, the phone's traffic through the
//! shaping proxy (`eenplan_tests::link`). A first sync over 256 kbit/s with 400 ms round trips
//! that loses its connection midway keeps what it received and goes on from there; a push
//! into a cut link fails within its deadline in plain words and loses nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use eenplan_core::plan::{Compartment, NoteKind};
use eenplan_core::sync::{NetworkFailure, SyncError};
use eenplan_core::{CoreError, Device, PlanId};
use eenplan_tests::link::Link;
use eenplan_tests::network::{Network, device_keystore};
use eenplan_tests::soak;

const USERS: &[(&str, &str, &str)] = &[
    ("Rita", "Wijkteam Noord", "wijkteam"),
    ("Wim", "Wijkteam Noord", "wijkteam"),
    ("Sanne", "Wijkteam Noord", "wijkteam"),
];

/// A device of `user` enrolled through `url` (a link to the server) and approved.
fn device_through(net: &Network, name: &str, user: &str, url: &str) -> Device {
    let mut device = Device::init(&net.path(name), &device_keystore()).unwrap();
    let code = net.admin.run(&["device", "enrol", "--user", user]);
    device.enrol(url, &code, &format!("Telefoon {name}"), eenplan_core::sync::Platform::Desktop).unwrap();
    net.admin.run(&["device", "approve", "--code", &code]);
    device
}

/// Rita's plans, each with `notes` home-visit notes of about a kilobyte, shared with Wim and
/// Sanne.
fn plans_with_history(rita: &mut Device, plans: usize, notes: usize) -> Vec<PlanId> {
    let text = "Huisbezoek: moeder vertelt over de schulden, de school en de buren. ".repeat(15);
    let mut out = Vec::new();
    for i in 0..plans {
        let plan = rita.create_plan(&format!("Gezin {i}")).unwrap();
        for n in 0..notes {
            rita.edit(&plan, |p| {
                p.add_note(Compartment::Basis, NoteKind::HomeVisit, &format!("{n}: {text}"))
            })
            .unwrap();
        }
        rita.add_participant(&plan, "Wim", "wijkteam").unwrap();
        rita.add_participant(&plan, "Sanne", "wijkteam").unwrap();
        out.push(plan);
    }
    out
}

#[test]
fn a_first_sync_over_a_poor_link_that_drops_goes_on_from_where_it_was_and_duplicates_nothing() {
    let net = Network::start(USERS);
    let mut rita = net.device("rita", "Rita");
    let link = Link::start(net.server.address()).unwrap();
    let mut wim = device_through(&net, "wim", "Wim", &link.url());
    let mut sanne = net.device("sanne", "Sanne");
    // Plans of a dozen notes: each document's log stays under the size at which the server
    // asks for a snapshot, so the whole history travels as changes. Twenty plans are about
    // 0.7 MB, three pages, so the cut below falls in the second; forty (1.4 MB, six pages)
    // under `EENPLAN_SOAK=1`.
    let plans = plans_with_history(&mut rita, soak::size(20, 40), 12);
    // Rita's device seals the plans' keys for the new devices.
    rita.sync().unwrap();

    // What the same first sync moves on a good link.
    let reference = sanne.sync().unwrap();
    let needed = reference.bytes_down;

    // Wim's phone: 256 kbit/s, 400 ms round trips. The connection drops 60 % of the way, after
    // the first pages (sized to the link: about eight seconds each) were applied.
    link.shape(Duration::from_millis(400), 256_000);
    let (cut_at, dropped) = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let reached = link.wait_until(Duration::from_secs(120), |s| s.bytes_down >= needed * 3 / 5);
            link.reset();
            reached.map(|s| s.bytes_down)
        });
        let first = wim.sync();
        (watcher.join().unwrap(), first)
    });
    assert!(cut_at.is_some(), "the transfer never got that far");
    match dropped {
        Err(CoreError::Sync(SyncError::Network(failure))) => {
            assert!(!failure.to_string().contains("os error"), "{failure}");
        }
        other => panic!("expected the dropped connection to fail the sync, got {other:?}"),
    }
    let kept = wim.status().unwrap().cursor;
    assert!(kept > 0, "what the first attempt received and verified is kept");

    // The next try goes on from there, on the same poor link.
    let before = link.stats().bytes_down;
    let report = wim.sync().unwrap();
    let resumed = link.stats().bytes_down - before;
    assert!(resumed < needed, "the second try moved {resumed} of the {needed} bytes: it did not start over");
    for plan in &plans {
        assert_eq!(wim.read(plan).unwrap(), sanne.read(plan).unwrap(), "{report:?}");
        assert_eq!(wim.read(plan).unwrap().notes.len(), 12);
    }
}

#[test]
fn a_push_into_a_cut_link_fails_within_its_deadline_and_loses_nothing() {
    let net = Network::start(USERS);
    let mut rita = net.device("rita", "Rita");
    let link = Link::start(net.server.address()).unwrap();
    let mut wim = device_through(&net, "wim", "Wim", &link.url());
    let plan = rita.create_plan("Jansen").unwrap();
    rita.add_participant(&plan, "Wim", "wijkteam").unwrap();
    wim.sync().unwrap();
    rita.sync().unwrap();
    wim.sync().unwrap();

    // A day of notes, then the link is cut one second's worth into the push.
    let text = "Notitie van een lange dag. ".repeat(40);
    for n in 0..40 {
        wim.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, &format!("{n} {text}"))).unwrap();
    }
    link.shape(Duration::from_millis(400), 256_000);
    let started = std::time::Instant::now();
    let failed = std::thread::scope(|scope| {
        scope.spawn(|| {
            link.wait_until(Duration::from_secs(60), |s| s.bytes_up >= 32_000);
            link.cut();
        });
        wim.sync()
    });
    let took = started.elapsed();
    match failed {
        Err(CoreError::Sync(SyncError::Network(
            failure @ (NetworkFailure::Stalled(_)
            | NetworkFailure::Deadline(_)
            | NetworkFailure::ConnectionLost),
        ))) => assert!(!failure.to_string().contains("os error"), "{failure}"),
        other => panic!("expected the cut to fail the push, got {other:?}"),
    }
    assert!(took < Duration::from_secs(90), "the push hung for {took:?} while the link was down");
    assert!(wim.pending_changes().unwrap() > 0, "the notes wait for the next sync");

    // The link comes back: everything arrives, once.
    link.restore();
    link.set_rate(None);
    wim.sync().unwrap();
    assert_eq!(wim.pending_changes().unwrap(), 0);
    rita.sync().unwrap();
    assert_eq!(rita.read(&plan).unwrap().notes.len(), 40);
}
