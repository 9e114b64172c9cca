//! The offline lease: a device that has not synced for too long locks its plans.
//!
//! Every successful sync renews the lease for the organisation's duration (default 72 h).
//! Once it has run out, every plan-content operation of [`Device`] returns
//! [`CoreError::LeaseExpired`] until a sync succeeds again. Nothing is dropped: edits made
//! before the expiry are already durable in the store and the next sync pushes them. Sync and
//! `status` keep working, and sync merges incoming bundles through internal paths that do not
//! check the lease: only the public entry points do.
//!
//! The lease is measured by the device's own clock ([`crate::clock`]): anchored to the
//! server's time at every session and never running backwards. So setting the phone's clock
//! back does not bring an expired lease back, and a phone clock that is wrong, then put right,
//! neither stretches the lease nor stamps edits days ahead: the renewal takes the server's
//! time, and the lease ends `duration` of real time later (finding 6 of the hardening: a
//! clock pushed to 2100 once no longer keeps the lease open for good).
//!
//! The lease lives sealed in the store's `sync_state` (key `lease`), with the device clock's
//! last persisted reading: written whenever the device clock has moved a minute, and at once
//! when it crosses the expiry, so a restart with the clock set back stays locked. A device
//! without a lease (never synced, or local only) is not locked.
//!
//! A keystore can bind its key to the lease as well: see the [`crate::keystore::KeyStore`]
//! docs.

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::clock::ClockReading;
use crate::device::Device;
use crate::error::CoreError;
use crate::store::StoreError;

const STATE_LEASE: &str = "lease";
/// How far the device clock must move before its reading is written again: it bounds how much
/// a restart with the clock set back can win (a minute), and the store is not written on
/// every read.
const HIGH_WATER_STEP_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// How long after the lease's end a lease-bound platform key keeps working. The core locks
/// plans at the lease's end; the platform key must outlive it, or a device whose lease ran out
/// could never unlock again to sync (and its unsent edits would be lost). A device that stays
/// offline this much longer can no longer unwrap its data key at all.
pub const KEYSTORE_GRACE_MS: i64 = 30 * DAY_MS;

/// The lease as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LeaseState {
    /// The device clock (the server's time) at the renewal.
    renewed_at_ms: i64,
    duration_ms: i64,
    /// The device clock when this record was written.
    high_water_ms: i64,
    /// The host clock at that moment; absent in records written before the device clock
    /// existed, which then go on from the later of the two, as they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    host_ms: Option<i64>,
    /// The host's time since boot at that moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since_boot: Option<crate::clock::SinceBoot>,
}

impl LeaseState {
    fn expires_at_ms(&self) -> i64 {
        self.renewed_at_ms.saturating_add(self.duration_ms)
    }

    fn with_reading(self, reading: ClockReading) -> LeaseState {
        LeaseState {
            high_water_ms: reading.device_ms,
            host_ms: Some(reading.host_ms),
            since_boot: reading.since_boot,
            ..self
        }
    }
}

impl LeaseRecord {
    /// The device clock reading this record persisted, for the clock of a device that opens.
    pub(crate) fn clock_reading(&self) -> Option<ClockReading> {
        match self {
            LeaseRecord::Some(state) => Some(ClockReading {
                device_ms: state.high_water_ms,
                host_ms: state.host_ms.unwrap_or(state.high_water_ms),
                since_boot: state.since_boot,
            }),
            LeaseRecord::None | LeaseRecord::Damaged => None,
        }
    }
}

/// What the device knows of its lease, read once when it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaseRecord {
    /// Never renewed: not locked.
    None,
    Some(LeaseState),
    /// The stored lease does not open or decode. Locked (as if expired) until a sync renews it.
    Damaged,
}

/// The lease as hosts see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LeaseStatus {
    pub renewed_at_ms: i64,
    pub expires_at_ms: i64,
    pub expired: bool,
}

pub(crate) fn load(store: &crate::store::Store) -> Result<LeaseRecord, StoreError> {
    match store.sync_state(STATE_LEASE) {
        Ok(None) => Ok(LeaseRecord::None),
        Ok(Some(bytes)) => {
            Ok(ciborium::from_reader(bytes.as_slice()).map(LeaseRecord::Some).unwrap_or(LeaseRecord::Damaged))
        }
        Err(StoreError::Corrupt(_)) => Ok(LeaseRecord::Damaged),
        Err(e) => Err(e),
    }
}

fn encode(state: &LeaseState) -> Vec<u8> {
    let mut out = Vec::new();
    // Three integers always encode.
    let _ = ciborium::into_writer(state, &mut out);
    out
}

fn damaged() -> CoreError {
    StoreError::Corrupt("the offline lease record is damaged; a sync renews it".into()).into()
}

/// `ms` since the Unix epoch as a UTC time for messages.
pub fn format_ms(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| format!("{ms} ms after 1970"))
}

impl Device {
    /// Renews the lease for `duration_ms` from now, by the device clock that the session of
    /// this sync anchored to the server's time. Called after each successful sync with the
    /// organisation's lease. When the device has a keystore ([`Device::with_keystore`]) that
    /// binds its key to the lease, the data key is re-wrapped under a key valid until the new
    /// end plus [`KEYSTORE_GRACE_MS`], in the same transaction as the lease.
    pub(crate) fn renew_lease(&mut self, duration_ms: i64) -> Result<(), CoreError> {
        self.ensure_not_wiped()?;
        let reading = self.clock_reading();
        let state = LeaseState {
            renewed_at_ms: reading.device_ms,
            duration_ms: duration_ms.max(0),
            high_water_ms: reading.device_ms,
            host_ms: Some(reading.host_ms),
            since_boot: reading.since_boot,
        };
        let valid_until = state.expires_at_ms().saturating_add(KEYSTORE_GRACE_MS);
        let keystore = self.keystore();
        let rebound = match &keystore {
            Some(k) => k.bind_to_lease(self.store().data_key(), valid_until)?,
            None => None,
        };
        let bytes = encode(&state);
        self.store_mut().write(|w| {
            if let Some(wrapped) = &rebound {
                w.put_wrapped_key(wrapped)?;
            }
            w.put_state(STATE_LEASE, &bytes)
        })?;
        self.set_lease_record(LeaseRecord::Some(state));
        if let (Some(k), Some(wrapped)) = (keystore, rebound) {
            k.lease_binding_stored(&wrapped);
        }
        Ok(())
    }

    /// After a sync: renews the lease for the organisation's period (the certificate names it).
    pub(crate) fn renew_lease_after_sync(&mut self) -> Result<(), CoreError> {
        if let Some(hours) = self.own_lease_hours()? {
            self.renew_lease(i64::from(hours) * 3_600_000)?;
        }
        Ok(())
    }

    /// The offline lease; `None` when the device has never renewed one (never synced).
    pub fn lease(&self) -> Result<Option<LeaseStatus>, CoreError> {
        self.ensure_not_wiped()?;
        match self.lease_record() {
            LeaseRecord::None => Ok(None),
            LeaseRecord::Damaged => Err(damaged()),
            LeaseRecord::Some(state) => {
                let expires_at_ms = state.expires_at_ms();
                Ok(Some(LeaseStatus {
                    renewed_at_ms: state.renewed_at_ms,
                    expires_at_ms,
                    expired: self.now_ms() >= expires_at_ms,
                }))
            }
        }
    }

    /// For public entry points that take `&self`: refuses plan content once the lease ran out.
    pub(crate) fn check_lease(&self) -> Result<(), CoreError> {
        match self.lease_record() {
            LeaseRecord::None => Ok(()),
            LeaseRecord::Damaged => Err(damaged()),
            LeaseRecord::Some(state) => {
                let expires_at_ms = state.expires_at_ms();
                if self.now_ms() >= expires_at_ms {
                    return Err(CoreError::LeaseExpired { expired_at_ms: expires_at_ms });
                }
                Ok(())
            }
        }
    }

    /// [`Device::check_lease`], and persists the device clock's reading when it has moved a
    /// minute or has crossed the expiry (so a restart with the clock set back stays locked).
    pub(crate) fn check_lease_mut(&mut self) -> Result<(), CoreError> {
        if let LeaseRecord::Some(state) = self.lease_record() {
            let reading = self.clock_reading();
            let now = reading.device_ms;
            let crossed = now >= state.expires_at_ms() && state.high_water_ms < state.expires_at_ms();
            if now - state.high_water_ms >= HIGH_WATER_STEP_MS || crossed {
                let moved = state.with_reading(reading);
                let bytes = encode(&moved);
                self.store_mut().write(|w| w.put_state(STATE_LEASE, &bytes))?;
                self.set_lease_record(LeaseRecord::Some(moved));
            }
        }
        self.check_lease()
    }
}
