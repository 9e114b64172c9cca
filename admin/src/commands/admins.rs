//! `admin request`, `admin add`, `admin accept`: a new administrator, certified by the root,
//! whose key never leaves their own keyring.
//!
//! ```text
//! new administrator:  admin request --name N      → makes the key in DIR, prints a request
//! root holder:        admin add --org ORG REQUEST → root-signed certificate, registered with
//!                                                   the server, printed as a grant
//! new administrator:  admin accept GRANT          → the keyring, root pinned from the grant
//! ```
//!
//! The request carries the name, the public key and the server; the grant carries the
//! certificate and the network's public keys (root, escrow and the root's signature on
//! escrow), all checked against each other before anything is written. The root is pinned
//! from the grant, never from the server; `--root-fingerprint` lets the new administrator
//! refuse a grant whose root is not the one they were told of.

use std::path::Path;

use eenplan_protocol::api::{self, NewAdmin};
use eenplan_protocol::certificate::{AdminBody, Certificate};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Session;
use crate::args::{AdminAcceptArgs, AdminAddArgs, AdminCommand, AdminRequestArgs};
use crate::client::{ServerUrl, now_ms};
use crate::error::AdminError;
use crate::keyring::request::{self, PendingAdmin, RequestFile};
use crate::keyring::{self, Keyring, KeyringFile};
use crate::output::Output;
use crate::passphrase::{self, Which};

const REQUEST_PREFIX: &str = "eenplan-beheerverzoek:";
const GRANT_PREFIX: &str = "eenplan-beheermachtiging:";
/// Requests and grants are a few hundred bytes; refuse to decode more.
const MAX_TOKEN_LEN: usize = 16 * 1024;
const MAX_NAME_CHARS: usize = 200;

/// What the new administrator hands to the root holder.
#[derive(Debug, Serialize, Deserialize)]
struct AdminRequestToken {
    name: String,
    #[serde(with = "eenplan_protocol::bytes")]
    admin_public: Vec<u8>,
    server: String,
}

/// What the root holder hands back.
#[derive(Debug, Serialize, Deserialize)]
struct GrantToken {
    #[serde(with = "eenplan_protocol::bytes")]
    certificate: Vec<u8>,
    #[serde(with = "eenplan_protocol::bytes")]
    root_public: Vec<u8>,
    #[serde(with = "eenplan_protocol::bytes")]
    escrow_public: Vec<u8>,
    #[serde(with = "eenplan_protocol::bytes")]
    escrow_signature: Vec<u8>,
}

pub fn run(
    data: &Path,
    server: Option<ServerUrl>,
    offline: Option<&Path>,
    command: AdminCommand,
    json: bool,
) -> Result<Output, AdminError> {
    match command {
        AdminCommand::Request(args) => make_request(data, server, &args, json),
        AdminCommand::Add(args) => {
            let session = Session::open(data, server, offline)?;
            add(&session, &args, json)
        }
        AdminCommand::Accept(args) => accept(data, &args, json),
    }
}

fn encode<T: Serialize>(prefix: &str, value: &T) -> String {
    let mut bytes = Vec::new();
    // Encoding a plain struct into a Vec cannot fail.
    let _ = ciborium::into_writer(value, &mut bytes);
    format!("{prefix}{}", api::hex(&bytes))
}

fn decode<T: for<'de> Deserialize<'de>>(prefix: &str, text: &str, what: &str) -> Result<T, AdminError> {
    let bad = || AdminError::usage(format!("dit is geen {what} van eenplan-admin"));
    let hex = text.trim().strip_prefix(prefix).ok_or_else(bad)?;
    if hex.len() > MAX_TOKEN_LEN * 2 {
        return Err(bad());
    }
    let bytes = api::unhex(hex).ok_or_else(bad)?;
    ciborium::from_reader(bytes.as_slice()).map_err(|_| bad())
}

fn check_name(name: &str) -> Result<&str, AdminError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(AdminError::usage(format!(
            "de naam moet één regel van 1 tot {MAX_NAME_CHARS} tekens zijn"
        )));
    }
    Ok(name)
}

/// `admin request`: the key, in a request file under the new administrator's passphrase.
fn make_request(
    data: &Path,
    server: Option<ServerUrl>,
    args: &AdminRequestArgs,
    json: bool,
) -> Result<Output, AdminError> {
    let server = server
        .ok_or_else(|| AdminError::usage("admin request heeft --server URL nodig (of EENPLAN_SERVER)"))?;
    let name = check_name(&args.name)?;
    if keyring::exists(data) {
        return Err(keyring::KeyringError::Exists(data.to_path_buf()).into());
    }
    let cost = passphrase::kdf_for(&server)?;
    let host = server.as_str().split("://").nth(1).unwrap_or_default();
    let keystore = passphrase::chosen(Which::Daily, cost, &[name, host])?;
    let admin = ed25519_dalek::SigningKey::from_bytes(&eenplan_core::crypto::random_array::<32>());
    let pending = PendingAdmin { server: server.as_str().to_owned(), name: name.to_owned(), admin };
    drop(RequestFile::create(data, &pending, &keystore)?);
    std::fs::write(data.join(SERVER_MARKER), server.as_str())
        .map_err(|e| AdminError::usage(format!("kan {} niet schrijven: {e}", data.display())))?;
    let token = AdminRequestToken {
        name: pending.name.clone(),
        admin_public: pending.admin.verifying_key().to_bytes().to_vec(),
        server: pending.server.clone(),
    };
    let text = encode(REQUEST_PREFIX, &token);
    if !json {
        eprintln!(
            "De sleutel van {name} staat in {}. Geef het verzoek hieronder aan wie de netwerksleutel \
             beheert; daarna: eenplan-admin admin accept MACHTIGING",
            data.display()
        );
    }
    Output::either(json, || json!({ "request": text, "name": name }), || text.clone())
}

/// `admin add`: the root certifies the request's key for the scope asked.
fn add(session: &Session, args: &AdminAddArgs, json: bool) -> Result<Output, AdminError> {
    session.require_network_wide("een beheerder toevoegen")?;
    let request: AdminRequestToken = decode(REQUEST_PREFIX, &args.request, "beheerverzoek")?;
    let name = check_name(&request.name)?.to_owned();
    let admin_public: [u8; 32] = request
        .admin_public
        .as_slice()
        .try_into()
        .map_err(|_| AdminError::usage("het verzoek bevat geen geldige sleutel"))?;
    ed25519_dalek::VerifyingKey::from_bytes(&admin_public)
        .map_err(|_| AdminError::usage("het verzoek bevat geen geldige sleutel"))?;
    let organisation = match (&args.org, args.network_wide) {
        (Some(org), false) => Some(check_name(org)?.to_owned()),
        (None, true) => None,
        _ => return Err(AdminError::usage("geef --org ORGANISATIE of --network-wide")),
    };
    if let Some(org) = &organisation {
        let orgs: Vec<api::OrgInfo> = session.client().get(api::PATH_ADMIN_ORGS)?;
        if !orgs.iter().any(|o| &o.name == org) {
            return Err(AdminError::usage(format!("er is geen organisatie met de naam {org:?}")));
        }
    }
    let root = session.root("een beheerder certificeren")?;
    let body = AdminBody { admin_public, name: name.clone(), issued_at_ms: now_ms()?, organisation };
    let certificate = Certificate::sign_admin(&body, root);
    session
        .client()
        .post(api::PATH_ADMIN_ADMINS, &NewAdmin { certificate: api::hex(&certificate.to_bytes()) })?;
    let grant = GrantToken {
        certificate: certificate.to_bytes(),
        root_public: session.keyring.root_public().to_vec(),
        escrow_public: session.keyring.escrow_public.clone(),
        escrow_signature: session.keyring.escrow_signature.to_vec(),
    };
    let text = encode(GRANT_PREFIX, &grant);
    let scope = body.scope();
    let fingerprint = session.keyring.root_fingerprint();
    if !json {
        eprintln!(
            "{name} is beheerder ({}). Geef de machtiging hieronder terug, met de vingerafdruk van \
             de netwerksleutel: {fingerprint}",
            dutch_scope(&scope)
        );
    }
    Output::either(
        json,
        || json!({ "grant": text, "name": name, "organisation": scope.organisation(), "root_fingerprint": fingerprint }),
        || text.clone(),
    )
}

fn dutch_scope(scope: &eenplan_protocol::certificate::AdminScope) -> String {
    match scope.organisation() {
        Some(org) => format!("van {org}"),
        None => "voor het hele netwerk".to_owned(),
    }
}

/// `admin accept`: the keyring, once the grant checks out against the request's own key.
fn accept(data: &Path, args: &AdminAcceptArgs, json: bool) -> Result<Output, AdminError> {
    // Checked before any passphrase is asked, so a mangled grant costs no typing.
    let grant: GrantToken = decode(GRANT_PREFIX, &args.grant, "beheermachtiging")?;
    if !request::exists(data) {
        return Err(AdminError::usage(format!(
            "in {} wacht geen beheerverzoek: begin met eenplan-admin admin request",
            data.display()
        )));
    }
    let root_public: [u8; 32] = grant
        .root_public
        .as_slice()
        .try_into()
        .map_err(|_| AdminError::usage("de machtiging is beschadigd"))?;
    let fingerprint = keyring::fingerprint(&root_public);
    if let Some(expected) = &args.root_fingerprint
        && !expected.trim().eq_ignore_ascii_case(&fingerprint)
    {
        return Err(AdminError::usage(format!(
            "de netwerksleutel in de machtiging heeft vingerafdruk {fingerprint}, niet {}: niet aanvaard",
            expected.trim()
        )));
    }
    let certificate = Certificate::from_bytes(&grant.certificate)
        .map_err(|_| AdminError::usage("de machtiging is beschadigd"))?;
    let body = certificate.verify_admin(&root_public).map_err(|_| {
        AdminError::usage("het certificaat in de machtiging is niet door de netwerksleutel ondertekend")
    })?;
    let escrow_signature: [u8; 64] = grant
        .escrow_signature
        .as_slice()
        .try_into()
        .map_err(|_| AdminError::usage("de machtiging is beschadigd"))?;
    let server = ServerUrl::parse(&read_server(data)?)?;
    let keystore = passphrase::existing(Which::Daily, passphrase::kdf_for(&server)?)?;
    let (file, pending) = RequestFile::open(data, &keystore)?;
    if body.admin_public != pending.admin.verifying_key().to_bytes() {
        return Err(AdminError::usage("de machtiging is voor een andere sleutel dan die van dit verzoek"));
    }
    let keyring =
        Keyring::from_grant(pending, certificate, root_public, grant.escrow_public, escrow_signature)?;
    drop(KeyringFile::create(data, &keyring, &keystore)?);
    file.remove()?;
    let _ = std::fs::remove_file(data.join(SERVER_MARKER));
    let scope = body.scope();
    if !json {
        eprintln!(
            "Vingerafdruk van de netwerksleutel: {fingerprint}; vergelijk die met wat de netwerkbeheerder u zei."
        );
    }
    Output::either(
        json,
        || json!({ "name": body.name, "organisation": scope.organisation(), "root_fingerprint": fingerprint }),
        || format!("{} is nu beheerder {}\n", body.name, dutch_scope(&scope)),
    )
}

/// The server the request was made for, without unlocking it: the passphrase's cost depends
/// on it. The request file keeps it sealed, so it is read from the data directory's marker.
fn read_server(data: &Path) -> Result<String, AdminError> {
    std::fs::read_to_string(data.join(SERVER_MARKER))
        .map(|s| s.trim().to_owned())
        .map_err(|_| AdminError::usage(format!("in {} wacht geen beheerverzoek", data.display())))
}

/// The server URL beside the request file (not secret: it is in the request too).
pub const SERVER_MARKER: &str = "admin-request.server";
