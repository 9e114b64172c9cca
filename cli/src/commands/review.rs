//! What others changed since the last review, and marking it reviewed.

use eenplan_core::Device;

use super::find_plan;
use crate::args::ReviewArgs;
use crate::error::CliError;
use crate::output::{Output, review_text};

pub fn review(device: &mut Device, args: ReviewArgs) -> Result<Output, CliError> {
    let plan = find_plan(device, &args.plan)?;
    if args.mark {
        device.mark_reviewed(&plan)?;
        return Ok(Output::Nothing);
    }
    let review = device.review(&plan)?;
    Output::choose(args.output.json, &review, review_text)
}
