//! The server killed with SIGKILL in the middle of a sync storm: three devices edit one plan and
//! sync in a loop while the server process dies twice and comes back on the same address.
//!
//! What must hold afterwards: a push the server acknowledged was committed before the
//! acknowledgement, so the device may forget it; a push that was not acknowledged stays in the
//! device's outbox and is pushed again, and the server stores it once however often it arrives.
//! So every edit reaches every device, and the server's log holds each bundle exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use eenplan_core::plan::{Compartment, NoteKind};
use eenplan_core::sync::SyncError;
use eenplan_core::{CoreError, Device};
use eenplan_tests::network::{Admin, Server, binary, enrolled_device};

/// Edits each device makes during the storm; each is followed by a sync attempt.
const EDITS: usize = 40;
/// How often the server is killed while the storm runs.
const KILLS: usize = 2;
/// Successful syncs (by any device) before each kill, so every kill lands in a running storm
/// and the server has acknowledged work from before it.
const SYNCS_BEFORE_KILL: usize = 8;
/// A device that cannot reach the server waits this long before its next edit, as a real
/// device backs off instead of spinning; it keeps the storm from spending all its edits while
/// the server restarts.
const RETRY_PAUSE: Duration = Duration::from_millis(5);
/// Attempts to bind the old address again (a port can be briefly unavailable after a kill).
const RESTART_ATTEMPTS: u32 = 20;
/// Syncs a device gets after the storm to empty its outbox.
const SETTLE_SYNCS: usize = 10;

const PEOPLE: [(&str, &str); 3] = [("rita", "Rita"), ("wim", "Wim"), ("wendy", "Wendy")];

/// Starts the server on `listen`, or returns `None` when it exits before listening (the
/// address is still taken).
fn try_start_on(data: &Path, listen: &str) -> Option<Server> {
    let mut child = Command::new(binary("eenplan-server"))
        .args(["serve", "--data"])
        .arg(data)
        .args(["--listen", listen])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(Ok(line)) = lines.next() {
        if let Some(addr) = line.strip_prefix("listening on ") {
            let url = format!("http://{}", addr.trim());
            // Keep draining stdout so the server never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return Some(Server { child, url, data: data.to_path_buf(), metrics_token: None });
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Brings the server back on the address the devices were enrolled with: they pinned its URL.
fn restart_on(data: &Path, address: &str) -> Server {
    for attempt in 1..=RESTART_ATTEMPTS {
        if let Some(server) = try_start_on(data, address) {
            assert_eq!(server.address(), address, "the server came back on another address");
            return server;
        }
        // Back-off between bind attempts, not synchronisation: nothing signals a free port.
        std::thread::sleep(Duration::from_millis(25) * attempt);
    }
    panic!("the server could not bind {address} again after {RESTART_ATTEMPTS} attempts");
}

/// What one device's storm thread hands back.
struct Storm {
    device: Device,
    markers: Vec<String>,
    synced: usize,
    failed: usize,
}

#[test]
fn every_push_the_server_acknowledged_survives_a_sigkill_exactly_once_and_no_device_loses_an_edit() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let mut server = Server::start(&data);
    let address = server.address();
    let admin = Admin::init(&dir.path().join("admin"), &server);
    admin.run(&["org", "add", "Wijkteam Noord"]);
    for (_, user) in PEOPLE {
        admin.run(&["user", "add", "--org", "Wijkteam Noord", "--name", user, "--role", "wijkteam"]);
    }
    let mut devices: Vec<Device> = PEOPLE
        .iter()
        .map(|(name, user)| enrolled_device(&admin, &server, &dir.path().join(name), user))
        .collect();
    let device_ids: Vec<[u8; 16]> = devices.iter().map(|d| *d.device_id().as_bytes()).collect();

    let plan = devices[0].create_plan("Storm").unwrap();
    // The changes creating the plan are the first device's besides its storm edits; they bound
    // how many change bundles it can have pushed.
    let setup_changes = usize::try_from(devices[0].pending_changes().unwrap()).unwrap();
    devices[0].sync().unwrap();
    for (_, user) in &PEOPLE[1..] {
        devices[0].add_participant(&plan, user, "wijkteam").unwrap();
    }
    // The creator seals the plan's keys for the new participants' devices when the server asks.
    devices[0].sync().unwrap();
    for device in &mut devices[1..] {
        device.sync().unwrap();
        assert_eq!(device.read(&plan).unwrap().family, "Storm", "a participant lacks the plan");
    }
    let setup_done = started.elapsed();

    // The storm: each device edits and syncs in its own thread, reporting every sync that
    // went through, so the main thread can kill the server while syncs are in flight.
    let (events, progress) = mpsc::channel::<()>();
    let threads: Vec<_> = devices
        .into_iter()
        .zip(PEOPLE)
        .map(|(mut device, (name, _))| {
            let events = events.clone();
            std::thread::spawn(move || {
                let (mut markers, mut synced, mut failed) = (Vec::new(), 0, 0);
                for i in 0..EDITS {
                    let marker = format!("{name}-{i}");
                    // Alternating documents: a sync after a failed one pushes bundles of both.
                    let compartment = if i % 2 == 0 { Compartment::Basis } else { Compartment::Zorg };
                    // An edit is local and durable whether or not the server is up.
                    device.edit(&plan, |p| p.add_note(compartment, NoteKind::Note, &marker)).unwrap();
                    markers.push(marker);
                    match device.sync() {
                        Ok(_) => {
                            synced += 1;
                            // The main thread may be done killing and gone; that is fine.
                            let _ = events.send(());
                        }
                        // The server is down or died mid-request: the edits stay in the
                        // outbox and go with the next sync.
                        Err(CoreError::Sync(SyncError::Network(_))) => {
                            failed += 1;
                            std::thread::sleep(RETRY_PAUSE);
                        }
                        Err(e) => panic!("{name}: sync {i} failed with something else than the network: {e}"),
                    }
                }
                Storm { device, markers, synced, failed }
            })
        })
        .collect();
    // Only the threads hold senders now: the loop below ends when the storm does.
    drop(events);

    let mut kills = 0;
    let mut since_restart = 0;
    let mut downtime = Duration::ZERO;
    for _ in progress.iter() {
        since_restart += 1;
        if kills < KILLS && since_restart >= SYNCS_BEFORE_KILL {
            let down = Instant::now();
            server.kill();
            server = restart_on(&data, &address);
            downtime += down.elapsed();
            kills += 1;
            since_restart = 0;
        }
    }
    let storms: Vec<Storm> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(kills, KILLS, "the storm ended before every kill; make it longer");
    let storm_done = started.elapsed();

    // Settle: every device pushes what the server never acknowledged, then one more round so
    // each pulls what the others pushed last.
    let mut devices: Vec<Device> = Vec::new();
    let mut markers: Vec<String> = Vec::new();
    for (storm, (name, _)) in storms.into_iter().zip(PEOPLE) {
        let mut device = storm.device;
        for _ in 0..SETTLE_SYNCS {
            if device.pending_changes().unwrap() == 0 {
                break;
            }
            device.sync().unwrap();
        }
        assert_eq!(device.pending_changes().unwrap(), 0, "{name} still has unpushed edits");
        eprintln!(
            "{name}: {} edits, {} syncs through, {} failed",
            storm.markers.len(),
            storm.synced,
            storm.failed
        );
        assert_eq!(storm.markers.len(), EDITS);
        markers.extend(storm.markers);
        devices.push(device);
    }
    for device in &mut devices {
        device.sync().unwrap();
    }

    let views: Vec<_> = devices.iter_mut().map(|d| d.read(&plan).unwrap()).collect();
    assert_eq!(views[0], views[1], "{} and {} differ", PEOPLE[0].0, PEOPLE[1].0);
    assert_eq!(views[1], views[2], "{} and {} differ", PEOPLE[1].0, PEOPLE[2].0);
    // Each edit exactly once: none lost, none applied twice.
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for note in &views[0].notes {
        *seen.entry(note.text.as_str()).or_default() += 1;
    }
    let missing: Vec<&String> = markers.iter().filter(|m| !seen.contains_key(m.as_str())).collect();
    assert!(missing.is_empty(), "edits lost: {missing:?}");
    let doubled: Vec<(&&str, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "edits applied more than once: {doubled:?}");
    assert_eq!(views[0].notes.len(), markers.len());

    // The server's log, read with the server stopped so nothing writes under us.
    server.kill();
    let conn = rusqlite::Connection::open(data.join("server.db")).unwrap();
    let (rows, ids, contents): (i64, i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT bundle_id), COUNT(DISTINCT bytes) FROM bundles",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(rows, ids, "a bundle id is stored twice");
    assert_eq!(rows, contents, "the same bundle bytes are stored twice: a retried push was appended again");
    for (index, device_id) in device_ids.iter().enumerate() {
        let bundles: i64 = conn
            .query_row("SELECT COUNT(*) FROM bundles WHERE kind = 0 AND author = ?1", [&device_id[..]], |r| {
                r.get(0)
            })
            .unwrap();
        let bundles = usize::try_from(bundles).unwrap();
        // Every change bundle carries at least one of its author's changes and every change is
        // sealed once, so more bundles than changes would mean a change pushed twice.
        let changes = EDITS + if index == 0 { setup_changes } else { 0 };
        assert!(
            (1..=changes).contains(&bundles),
            "{} pushed {bundles} change bundles for {changes} changes",
            PEOPLE[index].0
        );
    }
    eprintln!(
        "setup {setup_done:?}, storm {:?} ({kills} kills, {downtime:?} down), settle {:?}, {rows} bundles on the server",
        storm_done - setup_done,
        started.elapsed() - storm_done
    );
}
