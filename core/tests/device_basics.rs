//! The device façade end to end on a real on-disk store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use eenplan_core::keystore::{KdfParams, PassphraseKeyStore};
use eenplan_core::plan::{
    ActionUpdate, Compartment, GoalStatus, NewAction, NewGoal, NewMember, NoteKind, ValidationError,
};
use eenplan_core::{CoreError, Device, PlanListEntry};

fn keystore(p: &str) -> PassphraseKeyStore {
    PassphraseKeyStore::with_params(p, KdfParams::INSECURE_FAST_FOR_TESTS)
}

#[test]
fn edits_survive_closing_and_reopening_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let ks = keystore("geheim");
    let plan;
    let goal;
    {
        let mut device = Device::init(dir.path(), &ks).unwrap();
        plan = device.create_plan("Jansen").unwrap();
        let member = device
            .edit(&plan, |p| {
                p.add_member(NewMember {
                    name: "Sanne".into(),
                    relation: "moeder".into(),
                    birth_date: Some("1988-03-14".into()),
                    parental_authority: true,
                })
            })
            .unwrap();
        goal = device
            .edit(&plan, |p| {
                p.add_goal(NewGoal { domain: "financiën".into(), title: "Schulden in beeld".into() })
            })
            .unwrap();
        device.edit(&plan, |p| p.set_goal_status(goal, GoalStatus::InProgress)).unwrap();
        device.edit(&plan, |p| p.set_score(member, "financiën", "2026-11-01", 2)).unwrap();
        let action = device
            .edit(&plan, |p| {
                p.add_action(NewAction {
                    goal,
                    title: "Budgetcoach inschakelen".into(),
                    owner_org: "Wijkteam Noord".into(),
                    owner_user: None,
                    due: Some("2026-12-01".into()),
                })
            })
            .unwrap();
        device
            .edit(&plan, |p| p.update_action(action, ActionUpdate { due: Some(None), ..Default::default() }))
            .unwrap();
        device.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::Note, "GGZ-traject loopt")).unwrap();
    }
    let mut device = Device::open(dir.path(), &ks).unwrap();
    let view = device.read(&plan).unwrap();
    assert_eq!(view.family, "Jansen");
    assert_eq!(view.goals[0].status, "in_progress");
    assert_eq!(view.scores[0].score, 2);
    assert_eq!(view.actions[0].due, None);
    assert_eq!(view.notes[0].text, "GGZ-traject loopt");
    assert_eq!(device.list_plans().unwrap().len(), 1);
    assert!(matches!(&device.list_plans().unwrap()[0], PlanListEntry::Ok(s) if s.family == "Jansen"));
}

#[test]
fn invalid_input_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::init(dir.path(), &keystore("x")).unwrap();
    let plan = device.create_plan("De Vries").unwrap();
    let before = device.read(&plan).unwrap();
    let err = device
        .edit(&plan, |p| p.add_goal(NewGoal { domain: "astrologie".into(), title: "t".into() }))
        .unwrap_err();
    assert!(matches!(
        err,
        CoreError::Plan(eenplan_core::plan::PlanError::Invalid(ValidationError::UnknownDomain(_)))
    ));
    assert_eq!(device.read(&plan).unwrap(), before);
    assert_eq!(device.pending_changes().unwrap(), 4, "only the four creation changes are pending");
}

#[test]
fn a_plan_larger_than_the_decoder_buffers_travels_through_a_transfer_file() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = Device::init(a_dir.path(), &keystore("a")).unwrap();
    let mut b = Device::init(b_dir.path(), &keystore("b")).unwrap();
    let plan = a.create_plan("Groot").unwrap();
    for i in 0..40 {
        // Distinct text per note so that automerge's compression cannot shrink it below 4 KiB.
        let text: String = (0..60).map(|j| format!("{:x} ", (i * 7919 + j * 104_729) % 65_521)).collect();
        a.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::HomeVisit, &text)).unwrap();
    }
    let file = a.export_changes(&plan, "overdracht").unwrap();
    let contents = eenplan_core::transfer::open(&file, "overdracht").unwrap();
    let basis = contents.docs.iter().find(|(c, _)| *c == Compartment::Basis).unwrap();
    assert!(basis.1.len() > 4096, "basis is only {} bytes", basis.1.len());
    let report = b.import_changes(&file, "overdracht").unwrap();
    assert!(report.new_plan);
    assert_eq!(b.read(&plan).unwrap(), a.read(&plan).unwrap());
    assert_eq!(b.pending_changes().unwrap(), 0, "received changes are not this device's to push");
}
