//! CPU time and resident memory of a process, read from `/proc` (Linux), so that a figure is
//! the server's own and never the load generator's.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// User plus system CPU time of process `pid` so far, all its threads.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces and parentheses) start after
    // its last ")": state is field 3, utime 14 and stime 15.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

/// The resident set size of process `pid` now (`VmRSS`), in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// The peak resident set size of process `pid` (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Clock ticks per second, the unit of `/proc/PID/stat`'s times.
fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

/// CPU time and wall time of a stretch of work in process `pid`.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch {
    pid: u32,
    cpu: Duration,
    wall: std::time::Instant,
}

/// What a [`Stopwatch`] measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spent {
    pub cpu: Duration,
    pub wall: Duration,
}

impl Stopwatch {
    /// Starts now; `None` when the process is gone.
    pub fn start(pid: u32) -> Option<Stopwatch> {
        Some(Stopwatch { pid, cpu: cpu_time(pid)?, wall: std::time::Instant::now() })
    }

    pub fn stop(self) -> Option<Spent> {
        let wall = self.wall.elapsed();
        Some(Spent { cpu: cpu_time(self.pid)?.saturating_sub(self.cpu), wall })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_time_read_for_a_process_grows_while_it_works() {
        let pid = std::process::id();
        let before = cpu_time(pid).unwrap();
        let started = std::time::Instant::now();
        let mut x = 0u64;
        // A clock tick is 10 ms of CPU; ten seconds of spinning without one is a broken read.
        while cpu_time(pid).unwrap() <= before {
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            assert!(started.elapsed() < Duration::from_secs(10), "the CPU time read never grew");
        }
    }

    #[test]
    fn the_resident_memory_read_is_never_above_its_peak() {
        let pid = std::process::id();
        let now = rss_kib(pid).unwrap();
        assert!(now > 0);
        assert!(peak_rss_kib(pid).unwrap() >= now);
    }

    #[test]
    fn a_process_that_does_not_exist_has_no_figures() {
        assert_eq!(cpu_time(u32::MAX), None);
        assert_eq!(rss_kib(u32::MAX), None);
    }
}
