//! Retention on the server (DESIGN §8), above storage: which plans are closed, and erasing a
//! plan whose retention period has ended (crypto-erasure: without its envelopes, escrow's
//! included, nothing opens its bundles, and the bundles go too).
//!
//! The administrator's `retention run` verifies each chain against the root itself and asks
//! for an erase only when it computes the end passed; the server erases only when its own
//! stored chain (verified when each entry was stored) ends with a close and the end by the
//! root-signed policy it holds has passed by its own clock. Both sides check: neither a
//! compromised server nor a stolen admin key alone erases a plan early (shortening the
//! period takes a policy signed by the root, kept offline).

use eenplan_protocol::api::{self, ClosedPlan, ClosedPlans, PlanErased};

use crate::error::ApiError;
use crate::membership::roster;
use crate::routes::AppState;
use crate::storage::PlanId;

/// The closed plans, as the stored chains say.
pub fn closed_plans(state: &AppState) -> Result<ClosedPlans, ApiError> {
    let plans = state.storage.closed_plans()?;
    Ok(ClosedPlans {
        plans: plans
            .into_iter()
            .map(|(plan, closed_at_ms)| ClosedPlan { plan: api::hex(&plan), closed_at_ms })
            .collect(),
    })
}

/// Erases `plan` if its stored chain shows it closed and its retention period ended by
/// `now`; a plan erased before answers `already` (and its clean-up runs again).
pub fn erase(state: &AppState, plan: PlanId, now: i64) -> Result<PlanErased, ApiError> {
    if state.storage.erased_at(plan)?.is_none() {
        let end = retention_end(state, plan)?;
        if now < end {
            return Err(ApiError::conflict(
                "retention_not_over",
                format!("the plan's retention period ends at {end} (ms), not yet by this server's clock"),
            ));
        }
    }
    let erasure = state.storage.erase_plan(plan, now)?;
    Ok(PlanErased {
        plan: api::hex(&plan),
        erased_at_ms: erasure.erased_at,
        envelopes: erasure.envelopes,
        escrow_envelopes: erasure.escrow_envelopes,
        bundles: erasure.bundles,
        already: erasure.already,
    })
}

/// When the plan's retention period ends: its stored chain's close plus the years of the
/// policy the server holds.
fn retention_end(state: &AppState, plan: PlanId) -> Result<i64, ApiError> {
    let not_closed =
        || ApiError::conflict("not_closed", "the plan's membership chain does not end with a close");
    let roster = roster(state, plan)?.ok_or_else(not_closed)?;
    let signed = roster.state().closed_at_ms.ok_or_else(not_closed)?;
    // The later of the signed close and when this server took it in (`closed_at`).
    let received = state.storage.closed_at(plan)?;
    let closed_at = received.map_or(signed, |received| received.max(signed));
    let policy =
        state.storage.policy()?.ok_or_else(|| ApiError::not_found("no_policy", "no sharing policy"))?;
    Ok(policy.policy.retention().end_of(closed_at))
}
