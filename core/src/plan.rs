//! The family plan: one automerge document per compartment, behind a typed API.
//!
//! A plan is split into compartments because the privacy rules say which kind of information
//! may go to which partner; each compartment is its own document so that it can later be
//! encrypted, shared and synchronised on its own.
//!
//! Document layout (`basis`; the other compartments hold `schema`, `plan_id`, `notes`, and
//! `veiligheid` also `safety_items`):
//!
//! ```text
//! { schema: 1, plan_id: "…", family: "Jansen", phase: "plan", regisseur: "<participant>",
//!   domains: ["financiën", …],
//!   members:      { <id>: { name, relation, birth_date?, parental_authority, created_at } },
//!   participants: { <id>: { name, organisation, role, created_at } },
//!   escalations:  [ { level, regie_holder?, reason, by, at } ],
//!   goals:        { <id>: { domain, title, status, description: Text, created_at } },
//!   scores:       { "<member>|<domain>|<date>": 1..5 },
//!   actions:      { <id>: { goal, title, owner_org, owner_user?, owner_person? (older
//!                   versions' free text), due?, status, created_at } },
//!   agreements:   { <id>: { text: Text, author, created_at } },
//!   notes:        { <id>: { kind, text: Text, author, created_at } },
//!   contact_<user id>:  { phone?, email? },
//!   family_copy_<compartment>_<note id>: true,
//!   family_copy_veiligheid_safety_<safety item id>: true,
//!   evaluation_<id>:    { date, held?, created_at },
//!   meeting_<id>:       { date, attendees: [user id], decisions: [ { text: Text, action? } ],
//!                         created_at },
//!   adoption_<id>:      { version, date, at, with_family, present: [user id],
//!                         heads: { <compartment>: [change hash] }, membership_seq, signer,
//!                         signature } }
//! ```
//!
//! Contact cards, the items the regisseur puts in the family's copy (a note of any
//! compartment, a safety item; taking one out deletes its key) and the working cycle's
//! records (`cycle.rs`) are keys at the root, not entries of a map: plans made before them
//! have no such map, and two devices creating one concurrently would each hide the other's
//! entries.
//!
//! People's prose is automerge `Text`, so concurrent typing merges. Everything a person *sets*
//! (a status, a date, a score, a title) is a plain scalar register: two concurrent sets leave
//! both values in the document, which [`conflicts`] lists for the regisseur to settle.
//! Every entity has a random id, so two devices never create the same key.

mod chunks;
pub mod conflicts;
pub mod cycle;
mod edit;
pub mod erasure;
mod limits;
mod read;
mod received;
pub mod utf16;
pub mod view;
pub mod vocab;

use std::sync::Arc;

use automerge::{ActorId, Automerge, ChangeHash, ReadDoc};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::ids::{DeviceId, EntityId, PlanId};

pub use chunks::{ChunkKind, DEFLATED_COLUMNS};
pub use conflicts::{Conflict, ConflictValue, FieldValue, Resolution};
pub use edit::{ActionUpdate, MemberUpdate, NewAction, NewGoal, NewMember, NewParticipant};
pub use erasure::{ErasedMember, base_without_member, rebase_unacknowledged};
pub use limits::Limit;
pub(crate) use read::FAMILY_COPY_PREFIX;
pub(crate) use received::guarded;
pub use received::{
    ChangeSummary, LoadedDocument, ReceivedDocument, Refusal, document_change_summaries, load_received,
    load_received_document, load_unchecked, parse_change, parse_received_changes, validate_document,
};
pub use view::{FamilyCopyItem, PlanView};
pub use vocab::{ActionStatus, EscalationLevel, GoalStatus, NoteKind, Phase, Role};

/// Raw automerge changes grouped by the compartment they belong to.
pub type ChangesByCompartment = Vec<(Compartment, Vec<Vec<u8>>)>;

/// The changes a compartment gained since `since` (its heads before): how many, and where
/// they start, so that their bytes are rebuilt only when needed ([`Plan::added_since`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    pub compartment: Compartment,
    pub since: Vec<ChangeHash>,
    pub count: usize,
    /// The compartment's whole document, encoded, where it is to be stored whole: the
    /// received snapshot's own bytes when the document is exactly that snapshot (none held
    /// before, nothing applied after), else its `save()`, made on the merge thread that
    /// built it (`sync::incoming::arrive`) rather than in the store's one transaction.
    pub saved: Option<Vec<u8>>,
}

/// The version of the document layout above; written into every compartment.
pub const SCHEMA_VERSION: i64 = 1;

/// One of the four parts of a plan that the privacy rules treat separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compartment {
    /// Family, participants, goals, actions, agreements, home-visit notes: every participant.
    Basis,
    /// Care and health details.
    Zorg,
    /// Safety plan, risk assessment, Veilig Thuis reports.
    Veiligheid,
    /// Police, OM and probation information.
    Justitie,
}

impl Compartment {
    pub const ALL: [Compartment; 4] =
        [Compartment::Basis, Compartment::Zorg, Compartment::Veiligheid, Compartment::Justitie];

    pub fn as_str(self) -> &'static str {
        match self {
            Compartment::Basis => "basis",
            Compartment::Zorg => "zorg",
            Compartment::Veiligheid => "veiligheid",
            Compartment::Justitie => "justitie",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// What people read (the Dutch display label).
    pub fn label(self) -> &'static str {
        match self {
            Compartment::Basis => "Basis",
            Compartment::Zorg => "Zorg",
            Compartment::Veiligheid => "Veiligheid",
            Compartment::Justitie => "Justitie",
        }
    }
}

impl std::fmt::Display for Compartment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Compartment {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Compartment::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| ValidationError::InvalidValue {
            field: "compartment",
            value: s.chars().take(64).collect(),
            allowed: "basis, zorg, veiligheid, justitie".into(),
        })
    }
}

/// Input that the plan's rules refuse. Nothing is changed when one of these is returned.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ValidationError {
    #[error("a ZRM score is 1 to 5, got {0}")]
    ScoreOutOfRange(i64),
    #[error("{0:?} is not a life domain of this plan")]
    UnknownDomain(String),
    #[error("no goal {0} in this plan")]
    UnknownGoal(EntityId),
    #[error("no action {0} in this plan")]
    UnknownAction(EntityId),
    #[error("no family member {0} in this plan")]
    UnknownMember(EntityId),
    #[error("no participant {0} in this plan")]
    UnknownParticipant(EntityId),
    #[error("no evaluation {0} in this plan")]
    UnknownEvaluation(EntityId),
    #[error("no note {0} in compartment {1}")]
    UnknownNote(EntityId, Compartment),
    #[error("no safety item {0} in this plan")]
    UnknownSafetyItem(EntityId),
    #[error("{field} is {len} characters, more than the {max} allowed")]
    TooLong { field: &'static str, len: usize, max: usize },
    #[error("{field} may not be empty")]
    Empty { field: &'static str },
    #[error("{0:?} is not a date of the form YYYY-MM-DD")]
    InvalidDate(String),
    #[error("{value:?} is not a valid {field} (one of: {allowed})")]
    InvalidValue { field: &'static str, value: String, allowed: String },
    #[error("text position {position} is beyond the text's length {len}")]
    TextPosition { position: usize, len: usize },
    #[error("the domain list must hold 1 to {max} distinct names")]
    DomainList { max: usize },
    #[error("{what} already holds the {max} entries allowed")]
    TooMany { what: &'static str, max: usize },
    #[error("the {compartment} document is full: {bytes} bytes of the {max} allowed")]
    DocumentFull { compartment: Compartment, bytes: usize, max: usize },
}

/// Errors of the plan model.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("this device holds no key for the {0} compartment of this plan")]
    CompartmentNotHeld(Compartment),
    #[error("the {compartment} document does not have the plan layout: {detail}")]
    Malformed { compartment: Compartment, detail: String },
    #[error("the {compartment} document belongs to plan {found}, not {expected}")]
    WrongPlan { compartment: Compartment, expected: PlanId, found: String },
    #[error("no conflict {0:?} in this plan")]
    UnknownConflict(String),
    #[error("conflict {conflict:?} has {count} values; there is no value {index}")]
    NoSuchConflictValue { conflict: String, index: usize, count: usize },
    #[error("automerge refused the change: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    /// Received content (a change, a document) that is not applied: see [`Refusal`].
    #[error("refused for the {compartment} document: {reason}")]
    Refused { compartment: Compartment, reason: Refusal },
}

/// A family plan in memory: its compartment documents, of which a device may hold a subset.
#[derive(Debug)]
pub struct Plan {
    id: PlanId,
    author: DeviceId,
    docs: [Option<Automerge>; 4],
    /// Per compartment, the document's size when last measured (`limits.rs`).
    sizes: [Option<limits::SizeMark>; 4],
    /// Per compartment, the device whose base (an erasure's re-sealed document) is believed
    /// about who created what (`vouch_base`).
    vouched: [Option<ActorId>; 4],
    /// Per compartment, what the last check of a received document read (`view::Memo`):
    /// valid only while the document's heads are the ones it names.
    parts: [Option<view::Memo>; 4],
    clock: Arc<dyn Clock>,
}

impl Plan {
    /// A new plan, with every compartment initialised by this device.
    pub fn create(
        id: PlanId,
        author: DeviceId,
        family: &str,
        domains: Option<Vec<String>>,
        clock: Arc<dyn Clock>,
    ) -> Result<Plan, PlanError> {
        let family = edit::short_text("family name", family)?;
        let domains = match domains {
            Some(list) => edit::domain_list(list)?,
            None => vocab::ZRM_2017_DOMAINS.iter().map(|d| (*d).to_owned()).collect(),
        };
        let mut plan = Plan::empty(id, author, clock);
        for compartment in Compartment::ALL {
            let mut doc = Automerge::new().with_actor(author.actor());
            edit::init_document(&mut doc, compartment, id, &family, &domains, plan.clock.now_ms())?;
            plan.docs[compartment.index()] = Some(doc);
        }
        Ok(plan)
    }

    /// A plan holding no compartment yet.
    fn empty(id: PlanId, author: DeviceId, clock: Arc<dyn Clock>) -> Plan {
        Plan {
            id,
            author,
            docs: Default::default(),
            sizes: Default::default(),
            vouched: Default::default(),
            parts: Default::default(),
            clock,
        }
    }

    /// A plan from documents loaded off disk or received from elsewhere. Compartments
    /// missing from `docs` are simply not held. Each document must carry this plan's id.
    pub fn from_documents(
        id: PlanId,
        author: DeviceId,
        docs: Vec<(Compartment, Automerge)>,
        clock: Arc<dyn Clock>,
    ) -> Result<Plan, PlanError> {
        let mut plan = Plan::empty(id, author, clock);
        for (compartment, mut doc) in docs {
            doc.set_actor(author.actor());
            read::check_plan_id(&doc, compartment, id)?;
            plan.docs[compartment.index()] = Some(doc);
        }
        Ok(plan)
    }

    pub fn id(&self) -> PlanId {
        self.id
    }

    /// Believes the creators that a base written by `author` records (`_by`, see
    /// [`erasure::base_without_member`]) for the objects that base's own change created. The
    /// caller knows `author` from the plan's signed membership chain (the device whose erasure
    /// it accepted), never from the document; it calls this after loading the plan and after
    /// replacing the document. Without it every object of a base reads as created by its writer.
    pub fn vouch_base(&mut self, compartment: Compartment, author: ActorId) {
        self.vouched[compartment.index()] = Some(author);
    }

    /// The device whose base this plan believes for `compartment`, if any.
    pub fn vouched(&self, compartment: Compartment) -> Option<&ActorId> {
        self.vouched[compartment.index()].as_ref()
    }

    pub fn author(&self) -> DeviceId {
        self.author
    }

    pub fn held_compartments(&self) -> Vec<Compartment> {
        Compartment::ALL.into_iter().filter(|c| self.docs[c.index()].is_some()).collect()
    }

    pub fn doc(&self, compartment: Compartment) -> Result<&Automerge, PlanError> {
        self.docs[compartment.index()].as_ref().ok_or(PlanError::CompartmentNotHeld(compartment))
    }

    pub(crate) fn doc_mut(&mut self, compartment: Compartment) -> Result<&mut Automerge, PlanError> {
        // An edit changes the heads, which outdates the memo; it is dropped rather than kept.
        self.parts[compartment.index()] = None;
        self.docs[compartment.index()].as_mut().ok_or(PlanError::CompartmentNotHeld(compartment))
    }

    /// Forgets a compartment's document (a new plan's creator may not hold it).
    pub(crate) fn drop_compartment(&mut self, compartment: Compartment) {
        if compartment != Compartment::Basis {
            self.docs[compartment.index()] = None;
            self.parts[compartment.index()] = None;
        }
    }

    /// Lays out the document of a compartment this plan does not hold yet. Only the device
    /// that made the compartment's first key does this (one layout per document: two
    /// devices laying out the same document would each create its maps, and one device's
    /// entries would hide behind the other's).
    pub(crate) fn start_compartment(&mut self, compartment: Compartment) -> Result<(), PlanError> {
        if self.docs[compartment.index()].is_some() {
            return Ok(());
        }
        let mut doc = Automerge::new().with_actor(self.author.actor());
        edit::init_document(&mut doc, compartment, self.id, "", &[], self.clock.now_ms())?;
        self.docs[compartment.index()] = Some(doc);
        Ok(())
    }

    /// The heads of every held compartment, to compute what a later edit added.
    pub fn heads(&self) -> [Vec<ChangeHash>; 4] {
        std::array::from_fn(|i| self.docs[i].as_ref().map(|d| d.get_heads()).unwrap_or_default())
    }

    /// The heads of each compartment this plan holds, in compartment order: what an
    /// adoption signs and a review covers.
    pub fn held_heads(&self) -> Vec<(Compartment, Vec<ChangeHash>)> {
        Compartment::ALL
            .into_iter()
            .filter_map(|c| Some((c, self.docs[c.index()].as_ref()?.get_heads())))
            .collect()
    }

    /// The raw bytes of every change made since `heads`, per compartment, oldest first.
    pub fn changes_since(&self, heads: &[Vec<ChangeHash>; 4]) -> ChangesByCompartment {
        Compartment::ALL
            .into_iter()
            .filter_map(|c| {
                let changes = self.changes_in(c, &heads[c.index()]);
                (!changes.is_empty()).then_some((c, changes))
            })
            .collect()
    }

    /// The raw bytes of every change of one compartment since `heads`, oldest first (none for
    /// a compartment not held). Rebuilding changes reads the document's operations: for a
    /// whole document that costs about as much as loading it.
    pub fn changes_in(&self, compartment: Compartment, heads: &[ChangeHash]) -> Vec<Vec<u8>> {
        let Some(doc) = self.docs[compartment.index()].as_ref() else { return Vec::new() };
        doc.get_changes(heads).into_iter().map(|ch| ch.raw_bytes().to_vec()).collect()
    }

    /// What was added to each compartment since `heads`, counted from automerge's change graph
    /// (no operation is read): the bytes are rebuilt ([`Plan::changes_in`]) only where they
    /// are stored as rows, not where the document is stored whole.
    pub fn added_since(&self, heads: &[Vec<ChangeHash>; 4]) -> Vec<Added> {
        Compartment::ALL
            .into_iter()
            .filter_map(|c| {
                let doc = self.docs[c.index()].as_ref()?;
                let since = heads[c.index()].clone();
                // From nothing, every change of the graph was added: counted without listing
                // them (a compartment received whole holds thousands).
                let count = match since.is_empty() {
                    true => usize::try_from(doc.stats().num_changes).unwrap_or(usize::MAX),
                    false => doc.get_changes_meta(&since).len(),
                };
                (count > 0).then_some(Added { compartment: c, since, count, saved: None })
            })
            .collect()
    }

    /// The family name, read from `basis` alone (what a plan's stored header names), without
    /// materialising the whole read model.
    pub fn family(&self) -> Result<String, PlanError> {
        let doc = self.doc(Compartment::Basis)?;
        guarded(Compartment::Basis, "reading the family name", || {
            read::Reader::new(doc, Compartment::Basis).required_string(&automerge::ROOT, read::FAMILY)
        })
    }

    /// The materialised read model.
    pub fn view(&self) -> Result<PlanView, PlanError> {
        view::materialise(self)
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}
