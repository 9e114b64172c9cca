//! The family's copy as an A4 PDF: the core's [`FamilyCopy`] model in the same words and
//! order as its HTML, laid out by [`layout`]. Lives in the CLI, not the core: phones print
//! the HTML through their own print service.

mod layout;

use eenplan_core::family_copy::{DomainSection, FamilyCopy};

use layout::{Block, Style};

/// The PDF could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("the embedded font {0} does not load")]
    Font(&'static str),
}

/// Indent of list items and of the lines under an action, in mm.
const INDENT: f32 = 6.0;

/// The family's copy as PDF bytes.
pub fn family_copy(copy: &FamilyCopy) -> Result<Vec<u8>, PdfError> {
    layout::render(&format!("Plan van het gezin {}", copy.family), &blocks(copy))
}

fn blocks(copy: &FamilyCopy) -> Vec<Block> {
    let mut out = vec![
        Block::new(Style::Title, format!("Plan van het gezin {}", copy.family)),
        Block::new(
            Style::Body,
            "In dit plan staat wat u en de hulpverleners samen willen bereiken. U leest ook wie wat doet, \
             en wanneer.",
        ),
    ];
    if !copy.members.is_empty() {
        out.push(Block::new(Style::Section, "Het gezin"));
        out.extend(copy.members.iter().map(|m| match m.relation.as_str() {
            "" => Block::bullet(Style::Body, INDENT, m.name.clone()),
            relation => Block::bullet(Style::Body, INDENT, format!("{} ({relation})", m.name)),
        }));
    }
    if !copy.helpers.is_empty() {
        out.push(Block::new(Style::Section, "Wie helpen mee"));
        out.extend(copy.helpers.iter().map(|h| {
            let mut line = h.name.clone();
            if !h.organisation.is_empty() {
                line.push_str(&format!(", {}", h.organisation));
            }
            if h.regisseur {
                line.push_str(". Dit is uw vaste contactpersoon (regisseur).");
            }
            Block::bullet(Style::Body, INDENT, line)
        }));
    }
    out.push(Block::new(Style::Section, "Onze doelen"));
    if copy.domains.is_empty() {
        out.push(Block::new(Style::Body, "Er staan nog geen doelen in het plan."));
    }
    copy.domains.iter().for_each(|d| goals(d, &mut out));
    if !copy.agreements.is_empty() {
        out.push(Block::new(Style::Section, "Afspraken"));
        out.extend(copy.agreements.iter().map(|a| Block::bullet(Style::Body, INDENT, a.clone())));
    }
    for item in &copy.included {
        out.push(Block::new(Style::Section, item.heading.clone()));
        out.extend(item.paragraphs.iter().map(|p| Block::new(Style::Body, p.clone())));
    }
    out.push(Block::new(Style::Section, "Vaststelling"));
    out.push(Block::new(
        Style::Body,
        copy.adopted
            .as_ref()
            .map_or("Dit plan is nog niet vastgesteld. Dat doen we samen met u.", |a| &a.sentence),
    ));
    out.push(Block::new(Style::Small, format!("Gemaakt op {}.", copy.printed_on)));
    out
}

/// A life domain: its goals, each with its actions (what, who, when, how far).
fn goals(domain: &DomainSection, out: &mut Vec<Block>) {
    out.push(Block::new(Style::Domain, domain.label.clone()));
    for goal in &domain.goals {
        out.push(Block::new(Style::Goal, format!("{} ({})", goal.title, goal.status_label)));
        if !goal.description.is_empty() {
            out.push(Block::new(Style::Body, goal.description.clone()));
        }
        if goal.actions.is_empty() {
            out.push(Block::new(Style::Body, "Wat we hiervoor doen, spreken we nog af."));
        }
        for action in &goal.actions {
            out.push(Block::bullet(Style::Body, INDENT, action.title.clone()));
            let due = action.due.as_deref().unwrap_or("nog niet afgesproken");
            out.push(Block::indented(
                Style::Small,
                INDENT,
                format!(
                    "Wie doet het: {}. Klaar op: {due}. Hoe staat het: {}.",
                    action.who, action.status_label
                ),
            ));
        }
    }
}
