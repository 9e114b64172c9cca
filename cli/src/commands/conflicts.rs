//! Listing and settling concurrent values.

use eenplan_core::plan::{PlanError, Resolution};
use eenplan_core::{CoreError, Device};

use super::find_plan;
use crate::args::{ConflictsArgs, ResolveArgs};
use crate::error::CliError;
use crate::output::{Output, conflicts_json, conflicts_text};

pub fn list(device: &mut Device, args: ConflictsArgs) -> Result<Output, CliError> {
    let plan = find_plan(device, &args.plan)?;
    let conflicts = device.conflicts(&plan)?;
    if args.output.json { conflicts_json(&conflicts) } else { Ok(Output::Text(conflicts_text(&conflicts))) }
}

pub fn resolve(device: &mut Device, args: ResolveArgs) -> Result<Output, CliError> {
    let plan = find_plan(device, &args.plan)?;
    let resolution = match (args.pick, args.value) {
        (Some(pick), _) => {
            // People count values from 1 (as `conflicts` prints them); the core from 0.
            let index = usize::try_from(pick)
                .ok()
                .and_then(|p| p.checked_sub(1))
                .ok_or_else(|| CliError::usage("--pick counts from 1"))?;
            Resolution::Pick(index)
        }
        (None, Some(value)) => Resolution::Value(value),
        (None, None) => return Err(CliError::usage("give --pick N or --value V")),
    };
    device.settle_conflict(&plan, &args.conflict, resolution).map_err(|e| match e {
        CoreError::Plan(PlanError::NoSuchConflictValue { conflict, index, count }) => {
            CliError::NoSuchPick { conflict, pick: index.saturating_add(1), count }
        }
        other => other.into(),
    })?;
    Ok(Output::Nothing)
}
