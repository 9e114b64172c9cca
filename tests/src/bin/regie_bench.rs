#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `regie_bench`: what the regisseur's own acts on a plan's signed membership chain cost, end
//! to end, against a real `eenplan-server` process, with devices with real stores and no
//! administrator involved; and a removal through the administrator as the baseline.
//!
//! ```text
//! cargo build --workspace --release --bins
//! target/release/regie_bench            # full: 11 repetitions of each measure (≈ 2 min)
//! target/release/regie_bench --quick    # 3 repetitions (≈ 30 s)
//! ```
//!
//! Options: `--only a,b,c` runs some measures; `--reps N` overrides the repetitions. Progress
//! goes to stderr, the table to stdout.
//!
//! Every repetition stands up a network of its own (server, administrator, devices, one plan
//! in steady state: every participant's device holds the keys its role reads, and every
//! device synced once more after that), so no repetition inherits another's cached
//! certificates, keys or pending rotations. In the window, devices sync one after another in
//! a fixed order, pass after pass, until the stop condition holds; a device's part of it is
//! checked right after its own sync (the only thing that changes what it holds), so the
//! window ends with the sync that completes the last part. More than [`MAX_PASSES`] passes
//! fail the run. Device bytes are the request and response bodies of every device sync in the
//! window (`SyncReport::bytes_up/bytes_down`, session handshakes included). The act that
//! opens a window is posted with a plain `sync()` and the checks `Device::sync_membership`
//! makes, so that its bytes are counted too.
//!
//! a. **Escalation.** Wim (wijkteam) holds regie of a plan with a note in basis, zorg and
//!    veiligheid; Ans (wijkteam) and Gert (ggz) contribute. Wim escalates to
//!    `zorg_en_veiligheidshuis` (grondslag convenant), adding Zoë (`zvh_procesregisseur`),
//!    Piet (`pga_expert`) and Mila (`zvh_medewerker`), one device each, and offers regie to
//!    Zoë. Window: from the `escalate_case` call until Zoë and Piet hold the keys of all four
//!    compartments and Mila those of basis and veiligheid (the policy's rules at that level),
//!    and Zoë holds regie by her own chain (her device accepts at the first sync that shows
//!    her the offer). Justitie had no key: the first ZVH reader makes it. Sync order: Wim,
//!    Zoë, Piet, Mila, Ans, Gert.
//! b. **Removal by the regisseur.** Wim holds regie; five users with two devices each remain
//!    (three wijkteam, two ggz) and Vera (wijkteam, one device) leaves. Window: from Wim's
//!    `remove_participant` until the documents Vera read (basis, zorg, veiligheid) moved to
//!    the next epoch, Wim's device and the ten hold that epoch's key of every one of them
//!    their role reads (a device holds a new epoch's key only once the server stored its
//!    commitment), and a note in basis that Wim writes as soon as the removal is posted has
//!    reached all ten. Sync order: Wim, then the ten.
//! c. **Removal by the administrator** (b's baseline). The same set-up and stop condition,
//!    but `eenplan-admin --json plan unassign PLAN --user Vera` signs the removal and re-keys
//!    (its HTTP traffic, headers included, counted by a relay in front of the server; its
//!    process start and keyring unlock are in the window); Wim writes the note once it exits.
//!    b's medians are printed as ratios of c's.
//!
//! After each window, outside it: the server's database must show the rotated documents at
//! the new epoch, and the leaver's device, synced, must hold neither that key nor the note.
//!
//! Every figure is a median over the repetitions.

use std::cell::Cell;
use std::time::{Duration, Instant};

use eenplan_core::plan::{Compartment, EscalationLevel, NoteKind};
use eenplan_core::sync::{ShareOutcome, SyncReport};
use eenplan_core::{Device, DeviceId, PlanId};
use eenplan_protocol::membership::Grondslag;
use eenplan_tests::bench::{Args, Relay, Table, bytes, median, ratio, run, scratch, secs, sync_fully};
use eenplan_tests::network::{Admin, Network, Server};

const WIJKTEAM: &str = "Wijkteam Zaanstad";
const GGZ: &str = "GGZ Noord";
const ZVH: &str = "Zorg- en Veiligheidshuis Zaanstreek-Waterland";
/// Passes of the sync loop in one window before a run is called stuck.
const MAX_PASSES: usize = 12;

// --- configuration -----------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Config {
    quick: bool,
    only: Vec<char>,
    /// Repetitions of each measure, each on a network of its own.
    reps: usize,
    /// b's medians (seconds, bytes), for c's ratios when both run.
    by_regisseur: Cell<Option<(f64, f64)>>,
}

impl Config {
    fn from_args() -> Config {
        let args = Args::from_env("regie_bench [--quick] [--only a,b,c] [--reps N]");
        let quick = args.has("--quick");
        let cfg = Config {
            quick,
            only: args.only(&['a', 'b', 'c']),
            reps: args.number("--reps", if quick { 3 } else { 11 }),
            by_regisseur: Cell::new(None),
        };
        if cfg.reps == 0 {
            eprintln!("regie_bench: need --reps ≥ 1");
            std::process::exit(2);
        }
        cfg
    }
}

// --- the network, syncing, what a window cost ---------------------------------------------

/// A network for one repetition, in scratch space: a server, the administrator, and the users
/// (name, organisation, role), each organisation added once.
fn network(label: &str, users: &[(&str, &str, &str)]) -> Network {
    let dir = scratch("regie-bench", label);
    let server = Server::start(&dir.path().join("server"));
    let admin = Admin::init(&dir.path().join("admin"), &server);
    let mut orgs: Vec<&str> = Vec::new();
    for (name, org, role) in users {
        if !orgs.contains(org) {
            admin.run(&["org", "add", org]);
            orgs.push(org);
        }
        admin.run(&["user", "add", "--org", org, "--name", name, "--role", role]);
    }
    Network { dir, server, admin }
}

/// What `role` reads in regular care (`default.toml`'s `[roles.*]`), for the roles that take
/// part before a window opens.
fn reads_in_regular_care(role: &str) -> &'static [Compartment] {
    match role {
        "wijkteam" => &[Compartment::Basis, Compartment::Zorg, Compartment::Veiligheid],
        "ggz" => &[Compartment::Basis, Compartment::Zorg],
        _ => &[],
    }
}

fn holds_keys(device: &Device, plan: &PlanId, compartments: &[Compartment]) -> bool {
    let keyed = device.keyed_compartments(plan).expect("keyed compartments");
    compartments.iter().all(|c| keyed.contains(c))
}

/// Syncs every device, pass after pass, until each holds the keys of what its role (`roles`,
/// in the same order) reads, then once more: nothing is left to fetch when a window opens.
fn settle(devices: &mut [&mut Device], roles: &[&str], plan: &PlanId) {
    for _ in 0..MAX_PASSES {
        for device in devices.iter_mut() {
            let (report, _) = sync_fully(device);
            assert!(report.refused.is_empty(), "refused during set-up: {:?}", report.refused);
        }
        let ready =
            |(device, role): (&&mut Device, &&str)| holds_keys(device, plan, reads_in_regular_care(role));
        if devices.iter().zip(roles).all(ready) {
            for device in devices.iter_mut() {
                sync_fully(device);
            }
            return;
        }
    }
    panic!("set-up: the participants' devices never got their keys");
}

/// What one window cost.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    /// The regisseur's device (Wim's), whose syncs are also counted apart.
    lead: Option<DeviceId>,
    lead_up: u64,
    lead_down: u64,
    /// The whole window.
    time: Duration,
    /// The act that opens it: the regisseur's call and the sync that posts it, or the
    /// administrator's command from process start to exit.
    act: Duration,
    up: u64,
    down: u64,
    /// The administrator CLI's HTTP traffic, headers included (c only).
    admin_up: u64,
    admin_down: u64,
    passes: usize,
    syncs: usize,
    rounds: usize,
    envelopes_sent: usize,
    envelopes_received: usize,
    /// Documents whose changes a device held back in a sync, waiting for the next key.
    held_back: usize,
    /// The plan's membership chain on the server after the window, all entries; and the
    /// entry the act added (certificates travel inside entries).
    chain_bytes: u64,
    entry_bytes: u64,
}

impl Cost {
    fn add(&mut self, report: &SyncReport, calls: usize) {
        self.up += report.bytes_up;
        self.down += report.bytes_down;
        self.syncs += calls;
        self.rounds += report.rounds;
        self.envelopes_sent += report.envelopes_sent;
        self.envelopes_received += report.envelopes_received;
    }

    fn device_bytes(&self) -> u64 {
        self.up + self.down
    }

    fn all_bytes(&self) -> u64 {
        self.device_bytes() + self.admin_up + self.admin_down
    }
}

fn server_db(net: &Network) -> rusqlite::Connection {
    rusqlite::Connection::open(net.server.data.join("server.db")).expect("the server's database")
}

/// The entries the act added to the plan's chain when it held `before`: the first one's size
/// and the whole chain's, as the server stores them, into `cost`.
fn note_chain(net: &Network, plan: &PlanId, before: usize, cost: &mut Cost) {
    let conn = server_db(net);
    let mut query =
        conn.prepare("SELECT length(signed) FROM membership WHERE plan_id = ?1 ORDER BY seq").expect("query");
    let sizes: Vec<u64> = query
        .query_map([&plan.as_bytes()[..]], |row| row.get::<_, i64>(0).map(|n| n as u64))
        .expect("membership")
        .collect::<Result<_, _>>()
        .expect("membership rows");
    cost.chain_bytes = sizes.iter().sum();
    cost.entry_bytes = *sizes.get(before).expect("the act's entry");
}

fn chain_length(device: &Device, plan: &PlanId) -> usize {
    device.membership(plan).expect("membership").map_or(0, |m| m.steps.len())
}

/// How a device reports its own changes that it keeps until it holds a key it may seal them
/// under: in `SyncReport::refused`, though nothing is dropped.
const HELD_BACK: &str = "its changes wait here";

/// A sync (as many `sync()` calls as catching up takes), counted; nothing may be refused
/// (changes held back for a key are counted, not refused).
fn sync_counted(device: &mut Device, cost: &mut Cost) -> SyncReport {
    let (report, calls) = sync_fully(device);
    let (held, refused): (Vec<&String>, Vec<&String>) =
        report.refused.iter().partition(|r| r.ends_with(HELD_BACK));
    assert!(refused.is_empty(), "refused in the window: {refused:?}");
    cost.held_back += held.len();
    cost.add(&report, calls);
    if cost.lead == Some(device.device_id()) {
        cost.lead_up += report.bytes_up;
        cost.lead_down += report.bytes_down;
    }
    report
}

/// `Device::sync_membership` with its sync counted: the sync signs and posts the queued act,
/// and the server must have taken it.
fn post_act(device: &mut Device, cost: &mut Cost) {
    let report = sync_counted(device, cost);
    assert!(report.share_failures.is_empty(), "the server refused the act: {:?}", report.share_failures);
    assert!(device.queued_intents().expect("queued intents").is_empty(), "the act still waits");
}

/// Syncs `devices` in order, pass after pass, until every watched one's `turn` (which syncs
/// it and does what its user does on seeing the result) says it is done; the passes.
fn drive(
    devices: &mut [&mut Device],
    watched: &[bool],
    cost: &mut Cost,
    what: &str,
    mut turn: impl FnMut(usize, &mut Device, &mut Cost) -> bool,
) -> usize {
    let mut done: Vec<bool> = watched.iter().map(|w| !w).collect();
    for pass in 1..=MAX_PASSES {
        for (i, device) in devices.iter_mut().enumerate() {
            done[i] = turn(i, device, cost);
            if done.iter().all(|d| *d) {
                return pass;
            }
        }
    }
    panic!("{what}: not done after {MAX_PASSES} passes (done per device: {done:?})")
}

// --- a. escalation --------------------------------------------------------------------------

const A_USERS: &[(&str, &str, &str)] = &[
    ("Wim", WIJKTEAM, "wijkteam"),
    ("Ans", WIJKTEAM, "wijkteam"),
    ("Gert", GGZ, "ggz"),
    ("Zoë", ZVH, "zvh_procesregisseur"),
    ("Piet", ZVH, "pga_expert"),
    ("Mila", ZVH, "zvh_medewerker"),
];

/// The newcomers, their role, and what it reads at `zorg_en_veiligheidshuis`
/// (`default.toml`'s `[levels.zorg_en_veiligheidshuis.*]`).
const NEWCOMERS: [(&str, &str, &[Compartment]); 3] = [
    ("Zoë", "zvh_procesregisseur", &Compartment::ALL),
    ("Piet", "pga_expert", &Compartment::ALL),
    ("Mila", "zvh_medewerker", &[Compartment::Basis, Compartment::Veiligheid]),
];

fn notes_in_three(device: &mut Device, plan: &PlanId, when: &str) {
    device
        .edit(plan, |p| {
            for compartment in [Compartment::Basis, Compartment::Zorg, Compartment::Veiligheid] {
                p.add_note(compartment, NoteKind::Note, &format!("{compartment}: {when}"))?;
            }
            Ok(())
        })
        .expect("notes");
}

fn regisseur_is(device: &Device, plan: &PlanId, name: &str) -> bool {
    device.membership(plan).expect("membership").is_some_and(|m| m.regisseur.name == name)
}

fn offered_to(device: &Device, plan: &PlanId, name: &str) -> bool {
    device.membership(plan).expect("membership").and_then(|m| m.offered_to).is_some_and(|p| p.name == name)
}

fn escalation(rep: usize) -> Cost {
    let net = network(&format!("a{rep}"), A_USERS);
    let mut wim = net.device("wim", "Wim");
    let mut ans = net.device("ans", "Ans");
    let mut gert = net.device("gert", "Gert");
    let mut zoe = net.device("zoe", "Zoë");
    let mut piet = net.device("piet", "Piet");
    let mut mila = net.device("mila", "Mila");
    let plan = wim.create_plan("Jansen").expect("create plan");
    notes_in_three(&mut wim, &plan, "voor de opschaling");
    sync_fully(&mut wim);
    for (user, role) in [("Ans", "wijkteam"), ("Gert", "ggz")] {
        assert_eq!(wim.add_participant(&plan, user, role).expect("add"), ShareOutcome::Done);
    }
    let roles = ["wijkteam", "wijkteam", "ggz", "", "", ""];
    settle(&mut [&mut wim, &mut ans, &mut gert, &mut zoe, &mut piet, &mut mila], &roles, &plan);

    let add: Vec<String> = NEWCOMERS.iter().map(|(name, role, _)| format!("{name}:{role}")).collect();
    let before = chain_length(&wim, &plan);
    let mut cost = Cost { lead: Some(wim.device_id()), ..Cost::default() };
    let started = Instant::now();
    wim.escalate_case(
        &plan,
        EscalationLevel::ZorgEnVeiligheidshuis,
        "Zorgen over de veiligheid; meerdere partijen betrokken",
        Grondslag::Convenant,
        Some("Zoë"),
        &add,
    )
    .expect("escalate");
    post_act(&mut wim, &mut cost);
    cost.act = started.elapsed();
    let mut devices = [&mut wim, &mut zoe, &mut piet, &mut mila, &mut ans, &mut gert];
    let watched = [false, true, true, true, false, false];
    cost.passes = drive(&mut devices, &watched, &mut cost, "escalation", |i, device, cost| {
        sync_counted(device, cost);
        if i == 1 && offered_to(device, &plan, "Zoë") {
            device.accept_regie(&plan).expect("accept regie");
            post_act(device, cost);
        }
        match i {
            1..=3 => {
                holds_keys(device, &plan, NEWCOMERS[i - 1].2)
                    && (i != 1 || regisseur_is(device, &plan, "Zoë"))
            }
            _ => true,
        }
    });
    cost.time = started.elapsed();
    note_chain(&net, &plan, before, &mut cost);

    // The level's rules, not more: the medewerker and the wijkteam never get the rest.
    let mila_keys = mila.keyed_compartments(&plan).expect("keyed");
    assert!(
        !mila_keys.contains(&Compartment::Zorg) && !mila_keys.contains(&Compartment::Justitie),
        "{mila_keys:?}"
    );
    assert!(!wim.keyed_compartments(&plan).expect("keyed").contains(&Compartment::Justitie));
    cost
}

fn measure_a(cfg: &Config, table: &mut Table) {
    let runs = repeat(cfg, 'a', escalation);
    table.section(&format!(
        "a. escalation to zorg_en_veiligheidshuis, +3 participants, 4 compartments keyed (median of {})",
        cfg.reps
    ));
    cost_rows(
        table,
        &runs,
        "escalate_case → 3 newcomers keyed, regie accepted",
        "escalate_case + its sync (Wim)",
        "Wim, Zoë, Piet, Mila, Ans, Gert",
    );
}

// --- b and c. removal -------------------------------------------------------------------

const B_USERS: &[(&str, &str, &str)] = &[
    ("Wim", WIJKTEAM, "wijkteam"),
    ("Ans", WIJKTEAM, "wijkteam"),
    ("Bram", WIJKTEAM, "wijkteam"),
    ("Cor", WIJKTEAM, "wijkteam"),
    ("Gert", GGZ, "ggz"),
    ("Hanna", GGZ, "ggz"),
    ("Vera", WIJKTEAM, "wijkteam"),
];
/// The users who stay besides the regisseur, each with this many devices; and who leaves.
const STAYING: [(&str, &str); 5] =
    [("Ans", "wijkteam"), ("Bram", "wijkteam"), ("Cor", "wijkteam"), ("Gert", "ggz"), ("Hanna", "ggz")];
const DEVICES_PER_USER: usize = 2;
const LEAVER: &str = "Vera";
const NOTE: &str = "basis: na het vertrek van Vera";

/// A plan in steady state before a removal. Devices before the network: they are dropped
/// first, the server after them.
struct Removal {
    plan: PlanId,
    /// Wim's device first, then the ten that stay.
    remaining: Vec<Device>,
    leaver: Device,
    /// (compartment, the epoch after the current one) of every document the leaver reads.
    rotated: Vec<(Compartment, u32)>,
    net: Network,
}

fn removal_setup(label: &str) -> Removal {
    let net = network(label, B_USERS);
    let mut remaining = vec![net.device("wim", "Wim")];
    let mut roles = vec!["wijkteam"];
    for (user, role) in STAYING {
        for k in 0..DEVICES_PER_USER {
            remaining.push(net.device(&format!("{}-{k}", user.to_lowercase()), user));
            roles.push(role);
        }
    }
    let mut leaver = net.device("vera", LEAVER);
    let plan = remaining[0].create_plan("Smit").expect("create plan");
    notes_in_three(&mut remaining[0], &plan, "voor het vertrek");
    sync_fully(&mut remaining[0]);
    for (user, role) in STAYING.iter().copied().chain([(LEAVER, "wijkteam")]) {
        assert_eq!(remaining[0].add_participant(&plan, user, role).expect("add"), ShareOutcome::Done);
    }
    roles.push("wijkteam");
    let mut devices: Vec<&mut Device> = remaining.iter_mut().chain([&mut leaver]).collect();
    settle(&mut devices, &roles, &plan);
    let rotated = leaver
        .keyed_compartments(&plan)
        .expect("keyed")
        .into_iter()
        .map(|c| (c, current_epoch(&leaver, &plan, c) + 1))
        .collect();
    Removal { plan, remaining, leaver, rotated, net }
}

/// The highest epoch of a document whose key `device` holds.
fn current_epoch(device: &Device, plan: &PlanId, compartment: Compartment) -> u32 {
    let held = |epoch: u32| device.held_document_key(plan, compartment, epoch).expect("key").is_some();
    (1..).take_while(|e| held(*e)).last().expect("a key of the first epoch")
}

fn has_note(device: &mut Device, plan: &PlanId) -> bool {
    device.read(plan).expect("read").notes.iter().any(|n| n.text == NOTE)
}

/// Syncs Wim's device and the ten until each holds the new epoch's key of every rotated
/// document it read before, and has Wim's note.
fn await_rotation(r: &mut Removal, cost: &mut Cost) -> usize {
    let plan = r.plan;
    let needs: Vec<Vec<(Compartment, u32)>> = r
        .remaining
        .iter()
        .map(|d| {
            let keyed = d.keyed_compartments(&plan).expect("keyed");
            r.rotated.iter().copied().filter(|(c, _)| keyed.contains(c)).collect()
        })
        .collect();
    let watched = vec![true; r.remaining.len()];
    let mut devices: Vec<&mut Device> = r.remaining.iter_mut().collect();
    drive(&mut devices, &watched, cost, "removal", |i, device, cost| {
        sync_counted(device, cost);
        let keyed =
            needs[i].iter().all(|(c, e)| device.held_document_key(&plan, *c, *e).expect("key").is_some());
        keyed && has_note(device, &plan)
    })
}

/// After the window: the server stores the new epochs, and the leaver gets neither their
/// keys nor the note.
fn check_removal(r: &mut Removal) {
    let conn = server_db(&r.net);
    for (compartment, epoch) in &r.rotated {
        let stored: u32 = conn
            .query_row(
                "SELECT MAX(epoch) FROM commitments WHERE plan_id = ?1 AND compartment = ?2",
                rusqlite::params![&r.plan.as_bytes()[..], *compartment as u8],
                |row| row.get(0),
            )
            .expect("commitments");
        assert_eq!(stored, *epoch, "{compartment} is at epoch {stored} on the server");
    }
    sync_fully(&mut r.leaver);
    for (compartment, epoch) in &r.rotated {
        assert!(r.leaver.held_document_key(&r.plan, *compartment, *epoch).expect("key").is_none());
    }
    assert!(!has_note(&mut r.leaver, &r.plan), "the leaver read the note written after the removal");
}

fn write_note(device: &mut Device, plan: &PlanId) {
    device.edit(plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, NOTE)).expect("note");
}

fn removal_by_regisseur(rep: usize) -> Cost {
    let mut r = removal_setup(&format!("b{rep}"));
    let plan = r.plan;
    let before = chain_length(&r.remaining[0], &plan);
    let mut cost = Cost { lead: Some(r.remaining[0].device_id()), ..Cost::default() };
    let started = Instant::now();
    r.remaining[0].remove_participant(&plan, LEAVER).expect("remove");
    post_act(&mut r.remaining[0], &mut cost);
    cost.act = started.elapsed();
    write_note(&mut r.remaining[0], &plan);
    cost.passes = await_rotation(&mut r, &mut cost);
    cost.time = started.elapsed();
    note_chain(&r.net, &plan, before, &mut cost);
    check_removal(&mut r);
    cost
}

fn removal_by_admin(rep: usize) -> Cost {
    let mut r = removal_setup(&format!("c{rep}"));
    let plan = r.plan;
    let relay = Relay::start(r.net.server.address());
    let admin = Admin { data: r.net.admin.data.clone(), server: relay.url.clone() };
    let before = chain_length(&r.remaining[0], &plan);
    let mut cost = Cost { lead: Some(r.remaining[0].device_id()), ..Cost::default() };
    let started = Instant::now();
    let out = admin.run(&["--json", "plan", "unassign", &plan.to_string(), "--user", LEAVER]);
    cost.act = started.elapsed();
    (cost.admin_up, cost.admin_down) = relay.counts();
    write_note(&mut r.remaining[0], &plan);
    cost.passes = await_rotation(&mut r, &mut cost);
    cost.time = started.elapsed();
    note_chain(&r.net, &plan, before, &mut cost);

    let json: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("plan unassign --json printed no JSON ({e}): {out}"));
    let documents = json["rotation"]["documents"].as_u64();
    assert_eq!(documents, Some(r.rotated.len() as u64), "the administrator's rotation: {json}");
    check_removal(&mut r);
    cost
}

fn measure_b(cfg: &Config, table: &mut Table) {
    let runs = repeat(cfg, 'b', removal_by_regisseur);
    table.section(&format!(
        "b. removal by the regisseur, 10 remaining devices + Wim's, no administrator (median of {})",
        cfg.reps
    ));
    let medians = cost_rows(
        table,
        &runs,
        "remove_participant → new epoch keyed everywhere, note read",
        "remove_participant + its sync (Wim)",
        "Wim, then 5 users × 2 devices",
    );
    cfg.by_regisseur.set(Some(medians));
}

fn measure_c(cfg: &Config, table: &mut Table) {
    let runs = repeat(cfg, 'c', removal_by_admin);
    table.section(&format!(
        "c. removal by the administrator (plan unassign + its re-key), same set-up (median of {})",
        cfg.reps
    ));
    let (time, all_bytes) = cost_rows(
        table,
        &runs,
        "plan unassign → new epoch keyed everywhere, note read",
        "eenplan-admin plan unassign, start to exit",
        "Wim, then 5 users × 2 devices",
    );
    match cfg.by_regisseur.get() {
        Some((b_time, b_bytes)) => {
            table.row(
                "b ÷ c: window time",
                secs_f(b_time),
                format!("c: {}", secs_f(time)),
                ratio(b_time, time),
            );
            table.row(
                "b ÷ c: bytes (b devices; c devices + admin HTTP)",
                bytes(b_bytes),
                format!("c: {}", bytes(all_bytes)),
                ratio(b_bytes, all_bytes),
            );
        }
        None => table.row("b ÷ c", "", "run b too (--only b,c) for the ratios", ""),
    }
}

fn repeat(cfg: &Config, measure: char, one: fn(usize) -> Cost) -> Vec<Cost> {
    (0..cfg.reps)
        .map(|rep| {
            let cost = one(rep);
            eprintln!("{measure}: run {}: {}", rep + 1, describe(&cost));
            cost
        })
        .collect()
}

// --- the table ----------------------------------------------------------------------------

fn secs_f(seconds: f64) -> String {
    secs(Duration::from_secs_f64(seconds))
}

fn describe(c: &Cost) -> String {
    format!(
        "{} (act {}), devices {} up + {} down, admin {} + {}, {} passes, {} syncs, {} rounds, {} held back",
        secs(c.time),
        secs(c.act),
        c.up,
        c.down,
        c.admin_up,
        c.admin_down,
        c.passes,
        c.syncs,
        c.rounds,
        c.held_back
    )
}

/// A measure's rows; its medians of window time (s) and of all bytes.
fn cost_rows(table: &mut Table, runs: &[Cost], window: &str, act: &str, order: &str) -> (f64, f64) {
    let m = |f: &dyn Fn(&Cost) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
    let time = m(&|c| c.time.as_secs_f64());
    let all = m(&|c| c.all_bytes() as f64);
    table.row(window, secs_f(time), "", "");
    table.row(format!("  of which {act}"), secs_f(m(&|c| c.act.as_secs_f64())), "", "");
    table.row(
        "bytes of every device sync in the window",
        bytes(m(&|c| c.device_bytes() as f64)),
        format!("up {} / down {}", bytes(m(&|c| c.up as f64)), bytes(m(&|c| c.down as f64))),
        "",
    );
    table.row(
        "  of which Wim's device (the regisseur)",
        bytes(m(&|c| (c.lead_up + c.lead_down) as f64)),
        format!("up {} / down {}", bytes(m(&|c| c.lead_up as f64)), bytes(m(&|c| c.lead_down as f64))),
        "",
    );
    if runs.iter().any(|c| c.admin_up + c.admin_down > 0) {
        table.row(
            "bytes of eenplan-admin's HTTP (headers incl.)",
            bytes(m(&|c| (c.admin_up + c.admin_down) as f64)),
            format!("up {} / down {}", bytes(m(&|c| c.admin_up as f64)), bytes(m(&|c| c.admin_down as f64))),
            "",
        );
    }
    table.row(
        "passes of the sync loop / sync() calls / sync rounds",
        format!("{} / {} / {}", m(&|c| c.passes as f64), m(&|c| c.syncs as f64), m(&|c| c.rounds as f64)),
        format!("order: {order}"),
        "",
    );
    table.row(
        "membership chain on the server after: the act's entry / all",
        format!("{} / {}", bytes(m(&|c| c.entry_bytes as f64)), bytes(m(&|c| c.chain_bytes as f64))),
        "",
        "",
    );
    table.row(
        "key envelopes sealed / received by devices",
        format!("{} / {}", m(&|c| c.envelopes_sent as f64), m(&|c| c.envelopes_received as f64)),
        "",
        "",
    );
    (time, all)
}

const FOOTER: &str = "\
Each window starts with the act (a: escalate_case; b: remove_participant; c: the eenplan-admin \
process) and ends with the device sync that completes the stop condition. a: Zoë and Piet hold \
all four compartments' keys, Mila basis and veiligheid, and Zoë holds regie by her own chain. \
b, c: the documents the leaver read are at the next epoch, Wim's device and the ten hold that \
key of each one their role reads, and Wim's note written after the act reached all ten. Device \
bytes: request + response bodies of every device sync in the window (SyncReport). Admin bytes: \
everything through a relay in front of the server, headers included. passes: rounds of the \
fixed sync order (the last may stop part-way); sync rounds: POST /v1/sync exchanges. \
ratio: b's median ÷ c's median.";

fn main() {
    let cfg = Config::from_args();
    eprintln!("regie_bench {} ({cfg:?})", if cfg.quick { "--quick" } else { "full" });
    run(
        "regie_bench",
        cfg.quick,
        &cfg,
        &cfg.only,
        &[('a', measure_a), ('b', measure_b), ('c', measure_c)],
        FOOTER,
    );
}
