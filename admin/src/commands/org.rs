//! `org add`, `org list`.

use eenplan_protocol::api::{self, NewOrg, OrgInfo};

use super::Session;
use crate::args::{OrgAddArgs, OrgCommand};
use crate::error::AdminError;
use crate::output::{Output, table};

pub fn run(session: &Session, command: OrgCommand, json: bool) -> Result<Output, AdminError> {
    match command {
        OrgCommand::Add(args) => add(session, args, json),
        OrgCommand::List => list(session, json),
    }
}

fn add(session: &Session, args: OrgAddArgs, json: bool) -> Result<Output, AdminError> {
    session.require_network_wide("een organisatie toevoegen")?;
    let request = NewOrg { name: args.name, lease_hours: args.lease_hours };
    let answer = session.client().post(api::PATH_ADMIN_ORGS, &request)?;
    let created = serde_json::from_slice::<OrgInfo>(&answer).ok();
    Output::either(
        json,
        || match &created {
            Some(org) => serde_json::json!(org),
            None => serde_json::json!(request),
        },
        || match &created {
            Some(org) => {
                format!("added organisation {} (id {}, lease {} h)", org.name, org.id, org.lease_hours)
            }
            None => format!("added organisation {} (lease {} h)", request.name, request.lease_hours),
        },
    )
}

fn list(session: &Session, json: bool) -> Result<Output, AdminError> {
    let orgs: Vec<OrgInfo> = session.client().get(api::PATH_ADMIN_ORGS)?;
    Output::either(
        json,
        || &orgs,
        || {
            let rows: Vec<Vec<String>> = orgs
                .iter()
                .map(|o| vec![o.id.to_string(), o.name.clone(), format!("{} h", o.lease_hours)])
                .collect();
            table(&["ID", "NAME", "LEASE"], &rows)
        },
    )
}
