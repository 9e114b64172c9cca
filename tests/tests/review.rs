//! Review end to end: the regisseur sees what two wijkteam workers changed offline, named by
//! their certificates, none of her own edits; after marking, nothing, until a worker edits
//! again. A device that does not hold a compartment lists nothing of it, and a mark survives
//! reopening the device.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use eenplan_core::plan::{
    ActionStatus, ActionUpdate, Compartment, GoalStatus, NewAction, NewGoal, NoteKind, Phase,
};
use eenplan_core::review::Review;
use eenplan_core::{Device, PlanId};
use eenplan_tests::network::Network;
use eenplan_tests::test_keystore;

const USERS: &[(&str, &str, &str)] = &[
    ("Rita Regie", "Wijkteam Noord", "wijkteam"),
    ("Wim de Vries", "Wijkteam Noord", "wijkteam"),
    ("Ans Bakker", "Wijkteam Zuid", "wijkteam"),
    ("Sanne Smit", "Basisschool De Linde", "school"),
];

/// Who and what, sorted (devices' clocks decide the order of concurrent edits).
fn said(review: &Review) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        review.lines.iter().map(|l| (l.who_label(), l.text.clone())).collect();
    out.sort();
    out
}

fn line(who: &str, text: &str) -> (String, String) {
    (who.to_owned(), text.to_owned())
}

fn sync_all(devices: &mut [&mut Device]) {
    for _ in 0..2 {
        for device in devices.iter_mut() {
            device.sync().unwrap();
        }
    }
}

#[test]
fn the_regisseur_reviews_exactly_what_two_workers_changed_offline_by_name_and_after_marking_only_what_comes_next()
 {
    let net = Network::start(USERS);
    let mut rita = net.device("rita", "Rita Regie");
    let mut wim = net.device("wim", "Wim de Vries");
    let mut ans = net.device("ans", "Ans Bakker");
    let mut sanne = net.device("sanne", "Sanne Smit");
    let plan = rita.create_plan("Jansen").unwrap();
    let goal = rita
        .edit(&plan, |p| {
            p.add_goal(NewGoal { domain: "financiën".into(), title: "Schulden op orde".into() })
        })
        .unwrap();
    let action = rita
        .edit(&plan, |p| {
            p.add_action(NewAction {
                goal,
                title: "Huur betalen".into(),
                owner_org: "Wijkteam Noord".into(),
                owner_user: None,
                due: None,
            })
        })
        .unwrap();
    rita.sync().unwrap();
    for (user, role) in [("Wim de Vries", "wijkteam"), ("Ans Bakker", "wijkteam"), ("Sanne Smit", "school")] {
        rita.add_participant(&plan, user, role).unwrap();
    }
    sync_all(&mut [&mut rita, &mut wim, &mut ans, &mut sanne]);
    rita.mark_reviewed(&plan).unwrap();
    assert!(rita.review(&plan).unwrap().lines.is_empty(), "nothing new right after marking");

    // Offline: Wim sets the action done and types a care note keystroke by keystroke; Ans
    // adds a goal and moves the phase on; Rita writes an agreement of her own.
    wim.edit(&plan, |p| {
        p.update_action(action, ActionUpdate { status: Some(ActionStatus::Done), ..Default::default() })
    })
    .unwrap();
    let note = wim.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::HomeVisit, "M")).unwrap();
    for (i, ch) in "oeder is positief over de hulp".chars().enumerate() {
        wim.edit(&plan, |p| p.edit_note_text(Compartment::Zorg, note, i + 1, 0, &ch.to_string())).unwrap();
    }
    ans.edit(&plan, |p| {
        p.add_goal(NewGoal { domain: "werk & opleiding".into(), title: "Werk zoeken".into() })
    })
    .unwrap();
    ans.edit(&plan, |p| p.set_phase(Phase::Uitvoering)).unwrap();
    rita.edit(&plan, |p| p.add_agreement("Rita belt maandag de verhuurder")).unwrap();
    sync_all(&mut [&mut wim, &mut ans, &mut rita, &mut sanne]);

    let review = rita.review(&plan).unwrap();
    assert_eq!(
        said(&review),
        [
            line("Ans Bakker (Wijkteam Zuid)", "voegde doel ‘Werk zoeken’ toe (Werk & opleiding)"),
            line("Ans Bakker (Wijkteam Zuid)", "wijzigde de fase in Uitvoering"),
            line("Wim de Vries (Wijkteam Noord)", "schreef een verslag van een huisbezoek (Zorg)"),
            line("Wim de Vries (Wijkteam Noord)", "zette de status van actie ‘Huur betalen’ op Gedaan"),
        ],
        "{review:#?}"
    );
    assert!(review.since_ms.is_some());
    let typed = review.lines.iter().find(|l| l.compartment == Compartment::Zorg).unwrap();
    assert_eq!((typed.entity, typed.changes), (Some(note), 31), "one line for the whole note");

    // The school reads basis only: Wim's care note is not in its review, his status is.
    let school = said(&sanne.review(&plan).unwrap());
    assert!(school.iter().all(|(_, text)| !text.contains("Zorg")), "{school:?}");
    assert!(school.contains(&line(
        "Wim de Vries (Wijkteam Noord)",
        "zette de status van actie ‘Huur betalen’ op Gedaan"
    )));
    assert!(sanne.review(&plan).unwrap().lines.iter().all(|l| l.compartment == Compartment::Basis));

    rita.mark_reviewed(&plan).unwrap();
    assert!(rita.review(&plan).unwrap().lines.is_empty(), "marked: nothing new");

    ans.edit(&plan, |p| p.set_goal_status(goal, GoalStatus::InProgress)).unwrap();
    sync_all(&mut [&mut ans, &mut rita]);
    assert_eq!(
        said(&rita.review(&plan).unwrap()),
        [line("Ans Bakker (Wijkteam Zuid)", "zette de status van doel ‘Schulden op orde’ op Bezig")]
    );
}

/// A plan passed by transfer file from `from` to `to`.
fn hand_over(from: &mut Device, to: &mut Device, plan: &PlanId) {
    let file = from.export_changes(plan, "overdracht-wachtwoord").unwrap();
    to.import_changes(&file, "overdracht-wachtwoord").unwrap();
}

#[test]
fn the_marked_heads_survive_reopening_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let (worker_dir, reader_dir) = (dir.path().join("worker"), dir.path().join("reader"));
    let mut worker = Device::init(&worker_dir, &test_keystore()).unwrap();
    let mut reader = Device::init(&reader_dir, &test_keystore()).unwrap();
    let plan = worker.create_plan("Jansen").unwrap();
    worker.edit(&plan, |p| p.set_phase(Phase::Triage)).unwrap();
    hand_over(&mut worker, &mut reader, &plan);
    let first = reader.review(&plan).unwrap();
    assert_eq!(first.since_ms, None, "never marked");
    assert!(first.lines.iter().any(|l| l.text == "wijzigde de fase in Triage"), "{first:#?}");
    assert!(
        first.lines.iter().all(|l| l.who_label().starts_with("onbekend apparaat ")),
        "no certificate: the device is named by its id"
    );
    reader.mark_reviewed(&plan).unwrap();
    drop(reader);

    worker.edit(&plan, |p| p.set_phase(Phase::Uitvoering)).unwrap();
    let mut reader = Device::open(&reader_dir, &test_keystore()).unwrap();
    assert!(reader.review(&plan).unwrap().lines.is_empty(), "the mark was kept");
    hand_over(&mut worker, &mut reader, &plan);
    let texts: Vec<String> = reader.review(&plan).unwrap().lines.into_iter().map(|l| l.text).collect();
    assert_eq!(texts, ["wijzigde de fase in Uitvoering"]);
}

#[test]
fn marking_what_a_review_showed_leaves_a_change_that_arrived_afterwards_unreviewed() {
    let dir = tempfile::tempdir().unwrap();
    let mut worker = Device::init(&dir.path().join("worker"), &test_keystore()).unwrap();
    let mut reader = Device::init(&dir.path().join("reader"), &test_keystore()).unwrap();
    let plan = worker.create_plan("Jansen").unwrap();
    worker.edit(&plan, |p| p.set_phase(Phase::Triage)).unwrap();
    hand_over(&mut worker, &mut reader, &plan);
    let shown = reader.review(&plan).unwrap();

    // A change arrives (a sync, on a phone) between showing the review and marking it.
    worker.edit(&plan, |p| p.set_phase(Phase::Uitvoering)).unwrap();
    hand_over(&mut worker, &mut reader, &plan);
    reader.mark_reviewed_through(&plan, &shown.through).unwrap();
    let texts: Vec<String> = reader.review(&plan).unwrap().lines.into_iter().map(|l| l.text).collect();
    assert_eq!(texts, ["wijzigde de fase in Uitvoering"], "not marked unseen");

    let forged = vec![format!("basis:{}", "ab".repeat(32))];
    assert!(reader.mark_reviewed_through(&plan, &forged).is_err(), "a head the plan lacks");
}
