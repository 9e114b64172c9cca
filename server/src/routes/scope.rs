//! Where the calling administrator may act ([`AdminScope`], the one rule in the protocol
//! crate), checked before an admin request changes anything: acts on another organisation's
//! users or devices answer 403 `out_of_scope`, network-wide acts by an organisation's
//! administrator 403 `network_admin_only`. Devices check the same scope on everything an
//! administrator signs, so this is the honest server's part, not the only line.

use eenplan_protocol::api::code;
use eenplan_protocol::certificate::{AdminBody, AdminScope, Certificate};

use super::AppState;
use crate::error::ApiError;
use crate::storage::{AdminRecord, DeviceId, UserId};

/// The administrator's certificate body (verified against the root by `Auth::admin` for this
/// very request).
pub fn admin_body(admin: &AdminRecord) -> Result<AdminBody, ApiError> {
    Certificate::from_bytes(&admin.certificate)
        .and_then(|c| c.claimed_admin_body())
        .map_err(|e| ApiError::Internal(format!("stored admin certificate: {e}")))
}

pub fn scope(admin: &AdminRecord) -> Result<AdminScope, ApiError> {
    Ok(admin_body(admin)?.scope())
}

/// For the policy, organisations, administrators, key epochs and erasure.
pub fn require_network_wide(admin: &AdminRecord) -> Result<(), ApiError> {
    match scope(admin)? {
        AdminScope::NetworkWide => Ok(()),
        AdminScope::Organisation(own) => Err(network_admin_only(&own)),
    }
}

pub fn network_admin_only(own: &str) -> ApiError {
    ApiError::forbidden(
        code::NETWORK_ADMIN_ONLY,
        format!("an administrator of {own} may not do this; it needs a network-wide administrator"),
    )
}

pub fn out_of_scope(own: &str, other: &str) -> ApiError {
    ApiError::forbidden(code::OUT_OF_SCOPE, format!("an administrator of {own} may not act for {other}"))
}

/// For acts on the users and devices of the organisation named `organisation`.
pub fn require_org(admin: &AdminRecord, organisation: &str) -> Result<(), ApiError> {
    match scope(admin)? {
        AdminScope::Organisation(own) if own != organisation => Err(out_of_scope(&own, organisation)),
        _ => Ok(()),
    }
}

/// For acts on `user`: their organisation must be the administrator's. An unknown user is
/// 404 for every administrator.
pub fn require_user(state: &AppState, admin: &AdminRecord, user: UserId) -> Result<(), ApiError> {
    let user = state
        .storage
        .user(user)?
        .ok_or_else(|| ApiError::not_found("unknown_user", "no user has that id"))?;
    let organisation = state.storage.org(user.org)?.map(|o| o.name).unwrap_or_default();
    require_org(admin, &organisation)
}

/// For acts on `device`: its user's organisation must be the administrator's.
pub fn require_device(state: &AppState, admin: &AdminRecord, device: DeviceId) -> Result<(), ApiError> {
    let record = state
        .storage
        .device(device)?
        .ok_or_else(|| ApiError::not_found("unknown_device", "no device has that id"))?;
    require_user(state, admin, record.user)
}
