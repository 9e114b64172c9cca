//! `GET /v1/live`: a WebSocket on which an online device hears, within moments, that a
//! document it may read has new bundles, so it syncs at once instead of polling.
//!
//! ```text
//! device                                       server
//!   │ GET /v1/live?token=…  (Upgrade)           │ check the session, subscribe to hints
//!   │ ◄──────────────────────────── 101         │
//!   │                                           │ ← group commit: P/basis got a bundle
//!   │ ◄──────── text "0f1e…a900" (P/basis)      │   (only if this device may read it)
//!   │ POST /v1/sync …                           │
//! ```
//!
//! The subscription is made before the 101 answer, so a push that commits after the device
//! sees the socket open is always hinted. Hints carry only a document id; the device pulls
//! through the ordinary sync. Revoking a device closes its sockets at once: the revocation is
//! announced to every socket, and the one whose device it names closes (the socket listens
//! from before the session check, so a revocation between the two is not missed). Each hint
//! (and a periodic check) also looks the device up again. The socket is closed too when the
//! session token expires and when the server shuts down. A device that fell so far behind
//! that hints were dropped gets [`LIVE_RESYNC`] and should sync anyway.
//!
//! A device keeps at most [`MAX_LIVE_SOCKETS_PER_DEVICE`] sockets: one more closes its oldest
//! (1008, "too many live connections"). The newest wins because a phone that moved from
//! Wi-Fi to mobile data reconnects long before the server learns that its old socket is dead;
//! refusing the new one would leave the phone deaf until then. A token holder can open
//! sockets without end, but each one only evicts another of the same device's.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use eenplan_protocol::DocumentId;
use eenplan_protocol::api::{LIVE_RESYNC, MAX_LIVE_SOCKETS_PER_DEVICE, hex};
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::sync::oneshot;

use super::device::{DeviceSession, session_for_token};
use super::{AppState, blocking};
use crate::auth::{bearer, now_ms};
use crate::error::ApiError;
use crate::live_events::Hint;
use crate::metrics::LiveGuard;
use crate::storage::{DeviceId, DeviceState, UserId};

/// How often an idle socket re-checks its device and pings the client (keeping proxies from
/// closing an idle connection).
const RECHECK_INTERVAL: Duration = Duration::from_secs(30);

/// The largest frame a client may send (it sends nothing but pongs and close frames).
const MAX_CLIENT_MESSAGE: usize = 4096;
/// A socket's read buffer, and the most it reads at once. A client's frames are pongs and close
/// frames of a few bytes, and an idle socket (nearly every socket, nearly always) holds this
/// buffer for hours: a larger one was a third of its memory. A larger frame still arrives
/// whole (tungstenite reserves its length), in reads of this size.
const SOCKET_BUFFER: usize = 128;

#[derive(Debug, Deserialize)]
pub struct LiveQuery {
    token: Option<String>,
}

/// One open socket: its number and the sender that closes it.
type OpenSocket = (u64, oneshot::Sender<()>);

/// Every open socket per device, oldest first.
#[derive(Debug, Default)]
pub struct LiveSockets {
    open: Mutex<HashMap<DeviceId, VecDeque<OpenSocket>>>,
    next: AtomicU64,
}

/// A socket's slot and the receiver that fires when it is closed in turn.
type Place = (LiveSlot, oneshot::Receiver<()>);

/// One socket's place in [`LiveSockets`]; leaving it (dropping this) frees the place.
#[derive(Debug)]
struct LiveSlot {
    state: Arc<AppState>,
    device: DeviceId,
    id: u64,
}

impl LiveSockets {
    /// Takes a place for a new socket of `device`, closing the device's oldest sockets beyond
    /// the limit. The receiver fires when this socket is closed in turn.
    fn open(state: &Arc<AppState>, device: DeviceId) -> Place {
        let sockets = &state.live_sockets;
        let id = sockets.next.fetch_add(1, Ordering::Relaxed);
        let (close, closed) = oneshot::channel();
        let mut open = sockets.open.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = open.entry(device).or_default();
        mine.push_back((id, close));
        while mine.len() > MAX_LIVE_SOCKETS_PER_DEVICE {
            if let Some((_, oldest)) = mine.pop_front() {
                let _ = oldest.send(());
                state.metrics.live_sockets_evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
        (LiveSlot { state: state.clone(), device, id }, closed)
    }
}

impl Drop for LiveSlot {
    fn drop(&mut self) {
        let mut open = self.state.live_sockets.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(mine) = open.get_mut(&self.device) {
            mine.retain(|(id, _)| *id != self.id);
            if mine.is_empty() {
                open.remove(&self.device);
            }
        }
    }
}

pub async fn live(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<LiveQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let from_query = query.ok().and_then(|q| q.0.token);
    let token = bearer(&headers).map(str::to_string).or(from_query).ok_or_else(|| {
        ApiError::unauthenticated("missing_token", "send the session token as a bearer token or ?token=")
    })?;
    // Before the session check: a revocation that commits after the check is heard.
    let revocations = state.events.revocations();
    let session = session_for_token(&state, token).await?;
    let upgrade =
        upgrade.map_err(|e| ApiError::malformed(format!("not a WebSocket upgrade: {}", e.body_text())))?;
    // Before the 101: nothing committed after the client sees the socket open is missed.
    let hints = state.events.hints();
    let user = session.device.user;
    let readable = blocking(&state, move |state| readable(state, user)).await?;
    // The client has nothing to say on this socket; a small limit keeps it from making the
    // server buffer large frames.
    // The client sends only pongs and close frames, and hints are a few dozen bytes: buffers
    // of tungstenite's default 128 KiB would be most of an idle socket's memory.
    let upgrade = upgrade
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(0);
    // Counted from before the 101, so the gauge is right as soon as the client sees the socket;
    // dropped with the closure if the upgrade never completes.
    let gauge = LiveGuard::new(state.metrics.clone());
    // The place is taken before the 101 too, so sockets count as opened in the order their
    // clients saw them open (taken after, a slow upgrade task could make the newest socket
    // look oldest and close it instead); a failed upgrade frees it with the closure.
    let place = LiveSockets::open(&state, session.device.device_id);
    let channels = Channels { hints, revocations };
    let holder = Holder::of(&session);
    drop(session);
    Ok(upgrade.on_upgrade(move |socket| run(state, holder, channels, readable, socket, (gauge, place))))
}

fn readable(state: &AppState, user: UserId) -> Result<HashSet<DocumentId>, ApiError> {
    Ok(state.storage.readable_documents(user)?.into_iter().map(|(document, _)| document).collect())
}

/// The little of its session a socket keeps for its life: the device's record holds its
/// certificate and X-Wing public key (well over a KiB), which an idle socket never needs.
#[derive(Debug, Clone, Copy)]
struct Holder {
    device: DeviceId,
    user: UserId,
    /// When the session token runs out (ms); the socket closes then.
    expires_at: i64,
}

impl Holder {
    fn of(session: &DeviceSession) -> Holder {
        Holder { device: session.device.device_id, user: session.device.user, expires_at: session.expires_at }
    }
}

/// What a socket listens to besides its client.
struct Channels {
    hints: broadcast::Receiver<Hint>,
    revocations: broadcast::Receiver<DeviceId>,
}

/// Why a socket ends.
enum End {
    /// The client closed or the connection broke: nothing more to send.
    Gone,
    Close(u16, &'static str),
}

async fn run(
    state: Arc<AppState>,
    holder: Holder,
    channels: Channels,
    mut readable: HashSet<DocumentId>,
    mut socket: WebSocket,
    (_gauge, place): (LiveGuard, Place),
) {
    let Channels { mut hints, mut revocations } = channels;
    let me = holder.device;
    let (_slot, mut evicted) = place;
    let mut shutdown = state.shutting_down();
    let stopping = async move {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    };
    tokio::pin!(stopping);
    let remaining = u64::try_from(holder.expires_at.saturating_sub(now_ms())).unwrap_or(0);
    let expiry = tokio::time::sleep(Duration::from_millis(remaining));
    tokio::pin!(expiry);
    let mut recheck =
        tokio::time::interval_at(tokio::time::Instant::now() + RECHECK_INTERVAL, RECHECK_INTERVAL);
    let end = loop {
        tokio::select! {
            () = &mut expiry => break End::Close(close_code::POLICY, "session expired"),
            () = &mut stopping => break End::Close(close_code::AWAY, "server shutting down"),
            _ = &mut evicted => break End::Close(close_code::POLICY, "too many live connections"),
            message = socket.recv() => match message {
                // Pings are answered by the WebSocket layer; anything else from the client
                // means nothing here.
                Some(Ok(Message::Close(_)) | Err(_)) | None => break End::Gone,
                Some(Ok(_)) => {}
            },
            revoked = revocations.recv() => match revoked {
                // Revoked, or re-certified (a role change): either way this session is over.
                Ok(device) if device == me => match check(&state, holder, false).await {
                    Ok(Check::Active(_)) => break End::Close(close_code::POLICY, "device re-certified"),
                    _ => break End::Close(close_code::POLICY, "device revoked"),
                },
                Ok(_) => {}
                Err(RecvError::Closed) => break End::Close(close_code::AWAY, "server shutting down"),
                // Announcements were dropped: one of them may have been this device's.
                Err(RecvError::Lagged(_)) => match check(&state, holder, false).await {
                    Ok(Check::Gone) => break End::Close(close_code::POLICY, "device revoked"),
                    Ok(Check::Active(_)) => {}
                    Err(e) => tracing::warn!(error = %e, "live check failed"),
                },
            },
            _ = recheck.tick() => {
                match check(&state, holder, true).await {
                    Ok(Check::Active(fresh)) => readable = fresh.unwrap_or(readable),
                    Ok(Check::Gone) => break End::Close(close_code::POLICY, "device revoked"),
                    Err(e) => tracing::warn!(error = %e, "live recheck failed"),
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break End::Gone;
                }
            },
            first = hints.recv() => {
                let mut documents = Vec::new();
                let mut resync = false;
                match first {
                    Ok(Hint::Document(document)) => documents.push(document),
                    Ok(Hint::Resync) | Err(RecvError::Lagged(_)) => resync = true,
                    Err(RecvError::Closed) => break End::Close(close_code::AWAY, "server shutting down"),
                }
                // Take every hint already waiting, so a burst costs one device check.
                loop {
                    match hints.try_recv() {
                        Ok(Hint::Document(document)) => documents.push(document),
                        Ok(Hint::Resync) | Err(TryRecvError::Lagged(_)) => resync = true,
                        Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                    }
                }
                // After lost hints, the grants they announced may be unknown here too.
                let unknown = resync || documents.iter().any(|d| !readable.contains(d));
                match check(&state, holder, unknown).await {
                    Ok(Check::Active(fresh)) => readable = fresh.unwrap_or(readable),
                    Ok(Check::Gone) => break End::Close(close_code::POLICY, "device revoked"),
                    Err(e) => tracing::warn!(error = %e, "live check failed"),
                }
                if let Err(end) = send_hints(&state, &mut socket, &documents, &readable, resync).await {
                    break end;
                }
            },
        }
    };
    if let End::Close(code, reason) = end {
        let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
    }
}

/// What a fresh look at the device found.
enum Check {
    /// Revoked (or otherwise no longer active): tell it nothing more.
    Gone,
    /// Active; with the re-read readable set when one was asked for.
    Active(Option<HashSet<DocumentId>>),
}

/// Looks the device up again and, when `reload`, re-reads what it may read (a hint for a
/// document outside the set may follow a new grant).
async fn check(state: &Arc<AppState>, holder: Holder, reload: bool) -> Result<Check, ApiError> {
    let Holder { device: id, user, .. } = holder;
    blocking(state, move |state| {
        if !state.storage.device(id)?.is_some_and(|d| d.state == DeviceState::Active) {
            return Ok(Check::Gone);
        }
        Ok(Check::Active(if reload { Some(readable(state, user)?) } else { None }))
    })
    .await
}

async fn send_hints(
    state: &AppState,
    socket: &mut WebSocket,
    documents: &[DocumentId],
    readable: &HashSet<DocumentId>,
    resync: bool,
) -> Result<(), End> {
    let mut sent = HashSet::new();
    if resync && socket.send(Message::Text(LIVE_RESYNC.into())).await.is_err() {
        return Err(End::Gone);
    }
    for document in documents {
        if readable.contains(document) && sent.insert(*document) {
            if socket.send(Message::Text(hex(&document.to_bytes()).into())).await.is_err() {
                return Err(End::Gone);
            }
            state.metrics.live_hints_sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    Ok(())
}
