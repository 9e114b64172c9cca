//! Inputs that made automerge 0.12 panic, found by the properties in `fuzz.rs`, kept as they
//! were found (`tests/data/automerge-crashers/`, one directory each, named after the panic's
//! place in automerge's source). Each must now be a typed refusal that changes nothing.

use std::path::{Path, PathBuf};

use automerge::Automerge;
use eenplan_core::plan::{Compartment, Plan, PlanError, Refusal};
use eenplan_core::{DeviceId, PlanId};

use crate::fixture::{self, Seen, check_outcome, fixture, receive_changes, receive_document, snapshot};

fn crashers() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/automerge-crashers");
    let mut out: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    out.sort();
    out
}

/// The plan every crasher was found in (`fixture.rs`).
fn plan_id() -> PlanId {
    fixture().plan
}

fn assert_refused(name: &str, outcome: &Result<(), PlanError>) {
    assert!(
        matches!(
            outcome,
            Err(PlanError::Refused { reason: Refusal::AutomergePanicked { .. } | Refusal::Automerge(_), .. })
        ),
        "{name}: {outcome:?}"
    );
}

fn replay_bundle(dir: &Path) -> (Plan, Result<(), PlanError>, Seen) {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let compartment: Compartment = read("compartment").parse().unwrap();
    let author: DeviceId = read("author").parse().unwrap();
    let held = std::fs::read(dir.join("held.automerge")).ok();
    let docs = held.iter().map(|saved| (compartment, Automerge::load(saved).unwrap())).collect();
    let mut receiver =
        Plan::from_documents(plan_id(), fixture::receiver_id(), docs, fixture::clock()).unwrap();
    let before = snapshot(&receiver);
    let bundle = std::fs::read(dir.join("bundle.bin")).unwrap();
    let outcome = receive_changes(&mut receiver, compartment, &bundle, author);
    (receiver, outcome, before)
}

#[test]
fn every_kept_automerge_crasher_is_a_typed_refusal_that_changes_nothing() {
    let crashers = crashers();
    assert!(crashers.len() >= 10, "the crashers are missing: {crashers:?}");
    for dir in crashers {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if dir.join("snapshot.bin").exists() {
            let bytes = std::fs::read(dir.join("snapshot.bin")).unwrap();
            for compartment in Compartment::ALL {
                let mut receiver = fixture().receiver(compartment, 0);
                let before = snapshot(&receiver);
                let outcome = receive_document(&mut receiver, compartment, &bytes);
                assert_refused(&name, &outcome);
                check_outcome(&receiver, &before, &outcome);
            }
        } else {
            let (receiver, outcome, before) = replay_bundle(&dir);
            assert_refused(&name, &outcome);
            check_outcome(&receiver, &before, &outcome);
        }
    }
}
