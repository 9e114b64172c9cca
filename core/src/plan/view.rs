//! The read model: plain structs materialised from the documents. It is what screens and the
//! CLI show, and what replicas compare to prove they converged.

use automerge::{Automerge, ObjId, ObjType, ROOT, ReadDoc};
use serde::{Deserialize, Serialize};

use super::read::{self, Reader};
use super::received;
use super::{Compartment, Plan, PlanError};
use crate::ids::{EntityId, PlanId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanView {
    pub id: PlanId,
    pub family: String,
    /// Known phase names parse into [`super::Phase`]; an unknown one (from a newer app) is shown as is.
    pub phase: String,
    pub regisseur: Option<EntityId>,
    /// The level after the last escalation step (regulier when there is none).
    pub escalation_level: String,
    pub escalations: Vec<EscalationStep>,
    pub domains: Vec<String>,
    pub members: Vec<Member>,
    pub participants: Vec<Participant>,
    pub goals: Vec<Goal>,
    pub scores: Vec<Score>,
    pub actions: Vec<Action>,
    pub agreements: Vec<Agreement>,
    /// Notes of every held compartment, oldest first.
    pub notes: Vec<Note>,
    pub safety_items: Vec<SafetyItem>,
    pub compartments: Vec<Compartment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalationStep {
    pub level: String,
    pub regie_holder: Option<EntityId>,
    pub reason: String,
    pub by: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: EntityId,
    pub name: String,
    pub relation: String,
    pub birth_date: Option<String>,
    pub parental_authority: bool,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub id: EntityId,
    pub name: String,
    pub organisation: String,
    pub role: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Goal {
    pub id: EntityId,
    pub domain: String,
    pub title: String,
    pub status: String,
    pub description: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    pub member: EntityId,
    pub domain: String,
    pub date: String,
    pub score: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub id: EntityId,
    pub goal: EntityId,
    pub title: String,
    pub owner_org: String,
    pub owner_person: Option<String>,
    pub due: Option<String>,
    pub status: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agreement {
    pub id: EntityId,
    pub text: String,
    pub author: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub id: EntityId,
    pub compartment: Compartment,
    pub kind: String,
    pub text: String,
    pub author: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetyItem {
    pub id: EntityId,
    pub danger_statement: String,
    pub safety_goal: String,
    pub created_at_ms: i64,
}

/// Entities sort by creation time, then id: the same order on every replica.
fn sort_entities<T>(items: &mut [T], key: impl Fn(&T) -> (i64, EntityId)) {
    items.sort_by_key(|item| key(item));
}

/// The read model of a plan. Each compartment's part is read inside the boundary for
/// untrusted documents ([`received::guarded`]): their content came from other devices.
pub(super) fn materialise(plan: &Plan) -> Result<PlanView, PlanError> {
    let basis = plan.doc(Compartment::Basis)?;
    let mut view = received::guarded(Compartment::Basis, "reading the plan", || {
        let r = Reader::new(basis, Compartment::Basis);
        Ok(PlanView {
            id: plan.id(),
            family: r.required_string(&ROOT, read::FAMILY)?,
            phase: r.required_string(&ROOT, read::PHASE)?,
            regisseur: r.string(&ROOT, read::REGISSEUR)?.map(|s| r.entity_id(&s, "regisseur")).transpose()?,
            escalation_level: super::EscalationLevel::Regulier.as_str().to_owned(),
            escalations: escalations(&r)?,
            domains: plan.view_domains()?,
            members: members(&r)?,
            participants: participants(&r)?,
            goals: goals(&r)?,
            scores: scores(&r)?,
            actions: actions(&r)?,
            agreements: agreements(&r)?,
            notes: Vec::new(),
            safety_items: Vec::new(),
            compartments: plan.held_compartments(),
        })
    })?;
    if let Some(last) = view.escalations.last() {
        view.escalation_level = last.level.clone();
    }
    for compartment in plan.held_compartments() {
        let doc = plan.doc(compartment)?;
        let (notes, safety) = received::guarded(compartment, "reading the plan", || {
            let r = Reader::new(doc, compartment);
            let safety = match compartment {
                Compartment::Veiligheid => Some(safety_items(&r)?),
                _ => None,
            };
            Ok((notes(&r)?, safety))
        })?;
        view.notes.extend(notes);
        if let Some(items) = safety {
            view.safety_items = items;
        }
    }
    view.notes.sort_by_key(|n| (n.created_at_ms, n.compartment, n.id));
    Ok(view)
}

/// Checks that a document materialises without layout errors.
pub(super) fn check_layout(doc: &Automerge, compartment: Compartment) -> Result<(), PlanError> {
    let r = Reader::new(doc, compartment);
    notes(&r)?;
    match compartment {
        Compartment::Basis => {
            r.required_string(&ROOT, read::FAMILY)?;
            r.required_string(&ROOT, read::PHASE)?;
            let list = r.required_object(&ROOT, read::DOMAINS, ObjType::List)?;
            if doc.list_range(&list, ..).any(|item| read::ref_str(&item.value).is_none()) {
                return Err(r.malformed("a domain is not a string"));
            }
            escalations(&r)?;
            members(&r)?;
            participants(&r)?;
            goals(&r)?;
            scores(&r)?;
            actions(&r)?;
            agreements(&r)?;
        }
        Compartment::Veiligheid => {
            safety_items(&r)?;
        }
        Compartment::Zorg | Compartment::Justitie => {}
    }
    Ok(())
}

fn created(r: &Reader<'_>, obj: &ObjId) -> Result<i64, PlanError> {
    Ok(r.int(obj, "created_at")?.unwrap_or(0))
}

fn collection(r: &Reader<'_>, key: &str) -> Result<ObjId, PlanError> {
    r.required_object(&ROOT, key, ObjType::Map)
}

fn escalations(r: &Reader<'_>) -> Result<Vec<EscalationStep>, PlanError> {
    let list = r.required_object(&ROOT, read::ESCALATIONS, ObjType::List)?;
    let mut out = Vec::new();
    for item in r.doc.list_range(&list, ..) {
        if !matches!(item.value, automerge::ValueRef::Object(ObjType::Map)) {
            return Err(r.malformed("an escalation step is not a map"));
        }
        let obj = item.id();
        out.push(EscalationStep {
            level: r.required_string(&obj, "level")?,
            regie_holder: r
                .string(&obj, "regie_holder")?
                .map(|s| r.entity_id(&s, "regie holder"))
                .transpose()?,
            reason: r.text(&obj, "reason")?,
            by: r.string(&obj, "by")?.unwrap_or_default(),
            at_ms: r.int(&obj, "at")?.unwrap_or(0),
        });
    }
    Ok(out)
}

fn members(r: &Reader<'_>) -> Result<Vec<Member>, PlanError> {
    let mut out = Vec::new();
    for (id, obj) in r.entities(&collection(r, read::MEMBERS)?, "member")? {
        out.push(Member {
            id,
            name: r.required_string(&obj, "name")?,
            relation: r.string(&obj, "relation")?.unwrap_or_default(),
            birth_date: r.string(&obj, "birth_date")?,
            parental_authority: r.bool(&obj, "parental_authority")?.unwrap_or(false),
            created_at_ms: created(r, &obj)?,
        });
    }
    sort_entities(&mut out, |m| (m.created_at_ms, m.id));
    Ok(out)
}

fn participants(r: &Reader<'_>) -> Result<Vec<Participant>, PlanError> {
    let mut out = Vec::new();
    for (id, obj) in r.entities(&collection(r, read::PARTICIPANTS)?, "participant")? {
        out.push(Participant {
            id,
            name: r.required_string(&obj, "name")?,
            organisation: r.string(&obj, "organisation")?.unwrap_or_default(),
            role: r.required_string(&obj, "role")?,
            created_at_ms: created(r, &obj)?,
        });
    }
    sort_entities(&mut out, |p| (p.created_at_ms, p.id));
    Ok(out)
}

fn goals(r: &Reader<'_>) -> Result<Vec<Goal>, PlanError> {
    let mut out = Vec::new();
    for (id, obj) in r.entities(&collection(r, read::GOALS)?, "goal")? {
        out.push(Goal {
            id,
            domain: r.required_string(&obj, "domain")?,
            title: r.required_string(&obj, "title")?,
            status: r.required_string(&obj, "status")?,
            description: r.text(&obj, "description")?,
            created_at_ms: created(r, &obj)?,
        });
    }
    sort_entities(&mut out, |g| (g.created_at_ms, g.id));
    Ok(out)
}

fn scores(r: &Reader<'_>) -> Result<Vec<Score>, PlanError> {
    let map = collection(r, read::SCORES)?;
    let mut out = Vec::new();
    for item in r.doc.map_range(&map, ..) {
        let mut parts = item.key.splitn(3, '|');
        let (Some(member), Some(domain), Some(date)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(r.malformed(format!(
                "score key {:?} is malformed",
                item.key.chars().take(64).collect::<String>()
            )));
        };
        let score = r.int(&map, &item.key)?.ok_or_else(|| r.malformed("a score is not an integer"))?;
        out.push(Score {
            member: r.entity_id(member, "member")?,
            domain: domain.to_owned(),
            date: date.to_owned(),
            score,
        });
    }
    // map_range yields keys in order, so this is already deterministic.
    Ok(out)
}

fn actions(r: &Reader<'_>) -> Result<Vec<Action>, PlanError> {
    let mut out = Vec::new();
    for (id, obj) in r.entities(&collection(r, read::ACTIONS)?, "action")? {
        let goal = r.required_string(&obj, "goal")?;
        out.push(Action {
            id,
            goal: r.entity_id(&goal, "goal")?,
            title: r.required_string(&obj, "title")?,
            owner_org: r.string(&obj, "owner_org")?.unwrap_or_default(),
            owner_person: r.string(&obj, "owner_person")?,
            due: r.string(&obj, "due")?,
            status: r.required_string(&obj, "status")?,
            created_at_ms: created(r, &obj)?,
        });
    }
    sort_entities(&mut out, |a| (a.created_at_ms, a.id));
    Ok(out)
}

fn agreements(r: &Reader<'_>) -> Result<Vec<Agreement>, PlanError> {
    let mut out = Vec::new();
    for (id, obj) in r.entities(&collection(r, read::AGREEMENTS)?, "agreement")? {
        out.push(Agreement {
            id,
            text: r.text(&obj, "text")?,
            author: r.string(&obj, "author")?.unwrap_or_default(),
            created_at_ms: created(r, &obj)?,
        });
    }
    sort_entities(&mut out, |a| (a.created_at_ms, a.id));
    Ok(out)
}

fn notes(r: &Reader<'_>) -> Result<Vec<Note>, PlanError> {
    let mut out = Vec::new();
    for (id, obj) in r.entities(&collection(r, read::NOTES)?, "note")? {
        out.push(Note {
            id,
            compartment: r.compartment,
            kind: r.string(&obj, "kind")?.unwrap_or_default(),
            text: r.text(&obj, "text")?,
            author: r.string(&obj, "author")?.unwrap_or_default(),
            created_at_ms: created(r, &obj)?,
        });
    }
    Ok(out)
}

fn safety_items(r: &Reader<'_>) -> Result<Vec<SafetyItem>, PlanError> {
    let mut out = Vec::new();
    for (id, obj) in r.entities(&collection(r, read::SAFETY_ITEMS)?, "safety item")? {
        out.push(SafetyItem {
            id,
            danger_statement: r.text(&obj, "danger_statement")?,
            safety_goal: r.text(&obj, "safety_goal")?,
            created_at_ms: created(r, &obj)?,
        });
    }
    sort_entities(&mut out, |s| (s.created_at_ms, s.id));
    Ok(out)
}
