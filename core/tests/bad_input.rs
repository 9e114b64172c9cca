//! Bad input of every kind gets a typed error, never a panic, and the good data beside it
//! stays intact.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::path::Path;

use eenplan_core::keystore::{KdfParams, PassphraseKeyStore};
use eenplan_core::plan::{Compartment, Limit, NewGoal, NoteKind, PlanError, Refusal, ValidationError};
use eenplan_core::store::{DB_FILE, StoreError};
use eenplan_core::transfer::{self, TransferError};
use eenplan_core::{CoreError, Device, PlanId, PlanListEntry};
use rusqlite::Connection;

fn keystore(p: &str) -> PassphraseKeyStore {
    PassphraseKeyStore::with_params(p, KdfParams::INSECURE_FAST_FOR_TESTS)
}

fn open(dir: &Path) -> Device {
    Device::open(dir, &keystore("geheim")).unwrap()
}

type Row = (String, Vec<u8>, i64);

/// Every sealed row (table, key, seq) currently in the store.
fn sealed_rows(dir: &Path) -> HashSet<Row> {
    let conn = Connection::open(dir.join(DB_FILE)).unwrap();
    let mut rows = HashSet::new();
    for (table, sql) in [
        ("plans", "SELECT plan_key, 0 FROM plans"),
        ("changes", "SELECT doc_key, seq FROM changes"),
        ("documents", "SELECT doc_key, 0 FROM documents WHERE snapshot IS NOT NULL"),
    ] {
        let mut stmt = conn.prepare(sql).unwrap();
        for row in stmt.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))).unwrap() {
            let (key, seq) = row.unwrap();
            rows.insert((table.to_owned(), key, seq));
        }
    }
    rows
}

/// The column and filter of a sealed row; every filter takes (key, seq) so one call fits all.
fn locate(row: &Row) -> (&'static str, &'static str) {
    match row.0.as_str() {
        "plans" => ("sealed", "plan_key = ?1 AND ?2 = 0"),
        "changes" => ("sealed", "doc_key = ?1 AND seq = ?2"),
        _ => ("snapshot", "doc_key = ?1 AND ?2 = 0"),
    }
}

fn flip_bit(dir: &Path, row: &Row, byte: usize) {
    let conn = Connection::open(dir.join(DB_FILE)).unwrap();
    let (column, filter) = locate(row);
    let table = &row.0;
    let mut value: Vec<u8> = conn
        .query_row(
            &format!("SELECT {column} FROM {table} WHERE {filter}"),
            rusqlite::params![row.1, row.2],
            |r| r.get(0),
        )
        .unwrap();
    let at = byte % value.len();
    value[at] ^= 0x10;
    let update = format!("UPDATE {table} SET {column} = ?3 WHERE {filter}");
    assert_eq!(conn.execute(&update, rusqlite::params![row.1, row.2, value]).unwrap(), 1);
}

/// Three plans; returns the directory, the plan ids, and the sealed rows of the middle plan.
fn three_plans() -> (tempfile::TempDir, [PlanId; 3], HashSet<Row>) {
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::init(dir.path(), &keystore("geheim")).unwrap();
    let a = device.create_plan("Aydın").unwrap();
    drop(device);
    let before = sealed_rows(dir.path());
    let mut device = open(dir.path());
    let b = device.create_plan("Bakker").unwrap();
    device
        .edit(&b, |p| p.add_goal(NewGoal { domain: "huisvesting".into(), title: "Woning behouden".into() }))
        .unwrap();
    device.edit(&b, |p| p.add_note(Compartment::Basis, NoteKind::HomeVisit, "Huisbezoek: rustig")).unwrap();
    drop(device);
    let after_b = sealed_rows(dir.path());
    let mut device = open(dir.path());
    let c = device.create_plan("Cohen").unwrap();
    drop(device);
    let b_rows = after_b.difference(&before).cloned().collect();
    (dir, [a, b, c], b_rows)
}

fn assert_others_intact(device: &mut Device, plans: &[PlanId]) {
    for plan in plans {
        let view = device.read(plan).unwrap();
        assert_eq!(view.id, *plan);
    }
}

#[test]
fn a_wrong_passphrase_is_a_typed_error_and_the_store_still_opens_with_the_right_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::init(dir.path(), &keystore("geheim")).unwrap();
    let plan = device.create_plan("Jansen").unwrap();
    drop(device);
    let err = Device::open(dir.path(), &keystore("fout")).unwrap_err();
    assert!(matches!(err, CoreError::WrongUnlock { attempts_left: 9 }), "{err:?}");
    assert_eq!(open(dir.path()).read(&plan).unwrap().family, "Jansen");
}

#[test]
fn a_flipped_bit_in_a_change_row_damages_only_that_plan() {
    let (dir, [a, b, c], b_rows) = three_plans();
    let change = b_rows.iter().find(|r| r.0 == "changes").unwrap();
    flip_bit(dir.path(), change, 40);
    let mut device = open(dir.path());
    assert_eq!(device.list_plans().unwrap().len(), 3);
    let err = device.read(&b).unwrap_err();
    assert!(matches!(err, CoreError::Store(StoreError::CorruptPlan { plan, .. }) if plan == b), "{err:?}");
    assert_others_intact(&mut device, &[a, c]);
}

#[test]
fn a_flipped_bit_in_a_snapshot_damages_only_that_plan() {
    let (dir, [a, b, c], _) = three_plans();
    let mut device = open(dir.path());
    device.compact_plan(&b).unwrap();
    drop(device);
    let snapshots: Vec<Row> = sealed_rows(dir.path()).into_iter().filter(|r| r.0 == "documents").collect();
    assert_eq!(snapshots.len(), 4, "only plan b's four compartments were compacted");
    flip_bit(dir.path(), &snapshots[0], 100);
    let mut device = open(dir.path());
    let err = device.read(&b).unwrap_err();
    assert!(matches!(err, CoreError::Store(StoreError::CorruptPlan { plan, .. }) if plan == b), "{err:?}");
    assert_others_intact(&mut device, &[a, c]);
}

#[test]
fn a_flipped_bit_in_a_plan_entry_is_listed_as_damaged_beside_the_others() {
    let (dir, [a, b, c], b_rows) = three_plans();
    let header = b_rows.iter().find(|r| r.0 == "plans").unwrap();
    flip_bit(dir.path(), header, 7);
    let mut device = open(dir.path());
    let list = device.list_plans().unwrap();
    assert_eq!(list.iter().filter(|e| matches!(e, PlanListEntry::Damaged { .. })).count(), 1);
    assert_eq!(list.iter().filter(|e| matches!(e, PlanListEntry::Ok(_))).count(), 2);
    assert!(matches!(device.read(&b).unwrap_err(), CoreError::Store(StoreError::CorruptPlan { .. })));
    assert_others_intact(&mut device, &[a, c]);
}

#[test]
fn a_ciphertext_moved_to_another_row_fails_to_open() {
    let (dir, [a, b, c], b_rows) = three_plans();
    let mut changes: Vec<&Row> = b_rows.iter().filter(|r| r.0 == "changes").collect();
    changes.sort_by_key(|r| (r.1.clone(), r.2));
    // Two change rows of the same document: the sealed bytes are valid, only in the wrong row.
    let (first, second) = changes
        .windows(2)
        .find(|w| w[0].1 == w[1].1)
        .map(|w| (w[0].clone(), w[1].clone()))
        .expect("a document with two changes");
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    let sealed: Vec<u8> = conn
        .query_row(
            "SELECT sealed FROM changes WHERE doc_key = ?1 AND seq = ?2",
            rusqlite::params![first.1, first.2],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute(
        "UPDATE changes SET sealed = ?3 WHERE doc_key = ?1 AND seq = ?2",
        rusqlite::params![second.1, second.2, sealed],
    )
    .unwrap();
    drop(conn);
    let mut device = open(dir.path());
    assert!(matches!(device.read(&b).unwrap_err(), CoreError::Store(StoreError::CorruptPlan { .. })));
    assert_others_intact(&mut device, &[a, c]);
}

#[test]
fn a_plan_entry_copied_over_another_is_refused() {
    let (dir, [a, b, c], b_rows) = three_plans();
    let b_key = &b_rows.iter().find(|r| r.0 == "plans").unwrap().1;
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    let other: Vec<u8> = conn
        .query_row("SELECT sealed FROM plans WHERE plan_key != ?1 LIMIT 1", [b_key], |r| r.get(0))
        .unwrap();
    conn.execute("UPDATE plans SET sealed = ?2 WHERE plan_key = ?1", rusqlite::params![b_key, other])
        .unwrap();
    drop(conn);
    let mut device = open(dir.path());
    let damaged = device
        .list_plans()
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e, PlanListEntry::Damaged { .. }))
        .count();
    assert_eq!(damaged, 1);
    assert!(device.read(&b).is_err());
    assert_others_intact(&mut device, &[a, c]);
}

#[test]
fn a_truncated_database_file_gives_a_typed_error_not_a_panic() {
    let (dir, plans, _) = three_plans();
    let path = dir.path().join(DB_FILE);
    let full = std::fs::read(&path).unwrap();
    for len in [full.len() / 2, 4096, 100, 0] {
        std::fs::write(&path, &full[..len]).unwrap();
        let _ = std::fs::remove_file(path.with_extension("db-wal"));
        match Device::open(dir.path(), &keystore("geheim")) {
            Err(CoreError::Store(_)) => {}
            Err(other) => panic!("truncated to {len}: unexpected error {other:?}"),
            Ok(mut device) => {
                // Some truncations leave the first pages intact: every plan is then either
                // readable or reports a typed error.
                for plan in &plans {
                    if let Err(e) = device.read(plan) {
                        assert!(matches!(e, CoreError::Store(_) | CoreError::UnknownPlan(_)), "{e:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn oversized_text_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::init(dir.path(), &keystore("geheim")).unwrap();
    let plan = device.create_plan("Jansen").unwrap();
    let pending = device.pending_changes().unwrap();
    let huge = "a".repeat(20_001);
    let err = device.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, &huge)).unwrap_err();
    assert!(matches!(err, CoreError::Plan(PlanError::Invalid(ValidationError::TooLong { .. }))), "{err:?}");
    let long_title = "b".repeat(201);
    let err = device
        .edit(&plan, |p| p.add_goal(NewGoal { domain: "justitie".into(), title: long_title }))
        .unwrap_err();
    assert!(matches!(err, CoreError::Plan(PlanError::Invalid(ValidationError::TooLong { .. }))), "{err:?}");
    let note = device.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "kort")).unwrap();
    let err = device
        .edit(&plan, |p| p.edit_note_text(Compartment::Basis, note, 2, 0, &"c".repeat(20_000)))
        .unwrap_err();
    assert!(matches!(err, CoreError::Plan(PlanError::Invalid(ValidationError::TooLong { .. }))), "{err:?}");
    let err = device.edit(&plan, |p| p.edit_note_text(Compartment::Basis, note, 99, 0, "x")).unwrap_err();
    assert!(
        matches!(err, CoreError::Plan(PlanError::Invalid(ValidationError::TextPosition { .. }))),
        "{err:?}"
    );
    assert_eq!(device.pending_changes().unwrap(), pending + 1);
    assert_eq!(device.read(&plan).unwrap().notes[0].text, "kort");
}

#[test]
fn a_second_open_of_the_same_store_is_refused_as_busy_at_once_and_succeeds_after_a_close() {
    let dir = tempfile::tempdir().unwrap();
    let first = Device::init(dir.path(), &keystore("geheim")).unwrap();
    let started = std::time::Instant::now();
    let err = Device::open(dir.path(), &keystore("geheim")).unwrap_err();
    assert!(matches!(err, CoreError::Store(StoreError::Busy)), "{err:?}");
    // SQLite's busy handler (rusqlite sets 5 s) would make a phone app's second open hang.
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "Busy took {:?}", started.elapsed());
    drop(first);
    Device::open(dir.path(), &keystore("geheim")).unwrap();
}

#[test]
fn malformed_truncated_tampered_and_oversized_transfer_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::init(dir.path(), &keystore("geheim")).unwrap();
    let plan = device.create_plan("Jansen").unwrap();
    let file = device.export_changes(&plan, "overdracht").unwrap();
    let before = device.read(&plan).unwrap();

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"this is not a transfer file at all".to_vec()),
        ("empty", Vec::new()),
        ("truncated", file[..file.len() - 20].to_vec()),
        ("header only", file[..40].to_vec()),
        ("tampered", {
            let mut f = file.clone();
            let last = f.len() - 1;
            f[last] ^= 1;
            f
        }),
    ];
    for (what, bytes) in cases {
        let err = device.import_changes(&bytes, "overdracht").unwrap_err();
        assert!(matches!(err, CoreError::Transfer(_)), "{what}: {err:?}");
    }
    let err = device.import_changes(&file, "verkeerd").unwrap_err();
    assert!(matches!(err, CoreError::Transfer(TransferError::WrongPassphraseOrTampered)), "{err:?}");
    let oversized = vec![0u8; transfer::MAX_TRANSFER_BYTES + 1];
    let err = device.import_changes(&oversized, "overdracht").unwrap_err();
    assert!(matches!(err, CoreError::Transfer(TransferError::TooLarge { .. })), "{err:?}");
    assert_eq!(device.read(&plan).unwrap(), before);
}

#[test]
fn a_transfer_file_whose_documents_are_not_plans_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::init(dir.path(), &keystore("geheim")).unwrap();
    let plan = device.create_plan("Jansen").unwrap();
    let before = device.read(&plan).unwrap();

    // A well-formed automerge document that claims to be this plan's basis but has no layout.
    let mut doc = automerge::AutoCommit::new();
    use automerge::transaction::Transactable;
    doc.put(automerge::ROOT, "plan_id", plan.to_string()).unwrap();
    doc.put(automerge::ROOT, "schema", 1).unwrap();
    doc.put(automerge::ROOT, "family", 42).unwrap();
    let file = transfer::seal(plan, vec![(Compartment::Basis, doc.save())], "p").unwrap();
    let err = device.import_changes(&file, "p").unwrap_err();
    assert!(matches!(err, CoreError::Transfer(TransferError::Document { .. })), "{err:?}");

    // Bytes that are not an automerge document at all.
    let file = transfer::seal(plan, vec![(Compartment::Basis, b"not automerge".to_vec())], "p").unwrap();
    assert!(matches!(
        device.import_changes(&file, "p").unwrap_err(),
        CoreError::Transfer(TransferError::Document { .. })
    ));

    // A real plan's document filed under another plan's id.
    let other = device.create_plan("Anders").unwrap();
    let foreign = device.export_changes(&other, "p").unwrap();
    let contents = transfer::open(&foreign, "p").unwrap();
    let file = transfer::seal(plan, contents.docs, "p").unwrap();
    assert!(matches!(
        device.import_changes(&file, "p").unwrap_err(),
        CoreError::Transfer(TransferError::Document { .. })
    ));
    assert_eq!(device.read(&plan).unwrap(), before);
}

#[test]
fn a_hostile_deep_nesting_is_refused_on_receipt_and_does_not_crash_the_conflict_list() {
    use automerge::transaction::Transactable;
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::init(dir.path(), &keystore("geheim")).unwrap();
    let plan = device.create_plan("Diep").unwrap();
    // Another writer nests maps far deeper than the plan layout ever does.
    let mut hostile = eenplan_core::plan::Plan::from_documents(
        plan,
        eenplan_core::DeviceId::from_bytes([9; 16]),
        Vec::new(),
        std::sync::Arc::new(eenplan_core::clock::SystemClock),
    )
    .unwrap();
    let basis = device.edit(&plan, |p| Ok(p.doc(Compartment::Basis)?.save())).unwrap();
    let mut doc =
        automerge::AutoCommit::load(&basis).unwrap().with_actor(automerge::ActorId::from(&[9u8; 16][..]));
    let mut obj = automerge::ROOT;
    for _ in 0..20_000 {
        obj = doc.put_object(&obj, "x", automerge::ObjType::Map).unwrap();
    }
    let change = doc.get_last_local_change().unwrap().raw_bytes().to_vec();
    let err = hostile
        .apply_changes(Compartment::Basis, &[basis_changes(&basis), vec![change]].concat())
        .unwrap_err();
    assert!(
        matches!(err, PlanError::Refused { reason: Refusal::OverLimit { limit: Limit::Nesting, .. }, .. }),
        "{err:?}"
    );
    // A document that reached the device some other way (a store written by an older version)
    // still lists its conflicts without walking the whole depth.
    let nested = eenplan_core::plan::Plan::from_documents(
        plan,
        eenplan_core::DeviceId::from_bytes([9; 16]),
        vec![(Compartment::Basis, doc.document().clone())],
        std::sync::Arc::new(eenplan_core::clock::SystemClock),
    )
    .unwrap();
    assert!(nested.conflicts().unwrap().is_empty());
}

fn basis_changes(saved: &[u8]) -> Vec<Vec<u8>> {
    automerge::Automerge::load(saved)
        .unwrap()
        .get_changes(&[])
        .into_iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect()
}
