#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ChangeHash, ROOT, ReadDoc};

use super::{History, Mark, history};
use crate::clock::ManualClock;
use crate::ids::{DeviceId, PlanId};
use crate::plan::{
    ActionStatus, ActionUpdate, Compartment, NewAction, NewGoal, NewMember, NoteKind, Phase, Plan,
};

const START_MS: i64 = 1_800_000_000_000;

/// The regisseur's plan and a worker's copy of it, each with its own actor, on one clock.
struct Pair {
    clock: Arc<ManualClock>,
    regisseur: Plan,
    worker: Plan,
}

fn device(n: u8) -> DeviceId {
    DeviceId::from_bytes([n; 16])
}

impl Pair {
    fn new() -> Pair {
        let clock = Arc::new(ManualClock::new(START_MS));
        let id = PlanId::random();
        let regisseur = Plan::create(id, device(1), "Jansen", None, clock.clone()).unwrap();
        let worker = Self::copy(&regisseur, device(2), &clock, &Compartment::ALL);
        Pair { clock, regisseur, worker }
    }

    fn copy(plan: &Plan, author: DeviceId, clock: &Arc<ManualClock>, held: &[Compartment]) -> Plan {
        let docs = held.iter().map(|c| (*c, plan.doc(*c).unwrap().clone())).collect();
        Plan::from_documents(plan.id(), author, docs, clock.clone()).unwrap()
    }

    /// The worker's changes since `before` reach the regisseur.
    fn deliver(&mut self, before: &[Vec<ChangeHash>; 4]) {
        for (compartment, changes) in self.worker.changes_since(before) {
            self.regisseur.apply_changes(compartment, &changes).unwrap();
        }
    }

    /// The worker edits (one change per call, a minute apart), and the regisseur receives it.
    fn worker_does<T>(&mut self, edit: impl FnOnce(&mut Plan) -> T) -> T {
        self.clock.advance_ms(60_000);
        let before = self.worker.heads();
        let out = edit(&mut self.worker);
        self.deliver(&before);
        out
    }

    fn review_since(&self, marked: &[Vec<ChangeHash>; 4]) -> Vec<String> {
        let History { lines, .. } = history(&self.regisseur, marked, 500).unwrap();
        lines.into_iter().map(|l| l.text).collect()
    }
}

fn goal(title: &str) -> NewGoal {
    NewGoal { domain: "financiën".into(), title: title.into() }
}

#[test]
fn typing_a_note_keystroke_by_keystroke_is_one_line_with_the_time_of_the_last_keystroke() {
    let mut pair = Pair::new();
    let marked = pair.regisseur.heads();
    let note = pair.worker_does(|p| p.add_note(Compartment::Zorg, NoteKind::Note, "M").unwrap());
    for (i, ch) in "oeder vertelt".chars().enumerate() {
        pair.worker_does(|p| p.edit_note_text(Compartment::Zorg, note, i + 1, 0, &ch.to_string()).unwrap());
    }
    let History { lines, left_out } = history(&pair.regisseur, &marked, 500).unwrap();
    assert_eq!(left_out, 0);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0].text, "schreef een notitie (Zorg)");
    assert_eq!(lines[0].changes, 14);
    assert_eq!(lines[0].at_ms, START_MS + 14 * 60_000, "the time of the last keystroke");
    assert_eq!(lines[0].entity, Some(note));
    assert_eq!(lines[0].device, device(2).to_string());

    // Typing later, after another edit by the same writer, is a line of its own.
    pair.worker_does(|p| p.set_phase(Phase::Uitvoering).unwrap());
    pair.worker_does(|p| p.edit_note_text(Compartment::Zorg, note, 0, 0, "De ").unwrap());
    pair.worker_does(|p| p.edit_note_text(Compartment::Zorg, note, 3, 0, "m").unwrap());
    assert_eq!(
        pair.review_since(&marked)[1..],
        ["wijzigde de fase in Uitvoering".to_owned(), "schreef in notitie (Zorg)".to_owned()]
    );
}

#[test]
fn lines_say_what_changed_in_dutch_with_titles_as_they_are_now_and_the_values_each_change_set() {
    let mut pair = Pair::new();
    let member = pair
        .regisseur
        .add_member(NewMember {
            name: "Jan".into(),
            relation: "vader".into(),
            birth_date: None,
            parental_authority: true,
        })
        .unwrap();
    pair.worker = Pair::copy(&pair.regisseur, device(2), &pair.clock, &Compartment::ALL);
    let marked = pair.regisseur.heads();
    let g = pair.worker_does(|p| p.add_goal(goal("Schulden in beeld")).unwrap());
    let a = pair.worker_does(|p| {
        p.add_action(NewAction {
            goal: g,
            title: "Huur betalen".into(),
            owner_org: "Wijkteam Noord".into(),
            owner_user: None,
            due: None,
        })
        .unwrap()
    });
    pair.worker_does(|p| {
        p.update_action(a, ActionUpdate { status: Some(ActionStatus::InProgress), ..Default::default() })
            .unwrap()
    });
    pair.worker_does(|p| p.set_score(member, "financiën", "2026-12-01", 3).unwrap());
    pair.worker_does(|p| p.set_phase(Phase::Uitvoering).unwrap());
    pair.worker_does(|p| p.set_goal_title(g, "Schulden op orde").unwrap());
    pair.worker_does(|p| p.add_note(Compartment::Basis, NoteKind::HomeVisit, "Rustig bezoek").unwrap());
    pair.worker_does(|p| {
        p.update_action(a, ActionUpdate { status: Some(ActionStatus::Done), ..Default::default() }).unwrap()
    });
    assert_eq!(
        pair.review_since(&marked),
        [
            "voegde doel ‘Schulden op orde’ toe (Financiën)",
            "voegde actie ‘Huur betalen’ toe",
            "zette de status van actie ‘Huur betalen’ op Bezig",
            "gaf Jan een ZRM-score 3 voor Financiën op 2026-12-01",
            "wijzigde de fase in Uitvoering",
            "wijzigde de titel van doel ‘Schulden op orde’",
            "schreef een verslag van een huisbezoek (Basis)",
            "zette de status van actie ‘Huur betalen’ op Gedaan",
        ]
    );
}

#[test]
fn the_regisseurs_own_changes_and_those_before_the_mark_are_left_out() {
    let mut pair = Pair::new();
    pair.worker_does(|p| p.add_goal(goal("Voor de markering")).unwrap());
    let marked = pair.regisseur.heads();
    pair.regisseur.add_goal(goal("Van de regisseur zelf")).unwrap();
    pair.worker_does(|p| p.add_goal(goal("Na de markering")).unwrap());
    assert_eq!(pair.review_since(&marked), ["voegde doel ‘Na de markering’ toe (Financiën)"]);
    // Never marked: everything since the plan's start, the plan's creation by the regisseur
    // being its own and left out.
    assert_eq!(
        pair.review_since(&Default::default()),
        ["voegde doel ‘Voor de markering’ toe (Financiën)", "voegde doel ‘Na de markering’ toe (Financiën)"]
    );
}

#[test]
fn a_received_change_with_a_key_the_layout_does_not_know_is_a_plain_line_not_an_error() {
    let mut pair = Pair::new();
    let marked = pair.regisseur.heads();
    let g = pair.worker_does(|p| p.add_goal(goal("Schulden in beeld")).unwrap());
    pair.worker_does(|p| {
        let doc = p.doc_mut(Compartment::Basis).unwrap();
        let goals = doc.get(ROOT, "goals").unwrap().unwrap().1;
        let goal_obj = doc.get(&goals, g.to_string()).unwrap().unwrap().1;
        let mut tx = doc.transaction();
        tx.put(&goal_obj, "kleur", "rood").unwrap();
        tx.put(ROOT, "iets_nieuws", 7).unwrap();
        tx.put(ROOT, "evaluation_1", "2026-12-01").unwrap();
        let meeting = tx.put_object(ROOT, "meeting_1", automerge::ObjType::Map).unwrap();
        tx.put(&meeting, "datum", "2026-12-02").unwrap();
        tx.commit_with(CommitOptions::default().with_time(START_MS + 10 * 60_000));
    });
    let lines = pair.review_since(&marked);
    assert_eq!(
        lines[1..],
        [
            "wijzigde goals/".to_owned() + &g.to_string() + "/kleur",
            "wijzigde iets_nieuws".to_owned(),
            "plande een evaluatie".to_owned(),
            "legde een casusoverleg vast".to_owned(),
        ]
    );
}

#[test]
fn a_compartment_the_plan_does_not_hold_is_not_listed() {
    let mut pair = Pair::new();
    let marked = pair.regisseur.heads();
    pair.worker_does(|p| p.add_note(Compartment::Zorg, NoteKind::Note, "Over de GGZ").unwrap());
    pair.worker_does(|p| p.add_note(Compartment::Basis, NoteKind::Note, "Voor iedereen").unwrap());
    let school = Pair::copy(&pair.regisseur, device(3), &pair.clock, &[Compartment::Basis]);
    let History { lines, .. } = history(&school, &marked, 500).unwrap();
    let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["schreef een notitie (Basis)"]);
}

#[test]
fn the_newest_lines_are_kept_and_the_older_ones_counted() {
    let mut pair = Pair::new();
    let marked = pair.regisseur.heads();
    for i in 0..5 {
        pair.worker_does(|p| p.add_goal(goal(&format!("Doel {i}"))).unwrap());
    }
    let History { lines, left_out } = history(&pair.regisseur, &marked, 2).unwrap();
    assert_eq!(left_out, 3);
    let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["voegde doel ‘Doel 3’ toe (Financiën)", "voegde doel ‘Doel 4’ toe (Financiën)"]);
}

#[test]
fn a_mark_round_trips_and_a_malformed_one_is_refused() {
    let pair = Pair::new();
    let heads = pair.regisseur.heads()[0].clone();
    let mark = Mark { at_ms: START_MS, heads };
    assert_eq!(Mark::decode(&mark.encode()).unwrap(), mark);
    assert!(Mark::decode(&[0; 7]).is_err());
    assert!(Mark::decode(&[0; 9]).is_err());
}
