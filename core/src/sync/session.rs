//! Sessions: a device proves itself by signing the server's challenge and gets a short-lived
//! token. The answer also states the server's time, which anchors the device clock
//! ([`crate::clock`]), and when the device's certificate was last renewed (a role change),
//! so that the device fetches the new one.
//!
//! Only signing and storing happen on the device; the exchanges run without its lock.

use std::time::Instant;

use eenplan_protocol::api::{
    self, ChallengeRequest, ChallengeResponse, MeResponse, SessionRequest, SessionResponse, hex, unhex,
};

use super::access::Access;
use super::transport::Transport;
use super::{CertificateState, STATE_CERTIFICATE, ServerState, SyncError, cbor, verify_own};
use crate::device::Device;
use crate::error::CoreError;

/// A session token: the one the device holds while it has a minute left, or a new one.
/// Reusing it saves the challenge round trips on every sync after the first.
pub(super) fn token(access: &impl Access, transport: &Transport) -> Result<String, CoreError> {
    if let Some(token) = access.with(|device| Ok(device.held_session()))? {
        return Ok(token);
    }
    let session = open(access, transport)?;
    let renewed = access.with(|device| {
        device.session = Some((session.token.clone(), session.expires_at_ms));
        Ok(device.certificate_state()?.is_some_and(|own| session.certified_at_ms > own.valid_from()))
    })?;
    if renewed {
        let me: MeResponse = transport.get_json(api::PATH_ME, Some(&session.token))?;
        access.with(|device| device.take_new_certificate(&me))?;
    }
    Ok(session.token)
}

/// Opens a new session, and anchors the device clock to the server's time in its answer.
///
/// The session also registers the nonce of the self-wipe report kept beside the store (see
/// `wipe_order`): the server takes a self-wipe report only with the newest nonce it holds, so
/// a copy of the device's files taken before this session cannot mark it wiped.
pub(super) fn open(access: &impl Access, transport: &Transport) -> Result<SessionResponse, CoreError> {
    let (device_id, server, nonce_hash, name) = access.with(|device| {
        device.ensure_not_wiped()?;
        let server = device.server_state()?.ok_or(SyncError::NotEnrolled)?;
        let nonce_hash = device.refresh_self_wipe_report(&server)?;
        Ok((device.device_id().to_string(), server, nonce_hash, device.signed_name()?))
    })?;
    let challenge: ChallengeResponse = transport.post_json(
        api::PATH_AUTH_CHALLENGE,
        None,
        &ChallengeRequest { device_id: device_id.clone() },
    )?;
    let bytes = unhex(&challenge.challenge).ok_or_else(|| SyncError::Protocol("challenge".into()))?;
    let message = api::session_message_with_wipe_nonce(&bytes, &nonce_hash);
    let signature = access.with(|device| Ok(device.identity().sign(&message)))?;
    let asked = Instant::now();
    let session: SessionResponse = transport.post_json(
        api::PATH_AUTH_SESSION,
        None,
        &SessionRequest {
            device_id,
            challenge: challenge.challenge,
            signature: hex(&signature.to_bytes()),
            wipe_nonce_hash: Some(hex(&nonce_hash)),
            name,
        },
    )?;
    // The server's clock read about half the round trip ago.
    let half_trip = i64::try_from(asked.elapsed().as_millis() / 2).unwrap_or(0);
    access.with(|device| {
        device.anchor_clock(session.server_time_ms.saturating_add(half_trip));
        device.confirm_self_wipe_report(&server, &nonce_hash)
    })?;
    Ok(session)
}

/// The first sync after approval: the device's own certificate, from `/v1/me`.
pub(super) fn pick_up_certificate(
    access: &impl Access,
    server: &ServerState,
    transport: &Transport,
    token: &str,
) -> Result<(), CoreError> {
    if access.with(|device| Ok(device.certificate_state()?.is_some()))? {
        return Ok(());
    }
    let me: MeResponse = transport.get_json(api::PATH_ME, Some(token))?;
    access.with(|device| {
        let state = CertificateState::from_hex(&me.certificate, &me.admin_certificate, me.lease_hours)?;
        let body = verify_own(&state, &server.root_public, device.now_ms())?;
        if body.device_id != *device.device_id().as_bytes() {
            return Err(SyncError::UntrustedCertificate("the certificate names another device".into()).into());
        }
        Ok(device.store_mut().write(|w| w.put_state(STATE_CERTIFICATE, &cbor(&state)))?)
    })
}

impl Device {
    /// The session token this process holds, while it has a minute left.
    fn held_session(&self) -> Option<String> {
        let now = self.now_ms();
        self.session.as_ref().filter(|(_, expires)| *expires - 60_000 > now).map(|(token, _)| token.clone())
    }

    /// Forgets the session token (the server no longer knows it).
    pub(super) fn forget_session(&mut self) {
        self.session = None;
    }

    /// An administrator re-certified this device (its user's role changed): takes the new
    /// certificate if it verifies, names this device's own keys and is newer, and forgets the
    /// keys the new role may not read.
    fn take_new_certificate(&mut self, me: &MeResponse) -> Result<(), CoreError> {
        let server = self.server_state()?.ok_or(SyncError::NotEnrolled)?;
        let held_body = self.own_certificate(&server)?;
        let state = CertificateState::from_hex(&me.certificate, &me.admin_certificate, me.lease_hours)?;
        let body = verify_own(&state, &server.root_public, self.now_ms())?;
        if (body.device_id, body.signing_public, &body.agreement_public)
            != (held_body.device_id, held_body.signing_public, &held_body.agreement_public)
        {
            return Err(SyncError::UntrustedCertificate(
                "the new certificate names other keys than this device's".into(),
            )
            .into());
        }
        if body.valid_from_ms <= held_body.valid_from_ms {
            return Ok(());
        }
        let encoded = cbor(&state);
        match self.stored_policy()? {
            Some(policy) => {
                self.forget_unreadable(&policy, &body.role, |w| w.put_state(STATE_CERTIFICATE, &encoded))
            }
            None => Ok(self.store_mut().write(|w| w.put_state(STATE_CERTIFICATE, &encoded))?),
        }
    }
}
