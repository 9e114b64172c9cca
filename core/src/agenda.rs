//! The agenda: across every plan on the device, what needs this user's attention — their own
//! actions that are overdue or due this week, evaluations due, and unsettled conflicts in the
//! plans where they hold regie. Read from the device's own copies: it works offline and never
//! waits on the network.

use serde::{Deserialize, Serialize};
use time::Duration;

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
}

/// Where a date falls: before today, within the week, or later.
fn timing(date: &str, today: time::Date) -> Option<bool> {
    let date = parse_date(date)?;
    if date < today {
        Some(true)
    } else if date < today + Duration::days(WEEK_DAYS) {
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
    out
}

impl Device {
    /// The agenda across every plan on this device, for this device's user.
    pub fn agenda(&mut self) -> Result<Agenda, CoreError> {
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

impl AgendaKind {
    /// Overdue before due, due before the rest.
    fn overdue_rank(self) -> u8 {
        match self {
            AgendaKind::ActionOverdue | AgendaKind::EvaluationOverdue => 0,
            AgendaKind::ActionDue | AgendaKind::EvaluationDue => 1,
            AgendaKind::Conflicts => 2,
        }
    }
}

/// The agenda as lines people read (the CLI's and a screen's text).
pub fn describe(item: &AgendaItem) -> String {
    let when = item.date.as_deref().map(crate::calendar::dutch_long_date).unwrap_or_default();
    format!("{}: {} — {} {when}", item.kind.label(), item.family, item.text).trim_end().to_owned()
}
