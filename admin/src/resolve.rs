//! Finding the user or device an administrator means: by id, by a unique id prefix (devices),
//! or by name, when the name is unique.
//!
//! A device's name counts only when its own signature over it verifies under the key its
//! root-verified certificate names (a pending device: the key whose hash is its id): a server
//! that moved "Wim's Android" onto another device would otherwise make the administrator
//! revoke the wrong phone. Names that fit several users or devices are refused with the
//! candidates listed, in Dutch, so the administrator can pick by id.

use eenplan_protocol::api::{self, DeviceInfo, UserInfo};
use eenplan_protocol::certificate::{Certificate, DeviceBody, device_id_of};
use eenplan_protocol::device_name::SignedDeviceName;

use crate::error::AdminError;

/// The shortest id prefix that picks a device: revoking wipes a phone, so a short prefix
/// that happens to be unique today must not pick one by accident.
pub const MIN_PREFIX: usize = 6;

/// The user `text` names: a numeric id or a name, which must name exactly one user.
pub fn pick_user(users: Vec<UserInfo>, text: &str) -> Result<UserInfo, AdminError> {
    let wanted = text.trim();
    let id = wanted.parse::<i64>().ok();
    let mut matches: Vec<UserInfo> =
        users.into_iter().filter(|u| Some(u.id) == id || same_name(&u.name, wanted)).collect();
    // An exact spelling wins over one that differs only in case (an id never gives way).
    let by_id = matches.iter().any(|u| Some(u.id) == id);
    if !by_id && matches.len() > 1 && matches.iter().filter(|u| u.name == wanted).count() == 1 {
        matches.retain(|u| u.name == wanted);
    }
    match matches.len() {
        0 => Err(AdminError::UnknownUser(text.to_string())),
        1 => Ok(matches.remove(0)),
        _ => Err(AdminError::AmbiguousUser {
            name: text.to_string(),
            candidates: matches
                .iter()
                .map(|u| format!("{} ({}, id {})", u.name, u.org, u.id))
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}

/// [`pick_user`] for an administrator of organisation `own` (`None`: network-wide): a name
/// needs to be unique only within their own organisation, as the issue asks, and only if
/// nobody there answers to it are other organisations' people looked at (acting on them is
/// refused after, as out of scope).
pub fn pick_user_for(users: Vec<UserInfo>, text: &str, own: Option<&str>) -> Result<UserInfo, AdminError> {
    let Some(own) = own else { return pick_user(users, text) };
    let (mine, others): (Vec<UserInfo>, Vec<UserInfo>) = users.into_iter().partition(|u| u.org == own);
    match pick_user(mine, text) {
        Err(AdminError::UnknownUser(_)) => pick_user(others, text),
        found => found,
    }
}

/// [`pick_device`] for an administrator of organisation `own`, as [`pick_user_for`].
pub fn pick_device_for(
    devices: Vec<DeviceInfo>,
    text: &str,
    own: Option<&str>,
) -> Result<DeviceInfo, AdminError> {
    let Some(own) = own else { return pick_device(devices, text) };
    let (mine, others): (Vec<DeviceInfo>, Vec<DeviceInfo>) = devices.into_iter().partition(|d| d.org == own);
    match pick_device(mine, text) {
        Err(AdminError::UnknownDevice(_)) => pick_device(others, text),
        found => found,
    }
}

/// Names compare without regard to case or the spaces around them.
fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim(), b.trim());
    !a.is_empty() && a.to_lowercase() == b.to_lowercase()
}

/// The device `text` names among `devices` (whose labels were verified, see
/// [`verified_listing`]): its whole id, a unique prefix of at least [`MIN_PREFIX`]
/// characters, or its unique name. Among devices of the same name, those still in use
/// (pending or active) are meant before revoked or wiped ones.
pub fn pick_device(devices: Vec<DeviceInfo>, text: &str) -> Result<DeviceInfo, AdminError> {
    let wanted = text.trim();
    if wanted.is_empty() {
        return Err(AdminError::usage("geef een apparaat: zijn id, het begin daarvan of zijn naam"));
    }
    let lower = wanted.to_ascii_lowercase();
    if let Some(exact) = devices.iter().position(|d| d.device_id.eq_ignore_ascii_case(&lower)) {
        return Ok(devices.into_iter().nth(exact).unwrap_or_else(|| unreachable!()));
    }
    let is_prefix = lower.len() >= MIN_PREFIX && lower.chars().all(|c| c.is_ascii_hexdigit());
    let by_name: Vec<&DeviceInfo> = devices.iter().filter(|d| same_name(&d.label, wanted)).collect();
    let in_use: Vec<&DeviceInfo> =
        by_name.iter().copied().filter(|d| d.state == "active" || d.state == "pending").collect();
    let by_name = if in_use.is_empty() { by_name } else { in_use };
    let mut matches: Vec<&DeviceInfo> = devices
        .iter()
        .filter(|d| is_prefix && d.device_id.to_ascii_lowercase().starts_with(&lower))
        .collect();
    for device in by_name {
        if !matches.iter().any(|m| m.device_id.eq_ignore_ascii_case(&device.device_id)) {
            matches.push(device);
        }
    }
    match matches.as_slice() {
        [] if !is_prefix && lower.chars().all(|c| c.is_ascii_hexdigit()) => Err(AdminError::usage(format!(
            "{text:?} is te kort voor een apparaat-id: geef er minstens {MIN_PREFIX} tekens van, \
                 of de naam van het apparaat"
        ))),
        [] => Err(AdminError::UnknownDevice(text.to_string())),
        [one] => Ok((*one).clone()),
        several => Err(AdminError::AmbiguousDevice {
            given: text.to_string(),
            candidates: several.iter().map(|d| describe(d)).collect::<Vec<_>>().join("; "),
        }),
    }
}

/// "34750f98… (Wim's Android, Wim, actief)": enough to tell candidates apart.
fn describe(device: &DeviceInfo) -> String {
    let id: String = device.device_id.chars().take(12).collect();
    let name = if device.label.is_empty() { "zonder naam" } else { &device.label };
    format!("{id}… ({name}, {}, {})", device.user_name, state_label(&device.state))
}

/// A device's state as people read it.
pub fn state_label(state: &str) -> &str {
    match state {
        "pending" => "in afwachting",
        "active" => "actief",
        "revoked" => "ingetrokken",
        "wiped" => "gewist",
        other => other,
    }
}

/// The server's device listing as this keyring can vouch for it: see [`verified_listing`].
#[derive(Debug)]
pub struct Listing {
    pub devices: Vec<DeviceInfo>,
    /// Names cleared because the device's own signature over them does not verify.
    pub names_cleared: usize,
    /// Approved devices left out because their certificate does not verify against the
    /// root, or names another device or user than the server lists it for.
    pub dropped: usize,
}

/// The server's device listing checked against the root (see the module docs):
/// - an approved device (any but a pending one) is listed only if its certificate verifies
///   and names the device and user the server lists it for, and under the person,
///   organisation and role the certificate names: a server cannot move a phone into
///   another person's row for an administrator to revoke or offboard it;
/// - a name that does not verify is cleared;
/// - a listing with a device id that is not 32 hexadecimal characters is refused whole: ids go
///   into the console's links and form actions, and an id such as
///   `x/../../users/7/offboard?` would turn an "approve" click into another act.
pub fn verified_listing(devices: Vec<DeviceInfo>, root: &[u8; 32], now: i64) -> Result<Listing, AdminError> {
    if let Some(bad) = devices
        .iter()
        .find(|d| d.device_id.len() != 32 || !d.device_id.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(AdminError::BadResponse(format!(
            "the server lists a device whose id {:?} is not 32 hexadecimal characters",
            bad.device_id
        )));
    }
    let mut listing = Listing { devices: Vec::with_capacity(devices.len()), names_cleared: 0, dropped: 0 };
    for mut device in devices {
        if device.state != "pending" {
            match verified_certificate(&device, root, now) {
                Ok(body) => {
                    device.user_name = body.user_name;
                    device.org = body.organisation;
                    device.role = body.role;
                }
                Err(_) => {
                    listing.dropped += 1;
                    continue;
                }
            }
        }
        if !device.label.is_empty() && !label_verifies(&device, root, now) {
            device.label.clear();
            device.label_signature.clear();
            listing.names_cleared += 1;
        }
        listing.devices.push(device);
    }
    Ok(listing)
}

/// Whether the device signed its listed name and platform with its own key.
fn label_verifies(device: &DeviceInfo, root: &[u8; 32], now: i64) -> bool {
    let Some(platform) = device.platform else { return false };
    let Some(id) = api::unhex(&device.device_id).and_then(|b| <[u8; 16]>::try_from(b).ok()) else {
        return false;
    };
    let key = if device.certificate.is_empty() {
        // Pending: no certificate yet, but the id is the hash of the key, so the server
        // cannot swap in a key of its own for this id.
        api::unhex(&device.signing_public)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .filter(|key| device_id_of(key) == id)
    } else {
        verified_certificate(device, root, now).ok().map(|body| body.signing_public)
    };
    let Some(key) = key else { return false };
    let name =
        SignedDeviceName { label: device.label.clone(), platform, signature: device.label_signature.clone() };
    name.verify(&id, &key).is_ok()
}

/// The body of an approved device's certificate, checked against this network's root and
/// against the device and user the server lists it for.
pub fn verified_certificate(
    device: &DeviceInfo,
    root: &[u8; 32],
    now: i64,
) -> Result<DeviceBody, AdminError> {
    let bad = |reason| AdminError::BadDevice { device: device.device_id.clone(), reason };
    let decode = |text: &str| api::unhex(text).and_then(|b| Certificate::from_bytes(&b).ok());
    let certificate =
        decode(&device.certificate).ok_or_else(|| bad("the server lists no certificate for it"))?;
    let admin = decode(&device.admin_certificate)
        .ok_or_else(|| bad("the server lists no administrator certificate for it"))?;
    // Checked at a time inside its window: an expired certificate still names the device's
    // keys correctly.
    let window = certificate.claimed_device_body().map_err(|_| bad("its certificate does not decode"))?;
    let at = now.min(window.valid_until_ms).max(window.valid_from_ms);
    let body = certificate
        .verify_device(&admin, root, at)
        .map_err(|_| bad("its certificate does not verify against this network's root"))?;
    if api::hex(&body.device_id) != device.device_id.to_ascii_lowercase() || body.user_id != device.user_id {
        return Err(bad("its certificate names another device or user"));
    }
    Ok(body)
}

#[cfg(test)]
mod tests;
