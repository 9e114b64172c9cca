//! `plan assign`, `plan unassign`, `plan handover`.
//!
//! A plan with a signed membership chain changes participants only through the chain: the
//! administrator verifies the chain from its first entry against the root it holds, and
//! signs a removal or a handover after it (for a regisseur who is gone).

use eenplan_protocol::api::{self, Assignment, RotationsQueued};
use eenplan_protocol::certificate::DeviceBody;
use eenplan_protocol::membership::{Act, Entry, Roster, SignedEntry, Signer};
use eenplan_protocol::sync::Blob;

use super::{Session, with_rotation};
use crate::args::{AssignArgs, HandoverArgs, PlanCommand, UnassignArgs};
use crate::error::AdminError;
use crate::output::Output;

pub fn run(session: &mut Session, command: PlanCommand, json: bool) -> Result<Output, AdminError> {
    match command {
        PlanCommand::Assign(args) => assign(session, args, json),
        PlanCommand::Unassign(args) => unassign(session, &args, json),
        PlanCommand::Handover(args) => handover(session, &args, json),
    }
}

/// The plan's membership chain from the server, verified from its first entry; `None` for a
/// plan without one.
pub(crate) fn verified_chain(session: &Session, plan: &[u8; 16]) -> Result<Option<Roster>, AdminError> {
    let entries: Vec<Blob> =
        session.client().get_cbor(&api::admin_membership_path(plan), 64 * 1024 * 1024)?;
    let root = session.keyring.root_public();
    let never = |_: &DeviceBody, _: i64| false;
    let mut roster: Option<Roster> = None;
    for Blob(bytes) in &entries {
        let entry = SignedEntry::from_bytes(bytes)?;
        match roster.as_mut() {
            None => roster = Some(Roster::start(&entry, &root, &never)?),
            Some(roster) => roster.apply(&entry, &root, &never)?,
        }
    }
    if roster.as_ref().is_some_and(|r| r.plan() != *plan) {
        return Err(AdminError::BadResponse("the server sent another plan's membership chain".into()));
    }
    Ok(roster)
}

/// Signs `act` after the verified chain and posts it; returns the documents waiting for a
/// new key.
pub(crate) fn post_act(
    session: &Session,
    plan: &[u8; 16],
    roster: &Roster,
    act: Act,
) -> Result<Option<u64>, AdminError> {
    let signer = Signer::Admin(session.keyring.admin_certificate.to_bytes());
    let entry = Entry::next(roster, crate::client::now_ms()?, signer, act);
    let signed = entry.sign(&session.keyring.admin);
    // The chain's own rules, checked before anything is sent.
    roster.clone().apply(&signed, &session.keyring.root_public(), &|_, _| false)?;
    let answer = session.client().post_cbor(&api::admin_membership_path(plan), signed.to_bytes())?;
    Ok(serde_json::from_slice::<RotationsQueued>(&answer).ok().map(|q| q.pending))
}

fn handover(session: &mut Session, args: &HandoverArgs, json: bool) -> Result<Output, AdminError> {
    let user = session.user(&args.to)?;
    let plan = args.plan.as_bytes();
    let roster = verified_chain(session, plan)?
        .ok_or_else(|| AdminError::Usage("this plan has no signed membership chain".into()))?;
    // The regisseur who is gone must be of this administrator's organisation (every device
    // checks the same).
    let state = roster.state();
    let regisseur = state.participant(state.regisseur).map(|p| p.organisation.clone()).unwrap_or_default();
    session.require_org(&regisseur)?;
    post_act(session, plan, &roster, Act::Handover(user.id))?;
    Output::either(
        json,
        || serde_json::json!({ "plan": args.plan.to_string(), "offered_to": user.id, "user_name": user.name }),
        || {
            format!(
                "regie of plan {} offered to {} (id {}); they hold it once they accept",
                args.plan, user.name, user.id
            )
        },
    )
}

fn unassign(session: &mut Session, args: &UnassignArgs, json: bool) -> Result<Output, AdminError> {
    let user = session.user(&args.user)?;
    session.require_org(&user.org)?;
    let answer = match verified_chain(session, args.plan.as_bytes())? {
        Some(roster) => {
            let pending = post_act(session, args.plan.as_bytes(), &roster, Act::Remove(user.id))?;
            serde_json::to_vec(&pending.map(|pending| RotationsQueued { pending }))
                .map_err(AdminError::Json)?
        }
        None => {
            let path = api::admin_unassign_path(args.plan.as_bytes(), user.id);
            // The path says everything; the body is an empty object because a signed POST has one.
            session.client().post(&path, &serde_json::json!({}))?
        }
    };
    let queued = serde_json::from_slice::<RotationsQueued>(&answer).ok();
    let outcome = session.rotate_pending(queued.as_ref().map(|q| q.pending), None);
    let text = format!("{} (id {}) no longer takes part in plan {}\n", user.name, user.id, args.plan);
    let value = serde_json::json!({
        "plan": args.plan.to_string(),
        "user_id": user.id,
        "user_name": user.name,
        "pending": queued.map(|q| q.pending),
    });
    with_rotation(json, text, value, outcome)
}

fn assign(session: &Session, args: AssignArgs, json: bool) -> Result<Output, AdminError> {
    let user = session.user(&args.user)?;
    let request = Assignment { user_id: user.id, role: args.role.as_str().to_string() };
    let path = api::admin_participants_path(args.plan.as_bytes());
    session.client().post(&path, &request)?;
    Output::either(
        json,
        || {
            serde_json::json!({
                "plan": args.plan.to_string(),
                "user_id": user.id,
                "user_name": user.name,
                "role": request.role,
            })
        },
        || format!("{} (id {}) takes part in plan {} as {}", user.name, user.id, args.plan, request.role),
    )
}
