//! How a sync reaches the device: in short steps, each under the device's lock, with the
//! network I/O between them outside it.
//!
//! The core's [`Device`] takes `&mut self` (one writer, invariant 5). A host that shares one
//! device between threads (a phone app: the UI reads and edits while a sync runs) holds a
//! [`SharedDevice`]. The desktop CLI has the device to itself and goes through
//! [`Exclusive`]. The sync code is written once against [`Access`].

use std::cell::RefCell;
use std::sync::{Mutex, MutexGuard};

use super::{ShareOutcome, SyncReport, WatchEvent};
use crate::device::Device;
use crate::error::CoreError;
use crate::ids::PlanId;

/// Runs one step on the device.
pub(crate) trait Access {
    fn with<T>(&self, step: impl FnOnce(&mut Device) -> Result<T, CoreError>) -> Result<T, CoreError>;
}

/// A device borrowed whole for the length of a call.
pub(crate) struct Exclusive<'a>(RefCell<&'a mut Device>);

impl<'a> Exclusive<'a> {
    pub fn new(device: &'a mut Device) -> Self {
        Exclusive(RefCell::new(device))
    }
}

impl Access for Exclusive<'_> {
    fn with<T>(&self, step: impl FnOnce(&mut Device) -> Result<T, CoreError>) -> Result<T, CoreError> {
        // Steps never nest, so the cell is always free here.
        let mut device = self.0.try_borrow_mut().map_err(|_| CoreError::Inconsistent)?;
        step(&mut device)
    }
}

/// A device shared by the threads of a host. Local calls ([`SharedDevice::with`]) wait only
/// for each other and for the short steps of a sync, never for the network. Syncs (and the
/// other network calls) run one at a time.
#[derive(Debug)]
pub struct SharedDevice {
    device: Mutex<Option<Device>>,
    /// Held for a whole sync: two syncs at once would seal and push the same changes twice.
    network: Mutex<()>,
}

impl SharedDevice {
    pub fn new(device: Device) -> SharedDevice {
        SharedDevice { device: Mutex::new(Some(device)), network: Mutex::new(()) }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Option<Device>>, CoreError> {
        // A poisoned lock means a call panicked halfway: the device's memory may no longer
        // match its disk, so every later call refuses until the host opens it again.
        self.device.lock().map_err(|_| CoreError::Inconsistent)
    }

    /// Runs a local call (an edit, a read) on the device.
    pub fn with<T>(&self, call: impl FnOnce(&mut Device) -> Result<T, CoreError>) -> Result<T, CoreError> {
        let mut guard = self.lock()?;
        let device = guard.as_mut().ok_or(CoreError::Closed)?;
        call(device)
    }

    /// Runs `network` with the network lock held: one network call at a time.
    fn one_at_a_time<T>(&self, network: impl FnOnce() -> Result<T, CoreError>) -> Result<T, CoreError> {
        let _gate = self.network.lock().map_err(|_| CoreError::Inconsistent)?;
        network()
    }

    /// [`Device::sync`], holding the device only between network exchanges.
    pub fn sync(&self) -> Result<SyncReport, CoreError> {
        self.one_at_a_time(|| super::driver::sync(self))
    }

    /// [`Device::enrol`], holding the device only before and after the server's answer.
    pub fn enrol(
        &self,
        server: &str,
        code: &str,
        name: &str,
        platform: super::Platform,
    ) -> Result<super::Enrolment, CoreError> {
        self.one_at_a_time(|| super::enrol(self, server, code, name, platform))
    }

    /// [`Device::add_participant`]: queued, then carried out by a sync.
    pub fn share(&self, plan: &PlanId, user: &str, role: &str) -> Result<ShareOutcome, CoreError> {
        self.one_at_a_time(|| super::shares::share_now(self, plan, user, role))
    }

    /// Queues an act on a plan's membership chain (`queue` runs on the device and checks it
    /// against the chain held), then syncs as [`Device::sync_membership`].
    pub fn act_on_membership(
        &self,
        queue: impl FnOnce(&mut Device) -> Result<(), CoreError>,
    ) -> Result<ShareOutcome, CoreError> {
        self.one_at_a_time(|| {
            self.with(queue)?;
            super::membership::act_now(self)
        })
    }

    /// [`Device::watch`], holding the device only while a sync applies what came.
    pub fn watch(
        &self,
        on_event: impl FnMut(WatchEvent) -> std::ops::ControlFlow<()>,
    ) -> Result<(), CoreError> {
        self.one_at_a_time(|| super::live::watch(self, on_event))
    }

    /// Closes the device: waits for the call that holds it, then releases the store (another
    /// open may follow at once). Every later call returns [`CoreError::Closed`]; closing again
    /// does nothing. A sync in flight ends at its next step with `Closed`; what it had
    /// committed stays.
    pub fn close(&self) {
        // A poisoned lock still holds the device: take it all the same, so it is released.
        let mut guard = self.device.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.take();
    }

    pub fn is_closed(&self) -> bool {
        self.device.lock().map(|d| d.is_none()).unwrap_or(false)
    }
}

impl Access for SharedDevice {
    fn with<T>(&self, step: impl FnOnce(&mut Device) -> Result<T, CoreError>) -> Result<T, CoreError> {
        SharedDevice::with(self, step)
    }
}
