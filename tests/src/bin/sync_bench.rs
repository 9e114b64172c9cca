#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `sync_bench`: what sync costs, end to end, against a real `eenplan-server` process, with
//! the real `eenplan-admin` CLI and devices with real stores.
//!
//! ```text
//! cargo build --workspace --release
//! target/release/sync_bench            # full: P=40, E=10,000, 50 devices; ~12 min on 2 cores
//! target/release/sync_bench --quick    # small: P=4, E=500, 10 devices; ~10 s
//! ```
//!
//! Options: `--only a,b,c` runs some measures; `--plans N`, `--edits N`, `--devices N`,
//! `--pushes N`, `--runs N` override the sizes. Progress goes to stderr, the table to stdout.
//!
//! a. **Bytes on the wire for one small edit.** Device A sets one action's status, pushes;
//!    device B pulls. Both were in steady state before (certificates cached, keys held).
//!    Counted: the request and response bodies of every HTTP call of both syncs
//!    (`SyncReport::bytes_up/bytes_down`, the session handshake included) and, from the
//!    server's `/metrics`, the `/v1/sync` bodies alone. Baseline: automerge's own sync
//!    protocol (`automerge::sync`) on the very same document (the basis compartment, exported
//!    from device A), in memory, in three situations: (i) one session whose sync state is kept,
//!    (ii) a reconnect with the state persisted (`State::encode`/`decode`), (iii) a reconnect
//!    with fresh state.
//!    Measured (`--quick`, 2026-12-04): 764 B before issue 13's cuts, 665 B after (bundle
//!    format 2 with a derived nonce and a tighter header, no commit messages, the ack list
//!    left out when every push was taken), 2 HTTP requests. What remains: A's bundle ≈ 281 B
//!    (header 51, automerge change ≈ 150, tag 16, signature 64) crosses twice; the CBOR of
//!    both requests and answers (cursors, policy and audit key versions, page size) ≈ 100 B.
//!    Second pass (same session, main's binaries vs these): 665 → 596 B, still 2 HTTP
//!    requests: the author's own automerge changes are packed (no actor id, magic or
//!    checksum; rebuilt by the receiver under the signed author, −25 B per crossing) and a
//!    push leaves the author id out (the server puts the session's device back, −16 B).
//! b. **Cold start.** A newly enrolled device whose user takes part in P plans of E automerge
//!    changes of history each (spread over the plan's four compartments; one creator device
//!    typed them and synced every 1,000, and added the user to each plan's membership chain):
//!    time from its first `sync()` until every plan has been `read`.
//!    Measured (full, 2026-12-04): 22.4 s, 8.26 MB down = 1.51× `save()`; 9.8 s once each
//!    received document is read once (issue 13, item 4); in a later session on a busier
//!    machine, 12.43 s → 11.09 s (0.89×) once a snapshot and its tail are checked once and
//!    plans merge on several cores, bytes unchanged at 1.51× (snapshots 0.99×, witnesses
//!    0.21×, tail bundles 0.21×, membership chains 0.07×, envelopes 0.04×); see ARCHITECTURE.
//!    Session start against the merged result (packed changes included), same session on a
//!    quiet machine (2026-12-05): 8.40 s → 3.91 s (0.47×; 1.30× the 3 s target, 1.24×
//!    `Automerge::load` of the same documents), bytes 8.22 MB (1.51×) → 7.76 MB (1.43×).
//!    Third pass (judging memo, `save()` on the merge threads; 2026-12-05, machine shared
//!    with other benchmarks, load average 4–6): 7.07 s → 6.56 s (0.93×), 1.72× → 1.60×
//!    `Automerge::load` (4.10 s in both runs), bytes unchanged at 1.42×. Fourth pass (an
//!    entity's fields read in one pass over its map; quiet machine, alternating twice):
//!    3.41 / 3.34 s → 2.37 / 2.36 s, 1.34× / 1.19× → 1.01× / 0.99× `Automerge::load`. The line
//!    `b: run N: timed part done` on stderr marks the end of the timed part, for a profiler
//!    attached to this process (`perf record -p`).
//!    The device is approved and the creator's device has sealed the keys for it
//!    before the clock starts. Baselines: `Automerge::load` of the same documents, and
//!    automerge's sync protocol from an empty document, both in memory.
//! c. **Server throughput.** N devices (threads, each its own store) that all take part in a
//!    few plans push small edits as fast as they can; pushes accepted per second (from the
//!    server's `/metrics`), the server's CPU time per push and its peak RSS (`VmHWM`).
//!
//! Every figure is a median over repeated runs unless the table says otherwise.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use automerge::Automerge;
use automerge::sync::{Message, State, SyncDoc};
use eenplan_core::clock::SystemClock;
use eenplan_core::plan::{
    ActionStatus, ActionUpdate, Compartment, GoalStatus, NewAction, NewGoal, NewMember, NoteKind, Plan,
    PlanError, PlanView,
};
use eenplan_core::sync::{ShareOutcome, SyncError, SyncReport};
use eenplan_core::{CoreError, Device, DeviceId, EntityId, PlanId};
use eenplan_tests::bench::{
    Args, Table, add_report, bytes, cores, median, percentile, policy_where_reading_all, ratio, run, scratch,
    secs,
};
use eenplan_tests::network::{Admin, Server, device_keystore};

const TRANSFER_PASSPHRASE: &str = "sync-bench transfer";
const ORG: &str = "Wijkteam Noord";
const ROLE: &str = "wijkteam";

// --- configuration -----------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Config {
    quick: bool,
    only: Vec<char>,
    /// (a) repetitions of the one-edit syncs and of each automerge baseline.
    a_runs: usize,
    /// (a) edits of history in the plan A and B share.
    a_history: usize,
    /// (b) plans the new device is assigned, and edits of history in each.
    b_plans: usize,
    b_edits: usize,
    /// (b) new devices timed, one after the other.
    b_runs: usize,
    /// (c) concurrent devices, pushes each, plans they all share.
    c_devices: usize,
    c_pushes: usize,
    c_plans: usize,
}

impl Config {
    fn from_args() -> Config {
        let args = Args::from_env(
            "sync_bench [--quick] [--only a,b,c] [--plans N] [--edits N] [--devices N] [--pushes N] [--runs N]",
        );
        let number = |flag: &str, default: usize| args.number(flag, default);
        let quick = args.has("--quick");
        let only = args.only(&['a', 'b', 'c']);
        let edits = number("--edits", if quick { 500 } else { 10_000 });
        Config {
            quick,
            only,
            a_runs: number("--runs", if quick { 5 } else { 15 }),
            a_history: edits,
            b_plans: number("--plans", if quick { 4 } else { 40 }),
            b_edits: edits,
            b_runs: 3,
            c_devices: number("--devices", if quick { 10 } else { 50 }),
            c_pushes: number("--pushes", if quick { 5 } else { 40 }),
            c_plans: if quick { 2 } else { 4 },
        }
    }
}

// --- the network: a server process, the admin CLI, devices ------------------------------

/// What the benchmark reads off the harness's server process.
trait Probe {
    fn pid(&self) -> u32;
    fn metrics(&self) -> Metrics;
    fn peak_rss_kib(&self) -> Option<u64>;
    fn cpu_time(&self) -> Option<Duration>;
}

impl Probe for Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's `/metrics`, by sample name (labels included).
    fn metrics(&self) -> Metrics {
        let address = self.address();
        let mut stream = TcpStream::connect(&address).expect("connect for /metrics");
        write!(
            stream,
            "GET /metrics HTTP/1.0\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\r\n",
            self.metrics_token.as_deref().unwrap_or_default()
        )
        .expect("send");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("read /metrics");
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        Metrics(
            body.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.rsplit_once(' '))
                .filter_map(|(name, v)| v.parse().ok().map(|v| (name.to_owned(), v)))
                .collect(),
        )
    }

    /// Peak resident set size in KiB (`VmHWM`).
    fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// User plus system CPU time so far.
    fn cpu_time(&self) -> Option<Duration> {
        cpu_time_of(&self.pid().to_string())
    }
}

/// User plus system CPU time of a process (`self` for this one), all its threads.
fn cpu_time_of(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at ")".
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

#[derive(Debug, Clone, Default)]
struct Metrics(HashMap<String, f64>);

impl Metrics {
    fn get(&self, name: &str) -> f64 {
        self.0.get(name).copied().unwrap_or(0.0)
    }

    fn since(&self, before: &Metrics, name: &str) -> u64 {
        (self.get(name) - before.get(name)).max(0.0) as u64
    }

    /// Requests a device makes in a sync: the handshake, `/v1/me`, certificates, the syncs.
    fn device_requests_since(&self, before: &Metrics) -> u64 {
        ["auth", "device", "sync"]
            .iter()
            .map(|class| self.since(before, &format!("eenplan_requests_total{{class=\"{class}\"}}")))
            .sum()
    }

    fn sync_bodies_since(&self, before: &Metrics) -> u64 {
        self.since(before, "eenplan_sync_bytes_in_total") + self.since(before, "eenplan_sync_bytes_out_total")
    }
}

struct Network {
    dir: tempfile::TempDir,
    // Dropped before `dir`: the server is killed before its files go.
    server: Server,
    admin: Admin,
}

impl Network {
    fn start(label: &str, users: &[&str]) -> Network {
        let dir = scratch("sync-bench", label);
        let server = Server::start(&dir.path().join("server"));
        let admin = Admin::init(&dir.path().join("admin"), &server);
        // Every plan here spans all four compartments.
        let policy = dir.path().join("policy.toml");
        std::fs::write(&policy, policy_where_reading_all(ROLE)).expect("write the policy file");
        admin.run(&["policy", "set", policy.to_str().expect("a UTF-8 path")]);
        admin.run(&["org", "add", ORG]);
        let network = Network { dir, server, admin };
        for user in users {
            network.add_user(user);
        }
        network
    }

    fn add_user(&self, name: &str) {
        self.admin.run(&["user", "add", "--org", ORG, "--name", name, "--role", ROLE]);
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A device enrolled for `user` and approved; `first_sync` also runs its first sync
    /// (which fetches its own certificate).
    fn device(&self, name: &str, user: &str, first_sync: bool) -> Device {
        let mut device = Device::init(&self.path(name), &device_keystore()).expect("device init");
        let code = self.admin.run(&["device", "enrol", "--user", user]);
        device.enrol(&self.server.url, &code, "Bench", eenplan_core::sync::Platform::Desktop).expect("enrol");
        self.admin.run(&["device", "approve", "--code", &code]);
        if first_sync {
            device.sync().expect("first sync");
        }
        device
    }
}

/// Syncs until the server has nothing more (a long pull may need more rounds than one
/// `sync()` allows); the reports of all calls, summed.
fn sync_fully(device: &mut Device) -> SyncReport {
    let mut total = SyncReport::default();
    for _ in 0..64 {
        match device.sync() {
            Ok(report) => {
                add_report(&mut total, &report);
                return total;
            }
            Err(CoreError::Sync(SyncError::TooManyRounds(rounds))) => total.rounds += rounds,
            Err(e) => panic!("sync: {e}"),
        }
    }
    panic!("the device never caught up")
}

fn wire(report: &SyncReport) -> u64 {
    report.bytes_up + report.bytes_down
}

// --- a plan's history: typed edits as workers make them ---------------------------------

/// SplitMix64: the same history shape on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const WORDS: &[&str] = &[
    "moeder",
    "vader",
    "zoon",
    "dochter",
    "gesprek",
    "gehad",
    "over",
    "de",
    "het",
    "een",
    "school",
    "afspraak",
    "gemaakt",
    "met",
    "schuldhulp",
    "budget",
    "huur",
    "achterstand",
    "wijkteam",
    "gezin",
    "kinderen",
    "thuis",
    "rustig",
    "gespannen",
    "volgende",
    "week",
    "bellen",
    "mail",
    "gestuurd",
    "zorgen",
    "veiligheid",
    "goed",
    "niet",
    "wel",
    "nog",
    "geen",
    "reactie",
    "intake",
    "gepland",
    "huisarts",
    "overzicht",
    "brieven",
    "samen",
    "doorgenomen",
    "betalingsregeling",
    "netwerk",
    "oma",
    "helpt",
    "sportclub",
    "evaluatie",
];
const DOMAINS: &[&str] =
    &["financiën", "huisvesting", "huiselijke relaties", "werk & opleiding", "sociaal netwerk"];
const ACTION_STATUSES: [ActionStatus; 4] =
    [ActionStatus::InProgress, ActionStatus::Done, ActionStatus::Cancelled, ActionStatus::Todo];
const GOAL_STATUSES: [GoalStatus; 3] = [GoalStatus::InProgress, GoalStatus::Achieved, GoalStatus::Open];
/// A note is closed and a new one begun once it is this long (notes hold at most 20,000).
const NOTE_CHARS: usize = 2_000;

/// A status other than the action's current one: automerge makes no change for a put of the
/// value a field already has.
fn other_status(view: &PlanView, action: EntityId, k: usize) -> ActionStatus {
    let current = view.actions.iter().find(|a| a.id == action).map_or("", |a| a.status.as_str());
    (0..ACTION_STATUSES.len())
        .map(|j| ACTION_STATUSES[(k + j) % ACTION_STATUSES.len()])
        .find(|s| s.as_str() != current)
        .expect("four statuses")
}

fn words(rng: &mut Rng, n: usize) -> String {
    (0..n).map(|_| *rng.pick(WORDS)).collect::<Vec<_>>().join(" ")
}

fn date(rng: &mut Rng) -> String {
    format!("2026-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28))
}

/// The entities of a plan that later edits touch, and the notes being typed.
#[derive(Debug, Clone)]
struct Fixture {
    members: Vec<EntityId>,
    goals: Vec<EntityId>,
    actions: Vec<EntityId>,
    /// (compartment, note, length in characters), one open note per compartment.
    notes: Vec<(Compartment, EntityId, usize)>,
    /// Automerge changes in the plan's history (set by `build_plan`).
    edits: usize,
}

impl Fixture {
    /// The intake: members, goals, a few actions each, a note in every compartment.
    fn intake(p: &mut Plan, actions_per_goal: usize) -> Result<Fixture, PlanError> {
        let mut f = Fixture { members: vec![], goals: vec![], actions: vec![], notes: vec![], edits: 0 };
        for (name, relation) in [("Sandra", "moeder"), ("Mark", "vader"), ("Daan", "zoon")] {
            f.members.push(p.add_member(NewMember {
                name: name.into(),
                relation: relation.into(),
                birth_date: None,
                parental_authority: relation != "zoon",
            })?);
        }
        for (k, domain) in DOMAINS.iter().take(4).enumerate() {
            let goal =
                p.add_goal(NewGoal { domain: (*domain).into(), title: format!("Doel {k}: {domain}") })?;
            f.goals.push(goal);
            for step in 0..actions_per_goal {
                f.actions.push(p.add_action(NewAction {
                    goal,
                    title: format!("Stap {step} voor doel {k}"),
                    owner_org: ORG.into(),
                    owner_user: None,
                    due: Some("2026-06-01".into()),
                })?);
            }
        }
        for compartment in Compartment::ALL {
            let kind = if compartment == Compartment::Basis { NoteKind::HomeVisit } else { NoteKind::Note };
            let text = format!("Eerste notitie in {compartment}");
            let id = p.add_note(compartment, kind, &text)?;
            f.notes.push((compartment, id, text.chars().count()));
        }
        Ok(f)
    }

    /// One typed edit (one automerge change), drawn from a mix in which typing into notes and
    /// setting registers dominate, as in real use.
    fn step(&mut self, p: &mut Plan, rng: &mut Rng) -> Result<(), PlanError> {
        match rng.below(100) {
            0..45 => {
                let slot = rng.below(self.notes.len());
                let (compartment, note, len) = self.notes[slot];
                let n = 1 + rng.below(2);
                let burst = format!(" {}", words(rng, n));
                if len + burst.chars().count() > NOTE_CHARS {
                    let text = words(rng, 6);
                    let id = p.add_note(compartment, NoteKind::Note, &text)?;
                    self.notes[slot] = (compartment, id, text.chars().count());
                } else {
                    p.edit_note_text(compartment, note, len, 0, &burst)?;
                    self.notes[slot].2 += burst.chars().count();
                }
            }
            45..60 => {
                let action = *rng.pick(&self.actions);
                let status = *rng.pick(&ACTION_STATUSES);
                p.update_action(action, ActionUpdate { status: Some(status), ..Default::default() })?;
            }
            60..67 => {
                let action = *rng.pick(&self.actions);
                let due = date(rng);
                p.update_action(action, ActionUpdate { due: Some(Some(due)), ..Default::default() })?;
            }
            67..77 => {
                let member = *rng.pick(&self.members);
                let domain = *rng.pick(DOMAINS);
                let on = date(rng);
                p.set_score(member, domain, &on, 1 + rng.below(5) as i64)?;
            }
            77..83 => {
                let goal = *rng.pick(&self.goals);
                p.set_goal_status(goal, *rng.pick(&GOAL_STATUSES))?;
            }
            83..87 => {
                let goal = *rng.pick(&self.goals);
                let title = words(rng, 4);
                p.set_goal_title(goal, &title)?;
            }
            87..92 => {
                let compartment = *rng.pick(&Compartment::ALL);
                let text = words(rng, 8);
                p.add_note(compartment, NoteKind::Note, &text)?;
            }
            92..94 => {
                let text = words(rng, 10);
                p.add_agreement(&text)?;
            }
            94..97 => {
                let goal = *rng.pick(&self.goals);
                let title = words(rng, 3);
                let action = p.add_action(NewAction {
                    goal,
                    title,
                    owner_org: ORG.into(),
                    owner_user: None,
                    due: None,
                })?;
                self.actions.push(action);
            }
            _ => {
                let danger = words(rng, 6);
                let goal = words(rng, 6);
                p.add_safety_item(&danger, &goal)?;
            }
        }
        Ok(())
    }
}

/// Creates a plan on `device` and types `edits` edits of history into it, `batch` edits per
/// durable `Device::edit` and a sync every `sync_every` edits (so the server's log holds the
/// history as a realistic number of bundles).
fn build_plan(
    device: &mut Device,
    family: &str,
    edits: usize,
    actions_per_goal: usize,
    rng: &mut Rng,
) -> (PlanId, Fixture) {
    const BATCH: usize = 250;
    const SYNC_EVERY: usize = 1_000;
    let plan = device.create_plan(family).expect("create plan");
    let mut fixture = device.edit(&plan, |p| Fixture::intake(p, actions_per_goal)).expect("intake");
    // Count automerge changes, not calls: a typed edit that sets the value a field already
    // has makes no change. The outbox counts what this device wrote and has not pushed.
    let pending = |device: &Device| device.pending_changes().expect("outbox") as usize;
    let mut pushed = 0;
    loop {
        let unsynced = pending(device);
        if pushed + unsynced >= edits {
            break;
        }
        if unsynced >= SYNC_EVERY {
            sync_fully(device);
            pushed += unsynced;
            continue;
        }
        let n = BATCH.min(edits - pushed - unsynced);
        device
            .edit(&plan, |p| {
                for _ in 0..n {
                    fixture.step(p, rng)?;
                }
                Ok(())
            })
            .expect("history edits");
    }
    pushed += pending(device);
    sync_fully(device);
    fixture.edits = pushed;
    (plan, fixture)
}

/// The plan's documents exactly as `device` holds them, through a transfer file.
fn documents(device: &mut Device, plan: &PlanId) -> Vec<(Compartment, Vec<u8>)> {
    let file = device.export_changes(plan, TRANSFER_PASSPHRASE).expect("export");
    eenplan_core::transfer::open(&file, TRANSFER_PASSPHRASE).expect("open transfer").docs
}

// --- automerge's own sync protocol, the baseline ----------------------------------------

#[derive(Debug, Clone, Copy, Default)]
struct Exchange {
    bytes: usize,
    messages: usize,
    round_trips: usize,
}

/// Runs the protocol to quiescence, A speaking first; every message goes through its wire
/// encoding. A round trip is one A → B message with B's answer.
fn automerge_sync(a: &mut Automerge, sa: &mut State, b: &mut Automerge, sb: &mut State) -> Exchange {
    let mut exchange = Exchange::default();
    for _ in 0..1000 {
        let to_b = a.generate_sync_message(sa).map(Message::encode);
        if let Some(bytes) = &to_b {
            exchange.bytes += bytes.len();
            exchange.messages += 1;
            b.receive_sync_message(sb, Message::decode(bytes).expect("decode")).expect("B receives");
        }
        let to_a = b.generate_sync_message(sb).map(Message::encode);
        if let Some(bytes) = &to_a {
            exchange.bytes += bytes.len();
            exchange.messages += 1;
            a.receive_sync_message(sa, Message::decode(bytes).expect("decode")).expect("A receives");
        }
        if to_b.is_none() && to_a.is_none() {
            assert_eq!(a.get_heads(), b.get_heads(), "automerge sync did not converge");
            return exchange;
        }
        exchange.round_trips += 1;
    }
    panic!("automerge sync did not settle")
}

/// `doc` with one typed edit by `actor`, made through the same `Plan` API the devices use.
fn edited(
    doc: &Automerge,
    plan: PlanId,
    actor: DeviceId,
    edit: impl FnOnce(&mut Plan) -> Result<(), PlanError>,
) -> Automerge {
    let mut p =
        Plan::from_documents(plan, actor, vec![(Compartment::Basis, doc.clone())], Arc::new(SystemClock))
            .expect("plan from document");
    edit(&mut p).expect("edit");
    p.doc(Compartment::Basis).expect("basis").clone()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum StateMode {
    KeptInSession,
    Persisted,
    Fresh,
}

/// One automerge baseline run: both peers hold `doc`, A (and, if `both`, B) make one edit,
/// then they sync in the given situation. Only the exchange after the edits is counted.
fn automerge_run(
    doc: &Automerge,
    plan: PlanId,
    (actor_a, actor_b): (DeviceId, DeviceId),
    (action_a, action_b): (EntityId, EntityId),
    mode: StateMode,
    both: bool,
    run: usize,
) -> Exchange {
    let mut a = doc.clone();
    let mut b = doc.clone();
    let mut sa = State::new();
    let mut sb = State::new();
    if mode != StateMode::Fresh {
        // The session (or the previous one) in which they last agreed.
        automerge_sync(&mut a, &mut sa, &mut b, &mut sb);
    }
    if mode == StateMode::Persisted {
        sa = State::decode(&sa.encode()).expect("decode state");
        sb = State::decode(&sb.encode()).expect("decode state");
    }
    a = edited(&a, plan, actor_a, |p| {
        let status = other_status(&p.view()?, action_a, run);
        p.update_action(action_a, ActionUpdate { status: Some(status), ..Default::default() })
    });
    if both {
        let due = format!("2027-01-{:02}", 1 + run % 28);
        b = edited(&b, plan, actor_b, |p| {
            p.update_action(action_b, ActionUpdate { due: Some(Some(due)), ..Default::default() })
        });
    }
    automerge_sync(&mut a, &mut sa, &mut b, &mut sb)
}

// --- statistics and the table -------------------------------------------------------------

// --- a. one small edit on the wire --------------------------------------------------------

/// Two devices in steady state on one plan: A made its history, B reads it. Fields drop in
/// order: the devices before the network's server and files.
struct Pair {
    a: Device,
    b: Device,
    plan: PlanId,
    fixture: Fixture,
    /// An idle sync's wire bytes, the mean of A's and B's: the session handshake.
    idle: f64,
    net: Network,
}

fn steady_pair(cfg: &Config) -> Pair {
    let setup = Instant::now();
    let net = Network::start("a", &["Anna", "Bram"]);
    let mut a = net.device("a", "Anna", true);
    let mut b = net.device("b", "Bram", true);
    let mut rng = Rng(0xa);
    let (plan, fixture) = build_plan(&mut a, "Jansen", cfg.a_history, 2, &mut rng);
    a.add_participant(&plan, "Bram", ROLE).expect("add Bram");
    sync_fully(&mut a); // seals the keys for Bram's device
    sync_fully(&mut b);
    assert!(b.read(&plan).is_ok(), "B did not get the plan");
    // Steady state: a sync each with nothing to do, so that no certificate, envelope or key
    // request is left to fetch.
    for _ in 0..2 {
        sync_fully(&mut a);
        sync_fully(&mut b);
    }
    let idle_a = sync_fully(&mut a);
    let idle_b = sync_fully(&mut b);
    assert_eq!(idle_a.received_bundles + idle_b.received_bundles, 0);
    eprintln!("a: setup {} (history {} edits)", secs(setup.elapsed()), fixture.edits);
    let idle = (wire(&idle_a) + wire(&idle_b)) as f64 / 2.0;
    Pair { a, b, plan, fixture, idle, net }
}

/// What the runs of (a) measured through the server, one entry per run.
#[derive(Debug, Default)]
struct WireRuns {
    one_total: Vec<u64>,
    one_bodies: Vec<u64>,
    one_requests: Vec<u64>,
    /// `/v1/sync` push request, push response, pull request, pull response.
    one_parts: Vec<[u64; 4]>,
    both_total: Vec<u64>,
    both_bodies: Vec<u64>,
    both_requests: Vec<u64>,
}

impl Pair {
    fn actions(&self) -> (EntityId, EntityId) {
        (self.fixture.actions[0], self.fixture.actions[1])
    }

    /// One edit, A → B: A pushes, B pulls.
    fn one_edit(&mut self, run: usize, runs: &mut WireRuns) {
        let (action_a, _) = self.actions();
        let status = other_status(&self.a.read(&self.plan).expect("read"), action_a, run);
        self.a
            .edit(&self.plan, |p| {
                p.update_action(action_a, ActionUpdate { status: Some(status), ..Default::default() })
            })
            .expect("edit");
        let before = self.net.server.metrics();
        let push = self.a.sync().expect("push");
        let middle = self.net.server.metrics();
        let pull = self.b.sync().expect("pull");
        let after = self.net.server.metrics();
        runs.one_parts.push([
            middle.since(&before, "eenplan_sync_bytes_in_total"),
            middle.since(&before, "eenplan_sync_bytes_out_total"),
            after.since(&middle, "eenplan_sync_bytes_in_total"),
            after.since(&middle, "eenplan_sync_bytes_out_total"),
        ]);
        assert_eq!((push.pushed_bundles, pull.received_bundles, pull.applied_changes), (1, 1, 1));
        assert!(push.refused.is_empty() && pull.refused.is_empty());
        runs.one_total.push(wire(&push) + wire(&pull));
        runs.one_bodies.push(after.sync_bodies_since(&before));
        runs.one_requests.push(after.device_requests_since(&before));
    }

    /// One edit on each side: A pushes, B pushes and pulls, A pulls.
    fn one_edit_each_side(&mut self, run: usize, runs: &mut WireRuns) {
        let (action_a, action_b) = self.actions();
        let due = format!("2027-02-{:02}", 1 + run % 28);
        let status = other_status(&self.a.read(&self.plan).expect("read"), action_a, run);
        self.a
            .edit(&self.plan, |p| {
                p.update_action(action_a, ActionUpdate { status: Some(status), ..Default::default() })
            })
            .expect("edit");
        self.b
            .edit(&self.plan, |p| {
                p.update_action(action_b, ActionUpdate { due: Some(Some(due)), ..Default::default() })
            })
            .expect("edit");
        let before = self.net.server.metrics();
        let r1 = self.a.sync().expect("A push");
        let r2 = self.b.sync().expect("B push and pull");
        let r3 = self.a.sync().expect("A pull");
        let after = self.net.server.metrics();
        assert_eq!((r2.applied_changes, r3.applied_changes), (1, 1));
        runs.both_total.push(wire(&r1) + wire(&r2) + wire(&r3));
        runs.both_bodies.push(after.sync_bodies_since(&before));
        runs.both_requests.push(after.device_requests_since(&before));
    }
}

/// The automerge baselines' situations, in the table's order.
const MODES: [(StateMode, &str); 3] = [
    (StateMode::KeptInSession, "(i) kept state, same session"),
    (StateMode::Persisted, "(ii) reconnect, persisted state"),
    (StateMode::Fresh, "(iii) reconnect, fresh state"),
];

/// One baseline's medians: bytes, messages, round trips.
type Baseline = (f64, usize, usize);

/// The baselines on the very same basis document, in memory: per mode in [`MODES`], A's edit
/// only and one edit each side; and the document's number of changes.
fn automerge_baselines(cfg: &Config, pair: &mut Pair) -> (Vec<Baseline>, Vec<Baseline>, usize) {
    let basis = |docs: Vec<(Compartment, Vec<u8>)>| {
        let saved = docs.into_iter().find(|(c, _)| *c == Compartment::Basis).expect("basis").1;
        Automerge::load(&saved).expect("load basis")
    };
    let doc = basis(documents(&mut pair.a, &pair.plan));
    assert_eq!(doc.get_heads(), basis(documents(&mut pair.b, &pair.plan)).get_heads(), "A and B differ");
    let actors = (pair.a.device_id(), pair.b.device_id());
    let (plan, actions) = (pair.plan, pair.actions());
    let baseline = |mode: StateMode, both: bool| -> Baseline {
        let runs: Vec<Exchange> =
            (0..cfg.a_runs).map(|run| automerge_run(&doc, plan, actors, actions, mode, both, run)).collect();
        let m = |f: fn(&Exchange) -> usize| median(&runs.iter().map(f).collect::<Vec<_>>());
        (m(|e| e.bytes) as f64, m(|e| e.messages), m(|e| e.round_trips))
    };
    let one = MODES.iter().map(|(m, _)| baseline(*m, false)).collect();
    let both = MODES.iter().map(|(m, _)| baseline(*m, true)).collect();
    (one, both, doc.get_changes(&[]).len())
}

/// The rows of A's edit alone against the target and the baselines.
fn one_edit_rows(table: &mut Table, runs: &WireRuns, idle: f64, one: &[Baseline]) {
    let one_total_m = median(&runs.one_total) as f64;
    let one_bodies_m = median(&runs.one_bodies) as f64;
    table.row(
        "A push + B pull, all HTTP bodies (incl. 2 session handshakes)",
        bytes(one_total_m),
        "< 600 B",
        ratio(one_total_m, 600.0),
    );
    table.row(
        "A push + B pull, /v1/sync bodies only",
        bytes(one_bodies_m),
        "< 600 B",
        ratio(one_bodies_m, 600.0),
    );
    table.row("  of which: session handshake per sync (idle sync total)", bytes(idle), "", "");
    let part = |i: usize| median(&runs.one_parts.iter().map(|p: &[u64; 4]| p[i]).collect::<Vec<_>>());
    table.row(
        "  /v1/sync: push request + response, pull request + response",
        format!("{} + {}, {} + {} B", part(0), part(1), part(2), part(3)),
        "",
        "",
    );
    table.row("  HTTP requests (= round trips), both syncs", median(&runs.one_requests).to_string(), "", "");
    for ((_, name), (b_bytes, msgs, trips)) in MODES.iter().zip(one) {
        table.row(
            format!("  vs automerge sync {name}, A's edit only"),
            "",
            format!("{} ({msgs} msgs, {trips} RT)", bytes(*b_bytes)),
            format!("{} / {}", ratio(one_total_m, *b_bytes), ratio(one_bodies_m, *b_bytes)),
        );
    }
}

/// The rows of one edit on each side against the baselines.
fn both_edits_rows(table: &mut Table, runs: &WireRuns, both: &[Baseline]) {
    let both_total_m = median(&runs.both_total) as f64;
    let both_bodies_m = median(&runs.both_bodies) as f64;
    table.row(
        "one edit each side (A push, B push+pull, A pull), all HTTP bodies",
        bytes(both_total_m),
        "",
        "",
    );
    table.row("one edit each side, /v1/sync bodies only", bytes(both_bodies_m), "", "");
    table.row(
        "  HTTP requests (= round trips), three syncs",
        median(&runs.both_requests).to_string(),
        "",
        "",
    );
    for ((_, name), (b_bytes, msgs, trips)) in MODES.iter().zip(both) {
        table.row(
            format!("  vs automerge sync {name}, one edit each side"),
            "",
            format!("{} ({msgs} msgs, {trips} RT)", bytes(*b_bytes)),
            format!("{} / {}", ratio(both_total_m, *b_bytes), ratio(both_bodies_m, *b_bytes)),
        );
    }
}

fn measure_a(cfg: &Config, table: &mut Table) {
    let mut pair = steady_pair(cfg);
    let mut runs = WireRuns::default();
    for run in 0..cfg.a_runs {
        pair.one_edit(run, &mut runs);
        pair.one_edit_each_side(run, &mut runs);
    }
    assert_eq!(pair.a.read(&pair.plan).expect("read A"), pair.b.read(&pair.plan).expect("read B"));
    let (one, both, changes) = automerge_baselines(cfg, &mut pair);
    table.section(&format!(
        "a. wire bytes for one small edit (action status; plan of {} edits, basis doc {} changes; median of {})",
        pair.fixture.edits, changes, cfg.a_runs
    ));
    one_edit_rows(table, &runs, pair.idle, &one);
    both_edits_rows(table, &runs, &both);
}

// --- b. cold start --------------------------------------------------------------------------

fn measure_b(cfg: &Config, table: &mut Table) {
    let setup = Instant::now();
    let net = Network::start("b", &["Regie", "Nieuw"]);
    let mut creator = net.device("creator", "Regie", true);
    // The user already works on the plans with a device of hers: the regisseur's device adds
    // her to each plan's signed membership chain, which names a user by an approved device.
    // Each timed device below is one more device of hers, enrolled later.
    drop(net.device("nieuw-first", "Nieuw", true));
    let mut rng = Rng(0xb);
    let mut plans = Vec::new();
    let mut total_edits = 0;
    for k in 0..cfg.b_plans {
        let (plan, fixture) = build_plan(&mut creator, &format!("Gezin {k}"), cfg.b_edits, 2, &mut rng);
        total_edits += fixture.edits;
        let shared = creator.add_participant(&plan, "Nieuw", ROLE).expect("share through the chain");
        assert_eq!(shared, ShareOutcome::Done, "the server took the share");
        plans.push(plan);
        if (k + 1) % 5 == 0 || k + 1 == cfg.b_plans {
            eprintln!("b: {} of {} plans built ({})", k + 1, cfg.b_plans, secs(setup.elapsed()));
        }
    }
    let setup_time = setup.elapsed();
    let bundles_in_log = net.server.metrics().get("eenplan_pushes_appended_total");

    let mut times = Vec::new();
    let mut sync_times = Vec::new();
    let mut down = Vec::new();
    let mut rounds = Vec::new();
    let mut envelopes = Vec::new();
    for run in 0..cfg.b_runs {
        let name = format!("new-{run}");
        let mut device = net.device(&name, "Nieuw", false);
        // The creator's device seals the documents' keys for the new device.
        sync_fully(&mut creator);
        let start = Instant::now();
        let report = sync_fully(&mut device);
        let synced = start.elapsed();
        for plan in &plans {
            device.read(plan).expect("read a plan");
        }
        let elapsed = start.elapsed();
        // A mark for a profiler attached to this process: the timed part ends here.
        eprintln!("b: run {}: timed part done", run + 1);
        assert!(report.refused.is_empty(), "{:?}", report.refused);
        // Keys travel on a cursor of their own, ahead of the history: each exactly once.
        assert_eq!(report.envelopes_received, plans.len() * Compartment::ALL.len());
        envelopes.push(report.envelopes_received);
        for plan in &plans {
            assert_eq!(
                device.read(plan).expect("read"),
                creator.read(plan).expect("read"),
                "the plans differ"
            );
        }
        eprintln!(
            "b: run {}: {} ({} rounds, {} bundles, {} changes, {:.1} MB down)",
            run + 1,
            secs(elapsed),
            report.rounds,
            report.received_bundles,
            report.applied_changes,
            report.bytes_down as f64 / 1e6
        );
        times.push(elapsed);
        sync_times.push(synced);
        down.push(report.bytes_down);
        rounds.push(report.rounds);
        drop(device);
        let _ = std::fs::remove_dir_all(net.path(&name));
    }

    // Baselines: the same documents in memory, no network, crypto or disk.
    let mut saved = Vec::new();
    for plan in &plans {
        saved.extend(documents(&mut creator, plan).into_iter().map(|(_, bytes)| bytes));
    }
    let saved_bytes: usize = saved.iter().map(Vec::len).sum();
    let mut loads = Vec::new();
    let mut syncs = Vec::new();
    for _ in 0..cfg.b_runs {
        let start = Instant::now();
        let docs: Vec<Automerge> = saved.iter().map(|s| Automerge::load(s).expect("load")).collect();
        loads.push(start.elapsed());
        let mut full = docs;
        let start = Instant::now();
        for doc in &mut full {
            let mut empty = Automerge::new();
            automerge_sync(doc, &mut State::new(), &mut empty, &mut State::new());
        }
        syncs.push(start.elapsed());
    }

    let t = median(&times);
    table.section(&format!(
        "b. cold start: new device, {} plans × 4 compartments, {} edits per plan ({} in all; median of {})",
        cfg.b_plans, cfg.b_edits, total_edits, cfg.b_runs
    ));
    table.row(
        "setup: creator types the history and syncs it up (once)",
        secs(setup_time),
        format!("{bundles_in_log:.0} bundles in the log"),
        "",
    );
    table.row("first sync() until every plan is read", secs(t), "", "");
    table.row("  of which sync()", secs(median(&sync_times)), format!("{} sync rounds", median(&rounds)), "");
    table.row(
        "  key envelopes received (each once, ahead of the history)",
        median(&envelopes).to_string(),
        format!("{} documents", plans.len() * Compartment::ALL.len()),
        ratio(median(&envelopes) as f64, (plans.len() * Compartment::ALL.len()) as f64),
    );
    table.row(
        "  bytes down",
        bytes(median(&down) as f64),
        format!("{} as automerge save()", bytes(saved_bytes as f64)),
        ratio(median(&down) as f64, saved_bytes as f64),
    );
    table.row("  per plan", secs(t / cfg.b_plans.max(1) as u32), "", "");
    let load = median(&loads);
    let sync = median(&syncs);
    table.row(
        "  vs Automerge::load of the same docs, in memory",
        "",
        secs(load),
        ratio(t.as_secs_f64(), load.as_secs_f64()),
    );
    table.row(
        "  vs automerge sync from empty, in memory",
        "",
        secs(sync),
        ratio(t.as_secs_f64(), sync.as_secs_f64()),
    );
}

// --- c. server throughput ---------------------------------------------------------------

/// A shared plan and the actions of it that the pushing devices edit.
type SharedPlan = (PlanId, Vec<EntityId>);

/// The network of (c): users, the devices' directories (closed; each thread opens its own),
/// and the plans every user takes part in.
fn throughput_network(cfg: &Config) -> (Network, Vec<PathBuf>, Vec<SharedPlan>) {
    let users: Vec<String> = (0..cfg.c_devices.clamp(1, 10)).map(|k| format!("Werker {k}")).collect();
    let net = Network::start("c", &["Regie"]);
    for user in &users {
        net.add_user(user);
    }
    let mut creator = net.device("creator", "Regie", true);
    let mut rng = Rng(0xc);
    let actions_per_goal = cfg.c_devices.div_ceil(cfg.c_plans * 4).max(1);
    // Devices first: a plan's chain names a participant by an approved device's certificate.
    let mut dirs = Vec::new();
    for i in 0..cfg.c_devices {
        let name = format!("device-{i}");
        drop(net.device(&name, &users[i % users.len()], true));
        dirs.push(net.path(&name));
    }
    let mut plans = Vec::new();
    for k in 0..cfg.c_plans {
        let (plan, fixture) =
            build_plan(&mut creator, &format!("Gedeeld {k}"), 100, actions_per_goal, &mut rng);
        for user in &users {
            creator.add_participant(&plan, user, ROLE).expect("share through the chain");
        }
        plans.push((plan, fixture.actions));
    }
    sync_fully(&mut creator); // keys for every device
    (net, dirs, plans)
}

/// The plan and action device `i` edits.
fn target_of(plans: &[SharedPlan], i: usize) -> (PlanId, EntityId) {
    let (plan, actions) = &plans[i % plans.len()];
    (*plan, actions[(i / plans.len()) % actions.len()])
}

/// Every device pushes one edit and pulls everyone else's, so that all keys and all authors'
/// certificates are cached before the clock starts (steady state).
fn warm_up(dirs: &[PathBuf], plans: &[SharedPlan]) {
    for pass in 0..2 {
        for (i, dir) in dirs.iter().enumerate() {
            let mut device = Device::open(dir, &device_keystore()).expect("open device");
            sync_fully(&mut device);
            if pass == 0 {
                let (plan, action) = target_of(plans, i);
                device
                    .edit(&plan, |p| {
                        p.update_action(
                            action,
                            ActionUpdate { due: Some(Some("2026-12-31".into())), ..Default::default() },
                        )
                    })
                    .expect("warm-up edit");
                sync_fully(&mut device);
            } else {
                let idle = sync_fully(&mut device);
                assert_eq!(idle.received_bundles, 0, "{idle:?}");
                for (plan, _) in plans {
                    device.read(plan).expect("the device holds every plan");
                }
            }
        }
    }
}

/// What one pushing device saw: latencies of its syncs, failed syncs, changes left unsent.
type Pushed = (Vec<Duration>, usize, u64);

/// A device's thread: after `barrier`, `pushes` edits of `action`, each synced at once.
fn pusher(
    dir: PathBuf,
    (plan, action): (PlanId, EntityId),
    barrier: Arc<Barrier>,
    pushes: usize,
) -> std::thread::JoinHandle<Pushed> {
    std::thread::spawn(move || {
        let mut device = Device::open(&dir, &device_keystore()).expect("open device");
        device.open_plan(&plan).expect("open plan");
        let mut latencies = Vec::new();
        let mut errors = 0usize;
        barrier.wait();
        for k in 0..pushes {
            // A due date this action never had: every push is a real change.
            let due = format!("2027-{:02}-{:02}", 1 + (k / 28) % 12, 1 + k % 28);
            device
                .edit(&plan, |p| {
                    p.update_action(action, ActionUpdate { due: Some(Some(due)), ..Default::default() })
                })
                .expect("edit");
            let start = Instant::now();
            match device.sync() {
                Ok(_) => latencies.push(start.elapsed()),
                Err(_) => errors += 1,
            }
        }
        // Whatever a failed sync left in the outbox goes now, outside the clock.
        let unsent = device.pending_changes().unwrap_or(0);
        (latencies, errors, unsent)
    })
}

/// The push storm, as the server and this process measured it.
#[derive(Debug, Default)]
struct Storm {
    wall: Duration,
    /// The server's CPU time, and this process's (the device threads).
    cpu: Duration,
    client_cpu: Duration,
    before: Metrics,
    after: Metrics,
    latencies: Vec<Duration>,
    errors: usize,
    unsent: u64,
}

/// Every device pushes at once, as fast as it can.
fn push_storm(cfg: &Config, net: &Network, dirs: &[PathBuf], plans: &[SharedPlan]) -> Storm {
    let barrier = Arc::new(Barrier::new(cfg.c_devices + 1));
    let threads: Vec<_> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| pusher(dir.clone(), target_of(plans, i), barrier.clone(), cfg.c_pushes))
        .collect();
    let mut storm = Storm { before: net.server.metrics(), ..Storm::default() };
    let cpu_before = net.server.cpu_time().unwrap_or_default();
    let client_before = cpu_time_of("self").unwrap_or_default();
    barrier.wait();
    let start = Instant::now();
    for thread in threads {
        let (l, e, u) = thread.join().expect("a device thread");
        storm.latencies.extend(l);
        storm.errors += e;
        storm.unsent += u;
    }
    storm.wall = start.elapsed();
    storm.cpu = net.server.cpu_time().unwrap_or_default().saturating_sub(cpu_before);
    storm.client_cpu = cpu_time_of("self").unwrap_or_default().saturating_sub(client_before);
    storm.after = net.server.metrics();
    storm
}

fn throughput_rows(cfg: &Config, table: &mut Table, storm: &Storm, peak_rss_kib: u64) {
    let Storm { wall, cpu, client_cpu, .. } = *storm;
    let appended = storm.after.since(&storm.before, "eenplan_pushes_appended_total");
    let batches = storm.after.since(&storm.before, "eenplan_group_commit_batches_total");
    let requests = storm.after.device_requests_since(&storm.before);
    let pulled = storm.after.since(&storm.before, "eenplan_bundles_pulled_total");
    table.section(&format!(
        "c. server throughput: {} devices (threads, own stores) × {} pushes, {} shared plans",
        cfg.c_devices, cfg.c_pushes, cfg.c_plans
    ));
    let rate = appended as f64 / wall.as_secs_f64();
    table.row(
        "bundles accepted per second (wall clock, /metrics)",
        format!("{rate:.0} /s"),
        format!("{appended} bundles in {}", secs(wall)),
        "",
    );
    table.row(
        "server CPU per accepted bundle",
        format!("{:.2} ms", cpu.as_secs_f64() * 1e3 / appended.max(1) as f64),
        format!("{} CPU in all", secs(cpu)),
        "",
    );
    table.row(
        "  = bundles per server-CPU-second",
        format!("{:.0} /s", appended as f64 / cpu.as_secs_f64().max(1e-9)),
        "",
        "",
    );
    table.row(
        "device-side CPU (all device threads, this process)",
        secs(client_cpu),
        format!(
            "{:.0}% of {} cores × wall",
            100.0 * client_cpu.as_secs_f64() / (wall.as_secs_f64() * cores() as f64),
            cores()
        ),
        "",
    );
    table.row("server peak RSS (VmHWM)", format!("{:.1} MiB", peak_rss_kib as f64 / 1024.0), "", "");
    let latencies = &storm.latencies;
    table.row(
        "sync latency p50 / p95 (edit pushed, others' pulled)",
        format!("{} / {}", secs(percentile(latencies, 50)), secs(percentile(latencies, 95))),
        "",
        "",
    );
    table.row(
        "HTTP requests; bundles pulled by devices",
        format!("{requests}; {pulled}"),
        format!("{:.1} bundles per commit batch", appended as f64 / batches.max(1) as f64),
        "",
    );
    table.row("failed syncs; changes left unsent", format!("{}; {}", storm.errors, storm.unsent), "", "");
}

fn measure_c(cfg: &Config, table: &mut Table) {
    let setup = Instant::now();
    let (net, dirs, plans) = throughput_network(cfg);
    warm_up(&dirs, &plans);
    eprintln!("c: setup {} ({} devices, {} plans)", secs(setup.elapsed()), cfg.c_devices, cfg.c_plans);
    let storm = push_storm(cfg, &net, &dirs, &plans);
    let rss = net.server.peak_rss_kib().unwrap_or(0);
    throughput_rows(cfg, table, &storm, rss);
}

fn main() {
    let cfg = Config::from_args();
    eprintln!("sync_bench {} ({cfg:?})", if cfg.quick { "--quick" } else { "full" });
    run(
        "sync_bench",
        cfg.quick,
        &cfg,
        &cfg.only,
        &[('a', measure_a), ('b', measure_b), ('c', measure_c)],
        "ratio: value ÷ target or baseline; for (a) vs automerge: all HTTP bodies / sync bodies only.",
    );
}
