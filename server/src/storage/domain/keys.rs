//! Keys and the rules that move them: the sharing policy, the revocation list,
//! commitments, rotations and envelopes.

use eenplan_protocol::DocumentId;

use crate::storage::backend::WriteRows;
use crate::storage::{
    CommitmentOutcome, CommitmentRecord, CompletedRotation, DeviceId, DeviceState, Envelope, EnvelopeOutcome,
    EnvelopeRefusal, PolicyRecord, Result, RevocationListRecord, StorageError,
};

pub(super) fn set_policy(tx: &dyn WriteRows, record: &PolicyRecord, now: i64) -> Result<u64> {
    let old = tx.policy()?;
    if let Some(old) = &old
        && record.policy.version <= old.policy.version
    {
        return Err(StorageError::Conflict(format!(
            "policy version {} is not newer than {}",
            record.policy.version, old.policy.version
        )));
    }
    let old = old.map(|o| o.policy).unwrap_or_default();
    // Reads taken away: those participants' devices lose the keys, and the documents
    // move to an epoch they will not get.
    for (role, compartment) in old.lost_reads(&record.policy) {
        for (plan, user) in tx.participants_with_role(&role)? {
            let document = DocumentId { plan, compartment };
            tx.delete_user_envelopes(document, user)?;
            tx.queue_rotation(document, now)?;
        }
    }
    // Writes taken away (reads kept): the keys stay, but the new epoch is where the
    // new write rules start for every receiver.
    for (role, compartment) in old.lost_writes(&record.policy) {
        for (plan, _) in tx.participants_with_role(&role)? {
            tx.queue_rotation(DocumentId { plan, compartment }, now)?;
        }
    }
    // Reads given: a new grant position makes the plan new to those devices' cursors,
    // so their next pull sends the newly readable documents from their beginning
    // (the plan's other documents again too: redundant, never missing).
    let gained = record.policy.lost_reads(&old);
    let roles: std::collections::BTreeSet<&str> = gained.iter().map(|(role, _)| role.as_str()).collect();
    let mut regranted = Vec::new();
    for role in roles {
        regranted.extend(tx.participants_with_role(role)?);
    }
    // Only a grant that someone receives takes a position.
    if !regranted.is_empty() {
        let granted = tx.advance_head(1)?;
        for (plan, user) in regranted {
            tx.set_granted_at(&plan, user, granted)?;
        }
    }
    tx.replace_policy(record, now)?;
    tx.pending_rotations()
}

pub(super) fn put_revocation_list(tx: &dyn WriteRows, list: &RevocationListRecord, now: i64) -> Result<bool> {
    let newest = tx.revocation_list(None)?;
    if let Some((version, signed)) = tx.revocation_list(Some(list.version))? {
        return if signed == list.signed {
            Ok(false)
        } else {
            Err(StorageError::Conflict(format!("another revocation list is version {version}")))
        };
    }
    let next = newest.map_or(1, |(version, _)| version.saturating_add(1));
    if list.version != next {
        return Err(StorageError::Conflict(format!("the next revocation list is version {next}")));
    }
    tx.insert_revocation_list(list.version, &list.signed, now)?;
    for device in &list.devices {
        tx.insert_revocation_entry(*device, list.version)?;
    }
    Ok(true)
}

pub(super) fn put_commitment(
    tx: &dyn WriteRows,
    commitment: &CommitmentRecord,
    policy_version: u32,
) -> Result<CommitmentOutcome> {
    if let Some(minter) = commitment.minter_device {
        let user = super::devices::require_active(tx, minter)?.user;
        let document = commitment.document;
        if !tx.readable_in_plan(&document.plan, user)?.contains(&document) {
            return Ok(CommitmentOutcome::NoAccess);
        }
    }
    let current = tx.policy_version_in_force()?.unwrap_or(0);
    if policy_version != current {
        return Ok(CommitmentOutcome::OtherPolicy { current });
    }
    Ok(if tx.insert_commitment(commitment)? { CommitmentOutcome::Stored } else { CommitmentOutcome::Exists })
}

pub(super) fn complete_rotation(tx: &dyn WriteRows, rotation: &CompletedRotation) -> Result<u64> {
    let document = rotation.document;
    let current = tx.current_epoch(document)?;
    if current.checked_add(1) != Some(rotation.new_epoch) {
        return Err(StorageError::InvalidState(format!(
            "the document is at epoch {current}; the next epoch is {}",
            u64::from(current) + 1
        )));
    }
    if !tx.rotation_pending_before(document, rotation.new_epoch)? {
        return Err(StorageError::InvalidState("no rotation of the document is waiting".into()));
    }
    if let Some(minter) = rotation.minter_device {
        let user = super::devices::require_active(tx, minter)?.user;
        if !tx.readable_in_plan(&document.plan, user)?.contains(&document) {
            return Err(StorageError::InvalidState("the minter may not read the document".into()));
        }
    }
    let commitment = CommitmentRecord {
        document,
        epoch: rotation.new_epoch,
        minter_device: rotation.minter_device,
        signed: rotation.commitment.clone(),
        stored_at: rotation.now,
    };
    if !tx.insert_commitment(&commitment)? {
        return Err(StorageError::InvalidState("the epoch has a commitment already".into()));
    }
    put_envelopes_in(tx, &rotation.envelopes)?;
    tx.settle_rotations(document, rotation.new_epoch)?;
    tx.pending_rotations()
}

pub(super) fn refuse_envelopes(
    tx: &dyn WriteRows,
    recipient: DeviceId,
    refusals: &[EnvelopeRefusal],
) -> Result<u64> {
    super::devices::require_active(tx, recipient)?;
    let mut deleted = 0;
    for refusal in refusals {
        let Some(stored) = tx.envelope_sealer(recipient, refusal.document, refusal.epoch)? else {
            continue;
        };
        if stored.is_some_and(|sealer| sealer != refusal.sealer) {
            continue;
        }
        tx.delete_envelope(recipient, refusal.document, refusal.epoch)?;
        deleted += 1;
        if stored.is_some() {
            tx.insert_refused_sealer(recipient, refusal.document, refusal.epoch, refusal.sealer)?;
        }
    }
    Ok(deleted)
}

/// One envelope a device sealed, inside the caller's transaction.
pub(super) fn put_sealed_envelope(
    tx: &dyn WriteRows,
    sealer: DeviceId,
    envelope: &Envelope,
) -> Result<EnvelopeOutcome> {
    let stored = if envelope.recipient.0 == eenplan_protocol::api::ESCROW_RECIPIENT {
        tx.insert_escrow_envelope(envelope)?
    } else {
        match tx.device_state(envelope.recipient)? {
            None | Some(DeviceState::Revoked) => return Ok(EnvelopeOutcome::NoRecipient),
            Some(DeviceState::Pending | DeviceState::Active) => {}
        }
        if tx.sealer_refused(envelope.recipient, envelope.document, envelope.epoch, sealer)? {
            return Ok(EnvelopeOutcome::SealerRefused);
        }
        tx.insert_envelope(envelope, Some(sealer))?
    };
    Ok(if stored { EnvelopeOutcome::Stored } else { EnvelopeOutcome::Exists })
}

/// An administrator's envelopes for a rotation, inside the caller's transaction: escrow ones
/// apart (the first per document and epoch stays), device ones at a new log position (the
/// first per recipient, document and epoch stays). An unknown or revoked recipient fails the
/// whole rotation.
pub(super) fn put_envelopes_in(tx: &dyn WriteRows, envelopes: &[Envelope]) -> Result<()> {
    for envelope in envelopes {
        if envelope.recipient.0 == eenplan_protocol::api::ESCROW_RECIPIENT {
            tx.insert_escrow_envelope(envelope)?;
            continue;
        }
        match tx.device_state(envelope.recipient)? {
            None => return Err(StorageError::NotFound),
            Some(DeviceState::Revoked) => {
                return Err(StorageError::InvalidState("the recipient is revoked".into()));
            }
            Some(DeviceState::Pending | DeviceState::Active) => {
                tx.insert_envelope(envelope, None)?;
            }
        }
    }
    Ok(())
}
