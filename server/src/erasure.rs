//! Erasing one family member's personal data from a plan (AVG), above storage.
//!
//! The regisseur's device replaces the plan's `basis` by a history-free **base** without the
//! member, sealed at the document's next key epoch, and posts it with the signed `Erase`
//! entry that names the base's digest and the log position it holds everything up to
//! ([`eenplan_protocol::membership::Erasure`]). The server takes none of it on its word: the
//! entry must verify against the stored chain (only the regisseur's device may sign it), the
//! base must be the one the entry names, sealed and signed by that device at that epoch, and
//! the commitment must be that device's for that epoch with the key sealed to escrow. Then,
//! in one transaction, the entry, the commitment, the envelopes and the base are stored and
//! every older bundle, snapshot, envelope (escrow's too) and commitment of the document is
//! deleted; a bundle of the document after the base's position refuses the whole erasure
//! (`membership_conflict`: the device syncs and makes the base again), so nothing a server
//! acknowledged is lost. The WAL is checkpointed and truncated afterwards.

use eenplan_protocol::api::ESCROW_RECIPIENT;
use eenplan_protocol::audit::AuditAction;
use eenplan_protocol::epoch::{Minter, SignedCommitment};
use eenplan_protocol::membership::{Change, ERASED_COMPARTMENT, SignedBy};
use eenplan_protocol::sync::{ErasureUpload, Fixed};
use eenplan_protocol::{Bundle, BundleKind, DocumentId, api};

use crate::error::ApiError;
use crate::routes::AppState;
use crate::storage::{
    CommitmentRecord, DeviceId, DeviceRecord, Envelope, MemberErasure, NewBundle, PlanId, StorageError,
};

/// Verifies and stores `device`'s erasure of a member of `plan`.
pub fn erase_member(
    state: &AppState,
    device: &DeviceRecord,
    plan: PlanId,
    upload: ErasureUpload,
    now: i64,
) -> Result<api::MemberErased, ApiError> {
    let signer = SignedBy::Device { device: device.device_id.0, user: device.user.0 };
    let (mut update, step) = crate::membership::verified_update(
        state,
        plan,
        &upload.entry.0,
        &signer,
        Some(device.device_id),
        now,
    )?;
    let Change::Erase(erasure) = step.change else {
        return Err(ApiError::bad_request("bad_membership", "the entry does not erase a member"));
    };
    let document =
        DocumentId::new(plan, ERASED_COMPARTMENT).map_err(|_| ApiError::malformed("no document"))?;
    // The log's head only grows: a base covering more than it holds now is refused for good,
    // with what the device did wrong. The write checks again in its transaction.
    if erasure.covers > state.storage.head()? {
        return Err(ApiError::bad_request("bad_base", "the base covers positions the log has not reached"));
    }
    let base = checked_base(device, document, &erasure, upload.base.0, now)?;
    let (commitment, envelopes) =
        checked_key(state, device, document, erasure.epoch, step.seq, upload.rotation)?;
    update.erasure = Some(MemberErasure {
        document,
        epoch: erasure.epoch,
        covers: erasure.covers,
        base,
        commitment: CommitmentRecord {
            document,
            epoch: erasure.epoch,
            minter_device: Some(device.device_id),
            signed: commitment,
            stored_at: now,
        },
        envelopes,
    });
    let erased = state.storage.append_erasure(&update).map_err(|e| match e {
        StorageError::Conflict(message) => ApiError::conflict("membership_conflict", message),
        StorageError::InvalidState(message) => ApiError::conflict("stale", message),
        e => e.into(),
    })?;
    // In the server's own log, durably before the answer: what was deleted, by whom, of which
    // plan (the member is named nowhere outside the plan's sealed documents).
    let mut draft = crate::audit_log::Draft::new(
        crate::audit_log::device_actor(&*state.storage, device)?,
        AuditAction::EraseMember,
    );
    draft.plan = Some(plan);
    draft.detail = Some(format!(
        "deleted {} bundles, {} envelopes, {} escrow envelopes of older epochs",
        erased.bundles, erased.envelopes, erased.escrow_envelopes
    ));
    state.audit.record(draft)?;
    Ok(api::MemberErased {
        bundles: erased.bundles,
        envelopes: erased.envelopes,
        escrow_envelopes: erased.escrow_envelopes,
    })
}

/// The base the entry names: that digest, a snapshot of `document` covering the entry's
/// position at its epoch, sealed and signed by the posting device.
fn checked_base(
    device: &DeviceRecord,
    document: DocumentId,
    erasure: &eenplan_protocol::membership::Erasure,
    bytes: Vec<u8>,
    now: i64,
) -> Result<NewBundle, ApiError> {
    let bad = |why: &str| ApiError::bad_request("bad_base", why.to_owned());
    let base = Bundle::decode(bytes).map_err(|e| bad(&e.to_string()))?;
    if base.digest() != erasure.base.0 {
        return Err(bad("the base is not the one the entry names"));
    }
    let header = base.header;
    if header.kind != (BundleKind::Snapshot { covers: erasure.covers })
        || header.document != document
        || header.epoch != erasure.epoch
        || header.author != device.device_id.0
    {
        return Err(bad("the base's header does not match the entry"));
    }
    let key = ed25519_dalek::VerifyingKey::from_bytes(&device.signing_public)
        .map_err(|_| ApiError::Internal("a stored signing key does not decode".into()))?;
    base.verify(&key)
        .map_err(|_| ApiError::forbidden("bad_signature", "the base is not signed by this device"))?;
    Ok(NewBundle::from_wire(base, now))
}

/// The new epoch's commitment (this device's, for this epoch, at the entry's position,
/// under the current policy) and its envelopes: to escrow (required) and to the device.
fn checked_key(
    state: &AppState,
    device: &DeviceRecord,
    document: DocumentId,
    epoch: u32,
    seq: u32,
    upload: eenplan_protocol::sync::RotationUpload,
) -> Result<(Vec<u8>, Vec<Envelope>), ApiError> {
    let bad = |why: &str| ApiError::bad_request("bad_commitment", why.to_owned());
    let signed = SignedCommitment::from_bytes(&upload.commitment.0).map_err(|_| bad("malformed"))?;
    let commitment = signed.verify(&device.signing_public).map_err(|_| bad("not signed by this device"))?;
    let policy = state.storage.policy()?.map(|p| p.policy.version);
    if commitment.minter != Minter::Device(Fixed(device.device_id.0))
        || commitment.document() != Ok(document)
        || commitment.epoch != epoch
        || commitment.membership_seq != seq
        || Some(commitment.policy_version) != policy
    {
        return Err(bad("the commitment is not this device's for the erasure's epoch"));
    }
    let envelopes: Vec<Envelope> = upload
        .envelopes
        .into_iter()
        .filter(|e| e.document.0 == document.to_bytes() && e.epoch == epoch)
        .filter(|e| e.recipient.0 == ESCROW_RECIPIENT || e.recipient.0 == device.device_id.0)
        .map(|e| Envelope { recipient: DeviceId(e.recipient.0), document, epoch, bytes: e.envelope.0 })
        .filter(|e| crate::routes::sync::sealed_by(device, e))
        .collect();
    // Escrow always: an administrator can recover the plan whatever the device does next.
    if !envelopes.iter().any(|e| e.recipient.0 == ESCROW_RECIPIENT) {
        return Err(bad("the new key is not sealed to escrow"));
    }
    Ok((upload.commitment.0, envelopes))
}
