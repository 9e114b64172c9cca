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
    #[error("no plan id starts with {0:?}, or more than one does")]
    AmbiguousPlan(String),
    #[error("this data directory holds no eenplan device yet; run init first")]
    NotInitialised,
    #[error("this data directory already holds an eenplan device")]
    AlreadyInitialised,
    #[error("changes file: {0}")]
    Transfer(#[from] crate::transfer::TransferError),
    #[error("I/O on {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}
