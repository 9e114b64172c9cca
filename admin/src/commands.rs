//! One function per command: open the keyring, talk to the server, say what happened.

mod admins;
pub(crate) mod audit;
pub(crate) mod device;
mod init;
mod org;
pub(crate) mod plan;
mod policy;
mod rekey;
mod retention;
mod user;

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use eenplan_protocol::api::{self, DeviceInfo, PolicyInfo, UserInfo};
use eenplan_protocol::certificate::AdminScope;
use eenplan_protocol::policy::{Policy, SignedPolicy};
use eenplan_protocol::revocation::RevocationList;

use crate::args::{Cli, Command};
use crate::client::{Client, ServerUrl, now_ms};
use crate::error::AdminError;
use crate::keyring::offline::{OfflineKeyringFile, OfflineKeys};
use crate::keyring::{self, Keyring, KeyringError, KeyringFile};
use crate::output::Output;
use crate::passphrase::{self, Cost, Which};
use crate::rekey::{Authority, Outcome, Progress, Summary};
use crate::{resolve, revocations};

pub fn run(cli: Cli) -> Result<Output, AdminError> {
    let data = cli.data.ok_or_else(|| {
        AdminError::usage("no keyring directory: pass --data DIR or set EENPLAN_ADMIN_DATA")
    })?;
    // Checked before any passphrase is asked, so a typo costs no typing.
    let server = cli.server.as_deref().map(ServerUrl::parse).transpose()?;
    let offline = cli.offline_keyring.as_deref();
    let json = cli.json;
    let open = || Session::open(&data, server.clone(), offline);
    match cli.command {
        Command::Init(args) => init::run(&data, server.clone(), offline, &args, json),
        Command::Org(command) => org::run(&open()?, command, json),
        Command::User(command) => user::run(&mut open()?, command, json),
        Command::Device(command) => device::run(&mut open()?, command, json),
        Command::Plan(command) => plan::run(&mut open()?, command, json),
        Command::Policy(command) => policy::run(&mut open()?, command, json),
        Command::Retention(command) => retention::run(&mut open()?, command, json),
        Command::Rekey => {
            let mut session = open()?;
            session.require_network_wide("een nieuwe sleutelepoch maken (rekey)")?;
            rekey::run(&mut session, json)
        }
        Command::Admin(command) => admins::run(&data, server.clone(), offline, command, json),
        Command::Audit(command) => audit::run(&mut open()?, command, json),
        Command::Console(args) => crate::console::run(open()?, &args),
    }
}

/// An unlocked, registered keyring and the server to talk to.
pub(crate) struct Session {
    pub(crate) file: KeyringFile,
    pub(crate) keyring: Keyring,
    pub(crate) server: ServerUrl,
    /// The root and escrow keys from `--offline-keyring`, when given (never saved into the
    /// daily keyring).
    attached: Option<OfflineKeys>,
}

impl Session {
    fn open(data: &Path, server: Option<ServerUrl>, offline: Option<&Path>) -> Result<Session, AdminError> {
        if !keyring::exists(data) {
            return Err(KeyringError::Missing(PathBuf::from(data)).into());
        }
        // The cost only matters for a keyring that must be wrapped again; the server stored
        // in the keyring decides whether a test cost is allowed, and is checked again below.
        let cost = match &server {
            Some(server) => passphrase::kdf_for(server)?,
            None => Cost(passphrase::KEYRING_KDF),
        };
        let keystore = passphrase::existing(Which::Daily, cost)?;
        let (mut file, keyring) = KeyringFile::open(data, &keystore)?;
        if !keyring.registered {
            return Err(AdminError::InitUnfinished);
        }
        let server = match server {
            Some(server) => server,
            None => ServerUrl::parse(&keyring.server)?,
        };
        warn_if_insecure(&server);
        let cost = passphrase::kdf_for(&server)?;
        if file.upgrade_kdf(&keyring, &keystore, cost)? {
            eprintln!("note: the keyring is now wrapped with the current Argon2id cost");
        }
        let attached = match offline {
            Some(path) => Some(open_offline(path, &keyring, cost)?),
            None => None,
        };
        Ok(Session { file, keyring, server, attached })
    }

    pub(crate) fn client(&self) -> Client<'_> {
        Client::new(self.server.clone(), &self.keyring.admin, self.keyring.root_public())
    }

    pub(crate) fn save(&self) -> Result<(), AdminError> {
        Ok(self.file.save(&self.keyring)?)
    }

    /// The root and escrow keys: this keyring's own, or the offline keyring's.
    fn offline_keys(&self) -> Option<&OfflineKeys> {
        self.keyring.offline.as_ref().or(self.attached.as_ref())
    }

    /// The root signing key, for `action`.
    fn root(&self, action: &'static str) -> Result<&SigningKey, AdminError> {
        self.offline_keys()
            .map(|keys| &keys.root)
            .ok_or(AdminError::OfflineKeyringNeeded { action, key: "network root key" })
    }

    /// Where this keyring's administrator may act. A certificate that does not decode (the
    /// keyring checked it when it opened) counts as no organisation at all: refuse, never
    /// widen.
    pub(crate) fn scope(&self) -> AdminScope {
        self.keyring
            .admin_certificate
            .claimed_admin_body()
            .map_or_else(|_| AdminScope::Organisation(String::new()), |body| body.scope())
    }

    /// The organisation this administrator serves; `None` for a network-wide one.
    fn own_organisation(&self) -> Option<String> {
        match self.scope() {
            AdminScope::Organisation(own) => Some(own),
            AdminScope::NetworkWide => None,
        }
    }

    /// Refuses, before the server is asked, an act on the users or devices of `org` that
    /// this administrator's scope does not cover.
    pub(crate) fn require_org(&self, org: &str) -> Result<(), AdminError> {
        match self.scope() {
            AdminScope::Organisation(own) if own != org => {
                Err(AdminError::OutOfScope { own, org: org.to_owned() })
            }
            _ => Ok(()),
        }
    }

    /// Refuses a network-wide act (`action`, in Dutch) to an organisation's administrator.
    fn require_network_wide(&self, action: &'static str) -> Result<(), AdminError> {
        match self.scope() {
            AdminScope::Organisation(own) => Err(AdminError::NetworkAdminOnly { own, action }),
            AdminScope::NetworkWide => Ok(()),
        }
    }

    /// The user `text` names: a numeric id or a name, which must name exactly one user.
    pub(crate) fn user(&self, text: &str) -> Result<UserInfo, AdminError> {
        let users: Vec<UserInfo> = self.client().get(api::PATH_ADMIN_USERS)?;
        resolve::pick_user_for(users, text, self.own_organisation().as_deref())
    }

    /// Every device the server lists, each name kept only if the device's own signature
    /// over it verifies (see `crate::resolve`); a cleared name is warned about.
    pub(crate) fn devices(&self) -> Result<Vec<DeviceInfo>, AdminError> {
        self.devices_at(api::PATH_ADMIN_DEVICES)
    }

    /// [`Session::devices`] from the listing at `path` (e.g. only the pending ones).
    pub(crate) fn devices_at(&self, path: &str) -> Result<Vec<DeviceInfo>, AdminError> {
        let devices: Vec<DeviceInfo> = self.client().get(path)?;
        let listing = resolve::verified_listing(devices, &self.keyring.root_public(), now_ms()?)?;
        if listing.names_cleared > 0 {
            eprintln!(
                "waarschuwing: {} apparaatna(a)m(en) van de server zijn niet door het apparaat zelf \
                 ondertekend en worden niet getoond",
                listing.names_cleared
            );
        }
        if listing.dropped > 0 {
            eprintln!(
                "waarschuwing: de server toont {} goedgekeurd(e) apparaat/apparaten met een certificaat dat \
                 niet klopt bij dit netwerk of bij de genoemde persoon; die worden niet getoond",
                listing.dropped
            );
        }
        Ok(listing.devices)
    }

    /// The device `text` names: its id, a unique id prefix or its unique (verified) name.
    pub(crate) fn device(&self, text: &str) -> Result<DeviceInfo, AdminError> {
        resolve::pick_device_for(self.devices()?, text, self.own_organisation().as_deref())
    }

    /// The policy in force, as the server holds it, checked against this keyring's root and
    /// against the newest version this keyring signed or saw: the server can make this CLI
    /// believe neither a table the root did not sign nor an older, wider one.
    fn policy(&mut self) -> Result<Policy, AdminError> {
        let info: PolicyInfo = self.client().get(api::PATH_ADMIN_POLICY)?;
        let bytes = api::unhex(&info.policy)
            .ok_or_else(|| AdminError::BadResponse("the policy is not hexadecimal".into()))?;
        let signed = SignedPolicy::from_bytes(&bytes).map_err(AdminError::ServerPolicy)?;
        let policy = signed.verify(&self.keyring.root_public()).map_err(AdminError::ServerPolicy)?;
        let held = self.keyring.trust.policy_floor();
        if policy.version < held {
            return Err(AdminError::PolicyRolledBack { held, given: policy.version });
        }
        if policy.version > self.keyring.trust.policy_seen {
            self.keyring.trust.policy_seen = policy.version;
            self.save()?;
        }
        Ok(policy)
    }

    /// Refuses `role` unless the policy in force names it (in its base table or at a level):
    /// a user in a role the policy does not name reads and writes nothing, so certifying one
    /// is a mistake (a typo, or a role the policy retired).
    fn require_role_in_policy(&mut self, role: &str) -> Result<(), AdminError> {
        let policy = self.policy()?;
        if policy.names_role(role) {
            return Ok(());
        }
        Err(AdminError::RoleNotInPolicy { role: role.to_owned(), version: policy.version })
    }

    /// Takes in the server's newest revocation list and publishes the revocations this
    /// keyring made that it lacks (see `crate::revocations`); the keyring is saved.
    pub(crate) fn revocations(&mut self) -> Result<RevocationList, AdminError> {
        let admin = self.keyring.admin.clone();
        let client = Client::new(self.server.clone(), &admin, self.keyring.root_public());
        let result = revocations::synchronise(&client, &mut self.keyring, now_ms()?);
        self.save()?;
        result
    }

    /// Moves every waiting document to a new key epoch (see `crate::rekey`). `pending` is the
    /// count the server just gave, for the progress line; `policy` the policy in force if
    /// this command just set it (else it is fetched and verified).
    pub(crate) fn rotate_pending(&mut self, pending: Option<u64>, policy: Option<Policy>) -> Outcome {
        self.rotate_pending_with(pending, policy, &mut Progress::on_stderr())
    }

    /// [`Session::rotate_pending`], reporting to `progress`.
    pub(crate) fn rotate_pending_with(
        &mut self,
        pending: Option<u64>,
        policy: Option<Policy>,
        progress: &mut Progress,
    ) -> Outcome {
        let stopped = |e| Outcome { summary: Summary::default(), stopped: Some(e) };
        // Every revocation known before anything is sealed, and the list naming them
        // published, so that the new epochs' commitments can name it.
        if let Err(e) = self.revocations() {
            return stopped(e);
        }
        // Whoever makes a key can read it: an organisation's administrator makes none, and
        // the documents wait (the server refuses pushes to them) for a network-wide one.
        if let AdminScope::Organisation(own) = self.scope() {
            if pending.is_some_and(|p| p > 0) {
                // Through `progress`, so the console's page says it too.
                progress.warn(&format!(
                    "{} document(en) wachten op een nieuwe sleutel; als beheerder van {own} \
                     maakt u die niet. Vraag een netwerkbeheerder `eenplan-admin rekey` te draaien.",
                    pending.unwrap_or_default()
                ));
            }
            return Outcome { summary: Summary::default(), stopped: None };
        }
        // Recipients are checked against the policy in force; without it nothing is sealed.
        let policy = match policy.map_or_else(|| self.policy(), Ok) {
            Ok(policy) => policy,
            Err(e) => return stopped(e),
        };
        let authority = Authority {
            root_public: self.keyring.root_public(),
            admin: &self.keyring.admin,
            admin_certificate: self.keyring.admin_certificate.to_bytes(),
            escrow_secret: self.offline_keys().map(|keys| &*keys.escrow_secret),
            escrow_public: &self.keyring.escrow_public,
            policy: &policy,
            trust: &self.keyring.trust,
        };
        crate::rekey::run(&self.client(), &authority, pending, progress)
    }
}

/// Opens the offline keyring at `path` and checks it belongs to `keyring`'s network; wraps it
/// again at the current cost if it was wrapped below it.
fn open_offline(path: &Path, keyring: &Keyring, cost: Cost) -> Result<OfflineKeys, AdminError> {
    let keystore = passphrase::existing(Which::Offline, cost)?;
    let (mut file, keys, escrow_public) = OfflineKeyringFile::open(path, &keystore)?;
    keyring.check_offline(&keys, &escrow_public)?;
    if file.upgrade_kdf(&keys, &escrow_public, &keystore, cost)? {
        eprintln!("note: the offline keyring is now wrapped with the current Argon2id cost");
    }
    Ok(keys)
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
    let revoked_listed = summary.revoked_listed.len();
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
        None if revoked_listed > 0 => {
            Err(AdminError::Partial { done, error: Box::new(AdminError::RevokedListed(revoked_listed)) })
        }
        None => Ok(done),
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
