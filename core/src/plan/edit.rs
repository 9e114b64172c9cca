//! Typed edits. Each validates its input first and then writes one automerge transaction in
//! one compartment, stamped with the clock's time; an error leaves the documents unchanged.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{Automerge, ObjId, ObjType, ROOT, ReadDoc, ScalarValue};
use serde::{Deserialize, Serialize};

use super::limits;
use super::read::{self, Reader};
use super::view::FamilyCopyItem;
use super::vocab::{self, ActionStatus, EscalationLevel, GoalStatus, NoteKind, Phase, Role};
use super::{Compartment, Plan, PlanError, ValidationError};
use crate::ids::{EntityId, PlanId};

/// A family member to add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMember {
    pub name: String,
    /// How the person relates to the family, in the worker's words (moeder, zoon, opa, ...).
    pub relation: String,
    /// YYYY-MM-DD.
    pub birth_date: Option<String>,
    /// Holds parental authority (gezag) over the children in the plan.
    pub parental_authority: bool,
}

/// Fields of a member to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberUpdate {
    pub name: Option<String>,
    pub relation: Option<String>,
    pub birth_date: Option<Option<String>>,
    pub parental_authority: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewParticipant {
    pub name: String,
    pub organisation: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewGoal {
    pub domain: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAction {
    pub goal: EntityId,
    pub title: String,
    pub owner_org: String,
    /// Who does it: a participant, by user id in the plan's membership chain (earlier
    /// versions wrote a free-text `owner_person`, which the device resolves to a participant
    /// where the name is unambiguous).
    pub owner_user: Option<i64>,
    /// YYYY-MM-DD.
    pub due: Option<String>,
}

/// Fields of an action to change; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionUpdate {
    pub title: Option<String>,
    pub status: Option<ActionStatus>,
    pub due: Option<Option<String>>,
    pub owner_org: Option<String>,
    pub owner_user: Option<Option<i64>>,
}

pub(super) fn short_text(field: &'static str, value: &str) -> Result<String, ValidationError> {
    bounded_text(field, value, vocab::SHORT_TEXT_MAX_CHARS)
}

pub(super) fn long_text(field: &'static str, value: &str) -> Result<String, ValidationError> {
    bounded_text(field, value, vocab::LONG_TEXT_MAX_CHARS)
}

fn bounded_text(field: &'static str, value: &str, max: usize) -> Result<String, ValidationError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ValidationError::Empty { field });
    }
    let len = trimmed.chars().count();
    if len > max {
        return Err(ValidationError::TooLong { field, len, max });
    }
    Ok(trimmed.to_owned())
}

/// A calendar date, normalised to YYYY-MM-DD.
pub(super) fn date(value: &str) -> Result<String, ValidationError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(value.trim(), &format)
        .map(|d| d.to_string())
        .map_err(|_| ValidationError::InvalidDate(value.chars().take(64).collect()))
}

pub(super) fn score(value: i64) -> Result<i64, ValidationError> {
    if (vocab::SCORE_MIN..=vocab::SCORE_MAX).contains(&value) {
        Ok(value)
    } else {
        Err(ValidationError::ScoreOutOfRange(value))
    }
}

pub(super) fn domain_list(list: Vec<String>) -> Result<Vec<String>, ValidationError> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for name in list {
        let name = short_text("domain", &name)?;
        if out.contains(&name) {
            return Err(ValidationError::DomainList { max: vocab::MAX_DOMAINS });
        }
        out.push(name);
    }
    if out.is_empty() || out.len() > vocab::MAX_DOMAINS {
        return Err(ValidationError::DomainList { max: vocab::MAX_DOMAINS });
    }
    Ok(out)
}

/// The key of a score register: one value per person, domain and date.
pub(super) fn score_key(member: EntityId, domain: &str, date: &str) -> String {
    format!("{member}|{domain}|{date}")
}

pub(super) fn init_document(
    doc: &mut Automerge,
    compartment: Compartment,
    plan: PlanId,
    family: &str,
    domains: &[String],
    now_ms: i64,
) -> Result<(), PlanError> {
    doc.transact_with(
        |_| CommitOptions::default().with_time(now_ms),
        |tx| -> Result<(), automerge::AutomergeError> {
            tx.put(ROOT, read::SCHEMA, super::SCHEMA_VERSION)?;
            tx.put(ROOT, read::PLAN_ID, plan.to_string())?;
            tx.put_object(ROOT, read::NOTES, ObjType::Map)?;
            match compartment {
                Compartment::Basis => {
                    tx.put(ROOT, read::FAMILY, family)?;
                    tx.put(ROOT, read::PHASE, Phase::Aanmelding.as_str())?;
                    let list = tx.put_object(ROOT, read::DOMAINS, ObjType::List)?;
                    for (i, d) in domains.iter().enumerate() {
                        tx.insert(&list, i, d.as_str())?;
                    }
                    for key in [
                        read::MEMBERS,
                        read::PARTICIPANTS,
                        read::GOALS,
                        read::SCORES,
                        read::ACTIONS,
                        read::AGREEMENTS,
                    ] {
                        tx.put_object(ROOT, key, ObjType::Map)?;
                    }
                    tx.put_object(ROOT, read::ESCALATIONS, ObjType::List)?;
                }
                Compartment::Veiligheid => {
                    tx.put_object(ROOT, read::SAFETY_ITEMS, ObjType::Map)?;
                }
                Compartment::Zorg | Compartment::Justitie => {}
            }
            Ok(())
        },
    )
    .map(|_| ())
    .map_err(|f| PlanError::Automerge(f.error))
}

fn put_text(
    tx: &mut impl Transactable,
    obj: &ObjId,
    key: &str,
    content: &str,
) -> Result<(), automerge::AutomergeError> {
    let text = tx.put_object(obj, key, ObjType::Text)?;
    tx.splice_text(&text, 0, 0, content)?;
    Ok(())
}

impl Plan {
    /// Runs `f` as one transaction on `compartment`. The change carries its time (the review
    /// and conflicts show it) but no message: what an edit did is read from its operations
    /// (`review`), and a message would cost bytes on every push and pull.
    pub(super) fn write<T>(
        &mut self,
        compartment: Compartment,
        f: impl FnOnce(&mut automerge::transaction::Transaction<'_>, i64) -> Result<T, automerge::AutomergeError>,
    ) -> Result<T, PlanError> {
        self.check_room(compartment)?;
        let now = self.now_ms();
        let doc = self.doc_mut(compartment)?;
        doc.transact_with(|_| CommitOptions::default().with_time(now), |tx| f(tx, now))
            .map(|ok| ok.result)
            .map_err(|f| PlanError::Automerge(f.error))
    }

    pub(super) fn basis_map(&self, key: &str) -> Result<ObjId, PlanError> {
        let doc = self.doc(Compartment::Basis)?;
        Reader::new(doc, Compartment::Basis).required_object(&ROOT, key, ObjType::Map)
    }

    fn entity(
        &self,
        compartment: Compartment,
        collection: &str,
        id: EntityId,
    ) -> Result<Option<ObjId>, PlanError> {
        let doc = self.doc(compartment)?;
        let reader = Reader::new(doc, compartment);
        let map = reader.required_object(&ROOT, collection, ObjType::Map)?;
        reader.object(&map, &id.to_string(), ObjType::Map)
    }

    fn require_domain(&self, domain: &str) -> Result<String, PlanError> {
        let domain = domain.trim();
        if self.view_domains()?.iter().any(|d| d == domain) {
            Ok(domain.to_owned())
        } else {
            Err(ValidationError::UnknownDomain(domain.chars().take(64).collect()).into())
        }
    }

    pub(super) fn view_domains(&self) -> Result<Vec<String>, PlanError> {
        super::view::domains(&Reader::new(self.doc(Compartment::Basis)?, Compartment::Basis))
    }

    fn require_member(&self, id: EntityId) -> Result<ObjId, PlanError> {
        self.entity(Compartment::Basis, read::MEMBERS, id)?
            .ok_or_else(|| ValidationError::UnknownMember(id).into())
    }

    pub(super) fn require_participant(&self, id: EntityId) -> Result<ObjId, PlanError> {
        self.entity(Compartment::Basis, read::PARTICIPANTS, id)?
            .ok_or_else(|| ValidationError::UnknownParticipant(id).into())
    }

    pub(super) fn require_goal(&self, id: EntityId) -> Result<ObjId, PlanError> {
        self.entity(Compartment::Basis, read::GOALS, id)?
            .ok_or_else(|| ValidationError::UnknownGoal(id).into())
    }

    fn require_action(&self, id: EntityId) -> Result<ObjId, PlanError> {
        self.entity(Compartment::Basis, read::ACTIONS, id)?
            .ok_or_else(|| ValidationError::UnknownAction(id).into())
    }

    fn add_entity(
        &mut self,
        compartment: Compartment,
        collection: &'static str,
        fill: impl FnOnce(
            &mut automerge::transaction::Transaction<'_>,
            &ObjId,
            i64,
        ) -> Result<(), automerge::AutomergeError>,
    ) -> Result<EntityId, PlanError> {
        let doc = self.doc(compartment)?;
        let map = Reader::new(doc, compartment).required_object(&ROOT, collection, ObjType::Map)?;
        limits::check_entries(doc, &map, collection)?;
        let id = EntityId::random();
        self.write(compartment, |tx, now| {
            let obj = tx.put_object(&map, id.to_string(), ObjType::Map)?;
            tx.put(&obj, "created_at", ScalarValue::Timestamp(now))?;
            fill(tx, &obj, now)?;
            Ok(())
        })?;
        Ok(id)
    }

    pub fn set_family_name(&mut self, name: &str) -> Result<(), PlanError> {
        let name = short_text("family name", name)?;
        self.write(Compartment::Basis, |tx, _| tx.put(ROOT, read::FAMILY, name))
    }

    /// Writes the contact card of user `user_id` (a participant's own device writes its own;
    /// see [`super::view::ContactCard`]): the whole card, so its writer is this device.
    pub fn set_contact(
        &mut self,
        user_id: i64,
        phone: Option<&str>,
        email: Option<&str>,
    ) -> Result<(), PlanError> {
        let phone = phone.map(|p| short_text("phone", p)).transpose()?;
        let email = email.map(|e| short_text("email", e)).transpose()?;
        if let Some(email) = &email
            && !email.contains('@')
        {
            return Err(ValidationError::InvalidValue {
                field: "email",
                value: email.chars().take(64).collect(),
                allowed: "an e-mail address".into(),
            }
            .into());
        }
        let key = format!("{}{user_id}", read::CONTACT_PREFIX);
        self.write(Compartment::Basis, |tx, _| {
            let card = tx.put_object(ROOT, key.as_str(), ObjType::Map)?;
            if let Some(phone) = &phone {
                tx.put(&card, "phone", phone.as_str())?;
            }
            if let Some(email) = &email {
                tx.put(&card, "email", email.as_str())?;
            }
            Ok(())
        })
    }

    pub fn set_phase(&mut self, phase: Phase) -> Result<(), PlanError> {
        self.write(Compartment::Basis, |tx, _| tx.put(ROOT, read::PHASE, phase.as_str()))
    }

    pub fn set_regisseur(&mut self, participant: EntityId) -> Result<(), PlanError> {
        self.require_participant(participant)?;
        self.write(Compartment::Basis, |tx, _| tx.put(ROOT, read::REGISSEUR, participant.to_string()))
    }

    /// Records a step up or down in escalation, and who holds regie afterwards (in a plan
    /// with a membership chain, the chain says who holds regie; its entry names this step's
    /// id, which is returned).
    pub fn escalate(
        &mut self,
        level: EscalationLevel,
        regie_holder: Option<EntityId>,
        reason: &str,
    ) -> Result<EntityId, PlanError> {
        let reason = long_text("reason", reason)?;
        if let Some(holder) = regie_holder {
            self.require_participant(holder)?;
        }
        let list = Reader::new(self.doc(Compartment::Basis)?, Compartment::Basis).required_object(
            &ROOT,
            read::ESCALATIONS,
            ObjType::List,
        )?;
        let doc = self.doc(Compartment::Basis)?;
        limits::check_entries(doc, &list, read::ESCALATIONS)?;
        let at = doc.length(&list);
        let author = self.author().to_string();
        let id = EntityId::random();
        self.write(Compartment::Basis, |tx, now| {
            let step = tx.insert_object(&list, at, ObjType::Map)?;
            tx.put(&step, "id", id.to_string())?;
            tx.put(&step, "level", level.as_str())?;
            if let Some(holder) = regie_holder {
                tx.put(&step, "regie_holder", holder.to_string())?;
            }
            put_text(tx, &step, "reason", &reason)?;
            // Read by older versions only: the read model names the step's actor (view.rs).
            tx.put(&step, "by", author)?;
            tx.put(&step, "at", ScalarValue::Timestamp(now))?;
            Ok(())
        })?;
        Ok(id)
    }

    pub fn add_member(&mut self, member: NewMember) -> Result<EntityId, PlanError> {
        let name = short_text("name", &member.name)?;
        let relation = short_text("relation", &member.relation)?;
        let birth = member.birth_date.as_deref().map(date).transpose()?;
        self.add_entity(Compartment::Basis, read::MEMBERS, |tx, obj, _| {
            tx.put(obj, "name", name)?;
            tx.put(obj, "relation", relation)?;
            if let Some(b) = birth {
                tx.put(obj, "birth_date", b)?;
            }
            tx.put(obj, "parental_authority", member.parental_authority)?;
            Ok(())
        })
    }

    pub fn update_member(&mut self, id: EntityId, update: MemberUpdate) -> Result<(), PlanError> {
        let obj = self.require_member(id)?;
        let name = update.name.as_deref().map(|n| short_text("name", n)).transpose()?;
        let relation = update.relation.as_deref().map(|r| short_text("relation", r)).transpose()?;
        let birth = update.birth_date.map(|b| b.as_deref().map(date).transpose()).transpose()?;
        self.write(Compartment::Basis, |tx, _| {
            if let Some(n) = name {
                tx.put(&obj, "name", n)?;
            }
            if let Some(r) = relation {
                tx.put(&obj, "relation", r)?;
            }
            match birth {
                Some(Some(b)) => tx.put(&obj, "birth_date", b)?,
                Some(None) => tx.put(&obj, "birth_date", ScalarValue::Null)?,
                None => {}
            }
            if let Some(g) = update.parental_authority {
                tx.put(&obj, "parental_authority", g)?;
            }
            Ok(())
        })
    }

    pub fn add_participant(&mut self, participant: NewParticipant) -> Result<EntityId, PlanError> {
        let name = short_text("name", &participant.name)?;
        let org = short_text("organisation", &participant.organisation)?;
        self.add_entity(Compartment::Basis, read::PARTICIPANTS, |tx, obj, _| {
            tx.put(obj, "name", name)?;
            tx.put(obj, "organisation", org)?;
            tx.put(obj, "role", participant.role.as_str())?;
            Ok(())
        })
    }

    pub fn add_goal(&mut self, goal: NewGoal) -> Result<EntityId, PlanError> {
        let domain = self.require_domain(&goal.domain)?;
        let title = short_text("title", &goal.title)?;
        self.add_entity(Compartment::Basis, read::GOALS, |tx, obj, _| {
            tx.put(obj, "domain", domain)?;
            tx.put(obj, "title", title)?;
            tx.put(obj, "status", GoalStatus::Open.as_str())?;
            tx.put_object(obj, "description", ObjType::Text)?;
            Ok(())
        })
    }

    pub fn set_goal_status(&mut self, goal: EntityId, status: GoalStatus) -> Result<(), PlanError> {
        let obj = self.require_goal(goal)?;
        self.write(Compartment::Basis, |tx, _| tx.put(&obj, "status", status.as_str()))
    }

    pub fn set_goal_title(&mut self, goal: EntityId, title: &str) -> Result<(), PlanError> {
        let obj = self.require_goal(goal)?;
        let title = short_text("title", title)?;
        self.write(Compartment::Basis, |tx, _| tx.put(&obj, "title", title))
    }

    /// Sets the ZRM score (1–5) of a family member in a domain on a date.
    pub fn set_score(
        &mut self,
        member: EntityId,
        domain: &str,
        on: &str,
        value: i64,
    ) -> Result<(), PlanError> {
        self.require_member(member)?;
        let domain = self.require_domain(domain)?;
        let on = date(on)?;
        let value = score(value)?;
        let scores = self.basis_map(read::SCORES)?;
        let key = score_key(member, &domain, &on);
        let doc = self.doc(Compartment::Basis)?;
        if doc.get(&scores, key.as_str())?.is_none() {
            limits::check_entries(doc, &scores, read::SCORES)?;
        }
        self.write(Compartment::Basis, |tx, _| tx.put(&scores, key, value))
    }

    pub fn add_action(&mut self, action: NewAction) -> Result<EntityId, PlanError> {
        self.require_goal(action.goal)?;
        let title = short_text("title", &action.title)?;
        let owner_org = short_text("owner organisation", &action.owner_org)?;
        let due = action.due.as_deref().map(date).transpose()?;
        self.add_entity(Compartment::Basis, read::ACTIONS, |tx, obj, _| {
            tx.put(obj, "goal", action.goal.to_string())?;
            tx.put(obj, "title", title)?;
            tx.put(obj, "owner_org", owner_org)?;
            if let Some(user) = action.owner_user {
                tx.put(obj, "owner_user", user)?;
            }
            if let Some(d) = due {
                tx.put(obj, "due", d)?;
            }
            tx.put(obj, "status", ActionStatus::Todo.as_str())?;
            Ok(())
        })
    }

    pub fn update_action(&mut self, id: EntityId, update: ActionUpdate) -> Result<(), PlanError> {
        let obj = self.require_action(id)?;
        let title = update.title.as_deref().map(|t| short_text("title", t)).transpose()?;
        let owner_org =
            update.owner_org.as_deref().map(|o| short_text("owner organisation", o)).transpose()?;
        let due = update.due.map(|d| d.as_deref().map(date).transpose()).transpose()?;
        self.write(Compartment::Basis, |tx, _| {
            if let Some(t) = title {
                tx.put(&obj, "title", t)?;
            }
            if let Some(s) = update.status {
                tx.put(&obj, "status", s.as_str())?;
            }
            match due {
                Some(Some(d)) => tx.put(&obj, "due", d)?,
                Some(None) => tx.put(&obj, "due", ScalarValue::Null)?,
                None => {}
            }
            if let Some(o) = owner_org {
                tx.put(&obj, "owner_org", o)?;
            }
            match update.owner_user {
                // The participant replaces any free-text owner an earlier version wrote.
                Some(Some(user)) => {
                    tx.put(&obj, "owner_user", user)?;
                    tx.delete(&obj, "owner_person")?;
                }
                Some(None) => tx.put(&obj, "owner_user", ScalarValue::Null)?,
                None => {}
            }
            Ok(())
        })
    }

    /// An agreement (afspraak) made with the family.
    pub fn add_agreement(&mut self, text: &str) -> Result<EntityId, PlanError> {
        let text = long_text("agreement", text)?;
        let author = self.author().to_string();
        self.add_entity(Compartment::Basis, read::AGREEMENTS, |tx, obj, _| {
            put_text(tx, obj, "text", &text)?;
            // Read by older versions only: the read model names the agreement's actor (view.rs).
            tx.put(obj, "author", author)?;
            Ok(())
        })
    }

    /// A note in a compartment: home-visit notes in `basis`, care notes in `zorg`, safety
    /// notes in `veiligheid`, justice notes in `justitie`.
    pub fn add_note(
        &mut self,
        compartment: Compartment,
        kind: NoteKind,
        text: &str,
    ) -> Result<EntityId, PlanError> {
        let text = long_text("note", text)?;
        let author = self.author().to_string();
        self.add_entity(compartment, read::NOTES, |tx, obj, _| {
            tx.put(obj, "kind", kind.as_str())?;
            put_text(tx, obj, "text", &text)?;
            // Read by older versions only: the read model names the note's actor (view.rs).
            tx.put(obj, "author", author)?;
            Ok(())
        })
    }

    /// Copies a note into another compartment (to pass it to one partner, whose role reads
    /// that one), with its origin: where it was, which note, who wrote it and when. The copy
    /// is a new note of this device's; the original stays where it was.
    pub fn copy_note(
        &mut self,
        from: Compartment,
        note: EntityId,
        to: Compartment,
    ) -> Result<EntityId, PlanError> {
        if from == to {
            return Err(ValidationError::InvalidValue {
                field: "compartment",
                value: to.as_str().to_owned(),
                allowed: "another compartment than the note's own".into(),
            }
            .into());
        }
        let view = self.view()?;
        let original = view
            .notes
            .into_iter()
            .find(|n| n.id == note && n.compartment == from)
            .ok_or(ValidationError::UnknownNote(note, from))?;
        let author = self.author().to_string();
        self.add_entity(to, read::NOTES, |tx, obj, _| {
            tx.put(obj, "kind", original.kind.as_str())?;
            put_text(tx, obj, "text", &original.text)?;
            tx.put(obj, "author", author)?;
            tx.put(obj, "copied_from_compartment", from.as_str())?;
            tx.put(obj, "copied_from_note", note.to_string())?;
            tx.put(obj, "copied_from_author", original.author.as_str())?;
            tx.put(obj, "copied_from_at", ScalarValue::Timestamp(original.created_at_ms))?;
            Ok(())
        })
    }

    /// Types into a note: deletes `delete` characters at `position` (Unicode code points) and
    /// inserts `insert` there. Concurrent typing by others merges.
    pub fn edit_note_text(
        &mut self,
        compartment: Compartment,
        note: EntityId,
        position: usize,
        delete: usize,
        insert: &str,
    ) -> Result<(), PlanError> {
        let obj = self
            .entity(compartment, read::NOTES, note)?
            .ok_or(ValidationError::UnknownNote(note, compartment))?;
        let doc = self.doc(compartment)?;
        let text = Reader::new(doc, compartment).required_object(&obj, "text", ObjType::Text)?;
        let len = doc.length(&text);
        if position > len || delete > len - position {
            return Err(
                ValidationError::TextPosition { position: position.saturating_add(delete), len }.into()
            );
        }
        let new_len = len - delete + insert.chars().count();
        if new_len > vocab::LONG_TEXT_MAX_CHARS {
            return Err(ValidationError::TooLong {
                field: "note",
                len: new_len,
                max: vocab::LONG_TEXT_MAX_CHARS,
            }
            .into());
        }
        let delete = isize::try_from(delete).map_err(|_| ValidationError::TextPosition { position, len })?;
        self.write(compartment, |tx, _| tx.splice_text(&text, position, delete, insert))
    }

    /// Puts a note or safety item in the family's copy, or takes it out (the regisseur's
    /// choice: [`crate::Device::include_in_family_copy`] checks who asks). Only an item this
    /// device holds can be put in; taking out needs only its name.
    pub fn set_in_family_copy(&mut self, item: FamilyCopyItem, included: bool) -> Result<(), PlanError> {
        let key = item.key();
        let present = self.doc(Compartment::Basis)?.get(ROOT, key.as_str())?.is_some();
        if !included {
            if !present {
                return Ok(());
            }
            return self.write(Compartment::Basis, |tx, _| tx.delete(ROOT, key.as_str()));
        }
        self.require_item(item)?;
        if !present && super::view::family_copy_count(self.doc(Compartment::Basis)?) >= vocab::MAX_ENTITIES {
            return Err(
                ValidationError::TooMany { what: "the family's copy", max: vocab::MAX_ENTITIES }.into()
            );
        }
        // Written afresh even when the key holds `true` already: what counts is who wrote it
        // (the family's copy takes only a regisseur's), and a `put` of an unchanged value
        // writes nothing.
        let pin = self.family_copy_pin(item)?;
        self.write(Compartment::Basis, |tx, _| {
            if present {
                tx.delete(ROOT, key.as_str())?;
            }
            tx.put(ROOT, key.as_str(), pin)
        })
    }

    /// The fingerprint of an item's text as it is now: the family's copy prints the item
    /// only while its text is still what the regisseur put in (anyone who writes the
    /// compartment can edit a note; the regisseur puts it in again after checking).
    pub fn family_copy_pin(&self, item: FamilyCopyItem) -> Result<String, PlanError> {
        let view = self.view()?;
        let text = match item {
            FamilyCopyItem::Note { compartment, id } => view
                .notes
                .into_iter()
                .find(|n| n.id == id && n.compartment == compartment)
                .map(|n| n.text)
                .ok_or(ValidationError::UnknownNote(id, compartment))?,
            FamilyCopyItem::SafetyItem { id } => view
                .safety_items
                .into_iter()
                .find(|s| s.id == id)
                .map(|s| format!("{}\n{}", s.danger_statement, s.safety_goal))
                .ok_or(ValidationError::UnknownSafetyItem(id))?,
        };
        Ok(eenplan_protocol::api::hex(&crate::crypto::sha256(text.as_bytes())))
    }

    fn require_item(&self, item: FamilyCopyItem) -> Result<(), PlanError> {
        let (compartment, collection, id) = match item {
            FamilyCopyItem::Note { compartment, id } => (compartment, read::NOTES, id),
            FamilyCopyItem::SafetyItem { id } => (Compartment::Veiligheid, read::SAFETY_ITEMS, id),
        };
        match self.entity(compartment, collection, id)? {
            Some(_) => Ok(()),
            None if collection == read::NOTES => Err(ValidationError::UnknownNote(id, compartment).into()),
            None => Err(ValidationError::UnknownSafetyItem(id).into()),
        }
    }

    /// A line of the safety plan: a danger statement and the safety goal that answers it.
    pub fn add_safety_item(
        &mut self,
        danger_statement: &str,
        safety_goal: &str,
    ) -> Result<EntityId, PlanError> {
        let danger = long_text("danger statement", danger_statement)?;
        let goal = long_text("safety goal", safety_goal)?;
        self.add_entity(Compartment::Veiligheid, read::SAFETY_ITEMS, |tx, obj, _| {
            put_text(tx, obj, "danger_statement", &danger)?;
            put_text(tx, obj, "safety_goal", &goal)?;
            Ok(())
        })
    }
}
