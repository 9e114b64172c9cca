//! The working cycle: adopting the plan, evaluations, the ZRM trend, case meetings and the
//! agenda.

use eenplan_core::cycle::{DecisionActionInput, DecisionInput, goal_named};
use eenplan_core::{Device, PlanId};

use super::find_plan;
use crate::args::{
    EvaluationCommand, MeetingAddArgs, MeetingCommand, PlanAdoptArgs, PlanAdoptedArgs, ScoresArgs,
};
use crate::error::CliError;
use crate::output::{Output, adopted_text, agenda_text, migration_text, trend_text};

pub fn adopt(device: &mut Device, args: PlanAdoptArgs) -> Result<Output, CliError> {
    let plan = find_plan(device, &args.plan)?;
    let version = device.adopt(&plan, &args.with_family, &args.present)?;
    if args.output.json {
        return Output::json(&serde_json::json!({ "version": version }));
    }
    Ok(Output::Text(format!("Vastgesteld als versie {version}.")))
}

pub fn adopted(device: &mut Device, args: PlanAdoptedArgs) -> Result<Output, CliError> {
    let plan = find_plan(device, &args.plan)?;
    let adopted = device.adopted_plan(&plan, args.version)?;
    Output::choose(args.output.json, &adopted, adopted_text)
}

pub fn migrate_owners(device: &mut Device, plan: &str) -> Result<Output, CliError> {
    let plan = find_plan(device, plan)?;
    Ok(Output::Text(migration_text(&device.migrate_action_owners(&plan)?)))
}

pub fn agenda(device: &mut Device, json: bool) -> Result<Output, CliError> {
    Output::choose(json, &device.agenda()?, agenda_text)
}

pub fn evaluation(device: &mut Device, command: EvaluationCommand) -> Result<Output, CliError> {
    match command {
        EvaluationCommand::Add(args) => {
            let plan = find_plan(device, &args.plan)?;
            let id = device.edit(&plan, |p| p.add_evaluation(&args.date))?;
            Output::id(args.output.json, id)
        }
        EvaluationCommand::Held(args) => {
            let plan = find_plan(device, &args.plan)?;
            device.evaluation_held(&plan, args.evaluation)?;
            Ok(Output::Nothing)
        }
    }
}

pub fn scores(device: &mut Device, args: ScoresArgs) -> Result<Output, CliError> {
    let plan = find_plan(device, &args.plan)?;
    let trend = device.scores(&plan, &args.member)?;
    Output::choose(args.output.json, &trend, |t| trend_text(t))
}

pub fn meeting(device: &mut Device, command: MeetingCommand) -> Result<Output, CliError> {
    match command {
        MeetingCommand::Add(args) => {
            let plan = find_plan(device, &args.plan)?;
            let decisions = decisions(device, &plan, &args)?;
            let id = device.record_meeting(&plan, &args.date, &args.attendee, decisions)?;
            Output::id(args.output.json, id)
        }
    }
}

/// "TEXT" or "TEXT | OWNER | DUE | GOAL".
fn decisions(
    device: &mut Device,
    plan: &PlanId,
    args: &MeetingAddArgs,
) -> Result<Vec<DecisionInput>, CliError> {
    let view = device.read(plan)?;
    let mut out = Vec::new();
    for raw in &args.decision {
        let parts: Vec<&str> = raw.split('|').map(str::trim).collect();
        let decision = match parts.as_slice() {
            [text] => DecisionInput { text: (*text).to_owned(), action: None },
            [text, owner, due, goal] => DecisionInput {
                text: (*text).to_owned(),
                action: Some(DecisionActionInput {
                    owner: (*owner).to_owned(),
                    due: (!due.is_empty()).then(|| (*due).to_owned()),
                    goal: goal_named(&view, goal)?,
                }),
            },
            _ => {
                return Err(CliError::usage(format!(
                    "--decision {raw:?}: give TEXT, or TEXT | OWNER | DUE | GOAL"
                )));
            }
        };
        out.push(decision);
    }
    Ok(out)
}
