//! Typed reads from a document that may have been written by anyone: every accessor checks
//! the type it finds and reports a layout error instead of panicking.

use std::cell::RefCell;
use std::collections::HashMap;

use automerge::{ActorId, Automerge, ChangeHash, ObjId, ObjType, ReadDoc, ScalarValue, Value};

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

    fn get(&self, obj: &ObjId, key: &str) -> Result<Option<Value<'a>>, PlanError> {
        Ok(self.doc.get(obj, key)?.map(|(v, _)| v))
    }

    pub fn object(&self, obj: &ObjId, key: &str, ty: ObjType) -> Result<Option<ObjId>, PlanError> {
        match self.doc.get(obj, key)? {
            None => Ok(None),
            Some((Value::Object(found), id)) if found == ty => Ok(Some(id)),
            Some(_) => Err(self.malformed(format!("{key} is not a {ty:?}"))),
        }
    }

    pub fn required_object(&self, obj: &ObjId, key: &str, ty: ObjType) -> Result<ObjId, PlanError> {
        self.object(obj, key, ty)?.ok_or_else(|| self.malformed(format!("{key} is missing")))
    }

    pub fn string(&self, obj: &ObjId, key: &str) -> Result<Option<String>, PlanError> {
        match self.get(obj, key)? {
            None => Ok(None),
            Some(Value::Scalar(s)) => match s.as_ref() {
                ScalarValue::Str(text) => Ok(Some(text.to_string())),
                ScalarValue::Null => Ok(None),
                _ => Err(self.malformed(format!("{key} is not a string"))),
            },
            Some(Value::Object(_)) => Err(self.malformed(format!("{key} is not a string"))),
        }
    }

    pub fn required_string(&self, obj: &ObjId, key: &str) -> Result<String, PlanError> {
        self.string(obj, key)?.ok_or_else(|| self.malformed(format!("{key} is missing")))
    }

    pub fn int(&self, obj: &ObjId, key: &str) -> Result<Option<i64>, PlanError> {
        match self.get(obj, key)? {
            None => Ok(None),
            Some(Value::Scalar(s)) => match s.as_ref() {
                ScalarValue::Int(n) => Ok(Some(*n)),
                ScalarValue::Uint(n) => {
                    i64::try_from(*n).map(Some).map_err(|_| self.malformed(format!("{key} overflows")))
                }
                ScalarValue::Timestamp(n) => Ok(Some(*n)),
                ScalarValue::Null => Ok(None),
                _ => Err(self.malformed(format!("{key} is not an integer"))),
            },
            Some(Value::Object(_)) => Err(self.malformed(format!("{key} is not an integer"))),
        }
    }

    pub fn bool(&self, obj: &ObjId, key: &str) -> Result<Option<bool>, PlanError> {
        match self.get(obj, key)? {
            None => Ok(None),
            Some(Value::Scalar(s)) => match s.as_ref() {
                ScalarValue::Boolean(b) => Ok(Some(*b)),
                ScalarValue::Null => Ok(None),
                _ => Err(self.malformed(format!("{key} is not a boolean"))),
            },
            Some(Value::Object(_)) => Err(self.malformed(format!("{key} is not a boolean"))),
        }
    }

    /// The content of a `Text` object at `key` (empty when absent).
    pub fn text(&self, obj: &ObjId, key: &str) -> Result<String, PlanError> {
        match self.object(obj, key, ObjType::Text)? {
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
