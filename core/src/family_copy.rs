//! The family's copy (DESIGN §7): the plan as a document the family reads, prints or is
//! handed, in plain Dutch (B1: short sentences, everyday words).
//!
//! It holds only what the family may see: the `basis` skeleton (the family, who helps, goals
//! per life domain, actions, agreements) and nothing a professional wrote for professionals.
//! No note of any compartment (not even a `basis` home-visit note) and nothing from `zorg`,
//! `veiligheid` or `justitie` goes in, unless the regisseur put that one item in
//! ([`Device::include_in_family_copy`]); even then only a device that holds the item's
//! compartment can print it, and one that cannot leaves it out without a word.
//!
//! The core builds the model ([`FamilyCopy`]) and its HTML (what a phone's print service
//! takes); the desktop CLI lays the same model out as PDF.

use askama::Template;
use serde::{Deserialize, Serialize};

use crate::calendar::{dutch_date_string, dutch_long_date as dutch_date, dutch_long_date_of_ms};

use crate::Device;
use crate::audit::{Access, AuditAction};
use crate::error::CoreError;
use crate::ids::PlanId;
use crate::plan::PlanView;
use crate::plan::view::{Action, FamilyCopyItem, Goal};
use crate::plan::vocab::{self, ActionStatus, GoalStatus, NoteKind};

/// That the plan was adopted (*vastgesteld*): version, date and with whom. Made from the
/// signed adoption records (issue 11 item 2); this module only shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptedStamp {
    pub version: u32,
    /// YYYY-MM-DD (shown in Dutch words).
    pub date: String,
    /// The family's agreement, in the regisseur's words ("Besproken met Anja en Mark op
    /// 20 november; zij zijn akkoord.").
    pub with_family: String,
    /// The plan changed since: the copy shows today's plan, so it says so.
    #[serde(default)]
    pub changed_since: bool,
}

/// The family's copy: plain data, every text already in the words the family reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyCopy {
    pub family: String,
    /// The day it was made, in Dutch words ("3 december 2026").
    pub printed_on: String,
    pub members: Vec<MemberLine>,
    pub helpers: Vec<HelperLine>,
    /// Life domains that have goals, in the plan's domain order.
    pub domains: Vec<DomainSection>,
    pub agreements: Vec<String>,
    /// What the regisseur put in besides the skeleton, as far as this device can read it.
    pub included: Vec<IncludedItem>,
    /// "Dit plan is vastgesteld op …", or `None`: "nog niet vastgesteld".
    pub adopted: Option<AdoptedLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberLine {
    pub name: String,
    pub relation: String,
}

/// A professional who takes part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelperLine {
    pub name: String,
    pub organisation: String,
    /// Holds regie: the family's first contact.
    pub regisseur: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainSection {
    pub label: String,
    pub goals: Vec<GoalLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoalLine {
    pub title: String,
    pub description: String,
    pub status_label: String,
    pub actions: Vec<ActionLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionLine {
    pub title: String,
    pub who: String,
    /// In Dutch words; `None`: no date agreed.
    pub due: Option<String>,
    pub status_label: String,
}

/// A note or safety item the regisseur put in, as paragraphs under a heading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncludedItem {
    pub heading: String,
    pub paragraphs: Vec<String>,
}

/// The adoption, as the family reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptedLine {
    pub version: u32,
    pub date: String,
    pub sentence: String,
}

/// The copy could not be written out.
#[derive(Debug, thiserror::Error)]
pub enum FamilyCopyError {
    #[error("the family's copy could not be rendered as HTML: {0}")]
    Html(#[from] askama::Error),
}

/// What the family reads when nobody is named for an action yet.
const NOBODY_YET: &str = "Nog niet bekend";

impl FamilyCopy {
    /// The copy of `view`, made on `printed_on` (YYYY-MM-DD). Takes only the `basis` skeleton
    /// and the items `view.family_copy_items` names whose text the view holds.
    pub fn from_view(view: &PlanView, adopted: Option<AdoptedStamp>, printed_on: &str) -> FamilyCopy {
        FamilyCopy {
            family: view.family.clone(),
            printed_on: dutch_date(printed_on),
            members: view
                .members
                .iter()
                .map(|m| MemberLine { name: m.name.clone(), relation: m.relation.clone() })
                .collect(),
            helpers: helpers(view),
            domains: domain_sections(view),
            agreements: view
                .agreements
                .iter()
                .map(|a| a.text.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect(),
            included: view.family_copy_items.iter().filter_map(|item| included(view, *item)).collect(),
            adopted: adopted.map(|stamp| adopted_line(&stamp)),
        }
    }

    /// The copy as one HTML page that prints on A4 (print CSS, page breaks, page numbers).
    /// Every text is escaped.
    pub fn to_html(&self) -> Result<String, FamilyCopyError> {
        Ok(Page { copy: self }.render()?)
    }
}

#[derive(Template)]
#[template(path = "family_copy.html")]
struct Page<'a> {
    copy: &'a FamilyCopy,
}

/// Who does an action, as the family reads it. The one place that decides it: the
/// participant (from the signed chain), else the free text an earlier version wrote, and
/// their organisation; or the organisation alone.
fn action_owner(view: &PlanView, action: &Action) -> String {
    let org = action.owner_org.trim();
    match view.action_owner_name(action) {
        Some(person) if org.is_empty() => person,
        Some(person) => format!("{person} ({org})"),
        None if org.is_empty() => NOBODY_YET.to_owned(),
        None => org.to_owned(),
    }
}

/// The professionals, from the signed chain when the device holds it (the document's own
/// list is anyone's words).
fn helpers(view: &PlanView) -> Vec<HelperLine> {
    match &view.membership {
        Some(m) => m
            .participants
            .iter()
            .map(|p| HelperLine {
                name: p.name.clone(),
                organisation: p.organisation.clone(),
                regisseur: p.user_id == m.regisseur.user_id,
            })
            .collect(),
        None => view
            .participants
            .iter()
            .map(|p| HelperLine {
                name: p.name.clone(),
                organisation: p.organisation.clone(),
                regisseur: view.regisseur == Some(p.id),
            })
            .collect(),
    }
}

/// Goals grouped per life domain, in the plan's domain order; a goal whose domain left the
/// list since still shows, after the others.
fn domain_sections(view: &PlanView) -> Vec<DomainSection> {
    let mut order: Vec<&str> = view.domains.iter().map(String::as_str).collect();
    for goal in &view.goals {
        if !order.contains(&goal.domain.as_str()) {
            order.push(&goal.domain);
        }
    }
    order
        .into_iter()
        .map(|domain| DomainSection {
            label: vocab::domain_label(domain),
            goals: view.goals.iter().filter(|g| g.domain == domain).map(|g| goal_line(view, g)).collect(),
        })
        .filter(|section| !section.goals.is_empty())
        .collect()
}

fn goal_line(view: &PlanView, goal: &Goal) -> GoalLine {
    GoalLine {
        title: goal.title.clone(),
        description: goal.description.trim().to_owned(),
        status_label: GoalStatus::label_of(&goal.status),
        actions: view
            .actions
            .iter()
            .filter(|a| a.goal == goal.id)
            .map(|a| ActionLine {
                title: a.title.clone(),
                who: action_owner(view, a),
                due: a.due.as_deref().map(dutch_date),
                status_label: ActionStatus::label_of(&a.status),
            })
            .collect(),
    }
}

/// An item the regisseur put in, if the view holds its text.
fn included(view: &PlanView, item: FamilyCopyItem) -> Option<IncludedItem> {
    match item {
        FamilyCopyItem::Note { compartment, id } => {
            let note = view.notes.iter().find(|n| n.id == id && n.compartment == compartment)?;
            Some(IncludedItem {
                heading: format!(
                    "{} van {}",
                    NoteKind::label_of(&note.kind),
                    dutch_long_date_of_ms(note.created_at_ms)
                ),
                paragraphs: paragraphs(&note.text),
            })
        }
        FamilyCopyItem::SafetyItem { id } => {
            let safety = view.safety_items.iter().find(|s| s.id == id)?;
            let mut paragraphs = vec!["Waar we ons zorgen over maken:".to_owned()];
            paragraphs.extend(self::paragraphs(&safety.danger_statement));
            paragraphs.push("Wat we samen willen bereiken:".to_owned());
            paragraphs.extend(self::paragraphs(&safety.safety_goal));
            Some(IncludedItem { heading: "Afspraken over veiligheid".to_owned(), paragraphs })
        }
    }
}

/// Prose as paragraphs: one per non-empty line.
fn paragraphs(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

fn adopted_line(stamp: &AdoptedStamp) -> AdoptedLine {
    let date = dutch_date(&stamp.date);
    let agreement = match stamp.with_family.trim() {
        "" => "Dat deden we samen met het gezin.".to_owned(),
        said if said.ends_with(['.', '!', '?']) => said.to_owned(),
        said => format!("{said}."),
    };
    let since = if stamp.changed_since {
        " Daarna is het plan aangepast. Die aanpassingen zijn nog niet samen met u vastgesteld."
    } else {
        ""
    };
    AdoptedLine {
        version: stamp.version,
        sentence: format!("Dit plan is vastgesteld op {date} (versie {}). {agreement}{since}", stamp.version),
        date,
    }
}

impl Device {
    /// The family's copy of a plan as this device can make it today (the device clock's
    /// date). What the regisseur put in shows only where this device holds its compartment.
    pub fn family_copy(&mut self, plan: &PlanId) -> Result<FamilyCopy, CoreError> {
        self.audited(Access::on(AuditAction::Print, *plan), |d| d.family_copy_recorded(plan))
    }

    fn family_copy_recorded(&mut self, plan: &PlanId) -> Result<FamilyCopy, CoreError> {
        let mut view = self.read(plan)?;
        view.family_copy_items = self.included_by_regie(plan)?;
        let adopted = self.adopted_stamp(plan)?;
        Ok(FamilyCopy::from_view(&view, adopted, &dutch_date_string(self.now_ms())))
    }

    /// Puts a note or safety item in the family's copy, or takes it out. The regisseur's
    /// choice: refused ([`CoreError::NotAllowed`]) unless this device's user holds regie by
    /// the plan's chain (as for settling a conflict).
    pub fn include_in_family_copy(
        &mut self,
        plan: &PlanId,
        item: FamilyCopyItem,
        included: bool,
    ) -> Result<(), CoreError> {
        self.audited(Access::on(AuditAction::Change, *plan), |d| {
            d.include_in_family_copy_recorded(plan, item, included)
        })
    }

    fn include_in_family_copy_recorded(
        &mut self,
        plan: &PlanId,
        item: FamilyCopyItem,
        included: bool,
    ) -> Result<(), CoreError> {
        self.require_regie(plan).map_err(|e| match e {
            CoreError::NotAllowed(why) => CoreError::NotAllowed(format!(
                "wat in het plan voor het gezin staat, kiest de regisseur: {why}"
            )),
            other => other,
        })?;
        self.edit(plan, |p| p.set_in_family_copy(item, included))
    }

    /// The items a regisseur put in: anyone who writes `basis` can write an inclusion key,
    /// so each counts only when the device that wrote it belongs to a user the plan's chain
    /// shows holding regie at some point (an item a regisseur included stays in after a
    /// handover). Without a chain (a plan not registered yet) the creator's device is the
    /// only writer there is.
    pub(crate) fn included_by_regie(&mut self, plan: &PlanId) -> Result<Vec<FamilyCopyItem>, CoreError> {
        let writers = self.loaded_plan(*plan)?.family_copy_writers()?;
        let Some(roster) = self.roster(plan)? else {
            return Ok(writers.into_iter().map(|(item, _, _)| item).collect());
        };
        let mut regisseurs: Vec<i64> =
            roster.steps().iter().map(|s| roster.state_at(s.seq).regisseur).collect();
        regisseurs.sort_unstable();
        regisseurs.dedup();
        let mut out = Vec::new();
        for (item, writer, pin) in writers {
            let Ok(device) = writer.parse::<crate::ids::DeviceId>() else { continue };
            let user = self.known_device(device.as_bytes())?.map(|body| body.user_id);
            if !user.is_some_and(|u| regisseurs.contains(&u)) {
                continue;
            }
            // Only the text the regisseur put in: an item edited since waits until the
            // regisseur puts it in again. A compartment this device does not hold has no text
            // here, and the copy leaves the item out in any case.
            let current = self.loaded_plan(*plan)?.family_copy_pin(item).ok();
            if pin.is_some() && pin == current {
                out.push(item);
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// The plan's newest adoption this device verified, if any.
    fn adopted_stamp(&mut self, plan: &PlanId) -> Result<Option<AdoptedStamp>, CoreError> {
        let Some(adopted) = self.newest_adopted_plan(plan)? else { return Ok(None) };
        let a = adopted.adoption;
        Ok(Some(AdoptedStamp {
            version: a.version,
            date: a.date,
            with_family: a.with_family,
            changed_since: !adopted.not_adopted.is_empty(),
        }))
    }
}

#[cfg(test)]
mod tests;
