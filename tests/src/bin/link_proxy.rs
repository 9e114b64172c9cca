//! `link_proxy`: the shaping TCP proxy as a child process, for the Python and Kotlin stories.
//!
//! ```text
//! link_proxy --upstream 127.0.0.1:8443 [--listen 127.0.0.1:0]
//! ```
//!
//! It prints `listening on ADDRESS` on stdout, then reads one command per line on stdin and
//! answers each with one line once it is in effect: `ok`, `ok up=… down=… accepted=… open=…
//! unanswered=…` for `stats`, or `error …`. The commands (`latency 200`, `rate 256kbit`,
//! `cut`, `restore`, `reset`, `accept`, `refuse`, `drop`, `unanswered`, `stats`) are listed
//! in `eenplan_tests::link::Command`. At the end of stdin it closes every connection and
//! exits.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use eenplan_tests::link::{Command, Link};

#[derive(Debug, Parser)]
#[command(about = "A shaping TCP proxy on loopback, controlled on stdin")]
struct Args {
    /// Where every connection is forwarded (host:port).
    #[arg(long)]
    upstream: String,
    /// Where to listen; port 0 takes a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let link = match Link::start_on(args.listen, args.upstream.as_str()) {
        Ok(link) => link,
        Err(e) => {
            eprintln!("link_proxy: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    if writeln!(out, "listening on {}", link.address()).and_then(|()| out.flush()).is_err() {
        return ExitCode::FAILURE;
    }
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let answer = match line.parse::<Command>() {
            Ok(command) => match link.apply(command) {
                Ok(answer) => answer.to_string(),
                Err(e) => format!("error {e}"),
            },
            Err(e) => format!("error {e}"),
        };
        if writeln!(out, "{answer}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    drop(link);
    ExitCode::SUCCESS
}
