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
//! showed survives, counted in [`ErasedMember::settled_conflicts`]), and with it the changes
//! that say who created each object. The read model takes a note's, an agreement's, an
//! escalation step's, a meeting's, a contact card's and an adoption record's writer from the
//! actor of the change that created it; in a base that would be the base's writer for all of
//! them. So the base writes each record's creator into it (`_by`), and readers believe `_by`
//! only where the plan vouches for the base's writer and only as the base's own change wrote
//! it (`read::Reader::creator`). Who put an item in the family's copy is a scalar's writer,
//! which no `_by` can carry: the caller keeps only the inclusions the rules accept today
//! (`keep_root_key`), which then are the base writer's, the regisseur's.

use std::collections::HashSet;

use automerge::hydrate::{List, Map, Value};
use automerge::transaction::{CommitOptions, Transactable, Transaction};
use automerge::{ActorId, Automerge, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue};
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
/// rest: it stays, and the regisseur edits it before erasing if it must go. Left out as well:
/// every root key for which `keep_root_key` returns false (the caller keeps only the
/// family-copy inclusions whose writer the rules accept today: an inclusion is a scalar, which
/// cannot say who wrote it, so in the base each one is `actor`'s).
///
/// Everything else keeps its type: texts stay automerge `Text` (so typing on the base still
/// merges), maps maps, lists lists, scalars (timestamps, counters) as they were. Every map but
/// the root and its collections (whose keys are data) gets `_by`: the device that created it in
/// `doc`, as `doc`'s reader tells it with `vouched` (the writer of `doc`'s own base, if it is
/// one: a second erasure keeps the first one's creators). Readers believe `_by` only once the
/// plan vouches for `actor` ([`super::Plan::vouch_base`]).
///
/// Refuses [`ValidationError::UnknownMember`] when `doc` holds no such member, and a
/// [`PlanError::Malformed`] when `keep_root_key` dropped a key the layout needs.
pub fn base_without_member(
    doc: &Automerge,
    vouched: Option<&ActorId>,
    member: EntityId,
    actor: ActorId,
    at_ms: i64,
    keep_root_key: &dyn Fn(&str) -> bool,
) -> Result<(Automerge, ErasedMember), PlanError> {
    guarded(Compartment::Basis, "erasing a family member", || {
        let reader = Reader::new(doc, Compartment::Basis).vouched(vouched);
        let members = reader.required_object(&ROOT, read::MEMBERS, ObjType::Map)?;
        if reader.object(&members, &member.to_string(), ObjType::Map)?.is_none() {
            return Err(ValidationError::UnknownMember(member).into());
        }
        let mut copier = Copier {
            from: &reader,
            member: member.to_string(),
            keep_root_key,
            scores: 0,
            settled_conflicts: 0,
        };
        let mut base = Automerge::new().with_actor(actor);
        base.transact_with(
            |_| CommitOptions::default().with_time(at_ms),
            |tx| copier.map(tx, &ROOT, &ROOT, Place::Root),
        )
        .map_err(|f| f.error)?;
        super::view::check_layout(&base, Compartment::Basis)?;
        let Copier { scores, settled_conflicts, .. } = copier;
        Ok((base, ErasedMember { member, scores, settled_conflicts }))
    })
}

/// Where a map being copied sits, for what it leaves out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Root,
    /// A root map whose keys are data ([`read::COLLECTIONS`]), by its key.
    Collection(&'static str),
    Other,
}

/// Where a value goes in the base.
enum At {
    Key(String),
    Index(usize),
}

/// Copies today's values of `from`'s document into a base, object by object, so that each
/// object's creator is known when it is written.
struct Copier<'r, 'a> {
    from: &'r Reader<'a>,
    member: String,
    keep_root_key: &'r dyn Fn(&str) -> bool,
    scores: usize,
    settled_conflicts: usize,
}

impl Copier<'_, '_> {
    /// Copies map `from` into `to`, leaving out what `place` says; the depth is bounded by the
    /// nesting limit every held document meets.
    fn map(
        &mut self,
        tx: &mut Transaction<'_>,
        from: &ObjId,
        to: &ObjId,
        place: Place,
    ) -> Result<(), PlanError> {
        let doc = self.from.doc;
        for key in doc.keys(from).collect::<Vec<_>>() {
            if !self.keeps(place, &key) {
                continue;
            }
            let Some((value, id)) = doc.get(from, key.as_str())? else { continue };
            self.settled_conflicts += usize::from(doc.get_all(from, key.as_str())?.len() > 1);
            let child = match read::COLLECTIONS.into_iter().find(|c| *c == key) {
                Some(collection) if place == Place::Root => Place::Collection(collection),
                _ => Place::Other,
            };
            self.value(tx, value, &id, to, At::Key(key), child)?;
        }
        if place == Place::Other && matches!(from, ObjId::Id(..)) {
            tx.put(to, read::BY, self.from.creator(from)?)?;
        }
        Ok(())
    }

    /// Whether key `key` of a map at `place` goes into the base: not the member's entry or
    /// scores, not a root key the caller drops, never a `_by` (the base writes its own).
    fn keeps(&mut self, place: Place, key: &str) -> bool {
        match place {
            _ if key == read::BY => false,
            Place::Root => (self.keep_root_key)(key),
            Place::Collection(read::MEMBERS) => key != self.member,
            Place::Collection(read::SCORES) if key.split('|').next() == Some(self.member.as_str()) => {
                self.scores += 1;
                false
            }
            Place::Collection(_) | Place::Other => true,
        }
    }

    fn list(&mut self, tx: &mut Transaction<'_>, from: &ObjId, to: &ObjId) -> Result<(), PlanError> {
        let doc = self.from.doc;
        for index in 0..doc.length(from) {
            let Some((value, id)) = doc.get(from, index)? else { continue };
            self.settled_conflicts += usize::from(doc.get_all(from, index)?.len() > 1);
            let at = tx.length(to);
            self.value(tx, value, &id, to, At::Index(at), Place::Other)?;
        }
        Ok(())
    }

    fn value(
        &mut self,
        tx: &mut Transaction<'_>,
        value: automerge::Value<'_>,
        id: &ObjId,
        to: &ObjId,
        at: At,
        place: Place,
    ) -> Result<(), PlanError> {
        let ty = match value {
            automerge::Value::Scalar(scalar) => {
                let scalar = match scalar.into_owned() {
                    ScalarValue::Counter(counter) => ScalarValue::counter(i64::from(&counter)),
                    other => other,
                };
                match at {
                    At::Key(key) => tx.put(to, key, scalar)?,
                    At::Index(index) => tx.insert(to, index, scalar)?,
                }
                return Ok(());
            }
            automerge::Value::Object(ty) => ty,
        };
        let made = match at {
            At::Key(key) => tx.put_object(to, key, ty)?,
            At::Index(index) => tx.insert_object(to, index, ty)?,
        };
        match ty {
            ObjType::Map | ObjType::Table => self.map(tx, id, &made, place),
            ObjType::List => self.list(tx, id, &made),
            ObjType::Text => Ok(tx.splice_text(&made, 0, 0, &self.from.doc.text(id)?)?),
        }
    }
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
/// side are all there, and an append to a list on each side keeps both: the base's items stay
/// where they are (each says who created it, and the last escalation step is the level) and
/// the device's follow (the plan's lists are only ever appended to or written whole). Where
/// both sides set the same register differently, or wrote the same list whole, the device's
/// own value wins: it is the one this change is written to carry.
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
    settle_lists(&mut out, Some(common), ours, theirs);
    Ok(out)
}

/// Settles each list both sides have, as the plan's lists change: appended to (escalation
/// steps) or written whole (the domains, a meeting's attendees). Where only one side changed a
/// list, that side's; where both only appended, the base's list and then the device's new
/// items, so that no item the base holds moves (the base writes who created each item, by
/// position, and the last escalation step is the current level); otherwise, as for a register,
/// the device's. The merge left the concurrent items in an order set by random actor ids.
fn settle_lists(merged: &mut Map, common: Option<&Map>, ours: &Map, theirs: &Map) {
    for (key, entry) in merged.iter_mut() {
        let before = common.and_then(|c| c.get(key));
        match (&mut entry.value, before, ours.get(key), theirs.get(key)) {
            (Value::Map(inner), before, Some(Value::Map(o)), Some(Value::Map(t))) => {
                let before = match before {
                    Some(Value::Map(c)) => Some(c),
                    _ => None,
                };
                settle_lists(inner, before, o, t);
            }
            (Value::List(_), Some(Value::List(c)), Some(Value::List(o)), Some(Value::List(t))) => {
                entry.value = settled_list(c, o, t);
            }
            _ => {}
        }
    }
}

/// Items are compared without the `_by` the base wrote into them (the device's document,
/// before the erasure, had none).
fn settled_list(common: &List, ours: &List, theirs: &List) -> Value {
    let values = |list: &List| list.iter().map(|item| without_by(&item.value)).collect::<Vec<_>>();
    let (c, o, t) = (values(common), values(ours), values(theirs));
    let items = |list: &List| list.iter().map(|item| item.value.clone()).collect::<Vec<_>>();
    let settled = if o == c {
        items(theirs)
    } else if t == c || !(o.starts_with(&c) && t.starts_with(&c)) {
        items(ours)
    } else {
        items(theirs).into_iter().chain(items(ours).into_iter().skip(c.len())).collect()
    };
    Value::List(List::from(settled))
}

fn without_by(value: &Value) -> Value {
    let mut value = value.clone();
    strip_by(&mut value);
    value
}

/// Removes every `_by` below `value` (depth bounded by the nesting limit).
fn strip_by(value: &mut Value) {
    match value {
        Value::Map(map) => {
            map.remove(read::BY);
            map.values_mut().for_each(|entry| strip_by(&mut entry.value));
        }
        Value::List(list) => {
            for index in 0..list.len() {
                if let Some(item) = list.get_mut(index) {
                    strip_by(item);
                }
            }
        }
        Value::Text(_) | Value::Scalar(_) => {}
    }
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
