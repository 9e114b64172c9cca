//! What the benchmark binaries (`sync_bench`, `revoke_bench`, `phone_bench`, `regie_bench`)
//! share: the command line, running the measures asked for, scratch space, the machine's core
//! count, syncing until caught up and adding up sync reports, a byte-counting relay in front
//! of the server, medians and how figures print.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use eenplan_core::sync::{SyncError, SyncReport};
use eenplan_core::{CoreError, Device};
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

    /// The text after `flag`, if given.
    pub fn text(&self, flag: &str) -> Option<&str> {
        self.value(flag).map(String::as_str)
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

/// Syncs until the server has nothing more (a long pull may need more rounds than one
/// `sync()` allows); the reports of all calls, summed, and the number of calls.
pub fn sync_fully(device: &mut Device) -> (SyncReport, usize) {
    let mut total = SyncReport::default();
    for calls in 1..=64 {
        match device.sync() {
            Ok(report) => {
                add_report(&mut total, &report);
                return (total, calls);
            }
            Err(CoreError::Sync(SyncError::TooManyRounds(rounds))) => total.rounds += rounds,
            Err(e) => panic!("sync: {e}"),
        }
    }
    panic!("the device never caught up")
}

/// A TCP relay on loopback in front of the server that counts the bytes through it in each
/// direction: what the admin CLI sends and receives, HTTP headers included.
#[derive(Debug)]
pub struct Relay {
    pub url: String,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
}

impl Relay {
    pub fn start(upstream: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port for the relay");
        let url = format!("http://{}", listener.local_addr().expect("the relay's address"));
        let up = Arc::new(AtomicU64::new(0));
        let down = Arc::new(AtomicU64::new(0));
        let (u, d) = (Arc::clone(&up), Arc::clone(&down));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else { continue };
                pipe(client, server, Arc::clone(&u));
                pipe(server2, client2, Arc::clone(&d));
            }
        });
        Relay { url, up, down }
    }

    /// (bytes up, bytes down) so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.up.load(Ordering::SeqCst), self.down.load(Ordering::SeqCst))
    }
}

/// Copies `from` to `to` on a thread of its own, counting each chunk before it is passed on
/// (so a count read after the peer saw the bytes includes them).
fn pipe(mut from: TcpStream, mut to: TcpStream, counter: Arc<AtomicU64>) {
    std::thread::spawn(move || {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    counter.fetch_add(n as u64, Ordering::SeqCst);
                    if to.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// The `p`th percentile of `values` (nearest rank; zero for none).
pub fn percentile(values: &[Duration], p: usize) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_percentile_is_the_nearest_rank_of_the_times_measured() {
        let times: Vec<Duration> = (1..=200).rev().map(Duration::from_millis).collect();
        assert_eq!(percentile(&times, 50), Duration::from_millis(100));
        assert_eq!(percentile(&times, 99), Duration::from_millis(198));
        assert_eq!(percentile(&times[..1], 99), Duration::from_millis(200), "one time is every percentile");
        assert_eq!(percentile(&[], 50), Duration::ZERO, "none measured");
    }
}
