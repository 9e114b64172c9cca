//! One function per command: open the keyring, talk to the server, say what happened.

mod device;
mod init;
mod org;
mod plan;
mod policy;
mod rekey;
mod user;

use std::path::{Path, PathBuf};

use eenplan_protocol::api::{self, PolicyInfo, UserInfo};
use eenplan_protocol::policy::{Policy, SignedPolicy};

use crate::args::{Cli, Command};
use crate::client::{Client, ServerUrl};
use crate::error::AdminError;
use crate::keyring::{self, Keyring, KeyringError, KeyringFile};
use crate::output::Output;
use crate::passphrase;
use crate::rekey::{Authority, Outcome, Progress, Summary};

pub fn run(cli: Cli) -> Result<Output, AdminError> {
    let data = cli.data.ok_or_else(|| {
        AdminError::usage("no keyring directory: pass --data DIR or set EENPLAN_ADMIN_DATA")
    })?;
    // Checked before any passphrase is asked, so a typo costs no typing.
    let server = cli.server.as_deref().map(ServerUrl::parse).transpose()?;
    let json = cli.json;
    match cli.command {
        Command::Init(args) => init::run(&data, server, &args, json),
        Command::Org(command) => org::run(&Session::open(&data, server)?, command, json),
        Command::User(command) => user::run(&Session::open(&data, server)?, command, json),
        Command::Device(command) => device::run(&mut Session::open(&data, server)?, command, json),
        Command::Plan(command) => plan::run(&Session::open(&data, server)?, command, json),
        Command::Policy(command) => policy::run(&Session::open(&data, server)?, command, json),
        Command::Rekey => rekey::run(&Session::open(&data, server)?, json),
    }
}

/// An unlocked, registered keyring and the server to talk to.
struct Session {
    file: KeyringFile,
    keyring: Keyring,
    server: ServerUrl,
}

impl Session {
    fn open(data: &Path, server: Option<ServerUrl>) -> Result<Session, AdminError> {
        if !keyring::exists(data) {
            return Err(KeyringError::Missing(PathBuf::from(data)).into());
        }
        let keystore = passphrase::existing()?;
        let (file, keyring) = KeyringFile::open(data, &keystore)?;
        if !keyring.registered {
            return Err(AdminError::InitUnfinished);
        }
        let server = match server {
            Some(server) => server,
            None => ServerUrl::parse(&keyring.server)?,
        };
        warn_if_insecure(&server);
        Ok(Session { file, keyring, server })
    }

    fn client(&self) -> Client<'_> {
        Client::new(self.server.clone(), &self.keyring.admin, self.keyring.root_public())
    }

    fn save(&self) -> Result<(), AdminError> {
        Ok(self.file.save(&self.keyring)?)
    }

    /// The user `text` names: a numeric id or a name, which must name exactly one user.
    fn user(&self, text: &str) -> Result<UserInfo, AdminError> {
        let users: Vec<UserInfo> = self.client().get(api::PATH_ADMIN_USERS)?;
        pick_user(users, text)
    }

    /// The policy in force, as the server holds it, checked against this keyring's root: the
    /// server cannot make this CLI believe in a table the root did not sign.
    fn policy(&self) -> Result<Policy, AdminError> {
        let info: PolicyInfo = self.client().get(api::PATH_ADMIN_POLICY)?;
        let bytes = api::unhex(&info.policy)
            .ok_or_else(|| AdminError::BadResponse("the policy is not hexadecimal".into()))?;
        let signed = SignedPolicy::from_bytes(&bytes).map_err(AdminError::ServerPolicy)?;
        signed.verify(&self.keyring.root_public()).map_err(AdminError::ServerPolicy)
    }

    /// Moves every waiting document to a new key epoch (see `crate::rekey`). `pending` is the
    /// count the server just gave, for the progress line; `policy` the policy in force if
    /// this command just set it (else it is fetched and verified).
    fn rotate_pending(&self, pending: Option<u64>, policy: Option<Policy>) -> Outcome {
        // Recipients are checked against the policy in force; without it nothing is sealed.
        let policy = match policy.map_or_else(|| self.policy(), Ok) {
            Ok(policy) => policy,
            Err(e) => return Outcome { summary: Summary::default(), stopped: Some(e) },
        };
        let authority = Authority {
            root_public: self.keyring.root_public(),
            admin: &self.keyring.admin,
            admin_certificate: self.keyring.admin_certificate.to_bytes(),
            escrow_secret: &self.keyring.escrow_secret,
            escrow_public: &self.keyring.escrow_public,
            policy: &policy,
        };
        crate::rekey::run(&self.client(), &authority, pending, &mut Progress::on_stderr())
    }
}

/// What a command that queued rotations prints: its own result (`text`, or `value` as JSON
/// with the rotation summary under `"rotation"`), then the summary; a stopped or partly
/// refused rotation makes the command fail after printing what was done.
fn with_rotation(
    json: bool,
    text: String,
    value: serde_json::Value,
    outcome: Outcome,
) -> Result<Output, AdminError> {
    let Outcome { summary, stopped } = outcome;
    let done = Output::either(
        json,
        || {
            let mut value = value;
            if let Some(object) = value.as_object_mut() {
                object.insert("rotation".into(), serde_json::json!(summary));
            }
            value
        },
        || format!("{text}{}", summary.text()),
    )?;
    match stopped {
        Some(error) => {
            Err(AdminError::Partial { done, error: Box::new(AdminError::RekeyStopped(Box::new(error))) })
        }
        None if !summary.refused.is_empty() => Err(AdminError::Partial {
            done,
            error: Box::new(AdminError::RekeyRefused(summary.refused.len())),
        }),
        None => Ok(done),
    }
}

fn pick_user(users: Vec<UserInfo>, text: &str) -> Result<UserInfo, AdminError> {
    let id = text.parse::<i64>().ok();
    let mut matches: Vec<UserInfo> =
        users.into_iter().filter(|u| Some(u.id) == id || u.name == text).collect();
    match matches.len() {
        0 => Err(AdminError::UnknownUser(text.to_string())),
        1 => Ok(matches.remove(0)),
        _ => Err(AdminError::AmbiguousUser {
            name: text.to_string(),
            ids: matches.iter().map(|u| u.id.to_string()).collect::<Vec<_>>().join(", "),
        }),
    }
}

fn warn_if_insecure(server: &ServerUrl) {
    if server.is_insecure_remote() {
        eprintln!(
            "warning: {} is plain HTTP to another machine: anyone on the way can read and delay \
             these requests; use https://",
            server.as_str()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: i64, name: &str) -> UserInfo {
        UserInfo { id, org: "Wijkteam Noord".into(), name: name.into(), role: "wijkteam".into() }
    }

    #[test]
    fn users_are_found_by_id_or_unique_name() {
        let users = || vec![user(1, "Fatima"), user(2, "Jan"), user(3, "Jan"), user(4, "1")];
        assert_eq!(pick_user(users(), "Fatima").unwrap().id, 1);
        assert_eq!(pick_user(users(), "2").unwrap().name, "Jan");
        assert!(
            matches!(pick_user(users(), "Jan"), Err(AdminError::AmbiguousUser { ids, .. }) if ids == "2, 3")
        );
        // "1" is user 1's id and user 4's name: which one is meant is unclear.
        assert!(matches!(pick_user(users(), "1"), Err(AdminError::AmbiguousUser { .. })));
        assert!(matches!(pick_user(users(), "Piet"), Err(AdminError::UnknownUser(_))));
        assert!(matches!(pick_user(users(), "9"), Err(AdminError::UnknownUser(_))));
    }
}
