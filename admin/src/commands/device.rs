//! `device enrol`, `device list`, `device approve`, `device revoke`.

use std::collections::HashMap;

use eenplan_protocol::api::{self, CertificateUpload, DeviceInfo, RevokeRequest, RotationsQueued};
use eenplan_protocol::api::{EnrolmentCode, UserInfo};
use eenplan_protocol::revocation::RevokedDevice;
use eenplan_protocol::sync::Fixed;
use eenplan_protocol::wipe::{RevocationReason, WipeOrder};
use serde::Serialize;
use serde_json::json;

use super::{Session, with_rotation};
use crate::args::{ApproveArgs, DeviceCommand, DeviceListArgs, EnrolArgs, RevokeArgs};
use crate::client::now_ms;
use crate::enrolment::{self, PENDING};
use crate::error::AdminError;
use crate::keyring::IssuedCode;
use crate::output::{self, Output, table};
use crate::rekey::{Outcome, Progress};

pub fn run(session: &mut Session, command: DeviceCommand, json: bool) -> Result<Output, AdminError> {
    match command {
        DeviceCommand::Enrol(args) => enrol(session, args, json),
        DeviceCommand::List(args) => list(session, args, json),
        DeviceCommand::Approve(args) => approve(session, args, json),
        DeviceCommand::Revoke(args) => revoke(session, &args, json),
    }
}

/// A device revoked by [`revoke_device`].
#[derive(Debug)]
pub(crate) struct Revoked {
    pub device: DeviceInfo,
    pub revocation_list: u32,
    /// The documents the server queued for a new key, as it counted them.
    pub pending: Option<u64>,
}

/// Revokes the device `text` names (its id, a unique id prefix or its unique verified name),
/// and rotates every document it could read, telling `progress`: what `device revoke` and the
/// console's revoke do.
pub(crate) fn revoke_device(
    session: &mut Session,
    text: &str,
    reason: RevocationReason,
    progress: &mut Progress,
) -> Result<(Revoked, Outcome), AdminError> {
    let device = session.device(text)?;
    let id: [u8; 16] = api::unhex(&device.device_id).and_then(|b| b.try_into().ok()).ok_or_else(|| {
        AdminError::BadDevice {
            device: device.device_id.clone(),
            reason: "the device id is not 32 hexadecimal characters",
        }
    })?;
    // The entry names the organisation devices count it under: the one in the device's
    // root-verified certificate, which the verified listing shows (a device never approved
    // has only the server's word).
    session.require_org(&device.org)?;
    let now = now_ms()?;
    // Recorded in the keyring before the server hears of it: from now on this keyring seals
    // nothing to the device, whatever the server says. Then published in the next signed
    // revocation list, which devices check before they seal a key to anyone.
    session.keyring.trust.record(RevokedDevice::sign(id, now, reason, &device.org, &session.keyring.admin));
    session.save()?;
    let list = session.revocations()?;
    let pending = post_revocation(session, &id, reason, now)?;
    let outcome = session.rotate_pending_with(pending, None, progress);
    Ok((Revoked { device, revocation_list: list.version, pending }, outcome))
}

fn revoke(session: &mut Session, args: &RevokeArgs, json: bool) -> Result<Output, AdminError> {
    let (revoked, outcome) = revoke_device(session, &args.device, args.reason, &mut Progress::on_stderr())?;
    let device = &revoked.device;
    let text = format!(
        "revoked {}: {} ({}, {}), {}; a wipe order waits for it\n",
        device.device_id,
        device.user_name,
        device.org,
        device.role,
        args.reason.as_str()
    );
    let value = json!({
        "device_id": device.device_id,
        "user_id": device.user_id,
        "user_name": device.user_name,
        "reason": args.reason.as_str(),
        "revocation_list": revoked.revocation_list,
        "pending": revoked.pending,
    });
    with_rotation(json, text, value, outcome)
}

/// Has the server revoke device `id` (already on the newest revocation list), leaving a
/// wipe order signed by this administrator; the documents now waiting for a new key.
pub(crate) fn post_revocation(
    session: &Session,
    id: &[u8; 16],
    reason: RevocationReason,
    now: i64,
) -> Result<Option<u64>, AdminError> {
    // Signed by this administrator, with the certificate that shows the root made it one: the
    // device obeys only an order it can check against the root it pinned.
    let order = WipeOrder {
        device: Fixed(*id),
        reason,
        issued_at_ms: now,
        admin_certificate: session.keyring.admin_certificate.to_bytes(),
    }
    .sign(&session.keyring.admin);
    let request =
        RevokeRequest { reason: reason.as_str().to_string(), wipe_order: api::hex(&order.to_bytes()) };
    let answer = session.client().post(&api::admin_revoke_path(id), &request)?;
    Ok(serde_json::from_slice::<RotationsQueued>(&answer).ok().map(|q| q.pending))
}

/// An enrolment code this keyring issued and the server can now be claimed with.
#[derive(Debug)]
pub(crate) struct Issued {
    pub code: EnrolmentCode,
    pub user: UserInfo,
    pub expires_at_ms: i64,
}

/// Makes an enrolment code for one device of the user `user` names: what `device enrol` and
/// the console's enrol page do.
pub(crate) fn issue_code(session: &mut Session, user: &str, valid_hours: u32) -> Result<Issued, AdminError> {
    let user = session.user(user)?;
    session.require_org(&user.org)?;
    // A device certified for a role the policy does not name could do nothing.
    session.require_role_in_policy(&user.role)?;
    let now = now_ms()?;
    session.keyring.prune_codes(now);
    let (code, request) = enrolment::issue(&mut session.keyring, &user, now, valid_hours)?;
    // Remembered before the server learns of it, so that no code can be claimed that this
    // keyring cannot later approve by.
    session.save()?;
    if let Err(e) = session.client().post(api::PATH_ADMIN_ENROLMENTS, &request) {
        // The code never became claimable. Forgetting it is tidiness only: a stale entry
        // matches no device, so a failure to save here is not worth reporting over `e`.
        let id = code.id();
        session.keyring.issued_codes.retain(|c| c.code_id != id);
        let _ = session.save();
        return Err(e);
    }
    Ok(Issued { code, user, expires_at_ms: request.expires_at_ms })
}

fn enrol(session: &mut Session, args: EnrolArgs, json: bool) -> Result<Output, AdminError> {
    let Issued { code, user, expires_at_ms } = issue_code(session, &args.user, args.valid_hours)?;
    if !json {
        // On stderr, so that stdout is the code alone for scripts to capture.
        eprintln!(
            "enrolment code for {} (id {}), valid until {}:",
            user.name,
            user.id,
            output::time(expires_at_ms)
        );
    }
    Output::either(
        json,
        || {
            json!({
                "code": code.to_string(),
                "user_id": user.id,
                "user_name": user.name,
                "expires_at_ms": expires_at_ms,
            })
        },
        || code.to_string(),
    )
}

/// Certifies the one pending device `device_id` names, if its key MAC proves an enrolment
/// code this keyring issued: the console's approve button.
pub(crate) fn approve_device(session: &mut Session, device_id: &str) -> Result<Approved, AdminError> {
    let pending: Vec<DeviceInfo> = session.client().get(&devices_path(true))?;
    let info = pending
        .into_iter()
        .find(|d| d.state == PENDING && d.device_id.eq_ignore_ascii_case(device_id))
        .ok_or_else(|| AdminError::UnknownDevice(device_id.to_owned()))?;
    // The server's word that a device is pending for some user proves nothing: only a key
    // MAC under a code this keyring issued does.
    let index = enrolment::code_of(&session.keyring, &info).ok_or(AdminError::UnknownCode)?;
    let issued = session.keyring.issued_codes.get(index).cloned().ok_or(AdminError::UnknownCode)?;
    let approved = approve_one(session, &info, &issued, now_ms()?)?;
    // A code approves once.
    session.keyring.issued_codes.retain(|c| c.code_id != issued.code_id);
    session.save()?;
    Ok(approved)
}

pub(crate) fn devices_path(pending: bool) -> String {
    if pending {
        format!("{}?state={PENDING}", api::PATH_ADMIN_DEVICES)
    } else {
        api::PATH_ADMIN_DEVICES.to_string()
    }
}

fn list(session: &Session, args: DeviceListArgs, json: bool) -> Result<Output, AdminError> {
    let devices = session.devices_at(&devices_path(args.pending))?;
    let now = now_ms()?;
    Output::either(json, || &devices, || listing_text(&devices, now))
}

/// The device listing for people, in Dutch: name, platform, person, enrolment, last seen,
/// state.
fn listing_text(devices: &[DeviceInfo], now: i64) -> String {
    if devices.is_empty() {
        return "geen apparaten\n".to_string();
    }
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| {
            vec![
                d.device_id.chars().take(12).collect(),
                if d.label.is_empty() { "(geen naam)".to_string() } else { d.label.clone() },
                d.platform.map_or("?", |p| p.label()).to_string(),
                format!("{} ({})", d.user_name, d.user_id),
                d.org.clone(),
                eenplan_core::calendar::dutch_long_date_of_ms(d.enrolled_at_ms.max(d.created_at_ms)),
                d.last_seen_ms.map_or_else(|| "nooit".to_string(), |at| output::ago(at, now)),
                crate::resolve::state_label(&d.state).to_string(),
            ]
        })
        .collect();
    table(
        &["APPARAAT", "NAAM", "PLATFORM", "GEBRUIKER", "ORGANISATIE", "AANGEMELD", "LAATST GEZIEN", "STATUS"],
        &rows,
    )
}

/// One device this command certified.
#[derive(Debug, Serialize)]
pub(crate) struct Approved {
    pub device_id: String,
    pub user_id: i64,
    pub user_name: String,
    pub org: String,
    pub role: String,
    pub valid_until_ms: i64,
}

fn approve(session: &mut Session, args: ApproveArgs, json: bool) -> Result<Output, AdminError> {
    // The code is checked before the server is asked anything: a typo costs no request.
    let code = args.code.as_deref().map(|text| enrolment::find_code(&session.keyring, text)).transpose()?;
    let pending: Vec<DeviceInfo> = session.client().get(&devices_path(true))?;
    let pending: Vec<DeviceInfo> = pending.into_iter().filter(|d| d.state == PENDING).collect();
    // Each device goes with the issued code its key MAC proves; the server's word that a
    // device is pending for some user proves nothing (it could have made the device up).
    let mut refused = 0;
    let chosen: Vec<(DeviceInfo, IssuedCode)> = match code {
        Some(index) => {
            let issued = session.keyring.issued_codes.get(index).ok_or(AdminError::UnknownCode)?;
            // Codes carry the organisation they were issued for: a keyring's codes from
            // before its scope do not reach beyond it.
            session.require_org(&issued.org)?;
            match enrolment::claimant(issued, &pending)? {
                Some(claimed) => vec![(claimed.clone(), issued.clone())],
                None => return Err(AdminError::CodeNotClaimed { user: issued.user_name.clone() }),
            }
        }
        None => {
            let matched: Vec<(DeviceInfo, Option<usize>)> = pending
                .into_iter()
                .map(|d| {
                    let index = enrolment::code_of(&session.keyring, &d);
                    (d, index)
                })
                .collect();
            let mut claims: HashMap<usize, Vec<&str>> = HashMap::new();
            for (d, index) in &matched {
                if let Some(index) = index {
                    let ids = claims.entry(*index).or_default();
                    if !ids.contains(&d.device_id.as_str()) {
                        ids.push(&d.device_id);
                    }
                }
            }
            let mut chosen = Vec::new();
            let mut seen = Vec::new();
            for (d, index) in &matched {
                match index.and_then(|i| session.keyring.issued_codes.get(i).map(|c| (i, c))) {
                    None => {
                        eprintln!(
                            "warning: device {}: its key MAC proves no enrolment code this keyring issued; \
                             not approved",
                            d.device_id
                        );
                        refused += 1;
                    }
                    Some((i, issued)) if claims.get(&i).is_some_and(|ids| ids.len() > 1) => {
                        eprintln!(
                            "warning: device {}: {}; not approved",
                            d.device_id,
                            AdminError::AmbiguousClaim { user: issued.user_name.clone() }
                        );
                        refused += 1;
                    }
                    // The same device listed twice is approved once.
                    Some((i, _)) if seen.contains(&i) => {}
                    Some((i, issued)) => {
                        seen.push(i);
                        chosen.push((d.clone(), issued.clone()));
                    }
                }
            }
            chosen
        }
    };
    if chosen.is_empty() && refused == 0 && !json {
        eprintln!("no device is waiting for approval");
    }

    let now = now_ms()?;
    let mut approved = Vec::new();
    let mut used_codes = Vec::new();
    let mut stopped = None;
    for (info, issued) in &chosen {
        match approve_one(session, info, issued, now) {
            Ok(done) => {
                approved.push(done);
                used_codes.push(issued.code_id);
            }
            // One device the server describes badly must not hold up the others.
            Err(e @ AdminError::BadDevice { .. }) => {
                eprintln!("warning: {e}; not approved");
                refused += 1;
            }
            // The server or the connection failed: the rest would fail the same way.
            Err(e) => {
                stopped = Some(e);
                break;
            }
        }
    }
    if !used_codes.is_empty() {
        // A code approves once: a device that claims it later (the server should refuse
        // that anyway) needs a new code.
        session.keyring.issued_codes.retain(|c| !used_codes.contains(&c.code_id));
        if let Err(e) = session.save()
            && stopped.is_none()
        {
            stopped = Some(e);
        }
    }

    let done = Output::either(
        json,
        || &approved,
        || {
            approved
                .iter()
                .map(|a| {
                    format!(
                        "approved {}: {} ({}, {}), valid until {}\n",
                        a.device_id,
                        a.user_name,
                        a.org,
                        a.role,
                        output::time(a.valid_until_ms)
                    )
                })
                .collect()
        },
    )?;
    match (stopped, refused) {
        (None, 0) => Ok(done),
        (Some(error), _) => Err(AdminError::Partial { done, error: Box::new(error) }),
        (None, refused) => {
            Err(AdminError::Partial { done, error: Box::new(AdminError::NotApproved(refused)) })
        }
    }
}

fn approve_one(
    session: &Session,
    info: &DeviceInfo,
    issued: &IssuedCode,
    now: i64,
) -> Result<Approved, AdminError> {
    session.require_org(&issued.org)?;
    let keyring = &session.keyring;
    let (body, certificate) = enrolment::certify(info, issued, &keyring.admin, now)?;
    // Exactly the check every device will make; failing it here means the keyring itself is
    // inconsistent, and the certificate would be useless.
    certificate.verify_device(&keyring.admin_certificate, &keyring.root_public(), now).map_err(|_| {
        AdminError::BadDevice {
            device: info.device_id.clone(),
            reason: "the certificate made for it does not verify",
        }
    })?;
    // Built from the checked bytes, so the path segment is plain hex whatever the server sent.
    let path = api::device_certificate_path(&body.device_id);
    let upload = CertificateUpload { certificate: api::hex(&certificate.to_bytes()) };
    session.client().post(&path, &upload)?;
    Ok(Approved {
        device_id: api::hex(&body.device_id),
        user_id: body.user_id,
        user_name: body.user_name,
        org: body.organisation,
        role: body.role,
        valid_until_ms: body.valid_until_ms,
    })
}
