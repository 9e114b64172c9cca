//! Re-keying at the size of a Zorg- en Veiligheidshuis case: a real server, the real admin
//! CLI, and 31 real device stores (61 under `EENPLAN_SOAK=1`).
//!
//! The promise under test: revoking one device of a plan that many devices read moves every
//! document of it to a new key sealed to each of the remaining readers, so the plan's writes
//! resume and every remaining device reads what is written afterwards. (A re-keying request
//! of one document used to be JSON with hex envelopes, over the 64 KiB admin body limit from
//! about 25 readers: such a plan stayed closed for writing for good.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use eenplan_core::plan::{Compartment, NoteKind};
use eenplan_tests::network::Network;
use eenplan_tests::soak;

/// Reader devices besides Rita's: 30 is past the 25 at which one document's envelopes
/// outgrew the old JSON request; 60 (a large case) under `EENPLAN_SOAK=1`.
fn readers() -> usize {
    soak::size(30, 60)
}

fn user(i: usize) -> String {
    format!("Medewerker {i:02}")
}

#[test]
fn a_revocation_in_a_plan_with_many_reader_devices_rekeys_it_and_every_reader_reads_on() {
    let readers = readers();
    let names: Vec<String> = (0..readers / 2).map(user).collect();
    let mut users = vec![("Rita", "Zorg- en Veiligheidshuis", "wijkteam")];
    users.extend(names.iter().map(|n| (n.as_str(), "Zorg- en Veiligheidshuis", "wijkteam")));
    let net = Network::start(&users);
    let mut rita = net.device("rita", "Rita");
    let plan = rita.create_plan("Jansen").unwrap();
    rita.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "voor de intrekking")).unwrap();
    rita.sync().unwrap();
    // Two devices per person (a phone and a laptop): the readers besides Rita's, one of which
    // is lost. A participant is named in the plan's signed membership by an approved device.
    let mut devices: Vec<_> = names
        .iter()
        .enumerate()
        .flat_map(|(i, name)| [format!("{i}-phone"), format!("{i}-laptop")].map(|d| (d, name.clone())))
        .map(|(dir, name)| net.device(&dir, &name))
        .collect();
    for name in &names {
        rita.add_participant(&plan, name, "wijkteam").unwrap();
    }
    rita.sync().unwrap();
    let lost = devices.remove(0);
    let lost_id = lost.device_id().to_string();
    drop(lost);

    let out = net.admin.output(&["device", "revoke", &lost_id, "--reason", "lost", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rotation = &summary["rotation"];
    assert_eq!(rotation["documents"], 3, "basis, zorg, veiligheid: {summary}");
    // Each document: the new key to Rita's device, the other readers, and escrow (Rita's device
    // handed every reader epoch 1 when they joined).
    let envelopes = rotation["envelopes"].as_u64().unwrap();
    assert_eq!(envelopes, 3 * (1 + (readers as u64 - 1) + 1), "{summary}");
    // Binary: little beyond the envelopes (≈1.2 kB each), in few requests.
    let uploaded = rotation["bytes_uploaded"].as_u64().unwrap();
    assert!(uploaded < envelopes * 1300 + 20_000, "{uploaded} bytes for {envelopes} envelopes");
    assert!(rotation["requests"].as_u64().unwrap() <= 3, "{summary}");

    // Writes resume, and every remaining reader reads what Rita writes now.
    rita.sync().unwrap();
    rita.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "na de intrekking")).unwrap();
    let report = rita.sync().unwrap();
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert_eq!(rita.pending_changes().unwrap(), 0);
    assert_eq!(devices.len(), readers - 1);
    for device in &mut devices {
        device.sync().unwrap();
        let notes: Vec<String> = device.read(&plan).unwrap().notes.into_iter().map(|n| n.text).collect();
        assert!(notes.contains(&"voor de intrekking".to_string()), "{notes:?}");
        assert!(notes.contains(&"na de intrekking".to_string()), "{notes:?}");
    }
}
