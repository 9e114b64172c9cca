//! How long the administrator's `audit verify` takes to open and judge a region's day of
//! access-log events: `cargo run --release -p eenplan-protocol --example audit_verify --
//! [DEVICES] [EVENTS_PER_DEVICE]` (default 4,000 devices × 100 events = 400,000 events).
//! Prints one line of figures; DESIGN §9 asks for under 10 s.

use std::collections::HashMap;
use std::time::Instant;

use ed25519_dalek::SigningKey;
use eenplan_protocol::audit::{
    Actor, AuditAction, AuditEvent, AuditKey, AuditResult, AuditUpload, ChainHead, MAX_UPLOAD_EVENTS,
    verify_uploads,
};
use eenplan_protocol::sync::Fixed;

fn main() -> Result<(), String> {
    let numbers: Result<Vec<u64>, _> = std::env::args().skip(1).map(|a| a.parse::<u64>()).collect();
    let numbers = numbers.map_err(|e| format!("DEVICES and EVENTS_PER_DEVICE are numbers: {e}"))?;
    let devices = numbers.first().copied().unwrap_or(4_000);
    let per_device = numbers.get(1).copied().unwrap_or(100);
    let (secret, public) = eenplan_protocol::envelope::generate_keypair();
    let audit_key = AuditKey { organisation: "Regio".into(), public, version: 1, issued_at_ms: 0 };
    let made = Instant::now();
    let mut uploads = Vec::new();
    let mut writers = HashMap::new();
    for d in 0..devices {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&d.to_be_bytes());
        let key = SigningKey::from_bytes(&seed);
        let device = eenplan_protocol::certificate::device_id_of(key.verifying_key().as_bytes());
        writers.insert(device, key.verifying_key());
        let events = chain(&key, device, per_device);
        for (index, run) in events.chunks(MAX_UPLOAD_EVENTS).enumerate() {
            let first = (index * MAX_UPLOAD_EVENTS) as u64 + 1;
            let upload =
                AuditUpload::seal(device, &key, &audit_key, first, run).map_err(|e| e.to_string())?;
            uploads.push(upload.to_bytes());
        }
    }
    let made = made.elapsed();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    let report = verify_uploads(&uploads, &writers, &HashMap::from([(1, *secret)]), threads);
    let took = started.elapsed();
    let events: usize = report.chains.iter().map(|(_, c, _)| c.events.len()).sum();
    let findings: usize = report.chains.iter().map(|(_, c, _)| c.findings.len()).sum();
    println!(
        "audit verify: {events} events of {devices} devices in {} uploads, {threads} threads: {:.2} s \
         ({findings} findings, {} upload problems; making them took {:.1} s)",
        uploads.len(),
        took.as_secs_f64(),
        report.problems.len(),
        made.as_secs_f64()
    );
    Ok(())
}

fn chain(key: &SigningKey, device: [u8; 16], count: u64) -> Vec<eenplan_protocol::audit::SignedEvent> {
    let mut head = ChainHead::default();
    (1..=count)
        .map(|seq| {
            let event = AuditEvent {
                seq,
                prev: head.hash,
                at_ms: 1_764_000_000_000 + seq as i64 * 60_000,
                actor: Actor {
                    device: Fixed(device),
                    user_id: 7,
                    user_name: "Wim de Vries".into(),
                    organisation: "Wijkteam Zaanstad".into(),
                    role: "wijkteam".into(),
                },
                on_behalf_of: None,
                action: AuditAction::Read,
                plan: Some(Fixed([(seq % 40) as u8; 16])),
                compartment: Some(1),
                object: None,
                result: AuditResult::Done,
                detail: None,
            };
            let signed = event.sign(key);
            head = ChainHead::after(&signed, seq);
            signed
        })
        .collect()
}
