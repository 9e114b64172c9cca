//! The kept read model: used only when current, never hiding a change or damage, gone with
//! its plan.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use super::*;
use crate::audit::{AuditAction, AuditResult};
use crate::keystore::{KdfParams, PassphraseKeyStore};
use crate::plan::{Compartment, NewGoal, NoteKind};
use crate::retention::RetireReason;
use crate::store::DB_FILE;
use crate::wipe::WipeReason;

fn keystore() -> PassphraseKeyStore {
    PassphraseKeyStore::with_params("geheim", KdfParams::INSECURE_FAST_FOR_TESTS)
}

fn reopen(dir: &Path) -> Device {
    Device::open(dir, &keystore()).unwrap()
}

/// A device holding a plan with a goal and a note, read once (so its model is kept), closed.
fn device_with_plan(dir: &Path) -> PlanId {
    let mut device = Device::init(dir, &keystore()).unwrap();
    let plan = device.create_plan("Jansen").unwrap();
    device
        .edit(&plan, |p| {
            p.add_goal(NewGoal { domain: "financiën".into(), title: "Schulden in beeld".into() })
        })
        .unwrap();
    device.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::Note, "eerste bezoek")).unwrap();
    device.read(&plan).unwrap();
    plan
}

/// The view as loading the documents gives it.
fn loaded_view(device: &mut Device, plan: &PlanId) -> PlanView {
    device.open_plan(plan).unwrap();
    device.forget_views();
    device.read(plan).unwrap()
}

/// Runs `sql` on the closed store's file, with the plan's lookup key as `?1`.
fn on_disk(dir: &Path, sql: &str, plan_key: &[u8]) -> usize {
    let conn = rusqlite::Connection::open(dir.join(DB_FILE)).unwrap();
    conn.execute(sql, [plan_key]).unwrap()
}

fn count(dir: &Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(dir.join(DB_FILE)).unwrap();
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| row.get(0)).unwrap()
}

fn plan_key(dir: &Path) -> Vec<u8> {
    let conn = rusqlite::Connection::open(dir.join(DB_FILE)).unwrap();
    conn.query_row("SELECT plan_key FROM read_models", [], |row| row.get(0)).unwrap()
}

#[test]
fn a_plan_read_after_reopening_comes_from_its_kept_model_without_loading_and_equals_the_loaded_view() {
    let dir = tempfile::tempdir().unwrap();
    let plan = device_with_plan(dir.path());
    let mut device = reopen(dir.path());
    assert!(device.read_model_is_current(&plan).unwrap());
    let shown = device.read(&plan).unwrap();
    assert!(device.open_plan_ref(&plan).is_none(), "the documents were loaded for a read");
    assert_eq!(shown.goals[0].title, "Schulden in beeld");
    assert_eq!(shown, loaded_view(&mut device, &plan));
}

#[test]
fn a_read_from_the_kept_model_is_recorded_in_the_access_log_as_any_read() {
    let dir = tempfile::tempdir().unwrap();
    let plan = device_with_plan(dir.path());
    let mut device = reopen(dir.path());
    let before = device.audit_events().unwrap().len();
    device.read(&plan).unwrap();
    assert!(device.open_plan_ref(&plan).is_none());
    let events = device.audit_events().unwrap();
    let new: Vec<_> = events[before..].iter().map(|(_, e)| e.claimed().unwrap()).collect();
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(
        (new[0].action, new[0].plan.map(|p| p.0), new[0].result),
        (AuditAction::Read, Some(*plan.as_bytes()), AuditResult::Done)
    );
}

#[test]
fn an_edit_then_a_read_shows_the_edit_and_the_next_opening_shows_it_without_loading() {
    let dir = tempfile::tempdir().unwrap();
    let plan = device_with_plan(dir.path());
    let mut device = reopen(dir.path());
    device.read(&plan).unwrap();
    device.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "tweede bezoek")).unwrap();
    assert!(!device.read_model_is_current(&plan).unwrap(), "an edit leaves the kept model stale");
    assert!(device.read(&plan).unwrap().notes.iter().any(|n| n.text == "tweede bezoek"));
    assert!(device.read_model_is_current(&plan).unwrap(), "the read kept the new model");
    drop(device);
    let mut device = reopen(dir.path());
    let shown = device.read(&plan).unwrap();
    assert!(device.open_plan_ref(&plan).is_none());
    assert!(shown.notes.iter().any(|n| n.text == "tweede bezoek"));
}

#[test]
fn a_kept_model_older_than_the_documents_on_disk_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let plan = device_with_plan(dir.path());
    let key = plan_key(dir.path());
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    let old: Vec<u8> = conn.query_row("SELECT sealed FROM read_models", [], |row| row.get(0)).unwrap();
    drop(conn);
    let mut device = reopen(dir.path());
    device.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "na de vorige")).unwrap();
    device.read(&plan).unwrap();
    drop(device);
    // The documents changed behind the kept model (as a sync by an older build, or a copy of
    // an older row, would leave it): the older model is put back, validly sealed.
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.execute("UPDATE read_models SET sealed = ?2 WHERE plan_key = ?1", rusqlite::params![key, old])
        .unwrap();
    drop(conn);
    let mut device = reopen(dir.path());
    let shown = device.read(&plan).unwrap();
    assert!(shown.notes.iter().any(|n| n.text == "na de vorige"), "the stale model was shown");
    assert!(device.read_model_is_current(&plan).unwrap(), "the miss kept the current model");
}

#[test]
fn documents_damaged_behind_a_current_kept_model_still_fail_the_read() {
    let dir = tempfile::tempdir().unwrap();
    let plan = device_with_plan(dir.path());
    let key = plan_key(dir.path());
    let damaged = on_disk(
        dir.path(),
        "UPDATE changes SET sealed = zeroblob(length(sealed)) \
         WHERE doc_key IN (SELECT doc_key FROM documents WHERE plan_key = ?1)",
        &key,
    );
    assert!(damaged > 0);
    let mut device = reopen(dir.path());
    assert!(matches!(device.read(&plan), Err(CoreError::Store(StoreError::CorruptPlan { .. }))));
}

#[test]
fn a_damaged_kept_model_is_a_miss_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let plan = device_with_plan(dir.path());
    let key = plan_key(dir.path());
    on_disk(dir.path(), "UPDATE read_models SET sealed = zeroblob(length(sealed)) WHERE plan_key = ?1", &key);
    let mut device = reopen(dir.path());
    assert!(!device.read_model_is_current(&plan).unwrap());
    let shown = device.read(&plan).unwrap();
    assert_eq!(shown.goals[0].title, "Schulden in beeld");
    assert!(device.read_model_is_current(&plan).unwrap());
}

#[test]
fn a_model_that_opens_but_does_not_decode_is_a_miss() {
    let stamp = Stamp([7; STAMP_LEN]);
    let mut model = stamp.0.to_vec();
    model.extend_from_slice(&[DEFLATED, 0xff, 0x00, 0x13]);
    assert!(decode(&stamp, &model).is_none());
    model[STAMP_LEN] = RAW;
    assert!(decode(&stamp, &model).is_none());
    model[STAMP_LEN] = 9;
    assert!(decode(&stamp, &model).is_none());
    assert!(decode(&stamp, &stamp.0[..5]).is_none());
}

#[test]
fn a_retired_plan_leaves_no_kept_model() {
    let dir = tempfile::tempdir().unwrap();
    let plan = device_with_plan(dir.path());
    let other = {
        let mut device = reopen(dir.path());
        let other = device.create_plan("Bakker").unwrap();
        device.read(&other).unwrap();
        device.retire_plan(&plan, RetireReason::Closed).unwrap();
        assert!(matches!(device.read(&plan), Err(CoreError::UnknownPlan(_))));
        other
    };
    assert_eq!(count(dir.path(), "read_models"), 1, "only the other plan's model stays");
    let mut device = reopen(dir.path());
    assert!(device.read_model_is_current(&other).unwrap());
    device.read(&other).unwrap();
}

#[test]
fn a_wipe_destroys_every_kept_model_before_the_files() {
    let dir = tempfile::tempdir().unwrap();
    device_with_plan(dir.path());
    let mut device = reopen(dir.path());
    device.store_mut().shred(b"{}").unwrap();
    drop(device);
    assert_eq!(count(dir.path(), "read_models"), 0);

    let dir = tempfile::tempdir().unwrap();
    device_with_plan(dir.path());
    let mut device = reopen(dir.path());
    device.wipe(WipeReason::Ordered, None).unwrap();
    assert!(!dir.path().join(DB_FILE).exists());
}
