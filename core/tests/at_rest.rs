//! No plaintext at rest: after writing a plan full of distinctive words, neither the database
//! file nor its WAL contains any of them, nor the plan's id.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use eenplan_core::Device;
use eenplan_core::keystore::{KdfParams, PassphraseKeyStore};
use eenplan_core::plan::{Compartment, NewAction, NewGoal, NewMember, NoteKind};
use eenplan_core::store::DB_FILE;

const SECRETS: [&str; 7] = [
    "Zwaluwstaart",
    "Xanthippe",
    "Kwartelkoning-aantekening",
    "Budgetcoach-Quirijn",
    "Verslaving-Ypsilon",
    "Dreiging-Wervelwind",
    "Officier-Zebravink",
];

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let db = dir.join(DB_FILE);
    [db.clone(), db.with_extension("db-wal"), db.with_extension("db-journal")]
        .into_iter()
        .filter_map(|p| std::fs::read(&p).ok().map(|b| (p.display().to_string(), b)))
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn assert_no_plaintext(dir: &Path, extra: &[String]) {
    let found = files(dir);
    assert!(!found.is_empty());
    for (name, bytes) in found {
        for secret in SECRETS.iter().map(|s| s.to_string()).chain(extra.iter().cloned()) {
            assert!(!contains(&bytes, secret.as_bytes()), "{secret:?} found in {name}");
            let utf16: Vec<u8> = secret.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
            assert!(!contains(&bytes, &utf16), "{secret:?} (UTF-16) found in {name}");
        }
    }
}

#[test]
fn neither_the_database_nor_its_wal_holds_any_plan_text() {
    let dir = tempfile::tempdir().unwrap();
    let keystore = PassphraseKeyStore::with_params("geheim", KdfParams::INSECURE_FAST_FOR_TESTS);
    let mut device = Device::init(dir.path(), &keystore).unwrap();
    let plan = device.create_plan(SECRETS[0]).unwrap();
    device
        .edit(&plan, |p| {
            p.add_member(NewMember {
                name: SECRETS[1].into(),
                relation: "moeder".into(),
                birth_date: None,
                parental_authority: true,
            })
        })
        .unwrap();
    let goal = device
        .edit(&plan, |p| p.add_goal(NewGoal { domain: "financiën".into(), title: "Schulden".into() }))
        .unwrap();
    device.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::HomeVisit, SECRETS[2])).unwrap();
    device
        .edit(&plan, |p| {
            p.add_action(NewAction {
                goal,
                title: SECRETS[3].into(),
                owner_org: "Wijkteam".into(),
                owner_user: None,
                due: None,
            })
        })
        .unwrap();
    device.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::Note, SECRETS[4])).unwrap();
    device.edit(&plan, |p| p.add_safety_item(SECRETS[5], "Veilig thuis")).unwrap();
    device.edit(&plan, |p| p.add_note(Compartment::Justitie, NoteKind::Note, SECRETS[6])).unwrap();
    let extra = vec![plan.to_string(), device.device_id().to_string()];

    // While open (the WAL holds the recent commits) ...
    assert_no_plaintext(dir.path(), &extra);
    // ... after compaction into snapshots ...
    device.compact_plan(&plan).unwrap();
    assert_no_plaintext(dir.path(), &extra);
    // ... and after a clean close (checkpointed into the main file).
    drop(device);
    assert_no_plaintext(dir.path(), &extra);
    let mut raw_id = Vec::new();
    raw_id.extend_from_slice(plan.as_bytes());
    for (name, bytes) in files(dir.path()) {
        assert!(!contains(&bytes, &raw_id), "raw plan id bytes found in {name}");
    }
}
