//! Enrolment and sync: thin calls into the core's sync client.

use eenplan_core::Device;
use eenplan_core::sync::SyncReport;

use crate::args::EnrolArgs;
use crate::error::CliError;
use crate::output::{Lines, Output};

pub fn enrol(device: &mut Device, args: EnrolArgs) -> Result<Output, CliError> {
    device.enrol(&args.server, &args.code)?;
    Ok(Output::Text(format!(
        "enrolled device {} at {}; an administrator must approve it, then run sync",
        device.device_id(),
        args.server
    )))
}

pub fn sync(device: &mut Device, json: bool) -> Result<Output, CliError> {
    let report = device.sync()?;
    Output::choose(json, &report, report_text)
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
