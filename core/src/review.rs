//! Review: "what changed since I last looked", per plan, as readable Dutch lines — who (the
//! person behind the device whose automerge actor made the change), what (in the plan's
//! labels), when (the change's time) — and "mark reviewed" (DESIGN §7).
//!
//! The lines come from the automerge history between the heads this device last marked
//! reviewed and now, in the compartments it holds, derived from the changes' operations (not
//! their messages): each operation's object is placed in the document layout (`places.rs`),
//! turned into an event (`events.rs`) and a sentence (`text.rs`); a writer's consecutive
//! changes to the same field (a note typed keystroke by keystroke) collapse into one line
//! with the time of the last (`history.rs`).
//!
//! Choices:
//! - This device's own changes are left out: a regisseur reviews others' work.
//! - A plan (or a compartment) never marked reviewed shows everything since its start: a
//!   regisseur who takes over a plan, or starts reading a compartment, has seen none of it.
//!   The lines are bounded ([`MAX_LINES`], the newest kept, with the count left out).
//! - [`Device::mark_reviewed`] marks the heads the device holds now, per held compartment,
//!   sealed in the store (`store/review_marks.rs`) by the document's lookup key.

mod events;
mod history;
mod places;
mod text;

use automerge::ChangeHash;
use serde::{Deserialize, Serialize};

use crate::audit::{Access, AuditAction};
use crate::device::Device;
use crate::error::CoreError;
use crate::ids::{DeviceId, EntityId, PlanId};
use crate::people::Person;
use crate::plan::Compartment;
use crate::store::StoreError;

pub use history::{History, history};

/// The most lines a review returns; older ones are counted in [`Review::left_out`].
pub const MAX_LINES: usize = 500;

/// What changed in a plan since this device last marked it reviewed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub plan: PlanId,
    /// When the plan was last marked reviewed (`None`: never; the lines go back to its start).
    pub since_ms: Option<i64>,
    /// Oldest first.
    pub lines: Vec<ReviewLine>,
    /// Older lines left out to keep the review within [`MAX_LINES`].
    pub left_out: usize,
    /// What this review covers, per held compartment: "compartment:change hash" for each
    /// head. [`Device::mark_reviewed_through`] marks exactly this, so a change that a sync
    /// brought after the review was shown is not marked unseen.
    #[serde(default)]
    pub through: Vec<String>,
}

/// One thing another writer did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewLine {
    /// The time of the (last) change the line stands for.
    pub at_ms: i64,
    pub compartment: Compartment,
    /// The person behind `device`, when this device holds its verified certificate.
    pub who: Option<Person>,
    /// The device (automerge actor) that made the change, as hex.
    pub device: String,
    /// The Dutch sentence, without who: "zette de status van actie ‘Huur betalen’ op Gedaan".
    pub text: String,
    /// The entity the line is about, if one.
    pub entity: Option<EntityId>,
    /// How many changes the line stands for (typing collapses into one line).
    pub changes: usize,
}

impl ReviewLine {
    /// "Wim de Vries (Wijkteam Noord)", or "onbekend apparaat 1a2b3c4d" for a device whose
    /// certificate this device does not hold.
    pub fn who_label(&self) -> String {
        match &self.who {
            Some(p) => format!("{} ({})", p.name, p.organisation),
            None => format!("onbekend apparaat {}", self.device.chars().take(8).collect::<String>()),
        }
    }
}

/// A document's mark: when, and the heads then.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Mark {
    at_ms: i64,
    heads: Vec<ChangeHash>,
}

impl Mark {
    fn encode(&self) -> Vec<u8> {
        let mut out = self.at_ms.to_be_bytes().to_vec();
        for head in &self.heads {
            out.extend_from_slice(&head.0);
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Mark, StoreError> {
        let bad = || StoreError::Corrupt("a review mark is malformed".into());
        let (at, heads) = bytes.split_first_chunk::<8>().ok_or_else(bad)?;
        if heads.len() % 32 != 0 {
            return Err(bad());
        }
        let heads = heads
            .chunks_exact(32)
            .map(|h| ChangeHash::try_from(h).map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        Ok(Mark { at_ms: i64::from_be_bytes(*at), heads })
    }
}

impl Device {
    /// What changed in `plan` since this device last marked it reviewed (see the module
    /// documentation: others' changes only, in the compartments this device holds).
    pub fn review(&mut self, plan: &PlanId) -> Result<Review, CoreError> {
        self.audited(Access::on(AuditAction::Read, *plan).object("review"), |d| d.review_recorded(plan))
    }

    fn review_recorded(&mut self, plan: &PlanId) -> Result<Review, CoreError> {
        self.plan_gate()?;
        let mut marked: [Vec<ChangeHash>; 4] = Default::default();
        let mut since_ms = None;
        for compartment in Compartment::ALL {
            if let Some(bytes) = self.store().review_mark(*plan, compartment)? {
                let mark = Mark::decode(&bytes)?;
                since_ms = since_ms.max(Some(mark.at_ms));
                marked[compartment.index()] = mark.heads;
            }
        }
        let loaded = self.loaded_plan(*plan)?;
        let through = loaded
            .held_heads()
            .into_iter()
            .flat_map(|(c, heads)| heads.into_iter().map(move |h| format!("{c}:{h}")))
            .collect();
        let History { mut lines, left_out } = history(loaded, &marked, MAX_LINES)?;
        self.name_writers(&mut lines)?;
        Ok(Review { plan: *plan, since_ms, lines, left_out, through })
    }

    /// Marks what a review showed (its [`Review::through`]) as reviewed. A head that is not
    /// one of this plan's changes is refused; nothing is marked then.
    pub fn mark_reviewed_through(&mut self, plan: &PlanId, through: &[String]) -> Result<(), CoreError> {
        self.plan_gate()?;
        let mut heads: [Vec<ChangeHash>; 4] = Default::default();
        let loaded = self.loaded_plan(*plan)?;
        for token in through {
            let parsed = token
                .split_once(':')
                .and_then(|(c, h)| Some((c.parse::<Compartment>().ok()?, h.parse::<ChangeHash>().ok()?)));
            let Some((compartment, hash)) = parsed.filter(|(c, h)| {
                loaded.doc(*c).is_ok_and(|doc| automerge::ReadDoc::get_change_by_hash(doc, h).is_some())
            }) else {
                return Err(CoreError::NotAllowed(format!("{token:?} is geen wijziging van dit plan")));
            };
            heads[compartment.index()].push(hash);
        }
        self.write_marks(plan, &heads)
    }

    /// Marks everything this device holds of `plan` now as reviewed: the next
    /// [`Device::review`] shows only what comes after.
    pub fn mark_reviewed(&mut self, plan: &PlanId) -> Result<(), CoreError> {
        self.plan_gate()?;
        let heads = self.loaded_plan(*plan)?.heads();
        self.write_marks(plan, &heads)
    }

    fn write_marks(&mut self, plan: &PlanId, heads: &[Vec<ChangeHash>; 4]) -> Result<(), CoreError> {
        let at_ms = self.now_ms();
        let held = self.loaded_plan(*plan)?.held_compartments();
        self.store_mut().write(|w| {
            for compartment in held {
                let mark = Mark { at_ms, heads: heads[compartment.index()].clone() };
                w.put_review_mark(*plan, compartment, &mark.encode())?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Fills in the person behind each line's device, looking each device up once.
    fn name_writers(&self, lines: &mut [ReviewLine]) -> Result<(), CoreError> {
        let mut known: std::collections::HashMap<String, Option<Person>> = std::collections::HashMap::new();
        for line in lines {
            if !known.contains_key(&line.device) {
                let person = match line.device.parse::<DeviceId>() {
                    Ok(device) => self.person(&device)?,
                    Err(_) => None,
                };
                known.insert(line.device.clone(), person);
            }
            line.who = known.get(&line.device).cloned().flatten();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
