//! Concurrent values for the regisseur to see and settle.
//!
//! When two devices set the same register (a status, a due date, a score, a title) without
//! having seen each other's value, automerge keeps both and deterministically shows one. This
//! module lists every such register with each value, its author and time, and settles one by
//! writing a single new value that causally follows all of them: an ordinary change that
//! merges everywhere and leaves one value.
//!
//! A conflict is named by its compartment and path, e.g. `basis/goals/1f2e3d4c5b6a7988/status`;
//! values are listed in automerge's order, which every replica agrees on.

use automerge::transaction::Transactable;
use automerge::{Automerge, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use serde::{Deserialize, Serialize};

use super::edit::{date, score, short_text};
use super::read::{self, Reader};
use super::received;
use super::vocab::{ActionStatus, GoalStatus, Phase, Role};
use super::{Compartment, Plan, PlanError, ValidationError};
use crate::ids::{DeviceId, EntityId};

/// One register that holds concurrent values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    /// `compartment/path/to/field`: pass it back to [`Plan::resolve_conflict`].
    pub id: String,
    pub compartment: Compartment,
    pub path: Vec<String>,
    /// What a person would call it, e.g. `goal "Schulden in beeld": status`.
    pub label: String,
    pub values: Vec<ConflictValue>,
}

/// One of the concurrent values, with who wrote it and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConflictValue {
    pub value: FieldValue,
    /// The device (automerge actor) that wrote it.
    pub author: Option<DeviceId>,
    /// The person behind `author`, when the device holds its certificate
    /// ([`crate::Device::conflicts`] fills it in).
    #[serde(default)]
    pub author_person: Option<crate::people::Person>,
    /// Commit time of the change that wrote it, in milliseconds since the epoch.
    pub at_ms: Option<i64>,
}

/// A register's value as shown to people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldValue {
    Text(String),
    Int(i64),
    Bool(bool),
    Null,
}

impl std::fmt::Display for FieldValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldValue::Text(s) => write!(f, "{s:?}"),
            FieldValue::Int(n) => write!(f, "{n}"),
            FieldValue::Bool(b) => write!(f, "{b}"),
            FieldValue::Null => f.write_str("(empty)"),
        }
    }
}

/// How to settle a conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Keep the value at this index (0-based) of [`Conflict::values`].
    Pick(usize),
    /// Write a new value, given as text and validated like any edit of that field.
    Value(String),
}

fn field_value(value: &ScalarValue) -> FieldValue {
    match value {
        ScalarValue::Str(s) => FieldValue::Text(s.to_string()),
        ScalarValue::Int(n) | ScalarValue::Timestamp(n) => FieldValue::Int(*n),
        ScalarValue::Uint(n) => FieldValue::Int(i64::try_from(*n).unwrap_or(i64::MAX)),
        ScalarValue::Boolean(b) => FieldValue::Bool(*b),
        ScalarValue::Null => FieldValue::Null,
        other => FieldValue::Text(other.to_string()),
    }
}

fn author_and_time(doc: &Automerge, op: &ObjId) -> (Option<DeviceId>, Option<i64>) {
    let author = match op {
        ObjId::Id(_, actor, _) => DeviceId::from_actor(actor),
        ObjId::Root => None,
    };
    let at = doc.hash_for_opid(op).and_then(|h| doc.get_change_meta_by_hash(&h)).map(|m| m.timestamp);
    (author, at)
}

impl Plan {
    /// Every register in every held compartment that holds concurrent values.
    pub fn conflicts(&self) -> Result<Vec<Conflict>, PlanError> {
        let mut out = Vec::new();
        for compartment in self.held_compartments() {
            let doc = self.doc(compartment)?;
            let found = received::guarded(compartment, "listing conflicts", || {
                let mut found = Vec::new();
                walk(doc, compartment, &ROOT, ObjType::Map, &mut Vec::new(), &mut found)?;
                Ok(found)
            })?;
            out.extend(found);
        }
        for conflict in &mut out {
            conflict.label = self.label(conflict);
        }
        Ok(out)
    }

    /// Settles one conflict with a single new write that supersedes every concurrent value.
    pub fn resolve_conflict(&mut self, conflict_id: &str, resolution: Resolution) -> Result<(), PlanError> {
        let conflict = self
            .conflicts()?
            .into_iter()
            .find(|c| c.id == conflict_id)
            .ok_or_else(|| PlanError::UnknownConflict(conflict_id.chars().take(200).collect()))?;
        let (field, parents) =
            conflict.path.split_last().ok_or_else(|| PlanError::UnknownConflict(conflict.id.clone()))?;
        let value = match resolution {
            Resolution::Pick(index) => {
                let picked = conflict.values.get(index).ok_or_else(|| PlanError::NoSuchConflictValue {
                    conflict: conflict.id.clone(),
                    index,
                    count: conflict.values.len(),
                })?;
                match &picked.value {
                    FieldValue::Text(s) => ScalarValue::Str(s.as_str().into()),
                    FieldValue::Int(n) => ScalarValue::Int(*n),
                    FieldValue::Bool(b) => ScalarValue::Boolean(*b),
                    FieldValue::Null => ScalarValue::Null,
                }
            }
            Resolution::Value(raw) => self.parse_field(&conflict.path, &raw)?,
        };
        let compartment = conflict.compartment;
        let doc = self.doc(compartment)?;
        let obj = resolve_path(doc, compartment, parents)?;
        let field = field.clone();
        self.write_resolution(compartment, &obj, &field, value)
    }

    fn write_resolution(
        &mut self,
        compartment: Compartment,
        obj: &ObjId,
        field: &str,
        value: ScalarValue,
    ) -> Result<(), PlanError> {
        self.check_room(compartment)?;
        let now = self.now_ms();
        let doc = self.doc_mut(compartment)?;
        let is_list = doc.object_type(obj)? == ObjType::List;
        doc.transact_with(
            |_| automerge::transaction::CommitOptions::default().with_time(now),
            |tx| -> Result<(), automerge::AutomergeError> {
                if is_list {
                    let index =
                        field.parse::<usize>().map_err(|_| automerge::AutomergeError::InvalidIndex(0))?;
                    tx.put(obj, index, value)
                } else {
                    tx.put(obj, field, value)
                }
            },
        )
        .map(|_| ())
        .map_err(|f| PlanError::Automerge(f.error))
    }

    /// Parses a new value for the field at `path` with the same rules as the typed edits.
    fn parse_field(&self, path: &[String], raw: &str) -> Result<ScalarValue, PlanError> {
        let not_settable =
            || PlanError::UnknownConflict(format!("{} cannot take a typed value", path.join("/")));
        let s = |v: String| Ok(ScalarValue::Str(v.into()));
        let segments: Vec<&str> = path.iter().map(String::as_str).collect();
        match segments.as_slice() {
            ["family"] => s(short_text("family name", raw)?),
            ["phase"] => s(raw.trim().parse::<Phase>()?.as_str().to_owned()),
            ["regisseur"] => {
                let id: EntityId = raw.trim().parse().map_err(|_| ValidationError::InvalidValue {
                    field: "regisseur",
                    value: raw.chars().take(64).collect(),
                    allowed: "a participant id".into(),
                })?;
                self.require_participant(id)?;
                s(id.to_string())
            }
            ["members", _, "name"] => s(short_text("name", raw)?),
            ["members", _, "relation"] => s(short_text("relation", raw)?),
            ["members", _, "birth_date"] => s(date(raw)?),
            ["members", _, "parental_authority"] => match raw.trim() {
                "true" | "ja" => Ok(ScalarValue::Boolean(true)),
                "false" | "nee" => Ok(ScalarValue::Boolean(false)),
                other => Err(ValidationError::InvalidValue {
                    field: "parental authority",
                    value: other.chars().take(64).collect(),
                    allowed: "true, false".into(),
                }
                .into()),
            },
            ["participants", _, "name"] => s(short_text("name", raw)?),
            ["participants", _, "organisation"] => s(short_text("organisation", raw)?),
            ["participants", _, "role"] => s(raw.trim().parse::<Role>()?.as_str().to_owned()),
            ["goals", _, "title"] => s(short_text("title", raw)?),
            ["goals", _, "status"] => s(raw.trim().parse::<GoalStatus>()?.as_str().to_owned()),
            ["scores", _] => {
                let n: i64 = raw.trim().parse().map_err(|_| ValidationError::InvalidValue {
                    field: "score",
                    value: raw.chars().take(64).collect(),
                    allowed: "1, 2, 3, 4, 5".into(),
                })?;
                Ok(ScalarValue::Int(score(n)?))
            }
            ["actions", _, "title"] => s(short_text("title", raw)?),
            ["actions", _, "owner_org"] => s(short_text("owner organisation", raw)?),
            ["actions", _, "owner_person"] => s(short_text("owner person", raw)?),
            ["actions", _, "owner_user"] => {
                let user: i64 = raw.trim().parse().map_err(|_| ValidationError::InvalidValue {
                    field: "owner",
                    value: raw.chars().take(64).collect(),
                    allowed: "a participant's user id".into(),
                })?;
                Ok(ScalarValue::Int(user))
            }
            ["actions", _, "status"] => s(raw.trim().parse::<ActionStatus>()?.as_str().to_owned()),
            ["actions", _, "due"] => s(date(raw)?),
            _ => Err(not_settable()),
        }
    }

    /// The conflict as people read it, in Dutch: "doel ‘Schulden op orde’: status".
    fn label(&self, conflict: &Conflict) -> String {
        let segments: Vec<&str> = conflict.path.iter().map(String::as_str).collect();
        let Ok(view) = self.view() else { return conflict.path.join(" / ") };
        let find = |id: &str| id.parse::<EntityId>().ok();
        let named = |kind: &str, name: Option<String>, id: &str, field: &str| match name {
            Some(name) => format!("{kind} ‘{name}’: {}", field_label(field)),
            None => format!("{kind} {id}: {}", field_label(field)),
        };
        match segments.as_slice() {
            ["goals", id, field] => named(
                "doel",
                view.goals.iter().find(|g| Some(g.id) == find(id)).map(|g| g.title.clone()),
                id,
                field,
            ),
            ["actions", id, field] => named(
                "actie",
                view.actions.iter().find(|a| Some(a.id) == find(id)).map(|a| a.title.clone()),
                id,
                field,
            ),
            ["members", id, field] => named(
                "gezinslid",
                view.members.iter().find(|m| Some(m.id) == find(id)).map(|m| m.name.clone()),
                id,
                field,
            ),
            ["participants", id, field] => named(
                "deelnemer",
                view.participants.iter().find(|p| Some(p.id) == find(id)).map(|p| p.name.clone()),
                id,
                field,
            ),
            ["scores", key] => {
                let mut parts = key.splitn(3, '|');
                let member = parts.next().and_then(find);
                let name = view.members.iter().find(|m| Some(m.id) == member).map(|m| m.name.clone());
                let domain = parts.next().unwrap_or_default();
                let on = parts.next().unwrap_or_default();
                format!(
                    "ZRM-score van {} voor {} op {on}",
                    name.unwrap_or_else(|| "?".into()),
                    super::vocab::domain_label(domain)
                )
            }
            [field] => format!("plan: {}", field_label(field)),
            _ => conflict.path.join(" / "),
        }
    }
}

/// A field of the layout as people call it.
fn field_label(field: &str) -> &str {
    match field {
        "status" => "status",
        "title" => "titel",
        "due" => "einddatum",
        "owner_org" => "organisatie",
        "owner_person" | "owner_user" => "uitvoerder",
        "name" => "naam",
        "relation" => "relatie",
        "birth_date" => "geboortedatum",
        "parental_authority" => "gezag",
        "domain" => "leefgebied",
        "organisation" => "organisatie",
        "role" => "rol",
        "phase" => "fase",
        "family" => "gezinsnaam",
        "regisseur" => "regisseur",
        other => other,
    }
}

/// The plan layout nests three levels deep; anything deeper came from a faulty or hostile
/// writer (received documents are refused beyond it) and is not walked (a deep enough nesting
/// would otherwise exhaust the stack).
const MAX_DEPTH: usize = super::vocab::MAX_NESTING;

fn walk(
    doc: &Automerge,
    compartment: Compartment,
    obj: &ObjId,
    ty: ObjType,
    path: &mut Vec<String>,
    out: &mut Vec<Conflict>,
) -> Result<(), PlanError> {
    if path.len() > MAX_DEPTH {
        return Ok(());
    }
    let mut visit = |key: String,
                     prop: automerge::Prop,
                     conflict: bool,
                     child: Option<(ObjId, ObjType)>,
                     path: &mut Vec<String>|
     -> Result<(), PlanError> {
        path.push(key);
        if conflict {
            let values = doc.get_all(obj, prop)?;
            if values.iter().all(|(v, _)| v.is_scalar()) {
                let values = values
                    .iter()
                    .filter_map(|(v, op)| {
                        let scalar = v.as_scalar()?;
                        let (author, at_ms) = author_and_time(doc, op);
                        Some(ConflictValue { value: field_value(scalar), author, author_person: None, at_ms })
                    })
                    .collect();
                out.push(Conflict {
                    id: format!("{compartment}/{}", path.join("/")),
                    compartment,
                    path: path.clone(),
                    label: String::new(),
                    values,
                });
            }
        }
        if let Some((child, child_ty)) = child {
            walk(doc, compartment, &child, child_ty, path, out)?;
        }
        path.pop();
        Ok(())
    };
    match ty {
        ObjType::Map | ObjType::Table => {
            let items: Vec<_> = doc
                .map_range(obj, ..)
                .map(|item| {
                    let child = match item.value {
                        automerge::ValueRef::Object(t @ (ObjType::Map | ObjType::List | ObjType::Table)) => {
                            Some((item.id(), t))
                        }
                        _ => None,
                    };
                    (item.key.to_string(), item.conflict, child)
                })
                .collect();
            // A base's `_by` is not something anyone set: it says who created the object
            // (`read::BY`), and a concurrent write of it is not believed anyway.
            for (key, conflict, child) in items.into_iter().filter(|(key, ..)| key != read::BY) {
                visit(key.clone(), key.into(), conflict, child, path)?;
            }
        }
        ObjType::List => {
            let items: Vec<_> = doc
                .list_range(obj, ..)
                .map(|item| {
                    let child = match item.value {
                        automerge::ValueRef::Object(t @ (ObjType::Map | ObjType::List | ObjType::Table)) => {
                            Some((item.id(), t))
                        }
                        _ => None,
                    };
                    (item.index, item.conflict, child)
                })
                .collect();
            for (index, conflict, child) in items {
                visit(index.to_string(), index.into(), conflict, child, path)?;
            }
        }
        ObjType::Text => {}
    }
    Ok(())
}

fn resolve_path(doc: &Automerge, compartment: Compartment, parents: &[String]) -> Result<ObjId, PlanError> {
    let reader = Reader::new(doc, compartment);
    let mut obj = ROOT;
    for segment in parents {
        let next = match doc.object_type(&obj)? {
            ObjType::List => {
                let index: usize = segment.parse().map_err(|_| reader.malformed("list index expected"))?;
                doc.get(&obj, index)?
            }
            _ => doc.get(&obj, segment.as_str())?,
        };
        obj = match next {
            Some((Value::Object(_), id)) => id,
            _ => return Err(PlanError::UnknownConflict(parents.join("/"))),
        };
    }
    Ok(obj)
}
