//! Two `eenplan-server` processes on one PostgreSQL database behind nginx (round robin), as
//! an operator runs them so that one can restart without an outage: devices sync through
//! either, sessions opened on one work on the other, live hints and revocations cross from
//! one process to the other's sockets (the relay, `server/src/live_events/relay.rs`), and
//! killing one process with SIGKILL during a push storm loses no acknowledged push and
//! duplicates none.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpStream;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use eenplan_core::plan::{Compartment, NoteKind};
use eenplan_core::{Device, PlanId};
use eenplan_protocol::api::{PATH_LIVE, hex};
use eenplan_tests::balancer::Balancer;
use eenplan_tests::network::{Admin, Server, device_session, enrolled_device_at};
use tungstenite::Message;
use tungstenite::client::IntoClientRequest;

const USERS: &[&str] = &["Rita", "Wim", "Wil"];
/// How long a test waits for a hint that crosses processes (the promise is under a second).
const PATIENCE: Duration = Duration::from_secs(10);

/// Two instances on one database, nginx in front, an administrator and three users.
struct Cluster {
    dir: tempfile::TempDir,
    a: Server,
    b: Server,
    balancer: Balancer,
    admin: Admin,
}

impl Cluster {
    fn start() -> Cluster {
        let database = eenplan_tests::postgres::fresh_database();
        let dir = tempfile::tempdir().unwrap();
        let a = Server::start_with(&dir.path().join("a"), "127.0.0.1:0", Some(&database));
        // Claimed on A, whose data directory holds the init secret; B starts on a network.
        let mut admin = Admin::init(&dir.path().join("admin"), &a);
        let b = Server::start_with(&dir.path().join("b"), "127.0.0.1:0", Some(&database));
        let balancer = Balancer::start(&[a.address(), b.address()]);
        // From here on the administrator's requests alternate between the instances too.
        admin.server = balancer.url.clone();
        admin.run(&["org", "add", "Wijkteam Noord"]);
        for name in USERS {
            admin.run(&["user", "add", "--org", "Wijkteam Noord", "--name", name, "--role", "wijkteam"]);
        }
        Cluster { dir, a, b, balancer, admin }
    }

    /// A device enrolled through `url` (the balancer, or one instance directly).
    fn device(&self, name: &str, user: &str, url: &str) -> Device {
        enrolled_device_at(&self.admin, url, &self.dir.path().join(name), user)
    }
}

/// Rita's plan, shared with the others, everyone holding it.
fn shared_plan(rita: &mut Device, others: &mut [&mut Device]) -> PlanId {
    let plan = rita.create_plan("Jansen").unwrap();
    rita.sync().unwrap();
    for (other, user) in others.iter_mut().zip(["Wim", "Wil"]) {
        rita.add_participant(&plan, user, "wijkteam").unwrap();
        rita.sync().unwrap();
        other.sync().unwrap();
        assert_eq!(other.read(&plan).unwrap().family, "Jansen");
    }
    plan
}

fn add_note(device: &mut Device, plan: &PlanId, text: &str) {
    device.edit(plan, |p| p.add_note(Compartment::Basis, NoteKind::HomeVisit, text)).unwrap();
}

/// Bundles committed by one instance's group commit so far (its `/metrics`).
fn committed_by(server: &Server) -> u64 {
    server.metric("eenplan_group_commit_bundles_total")
}

/// What a raw live socket heard.
#[derive(Debug)]
enum Heard {
    Hint(String),
    Closed(String),
    /// It had to connect again (its instance went away).
    Reconnected,
}

/// A device's live socket, opened at `address` (`host:port`) with `token`, read in a thread.
/// With `reconnect`, a socket that breaks is opened again through the same address, as a
/// phone does; without, the thread ends with what closed it.
fn live_socket(address: String, token: String, reconnect: bool) -> Receiver<Heard> {
    let (heard, received) = mpsc::channel();
    let open = move || {
        let mut request = format!("ws://{address}{PATH_LIVE}").into_client_request().unwrap();
        request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        let stream = TcpStream::connect(&address).ok()?;
        let (socket, response) = tungstenite::client::client(request, stream).ok()?;
        (response.status().as_u16() == 101).then_some(socket)
    };
    let mut socket = open().expect("the live socket opens");
    std::thread::spawn(move || {
        loop {
            let why = loop {
                match socket.read() {
                    Ok(Message::Text(text)) => {
                        if heard.send(Heard::Hint(text.to_string())).is_err() {
                            return;
                        }
                    }
                    Ok(Message::Close(frame)) => {
                        break frame.map(|f| f.reason.to_string()).unwrap_or_default();
                    }
                    Ok(_) => {}
                    Err(e) => break e.to_string(),
                }
            };
            if !reconnect {
                let _ = heard.send(Heard::Closed(why));
                return;
            }
            // nginx skips the dead instance: a few tries reach the other one.
            let Some(again) = (0..20).find_map(|_| open()) else {
                let _ = heard.send(Heard::Closed(format!("cannot reconnect after: {why}")));
                return;
            };
            socket = again;
            if heard.send(Heard::Reconnected).is_err() {
                return;
            }
        }
    });
    received
}

/// Waits for a hint of some document of `plan`, skipping others; `None` past [`PATIENCE`].
fn hint_for(heard: &Receiver<Heard>, plan: &PlanId) -> Option<Duration> {
    let prefix = hex(plan.as_bytes());
    let start = Instant::now();
    loop {
        let left = PATIENCE.saturating_sub(start.elapsed());
        match heard.recv_timeout(left) {
            Ok(Heard::Hint(h)) if h.starts_with(&prefix) => return Some(start.elapsed()),
            Ok(Heard::Hint(_) | Heard::Reconnected) => {}
            Ok(Heard::Closed(why)) => panic!("the live socket closed: {why}"),
            Err(RecvTimeoutError::Timeout) => return None,
            Err(RecvTimeoutError::Disconnected) => panic!("the live socket's thread ended"),
        }
    }
}

fn drain(heard: &Receiver<Heard>) {
    while heard.try_recv().is_ok() {}
}

#[test]
fn pushes_committed_on_either_instance_are_hinted_to_a_socket_on_the_other_and_sessions_work_on_both() {
    let cluster = Cluster::start();
    let mut rita = cluster.device("rita", "Rita", &cluster.balancer.url);
    // Wim's phone talks to B only, so that a hint it hears of a push A committed crossed over.
    let mut wim = cluster.device("wim", "Wim", &cluster.b.url);
    let plan = shared_plan(&mut rita, &mut [&mut wim]);

    // A session whose challenge and session requests nginx sent to different instances.
    let agent = ureq::Agent::new_with_defaults();
    let token = device_session(&agent, &cluster.balancer.url, &wim);
    let heard = live_socket(cluster.b.address(), token, false);

    let mut on_a = 0;
    for i in 0..12 {
        drain(&heard);
        let before = committed_by(&cluster.a);
        add_note(&mut rita, &plan, &format!("bezoek {i}"));
        assert_eq!(rita.sync().unwrap().pushed_bundles, 1);
        let committed_on_a = committed_by(&cluster.a) > before;
        let latency = hint_for(&heard, &plan);
        assert!(
            latency.is_some(),
            "push {i} (committed on {}) was never hinted to the socket on B",
            if committed_on_a { "A" } else { "B" }
        );
        on_a += usize::from(committed_on_a);
        if on_a >= 3 {
            break;
        }
    }
    assert!(on_a >= 3, "round robin sent only {on_a} of Rita's pushes to A");
    // And the data itself crossed: Wim (on B) holds every note Rita pushed through either.
    wim.sync().unwrap();
    assert_eq!(wim.read(&plan).unwrap(), rita.read(&plan).unwrap());
}

#[test]
fn a_device_revoked_through_one_instance_loses_its_live_socket_on_the_other_at_once() {
    let cluster = Cluster::start();
    let mut rita = cluster.device("rita", "Rita", &cluster.balancer.url);
    let mut wim = cluster.device("wim", "Wim", &cluster.b.url);
    shared_plan(&mut rita, &mut [&mut wim]);
    let agent = ureq::Agent::new_with_defaults();
    let token = device_session(&agent, &cluster.b.url, &wim);
    let heard = live_socket(cluster.b.address(), token, false);

    // The administrator talks to A only: the revocation commits there.
    let admin_on_a = Admin { data: cluster.admin.data.clone(), server: cluster.a.url.clone() };
    admin_on_a.run(&["device", "revoke", &wim.device_id().to_string(), "--reason", "stolen"]);
    let revoked_at = Instant::now();
    // Sooner than the socket's own periodic look at its device (30 s) could close it.
    let closed = loop {
        match heard.recv_timeout(PATIENCE.saturating_sub(revoked_at.elapsed())) {
            Ok(Heard::Closed(why)) => break why,
            Ok(_) => {}
            Err(e) => panic!("the socket on B stayed open after the revocation on A: {e}"),
        }
    };
    assert_eq!(closed, "device revoked");
}

/// What one pushing device did during the storm.
struct Pushed {
    device: Device,
    notes: Vec<String>,
    failed_syncs: usize,
}

/// Adds `count` notes, syncing after each until the sync is acknowledged (retrying what a
/// dying instance did not answer); reports each acknowledgement on `acked`.
fn push_storm(
    mut device: Device,
    plan: PlanId,
    name: &'static str,
    count: usize,
    acked: mpsc::Sender<()>,
) -> Pushed {
    let mut notes = Vec::new();
    let mut failed_syncs = 0;
    for i in 0..count {
        let text = format!("{name} storm {i}");
        add_note(&mut device, &plan, &text);
        notes.push(text);
        let mut attempts = 0;
        while let Err(e) = device.sync() {
            failed_syncs += 1;
            attempts += 1;
            assert!(attempts < 50, "{name}'s sync kept failing: {e}");
        }
        let _ = acked.send(());
    }
    Pushed { device, notes, failed_syncs }
}

#[test]
fn killing_one_instance_during_a_push_storm_loses_no_acknowledged_push_and_duplicates_none() {
    let mut cluster = Cluster::start();
    let url = cluster.balancer.url.clone();
    let mut rita = cluster.device("rita", "Rita", &url);
    let mut wim = cluster.device("wim", "Wim", &url);
    let mut wil = cluster.device("wil", "Wil", &url);
    let plan = shared_plan(&mut rita, &mut [&mut wim, &mut wil]);
    // Wim watches through the balancer: his socket is on A or B, and reconnects if A dies.
    let agent = ureq::Agent::new_with_defaults();
    let token = device_session(&agent, &url, &wim);
    let heard = live_socket(cluster.balancer.url.trim_start_matches("http://").to_owned(), token, true);

    const EACH: usize = 15;
    let (acked, acks) = mpsc::channel();
    let storm = [(rita, "rita"), (wil, "wil")].map(|(device, name)| {
        let acked = acked.clone();
        std::thread::spawn(move || push_storm(device, plan, name, EACH, acked))
    });
    drop(acked);
    // A third of the storm is acknowledged; then A dies without a word.
    for _ in 0..(2 * EACH / 3) {
        acks.recv_timeout(Duration::from_secs(60)).expect("the storm stalled before the kill");
    }
    cluster.a.kill();
    let pushed: Vec<Pushed> = storm.into_iter().map(|t| t.join().unwrap()).collect();
    let failed: usize = pushed.iter().map(|p| p.failed_syncs).sum();
    println!("syncs that failed around the kill and were retried: {failed}");

    // Live hints still arrive, through B.
    let [mut rita, mut wil] = <[Pushed; 2]>::try_from(pushed).ok().unwrap().map(|p| {
        let Pushed { device, notes, .. } = p;
        (device, notes)
    });
    drain(&heard);
    add_note(&mut rita.0, &plan, "na de storing");
    rita.0.sync().unwrap();
    assert!(hint_for(&heard, &plan).is_some(), "no hint reached Wim after A was killed");

    // Every note made (all acknowledged) is in every copy exactly once.
    for device in [&mut rita.0, &mut wil.0, &mut wim] {
        device.sync().unwrap();
    }
    let made: Vec<&String> = rita.1.iter().chain(&wil.1).collect();
    assert_eq!(made.len(), 2 * EACH);
    for device in [&mut rita.0, &mut wil.0, &mut wim] {
        let notes = device.read(&plan).unwrap().notes;
        for text in &made {
            let copies = notes.iter().filter(|n| &&n.text == text).count();
            assert_eq!(copies, 1, "{text:?} is in {:?}'s copy {copies} times", device.device_id());
        }
    }
    // (The database itself holds each bundle id once: `bundles.bundle_id` is UNIQUE, and a
    // retried push is answered `Duplicate`.)
    assert_eq!(wim.read(&plan).unwrap(), rita.0.read(&plan).unwrap());
}
