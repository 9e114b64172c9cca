#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `cycle_bench`: the working cycle's reads, release build.
//!
//! ```text
//! cargo build --workspace --release --bins
//! target/release/cycle_bench            # full
//! target/release/cycle_bench --quick    # fewer repetitions
//! ```

#[path = "cycle_bench/agenda.rs"]
mod agenda;

use eenplan_tests::bench::{Args, Table, run};

struct Config {
    reps: usize,
    plans: usize,
}

fn agenda_measure(cfg: &Config, table: &mut Table) {
    agenda::measure(cfg.reps, cfg.plans, table);
}

fn main() {
    let args = Args::from_env("cycle_bench [--quick] [--only b] [--reps N] [--plans N]");
    let quick = args.has("--quick");
    let cfg =
        Config { reps: args.number("--reps", if quick { 3 } else { 11 }), plans: args.number("--plans", 40) };
    run("cycle_bench", quick, &cfg, &args.only(&['b']), &[('b', agenda_measure)], "");
}
