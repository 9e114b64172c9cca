//! Merging what plans received in a pass: the pure automerge work (loading snapshots, checking
//! them against their witnesses, applying changes, the content check), one plan per job, on
//! several of the device's cores. Nothing here reads or writes the store, and every plan is a
//! copy owned by its job: received documents of different plans share nothing, so merging
//! them at once gives what merging them one after the other gives.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use automerge::{Automerge, Change, ChangeHash, ReadDoc};
use eenplan_protocol::DocumentId;
use eenplan_protocol::api::hex;

use super::super::document_id;
use super::super::snapshots::{Witness, check_snapshot};
use crate::ids::PlanId;
use crate::plan::{Added, Compartment, Plan, PlanError};

/// Plans merged at once, at most, whatever the device's cores: each holds its documents and
/// a received one being loaded in memory.
const MAX_THREADS: usize = 8;

/// A received snapshot, verified and opened but not yet parsed: loaded by its plan's job.
#[derive(Debug)]
pub(super) struct SnapshotArrival {
    pub compartment: Compartment,
    pub author: [u8; 16],
    pub payload: Vec<u8>,
}

/// One plan's merge: the plan (taken out of the device), its heads before, what arrived for
/// it, and the witnesses of its snapshots (an erasure's base witness among them).
#[derive(Debug)]
pub(super) struct Job {
    pub plan: Plan,
    pub before: [Vec<ChangeHash>; 4],
    pub snapshots: Vec<SnapshotArrival>,
    pub changes: Vec<(Compartment, Vec<Change>)>,
    pub witnesses: Vec<Witness>,
}

/// Why something a plan received was not taken.
#[derive(Debug)]
pub(super) enum Refused {
    /// The snapshot did not load, or is not this plan's document within the limits.
    Snapshot { author: [u8; 16], error: PlanError },
    /// The snapshot is not what its witnesses vouch for, or did not merge: its document's
    /// change log is fetched instead.
    Unproven { compartment: Compartment, author: [u8; 16], why: String },
    /// Changes of one bundle (or, when they came alone, of several) that did not apply.
    Changes { compartment: Compartment, error: PlanError },
}

impl Refused {
    /// What the sync report says about it.
    pub fn message(&self, plan: PlanId) -> String {
        match self {
            Refused::Snapshot { author, error } => format!("snapshot from {}: {error}", hex(author)),
            Refused::Unproven { compartment, author, why } => format!(
                "snapshot of plan {plan} {compartment} from {}: {why}; its change log is fetched instead",
                hex(author)
            ),
            Refused::Changes { compartment, error } => {
                format!("changes for plan {plan} {compartment}: {error}")
            }
        }
    }
}

/// What merging one plan's arrivals came to.
#[derive(Debug)]
pub(super) struct Merged {
    pub plan: Plan,
    pub refused: Vec<Refused>,
    /// Documents whose whole change log is to be fetched.
    pub history: Vec<DocumentId>,
    /// What each compartment gained; one to be stored whole carries its encoded document
    /// ([`Added::saved`]).
    pub added: Vec<Added>,
}

/// Merges every job, on up to `threads` threads, each taking the next plan when it is done
/// with one (plans differ in size). The results come in the jobs' order.
pub(super) fn merge_plans(jobs: Vec<Job>, threads: usize) -> Vec<Merged> {
    let threads = threads.min(jobs.len());
    if threads <= 1 {
        return jobs.into_iter().map(merge_plan).collect();
    }
    let slots: Vec<Mutex<Option<Job>>> = jobs.into_iter().map(|job| Mutex::new(Some(job))).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = slots.get(index) else { break };
            // Each index is taken once, so each slot by one thread; a poisoned lock still
            // holds its job.
            let job = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(job) = job {
                done.push((index, merge_plan(job)));
            }
        }
        done
    };
    let mut merged: Vec<(usize, Merged)> = std::thread::scope(|scope| {
        let mut workers = Vec::new();
        let mut here = Vec::new();
        for _ in 0..threads {
            match std::thread::Builder::new().spawn_scoped(scope, work) {
                Ok(worker) => workers.push(worker),
                // A phone short of threads or memory: this thread takes the jobs no worker
                // took (the shared index hands each job out once), instead of failing the sync.
                Err(_) => {
                    here = work();
                    break;
                }
            }
        }
        // automerge's panics are caught inside each job (`plan::guarded`); any other panic
        // goes on as it would have without threads.
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap_or_else(|payload| std::panic::resume_unwind(payload)))
            .chain(here)
            .collect()
    });
    merged.sort_by_key(|(index, _)| *index);
    merged.into_iter().map(|(_, m)| m).collect()
}

/// How many threads merge plans: the device's cores, bounded.
pub(super) fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get).min(MAX_THREADS)
}

/// One plan: its snapshots (each with the changes of its compartment that follow it, checked
/// once together), then the changes of compartments without a snapshot.
fn merge_plan(job: Job) -> Merged {
    let Job { mut plan, before, snapshots, changes, witnesses } = job;
    let (mut refused, mut history) = (Vec::new(), Vec::new());
    let mut changes = by_compartment(changes);
    let mut kept: Vec<(Compartment, Vec<u8>)> = Vec::new();
    for compartment in snapshot_compartments(&snapshots) {
        let document = document_id(plan.id(), compartment);
        let proof: Vec<&Witness> = witnesses.iter().filter(|w| w.document == document).collect();
        let of_compartment: Vec<&SnapshotArrival> =
            snapshots.iter().filter(|s| s.compartment == compartment).collect();
        let following = match changes.iter().position(|(c, _)| *c == compartment) {
            Some(at) => changes.remove(at).1,
            None => Vec::new(),
        };
        if let [snapshot] = of_compartment.as_slice() {
            let whole = plan.doc(compartment).is_err() && following.is_empty();
            if take_at_once(&mut plan, snapshot, &following, &proof) {
                if whole {
                    kept.push((compartment, snapshot.payload.clone()));
                }
                continue;
            }
        }
        for snapshot in of_compartment {
            take_snapshot(&mut plan, snapshot, &proof, &mut refused, &mut history);
        }
        refused.extend(merge_bundles(&mut plan, vec![(compartment, following)]));
    }
    refused.extend(merge_bundles(&mut plan, changes));
    for compartment in plan.held_compartments() {
        // Changes whose dependencies never came wait inside automerge, in memory only: the
        // document's whole log is fetched again rather than lose them.
        if plan.doc(compartment).is_ok_and(|doc| !doc.get_missing_deps(&[]).is_empty()) {
            history.push(document_id(plan.id(), compartment));
        }
    }
    let mut added = plan.added_since(&before);
    for added in &mut added {
        added.saved = kept.iter().position(|(c, _)| *c == added.compartment).map(|at| kept.remove(at).1);
        // Enough changes that the store keeps the document whole whatever rows it had
        // (`StoreWriter::append_received`): encoded here, on one of the merge threads, not
        // in the store's one transaction after every plan merged.
        if added.saved.is_none() && added.count as u64 >= crate::store::COMPACT_AFTER_CHANGES {
            added.saved = plan.doc(added.compartment).ok().map(Automerge::save);
        }
    }
    Merged { plan, refused, history, added }
}

/// A compartment's one snapshot and the changes that follow it, taken in one go: the
/// snapshot's changes checked against its witnesses, then the changes applied to it and the
/// result checked once. `false` (nothing changed) if any of it fails: the caller then takes
/// them one by one, to take what is good and say exactly what was not.
fn take_at_once(
    plan: &mut Plan,
    snapshot: &SnapshotArrival,
    following: &[Vec<Change>],
    proof: &[&Witness],
) -> bool {
    let compartment = snapshot.compartment;
    let Ok(loaded) = crate::plan::load_unchecked(&snapshot.payload, compartment) else { return false };
    if check_snapshot(loaded.doc(), compartment, proof).is_err() {
        return false;
    }
    plan.take_loaded(compartment, loaded, following.concat()).is_ok()
}

/// One snapshot alone: loaded and checked, checked against its witnesses, then merged.
fn take_snapshot(
    plan: &mut Plan,
    snapshot: &SnapshotArrival,
    proof: &[&Witness],
    refused: &mut Vec<Refused>,
    history: &mut Vec<DocumentId>,
) {
    let (compartment, author) = (snapshot.compartment, snapshot.author);
    let doc = match crate::plan::load_received(&snapshot.payload, compartment, plan.id()) {
        Ok(doc) => doc,
        Err(error) => return refused.push(Refused::Snapshot { author, error }),
    };
    // Whole when the compartment is new here, merged into a copy otherwise; checked before it
    // replaces anything (`Plan::merge_received`).
    let checked = check_snapshot(doc.doc(), compartment, proof)
        .and_then(|()| plan.merge_received(compartment, doc).map_err(|e| e.to_string()));
    if let Err(why) = checked {
        refused.push(Refused::Unproven { compartment, author, why });
        history.push(document_id(plan.id(), compartment));
    }
}

/// The compartments with a snapshot, in the order their first snapshot arrived.
fn snapshot_compartments(snapshots: &[SnapshotArrival]) -> Vec<Compartment> {
    let mut out = Vec::new();
    for snapshot in snapshots {
        if !out.contains(&snapshot.compartment) {
            out.push(snapshot.compartment);
        }
    }
    out
}

/// Applies received bundles' changes to a plan; returns why any were refused.
///
/// All of a compartment's bundles go in at once: one copy and one validation of the document
/// instead of one per bundle (a new device receives dozens). If that fails, they go in one
/// bundle at a time, so a bad bundle cannot take the others down with it.
pub(super) fn merge_bundles(plan: &mut Plan, batches: Vec<(Compartment, Vec<Vec<Change>>)>) -> Vec<Refused> {
    let mut refused = Vec::new();
    for (compartment, bundles) in batches {
        if bundles.len() > 1 && plan.apply_parsed(compartment, bundles.concat()).is_ok() {
            continue;
        }
        for changes in bundles {
            if let Err(error) = plan.apply_parsed(compartment, changes) {
                refused.push(Refused::Changes { compartment, error });
            }
        }
    }
    refused
}

/// The bundles' changes grouped by compartment, in the order they arrived.
pub(super) fn by_compartment<T>(batches: Vec<(Compartment, Vec<T>)>) -> Vec<(Compartment, Vec<Vec<T>>)> {
    let mut out: Vec<(Compartment, Vec<Vec<T>>)> = Vec::new();
    for (compartment, changes) in batches {
        match out.iter_mut().find(|(c, _)| *c == compartment) {
            Some((_, bundles)) => bundles.push(changes),
            None => out.push((compartment, vec![changes])),
        }
    }
    out
}

#[cfg(test)]
mod tests;
