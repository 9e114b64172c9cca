//! Durability with real kills: a child process edits in a loop and reports each acknowledged
//! edit; it is killed with SIGKILL at random moments. After every kill the store must open and
//! hold every edit that was acknowledged.
//!
//! The seed is printed; `EENPLAN_KILL_SEED=N` replays a run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use eenplan_core::Device;
use eenplan_tests::{edit_marker, test_keystore};

const KILLS: usize = 60;

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn every_acknowledged_edit_survives_sigkill_at_random_moments() {
    let seed = std::env::var("EENPLAN_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).unwrap();
        u64::from_le_bytes(b) | 1
    });
    println!("kill test seed: {seed}");
    let mut rng = Rng(seed);

    let dir = tempfile::tempdir().unwrap();
    let plan = {
        let mut device = Device::init(dir.path(), &test_keystore()).unwrap();
        device.create_plan("Durability").unwrap()
    };

    let mut acknowledged: Vec<u64> = Vec::new();
    let mut next = 0u64;
    let mut kills_mid_edit = 0;
    for round in 0..KILLS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_edit_loop"))
            .arg(dir.path())
            .arg(plan.to_string())
            .arg(next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Kill after a random number of acknowledgements (sometimes none: a kill while the
        // store opens), then a random spin of up to 3 ms so the kill lands anywhere in the
        // next transaction.
        let wait_for = rng.below(25);
        for _ in 0..wait_for {
            match lines.next() {
                Some(Ok(line)) => acknowledged.push(parse_ack(&line)),
                other => panic!("round {round}: child stopped early: {other:?}"),
            }
        }
        let spin = Duration::from_micros(rng.below(3_000));
        let start = Instant::now();
        while start.elapsed() < spin {
            std::hint::spin_loop();
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "round {round}: the child must die by the signal");
        // Acks that reached the pipe before the kill were acknowledged too.
        let before = acknowledged.len();
        for line in lines {
            acknowledged.push(parse_ack(&line.unwrap()));
        }
        if acknowledged.len() > before || wait_for > 0 {
            kills_mid_edit += 1;
        }

        let mut device = Device::open(dir.path(), &test_keystore()).unwrap_or_else(|e| {
            panic!("round {round} (seed {seed}): the store does not open after a kill: {e}")
        });
        let view = device.read(&plan).unwrap_or_else(|e| {
            panic!("round {round} (seed {seed}): the plan does not open after a kill: {e}")
        });
        let notes: std::collections::HashSet<&str> = view.notes.iter().map(|n| n.text.as_str()).collect();
        for i in &acknowledged {
            assert!(
                notes.contains(edit_marker(*i).as_str()),
                "round {round} (seed {seed}): acknowledged edit {i} was lost"
            );
        }
        next = acknowledged.iter().max().map_or(next, |m| m + 1).max(next + 1);
    }
    assert!(acknowledged.len() > KILLS, "the children made progress: {} edits", acknowledged.len());
    assert!(kills_mid_edit > KILLS / 2, "most kills landed while edits were flowing");
}

fn parse_ack(line: &str) -> u64 {
    line.strip_prefix("ack ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected child output {line:?}"))
}
