//! Who is calling: administrators sign each request, devices hold a short-lived session token.
//!
//! # Administrators
//!
//! Every admin request carries `x-eenplan-admin` (hex Ed25519 key), `x-eenplan-time` (ms),
//! `x-eenplan-origin` and `x-eenplan-signature` over [`admin_request_message`]. The server
//! accepts it when the key is a registered administrator whose root-signed certificate
//! verifies against the stored root, the time is within [`ADMIN_CLOCK_SKEW_MS`] of the
//! server's clock, the origin is one the operator named (`serve --origin`; any origin when
//! none was named), the signature verifies over the network's root key, the origin, the
//! method, the path with its query, the time and the body's hash, and the same signature was
//! not seen before. Seen signatures are kept as long as their time is acceptable at all, so
//! the replay set never outgrows a skew window of requests: in memory (the first check, and
//! the only one for `init`, before there is a network) and in the database
//! ([`Storage::remember_admin_signature`]), so that a request one server process took is
//! refused by every other process on the same database and after a restart.
//!
//! # Devices
//!
//! Sessions are stateless, so no table grows with logins and any server instance that knows
//! the server secret can check a token:
//!
//! ```text
//! POST /v1/auth/challenge {device_id}
//!   ← challenge = time(8) ‖ device_id(16) ‖ random(16) ‖ HMAC(secret, "eenplan/challenge/v1" ‖ those 40)
//! POST /v1/auth/session {device_id, challenge, wipe_nonce_hash?,
//!                        signature = Ed25519(device, session_message[_with_wipe_nonce](…))}
//!   server: HMAC ok, challenge ≤ 60 s old, same device id, device active, signature ok;
//!   the session's time and wipe nonce hash are recorded (routes::device::session)
//!   ← token = hex(device_id(16) ‖ expiry(8) ‖ HMAC(secret, "eenplan/token/v1" ‖ device_id ‖ expiry))
//! any device request: Authorization: Bearer <token>
//!   server: HMAC ok, not expired, and the device looked up again (pending → 403
//!   device_not_approved, revoked → 403 revoked, unknown → 401)
//! ```
//!
//! Because every request looks the device up, revoking a device refuses its next request at
//! once, however long its token would still run. A signed challenge could be exchanged for a
//! token more than once within its minute; only the device could have signed it, so that
//! gives nobody anything the device does not already have.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use ed25519_dalek::{Signature, VerifyingKey};
use eenplan_protocol::api::{
    ADMIN_CLOCK_SKEW_MS, AdminAudience, HEADER_ADMIN, HEADER_ORIGIN, HEADER_SIGNATURE, HEADER_TIME,
    admin_request_message, code, hex, normalise_origin, session_message, session_message_with_wipe_nonce,
    unhex,
};
use eenplan_protocol::certificate::Certificate;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::storage::{AdminRecord, DeviceId, DeviceRecord, DeviceState, Storage};

/// How long a challenge may be answered.
pub const CHALLENGE_LIFETIME_MS: i64 = 60_000;
/// How long a session token is valid.
pub const SESSION_LIFETIME_MS: i64 = 15 * 60_000;
/// How far the server's own clock may step back between issuing a challenge and seeing it
/// answered (an NTP correction) before the challenge counts as from the future.
const OWN_CLOCK_STEP_MS: i64 = 5_000;

const CHALLENGE_LABEL: &[u8] = b"eenplan/challenge/v1";
const TOKEN_LABEL: &[u8] = b"eenplan/token/v1";
const MAC_LEN: usize = 32;
const CHALLENGE_LEN: usize = 8 + 16 + 16 + MAC_LEN;
const TOKEN_LEN: usize = 16 + 8 + MAC_LEN;

/// Milliseconds since the epoch by the server's clock.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn expired() -> ApiError {
    ApiError::unauthenticated("expired_token", "the session has expired; open a new one")
}

/// A session token's device and expiry, its tag checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionClaim {
    pub device: DeviceId,
    pub expires: i64,
}

/// The server's credentials checks: the session secret, the replay set and the failure
/// counter.
#[derive(Debug)]
pub struct Auth {
    secret: [u8; 32],
    replays: Mutex<ReplaySet>,
    metrics: Arc<Metrics>,
    /// The origins admin requests may be signed for ([`normalise_origin`]); any when empty.
    origins: Vec<String>,
}

#[derive(Debug, Default)]
struct ReplaySet {
    /// Signature → the time after which its request is stale anyway.
    seen: HashMap<[u8; 64], i64>,
    last_prune: i64,
}

impl Auth {
    /// `origins` must be normalised already ([`normalise_origin`]).
    pub fn new(secret: [u8; 32], metrics: Arc<Metrics>, origins: Vec<String>) -> Auth {
        Auth { secret, replays: Mutex::new(ReplaySet::default()), metrics, origins }
    }

    /// Whether `given` equals the secret `expected`, in time that does not depend on where
    /// they differ (both are MACed under the server secret first).
    pub fn secret_matches(&self, given: &[u8], expected: &[u8]) -> bool {
        self.mac(b"eenplan/compare/v1", &[expected])
            .is_ok_and(|tag| self.mac_matches(b"eenplan/compare/v1", &[given], &tag))
    }

    fn mac(&self, label: &[u8], parts: &[&[u8]]) -> Result<[u8; MAC_LEN], ApiError> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret)
            .map_err(|e| ApiError::Internal(format!("hmac key: {e}")))?;
        mac.update(label);
        for part in parts {
            mac.update(part);
        }
        Ok(mac.finalize().into_bytes().into())
    }

    fn mac_matches(&self, label: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
        let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret) else {
            return false;
        };
        mac.update(label);
        for part in parts {
            mac.update(part);
        }
        // Constant time: a timing difference must not reveal how much of a forged tag matched.
        mac.verify_slice(tag).is_ok()
    }

    /// Counts a refused credential and passes the error on.
    fn refuse(&self, error: ApiError) -> ApiError {
        self.metrics.auth_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        error
    }

    // Devices.

    /// A fresh challenge for `device`, hex.
    pub fn challenge(&self, device: DeviceId, now: i64) -> Result<String, ApiError> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
        let time = now.to_be_bytes();
        let tag = self.mac(CHALLENGE_LABEL, &[&time, &device.0, &nonce])?;
        Ok(hex(&[time.as_slice(), &device.0, &nonce, &tag].concat()))
    }

    /// Turns a signed challenge into a session token: `(token, expires_at_ms)`. The signature
    /// covers `wipe_nonce_hash` when one is registered with the session.
    pub fn open_session(
        &self,
        storage: &dyn Storage,
        device: DeviceId,
        challenge_hex: &str,
        signature_hex: &str,
        wipe_nonce_hash: Option<&[u8; 32]>,
        now: i64,
    ) -> Result<(String, i64), ApiError> {
        let bad =
            || ApiError::unauthenticated("bad_challenge", "the challenge is not one this server issued");
        let challenge = unhex(challenge_hex).ok_or_else(|| self.refuse(bad()))?;
        if challenge.len() != CHALLENGE_LEN {
            return Err(self.refuse(bad()));
        }
        let (time, rest) = challenge.split_at(8);
        let (id, rest) = rest.split_at(16);
        let (nonce, tag) = rest.split_at(16);
        if !self.mac_matches(CHALLENGE_LABEL, &[time, id, nonce], tag) || id != device.0.as_slice() {
            return Err(self.refuse(bad()));
        }
        let issued = i64::from_be_bytes(time.try_into().map_err(|_| bad())?);
        if now.saturating_sub(issued) > CHALLENGE_LIFETIME_MS
            || issued > now.saturating_add(OWN_CLOCK_STEP_MS)
        {
            return Err(self.refuse(ApiError::unauthenticated(
                "expired_challenge",
                "the challenge is too old; fetch a new one",
            )));
        }
        let record = storage
            .device(device)?
            .ok_or_else(|| self.refuse(ApiError::unauthenticated("unknown_device", "unknown device")))?;
        // The signature before the state: only the key's holder learns whether it is approved.
        let signature = parse_signature(signature_hex).ok_or_else(|| self.refuse(bad_signature()))?;
        let key =
            VerifyingKey::from_bytes(&record.signing_public).map_err(|_| self.refuse(bad_signature()))?;
        let message = match wipe_nonce_hash {
            Some(hash) => session_message_with_wipe_nonce(&challenge, hash),
            None => session_message(&challenge),
        };
        key.verify_strict(&message, &signature).map_err(|_| self.refuse(bad_signature()))?;
        usable(&record).map_err(|e| self.refuse(e))?;
        let expires = now.saturating_add(SESSION_LIFETIME_MS);
        let expiry = expires.to_be_bytes();
        let tag = self.mac(TOKEN_LABEL, &[&device.0, &expiry])?;
        Ok((hex(&[device.0.as_slice(), &expiry, &tag].concat()), expires))
    }

    /// The device a token belongs to, after checking the token and looking the device up:
    /// `(device, token expiry)`.
    pub fn device_session(
        &self,
        storage: &dyn Storage,
        token: &str,
        now: i64,
    ) -> Result<(DeviceRecord, i64), ApiError> {
        let claim = self.session_claim(token, now)?;
        self.claimed_session(storage, claim, now)
    }

    /// [`Auth::device_session`] for a token whose tag [`Auth::session_claim`] has checked.
    pub fn claimed_session(
        &self,
        storage: &dyn Storage,
        claim: SessionClaim,
        now: i64,
    ) -> Result<(DeviceRecord, i64), ApiError> {
        // Also checked below; here so that an expired claim costs no read.
        if now >= claim.expires {
            return Err(self.refuse(expired()));
        }
        self.checked_session(storage.device(claim.device)?, claim, now)
    }

    /// The checks of [`Auth::claimed_session`] on the device as read already, with what
    /// was read together with it (`None`: no such device), for a route that reads the device
    /// with more (`POST /v1/sync`).
    pub fn checked_session<T: AsRef<DeviceRecord>>(
        &self,
        read: Option<T>,
        SessionClaim { device: id, expires }: SessionClaim,
        now: i64,
    ) -> Result<(T, i64), ApiError> {
        if now >= expires {
            return Err(self.refuse(expired()));
        }
        let read = read
            .filter(|read| read.as_ref().device_id == id)
            .ok_or_else(|| self.refuse(ApiError::unauthenticated("unknown_device", "unknown device")))?;
        let record = read.as_ref();
        usable(record).map_err(|e| self.refuse(e))?;
        // A session opened before the device's current certificate (a role change) ends, so
        // the device's next session learns of the new certificate at once.
        if expires.saturating_sub(SESSION_LIFETIME_MS) < record.certified_at {
            return Err(ApiError::unauthenticated(
                "certificate_changed",
                "the device was re-certified; open a new session",
            ));
        }
        Ok((read, expires))
    }

    /// What a session token claims, once its tag and expiry are checked; no storage is
    /// read, so a route can refuse a forged or expired token before it reads a body.
    pub fn session_claim(&self, token: &str, now: i64) -> Result<SessionClaim, ApiError> {
        let bad = || ApiError::unauthenticated("bad_token", "the session token is not valid");
        let bytes = unhex(token).ok_or_else(|| self.refuse(bad()))?;
        if bytes.len() != TOKEN_LEN {
            return Err(self.refuse(bad()));
        }
        let (id, rest) = bytes.split_at(16);
        let (expiry, tag) = rest.split_at(8);
        if !self.mac_matches(TOKEN_LABEL, &[id, expiry], tag) {
            return Err(self.refuse(bad()));
        }
        let expires = i64::from_be_bytes(expiry.try_into().map_err(|_| bad())?);
        if now >= expires {
            return Err(self.refuse(expired()));
        }
        Ok(SessionClaim { device: DeviceId(id.try_into().map_err(|_| bad())?), expires })
    }

    // Administrators.

    /// Checks an admin request against the stored network and administrators.
    pub fn admin(
        &self,
        storage: &dyn Storage,
        request: &SignedRequest<'_>,
        now: i64,
    ) -> Result<AdminRecord, ApiError> {
        let network = storage.network()?.ok_or_else(|| {
            ApiError::conflict("not_initialised", "the network is not initialised; POST /v1/admin/init first")
        })?;
        let headers = AdminHeaders::parse(request.headers).map_err(|e| self.refuse(e))?;
        let admin = storage.admin(&headers.key)?.ok_or_else(|| {
            self.refuse(ApiError::unauthenticated("unknown_admin", "that key is not an administrator"))
        })?;
        let certified = Certificate::from_bytes(&admin.certificate)
            .and_then(|c| c.verify_admin(&network.root_public))
            .map_err(|e| {
                // The stored certificate was checked when the admin was added; failing now means
                // the database was changed behind the server's back.
                tracing::error!(error = %e, "a stored administrator certificate does not verify");
                self.refuse(ApiError::unauthenticated("unknown_admin", "that key is not an administrator"))
            })?;
        if certified.admin_public != headers.key {
            return Err(
                self.refuse(ApiError::unauthenticated("unknown_admin", "that key is not an administrator"))
            );
        }
        self.check_signed(&headers, request, &network.root_public, now)?;
        // The shared set: another server process on the database, or this one before a
        // restart, may have taken this very request.
        let stale_after = headers.time.saturating_add(ADMIN_CLOCK_SKEW_MS);
        if !storage.remember_admin_signature(&headers.signature, stale_after, now)? {
            return Err(self.refuse(replayed()));
        }
        Ok(admin)
    }

    /// Checks the request signature of `POST /v1/admin/init` with the key from the admin
    /// certificate it carries and the root it names (there is no stored network yet).
    pub fn init_request(
        &self,
        request: &SignedRequest<'_>,
        root_public: &[u8; 32],
        admin_public: &[u8; 32],
        now: i64,
    ) -> Result<(), ApiError> {
        let headers = AdminHeaders::parse(request.headers).map_err(|e| self.refuse(e))?;
        if &headers.key != admin_public {
            return Err(self.refuse(ApiError::unauthenticated(
                "unknown_admin",
                "the request is not signed by the administrator certificate it carries",
            )));
        }
        self.check_signed(&headers, request, root_public, now)
    }

    fn check_signed(
        &self,
        headers: &AdminHeaders,
        request: &SignedRequest<'_>,
        root_public: &[u8; 32],
        now: i64,
    ) -> Result<(), ApiError> {
        if now.abs_diff(headers.time) > ADMIN_CLOCK_SKEW_MS.unsigned_abs() {
            return Err(self.refuse(ApiError::unauthenticated(
                "stale_request",
                "the request time is too far from the server's clock",
            )));
        }
        if !self.origins.is_empty() && !self.origins.contains(&headers.origin) {
            return Err(self.refuse(ApiError::unauthenticated(
                code::WRONG_ORIGIN,
                format!("the request was signed for {}, not for this server", headers.origin),
            )));
        }
        let key = VerifyingKey::from_bytes(&headers.key).map_err(|_| self.refuse(bad_signature()))?;
        let audience = AdminAudience { root_public, origin: &headers.origin };
        let message =
            admin_request_message(audience, request.method, request.path, headers.time, request.body);
        key.verify_strict(&message, &Signature::from_bytes(&headers.signature))
            .map_err(|_| self.refuse(bad_signature()))?;
        // Remembered only once verified, so nobody but an administrator can fill the set.
        let mut replays = self.replays.lock().unwrap_or_else(PoisonError::into_inner);
        if now.saturating_sub(replays.last_prune) > 10_000 {
            replays.seen.retain(|_, stale_after| *stale_after >= now);
            replays.last_prune = now;
        }
        let stale_after = headers.time.saturating_add(ADMIN_CLOCK_SKEW_MS);
        if replays.seen.insert(headers.signature, stale_after).is_some() {
            drop(replays);
            return Err(self.refuse(replayed()));
        }
        Ok(())
    }
}

fn replayed() -> ApiError {
    ApiError::unauthenticated("replayed_request", "this signed request was seen before")
}

/// What an admin signature covers, as the handler received it.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path with its query, exactly as in the request line.
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

struct AdminHeaders {
    key: [u8; 32],
    time: i64,
    /// Normalised.
    origin: String,
    signature: [u8; 64],
}

impl AdminHeaders {
    fn parse(headers: &HeaderMap) -> Result<AdminHeaders, ApiError> {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(key), Some(time), Some(origin), Some(signature)) =
            (get(HEADER_ADMIN), get(HEADER_TIME), get(HEADER_ORIGIN), get(HEADER_SIGNATURE))
        else {
            return Err(ApiError::unauthenticated(
                "missing_signature",
                "admin requests must carry x-eenplan-admin, x-eenplan-time, x-eenplan-origin and \
                 x-eenplan-signature",
            ));
        };
        let origin = normalise_origin(origin).ok_or_else(|| {
            ApiError::unauthenticated(code::WRONG_ORIGIN, "x-eenplan-origin must be scheme://host[:port]")
        })?;
        let key = unhex(key)
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or_else(|| ApiError::unauthenticated("unknown_admin", "the admin key is not 32 hex bytes"))?;
        let time = time
            .parse::<i64>()
            .map_err(|_| ApiError::unauthenticated("stale_request", "the request time is not a number"))?;
        let signature = parse_signature(signature).map(|s| s.to_bytes()).ok_or_else(bad_signature)?;
        Ok(AdminHeaders { key, time, origin, signature })
    }
}

fn parse_signature(text: &str) -> Option<Signature> {
    let bytes: [u8; 64] = unhex(text)?.try_into().ok()?;
    Some(Signature::from_bytes(&bytes))
}

fn bad_signature() -> ApiError {
    ApiError::unauthenticated("bad_signature", "the signature does not verify")
}

/// Whether a known device may act: only an active one.
pub fn usable(device: &DeviceRecord) -> Result<(), ApiError> {
    match device.state {
        DeviceState::Active => Ok(()),
        DeviceState::Pending => Err(ApiError::forbidden(
            "device_not_approved",
            "an administrator has not approved this device yet",
        )),
        DeviceState::Revoked => Err(ApiError::forbidden(code::REVOKED, "this device has been revoked")),
    }
}

/// The bearer token of an `Authorization: Bearer …` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new([7; 32], Arc::new(Metrics::default()), Vec::new())
    }

    #[test]
    fn a_token_is_refused_when_altered_or_made_with_another_secret() {
        let auth = auth();
        let expiry = 1_000_i64.to_be_bytes();
        let tag = auth.mac(TOKEN_LABEL, &[&[1; 16], &expiry]).unwrap();
        let token = [[1u8; 16].as_slice(), &expiry, &tag].concat();
        // The MAC part is checked before any storage lookup, so a forged token never costs a
        // database read; check that layer alone.
        let (id, rest) = token.split_at(16);
        let (expiry_bytes, tag) = rest.split_at(8);
        assert!(auth.mac_matches(TOKEN_LABEL, &[id, expiry_bytes], tag));
        let mut forged = token.clone();
        forged[0] ^= 1;
        let (id, rest) = forged.split_at(16);
        let (expiry_bytes, tag) = rest.split_at(8);
        assert!(!auth.mac_matches(TOKEN_LABEL, &[id, expiry_bytes], tag));
        let other = Auth::new([8; 32], Arc::new(Metrics::default()), Vec::new());
        let (id, rest) = token.split_at(16);
        let (expiry_bytes, tag) = rest.split_at(8);
        assert!(!other.mac_matches(TOKEN_LABEL, &[id, expiry_bytes], tag));
    }

    #[test]
    fn a_challenge_is_bound_to_its_device() {
        let auth = auth();
        let challenge = unhex(&auth.challenge(DeviceId([3; 16]), 5).unwrap()).unwrap();
        assert_eq!(challenge.len(), CHALLENGE_LEN);
        assert_eq!(&challenge[8..24], &[3; 16]);
        let (time, rest) = challenge.split_at(8);
        let (id, rest) = rest.split_at(16);
        let (nonce, tag) = rest.split_at(16);
        assert!(auth.mac_matches(CHALLENGE_LABEL, &[time, id, nonce], tag));
        assert!(!auth.mac_matches(TOKEN_LABEL, &[time, id, nonce], tag), "labels separate the two MACs");
    }

    #[test]
    fn a_secret_matches_only_itself() {
        let auth = auth();
        assert!(auth.secret_matches(b"abc123", b"abc123"));
        for other in [&b"abc124"[..], b"abc12", b"abc1234", b""] {
            assert!(!auth.secret_matches(other, b"abc123"), "{other:?}");
        }
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(axum::http::header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(axum::http::header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }
}
