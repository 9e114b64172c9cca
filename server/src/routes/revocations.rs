//! The administrators' signed revocation lists (`eenplan_protocol::revocation`): stored every
//! version, served to devices and administrators as the raw signed bytes.
//!
//! ```text
//! admin:  GET  /v1/admin/revocations             ← 200 list v3 (CBOR) | 404 no_revocation_list
//! admin:  POST /v1/admin/revocations  list v4     ← 200 {"version": 4}
//! admin:  POST /v1/admin/devices/{id}/revoke …    (refused unless v4 names the device)
//! device: GET  /v1/revocations                   ← 200 list v4 (CBOR)
//! device: GET  /v1/revocations?version=3         ← 200 list v3 (CBOR)
//! ```
//!
//! The server accepts a list only if a registered administrator, certified by the root,
//! signed it, its version is the newest stored + 1, and it keeps every entry of the newest
//! one unchanged. Devices and administrators check all of that again themselves: the server
//! is never believed about revocations, it only relays them.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use eenplan_protocol::api::{RevocationListStored, code};
use eenplan_protocol::rekey::CONTENT_TYPE;
use eenplan_protocol::revocation::{MAX_REVOCATION_LIST_LEN, RevocationError, RevocationList};
use serde::Deserialize;

use super::admin::AdminRequest;
use super::device::DeviceSession;
use super::{AppState, blocking};
use crate::auth::now_ms;
use crate::error::ApiError;
use crate::storage::{AdminRecord, DeviceId, RevocationListRecord, StorageError};

#[derive(Debug, Deserialize)]
pub struct VersionQuery {
    version: Option<u32>,
}

fn list_response(state: &AppState, version: Option<u32>) -> Result<Response, ApiError> {
    match state.storage.revocation_list(version)? {
        Some((_, signed)) => Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], signed).into_response()),
        None => Err(match version {
            None => ApiError::not_found("no_revocation_list", "no device has been revoked yet"),
            Some(version) => ApiError::not_found(
                "unknown_revocation_list_version",
                format!("this network has no revocation list {version}"),
            ),
        }),
    }
}

fn version(query: Result<Query<VersionQuery>, QueryRejection>) -> Result<Option<u32>, ApiError> {
    Ok(query.map_err(|e| ApiError::malformed(e.body_text()))?.0.version)
}

/// `GET /v1/revocations[?version=N]`.
pub async fn revocations(
    State(state): State<Arc<AppState>>,
    _session: DeviceSession,
    query: Result<Query<VersionQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let version = version(query)?;
    blocking(&state, move |state| list_response(state, version)).await
}

/// `GET /v1/admin/revocations[?version=N]`.
pub async fn admin_revocations(
    State(state): State<Arc<AppState>>,
    query: Result<Query<VersionQuery>, QueryRejection>,
    request: AdminRequest,
) -> Result<Response, ApiError> {
    let version = version(query)?;
    request.run(&state, move |state, _, _| list_response(state, version)).await
}

fn bad_list(e: RevocationError) -> ApiError {
    match e {
        RevocationError::UntrustedAdministrator | RevocationError::BadSignature => {
            ApiError::forbidden("bad_revocation_signature", e.to_string())
        }
        RevocationError::OutOfScope(_) => ApiError::forbidden(code::OUT_OF_SCOPE, e.to_string()),
        RevocationError::RolledBack { .. } | RevocationError::Forked(_) => {
            ApiError::conflict("stale_revocation_list", e.to_string())
        }
        other => ApiError::bad_request("bad_revocation_list", other.to_string()),
    }
}

/// The entries `list` adds to `newest` are the uploading administrator's own (each entry is
/// signed by whoever added it), and each names its device's organisation: the list's own
/// check already refused entries outside their signer's scope.
fn check_new_entries(
    state: &AppState,
    admin: &AdminRecord,
    list: &RevocationList,
    newest: &RevocationList,
) -> Result<(), ApiError> {
    let orgs = super::admin::org_names(&state.storage.orgs()?);
    for entry in list.entries.iter().filter(|e| newest.entry_of(&e.device.0, &e.organisation).is_none()) {
        let device = eenplan_protocol::api::hex(&entry.device.0);
        if entry.admin.0 != admin.admin_public {
            return Err(ApiError::bad_request(
                "bad_revocation_list",
                format!(
                    "the new revocation of device {device} is not signed by the administrator who sends it"
                ),
            ));
        }
        let organisation = state
            .storage
            .device(DeviceId(entry.device.0))?
            .and_then(|d| state.storage.user(d.user).ok().flatten())
            .and_then(|u| orgs.get(&u.org).cloned());
        if let Some(organisation) = organisation
            && organisation != entry.organisation
        {
            return Err(ApiError::bad_request(
                "bad_revocation_list",
                format!(
                    "the revocation of device {device} names {}, not its organisation {organisation}",
                    entry.organisation
                ),
            ));
        }
        super::scope::require_org(admin, &entry.organisation)?;
    }
    Ok(())
}

/// `POST /v1/admin/revocations`: the next version, as the raw signed bytes.
pub async fn put_revocations(
    State(state): State<Arc<AppState>>,
    request: AdminRequest<MAX_REVOCATION_LIST_LEN>,
) -> Result<Json<RevocationListStored>, ApiError> {
    request
        .run(&state, |state, admin, body| {
            let root = super::rotation::network_root(state)?;
            let (list, signer) = RevocationList::verify_with_admin(body, &root).map_err(bad_list)?;
            if state.storage.admin(&signer.admin_public)?.is_none() {
                return Err(bad_list(RevocationError::UntrustedAdministrator));
            }
            let newest = match state.storage.revocation_list(None)? {
                Some((_, signed)) => RevocationList::verify(&signed, &root)
                    .map_err(|e| ApiError::Internal(format!("a stored revocation list does not verify: {e}")))?,
                None => RevocationList::none(),
            };
            list.check_extends(&newest).map_err(bad_list)?;
            check_new_entries(state, admin, &list, &newest)?;
            let record = RevocationListRecord {
                version: list.version,
                signed: body.to_vec(),
                devices: list.entries.iter().map(|e| DeviceId(e.device.0)).collect(),
            };
            match state.storage.put_revocation_list(&record, now_ms()) {
                Ok(stored) => {
                    if stored {
                        tracing::info!(version = list.version, devices = list.entries.len(), admin = %admin.name, "revocation list stored");
                    }
                    Ok(Json(RevocationListStored { version: list.version }))
                }
                Err(StorageError::Conflict(message)) => Err(ApiError::conflict("stale_revocation_list", message)),
                Err(e) => Err(e.into()),
            }
        })
        .await
}
