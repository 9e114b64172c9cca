//! `plan assign`.

use eenplan_protocol::api::{self, Assignment};

use super::Session;
use crate::args::{AssignArgs, PlanCommand};
use crate::error::AdminError;
use crate::output::Output;

pub fn run(session: &Session, command: PlanCommand, json: bool) -> Result<Output, AdminError> {
    match command {
        PlanCommand::Assign(args) => assign(session, args, json),
    }
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
