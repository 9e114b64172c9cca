//! The working cycle's records: bounds, a decision's action in the same transaction, the
//! adopted version read as it was, and received records that break the layout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT};

use super::{DecisionAction, MAX_ATTENDEES, NewDecision, NewMeeting};
use crate::clock::ManualClock;
use crate::ids::{DeviceId, EntityId, PlanId};
use crate::plan::{Compartment, NewGoal, Plan, PlanError, ValidationError};

fn plan() -> (Plan, EntityId) {
    let clock = Arc::new(ManualClock::new(1_780_000_000_000));
    let mut plan =
        Plan::create(PlanId::random(), DeviceId::from_signing_public_key(&[7; 32]), "Jansen", None, clock)
            .unwrap();
    let goal =
        plan.add_goal(NewGoal { domain: "financiën".into(), title: "Schulden op orde".into() }).unwrap();
    (plan, goal)
}

fn decision_action(goal: EntityId) -> DecisionAction {
    DecisionAction { goal, owner_user: 4, owner_org: "Wijkteam".into(), due: Some("2026-12-10".into()) }
}

#[test]
fn a_decision_with_an_owner_becomes_an_action_in_the_same_change_as_the_meeting() {
    let (mut plan, goal) = plan();
    let before = plan.doc(Compartment::Basis).unwrap().get_changes(&[]).len();
    let meeting = NewMeeting {
        date: "2026-12-03".into(),
        attendees: vec![4, 5],
        decisions: vec![
            NewDecision { text: "Budgetcoach inzetten".into(), action: Some(decision_action(goal)) },
            NewDecision { text: "Over een maand opnieuw bespreken.".into(), action: None },
        ],
    };
    plan.add_meeting(meeting).unwrap();
    assert_eq!(plan.doc(Compartment::Basis).unwrap().get_changes(&[]).len(), before + 1, "one change");
    let view = plan.view().unwrap();
    let action = &view.actions[0];
    assert_eq!(
        (action.title.as_str(), action.owner_user, action.due.as_deref()),
        ("Budgetcoach inzetten", Some(4), Some("2026-12-10"))
    );
    assert_eq!(view.meetings[0].decisions[0].action, Some(action.id));
    assert_eq!(view.meetings[0].decisions[1].action, None);
}

#[test]
fn a_meeting_that_breaks_a_rule_writes_nothing_not_even_its_actions() {
    let (mut plan, goal) = plan();
    let heads = plan.heads();
    let unknown_goal = NewDecision { text: "Iets".into(), action: Some(decision_action(EntityId::random())) };
    let bad_due = NewDecision {
        text: "Iets".into(),
        action: Some(DecisionAction { due: Some("volgende week".into()), ..decision_action(goal) }),
    };
    for decisions in [vec![unknown_goal], vec![bad_due]] {
        let meeting = NewMeeting { date: "2026-12-03".into(), attendees: vec![1], decisions };
        assert!(plan.add_meeting(meeting).is_err());
    }
    let crowd =
        NewMeeting { date: "2026-12-03".into(), attendees: vec![1; MAX_ATTENDEES + 1], decisions: vec![] };
    assert!(matches!(plan.add_meeting(crowd), Err(PlanError::Invalid(ValidationError::TooMany { .. }))));
    assert_eq!(plan.heads(), heads);
    assert!(plan.view().unwrap().actions.is_empty());
}

#[test]
fn evaluations_are_dated_and_can_be_marked_held() {
    let (mut plan, _) = plan();
    let later = plan.add_evaluation("2027-03-01").unwrap();
    let sooner = plan.add_evaluation("2027-01-15").unwrap();
    assert!(plan.add_evaluation("1 maart").is_err());
    plan.mark_evaluation_held(sooner).unwrap();
    let view = plan.view().unwrap();
    let listed: Vec<(EntityId, bool)> = view.evaluations.iter().map(|e| (e.id, e.held)).collect();
    assert_eq!(listed, [(sooner, true), (later, false)]);
    assert!(plan.mark_evaluation_held(EntityId::random()).is_err());
}

#[test]
fn the_plan_at_adopted_heads_reads_as_it_was_and_unknown_heads_read_as_not_yet_here() {
    let (mut plan, goal) = plan();
    let heads = vec![(Compartment::Basis, plan.heads()[0].clone())];
    plan.set_goal_title(goal, "Schulden afbetalen").unwrap();
    let past = plan.at_heads(&heads).unwrap().unwrap();
    assert_eq!(past.view().unwrap().goals[0].title, "Schulden op orde");
    assert_eq!(plan.view().unwrap().goals[0].title, "Schulden afbetalen");
    let unknown = vec![(Compartment::Basis, vec![automerge::ChangeHash([9; 32])])];
    assert!(plan.at_heads(&unknown).unwrap().is_none());
}

#[test]
fn a_received_adoption_record_with_fields_of_the_wrong_type_breaks_the_layout_check() {
    let (mut plan, _) = plan();
    let doc = plan.doc_mut(Compartment::Basis).unwrap();
    let mut tx = doc.transaction();
    let record = tx.put_object(ROOT, format!("adoption_{}", EntityId::random()), ObjType::Map).unwrap();
    tx.put(&record, "version", "twee").unwrap();
    tx.commit();
    let doc = plan.doc(Compartment::Basis).unwrap();
    assert!(crate::plan::view::check_layout(doc, Compartment::Basis).is_err());
    assert!(plan.adoption_records().is_err());
}
