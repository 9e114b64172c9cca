//! A plan's membership chain over HTTP (see [`crate::membership`] for the rules):
//!
//! ```text
//! POST /v1/plans/{plan}/membership   (CBOR SignedEntry, by a device)  ← 204 | 403 not_regisseur
//!                                                                       | 409 membership_conflict
//! GET  /v1/plans/{plan}/membership?after=N   (a participant's device) ← CBOR [SignedEntry bytes]
//! ```

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use eenplan_protocol::api::hex;
use eenplan_protocol::membership::MAX_ENTRY_LEN;
use eenplan_protocol::sync::{self, Blob};
use serde::Deserialize;

use super::admin::AdminRequest;
use super::device::DeviceSession;
use super::{AppState, Body, blocking, parse_hex};
use crate::auth::now_ms;
use crate::error::ApiError;

/// `POST /v1/plans/{plan}/membership`.
pub async fn append(
    State(state): State<Arc<AppState>>,
    session: DeviceSession,
    Path(plan): Path<String>,
    body: Body<MAX_ENTRY_LEN>,
) -> Result<StatusCode, ApiError> {
    let plan: [u8; 16] = parse_hex(&plan, "the plan id")?;
    let device = session.device;
    let pending =
        blocking(&state, move |state| crate::membership::append(state, &device, plan, &body.0, now_ms()))
            .await?;
    tracing::info!(plan = %hex(&plan), pending, "membership entry appended");
    // The plan's readers learn of it at once (new participants get the plan's history).
    state.events.hint_plan(plan);
    Ok(StatusCode::NO_CONTENT)
}

/// The largest erasure upload: a base of the largest bundle, its entry and a few envelopes.
pub(super) const MAX_ERASURE_UPLOAD: usize = eenplan_protocol::bundle::MAX_BUNDLE_LEN + 64 * 1024;

/// `POST /v1/plans/{plan}/erasure` (CBOR `ErasureUpload`): see [`crate::erasure`].
pub async fn erase_member(
    State(state): State<Arc<AppState>>,
    session: DeviceSession,
    Path(plan): Path<String>,
    body: Body<MAX_ERASURE_UPLOAD>,
) -> Result<axum::Json<eenplan_protocol::api::MemberErased>, ApiError> {
    let plan: [u8; 16] = parse_hex(&plan, "the plan id")?;
    let upload: sync::ErasureUpload = sync::decode(&body.0, MAX_ERASURE_UPLOAD)
        .map_err(|_| ApiError::malformed("not an erasure upload"))?;
    let device = session.device;
    let erased =
        blocking(&state, move |state| crate::erasure::erase_member(state, &device, plan, upload, now_ms()))
            .await?;
    tracing::info!(plan = %hex(&plan), bundles = erased.bundles, "member erased; older epochs deleted");
    state.events.hint_plan(plan);
    Ok(axum::Json(erased))
}

#[derive(Debug, Deserialize)]
pub struct After {
    #[serde(default)]
    after: u32,
}

/// `GET /v1/plans/{plan}/membership?after=N`: for the plan's participants only.
pub async fn entries(
    State(state): State<Arc<AppState>>,
    session: DeviceSession,
    Path(plan): Path<String>,
    Query(after): Query<After>,
) -> Result<Response, ApiError> {
    let plan: [u8; 16] = parse_hex(&plan, "the plan id")?;
    let user = session.device.user;
    let entries = blocking(&state, move |state| {
        if !state.storage.is_participant(plan, user)? {
            return Err(ApiError::not_found("unknown_plan", "no plan of yours has that id"));
        }
        Ok(state.storage.membership_entries(plan, after.after)?)
    })
    .await?;
    let bytes = sync::encode(&entries.into_iter().map(Blob).collect::<Vec<_>>());
    Ok(([(header::CONTENT_TYPE, "application/cbor")], bytes).into_response())
}

/// `GET /v1/admin/plans/{plan}/membership`: the whole chain, for an administrator who signs
/// after it.
pub async fn admin_entries(
    State(state): State<Arc<AppState>>,
    Path(plan): Path<String>,
    request: AdminRequest,
) -> Result<Response, ApiError> {
    let plan: [u8; 16] = parse_hex(&plan, "the plan id")?;
    request
        .run(&state, move |state, _, _| {
            let entries = state.storage.membership_entries(plan, 0)?;
            let bytes = sync::encode(&entries.into_iter().map(Blob).collect::<Vec<_>>());
            Ok(([(header::CONTENT_TYPE, "application/cbor")], bytes).into_response())
        })
        .await
}

/// `POST /v1/admin/plans/{plan}/membership` (CBOR `SignedEntry` signed by this
/// administrator): a handover or removal for a regisseur who is gone.
pub async fn admin_append(
    State(state): State<Arc<AppState>>,
    Path(plan): Path<String>,
    request: AdminRequest<MAX_ENTRY_LEN>,
) -> Result<axum::Json<eenplan_protocol::api::RotationsQueued>, ApiError> {
    let plan: [u8; 16] = parse_hex(&plan, "the plan id")?;
    let answer = request
        .run(&state, move |state, admin, body| {
            let signer = super::scope::admin_body(admin)?;
            let pending = crate::membership::append_by_admin(state, &signer, plan, body, now_ms())?;
            tracing::info!(plan = %hex(&plan), admin = %admin.name, pending, "membership entry appended by an administrator");
            Ok(axum::Json(eenplan_protocol::api::RotationsQueued { pending }))
        })
        .await?;
    state.events.hint_plan(plan);
    Ok(answer)
}
