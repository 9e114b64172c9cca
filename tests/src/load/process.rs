//! CPU time and resident memory of a process, read from `/proc` (Linux), so that a figure is
//! the server's own and never the load generator's.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// User plus system CPU time of process `pid` so far, all its threads.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = Stat::read(pid)?;
    Some(ticks(stat.utime + stat.stime))
}

/// The CPU time of process `root` and its children so far: its own, its running children's,
/// and that of the children it has waited for (and theirs). What a database server's
/// processes spent, when `root` is PostgreSQL's postmaster: a backend that ends moves its time
/// from the running children into the postmaster's `cutime`, so the sum stays whole.
pub fn tree_cpu_time(root: u32) -> Option<Duration> {
    // A child waited for while the children are read moves its time into `cutime`: read
    // before, it is counted nowhere; read after, twice. So the walk counts only when the
    // root's `cutime` and `cstime` are the same before and after it (a few tries; a process
    // cannot reap children faster than that for long).
    let mut own = Stat::read(root)?;
    for _ in 0..100 {
        let children = running_children_ticks(root)?;
        let after = Stat::read(root)?;
        if (after.cutime, after.cstime) == (own.cutime, own.cstime) {
            return Some(ticks(after.utime + after.stime + after.cutime + after.cstime + children));
        }
        own = after;
    }
    None
}

/// The CPU time of `root`'s running children (with what they waited for), in clock ticks.
fn running_children_ticks(root: u32) -> Option<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if let Some(child) = Stat::read(pid).filter(|s| s.ppid == root) {
            total += child.utime + child.stime + child.cutime + child.cstime;
        }
    }
    Some(total)
}

/// The fields of `/proc/PID/stat` the figures use, in clock ticks.
#[derive(Debug, Clone, Copy)]
struct Stat {
    ppid: u32,
    utime: u64,
    stime: u64,
    cutime: u64,
    cstime: u64,
}

impl Stat {
    fn read(pid: u32) -> Option<Stat> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The fields after the command name (which may hold spaces and parentheses) start after
        // its last ")": state is field 3, ppid 4, utime 14, stime 15, cutime 16, cstime 17.
        let rest = stat.get(stat.rfind(')')? + 2..)?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n)?.parse::<u64>().ok();
        Some(Stat {
            ppid: u32::try_from(field(1)?).ok()?,
            utime: field(11)?,
            stime: field(12)?,
            cutime: field(13)?,
            cstime: field(14)?,
        })
    }
}

fn ticks(n: u64) -> Duration {
    Duration::from_secs_f64(n as f64 / clock_ticks() as f64)
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

/// CPU time and wall time of a stretch of work in process `pid`, and the CPU time of a
/// database server's processes (the tree under its root process) over the same stretch.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch {
    pid: u32,
    cpu: Duration,
    database: Option<(u32, Duration)>,
    wall: std::time::Instant,
}

/// What a [`Stopwatch`] measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spent {
    pub cpu: Duration,
    /// The database server's processes (`None`: no separate database server).
    pub database_cpu: Option<Duration>,
    pub wall: Duration,
}

impl Spent {
    /// The process's CPU time and the database server's together.
    pub fn cpu_with_database(&self) -> Duration {
        self.cpu + self.database_cpu.unwrap_or_default()
    }
}

impl Stopwatch {
    /// Starts now; `None` when the process is gone.
    pub fn start(pid: u32) -> Option<Stopwatch> {
        Stopwatch::start_with_database(pid, None)
    }

    /// Starts now, also reading the processes under `database` (a postmaster), if any.
    pub fn start_with_database(pid: u32, database: Option<u32>) -> Option<Stopwatch> {
        let database = match database {
            Some(root) => Some((root, tree_cpu_time(root)?)),
            None => None,
        };
        Some(Stopwatch { pid, cpu: cpu_time(pid)?, database, wall: std::time::Instant::now() })
    }

    pub fn stop(self) -> Option<Spent> {
        let wall = self.wall.elapsed();
        let cpu = cpu_time(self.pid)?.saturating_sub(self.cpu);
        let database_cpu = match self.database {
            Some((root, before)) => Some(tree_cpu_time(root)?.saturating_sub(before)),
            None => None,
        };
        Some(Spent { cpu, database_cpu, wall })
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
        assert_eq!(tree_cpu_time(u32::MAX), None);
        assert_eq!(rss_kib(u32::MAX), None);
    }

    /// How much more the tree under this process spent than this process itself.
    fn children_of_this_process() -> Duration {
        let pid = std::process::id();
        // Read own time last: it only grows, so the difference never overstates the children.
        let tree = tree_cpu_time(pid).unwrap();
        tree.saturating_sub(cpu_time(pid).unwrap())
    }

    /// A shell that spins for ever, as a busy database backend does.
    fn spinning_child() -> std::process::Child {
        std::process::Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap()
    }

    #[test]
    fn the_tree_cpu_time_counts_a_running_child_and_keeps_it_once_the_child_has_ended() {
        let before = children_of_this_process();
        let mut child = spinning_child();
        let started = std::time::Instant::now();
        // A running child's time shows in the tree (and only there: this process idles).
        while children_of_this_process() < before + Duration::from_millis(200) {
            assert!(started.elapsed() < Duration::from_secs(20), "a running child's CPU never showed");
            std::thread::yield_now();
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Waited for, its time moved into this process's cutime: it is still counted.
        assert!(children_of_this_process() >= before + Duration::from_millis(200));
    }

    #[test]
    fn a_stopwatch_with_a_database_reports_the_time_of_the_processes_under_it() {
        let pid = std::process::id();
        let watch = Stopwatch::start_with_database(pid, Some(pid)).unwrap();
        let mut child = spinning_child();
        let started = std::time::Instant::now();
        loop {
            let spent = watch.stop().unwrap();
            let database = spent.database_cpu.unwrap();
            if database >= spent.cpu + Duration::from_millis(100) {
                assert_eq!(spent.cpu_with_database(), spent.cpu + database);
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "the child's CPU never showed");
            std::thread::yield_now();
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(Stopwatch::start(pid).unwrap().stop().unwrap().database_cpu, None);
    }
}
