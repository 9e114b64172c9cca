//! What devices call besides sync: enrolment, sessions, their own certificate chain, looking
//! a user up by name, other devices' certificates, and adding participants as a regisseur.
//!
//! A device's life, from the device's side:
//!
//! ```text
//! POST /v1/enrol {code_id, signing_public, agreement_public, signature, key_mac, name?}
//!   ← {device_id, root_public, escrow_public, escrow_signature}   (device checks root vs code)
//! … an administrator approves it …
//! POST /v1/auth/challenge {device_id}                    ← {challenge}  (403 revoked: fetch the wipe order)
//! POST /v1/auth/session {device_id, challenge, signature, wipe_nonce_hash?, name?}
//!                                                         ← {token, expires_at_ms}
//!   (the server records the session's time and the nonce hash, and forgets a wipe report
//!    of the device: one that opens a session with its own key was not wiped)
//! GET  /v1/me  (Authorization: Bearer token)              ← {certificate, admin_certificate, lease_hours}
//! … an administrator changes the user's role: sessions opened before end (401
//!   certificate_changed); the next session's `certified_at_ms` is newer than the device's
//!   certificate, so it fetches /v1/me again …
//! POST /v1/sync …
//! ```

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use ed25519_dalek::{Signature, VerifyingKey};
use eenplan_protocol::api::{
    Assignment, CertificateChain, CertificateInfo, ChallengeRequest, ChallengeResponse, EnrolRequest,
    EnrolResponse, MeResponse, PATH_USER_LOOKUP, SessionRequest, SessionResponse, UserLookup, UserMatch,
    code, enrol_message, hex, unhex,
};
use eenplan_protocol::audit::AuditAction;
use eenplan_protocol::certificate::{Certificate, device_id_of};
use eenplan_protocol::device_name::{DeviceLabel, NameError, SignedDeviceName};
use eenplan_protocol::envelope::MAX_ENVELOPE_LEN;
use serde::Deserialize;

use super::{AppState, JsonBody, admin, blocking, parse_hex, parse_json};
use crate::auth::{SessionClaim, bearer, now_ms, usable};
use crate::error::ApiError;
use crate::storage::{
    CREATOR_PLAN_ROLE, DeviceId, DeviceRecord, DeviceState, NewDevice, StorageError, StoredName,
};

/// An authenticated, active device (from `Authorization: Bearer`).
#[derive(Debug, Clone)]
pub struct DeviceSession {
    pub device: DeviceRecord,
    /// When the token runs out (live connections close then).
    pub expires_at: i64,
}

impl FromRequestParts<Arc<AppState>> for DeviceSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let token = session_token(&parts.headers)?;
        session_for_token(state, token).await
    }
}

/// The session token of `Authorization: Bearer`.
pub fn session_token(headers: &HeaderMap) -> Result<String, ApiError> {
    bearer(headers).map(str::to_string).ok_or_else(|| {
        ApiError::unauthenticated("missing_token", "send Authorization: Bearer <session token>")
    })
}

pub async fn session_for_token(state: &Arc<AppState>, token: String) -> Result<DeviceSession, ApiError> {
    blocking(state, move |state| authenticate(state, &token)).await
}

/// [`session_for_token`] on a thread that may block.
fn authenticate(state: &AppState, token: &str) -> Result<DeviceSession, ApiError> {
    authenticate_claim(state, state.auth.session_claim(token, now_ms())?)
}

/// The session of a token whose tag is checked ([`crate::auth::Auth::session_claim`]), on a thread that
/// may block: the device looked up, and its use recorded.
pub fn authenticate_claim(state: &AppState, claim: SessionClaim) -> Result<DeviceSession, ApiError> {
    let now = now_ms();
    let (device, expires_at) = state.auth.claimed_session(&*state.storage, claim, now)?;
    state.last_seen.seen(&*state.storage, device.device_id, now);
    Ok(DeviceSession { device, expires_at })
}

/// [`authenticate_claim`] on the device as read already, together with what the route
/// reads with it (`None`: no such device): that read, once its device passes.
pub fn authenticate_read<T: AsRef<DeviceRecord>>(
    state: &AppState,
    claim: SessionClaim,
    read: Option<T>,
) -> Result<T, ApiError> {
    let now = now_ms();
    let (read, _expires_at) = state.auth.checked_session(read, claim, now)?;
    state.last_seen.seen(&*state.storage, read.as_ref().device_id, now);
    Ok(read)
}

/// `POST /v1/enrol`: claims an enrolment code (by its id) for a new key pair; the device is
/// pending until an administrator signs its certificate. The server keeps the device's
/// `key_mac` for the administrator to check; it can neither verify nor forge it.
pub async fn enrol(
    State(state): State<Arc<AppState>>,
    body: JsonBody,
) -> Result<Json<EnrolResponse>, ApiError> {
    let request: EnrolRequest = parse_json(&body.0)?;
    let code_id: [u8; 32] = parse_hex(&request.code_id, "code_id")?;
    let key_mac: [u8; 32] = parse_hex(&request.key_mac, "key_mac")?;
    let signing_public: [u8; 32] = parse_hex(&request.signing_public, "signing_public")?;
    let agreement_public = unhex(&request.agreement_public)
        .filter(|k| !k.is_empty() && k.len() <= MAX_ENVELOPE_LEN)
        .ok_or_else(|| ApiError::malformed("agreement_public must be a hex public key"))?;
    let signature: [u8; 64] = parse_hex(&request.signature, "signature")?;
    let key = VerifyingKey::from_bytes(&signing_public)
        .map_err(|_| ApiError::malformed("signing_public is not an Ed25519 key"))?;
    key.verify_strict(
        &enrol_message(&code_id, &signing_public, &agreement_public),
        &Signature::from_bytes(&signature),
    )
    .map_err(|_| {
        state.metrics.auth_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ApiError::unauthenticated("bad_signature", "the signature does not prove the signing key")
    })?;
    blocking(&state, move |state| {
        let network = state
            .storage
            .network()?
            .ok_or_else(|| ApiError::conflict("not_initialised", "the network is not initialised"))?;
        let device_id = DeviceId(device_id_of(&signing_public));
        let name = request.name.as_ref().map(|n| checked_name(n, device_id, &signing_public)).transpose()?;
        let device =
            NewDevice { device_id, signing_public, agreement_public, key_mac: key_mac.to_vec(), name };
        state.storage.claim_enrolment(&code_id, &device, now_ms()).map_err(|e| match e {
            StorageError::NotFound => ApiError::not_found("unknown_code", "the code is unknown or used"),
            StorageError::Expired => {
                ApiError::Gone { code: "expired_code", message: "the code has expired".into() }
            }
            StorageError::Conflict(_) => ApiError::conflict("device_exists", "this key is enrolled already"),
            other => other.into(),
        })?;
        tracing::info!(device = %hex(&device_id.0), "device enrolled, pending approval");
        Ok(Json(EnrolResponse {
            device_id: hex(&device_id.0),
            root_public: hex(&network.root_public),
            escrow_public: hex(&network.escrow_public),
            escrow_signature: hex(&network.escrow_signature),
        }))
    })
    .await
}

/// `POST /v1/auth/challenge`. Issued to any well-formed id that is not revoked: it is
/// stateless, and the session step checks the device. A revoked device hears `403 revoked`
/// here already, and fetches its wipe order (that it was revoked is no secret: the wipe order
/// endpoint tells anyone).
pub async fn challenge(
    State(state): State<Arc<AppState>>,
    body: JsonBody,
) -> Result<Json<ChallengeResponse>, ApiError> {
    let request: ChallengeRequest = parse_json(&body.0)?;
    let device = DeviceId(parse_hex(&request.device_id, "device_id")?);
    blocking(&state, move |state| {
        if let Some(record) = state.storage.device(device)?
            && record.state == DeviceState::Revoked
        {
            usable(&record)?;
        }
        Ok(Json(ChallengeResponse { challenge: state.auth.challenge(device, now_ms())? }))
    })
    .await
}

/// `POST /v1/auth/session`.
pub async fn session(
    State(state): State<Arc<AppState>>,
    body: JsonBody,
) -> Result<Json<SessionResponse>, ApiError> {
    let request: SessionRequest = parse_json(&body.0)?;
    let device = DeviceId(parse_hex(&request.device_id, "device_id")?);
    let wipe_nonce_hash: Option<[u8; 32]> =
        request.wipe_nonce_hash.as_deref().map(|h| parse_hex(h, "wipe_nonce_hash")).transpose()?;
    // A name that could never be kept refuses the session before anything is written.
    if let Some(name) = &request.name {
        DeviceLabel::parse(&name.label)
            .map_err(|e| ApiError::bad_request("invalid_device_label", e.to_string()))?;
    }
    blocking(&state, move |state| {
        let now = now_ms();
        let (token, expires_at_ms) = state.auth.open_session(
            &*state.storage,
            device,
            &request.challenge,
            &request.signature,
            wipe_nonce_hash.as_ref(),
            now,
        )?;
        let recorded = state.storage.record_session(device, wipe_nonce_hash, now)?;
        // The session's own write holds its time: the next minute of requests writes none.
        let _ = state.last_seen.due(device, now);
        if let Some(name) = &request.name {
            record_name(state, device, name)?;
        }
        if recorded.wipe_report_cleared {
            state.metrics.wipe_reports_cleared.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                device = %hex(&device.0),
                "a device reported wiped opened a session with its own key: the report was false \
                 (replayed from a copy of its files?) and is forgotten"
            );
        }
        // The start of the device's current certificate: a device holding an older one
        // fetches it (its role changed).
        let record = state.storage.device(device)?;
        // The session is open by now: a failure to name the device is logged, not the session's.
        match record.as_ref().map(|r| crate::audit_log::device_actor(&*state.storage, r)) {
            Some(Ok(actor)) => state.audit.enqueue(crate::audit_log::Draft::new(actor, AuditAction::Session)),
            Some(Err(e)) => tracing::error!(error = %e, "a session was not recorded in the server's log"),
            None => {}
        }
        let certified_at_ms = record
            .and_then(|record| record.certificate)
            .and_then(|bytes| Certificate::from_bytes(&bytes).and_then(|c| c.claimed_device_body()).ok())
            .map_or(0, |body| body.valid_from_ms);
        Ok(Json(SessionResponse { token, expires_at_ms, certified_at_ms, server_time_ms: now_ms() }))
    })
    .await
}

/// A device's signed name, checked: a valid name signed by the device's own key.
fn checked_name(
    name: &SignedDeviceName,
    device: DeviceId,
    signing_public: &[u8; 32],
) -> Result<StoredName, ApiError> {
    let signature = unhex(&name.signature).unwrap_or_default();
    match name.verify(&device.0, signing_public) {
        Ok(label) => Ok(StoredName {
            label: label.as_str().to_owned(),
            platform: name.platform.as_str().to_owned(),
            signature,
        }),
        Err(NameError::Label(e)) => Err(ApiError::bad_request("invalid_device_label", e.to_string())),
        Err(NameError::BadSignature) => {
            Err(ApiError::unauthenticated("bad_signature", "the device name is not signed by the device"))
        }
    }
}

/// Keeps the name a device reported at its session, when it differs from the one held (so a
/// session that says nothing new writes nothing more).
fn record_name(state: &AppState, device: DeviceId, name: &SignedDeviceName) -> Result<(), ApiError> {
    let record = state
        .storage
        .device(device)?
        .ok_or_else(|| ApiError::unauthenticated("unknown_device", "unknown device"))?;
    let checked = checked_name(name, device, &record.signing_public)?;
    if record.name.as_ref() != Some(&checked) {
        state.storage.record_device_name(device, &checked)?;
    }
    Ok(())
}

/// A device's certificate and the certificate of the administrator who signed it.
pub fn certificate_chain(state: &AppState, device: &DeviceRecord) -> Result<(Vec<u8>, Vec<u8>), ApiError> {
    let certificate = device
        .certificate
        .clone()
        .ok_or_else(|| ApiError::not_found("no_certificate", "the device has no certificate yet"))?;
    let issuer = Certificate::from_bytes(&certificate)
        .and_then(|c| c.claimed_device_body())
        .map_err(|e| ApiError::Internal(format!("a stored device certificate does not decode: {e}")))?
        .issuer;
    let admin = state.storage.admin(&issuer)?.ok_or_else(|| {
        ApiError::Internal("the administrator who signed a device certificate is unknown".into())
    })?;
    Ok((certificate, admin.certificate))
}

/// The offline lease of the device's organisation.
pub(super) fn lease_hours(state: &AppState, device: &DeviceRecord) -> Result<u32, ApiError> {
    let user = state.storage.user(device.user)?.ok_or_else(ApiError::device_user_missing)?;
    state
        .storage
        .org(user.org)?
        .map(|o| o.lease_hours)
        .ok_or_else(|| ApiError::Internal("a user's organisation is missing".into()))
}

/// `GET /v1/me`.
pub async fn me(
    State(state): State<Arc<AppState>>,
    session: DeviceSession,
) -> Result<Json<MeResponse>, ApiError> {
    blocking(&state, move |state| {
        let (certificate, admin_certificate) = certificate_chain(state, &session.device)?;
        let lease_hours = lease_hours(state, &session.device)?;
        Ok(Json(MeResponse {
            certificate: hex(&certificate),
            admin_certificate: hex(&admin_certificate),
            lease_hours,
        }))
    })
    .await
}

/// `GET /v1/users`, once the whole user directory for every device, is gone: a device that
/// may add someone to a plan knows their name and looks it up ([`lookup_users`]).
pub async fn users() -> ApiError {
    ApiError::Gone {
        code: code::DIRECTORY_REMOVED,
        message: format!("the user directory is not listed; look a user up by name at {PATH_USER_LOOKUP}"),
    }
}

/// `POST /v1/users/lookup`: the users with exactly the name asked for (usually one; two
/// organisations may each have one of that name), with what adding one to a plan needs. A
/// device learns nothing about a name it did not already know.
pub async fn lookup_users(
    State(state): State<Arc<AppState>>,
    _session: DeviceSession,
    body: JsonBody,
) -> Result<Json<Vec<UserMatch>>, ApiError> {
    let lookup: UserLookup = parse_json(&body.0)?;
    admin::check_name(&lookup.name, "name")?;
    blocking(&state, move |state| {
        let orgs = admin::org_names(&state.storage.orgs()?);
        let mut found = Vec::new();
        for user in state.storage.user_by_name(&lookup.name)? {
            // Certified, active devices only: the asker verifies one and names the user by it.
            let mut devices = Vec::new();
            for device in state.storage.devices_of_user(user.id)? {
                if device.state == DeviceState::Active && device.certificate.is_some() {
                    let (certificate, admin_certificate) = certificate_chain(state, &device)?;
                    devices.push(CertificateChain {
                        certificate: hex(&certificate),
                        admin_certificate: hex(&admin_certificate),
                    });
                }
            }
            found.push(UserMatch {
                id: user.id.0,
                org: orgs.get(&user.org).cloned().unwrap_or_default(),
                name: user.name,
                devices,
            });
        }
        Ok(Json(found))
    })
    .await
}

#[derive(Debug, Deserialize)]
pub struct CertificateQuery {
    device: String,
}

/// `GET /v1/certificates?device=HEX`: the chain of an active or revoked device, so receivers
/// can verify the author of a bundle.
pub async fn certificates(
    State(state): State<Arc<AppState>>,
    _session: DeviceSession,
    query: Result<Query<CertificateQuery>, QueryRejection>,
) -> Result<Json<CertificateInfo>, ApiError> {
    let query = query.map_err(|e| ApiError::malformed(e.body_text()))?.0;
    let device = DeviceId(parse_hex(&query.device, "device")?);
    blocking(&state, move |state| {
        let unknown = || ApiError::not_found("unknown_device", "no approved device has that id");
        let record = state.storage.device(device)?.ok_or_else(unknown)?;
        if record.state == DeviceState::Pending {
            return Err(unknown());
        }
        let (certificate, admin_certificate) = certificate_chain(state, &record)?;
        let mut older = Vec::new();
        for bytes in state.storage.older_certificates(device)? {
            let (certificate, admin_certificate) =
                certificate_chain(state, &DeviceRecord { certificate: Some(bytes), ..record.clone() })?;
            older.push(CertificateChain {
                certificate: hex(&certificate),
                admin_certificate: hex(&admin_certificate),
            });
        }
        Ok(Json(CertificateInfo {
            certificate: hex(&certificate),
            admin_certificate: hex(&admin_certificate),
            lease_hours: lease_hours(state, &record)?,
            revoked_at_ms: record.revoked_at,
            older,
        }))
    })
    .await
}

/// `POST /v1/plans/{plan}/participants`: a plan's regisseur adds a participant.
pub async fn add_participant(
    State(state): State<Arc<AppState>>,
    session: DeviceSession,
    Path(plan): Path<String>,
    body: JsonBody,
) -> Result<StatusCode, ApiError> {
    let plan: [u8; 16] = parse_hex(&plan, "the plan id")?;
    let assignment: Assignment = parse_json(&body.0)?;
    blocking(&state, move |state| {
        if crate::membership::roster(state, plan)?.is_some() {
            return Err(ApiError::conflict(
                "membership_signed",
                "this plan's participants change only through its signed membership chain",
            ));
        }
        let regisseur = state
            .storage
            .participants(plan)?
            .iter()
            .any(|p| p.user == session.device.user && p.plan_role == CREATOR_PLAN_ROLE);
        if !regisseur {
            return Err(ApiError::forbidden(
                "not_regisseur",
                "only the plan's regisseur may add participants",
            ));
        }
        admin::assign(state, plan, &assignment)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
