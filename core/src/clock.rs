//! Time as an injected dependency, so that tests can move it, and the device's own clock:
//! the host's clock anchored to the server's and never running backwards.
//!
//! A phone's wall clock can be minutes or days wrong, and its user can set it at will. What
//! the device stamps on edits and measures its offline lease with is [`DeviceClock`]:
//!
//! - at every session the server states its time, and the device clock is **anchored** to it;
//! - between sessions it advances by the time that really passed: the host's time since boot
//!   (Linux and Android: `CLOCK_BOOTTIME`, which counts sleep and ignores any setting of the
//!   wall clock) while the device has not restarted, even across app restarts;
//! - where no such clock is at hand (another boot, another platform) it advances by the wall
//!   clock's *forward* steps only: a wall clock set back (or corrected after running fast)
//!   adds nothing, one that runs on adds what it ran.
//!
//! ```text
//! host clock   10:00 ─────── 10:30 ──(set back to 09:00)── 09:20 ────── 09:50
//! device clock 10:00 ─────── 10:30 ─────────────────────── 10:30 ────── 11:00
//!              anchored to the server's 10:00 at a session
//! ```
//!
//! So a phone whose clock is three days fast stamps its notes with the server's time, and
//! when its clock is put right its lease still ends 72 hours after the renewal, not six days.
//! A clock pushed forward ends the lease early (a sync anchors it again); no setting of the
//! host clock makes the lease last longer.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, and (where the platform has one) time since boot.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> i64;

    /// Time since this boot, counting sleep and unaffected by any setting of the wall clock;
    /// `None` where the platform offers none.
    fn since_boot(&self) -> Option<SinceBoot> {
        None
    }
}

/// A reading of the time since boot, with the boot it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinceBoot {
    /// Identifies the boot (a hash of the kernel's boot id).
    pub boot: u64,
    pub ms: i64,
}

/// The wall clock, and `CLOCK_BOOTTIME` on Linux and Android.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn since_boot(&self) -> Option<SinceBoot> {
        static BOOT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
        let boot = (*BOOT.get_or_init(|| {
            let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
            let digest = <sha2::Sha256 as sha2::Digest>::digest(id.trim().as_bytes());
            digest.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes)
        }))?;
        let time = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        let ms = time.tv_sec.saturating_mul(1000).saturating_add(time.tv_nsec / 1_000_000);
        Some(SinceBoot { boot, ms })
    }
}

/// A clock that only moves when told to (tests, simulations), with a time since boot that
/// only real time moves.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    wall: Arc<AtomicI64>,
    boot: Arc<AtomicI64>,
    since_boot: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn new(start_ms: i64) -> Self {
        ManualClock {
            wall: Arc::new(AtomicI64::new(start_ms)),
            boot: Arc::new(AtomicI64::new(1)),
            since_boot: Arc::new(AtomicI64::new(60_000)),
        }
    }

    /// Lets `ms` of time pass (a negative `ms` sets the wall clock back instead, as a user can).
    pub fn advance_ms(&self, ms: i64) {
        self.wall.fetch_add(ms, Ordering::SeqCst);
        if ms > 0 {
            self.since_boot.fetch_add(ms, Ordering::SeqCst);
        }
    }

    /// Sets the wall clock (a user, or the network's time); no time passes.
    pub fn set_ms(&self, ms: i64) {
        self.wall.store(ms, Ordering::SeqCst);
    }

    /// Restarts the device: a new boot, whose time since boot starts again.
    pub fn reboot(&self) {
        self.boot.fetch_add(1, Ordering::SeqCst);
        self.since_boot.store(0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.wall.load(Ordering::SeqCst)
    }

    fn since_boot(&self) -> Option<SinceBoot> {
        let boot = u64::try_from(self.boot.load(Ordering::SeqCst)).unwrap_or(0);
        Some(SinceBoot { boot, ms: self.since_boot.load(Ordering::SeqCst) })
    }
}

/// Where the device clock stood at a host clock reading: what is persisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClockReading {
    /// The device clock (ms since the epoch).
    pub device_ms: i64,
    /// The host's wall clock at that moment.
    pub host_ms: i64,
    /// The host's time since boot at that moment, where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_boot: Option<SinceBoot>,
}

impl ClockReading {
    /// How far the device clock moves from this reading to the host's `now`: the time since
    /// boot that passed, within one boot; otherwise the wall clock's step, if forward.
    fn step_to(&self, host_ms: i64, since_boot: Option<SinceBoot>) -> i64 {
        match (self.since_boot, since_boot) {
            (Some(then), Some(now)) if then.boot == now.boot && now.ms >= then.ms => now.ms - then.ms,
            _ => host_ms.saturating_sub(self.host_ms).max(0),
        }
    }
}

/// The device's clock (module docs).
#[derive(Debug)]
pub(crate) struct DeviceClock {
    host: Arc<dyn Clock>,
    reading: Mutex<ClockReading>,
}

impl DeviceClock {
    /// A clock that goes on from `persisted` (or starts at the host's time).
    pub fn new(host: Arc<dyn Clock>, persisted: Option<ClockReading>) -> DeviceClock {
        let reading = persisted.unwrap_or_else(|| {
            let now = host.now_ms();
            ClockReading { device_ms: now, host_ms: now, since_boot: host.since_boot() }
        });
        DeviceClock { host, reading: Mutex::new(reading) }
    }

    /// A reading of `host` now, with the device clock at `device_ms`.
    pub fn reading_at(host: &dyn Clock, device_ms: i64) -> ClockReading {
        ClockReading { device_ms, host_ms: host.now_ms(), since_boot: host.since_boot() }
    }

    /// Sets the device clock to `server_ms` (a session's answer).
    pub fn anchor(&self, server_ms: i64) {
        let reading = DeviceClock::reading_at(self.host.as_ref(), server_ms);
        *self.reading.lock().unwrap_or_else(PoisonError::into_inner) = reading;
    }

    /// The current reading, for persisting.
    pub fn reading(&self) -> ClockReading {
        self.advance()
    }

    fn advance(&self) -> ClockReading {
        let host_ms = self.host.now_ms();
        let since_boot = self.host.since_boot();
        let mut reading = self.reading.lock().unwrap_or_else(PoisonError::into_inner);
        let step = reading.step_to(host_ms, since_boot);
        *reading = ClockReading { device_ms: reading.device_ms.saturating_add(step), host_ms, since_boot };
        *reading
    }
}

impl Clock for DeviceClock {
    fn now_ms(&self) -> i64 {
        self.advance().device_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn device_clock(start: i64) -> (ManualClock, DeviceClock) {
        let host = ManualClock::new(start);
        let clock = DeviceClock::new(Arc::new(host.clone()), None);
        (host, clock)
    }

    #[test]
    fn a_wall_clock_put_right_while_the_app_was_closed_neither_stretches_nor_shortens_time() {
        // Three days fast, anchored to the server's 100 h, persisted, then the app closes.
        let (host, clock) = device_clock(172 * HOUR);
        clock.anchor(100 * HOUR);
        let saved = clock.reading();
        // Closed: the network corrects the clock, and 71 hours pass.
        host.set_ms(100 * HOUR);
        host.advance_ms(71 * HOUR);
        let reopened = DeviceClock::new(Arc::new(host.clone()), Some(saved));
        assert_eq!(reopened.now_ms(), 171 * HOUR);
    }

    #[test]
    fn after_a_reboot_the_wall_clock_steps_forward_only() {
        let (host, clock) = device_clock(100 * HOUR);
        let saved = clock.reading();
        host.reboot();
        host.advance_ms(5 * HOUR);
        let reopened = DeviceClock::new(Arc::new(host.clone()), Some(saved));
        assert_eq!(reopened.now_ms(), 105 * HOUR);
        let saved = reopened.reading();
        host.reboot();
        host.set_ms(90 * HOUR);
        let reopened = DeviceClock::new(Arc::new(host), Some(saved));
        assert_eq!(reopened.now_ms(), 105 * HOUR);
    }

    #[test]
    fn the_device_clock_follows_the_host_forward_but_never_back() {
        let (host, clock) = device_clock(100 * HOUR);
        host.advance_ms(HOUR);
        assert_eq!(clock.now_ms(), 101 * HOUR);
        host.advance_ms(-10 * HOUR);
        assert_eq!(clock.now_ms(), 101 * HOUR);
        host.advance_ms(2 * HOUR);
        assert_eq!(clock.now_ms(), 103 * HOUR);
    }

    #[test]
    fn a_fast_host_clock_put_right_after_a_session_loses_no_time_and_gains_none() {
        // The host runs three days fast; the server says 100 h.
        let (host, clock) = device_clock(172 * HOUR);
        clock.anchor(100 * HOUR);
        host.advance_ms(HOUR);
        assert_eq!(clock.now_ms(), 101 * HOUR);
        // The user puts the host clock right (101 h): the device clock goes on from 101 h.
        host.set_ms(101 * HOUR);
        assert_eq!(clock.now_ms(), 101 * HOUR);
        host.advance_ms(71 * HOUR);
        assert_eq!(clock.now_ms(), 172 * HOUR);
    }

    #[test]
    fn a_persisted_reading_goes_on_by_the_time_the_host_clock_ran_meanwhile() {
        let (host, clock) = device_clock(10 * HOUR);
        clock.anchor(50 * HOUR);
        let saved = clock.reading();
        host.advance_ms(5 * HOUR);
        let reopened = DeviceClock::new(Arc::new(host.clone()), Some(saved));
        assert_eq!(reopened.now_ms(), 55 * HOUR);
        // Set back while the app was closed: nothing is added.
        let saved = reopened.reading();
        host.advance_ms(-20 * HOUR);
        let reopened = DeviceClock::new(Arc::new(host), Some(saved));
        assert_eq!(reopened.now_ms(), 55 * HOUR);
    }
}
