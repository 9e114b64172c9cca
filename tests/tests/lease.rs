//! The offline lease end to end: a device that has not synced for its organisation's lease
//! period locks its plans; what it wrote before is kept and synced; a sync unlocks it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use eenplan_core::CoreError;
use eenplan_core::clock::{Clock, ManualClock, SystemClock};
use eenplan_core::plan::{Compartment, NoteKind};
use eenplan_tests::network::Network;

const HOUR: i64 = 3_600_000;

#[test]
fn plans_lock_when_the_lease_runs_out_keep_offline_edits_and_unlock_on_the_next_sync() {
    let net =
        Network::start(&[("Rita", "Wijkteam Noord", "wijkteam"), ("Wim", "Wijkteam Noord", "wijkteam")]);
    let rita = net.device("rita", "Rita");
    // From just after the enrolment: the certificate is valid from the approval on.
    let clock = ManualClock::new(SystemClock.now_ms() + 1_000);
    let mut rita = rita.with_clock(Arc::new(clock.clone()));
    let mut wim = net.device("wim", "Wim");
    let plan = rita.create_plan("Jansen").unwrap();
    rita.sync().unwrap();
    rita.add_participant(&plan, "Wim", "wijkteam").unwrap();
    rita.sync().unwrap();

    let status = rita.status().unwrap();
    assert_eq!(status.lease_hours, Some(72), "the organisation's default lease");
    let expires = status.lease_expires_at_ms.unwrap();
    assert!(!status.lease_expired);

    // Offline for 71 hours: still open, and she writes.
    clock.advance_ms(71 * HOUR);
    rita.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::HomeVisit, "written offline, in time"))
        .unwrap();

    // Two hours later the lease has run out: the plan is locked, for reading and writing.
    clock.advance_ms(2 * HOUR);
    match rita.read(&plan) {
        Err(CoreError::LeaseExpired { expired_at_ms }) => assert_eq!(expired_at_ms, expires),
        other => panic!("expected LeaseExpired, got {other:?}"),
    }
    assert!(matches!(
        rita.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "too late")),
        Err(CoreError::LeaseExpired { .. })
    ));
    assert!(rita.status().unwrap().lease_expired);
    assert!(rita.pending_changes().unwrap() > 0, "the edit made in time is kept");

    // Setting the clock back does not reopen it.
    let back = ManualClock::new(SystemClock.now_ms());
    let mut rita = rita.with_clock(Arc::new(back.clone()));
    assert!(matches!(rita.read(&plan), Err(CoreError::LeaseExpired { .. })));

    // A sync unlocks it, and pushes what was written offline.
    let mut rita = rita.with_clock(Arc::new(clock.clone()));
    rita.sync().unwrap();
    assert!(rita.read(&plan).unwrap().notes.iter().any(|n| n.text == "written offline, in time"));
    assert!(!rita.status().unwrap().lease_expired);
    wim.sync().unwrap();
    wim.sync().unwrap();
    assert!(wim.read(&plan).unwrap().notes.iter().any(|n| n.text == "written offline, in time"));
}
