//! Retention end to end (DESIGN §8), with the real server, the real admin CLI and devices:
//! a plan closed by its regisseur refuses edits but stays readable; devices remove their copy
//! once the policy's grace period has passed (by an injected device clock), and a plan whose
//! user was removed goes the same way; after removal nothing of the plan is left in the
//! store; `eenplan-admin retention run` erases nothing before the retention end and, once it
//! has passed, leaves nothing of the plan in a copy of the server's database.
//!
//! Time: the devices' grace period is exercised with an injected clock (`ManualClock`). The
//! server and the admin CLI run on real clocks; the retention end is reached honestly with a
//! root-signed policy of `[retention] years = 0, grace_days = 0` (the end is the close
//! itself), set after a run under the default 20 years erased nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use eenplan_core::clock::ManualClock;
use eenplan_core::plan::{Compartment, NoteKind};
use eenplan_core::retention::RetireReason;
use eenplan_core::store::DB_FILE;
use eenplan_core::{CoreError, Device, PlanId, PlanListEntry};
use eenplan_tests::cli::Cli;
use eenplan_tests::network::{Network, device_keystore};

const USERS: &[(&str, &str, &str)] =
    &[("Wim", "Wijkteam Zaanstad", "wijkteam"), ("Ans", "Wijkteam Zaanstad", "wijkteam")];
const DAY_MS: i64 = 24 * 3600 * 1000;
const SECRET: &str = "Kwartelkoning-Retentie-Zwaluwstaart";

fn plans(device: &Device) -> Vec<PlanId> {
    device
        .list_plans()
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            PlanListEntry::Ok(s) => Some(s.id),
            PlanListEntry::Damaged { .. } => None,
        })
        .collect()
}

fn notes(device: &mut Device, plan: &PlanId) -> Vec<String> {
    device.read(plan).unwrap().notes.into_iter().map(|n| n.text).collect()
}

/// Wim's plan with a note, shared with Ans; both devices hold it.
fn shared_plan(net: &Network) -> (Device, Device, PlanId) {
    let mut wim = net.device("wim", "Wim");
    let mut ans = net.device("ans", "Ans");
    let plan = wim.create_plan("Jansen").unwrap();
    wim.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::HomeVisit, SECRET)).unwrap();
    wim.sync().unwrap();
    wim.add_participant(&plan, "Ans", "wijkteam").unwrap();
    ans.sync().unwrap();
    ans.sync().unwrap();
    assert_eq!(notes(&mut ans, &plan), [SECRET]);
    (wim, ans, plan)
}

/// `device` reopened with a device clock `days` after now.
fn days_later(net: &Network, name: &str, days: i64) -> Device {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let clock = Arc::new(ManualClock::new(now + days * DAY_MS));
    Device::open(&net.path(name), &device_keystore()).unwrap().with_clock(clock)
}

#[test]
fn a_closed_plan_refuses_edits_but_can_be_read_until_its_copy_is_removed() {
    let net = Network::start(USERS);
    let (mut wim, mut ans, plan) = shared_plan(&net);
    // Only the regisseur closes.
    assert!(matches!(ans.close_case(&plan), Err(CoreError::NotAllowed(_))));
    wim.close_case(&plan).unwrap();
    wim.sync_membership().unwrap();
    assert!(wim.closed_at(&plan).unwrap().is_some());
    let refused = wim.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "te laat"));
    assert!(matches!(refused, Err(CoreError::PlanClosed(p)) if p == plan), "{refused:?}");
    assert!(refused.unwrap_err().to_string().contains("het plan is afgesloten"));
    assert!(matches!(wim.close_case(&plan), Err(CoreError::PlanClosed(_))));

    ans.sync().unwrap();
    assert!(ans.closed_at(&plan).unwrap().is_some());
    assert!(matches!(
        ans.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "te laat")),
        Err(CoreError::PlanClosed(_))
    ));
    assert_eq!(notes(&mut ans, &plan), [SECRET], "reads go on during the grace period");
    assert!(plans(&ans).contains(&plan));

    // The command line: `plan close` answers in Dutch, and an edit after it is refused.
    let cli = Cli::enrolled(&net, "wim-cli", "Wim");
    let other = cli.ok(&["plan", "create", "--family", "De Vries"]);
    cli.ok(&["sync"]);
    let closed = cli.ok(&["plan", "close", &other]);
    assert!(closed.contains("plan afgesloten"), "{closed}");
    let refused = cli.run(&["plan", "phase", &other, "evaluatie"]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("het plan is afgesloten"), "{why}");
    let show = cli.json(&["plan", "show", &other]);
    assert_eq!(show["membership"]["steps"][1]["act"], "close", "{show}");
}

#[test]
fn a_closed_plan_disappears_from_a_participants_device_after_the_grace_period_and_not_before() {
    let net = Network::start(USERS);
    let (mut wim, mut ans, plan) = shared_plan(&net);
    wim.close_case(&plan).unwrap();
    wim.sync_membership().unwrap();
    ans.sync().unwrap();
    drop(ans);

    // The default policy: 30 days of grace, counted from when Ans's device learnt of the close.
    // (Reading needs a sync by then: the offline lease is 72 hours.)
    let mut ans = days_later(&net, "ans", 29);
    assert_eq!(ans.retire_expired_plans().unwrap(), []);
    drop(ans);
    let mut ans = days_later(&net, "ans", 31);
    assert_eq!(ans.retire_expired_plans().unwrap(), [plan]);
    // A sync (which renews the lease) does not bring it back.
    let report = ans.sync().unwrap();
    assert!(report.new_plans.is_empty(), "{report:?}");
    assert!(!plans(&ans).contains(&plan));
    assert!(matches!(ans.read(&plan), Err(CoreError::UnknownPlan(_))));
}

#[test]
fn a_plan_whose_user_was_removed_disappears_after_the_grace_period_and_comes_back_when_added_again() {
    let net = Network::start(USERS);
    let (mut wim, mut ans, plan) = shared_plan(&net);
    wim.remove_participant(&plan, "Ans").unwrap();
    wim.sync_membership().unwrap();
    let report = ans.sync().unwrap();
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    let left = ans.membership(&plan).unwrap().unwrap();
    assert_eq!(left.participants.len(), 1, "Ans's device holds the signed removal: {left:?}");
    assert_eq!(notes(&mut ans, &plan), [SECRET], "what Ans merged stays readable for now");
    drop(ans);
    let mut ans = days_later(&net, "ans", 29);
    assert_eq!(ans.retire_expired_plans().unwrap(), []);
    drop(ans);
    let mut ans = days_later(&net, "ans", 31);
    assert_eq!(ans.retire_expired_plans().unwrap(), [plan]);
    ans.sync().unwrap();
    assert!(plans(&ans).is_empty());
    // Wim, still a participant of an open plan, keeps it.
    assert!(wim.retire_expired_plans().unwrap().is_empty());
    assert!(plans(&wim).contains(&plan));

    // Added back, the plan comes back to Ans like a newly shared one.
    wim.add_participant(&plan, "Ans", "wijkteam").unwrap();
    for _ in 0..2 {
        ans.sync().unwrap();
        wim.sync().unwrap();
    }
    ans.sync().unwrap();
    assert!(plans(&ans).contains(&plan));
    assert_eq!(notes(&mut ans, &plan), [SECRET]);
}

/// Every row of the tables that hold plans, by table.
fn plan_rows(db: &Path) -> Vec<(&'static str, i64)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    [
        "plans",
        "documents",
        "changes",
        "doc_keys",
        "epoch_rules",
        "pending_bundles",
        "membership",
        "registered_plans",
        "review_marks",
        "parked_bundles",
    ]
    .into_iter()
    .map(|table| (table, conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0)).unwrap()))
    .collect()
}

/// Every blob of at least 48 bytes in the store's plan tables: sealed plan content.
fn sealed_blobs(db: &Path) -> Vec<Vec<u8>> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut out = Vec::new();
    for (table, column) in
        [("plans", "sealed"), ("documents", "snapshot"), ("changes", "sealed"), ("membership", "sealed")]
    {
        let mut stmt =
            conn.prepare(&format!("SELECT {column} FROM {table} WHERE {column} IS NOT NULL")).unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap();
        out.extend(rows.map(Result::unwrap).filter(|b| b.len() >= 48));
    }
    out
}

fn files(db: &Path) -> Vec<Vec<u8>> {
    [db.to_path_buf(), db.with_extension("db-wal")].iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn after_removal_no_row_and_no_sealed_byte_of_the_plan_is_left_in_the_store_file() {
    let net = Network::start(USERS);
    let (mut wim, mut ans, plan) = shared_plan(&net);
    wim.close_case(&plan).unwrap();
    wim.sync_membership().unwrap();
    ans.sync().unwrap();
    drop(ans);
    let db = net.path("ans").join(DB_FILE);
    let sealed = sealed_blobs(&db);
    assert!(sealed.len() >= 3, "the plan's header, documents and chain are sealed rows");

    let mut ans = Device::open(&net.path("ans"), &device_keystore()).unwrap();
    ans.retire_plan(&plan, RetireReason::Closed).unwrap();
    drop(ans);
    for (table, rows) in plan_rows(&db) {
        assert_eq!(rows, 0, "{table} still holds rows of the plan");
    }
    for bytes in files(&db) {
        assert!(!contains(&bytes, SECRET.as_bytes()), "the plan's words are in the store");
        for blob in &sealed {
            assert!(!contains(&bytes, &blob[..48]), "a sealed row of the plan is still in the file or WAL");
        }
    }
}

type Rows = Vec<Vec<u8>>;
type ServerRows = (Rows, Rows, Rows);

/// Rows of `plan` in a copy of the server's database (as an attacker with the disk would
/// take it): (bundles, envelopes, escrow envelopes), with their bytes.
fn server_rows(db: &Path, plan: &PlanId) -> ServerRows {
    let copy = db.with_extension(format!("copy-{}.db", rand_suffix()));
    let source = rusqlite::Connection::open(db).unwrap();
    source.execute("VACUUM INTO ?1", [copy.to_str().unwrap()]).unwrap();
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let rows = |sql: &str| -> Vec<Vec<u8>> {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([&plan.as_bytes()[..]], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    let out = (
        rows("SELECT bytes FROM bundles WHERE plan_id = ?1"),
        rows("SELECT bytes FROM envelopes WHERE plan_id = ?1"),
        rows("SELECT bytes FROM escrow_envelopes WHERE plan_id = ?1"),
    );
    drop(conn);
    std::fs::remove_file(&copy).unwrap();
    out
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

#[test]
fn retention_run_erases_a_closed_plan_only_after_its_end_and_a_copy_of_the_server_database_opens_nothing_of_it()
 {
    let net = Network::start(USERS);
    let (mut wim, mut ans, plan) = shared_plan(&net);
    let other = wim.create_plan("De Vries").unwrap();
    wim.sync().unwrap();
    wim.close_case(&plan).unwrap();
    wim.sync_membership().unwrap();
    ans.sync().unwrap();

    // Under the default policy (20 years) nothing is erased.
    let run = net.admin.run(&["retention", "run"]);
    assert!(run.contains("bewaard") && run.contains("0 plan(nen) gewist"), "{run}");
    let db = net.server.data.join("server.db");
    let (bundles, envelopes, escrow) = server_rows(&db, &plan);
    assert!(!bundles.is_empty() && !envelopes.is_empty() && !escrow.is_empty());
    // A plan the server lists before its end is not erased by asking either.
    let early = net.admin.output(&["retention", "run", "--now", "2100-01-01"]);
    let early = String::from_utf8_lossy(&early.stdout).into_owned();
    assert!(early.contains("retention_not_over"), "{early}");
    assert_eq!(server_rows(&db, &plan).0.len(), bundles.len());

    // A root-signed policy whose retention ends at the close.
    let current = net.admin.run(&["policy", "show"]);
    let next = current.replace("version = 1", "version = 2") + "\n[retention]\nyears = 0\ngrace_days = 0\n";
    let file = net.path("policy-v2.toml");
    std::fs::write(&file, next).unwrap();
    net.admin.run(&["policy", "set", file.to_str().unwrap()]);
    let report: serde_json::Value =
        serde_json::from_str(&net.admin.run(&["--json", "retention", "run"])).unwrap();
    let erased = &report["plans"][0];
    assert_eq!(erased["plan"], plan.to_string());
    assert_eq!(erased["outcome"], "erased", "{report}");
    assert!(erased["escrow_envelopes"].as_u64().unwrap() >= 1);
    let again = net.admin.run(&["retention", "run"]);
    assert!(again.contains("Geen afgesloten plannen"), "{again}");

    // Nothing of the plan in a copy of the database, and none of its bytes in the file or WAL.
    assert_eq!(server_rows(&db, &plan), (vec![], vec![], vec![]));
    for bytes in files(&db) {
        for erased in bundles.iter().chain(&envelopes).chain(&escrow) {
            let sample = &erased[..erased.len().min(64)];
            assert!(!contains(&bytes, sample), "erased bytes remain in the server's files");
        }
    }
    // The other, open plan is untouched.
    assert!(!server_rows(&db, &other).0.is_empty());

    // Devices that sync take in the policy and, with no grace left, remove their copies.
    let report = ans.sync().unwrap();
    assert_eq!(report.retired_plans, [plan]);
    assert!(plans(&ans).is_empty());
    wim.sync().unwrap();
    assert_eq!(plans(&wim), [other]);
}

#[test]
fn a_plan_the_server_calls_closed_is_not_erased_unless_its_signed_chain_says_so() {
    let mut net = Network::start(USERS);
    let (_wim, _ans, plan) = shared_plan(&net);
    let current = net.admin.run(&["policy", "show"]);
    let next = current.replace("version = 1", "version = 2") + "\n[retention]\nyears = 0\ngrace_days = 0\n";
    let file = net.path("policy-v2.toml");
    std::fs::write(&file, next).unwrap();
    net.admin.run(&["policy", "set", file.to_str().unwrap()]);
    // A compromised server lists the open plan as closed long ago.
    net.tamper_with_server_database(|conn| {
        conn.execute("UPDATE plans SET closed_at = 1 WHERE plan_id = ?1", [&plan.as_bytes()[..]]).unwrap();
    });
    let report: serde_json::Value =
        serde_json::from_str(&net.admin.run(&["--json", "retention", "run"])).unwrap();
    assert_eq!(report["plans"][0]["outcome"], "not_closed", "{report}");
    let db = net.server.data.join("server.db");
    assert!(!server_rows(&db, &plan).0.is_empty(), "nothing of the open plan is erased");
}
