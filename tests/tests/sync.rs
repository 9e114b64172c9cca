//! Sync end to end: a real server process on loopback, the real admin CLI, real device stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use eenplan_core::Device;
use eenplan_core::plan::{ActionUpdate, Compartment, GoalStatus, NewAction, NewGoal, NoteKind};
use eenplan_tests::network::{Network, device_keystore};

const USERS: &[(&str, &str, &str)] = &[
    ("Rita", "Wijkteam Noord", "wijkteam"),
    ("Wim", "Wijkteam Noord", "wijkteam"),
    ("Wendy", "Wijkteam Noord", "wijkteam"),
    ("Otto", "Politie Midden", "politie"),
];

fn reopen(path: &Path) -> Device {
    Device::open(path, &device_keystore()).unwrap()
}

#[test]
fn three_devices_that_edit_offline_converge_whatever_order_they_sync_in() {
    let net = Network::start(USERS);
    let mut rita = net.device("rita", "Rita");
    let mut wim = net.device("wim", "Wim");
    let mut wendy = net.device("wendy", "Wendy");

    let plan = rita.create_plan("Jansen").unwrap();
    let goal = rita
        .edit(&plan, |p| p.add_goal(NewGoal { domain: "financiën".into(), title: "Schulden".into() }))
        .unwrap();
    let action = rita
        .edit(&plan, |p| {
            p.add_action(NewAction {
                goal,
                title: "Budgetcoach".into(),
                owner_org: "Wijkteam Noord".into(),
                owner_user: None,
                due: Some("2026-12-01".into()),
            })
        })
        .unwrap();
    rita.sync().unwrap();
    rita.add_participant(&plan, "Wim", "wijkteam").unwrap();
    rita.add_participant(&plan, "Wendy", "wijkteam").unwrap();
    // Rita's device seals the plan's keys for Wim's and Wendy's devices when the server asks.
    rita.sync().unwrap();
    wim.sync().unwrap();
    wendy.sync().unwrap();
    assert_eq!(wim.read(&plan).unwrap().goals[0].title, "Schulden");
    assert_eq!(wendy.read(&plan).unwrap().actions[0].title, "Budgetcoach");

    // Offline, all three edit the same goal title, the same action's status and due date,
    // and each writes a note.
    rita.edit(&plan, |p| p.set_goal_title(goal, "Schulden in beeld")).unwrap();
    wim.edit(&plan, |p| p.set_goal_title(goal, "Schuldhulp starten")).unwrap();
    wim.edit(&plan, |p| {
        p.update_action(
            action,
            ActionUpdate { status: Some(eenplan_core::plan::ActionStatus::Done), ..Default::default() },
        )
    })
    .unwrap();
    wendy
        .edit(&plan, |p| {
            p.update_action(
                action,
                ActionUpdate { due: Some(Some("2027-01-10".into())), ..Default::default() },
            )
        })
        .unwrap();
    rita.edit(&plan, |p| {
        p.update_action(action, ActionUpdate { due: Some(Some("2026-12-20".into())), ..Default::default() })
    })
    .unwrap();
    rita.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::HomeVisit, "Rita: moeder belt zelf"))
        .unwrap();
    wim.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::Note, "Wim: GGZ-intake gepland")).unwrap();
    wendy
        .edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::HomeVisit, "Wendy: school gebeld"))
        .unwrap();
    wendy.edit(&plan, |p| p.set_goal_status(goal, GoalStatus::InProgress)).unwrap();

    // Sync in an order where each device sees the others' work only partly at first.
    wendy.sync().unwrap();
    rita.sync().unwrap();
    wim.sync().unwrap();
    wendy.sync().unwrap();
    rita.sync().unwrap();
    for device in [&mut rita, &mut wim, &mut wendy] {
        assert_eq!(device.pending_changes().unwrap(), 0);
    }
    let views: Vec<_> =
        [&mut rita, &mut wim, &mut wendy].into_iter().map(|d| d.read(&plan).unwrap()).collect();
    assert_eq!(views[0], views[1]);
    assert_eq!(views[1], views[2]);
    let notes: Vec<&str> = views[0].notes.iter().map(|n| n.text.as_str()).collect();
    for text in ["Rita: moeder belt zelf", "Wim: GGZ-intake gepland", "Wendy: school gebeld"] {
        assert!(notes.contains(&text), "{text} missing from {notes:?}");
    }
    assert_eq!(views[0].goals[0].status, "in_progress");
    assert_eq!(views[0].actions[0].status, "done");
    let conflicts = rita.conflicts(&plan).unwrap();
    let ids: Vec<&str> = conflicts.iter().map(|c| c.id.as_str()).collect();
    assert!(ids.contains(&format!("basis/goals/{goal}/title").as_str()), "{ids:?}");
    assert!(ids.contains(&format!("basis/actions/{action}/due").as_str()), "{ids:?}");
    assert_eq!(wim.conflicts(&plan).unwrap(), conflicts);

    // The edits survive a restart of every device, and a further sync changes nothing.
    drop((rita, wim, wendy));
    for name in ["rita", "wim", "wendy"] {
        let mut device = reopen(&net.path(name));
        let report = device.sync().unwrap();
        assert_eq!(report.applied_changes, 0);
        assert_eq!(device.read(&plan).unwrap(), views[0]);
    }
}

#[test]
fn a_device_that_is_not_a_participant_gets_nothing_of_the_plan_and_no_key() {
    let net = Network::start(USERS);
    let mut rita = net.device("rita", "Rita");
    let mut otto = net.device("otto", "Otto");
    let plan = rita.create_plan("Geheim").unwrap();
    rita.edit(&plan, |p| p.add_note(Compartment::Veiligheid, NoteKind::Note, "Dreiging bekend")).unwrap();
    rita.sync().unwrap();
    rita.sync().unwrap();
    let report = otto.sync().unwrap();
    assert_eq!(report.received_bundles, 0);
    assert_eq!(report.envelopes_received, 0);
    assert!(otto.list_plans().unwrap().is_empty());
    assert!(matches!(otto.read(&plan), Err(eenplan_core::CoreError::UnknownPlan(_))));
}

#[test]
fn the_servers_database_holds_none_of_the_words_written() {
    let net = Network::start(USERS);
    let mut rita = net.device("rita", "Rita");
    let mut wim = net.device("wim", "Wim");
    let secrets = ["Zwaluwstaart", "Kwartelkoning", "Dreiging-Wervelwind", "Officier-Zebravink"];
    let plan = rita.create_plan(secrets[0]).unwrap();
    rita.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::HomeVisit, secrets[1])).unwrap();
    rita.edit(&plan, |p| p.add_safety_item(secrets[2], "Veilig")).unwrap();
    rita.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::Note, secrets[3])).unwrap();
    rita.sync().unwrap();
    rita.add_participant(&plan, "Wim", "wijkteam").unwrap();
    rita.sync().unwrap();
    wim.sync().unwrap();
    assert_eq!(wim.read(&plan).unwrap().family, secrets[0]);
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&net.server.data).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        for secret in secrets {
            if bytes.windows(secret.len()).any(|w| w == secret.as_bytes()) {
                found.push(format!("{secret} in {}", path.display()));
            }
        }
    }
    assert!(found.is_empty(), "{found:?}");
}

fn append_forged(conn: &rusqlite::Connection, bytes: &[u8]) {
    let bundle = eenplan_protocol::Bundle::decode(bytes.to_vec()).unwrap();
    let header = bundle.header;
    let head: i64 = conn.query_row("SELECT head FROM log_head", [], |r| r.get(0)).unwrap();
    conn.execute(
        "INSERT INTO bundles (seq, plan_id, compartment, bundle_id, author, epoch, kind, covers_seq, size, bytes, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, NULL, ?7, ?8, 0)",
        rusqlite::params![
            head + 1,
            &header.document.plan[..],
            header.document.compartment,
            &header.bundle_id[..],
            &header.author[..],
            header.epoch,
            bytes.len() as i64,
            bytes
        ],
    )
    .unwrap();
    conn.execute("UPDATE log_head SET head = ?1", [head + 1]).unwrap();
}

#[test]
fn forged_and_replayed_bundles_are_refused_by_every_receiver_and_never_applied() {
    let mut net = Network::start(USERS);
    let mut rita = net.device("rita", "Rita");
    let mut wim = net.device("wim", "Wim");
    let plan = rita.create_plan("Jansen").unwrap();
    rita.sync().unwrap();
    rita.add_participant(&plan, "Wim", "wijkteam").unwrap();
    rita.sync().unwrap();
    wim.sync().unwrap();
    let before = wim.read(&plan).unwrap();

    // Rita writes one real edit; the malicious server keeps its bytes to forge from.
    rita.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "echt")).unwrap();
    rita.sync().unwrap();
    let real: Vec<u8> = {
        let conn = rusqlite::Connection::open(net.server.data.join("server.db")).unwrap();
        conn.query_row("SELECT bytes FROM bundles ORDER BY seq DESC LIMIT 1", [], |r| r.get(0)).unwrap()
    };
    let mut bad_signature = real.clone();
    let last = bad_signature.len() - 1;
    bad_signature[last] ^= 1;
    // Bundle format 2: byte 1 holds the compartment (low bits), bytes 34..50 the id.
    bad_signature[39] ^= 1; // a new bundle id, so it is not a duplicate of the real one
    let mut other_document = real.clone();
    other_document[1] = (other_document[1] & 0xf0) | 1; // replayed into the zorg compartment
    other_document[40] ^= 1;
    let mut flipped_payload = real.clone();
    flipped_payload[100] ^= 1;
    flipped_payload[41] ^= 1;
    net.tamper_with_server_database(|conn| {
        for forged in [&bad_signature, &other_document, &flipped_payload] {
            append_forged(conn, forged);
        }
    });

    let report = wim.sync().unwrap();
    assert_eq!(report.refused.len(), 3, "{:?}", report.refused);
    let after = wim.read(&plan).unwrap();
    assert_eq!(after.notes.len(), before.notes.len() + 1, "only the real note arrived");
    assert_eq!(after.notes.last().unwrap().text, "echt");
    // They claim Rita as author, so the server never hands them to her; she is unaffected.
    let report = rita.sync().unwrap();
    assert_eq!(report.applied_changes, 0);
    assert_eq!(rita.read(&plan).unwrap(), after);
}

#[test]
fn a_key_envelope_the_server_made_up_is_refused_and_never_used() {
    let mut net = Network::start(USERS);
    let mut rita = net.device("rita", "Rita");
    let mut wim = net.device("wim", "Wim");
    let plan = rita.create_plan("Jansen").unwrap();
    rita.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "geheim")).unwrap();
    rita.sync().unwrap();
    rita.add_participant(&plan, "Wim", "wijkteam").unwrap();

    // The server seals a key of its own choosing to Wim's device, for the current epoch (in
    // place of the envelope Rita sealed when she shared the plan) and for a newer one, signed by
    // nobody it can name: if Wim took either, his next edits would be readable by the server.
    let document = eenplan_protocol::DocumentId::new(*plan.as_bytes(), 0).unwrap();
    let wim_id = *wim.device_id().as_bytes();
    let wim_public = wim.identity().agreement_public().to_vec();
    let forged: Vec<(u32, Vec<u8>)> = [1u32, 2]
        .into_iter()
        .map(|epoch| {
            let sealed =
                eenplan_protocol::envelope::seal(&wim_public, wim_id, document, epoch, &[7; 32]).unwrap();
            let rogue = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
            (epoch, eenplan_protocol::envelope::sign(sealed, [9; 16], &rogue, document, epoch, wim_id))
        })
        .collect();
    net.tamper_with_server_database(|conn| {
        for (epoch, bytes) in &forged {
            let head: i64 = conn.query_row("SELECT head FROM log_head", [], |r| r.get(0)).unwrap();
            conn.execute(
                "INSERT OR REPLACE INTO envelopes (recipient, plan_id, compartment, epoch, bytes, position) VALUES (?1, ?2, 0, ?3, ?4, ?5)",
                rusqlite::params![&wim_id[..], &plan.as_bytes()[..], epoch, bytes, head + 1],
            )
            .unwrap();
            conn.execute("UPDATE log_head SET head = ?1", [head + 1]).unwrap();
        }
    });
    let report = wim.sync().unwrap();
    // Neither key matches a commitment its maker signed, so neither is taken; the genuine keys
    // of the other compartments Rita sealed for him are.
    assert!(
        report.refused.iter().filter(|r| r.starts_with("key for basis")).count() >= 2,
        "{:?}",
        report.refused
    );
    assert!(!wim.keyed_compartments(&plan).unwrap().contains(&Compartment::Basis), "{report:?}");
    assert!(
        wim.read(&plan).map_or(true, |view| view.notes.iter().all(|n| n.text != "geheim")),
        "the basis note reached Wim under a key the server made up"
    );

    // Wim's device names the envelope it refused; the (now honest) server drops it and asks
    // the key's holders again, and Rita's device seals him the real one.
    wim.sync().unwrap();
    rita.sync().unwrap();
    wim.sync().unwrap();
    assert!(wim.keyed_compartments(&plan).unwrap().contains(&Compartment::Basis));
    assert!(wim.read(&plan).unwrap().notes.iter().any(|n| n.text == "geheim"));
}

#[test]
fn a_key_holder_cannot_write_in_another_participants_name() {
    use eenplan_protocol::{Bundle, NewBundle};
    let mut net = Network::start(USERS);
    let mut rita = net.device("rita", "Rita");
    let mut wim = net.device("wim", "Wim");
    let mut wendy = net.device("wendy", "Wendy");
    let plan = rita.create_plan("Jansen").unwrap();
    rita.add_participant(&plan, "Wim", "wijkteam").unwrap();
    rita.add_participant(&plan, "Wendy", "wijkteam").unwrap();
    wim.sync().unwrap();
    wendy.sync().unwrap();

    // Wim holds the basis key. He pushes a note, and (with the server's help) swaps his bundle
    // for one that carries the same changes under the same key with Rita named as author: it
    // decrypts, but he cannot sign as her.
    wim.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "namens Rita")).unwrap();
    wim.sync().unwrap();
    let key = wim.held_document_key(&plan, Compartment::Basis, 1).unwrap().unwrap();
    let wims: Vec<u8> = {
        let conn = rusqlite::Connection::open(net.server.data.join("server.db")).unwrap();
        conn.query_row("SELECT bytes FROM bundles ORDER BY seq DESC LIMIT 1", [], |r| r.get(0)).unwrap()
    };
    let genuine = Bundle::decode(wims).unwrap();
    let changes = genuine.open(&key).unwrap();
    let in_ritas_name = NewBundle { author: *rita.device_id().as_bytes(), ..genuine.header.unsealed() };
    // Whatever key Wim signs with, it is not Rita's.
    let wims_own_choice = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let forged = Bundle::seal(in_ritas_name, &key, &changes, &wims_own_choice).unwrap();
    net.tamper_with_server_database(|conn| {
        conn.execute("DELETE FROM bundles WHERE bundle_id = ?1", [&genuine.header.bundle_id[..]]).unwrap();
        append_forged(conn, forged.as_bytes());
    });

    // Wendy receives it as Rita's, and refuses it for its signature.
    let report = wendy.sync().unwrap();
    let refused = report.refused.join("\n");
    assert!(refused.contains("signature does not verify"), "{refused}");
    assert!(
        wendy.read(&plan).unwrap().notes.iter().all(|n| n.text != "namens Rita"),
        "a note forged in Rita's name reached Wendy's plan"
    );
}

/// The hashes of the changes `actor` wrote in `plan`'s basis, as `device` holds them.
fn basis_changes_by(device: &mut Device, plan: &eenplan_core::PlanId, actor: &[u8; 16]) -> Vec<[u8; 32]> {
    let file = device.export_changes(plan, "export").unwrap();
    let docs = eenplan_core::transfer::open(&file, "export").unwrap().docs;
    let (_, basis) = docs.into_iter().find(|(c, _)| *c == Compartment::Basis).unwrap();
    let doc = automerge::Automerge::load(&basis).unwrap();
    let mut hashes: Vec<[u8; 32]> = doc
        .get_changes(&[])
        .into_iter()
        .filter(|c| c.actor_id().to_bytes() == actor)
        .map(|c| c.hash().0)
        .collect();
    hashes.sort();
    hashes
}

#[test]
fn a_key_holder_who_seals_anothers_change_in_his_own_bundle_never_makes_it_count_as_hers() {
    use eenplan_protocol::Bundle;
    use eenplan_protocol::bundle::payload::{PACKED, unpack_changes};
    let mut net = Network::start(USERS);
    let mut rita = net.device("rita", "Rita");
    let mut wim = net.device("wim", "Wim");
    let mut wendy = net.device("wendy", "Wendy");
    let plan = rita.create_plan("Jansen").unwrap();
    rita.add_participant(&plan, "Wim", "wijkteam").unwrap();
    rita.add_participant(&plan, "Wendy", "wijkteam").unwrap();
    wim.sync().unwrap();
    rita.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "van Rita")).unwrap();
    rita.sync().unwrap();

    // Wim holds the basis key and opens Rita's bundle: her own change travels packed, without
    // her actor id, which receivers rebuild from the bundle's signed author.
    let key = wim.held_document_key(&plan, Compartment::Basis, 1).unwrap().unwrap();
    let ritas: Vec<u8> = {
        let conn = rusqlite::Connection::open(net.server.data.join("server.db")).unwrap();
        conn.query_row("SELECT bytes FROM bundles ORDER BY seq DESC LIMIT 1", [], |r| r.get(0)).unwrap()
    };
    let genuine = Bundle::decode(ritas).unwrap();
    let rita_id = *rita.device_id().as_bytes();
    assert_eq!(genuine.header.author, rita_id);
    let packed = genuine.open(&key).unwrap();
    assert_eq!(packed[0], PACKED, "Rita's own change went packed");
    let full = unpack_changes(&rita_id, &packed).unwrap();
    assert!(full.windows(16).any(|w| w == rita_id), "rebuilt, it names Rita as its actor");

    // He seals both forms in bundles of his own, signed with his own device's key (the only
    // key he can sign with), and the server slips them into the log.
    let (document, epoch) = (genuine.header.document, genuine.header.epoch);
    let as_full = wim.seal_changes_as_self(document, epoch, &key, &full).unwrap();
    let as_packed = wim.seal_changes_as_self(document, epoch, &key, &packed).unwrap();
    net.tamper_with_server_database(|conn| {
        append_forged(conn, &as_full);
        append_forged(conn, &as_packed);
    });

    // Wendy refuses the change that names Rita in Wim's bundle, as before packing existed; the
    // packed one can only be rebuilt as Wim's. No change of Rita's reaches her that Rita did
    // not write herself.
    let report = wendy.sync().unwrap();
    let refused = report.refused.join("\n");
    assert!(refused.contains("in a bundle signed by"), "{refused}");
    assert_eq!(basis_changes_by(&mut wendy, &plan, &rita_id), basis_changes_by(&mut rita, &plan, &rita_id));
    assert!(wendy.read(&plan).unwrap().notes.iter().any(|n| n.text == "van Rita"));
}

#[test]
fn a_plan_damaged_on_a_device_does_not_stop_the_others_from_syncing() {
    let net = Network::start(USERS);
    let mut rita = net.device("rita", "Rita");
    let mut wim = net.device("wim", "Wim");
    let damaged = rita.create_plan("Jansen").unwrap();
    rita.add_participant(&damaged, "Wim", "wijkteam").unwrap();
    wim.sync().unwrap();
    let db = wim.store_path();
    let reopen =
        || eenplan_core::Device::open(&net.path("wim"), &eenplan_tests::network::device_keystore()).unwrap();
    drop(wim);
    let damaged_key: Vec<u8> = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row("SELECT plan_key FROM plans", [], |r| r.get(0)).unwrap()
    };
    let healthy = rita.create_plan("Bakker").unwrap();
    rita.add_participant(&healthy, "Wim", "wijkteam").unwrap();
    let mut wim = reopen();
    wim.sync().unwrap();
    drop(wim);

    // Every stored document of the first plan is damaged on Wim's phone (a bad flash block).
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE documents SET snapshot = zeroblob(length(snapshot)) WHERE plan_key = ?1 AND snapshot IS NOT NULL",
        [&damaged_key],
    )
    .unwrap();
    conn.execute(
        "UPDATE changes SET sealed = zeroblob(length(sealed)) \
         WHERE doc_key IN (SELECT doc_key FROM documents WHERE plan_key = ?1)",
        [&damaged_key],
    )
    .unwrap();
    drop(conn);

    for plan in [&damaged, &healthy] {
        rita.edit(plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "na de schade")).unwrap();
    }
    rita.sync().unwrap();
    let mut wim = reopen();
    let report = wim.sync().unwrap();
    assert!(report.refused.iter().any(|r| r.contains("damaged")), "{:?}", report.refused);
    assert!(wim.read(&healthy).unwrap().notes.iter().any(|n| n.text == "na de schade"));
    assert!(wim.read(&damaged).is_err());
}

#[test]
fn a_device_joining_a_plan_many_have_written_gets_it_all_in_one_sync() {
    const WRITERS: [&str; 6] = ["Rita", "Wim", "Wendy", "Sanne", "Lotte", "Kees"];
    let mut users: Vec<(&str, &str, &str)> =
        WRITERS.iter().map(|u| (*u, "Wijkteam Noord", "wijkteam")).collect();
    users.push(("Otto", "Wijkteam Noord", "wijkteam"));
    let net = Network::start(&users);
    let mut rita = net.device("rita", "Rita");
    let plan = rita.create_plan("Jansen").unwrap();
    rita.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "Rita")).unwrap();
    for user in &WRITERS[1..] {
        rita.add_participant(&plan, user, "wijkteam").unwrap();
        let mut device = net.device(&user.to_lowercase(), user);
        rita.sync().unwrap();
        device.sync().unwrap();
        device.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, user)).unwrap();
        device.sync().unwrap();
    }
    rita.add_participant(&plan, "Otto", "wijkteam").unwrap();
    let mut otto = net.device("otto", "Otto");
    rita.sync().unwrap();
    // One sync: every author's certificate is fetched at once, so no bundle waits behind
    // another whose author was not known yet.
    let report = otto.sync().unwrap();
    assert_eq!(otto.status().unwrap().parked_bundles, 0, "{report:?}");
    let mut notes: Vec<String> = otto.read(&plan).unwrap().notes.into_iter().map(|n| n.text).collect();
    notes.sort();
    let mut expected: Vec<&str> = WRITERS.to_vec();
    expected.sort();
    assert_eq!(notes, expected);
}

#[test]
fn a_plan_a_sync_changed_behind_its_kept_read_model_shows_the_change_after_reopening() {
    let net = Network::start(USERS);
    let mut rita = net.device("rita", "Rita");
    let mut wim = net.device("wim", "Wim");
    let plan = rita.create_plan("Jansen").unwrap();
    rita.add_participant(&plan, "Wim", "wijkteam").unwrap();
    wim.sync().unwrap();
    let first = wim.read(&plan).unwrap();
    drop(wim);
    let mut wim = reopen(&net.path("wim"));
    assert!(wim.read_model_is_current(&plan).unwrap());
    assert_eq!(wim.read(&plan).unwrap(), first);

    rita.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "na het bezoek")).unwrap();
    rita.sync().unwrap();
    wim.sync().unwrap();
    // The app is closed before anything reads the plan again.
    drop(wim);
    let mut wim = reopen(&net.path("wim"));
    assert!(!wim.read_model_is_current(&plan).unwrap(), "the sync changed the stored documents");
    assert!(wim.read(&plan).unwrap().notes.iter().any(|n| n.text == "na het bezoek"));
    drop(wim);

    // Shown from the kept model now, with its writer named from her certificate as before.
    let mut wim = reopen(&net.path("wim"));
    assert!(wim.read_model_is_current(&plan).unwrap());
    let shown = wim.read(&plan).unwrap();
    let note = shown.notes.iter().find(|n| n.text == "na het bezoek").unwrap();
    let writer = shown.people.iter().find(|p| p.device == note.author).unwrap();
    assert_eq!(writer.name, "Rita");
    assert_eq!(shown.membership.unwrap().participants.len(), 2);
}
