//! The eenplan sync server. It relays sealed, signed bundles between the devices of a network
//! and keeps the device registry, the access graph and the key mailboxes; nothing it stores
//! opens a plan.
//!
//! [`storage`] is what it keeps; [`routes`] is the HTTP API over it, with [`auth`] (signed
//! admin requests, device sessions), [`group_commit`] (one writer thread batching pushes into
//! one durable transaction), [`live_events`] (live hints and revocations, relayed between
//! server processes on one PostgreSQL database), [`quota`] (the per-device push quota),
//! [`init_secret`] (who may claim a fresh server), [`last_seen`] (when each device was last
//! seen, written at most once a minute), [`audit_log`] (the server's own signed access
//! log), [`metrics`] and [`error`]. The binary
//! (`src/main.rs`) parses arguments, opens the database, serves, and shuts down cleanly.

pub mod storage;

pub mod audit_log;
pub mod auth;
pub mod erasure;
pub mod error;
pub mod group_commit;
pub mod init_secret;
pub mod last_seen;
pub mod live_events;
pub mod membership;
pub mod metrics;
pub mod quota;
pub mod retention;
pub mod routes;
