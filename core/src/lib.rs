//! The eenplan device core.
//!
//! Everything a phone needs lives here: the family plan as automerge documents
//! ([`plan`]), the encrypted crash-safe local store ([`store`]), the device's keys
//! ([`keystore`], [`identity`]) and the façade that ties them together ([`Device`]).
//! Hosts (the desktop CLI, the uniffi bindings) only convert types and errors.
//!
//! ```no_run
//! use eenplan_core::{Device, keystore::PassphraseKeyStore, plan::{Compartment, NewGoal}};
//! # fn main() -> Result<(), eenplan_core::CoreError> {
//! let keystore = PassphraseKeyStore::new("correct horse battery staple");
//! let mut device = Device::open_or_init("/tmp/eenplan".as_ref(), &keystore)?;
//! let plan = device.create_plan("Jansen")?;
//! let goal = device.edit(&plan, |p| p.add_goal(NewGoal {
//!     domain: "financiën".into(),
//!     title: "Schulden in beeld".into(),
//! }))?;
//! let view = device.read(&plan)?;
//! assert_eq!(view.goals[0].id, goal);
//! # let _ = Compartment::Basis;
//! # Ok(()) }
//! ```

pub mod adoption;
pub mod agenda;
pub mod audience;
pub mod audit;
pub mod calendar;
pub mod clock;
pub mod crypto;
pub mod cycle;
pub mod device;
pub mod error;
pub mod family_copy;
pub mod identity;
pub mod ids;
pub mod keystore;
pub mod lease;
pub mod people;
pub mod plan;
mod read_model;
pub mod regie;
pub mod retention;
pub mod review;
pub mod store;
pub mod sync;
pub mod transfer;
pub mod wipe;

pub use device::{Device, PlanListEntry, PlanSummary};
pub use error::CoreError;
pub use ids::{DeviceId, EntityId, PlanId};
pub use lease::LeaseStatus;
pub use wipe::{OpenOptions, WipeMarker, WipeReason};
