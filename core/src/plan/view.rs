//! The read model: plain structs materialised from the documents. It is what screens and the
//! CLI show, and what replicas compare to prove they converged.

use automerge::{ActorId, Automerge, ObjId, ObjType, ROOT, ReadDoc};
use serde::{Deserialize, Serialize};

use super::read::{self, Fields, Reader};
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
    /// The people behind the device ids this view names (note and agreement authors, who
    /// recorded each escalation step), as far as the device holds their certificates; the
    /// device fills this in ([`crate::Device::read`]), the document alone cannot.
    #[serde(default)]
    pub people: Vec<crate::people::Person>,
    /// Who takes part and who holds regie, from the plan's signed membership chain (the
    /// device fills this in; `None` while it holds no chain for the plan). Where it is
    /// present, it, not `regisseur` or `participants` above (anyone's words in the
    /// document), says who takes part, and `escalation_level` is its level.
    #[serde(default)]
    pub membership: Option<crate::regie::Membership>,
    /// Participants' contact cards (phone, e-mail), each written by whoever wrote it: the
    /// device shows a card with a participant only when that participant's own device wrote
    /// it (`membership` carries the result).
    #[serde(default)]
    pub contacts: Vec<ContactCard>,
    /// Planned evaluations, by date.
    #[serde(default)]
    pub evaluations: Vec<super::cycle::Evaluation>,
    /// Case meetings (*casusoverleg*), by date.
    #[serde(default)]
    pub meetings: Vec<super::cycle::Meeting>,
    /// What the regisseur put in the family's copy besides its `basis` skeleton (a note, a
    /// safety item), in key order. Each names where it is; its text is in `notes` or
    /// `safety_items` only when this device holds that compartment.
    #[serde(default)]
    pub family_copy_items: Vec<FamilyCopyItem>,
}

/// A note or safety item the regisseur put in the family's copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FamilyCopyItem {
    Note { compartment: Compartment, id: EntityId },
    SafetyItem { id: EntityId },
}

/// The part of a family-copy key after the compartment that marks a safety item.
const SAFETY_ITEM_TAG: &str = "safety_";

impl PlanView {
    /// The participant with user id `user`, as the signed chain names them (none while the
    /// device holds no chain, or for a user who does not take part).
    pub fn participant(&self, user: i64) -> Option<&crate::regie::PlanParticipant> {
        self.membership.as_ref()?.participants.iter().find(|p| p.user_id == user)
    }

    /// Who does an action, by name: the participant it names, else the free text an earlier
    /// version wrote (trimmed; none when empty).
    pub fn action_owner_name(&self, action: &Action) -> Option<String> {
        let participant = action.owner_user.and_then(|user| self.participant(user)).map(|p| p.name.clone());
        participant
            .or_else(|| action.owner_person.as_deref().map(str::trim).map(str::to_owned))
            .filter(|p| !p.is_empty())
    }
}

impl FamilyCopyItem {
    /// Its root key in `basis` (see the layout in `plan.rs`).
    pub(crate) fn key(self) -> String {
        match self {
            FamilyCopyItem::Note { compartment, id } => {
                format!("{}{compartment}_{id}", read::FAMILY_COPY_PREFIX)
            }
            FamilyCopyItem::SafetyItem { id } => {
                format!("{}{}_{SAFETY_ITEM_TAG}{id}", read::FAMILY_COPY_PREFIX, Compartment::Veiligheid)
            }
        }
    }

    /// The item a root key names; `None` for any other key, or one a newer app wrote in a
    /// form this version does not know.
    fn from_key(key: &str) -> Option<FamilyCopyItem> {
        let rest = key.strip_prefix(read::FAMILY_COPY_PREFIX)?;
        let (compartment, id) = rest.split_once('_')?;
        let compartment: Compartment = compartment.parse().ok()?;
        match id.strip_prefix(SAFETY_ITEM_TAG) {
            Some(id) if compartment == Compartment::Veiligheid => {
                Some(FamilyCopyItem::SafetyItem { id: id.parse().ok()? })
            }
            Some(_) => None,
            None => Some(FamilyCopyItem::Note { compartment, id: id.parse().ok()? }),
        }
    }
}

/// A participant's contact details, as a device wrote them into the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactCard {
    pub user_id: i64,
    pub phone: Option<String>,
    pub email: Option<String>,
    /// The device that wrote the card (hex).
    pub written_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalationStep {
    /// Named by the plan's membership-chain entry of the same step (absent in steps written
    /// before chains).
    #[serde(default)]
    pub id: Option<EntityId>,
    pub level: String,
    pub regie_holder: Option<EntityId>,
    pub reason: String,
    /// The device that recorded the step (see [`Note::author`]).
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
    /// Free text written by earlier versions; see `owner_user`.
    pub owner_person: Option<String>,
    /// The participant who does it (user id in the membership chain). The device fills it
    /// in from `owner_person` when that names exactly one participant ([`crate::Device::read`]).
    #[serde(default)]
    pub owner_user: Option<i64>,
    pub due: Option<String>,
    pub status: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agreement {
    pub id: EntityId,
    pub text: String,
    /// The device that wrote it (see [`Note::author`]).
    pub author: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub id: EntityId,
    pub compartment: Compartment,
    pub kind: String,
    pub text: String,
    /// The device that wrote the note, as hex: the actor of the automerge change that created
    /// it, which a bundle's signature vouches for. The `author` string stored in the note is
    /// ignored: any writer could put another device's id there. In a base an erasure wrote,
    /// the base records each object's creator, believed once the plan vouches for the base's
    /// writer (`Plan::vouch_base`, `read::Reader::creator`).
    pub author: String,
    pub created_at_ms: i64,
    /// For a note copied from another compartment: where it came from. What the copier
    /// says; the copier is `author`.
    #[serde(default)]
    pub copied_from: Option<NoteOrigin>,
}

/// Where a copied note came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteOrigin {
    pub compartment: String,
    pub note: String,
    /// The device that wrote the original (hex), as the copier recorded it.
    pub author: String,
    pub written_at_ms: i64,
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
    let part_of = |compartment: Compartment| {
        let doc = plan.doc(compartment)?;
        let vouched = plan.vouched(compartment);
        if vouched.is_none()
            && let Some(memo) =
                plan.parts[compartment.index()].as_ref().filter(|m| m.heads == doc.get_heads())
        {
            return Ok(memo.part.clone());
        }
        received::guarded(compartment, "reading the plan", || read_compartment(doc, compartment, vouched))
    };
    let Part { basis, notes, safety_items } = part_of(Compartment::Basis)?;
    let basis = basis.ok_or(PlanError::CompartmentNotHeld(Compartment::Basis))?;
    let mut view = PlanView {
        id: plan.id(),
        family: basis.family,
        phase: basis.phase,
        regisseur: basis.regisseur,
        escalation_level: basis
            .escalations
            .last()
            .map_or_else(|| super::EscalationLevel::Regulier.as_str().to_owned(), |last| last.level.clone()),
        escalations: basis.escalations,
        domains: basis.domains,
        members: basis.members,
        participants: basis.participants,
        goals: basis.goals,
        scores: basis.scores,
        actions: basis.actions,
        agreements: basis.agreements,
        notes,
        safety_items: safety_items.unwrap_or_default(),
        compartments: plan.held_compartments(),
        people: Vec::new(),
        membership: None,
        contacts: basis.contacts,
        evaluations: basis.evaluations,
        meetings: basis.meetings,
        family_copy_items: basis.family_copy_items,
    };
    for compartment in plan.held_compartments().into_iter().filter(|c| *c != Compartment::Basis) {
        let part = part_of(compartment)?;
        view.notes.extend(part.notes);
        if let Some(items) = part.safety_items {
            view.safety_items = items;
        }
    }
    view.notes.sort_by_key(|n| (n.created_at_ms, n.compartment, n.id));
    Ok(view)
}

/// Checks that a document materialises without layout errors: it is read exactly as the read
/// model reads it, so a document that passed this check always materialises. Returns what it
/// read, which the view takes instead of reading the document again ([`Memo`]).
pub(super) fn check_layout(doc: &Automerge, compartment: Compartment) -> Result<Memo, PlanError> {
    // Vouching changes only whose actor id a creator is, never whether the layout reads.
    let part = read_compartment(doc, compartment, None)?;
    // Adoption records are read apart from the view (the device judges them), with the same
    // layout rules.
    if compartment == Compartment::Basis {
        super::cycle::check_adoptions(&Reader::new(doc, compartment))?;
    }
    Ok(Memo { heads: doc.get_heads(), part })
}

/// A compartment's part of the read model as a check read it, by the heads of the document it
/// read. Heads name every change a document holds (each change's hash covers its content and
/// its dependencies), so while the held document has the same heads it holds the same content
/// and the part is what reading it again would give; [`materialise`] takes it then, and only
/// for a compartment with no vouched base (the check reads every creator as the change's
/// actor). A received snapshot is read once to check it and not again for the view.
#[derive(Debug, Clone)]
pub(super) struct Memo {
    heads: Vec<automerge::ChangeHash>,
    part: Part,
}

/// What the read model takes from one compartment's document.
#[derive(Debug, Clone)]
struct Part {
    basis: Option<Basis>,
    notes: Vec<Note>,
    safety_items: Option<Vec<SafetyItem>>,
}

/// What only the `basis` document holds.
#[derive(Debug, Clone)]
struct Basis {
    family: String,
    phase: String,
    regisseur: Option<EntityId>,
    escalations: Vec<EscalationStep>,
    domains: Vec<String>,
    members: Vec<Member>,
    participants: Vec<Participant>,
    goals: Vec<Goal>,
    scores: Vec<Score>,
    actions: Vec<Action>,
    agreements: Vec<Agreement>,
    contacts: Vec<ContactCard>,
    evaluations: Vec<super::cycle::Evaluation>,
    meetings: Vec<super::cycle::Meeting>,
    family_copy_items: Vec<FamilyCopyItem>,
}

fn read_compartment(
    doc: &Automerge,
    compartment: Compartment,
    vouched: Option<&ActorId>,
) -> Result<Part, PlanError> {
    let r = Reader::new(doc, compartment).vouched(vouched);
    let basis = match compartment {
        Compartment::Basis => Some(Basis {
            family: r.required_string(&ROOT, read::FAMILY)?,
            phase: r.required_string(&ROOT, read::PHASE)?,
            regisseur: r.string(&ROOT, read::REGISSEUR)?.map(|s| r.entity_id(&s, "regisseur")).transpose()?,
            escalations: escalations(&r)?,
            domains: domains(&r)?,
            members: members(&r)?,
            participants: participants(&r)?,
            goals: goals(&r)?,
            scores: scores(&r)?,
            actions: actions(&r)?,
            agreements: agreements(&r)?,
            contacts: contacts(&r)?,
            evaluations: super::cycle::evaluations(&r)?,
            meetings: super::cycle::meetings(&r)?,
            family_copy_items: family_copy_items(&r)?,
        }),
        _ => None,
    };
    let safety_items = match compartment {
        Compartment::Veiligheid => Some(safety_items(&r)?),
        _ => None,
    };
    Ok(Part { basis, notes: notes(&r)?, safety_items })
}

/// The plan's life domains: 1 to [`super::vocab::MAX_DOMAINS`] names (a received document may
/// not carry more than a device can create).
pub(super) fn domains(r: &Reader<'_>) -> Result<Vec<String>, PlanError> {
    let list = r.required_object(&ROOT, read::DOMAINS, ObjType::List)?;
    let len = r.doc.length(&list);
    if len > super::vocab::MAX_DOMAINS {
        let max = super::vocab::MAX_DOMAINS;
        return Err(PlanError::Refused {
            compartment: r.compartment,
            reason: received::Refusal::over(super::Limit::Domains, read::DOMAINS, len, max),
        });
    }
    r.doc
        .list_range(&list, ..)
        .map(|item| {
            read::ref_str(&item.value)
                .map(str::to_owned)
                .ok_or_else(|| r.malformed("a domain is not a string"))
        })
        .collect()
}

fn created(f: &Fields<'_, '_>) -> Result<i64, PlanError> {
    Ok(f.int("created_at")?.unwrap_or(0))
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
        let f = r.fields(&obj);
        out.push(EscalationStep {
            id: f.string("id")?.map(|s| r.entity_id(&s, "escalation step id")).transpose()?,
            level: f.required_string("level")?,
            regie_holder: f.string("regie_holder")?.map(|s| r.entity_id(&s, "regie holder")).transpose()?,
            reason: f.text("reason")?,
            by: r.creator(&obj)?,
            at_ms: f.int("at")?.unwrap_or(0),
        });
    }
    Ok(out)
}

fn members(r: &Reader<'_>) -> Result<Vec<Member>, PlanError> {
    let mut out = Vec::new();
    for (id, obj) in r.entities(&collection(r, read::MEMBERS)?, "member")? {
        let f = r.fields(&obj);
        out.push(Member {
            id,
            name: f.required_string("name")?,
            relation: f.string("relation")?.unwrap_or_default(),
            birth_date: f.string("birth_date")?,
            parental_authority: f.bool("parental_authority")?.unwrap_or(false),
            created_at_ms: created(&f)?,
        });
    }
    sort_entities(&mut out, |m| (m.created_at_ms, m.id));
    Ok(out)
}

fn participants(r: &Reader<'_>) -> Result<Vec<Participant>, PlanError> {
    let mut out = Vec::new();
    for (id, obj) in r.entities(&collection(r, read::PARTICIPANTS)?, "participant")? {
        let f = r.fields(&obj);
        out.push(Participant {
            id,
            name: f.required_string("name")?,
            organisation: f.string("organisation")?.unwrap_or_default(),
            role: f.required_string("role")?,
            created_at_ms: created(&f)?,
        });
    }
    sort_entities(&mut out, |p| (p.created_at_ms, p.id));
    Ok(out)
}

fn goals(r: &Reader<'_>) -> Result<Vec<Goal>, PlanError> {
    let mut out = Vec::new();
    for (id, obj) in r.entities(&collection(r, read::GOALS)?, "goal")? {
        let f = r.fields(&obj);
        out.push(Goal {
            id,
            domain: f.required_string("domain")?,
            title: f.required_string("title")?,
            status: f.required_string("status")?,
            description: f.text("description")?,
            created_at_ms: created(&f)?,
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
        let score = r.int_of(&item)?.ok_or_else(|| r.malformed("a score is not an integer"))?;
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
        let f = r.fields(&obj);
        let goal = f.required_string("goal")?;
        out.push(Action {
            id,
            goal: r.entity_id(&goal, "goal")?,
            title: f.required_string("title")?,
            owner_org: f.string("owner_org")?.unwrap_or_default(),
            owner_person: f.string("owner_person")?,
            owner_user: f.int("owner_user")?,
            due: f.string("due")?,
            status: f.required_string("status")?,
            created_at_ms: created(&f)?,
        });
    }
    sort_entities(&mut out, |a| (a.created_at_ms, a.id));
    Ok(out)
}

fn agreements(r: &Reader<'_>) -> Result<Vec<Agreement>, PlanError> {
    let mut out = Vec::new();
    for (id, obj) in r.entities(&collection(r, read::AGREEMENTS)?, "agreement")? {
        let f = r.fields(&obj);
        out.push(Agreement {
            id,
            text: f.text("text")?,
            author: r.creator(&obj)?,
            created_at_ms: created(&f)?,
        });
    }
    sort_entities(&mut out, |a| (a.created_at_ms, a.id));
    Ok(out)
}

fn notes(r: &Reader<'_>) -> Result<Vec<Note>, PlanError> {
    let mut out = Vec::new();
    for (id, obj) in r.entities(&collection(r, read::NOTES)?, "note")? {
        let f = r.fields(&obj);
        out.push(Note {
            id,
            compartment: r.compartment,
            kind: f.string("kind")?.unwrap_or_default(),
            text: f.text("text")?,
            author: r.creator(&obj)?,
            created_at_ms: created(&f)?,
            copied_from: match f.string("copied_from_compartment")? {
                Some(compartment) => Some(NoteOrigin {
                    compartment,
                    note: f.string("copied_from_note")?.unwrap_or_default(),
                    author: f.string("copied_from_author")?.unwrap_or_default(),
                    written_at_ms: f.int("copied_from_at")?.unwrap_or(0),
                }),
                None => None,
            },
        });
    }
    Ok(out)
}

/// The contact cards, one root key `contact_<user id>` each: a card is rewritten whole, so
/// the device that made its object is the one that wrote it.
fn contacts(r: &Reader<'_>) -> Result<Vec<ContactCard>, PlanError> {
    let mut out = Vec::new();
    for key in r.doc.keys(&ROOT) {
        let Some(user_id) = key.strip_prefix(read::CONTACT_PREFIX).and_then(|u| u.parse::<i64>().ok()) else {
            continue;
        };
        let Some(obj) = r.object(&ROOT, &key, ObjType::Map)? else { continue };
        let f = r.fields(&obj);
        out.push(ContactCard {
            user_id,
            phone: f.string("phone")?,
            email: f.string("email")?,
            written_by: r.creator(&obj)?,
        });
    }
    out.sort_by_key(|c| c.user_id);
    Ok(out)
}

/// The items in the family's copy, one root key each (`true`; taken out, the key is gone). A
/// key whose value is not `true` includes nothing.
fn family_copy_items(r: &Reader<'_>) -> Result<Vec<FamilyCopyItem>, PlanError> {
    let items: std::collections::BTreeSet<FamilyCopyItem> =
        family_copy_writers(r)?.into_iter().map(|(item, _, _)| item).collect();
    Ok(items.into_iter().collect())
}

/// What an inclusion key holds: `Some(pin)` when it puts the item in, the pin being the
/// fingerprint of the item's text then (`None` for a bare `true`, which pins nothing).
fn inclusion_pin(value: &automerge::Value<'_>) -> Option<Option<String>> {
    match value.as_scalar()? {
        automerge::ScalarValue::Boolean(true) => Some(None),
        automerge::ScalarValue::Str(pin) => Some(Some(pin.to_string())),
        _ => None,
    }
}

/// Each item in the family's copy with each device that put it in (hex: the actor of the
/// operation that wrote its key, which a bundle's signature vouches for) and the fingerprint of
/// the text it put in. Every concurrent value counts: a regisseur's inclusion is not hidden by
/// another writer's that happened to win the register.
pub(super) type Inclusion = (FamilyCopyItem, String, Option<String>);

pub(super) fn family_copy_writers(r: &Reader<'_>) -> Result<Vec<Inclusion>, PlanError> {
    let mut out = Vec::new();
    for key in r.doc.keys(&ROOT) {
        let Some(item) = FamilyCopyItem::from_key(&key) else { continue };
        for (value, op) in r.doc.get_all(&ROOT, key.as_str())? {
            if let Some(pin) = inclusion_pin(&value) {
                out.push((item, read::writer(&op), pin));
            }
        }
    }
    Ok(out)
}

/// How many items the family's copy names (a key holding anything but `true` counts too:
/// it takes room all the same).
pub(super) fn family_copy_count(doc: &Automerge) -> usize {
    doc.keys(&ROOT).filter(|key| FamilyCopyItem::from_key(key).is_some()).count()
}

fn safety_items(r: &Reader<'_>) -> Result<Vec<SafetyItem>, PlanError> {
    let mut out = Vec::new();
    for (id, obj) in r.entities(&collection(r, read::SAFETY_ITEMS)?, "safety item")? {
        let f = r.fields(&obj);
        out.push(SafetyItem {
            id,
            danger_statement: f.text("danger_statement")?,
            safety_goal: f.text("safety_goal")?,
            created_at_ms: created(&f)?,
        });
    }
    sort_entities(&mut out, |s| (s.created_at_ms, s.id));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::{NoteKind, Plan, load_received};
    use super::*;
    use crate::clock::{Clock, SystemClock};
    use crate::ids::DeviceId;

    /// A plan read afresh from copies of `plan`'s documents: no memo.
    fn read_afresh(plan: &Plan, clock: Arc<dyn Clock>) -> PlanView {
        let docs = plan.held_compartments().into_iter().map(|c| (c, plan.doc(c).unwrap().clone())).collect();
        Plan::from_documents(plan.id(), DeviceId::from_bytes([3; 16]), docs, clock).unwrap().view().unwrap()
    }

    #[test]
    fn a_view_taken_from_what_the_checks_read_is_the_view_the_documents_give_and_follows_later_changes() {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let id = PlanId::random();
        let mut origin =
            Plan::create(id, DeviceId::from_bytes([1; 16]), "Jansen", None, clock.clone()).unwrap();
        origin.add_note(Compartment::Basis, NoteKind::Note, "eerste").unwrap();
        origin.add_note(Compartment::Zorg, NoteKind::Note, "zorg").unwrap();
        let mut receiver =
            Plan::from_documents(id, DeviceId::from_bytes([2; 16]), Vec::new(), clock.clone()).unwrap();
        for compartment in Compartment::ALL {
            let saved = origin.doc(compartment).unwrap().save();
            receiver.merge_received(compartment, load_received(&saved, compartment, id).unwrap()).unwrap();
        }
        assert!(receiver.parts.iter().all(Option::is_some), "each check kept what it read");
        assert_eq!(receiver.view().unwrap(), origin.view().unwrap());
        // Changes received after the check, and an edit here: the view is read again.
        let before = origin.heads();
        origin.add_note(Compartment::Basis, NoteKind::Note, "tweede").unwrap();
        for (compartment, changes) in origin.changes_since(&before) {
            receiver.apply_changes(compartment, &changes).unwrap();
        }
        receiver.add_note(Compartment::Zorg, NoteKind::Note, "hier").unwrap();
        let view = receiver.view().unwrap();
        let mut notes: Vec<&str> = view.notes.iter().map(|n| n.text.as_str()).collect();
        notes.sort_unstable();
        assert_eq!(notes, ["eerste", "hier", "tweede", "zorg"]);
        assert_eq!(view, read_afresh(&receiver, clock));
    }
}
