#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `console_bench`: revoking a phone from the administrator's console, from the click (the
//! form's POST) until the last rotation commits (the progress endpoint says `done`), for a
//! person on P plans; and the same revocation with `eenplan-admin device revoke` in the same
//! run, as the baseline.
//!
//! ```text
//! cargo build --workspace --release
//! target/release/console_bench            # 40 plans, 3 revocations each way
//! target/release/console_bench --quick    # 5 plans, 1 each way
//! ```
//!
//! Options: `--plans N`, `--reps N`. One server, one administrator; Wim (wijkteam) creates
//! the plans and makes Fatima a participant of each. Per repetition and way, Fatima gets a new
//! phone (enrolled with the CLI), which syncs until it holds the keys of every plan it may
//! read; then it is revoked, alternately through the console (a fresh `eenplan-admin console`
//! process, logged in, the revoke form posted as a browser would) and through the CLI
//! (process start to exit). Both run the same rekey loop over the same documents. The
//! console's time excludes its start and login (the administrator has the page open); the
//! progress endpoint is asked every 5 ms, so its figure is late by at most that.

use std::time::{Duration, Instant};

use eenplan_tests::bench::{Args, Table, median, ratio, secs, sync_fully};
use eenplan_tests::console::{Console, raw};
use eenplan_tests::network::Network;

const USERS: &[(&str, &str, &str)] =
    &[("Fatima", "Wijkteam Noord", "wijkteam"), ("Wim", "Wijkteam Noord", "wijkteam")];

fn main() {
    let args = Args::from_env("console_bench [--quick] [--plans N] [--reps N]");
    let quick = args.has("--quick");
    let plans = args.number("--plans", if quick { 5 } else { 40 });
    let reps = args.number("--reps", if quick { 1 } else { 3 });
    eprintln!("console_bench: {plans} plans, {reps} revocations each way");
    let net = Network::start(USERS);
    let mut wim = net.device("wim", "Wim");
    let mut ids = Vec::new();
    for i in 0..plans {
        let plan = wim.create_plan(&format!("Gezin {i}")).unwrap();
        ids.push(plan);
    }
    sync_fully(&mut wim);
    for plan in &ids {
        wim.add_participant(plan, "Fatima", "wijkteam").unwrap();
    }
    sync_fully(&mut wim);

    let (mut console_times, mut cli_times) = (Vec::new(), Vec::new());
    for rep in 0..reps {
        for way in ["console", "cli"] {
            let mut phone = net.device(&format!("fatima-{rep}-{way}"), "Fatima");
            // Until the phone holds a key for every plan (Wim answers its key requests).
            for _ in 0..20 {
                sync_fully(&mut phone);
                if ids.iter().all(|p| !phone.keyed_compartments(p).unwrap().is_empty()) {
                    break;
                }
                sync_fully(&mut wim);
            }
            assert!(
                ids.iter().all(|p| !phone.keyed_compartments(p).unwrap().is_empty()),
                "the phone never got every key"
            );
            let id = phone.device_id().to_string();
            let took = if way == "console" { console_revoke(&net, &id) } else { cli_revoke(&net, &id) };
            eprintln!("  {way} revocation {}: {}", rep + 1, secs(took));
            if way == "console" {
                console_times.push(took)
            } else {
                cli_times.push(took)
            }
            assert!(phone.sync().is_err(), "the revoked phone is refused");
        }
    }
    let (console, cli) = (median(&console_times), median(&cli_times));
    let mut table = Table::default();
    table.section(&format!("revoke one phone of a person on {plans} plans (median of {reps})"));
    table.row(
        "console: click → last rotation committed",
        secs(console),
        format!("CLI {}", secs(cli)),
        ratio(console.as_secs_f64(), cli.as_secs_f64()),
    );
    table.row("CLI: `eenplan-admin device revoke` (process)", secs(cli), "baseline", "1.00×");
    table.print();
}

fn console_revoke(net: &Network, device: &str) -> Duration {
    let console = Console::start(&net.admin);
    let port = console.port;
    let host = format!("127.0.0.1:{port}");
    let origin = format!("http://{host}");
    let login = raw(port, "GET", console.login.trim_start_matches(&console.base()), &[("Host", &host)], "");
    let cookie = login.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
    let form =
        raw(port, "GET", &format!("/devices/{device}/revoke"), &[("Host", &host), ("Cookie", &cookie)], "");
    let start = form.body.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = form.body[start..].split('"').next().unwrap().to_owned();
    let body = format!("csrf={csrf}&reason=lost");
    let headers = [
        ("Host", host.as_str()),
        ("Cookie", cookie.as_str()),
        ("Origin", origin.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let clicked = Instant::now();
    let posted = raw(port, "POST", &format!("/devices/{device}/revoke"), &headers, &body);
    let job = posted.header("location").unwrap().to_owned();
    loop {
        let progress =
            raw(port, "GET", &format!("{job}/progress"), &[("Host", &host), ("Cookie", &cookie)], "");
        let value: serde_json::Value = serde_json::from_str(&progress.body).unwrap();
        match value["state"].as_str() {
            Some("running") => std::thread::sleep(Duration::from_millis(5)),
            Some("done") => return clicked.elapsed(),
            _ => panic!("the revocation failed: {value}"),
        }
    }
}

fn cli_revoke(net: &Network, device: &str) -> Duration {
    let started = Instant::now();
    net.admin.run(&["device", "revoke", device, "--reason", "lost"]);
    started.elapsed()
}
