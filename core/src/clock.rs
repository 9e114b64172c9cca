//! Time as an injected dependency, so that tests can move it, and the device's own clock:
//! the host's clock anchored to the server's and never running backwards.
//!
//! A phone's wall clock can be minutes or days wrong, and its user can set it at will. What
//! the device stamps on edits and measures its offline lease with is [`DeviceClock`]:
//!
//! - at every session the server states its time, and the device clock is **anchored** to it;
//! - between sessions it advances by the host clock's *forward* steps only: a host clock set
//!   back (or corrected after running fast) adds nothing, a host clock that runs on adds what
//!   it ran.
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

/// Milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> i64;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to (tests, simulations).
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start_ms: i64) -> Self {
        Self(Arc::new(AtomicI64::new(start_ms)))
    }

    /// Moves the clock; a negative `ms` sets it back, as a user can.
    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn set_ms(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Where the device clock stood at a host clock reading: what is persisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClockReading {
    /// The device clock (ms since the epoch).
    pub device_ms: i64,
    /// The host clock at that moment.
    pub host_ms: i64,
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
        let now = host.now_ms();
        let reading = persisted.unwrap_or(ClockReading { device_ms: now, host_ms: now });
        DeviceClock { host, reading: Mutex::new(reading) }
    }

    /// Sets the device clock to `server_ms` (a session's answer).
    pub fn anchor(&self, server_ms: i64) {
        let host_ms = self.host.now_ms();
        *self.reading.lock().unwrap_or_else(PoisonError::into_inner) = ClockReading { device_ms: server_ms, host_ms };
    }

    /// The current reading, for persisting.
    pub fn reading(&self) -> ClockReading {
        self.advance()
    }

    fn advance(&self) -> ClockReading {
        let host_ms = self.host.now_ms();
        let mut reading = self.reading.lock().unwrap_or_else(PoisonError::into_inner);
        let step = host_ms.saturating_sub(reading.host_ms);
        if step > 0 {
            reading.device_ms = reading.device_ms.saturating_add(step);
        }
        reading.host_ms = host_ms;
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
