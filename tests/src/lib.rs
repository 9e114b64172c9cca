//! Cross-process tests of eenplan: real processes, real kills, real files.
//!
//! The binaries in `src/bin` are the child processes these tests start and kill.

use eenplan_core::keystore::{KdfParams, PassphraseKeyStore};

/// The keystore every test process uses. Cheap Argon2 parameters: these tests measure
/// durability, not the key derivation.
pub fn test_keystore() -> PassphraseKeyStore {
    PassphraseKeyStore::with_params("kill-test", KdfParams::INSECURE_FAST_FOR_TESTS)
}

/// The date `days` from today in the Netherlands (negative: in the past), YYYY-MM-DD: due
/// dates for the agenda's tests and benchmark, whatever day they run.
pub fn day(days: i64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let today = eenplan_core::calendar::dutch_date(i64::try_from(now.as_millis()).unwrap_or(i64::MAX));
    today.checked_add(time::Duration::days(days)).unwrap_or(today).to_string()
}

/// The text of the note that edit `i` writes, so that a reader can check for it.
pub fn edit_marker(i: u64) -> String {
    format!("edit-{i:06}")
}

// Benchmark helpers: a failed step must stop the run loudly.
#[allow(clippy::expect_used, clippy::panic)]
pub mod bench;

// Test harness: a failed step must stop the test loudly, so panicking is the point here.
#[allow(clippy::panic)]
pub mod network;

/// The shaping TCP proxy: latency, rate caps, cuts and resets of a phone's link, on loopback.
pub mod link;

/// `load_bench`'s load generator: pre-sealed pushes replayed over HTTP, the backlog pulled,
/// idle live sockets, and automerge-repo's sync server under the same workload.
#[allow(clippy::expect_used, clippy::panic)]
pub mod load;

/// `EENPLAN_SOAK=1`: the end-to-end tests at full size.
pub mod soak;

/// The `eenplan` command line, run as a process on an enrolled data directory.
pub mod cli;

/// The administrator's console: its process, raw requests, and headless chromium through
/// chromedriver.
#[allow(clippy::panic)]
pub mod console;

/// A throw-away PostgreSQL cluster for the tests of `serve --database`.
#[allow(clippy::panic)]
pub mod postgres;

/// nginx as the load balancer in front of several server processes on one database.
#[allow(clippy::panic)]
pub mod balancer;
