//! The sharing policy as an encryption boundary, end to end: which devices hold which
//! compartment keys, what the server serves, and what happens to a forged write.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use eenplan_core::plan::{Compartment, NoteKind};
use eenplan_core::{Device, PlanId};
use eenplan_protocol::api::{self};
use eenplan_protocol::sync::{Blob, SyncRequest, SyncResponse};
use eenplan_protocol::{Bundle, BundleKind, DocumentId, NewBundle};
use eenplan_tests::network::Network;

const USERS: &[(&str, &str, &str)] = &[
    ("Rita", "Wijkteam Noord", "wijkteam"),
    ("Otto", "Politie Midden", "politie"),
    ("Gert", "GGZ Centraal", "ggz"),
    ("Wim", "Wijkteam Noord", "wijkteam"),
];

fn notes(device: &mut Device, plan: &PlanId) -> Vec<String> {
    device.read(plan).unwrap().notes.into_iter().map(|n| n.text).collect()
}

/// A plan directed by Rita with Otto, Gert and Wim as participants, one note per compartment
/// that each role may write, everyone synced twice.
fn shared_plan(net: &Network) -> (PlanId, Device, Device, Device, Device) {
    let mut rita = net.device("rita", "Rita");
    let mut otto = net.device("otto", "Otto");
    let mut gert = net.device("gert", "Gert");
    let mut wim = net.device("wim", "Wim");
    let plan = rita.create_plan("Jansen").unwrap();
    rita.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "basis: gezin in beeld")).unwrap();
    rita.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::Note, "zorg: GGZ-diagnose")).unwrap();
    rita.edit(&plan, |p| p.add_note(Compartment::Veiligheid, NoteKind::Note, "veiligheid: risicotaxatie"))
        .unwrap();
    rita.sync().unwrap();
    for (user, role) in [("Otto", "politie"), ("Gert", "ggz"), ("Wim", "wijkteam")] {
        rita.add_participant(&plan, user, role).unwrap();
    }
    rita.sync().unwrap();
    otto.sync().unwrap();
    // The police make the justitie key (nobody else may) and write to it.
    otto.edit(&plan, |p| p.add_note(Compartment::Justitie, NoteKind::Note, "justitie: proces-verbaal"))
        .unwrap();
    otto.sync().unwrap();
    for device in [&mut rita, &mut otto, &mut gert, &mut wim] {
        device.sync().unwrap();
        device.sync().unwrap();
    }
    (plan, rita, otto, gert, wim)
}

#[test]
fn each_role_holds_keys_for_exactly_the_compartments_the_policy_lets_it_read() {
    let net = Network::start(USERS);
    let (plan, mut rita, mut otto, mut gert, mut wim) = shared_plan(&net);

    use Compartment::*;
    assert_eq!(rita.keyed_compartments(&plan).unwrap(), vec![Basis, Zorg, Veiligheid]);
    assert_eq!(otto.keyed_compartments(&plan).unwrap(), vec![Basis, Veiligheid, Justitie]);
    assert_eq!(gert.keyed_compartments(&plan).unwrap(), vec![Basis, Zorg]);
    assert_eq!(wim.keyed_compartments(&plan).unwrap(), vec![Basis, Zorg, Veiligheid]);

    let otto_notes = notes(&mut otto, &plan);
    assert!(otto_notes.contains(&"veiligheid: risicotaxatie".to_string()), "{otto_notes:?}");
    assert!(!otto_notes.iter().any(|n| n.starts_with("zorg")), "{otto_notes:?}");
    let gert_notes = notes(&mut gert, &plan);
    assert!(gert_notes.contains(&"zorg: GGZ-diagnose".to_string()), "{gert_notes:?}");
    assert!(!gert_notes.iter().any(|n| n.starts_with("justitie") || n.starts_with("veiligheid")));
    let rita_notes = notes(&mut rita, &plan);
    assert!(!rita_notes.iter().any(|n| n.starts_with("justitie")), "{rita_notes:?}");
    assert!(notes(&mut wim, &plan).contains(&"zorg: GGZ-diagnose".to_string()));

    // The server never served what a role may not read: nothing waits, parked, for a key.
    for device in [&rita, &otto, &gert, &wim] {
        assert_eq!(device.status().unwrap().parked_bundles, 0);
    }
}

/// A bundle for `plan`'s justitie document, genuinely signed by `author`'s device key, under a
/// key of the author's own making (a wijkteam device has no justitie key to use).
fn forged_justitie_bundle(author: &Device, plan: &PlanId) -> Vec<u8> {
    let header = NewBundle {
        kind: BundleKind::Changes,
        document: DocumentId::new(*plan.as_bytes(), 3).unwrap(),
        epoch: 1,
        author: *author.device_id().as_bytes(),
    };
    let scratch = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let sealed = Bundle::seal(header, &[7; 32], b"forged justitie entry", &scratch).unwrap().into_bytes();
    let mut unsigned = sealed[..sealed.len() - 64].to_vec();
    let signature = author.identity().sign(&unsigned);
    unsigned.extend_from_slice(&signature.to_bytes());
    unsigned
}

/// Appends a bundle to the server's log behind its back, as a compromised server could.
fn smuggle_into_log(conn: &rusqlite::Connection, plan: &PlanId, author: &Device, bytes: &[u8]) {
    let head: i64 = conn.query_row("SELECT head FROM log_head", [], |r| r.get(0)).unwrap();
    conn.execute(
        "INSERT INTO bundles (seq, plan_id, compartment, bundle_id, author, epoch, kind, covers_seq, size, bytes, received_at)
         VALUES (?1, ?2, 3, ?3, ?4, 1, 0, NULL, ?5, ?6, 0)",
        rusqlite::params![
            head + 1,
            &plan.as_bytes()[..],
            &[0x5au8; 16][..],
            &author.device_id().as_bytes()[..],
            bytes.len() as i64,
            bytes
        ],
    )
    .unwrap();
    conn.execute("UPDATE log_head SET head = ?1", [head + 1]).unwrap();
}

#[test]
fn a_wijkteam_devices_forged_write_to_justitie_is_refused_by_the_server_and_by_every_device() {
    let mut net = Network::start(USERS);
    let (plan, _rita, mut otto, _gert, wim) = shared_plan(&net);
    let forged = forged_justitie_bundle(&wim, &plan);

    // The server refuses it.
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let token = eenplan_tests::network::device_session(&agent, &net.server.url, &wim);
    let request = SyncRequest { push: vec![Blob(forged.clone())], ..Default::default() };
    let mut response = agent
        .post(format!("{}{}", net.server.url, api::PATH_SYNC))
        .header("content-type", "application/cbor")
        .header("authorization", format!("Bearer {token}"))
        .send(eenplan_protocol::sync::encode(&request))
        .unwrap();
    let body = response.body_mut().read_to_vec().unwrap();
    let answer: SyncResponse = eenplan_protocol::sync::decode(&body, usize::MAX).unwrap();
    assert!(answer.accepted.is_empty() && !answer.all_accepted);
    assert_eq!(answer.rejected.len(), 1);
    // `no_access` when the server finds first that the role may not even read it.
    let reason = answer.rejected[0].reason.as_str();
    assert!(reason == eenplan_protocol::sync::REJECT_NO_WRITE || reason == "no_access", "{reason}");

    // A compromised server relays it anyway: the police device refuses it on its own.
    net.tamper_with_server_database(|conn| smuggle_into_log(conn, &plan, &wim, &forged));
    let report = otto.sync().unwrap();
    assert!(
        report.refused.iter().any(|r| r.contains("may not write justitie")),
        "the forged write must be refused by the device: {:?}",
        report.refused
    );
    assert!(!notes(&mut otto, &plan).iter().any(|n| n.contains("forged")));
    assert_eq!(otto.status().unwrap().parked_bundles, 0);
}
