//! Compaction end to end: the server keeps every pushed bundle, so a document's log only grows.
//! Once a document has more than the server's threshold of change bytes after its newest
//! snapshot, the server asks a device that holds the key for a snapshot; a device that joins
//! later starts from that snapshot and the tail after it instead of replaying the whole log.
//! A real server process on loopback, the real admin CLI, real device stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use eenplan_core::plan::{Compartment, NewGoal, NoteKind};
use eenplan_core::{Device, EntityId, PlanId};
use eenplan_tests::network::{Network, device_keystore};

const USERS: &[(&str, &str, &str)] =
    &[("Rita", "Wijkteam Noord", "wijkteam"), ("Wim", "Wijkteam Noord", "wijkteam")];

/// `COMPACT_AFTER_BYTES` in `server/src/storage.rs` (the tests crate does not depend on the
/// server crate): a document with more change bytes than this after its newest snapshot (and
/// than half that snapshot) is offered for compaction.
const COMPACT_AFTER_BYTES: i64 = 16 * 1024;
/// Edits after the snapshot, which a new device must receive as changes.
const TAIL: i64 = 3;

fn count(net: &Network, plan: &PlanId, filter: &str) -> i64 {
    select(net, plan, "count(*)", filter)
}

fn select(net: &Network, plan: &PlanId, what: &str, filter: &str) -> i64 {
    let conn = rusqlite::Connection::open(net.server.data.join("server.db")).unwrap();
    conn.query_row(
        &format!("SELECT coalesce({what}, 0) FROM bundles WHERE plan_id = ?1 AND {filter}"),
        [&plan.as_bytes()[..]],
        |r| r.get(0),
    )
    .unwrap()
}

/// The bytes of the basis document's change bundles on the server.
fn basis_change_bytes(net: &Network, plan: &PlanId) -> i64 {
    select(net, plan, "sum(size)", "compartment = 0 AND kind = 0")
}

/// Rita's device with the Jansen family's plan of one goal, synced.
fn rita_with_a_goal(net: &Network) -> (Device, PlanId, EntityId) {
    let mut rita = net.device("rita", "Rita");
    let plan = rita.create_plan("Jansen").unwrap();
    let goal = rita
        .edit(&plan, |p| p.add_goal(NewGoal { domain: "financiën".into(), title: "Schulden".into() }))
        .unwrap();
    rita.sync().unwrap();
    (rita, plan, goal)
}

/// Wim joins `plan` with a device that has never synced (not `Network::device`, which syncs
/// it once: its first sync is what the tests count); Rita's device seals the plan's keys for
/// it when the server asks.
fn wim_joins(net: &Network, rita: &mut Device, plan: &PlanId) -> Device {
    rita.add_participant(plan, "Wim", "wijkteam").unwrap();
    let mut wim = Device::init(&net.dir.path().join("wim"), &device_keystore()).unwrap();
    let code = net.admin.run(&["device", "enrol", "--user", "Wim"]);
    wim.enrol(&net.server.url, &code, "Telefoon van Wim", eenplan_core::sync::Platform::Desktop).unwrap();
    net.admin.run(&["device", "approve", "--code", &code]);
    assert!(rita.sync().unwrap().envelopes_sent > 0);
    wim
}

#[test]
fn a_long_log_is_compacted_by_a_client_snapshot_and_a_new_device_starts_from_it() {
    let net = Network::start(USERS);
    let (mut rita, plan, goal) = rita_with_a_goal(&net);

    // One edit and one sync push one bundle of the basis document, until the server asks for
    // a snapshot; the device answers within the same sync.
    let started = Instant::now();
    let mut pushes = 0;
    loop {
        pushes += 1;
        rita.edit(&plan, |p| p.set_goal_title(goal, &format!("Schulden, stap {pushes}"))).unwrap();
        let report = rita.sync().unwrap();
        assert_eq!(report.pushed_bundles, 1, "{report:?}");
        if report.snapshots_sent > 0 {
            assert_eq!(report.snapshots_sent, 1, "{report:?}");
            assert!(report.refused.is_empty(), "{report:?}");
            break;
        }
        assert!(
            basis_change_bytes(&net, &plan) <= COMPACT_AFTER_BYTES,
            "no snapshot asked for after {pushes} pushes"
        );
    }
    let elapsed = started.elapsed();
    println!(
        "{pushes} edits and syncs until the snapshot: {elapsed:?} ({:?} each)",
        elapsed / u32::try_from(pushes).unwrap()
    );
    // Asked exactly when the log first held more than the threshold.
    let last = select(&net, &plan, "size", "compartment = 0 AND kind = 0 ORDER BY seq DESC LIMIT 1");
    let bytes = basis_change_bytes(&net, &plan);
    assert!(
        bytes > COMPACT_AFTER_BYTES && bytes - last <= COMPACT_AFTER_BYTES,
        "{bytes} bytes, the last {last}"
    );
    assert_eq!(count(&net, &plan, "compartment = 0 AND kind = 1"), 1, "one snapshot bundle on the server");
    assert_eq!(
        count(&net, &plan, "kind = 1 AND covers_seq >= (SELECT max(seq) FROM bundles WHERE kind = 0)"),
        1
    );
    // With the snapshot stored, the server stops asking.
    assert_eq!(rita.sync().unwrap().snapshots_sent, 0);

    for i in 0..TAIL {
        rita.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, &format!("na de snapshot {i}")))
            .unwrap();
        assert_eq!(rita.sync().unwrap().pushed_bundles, 1);
    }

    let mut wim = wim_joins(&net, &mut rita, &plan);

    let log = count(&net, &plan, "1 = 1");
    let other_documents = count(&net, &plan, "compartment <> 0");
    let first = wim.sync().unwrap();
    println!("the log holds {log} bundles of the plan; Wim's first sync received {}", first.received_bundles);
    assert!(first.refused.is_empty(), "{first:?}");
    assert_eq!(first.new_plans, vec![plan]);
    // The basis document came as its snapshot and the tail after it; the other documents were
    // never compacted and came whole.
    let expected = 1 + TAIL + other_documents;
    assert_eq!(i64::try_from(first.received_bundles).unwrap(), expected, "{first:?}");
    assert!(expected < log, "{expected} bundles received of the {log} in the log");
    let view = wim.read(&plan).unwrap();
    assert_eq!(view.goals[0].title, format!("Schulden, stap {pushes}"));
    assert_eq!(view.notes.len(), usize::try_from(TAIL).unwrap());
    assert_eq!(view, rita.read(&plan).unwrap());

    // Received in bulk, the document was stored as a snapshot at once (never as dozens of
    // sealed rows), and it reads back the same after the device restarts.
    drop(wim);
    let mut wim = Device::open(&net.dir.path().join("wim"), &device_keystore()).unwrap();
    assert_eq!(wim.read(&plan).unwrap(), view);
    wim.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "Wim na de herstart")).unwrap();
    assert_eq!(wim.sync().unwrap().pushed_bundles, 1);
    rita.sync().unwrap();
    assert_eq!(rita.read(&plan).unwrap(), wim.read(&plan).unwrap());
}

/// A device back from a home visit pushes a tail longer than the threshold over several
/// rounds of one sync. The server asks it for a snapshot on the first complete answer, when
/// the rest of the tail is still in its outbox and no snapshot can be made; it asks again on
/// every later complete answer, and the device answers once its outbox is empty, in that same
/// sync. A device that joins afterwards gets the snapshot and nothing of the tail.
#[test]
fn a_long_tail_pushed_over_several_rounds_is_compacted_within_the_same_sync() {
    let net = Network::start(USERS);
    let (mut rita, plan, goal) = rita_with_a_goal(&net);

    // Offline: every edit its own durable write, so the outbox holds them as many bundles.
    const OFFLINE_EDITS: usize = 400;
    for i in 0..OFFLINE_EDITS {
        rita.edit(&plan, |p| p.set_goal_title(goal, &format!("Schulden, bezoek {i}"))).unwrap();
    }
    let report = rita.sync().unwrap();
    assert!(report.refused.is_empty(), "{report:?}");
    assert!(report.rounds > 2, "the tail went up in one round: {report:?}");
    // Long before the last bundle went up: the server asked on a complete answer while the
    // outbox still held the rest, the ask the device could not answer yet.
    let last = select(&net, &plan, "size", "compartment = 0 AND kind = 0 ORDER BY seq DESC LIMIT 1");
    assert!(basis_change_bytes(&net, &plan) - last > COMPACT_AFTER_BYTES, "asked only at the last push");
    assert_eq!(report.snapshots_sent, 1, "{report:?}");
    // The snapshot covers every change bundle of the basis document.
    assert_eq!(
        count(
            &net,
            &plan,
            "compartment = 0 AND kind = 1 AND covers_seq >= (SELECT max(seq) FROM bundles WHERE compartment = 0 AND kind = 0)"
        ),
        1
    );

    let mut wim = wim_joins(&net, &mut rita, &plan);
    let other_documents = count(&net, &plan, "compartment <> 0");
    let first = wim.sync().unwrap();
    assert!(first.refused.is_empty(), "{first:?}");
    assert_eq!(i64::try_from(first.received_bundles).unwrap(), 1 + other_documents, "{first:?}");
    assert_eq!(wim.read(&plan).unwrap().goals[0].title, format!("Schulden, bezoek {}", OFFLINE_EDITS - 1));
    assert_eq!(wim.read(&plan).unwrap(), rita.read(&plan).unwrap());
}
