//! The core's error type: one enum that hosts map once into their own.

use crate::ids::PlanId;
use crate::keystore::KeyStoreError;
use crate::plan::PlanError;
use crate::store::StoreError;

/// Everything that can go wrong in a core operation.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("no plan {0} on this device")]
    UnknownPlan(PlanId),
    #[error("no plan on this device has an id starting with {0:?}")]
    NoMatchingPlan(String),
    #[error("more than one plan id starts with {0:?}; give more characters")]
    AmbiguousPlan(String),
    #[error("{0:?} is too short to name a plan: give at least 4 characters of its id")]
    PlanPrefixTooShort(String),
    #[error("this data directory holds no eenplan device yet; run init first")]
    NotInitialised,
    #[error("this data directory already holds an eenplan device")]
    AlreadyInitialised,
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
    #[error("changes file: {0}")]
    Transfer(#[from] crate::transfer::TransferError),
    #[error("I/O on {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}
