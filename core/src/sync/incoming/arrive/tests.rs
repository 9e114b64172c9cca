use std::sync::Arc;

use automerge::Change;

use super::super::super::document_id;
use super::super::super::snapshots::Witness;
use super::{Job, Merged, Refused, SnapshotArrival, merge_plans};
use crate::clock::{Clock, SystemClock};
use crate::ids::{DeviceId, PlanId};
use crate::plan::{Compartment, NoteKind, Plan, PlanError, Refusal};

const WRITER: [u8; 16] = [1; 16];
const RECEIVER: [u8; 16] = [2; 16];

/// What a plan's writer sent: a snapshot of `basis`, its witness, and the bundles after it.
struct Sent {
    plan: PlanId,
    snapshot: Vec<u8>,
    witness: Witness,
    after: Vec<Vec<u8>>,
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// A plan with `notes` notes in its snapshot and `later` single-note bundles after it.
fn sent(seed: u8, notes: usize, later: usize) -> Sent {
    let plan = PlanId::from_bytes([seed; 16]);
    let mut origin = Plan::create(plan, DeviceId::from_bytes(WRITER), "Jansen", None, clock()).unwrap();
    for i in 0..notes {
        origin.add_note(Compartment::Basis, NoteKind::Note, &format!("notitie {i}")).unwrap();
    }
    let doc = origin.doc(Compartment::Basis).unwrap();
    let snapshot = doc.save();
    let document = document_id(plan, Compartment::Basis);
    let witness = Witness::of(document, WRITER, &doc.get_changes(&[])).unwrap();
    let mut after = Vec::new();
    for i in 0..later {
        let before = origin.heads();
        origin.add_note(Compartment::Basis, NoteKind::Note, &format!("later {i}")).unwrap();
        let (_, mut raw) = origin.changes_since(&before).remove(0);
        after.push(raw.remove(0));
    }
    Sent { plan, snapshot, witness, after }
}

fn parse(raw: &[Vec<u8>]) -> Vec<Change> {
    raw.iter().map(|r| Change::from_bytes(r.clone()).unwrap()).collect()
}

/// A new device's job for what `sent` sent, each bundle as it arrived.
fn job(sent: &Sent) -> Job {
    let plan = Plan::from_documents(sent.plan, DeviceId::from_bytes(RECEIVER), Vec::new(), clock()).unwrap();
    Job {
        before: plan.heads(),
        plan,
        snapshots: vec![SnapshotArrival {
            compartment: Compartment::Basis,
            author: WRITER,
            payload: sent.snapshot.clone(),
        }],
        changes: sent.after.iter().map(|c| (Compartment::Basis, parse(std::slice::from_ref(c)))).collect(),
        witnesses: vec![sent.witness.clone()],
    }
}

/// What a merge came to, comparably: every held document's bytes, the refusals, the logs to
/// fetch and what was added.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    docs: Vec<Vec<u8>>,
    refused: Vec<String>,
    history: Vec<Vec<u8>>,
    added: Vec<crate::plan::Added>,
}

fn outcome(merged: &Merged) -> Outcome {
    let plan = &merged.plan;
    Outcome {
        docs: plan.held_compartments().into_iter().map(|c| plan.doc(c).unwrap().save()).collect(),
        refused: merged.refused.iter().map(|r| r.message(plan.id())).collect(),
        history: merged.history.iter().map(|d| d.to_bytes().to_vec()).collect(),
        added: merged.added.clone(),
    }
}

fn notes(plan: &Plan) -> usize {
    plan.view().unwrap().notes.len()
}

#[test]
fn plans_merged_at_once_come_out_exactly_as_merged_one_after_the_other_and_a_bad_snapshot_is_refused_alone() {
    let good: Vec<Sent> = (0..5u8).map(|seed| sent(10 + seed, 20, usize::from(seed % 3))).collect();
    let mut bad = sent(30, 5, 1);
    bad.snapshot = b"no automerge document".to_vec();
    let jobs = || {
        let mut jobs: Vec<Job> = good.iter().map(job).collect();
        jobs.insert(2, job(&bad));
        jobs
    };
    let one_by_one = merge_plans(jobs(), 1);
    let at_once = merge_plans(jobs(), 4);
    assert_eq!(at_once.len(), one_by_one.len());
    for (a, b) in at_once.iter().zip(&one_by_one) {
        assert_eq!(a.plan.id(), b.plan.id(), "in the jobs' order");
        assert_eq!(outcome(a), outcome(b));
    }
    // The good plans landed whole: snapshot and every bundle after it.
    for (merged, sent) in at_once.iter().filter(|m| m.plan.id() != bad.plan).zip(&good) {
        assert!(merged.refused.is_empty(), "{:?}", merged.refused);
        assert_eq!(notes(&merged.plan), 20 + sent.after.len());
    }
    // The bad one is refused with its typed error; the change after it cannot stand without
    // the snapshot's changes, and nothing of the plan is held.
    let refused = &at_once[2];
    assert_eq!(refused.plan.id(), bad.plan);
    assert!(
        matches!(
            refused.refused.as_slice(),
            [
                Refused::Snapshot {
                    author: WRITER,
                    error: PlanError::Refused {
                        compartment: Compartment::Basis,
                        reason: Refusal::Framing(_)
                    }
                },
                Refused::Changes { compartment: Compartment::Basis, .. }
            ]
        ),
        "{:?}",
        refused.refused
    );
    assert!(refused.plan.held_compartments().is_empty() && refused.added.is_empty());
}

#[test]
fn a_snapshot_taken_with_the_changes_after_it_is_still_refused_when_its_witnesses_do_not_vouch_for_it() {
    let mut sent = sent(40, 10, 2);
    // The witness of an older change of the same writer: the snapshot holds changes that no
    // witness accounts for.
    let mut older = Plan::create(sent.plan, DeviceId::from_bytes(WRITER), "Jansen", None, clock()).unwrap();
    older.add_note(Compartment::Basis, NoteKind::Note, "eerder").unwrap();
    let doc = older.doc(Compartment::Basis).unwrap();
    sent.witness = Witness::of(sent.witness.document, WRITER, &doc.get_changes(&[])).unwrap();
    let merged = merge_plans(vec![job(&sent)], 1).remove(0);
    assert!(
        matches!(merged.refused.first(), Some(Refused::Unproven { compartment: Compartment::Basis, .. })),
        "{:?}",
        merged.refused
    );
    assert_eq!(merged.history, vec![sent.witness.document], "its change log is fetched instead");
    // Nothing of it is taken on the snapshot's word, nor the changes that need it.
    assert!(merged.plan.doc(Compartment::Basis).is_err() && merged.added.is_empty());
}

#[test]
fn a_snapshot_that_arrives_alone_keeps_its_own_bytes_and_one_followed_by_changes_does_not() {
    let alone = sent(50, 8, 0);
    let followed = sent(51, 8, 2);
    let merged = merge_plans(vec![job(&alone), job(&followed)], 2);
    let received =
        |m: &Merged| m.added.iter().find(|a| a.compartment == Compartment::Basis).unwrap().saved.clone();
    assert_eq!(received(&merged[0]), Some(alone.snapshot.clone()));
    assert_eq!(received(&merged[1]), None);
    // The bytes kept are the document held.
    let held = merged[0].plan.doc(Compartment::Basis).unwrap();
    assert_eq!(automerge::Automerge::load(&alone.snapshot).unwrap().get_heads(), held.get_heads());
    assert_eq!(notes(&merged[1].plan), 10);
}

#[test]
fn a_snapshot_kept_whole_is_stored_as_received_and_loads_back_as_the_document_held() {
    use crate::keystore::{KdfParams, PassphraseKeyStore};
    // Enough changes that the store keeps the compartment whole instead of as rows.
    let alone = sent(60, 80, 0);
    let merged = merge_plans(vec![job(&alone)], 1).remove(0);
    let added = merged.added.iter().find(|a| a.compartment == Compartment::Basis).unwrap();
    assert!(added.count as u64 >= crate::store::COMPACT_AFTER_CHANGES, "{}", added.count);
    assert!(added.saved.is_some());
    let dir = tempfile::tempdir().unwrap();
    let keystore = PassphraseKeyStore::with_params("geheim", KdfParams::INSECURE_FAST_FOR_TESTS);
    let (mut store, _) = crate::store::Store::create(dir.path(), &keystore).unwrap();
    let header = crate::store::PlanHeader { plan: alone.plan, family: "Jansen".into() };
    store.write(|w| w.append_received(&merged.plan, Some(&header), &merged.added)).unwrap();
    let stored = store.load_plan(alone.plan).unwrap();
    let held = merged.plan.doc(Compartment::Basis).unwrap();
    let (_, doc) = stored.docs.iter().find(|(c, _)| *c == Compartment::Basis).unwrap();
    assert_eq!(doc.get_heads(), held.get_heads());
    assert_eq!(doc.save(), held.save());
}

#[test]
fn a_compartment_new_here_counts_every_change_it_now_holds_as_added() {
    // Counted from the graph's size when nothing was held before: the same as listing them.
    let followed = sent(70, 12, 3);
    let merged = merge_plans(vec![job(&followed)], 1).remove(0);
    let added = merged.added.iter().find(|a| a.compartment == Compartment::Basis).unwrap();
    let held = merged.plan.doc(Compartment::Basis).unwrap();
    assert_eq!(added.count, held.get_changes_meta(&[]).len());
    let snapshot = automerge::Automerge::load(&followed.snapshot).unwrap();
    assert_eq!(added.count, snapshot.get_changes_meta(&[]).len() + 3);
}

#[test]
fn a_compartment_to_be_stored_whole_leaves_its_merge_encoded_as_save_encodes_it() {
    // A snapshot with changes after it, enough to be stored whole: encoded on the merge thread.
    let followed = sent(71, 80, 2);
    let merged = merge_plans(vec![job(&followed)], 1).remove(0);
    let added = merged.added.iter().find(|a| a.compartment == Compartment::Basis).unwrap();
    assert!(added.count as u64 >= crate::store::COMPACT_AFTER_CHANGES, "{}", added.count);
    let held = merged.plan.doc(Compartment::Basis).unwrap();
    assert_eq!(added.saved.as_deref(), Some(held.save().as_slice()));
}
