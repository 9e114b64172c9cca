//! Watching: an online device keeps the server's live WebSocket (`GET /v1/live`) open and
//! syncs whenever the server hints that a document it may read got new bundles, so people see
//! each other's edits within a second instead of at the next manual sync.
//!
//! ```text
//! device                                   server
//!   session (challenge, signature)     →
//!   GET /v1/live (Upgrade, bearer)     →   subscribes to hints, then 101
//!   POST /v1/sync (catch-up)           →   everything committed before the socket opened
//!                                      ←   text "0f1e…a900": P/basis has new bundles
//!   POST /v1/sync                      →   (same session, kept-alive connection)
//!   … socket drops                         report Disconnected, wait ≤ 0.5 s, 1 s, … 30 s
//! ```
//!
//! The order is what makes it complete: the server subscribes the socket before it answers 101,
//! so a bundle committed after the socket opened is hinted, and the catch-up sync that follows
//! the opening pulls every bundle committed before. A hint carries no content and the device
//! treats every text frame alike (a document id, or [`api::LIVE_RESYNC`] after the server
//! dropped hints): it means "sync now".

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eenplan_protocol::api::{self, ErrorBody, ServerUrlError};
use serde::Serialize;
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::HandshakeError;
use tungstenite::http::{HeaderValue, header};
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use super::access::{Access, Exclusive};
use super::transport::Transport;
use super::{ServerState, SyncError, SyncReport, driver, session, wipe_order};
use crate::device::Device;
use crate::error::CoreError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The server pings an idle socket every 30 s. Hearing nothing for this long means the
/// connection is dead although TCP may not know it yet (a NAT forgot it, the laptop slept).
const SILENCE_LIMIT: Duration = Duration::from_secs(75);
/// The server sends 34-character hints and close frames; anything large is not from it.
const MAX_FRAME: usize = 64 * 1024;
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
/// The bound of the reconnect backoff: an offline laptop retries at least twice a minute, so it
/// is live again soon after the network returns.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A socket that ends this close to its session's expiry was closed for the expiry: the watch
/// renews the session at once and quietly instead of reporting a disconnection.
const RENEW_SLACK: Duration = Duration::from_secs(30);
/// A socket that stayed open this long worked, so the failure that ends it starts the backoff
/// over. One that a server accepts and drops at once keeps backing off, and is never taken for
/// an expired session (which would reconnect without any wait).
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// What [`Device::watch`] reports to its host, one event at a time.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", content = "detail", rename_all = "snake_case")]
pub enum WatchEvent {
    /// The live socket is open; every bundle committed from now on is hinted. A catch-up
    /// [`WatchEvent::Synced`] follows at once.
    Connected,
    /// A sync ran: the catch-up after connecting, or the answer to a hint.
    Synced(SyncReport),
    /// The socket or a sync failed for a reason that may pass (no network, the server
    /// restarting); the watch reconnects after a backoff of at most 30 s.
    Disconnected(String),
}

/// How one connection of the watch ended.
enum Ended {
    /// The host asked to stop.
    Stop,
    /// The session ran out: open a new one at once, without a word to the host.
    Renew,
    /// The connection or a sync failed in a way that may pass.
    Lost(String),
}

impl Device {
    /// Stays online: opens the server's live socket, syncs once to catch up, then syncs again
    /// on every hint and reports what came down, until `on_event` returns
    /// [`ControlFlow::Break`]. A dropped socket is reported as [`WatchEvent::Disconnected`] and
    /// reopened after a backoff (up to 0.5 s, doubling to 30 s; jittered so that a restarted server
    /// is not hit by every device at once). When the session expires (the server closes the
    /// socket then) a new one is opened at once, with no `Disconnected`.
    ///
    /// `on_event` runs only when something happens; a host that wants to stop an idle watch
    /// must wait for the next event (hints, reconnects) or end the thread. A host that shares
    /// the device between threads uses [`super::SharedDevice::watch`], which holds the device
    /// only while a sync applies what came.
    ///
    /// # Errors
    ///
    /// Errors that retrying cannot fix end the watch: [`SyncError::Revoked`] when an
    /// administrator revoked this device, [`SyncError::NotEnrolled`],
    /// [`SyncError::NotApproved`], a refused certificate, a store failure.
    pub fn watch(&mut self, on_event: impl FnMut(WatchEvent) -> ControlFlow<()>) -> Result<(), CoreError> {
        watch(&Exclusive::new(self), on_event)
    }
}

/// [`Device::watch`] over any access to the device.
pub(super) fn watch(
    access: &impl Access,
    on_event: impl FnMut(WatchEvent) -> ControlFlow<()>,
) -> Result<(), CoreError> {
    let server = access.with(|device| {
        device.ensure_not_wiped()?;
        Ok(device.server_state()?.ok_or(SyncError::NotEnrolled)?)
    })?;
    // One transport for the whole watch, so syncs reuse its kept-alive HTTP connection.
    let transport = Transport::new(&server.url);
    match watch_with(access, &server, &transport, on_event) {
        // Revoked while watching: the same wipe-order check as a plain sync.
        Err(e) if super::is_revoked(&e) => Err(wipe_order::obey(access, &server, &transport)),
        other => other,
    }
}

fn watch_with(
    access: &impl Access,
    server: &ServerState,
    transport: &Transport,
    mut on_event: impl FnMut(WatchEvent) -> ControlFlow<()>,
) -> Result<(), CoreError> {
    let mut backoff = Backoff::default();
    let mut opened = None;
    loop {
        let ended = watch_connection(access, server, transport, &mut on_event, &mut opened);
        if opened.take().is_some_and(|at: Instant| at.elapsed() >= STABLE_AFTER) {
            backoff.reset();
        }
        let reason = match ended {
            Ok(Ended::Stop) => return Ok(()),
            Ok(Ended::Renew) => continue,
            Ok(Ended::Lost(reason)) => reason,
            Err(e) if may_pass(&e) => e.to_string(),
            Err(e) => return Err(e),
        };
        if on_event(WatchEvent::Disconnected(reason)).is_break() {
            return Ok(());
        }
        std::thread::sleep(backoff.next_wait());
    }
}

/// One session and one socket: connect, catch up, then sync on every hint until the socket
/// ends. `opened` is set to when the socket opened. The device is held only by the syncs.
fn watch_connection(
    access: &impl Access,
    server: &ServerState,
    transport: &Transport,
    on_event: &mut impl FnMut(WatchEvent) -> ControlFlow<()>,
    opened: &mut Option<Instant>,
) -> Result<Ended, CoreError> {
    let session = session::open(access, transport)?;
    let now = access.with(|device| Ok(device.now_ms()))?;
    // The server's expiry is on its clock, which the session just anchored ours to.
    let lifetime = u64::try_from(session.expires_at_ms.saturating_sub(now)).unwrap_or(0);
    let renew_at = Instant::now() + Duration::from_millis(lifetime);
    let mut socket = LiveSocket::connect(&server.url, &session.token)?;
    let since = Instant::now();
    *opened = Some(since);
    let near_expiry = || since.elapsed() >= STABLE_AFTER && Instant::now() + RENEW_SLACK >= renew_at;
    if on_event(WatchEvent::Connected).is_break() {
        return Ok(Ended::Stop);
    }
    loop {
        // Counted per sync, so each report says what that sync cost.
        transport.reset_counters();
        let report = match driver::sync_with(access, server, transport, &session.token) {
            Ok(report) => report,
            // The token ran out between the hint and the sync.
            Err(CoreError::Sync(SyncError::Server { status: 401, .. })) if near_expiry() => {
                return Ok(Ended::Renew);
            }
            Err(e) => return Err(e),
        };
        access.with(|device| device.renew_lease_after_sync())?;
        if on_event(WatchEvent::Synced(report)).is_break() {
            return Ok(Ended::Stop);
        }
        if let Err(reason) = socket.next_hint() {
            return Ok(if near_expiry() { Ended::Renew } else { Ended::Lost(reason) });
        }
        // Hints that arrived together are answered by one sync. Only those already here:
        // one that arrives during the sync may name a bundle the sync's pull missed, so it
        // must cause another sync.
        socket.drain();
    }
}

/// Whether retrying later may succeed: the network, a server that is restarting or busy.
fn may_pass(error: &CoreError) -> bool {
    match error {
        CoreError::Sync(SyncError::Network(_) | SyncError::TooManyRounds(_)) => true,
        CoreError::Sync(SyncError::Server { status, .. }) => *status >= 500 || matches!(*status, 408 | 429),
        _ => false,
    }
}

/// Exponential backoff with jitter, bounded by [`BACKOFF_MAX`].
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: BACKOFF_FIRST }
    }
}

impl Backoff {
    /// Somewhere in [next/2, next], then doubles `next`.
    fn next_wait(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        let spread = u64::try_from(base.as_millis() / 2).unwrap_or(0).max(1);
        let jitter = u64::from_le_bytes(crate::crypto::random_array()) % spread;
        base / 2 + Duration::from_millis(jitter)
    }

    fn reset(&mut self) {
        self.next = BACKOFF_FIRST;
    }
}

/// The TCP connection under the WebSocket: plain for `http://` servers (a local test server),
/// rustls for `https://`.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

/// An open `/v1/live` socket.
struct LiveSocket {
    socket: WebSocket<Stream>,
    /// How the socket ended, when that was found while draining: reported by the next
    /// [`LiveSocket::next_hint`], after the sync the drained hints asked for.
    ended: Option<String>,
}

impl LiveSocket {
    /// Opens the socket for the session `token` at the server `base` (`http://…` or
    /// `https://…`, as pinned at enrolment).
    fn connect(base: &str, token: &str) -> Result<LiveSocket, SyncError> {
        let bad_url = || {
            SyncError::ServerUrl(ServerUrlError::Malformed {
                address: base.to_owned(),
                detail: "not a WebSocket address".into(),
            })
        };
        let (scheme, rest, tls) = if let Some(rest) = base.strip_prefix("https://") {
            ("wss", rest, true)
        } else if let Some(rest) = base.strip_prefix("http://") {
            ("ws", rest, false)
        } else {
            return Err(bad_url());
        };
        let mut request = format!("{scheme}://{}{}", rest.trim_end_matches('/'), api::PATH_LIVE)
            .into_client_request()
            .map_err(|_| bad_url())?;
        // A header rather than `?token=`: the token stays out of URLs, which proxies log.
        let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| SyncError::Protocol("the session token is not a header value".into()))?;
        request.headers_mut().insert(header::AUTHORIZATION, bearer);
        let host = request.uri().host().ok_or_else(bad_url)?;
        // `Uri::host` keeps the brackets of an IPv6 literal; sockets and TLS want the address.
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = request.uri().port_u16().unwrap_or(if tls { 443 } else { 80 });

        let tcp = connect_tcp(&host, port)?;
        let stream = if tls { Stream::Tls(Box::new(tls_stream(&host, tcp)?)) } else { Stream::Plain(tcp) };
        let config =
            WebSocketConfig::default().max_message_size(Some(MAX_FRAME)).max_frame_size(Some(MAX_FRAME));
        let (socket, _) =
            tungstenite::client::client_with_config(request, stream, Some(config)).map_err(|e| match e {
                HandshakeError::Failure(e) => handshake_error(e),
                HandshakeError::Interrupted(_) => SyncError::Network(super::NetworkFailure::ConnectionLost),
            })?;
        socket
            .get_ref()
            .tcp()
            .set_read_timeout(Some(SILENCE_LIMIT))
            .map_err(|_| SyncError::Network(super::NetworkFailure::ConnectionLost))?;
        Ok(LiveSocket { socket, ended: None })
    }

    /// Waits for the next hint. `Err` says why the socket ended.
    fn next_hint(&mut self) -> Result<(), String> {
        if let Some(ended) = self.ended.take() {
            return Err(ended);
        }
        loop {
            match self.socket.read() {
                Ok(Message::Text(_)) => return Ok(()),
                Ok(Message::Close(frame)) => return Err(self.closed(frame)),
                // Pings are answered inside `read`; nothing else on this socket means anything.
                Ok(_) => {}
                Err(e) => return Err(read_error(&e)),
            }
        }
    }

    /// Takes every hint that has already arrived, without waiting for more.
    fn drain(&mut self) {
        if self.ended.is_some() || self.socket.get_ref().tcp().set_nonblocking(true).is_err() {
            return;
        }
        loop {
            match self.socket.read() {
                Ok(Message::Close(frame)) => {
                    self.ended = Some(self.closed(frame));
                    break;
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.ended = Some(read_error(&e));
                    break;
                }
            }
        }
        if let Err(e) = self.socket.get_ref().tcp().set_nonblocking(false) {
            self.ended.get_or_insert_with(|| format!("live socket: {e}"));
        }
    }

    /// The server closed the socket; answers the close so the server can finish cleanly.
    fn closed(&mut self, frame: Option<CloseFrame>) -> String {
        // Best effort: the socket is gone either way, and the reason is what matters.
        let _ = self.socket.flush();
        match frame {
            Some(frame) if !frame.reason.is_empty() => {
                format!("the server closed the live socket: {}", frame.reason)
            }
            _ => "the server closed the live socket".to_owned(),
        }
    }
}

fn connect_tcp(host: &str, port: u16) -> Result<TcpStream, SyncError> {
    let network =
        |e: io::Error| SyncError::Network(super::NetworkFailure::NoConnection(format!("{host}:{port}: {e}")));
    let mut last = None;
    for address in (host, port).to_socket_addrs().map_err(network)? {
        match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
            Ok(tcp) => {
                // Hints are tiny and wanted at once.
                tcp.set_nodelay(true).map_err(network)?;
                // Bounds the handshake; replaced by the silence limit once the socket is open.
                tcp.set_read_timeout(Some(CONNECT_TIMEOUT)).map_err(network)?;
                tcp.set_write_timeout(Some(CONNECT_TIMEOUT)).map_err(network)?;
                return Ok(tcp);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(network(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))))
}

/// TLS as the HTTPS transport does it: rustls with ring, the webpki roots.
fn tls_stream(
    host: &str,
    tcp: TcpStream,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, SyncError> {
    let tls_error = |e: rustls::Error| SyncError::Network(super::NetworkFailure::Tls(e.to_string()));
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?
            .with_root_certificates(roots)
            .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|_| {
        SyncError::ServerUrl(ServerUrlError::Malformed {
            address: host.to_owned(),
            detail: "not a TLS server name".into(),
        })
    })?;
    let connection = rustls::ClientConnection::new(Arc::new(config), name).map_err(tls_error)?;
    Ok(rustls::StreamOwned::new(connection, tcp))
}

/// A refused upgrade carries the server's usual error body; revocation must stay typed.
fn handshake_error(error: tungstenite::Error) -> SyncError {
    let tungstenite::Error::Http(response) = error else {
        return SyncError::Network(super::NetworkFailure::NoConnection(format!("live socket: {error}")));
    };
    let status = response.status().as_u16();
    let body = response.body().as_deref().unwrap_or_default();
    let error: ErrorBody = serde_json::from_slice(body).unwrap_or(ErrorBody {
        code: format!("http_{status}"),
        message: String::from_utf8_lossy(body).chars().take(200).collect(),
    });
    SyncError::from_server(status, error)
}

fn read_error(error: &tungstenite::Error) -> String {
    match error {
        tungstenite::Error::Io(e)
            if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
        {
            format!("the server sent nothing for {} s", SILENCE_LIMIT.as_secs())
        }
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            "the live socket closed".to_owned()
        }
        other => format!("live socket: {other}"),
    }
}
