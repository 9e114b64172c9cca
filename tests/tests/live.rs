//! Live sync end to end: a device that watches the server's live socket learns of another
//! device's push at once, through the core API and through `eenplan sync --watch`. A real
//! server process on loopback, the real admin CLI, real device stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::ops::ControlFlow;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use eenplan_core::plan::{Compartment, NoteKind};
use eenplan_core::sync::WatchEvent;
use eenplan_core::{CoreError, Device, PlanId};
use eenplan_tests::network::{Network, Server, binary};

const USERS: &[(&str, &str, &str)] =
    &[("Rita", "Wijkteam Noord", "wijkteam"), ("Wim", "Wijkteam Noord", "wijkteam")];

/// What the product promises: online devices learn of new bundles within this.
const PROMISED_LATENCY: Duration = Duration::from_secs(1);
/// How long a test waits for any one event before it fails (far above the promise, so that a
/// slow machine fails the latency assertion with a number rather than a timeout).
const PATIENCE: Duration = Duration::from_secs(5);

/// Rita's plan, shared with Wim, and both devices holding it.
fn shared_plan(net: &Network) -> (Device, Device, PlanId) {
    let mut rita = net.device("rita", "Rita");
    let mut wim = net.device("wim", "Wim");
    let plan = rita.create_plan("Jansen").unwrap();
    rita.sync().unwrap();
    rita.add_participant(&plan, "Wim", "wijkteam").unwrap();
    // Rita's device seals the plan's keys for Wim's device when the server asks.
    rita.sync().unwrap();
    wim.sync().unwrap();
    assert_eq!(wim.read(&plan).unwrap().family, "Jansen");
    (rita, wim, plan)
}

type Watcher = JoinHandle<(Device, Result<(), CoreError>)>;

/// Watches with `device` in a thread of its own, handing every event over with the moment it
/// came. The watch stops by itself once something came down, and the thread gives the device
/// back.
fn watch_in_thread(mut device: Device) -> (Receiver<(Instant, WatchEvent)>, Watcher) {
    let (events, received) = mpsc::channel();
    let watcher = std::thread::spawn(move || {
        let result = device.watch(|event| {
            let done = matches!(&event, WatchEvent::Synced(r) if r.received_bundles > 0);
            if events.send((Instant::now(), event)).is_err() || done {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        (device, result)
    });
    (received, watcher)
}

/// Waits for the first event that `wanted` accepts, failing on a disconnection (nothing in these
/// tests should drop the socket) or when none comes within [`PATIENCE`].
fn wait_for<T>(
    events: &Receiver<(Instant, WatchEvent)>,
    mut wanted: impl FnMut(&WatchEvent) -> Option<T>,
) -> (Instant, T) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (at, event) = events.recv_timeout(left).unwrap_or_else(|e| panic!("no awaited watch event: {e}"));
        if let WatchEvent::Disconnected(reason) = &event {
            panic!("the watch disconnected: {reason}");
        }
        if let Some(found) = wanted(&event) {
            return (at, found);
        }
    }
}

#[test]
fn a_watching_device_learns_of_another_devices_edit_within_a_second() {
    let net = Network::start(USERS);
    let (mut rita, wim, plan) = shared_plan(&net);

    let (received, watcher) = watch_in_thread(wim);
    // Connected, then the catch-up sync: from here on every push is hinted.
    wait_for(&received, |e| matches!(e, WatchEvent::Connected).then_some(()));
    let (_, caught_up) = wait_for(&received, |e| match e {
        WatchEvent::Synced(report) => Some(report.received_bundles),
        _ => None,
    });
    assert_eq!(caught_up, 0, "Wim's device held everything before it started watching");

    let note = "Rita: moeder belt zelf terug";
    rita.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::HomeVisit, note)).unwrap();
    let pushed = rita.sync().unwrap();
    let synced_at = Instant::now();
    assert_eq!(pushed.pushed_bundles, 1);

    let (heard_at, report) = wait_for(&received, |e| match e {
        WatchEvent::Synced(report) if report.received_bundles > 0 => Some(report.clone()),
        _ => None,
    });
    // The hint goes out when the push commits, before Rita's response does: Wim's device may
    // even be done first, which counts as no delay at all.
    let latency = heard_at.saturating_duration_since(synced_at);
    println!("Wim's device had Rita's edit {latency:?} after her sync returned");
    assert!(latency < PROMISED_LATENCY, "Wim's device learnt of the edit only after {latency:?}");
    assert_eq!(report.received_bundles, 1, "{report:?}");
    assert_eq!(report.plans_updated, vec![plan]);

    let (mut wim, result) = watcher.join().unwrap();
    result.unwrap();
    let notes = wim.read(&plan).unwrap().notes;
    assert!(notes.iter().any(|n| n.text == note), "{notes:?}");
    assert_eq!(wim.read(&plan).unwrap(), rita.read(&plan).unwrap());
}

#[test]
fn a_watching_device_reconnects_after_the_server_restarts_and_catches_up_on_what_it_missed() {
    let mut net = Network::start(USERS);
    let (mut rita, wim, plan) = shared_plan(&net);
    let (received, watcher) = watch_in_thread(wim);
    wait_for(&received, |e| matches!(e, WatchEvent::Synced(_)).then_some(()));

    // SIGKILL: no close frame, the connection just ends.
    let address = net.server.address();
    net.server.kill();
    let (_, reason) = next_event(&received, |e| match e {
        WatchEvent::Disconnected(reason) => Some(reason.clone()),
        _ => None,
    });
    println!("the watch reported: {reason}");
    net.server = Server::start_on(&net.server.data.clone(), &address);
    // Pushed while Wim's device is (almost always) between attempts, so no hint reaches it.
    let note = "Rita: na de herstart";
    rita.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, note)).unwrap();
    rita.sync().unwrap();
    let pushed_at = Instant::now();

    // Retries that find the server still down are reported too; the backoff is bounded, so
    // the reconnect comes within seconds.
    let (connected_at, ()) = next_event(&received, |e| matches!(e, WatchEvent::Connected).then_some(()));
    let (_, report) = next_event(&received, |e| match e {
        WatchEvent::Synced(report) => Some(report.clone()),
        _ => None,
    });
    println!("reconnected {:?} after Rita's push", connected_at.saturating_duration_since(pushed_at));
    if pushed_at < connected_at {
        // The push committed before the socket opened: only the catch-up sync can bring it.
        assert_eq!(report.received_bundles, 1, "{report:?}");
    } else if report.received_bundles == 0 {
        // The device reconnected before Rita pushed; then the push is hinted.
        next_event(&received, |e| {
            matches!(e, WatchEvent::Synced(r) if r.received_bundles == 1).then_some(())
        });
    }
    let (mut wim, result) = watcher.join().unwrap();
    result.unwrap();
    assert!(wim.read(&plan).unwrap().notes.iter().any(|n| n.text == note));
}

/// Like [`wait_for`], but disconnections are expected and passed over.
fn next_event<T>(
    events: &Receiver<(Instant, WatchEvent)>,
    mut wanted: impl FnMut(&WatchEvent) -> Option<T>,
) -> (Instant, T) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (at, event) = events.recv_timeout(left).unwrap_or_else(|e| panic!("no awaited watch event: {e}"));
        if let Some(found) = wanted(&event) {
            return (at, found);
        }
        println!("passed over: {event:?}");
    }
}

/// A child process that is killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for the first line that `wanted` accepts, failing when none comes within [`PATIENCE`].
fn wait_for_line(lines: &Receiver<String>, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(left).unwrap_or_else(|e| panic!("no awaited line from the CLI: {e}"));
        assert!(!line.contains(r#""event":"disconnected""#), "the watch disconnected: {line}");
        if wanted(&line) {
            return line;
        }
    }
}

#[test]
fn the_cli_watching_with_json_prints_a_line_when_another_device_pushes() {
    let net = Network::start(USERS);
    let (mut rita, wim, plan) = shared_plan(&net);
    // The CLI opens the store itself; one writer at a time.
    drop(wim);

    let mut child = Command::new(binary("eenplan"))
        .arg("--data")
        .arg(net.dir.path().join("wim"))
        .args(["sync", "--watch", "--json"])
        .env("EENPLAN_PASSPHRASE", "device-test")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _child = Killed(child);
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });

    // The tests crate has no JSON parser; compact serde output is stable enough to match.
    wait_for_line(&received, |l| l == r#"{"event":"connected"}"#);
    let caught_up = wait_for_line(&received, |l| l.starts_with(r#"{"event":"synced","#));
    assert!(caught_up.contains(r#""received_bundles":0,"#), "{caught_up}");

    rita.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::Note, "GGZ-intake gepland")).unwrap();
    rita.sync().unwrap();
    let synced_at = Instant::now();
    let line = wait_for_line(&received, |l| l.starts_with(r#"{"event":"synced","#));
    let latency = synced_at.elapsed();
    println!("the CLI printed {line} {latency:?} after Rita's sync returned");
    assert!(line.contains(r#""received_bundles":1,"#), "{line}");
    assert!(line.contains(&format!(r#""plans_updated":["{plan}"]"#)), "{line}");
}
