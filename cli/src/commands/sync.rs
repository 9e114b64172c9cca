//! Enrolment and sync: thin calls into the core's sync client.

use std::io::{ErrorKind, Write};
use std::ops::ControlFlow;

use eenplan_core::Device;
use eenplan_core::sync::{SyncReport, WatchEvent};

use crate::args::{EnrolArgs, RenameArgs, SyncArgs};
use crate::error::CliError;
use crate::output::{Lines, Output};

pub fn enrol(device: &mut Device, args: EnrolArgs) -> Result<Output, CliError> {
    if is_plain_http_to_another_machine(args.server.as_str()) {
        eprintln!(
            "warning: {} is plain HTTP to another machine. Everyone on the way sees which plans this \
             device syncs and when, and can hold back or replay its requests. Plain HTTP is only for \
             a demo on this machine (http://127.0.0.1:…); use https://.",
            args.server
        );
    }
    device.enrol(args.server.as_str(), &args.code, &args.name, args.platform)?;
    send_previous_wipe_reports(device);
    Ok(Output::Text(format!(
        "enrolled device {} ({}) at {}; an administrator must approve it, then run sync",
        device.device_id(),
        args.name,
        args.server
    )))
}

pub fn rename(device: &mut Device, args: RenameArgs) -> Result<Output, CliError> {
    device.rename(&args.name)?;
    Ok(Output::Text(format!(
        "dit apparaat heet nu {:?}; de beheerder ziet dat na de volgende sync",
        args.name
    )))
}

pub fn sync(device: &mut Device, args: SyncArgs) -> Result<Output, CliError> {
    if args.watch {
        return watch(device, args.json);
    }
    let report = device.sync()?;
    send_previous_wipe_reports(device);
    Output::choose(args.json, &report, report_text)
}

/// The reports of earlier wipes of this directory (kept by `init`), now that the server is
/// reachable. A failure leaves them for the next sync; it is not this command's result.
fn send_previous_wipe_reports(device: &Device) {
    let _ = Device::send_previous_wipe_reports(device.data_dir());
}

/// `sync --watch`: one line per event, written as it happens (not collected into an
/// [`Output`], since the command runs until it is interrupted).
fn watch(device: &mut Device, json: bool) -> Result<Output, CliError> {
    let mut failed = None;
    device.watch(|event| {
        let line =
            if json { serde_json::to_string(&event).map_err(CliError::from) } else { Ok(event_text(&event)) };
        let written = line.and_then(|line| {
            let mut out = std::io::stdout().lock();
            // Flushed per line: whoever reads the pipe wants each event when it happens.
            writeln!(out, "{line}")
                .and_then(|()| out.flush())
                .map_err(CliError::io("write to", "standard output"))
        });
        match written {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        }
    })?;
    match failed {
        // The reader went away (`eenplan sync --watch | head -3`): it got what it wanted.
        Some(CliError::Io { source, .. }) if source.kind() == ErrorKind::BrokenPipe => Ok(Output::Nothing),
        Some(e) => Err(e),
        None => Ok(Output::Nothing),
    }
}

/// One line per event, e.g. `down 1 bundle(s): updated plan 3f2a…`.
fn event_text(event: &WatchEvent) -> String {
    match event {
        WatchEvent::Connected => "connected: waiting for changes from other devices".to_owned(),
        WatchEvent::Disconnected(reason) => format!("disconnected: {reason}; reconnecting"),
        WatchEvent::Synced(r) => {
            let mut parts = Vec::new();
            if r.pushed_bundles > 0 {
                parts.push(format!("up {} bundle(s)", r.pushed_bundles));
            }
            if r.received_bundles > 0 {
                let plans: Vec<String> = r
                    .new_plans
                    .iter()
                    .map(|p| format!("new plan {p}"))
                    .chain(
                        r.plans_updated
                            .iter()
                            .filter(|p| !r.new_plans.contains(p))
                            .map(|p| format!("updated plan {p}")),
                    )
                    .collect();
                let down = format!("down {} bundle(s)", r.received_bundles);
                parts.push(if plans.is_empty() { down } else { format!("{down}: {}", plans.join(", ")) });
            }
            if r.envelopes_received + r.envelopes_sent > 0 {
                parts.push(format!(
                    "keys: {} received, {} sealed for others",
                    r.envelopes_received, r.envelopes_sent
                ));
            }
            if r.snapshots_sent > 0 {
                parts.push(format!("{} snapshot(s) sent", r.snapshots_sent));
            }
            for refused in &r.refused {
                parts.push(format!("refused: {refused}"));
            }
            if parts.is_empty() { "up to date".to_owned() } else { parts.join("; ") }
        }
    }
}

fn report_text(r: &SyncReport) -> String {
    let mut out = Lines::default();
    out.line(
        0,
        format!(
            "up {} bundle(s), down {} bundle(s) with {} change(s); {} B up, {} B down",
            r.pushed_bundles, r.received_bundles, r.applied_changes, r.bytes_up, r.bytes_down
        ),
    );
    for plan in &r.new_plans {
        out.line(0, format!("new plan {plan}"));
    }
    for plan in r.plans_updated.iter().filter(|p| !r.new_plans.contains(p)) {
        out.line(0, format!("updated plan {plan}"));
    }
    if r.envelopes_received + r.envelopes_sent > 0 {
        out.line(
            0,
            format!("keys: {} received, {} sealed for others", r.envelopes_received, r.envelopes_sent),
        );
    }
    for refused in &r.refused {
        out.line(0, format!("refused: {refused}"));
    }
    out.finish()
}

/// `http://` to anything but this machine (`localhost`, a 127.x.x.x address, `[::1]`).
fn is_plain_http_to_another_machine(server: &str) -> bool {
    let server = server.trim().to_ascii_lowercase();
    let Some(rest) = server.strip_prefix("http://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    !loopback
}

#[cfg(test)]
mod tests {
    use eenplan_core::PlanId;

    use super::*;

    #[test]
    fn plain_http_is_flagged_unless_it_stays_on_this_machine() {
        for remote in [
            "http://eenplan.example.nl",
            "HTTP://eenplan.example.nl:8443/",
            "http://10.0.0.5:8443",
            "http://127.0.0.1.evil.example",
            "http://127.0.0.1@evil.example",
            "http://[2001:db8::1]:8443",
        ] {
            assert!(is_plain_http_to_another_machine(remote), "{remote}");
        }
        for fine in [
            "https://eenplan.example.nl",
            "http://127.0.0.1:8443",
            "http://localhost:1",
            "http://[::1]:8443/",
        ] {
            assert!(!is_plain_http_to_another_machine(fine), "{fine}");
        }
    }

    #[test]
    fn a_watch_event_prints_as_one_line_that_says_what_came_down() {
        let plan = PlanId::from_bytes([0xab; 16]);
        let report = SyncReport { received_bundles: 2, plans_updated: vec![plan], ..Default::default() };
        assert_eq!(event_text(&WatchEvent::Synced(report)), format!("down 2 bundle(s): updated plan {plan}"));
        assert_eq!(event_text(&WatchEvent::Synced(SyncReport::default())), "up to date");
        let lost = event_text(&WatchEvent::Disconnected("the live socket closed".into()));
        assert_eq!(lost, "disconnected: the live socket closed; reconnecting");
    }
}
