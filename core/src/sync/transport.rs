//! The only place the core touches the network: HTTPS (rustls, no OpenSSL) through `ureq`.
//! Bodies are counted so that a sync can report what it cost on the wire.

use std::cell::Cell;
use std::time::Duration;

use eenplan_protocol::api::ErrorBody;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::SyncError;

const TIMEOUT: Duration = Duration::from_secs(30);
/// A sync response can carry many bundles; anything above this is refused unread.
const MAX_RESPONSE: u64 = 64 * 1024 * 1024;

pub(crate) struct Transport {
    agent: ureq::Agent,
    base: String,
    pub sent: Cell<u64>,
    pub received: Cell<u64>,
}

impl Transport {
    pub fn new(base: &str) -> Transport {
        let config =
            ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(TIMEOUT)).build();
        Transport {
            agent: config.into(),
            base: base.trim_end_matches('/').to_owned(),
            sent: Cell::new(0),
            received: Cell::new(0),
        }
    }

    fn finish(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Vec<u8>, SyncError> {
        let mut response = response.map_err(|e| SyncError::Network(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()
            .map_err(|e| SyncError::Network(e.to_string()))?;
        self.received.set(self.received.get() + body.len() as u64);
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let error: ErrorBody = serde_json::from_slice(&body).unwrap_or(ErrorBody {
            code: format!("http_{status}"),
            message: String::from_utf8_lossy(&body).chars().take(200).collect(),
        });
        Err(match error.code.as_str() {
            "device_not_approved" => SyncError::NotApproved,
            "revoked" => SyncError::Revoked,
            _ => SyncError::Server { status, code: error.code, message: error.message },
        })
    }

    pub fn post_json<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Req,
    ) -> Result<Resp, SyncError> {
        let bytes = serde_json::to_vec(body).map_err(|e| SyncError::Protocol(e.to_string()))?;
        let body = self.post(path, token, "application/json", &bytes)?;
        serde_json::from_slice(&body).map_err(|e| SyncError::Protocol(format!("{path}: {e}")))
    }

    pub fn get_json<Resp: DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> Result<Resp, SyncError> {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = self.finish(request.call())?;
        serde_json::from_slice(&body).map_err(|e| SyncError::Protocol(format!("{path}: {e}")))
    }

    pub fn post(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<Vec<u8>, SyncError> {
        let mut request =
            self.agent.post(format!("{}{path}", self.base)).header("content-type", content_type);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        self.sent.set(self.sent.get() + bytes.len() as u64);
        self.finish(request.send(bytes))
    }
}
