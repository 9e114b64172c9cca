//! The access log on the device: what each entry point records, the chain, durability, and
//! the upload with a sync (through the sans-IO steps the sync's rounds call).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use eenplan_protocol::audit::{AuditEvent, AuditKey, AuditUpload, SignedEvent, verify_chain};
use eenplan_protocol::sync::Blob;

use super::*;
use crate::clock::ManualClock;
use crate::keystore::{KdfParams, PassphraseKeyStore};
use crate::plan::{GoalStatus, NewAction, NewGoal, NoteKind, Resolution};
use crate::sync::test_network::{TestNetwork, TestUser};

const START: i64 = 1_800_000_000_000;
const WIM: TestUser<'static> =
    TestUser { user_id: 7, name: "Wim de Vries", organisation: "Wijkteam Zaanstad", role: "wijkteam" };

fn keystore() -> PassphraseKeyStore {
    PassphraseKeyStore::with_params("geheim", KdfParams::INSECURE_FAST_FOR_TESTS)
}

struct Phone {
    dir: tempfile::TempDir,
    clock: ManualClock,
    device: Device,
}

fn phone() -> Phone {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let device = Device::init(dir.path(), &keystore()).unwrap().with_clock(Arc::new(clock.clone()));
    Phone { dir, clock, device }
}

/// Wim's phone, enrolled, with a plan whose chain makes him its regisseur.
fn wims_phone(net: &TestNetwork) -> (Phone, PlanId) {
    let mut p = phone();
    net.enrol(&mut p.device, &WIM);
    let plan = p.device.create_plan("Jansen").unwrap();
    let signing = p.device.identity().signing_key().clone();
    let chain =
        net.chain(&signing.verifying_key().to_bytes(), p.device.identity().agreement_public(), &WIM, START);
    net.start_chain(&mut p.device, plan, &signing, chain);
    (p, plan)
}

fn events(device: &Device) -> Vec<AuditEvent> {
    device.audit_events().unwrap().into_iter().map(|(_, e)| e.claimed().unwrap()).collect()
}

/// The events recorded since the device held `before` of them.
fn since(device: &Device, before: usize) -> Vec<AuditEvent> {
    events(device).into_iter().skip(before).collect()
}

fn what(event: &AuditEvent) -> (AuditAction, Option<[u8; 16]>, Option<u8>, Option<&str>, AuditResult) {
    (event.action, event.plan.map(|p| p.0), event.compartment, event.object.as_deref(), event.result)
}

fn goal(title: &str) -> NewGoal {
    NewGoal { domain: "financiën".into(), title: title.into() }
}

#[test]
fn reading_a_plan_its_conflicts_its_review_and_its_adoptions_records_one_read_each_also_from_the_cache() {
    let mut p = phone();
    let plan = p.device.create_plan("Jansen").unwrap();
    let id = Some(*plan.as_bytes());
    let before = events(&p.device).len();
    p.device.read(&plan).unwrap();
    p.device.read(&plan).unwrap(); // from the view cache
    p.device.conflicts(&plan).unwrap();
    p.device.review(&plan).unwrap();
    p.device.adoptions(&plan).unwrap();
    p.device.newest_adopted_plan(&plan).unwrap();
    p.device.audience(&plan, Compartment::Zorg).unwrap();
    let read = AuditAction::Read;
    let done = AuditResult::Done;
    let new = since(&p.device, before);
    let recorded: Vec<_> = new.iter().map(what).collect();
    let expected = [
        (read, id, None, None, done),
        (read, id, None, None, done),
        (read, id, None, Some("conflicts"), done),
        (read, id, None, Some("review"), done),
        (read, id, None, Some("adoptions"), done),
        (read, id, None, Some("adopted"), done),
        (read, id, Some(1), Some("audience"), done),
    ];
    assert_eq!(recorded, expected);
}

#[test]
fn creating_and_editing_a_plan_records_create_and_one_change_per_changed_compartment() {
    let mut p = phone();
    let plan = p.device.create_plan("Jansen").unwrap();
    let id = Some(*plan.as_bytes());
    assert_eq!(what(&events(&p.device)[0]), (AuditAction::Create, id, None, None, AuditResult::Done));
    p.device.edit(&plan, |p| p.add_goal(goal("Schulden in beeld"))).unwrap();
    p.device
        .edit(&plan, |p| {
            p.add_note(Compartment::Zorg, NoteKind::Note, "GGZ-traject loopt")?;
            p.add_note(Compartment::Justitie, NoteKind::Note, "Taakstraf")
        })
        .unwrap();
    let change = |c| (AuditAction::Change, id, Some(c), None, AuditResult::Done);
    let new = since(&p.device, 1);
    let recorded: Vec<_> = new.iter().map(what).collect();
    assert_eq!(recorded, [change(0), change(1), change(3)]);
}

#[test]
fn export_import_print_and_settling_a_conflict_record_their_actions() {
    let mut anja = phone();
    let plan = anja.device.create_plan("Jansen").unwrap();
    let goal_id = anja.device.edit(&plan, |p| p.add_goal(goal("Schulden in beeld"))).unwrap();
    let file = anja.device.export_changes(&plan, "overdracht").unwrap();
    let mut bram = phone();
    bram.device.import_changes(&file, "overdracht").unwrap();
    let id = Some(*plan.as_bytes());
    assert_eq!(
        what(events(&anja.device).last().unwrap()),
        (AuditAction::Export, id, None, None, AuditResult::Done)
    );
    assert_eq!(
        what(events(&bram.device).last().unwrap()),
        (AuditAction::Import, id, None, None, AuditResult::Done)
    );

    // Concurrent statuses: a conflict, settled by the creator.
    anja.device.edit(&plan, |p| p.set_goal_status(goal_id, GoalStatus::Achieved)).unwrap();
    bram.device.edit(&plan, |p| p.set_goal_status(goal_id, GoalStatus::Cancelled)).unwrap();
    anja.device.import_changes(&bram.device.export_changes(&plan, "terug").unwrap(), "terug").unwrap();
    let conflict = anja.device.conflicts(&plan).unwrap().remove(0);
    let before = events(&anja.device).len();
    anja.device.settle_conflict(&plan, &conflict.id, Resolution::Pick(0)).unwrap();
    anja.device.family_copy(&plan).unwrap();
    let goal_text = goal_id.to_string();
    let new = since(&anja.device, before);
    let recorded: Vec<_> = new.iter().map(what).collect();
    assert_eq!(
        recorded,
        [
            (AuditAction::Settle, id, Some(0), Some(goal_text.as_str()), AuditResult::Done),
            (AuditAction::Print, id, None, None, AuditResult::Done),
        ]
    );
}

#[test]
fn the_agenda_records_one_read_per_plan_it_shows_lines_of_adopting_and_participant_changes_theirs() {
    let net = TestNetwork::new();
    let (mut p, plan) = wims_phone(&net);
    let quiet = p.device.create_plan("De Boer").unwrap();
    let today = crate::calendar::dutch_date(p.device.now_ms()).to_string();
    p.device
        .edit(&plan, |p| {
            let goal = p.add_goal(goal("Schulden in beeld"))?;
            let owner = Some(WIM.user_id);
            let title = "Brieven openen".into();
            p.add_action(NewAction {
                goal,
                title,
                owner_org: "Wijkteam".into(),
                owner_user: owner,
                due: Some(today),
            })
        })
        .unwrap();
    let before = events(&p.device).len();
    assert!(!p.device.agenda().unwrap().items.is_empty());
    let id = Some(*plan.as_bytes());
    let new = since(&p.device, before);
    let recorded: Vec<_> = new.iter().map(what).collect();
    assert_eq!(recorded, [(AuditAction::Read, id, None, Some("agenda"), AuditResult::Done)]);
    let _ = quiet; // a plan with no lines: not recorded

    let before = events(&p.device).len();
    p.device.adopt(&plan, "Besproken met moeder", &[]).unwrap();
    p.device.queue_share(&plan, "Els", "school").unwrap();
    p.device.hand_over_regie(&plan, &WIM.user_id.to_string()).unwrap_err();
    p.device
        .escalate_case(
            &plan,
            crate::plan::EscalationLevel::Lokaal,
            "Zorgen",
            eenplan_protocol::membership::Grondslag::Convenant,
            None,
            &[],
        )
        .unwrap();
    let participants = AuditAction::ParticipantChange;
    let new = since(&p.device, before);
    let recorded: Vec<_> = new.iter().map(what).collect();
    assert_eq!(
        recorded,
        [
            (AuditAction::Adopt, id, Some(0), None, AuditResult::Done),
            (participants, id, None, Some("add"), AuditResult::Done),
            (participants, id, None, Some("handover"), AuditResult::Refused),
            (AuditAction::Change, id, Some(0), None, AuditResult::Done),
            (participants, id, None, Some("escalate"), AuditResult::Done),
        ]
    );
}

#[test]
fn each_event_names_the_actor_from_the_certificate_and_the_regisseurs_organisation_when_it_is_another() {
    let net = TestNetwork::new();
    let mut p = phone();
    let plan = p.device.create_plan("Jansen").unwrap();
    let before_enrolment = events(&p.device).remove(0).actor;
    assert_eq!((before_enrolment.user_id, before_enrolment.user_name.as_str()), (0, ""));
    assert_eq!(before_enrolment.device.0, *p.device.device_id().as_bytes());

    net.enrol(&mut p.device, &WIM);
    let veilig_thuis = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let els = TestUser { user_id: 8, name: "Els", organisation: "Veilig Thuis", role: "veilig_thuis" };
    let chain = net.chain(&veilig_thuis.verifying_key().to_bytes(), &[5; 32], &els, START);
    net.start_chain(&mut p.device, plan, &veilig_thuis, chain);
    p.device.read(&plan).unwrap();
    let read = events(&p.device).pop().unwrap();
    assert_eq!(read.actor.user_id, WIM.user_id);
    assert_eq!(read.actor.user_name, WIM.name);
    assert_eq!(read.actor.organisation, WIM.organisation);
    assert_eq!(read.actor.role, WIM.role);
    assert_eq!(read.on_behalf_of.as_deref(), Some("Veilig Thuis"));

    let (mut own, own_plan) = wims_phone(&net);
    own.device.read(&own_plan).unwrap();
    assert_eq!(events(&own.device).pop().unwrap().on_behalf_of, None);
}

#[test]
fn the_events_a_device_holds_form_a_chain_that_verifies_under_its_signing_key() {
    let mut p = phone();
    let plan = p.device.create_plan("Jansen").unwrap();
    for title in ["Schulden", "Werk", "Wonen"] {
        p.device.edit(&plan, |p| p.add_goal(goal(title))).unwrap();
        p.device.read(&plan).unwrap();
    }
    p.device.read(&PlanId::random()).unwrap_err();
    let held = p.device.audit_events().unwrap();
    assert_eq!(held.len(), 8);
    let report = verify_chain(&p.device.identity().signing_public(), held);
    assert_eq!(report.findings, []);
    assert_eq!(report.events.len() as u64, p.device.audit_head().seq);
}

#[test]
fn three_offline_reads_keep_the_times_they_were_made() {
    let mut p = phone();
    let plan = p.device.create_plan("Jansen").unwrap();
    let before = events(&p.device).len();
    let mut times = Vec::new();
    for minutes in [5, 60, 24 * 60] {
        p.clock.advance_ms(minutes * 60_000);
        times.push(p.device.now_ms());
        p.device.read(&plan).unwrap();
    }
    // Later the clock is anchored to a server that is an hour ahead: nothing moves back.
    p.clock.advance_ms(60_000);
    p.device.anchor_clock(p.device.now_ms() + 3_600_000);
    p.device.read(&plan).unwrap();
    let at: Vec<i64> = since(&p.device, before).iter().map(|e| e.at_ms).collect();
    assert_eq!(&at[..3], times.as_slice());
    assert!(at[3] > times[2] + 3_600_000);
}

#[test]
fn an_edit_and_its_event_are_one_transaction() {
    let mut p = phone();
    let plan = p.device.create_plan("Jansen").unwrap();
    let before = events(&p.device).len();
    // An edit that fails after writing half of itself: no change, and no Change event.
    let failed = p.device.edit(&plan, |p| {
        p.add_goal(goal("Half"))?;
        p.add_goal(goal(""))
    });
    assert!(failed.is_err());
    let recorded = since(&p.device, before);
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        what(&recorded[0]),
        (AuditAction::Change, Some(*plan.as_bytes()), None, None, AuditResult::Failed)
    );
    assert_eq!(recorded[0].detail.as_deref(), Some("invalid"));
    assert!(p.device.read(&plan).unwrap().goals.is_empty());

    p.device.edit(&plan, |p| p.add_goal(goal("Schulden"))).unwrap();
    let head = p.device.audit_head();
    let Phone { dir, clock, device } = p;
    drop(device);
    let mut device = Device::open(dir.path(), &keystore()).unwrap().with_clock(Arc::new(clock));
    assert_eq!(device.audit_head(), head);
    let last = events(&device).pop().unwrap();
    assert_eq!((last.seq, last.action, last.compartment), (head.seq, AuditAction::Change, Some(0)));
    device.read(&plan).unwrap();
    let report = verify_chain(&device.identity().signing_public(), device.audit_events().unwrap());
    assert_eq!(report.findings, []);
}

#[test]
fn an_access_refused_because_the_lease_ran_out_is_recorded_as_refused() {
    let mut p = phone();
    let plan = p.device.create_plan("Jansen").unwrap();
    p.device.renew_lease(3_600_000).unwrap();
    p.clock.advance_ms(2 * 3_600_000);
    let before = events(&p.device).len();
    assert!(matches!(p.device.read(&plan), Err(CoreError::LeaseExpired { .. })));
    assert!(p.device.edit(&plan, |p| p.add_goal(goal("Te laat"))).is_err());
    let recorded = since(&p.device, before);
    let id = Some(*plan.as_bytes());
    assert_eq!(what(&recorded[0]), (AuditAction::Read, id, None, None, AuditResult::Refused));
    assert_eq!(what(&recorded[1]), (AuditAction::Change, id, None, None, AuditResult::Refused));
    assert!(recorded.iter().all(|e| e.detail.as_deref() == Some("lease_expired")));
    let unknown = PlanId::random();
    p.device.renew_lease(3_600_000).unwrap();
    p.device.read(&unknown).unwrap_err();
    let last = events(&p.device).pop().unwrap();
    assert_eq!((last.result, last.detail.as_deref()), (AuditResult::Refused, Some("unknown_plan")));
}

#[test]
fn no_event_field_is_in_plaintext_in_the_database_or_its_wal() {
    let net = TestNetwork::new();
    let (mut p, plan) = wims_phone(&net);
    p.device.read(&plan).unwrap();
    p.device.edit(&plan, |p| p.add_goal(goal("Schulden"))).unwrap();
    let held = p.device.audit_events().unwrap();
    let mut needles: Vec<Vec<u8>> = vec![
        WIM.name.as_bytes().to_vec(),
        WIM.organisation.as_bytes().to_vec(),
        plan.as_bytes().to_vec(),
        plan.to_string().into_bytes(),
    ];
    for (_, event) in &held {
        needles.push(event.signature[..16].to_vec());
        needles.push(event.body[..24].to_vec());
        needles.push(event.hash()[..16].to_vec());
    }
    let db = p.device.store_path();
    let mut haystack = std::fs::read(&db).unwrap();
    haystack.extend(std::fs::read(db.with_extension("db-wal")).unwrap_or_default());
    for needle in &needles {
        assert!(
            !haystack.windows(needle.len()).any(|w| w == needle.as_slice()),
            "{needle:?} is on disk in plaintext"
        );
    }
    let _ = &p.dir;
}

/// An audit key for Wim's organisation, signed by the network's root.
fn audit_key(net: &TestNetwork, organisation: &str, version: u32) -> (zeroize::Zeroizing<[u8; 32]>, Blob) {
    let (secret, public) = eenplan_protocol::envelope::generate_keypair();
    let key = AuditKey { organisation: organisation.into(), public, version, issued_at_ms: START };
    (secret, Blob(key.sign(&net.root).to_bytes()))
}

#[test]
fn with_an_audit_key_the_request_carries_uploads_that_open_and_verify_and_acknowledged_events_leave() {
    let net = TestNetwork::new();
    let (mut p, plan) = wims_phone(&net);
    let root = net.root_public();
    let org = WIM.organisation;
    // Without a key nothing goes: the events wait.
    assert!(p.device.audit_request(&root, org, 0, 1 << 20).unwrap().uploads.is_empty());
    let (secret, key) = audit_key(&net, org, 1);
    assert_eq!(p.device.take_audit_answer(&root, org, Some(&key), 0, 0).unwrap(), None);
    for _ in 0..5 {
        p.device.read(&plan).unwrap();
    }
    let head = p.device.audit_head();
    let request = p.device.audit_request(&root, org, 0, 1 << 20).unwrap();
    assert_eq!((request.key_version, request.last, request.uploads.len()), (1, head.seq, 1));
    let upload = AuditUpload::from_bytes(&request.uploads[0].0).unwrap();
    upload.verify_signature(&p.device.identity().signing_public()).unwrap();
    let opened = upload.open(&secret).unwrap();
    let numbered: Vec<(u64, SignedEvent)> = (upload.first..).zip(opened).collect();
    let report = verify_chain(&p.device.identity().signing_public(), numbered.clone());
    assert_eq!((report.findings, report.events.len() as u64), (vec![], head.seq));

    // The server keeps them: they leave the device; the next event continues the chain.
    p.device.take_audit_answer(&root, org, None, head.seq, request.last).unwrap();
    assert!(p.device.audit_events().unwrap().is_empty());
    assert_eq!(p.device.audit_head(), head);
    p.device.read(&plan).unwrap();
    let next = p.device.audit_events().unwrap();
    assert_eq!(next[0].0, head.seq + 1);
    let all = numbered.into_iter().chain(next).collect();
    assert_eq!(verify_chain(&p.device.identity().signing_public(), all).findings, []);
}

#[test]
fn a_server_cannot_drop_what_was_not_sent_nor_roll_the_key_back_nor_stop_the_sync_with_a_bad_key() {
    let net = TestNetwork::new();
    let (mut p, plan) = wims_phone(&net);
    let root = net.root_public();
    let org = WIM.organisation;
    let (_, v2) = audit_key(&net, org, 2);
    p.device.take_audit_answer(&root, org, Some(&v2), 0, 0).unwrap();
    p.device.read(&plan).unwrap();
    let held = p.device.audit_events().unwrap().len();
    // "Kept through" beyond what was sent, or beyond the head: nothing is dropped.
    p.device.take_audit_answer(&root, org, None, u64::MAX, 0).unwrap();
    assert_eq!(p.device.audit_events().unwrap().len(), held);
    // An older key, another organisation's, one the root did not sign, and garbage.
    let (_, v1) = audit_key(&net, org, 1);
    assert_eq!(p.device.take_audit_answer(&root, org, Some(&v1), 0, 0).unwrap(), None);
    assert_eq!(p.device.held_audit_key(&root, org).unwrap().unwrap().version, 2);
    let (_, other) = audit_key(&net, "Politie", 3);
    assert_eq!(
        p.device.take_audit_answer(&root, org, Some(&other), 0, 0).unwrap(),
        Some(AuditKeyRefusal::OtherOrganisation)
    );
    let (_, public) = eenplan_protocol::envelope::generate_keypair();
    let forged = AuditKey { organisation: org.into(), public, version: 9, issued_at_ms: START };
    let forged = Blob(forged.sign(&ed25519_dalek::SigningKey::from_bytes(&[4; 32])).to_bytes());
    assert!(matches!(
        p.device.take_audit_answer(&root, org, Some(&forged), 0, 0),
        Ok(Some(AuditKeyRefusal::Unverified(_)))
    ));
    let garbage = Blob(vec![0xff; 40]);
    assert!(matches!(
        p.device.take_audit_answer(&root, org, Some(&garbage), 0, 0),
        Ok(Some(AuditKeyRefusal::Unverified(_)))
    ));
    assert_eq!(p.device.held_audit_key(&root, org).unwrap().unwrap().version, 2);
}

#[test]
fn uploads_are_bounded_by_the_budget_and_the_per_sync_limits() {
    let net = TestNetwork::new();
    let (mut p, plan) = wims_phone(&net);
    let root = net.root_public();
    let org = WIM.organisation;
    let (_, key) = audit_key(&net, org, 1);
    p.device.take_audit_answer(&root, org, Some(&key), 0, 0).unwrap();
    for _ in 0..30 {
        p.device.read(&plan).unwrap();
    }
    // A tiny budget still carries one event; the next round continues after it.
    let first = p.device.audit_request(&root, org, 0, 1).unwrap();
    assert_eq!(first.uploads.len(), 1);
    let upload = AuditUpload::from_bytes(&first.uploads[0].0).unwrap();
    assert_eq!((upload.first, upload.last), (1, 1));
    let rest = p.device.audit_request(&root, org, first.last, 1 << 20).unwrap();
    let upload = AuditUpload::from_bytes(&rest.uploads[0].0).unwrap();
    assert_eq!((upload.first, upload.last), (2, p.device.audit_head().seq));
}

#[test]
fn a_call_that_panicked_does_not_silence_the_events_of_later_calls() {
    let mut p = phone();
    let plan = p.device.create_plan("Jansen").unwrap();
    let device = &mut p.device;
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        device.edit(&plan, |_| -> Result<(), crate::plan::PlanError> { panic!("a bug in a closure") })
    }));
    assert!(panicked.is_err());
    let before = events(&p.device).len();
    p.device.read(&plan).unwrap();
    let new = since(&p.device, before);
    assert_eq!(
        new.iter().map(what).collect::<Vec<_>>(),
        [(AuditAction::Read, Some(*plan.as_bytes()), None, None, AuditResult::Done)]
    );
}

#[test]
fn after_a_read_is_logged_the_store_commits_with_synchronous_full_again() {
    let mut p = phone();
    let plan = p.device.create_plan("Jansen").unwrap();
    p.device.read(&plan).unwrap();
    assert_eq!(p.device.store().synchronous(), 2);
    p.device.read(&PlanId::random()).unwrap_err();
    assert_eq!(p.device.store().synchronous(), 2);
}
