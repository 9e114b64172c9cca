//! Replicas that edit through the typed API and exchange changes in random orders, with
//! changes delivered one by one and out of causal order, all materialise the same plan and
//! list the same conflicts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use automerge::ReadDoc;
use eenplan_core::DeviceId;
use eenplan_core::clock::ManualClock;
use eenplan_core::plan::{
    self, ActionStatus, ActionUpdate, Compartment, GoalStatus, NewAction, NewGoal, NewMember, NoteKind,
    Phase, Plan, Resolution,
};
use proptest::prelude::*;

const STATUSES: [GoalStatus; 3] = [GoalStatus::Open, GoalStatus::InProgress, GoalStatus::Achieved];
const DATES: [&str; 3] = ["2026-12-01", "2027-01-15", "2027-02-28"];
const WORDS: [&str; 5] = ["afspraak ", "schuld ", "school ", "é ", "🙂 "];

#[derive(Debug, Clone)]
enum Op {
    AddGoal { replica: usize, domain: usize },
    SetGoalStatus { replica: usize, goal: usize, status: usize },
    SetGoalTitle { replica: usize, goal: usize, word: usize },
    AddAction { replica: usize, goal: usize },
    SetActionDue { replica: usize, action: usize, date: usize },
    SetActionStatus { replica: usize, action: usize, done: bool },
    AddMember { replica: usize },
    SetScore { replica: usize, member: usize, domain: usize, score: i64 },
    AddNote { replica: usize, compartment: usize },
    TypeInNote { replica: usize, note: usize, at: usize, delete: usize, word: usize },
    SetPhase { replica: usize, phase: usize },
    ResolveFirstConflict { replica: usize, pick: usize },
    Exchange { from: usize, to: usize, seed: u64 },
}

fn op(replicas: usize) -> impl Strategy<Value = Op> {
    let r = 0..replicas;
    prop_oneof![
        (r.clone(), 0..13usize).prop_map(|(replica, domain)| Op::AddGoal { replica, domain }),
        (r.clone(), any::<usize>(), 0..3usize).prop_map(|(replica, goal, status)| Op::SetGoalStatus {
            replica,
            goal,
            status
        }),
        (r.clone(), any::<usize>(), 0..5usize).prop_map(|(replica, goal, word)| Op::SetGoalTitle {
            replica,
            goal,
            word
        }),
        (r.clone(), any::<usize>()).prop_map(|(replica, goal)| Op::AddAction { replica, goal }),
        (r.clone(), any::<usize>(), 0..3usize).prop_map(|(replica, action, date)| Op::SetActionDue {
            replica,
            action,
            date
        }),
        (r.clone(), any::<usize>(), any::<bool>()).prop_map(|(replica, action, done)| Op::SetActionStatus {
            replica,
            action,
            done
        }),
        r.clone().prop_map(|replica| Op::AddMember { replica }),
        (r.clone(), any::<usize>(), 0..13usize, 1..=5i64)
            .prop_map(|(replica, member, domain, score)| Op::SetScore { replica, member, domain, score }),
        (r.clone(), 0..4usize).prop_map(|(replica, compartment)| Op::AddNote { replica, compartment }),
        (r.clone(), any::<usize>(), any::<usize>(), 0..3usize, 0..5usize)
            .prop_map(|(replica, note, at, delete, word)| Op::TypeInNote { replica, note, at, delete, word }),
        (r.clone(), 0..7usize).prop_map(|(replica, phase)| Op::SetPhase { replica, phase }),
        (r.clone(), 0..2usize).prop_map(|(replica, pick)| Op::ResolveFirstConflict { replica, pick }),
        (r.clone(), r, any::<u64>()).prop_map(|(from, to, seed)| Op::Exchange { from, to, seed }),
    ]
}

fn replicas(n: usize, clock: &ManualClock) -> Vec<Plan> {
    let clock: Arc<ManualClock> = Arc::new(clock.clone());
    let id = eenplan_core::PlanId::random();
    let first = Plan::create(id, DeviceId::from_bytes([1; 16]), "Jansen", None, clock.clone()).unwrap();
    let mut out = Vec::new();
    for i in 1..n {
        let docs = Compartment::ALL.iter().map(|c| (*c, first.doc(*c).unwrap().clone())).collect();
        out.push(
            Plan::from_documents(id, DeviceId::from_bytes([i as u8 + 1; 16]), docs, clock.clone()).unwrap(),
        );
    }
    out.insert(0, first);
    out
}

/// A small deterministic shuffle (xorshift), so that a failing case replays exactly.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

/// Sends every change `from` has and `to` lacks, one bundle per change, in a shuffled order,
/// through the path a sync takes: parsed as its author's bundle, applied to a copy, validated.
fn exchange(plans: &mut [Plan], from: usize, to: usize, seed: u64) {
    if from == to {
        return;
    }
    for compartment in Compartment::ALL {
        let sender = plans[from].doc(compartment).unwrap();
        let mut missing: Vec<(DeviceId, Vec<u8>)> = sender
            .get_changes(&[])
            .into_iter()
            .filter(|c| plans[to].doc(compartment).unwrap().get_change_by_hash(&c.hash()).is_none())
            .map(|c| (DeviceId::from_actor(c.actor_id()).unwrap(), c.raw_bytes().to_vec()))
            .collect();
        shuffle(&mut missing, seed.wrapping_add(compartment as u64).max(1));
        for (author, bundle) in missing {
            let changes = plan::parse_received_changes(compartment, &bundle, author).unwrap();
            plans[to].apply_parsed(compartment, changes).unwrap();
        }
    }
}

fn pick<T: Copy>(items: &[T], index: usize) -> Option<T> {
    (!items.is_empty()).then(|| items[index % items.len()])
}

fn apply(plans: &mut [Plan], op: &Op, clock: &ManualClock) {
    clock.advance_ms(1_000);
    match *op {
        Op::AddGoal { replica, domain } => {
            let domain = eenplan_core::plan::vocab::ZRM_2017_DOMAINS[domain].to_owned();
            plans[replica].add_goal(NewGoal { domain, title: "doel".into() }).unwrap();
        }
        Op::SetGoalStatus { replica, goal, status } => {
            let goals: Vec<_> = plans[replica].view().unwrap().goals.iter().map(|g| g.id).collect();
            if let Some(goal) = pick(&goals, goal) {
                plans[replica].set_goal_status(goal, STATUSES[status]).unwrap();
            }
        }
        Op::SetGoalTitle { replica, goal, word } => {
            let goals: Vec<_> = plans[replica].view().unwrap().goals.iter().map(|g| g.id).collect();
            if let Some(goal) = pick(&goals, goal) {
                plans[replica].set_goal_title(goal, WORDS[word]).unwrap();
            }
        }
        Op::AddAction { replica, goal } => {
            let goals: Vec<_> = plans[replica].view().unwrap().goals.iter().map(|g| g.id).collect();
            if let Some(goal) = pick(&goals, goal) {
                plans[replica]
                    .add_action(NewAction {
                        goal,
                        title: "actie".into(),
                        owner_org: "Wijkteam".into(),
                        owner_user: None,
                        due: None,
                    })
                    .unwrap();
            }
        }
        Op::SetActionDue { replica, action, date } => {
            let actions: Vec<_> = plans[replica].view().unwrap().actions.iter().map(|a| a.id).collect();
            if let Some(action) = pick(&actions, action) {
                let update = ActionUpdate { due: Some(Some(DATES[date].into())), ..Default::default() };
                plans[replica].update_action(action, update).unwrap();
            }
        }
        Op::SetActionStatus { replica, action, done } => {
            let actions: Vec<_> = plans[replica].view().unwrap().actions.iter().map(|a| a.id).collect();
            if let Some(action) = pick(&actions, action) {
                let status = if done { ActionStatus::Done } else { ActionStatus::InProgress };
                plans[replica]
                    .update_action(action, ActionUpdate { status: Some(status), ..Default::default() })
                    .unwrap();
            }
        }
        Op::AddMember { replica } => {
            plans[replica]
                .add_member(NewMember {
                    name: "Kind".into(),
                    relation: "zoon".into(),
                    birth_date: Some("2015-06-01".into()),
                    parental_authority: false,
                })
                .unwrap();
        }
        Op::SetScore { replica, member, domain, score } => {
            let members: Vec<_> = plans[replica].view().unwrap().members.iter().map(|m| m.id).collect();
            if let Some(member) = pick(&members, member) {
                let domain = eenplan_core::plan::vocab::ZRM_2017_DOMAINS[domain];
                plans[replica].set_score(member, domain, "2026-11-22", score).unwrap();
            }
        }
        Op::AddNote { replica, compartment } => {
            plans[replica].add_note(Compartment::ALL[compartment], NoteKind::Note, "begin").unwrap();
        }
        Op::TypeInNote { replica, note, at, delete, word } => {
            let notes: Vec<_> = plans[replica]
                .view()
                .unwrap()
                .notes
                .iter()
                .map(|n| (n.compartment, n.id, n.text.chars().count()))
                .collect();
            if let Some((compartment, id, len)) = pick(&notes, note) {
                let at = at % (len + 1);
                let delete = delete.min(len - at);
                plans[replica].edit_note_text(compartment, id, at, delete, WORDS[word]).unwrap();
            }
        }
        Op::SetPhase { replica, phase } => {
            plans[replica].set_phase(Phase::ALL[phase]).unwrap();
        }
        Op::ResolveFirstConflict { replica, pick } => {
            let conflicts = plans[replica].conflicts().unwrap();
            if let Some(conflict) = conflicts.first() {
                let index = pick % conflict.values.len();
                plans[replica].resolve_conflict(&conflict.id, Resolution::Pick(index)).unwrap();
            }
        }
        Op::Exchange { from, to, seed } => exchange(plans, from, to, seed),
    }
}

fn scenario() -> impl Strategy<Value = (usize, Vec<Op>, u64)> {
    (3..=5usize).prop_flat_map(|n| (Just(n), prop::collection::vec(op(n), 10..60), any::<u64>()))
}

/// 48 scenarios by default; `EENPLAN_FUZZ_CASES=N` runs N.
fn cases() -> u32 {
    std::env::var("EENPLAN_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), .. ProptestConfig::default() })]

    #[test]
    fn replicas_that_exchange_everything_materialise_identical_plans((n, ops, seed) in scenario()) {
        let clock = ManualClock::new(1_790_000_000_000);
        let mut plans = replicas(n, &clock);
        for op in &ops {
            apply(&mut plans, op, &clock);
        }
        // Everyone sends everything to everyone, in a shuffled order of pairs.
        let mut pairs: Vec<(usize, usize)> = (0..n).flat_map(|a| (0..n).map(move |b| (a, b))).filter(|(a, b)| a != b).collect();
        shuffle(&mut pairs, seed.max(1));
        for round in 0..2 {
            for (i, (from, to)) in pairs.iter().enumerate() {
                exchange(&mut plans, *from, *to, seed.wrapping_add((round * 1000 + i) as u64));
            }
        }
        let first = plans[0].view().unwrap();
        let first_conflicts = plans[0].conflicts().unwrap();
        for plan in &plans[1..] {
            prop_assert_eq!(&plan.view().unwrap(), &first);
            prop_assert_eq!(&plan.conflicts().unwrap(), &first_conflicts);
        }
    }
}

#[test]
fn concurrent_status_sets_are_a_conflict_that_settling_removes_everywhere() {
    let clock = ManualClock::new(1_790_000_000_000);
    let mut plans = replicas(3, &clock);
    let goal = plans[0].add_goal(NewGoal { domain: "financiën".into(), title: "Schulden".into() }).unwrap();
    exchange(&mut plans, 0, 1, 7);
    exchange(&mut plans, 0, 2, 9);
    plans[1].set_goal_status(goal, GoalStatus::Achieved).unwrap();
    plans[2].set_goal_status(goal, GoalStatus::Cancelled).unwrap();
    exchange(&mut plans, 1, 0, 3);
    exchange(&mut plans, 2, 0, 5);
    let conflicts = plans[0].conflicts().unwrap();
    assert_eq!(conflicts.len(), 1);
    let conflict = &conflicts[0];
    assert_eq!(conflict.id, format!("basis/goals/{goal}/status"));
    assert_eq!(conflict.label, "doel ‘Schulden’: status");
    let authors: Vec<_> = conflict.values.iter().map(|v| v.author.unwrap()).collect();
    assert!(
        authors.contains(&DeviceId::from_bytes([2; 16])) && authors.contains(&DeviceId::from_bytes([3; 16]))
    );
    assert!(conflict.values.iter().all(|v| v.at_ms == Some(1_790_000_000_000)));

    plans[0].resolve_conflict(&conflict.id, Resolution::Value("in_progress".into())).unwrap();
    for (from, to) in [(0, 1), (0, 2), (1, 2), (2, 1)] {
        exchange(&mut plans, from, to, 11);
    }
    for plan in &plans {
        assert!(plan.conflicts().unwrap().is_empty());
        assert_eq!(plan.view().unwrap().goals[0].status, "in_progress");
    }
}

#[test]
fn settling_with_an_invalid_value_is_refused_like_any_edit() {
    let clock = ManualClock::new(1_790_000_000_000);
    let mut plans = replicas(2, &clock);
    let member = plans[0]
        .add_member(NewMember {
            name: "Sem".into(),
            relation: "zoon".into(),
            birth_date: None,
            parental_authority: false,
        })
        .unwrap();
    exchange(&mut plans, 0, 1, 1);
    plans[0].set_score(member, "huisvesting", "2026-11-01", 2).unwrap();
    plans[1].set_score(member, "huisvesting", "2026-11-01", 4).unwrap();
    exchange(&mut plans, 1, 0, 1);
    let conflict = plans[0].conflicts().unwrap().remove(0);
    assert!(conflict.label.starts_with("ZRM-score van Sem"));
    assert!(plans[0].resolve_conflict(&conflict.id, Resolution::Value("7".into())).is_err());
    assert!(plans[0].resolve_conflict(&conflict.id, Resolution::Pick(5)).is_err());
    assert!(plans[0].resolve_conflict("basis/nothing/here", Resolution::Pick(0)).is_err());
    assert_eq!(plans[0].conflicts().unwrap().len(), 1);
    plans[0].resolve_conflict(&conflict.id, Resolution::Pick(1)).unwrap();
    assert!(plans[0].conflicts().unwrap().is_empty());
}
