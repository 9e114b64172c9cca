//! Property tests of the receiving path on stable: arbitrary bytes, mutated real changes and
//! documents, and well-formed documents of the wrong shape. Whatever arrives, the result is
//! a typed error or an accepted input that materialises; nothing panics, and a refusal
//! changes nothing.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc, ScalarValue};
use eenplan_core::plan::{self, Compartment, Plan};
use proptest::prelude::*;

use crate::fixture::{self, Received, check_outcome, fixture, receive_changes, receive_document, snapshot};

fn compartment() -> impl Strategy<Value = Compartment> {
    prop_oneof![
        4 => Just(Compartment::Basis),
        1 => Just(Compartment::Zorg),
        2 => Just(Compartment::Veiligheid),
        1 => Just(Compartment::Justitie),
    ]
}

/// Bytes shaped like automerge chunks (magic, a type, a length, a body; sometimes with a
/// correct checksum), or anything at all.
fn chunk_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    let chunk = (0u8..6, prop::collection::vec(any::<u8>(), 0..400), any::<bool>(), any::<bool>()).prop_map(
        |(kind, body, honest_length, checksum)| {
            let mut out = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, kind];
            let len = if honest_length { body.len() } else { body.len() * 3 + 1 };
            leb128::write::unsigned(&mut out, len as u64).unwrap();
            out.extend(body);
            if checksum {
                fixture::fix_checksum(&mut out);
            }
            out
        },
    );
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600),
        prop::collection::vec(chunk, 1..4).prop_map(|chunks| chunks.concat()),
    ]
}

proptest! {
    #![proptest_config(fixture::config(256))]

    #[test]
    fn arbitrary_bytes_as_changes_are_refused_or_applied_never_a_panic(
        bytes in chunk_like_bytes(),
        compartment in compartment(),
        held in any::<bool>(),
    ) {
        let f = fixture();
        let upto = if held { f.changes(compartment).len() } else { 0 };
        let mut receiver = f.receiver(compartment, upto);
        let before = snapshot(&receiver);
        let author = fixture::device(1);
        let outcome = receive_changes(&mut receiver, compartment, &bytes, author);
        check_outcome(&receiver, &before, &outcome);
        // The same bytes as one change of any author (what `Plan::apply_changes` takes).
        let mut receiver = f.receiver(compartment, upto);
        let before = snapshot(&receiver);
        let single = plan::parse_change(compartment, &bytes).and_then(|c| receiver.apply_parsed(compartment, vec![c]));
        check_outcome(&receiver, &before, &single);
    }
}

proptest! {
    #![proptest_config(fixture::config(512))]

    #[test]
    fn arbitrary_bytes_as_a_snapshot_are_refused_never_a_panic(
        bytes in chunk_like_bytes(),
        compartment in compartment(),
    ) {
        let mut receiver = fixture().receiver(compartment, 0);
        let before = snapshot(&receiver);
        let outcome = receive_document(&mut receiver, compartment, &bytes);
        check_outcome(&receiver, &before, &outcome);
    }
}

/// One way to damage bytes.
#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        bit: u8,
    },
    Set {
        at: usize,
        byte: u8,
    },
    Truncate {
        at: usize,
    },
    /// Replace `len` bytes at `at` with bytes of another real change of the same compartment.
    Splice {
        at: usize,
        len: usize,
        donor: usize,
        from: usize,
        take: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        2 => (any::<usize>(), 0usize..64, any::<usize>(), any::<usize>(), 0usize..64)
            .prop_map(|(at, len, donor, from, take)| Mutation::Splice { at, len, donor, from, take }),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation, donors: &[Vec<u8>]) {
    if bytes.is_empty() {
        return;
    }
    let n = bytes.len();
    match mutation {
        Mutation::Flip { at, bit } => bytes[at % n] ^= 1 << bit,
        Mutation::Set { at, byte } => bytes[at % n] = *byte,
        Mutation::Truncate { at } => bytes.truncate(at % n),
        Mutation::Splice { at, len, donor, from, take } => {
            let donor = &donors[donor % donors.len()];
            let from = from % donor.len().max(1);
            let piece = &donor[from..(from + take).min(donor.len())];
            let at = at % n;
            let end = (at + len).min(n);
            bytes.splice(at..end, piece.iter().copied());
        }
        Mutation::Insert { at, bytes: new } => {
            let at = at % n;
            bytes.splice(at..at, new.iter().copied());
        }
    }
}

/// Damaged real changes: `count` consecutive changes of the author of the change at `index`,
/// sent as one bundle to a receiver that holds everything before `index`.
#[derive(Debug, Clone)]
struct DamagedBundle {
    compartment: Compartment,
    index: usize,
    count: usize,
    mutations: Vec<Mutation>,
    fix_checksums: bool,
}

fn damaged_bundle() -> impl Strategy<Value = DamagedBundle> {
    (compartment(), any::<usize>(), 1usize..4, prop::collection::vec(mutation(), 1..4), any::<bool>())
        .prop_map(|(compartment, index, count, mutations, fix_checksums)| DamagedBundle {
            compartment,
            index: index % fixture().changes(compartment).len(),
            count,
            mutations,
            fix_checksums,
        })
}

fn recompute_checksums(payload: &mut [u8], chunks: &[usize]) {
    let mut start = 0;
    for len in chunks {
        let end = (start + len).min(payload.len());
        fixture::fix_checksum(&mut payload[start..end]);
        start = end;
    }
}

proptest! {
    #![proptest_config(fixture::config(384))]

    #[test]
    fn mutated_real_changes_through_the_receiving_path_are_refused_or_applied_never_a_panic(
        case in damaged_bundle()
    ) {
        let f = fixture();
        let changes = f.changes(case.compartment);
        let author = changes[case.index].author;
        let chosen: Vec<&Received> =
            changes[case.index..].iter().filter(|c| c.author == author).take(case.count).collect();
        let donors: Vec<Vec<u8>> = changes.iter().map(|c| c.bytes.clone()).collect();
        let mut payload = chosen.iter().map(|c| c.bytes.clone()).collect::<Vec<_>>().concat();
        for m in &case.mutations {
            mutate(&mut payload, m, &donors);
        }
        if case.fix_checksums {
            recompute_checksums(&mut payload, &chosen.iter().map(|c| c.bytes.len()).collect::<Vec<_>>());
        }
        let mut receiver = f.receiver(case.compartment, case.index);
        let before = snapshot(&receiver);
        let outcome = receive_changes(&mut receiver, case.compartment, &payload, author);
        check_outcome(&receiver, &before, &outcome);
    }
}

proptest! {
    #![proptest_config(fixture::config(384))]

    #[test]
    fn mutated_real_snapshots_are_refused_or_merged_never_a_panic(
        compartment in compartment(),
        upto in any::<usize>(),
        mutations in prop::collection::vec(mutation(), 1..4),
        fix in any::<bool>(),
    ) {
        let f = fixture();
        let mut bytes = f.saved(compartment).to_vec();
        let donors: Vec<Vec<u8>> = f.saved.iter().map(|(_, s)| s.clone()).collect();
        for m in &mutations {
            mutate(&mut bytes, m, &donors);
        }
        if fix {
            fixture::fix_checksum(&mut bytes);
        }
        let mut receiver = f.receiver(compartment, upto % (f.changes(compartment).len() + 1));
        let before = snapshot(&receiver);
        let outcome = receive_document(&mut receiver, compartment, &bytes);
        check_outcome(&receiver, &before, &outcome);
    }
}

/// A field the read model reads, in the `basis` document unless it says otherwise.
#[derive(Debug, Clone, Copy)]
enum Field {
    Root(&'static str),
    /// An item of a root list (`domains`, `escalations`).
    ListItem(&'static str),
    /// A field of an escalation step.
    Step(&'static str),
    /// A field of the first entity of a collection (in its compartment).
    Entity(Compartment, &'static str, &'static str),
    /// The first entity of a collection itself.
    WholeEntity(Compartment, &'static str),
    /// A new entry of a collection under a key of the fuzzer's choosing.
    NewEntry(Compartment, &'static str),
    /// The first ZRM score.
    Score,
}

fn field() -> impl Strategy<Value = Field> {
    use Compartment::{Basis, Veiligheid, Zorg};
    let root = [
        "schema",
        "plan_id",
        "family",
        "phase",
        "regisseur",
        "domains",
        "escalations",
        "members",
        "participants",
        "goals",
        "scores",
        "actions",
        "agreements",
        "notes",
    ];
    let entity_fields: [(Compartment, &str, &[&str]); 8] = [
        (Basis, "members", &["name", "relation", "birth_date", "parental_authority", "created_at"]),
        (Basis, "participants", &["name", "organisation", "role", "created_at"]),
        (Basis, "goals", &["domain", "title", "status", "description", "created_at"]),
        (
            Basis,
            "actions",
            &["goal", "title", "owner_org", "owner_person", "owner_user", "due", "status", "created_at"],
        ),
        (Basis, "agreements", &["text", "author", "created_at"]),
        (Basis, "notes", &["kind", "text", "author", "created_at"]),
        (Zorg, "notes", &["kind", "text", "author", "created_at"]),
        (Veiligheid, "safety_items", &["danger_statement", "safety_goal", "created_at"]),
    ];
    let entity = (0..entity_fields.len(), any::<usize>()).prop_map(move |(i, f)| {
        let (c, collection, fields) = entity_fields[i];
        Field::Entity(c, collection, fields[f % fields.len()])
    });
    let collections = [
        (Basis, "members"),
        (Basis, "goals"),
        (Basis, "actions"),
        (Basis, "agreements"),
        (Basis, "notes"),
        (Basis, "participants"),
        (Basis, "scores"),
        (Veiligheid, "safety_items"),
    ];
    prop_oneof![
        2 => prop::sample::select(root.to_vec()).prop_map(Field::Root),
        1 => prop::sample::select(vec!["domains", "escalations"]).prop_map(Field::ListItem),
        1 => prop::sample::select(vec!["level", "regie_holder", "reason", "by", "at"]).prop_map(Field::Step),
        4 => entity,
        1 => prop::sample::select(collections.to_vec()).prop_map(|(c, k)| Field::WholeEntity(c, k)),
        1 => prop::sample::select(collections.to_vec()).prop_map(|(c, k)| Field::NewEntry(c, k)),
        1 => Just(Field::Score),
    ]
}

/// What to put where the field was.
#[derive(Debug, Clone)]
enum Shape {
    Delete,
    Str(String),
    Int(i64),
    Uint(u64),
    F64(f64),
    Bool(bool),
    Null,
    Bytes(Vec<u8>),
    Counter(i64),
    Timestamp(i64),
    Map,
    List,
    Text(String),
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Delete),
        prop_oneof![".{0,12}", "[0-9a-f]{16}", "[0-9a-f]{16}\\|[a-z]{1,8}\\|2026-11-2[0-9]", ".{190,210}"]
            .prop_map(Shape::Str),
        any::<i64>().prop_map(Shape::Int),
        any::<u64>().prop_map(Shape::Uint),
        any::<f64>().prop_map(Shape::F64),
        any::<bool>().prop_map(Shape::Bool),
        Just(Shape::Null),
        prop::collection::vec(any::<u8>(), 0..32).prop_map(Shape::Bytes),
        any::<i64>().prop_map(Shape::Counter),
        any::<i64>().prop_map(Shape::Timestamp),
        Just(Shape::Map),
        Just(Shape::List),
        ".{0,40}".prop_map(Shape::Text),
    ]
}

fn put(doc: &mut AutoCommit, obj: &automerge::ObjId, prop: automerge::Prop, shape: &Shape) {
    let scalar = |s: &Shape| -> Option<ScalarValue> {
        Some(match s {
            Shape::Str(v) => ScalarValue::Str(v.as_str().into()),
            Shape::Int(v) => ScalarValue::Int(*v),
            Shape::Uint(v) => ScalarValue::Uint(*v),
            Shape::F64(v) => ScalarValue::F64(*v),
            Shape::Bool(v) => ScalarValue::Boolean(*v),
            Shape::Null => ScalarValue::Null,
            Shape::Bytes(v) => ScalarValue::Bytes(v.clone()),
            Shape::Counter(v) => ScalarValue::counter(*v),
            Shape::Timestamp(v) => ScalarValue::Timestamp(*v),
            _ => return None,
        })
    };
    let result = match (shape, scalar(shape)) {
        (_, Some(value)) => doc.put(obj, prop, value),
        (Shape::Delete, _) => doc.delete(obj, prop),
        (Shape::Map, _) => doc.put_object(obj, prop, ObjType::Map).map(|_| ()),
        (Shape::List, _) => doc.put_object(obj, prop, ObjType::List).map(|_| ()),
        (Shape::Text(t), _) => {
            doc.put_object(obj, prop, ObjType::Text).and_then(|text| doc.splice_text(&text, 0, 0, t))
        }
        _ => unreachable!("every shape is a scalar or handled above"),
    };
    // A delete of a list index that is not there, and the like: nothing to write.
    let _ = result;
}

/// The first entry of a root map or list, as an object and its key.
fn first(doc: &AutoCommit, key: &str) -> Option<(automerge::ObjId, automerge::ObjId, automerge::Prop)> {
    let (_, collection) = doc.get(ROOT, key).ok()??;
    match doc.object_type(&collection).ok()? {
        ObjType::List => {
            let (_, item) = doc.get(&collection, 0).ok()??;
            Some((collection, item, 0.into()))
        }
        _ => {
            let k = doc.keys(&collection).next()?;
            let (_, item) = doc.get(&collection, k.as_str()).ok()??;
            Some((collection, item, k.into()))
        }
    }
}

/// A change by another device that gives `field` the wrong `shape`.
fn wrong_shape(field: Field, shape: &Shape, key: &str) -> (Compartment, Vec<Vec<u8>>) {
    let f = fixture();
    let compartment = match field {
        Field::Entity(c, ..) | Field::WholeEntity(c, _) | Field::NewEntry(c, _) => c,
        _ => Compartment::Basis,
    };
    let mut doc =
        AutoCommit::load(f.saved(compartment)).unwrap().with_actor(automerge::ActorId::from(&[9u8; 16][..]));
    let heads = doc.get_heads();
    match field {
        Field::Root(k) => put(&mut doc, &ROOT, k.into(), shape),
        Field::ListItem(k) => {
            if let Some((list, _, index)) = first(&doc, k) {
                put(&mut doc, &list, index, shape);
            }
        }
        Field::Step(k) => {
            if let Some((_, step, _)) = first(&doc, "escalations") {
                put(&mut doc, &step, k.into(), shape);
            }
        }
        Field::Entity(_, collection, k) => {
            if let Some((_, entity, _)) = first(&doc, collection) {
                put(&mut doc, &entity, k.into(), shape);
            }
        }
        Field::WholeEntity(_, collection) => {
            if let Some((map, _, id)) = first(&doc, collection) {
                put(&mut doc, &map, id, shape);
            }
        }
        Field::NewEntry(_, collection) => {
            if let Ok(Some((_, map))) = doc.get(ROOT, collection) {
                put(&mut doc, &map, key.into(), shape);
            }
        }
        Field::Score => {
            if let Some((map, _, key)) = first(&doc, "scores") {
                put(&mut doc, &map, key, shape);
            }
        }
    }
    let changes = doc.get_changes(&heads).iter().map(|c| c.raw_bytes().to_vec()).collect();
    (compartment, changes)
}

proptest! {
    #![proptest_config(fixture::config(256))]

    #[test]
    fn a_wrong_type_or_shape_at_any_field_the_read_model_reads_is_refused_or_shown_never_a_panic(
        field in field(),
        shape in shape(),
        key in prop_oneof![".{0,20}", "[0-9a-f]{16}"],
    ) {
        let f = fixture();
        let (compartment, changes) = wrong_shape(field, &shape, &key);
        // Received: refused, or accepted into a plan that still materialises.
        let mut receiver = f.receiver(compartment, f.changes(compartment).len());
        let before = snapshot(&receiver);
        let outcome = changes.iter().try_for_each(|c| {
            receive_changes(&mut receiver, compartment, c, fixture::device(9))
        });
        check_outcome(&receiver, &before, &outcome);
        // Already held (a store written before the checks existed): the read model gives a
        // typed error or a plan, and never panics.
        let mut doc = f.doc(compartment);
        doc.apply_changes(changes.iter().map(|c| automerge::Change::from_bytes(c.clone()).unwrap())).unwrap();
        let mut docs: Vec<(Compartment, automerge::Automerge)> =
            Compartment::ALL.into_iter().filter(|c| *c != compartment).map(|c| (c, f.doc(c))).collect();
        docs.push((compartment, doc));
        if let Ok(held) = Plan::from_documents(f.plan, fixture::receiver_id(), docs, fixture::clock()) {
            let _ = held.view();
            let _ = held.conflicts();
        }
    }
}
