//! What others changed since the last review, and marking it reviewed.

use eenplan_core::Device;

use super::find_plan;
use crate::args::ReviewArgs;
use crate::error::CliError;
use crate::output::{Output, review_text};

pub fn review(device: &mut Device, args: ReviewArgs) -> Result<Output, CliError> {
    let plan = find_plan(device, &args.plan)?;
    let review = device.review(&plan)?;
    if args.mark {
        // What is marked is exactly what is printed here (nothing can sync in between: the
        // CLI holds the device), so a change is never marked unseen.
        device.mark_reviewed_through(&plan, &review.through)?;
    }
    Output::choose(args.output.json, &review, review_text)
}
