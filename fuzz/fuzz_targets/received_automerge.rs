//! Received automerge input (a bundle's changes, a snapshot, a single change) through the
//! device core's one boundary for it, then the read model: no panic may escape, a refusal
//! changes nothing, an accepted input materialises. See `src/received.rs` for the input
//! layout and `EENPLAN_FUZZ_AUTOMERGE_PANICS` for hunting automerge's own panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    eenplan_fuzz::received::drive(data);
});
