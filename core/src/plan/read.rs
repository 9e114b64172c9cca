//! Typed reads from a document that may have been written by anyone: every accessor checks
//! the type it finds and reports a layout error instead of panicking.

use automerge::{Automerge, ObjId, ObjType, ReadDoc, ScalarValue, Value};

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

/// Reads one compartment document, naming the compartment in every error.
pub(super) struct Reader<'a> {
    pub doc: &'a Automerge,
    pub compartment: Compartment,
}

impl<'a> Reader<'a> {
    pub fn new(doc: &'a Automerge, compartment: Compartment) -> Self {
        Self { doc, compartment }
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

/// The actor (device) that created an object, as hex: who wrote a note, an agreement, an
/// escalation step. It comes from the change that created the object, so it names the device
/// whose signed bundle carried it, whatever the object itself claims.
pub(super) fn creator(obj: &ObjId) -> String {
    match obj {
        ObjId::Id(_, actor, _) => actor.to_hex_string(),
        ObjId::Root => String::new(),
    }
}
