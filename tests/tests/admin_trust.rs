//! The administrator against a compromised server: a real server process whose database is
//! edited behind its back, and the real `eenplan-admin` binary.
//!
//! The promise under test: what the administrator's keyring learnt (which devices it revoked,
//! which policy versions it signed or saw) no server can take back. A revoked device that the
//! server lists as active and as a reader again gets no key from the administrator at any
//! later epoch, and its stolen keys open nothing written after its revocation; a server that
//! hands the administrator an older, wider policy is refused and nothing is sealed under it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use eenplan_core::plan::{Compartment, NoteKind};
use eenplan_core::{Device, PlanId};
use eenplan_protocol::epoch::SignedCommitment;
use eenplan_tests::network::{Network, device_keystore};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn database(net: &Network) -> rusqlite::Connection {
    rusqlite::Connection::open(net.server.data.join("server.db")).unwrap()
}

/// The epochs of `plan` for which the server holds an envelope sealed to `device`.
fn envelope_epochs(net: &Network, device: &[u8; 16], plan: &PlanId) -> Vec<(u8, u32)> {
    let conn = database(net);
    let mut stmt = conn
        .prepare(
            "SELECT compartment, epoch FROM envelopes WHERE recipient = ?1 AND plan_id = ?2 ORDER BY 1, 2",
        )
        .unwrap();
    stmt.query_map(rusqlite::params![device.as_slice(), plan.as_bytes().as_slice()], |row| {
        Ok((row.get(0)?, row.get(1)?))
    })
    .unwrap()
    .map(|r| r.unwrap())
    .collect()
}

/// The current epoch of each of `plan`'s compartments that has a key.
fn epochs(net: &Network, plan: &PlanId) -> Vec<(u8, u32)> {
    let conn = database(net);
    let mut stmt = conn
        .prepare("SELECT compartment, MAX(epoch) FROM commitments WHERE plan_id = ?1 GROUP BY 1 ORDER BY 1")
        .unwrap();
    stmt.query_map([plan.as_bytes().as_slice()], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_revoked_device_the_server_lists_again_gets_no_key_at_any_later_epoch() {
    let mut net = Network::start(&[
        ("Rita", "Wijkteam Noord", "wijkteam"),
        ("Wim", "Wijkteam Noord", "wijkteam"),
        ("Wendy", "Wijkteam Noord", "wijkteam"),
    ]);
    let mut rita = net.device("rita", "Rita");
    let mut wim = net.device("wim", "Wim");
    let mut wendy = net.device("wendy", "Wendy");
    let plan = rita.create_plan("Jansen").unwrap();
    rita.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "voor de diefstal")).unwrap();
    rita.sync().unwrap();
    rita.add_participant(&plan, "Wim", "wijkteam").unwrap();
    rita.add_participant(&plan, "Wendy", "wijkteam").unwrap();
    rita.sync().unwrap();
    wim.sync().unwrap();
    wendy.sync().unwrap();
    rita.sync().unwrap();
    wim.sync().unwrap();
    assert_eq!(wim.keyed_compartments(&plan).unwrap().len(), 3);

    // Wim's phone is stolen with its files; the administrator revokes it.
    let stolen = net.path("stolen-copy");
    copy_dir(&net.path("wim"), &stolen);
    let wim_id = *wim.device_id().as_bytes();
    drop(wim);
    net.admin.run(&["device", "revoke", &hex(&wim_id), "--reason", "stolen"]);
    rita.sync().unwrap();
    rita.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "na de diefstal")).unwrap();
    rita.sync().unwrap();
    assert!(envelope_epochs(&net, &wim_id, &plan).is_empty(), "the server deleted its envelopes");

    // The server is compromised: it marks the stolen phone active again, so that it is a
    // reader of everything Wim may read. A later change queues a rotation of the plan.
    net.tamper_with_server_database(|conn| {
        let changed = conn
            .execute(
                "UPDATE devices SET state = 'active', revoked_at = NULL, revocation_reason = NULL \
                 WHERE device_id = ?1",
                [wim_id.as_slice()],
            )
            .unwrap();
        assert_eq!(changed, 1);
    });
    let out = net.admin.output(&["plan", "unassign", &plan.to_string(), "--user", "Wendy"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The documents moved on, without the stolen phone, and the administrator is told.
    assert!(!out.status.success(), "the command must not pass over a server that lies: {stderr}");
    assert!(stderr.contains(&format!("device {} as a reader", hex(&wim_id))), "{stderr}");
    assert!(stderr.contains("revoked as readers"), "{stderr}");
    assert!(epochs(&net, &plan).iter().all(|(_, epoch)| *epoch == 3), "{:?}", epochs(&net, &plan));
    assert_eq!(
        envelope_epochs(&net, &wim_id, &plan),
        Vec::<(u8, u32)>::new(),
        "no envelope for the stolen phone at any epoch after its revocation"
    );
    // Each new epoch names the revocation list that lists the phone.
    let conn = database(&net);
    let signed: Vec<u8> = conn
        .query_row(
            "SELECT signed FROM commitments WHERE plan_id = ?1 AND compartment = 0 AND epoch = 3",
            [plan.as_bytes().as_slice()],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(SignedCommitment::from_bytes(&signed).unwrap().claimed().unwrap().revocations_version, 1);

    // The stolen keys open what was written before the revocation and nothing after it.
    let thief = Device::open(&stolen, &device_keystore()).unwrap();
    let mut stmt = conn.prepare("SELECT epoch, bytes FROM bundles WHERE plan_id = ?1").unwrap();
    let bundles: Vec<(u32, Vec<u8>)> = stmt
        .query_map([plan.as_bytes().as_slice()], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(bundles.iter().any(|(epoch, b)| *epoch == 1 && thief.open_sealed_bundle(b).is_ok()));
    let later: Vec<&Vec<u8>> = bundles.iter().filter(|(epoch, _)| *epoch >= 2).map(|(_, b)| b).collect();
    assert!(!later.is_empty(), "Rita wrote after the revocation");
    assert!(later.iter().all(|b| thief.open_sealed_bundle(b).is_err()));
}

#[test]
fn a_server_that_hands_the_administrator_an_older_wider_policy_is_refused() {
    let mut net = Network::start(&[
        ("Rita", "Wijkteam Noord", "wijkteam"),
        ("Gert", "GGZ Midden", "ggz"),
        ("Wim", "Wijkteam Noord", "wijkteam"),
    ]);
    let mut rita = net.device("rita", "Rita");
    let mut gert = net.device("gert", "Gert");
    // A participant is named in the plan's signed membership by an approved device.
    let _wim = net.device("wim", "Wim");
    let plan = rita.create_plan("Jansen").unwrap();
    rita.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::Note, "zorg")).unwrap();
    rita.sync().unwrap();
    rita.add_participant(&plan, "Gert", "ggz").unwrap();
    rita.add_participant(&plan, "Wim", "wijkteam").unwrap();
    rita.sync().unwrap();
    gert.sync().unwrap();
    rita.sync().unwrap();
    let gert_id = *gert.device_id().as_bytes();
    let zorg = Compartment::Zorg as u8;
    assert!(envelope_epochs(&net, &gert_id, &plan).contains(&(zorg, 1)), "ggz reads zorg under policy 1");

    // Policy 2: ggz no longer reads zorg. Zorg moves to epoch 2 without Gert's device.
    let shown = net.admin.run(&["policy", "show"]);
    let narrower = shown.replace("version = 1", "version = 2").replace(
        "[roles.ggz]\nread = [\"basis\", \"zorg\"]\nwrite = [\"basis\", \"zorg\"]",
        "[roles.ggz]\nread = [\"basis\"]\nwrite = [\"basis\"]",
    );
    assert_ne!(narrower, shown.replace("version = 1", "version = 2"), "{shown}");
    let file = net.path("policy-2.toml");
    std::fs::write(&file, narrower).unwrap();
    net.admin.run(&["policy", "set", file.to_str().unwrap()]);
    assert!(!envelope_epochs(&net, &gert_id, &plan).iter().any(|(c, e)| *c == zorg && *e >= 2));

    // The server is restored to policy 1 (a backup, or an attacker): ggz reads zorg again.
    net.tamper_with_server_database(|conn| {
        conn.execute_batch(
            "UPDATE policy SET version = 1, signed = (SELECT signed FROM policy_history WHERE version = 1);
             DELETE FROM policy_history WHERE version = 2;
             INSERT INTO policy_access (level, role, compartment, may_write)
                 VALUES ('regulier', 'ggz', 1, 1), ('lokaal', 'ggz', 1, 1), ('zorg_en_veiligheidshuis', 'ggz', 1, 1)
                 ON CONFLICT (level, role, compartment) DO UPDATE SET may_write = 1;",
        )
        .unwrap();
    });
    let out = net.admin.output(&["policy", "show"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("policy is version 1, but this keyring has seen version 2"), "{stderr}");

    // A rotation now: the server lists Gert's device as a zorg reader, by the old policy.
    let out = net.admin.output(&["plan", "unassign", &plan.to_string(), "--user", "Wim"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("older policy"), "{stderr}");
    assert!(
        !envelope_epochs(&net, &gert_id, &plan).iter().any(|(c, e)| *c == zorg && *e >= 2),
        "nothing of zorg after policy 2 is sealed to a ggz device: {:?}",
        envelope_epochs(&net, &gert_id, &plan)
    );
}
