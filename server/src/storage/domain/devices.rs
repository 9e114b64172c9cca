//! Devices: enrolment, revocation, role changes and wipes.

use eenplan_protocol::DocumentId;

use crate::storage::backend::{ReadRows, WriteRows};
use crate::storage::{
    DeviceId, DeviceRecord, DeviceState, NewDevice, Result, Revocation, StorageError, UserId, WipeGuard,
};

pub(super) fn claim_enrolment(
    tx: &dyn WriteRows,
    code_id: &[u8; 32],
    device: &NewDevice,
    now: i64,
) -> Result<UserId> {
    let (user, expires_at) = tx.unused_enrolment(code_id)?.ok_or(StorageError::NotFound)?;
    if now >= expires_at {
        return Err(StorageError::Expired);
    }
    if !tx.insert_device(device, user, now)? {
        return Err(StorageError::Conflict("that device is enrolled already".into()));
    }
    tx.mark_enrolment_used(code_id, device.device_id, now)?;
    Ok(user)
}

pub(super) fn revoke_device(
    tx: &dyn WriteRows,
    id: DeviceId,
    revocation: &Revocation,
    now: i64,
) -> Result<u64> {
    let record = tx.device(id)?.ok_or(StorageError::NotFound)?;
    match record.state {
        // Keeps the first revocation's time, reason and order.
        DeviceState::Revoked => {}
        // A pending device never received a key: nothing to rotate.
        DeviceState::Pending => {
            tx.revoke_device(id, &revocation.reason, now)?;
            tx.insert_wipe_order(id, &revocation.wipe_order, now)?;
        }
        DeviceState::Active => {
            tx.revoke_device(id, &revocation.reason, now)?;
            tx.insert_wipe_order(id, &revocation.wipe_order, now)?;
            for (document, _) in tx.readable(record.user)? {
                tx.queue_rotation(document, now)?;
            }
        }
    }
    tx.pending_rotations()
}

pub(super) fn change_role(
    tx: &dyn WriteRows,
    user: UserId,
    role: &str,
    certificates: &[(DeviceId, Vec<u8>)],
    now: i64,
) -> Result<u64> {
    let old_role = tx.user(user)?.ok_or(StorageError::NotFound)?.role;
    let policy = tx
        .policy()?
        .ok_or_else(|| StorageError::InvalidState("the network has no sharing policy".into()))?
        .policy;
    let devices = tx.active_devices_of_user(user)?;
    let named: std::collections::BTreeSet<DeviceId> = certificates.iter().map(|c| c.0).collect();
    let active: std::collections::BTreeSet<DeviceId> = devices.iter().map(|d| d.device_id).collect();
    if named != active || named.len() != certificates.len() {
        return Err(StorageError::InvalidState(
            "the new certificates must cover exactly the user's active devices".into(),
        ));
    }
    for (device, certificate) in certificates {
        let Some(record) = devices.iter().find(|d| d.device_id == *device) else { continue };
        let old = record.certificate.as_deref().unwrap_or_default();
        // Kept under the time it started, which orders a device's certificates.
        let old_from = eenplan_protocol::certificate::Certificate::from_bytes(old)
            .and_then(|c| c.claimed_device_body())
            .map_or(record.created_at, |body| body.valid_from_ms);
        tx.recertify_device(*device, (old_from, old), certificate, now)?;
    }
    tx.set_user_role(user, role)?;
    let change = policy.role_change(&old_role, role);
    let plans = tx.plans_of_user(user)?;
    for plan in &plans {
        for compartment in &change.rotate {
            let document = DocumentId { plan: *plan, compartment: *compartment };
            if change.lost_reads.contains(compartment) {
                tx.delete_user_envelopes(document, user)?;
            }
            tx.queue_rotation(document, now)?;
        }
    }
    if !change.gained_reads.is_empty() && !plans.is_empty() {
        let granted = tx.advance_head(1)?;
        for plan in &plans {
            tx.set_granted_at(plan, user, granted)?;
        }
    }
    tx.pending_rotations()
}

pub(super) fn record_wipe(
    tx: &dyn WriteRows,
    id: DeviceId,
    report: &[u8],
    seen: &WipeGuard,
    now: i64,
) -> Result<bool> {
    let device = tx.device(id)?.ok_or(StorageError::NotFound)?;
    if WipeGuard::of(&device) != *seen {
        return Ok(false);
    }
    tx.insert_wipe_report(id, report, now)?;
    Ok(true)
}

/// The device `id` as it stands in this transaction, if it is active.
pub(super) fn require_active(rows: &dyn ReadRows, id: DeviceId) -> Result<DeviceRecord> {
    match rows.device(id)? {
        None => Err(StorageError::NotFound),
        Some(device) if device.state == DeviceState::Active => Ok(device),
        Some(_) => Err(StorageError::DeviceNotActive),
    }
}
