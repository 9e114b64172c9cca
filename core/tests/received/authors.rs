//! Who wrote a note, an agreement or an escalation step is the device whose change created it
//! (the actor a bundle's signature vouches for), never what the writer stored in it.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc};
use eenplan_core::plan::{Compartment, Plan};

use crate::fixture::{self, fixture, receive_changes};

/// Device 9 writes into `compartment`; a device holding the whole fixture plan receives it.
fn received_from_device_9(compartment: Compartment, edit: impl FnOnce(&mut AutoCommit)) -> Plan {
    let f = fixture();
    let mut doc = AutoCommit::load(f.saved(compartment)).unwrap().with_actor(fixture::device(9).actor());
    let heads = doc.get_heads();
    edit(&mut doc);
    let payload: Vec<u8> = doc.get_changes(&heads).iter().flat_map(|c| c.raw_bytes().to_vec()).collect();
    let mut receiver = f.receiver(compartment, f.changes(compartment).len());
    receive_changes(&mut receiver, compartment, &payload, fixture::device(9)).unwrap();
    receiver
}

fn entity(doc: &mut AutoCommit, collection: &str, id: &str) -> automerge::ObjId {
    let (_, map) = doc.get(ROOT, collection).unwrap().unwrap();
    doc.put_object(&map, id, ObjType::Map).unwrap()
}

#[test]
fn a_note_whose_stored_author_names_another_device_is_shown_as_written_by_its_actor() {
    let innocent = fixture::device(1).to_string();
    let receiver = received_from_device_9(Compartment::Veiligheid, |d| {
        let note = entity(d, "notes", "00000000000000f1");
        d.put(&note, "kind", "note").unwrap();
        let text = d.put_object(&note, "text", ObjType::Text).unwrap();
        d.splice_text(&text, 0, 0, "Vader heeft gedreigd.").unwrap();
        d.put(&note, "author", innocent.as_str()).unwrap();
    });
    let view = receiver.view().unwrap();
    let note = view.notes.iter().find(|n| n.text == "Vader heeft gedreigd.").unwrap();
    assert_eq!(note.author, fixture::device(9).to_string());
    assert_ne!(note.author, innocent);
}

#[test]
fn agreements_and_escalation_steps_are_shown_as_written_by_their_actor() {
    let innocent = fixture::device(2).to_string();
    let receiver = received_from_device_9(Compartment::Basis, |d| {
        let agreement = entity(d, "agreements", "00000000000000f2");
        let text = d.put_object(&agreement, "text", ObjType::Text).unwrap();
        d.splice_text(&text, 0, 0, "De kinderen gaan naar oma.").unwrap();
        d.put(&agreement, "author", innocent.as_str()).unwrap();
        let (_, steps) = d.get(ROOT, "escalations").unwrap().unwrap();
        let at = d.length(&steps);
        let step = d.insert_object(&steps, at, ObjType::Map).unwrap();
        d.put(&step, "level", "zorg_en_veiligheidshuis").unwrap();
        d.put(&step, "by", innocent.as_str()).unwrap();
    });
    let view = receiver.view().unwrap();
    let agreement = view.agreements.iter().find(|a| a.text == "De kinderen gaan naar oma.").unwrap();
    assert_eq!(agreement.author, fixture::device(9).to_string());
    assert_eq!(view.escalations.last().unwrap().by, fixture::device(9).to_string());
}

#[test]
fn a_note_keeps_its_author_when_others_type_in_it_and_old_notes_without_the_field_show_their_actor() {
    let f = fixture();
    let mut plan = f.receiver(Compartment::Zorg, f.changes(Compartment::Zorg).len());
    let view = plan.view().unwrap();
    let note = view.notes.iter().find(|n| n.compartment == Compartment::Zorg).unwrap().clone();
    // The fixture's notes were written by devices 1 to 3, each named by its own actor.
    assert!((1..=3).any(|n| note.author == fixture::device(n).to_string()), "{}", note.author);
    plan.edit_note_text(Compartment::Zorg, note.id, 0, 0, "Aanvulling: ").unwrap();
    let after = plan.view().unwrap();
    let edited = after.notes.iter().find(|n| n.id == note.id).unwrap();
    assert!(edited.text.starts_with("Aanvulling: "));
    assert_eq!(edited.author, note.author);
    // A note written before this version, with no author field at all.
    let receiver = received_from_device_9(Compartment::Justitie, |d| {
        let old = entity(d, "notes", "00000000000000f3");
        let text = d.put_object(&old, "text", ObjType::Text).unwrap();
        d.splice_text(&text, 0, 0, "Oude notitie.").unwrap();
    });
    let view = receiver.view().unwrap();
    assert_eq!(
        view.notes.iter().find(|n| n.text == "Oude notitie.").unwrap().author,
        fixture::device(9).to_string()
    );
}
