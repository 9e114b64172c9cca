//! Retention over HTTP, for administrators (see [`crate::retention`] for the rules):
//!
//! ```text
//! GET  /v1/admin/retention/closed                 ← JSON ClosedPlans
//! POST /v1/admin/retention/plans/{plan}/erase     ← JSON PlanErased | 409 not_closed
//!                                                   | 409 retention_not_over | 404 unknown_plan
//! ```

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use eenplan_protocol::api::{ClosedPlans, PlanErased, hex};

use eenplan_protocol::audit::AuditAction;

use super::admin::{AdminRequest, Logged};
use super::{AppState, parse_hex};
use crate::auth::now_ms;
use crate::error::ApiError;

/// `GET /v1/admin/retention/closed`.
pub async fn closed(
    State(state): State<Arc<AppState>>,
    request: AdminRequest,
) -> Result<Json<ClosedPlans>, ApiError> {
    request.run(&state, |state, _, _| Ok(Json(crate::retention::closed_plans(state)?))).await
}

/// `POST /v1/admin/retention/plans/{plan}/erase`.
pub async fn erase(
    State(state): State<Arc<AppState>>,
    Path(plan): Path<String>,
    request: AdminRequest,
) -> Result<Json<PlanErased>, ApiError> {
    let plan: [u8; 16] = parse_hex(&plan, "the plan id")?;
    // The erasure is in the server's own log as what it is, naming the plan, with its outcome.
    let logged = Logged { action: AuditAction::Erase, plan: Some(plan), object: None };
    request
        .run_logged(&state, Some(logged), move |state, admin, _| {
            super::scope::require_network_wide(admin)?;
            let erased = crate::retention::erase(state, plan, now_ms())?;
            tracing::info!(plan = %hex(&plan), admin = %admin.name, bundles = erased.bundles, already = erased.already, "plan erased");
            Ok(Json(erased))
        })
        .await
}
