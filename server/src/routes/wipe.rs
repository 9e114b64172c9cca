//! Wipe orders and wipe reports: the two calls a device makes without a session, because a
//! revoked device can no longer open one and a wiped device has no key left to sign a
//! challenge with.
//!
//! ```text
//! device: POST /v1/auth/session …                      ← 403 {"code": "revoked", …}
//! device: POST /v1/wipe-order {device_id}              ← {order}   (the administrator's signed order)
//!         (checks the order names it and chains to its pinned root, signs a report, erases itself)
//! device: POST /v1/wipe-report {report}                ← 204       (the listing shows it "wiped")
//! ```
//!
//! Neither call needs a secret: the order is signed by an administrator and the device obeys
//! only one that verifies against its pinned root, so handing it to anyone who asks reveals
//! only that the device was revoked; the report is signed by the device's own key, so nobody
//! else can make one up.
//!
//! But a self-wipe report is signed in advance and kept beside the device's store, so a copy
//! of the device's files holds a genuine one. Marking a live device wiped would cut it out of
//! every later key epoch, so a report is taken only when it can be true:
//!
//! | report | taken when | else |
//! |---|---|---|
//! | ordered (after a wipe order) | the device is revoked | 409 `device_active` |
//! | self-wipe (failed unlocks) | its nonce is the one the device registered at its last session, and the device is revoked or its lease has lapsed by the server's record (last session + the organisation's lease) | 409 `stale_wipe_report`, 409 `device_active` |
//!
//! Nothing changes on a refusal; a device refused `device_active` sends its report again
//! later. And a device that opens a session after being reported wiped (with the key the
//! report claims was destroyed) is evidently alive: the session forgets the report
//! (`routes::device::session`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use eenplan_protocol::api::{WipeOrderRequest, WipeOrderResponse, WipeReportUpload, code, hex, unhex};
use eenplan_protocol::wipe::{self, WipeCause, WipeReport, wipe_nonce_hash};

use super::{AppState, JsonBody, blocking, parse_hex, parse_json};
use crate::auth::now_ms;
use crate::error::ApiError;
use crate::storage::{DeviceId, DeviceRecord, DeviceState, WipeGuard};

/// How often a report is judged again when the device changed while it was judged.
const ATTEMPTS: usize = 3;

/// `POST /v1/wipe-order`: the order waiting for a revoked device; none for any other.
pub async fn order(
    State(state): State<Arc<AppState>>,
    body: JsonBody,
) -> Result<Json<WipeOrderResponse>, ApiError> {
    let request: WipeOrderRequest = parse_json(&body.0)?;
    let device = DeviceId(parse_hex(&request.device_id, "device_id")?);
    blocking(&state, move |state| {
        Ok(Json(WipeOrderResponse { order: state.storage.wipe_order(device)?.map(|order| hex(&order)) }))
    })
    .await
}

/// `POST /v1/wipe-report`: a device's report, signed with its own key, that it erased itself.
pub async fn report(State(state): State<Arc<AppState>>, body: JsonBody) -> Result<StatusCode, ApiError> {
    let upload: WipeReportUpload = parse_json(&body.0)?;
    let bytes = unhex(&upload.report).ok_or_else(|| ApiError::malformed("report must be hex"))?;
    let signed =
        wipe::Signed::from_bytes(&bytes).map_err(|_| ApiError::malformed("the report is malformed"))?;
    let claimed = WipeReport::claimed(&signed).map_err(|_| ApiError::malformed("the report is malformed"))?;
    let device = DeviceId(claimed.device.0);
    blocking(&state, move |state| {
        for _ in 0..ATTEMPTS {
            let record = state
                .storage
                .device(device)?
                .ok_or_else(|| ApiError::not_found("unknown_device", "no device has that id"))?;
            let report = WipeReport::verify(&signed, &record.signing_public).map_err(|_| {
                state.metrics.auth_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                ApiError::forbidden("bad_wipe_report", "the report is not signed by the device it names")
            })?;
            let now = now_ms();
            if let Err(refusal) = judge(state, &record, &report, now) {
                state.metrics.wipe_reports_refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(device = %hex(&device.0), cause = ?report.cause, reason = %refusal, "wipe report refused");
                return Err(refusal);
            }
            // Stored only if the device still stands as judged: a session that registers a
            // new nonce meanwhile must not be overtaken by a report of the old one.
            if state.storage.record_wipe(device, &bytes, &WipeGuard::of(&record), now)? {
                tracing::info!(device = %hex(&device.0), cause = ?report.cause, "device reported itself wiped");
                return Ok(StatusCode::NO_CONTENT);
            }
        }
        Err(ApiError::conflict(code::DEVICE_ACTIVE, "the device keeps changing; send the report again later"))
    })
    .await
}

/// Whether a verified report can be true of the device as the server knows it (see the
/// module docs).
fn judge(state: &AppState, device: &DeviceRecord, report: &WipeReport, now: i64) -> Result<(), ApiError> {
    let active = || ApiError::conflict(code::DEVICE_ACTIVE, "the device is not revoked and its lease runs");
    match report.cause {
        WipeCause::Ordered if device.state == DeviceState::Revoked => Ok(()),
        WipeCause::Ordered => Err(active()),
        WipeCause::FailedUnlocks => {
            let registered = device.wipe_nonce_hash;
            let carried = report.nonce.map(|n| wipe_nonce_hash(&n.0));
            if registered.is_none() || carried != registered {
                return Err(ApiError::conflict(
                    code::STALE_WIPE_REPORT,
                    "the report is not the one the device made at its last session",
                ));
            }
            if device.state == DeviceState::Revoked || lease_lapsed(state, device, now)? {
                Ok(())
            } else {
                Err(active())
            }
        }
    }
}

/// Whether the device's lease has run out by the server's own record: its last session (its
/// enrolment, if it never had one the server recorded) plus its organisation's lease.
fn lease_lapsed(state: &AppState, device: &DeviceRecord, now: i64) -> Result<bool, ApiError> {
    let lease_ms = i64::from(super::device::lease_hours(state, device)?).saturating_mul(3_600_000);
    let last = device.last_session_at.unwrap_or(device.created_at);
    Ok(last.saturating_add(lease_ms) <= now)
}
