//! Received content is held to the limits of local edits (`plan/vocab.rs`): each limit, with a
//! received document or change that exceeds it.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc, ScalarValue};
use eenplan_core::plan::vocab::{
    LONG_TEXT_MAX_CHARS, MAX_CHANGE_BYTES, MAX_DOMAINS, MAX_ENTITIES, MAX_KEY_CHARS, MAX_NESTING,
    MAX_RECEIVED_DOCUMENT_BYTES, RECEIVED_HEADROOM, SHORT_TEXT_MAX_CHARS,
};
use eenplan_core::plan::{
    self, ChunkKind, Compartment, Limit, NoteKind, Plan, PlanError, Refusal, ValidationError,
};

use crate::fixture::{self, check_outcome, fixture, receive_changes, receive_document, snapshot};

/// The fixture's document of `compartment`, as device 9 (a participant in bad faith) sees it.
fn as_device_9(compartment: Compartment) -> AutoCommit {
    let doc = AutoCommit::load(fixture().saved(compartment)).unwrap();
    doc.with_actor(automerge::ActorId::from(&[9u8; 16][..]))
}

fn changes_since(doc: &mut AutoCommit, heads: &[automerge::ChangeHash]) -> Vec<Vec<u8>> {
    doc.get_changes(heads).iter().map(|c| c.raw_bytes().to_vec()).collect()
}

/// Device 9's edit of `compartment`, received in one bundle by a device holding the whole
/// fixture plan; checks that a refusal changed nothing.
fn receive_edit(compartment: Compartment, edit: impl FnOnce(&mut AutoCommit)) -> Result<(), PlanError> {
    let mut doc = as_device_9(compartment);
    let heads = doc.get_heads();
    edit(&mut doc);
    let payload = changes_since(&mut doc, &heads).concat();
    let f = fixture();
    let mut receiver = f.receiver(compartment, f.changes(compartment).len());
    let before = snapshot(&receiver);
    let outcome = receive_changes(&mut receiver, compartment, &payload, fixture::device(9));
    check_outcome(&receiver, &before, &outcome);
    outcome
}

fn assert_over(outcome: Result<(), PlanError>, expected: Limit) {
    match outcome {
        Err(PlanError::Refused { reason: Refusal::OverLimit { limit, .. }, .. }) if limit == expected => {}
        other => panic!("expected a refusal over the {expected} limit, got {other:?}"),
    }
}

fn random_bytes(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[test]
fn a_received_one_line_value_longer_than_a_device_may_write_is_refused() {
    let at_limit = "é".repeat(SHORT_TEXT_MAX_CHARS);
    receive_edit(Compartment::Basis, |d| d.put(ROOT, "family", at_limit.as_str()).unwrap()).unwrap();
    let over = "é".repeat(SHORT_TEXT_MAX_CHARS + 1);
    assert_over(
        receive_edit(Compartment::Basis, |d| d.put(ROOT, "family", over.as_str()).unwrap()),
        Limit::ShortText,
    );
    // Any value at all, where the read model looks or not, and a byte value too.
    assert_over(
        receive_edit(Compartment::Zorg, |d| d.put(ROOT, "elders", over.as_str()).unwrap()),
        Limit::ShortText,
    );
    let bytes = vec![0u8; SHORT_TEXT_MAX_CHARS * 4 + 1];
    assert_over(receive_edit(Compartment::Zorg, |d| d.put(ROOT, "blob", bytes).unwrap()), Limit::ShortText);
}

#[test]
fn a_received_text_may_reach_twice_the_local_limit_as_concurrent_typing_can_and_no_more() {
    let note = |len: usize| {
        move |d: &mut AutoCommit| {
            let (_, notes) = d.get(ROOT, "notes").unwrap().unwrap();
            let n = d.put_object(&notes, "00000000000000aa", ObjType::Map).unwrap();
            let text = d.put_object(&n, "text", ObjType::Text).unwrap();
            d.splice_text(&text, 0, 0, &"a".repeat(len)).unwrap();
        }
    };
    let max = LONG_TEXT_MAX_CHARS * RECEIVED_HEADROOM;
    receive_edit(Compartment::Justitie, note(max)).unwrap();
    assert_over(receive_edit(Compartment::Justitie, note(max + 1)), Limit::LongText);
}

#[test]
fn a_received_collection_beyond_twice_the_entity_limit_is_refused() {
    assert_over(
        receive_edit(Compartment::Zorg, |d| {
            let (_, notes) = d.get(ROOT, "notes").unwrap().unwrap();
            for i in 0..MAX_ENTITIES * RECEIVED_HEADROOM + 1 {
                d.put_object(&notes, format!("{i:016x}"), ObjType::Map).unwrap();
            }
        }),
        Limit::Entries,
    );
}

#[test]
fn a_device_refuses_to_add_an_entity_beyond_the_limit() {
    let f = fixture();
    let mut doc = AutoCommit::load(f.saved(Compartment::Zorg)).unwrap();
    let (_, notes) = doc.get(ROOT, "notes").unwrap().unwrap();
    for i in doc.length(&notes)..MAX_ENTITIES {
        doc.put_object(&notes, format!("{i:016x}"), ObjType::Map).unwrap();
    }
    let docs =
        vec![(Compartment::Basis, f.doc(Compartment::Basis)), (Compartment::Zorg, doc.document().clone())];
    let mut plan = Plan::from_documents(f.plan, fixture::receiver_id(), docs, fixture::clock()).unwrap();
    let err = plan.add_note(Compartment::Zorg, NoteKind::Note, "nog een").unwrap_err();
    assert!(matches!(err, PlanError::Invalid(ValidationError::TooMany { .. })), "{err:?}");
    plan.add_note(Compartment::Basis, NoteKind::Note, "elders is ruimte").unwrap();
}

#[test]
fn a_received_domain_list_longer_than_a_device_may_create_is_refused() {
    assert_over(
        receive_edit(Compartment::Basis, |d| {
            let (_, domains) = d.get(ROOT, "domains").unwrap().unwrap();
            for i in d.length(&domains)..=MAX_DOMAINS {
                d.insert(&domains, i, format!("domein {i}")).unwrap();
            }
        }),
        Limit::Domains,
    );
}

#[test]
fn received_nesting_deeper_than_the_limit_is_refused() {
    let nest = |depth: usize| {
        move |d: &mut AutoCommit| {
            let mut obj = ROOT;
            for _ in 0..depth {
                obj = d.put_object(&obj, "x", ObjType::Map).unwrap();
            }
        }
    };
    receive_edit(Compartment::Zorg, nest(MAX_NESTING)).unwrap();
    assert_over(receive_edit(Compartment::Zorg, nest(MAX_NESTING + 1)), Limit::Nesting);
}

#[test]
fn a_received_key_longer_than_the_limit_is_refused() {
    let key = |len: usize| move |d: &mut AutoCommit| d.put(ROOT, "k".repeat(len), 1).unwrap();
    receive_edit(Compartment::Zorg, key(MAX_KEY_CHARS)).unwrap();
    assert_over(receive_edit(Compartment::Zorg, key(MAX_KEY_CHARS + 1)), Limit::KeyLength);
}

#[test]
fn a_received_change_larger_than_one_edit_can_be_is_refused_before_automerge_parses_it() {
    let mut doc = as_device_9(Compartment::Zorg);
    doc.put(ROOT, "blob", random_bytes(MAX_CHANGE_BYTES, 1)).unwrap();
    let change = doc.get_last_local_change().unwrap().raw_bytes().to_vec();
    let err = plan::parse_received_changes(Compartment::Zorg, &change, fixture::device(9)).unwrap_err();
    assert_over(Err(err), Limit::ChangeSize);
}

#[test]
fn a_received_document_beyond_the_size_limit_is_refused_whichever_way_it_comes() {
    let f = fixture();
    let receive_snapshot = |saved: &[u8]| {
        let mut receiver = f.receiver(Compartment::Zorg, 0);
        receive_document(&mut receiver, Compartment::Zorg, saved)
    };
    // A snapshot too large as it comes.
    let mut doc = as_device_9(Compartment::Zorg);
    doc.put(ROOT, "blob", random_bytes(MAX_RECEIVED_DOCUMENT_BYTES, 2)).unwrap();
    assert_over(receive_snapshot(&doc.save()), Limit::DocumentSize);
    // A small snapshot whose deflated columns inflate past the limit: measured before
    // automerge inflates them.
    let mut doc = as_device_9(Compartment::Zorg);
    doc.put(ROOT, "blob", vec![0u8; MAX_RECEIVED_DOCUMENT_BYTES]).unwrap();
    let saved = doc.save();
    assert!(saved.len() < MAX_RECEIVED_DOCUMENT_BYTES / 100, "{}", saved.len());
    let outcome = receive_snapshot(&saved);
    assert!(
        matches!(&outcome, Err(PlanError::Refused { reason: Refusal::OverLimit { at, .. }, .. }) if at == plan::DEFLATED_COLUMNS),
        "{outcome:?}"
    );
    // Changes, each small enough, that together grow the document past the limit. Each
    // overwrites the last, so what the read model sees stays small: only the size counts.
    let pieces = MAX_RECEIVED_DOCUMENT_BYTES / (MAX_CHANGE_BYTES / 2) + 1;
    let outcome = receive_edit(Compartment::Zorg, |d| {
        for i in 0..pieces {
            d.put(ROOT, "blob", random_bytes(MAX_CHANGE_BYTES / 2, i as u64 + 3)).unwrap();
            d.commit();
        }
        d.put(ROOT, "blob", ScalarValue::Null).unwrap();
    });
    assert_over(outcome, Limit::DocumentSize);
}

#[test]
fn a_device_refuses_edits_to_a_full_document() {
    let f = fixture();
    let mut doc = AutoCommit::load(f.saved(Compartment::Zorg)).unwrap();
    for i in 0..5 {
        doc.put(ROOT, "blob", random_bytes(1024 * 1024, i + 10)).unwrap();
        doc.commit();
    }
    let docs =
        vec![(Compartment::Basis, f.doc(Compartment::Basis)), (Compartment::Zorg, doc.document().clone())];
    let mut plan = Plan::from_documents(f.plan, fixture::receiver_id(), docs, fixture::clock()).unwrap();
    let err = plan.add_note(Compartment::Zorg, NoteKind::Note, "nog een").unwrap_err();
    assert!(matches!(err, PlanError::Invalid(ValidationError::DocumentFull { .. })), "{err:?}");
    plan.add_note(Compartment::Basis, NoteKind::Note, "elders is ruimte").unwrap();
}

#[test]
fn compressed_changes_and_documents_among_changes_are_refused_unparsed() {
    let mut doc = as_device_9(Compartment::Zorg);
    doc.put(ROOT, "long", "a".repeat(SHORT_TEXT_MAX_CHARS)).unwrap();
    let mut change = doc.get_last_local_change().unwrap();
    let compressed = change.bytes().to_vec();
    assert_ne!(compressed, change.raw_bytes(), "the change did not compress");
    let unexpected =
        |bytes: &[u8]| plan::parse_received_changes(Compartment::Zorg, bytes, fixture::device(9));
    assert!(matches!(
        unexpected(&compressed),
        Err(PlanError::Refused {
            reason: Refusal::UnexpectedChunk { found: ChunkKind::CompressedChange, .. },
            ..
        })
    ));
    assert!(matches!(
        unexpected(&doc.save()),
        Err(PlanError::Refused { reason: Refusal::UnexpectedChunk { found: ChunkKind::Document, .. }, .. })
    ));
}

#[test]
fn a_bundle_carrying_another_devices_change_is_refused() {
    let f = fixture();
    let theirs = &f.changes(Compartment::Basis)[1];
    let err =
        plan::parse_received_changes(Compartment::Basis, &theirs.bytes, fixture::device(9)).unwrap_err();
    assert!(matches!(err, PlanError::Refused { reason: Refusal::ForeignChange { .. }, .. }), "{err:?}");
    assert!(plan::parse_received_changes(Compartment::Basis, &theirs.bytes, theirs.author).is_ok());
}
