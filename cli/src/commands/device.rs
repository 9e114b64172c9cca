//! The device itself: init, passphrase, status.

use std::path::Path;

use eenplan_core::{CoreError, Device, DeviceId, PlanListEntry};
use serde::Serialize;

use crate::error::CliError;
use crate::output::{Lines, Output};
use crate::passphrase;

/// Creates a device; in a directory whose device was wiped, a new one in its place (the core's
/// `Device::init`: new keys, new id, the old wipe's unsent report kept for the next sync).
pub fn init(data: &Path) -> Result<Output, CliError> {
    // Checked before asking twice for a passphrase that would not be used.
    if Device::exists(data) && !Device::is_wiped(data) {
        return Err(CoreError::AlreadyInitialised.into());
    }
    let keystore = passphrase::keystore(passphrase::chosen(passphrase::DEVICE)?)?;
    let device = Device::init(data, &keystore)?;
    Ok(Output::Text(device.device_id().to_string()))
}

pub fn change_passphrase(data: &Path) -> Result<Output, CliError> {
    super::refuse_missing_or_wiped(data)?;
    let current = passphrase::keystore(passphrase::existing(passphrase::DEVICE)?)?;
    let mut device = super::unlock(data, &current)?;
    let new = passphrase::keystore(passphrase::chosen(passphrase::NEW)?)?;
    device.change_keystore(&current, &new)?;
    Ok(Output::Nothing)
}

#[derive(Debug, Serialize)]
struct Status {
    device: DeviceId,
    store: String,
    /// None while the offline lease has run out (the plan list is locked too).
    plans: Option<usize>,
    damaged_plans: usize,
    pending_changes: u64,
    disk_usage_bytes: u64,
    sync: eenplan_core::sync::DeviceStatus,
}

pub fn status(device: &Device, json: bool) -> Result<Output, CliError> {
    // Status must work while the lease has run out: it is how the user learns why.
    let entries = match device.list_plans() {
        Ok(entries) => Some(entries),
        Err(eenplan_core::CoreError::LeaseExpired { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let damaged = entries.iter().flatten().filter(|e| matches!(e, PlanListEntry::Damaged { .. })).count();
    let status = Status {
        device: device.device_id(),
        store: device.store_path().display().to_string(),
        plans: entries.as_ref().map(|e| e.len() - damaged),
        damaged_plans: damaged,
        pending_changes: device.pending_changes()?,
        disk_usage_bytes: device.disk_usage(),
        sync: device.status()?,
    };
    Output::choose(json, &status, |s| {
        let mut out = Lines::default();
        out.line(0, format!("device   {}", s.device));
        out.line(0, format!("store    {}", s.store));
        let damaged =
            if s.damaged_plans > 0 { format!(" ({} damaged)", s.damaged_plans) } else { String::new() };
        match s.plans {
            Some(plans) => out.line(0, format!("plans    {plans}{damaged}")),
            None => out.line(0, "plans    locked: the offline lease has run out; sync to unlock".to_owned()),
        }
        out.line(0, format!("pending  {} changes awaiting a push", s.pending_changes));
        out.line(0, format!("disk     {}", human_bytes(s.disk_usage_bytes)));
        let sync = &s.sync;
        let enrolment = match sync.enrolment {
            eenplan_core::sync::Enrolment::NotEnrolled => "not enrolled".to_owned(),
            eenplan_core::sync::Enrolment::PendingApproval => {
                "waiting for an administrator's approval".to_owned()
            }
            eenplan_core::sync::Enrolment::Active => "active".to_owned(),
        };
        out.line(0, format!("enrolment {enrolment}"));
        if let Some(server) = &sync.server {
            out.line(0, format!("server   {server}"));
        }
        if let (Some(user), Some(org), Some(role)) = (&sync.user, &sync.organisation, &sync.role) {
            out.line(0, format!("user     {user}, {org} ({role})"));
        }
        match (sync.lease_hours, sync.lease_expires_at_ms) {
            (Some(hours), Some(expires)) => {
                let state = if sync.lease_expired { "ran out" } else { "runs out" };
                let when = eenplan_core::lease::format_ms(expires);
                out.line(0, format!("lease    {hours} h offline; {state} {when}"));
            }
            (Some(hours), None) => {
                out.line(0, format!("lease    {hours} h offline; starts at the first sync"))
            }
            _ => {}
        }
        if let Some(version) = sync.policy_version {
            out.line(0, format!("policy   sharing policy version {version}"));
        }
        out.finish()
    })
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {} ({bytes} bytes)", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_print_in_binary_units() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(1536), "1.5 KiB (1536 bytes)");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB (5242880 bytes)");
    }
}
