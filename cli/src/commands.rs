//! Runs a parsed command line against the device. Each command opens the device, calls the
//! core and turns the result into an [`Output`]; the plan rules all live in the core.

mod conflicts;
mod cycle;
mod device;
mod entities;
mod plan;
mod review;
mod sync;
mod transfer;

use std::path::Path;

use eenplan_core::keystore::KeyStore;
use eenplan_core::{CoreError, Device, PlanId};

use crate::args::{Cli, Command, PassphraseCommand};
use crate::error::CliError;
use crate::output::Output;
use crate::passphrase;

pub fn run(cli: Cli) -> Result<Output, CliError> {
    let data = cli
        .data
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| CliError::usage("no data directory: pass --data DIR or set EENPLAN_DATA"))?;
    match cli.command {
        Command::Init => device::init(&data),
        Command::Passphrase(PassphraseCommand::Change) => device::change_passphrase(&data),
        Command::Status(flag) => device::status(&open(&data)?, flag.json),
        Command::Plan(command) => plan::run(&data, command),
        Command::Member(command) => entities::member(&mut open(&data)?, command),
        Command::Participant(command) => entities::participant(&mut open(&data)?, command),
        Command::Goal(command) => entities::goal(&mut open(&data)?, command),
        Command::Score(command) => entities::score(&mut open(&data)?, command),
        Command::Action(command) => entities::action(&mut open(&data)?, command),
        Command::Agreement(command) => entities::agreement(&mut open(&data)?, command),
        Command::Note(command) => entities::note(&mut open(&data)?, command),
        Command::Safety(command) => entities::safety(&mut open(&data)?, command),
        Command::Conflicts(args) => conflicts::list(&mut open(&data)?, args),
        Command::Resolve(args) => conflicts::resolve(&mut open(&data)?, args),
        Command::Review(args) => review::review(&mut open(&data)?, args),
        Command::Export(args) => transfer::export(&mut open(&data)?, args),
        Command::Import(args) => transfer::import(&mut open(&data)?, args),
        Command::Enrol(args) => sync::enrol(&mut open(&data)?, args),
        Command::Rename(args) => sync::rename(&mut open(&data)?, args),
        Command::Sync(args) => sync::sync(&mut open(&data)?, args),
        Command::Agenda(flag) => cycle::agenda(&mut open(&data)?, flag.json),
        Command::Evaluation(command) => cycle::evaluation(&mut open(&data)?, command),
        Command::Scores(args) => cycle::scores(&mut open(&data)?, args),
        Command::Meeting(command) => cycle::meeting(&mut open(&data)?, command),
    }
}

/// Opens the device, asking for the passphrase only when there is a device to unlock.
fn open(data: &Path) -> Result<Device, CliError> {
    refuse_missing_or_wiped(data)?;
    let keystore = passphrase::keystore(passphrase::existing(passphrase::DEVICE)?)?;
    unlock(data, &keystore)
}

/// Checked before a passphrase is asked for: there must be a device, and not a wiped one.
fn refuse_missing_or_wiped(data: &Path) -> Result<(), CliError> {
    if Device::is_wiped(data) {
        // The wipe is reported to the server when it can be; a failure here (offline) is
        // retried by the next command.
        let _ = Device::send_wipe_report(data);
        return Err(CliError::Wiped(data.to_path_buf()));
    }
    if !Device::exists(data) {
        return Err(CoreError::NotInitialised.into());
    }
    Ok(())
}

/// Unlocks the device; a wrong passphrase is counted (the error says how many attempts are
/// left), and the one that reaches `EENPLAN_MAX_FAILED_UNLOCKS` wipes the device.
fn unlock(data: &Path, keystore: &dyn KeyStore) -> Result<Device, CliError> {
    match Device::open_with(data, keystore, &passphrase::open_options()?) {
        Ok(device) => Ok(device),
        Err(CoreError::Wiped) => {
            let _ = Device::send_wipe_report(data);
            Err(CliError::Wiped(data.to_path_buf()))
        }
        Err(e) => Err(e.into()),
    }
}

/// A plan named by its full id or a unique prefix of at least four characters.
fn find_plan(device: &Device, text: &str) -> Result<PlanId, CliError> {
    Ok(device.find_plan(text)?)
}
