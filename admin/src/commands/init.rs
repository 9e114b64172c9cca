//! `init`: a new network.
//!
//! The keyring is written before the server hears of the network: a crash or a network failure
//! after the server accepted the root key must never leave a network whose root key is lost.
//! Until the server confirms, the keyring is marked unregistered and `init` may be run again;
//! it then retries with the same keys (the first policy, signed by the root, is kept in the
//! daily keyring, so a retry needs no offline keyring).
//!
//! With `--offline-keyring PATH` the root and escrow secrets are written to PATH, under a
//! passphrase of their own, and never into the daily keyring.

use std::path::Path;

use ed25519_dalek::SigningKey;
use eenplan_protocol::api::{self, InitRequest, OrgInfo};
use eenplan_protocol::policy::DEFAULT_POLICY_TOML;
use serde_json::json;

use crate::args::InitArgs;
use crate::client::{Client, ServerUrl, now_ms};
use crate::error::AdminError;
use crate::keyring::offline::OfflineKeyringFile;
use crate::keyring::{self, Keyring, KeyringError, KeyringFile};
use crate::output::Output;
use crate::passphrase::{self, Cost, Which};
use crate::policy_file;

/// Administrator names appear in every device's view of who approved it; keep them one line.
const MAX_NAME_CHARS: usize = 200;

pub fn run(
    data: &Path,
    server: Option<ServerUrl>,
    offline: Option<&Path>,
    args: &InitArgs,
    json: bool,
) -> Result<Output, AdminError> {
    let (file, mut keyring) = if keyring::exists(data) {
        resume(data, server, args)?
    } else {
        create(data, server, offline, args)?
    };
    let server = ServerUrl::parse(&keyring.server)?;
    super::warn_if_insecure(&server);
    register(&Client::new(server, &keyring.admin, keyring.root_public()), &keyring, args)?;
    keyring.registered = true;
    file.save(&keyring)?;

    let fingerprint = keyring.root_fingerprint();
    Output::either(
        json,
        || {
            json!({
                "root_fingerprint": fingerprint,
                "root_public": api::hex(&keyring.root_public()),
                "admin_public": api::hex(&keyring.admin_public()),
                "admin_name": keyring.admin_name,
                "escrow_public": api::hex(&keyring.escrow_public),
                "server": keyring.server,
                "offline_keyring": offline.map(|p| p.display().to_string()),
            })
        },
        || fingerprint.clone(),
    )
}

/// An init begun before whose registration the server never confirmed: the same keys again.
fn resume(
    data: &Path,
    server: Option<ServerUrl>,
    args: &InitArgs,
) -> Result<(KeyringFile, Keyring), AdminError> {
    let cost = match &server {
        Some(server) => passphrase::kdf_for(server)?,
        None => Cost(passphrase::KEYRING_KDF),
    };
    let keystore = passphrase::existing(Which::Daily, cost)?;
    let (file, mut keyring) = KeyringFile::open(data, &keystore)?;
    if keyring.registered {
        return Err(AdminError::AlreadyInitialised(data.display().to_string()));
    }
    if let Some(server) = server {
        keyring.server = server.as_str().to_string();
    }
    if keyring.admin_name != args.name {
        eprintln!(
            "note: finishing the init begun before, whose administrator is named {:?}",
            keyring.admin_name
        );
    }
    if keyring.initial_policy.is_empty() {
        // A keyring written before the first policy was kept in it holds the root itself.
        let root = keyring.offline.as_ref().map(|k| &k.root).ok_or(AdminError::OfflineKeyringNeeded {
            action: "finishing this init",
            key: "network root key",
        })?;
        keyring.initial_policy = default_policy(root)?;
    }
    Ok((file, keyring))
}

/// New keys: the daily keyring in `data`, and the root and escrow keys either in it or, with
/// `offline`, in an offline keyring of their own (written first: a failure after it leaves
/// no daily keyring, and init can be run again).
fn create(
    data: &Path,
    server: Option<ServerUrl>,
    offline: Option<&Path>,
    args: &InitArgs,
) -> Result<(KeyringFile, Keyring), AdminError> {
    let server = server.ok_or_else(|| AdminError::usage("init needs --server URL (or EENPLAN_SERVER)"))?;
    let name = args.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(AdminError::usage(format!(
            "the administrator's name must be one line of 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    if let Some(path) = offline
        && path.exists()
    {
        return Err(KeyringError::Exists(path.to_path_buf()).into());
    }
    let cost = passphrase::kdf_for(&server)?;
    let host = server.as_str().split("://").nth(1).unwrap_or_default();
    let context = [name, host];
    let keystore = passphrase::chosen(Which::Daily, cost, &context)?;
    let offline_keystore = offline.map(|_| passphrase::chosen(Which::Offline, cost, &context)).transpose()?;
    let mut keyring = Keyring::generate(server.as_str().to_string(), name.to_string(), now_ms()?);
    let keys = keyring.offline.take().ok_or(KeyringError::Damaged("new keys are missing"))?;
    keyring.initial_policy = default_policy(&keys.root)?;
    match (offline, offline_keystore) {
        (Some(path), Some(offline_keystore)) => {
            drop(OfflineKeyringFile::create(path, &keys, &keyring.escrow_public, &offline_keystore)?);
            eprintln!(
                "the root and escrow keys are in {}: keep it offline; `policy set` and recovering keys \
                 through escrow need it",
                path.display()
            );
        }
        _ => keyring.offline = Some(keys),
    }
    let file = KeyringFile::create(data, &keyring, &keystore)?;
    Ok((file, keyring))
}

/// The policy a new network starts with: the one that ships with the project, signed by the
/// root. The server keeps it with the network, so there is never a network without a policy.
fn default_policy(root: &SigningKey) -> Result<Vec<u8>, AdminError> {
    let parsed = policy_file::parse(DEFAULT_POLICY_TOML)
        .map_err(|source| AdminError::PolicyFile { path: "the default policy".into(), source })?;
    let signed = parsed.policy.sign(root).map_err(AdminError::PolicyUnusable)?;
    Ok(signed.to_bytes())
}

fn register(client: &Client<'_>, keyring: &Keyring, args: &InitArgs) -> Result<(), AdminError> {
    let request = InitRequest {
        init_secret: args.init_secret.clone().unwrap_or_default(),
        policy: api::hex(&keyring.initial_policy),
        root_public: api::hex(&keyring.root_public()),
        escrow_public: api::hex(&keyring.escrow_public),
        escrow_signature: api::hex(&keyring.escrow_signature),
        admin_certificate: api::hex(&keyring.admin_certificate.to_bytes()),
    };
    match client.post(api::PATH_ADMIN_INIT, &request) {
        Ok(_) => Ok(()),
        // An earlier attempt may have reached the server with only its answer lost; the server
        // then refuses a second init. If it accepts a request signed by this administrator,
        // it knows this network, and the init did happen.
        Err(refused @ AdminError::Server { .. }) => match client.get::<Vec<OrgInfo>>(api::PATH_ADMIN_ORGS) {
            Ok(_) => Ok(()),
            Err(_) => Err(refused),
        },
        Err(e) => Err(e),
    }
}
