//! Fixtures shared by the fuzz targets and the seed-corpus generator: fixed keys, so that a
//! bundle in the corpus verifies and opens in the target, the sample messages the corpus
//! starts from, and the plan whose received changes and snapshots `received_automerge` mutates.

use std::sync::LazyLock;

use eenplan_protocol::sync::{
    Blob, EnvelopeDelivery, EnvelopeUpload, Fixed, HistoryPage, HistoryRequest, KeyRequest, Rejection,
    SyncRequest, SyncResponse,
};
use eenplan_protocol::{Bundle, BundleKind, DocumentId, NewBundle};

pub use ed25519_dalek::{SigningKey, VerifyingKey};

/// The author key every seed bundle is signed with and every fuzzed bundle is verified against.
pub const AUTHOR_SECRET: [u8; 32] = [0x5a; 32];
/// The epoch key every seed bundle is sealed under and every fuzzed bundle is opened with.
pub const EPOCH_KEY: [u8; 32] = [0x17; 32];
/// A second epoch key: opening with it must always fail.
pub const OTHER_EPOCH_KEY: [u8; 32] = [0x18; 32];

static AUTHOR: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::from_bytes(&AUTHOR_SECRET));
static AUTHOR_PUBLIC: LazyLock<VerifyingKey> = LazyLock::new(|| AUTHOR.verifying_key());

/// The author's key pair, derived once (a derivation is a scalar multiplication: per fuzz
/// iteration it would cost more than the code under test).
pub fn author() -> &'static SigningKey {
    &AUTHOR
}

pub fn author_public() -> &'static VerifyingKey {
    &AUTHOR_PUBLIC
}

/// A header whose fields come from `seed` (so the round-trip target covers every kind,
/// compartment, epoch and position); its id is drawn by `Bundle::seal`.
pub fn header_from(seed: &[u8]) -> NewBundle {
    let byte = |i: usize| seed.get(i).copied().unwrap_or(0);
    let mut plan = [0u8; 16];
    for (i, b) in plan.iter_mut().enumerate() {
        *b = byte(i);
    }
    NewBundle {
        kind: if byte(16) & 1 == 0 {
            BundleKind::Changes
        } else {
            BundleKind::Snapshot {
                covers: u64::from_be_bytes([byte(23), byte(24), byte(25), byte(26), 0, 0, 0, 1]),
            }
        },
        document: DocumentId { plan, compartment: byte(17) % DocumentId::COMPARTMENTS },
        epoch: u32::from_be_bytes([byte(18), byte(19), byte(20), byte(21)]),
        author: [0xa1; 16],
    }
}

/// Seed bundles: valid ones of several sizes, kinds and compartments.
pub fn seed_bundles() -> Vec<Vec<u8>> {
    let key = author();
    let payloads: [&[u8]; 4] = [b"", b"x", &[0x85, 0x6f, 0x4a, 0x83, 1, 2, 3, 4, 1, 0], &[7; 600]];
    let mut out = Vec::new();
    for (i, payload) in payloads.iter().enumerate() {
        let seed = [i as u8; 24];
        if let Ok(bundle) = Bundle::seal(header_from(&seed), &EPOCH_KEY, payload, key) {
            out.push(bundle.into_bytes());
        }
    }
    out
}

/// Seed requests: empty, a push, and one with every field set.
pub fn seed_requests() -> Vec<SyncRequest> {
    let bundle = seed_bundles().into_iter().nth(2).unwrap_or_default();
    let snapshot = seed_bundles().into_iter().nth(3).unwrap_or_default();
    vec![
        SyncRequest::default(),
        SyncRequest { since: 41, push: vec![Blob(bundle.clone())], ..Default::default() },
        SyncRequest {
            since: u64::MAX,
            push: vec![Blob(bundle.clone()), Blob(vec![])],
            new_plans: vec![Fixed([3; 16])],
            envelopes: vec![EnvelopeUpload {
                recipient: Fixed([0; 16]),
                document: Fixed([4; 17]),
                epoch: 1,
                envelope: Blob(vec![9; 80]),
            }],
            snapshots: vec![Blob(snapshot)],
            policy_version: 3,
            commitments: vec![Blob(vec![5; 140])],
            max_bytes: 16 * 1024,
            history: vec![HistoryRequest { document: Fixed([4; 17]), after: 12 }],
            ..Default::default()
        },
    ]
}

/// Seed responses: an empty pull, acknowledgements (listed and all), and one with many fields set.
pub fn seed_responses() -> Vec<SyncResponse> {
    let bundle = seed_bundles().into_iter().nth(1).unwrap_or_default();
    vec![
        SyncResponse { head: 0, complete: true, ..Default::default() },
        SyncResponse { accepted: vec![Fixed([1; 16])], head: 57, complete: true, ..Default::default() },
        SyncResponse { all_accepted: true, head: 58, complete: true, ..Default::default() },
        SyncResponse {
            accepted: vec![Fixed([1; 16]), Fixed([2; 16])],
            rejected: vec![Rejection { bundle_id: Fixed([5; 16]), reason: "no_access".into() }],
            bundles: vec![Blob(bundle.clone()), Blob(bundle.clone())],
            head: 1 << 40,
            complete: false,
            envelopes: vec![EnvelopeDelivery {
                document: Fixed([4; 17]),
                epoch: 2,
                envelope: Blob(vec![8; 80]),
            }],
            key_requests: vec![KeyRequest {
                document: Fixed([4; 17]),
                epoch: 1,
                certificate: Blob(vec![1; 120]),
                admin_certificate: Blob(vec![2; 120]),
            }],
            compact: vec![Fixed([6; 17])],
            policy: Some(Blob(vec![3; 200])),
            commitments: vec![Blob(vec![5; 140])],
            mint: vec![Fixed([7; 17])],
            witnesses: vec![Blob(bundle.clone())],
            history: vec![HistoryPage {
                document: Fixed([4; 17]),
                bundles: vec![Blob(bundle)],
                through: 99,
                complete: false,
            }],
            ..Default::default()
        },
    ]
}

pub mod received;
