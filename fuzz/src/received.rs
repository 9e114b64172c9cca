//! Received automerge input through the core's one boundary (`eenplan_core::plan`'s
//! `parse_received_changes`, `parse_change`, `load_received_document`, `Plan::apply_parsed`,
//! `Plan::merge_document`, then the read model and the conflict list): what `received_automerge`
//! feeds, and the plan it feeds it to.
//!
//! An input's first byte says what the rest is: bits 0–1 the compartment, bit 4 whether to
//! recompute each chunk's checksum first (as anyone crafting bytes can: without it a mutated
//! snapshot rarely gets past automerge's checksum into its parsers), bits 2–3 the path:
//!
//! | bits 2–3 | the rest is | received by |
//! |---|---|---|
//! | 0 | a `Changes` bundle's payload signed by the plan's author | a device holding the base plan |
//! | 1 | a snapshot (`save()`) | a device holding the base plan |
//! | 2 | one change, any author (`Plan::apply_changes`) | a device holding the base plan |
//! | 3 | a `Changes` bundle's payload signed by the plan's author | a device holding nothing of that compartment yet |
//!
//! What must hold: no panic escapes (a panic inside automerge is a refusal); a refusal leaves
//! the receiving plan exactly as it was; an accepted input leaves a plan that materialises.

use std::sync::{Arc, LazyLock, Once};

use automerge::{Automerge, ChangeHash};
use eenplan_core::clock::{Clock, ManualClock};
use eenplan_core::plan::{self, Compartment, NewGoal, NewMember, NoteKind, Phase, Plan, PlanError};
use eenplan_core::{DeviceId, PlanId};

/// Set (to anything) to keep libFuzzer's panic hook, which aborts at every panic, also the
/// ones the boundary catches: that hunts for new automerge crashers to keep as regression
/// tests (`core/tests/data/automerge-crashers/`). Unset, a caught panic is a refusal like any
/// other and only a panic that escapes the boundary is a crash.
pub const HUNT_AUTOMERGE_PANICS: &str = "EENPLAN_FUZZ_AUTOMERGE_PANICS";

/// The device that wrote the plan, and signs every bundle the target receives.
pub fn author() -> DeviceId {
    DeviceId::from_bytes([1; 16])
}

pub struct Fixture {
    pub plan: PlanId,
    /// The base plan every receiver holds: the same in every run.
    pub base: Vec<(Compartment, Automerge)>,
    /// Per compartment, the author's changes made after the base (what it has not seen yet).
    pub new_changes: Vec<(Compartment, Vec<Vec<u8>>)>,
    /// Per compartment, every change of the base, oldest first.
    pub base_changes: Vec<(Compartment, Vec<Vec<u8>>)>,
    /// Per compartment, the whole document, saved.
    pub saved: Vec<(Compartment, Vec<u8>)>,
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: LazyLock<Fixture> = LazyLock::new(build);
    &FIXTURE
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(ManualClock::new(1_790_000_000_000))
}

fn build() -> Fixture {
    let id = PlanId::from_bytes([0x5e; 16]);
    let fail = |e: PlanError| -> ! { panic!("building the fuzz fixture: {e}") };
    let mut plan = Plan::create(id, author(), "Jansen", None, clock()).unwrap_or_else(|e| fail(e));
    let member = NewMember {
        name: "Sem".into(),
        relation: "zoon".into(),
        birth_date: Some("2015-06-01".into()),
        parental_authority: false,
    };
    // The base holds nothing random (entity ids are), so a crash input found in one run
    // replays against the same base in any other.
    plan.set_family_name("Jansen-de Vries").unwrap_or_else(|e| fail(e));
    let base: Vec<(Compartment, Automerge)> =
        Compartment::ALL.iter().filter_map(|c| Some((*c, plan.doc(*c).ok()?.clone()))).collect();
    let heads = plan.heads();
    plan.add_member(member).unwrap_or_else(|e| fail(e));
    plan.add_goal(NewGoal { domain: "financiën".into(), title: "Schulden in beeld".into() })
        .unwrap_or_else(|e| fail(e));
    plan.set_phase(Phase::Plan).unwrap_or_else(|e| fail(e));
    plan.add_agreement("Moeder belt de school.").unwrap_or_else(|e| fail(e));
    for compartment in Compartment::ALL {
        let note = plan.add_note(compartment, NoteKind::HomeVisit, "Huisbezoek").unwrap_or_else(|e| fail(e));
        plan.edit_note_text(compartment, note, 10, 0, ": moeder is open").unwrap_or_else(|e| fail(e));
    }
    plan.add_safety_item("Vader drinkt.", "Naar oma.").unwrap_or_else(|e| fail(e));
    let changes_of = |doc: &Automerge, since: &[ChangeHash]| -> Vec<Vec<u8>> {
        doc.get_changes(since).iter().map(|c| c.raw_bytes().to_vec()).collect()
    };
    Fixture {
        plan: id,
        new_changes: plan.changes_since(&heads),
        base_changes: base.iter().map(|(c, doc)| (*c, changes_of(doc, &[]))).collect(),
        saved: Compartment::ALL.iter().filter_map(|c| Some((*c, plan.doc(*c).ok()?.save()))).collect(),
        base,
    }
}

/// A device that holds the base plan, or (`without`) the base plan without one compartment.
fn receiver(without: Option<Compartment>) -> Plan {
    let f = fixture();
    let docs = f.base.iter().filter(|(c, _)| Some(*c) != without).cloned().collect();
    match Plan::from_documents(f.plan, DeviceId::from_bytes([7; 16]), docs, clock()) {
        Ok(plan) => plan,
        Err(e) => panic!("the fuzz fixture's receiver: {e}"),
    }
}

/// Everything a receiver holds and shows.
fn seen(plan: &Plan) -> (Vec<Vec<ChangeHash>>, String) {
    (plan.heads().to_vec(), format!("{:?}", plan.view()))
}

/// One input through the receiving path; panics (a crash to libFuzzer) if a promise breaks.
pub fn drive(data: &[u8]) {
    static QUIET: Once = Once::new();
    QUIET.call_once(|| {
        if std::env::var_os(HUNT_AUTOMERGE_PANICS).is_none() {
            std::panic::set_hook(Box::new(|_| {}));
        }
    });
    let Some((&selector, rest)) = data.split_first() else { return };
    let mut rest = rest.to_vec();
    if selector & 0x10 != 0 {
        fix_checksums(&mut rest);
    }
    let rest = rest.as_slice();
    let compartment = Compartment::ALL[usize::from(selector & 3)];
    let path = (selector >> 2) & 3;
    let mut plan = receiver((path == 3).then_some(compartment));
    let before = seen(&plan);
    let outcome = match path {
        0 | 3 => plan::parse_received_changes(compartment, rest, author())
            .and_then(|changes| plan.apply_parsed(compartment, changes)),
        1 => plan::load_received_document(rest, compartment, plan.id())
            .and_then(|doc| plan.merge_document(compartment, doc)),
        _ => plan::parse_change(compartment, rest)
            .and_then(|change| plan.apply_parsed(compartment, vec![change])),
    };
    match outcome {
        Err(_) => assert!(seen(&plan) == before, "a refused input changed the plan"),
        Ok(()) => {
            if let Err(e) = plan.view() {
                panic!("an accepted input left a plan that does not materialise: {e}");
            }
            if let Err(e) = plan.conflicts() {
                panic!("an accepted input broke the conflict list: {e}");
            }
        }
    }
}

/// Recomputes the checksum of every chunk (`magic | checksum | type | uLEB128 length | body`;
/// the checksum is the first 4 bytes of SHA-256 over type, length and body) as far as the
/// framing goes.
fn fix_checksums(bytes: &mut [u8]) {
    use sha2::Digest;
    let mut start = 0;
    while bytes.len() >= start + 10 {
        let mut rest = &bytes[start + 9..];
        let Ok(len) = leb128::read::unsigned(&mut rest) else { return };
        let header = bytes.len() - start - rest.len();
        let end =
            usize::try_from(len).ok().and_then(|l| (start + header).checked_add(l)).unwrap_or(usize::MAX);
        let end = end.min(bytes.len());
        let digest = sha2::Sha256::digest(&bytes[start + 8..end]);
        bytes[start + 4..start + 8].copy_from_slice(&digest[..4]);
        start = end;
    }
}

/// Seed inputs: the author's new changes (one bundle each and all in one), every snapshot,
/// and the base's changes for a receiver that holds nothing yet.
pub fn seeds() -> Vec<Vec<u8>> {
    let f = fixture();
    let with = |path: u8, fix: bool, compartment: Compartment, bytes: &[u8]| {
        let mut out = vec![(u8::from(fix) << 4) | (path << 2) | compartment.index() as u8];
        out.extend_from_slice(bytes);
        out
    };
    let mut out = Vec::new();
    for (compartment, changes) in &f.new_changes {
        out.push(with(0, false, *compartment, &changes.concat()));
        out.extend(changes.iter().map(|c| with(0, false, *compartment, c)));
        out.extend(changes.iter().map(|c| with(2, false, *compartment, c)));
    }
    for fix in [false, true] {
        out.extend(f.saved.iter().map(|(c, saved)| with(1, fix, *c, saved)));
    }
    out.extend(f.base_changes.iter().map(|(c, changes)| with(3, false, *c, &changes.concat())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_goes_through_the_receiving_path_and_the_author_s_new_changes_are_accepted() {
        for seed in seeds() {
            drive(&seed);
        }
        let f = fixture();
        for (compartment, changes) in &f.new_changes {
            let mut plan = receiver(None);
            let parsed = plan::parse_received_changes(*compartment, &changes.concat(), author());
            assert!(parsed.and_then(|c| plan.apply_parsed(*compartment, c)).is_ok(), "{compartment}");
        }
    }
}
