//! `eenplan-admin`: the administrator's CLI. It holds the keys that make a network (the root,
//! the escrow key, the administrator's own key) in a passphrase-sealed keyring, and uses them to
//! run the server's administrator API: organisations, users, enrolment codes, device
//! certificates, plan participants, revocation, the sharing policy, and the key rotations
//! these cause. The server never sees a private key, nor a key that opens a plan.

mod args;
mod audit;
mod client;
mod commands;
mod console;
mod enrolment;
mod error;
mod keyring;
mod offboard;
mod output;
mod passphrase;
mod policy_file;
mod rekey;
mod resolve;
mod revocations;

use std::io::{ErrorKind, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::error::{AdminError, EXIT_FAILURE};
use crate::output::Output;

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        // clap prints usage errors itself (exit code 2) and help and version (exit code 0).
        Err(e) => e.exit(),
    };
    match commands::run(cli) {
        Ok(output) => write(&output),
        Err(AdminError::Partial { done, error }) => {
            // What succeeded is printed before the failure, so the administrator knows
            // which part needs doing again.
            let _ = write(&done);
            fail(&error)
        }
        Err(e) => fail(&e),
    }
}

fn fail(error: &AdminError) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(error.exit_code())
}

fn write(output: &Output) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match output.write_to(&mut stdout).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader stopped early (`... | head`): the command itself had already succeeded.
        Err(e) if e.kind() == ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write output: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
