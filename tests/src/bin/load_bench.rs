#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `load_bench`: what the server costs (issue 13, item 6), measured from the server process,
//! against automerge-repo's sync server under the same workload in the same run.
//!
//! ```text
//! cargo build --workspace --release
//! target/release/load_bench            # full: 50 devices × 100 pushes, 4 readers, 3 runs; ≈ 2.5 min on 2 cores
//! target/release/load_bench --quick    # 8 devices × 20 pushes, 2 readers, 2 runs; ≈ 40 s
//! ```
//!
//! The full run took 2 min 6 s on 2 cores (setup on PostgreSQL 40 s). Its figures
//! (2026-12-07, at `2a182cc`, the syncs' sessions also read in groups on PostgreSQL),
//! medians of 3, in a slow hour of this VM (automerge-repo, unchanged, cost 1.544 ms):
//!
//! ```text
//! server CPU per accepted push     SQLite 0.250 ms | PostgreSQL 0.282 ms, incl. PostgreSQL 0.608 ms | automerge-repo 1.544 ms
//! pushes per server-CPU-second     SQLite 4000     | PostgreSQL 3546, incl. PostgreSQL 1645          | automerge-repo 648
//! server CPU per delivered bundle  SQLite 3.0 µs   | PostgreSQL 2.5 µs, incl. PostgreSQL 6.5 µs      |
//! server CPU per idle sync (200 documents held)  SQLite 0.35 ms | PostgreSQL 0.45 ms, incl. PostgreSQL 1.00 ms
//! RSS per idle live socket         SQLite 5.1 KiB  | PostgreSQL 3.7 KiB                              | automerge-repo 13.9 KiB
//! ```
//!
//! The same hour's alternated runs of the push phase on PostgreSQL (ARCHITECTURE, "sessions
//! in groups") ranged 0.394–0.688 ms per push incl. PostgreSQL for this build: one full
//! run is one draw. The full run before, at `3a86986` in a quiet hour (the answers' first
//! statements read in groups): SQLite 0.178 ms per push (5,618 per CPU-second),
//! PostgreSQL 0.192 ms alone (5,208) and 0.420 ms incl. PostgreSQL (2,381), automerge-repo
//! 1.762 ms (568); per delivered bundle 2.0, 2.0 and 5.5 µs; an idle sync 0.25, 0.30 and
//! 0.70 ms; RSS per idle socket 5.2 and 3.5 KiB against 11.5.
//!
//! This VM's runs spread by ±30 %: the full run an hour before `3a86986`, at `e4b910a`
//! (the same code but for error paths), gave PostgreSQL 0.624 ms per push incl.
//! PostgreSQL (1,603 per CPU-second), SQLite 0.220 ms, automerge-repo 1.450 ms. Seventeen
//! alternated runs of the push phase on PostgreSQL with the grouped reads gave
//! 0.406–0.848 ms per push incl. PostgreSQL (median 0.538, 1,859 per CPU-second), against
//! 0.564–0.992 (median 0.734) over nine of `006dd75`; grouped ÷ old by round 0.59, 0.79,
//! 0.88, 0.90 (ARCHITECTURE, "answers' first statements in groups").
//!
//! (Earlier that day, at `776a83e`: SQLite 0.218 ms per push, PostgreSQL 0.268 and 0.660 ms,
//! automerge-repo 1.730 ms; an idle sync SQLite 0.25 ms, PostgreSQL 0.40 and 0.80 ms.)
//!
//! (Earlier the same day, after SQLite's migration 20 keeps each document's tail, over TCP:
//! SQLite 0.314 ms per push in a slow round, PostgreSQL 0.284 and 0.696 ms, automerge-repo
//! 1.522 ms; an idle sync SQLite 0.35 ms, PostgreSQL 0.35 and 0.80 ms.)
//!
//! (2026-12-06, at `adcf1ae`: SQLite 0.280 ms per push, PostgreSQL 0.282 and 0.730 ms,
//! automerge-repo 1.774 ms; an idle sync SQLite 0.90 ms, PostgreSQL 0.45 and 1.05 ms.)
//!
//! (2026-12-05, at the end of the stop that made the replay answer the server's snapshot
//! asks: SQLite 3,704 pushes per server-CPU-second, PostgreSQL 1,894, incl. PostgreSQL 518;
//! automerge-repo 789.)
//!
//! The first build with the replay's snapshot uploads (`76b7f30`): SQLite 3,268 (again
//! 3,289; with `--threads 1` 2,075), PostgreSQL 1,437 and 382. Before, the
//! replay never uploaded the snapshot the server asks for, so every push after a long tail
//! paid the ask's write and the tail's weighing again: SQLite 1,866 the same day (0.536 ms),
//! PostgreSQL 813, incl. PostgreSQL 211; a snapshot re-ask rule that hid that cost (2,703,
//! at `5f372e9`) stopped compaction and was withdrawn (see ARCHITECTURE).
//!
//! (2026-12-04, before the third pass on the server's cost: SQLite 328 and PostgreSQL 330
//! pushes per server-CPU-second, 14.1 KiB per idle socket; automerge-repo 632 and 13.5 KiB.)
//!
//! With `--threads 1` each push is its own commit: CPU per push is then about ±5 % from run
//! to run, against ±20 % with one thread per device (how many pushes share a commit varies
//! with scheduling), which suits comparing two builds.
//!
//! Options: `--only e,a` runs some measures; `--backend sqlite` (or `postgres`) runs (e) on
//! one backend; `--devices N`, `--edits N` (at most 500),
//! `--readers N`, `--threads N`, `--runs N` override the sizes. Progress goes to stderr, the
//! table to stdout. Needs `node` and `npm` (and the npm registry, or npm's cache) for (a);
//! without them (a) says why in the table. Needs PostgreSQL (Debian's `postgresql`, which
//! `scripts/postgres.sh install` installs when missing) for (e) on PostgreSQL. With
//! `EENPLAN_PG_STATEMENTS=FILE`, PostgreSQL's `pg_stat_statements` (with planning times) is
//! loaded and each measured phase's costliest statements are appended to FILE: a profile,
//! whose overhead is in that run's figures.
//!
//! e. **eenplan-server**, once on embedded SQLite and once on PostgreSQL (`serve --database`,
//!    a database on a throw-away cluster that `scripts/postgres.sh` installs and starts on
//!    this host, reached through the cluster's Unix socket as a server beside its database
//!    connects; the server is started by `eenplan_tests::load::eenplan::start_server` for a
//!    `Database` of a `Backend`). Setup, not measured: a real server, the real admin CLI, N
//!    devices with real stores, each the regisseur of a plan of its own that R reader
//!    devices of one other user take part in, keys settled. The server's state is kept
//!    (stopped) as the base; then each device makes E real edits (an action's due date),
//!    each sealed and pushed by its own sync, and a reader pulls them back: N × E sealed
//!    bundles. Each measured run starts a server on a fresh copy of the base (SQLite: the
//!    files copied; PostgreSQL: `CREATE DATABASE … TEMPLATE base`) and
//!    1. replays the bundles over HTTP (keep-alive, T client threads, by default one per
//!       device, each device's pushes in order, one push per
//!       `POST /v1/sync` as a device in steady state sends it: its cursors, policy and audit
//!       key versions; no access-log upload). Each push's ack is checked; refused
//!       or unanswered pushes count as failures. The replay answers the server's snapshot
//!       asks as a device does: once a document's log after its newest snapshot is long, a
//!       complete answer lists it in `compact`; the pushing device seals a snapshot covering
//!       that answer's head (`Device::seal_snapshot`, with its own key) and uploads it in one
//!       more `POST /v1/sync` (its next round), which must be stored (a refused or lost one
//!       is a failure); the tail is then short and the server stops asking. Reported:
//!       snapshots uploaded per run; each push's time from request to answer (median and
//!       99th percentile, the clients on the same cores); the server's CPU time
//!       (`/proc/PID/stat` utime + stime) per accepted push, and pushes per
//!       server-CPU-second (target ≥ 2,000), counting only
//!       the replayed edits as pushes while the CPU measured includes the snapshot uploads
//!       (a device's cost of its edits); on PostgreSQL also with the CPU of PostgreSQL's own
//!       processes (the postmaster and every process under it, running or ended: `cutime` +
//!       `cstime` keep what ended backends spent), since they do the database's work that
//!       SQLite does inside the server. The devices' `save()` and seal of each snapshot run
//!       in this process: in the wall time, not in the server's CPU.
//!    2. lets every reader pull the whole backlog (N × E bundles each, pages of the server's
//!       default size; each reader's change bundle ids are checked to be exactly the accepted
//!       pushes, snapshots counted apart: a reader that follows a document gets none while it
//!       lacks at most 500 of its changes): server CPU per delivered change bundle (on
//!       PostgreSQL also with its processes').
//!    3. lets every reader sync 50 times with nothing new (each holds every plan's keys: 4
//!       documents per pushing device, like a regisseur's device with many plans every
//!       morning; each answer must be complete and empty): server CPU per idle sync.
//!
//!    Then, once, on a fresh server: every device opens 3 idle live-hint sockets
//!    (`GET /v1/live`, the most a device keeps), the readers' first; the server's RSS
//!    (`VmRSS`) growth over the pushers' sockets, per socket.
//! a. **automerge-repo** 2.5.6 (`scripts/automerge-repo`, installed by `npm install` from its lock file into scratch
//!    space): its sync server (`NodeWSServerAdapter`, nodefs storage, `sharePolicy` false, as
//!    `automerge-repo-sync-server` sets it up) in one node process, the load client in
//!    another: N clients, one WebSocket and one document each (a plan's action list), synced
//!    before the clock; then E edits of an action's due date per client, each waited for
//!    until the server's heads show it; the clock stops when the server has flushed its
//!    storage. Server CPU per accepted change; then, on a fresh server, the RSS growth per
//!    idle WebSocket peer (the same numbers of warm and measured connections as for (e)).
//!    Ratios are eenplan (on SQLite) ÷ automerge-repo: a cost (CPU, RSS) below 1 or a rate
//!    above 1 puts eenplan ahead.
//! s. **Side by side**: every system of the run, one row each per figure.
//!
//! Every figure is a median over the runs unless the table says otherwise. The client
//! threads share the machine's cores with the server: wall-clock rates are lower bounds,
//! CPU per push is the server's own.

use std::cell::RefCell;

use eenplan_tests::bench::{Args, Table, bytes, median, ratio, run, scratch, secs};
use eenplan_tests::load::automerge_repo;
use eenplan_tests::load::eenplan::{
    Backend, Fixture, IDLE_SYNCS_PER_READER, Idle, Run, SNAPSHOT_SHORTCUT_CHANGES, Sizes,
};
use eenplan_tests::load::process::Spent;

/// The target of DESIGN §9 and issue 13: pushes per server-CPU-second on 2 cores.
const PUSHES_PER_CPU_SECOND: f64 = 2_000.0;
/// The most live sockets a device keeps (`MAX_LIVE_SOCKETS_PER_DEVICE`).
const SOCKETS_PER_DEVICE: usize = eenplan_protocol::api::MAX_LIVE_SOCKETS_PER_DEVICE;

#[derive(Debug)]
struct Config {
    quick: bool,
    only: Vec<char>,
    /// The backends (e) runs on: both unless `--backend` names one.
    backends: Vec<Backend>,
    sizes: Sizes,
    threads: usize,
    runs: usize,
    /// What (e) measured on each backend, for (a)'s ratios and the summary.
    eenplan: RefCell<Vec<(Backend, Measured)>>,
    /// What (a) measured, for the summary.
    automerge: RefCell<Option<Measured>>,
}

impl Config {
    fn from_args() -> Config {
        let args = Args::from_env(
            "load_bench [--quick] [--only e,a] [--backend sqlite|postgres] [--devices N] [--edits N] [--readers N] [--threads N] [--runs N]",
        );
        let quick = args.has("--quick");
        let edits = args.number("--edits", if quick { 20 } else { 100 });
        if edits > SNAPSHOT_SHORTCUT_CHANGES {
            eprintln!("--edits is at most {SNAPSHOT_SHORTCUT_CHANGES}");
            std::process::exit(2);
        }
        let devices = args.number("--devices", if quick { 8 } else { 50 }).max(1);
        let mut only = args.only(&['e', 'a']);
        // The summary of whatever was measured always closes the table.
        only.push('s');
        let backends = match args.text("--backend") {
            None => Backend::ALL.to_vec(),
            Some("sqlite") => vec![Backend::Sqlite],
            Some("postgres") => vec![Backend::Postgres],
            Some(other) => {
                eprintln!("--backend is sqlite or postgres, not {other:?}");
                std::process::exit(2);
            }
        };
        Config {
            quick,
            only,
            backends,
            sizes: Sizes {
                devices,
                edits: edits.max(1),
                readers: args.number("--readers", if quick { 2 } else { 4 }).max(1),
            },
            // One client thread per device by default, as automerge-repo's load has one client
            // per document: the same number of pushes in flight.
            threads: args.number("--threads", devices).max(1),
            runs: args.number("--runs", if quick { 2 } else { 3 }).max(1),
            eenplan: RefCell::new(Vec::new()),
            automerge: RefCell::new(None),
        }
    }

    fn pushes(&self) -> usize {
        self.sizes.devices * self.sizes.edits
    }

    /// What (a) compares with: eenplan on the first backend measured (SQLite).
    fn reference(&self) -> Option<Measured> {
        self.eenplan.borrow().first().map(|(_, m)| *m)
    }
}

/// One system's medians: CPU per accepted push (or change) and per delivered bundle, of the
/// server process alone and with a separate database server's processes; wall rate; RSS per
/// idle connection.
#[derive(Debug, Clone, Copy, Default)]
struct Measured {
    cpu_per_push: f64,
    /// `None` where no database server runs apart from the server (SQLite, automerge-repo).
    with_database_per_push: Option<f64>,
    wall_rate: f64,
    /// A push's time from request to answer, median and 99th percentile, in seconds (the
    /// medians over the runs; `None` where the load waits differently: automerge-repo).
    push_latency: Option<(f64, f64)>,
    cpu_per_delivered: Option<f64>,
    with_database_per_delivered: Option<f64>,
    /// Per sync with nothing new of a device holding every plan (eenplan only).
    cpu_per_idle_sync: Option<f64>,
    with_database_per_idle_sync: Option<f64>,
    idle: Idle,
}

impl Measured {
    /// CPU per push with the database's processes: the server's alone when it has none apart.
    fn all_cpu_per_push(&self) -> f64 {
        self.with_database_per_push.unwrap_or(self.cpu_per_push)
    }
}

fn per_connection_kib(idle: &Idle) -> f64 {
    idle.after_kib.saturating_sub(idle.before_kib) as f64 / idle.measured.max(1) as f64
}

fn cpu_per(spent: &Spent, count: u64) -> f64 {
    spent.cpu.as_secs_f64() / count.max(1) as f64
}

/// CPU of the server and the database's processes together per item; `None` without a
/// database server apart.
fn with_database_per(spent: &Spent, count: u64) -> Option<f64> {
    spent.database_cpu.map(|_| spent.cpu_with_database().as_secs_f64() / count.max(1) as f64)
}

fn ms(seconds: f64) -> String {
    format!("{:.3} ms", seconds * 1e3)
}

fn per_second(seconds: f64) -> f64 {
    1.0 / seconds.max(1e-12)
}

/// CPU per bundle in µs; a dash when the phase's CPU stayed under the clock tick of `/proc`
/// (10 ms), as a `--quick` run's pull can.
fn micros_per_bundle(seconds: f64) -> String {
    if seconds > 0.0 { format!("{:.1} µs", seconds * 1e6) } else { "—".into() }
}

/// Bundles per server-CPU-second for `seconds` per bundle; none measured when the phase's CPU
/// stayed under the clock tick of `/proc` (10 ms), as a `--quick` run's pull can.
fn bundles_per_second(seconds: f64) -> String {
    if seconds > 0.0 {
        format!("{:.0} bundles per server-CPU-second", per_second(seconds))
    } else {
        "under /proc's 10 ms clock tick: too few bundles to measure".into()
    }
}

// --- e. eenplan-server ----------------------------------------------------------------------

fn measure_e(cfg: &Config, table: &mut Table) {
    // Each backend the server runs on gets the same workload. The first one's figures are
    // what (a) compares with.
    for &backend in &cfg.backends {
        let mut fixture = Fixture::build(cfg.sizes, backend);
        let measured = eenplan_rows(cfg, table, &mut fixture, backend);
        cfg.eenplan.borrow_mut().push((backend, measured));
    }
}

/// The medians over the runs of `f`, or `None` when a run has no figure.
fn median_of(runs: &[Run], f: impl Fn(&Run) -> Option<f64>) -> Option<f64> {
    let values: Option<Vec<f64>> = runs.iter().map(f).collect();
    values.filter(|v| !v.is_empty()).map(|v| median(&v))
}

/// The measured runs on fresh copies of the base, then the idle sockets; the medians.
fn eenplan_runs(cfg: &Config, fixture: &mut Fixture) -> (Vec<Run>, Measured) {
    let mut runs = Vec::new();
    for r in 0..cfg.runs {
        let run = fixture.run(&format!("run-{r}"), cfg.threads);
        let database =
            |s: &Spent| s.database_cpu.map_or_else(String::new, |c| format!(" (+ database {})", secs(c)));
        eprintln!(
            "e: run {}: {} accepted, {} failed, {} snapshots uploaded, {} refused, server CPU {}{} over {}; {} delivered, CPU {}{}",
            r + 1,
            run.accepted,
            run.failed,
            run.snapshots,
            run.snapshots_refused,
            secs(run.push.cpu),
            database(&run.push),
            secs(run.push.wall),
            run.delivered,
            secs(run.delivery.cpu),
            database(&run.delivery),
        );
        runs.push(run);
    }
    let measured = Measured {
        cpu_per_push: median_of(&runs, |r| Some(cpu_per(&r.push, r.accepted))).unwrap_or_default(),
        with_database_per_push: median_of(&runs, |r| with_database_per(&r.push, r.accepted)),
        wall_rate: median_of(&runs, |r| Some(r.accepted as f64 / r.push.wall.as_secs_f64()))
            .unwrap_or_default(),
        push_latency: median_of(&runs, |r| Some(r.push_p50.as_secs_f64()))
            .zip(median_of(&runs, |r| Some(r.push_p99.as_secs_f64()))),
        cpu_per_delivered: median_of(&runs, |r| Some(cpu_per(&r.delivery, r.delivered))),
        with_database_per_delivered: median_of(&runs, |r| with_database_per(&r.delivery, r.delivered)),
        cpu_per_idle_sync: median_of(&runs, |r| Some(cpu_per(&r.idle, r.idle_syncs))),
        with_database_per_idle_sync: median_of(&runs, |r| with_database_per(&r.idle, r.idle_syncs)),
        idle: fixture.idle(SOCKETS_PER_DEVICE),
    };
    (runs, measured)
}

fn eenplan_rows(cfg: &Config, table: &mut Table, fixture: &mut Fixture, backend: Backend) -> Measured {
    let (database, reached) = (backend.label(), backend.reached());
    let (runs, measured) = eenplan_runs(cfg, fixture);
    let failed: u64 = runs.iter().map(|r| r.failed).sum();
    let failure = runs.iter().find_map(|r| r.failure.clone()).unwrap_or_default();
    table.section(&format!(
        "e. eenplan-server on {database} ({reached}): {} devices × {} pre-sealed pushes, {} client threads, {} readers (median of {})",
        cfg.sizes.devices, cfg.sizes.edits, cfg.threads, cfg.sizes.readers, cfg.runs
    ));
    table.row(
        "setup (once): network, keys settled, edits sealed by the devices",
        secs(fixture.setup),
        "",
        "",
    );
    let sizes: Vec<usize> = fixture.sealed.iter().flatten().map(|b| b.bytes.len()).collect();
    table.row("sealed bundle of one edit (median)", bytes(median(&sizes) as f64), "", "");
    table.row(
        "pushes accepted per run; refused or lost in all runs",
        format!("{}; {failed}", median(&runs.iter().map(|r| r.accepted).collect::<Vec<_>>())),
        if failed == 0 { format!("of {}", cfg.pushes()) } else { format!("first: {failure}") },
        "",
    );
    snapshot_rows(cfg, table, &runs);
    push_rows(table, &measured, database);
    table.row(
        "pushes per second (wall, clients on the same cores)",
        format!("{:.0} /s", measured.wall_rate),
        "",
        "",
    );
    table.row(
        "push latency, request to answer: median / 99th percentile",
        measured
            .push_latency
            .map_or_else(String::new, |(p50, p99)| format!("{:.1} / {:.1} ms", p50 * 1e3, p99 * 1e3)),
        "",
        "clients on the same cores",
    );
    delivery_rows(table, &measured, database);
    idle_sync_rows(cfg, table, &measured, database);
    table.row(
        "server RSS per idle live socket (eenplan-server)",
        format!("{:.1} KiB", per_connection_kib(&measured.idle)),
        format!(
            "{} sockets ({SOCKETS_PER_DEVICE} per device) after {} warm",
            measured.idle.measured, measured.idle.warm
        ),
        "",
    );
    measured
}

/// The snapshots the replay uploaded when the server asked, as devices do; a refused or
/// lost one is a failure (a device's would be stored).
fn snapshot_rows(cfg: &Config, table: &mut Table, runs: &[Run]) {
    let uploaded = median(&runs.iter().map(|r| r.snapshots).collect::<Vec<_>>());
    let refused: u64 = runs.iter().map(|r| r.snapshots_refused).sum();
    let refusal = runs.iter().find_map(|r| r.snapshot_refusal.clone()).unwrap_or_default();
    table.row(
        "snapshots uploaded per run (the server's asks answered); refused or lost in all runs",
        format!("{uploaded}; {refused}"),
        if refused == 0 {
            format!(
                "{:.1} per device; their server CPU is in the push figures",
                uploaded as f64 / cfg.sizes.devices as f64
            )
        } else {
            format!("FAILED, first: {refusal}")
        },
        "",
    );
    let delivered: u64 = runs.iter().map(|r| r.delivered_snapshots).sum();
    if delivered > 0 {
        table.row(
            "snapshots the readers received in all runs (apart from the bundles)",
            delivered.to_string(),
            "",
            "",
        );
    }
}

/// Server CPU per accepted push and pushes per server-CPU-second, of eenplan-server alone
/// and with the database's processes. Only the replayed edits count as pushes; the CPU
/// includes the snapshot uploads that answered the server's asks.
fn push_rows(table: &mut Table, measured: &Measured, database: &str) {
    let embedded = measured.with_database_per_push.is_none();
    let including = if embedded { format!("{database} is embedded: the same") } else { String::new() };
    table.row(
        "server CPU per accepted push, eenplan-server only",
        ms(measured.cpu_per_push),
        "incl. the snapshot uploads",
        "",
    );
    table.row(
        format!("  incl. {database}'s own processes"),
        ms(measured.all_cpu_per_push()),
        including.clone(),
        "",
    );
    let alone = per_second(measured.cpu_per_push);
    let all = per_second(measured.all_cpu_per_push());
    table.row(
        "  = pushes per server-CPU-second, eenplan-server only",
        format!("{alone:.0} /s"),
        format!("target ≥ {PUSHES_PER_CPU_SECOND:.0}"),
        ratio(alone, PUSHES_PER_CPU_SECOND),
    );
    table.row(
        format!("  = pushes per server-CPU-second, incl. {database}"),
        format!("{all:.0} /s"),
        format!("target ≥ {PUSHES_PER_CPU_SECOND:.0}"),
        ratio(all, PUSHES_PER_CPU_SECOND),
    );
}

fn delivery_rows(table: &mut Table, measured: &Measured, database: &str) {
    let alone = measured.cpu_per_delivered.unwrap_or_default();
    table.row(
        "server CPU per delivered bundle (readers pull the backlog), eenplan-server only",
        micros_per_bundle(alone),
        bundles_per_second(alone),
        "",
    );
    let all = measured.with_database_per_delivered.unwrap_or(alone);
    table.row(
        format!("  incl. {database}'s own processes"),
        micros_per_bundle(all),
        bundles_per_second(all),
        "",
    );
}

fn idle_sync_rows(cfg: &Config, table: &mut Table, measured: &Measured, database: &str) {
    let documents = cfg.sizes.devices * eenplan_core::plan::Compartment::ALL.len();
    let alone = measured.cpu_per_idle_sync.unwrap_or_default();
    table.row(
        format!(
            "server CPU per idle sync of a reader holding {} plans ({documents} documents), eenplan-server only",
            cfg.sizes.devices
        ),
        ms(alone),
        format!("{IDLE_SYNCS_PER_READER} syncs with nothing new per reader"),
        "",
    );
    let all = measured.with_database_per_idle_sync.unwrap_or(alone);
    table.row(format!("  incl. {database}'s own processes"), ms(all), "", "");
}

// --- a. automerge-repo ----------------------------------------------------------------------

fn measure_a(cfg: &Config, table: &mut Table) {
    table.section(&format!(
        "a. automerge-repo 2.5.6 sync server (node), same workload: {} clients × 1 document × {} edits (median of {}); ratio eenplan on SQLite ÷ automerge-repo",
        cfg.sizes.devices, cfg.sizes.edits, cfg.runs
    ));
    let installed = match automerge_repo::install() {
        Ok(installed) => installed,
        Err(why) => {
            table.row("not measured", "—", why, "");
            return;
        }
    };
    let data = scratch("load-bench", "automerge-repo-data");
    let mut runs = Vec::new();
    for r in 0..cfg.runs {
        let mut server = installed.server(&data.path().join(format!("run-{r}")));
        let run = installed.load(&mut server, cfg.sizes.devices, 1, cfg.sizes.edits);
        eprintln!(
            "a: run {}: {} changes, {} failed, server CPU {} over {}",
            r + 1,
            run.changes,
            run.failed,
            secs(run.push.cpu),
            secs(run.push.wall)
        );
        runs.push(run);
    }
    let (warm, measured) = cfg.reference().map_or((12, 150), |m| (m.idle.warm, m.idle.measured));
    let idle = installed.idle(&installed.server(&data.path().join("idle")), warm, measured);
    let am = Measured {
        cpu_per_push: median(&runs.iter().map(|r| cpu_per(&r.push, r.changes)).collect::<Vec<_>>()),
        with_database_per_push: None,
        push_latency: None,
        wall_rate: median(
            &runs.iter().map(|r| r.changes as f64 / r.push.wall.as_secs_f64()).collect::<Vec<_>>(),
        ),
        cpu_per_delivered: None,
        with_database_per_delivered: None,
        cpu_per_idle_sync: None,
        with_database_per_idle_sync: None,
        idle,
    };
    automerge_rows(cfg, table, &runs, &am);
    *cfg.automerge.borrow_mut() = Some(am);
}

fn automerge_rows(cfg: &Config, table: &mut Table, runs: &[automerge_repo::Run], am: &Measured) {
    let ours = cfg.reference();
    let vs = |theirs: f64, pick: fn(&Measured) -> f64| {
        ours.map_or_else(|| "—".into(), |o| ratio(pick(&o), theirs))
    };
    let failed: u64 = runs.iter().map(|r| r.failed).sum();
    table.row(
        "changes acknowledged per run; unacknowledged in all runs",
        format!("{}; {failed}", median(&runs.iter().map(|r| r.changes).collect::<Vec<_>>())),
        format!("of {}", cfg.pushes()),
        "",
    );
    table.row(
        "server CPU per accepted change",
        ms(am.cpu_per_push),
        ours.map_or_else(String::new, |o| format!("eenplan {}", ms(o.cpu_per_push))),
        vs(am.cpu_per_push, |m| m.cpu_per_push),
    );
    let rate = per_second(am.cpu_per_push);
    table.row(
        "  = changes per server-CPU-second",
        format!("{rate:.0} /s"),
        ours.map_or_else(String::new, |o| format!("eenplan {:.0} /s", per_second(o.cpu_per_push))),
        vs(rate, |m| per_second(m.cpu_per_push)),
    );
    table.row(
        "changes per second (wall, clients on the same cores)",
        format!("{:.0} /s", am.wall_rate),
        ours.map_or_else(String::new, |o| format!("eenplan {:.0} /s", o.wall_rate)),
        vs(am.wall_rate, |m| m.wall_rate),
    );
    let kib = per_connection_kib(&am.idle);
    table.row(
        "server RSS per idle WebSocket peer",
        format!("{kib:.1} KiB"),
        ours.map_or_else(String::new, |o| format!("eenplan {:.1} KiB", per_connection_kib(&o.idle))),
        vs(kib, |m| per_connection_kib(&m.idle)),
    );
}

// --- s. side by side ------------------------------------------------------------------------

/// Every system measured in this run, one row each per figure; ratios against automerge-repo
/// (for costs below 1, for rates above 1, eenplan is ahead).
fn summary(cfg: &Config, table: &mut Table) {
    let eenplan = cfg.eenplan.borrow();
    let automerge = *cfg.automerge.borrow();
    if eenplan.is_empty() && automerge.is_none() {
        return;
    }
    table.section("s. side by side, this run (ratio: ÷ automerge-repo)");
    let vs = |value: f64, pick: fn(&Measured) -> f64| {
        automerge.map_or_else(String::new, |a| ratio(value, pick(&a)))
    };
    let mut systems: Vec<(String, f64)> = Vec::new();
    for (backend, m) in eenplan.iter() {
        let label = backend.label();
        if m.with_database_per_push.is_some() {
            systems.push((format!("eenplan on {label}, eenplan-server only"), m.cpu_per_push));
            systems.push((format!("eenplan on {label}, incl. {label}"), m.all_cpu_per_push()));
        } else {
            systems.push((format!("eenplan on {label} (embedded)"), m.cpu_per_push));
        }
    }
    if let Some(a) = automerge {
        systems.push(("automerge-repo (node, one process)".into(), a.cpu_per_push));
    }
    for (name, cpu) in &systems {
        table.row(
            format!("pushes per server-CPU-second: {name}"),
            format!("{:.0} /s", per_second(*cpu)),
            format!("{} per push", ms(*cpu)),
            vs(per_second(*cpu), |a| per_second(a.cpu_per_push)),
        );
    }
    for (backend, m) in eenplan.iter() {
        let label = backend.label();
        let alone = m.cpu_per_delivered.unwrap_or_default();
        table.row(
            format!("server CPU per delivered bundle: eenplan on {label}, eenplan-server only"),
            micros_per_bundle(alone),
            "",
            "",
        );
        if let Some(all) = m.with_database_per_delivered {
            table.row(
                format!("server CPU per delivered bundle: eenplan on {label}, incl. {label}"),
                micros_per_bundle(all),
                "",
                "",
            );
        }
    }
    for (backend, m) in eenplan.iter() {
        let kib = per_connection_kib(&m.idle);
        table.row(
            format!("server RSS per idle live socket: eenplan on {}", backend.label()),
            format!("{kib:.1} KiB"),
            "",
            vs(kib, |a| per_connection_kib(&a.idle)),
        );
    }
    if let Some(a) = automerge {
        table.row(
            "server RSS per idle WebSocket peer: automerge-repo",
            format!("{:.1} KiB", per_connection_kib(&a.idle)),
            "",
            "",
        );
    }
}

fn main() {
    let cfg = Config::from_args();
    eprintln!("load_bench {} ({cfg:?})", if cfg.quick { "--quick" } else { "full" });
    run(
        "load_bench",
        cfg.quick,
        &cfg,
        &cfg.only,
        &[('e', measure_e), ('a', measure_a), ('s', summary)],
        "ratio: value ÷ target; in (a) eenplan ÷ automerge-repo: for costs (CPU, RSS) below 1, for rates above 1, eenplan is ahead.",
    );
}
