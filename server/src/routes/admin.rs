//! The administrator API: every request is signed by an administrator's key (see
//! [`crate::auth`]), and the first one, `POST /v1/admin/init`, tells a fresh server which
//! network root it serves.
//!
//! A new device goes through three calls:
//!
//! ```text
//! admin:  POST /v1/admin/enrolments {user_id, code_id, expires_at_ms}     → 204
//! device: POST /v1/enrol {code_id, keys, signature, key_mac}              → pending device
//! admin:  GET  /v1/admin/devices?state=pending                            → [DeviceInfo]
//! admin:  POST /v1/admin/devices/{id}/certificate {certificate}           → active device
//! ```
//!
//! The server cannot mint a certificate: it checks the one an administrator signed (through
//! that administrator's root-signed certificate to the pinned root) and that it names exactly
//! the keys and the user of the pending device, then stores it. Nor can it register keys of
//! its own under an enrolment code: the administrator approves only a device whose `key_mac`
//! (which takes the code's secret to compute) verifies; see `eenplan_protocol::api`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, OriginalUri, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use ed25519_dalek::{Signature, VerifyingKey};
use eenplan_protocol::api::{
    Assignment, CertificateUpload, DeviceInfo, InitRequest, NewAdmin, NewEnrolment, NewOrg, NewUser, OrgInfo,
    UserInfo, UserPlan, UserPlans, code, escrow_message, hex, unhex,
};
use eenplan_protocol::audit::{AuditAction, AuditResult};
use eenplan_protocol::certificate::{Certificate, CertificateError, DeviceBody};
use eenplan_protocol::device_name::Platform;
use eenplan_protocol::envelope::MAX_ENVELOPE_LEN;
use serde::Deserialize;

use super::{AppState, blocking, parse_hex, parse_json};
use crate::audit_log::Draft;
use crate::auth::{SignedRequest, now_ms};
use crate::error::ApiError;
use crate::storage::{
    AdminRecord, DeviceId, DeviceRecord, DeviceState, NetworkRecord, Org, OrgId, StorageError, User, UserId,
};

/// Longest organisation, user and role name (as the device's one-line fields).
const MAX_NAME_CHARS: usize = 200;
/// The longest offline lease an organisation may give its devices: a year.
const MAX_LEASE_HOURS: u32 = 24 * 366;

/// An admin request as the signature covers it: method, path with query, headers, body (of
/// at most `LIMIT` bytes: JSON bodies by default, larger CBOR bodies where a route says so).
#[derive(Debug)]
pub struct AdminRequest<const LIMIT: usize = { super::MAX_JSON_REQUEST }> {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: axum::body::Bytes,
}

impl<S: Send + Sync, const LIMIT: usize> FromRequest<S> for AdminRequest<LIMIT> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let method = request.method().clone();
        let headers = request.headers().clone();
        // The URI as the client sent it (no router nesting rewrites it).
        let uri = request
            .extensions()
            .get::<OriginalUri>()
            .map_or_else(|| request.uri().clone(), |original| original.0.clone());
        let path = uri.path_and_query().map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string());
        let super::Body(body) = super::Body::<LIMIT>::from_request(request, state).await?;
        Ok(AdminRequest { method, path, headers, body })
    }
}

impl<const LIMIT: usize> AdminRequest<LIMIT> {
    fn signed(&self) -> SignedRequest<'_> {
        SignedRequest {
            method: self.method.as_str(),
            path: &self.path,
            headers: &self.headers,
            body: &self.body,
        }
    }

    /// Checks the signature, then runs `f` with the administrator and the body; the server's
    /// log records the request (`AdminRequest`, its method and path) with its outcome.
    pub(super) async fn run<T, F>(self, state: &Arc<AppState>, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&AppState, &AdminRecord, &[u8]) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        self.run_logged(state, None, f).await
    }

    /// As [`AdminRequest::run`], recorded as `logged` says. The event is durable before the
    /// answer; a read of the access log is recorded before anything is read, so nobody reads
    /// the log without the log saying so.
    pub(super) async fn run_logged<T, F>(
        self,
        state: &Arc<AppState>,
        logged: Option<Logged>,
        f: F,
    ) -> Result<T, ApiError>
    where
        F: FnOnce(&AppState, &AdminRecord, &[u8]) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        blocking(state, move |state| {
            let admin = state.auth.admin(&*state.storage, &self.signed(), now_ms())?;
            let path = self.path.split('?').next().unwrap_or_default();
            let logged = logged.unwrap_or_else(|| Logged::request(self.method.as_str(), path));
            if logged.action == AuditAction::LogRead {
                state.audit.record(logged.draft(&admin, AuditResult::Done, None))?;
                return f(state, &admin, &self.body);
            }
            let out = f(state, &admin, &self.body);
            let (result, detail) = match &out {
                Ok(_) => (AuditResult::Done, None),
                Err(e @ (ApiError::Forbidden { .. } | ApiError::Unauthenticated { .. })) => {
                    (AuditResult::Refused, Some(e.body().code))
                }
                Err(e) => (AuditResult::Failed, Some(e.body().code)),
            };
            state.audit.record(logged.draft(&admin, result, detail))?;
            out
        })
        .await
    }
}

/// What the server's log records of an administrator's request.
#[derive(Debug, Clone)]
pub struct Logged {
    pub action: AuditAction,
    pub plan: Option<[u8; 16]>,
    pub object: Option<String>,
}

impl Logged {
    fn request(method: &str, path: &str) -> Logged {
        Logged { action: AuditAction::AdminRequest, plan: None, object: Some(format!("{method} {path}")) }
    }

    fn draft(&self, admin: &AdminRecord, result: AuditResult, detail: Option<String>) -> Draft {
        let mut draft = Draft::new(crate::audit_log::admin_actor(&admin.name), self.action);
        draft.plan = self.plan;
        draft.object = self.object.clone();
        draft.result = result;
        draft.detail = detail;
        draft
    }
}

/// `POST /v1/admin/init`: once per server, and only with the one-time init secret the server
/// wrote to its data directory (see [`crate::init_secret`]): a fresh server is not the first
/// caller's to claim. The network's first sharing policy comes with it (signed by the same
/// root), so the server never serves without one.
pub async fn init(State(state): State<Arc<AppState>>, request: AdminRequest) -> Result<StatusCode, ApiError> {
    blocking(&state, move |state| {
        if state.storage.network()?.is_some() {
            return Err(already_initialised());
        }
        let init: InitRequest = parse_json(&request.body)?;
        if !state.init_secret_matches(&init.init_secret) {
            state.metrics.auth_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(ApiError::forbidden(
                code::BAD_INIT_SECRET,
                "the init request must carry the init secret from the server's data directory \
                 (the file init-secret)",
            ));
        }
        let root_public: [u8; 32] = parse_hex(&init.root_public, "root_public")?;
        let root = VerifyingKey::from_bytes(&root_public)
            .map_err(|_| ApiError::malformed("root_public is not an Ed25519 key"))?;
        let escrow_public = unhex(&init.escrow_public)
            .filter(|k| !k.is_empty() && k.len() <= MAX_ENVELOPE_LEN)
            .ok_or_else(|| ApiError::malformed("escrow_public must be a hex public key"))?;
        let escrow_signature: [u8; 64] = parse_hex(&init.escrow_signature, "escrow_signature")?;
        root.verify_strict(&escrow_message(&escrow_public), &Signature::from_bytes(&escrow_signature))
            .map_err(|_| {
                ApiError::bad_request("bad_escrow_signature", "the root did not sign this escrow key")
            })?;
        let certificate = unhex(&init.admin_certificate)
            .ok_or_else(|| ApiError::malformed("admin_certificate must be hex"))?;
        let admin = Certificate::from_bytes(&certificate)
            .and_then(|c| c.verify_admin(&root_public))
            .map_err(|e| ApiError::bad_request("bad_certificate", format!("the admin certificate: {e}")))?;
        let policy = super::rotation::verified_policy(&init.policy, &root_public)?;
        state.auth.init_request(&request.signed(), &root_public, &admin.admin_public, now_ms())?;
        let network =
            NetworkRecord { root_public, escrow_public, escrow_signature: escrow_signature.to_vec() };
        let first_admin =
            AdminRecord { admin_public: admin.admin_public, certificate, name: admin.name.clone() };
        match state.storage.init_network(&network, &first_admin, &policy) {
            Ok(()) => {
                state.consume_init_secret();
                let mut draft =
                    Draft::new(crate::audit_log::admin_actor(&admin.name), AuditAction::AdminRequest);
                draft.object = Some(format!("POST {}", eenplan_protocol::api::PATH_ADMIN_INIT));
                state.audit.record(draft)?;
                tracing::info!(admin = %admin.name, "network initialised");
                Ok(StatusCode::NO_CONTENT)
            }
            Err(StorageError::AlreadyInitialised) => Err(already_initialised()),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

fn already_initialised() -> ApiError {
    ApiError::conflict("already_initialised", "the network is already initialised")
}

/// `POST /v1/admin/admins`: another administrator, certified by the root. Only a
/// network-wide administrator registers one (the root signed the certificate; the caller
/// vouches that this network's server should know it). Registering it again is a no-op.
pub async fn add_admin(
    State(state): State<Arc<AppState>>,
    request: AdminRequest,
) -> Result<StatusCode, ApiError> {
    request
        .run(&state, |state, admin, body| {
            super::scope::require_network_wide(admin)?;
            let new: NewAdmin = parse_json(body)?;
            let certificate =
                unhex(&new.certificate).ok_or_else(|| ApiError::malformed("certificate must be hex"))?;
            let root = super::rotation::network_root(state)?;
            let body = Certificate::from_bytes(&certificate)
                .and_then(|c| c.verify_admin(&root))
                .map_err(|e| ApiError::bad_request("bad_certificate", format!("the admin certificate: {e}")))?;
            check_name(&body.name, "name")?;
            if let Some(organisation) = &body.organisation
                && state.storage.org_by_name(organisation)?.is_none()
            {
                return Err(ApiError::not_found("unknown_org", "no organisation has that name"));
            }
            let record = AdminRecord { admin_public: body.admin_public, certificate, name: body.name.clone() };
            match state.storage.add_admin(&record) {
                Ok(()) => {
                    tracing::info!(admin = %body.name, scope = %body.scope(), by = %admin.name, "administrator added");
                    Ok(StatusCode::CREATED)
                }
                Err(StorageError::Conflict(_)) => Ok(StatusCode::OK),
                Err(e) => Err(e.into()),
            }
        })
        .await
}

/// `POST /v1/admin/orgs`.
pub async fn add_org(
    State(state): State<Arc<AppState>>,
    request: AdminRequest,
) -> Result<(StatusCode, Json<OrgInfo>), ApiError> {
    request
        .run(&state, |state, admin, body| {
            super::scope::require_network_wide(admin)?;
            let new: NewOrg = parse_json(body)?;
            check_name(&new.name, "name")?;
            if new.lease_hours == 0 || new.lease_hours > MAX_LEASE_HOURS {
                return Err(ApiError::malformed(format!("lease_hours must be 1 to {MAX_LEASE_HOURS}")));
            }
            let id = state.storage.add_org(&new.name, new.lease_hours).map_err(|e| match e {
                StorageError::Conflict(_) => {
                    ApiError::conflict("org_exists", "an organisation with that name exists")
                }
                other => other.into(),
            })?;
            Ok((
                StatusCode::CREATED,
                Json(OrgInfo { id: id.0, name: new.name, lease_hours: new.lease_hours }),
            ))
        })
        .await
}

/// `GET /v1/admin/orgs`.
pub async fn orgs(
    State(state): State<Arc<AppState>>,
    request: AdminRequest,
) -> Result<Json<Vec<OrgInfo>>, ApiError> {
    request
        .run(&state, |state, _, _| {
            let orgs = state.storage.orgs()?;
            Ok(Json(
                orgs.into_iter()
                    .map(|o| OrgInfo { id: o.id.0, name: o.name, lease_hours: o.lease_hours })
                    .collect(),
            ))
        })
        .await
}

/// `POST /v1/admin/users`.
pub async fn add_user(
    State(state): State<Arc<AppState>>,
    request: AdminRequest,
) -> Result<(StatusCode, Json<UserInfo>), ApiError> {
    request
        .run(&state, |state, admin, body| {
            let new: NewUser = parse_json(body)?;
            check_name(&new.name, "name")?;
            check_name(&new.role, "role")?;
            super::scope::require_org(admin, &new.org)?;
            let org = state
                .storage
                .org_by_name(&new.org)?
                .ok_or_else(|| ApiError::not_found("unknown_org", "no organisation has that name"))?;
            let id = state.storage.add_user(org.id, &new.name, &new.role).map_err(|e| match e {
                StorageError::Conflict(_) => {
                    ApiError::conflict("user_exists", "the organisation already has a user with that name")
                }
                StorageError::NotFound => ApiError::not_found("unknown_org", "no organisation has that name"),
                other => other.into(),
            })?;
            Ok((
                StatusCode::CREATED,
                Json(UserInfo { id: id.0, org: org.name, name: new.name, role: new.role }),
            ))
        })
        .await
}

/// `GET /v1/admin/users`.
pub async fn users(
    State(state): State<Arc<AppState>>,
    request: AdminRequest,
) -> Result<Json<Vec<UserInfo>>, ApiError> {
    request.run(&state, |state, _, _| Ok(Json(user_directory(state)?))).await
}

/// Every user with their organisation's name: for administrators only.
fn user_directory(state: &AppState) -> Result<Vec<UserInfo>, ApiError> {
    let orgs = org_names(&state.storage.orgs()?);
    Ok(state.storage.users()?.into_iter().map(|u| user_info(u, &orgs)).collect())
}

pub(super) fn org_names(orgs: &[Org]) -> HashMap<OrgId, String> {
    orgs.iter().map(|o| (o.id, o.name.clone())).collect()
}

fn user_info(user: User, orgs: &HashMap<OrgId, String>) -> UserInfo {
    UserInfo {
        id: user.id.0,
        org: orgs.get(&user.org).cloned().unwrap_or_default(),
        name: user.name,
        role: user.role,
    }
}

/// `GET /v1/admin/users/{id}/plans`: the plans the user takes part in by the server's
/// records, for offboarding (the administrator checks each plan's chain itself).
pub async fn user_plans(
    State(state): State<Arc<AppState>>,
    Path(user): Path<i64>,
    request: AdminRequest,
) -> Result<Json<UserPlans>, ApiError> {
    request
        .run(&state, move |state, _, _| {
            let user = UserId(user);
            if state.storage.user(user)?.is_none() {
                return Err(ApiError::not_found("unknown_user", "no user has that id"));
            }
            let mut plans = Vec::new();
            for plan in state.storage.plans_of_user(user)? {
                let role = state.storage.participants(plan)?.into_iter().find(|p| p.user == user);
                // Removed between the two reads: no longer the user's plan.
                let Some(participant) = role else { continue };
                plans.push(UserPlan {
                    plan: hex(&plan),
                    plan_role: participant.plan_role,
                    chained: state.storage.roster(plan)?.is_some(),
                });
            }
            Ok(Json(UserPlans { user_id: user.0, plans }))
        })
        .await
}

/// `POST /v1/admin/enrolments`.
pub async fn add_enrolment(
    State(state): State<Arc<AppState>>,
    request: AdminRequest,
) -> Result<StatusCode, ApiError> {
    request
        .run(&state, |state, admin, body| {
            let new: NewEnrolment = parse_json(body)?;
            super::scope::require_user(state, admin, UserId(new.user_id))?;
            let code_id: [u8; 32] = parse_hex(&new.code_id, "code_id")?;
            if new.expires_at_ms <= now_ms() {
                return Err(ApiError::malformed("expires_at_ms is in the past"));
            }
            state.storage.create_enrolment(&code_id, UserId(new.user_id), new.expires_at_ms).map_err(
                |e| match e {
                    StorageError::NotFound => ApiError::not_found("unknown_user", "no user has that id"),
                    StorageError::Conflict(_) => {
                        ApiError::conflict("enrolment_exists", "that enrolment code exists")
                    }
                    other => other.into(),
                },
            )?;
            Ok(StatusCode::NO_CONTENT)
        })
        .await
}

#[derive(Debug, Deserialize)]
pub struct DeviceFilter {
    state: Option<String>,
}

/// `GET /v1/admin/devices[?state=pending|active|revoked]`.
pub async fn devices(
    State(state): State<Arc<AppState>>,
    filter: Result<Query<DeviceFilter>, QueryRejection>,
    request: AdminRequest,
) -> Result<Json<Vec<DeviceInfo>>, ApiError> {
    let filter = filter.map_err(|e| ApiError::malformed(e.body_text()))?.0;
    let wanted = match filter.state.as_deref() {
        None => None,
        Some(text) => Some(
            DeviceState::parse(text)
                .ok_or_else(|| ApiError::malformed("state must be pending, active or revoked"))?,
        ),
    };
    request
        .run(&state, move |state, _, _| {
            let devices = match wanted {
                Some(DeviceState::Pending) => state.storage.pending_devices()?,
                _ => state.storage.devices()?,
            };
            let devices = devices.into_iter().filter(|d| wanted.is_none_or(|w| d.state == w));
            let orgs = org_names(&state.storage.orgs()?);
            let users: HashMap<UserId, User> =
                state.storage.users()?.into_iter().map(|u| (u.id, u)).collect();
            let mut out = Vec::new();
            for device in devices {
                let mut info = device_info(&device, &users, &orgs);
                if device.certificate.is_some() {
                    let (certificate, admin_certificate) = super::device::certificate_chain(state, &device)?;
                    info.certificate = hex(&certificate);
                    info.admin_certificate = hex(&admin_certificate);
                }
                out.push(info);
            }
            Ok(Json(out))
        })
        .await
}

fn device_info(
    device: &DeviceRecord,
    users: &HashMap<UserId, User>,
    orgs: &HashMap<OrgId, String>,
) -> DeviceInfo {
    let user = users.get(&device.user);
    DeviceInfo {
        device_id: hex(&device.device_id.0),
        user_id: device.user.0,
        user_name: user.map(|u| u.name.clone()).unwrap_or_default(),
        org: user.and_then(|u| orgs.get(&u.org)).cloned().unwrap_or_default(),
        role: user.map(|u| u.role.clone()).unwrap_or_default(),
        // A wiped device is revoked or dead by its own hand; the report is what counts.
        state: if device.wiped_at.is_some() { "wiped" } else { device.state.as_str() }.to_string(),
        signing_public: hex(&device.signing_public),
        agreement_public: hex(&device.agreement_public),
        key_mac: hex(&device.key_mac),
        created_at_ms: device.created_at,
        label: device.name.as_ref().map(|n| n.label.clone()).unwrap_or_default(),
        platform: device.name.as_ref().and_then(|n| Platform::parse(&n.platform)),
        label_signature: device.name.as_ref().map(|n| hex(&n.signature)).unwrap_or_default(),
        enrolled_at_ms: device.created_at,
        last_seen_ms: device.last_seen(),
        revoked_at_ms: device.revoked_at,
        wiped_at_ms: device.wiped_at,
        certificate: String::new(),
        admin_certificate: String::new(),
    }
}

/// `POST /v1/admin/devices/{id}/certificate`: approves a pending device.
pub async fn approve_device(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    request: AdminRequest,
) -> Result<Json<DeviceInfo>, ApiError> {
    let id = DeviceId(parse_hex(&id, "the device id")?);
    request
        .run(&state, move |state, admin, body| {
            let upload: CertificateUpload = parse_json(body)?;
            let record = state
                .storage
                .device(id)?
                .ok_or_else(|| ApiError::not_found("unknown_device", "no device has that id"))?;
            super::scope::require_user(state, admin, record.user)?;
            if record.state != DeviceState::Pending {
                return Err(ApiError::conflict(
                    "device_not_pending",
                    format!("the device is {}, not pending", record.state.as_str()),
                ));
            }
            let bytes =
                unhex(&upload.certificate).ok_or_else(|| ApiError::malformed("certificate must be hex"))?;
            device_certificate(state, admin, &bytes, &record)?;
            state.storage.activate_device(id, &bytes)?;
            tracing::info!(device = %hex(&id.0), admin = %admin.name, "device approved");
            let orgs = org_names(&state.storage.orgs()?);
            let users: HashMap<UserId, User> =
                state.storage.user(record.user)?.into_iter().map(|u| (u.id, u)).collect();
            let record = DeviceRecord { state: DeviceState::Active, certificate: Some(bytes), ..record };
            Ok(Json(device_info(&record, &users, &orgs)))
        })
        .await
}

/// Checks a device certificate an administrator uploads: signed by that administrator,
/// through the root, valid now, and naming exactly `record`'s device, keys and user.
pub(super) fn device_certificate(
    state: &AppState,
    admin: &AdminRecord,
    bytes: &[u8],
    record: &DeviceRecord,
) -> Result<DeviceBody, ApiError> {
    let network = state.storage.network()?.ok_or_else(|| ApiError::Internal("no network".into()))?;
    let bad = |e: String| ApiError::bad_request("bad_certificate", e);
    let certificate = Certificate::from_bytes(bytes).map_err(|e| bad(e.to_string()))?;
    let admin_certificate = Certificate::from_bytes(&admin.certificate)
        .map_err(|e| ApiError::Internal(format!("stored admin certificate: {e}")))?;
    let body = certificate.verify_device(&admin_certificate, &network.root_public, now_ms()).map_err(
        |e| match (e, &admin_certificate.claimed_admin_body()) {
            (CertificateError::OutOfScope, Ok(issuer)) => super::scope::out_of_scope(
                issuer.organisation.as_deref().unwrap_or_default(),
                &certificate.claimed_device_body().map(|b| b.organisation).unwrap_or_default(),
            ),
            (e, _) => bad(e.to_string()),
        },
    )?;
    if body.device_id != record.device_id.0
        || body.signing_public != record.signing_public
        || body.agreement_public != record.agreement_public
        || body.user_id != record.user.0
        || Some(&body.organisation) != user_org(state, record)?.as_ref()
    {
        return Err(ApiError::bad_request(
            "certificate_mismatch",
            "the certificate does not name this device's keys and user",
        ));
    }
    Ok(body)
}

/// The name of the organisation of `device`'s user.
fn user_org(state: &AppState, device: &DeviceRecord) -> Result<Option<String>, ApiError> {
    let Some(user) = state.storage.user(device.user)? else { return Ok(None) };
    Ok(state.storage.org(user.org)?.map(|o| o.name))
}

/// `POST /v1/admin/plans/{plan}/participants`.
pub async fn add_participant(
    State(state): State<Arc<AppState>>,
    Path(plan): Path<String>,
    request: AdminRequest,
) -> Result<StatusCode, ApiError> {
    let plan: [u8; 16] = parse_hex(&plan, "the plan id")?;
    request
        .run(&state, move |state, admin, body| {
            let assignment: Assignment = parse_json(body)?;
            super::scope::require_user(state, admin, UserId(assignment.user_id))?;
            assign(state, plan, &assignment)?;
            Ok(StatusCode::NO_CONTENT)
        })
        .await
}

/// Makes a user a participant of a plan (administrators and regisseurs alike).
pub fn assign(state: &AppState, plan: [u8; 16], assignment: &Assignment) -> Result<(), ApiError> {
    check_name(&assignment.role, "role")?;
    refuse_chartered(state, plan)?;
    let user = UserId(assignment.user_id);
    if state.storage.user(user)?.is_none() {
        return Err(ApiError::not_found("unknown_user", "no user has that id"));
    }
    state.storage.add_participant(plan, user, &assignment.role).map_err(|e| match e {
        StorageError::NotFound => ApiError::not_found("unknown_plan", "no plan has that id"),
        other => other.into(),
    })?;
    // The new participant's devices that are online sync at once and get the plan's history;
    // each live connection passes on only the hints of documents its device may read.
    state.events.hint_plan(plan);
    Ok(())
}

/// A plan with a signed membership chain changes participants only through the chain, so
/// that every device can check who takes part.
pub(super) fn refuse_chartered(state: &AppState, plan: [u8; 16]) -> Result<(), ApiError> {
    match crate::membership::roster(state, plan) {
        Ok(Some(_)) => Err(ApiError::conflict(
            "membership_signed",
            "this plan's participants change only through its signed membership chain",
        )),
        Ok(None) | Err(ApiError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

pub(super) fn check_name(text: &str, what: &str) -> Result<(), ApiError> {
    if text.trim().is_empty() || text.chars().count() > MAX_NAME_CHARS || text.chars().any(char::is_control) {
        return Err(ApiError::malformed(format!(
            "{what} must be 1 to {MAX_NAME_CHARS} characters without control characters"
        )));
    }
    Ok(())
}
