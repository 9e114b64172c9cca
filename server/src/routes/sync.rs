//! `POST /v1/sync`: one round trip carries a device's whole sync (see
//! [`eenplan_protocol::sync`] for the messages).
//!
//! The server checks what it can without any key that opens a plan, in this order:
//!
//! 1. `new_plans` are registered with the device's user as creator (and regisseur).
//! 2. Every pushed bundle (and snapshot) must parse, name this device as its author, belong
//!    to a document the device's user may read, and carry this device's signature. One that
//!    fails is *rejected* — listed in the response with a reason code, never stored — while
//!    the rest of the request goes on; the reason codes are `malformed`, `wrong_kind` (a
//!    snapshot among the changes or the reverse), `wrong_author`, `no_access` and
//!    `bad_signature`.
//! 3. Accepted bundles go to the group-commit writer; the response is built only after their
//!    transaction has committed, so an acknowledged push survives a crash.
//! 4. Key envelopes are stored when the sender may read the document and the recipient is an
//!    active device that may read it too (or the escrow recipient); others are dropped and
//!    counted, since the sender cannot do better by retrying them.
//! 5. The pull: the bundles after the device's cursor (at most [`PULL_MAX_BYTES`]), its key
//!    mailbox, key requests it can answer, and documents it should compact.
//!
//! ```text
//! A1: {s: 12, n: [P], p: [bundle P/basis x]}    → accepted [x] (seq 14), hint P/basis
//!                                               ← {a: [x], h: 14, k: [B1 lacks P/basis epoch 1]}
//! A1: {s: 14, e: [P/basis epoch 1 → B1]}        ← {h: 14}
//! B1: {s: 0}                                    ← {b: [x], h: 14, e: [P/basis epoch 1]}
//! ```

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ed25519_dalek::VerifyingKey;
use eenplan_protocol::api::{ESCROW_RECIPIENT, hex};
use eenplan_protocol::envelope::MAX_ENVELOPE_LEN;
use eenplan_protocol::sync::{
    self, Blob, EnvelopeDelivery, EnvelopeUpload, Fixed, KeyRequest, MAX_SYNC_REQUEST, Rejection,
    SyncRequest, SyncResponse,
};
use eenplan_protocol::{Bundle, BundleKind, DocumentId};

use super::device::{DeviceSession, certificate_chain};
use super::{AppState, Body, blocking};
use crate::auth::now_ms;
use crate::error::ApiError;
use crate::group_commit::CommitError;
use crate::metrics::Metrics;
use crate::storage::{
    CREATOR_PLAN_ROLE, DeviceId, DeviceRecord, DeviceState, Envelope, NewBundle, PushOutcome, StorageError,
    UserId,
};

/// The most bundle bytes one pull returns; the device syncs again at once when more wait.
pub const PULL_MAX_BYTES: usize = 8 * 1024 * 1024;
/// A document whose log holds more changes than this after its newest snapshot is offered
/// for compaction.
pub const COMPACT_AFTER: u64 = 1000;
/// Key epochs start at 1; until revocation re-keys documents, every document is at epoch 1.
pub const CURRENT_EPOCH: u32 = 1;

/// What the checks before the commit produced.
struct Checked {
    items: Vec<NewBundle>,
    rejected: Vec<Rejection>,
}

pub async fn sync(
    State(state): State<Arc<AppState>>,
    session: DeviceSession,
    body: Body<MAX_SYNC_REQUEST>,
) -> Result<Response, ApiError> {
    Metrics::add(&state.metrics.sync_bytes_in, body.0.len());
    let request: SyncRequest = sync::decode(&body.0, MAX_SYNC_REQUEST)
        .map_err(|_| ApiError::malformed("the body is not a CBOR sync request"))?;
    drop(body);
    let SyncRequest { since, push, new_plans, envelopes, snapshots } = request;
    let device = session.device;

    let checker = device.clone();
    let Checked { items, rejected } = blocking(&state, move |state| {
        register_plans(state, &checker, &new_plans)?;
        let checked = check_bundles(state, &checker, push, snapshots)?;
        store_envelopes(state, &checker, envelopes)?;
        Ok(checked)
    })
    .await?;
    Metrics::add(&state.metrics.pushes_rejected, rejected.len());

    let ids: Vec<[u8; 16]> = items.iter().map(|b| b.bundle_id).collect();
    let outcomes = state.commits.push(items).await.map_err(|e| match e {
        CommitError::Storage(e) => ApiError::from(e),
        CommitError::Stopped => ApiError::Unavailable {
            code: "shutting_down",
            message: "the server is shutting down; sync again shortly".into(),
        },
    })?;
    let appended = outcomes.iter().filter(|o| matches!(o, PushOutcome::Appended { .. })).count();
    Metrics::add(&state.metrics.pushes_appended, appended);
    Metrics::add(&state.metrics.pushes_duplicate, outcomes.len() - appended);
    let accepted = ids.into_iter().map(Fixed).collect();

    let response = blocking(&state, move |state| respond(state, &device, since, accepted, rejected)).await?;
    let bytes = sync::encode(&response);
    Metrics::add(&state.metrics.sync_bytes_out, bytes.len());
    Ok(([(header::CONTENT_TYPE, "application/cbor")], bytes).into_response())
}

fn register_plans(state: &AppState, device: &DeviceRecord, plans: &[Fixed<16>]) -> Result<(), ApiError> {
    for plan in plans {
        if !state.storage.register_plan(plan.0, device.user, device.device_id, now_ms())? {
            // Plan ids are random 128-bit values: a collision is an attack or a bug, and the
            // device's pushes to it will be rejected as `no_access`.
            tracing::warn!(plan = %hex(&plan.0), device = %hex(&device.device_id.0), "a device registered another user's plan");
        }
    }
    Ok(())
}

fn readable(state: &AppState, user: UserId) -> Result<HashSet<DocumentId>, StorageError> {
    Ok(state.storage.readable_documents(user)?.into_iter().map(|(document, _)| document).collect())
}

fn check_bundles(
    state: &AppState,
    device: &DeviceRecord,
    push: Vec<Blob>,
    snapshots: Vec<sync::SnapshotUpload>,
) -> Result<Checked, ApiError> {
    let mut checked = Checked { items: Vec::new(), rejected: Vec::new() };
    if push.is_empty() && snapshots.is_empty() {
        return Ok(checked);
    }
    let readable = readable(state, device.user)?;
    let key = VerifyingKey::from_bytes(&device.signing_public)
        .map_err(|_| ApiError::Internal("a stored signing key is not an Ed25519 key".into()))?;
    let now = now_ms();
    let uploads =
        push.into_iter().map(|b| (b, None)).chain(snapshots.into_iter().map(|s| (s.bundle, Some(s.covers))));
    for (blob, covers) in uploads {
        match check_bundle(blob.0, covers, device.device_id, &key, &readable) {
            Ok(bundle) => checked.items.push(NewBundle::from_wire(bundle, covers, now)),
            Err(rejection) => {
                tracing::info!(
                    device = %hex(&device.device_id.0),
                    bundle = %hex(&rejection.bundle_id.0),
                    reason = %rejection.reason,
                    "push rejected"
                );
                checked.rejected.push(rejection);
            }
        }
    }
    Ok(checked)
}

fn check_bundle(
    bytes: Vec<u8>,
    covers: Option<u64>,
    device: DeviceId,
    key: &VerifyingKey,
    readable: &HashSet<DocumentId>,
) -> Result<Bundle, Rejection> {
    // The id as far as the bytes go, so that even a malformed push is reported by its id.
    let claimed: [u8; 16] = bytes.get(39..55).and_then(|id| id.try_into().ok()).unwrap_or([0; 16]);
    let reject = |id: [u8; 16], reason: &str| Rejection { bundle_id: Fixed(id), reason: reason.to_string() };
    let bundle = Bundle::decode(bytes).map_err(|_| reject(claimed, "malformed"))?;
    let header = bundle.header;
    let id = header.bundle_id;
    let expected = if covers.is_some() { BundleKind::Snapshot } else { BundleKind::Changes };
    if header.kind != expected {
        return Err(reject(id, "wrong_kind"));
    }
    if header.author != device.0 {
        return Err(reject(id, "wrong_author"));
    }
    if !readable.contains(&header.document) {
        return Err(reject(id, "no_access"));
    }
    bundle.verify(key).map_err(|_| reject(id, "bad_signature"))?;
    Ok(bundle)
}

fn store_envelopes(
    state: &AppState,
    sender: &DeviceRecord,
    uploads: Vec<EnvelopeUpload>,
) -> Result<(), ApiError> {
    if uploads.is_empty() {
        return Ok(());
    }
    let mut readers: HashMap<UserId, HashSet<DocumentId>> = HashMap::new();
    readers.insert(sender.user, readable(state, sender.user)?);
    let mut devices: HashMap<DeviceId, Option<DeviceRecord>> = HashMap::new();
    let mut keep = Vec::new();
    let mut escrow = Vec::new();
    let mut dropped = 0usize;
    for upload in uploads {
        let recipient = DeviceId(upload.recipient.0);
        let Ok(document) = DocumentId::from_bytes(&upload.document.0) else {
            dropped += 1;
            continue;
        };
        let sender_reads = readers.get(&sender.user).is_some_and(|docs| docs.contains(&document));
        let size_ok = !upload.envelope.0.is_empty() && upload.envelope.0.len() <= MAX_ENVELOPE_LEN;
        if !sender_reads || !size_ok {
            dropped += 1;
            continue;
        }
        let envelope = Envelope { recipient, document, epoch: upload.epoch, bytes: upload.envelope.0 };
        if recipient.0 == ESCROW_RECIPIENT {
            escrow.push(envelope);
            continue;
        }
        let record = match devices.get(&recipient) {
            Some(record) => record.clone(),
            None => {
                let record = state.storage.device(recipient)?;
                devices.insert(recipient, record.clone());
                record
            }
        };
        let Some(record) = record.filter(|r| r.state == DeviceState::Active) else {
            dropped += 1;
            continue;
        };
        let recipient_reads = match readers.entry(record.user) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(readable(state, record.user)?),
        };
        if recipient_reads.contains(&document) {
            keep.push(envelope);
        } else {
            dropped += 1;
        }
    }
    let stored = put(state, &keep) + put(state, &escrow);
    // A recipient that is watching learns at once that a key arrived for it (the key may be
    // what its parked bundles wait for).
    let mut hinted = HashSet::new();
    for envelope in &keep {
        if hinted.insert(envelope.document) {
            state.commits.hint(envelope.document);
        }
    }
    dropped += keep.len() + escrow.len() - stored;
    Metrics::add(&state.metrics.envelopes_stored, stored);
    Metrics::add(&state.metrics.envelopes_dropped, dropped);
    if dropped > 0 {
        tracing::info!(device = %hex(&sender.device_id.0), dropped, "key envelopes not stored");
    }
    Ok(())
}

/// Stores envelopes, all at once or, when that fails (a recipient revoked meanwhile), one by
/// one; returns how many were stored.
fn put(state: &AppState, envelopes: &[Envelope]) -> usize {
    if envelopes.is_empty() {
        return 0;
    }
    match state.storage.put_envelopes(envelopes) {
        Ok(()) => envelopes.len(),
        Err(_) => envelopes
            .iter()
            .filter(|envelope| match state.storage.put_envelopes(std::slice::from_ref(*envelope)) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(
                        recipient = %hex(&envelope.recipient.0),
                        error = %e,
                        "a key envelope was not stored"
                    );
                    false
                }
            })
            .count(),
    }
}

fn respond(
    state: &AppState,
    device: &DeviceRecord,
    since: u64,
    accepted: Vec<Fixed<16>>,
    rejected: Vec<Rejection>,
) -> Result<SyncResponse, ApiError> {
    let batch = state.storage.pull(device.user, device.device_id, since, PULL_MAX_BYTES)?;
    Metrics::add(&state.metrics.bundles_pulled, batch.bundles.len());
    // After the pull: an envelope stored below the pull's head is then always included.
    let mailbox = state.storage.envelopes_for(device.device_id, since)?;
    // Which keys the device holds depends on every envelope it ever got, not only new ones.
    let held = if since == 0 { mailbox.clone() } else { state.storage.envelopes_for(device.device_id, 0)? };
    let answerable = answerable_documents(state, device, &held)?;
    let key_requests = key_requests(state, device, &answerable)?;
    let mut compact = Vec::new();
    for document in &answerable {
        if state.storage.document_stats(*document)?.bundles_since_snapshot > COMPACT_AFTER {
            compact.push(Fixed(document.to_bytes()));
        }
    }
    Ok(SyncResponse {
        accepted,
        rejected,
        bundles: batch.bundles.into_iter().map(|b| Blob(b.bytes)).collect(),
        head: batch.head,
        complete: batch.complete,
        envelopes: mailbox
            .into_iter()
            .map(|e| EnvelopeDelivery {
                document: Fixed(e.document.to_bytes()),
                epoch: e.epoch,
                envelope: Blob(e.bytes),
            })
            .collect(),
        key_requests,
        compact,
    })
}

/// The readable documents whose current key this device holds: those it has an envelope for,
/// and those of plans its user directs as regisseur (the creator's device made the key and
/// holds it without an envelope). Only such a device can answer key requests or upload a
/// snapshot.
fn answerable_documents(
    state: &AppState,
    device: &DeviceRecord,
    mailbox: &[Envelope],
) -> Result<Vec<DocumentId>, ApiError> {
    let with_envelope: HashSet<DocumentId> =
        mailbox.iter().filter(|e| e.epoch == CURRENT_EPOCH).map(|e| e.document).collect();
    let mut directed = HashSet::new();
    for plan in state.storage.plans_of_user(device.user)? {
        let plan_has_envelope = with_envelope.iter().any(|d| d.plan == plan);
        if !plan_has_envelope
            && state
                .storage
                .participants(plan)?
                .iter()
                .any(|p| p.user == device.user && p.plan_role == CREATOR_PLAN_ROLE)
        {
            directed.insert(plan);
        }
    }
    let mut documents: Vec<DocumentId> = state
        .storage
        .readable_documents(device.user)?
        .into_iter()
        .map(|(document, _)| document)
        .filter(|d| with_envelope.contains(d) || directed.contains(&d.plan))
        .collect();
    documents.sort_unstable();
    Ok(documents)
}

fn key_requests(
    state: &AppState,
    device: &DeviceRecord,
    answerable: &[DocumentId],
) -> Result<Vec<KeyRequest>, ApiError> {
    let mut chains: HashMap<DeviceId, Option<Chain>> = HashMap::new();
    let mut requests = Vec::new();
    for document in answerable {
        for requester in state.storage.devices_missing_envelope(*document, CURRENT_EPOCH)? {
            if requester == device.device_id {
                continue;
            }
            let chain = match chains.entry(requester) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => entry.insert(requester_chain(state, requester)?),
            };
            if let Some((certificate, admin_certificate)) = chain {
                requests.push(KeyRequest {
                    document: Fixed(document.to_bytes()),
                    epoch: CURRENT_EPOCH,
                    certificate: Blob(certificate.clone()),
                    admin_certificate: Blob(admin_certificate.clone()),
                });
            }
        }
    }
    Ok(requests)
}

/// A device certificate and its administrator's certificate.
type Chain = (Vec<u8>, Vec<u8>);

/// The chain of a device that asks for a key, if it is active and has one.
fn requester_chain(state: &AppState, requester: DeviceId) -> Result<Option<Chain>, ApiError> {
    match state.storage.device(requester)? {
        Some(record) if record.state == DeviceState::Active => match certificate_chain(state, &record) {
            Ok(chain) => Ok(Some(chain)),
            Err(e) => {
                tracing::error!(device = %hex(&requester.0), error = %e, "no certificate chain for an active device");
                Ok(None)
            }
        },
        _ => Ok(None),
    }
}
