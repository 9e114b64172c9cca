//! Adding and changing the entities inside a plan. Each command is one `Device::edit`, so it
//! is durable, or refused whole, before anything is printed.

use eenplan_core::Device;
use eenplan_core::plan::{
    ActionUpdate, Compartment, NewAction, NewGoal, NewMember, NewParticipant, NoteKind,
};

use super::find_plan;
use crate::args::{
    ActionCommand, AgreementCommand, GoalCommand, MemberCommand, MemberEraseArgs, NoteCommand, NoteCopyArgs,
    ParticipantCommand, SafetyCommand, ScoreCommand,
};
use crate::error::CliError;
use crate::output::{Output, audience_text};

pub fn member(device: &mut Device, command: MemberCommand) -> Result<Output, CliError> {
    let args = match command {
        MemberCommand::Add(args) => args,
        MemberCommand::Erase(args) => return erase_member(device, args),
    };
    let plan = find_plan(device, &args.plan)?;
    let member = NewMember {
        name: args.name,
        relation: args.relation,
        birth_date: args.birth_date,
        parental_authority: args.gezag,
    };
    let id = device.edit(&plan, |p| p.add_member(member))?;
    Output::id(args.output.json, id)
}

pub fn participant(device: &mut Device, command: ParticipantCommand) -> Result<Output, CliError> {
    let args = match command {
        ParticipantCommand::Add(args) => args,
        ParticipantCommand::Contact(args) => {
            let plan = find_plan(device, &args.plan)?;
            device.set_own_contact(&plan, args.phone.as_deref(), args.email.as_deref())?;
            return Ok(Output::Nothing);
        }
    };
    let plan = find_plan(device, &args.plan)?;
    let participant = NewParticipant { name: args.name, organisation: args.org, role: args.role };
    let id = device.edit(&plan, |p| p.add_participant(participant))?;
    Output::id(args.output.json, id)
}

pub fn goal(device: &mut Device, command: GoalCommand) -> Result<Output, CliError> {
    match command {
        GoalCommand::Add(args) => {
            let plan = find_plan(device, &args.plan)?;
            let goal = NewGoal { domain: args.domain, title: args.title };
            let id = device.edit(&plan, |p| p.add_goal(goal))?;
            Output::id(args.output.json, id)
        }
        GoalCommand::Set(args) => {
            let plan = find_plan(device, &args.plan)?;
            // One edit for both fields: if the title is refused, the status is not kept either.
            device.edit(&plan, |p| {
                if let Some(status) = args.status {
                    p.set_goal_status(args.goal, status)?;
                }
                if let Some(title) = &args.title {
                    p.set_goal_title(args.goal, title)?;
                }
                Ok(())
            })?;
            Ok(Output::Nothing)
        }
    }
}

pub fn score(device: &mut Device, command: ScoreCommand) -> Result<Output, CliError> {
    let ScoreCommand::Set(args) = command;
    let plan = find_plan(device, &args.plan)?;
    device.edit(&plan, |p| p.set_score(args.member, &args.domain, &args.date, args.score))?;
    Ok(Output::Nothing)
}

pub fn action(device: &mut Device, command: ActionCommand) -> Result<Output, CliError> {
    match command {
        ActionCommand::Add(args) => {
            let plan = find_plan(device, &args.plan)?;
            let action = NewAction {
                goal: args.goal,
                title: args.title,
                owner_org: args.owner,
                owner_user: None,
                due: args.due,
            };
            let id = device.add_action_for(&plan, action, args.owner_person.as_deref())?;
            Output::id(args.output.json, id)
        }
        ActionCommand::Set(args) => {
            let plan = find_plan(device, &args.plan)?;
            let due = if args.no_due { Some(None) } else { args.due.map(Some) };
            let update =
                ActionUpdate { title: args.title, status: args.status, due, ..ActionUpdate::default() };
            if let Some(owner) = &args.owner_person {
                device.set_action_owner(&plan, args.action, owner)?;
            }
            if update != ActionUpdate::default() {
                device.edit(&plan, |p| p.update_action(args.action, update))?;
            }
            Ok(Output::Nothing)
        }
    }
}

pub fn agreement(device: &mut Device, command: AgreementCommand) -> Result<Output, CliError> {
    let AgreementCommand::Add(args) = command;
    let plan = find_plan(device, &args.plan)?;
    let id = device.edit(&plan, |p| p.add_agreement(&args.text))?;
    Output::id(args.output.json, id)
}

pub fn note(device: &mut Device, command: NoteCommand) -> Result<Output, CliError> {
    let args = match command {
        NoteCommand::Add(args) => args,
        NoteCommand::Copy(args) => return copy_note(device, args),
    };
    let plan = find_plan(device, &args.plan)?;
    let default = device.default_note_compartment()?;
    let compartment = args.compartment.unwrap_or(default);
    // What a worker writes by default is what they saw on a home visit; a note sent elsewhere
    // on purpose is a specialist note.
    let kind = args.kind.unwrap_or(if compartment == default || compartment == Compartment::Basis {
        NoteKind::HomeVisit
    } else {
        NoteKind::Note
    });
    let id = device.edit(&plan, |p| p.add_note(compartment, kind, &args.text))?;
    let audience = device.audience(&plan, compartment)?;
    if args.output.json {
        return Output::json(&serde_json::json!({
            "id": id.to_string(),
            "compartment": compartment,
            "audience": audience,
        }));
    }
    Ok(Output::Noted { text: id.to_string(), notice: audience_text(compartment, &audience) })
}

fn copy_note(device: &mut Device, args: NoteCopyArgs) -> Result<Output, CliError> {
    let plan = find_plan(device, &args.plan)?;
    let id = device.edit(&plan, |p| p.copy_note(args.from, args.note, args.to))?;
    let audience = device.audience(&plan, args.to)?;
    if args.output.json {
        return Output::json(
            &serde_json::json!({ "id": id.to_string(), "compartment": args.to, "audience": audience }),
        );
    }
    Ok(Output::Noted { text: id.to_string(), notice: audience_text(args.to, &audience) })
}

pub fn safety(device: &mut Device, command: SafetyCommand) -> Result<Output, CliError> {
    let SafetyCommand::Add(args) = command;
    let plan = find_plan(device, &args.plan)?;
    let id = device.edit(&plan, |p| p.add_safety_item(&args.danger, &args.goal))?;
    Output::id(args.output.json, id)
}

/// Queues the erasure and syncs at once; offline (or while the plan's basis is not complete
/// here) it waits for the next sync.
fn erase_member(device: &mut Device, args: MemberEraseArgs) -> Result<Output, CliError> {
    let plan = find_plan(device, &args.plan)?;
    let member = args
        .member
        .parse()
        .map_err(|_| CliError::Usage(format!("{:?} is geen id van een gezinslid", args.member)))?;
    let erased = device.erase_member(&plan, member)?;
    let done = device.sync_membership()? == eenplan_core::sync::ShareOutcome::Done;
    if args.output.json {
        return Output::json(&serde_json::json!({ "erased": erased, "done": done }));
    }
    let text = format!(
        "gezinslid gewist uit het plan: {} ZRM-score(s) verwijderd; de geschiedenis van het basisdeel is vervangen",
        erased.scores
    );
    Ok(if done {
        Output::Text(text)
    } else {
        Output::Noted {
            text: String::new(),
            notice: "het wissen staat klaar en gebeurt bij de volgende synchronisatie".into(),
        }
    })
}
