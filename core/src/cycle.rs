//! The working cycle on the device: actions owned by participants (not free text), case
//! meetings whose attendees and action owners are participants of the signed chain, and the
//! ZRM trend that shows whether help is working. The plan-level records are in
//! `plan/cycle.rs`; who is a participant comes from the verified membership chain.

use serde::{Deserialize, Serialize};

use crate::audit::{Access, AuditAction};
use crate::device::Device;
use crate::error::CoreError;
use crate::ids::{EntityId, PlanId};
use crate::plan::cycle::{DecisionAction, NewDecision, NewMeeting};
use crate::plan::view::PlanView;
use crate::plan::{ActionUpdate, NewAction, ValidationError, vocab};
use crate::regie::participant_named;

/// A decision to record: its text, and when it makes an action, who does it, by when and
/// towards which goal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionInput {
    pub text: String,
    pub action: Option<DecisionActionInput>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionActionInput {
    /// A participant's name (or user id).
    pub owner: String,
    pub due: Option<String>,
    pub goal: EntityId,
}

/// Scores of one member in one life domain over time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainTrend {
    pub domain: String,
    /// The domain as a heading ("Financiën").
    pub label: String,
    /// Oldest first.
    pub points: Vec<TrendPoint>,
    pub direction: Direction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrendPoint {
    pub date: String,
    pub score: i64,
}

/// The last score against the first: on the ZRM scale 1 is acute trouble and 5 fully
/// self-sufficient, so up is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Better,
    Worse,
    Same,
    /// One score: no trend yet.
    Single,
}

impl Direction {
    pub fn label(self) -> &'static str {
        match self {
            Direction::Better => "beter",
            Direction::Worse => "slechter",
            Direction::Same => "gelijk",
            Direction::Single => "één meting",
        }
    }
}

/// The ZRM trend of `member` per domain, in the plan's domain order.
pub fn score_trend(view: &PlanView, member: EntityId) -> Vec<DomainTrend> {
    view.domains
        .iter()
        .filter_map(|domain| {
            let mut points: Vec<TrendPoint> = view
                .scores
                .iter()
                .filter(|s| s.member == member && &s.domain == domain)
                .map(|s| TrendPoint { date: s.date.clone(), score: s.score })
                .collect();
            points.sort_by(|a, b| a.date.cmp(&b.date));
            let (first, last) = (points.first()?.score, points.last()?.score);
            let direction = match (points.len(), last.cmp(&first)) {
                (1, _) => Direction::Single,
                (_, std::cmp::Ordering::Greater) => Direction::Better,
                (_, std::cmp::Ordering::Less) => Direction::Worse,
                (_, std::cmp::Ordering::Equal) => Direction::Same,
            };
            Some(DomainTrend {
                domain: domain.clone(),
                label: vocab::domain_label(domain),
                points,
                direction,
            })
        })
        .collect()
}

/// The family member `name` names: by id, or exactly by name (one only).
pub fn member_named(view: &PlanView, name: &str) -> Result<EntityId, CoreError> {
    let name = name.trim();
    if let Ok(id) = name.parse::<EntityId>()
        && view.members.iter().any(|m| m.id == id)
    {
        return Ok(id);
    }
    let found: Vec<EntityId> =
        view.members.iter().filter(|m| m.name.eq_ignore_ascii_case(name)).map(|m| m.id).collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(CoreError::NotAllowed(format!("geen gezinslid {name:?} in dit plan"))),
        _ => Err(CoreError::NotAllowed(format!("meer dan één gezinslid heet {name:?}; geef het nummer"))),
    }
}

/// The one participant whose name is `text` (trimmed, case ignored), for the free-text
/// owners earlier versions wrote.
fn unique_participant(view: &PlanView, text: &str) -> Option<i64> {
    let membership = view.membership.as_ref()?;
    let mut found =
        membership.participants.iter().filter(|p| p.name.trim().eq_ignore_ascii_case(text.trim()));
    let one = found.next()?;
    found.next().is_none().then_some(one.user_id)
}

/// Fills in `owner_user` of actions whose free-text owner names exactly one participant:
/// how a device reads plans written before owners were participants.
pub(crate) fn resolve_owners(view: &mut PlanView) {
    let resolved: Vec<Option<i64>> = view
        .actions
        .iter()
        .map(|a| match (a.owner_user, &a.owner_person) {
            (None, Some(text)) => unique_participant(view, text),
            (user, _) => user,
        })
        .collect();
    for (action, user) in view.actions.iter_mut().zip(resolved) {
        action.owner_user = user;
    }
}

/// What [`Device::migrate_action_owners`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerMigration {
    /// Actions whose free-text owner now names a participant.
    pub migrated: Vec<EntityId>,
    /// Actions whose free-text owner names no participant, or more than one: the regisseur
    /// sets these by hand.
    pub unresolved: Vec<(EntityId, String)>,
}

impl Device {
    /// The user id of the participant `name` names in the plan's signed chain.
    pub fn participant_user(&self, plan: &PlanId, name: &str) -> Result<i64, CoreError> {
        participant_named(&self.held_roster(plan)?, name)
    }

    /// Adds an action whose owner is the participant `owner` names.
    pub fn add_action_for(
        &mut self,
        plan: &PlanId,
        action: NewAction,
        owner: Option<&str>,
    ) -> Result<EntityId, CoreError> {
        self.audited(Access::on(AuditAction::Change, *plan), |d| {
            d.add_action_for_recorded(plan, action, owner)
        })
    }

    fn add_action_for_recorded(
        &mut self,
        plan: &PlanId,
        action: NewAction,
        owner: Option<&str>,
    ) -> Result<EntityId, CoreError> {
        let owner_user = owner.map(|name| self.participant_user(plan, name)).transpose()?;
        self.edit(plan, |p| {
            p.add_action(NewAction { owner_user: owner_user.or(action.owner_user), ..action })
        })
    }

    /// Makes the participant `owner` names the owner of an action.
    pub fn set_action_owner(
        &mut self,
        plan: &PlanId,
        action: EntityId,
        owner: &str,
    ) -> Result<(), CoreError> {
        self.audited(Access::on(AuditAction::Change, *plan), |d| {
            d.set_action_owner_recorded(plan, action, owner)
        })
    }

    fn set_action_owner_recorded(
        &mut self,
        plan: &PlanId,
        action: EntityId,
        owner: &str,
    ) -> Result<(), CoreError> {
        let user = self.participant_user(plan, owner)?;
        let update = ActionUpdate { owner_user: Some(Some(user)), ..ActionUpdate::default() };
        self.edit(plan, |p| p.update_action(action, update))
    }

    /// Writes the participant each free-text owner names, once, for the plan's regisseur:
    /// the migration from the free-text owners of earlier versions. Devices read such owners
    /// the same way before it runs ([`resolve_owners`]), so nothing waits for it.
    pub fn migrate_action_owners(&mut self, plan: &PlanId) -> Result<OwnerMigration, CoreError> {
        self.audited(Access::on(AuditAction::Change, *plan), |d| d.migrate_action_owners_recorded(plan))
    }

    fn migrate_action_owners_recorded(&mut self, plan: &PlanId) -> Result<OwnerMigration, CoreError> {
        self.roster_as_regisseur(plan)?;
        let view = self.read(plan)?;
        let mut report = OwnerMigration { migrated: Vec::new(), unresolved: Vec::new() };
        for action in view.actions.iter().filter(|a| a.owner_person.is_some()) {
            let text = action.owner_person.clone().unwrap_or_default();
            match unique_participant(&view, &text) {
                Some(user) => {
                    let update = ActionUpdate { owner_user: Some(Some(user)), ..ActionUpdate::default() };
                    self.edit(plan, |p| p.update_action(action.id, update))?;
                    report.migrated.push(action.id);
                }
                None => report.unresolved.push((action.id, text)),
            }
        }
        Ok(report)
    }

    /// Records a case meeting: attendees and action owners are participants by name; each
    /// decision that names an owner becomes an action in the same step.
    pub fn record_meeting(
        &mut self,
        plan: &PlanId,
        date: &str,
        attendees: &[String],
        decisions: Vec<DecisionInput>,
    ) -> Result<EntityId, CoreError> {
        self.audited(Access::on(AuditAction::Change, *plan), |d| {
            d.record_meeting_recorded(plan, date, attendees, decisions)
        })
    }

    fn record_meeting_recorded(
        &mut self,
        plan: &PlanId,
        date: &str,
        attendees: &[String],
        decisions: Vec<DecisionInput>,
    ) -> Result<EntityId, CoreError> {
        let attendees = attendees.iter().map(|a| self.participant_user(plan, a)).collect::<Result<_, _>>()?;
        let view = self.read(plan)?;
        let mut checked = Vec::new();
        for decision in decisions {
            let action = match decision.action {
                Some(a) => {
                    let owner_user = self.participant_user(plan, &a.owner)?;
                    let owner_org =
                        view.participant(owner_user).map(|p| p.organisation.clone()).unwrap_or_default();
                    Some(DecisionAction { goal: a.goal, owner_user, owner_org, due: a.due })
                }
                None => None,
            };
            checked.push(NewDecision { text: decision.text, action });
        }
        let meeting = NewMeeting { date: date.to_owned(), attendees, decisions: checked };
        self.edit(plan, |p| p.add_meeting(meeting))
    }

    /// The ZRM trend of the family member `member` names (a name or an id).
    pub fn scores(&mut self, plan: &PlanId, member: &str) -> Result<Vec<DomainTrend>, CoreError> {
        self.audited(Access::on(AuditAction::Read, *plan).object("scores"), |d| {
            d.scores_recorded(plan, member)
        })
    }

    fn scores_recorded(&mut self, plan: &PlanId, member: &str) -> Result<Vec<DomainTrend>, CoreError> {
        let view = self.read(plan)?;
        let member = member_named(&view, member)?;
        Ok(score_trend(&view, member))
    }

    /// The evaluation `id` took place.
    pub fn evaluation_held(&mut self, plan: &PlanId, id: EntityId) -> Result<(), CoreError> {
        self.edit(plan, |p| p.mark_evaluation_held(id))
    }
}

/// The goal `text` names: its id, a unique id prefix (4 characters or more), or its exact
/// title.
pub fn goal_named(view: &PlanView, text: &str) -> Result<EntityId, CoreError> {
    let text = text.trim();
    let names = |g: &&crate::plan::view::Goal| {
        let id = g.id.to_string();
        id == text || g.title == text || (text.len() >= 4 && id.starts_with(text))
    };
    let found: Vec<EntityId> = view.goals.iter().filter(names).map(|g| g.id).collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(crate::plan::PlanError::from(ValidationError::InvalidValue {
            field: "goal",
            value: text.chars().take(64).collect(),
            allowed: "a goal's id or title in this plan".into(),
        })
        .into()),
        _ => Err(CoreError::NotAllowed(format!("meer dan één doel past bij {text:?}; geef het nummer"))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::ids::DeviceId;
    use crate::plan::{NewMember, Plan};
    use crate::regie::{Membership, PlanParticipant};

    fn participant(user_id: i64, name: &str) -> PlanParticipant {
        PlanParticipant {
            user_id,
            name: name.into(),
            organisation: "Wijkteam".into(),
            role: "wijkteam".into(),
            phone: None,
            email: None,
        }
    }

    #[test]
    fn the_trend_per_domain_runs_oldest_first_and_says_whether_help_is_working() {
        let clock = Arc::new(ManualClock::new(0));
        let author = DeviceId::from_signing_public_key(&[1; 32]);
        let mut plan = Plan::create(PlanId::random(), author, "Jansen", None, clock).unwrap();
        let new = NewMember {
            name: "Petra".into(),
            relation: "moeder".into(),
            birth_date: None,
            parental_authority: true,
        };
        let petra = plan.add_member(new).unwrap();
        for (domain, date, score) in [
            ("financiën", "2026-11-01", 4),
            ("financiën", "2026-09-01", 2),
            ("huisvesting", "2026-09-01", 3),
            ("huisvesting", "2026-11-01", 2),
            ("justitie", "2026-11-01", 5),
        ] {
            plan.set_score(petra, domain, date, score).unwrap();
        }
        let view = plan.view().unwrap();
        let trend = score_trend(&view, petra);
        let summary: Vec<(&str, Vec<i64>, Direction)> = trend
            .iter()
            .map(|t| (t.label.as_str(), t.points.iter().map(|p| p.score).collect(), t.direction))
            .collect();
        assert_eq!(
            summary,
            [
                ("Financiën", vec![2, 4], Direction::Better),
                ("Huisvesting", vec![3, 2], Direction::Worse),
                ("Justitie", vec![5], Direction::Single),
            ]
        );
        assert_eq!(member_named(&view, "petra").unwrap(), petra);
        assert!(member_named(&view, "Onbekend").is_err());
    }

    #[test]
    fn a_free_text_owner_that_names_exactly_one_participant_reads_as_that_participant() {
        let clock = Arc::new(ManualClock::new(0));
        let author = DeviceId::from_signing_public_key(&[1; 32]);
        let plan = Plan::create(PlanId::random(), author, "Jansen", None, clock).unwrap();
        let mut view = plan.view().unwrap();
        let action = |owner: Option<&str>, user: Option<i64>| crate::plan::view::Action {
            id: EntityId::random(),
            goal: EntityId::random(),
            title: "Bellen".into(),
            owner_org: "Wijkteam".into(),
            owner_person: owner.map(str::to_owned),
            owner_user: user,
            due: None,
            status: "todo".into(),
            created_at_ms: 0,
        };
        view.actions =
            vec![action(Some(" wim "), None), action(Some("Ans"), None), action(Some("Gert"), Some(9))];
        view.membership = Some(Membership {
            regisseur: participant(1, "Wim"),
            offered_to: None,
            level: "lokaal".into(),
            participants: vec![participant(1, "Wim"), participant(2, "Ans"), participant(3, "Ans")],
            steps: Vec::new(),
        });
        resolve_owners(&mut view);
        let owners: Vec<Option<i64>> = view.actions.iter().map(|a| a.owner_user).collect();
        assert_eq!(owners, [Some(1), None, Some(9)], "two participants named Ans: no guess");
    }
}
