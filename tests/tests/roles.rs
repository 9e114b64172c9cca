//! Changing a user's role, or what a role may write, end to end: the keys follow the new
//! role, and history written under the old rules stays valid for every device, including
//! devices that fetch it only afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use eenplan_core::plan::{Compartment, NoteKind};
use eenplan_core::{Device, PlanId};
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

fn has(device: &mut Device, plan: &PlanId, text: &str) -> bool {
    notes(device, plan).iter().any(|n| n == text)
}

/// (compartment, epoch, bytes) of every bundle in a copy of the server's database.
fn server_bundles(db: &Path) -> Vec<(u8, u32, Vec<u8>)> {
    let copy = db.with_extension("copy.db");
    let _ = std::fs::remove_file(&copy);
    rusqlite::Connection::open(db).unwrap().execute("VACUUM INTO ?1", [copy.to_str().unwrap()]).unwrap();
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let mut stmt = conn.prepare("SELECT compartment, epoch, bytes FROM bundles ORDER BY seq").unwrap();
    let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?))).unwrap();
    rows.map(|r| r.unwrap()).collect()
}

/// Rita's plan with Otto (politie) and Gert (ggz): Gert writes zorg, Otto justitie, and
/// everyone holds everything their role reads.
fn shared_plan(net: &Network) -> (PlanId, Device, Device, Device) {
    let mut rita = net.device("rita", "Rita");
    let mut otto = net.device("otto", "Otto");
    let mut gert = net.device("gert", "Gert");
    let plan = rita.create_plan("Jansen").unwrap();
    rita.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::Note, "zorg: aanmelding")).unwrap();
    rita.sync().unwrap();
    rita.add_participant(&plan, "Otto", "politie").unwrap();
    rita.add_participant(&plan, "Gert", "ggz").unwrap();
    rita.sync().unwrap();
    otto.sync().unwrap();
    gert.sync().unwrap();
    otto.edit(&plan, |p| p.add_note(Compartment::Justitie, NoteKind::Note, "justitie: proces-verbaal"))
        .unwrap();
    gert.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::Note, "zorg: behandelplan (GGZ)")).unwrap();
    // Otto's device sees Gert write (basis), so it keeps Gert's certificate as GGZ.
    gert.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "basis: GGZ betrokken")).unwrap();
    for _ in 0..2 {
        for device in [&mut otto, &mut gert, &mut rita] {
            device.sync().unwrap();
        }
    }
    assert!(has(&mut rita, &plan, "zorg: behandelplan (GGZ)"));
    assert!(has(&mut otto, &plan, "basis: GGZ betrokken"));
    (plan, rita, otto, gert)
}

#[test]
fn a_new_role_moves_the_users_keys_and_their_earlier_writes_stay_valid_everywhere() {
    let net = Network::start(USERS);
    let (plan, mut rita, mut otto, mut gert) = shared_plan(&net);
    use Compartment::*;
    assert_eq!(gert.keyed_compartments(&plan).unwrap(), vec![Basis, Zorg]);

    // Gert moves from the GGZ to the police.
    let out = net.admin.run(&["user", "set-role", "Gert", "--role", "politie"]);
    assert!(out.contains("Gert") && out.contains("now politie"), "{out}");

    // His device picks up its new certificate at its next sync: the zorg keys go, the police
    // compartments arrive with their history.
    // The police compartments' keys come from the devices that hold them, at their syncs.
    for device in [&mut gert, &mut otto, &mut rita] {
        let report = device.sync().unwrap();
        assert!(report.refused.is_empty(), "{:?}", report.refused);
    }
    gert.sync().unwrap();
    assert_eq!(gert.keyed_compartments(&plan).unwrap(), vec![Basis, Veiligheid, Justitie]);
    assert!(has(&mut gert, &plan, "justitie: proces-verbaal"));

    // As police, he writes justitie; Otto's device, which knew him as GGZ, accepts it.
    gert.edit(&plan, |p| p.add_note(Justitie, NoteKind::Note, "justitie: Gert als politie")).unwrap();
    let report = gert.sync().unwrap();
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    let report = otto.sync().unwrap();
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert!(has(&mut otto, &plan, "justitie: Gert als politie"));

    // Zorg moved to a new epoch that Gert's keys do not open.
    rita.edit(&plan, |p| p.add_note(Zorg, NoteKind::Note, "zorg: na de rolwissel")).unwrap();
    rita.sync().unwrap();
    let zorg_after: Vec<Vec<u8>> = server_bundles(&net.server.data.join("server.db"))
        .into_iter()
        .filter(|(compartment, epoch, _)| *compartment == Zorg as u8 && *epoch >= 2)
        .map(|(_, _, bytes)| bytes)
        .collect();
    assert!(!zorg_after.is_empty(), "zorg must have moved to a new epoch");
    for bytes in &zorg_after {
        assert!(gert.open_sealed_bundle(bytes).is_err(), "Gert's keys opened zorg after his role changed");
    }
    gert.sync().unwrap();
    assert!(!has(&mut gert, &plan, "zorg: na de rolwissel"));

    // Wim joins only now. Gert's zorg note was written while GGZ could write zorg: Wim's
    // device, which only ever sees Gert as police, still accepts it.
    rita.add_participant(&plan, "Wim", "wijkteam").unwrap();
    rita.sync().unwrap();
    let mut wim = net.device("wim", "Wim");
    for _ in 0..2 {
        let report = wim.sync().unwrap();
        assert!(report.refused.is_empty(), "{:?}", report.refused);
        rita.sync().unwrap();
    }
    for text in ["zorg: aanmelding", "zorg: behandelplan (GGZ)", "zorg: na de rolwissel"] {
        assert!(has(&mut wim, &plan, text), "{text:?} missing from {:?}", notes(&mut wim, &plan));
    }
    assert_eq!(wim.status().unwrap().parked_bundles, 0);

    // Gert, now police, starts a plan of his own and shares it with Rita, whose device still
    // knows him as GGZ: the veiligheid key he made (GGZ could not have) is taken all the same.
    let second = gert.create_plan("De Vries").unwrap();
    gert.edit(&second, |p| p.add_note(Veiligheid, NoteKind::Note, "veiligheid: melding")).unwrap();
    gert.sync().unwrap();
    gert.add_participant(&second, "Rita", "wijkteam").unwrap();
    gert.sync().unwrap();
    for _ in 0..2 {
        let report = rita.sync().unwrap();
        assert!(report.refused.is_empty(), "{:?}", report.refused);
        gert.sync().unwrap();
    }
    assert!(rita.keyed_compartments(&second).unwrap().contains(&Veiligheid));
    assert!(has(&mut rita, &second, "veiligheid: melding"));
}

#[test]
fn a_policy_that_takes_a_write_away_keeps_the_earlier_writes_valid_for_devices_that_join_later() {
    let net = Network::start(USERS);
    let (plan, mut rita, _otto, mut gert) = shared_plan(&net);

    // Version 2: GGZ still reads zorg, but may no longer write it.
    let current = net.admin.run(&["policy", "show"]);
    let ggz = "[roles.ggz]\nread = [\"basis\", \"zorg\"]\nwrite = [\"basis\", \"zorg\"]";
    assert!(current.contains(ggz), "{current}");
    let next = current
        .replace(ggz, "[roles.ggz]\nread = [\"basis\", \"zorg\"]\nwrite = [\"basis\"]")
        .replace("version = 1", "version = 2");
    let file = net.path("policy-v2.toml");
    std::fs::write(&file, next).unwrap();
    net.admin.run(&["policy", "set", file.to_str().unwrap()]);

    // Gert keeps reading zorg under its new epoch.
    rita.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::Note, "zorg: na v2")).unwrap();
    rita.sync().unwrap();
    gert.sync().unwrap();
    gert.sync().unwrap();
    assert!(has(&mut gert, &plan, "zorg: na v2"));

    // Wim's device joins after the change and knows only version 2: Gert's note, written
    // under version 1, is judged by the rules of its epoch and accepted.
    rita.add_participant(&plan, "Wim", "wijkteam").unwrap();
    rita.sync().unwrap();
    let mut wim = net.device("wim", "Wim");
    for _ in 0..2 {
        let report = wim.sync().unwrap();
        assert!(report.refused.is_empty(), "{:?}", report.refused);
        rita.sync().unwrap();
    }
    for text in ["zorg: behandelplan (GGZ)", "zorg: na v2"] {
        assert!(has(&mut wim, &plan, text), "{text:?} missing from {:?}", notes(&mut wim, &plan));
    }
}
