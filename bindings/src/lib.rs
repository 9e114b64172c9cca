//! eenplan for phone apps: the core behind a uniffi interface (Kotlin, Swift, Python).
//!
//! This crate only converts. Every exported method locks the device, calls one
//! [`eenplan_core::Device`] method and converts what comes back; the plan rules, the store,
//! the keys and sync all live in the core.
//!
//! ```text
//! host app                          this crate                     eenplan-core
//!   KeyStore (platform keystore) ─►  keystore.rs: adapts it     ─►  keystore::KeyStore
//!   Device.openOrInit(dir, ks)    ─►  device.rs: Mutex<Device>   ─►  Device
//!   suspend sync() / async        ─►  a thread + a oneshot       ─►  Device::sync (blocking)
//!   DeviceListener               ◄─  after each sync             ◄─  SyncReport / SyncError
//!   ApiException.*               ◄─  error.rs: one From impl     ◄─  CoreError
//!   LogSink                      ◄─  log.rs: what eenplan handled but a developer should hear
//! ```
//!
//! Ids (plans, goals, notes, devices) cross as their hex text; text positions cross as
//! UTF-16 code units, as Kotlin and Swift count them; a server address crosses as text and is
//! checked as it arrives.

mod cycle;
mod device;
mod error;
mod keystore;
mod log;
mod types;

pub use cycle::{
    agenda_kind_label, agenda_line, display_label, dutch_date, level_label, role_label, trend_label,
};
pub use device::{Device, DeviceListener, device_exists, device_state};
pub use error::{ApiError, CallbackError, KeyStoreError};
pub use keystore::{KeyStore, passphrase_keystore};
pub use log::{LogSink, set_log_sink};
pub use types::{
    ActionUpdate, DeviceState, FieldChange, MemberUpdate, PlanListEntry, Resolution, Review, ReviewLine,
    SyncSummary, Vocabulary,
};

uniffi::setup_scaffolding!();
