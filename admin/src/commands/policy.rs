//! `policy show`, `policy set`.

use eenplan_protocol::api::{self, PolicyUpload, RotationsQueued};
use eenplan_protocol::policy::{COMPARTMENTS, MAX_POLICY_LEN, Policy, PolicyError};
use serde_json::json;

use super::{Session, with_rotation};
use crate::args::{PolicyCommand, PolicySetArgs};
use crate::error::AdminError;
use crate::output::Output;
use crate::policy_file;

pub fn run(session: &mut Session, command: PolicyCommand, json: bool) -> Result<Output, AdminError> {
    match command {
        PolicyCommand::Show => show(session, json),
        PolicyCommand::Set(args) => {
            session.require_network_wide("het deelbeleid vaststellen")?;
            set(session, &args, json)
        }
    }
}

fn show(session: &mut Session, json: bool) -> Result<Output, AdminError> {
    let policy = session.policy()?;
    if json {
        return Output::either(true, || &policy, String::new);
    }
    let table = policy_file::to_toml(&policy)
        .map_err(|e| AdminError::BadResponse(format!("the policy cannot be written as TOML: {e}")))?;
    Ok(Output::Text(format!("{}{table}", policy_file::header(&policy, &session.keyring.root_fingerprint()))))
}

/// The policy in force, or `None` when the server has none to give (a server set up before
/// policies existed answers 404; any version is newer than none).
fn current(session: &mut Session) -> Result<Option<Policy>, AdminError> {
    match session.policy() {
        Ok(policy) => Ok(Some(policy)),
        Err(AdminError::Server { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn set(session: &mut Session, args: &PolicySetArgs, json: bool) -> Result<Output, AdminError> {
    let path = args.file.display().to_string();
    // Read and checked before the server is asked anything: a mistake in the file costs no
    // request.
    let bytes = read_limited(&args.file, policy_file::MAX_FILE_LEN)
        .map_err(|source| AdminError::ReadFile { path: path.clone(), source })?;
    let parsed = policy_file::parse_bytes(&bytes)
        .map_err(|source| AdminError::PolicyFile { path: path.clone(), source })?;
    let policy = parsed.policy;
    for (role, line) in &parsed.unknown_roles {
        eprintln!(
            "warning: {path}: line {line}: no user can have role {role:?} (see `eenplan-admin user add --help`); \
             its entry gives nobody anything"
        );
    }
    let signed =
        policy.sign(session.root("signing a policy")?).map_err(AdminError::PolicyUnusable)?.to_bytes();
    if signed.len() > MAX_POLICY_LEN {
        return Err(AdminError::PolicyUnusable(PolicyError::Malformed(format!(
            "the signed policy is {} bytes; at most {MAX_POLICY_LEN} are accepted",
            signed.len()
        ))));
    }

    let previous = current(session)?;
    if let Some(previous) = &previous {
        if policy.version <= previous.version {
            return Err(AdminError::PolicyNotNewer { current: previous.version, given: policy.version });
        }
        for (role, compartment) in previous.lost_reads(&policy) {
            let name = COMPARTMENTS.get(usize::from(compartment)).copied().unwrap_or("?");
            eprintln!("note: role {role:?} no longer reads {name}: its documents move to a new key");
        }
    }
    let answer =
        session.client().post(api::PATH_ADMIN_POLICY, &PolicyUpload { policy: api::hex(&signed) })?;
    let queued = serde_json::from_slice::<RotationsQueued>(&answer).ok();
    // The server took it: no server may hand this keyring an older one from now on.
    session.keyring.trust.policy_signed = session.keyring.trust.policy_signed.max(policy.version);
    session.save()?;
    let outcome = session.rotate_pending(queued.as_ref().map(|q| q.pending), Some(policy.clone()));
    let previous_version = previous.as_ref().map(|p| p.version);
    let text = match previous_version {
        Some(previous) => format!("policy version {} is in force (was {previous})\n", policy.version),
        None => format!("policy version {} is in force\n", policy.version),
    };
    let value = json!({
        "version": policy.version,
        "previous_version": previous_version,
        "pending": queued.map(|q| q.pending),
    });
    with_rotation(json, text, value, outcome)
}

/// Reads at most `limit + 1` bytes, so that a huge file (or a device file) is not read whole
/// just to be refused.
fn read_limited(path: &std::path::Path, limit: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    std::fs::File::open(path)?.take(cap).read_to_end(&mut bytes)?;
    Ok(bytes)
}
