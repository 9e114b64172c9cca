//! `POST /v1/sync`: one round trip carries a device's whole sync (see
//! [`eenplan_protocol::sync`] for the messages).
//!
//! "May read" and "may write" below are the sharing policy applied to the role of the device's
//! user (the role its certificate names): participation decides which plans, the role which
//! of their compartments. The server checks what it can without any key that opens a plan,
//! in this order:
//!
//! 0. Before any of it: a request with more items in a list than
//!    [`eenplan_protocol::sync::SyncRequest::too_many_items`] allows is refused whole (413
//!    `too_many_items`), and so is one past the device's push quota ([`crate::quota`]: 429
//!    `quota_exceeded`, retryable). Then the session's device is read with its user and the
//!    user's access stamp ([`crate::storage::Storage::sync_session`]) and refused when it
//!    is not active or the session began before its certificate (401/403, as every route's
//!    session); a request refused for its body or quota gets the device's refusal instead
//!    when it has one, so a revoked device always learns that it is.
//! 1. Access-log uploads (`au`, [`eenplan_protocol::audit::AuditUpload`]) are kept, sealed,
//!    append-only, before anything else: each must decode within its limit, name this device
//!    and carry its signature. One that fails is refused alone (`ar` in the answer:
//!    `audit_malformed`, `audit_wrong_device`, `audit_bad_signature`) and the sync goes on,
//!    so a device with a damaged upload never stops pushing edits. The answer's `at` is the
//!    highest event position of this device the server keeps, and `ak` the organisation's
//!    newest root-signed audit key when the device holds an older version (`av`). The sync
//!    itself goes into the server's own log, queued (see [`crate::audit_log`]).
//! 1. `new_plans` are registered with the device's user as creator (and regisseur).
//! 2. Refused envelopes (`re`): the device's envelope of each (document, epoch) that the named
//!    sealer sealed is deleted, so the key is asked for again, and that sealer's envelopes of
//!    it are not taken for this device again (see [`Storage::refuse_envelopes`]).
//! 3. Key commitments (`cm`) for epoch 1 are stored when this device made them (minter,
//!    signature), they name the current policy version, the user may read the document, and
//!    nobody made one before: the first commitment wins, later ones are ignored.
//! 4. Key envelopes are stored when they carry this device's signature as their sealer, a
//!    commitment exists for their (document, epoch), the sender may read the document, and the
//!    recipient is an active device that may read it too (or the escrow recipient); the first
//!    envelope per (recipient, document, epoch) stays, so no reader can replace another's
//!    key. Others are dropped and counted, since the sender cannot do better by retrying them.
//! 5. Every pushed bundle (and snapshot) must parse, name this device as its author, belong
//!    to a plan the device's user takes part in, carry this device's signature, be in a
//!    compartment the role may write, and be sealed under the document's current epoch while
//!    no rotation of it waits. One that fails is *rejected* — listed in the response with a
//!    reason code, never stored — while the rest of the request goes on; the reason codes are
//!    `malformed`, `wrong_kind` (a snapshot among the changes or the reverse), `wrong_author`,
//!    `no_access`, `bad_signature`, `no_write`, `rotating` (a revocation is moving the
//!    document to a new key), `stale_epoch` (an older key), `unknown_epoch` (a key
//!    nobody committed to) and `unrequested_snapshot` (a snapshot the server did not ask this
//!    device for, or whose signed `covers` is not the position it asked for; checked and the
//!    request consumed in the writing transaction) and `author_revoked` (revoked while the
//!    request was on its way). The device keeps `rotating`, `stale_epoch` and `unknown_epoch`
//!    bundles and pushes them again (sealed under the new key where there is one).
//!
//!    Every write (plan registration, refusals, commitments, envelopes, bundles) checks in its
//!    own transaction that the device is still active, so a request authenticated before a
//!    revocation writes nothing after it commits.
//! 5. Accepted bundles go to the group-commit writer; the response is built only after their
//!    transaction has committed, so an acknowledged push survives a crash.
//! 6. The pull (`storage::pull`): one page of the bundles after the device's cursor, the
//!    witnesses of its snapshots and the device's key envelopes (with the commitment of each
//!    key), at most `max_bytes` ([`MIN_PAGE_BYTES`]..=[`PULL_MAX_BYTES`]; 0 is the maximum),
//!    then the history pages it asked for from what is left. Beside it: key requests it can
//!    answer (for every epoch it holds; at most [`MAX_KEY_REQUESTS_PER_ANSWER`] per answer,
//!    the next ones in the next rounds), documents it should make the first key of (`mt`),
//!    the signed policy when the device's is older, and, only in a complete answer, the
//!    documents whose logs are long that it is now asked to snapshot (`x`, covering the
//!    answer's `head`). The answer is complete when the pull reached the log head, every
//!    history page is complete and no key requests wait for the next round.
//!
//! ```text
//! A1: {s: 12, n: [P], cm: [P/basis epoch 1 by A1, …], p: [bundle P/basis epoch 1 x]}
//!                                               → accepted [x] (seq 14), hint P/basis
//!                                               ← {t: true, h: 14, k: [B1 lacks P/basis epoch 1]}
//! A1: {s: 14, e: [P/basis epoch 1 → B1]}        ← {h: 15}
//! B1: {s: 0, pv: 1}                             ← {b: [x], h: 15, e: [P/basis epoch 1],
//!                                                  cm: [P/basis epoch 1 by A1]}
//! … A2 is revoked; P/basis waits for epoch 2 …
//! B1: {s: 15, p: [bundle P/basis epoch 1 y]}    ← {r: [y rotating], h: 15}
//! … the administrator's rekey makes epoch 2 and seals it to B1 …
//! B1: {s: 15}                                   ← {h: 17, e: [P/basis epoch 2], cm: [epoch 2 by admin]}
//! B1: {s: 17, p: [bundle P/basis epoch 2 y']}   ← {a: [y'], h: 18}
//! ```

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ed25519_dalek::VerifyingKey;
use eenplan_protocol::api::{ESCROW_RECIPIENT, code, hex};
use eenplan_protocol::audit::{self, AuditAction, AuditRefusal, AuditUpload};
use eenplan_protocol::envelope::{self, MAX_ENVELOPE_LEN};
use eenplan_protocol::epoch::{Minter, SignedCommitment};
use eenplan_protocol::policy::Policy;
use eenplan_protocol::sync::{
    self, Blob, EnvelopeDelivery, EnvelopeUpload, Fixed, HistoryPage, KeyRequest, MAX_ENVELOPES_PER_ANSWER,
    MAX_HISTORY_REQUESTS, MAX_KEY_REQUEST_BYTES_PER_ANSWER, MAX_KEY_REQUESTS_PER_ANSWER, MAX_SYNC_REQUEST,
    MIN_PAGE_BYTES, REJECT_NO_WRITE, RefusedEnvelope, Rejection, SyncRequest, SyncResponse,
};
use eenplan_protocol::{Bundle, DocumentId};
use sha2::{Digest, Sha256};

use super::device::{authenticate_claim, authenticate_read, certificate_chain, session_token};
use super::{AppState, Body, blocking};
use crate::auth::{SessionClaim, now_ms};
use crate::error::ApiError;
use crate::group_commit::CommitError;
use crate::metrics::Metrics;
use crate::storage::{
    AnswerQuery, AnswerReads, AnswerStart, CommitmentOutcome, CommitmentRecord, CompletedRotation, DeviceId,
    DeviceRecord, DeviceState, Envelope, EnvelopeOutcome, EnvelopeRefusal, HistoryRequest, NewAuditUpload,
    NewBundle, PlanId, PullRequest, PushOutcome, StorageError, SyncSession, UserId,
};

/// The most bundle bytes one pull returns; the device syncs again at once when more wait.
pub const PULL_MAX_BYTES: usize = 8 * 1024 * 1024;
pub use eenplan_protocol::sync::REJECT_UNKNOWN_EPOCH;

/// What the checks before the commit produced.
struct Checked {
    items: Vec<NewBundle>,
    rejected: Vec<Rejection>,
}

/// What the device's user may do, read once per request that uploads something to check
/// ([`Uploads::needs_access`]), after its new plans are registered.
struct Access {
    /// Who the sync's entry in the server's log names: the device, its user (with the role
    /// the rules below go by) and organisation.
    actor: audit::Actor,
    /// The plans the user takes part in, with their escalation level.
    plans: HashMap<PlanId, String>,
    /// `None` only on a database from before policies: then nothing is readable either.
    policy: Option<std::sync::Arc<Policy>>,
    readable: HashSet<DocumentId>,
}

impl Access {
    /// The access, and the current epoch of each document the session read epochs for,
    /// read with it: as of the session's read when `as_of_session` (this request wrote
    /// nothing before its checks, [`Uploads::keeps_the_sessions_access`]), read again
    /// otherwise.
    fn load(
        state: &AppState,
        session: &SyncSession,
        as_of_session: bool,
    ) -> Result<(Access, Epochs), ApiError> {
        let device = &session.device;
        let access = if as_of_session {
            state.storage.session_access(&session.stamp)?
        } else {
            state.storage.user_access(device.user, session.stamp.documents())?
        };
        let access = access.ok_or_else(ApiError::device_user_missing)?;
        let loaded = Access {
            actor: crate::audit_log::actor_of(device, access.user, access.organisation),
            plans: access.plan_levels.into_iter().collect(),
            policy: access.policy.map(|record| std::sync::Arc::clone(&record.policy)),
            readable: access.readable.into_iter().collect(),
        };
        Ok((loaded, access.epochs.into_iter().collect()))
    }

    /// By the rules of the plan's escalation level.
    fn may_write(&self, document: DocumentId) -> bool {
        let level =
            self.plans.get(&document.plan).map_or(eenplan_protocol::policy::BASE_LEVEL, String::as_str);
        self.policy.as_ref().is_some_and(|p| p.may_write_at(&self.actor.role, document.compartment, level))
    }
}

/// The whole sync runs on one blocking thread: the session check, the checks, the wait for
/// the group commit and the answer. Three hops between the runtime's threads and the blocking
/// pool per sync were a sixth of the server's CPU per push (`load_bench` profile,
/// 2026-12-05); the thread now waits for its commit instead ([`GroupCommit::push`]), which
/// costs a parked thread, not CPU.
pub async fn sync(State(state): State<Arc<AppState>>, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let token = session_token(&parts.headers)?;
    // A forged or expired token is refused before the body is read.
    let claim = state.auth.session_claim(&token, now_ms())?;
    let body = Body::<MAX_SYNC_REQUEST>::from_request(Request::from_parts(parts, body), &state).await?;
    let bytes = blocking(&state, move |state| serve(state, claim, &body.0)).await?;
    Metrics::add(&state.metrics.sync_bytes_out, bytes.len());
    Ok(([(header::CONTENT_TYPE, "application/cbor")], bytes).into_response())
}

/// One sync whose token's tag is checked, start to end; the encoded answer.
///
/// The body is decoded before the device is read, so that the session's device, its user
/// and the user's access stamp with the pushed documents' epochs are one read
/// ([`crate::storage::Storage::sync_session`], one statement on PostgreSQL where they were
/// two): the token's tag already proves a session this server issued to that device, and
/// the device's quota and the request's limits bound what decoding costs. Nothing is stored
/// or answered before the device passes ([`authenticate_read`]), only the quota charged (in
/// memory, as for a body that does not decode); a request refused for its body or its quota
/// reads the device first ([`refused_request`]).
fn serve(state: &AppState, claim: SessionClaim, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let (wanted, uploads) = admit(state, claim.device, body)
        .and_then(|request| Uploads::split(request, claim.device))
        .map_err(|refusal| refused_request(state, claim, refusal))?;
    let documents = uploads.epochs_read_first(claim.device);
    let session = authenticate_read(state, claim, state.storage.sync_session(claim.device, &documents)?)?;
    let count = uploads.bundles();
    let Stored { checked, audit_refused, actor } = store_uploads(state, &session, uploads)?;
    let device = session.device;
    Metrics::add(&state.metrics.pushes_rejected, checked.rejected.len());
    // Begun before the commit, so that the group commit can read its first statement with
    // the rest of its batch's.
    let query = answer_query(&device, wanted);
    let start = state.storage.begin_answer(&query);
    let (acks, appended, start) = commit(state, &device, checked, count, start)?;
    let mut response = respond(state, &device, query, start, acks)?;
    response.audit_refused = audit_refused;
    record_sync(state, actor, appended, &response);
    Ok(sync::encode(&response))
}

/// The answer to a request refused before its device was read (its body, its lists, its
/// quota): the device's own refusal when it has one, so that a revoked device learns it is
/// revoked (and obeys its wipe order) whatever it sent, and a device whose session ended
/// opens a new one; `refusal` otherwise, also when the device could not be read.
fn refused_request(state: &AppState, claim: SessionClaim, refusal: ApiError) -> ApiError {
    match authenticate_claim(state, claim) {
        Err(session @ (ApiError::Unauthenticated { .. } | ApiError::Forbidden { .. })) => session,
        Ok(_) | Err(_) => refusal,
    }
}

/// What a request gives the server to keep, apart from what it asks for.
struct Uploads {
    audit: Vec<Blob>,
    new_plans: Vec<Fixed<16>>,
    charters: Vec<Blob>,
    refused_envelopes: Vec<RefusedEnvelope>,
    commitments: Vec<Blob>,
    rotations: Vec<sync::RotationUpload>,
    envelopes: Vec<EnvelopeUpload>,
    /// The pushed changes, then the snapshots, decoded.
    pushed: Pushed,
}

impl Uploads {
    /// Splits a request into what it asks for and what it uploads. The pusher's own bundles
    /// come without their author: the session's device goes back in, and the signature
    /// (which covers it) is checked as for every push.
    fn split(request: SyncRequest, pusher: DeviceId) -> Result<(Wanted, Uploads), ApiError> {
        let SyncRequest {
            since,
            mut push,
            push_own,
            new_plans,
            envelopes,
            snapshots,
            policy_version,
            commitments,
            max_bytes,
            history,
            refused_envelopes,
            envelopes_after,
            charters,
            membership_after,
            rotations,
            audit,
            audit_key_version,
        } = request;
        push.extend(
            push_own.into_iter().map(|b| Blob(eenplan_protocol::bundle::with_author(&b.0, &pusher.0))),
        );
        let mut wanted = Wanted::new(since, envelopes_after, policy_version, max_bytes, history)?;
        wanted.membership_after = membership_after.unwrap_or(0);
        wanted.audit_key_version = audit_key_version;
        let uploads = Uploads {
            audit,
            new_plans,
            charters,
            refused_envelopes,
            commitments,
            rotations,
            envelopes,
            pushed: decode_pushes(push, snapshots),
        };
        Ok((wanted, uploads))
    }

    /// The bundles and snapshots uploaded, which the answer acknowledges.
    fn bundles(&self) -> usize {
        self.pushed.len()
    }

    /// The documents whose epochs are read with the session: those `author`'s pushes name,
    /// unless this request's own commitments or rotations move an epoch first; then after
    /// them, as they are needed. Another request may move one meanwhile either way: epochs
    /// only grow, so an early read can only refuse a push as `unknown_epoch` (the device
    /// pushes it again), and the group commit checks a stale epoch again before appending.
    fn epochs_read_first(&self, author: DeviceId) -> Vec<DocumentId> {
        if self.commitments.is_empty() && self.rotations.is_empty() {
            documents_of(&self.pushed, author)
        } else {
            Vec::new()
        }
    }

    /// Whether the user's access as of the session's read holds for this request's checks:
    /// nothing it writes before them changes it, or stands between the read and the checks
    /// long. New plans and their charters change it (the user's plans, a plan's chain);
    /// refused envelopes and the access log are written there too, the log's write after
    /// its signatures are checked, and the access is read again after them rather than
    /// reasoned about.
    fn keeps_the_sessions_access(&self) -> bool {
        self.audit.is_empty()
            && self.new_plans.is_empty()
            && self.charters.is_empty()
            && self.refused_envelopes.is_empty()
    }

    /// Whether any upload is checked against what the user may do ([`Access`]): keys,
    /// rotations, envelopes and bundles are; the access log, new plans with their charters
    /// and refused envelopes are not. Every field is named, so that a new kind of upload
    /// cannot skip its checks on the path without the access unnoticed.
    fn needs_access(&self) -> bool {
        let Uploads {
            audit: _,
            new_plans: _,
            charters: _,
            refused_envelopes: _,
            commitments,
            rotations,
            envelopes,
            pushed,
        } = self;
        !(commitments.is_empty() && rotations.is_empty() && envelopes.is_empty() && pushed.is_empty())
    }
}

/// What [`store_uploads`] kept and found.
struct Stored {
    /// The bundles for the group commit, and the ones refused.
    checked: Checked,
    audit_refused: Vec<AuditRefusal>,
    /// Who the sync's entry in the server's log names.
    actor: audit::Actor,
}

/// Keeps the uploads that pass their checks, in the order of the module docs, and checks the
/// bundles for the group commit.
fn store_uploads(state: &AppState, session: &SyncSession, uploads: Uploads) -> Result<Stored, ApiError> {
    let device = &session.device;
    let needs_access = uploads.needs_access();
    let as_of_session = uploads.keeps_the_sessions_access();
    // First, so that evidence of what the device did reaches the server even when a push in
    // the same request is refused; a refused upload refuses only itself.
    let audit_refused = store_audit(state, session, uploads.audit)?;
    register_plans(state, device, &uploads.new_plans, &uploads.charters)?;
    withdraw_refused(state, device, &uploads.refused_envelopes)?;
    if !needs_access {
        // Most syncs upload nothing (a device on a live connection syncs on every hint):
        // they need only who the device is, read with the session, not every document its
        // user reads (the access of a reader of fifty plans cost PostgreSQL 0.6–0.9 ms).
        let (user, organisation) = session.user.clone().ok_or_else(ApiError::device_user_missing)?;
        let actor = crate::audit_log::actor_of(device, user, organisation);
        let checked = Checked { items: Vec::new(), rejected: Vec::new() };
        return Ok(Stored { checked, audit_refused, actor });
    }
    let (access, epochs) = Access::load(state, session, as_of_session)?;
    store_commitments(state, device, &access, uploads.commitments)?;
    store_rotations(state, device, &access, uploads.rotations)?;
    store_envelopes(state, device, &access, uploads.envelopes)?;
    let checked = check_bundles(state, device, &access, uploads.pushed, epochs)?;
    Ok(Stored { checked, audit_refused, actor: access.actor })
}

/// Hands the checked bundles to the group commit, with the begun answer, and waits until
/// their transaction has committed; what the answer acknowledges, how many bundles were new,
/// and the answer, whose facts the group may have read.
fn commit(
    state: &AppState,
    device: &DeviceRecord,
    Checked { items, mut rejected }: Checked,
    uploads: usize,
    answer: AnswerStart,
) -> Result<(Acks, usize, AnswerStart), ApiError> {
    let ids: Vec<[u8; 16]> = items.iter().map(|b| b.bundle_id).collect();
    let (outcomes, answer) = state.commits.push(items, answer).map_err(|e| match e {
        CommitError::Storage(e) => ApiError::from(e),
        CommitError::Stopped => ApiError::Unavailable {
            code: "shutting_down",
            message: "the server is shutting down; sync again shortly".into(),
        },
    })?;
    let appended = outcomes.iter().filter(|o| matches!(o, PushOutcome::Appended { .. })).count();
    let refused = outcomes.iter().filter(|o| matches!(o, PushOutcome::Refused { .. })).count();
    Metrics::add(&state.metrics.pushes_appended, appended);
    Metrics::add(&state.metrics.pushes_duplicate, outcomes.len() - appended - refused);
    Metrics::add(&state.metrics.pushes_rejected, refused);
    let mut accepted = Vec::with_capacity(ids.len());
    for (id, outcome) in ids.into_iter().zip(&outcomes) {
        match outcome {
            PushOutcome::Refused { reason } => {
                tracing::info!(device = %hex(&device.device_id.0), bundle = %hex(&id), reason, "push rejected");
                rejected.push(Rejection { bundle_id: Fixed(id), reason: (*reason).to_string() })
            }
            PushOutcome::Appended { .. } | PushOutcome::Duplicate { .. } => accepted.push(Fixed(id)),
        }
    }
    Ok((Acks::new(uploads, accepted, rejected), appended, answer))
}

/// Decodes a sync request within the device's quota and the per-list limits, before any of
/// its work is done. The body's bytes count against the quota even when it does not decode.
fn admit(state: &AppState, device: DeviceId, body: &[u8]) -> Result<SyncRequest, ApiError> {
    Metrics::add(&state.metrics.sync_bytes_in, body.len());
    charge(state, device, 0, body.len())?;
    let request: SyncRequest = sync::decode(body, MAX_SYNC_REQUEST)
        .map_err(|_| ApiError::malformed("the body is not a CBOR sync request"))?;
    if let Some(too_many) = request.too_many_items() {
        state.metrics.oversized_requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(device = %hex(&device.0), %too_many, "sync request refused");
        return Err(ApiError::TooManyItems(too_many));
    }
    charge(state, device, request.push.len() + request.push_own.len() + request.snapshots.len(), 0)?;
    Ok(request)
}

fn charge(state: &AppState, device: DeviceId, bundles: usize, bytes: usize) -> Result<(), ApiError> {
    let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    state.push_quota.charge(device, as_u64(bundles), as_u64(bytes), now_ms()).map_err(|retry_after| {
        state.metrics.quota_refusals.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(device = %hex(&device.0), ?retry_after, "push quota exceeded");
        ApiError::TooManyRequests {
            code: code::QUOTA_EXCEEDED,
            message: "this device pushed more than its hourly quota; sync again later".into(),
            retry_after,
        }
    })
}

/// The device's complaints about envelopes it could not use.
fn withdraw_refused(
    state: &AppState,
    device: &DeviceRecord,
    refused: &[RefusedEnvelope],
) -> Result<(), ApiError> {
    if refused.is_empty() {
        return Ok(());
    }
    let refusals: Vec<EnvelopeRefusal> = refused
        .iter()
        .filter_map(|r| {
            let document = DocumentId::from_bytes(&r.document.0).ok()?;
            Some(EnvelopeRefusal { document, epoch: r.epoch, sealer: DeviceId(r.sealer.0) })
        })
        .collect();
    let withdrawn = state.storage.refuse_envelopes(device.device_id, &refusals)?;
    Metrics::add(&state.metrics.envelopes_withdrawn, usize::try_from(withdrawn).unwrap_or(usize::MAX));
    if withdrawn > 0 {
        tracing::warn!(device = %hex(&device.device_id.0), withdrawn, "a device could not use envelopes sealed to it");
    }
    Ok(())
}

/// Registers the device's new plans: with the first entry of their membership chain where the
/// device sent one (every device of this build does), else as a plan without a chain.
fn register_plans(
    state: &AppState,
    device: &DeviceRecord,
    plans: &[Fixed<16>],
    charters: &[Blob],
) -> Result<(), ApiError> {
    let mut chartered = HashMap::new();
    for Blob(bytes) in charters {
        if let Ok(entry) =
            eenplan_protocol::membership::SignedEntry::from_bytes(bytes).and_then(|e| e.claimed())
        {
            chartered.insert(entry.plan.0, bytes.as_slice());
        }
    }
    for plan in plans {
        let registered = match chartered.get(&plan.0) {
            Some(charter) => {
                let plan = crate::membership::charter(state, device, plan.0, charter, now_ms())?;
                state.storage.register_chartered_plan(&plan)?
            }
            None => state.storage.register_plan(plan.0, device.user, device.device_id, now_ms())?,
        };
        if !registered {
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

fn signing_key(device: &DeviceRecord) -> Result<VerifyingKey, ApiError> {
    VerifyingKey::from_bytes(&device.signing_public)
        .map_err(|_| ApiError::Internal("a stored signing key is not an Ed25519 key".into()))
}

/// Stores the epoch-1 commitments this device made; see the module docs. A commitment that
/// fails a check is ignored (logged): the device learns through `mint` and the commitments
/// delivered with its envelopes which key won.
fn store_commitments(
    state: &AppState,
    device: &DeviceRecord,
    access: &Access,
    uploads: Vec<Blob>,
) -> Result<(), ApiError> {
    if uploads.is_empty() {
        return Ok(());
    }
    let key = signing_key(device)?;
    for Blob(bytes) in uploads {
        let (document, policy_version) = match device_commitment(&bytes, device.device_id, &key, access) {
            Ok(commitment) => commitment,
            Err(reason) => {
                tracing::info!(device = %hex(&device.device_id.0), reason, "key commitment ignored");
                continue;
            }
        };
        let record = CommitmentRecord {
            document,
            epoch: 1,
            minter_device: Some(device.device_id),
            signed: bytes,
            stored_at: now_ms(),
        };
        match state.storage.put_commitment(&record, policy_version)? {
            CommitmentOutcome::Stored => {}
            CommitmentOutcome::Exists => {
                tracing::debug!(document = %hex(&document.to_bytes()), "another device's key commitment came first");
            }
            // The device makes it again under the current policy when the document is listed
            // to mint in the answer.
            CommitmentOutcome::OtherPolicy { current } => tracing::info!(
                device = %hex(&device.device_id.0),
                named = policy_version,
                current,
                "key commitment ignored: it names another policy version than the current one"
            ),
            CommitmentOutcome::NoAccess => {
                tracing::info!(device = %hex(&device.device_id.0), "key commitment ignored: no access");
            }
        }
    }
    Ok(())
}

/// The document and named policy version of a valid epoch-1 commitment by `device`, or why it
/// is not one.
fn device_commitment(
    bytes: &[u8],
    device: DeviceId,
    key: &VerifyingKey,
    access: &Access,
) -> Result<(DocumentId, u32), &'static str> {
    let signed = SignedCommitment::from_bytes(bytes).map_err(|_| "malformed")?;
    let commitment = signed.verify(key.as_bytes()).map_err(|_| "bad_signature")?;
    if commitment.minter != Minter::Device(Fixed(device.0)) {
        return Err("not_the_minter");
    }
    // Later epochs are an administrator's, through a rekey.
    if commitment.epoch != 1 {
        return Err("not_epoch_1");
    }
    let document = commitment.document().map_err(|_| "malformed")?;
    if !access.readable.contains(&document) {
        return Err("no_access");
    }
    Ok((document, commitment.policy_version))
}

/// Stores the new epochs this device made when asked to rotate a document of a plan with a
/// membership chain ([`crate::membership::may_rotate`]): the commitment and the key sealed
/// to escrow (required) and to the device. One that fails a check is ignored (logged); the
/// device is asked again while the rotation waits.
fn store_rotations(
    state: &AppState,
    device: &DeviceRecord,
    access: &Access,
    uploads: Vec<sync::RotationUpload>,
) -> Result<(), ApiError> {
    for upload in uploads {
        match device_rotation(state, device, access, upload) {
            Ok(document) => {
                Metrics::add(&state.metrics.envelopes_stored, 2);
                state.events.hint(document);
            }
            Err(reason) => {
                tracing::info!(device = %hex(&device.device_id.0), reason, "new epoch ignored");
            }
        }
    }
    Ok(())
}

fn device_rotation(
    state: &AppState,
    device: &DeviceRecord,
    access: &Access,
    upload: sync::RotationUpload,
) -> Result<DocumentId, &'static str> {
    let signed = SignedCommitment::from_bytes(&upload.commitment.0).map_err(|_| "malformed")?;
    let commitment = signed.verify(&device.signing_public).map_err(|_| "bad_signature")?;
    if commitment.minter != Minter::Device(Fixed(device.device_id.0)) {
        return Err("not_the_minter");
    }
    let document = commitment.document().map_err(|_| "malformed")?;
    if !access.readable.contains(&document) {
        return Err("no_access");
    }
    if access.policy.as_ref().map(|p| p.version) != Some(commitment.policy_version) {
        return Err("other_policy");
    }
    crate::membership::may_rotate(state, device, &commitment).map_err(|_| "not_allowed")?;
    let envelopes: Vec<Envelope> = upload
        .envelopes
        .into_iter()
        .filter(|e| e.document.0 == document.to_bytes() && e.epoch == commitment.epoch)
        .filter(|e| e.recipient.0 == ESCROW_RECIPIENT || e.recipient.0 == device.device_id.0)
        .map(|e| Envelope {
            recipient: DeviceId(e.recipient.0),
            document,
            epoch: e.epoch,
            bytes: e.envelope.0,
        })
        .filter(|e| sealed_by(device, e))
        .collect();
    // Escrow always: an administrator can recover the plan whatever the device does next.
    if !envelopes.iter().any(|e| e.recipient.0 == ESCROW_RECIPIENT) {
        return Err("no_escrow");
    }
    let rotation = CompletedRotation {
        document,
        new_epoch: commitment.epoch,
        commitment: upload.commitment.0,
        minter_device: Some(device.device_id),
        envelopes,
        now: now_ms(),
    };
    match state.storage.complete_rotation(&rotation) {
        Ok(_) => Ok(document),
        // Another reader made it first, or the device is revoked.
        Err(StorageError::InvalidState(_) | StorageError::DeviceNotActive | StorageError::NotFound) => {
            Err("stale")
        }
        Err(_) => Err("storage"),
    }
}

/// The current epoch per document, read once per request.
type Epochs = HashMap<DocumentId, u32>;

/// A pushed bundle (or snapshot, the flag) as it decoded, in the request's order: the
/// changes, then the snapshots.
type Pushed = Vec<(Result<Bundle, Rejection>, bool)>;

/// Decodes the pushes before anything is checked, so that the epochs of their documents can
/// be read with the session ([`Uploads::epochs_read_first`]). Decoding reads nothing stored.
fn decode_pushes(push: Vec<Blob>, snapshots: Vec<Blob>) -> Pushed {
    let uploads = push.into_iter().map(|b| (b, false)).chain(snapshots.into_iter().map(|s| (s, true)));
    uploads.map(|(blob, snapshot)| (decode_bundle(blob.0), snapshot)).collect()
}

/// The documents the decoded pushes of `author` name, each once: a push by anyone else is
/// refused before its epoch matters.
fn documents_of(pushed: &Pushed, author: DeviceId) -> Vec<DocumentId> {
    let mut seen = HashSet::new();
    pushed
        .iter()
        .filter_map(|(bundle, _)| bundle.as_ref().ok().filter(|b| b.header.author == author.0))
        .map(|b| b.header.document)
        .filter(|document| seen.insert(*document))
        .collect()
}

/// Checks the decoded pushes; `epochs` holds the current epochs read so far, the others are
/// read as they are needed.
fn check_bundles(
    state: &AppState,
    device: &DeviceRecord,
    access: &Access,
    pushed: Pushed,
    mut epochs: Epochs,
) -> Result<Checked, ApiError> {
    let mut checked = Checked { items: Vec::new(), rejected: Vec::new() };
    if pushed.is_empty() {
        return Ok(checked);
    }
    let key = signing_key(device)?;
    let now = now_ms();
    for (decoded, snapshot) in pushed {
        let checks =
            decoded.and_then(|bundle| check_bundle(bundle, snapshot, device.device_id, &key, access));
        let outcome = match checks {
            Ok(bundle) => {
                let document = bundle.header.document;
                let current = match epochs.entry(document) {
                    Entry::Occupied(entry) => *entry.get(),
                    Entry::Vacant(entry) => *entry.insert(state.storage.current_epoch(document)?),
                };
                check_epoch(bundle, current)
            }
            Err(rejection) => Err(rejection),
        };
        match outcome {
            Ok(bundle) => checked.items.push(NewBundle::from_wire(bundle, now)),
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

fn reject(id: [u8; 16], reason: &str) -> Rejection {
    Rejection { bundle_id: Fixed(id), reason: reason.to_string() }
}

fn decode_bundle(bytes: Vec<u8>) -> Result<Bundle, Rejection> {
    // The id as far as the bytes go, so that even a malformed push is reported by its id.
    let claimed: [u8; 16] = eenplan_protocol::bundle::peek_id(&bytes).unwrap_or([0; 16]);
    Bundle::decode(bytes).map_err(|_| reject(claimed, "malformed"))
}

/// The checks of a decoded bundle that need neither the log nor the key epochs.
fn check_bundle(
    bundle: Bundle,
    snapshot: bool,
    device: DeviceId,
    key: &VerifyingKey,
    access: &Access,
) -> Result<Bundle, Rejection> {
    let header = bundle.header;
    let id = header.bundle_id;
    if header.kind.is_snapshot() != snapshot {
        return Err(reject(id, "wrong_kind"));
    }
    if header.author != device.0 {
        return Err(reject(id, "wrong_author"));
    }
    // Participation decides the plan, the role the compartment (a role writes only what it
    // reads, so this also keeps out what it may not read).
    if !access.plans.contains_key(&header.document.plan) {
        return Err(reject(id, "no_access"));
    }
    bundle.verify(key).map_err(|_| reject(id, "bad_signature"))?;
    if !access.may_write(header.document) {
        return Err(reject(id, REJECT_NO_WRITE));
    }
    Ok(bundle)
}

/// A key nobody committed to is refused here. An older key, or any key while the document
/// waits for a new one (a revoked device holds the current key until the rotation), is
/// refused by the writing transaction itself (`Storage::push_batch`), where a revocation that
/// commits meanwhile is seen too.
fn check_epoch(bundle: Bundle, current: u32) -> Result<Bundle, Rejection> {
    let header = &bundle.header;
    if header.epoch > current {
        return Err(reject(header.bundle_id, REJECT_UNKNOWN_EPOCH));
    }
    Ok(bundle)
}

fn store_envelopes(
    state: &AppState,
    sender: &DeviceRecord,
    access: &Access,
    uploads: Vec<EnvelopeUpload>,
) -> Result<(), ApiError> {
    if uploads.is_empty() {
        return Ok(());
    }
    let offered = uploads.len();
    let mut readers: HashMap<UserId, HashSet<DocumentId>> = HashMap::new();
    let mut devices: HashMap<DeviceId, Option<DeviceRecord>> = HashMap::new();
    let mut committed: HashMap<(DocumentId, u32), bool> = HashMap::new();
    let mut keep = Vec::new();
    for upload in uploads {
        let recipient = DeviceId(upload.recipient.0);
        let Ok(document) = DocumentId::from_bytes(&upload.document.0) else { continue };
        let envelope = Envelope { recipient, document, epoch: upload.epoch, bytes: upload.envelope.0 };
        if !access.readable.contains(&document) || !sealed_by(sender, &envelope) {
            continue;
        }
        // Only a key someone committed to (so at most the current epoch) can be handed on.
        let has_commitment = match committed.entry((document, envelope.epoch)) {
            Entry::Occupied(entry) => *entry.get(),
            Entry::Vacant(entry) => {
                *entry.insert(state.storage.commitment(document, envelope.epoch)?.is_some())
            }
        };
        if !has_commitment {
            continue;
        }
        if recipient.0 != ESCROW_RECIPIENT
            && !recipient_reads(state, &mut devices, &mut readers, recipient, document)?
        {
            continue;
        }
        keep.push(envelope);
    }
    let outcomes =
        if keep.is_empty() { Vec::new() } else { state.storage.put_envelopes(sender.device_id, &keep)? };
    // A recipient that is watching learns at once that a key arrived for it (the key may be
    // what its parked bundles wait for).
    let mut hinted = HashSet::new();
    for (envelope, outcome) in keep.iter().zip(&outcomes) {
        if *outcome == EnvelopeOutcome::Stored
            && envelope.recipient.0 != ESCROW_RECIPIENT
            && hinted.insert(envelope.document)
        {
            state.events.hint(envelope.document);
        }
    }
    let stored = outcomes.iter().filter(|o| **o == EnvelopeOutcome::Stored).count();
    let dropped = offered - stored;
    Metrics::add(&state.metrics.envelopes_stored, stored);
    Metrics::add(&state.metrics.envelopes_dropped, dropped);
    if dropped > 0 {
        tracing::info!(device = %hex(&sender.device_id.0), dropped, "key envelopes not stored");
    }
    Ok(())
}

/// Whether an envelope's signed trailer names `sender` as its sealer and carries its valid
/// signature: a recipient that cannot use an envelope names its sealer
/// ([`SyncRequest::refused_envelopes`]), so nobody may seal in another device's name.
pub(crate) fn sealed_by(sender: &DeviceRecord, envelope: &Envelope) -> bool {
    let size_ok = !envelope.bytes.is_empty() && envelope.bytes.len() <= MAX_ENVELOPE_LEN;
    let Ok((sealed, sealer, signature)) = envelope::split_signed(&envelope.bytes) else { return false };
    size_ok
        && sealer == sender.device_id.0
        && envelope::verify_signature(
            sealed,
            &signature,
            &sender.signing_public,
            envelope.document,
            envelope.epoch,
            envelope.recipient.0,
        )
        .is_ok()
}

/// Whether `recipient` is an active device, not reported wiped, whose user may read
/// `document` (looked up once per request).
fn recipient_reads(
    state: &AppState,
    devices: &mut HashMap<DeviceId, Option<DeviceRecord>>,
    readers: &mut HashMap<UserId, HashSet<DocumentId>>,
    recipient: DeviceId,
    document: DocumentId,
) -> Result<bool, ApiError> {
    let record = match devices.entry(recipient) {
        Entry::Occupied(entry) => entry.into_mut(),
        Entry::Vacant(entry) => entry.insert(state.storage.device(recipient)?),
    };
    let Some(record) = record.as_ref().filter(|r| r.state == DeviceState::Active && r.wiped_at.is_none())
    else {
        return Ok(false);
    };
    let user = record.user;
    let reads = match readers.entry(user) {
        Entry::Occupied(entry) => entry.into_mut(),
        Entry::Vacant(entry) => entry.insert(readable(state, user)?),
    };
    Ok(reads.contains(&document))
}

/// What the device asked of the answer.
struct Wanted {
    since: u64,
    policy_version: u32,
    /// The page's budget, clamped to what the server allows.
    max_bytes: usize,
    history: Vec<HistoryRequest>,
    /// The device's mailbox cursor.
    envelopes_after: u64,
    /// The device's membership cursor.
    membership_after: u64,
    /// The version of its organisation's audit key the device holds.
    audit_key_version: u32,
}

impl Wanted {
    fn new(
        since: u64,
        envelopes_after: Option<u64>,
        policy_version: u32,
        max_bytes: u32,
        history: Vec<sync::HistoryRequest>,
    ) -> Result<Wanted, ApiError> {
        if history.len() > MAX_HISTORY_REQUESTS {
            return Err(ApiError::bad_request(
                "too_many_history_requests",
                format!("at most {MAX_HISTORY_REQUESTS} history requests fit one sync request"),
            ));
        }
        let max_bytes = match usize::try_from(max_bytes).unwrap_or(usize::MAX) {
            0 => PULL_MAX_BYTES,
            asked => asked.clamp(MIN_PAGE_BYTES as usize, PULL_MAX_BYTES),
        };
        // A document id that names no compartment cannot be readable: it gets no page.
        let history = history
            .into_iter()
            .filter_map(|h| {
                Some(HistoryRequest { document: DocumentId::from_bytes(&h.document.0).ok()?, after: h.after })
            })
            .collect();
        // An older device keeps no mailbox cursor: its log cursor stands for it.
        let envelopes_after =
            envelopes_after.unwrap_or_else(|| eenplan_protocol::sync::mailbox_cursor_of_log_cursor(since));
        Ok(Wanted {
            since,
            policy_version,
            max_bytes,
            history,
            envelopes_after,
            membership_after: 0,
            audit_key_version: 0,
        })
    }
}

/// What an answer says about the request's uploads.
struct Acks {
    accepted: Vec<Fixed<16>>,
    all_accepted: bool,
    rejected: Vec<Rejection>,
}

impl Acks {
    /// When every one of the `uploads` was stored and none refused, a flag says so instead
    /// of every id; otherwise each stored one is named. The device counts only the ids it
    /// pushed, and never one listed as refused.
    fn new(uploads: usize, accepted: Vec<Fixed<16>>, rejected: Vec<Rejection>) -> Acks {
        let all_accepted = uploads > 0 && rejected.is_empty() && accepted.len() == uploads;
        let accepted = if all_accepted { Vec::new() } else { accepted };
        Acks { accepted, all_accepted, rejected }
    }
}

/// What the answer to `device` reads, for what it asked; the clock is read as the answer is
/// begun, before the commit (it only judges snapshot requests' age, in minutes).
fn answer_query(device: &DeviceRecord, wanted: Wanted) -> AnswerQuery {
    AnswerQuery {
        pull: PullRequest {
            user: device.user,
            device: device.device_id,
            since: wanted.since,
            max_bytes: wanted.max_bytes,
            max_envelopes: MAX_ENVELOPES_PER_ANSWER,
            envelopes_after: wanted.envelopes_after,
            history: wanted.history,
        },
        membership_after: wanted.membership_after,
        // Membership first: the device judges key requests and key makers by it. Half the
        // page at most, so that a slow link still gets keys and bundles in each round.
        membership_limit: (eenplan_protocol::sync::MAX_MEMBERSHIP_PER_ANSWER, wanted.max_bytes / 2),
        policy_after: wanted.policy_version,
        audit_key_after: wanted.audit_key_version,
        now: now_ms(),
    }
}

fn respond(
    state: &AppState,
    device: &DeviceRecord,
    query: AnswerQuery,
    start: AnswerStart,
    Acks { accepted, all_accepted, rejected }: Acks,
) -> Result<SyncResponse, ApiError> {
    let reads = state.storage.answer_from(&query, start)?;
    let AnswerReads {
        membership,
        batch,
        commitments,
        policy,
        missing_envelopes,
        snapshot_candidates,
        unminted,
        rotations,
        audit_through,
        audit_key,
    } = reads;
    let history_bundles: usize = batch.history.iter().map(|h| h.bundles.len()).sum();
    Metrics::add(&state.metrics.bundles_pulled, batch.bundles.len() + history_bundles);
    let (key_requests, key_requests_done) = key_requests(state, device, missing_envelopes)?;
    let complete = batch.complete
        && key_requests_done
        && membership.complete
        && batch.history.iter().all(|h| h.complete);
    // A snapshot covers the answer's head, which is a log position only in a complete answer;
    // and the device must hold everything up to it.
    let compact = if complete {
        let asked =
            state.storage.request_snapshots(device.device_id, &snapshot_candidates, batch.head, now_ms())?;
        asked.into_iter().map(|d| Fixed(d.to_bytes())).collect()
    } else {
        Vec::new()
    };
    let mint = unminted.into_iter().map(|d| Fixed(d.to_bytes())).collect();
    let rotate = rotations
        .into_iter()
        .take(eenplan_protocol::sync::MAX_ROTATE_REQUESTS)
        .map(|(d, epoch)| sync::RotateRequest { document: Fixed(d.to_bytes()), epoch })
        .collect();
    let commitments = commitments.into_iter().map(Blob).collect();
    let policy = policy.map(Blob);
    Ok(SyncResponse {
        accepted,
        all_accepted,
        rejected,
        bundles: batch.bundles.into_iter().map(|b| Blob(b.bytes)).collect(),
        head: batch.head,
        complete,
        envelopes: batch
            .envelopes
            .into_iter()
            .map(|e| EnvelopeDelivery {
                document: Fixed(e.document.to_bytes()),
                epoch: e.epoch,
                envelope: Blob(e.bytes),
            })
            .collect(),
        key_requests,
        compact,
        policy,
        commitments,
        witnesses: batch.witnesses.into_iter().map(|b| Blob(b.bytes)).collect(),
        audit_key: audit_key.map(Blob),
        audit_through,
        audit_refused: Vec::new(),
        envelopes_through: batch.envelopes_through,
        history: batch
            .history
            .into_iter()
            .map(|h| HistoryPage {
                document: Fixed(h.document.to_bytes()),
                bundles: h.bundles.into_iter().map(|b| Blob(b.bytes)).collect(),
                through: h.through,
                complete: h.complete,
            })
            .collect(),
        mint,
        membership: membership.entries.into_iter().map(Blob).collect(),
        membership_through: membership.through,
        rotate,
    })
}

/// Keeps the device's sealed access-log uploads. Each must decode within its limit, name the
/// session's device and carry that device's signature (its key as certified at approval),
/// so nobody can upload in another device's name; one that fails is refused alone, with a
/// reason code in the answer, and the sync goes on: pushes never wait on the access log.
/// A retried upload is stored once; the server cannot open any of them.
fn store_audit(
    state: &AppState,
    session: &SyncSession,
    uploads: Vec<Blob>,
) -> Result<Vec<AuditRefusal>, ApiError> {
    if uploads.is_empty() {
        return Ok(Vec::new());
    }
    let device = &session.device;
    let key = signing_key(device)?;
    let org = session.user.as_ref().ok_or_else(ApiError::device_user_missing)?.0.org;
    let mut refused = Vec::new();
    let mut keep = Vec::new();
    for (index, Blob(bytes)) in uploads.into_iter().enumerate() {
        match audit_upload(&bytes, device, &key) {
            Ok(upload) => keep.push(NewAuditUpload {
                device: device.device_id,
                org,
                first: upload.first,
                last: upload.last,
                head: upload.head.0,
                key_version: upload.key_version,
                digest: Sha256::digest(&bytes).into(),
                bytes,
                received_at: now_ms(),
            }),
            Err(reason) => {
                tracing::info!(device = %hex(&device.device_id.0), index, reason, "audit upload refused");
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                refused.push(AuditRefusal { index, reason: reason.to_string() });
            }
        }
    }
    if !keep.is_empty() {
        state.storage.put_audit_uploads(&keep)?;
    }
    Ok(refused)
}

/// One upload, checked; the refusal's reason code otherwise.
fn audit_upload(
    bytes: &[u8],
    device: &DeviceRecord,
    key: &VerifyingKey,
) -> Result<AuditUpload, &'static str> {
    if bytes.len() > audit::MAX_UPLOAD_LEN + 512 {
        return Err(audit::REFUSE_MALFORMED);
    }
    let upload = AuditUpload::from_bytes(bytes).map_err(|_| audit::REFUSE_MALFORMED)?;
    if upload.device.0 != device.device_id.0 {
        return Err(audit::REFUSE_WRONG_DEVICE);
    }
    upload.verify_signature(key).map_err(|_| audit::REFUSE_BAD_SIGNATURE)?;
    Ok(upload)
}

/// Queues the sync's entry in the server's own log: who synced, and how much was pushed and
/// delivered.
fn record_sync(state: &AppState, actor: audit::Actor, pushed: usize, response: &SyncResponse) {
    let mut draft = crate::audit_log::Draft::new(actor, AuditAction::Sync);
    draft.detail = Some(format!(
        "pushed {pushed}, delivered {}, audit through {}",
        response.bundles.len(),
        response.audit_through
    ));
    state.audit.enqueue(draft);
}

/// The documents whose logs are long that this device is now asked to snapshot, covering
/// `head`: among those it holds the current key of, the ones storage records a request for
/// (not while another device's request for the same document is outstanding, and a bounded
/// number per device). Only a requested snapshot is accepted.
type KeyRequestId = (DocumentId, u32, DeviceId);

/// Where each device stands in a round of its key requests that did not fit one answer: the
/// last one it was given. The next answers continue after it, until every request was listed
/// once; then the answer can be complete again. Kept in memory: after a restart a round starts
/// over, which costs a few repeated requests and loses nothing.
#[derive(Debug, Default)]
pub struct KeyRequestPaging(Mutex<HashMap<DeviceId, KeyRequestId>>);

impl KeyRequestPaging {
    fn mark(&self, device: DeviceId) -> Option<KeyRequestId> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(&device).copied()
    }

    fn set(&self, device: DeviceId, mark: Option<KeyRequestId>) {
        let mut marks = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match mark {
            Some(mark) => marks.insert(device, mark),
            None => marks.remove(&device),
        };
    }
}

/// For every (document, epoch) key the device holds, the devices that may read the document
/// and lack that key: at most [`MAX_KEY_REQUESTS_PER_ANSWER`] (and
/// [`MAX_KEY_REQUEST_BYTES_PER_ANSWER`]) of them, continuing where the last answer stopped.
/// True when this answer ends the round.
fn key_requests(
    state: &AppState,
    device: &DeviceRecord,
    mut pending: Vec<KeyRequestId>,
) -> Result<(Vec<KeyRequest>, bool), ApiError> {
    let mark = state.key_request_paging.mark(device.device_id);
    pending.retain(|id| id.2 != device.device_id && mark.is_none_or(|mark| *id > mark));
    pending.sort();
    let mut chains: HashMap<DeviceId, Option<Chain>> = HashMap::new();
    let mut requests = Vec::new();
    let (mut bytes, mut listed) = (0usize, 0usize);
    for (document, epoch, requester) in &pending {
        let chain = match chains.entry(*requester) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(requester_chain(state, *requester)?),
        };
        if let Some((certificate, admin_certificate)) = chain {
            let size = certificate.len() + admin_certificate.len();
            let full = requests.len() >= MAX_KEY_REQUESTS_PER_ANSWER
                || (!requests.is_empty() && bytes + size > MAX_KEY_REQUEST_BYTES_PER_ANSWER);
            if full {
                break;
            }
            bytes += size;
            requests.push(KeyRequest {
                document: Fixed(document.to_bytes()),
                epoch: *epoch,
                certificate: Blob(certificate.clone()),
                admin_certificate: Blob(admin_certificate.clone()),
            });
        }
        listed += 1;
    }
    let done = listed == pending.len();
    let mark = if done { None } else { listed.checked_sub(1).map(|last| pending[last]) };
    state.key_request_paging.set(device.device_id, mark);
    Ok((requests, done))
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
