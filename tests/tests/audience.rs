//! "Who will read this" and "who wrote this", end to end: a wijkteam home-visit note goes to
//! a compartment the school cannot read, what the worker is shown before saving names the
//! plan's participants who do read it, and writers are shown as people, not device ids.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use eenplan_core::audience::{Audience, Reader};
use eenplan_core::plan::{Compartment, GoalStatus, NewGoal, NewParticipant, NoteKind, Role};
use eenplan_core::{Device, PlanId};
use eenplan_tests::network::Network;

const USERS: &[(&str, &str, &str)] = &[
    ("Rita", "Wijkteam Noord", "wijkteam"),
    ("Wim", "Wijkteam Noord", "wijkteam"),
    ("Gert", "GGZ Centraal", "ggz"),
    ("Sanne", "Basisschool De Linde", "school"),
    ("Otto", "Politie Midden", "politie"),
];

fn reader(name: &str, organisation: &str, role: &str) -> Reader {
    Reader { name: name.into(), organisation: organisation.into(), role: role.into() }
}

fn note_texts(device: &mut Device, plan: &PlanId) -> Vec<String> {
    device.read(plan).unwrap().notes.into_iter().map(|n| n.text).collect()
}

#[test]
fn a_wijkteam_home_visit_note_never_reaches_the_school_and_readers_names_exactly_who_gets_it() {
    let net = Network::start(USERS);
    let mut rita = net.device("rita", "Rita");
    let mut wim = net.device("wim", "Wim");
    let mut gert = net.device("gert", "Gert");
    let mut sanne = net.device("sanne", "Sanne");
    let plan = rita.create_plan("Jansen").unwrap();
    // The plan's own list of participants, and their access.
    for (name, organisation, role) in USERS {
        let role: Role = role.parse().unwrap();
        let participant = NewParticipant { name: (*name).into(), organisation: (*organisation).into(), role };
        rita.edit(&plan, |p| p.add_participant(participant)).unwrap();
    }
    rita.sync().unwrap();
    for (user, role) in [("Wim", "wijkteam"), ("Gert", "ggz"), ("Sanne", "school")] {
        rita.add_participant(&plan, user, role).unwrap();
    }
    for _ in 0..2 {
        for device in [&mut rita, &mut wim, &mut gert, &mut sanne] {
            device.sync().unwrap();
        }
    }

    // Wim names no compartment: his note goes where his role writes with the fewest readers.
    let compartment = wim.default_note_compartment().unwrap();
    assert_eq!(compartment, Compartment::Zorg, "never basis for a wijkteam note");
    let text = "Huisbezoek: moeder vertelt over de GGZ-behandeling.";
    wim.edit(&plan, |p| p.add_note(compartment, NoteKind::HomeVisit, text)).unwrap();

    // What he is shown before saving: the participants whose role reads zorg, and no one else.
    let Audience::Readers { readers, roles, signed } = wim.audience(&plan, compartment).unwrap() else {
        panic!("an enrolled, synced device knows its policy");
    };
    assert!(signed, "the names come from the plan's signed membership");
    assert_eq!(
        readers,
        vec![
            reader("Gert", "GGZ Centraal", "ggz"),
            reader("Rita", "Wijkteam Noord", "wijkteam"),
            reader("Wim", "Wijkteam Noord", "wijkteam"),
        ]
    );
    assert!(!roles.contains(&"school".to_owned()) && roles.contains(&"ggz".to_owned()), "{roles:?}");
    // basis, by contrast, every participant reads; Otto is only in the plan's own list, which
    // anyone writing the plan can edit, not in its signed membership: he gets nothing.
    let Audience::Readers { readers: basis, .. } = wim.audience(&plan, Compartment::Basis).unwrap() else {
        panic!("policy known");
    };
    let names: Vec<&str> = basis.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["Gert", "Rita", "Sanne", "Wim"]);

    wim.sync().unwrap();
    for device in [&mut rita, &mut gert, &mut sanne] {
        device.sync().unwrap();
    }
    assert!(note_texts(&mut gert, &plan).contains(&text.to_owned()), "GGZ reads zorg");
    assert!(note_texts(&mut rita, &plan).contains(&text.to_owned()), "Rita, wijkteam too, reads zorg");
    assert!(!note_texts(&mut sanne, &plan).contains(&text.to_owned()), "the school never gets it");
    assert_eq!(sanne.keyed_compartments(&plan).unwrap(), vec![Compartment::Basis]);

    // Wim passes the note on to veiligheid by copying it; the copy says where it came from.
    let original = wim.read(&plan).unwrap().notes.into_iter().find(|n| n.text == text).unwrap();
    let copy =
        wim.edit(&plan, |p| p.copy_note(Compartment::Zorg, original.id, Compartment::Veiligheid)).unwrap();
    wim.sync().unwrap();
    rita.sync().unwrap();
    let seen =
        rita.read(&plan).unwrap().notes.into_iter().find(|n| n.id == copy).expect("Rita reads veiligheid");
    let origin = seen.copied_from.expect("the copy names its origin");
    assert_eq!((seen.compartment, seen.text.as_str()), (Compartment::Veiligheid, text));
    assert_eq!((origin.compartment.as_str(), origin.note), ("zorg", original.id.to_string()));
    assert_eq!((origin.author, origin.written_at_ms), (original.author, original.created_at_ms));
    gert.sync().unwrap();
    assert!(!gert.read(&plan).unwrap().notes.iter().any(|n| n.id == copy), "GGZ reads no veiligheid");
}

#[test]
fn a_police_note_goes_to_justitie_and_a_school_note_to_basis_the_only_one_it_writes() {
    let net = Network::start(USERS);
    let mut otto = net.device("otto", "Otto");
    let mut sanne = net.device("sanne", "Sanne");
    // The policy arrives with the first sync.
    otto.sync().unwrap();
    sanne.sync().unwrap();
    assert_eq!(otto.default_note_compartment().unwrap(), Compartment::Justitie);
    assert_eq!(sanne.default_note_compartment().unwrap(), Compartment::Basis);
}

#[test]
fn a_device_that_is_not_enrolled_says_its_notes_stay_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::init(dir.path(), &eenplan_tests::test_keystore()).unwrap();
    let plan = device.create_plan("Jansen").unwrap();
    assert_eq!(device.audience(&plan, Compartment::Zorg).unwrap(), Audience::ThisDeviceOnly);
    assert_eq!(
        device.default_note_compartment().unwrap(),
        eenplan_core::audience::NOTE_COMPARTMENT_WITHOUT_ROLE
    );
}

#[test]
fn notes_and_conflicts_name_their_writers_by_person_and_organisation_not_device_id() {
    let net = Network::start(USERS);
    let mut rita = net.device("rita", "Rita");
    let mut wim = net.device("wim", "Wim");
    let mut gert = net.device("gert", "Gert");
    let plan = rita.create_plan("Jansen").unwrap();
    let goal = rita
        .edit(&plan, |p| {
            p.add_goal(NewGoal { domain: "financiën".into(), title: "Schulden in beeld".into() })
        })
        .unwrap();
    rita.sync().unwrap();
    for (user, role) in [("Wim", "wijkteam"), ("Gert", "ggz")] {
        rita.add_participant(&plan, user, role).unwrap();
    }
    for _ in 0..2 {
        for device in [&mut wim, &mut gert, &mut rita] {
            device.sync().unwrap();
        }
    }
    // Offline, both set the goal's status; Wim also writes a note.
    wim.edit(&plan, |p| p.set_goal_status(goal, GoalStatus::InProgress)).unwrap();
    gert.edit(&plan, |p| p.set_goal_status(goal, GoalStatus::Achieved)).unwrap();
    wim.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::HomeVisit, "Huisbezoek: rustig")).unwrap();
    for device in [&mut wim, &mut gert, &mut rita] {
        device.sync().unwrap();
    }

    let view = rita.read(&plan).unwrap();
    let note = view.notes.iter().find(|n| n.text == "Huisbezoek: rustig").unwrap();
    let wim_person = view.people.iter().find(|p| p.device == note.author).expect("the author is named");
    assert_eq!(
        (wim_person.name.as_str(), wim_person.organisation.as_str(), wim_person.role.as_str()),
        ("Wim", "Wijkteam Noord", "wijkteam")
    );
    let conflicts = rita.conflicts(&plan).unwrap();
    let mut writers: Vec<String> = conflicts[0]
        .values
        .iter()
        .map(|v| v.author_person.as_ref().map(|p| format!("{} ({})", p.name, p.organisation)).unwrap())
        .collect();
    writers.sort();
    assert_eq!(writers, ["Gert (GGZ Centraal)", "Wim (Wijkteam Noord)"]);
}

#[test]
fn a_device_that_holds_no_certificate_for_a_writer_names_nobody_rather_than_guess() {
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::init(dir.path(), &eenplan_tests::test_keystore()).unwrap();
    let plan = device.create_plan("Jansen").unwrap();
    device.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::Note, "lokaal")).unwrap();
    // Not enrolled: there is no root to check a certificate against, so no one is named.
    assert!(device.read(&plan).unwrap().people.is_empty());
}
