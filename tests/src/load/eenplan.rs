//! eenplan's side of the load: the server under test started for a database, a network whose
//! devices seal real edits ahead of time, and the measured phases on a fresh copy of the
//! server's state: replaying the sealed pushes, pulling them as a backlog, idle live sockets.
//!
//! The sealed edits are made by real devices (their own `edit` and `sync`) against a first
//! server; its state from just before those edits was kept, stopped, as the **base**. Each
//! measured run starts a server on a copy of the base and replays the bundles, whose ids it
//! has never seen, over HTTP: the server checks, stores and acknowledges each as it would
//! the device's own push.
//!
//! The replay also answers the server's snapshot asks as a device does. Once a document's log
//! after its newest snapshot is long, a complete answer lists it in `compact` (covering that
//! answer's `head`) and records the ask; the pushing device seals a snapshot of it
//! (`Device::seal_snapshot`) and uploads it in one more request, its next round, after which
//! the log's tail is short and the server stops asking. Without that, every later answer
//! would ask again and write the ask again: a busier server than a real one.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use eenplan_core::plan::{ActionUpdate, NewAction, NewGoal};
use eenplan_core::{Device, EntityId, PlanId};
use eenplan_protocol::api::PATH_LIVE;
use eenplan_protocol::bundle::peek_author;
use eenplan_protocol::sync::Blob;
use eenplan_protocol::{Bundle, DocumentId};
use tungstenite::client::IntoClientRequest;

use super::process::{Spent, Stopwatch, rss_kib};
use super::wire::{self, Ack, Cursor, Pushed, Session};
use crate::bench::{cores, percentile, policy_where_reading_all, scratch, sync_fully};
use crate::network::{Admin, Server, binary, device_keystore};

pub const ORG: &str = "Wijkteam Noord";
pub const ROLE: &str = "wijkteam";
/// The user whose devices pull every pusher's plan.
const READER: &str = "Lezer";
/// The metrics token of the servers under test.
const METRICS_TOKEN: &str = "load-bench-metrics";

/// What a server under test stores its state in; `load_bench` measures each backend listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    /// A database on this process's PostgreSQL cluster (`crate::postgres`).
    Postgres,
}

impl Backend {
    /// Every backend the server runs on, in the order `load_bench` measures them.
    pub const ALL: &[Backend] = &[Backend::Sqlite, Backend::Postgres];

    /// A new database named `name`, for a server of its own; `dir` is scratch space.
    fn database(self, dir: &Path, name: &str) -> Database {
        match self {
            Backend::Sqlite => Database::Sqlite(dir.join(name)),
            Backend::Postgres => {
                let url = crate::postgres::through_socket(&crate::postgres::fresh_database());
                Database::Postgres { url, files: dir.join(name) }
            }
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }

    /// How the server under test reaches its database.
    pub fn reached(self) -> &'static str {
        match self {
            Backend::Sqlite => "embedded",
            Backend::Postgres => "on the same host, through its Unix socket",
        }
    }
}

/// The database a server under test runs on: the argument it is started with.
#[derive(Debug, Clone)]
pub enum Database {
    /// Embedded SQLite: `server.db` in this directory.
    Sqlite(PathBuf),
    /// A PostgreSQL database (`--database`, given through the environment as an operator
    /// would), and the directory of the server's other files.
    Postgres { url: String, files: PathBuf },
}

impl Database {
    /// The server's arguments for this database; the PostgreSQL URL goes in the environment.
    fn args(&self) -> Vec<OsString> {
        vec!["--data".into(), self.files().as_os_str().to_owned()]
    }

    /// A copy named `name` holding the same state, for a server of its own (`dir` is scratch
    /// space). The server of `self` must be stopped: SQLite's file and its write-ahead log are
    /// copied as they are (the shared-memory index is rebuilt on opening); PostgreSQL copies a
    /// database that no session has open (`CREATE DATABASE … TEMPLATE`). The server's other
    /// files are not copied: once the network is initialised it keeps nothing else there.
    fn fork(&self, dir: &Path, name: &str) -> Database {
        let to = dir.join(name);
        match self {
            Database::Sqlite(from) => {
                std::fs::create_dir_all(&to).expect("a directory for the copy");
                for entry in std::fs::read_dir(from).expect("the database directory") {
                    let path = entry.expect("a directory entry").path();
                    let file = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
                    if path.is_file() && !file.ends_with("-shm") {
                        std::fs::copy(&path, to.join(&file)).expect("copy a database file");
                    }
                }
                Database::Sqlite(to)
            }
            Database::Postgres { url, .. } => {
                let url = crate::postgres::through_socket(&crate::postgres::copy_database(url));
                Database::Postgres { url, files: to }
            }
        }
    }

    /// Where the server keeps its files besides the database (the metrics token).
    fn files(&self) -> &Path {
        match self {
            Database::Sqlite(dir) | Database::Postgres { files: dir, .. } => dir,
        }
    }

    /// The root process of a database server apart from eenplan-server (PostgreSQL's
    /// postmaster), whose processes' CPU is the server's cost too.
    pub fn server_process(&self) -> Option<u32> {
        match self {
            Database::Sqlite(_) => None,
            Database::Postgres { .. } => Some(crate::postgres::postmaster_pid()),
        }
    }

    /// Starts a phase of a developer's statement profile (`EENPLAN_PG_STATEMENTS`); nothing on
    /// SQLite or without one.
    fn statements_begin(&self) {
        if let Database::Postgres { .. } = self {
            crate::postgres::statements_begin();
        }
    }

    /// Ends a phase of a developer's statement profile: appends its statements to the file.
    fn statements_end(&self, phase: &str) {
        if let Database::Postgres { .. } = self {
            crate::postgres::statements_end(phase);
        }
    }

    /// Gives the database the planner statistics a long-running one has (PostgreSQL's
    /// autovacuum analyses a table once a tenth of it changed; the measured runs are too
    /// short for it), so that the runs measure the plans a server in service runs. SQLite
    /// plans without statistics.
    fn settle_statistics(&self) {
        if let Database::Postgres { url, .. } = self {
            crate::postgres::vacuum_analyze(url);
        }
    }

    /// Removes the database and the server's files; its server must be stopped.
    fn remove(self) {
        let _ = std::fs::remove_dir_all(self.files());
        if let Database::Postgres { url, .. } = self {
            crate::postgres::drop_database(&url);
        }
    }
}

/// Starts `eenplan-server serve` on `database`, on a free loopback port, and waits until it
/// listens. Killed when the returned [`Server`] is dropped.
pub fn start_server(database: &Database) -> Server {
    start_server_on(database, "127.0.0.1:0")
}

/// [`start_server`] on the address `listen` (a server restarted where devices pinned it).
pub fn start_server_on(database: &Database, listen: &str) -> Server {
    let files = database.files();
    std::fs::create_dir_all(files).expect("the server's directory");
    let token_file = files.join("metrics-token");
    std::fs::write(&token_file, METRICS_TOKEN).expect("write the metrics token");
    let mut command = Command::new(binary("eenplan-server"));
    if let Database::Postgres { url, .. } = database {
        command.env("EENPLAN_DATABASE_URL", url);
    }
    let mut child = command
        .arg("serve")
        .args(database.args())
        .args(["--listen", listen, "--metrics-token-file"])
        .arg(&token_file)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start eenplan-server");
    let stdout = child.stdout.take().expect("the server's stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(address) = line.strip_prefix("listening on ") {
                    break format!("http://{}", address.trim());
                }
            }
            other => panic!("the server stopped before listening: {other:?}"),
        }
    };
    // Drained so that the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, url, data: files.to_path_buf(), metrics_token: Some(METRICS_TOKEN.to_owned()) }
}

/// How big the network is.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Devices that push, each the regisseur of a plan of its own.
    pub devices: usize,
    /// Sealed edits per pushing device.
    pub edits: usize,
    /// Devices of the user who takes part in every plan, each pulling the whole backlog.
    pub readers: usize,
}

/// One bundle sealed by a device, as it pushes it.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub bytes: Vec<u8>,
    pub id: [u8; 16],
}

/// The network, its base state and the sealed edits.
pub struct Fixture {
    pub sizes: Sizes,
    /// The devices that sealed the edits; in a run they seal the snapshots the server asks for.
    pushers: Vec<Device>,
    readers: Vec<Device>,
    /// Per pushing device, its bundles in the order it sealed them.
    pub sealed: Vec<Vec<Sealed>>,
    /// The first server's state before the sealed edits, its server stopped.
    base: Database,
    pub backend: Backend,
    /// How long the setup took.
    pub setup: Duration,
    // Last: the devices' stores and the servers' files live here.
    dir: tempfile::TempDir,
}

impl Fixture {
    /// The network on a first server: readers, then pushers each with a plan of its own that
    /// every reader takes part in, keys settled; the base kept; then every pusher makes and
    /// pushes `edits` real edits, which a reader pulls back as the sealed bundles.
    pub fn build(sizes: Sizes, backend: Backend) -> Fixture {
        assert!(
            sizes.edits <= SNAPSHOT_SHORTCUT_CHANGES,
            "at most {SNAPSHOT_SHORTCUT_CHANGES} edits per device: more would reach a reader as a snapshot"
        );
        let started = Instant::now();
        let dir = scratch("load-bench", "eenplan");
        let first = backend.database(dir.path(), "first");
        let mut server = start_server(&first);
        let admin = Admin::init(&dir.path().join("admin"), &server);
        configure(&admin, dir.path(), sizes.devices);
        let mut readers: Vec<Device> = (0..sizes.readers)
            .map(|r| enrol(&admin, &server, &dir.path().join(format!("reader-{r}")), READER))
            .collect();
        let mut pushers: Vec<Device> = (0..sizes.devices)
            .map(|i| enrol(&admin, &server, &dir.path().join(format!("device-{i}")), &worker(i)))
            .collect();
        let plans: Vec<(PlanId, EntityId)> =
            pushers.iter_mut().enumerate().map(|(i, d)| own_plan(d, i)).collect();
        settle(&mut pushers, &mut readers, &plans);
        eprintln!(
            "load: {} devices and {} readers settled ({:.1} s)",
            sizes.devices,
            sizes.readers,
            started.elapsed().as_secs_f64()
        );

        // A reader's place in the log before the sealed edits, then the base.
        let agent = wire::agent();
        let mut before = Cursor::default();
        wire::pull_all(&agent, &Session::open(&agent, &server.url, &readers[0]), &mut before)
            .expect("catch up");
        let address = server.address();
        server.kill();
        first.settle_statistics();
        let base = first.fork(dir.path(), "base");
        let server = start_server_on(&first, &address);

        seal_edits(&mut pushers, &plans, sizes.edits);
        let sealed = harvest(&server, &readers[0], &mut before, &pushers, sizes.edits);
        eprintln!(
            "load: {} edits sealed ({:.1} s)",
            sizes.devices * sizes.edits,
            started.elapsed().as_secs_f64()
        );
        Fixture { sizes, pushers, readers, sealed, base, backend, setup: started.elapsed(), dir }
    }
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("sizes", &self.sizes)
            .field("backend", &self.backend)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

/// A reader receives a document's snapshot instead of its changes past this many (the
/// server's `SNAPSHOT_SHORTCUT_CHANGES`); the backlog must arrive as the bundles replayed.
pub const SNAPSHOT_SHORTCUT_CHANGES: usize = 500;

fn worker(i: usize) -> String {
    format!("Werker {i}")
}

/// The policy (one role reads and writes every compartment), the organisation, the users.
fn configure(admin: &Admin, dir: &Path, devices: usize) {
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, policy_where_reading_all(ROLE)).expect("write the policy");
    admin.run(&["policy", "set", policy.to_str().expect("a UTF-8 path")]);
    admin.run(&["org", "add", ORG]);
    for name in (0..devices).map(worker).chain([READER.to_owned()]) {
        admin.run(&["user", "add", "--org", ORG, "--name", &name, "--role", ROLE]);
    }
}

/// A device in `dir` for `user`, enrolled, approved and synced once.
fn enrol(admin: &Admin, server: &Server, dir: &Path, user: &str) -> Device {
    let mut device = Device::init(dir, &device_keystore()).expect("device init");
    let code = admin.run(&["device", "enrol", "--user", user]);
    device.enrol(&server.url, &code, "Load", eenplan_core::sync::Platform::Desktop).expect("enrol");
    admin.run(&["device", "approve", "--code", &code]);
    device.sync().expect("first sync");
    device
}

/// Device `i`'s plan: one goal with one action (what the edits change), and the reader's
/// user as a participant.
fn own_plan(device: &mut Device, i: usize) -> (PlanId, EntityId) {
    let plan = device.create_plan(&format!("Gezin {i}")).expect("create a plan");
    let action = device
        .edit(&plan, |p| {
            let goal =
                p.add_goal(NewGoal { domain: "financiën".into(), title: "Schulden op orde".into() })?;
            p.add_action(NewAction {
                goal,
                title: "Budgetplan maken".into(),
                owner_org: ORG.into(),
                owner_user: None,
                due: Some("2026-06-01".into()),
            })
        })
        .expect("add an action");
    device.sync().expect("register the plan");
    device.add_participant(&plan, READER, ROLE).expect("the reader takes part");
    (plan, action)
}

/// Syncs until every reader holds every plan's keys and no device has chores left, so that
/// a replayed push is only a push.
fn settle(pushers: &mut [Device], readers: &mut [Device], plans: &[(PlanId, EntityId)]) {
    for _ in 0..2 {
        pushers.iter_mut().chain(readers.iter_mut()).for_each(|d| drop(sync_fully(d)));
    }
    for reader in readers.iter_mut() {
        for (plan, _) in plans {
            reader.read(plan).expect("a reader reads every plan");
        }
    }
    for device in pushers.iter_mut() {
        let (report, _) = sync_fully(device);
        assert_eq!((report.envelopes_sent, report.pushed_bundles), (0, 0), "chores left: {report:?}");
    }
}

/// A due date for edit `k` that the action never had.
fn due(k: usize) -> String {
    format!("{}-{:02}-{:02}", 2027 + k / 336, 1 + (k / 28) % 12, 1 + k % 28)
}

/// Every pusher makes `edits` edits, each pushed by its own sync (a device's own sealing,
/// signing and push), on a few threads.
fn seal_edits(pushers: &mut [Device], plans: &[(PlanId, EntityId)], edits: usize) {
    let per_thread = pushers.len().div_ceil(cores().max(1)).max(1);
    std::thread::scope(|scope| {
        for (devices, plans) in pushers.chunks_mut(per_thread).zip(plans.chunks(per_thread)) {
            scope.spawn(move || {
                for k in 0..edits {
                    for (device, (plan, action)) in devices.iter_mut().zip(plans) {
                        let update = ActionUpdate { due: Some(Some(due(k))), ..ActionUpdate::default() };
                        device.edit(plan, |p| p.update_action(*action, update)).expect("an edit");
                        let report = device.sync().expect("push the edit");
                        assert!(report.refused.is_empty(), "{:?}", report.refused);
                        assert_eq!(report.pushed_bundles, 1, "one bundle per edit");
                    }
                }
            });
        }
    });
}

/// The bundles the pushers sealed, pulled back by a reader from its place before them, by
/// author in the order they were made.
fn harvest(
    server: &Server,
    reader: &Device,
    cursor: &mut Cursor,
    pushers: &[Device],
    edits: usize,
) -> Vec<Vec<Sealed>> {
    let agent = wire::agent();
    let session = Session::open(&agent, &server.url, reader);
    let blobs = wire::pull_all(&agent, &session, cursor).expect("pull the sealed edits");
    let index: HashMap<[u8; 16], usize> =
        pushers.iter().enumerate().map(|(i, d)| (*d.device_id().as_bytes(), i)).collect();
    let mut sealed = vec![Vec::new(); pushers.len()];
    for Blob(bytes) in blobs {
        let bundle = Bundle::decode(bytes).expect("a well-formed bundle");
        if bundle.header.kind.is_snapshot() {
            continue;
        }
        let author = peek_author(bundle.as_bytes()).and_then(|a| index.get(&a)).expect("a pusher's bundle");
        let id = bundle.header.bundle_id;
        sealed[*author].push(Sealed { bytes: bundle.into_bytes(), id });
    }
    for (i, bundles) in sealed.iter().enumerate() {
        assert_eq!(bundles.len(), edits, "device {i} sealed {} bundles, not one per edit", bundles.len());
    }
    sealed
}

/// What one measured run on a fresh copy of the base gave.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// Pushes the server acknowledged; pushes it refused, failed or lost, and the first reason.
    pub accepted: u64,
    pub failed: u64,
    pub failure: Option<String>,
    /// Snapshots the pushers uploaded when the server asked and the server stored; snapshots
    /// asked for that were not sealed, refused or lost (a failure: a device's would be
    /// stored), and the first reason.
    pub snapshots: u64,
    pub snapshots_refused: u64,
    pub snapshot_refusal: Option<String>,
    /// The server's CPU and the wall time of the replay: the replayed pushes and the snapshot
    /// uploads that answered the server's asks (the pushers' `save()` and seal of each
    /// snapshot run in this process: in the wall time, not in the server's CPU).
    pub push: Spent,
    /// Each replayed push's time from its request to its answer, the median and the 99th
    /// percentile (the snapshot uploads not counted; the clients share the server's cores).
    pub push_p50: Duration,
    pub push_p99: Duration,
    /// Change bundles the readers received, all of them (each reader gets every accepted
    /// push), and snapshots they received (counted apart; none while a reader lacks at most
    /// [`SNAPSHOT_SHORTCUT_CHANGES`] changes of a document).
    pub delivered: u64,
    pub delivered_snapshots: u64,
    pub delivery: Spent,
    /// Syncs with nothing new that the readers made after the backlog (each reader holds
    /// every plan's keys: a regisseur's device with many plans, every morning), and the
    /// server's CPU for them.
    pub idle_syncs: u64,
    pub idle: Spent,
}

/// Syncs with nothing new that each reader makes after pulling the backlog.
pub const IDLE_SYNCS_PER_READER: u64 = 50;

/// A device's session with its cursors.
type Peer = (Session, Cursor);

impl Fixture {
    /// Replays every sealed push on `threads` client threads (each device's pushes in order,
    /// one push per request, the devices of a thread in turn, each snapshot the server asks
    /// for uploaded by the pushing device right after the push whose answer asked), then lets
    /// every reader pull the whole backlog; the server's CPU time of each phase. Takes the
    /// fixture mutably: the pushers' devices seal the snapshots.
    pub fn run(&mut self, label: &str, threads: usize) -> Run {
        let database = self.base.fork(self.dir.path(), label);
        let server = start_server(&database);
        let pid = server.child.id();
        let agent = wire::agent();
        let mut pushers = caught_up(&agent, &server, &self.pushers);
        let mut readers = caught_up(&agent, &server, &self.readers);
        let mut run = Run::default();

        let engine = database.server_process();
        database.statements_begin();
        let watch = Stopwatch::start_with_database(pid, engine).expect("the server runs");
        let tally = replay(&mut pushers, &mut self.pushers, &self.sealed, threads);
        run.push = watch.stop().expect("the server runs");
        database.statements_end(&format!("{label}: pushes"));
        (run.push_p50, run.push_p99) = (percentile(&tally.latencies, 50), percentile(&tally.latencies, 99));
        (run.accepted, run.failed, run.failure) = (tally.accepted.len() as u64, tally.failed, tally.failure);
        (run.snapshots, run.snapshots_refused, run.snapshot_refusal) =
            (tally.snapshots, tally.snapshots_refused, tally.snapshot_refusal);

        database.statements_begin();
        let watch = Stopwatch::start_with_database(pid, engine).expect("the server runs");
        let backlogs = pull_backlogs(&mut readers);
        run.delivery = watch.stop().expect("the server runs");
        database.statements_end(&format!("{label}: delivery"));
        for backlog in &backlogs {
            let (snapshots, changes): (Vec<Bundle>, Vec<Bundle>) = backlog
                .iter()
                .map(|blob| Bundle::decode(blob.0.clone()).expect("a well-formed bundle"))
                .partition(|bundle| bundle.header.kind.is_snapshot());
            let ids: HashSet<[u8; 16]> = changes.iter().map(|bundle| bundle.header.bundle_id).collect();
            assert_eq!(ids, tally.accepted, "a reader's change bundles are not exactly the accepted pushes");
            run.delivered += changes.len() as u64;
            run.delivered_snapshots += snapshots.len() as u64;
        }

        database.statements_begin();
        let watch = Stopwatch::start_with_database(pid, engine).expect("the server runs");
        run.idle_syncs = idle_syncs(&mut readers);
        run.idle = watch.stop().expect("the server runs");
        database.statements_end(&format!("{label}: idle syncs"));
        drop(server);
        database.remove();
        run
    }
}

fn bundle_id(blob: &Blob) -> [u8; 16] {
    Bundle::decode(blob.0.clone()).expect("a well-formed bundle").header.bundle_id
}

/// Sessions of `devices` on `server`, each pulled up to the log head (not measured).
fn caught_up(agent: &ureq::Agent, server: &Server, devices: &[Device]) -> Vec<Peer> {
    devices
        .iter()
        .map(|device| {
            let session = Session::open(agent, &server.url, device);
            let mut cursor = Cursor::default();
            wire::pull_all(agent, &session, &mut cursor).expect("catch up");
            (session, cursor)
        })
        .collect()
}

/// What the replay threads saw.
#[derive(Debug, Default)]
struct Tally {
    accepted: HashSet<[u8; 16]>,
    /// Each replayed push's time from request to answer.
    latencies: Vec<Duration>,
    failed: u64,
    failure: Option<String>,
    snapshots: u64,
    snapshots_refused: u64,
    snapshot_refusal: Option<String>,
}

impl Tally {
    fn fail(&mut self, why: String) {
        self.failed += 1;
        self.failure.get_or_insert(why);
    }

    fn refuse(&mut self, why: String) {
        self.snapshots_refused += 1;
        self.snapshot_refusal.get_or_insert(why);
    }

    fn add(mut self, other: Tally) -> Tally {
        self.accepted.extend(other.accepted);
        self.latencies.extend(other.latencies);
        self.failed += other.failed;
        self.failure = self.failure.or(other.failure);
        self.snapshots += other.snapshots;
        self.snapshots_refused += other.snapshots_refused;
        self.snapshot_refusal = self.snapshot_refusal.or(other.snapshot_refusal);
        self
    }
}

/// Replays on `threads` threads; `peers[i]` is the session of `devices[i]`, which sealed
/// `sealed[i]`.
fn replay(peers: &mut [Peer], devices: &mut [Device], sealed: &[Vec<Sealed>], threads: usize) -> Tally {
    let per_thread = peers.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = peers
            .chunks_mut(per_thread)
            .zip(devices.chunks_mut(per_thread))
            .zip(sealed.chunks(per_thread))
            .map(|((peers, devices), sealed)| scope.spawn(move || replay_thread(peers, devices, sealed)))
            .collect();
        handles.into_iter().map(|h| h.join().expect("a replay thread")).fold(Tally::default(), Tally::add)
    })
}

fn replay_thread(peers: &mut [Peer], devices: &mut [Device], sealed: &[Vec<Sealed>]) -> Tally {
    let agent = wire::agent();
    let mut tally = Tally::default();
    let edits = sealed.iter().map(Vec::len).max().unwrap_or(0);
    for k in 0..edits {
        for (((session, cursor), device), bundles) in peers.iter_mut().zip(devices.iter_mut()).zip(sealed) {
            let Some(bundle) = bundles.get(k) else { continue };
            let sent = Instant::now();
            let pushed = wire::push_one(&agent, session, cursor, &bundle.bytes, bundle.id);
            tally.latencies.push(sent.elapsed());
            let pushed = match pushed {
                Ok(pushed) => pushed,
                Err(e) => {
                    tally.fail(e.to_string());
                    continue;
                }
            };
            match &pushed.ack {
                Ack::Accepted => {
                    tally.accepted.insert(bundle.id);
                }
                other => tally.fail(format!("{other:?}")),
            }
            if !pushed.snapshot_asks().is_empty() {
                answer_snapshot_asks(&agent, session, cursor, device, &pushed, &mut tally);
            }
        }
    }
    tally
}

/// Answers the snapshot asks of a push's complete answer as the pushing device does in its
/// next round: a snapshot of each document listed, sealed with the device's own key and
/// covering the answer's `head`, all uploaded in one request that pushes nothing else; each
/// checked to be stored.
///
/// The device's document already holds every edit it sealed (they were made before the
/// replay), so its snapshot holds changes past `covers` as well. The server cannot see inside
/// a snapshot: it checks, stores and serves this one as any other, so its cost is that of a
/// real upload. A snapshot costs the device a `save()` and a seal: client CPU, not counted
/// (only in the wall time). The asks in the upload's own answer are not answered (a device
/// snapshots a document once per sync); the server asks again at the next push if the tail
/// is still long.
fn answer_snapshot_asks(
    agent: &ureq::Agent,
    session: &Session,
    cursor: &mut Cursor,
    device: &mut Device,
    pushed: &Pushed,
    tally: &mut Tally,
) {
    let mut snapshots = Vec::new();
    for document in pushed.snapshot_asks() {
        let sealed = DocumentId::from_bytes(&document.0)
            .map_err(|e| e.to_string())
            .and_then(|document| device.seal_snapshot(document, pushed.head).map_err(|e| e.to_string()));
        match sealed {
            Ok(Some(snapshot)) => snapshots.push(snapshot),
            Ok(None) => tally.refuse("the device made no snapshot of the document".into()),
            Err(e) => tally.refuse(format!("no snapshot sealed: {e}")),
        }
    }
    if snapshots.is_empty() {
        return;
    }
    let ids: Vec<[u8; 16]> = snapshots.iter().map(bundle_id).collect();
    match wire::upload_snapshots(agent, session, cursor, snapshots, &ids) {
        Ok(acks) => {
            for ack in acks {
                match ack {
                    Ack::Accepted => tally.snapshots += 1,
                    other => tally.refuse(format!("snapshot {other:?}")),
                }
            }
        }
        Err(e) => ids.iter().for_each(|_| tally.refuse(e.to_string())),
    }
}

/// Every reader pulls from its cursor until its answer is complete, each on a thread.
fn pull_backlogs(readers: &mut [Peer]) -> Vec<Vec<Blob>> {
    on_each_reader(readers, |session, cursor| {
        wire::pull_all(&wire::agent(), session, cursor).expect("pull the backlog")
    })
}

/// Every reader syncs [`IDLE_SYNCS_PER_READER`] times with nothing new, each on a thread, as
/// a device does when its live socket wakes it or the app opens; each answer must be
/// complete, with no bundle and no chore (snapshot or key asked for). The number of syncs.
fn idle_syncs(readers: &mut [Peer]) -> u64 {
    let syncs = on_each_reader(readers, |session, cursor| {
        let agent = wire::agent();
        for _ in 0..IDLE_SYNCS_PER_READER {
            let answer = session.sync(&agent, &cursor.request(Vec::new())).expect("an idle sync");
            cursor.advance(&answer);
            // Nothing new and nothing asked: a chore would put its own cost in.
            assert!(answer.complete && answer.bundles.is_empty(), "an idle sync received bundles");
            assert!(answer.compact.is_empty(), "an idle sync asked for snapshots");
            assert!(answer.key_requests.is_empty(), "an idle sync asked for keys");
        }
        IDLE_SYNCS_PER_READER
    });
    syncs.into_iter().sum()
}

/// `work` for each reader's session and cursor, the readers side by side on threads of their
/// own; the results in the readers' order.
fn on_each_reader<T: Send>(readers: &mut [Peer], work: impl Fn(&Session, &mut Cursor) -> T + Sync) -> Vec<T> {
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> =
            readers.iter_mut().map(|(session, cursor)| scope.spawn(move || work(session, cursor))).collect();
        handles.into_iter().map(|h| h.join().expect("a reader thread")).collect()
    })
}

/// The server's resident memory around idle live sockets.
#[derive(Debug, Clone, Copy, Default)]
pub struct Idle {
    /// Sockets open before the first reading (the readers'), and sockets opened after it.
    pub warm: usize,
    pub measured: usize,
    pub before_kib: u64,
    pub after_kib: u64,
}

impl Fixture {
    /// On a fresh server, every device opens a session; the readers open `per_device` live
    /// sockets each (so the first sockets' one-off costs are behind), the server's RSS is
    /// read, every pusher opens `per_device` sockets, and the RSS is read again. Every socket
    /// has had its 101 answer, so the server has subscribed it; none carries anything.
    pub fn idle(&self, per_device: usize) -> Idle {
        let database = self.base.fork(self.dir.path(), "idle");
        let server = start_server(&database);
        let pid = server.child.id();
        let agent = wire::agent();
        let readers: Vec<Session> =
            self.readers.iter().map(|d| Session::open(&agent, &server.url, d)).collect();
        let pushers: Vec<Session> =
            self.pushers.iter().map(|d| Session::open(&agent, &server.url, d)).collect();
        let mut open = Vec::new();
        for session in &readers {
            open.extend((0..per_device).map(|_| live_socket(&server, session.token())));
        }
        let warm = open.len();
        let before_kib = rss_kib(pid).expect("the server runs");
        for session in &pushers {
            open.extend((0..per_device).map(|_| live_socket(&server, session.token())));
        }
        let after_kib = rss_kib(pid).expect("the server runs");
        let idle = Idle { warm, measured: open.len() - warm, before_kib, after_kib };
        drop(open);
        drop(server);
        database.remove();
        idle
    }
}

/// A live-hint socket as a device opens it (`GET /v1/live`, the session as a bearer token),
/// once the server has answered 101.
fn live_socket(server: &Server, token: &str) -> tungstenite::WebSocket<TcpStream> {
    let mut request =
        format!("ws://{}{PATH_LIVE}", server.address()).into_client_request().expect("a WebSocket request");
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("a header value"));
    let stream = TcpStream::connect(server.address()).expect("connect to the server");
    let (socket, response) = tungstenite::client::client(request, stream).expect("the live socket opens");
    assert_eq!(response.status().as_u16(), 101, "the server did not switch protocols");
    socket
}
