//! The eenplan sync server. It relays sealed, signed bundles between the devices of a network
//! and keeps the device registry, the access graph and the key mailboxes; nothing it stores
//! opens a plan.
//!
//! For now this is the storage layer only; the HTTP API and the binary build on it.

pub mod storage;
