#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Roles against a real `eenplan-server` process and real devices: a user gets only a role the
//! policy in force names, and `user retire-role` moves everyone in a retired role (the old
//! `regisseur`) through `set-role`'s re-certification. The servers and binaries come from a
//! workspace build (`cargo build --workspace --bins`).

use eenplan_core::plan::{Compartment, NoteKind};
use eenplan_protocol::policy::DEFAULT_POLICY_TOML;
use eenplan_tests::network::Network;
use serde_json::Value;

/// What `regisseur` could do while it was a role: what a wijkteam worker can.
const REGISSEUR_ENTRY: &str = "[roles.regisseur]\nread = [\"basis\", \"zorg\", \"veiligheid\"]\nwrite = [\"basis\", \"zorg\", \"veiligheid\"]\n";
const OVERIG_ENTRY: &str = "[roles.overig]\nread = [\"basis\"]\nwrite = [\"basis\"]\n";

/// The shipped policy as `version`, naming the retired `regisseur` instead of `overig`: a
/// network set up before regie became a function per plan.
fn policy_of_an_older_network(version: u32) -> String {
    assert!(DEFAULT_POLICY_TOML.contains(OVERIG_ENTRY), "the shipped policy's overig entry changed");
    DEFAULT_POLICY_TOML.replacen("version = 1", &format!("version = {version}"), 1).replacen(
        OVERIG_ENTRY,
        REGISSEUR_ENTRY,
        1,
    )
}

fn set_policy(net: &Network, name: &str, text: &str) {
    let file = net.path(name);
    std::fs::write(&file, text).unwrap();
    net.admin.run(&["policy", "set", file.to_str().unwrap()]);
}

/// Runs an admin command that must fail as a usage error; its stderr.
fn refused(net: &Network, args: &[&str]) -> String {
    let out = net.admin.output(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "eenplan-admin {args:?}: {stderr}");
    stderr
}

fn role_of(net: &Network, name: &str) -> String {
    let users: Value = serde_json::from_str(&net.admin.run(&["user", "list", "--json"])).unwrap();
    let user = users.as_array().unwrap().iter().find(|u| u["name"] == name).unwrap();
    user["role"].as_str().unwrap().to_owned()
}

#[test]
fn a_user_gets_no_role_and_no_device_the_policy_in_force_does_not_name() {
    let net = Network::start(&[("Rob", "Buurtsportclub", "overig")]);
    set_policy(&net, "v2.toml", &policy_of_an_older_network(2));
    let stderr =
        refused(&net, &["user", "add", "--org", "Buurtsportclub", "--name", "Ans", "--role", "overig"]);
    assert!(stderr.contains("role \"overig\" is not in the sharing policy in force (version 2)"), "{stderr}");
    refused(&net, &["user", "set-role", "Rob", "--role", "overig"]);
    // Rob still carries the role the new policy dropped: no device of his is enrolled.
    let stderr = refused(&net, &["device", "enrol", "--user", "Rob"]);
    assert!(stderr.contains("retire-role --from overig"), "{stderr}");
    assert!(!net.admin.run(&["user", "list"]).contains("Ans"));
}

#[test]
fn retiring_regisseur_recertifies_every_user_in_it_as_wijkteam_and_their_devices_read_on() {
    let mut net = Network::start(&[
        ("Rita", "Wijkteam Noord", "wijkteam"),
        ("Ruud", "Wijkteam Zuid", "wijkteam"),
        ("Wim", "Wijkteam Noord", "wijkteam"),
    ]);
    // Rita and Ruud were added as regisseur while that was a role (no `user add` takes it now).
    net.tamper_with_server_database(|db| {
        db.execute("UPDATE users SET role = 'regisseur' WHERE name IN ('Rita', 'Ruud')", []).unwrap();
    });
    set_policy(&net, "v2.toml", &policy_of_an_older_network(2));
    let mut rita = net.device("rita", "Rita");
    assert_eq!(rita.status().unwrap().role.as_deref(), Some("regisseur"));
    let plan = rita.create_plan("Jansen").unwrap();
    rita.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::Note, "zorg: voor de rolwissel")).unwrap();
    rita.sync().unwrap();

    let out = net.admin.run(&["user", "retire-role", "--from", "regisseur", "--to", "wijkteam"]);
    let moved: Vec<&str> = out.lines().filter(|l| l.contains(" is now wijkteam (was regisseur)")).collect();
    assert_eq!(moved.len(), 2, "one line per user: {out}");
    assert!(moved.iter().any(|l| l.starts_with("Rita ") && l.ends_with("1 device(s) re-certified")), "{out}");
    assert!(moved.iter().any(|l| l.starts_with("Ruud ") && l.ends_with("0 device(s) re-certified")), "{out}");
    assert_eq!(
        (role_of(&net, "Rita"), role_of(&net, "Ruud"), role_of(&net, "Wim")),
        ("wijkteam".into(), "wijkteam".into(), "wijkteam".into())
    );

    // Rita's phone takes its new certificate at the next sync and keeps reading and writing.
    rita.sync().unwrap();
    assert_eq!(rita.status().unwrap().role.as_deref(), Some("wijkteam"));
    assert!(rita.keyed_compartments(&plan).unwrap().contains(&Compartment::Zorg));
    rita.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::Note, "zorg: na de rolwissel")).unwrap();
    let report = rita.sync().unwrap();
    assert!(report.refused.is_empty(), "{:?}", report.refused);

    // Nobody carries the role now, so the policy can drop it; a second run finds no one.
    set_policy(&net, "v3.toml", &DEFAULT_POLICY_TOML.replacen("version = 1", "version = 3", 1));
    let again = net.admin.run(&["user", "retire-role", "--from", "regisseur", "--to", "wijkteam"]);
    assert!(again.starts_with("no user has role \"regisseur\""), "{again}");
    net.device("ruud", "Ruud");
}
