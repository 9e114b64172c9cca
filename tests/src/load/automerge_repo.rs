//! automerge-repo's sync server under the same workload: `scripts/automerge-repo` (its
//! `package.json` pins the versions, `package-lock.json` the whole tree) installed with
//! `npm install` from the npm registry into scratch space, its server (`server.mjs`) and its load
//! client (`client.mjs`) each a node process of its own, so that the client's CPU is never
//! the server's.

use std::io::{BufRead, BufReader, Lines, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use super::process::{Spent, Stopwatch, rss_kib};
use crate::bench::scratch;

/// The files `npm install` and the bench need, from the repository.
const FILES: [&str; 4] = ["package.json", "package-lock.json", "server.mjs", "client.mjs"];

fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/automerge-repo")
}

/// The scripts with their `node_modules`, in scratch space.
#[derive(Debug)]
pub struct Installed {
    dir: tempfile::TempDir,
}

/// Installs the pinned packages; `Err` says why it could not (no node, no registry).
pub fn install() -> Result<Installed, String> {
    let dir = scratch("load-bench", "automerge-repo");
    for file in FILES {
        std::fs::copy(source().join(file), dir.path().join(file)).map_err(|e| format!("copy {file}: {e}"))?;
    }
    let node = Command::new("node").arg("--version").output().map_err(|e| format!("node: {e}"))?;
    if !node.status.success() {
        return Err("node does not run".into());
    }
    // `npm install` with the lock file in place installs exactly its tree (`npm ci` refuses a
    // lock without entries for optional packages of other platforms, which npm leaves out when
    // it writes the lock without their registry addresses). A lock file npm had to change
    // means the tree was not the pinned one. No install scripts: the only one (cbor-extract, a
    // native speed-up of cbor-x) has a JavaScript fallback.
    let lock =
        std::fs::read(dir.path().join("package-lock.json")).map_err(|e| format!("the lock file: {e}"))?;
    let npm = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"])
        .current_dir(dir.path())
        .output()
        .map_err(|e| format!("npm: {e}"))?;
    if !npm.status.success() {
        let stderr = String::from_utf8_lossy(&npm.stderr);
        return Err(format!(
            "npm install failed: {}",
            stderr.lines().take(3).collect::<Vec<_>>().join(" / ")
        ));
    }
    if std::fs::read(dir.path().join("package-lock.json")).ok() != Some(lock) {
        return Err("npm install changed package-lock.json: the installed tree is not the pinned one".into());
    }
    Ok(Installed { dir })
}

/// A node process of the scripts, with its stdin and the lines it prints.
#[derive(Debug)]
struct Node {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Node {
    fn start(installed: &Installed, args: &[String]) -> Node {
        let mut child = Command::new("node")
            .args(args)
            .current_dir(installed.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node");
        let stdin = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().expect("node's stdout")).lines();
        Node { child, stdin, lines }
    }

    /// The next line it prints; it must print one.
    fn line(&mut self) -> String {
        match self.lines.next() {
            Some(Ok(line)) => line,
            other => panic!("node {:?} ended without answering: {other:?}", self.child.id()),
        }
    }

    fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("node's stdin");
        writeln!(stdin, "{line}").and_then(|()| stdin.flush()).expect("write to node");
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Node {
    /// Closing stdin ends the scripts; a kill makes sure.
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sync server (`server.mjs`) on a free loopback port, its documents in `data`.
#[derive(Debug)]
pub struct SyncServer {
    node: Node,
    pub url: String,
}

impl Installed {
    pub fn server(&self, data: &Path) -> SyncServer {
        let mut node = Node::start(self, &["server.mjs".into(), "--data".into(), data.display().to_string()]);
        let line = node.line();
        let port = line.strip_prefix("listening on ").unwrap_or_else(|| panic!("the server said {line:?}"));
        SyncServer { url: format!("ws://127.0.0.1:{}", port.trim()), node }
    }
}

impl SyncServer {
    pub fn pid(&self) -> u32 {
        self.node.pid()
    }

    /// Saves every document to storage now (automerge-repo saves on a debounce).
    fn flush(&mut self) {
        self.node.say("flush");
        let line = self.node.line();
        assert_eq!(line, "flushed", "the server's answer to flush");
    }
}

/// What one load run on automerge-repo gave.
#[derive(Debug, Clone, Copy, Default)]
pub struct Run {
    /// Edits whose change the server's heads showed; edits it never showed.
    pub changes: u64,
    pub failed: u64,
    /// The server's CPU and the wall time from the first edit until the server had saved all.
    pub push: Spent,
}

impl Installed {
    /// `clients` clients each make `docs` documents (synced before the clock starts), then
    /// `edits` edits to each, every one acknowledged by the server's heads before the next;
    /// the clock stops when the server has saved them to storage.
    pub fn load(&self, server: &mut SyncServer, clients: usize, docs: usize, edits: usize) -> Run {
        let (clients, docs, edits) = (clients.to_string(), docs.to_string(), edits.to_string());
        let args: [&str; 10] = [
            "client.mjs",
            "load",
            "--url",
            &server.url,
            "--clients",
            &clients,
            "--docs",
            &docs,
            "--edits",
            &edits,
        ];
        let mut client = Node::start(self, &args.map(str::to_owned));
        let line = client.line();
        assert_eq!(line, "ready", "the load client's setup");
        let watch = Stopwatch::start(server.pid()).expect("the server runs");
        client.say("go");
        let line = client.line();
        let numbers: Vec<u64> = line
            .strip_prefix("done ")
            .unwrap_or_default()
            .split(' ')
            .filter_map(|n| n.parse().ok())
            .collect();
        let [changes, failed, _millis] = numbers[..] else { panic!("the load client said {line:?}") };
        server.flush();
        Run { changes, failed, push: watch.stop().expect("the server runs") }
    }

    /// On `server` (fresh), `warm` idle WebSocket peers join (so one-off costs are behind),
    /// the RSS is read, `measured` more join, and it is read again.
    pub fn idle(&self, server: &SyncServer, warm: usize, measured: usize) -> super::eenplan::Idle {
        let _first = self.idle_peers(server, warm);
        let before_kib = rss_kib(server.pid()).expect("the server runs");
        let _second = self.idle_peers(server, measured);
        let after_kib = rss_kib(server.pid()).expect("the server runs");
        super::eenplan::Idle { warm, measured, before_kib, after_kib }
    }

    fn idle_peers(&self, server: &SyncServer, connections: usize) -> Node {
        let count = connections.to_string();
        let args: [&str; 6] = ["client.mjs", "idle", "--url", &server.url, "--connections", &count];
        let mut client = Node::start(self, &args.map(str::to_owned));
        let line = client.line();
        assert_eq!(line, format!("connected {connections}"), "the idle client");
        client
    }
}
