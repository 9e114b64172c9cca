//! `plan assign`, `plan unassign`.

use eenplan_protocol::api::{self, Assignment, RotationsQueued};

use super::{Session, with_rotation};
use crate::args::{AssignArgs, PlanCommand, UnassignArgs};
use crate::error::AdminError;
use crate::output::Output;

pub fn run(session: &mut Session, command: PlanCommand, json: bool) -> Result<Output, AdminError> {
    match command {
        PlanCommand::Assign(args) => assign(session, args, json),
        PlanCommand::Unassign(args) => unassign(session, &args, json),
    }
}

fn unassign(session: &mut Session, args: &UnassignArgs, json: bool) -> Result<Output, AdminError> {
    let user = session.user(&args.user)?;
    let path = api::admin_unassign_path(args.plan.as_bytes(), user.id);
    // The path says everything; the body is an empty object because a signed POST has one.
    let answer = session.client().post(&path, &serde_json::json!({}))?;
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
