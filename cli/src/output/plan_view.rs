//! A plan for people to read, in Dutch: goals grouped per life domain with their scores and
//! actions, notes per compartment. Vocabularies show their Dutch labels (the JSON keeps the
//! codes). Empty sections are left out to keep it short. Parts changed since the newest
//! adopted version are marked "nog niet vastgesteld".

use std::collections::BTreeSet;

use eenplan_core::EntityId;
use eenplan_core::calendar::dutch_long_date;
use eenplan_core::plan::Compartment;
use eenplan_core::plan::view::{Action, Goal, PlanView, Score};
use eenplan_core::plan::vocab::{
    ActionStatus, EscalationLevel, GoalStatus, NoteKind, Phase, Role, domain_label,
};

use super::{Lines, iso_utc};

/// What the plan text marks: the newest adopted version, and the entities changed since.
#[derive(Debug, Default)]
pub struct Marks {
    pub adopted: Option<(u32, String)>,
    pub not_adopted: BTreeSet<EntityId>,
}

const NOT_ADOPTED: &str = "  (nog niet vastgesteld)";

pub fn plan_view_text(view: &PlanView) -> String {
    plan_view_text_marked(view, &Marks::default())
}

pub fn plan_view_text_marked(view: &PlanView, marks: &Marks) -> String {
    let mut out = Lines::default();
    header(&mut out, view, marks);
    members(&mut out, view);
    participants(&mut out, view);
    escalations(&mut out, view);
    goals(&mut out, view, marks);
    agreements(&mut out, view, marks);
    cycle(&mut out, view);
    notes(&mut out, view);
    safety(&mut out, view);
    out.finish()
}

fn mark(marks: &Marks, id: EntityId) -> &'static str {
    if marks.adopted.is_some() && marks.not_adopted.contains(&id) { NOT_ADOPTED } else { "" }
}

fn participant_name(view: &PlanView, id: EntityId) -> String {
    view.participants
        .iter()
        .find(|p| p.id == id)
        .map_or_else(|| format!("deelnemer {id}"), |p| p.name.clone())
}

/// Who a device is: "Wim de Vries (Wijkteam Noord)" when its certificate is known here, else
/// the start of its id.
fn writer_name(view: &PlanView, device: &str) -> String {
    view.people
        .iter()
        .find(|p| p.device == device)
        .map_or_else(|| format!("apparaat {}", short(device)), |p| format!("{} ({})", p.name, p.organisation))
}

fn member_name(view: &PlanView, id: EntityId) -> String {
    view.members.iter().find(|m| m.id == id).map_or_else(|| format!("gezinslid {id}"), |m| m.name.clone())
}

/// Authors are device ids; eight characters tell a handful of devices apart.
fn short(device: &str) -> &str {
    device.get(..8).unwrap_or(device)
}

fn header(out: &mut Lines, view: &PlanView, marks: &Marks) {
    out.line(0, &view.family);
    out.line(2, format!("plan          {}", view.id));
    out.line(2, format!("fase          {}", Phase::label_of(&view.phase)));
    if let Some((version, date)) = &marks.adopted {
        out.line(2, format!("vastgesteld   versie {version} op {}", dutch_long_date(date)));
    }
    let regie = view
        .escalations
        .last()
        .and_then(|step| step.regie_holder)
        .map(|holder| format!(" (regie: {})", participant_name(view, holder)))
        .unwrap_or_default();
    match &view.membership {
        Some(membership) => {
            out.line(2, format!("niveau        {}", EscalationLevel::label_of(&view.escalation_level)));
            let who = |p: &eenplan_core::regie::PlanParticipant| format!("{} ({})", p.name, p.organisation);
            out.line(2, format!("regisseur     {}", who(&membership.regisseur)));
            if let Some(offered) = &membership.offered_to {
                out.line(2, format!("regie aangeboden aan {} (nog niet aanvaard)", who(offered)));
            }
        }
        None => {
            out.line(
                2,
                format!("niveau        {}{regie}", EscalationLevel::label_of(&view.escalation_level)),
            );
            if let Some(regisseur) = view.regisseur {
                out.line(2, format!("regisseur     {}", participant_name(view, regisseur)));
            }
        }
    }
    let held: Vec<&str> = view.compartments.iter().map(|c| c.label()).collect();
    out.line(2, format!("delen         {}", held.join(", ")));
}

fn members(out: &mut Lines, view: &PlanView) {
    if view.members.is_empty() {
        return;
    }
    out.blank();
    out.line(0, "Gezin");
    for m in &view.members {
        let mut about = vec![m.relation.clone()];
        if let Some(born) = &m.birth_date {
            about.push(format!("geboren {}", dutch_long_date(born)));
        }
        if m.parental_authority {
            about.push("gezag".into());
        }
        out.line(2, format!("{}  {} ({})", m.id, m.name, about.join(", ")));
    }
}

fn participants(out: &mut Lines, view: &PlanView) {
    if let Some(membership) = &view.membership {
        out.blank();
        out.line(0, "Deelnemers (getekende deelnemerslijst)");
        for p in &membership.participants {
            let contact: Vec<&str> = [p.phone.as_deref(), p.email.as_deref()].into_iter().flatten().collect();
            let contact =
                if contact.is_empty() { String::new() } else { format!("  {}", contact.join(", ")) };
            out.line(
                2,
                format!(
                    "{}  {}, {} ({}){contact}",
                    p.user_id,
                    p.name,
                    p.organisation,
                    Role::label_of(&p.role)
                ),
            );
        }
        out.blank();
        out.line(0, "Deelnemerslijst");
        for step in &membership.steps {
            out.line(2, format!("{}  {} (door {})", iso_utc(step.at_ms), step.text, step.by));
        }
    }
    if view.participants.is_empty() {
        return;
    }
    out.blank();
    out.line(0, "Contactpersonen volgens het plan");
    for p in &view.participants {
        out.line(2, format!("{}  {}, {} ({})", p.id, p.name, p.organisation, Role::label_of(&p.role)));
    }
}

fn escalations(out: &mut Lines, view: &PlanView) {
    if view.escalations.is_empty() {
        return;
    }
    out.blank();
    out.line(0, "Op- en afschaling");
    for step in &view.escalations {
        let regie =
            step.regie_holder.map(|h| format!(", regie {}", participant_name(view, h))).unwrap_or_default();
        out.line(
            2,
            format!(
                "{}  {}{regie} (door {})\n{}",
                iso_utc(step.at_ms),
                EscalationLevel::label_of(&step.level),
                writer_name(view, &step.by),
                step.reason
            ),
        );
    }
}

/// The plan's domains in its own order, then any domain that goals or scores use but the list
/// lacks (written by a device with another domain set), so that nothing is hidden.
fn domains_in_use(view: &PlanView) -> Vec<String> {
    let used: BTreeSet<&str> = view
        .goals
        .iter()
        .map(|g| g.domain.as_str())
        .chain(view.scores.iter().map(|s| s.domain.as_str()))
        .collect();
    let mut out: Vec<String> = view.domains.iter().filter(|d| used.contains(d.as_str())).cloned().collect();
    out.extend(used.into_iter().filter(|d| !view.domains.iter().any(|k| k == d)).map(str::to_owned));
    out
}

fn goals(out: &mut Lines, view: &PlanView, marks: &Marks) {
    let domains = domains_in_use(view);
    if domains.is_empty() {
        return;
    }
    out.blank();
    out.line(0, "Doelen per leefgebied");
    for domain in domains {
        out.line(2, domain_label(&domain));
        let scores: Vec<&Score> = view.scores.iter().filter(|s| s.domain == domain).collect();
        for s in scores {
            out.line(4, format!("ZRM-score {}  {} op {}", s.score, member_name(view, s.member), s.date));
        }
        for goal in view.goals.iter().filter(|g| g.domain == domain) {
            goal_lines(out, view, goal, marks);
        }
    }
    let orphans: Vec<&Action> =
        view.actions.iter().filter(|a| !view.goals.iter().any(|g| g.id == a.goal)).collect();
    if !orphans.is_empty() {
        out.line(2, "(acties bij een onbekend doel)");
        for action in orphans {
            action_line(out, view, action, marks);
        }
    }
}

fn goal_lines(out: &mut Lines, view: &PlanView, goal: &Goal, marks: &Marks) {
    let status = GoalStatus::label_of(&goal.status);
    out.line(4, format!("{}  [{status}] {}{}", goal.id, goal.title, mark(marks, goal.id)));
    if !goal.description.trim().is_empty() {
        out.line(22, &goal.description);
    }
    for action in view.actions.iter().filter(|a| a.goal == goal.id) {
        action_line(out, view, action, marks);
    }
}

/// Who does an action: the participant, else the free text an older version wrote.
fn action_owner(view: &PlanView, action: &Action) -> String {
    match view.action_owner_name(action) {
        Some(person) => format!("{}, {person}", action.owner_org),
        None => action.owner_org.clone(),
    }
}

fn action_line(out: &mut Lines, view: &PlanView, action: &Action, marks: &Marks) {
    let owner = action_owner(view, action);
    let due = action.due.as_ref().map(|d| format!(", uiterlijk {}", dutch_long_date(d))).unwrap_or_default();
    let status = ActionStatus::label_of(&action.status);
    out.line(
        6,
        format!("{}  [{status}] {} ({owner}{due}){}", action.id, action.title, mark(marks, action.id)),
    );
}

fn agreements(out: &mut Lines, view: &PlanView, marks: &Marks) {
    if view.agreements.is_empty() {
        return;
    }
    out.blank();
    out.line(0, "Afspraken");
    for a in &view.agreements {
        out.line(2, format!("{}  {}{}", a.id, a.text, mark(marks, a.id)));
    }
}

/// Evaluations and case meetings.
fn cycle(out: &mut Lines, view: &PlanView) {
    if !view.evaluations.is_empty() {
        out.blank();
        out.line(0, "Evaluaties");
        for e in &view.evaluations {
            let held = if e.held { " (gehouden)" } else { "" };
            out.line(2, format!("{}  {}{held}", e.id, dutch_long_date(&e.date)));
        }
    }
    if view.meetings.is_empty() {
        return;
    }
    out.blank();
    out.line(0, "Casusoverleg");
    let name =
        |user: i64| view.participant(user).map_or_else(|| format!("gebruiker {user}"), |p| p.name.clone());
    for m in &view.meetings {
        let present: Vec<String> = m.attendees.iter().map(|u| name(*u)).collect();
        out.line(2, format!("{}  {}; aanwezig: {}", m.id, dutch_long_date(&m.date), present.join(", ")));
        for d in &m.decisions {
            let action = d.action.map(|a| format!(" (actie {a})")).unwrap_or_default();
            out.line(4, format!("besluit: {}{action}", d.text));
        }
    }
}

fn notes(out: &mut Lines, view: &PlanView) {
    if view.notes.is_empty() {
        return;
    }
    out.blank();
    out.line(0, "Notities");
    for compartment in Compartment::ALL {
        let notes: Vec<_> = view.notes.iter().filter(|n| n.compartment == compartment).collect();
        if notes.is_empty() {
            continue;
        }
        out.line(2, compartment.label());
        for n in notes {
            out.line(
                4,
                format!(
                    "{}  {} {} (door {})\n{}",
                    n.id,
                    iso_utc(n.created_at_ms),
                    NoteKind::label_of(&n.kind),
                    writer_name(view, &n.author),
                    n.text
                ),
            );
            if let Some(origin) = &n.copied_from {
                out.line(
                    6,
                    format!(
                        "(kopie van notitie {1} uit {0}, van {2}, geschreven {3})",
                        origin.compartment,
                        origin.note,
                        writer_name(view, &origin.author),
                        iso_utc(origin.written_at_ms)
                    ),
                );
            }
        }
    }
}

fn safety(out: &mut Lines, view: &PlanView) {
    if view.safety_items.is_empty() {
        return;
    }
    out.blank();
    out.line(0, "Veiligheidsplan");
    for item in &view.safety_items {
        out.line(2, format!("{}  zorg:  {}", item.id, item.danger_statement));
        out.line(20, format!("doel:  {}", item.safety_goal));
    }
}
