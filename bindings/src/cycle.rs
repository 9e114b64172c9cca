//! The working cycle for phone apps (issue 11): the agenda across plans, adopting the plan
//! (*vaststellen*) and the adopted versions, evaluations, case meetings whose decisions become
//! actions, action owners as participants, the ZRM trend; and the Dutch display labels and
//! dates, so that apps never keep translations of their own; the family's copy as HTML.
//!
//! Every call here is local: it reads or edits the device's own copies and never waits on the
//! network, so it is synchronous like the other edits. What the core returns crosses as the
//! core's own types (declared in `types.rs`).

use eenplan_core::adoption::{AdoptedPlan, Adoption};
use eenplan_core::agenda::{Agenda, AgendaItem, AgendaKind};
use eenplan_core::cycle::{DecisionInput, Direction, DomainTrend};
use eenplan_core::ids::{EntityId, PlanId};
use eenplan_core::plan::view::FamilyCopyItem;
use eenplan_core::plan::{
    ActionStatus, Compartment, EscalationLevel, GoalStatus, NoteKind, Phase, Role, vocab,
};

use crate::device::Device;
use crate::error::ApiError;
use crate::types::{Review, Vocabulary};

#[uniffi::export]
impl Device {
    /// What needs this user's attention across every plan on the device: their own actions
    /// overdue or due this week, evaluations due, unsettled conflicts where they hold regie.
    /// The phone's start screen; read from the device's own copies (works offline).
    pub fn agenda(&self) -> Result<Agenda, ApiError> {
        self.with(|d| d.agenda())
    }

    /// Adopts the plan as it stands (*vaststellen*, the regisseur only): `with_family` is the
    /// family's agreement in the regisseur's words, `present` names the participants present.
    /// Returns the new version number. Signed on this device; a sync carries it to the others.
    pub fn adopt(&self, plan: PlanId, with_family: String, present: Vec<String>) -> Result<u32, ApiError> {
        self.with(|d| d.adopt(&plan, &with_family, &present))
    }

    /// Every adoption of the plan, oldest first, each as this device judged it
    /// ([`eenplan_core::adoption::AdoptionCheck`]: verified, pending, refused).
    pub fn adoptions(&self, plan: PlanId) -> Result<Vec<Adoption>, ApiError> {
        self.with(|d| d.adoptions(&plan))
    }

    /// The newest verified adoption, if any.
    pub fn latest_adoption(&self, plan: PlanId) -> Result<Option<Adoption>, ApiError> {
        self.with(|d| d.latest_adoption(&plan))
    }

    /// A verified adopted version (`None`: the newest) as it was, with what changed since
    /// ("nog niet vastgesteld"). `Invalid` when there is no such verified version.
    pub fn adopted_plan(&self, plan: PlanId, version: Option<u32>) -> Result<AdoptedPlan, ApiError> {
        self.with(|d| d.adopted_plan(&plan, version))
    }

    /// Records a case meeting (*casusoverleg*) on `date` (YYYY-MM-DD): `attendees` are
    /// participants by name; each decision with an owner becomes an action in the same step.
    pub fn record_meeting(
        &self,
        plan: PlanId,
        date: String,
        attendees: Vec<String>,
        decisions: Vec<DecisionInput>,
    ) -> Result<EntityId, ApiError> {
        self.with(|d| d.record_meeting(&plan, &date, &attendees, decisions))
    }

    /// Plans an evaluation of the plan with the family on `date` (YYYY-MM-DD).
    pub fn add_evaluation(&self, plan: PlanId, date: String) -> Result<EntityId, ApiError> {
        self.with(|d| d.edit(&plan, |p| p.add_evaluation(&date)))
    }

    /// The evaluation `evaluation` took place (it is no longer on the agenda).
    pub fn evaluation_held(&self, plan: PlanId, evaluation: EntityId) -> Result<(), ApiError> {
        self.with(|d| d.evaluation_held(&plan, evaluation))
    }

    /// The ZRM trend of a family member (by name or id) per life domain.
    pub fn scores(&self, plan: PlanId, member: String) -> Result<Vec<DomainTrend>, ApiError> {
        self.with(|d| d.scores(&plan, &member))
    }

    /// Makes a participant (by name, as the plan's membership lists them, or by user id)
    /// the owner of an action.
    pub fn set_action_owner(&self, plan: PlanId, action: EntityId, owner: String) -> Result<(), ApiError> {
        self.with(|d| d.set_action_owner(&plan, action, &owner))
    }
}

/// The Dutch display label of a stored code (a phase, level, role, status, note kind,
/// compartment or life domain), from the core's one list of labels. A code this version does
/// not know (written by a newer app) is shown as it is.
#[uniffi::export]
pub fn display_label(vocabulary: Vocabulary, code: String) -> String {
    match vocabulary {
        Vocabulary::Phase => Phase::label_of(&code),
        Vocabulary::Level => EscalationLevel::label_of(&code),
        Vocabulary::Role => Role::label_of(&code),
        Vocabulary::GoalStatus => GoalStatus::label_of(&code),
        Vocabulary::ActionStatus => ActionStatus::label_of(&code),
        Vocabulary::NoteKind => NoteKind::label_of(&code),
        Vocabulary::Compartment => code.parse::<Compartment>().map_or(code, |c| c.label().to_owned()),
        Vocabulary::Domain => vocab::domain_label(&code),
    }
}

/// "2026-12-03" → "3 december 2026"; text that is not such a date comes back as it is.
#[uniffi::export]
pub fn dutch_date(text: String) -> String {
    eenplan_core::calendar::dutch_long_date(&text)
}

/// What an agenda item's kind is called ("Actie te laat", "Evaluatie deze week", …).
#[uniffi::export]
pub fn agenda_kind_label(kind: AgendaKind) -> String {
    kind.label().to_owned()
}

/// An agenda item as one line people read (the CLI's words).
#[uniffi::export]
pub fn agenda_line(item: AgendaItem) -> String {
    eenplan_core::agenda::describe(&item)
}

/// A ZRM trend's direction in words ("beter", "slechter", "gelijk", "één meting").
#[uniffi::export]
pub fn trend_label(direction: Direction) -> String {
    direction.label().to_owned()
}

/// What a screen showing plan content tells its user: what they see and change is recorded
/// in the access log (NEN 7513), without the plan's content. The core's sentence.
#[uniffi::export]
pub fn access_log_notice() -> String {
    eenplan_core::audit::notice().to_owned()
}

/// A role as people read it ("Raad voor de Kinderbescherming"), for pickers that hold the enum.
#[uniffi::export]
pub fn role_label(role: Role) -> String {
    role.label().to_owned()
}

/// An escalation level as people read it ("Zorg- en Veiligheidshuis").
#[uniffi::export]
pub fn level_label(level: EscalationLevel) -> String {
    level.label().to_owned()
}

#[uniffi::export]
impl Device {
    /// What changed in the plan since this device last marked it reviewed: others' changes,
    /// in the compartments it holds, as Dutch lines (who, what, when). Local.
    pub fn review(&self, plan: PlanId) -> Result<Review, ApiError> {
        self.with(|d| d.review(&plan)).map(Review::from)
    }

    /// Marks what a review showed ([`Review::through`]) as reviewed: the next review shows
    /// only what came after it, including what a sync brought while it was on screen.
    pub fn mark_reviewed_through(&self, plan: PlanId, through: Vec<String>) -> Result<(), ApiError> {
        self.with(|d| d.mark_reviewed_through(&plan, &through))
    }

    /// Marks everything this device holds of the plan now as reviewed.
    pub fn mark_reviewed(&self, plan: PlanId) -> Result<(), ApiError> {
        self.with(|d| d.mark_reviewed(&plan))
    }

    /// The family's copy of the plan (*kopie voor het gezin*) as one HTML page that prints on
    /// A4: what the family reads (no notes, nothing from zorg, veiligheid or justitie unless
    /// the regisseur put it in), with the adopted version. Local: share it or hand it to the
    /// platform's print service (Android `PrintManager` through a `WebView`).
    pub fn family_copy_html(&self, plan: PlanId) -> Result<String, ApiError> {
        let copy = self.with(|d| d.family_copy(&plan))?;
        Ok(copy.to_html()?)
    }

    /// Puts a note or safety item in the family's copy, or takes it out (the regisseur).
    pub fn include_in_family_copy(
        &self,
        plan: PlanId,
        item: FamilyCopyItem,
        included: bool,
    ) -> Result<(), ApiError> {
        self.with(|d| d.include_in_family_copy(&plan, item, included))
    }
}
