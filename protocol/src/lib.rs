//! eenplan's wire formats, shared by the device's sync client and the server.
//!
//! Nothing here reads plan content: the server links this crate to check the framing and
//! signatures of what it relays, never to decrypt it.

pub mod api;
pub mod audit;
pub mod bundle;
pub mod certificate;
pub mod device_name;
pub mod envelope;
pub mod epoch;
pub mod membership;
pub mod policy;
pub mod rekey;
pub mod revocation;
pub mod sync;
pub mod wipe;

pub use bundle::{Bundle, BundleError, BundleHeader, BundleKind, DocumentId, NewBundle};
pub use certificate::bytes;
