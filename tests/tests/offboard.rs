//! Offboarding end to end (`eenplan-admin user offboard`): a real server process, the real
//! admin CLI, real device stores.
//!
//! The promise under test: after offboarding a person, every device of theirs is shut out
//! (the server refuses it, it wipes itself), every plan they were on moves to a key their
//! keys cannot open, and the plan's signed chain, as the other participants' devices verify
//! it, no longer lists them. Offboarding again changes nothing; an interrupted one finishes
//! when run again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use eenplan_core::error::CoreError;
use eenplan_core::plan::{Compartment, NoteKind};
use eenplan_core::{Device, PlanId};
use eenplan_tests::network::{ADMIN_PASSPHRASE, Network, binary, device_keystore};
use serde_json::Value;

const USERS: &[(&str, &str, &str)] =
    &[("Rita", "Wijkteam Noord", "wijkteam"), ("Wim", "Wijkteam Noord", "wijkteam")];

const PLANS: usize = 5;

/// Rita's five plans with Wim on each; Wim's phone and laptop hold them all.
fn wim_on_five_plans(net: &Network) -> (Device, Vec<PlanId>) {
    let mut rita = net.device("rita", "Rita");
    let mut phone = net.device("wim-phone", "Wim");
    let mut laptop = net.device("wim-laptop", "Wim");
    let plans: Vec<PlanId> = (0..PLANS).map(|i| rita.create_plan(&format!("Gezin {i}")).unwrap()).collect();
    rita.sync().unwrap();
    for plan in &plans {
        rita.add_participant(plan, "Wim", "wijkteam").unwrap();
        rita.edit(plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "voor het vertrek")).unwrap();
    }
    rita.sync().unwrap();
    for device in [&mut phone, &mut laptop] {
        device.sync().unwrap();
        assert_eq!(device.list_plans().unwrap().len(), PLANS);
    }
    (rita, plans)
}

fn wim_devices(net: &Network) -> Vec<Value> {
    let listed: Value = serde_json::from_str(&net.admin.run(&["--json", "device", "list"])).unwrap();
    listed.as_array().unwrap().iter().filter(|d| d["user_name"] == "Wim").cloned().collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Every bundle in a copy of the server's database: (plan, epoch, sealed bytes).
fn server_bundles(db: &Path) -> Vec<(Vec<u8>, u32, Vec<u8>)> {
    let copy = db.with_extension("copy.db");
    let _ = std::fs::remove_file(&copy);
    rusqlite::Connection::open(db).unwrap().execute("VACUUM INTO ?1", [copy.to_str().unwrap()]).unwrap();
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let mut stmt = conn.prepare("SELECT plan_id, epoch, bytes FROM bundles ORDER BY seq").unwrap();
    let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?))).unwrap();
    rows.map(|r| r.unwrap()).collect()
}

/// Rita's device syncs (making the new epochs her device may make), writes in every plan
/// and syncs again; nothing of hers is refused.
fn rita_writes_after(rita: &mut Device, plans: &[PlanId]) {
    rita.sync().unwrap();
    for plan in plans {
        rita.edit(plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "na het vertrek")).unwrap();
    }
    let report = rita.sync().unwrap();
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert_eq!(rita.pending_changes().unwrap(), 0);
}

/// Wim is on no plan by the chains Rita's device verified, and his devices are revoked and
/// wiped when they come online.
fn wim_is_gone(net: &Network, rita: &Device, plans: &[PlanId]) {
    let wim_user = wim_devices(net)[0]["user_id"].as_i64().unwrap();
    for plan in plans {
        let membership = rita.membership(plan).unwrap().expect("Rita's device holds the chain");
        assert!(
            membership.participants.iter().all(|p| p.user_id != wim_user),
            "Wim still on {plan}: {:?}",
            membership.participants
        );
    }
    let devices = wim_devices(net);
    assert_eq!(devices.len(), 2);
    assert!(devices.iter().all(|d| d["state"] == "revoked" || d["state"] == "wiped"), "{devices:?}");
    let plans_listed: Value =
        serde_json::from_str(&net.admin.run(&["--json", "user", "offboard", "Wim"])).unwrap();
    assert_eq!(plans_listed["plans_left"], serde_json::json!([]), "{plans_listed}");
}

#[test]
fn offboarding_shuts_out_both_devices_rekeys_every_plan_and_leaves_the_person_on_no_plan() {
    let net = Network::start(USERS);
    let (mut rita, plans) = wim_on_five_plans(&net);

    // The listing names both devices as they named themselves, and saw them sync.
    let before = wim_devices(&net);
    let mut labels: Vec<&str> = before.iter().map(|d| d["label"].as_str().unwrap()).collect();
    labels.sort_unstable();
    assert_eq!(labels, ["wim-laptop", "wim-phone"]);
    assert!(before.iter().all(|d| d["platform"] == "android" && d["last_seen_ms"].is_i64()), "{before:?}");

    // The laptop's files as they are when Wim leaves (he keeps a copy).
    let kept = net.path("wim-laptop-copy");
    copy_dir(&net.path("wim-laptop"), &kept);

    let out = net.admin.output(&["--json", "user", "offboard", "Wim", "--reason", "uit dienst"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["devices_revoked"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["plans_left"].as_array().unwrap().len(), PLANS, "{report}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("intrekken"), "Dutch progress on stderr");

    // Both devices are shut out: no session, and each obeys its wipe order.
    for name in ["wim-phone", "wim-laptop"] {
        let mut device = Device::open(&net.path(name), &device_keystore()).unwrap();
        assert!(matches!(device.sync(), Err(CoreError::Wiped)), "{name} must wipe itself");
    }

    rita_writes_after(&mut rita, &plans);
    wim_is_gone(&net, &rita, &plans);

    // Every plan moved on: Rita's new notes are under a later epoch, which Wim's kept keys
    // cannot open, in each of the five plans.
    let wim = Device::open(&kept, &device_keystore()).unwrap();
    let bundles = server_bundles(&net.server.data.join("server.db"));
    for plan in &plans {
        let of_plan: Vec<_> = bundles.iter().filter(|(p, _, _)| p.as_slice() == plan.as_bytes()).collect();
        let newer: Vec<_> = of_plan.iter().filter(|(_, epoch, _)| *epoch > 1).collect();
        assert!(!newer.is_empty(), "plan {plan} was not re-keyed");
        assert!(of_plan.iter().any(|(_, epoch, b)| *epoch == 1 && wim.open_sealed_bundle(b).is_ok()));
        assert!(newer.iter().all(|(_, _, b)| wim.open_sealed_bundle(b).is_err()), "plan {plan}");
    }
}

#[test]
fn offboarding_again_changes_nothing() {
    let net = Network::start(USERS);
    let (mut rita, plans) = wim_on_five_plans(&net);
    net.admin.run(&["user", "offboard", "Wim"]);
    rita_writes_after(&mut rita, &plans);
    let db = net.server.data.join("server.db");
    let epochs = |db: &Path| -> Vec<(Vec<u8>, i64, i64)> {
        let conn = rusqlite::Connection::open(db).unwrap();
        let mut stmt = conn
            .prepare("SELECT plan_id, compartment, MAX(epoch) FROM commitments GROUP BY 1, 2 ORDER BY 1, 2")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(|r| r.unwrap()).collect()
    };
    let (epochs_before, devices_before) = (epochs(&db), wim_devices(&net));

    let again: Value = serde_json::from_str(&net.admin.run(&["--json", "user", "offboard", "Wim"])).unwrap();
    assert_eq!(again["devices_revoked"], serde_json::json!([]), "{again}");
    assert_eq!(again["devices_already_revoked"].as_array().unwrap().len(), 2, "{again}");
    assert_eq!(again["plans_left"], serde_json::json!([]), "{again}");
    assert_eq!(again["rotation"]["documents"], 0, "{again}");
    let text = net.admin.run(&["user", "offboard", "Wim"]);
    assert!(text.contains("niets meer te doen"), "{text}");
    assert_eq!(epochs(&db), epochs_before, "no plan moved to another key");
    assert_eq!(wim_devices(&net), devices_before, "no device changed");
}

/// Runs `eenplan-admin user offboard` and kills it as it starts revoking the devices.
fn offboard_and_kill_midway(net: &Network, user: &str) {
    let mut child = Command::new(binary("eenplan-admin"))
        .arg("--data")
        .arg(&net.admin.data)
        .args(["user", "offboard", user])
        .env("EENPLAN_ADMIN_PASSPHRASE", ADMIN_PASSPHRASE)
        .env("EENPLAN_INSECURE_FAST_KDF", "1")
        .env("EENPLAN_SERVER", &net.admin.server)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut killed = false;
    for line in BufReader::new(stderr).lines() {
        if line.unwrap().contains("intrekken") {
            child.kill().unwrap();
            killed = true;
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(killed && !status.success(), "the offboarding finished before it could be interrupted");
}

#[test]
fn an_interrupted_offboarding_finishes_when_run_again() {
    let net = Network::start(USERS);
    let (mut rita, plans) = wim_on_five_plans(&net);
    offboard_and_kill_midway(&net, "Wim");
    let finished: Value =
        serde_json::from_str(&net.admin.run(&["--json", "user", "offboard", "Wim"])).unwrap();
    // What the interrupted run did is not done twice.
    let revoked = finished["devices_revoked"].as_array().unwrap().len()
        + finished["devices_already_revoked"].as_array().unwrap().len();
    assert_eq!(revoked, 2, "{finished}");
    rita_writes_after(&mut rita, &plans);
    wim_is_gone(&net, &rita, &plans);
    for name in ["wim-phone", "wim-laptop"] {
        let mut device = Device::open(&net.path(name), &device_keystore()).unwrap();
        assert!(matches!(device.sync(), Err(CoreError::Wiped)), "{name} must wipe itself");
    }
}
