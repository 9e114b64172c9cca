//! The plaintext of a changes bundle: its automerge changes back to back, each in one of two
//! forms, told apart by its first byte.
//!
//! ```text
//! entry  := full | packed
//! full   := an automerge change chunk exactly as automerge writes it:
//!           magic 85 6f 4a 83 | checksum (4) | type 01 | uLEB128 length | body
//! packed := 01 | uLEB128 length | the chunk's body without its actor field
//! ```
//!
//! **Packed: the author's own change, rebuilt by the receiver.** A change whose actor is the
//! bundle's author carries neither its actor (17 bytes: length 16 and the id; a device's
//! automerge actor is its device id), nor automerge's magic and checksum (8 bytes) nor its
//! chunk type (1 byte, the form byte stands in). The receiver rebuilds the chunk from the
//! body and the author named in the bundle's header: that header is under the author's
//! signature and in the AEAD's associated data, so a packed change can only ever be rebuilt
//! as the signer's own; the same body under another signer's bundle is another change (its
//! hash covers the actor), never the first author's. [`pack_changes`] packs a change only if
//! rebuilding it gives back exactly the bytes automerge wrote, so its hash, and with it the
//! change graph, is unchanged; anything else (another actor, a form it does not expect) goes
//! in full, as every payload did before this form existed, and is read as before.
//!
//! Rebuilding adds 26 bytes per packed change, so their number is bounded
//! ([`MAX_PACKED_CHANGES`]): a payload of many tiny packed entries cannot grow by more than
//! that many times 26 bytes. An honest sealer groups about 16 KiB of changes per bundle.

use super::{leb128_get, leb128_put};

/// The first byte of a packed change.
pub const PACKED: u8 = 0x01;
/// The most packed changes one payload may hold; further changes go in full.
pub const MAX_PACKED_CHANGES: usize = 1024;

/// automerge's chunk magic, the first bytes of every full change.
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
/// automerge's chunk type of one uncompressed change.
const CHANGE_CHUNK: u8 = 1;
/// Magic, checksum and type, before the length.
const CHUNK_PREFIX: usize = 9;
const HASH_LEN: usize = 32;
/// The actor field of a change by a device: its length (16) and the device id.
const ACTOR_FIELD: usize = 17;

/// Why a changes bundle's plaintext could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("a change in the bundle starts with {0:#04x}, which is no known form")]
    UnknownForm(u8),
    #[error("a change in the bundle is truncated or its lengths overflow")]
    Truncated,
    #[error("a length in a packed change is not in its shortest form")]
    BadNumber,
    #[error("the bundle holds more than {max} packed changes")]
    TooManyPacked { max: usize },
}

/// The plaintext of a changes bundle by `author`: `changes` (automerge change chunks) in
/// order, each packed if it is the author's own and rebuilds exactly, else in full.
pub fn pack_changes<'a>(author: &[u8; 16], changes: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut packed = 0;
    for chunk in changes {
        match (packed < MAX_PACKED_CHANGES).then(|| packed_body(author, chunk)).flatten() {
            Some(body) => {
                out.push(PACKED);
                leb128_put(&mut out, body.len() as u64);
                out.extend_from_slice(&body);
                packed += 1;
            }
            None => out.extend_from_slice(chunk),
        }
    }
    out
}

/// The automerge change chunks of a changes bundle's plaintext, back to back, packed ones
/// rebuilt as `author`'s: pass the author the bundle's verified header names, nothing else.
/// Full chunks are only delimited here; whether they parse, and whose they are, is the
/// caller's to check.
pub fn unpack_changes(author: &[u8; 16], payload: &[u8]) -> Result<Vec<u8>, PayloadError> {
    let mut out = Vec::with_capacity(payload.len());
    let mut packed = 0;
    let mut rest = payload;
    while let Some(&form) = rest.first() {
        let used = match form {
            PACKED => {
                packed += 1;
                if packed > MAX_PACKED_CHANGES {
                    return Err(PayloadError::TooManyPacked { max: MAX_PACKED_CHANGES });
                }
                let (body, used) = length_prefixed(rest, 1)?;
                rebuild(author, body, &mut out)?;
                used
            }
            _ if rest.starts_with(&MAGIC) => {
                let used = full_chunk_len(rest)?;
                out.extend_from_slice(&rest[..used]);
                used
            }
            other => return Err(PayloadError::UnknownForm(other)),
        };
        rest = &rest[used..];
    }
    Ok(out)
}

/// The body of a chunk whose length stands at `offset`, and the bytes the chunk takes.
fn length_prefixed(bytes: &[u8], offset: usize) -> Result<(&[u8], usize), PayloadError> {
    if bytes.len() <= offset {
        return Err(PayloadError::Truncated);
    }
    let (len, start) = leb128_get(bytes, offset).map_err(|_| PayloadError::BadNumber)?;
    let len = usize::try_from(len).map_err(|_| PayloadError::Truncated)?;
    let end = start.checked_add(len).ok_or(PayloadError::Truncated)?;
    let body = bytes.get(start..end).ok_or(PayloadError::Truncated)?;
    Ok((body, end))
}

/// The bytes the full chunk at the start of `bytes` takes. Its length is read as automerge
/// reads it (any LEB128 form), so a full chunk is delimited exactly as before packing existed.
fn full_chunk_len(bytes: &[u8]) -> Result<usize, PayloadError> {
    let mut len: u64 = 0;
    for (i, &byte) in bytes.iter().skip(CHUNK_PREFIX).take(10).enumerate() {
        let bits = u64::from(byte & 0x7f);
        let shift = 7 * i as u32;
        if shift == 63 && bits > 1 {
            return Err(PayloadError::Truncated);
        }
        len |= bits << shift;
        if byte & 0x80 == 0 {
            let start = CHUNK_PREFIX + i + 1;
            let end = usize::try_from(len).ok().and_then(|len| len.checked_add(start));
            return end.filter(|&end| end <= bytes.len()).ok_or(PayloadError::Truncated);
        }
    }
    Err(PayloadError::Truncated)
}

/// Where the actor field starts in a change body: after its dependencies (a count, then
/// 32-byte hashes).
fn actor_offset(body: &[u8]) -> Result<usize, PayloadError> {
    if body.is_empty() {
        return Err(PayloadError::Truncated);
    }
    let (deps, start) = leb128_get(body, 0).map_err(|_| PayloadError::BadNumber)?;
    let deps = usize::try_from(deps).map_err(|_| PayloadError::Truncated)?;
    let end = deps.checked_mul(HASH_LEN).and_then(|n| n.checked_add(start)).ok_or(PayloadError::Truncated)?;
    if end > body.len() {
        return Err(PayloadError::Truncated);
    }
    Ok(end)
}

/// Appends the change chunk of a packed body, its actor `author`: the bytes automerge writes
/// for that change (its checksum is the first four bytes of the change's hash).
fn rebuild(author: &[u8; 16], packed: &[u8], out: &mut Vec<u8>) -> Result<(), PayloadError> {
    let at = actor_offset(packed)?;
    let mut data = Vec::with_capacity(packed.len() + ACTOR_FIELD);
    data.extend_from_slice(&packed[..at]);
    data.push(16);
    data.extend_from_slice(author);
    data.extend_from_slice(&packed[at..]);
    let mut typed = Vec::with_capacity(data.len() + 11);
    typed.push(CHANGE_CHUNK);
    leb128_put(&mut typed, data.len() as u64);
    typed.extend_from_slice(&data);
    let hash: [u8; 32] = {
        use sha2::Digest as _;
        sha2::Sha256::digest(&typed).into()
    };
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&hash[..4]);
    out.extend_from_slice(&typed);
    Ok(())
}

/// The body of `chunk` without its actor field, if `chunk` is one change by `author` that
/// [`rebuild`] gives back byte for byte.
fn packed_body(author: &[u8; 16], chunk: &[u8]) -> Option<Vec<u8>> {
    if !chunk.starts_with(&MAGIC) || chunk.get(8) != Some(&CHANGE_CHUNK) {
        return None;
    }
    let (body, used) = length_prefixed(chunk, CHUNK_PREFIX).ok()?;
    if used != chunk.len() {
        return None;
    }
    let at = actor_offset(body).ok()?;
    let actor = body.get(at..at + ACTOR_FIELD)?;
    if actor[0] != 16 || actor[1..] != author[..] {
        return None;
    }
    let packed = [&body[..at], &body[at + ACTOR_FIELD..]].concat();
    let mut rebuilt = Vec::with_capacity(chunk.len());
    rebuild(author, &packed, &mut rebuilt).ok()?;
    (rebuilt == chunk).then_some(packed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change chunk as automerge frames it, around `body`.
    fn chunk(body: &[u8]) -> Vec<u8> {
        let mut typed = vec![CHANGE_CHUNK];
        leb128_put(&mut typed, body.len() as u64);
        typed.extend_from_slice(body);
        let hash: [u8; 32] = {
            use sha2::Digest as _;
            sha2::Sha256::digest(&typed).into()
        };
        [&MAGIC[..], &hash[..4], &typed].concat()
    }

    /// A change body: one dependency, `actor`, then the rest of the fields (opaque here).
    fn body(actor: &[u8; 16], rest: &[u8]) -> Vec<u8> {
        let mut out = vec![1];
        out.extend_from_slice(&[0xd0; 32]);
        out.push(16);
        out.extend_from_slice(actor);
        out.extend_from_slice(rest);
        out
    }

    const ALICE: [u8; 16] = [0xa1; 16];
    const MALLORY: [u8; 16] = [0x3a; 16];

    #[test]
    fn an_own_change_is_packed_25_bytes_smaller_and_rebuilt_byte_for_byte() {
        let change = chunk(&body(&ALICE, &[7; 100]));
        let payload = pack_changes(&ALICE, [change.as_slice()]);
        assert_eq!(payload[0], PACKED);
        // Magic and checksum (8) and the actor field (17); the form byte takes the type's place.
        assert_eq!(payload.len(), change.len() - 25);
        assert_eq!(unpack_changes(&ALICE, &payload).unwrap(), change);
    }

    #[test]
    fn a_packed_change_is_rebuilt_only_as_the_signing_author_s_own_never_as_its_first_actor() {
        // Mallory, who holds the key, takes Alice's packed change and seals it in a bundle of
        // her own: receivers rebuild it with the author Mallory's bundle names. The result is
        // a change by Mallory (another hash), not Alice's change.
        let alice_change = chunk(&body(&ALICE, &[7; 40]));
        let payload = pack_changes(&ALICE, [alice_change.as_slice()]);
        let rebuilt = unpack_changes(&MALLORY, &payload).unwrap();
        assert_ne!(rebuilt, alice_change);
        assert_eq!(rebuilt, chunk(&body(&MALLORY, &[7; 40])));
        assert!(!rebuilt.windows(16).any(|w| w == ALICE), "Alice's id is nowhere in the rebuilt change");
    }

    #[test]
    fn a_change_by_another_actor_goes_in_full_and_comes_out_unchanged() {
        let theirs = chunk(&body(&MALLORY, &[1; 30]));
        let own = chunk(&body(&ALICE, &[2; 30]));
        let payload = pack_changes(&ALICE, [theirs.as_slice(), own.as_slice()]);
        assert_eq!(&payload[..theirs.len()], theirs.as_slice(), "the foreign change is carried as it is");
        assert_eq!(payload[theirs.len()], PACKED);
        assert_eq!(unpack_changes(&ALICE, &payload).unwrap(), [theirs, own].concat());
    }

    #[test]
    fn a_chunk_that_would_not_rebuild_exactly_goes_in_full() {
        let mut bad_checksum = chunk(&body(&ALICE, &[3; 20]));
        bad_checksum[4] ^= 1;
        let mut long_length = chunk(&body(&ALICE, &[3; 20]));
        // The same body with its length in two bytes instead of one: valid LEB128, not ours.
        let len = long_length[9];
        long_length.splice(9..10, [len | 0x80, 0]);
        let compressed = {
            let mut c = chunk(&body(&ALICE, &[3; 20]));
            c[8] = 2;
            c
        };
        for chunk in [bad_checksum, long_length, compressed] {
            let payload = pack_changes(&ALICE, [chunk.as_slice()]);
            assert_eq!(payload, chunk);
            assert_eq!(unpack_changes(&ALICE, &payload).unwrap(), chunk, "and is read as it was");
        }
    }

    #[test]
    fn a_payload_of_full_changes_from_before_packing_reads_as_it_did() {
        let a = chunk(&body(&ALICE, &[1; 10]));
        let b = chunk(&body(&ALICE, &[2; 300]));
        let old = [a, b].concat();
        assert_eq!(unpack_changes(&ALICE, &old).unwrap(), old);
        assert_eq!(unpack_changes(&ALICE, &[]).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn malformed_payloads_are_typed_errors() {
        assert_eq!(unpack_changes(&ALICE, &[0x02, 0]), Err(PayloadError::UnknownForm(2)));
        assert_eq!(unpack_changes(&ALICE, &[PACKED]), Err(PayloadError::Truncated));
        assert_eq!(unpack_changes(&ALICE, &[PACKED, 5, 0]), Err(PayloadError::Truncated));
        assert_eq!(unpack_changes(&ALICE, &[PACKED, 0]), Err(PayloadError::Truncated));
        assert_eq!(unpack_changes(&ALICE, &[PACKED, 0x81, 0]), Err(PayloadError::BadNumber));
        // Two dependencies claimed, room for none.
        assert_eq!(unpack_changes(&ALICE, &[PACKED, 1, 2]), Err(PayloadError::Truncated));
        let full = chunk(&body(&ALICE, &[1; 10]));
        assert_eq!(unpack_changes(&ALICE, &full[..full.len() - 1]), Err(PayloadError::Truncated));
        assert_eq!(unpack_changes(&ALICE, &MAGIC), Err(PayloadError::Truncated));
    }

    #[test]
    fn packed_changes_are_bounded_and_the_sealer_sends_the_rest_in_full() {
        let change = chunk(&body(&ALICE, &[]));
        let many = vec![change.as_slice(); MAX_PACKED_CHANGES + 2];
        let payload = pack_changes(&ALICE, many.iter().copied());
        assert_eq!(unpack_changes(&ALICE, &payload).unwrap(), change.repeat(MAX_PACKED_CHANGES + 2));
        let packed = pack_changes(&ALICE, [change.as_slice()]);
        let too_many = packed.repeat(MAX_PACKED_CHANGES + 1);
        assert_eq!(
            unpack_changes(&ALICE, &too_many),
            Err(PayloadError::TooManyPacked { max: MAX_PACKED_CHANGES })
        );
    }

    proptest::proptest! {
        #[test]
        fn unpacking_arbitrary_bytes_never_panics_and_never_grows_past_its_bound(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)
        ) {
            if let Ok(out) = unpack_changes(&ALICE, &bytes) {
                proptest::prop_assert!(out.len() <= bytes.len() + 26 * MAX_PACKED_CHANGES);
            }
        }
    }
}
