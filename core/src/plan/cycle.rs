//! The working cycle's records in the `basis` document: evaluation dates, case meetings
//! (*casusoverleg*) whose decisions can become actions, and the fields of signed adoption
//! records (their signing and checking is `crate::adoption`, which needs the device's keys
//! and the membership chain).
//!
//! Each record is a root-level key with a prefix (`evaluation_<id>`, `meeting_<id>`,
//! `adoption_<id>`), not an entry of a collection map: plans made before these records
//! existed have no such map, and two devices that each created the missing map concurrently
//! would hide one another's entries (the same reason contact cards are root keys).

use automerge::transaction::Transactable;
use automerge::{Automerge, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue};
use serde::{Deserialize, Serialize};

use super::edit::{date, long_text, short_text};
use super::read::{self, Reader};
use super::vocab::{self, ActionStatus};
use super::{Compartment, Plan, PlanError, ValidationError};
use crate::ids::{DeviceId, EntityId};

pub(super) const EVALUATION_PREFIX: &str = "evaluation_";
pub(super) const MEETING_PREFIX: &str = "meeting_";
pub(super) const ADOPTION_PREFIX: &str = "adoption_";

/// Attendees of one meeting: no more than a plan can have participants.
pub const MAX_ATTENDEES: usize = 256;
/// Decisions of one meeting.
pub const MAX_DECISIONS: usize = 64;
/// Heads of one compartment in an adoption record: concurrent branches not merged yet, a
/// handful in practice.
pub const MAX_HEADS: usize = 64;

/// A planned evaluation: the date the plan is looked at again with the family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    pub id: EntityId,
    /// YYYY-MM-DD.
    pub date: String,
    /// Held (the evaluation took place); a held evaluation is no longer due.
    pub held: bool,
    pub created_at_ms: i64,
}

/// A case meeting (*casusoverleg*) as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meeting {
    pub id: EntityId,
    /// YYYY-MM-DD.
    pub date: String,
    /// The participants present, by their user id in the membership chain.
    pub attendees: Vec<i64>,
    pub decisions: Vec<Decision>,
    /// The device that recorded the meeting (the actor of the change that created it).
    pub recorded_by: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub text: String,
    /// The action the decision created, if it created one.
    pub action: Option<EntityId>,
}

/// A meeting to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMeeting {
    pub date: String,
    pub attendees: Vec<i64>,
    pub decisions: Vec<NewDecision>,
}

/// A decision, and the action it creates in the same step when `action` is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDecision {
    pub text: String,
    pub action: Option<DecisionAction>,
}

/// Who does what by when: the decision's text is the action's title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionAction {
    pub goal: EntityId,
    /// The owner, a participant (user id in the membership chain).
    pub owner_user: i64,
    /// The owner's organisation, as actions record it.
    pub owner_org: String,
    /// YYYY-MM-DD.
    pub due: Option<String>,
}

/// An adoption record as stored in the document, unchecked: what `crate::adoption` verifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAdoption {
    pub id: EntityId,
    pub version: u32,
    /// The day it was discussed with the family (YYYY-MM-DD).
    pub date: String,
    pub at_ms: i64,
    /// The family's agreement, in the regisseur's words ("besproken met het gezin op …").
    pub with_family: String,
    /// Participants present, by user id.
    pub present: Vec<i64>,
    /// The heads of each compartment the regisseur's device held, as adopted.
    pub heads: Vec<(Compartment, Vec<ChangeHash>)>,
    /// The membership-chain position the regisseur relied on.
    pub membership_seq: u32,
    /// The signing device (hex).
    pub signer: String,
    pub signature: Vec<u8>,
    /// The device whose change created the record (it may differ from `signer` only in a
    /// forgery).
    pub written_by: String,
    /// Carried over into a base by an erasure (the vouched base's change created it): the
    /// changes its `basis` heads name were re-sealed and are gone for good.
    #[serde(default)]
    pub resealed: bool,
}

/// Root keys `<prefix><id>`, each with its id. Only the canonical spelling of an id counts
/// (see `Reader::entity_id`); `check_layout` refuses a received document with another.
fn prefixed_keys<'a>(doc: &'a Automerge, prefix: &'a str) -> impl Iterator<Item = (EntityId, String)> + 'a {
    doc.keys(&ROOT).filter_map(move |key| {
        let id = key.strip_prefix(prefix)?.parse::<EntityId>().ok()?;
        (format!("{prefix}{id}") == key).then_some((id, key))
    })
}

/// Refuses root keys with a cycle prefix whose id is not spelled canonically.
fn check_prefixed_keys(r: &Reader<'_>) -> Result<(), PlanError> {
    for key in r.doc.keys(&ROOT) {
        for prefix in [EVALUATION_PREFIX, MEETING_PREFIX, ADOPTION_PREFIX] {
            if let Some(id) = key.strip_prefix(prefix) {
                r.entity_id(id, prefix.trim_end_matches('_'))?;
            }
        }
    }
    Ok(())
}

fn check_room(doc: &Automerge, prefix: &str, what: &'static str) -> Result<(), ValidationError> {
    if prefixed_keys(doc, prefix).count() >= vocab::MAX_ENTITIES {
        return Err(ValidationError::TooMany { what, max: vocab::MAX_ENTITIES });
    }
    Ok(())
}

fn bounded<T>(items: Vec<T>, what: &'static str, max: usize) -> Result<Vec<T>, ValidationError> {
    if items.len() > max {
        return Err(ValidationError::TooMany { what, max });
    }
    Ok(items)
}

impl Plan {
    /// Plans an evaluation on `on` (YYYY-MM-DD).
    pub fn add_evaluation(&mut self, on: &str) -> Result<EntityId, PlanError> {
        let on = date(on)?;
        check_room(self.doc(Compartment::Basis)?, EVALUATION_PREFIX, "evaluations")?;
        let id = EntityId::random();
        self.write(Compartment::Basis, |tx, now| {
            let obj = tx.put_object(ROOT, format!("{EVALUATION_PREFIX}{id}"), ObjType::Map)?;
            tx.put(&obj, "date", on)?;
            tx.put(&obj, "created_at", ScalarValue::Timestamp(now))?;
            Ok(())
        })?;
        Ok(id)
    }

    /// Records that an evaluation took place.
    pub fn mark_evaluation_held(&mut self, id: EntityId) -> Result<(), PlanError> {
        let key = format!("{EVALUATION_PREFIX}{id}");
        let obj = Reader::new(self.doc(Compartment::Basis)?, Compartment::Basis)
            .object(&ROOT, &key, ObjType::Map)?
            .ok_or(ValidationError::UnknownEvaluation(id))?;
        self.write(Compartment::Basis, |tx, _| tx.put(&obj, "held", true))
    }

    /// Records a case meeting; decisions that name an owner become actions in the same
    /// transaction, so the meeting and its actions arrive together everywhere.
    pub fn add_meeting(&mut self, meeting: NewMeeting) -> Result<EntityId, PlanError> {
        let on = date(&meeting.date)?;
        let attendees = bounded(meeting.attendees, "attendees", MAX_ATTENDEES)?;
        let decisions = self.checked_decisions(meeting.decisions)?;
        let doc = self.doc(Compartment::Basis)?;
        check_room(doc, MEETING_PREFIX, "meetings")?;
        let actions = self.basis_map(read::ACTIONS)?;
        let new_actions = decisions.iter().filter(|d| d.1.is_some()).count();
        if doc.length(&actions) + new_actions > vocab::MAX_ENTITIES {
            return Err(ValidationError::TooMany { what: read::ACTIONS, max: vocab::MAX_ENTITIES }.into());
        }
        let id = EntityId::random();
        self.write(Compartment::Basis, |tx, now| {
            let obj = tx.put_object(ROOT, format!("{MEETING_PREFIX}{id}"), ObjType::Map)?;
            tx.put(&obj, "date", on)?;
            tx.put(&obj, "created_at", ScalarValue::Timestamp(now))?;
            let list = tx.put_object(&obj, "attendees", ObjType::List)?;
            for (i, user) in attendees.iter().enumerate() {
                tx.insert(&list, i, *user)?;
            }
            let list = tx.put_object(&obj, "decisions", ObjType::List)?;
            for (i, (text, action)) in decisions.iter().enumerate() {
                let decision = tx.insert_object(&list, i, ObjType::Map)?;
                let body = tx.put_object(&decision, "text", ObjType::Text)?;
                tx.splice_text(&body, 0, 0, text)?;
                if let Some(action) = action {
                    let action_id = EntityId::random();
                    write_decision_action(tx, &actions, action_id, text, action, now)?;
                    tx.put(&decision, "action", action_id.to_string())?;
                }
            }
            Ok(())
        })?;
        Ok(id)
    }

    fn checked_decisions(
        &self,
        decisions: Vec<NewDecision>,
    ) -> Result<Vec<(String, Option<DecisionAction>)>, PlanError> {
        let mut out = Vec::new();
        for decision in bounded(decisions, "decisions", MAX_DECISIONS)? {
            let text = match &decision.action {
                // The decision's text is the action's title: one line.
                Some(_) => short_text("decision", &decision.text)?,
                None => long_text("decision", &decision.text)?,
            };
            let action = match decision.action {
                Some(action) => {
                    self.require_goal(action.goal)?;
                    let owner_org = short_text("owner organisation", &action.owner_org)?;
                    let due = action.due.as_deref().map(date).transpose()?;
                    Some(DecisionAction { owner_org, due, ..action })
                }
                None => None,
            };
            out.push((text, action));
        }
        Ok(out)
    }

    /// Writes a signed adoption record (made and signed by `crate::adoption`).
    pub fn add_adoption(&mut self, record: &StoredAdoption) -> Result<(), PlanError> {
        check_room(self.doc(Compartment::Basis)?, ADOPTION_PREFIX, "adoptions")?;
        let with_family = short_text("with family", &record.with_family)?;
        self.write(Compartment::Basis, |tx, _| {
            let obj = tx.put_object(ROOT, format!("{ADOPTION_PREFIX}{}", record.id), ObjType::Map)?;
            tx.put(&obj, "version", i64::from(record.version))?;
            tx.put(&obj, "date", record.date.as_str())?;
            tx.put(&obj, "at", ScalarValue::Timestamp(record.at_ms))?;
            tx.put(&obj, "with_family", with_family)?;
            let list = tx.put_object(&obj, "present", ObjType::List)?;
            for (i, user) in record.present.iter().enumerate() {
                tx.insert(&list, i, *user)?;
            }
            let heads = tx.put_object(&obj, "heads", ObjType::Map)?;
            for (compartment, hashes) in &record.heads {
                let list = tx.put_object(&heads, compartment.as_str(), ObjType::List)?;
                for (i, hash) in hashes.iter().enumerate() {
                    tx.insert(&list, i, hash.to_string())?;
                }
            }
            tx.put(&obj, "membership_seq", i64::from(record.membership_seq))?;
            tx.put(&obj, "signer", record.signer.as_str())?;
            tx.put(&obj, "signature", ScalarValue::Bytes(record.signature.clone()))?;
            Ok(())
        })
    }

    /// The adoption records the `basis` document holds, unchecked (`crate::adoption` judges
    /// them), oldest version first. Read inside the boundary for received documents.
    pub fn adoption_records(&self) -> Result<Vec<StoredAdoption>, PlanError> {
        let doc = self.doc(Compartment::Basis)?;
        super::received::guarded(Compartment::Basis, "reading adoptions", || {
            adoptions(&Reader::new(doc, Compartment::Basis).vouched(self.vouched(Compartment::Basis)))
        })
    }

    /// The items in the family's copy, each with the device that put it in (hex) and the
    /// fingerprint of the text it put in.
    pub fn family_copy_writers(
        &self,
    ) -> Result<Vec<(super::view::FamilyCopyItem, String, Option<String>)>, PlanError> {
        let doc = self.doc(Compartment::Basis)?;
        super::received::guarded(Compartment::Basis, "reading the family's copy", || {
            super::view::family_copy_writers(&Reader::new(doc, Compartment::Basis))
        })
    }

    /// The documents as they were at `heads` (per compartment; compartments not named are
    /// left out), as a plan of their own to read. `None` when a head is not held here (the
    /// adopted changes have not all arrived).
    pub fn at_heads(&self, heads: &[(Compartment, Vec<ChangeHash>)]) -> Result<Option<Plan>, PlanError> {
        let mut docs = Vec::new();
        for (compartment, hashes) in heads {
            let Ok(doc) = self.doc(*compartment) else { continue };
            if hashes.iter().any(|h| doc.get_change_by_hash(h).is_none()) {
                return Ok(None);
            }
            // Heads named by a record anyone could write: replayed inside the boundary for
            // received input.
            let mut past = super::received::guarded(*compartment, "reading an adopted version", || {
                Ok(doc.fork_at(hashes)?)
            })?;
            past.set_actor(self.author().actor());
            docs.push((*compartment, past));
        }
        let mut past = Plan::from_documents(self.id(), self.author(), docs, self.clock.clone())?;
        // A version adopted on a base reads as the base says (the past includes its change).
        past.vouched = self.vouched.clone();
        Ok(Some(past))
    }
}

fn write_decision_action(
    tx: &mut impl Transactable,
    actions: &ObjId,
    id: EntityId,
    title: &str,
    action: &DecisionAction,
    now: i64,
) -> Result<(), automerge::AutomergeError> {
    let obj = tx.put_object(actions, id.to_string(), ObjType::Map)?;
    tx.put(&obj, "created_at", ScalarValue::Timestamp(now))?;
    tx.put(&obj, "goal", action.goal.to_string())?;
    tx.put(&obj, "title", title)?;
    tx.put(&obj, "owner_org", action.owner_org.as_str())?;
    tx.put(&obj, "owner_user", action.owner_user)?;
    if let Some(due) = &action.due {
        tx.put(&obj, "due", due.as_str())?;
    }
    tx.put(&obj, "status", ActionStatus::Todo.as_str())
}

/// Integers of a list (user ids), bounded.
fn int_list(r: &Reader<'_>, obj: &ObjId, key: &str, max: usize) -> Result<Vec<i64>, PlanError> {
    let Some(list) = r.object(obj, key, ObjType::List)? else { return Ok(Vec::new()) };
    if r.doc.length(&list) > max {
        return Err(r.malformed(format!("{key} holds more than {max} entries")));
    }
    r.doc
        .list_range(&list, ..)
        .map(|item| match item.value {
            automerge::ValueRef::Scalar(automerge::ScalarValueRef::Int(n)) => Ok(n),
            _ => Err(r.malformed(format!("an entry of {key} is not an integer"))),
        })
        .collect()
}

pub(super) fn evaluations(r: &Reader<'_>) -> Result<Vec<Evaluation>, PlanError> {
    let mut out = Vec::new();
    for (id, key) in prefixed_keys(r.doc, EVALUATION_PREFIX) {
        let Some(obj) = r.object(&ROOT, &key, ObjType::Map)? else { continue };
        let f = r.fields(&obj);
        out.push(Evaluation {
            id,
            date: f.required_string("date")?,
            held: f.bool("held")?.unwrap_or(false),
            created_at_ms: f.int("created_at")?.unwrap_or(0),
        });
    }
    out.sort_by(|a, b| (&a.date, a.id).cmp(&(&b.date, b.id)));
    Ok(out)
}

pub(super) fn meetings(r: &Reader<'_>) -> Result<Vec<Meeting>, PlanError> {
    let mut out = Vec::new();
    for (id, key) in prefixed_keys(r.doc, MEETING_PREFIX) {
        let Some(obj) = r.object(&ROOT, &key, ObjType::Map)? else { continue };
        let f = r.fields(&obj);
        out.push(Meeting {
            id,
            date: f.required_string("date")?,
            attendees: int_list(r, &obj, "attendees", MAX_ATTENDEES)?,
            decisions: decisions(r, &obj)?,
            recorded_by: r.creator(&obj)?,
            created_at_ms: f.int("created_at")?.unwrap_or(0),
        });
    }
    out.sort_by(|a, b| (&a.date, a.created_at_ms, a.id).cmp(&(&b.date, b.created_at_ms, b.id)));
    Ok(out)
}

fn decisions(r: &Reader<'_>, meeting: &ObjId) -> Result<Vec<Decision>, PlanError> {
    let Some(list) = r.object(meeting, "decisions", ObjType::List)? else { return Ok(Vec::new()) };
    if r.doc.length(&list) > MAX_DECISIONS {
        return Err(r.malformed(format!("a meeting holds more than {MAX_DECISIONS} decisions")));
    }
    let mut out = Vec::new();
    for item in r.doc.list_range(&list, ..) {
        if !matches!(item.value, automerge::ValueRef::Object(ObjType::Map)) {
            return Err(r.malformed("a decision is not a map"));
        }
        let obj = item.id();
        let f = r.fields(&obj);
        out.push(Decision {
            text: f.text("text")?,
            action: f.string("action")?.map(|a| r.entity_id(&a, "action")).transpose()?,
        });
    }
    Ok(out)
}

pub(super) fn check_adoptions(r: &Reader<'_>) -> Result<(), PlanError> {
    check_prefixed_keys(r)?;
    adoptions(r).map(|_| ())
}

fn adoptions(r: &Reader<'_>) -> Result<Vec<StoredAdoption>, PlanError> {
    let mut out = Vec::new();
    for (id, key) in prefixed_keys(r.doc, ADOPTION_PREFIX) {
        let Some(obj) = r.object(&ROOT, &key, ObjType::Map)? else { continue };
        let f = r.fields(&obj);
        let int = |field: &str| -> Result<u32, PlanError> {
            let n = f.int(field)?.unwrap_or(0);
            u32::try_from(n).map_err(|_| r.malformed(format!("{field} is out of range")))
        };
        out.push(StoredAdoption {
            id,
            version: int("version")?,
            date: f.string("date")?.unwrap_or_default(),
            at_ms: f.int("at")?.unwrap_or(0),
            with_family: f.string("with_family")?.unwrap_or_default(),
            present: int_list(r, &obj, "present", MAX_ATTENDEES)?,
            heads: adoption_heads(r, &obj)?,
            membership_seq: int("membership_seq")?,
            signer: f.string("signer")?.unwrap_or_default(),
            signature: bytes(r, &obj, "signature")?,
            written_by: r.creator(&obj)?,
            resealed: r.vouched_root(&obj)?.is_some(),
        });
    }
    out.sort_by_key(|a| (a.version, a.at_ms, a.id));
    Ok(out)
}

fn adoption_heads(r: &Reader<'_>, obj: &ObjId) -> Result<Vec<(Compartment, Vec<ChangeHash>)>, PlanError> {
    let Some(map) = r.object(obj, "heads", ObjType::Map)? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for compartment in Compartment::ALL {
        let Some(list) = r.object(&map, compartment.as_str(), ObjType::List)? else { continue };
        if r.doc.length(&list) > MAX_HEADS {
            return Err(r.malformed(format!("an adoption names more than {MAX_HEADS} heads")));
        }
        let hashes = r
            .doc
            .list_range(&list, ..)
            .map(|item| {
                read::ref_str(&item.value)
                    .and_then(|s| s.parse::<ChangeHash>().ok())
                    .ok_or_else(|| r.malformed("an adopted head is not a change hash"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.push((compartment, hashes));
    }
    Ok(out)
}

fn bytes(r: &Reader<'_>, obj: &ObjId, key: &str) -> Result<Vec<u8>, PlanError> {
    match r.doc.get(obj, key)? {
        Some((automerge::Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Bytes(b) => Ok(b.clone()),
            _ => Err(r.malformed(format!("{key} is not bytes"))),
        },
        Some(_) => Err(r.malformed(format!("{key} is not bytes"))),
        None => Ok(Vec::new()),
    }
}

/// The device id of a record's signer, when it is one.
pub fn signer_device(record: &StoredAdoption) -> Option<DeviceId> {
    record.signer.parse().ok()
}

#[cfg(test)]
mod tests;
