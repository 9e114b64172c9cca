//! Signed requests to the server's administrator API.
//!
//! Every request carries the administrator's public key, the time, the server's origin, and an
//! Ed25519 signature over `admin_request_message(ROOT + ORIGIN, METHOD, PATH, TIME, body)` (see
//! `eenplan_protocol::api`): a request made for this network and this server does nothing on
//! any other. The signature covers the exact body bytes sent, so bodies are serialised once,
//! here, and those bytes are both signed and sent. Redirects are not followed: a signature is
//! for one path.

use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey};
use eenplan_protocol::api::{self, ErrorBody};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::AdminError;

/// The server's answers are lists of organisations, users and devices; anything beyond this is
/// not an answer we asked for.
const MAX_RESPONSE_LEN: u64 = 16 * 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(30);
const JSON: &str = "application/json";
const CBOR: &str = eenplan_protocol::rekey::CONTENT_TYPE;

/// The authentication headers of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub admin: String,
    pub time: String,
    pub origin: String,
    pub signature: String,
}

/// Signs one request for `audience`: `path_and_query` exactly as it goes on the request line.
pub fn sign(
    admin: &SigningKey,
    audience: api::AdminAudience<'_>,
    method: &str,
    path_and_query: &str,
    time_ms: i64,
    body: &[u8],
) -> SignedHeaders {
    let message = api::admin_request_message(audience, method, path_and_query, time_ms, body);
    SignedHeaders {
        admin: api::hex(admin.verifying_key().as_bytes()),
        time: time_ms.to_string(),
        origin: audience.origin.to_string(),
        signature: api::hex(&admin.sign(&message).to_bytes()),
    }
}

/// A server's base URL: `http(s)://host[:port]`, without a path, so that the path the server
/// sees is the path that was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl(String);

impl ServerUrl {
    pub fn parse(text: &str) -> Result<ServerUrl, AdminError> {
        let bad = |why: &str| AdminError::Usage(format!("server URL {text:?}: {why}"));
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
            .ok_or_else(|| bad("must start with https:// (or http:// for a server on this machine)"))?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() {
            return Err(bad("has no host"));
        }
        if authority.contains(['/', '?', '#', '@'])
            || authority.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad("must be just scheme, host and port, without a path"));
        }
        let scheme_len = text.len() - rest.len();
        Ok(ServerUrl(format!("{}{authority}", &text[..scheme_len])))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The origin admin signatures name (lower case).
    pub fn origin(&self) -> String {
        api::normalise_origin(&self.0).unwrap_or_else(|| self.0.to_ascii_lowercase())
    }

    /// Plain HTTP to another machine exposes the administrator's requests to the network.
    pub fn is_insecure_remote(&self) -> bool {
        self.0.starts_with("http://") && !self.is_loopback()
    }

    /// Whether the server is on this machine (a test network, as far as keyrings go).
    pub fn is_loopback(&self) -> bool {
        let authority = self.0.split_once("://").map_or(self.0.as_str(), |(_, rest)| rest);
        let host = if authority.starts_with('[') {
            authority.split_inclusive(']').next().unwrap_or(authority)
        } else {
            authority.split(':').next().unwrap_or(authority)
        };
        matches!(host, "localhost" | "[::1]") || host.starts_with("127.")
    }
}

/// The administrator's connection to one server of one network.
pub struct Client<'k> {
    agent: ureq::Agent,
    base: ServerUrl,
    origin: String,
    root_public: [u8; 32],
    admin: &'k SigningKey,
}

impl std::fmt::Debug for Client<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish_non_exhaustive()
    }
}

impl<'k> Client<'k> {
    /// A client for the server at `base` of the network whose root key is `root_public`.
    pub fn new(base: ServerUrl, admin: &'k SigningKey, root_public: [u8; 32]) -> Client<'k> {
        let agent = ureq::Agent::config_builder()
            // Error statuses carry an `ErrorBody` we want to read and show.
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(TIMEOUT))
            .build()
            .new_agent();
        Client { agent, origin: base.origin(), base, root_public, admin }
    }

    /// `GET path_and_query`, the answer decoded as `T`.
    pub fn get<T: DeserializeOwned>(&self, path_and_query: &str) -> Result<T, AdminError> {
        let body = self.send("GET", path_and_query, None, JSON)?;
        decode(&body)
    }

    /// `POST path` with `request` as JSON; the raw answer (what each endpoint answers to a
    /// POST is decoded by the caller, which may only need the status).
    pub fn post<B: Serialize>(&self, path: &str, request: &B) -> Result<Vec<u8>, AdminError> {
        let body = serde_json::to_vec(request).map_err(AdminError::Json)?;
        self.send("POST", path, Some(body), JSON)
    }

    /// `GET path_and_query` answered in CBOR (re-keying tasks), of at most `limit` bytes.
    pub fn get_cbor<T: DeserializeOwned>(&self, path_and_query: &str, limit: usize) -> Result<T, AdminError> {
        let body = self.send("GET", path_and_query, None, CBOR)?;
        eenplan_protocol::sync::decode(&body, limit).map_err(|_| {
            AdminError::BadResponse(format!("{path_and_query}: the answer is not the CBOR expected"))
        })
    }

    /// `GET path_and_query`, the raw answer (a signed revocation list).
    pub fn get_bytes(&self, path_and_query: &str) -> Result<Vec<u8>, AdminError> {
        self.send("GET", path_and_query, None, CBOR)
    }

    /// `POST path` with a CBOR body (re-keying batches, revocation lists).
    pub fn post_cbor(&self, path: &str, body: Vec<u8>) -> Result<Vec<u8>, AdminError> {
        self.send("POST", path, Some(body), CBOR)
    }

    fn send(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> Result<Vec<u8>, AdminError> {
        let url = format!("{}{path_and_query}", self.base.as_str());
        let bytes = body.as_deref().unwrap_or_default();
        let audience = api::AdminAudience { root_public: &self.root_public, origin: &self.origin };
        let time = REQUEST_CLOCK.time_for(now_ms()?);
        let headers = sign(self.admin, audience, method, path_and_query, time, bytes);
        let transport =
            |source: ureq::Error| AdminError::Transport { url: url.clone(), source: Box::new(source) };
        let response = match body {
            Some(body) => self
                .agent
                .post(&url)
                .header(api::HEADER_ADMIN, &headers.admin)
                .header(api::HEADER_TIME, &headers.time)
                .header(api::HEADER_ORIGIN, &headers.origin)
                .header(api::HEADER_SIGNATURE, &headers.signature)
                .content_type(content_type)
                .send(body.as_slice()),
            None => self
                .agent
                .get(&url)
                .header(api::HEADER_ADMIN, &headers.admin)
                .header(api::HEADER_TIME, &headers.time)
                .header(api::HEADER_ORIGIN, &headers.origin)
                .header(api::HEADER_SIGNATURE, &headers.signature)
                .header("accept", content_type)
                .call(),
        }
        .map_err(transport)?;
        let status = response.status().as_u16();
        let answer = response
            .into_body()
            .into_with_config()
            .limit(MAX_RESPONSE_LEN)
            .read_to_vec()
            .map_err(transport)?;
        if (200..300).contains(&status) { Ok(answer) } else { Err(server_error(status, &answer)) }
    }
}

/// The times of this process's signed requests: two identical requests (the console's polls,
/// a command's repeated listing) in one millisecond would otherwise be refused as a replay.
static REQUEST_CLOCK: api::AdminRequestClock = api::AdminRequestClock::new();

/// Milliseconds since the Unix epoch, as the API counts time.
pub fn now_ms() -> Result<i64, AdminError> {
    let elapsed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_err(|_| AdminError::Clock)?;
    i64::try_from(elapsed.as_millis()).map_err(|_| AdminError::Clock)
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    serde_json::from_slice(body).map_err(|e| AdminError::BadResponse(e.to_string()))
}

/// The server's `ErrorBody`, or what little can be said when it sent something else (a proxy's
/// HTML page, say).
fn server_error(status: u16, body: &[u8]) -> AdminError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { code, message }) => AdminError::Server { status, code, message },
        Err(_) => AdminError::UnexpectedStatus {
            status,
            excerpt: String::from_utf8_lossy(body).chars().filter(|c| !c.is_control()).take(200).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signature, Verifier};

    use super::*;

    const ROOT: [u8; 32] = [3; 32];
    const AUDIENCE: api::AdminAudience<'static> =
        api::AdminAudience { root_public: &ROOT, origin: "https://eenplan.example" };

    #[test]
    fn the_signed_message_is_the_protocols_and_verifies_with_the_admin_key() {
        let admin = SigningKey::from_bytes(&[5; 32]);
        let body = br#"{"name":"Wijkteam Noord","lease_hours":72}"#;
        let headers = sign(&admin, AUDIENCE, "POST", "/v1/admin/orgs", 1_700_000_000_123, body);
        assert_eq!(headers.admin, api::hex(admin.verifying_key().as_bytes()));
        assert_eq!(headers.time, "1700000000123");
        assert_eq!(headers.origin, "https://eenplan.example");
        let signature: [u8; 64] = api::unhex(&headers.signature).unwrap().try_into().unwrap();
        let expected =
            api::admin_request_message(AUDIENCE, "POST", "/v1/admin/orgs", 1_700_000_000_123, body);
        admin.verifying_key().verify(&expected, &Signature::from_bytes(&signature)).unwrap();
        // The signature is bound to network, server, method, path, time and body.
        let other_root = api::AdminAudience { root_public: &[4; 32], ..AUDIENCE };
        let other_origin = api::AdminAudience { origin: "https://other.example", ..AUDIENCE };
        for other in [
            api::admin_request_message(other_root, "POST", "/v1/admin/orgs", 1_700_000_000_123, body),
            api::admin_request_message(other_origin, "POST", "/v1/admin/orgs", 1_700_000_000_123, body),
            api::admin_request_message(AUDIENCE, "GET", "/v1/admin/orgs", 1_700_000_000_123, body),
            api::admin_request_message(AUDIENCE, "POST", "/v1/admin/users", 1_700_000_000_123, body),
            api::admin_request_message(AUDIENCE, "POST", "/v1/admin/orgs", 1_700_000_000_124, body),
            api::admin_request_message(AUDIENCE, "POST", "/v1/admin/orgs", 1_700_000_000_123, b"{}"),
        ] {
            assert!(admin.verifying_key().verify(&other, &Signature::from_bytes(&signature)).is_err());
        }
    }

    #[test]
    fn a_get_signs_the_query_and_an_empty_body() {
        let admin = SigningKey::from_bytes(&[6; 32]);
        let headers = sign(&admin, AUDIENCE, "GET", "/v1/admin/devices?state=pending", 42, b"");
        let signature: [u8; 64] = api::unhex(&headers.signature).unwrap().try_into().unwrap();
        let expected =
            api::admin_request_message(AUDIENCE, "GET", "/v1/admin/devices?state=pending", 42, b"");
        admin.verifying_key().verify_strict(&expected, &Signature::from_bytes(&signature)).unwrap();
    }

    #[test]
    fn server_urls_are_scheme_host_and_port_only() {
        assert_eq!(ServerUrl::parse("https://eenplan.example/").unwrap().as_str(), "https://eenplan.example");
        assert_eq!(ServerUrl::parse("http://127.0.0.1:8080").unwrap().as_str(), "http://127.0.0.1:8080");
        for bad in [
            "eenplan.example",
            "ftp://x",
            "https://",
            "https://x/api",
            "https://x?y",
            "https://u@x",
            "https://a b",
        ] {
            assert!(ServerUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(!ServerUrl::parse("http://127.0.0.1:1").unwrap().is_insecure_remote());
        assert!(!ServerUrl::parse("http://localhost:1").unwrap().is_insecure_remote());
        assert!(!ServerUrl::parse("http://[::1]:1").unwrap().is_insecure_remote());
        assert!(!ServerUrl::parse("https://eenplan.example").unwrap().is_insecure_remote());
        assert!(ServerUrl::parse("http://eenplan.example").unwrap().is_insecure_remote());
        assert_eq!(
            ServerUrl::parse("https://EenPlan.Example:8443/").unwrap().origin(),
            "https://eenplan.example:8443"
        );
    }

    #[test]
    fn error_bodies_become_typed_errors() {
        let error = server_error(404, br#"{"code":"unknown_user","message":"no such user"}"#);
        assert_eq!(error.to_string(), "no such user (unknown_user)");
        let error = server_error(502, b"<html>Bad Gateway</html>");
        assert!(matches!(error, AdminError::UnexpectedStatus { status: 502, .. }), "{error}");
    }
}
