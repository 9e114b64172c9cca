//! Plans: registration, participants, membership entries and erasures.

use crate::storage::backend::WriteRows;
use crate::storage::{
    CREATOR_PLAN_ROLE, CharteredPlan, DeviceId, Erasure, MemberErased, MemberErasure, MembershipUpdate,
    NewBundle, PlanId, Result, StorageError, UserId,
};

pub(super) fn register_plan(
    tx: &dyn WriteRows,
    plan: PlanId,
    creator: UserId,
    created_by: DeviceId,
    now: i64,
) -> Result<bool> {
    super::devices::require_active(tx, created_by)?;
    // An erased plan stays erased: as if another user held it, nothing changes.
    if tx.erased_at(&plan)?.is_some() {
        return Ok(false);
    }
    if let Some(existing) = tx.plan_creator(&plan)? {
        return Ok(existing == creator);
    }
    if !tx.user_exists(creator)? {
        return Err(StorageError::NotFound);
    }
    tx.insert_plan(&plan, creator, created_by, now)?;
    let granted = tx.advance_head(1)?;
    tx.insert_participant(&plan, creator, CREATOR_PLAN_ROLE, granted)?;
    Ok(true)
}

pub(super) fn register_chartered_plan(tx: &dyn WriteRows, plan: &CharteredPlan) -> Result<bool> {
    super::devices::require_active(tx, plan.created_by)?;
    // An erased plan stays erased: as if another user held it, nothing changes.
    if tx.erased_at(&plan.plan)?.is_some() {
        return Ok(false);
    }
    if let Some(existing) = tx.plan_creator(&plan.plan)? {
        return Ok(existing == plan.creator);
    }
    if !tx.user_exists(plan.creator)? {
        return Err(StorageError::NotFound);
    }
    tx.insert_plan(&plan.plan, plan.creator, plan.created_by, plan.now)?;
    let position = tx.advance_head(1)?;
    tx.insert_membership(&plan.plan, 1, &plan.charter, position)?;
    tx.set_roster(&plan.plan, &plan.roster, eenplan_protocol::membership::LEVELS[0])?;
    let granted = tx.advance_head(1)?;
    tx.insert_participant(&plan.plan, plan.creator, &plan.creator_role, granted)?;
    Ok(true)
}

pub(super) fn add_participant(tx: &dyn WriteRows, plan: PlanId, user: UserId, plan_role: &str) -> Result<()> {
    if tx.plan_creator(&plan)?.is_none() || !tx.user_exists(user)? {
        return Err(StorageError::NotFound);
    }
    match tx.participant_role(&plan, user)? {
        // The grant keeps its position: the user's devices already follow the plan, and
        // which compartments they read follows the user's role, not the plan role.
        Some(_) => tx.set_participant_role(&plan, user, plan_role),
        None => {
            let granted = tx.advance_head(1)?;
            tx.insert_participant(&plan, user, plan_role, granted)
        }
    }
}

pub(super) fn remove_participant(tx: &dyn WriteRows, plan: PlanId, user: UserId, now: i64) -> Result<u64> {
    // What the user could read, before the participation that grants it goes.
    let lost = tx.readable_in_plan(&plan, user)?;
    tx.delete_participant(&plan, user)?;
    for document in lost {
        tx.queue_rotation(document, now)?;
    }
    tx.pending_rotations()
}

pub(super) fn erase_plan(tx: &dyn WriteRows, plan: PlanId, now: i64) -> Result<Erasure> {
    if let Some(erased_at) = tx.erased_at(&plan)? {
        return Ok(Erasure { erased_at, already: true, ..Erasure::default() });
    }
    if tx.plan_creator(&plan)?.is_none() {
        return Err(StorageError::NotFound);
    }
    tx.erase_plan(&plan, now)
}

/// Appends a verified membership entry and what it changes (see
/// [`Storage::append_membership`]); the caller's transaction.
pub(super) fn append_membership_in(tx: &dyn WriteRows, update: &MembershipUpdate) -> Result<u64> {
    if let Some(device) = update.by_device {
        super::devices::require_active(tx, device)?;
    }
    let held = tx.roster(&update.plan)?.map(|(seq, _)| seq);
    if held.and_then(|seq| seq.checked_add(1)) != Some(update.seq) {
        return Err(StorageError::Conflict(format!(
            "the chain is at entry {}, not {}",
            held.unwrap_or(0),
            update.seq.saturating_sub(1)
        )));
    }
    // What each removed user reads now, by the role and level the server goes by, before
    // this entry changes the level: it all moves to a new epoch, as when an administrator
    // removes them. The entry's own `rotate` weighs the roles the chain names, which a role
    // change since (a gained read) does not update.
    let mut lost = Vec::new();
    for user in &update.remove {
        lost.extend(tx.readable_in_plan(&update.plan, *user)?);
    }
    let position = tx.advance_head(1)?;
    tx.insert_membership(&update.plan, update.seq, &update.signed, position)?;
    tx.set_roster(&update.plan, &update.roster, &update.level)?;
    if let Some(closed_at) = update.closed_at {
        tx.set_closed_at(&update.plan, closed_at)?;
    }
    for (user, role) in &update.add {
        if !tx.user_exists(*user)? {
            return Err(StorageError::NotFound);
        }
        if tx.participant_role(&update.plan, *user)?.is_none() {
            let granted = tx.advance_head(1)?;
            tx.insert_participant(&update.plan, *user, role, granted)?;
        }
        tx.forget_leaver(&update.plan, *user)?;
    }
    for user in &update.remove {
        tx.delete_participant(&update.plan, *user)?;
        tx.record_leaver(&update.plan, *user, update.seq)?;
    }
    if !update.regrant.is_empty() {
        let granted = tx.advance_head(1)?;
        for user in &update.regrant {
            tx.set_granted_at(&update.plan, *user, granted)?;
        }
    }
    for document in update.rotate.iter().chain(&lost) {
        tx.queue_rotation(*document, update.now)?;
    }
    tx.pending_rotations()
}

/// The writes and deletions of a member's erasure ([`MemberErasure`]), after its entry;
/// `head` is the log's head before the entry.
pub(super) fn erase_older_epochs(
    tx: &dyn WriteRows,
    erasure: &MemberErasure,
    head: u64,
    now: i64,
) -> Result<MemberErased> {
    let document = erasure.document;
    let current = tx.current_epoch(document)?;
    if current.checked_add(1) != Some(erasure.epoch) {
        return Err(StorageError::InvalidState(format!(
            "the document is at epoch {current}; an erasure makes epoch {}",
            u64::from(current) + 1
        )));
    }
    // As a snapshot request's: a base covering positions the log has not reached would
    // cover changes pushed after it, which the pull would then take for covered.
    if erasure.covers > head {
        return Err(StorageError::InvalidState("the erasure's base covers more than the log holds".into()));
    }
    if tx.document_has_bundle_after(document, erasure.covers)? {
        return Err(StorageError::Conflict("a bundle of the document came after the erasure's base".into()));
    }
    let erased = tx.delete_document_epochs_before(document, erasure.epoch)?;
    if !tx.insert_commitment(&erasure.commitment)? {
        return Err(StorageError::InvalidState("the epoch has a commitment already".into()));
    }
    super::keys::put_envelopes_in(tx, &erasure.envelopes)?;
    tx.settle_rotations(document, erasure.epoch)?;
    let seq = tx.advance_head(1)?;
    let base = NewBundle { received_at: now, ..erasure.base.clone() };
    if tx.append_bundles(seq, &[(&base, Some(erasure.covers))])? != [Some(seq)] {
        return Err(StorageError::Conflict("the base's bundle id is taken".into()));
    }
    Ok(erased)
}
