//! One throw-away PostgreSQL cluster per test process, started through `scripts/postgres.sh`
//! (which installs Debian's `postgresql` when it is missing) and stopped by that script when
//! the process ends; a fresh database per test. Without PostgreSQL the tests that ask for one
//! fail with the script's message: they never skip.

use std::path::Path;
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

/// The superuser's URL of this process's cluster (`…/postgres`).
fn cluster() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        script(&["install"]);
        // In the system's temporary directory, which the cluster's owner (the postgres user, when
        // the tests run as root) can reach; the script removes it when this process ends.
        let dir = std::env::temp_dir().join(format!("eenplan-e2e-pg-{}", std::process::id()));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| panic!("no free port: {e}"))
            .port();
        script(&["start", &dir.to_string_lossy(), &port.to_string(), &std::process::id().to_string()])
    })
}

/// A new, empty database on this process's cluster: its URL.
pub fn fresh_database() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let name = format!("e2e_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    script(&["createdb", cluster(), &name])
}
