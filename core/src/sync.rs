//! Enrolment and sync with the server, seen from the device.
//!
//! A sync is a few round trips of `POST /v1/sync` (usually one). Before each, the device seals
//! its own unsent changes of every document into a bundle and records it durably, so a retry
//! after a lost response pushes the very same bundle, which the server stores once. The
//! response is applied in one store transaction: acknowledged bundles leave the outbox,
//! received key envelopes become document keys, received bundles are verified against their
//! author's certificate (itself verified against the network root pinned at enrolment),
//! decrypted and merged, and the cursor moves. A crash before that commit only means the same
//! bundles arrive again, and merging them again changes nothing.
//!
//! ```text
//! eenplan enrol --server https://… --code ABCD-…   pins the root key the code names
//! (administrator approves)                         device certificate signed
//! eenplan sync                                      session → /v1/me → push + pull
//! eenplan sync --watch                              the live socket; a sync per hint (live.rs)
//! ```

mod authors;
mod live;
mod transport;
mod wipe_order;

use std::collections::BTreeMap;

use automerge::ChangeHash;
use eenplan_protocol::api::{
    self, ChallengeRequest, ChallengeResponse, EnrolRequest, EnrolResponse, EnrolmentCode, MeResponse,
    SessionRequest, SessionResponse, hex, unhex,
};
use eenplan_protocol::certificate::{Certificate, DeviceBody, device_id_of};
use eenplan_protocol::epoch::{Commitment, Minter, SignedCommitment};
use eenplan_protocol::policy::{Policy, SignedPolicy};
use eenplan_protocol::sync::{
    Blob, EnvelopeUpload, Fixed, KeyRequest, SyncRequest, SyncResponse, decode, encode,
    rejection_is_retryable,
};
use eenplan_protocol::{Bundle, BundleHeader, BundleKind, DocumentId, envelope};
use serde::{Deserialize, Serialize};

use crate::device::Device;
use crate::error::CoreError;
use crate::ids::PlanId;
use crate::plan::{ChangesByCompartment, Compartment, Plan};
use crate::store::PlanHeader;
use authors::{EpochRules, Judge, policy_state};
use transport::Transport;

pub use live::WatchEvent;

/// The recipient id under which envelopes sealed to the network's escrow key are stored.
pub const ESCROW_RECIPIENT: [u8; 16] = [0; 16];
/// Every document starts at epoch 1; rotation (after a revocation) moves to the next.
pub const FIRST_EPOCH: u32 = 1;
const MAX_ROUNDS: usize = 16;

const STATE_SERVER: &str = "server";
const STATE_CERTIFICATE: &str = "certificate";
const STATE_CURSOR: &str = "cursor";
const STATE_POLICY: &str = "policy";

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("this device is not enrolled with a server; run enrol first")]
    NotEnrolled,
    #[error("this device waits for an administrator to approve it")]
    NotApproved,
    #[error("this device was revoked by an administrator")]
    Revoked,
    #[error("the enrolment code is malformed")]
    MalformedCode,
    #[error("the server's network key does not match the enrolment code: refusing to trust it")]
    WrongRoot,
    #[error("a certificate from the server does not verify against the pinned network root: {0}")]
    UntrustedCertificate(String),
    #[error("the server refused the request ({status} {code}): {message}")]
    Server { status: u16, code: String, message: String },
    #[error("the server could not be reached: {0}")]
    Network(String),
    #[error("the server sent something that is not valid: {0}")]
    Protocol(String),
    #[error("the sync did not settle after {0} rounds")]
    TooManyRounds(usize),
    #[error("the server address {0:?} is not an http:// or https:// URL")]
    ServerUrl(String),
    #[error("the sharing policy from the server is not valid for this network: {0}")]
    BadPolicy(String),
}

/// What the device pinned at enrolment.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ServerState {
    url: String,
    root_public: [u8; 32],
    escrow_public: Vec<u8>,
}

/// The device's own certificate chain, once approved.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CertificateState {
    certificate: Vec<u8>,
    admin_certificate: Vec<u8>,
    lease_hours: u32,
}

impl CertificateState {
    /// A chain as the server sends it (`/v1/me`, `/v1/certificates`): two hex certificates.
    fn from_hex(certificate: &str, admin_certificate: &str, lease_hours: u32) -> Result<Self, SyncError> {
        Ok(CertificateState {
            certificate: unhex(certificate).ok_or_else(|| SyncError::Protocol("certificate".into()))?,
            admin_certificate: unhex(admin_certificate)
                .ok_or_else(|| SyncError::Protocol("admin certificate".into()))?,
            lease_hours,
        })
    }
}

/// What a pending bundle records besides the bundle itself.
#[derive(Debug, Serialize, Deserialize)]
struct PendingBundle {
    #[serde(with = "eenplan_protocol::bytes")]
    bundle: Vec<u8>,
}

/// Where the device stands with its server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Enrolment {
    NotEnrolled,
    PendingApproval,
    Active,
}

/// `eenplan status`.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceStatus {
    pub device_id: String,
    pub enrolment: Enrolment,
    pub server: Option<String>,
    pub user: Option<String>,
    pub organisation: Option<String>,
    pub role: Option<String>,
    pub lease_hours: Option<u32>,
    /// When the offline lease runs out (ms since the epoch); plans lock then until a sync.
    pub lease_expires_at_ms: Option<i64>,
    pub lease_expired: bool,
    /// The version of the sharing policy this device holds.
    pub policy_version: Option<u32>,
    pub pending_changes: u64,
    /// Received bundles waiting for a key (or for their author's certificate).
    pub parked_bundles: u64,
    pub cursor: u64,
}

/// What one sync did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    pub rounds: usize,
    pub pushed_bundles: usize,
    pub received_bundles: usize,
    pub applied_changes: usize,
    pub plans_updated: Vec<PlanId>,
    pub new_plans: Vec<PlanId>,
    pub envelopes_received: usize,
    pub envelopes_sent: usize,
    pub snapshots_sent: usize,
    /// Bundles refused by the server, or received bundles refused here, with the reason.
    pub refused: Vec<String>,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

fn cbor<T: Serialize>(value: &T) -> Vec<u8> {
    encode(value)
}

fn from_cbor<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, CoreError> {
    ciborium::from_reader(bytes)
        .map_err(|_| crate::store::StoreError::Corrupt(format!("stored {what} is not decodable")).into())
}

fn compartment_of(document: DocumentId) -> Option<Compartment> {
    Compartment::ALL.get(usize::from(document.compartment)).copied()
}

fn document_id(plan: PlanId, compartment: Compartment) -> DocumentId {
    DocumentId { plan: *plan.as_bytes(), compartment: compartment as u8 }
}

fn encode_heads(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

fn decode_heads(bytes: &[u8]) -> Vec<ChangeHash> {
    bytes.chunks_exact(32).filter_map(|c| c.try_into().ok().map(ChangeHash)).collect()
}

fn unhex_array<const N: usize>(text: &str, what: &str) -> Result<[u8; N], SyncError> {
    unhex(text)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| SyncError::Protocol(format!("{what} is not {N} hex bytes")))
}

impl Device {
    fn server_state(&self) -> Result<Option<ServerState>, CoreError> {
        self.store().sync_state(STATE_SERVER)?.map(|b| from_cbor(&b, "server state")).transpose()
    }

    fn certificate_state(&self) -> Result<Option<CertificateState>, CoreError> {
        self.store().sync_state(STATE_CERTIFICATE)?.map(|b| from_cbor(&b, "certificate")).transpose()
    }

    fn cursor(&self) -> Result<u64, CoreError> {
        Ok(self
            .store()
            .sync_state(STATE_CURSOR)?
            .and_then(|b| b.as_slice().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0))
    }

    /// The sharing policy this device holds, verified against the pinned root.
    pub(crate) fn stored_policy(&self) -> Result<Option<Policy>, CoreError> {
        let Some(server) = self.server_state()? else { return Ok(None) };
        let Some(bytes) = self.store().sync_state(STATE_POLICY)? else { return Ok(None) };
        let corrupt = |e: eenplan_protocol::policy::PolicyError| {
            crate::store::StoreError::Corrupt(format!("the stored sharing policy: {e}"))
        };
        let signed = SignedPolicy::from_bytes(&bytes).map_err(corrupt)?;
        Ok(Some(signed.verify(&server.root_public).map_err(corrupt)?))
    }

    /// The compartments this device's certified role may read under the policy it holds;
    /// `None` before it has both (a device that is not enrolled yet).
    pub(crate) fn compartments_own_role_reads(&self) -> Result<Option<Vec<Compartment>>, CoreError> {
        let (Some(policy), Some(server)) = (self.stored_policy()?, self.server_state()?) else {
            return Ok(None);
        };
        let Ok(own) = self.own_certificate(&server) else { return Ok(None) };
        Ok(Some(Compartment::ALL.into_iter().filter(|c| policy.may_read(&own.role, *c as u8)).collect()))
    }

    /// The compartments of a plan whose key this device holds: what it can exchange with the
    /// others (the sharing policy decides which those are).
    pub fn keyed_compartments(&self, plan: &PlanId) -> Result<Vec<Compartment>, CoreError> {
        let mut out = Vec::new();
        for compartment in Compartment::ALL {
            if self.store().latest_doc_key(*plan, compartment)?.is_some() {
                out.push(compartment);
            }
        }
        Ok(out)
    }

    /// Opens a sealed bundle (as the server stores it) with the keys this device holds, as
    /// anyone holding a copy of this device could. It exists to test the revocation promise
    /// (a revoked device's keys open nothing written after the revocation) against a copy of
    /// the server's database; it checks no signature and changes nothing.
    pub fn open_sealed_bundle(&self, bytes: &[u8]) -> Result<Vec<u8>, CoreError> {
        let bundle = Bundle::decode(bytes.to_vec()).map_err(|e| SyncError::Protocol(e.to_string()))?;
        let header = bundle.header;
        let compartment = compartment_of(header.document)
            .ok_or_else(|| SyncError::Protocol("unknown compartment".into()))?;
        let plan = PlanId::from_bytes(header.document.plan);
        let key = self.store().doc_key_at(plan, compartment, header.epoch)?.ok_or_else(|| {
            SyncError::Protocol(format!("no key for epoch {} of this document", header.epoch))
        })?;
        Ok(bundle.open(&key).map_err(|e| SyncError::Protocol(e.to_string()))?)
    }

    /// Claims an enrolment code at `server`. The root key the server names must match the
    /// code, or nothing is stored: the device pins only the root its administrator meant.
    pub fn enrol(&mut self, server: &str, code: &str) -> Result<Enrolment, CoreError> {
        self.ensure_not_wiped()?;
        let code = EnrolmentCode::parse(code).ok_or(SyncError::MalformedCode)?;
        let transport = Transport::new(server);
        let signing_public = self.identity().signing_public().to_bytes();
        let agreement_public = self.identity().agreement_public().to_vec();
        // Sends the code's id and a MAC over the keys, never the code: see `api`'s docs.
        let request = EnrolRequest::new(&code, &signing_public, &agreement_public, |message| {
            self.identity().sign(message).to_bytes()
        });
        let response: EnrolResponse = transport.post_json(api::PATH_ENROL, None, &request)?;
        let root_public: [u8; 32] = unhex_array(&response.root_public, "root key")?;
        if !code.matches_root(&root_public) {
            return Err(SyncError::WrongRoot.into());
        }
        let escrow_public =
            unhex(&response.escrow_public).ok_or_else(|| SyncError::Protocol("escrow key".into()))?;
        let escrow_signature: [u8; 64] = unhex_array(&response.escrow_signature, "escrow signature")?;
        let root = ed25519_dalek::VerifyingKey::from_bytes(&root_public)
            .map_err(|_| SyncError::UntrustedCertificate("the root key is not a valid key".into()))?;
        root.verify_strict(
            &api::escrow_message(&escrow_public),
            &ed25519_dalek::Signature::from_bytes(&escrow_signature),
        )
        .map_err(|_| SyncError::UntrustedCertificate("the escrow key is not signed by the root".into()))?;
        if response.device_id != self.device_id().to_string() {
            return Err(SyncError::Protocol("the server named another device id".into()).into());
        }
        let state = ServerState { url: server.trim_end_matches('/').to_owned(), root_public, escrow_public };
        self.store_mut().write(|w| w.put_state(STATE_SERVER, &cbor(&state)))?;
        Ok(Enrolment::PendingApproval)
    }

    /// Where this device stands: enrolment, who it belongs to, what waits to be pushed.
    pub fn status(&self) -> Result<DeviceStatus, CoreError> {
        self.ensure_not_wiped()?;
        let server = self.server_state()?;
        let certificate = self.certificate_state()?;
        let body = match (&server, &certificate) {
            (Some(s), Some(c)) => Some(verify_own(c, &s.root_public, self.now_ms())?),
            _ => None,
        };
        // A damaged lease record locks the plans (see `lease`); status still answers.
        let lease = match self.lease() {
            Ok(lease) => lease,
            Err(CoreError::Store(_)) => {
                Some(crate::LeaseStatus { renewed_at_ms: 0, expires_at_ms: 0, expired: true })
            }
            Err(e) => return Err(e),
        };
        Ok(DeviceStatus {
            device_id: self.device_id().to_string(),
            enrolment: match (&server, &certificate) {
                (None, _) => Enrolment::NotEnrolled,
                (Some(_), None) => Enrolment::PendingApproval,
                (Some(_), Some(_)) => Enrolment::Active,
            },
            server: server.map(|s| s.url),
            user: body.as_ref().map(|b| b.user_name.clone()),
            organisation: body.as_ref().map(|b| b.organisation.clone()),
            role: body.as_ref().map(|b| b.role.clone()),
            lease_hours: certificate.map(|c| c.lease_hours),
            lease_expires_at_ms: lease.as_ref().map(|l| l.expires_at_ms),
            lease_expired: lease.is_some_and(|l| l.expired),
            policy_version: self.stored_policy()?.map(|p| p.version),
            pending_changes: self.pending_changes()?,
            parked_bundles: self.store().parked_bundles()?.len() as u64,
            cursor: self.cursor()?,
        })
    }

    /// A session token: the one this process already holds while it has a minute left, or a
    /// new one. Reusing it saves the challenge round trips on every sync after the first.
    fn session(&mut self, transport: &Transport) -> Result<String, CoreError> {
        let now = self.now_ms();
        if let Some((token, expires)) = &self.session
            && *expires - 60_000 > now
        {
            return Ok(token.clone());
        }
        let session = self.open_session(transport)?;
        self.session = Some((session.token.clone(), session.expires_at_ms));
        if let Some(own) = self.certificate_state()?
            && session.certified_at_ms > Self::valid_from(&own)
        {
            self.take_new_certificate(transport, &session.token)?;
        }
        Ok(session.token)
    }

    fn valid_from(state: &CertificateState) -> i64 {
        Certificate::from_bytes(&state.certificate)
            .and_then(|c| c.claimed_device_body())
            .map_or(i64::MAX, |body| body.valid_from_ms)
    }

    /// An administrator re-certified this device (its user's role changed): takes the new
    /// certificate if it verifies, names this device's own keys and is newer, and forgets the
    /// keys the new role may not read.
    fn take_new_certificate(&mut self, transport: &Transport, token: &str) -> Result<(), CoreError> {
        let server = self.server_state()?.ok_or(SyncError::NotEnrolled)?;
        let held_body = self.own_certificate(&server)?;
        let me: MeResponse = transport.get_json(api::PATH_ME, Some(token))?;
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

    /// A session token, and when the server says it expires (ms since the epoch).
    fn open_session(&self, transport: &Transport) -> Result<SessionResponse, CoreError> {
        let device_id = self.device_id().to_string();
        let challenge: ChallengeResponse = transport.post_json(
            api::PATH_AUTH_CHALLENGE,
            None,
            &ChallengeRequest { device_id: device_id.clone() },
        )?;
        let bytes = unhex(&challenge.challenge).ok_or_else(|| SyncError::Protocol("challenge".into()))?;
        let signature = self.identity().sign(&api::session_message(&bytes));
        let session: SessionResponse = transport.post_json(
            api::PATH_AUTH_SESSION,
            None,
            &SessionRequest {
                device_id,
                challenge: challenge.challenge,
                signature: hex(&signature.to_bytes()),
                wipe_nonce_hash: None,
            },
        )?;
        Ok(session)
    }

    /// Gives a plan's participation to another user; their devices get the keys at the next
    /// sync of any device that holds them.
    pub fn add_participant(&mut self, plan: &PlanId, user: &str, role: &str) -> Result<(), CoreError> {
        self.ensure_not_wiped()?;
        let server = self.server_state()?.ok_or(SyncError::NotEnrolled)?;
        let transport = Transport::new(&server.url);
        let token = self.session(&transport)?;
        let lookup = api::UserLookup { name: user.to_owned() };
        let matches: Vec<api::UserMatch> =
            transport.post_json(api::PATH_USER_LOOKUP, Some(&token), &lookup)?;
        // A numeric id nobody is named after is taken as an id; the server checks it.
        let user_id = match (matches.as_slice(), user.parse::<i64>()) {
            ([found], _) => found.id,
            ([], Ok(id)) => id,
            _ => {
                return Err(SyncError::Server {
                    status: 404,
                    code: "unknown_user".into(),
                    message: format!("no single user named {user:?}"),
                }
                .into());
            }
        };
        let body = serde_json::to_vec(&api::Assignment { user_id, role: role.to_owned() })
            .map_err(|e| SyncError::Protocol(e.to_string()))?;
        transport.post(&api::participants_path(plan.as_bytes()), Some(&token), "application/json", &body)?;
        Ok(())
    }

    /// Pushes everything this device wrote and pulls everything it may read.
    pub fn sync(&mut self) -> Result<SyncReport, CoreError> {
        self.ensure_not_wiped()?;
        let server = self.server_state()?.ok_or(SyncError::NotEnrolled)?;
        let transport = Transport::new(&server.url);
        let token = match self.session(&transport) {
            Err(e) if is_revoked(&e) => return Err(self.obey_wipe_order(&server, &transport)),
            other => other?,
        };
        let result = match self.sync_with(&server, &transport, &token) {
            Err(e) if is_revoked(&e) => return Err(self.obey_wipe_order(&server, &transport)),
            // The server forgot the session (it restarted with a new secret, or the clocks
            // disagree): open a new one once.
            Err(CoreError::Sync(SyncError::Server { status: 401, .. })) => {
                self.session = None;
                match self.session(&transport) {
                    Err(e) if is_revoked(&e) => return Err(self.obey_wipe_order(&server, &transport)),
                    token => self.sync_with(&server, &transport, &token?),
                }
            }
            other => other,
        };
        if result.is_ok() {
            // A completed sync renews the offline lease for the organisation's period.
            if let Some(certificate) = self.certificate_state()? {
                self.renew_lease(i64::from(certificate.lease_hours) * 3_600_000)?;
            }
        }
        result
    }

    /// A sync over an open session; [`Device::watch`] reuses one session (and the transport's
    /// kept-alive connection) for every hint, so a hint costs one round trip, not three.
    fn sync_with(
        &mut self,
        server: &ServerState,
        transport: &Transport,
        token: &str,
    ) -> Result<SyncReport, CoreError> {
        if self.certificate_state()?.is_none() {
            let me: MeResponse = transport.get_json(api::PATH_ME, Some(token))?;
            let state = CertificateState::from_hex(&me.certificate, &me.admin_certificate, me.lease_hours)?;
            let body = verify_own(&state, &server.root_public, self.now_ms())?;
            if body.device_id != *self.device_id().as_bytes() {
                return Err(
                    SyncError::UntrustedCertificate("the certificate names another device".into()).into()
                );
            }
            self.store_mut().write(|w| w.put_state(STATE_CERTIFICATE, &cbor(&state)))?;
            self.prepare_self_wipe_report(server)?;
        }
        let own = self.own_certificate(server)?;
        let mut report = SyncReport::default();
        let mut uploads = Uploads::default();
        for round in 1..=MAX_ROUNDS {
            report.rounds = round;
            self.seal_outgoing()?;
            let policy = self.stored_policy()?;
            let mut request = SyncRequest {
                since: self.cursor()?,
                policy_version: policy.as_ref().map_or(0, |p| p.version),
                ..Default::default()
            };
            // A plan is registered (with the commitments to its keys) only once the device
            // knows the sharing policy, which says which of its keys it may hand on; until
            // then its bundles wait, since the server would refuse them.
            let unregistered = self.unregistered_plans()?;
            let (new_plans, waiting) = match &policy {
                Some(_) => (unregistered, Vec::new()),
                None => (Vec::new(), unregistered),
            };
            if let Some(policy) = &policy {
                for plan in &new_plans {
                    let (commitments, envelopes) = self.registration_uploads(*plan, server, policy, &own)?;
                    request.new_plans.push(Fixed(*plan.as_bytes()));
                    request.commitments.extend(commitments);
                    request.envelopes.extend(envelopes);
                }
            }
            for (_, payload) in self.store().pending_bundles()? {
                let pending: PendingBundle = from_cbor(&payload, "pending bundle")?;
                let waits = !waiting.is_empty()
                    && Bundle::decode(pending.bundle.clone())
                        .is_ok_and(|b| waiting.contains(&PlanId::from_bytes(b.header.document.plan)));
                if !waits {
                    request.push.push(Blob(pending.bundle));
                }
            }
            report.pushed_bundles += request.push.len();
            request.commitments.append(&mut uploads.commitments);
            report.envelopes_sent += uploads.envelopes.len();
            report.snapshots_sent += uploads.snapshots.len();
            request.envelopes.append(&mut uploads.envelopes);
            request.snapshots.append(&mut uploads.snapshots);
            let body = transport.post(api::PATH_SYNC, Some(token), "application/cbor", &encode(&request))?;
            let response: SyncResponse =
                decode(&body, usize::MAX).map_err(|e| SyncError::Protocol(e.to_string()))?;
            let more = self.apply_response(
                transport,
                token,
                server,
                &own,
                response,
                &new_plans,
                &mut uploads,
                &mut report,
            )?;
            if !more {
                report.bytes_up = transport.sent.get();
                report.bytes_down = transport.received.get();
                return Ok(report);
            }
        }
        Err(SyncError::TooManyRounds(MAX_ROUNDS).into())
    }

    fn unregistered_plans(&self) -> Result<Vec<PlanId>, CoreError> {
        let mut out = Vec::new();
        for entry in self.plan_entries()? {
            if let crate::PlanListEntry::Ok(summary) = entry
                && !self.store().is_registered(summary.id)?
                && self.store().latest_doc_key(summary.id, Compartment::Basis)?.is_some()
            {
                out.push(summary.id);
            }
        }
        Ok(out)
    }

    /// This device's own verified certificate body.
    fn own_certificate(&self, server: &ServerState) -> Result<DeviceBody, CoreError> {
        let state = self.certificate_state()?.ok_or(SyncError::NotApproved)?;
        verify_own(&state, &server.root_public, self.now_ms())
    }

    /// What registering a plan made here sends: for each compartment this device's role may
    /// read, the commitment to the key it made and that key sealed to escrow and to itself.
    /// Keys of compartments the role may not read are forgotten here and now: another role's
    /// device makes that compartment's key when it first needs one.
    fn registration_uploads(
        &mut self,
        plan: PlanId,
        server: &ServerState,
        policy: &Policy,
        own: &DeviceBody,
    ) -> Result<(Vec<Blob>, Vec<EnvelopeUpload>), CoreError> {
        let mut commitments = Vec::new();
        let mut envelopes = Vec::new();
        let mut forget = Vec::new();
        for compartment in Compartment::ALL {
            let Some((epoch, key)) = self.store().latest_doc_key(plan, compartment)? else { continue };
            if !policy.may_read(&own.role, compartment as u8) {
                forget.push(compartment);
                continue;
            }
            let document = document_id(plan, compartment);
            let (commitment, sealed) =
                self.mint_uploads(document, epoch, &key, server, own, policy.version)?;
            commitments.push(commitment);
            envelopes.extend(sealed);
        }
        if !forget.is_empty() {
            // What was written there before the device knew the policy stays on this device
            // only: it no longer counts as waiting for a push.
            self.store_mut().write(|w| {
                for compartment in &forget {
                    w.delete_doc_keys(plan, *compartment)?;
                    w.clear_unpushed(plan, *compartment)?;
                }
                Ok(())
            })?;
        }
        Ok((commitments, envelopes))
    }

    /// The signed commitment to a key this device made, and the key sealed to escrow and to
    /// this device itself (so the server knows it holds it, and a reinstalled store could
    /// get it back).
    fn mint_uploads(
        &self,
        document: DocumentId,
        epoch: u32,
        key: &[u8; 32],
        server: &ServerState,
        own: &DeviceBody,
        policy_version: u32,
    ) -> Result<(Blob, Vec<EnvelopeUpload>), CoreError> {
        let me = *self.device_id().as_bytes();
        // The epoch's writes are judged by the policy this device holds now (see `authors`).
        let commitment = Commitment::new(document, epoch, key, Minter::Device(Fixed(me)), self.now_ms())
            .under_policy(policy_version)
            .sign(self.identity().signing_key());
        let mut envelopes = Vec::new();
        for (recipient, public) in
            [(ESCROW_RECIPIENT, &server.escrow_public[..]), (me, &own.agreement_public[..])]
        {
            let sealed = envelope::seal(public, recipient, document, epoch, key)
                .map_err(|e| SyncError::Protocol(e.to_string()))?;
            let sealed =
                envelope::sign(sealed, me, self.identity().signing_key(), document, epoch, recipient);
            envelopes.push(EnvelopeUpload {
                recipient: Fixed(recipient),
                document: Fixed(document.to_bytes()),
                epoch,
                envelope: Blob(sealed),
            });
        }
        Ok((Blob(commitment.to_bytes()), envelopes))
    }

    /// Re-seals pending bundles whose document has a newer key than the one they were sealed
    /// under (a rotation happened while they waited, perhaps offline), so that their changes
    /// reach the others under the key the server accepts, and the old key's holders (a
    /// revoked device among them) never see them.
    fn reseal_stale_pending(&mut self) -> Result<(), CoreError> {
        let mut replaced = Vec::new();
        for (id, payload) in self.store().pending_bundles()? {
            let pending: PendingBundle = from_cbor(&payload, "pending bundle")?;
            let Ok(bundle) = Bundle::decode(pending.bundle) else { continue };
            let header = bundle.header;
            let Some(compartment) = compartment_of(header.document) else { continue };
            let plan = PlanId::from_bytes(header.document.plan);
            let Some((epoch, key)) = self.store().latest_doc_key(plan, compartment)? else { continue };
            if epoch <= header.epoch {
                continue;
            }
            let Some(old_key) = self.store().doc_key_at(plan, compartment, header.epoch)? else { continue };
            let Ok(payload) = bundle.open(&old_key) else { continue };
            let renewed = BundleHeader { epoch, bundle_id: crate::crypto::random_array(), ..header };
            let sealed = Bundle::seal(renewed, &key, &payload, self.identity().signing_key())
                .map_err(|e| SyncError::Protocol(e.to_string()))?;
            replaced.push((id, renewed.bundle_id, cbor(&PendingBundle { bundle: sealed.into_bytes() })));
        }
        if replaced.is_empty() {
            return Ok(());
        }
        self.store_mut().write(|w| {
            for (old, new, bundle) in &replaced {
                w.replace_pending_bundle(old, new, bundle)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Seals this device's unsent changes of each document into one bundle, durably.
    fn seal_outgoing(&mut self) -> Result<(), CoreError> {
        self.reseal_stale_pending()?;
        // Changes to a compartment this device's role may not write stay on the device: every
        // other party would refuse them.
        let writable = match (self.stored_policy()?, self.server_state()?) {
            (Some(policy), Some(server)) => self.own_certificate(&server).ok().map(|own| (policy, own.role)),
            _ => None,
        };
        let mut sealed = Vec::new();
        let plans: Vec<PlanId> = self
            .plan_entries()?
            .into_iter()
            .filter_map(|e| match e {
                crate::PlanListEntry::Ok(s) => Some(s.id),
                crate::PlanListEntry::Damaged { .. } => None,
            })
            .collect();
        let me = self.device_id();
        for plan_id in plans {
            for compartment in Compartment::ALL {
                if self.store().unpushed(plan_id, compartment)? == 0 {
                    continue;
                }
                if let Some((policy, role)) = &writable
                    && !policy.may_write(role, compartment as u8)
                {
                    continue;
                }
                let Some((epoch, key)) = self.store().latest_doc_key(plan_id, compartment)? else { continue };
                let since = self
                    .store()
                    .sealed_heads(plan_id, compartment)?
                    .map(|b| decode_heads(&b))
                    .unwrap_or_default();
                // A damaged plan keeps its edits on disk; it must not stop the others' push.
                let Ok(plan) = self.loaded_plan(plan_id) else { continue };
                let Ok(doc) = plan.doc(compartment) else { continue };
                let own: Vec<automerge::Change> =
                    doc.get_changes(&since).into_iter().filter(|c| author_of(c) == Some(me)).collect();
                if own.is_empty() {
                    continue;
                }
                let heads = encode_heads(&doc.get_heads());
                let payload: Vec<u8> = own.iter().flat_map(|c| c.raw_bytes().to_vec()).collect();
                let header = BundleHeader {
                    kind: BundleKind::Changes,
                    document: document_id(plan_id, compartment),
                    epoch,
                    author: *me.as_bytes(),
                    bundle_id: crate::crypto::random_array(),
                };
                let bundle = Bundle::seal(header, &key, &payload, self.identity().signing_key())
                    .map_err(|e| SyncError::Protocol(e.to_string()))?;
                sealed.push((
                    plan_id,
                    compartment,
                    header.bundle_id,
                    own.len() as u64,
                    bundle.into_bytes(),
                    heads,
                ));
            }
        }
        if sealed.is_empty() {
            return Ok(());
        }
        self.store_mut().write(|w| {
            for (plan, compartment, id, changes, bundle, heads) in &sealed {
                let pending = cbor(&PendingBundle { bundle: bundle.clone() });
                w.put_pending_bundle(*plan, *compartment, id, *changes, &pending, heads)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_response(
        &mut self,
        transport: &Transport,
        token: &str,
        server: &ServerState,
        own: &DeviceBody,
        response: SyncResponse,
        registered: &[PlanId],
        uploads: &mut Uploads,
        report: &mut SyncReport,
    ) -> Result<bool, CoreError> {
        let now = self.now_ms();
        let me = *self.device_id().as_bytes();
        // The policy first: every check below reads it.
        let policy_arrived = match &response.policy {
            Some(blob) => self.accept_policy(server, &blob.0, own)?,
            None => false,
        };
        let policy = self.stored_policy()?;
        let commitments: std::collections::HashMap<([u8; 17], u32), SignedCommitment> = response
            .commitments
            .iter()
            .filter_map(|blob| SignedCommitment::from_bytes(&blob.0).ok())
            .filter_map(|signed| {
                let claimed = signed.claimed().ok()?;
                Some(((claimed.document.0, claimed.epoch), signed))
            })
            .collect();
        // Keys next: bundles in this very response may need them.
        let mut keys: Vec<ReceivedKey> = Vec::new();
        let mut judge = Judge::default();
        let fetch = CertificateSource { transport, token, server, now };
        for delivery in &response.envelopes {
            let document = DocumentId::from_bytes(&delivery.document.0)
                .map_err(|e| SyncError::Protocol(e.to_string()))?;
            let Some(compartment) = compartment_of(document) else { continue };
            match self.open_delivery(&fetch, delivery, document, &commitments, policy.as_ref(), &mut judge) {
                Ok((key, rules)) => keys.push(ReceivedKey {
                    plan: PlanId::from_bytes(document.plan),
                    compartment,
                    epoch: delivery.epoch,
                    key,
                    rules,
                }),
                Err(why) => {
                    report.refused.push(format!("key for {compartment} epoch {}: {why}", delivery.epoch))
                }
            }
        }

        report.envelopes_received += keys.len();
        // Keys this device made itself (its commitment won): it lays out their documents.
        let my_mints: Vec<(PlanId, Compartment)> = keys
            .iter()
            .filter(|k| {
                k.epoch == FIRST_EPOCH
                    && commitments
                        .get(&(document_id(k.plan, k.compartment).to_bytes(), k.epoch))
                        .and_then(|c| c.claimed().ok())
                        .is_some_and(|c| c.minter == Minter::Device(Fixed(me)))
            })
            .map(|k| (k.plan, k.compartment))
            .collect();
        // New keys may re-seal bundles the server refused as stale: go round once more.
        let keys_arrived = !keys.is_empty();
        let key_for = |device: &Device,
                       plan: PlanId,
                       compartment: Compartment,
                       epoch: u32|
         -> Result<Option<[u8; 32]>, CoreError> {
            if let Some(k) = keys.iter().find(|k| k.is(plan, compartment, epoch)) {
                return Ok(Some(*k.key));
            }
            Ok(device.store().doc_key_at(plan, compartment, epoch)?.map(|k| *k))
        };

        // Verify, open and merge every bundle; parked ones wait for their key.
        let mut incoming: Vec<Vec<u8>> = response.bundles.into_iter().map(|b| b.0).collect();
        let parked = self.store().parked_bundles()?;
        let parked_ids: Vec<i64> = parked.iter().map(|(id, _)| *id).collect();
        let mut to_park = Vec::new();
        incoming.splice(0..0, parked.into_iter().map(|(_, b)| b));
        let mut touched: BTreeMap<PlanId, Vec<(Compartment, Vec<automerge::Change>)>> = BTreeMap::new();
        for bytes in incoming {
            let bundle = match Bundle::decode(bytes.clone()) {
                Ok(b) => b,
                Err(e) => {
                    report.refused.push(format!("bundle: {e}"));
                    continue;
                }
            };
            let header = bundle.header;
            let Some(compartment) = compartment_of(header.document) else { continue };
            let plan_id = PlanId::from_bytes(header.document.plan);
            let author = match self.author_certificate(&fetch, &header.author, &mut judge) {
                Ok(body) => body,
                // An untrusted chain is a forgery: refuse. Anything else (the certificate
                // could not be fetched now) is transient: keep the bundle for the next sync,
                // because the cursor moves past it.
                Err(CoreError::Sync(e @ SyncError::UntrustedCertificate(_))) => {
                    report.refused.push(format!("bundle from {}: {e}", hex(&header.author)));
                    continue;
                }
                Err(_) => {
                    to_park.push(bytes);
                    continue;
                }
            };
            let verifying = ed25519_dalek::VerifyingKey::from_bytes(&author.signing_public)
                .map_err(|_| SyncError::UntrustedCertificate("author key".into()))?;
            if let Err(e) = bundle.verify(&verifying) {
                report.refused.push(format!("bundle from {}: {e}", hex(&header.author)));
                continue;
            }
            // The sharing policy, checked here as well as at the server: a server that relays
            // a write the author's role may not make gains nothing. Judged by the newest
            // rules and by those of the bundle's epoch (`authors`), so history stays valid
            // across role and policy changes.
            let Some(newest) = &policy else {
                to_park.push(bytes);
                continue;
            };
            // Judged only with the epoch's key at hand: its arrival brings the epoch's write
            // rules, by which a write made before a role or policy change is accepted.
            let Some(key) = key_for(self, plan_id, compartment, header.epoch)? else {
                to_park.push(bytes);
                continue;
            };
            let rules = keys.iter().find(|k| k.is(plan_id, compartment, header.epoch)).map(|k| k.rules);
            match self.may_write(
                &fetch,
                &mut judge,
                &header.author,
                plan_id,
                compartment,
                header.epoch,
                rules,
                newest,
            ) {
                Ok(true) => {}
                Ok(false) => {
                    report.refused.push(format!(
                        "bundle from {}: the role {:?} may not write {compartment}",
                        hex(&header.author),
                        author.role
                    ));
                    continue;
                }
                Err(CoreError::Sync(e @ (SyncError::UntrustedCertificate(_) | SyncError::BadPolicy(_)))) => {
                    report.refused.push(format!("bundle from {}: {e}", hex(&header.author)));
                    continue;
                }
                // Transient (a certificate or policy could not be fetched now): try again.
                Err(_) => {
                    to_park.push(bytes);
                    continue;
                }
            }
            let payload = match bundle.open(&key) {
                Ok(p) => p,
                Err(e) => {
                    report.refused.push(format!("bundle from {}: {e}", hex(&header.author)));
                    continue;
                }
            };
            report.received_bundles += 1;
            let changes = match header.kind {
                // The signature vouches for the author only: a change inside that claims another
                // actor would put words in someone else's mouth (and could block that actor's
                // real change with the same sequence number).
                BundleKind::Changes => {
                    split_changes(&payload).and_then(|changes| own_changes(changes, &header.author))
                }
                BundleKind::Snapshot { .. } => match automerge::Automerge::load(&payload) {
                    Ok(doc) => Ok(doc.get_changes(&[])),
                    Err(e) => {
                        report.refused.push(format!("snapshot from {}: {e}", hex(&header.author)));
                        continue;
                    }
                },
            };
            match changes {
                Ok(changes) => touched.entry(plan_id).or_default().push((compartment, changes)),
                Err(e) => report.refused.push(format!("bundle from {}: {e}", hex(&header.author))),
            }
        }

        // Merge into the plans in memory, then persist everything with the cursor at once.
        let mut writes: Vec<(Plan, Option<PlanHeader>, ChangesByCompartment)> = Vec::new();
        for (plan_id, batches) in touched {
            let mut plan = match self.take_plan_or_new(plan_id) {
                Ok(plan) => plan,
                Err(CoreError::Store(e)) => {
                    report
                        .refused
                        .push(format!("plan {plan_id} is damaged here, its changes were not applied: {e}"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let before = plan.heads();
            report.refused.extend(merge_bundles(&mut plan, batches));
            let new_changes = plan.changes_since(&before);
            if new_changes.is_empty() {
                self.put_back_plan(plan);
                continue;
            }
            report.applied_changes += new_changes.iter().map(|(_, c)| c.len()).sum::<usize>();
            let family = plan.view().map(|v| v.family).unwrap_or_default();
            let is_new = !self.store().has_plan(plan_id)?;
            if is_new {
                report.new_plans.push(plan_id);
            }
            report.plans_updated.push(plan_id);
            writes.push((plan, Some(PlanHeader { plan: plan_id, family }), new_changes));
        }
        // A bundle refused only for its key epoch stays in the outbox: it is re-sealed under
        // the document's next key once that arrives (`reseal_stale_pending`), so an edit made
        // offline across a rotation is never lost.
        let accepted: Vec<[u8; 16]> = response
            .accepted
            .iter()
            .map(|f| f.0)
            .chain(
                response
                    .rejected
                    .iter()
                    .filter(|r| !rejection_is_retryable(&r.reason))
                    .map(|r| r.bundle_id.0),
            )
            .collect();
        for rejection in &response.rejected {
            let kept = if rejection_is_retryable(&rejection.reason) {
                " (kept; sent again under the new key)"
            } else {
                ""
            };
            report.refused.push(format!(
                "pushed bundle {}: {}{kept}",
                hex(&rejection.bundle_id.0),
                rejection.reason
            ));
        }
        let result = self.store_mut().write(|w| {
            for id in &accepted {
                w.acknowledge_bundle(id)?;
            }
            for ReceivedKey { plan, compartment, epoch, key, rules } in &keys {
                w.put_doc_key(*plan, *compartment, *epoch, key)?;
                w.put_epoch_rules(*plan, *compartment, *epoch, &rules.encode())?;
                // The server delivers keys only of plans it knows: without this, the next
                // sync would register another user's plan as new and seal its keys to escrow
                // again (the server refuses the one and logs it as an attack or a bug).
                w.mark_registered(*plan)?;
            }
            for (plan, header, changes) in &writes {
                w.append_changes(plan, header.as_ref(), changes, false)?;
            }
            for id in &parked_ids {
                w.unpark(*id)?;
            }
            for bytes in &to_park {
                w.park_bundle(bytes)?;
            }
            for (device, chains) in &judge.certificates {
                w.put_certificate(device, chains)?;
            }
            for (version, (_, signed)) in &judge.policies {
                w.put_state(&policy_state(*version), signed)?;
            }
            for plan in registered {
                w.mark_registered(*plan)?;
            }
            w.put_state(STATE_CURSOR, &response.head.to_be_bytes())
        });
        for (plan, _, _) in writes {
            if result.is_ok() {
                self.put_back_plan(plan);
            }
        }
        result?;
        for (plan, compartment) in my_mints {
            self.start_minted_compartment(plan, compartment)?;
        }

        // Chores for the next round: keys for devices that lack them, snapshots of long logs.
        for request in &response.key_requests {
            let requester = eenplan_protocol::certificate::Certificate::from_bytes(&request.certificate.0)
                .ok()
                .and_then(|c| c.claimed_device_body().ok())
                .map(|b| b.device_id)
                .unwrap_or_default();
            if !uploads.answered.insert((request.document.0, request.epoch, requester)) {
                continue;
            }
            match self.answer_key_request(server, request, now, policy.as_ref()) {
                Ok(Some(upload)) => uploads.envelopes.push(upload),
                Ok(None) => {}
                Err(e) => report.refused.push(format!("key request: {e}")),
            }
        }
        if response.complete {
            for document in &response.compact {
                if !uploads.snapshotted.insert(document.0) {
                    continue;
                }
                if let Some(upload) = self.snapshot_for(document.0, response.head)? {
                    uploads.snapshots.push(upload);
                }
            }
        }
        // Documents nobody has a key for yet, which this device's role may read: make epoch 1.
        if let Some(policy) = &policy {
            for document in &response.mint {
                let Ok(document) = DocumentId::from_bytes(&document.0) else { continue };
                let Some(compartment) = compartment_of(document) else { continue };
                if !policy.may_read(&own.role, document.compartment)
                    || !uploads.minted.insert(document.to_bytes())
                {
                    continue;
                }
                let plan = PlanId::from_bytes(document.plan);
                // A key made here before the plan was shared (its creator's) is the one to
                // commit to; otherwise a new one, which comes back through this device's own
                // envelope only if this commitment is the first the server received.
                let key = match self.store().doc_key_at(plan, compartment, FIRST_EPOCH)? {
                    Some(key) => *key,
                    None => *crate::crypto::SecretKey::generate().as_bytes(),
                };
                let (commitment, envelopes) =
                    self.mint_uploads(document, FIRST_EPOCH, &key, server, own, policy.version)?;
                uploads.commitments.push(commitment);
                uploads.envelopes.extend(envelopes);
            }
        }
        let unsent = self.pending_changes()? > 0 && !self.store().pending_bundles()?.is_empty();
        let register_now = policy_arrived && !self.unregistered_plans()?.is_empty();
        Ok(!response.complete
            || !uploads.is_empty()
            || register_now
            || (unsent && (!accepted.is_empty() || keys_arrived)))
    }

    /// Lays out a compartment's document after this device made its first key, so that its
    /// role can write there (the plan's creator may not have been allowed to).
    fn start_minted_compartment(
        &mut self,
        plan_id: PlanId,
        compartment: Compartment,
    ) -> Result<(), CoreError> {
        if !self.store().has_plan(plan_id)? {
            return Ok(());
        }
        let mut plan = self.take_plan_or_new(plan_id)?;
        if plan.doc(compartment).is_ok() {
            self.put_back_plan(plan);
            return Ok(());
        }
        let before = plan.heads();
        let started = plan.start_compartment(compartment);
        let changes = plan.changes_since(&before);
        let result = started
            .map_err(CoreError::from)
            .and_then(|()| Ok(self.store_mut().write(|w| w.append_changes(&plan, None, &changes, true))?));
        match result {
            Ok(()) => {
                self.put_back_plan(plan);
                Ok(())
            }
            // The in-memory plan is dropped so memory never runs ahead of disk.
            Err(e) => Err(e),
        }
    }

    /// Takes a sharing policy the server sent, if it verifies and is newer than the one held;
    /// keys of compartments this device's role may no longer read are forgotten. `Ok(true)`
    /// when it was taken.
    fn accept_policy(
        &mut self,
        server: &ServerState,
        bytes: &[u8],
        own: &DeviceBody,
    ) -> Result<bool, CoreError> {
        let signed = SignedPolicy::from_bytes(bytes).map_err(|e| SyncError::BadPolicy(e.to_string()))?;
        let policy = signed.verify(&server.root_public).map_err(|e| SyncError::BadPolicy(e.to_string()))?;
        let held_version = self.stored_policy()?.map(|p| p.version);
        // A server cannot roll a device back to an older, wider policy.
        if held_version.is_some_and(|held| policy.version <= held) {
            return Ok(false);
        }
        // The one it replaces judges the writes of epochs made under it.
        let previous = self.store().sync_state(STATE_POLICY)?;
        self.forget_unreadable(&policy, &own.role, |w| {
            if let (Some(previous), Some(version)) = (&previous, held_version) {
                w.put_state(&policy_state(version), previous)?;
            }
            w.put_state(STATE_POLICY, bytes)
        })?;
        Ok(true)
    }

    /// Forgets the keys of every compartment `role` may not read under `policy` (a policy or
    /// role change took them away), in one transaction with `also`.
    fn forget_unreadable(
        &mut self,
        policy: &Policy,
        role: &str,
        also: impl FnOnce(&mut crate::store::StoreWriter<'_>) -> Result<(), crate::store::StoreError>,
    ) -> Result<(), CoreError> {
        let lost: Vec<Compartment> =
            Compartment::ALL.into_iter().filter(|c| !policy.may_read(role, *c as u8)).collect();
        let plans: Vec<PlanId> = self
            .store()
            .list_plans()?
            .into_iter()
            .filter_map(|entry| entry.ok().map(|header| header.plan))
            .collect();
        self.store_mut().write(|w| {
            also(w)?;
            for plan in &plans {
                for compartment in &lost {
                    w.delete_doc_keys(*plan, *compartment)?;
                    w.clear_unpushed(*plan, *compartment)?;
                }
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Checks and opens one delivered key envelope: its sealer's signature, the commitment to
    /// the key (made by an entitled minter), and that the key inside is the committed one.
    fn open_delivery(
        &self,
        fetch: &CertificateSource<'_>,
        delivery: &eenplan_protocol::sync::EnvelopeDelivery,
        document: DocumentId,
        commitments: &std::collections::HashMap<([u8; 17], u32), SignedCommitment>,
        policy: Option<&Policy>,
        judge: &mut Judge,
    ) -> Result<(zeroize::Zeroizing<[u8; 32]>, EpochRules), String> {
        let me = *self.device_id().as_bytes();
        let epoch = delivery.epoch;
        let (sealed, sealer, signature) =
            envelope::split_signed(&delivery.envelope.0).map_err(|e| e.to_string())?;
        let signed = commitments
            .get(&(document.to_bytes(), epoch))
            .ok_or("the server sent no commitment to this key")?;
        let claimed = signed.claimed().map_err(|e| e.to_string())?;
        if claimed.document.0 != document.to_bytes() || claimed.epoch != epoch {
            return Err("the commitment names another document or epoch".into());
        }
        let admin = match &claimed.minter {
            Minter::Admin { certificate } => Some(
                Certificate::from_bytes(certificate)
                    .and_then(|c| c.verify_admin(&fetch.server.root_public))
                    .map_err(|e| format!("the commitment's administrator: {e}"))?,
            ),
            Minter::Device(_) => None,
        };
        // The sealer: the administrator who rotated the key, or a device holding it. An
        // administrator who re-sealed an older epoch from escrow is not a device and has no
        // certificate to fetch; such a key is taken on its commitment alone, which the
        // checks below authenticate fully. A sealer that is known must have signed.
        let sealer_public = match &admin {
            Some(admin) if device_id_of(&admin.admin_public) == sealer => Some(admin.admin_public),
            _ => match self.author_certificate(fetch, &sealer, judge) {
                Ok(body) => Some(body.signing_public),
                Err(CoreError::Sync(SyncError::Server { status: 404, .. })) => None,
                Err(e) => return Err(e.to_string()),
            },
        };
        if let Some(sealer_public) = sealer_public {
            envelope::verify_signature(sealed, &signature, &sealer_public, document, epoch, me)
                .map_err(|e| e.to_string())?;
        }
        let key = envelope::open(sealed, self.identity().agreement_secret(), me, document, epoch)
            .map_err(|e| e.to_string())?;
        match (&claimed.minter, admin) {
            (Minter::Admin { .. }, Some(admin)) => {
                signed.verify(&admin.admin_public).map_err(|e| e.to_string())?;
            }
            (Minter::Device(minter), _) => {
                // Only the first key of a document is a device's to make; later ones come
                // from an administrator's rotation.
                if epoch != FIRST_EPOCH {
                    return Err("only an administrator makes the key of a later epoch".into());
                }
                let policy = policy.ok_or("no sharing policy is known yet")?;
                let body = self
                    .may_have_made(fetch, judge, &minter.0, &claimed, document.compartment, policy)
                    .map_err(|e| e.to_string())?
                    .ok_or("its maker's role may not read this compartment")?;
                signed.verify(&body.signing_public).map_err(|e| e.to_string())?;
            }
            (Minter::Admin { .. }, None) => return Err("the commitment's administrator is unknown".into()),
        }
        claimed.matches(&key).map_err(|e| e.to_string())?;
        Ok((key, EpochRules::of(&claimed)))
    }

    fn answer_key_request(
        &self,
        server: &ServerState,
        request: &KeyRequest,
        now: i64,
        policy: Option<&Policy>,
    ) -> Result<Option<EnvelopeUpload>, CoreError> {
        let state = CertificateState {
            certificate: request.certificate.0.clone(),
            admin_certificate: request.admin_certificate.0.clone(),
            lease_hours: 0,
        };
        let body = verify_own(&state, &server.root_public, now)?;
        let document =
            DocumentId::from_bytes(&request.document.0).map_err(|e| SyncError::Protocol(e.to_string()))?;
        let Some(compartment) = compartment_of(document) else { return Ok(None) };
        // The sharing policy is an encryption boundary: a key goes only to a device whose
        // certified role may read the compartment, whatever the server asks.
        let Some(policy) = policy else { return Ok(None) };
        if !policy.may_read(&body.role, document.compartment) {
            return Err(SyncError::UntrustedCertificate(format!(
                "a device of role {:?} asked for the {compartment} key, which its role may not read",
                body.role
            ))
            .into());
        }
        let plan = PlanId::from_bytes(document.plan);
        let Some(key) = self.store().doc_key_at(plan, compartment, request.epoch)? else { return Ok(None) };
        let sealed = envelope::seal(&body.agreement_public, body.device_id, document, request.epoch, &key)
            .map_err(|e| SyncError::Protocol(e.to_string()))?;
        let sealed = envelope::sign(
            sealed,
            *self.device_id().as_bytes(),
            self.identity().signing_key(),
            document,
            request.epoch,
            body.device_id,
        );
        Ok(Some(EnvelopeUpload {
            recipient: Fixed(body.device_id),
            document: request.document,
            epoch: request.epoch,
            envelope: Blob(sealed),
        }))
    }

    fn snapshot_for(&mut self, document: [u8; 17], covers: u64) -> Result<Option<Blob>, CoreError> {
        let Ok(document) = DocumentId::from_bytes(&document) else { return Ok(None) };
        let Some(compartment) = compartment_of(document) else { return Ok(None) };
        let plan_id = PlanId::from_bytes(document.plan);
        let Some((epoch, key)) = self.store().latest_doc_key(plan_id, compartment)? else { return Ok(None) };
        if !self.store().has_plan(plan_id)? {
            return Ok(None);
        }
        let author = *self.device_id().as_bytes();
        let Ok(plan) = self.loaded_plan(plan_id) else { return Ok(None) };
        let Ok(doc) = plan.doc(compartment) else { return Ok(None) };
        let saved = doc.save();
        let header = BundleHeader {
            kind: BundleKind::Snapshot { covers },
            document,
            epoch,
            author,
            bundle_id: crate::crypto::random_array(),
        };
        let bundle = Bundle::seal(header, &key, &saved, self.identity().signing_key())
            .map_err(|e| SyncError::Protocol(e.to_string()))?;
        Ok(Some(Blob(bundle.into_bytes())))
    }
}

/// The server's answer to a revoked device (a session, or any request with an old token);
/// the transport turns its `revoked` code into [`SyncError::Revoked`].
/// Applies received bundles' changes to a plan; returns why any were refused.
///
/// All of a compartment's bundles go in at once: one copy and one validation of the document
/// instead of one per bundle (a new device receives dozens). If that fails, they go in one
/// bundle at a time, so a bad bundle cannot take the others down with it.
fn merge_bundles(plan: &mut Plan, batches: Vec<(Compartment, Vec<automerge::Change>)>) -> Vec<String> {
    let mut refused = Vec::new();
    for (compartment, bundles) in by_compartment(batches) {
        if bundles.len() > 1 && plan.apply_parsed(compartment, bundles.concat()).is_ok() {
            continue;
        }
        for changes in bundles {
            if let Err(e) = plan.apply_parsed(compartment, changes) {
                refused.push(format!("changes for plan {} {compartment}: {e}", plan.id()));
            }
        }
    }
    refused
}

/// The bundles' changes grouped by compartment, in the order they arrived.
fn by_compartment<T>(batches: Vec<(Compartment, Vec<T>)>) -> Vec<(Compartment, Vec<Vec<T>>)> {
    let mut out: Vec<(Compartment, Vec<Vec<T>>)> = Vec::new();
    for (compartment, changes) in batches {
        match out.iter_mut().find(|(c, _)| *c == compartment) {
            Some((_, bundles)) => bundles.push(changes),
            None => out.push((compartment, vec![changes])),
        }
    }
    out
}

fn is_revoked(error: &CoreError) -> bool {
    matches!(error, CoreError::Sync(SyncError::Revoked))
}

fn author_of(change: &automerge::Change) -> Option<crate::ids::DeviceId> {
    crate::ids::DeviceId::from_actor(change.actor_id())
}

/// Parses a bundle's changes, each of which must be its author's own.
fn own_changes(changes: Vec<Vec<u8>>, author: &[u8; 16]) -> Result<Vec<automerge::Change>, String> {
    let mut out = Vec::with_capacity(changes.len());
    for raw in changes {
        let change =
            automerge::Change::from_bytes(raw).map_err(|e| format!("not an automerge change: {e}"))?;
        if change.actor_id().to_bytes() != author {
            return Err("a change inside is written under another device's name".into());
        }
        out.push(change);
    }
    Ok(out)
}

/// Splits a bundle payload (concatenated change chunks) into single changes, checking each.
fn split_changes(payload: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    parse_chunks(payload)
}

fn parse_chunks(mut payload: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    while !payload.is_empty() {
        let len = chunk_len(payload).ok_or("a change chunk is truncated")?;
        let (chunk, rest) = payload.split_at(len);
        automerge::Change::from_bytes(chunk.to_vec()).map_err(|e| format!("not an automerge change: {e}"))?;
        out.push(chunk.to_vec());
        payload = rest;
    }
    Ok(out)
}

/// Length of the automerge chunk at the start of `bytes`: magic (4) + checksum (4) + type (1)
/// + LEB128 length + body.
fn chunk_len(bytes: &[u8]) -> Option<usize> {
    let mut len: usize = 0;
    let mut shift = 0;
    let mut i = 9;
    loop {
        let byte = *bytes.get(i)?;
        len |= usize::from(byte & 0x7f).checked_shl(shift)?;
        i += 1;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 56 {
            return None;
        }
    }
    let total = i.checked_add(len)?;
    (total <= bytes.len()).then_some(total)
}

fn verify_own(state: &CertificateState, root: &[u8; 32], now: i64) -> Result<DeviceBody, CoreError> {
    let certificate = Certificate::from_bytes(&state.certificate)
        .map_err(|e| SyncError::UntrustedCertificate(e.to_string()))?;
    let admin = Certificate::from_bytes(&state.admin_certificate)
        .map_err(|e| SyncError::UntrustedCertificate(e.to_string()))?;
    Ok(certificate
        .verify_device(&admin, root, now)
        .map_err(|e| SyncError::UntrustedCertificate(e.to_string()))?)
}

/// A document key this sync received and verified, with its epoch's write rules.
struct ReceivedKey {
    plan: PlanId,
    compartment: Compartment,
    epoch: u32,
    key: zeroize::Zeroizing<[u8; 32]>,
    rules: EpochRules,
}

impl ReceivedKey {
    fn is(&self, plan: PlanId, compartment: Compartment, epoch: u32) -> bool {
        (self.plan, self.compartment, self.epoch) == (plan, compartment, epoch)
    }
}

/// What fetching a certificate during a sync needs.
struct CertificateSource<'a> {
    transport: &'a Transport,
    token: &'a str,
    server: &'a ServerState,
    now: i64,
}

#[derive(Default)]
struct Uploads {
    envelopes: Vec<EnvelopeUpload>,
    snapshots: Vec<Blob>,
    /// Commitments to keys this device made in answer to `mint`.
    commitments: Vec<Blob>,
    /// Documents minted in this sync.
    minted: std::collections::HashSet<[u8; 17]>,
    /// Key requests already answered in this sync: a request the server keeps repeating
    /// (it dropped the envelope) is not answered again, so the sync settles.
    answered: std::collections::HashSet<([u8; 17], u32, [u8; 16])>,
    /// Documents already snapshotted in this sync.
    snapshotted: std::collections::HashSet<[u8; 17]>,
}

impl Uploads {
    fn is_empty(&self) -> bool {
        self.envelopes.is_empty() && self.snapshots.is_empty() && self.commitments.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;

    fn change_by(actor: [u8; 16]) -> Vec<u8> {
        let mut doc = automerge::AutoCommit::new().with_actor(automerge::ActorId::from(&actor[..]));
        doc.put(automerge::ROOT, "k", "v").unwrap();
        doc.get_last_local_change().unwrap().raw_bytes().to_vec()
    }

    #[test]
    fn a_bundle_may_carry_only_its_authors_own_changes() {
        let mine = change_by([1; 16]);
        let theirs = change_by([2; 16]);
        assert_eq!(own_changes(vec![mine.clone()], &[1; 16]).map(|c| c.len()), Ok(1));
        assert!(own_changes(vec![mine.clone(), theirs], &[1; 16]).is_err());
        assert!(own_changes(vec![mine], &[2; 16]).is_err());
        assert!(own_changes(vec![vec![1, 2, 3]], &[1; 16]).is_err());
    }

    #[test]
    fn a_bundle_that_breaks_the_layout_is_refused_alone_and_the_others_of_its_sync_apply() {
        use crate::plan::NoteKind;
        let clock: std::sync::Arc<dyn crate::clock::Clock> = std::sync::Arc::new(crate::clock::SystemClock);
        let id = PlanId::random();
        let mut origin =
            Plan::create(id, crate::ids::DeviceId::from_bytes([1; 16]), "Jansen", None, clock.clone())
                .unwrap();
        let docs = Compartment::ALL.into_iter().map(|c| (c, origin.doc(c).unwrap().clone())).collect();
        let mut receiver =
            Plan::from_documents(id, crate::ids::DeviceId::from_bytes([2; 16]), docs, clock).unwrap();
        let parse = |raw: Vec<Vec<u8>>| {
            raw.into_iter().map(|r| automerge::Change::from_bytes(r).unwrap()).collect::<Vec<_>>()
        };
        let bundle = |plan: &mut Plan, text: &str| {
            let before = plan.heads();
            plan.add_note(Compartment::Basis, NoteKind::Note, text).unwrap();
            let (compartment, raw) = plan.changes_since(&before).remove(0);
            (compartment, parse(raw))
        };
        let first = bundle(&mut origin, "eerste");
        // The same author, on the side: a change that removes the family name.
        let mut fork = origin.doc(Compartment::Basis).unwrap().fork();
        fork.set_actor(automerge::ActorId::from(&[1u8; 16][..]));
        let heads = fork.get_heads();
        let mut tx = fork.transaction();
        tx.delete(automerge::ROOT, "family").unwrap();
        tx.commit();
        let bad = (Compartment::Basis, fork.get_changes(&heads));
        let second = bundle(&mut origin, "tweede");

        let refused = merge_bundles(&mut receiver, vec![first, bad, second]);
        assert_eq!(refused.len(), 1, "{refused:?}");
        // Notes written in the same millisecond have no fixed order.
        let mut notes: Vec<String> = receiver.view().unwrap().notes.into_iter().map(|n| n.text).collect();
        notes.sort();
        assert_eq!(notes, ["eerste", "tweede"]);
        assert_eq!(receiver.view().unwrap().family, "Jansen");
    }

    #[test]
    fn concatenated_changes_split_back_and_garbage_is_refused() {
        let (a, b) = (change_by([1; 16]), change_by([1; 16]));
        let both = [a.clone(), b.clone()].concat();
        assert_eq!(split_changes(&both).unwrap(), vec![a.clone(), b]);
        assert!(split_changes(&a[..a.len() - 1]).is_err());
        assert!(split_changes(b"garbage that is not a chunk").is_err());
        assert!(split_changes(&[]).unwrap().is_empty());
    }
}
