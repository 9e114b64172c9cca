//! What the benchmark binaries (`sync_bench`, `revoke_bench`, `phone_bench`) share: the
//! command line, running the measures asked for, scratch space, the machine's core count,
//! adding up sync reports, medians and how figures print.

use std::path::Path;
use std::time::{Duration, Instant};

use eenplan_core::sync::SyncReport;
use eenplan_protocol::policy::{COMPARTMENTS, DEFAULT_POLICY_TOML};

/// The command line every benchmark takes: `--quick`, `--only a,b`, numbers as `--NAME N`,
/// and `--help` (prints `usage` and exits).
#[derive(Debug)]
pub struct Args(Vec<String>);

impl Args {
    pub fn from_env(usage: &str) -> Args {
        let args = Args(std::env::args().skip(1).collect());
        if args.has("--help") || args.has("-h") {
            println!("usage: {usage}");
            std::process::exit(0);
        }
        args
    }

    pub fn has(&self, flag: &str) -> bool {
        self.0.iter().any(|a| a == flag)
    }

    fn value(&self, flag: &str) -> Option<&String> {
        self.0.iter().position(|a| a == flag).and_then(|i| self.0.get(i + 1))
    }

    pub fn number(&self, flag: &str, default: usize) -> usize {
        self.value(flag).map_or(default, |v| {
            v.parse().unwrap_or_else(|_| {
                eprintln!("{flag} takes a number, not {v:?}");
                std::process::exit(2)
            })
        })
    }

    /// The measures `--only` names, or `all`.
    pub fn only(&self, all: &[char]) -> Vec<char> {
        self.value("--only")
            .map_or_else(|| all.to_vec(), |v| v.chars().filter(char::is_ascii_alphabetic).collect())
    }
}

/// A measure by its letter: it adds its rows to the table.
pub type Measure<C> = (char, fn(&C, &mut Table));

/// Runs the measures `only` names into one table and prints it under the run's title line,
/// then `footer`.
pub fn run<C>(bench: &str, quick: bool, cfg: &C, only: &[char], measures: &[Measure<C>], footer: &str) {
    let started = Instant::now();
    let mut table = Table::default();
    for (measure, run) in measures {
        if only.contains(measure) {
            run(cfg, &mut table);
        }
    }
    println!();
    println!(
        "{bench} {} — {} cores, {} in all",
        if quick { "--quick" } else { "(full)" },
        cores(),
        secs(started.elapsed())
    );
    table.print();
    println!("{footer}");
}

/// A scratch directory under `target/tmp` when there is one (the disk the build uses), named
/// after the benchmark and the measure.
pub fn scratch(bench: &str, label: &str) -> tempfile::TempDir {
    let exe = std::env::current_exe().expect("the path of this program");
    let base = exe
        .parent()
        .and_then(Path::parent)
        .map(|target| target.join("tmp"))
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    tempfile::Builder::new().prefix(&format!("{bench}-{label}-")).tempdir_in(base).expect("a scratch dir")
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Adds one sync's figures to a running total.
pub fn add_report(total: &mut SyncReport, report: &SyncReport) {
    total.rounds += report.rounds;
    total.pushed_bundles += report.pushed_bundles;
    total.received_bundles += report.received_bundles;
    total.applied_changes += report.applied_changes;
    total.envelopes_received += report.envelopes_received;
    total.envelopes_sent += report.envelopes_sent;
    total.refused.extend(report.refused.iter().cloned());
    total.bytes_up += report.bytes_up;
    total.bytes_down += report.bytes_down;
}

/// The median (the upper one of an even count); the machines are noisy, means mislead.
pub fn median<T: Copy + PartialOrd>(values: &[T]) -> T {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
    sorted[sorted.len() / 2]
}

pub fn bytes(n: f64) -> String {
    match n {
        n if n >= 1e6 => format!("{:.2} MB", n / 1e6),
        n if n >= 1e4 => format!("{:.1} kB", n / 1e3),
        n => format!("{n:.0} B"),
    }
}

pub fn secs(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    } else if d < Duration::from_secs(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// The shipped policy as version 2, with `role` reading and writing all four compartments:
/// what a benchmark over every compartment needs (no default role reads them all).
pub fn policy_where_reading_all(role: &str) -> String {
    let mut out = Vec::new();
    let mut in_role = false;
    let all = format!("[{}]", COMPARTMENTS.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", "));
    let (mut version, mut read, mut write) = (false, false, false);
    for line in DEFAULT_POLICY_TOML.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_role = trimmed == format!("[roles.{role}]");
        }
        if trimmed.starts_with("version") && trimmed.contains('=') {
            out.push("version = 2".to_owned());
            version = true;
        } else if in_role && trimmed.starts_with("read") {
            out.push(format!("read = {all}"));
            read = true;
        } else if in_role && trimmed.starts_with("write") {
            out.push(format!("write = {all}"));
            write = true;
        } else {
            out.push(line.to_owned());
        }
    }
    assert!(
        version && read && write,
        "the shipped policy has no version line or no [roles.{role}] read/write"
    );
    out.join("\n") + "\n"
}

/// One row of a [`Table`].
#[derive(Debug)]
struct Row {
    measure: String,
    value: String,
    reference: String,
    ratio: String,
}

/// The benchmarks' table: sections of rows of measure, value, ratio, and what the value is
/// compared with (a target, a baseline, or an outcome); padded to line up in a terminal.
#[derive(Debug, Default)]
pub struct Table {
    sections: Vec<(String, Vec<Row>)>,
}

impl Table {
    pub fn section(&mut self, title: &str) {
        self.sections.push((title.to_owned(), Vec::new()));
    }

    /// A row of the newest section (a section is opened first).
    pub fn row(
        &mut self,
        measure: impl Into<String>,
        value: impl Into<String>,
        reference: impl Into<String>,
        ratio: impl Into<String>,
    ) {
        let row = Row {
            measure: measure.into(),
            value: value.into(),
            reference: reference.into(),
            ratio: ratio.into(),
        };
        if self.sections.is_empty() {
            self.section("");
        }
        if let Some((_, rows)) = self.sections.last_mut() {
            rows.push(row);
        }
    }

    pub fn print(&self) {
        let rows = self.sections.iter().flat_map(|(_, rows)| rows);
        let width =
            |f: fn(&Row) -> usize, header: &str| rows.clone().map(f).max().unwrap_or(0).max(header.len());
        let w = [
            width(|r| r.measure.chars().count(), "measure"),
            width(|r| r.value.chars().count(), "value"),
            width(|r| r.ratio.chars().count(), "ratio"),
        ];
        let line = |a: &str, b: &str, c: &str, d: &str| {
            println!("{a:<0$} | {b:>1$} | {c:>2$} | {d}", w[0], w[1], w[2]);
        };
        let rule = format!(
            "{}-+-{}-+-{}-+-{}",
            "-".repeat(w[0]),
            "-".repeat(w[1]),
            "-".repeat(w[2]),
            "-".repeat(20)
        );
        line("measure", "value", "ratio", "target / baseline / outcome");
        for (title, rows) in &self.sections {
            println!("{rule}");
            println!("{title}");
            for r in rows {
                line(&r.measure, &r.value, &r.ratio, &r.reference);
            }
        }
    }
}

/// `value / reference` as a ratio for a table.
pub fn ratio(value: f64, reference: f64) -> String {
    if reference > 0.0 { format!("{:.2}×", value / reference) } else { "—".into() }
}
