//! The load generator of `load_bench` (issue 13, item 6): what the server costs per accepted
//! push, per delivered bundle and per idle live connection, measured from the server process,
//! and the same workload on automerge-repo's sync server.
//!
//! - [`process`]: CPU time and resident memory of another process, from `/proc`.
//! - [`wire`]: a device's sync over plain HTTP with the protocol's own types: a session, the
//!   cursors a device keeps, one `POST /v1/sync`, the acks checked, the snapshot asks read
//!   and answered.
//! - [`eenplan`]: the server under test, started for a database; the network whose devices
//!   seal real edits ahead of time; replaying them (and uploading the snapshots the server
//!   asks for, as devices do), pulling the backlog, idle live sockets.
//! - [`automerge_repo`]: `scripts/automerge-repo` installed from the npm registry, its sync
//!   server and its load client as processes of their own.

pub mod automerge_repo;
pub mod eenplan;
pub mod process;
pub mod wire;
