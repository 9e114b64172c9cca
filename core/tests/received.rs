//! Received automerge input (changes in a bundle, a snapshot, documents in a transfer file)
//! meets one boundary: whatever the bytes, the result is a typed refusal or an accepted input
//! within the limits; nothing panics, and a refusal changes nothing.
//!
//! `EENPLAN_FUZZ_CASES=N` runs every property with N cases instead of the quick default.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "received/authors.rs"]
mod authors;
#[path = "received/crashers.rs"]
mod crashers;
#[path = "received/fixture.rs"]
mod fixture;
#[path = "received/fuzz.rs"]
mod fuzz;
#[path = "received/limits.rs"]
mod limits;
