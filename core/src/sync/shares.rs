//! Sharing a plan with another user: queued on the device, carried out by a sync.
//!
//! A worker creates a plan in front of the family and shares it before the phone has ever
//! synced it, or while it has no signal. So a share is first a durable entry in the device's
//! queue; every sync first registers the plans new to the server (with the commitments to their
//! keys), then carries out the queued shares, then runs one more round so that the new
//! participants' devices get the keys. A share the server refuses for good (an unknown user)
//! leaves the queue and is reported; one the network interrupts waits for the next sync.

use std::str::FromStr;

use eenplan_protocol::api;
use serde::{Deserialize, Serialize};

use super::access::Access;
use super::transport::Transport;
use super::{ServerState, ShareOutcome, SyncError, SyncReport, driver};
use crate::audit::{Access as Accessed, AuditAction};
use crate::device::Device;
use crate::error::CoreError;
use crate::ids::PlanId;
use crate::plan::{PlanError, Role};

pub(crate) const STATE_SHARES: &str = "shares";
/// Shares that may wait on one device: far more than a worker makes offline in a week.
pub const MAX_QUEUED_SHARES: usize = 256;

/// A share waiting for a sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedShare {
    pub plan: PlanId,
    /// The user's name (or id) as the sharer gave it.
    pub user: String,
    pub role: Role,
    pub queued_at_ms: i64,
}

/// A share the server refused for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShareFailure {
    pub plan: PlanId,
    pub user: String,
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl Device {
    /// Queues a share of `plan` with the user named `user` in `role`, durably; a sync carries
    /// it out. Sharing the same plan with the same user again replaces the queued role.
    /// Recorded in the access log as `ParticipantChange` (object `add`), in the queue's
    /// transaction.
    pub fn queue_share(&mut self, plan: &PlanId, user: &str, role: &str) -> Result<(), CoreError> {
        let access = Accessed::on(AuditAction::ParticipantChange, *plan).object("add");
        self.audited(access.clone(), |d| d.queue_share_recorded(plan, user, role, access))
    }

    fn queue_share_recorded(
        &mut self,
        plan: &PlanId,
        user: &str,
        role: &str,
        access: Accessed,
    ) -> Result<(), CoreError> {
        self.ensure_not_wiped()?;
        if !self.store().has_plan(*plan)? {
            return Err(CoreError::UnknownPlan(*plan));
        }
        // In a plan with a signed membership chain only the regisseur adds participants;
        // saying so now beats a refusal at the next sync.
        if let Some(roster) = self.roster(plan)?
            && Some(roster.state().regisseur) != self.own_user_id()?
        {
            return Err(CoreError::NotAllowed(
                "alleen de regisseur van dit plan kan deelnemers toevoegen".into(),
            ));
        }
        let role = Role::from_str(role).map_err(PlanError::from)?;
        let user = user.trim();
        if user.is_empty() || user.chars().count() > 200 {
            return Err(PlanError::from(crate::plan::ValidationError::InvalidValue {
                field: "user",
                value: user.chars().take(64).collect(),
                allowed: "a user's name, as the administrator entered it".into(),
            })
            .into());
        }
        let mut queue = self.queued_shares()?;
        queue.retain(|s| !(s.plan == *plan && s.user == user));
        if queue.len() >= MAX_QUEUED_SHARES {
            return Err(SyncError::Protocol(format!(
                "{MAX_QUEUED_SHARES} shares already wait for a sync; sync first"
            ))
            .into());
        }
        queue.push(QueuedShare { plan: *plan, user: user.to_owned(), role, queued_at_ms: self.now_ms() });
        self.put_durable_queue_recorded(STATE_SHARES, &queue, access)
    }

    /// The shares waiting for a sync, oldest first.
    pub fn queued_shares(&self) -> Result<Vec<QueuedShare>, CoreError> {
        self.durable_queue(STATE_SHARES, "queued shares")
    }

    fn settle_shares(&mut self, settled: &[QueuedShare]) -> Result<(), CoreError> {
        let mut queue = self.queued_shares()?;
        queue.retain(|s| !settled.contains(s));
        self.put_durable_queue(STATE_SHARES, &queue)
    }
}

/// Queues a share and syncs at once. `Queued` when the server could not be reached (the
/// share waits for the next sync); the server's refusal of this share as an error.
pub(super) fn share_now(
    access: &impl Access,
    plan: &PlanId,
    user: &str,
    role: &str,
) -> Result<ShareOutcome, CoreError> {
    access.with(|device| device.queue_share(plan, user, role))?;
    let report = match driver::sync(access) {
        Ok(report) => report,
        Err(CoreError::Sync(SyncError::Network(_))) => return Ok(ShareOutcome::Queued),
        Err(e) => return Err(e),
    };
    let user = user.trim();
    if let Some(failure) = report.share_failures.iter().find(|f| f.plan == *plan && f.user == user) {
        return Err(SyncError::Server {
            status: failure.status,
            code: failure.code.clone(),
            message: failure.message.clone(),
        }
        .into());
    }
    let waiting =
        access.with(|device| device.queued_shares())?.iter().any(|s| s.plan == *plan && s.user == user);
    Ok(if waiting { ShareOutcome::Queued } else { ShareOutcome::Done })
}

/// Carries out the queued shares of plans the server knows; returns how many were done.
pub(super) fn carry_out(
    access: &impl Access,
    server: &ServerState,
    transport: &Transport,
    token: &str,
    report: &mut SyncReport,
) -> Result<usize, CoreError> {
    let queue = access.with(|device| {
        let mut ready = Vec::new();
        for share in device.queued_shares()? {
            if device.store().is_registered(share.plan)? {
                ready.push(share);
            }
        }
        Ok(ready)
    })?;
    let mut settled = Vec::new();
    let mut done = 0;
    let mut outcome = Ok(());
    for share in queue {
        match carry_out_one(access, server, transport, token, &share) {
            Ok(()) => done += 1,
            // Another entry of the plan's chain came first: the next sync signs it again.
            Err(CoreError::Sync(SyncError::Server { status: 409, code, .. }))
                if code == api::ErrorCode::MembershipConflict.as_str() =>
            {
                continue;
            }
            Err(CoreError::Sync(SyncError::NoChainYet)) => continue,
            // Waits, queued, for an administrator to approve the user's device.
            Err(CoreError::Sync(e @ SyncError::NoApprovedDevice(_))) => {
                report.refused.push(e.to_string());
                continue;
            }
            Err(CoreError::Sync(SyncError::Server { status, code, message }))
                if (400..500).contains(&status) && status != 401 =>
            {
                report.refused.push(format!("share of plan {} with {}: {message}", share.plan, share.user));
                report.share_failures.push(ShareFailure {
                    plan: share.plan,
                    user: share.user.clone(),
                    status,
                    code,
                    message,
                });
            }
            // The network or the server's state: the share waits for the next sync.
            Err(e @ CoreError::Sync(SyncError::Network(_) | SyncError::Server { .. })) => {
                outcome = Err(e);
                break;
            }
            // Refused here for good (the user has no approved device to be named by).
            Err(e) => {
                report.refused.push(format!("share of plan {} with {}: {e}", share.plan, share.user));
                report.share_failures.push(ShareFailure {
                    plan: share.plan,
                    user: share.user.clone(),
                    status: 0,
                    code: "refused".into(),
                    message: e.to_string(),
                });
            }
        }
        settled.push(share);
    }
    if !settled.is_empty() {
        access.with(|device| device.settle_shares(&settled))?;
    }
    report.shares_done += done;
    outcome?;
    Ok(done)
}

/// Adds the user: through the plan's signed membership chain, or (a plan registered without
/// one, by an older device) as the server's record.
fn carry_out_one(
    access: &impl Access,
    server: &ServerState,
    transport: &Transport,
    token: &str,
    share: &QueuedShare,
) -> Result<(), CoreError> {
    let user = find_user(transport, token, &share.user)?;
    if access.with(|device| Ok(device.held_chain(&share.plan)?.is_some()))? {
        let Some(entry) = access.with(|device| device.sign_addition(server, share.plan, &user))? else {
            return Ok(());
        };
        transport.post(
            &api::membership_path(share.plan.as_bytes()),
            Some(token),
            "application/cbor",
            entry.clone(),
            4096,
        )?;
        return access.with(|device| device.keep_own_entry(server, share.plan, &entry));
    }
    if !access.with(|device| device.store().is_registered(share.plan).map_err(CoreError::from))? {
        return Err(SyncError::NoChainYet.into());
    }
    let body =
        serde_json::to_vec(&api::Assignment { user_id: user.id, role: share.role.as_str().to_owned() })
            .map_err(|e| SyncError::Protocol(e.to_string()))?;
    transport.post(
        &api::participants_path(share.plan.as_bytes()),
        Some(token),
        "application/json",
        body,
        4096,
    )?;
    Ok(())
}

/// The one user named `user` (exactly, as the administrator entered it), or numbered `user`
/// when nobody has that name. The server answers only exact names, never its directory.
pub(super) fn find_user(transport: &Transport, token: &str, user: &str) -> Result<api::UserMatch, SyncError> {
    let lookup = api::UserLookup { name: user.to_owned() };
    let matches: Vec<api::UserMatch> = transport.post_json(api::PATH_USER_LOOKUP, Some(token), &lookup)?;
    match (matches.as_slice(), user.parse::<i64>()) {
        ([found], _) => Ok(found.clone()),
        ([], Ok(id)) => {
            Ok(api::UserMatch { id, name: String::new(), org: String::new(), devices: Vec::new() })
        }
        _ => Err(SyncError::Server {
            status: 404,
            code: api::ErrorCode::UnknownUser.as_str().to_owned(),
            message: format!("no single user named {user:?}"),
        }),
    }
}
