//! The access log for administrators (DESIGN §8), every request signed:
//!
//! | request | answer |
//! |---|---|
//! | `POST /v1/admin/audit/keys` [`AuditKeyUpload`] | the organisation's next root-signed audit key stored |
//! | `GET /v1/admin/audit/keys?org=NAME` | every version, for the keyring to check against the root |
//! | `GET /v1/admin/audit/uploads?org=NAME&after=ID&limit=N&query=Q` | the sealed uploads of the organisation's devices |
//! | `GET /v1/admin/audit/server-events?after=SEQ&limit=N&query=Q` | the server's own chain |
//! | `GET /v1/admin/audit/server-key` | the key the server signs its chain with |
//!
//! The two reads of the log are recorded in the server's own log as `LogRead` *before*
//! anything is read, naming what they are for (`query`: `verify`, `plan:…`, `user:…`,
//! `device:…`) and, for a plan, the plan: a family asking who saw their file is told who read
//! the log about it too. The server cannot open an upload; it serves the bytes as stored.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use eenplan_protocol::api::{
    AuditKeyList, AuditKeyUpload, AuditQuery, AuditUploadInfo, AuditUploadPage, MAX_AUDIT_PAGE,
    ServerAuditKey, ServerEventInfo, ServerEventPage, hex, unhex,
};
use eenplan_protocol::audit::{AuditAction, MAX_AUDIT_KEY_LEN, SignedAuditKey};
use serde::Deserialize;

use super::AppState;
use super::admin::{AdminRequest, Logged};
use crate::auth::now_ms;
use crate::error::ApiError;
use crate::storage::{AuditKeyRecord, Org, StorageError};

/// The most upload bytes one page carries (hex doubles it on the wire); one upload always
/// goes, whatever its size.
const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Deserialize)]
pub struct OrgParam {
    org: String,
}

#[derive(Debug, Deserialize)]
pub struct PageParams {
    org: Option<String>,
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
    query: Option<String>,
}

impl PageParams {
    fn limit(&self) -> usize {
        self.limit.unwrap_or(MAX_AUDIT_PAGE).clamp(1, MAX_AUDIT_PAGE)
    }

    /// What the read is for, as the server's log records it.
    fn logged(&self) -> Result<Logged, ApiError> {
        let query = match self.query.as_deref() {
            None => AuditQuery::Verify,
            Some(text) => AuditQuery::parse(text).ok_or_else(|| {
                ApiError::malformed("query must be verify, plan:HEX, user:ID or device:HEX")
            })?,
        };
        let plan = match query {
            AuditQuery::Plan(plan) => Some(plan),
            _ => None,
        };
        let scope = self.org.as_ref().map_or_else(String::new, |org| format!(" org:{org}"));
        Ok(Logged { action: AuditAction::LogRead, plan, object: Some(format!("{}{scope}", query.to_text())) })
    }
}

fn params<T>(params: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    params.map(|q| q.0).map_err(|e| ApiError::malformed(e.body_text()))
}

fn org_named(state: &AppState, name: &str) -> Result<Org, ApiError> {
    state
        .storage
        .org_by_name(name)?
        .ok_or_else(|| ApiError::not_found("unknown_org", "no organisation has that name"))
}

/// `POST /v1/admin/audit/keys`: only a key the network root signed, for a known organisation,
/// at a version above the newest.
pub async fn put_key(
    State(state): State<Arc<AppState>>,
    request: AdminRequest,
) -> Result<StatusCode, ApiError> {
    request
        .run(&state, |state, _, body| {
            let upload: AuditKeyUpload = super::parse_json(body)?;
            let bytes = unhex(&upload.key)
                .filter(|b| b.len() <= MAX_AUDIT_KEY_LEN)
                .ok_or_else(|| ApiError::malformed("key must be hex of a signed audit key"))?;
            let root = state
                .storage
                .network()?
                .ok_or_else(|| ApiError::conflict("not_initialised", "the network is not initialised"))?
                .root_public;
            let key = SignedAuditKey::from_bytes(&bytes)
                .and_then(|signed| signed.verify(&root))
                .map_err(|e| ApiError::bad_request("bad_audit_key", format!("the audit key: {e}")))?;
            let org = org_named(state, &key.organisation)?;
            let record =
                AuditKeyRecord { org: org.id, version: key.version, signed: bytes, stored_at: now_ms() };
            match state.storage.put_audit_key(&record) {
                Ok(true) => Ok(StatusCode::CREATED),
                Ok(false) => Ok(StatusCode::OK),
                Err(StorageError::Conflict(_)) => Err(ApiError::conflict(
                    "audit_key_not_newer",
                    "the organisation has an audit key of this version or a newer one",
                )),
                Err(e) => Err(e.into()),
            }
        })
        .await
}

/// `GET /v1/admin/audit/keys?org=NAME`.
pub async fn keys(
    State(state): State<Arc<AppState>>,
    query: Result<Query<OrgParam>, QueryRejection>,
    request: AdminRequest,
) -> Result<Json<AuditKeyList>, ApiError> {
    let OrgParam { org } = params(query)?;
    request
        .run(&state, move |state, _, _| {
            let org = org_named(state, &org)?;
            let keys = state.storage.audit_keys(org.id)?.into_iter().map(|k| hex(&k.signed)).collect();
            Ok(Json(AuditKeyList { keys }))
        })
        .await
}

/// `GET /v1/admin/audit/uploads`: a page of the organisation's uploads after `after`, at
/// most `limit` and about [`MAX_PAGE_BYTES`].
pub async fn uploads(
    State(state): State<Arc<AppState>>,
    query: Result<Query<PageParams>, QueryRejection>,
    request: AdminRequest,
) -> Result<Json<AuditUploadPage>, ApiError> {
    let page = params(query)?;
    let logged = page.logged()?;
    let org = page.org.clone().ok_or_else(|| ApiError::malformed("org is required"))?;
    request
        .run_logged(&state, Some(logged), move |state, _, _| {
            let org = org_named(state, &org)?;
            let limit = page.limit();
            let rows = state.storage.audit_uploads(org.id, page.after, limit)?;
            let mut more = rows.len() == limit;
            let (mut uploads, mut bytes) = (Vec::new(), 0usize);
            for row in rows {
                if !uploads.is_empty() && bytes + row.bytes.len() > MAX_PAGE_BYTES {
                    more = true;
                    break;
                }
                bytes += row.bytes.len();
                uploads.push(AuditUploadInfo {
                    id: row.id,
                    device_id: hex(&row.device.0),
                    first: row.first,
                    last: row.last,
                    key_version: row.key_version,
                    received_at_ms: row.received_at,
                    upload: hex(&row.bytes),
                });
            }
            Ok(Json(AuditUploadPage { uploads, more }))
        })
        .await
}

/// `GET /v1/admin/audit/server-events`.
pub async fn server_events(
    State(state): State<Arc<AppState>>,
    query: Result<Query<PageParams>, QueryRejection>,
    request: AdminRequest,
) -> Result<Json<ServerEventPage>, ApiError> {
    let page = params(query)?;
    let logged = page.logged()?;
    request
        .run_logged(&state, Some(logged), move |state, _, _| {
            let limit = page.limit();
            let rows = state.storage.server_events(page.after, limit)?;
            let more = rows.len() == limit;
            let events =
                rows.into_iter().map(|r| ServerEventInfo { seq: r.seq, event: hex(&r.signed) }).collect();
            Ok(Json(ServerEventPage { events, more }))
        })
        .await
}

/// `GET /v1/admin/audit/server-key`: the administrator pins it at first use (see
/// `eenplan-admin audit verify`).
pub async fn server_key(
    State(state): State<Arc<AppState>>,
    request: AdminRequest,
) -> Result<Json<ServerAuditKey>, ApiError> {
    request
        .run(&state, |state, _, _| Ok(Json(ServerAuditKey { public: hex(&state.audit.public_key()) })))
        .await
}
