#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `revoke_bench`: what revoking a device costs, end to end, against a real `eenplan-server`
//! process, with the real `eenplan-admin` CLI and devices with real stores; and what the
//! hybrid (post-quantum) key envelope costs against X25519 alone.
//!
//! ```text
//! cargo build --workspace --release
//! target/release/revoke_bench            # full: 40 plans × 4 compartments, 12 devices, 3 revoked
//! target/release/revoke_bench --quick    # small: 8 plans × 4 compartments, 4 devices, 2 revoked
//! ```
//!
//! Options: `--only a,b` runs some measures; `--plans N`, `--devices N`, `--revocations N`,
//! `--reps N` override the sizes. Progress goes to stderr, the tables to stdout.
//!
//! a. **Revoking one device.** N devices (one user each, all in the role `wijkteam`, which a
//!    version-2 policy set with `eenplan-admin policy set` lets read and write all four
//!    compartments); the first creates P plans, makes every other user a participant, and
//!    every device syncs until it holds the key of every compartment of every plan
//!    (`Device::keyed_compartments`). Then devices are revoked one after another, each with
//!    `eenplan-admin --json device revoke ID --reason lost`, which also runs the rekey loop
//!    that moves every one of the P × 4 documents to a new epoch. Measured per revocation:
//!    the command's wall time (process start to exit), the HTTP bytes it sent and received
//!    (headers included, counted by a TCP relay between the CLI and the server), the rekey
//!    bodies and envelopes its `--json` summary reports, its requests (the server's
//!    `/metrics`), and the `sync()` of one remaining device until it holds the new keys
//!    (time, and bytes from its `SyncReport`). After each, that device's next push to every
//!    compartment must be accepted (it seals under the new keys), every other remaining
//!    device syncs to a steady state, and the revoked device must be refused.
//! b. **Envelope size and cost.** One epoch key sealed with the hybrid suite (2: X-Wing =
//!    ML-KEM-768 + X25519) and with X25519 alone (suite 1), bare and with the sealer's
//!    80-byte signature trailer; median time to seal, open, sign and verify one envelope.
//!
//! Every figure is a median over repeated runs unless the table says otherwise.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use eenplan_core::plan::{Compartment, NoteKind};
use eenplan_core::{Device, PlanId};
use eenplan_protocol::bundle::DocumentId;
use eenplan_protocol::envelope;
use eenplan_tests::bench::{
    Args, Relay, bytes, cores, median, policy_where_reading_all, scratch, secs, sync_fully,
};
use eenplan_tests::network::{Admin, Server, device_keystore};

const ORG: &str = "Wijkteam Noord";
/// The role every user has: the policy this benchmark sets lets it read all four compartments.
const ROLE: &str = "wijkteam";

// --- configuration -----------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Config {
    quick: bool,
    only: Vec<char>,
    /// (a) plans the first device creates; every device takes part in all of them.
    plans: usize,
    /// (a) devices (one user each) before the first revocation.
    devices: usize,
    /// (a) devices revoked one after another.
    revocations: usize,
    /// (b) envelopes sealed, opened, signed and verified per suite.
    reps: usize,
}

impl Config {
    fn from_args() -> Config {
        let args = Args::from_env(
            "revoke_bench [--quick] [--only a,b] [--plans N] [--devices N] [--revocations N] [--reps N]",
        );
        let number = |flag: &str, default: usize| args.number(flag, default);
        let quick = args.has("--quick");
        let only = args.only(&['a', 'b']);
        let cfg = Config {
            quick,
            only,
            plans: number("--plans", if quick { 8 } else { 40 }),
            devices: number("--devices", if quick { 4 } else { 12 }),
            revocations: number("--revocations", if quick { 2 } else { 3 }),
            reps: number("--reps", if quick { 50 } else { 200 }),
        };
        // The creator and the measured device stay; at least one device is revoked.
        if cfg.revocations == 0 || cfg.devices < cfg.revocations + 2 || cfg.plans == 0 || cfg.reps == 0 {
            eprintln!(
                "revoke_bench: need --revocations ≥ 1, --devices ≥ revocations + 2, --plans ≥ 1, --reps ≥ 1"
            );
            std::process::exit(2);
        }
        cfg
    }

    fn runs(&self, measure: char) -> bool {
        self.only.contains(&measure)
    }
}

// --- the network: a server process, the admin CLI, devices ------------------------------

/// The server's `/metrics`, by sample name (labels included). Only the operator's token is
/// answered; without it every count read as 0.
fn metrics(server: &Server) -> HashMap<String, f64> {
    let address = server.address();
    let mut stream = TcpStream::connect(&address).expect("connect for /metrics");
    write!(
        stream,
        "GET /metrics HTTP/1.0\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\r\n",
        server.metrics_token.as_deref().unwrap_or_default()
    )
    .expect("send");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read /metrics");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(name, v)| v.parse().ok().map(|v| (name.to_owned(), v)))
        .collect()
}

fn since(after: &HashMap<String, f64>, before: &HashMap<String, f64>, name: &str) -> u64 {
    let get = |m: &HashMap<String, f64>| m.get(name).copied().unwrap_or(0.0);
    (get(after) - get(before)).max(0.0) as u64
}

/// Whether `device` holds the key of every compartment of every plan.
fn holds_all_keys(device: &Device, plans: &[PlanId]) -> bool {
    plans.iter().all(|plan| {
        device.keyed_compartments(plan).expect("keyed compartments").len() == Compartment::ALL.len()
    })
}

// --- statistics and the tables -----------------------------------------------------------

/// A markdown table, columns padded to line up in a terminal too.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|h| (*h).to_owned()).collect(), rows: Vec::new() }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn print(&self) {
        let columns = self.header.len();
        let width = |i: usize| {
            self.rows
                .iter()
                .chain(std::iter::once(&self.header))
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
                .max(3)
        };
        let widths: Vec<usize> = (0..columns).map(width).collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = (0..columns)
                .map(|i| {
                    let cell = cells.get(i).map_or("", String::as_str);
                    if i == 0 { format!("{cell:<0$}", widths[i]) } else { format!("{cell:>0$}", widths[i]) }
                })
                .collect();
            println!("| {} |", padded.join(" | "));
        };
        line(&self.header);
        let rule: Vec<String> = widths
            .iter()
            .enumerate()
            .map(|(i, w)| if i == 0 { "-".repeat(w + 2) } else { format!("{}:", "-".repeat(w + 1)) })
            .collect();
        println!("|{}|", rule.join("|"));
        for r in &self.rows {
            line(r);
        }
    }
}

// --- a. revoking one device ----------------------------------------------------------------

/// What one revocation cost.
#[derive(Debug, Clone, Default)]
struct Revocation {
    others: usize,
    documents: u64,
    envelopes: u64,
    wall: Duration,
    admin_seconds: f64,
    http_up: u64,
    http_down: u64,
    rekey_bodies: u64,
    admin_requests: u64,
    sync_time: Duration,
    sync_calls: usize,
    sync_rounds: usize,
    sync_up: u64,
    sync_down: u64,
    sync_envelopes: usize,
}

/// The network of (a) once every device holds every key. Fields drop in order: the devices
/// and the server process go before their scratch directory.
struct Setup {
    server: Server,
    admin: Admin,
    /// (user, device); the first is the creator of the plans.
    devices: Vec<(String, Device)>,
    plans: Vec<PlanId>,
    time: Duration,
    _dir: tempfile::TempDir,
}

/// A server, the policy that lets [`ROLE`] read all four compartments, and one approved,
/// synced device per user.
fn enrol_devices(cfg: &Config, dir: &Path) -> (Server, Admin, Vec<(String, Device)>) {
    let server = Server::start(&dir.join("server"));
    let admin = Admin::init(&dir.join("admin"), &server);
    let policy_file = dir.join("policy-v2.toml");
    std::fs::write(&policy_file, policy_where_reading_all(ROLE)).expect("write the policy file");
    admin.run(&["policy", "set", policy_file.to_str().expect("a UTF-8 path")]);
    admin.run(&["org", "add", ORG]);
    let users: Vec<String> = (0..cfg.devices).map(|i| format!("Medewerker {i:02}")).collect();
    for user in &users {
        admin.run(&["user", "add", "--org", ORG, "--name", user, "--role", ROLE]);
    }
    let devices = users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let path = dir.join(format!("device-{i:02}"));
            let mut device = Device::init(&path, &device_keystore()).expect("device init");
            let code = admin.run(&["device", "enrol", "--user", user]);
            device.enrol(&server.url, &code, "Bench", eenplan_core::sync::Platform::Desktop).expect("enrol");
            admin.run(&["device", "approve", "--code", &code]);
            device.sync().expect("first sync");
            (user.clone(), device)
        })
        .collect();
    (server, admin, devices)
}

/// The creator makes the plans, with a note in every compartment, and shares them with every
/// other user.
fn create_and_share_plans(cfg: &Config, devices: &mut [(String, Device)]) -> Vec<PlanId> {
    let users: Vec<String> = devices.iter().skip(1).map(|(user, _)| user.clone()).collect();
    let creator = &mut devices[0].1;
    let mut plans = Vec::new();
    for k in 0..cfg.plans {
        let plan = creator.create_plan(&format!("Gezin {k:02}")).expect("create plan");
        creator
            .edit(&plan, |p| {
                for compartment in Compartment::ALL {
                    p.add_note(compartment, NoteKind::Note, &format!("Eerste notitie in {compartment}"))?;
                }
                Ok(())
            })
            .expect("first notes");
        plans.push(plan);
    }
    sync_fully(creator);
    for plan in &plans {
        for user in &users {
            creator.add_participant(plan, user, ROLE).expect("add participant");
        }
    }
    plans
}

/// Everyone syncs until everyone holds every key (the creator seals them as the server asks).
fn sync_until_everyone_holds_every_key(devices: &mut [(String, Device)], plans: &[PlanId]) {
    let mut round = 0;
    loop {
        round += 1;
        for (_, device) in devices.iter_mut() {
            let (report, _) = sync_fully(device);
            assert!(report.refused.is_empty(), "refused during setup: {:?}", report.refused);
        }
        let keyed = devices.iter().filter(|(_, d)| holds_all_keys(d, plans)).count();
        eprintln!(
            "a: key round {round}: {keyed}/{} devices hold all {} keys",
            devices.len(),
            plans.len() * 4
        );
        if keyed == devices.len() {
            break;
        }
        assert!(round < 10, "the devices never got all keys");
    }
}

fn set_up(cfg: &Config) -> Setup {
    let started = Instant::now();
    let dir = scratch("revoke-bench", "a");
    let (server, admin, mut devices) = enrol_devices(cfg, dir.path());
    eprintln!("a: {} devices enrolled ({})", devices.len(), secs(started.elapsed()));
    let plans = create_and_share_plans(cfg, &mut devices);
    sync_until_everyone_holds_every_key(&mut devices, &plans);
    let time = started.elapsed();
    eprintln!("a: setup {} ({} plans × 4 compartments, {} devices)", secs(time), plans.len(), devices.len());
    Setup { server, admin, devices, plans, time, _dir: dir }
}

/// Revokes `victim_id` through the relay with `device revoke --json`: the command's own
/// figures, and the bytes and requests the relay and the server's `/metrics` counted.
fn run_revoke(setup: &Setup, relay: &Relay, relayed: &Admin, victim_id: &str) -> Revocation {
    let before = metrics(&setup.server);
    let (up0, down0) = relay.counts();
    let started = Instant::now();
    let out = relayed.run(&["--json", "device", "revoke", victim_id, "--reason", "lost"]);
    let wall = started.elapsed();
    let (up1, down1) = relay.counts();
    let after = metrics(&setup.server);
    let json: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("device revoke --json printed no JSON ({e}): {out}"));
    let rotation = &json["rotation"];
    let number = |key: &str| {
        rotation[key].as_u64().unwrap_or_else(|| panic!("no rotation.{key} in the JSON summary: {json}"))
    };
    let documents = number("documents");
    assert_eq!(
        documents,
        (setup.plans.len() * Compartment::ALL.len()) as u64,
        "the revocation rotated {documents} documents, not every one the device could read: {json}"
    );
    Revocation {
        others: setup.devices.len(),
        documents,
        envelopes: number("envelopes"),
        wall,
        admin_seconds: rotation["seconds"].as_f64().unwrap_or(0.0),
        http_up: up1 - up0,
        http_down: down1 - down0,
        rekey_bodies: number("bytes_uploaded"),
        admin_requests: since(&after, &before, "eenplan_requests_total{class=\"admin\"}"),
        ..Revocation::default()
    }
}

/// One remaining device syncs until it holds the new keys (timed into `result`), then writes
/// to every compartment of a plan under them, which must be accepted.
fn measure_remaining_device(measured: &mut Device, plans: &[PlanId], r: usize, result: &mut Revocation) {
    let started = Instant::now();
    let (report, calls) = sync_fully(measured);
    result.sync_time = started.elapsed();
    result.sync_calls = calls;
    result.sync_rounds = report.rounds;
    result.sync_up = report.bytes_up;
    result.sync_down = report.bytes_down;
    result.sync_envelopes = report.envelopes_received;
    assert!(
        report.envelopes_received as u64 >= result.documents,
        "the remaining device received {} envelopes for {} rotated documents",
        report.envelopes_received,
        result.documents
    );
    measured
        .edit(&plans[r % plans.len()], |p| {
            for compartment in Compartment::ALL {
                p.add_note(compartment, NoteKind::Note, &format!("Na intrekking {r} in {compartment}"))?;
            }
            Ok(())
        })
        .expect("an edit after the revocation");
    let (check, _) = sync_fully(measured);
    assert!(
        check.refused.is_empty() && check.pushed_bundles >= Compartment::ALL.len(),
        "after revocation {r}: pushed {} bundles, refused {:?}",
        check.pushed_bundles,
        check.refused
    );
}

/// Revocation `r`: the last device is revoked and measured; the others reach a steady state
/// before the next, and the revoked device must be refused.
fn revoke_next(setup: &mut Setup, relay: &Relay, relayed: &Admin, r: usize) -> Revocation {
    let (user, mut victim) = setup.devices.pop().expect("a device to revoke");
    let victim_id = victim.device_id().to_string();
    let mut result = run_revoke(setup, relay, relayed, &victim_id);
    // Not the creator: a device that only reads what others made.
    measure_remaining_device(&mut setup.devices[1].1, &setup.plans, r, &mut result);
    for (_, device) in &mut setup.devices {
        let (report, _) = sync_fully(device);
        assert!(report.refused.is_empty(), "refused after revocation {r}: {:?}", report.refused);
    }
    match victim.sync() {
        Ok(_) => panic!("the revoked device {victim_id} ({user}) could still sync"),
        Err(e) => eprintln!("a: revoked device refused: {e}"),
    }
    eprintln!(
        "a: revocation {} ({} others remain): {} documents, {} envelopes, {} wall; device sync {}",
        r + 1,
        result.others,
        result.documents,
        result.envelopes,
        secs(result.wall),
        secs(result.sync_time)
    );
    result
}

/// The table of (a): a column per revocation and their median; and the line of parameters.
fn revocation_table(cfg: &Config, results: &[Revocation], setup_time: Duration) -> (Table, String) {
    let mut header: Vec<String> = vec!["revoking one device".into()];
    header.extend(
        results
            .iter()
            .enumerate()
            .map(|(i, r)| format!("#{} ({} other{})", i + 1, r.others, if r.others == 1 { "" } else { "s" })),
    );
    header.push("median".into());
    let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut table = Table::new(&header_refs);
    let mut add = |name: &str, values: Vec<f64>, show: &dyn Fn(f64) -> String| {
        let mut cells = vec![name.to_owned()];
        cells.extend(values.iter().map(|v| show(*v)));
        cells.push(show(median(&values)));
        table.row(cells);
    };
    let count = |v: f64| format!("{v:.0}");
    let time = |v: f64| secs(Duration::from_secs_f64(v));
    let size = |v: f64| bytes(v);
    let col = |f: fn(&Revocation) -> f64| results.iter().map(f).collect::<Vec<f64>>();
    add("other devices on each plan", col(|r| r.others as f64), &count);
    add("documents moved to a new epoch", col(|r| r.documents as f64), &count);
    add("envelopes made (admin --json)", col(|r| r.envelopes as f64), &count);
    add("`device revoke` wall time, start to exit", col(|r| r.wall.as_secs_f64()), &time);
    add("  of which the rekey loop (admin --json)", col(|r| r.admin_seconds), &time);
    add("admin HTTP requests (server /metrics)", col(|r| r.admin_requests as f64), &count);
    add("admin bytes up (HTTP, headers incl.)", col(|r| r.http_up as f64), &size);
    add("  of which rekey bodies (admin --json)", col(|r| r.rekey_bodies as f64), &size);
    add("admin bytes down (HTTP, headers incl.)", col(|r| r.http_down as f64), &size);
    add("remaining device: sync() until new keys held", col(|r| r.sync_time.as_secs_f64()), &time);
    add("  sync() calls", col(|r| r.sync_calls as f64), &count);
    add("  rounds", col(|r| r.sync_rounds as f64), &count);
    add("  envelopes received", col(|r| r.sync_envelopes as f64), &count);
    add("  bytes up (SyncReport)", col(|r| r.sync_up as f64), &size);
    add("  bytes down (SyncReport)", col(|r| r.sync_down as f64), &size);
    let params = format!(
        "{} plans × 4 compartments = {} documents; {} devices (role {ROLE}, policy v2 reads all four), each on \
         every plan; {} revoked one after another; setup {}",
        cfg.plans,
        cfg.plans * 4,
        cfg.devices,
        cfg.revocations,
        secs(setup_time)
    );
    (table, params)
}

fn measure_a(cfg: &Config) -> (Table, String) {
    let mut setup = set_up(cfg);
    let relay = Relay::start(setup.server.address());
    let relayed = Admin { data: setup.admin.data.clone(), server: relay.url.clone() };
    let results: Vec<Revocation> =
        (0..cfg.revocations).map(|r| revoke_next(&mut setup, &relay, &relayed, r)).collect();
    revocation_table(cfg, &results, setup.time)
}

// --- b. envelope size and cost ---------------------------------------------------------------

struct SuiteFigures {
    name: &'static str,
    suite: u16,
    public: usize,
    bare: usize,
    signed: usize,
    seal: Duration,
    open: Duration,
    sign: Duration,
    verify: Duration,
}

fn measure_suite<S: std::ops::Deref<Target = [u8; 32]>>(
    name: &'static str,
    keypair: (S, Vec<u8>),
    reps: usize,
) -> SuiteFigures {
    let (secret, public) = keypair;
    // Keys from the same randomness the envelopes use: an epoch key and the sealer's key.
    let (epoch_key, _) = envelope::generate_x25519_keypair();
    let (sealer_seed, _) = envelope::generate_x25519_keypair();
    let sealer_key = ed25519_dalek::SigningKey::from_bytes(&sealer_seed);
    let sealer_public = sealer_key.verifying_key().to_bytes();
    let document = DocumentId { plan: [0x5a; 16], compartment: 3 };
    let recipient = [0xa5u8; 16];
    let sealer = [0x3cu8; 16];
    let epoch = 2;
    // Warm up (tables, page faults) before timing.
    let warm = envelope::seal(&public, recipient, document, epoch, &epoch_key).expect("seal");
    // The public key's length names the suite the secret belongs to.
    let key = envelope::RecipientSecret::for_public(&public, &secret).expect("a known suite");
    envelope::open_as(&warm, key, recipient, document, epoch).expect("open");

    let mut sealed = Vec::with_capacity(reps);
    let mut seal_times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let started = Instant::now();
        let e = envelope::seal(&public, recipient, document, epoch, &epoch_key).expect("seal");
        seal_times.push(started.elapsed());
        sealed.push(e);
    }
    let mut open_times = Vec::with_capacity(reps);
    for e in &sealed {
        let started = Instant::now();
        let key = envelope::open_as(e, key, recipient, document, epoch).expect("open");
        open_times.push(started.elapsed());
        assert_eq!(*key, *epoch_key, "an envelope opened to another key");
    }
    let bare = sealed[0].len();
    assert!(sealed.iter().all(|e| e.len() == bare), "envelopes of one suite differ in size");
    let mut sign_times = Vec::with_capacity(reps);
    let mut signed = Vec::with_capacity(reps);
    for e in sealed {
        let started = Instant::now();
        let s = envelope::sign(e, sealer, &sealer_key, document, epoch, recipient);
        sign_times.push(started.elapsed());
        signed.push(s);
    }
    let mut verify_times = Vec::with_capacity(reps);
    for s in &signed {
        let started = Instant::now();
        let (e, who, signature) = envelope::split_signed(s).expect("split");
        envelope::verify_signature(e, &signature, &sealer_public, document, epoch, recipient)
            .expect("verify");
        verify_times.push(started.elapsed());
        assert_eq!(who, sealer);
    }
    SuiteFigures {
        name,
        suite: envelope::suite_of(&signed[0]).expect("suite"),
        public: public.len(),
        bare,
        signed: signed[0].len(),
        seal: median(&seal_times),
        open: median(&open_times),
        sign: median(&sign_times),
        verify: median(&verify_times),
    }
}

fn measure_b(cfg: &Config) -> Table {
    let classic = measure_suite("X25519 alone", envelope::generate_x25519_keypair(), cfg.reps);
    let hybrid = measure_suite("X-Wing (ML-KEM-768 + X25519)", envelope::generate_keypair(), cfg.reps);
    assert_eq!(classic.suite, envelope::SUITE_X25519_CHACHA);
    assert_eq!(hybrid.suite, envelope::SUITE_XWING_CHACHA);
    let mut table = Table::new(&[
        "key envelope (one 32-byte epoch key)",
        "recipient public key",
        "envelope",
        "signed (+ 80 B trailer)",
        "seal",
        "open",
        "sign",
        "verify",
    ]);
    for s in [&classic, &hybrid] {
        table.row(vec![
            format!("suite {}: {}", s.suite, s.name),
            format!("{} B", s.public),
            format!("{} B", s.bare),
            format!("{} B", s.signed),
            secs(s.seal),
            secs(s.open),
            secs(s.sign),
            secs(s.verify),
        ]);
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { format!("{:.1}×", a / b) } else { "—".into() };
    let d = |x: Duration| x.as_secs_f64();
    table.row(vec![
        "hybrid ÷ X25519".into(),
        ratio(hybrid.public as f64, classic.public as f64),
        ratio(hybrid.bare as f64, classic.bare as f64),
        ratio(hybrid.signed as f64, classic.signed as f64),
        ratio(d(hybrid.seal), d(classic.seal)),
        ratio(d(hybrid.open), d(classic.open)),
        ratio(d(hybrid.sign), d(classic.sign)),
        ratio(d(hybrid.verify), d(classic.verify)),
    ]);
    table
}

fn main() {
    let cfg = Config::from_args();
    eprintln!("revoke_bench {} ({cfg:?})", if cfg.quick { "--quick" } else { "full" });
    let started = Instant::now();
    let b = cfg.runs('b').then(|| measure_b(&cfg));
    let a = cfg.runs('a').then(|| measure_a(&cfg));
    println!();
    println!(
        "revoke_bench {} — {} cores, {} in all; medians unless a column says otherwise",
        if cfg.quick { "--quick" } else { "(full)" },
        cores(),
        secs(started.elapsed())
    );
    if let Some((table, params)) = a {
        println!();
        println!("a. {params}");
        println!();
        table.print();
    }
    if let Some(table) = b {
        println!();
        println!("b. key envelopes, {} repetitions each; times are medians", cfg.reps);
        println!();
        table.print();
    }
}
