//! Revocation end to end: a real server process, the real admin CLI, real device stores.
//!
//! The promise under test: from the moment the administrator revokes a device, it can fetch
//! nothing, it can read nothing written afterwards even with a full copy of the server's
//! database, and it erases itself the moment it comes online; the other devices, including
//! one that was offline throughout, carry on with no edit lost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use eenplan_core::error::CoreError;
use eenplan_core::plan::{Compartment, NewGoal, NoteKind};
use eenplan_core::{Device, PlanId};
use eenplan_tests::network::{ADMIN_PASSPHRASE, Network, binary, device_keystore};
use eenplan_tests::soak;

const USERS: &[(&str, &str, &str)] = &[
    ("Rita", "Wijkteam Noord", "wijkteam"),
    ("Wim", "Wijkteam Noord", "wijkteam"),
    ("Wendy", "Wijkteam Noord", "wijkteam"),
];

/// Every bundle in a copy of the server's database: (epoch, sealed bytes).
fn server_bundles(db: &Path) -> Vec<(u32, Vec<u8>)> {
    let copy = db.with_extension("copy.db");
    // A copy of the live file, WAL included, as an attacker with disk access would take it.
    let source = rusqlite::Connection::open(db).unwrap();
    source.execute("VACUUM INTO ?1", [copy.to_str().unwrap()]).unwrap();
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let mut stmt = conn.prepare("SELECT epoch, bytes FROM bundles ORDER BY seq").unwrap();
    let rows = stmt.query_map([], |row| Ok((row.get::<_, u32>(0)?, row.get::<_, Vec<u8>>(1)?))).unwrap();
    rows.map(|r| r.unwrap()).collect()
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

fn note_texts(device: &mut Device, plan: &PlanId) -> Vec<String> {
    device.read(plan).unwrap().notes.into_iter().map(|n| n.text).collect()
}

#[test]
fn a_revoked_device_is_shut_out_reads_nothing_new_and_wipes_itself_while_the_others_lose_nothing() {
    let net = Network::start(USERS);
    let mut rita = net.device("rita", "Rita");
    let mut wim = net.device("wim", "Wim");
    let mut wendy = net.device("wendy", "Wendy");

    let plan = rita.create_plan("Jansen").unwrap();
    rita.edit(&plan, |p| p.add_goal(NewGoal { domain: "financiën".into(), title: "Schulden".into() }))
        .unwrap();
    rita.sync().unwrap();
    rita.add_participant(&plan, "Wim", "wijkteam").unwrap();
    rita.add_participant(&plan, "Wendy", "wijkteam").unwrap();
    rita.sync().unwrap();
    wim.sync().unwrap();
    wendy.sync().unwrap();
    assert_eq!(wim.read(&plan).unwrap().goals[0].title, "Schulden");
    assert_eq!(wendy.keyed_compartments(&plan).unwrap().len(), 3, "wijkteam reads basis, zorg, veiligheid");

    // Wim's phone is stolen. The thief keeps a copy of its files and of its unlock secret.
    let stolen = net.path("stolen-copy");
    copy_dir(&net.path("wim"), &stolen);
    let wim_id = wim.device_id().to_string();
    drop(wim);

    // Wendy is on a home visit without a connection the whole time and keeps writing.
    wendy
        .edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::HomeVisit, "Wendy: offline visit"))
        .unwrap();
    wendy.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::Note, "Wendy: zorg offline")).unwrap();

    let revoke = net.admin.run(&["device", "revoke", &wim_id, "--reason", "stolen"]);
    assert!(!revoke.is_empty());

    // Rita writes after the revocation, in two compartments.
    rita.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::HomeVisit, "Rita: after the revocation"))
        .unwrap();
    rita.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::Note, "Rita: zorg after")).unwrap();
    // Sealed under the old key before the new one arrived, her bundles are refused once as
    // stale, kept, re-sealed and sent again in the same sync: nothing is dropped.
    let report = rita.sync().unwrap();
    assert!(report.refused.is_empty(), "{:?}", report.refused);

    // Wendy comes back: her old-epoch edits are re-sealed under the new key and merged. The
    // report counts them as re-sealed, not as refused: nothing of hers was dropped.
    let report = wendy.sync().unwrap();
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert!(report.resealed > 0, "{report:?}");
    rita.sync().unwrap();
    wendy.sync().unwrap();
    for device in [&mut rita, &mut wendy] {
        let notes = note_texts(device, &plan);
        for text in
            ["Wendy: offline visit", "Wendy: zorg offline", "Rita: after the revocation", "Rita: zorg after"]
        {
            assert!(notes.iter().any(|n| n == text), "{text:?} missing from {notes:?}");
        }
        assert_eq!(device.pending_changes().unwrap(), 0);
    }

    // With a full copy of the server's database, the stolen keys open the history from before
    // the revocation and nothing written after it.
    let thief = Device::open(&stolen, &device_keystore()).unwrap();
    let bundles = server_bundles(&net.server.data.join("server.db"));
    let (old, new): (Vec<_>, Vec<_>) = bundles.iter().partition(|(epoch, _)| *epoch == 1);
    assert!(!new.is_empty(), "edits after the revocation must be under a new epoch");
    assert!(old.iter().any(|(_, b)| thief.open_sealed_bundle(b).is_ok()), "the test must be able to decrypt");
    for (epoch, bytes) in &new {
        assert!(
            thief.open_sealed_bundle(bytes).is_err(),
            "a bundle of epoch {epoch} opened with revoked keys"
        );
    }
    let plaintext_after = b"Rita: after the revocation";
    let raw = std::fs::read(net.server.data.join("server.db")).unwrap();
    assert!(!raw.windows(plaintext_after.len()).any(|w| w == plaintext_after));

    // The stolen device itself comes online: it cannot get a session, obeys the signed wipe
    // order, and afterwards nothing in its directory opens.
    let mut wim = Device::open(&net.path("wim"), &device_keystore()).unwrap();
    match wim.sync() {
        Err(CoreError::Wiped) => {}
        other => panic!("expected the device to wipe itself, got {other:?}"),
    }
    assert!(matches!(Device::open(&net.path("wim"), &device_keystore()), Err(CoreError::Wiped)));
    let left: Vec<String> = std::fs::read_dir(net.path("wim"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec![eenplan_core::wipe::MARKER_FILE.to_string()], "only the wipe marker remains");
    let marker = Device::wipe_marker(&net.path("wim")).unwrap();
    assert!(marker.reported, "the wipe is reported to the server");
    let listed = net.admin.run(&["device", "list"]);
    let line = listed.lines().find(|l| l.contains(&wim_id[..8])).unwrap();
    assert!(line.contains("gewist"), "{line}");
}

/// Runs `eenplan-admin device revoke` and kills it once it has rotated `after` documents.
fn revoke_and_kill_midway(net: &Network, device: &str, after: usize) {
    let mut child = Command::new(binary("eenplan-admin"))
        .arg("--data")
        .arg(&net.admin.data)
        .args(["device", "revoke", device, "--reason", "lost"])
        .env("EENPLAN_ADMIN_PASSPHRASE", ADMIN_PASSPHRASE)
        .env("EENPLAN_INSECURE_FAST_KDF", "1")
        .env("EENPLAN_SERVER", &net.admin.server)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut killed = false;
    // Not a terminal, so the CLI prints one progress line per batch it finished.
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        let done = line
            .split_whitespace()
            .find_map(|w| w.split_once('/').and_then(|(a, _)| a.parse::<usize>().ok()));
        if done.is_some_and(|d| d >= after) {
            child.kill().unwrap();
            killed = true;
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(killed && !status.success(), "the revocation finished before it could be interrupted");
}

/// (documents rotated to a new epoch, documents still waiting for one) at the server now.
fn rotation_progress(net: &Network) -> (i64, i64) {
    let db = rusqlite::Connection::open(net.server.data.join("server.db")).unwrap();
    let count = |sql: &str| db.query_row(sql, [], |r| r.get(0)).unwrap();
    (
        count(
            "SELECT COUNT(*) FROM (SELECT DISTINCT plan_id, compartment FROM commitments WHERE epoch >= 2)",
        ),
        count("SELECT COUNT(*) FROM (SELECT DISTINCT plan_id, compartment FROM rotations)"),
    )
}

#[test]
fn an_interrupted_revocation_across_many_plans_resumes_to_the_same_end_state() {
    // Enough plans that the re-keying takes more than one batch of tasks (50 documents) and
    // is killed between batches; 200 plans under `EENPLAN_SOAK=1`.
    let count = soak::size(24, 200);
    let net = Network::start(USERS);
    let mut rita = net.device("rita", "Rita");
    let mut wim = net.device("wim", "Wim");
    let plans: Vec<PlanId> = (0..count).map(|i| rita.create_plan(&format!("Gezin {i}")).unwrap()).collect();
    rita.sync().unwrap();
    for plan in &plans {
        rita.add_participant(plan, "Wim", "wijkteam").unwrap();
    }
    rita.sync().unwrap();
    wim.sync().unwrap();
    assert_eq!(wim.list_plans().unwrap().len(), count);
    let wim_id = wim.device_id().to_string();

    revoke_and_kill_midway(&net, &wim_id, 40);
    let (rotated, waiting) = rotation_progress(&net);
    assert!(rotated >= 40 && waiting > 0, "not interrupted midway: {rotated} rotated, {waiting} waiting");
    // The administrator runs it again; it carries on where it stopped.
    net.admin.run(&["device", "revoke", &wim_id, "--reason", "lost"]);
    net.admin.run(&["rekey"]);

    // End state: every readable document of every plan is at epoch 2 exactly (nothing
    // rotated twice, nothing skipped), and Rita writes and reads under it.
    let db = rusqlite::Connection::open(net.server.data.join("server.db")).unwrap();
    let epochs: Vec<(i64, i64)> = db
        .prepare("SELECT MAX(epoch), COUNT(*) FROM commitments GROUP BY plan_id, compartment")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(epochs.len(), count * 3, "every plan × the 3 compartments a wijkteam worker reads");
    assert!(epochs.iter().all(|e| *e == (2, 2)), "every document at epoch 2, made once: {epochs:?}");
    let pending: i64 = db.query_row("SELECT COUNT(*) FROM rotations", [], |r| r.get(0)).unwrap();
    assert_eq!(pending, 0, "no rotation may stay pending");
    drop(db);
    rita.sync().unwrap();
    for plan in &plans {
        assert_eq!(rita.keyed_compartments(plan).unwrap().len(), 3);
        rita.edit(plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "na intrekking")).unwrap();
    }
    let report = rita.sync().unwrap();
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    let bundles = server_bundles(&net.server.data.join("server.db"));
    let after: Vec<u32> = bundles.iter().rev().take(count).map(|(epoch, _)| *epoch).collect();
    assert!(after.iter().all(|e| *e == 2), "every post-revocation edit is under epoch 2: {after:?}");
}

#[test]
fn a_wipe_order_the_server_made_up_is_refused_and_nothing_is_erased() {
    use eenplan_protocol::certificate::{AdminBody, Certificate};
    use eenplan_protocol::sync::Fixed;
    use eenplan_protocol::wipe::{RevocationReason, WipeOrder};

    let mut net = Network::start(USERS);
    let mut wim = net.device("wim", "Wim");
    let plan = wim.create_plan("Jansen").unwrap();
    wim.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::HomeVisit, "blijft bewaard")).unwrap();
    wim.sync().unwrap();
    let wim_id = *wim.device_id().as_bytes();
    net.admin.run(&["device", "revoke", &wim.device_id().to_string(), "--reason", "left"]);

    // The server swaps the administrator's order for one of its own: an "administrator"
    // certified by a root of its own making.
    let rogue_root = ed25519_dalek::SigningKey::from_bytes(&[0x66; 32]);
    let rogue_admin = ed25519_dalek::SigningKey::from_bytes(&[0x67; 32]);
    let certificate = Certificate::sign_admin(
        &AdminBody {
            admin_public: rogue_admin.verifying_key().to_bytes(),
            name: "Beheer".into(),
            issued_at_ms: 0,
            organisation: None,
        },
        &rogue_root,
    );
    let order = WipeOrder {
        device: Fixed(wim_id),
        reason: RevocationReason::Stolen,
        issued_at_ms: 0,
        admin_certificate: certificate.to_bytes(),
    }
    .sign(&rogue_admin)
    .to_bytes();
    net.tamper_with_server_database(|conn| {
        let swapped = conn
            .execute(
                "UPDATE wipe_orders SET signed = ?1 WHERE device_id = ?2",
                rusqlite::params![order, &wim_id[..]],
            )
            .unwrap();
        assert_eq!(swapped, 1, "the real order was stored");
    });

    let error = wim.sync().unwrap_err();
    assert!(!matches!(error, CoreError::Wiped), "a forged order must not wipe: {error}");
    assert!(!Device::is_wiped(&net.path("wim")));
    assert!(note_texts(&mut wim, &plan).contains(&"blijft bewaard".to_string()));
    drop(wim);
    let mut reopened = Device::open(&net.path("wim"), &device_keystore()).unwrap();
    assert!(note_texts(&mut reopened, &plan).contains(&"blijft bewaard".to_string()));
}

#[test]
fn a_device_that_joins_after_a_rotation_reads_the_history_from_before_it() {
    let net = Network::start(&[
        ("Rita", "Wijkteam Noord", "wijkteam"),
        ("Wim", "Wijkteam Noord", "wijkteam"),
        ("Piet", "Wijkteam Noord", "wijkteam"),
    ]);
    let mut rita = net.device("rita", "Rita");
    let mut wim = net.device("wim", "Wim");
    let plan = rita.create_plan("Jansen").unwrap();
    rita.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::Note, "voor de intrekking")).unwrap();
    rita.sync().unwrap();
    rita.add_participant(&plan, "Wim", "wijkteam").unwrap();
    rita.sync().unwrap();
    wim.sync().unwrap();
    net.admin.run(&["device", "revoke", &wim.device_id().to_string(), "--reason", "replaced"]);
    rita.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::Note, "na de intrekking")).unwrap();
    rita.sync().unwrap();

    // Piet joins later: he gets the keys of both epochs, so the whole history opens.
    let mut piet = net.device("piet", "Piet");
    rita.add_participant(&plan, "Piet", "wijkteam").unwrap();
    rita.sync().unwrap();
    let report = piet.sync().unwrap();
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    let notes = note_texts(&mut piet, &plan);
    assert!(notes.contains(&"voor de intrekking".to_string()), "{notes:?}");
    assert!(notes.contains(&"na de intrekking".to_string()), "{notes:?}");
    assert_eq!(piet.status().unwrap().parked_bundles, 0);
}

#[test]
fn a_plan_whose_only_key_holder_is_revoked_is_recovered_through_escrow() {
    let net =
        Network::start(&[("Rita", "Wijkteam Noord", "wijkteam"), ("Piet", "Wijkteam Noord", "wijkteam")]);
    let mut rita = net.device("rita", "Rita");
    let mut piet = net.device("piet", "Piet");
    let plan = rita.create_plan("Jansen").unwrap();
    rita.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::HomeVisit, "alleen op Rita's telefoon"))
        .unwrap();
    rita.sync().unwrap();
    // Piet is made a participant, but Rita's phone is stolen before it ever seals him a key.
    rita.add_participant(&plan, "Piet", "wijkteam").unwrap();
    net.admin.run(&["device", "revoke", &rita.device_id().to_string(), "--reason", "stolen"]);

    // The administrator's rotation opened epoch 1 from escrow for Piet along with epoch 2.
    let report = piet.sync().unwrap();
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert_eq!(piet.keyed_compartments(&plan).unwrap().len(), 3);
    assert!(note_texts(&mut piet, &plan).contains(&"alleen op Rita's telefoon".to_string()));
    piet.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "Piet neemt het over")).unwrap();
    let report = piet.sync().unwrap();
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert_eq!(piet.pending_changes().unwrap(), 0);
}

#[test]
fn a_device_never_seals_a_key_to_a_revoked_device_the_server_lists_again() {
    let mut net = Network::start(USERS);
    let mut rita = net.device("rita", "Rita");
    let wim = net.device("wim", "Wim");
    let plan = rita.create_plan("Jansen").unwrap();
    rita.add_participant(&plan, "Wim", "wijkteam").unwrap();
    let wim_id = *wim.device_id().as_bytes();
    net.admin.run(&["device", "revoke", &wim.device_id().to_string(), "--reason", "stolen"]);
    // Rita takes the new keys; they were made under the revocation list that names Wim, so
    // her device fetches that list before it seals anything to anyone.
    rita.sync().unwrap();

    // The compromised server lists the stolen phone as active again (and forgets that the
    // list names it), so it asks Rita's device for the keys the phone lacks.
    net.tamper_with_server_database(|conn| {
        let changed = conn
            .execute(
                "UPDATE devices SET state = 'active', revoked_at = NULL, revocation_reason = NULL \
                 WHERE device_id = ?1",
                [wim_id.as_slice()],
            )
            .unwrap();
        assert_eq!(changed, 1);
        conn.execute("DELETE FROM revocation_entries WHERE device_id = ?1", [wim_id.as_slice()]).unwrap();
    });
    rita.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "na de diefstal")).unwrap();
    let report = rita.sync().unwrap();
    assert!(report.refused.iter().any(|r| r.contains("revocation list version")), "{:?}", report.refused);
    let conn = rusqlite::Connection::open(net.server.data.join("server.db")).unwrap();
    let sealed: i64 = conn
        .query_row(
            "SELECT count(*) FROM envelopes WHERE recipient = ?1 AND epoch >= 2",
            [wim_id.as_slice()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(sealed, 0, "a key of a later epoch was sealed to the stolen phone");
    // And the stolen phone's keys open nothing written after the revocation.
    let after = server_bundles(&net.server.data.join("server.db"));
    let (epoch, newest) = after.last().unwrap();
    assert!(*epoch >= 2);
    assert!(wim.open_sealed_bundle(newest).is_err());
}
