#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `cycle_bench`: what the regisseur's working cycle (DESIGN §7) costs on a device: reviewing
//! a busy plan, and (added by the agenda's author) the agenda across plans.
//!
//! ```text
//! cargo build --workspace --release --bins
//! target/release/cycle_bench            # full: 11 repetitions of each measure
//! target/release/cycle_bench --quick    # 3 repetitions
//! ```
//!
//! Options: `--only a,b` runs some measures; `--reps N` overrides the repetitions; `--edits N`
//! the edits of measure a (10,000). Progress goes to stderr, the table to stdout.
//!
//! a. **Review of a plan with 10,000 edits since the last mark.** The regisseur's device
//!    (a real store) creates a plan with two members, six goals and twelve actions and marks
//!    it reviewed. Two workers, each a plan copy with an actor of its own, then make the
//!    edits offline, one automerge change each, one second apart, in sessions of one kind:
//!    typing a home-visit note keystroke by keystroke (7 in 10 edits), setting action or goal
//!    statuses (1.5 in 10) and ZRM scores (1.5 in 10). Their documents reach the device by
//!    transfer file. Measured: `Device::review` (the store's marks, the history, people), and
//!    the pure history (`review::history`) over the same documents. Target: 50 ms.
//! b. **The agenda across 40 plans**: see `cycle_bench/agenda.rs` (`--plans N`).
//!
//! Every figure is a median over the repetitions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eenplan_core::clock::ManualClock;
use eenplan_core::plan::{
    ActionStatus, ActionUpdate, Compartment, GoalStatus, NewAction, NewGoal, NewMember, NoteKind, Plan,
};
use eenplan_core::review::{self, MAX_LINES};
use eenplan_core::{Device, DeviceId, EntityId, PlanId};
use eenplan_tests::bench::{Args, Table, median, ratio, run, scratch, secs};
use eenplan_tests::test_keystore;

const TARGET_REVIEW: Duration = Duration::from_millis(50);
const PASSPHRASE: &str = "cycle-bench overdracht";

#[derive(Debug, Clone)]
struct Config {
    quick: bool,
    only: Vec<char>,
    reps: usize,
    edits: usize,
    /// Plans on the device in measure b.
    plans: usize,
}

impl Config {
    fn from_args() -> Config {
        let args = Args::from_env("cycle_bench [--quick] [--only a,b] [--reps N] [--edits N] [--plans N]");
        let quick = args.has("--quick");
        let cfg = Config {
            quick,
            only: args.only(&['a', 'b']),
            reps: args.number("--reps", if quick { 3 } else { 11 }),
            edits: args.number("--edits", 10_000),
            plans: args.number("--plans", 40),
        };
        if cfg.reps == 0 {
            eprintln!("cycle_bench: need --reps ≥ 1");
            std::process::exit(2);
        }
        cfg
    }
}

// --- a. review ----------------------------------------------------------------------------

/// What the plan holds that edits refer to.
struct Entities {
    members: Vec<EntityId>,
    goals: Vec<EntityId>,
    actions: Vec<EntityId>,
}

/// A deterministic generator (no dependency, same plan every run).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

fn regisseur_plan(device: &mut Device) -> (PlanId, Entities) {
    let plan = device.create_plan("Jansen").unwrap();
    let members = ["Jan", "Marieke"]
        .iter()
        .map(|name| {
            let member = NewMember {
                name: (*name).into(),
                relation: "ouder".into(),
                birth_date: None,
                parental_authority: true,
            };
            device.edit(&plan, |p| p.add_member(member)).unwrap()
        })
        .collect();
    let mut goals = Vec::new();
    let mut actions = Vec::new();
    for (i, domain) in ["financiën", "huisvesting", "werk & opleiding"].iter().cycle().take(6).enumerate() {
        let goal = NewGoal { domain: (*domain).into(), title: format!("Doel {i}") };
        let goal = device.edit(&plan, |p| p.add_goal(goal)).unwrap();
        for j in 0..2 {
            let action = NewAction {
                goal,
                title: format!("Actie {i}.{j}"),
                owner_org: "Wijkteam Noord".into(),
                owner_user: None,
                due: None,
            };
            actions.push(device.edit(&plan, |p| p.add_action(action)).unwrap());
        }
        goals.push(goal);
    }
    (plan, Entities { members, goals, actions })
}

/// A plan copy for a worker with actor `n`, from a transfer file.
fn worker_plan(file: &[u8], n: u8, clock: &Arc<ManualClock>) -> Plan {
    let contents = eenplan_core::transfer::open(file, PASSPHRASE).unwrap();
    let docs = contents
        .docs
        .iter()
        .map(|(c, bytes)| (*c, eenplan_core::plan::load_received_document(bytes, *c, contents.plan).unwrap()))
        .collect();
    Plan::from_documents(contents.plan, DeviceId::from_bytes([n; 16]), docs, clock.clone()).unwrap()
}

/// One session of edits of one kind; returns how many edits it made.
fn session(plan: &mut Plan, clock: &ManualClock, rng: &mut Lcg, e: &Entities, room: usize) -> usize {
    let kind = rng.below(20);
    let len = (5 + rng.below(60)).min(room);
    let mut note = None;
    for i in 0..len {
        clock.advance_ms(1_000);
        match (kind, note) {
            (0..14, None) => {
                note = Some(plan.add_note(Compartment::Zorg, NoteKind::HomeVisit, "H").unwrap());
            }
            (0..14, Some(note)) => {
                plan.edit_note_text(Compartment::Zorg, note, i, 0, "a").unwrap();
            }
            (14..17, _) if i % 2 == 0 => {
                let status = ActionStatus::ALL[rng.below(ActionStatus::ALL.len())];
                let update = ActionUpdate { status: Some(status), ..Default::default() };
                plan.update_action(e.actions[rng.below(e.actions.len())], update).unwrap();
            }
            (14..17, _) => {
                let status = GoalStatus::ALL[rng.below(GoalStatus::ALL.len())];
                plan.set_goal_status(e.goals[rng.below(e.goals.len())], status).unwrap();
            }
            _ => {
                let member = e.members[rng.below(e.members.len())];
                let date = format!("2026-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28));
                plan.set_score(member, "financiën", &date, 1 + rng.below(5) as i64).unwrap();
            }
        }
    }
    len
}

fn measure_a(cfg: &Config, table: &mut Table) {
    let dir = scratch("cycle_bench", "review");
    let mut device = Device::init(dir.path(), &test_keystore()).unwrap();
    let (plan, entities) = regisseur_plan(&mut device);
    device.mark_reviewed(&plan).unwrap();
    let file = device.export_changes(&plan, PASSPHRASE).unwrap();
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let mut workers = [worker_plan(&file, 2, &clock), worker_plan(&file, 3, &clock)];
    let marked = workers[0].heads();
    let mut rng = Lcg(7);
    let mut made = 0;
    eprintln!("a: {} edits by two workers…", cfg.edits);
    while made < cfg.edits {
        let worker = &mut workers[rng.below(2)];
        made += session(worker, &clock, &mut rng, &entities, cfg.edits - made);
    }
    for worker in &workers {
        let docs =
            worker.held_compartments().into_iter().map(|c| (c, worker.doc(c).unwrap().save())).collect();
        let file = eenplan_core::transfer::seal(plan, docs, PASSPHRASE).unwrap();
        device.import_changes(&file, PASSPHRASE).unwrap();
    }
    // The same documents as a plan in memory, for the pure history.
    let mut merged = worker_plan(&file, 1, &clock);
    for worker in &workers {
        for c in worker.held_compartments() {
            merged.merge_document(c, worker.doc(c).unwrap().clone()).unwrap();
        }
    }

    let mut device_times = Vec::new();
    let mut pure_times = Vec::new();
    let mut shown = (0, 0, 0);
    for rep in 0..cfg.reps {
        let started = Instant::now();
        let review = device.review(&plan).unwrap();
        device_times.push(started.elapsed());
        let started = Instant::now();
        let history = review::history(&merged, &marked, MAX_LINES).unwrap();
        pure_times.push(started.elapsed());
        let changes = review.lines.iter().map(|l| l.changes).sum::<usize>();
        shown = (review.lines.len(), review.left_out, changes);
        assert_eq!(history.lines.len(), review.lines.len());
        eprintln!("a: rep {rep}: {} / {}", secs(device_times[rep]), secs(pure_times[rep]));
    }
    let (lines, left_out, changes) = shown;
    assert!(lines <= MAX_LINES && changes <= cfg.edits, "{lines} lines standing for {changes} changes");
    assert!(left_out > 0 || changes == cfg.edits, "without a cap the lines stand for every edit");
    table.section(&format!(
        "a. review of a plan with {} edits since the last mark ({lines} lines for {changes} changes, {left_out} older lines left out)",
        cfg.edits
    ));
    for (label, times) in [("Device::review", &device_times), ("review::history (no store)", &pure_times)] {
        let m = median(times);
        table.row(
            label,
            secs(m),
            format!("target {}", secs(TARGET_REVIEW)),
            ratio(m.as_secs_f64(), TARGET_REVIEW.as_secs_f64()),
        );
    }
}

// --- b. agenda across 40 plans ------------------------------------------------------------

#[path = "cycle_bench/agenda.rs"]
mod agenda;

fn measure_b(cfg: &Config, table: &mut Table) {
    agenda::measure(cfg.reps, cfg.plans, table);
}

// -------------------------------------------------------------------------------------------

const FOOTER: &str = "\
a: the regisseur's device marked the plan reviewed, then received the workers' edits by \
transfer file; Device::review includes reading the marks from the store and naming people. \
Lines are collapsed (a note typed keystroke by keystroke is one line) and capped at 500, \
the newest kept.";

fn main() {
    let cfg = Config::from_args();
    eprintln!("cycle_bench {} ({cfg:?})", if cfg.quick { "--quick" } else { "full" });
    run("cycle_bench", cfg.quick, &cfg, &cfg.only, &[('a', measure_a), ('b', measure_b)], FOOTER);
}
