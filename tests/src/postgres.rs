//! One throw-away PostgreSQL cluster per test process, started through `scripts/postgres.sh`
//! (which installs Debian's `postgresql` when it is missing) and stopped by that script when
//! the process ends; a fresh database per test. Without PostgreSQL the tests that ask for one
//! fail with the script's message: they never skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

fn script(args: &[&str]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new(".."));
    let out = Command::new(root.join("scripts/postgres.sh"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/postgres.sh: {e}"));
    if !out.status.success() {
        panic!(
            "scripts/postgres.sh {args:?} failed; these tests need PostgreSQL (Debian's `postgresql`, \
             installed by scripts/install-test-deps.sh postgres):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// This process's cluster: the superuser's URL (`…/postgres`), its data directory (which
/// holds its Unix socket) and its port.
struct Cluster {
    url: String,
    dir: PathBuf,
    port: u16,
}

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        script(&["install"]);
        // In the system's temporary directory, which the cluster's owner (the postgres user, when
        // the tests run as root) can reach; the script removes it when this process ends.
        let dir = std::env::temp_dir().join(format!("eenplan-e2e-pg-{}", std::process::id()));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| panic!("no free port: {e}"))
            .port();
        let url =
            script(&["start", &dir.to_string_lossy(), &port.to_string(), &std::process::id().to_string()]);
        Cluster { url, dir, port }
    })
}

/// A database name of this process's cluster that no other call returns.
fn new_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("e2e_{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A new, empty database on this process's cluster: its URL.
pub fn fresh_database() -> String {
    script(&["createdb", &cluster().url, &new_name()])
}

/// A new database holding a copy of the one at `url` (of this cluster), made by PostgreSQL
/// itself (`CREATE DATABASE … TEMPLATE …`): its URL. No session may be open on `url`;
/// PostgreSQL waits a few seconds for the sessions of a server just killed to end.
pub fn copy_database(url: &str) -> String {
    let name = new_name();
    psql(&format!("CREATE DATABASE {name} TEMPLATE {}", database_name(url)));
    format!("{}/{name}", cluster_base())
}

/// The database at `url` (of this cluster) reached through the cluster's Unix socket in its
/// data directory (`unix_socket_directories`), as a server on the database's own host
/// connects: the directory, percent-encoded, is the URL's host (ARCHITECTURE, "PostgreSQL on
/// the server's own host").
pub fn through_socket(url: &str) -> String {
    use std::os::unix::ffi::OsStrExt;
    // The directory's bytes as they are: tokio-postgres decodes the host to bytes again.
    let dir = cluster().dir.as_os_str().as_bytes();
    let host = percent_encoding::percent_encode(dir, percent_encoding::NON_ALPHANUMERIC);
    let base = cluster_base();
    let (scheme_and_user, _) =
        base.rsplit_once('@').unwrap_or_else(|| panic!("the cluster's URL {base} names no user"));
    format!("{scheme_and_user}@{host}:{}/{}", cluster().port, database_name(url))
}

/// Drops the database at `url` (of this cluster), ending any session still open on it.
pub fn drop_database(url: &str) {
    psql(&format!("DROP DATABASE {} WITH (FORCE)", database_name(url)));
}

/// The process id of the cluster's postmaster: every backend and helper process of the
/// cluster is its child.
pub fn postmaster_pid() -> u32 {
    let file = cluster().dir.join("postmaster.pid");
    let text =
        std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    text.lines()
        .next()
        .and_then(|line| line.trim().parse().ok())
        .unwrap_or_else(|| panic!("{} does not start with a process id", file.display()))
}

/// The cluster's URL without its database: `postgres://user@host:port`.
fn cluster_base() -> &'static str {
    let url = &cluster().url;
    url.rsplit_once('/').map_or(url.as_str(), |(base, _)| base)
}

/// The database a URL of this cluster names, checked to be one of ours (letters, digits,
/// `_`), since it goes into SQL as an identifier.
fn database_name(url: &str) -> &str {
    let name = url.rsplit_once('/').map_or("", |(_, name)| name);
    assert!(
        name.starts_with("e2e_") && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "{url:?} is not a database of this process's cluster"
    );
    name
}

/// Brings the statistics and visibility map of the database at `url` (of this cluster) to
/// where autovacuum keeps a long-running database's: `VACUUM (ANALYZE)`. A database a test
/// just filled has none, and the planner then guesses every table's size.
pub fn vacuum_analyze(url: &str) {
    psql_on(&format!("{}/{}", cluster_base(), database_name(url)), "VACUUM (ANALYZE)");
}

/// Runs one SQL statement as the cluster's superuser, with the client of the installed server;
/// what it printed.
fn psql(sql: &str) -> String {
    psql_on(&cluster().url, sql)
}

/// [`psql`] on the database at `url`.
fn psql_on(url: &str, sql: &str) -> String {
    let out = Command::new(psql_binary())
        .arg(url)
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
    if !out.status.success() {
        panic!("psql {sql:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The file a developer's statement profile goes to: `EENPLAN_PG_STATEMENTS`, which also makes
/// `scripts/postgres.sh` load `pg_stat_statements` into the cluster.
fn statements_file() -> Option<PathBuf> {
    std::env::var_os("EENPLAN_PG_STATEMENTS").filter(|f| !f.is_empty()).map(PathBuf::from)
}

/// Starts a phase of a statement profile (see [`statements_file`]): forgets what came before.
/// Does nothing without one.
pub fn statements_begin() {
    if statements_file().is_some() {
        psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()");
    }
}

/// Appends the statements since [`statements_begin`] to the profile under `phase`, the
/// costliest first (planning plus execution time, which includes waiting for the disk). Does
/// nothing without a profile.
pub fn statements_end(phase: &str) {
    let Some(file) = statements_file() else { return };
    let table = psql(
        "SELECT calls, round(total_plan_time::numeric, 1) AS plan_ms, \
         round(total_exec_time::numeric, 1) AS exec_ms, rows, \
         left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query \
         FROM pg_stat_statements ORDER BY total_plan_time + total_exec_time DESC LIMIT 40",
    );
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", file.display()));
    use std::io::Write;
    writeln!(out, "## {phase}\n{table}").unwrap_or_else(|e| panic!("cannot write {}: {e}", file.display()));
}

/// The `psql` next to the installed server's binaries (as `scripts/postgres.sh` finds them),
/// else the one on the path.
fn psql_binary() -> PathBuf {
    let installed = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|version| version.path().join("bin/psql"))
        .find(|path| path.is_file());
    installed.unwrap_or_else(|| PathBuf::from("psql"))
}
