//! The types that cross the FFI.
//!
//! Most are the core's own types, declared here with `#[uniffi::remote]` so that the
//! generated code reads them field for field (no copies to keep in step by hand; a field the
//! core adds is a compile error here until it is declared). Ids cross as their hex text.
//! The few local types exist where the core's shape does not fit a foreign language
//! (`usize`, a tuple variant around a struct).

use eenplan_core::WipeReason;
use eenplan_core::adoption::{AdoptedPlan, Adoption, AdoptionCheck, NotAdopted};
use eenplan_core::agenda::{Agenda, AgendaItem, AgendaKind};
use eenplan_core::audience::{Audience, Reader};
use eenplan_core::cycle::{DecisionActionInput, DecisionInput, Direction, DomainTrend, TrendPoint};
use eenplan_core::ids::{DeviceId, EntityId, PlanId};
use eenplan_core::people::Person;
use eenplan_core::plan::conflicts::{Conflict, ConflictValue, FieldValue};
use eenplan_core::plan::cycle::{Decision, Evaluation, Meeting};
use eenplan_core::plan::view::{
    Action, Agreement, ContactCard, EscalationStep, FamilyCopyItem, Goal, Member, Note, NoteOrigin,
    Participant, PlanView, SafetyItem, Score,
};
use eenplan_core::plan::{
    ActionStatus, Compartment, EscalationLevel, GoalStatus, NewAction, NewMember, NewParticipant, NoteKind,
    Phase, Role,
};
use eenplan_core::regie::{Membership, MembershipStep, PlanParticipant};
use eenplan_core::sync::Platform;
use eenplan_core::sync::{DeviceStatus, Enrolment, ShareOutcome, SyncReport};
use eenplan_protocol::api::{ErrorCode, ServerUrl};
use eenplan_protocol::membership::Grondslag;

use crate::error::ApiError;

/// A malformed id from the host is an [`ApiError::Invalid`], like any other refused input.
fn parse_id<T: std::str::FromStr<Err = eenplan_core::ids::IdParseError>>(text: &str) -> uniffi::Result<T> {
    text.parse().map_err(|e: eenplan_core::ids::IdParseError| ApiError::invalid(e.to_string()).into())
}

// A server address crosses as text and is checked as it arrives: "127.0.0.1:8443" or
// "ftp://…" is `ApiError.Invalid` with what is wrong, never "the server could not be reached".
uniffi::custom_type!(ServerUrl, String, {
    remote,
    lower: |url| url.as_str().to_owned(),
    try_lift: |text| ServerUrl::parse(&text).map_err(|e| ApiError::invalid(e.to_string()).into()),
});

/// The server's machine code for a refusal (`eenplan_protocol::api::ErrorCode`); a code this
/// build does not know arrives as `Other`.
#[uniffi::remote(Enum)]
pub enum ErrorCode {
    Malformed,
    BadCertificate,
    BadEscrowSignature,
    BadPolicy,
    BadWipeOrder,
    CertificateChanged,
    CertificateMismatch,
    IncompleteRekey,
    IncompleteRoleChange,
    PolicyNotNewer,
    BadMembership,
    UnknownPolicyVersion,
    InvalidDeviceLabel,
    MissingToken,
    BadToken,
    ExpiredToken,
    BadChallenge,
    ExpiredChallenge,
    BadSignature,
    MissingSignature,
    StaleRequest,
    ReplayedRequest,
    UnknownAdmin,
    UnknownDevice,
    Revoked,
    DeviceNotApproved,
    DeviceNotPending,
    NotRegisseur,
    NotAReader,
    BadPolicySignature,
    BadWipeReport,
    OutOfScope,
    NetworkAdminOnly,
    NotFound,
    NoRoute,
    NoPolicy,
    NoCertificate,
    UnknownCode,
    UnknownOrg,
    UnknownPlan,
    UnknownUser,
    Conflict,
    InvalidState,
    AlreadyInitialised,
    NotInitialised,
    DeviceExists,
    EnrolmentExists,
    OrgExists,
    UserExists,
    StaleRekey,
    MembershipConflict,
    MembershipSigned,
    NotClosed,
    RetentionNotOver,
    PlanErased,
    Expired,
    ExpiredCode,
    TooLarge,
    Busy,
    ShuttingDown,
    Internal,
    Other(String),
}

/// The platform a device runs on, as it reports it with its name.
#[uniffi::remote(Enum)]
pub enum Platform {
    Android,
    Ios,
    Desktop,
    Other,
}

/// The legal ground for sharing at an escalation (*grondslag*).
#[uniffi::remote(Enum)]
pub enum Grondslag {
    Convenant,
    Toestemming,
    Meldcode,
    WettelijkeTaak,
}

/// Why a device was wiped.
#[uniffi::remote(Enum)]
pub enum WipeReason {
    /// An administrator's wipe order (the device was revoked).
    Ordered,
    /// The passphrase was wrong too many times in a row.
    TooManyFailedUnlocks,
    /// The platform key that protected the data is gone for good.
    KeyInvalidated,
}

/// What a data directory holds, found without unlocking anything: the app's first screen.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum DeviceState {
    /// Nothing yet: offer to set up a device (`Device.init`).
    Absent,
    /// A device: ask for what unlocks it (`Device.open`).
    Present,
    /// A wiped device: say so (and why), then offer `Device.init` and a new enrolment code.
    /// `reason` and `wiped_at_ms` are `None` when the wipe's record is unreadable.
    Wiped { reason: Option<WipeReason>, wiped_at_ms: Option<i64> },
}

uniffi::custom_type!(PlanId, String, {
    remote,
    lower: |id| id.to_string(),
    try_lift: |text| parse_id(&text),
});

uniffi::custom_type!(EntityId, String, {
    remote,
    lower: |id| id.to_string(),
    try_lift: |text| parse_id(&text),
});

uniffi::custom_type!(DeviceId, String, {
    remote,
    lower: |id| id.to_string(),
    try_lift: |text| parse_id(&text),
});

/// One of the four parts of a plan that the privacy rules treat separately.
#[uniffi::remote(Enum)]
pub enum Compartment {
    Basis,
    Zorg,
    Veiligheid,
    Justitie,
}

/// Where the plan stands in its life cycle.
#[uniffi::remote(Enum)]
pub enum Phase {
    Aanmelding,
    Triage,
    Plan,
    Uitvoering,
    Evaluatie,
    Afschaling,
    Afgesloten,
}

#[uniffi::remote(Enum)]
pub enum EscalationLevel {
    Regulier,
    Lokaal,
    ZorgEnVeiligheidshuis,
}

/// A participant's professional role (regie is a function per plan, not a role).
#[uniffi::remote(Enum)]
pub enum Role {
    Wijkteam,
    VeiligThuis,
    Politie,
    Om,
    RaadVoorDeKinderbescherming,
    Reclassering,
    Ggz,
    Verslavingszorg,
    PgaExpert,
    ZvhProcesregisseur,
    ZvhMedewerker,
    Woningcorporatie,
    School,
    Gemeente,
    Overig,
}

#[uniffi::remote(Enum)]
pub enum GoalStatus {
    Open,
    InProgress,
    Achieved,
    NotAchieved,
    Cancelled,
}

#[uniffi::remote(Enum)]
pub enum ActionStatus {
    Todo,
    InProgress,
    Done,
    Cancelled,
}

#[uniffi::remote(Enum)]
pub enum NoteKind {
    HomeVisit,
    Note,
}

/// What became of a share: done at the server, or queued for the next sync (offline).
#[uniffi::remote(Enum)]
pub enum ShareOutcome {
    Done,
    Queued,
}

/// Who can read a compartment of a plan now ([`crate::device::Device::audience`]): what the
/// note editor shows as "zichtbaar voor: …" before saving.
#[uniffi::remote(Enum)]
pub enum Audience {
    /// Not enrolled: nothing written here leaves the device.
    ThisDeviceOnly,
    /// Enrolled, but the sharing policy has not arrived yet (before the first sync): say so,
    /// do not guess.
    PolicyNotYetKnown,
    /// The plan's participants whose role reads the compartment, and every role the policy
    /// lets read it (only those roles' devices get the key). `signed`: the names are the
    /// plan's signed membership (exactly who gets the key); otherwise the plan's own list
    /// ("volgens het plan").
    Readers { readers: Vec<Reader>, roles: Vec<String>, signed: bool },
}

/// A participant who can read a compartment: name, organisation and role as the plan lists
/// them.
#[uniffi::remote(Record)]
pub struct Reader {
    pub name: String,
    pub organisation: String,
    pub role: String,
}

/// Where the device stands with its server.
#[uniffi::remote(Enum)]
pub enum Enrolment {
    NotEnrolled,
    PendingApproval,
    Active,
}

/// A family member to add. `birth_date` is YYYY-MM-DD; `parental_authority` is gezag.
#[uniffi::remote(Record)]
pub struct NewMember {
    pub name: String,
    pub relation: String,
    pub birth_date: Option<String>,
    pub parental_authority: bool,
}

/// Someone who takes part in the plan, as the plan records it (shown in
/// [`PlanView::participants`]). Recording a participant gives no one access; `share_plan` does.
#[uniffi::remote(Record)]
pub struct NewParticipant {
    pub name: String,
    pub organisation: String,
    pub role: Role,
}

/// A change to a field that may be empty: set it, or clear it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum FieldChange {
    Set { value: String },
    Clear,
}

impl FieldChange {
    fn into_core(self) -> Option<String> {
        match self {
            FieldChange::Set { value } => Some(value),
            FieldChange::Clear => None,
        }
    }
}

/// Fields of a family member to change; a field left `None` stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct MemberUpdate {
    #[uniffi(default)]
    pub name: Option<String>,
    #[uniffi(default)]
    pub relation: Option<String>,
    /// YYYY-MM-DD, or cleared.
    #[uniffi(default)]
    pub birth_date: Option<FieldChange>,
    /// Holds parental authority (gezag).
    #[uniffi(default)]
    pub parental_authority: Option<bool>,
}

impl From<MemberUpdate> for eenplan_core::plan::MemberUpdate {
    fn from(update: MemberUpdate) -> Self {
        eenplan_core::plan::MemberUpdate {
            name: update.name,
            relation: update.relation,
            birth_date: update.birth_date.map(FieldChange::into_core),
            parental_authority: update.parental_authority,
        }
    }
}

/// Fields of an action to change; a field left `None` stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct ActionUpdate {
    #[uniffi(default)]
    pub title: Option<String>,
    #[uniffi(default)]
    pub status: Option<ActionStatus>,
    /// YYYY-MM-DD, or cleared.
    #[uniffi(default)]
    pub due: Option<FieldChange>,
    #[uniffi(default)]
    pub owner_org: Option<String>,
    /// The participant who does it (user id in the plan's membership).
    #[uniffi(default)]
    pub owner_user: Option<i64>,
}

impl From<ActionUpdate> for eenplan_core::plan::ActionUpdate {
    fn from(update: ActionUpdate) -> Self {
        eenplan_core::plan::ActionUpdate {
            title: update.title,
            status: update.status,
            due: update.due.map(FieldChange::into_core),
            owner_org: update.owner_org,
            owner_user: update.owner_user.map(Some),
        }
    }
}

/// An action under a goal: who does what, by when (YYYY-MM-DD).
#[uniffi::remote(Record)]
pub struct NewAction {
    pub goal: EntityId,
    pub title: String,
    pub owner_org: String,
    pub owner_user: Option<i64>,
    pub due: Option<String>,
}

/// The plan as screens show it. Statuses and phases are text, so that a value a newer app
/// wrote still shows; goals carry their life domain (`domains` lists the plan's domains in
/// order, so a screen groups goals per domain).
#[uniffi::remote(Record)]
pub struct PlanView {
    pub id: PlanId,
    pub family: String,
    pub phase: String,
    pub regisseur: Option<EntityId>,
    pub escalation_level: String,
    pub escalations: Vec<EscalationStep>,
    pub domains: Vec<String>,
    pub members: Vec<Member>,
    pub participants: Vec<Participant>,
    pub goals: Vec<Goal>,
    pub scores: Vec<Score>,
    pub actions: Vec<Action>,
    pub agreements: Vec<Agreement>,
    pub notes: Vec<Note>,
    pub safety_items: Vec<SafetyItem>,
    pub compartments: Vec<Compartment>,
    /// The people behind the device ids in `notes[].author`, `agreements[].author` and
    /// `escalations[].by`, as far as the device holds their certificates: show the name and
    /// organisation, not the id.
    pub people: Vec<Person>,
    /// Who takes part and who holds regie, from the plan's signed membership chain; `None`
    /// until the first sync after the plan was created. Show this, not `participants` or
    /// `regisseur` (which anyone could write into the plan).
    pub membership: Option<Membership>,
    /// Every contact card as written; [`Membership::participants`] carries the ones that
    /// count (written by the participant's own device).
    pub contacts: Vec<ContactCard>,
    pub evaluations: Vec<Evaluation>,
    pub meetings: Vec<Meeting>,
    /// The notes and safety items the regisseur put in the family's copy.
    pub family_copy_items: Vec<FamilyCopyItem>,
}

/// A planned evaluation of the plan with the family.
#[uniffi::remote(Record)]
pub struct Evaluation {
    pub id: EntityId,
    pub date: String,
    pub held: bool,
    pub created_at_ms: i64,
}

/// A case meeting (casusoverleg): attendees by user id.
#[uniffi::remote(Record)]
pub struct Meeting {
    pub id: EntityId,
    pub date: String,
    pub attendees: Vec<i64>,
    pub decisions: Vec<Decision>,
    pub recorded_by: String,
    pub created_at_ms: i64,
}

#[uniffi::remote(Record)]
pub struct Decision {
    pub text: String,
    pub action: Option<EntityId>,
}

/// A note or safety item the regisseur put in the family's copy.
#[uniffi::remote(Enum)]
pub enum FamilyCopyItem {
    Note { compartment: Compartment, id: EntityId },
    SafetyItem { id: EntityId },
}

/// A participant's contact details, as a device wrote them into the plan.
#[uniffi::remote(Record)]
pub struct ContactCard {
    pub user_id: i64,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub written_by: String,
}

/// Who takes part in a plan and who holds regie, as its signed chain says.
#[uniffi::remote(Record)]
pub struct Membership {
    pub regisseur: PlanParticipant,
    /// A warm handover: offered, not accepted yet. Show both until then.
    pub offered_to: Option<PlanParticipant>,
    pub level: String,
    pub participants: Vec<PlanParticipant>,
    pub steps: Vec<MembershipStep>,
}

/// A participant, as their certificate names them.
#[uniffi::remote(Record)]
pub struct PlanParticipant {
    pub user_id: i64,
    pub name: String,
    pub organisation: String,
    pub role: String,
    /// From the participant's own contact card in the plan.
    pub phone: Option<String>,
    pub email: Option<String>,
}

/// One step of the membership chain: `text` is the Dutch sentence to show.
#[uniffi::remote(Record)]
pub struct MembershipStep {
    pub seq: u32,
    pub at_ms: i64,
    pub by: String,
    pub act: String,
    pub text: String,
    pub level: Option<String>,
    pub grondslag: Option<String>,
    pub step: Option<EntityId>,
}

/// Who is behind a device (`device`, hex), as an administrator certified it.
#[uniffi::remote(Record)]
pub struct Person {
    pub device: String,
    pub name: String,
    pub organisation: String,
    pub role: String,
}

#[uniffi::remote(Record)]
pub struct EscalationStep {
    pub id: Option<EntityId>,
    pub level: String,
    pub regie_holder: Option<EntityId>,
    pub reason: String,
    pub by: String,
    pub at_ms: i64,
}

#[uniffi::remote(Record)]
pub struct Member {
    pub id: EntityId,
    pub name: String,
    pub relation: String,
    pub birth_date: Option<String>,
    pub parental_authority: bool,
    pub created_at_ms: i64,
}

#[uniffi::remote(Record)]
pub struct Participant {
    pub id: EntityId,
    pub name: String,
    pub organisation: String,
    pub role: String,
    pub created_at_ms: i64,
}

#[uniffi::remote(Record)]
pub struct Goal {
    pub id: EntityId,
    pub domain: String,
    pub title: String,
    pub status: String,
    pub description: String,
    pub created_at_ms: i64,
}

/// A ZRM score (1–5) of a member in a domain on a date.
#[uniffi::remote(Record)]
pub struct Score {
    pub member: EntityId,
    pub domain: String,
    pub date: String,
    pub score: i64,
}

#[uniffi::remote(Record)]
pub struct Action {
    pub id: EntityId,
    pub goal: EntityId,
    pub title: String,
    pub owner_org: String,
    pub owner_person: Option<String>,
    pub owner_user: Option<i64>,
    pub due: Option<String>,
    pub status: String,
    pub created_at_ms: i64,
}

/// An agreement (afspraak) made with the family.
#[uniffi::remote(Record)]
pub struct Agreement {
    pub id: EntityId,
    pub text: String,
    pub author: String,
    pub created_at_ms: i64,
}

/// A note; `text` positions for [`crate::Device::edit_note`] are UTF-16 code units of it.
#[uniffi::remote(Record)]
pub struct Note {
    pub id: EntityId,
    pub compartment: Compartment,
    pub kind: String,
    pub text: String,
    pub author: String,
    pub created_at_ms: i64,
    /// For a copy: where the note came from ("kopie uit zorg, geschreven door …").
    pub copied_from: Option<NoteOrigin>,
}

/// Where a copied note came from, as its copier recorded it.
#[uniffi::remote(Record)]
pub struct NoteOrigin {
    pub compartment: String,
    pub note: String,
    pub author: String,
    pub written_at_ms: i64,
}

#[uniffi::remote(Record)]
pub struct SafetyItem {
    pub id: EntityId,
    pub danger_statement: String,
    pub safety_goal: String,
    pub created_at_ms: i64,
}

/// A field that holds concurrent values, for the regisseur to settle. `id` names it in
/// [`crate::Device::settle_conflict`]; `label` says what it is in words.
#[uniffi::remote(Record)]
pub struct Conflict {
    pub id: String,
    pub compartment: Compartment,
    pub path: Vec<String>,
    pub label: String,
    pub values: Vec<ConflictValue>,
}

/// One of the concurrent values, with the device that wrote it and when (ms since the epoch).
#[uniffi::remote(Record)]
pub struct ConflictValue {
    pub value: FieldValue,
    pub author: Option<DeviceId>,
    /// The person behind `author`, when the device holds its certificate.
    pub author_person: Option<Person>,
    pub at_ms: Option<i64>,
}

/// A field's value as shown to people.
#[uniffi::remote(Enum)]
pub enum FieldValue {
    Text(String),
    Int(i64),
    Bool(bool),
    Null,
}

/// Where the device stands: enrolment, who it belongs to, what waits to be pushed.
#[uniffi::remote(Record)]
pub struct DeviceStatus {
    pub device_id: String,
    pub enrolment: Enrolment,
    pub server: Option<String>,
    pub user: Option<String>,
    pub organisation: Option<String>,
    pub role: Option<String>,
    pub lease_hours: Option<u32>,
    /// When the offline lease runs out (ms since the epoch); plans lock then until a sync.
    pub lease_expires_at_ms: Option<i64>,
    pub lease_expired: bool,
    /// The version of the sharing policy this device holds.
    pub policy_version: Option<u32>,
    pub pending_changes: u64,
    /// Shares of plans waiting for the next sync.
    pub queued_shares: u64,
    /// Received bundles waiting for a key (or for their author's certificate).
    pub parked_bundles: u64,
    pub cursor: u64,
}

/// The agenda across every plan on the device ([`crate::Device::agenda`]).
#[uniffi::remote(Record)]
pub struct Agenda {
    /// YYYY-MM-DD, in the Netherlands.
    pub today: String,
    /// Overdue first, then by date; conflicts last.
    pub items: Vec<AgendaItem>,
    /// Plans that could not be read (damaged), so that nothing is silently missing.
    pub unreadable: Vec<String>,
}

/// One thing on the agenda: its kind, the plan (open it with `plan`), the date, the words.
#[uniffi::remote(Record)]
pub struct AgendaItem {
    pub kind: AgendaKind,
    pub plan: PlanId,
    pub family: String,
    /// The due or evaluation date (YYYY-MM-DD); none for conflicts.
    pub date: Option<String>,
    /// What it is, in Dutch.
    pub text: String,
    /// The action or evaluation.
    pub entity: Option<EntityId>,
}

/// What an agenda item is; `agenda_kind_label` gives its Dutch words.
#[uniffi::remote(Enum)]
pub enum AgendaKind {
    ActionOverdue,
    EvaluationOverdue,
    ActionDue,
    EvaluationDue,
    /// Unsettled conflicts in a plan where this user holds regie.
    Conflicts,
}

/// An adoption (*vaststelling*) as this device judged it.
#[uniffi::remote(Record)]
pub struct Adoption {
    pub id: EntityId,
    pub version: u32,
    /// YYYY-MM-DD.
    pub date: String,
    pub at_ms: i64,
    /// The family's agreement, in the regisseur's words.
    pub with_family: String,
    /// The regisseur who signed, as the chain named them then (when known).
    pub signed_by: Option<PlanParticipant>,
    pub present: Vec<PlanParticipant>,
    pub compartments: Vec<Compartment>,
    pub check: AdoptionCheck,
}

/// Whether an adoption holds: show only `Verified` as adopted.
#[uniffi::remote(Enum)]
pub enum AdoptionCheck {
    /// Signed by the device of the plan's regisseur at that time, over content this device holds
    /// (or that an erasure re-sealed since).
    Verified,
    /// Cannot be checked yet; a sync brings what is missing.
    Pending { reason: String },
    /// Forged or altered: it is not an adoption.
    Refused { reason: String },
}

/// An adopted version as it was, with what changed since ("nog niet vastgesteld").
#[uniffi::remote(Record)]
pub struct AdoptedPlan {
    pub adoption: Adoption,
    pub view: PlanView,
    pub not_adopted: Vec<NotAdopted>,
}

/// One part of the plan that differs from the adopted version.
#[uniffi::remote(Record)]
pub struct NotAdopted {
    /// goal, action, agreement, member, score, evaluation, phase, family.
    pub kind: String,
    pub id: Option<EntityId>,
    /// added, changed, removed.
    pub change: String,
    /// What it is, in Dutch.
    pub label: String,
}

/// A decision of a case meeting; with `action`, it becomes an action in the same step.
#[uniffi::remote(Record)]
pub struct DecisionInput {
    pub text: String,
    pub action: Option<DecisionActionInput>,
}

/// Who does what the decision says (a participant's name), by when, towards which goal.
#[uniffi::remote(Record)]
pub struct DecisionActionInput {
    pub owner: String,
    pub due: Option<String>,
    pub goal: EntityId,
}

/// The ZRM scores of one member in one life domain over time.
#[uniffi::remote(Record)]
pub struct DomainTrend {
    pub domain: String,
    /// The domain as a heading ("Financiën").
    pub label: String,
    /// Oldest first.
    pub points: Vec<TrendPoint>,
    pub direction: Direction,
}

#[uniffi::remote(Record)]
pub struct TrendPoint {
    pub date: String,
    pub score: i64,
}

/// The last score against the first (up is better); `trend_label` gives the words.
#[uniffi::remote(Enum)]
pub enum Direction {
    Better,
    Worse,
    Same,
    Single,
}

/// What changed in a plan since this device last marked it reviewed ([`crate::Device::review`]).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Review {
    pub plan: PlanId,
    /// When the plan was last marked reviewed (`None`: never; the lines go back to its start).
    pub since_ms: Option<i64>,
    /// Oldest first.
    pub lines: Vec<ReviewLine>,
    /// Older lines left out to keep the review bounded.
    pub left_out: u64,
    /// What this review covers; pass it to `mark_reviewed_through` so that a change a sync
    /// brought after the review was shown is not marked seen.
    pub through: Vec<String>,
}

/// One thing another writer did: `who_label` and `text` make the sentence people read.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ReviewLine {
    pub at_ms: i64,
    pub compartment: Compartment,
    /// The person behind `device`, when this device holds its verified certificate.
    pub who: Option<Person>,
    /// "Wim de Vries (Wijkteam Noord)", or an unknown device, in the core's words.
    pub who_label: String,
    pub device: String,
    /// The Dutch sentence without who: "zette de status van actie ‘Huur betalen’ op Gedaan".
    pub text: String,
    pub entity: Option<EntityId>,
    /// How many changes the line stands for (typing collapses into one line).
    pub changes: u64,
}

impl From<eenplan_core::review::Review> for Review {
    fn from(review: eenplan_core::review::Review) -> Self {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        Review {
            plan: review.plan,
            since_ms: review.since_ms,
            lines: review
                .lines
                .into_iter()
                .map(|line| ReviewLine {
                    who_label: line.who_label(),
                    at_ms: line.at_ms,
                    compartment: line.compartment,
                    who: line.who,
                    device: line.device,
                    text: line.text,
                    entity: line.entity,
                    changes: count(line.changes),
                })
                .collect(),
            left_out: count(review.left_out),
            through: review.through,
        }
    }
}

/// Which vocabulary a code belongs to, for `display_label`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Vocabulary {
    Phase,
    Level,
    Role,
    GoalStatus,
    ActionStatus,
    NoteKind,
    Compartment,
    Domain,
}

/// One row of the plan list.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum PlanListEntry {
    /// A plan that opens.
    Plan { id: PlanId, family: String },
    /// A stored entry that could not be read; the other plans are unaffected.
    Damaged { detail: String },
}

impl From<eenplan_core::PlanListEntry> for PlanListEntry {
    fn from(entry: eenplan_core::PlanListEntry) -> Self {
        match entry {
            eenplan_core::PlanListEntry::Ok(plan) => PlanListEntry::Plan { id: plan.id, family: plan.family },
            eenplan_core::PlanListEntry::Damaged { detail } => PlanListEntry::Damaged { detail },
        }
    }
}

/// How to settle a conflict.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum Resolution {
    /// Keep the value at `index` (0-based) of [`Conflict::values`].
    Pick { index: i32 },
    /// Write a new value, given as text and checked like any edit of that field.
    Value { value: String },
}

impl TryFrom<Resolution> for eenplan_core::plan::Resolution {
    type Error = ApiError;

    fn try_from(resolution: Resolution) -> Result<Self, ApiError> {
        Ok(match resolution {
            Resolution::Pick { index } => eenplan_core::plan::Resolution::Pick(
                usize::try_from(index)
                    .map_err(|_| ApiError::invalid(format!("a value's index is 0 or more, not {index}")))?,
            ),
            Resolution::Value { value } => eenplan_core::plan::Resolution::Value(value),
        })
    }
}

/// A text offset or length from the host (a Kotlin `Int`): negative ones are refused here,
/// as [`ApiError::Invalid`], like any other bad input.
pub(crate) fn text_count(what: &str, n: i32) -> Result<usize, ApiError> {
    usize::try_from(n).map_err(|_| ApiError::invalid(format!("the {what} is 0 or more, not {n}")))
}

/// What one sync did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncSummary {
    pub pushed_bundles: u64,
    pub received_bundles: u64,
    pub applied_changes: u64,
    /// Plans that changed here, new ones included.
    pub plans_updated: Vec<PlanId>,
    /// Plans that arrived on this device for the first time.
    pub new_plans: Vec<PlanId>,
    /// Plans this device removed after the sync: closed, or no longer its user's, past the
    /// grace period. They are gone from the plan list.
    pub retired_plans: Vec<PlanId>,
    /// Bundles refused (by the server, or here), with the reason.
    pub refused: Vec<String>,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

impl From<SyncReport> for SyncSummary {
    fn from(report: SyncReport) -> Self {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        SyncSummary {
            pushed_bundles: count(report.pushed_bundles),
            received_bundles: count(report.received_bundles),
            applied_changes: count(report.applied_changes),
            plans_updated: report.plans_updated,
            new_plans: report.new_plans,
            retired_plans: report.retired_plans,
            refused: report.refused,
            bytes_up: report.bytes_up,
            bytes_down: report.bytes_down,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_negative_offset_or_index_from_the_host_is_invalid_input_not_a_panic() {
        assert_eq!(text_count("position", 7), Ok(7));
        assert!(
            matches!(text_count("position", -1), Err(ApiError::Invalid { reason }) if reason.contains("-1"))
        );
        let pick = eenplan_core::plan::Resolution::try_from(Resolution::Pick { index: -2 });
        assert!(matches!(pick, Err(ApiError::Invalid { .. })));
        let pick = eenplan_core::plan::Resolution::try_from(Resolution::Pick { index: 1 });
        assert_eq!(pick, Ok(eenplan_core::plan::Resolution::Pick(1)));
    }

    #[test]
    fn a_field_change_sets_or_clears_and_a_missing_one_keeps() {
        let update = eenplan_core::plan::MemberUpdate::from(MemberUpdate {
            birth_date: Some(FieldChange::Clear),
            relation: Some("oma".into()),
            ..MemberUpdate::default()
        });
        assert_eq!(update.birth_date, Some(None));
        assert_eq!(update.relation.as_deref(), Some("oma"));
        assert_eq!(update.name, None);
        let update = eenplan_core::plan::ActionUpdate::from(ActionUpdate {
            owner_user: Some(7),
            ..ActionUpdate::default()
        });
        assert_eq!(update.owner_user, Some(Some(7)));
        assert_eq!(update.due, None);
    }
}
