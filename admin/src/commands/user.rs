//! `user add`, `user list`, `user set-role`, `user retire-role`.

use eenplan_protocol::api::{
    self, CertificateUpload, DeviceInfo, NewUser, RoleChangeRequest, RotationsQueued, UserInfo,
};
use eenplan_protocol::certificate::{Certificate, DeviceBody};
use serde_json::json;

use super::{Session, with_rotation};
use crate::args::{UserAddArgs, UserCommand, UserRetireRoleArgs, UserSetRoleArgs};
use crate::client::now_ms;
use crate::enrolment::CERTIFICATE_VALIDITY_MS;
use crate::error::AdminError;
use crate::output::{Output, table};

pub fn run(session: &mut Session, command: UserCommand, json: bool) -> Result<Output, AdminError> {
    match command {
        UserCommand::Add(args) => add(session, args, json),
        UserCommand::List => list(session, json),
        UserCommand::SetRole(args) => set_role(session, &args, json),
        UserCommand::RetireRole(args) => retire_role(session, &args, json),
        UserCommand::Offboard(args) => crate::offboard::run(session, &args, json),
    }
}

/// Gives one user another role (see [`recertify`]), then rotates what the user lost.
fn set_role(session: &mut Session, args: &UserSetRoleArgs, json: bool) -> Result<Output, AdminError> {
    let role = args.role.as_str();
    session.require_role_in_policy(role)?;
    let user = session.user(&args.user)?;
    session.require_org(&user.org)?;
    let changed = recertify(session, &user, role)?;
    let outcome = session.rotate_pending(changed.pending, None);
    let value = changed.value;
    with_rotation(json, changed.line, value, outcome)
}

/// Moves every user in the role `--from` to `--to`, each through [`recertify`] as `set-role`
/// does, then rotates what they lost, once for all.
fn retire_role(session: &mut Session, args: &UserRetireRoleArgs, json: bool) -> Result<Output, AdminError> {
    let to = args.to.as_str();
    session.require_network_wide("een rol voor iedereen uitfaseren")?;
    if args.from == to {
        return Err(AdminError::usage(format!("--from and --to are both {to:?}: nothing would change")));
    }
    session.require_role_in_policy(to)?;
    let users: Vec<UserInfo> = session.client().get(api::PATH_ADMIN_USERS)?;
    let (mut text, mut values, mut pending) = (String::new(), Vec::new(), None);
    for user in users.iter().filter(|u| u.role == args.from) {
        match recertify(session, user, to) {
            Ok(changed) => {
                text.push_str(&changed.line);
                values.push(changed.value);
                pending = changed.pending.or(pending);
            }
            // Those already moved stay moved (and are said so); running it again continues.
            Err(error) if !values.is_empty() => {
                let done = Output::either(json, || &values, || text.clone())?;
                return Err(AdminError::Partial { done, error: Box::new(error) });
            }
            Err(error) => return Err(error),
        }
    }
    if values.is_empty() {
        text = format!("no user has role {:?}\n", args.from);
    }
    let outcome = session.rotate_pending(pending, None);
    let value = json!({ "from": args.from, "to": to, "users": values, "pending": pending });
    with_rotation(json, text, value, outcome)
}

/// What [`recertify`] did: one line for people, the JSON value, and the rotations the
/// server queued.
struct RoleChanged {
    line: String,
    value: serde_json::Value,
    pending: Option<u64>,
}

/// Re-certifies every active device of `user` for `role` and has the server record it; what
/// the user lost is queued for rotation (not yet rotated).
///
/// A device's keys are copied from its current certificate, verified against the root: the
/// server's listing of the device could name keys of the server's own choosing.
fn recertify(session: &Session, user: &UserInfo, role: &str) -> Result<RoleChanged, AdminError> {
    let devices: Vec<DeviceInfo> = session.client().get(api::PATH_ADMIN_DEVICES)?;
    let now = now_ms()?;
    let mut certificates = Vec::new();
    for device in devices.iter().filter(|d| d.user_id == user.id && d.state == "active") {
        let current = crate::resolve::verified_certificate(device, &session.keyring.root_public(), now)?;
        let body = DeviceBody {
            role: role.to_owned(),
            valid_from_ms: now,
            valid_until_ms: now.saturating_add(CERTIFICATE_VALIDITY_MS),
            issuer: session.keyring.admin.verifying_key().to_bytes(),
            ..current
        };
        let certificate = Certificate::sign_device(&body, &session.keyring.admin);
        certificates.push(CertificateUpload { certificate: api::hex(&certificate.to_bytes()) });
    }
    let request = RoleChangeRequest { role: role.to_owned(), certificates };
    let recertified = request.certificates.len();
    let answer = session.client().post(&api::admin_user_role_path(user.id), &request)?;
    let pending = serde_json::from_slice::<RotationsQueued>(&answer).ok().map(|q| q.pending);
    let line = format!(
        "{} (id {}) is now {role} (was {}); {recertified} device(s) re-certified\n",
        user.name, user.id, user.role
    );
    let value = json!({
        "user_id": user.id,
        "user_name": user.name,
        "role": role,
        "previous_role": user.role,
        "devices_recertified": recertified,
        "pending": pending,
    });
    Ok(RoleChanged { line, value, pending })
}

fn add(session: &mut Session, args: UserAddArgs, json: bool) -> Result<Output, AdminError> {
    session.require_org(&args.org)?;
    session.require_role_in_policy(args.role.as_str())?;
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
