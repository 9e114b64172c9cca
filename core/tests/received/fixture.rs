//! A real plan written by three devices, the raw changes and documents it consists of, and the
//! receiving path a sync takes with a bundle's bytes.

use std::sync::{Arc, LazyLock};

use automerge::Automerge;
use eenplan_core::clock::ManualClock;
use eenplan_core::plan::{
    self, ActionUpdate, Compartment, EscalationLevel, GoalStatus, NewAction, NewGoal, NewMember,
    NewParticipant, NoteKind, Phase, Plan, PlanError, Role,
};
use eenplan_core::{DeviceId, PlanId};

/// Cases per property: the default keeps the suite quick; `EENPLAN_FUZZ_CASES=100000` runs
/// longer. Failures are not persisted to files: crashers worth keeping go to
/// `tests/data/automerge-crashers/` (see `crashers.rs`).
pub fn config(default_cases: u32) -> proptest::test_runner::Config {
    let cases =
        std::env::var("EENPLAN_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default_cases);
    proptest::test_runner::Config { cases, failure_persistence: None, ..Default::default() }
}

pub fn device(n: u8) -> DeviceId {
    DeviceId::from_bytes([n; 16])
}

/// The device that receives in every test; it wrote nothing of the fixture.
pub fn receiver_id() -> DeviceId {
    device(7)
}

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(1_790_000_000_000))
}

/// One change as a sync receives it: its author (the bundle's signer) and its bytes.
#[derive(Debug, Clone)]
pub struct Received {
    pub author: DeviceId,
    pub bytes: Vec<u8>,
}

pub struct Fixture {
    pub plan: PlanId,
    /// Every compartment's document as `save()` writes it.
    pub saved: Vec<(Compartment, Vec<u8>)>,
    /// Every compartment's changes, in an order in which each follows its dependencies.
    pub changes: Vec<(Compartment, Vec<Received>)>,
    /// Every compartment's document, loaded (a copy is quicker than a load).
    docs: Vec<Automerge>,
}

impl Fixture {
    pub fn saved(&self, compartment: Compartment) -> &[u8] {
        &self.saved[compartment.index()].1
    }

    pub fn changes(&self, compartment: Compartment) -> &[Received] {
        &self.changes[compartment.index()].1
    }

    /// The compartment's whole document.
    pub fn doc(&self, compartment: Compartment) -> Automerge {
        self.docs[compartment.index()].clone()
    }

    /// The compartment's document holding its first `upto` changes.
    pub fn prefix(&self, compartment: Compartment, upto: usize) -> Automerge {
        let mut doc = Automerge::new();
        let changes = self.changes(compartment)[..upto]
            .iter()
            .map(|c| automerge::Change::from_bytes(c.bytes.clone()).unwrap());
        doc.apply_changes(changes).unwrap();
        doc
    }

    /// A receiving device's plan: every compartment in full, except `compartment`, which
    /// holds its first `upto` changes (none: not held yet).
    pub fn receiver(&self, compartment: Compartment, upto: usize) -> Plan {
        let docs = Compartment::ALL
            .into_iter()
            .filter_map(|c| match (c == compartment, upto) {
                (true, 0) => None,
                (true, _) => Some((c, self.prefix(c, upto))),
                (false, _) => Some((c, self.doc(c))),
            })
            .collect();
        Plan::from_documents(self.plan, receiver_id(), docs, clock()).unwrap()
    }
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: LazyLock<Fixture> = LazyLock::new(build);
    &FIXTURE
}

fn build() -> Fixture {
    let clock = clock();
    let plan = PlanId::from_bytes([0x5e; 16]);
    let first = Plan::create(plan, device(1), "Jansen", None, clock.clone()).unwrap();
    let mut plans = vec![first];
    for n in [2, 3] {
        let docs = Compartment::ALL.iter().map(|c| (*c, plans[0].doc(*c).unwrap().clone())).collect();
        plans.push(Plan::from_documents(plan, device(n), docs, clock.clone()).unwrap());
    }
    for (i, p) in plans.iter_mut().enumerate() {
        write_a_home_visit(p, i, &clock);
    }
    // Concurrent sets of the same registers: conflicts in the fixture.
    for (i, p) in plans.iter_mut().enumerate() {
        p.set_phase(Phase::ALL[i + 1]).unwrap();
    }
    for from in 0..3 {
        for to in 0..3 {
            if from != to {
                exchange(&mut plans, from, to);
            }
        }
    }
    let full = &plans[0];
    Fixture {
        plan,
        docs: Compartment::ALL.iter().map(|c| full.doc(*c).unwrap().clone()).collect(),
        saved: Compartment::ALL.iter().map(|c| (*c, full.doc(*c).unwrap().save())).collect(),
        changes: Compartment::ALL
            .iter()
            .map(|c| {
                let changes = full
                    .doc(*c)
                    .unwrap()
                    .get_changes(&[])
                    .iter()
                    .map(|ch| Received {
                        author: DeviceId::from_actor(ch.actor_id()).unwrap(),
                        bytes: ch.raw_bytes().to_vec(),
                    })
                    .collect();
                (*c, changes)
            })
            .collect(),
    }
}

fn write_a_home_visit(p: &mut Plan, i: usize, clock: &ManualClock) {
    clock.advance_ms(60_000);
    let member = p
        .add_member(NewMember {
            name: format!("Kind {i}"),
            relation: "zoon".into(),
            birth_date: Some("2015-06-01".into()),
            parental_authority: i == 0,
        })
        .unwrap();
    let participant = p
        .add_participant(NewParticipant {
            name: format!("Werker {i}"),
            organisation: "Wijkteam Noord".into(),
            role: Role::Wijkteam,
        })
        .unwrap();
    let goal = p.add_goal(NewGoal { domain: "financiën".into(), title: format!("Schulden {i}") }).unwrap();
    p.set_goal_status(goal, GoalStatus::InProgress).unwrap();
    let action = p
        .add_action(NewAction {
            goal,
            title: "Budgetcoach bellen".into(),
            owner_org: "Wijkteam".into(),
            owner_user: Some(7),
            due: Some("2027-01-15".into()),
        })
        .unwrap();
    p.update_action(action, ActionUpdate { due: Some(None), ..Default::default() }).unwrap();
    p.set_score(member, "huisvesting", "2026-11-22", 3).unwrap();
    p.add_agreement("Moeder belt de school voor vrijdag.").unwrap();
    p.escalate(EscalationLevel::Lokaal, Some(participant), "Zorgen over de veiligheid thuis.").unwrap();
    for compartment in Compartment::ALL {
        let note = p.add_note(compartment, NoteKind::HomeVisit, "Huisbezoek:").unwrap();
        let mut len = "Huisbezoek:".len();
        for word in [" moeder", " is", " open ", "🙂"] {
            p.edit_note_text(compartment, note, len, 0, word).unwrap();
            len += word.chars().count();
        }
    }
    p.add_safety_item("Vader drinkt en wordt dan boos.", "Moeder en kinderen gaan naar oma.").unwrap();
}

fn exchange(plans: &mut [Plan], from: usize, to: usize) {
    for compartment in Compartment::ALL {
        let heads = plans[to].doc(compartment).unwrap().get_heads();
        let missing: Vec<Vec<u8>> = plans[from]
            .doc(compartment)
            .unwrap()
            .get_changes(&heads)
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect();
        plans[to].apply_changes(compartment, &missing).unwrap();
    }
}

/// What a sync does with a received `Changes` bundle's payload: parse it, check every change
/// is the author's own, apply it to a copy, validate, and swap the copy in.
pub fn receive_changes(
    receiver: &mut Plan,
    compartment: Compartment,
    payload: &[u8],
    author: DeviceId,
) -> Result<(), PlanError> {
    let changes = plan::parse_received_changes(compartment, payload, author)?;
    receiver.apply_parsed(compartment, changes)
}

/// What a sync or an import does with a received document: load and validate it, then merge it.
pub fn receive_document(
    receiver: &mut Plan,
    compartment: Compartment,
    bytes: &[u8],
) -> Result<(), PlanError> {
    let doc = plan::load_received_document(bytes, compartment, receiver.id())?;
    receiver.merge_document(compartment, doc)
}

/// Everything a receiver holds and shows of a plan, to check that a refusal changed nothing.
#[derive(Debug, PartialEq)]
pub struct Seen {
    heads: Vec<Vec<automerge::ChangeHash>>,
    view: String,
}

pub fn snapshot(plan: &Plan) -> Seen {
    Seen { heads: plan.heads().to_vec(), view: format!("{:?}", plan.view()) }
}

/// After receiving: a refusal left the plan exactly as it was, an acceptance left a plan that
/// materialises (validation reads documents as the read model does).
pub fn check_outcome(plan: &Plan, before: &Seen, outcome: &Result<(), PlanError>) {
    match outcome {
        Err(_) => assert_eq!(&snapshot(plan), before, "a refused input changed the plan"),
        Ok(()) => {
            plan.view()
                .unwrap_or_else(|e| panic!("an accepted input left a plan that does not materialise: {e}"));
            plan.conflicts().unwrap_or_else(|e| panic!("an accepted input broke the conflict list: {e}"));
        }
    }
}

/// Recomputes a chunk's checksum, so that a mutation gets past it into automerge's parsers
/// (anyone crafting bytes can do the same).
pub fn fix_checksum(chunk: &mut [u8]) {
    use sha2::Digest;
    if chunk.len() < 10 {
        return;
    }
    let mut rest = &chunk[9..];
    let Ok(len) = leb128_len(&mut rest) else { return };
    let header = chunk.len() - rest.len();
    let end = header.saturating_add(len).min(chunk.len());
    let digest = sha2::Sha256::digest(&chunk[8..end]);
    chunk[4..8].copy_from_slice(&digest[..4]);
}

fn leb128_len(rest: &mut &[u8]) -> Result<usize, ()> {
    let (mut value, mut shift) = (0usize, 0u32);
    loop {
        let (&byte, tail) = rest.split_first().ok_or(())?;
        *rest = tail;
        value |= usize::from(byte & 0x7f).checked_shl(shift).ok_or(())?;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
        if shift > 56 {
            return Err(());
        }
    }
}
