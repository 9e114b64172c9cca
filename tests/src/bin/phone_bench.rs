#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `phone_bench`: what a worker's phone meets on a bad link (issue 15), measured through the
//! phone bindings (`eenplan-ffi`, exactly what the apps call: the core device behind a mutex,
//! `sync()` on a thread of its own) against a real `eenplan-server` process, with the real
//! `eenplan-admin` CLI, the phone's traffic going through a shaping proxy
//! (`eenplan_tests::link`) on loopback.
//!
//! ```text
//! cargo build --workspace --release
//! target/release/phone_bench            # full: a few minutes to ten, mostly waiting on timeouts
//! target/release/phone_bench --quick    # small: calls blocked for 2 s are cut short; ~1 min
//! ```
//!
//! Options: `--only a,b,c` runs some measures. Progress goes to stderr, the table to stdout.
//!
//! a. **Reads and edits during a sync that waits.** The link answers nothing (`unanswered`:
//!    connections open, requests are read, no answer ever comes). A sync runs on one thread;
//!    once its first request has reached the link, another thread calls `read_plan` and
//!    `add_note` on the same device and each call is timed. Baseline, in the same run: the
//!    same calls with no sync running (link cut: offline). A call still blocked after the
//!    cap (`--quick`: 2 s) is ended by resetting the link's connections, which ends the sync;
//!    such a sample counts as "at least the cap" and the table says how many there were.
//! b. **Time until a sync reports `Offline`**: no route (connection refused; connection
//!    attempts dropped), a server that does not answer, a cut 1 s into a push of a day's
//!    notes (the cut is lifted after 60 s, `--quick` 3 s), and a live but slow link
//!    (8 kbit/s, 1 s round trips), where the target is that the sync completes.
//! c. **First sync of a new phone joining 6 plans** (about 3,000 changes) over 256 kbit/s
//!    with 400 ms round trips, retried as an app would, up to 6 attempts: whether it
//!    completes, each attempt's outcome, and its time against the link's own limit: the bytes
//!    the same first sync moves unshaped (measured in the same run, through a second link)
//!    divided by the rate, plus its round trips (HTTP requests and TCP handshakes) × 400 ms.
//!
//! Every figure is a median unless the table says otherwise.

use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use eenplan_core::plan::{
    ActionStatus, ActionUpdate, Compartment, NewAction, NewGoal, NewMember, NoteKind, Plan, PlanError,
};
use eenplan_core::sync::SyncError;
use eenplan_core::{CoreError, Device as CoreDevice, EntityId, PlanId};
use eenplan_ffi::{ApiError, Device as Phone, SyncSummary, passphrase_keystore};
use eenplan_tests::bench::{Args, Table, bytes, median, policy_where_reading_all, ratio, run, scratch, secs};
use eenplan_tests::link::{Admission, Link, Stats};
use eenplan_tests::network::{Admin, Server, device_keystore};

const ORG: &str = "Wijkteam Noord";
const ROLE: &str = "wijkteam";
/// The phone link of issue 15.
const PHONE_RTT: Duration = Duration::from_millis(400);
const PHONE_BITS: u64 = 256_000;
/// The issue's target for a read or an edit while a sync is in flight.
const TARGET_CALL: Duration = Duration::from_millis(5);

// --- configuration -----------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Config {
    quick: bool,
    only: Vec<char>,
    /// (a) syncs started against the silent server, calls made per sync at most, and
    /// calls of each kind for the offline baseline.
    a_rounds: usize,
    a_calls: usize,
    a_baseline: usize,
    /// A call still blocked after this is ended (and counted as at least this).
    cap: Duration,
    /// (b) syncs timed against a refusing link.
    b_refused: usize,
    /// (b) how long the cut of a push lasts at most, and the notes of the pushes.
    b_cut: Duration,
    b_push_notes: usize,
    b_slow_notes: usize,
    /// (c) plans the new phone joins, changes in each, words in a typed note, attempts.
    c_plans: usize,
    c_changes: usize,
    c_note_words: usize,
    c_attempts: usize,
}

impl Config {
    fn from_args() -> Config {
        let args = Args::from_env("phone_bench [--quick] [--only a,b,c]");
        let quick = args.has("--quick");
        let only = args.only(&['a', 'b', 'c']);
        Config {
            quick,
            only,
            a_rounds: if quick { 2 } else { 6 },
            a_calls: if quick { 10 } else { 20 },
            a_baseline: if quick { 20 } else { 50 },
            // Above anything the core waits for today (two requests of 30 s each), so that the
            // full run reports what a user would see.
            cap: if quick { Duration::from_secs(2) } else { Duration::from_secs(150) },
            b_refused: if quick { 3 } else { 5 },
            b_cut: if quick { Duration::from_secs(3) } else { Duration::from_secs(60) },
            b_push_notes: if quick { 30 } else { 60 },
            b_slow_notes: if quick { 3 } else { 40 },
            c_plans: if quick { 2 } else { 6 },
            c_changes: if quick { 100 } else { 500 },
            c_note_words: 32,
            c_attempts: if quick { 3 } else { 6 },
        }
    }
}

// --- the network: a server process, the admin CLI, a creator, phones ---------------------

/// Runs a binding's async call to its end, as a host's coroutine would await it.
fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(future)
}

struct Network {
    dir: tempfile::TempDir,
    // Dropped before `dir`: the server is killed before its files go.
    server: Server,
    admin: Admin,
}

impl Network {
    fn start(label: &str, users: &[&str]) -> Network {
        let dir = scratch("phone-bench", label);
        let server = Server::start(&dir.path().join("server"));
        let admin = Admin::init(&dir.path().join("admin"), &server);
        // The new phone's plans span all four compartments.
        let policy = dir.path().join("policy.toml");
        std::fs::write(&policy, policy_where_reading_all(ROLE)).expect("write the policy file");
        admin.run(&["policy", "set", policy.to_str().expect("a UTF-8 path")]);
        admin.run(&["org", "add", ORG]);
        for user in users {
            admin.run(&["user", "add", "--org", ORG, "--name", user, "--role", ROLE]);
        }
        Network { dir, server, admin }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A device on the core API, talking to the server directly (no link): the colleague
    /// whose plans a new phone joins.
    fn creator(&self, user: &str) -> CoreDevice {
        let mut device = CoreDevice::init(&self.path("creator"), &device_keystore()).expect("init");
        let code = self.admin.run(&["device", "enrol", "--user", user]);
        device
            .enrol(&self.server.url, &code, "Bench-maker", eenplan_core::sync::Platform::Desktop)
            .expect("enrol");
        self.admin.run(&["device", "approve", "--code", &code]);
        device.sync().expect("first sync");
        device
    }

    /// A phone (the bindings' device) enrolled through `link` for `user` and approved;
    /// `first_sync` also runs its first sync.
    fn phone(&self, name: &str, user: &str, link: &Link, first_sync: bool) -> Arc<Phone> {
        let dir = self.path(name).to_string_lossy().into_owned();
        let phone = Phone::init(dir, passphrase_keystore(format!("phone-bench {name}"))).expect("init");
        let code = self.admin.run(&["device", "enrol", "--user", user]);
        block_on(phone.enrol(
            eenplan_protocol::api::ServerUrl::parse(&link.url()).expect("the link's address"),
            code.clone(),
            format!("Telefoon {name}"),
            eenplan_core::sync::Platform::Android,
        ))
        .expect("enrol");
        self.admin.run(&["device", "approve", "--code", &code]);
        if first_sync {
            block_on(phone.sync()).expect("first sync");
        }
        phone
    }

    fn assign(&self, plan: &PlanId, user: &str) {
        self.admin.run(&["plan", "assign", &plan.to_string(), "--user", user, "--role", ROLE]);
    }

    /// HTTP requests devices have made (sessions, certificates, syncs), from `/metrics`.
    fn device_requests(&self) -> u64 {
        let address = self.server.address();
        let mut stream = TcpStream::connect(&address).expect("connect for /metrics");
        write!(stream, "GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n").expect("send");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("read /metrics");
        ["auth", "device", "sync"]
            .iter()
            .filter_map(|class| {
                let name = format!("eenplan_requests_total{{class=\"{class}\"}} ");
                text.lines().find_map(|l| l.strip_prefix(&name)).and_then(|v| v.trim().parse::<u64>().ok())
            })
            .sum()
    }
}

/// Syncs the core device until the server has nothing more.
fn sync_fully(device: &mut CoreDevice) {
    for _ in 0..64 {
        match device.sync() {
            Ok(_) => return,
            Err(CoreError::Sync(SyncError::TooManyRounds(_))) => continue,
            Err(e) => panic!("sync: {e}"),
        }
    }
    panic!("the device never caught up")
}

// --- a sync in flight, and timed calls beside it ----------------------------------------

type SyncResult = Result<SyncSummary, ApiError>;

/// A phone's sync running on a thread of its own, as `Device.sync()` runs for an app.
struct InFlight {
    running: Arc<AtomicBool>,
    done: mpsc::Receiver<(Duration, SyncResult)>,
}

impl InFlight {
    fn start(phone: &Arc<Phone>) -> InFlight {
        let running = Arc::new(AtomicBool::new(true));
        let (send, done) = mpsc::channel();
        let (phone, flag) = (Arc::clone(phone), Arc::clone(&running));
        std::thread::spawn(move || {
            let start = Instant::now();
            let result = block_on(phone.sync());
            flag.store(false, Ordering::SeqCst);
            let _ = send.send((start.elapsed(), result));
        });
        InFlight { running, done }
    }

    fn running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// Waits until `condition` holds for the link's counters (true), or the sync ends first,
    /// or 60 s pass (false).
    fn wait_for_link(&self, link: &Link, mut condition: impl FnMut(&Stats) -> bool) -> bool {
        let start = Instant::now();
        while self.running() && start.elapsed() < Duration::from_secs(60) {
            // In slices, to notice a sync that ended without touching the link.
            if link.wait_until(Duration::from_millis(50), &mut condition).is_some() {
                return true;
            }
        }
        false
    }

    /// The sync's time and result, waiting at most `timeout`.
    fn result(&self, timeout: Duration) -> Option<(Duration, SyncResult)> {
        self.done.recv_timeout(timeout).ok()
    }
}

/// A timed call; `censored`: it was still blocked at the cap and was ended, so `time` is a
/// lower bound.
#[derive(Debug, Clone, Copy)]
struct Sample {
    time: Duration,
    censored: bool,
}

/// Times `call`; if it has not returned after `cap`, runs `end` to unblock it.
fn capped<T>(cap: Duration, end: impl FnOnce() + Send + 'static, call: impl FnOnce() -> T) -> (T, Sample) {
    let (returned, watch) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || match watch.recv_timeout(cap) {
        Err(mpsc::RecvTimeoutError::Timeout) => {
            end();
            true
        }
        _ => false,
    });
    let start = Instant::now();
    let value = call();
    let time = start.elapsed();
    let _ = returned.send(());
    let censored = watchdog.join().expect("the watchdog");
    (value, Sample { time, censored })
}

fn median_of(samples: &[Sample]) -> String {
    if samples.is_empty() {
        return "no samples".into();
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by_key(|s| s.time);
    let m = sorted[sorted.len() / 2];
    if m.censored { format!("≥ {}", secs(m.time)) } else { secs(m.time) }
}

fn median_time(samples: &[Sample]) -> Duration {
    median(&samples.iter().map(|s| s.time).collect::<Vec<_>>())
}

/// `Offline: the server could not be reached: …`, or `completed`.
fn outcome(result: &SyncResult) -> String {
    match result {
        Ok(_) => "completed".into(),
        Err(e) => {
            let debug = format!("{e:?}");
            let kind = debug.split(['(', ' ', '{']).next().unwrap_or_default();
            format!("{kind}: {e}")
        }
    }
}

/// Outcomes, each with how often it occurred, most frequent first.
fn outcomes(results: &[String]) -> String {
    let mut counted: Vec<(String, usize)> = Vec::new();
    for r in results {
        match counted.iter_mut().find(|(o, _)| o == r) {
            Some((_, n)) => *n += 1,
            None => counted.push((r.clone(), 1)),
        }
    }
    counted.sort_by_key(|c| std::cmp::Reverse(c.1));
    counted.iter().map(|(o, n)| format!("{n}× {o}")).collect::<Vec<_>>().join("; ")
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Call {
    ReadPlan,
    AddNote,
}

impl Call {
    const BOTH: [Call; 2] = [Call::ReadPlan, Call::AddNote];

    fn name(self) -> &'static str {
        match self {
            Call::ReadPlan => "read_plan",
            Call::AddNote => "add_note",
        }
    }

    fn run(self, phone: &Phone, plan: &PlanId, k: usize) {
        match self {
            Call::ReadPlan => drop(phone.read_plan(*plan).expect("read_plan")),
            Call::AddNote => drop(
                phone
                    .add_note(
                        *plan,
                        Compartment::Basis,
                        NoteKind::HomeVisit,
                        format!("Notitie {k}: huisbezoek"),
                    )
                    .expect("add_note"),
            ),
        }
    }
}

// --- plans -----------------------------------------------------------------------------

/// SplitMix64: the same history on every run.
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
}

const WORDS: &[&str] = &[
    "moeder",
    "vader",
    "zoon",
    "dochter",
    "gesprek",
    "gehad",
    "over",
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
    "zorgen",
    "veiligheid",
    "goed",
    "niet",
    "nog",
    "reactie",
    "intake",
    "huisarts",
    "brieven",
    "samen",
    "doorgenomen",
    "betalingsregeling",
    "netwerk",
    "oma",
    "helpt",
    "sportclub",
    "evaluatie",
    "leerplicht",
    "verzuim",
    "jeugdarts",
    "ruzie",
    "politie",
    "melding",
    "opvoeding",
    "slaapt",
    "slecht",
    "werkt",
    "weer",
    "uitkering",
    "aangevraagd",
    "toeslagen",
];
const DOMAINS: &[&str] = &["financiën", "huisvesting", "huiselijke relaties", "werk & opleiding"];

fn words(rng: &mut Rng, n: usize) -> String {
    (0..n).map(|_| WORDS[rng.below(WORDS.len())]).collect::<Vec<_>>().join(" ")
}

/// What later edits of a plan touch.
struct Fixture {
    members: Vec<EntityId>,
    actions: Vec<EntityId>,
}

fn intake(p: &mut Plan) -> Result<Fixture, PlanError> {
    let mut f = Fixture { members: Vec::new(), actions: Vec::new() };
    for (name, relation) in [("Sandra", "moeder"), ("Mark", "vader"), ("Daan", "zoon")] {
        f.members.push(p.add_member(NewMember {
            name: name.into(),
            relation: relation.into(),
            birth_date: None,
            parental_authority: relation != "zoon",
        })?);
    }
    for domain in DOMAINS {
        let goal = p.add_goal(NewGoal { domain: (*domain).into(), title: format!("Doel: {domain}") })?;
        for step in 0..2 {
            f.actions.push(p.add_action(NewAction {
                goal,
                title: format!("Stap {step}: {domain}"),
                owner_org: ORG.into(),
                owner_user: None,
                due: Some("2027-03-01".into()),
            })?);
        }
    }
    Ok(f)
}

/// One edit (one automerge change): mostly notes as a worker types them after a visit.
fn history_step(p: &mut Plan, f: &Fixture, rng: &mut Rng, note_words: usize) -> Result<(), PlanError> {
    const STATUSES: [ActionStatus; 4] =
        [ActionStatus::InProgress, ActionStatus::Done, ActionStatus::Cancelled, ActionStatus::Todo];
    match rng.below(100) {
        0..70 => {
            let compartment = Compartment::ALL[rng.below(Compartment::ALL.len())];
            let kind = if compartment == Compartment::Basis { NoteKind::HomeVisit } else { NoteKind::Note };
            let n = note_words / 2 + rng.below(note_words);
            p.add_note(compartment, kind, &words(rng, n))?;
        }
        70..85 => {
            let action = f.actions[rng.below(f.actions.len())];
            let status = STATUSES[rng.below(STATUSES.len())];
            p.update_action(action, ActionUpdate { status: Some(status), ..Default::default() })?;
        }
        _ => {
            let member = f.members[rng.below(f.members.len())];
            let on = format!("2026-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28));
            p.set_score(member, DOMAINS[rng.below(DOMAINS.len())], &on, 1 + rng.below(5) as i64)?;
        }
    }
    Ok(())
}

/// A plan with `changes` automerge changes of history, typed on `device` and synced up every
/// hundred changes (so the server's log holds it as a realistic number of bundles).
fn build_plan(
    device: &mut CoreDevice,
    family: &str,
    changes: usize,
    note_words: usize,
    rng: &mut Rng,
) -> PlanId {
    let plan = device.create_plan(family).expect("create plan");
    let fixture = device.edit(&plan, intake).expect("intake");
    let mut pushed = 0;
    loop {
        let pending = device.pending_changes().expect("outbox") as usize;
        if pushed + pending >= changes {
            break;
        }
        if pending >= 100 {
            sync_fully(device);
            pushed += pending;
            continue;
        }
        let n = 20.min(changes - pushed - pending);
        device
            .edit(&plan, |p| (0..n).try_for_each(|_| history_step(p, &fixture, rng, note_words)))
            .expect("history");
    }
    sync_fully(device);
    plan
}

/// A plan on the phone itself: a family, goals and a few notes.
fn phone_plan(phone: &Phone, notes: usize) -> PlanId {
    let plan = phone.create_plan("Jansen".into()).expect("create plan");
    let mut rng = Rng(0xa);
    for (name, relation) in [("Sandra", "moeder"), ("Daan", "zoon")] {
        phone
            .add_member(
                plan,
                NewMember {
                    name: name.into(),
                    relation: relation.into(),
                    birth_date: None,
                    parental_authority: false,
                },
            )
            .expect("member");
    }
    for domain in DOMAINS {
        phone.add_goal(plan, (*domain).into(), format!("Doel: {domain}")).expect("goal");
    }
    for _ in 0..notes {
        phone.add_note(plan, Compartment::Basis, NoteKind::HomeVisit, words(&mut rng, 40)).expect("note");
    }
    plan
}

// --- a. reads and edits while a sync waits ------------------------------------------------

fn measure_a(cfg: &Config, table: &mut Table) {
    let net = Network::start("a", &["Telefoon"]);
    let link = Arc::new(Link::start(net.server.address()).expect("start the link"));
    let phone = net.phone("phone", "Telefoon", &link, true);
    let plan = phone_plan(&phone, 60);
    block_on(phone.sync()).expect("sync the plan up");
    let mut k = 0;

    // Baseline: offline, no sync running.
    link.cut();
    let mut offline: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..cfg.a_baseline {
        for (i, call) in Call::BOTH.into_iter().enumerate() {
            let start = Instant::now();
            call.run(&phone, &plan, k);
            offline[i].push(start.elapsed());
            k += 1;
        }
    }
    link.restore();

    link.admit(Admission::Unanswered).expect("unanswered");
    let mut during: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
    let mut syncs: Vec<(Duration, String, bool)> = Vec::new();
    let mut missed = 0;
    for round in 0..cfg.a_rounds {
        let before = link.stats().bytes_unanswered;
        let sync = InFlight::start(&phone);
        if !sync.wait_for_link(&link, |s| s.bytes_unanswered > before) {
            // It ended (or never got going) before its first request reached the server.
            missed += 1;
            continue;
        }
        let mut ended = false;
        for i in 0..cfg.a_calls {
            if !sync.running() {
                break;
            }
            let call = Call::BOTH[(i + round) % 2];
            let link_to_reset = Arc::clone(&link);
            let ((), sample) = capped(cfg.cap, move || link_to_reset.reset(), || call.run(&phone, &plan, k));
            k += 1;
            during[Call::BOTH.iter().position(|c| *c == call).unwrap_or(0)].push(sample);
            if sample.censored {
                // The bench ended the sync to free the call: this round is over.
                ended = true;
                break;
            }
        }
        // A sync that still waits is ended, so the next round starts a new one.
        if sync.running() {
            ended = true;
            link.reset();
        }
        let (time, result) = sync.result(Duration::from_secs(300)).expect("the sync returns");
        eprintln!("a: round {}: sync {} after {}", round + 1, outcome(&result), secs(time));
        syncs.push((time, outcome(&result), ended));
    }
    link.admit(Admission::Accept).expect("accept");

    table.section(&format!(
        "a. reads and edits on the phone while a sync waits on a server that does not answer \
         (median; {} syncs, calls capped at {})",
        cfg.a_rounds,
        secs(cfg.cap)
    ));
    for (i, call) in Call::BOTH.into_iter().enumerate() {
        let base = median(&offline[i]);
        table.row(
            format!("{}, offline, no sync running", call.name()),
            secs(base),
            format!("{} calls", offline[i].len()),
            "",
        );
        let samples = &during[i];
        let censored = samples.iter().filter(|s| s.censored).count();
        table.row(
            format!("{} while the sync waits", call.name()),
            median_of(samples),
            format!("target = offline, < {}", secs(TARGET_CALL)),
            ratio(median_time(samples).as_secs_f64(), base.as_secs_f64()),
        );
        let worst = samples.iter().map(|s| s.time).max().unwrap_or_default();
        table.row(
            format!("  {} calls, {} still blocked at the cap; slowest", samples.len(), censored),
            secs(worst),
            "",
            "",
        );
    }
    let waited: Vec<Duration> = syncs.iter().filter(|(_, _, ended)| !ended).map(|(t, _, _)| *t).collect();
    table.row(
        "the sync itself, until it gave up by itself",
        if waited.is_empty() { "ended by the bench".into() } else { secs(median(&waited)) },
        outcomes(&syncs.iter().map(|(_, o, _)| o.clone()).collect::<Vec<_>>()),
        "",
    );
    if missed > 0 {
        table.row("  syncs that ended before reaching the server (not counted)", missed.to_string(), "", "");
    }
}

// --- b. time until Offline ------------------------------------------------------------------

/// Times one sync; a sync still running after `cap` is ended by `end`, and its outcome
/// says so (what it then reported is the bench's doing, not the link's).
fn timed_sync(phone: &Arc<Phone>, cap: Duration, end: impl FnOnce() + Send + 'static) -> (Sample, String) {
    let phone = Arc::clone(phone);
    let (result, sample) = capped(cap, end, move || block_on(phone.sync()));
    let outcome = outcome(&result);
    match sample.censored {
        true => (sample, format!("still waiting at the cap, ended by the bench ({outcome})")),
        false => (sample, outcome),
    }
}

fn measure_b(cfg: &Config, table: &mut Table) {
    let net = Network::start("b", &["Telefoon"]);
    let link = Arc::new(Link::start(net.server.address()).expect("start the link"));
    let phone = net.phone("phone", "Telefoon", &link, true);
    let plan = phone_plan(&phone, 10);
    block_on(phone.sync()).expect("sync the plan up");
    table.section("b. time until a sync reports that the server cannot be reached");

    // No route: the server's machine refuses.
    link.admit(Admission::Refuse).expect("refuse");
    let mut samples = Vec::new();
    let mut results = Vec::new();
    for _ in 0..cfg.b_refused {
        let l = Arc::clone(&link);
        let (sample, result) = timed_sync(&phone, cfg.cap, move || drop(l.admit(Admission::Accept)));
        samples.push(sample);
        results.push(result);
    }
    link.admit(Admission::Accept).expect("accept");
    eprintln!("b: refused: {}", median_of(&samples));
    table.row(
        format!("no route: connection refused (median of {})", samples.len()),
        median_of(&samples),
        outcomes(&results),
        "",
    );

    // No route: connection attempts are never answered; then a server that never answers.
    for (admission, label) in [
        (Admission::Drop, "no route: connection attempts unanswered (SYN dropped)"),
        (Admission::Unanswered, "server does not answer (connection opens, no reply)"),
    ] {
        link.admit(admission).expect("admission");
        let l = Arc::clone(&link);
        let (sample, result) = timed_sync(&phone, cfg.cap, move || {
            drop(l.admit(Admission::Refuse));
            l.reset();
        });
        link.admit(Admission::Accept).expect("accept");
        eprintln!("b: {label}: {} {result}", median_of(&[sample]));
        table.row(format!("{label} (1 run)"), median_of(&[sample]), result, "");
    }

    // A cut 1 s into a push of a day's notes, on the phone link.
    let mut rng = Rng(0xb);
    for _ in 0..cfg.b_push_notes {
        phone.add_note(plan, Compartment::Basis, NoteKind::HomeVisit, words(&mut rng, 150)).expect("note");
    }
    link.shape(PHONE_RTT, PHONE_BITS);
    let before = link.stats();
    let sync = InFlight::start(&phone);
    let started = Instant::now();
    // About half a second of the link's time into the push itself.
    let pushing = sync.wait_for_link(&link, |s| s.bytes_up > before.bytes_up + 16_000);
    link.cut();
    let cut_at = Instant::now();
    let into = cut_at - started;
    let (during_cut, result) = match sync.result(cfg.b_cut) {
        Some((_, result)) => (true, result),
        None => {
            link.restore();
            (false, sync.result(Duration::from_secs(300)).expect("the sync returns").1)
        }
    };
    let answered = cut_at.elapsed();
    link.restore();
    let what = if !pushing {
        "the push ended before the cut".to_owned()
    } else if during_cut {
        format!("answered during the cut: {}", outcome(&result))
    } else {
        format!("still waiting when the link came back after {}; then: {}", secs(cfg.b_cut), outcome(&result))
    };
    eprintln!("b: cut: {} {what}", secs(answered));
    table.row(
        format!(
            "cut {} into a push of {} notes (256 kbit/s, 400 ms RTT; 1 run)",
            secs(into),
            cfg.b_push_notes
        ),
        if pushing { secs(answered) } else { "—".into() },
        what,
        "",
    );
    // Whatever the cut left unsent goes now, on the phone link.
    link.set_latency(Duration::ZERO);
    link.set_rate(None);
    let (_, settle) = timed_sync(&phone, Duration::from_secs(120), || {});
    eprintln!("b: after the cut: {settle}");

    // Live but slow: the sync should go on, not report Offline.
    for _ in 0..cfg.b_slow_notes {
        phone.add_note(plan, Compartment::Basis, NoteKind::HomeVisit, words(&mut rng, 150)).expect("note");
    }
    link.shape(Duration::from_secs(1), 8_000);
    let before = link.stats();
    let l = Arc::clone(&link);
    let (sample, result) = timed_sync(&phone, Duration::from_secs(300), move || l.reset());
    let moved = link.stats().bytes_up - before.bytes_up;
    link.set_latency(Duration::ZERO);
    link.set_rate(None);
    eprintln!("b: slow: {} {result}", median_of(&[sample]));
    table.row(
        format!("live but slow: 8 kbit/s, 1 s RTT, push of {} notes (1 run)", cfg.b_slow_notes),
        median_of(&[sample]),
        format!("target: completes; {result} ({} up)", bytes(moved as f64)),
        "",
    );
}

// --- c. a new phone's first sync over a phone link -------------------------------------------

/// Syncs until one completes, at most `attempts` times; each attempt's time and outcome.
fn sync_until_complete(phone: &Phone, attempts: usize, label: &str) -> Vec<(Duration, SyncResult)> {
    let mut tries = Vec::new();
    for attempt in 1..=attempts {
        let start = Instant::now();
        let result = block_on(phone.sync());
        let time = start.elapsed();
        eprintln!("c: {label} attempt {attempt}: {} after {}", outcome(&result), secs(time));
        let done = result.is_ok();
        tries.push((time, result));
        if done {
            break;
        }
    }
    tries
}

fn measure_c(cfg: &Config, table: &mut Table) {
    let setup = Instant::now();
    let net = Network::start("c", &["Regie", "Nieuw", "Basislijn"]);
    let mut creator = net.creator("Regie");
    let mut rng = Rng(0xc);
    let plans: Vec<PlanId> = (0..cfg.c_plans)
        .map(|k| {
            let plan =
                build_plan(&mut creator, &format!("Gezin {k}"), cfg.c_changes, cfg.c_note_words, &mut rng);
            net.assign(&plan, "Nieuw");
            net.assign(&plan, "Basislijn");
            plan
        })
        .collect();
    let unshaped = Link::start(net.server.address()).expect("start a link");
    let shaped = Link::start(net.server.address()).expect("start a link");
    let baseline = net.phone("baseline", "Basislijn", &unshaped, false);
    let phone = net.phone("new", "Nieuw", &shaped, false);
    // The creator seals the plans' keys for both new phones.
    sync_fully(&mut creator);
    eprintln!("c: setup {} ({} plans)", secs(setup.elapsed()), plans.len());
    let mut same_as_creator = |phone: &Phone| {
        plans.iter().all(|plan| phone.read_plan(*plan).ok() == creator_view(&mut creator, plan))
    };

    // The same first sync unshaped: what it needs from the link (its enrolment not counted).
    let (requests, before, start) = (net.device_requests(), unshaped.stats(), Instant::now());
    let base_tries = sync_until_complete(&baseline, cfg.c_attempts, "unshaped");
    let base_time = start.elapsed();
    let needed = since(&unshaped.stats(), &before);
    let needed_requests = net.device_requests() - requests;
    let base_changes: u64 =
        base_tries.iter().filter_map(|(_, r)| r.as_ref().ok()).map(|s| s.applied_changes).sum();
    assert!(base_tries.last().is_some_and(|(_, r)| r.is_ok()), "the unshaped first sync failed");

    // Over the phone link.
    shaped.shape(PHONE_RTT, PHONE_BITS);
    let (before, start) = (shaped.stats(), Instant::now());
    let tries = sync_until_complete(&phone, cfg.c_attempts, "256 kbit/s");
    let time = start.elapsed();
    let moved = since(&shaped.stats(), &before);
    let complete = tries.last().is_some_and(|(_, r)| r.is_ok());
    let base_ok = same_as_creator(&baseline);
    let ok = complete && same_as_creator(&phone);

    let rate = (PHONE_BITS / 8) as f64;
    let trips = needed_requests + needed.connections_accepted;
    let limit = (needed.bytes_up + needed.bytes_down) as f64 / rate + trips as f64 * PHONE_RTT.as_secs_f64();
    table.section(&format!(
        "c. a new phone's first sync: {} plans, {} changes, over 256 kbit/s with 400 ms round trips",
        plans.len(),
        base_changes
    ));
    table.row(
        "unshaped, same first sync (through a link that only counts)",
        secs(base_time),
        format!(
            "{} down, {} up; {} requests, {} connections; plans {}",
            bytes(needed.bytes_down as f64),
            bytes(needed.bytes_up as f64),
            needed_requests,
            needed.connections_accepted,
            if base_ok { "identical to the creator's" } else { "DIFFER from the creator's" }
        ),
        "",
    );
    table.row(
        "the link's own limit: bytes ÷ 32 kB/s + round trips × 400 ms",
        secs(Duration::from_secs_f64(limit)),
        format!(
            "{} + {trips} × 400 ms",
            secs(Duration::from_secs_f64((needed.bytes_up + needed.bytes_down) as f64 / rate))
        ),
        "",
    );
    table.row(
        if complete {
            "over the phone link: completed in"
        } else {
            "over the phone link: NOT completed; gave up after"
        },
        secs(time),
        format!(
            "{} attempt(s); plans {}",
            tries.len(),
            if ok {
                "identical to the creator's"
            } else if complete {
                "DIFFER from the creator's"
            } else {
                "incomplete"
            }
        ),
        if complete { ratio(time.as_secs_f64(), limit) } else { "—".into() },
    );
    for (i, (t, result)) in tries.iter().enumerate() {
        table.row(format!("  attempt {}", i + 1), secs(*t), outcome(result), "");
    }
    table.row(
        "  bytes through the phone link, all attempts",
        bytes((moved.bytes_down + moved.bytes_up) as f64),
        format!("{} connections", moved.connections_accepted),
        ratio((moved.bytes_down + moved.bytes_up) as f64, (needed.bytes_down + needed.bytes_up) as f64),
    );
}

/// What a link carried between two readings of its counters.
fn since(after: &Stats, before: &Stats) -> Stats {
    Stats {
        bytes_up: after.bytes_up - before.bytes_up,
        bytes_down: after.bytes_down - before.bytes_down,
        connections_accepted: after.connections_accepted - before.connections_accepted,
        connections_open: after.connections_open,
        bytes_unanswered: after.bytes_unanswered - before.bytes_unanswered,
    }
}

fn creator_view(creator: &mut CoreDevice, plan: &PlanId) -> Option<eenplan_core::plan::PlanView> {
    creator.read(plan).ok()
}

fn main() {
    let cfg = Config::from_args();
    eprintln!("phone_bench {} ({cfg:?})", if cfg.quick { "--quick" } else { "full" });
    run(
        "phone_bench",
        cfg.quick,
        &cfg,
        &cfg.only,
        &[('a', measure_a), ('b', measure_b), ('c', measure_c)],
        "ratio: value ÷ baseline or limit. ≥: the call was still blocked at the cap and was ended.",
    );
}
