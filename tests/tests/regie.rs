//! Regie per plan, end to end against a real server: the seeds' case (a wijkteam worker
//! holds regie of one family and contributes to another, escalates to the Zorg- en
//! Veiligheidshuis, whose procesregisseur accepts regie and hands it back), and forged or
//! made-up membership entries that every device refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use eenplan_core::plan::{Compartment, EscalationLevel, NoteKind};
use eenplan_core::sync::ShareOutcome;
use eenplan_core::{CoreError, Device, PlanId};
use eenplan_protocol::membership::{Act, Grondslag};
use eenplan_tests::cli::Cli;
use eenplan_tests::network::Network;

const ZVH: &str = "Zorg- en Veiligheidshuis Zaanstreek-Waterland";
const USERS: &[(&str, &str, &str)] = &[
    ("Wim", "Wijkteam Zaanstad", "wijkteam"),
    ("Ans", "Wijkteam Zaanstad", "wijkteam"),
    ("Gert", "GGZ Noord", "ggz"),
    ("Sanne", "Basisschool De Linde", "school"),
    ("Zoë", ZVH, "zvh_procesregisseur"),
    ("Piet", ZVH, "pga_expert"),
];

fn notes(device: &mut Device, plan: &PlanId) -> Vec<String> {
    device.read(plan).unwrap().notes.into_iter().map(|n| n.text).collect()
}

fn sync_all(devices: &mut [&mut Device]) {
    for _ in 0..2 {
        for device in devices.iter_mut() {
            device.sync().unwrap();
        }
    }
}

fn regisseur(device: &Device, plan: &PlanId) -> String {
    device.membership(plan).unwrap().expect("a chain").regisseur.name
}

/// (compartment, epoch, sealed bundle) of every bundle of `plan` the server stores.
fn server_bundles(db: &Path, plan: &PlanId) -> Vec<(u8, u32, Vec<u8>)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT compartment, epoch, bytes FROM bundles WHERE plan_id = ?1").unwrap();
    stmt.query_map([&plan.as_bytes()[..]], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn not_allowed(result: Result<impl std::fmt::Debug, CoreError>) -> String {
    match result {
        Err(CoreError::NotAllowed(why)) => why,
        other => panic!("expected the chain to refuse, got {other:?}"),
    }
}

#[test]
fn the_seeds_case_regie_moves_to_the_veiligheidshuis_and_back_and_those_who_leave_read_nothing_later() {
    let net = Network::start(USERS);
    let mut wim = net.device("wim", "Wim");
    let mut ans = net.device("ans", "Ans");
    let mut gert = net.device("gert", "Gert");
    let mut zoe = net.device("zoe", "Zoë");
    let mut piet = net.device("piet", "Piet");

    // Wim holds regie of the Jansen plan; in Ans's Smit plan he only contributes.
    let jansen = wim.create_plan("Jansen").unwrap();
    wim.sync().unwrap();
    assert_eq!(regisseur(&wim, &jansen), "Wim");
    let smit = ans.create_plan("Smit").unwrap();
    ans.sync().unwrap();
    assert_eq!(ans.add_participant(&smit, "Wim", "wijkteam").unwrap(), ShareOutcome::Done);
    wim.sync().unwrap();
    assert_eq!(regisseur(&wim, &smit), "Ans");
    let why = not_allowed(wim.add_participant(&smit, "Gert", "ggz"));
    assert!(why.contains("regisseur"), "{why}");
    assert_eq!(wim.add_participant(&jansen, "Gert", "ggz").unwrap(), ShareOutcome::Done);
    wim.edit(&jansen, |p| p.add_note(Compartment::Zorg, NoteKind::HomeVisit, "zorg: voor de opschaling"))
        .unwrap();
    wim.sync().unwrap();

    // Participants carry contact details the others see; a card is taken only from the
    // participant's own device, so Wim cannot give Gert another phone number.
    gert.sync().unwrap();
    gert.set_own_contact(&jansen, Some("06-12345678"), Some("gert@ggz-noord.nl")).unwrap();
    gert.sync().unwrap();
    let gert_id = gert.own_user_id().unwrap().unwrap();
    wim.sync().unwrap();
    let contact = |device: &mut Device| {
        let view = device.read(&jansen).unwrap();
        let gert = view.membership.unwrap().participants.into_iter().find(|p| p.name == "Gert").unwrap();
        (gert.phone, gert.email)
    };
    assert_eq!(contact(&mut wim), (Some("06-12345678".into()), Some("gert@ggz-noord.nl".into())));
    wim.edit(&jansen, |p| p.set_contact(gert_id, Some("06-00000000"), None)).unwrap();
    assert_eq!(contact(&mut wim), (None, None), "a card Wim wrote for Gert counts for nobody");
    gert.set_own_contact(&jansen, Some("06-12345678"), Some("gert@ggz-noord.nl")).unwrap();
    gert.sync().unwrap();
    wim.sync().unwrap();

    // Wim escalates to the Zorg- en Veiligheidshuis: Zoë and the PGA-expert join, and regie
    // is offered to Zoë. Until she accepts, both are shown.
    let add = ["Zoë:zvh_procesregisseur".to_owned(), "Piet:pga_expert".to_owned()];
    wim.escalate_case(
        &jansen,
        EscalationLevel::ZorgEnVeiligheidshuis,
        "Zorgen over de veiligheid; meerdere partijen betrokken",
        Grondslag::Convenant,
        Some("Zoë"),
        &add,
    )
    .unwrap();
    assert_eq!(wim.sync_membership().unwrap(), ShareOutcome::Done);
    let membership = wim.membership(&jansen).unwrap().unwrap();
    assert_eq!(membership.regisseur.name, "Wim");
    assert_eq!(membership.offered_to.as_ref().map(|p| p.name.as_str()), Some("Zoë"));
    assert_eq!(membership.level, "zorg_en_veiligheidshuis");
    let step = membership.steps.last().unwrap();
    assert_eq!((step.act.as_str(), step.grondslag.as_deref()), ("escalate", Some("convenant")));
    assert!(
        wim.read(&jansen).unwrap().escalations.iter().any(|s| s.id == step.step),
        "the reason is in the plan"
    );

    zoe.sync().unwrap();
    // Piet was not offered regie: he cannot take it.
    piet.sync().unwrap();
    not_allowed(piet.accept_regie(&jansen));
    zoe.accept_regie(&jansen).unwrap();
    assert_eq!(zoe.sync_membership().unwrap(), ShareOutcome::Done);
    sync_all(&mut [&mut wim, &mut zoe, &mut piet, &mut gert]);
    assert_eq!(regisseur(&wim, &jansen), "Zoë");
    assert_eq!(wim.membership(&jansen).unwrap().unwrap().offered_to, None);
    // Wim contributes now; only Zoë adds participants.
    not_allowed(wim.add_participant(&jansen, "Sanne", "school"));
    not_allowed(wim.settle_conflict(
        &jansen,
        "basis/family",
        eenplan_core::plan::Resolution::Value("x".into()),
    ));

    // Under the level's rules the PGA-expert reads zorg and justitie.
    zoe.edit(&jansen, |p| p.add_note(Compartment::Justitie, NoteKind::Note, "justitie: lopend onderzoek"))
        .unwrap();
    sync_all(&mut [&mut zoe, &mut piet, &mut wim, &mut gert]);
    let keyed = piet.keyed_compartments(&jansen).unwrap();
    assert!(keyed.contains(&Compartment::Zorg) && keyed.contains(&Compartment::Justitie), "{keyed:?}");
    let piet_reads = notes(&mut piet, &jansen);
    assert!(piet_reads.contains(&"zorg: voor de opschaling".to_owned()), "{piet_reads:?}");
    assert!(piet_reads.contains(&"justitie: lopend onderzoek".to_owned()), "{piet_reads:?}");
    assert!(!wim.keyed_compartments(&jansen).unwrap().contains(&Compartment::Justitie), "wijkteam never");

    // Zoë de-escalates: regie goes back to Wim at once, and Zoë and Piet leave.
    zoe.deescalate_case(&jansen, EscalationLevel::Lokaal, "Wim", "Veiligheid is op orde").unwrap();
    assert_eq!(zoe.sync_membership().unwrap(), ShareOutcome::Done);
    sync_all(&mut [&mut wim, &mut gert]);
    let membership = wim.membership(&jansen).unwrap().unwrap();
    assert_eq!(membership.regisseur.name, "Wim");
    let names: Vec<&str> = membership.participants.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Wim", "Gert"]);
    assert_eq!(membership.level, "lokaal");

    // What Wim writes now goes under keys that Zoë's and Piet's devices do not hold, even
    // with a copy of the server's database; no administrator took part.
    wim.edit(&jansen, |p| p.add_note(Compartment::Zorg, NoteKind::Note, "zorg: na de afschaling")).unwrap();
    wim.edit(&jansen, |p| p.add_note(Compartment::Basis, NoteKind::Note, "basis: na de afschaling")).unwrap();
    let report = wim.sync().unwrap();
    assert!(report.pushed_bundles > 0, "{report:?}");
    wim.sync().unwrap();
    assert_eq!(wim.status().unwrap().pending_changes, 0, "nothing waits for an administrator");
    gert.sync().unwrap();
    assert!(
        notes(&mut gert, &jansen).contains(&"zorg: na de afschaling".to_owned()),
        "the remaining reader reads on"
    );
    let copy = net.path("server-copy.db");
    std::fs::copy(net.server.data.join("server.db"), &copy).unwrap();
    let _ = std::fs::copy(net.server.data.join("server.db-wal"), net.path("server-copy.db-wal"));
    let later: Vec<(u8, u32, Vec<u8>)> = server_bundles(&copy, &jansen)
        .into_iter()
        .filter(|(compartment, epoch, _)| {
            (*compartment == Compartment::Zorg as u8 || *compartment == Compartment::Basis as u8)
                && *epoch >= 2
        })
        .collect();
    assert!(
        later.iter().any(|(c, _, _)| *c == Compartment::Zorg as u8)
            && later.iter().any(|(c, _, _)| *c == Compartment::Basis as u8),
        "zorg and basis moved to a new epoch"
    );
    for (compartment, epoch, bytes) in &later {
        assert!(wim.open_sealed_bundle(bytes).is_ok(), "Wim's own key opens {compartment}/{epoch}");
        for (name, device) in [("Zoë", &zoe), ("Piet", &piet)] {
            assert!(device.open_sealed_bundle(bytes).is_err(), "{name}'s keys opened {compartment}/{epoch}");
        }
    }
    // A device that joins only now judges the Veiligheidshuis' writes by the rules of the
    // level they were made at, and refuses none of them.
    let mut laptop = net.device("wim-laptop", "Wim");
    for _ in 0..2 {
        let report = laptop.sync().unwrap();
        assert!(report.refused.is_empty(), "{:?}", report.refused);
        wim.sync().unwrap();
    }
    assert_eq!(laptop.read(&jansen).unwrap().escalations, wim.read(&jansen).unwrap().escalations);
    assert!(notes(&mut laptop, &jansen).contains(&"zorg: na de afschaling".to_owned()));

    // And their devices get nothing new.
    zoe.sync().unwrap();
    piet.sync().unwrap();
    assert!(!notes(&mut zoe, &jansen).contains(&"zorg: na de afschaling".to_owned()));
    assert!(!notes(&mut piet, &jansen).contains(&"basis: na de afschaling".to_owned()));
}

#[test]
fn a_handover_or_removal_forged_by_a_participant_or_made_up_by_the_server_is_refused_by_every_device() {
    let mut net = Network::start(USERS);
    let mut wim = net.device("wim", "Wim");
    let mut gert = net.device("gert", "Gert");
    let plan = wim.create_plan("Jansen").unwrap();
    wim.sync().unwrap();
    wim.add_participant(&plan, "Gert", "ggz").unwrap();
    gert.sync().unwrap();
    let held = wim.membership(&plan).unwrap().unwrap().steps.len() as u32;
    let gert_id = gert.own_user_id().unwrap().unwrap();
    let wim_id = wim.own_user_id().unwrap().unwrap();

    // Gert, a contributor, signs a handover to himself and a removal of Wim with his own
    // key; a compromised server stores them as the chain's next entry.
    let by_gert = gert.sign_membership_act(&plan, Act::Handover(gert_id)).unwrap();
    // Wim's name on an entry the server made up: Wim's certificate, not Wim's signature.
    let mut made_up = wim.sign_membership_act(&plan, Act::Remove(gert_id)).unwrap();
    let last = made_up.len() - 1;
    made_up[last] ^= 1;
    let _ = wim_id;
    for forged in [by_gert, made_up] {
        net.tamper_with_server_database(|conn| {
            conn.execute("DELETE FROM membership WHERE seq > ?1", [held]).unwrap();
            conn.execute(
                "INSERT INTO membership (plan_id, seq, signed, log_seq)
                 VALUES (?1, ?2, ?3, (SELECT head FROM log_head) + 1)",
                rusqlite::params![&plan.as_bytes()[..], held + 1, forged],
            )
            .unwrap();
            conn.execute("UPDATE log_head SET head = head + 1", []).unwrap();
        });
        for device in [&mut wim, &mut gert] {
            let report = device.sync().unwrap();
            assert!(
                report.refused.iter().any(|r| r.contains("membership")),
                "the forged entry was not refused: {:?}",
                report.refused
            );
            let membership = device.membership(&plan).unwrap().unwrap();
            assert_eq!(membership.regisseur.name, "Wim");
            assert_eq!(membership.offered_to, None);
            assert_eq!(membership.participants.len(), 2);
            assert_eq!(membership.steps.len() as u32, held);
        }
    }
}

#[test]
fn the_command_line_escalates_hands_over_removes_and_shows_the_regisseur_by_name() {
    let net = Network::start(USERS);
    let wim = Cli::enrolled(&net, "wim-cli", "Wim");
    let gert = Cli::enrolled(&net, "gert-cli", "Gert");
    let zoe = Cli::enrolled(&net, "zoe-cli", "Zoë");
    let piet = Cli::enrolled(&net, "piet-cli", "Piet");
    let plan = wim.ok(&["plan", "create", "--family", "Jansen"]);
    wim.ok(&["sync"]);
    wim.ok(&["plan", "add-participant", &plan, "--user", "Gert", "--role", "ggz"]);
    let show = wim.json(&["plan", "show", &plan]);
    assert_eq!(show["membership"]["regisseur"]["name"], "Wim");

    wim.ok(&[
        "plan",
        "escalate",
        &plan,
        "--level",
        "zorg_en_veiligheidshuis",
        "--reason",
        "Zorgen over veiligheid",
        "--grondslag",
        "convenant",
        "--regie",
        "Zoë",
        "--add",
        "Zoë:zvh_procesregisseur",
        "--add",
        "Piet:pga_expert",
    ]);
    zoe.ok(&["sync"]);
    zoe.ok(&["plan", "accept-regie", &plan]);
    wim.ok(&["sync"]);
    let show = wim.json(&["plan", "show", &plan]);
    assert_eq!(show["membership"]["regisseur"]["name"], "Zoë");
    assert_eq!(show["membership"]["offered_to"], serde_json::Value::Null);
    assert_eq!(show["escalation_level"], "zorg_en_veiligheidshuis");
    assert_eq!(Cli::names(&show["membership"]["participants"]), ["Gert", "Piet", "Wim", "Zoë"]);

    // Wim no longer holds regie: his handover is refused on his own device, in Dutch.
    let refused = wim.run(&["plan", "handover", &plan, "--to", "Gert"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("alleen de regisseur"));

    zoe.ok(&["plan", "remove-participant", &plan, "--user", "Gert"]);
    let readers = zoe.json(&["plan", "readers", &plan, "--compartment", "justitie"]);
    assert_eq!(readers["signed"], true);
    assert_eq!(Cli::names(&readers["readers"]), ["Piet", "Zoë"], "at the Veiligheidshuis level");
    zoe.ok(&["plan", "deescalate", &plan, "--level", "lokaal", "--regie", "Wim"]);
    wim.ok(&["sync"]);
    piet.ok(&["sync"]);
    gert.ok(&["sync"]);
    let show = wim.json(&["plan", "show", &plan]);
    assert_eq!(show["membership"]["regisseur"]["name"], "Wim");
    assert_eq!(Cli::names(&show["membership"]["participants"]), ["Wim"]);
    let readers = wim.json(&["plan", "readers", &plan, "--compartment", "zorg"]);
    assert_eq!(Cli::names(&readers["readers"]), ["Wim"]);
}

#[test]
fn a_participant_the_server_adds_on_its_own_gets_no_key_from_any_device() {
    let mut net = Network::start(USERS);
    let mut wim = net.device("wim", "Wim");
    let mut gert = net.device("gert", "Gert");
    let mut sanne = net.device("sanne", "Sanne");
    let plan = wim.create_plan("Jansen").unwrap();
    wim.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "basis: alleen voor deelnemers"))
        .unwrap();
    wim.sync().unwrap();
    wim.add_participant(&plan, "Gert", "ggz").unwrap();
    sync_all(&mut [&mut wim, &mut gert]);
    // The server makes Sanne (school, reads basis) a participant in its own tables only; the
    // plan's signed membership does not list her.
    let sanne_id = sanne.own_user_id().unwrap().unwrap();
    net.tamper_with_server_database(|conn| {
        conn.execute(
            "INSERT INTO participants (plan_id, user_id, plan_role, granted_at_seq)
             VALUES (?1, ?2, 'school', (SELECT head FROM log_head) + 1)",
            rusqlite::params![&plan.as_bytes()[..], sanne_id],
        )
        .unwrap();
        conn.execute("UPDATE log_head SET head = head + 1", []).unwrap();
    });
    let mut refusals = Vec::new();
    for _ in 0..2 {
        for device in [&mut sanne, &mut wim, &mut gert] {
            refusals.extend(device.sync().unwrap().refused);
        }
    }
    assert!(
        refusals.iter().any(|r| r.contains("does not list as a reader")),
        "the key holders refused to seal to her: {refusals:?}"
    );
    assert_eq!(sanne.keyed_compartments(&plan).unwrap(), Vec::<Compartment>::new(), "no key reached her");
    assert!(sanne.read(&plan).map(|v| v.notes.is_empty()).unwrap_or(true), "she reads nothing");
}

#[test]
fn after_a_removal_nothing_new_goes_under_the_old_key_even_when_the_server_never_asks_for_a_new_one() {
    let mut net = Network::start(USERS);
    // Piet holds regie but reads no zorg, so he cannot make zorg's next key himself.
    let mut piet = net.device("piet", "Piet");
    let mut wim = net.device("wim", "Wim");
    let mut gert = net.device("gert", "Gert");
    let plan = piet.create_plan("Jansen").unwrap();
    piet.sync().unwrap();
    piet.add_participant(&plan, "Wim", "wijkteam").unwrap();
    piet.add_participant(&plan, "Gert", "ggz").unwrap();
    sync_all(&mut [&mut wim, &mut gert, &mut piet]);
    wim.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::Note, "zorg: voor het vertrek")).unwrap();
    sync_all(&mut [&mut wim, &mut gert]);
    assert!(notes(&mut gert, &plan).contains(&"zorg: voor het vertrek".to_owned()));
    let before = server_bundles(&net.server.data.join("server.db"), &plan).len();

    // Piet removes Gert; a compromised server then forgets the rotation it owes and would
    // take anything sealed under the old key.
    piet.remove_participant(&plan, "Gert").unwrap();
    assert_eq!(piet.sync_membership().unwrap(), ShareOutcome::Done);
    net.tamper_with_server_database(|conn| {
        conn.execute("DELETE FROM rotations", []).unwrap();
    });
    // Wim's device learns of the removal (what it sealed before it knew, an honest server
    // refuses as `rotating` and the device seals again under the next key).
    wim.sync().unwrap();
    assert_eq!(wim.membership(&plan).unwrap().unwrap().participants.len(), 2);
    wim.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::Note, "zorg: na het vertrek")).unwrap();
    let report = wim.sync().unwrap();
    assert!(report.refused.iter().any(|r| r.contains("no longer takes part")), "{:?}", report.refused);
    assert!(wim.status().unwrap().pending_changes > 0, "the note waits on the device, kept");
    let after = server_bundles(&net.server.data.join("server.db"), &plan);
    assert!(
        !after.iter().skip(before).any(|(c, _, _)| *c == Compartment::Zorg as u8),
        "nothing under the old key"
    );
    gert.sync().unwrap();
    assert!(!notes(&mut gert, &plan).contains(&"zorg: na het vertrek".to_owned()));
}

#[test]
fn a_rotation_the_administrator_never_finished_is_made_by_a_remaining_reader_and_no_write_waits() {
    let mut net = Network::start(USERS);
    let mut wim = net.device("wim", "Wim");
    let mut gert = net.device("gert", "Gert");
    let plan = wim.create_plan("Jansen").unwrap();
    wim.sync().unwrap();
    wim.add_participant(&plan, "Gert", "ggz").unwrap();
    sync_all(&mut [&mut wim, &mut gert]);
    // A revocation queued the plan's rotations, and the administrator's re-key never ran (an
    // interrupted `device revoke`): the server's state as it would be then.
    net.tamper_with_server_database(|conn| {
        conn.execute(
            "INSERT INTO rotations (plan_id, compartment, queued_epoch, queued_at)
             SELECT plan_id, compartment, MAX(epoch), 1 FROM commitments WHERE plan_id = ?1
             GROUP BY plan_id, compartment",
            [&plan.as_bytes()[..]],
        )
        .unwrap();
    });
    wim.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::Note, "zorg: tijdens de intrekking"))
        .unwrap();
    for _ in 0..2 {
        wim.sync().unwrap();
    }
    assert_eq!(wim.status().unwrap().pending_changes, 0, "the writer made the new key itself");
    let conn = rusqlite::Connection::open(net.server.data.join("server.db")).unwrap();
    let by_device: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM commitments WHERE plan_id = ?1 AND epoch = 2 AND minter_device = ?2",
            rusqlite::params![&plan.as_bytes()[..], &wim.device_id().as_bytes()[..]],
            |row| row.get(0),
        )
        .unwrap();
    assert!(by_device >= 1, "a device, not an administrator, made epoch 2");
    let waiting: i64 = conn.query_row("SELECT COUNT(*) FROM rotations", [], |row| row.get(0)).unwrap();
    assert_eq!(waiting, 0, "every rotation settled");
    gert.sync().unwrap();
    gert.sync().unwrap();
    assert!(notes(&mut gert, &plan).contains(&"zorg: tijdens de intrekking".to_owned()));
}
