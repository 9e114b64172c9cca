//! One function per command: open the keyring, talk to the server, say what happened.

mod device;
mod init;
mod org;
mod plan;
mod user;

use std::path::{Path, PathBuf};

use eenplan_protocol::api::{self, UserInfo};

use crate::args::{Cli, Command};
use crate::client::{Client, ServerUrl};
use crate::error::AdminError;
use crate::keyring::{self, Keyring, KeyringError, KeyringFile};
use crate::output::Output;
use crate::passphrase;

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
        Client::new(self.server.clone(), &self.keyring.admin)
    }

    fn save(&self) -> Result<(), AdminError> {
        Ok(self.file.save(&self.keyring)?)
    }

    /// The user `text` names: a numeric id or a name, which must name exactly one user.
    fn user(&self, text: &str) -> Result<UserInfo, AdminError> {
        let users: Vec<UserInfo> = self.client().get(api::PATH_ADMIN_USERS)?;
        pick_user(users, text)
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
