//! Erasing a family member's personal data from a plan before its retention ends, on request
//! (AVG): the `basis` document is replaced by a history-free base without them.
//!
//! Deleting a member's entry is not erasure: automerge keeps every value ever written in its
//! history, and every device and the server hold that history. So the plan is re-sealed: a
//! brand-new document holding only today's values, minus the member, written in one change
//! ([`base_without_member`]); the caller seals it at a new key epoch and the server deletes the
//! older bundles. A device that still holds edits the server never took carries them over onto
//! the new base ([`rebase_unacknowledged`]), without bringing the member back.
//!
//! What a base does not carry over, beyond the member: the history itself (so the conflict
//! list starts empty: of a register holding concurrent values only the value every replica
//! showed survives, counted in [`ErasedMember::settled_conflicts`]), and who created each
//! object. The read model takes a note's, an agreement's, an escalation step's, a meeting's, a
//! contact card's and an adoption record's writer, and whoever put an item in the family's
//! copy, from the actor of the change that created it; in a base every object is created by the
//! base's one change, so all of these name the base's actor. That is not harmless, and must be
//! settled before a base is accepted by devices: the family's copy honours an inclusion only from
//! a regisseur's device and a contact card only from its owner's, so a base written by the
//! regisseur would promote a non-regisseur's inclusion key and another participant's card for the
//! regisseur's user id, hide everyone else's cards, and mark every adoption record not signed by
//! the base's device as written by another device (see ARCHITECTURE.md, Decisions).

use std::collections::HashSet;

use automerge::hydrate::{Map, Value};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, ChangeHash, ObjType, ROOT};
use serde::{Deserialize, Serialize};

use super::read::{self, Reader};
use super::received::guarded;
use super::{Compartment, PlanError, ValidationError};
use crate::ids::EntityId;

/// What [`base_without_member`] removed, for the regisseur's confirmation screen. Counts and
/// the member's random id only: no name, no birth date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasedMember {
    pub member: EntityId,
    /// ZRM scores of the member (one per domain and date).
    pub scores: usize,
    /// Registers elsewhere in the plan that held concurrent values: a document without history
    /// holds one value each, the one every replica showed. Worth settling before erasing.
    pub settled_conflicts: usize,
}

/// A history-free copy of the `basis` document `doc` without family member `member`, written
/// by `actor` in one change at `at_ms` (no commit message: a message would stay readable next
/// to the values).
///
/// Removed: the member's entry in `members` (name, relation, birth date, parental authority,
/// creation time) and every ZRM score of theirs (`scores` keys `"<member>|…"`). Nothing else in
/// the layout holds a member's id. What people typed about the member in notes, agreements,
/// goal descriptions or escalation reasons is prose that no program can tell apart from the
/// rest: it stays, and the regisseur edits it before erasing if it must go.
///
/// Everything else keeps its type: texts stay automerge `Text` (so typing on the base still
/// merges), maps maps, lists lists, scalars (timestamps, counters) as they were.
///
/// Refuses [`ValidationError::UnknownMember`] when `doc` holds no such member.
pub fn base_without_member(
    doc: &Automerge,
    member: EntityId,
    actor: ActorId,
    at_ms: i64,
) -> Result<(Automerge, ErasedMember), PlanError> {
    guarded(Compartment::Basis, "erasing a family member", || {
        let reader = Reader::new(doc, Compartment::Basis);
        let members = reader.required_object(&ROOT, read::MEMBERS, ObjType::Map)?;
        if reader.object(&members, &member.to_string(), ObjType::Map)?.is_none() {
            return Err(ValidationError::UnknownMember(member).into());
        }
        let mut root = root_map(doc.hydrate(None))?;
        let scores = strip_member(&mut root, &member.to_string());
        let settled_conflicts = conflicts_in_map(&root);
        let mut base = Automerge::new().with_actor(actor);
        base.transact_with(
            |_| CommitOptions::default().with_time(at_ms),
            |tx| tx.init_root_from_hydrate(&root),
        )
        .map_err(|f| PlanError::Automerge(f.error))?;
        Ok((base, ErasedMember { member, scores, settled_conflicts }))
    })
}

/// The device's own edits that the server never acknowledged, carried over from `old` (the
/// document the device held) onto `base` (the new base as the device received it, with
/// whatever others wrote on it since) as one new change by `actor` at `at_ms`: `base` with that
/// change, or `None` when there is nothing to carry over.
///
/// `unacknowledged` are hashes of changes in `old` that no other change of `old` depends on
/// (the device's own, sent or not, beyond what the server took). The carrying over is a
/// three-way merge done by automerge: from `B` (`old` without them) one copy is updated to the
/// base's values and another to `old`'s, the two are merged, and the base is updated to the
/// result. So a text typed into on both sides keeps both typings, entities created on either
/// side are all there, and an append to a list on each side keeps both (lists are updated
/// position by position, which merges appends; the plan's lists are only ever appended to or
/// written whole at creation). Where both sides set the same register differently, the
/// device's own value wins: it is the one this change is written to carry.
///
/// Members the base no longer has (erased) stay erased: their entry is gone on the base side,
/// which removes it whatever the device's edits did inside it (a renaming, a new birth date is
/// dropped with the member), and any score the device gave them is dropped too. The erasure
/// wins over the device's edits of the erased member.
///
/// The result is not validated here: the caller checks it like any document it is about to
/// hold (`validate_document`).
pub fn rebase_unacknowledged(
    old: &Automerge,
    unacknowledged: &HashSet<ChangeHash>,
    base: &Automerge,
    actor: ActorId,
    at_ms: i64,
) -> Result<Option<Automerge>, PlanError> {
    if unacknowledged.is_empty() {
        return Ok(None);
    }
    guarded(Compartment::Basis, "carrying edits over to a new base", || {
        let before = heads_without(old, unacknowledged)?;
        let common = root_map(old.hydrate(Some(&before)))?;
        let ours = root_map(old.hydrate(None))?;
        let theirs = root_map(base.hydrate(None))?;
        let mut merged = three_way(&common, &ours, &theirs)?;
        for member in erased_members(&common, &theirs) {
            strip_member(&mut merged, &member);
        }
        let mut next = base.fork();
        next.set_actor(actor);
        let done = next
            .transact_with(
                |_| CommitOptions::default().with_time(at_ms),
                |tx| tx.update_object(ROOT, &Value::Map(merged)),
            )
            .map_err(|f| update_error(f.error))?;
        Ok(done.hash.map(|_| next))
    })
}

/// The heads of `old` without the `unacknowledged` changes, which must be changes of `old` that
/// no remaining change depends on.
fn heads_without(
    old: &Automerge,
    unacknowledged: &HashSet<ChangeHash>,
) -> Result<Vec<ChangeHash>, PlanError> {
    let changes = old.get_changes(&[]);
    let known: HashSet<ChangeHash> = changes.iter().map(|c| c.hash()).collect();
    if let Some(stranger) = unacknowledged.iter().find(|h| !known.contains(h)) {
        return Err(malformed(format!("unacknowledged change {stranger} is not in the document")));
    }
    let kept: Vec<_> = changes.iter().filter(|c| !unacknowledged.contains(&c.hash())).collect();
    let mut depended_on = HashSet::new();
    for change in &kept {
        for dep in change.deps() {
            if unacknowledged.contains(dep) {
                return Err(malformed(format!(
                    "change {} builds on unacknowledged change {dep}",
                    change.hash()
                )));
            }
            depended_on.insert(*dep);
        }
    }
    Ok(kept.iter().map(|c| c.hash()).filter(|h| !depended_on.contains(h)).collect())
}

/// `common` updated to both `ours` and `theirs`, merged by automerge; where both set a
/// register, ours.
fn three_way(common: &Map, ours: &Map, theirs: &Map) -> Result<Map, PlanError> {
    let mut scratch = Automerge::new();
    scratch.transact(|tx| tx.init_root_from_hydrate(common)).map_err(|f| PlanError::Automerge(f.error))?;
    let mut merged = scratch.fork();
    let mut mine = scratch.fork();
    for (doc, target) in [(&mut merged, theirs), (&mut mine, ours)] {
        doc.transact(|tx| tx.update_object(ROOT, &Value::Map(target.clone())))
            .map_err(|f| update_error(f.error))?;
    }
    merged.merge(&mut mine)?;
    let mut out = root_map(merged.hydrate(None))?;
    prefer_ours(&mut out, ours);
    Ok(out)
}

/// Takes `ours` for every map key that the merge left with concurrent values: only a key both
/// sides wrote has them, and ours is the value this rebase carries.
fn prefer_ours(merged: &mut Map, ours: &Map) {
    for (key, entry) in merged.iter_mut() {
        match (entry.conflict, ours.get(key)) {
            (true, Some(mine)) => {
                entry.value = mine.clone();
                entry.conflict = false;
            }
            (false, Some(Value::Map(mine))) => {
                if let Value::Map(inner) = &mut entry.value {
                    prefer_ours(inner, mine);
                }
            }
            _ => {}
        }
    }
}

/// Members `common` had and `theirs` (the base) does not: erased.
fn erased_members(common: &Map, theirs: &Map) -> Vec<String> {
    let keys = |root: &Map| -> HashSet<String> {
        match root.get(read::MEMBERS) {
            Some(Value::Map(members)) => members.keys().cloned().collect(),
            _ => HashSet::new(),
        }
    };
    let kept = keys(theirs);
    keys(common).into_iter().filter(|m| !kept.contains(m)).collect()
}

/// Removes member `member` (an id as the layout spells it) and their scores from a hydrated
/// `basis` root; returns how many scores went.
fn strip_member(root: &mut Map, member: &str) -> usize {
    if let Some(Value::Map(members)) = root.get_mut(read::MEMBERS) {
        members.remove(member);
    }
    let Some(Value::Map(scores)) = root.get_mut(read::SCORES) else { return 0 };
    let before = scores.len();
    scores.retain(|key, _| key.split('|').next() != Some(member));
    before - scores.len()
}

/// Registers holding concurrent values, anywhere below `map`. The depth is bounded by the
/// nesting limit every held document meets.
fn conflicts_in_map(map: &Map) -> usize {
    map.values().map(|entry| usize::from(entry.conflict) + conflicts_in(&entry.value)).sum()
}

fn conflicts_in(value: &Value) -> usize {
    match value {
        Value::Map(map) => conflicts_in_map(map),
        Value::List(list) => {
            list.iter().map(|item| usize::from(item.conflict) + conflicts_in(&item.value)).sum()
        }
        Value::Text(_) | Value::Scalar(_) => 0,
    }
}

fn root_map(value: Value) -> Result<Map, PlanError> {
    match value {
        Value::Map(map) => Ok(map),
        _ => Err(malformed("the root is not a map")),
    }
}

fn malformed(detail: impl Into<String>) -> PlanError {
    PlanError::Malformed { compartment: Compartment::Basis, detail: detail.into() }
}

fn update_error(error: automerge::error::UpdateObjectError) -> PlanError {
    match error {
        automerge::error::UpdateObjectError::Automerge(e) => PlanError::Automerge(e),
        automerge::error::UpdateObjectError::ChangeType => malformed("an object changed its type"),
    }
}

#[cfg(test)]
mod tests;
