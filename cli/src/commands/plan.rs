//! Plans as a whole: create, list, show, phase, escalation, regisseur, the family's copy.

use std::path::Path;

use eenplan_core::plan::FamilyCopyItem;
use eenplan_core::sync::ShareOutcome;
use eenplan_core::{Device, PlanListEntry};

use super::{find_plan, open};
use crate::args::{PlanCommand, PlanPrintArgs};
use crate::error::CliError;
use crate::output::{Lines, Marks, Output, audience_text, plan_view_text_marked};

pub fn run(data: &Path, command: PlanCommand) -> Result<Output, CliError> {
    let mut device = open(data)?;
    match command {
        PlanCommand::Create(args) => {
            let id = device.create_plan_with_domains(&args.family, args.domains)?;
            Output::id(args.output.json, id)
        }
        PlanCommand::List(flag) => {
            Output::choose(flag.json, &device.list_plans()?, |entries| list_text(entries))
        }
        PlanCommand::Adopt(args) => super::cycle::adopt(&mut device, args),
        PlanCommand::Adopted(args) => super::cycle::adopted(&mut device, args),
        PlanCommand::MigrateOwners(args) => super::cycle::migrate_owners(&mut device, &args.plan),
        PlanCommand::Show(args) => {
            let id = find_plan(&device, &args.plan)?;
            let view = device.read(&id)?;
            if args.output.json {
                return Output::json(&view);
            }
            let marks = adoption_marks(&mut device, &id)?;
            Ok(Output::Text(plan_view_text_marked(&view, &marks)))
        }
        PlanCommand::Phase(args) => {
            let id = find_plan(&device, &args.plan)?;
            device.edit(&id, |p| p.set_phase(args.phase))?;
            Ok(Output::Nothing)
        }
        PlanCommand::Escalate(args) => {
            let id = find_plan(&device, &args.plan)?;
            device.escalate_case(
                &id,
                args.level,
                &args.reason,
                args.grondslag,
                args.regie.as_deref(),
                &args.add,
            )?;
            Ok(act_outcome(device.sync_membership()?))
        }
        PlanCommand::Deescalate(args) => {
            let id = find_plan(&device, &args.plan)?;
            device.deescalate_case(&id, args.level, &args.regie, &args.reason)?;
            Ok(act_outcome(device.sync_membership()?))
        }
        PlanCommand::Handover(args) => {
            let id = find_plan(&device, &args.plan)?;
            device.hand_over_regie(&id, &args.to)?;
            Ok(act_outcome(device.sync_membership()?))
        }
        PlanCommand::AcceptRegie(args) => {
            let id = find_plan(&device, &args.plan)?;
            device.accept_regie(&id)?;
            Ok(act_outcome(device.sync_membership()?))
        }
        PlanCommand::RemoveParticipant(args) => {
            let id = find_plan(&device, &args.plan)?;
            device.remove_participant(&id, &args.user)?;
            Ok(act_outcome(device.sync_membership()?))
        }
        PlanCommand::Close(args) => {
            let id = find_plan(&device, &args.plan)?;
            device.close_case(&id)?;
            Ok(match device.sync_membership()? {
                ShareOutcome::Done => Output::Text("plan afgesloten; de bewaartermijn loopt".into()),
                queued => act_outcome(queued),
            })
        }
        PlanCommand::AddParticipant(args) => {
            let id = find_plan(&device, &args.plan)?;
            device.add_participant(&id, &args.user, &args.role)?;
            Ok(Output::Nothing)
        }
        PlanCommand::Readers(args) => {
            let id = find_plan(&device, &args.plan)?;
            let audience = device.audience(&id, args.compartment)?;
            Output::choose(args.output.json, &audience, |a| audience_text(args.compartment, a))
        }
        PlanCommand::Print(args) => print(&mut device, args),
        PlanCommand::FamilyCopy(args) => {
            let id = find_plan(&device, &args.plan)?;
            let item = match (args.note, args.safety_item) {
                (Some((compartment, id)), _) => FamilyCopyItem::Note { compartment, id },
                (None, Some(id)) => FamilyCopyItem::SafetyItem { id },
                (None, None) => return Err(CliError::usage("name a --note or a --safety-item")),
            };
            device.include_in_family_copy(&id, item, !args.remove)?;
            Ok(Output::Nothing)
        }
    }
}

/// Writes the family's copy as HTML or PDF (clap lets exactly one through).
fn print(device: &mut Device, args: PlanPrintArgs) -> Result<Output, CliError> {
    let id = find_plan(device, &args.plan)?;
    let copy = device.family_copy(&id)?;
    let (path, bytes) = match (args.html, args.pdf) {
        (Some(path), _) => (path, copy.to_html()?.into_bytes()),
        (None, Some(path)) => (path, crate::pdf::family_copy(&copy)?),
        (None, None) => return Err(CliError::usage("name a file: --html FILE or --pdf FILE")),
    };
    std::fs::write(&path, bytes).map_err(CliError::io("cannot write", &path))?;
    Ok(Output::Nothing)
}

/// Done at the server, or waiting (durably) for the next sync.
fn act_outcome(outcome: ShareOutcome) -> Output {
    match outcome {
        ShareOutcome::Done => Output::Nothing,
        ShareOutcome::Queued => Output::Noted {
            text: String::new(),
            notice: "geen verbinding: de wijziging wacht op de volgende synchronisatie".into(),
        },
    }
}

fn list_text(entries: &[PlanListEntry]) -> String {
    if entries.is_empty() {
        return "no plans".into();
    }
    let mut out = Lines::default();
    for entry in entries {
        match entry {
            PlanListEntry::Ok(plan) => out.line(0, format!("{}  {}", plan.id, plan.family)),
            PlanListEntry::Damaged { detail } => out.line(0, format!("damaged  {detail}")),
        }
    }
    out.finish()
}

/// The newest verified adopted version and what changed since, to mark in the plan text.
fn adoption_marks(device: &mut eenplan_core::Device, plan: &eenplan_core::PlanId) -> Result<Marks, CliError> {
    let Some(adopted) = device.newest_adopted_plan(plan)? else { return Ok(Marks::default()) };
    Ok(Marks {
        adopted: Some((adopted.adoption.version, adopted.adoption.date.clone())),
        not_adopted: adopted.not_adopted.iter().filter_map(|n| n.id).collect(),
    })
}
