#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `load_bench`: what the server costs (issue 13, item 6), measured from the server process,
//! against automerge-repo's sync server under the same workload in the same run.
//!
//! ```text
//! cargo build --workspace --release
//! target/release/load_bench            # full: 50 devices × 100 pushes, 4 readers, 3 runs; ≈ 5 min on 2 cores
//! target/release/load_bench --quick    # 8 devices × 20 pushes, 2 readers, 2 runs; ≈ 35 s
//! ```
//!
//! The full run took 4 min 50 s on 2 shared cores (setup 2 min 7 s: 50 devices enrolled,
//! keys settled, 5,000 edits sealed; eenplan runs ≈ 17 s each; automerge-repo runs ≈ 25 s
//! each).
//!
//! ```text
//! ```
//!
//! Options: `--only e,a` runs some measures; `--devices N`, `--edits N` (at most 500),
//! `--readers N`, `--threads N`, `--runs N` override the sizes. Progress goes to stderr, the
//! table to stdout. Needs `node` and `npm` (and the npm registry, or npm's cache) for (a);
//! without them (a) says why in the table.
//!
//! e. **eenplan-server** (embedded SQLite; the server is started by
//!    `eenplan_tests::load::eenplan::start_server` for a `Database` of a `Backend`, where
//!    PostgreSQL goes). Setup, not measured: a real server, the real admin CLI, N devices with
//!    real stores, each the regisseur of a plan of its own that R reader devices of one other
//!    user take part in, keys settled. The server's state is kept (stopped) as the base; then
//!    each device makes E real edits (an action's due date), each sealed and pushed by its own
//!    sync, and a reader pulls them back: N × E sealed bundles. Each measured run starts a
//!    server on a fresh copy of the base and
//!    1. replays the bundles over HTTP (keep-alive, T client threads, by default one per
//!       device, each device's pushes in order, one push per
//!       `POST /v1/sync` as a device in steady state sends it: its cursors, policy and audit
//!       key versions; no access-log upload, no snapshot). Each push's ack is checked; refused
//!       or unanswered pushes count as failures. Reported: the server's CPU time
//!       (`/proc/PID/stat` utime + stime) per accepted push, and pushes per server-CPU-second
//!       (target ≥ 2,000). The server asks each device for a snapshot once its document's log
//!       is long, as it would; the replay does not upload one.
//!    2. lets every reader pull the whole backlog (N × E bundles each, pages of the server's
//!       default size; each reader's bundle ids are checked to be exactly the accepted pushes):
//!       server CPU per delivered bundle.
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
//!    Ratios are eenplan ÷ automerge-repo: a cost (CPU, RSS) below 1 or a rate above 1 puts
//!    eenplan ahead.
//!
//! Every figure is a median over the runs unless the table says otherwise. The client
//! threads share the machine's cores with the server: wall-clock rates are lower bounds,
//! CPU per push is the server's own.

use std::cell::RefCell;

use eenplan_tests::bench::{Args, Table, bytes, median, ratio, run, scratch, secs};
use eenplan_tests::load::automerge_repo;
use eenplan_tests::load::eenplan::{Backend, Fixture, Idle, Run, SNAPSHOT_SHORTCUT_CHANGES, Sizes};
use eenplan_tests::load::process::Spent;

/// The target of DESIGN §9 and issue 13: pushes per server-CPU-second on 2 cores.
const PUSHES_PER_CPU_SECOND: f64 = 2_000.0;
/// The most live sockets a device keeps (`MAX_LIVE_SOCKETS_PER_DEVICE`).
const SOCKETS_PER_DEVICE: usize = eenplan_protocol::api::MAX_LIVE_SOCKETS_PER_DEVICE;

#[derive(Debug)]
struct Config {
    quick: bool,
    only: Vec<char>,
    sizes: Sizes,
    threads: usize,
    runs: usize,
    /// What (e) measured, for (a)'s ratios.
    eenplan: RefCell<Option<Measured>>,
}

impl Config {
    fn from_args() -> Config {
        let args = Args::from_env(
            "load_bench [--quick] [--only e,a] [--devices N] [--edits N] [--readers N] [--threads N] [--runs N]",
        );
        let quick = args.has("--quick");
        let edits = args.number("--edits", if quick { 20 } else { 100 });
        if edits > SNAPSHOT_SHORTCUT_CHANGES {
            eprintln!("--edits is at most {SNAPSHOT_SHORTCUT_CHANGES}");
            std::process::exit(2);
        }
        let devices = args.number("--devices", if quick { 8 } else { 50 }).max(1);
        Config {
            quick,
            only: args.only(&['e', 'a']),
            sizes: Sizes {
                devices,
                edits: edits.max(1),
                readers: args.number("--readers", if quick { 2 } else { 4 }).max(1),
            },
            // One client thread per device by default, as automerge-repo's load has one client
            // per document: the same number of pushes in flight.
            threads: args.number("--threads", devices).max(1),
            runs: args.number("--runs", if quick { 2 } else { 3 }).max(1),
            eenplan: RefCell::new(None),
        }
    }

    fn pushes(&self) -> usize {
        self.sizes.devices * self.sizes.edits
    }
}

/// One system's medians: CPU per accepted push (or change), wall rate, CPU per delivered
/// bundle, RSS per idle connection.
#[derive(Debug, Clone, Copy, Default)]
struct Measured {
    cpu_per_push: f64,
    wall_rate: f64,
    cpu_per_delivered: Option<f64>,
    idle: Idle,
}

fn per_connection_kib(idle: &Idle) -> f64 {
    idle.after_kib.saturating_sub(idle.before_kib) as f64 / idle.measured.max(1) as f64
}

fn cpu_per(spent: &Spent, count: u64) -> f64 {
    spent.cpu.as_secs_f64() / count.max(1) as f64
}

fn ms(seconds: f64) -> String {
    format!("{:.3} ms", seconds * 1e3)
}

// --- e. eenplan-server ----------------------------------------------------------------------

fn measure_e(cfg: &Config, table: &mut Table) {
    // Each backend the server runs on gets the same workload (PostgreSQL joins
    // `Backend::ALL`). The first one's figures are what (a) compares with.
    for &backend in Backend::ALL {
        let fixture = Fixture::build(cfg.sizes, backend);
        let measured = eenplan_rows(cfg, table, &fixture, backend.label());
        cfg.eenplan.borrow_mut().get_or_insert(measured);
    }
}

/// The measured runs on fresh copies of the base, then the idle sockets; the medians.
fn eenplan_runs(cfg: &Config, fixture: &Fixture) -> (Vec<Run>, Measured) {
    let mut runs = Vec::new();
    for r in 0..cfg.runs {
        let run = fixture.run(&format!("run-{r}"), cfg.threads);
        eprintln!(
            "e: run {}: {} accepted, {} failed, server CPU {} over {}; {} delivered, CPU {}",
            r + 1,
            run.accepted,
            run.failed,
            secs(run.push.cpu),
            secs(run.push.wall),
            run.delivered,
            secs(run.delivery.cpu)
        );
        runs.push(run);
    }
    let per_run = |f: fn(&Run) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
    let measured = Measured {
        cpu_per_push: per_run(|r| cpu_per(&r.push, r.accepted)),
        wall_rate: per_run(|r| r.accepted as f64 / r.push.wall.as_secs_f64()),
        cpu_per_delivered: Some(per_run(|r| cpu_per(&r.delivery, r.delivered))),
        idle: fixture.idle(SOCKETS_PER_DEVICE),
    };
    (runs, measured)
}

fn eenplan_rows(cfg: &Config, table: &mut Table, fixture: &Fixture, database: &str) -> Measured {
    let (runs, measured) = eenplan_runs(cfg, fixture);
    let idle = measured.idle;
    let failed: u64 = runs.iter().map(|r| r.failed).sum();
    let failure = runs.iter().find_map(|r| r.failure.clone()).unwrap_or_default();
    table.section(&format!(
        "e. eenplan-server on {database}: {} devices × {} pre-sealed pushes, {} client threads, {} readers (median of {})",
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
    let per_cpu_second = 1.0 / measured.cpu_per_push.max(1e-12);
    table.row("server CPU per accepted push", ms(measured.cpu_per_push), "", "");
    table.row(
        "  = pushes per server-CPU-second",
        format!("{per_cpu_second:.0} /s"),
        format!("target ≥ {PUSHES_PER_CPU_SECOND:.0}"),
        ratio(per_cpu_second, PUSHES_PER_CPU_SECOND),
    );
    table.row(
        "pushes per second (wall, clients on the same cores)",
        format!("{:.0} /s", measured.wall_rate),
        "",
        "",
    );
    let delivered = measured.cpu_per_delivered.unwrap_or_default();
    table.row(
        "server CPU per delivered bundle (readers pull the backlog)",
        format!("{:.1} µs", delivered * 1e6),
        format!("{:.0} bundles per server-CPU-second", 1.0 / delivered.max(1e-12)),
        "",
    );
    table.row(
        "server RSS per idle live socket",
        format!("{:.1} KiB", per_connection_kib(&idle)),
        format!("{} sockets ({SOCKETS_PER_DEVICE} per device) after {} warm", idle.measured, idle.warm),
        "",
    );
    measured
}

// --- a. automerge-repo ----------------------------------------------------------------------

fn measure_a(cfg: &Config, table: &mut Table) {
    table.section(&format!(
        "a. automerge-repo 2.5.6 sync server (node), same workload: {} clients × 1 document × {} edits (median of {}); ratio eenplan ÷ automerge-repo",
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
    let eenplan_idle = cfg.eenplan.borrow().map(|m| m.idle);
    let (warm, measured) = eenplan_idle.map_or((12, 150), |i| (i.warm, i.measured));
    let idle = installed.idle(&installed.server(&data.path().join("idle")), warm, measured);
    let am = Measured {
        cpu_per_push: median(&runs.iter().map(|r| cpu_per(&r.push, r.changes)).collect::<Vec<_>>()),
        wall_rate: median(
            &runs.iter().map(|r| r.changes as f64 / r.push.wall.as_secs_f64()).collect::<Vec<_>>(),
        ),
        cpu_per_delivered: None,
        idle,
    };
    automerge_rows(cfg, table, &runs, &am);
}

fn automerge_rows(cfg: &Config, table: &mut Table, runs: &[automerge_repo::Run], am: &Measured) {
    let ours = *cfg.eenplan.borrow();
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
    let rate = 1.0 / am.cpu_per_push.max(1e-12);
    table.row(
        "  = changes per server-CPU-second",
        format!("{rate:.0} /s"),
        ours.map_or_else(String::new, |o| format!("eenplan {:.0} /s", 1.0 / o.cpu_per_push.max(1e-12))),
        vs(rate, |m| 1.0 / m.cpu_per_push.max(1e-12)),
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

fn main() {
    let cfg = Config::from_args();
    eprintln!("load_bench {} ({cfg:?})", if cfg.quick { "--quick" } else { "full" });
    run(
        "load_bench",
        cfg.quick,
        &cfg,
        &cfg.only,
        &[('e', measure_e), ('a', measure_a)],
        "ratio: value ÷ target; in (a) eenplan ÷ automerge-repo: for costs (CPU, RSS) below 1, for rates above 1, eenplan is ahead.",
    );
}
