//! `init`: a new network.
//!
//! The keyring is written before the server hears of the network: a crash or a network failure
//! after the server accepted the root key must never leave a network whose root key is lost.
//! Until the server confirms, the keyring is marked unregistered and `init` may be run again;
//! it then retries with the same keys.

use std::path::Path;

use eenplan_protocol::api::{self, InitRequest, OrgInfo};
use eenplan_protocol::policy::DEFAULT_POLICY_TOML;
use serde_json::json;

use crate::args::InitArgs;
use crate::client::{Client, ServerUrl, now_ms};
use crate::error::AdminError;
use crate::keyring::{self, Keyring, KeyringFile};
use crate::output::Output;
use crate::passphrase;
use crate::policy_file;

/// Administrator names appear in every device's view of who approved it; keep them one line.
const MAX_NAME_CHARS: usize = 200;

pub fn run(
    data: &Path,
    server: Option<ServerUrl>,
    args: &InitArgs,
    json: bool,
) -> Result<Output, AdminError> {
    let (file, mut keyring) = if keyring::exists(data) {
        let keystore = passphrase::existing()?;
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
        (file, keyring)
    } else {
        let server =
            server.ok_or_else(|| AdminError::usage("init needs --server URL (or EENPLAN_SERVER)"))?;
        let name = args.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
            return Err(AdminError::usage(format!(
                "the administrator's name must be one line of 1 to {MAX_NAME_CHARS} characters"
            )));
        }
        let keystore = passphrase::chosen()?;
        let keyring = Keyring::generate(server.as_str().to_string(), name.to_string(), now_ms()?);
        let file = KeyringFile::create(data, &keyring, &keystore)?;
        (file, keyring)
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
            })
        },
        || fingerprint.clone(),
    )
}

/// The policy a new network starts with: the one that ships with the project, signed by the
/// root. The server keeps it with the network, so there is never a network without a policy.
fn default_policy(keyring: &Keyring) -> Result<String, AdminError> {
    let parsed = policy_file::parse(DEFAULT_POLICY_TOML)
        .map_err(|source| AdminError::PolicyFile { path: "the default policy".into(), source })?;
    let signed = parsed.policy.sign(&keyring.root).map_err(AdminError::PolicyUnusable)?;
    Ok(api::hex(&signed.to_bytes()))
}

fn register(client: &Client<'_>, keyring: &Keyring, args: &InitArgs) -> Result<(), AdminError> {
    let request = InitRequest {
        init_secret: args.init_secret.clone().unwrap_or_default(),
        policy: default_policy(keyring)?,
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
