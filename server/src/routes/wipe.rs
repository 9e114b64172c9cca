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
//! else can claim a device wiped itself.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use eenplan_protocol::api::{WipeOrderRequest, WipeOrderResponse, WipeReportUpload, hex, unhex};
use eenplan_protocol::wipe::{self, WipeReport};

use super::{AppState, JsonBody, blocking, parse_hex, parse_json};
use crate::auth::now_ms;
use crate::error::ApiError;
use crate::storage::DeviceId;

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
        let record = state
            .storage
            .device(device)?
            .ok_or_else(|| ApiError::not_found("unknown_device", "no device has that id"))?;
        WipeReport::verify(&signed, &record.signing_public).map_err(|_| {
            state.metrics.auth_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ApiError::forbidden("bad_wipe_report", "the report is not signed by the device it names")
        })?;
        state.storage.record_wipe(device, &bytes, now_ms())?;
        tracing::info!(device = %hex(&device.0), cause = ?claimed.cause, "device reported itself wiped");
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
