#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The real `eenplan` binary against temporary data directories.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use tempfile::TempDir;

const PASSPHRASE: &str = "correct horse battery staple";
const TRANSFER: &str = "usb-stick";

/// One device: a data directory and the passphrase that unlocks it.
struct Device {
    dir: TempDir,
    passphrase: String,
}

impl Device {
    fn init() -> Device {
        let device = Device { dir: TempDir::new().unwrap(), passphrase: PASSPHRASE.into() };
        let id = device.ok(&["init"]);
        assert_eq!(id.len(), 32, "init prints the device id, got {id:?}");
        device
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("device")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_eenplan"));
        command
            .args(args)
            .env_remove("EENPLAN_NEW_PASSPHRASE")
            .env("EENPLAN_DATA", self.data())
            .env("EENPLAN_PASSPHRASE", &self.passphrase)
            .env("EENPLAN_TRANSFER_PASSPHRASE", TRANSFER)
            .env("EENPLAN_INSECURE_FAST_KDF", "1")
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs a command that must succeed; its stdout, trimmed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "eenplan {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    /// Runs a command that must fail; its exit code and stderr.
    fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        assert!(!out.status.success(), "eenplan {args:?} should have failed");
        assert!(out.stdout.is_empty(), "a failed command prints nothing on stdout");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.starts_with("error: "), "stderr: {stderr}");
        (out.status.code().unwrap(), stderr)
    }

    fn show(&self, plan: &str) -> Value {
        self.json(&["plan", "show", plan])
    }

    fn export(&self, plan: &str, name: &str) -> PathBuf {
        let path = self.file(name);
        self.ok(&["export", plan, "--changes", path.to_str().unwrap()]);
        path
    }

    fn import(&self, path: &Path) -> Value {
        self.json(&["import", "--changes", path.to_str().unwrap()])
    }
}

/// A plan with one goal holding one action: (plan, goal, action).
fn plan_with_goal_and_action(device: &Device) -> (String, String, String) {
    let plan = device.ok(&["plan", "create", "--family", "Jansen"]);
    let goal = device.ok(&["goal", "add", &plan, "--domain", "financiën", "--title", "Schulden in beeld"]);
    let action = device.ok(&[
        "action",
        "add",
        &plan,
        "--goal",
        &goal,
        "--title",
        "Budgetcoach regelen",
        "--owner",
        "Wijkteam Noord",
        "--due",
        "2025-02-01",
    ]);
    (plan, goal, action)
}

#[test]
fn a_full_edit_flow_shows_up_in_plan_show_json() {
    let d = Device::init();
    let plan = d.ok(&["plan", "create", "--family", "Jansen", "--domains", "financiën,huisvesting,justitie"]);
    assert_eq!(plan.len(), 32, "plan create prints only the id");
    let member = d.ok(&[
        "member",
        "add",
        &plan,
        "--name",
        "Piet Jansen",
        "--relation",
        "vader",
        "--birth-date",
        "1980-02-03",
        "--gezag",
    ]);
    let child = d.ok(&["member", "add", &plan, "--name", "Sem", "--relation", "zoon"]);
    let anna_card = d.ok(&[
        "participant",
        "add",
        &plan,
        "--name",
        "Anna de Vries",
        "--org",
        "Wijkteam Noord",
        "--role",
        "wijkteam",
    ]);
    let goal = d.ok(&["goal", "add", &plan, "--domain", "financiën", "--title", "Schulden in beeld"]);
    d.ok(&["goal", "set", &plan, &goal, "--status", "in_progress", "--title", "Schulden op een rij"]);
    d.ok(&[
        "score",
        "set",
        &plan,
        "--member",
        &member,
        "--domain",
        "financiën",
        "--date",
        "2025-01-05",
        "--score",
        "2",
    ]);
    let action = d.ok(&[
        "action",
        "add",
        &plan,
        "--goal",
        &goal,
        "--title",
        "Budgetcoach regelen",
        "--owner",
        "Wijkteam Noord",
        "--due",
        "2025-02-01",
    ]);
    d.ok(&["action", "set", &plan, &action, "--status", "done", "--no-due"]);
    let agreement = d.ok(&["agreement", "add", &plan, "--text", "Piet belt elke maandag de budgetcoach"]);
    // No compartment named: a home-visit note goes to zorg, never to basis, and the worker
    // is told who reads it (here: nobody else, the device is not enrolled).
    let added = d.run(&["note", "add", &plan, "--text", "Huisbezoek: rustig gesprek"]);
    assert!(added.status.success());
    let visit = String::from_utf8(added.stdout).unwrap().trim().to_owned();
    assert_eq!(
        String::from_utf8(added.stderr).unwrap().trim(),
        "Zorg: zichtbaar voor: alleen dit apparaat (nog niet aangemeld bij een server)"
    );
    assert_eq!(
        d.json(&["plan", "readers", &plan, "--compartment", "zorg"]),
        serde_json::json!({ "shared": "this_device_only" })
    );
    let worry = d.ok(&["note", "add", &plan, "--compartment", "veiligheid", "--text", "Spanning thuis"]);
    let safety =
        d.ok(&["safety", "add", &plan, "--danger", "Ruzie escaleert", "--goal", "Sem veilig bij oma"]);
    d.ok(&["plan", "phase", &plan, "uitvoering"]);
    // Escalating moves the case through the plan's signed membership, which a device that was
    // never enrolled does not have: it says so instead of recording a step that changes
    // nobody's access.
    let (_, why) = d.fails(&[
        "plan",
        "escalate",
        &plan,
        "--level",
        "lokaal",
        "--reason",
        "Veel partijen",
        "--grondslag",
        "convenant",
    ]);
    assert!(why.contains("synchroniseer eerst"), "{why}");
    let (code, why) =
        d.fails(&["plan", "escalate", &plan, "--level", "lokaal", "--reason", "x", "--grondslag", "wens"]);
    assert_eq!(code, 2, "{why}");

    let view = d.show(&plan);
    assert_eq!(view["id"], plan);
    assert_eq!(view["family"], "Jansen");
    assert_eq!(view["phase"], "uitvoering");
    assert_eq!(view["membership"], Value::Null, "no signed membership before the first sync");
    assert_eq!(view["escalation_level"], "regulier");
    assert_eq!(view["escalations"], serde_json::json!([]));
    assert_eq!(view["domains"], serde_json::json!(["financiën", "huisvesting", "justitie"]));
    assert_eq!(view["members"][0]["id"], member);
    assert_eq!(view["members"][0]["birth_date"], "1980-02-03");
    assert_eq!(view["members"][0]["parental_authority"], true);
    assert_eq!(view["members"][1]["id"], child);
    assert_eq!(view["members"][1]["parental_authority"], false);
    assert_eq!(view["participants"][0]["role"], "wijkteam");
    assert_eq!(view["participants"][0]["id"], anna_card, "the plan's own contact list");
    assert_eq!(view["goals"][0]["id"], goal);
    assert_eq!(view["goals"][0]["status"], "in_progress");
    assert_eq!(view["goals"][0]["title"], "Schulden op een rij");
    assert_eq!(view["scores"][0]["member"], member);
    assert_eq!(view["scores"][0]["score"], 2);
    assert_eq!(view["actions"][0]["id"], action);
    assert_eq!(view["actions"][0]["status"], "done");
    assert_eq!(view["actions"][0]["due"], Value::Null);
    assert_eq!(view["actions"][0]["owner_user"], Value::Null, "an owner is a participant of the signed list");
    assert_eq!(view["agreements"][0]["id"], agreement);
    assert_eq!(view["notes"][0]["id"], visit);
    assert_eq!(view["notes"][0]["compartment"], "zorg");
    assert_eq!(view["notes"][0]["kind"], "home_visit");
    assert_eq!(view["notes"][1]["id"], worry);
    assert_eq!(view["notes"][1]["compartment"], "veiligheid");
    assert_eq!(view["notes"][1]["kind"], "note");
    assert_eq!(view["safety_items"][0]["id"], safety);
    assert_eq!(view["safety_items"][0]["safety_goal"], "Sem veilig bij oma");

    let text = d.ok(&["plan", "show", &plan]);
    for expected in
        ["Jansen", "Financiën", "Schulden op een rij", "Budgetcoach regelen", "Sem veilig bij oma", "Bezig"]
    {
        assert!(text.contains(expected), "human output lacks {expected:?}:\n{text}");
    }
    let list = d.json(&["plan", "list"]);
    assert_eq!(list, serde_json::json!([{ "status": "ok", "id": plan, "family": "Jansen" }]));
    let status = d.json(&["status"]);
    assert_eq!(status["plans"], 1);
    assert!(status["pending_changes"].as_u64().unwrap() > 0);
    assert!(status["disk_usage_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn two_stores_editing_the_same_plan_converge_after_settling_their_conflicts() {
    let a = Device::init();
    let b = Device::init();
    let (plan, goal, action) = plan_with_goal_and_action(&a);
    let first = a.export(&plan, "first.epx");
    let report = b.import(&first);
    assert_eq!(report["plan"], plan);
    assert_eq!(report["new_plan"], true);

    a.ok(&["goal", "set", &plan, &goal, "--status", "achieved"]);
    a.ok(&["action", "set", &plan, &action, "--due", "2025-03-01"]);
    b.ok(&["goal", "set", &plan, &goal, "--status", "cancelled"]);
    b.ok(&["action", "set", &plan, &action, "--due", "2025-04-01"]);
    let from_a = a.export(&plan, "from-a.epx");
    let from_b = b.export(&plan, "from-b.epx");
    assert!(a.import(&from_b)["changes"].as_u64().unwrap() > 0);
    assert!(b.import(&from_a)["changes"].as_u64().unwrap() > 0);
    assert_eq!(a.show(&plan), b.show(&plan), "both show the same plan after exchanging changes");

    let conflicts = a.json(&["conflicts", &plan]);
    assert_eq!(conflicts, b.json(&["conflicts", &plan]), "both list the same conflicts");
    let conflicts = conflicts.as_array().unwrap();
    assert_eq!(conflicts.len(), 2, "{conflicts:#?}");
    let status_conflict = format!("basis/goals/{goal}/status");
    let due_conflict = format!("basis/actions/{action}/due");
    let ids: Vec<&str> = conflicts.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&status_conflict.as_str()) && ids.contains(&due_conflict.as_str()), "{ids:?}");
    for conflict in conflicts {
        let values = conflict["values"].as_array().unwrap();
        assert_eq!(values.len(), 2);
        assert_eq!(values[0]["pick"], 1);
        assert_eq!(values[1]["pick"], 2);
        for v in values {
            assert_eq!(v["author"].as_str().unwrap().len(), 32, "each value names its author device");
            assert!(v["at"].as_str().unwrap().ends_with('Z'), "times are UTC ISO-8601: {v}");
        }
    }
    let human = a.ok(&["conflicts", &plan]);
    assert!(human.contains(&status_conflict) && human.contains("1. ") && human.contains("2. "), "{human}");

    let picked = |id: &str| -> Value {
        let c = conflicts.iter().find(|c| c["id"] == id).unwrap();
        c["values"][0]["value"].clone()
    };
    let (status_pick, due_pick) = (picked(&status_conflict), picked(&due_conflict));
    a.ok(&["resolve", &plan, &status_conflict, "--pick", "1"]);
    a.ok(&["resolve", &plan, &due_conflict, "--pick", "1"]);
    assert_eq!(a.json(&["conflicts", &plan]), serde_json::json!([]));

    let settled = a.export(&plan, "settled.epx");
    b.import(&settled);
    assert_eq!(b.json(&["conflicts", &plan]), serde_json::json!([]));
    assert_eq!(b.ok(&["conflicts", &plan]), "no conflicts");
    let (view_a, view_b) = (a.show(&plan), b.show(&plan));
    assert_eq!(view_a, view_b, "both show the same plan after the resolution travelled");
    assert_eq!(view_a["goals"][0]["status"], status_pick);
    assert_eq!(view_a["actions"][0]["due"], due_pick);
}

#[test]
fn resolving_with_a_new_value_checks_it_like_an_edit() {
    let a = Device::init();
    let b = Device::init();
    let (plan, goal, _) = plan_with_goal_and_action(&a);
    b.import(&a.export(&plan, "first.epx"));
    a.ok(&["goal", "set", &plan, &goal, "--status", "achieved"]);
    b.ok(&["goal", "set", &plan, &goal, "--status", "cancelled"]);
    a.import(&b.export(&plan, "from-b.epx"));
    let conflict = format!("basis/goals/{goal}/status");

    let (code, stderr) = a.fails(&["resolve", &plan, &conflict, "--value", "klaar"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("not a valid goal status"), "{stderr}");
    a.ok(&["resolve", &plan, &conflict, "--value", "in_progress"]);
    assert_eq!(a.show(&plan)["goals"][0]["status"], "in_progress");
    assert_eq!(a.json(&["conflicts", &plan]), serde_json::json!([]));
}

#[test]
fn resolving_with_an_out_of_range_pick_is_a_typed_usage_error() {
    let a = Device::init();
    let b = Device::init();
    let (plan, goal, _) = plan_with_goal_and_action(&a);
    b.import(&a.export(&plan, "first.epx"));
    a.ok(&["goal", "set", &plan, &goal, "--status", "achieved"]);
    b.ok(&["goal", "set", &plan, &goal, "--status", "cancelled"]);
    a.import(&b.export(&plan, "from-b.epx"));
    let conflict = format!("basis/goals/{goal}/status");
    let before = a.show(&plan);

    let (code, stderr) = a.fails(&["resolve", &plan, &conflict, "--pick", "3"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("has 2 values; there is no value 3"), "{stderr}");
    let (code, _) = a.fails(&["resolve", &plan, &conflict, "--pick", "0"]);
    assert_eq!(code, 2, "values count from 1");
    let (code, stderr) = a.fails(&["resolve", &plan, "basis/goals/nothing/status", "--pick", "1"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no conflict"), "{stderr}");
    assert_eq!(a.show(&plan), before, "a refused resolution changes nothing");
    assert_eq!(a.json(&["conflicts", &plan]).as_array().unwrap().len(), 1);
}

#[test]
fn a_wrong_passphrase_exits_nonzero_with_a_clear_message() {
    let mut d = Device::init();
    let plan = d.ok(&["plan", "create", "--family", "Jansen"]);
    d.passphrase = "wrong horse".into();
    let (code, stderr) = d.fails(&["plan", "show", &plan]);
    assert_eq!(code, 1);
    assert!(stderr.contains("passphrase") && stderr.contains("does not unlock this device"), "{stderr}");
}

#[test]
fn a_changed_passphrase_unlocks_the_device_and_the_old_one_no_longer_does() {
    let mut d = Device::init();
    let plan = d.ok(&["plan", "create", "--family", "Jansen"]);
    let out =
        d.command(&["passphrase", "change"]).env("EENPLAN_NEW_PASSPHRASE", "nieuw geheim").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, _) = d.fails(&["plan", "list"]);
    assert_eq!(code, 1);
    d.passphrase = "nieuw geheim".into();
    assert_eq!(d.show(&plan)["family"], "Jansen");
}

#[test]
fn importing_a_garbage_file_is_refused_and_leaves_the_plan_intact() {
    let d = Device::init();
    let (plan, _, _) = plan_with_goal_and_action(&d);
    let before = d.show(&plan);
    let garbage = d.file("garbage.epx");
    std::fs::write(&garbage, b"this is a shopping list, not a plan".repeat(20)).unwrap();

    let (code, stderr) = d.fails(&["import", "--changes", garbage.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("not an eenplan changes file"), "{stderr}");
    let (_, stderr) = d.fails(&["import", "--changes", d.file("missing.epx").to_str().unwrap()]);
    assert!(stderr.contains("cannot open") && stderr.contains("missing.epx"), "{stderr}");
    assert_eq!(d.show(&plan), before);
}

#[test]
fn importing_a_truncated_export_is_refused_and_leaves_the_plan_intact() {
    let a = Device::init();
    let b = Device::init();
    let (plan, goal, _) = plan_with_goal_and_action(&a);
    b.import(&a.export(&plan, "first.epx"));
    a.ok(&["goal", "set", &plan, &goal, "--status", "achieved"]);
    let export = a.export(&plan, "second.epx");
    let bytes = std::fs::read(&export).unwrap();
    let before = b.show(&plan);

    let truncated = b.file("truncated.epx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let (code, stderr) = b.fails(&["import", "--changes", truncated.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("changes file") && stderr.contains("altered"), "{stderr}");

    std::fs::write(&truncated, &bytes[..6]).unwrap();
    let (_, stderr) = b.fails(&["import", "--changes", truncated.to_str().unwrap()]);
    assert!(stderr.contains("truncated"), "{stderr}");
    assert_eq!(b.show(&plan), before, "nothing of a refused file reaches the plan");

    let out = b
        .command(&["import", "--changes", export.to_str().unwrap()])
        .env("EENPLAN_TRANSFER_PASSPHRASE", "fout")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("transfer passphrase does not open this file"));
    assert_eq!(b.show(&plan), before);
}

#[test]
fn export_writes_the_file_in_one_piece_and_leaves_no_temporary_file() {
    let d = Device::init();
    let plan = d.ok(&["plan", "create", "--family", "Jansen"]);
    let path = d.file("plan.epx");
    std::fs::write(&path, b"an older export").unwrap();
    d.export(&plan, "plan.epx");
    assert!(std::fs::read(&path).unwrap().starts_with(b"EPX1"));
    assert!(!d.file("plan.epx.tmp").exists());
}

#[test]
fn a_score_of_six_is_refused() {
    let d = Device::init();
    let plan = d.ok(&["plan", "create", "--family", "Jansen"]);
    let member = d.ok(&["member", "add", &plan, "--name", "Piet", "--relation", "vader"]);
    let (code, stderr) = d.fails(&[
        "score",
        "set",
        &plan,
        "--member",
        &member,
        "--domain",
        "financiën",
        "--date",
        "2025-01-05",
        "--score",
        "6",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("1 to 5, got 6"), "{stderr}");
    let (code, stderr) = d.fails(&[
        "score",
        "set",
        &plan,
        "--member",
        &member,
        "--domain",
        "financiën",
        "--date",
        "5-1-2025",
        "--score",
        "3",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("YYYY-MM-DD"), "{stderr}");
    assert_eq!(d.show(&plan)["scores"], serde_json::json!([]));
}

#[test]
fn a_goal_in_an_unknown_domain_is_refused() {
    let d = Device::init();
    let plan = d.ok(&["plan", "create", "--family", "Jansen"]);
    let (code, stderr) = d.fails(&["goal", "add", &plan, "--domain", "sterrenkunde", "--title", "Telescoop"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("\"sterrenkunde\" is not a life domain of this plan"), "{stderr}");
    assert_eq!(d.show(&plan)["goals"], serde_json::json!([]));
}

#[test]
fn unknown_vocabulary_and_malformed_ids_are_usage_errors() {
    let d = Device::init();
    let plan = d.ok(&["plan", "create", "--family", "Jansen"]);
    let out = d.run(&["plan", "phase", &plan, "klaar"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values"));
    let out = d.run(&["goal", "set", &plan, "not-an-id", "--status", "open"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("16 hexadecimal characters"));
    let (code, stderr) = d.fails(&["goal", "set", &plan, "0123456789abcdef", "--status", "open"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no goal 0123456789abcdef"), "{stderr}");
}

#[test]
fn plans_can_be_named_by_a_unique_prefix_of_four_characters() {
    let d = Device::init();
    let plan = d.ok(&["plan", "create", "--family", "Jansen"]);
    assert_eq!(d.show(&plan[..4])["id"], plan);
    let (code, stderr) = d.fails(&["plan", "show", &plan[..3]]);
    assert_eq!(code, 2);
    assert!(stderr.contains("at least 4 characters"), "{stderr}");
    let (code, stderr) = d.fails(&["plan", "show", "ffffffff"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no plan on this device"), "{stderr}");
}

#[test]
fn commands_refuse_a_missing_data_directory_or_device() {
    let d = Device { dir: TempDir::new().unwrap(), passphrase: PASSPHRASE.into() };
    let (code, stderr) = d.fails(&["plan", "list"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("run init first"), "{stderr}");
    let out = d.command(&["plan", "list"]).env_remove("EENPLAN_DATA").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--data DIR"));
    d.ok(&["init"]);
    let (code, stderr) = d.fails(&["init"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("already holds an eenplan device"), "{stderr}");
}

#[test]
fn the_help_marks_the_fast_kdf_as_test_only() {
    let out = Command::new(env!("CARGO_BIN_EXE_eenplan")).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("EENPLAN_INSECURE_FAST_KDF=1  FOR TESTS ONLY"), "{help}");
}

#[test]
fn wrong_passphrases_count_down_and_the_last_one_wipes_the_device() {
    let mut d = Device::init();
    let plan = d.ok(&["plan", "create", "--family", "Jansen"]);
    d.passphrase = "wrong horse".into();
    let attempt = |d: &Device| {
        let out =
            d.command(&["plan", "show", &plan]).env("EENPLAN_MAX_FAILED_UNLOCKS", "3").output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) = attempt(&d);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("2 more wrong attempt"), "{stderr}");
    let (_, stderr) = attempt(&d);
    assert!(stderr.contains("1 more wrong attempt"), "{stderr}");
    let (code, stderr) = attempt(&d);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("has been wiped"), "{stderr}");

    // Even the right passphrase finds nothing now, and every command says why.
    d.passphrase = PASSPHRASE.into();
    let (code, stderr) = d.fails(&["plan", "list"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("has been wiped") && stderr.contains("eenplan init"), "{stderr}");

    // `init` sets up a new device in its place: a new id, no plans, the old passphrase useless.
    d.passphrase = "a new phone, a new passphrase".into();
    let id = d.ok(&["init"]);
    assert_eq!(id.len(), 32, "init prints the new device's id: {id:?}");
    assert_eq!(d.json(&["plan", "list"]), serde_json::json!([]));
    d.passphrase = PASSPHRASE.into();
    let (code, stderr) = d.fails(&["plan", "list"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("does not unlock"), "{stderr}");
}

#[test]
fn an_address_that_is_not_an_http_url_is_a_usage_error_that_says_what_is_wrong() {
    let d = Device::init();
    for (server, says) in [
        ("127.0.0.1:8443", "does not start with https://"),
        ("ftp://eenplan.example.nl", "only https:// and http://"),
        ("https://", "names no server"),
    ] {
        let (code, stderr) =
            d.fails(&["enrol", "--server", server, "--code", "AAAA-BBBB", "--name", "Laptop"]);
        assert_eq!(code, 2, "{server}: {stderr}");
        assert!(stderr.contains(says), "{server}: {stderr}");
    }
}

#[test]
fn a_malformed_failed_unlock_limit_is_a_usage_error() {
    let d = Device::init();
    let out = d.command(&["plan", "list"]).env("EENPLAN_MAX_FAILED_UNLOCKS", "0").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("EENPLAN_MAX_FAILED_UNLOCKS"));
}

#[test]
fn enrolling_over_plain_http_to_another_machine_is_warned_about() {
    let d = Device::init();
    // The code is malformed, so nothing is sent anywhere; the warning comes first.
    for (server, warned) in [
        ("http://eenplan.example.nl", true),
        ("http://127.0.0.1:9", false),
        ("https://eenplan.example.nl", false),
    ] {
        let out = d.run(&["enrol", "--server", server, "--code", "not-a-code", "--name", "Laptop"]);
        assert!(!out.status.success());
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(
            stderr.starts_with("warning: ") && stderr.contains("use https://"),
            warned,
            "{server}: {stderr}"
        );
    }
}

#[test]
fn review_lists_what_another_device_changed_in_dutch_and_after_mark_says_nothing_is_new() {
    let a = Device::init();
    let b = Device::init();
    let (plan, goal, _) = plan_with_goal_and_action(&a);
    b.import(&a.export(&plan, "first.epx"));
    b.ok(&["review", &plan, "--mark"]);
    assert_eq!(b.ok(&["review", &plan]), "Niets nieuw sinds uw laatste review.");

    a.ok(&["goal", "set", &plan, &goal, "--status", "achieved"]);
    b.import(&a.export(&plan, "second.epx"));
    let human = b.ok(&["review", &plan]);
    assert!(
        human.ends_with(": zette de status van doel ‘Schulden in beeld’ op Behaald")
            && human.contains("onbekend apparaat "),
        "{human}"
    );
    let review = b.json(&["review", &plan]);
    assert_eq!(review["lines"].as_array().unwrap().len(), 1, "{review:#}");
    assert_eq!(review["lines"][0]["compartment"], "basis");
    assert_eq!(review["lines"][0]["entity"], goal);
    assert!(review["since_ms"].as_i64().is_some());

    b.ok(&["review", &plan, "--mark"]);
    assert_eq!(b.json(&["review", &plan])["lines"], serde_json::json!([]));
}
