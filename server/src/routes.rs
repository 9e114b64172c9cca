//! The HTTP API: the router, the state every handler shares, and what all handlers have in
//! common (bodies with limits, JSON, running storage calls off the async threads).
//!
//! | path | who | module |
//! |---|---|---|
//! | `GET /healthz` | anyone | here |
//! | `GET /metrics` | the operator's scraper (`Authorization: Bearer` the metrics token); off without one | here |
//! | `POST /v1/admin/init` | whoever holds the server's one-time init secret, signed | [`admin`] |
//! | `/v1/admin/…` | administrators (signed requests) | [`admin`] |
//! | `POST /v1/enrol`, `/v1/auth/…` | a device proving its key | [`device`] |
//! | `GET /v1/me`, `POST /v1/users/lookup`, `/v1/certificates`, `POST /v1/plans/{plan}/participants` | devices (bearer token) | [`device`] |
//! | `GET /v1/admin/policy`, `POST /v1/admin/policy`, `POST /v1/admin/devices/{id}/revoke`, `POST /v1/admin/plans/{plan}/participants/{user}/remove` | administrators | [`rotation`] |
//! | `GET`/`POST /v1/admin/rekey` (CBOR) | administrators | [`rekey`] |
//! | `GET`/`POST /v1/admin/revocations`, `GET /v1/revocations` (CBOR) | administrators; devices | [`revocations`] |
//! | `GET`/`POST /v1/admin/audit/keys`, `GET /v1/admin/audit/{uploads,server-events,server-key}` | administrators | [`audit`] |
//! | `GET /v1/policy` | devices (bearer token) | [`rotation`] |
//! | `POST /v1/wipe-order`, `POST /v1/wipe-report` | a revoked or wiped device, without a session | [`wipe`] |
//! | `POST /v1/sync` | devices | [`sync`] |
//! | `GET /v1/live` | devices (WebSocket) | [`live`] |
//!
//! Storage is synchronous (SQLite), so each handler does its checks and storage calls in one
//! closure on tokio's blocking pool ([`blocking`]); only waiting for the group commit and
//! the WebSocket stay on the async side. Every body is read with a limit that is checked
//! against `Content-Length` before anything is read, so an oversized request costs nothing.

pub mod admin;
pub mod audit;
pub mod device;
pub mod live;
pub mod membership;
pub mod rekey;
pub mod retention;
pub mod revocations;
pub mod rotation;
pub mod scope;
pub mod sync;
pub mod wipe;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use eenplan_protocol::api;
use eenplan_protocol::sync::MAX_SYNC_REQUEST;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::auth::{Auth, bearer};
use crate::error::ApiError;
use crate::group_commit::GroupCommit;
use crate::init_secret::InitSecret;
use crate::live_events::LiveEvents;
use crate::metrics::{Metrics, RouteClass};
use crate::quota::{PushQuota, QuotaLimits};
use crate::storage::{DeviceId, Storage, StorageError};

/// The largest JSON body: every JSON request is a few hundred bytes. (Re-keying and revocation
/// lists, which grow with the number of devices, are CBOR with limits of their own.)
pub const MAX_JSON_REQUEST: usize = 64 * 1024;
/// A request that takes longer is answered 408 and dropped.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the operator chose when starting the server.
#[derive(Debug, Default)]
pub struct ServerConfig {
    /// The origins admin requests must be signed for (normalised); any when empty.
    pub origins: Vec<String>,
    /// The bearer token `GET /metrics` asks for; without one, metrics are off (404).
    pub metrics_token: Option<String>,
    /// The secret `POST /v1/admin/init` must carry, while the network is not initialised.
    pub init_secret: Option<InitSecret>,
    pub push_quota: QuotaLimits,
    /// The database other server processes share, whose live events this one relays
    /// (`serve --database postgres://…`); none for a server on its own.
    pub relay: Option<crate::live_events::RelayTarget>,
}

/// What every handler shares.
pub struct AppState {
    pub storage: Arc<dyn Storage>,
    /// The server's own access log.
    pub audit: Arc<crate::audit_log::ServerAudit>,
    pub auth: Auth,
    pub commits: GroupCommit,
    /// Live hints and revocations, shared with the other server processes through the relay.
    pub events: Arc<LiveEvents>,
    pub metrics: Arc<Metrics>,
    /// Where each device stands in key requests that did not fit one answer.
    pub(crate) key_request_paging: sync::KeyRequestPaging,
    pub push_quota: PushQuota,
    pub live_sockets: live::LiveSockets,
    /// When each device's last-seen time was last written.
    pub last_seen: crate::last_seen::LastSeen,
    metrics_token: Option<String>,
    /// Taken (and its file deleted) by the init that uses it.
    init_secret: std::sync::Mutex<Option<InitSecret>>,
    /// Flipped to true when the server begins to shut down; live connections watch it.
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("commits", &self.commits).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("could not start the group-commit thread: {0}")]
    Thread(#[from] std::io::Error),
}

impl AppState {
    /// Reads the session secret and starts the group-commit writer.
    pub fn new(storage: Arc<dyn Storage>, config: ServerConfig) -> Result<Arc<AppState>, StartError> {
        let metrics = Arc::new(Metrics::default());
        let auth = Auth::new(storage.server_secret()?, metrics.clone(), config.origins);
        let events = Arc::new(match &config.relay {
            Some(target) => LiveEvents::relayed(target)?,
            None => LiveEvents::local(),
        });
        let commits = GroupCommit::start(storage.clone(), metrics.clone(), events.clone())?;
        let audit = crate::audit_log::ServerAudit::start(storage.clone())?;
        let (shutdown, _) = watch::channel(false);
        Ok(Arc::new(AppState {
            storage,
            audit,
            auth,
            commits,
            events,
            metrics,
            key_request_paging: sync::KeyRequestPaging::default(),
            push_quota: PushQuota::new(config.push_quota),
            live_sockets: live::LiveSockets::default(),
            last_seen: crate::last_seen::LastSeen::default(),
            metrics_token: config.metrics_token,
            init_secret: std::sync::Mutex::new(config.init_secret),
            shutdown,
        }))
    }

    /// Whether `given` is the one-time init secret (false once the network is initialised).
    pub fn init_secret_matches(&self, given: &str) -> bool {
        let secret = self.init_secret.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        secret
            .as_ref()
            .is_some_and(|s| self.auth.secret_matches(given.trim().as_bytes(), s.secret().as_bytes()))
    }

    /// The network is initialised: the init secret is spent.
    pub fn consume_init_secret(&self) {
        let taken = self.init_secret.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(secret) = taken {
            secret.consume();
        }
    }

    /// Tells the live connections of `device` to close at once: it was revoked, or
    /// re-certified with another role.
    pub fn announce_revocation(&self, device: DeviceId) {
        self.events.revoked(device);
    }

    /// Tells live connections to close. The HTTP server drains the other requests itself.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    pub fn shutting_down(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Writes every queued push and stops the writer; call after the HTTP server has drained.
    pub fn finish_shutdown(&self) {
        self.begin_shutdown();
        self.commits.shutdown();
        self.events.shutdown();
        self.audit.shutdown();
    }
}

/// The whole API with its limits, timeouts, tracing and metrics.
pub fn router(state: Arc<AppState>) -> Router {
    let sync_routes =
        Router::new().route(api::PATH_SYNC, post(sync::sync)).layer(DefaultBodyLimit::max(MAX_SYNC_REQUEST));
    // An erasure carries a whole base (a document's snapshot).
    let erasure_routes = Router::new()
        .route("/v1/plans/{plan}/erasure", post(membership::erase_member))
        .layer(DefaultBodyLimit::max(membership::MAX_ERASURE_UPLOAD));
    Router::new()
        .route(api::PATH_HEALTH, get(health))
        .route(api::PATH_METRICS, get(metrics))
        .route(api::PATH_ADMIN_INIT, post(admin::init))
        .route(api::PATH_ADMIN_ORGS, post(admin::add_org).get(admin::orgs))
        .route(api::PATH_ADMIN_USERS, post(admin::add_user).get(admin::users))
        .route(api::PATH_ADMIN_ENROLMENTS, post(admin::add_enrolment))
        .route(api::PATH_ADMIN_DEVICES, get(admin::devices))
        .route(api::PATH_ADMIN_ADMINS, post(admin::add_admin))
        .route("/v1/admin/devices/{id}/certificate", post(admin::approve_device))
        .route("/v1/admin/plans/{plan}/participants", post(admin::add_participant))
        .route("/v1/admin/plans/{plan}/participants/{user}/remove", post(rotation::unassign))
        .route(
            "/v1/admin/plans/{plan}/membership",
            get(membership::admin_entries).post(membership::admin_append),
        )
        .route("/v1/admin/devices/{id}/revoke", post(rotation::revoke))
        .route("/v1/admin/users/{user}/role", post(rotation::change_role))
        .route("/v1/admin/users/{user}/plans", get(admin::user_plans))
        .route(api::PATH_ADMIN_POLICY, get(rotation::admin_policy).post(rotation::set_policy))
        .route(
            api::PATH_ADMIN_REKEY,
            get(rekey::rekey_tasks)
                .post(rekey::rekey)
                .layer(DefaultBodyLimit::max(eenplan_protocol::rekey::MAX_REKEY_REQUEST)),
        )
        .route(
            api::PATH_ADMIN_REVOCATIONS,
            get(revocations::admin_revocations)
                .post(revocations::put_revocations)
                .layer(DefaultBodyLimit::max(eenplan_protocol::revocation::MAX_REVOCATION_LIST_LEN)),
        )
        .route(api::PATH_ADMIN_CLOSED_PLANS, get(retention::closed))
        .route("/v1/admin/retention/plans/{plan}/erase", post(retention::erase))
        .route(api::PATH_ADMIN_AUDIT_KEYS, get(audit::keys).post(audit::put_key))
        .route(api::PATH_ADMIN_AUDIT_UPLOADS, get(audit::uploads))
        .route(api::PATH_ADMIN_AUDIT_SERVER_EVENTS, get(audit::server_events))
        .route(api::PATH_ADMIN_AUDIT_SERVER_KEY, get(audit::server_key))
        .route(api::PATH_REVOCATIONS, get(revocations::revocations))
        .route(api::PATH_POLICY, get(rotation::policy))
        .route(api::PATH_WIPE_ORDER, post(wipe::order))
        .route(api::PATH_WIPE_REPORT, post(wipe::report))
        .route(api::PATH_ENROL, post(device::enrol))
        .route(api::PATH_AUTH_CHALLENGE, post(device::challenge))
        .route(api::PATH_AUTH_SESSION, post(device::session))
        .route(api::PATH_ME, get(device::me))
        .route(api::PATH_USERS, get(device::users))
        .route(api::PATH_USER_LOOKUP, post(device::lookup_users))
        .route(api::PATH_CERTIFICATES, get(device::certificates))
        .route("/v1/plans/{plan}/participants", post(device::add_participant))
        .route("/v1/plans/{plan}/membership", post(membership::append).get(membership::entries))
        .route(api::PATH_LIVE, get(live::live))
        // The JSON limit everywhere; the sync route's own layer, closer to it, overrides it.
        .layer(DefaultBodyLimit::max(MAX_JSON_REQUEST))
        .merge(sync_routes)
        .merge(erasure_routes)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .layer(
            TraceLayer::new_for_http()
                // The path only: `/v1/live?token=…` must not put a token in the log.
                .make_span_with(|request: &Request| {
                    tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .with_state(state)
}

async fn count(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    state.metrics.request(RouteClass::of_path(request.uri().path()));
    let response = next.run(request).await;
    state.metrics.response(response.status().as_u16());
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found("no_route", "no such endpoint")
}

/// `GET /healthz`: 200 `ok` when storage answers.
async fn health(State(state): State<Arc<AppState>>) -> Response {
    match blocking(&state, |state| Ok(state.storage.head()?)).await {
        Ok(_) => (StatusCode::OK, "ok").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable").into_response()
        }
    }
}

/// `GET /metrics`: Prometheus text, for the operator's scraper only: the counts (devices
/// online, pushes, refusals) say when a region's professionals work, which is nobody else's
/// business. Without a configured token the endpoint does not exist.
async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let Some(expected) = &state.metrics_token else {
        return Err(not_found().await);
    };
    let given = bearer(&headers).ok_or_else(|| {
        ApiError::unauthenticated("missing_token", "send Authorization: Bearer <metrics token>")
    })?;
    if !state.auth.secret_matches(given.as_bytes(), expected.as_bytes()) {
        state.metrics.auth_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Err(ApiError::unauthenticated("bad_token", "that is not the metrics token"));
    }
    let text = state.metrics.render(state.storage.remembered_reads());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// Runs `f` (storage calls, signature checks) on the blocking pool.
pub async fn blocking<T, F>(state: &Arc<AppState>, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&AppState) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let state = state.clone();
    tokio::task::spawn_blocking(move || f(&state))
        .await
        .map_err(|e| ApiError::Internal(format!("a blocking task failed: {e}")))?
}

/// A request body of at most `LIMIT` bytes. A declared `Content-Length` above it is refused
/// before reading; a chunked body is cut off at the limit by the route's `DefaultBodyLimit`.
#[derive(Debug)]
pub struct Body<const LIMIT: usize>(pub Bytes);

impl<S: Send + Sync, const LIMIT: usize> FromRequest<S> for Body<LIMIT> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > LIMIT as u64) {
            return Err(ApiError::TooLarge { limit: LIMIT });
        }
        match Bytes::from_request(request, state).await {
            Ok(bytes) if bytes.len() > LIMIT => Err(ApiError::TooLarge { limit: LIMIT }),
            Ok(bytes) => Ok(Body(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::TooLarge { limit: LIMIT })
            }
            Err(rejection) => {
                Err(ApiError::malformed(format!("the request body could not be read: {rejection}")))
            }
        }
    }
}

pub type JsonBody = Body<MAX_JSON_REQUEST>;

/// Parses a JSON body; serde's message says what was wrong and where.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::malformed(format!("the JSON body is not valid: {e}")))
}

/// A fixed-size id from hex, or a 400 naming what was expected.
pub fn parse_hex<const N: usize>(text: &str, what: &str) -> Result<[u8; N], ApiError> {
    api::unhex(text)
        .and_then(|bytes| <[u8; N]>::try_from(bytes).ok())
        .ok_or_else(|| ApiError::malformed(format!("{what} must be {N} bytes of hex")))
}
