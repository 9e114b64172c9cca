//! Offboarding someone who leaves (`eenplan-admin user offboard`): every device of theirs
//! revoked in one signed revocation list version, a wipe order for each, their participation
//! ended in every plan they take part in, and then one re-key pass over what they could read.
//!
//! Each step looks at what is already done before it acts, so running it again after an
//! interruption finishes the job and running it after a finished one changes nothing:
//! devices this keyring or the server already revoked are not revoked again, plans the user
//! no longer takes part in (by the plan's verified chain, or the server's list for plans
//! without one) are left alone, and the re-key pass takes whatever still waits.
//!
//! The revocation comes first: it is what shuts the person out (the server refuses the
//! devices at once, every device refuses to seal keys to them from the signed list). The
//! removals keep the plans' participant lists true; a plan where the person holds regie is
//! not theirs to leave until someone else accepts it (`plan handover`), and is reported.

use eenplan_protocol::api::{self, DeviceInfo, UserInfo, UserPlans};
use eenplan_protocol::membership::{Act, MembershipError};
use eenplan_protocol::revocation::RevokedDevice;
use eenplan_protocol::wipe::RevocationReason;
use serde::Serialize;

use crate::args::UserOffboardArgs;
use crate::client::now_ms;
use crate::commands::Session;
use crate::commands::device::post_revocation;
use crate::commands::plan::{post_act, verified_chain};
use crate::error::AdminError;
use crate::output::Output;
use crate::rekey::{Progress, Summary};

/// What an offboarding did (this run), and what it could not do.
#[derive(Debug, Clone, Serialize)]
pub struct OffboardReport {
    pub user_id: i64,
    pub user_name: String,
    pub org: String,
    pub reason: Option<String>,
    /// Devices revoked by this run (hex ids).
    pub devices_revoked: Vec<String>,
    /// Devices that were revoked (or wiped) already.
    pub devices_already_revoked: Vec<String>,
    /// The revocation list version that names every device of the user.
    pub revocation_list: u32,
    /// Plans the user left in this run (hex ids).
    pub plans_left: Vec<String>,
    /// Plans the user still takes part in, and why (holds regie: hand it over first; closed).
    pub plans_kept: Vec<KeptPlan>,
    /// The re-key pass.
    pub rotation: Summary,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeptPlan {
    pub plan: String,
    pub reason: String,
}

impl OffboardReport {
    /// Whether this run changed nothing: the person was offboarded already.
    pub fn nothing_to_do(&self) -> bool {
        self.devices_revoked.is_empty() && self.plans_left.is_empty() && self.rotation.documents == 0
    }

    /// The report for people, in Dutch.
    pub fn text(&self) -> String {
        let mut out = format!("{} ({}, id {}) is uit dienst gemeld", self.user_name, self.org, self.user_id);
        if let Some(reason) = &self.reason {
            out.push_str(&format!(" ({reason})"));
        }
        out.push_str(":\n");
        out.push_str(&format!(
            "- {} apparaat/apparaten ingetrokken (intrekkingslijst versie {}), elk met een wisopdracht; \
             {} was/waren al ingetrokken\n",
            self.devices_revoked.len(),
            self.revocation_list,
            self.devices_already_revoked.len()
        ));
        out.push_str(&format!("- van {} plan(nen) afgemeld\n", self.plans_left.len()));
        for kept in &self.plans_kept {
            out.push_str(&format!("- blijft in plan {}: {}\n", kept.plan, kept.reason));
        }
        out.push_str(&format!(
            "- {} document(en) kregen een nieuwe sleutel van deze beheerder; de andere deelnemers \
             maken de rest bij hun volgende sync\n",
            self.rotation.documents
        ));
        if self.nothing_to_do() && self.plans_kept.is_empty() {
            out.push_str("er was niets meer te doen: deze persoon was al volledig uit dienst gemeld\n");
        }
        out
    }
}

/// `user offboard USER [--reason TEXT]`.
pub fn run(session: &mut Session, args: &UserOffboardArgs, json: bool) -> Result<Output, AdminError> {
    let report = offboard(session, &args.user, args.reason.as_deref(), &mut Progress::on_stderr())?;
    let done = Output::either(json, || &report, || report.text())?;
    if !report.rotation.refused.is_empty() {
        return Err(AdminError::Partial {
            done,
            error: Box::new(AdminError::RekeyRefused(report.rotation.refused.len())),
        });
    }
    Ok(done)
}

/// Offboards `user` (an id or a unique name); see the module docs. Progress goes to
/// `progress` as it happens. An error stops the run; running it again continues.
pub fn offboard(
    session: &mut Session,
    user: &str,
    reason: Option<&str>,
    progress: &mut Progress,
) -> Result<OffboardReport, AdminError> {
    let user = session.user(user)?;
    session.require_org(&user.org)?;
    progress.note(&format!("{} ({}) uit dienst melden", user.name, user.org));
    let devices: Vec<DeviceInfo> = session.devices()?.into_iter().filter(|d| d.user_id == user.id).collect();
    let Revocations {
        revoked: devices_revoked,
        already: devices_already_revoked,
        list_version: revocation_list,
        queued,
    } = revoke_all(session, &devices, progress)?;
    let (plans_left, plans_kept) = leave_plans(session, &user, progress)?;
    progress.note("nieuwe sleutels maken voor wat deze persoon kon lezen");
    let outcome = session.rotate_pending_with(queued, None, progress);
    if let Some(error) = outcome.stopped {
        return Err(AdminError::RekeyStopped(Box::new(error)));
    }
    Ok(OffboardReport {
        user_id: user.id,
        user_name: user.name,
        org: user.org,
        reason: reason.map(str::to_owned),
        devices_revoked,
        devices_already_revoked,
        revocation_list,
        plans_left,
        plans_kept,
        rotation: outcome.summary,
    })
}

/// Records every device of the user as revoked in the keyring, publishes them in one list
/// version, then has the server revoke each one it has not revoked yet, with a wipe order.
fn revoke_all(
    session: &mut Session,
    devices: &[DeviceInfo],
    progress: &mut Progress,
) -> Result<Revocations, AdminError> {
    let now = now_ms()?;
    let mut ids = Vec::new();
    for device in devices {
        let id = device_id(device)?;
        // Recorded before the server hears of it: from now on this keyring seals nothing to
        // the device, whatever the server says. `record` keeps an earlier record as it is.
        // Under the organisation of the device's root-verified certificate (as the verified
        // listing shows it), the one devices count the entry under.
        session.require_org(&device.org)?;
        session.keyring.trust.record(RevokedDevice::sign(
            id,
            now,
            RevocationReason::Left,
            &device.org,
            &session.keyring.admin,
        ));
        ids.push(id);
    }
    session.save()?;
    // One version naming all of them (and any other revocation this keyring made).
    let list = session.revocations()?;
    let (mut revoked, mut already, mut queued) = (Vec::new(), Vec::new(), None);
    for (device, id) in devices.iter().zip(ids) {
        if device.state == "revoked" || device.state == "wiped" {
            already.push(device.device_id.clone());
            continue;
        }
        progress.note(&format!("apparaat {} intrekken", label_of(device)));
        let waiting = post_revocation(session, &id, RevocationReason::Left, now)?;
        queued = queued.max(waiting);
        revoked.push(api::hex(&id));
    }
    Ok(Revocations { revoked, already, list_version: list.version, queued })
}

/// What [`revoke_all`] did.
struct Revocations {
    /// Devices revoked now (hex ids).
    revoked: Vec<String>,
    /// Devices revoked (or wiped) before.
    already: Vec<String>,
    /// The revocation list version naming them all.
    list_version: u32,
    /// The documents the server says wait for a new key, after the last revocation.
    queued: Option<u64>,
}

/// Ends the user's participation in every plan the server lists for them.
fn leave_plans(
    session: &Session,
    user: &UserInfo,
    progress: &mut Progress,
) -> Result<(Vec<String>, Vec<KeptPlan>), AdminError> {
    let listed: UserPlans = session.client().get(&api::admin_user_plans_path(user.id))?;
    let (mut left, mut kept) = (Vec::new(), Vec::new());
    for plan in &listed.plans {
        let id: [u8; 16] = api::unhex(&plan.plan)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| AdminError::BadResponse(format!("{:?} is not a plan id", plan.plan)))?;
        match leave_plan(session, &id, user.id)? {
            Left::Done => {
                progress.note(&format!("afgemeld van plan {}", plan.plan));
                left.push(plan.plan.clone());
            }
            Left::NotListed => {}
            Left::Kept(reason) => {
                progress.note(&format!("let op: plan {}: {reason}", plan.plan));
                kept.push(KeptPlan { plan: plan.plan.clone(), reason });
            }
        }
    }
    Ok((left, kept))
}

enum Left {
    Done,
    /// The plan's verified chain does not list the user (any more): nothing to do.
    NotListed,
    Kept(String),
}

/// Removes `user` from one plan: an entry this administrator signs into a plan's chain, or
/// the server's participant list for a plan without one.
fn leave_plan(session: &Session, plan: &[u8; 16], user: i64) -> Result<Left, AdminError> {
    let Some(roster) = verified_chain(session, plan)? else {
        let path = api::admin_unassign_path(plan, user);
        session.client().post(&path, &serde_json::json!({}))?;
        return Ok(Left::Done);
    };
    let state = roster.state();
    if state.participant(user).is_none() {
        return Ok(Left::NotListed);
    }
    if state.closed_at_ms.is_some() {
        return Ok(Left::Kept("het plan is afgesloten; de apparaten zijn wel ingetrokken".into()));
    }
    match post_act(session, plan, &roster, Act::Remove(user)) {
        Ok(_) => Ok(Left::Done),
        Err(AdminError::Membership(MembershipError::RegisseurLeaves)) => Ok(Left::Kept(
            "deze persoon heeft de regie: draag die eerst over (`plan handover`) en meld dan opnieuw uit dienst"
                .into(),
        )),
        Err(e) => Err(e),
    }
}

fn device_id(device: &DeviceInfo) -> Result<[u8; 16], AdminError> {
    api::unhex(&device.device_id).and_then(|b| b.try_into().ok()).ok_or_else(|| AdminError::BadDevice {
        device: device.device_id.clone(),
        reason: "the device id is not 32 hexadecimal characters",
    })
}

fn label_of(device: &DeviceInfo) -> String {
    let id: String = device.device_id.chars().take(12).collect();
    if device.label.is_empty() { id } else { format!("{} ({id})", device.label) }
}
