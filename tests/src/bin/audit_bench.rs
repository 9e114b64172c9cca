#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `audit_bench`: what the access log (DESIGN §8, NEN 7513) costs.
//!
//! ```text
//! cargo build --workspace --release --bins
//! target/release/audit_bench            # full: 11 repetitions, 400,000 events
//! target/release/audit_bench --quick    # 3 repetitions
//! ```
//!
//! Options: `--reps N`; `--events N` (400,000); `--devices N` (4,000). Progress goes to
//! stderr, the table to stdout.
//!
//! What logging adds to a plan read on the device, and the bytes an event takes at rest, are
//! measure 4 of the storage benchmark (`cargo bench --workspace --bench store`), beside the
//! store's other figures.
//!
//! b. **`audit verify` over one region's day**: 400,000 events of 4,000 devices, each
//!    device's day in five uploads (one per sync), sealed to the organisation's audit key.
//!    Measured: `verify_uploads`, what `eenplan-admin audit verify` runs once it has the
//!    pages — decode each upload, check its device signature, open it with the audit secret,
//!    and judge each device's chain (`verify_chain`: every event signature, the links, gaps
//!    and forks) on every core. Target: under 10 s. Also the bytes per event on the wire.
//!
//! Every figure is a median over the repetitions.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use ed25519_dalek::VerifyingKey;
use eenplan_protocol::audit::{
    Actor, AuditAction, AuditEvent, AuditKey, AuditResult, AuditUpload, ChainHead, SignedEvent,
    verify_uploads,
};
use eenplan_protocol::sync::Fixed;
use eenplan_tests::bench::{Args, Table, bytes, cores, median, ratio, run, secs};

const TARGET_VERIFY: Duration = Duration::from_secs(10);
const UPLOADS_PER_DAY: usize = 5;

#[derive(Debug, Clone)]
struct Config {
    quick: bool,
    only: Vec<char>,
    reps: usize,
    events: usize,
    devices: usize,
}

impl Config {
    fn from_args() -> Config {
        let args = Args::from_env("audit_bench [--quick] [--reps N] [--events N] [--devices N]");
        let quick = args.has("--quick");
        let cfg = Config {
            quick,
            only: args.only(&['b']),
            reps: args.number("--reps", if quick { 3 } else { 11 }),
            events: args.number("--events", 400_000),
            devices: args.number("--devices", 4_000),
        };
        if cfg.reps == 0 || cfg.devices == 0 || cfg.events < cfg.devices * UPLOADS_PER_DAY {
            eprintln!("audit_bench: need --reps ≥ 1 and --events ≥ 5 × --devices");
            std::process::exit(2);
        }
        cfg
    }
}

// --- b. audit verify ------------------------------------------------------------------------

/// One device's day: its id, key and sealed uploads.
struct DeviceDay {
    device: [u8; 16],
    key: SigningKey,
    uploads: Vec<Vec<u8>>,
}

fn actor(device: [u8; 16], n: usize) -> Actor {
    Actor {
        device: Fixed(device),
        user_id: n as i64 + 1,
        user_name: format!("Medewerker {n}"),
        organisation: "Wijkteam Zaanstad".into(),
        role: "wijkteam".into(),
    }
}

/// A day of `events` events of one device: reads and edits of its plans, every few minutes.
fn day_of(n: usize, events: usize, audit_key: &AuditKey) -> DeviceDay {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(n as u64).to_be_bytes());
    let key = SigningKey::from_bytes(&seed);
    let device = eenplan_protocol::certificate::device_id_of(key.verifying_key().as_bytes());
    let who = actor(device, n);
    let mut head = ChainHead::default();
    let mut signed: Vec<SignedEvent> = Vec::with_capacity(events);
    for i in 0..events {
        let mut plan = [0u8; 16];
        plan[..2].copy_from_slice(&((i % 40) as u16).to_be_bytes());
        plan[8..].copy_from_slice(&(n as u64).to_be_bytes());
        let event = AuditEvent {
            seq: head.seq + 1,
            prev: head.hash,
            at_ms: 1_796_000_000_000 + (i as i64) * 240_000,
            actor: who.clone(),
            on_behalf_of: None,
            action: if i % 5 == 0 { AuditAction::Change } else { AuditAction::Read },
            plan: Some(Fixed(plan)),
            compartment: Some((i % 4) as u8),
            object: None,
            result: AuditResult::Done,
            detail: None,
        };
        let one = event.sign(&key);
        head = ChainHead::after(&one, event.seq);
        signed.push(one);
    }
    let per_upload = events.div_ceil(UPLOADS_PER_DAY);
    let uploads = signed
        .chunks(per_upload)
        .enumerate()
        .map(|(i, run)| {
            let first = (i * per_upload) as u64 + 1;
            AuditUpload::seal(device, &key, audit_key, first, run).unwrap().to_bytes()
        })
        .collect();
    DeviceDay { device, key, uploads }
}

/// What `audit verify` does with the day's uploads once fetched; the events it judged sound.
fn verify_all(days: &[DeviceDay], uploads: &[Vec<u8>], secret: &[u8; 32]) -> usize {
    let writers: HashMap<[u8; 16], VerifyingKey> =
        days.iter().map(|d| (d.device, d.key.verifying_key())).collect();
    let report = verify_uploads(uploads, &writers, &HashMap::from([(1, *secret)]), cores());
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    report
        .chains
        .iter()
        .map(|(_, chain, _)| {
            assert!(chain.findings.is_empty(), "{:?}", chain.findings);
            chain.events.len()
        })
        .sum()
}

fn measure_verify(cfg: &Config, table: &mut Table) {
    let (secret, public) = eenplan_protocol::envelope::generate_keypair();
    let audit_key =
        AuditKey { organisation: "Wijkteam Zaanstad".into(), public, version: 1, issued_at_ms: 0 };
    let per_device = cfg.events / cfg.devices;
    eprintln!("audit_bench b: sealing {} events of {} devices…", per_device * cfg.devices, cfg.devices);
    let days: Vec<DeviceDay> = (0..cfg.devices).map(|n| day_of(n, per_device, &audit_key)).collect();
    let uploads: Vec<Vec<u8>> = days.iter().flat_map(|d| d.uploads.iter().cloned()).collect();
    let upload_bytes: usize = uploads.iter().map(Vec::len).sum();
    let mut times = Vec::new();
    for rep in 0..cfg.reps {
        let started = Instant::now();
        let verified = verify_all(&days, &uploads, &secret);
        times.push(started.elapsed());
        assert_eq!(verified, per_device * cfg.devices);
        eprintln!("audit_bench b: rep {rep}: {}", secs(times[rep]));
    }
    let time = median(&times);
    table.section(&format!(
        "b. audit verify: {} events of {} devices, {} uploads",
        per_device * cfg.devices,
        cfg.devices,
        cfg.devices * UPLOADS_PER_DAY
    ));
    table.row(
        "verify (decode, open, every signature, links)",
        secs(time),
        format!("target < {}", secs(TARGET_VERIFY)),
        ratio(time.as_secs_f64(), TARGET_VERIFY.as_secs_f64()),
    );
    table.row(
        "upload bytes per event on the wire",
        bytes(upload_bytes as f64 / (per_device * cfg.devices) as f64),
        format!("{per_device} events a day in {UPLOADS_PER_DAY} uploads"),
        "",
    );
}

fn main() {
    let cfg = Config::from_args();
    let measures: &[eenplan_tests::bench::Measure<Config>] = &[('b', measure_verify)];
    run("audit_bench", cfg.quick, &cfg, &cfg.only, measures, "");
}
