//! The HTTP API between devices, administrators and the server: paths, JSON bodies for the
//! administrator API, and the two signatures that authenticate callers.
//!
//! **Administrators** sign every request with their Ed25519 key, whose certificate the network
//! root signed. Headers `x-eenplan-admin` (hex public key), `x-eenplan-time` (ms since the
//! epoch) and `x-eenplan-signature` (hex) carry
//!
//! ```text
//! Ed25519(admin, "eenplan/admin-request/v1\n" METHOD "\n" PATH "\n" TIME "\n" hex(SHA-256(body)))
//! ```
//!
//! where PATH is the path with its query string exactly as in the request line
//! (`/v1/admin/devices?state=pending`), and the server refuses a time more than
//! [`ADMIN_CLOCK_SKEW_MS`] away or a signature it saw before. **Devices** prove their key once
//! per session: they fetch a challenge, sign it, and receive a short-lived bearer token (no
//! passwords anywhere).
//!
//! **Live hints.** `GET /v1/live` (the bearer token in `Authorization` or, for WebSocket
//! clients that cannot set headers, `?token=`) upgrades to a WebSocket on which the server
//! sends one text frame per document that got new bundles and that the device may read: the
//! document id in hex (34 characters), e.g. `0f1e…a903`. A frame [`LIVE_RESYNC`] means hints
//! were dropped (the device fell behind): sync anyway. A hint carries no content; the device
//! answers any frame with a `POST /v1/sync`. The server closes the socket when the session
//! expires, when the device is revoked, and when it shuts down.
//!
//! **Enrolment codes** are made by the administrator's CLI: ten random bytes and the first five
//! bytes of SHA-256 of the network root key, in base32. The server stores only a hash of the
//! code; the device checks the root key the server hands it against the code, so a server
//! cannot substitute its own root.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const PATH_HEALTH: &str = "/healthz";
pub const PATH_METRICS: &str = "/metrics";
pub const PATH_ADMIN_INIT: &str = "/v1/admin/init";
pub const PATH_ADMIN_ORGS: &str = "/v1/admin/orgs";
pub const PATH_ADMIN_USERS: &str = "/v1/admin/users";
pub const PATH_ADMIN_ENROLMENTS: &str = "/v1/admin/enrolments";
pub const PATH_ADMIN_DEVICES: &str = "/v1/admin/devices";
pub const PATH_ENROL: &str = "/v1/enrol";
pub const PATH_AUTH_CHALLENGE: &str = "/v1/auth/challenge";
pub const PATH_AUTH_SESSION: &str = "/v1/auth/session";
pub const PATH_ME: &str = "/v1/me";
pub const PATH_SYNC: &str = "/v1/sync";
pub const PATH_LIVE: &str = "/v1/live";
/// `GET`: the user directory, for a regisseur's device choosing whom to add to a plan.
pub const PATH_USERS: &str = "/v1/users";
/// `GET ?device=HEX`: the certificate chain of a bundle author ([`CertificateInfo`]).
pub const PATH_CERTIFICATES: &str = "/v1/certificates";

/// `POST` ([`Assignment`]) by an administrator.
pub fn admin_participants_path(plan: &[u8; 16]) -> String {
    format!("/v1/admin/plans/{}/participants", hex(plan))
}

/// `POST` ([`Assignment`]) by a device whose user is the plan's regisseur.
pub fn participants_path(plan: &[u8; 16]) -> String {
    format!("/v1/plans/{}/participants", hex(plan))
}

/// `POST` ([`CertificateUpload`]): an administrator approves a pending device.
pub fn device_certificate_path(device_id: &[u8; 16]) -> String {
    format!("/v1/admin/devices/{}/certificate", hex(device_id))
}

/// The recipient id of key envelopes sealed to the network's escrow key (no device has it).
pub const ESCROW_RECIPIENT: [u8; 16] = [0; 16];

/// The live frame that means "hints were lost: sync now".
pub const LIVE_RESYNC: &str = "sync";

pub const HEADER_ADMIN: &str = "x-eenplan-admin";
pub const HEADER_TIME: &str = "x-eenplan-time";
pub const HEADER_SIGNATURE: &str = "x-eenplan-signature";
pub const ADMIN_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

/// What an administrator signs for one request.
pub fn admin_request_message(method: &str, path: &str, time_ms: i64, body: &[u8]) -> Vec<u8> {
    let digest = Sha256::digest(body);
    format!("eenplan/admin-request/v1\n{method}\n{path}\n{time_ms}\n{}", hex(&digest)).into_bytes()
}

/// What a device signs to turn a challenge into a session.
pub fn session_message(challenge: &[u8]) -> Vec<u8> {
    [b"eenplan/session/v1\n".as_slice(), challenge].concat()
}

/// What a device signs when it claims an enrolment code: proof that it holds the key.
pub fn enrol_message(code: &[u8], signing_public: &[u8; 32], agreement_public: &[u8]) -> Vec<u8> {
    [b"eenplan/enrol/v1\n".as_slice(), code, signing_public, agreement_public].concat()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

/// An enrolment code: what the administrator reads out to the person holding the new device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolmentCode {
    bytes: [u8; 15],
}

const BASE32: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

impl EnrolmentCode {
    /// A fresh code for the network whose root key is `root_public`; `None` when the
    /// operating system has no random source (a guessable code must never be issued).
    pub fn generate(root_public: &[u8; 32]) -> Option<EnrolmentCode> {
        let mut bytes = [0u8; 15];
        getrandom::fill(&mut bytes[..10]).ok()?;
        bytes[10..].copy_from_slice(&root_fingerprint(root_public));
        Some(EnrolmentCode { bytes })
    }

    /// Whether the code was made for this root key.
    pub fn matches_root(&self, root_public: &[u8; 32]) -> bool {
        self.bytes[10..] == root_fingerprint(root_public)
    }

    /// What the server stores instead of the code.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.bytes).into()
    }

    pub fn as_bytes(&self) -> &[u8; 15] {
        &self.bytes
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<EnrolmentCode> {
        Some(EnrolmentCode { bytes: bytes.try_into().ok()? })
    }

    /// Parses the printed form, ignoring dashes, spaces and case.
    pub fn parse(text: &str) -> Option<EnrolmentCode> {
        let mut bits: u32 = 0;
        let mut count = 0;
        let mut out = Vec::with_capacity(15);
        for c in text.chars().filter(|c| !matches!(c, '-' | ' ')) {
            let c = c.to_ascii_uppercase() as u8;
            let value = BASE32.iter().position(|&b| b == c)? as u32;
            bits = (bits << 5) | value;
            count += 5;
            if count >= 8 {
                count -= 8;
                out.push((bits >> count) as u8);
                bits &= (1 << count) - 1;
            }
        }
        Self::from_bytes(&out)
    }
}

impl std::fmt::Display for EnrolmentCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut bits: u32 = 0;
        let mut count = 0;
        let mut chars = Vec::with_capacity(24);
        for &byte in &self.bytes {
            bits = (bits << 8) | u32::from(byte);
            count += 8;
            while count >= 5 {
                count -= 5;
                chars.push(BASE32[((bits >> count) & 31) as usize] as char);
            }
            bits &= (1 << count) - 1;
        }
        for (i, group) in chars.chunks(4).enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            f.write_str(&group.iter().collect::<String>())?;
        }
        Ok(())
    }
}

fn root_fingerprint(root_public: &[u8; 32]) -> [u8; 5] {
    let digest = Sha256::digest(root_public);
    let mut out = [0u8; 5];
    out.copy_from_slice(&digest[..5]);
    out
}

/// `POST /v1/admin/init`: a fresh server learns its network. Signed by the first
/// administrator like any admin request; the server checks the admin certificate against the
/// root given here, and accepts this only once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitRequest {
    pub root_public: String,
    pub escrow_public: String,
    /// Ed25519(root, "eenplan/escrow/v1\n" || escrow_public): devices check it before
    /// sealing keys to escrow.
    pub escrow_signature: String,
    pub admin_certificate: String,
}

pub fn escrow_message(escrow_public: &[u8]) -> Vec<u8> {
    [b"eenplan/escrow/v1\n".as_slice(), escrow_public].concat()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOrg {
    pub name: String,
    /// Offline lease for this organisation's devices, in hours.
    pub lease_hours: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgInfo {
    pub id: i64,
    pub name: String,
    pub lease_hours: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUser {
    pub org: String,
    pub name: String,
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub id: i64,
    pub org: String,
    pub name: String,
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEnrolment {
    pub user_id: i64,
    /// Hex SHA-256 of the code; the code itself never reaches the server before the device.
    pub code_hash: String,
    pub expires_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub device_id: String,
    pub user_id: i64,
    pub user_name: String,
    pub org: String,
    pub role: String,
    pub state: String,
    pub signing_public: String,
    pub agreement_public: String,
    pub created_at_ms: i64,
}

/// `POST /v1/admin/devices/{id}/certificate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateUpload {
    pub certificate: String,
}

/// `POST /v1/admin/plans/{plan}/participants`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub user_id: i64,
    pub role: String,
}

/// `POST /v1/enrol` (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolRequest {
    /// The code as printed ([`EnrolmentCode::parse`]); the signature covers its 15 bytes.
    pub code: String,
    pub signing_public: String,
    pub agreement_public: String,
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolResponse {
    pub device_id: String,
    pub root_public: String,
    pub escrow_public: String,
    pub escrow_signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeRequest {
    pub device_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeResponse {
    pub challenge: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRequest {
    pub device_id: String,
    pub challenge: String,
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionResponse {
    pub token: String,
    pub expires_at_ms: i64,
}

/// `GET /v1/me`: the device's own certificate chain, once an administrator approved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeResponse {
    pub certificate: String,
    pub admin_certificate: String,
    pub lease_hours: u32,
}

/// `GET /v1/certificates?device=HEX`: what a receiver needs to verify a bundle's author. A
/// superset of [`MeResponse`], so a client may read it as one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateInfo {
    pub certificate: String,
    /// The certificate of the administrator who signed `certificate`.
    pub admin_certificate: String,
    /// The offline lease of the device's organisation.
    pub lease_hours: u32,
    /// Set once the device was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<i64>,
}

/// Every error body: a stable machine code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enrolment_code_round_trips_through_its_printed_form_and_knows_its_root() {
        let root = [7u8; 32];
        let code = EnrolmentCode::generate(&root).unwrap();
        let printed = code.to_string();
        assert_eq!(printed.len(), 29, "{printed}");
        assert_eq!(EnrolmentCode::parse(&printed.to_lowercase()), Some(code.clone()));
        assert!(code.matches_root(&root));
        assert!(!code.matches_root(&[8u8; 32]));
        assert_eq!(EnrolmentCode::parse("not a code!"), None);
        assert_eq!(EnrolmentCode::parse("ABCD"), None);
    }

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        assert_eq!(unhex(&hex(&[0, 255, 16])), Some(vec![0, 255, 16]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("éé"), None);
    }
}
