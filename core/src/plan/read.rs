//! Typed reads from a document that may have been written by anyone: every accessor checks
//! the type it finds and reports a layout error instead of panicking.

use std::cell::RefCell;
use std::collections::HashMap;

use automerge::iter::MapRangeItem;
use automerge::{
    ActorId, Automerge, ChangeHash, ObjId, ObjType, ReadDoc, ScalarValue, ScalarValueRef, Value, ValueRef,
};

use super::{Compartment, PlanError};
use crate::ids::{EntityId, PlanId};

pub(super) const SCHEMA: &str = "schema";
pub(super) const PLAN_ID: &str = "plan_id";
pub(super) const FAMILY: &str = "family";
pub(super) const PHASE: &str = "phase";
pub(super) const REGISSEUR: &str = "regisseur";
/// A participant's contact card: `contact_<user id>` at the root of `basis`.
pub(super) const CONTACT_PREFIX: &str = "contact_";
/// An item the regisseur put in the family's copy: `family_copy_<compartment>_<note id>` or
/// `family_copy_veiligheid_safety_<item id>` at the root of `basis`, value `true`.
pub(crate) const FAMILY_COPY_PREFIX: &str = "family_copy_";
pub(super) const DOMAINS: &str = "domains";
pub(super) const MEMBERS: &str = "members";
pub(super) const PARTICIPANTS: &str = "participants";
pub(super) const ESCALATIONS: &str = "escalations";
pub(super) const GOALS: &str = "goals";
pub(super) const SCORES: &str = "scores";
pub(super) const ACTIONS: &str = "actions";
pub(super) const AGREEMENTS: &str = "agreements";
pub(super) const NOTES: &str = "notes";
pub(super) const SAFETY_ITEMS: &str = "safety_items";
/// In a base an erasure wrote (`erasure.rs`): the device that created the object the base
/// copied, as actor hex. Believed only where the base's writer is vouched for
/// ([`Reader::vouched`]) and only as that writer's first change wrote it.
pub(super) const BY: &str = "_by";
/// The root maps whose keys are data (entity ids, score keys): a `_by` there would read as an
/// entry, so a base writes none in them (nobody's creator is read from them either).
pub(super) const COLLECTIONS: [&str; 8] =
    [MEMBERS, PARTICIPANTS, GOALS, SCORES, ACTIONS, AGREEMENTS, NOTES, SAFETY_ITEMS];

/// Reads one compartment document, naming the compartment in every error.
pub(super) struct Reader<'a> {
    pub doc: &'a Automerge,
    pub compartment: Compartment,
    vouched: Option<Vouched>,
}

/// The writer of a base whose `_by` fields are believed, and which changes of the document
/// were found to be that writer's root change (one lookup per change, not per object).
struct Vouched {
    author: ActorId,
    roots: RefCell<HashMap<ChangeHash, bool>>,
}

impl<'a> Reader<'a> {
    pub fn new(doc: &'a Automerge, compartment: Compartment) -> Self {
        Self { doc, compartment, vouched: None }
    }

    /// Believes the `_by` fields that `author`'s root change wrote (see [`Reader::creator`]);
    /// `None` believes none. The caller knows `author` from the plan's signed membership
    /// chain (`Plan::vouch_base`), never from the document.
    pub fn vouched(mut self, author: Option<&ActorId>) -> Self {
        self.vouched = author.map(|author| Vouched { author: author.clone(), roots: RefCell::default() });
        self
    }

    /// The device (actor hex) that created `obj`: who wrote a note, an agreement, an
    /// escalation step, a meeting, a contact card, an adoption record. It is the actor of the
    /// change that created the object, which names the device whose signed bundle carried it,
    /// whatever the object itself claims, with one exception: an object that a vouched base's
    /// own change created (an erasure re-sealed the document, see `erasure.rs`) was created
    /// by the device its `_by` names, as that change wrote it. A `_by` written later, by
    /// anyone, or in an object created later, even by the base's writer, is not believed.
    pub fn creator(&self, obj: &ObjId) -> Result<String, PlanError> {
        let ObjId::Id(_, actor, _) = obj else { return Ok(String::new()) };
        let Some(root) = self.vouched_root(obj)? else { return Ok(actor.to_hex_string()) };
        // The value the base's change wrote: usually still the visible one (cheap to find);
        // if anyone wrote over it since, as it was then.
        let current =
            self.doc.get_all(obj, BY)?.into_iter().find(|(_, op)| self.doc.hash_for_opid(op) == Some(root));
        let written = match current {
            Some(found) => Some(found),
            None => self.doc.get_at(obj, BY, &[root])?,
        };
        match written {
            Some((Value::Scalar(s), _)) => match s.as_ref() {
                // Only an actor id as hex: anything else names nobody, and the base's writer
                // stays the creator.
                ScalarValue::Str(by) if is_actor_hex(by) => Ok(by.to_string()),
                _ => Ok(actor.to_hex_string()),
            },
            _ => Ok(actor.to_hex_string()),
        }
    }

    /// The vouched base change that created `obj`, when it was one: the change has no
    /// dependencies (the document's first) and is the vouched writer's.
    pub fn vouched_root(&self, obj: &ObjId) -> Result<Option<ChangeHash>, PlanError> {
        let (Some(vouched), ObjId::Id(counter, actor, _)) = (&self.vouched, obj) else { return Ok(None) };
        if *actor != vouched.author {
            return Ok(None);
        }
        let Some(hash) = self.doc.hash_for_opid(obj) else { return Ok(None) };
        let known = vouched.roots.borrow().get(&hash).copied();
        let is_root = match known {
            Some(is_root) => is_root,
            None => {
                let is_root = self.doc.get_change_meta_by_hash(&hash).is_some_and(|meta| {
                    meta.deps.is_empty()
                        && *meta.actor == vouched.author
                        && (meta.start_op..=meta.max_op).contains(counter)
                });
                vouched.roots.borrow_mut().insert(hash, is_root);
                is_root
            }
        };
        Ok(is_root.then_some(hash))
    }

    pub fn malformed(&self, detail: impl Into<String>) -> PlanError {
        PlanError::Malformed { compartment: self.compartment, detail: detail.into() }
    }

    /// One field, read with a seek of its own. A reader of several fields of one map takes
    /// them together ([`Reader::fields`]).
    fn field<T>(&self, obj: &ObjId, key: &str, read: impl FnOnce(Field<'_>) -> T) -> Result<T, PlanError> {
        let found = self.doc.get(obj, key)?;
        Ok(read(match &found {
            None => Field::Absent,
            Some((Value::Object(ty), id)) => Field::Object(*ty, id.clone()),
            Some((Value::Scalar(s), _)) => Field::of_scalar(s),
        }))
    }

    pub fn object(&self, obj: &ObjId, key: &str, ty: ObjType) -> Result<Option<ObjId>, PlanError> {
        self.field(obj, key, |f| self.as_object(key, f, ty))?
    }

    pub fn required_object(&self, obj: &ObjId, key: &str, ty: ObjType) -> Result<ObjId, PlanError> {
        self.object(obj, key, ty)?.ok_or_else(|| self.malformed(format!("{key} is missing")))
    }

    pub fn string(&self, obj: &ObjId, key: &str) -> Result<Option<String>, PlanError> {
        self.field(obj, key, |f| self.as_string(key, f))?
    }

    pub fn required_string(&self, obj: &ObjId, key: &str) -> Result<String, PlanError> {
        self.string(obj, key)?.ok_or_else(|| self.malformed(format!("{key} is missing")))
    }

    pub fn int(&self, obj: &ObjId, key: &str) -> Result<Option<i64>, PlanError> {
        self.field(obj, key, |f| self.as_int(key, f))?
    }

    /// The content of a `Text` object at `key` (empty when absent).
    pub fn text(&self, obj: &ObjId, key: &str) -> Result<String, PlanError> {
        self.text_of(self.object(obj, key, ObjType::Text)?)
    }

    /// Every visible field of the map `obj`, read in one pass over the map. A layout check
    /// reads each field of each entity; a seek per field searched the document's operations
    /// again each time (a fifth of a new device's first sync, by a profile).
    pub fn fields<'r>(&'r self, obj: &ObjId) -> Fields<'r, 'a> {
        Fields { reader: self, items: self.doc.map_range(obj, ..).collect() }
    }

    /// The integer of an entry a range over a map yielded, with the errors of [`Reader::int`].
    pub fn int_of(&self, item: &MapRangeItem<'_>) -> Result<Option<i64>, PlanError> {
        self.as_int(&item.key, Field::of_item(item))
    }

    fn as_object(&self, key: &str, found: Field<'_>, ty: ObjType) -> Result<Option<ObjId>, PlanError> {
        match found {
            Field::Absent => Ok(None),
            Field::Object(found, id) if found == ty => Ok(Some(id)),
            _ => Err(self.malformed(format!("{key} is not a {ty:?}"))),
        }
    }

    fn as_string(&self, key: &str, found: Field<'_>) -> Result<Option<String>, PlanError> {
        match found {
            Field::Absent | Field::Null => Ok(None),
            Field::Str(text) => Ok(Some(text.to_owned())),
            _ => Err(self.malformed(format!("{key} is not a string"))),
        }
    }

    fn as_int(&self, key: &str, found: Field<'_>) -> Result<Option<i64>, PlanError> {
        match found {
            Field::Absent | Field::Null => Ok(None),
            Field::Int(n) => Ok(Some(n)),
            Field::Uint(n) => {
                i64::try_from(n).map(Some).map_err(|_| self.malformed(format!("{key} overflows")))
            }
            _ => Err(self.malformed(format!("{key} is not an integer"))),
        }
    }

    fn as_bool(&self, key: &str, found: Field<'_>) -> Result<Option<bool>, PlanError> {
        match found {
            Field::Absent | Field::Null => Ok(None),
            Field::Bool(b) => Ok(Some(b)),
            _ => Err(self.malformed(format!("{key} is not a boolean"))),
        }
    }

    fn text_of(&self, text: Option<ObjId>) -> Result<String, PlanError> {
        match text {
            Some(id) => Ok(self.doc.text(&id)?),
            None => Ok(String::new()),
        }
    }

    /// An id as the layout writes it: lowercase hex and nothing else. Another spelling of
    /// the same id (uppercase, a sign) would let a writer put a second entry under an id
    /// that is already there; a document holding one is refused.
    pub fn entity_id(&self, raw: &str, what: &str) -> Result<EntityId, PlanError> {
        match raw.parse::<EntityId>() {
            Ok(id) if id.to_string() == raw => Ok(id),
            _ => Err(self
                .malformed(format!("{what} id {:?} is malformed", raw.chars().take(64).collect::<String>()))),
        }
    }

    /// Entries of a map whose keys are entity ids.
    pub fn entities(&self, map: &ObjId, what: &str) -> Result<Vec<(EntityId, ObjId)>, PlanError> {
        let mut out = Vec::new();
        for item in self.doc.map_range(map, ..) {
            let id = self.entity_id(&item.key, what)?;
            match item.value {
                automerge::ValueRef::Object(ObjType::Map) => out.push((id, item.id())),
                _ => return Err(self.malformed(format!("{what} {id} is not a map"))),
            }
        }
        Ok(out)
    }
}

/// The visible fields of one map, as [`Reader::fields`] read them, with the same typed reads
/// and the same errors as the reader's reads of one field.
pub(super) struct Fields<'r, 'a> {
    reader: &'r Reader<'a>,
    items: Vec<MapRangeItem<'a>>,
}

impl Fields<'_, '_> {
    /// The field's value: the visible one, as `get` finds it (the winner of a conflict).
    fn field(&self, key: &str) -> Field<'_> {
        self.items.iter().find(|item| item.key == key).map_or(Field::Absent, Field::of_item)
    }

    pub fn object(&self, key: &str, ty: ObjType) -> Result<Option<ObjId>, PlanError> {
        self.reader.as_object(key, self.field(key), ty)
    }

    pub fn string(&self, key: &str) -> Result<Option<String>, PlanError> {
        self.reader.as_string(key, self.field(key))
    }

    pub fn required_string(&self, key: &str) -> Result<String, PlanError> {
        self.string(key)?.ok_or_else(|| self.reader.malformed(format!("{key} is missing")))
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, PlanError> {
        self.reader.as_int(key, self.field(key))
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, PlanError> {
        self.reader.as_bool(key, self.field(key))
    }

    /// The content of a `Text` object at `key` (empty when absent).
    pub fn text(&self, key: &str) -> Result<String, PlanError> {
        self.reader.text_of(self.object(key, ObjType::Text)?)
    }
}

/// A field's visible value, from either kind of read, as the typed reads tell it apart.
enum Field<'v> {
    Absent,
    Null,
    Str(&'v str),
    Int(i64),
    Uint(u64),
    Bool(bool),
    /// A scalar no typed read takes (bytes, a float, a counter, an unknown type).
    Other,
    Object(ObjType, ObjId),
}

impl<'v> Field<'v> {
    fn of_scalar(s: &'v ScalarValue) -> Self {
        match s {
            ScalarValue::Null => Field::Null,
            ScalarValue::Str(text) => Field::Str(text),
            // A timestamp reads as an integer (milliseconds), as the layout writes times.
            ScalarValue::Int(n) | ScalarValue::Timestamp(n) => Field::Int(*n),
            ScalarValue::Uint(n) => Field::Uint(*n),
            ScalarValue::Boolean(b) => Field::Bool(*b),
            _ => Field::Other,
        }
    }

    fn of_item(item: &'v MapRangeItem<'_>) -> Self {
        match &item.value {
            ValueRef::Object(ty) => Field::Object(*ty, item.id()),
            ValueRef::Scalar(s) => match s {
                ScalarValueRef::Null => Field::Null,
                ScalarValueRef::Str(text) => Field::Str(text),
                ScalarValueRef::Int(n) | ScalarValueRef::Timestamp(n) => Field::Int(*n),
                ScalarValueRef::Uint(n) => Field::Uint(*n),
                ScalarValueRef::Boolean(b) => Field::Bool(*b),
                _ => Field::Other,
            },
        }
    }
}

pub(super) fn check_plan_id(
    doc: &Automerge,
    compartment: Compartment,
    expected: PlanId,
) -> Result<(), PlanError> {
    let reader = Reader::new(doc, compartment);
    let found = reader.required_string(&automerge::ROOT, PLAN_ID)?;
    if found != expected.to_string() {
        return Err(PlanError::WrongPlan { compartment, expected, found: found.chars().take(64).collect() });
    }
    match reader.int(&automerge::ROOT, SCHEMA)? {
        Some(v) if v == super::SCHEMA_VERSION => Ok(()),
        other => Err(reader.malformed(format!("schema version {other:?} is not supported"))),
    }
}

/// The string inside a range item's value, if it is one.
pub(super) fn ref_str<'v>(value: &'v automerge::ValueRef<'_>) -> Option<&'v str> {
    match value {
        automerge::ValueRef::Scalar(automerge::ScalarValueRef::Str(s)) => Some(s),
        _ => None,
    }
}

/// The actor (device) that wrote an operation, as hex: who put a scalar (a family-copy
/// inclusion) in. For an object's creator, use [`Reader::creator`], which knows bases.
pub(super) fn writer(op: &ObjId) -> String {
    match op {
        ObjId::Id(_, actor, _) => actor.to_hex_string(),
        ObjId::Root => String::new(),
    }
}

/// Lowercase hex of an actor id, as `ActorId::to_hex_string` writes it.
fn is_actor_hex(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.len().is_multiple_of(2)
        && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{ActorId, AutoCommit, ROOT};

    use super::*;

    /// A map holding one field of each kind a peer could write, and one key two devices wrote
    /// concurrently.
    fn a_map_of_every_kind() -> (Automerge, ObjId) {
        let mut doc = AutoCommit::new().with_actor(ActorId::from(vec![1; 16]));
        let obj = doc.put_object(ROOT, "entity", ObjType::Map).unwrap();
        doc.put(&obj, "string", "tekst").unwrap();
        doc.put(&obj, "int", -4_i64).unwrap();
        doc.put(&obj, "uint", 7_u64).unwrap();
        doc.put(&obj, "huge", u64::MAX).unwrap();
        doc.put(&obj, "timestamp", ScalarValue::Timestamp(1_700_000_000_000)).unwrap();
        doc.put(&obj, "bool", true).unwrap();
        doc.put(&obj, "null", ScalarValue::Null).unwrap();
        doc.put(&obj, "bytes", ScalarValue::Bytes(vec![1, 2])).unwrap();
        doc.put(&obj, "float", 1.5_f64).unwrap();
        let text = doc.put_object(&obj, "text", ObjType::Text).unwrap();
        doc.splice_text(&text, 0, 0, "hallo").unwrap();
        doc.put_object(&obj, "list", ObjType::List).unwrap();
        doc.put(&obj, "status", "todo").unwrap();
        let mut other = doc.fork().with_actor(ActorId::from(vec![2; 16]));
        doc.put(&obj, "status", "gedaan").unwrap();
        other.put(&obj, "status", "bezig").unwrap();
        doc.merge(&mut other).unwrap();
        (doc.document().clone(), obj)
    }

    fn show<T: std::fmt::Debug>(read: Result<T, PlanError>) -> String {
        format!("{read:?}")
    }

    #[test]
    fn a_field_read_with_its_map_gives_the_value_or_the_error_a_read_of_it_alone_gives() {
        let (doc, obj) = a_map_of_every_kind();
        let reader = Reader::new(&doc, Compartment::Basis);
        let fields = reader.fields(&obj);
        let keys = [
            "string",
            "int",
            "uint",
            "huge",
            "timestamp",
            "bool",
            "null",
            "bytes",
            "float",
            "text",
            "list",
            "status",
            "absent",
        ];
        for key in keys {
            assert_eq!(show(fields.string(key)), show(reader.string(&obj, key)), "string {key}");
            assert_eq!(show(fields.required_string(key)), show(reader.required_string(&obj, key)), "{key}");
            assert_eq!(show(fields.int(key)), show(reader.int(&obj, key)), "int {key}");
            assert_eq!(show(fields.text(key)), show(reader.text(&obj, key)), "text {key}");
            for ty in [ObjType::Map, ObjType::List, ObjType::Text] {
                assert_eq!(show(fields.object(key, ty)), show(reader.object(&obj, key, ty)), "{ty:?} {key}");
            }
        }
        assert_eq!(fields.bool("bool").unwrap(), Some(true));
        assert_eq!(fields.bool("null").unwrap(), None);
        assert_eq!(fields.bool("absent").unwrap(), None);
        assert!(fields.bool("string").is_err() && fields.bool("list").is_err());
        // The winner of the conflict, as `get` finds it.
        let winner = reader.string(&obj, "status").unwrap();
        assert!(matches!(winner.as_deref(), Some("gedaan" | "bezig")));
        assert_eq!(fields.string("status").unwrap(), winner);
        assert_eq!(fields.int("timestamp").unwrap(), Some(1_700_000_000_000));
        assert_eq!(fields.text("text").unwrap(), "hallo");
        assert!(fields.int("huge").is_err(), "an integer past i64 is refused");
    }
}
