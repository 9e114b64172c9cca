//! Child process for the kill test: edits one plan in a loop and prints `ack N` after edit N
//! has returned from the core, i.e. after the core acknowledged it as durable.
//!
//! Usage: `edit_loop DATA_DIR PLAN_ID FIRST_EDIT`

use std::io::Write;
use std::process::ExitCode;

use eenplan_core::plan::{ActionStatus, ActionUpdate, Compartment, GoalStatus, NewAction, NewGoal, NoteKind};
use eenplan_core::{Device, PlanId};
use eenplan_tests::{edit_marker, test_keystore};

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, plan, first] = args.as_slice() else {
        return Err("usage: edit_loop DATA_DIR PLAN_ID FIRST_EDIT".into());
    };
    let plan: PlanId = plan.parse().map_err(|e| format!("{e}"))?;
    let first: u64 = first.parse().map_err(|e| format!("{e}"))?;
    let mut device = Device::open(dir.as_ref(), &test_keystore()).map_err(|e| e.to_string())?;
    let goal = device
        .edit(&plan, |p| p.add_goal(NewGoal { domain: "huisvesting".into(), title: "Woning".into() }))
        .map_err(|e| e.to_string())?;
    let action = device
        .edit(&plan, |p| {
            p.add_action(NewAction {
                goal,
                title: "Huurachterstand".into(),
                owner_org: "Wijkteam".into(),
                owner_user: None,
                due: None,
            })
        })
        .map_err(|e| e.to_string())?;
    let stdout = std::io::stdout();
    for i in first.. {
        // Alternate edit kinds so kills land in notes, registers and compactions alike; every
        // edit also leaves a marker note whose presence the parent checks.
        let marker = edit_marker(i);
        device
            .edit(&plan, |p| {
                match i % 3 {
                    0 => p.set_goal_status(goal, GoalStatus::ALL[(i % 5) as usize])?,
                    1 => p.update_action(
                        action,
                        ActionUpdate {
                            status: Some(ActionStatus::ALL[(i % 4) as usize]),
                            ..Default::default()
                        },
                    )?,
                    _ => {}
                }
                p.add_note(Compartment::Basis, NoteKind::HomeVisit, &marker)?;
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        let mut out = stdout.lock();
        writeln!(out, "ack {i}").and_then(|_| out.flush()).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edit_loop: {e}");
            ExitCode::FAILURE
        }
    }
}
