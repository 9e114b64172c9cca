//! The per-device push quota: how many bundles and request bytes one device may send to
//! `POST /v1/sync` per rolling window (an hour by default). It is sized so that a busy worker
//! never meets it (a sync pushes one bundle per edited document) while a device that floods
//! the server is refused with a retryable `429 quota_exceeded` and its `Retry-After`.
//!
//! The window slides: what a device used in the previous window counts in proportion to how
//! much of it still overlaps the last hour, so a device that hit the quota is admitted again
//! gradually rather than all at once on the hour.
//!
//! The counts live in this process's memory. A restart forgets them, and several server
//! instances behind a load balancer each count on their own (a flood is then held to the quota
//! times the number of instances); in exchange a push costs no database write to count.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::storage::DeviceId;

/// A quota's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaLimits {
    pub bundles: u64,
    pub bytes: u64,
    pub window_ms: i64,
}

impl Default for QuotaLimits {
    fn default() -> Self {
        QuotaLimits {
            bundles: eenplan_protocol::sync::PUSH_QUOTA_BUNDLES,
            bytes: eenplan_protocol::sync::PUSH_QUOTA_BYTES,
            window_ms: eenplan_protocol::sync::PUSH_QUOTA_WINDOW_MS,
        }
    }
}

/// What a device used in two consecutive windows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Usage {
    window_start: i64,
    current: Spent,
    previous: Spent,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Spent {
    bundles: u64,
    bytes: u64,
}

#[derive(Debug)]
pub struct PushQuota {
    limits: QuotaLimits,
    usage: Mutex<HashMap<DeviceId, Usage>>,
}

impl PushQuota {
    pub fn new(limits: QuotaLimits) -> PushQuota {
        PushQuota { limits, usage: Mutex::new(HashMap::new()) }
    }

    /// Counts `bundles` and `bytes` against `device`'s quota at `now`, or refuses them (nothing
    /// counted) with how long to wait until they would fit.
    pub fn charge(&self, device: DeviceId, bundles: u64, bytes: u64, now: i64) -> Result<(), Duration> {
        let window = self.limits.window_ms.max(1);
        let mut usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
        // Devices idle for two windows count nothing any more; forgetting them bounds the map
        // by the devices active in the last two windows.
        if usage.len() > 1024 {
            usage.retain(|_, u| now - u.window_start < 2 * window);
        }
        let entry = usage
            .entry(device)
            .or_insert(Usage { window_start: now - now.rem_euclid(window), ..Usage::default() });
        entry.advance(now, window);
        let elapsed = now - entry.window_start;
        let wait_bundles = wait_ms(
            entry.previous.bundles,
            entry.current.bundles,
            bundles,
            self.limits.bundles,
            elapsed,
            window,
        );
        let wait_bytes =
            wait_ms(entry.previous.bytes, entry.current.bytes, bytes, self.limits.bytes, elapsed, window);
        let wait = wait_bundles.max(wait_bytes);
        if wait > 0 {
            return Err(Duration::from_millis(u64::try_from(wait).unwrap_or(u64::MAX)));
        }
        entry.current.bundles = entry.current.bundles.saturating_add(bundles);
        entry.current.bytes = entry.current.bytes.saturating_add(bytes);
        Ok(())
    }
}

impl Usage {
    /// Moves the windows on to the one holding `now`.
    fn advance(&mut self, now: i64, window: i64) {
        let start = now - now.rem_euclid(window);
        if start == self.window_start {
            return;
        }
        self.previous = if start - self.window_start == window { self.current } else { Spent::default() };
        self.current = Spent::default();
        self.window_start = start;
    }
}

/// How long (ms) until `amount` more fits under `limit`, given what was used in the previous
/// window (counted in proportion to its overlap with the last `window` ms) and in the current
/// one, `elapsed` ms into it. 0 when it fits now.
fn wait_ms(previous: u64, current: u64, amount: u64, limit: u64, elapsed: i64, window: i64) -> i64 {
    let (previous, current, amount, limit, window) =
        (previous as f64, current as f64, amount as f64, limit as f64, window as f64);
    let elapsed = elapsed as f64;
    let estimate = |t: f64| previous * (1.0 - t / window).max(0.0) + current;
    if estimate(elapsed) + amount <= limit {
        return 0;
    }
    // Within this window, the previous window's share shrinks until enough is free.
    if current + amount <= limit && previous > 0.0 {
        let t = window * (1.0 - (limit - amount - current) / previous);
        return (t - elapsed).ceil().max(1.0) as i64;
    }
    // Otherwise in the next one, where this window's use is the shrinking share.
    let into_next = if current > 0.0 { (window * (1.0 - (limit - amount) / current)).max(0.0) } else { 0.0 };
    (window - elapsed + into_next).ceil().max(1.0) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEVICE: DeviceId = DeviceId([1; 16]);

    fn quota() -> PushQuota {
        PushQuota::new(QuotaLimits { bundles: 100, bytes: 1_000_000, window_ms: 1_000 })
    }

    #[test]
    fn a_device_is_refused_past_its_quota_with_a_wait_and_others_are_not() {
        let quota = quota();
        assert_eq!(quota.charge(DEVICE, 60, 10, 10_000), Ok(()));
        assert_eq!(quota.charge(DEVICE, 40, 10, 10_100), Ok(()));
        let wait = quota.charge(DEVICE, 1, 10, 10_200).unwrap_err();
        // All 100 were spent in this window: the one more fits once the next window has shrunk
        // this one's share to 99.
        assert_eq!(wait, Duration::from_millis(800 + 10));
        assert_eq!(quota.charge(DeviceId([2; 16]), 100, 10, 10_200), Ok(()), "another device has its own");
        assert!(quota.charge(DEVICE, 1, 10, 10_200 + 809).is_err());
        assert_eq!(quota.charge(DEVICE, 1, 10, 10_200 + 810), Ok(()));
    }

    #[test]
    fn bytes_count_like_bundles_and_a_refused_request_costs_nothing() {
        let quota = quota();
        assert_eq!(quota.charge(DEVICE, 1, 900_000, 0), Ok(()));
        assert!(quota.charge(DEVICE, 1, 200_000, 1).is_err());
        assert_eq!(quota.charge(DEVICE, 1, 100_000, 2), Ok(()), "the refused bytes were not counted");
    }

    #[test]
    fn the_previous_window_counts_in_proportion_to_its_overlap() {
        let quota = quota();
        assert_eq!(quota.charge(DEVICE, 100, 0, 999), Ok(()));
        // Half-way through the next window, half of those 100 still count.
        assert!(quota.charge(DEVICE, 51, 0, 1_500).is_err());
        assert_eq!(quota.charge(DEVICE, 50, 0, 1_500), Ok(()));
        // Two windows on, nothing counts.
        assert_eq!(quota.charge(DEVICE, 100, 0, 3_000), Ok(()));
    }
}
