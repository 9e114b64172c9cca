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
    /// The passphrase or keystore key did not unlock the device. Every such failure counts:
    /// after [`crate::OpenOptions::max_failed_unlocks`] of them in a row the device wipes
    /// itself.
    #[error(
        "the passphrase or keystore key does not unlock this device; {attempts_left} more wrong \
         attempt(s) and it erases its data for good"
    )]
    WrongUnlock { attempts_left: u32 },
    /// The device was wiped (a wipe order, or too many failed unlocks): its key material was
    /// destroyed, then its files. Nothing can bring the data back; [`crate::Device::init`]
    /// starts a new device in the directory.
    #[error("this device has been wiped: its data is gone for good")]
    Wiped,
    /// The offline lease ran out: plans stay locked until a sync with the server succeeds.
    #[error(
        "this device has not synced since its offline lease ran out at {}: plans stay locked \
         until it syncs with its server again; edits made before then are kept and will be \
         sent",
        crate::lease::format_ms(*expired_at_ms)
    )]
    LeaseExpired { expired_at_ms: i64 },
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
    /// The plan's signed membership chain does not allow this (only the regisseur hands
    /// over regie, a user who does not take part cannot be removed, …). The sentence is
    /// Dutch: people read it.
    #[error("{0}")]
    NotAllowed(String),
    /// The adopted version asked for was adopted before a family member's personal data was
    /// erased (AVG): the erasure re-sealed the `basis` document, so the changes it adopted are
    /// gone and it cannot be shown as it was. The adoption still counts (its signature, signer
    /// and chain position are checked as ever). The sentence is Dutch.
    #[error("deze versie is vervangen bij het wissen van persoonsgegevens")]
    AdoptedVersionResealed { version: u32 },
    /// The plan was closed (*afgesloten*) by its regisseur: nothing in it changes any more.
    /// It can still be read until this device removes its copy after the grace period.
    #[error("het plan is afgesloten: er kan niets meer in worden veranderd")]
    PlanClosed(PlanId),
    /// A device name that is empty, longer than 64 characters or holds characters that do
    /// not show. The sentence is Dutch.
    #[error("{0}")]
    InvalidDeviceLabel(eenplan_protocol::device_name::LabelError),
    /// The host closed the device ([`crate::sync::SharedDevice::close`]).
    #[error("this device has been closed; open it again")]
    Closed,
    /// An earlier call failed halfway inside eenplan: memory may not match the disk any more.
    #[error("an earlier call failed inside eenplan; open the device again")]
    Inconsistent,
    #[error("changes file: {0}")]
    Transfer(#[from] crate::transfer::TransferError),
    #[error("I/O on {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}
