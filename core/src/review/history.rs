//! The history logic of a review, over a [`Plan`] and the heads marked reviewed, with no
//! device: the changes after the marked heads (other writers' only), their events as
//! sentences, runs collapsed, newest kept.

use std::collections::HashMap;

use automerge::{ActorId, Automerge, ChangeHash};

use super::ReviewLine;
use super::events::events_of;
use super::places::Places;
use super::text::{Names, Sentence, sentence_of};
use crate::plan::{Compartment, Plan, PlanError, guarded};

/// The lines of a review before people are named, and how many older ones were left out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct History {
    pub lines: Vec<ReviewLine>,
    pub left_out: usize,
}

/// What changed in `plan` after `marked` (per compartment, by [`Compartment::index`]; empty:
/// since the compartment's start), in every compartment the plan holds, written by anyone but
/// the plan's own actor (this device: a regisseur reviews others' work). Oldest first; at most
/// `max_lines`, the newest kept. Received documents are read inside [`guarded`]: a document
/// automerge cannot read makes this an error, never a panic.
pub fn history(plan: &Plan, marked: &[Vec<ChangeHash>; 4], max_lines: usize) -> Result<History, PlanError> {
    // Names are what the plan says now; a plan whose read model fails still gets its lines.
    let names = plan.view().map(|view| Names::of(&view)).unwrap_or_default();
    let own = plan.author().actor();
    let mut streams = Vec::new();
    for compartment in plan.held_compartments() {
        let doc = plan.doc(compartment)?;
        let marked = &marked[compartment.index()];
        streams.push(guarded(compartment, "reading the history", || {
            Ok(compartment_said(doc, compartment, marked, &own, &names))
        })?);
    }
    let mut runs = Runs::default();
    for said in merged(streams) {
        runs.add_change(said);
    }
    let mut lines: Vec<ReviewLine> = runs.lines.into_iter().map(|b| b.line).collect();
    lines.sort_by_key(|line| line.at_ms);
    let left_out = lines.len().saturating_sub(max_lines);
    lines.drain(..left_out);
    Ok(History { lines, left_out })
}

/// What one change said.
#[derive(Debug)]
struct Said {
    compartment: Compartment,
    actor: ActorId,
    at_ms: i64,
    sentences: Vec<Sentence>,
}

/// A line being built, with what collapsing needs.
#[derive(Debug)]
struct Building {
    line: ReviewLine,
    sentence: Sentence,
}

/// The sentences of one compartment's changes after `marked`, in the order of its history.
fn compartment_said(
    doc: &Automerge,
    compartment: Compartment,
    marked: &[ChangeHash],
    own: &ActorId,
    names: &Names,
) -> Vec<Said> {
    // Heads this document does not know (a mark older than a compartment this device lost
    // and got back) would say nothing: they are left out.
    let known: Vec<ChangeHash> =
        marked.iter().filter(|h| doc.get_change_meta_by_hash(h).is_some()).copied().collect();
    let mut places = Places::walk(doc);
    let mut out = Vec::new();
    for change in doc.get_changes(&known) {
        if change.actor_id() == own {
            continue;
        }
        let sentences = events_of(&change.decode(), &mut places)
            .iter()
            .map(|e| sentence_of(e, compartment, names))
            .collect();
        out.push(Said {
            compartment,
            actor: change.actor_id().clone(),
            at_ms: change.timestamp(),
            sentences,
        });
    }
    out
}

/// The compartments' streams as one, by time, each stream keeping its own (causal) order.
fn merged(streams: Vec<Vec<Said>>) -> Vec<Said> {
    let mut heads: Vec<std::iter::Peekable<std::vec::IntoIter<Said>>> =
        streams.into_iter().map(|s| s.into_iter().peekable()).collect();
    let mut out = Vec::new();
    loop {
        let next = heads
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.peek().map(|said| (said.at_ms, i)))
            .min()
            .map(|(_, i)| i);
        match next.and_then(|i| heads.get_mut(i)).and_then(Iterator::next) {
            Some(said) => out.push(said),
            None => return out,
        }
    }
}

/// Collapsing: a sentence about the same subject as one of its writer's previous change
/// (typing a note, one change per keystroke) adds to that line instead of making a new one,
/// which then takes the newer time and text (a status shows the last one set). Typing into
/// an entity right after creating it adds to the creation's line.
#[derive(Debug, Default)]
struct Runs {
    lines: Vec<Building>,
    /// Per writer, the lines its previous change made or added to.
    previous: HashMap<ActorId, Vec<usize>>,
}

impl Runs {
    fn add_change(&mut self, said: Said) {
        let Said { compartment, actor, at_ms, sentences } = said;
        let previous = self.previous.remove(&actor).unwrap_or_default();
        let mut touched: Vec<usize> = Vec::new();
        for sentence in sentences {
            let found = previous
                .iter()
                .chain(touched.iter())
                .copied()
                .find(|&i| continues(&self.lines[i].sentence, &sentence));
            match found {
                Some(i) => {
                    let building = &mut self.lines[i];
                    building.line.at_ms = building.line.at_ms.max(at_ms);
                    if !touched.contains(&i) {
                        building.line.changes += 1;
                        touched.push(i);
                    }
                    if building.sentence.subject == sentence.subject {
                        building.line.text.clone_from(&sentence.text);
                    }
                }
                None => {
                    let line = ReviewLine {
                        at_ms,
                        compartment,
                        who: None,
                        device: actor.to_hex_string(),
                        text: sentence.text.clone(),
                        entity: sentence.entity,
                        changes: 1,
                    };
                    self.lines.push(Building { line, sentence });
                    touched.push(self.lines.len() - 1);
                }
            }
        }
        self.previous.insert(actor, touched);
    }
}

/// Whether `next` continues the line of `earlier`.
fn continues(earlier: &Sentence, next: &Sentence) -> bool {
    earlier.subject == next.subject
        || (earlier.created
            && next.typing
            && next.subject.strip_prefix(earlier.subject.as_str()).is_some_and(|rest| rest.starts_with('/')))
}
