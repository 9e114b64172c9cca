//! The administrator's re-keying (`eenplan_protocol::rekey`, CBOR): the queue of documents
//! waiting for a new key epoch, and the new epochs the CLI makes for them.
//!
//! A task names every device that may still read its document (by the device table and the
//! policy) with the epochs it lacks; each device's certificate chain is in the answer once.
//! A result is taken whole or not at all, per document: an administrator's commitment to
//! exactly the next epoch, and the new key sealed to every reader and to escrow. "Every
//! reader" leaves out devices on the newest signed revocation list: the administrator's CLI
//! refuses to seal to them whatever the device table says, and this server must not keep a
//! document closed for want of an envelope nobody may make.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use eenplan_protocol::DocumentId;
use eenplan_protocol::api::{ESCROW_RECIPIENT, hex};
use eenplan_protocol::envelope::MAX_ENVELOPE_LEN;
use eenplan_protocol::epoch::{Minter, SignedCommitment};
use eenplan_protocol::rekey::{
    CONTENT_TYPE, EpochBlob, ListedDevice, MAX_REKEY_ANSWER, MAX_REKEY_REQUEST, RekeyAnswer, RekeyBatch,
    RekeyOutcome, RekeyRecipient, RekeyResult, RekeyStatus, RekeyTask, RekeyTasks,
};
use eenplan_protocol::sync::{Blob, Fixed};
use serde::Deserialize;

use super::AppState;
use super::admin::AdminRequest;
use super::device::certificate_chain;
use super::rotation::registered_admin;
use crate::auth::now_ms;
use crate::error::ApiError;
use crate::storage::{CompletedRotation, DeviceId, Envelope, RotationTask, StorageError};

/// Tasks per `GET /v1/admin/rekey` when the query names no limit, and the most it may name.
const DEFAULT_TASKS: usize = 50;
const MAX_TASKS: usize = 500;
/// Framing per recipient, blob and task in the estimate of an answer's size.
const FRAMING: usize = 48;

#[derive(Debug, Deserialize)]
pub struct RekeyQuery {
    limit: Option<usize>,
}

fn cbor(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], bytes).into_response()
}

/// `GET /v1/admin/rekey?limit=N`: the documents waiting longest for a new epoch, within
/// [`MAX_REKEY_ANSWER`] bytes.
pub async fn rekey_tasks(
    State(state): State<Arc<AppState>>,
    query: Result<Query<RekeyQuery>, QueryRejection>,
    request: AdminRequest,
) -> Result<Response, ApiError> {
    let limit = query.map_err(|e| ApiError::malformed(e.body_text()))?.0.limit.unwrap_or(DEFAULT_TASKS);
    if !(1..=MAX_TASKS).contains(&limit) {
        return Err(ApiError::malformed(format!("limit must be 1 to {MAX_TASKS}")));
    }
    request
        .run(&state, move |state, admin, _| {
            // Whoever makes a key can read it: key epochs are network-wide.
            super::scope::require_network_wide(admin)?;
            let mut answer = TaskAnswer::default();
            for task in state.storage.rotation_tasks(limit)? {
                if !answer.add(state, task)? {
                    break;
                }
            }
            Ok(cbor(eenplan_protocol::sync::encode(&answer.tasks)))
        })
        .await
}

/// A task list being built: the certificate tables and a running size.
#[derive(Default)]
struct TaskAnswer {
    tasks: RekeyTasks,
    devices: HashSet<DeviceId>,
    admins: HashMap<Vec<u8>, u32>,
    bytes: usize,
}

impl TaskAnswer {
    /// Adds `task` unless it would take the answer past its byte limit (the first task always
    /// goes in); `Ok(false)` when it did not fit.
    fn add(&mut self, state: &AppState, task: RotationTask) -> Result<bool, ApiError> {
        let document = task.document;
        let mut added: Vec<(DeviceId, Vec<u8>, Vec<u8>)> = Vec::new();
        let mut recipients = Vec::with_capacity(task.readers.len());
        let mut lacking = BTreeSet::new();
        let mut bytes = FRAMING;
        for reader in task.readers {
            let id = reader.device.device_id;
            if !self.devices.contains(&id) && !added.iter().any(|(d, ..)| *d == id) {
                match certificate_chain(state, &reader.device) {
                    Ok((certificate, admin)) => {
                        bytes += certificate.len() + FRAMING;
                        if !self.admins.contains_key(&admin) {
                            bytes += admin.len();
                        }
                        added.push((id, certificate, admin));
                    }
                    Err(e) => {
                        tracing::error!(device = %hex(&id.0), error = %e, "no certificate chain for an active device");
                        continue;
                    }
                }
            }
            let missing_epochs: Vec<u32> =
                (1..=task.current_epoch).filter(|e| !reader.held_epochs.contains(e)).collect();
            lacking.extend(missing_epochs.iter().copied());
            bytes += FRAMING + 4 * missing_epochs.len();
            recipients.push(RekeyRecipient { device: Fixed(id.0), missing_epochs });
        }
        let escrow: Vec<EpochBlob> = state
            .storage
            .escrow_envelopes(document.plan)?
            .into_iter()
            .filter(|e| e.document == document && lacking.contains(&e.epoch))
            .map(|e| EpochBlob { epoch: e.epoch, data: Blob(e.bytes) })
            .collect();
        let mut commitments = Vec::new();
        for epoch in &lacking {
            if let Some(commitment) = state.storage.commitment(document, *epoch)? {
                commitments.push(EpochBlob { epoch: *epoch, data: Blob(commitment.signed) });
            }
        }
        bytes += escrow.iter().chain(&commitments).map(|b| b.data.0.len() + FRAMING).sum::<usize>();
        if !self.tasks.tasks.is_empty() && self.bytes + bytes > MAX_REKEY_ANSWER {
            return Ok(false);
        }
        self.bytes += bytes;
        for (id, certificate, admin) in added {
            let next = u32::try_from(self.admins.len()).unwrap_or(u32::MAX);
            let index = *self.admins.entry(admin.clone()).or_insert_with(|| {
                self.tasks.admin_certificates.push(Blob(admin));
                next
            });
            self.devices.insert(id);
            self.tasks.devices.push(ListedDevice {
                device: Fixed(id.0),
                certificate: Blob(certificate),
                admin_certificate: index,
            });
        }
        self.tasks.tasks.push(RekeyTask {
            document: Fixed(document.to_bytes()),
            current_epoch: task.current_epoch,
            recipients,
            escrow,
            commitments,
        });
        Ok(true)
    }
}

/// Why one document's result was not taken.
struct NotTaken {
    status: RekeyStatus,
    message: String,
}

fn stale(message: impl Into<String>) -> NotTaken {
    NotTaken { status: RekeyStatus::Stale, message: message.into() }
}

fn incomplete(message: impl Into<String>) -> NotTaken {
    NotTaken { status: RekeyStatus::Incomplete, message: message.into() }
}

/// `POST /v1/admin/rekey`: a [`RekeyBatch`] of whole documents' next epochs. Each document
/// is taken or refused on its own; the answer says which, in the batch's order.
pub async fn rekey(
    State(state): State<Arc<AppState>>,
    request: AdminRequest<MAX_REKEY_REQUEST>,
) -> Result<Response, ApiError> {
    request
        .run(&state, |state, admin, body| {
            super::scope::require_network_wide(admin)?;
            let batch: RekeyBatch = eenplan_protocol::sync::decode(body, MAX_REKEY_REQUEST)
                .map_err(|_| ApiError::malformed("the body is not a CBOR re-keying batch"))?;
            let mut outcomes = Vec::with_capacity(batch.results.len());
            for result in &batch.results {
                let (status, message) = match take(state, result) {
                    Ok(()) => {
                        tracing::info!(document = %hex(&result.document.0), epoch = result.new_epoch, admin = %admin.name, "document re-keyed");
                        (RekeyStatus::Done, String::new())
                    }
                    Err(Failure::NotTaken(NotTaken { status, message })) => (status, message),
                    Err(Failure::Server(e)) => return Err(e),
                };
                outcomes.push(RekeyOutcome { document: result.document, status, message });
            }
            let pending = state.storage.pending_rotations()?;
            Ok(cbor(eenplan_protocol::sync::encode(&RekeyAnswer { outcomes, pending })))
        })
        .await
}

enum Failure {
    NotTaken(NotTaken),
    Server(ApiError),
}

impl From<NotTaken> for Failure {
    fn from(n: NotTaken) -> Self {
        Failure::NotTaken(n)
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Server(e)
    }
}

impl From<StorageError> for Failure {
    fn from(e: StorageError) -> Self {
        Failure::Server(e.into())
    }
}

/// Checks and stores one document's result.
fn take(state: &AppState, result: &RekeyResult) -> Result<(), Failure> {
    let document = DocumentId::from_bytes(&result.document.0)
        .map_err(|_| incomplete("the document is not a document id"))?;
    if !state.storage.rotation_pending(document)? {
        return Err(stale("no rotation of this document is waiting").into());
    }
    let current = state.storage.current_epoch(document)?;
    if current.checked_add(1) != Some(result.new_epoch) {
        return Err(stale(format!("the document is at epoch {current}; fetch the tasks again")).into());
    }
    check_admin_commitment(state, &result.commitment.0, document, result.new_epoch)?;
    let envelopes = rekey_envelopes(state, result, document)?;
    let stored = envelopes.len();
    let rotation = CompletedRotation {
        document,
        new_epoch: result.new_epoch,
        commitment: result.commitment.0.clone(),
        minter_device: None,
        envelopes,
        now: now_ms(),
    };
    match state.storage.complete_rotation(&rotation) {
        Ok(_) => {}
        // Another run moved the epoch, or a reader was revoked meanwhile.
        Err(StorageError::InvalidState(message)) => return Err(stale(message).into()),
        Err(StorageError::NotFound) => return Err(stale("a recipient is gone; fetch the tasks again").into()),
        Err(other) => return Err(other.into()),
    }
    crate::metrics::Metrics::add(&state.metrics.envelopes_stored, stored);
    // The readers that are online fetch their new key at once.
    state.events.hint(document);
    Ok(())
}

/// The commitment must be an administrator's (registered here, certified by the root) to
/// exactly this document and epoch.
fn check_admin_commitment(
    state: &AppState,
    bytes: &[u8],
    document: DocumentId,
    epoch: u32,
) -> Result<(), Failure> {
    let signed =
        SignedCommitment::from_bytes(bytes).map_err(|_| incomplete("the commitment is malformed"))?;
    let claimed = signed.claimed().map_err(|_| incomplete("the commitment is malformed"))?;
    let Minter::Admin { certificate } = &claimed.minter else {
        return Err(incomplete("a new epoch's key must be made by an administrator").into());
    };
    let admin = registered_admin(state, certificate)?
        .ok_or_else(|| incomplete("the commitment is not by an administrator of this network"))?;
    let commitment = signed
        .verify(&admin.admin_public)
        .map_err(|_| incomplete("the commitment's signature does not verify"))?;
    if commitment.document.0 != document.to_bytes() || commitment.epoch != epoch {
        return Err(incomplete("the commitment is for another document or epoch").into());
    }
    Ok(())
}

/// The result's envelopes, after checking that each goes to a reader or escrow and that every
/// reader not on a revocation list, and escrow, gets the new epoch.
fn rekey_envelopes(
    state: &AppState,
    result: &RekeyResult,
    document: DocumentId,
) -> Result<Vec<Envelope>, Failure> {
    let escrow = DeviceId(ESCROW_RECIPIENT);
    let readers: HashSet<DeviceId> =
        state.storage.readers(document)?.into_iter().map(|r| r.device.device_id).collect();
    let mut envelopes = Vec::with_capacity(result.envelopes.len());
    let mut sealed: HashMap<DeviceId, BTreeSet<u32>> = HashMap::new();
    for upload in &result.envelopes {
        let recipient = DeviceId(upload.recipient.0);
        let bytes = &upload.envelope.0;
        if bytes.is_empty() || bytes.len() > MAX_ENVELOPE_LEN {
            return Err(incomplete(format!("an envelope must be 1 to {MAX_ENVELOPE_LEN} bytes")).into());
        }
        if upload.epoch == 0 || upload.epoch > result.new_epoch {
            return Err(incomplete(format!("envelope epochs are 1 to {}", result.new_epoch)).into());
        }
        if recipient != escrow && !readers.contains(&recipient) {
            return Err(incomplete(format!("device {} may not read this document", hex(&recipient.0))).into());
        }
        sealed.entry(recipient).or_default().insert(upload.epoch);
        envelopes.push(Envelope { recipient, document, epoch: upload.epoch, bytes: bytes.clone() });
    }
    let mut missing = 0;
    for device in readers.iter().chain(std::iter::once(&escrow)) {
        if sealed.get(device).is_some_and(|epochs| epochs.contains(&result.new_epoch)) {
            continue;
        }
        if *device != escrow && state.storage.on_revocation_list(*device)? {
            continue;
        }
        missing += 1;
    }
    if missing > 0 {
        return Err(incomplete(format!(
            "{missing} of the document's readers (escrow included) get no envelope of epoch {}",
            result.new_epoch
        ))
        .into());
    }
    Ok(envelopes)
}
