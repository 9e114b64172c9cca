//! The HTTP API between devices, administrators and the server: paths, JSON bodies for the
//! administrator API, and the two signatures that authenticate callers.
//!
//! **Administrators** sign every request with their Ed25519 key, whose certificate the network
//! root signed. Headers `x-eenplan-admin` (hex public key), `x-eenplan-time` (ms since the
//! epoch), `x-eenplan-origin` (the server's origin as the administrator addressed it) and
//! `x-eenplan-signature` (hex) carry
//!
//! ```text
//! Ed25519(admin, "eenplan/admin-request/v2\n" hex(ROOT) "\n" ORIGIN "\n" METHOD "\n" PATH "\n"
//!                TIME "\n" hex(SHA-256(body)))
//! ```
//!
//! where ROOT is the network's root key (the server checks with the root it serves, so a
//! request made for one network does nothing on another's server), ORIGIN is
//! `scheme://host[:port]` in lower case ([`normalise_origin`]), and PATH is the path with its
//! query string exactly as in the request line (`/v1/admin/devices?state=pending`). The server
//! refuses a time more than [`ADMIN_CLOCK_SKEW_MS`] away, a signature it saw before, and, when
//! its operator named the origins it answers to (`--origin`), any other origin: behind a load
//! balancer the server cannot tell its own public name from the request, so it is configured,
//! never guessed from `Host` or `X-Forwarded-*`. **Devices** prove their key once
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
//! **Enrolment codes** are made by the administrator's CLI: ten random bytes `r` and a
//! five-byte tag, in base32 (24 characters). `r` never leaves the administrator's keyring and
//! the device; everything else is derived from it with HMAC-SHA256:
//!
//! ```text
//! code_id = HMAC(r, "eenplan/enrol-id/v1")                          what the server stores
//! mac_key = HMAC(r, "eenplan/enrol-mac/v1")                         kept in the admin keyring
//! tag     = Trunc5(HMAC(r, "eenplan/enrol-root/v1" || root_public)) the code's last 5 bytes
//! key_mac = HMAC(mac_key, "eenplan/enrol-keys/v1" || signing_public || agreement_public)
//! ```
//!
//! The administrator registers `code_id` with the server ([`NewEnrolment`]). The device sends
//! `code_id`, its keys, its signature over [`enrol_message`] and `key_mac` ([`EnrolRequest`]),
//! never `r` or the printed code. The server stores `key_mac` with the pending device and lists
//! it ([`DeviceInfo`]); the administrator approves a device only if its `key_mac` verifies
//! under the `mac_key` of a code the keyring issued, and certifies it for the user the keyring
//! issued that code to. So a server, which knows only `code_id`, can neither register keys of
//! its own under a code (it cannot compute `key_mac`) nor make a root key that passes the tag
//! check: without `r` it cannot compute the tag offline, and every wrong guess costs it a
//! failed enrolment that the device reports.
mod enrolment_link;
mod error_code;
mod server_url;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::device_name::{Platform, SignedDeviceName};
pub use enrolment_link::{EnrolmentLink, EnrolmentLinkError};
pub use error_code::ErrorCode;
pub use server_url::{MAX_SERVER_URL_CHARS, ServerUrl, ServerUrlError};

pub const PATH_HEALTH: &str = "/healthz";
pub const PATH_METRICS: &str = "/metrics";
pub const PATH_ADMIN_INIT: &str = "/v1/admin/init";
pub const PATH_ADMIN_ORGS: &str = "/v1/admin/orgs";
pub const PATH_ADMIN_USERS: &str = "/v1/admin/users";
pub const PATH_ADMIN_ENROLMENTS: &str = "/v1/admin/enrolments";
pub const PATH_ADMIN_DEVICES: &str = "/v1/admin/devices";
/// `POST`: registers another administrator ([`NewAdmin`]); network-wide administrators only.
pub const PATH_ADMIN_ADMINS: &str = "/v1/admin/admins";
pub const PATH_ENROL: &str = "/v1/enrol";
pub const PATH_AUTH_CHALLENGE: &str = "/v1/auth/challenge";
pub const PATH_AUTH_SESSION: &str = "/v1/auth/session";
pub const PATH_ME: &str = "/v1/me";
pub const PATH_SYNC: &str = "/v1/sync";
pub const PATH_LIVE: &str = "/v1/live";
/// Formerly the whole user directory; now answers 410 [`code::DIRECTORY_REMOVED`]. Devices
/// look a user up by exact name at [`PATH_USER_LOOKUP`].
pub const PATH_USERS: &str = "/v1/users";
/// `POST` [`UserLookup`] → `[UserMatch]`: the users with exactly this name, so a regisseur's
/// device can add one of them to a plan. A device can ask only for a name it already knows.
pub const PATH_USER_LOOKUP: &str = "/v1/users/lookup";
/// `GET ?device=HEX`: the certificate chain of a bundle author ([`CertificateInfo`]).
pub const PATH_CERTIFICATES: &str = "/v1/certificates";
/// `GET`: the current signed policy; `GET ?version=N`: an earlier one, by which the writes of
/// an epoch made under it are judged.
pub const PATH_POLICY: &str = "/v1/policy";
pub const PATH_ADMIN_POLICY: &str = "/v1/admin/policy";
/// `GET` tasks, `POST` results: CBOR ([`crate::rekey`]).
pub const PATH_ADMIN_REKEY: &str = "/v1/admin/rekey";
/// `GET [?version=N]` (devices, bearer token): the newest signed revocation list, or version
/// N, as raw CBOR ([`crate::revocation`]); 404 `no_revocation_list` before the first one,
/// `unknown_revocation_list_version` for a version never stored.
pub const PATH_REVOCATIONS: &str = "/v1/revocations";
/// `GET [?version=N]` as [`PATH_REVOCATIONS`], for administrators; `POST` the next version
/// (raw CBOR), answered with [`RevocationListStored`].
pub const PATH_ADMIN_REVOCATIONS: &str = "/v1/admin/revocations";
/// `GET` (every version, public) and `POST` ([`AuditKeyUpload`]) an organisation's
/// root-signed audit key: `?org=NAME` on the GET.
pub const PATH_ADMIN_AUDIT_KEYS: &str = "/v1/admin/audit/keys";
/// `GET ?org=NAME&after=ID&limit=N&query=Q`: the organisation's sealed access-log uploads
/// ([`AuditUploadPage`]). Logged by the server as a read of the log, naming `query`
/// ([`AuditQuery`]).
pub const PATH_ADMIN_AUDIT_UPLOADS: &str = "/v1/admin/audit/uploads";
/// `GET ?after=SEQ&limit=N&query=Q`: the server's own signed event chain
/// ([`ServerEventPage`]); logged like the uploads.
pub const PATH_ADMIN_AUDIT_SERVER_EVENTS: &str = "/v1/admin/audit/server-events";
/// `GET`: the public key the server signs its own events with ([`ServerAuditKey`]).
pub const PATH_ADMIN_AUDIT_SERVER_KEY: &str = "/v1/admin/audit/server-key";
/// The most uploads or events one page of the access log carries.
pub const MAX_AUDIT_PAGE: usize = 1024;
pub const PATH_WIPE_ORDER: &str = "/v1/wipe-order";
pub const PATH_WIPE_REPORT: &str = "/v1/wipe-report";

/// `POST`: revoke a device ([`RevokeRequest`]).
pub fn admin_revoke_path(device_id: &[u8; 16]) -> String {
    format!("{PATH_ADMIN_DEVICES}/{}/revoke", hex(device_id))
}

/// `GET`: the plans a user takes part in by the server's records ([`UserPlans`]), for
/// offboarding.
pub fn admin_user_plans_path(user_id: i64) -> String {
    format!("{PATH_ADMIN_USERS}/{user_id}/plans")
}

/// `POST` ([`RoleChangeRequest`]): give a user another role, with their devices' new
/// certificates; what the user loses moves to a new epoch.
pub fn admin_user_role_path(user_id: i64) -> String {
    format!("{PATH_ADMIN_USERS}/{user_id}/role")
}

/// `POST`: remove a user from a plan; the plan's documents move to a new epoch.
pub fn admin_unassign_path(plan: &[u8; 16], user_id: i64) -> String {
    format!("{}/{user_id}/remove", admin_participants_path(plan))
}

/// `POST` ([`Assignment`]) by an administrator.
pub fn admin_participants_path(plan: &[u8; 16]) -> String {
    format!("/v1/admin/plans/{}/participants", hex(plan))
}

/// `POST` (CBOR [`crate::membership::SignedEntry`]): the next entry of a plan's membership
/// chain, signed by a device (204; 409 `membership_conflict` when another entry came first,
/// 403 `not_regisseur` when the chain does not let its signer make it). `GET ?after=N`: the
/// chain's signed entries after position N (CBOR list), for a participant's device.
pub fn membership_path(plan: &[u8; 16]) -> String {
    format!("/v1/plans/{}/membership", hex(plan))
}

/// `POST` (CBOR [`crate::sync::ErasureUpload`], by the regisseur's device): erase one family
/// member's personal data (AVG) by replacing the plan's `basis` with a history-free base at
/// a new epoch ([`crate::membership::Erasure`]). Answers [`MemberErased`]; 409
/// `membership_conflict` when the chain or the document's log moved on (sync, then again),
/// 409 `stale` when the epoch is not the document's next, 403 `not_regisseur`.
pub fn erasure_path(plan: &[u8; 16]) -> String {
    format!("/v1/plans/{}/erasure", hex(plan))
}

/// What a member's erasure deleted on the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberErased {
    pub bundles: u64,
    pub envelopes: u64,
    pub escrow_envelopes: u64,
}

/// `GET`: the plan's whole membership chain (CBOR list of signed entries), for an
/// administrator. `POST` (CBOR `SignedEntry` the administrator signed): a handover or a
/// removal for a regisseur who is gone ([`RotationsQueued`]).
pub fn admin_membership_path(plan: &[u8; 16]) -> String {
    format!("/v1/admin/plans/{}/membership", hex(plan))
}

/// `GET` ([`ClosedPlans`]): the plans whose membership chain ends with a close, by the
/// server's word; `eenplan-admin retention run` verifies each chain itself.
pub const PATH_ADMIN_CLOSED_PLANS: &str = "/v1/admin/retention/closed";

/// `POST` (empty body; [`PlanErased`]): erase a closed plan whose retention period has
/// ended (crypto-erasure: every envelope, escrow included, every bundle and snapshot, the
/// chain; a tombstone stays so the plan cannot be registered again). The server checks its
/// own chain and clock: 409 `not_closed` or `retention_not_over` otherwise.
pub fn admin_erase_path(plan: &[u8; 16]) -> String {
    format!("/v1/admin/retention/plans/{}/erase", hex(plan))
}

/// `POST` ([`Assignment`]) by a device whose user is the plan's regisseur, for a plan that
/// has no membership chain (registered by an older device).
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

/// The most live sockets ([`PATH_LIVE`]) one device keeps open. Opening one more closes the
/// device's oldest (close code 1008, "too many live connections"): a phone that changed
/// networks reconnects before the server notices its old socket is dead, and the new socket
/// is the one it listens on.
pub const MAX_LIVE_SOCKETS_PER_DEVICE: usize = 3;

pub const HEADER_ADMIN: &str = "x-eenplan-admin";
pub const HEADER_TIME: &str = "x-eenplan-time";
pub const HEADER_ORIGIN: &str = "x-eenplan-origin";
pub const HEADER_SIGNATURE: &str = "x-eenplan-signature";
pub const ADMIN_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

/// The network and server one admin request is for: the root key of the network, and the
/// server's origin as the administrator addressed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminAudience<'a> {
    pub root_public: &'a [u8; 32],
    /// `scheme://host[:port]`, as [`normalise_origin`] gives it.
    pub origin: &'a str,
}

/// The times an administrator's client puts on its signed requests: the clock's, or one
/// millisecond past the previous request's when the clock has not moved on. Ed25519 signs
/// deterministically, so two identical requests in one millisecond carry the same signature,
/// and the server refuses the second as a replay (`replayed_request`).
#[derive(Debug)]
pub struct AdminRequestClock {
    last: std::sync::atomic::AtomicI64,
}

impl Default for AdminRequestClock {
    fn default() -> AdminRequestClock {
        AdminRequestClock::new()
    }
}

impl AdminRequestClock {
    pub const fn new() -> AdminRequestClock {
        AdminRequestClock { last: std::sync::atomic::AtomicI64::new(i64::MIN) }
    }

    /// The time for the next request, given the clock's `now_ms`: later than every earlier one.
    pub fn time_for(&self, now_ms: i64) -> i64 {
        use std::sync::atomic::Ordering;
        let next = |last: i64| now_ms.max(last.saturating_add(1));
        match self.last.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| Some(next(last))) {
            Ok(last) | Err(last) => next(last),
        }
    }
}

/// What an administrator signs for one request.
pub fn admin_request_message(
    audience: AdminAudience<'_>,
    method: &str,
    path: &str,
    time_ms: i64,
    body: &[u8],
) -> Vec<u8> {
    let digest = Sha256::digest(body);
    format!(
        "eenplan/admin-request/v2\n{}\n{}\n{method}\n{path}\n{time_ms}\n{}",
        hex(audience.root_public),
        audience.origin,
        hex(&digest)
    )
    .into_bytes()
}

/// An origin as admin signatures carry it: `scheme://host[:port]` in lower case, without a
/// trailing slash; `None` for anything else (a path, a query, user info, no scheme).
pub fn normalise_origin(text: &str) -> Option<String> {
    let text = text.trim().trim_end_matches('/');
    let (scheme, authority) = text.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https")
        || authority.is_empty()
        || authority.contains(['/', '?', '#', '@'])
        || authority.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    Some(format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

/// What a device signs to turn a challenge into a session.
pub fn session_message(challenge: &[u8]) -> Vec<u8> {
    [b"eenplan/session/v1\n".as_slice(), challenge].concat()
}

/// What a device signs to turn a challenge into a session while registering the hash of its
/// newest wipe nonce ([`SessionRequest::wipe_nonce_hash`], [`crate::wipe`]): the hash is under
/// the device's signature, so nobody on the way can register another.
pub fn session_message_with_wipe_nonce(challenge: &[u8], wipe_nonce_hash: &[u8; 32]) -> Vec<u8> {
    [b"eenplan/session/v2\n".as_slice(), challenge, wipe_nonce_hash].concat()
}

/// Error codes ([`ErrorBody::code`]) that clients branch on.
pub mod code {
    /// 413: a sync request carries more items in one list than
    /// [`crate::sync::SyncLimits`] allows; the message names the list. Send the rest in the
    /// next round.
    pub const TOO_MANY_ITEMS: &str = "too_many_items";
    /// 429: the device pushed more bundles or bytes in the past hour than its quota
    /// ([`crate::sync::PUSH_QUOTA_BUNDLES`], [`crate::sync::PUSH_QUOTA_BYTES`]). Retryable:
    /// the `Retry-After` header says after how many seconds.
    pub const QUOTA_EXCEEDED: &str = "quota_exceeded";
    /// 409: a wipe report for a device that is evidently alive: not revoked, and (for a
    /// self-wipe) its lease has not lapsed by the server's record of its last session.
    /// Nothing changed; send the report again later.
    pub const DEVICE_ACTIVE: &str = "device_active";
    /// 409: a self-wipe report whose nonce is not the one the device registered at its last
    /// session: a copy taken before that session. Nothing changed.
    pub const STALE_WIPE_REPORT: &str = "stale_wipe_report";
    /// 403: `POST /v1/admin/init` without the one-time init secret the server wrote to its
    /// data directory at its first start.
    pub const BAD_INIT_SECRET: &str = "bad_init_secret";
    /// 401: an admin request signed for another origin than the server was told to answer to.
    pub const WRONG_ORIGIN: &str = "wrong_origin";
    /// 410: `GET /v1/users` (the whole directory) is no more; use [`super::PATH_USER_LOOKUP`].
    pub const DIRECTORY_REMOVED: &str = "directory_removed";
    /// 403: the device was revoked (also while a request it sent before was in flight).
    pub const REVOKED: &str = "revoked";
    /// 403: an organisation's administrator asked for an act on another organisation's
    /// users, devices or participants.
    pub const OUT_OF_SCOPE: &str = "out_of_scope";
    /// 403: an act only a network-wide administrator may do (the policy, organisations,
    /// administrators, key epochs, erasure).
    pub const NETWORK_ADMIN_ONLY: &str = "network_admin_only";
}

/// What a device signs when it claims an enrolment code: proof that it holds the key. Covers
/// the code's id ([`EnrolmentCode::id`]), never the code itself.
pub fn enrol_message(code_id: &[u8; 32], signing_public: &[u8; 32], agreement_public: &[u8]) -> Vec<u8> {
    [b"eenplan/enrol/v2\n".as_slice(), code_id, signing_public, agreement_public].concat()
}

const LABEL_ENROL_ID: &[u8] = b"eenplan/enrol-id/v1";
const LABEL_ENROL_MAC: &[u8] = b"eenplan/enrol-mac/v1";
const LABEL_ENROL_ROOT: &[u8] = b"eenplan/enrol-root/v1";
const LABEL_ENROL_KEYS: &[u8] = b"eenplan/enrol-keys/v1";

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; this never fails.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for part in parts {
        mac.update(part);
    }
    mac
}

fn hmac_bytes(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    hmac_sha256(key, parts).finalize().into_bytes().into()
}

/// `HMAC(mac_key, "eenplan/enrol-keys/v1" || signing_public || agreement_public)`: the device's
/// proof that it knows the code it claims, bound to its keys (see the module docs).
pub fn key_mac(mac_key: &[u8; 32], signing_public: &[u8; 32], agreement_public: &[u8]) -> [u8; 32] {
    hmac_bytes(mac_key, &[LABEL_ENROL_KEYS, signing_public, agreement_public])
}

/// Whether `mac` is [`key_mac`] of these keys (in constant time).
pub fn verify_key_mac(
    mac_key: &[u8; 32],
    signing_public: &[u8; 32],
    agreement_public: &[u8],
    mac: &[u8],
) -> bool {
    hmac_sha256(mac_key, &[LABEL_ENROL_KEYS, signing_public, agreement_public]).verify_slice(mac).is_ok()
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
        let mut code = EnrolmentCode { bytes };
        let tag = code.root_tag(root_public);
        code.bytes[10..].copy_from_slice(&tag);
        Some(code)
    }

    /// The ten random bytes: the secret the code stands for.
    fn secret(&self) -> &[u8] {
        &self.bytes[..10]
    }

    fn root_tag(&self, root_public: &[u8; 32]) -> [u8; 5] {
        let full = hmac_bytes(self.secret(), &[LABEL_ENROL_ROOT, root_public]);
        let mut out = [0u8; 5];
        out.copy_from_slice(&full[..5]);
        out
    }

    /// Whether the code was made for this root key (in constant time).
    pub fn matches_root(&self, root_public: &[u8; 32]) -> bool {
        hmac_sha256(self.secret(), &[LABEL_ENROL_ROOT, root_public])
            .verify_truncated_left(&self.bytes[10..])
            .is_ok()
    }

    /// The code's id: what the server stores and the device names when it claims the code.
    pub fn id(&self) -> [u8; 32] {
        hmac_bytes(self.secret(), &[LABEL_ENROL_ID])
    }

    /// The key of the device's [`key_mac`]: kept by the administrator, never sent.
    pub fn mac_key(&self) -> [u8; 32] {
        hmac_bytes(self.secret(), &[LABEL_ENROL_MAC])
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

/// `POST /v1/admin/init`: a fresh server learns its network. Signed by the first
/// administrator like any admin request; the server checks the admin certificate against the
/// root given here, and accepts this only once.
/// A new administrator: hex of its root-signed certificate (`eenplan-admin admin add`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAdmin {
    pub certificate: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitRequest {
    pub root_public: String,
    pub escrow_public: String,
    /// Ed25519(root, "eenplan/escrow/v1\n" || escrow_public): devices check it before
    /// sealing keys to escrow.
    pub escrow_signature: String,
    pub admin_certificate: String,
    /// The network's first sharing policy: hex of [`crate::policy::SignedPolicy`] bytes,
    /// signed by the root (the administrator's CLI signs the default policy). The server
    /// stores it with the network, so the network is never without a policy.
    pub policy: String,
    /// The one-time secret a fresh server writes to `DATA/init-secret` (mode 0600) at its
    /// first start: whoever may read the server's files may claim it, nobody else.
    #[serde(default)]
    pub init_secret: String,
}

/// The name of the file, in the server's data directory, that holds its one-time init secret
/// until the network is initialised.
pub const INIT_SECRET_FILE: &str = "init-secret";

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

/// `POST /v1/users/lookup`: whom a device means by a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLookup {
    /// Exactly as the user is named (case and spaces count).
    pub name: String,
}

/// One user with the looked-up name: what adding them to a plan needs (the id) and what tells
/// two of the same name apart (the organisation). Not their role, nor anyone else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserMatch {
    pub id: i64,
    pub name: String,
    pub org: String,
    /// The certificate chains of the user's active devices: a regisseur adding the user to a
    /// plan names them by one of these, which every participant verifies against the root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<CertificateChain>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEnrolment {
    pub user_id: i64,
    /// Hex [`EnrolmentCode::id`]; the code itself never reaches the server.
    pub code_id: String,
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
    /// Hex [`key_mac`] the device sent when it claimed its code (empty for devices enrolled
    /// before the server stored it): the administrator checks it before approving.
    pub key_mac: String,
    pub created_at_ms: i64,
    /// What the device calls itself ("Wim's Android"), as it signed it; empty if it never
    /// said. Believe it only once [`DeviceInfo::label_signature`] verifies
    /// ([`SignedDeviceName::verify`]) under the device's root-certified key.
    #[serde(default)]
    pub label: String,
    /// The platform the device reported with its name (`android`, `ios`, `desktop`, `other`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Hex signature of the device over its name ([`crate::device_name::name_message`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label_signature: String,
    /// When the device claimed its enrolment code (the same as `created_at_ms`).
    #[serde(default)]
    pub enrolled_at_ms: i64,
    /// When the server last saw the device (a session or a request with its token), to the
    /// minute; `None` if never.
    #[serde(default)]
    pub last_seen_ms: Option<i64>,
    #[serde(default)]
    pub revoked_at_ms: Option<i64>,
    /// When the device reported, signed, that it erased itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wiped_at_ms: Option<i64>,
    /// Hex certificate chain of an approved device (empty while pending): an administrator
    /// who re-certifies the device (`user set-role`) copies its keys from the certificate the
    /// root vouches for, not from the server's listing.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub certificate: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub admin_certificate: String,
}

/// `GET /v1/admin/users/{id}/plans`: the plans the user takes part in, as the server stores
/// participation. The administrator checks each plan's signed chain before acting on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPlans {
    pub user_id: i64,
    pub plans: Vec<UserPlan>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPlan {
    /// Hex plan id.
    pub plan: String,
    pub plan_role: String,
    /// Whether the plan has a signed membership chain (participants change only through it).
    pub chained: bool,
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

/// `POST /v1/enrol` (JSON). Carries neither the code nor its secret (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolRequest {
    /// Hex [`EnrolmentCode::id`].
    pub code_id: String,
    pub signing_public: String,
    pub agreement_public: String,
    /// Hex Ed25519 signature over [`enrol_message`].
    pub signature: String,
    /// Hex [`key_mac`] under the code's [`EnrolmentCode::mac_key`].
    pub key_mac: String,
    /// What the device calls itself, signed by it ([`crate::device_name`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<SignedDeviceName>,
}

impl EnrolRequest {
    /// The request a device with these keys sends to claim `code`; `sign` signs with its
    /// signing key.
    pub fn new(
        code: &EnrolmentCode,
        signing_public: &[u8; 32],
        agreement_public: &[u8],
        sign: impl FnOnce(&[u8]) -> [u8; 64],
    ) -> EnrolRequest {
        let code_id = code.id();
        let signature = sign(&enrol_message(&code_id, signing_public, agreement_public));
        EnrolRequest {
            code_id: hex(&code_id),
            signing_public: hex(signing_public),
            agreement_public: hex(agreement_public),
            signature: hex(&signature),
            key_mac: hex(&key_mac(&code.mac_key(), signing_public, agreement_public)),
            name: None,
        }
    }
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
    /// Over [`session_message`], or over [`session_message_with_wipe_nonce`] when
    /// `wipe_nonce_hash` is set.
    pub signature: String,
    /// Hex [`crate::wipe::wipe_nonce_hash`] of the nonce the device's newest self-wipe report
    /// carries. The server then accepts a self-wipe report only with that nonce, so a copy of
    /// the device's files taken before this session cannot report it wiped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wipe_nonce_hash: Option<String>,
    /// What the device calls itself now, signed by it ([`crate::device_name`]); the server
    /// keeps the newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<SignedDeviceName>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionResponse {
    pub token: String,
    pub expires_at_ms: i64,
    /// `valid_from_ms` of the device's current certificate. A device whose own certificate is
    /// older fetches the new one (`GET /v1/me`): an administrator changed its role.
    #[serde(default)]
    pub certified_at_ms: i64,
    /// The server's clock when it answered (ms since the epoch). Devices correct their own
    /// clock by it, within bounds, for time stamps and the offline lease: a phone whose
    /// clock is wrong neither stamps edits days ahead nor stretches its lease.
    pub server_time_ms: i64,
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
    /// The device's earlier certificates (a role change re-certifies it), oldest first: a
    /// write is judged by the certificate in force in the epoch it was written in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub older: Vec<CertificateChain>,
}

/// A device certificate with the certificate of the administrator who signed it (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateChain {
    pub certificate: String,
    pub admin_certificate: String,
}

/// `POST /v1/admin/users/{id}/role`: the new role, and a new certificate (hex, same keys,
/// the new role) for every active device of the user. The server refuses the change unless
/// it covers exactly those devices; the response counts the documents waiting for a new
/// epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleChangeRequest {
    pub role: String,
    pub certificates: Vec<CertificateUpload>,
}

/// `POST /v1/admin/policy`: a policy signed by the root ([`crate::policy::SignedPolicy`]).
/// The server refuses one that is not newer than the current policy; the response lists how
/// many documents now wait for a new key epoch (a role lost read access to them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyUpload {
    pub policy: String,
}

/// `GET /v1/policy` and `GET /v1/admin/policy`: the current signed policy (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyInfo {
    pub policy: String,
}

/// The answer to a change that rotates keys (revocation, unassignment, policy change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationsQueued {
    /// Documents waiting for a new epoch (all of them, not only those this change added).
    pub pending: u64,
}

/// The answer to `POST /v1/admin/revocations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationListStored {
    pub version: u32,
}

/// `POST /v1/admin/devices/{id}/revoke`. The device must be on the newest revocation list
/// (`POST /v1/admin/revocations` first); otherwise 409 `not_on_revocation_list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeRequest {
    /// lost | stolen | replaced | left
    pub reason: String,
    /// The signed wipe order ([`crate::wipe::WipeOrder`]), hex.
    pub wipe_order: String,
}

/// `POST /v1/wipe-order` (no session: a revoked device has none): the order waiting for a
/// device, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WipeOrderRequest {
    pub device_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WipeOrderResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
}

/// `POST /v1/wipe-report`: a device's signed report that it wiped itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WipeReportUpload {
    pub report: String,
}

/// Every error body: a stable machine code ([`ErrorCode::as_str`]) and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// `POST /v1/admin/audit/keys`: hex of [`crate::audit::SignedAuditKey`] bytes. The server
/// checks the root's signature and that the version is above the organisation's newest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditKeyUpload {
    pub key: String,
}

/// `GET /v1/admin/audit/keys?org=NAME`: every version, oldest first, each hex of
/// [`crate::audit::SignedAuditKey`] bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditKeyList {
    pub keys: Vec<String>,
}

/// What a read of the access log is for, as the server's log records it: the words of
/// `query=` on the read paths. `verify` reads everything, the others one plan, user or
/// device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditQuery {
    Verify,
    Plan([u8; 16]),
    User(i64),
    Device([u8; 16]),
}

impl AuditQuery {
    pub fn to_text(self) -> String {
        match self {
            AuditQuery::Verify => "verify".into(),
            AuditQuery::Plan(plan) => format!("plan:{}", hex(&plan)),
            AuditQuery::User(user) => format!("user:{user}"),
            AuditQuery::Device(device) => format!("device:{}", hex(&device)),
        }
    }

    pub fn parse(text: &str) -> Option<AuditQuery> {
        let id16 = |h: &str| unhex(h).and_then(|b| <[u8; 16]>::try_from(b).ok());
        match text.split_once(':') {
            None if text == "verify" => Some(AuditQuery::Verify),
            Some(("plan", plan)) => id16(plan).map(AuditQuery::Plan),
            Some(("user", user)) => user.parse().ok().map(AuditQuery::User),
            Some(("device", device)) => id16(device).map(AuditQuery::Device),
            _ => None,
        }
    }
}

/// One sealed upload as the server keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditUploadInfo {
    /// The paging cursor: ids rise in the order uploads were stored.
    pub id: u64,
    pub device_id: String,
    pub first: u64,
    pub last: u64,
    pub key_version: u32,
    pub received_at_ms: i64,
    /// Hex of [`crate::audit::AuditUpload`] bytes.
    pub upload: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditUploadPage {
    pub uploads: Vec<AuditUploadInfo>,
    /// True when uploads after the last one in this page may wait: ask again after its id.
    pub more: bool,
}

/// One event of the server's own chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerEventInfo {
    pub seq: u64,
    /// Hex of [`crate::audit::SignedEvent`] bytes.
    pub event: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerEventPage {
    pub events: Vec<ServerEventInfo>,
    pub more: bool,
}

/// `GET /v1/admin/audit/server-key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerAuditKey {
    /// Hex Ed25519 public key.
    pub public: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_requests_in_one_millisecond_get_distinct_times_and_the_clock_is_followed_when_it_moves_on() {
        let clock = AdminRequestClock::new();
        assert_eq!(clock.time_for(1_000), 1_000);
        assert_eq!(clock.time_for(1_000), 1_001, "the same millisecond: one past the last");
        assert_eq!(clock.time_for(1_000), 1_002);
        assert_eq!(clock.time_for(999), 1_003, "a clock stepped back never repeats a time");
        assert_eq!(clock.time_for(5_000), 5_000, "a clock that moved on is followed");
    }

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
    fn the_root_tag_is_keyed_by_the_codes_secret() {
        let root = [7u8; 32];
        let code = EnrolmentCode::generate(&root).unwrap();
        assert!(code.matches_root(&root));
        // A different root fails, and so does the same tag with another secret.
        for other in [[8u8; 32], [0u8; 32], {
            let mut r = root;
            r[31] ^= 1;
            r
        }] {
            assert!(!code.matches_root(&other));
        }
        let mut bytes = *code.as_bytes();
        bytes[0] ^= 1;
        assert!(!EnrolmentCode::from_bytes(&bytes).unwrap().matches_root(&root));
        // The tag is HMAC(r, label || root), not a hash of the root alone.
        assert_ne!(code.as_bytes()[10..], Sha256::digest(root)[..5]);
        let expected = hmac_bytes(&code.as_bytes()[..10], &[b"eenplan/enrol-root/v1", &root]);
        assert_eq!(code.as_bytes()[10..], expected[..5]);
    }

    #[test]
    fn code_id_mac_key_and_key_mac_are_deterministic_and_distinct() {
        let code = EnrolmentCode::from_bytes(&[3u8; 15]).unwrap();
        let again = EnrolmentCode::parse(&code.to_string()).unwrap();
        assert_eq!(code.id(), again.id());
        assert_eq!(code.mac_key(), again.mac_key());
        assert_ne!(code.id(), code.mac_key());
        assert_eq!(code.id(), hmac_bytes(&[3u8; 10], &[b"eenplan/enrol-id/v1"]));
        assert_eq!(code.mac_key(), hmac_bytes(&[3u8; 10], &[b"eenplan/enrol-mac/v1"]));
        // Only the ten secret bytes matter, not the tag.
        let mut retagged = [3u8; 15];
        retagged[14] = 9;
        assert_eq!(EnrolmentCode::from_bytes(&retagged).unwrap().id(), code.id());
        let other = EnrolmentCode::from_bytes(&[4u8; 15]).unwrap();
        assert_ne!(other.id(), code.id());
        assert_ne!(other.mac_key(), code.mac_key());

        let mac = key_mac(&code.mac_key(), &[1; 32], &[2; 32]);
        assert_eq!(mac, key_mac(&again.mac_key(), &[1; 32], &[2; 32]));
        assert!(verify_key_mac(&code.mac_key(), &[1; 32], &[2; 32], &mac));
        assert!(!verify_key_mac(&other.mac_key(), &[1; 32], &[2; 32], &mac));
        assert!(!verify_key_mac(&code.mac_key(), &[9; 32], &[2; 32], &mac));
        assert!(!verify_key_mac(&code.mac_key(), &[1; 32], &[9; 32], &mac));
        assert!(!verify_key_mac(&code.mac_key(), &[1; 32], &[2; 32], &mac[..31]));
        assert!(!verify_key_mac(&code.mac_key(), &[1; 32], &[2; 32], &[]));
    }

    #[test]
    fn a_devices_enrol_request_carries_neither_the_secret_nor_the_printed_code() {
        let root = [7u8; 32];
        let code = EnrolmentCode::generate(&root).unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let signing_public = key.verifying_key().to_bytes();
        let agreement_public = [6u8; 32];
        let request = EnrolRequest::new(&code, &signing_public, &agreement_public, |m| {
            ed25519_dalek::Signer::sign(&key, m).to_bytes()
        });
        let json = serde_json::to_string(&request).unwrap();
        let secret = &code.as_bytes()[..10];
        let printed = code.to_string();
        for needle in [
            hex(secret),
            hex(code.as_bytes()),
            printed.clone(),
            printed.replace('-', ""),
            printed.to_lowercase(),
            printed.replace('-', "").to_lowercase(),
            printed[..9].to_string(),
        ] {
            assert!(!json.to_lowercase().contains(&needle.to_lowercase()), "{needle} in {json}");
        }
        assert!(!json.contains("\"code\""), "{json}");
        // What it carries: the id, the keys, a signature over id and keys, the keys' MAC.
        assert_eq!(request.code_id, hex(&code.id()));
        assert_ne!(request.code_id, hex(&code.mac_key()));
        let signature: [u8; 64] = unhex(&request.signature).unwrap().try_into().unwrap();
        key.verifying_key()
            .verify_strict(
                &enrol_message(&code.id(), &signing_public, &agreement_public),
                &ed25519_dalek::Signature::from_bytes(&signature),
            )
            .unwrap();
        let mac = unhex(&request.key_mac).unwrap();
        assert!(verify_key_mac(&code.mac_key(), &signing_public, &agreement_public, &mac));
    }

    #[test]
    fn an_admin_signature_covers_the_network_and_the_origin() {
        let root = [1u8; 32];
        let audience = AdminAudience { root_public: &root, origin: "https://eenplan.example" };
        let message = admin_request_message(audience, "GET", "/v1/admin/orgs", 5, b"");
        let other_root = AdminAudience { root_public: &[2u8; 32], ..audience };
        let other_origin = AdminAudience { origin: "https://staging.eenplan.example", ..audience };
        assert_ne!(message, admin_request_message(other_root, "GET", "/v1/admin/orgs", 5, b""));
        assert_ne!(message, admin_request_message(other_origin, "GET", "/v1/admin/orgs", 5, b""));
        assert!(String::from_utf8(message).unwrap().starts_with("eenplan/admin-request/v2\n0101"));
    }

    #[test]
    fn origins_are_scheme_host_and_port_in_lower_case() {
        assert_eq!(normalise_origin("HTTPS://Eenplan.Example/").as_deref(), Some("https://eenplan.example"));
        assert_eq!(normalise_origin("http://127.0.0.1:8443").as_deref(), Some("http://127.0.0.1:8443"));
        for bad in ["eenplan.example", "ftp://x", "https://", "https://x/api", "https://u@x", "https://a b"] {
            assert_eq!(normalise_origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_session_signature_binds_the_wipe_nonce_hash() {
        let challenge = [7u8; 72];
        assert_ne!(session_message(&challenge), session_message_with_wipe_nonce(&challenge, &[0; 32]));
        assert_ne!(
            session_message_with_wipe_nonce(&challenge, &[1; 32]),
            session_message_with_wipe_nonce(&challenge, &[2; 32])
        );
        let plain = SessionRequest {
            device_id: "ab".into(),
            challenge: "cd".into(),
            signature: "ef".into(),
            wipe_nonce_hash: None,
            name: None,
        };
        assert!(!serde_json::to_string(&plain).unwrap().contains("wipe_nonce_hash"));
    }

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        assert_eq!(unhex(&hex(&[0, 255, 16])), Some(vec![0, 255, 16]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("éé"), None);
    }
}

/// The closed plans a server lists ([`PATH_ADMIN_CLOSED_PLANS`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedPlans {
    pub plans: Vec<ClosedPlan>,
}

/// One closed plan: its id (hex) and when its chain says it closed. The server's word.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedPlan {
    pub plan: String,
    pub closed_at_ms: i64,
}

/// What an erase removed ([`admin_erase_path`]); `already` when the plan had been erased
/// before (the tombstone's time, nothing more to remove).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanErased {
    pub plan: String,
    pub erased_at_ms: i64,
    pub envelopes: u64,
    pub escrow_envelopes: u64,
    pub bundles: u64,
    pub already: bool,
}
