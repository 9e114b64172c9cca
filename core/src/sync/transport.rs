//! The only place the core talks HTTPS (rustls, no OpenSSL) through `ureq`, with the time
//! limits a phone on a poor link needs. Bodies are counted so that a sync can report what it
//! cost on the wire.
//!
//! A call is bounded three ways:
//!
//! - **no route**: resolving and connecting each give up after [`CONNECT_LIMIT`], so a phone
//!   without signal learns it is offline in seconds;
//! - **no progress**: every single read and write of the socket gives up after
//!   [`STALL_LIMIT`], and the server's answer must begin within [`ANSWER_LIMIT`] of the request
//!   having been sent; a slow but live transfer keeps going as long as bytes move. A request
//!   the kernel took whole may still be on its way over a slow link, so both waits for the
//!   answer grow by the time the request's bytes take at [`FLOOR_RATE`];
//! - **the whole call**: a deadline of [`CALL_BASE`] plus the time the call's bytes take at
//!   [`FLOOR_RATE`], enforced outside the socket. The call runs on a thread of its own and the
//!   caller stops waiting at the deadline whatever the socket does (a write that trickles a
//!   few bytes at a time restarts the socket's own timeout each time). The abandoned thread
//!   ends at its socket's next timeout; it holds nothing of the device.
//!
//! Failures are [`NetworkFailure`]s that say what happened in plain words.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use eenplan_protocol::api::ErrorBody;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{NetworkFailure, SyncError};

/// Resolving the name and opening the connection (TCP and TLS), each.
pub(crate) const CONNECT_LIMIT: Duration = Duration::from_secs(10);
/// One read or write of the socket that moves no byte.
pub(crate) const STALL_LIMIT: Duration = Duration::from_secs(20);
/// From the request sent to the first line of the answer: the server answers a sync in well
/// under a second; one that takes this long is not answering.
pub(crate) const ANSWER_LIMIT: Duration = Duration::from_secs(30);
/// The part of every call's deadline that does not depend on its size.
pub(crate) const CALL_BASE: Duration = Duration::from_secs(45);
/// The slowest link a call is given time for, in bytes per second (8 kbit/s, a GPRS-class
/// link at its worst; the 256 kbit/s link of the benchmark moves 32 KB/s).
pub(crate) const FLOOR_RATE: u64 = 1024;
/// A response above this is refused unread; pages are far smaller (see `SyncRequest::max_bytes`).
const MAX_RESPONSE: u64 = 64 * 1024 * 1024;

/// Bytes moved by one transport, shared with the calls' threads.
#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    /// Bytes per second the link carried in the last exchange large enough to say (0: not
    /// known yet).
    rate: AtomicU64,
}

/// An exchange smaller than this says more about latency than about bandwidth.
pub(crate) const INFORMATIVE_BYTES: u64 = 16 * 1024;

/// What one call took, for the caller's page sizing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub bytes: u64,
    pub elapsed: Duration,
}

#[derive(Clone)]
pub(crate) struct Transport {
    agent: ureq::Agent,
    base: String,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").field("base", &self.base).finish_non_exhaustive()
    }
}

/// A finished exchange: the status and the body.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Transport {
    pub fn new(base: &str) -> Transport {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_resolve(Some(CONNECT_LIMIT))
            .timeout_connect(Some(CONNECT_LIMIT))
            .timeout_per_read(Some(STALL_LIMIT))
            .timeout_per_write(Some(STALL_LIMIT))
            .timeout_recv_response(Some(ANSWER_LIMIT))
            .build();
        Transport {
            agent: config.into(),
            base: base.trim_end_matches('/').to_owned(),
            counters: Arc::default(),
        }
    }

    pub fn sent(&self) -> u64 {
        self.counters.sent.load(Ordering::Relaxed)
    }

    pub fn received(&self) -> u64 {
        self.counters.received.load(Ordering::Relaxed)
    }

    /// Starts the counters again (a watch reports each sync's own cost).
    pub fn reset_counters(&self) {
        self.counters.sent.store(0, Ordering::Relaxed);
        self.counters.received.store(0, Ordering::Relaxed);
    }

    /// The deadline of a call that sends `up` bytes and may receive up to `down`.
    pub fn deadline_for(up: u64, down: u64) -> Duration {
        CALL_BASE + Duration::from_secs(up.saturating_add(down) / FLOOR_RATE)
    }

    pub fn post_json<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Req,
    ) -> Result<Resp, SyncError> {
        let bytes = serde_json::to_vec(body).map_err(|e| SyncError::Protocol(e.to_string()))?;
        let (body, _) = self.post(path, token, "application/json", bytes, 64 * 1024)?;
        serde_json::from_slice(&body).map_err(|e| SyncError::Protocol(format!("{path}: {e}")))
    }

    pub fn get_json<Resp: DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> Result<Resp, SyncError> {
        let body = self.get_bytes(path, token)?;
        serde_json::from_slice(&body).map_err(|e| SyncError::Protocol(format!("{path}: {e}")))
    }

    /// The body of a `GET`, whatever its type.
    pub fn get_bytes(&self, path: &str, token: Option<&str>) -> Result<Vec<u8>, SyncError> {
        let request = self.agent.get(format!("{}{path}", self.base));
        let request = match token {
            Some(token) => request.header("authorization", format!("Bearer {token}")),
            None => request,
        };
        let counters = Arc::clone(&self.counters);
        let (answer, _) = run_with_deadline(Transport::deadline_for(0, 256 * 1024), move || {
            read_answer(request.call(), &counters)
        })?;
        answer_body(answer)
    }

    /// Posts `bytes` and returns the answer's body and how long the exchange took. `expect`
    /// is the most the answer should hold (it sizes the deadline; larger answers still arrive
    /// if they make it in time).
    pub fn post(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        bytes: Vec<u8>,
        expect: u64,
    ) -> Result<(Vec<u8>, Timing), SyncError> {
        let request = self.agent.post(format!("{}{path}", self.base)).header("content-type", content_type);
        let request = match token {
            Some(token) => request.header("authorization", format!("Bearer {token}")),
            None => request,
        };
        let up = bytes.len() as u64;
        // The answer cannot begin before the request has crossed the link: at the rate the
        // link was seen to carry, or at the floor rate before it was seen.
        let rate = self.counters.rate.load(Ordering::Relaxed).max(FLOOR_RATE);
        let crossing = Duration::from_secs(up / rate);
        let request = request
            .config()
            .timeout_per_read(Some(STALL_LIMIT + crossing))
            .timeout_recv_response(Some(ANSWER_LIMIT + crossing))
            .build();
        self.counters.sent.fetch_add(up, Ordering::Relaxed);
        let counters = Arc::clone(&self.counters);
        let (answer, elapsed) = run_with_deadline(Transport::deadline_for(up, expect), move || {
            read_answer(request.send(bytes), &counters)
        })?;
        let down = answer.body.len() as u64;
        let timing = Timing { bytes: up + down, elapsed };
        if timing.bytes >= INFORMATIVE_BYTES {
            let millis = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX).max(1);
            self.counters.rate.store(timing.bytes.saturating_mul(1000) / millis, Ordering::Relaxed);
        }
        Ok((answer_body(answer)?, timing))
    }
}

/// Runs `call` on a thread of its own and waits for it until `deadline`.
fn run_with_deadline(
    deadline: Duration,
    call: impl FnOnce() -> Result<Answer, SyncError> + Send + 'static,
) -> Result<(Answer, Duration), SyncError> {
    let started = std::time::Instant::now();
    let (send, receive) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("eenplan-http".into())
        .spawn(move || {
            // Err only when the caller stopped waiting (the deadline passed).
            let _ = send.send(call());
        })
        .map_err(|e| SyncError::Protocol(format!("cannot start a network thread: {e}")))?;
    match receive.recv_timeout(deadline) {
        Ok(result) => result.map(|answer| (answer, started.elapsed())),
        Err(_) => Err(SyncError::Network(NetworkFailure::Deadline(deadline.as_secs()))),
    }
}

/// Reads the whole answer of an exchange, counting its bytes.
fn read_answer(
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    counters: &Counters,
) -> Result<Answer, SyncError> {
    let mut response = response.map_err(|e| SyncError::Network(classify(e)))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE)
        .read_to_vec()
        .map_err(|e| SyncError::Network(classify(e)))?;
    counters.received.fetch_add(body.len() as u64, Ordering::Relaxed);
    Ok(Answer { status, body })
}

/// The body of a 2xx answer, or the server's refusal as a typed error.
fn answer_body(answer: Answer) -> Result<Vec<u8>, SyncError> {
    let Answer { status, body } = answer;
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let error: ErrorBody = serde_json::from_slice(&body).unwrap_or(ErrorBody {
        code: format!("http_{status}"),
        message: String::from_utf8_lossy(&body).chars().take(200).collect(),
    });
    Err(SyncError::from_server(status, error))
}

/// What a `ureq` failure means for a person.
fn classify(error: ureq::Error) -> NetworkFailure {
    use std::io::ErrorKind;
    use ureq::Timeout;
    match error {
        ureq::Error::HostNotFound => NetworkFailure::NoConnection("the server's name was not found".into()),
        ureq::Error::ConnectionFailed => NetworkFailure::NoConnection("the connection failed".into()),
        ureq::Error::Timeout(Timeout::Resolve | Timeout::Connect) => {
            NetworkFailure::NoConnection(format!("no answer within {} s", CONNECT_LIMIT.as_secs()))
        }
        ureq::Error::Timeout(Timeout::RecvResponse) => NetworkFailure::NoAnswer(ANSWER_LIMIT.as_secs()),
        ureq::Error::Timeout(_) => NetworkFailure::Stalled(STALL_LIMIT.as_secs()),
        ureq::Error::Io(e) => match e.kind() {
            ErrorKind::ConnectionRefused => {
                NetworkFailure::NoConnection("the server refused the connection".into())
            }
            ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable | ErrorKind::AddrNotAvailable => {
                NetworkFailure::NoConnection("there is no network route to the server".into())
            }
            ErrorKind::NotFound => NetworkFailure::NoConnection("the server's name was not found".into()),
            ErrorKind::TimedOut | ErrorKind::WouldBlock => NetworkFailure::Stalled(STALL_LIMIT.as_secs()),
            _ => NetworkFailure::ConnectionLost,
        },
        ureq::Error::Tls(what) => NetworkFailure::Tls(what.to_owned()),
        ureq::Error::Rustls(e) => NetworkFailure::Tls(e.to_string()),
        ureq::Error::BodyExceedsLimit(limit) => {
            NetworkFailure::Refused(format!("the server's answer is larger than {limit} bytes"))
        }
        ureq::Error::Protocol(_) => NetworkFailure::Refused("the server's answer is not valid HTTP".into()),
        other => NetworkFailure::Refused(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_that_moves_more_bytes_gets_more_time_at_the_floor_rate() {
        assert_eq!(Transport::deadline_for(0, 0), CALL_BASE);
        let page = Transport::deadline_for(10_000, 256 * 1024);
        assert_eq!(page, CALL_BASE + Duration::from_secs((10_000 + 256 * 1024) / FLOOR_RATE));
    }

    #[test]
    fn a_call_that_never_ends_fails_at_its_deadline_with_a_plain_message() {
        let (_keep, wait) = mpsc::channel::<()>();
        let result = run_with_deadline(Duration::from_millis(50), move || {
            // Blocks until the test ends: a socket that never returns.
            let _ = wait.recv();
            Err(SyncError::Protocol("unreachable".into()))
        });
        let error = result.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("did not finish within"), "{error}");
    }

    #[test]
    fn refused_and_unreachable_connections_say_so() {
        let refused = classify(ureq::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)));
        assert!(matches!(refused, NetworkFailure::NoConnection(_)));
        let lost = classify(ureq::Error::Io(std::io::Error::from(std::io::ErrorKind::BrokenPipe)));
        assert_eq!(lost, NetworkFailure::ConnectionLost);
        assert!(!lost.to_string().contains("os error"));
    }
}
