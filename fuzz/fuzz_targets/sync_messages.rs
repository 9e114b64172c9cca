//! Sync messages from the network: `sync::decode` of arbitrary bytes as a `SyncRequest` (what
//! the server reads) and as a `SyncResponse` (what a device reads) must never panic, and
//! whatever decodes must re-encode to bytes that decode to the same message, and encode again
//! to the very same bytes (the encoding is a fixed point after one round).
#![no_main]

use eenplan_protocol::sync::{DecodeError, MAX_SYNC_REQUEST, SyncRequest, SyncResponse, decode, encode};
use libfuzzer_sys::fuzz_target;
use serde::{Serialize, de::DeserializeOwned};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(data: &[u8]) {
    let Ok(message) = decode::<T>(data, MAX_SYNC_REQUEST) else { return };
    let bytes = encode(&message);
    let again: T = decode(&bytes, MAX_SYNC_REQUEST).expect("a re-encoded message decodes");
    assert_eq!(again, message, "the message changed on a round trip");
    assert_eq!(encode(&again), bytes, "the encoding is not stable");
    // The size limit is checked before parsing.
    if !bytes.is_empty() {
        assert_eq!(decode::<T>(&bytes, bytes.len() - 1), Err(DecodeError));
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<SyncRequest>(data);
    round_trip::<SyncResponse>(data);
});
