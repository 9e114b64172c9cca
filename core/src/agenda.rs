//! The agenda: across every plan on the device, what needs this user's attention — their own
//! actions that are overdue or due this week, evaluations due, and unsettled conflicts in the
//! plans where they hold regie. Read from the device's own copies: it works offline and never
//! waits on the network.

use serde::{Deserialize, Serialize};
use time::Duration;

use crate::audit::{Access, AuditAction};
use crate::calendar::{dutch_date, parse_date};
use crate::device::{Device, PlanListEntry};
use crate::error::CoreError;
use crate::ids::{EntityId, PlanId};
use crate::plan::ActionStatus;
use crate::plan::view::PlanView;

/// How far ahead "due this week" looks, today included.
pub const WEEK_DAYS: i64 = 7;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agenda {
    /// YYYY-MM-DD, in the Netherlands.
    pub today: String,
    /// Overdue first, then by date; conflicts last.
    pub items: Vec<AgendaItem>,
    /// Plans that could not be read (damaged): listed so that nothing is silently missing.
    pub unreadable: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgendaKind {
    ActionOverdue,
    EvaluationOverdue,
    ActionDue,
    EvaluationDue,
    /// Unsettled conflicts in a plan where this user holds regie.
    Conflicts,
}

impl AgendaKind {
    pub fn label(self) -> &'static str {
        match self {
            AgendaKind::ActionOverdue => "Actie te laat",
            AgendaKind::EvaluationOverdue => "Evaluatie te laat",
            AgendaKind::ActionDue => "Actie deze week",
            AgendaKind::EvaluationDue => "Evaluatie deze week",
            AgendaKind::Conflicts => "Tegenstrijdige wijzigingen",
        }
    }

    /// Overdue before due, due before the rest.
    fn overdue_rank(self) -> u8 {
        match self {
            AgendaKind::ActionOverdue | AgendaKind::EvaluationOverdue => 0,
            AgendaKind::ActionDue | AgendaKind::EvaluationDue => 1,
            AgendaKind::Conflicts => 2,
        }
    }
}

/// Where a date falls: before today, within the week, or later.
fn timing(date: &str, today: time::Date) -> Option<bool> {
    let date = parse_date(date)?;
    if date < today {
        Some(true)
    } else if today.checked_add(Duration::days(WEEK_DAYS)).is_none_or(|end| date < end) {
        Some(false)
    } else {
        None
    }
}

/// The agenda items one plan gives user `me`.
pub fn plan_items(view: &PlanView, me: i64, today: time::Date) -> Vec<AgendaItem> {
    let item = |kind, date: &str, text: String, entity| AgendaItem {
        kind,
        plan: view.id,
        family: view.family.clone(),
        date: Some(date.to_owned()),
        text,
        entity: Some(entity),
    };
    let open = |status: &str| {
        !matches!(status.parse::<ActionStatus>(), Ok(ActionStatus::Done | ActionStatus::Cancelled))
    };
    let mut out = Vec::new();
    for action in view.actions.iter().filter(|a| a.owner_user == Some(me) && open(&a.status)) {
        let Some(due) = &action.due else { continue };
        let Some(overdue) = timing(due, today) else { continue };
        let kind = if overdue { AgendaKind::ActionOverdue } else { AgendaKind::ActionDue };
        let text = format!("{} ({})", action.title, ActionStatus::label_of(&action.status));
        out.push(item(kind, due, text, action.id));
    }
    for evaluation in view.evaluations.iter().filter(|e| !e.held) {
        let Some(overdue) = timing(&evaluation.date, today) else { continue };
        let kind = if overdue { AgendaKind::EvaluationOverdue } else { AgendaKind::EvaluationDue };
        let text = format!("Evaluatie van het plan met het gezin {}", view.family);
        out.push(item(kind, &evaluation.date, text, evaluation.id));
    }
    sort_items(&mut out);
    out
}

/// Overdue first, then due, then the rest; by date within each; the family and the text
/// break ties so that every device lists the same agenda in the same order.
fn sort_items(items: &mut [AgendaItem]) {
    items.sort_by(|a, b| {
        (a.kind.overdue_rank(), &a.date, a.kind, &a.family, &a.text).cmp(&(
            b.kind.overdue_rank(),
            &b.date,
            b.kind,
            &b.family,
            &b.text,
        ))
    });
}

impl Device {
    /// The agenda across every plan on this device, for this device's user. Recorded as one
    /// `Read` (object `agenda`) of each plan it shows lines of, in one transaction: a plan
    /// it looked at but showed nothing of reached no one's eyes (see [`crate::audit`]).
    pub fn agenda(&mut self) -> Result<Agenda, CoreError> {
        self.audited(Access::of(AuditAction::Read).object("agenda"), |d| {
            let agenda = d.agenda_of_plans()?;
            let mut shown: Vec<PlanId> = agenda.items.iter().map(|i| i.plan).collect();
            shown.sort_unstable();
            shown.dedup();
            let reads: Vec<Access> =
                shown.into_iter().map(|p| Access::on(AuditAction::Read, p).object("agenda")).collect();
            d.record(&reads)?;
            d.audit_recorded();
            Ok(agenda)
        })
    }

    fn agenda_of_plans(&mut self) -> Result<Agenda, CoreError> {
        let today = dutch_date(self.now_ms());
        let mut agenda = Agenda { today: today.to_string(), items: Vec::new(), unreadable: Vec::new() };
        let Some(me) = self.own_user_id()? else { return Ok(agenda) };
        for entry in self.list_plans()? {
            let summary = match entry {
                PlanListEntry::Ok(summary) => summary,
                PlanListEntry::Damaged { detail } => {
                    agenda.unreadable.push(detail);
                    continue;
                }
            };
            match self.plan_agenda(&summary.id, me, today) {
                Ok(items) => agenda.items.extend(items),
                Err(CoreError::Plan(e)) => agenda.unreadable.push(format!("{}: {e}", summary.family)),
                Err(e) => return Err(e),
            }
        }
        agenda.items.sort_by(|a, b| {
            (a.kind.overdue_rank(), &a.date, a.kind).cmp(&(b.kind.overdue_rank(), &b.date, b.kind))
        });
        Ok(agenda)
    }

    fn plan_agenda(
        &mut self,
        plan: &PlanId,
        me: i64,
        today: time::Date,
    ) -> Result<Vec<AgendaItem>, CoreError> {
        let view = self.read(plan)?;
        let mut items = plan_items(&view, me, today);
        let regisseur = view.membership.as_ref().map(|m| m.regisseur.user_id);
        if regisseur == Some(me) {
            let conflicts = self.conflicts(plan)?.len();
            if conflicts > 0 {
                items.push(AgendaItem {
                    kind: AgendaKind::Conflicts,
                    plan: *plan,
                    family: view.family.clone(),
                    date: None,
                    text: format!("{conflicts} tegenstrijdige wijziging(en) te beslissen"),
                    entity: None,
                });
            }
        }
        Ok(items)
    }
}

/// The agenda as lines people read (the CLI's and a screen's text).
pub fn describe(item: &AgendaItem) -> String {
    let when = item.date.as_deref().map(crate::calendar::dutch_long_date).unwrap_or_default();
    format!("{}: {} — {} {when}", item.kind.label(), item.family, item.text).trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::ids::DeviceId;
    use crate::plan::{ActionUpdate, NewAction, NewGoal, Plan};

    #[test]
    fn only_my_open_actions_overdue_or_due_within_the_week_and_unheld_evaluations_are_listed() {
        let clock = Arc::new(ManualClock::new(0));
        let author = DeviceId::from_signing_public_key(&[1; 32]);
        let mut plan = Plan::create(PlanId::random(), author, "Jansen", None, clock).unwrap();
        let goal = plan.add_goal(NewGoal { domain: "financiën".into(), title: "Schulden".into() }).unwrap();
        let mut add = |title: &str, owner: i64, due: &str| {
            let new = NewAction {
                goal,
                title: title.into(),
                owner_org: "Wijkteam".into(),
                owner_user: Some(owner),
                due: Some(due.into()),
            };
            plan.add_action(new).unwrap()
        };
        let late = add("te laat", 1, "2026-11-20");
        let today = add("vandaag", 1, "2026-12-03");
        let last_day = add("over zes dagen", 1, "2026-12-09");
        add("over zeven dagen", 1, "2026-12-10");
        add("van een ander", 2, "2026-11-20");
        let done = add("gedaan", 1, "2026-11-20");
        plan.update_action(done, ActionUpdate { status: Some(ActionStatus::Done), ..Default::default() })
            .unwrap();
        let evaluation = plan.add_evaluation("2026-12-01").unwrap();
        let held = plan.add_evaluation("2026-12-04").unwrap();
        plan.mark_evaluation_held(held).unwrap();
        let view = plan.view().unwrap();
        let items = plan_items(&view, 1, parse_date("2026-12-03").unwrap());
        let listed: Vec<(AgendaKind, Option<EntityId>)> = items.iter().map(|i| (i.kind, i.entity)).collect();
        assert_eq!(
            listed,
            [
                (AgendaKind::ActionOverdue, Some(late)),
                (AgendaKind::EvaluationOverdue, Some(evaluation)),
                (AgendaKind::ActionDue, Some(today)),
                (AgendaKind::ActionDue, Some(last_day)),
            ]
        );
    }
}
