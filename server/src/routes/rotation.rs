//! Changes that take keys away, and the key rotations that follow them: the sharing policy,
//! revoking a device, removing a participant from a plan. (The administrator's re-keying is
//! in [`super::rekey`], the signed revocation lists in [`super::revocations`].)
//!
//! Each change is one transaction in storage that deletes the envelopes of whoever lost
//! access and queues every affected document that has a key for a new epoch. From then on
//! the server refuses pushes to those documents (`rotating`), so nothing is written under a
//! key the revoked party holds. The administrator's CLI then works through the queue: it
//! fetches tasks, makes each document's next key, seals it (through the escrow key for any
//! older key a reader lacks) to every device that may still read the document and to escrow,
//! and posts the result, which the server checks is complete before it moves the epoch:
//!
//! ```text
//! admin: POST /v1/admin/revocations <signed list v4, naming the device>       ← {version: 4}
//! admin: POST /v1/admin/devices/{id}/revoke {reason: "stolen", wipe_order}  ← {pending: 160}
//!        (the device's live sockets close, its token stops working, its envelopes are gone)
//! admin: GET  /v1/admin/rekey?limit=50                                       ← RekeyTasks (CBOR)
//! admin: POST /v1/admin/rekey RekeyBatch (CBOR, whole documents)   ← RekeyAnswer {pending: 140}
//! …
//! admin: POST /v1/admin/policy {policy}                                      ← {pending: 12}
//! admin: POST /v1/admin/users/{user}/role {role, certificates: [new device certificates]}
//!                                                                            ← {pending: 8}
//! admin: POST /v1/admin/plans/{plan}/participants/{user}/remove               ← {pending: 3}
//! device: GET /v1/policy                                                     ← {policy}
//! ```
//!
//! A repeated or interrupted run ends in the same state: a task stays until its document has
//! an epoch above the one it had when the task was queued, and a result for an epoch that is
//! no longer next is refused (`stale`), so the CLI just fetches the tasks again.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use eenplan_protocol::api::{
    PolicyInfo, PolicyUpload, RevokeRequest, RoleChangeRequest, RotationsQueued, hex, unhex,
};
use eenplan_protocol::certificate::{AdminBody, Certificate};
use eenplan_protocol::policy::{PolicyError, SignedPolicy};
use eenplan_protocol::wipe::{self, RevocationReason, WipeOrder};
use serde::Deserialize;

use super::admin::AdminRequest;
use super::device::DeviceSession;
use super::{AppState, blocking, parse_hex, parse_json};
use crate::auth::now_ms;
use crate::error::ApiError;
use crate::storage::{DeviceId, PolicyRecord, Revocation, StorageError, UserId};

pub(super) fn network_root(state: &AppState) -> Result<[u8; 32], ApiError> {
    // Admin requests are only accepted once the network exists.
    Ok(state.storage.network()?.ok_or_else(|| ApiError::Internal("no network".into()))?.root_public)
}

/// Decodes a hex signed policy and checks it against the network root.
pub fn verified_policy(text: &str, root_public: &[u8; 32]) -> Result<PolicyRecord, ApiError> {
    let signed = unhex(text)
        .filter(|bytes| !bytes.is_empty())
        .ok_or_else(|| ApiError::malformed("policy must be the hex of a signed policy"))?;
    let policy =
        SignedPolicy::from_bytes(&signed).and_then(|p| p.verify(root_public)).map_err(|e| match e {
            PolicyError::BadSignature => ApiError::forbidden("bad_policy_signature", e.to_string()),
            other => ApiError::bad_request("bad_policy", other.to_string()),
        })?;
    Ok(PolicyRecord { signed, policy: std::sync::Arc::new(policy) })
}

fn policy_info(state: &AppState) -> Result<Json<PolicyInfo>, ApiError> {
    let record = state
        .storage
        .policy()?
        .ok_or_else(|| ApiError::not_found("no_policy", "the network has no sharing policy yet"))?;
    Ok(Json(PolicyInfo { policy: hex(&record.signed) }))
}

#[derive(Debug, Deserialize)]
pub struct PolicyQuery {
    version: Option<u32>,
}

/// `GET /v1/policy[?version=N]`: the signed policy, or an earlier version of it (a device
/// judges an epoch's writes by the version its key commitment names).
pub async fn policy(
    State(state): State<Arc<AppState>>,
    _session: DeviceSession,
    query: Result<Query<PolicyQuery>, QueryRejection>,
) -> Result<Json<PolicyInfo>, ApiError> {
    let version = query.map_err(|e| ApiError::malformed(e.body_text()))?.0.version;
    blocking(&state, move |state| match version {
        None => policy_info(state),
        Some(version) => {
            let signed = state.storage.policy_version(version)?.ok_or_else(|| {
                ApiError::not_found(
                    "unknown_policy_version",
                    format!("this network never had policy {version}"),
                )
            })?;
            Ok(Json(PolicyInfo { policy: hex(&signed) }))
        }
    })
    .await
}

/// `GET /v1/admin/policy`.
pub async fn admin_policy(
    State(state): State<Arc<AppState>>,
    request: AdminRequest,
) -> Result<Json<PolicyInfo>, ApiError> {
    request.run(&state, |state, _, _| policy_info(state)).await
}

fn not_newer(current: u32) -> ApiError {
    ApiError::conflict(
        "policy_not_newer",
        format!("the network's policy is version {current}; a new one must have a higher version"),
    )
}

/// `POST /v1/admin/policy`: a newer policy, signed by the root.
pub async fn set_policy(
    State(state): State<Arc<AppState>>,
    request: AdminRequest,
) -> Result<Json<RotationsQueued>, ApiError> {
    request
        .run(&state, |state, admin, body| {
            super::scope::require_network_wide(admin)?;
            let upload: PolicyUpload = parse_json(body)?;
            let record = verified_policy(&upload.policy, &network_root(state)?)?;
            let current = state.storage.policy()?.map_or(0, |p| p.policy.version);
            if record.policy.version <= current {
                return Err(not_newer(current));
            }
            let pending = state.storage.set_policy(&record, now_ms()).map_err(|e| match e {
                // Another upload won the race.
                StorageError::Conflict(_) => not_newer(current),
                other => other.into(),
            })?;
            tracing::info!(version = record.policy.version, admin = %admin.name, pending, "sharing policy replaced");
            Ok(Json(RotationsQueued { pending }))
        })
        .await
}

/// Checks that a wipe order names `device` and `reason` and is signed by a registered
/// administrator whose certificate the root signed.
fn check_wipe_order(
    state: &AppState,
    bytes: &[u8],
    device: DeviceId,
    reason: RevocationReason,
) -> Result<(), ApiError> {
    let bad = |message: &str| ApiError::bad_request("bad_wipe_order", message.to_string());
    let signed = wipe::Signed::from_bytes(bytes).map_err(|_| bad("the wipe order is malformed"))?;
    let claimed = WipeOrder::claimed(&signed).map_err(|_| bad("the wipe order is malformed"))?;
    if claimed.device.0 != device.0 {
        return Err(bad("the wipe order names another device"));
    }
    if claimed.reason != reason {
        return Err(bad("the wipe order gives another reason"));
    }
    let admin = registered_admin(state, &claimed.admin_certificate)?
        .ok_or_else(|| bad("the wipe order is not by an administrator of this network"))?;
    WipeOrder::verify(&signed, &admin.admin_public)
        .map_err(|_| bad("the wipe order's signature does not verify"))?;
    // The order's signer, not only the caller, must reach the device: it is what the device
    // checks.
    let record = state
        .storage
        .device(device)?
        .ok_or_else(|| ApiError::not_found("unknown_device", "no device has that id"))?;
    let user = state
        .storage
        .user(record.user)?
        .ok_or_else(|| ApiError::Internal("a device without a user".into()))?;
    let organisation = state.storage.org(user.org)?.map(|o| o.name).unwrap_or_default();
    if let Some(own) = admin.organisation.filter(|own| *own != organisation) {
        return Err(super::scope::out_of_scope(&own, &organisation));
    }
    Ok(())
}

/// The administrator a certificate names, if the root signed it and the server knows that
/// administrator.
pub(super) fn registered_admin(state: &AppState, certificate: &[u8]) -> Result<Option<AdminBody>, ApiError> {
    let root = network_root(state)?;
    let Ok(admin) = Certificate::from_bytes(certificate).and_then(|c| c.verify_admin(&root)) else {
        return Ok(None);
    };
    Ok(state.storage.admin(&admin.admin_public)?.map(|_| admin))
}

/// `POST /v1/admin/devices/{id}/revoke`: the device is refused from now on, its envelopes
/// are deleted, the wipe order waits for it, and everything it could read waits for a new
/// key epoch. Repeating it changes nothing and answers the same.
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    request: AdminRequest,
) -> Result<Json<RotationsQueued>, ApiError> {
    let id = DeviceId(parse_hex(&id, "the device id")?);
    let logged = super::admin::Logged {
        action: eenplan_protocol::audit::AuditAction::Revocation,
        plan: None,
        object: Some(hex(&id.0)),
    };
    request
        .run_logged(&state, Some(logged), move |state, admin, body| {
            let revoke: RevokeRequest = parse_json(body)?;
            let reason = RevocationReason::parse(&revoke.reason)
                .ok_or_else(|| ApiError::malformed("reason must be lost, stolen, replaced or left"))?;
            let wipe_order =
                unhex(&revoke.wipe_order).ok_or_else(|| ApiError::malformed("wipe_order must be hex"))?;
            super::scope::require_device(state, admin, id)?;
            check_wipe_order(state, &wipe_order, id, reason)?;
            // Devices and administrators believe a revocation only from the signed list, so
            // the server revokes nobody the list does not name.
            if !state.storage.on_revocation_list(id)? {
                return Err(ApiError::conflict(
                    "not_on_revocation_list",
                    "upload a revocation list naming the device (POST /v1/admin/revocations) first",
                ));
            }
            let revocation = Revocation { reason: reason.as_str().to_string(), wipe_order };
            let pending = state.storage.revoke_device(id, &revocation, now_ms())?;
            // After the commit: a socket that re-checks the device now finds it revoked.
            state.announce_revocation(id);
            tracing::info!(device = %hex(&id.0), reason = reason.as_str(), admin = %admin.name, pending, "device revoked");
            Ok(Json(RotationsQueued { pending }))
        })
        .await
}

/// `POST /v1/admin/plans/{plan}/participants/{user}/remove`.
pub async fn unassign(
    State(state): State<Arc<AppState>>,
    Path((plan, user)): Path<(String, String)>,
    request: AdminRequest,
) -> Result<Json<RotationsQueued>, ApiError> {
    let plan: [u8; 16] = parse_hex(&plan, "the plan id")?;
    let user = UserId(user.parse().map_err(|_| ApiError::malformed("the user id must be a number"))?);
    request
        .run(&state, move |state, admin, _| {
            super::scope::require_user(state, admin, user)?;
            super::admin::refuse_chartered(state, plan)?;
            let pending = state.storage.remove_participant(plan, user, now_ms())?;
            tracing::info!(plan = %hex(&plan), user = user.0, admin = %admin.name, pending, "participant removed");
            Ok(Json(RotationsQueued { pending }))
        })
        .await
}

/// `POST /v1/admin/users/{user}/role`: the user's new role, with a new certificate for
/// each of their active devices (same keys, the new role, signed by this administrator).
/// What the user loses moves to a new epoch; their devices' sessions end, so they pick up
/// the new certificate at once.
pub async fn change_role(
    State(state): State<Arc<AppState>>,
    Path(user): Path<String>,
    request: AdminRequest,
) -> Result<Json<RotationsQueued>, ApiError> {
    let user = UserId(user.parse().map_err(|_| ApiError::malformed("the user id must be a number"))?);
    request
        .run(&state, move |state, admin, body| {
            let change: RoleChangeRequest = parse_json(body)?;
            super::admin::check_name(&change.role, "role")?;
            super::scope::require_user(state, admin, user)?;
            let mut certificates = Vec::with_capacity(change.certificates.len());
            for upload in &change.certificates {
                let bytes = unhex(&upload.certificate)
                    .ok_or_else(|| ApiError::malformed("certificate must be hex"))?;
                let claimed = Certificate::from_bytes(&bytes)
                    .and_then(|c| c.claimed_device_body())
                    .map_err(|e| ApiError::bad_request("bad_certificate", e.to_string()))?;
                let id = DeviceId(claimed.device_id);
                let record = state.storage.device(id)?.filter(|d| d.user == user).ok_or_else(|| {
                    ApiError::bad_request(
                        "bad_certificate",
                        format!("device {} is not one of this user's", hex(&claimed.device_id)),
                    )
                })?;
                let body = super::admin::device_certificate(state, admin, &bytes, &record)?;
                if body.role != change.role {
                    return Err(ApiError::bad_request(
                        "certificate_mismatch",
                        "a certificate does not name the new role",
                    ));
                }
                certificates.push((id, bytes));
            }
            let pending = state.storage.change_role(user, &change.role, &certificates, now_ms()).map_err(
                |e| match e {
                    StorageError::InvalidState(message) => {
                        ApiError::bad_request("incomplete_role_change", message)
                    }
                    other => other.into(),
                },
            )?;
            // Live sockets re-check their device and end; the devices reconnect re-certified.
            for (device, _) in &certificates {
                state.announce_revocation(*device);
            }
            tracing::info!(user = user.0, role = %change.role, admin = %admin.name, pending, "role changed");
            Ok(Json(RotationsQueued { pending }))
        })
        .await
}
