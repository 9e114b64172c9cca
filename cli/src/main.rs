//! `eenplan`: the desktop device client. A thin host over [`eenplan_core::Device`]: it parses
//! the command line, calls the core and prints the result; the plan rules live in the core.

mod args;
mod commands;
mod error;
mod output;
mod passphrase;
mod pdf;

use std::io::ErrorKind;
use std::process::ExitCode;

use clap::Parser;

use crate::error::EXIT_FAILURE;

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        // clap prints usage errors itself (exit code 2) and help and version (exit code 0).
        Err(e) => e.exit(),
    };
    let output = match commands::run(cli) {
        Ok(output) => output,
        Err(e) => {
            eprintln!("error: {e}");
            if matches!(e, error::CliError::Core(eenplan_core::CoreError::LeaseExpired { .. })) {
                eprintln!("hint: `eenplan sync` renews the lease and unlocks the plans");
            }
            return ExitCode::from(e.exit_code());
        }
    };
    if let Some(notice) = output.notice() {
        eprintln!("{notice}");
    }
    match output.write_to(&mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader stopped early (`eenplan plan show X | head`): it got what it wanted, and
        // the command itself had already succeeded.
        Err(e) if e.kind() == ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write output: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
