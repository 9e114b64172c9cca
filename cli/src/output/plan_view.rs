//! A plan for people to read: goals grouped per life domain with their scores and actions,
//! notes per compartment. Empty sections are left out to keep it short.

use std::collections::BTreeSet;

use eenplan_core::EntityId;
use eenplan_core::plan::Compartment;
use eenplan_core::plan::view::{Action, Goal, PlanView, Score};

use super::{Lines, iso_utc};

pub fn plan_view_text(view: &PlanView) -> String {
    let mut out = Lines::default();
    header(&mut out, view);
    members(&mut out, view);
    participants(&mut out, view);
    escalations(&mut out, view);
    goals(&mut out, view);
    agreements(&mut out, view);
    notes(&mut out, view);
    safety(&mut out, view);
    out.finish()
}

fn participant_name(view: &PlanView, id: EntityId) -> String {
    view.participants
        .iter()
        .find(|p| p.id == id)
        .map_or_else(|| format!("participant {id}"), |p| p.name.clone())
}

/// Who a device is: "Wim de Vries (Wijkteam Noord)" when its certificate is known here, else
/// the start of its id.
fn writer_name(view: &PlanView, device: &str) -> String {
    view.people
        .iter()
        .find(|p| p.device == device)
        .map_or_else(|| format!("device {}", short(device)), |p| format!("{} ({})", p.name, p.organisation))
}

fn member_name(view: &PlanView, id: EntityId) -> String {
    view.members.iter().find(|m| m.id == id).map_or_else(|| format!("member {id}"), |m| m.name.clone())
}

/// Authors are device ids; eight characters tell a handful of devices apart.
fn short(device: &str) -> &str {
    device.get(..8).unwrap_or(device)
}

fn header(out: &mut Lines, view: &PlanView) {
    out.line(0, &view.family);
    out.line(2, format!("plan          {}", view.id));
    out.line(2, format!("phase         {}", view.phase));
    let regie = view
        .escalations
        .last()
        .and_then(|step| step.regie_holder)
        .map(|holder| format!(" (regie: {})", participant_name(view, holder)))
        .unwrap_or_default();
    match &view.membership {
        Some(membership) => {
            out.line(2, format!("escalation    {}", view.escalation_level));
            let who = |p: &eenplan_core::regie::PlanParticipant| format!("{} ({})", p.name, p.organisation);
            out.line(2, format!("regisseur     {}", who(&membership.regisseur)));
            if let Some(offered) = &membership.offered_to {
                out.line(2, format!("regie offered {} (not accepted yet)", who(offered)));
            }
        }
        None => {
            out.line(2, format!("escalation    {}{regie}", view.escalation_level));
            if let Some(regisseur) = view.regisseur {
                out.line(2, format!("regisseur     {}", participant_name(view, regisseur)));
            }
        }
    }
    let held: Vec<&str> = view.compartments.iter().map(|c| c.as_str()).collect();
    out.line(2, format!("compartments  {}", held.join(", ")));
}

fn members(out: &mut Lines, view: &PlanView) {
    if view.members.is_empty() {
        return;
    }
    out.blank();
    out.line(0, "Members");
    for m in &view.members {
        let mut about = vec![m.relation.clone()];
        if let Some(born) = &m.birth_date {
            about.push(format!("born {born}"));
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
        out.line(0, "Participants (signed membership)");
        for p in &membership.participants {
            let contact: Vec<&str> = [p.phone.as_deref(), p.email.as_deref()].into_iter().flatten().collect();
            let contact =
                if contact.is_empty() { String::new() } else { format!("  {}", contact.join(", ")) };
            out.line(2, format!("{}  {}, {} ({}){contact}", p.user_id, p.name, p.organisation, p.role));
        }
        out.blank();
        out.line(0, "Membership");
        for step in &membership.steps {
            out.line(2, format!("{}  {} (by {})", iso_utc(step.at_ms), step.text, step.by));
        }
    }
    if view.participants.is_empty() {
        return;
    }
    out.blank();
    out.line(0, "Participants");
    for p in &view.participants {
        out.line(2, format!("{}  {}, {} ({})", p.id, p.name, p.organisation, p.role));
    }
}

fn escalations(out: &mut Lines, view: &PlanView) {
    if view.escalations.is_empty() {
        return;
    }
    out.blank();
    out.line(0, "Escalations");
    for step in &view.escalations {
        let regie =
            step.regie_holder.map(|h| format!(", regie {}", participant_name(view, h))).unwrap_or_default();
        out.line(
            2,
            format!(
                "{}  {}{regie} (by {})\n{}",
                iso_utc(step.at_ms),
                step.level,
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

fn goals(out: &mut Lines, view: &PlanView) {
    let domains = domains_in_use(view);
    if domains.is_empty() {
        return;
    }
    out.blank();
    out.line(0, "Goals per life domain");
    for domain in domains {
        out.line(2, &domain);
        let scores: Vec<&Score> = view.scores.iter().filter(|s| s.domain == domain).collect();
        for s in scores {
            out.line(4, format!("score {}  {} on {}", s.score, member_name(view, s.member), s.date));
        }
        for goal in view.goals.iter().filter(|g| g.domain == domain) {
            goal_lines(out, view, goal);
        }
    }
    let orphans: Vec<&Action> =
        view.actions.iter().filter(|a| !view.goals.iter().any(|g| g.id == a.goal)).collect();
    if !orphans.is_empty() {
        out.line(2, "(actions of an unknown goal)");
        for action in orphans {
            action_line(out, action);
        }
    }
}

fn goal_lines(out: &mut Lines, view: &PlanView, goal: &Goal) {
    out.line(4, format!("{}  [{}] {}", goal.id, goal.status, goal.title));
    if !goal.description.trim().is_empty() {
        out.line(22, &goal.description);
    }
    for action in view.actions.iter().filter(|a| a.goal == goal.id) {
        action_line(out, action);
    }
}

fn action_line(out: &mut Lines, action: &Action) {
    let owner = match &action.owner_person {
        Some(person) => format!("{}, {person}", action.owner_org),
        None => action.owner_org.clone(),
    };
    let due = action.due.as_ref().map(|d| format!(", due {d}")).unwrap_or_default();
    out.line(6, format!("{}  [{}] {} ({owner}{due})", action.id, action.status, action.title));
}

fn agreements(out: &mut Lines, view: &PlanView) {
    if view.agreements.is_empty() {
        return;
    }
    out.blank();
    out.line(0, "Agreements");
    for a in &view.agreements {
        out.line(2, format!("{}  {}", a.id, a.text));
    }
}

fn notes(out: &mut Lines, view: &PlanView) {
    if view.notes.is_empty() {
        return;
    }
    out.blank();
    out.line(0, "Notes");
    for compartment in Compartment::ALL {
        let notes: Vec<_> = view.notes.iter().filter(|n| n.compartment == compartment).collect();
        if notes.is_empty() {
            continue;
        }
        out.line(2, compartment);
        for n in notes {
            out.line(
                4,
                format!(
                    "{}  {} {} (by {})\n{}",
                    n.id,
                    iso_utc(n.created_at_ms),
                    n.kind,
                    writer_name(view, &n.author),
                    n.text
                ),
            );
            if let Some(origin) = &n.copied_from {
                out.line(
                    6,
                    format!(
                        "(copy of {} note {} by {}, written {})",
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
    out.line(0, "Safety plan");
    for item in &view.safety_items {
        out.line(2, format!("{}  danger: {}", item.id, item.danger_statement));
        out.line(20, format!("goal:   {}", item.safety_goal));
    }
}
