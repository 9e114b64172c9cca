//! Erasing one family member's personal data (AVG) end to end, with the real server and
//! devices: the regisseur re-seals the plan's `basis` without the member and without its
//! history; afterwards a copy of the server's database and WAL holds none of the older
//! generation's bytes, every participant's device stands on the base, an edit a participant
//! made offline before it survives, and neither a participant nor a compromised server can
//! make a device take anything of the old generation back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use eenplan_core::plan::{Compartment, NewMember, NoteKind};
use eenplan_core::{CoreError, Device, EntityId, PlanId};
use eenplan_protocol::membership::{Act, Erasure};
use eenplan_protocol::sync::Fixed;
use eenplan_tests::cli::Cli;
use eenplan_tests::network::Network;

const USERS: &[(&str, &str, &str)] =
    &[("Wim", "Wijkteam Zaanstad", "wijkteam"), ("Ans", "Wijkteam Zaanstad", "wijkteam")];
const ERASED_NAME: &str = "Sanne-Wisbaar Jansen";

fn member(name: &str, birth: Option<&str>) -> NewMember {
    NewMember {
        name: name.into(),
        relation: "dochter".into(),
        birth_date: birth.map(str::to_owned),
        parental_authority: false,
    }
}

/// Wim's plan with two members (one to erase, with a ZRM score) and a note, shared with Ans.
fn shared_plan(net: &Network) -> (Device, Device, PlanId, EntityId) {
    let mut wim = net.device("wim", "Wim");
    let mut ans = net.device("ans", "Ans");
    let plan = wim.create_plan("Jansen").unwrap();
    let sanne = wim.edit(&plan, |p| p.add_member(member(ERASED_NAME, Some("2012-03-04")))).unwrap();
    wim.edit(&plan, |p| p.add_member(member("Piet Jansen", None))).unwrap();
    let domain = wim.read(&plan).unwrap().domains[0].clone();
    wim.edit(&plan, |p| p.set_score(sanne, &domain, "2026-11-01", 2)).unwrap();
    wim.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::HomeVisit, "huisbezoek gedaan")).unwrap();
    wim.sync().unwrap();
    wim.add_participant(&plan, "Ans", "wijkteam").unwrap();
    ans.sync().unwrap();
    ans.sync().unwrap();
    assert!(member_names(&mut ans, &plan).contains(&ERASED_NAME.to_owned()));
    (wim, ans, plan, sanne)
}

fn member_names(device: &mut Device, plan: &PlanId) -> Vec<String> {
    device.read(plan).unwrap().members.into_iter().map(|m| m.name).collect()
}

fn notes(device: &mut Device, plan: &PlanId) -> Vec<String> {
    device.read(plan).unwrap().notes.into_iter().map(|n| n.text).collect()
}

/// Syncs each device in turn until none brings anything new (keys travel through devices).
fn settle(devices: &mut [&mut Device]) {
    for _ in 0..3 {
        for device in devices.iter_mut() {
            device.sync().unwrap();
        }
    }
}

type Rows = Vec<Vec<u8>>;

/// `basis` rows of `plan` in a copy of the server's database: (bundles, envelopes, escrow).
fn basis_rows(db: &Path, plan: &PlanId) -> (Rows, Rows, Rows) {
    let copy = db.with_extension("copy.db");
    let _ = std::fs::remove_file(&copy);
    let source = rusqlite::Connection::open(db).unwrap();
    source.execute("VACUUM INTO ?1", [copy.to_str().unwrap()]).unwrap();
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let rows = |sql: &str| -> Rows {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([&plan.as_bytes()[..]], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    let out = (
        rows("SELECT bytes FROM bundles WHERE plan_id = ?1 AND compartment = 0"),
        rows("SELECT bytes FROM envelopes WHERE plan_id = ?1 AND compartment = 0"),
        rows("SELECT bytes FROM escrow_envelopes WHERE plan_id = ?1 AND compartment = 0"),
    );
    drop(conn);
    std::fs::remove_file(&copy).unwrap();
    out
}

fn files(db: &Path) -> Vec<Vec<u8>> {
    [db.to_path_buf(), db.with_extension("db-wal")].iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn after_an_erasure_no_byte_of_the_older_generation_is_on_the_server_and_every_device_stands_on_the_base() {
    let net = Network::start(USERS);
    net.admin.run(&["audit", "key", "create", "--org", "Wijkteam Zaanstad"]);
    let (mut wim, mut ans, plan, sanne) = shared_plan(&net);
    let db = net.server.data.join("server.db");
    // Ans writes a note before the erasure: afterwards it is still shown as hers.
    ans.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "van Ans")).unwrap();
    settle(&mut [&mut ans, &mut wim]);
    let (old_bundles, old_envelopes, old_escrow) = basis_rows(&db, &plan);
    assert!(!old_bundles.is_empty() && !old_envelopes.is_empty() && !old_escrow.is_empty());

    // Only the regisseur erases, and only a member the plan has.
    assert!(matches!(ans.erase_member(&plan, sanne), Err(CoreError::NotAllowed(_))));
    assert!(wim.erase_member(&plan, EntityId::random()).is_err());
    let erased = wim.erase_member(&plan, sanne).unwrap();
    assert_eq!(erased.scores, 1);
    assert_eq!(wim.sync_membership().unwrap(), eenplan_core::sync::ShareOutcome::Done);

    assert_eq!(member_names(&mut wim, &plan), ["Piet Jansen"]);
    assert_eq!(notes(&mut wim, &plan), ["huisbezoek gedaan", "van Ans"]);
    let author = |device: &mut Device| {
        device.read(&plan).unwrap().notes.into_iter().find(|n| n.text == "van Ans").unwrap().author
    };
    assert_eq!(author(&mut wim), ans.device_id().to_string(), "the base keeps who wrote what");

    // The server: one bundle of basis left (the base), nothing of the older epoch, and none
    // of the older generation's bytes in its file or WAL.
    let (bundles, envelopes, escrow) = basis_rows(&db, &plan);
    assert_eq!(bundles.len(), 1, "only the base is left");
    assert!(!envelopes.is_empty() && !escrow.is_empty(), "the new epoch's keys are there");
    for bytes in files(&db) {
        for old in old_bundles.iter().chain(&old_envelopes).chain(&old_escrow) {
            assert!(!contains(&bytes, &old[..old.len().min(64)]), "an older generation's bytes remain");
        }
    }

    // Ans's device takes the base: the member is gone, everything else stays, and the
    // step is in the plan's history.
    settle(&mut [&mut ans, &mut wim]);
    assert_eq!(member_names(&mut ans, &plan), ["Piet Jansen"]);
    assert_eq!(notes(&mut ans, &plan), ["huisbezoek gedaan", "van Ans"]);
    assert_eq!(author(&mut ans), ans.device_id().to_string());
    assert!(ans.read(&plan).unwrap().scores.is_empty());
    let steps = ans.membership(&plan).unwrap().unwrap().steps;
    assert!(steps.iter().any(|s| s.act == "erase"), "{steps:?}");
    // The access log: the regisseur's device and the server each recorded the erasure.
    let rows: serde_json::Value = serde_json::from_str(&net.admin.run(&[
        "audit",
        "query",
        "--plan",
        &eenplan_protocol::api::hex(plan.as_bytes()),
        "--json",
    ]))
    .unwrap();
    for source in ["apparaat", "server"] {
        assert!(
            rows.as_array().unwrap().iter().any(|r| r["bron"] == source && r["actie"] == "erase_member"),
            "{source}: {rows:#}"
        );
    }
    // Both keep working on the base, and their edits meet.
    ans.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "na het wissen")).unwrap();
    settle(&mut [&mut ans, &mut wim]);
    assert!(notes(&mut wim, &plan).contains(&"na het wissen".to_owned()));

    // The log grows again until the server asks for a snapshot, which holds the base's
    // change although no change bundle of its writer does; a device that joins later starts
    // from it, and takes it (its witness for the base is the chain).
    for i in 0..40 {
        wim.edit(&plan, |p| {
            p.add_note(Compartment::Basis, NoteKind::Note, &format!("notitie {i} {}", "x".repeat(600)))
        })
        .unwrap();
        wim.sync().unwrap();
    }
    settle(&mut [&mut ans, &mut wim]);
    let snapshots = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM bundles WHERE plan_id = ?1 AND compartment = 0 AND kind = 1",
            [&plan.as_bytes()[..]],
            |r| r.get::<_, i64>(0),
        )
        .unwrap();
    assert!(snapshots >= 2, "a snapshot after the base: {snapshots}");
    // Its first sync comes before any device sealed it the new epoch's key: the snapshot
    // waits, parked, and its witnesses with it, so that the sync that brings the key takes
    // it. (Without the kept witnesses it was refused once and its change log fetched.)
    let mut ans2 = net.device("ans2", "Ans");
    let first = ans2.sync().unwrap();
    assert!(first.refused.is_empty(), "{:?}", first.refused);
    assert!(ans2.status().unwrap().parked_bundles > 0, "the snapshot waits for its key");
    for _ in 0..3 {
        wim.sync().unwrap();
        let report = ans2.sync().unwrap();
        assert!(report.refused.is_empty(), "{:?}", report.refused);
    }
    assert_eq!(ans2.status().unwrap().parked_bundles, 0);
    let report = ans2.sync().unwrap();
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert_eq!(member_names(&mut ans2, &plan), ["Piet Jansen"]);
    assert!(notes(&mut ans2, &plan).contains(&"na het wissen".to_owned()));
}

#[test]
fn an_edit_a_participant_made_offline_before_the_erasure_survives_it_without_the_member() {
    let net = Network::start(USERS);
    let (mut wim, mut ans, plan, sanne) = shared_plan(&net);
    // Offline, Ans writes a note and renames the member about to be erased.
    ans.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::HomeVisit, "offline bij het gezin"))
        .unwrap();
    let rename = eenplan_core::plan::MemberUpdate { name: Some("Sanne J.".into()), ..Default::default() };
    ans.edit(&plan, |p| p.update_member(sanne, rename)).unwrap();

    wim.erase_member(&plan, sanne).unwrap();
    assert_eq!(wim.sync_membership().unwrap(), eenplan_core::sync::ShareOutcome::Done);
    settle(&mut [&mut ans, &mut wim]);

    for device in [&mut ans, &mut wim] {
        assert_eq!(member_names(device, &plan), ["Piet Jansen"], "the member does not come back");
        let notes = notes(device, &plan);
        assert!(notes.contains(&"offline bij het gezin".to_owned()), "{notes:?}");
        assert!(notes.contains(&"huisbezoek gedaan".to_owned()), "{notes:?}");
    }
    // Nothing Ans sealed before the erasure reached the server.
    let (bundles, _, _) = basis_rows(&net.server.data.join("server.db"), &plan);
    for bytes in files(&net.server.data.join("server.db")) {
        assert!(!contains(&bytes, ERASED_NAME.as_bytes()));
    }
    assert!(bundles.len() >= 2, "the base and Ans's carried edit");
}

#[test]
fn a_participant_cannot_erase_and_a_server_cannot_bring_the_older_generation_back() {
    let mut net = Network::start(USERS);
    let (mut wim, mut ans, plan, sanne) = shared_plan(&net);
    let db = net.server.data.join("server.db");
    let (old_bundles, _, _) = basis_rows(&db, &plan);

    // Ans signs an erasure herself: the server refuses the entry (only the regisseur).
    let forged =
        Act::Erase(Erasure { epoch: 2, base: Fixed([7; 32]), covers: 1, base_change: Fixed([8; 32]) });
    let entry = ans.sign_membership_act(&plan, forged.clone()).unwrap();
    let (status, _) = post_erasure(&net, &ans, &plan, &upload(&entry, vec![0; 200]));
    assert_eq!(status, 403, "a participant's erasure is refused");

    // Bad input from the regisseur's own device: a typed refusal, and nothing is stored (the
    // real erasure below still takes the chain's next position).
    let entry = wim.sign_membership_act(&plan, forged).unwrap();
    let refused = |body: &[u8]| {
        let (status, text) = post_erasure(&net, &wim, &plan, body);
        let body: eenplan_protocol::api::ErrorBody = serde_json::from_str(&text).unwrap();
        (status, body.code)
    };
    assert_eq!(refused(b"not cbor"), (400, "malformed".to_owned()));
    let whole = upload(&entry, vec![0; 200]);
    assert_eq!(refused(&whole[..whole.len() / 2]), (400, "malformed".to_owned()), "a truncated upload");
    assert_eq!(
        refused(&upload(&entry, vec![0; 200])),
        (400, "bad_base".to_owned()),
        "a base that is no bundle"
    );
    assert_eq!(refused(&upload(&entry, Vec::new())), (400, "bad_base".to_owned()), "no base");
    // A base said to cover positions the log has not reached is refused before its bytes are
    // looked at, with that reason: the pull's news read relies on no base covering beyond
    // the log (the storage refuses it too, in the erasure's transaction).
    let beyond =
        Act::Erase(Erasure { epoch: 2, base: Fixed([7; 32]), covers: 1 << 40, base_change: Fixed([8; 32]) });
    let entry_beyond = wim.sign_membership_act(&plan, beyond).unwrap();
    let (status, text) = post_erasure(&net, &wim, &plan, &upload(&entry_beyond, vec![0; 200]));
    let body: eenplan_protocol::api::ErrorBody = serde_json::from_str(&text).unwrap();
    assert_eq!((status, body.code.as_str()), (400, "bad_base"), "a base beyond the head");
    assert!(body.message.contains("has not reached"), "{}", body.message);
    assert_eq!(basis_rows(&db, &plan).0, old_bundles, "nothing was deleted");

    wim.erase_member(&plan, sanne).unwrap();
    wim.sync_membership().unwrap();
    settle(&mut [&mut ans, &mut wim]);

    // A compromised server puts an older bundle of basis back into the log: devices refuse
    // it, and the member stays erased.
    net.tamper_with_server_database(|conn| {
        let head: i64 = conn.query_row("SELECT head FROM log_head", [], |r| r.get(0)).unwrap();
        for (i, bytes) in old_bundles.iter().enumerate() {
            let bundle = eenplan_protocol::Bundle::decode(bytes.clone()).unwrap();
            let h = bundle.header;
            conn.execute(
                "INSERT INTO bundles (seq, plan_id, compartment, bundle_id, author, epoch, kind, covers_seq, size, bytes, received_at)
                 VALUES (?1, ?2, 0, ?3, ?4, ?5, 0, NULL, ?6, ?7, 0)",
                rusqlite::params![
                    head + 1 + i as i64,
                    &h.document.plan[..],
                    &h.bundle_id[..],
                    &h.author[..],
                    h.epoch,
                    bytes.len() as i64,
                    bytes
                ],
            )
            .unwrap();
        }
        conn.execute("UPDATE log_head SET head = ?1", [head + old_bundles.len() as i64]).unwrap();
    });
    let report = ans.sync().unwrap();
    assert!(
        report.refused.iter().any(|r| r.contains("before a member's data was erased")),
        "{:?}",
        report.refused
    );
    assert_eq!(member_names(&mut ans, &plan), ["Piet Jansen"]);
}

/// An erasure upload of `entry` with `base` and no key, as a hostile or broken client would
/// send it.
fn upload(entry: &[u8], base: Vec<u8>) -> Vec<u8> {
    eenplan_protocol::sync::encode(&eenplan_protocol::sync::ErasureUpload {
        entry: eenplan_protocol::sync::Blob(entry.to_vec()),
        base: eenplan_protocol::sync::Blob(base),
        rotation: eenplan_protocol::sync::RotationUpload {
            commitment: eenplan_protocol::sync::Blob(Vec::new()),
            envelopes: Vec::new(),
        },
    })
}

/// Posts `body` to the plan's erasure route in `device`'s session; the status and the body.
fn post_erasure(net: &Network, device: &Device, plan: &PlanId, body: &[u8]) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let token = eenplan_tests::network::device_session(&agent, &net.server.url, device);
    let url = format!("{}{}", net.server.url, eenplan_protocol::api::erasure_path(plan.as_bytes()));
    let mut response = agent
        .post(&url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/cbor")
        .send(body)
        .unwrap();
    (response.status().as_u16(), response.body_mut().read_to_string().unwrap())
}

/// Kills the regisseur's `member erase` with SIGKILL at moments spread over its run (opening
/// the store, queueing, the sync's rounds, the post, taking the base); after the next syncs
/// the plan is erased on the server and on every device, or (killed before the queue
/// committed) erasing again completes it. Never is the server erased while the regisseur's
/// device keeps the old `basis`, and nothing is erased twice.
#[test]
fn an_erasure_killed_at_any_moment_ends_erased_everywhere_after_the_next_sync() {
    let net = Network::start(USERS);
    let cli = Cli::enrolled(&net, "wim-cli", "Wim");
    let mut ans = net.device("ans", "Ans");
    let db = net.server.data.join("server.db");
    let members = |plan: &str| -> Vec<String> {
        let shown = cli.json(&["plan", "show", plan]);
        shown["members"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_owned()).collect()
    };
    // Rounds whose erase was killed while running and that the next syncs finished.
    let mut resumed = 0;
    for (round, delay_ms) in [0u64, 40, 90, 160, 260, 420].into_iter().enumerate() {
        let plan = cli.ok(&["plan", "create", "--family", &format!("Gezin {round}")]);
        let member = cli.json(&["member", "add", &plan, "--name", ERASED_NAME, "--relation", "dochter"]);
        let member = member["id"].as_str().unwrap().to_owned();
        cli.ok(&["member", "add", &plan, "--name", "Piet Jansen", "--relation", "zoon"]);
        cli.ok(&["sync"]);
        cli.ok(&["plan", "add-participant", &plan, "--user", "Ans", "--role", "wijkteam"]);
        cli.ok(&["sync"]);

        let mut child = cli
            .command(&["member", "erase", &plan, &member])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The moment of the kill, not a synchronisation: the child may have finished by then.
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap();
        let killed = !child.wait().unwrap().success();

        cli.ok(&["sync"]);
        cli.ok(&["sync"]);
        let erased_already = !members(&plan).contains(&ERASED_NAME.to_owned());
        if killed && erased_already {
            resumed += 1;
        }
        if !erased_already {
            // Killed before the erasure was queued (or it waits): erasing again completes it.
            let id: PlanId = plan.parse().unwrap();
            let (bundles, _, _) = basis_rows(&db, &id);
            assert!(
                bundles
                    .iter()
                    .all(|b| eenplan_protocol::Bundle::decode(b.clone()).unwrap().header.epoch == 1),
                "round {round}: the server erased while the regisseur's device kept the old basis"
            );
            let queued = cli.run(&["member", "erase", &plan, &member]);
            assert!(queued.status.success(), "round {round}: {}", String::from_utf8_lossy(&queued.stderr));
            cli.ok(&["sync"]);
        }
        assert_eq!(members(&plan), ["Piet Jansen"], "round {round} (killed after {delay_ms} ms)");
        let id: PlanId = plan.parse().unwrap();
        let (bundles, _, _) = basis_rows(&db, &id);
        let epochs: Vec<u32> = bundles
            .iter()
            .map(|b| eenplan_protocol::Bundle::decode(b.clone()).unwrap().header.epoch)
            .collect();
        assert!(epochs.iter().all(|e| *e == 2), "round {round}: one erasure, nothing older: {epochs:?}");
        settle(&mut [&mut ans]);
        cli.ok(&["sync"]);
        settle(&mut [&mut ans]);
        assert_eq!(member_names(&mut ans, &id), ["Piet Jansen"], "round {round}");
    }
    eprintln!("erasures killed mid-way and finished by the next sync: {resumed} of 6");
    assert!(resumed >= 1, "no kill landed inside a running erasure");
}
