//! `user add`, `user list`.

use eenplan_protocol::api::{self, NewUser, UserInfo};

use super::Session;
use crate::args::{UserAddArgs, UserCommand};
use crate::error::AdminError;
use crate::output::{Output, table};

pub fn run(session: &Session, command: UserCommand, json: bool) -> Result<Output, AdminError> {
    match command {
        UserCommand::Add(args) => add(session, args, json),
        UserCommand::List => list(session, json),
    }
}

fn add(session: &Session, args: UserAddArgs, json: bool) -> Result<Output, AdminError> {
    let request = NewUser { org: args.org, name: args.name, role: args.role.as_str().to_string() };
    let answer = session.client().post(api::PATH_ADMIN_USERS, &request)?;
    let created = serde_json::from_slice::<UserInfo>(&answer).ok();
    Output::either(
        json,
        || match &created {
            Some(user) => serde_json::json!(user),
            None => serde_json::json!(request),
        },
        || match &created {
            Some(user) => {
                format!("added user {} (id {}) to {} as {}", user.name, user.id, user.org, user.role)
            }
            None => format!("added user {} to {} as {}", request.name, request.org, request.role),
        },
    )
}

fn list(session: &Session, json: bool) -> Result<Output, AdminError> {
    let users: Vec<UserInfo> = session.client().get(api::PATH_ADMIN_USERS)?;
    Output::either(
        json,
        || &users,
        || {
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|u| vec![u.id.to_string(), u.name.clone(), u.org.clone(), u.role.clone()])
                .collect();
            table(&["ID", "NAME", "ORGANISATION", "ROLE"], &rows)
        },
    )
}
