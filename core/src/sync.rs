//! Enrolment and sync with the server, seen from the device.
//!
//! A sync is a few round trips of `POST /v1/sync` (usually one). Before each, the device seals
//! its own unsent changes of every document into bundles and records them durably, so a retry
//! after a lost response pushes the very same bundles, which the server stores once. The
//! response is applied in one store transaction: acknowledged bundles leave the outbox,
//! received key envelopes become document keys, received bundles are verified against their
//! author's certificate (itself verified against the network root pinned at enrolment),
//! decrypted and merged, and the cursor moves. A crash before that commit only means the same
//! bundles arrive again, and merging them again changes nothing.
//!
//! **The device is never held during network I/O.** A sync is a sequence of short steps on
//! the device ([`access`]): prepare a round (under the device's lock), exchange it with the
//! server (without it), apply the answer (under the lock again). Certificates and earlier
//! policies that judging the answer needs are fetched between two applying passes, without
//! the lock ([`authors`]). So a phone app reads and edits while a sync waits on a poor link,
//! and an edit made meanwhile is pushed by the next round or the next sync.
//!
//! ```text
//! eenplan enrol --server https://… --code ABCD-…   pins the root key the code names
//! (administrator approves)                         device certificate signed
//! eenplan sync                                      session → /v1/me → rounds of push + pull
//! eenplan sync --watch                              the live socket; a sync per hint (live.rs)
//!
//! one round:  lock: seal, collect  │  unlocked: POST /v1/sync   │  lock: verify, merge, commit
//!                                  │  unlocked: fetch authors   │  (again, if it needed any)
//! ```

mod access;
mod authors;
mod driver;
mod erasure;
mod incoming;
mod keys;
mod live;
mod membership;
mod name;
mod outgoing;
mod revocations;
mod session;
mod shares;
mod snapshots;
mod transport;
mod wipe_order;

use automerge::ChangeHash;
use eenplan_protocol::api::{
    self, EnrolRequest, EnrolResponse, EnrolmentCode, ErrorBody, ServerUrl, ServerUrlError, unhex,
};
use eenplan_protocol::bundle::payload::unpack_changes;
use eenplan_protocol::certificate::{Certificate, DeviceBody};
pub use eenplan_protocol::device_name::{DeviceLabel, LabelError, Platform};
use eenplan_protocol::policy::{Policy, SignedPolicy};
use eenplan_protocol::{Bundle, BundleKind, DocumentId, NewBundle};
use serde::{Deserialize, Serialize};

use crate::device::Device;
use crate::error::CoreError;
use crate::ids::PlanId;
use crate::plan::Compartment;
use transport::Transport;

pub use access::SharedDevice;
pub use live::WatchEvent;
#[cfg(test)]
pub(crate) use membership::HeldChain;
pub(crate) use membership::STATE_INTENTS;
pub use membership::{Intent, MAX_QUEUED_INTENTS, QueuedIntent};
pub use name::parse_label;
pub(crate) use shares::STATE_SHARES;
pub use shares::{QueuedShare, ShareFailure};

/// The recipient id under which envelopes sealed to the network's escrow key are stored.
pub const ESCROW_RECIPIENT: [u8; 16] = [0; 16];
/// Every document starts at epoch 1; rotation (after a revocation) moves to the next.
pub const FIRST_EPOCH: u32 = 1;
/// How far a certificate's validity may be missed by the clocks of the administrator, the
/// server and the device: the server allows the same for admin requests.
pub const CLOCK_TOLERANCE_MS: i64 = 5 * 60 * 1000;

const STATE_SERVER: &str = "server";
const STATE_CERTIFICATE: &str = "certificate";
const STATE_CURSOR: &str = "cursor";
/// The key mailbox's own cursor: keys travel ahead of the bundles they open.
const STATE_MAILBOX: &str = "mailbox";
const STATE_POLICY: &str = "policy";

/// Why the server could not be used, in plain words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkFailure {
    /// No connection: no network, no route, the name unknown, the server down.
    #[error("the server could not be reached: {0}")]
    NoConnection(String),
    /// Connected, but the answer did not begin in time.
    #[error("the server did not answer within {0} s")]
    NoAnswer(u64),
    /// The connection broke off in the middle.
    #[error("the connection was lost during the transfer")]
    ConnectionLost,
    /// Nothing moved on the connection for this many seconds.
    #[error("the connection stalled: nothing arrived for {0} s")]
    Stalled(u64),
    /// The whole exchange took longer than its deadline.
    #[error("the transfer did not finish within {0} s")]
    Deadline(u64),
    #[error("the secure connection to the server failed: {0}")]
    Tls(String),
    /// The answer was not HTTP, or too large.
    #[error("the server's answer was refused: {0}")]
    Refused(String),
}

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
    /// A certificate's validity is missed by more than the clocks may differ; the device's
    /// clock is the likely cause (a session anchors the device clock to the server's).
    #[error(
        "this device's clock is {} from the server's: {what}; set the date and time of the device right, then sync again",
        describe_skew(*skew_ms)
    )]
    ClockSkew { what: String, skew_ms: i64 },
    #[error("the server refused the request ({status} {code}): {message}")]
    Server { status: u16, code: String, message: String },
    #[error("{0}")]
    Network(#[from] NetworkFailure),
    #[error("the server sent something that is not valid: {0}")]
    Protocol(String),
    #[error("the sync did not settle after {0} rounds")]
    TooManyRounds(usize),
    #[error("the server address is not usable: {0}")]
    ServerUrl(#[from] ServerUrlError),
    #[error("the sharing policy from the server is not valid for this network: {0}")]
    BadPolicy(String),
    /// Judging needs a certificate or policy not fetched yet. Internal to a sync: the driver
    /// fetches it without the device's lock and applies again; it never reaches a host.
    #[error("a certificate or policy was needed before it was fetched")]
    NotFetchedYet,
    /// The plan's membership chain is not on this device yet: it arrives with the sync that
    /// registers the plan, and what waits for it goes then.
    #[error("the plan's membership chain has not arrived yet; sync again")]
    NoChainYet,
    /// A user is named in a plan's chain by one of their approved devices' certificates;
    /// until an administrator approved one, adding them waits (queued).
    #[error("{0} heeft nog geen goedgekeurd apparaat; de deelname wacht daarop")]
    NoApprovedDevice(String),
    /// A member's erasure waits for this device to hold and have pushed all of `basis`; the
    /// next sync tries again.
    #[error("het wissen wacht: {0}")]
    ErasureWaits(String),
}

impl SyncError {
    /// A refusal the server answered with its error body.
    pub(crate) fn from_server(status: u16, error: ErrorBody) -> SyncError {
        match error.code.as_str() {
            "device_not_approved" => SyncError::NotApproved,
            "revoked" => SyncError::Revoked,
            _ => SyncError::Server { status, code: error.code, message: error.message },
        }
    }
}

fn describe_skew(skew_ms: i64) -> String {
    let minutes = skew_ms.unsigned_abs() / 60_000;
    let amount = if minutes >= 2 * 60 * 24 {
        format!("{} days", minutes / (60 * 24))
    } else if minutes >= 120 {
        format!("{} hours", minutes / 60)
    } else {
        format!("{minutes} minutes")
    };
    if skew_ms < 0 { format!("{amount} behind") } else { format!("{amount} ahead") }
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

    fn valid_from(&self) -> i64 {
        Certificate::from_bytes(&self.certificate)
            .and_then(|c| c.claimed_device_body())
            .map_or(i64::MAX, |body| body.valid_from_ms)
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
    /// Shares of plans waiting for the next sync.
    pub queued_shares: u64,
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
    /// Queued shares the server carried out in this sync.
    pub shares_done: usize,
    /// Queued shares the server refused for good (they left the queue).
    pub share_failures: Vec<shares::ShareFailure>,
    /// What was dropped, and why: bundles the server refused for good, received bundles,
    /// keys or snapshots refused here, shares that failed. A bundle the server only asked to
    /// be sealed again under a newer key is not here: it stays in the outbox and goes again.
    pub refused: Vec<String>,
    /// Pushed bundles the server asked to have sealed again under the document's next key;
    /// they stay in the outbox and go again.
    pub resealed: usize,
    /// Plans this device removed after the sync: closed, or no longer its user's, and past
    /// the policy's grace period ([`crate::retention`]).
    pub retired_plans: Vec<PlanId>,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

fn cbor<T: Serialize>(value: &T) -> Vec<u8> {
    eenplan_protocol::sync::encode(value)
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

fn is_revoked(error: &CoreError) -> bool {
    matches!(error, CoreError::Sync(SyncError::Revoked))
}

fn author_of(change: &automerge::Change) -> Option<crate::ids::DeviceId> {
    crate::ids::DeviceId::from_actor(change.actor_id())
}

/// Verifies a device's own chain against the root at `now`, allowing for the clocks
/// ([`CLOCK_TOLERANCE_MS`]). A certificate that starts later than the tolerance allows, but is
/// otherwise sound, is the device clock's doing, and the error says so.
fn verify_own(state: &CertificateState, root: &[u8; 32], now: i64) -> Result<DeviceBody, CoreError> {
    let untrusted =
        |e: eenplan_protocol::certificate::CertificateError| SyncError::UntrustedCertificate(e.to_string());
    let certificate = Certificate::from_bytes(&state.certificate).map_err(untrusted)?;
    let admin = Certificate::from_bytes(&state.admin_certificate).map_err(untrusted)?;
    let claimed = certificate.claimed_device_body().map_err(untrusted)?;
    let (from, until) = (claimed.valid_from_ms, claimed.valid_until_ms);
    // Within the tolerance, judged at the nearest moment of the window: the signatures are
    // checked all the same, only the window is widened.
    let at = now.clamp(
        from.min(now.saturating_add(CLOCK_TOLERANCE_MS)),
        until.max(now.saturating_sub(CLOCK_TOLERANCE_MS)),
    );
    if at < from {
        certificate.verify_device(&admin, root, from).map_err(untrusted)?;
        return Err(SyncError::ClockSkew {
            what: format!("a certificate is valid only from {}", crate::lease::format_ms(from)),
            skew_ms: now - from,
        }
        .into());
    }
    Ok(certificate.verify_device(&admin, root, at).map_err(untrusted)?)
}

impl Device {
    fn server_state(&self) -> Result<Option<ServerState>, CoreError> {
        self.store().sync_state(STATE_SERVER)?.map(|b| from_cbor(&b, "server state")).transpose()
    }

    fn certificate_state(&self) -> Result<Option<CertificateState>, CoreError> {
        self.store().sync_state(STATE_CERTIFICATE)?.map(|b| from_cbor(&b, "certificate")).transpose()
    }

    /// A durable queue kept in the sync state (shares, membership acts), oldest first.
    pub(super) fn durable_queue<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        what: &str,
    ) -> Result<Vec<T>, CoreError> {
        self.ensure_not_wiped()?;
        Ok(match self.store().sync_state(name)? {
            Some(bytes) => from_cbor(&bytes, what)?,
            None => Vec::new(),
        })
    }

    /// Replaces a durable queue, in one transaction.
    pub(super) fn put_durable_queue<T: Serialize>(
        &mut self,
        name: &str,
        queue: &[T],
    ) -> Result<(), CoreError> {
        let bytes = cbor(&queue);
        self.store_mut().write(|w| w.put_state(name, &bytes))?;
        Ok(())
    }

    /// [`Device::put_durable_queue`] for an act on who takes part: the access log's
    /// `ParticipantChange` event `access` is written in the queue's own transaction.
    pub(super) fn put_durable_queue_recorded<T: Serialize>(
        &mut self,
        name: &str,
        queue: &[T],
        access: crate::audit::Access,
    ) -> Result<(), CoreError> {
        let prepared = self.prepare_events(&[access])?;
        let bytes = cbor(&queue);
        self.store_mut().write(|w| {
            w.put_state(name, &bytes)?;
            crate::audit::write_prepared(w, &prepared)
        })?;
        self.audit_committed(prepared);
        Ok(())
    }

    fn cursor(&self) -> Result<u64, CoreError> {
        Ok(self
            .store()
            .sync_state(STATE_CURSOR)?
            .and_then(|b| b.as_slice().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0))
    }

    /// Where the key mailbox stands. A device that synced before the mailbox had a cursor of
    /// its own has had every envelope up to its log cursor, so it starts from there rather
    /// than fetching every key again.
    fn mailbox_cursor(&self) -> Result<u64, CoreError> {
        if let Some(stored) = self.store().sync_state(STATE_MAILBOX)? {
            return Ok(stored.as_slice().try_into().map(u64::from_be_bytes).unwrap_or(0));
        }
        Ok(eenplan_protocol::sync::mailbox_cursor_of_log_cursor(self.cursor()?))
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

    /// The offline lease of this device's organisation, once approved.
    pub(crate) fn own_lease_hours(&self) -> Result<Option<u32>, CoreError> {
        Ok(self.certificate_state()?.map(|c| c.lease_hours))
    }

    /// Whether the device has a server (it was enrolled), whatever became of it since.
    pub(crate) fn has_server(&self) -> Result<bool, CoreError> {
        Ok(self.server_state()?.is_some())
    }

    /// The verified current certificate of `device` as this device holds it (its own, or an
    /// author's it cached), without asking the server; `None` when it holds none that verifies.
    pub(crate) fn known_device(&self, device: &[u8; 16]) -> Result<Option<DeviceBody>, CoreError> {
        let Some(server) = self.server_state()? else { return Ok(None) };
        if *device == *self.device_id().as_bytes() {
            return Ok(self.own_certificate(&server).ok());
        }
        let trust = authors::Trust { root: &server.root_public, now: self.now_ms() };
        Ok(self.author_certificate(trust, device, &mut authors::Judge::default()).ok())
    }

    /// Whether this device's revocation list has `device` (its verified certificate) revoked
    /// at or before `at_ms`, by an entry under the organisation the certificate names.
    pub(crate) fn revoked_by(&self, device: &DeviceBody, at_ms: i64) -> Result<bool, CoreError> {
        let Some(server) = self.server_state()? else { return Ok(false) };
        let list = self.held_revocations(&server)?;
        Ok(list.revokes(device).is_some_and(|r| r.revoked_at_ms <= at_ms))
    }

    /// The role this device's verified certificate names; `None` before an administrator
    /// approved the device (or when its certificate no longer verifies).
    pub(crate) fn own_certified_role(&self) -> Result<Option<String>, CoreError> {
        let Some(server) = self.server_state()? else { return Ok(None) };
        Ok(self.own_certificate(&server).ok().map(|own| own.role))
    }

    /// This device's own verified certificate body, once approved.
    pub(crate) fn own_body(&self) -> Result<Option<DeviceBody>, CoreError> {
        let Some(server) = self.server_state()? else { return Ok(None) };
        Ok(self.own_certificate(&server).ok())
    }

    /// The stored record of this device's own certificate chain, as it is: what the access
    /// log's actor is cached by.
    pub(crate) fn own_certificate_record(&self) -> Result<Option<Vec<u8>>, CoreError> {
        Ok(self.store().sync_state(STATE_CERTIFICATE)?)
    }

    /// Whom this device's own certificate names: verified now, or else (its validity passed,
    /// the clock far off) as it was verified when stored. For naming who acts in the access
    /// log, never for deciding what the device may do.
    pub(crate) fn own_named_body(&self) -> Result<Option<DeviceBody>, CoreError> {
        if let Some(body) = self.own_body()? {
            return Ok(Some(body));
        }
        Ok(self
            .certificate_state()?
            .and_then(|c| Certificate::from_bytes(&c.certificate).ok()?.claimed_device_body().ok()))
    }

    /// This device's own verified certificate body.
    fn own_certificate(&self, server: &ServerState) -> Result<DeviceBody, CoreError> {
        let state = self.certificate_state()?.ok_or(SyncError::NotApproved)?;
        verify_own(&state, &server.root_public, self.now_ms())
    }

    /// Opens a sealed bundle (as the server stores it) with the keys this device holds, as
    /// anyone holding a copy of this device could: a snapshot's saved document, or a changes
    /// bundle's automerge changes (packed ones rebuilt under the author the header names). It
    /// exists to test the revocation promise (a revoked device's keys open nothing written
    /// after the revocation) against a copy of the server's database; it checks no signature
    /// and changes nothing.
    pub fn open_sealed_bundle(&self, bytes: &[u8]) -> Result<Vec<u8>, CoreError> {
        let bundle = Bundle::decode(bytes.to_vec()).map_err(|e| SyncError::Protocol(e.to_string()))?;
        let header = bundle.header;
        let compartment = compartment_of(header.document)
            .ok_or_else(|| SyncError::Protocol("unknown compartment".into()))?;
        let plan = PlanId::from_bytes(header.document.plan);
        let key = self.store().doc_key_at(plan, compartment, header.epoch)?.ok_or_else(|| {
            SyncError::Protocol(format!("no key for epoch {} of this document", header.epoch))
        })?;
        let opened = bundle.open(&key).map_err(|e| SyncError::Protocol(e.to_string()))?;
        if header.kind.is_snapshot() {
            return Ok(opened);
        }
        Ok(unpack_changes(&header.author, &opened).map_err(|e| SyncError::Protocol(e.to_string()))?)
    }

    /// Seals `payload` as a changes bundle of `document` at `epoch` under `key`, signed by this
    /// device as its author, as anyone holding this device (its files and its passphrase)
    /// could. It exists to test the promises against a participant who turns on the others:
    /// whatever such a payload holds, receivers take its changes as this device's own or not
    /// at all.
    #[doc(hidden)]
    pub fn seal_changes_as_self(
        &self,
        document: DocumentId,
        epoch: u32,
        key: &[u8; 32],
        payload: &[u8],
    ) -> Result<Vec<u8>, CoreError> {
        self.ensure_not_wiped()?;
        let new =
            NewBundle { kind: BundleKind::Changes, document, epoch, author: *self.device_id().as_bytes() };
        let bundle = Bundle::seal(new, key, payload, self.identity().signing_key())
            .map_err(|e| SyncError::Protocol(e.to_string()))?;
        Ok(bundle.into_bytes())
    }

    /// A document key this device holds, as anyone holding this device (its files and its
    /// passphrase) can read it. It exists to test the promises against a participant who
    /// turns on the others: a key holder can seal anything under the key, so what keeps it
    /// from writing in another's name is the author's signature, which receivers check.
    pub fn held_document_key(
        &self,
        plan: &PlanId,
        compartment: Compartment,
        epoch: u32,
    ) -> Result<Option<[u8; 32]>, CoreError> {
        self.ensure_not_wiped()?;
        Ok(self.store().doc_key_at(*plan, compartment, epoch)?.map(|k| *k))
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
            queued_shares: self.queued_shares()?.len() as u64,
            parked_bundles: self.store().parked_bundles()?.len() as u64,
            cursor: self.cursor()?,
        })
    }

    /// Claims an enrolment code at `server`, saying what the device is called (`name`, e.g.
    /// "Wim's Android") and its platform. The root key the server names must match the
    /// code, or nothing is stored: the device pins only the root its administrator meant.
    /// The device is not held while the server answers.
    pub fn enrol(
        &mut self,
        server: &str,
        code: &str,
        name: &str,
        platform: Platform,
    ) -> Result<Enrolment, CoreError> {
        enrol(&access::Exclusive::new(self), server, code, name, platform)
    }

    /// Pushes everything this device wrote, carries out the shares it queued, and pulls
    /// everything it may read.
    pub fn sync(&mut self) -> Result<SyncReport, CoreError> {
        driver::sync(&access::Exclusive::new(self))
    }

    /// Gives a plan's participation to another user (by name) with `role`: queued, and
    /// carried out by a sync right away (which registers a plan that is new to the server
    /// first). Offline, the share waits for the next sync ([`Device::queue_share`]).
    pub fn add_participant(
        &mut self,
        plan: &PlanId,
        user: &str,
        role: &str,
    ) -> Result<ShareOutcome, CoreError> {
        shares::share_now(&access::Exclusive::new(self), plan, user, role)
    }
}

impl Device {
    /// Syncs after an act on a plan's membership chain was queued ([`Device::queue_intent`]):
    /// `Done` when the server took every queued act, `Queued` when it could not be reached
    /// (they wait for the next sync); the server's or the chain's refusal as an error.
    pub fn sync_membership(&mut self) -> Result<ShareOutcome, CoreError> {
        membership::act_now(&access::Exclusive::new(self))
    }
}

/// What became of a share: done at the server, or waiting for the next sync because the
/// server could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareOutcome {
    Done,
    Queued,
}

/// [`Device::enrol`] over shared access: the server's answer is awaited without the lock.
pub(crate) fn enrol(
    access: &impl access::Access,
    server: &str,
    code: &str,
    name: &str,
    platform: Platform,
) -> Result<Enrolment, CoreError> {
    let label = name::parse_label(name)?;
    let code = EnrolmentCode::parse(code).ok_or(SyncError::MalformedCode)?;
    let url = ServerUrl::parse(server).map_err(SyncError::from)?.as_str().trim_end_matches('/').to_owned();
    let request = access.with(|device| {
        device.ensure_not_wiped()?;
        device.set_device_name(&label, platform)?;
        let signing_public = device.identity().signing_public().to_bytes();
        let agreement_public = device.identity().agreement_public().to_vec();
        // Sends the code's id and a MAC over the keys, never the code: see `api`'s docs.
        let request = EnrolRequest::new(&code, &signing_public, &agreement_public, |message| {
            device.identity().sign(message).to_bytes()
        });
        Ok(EnrolRequest { name: device.signed_name()?, ..request })
    })?;
    let transport = Transport::new(&url);
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
    access.with(|device| {
        if response.device_id != device.device_id().to_string() {
            return Err(SyncError::Protocol("the server named another device id".into()).into());
        }
        let state = ServerState { url: url.clone(), root_public, escrow_public: escrow_public.clone() };
        device.store_mut().write(|w| w.put_state(STATE_SERVER, &cbor(&state)))?;
        Ok(Enrolment::PendingApproval)
    })
}

/// A network for unit tests with no server: a root and an administrator that certify
/// devices, which are then enrolled and approved on the spot, and plans whose chain a
/// device starts itself.
#[cfg(test)]
pub(crate) mod test_network {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use ed25519_dalek::SigningKey;
    use eenplan_protocol::certificate::{AdminBody, Certificate, DeviceBody, device_id_of};
    use eenplan_protocol::membership::{CertificateChain, Entry, Roster};

    use super::{CertificateState, STATE_CERTIFICATE, STATE_SERVER, ServerState, cbor};
    use crate::device::Device;
    use crate::ids::PlanId;
    use crate::sync::membership::HeldChain;

    pub(crate) struct TestNetwork {
        pub root: SigningKey,
        admin: SigningKey,
        admin_certificate: Vec<u8>,
    }

    /// Who a test device belongs to.
    pub(crate) struct TestUser<'a> {
        pub user_id: i64,
        pub name: &'a str,
        pub organisation: &'a str,
        pub role: &'a str,
    }

    impl TestNetwork {
        pub(crate) fn new() -> TestNetwork {
            let root = SigningKey::from_bytes(&[1; 32]);
            let admin = SigningKey::from_bytes(&[2; 32]);
            let body = AdminBody {
                admin_public: admin.verifying_key().to_bytes(),
                name: "beheer".into(),
                issued_at_ms: 0,
                organisation: None,
            };
            let admin_certificate = Certificate::sign_admin(&body, &root).to_bytes();
            TestNetwork { root, admin, admin_certificate }
        }

        pub(crate) fn root_public(&self) -> [u8; 32] {
            self.root.verifying_key().to_bytes()
        }

        /// A certificate chain for a device with these keys, valid for years around `now`.
        pub(crate) fn chain(
            &self,
            signing: &[u8; 32],
            agreement: &[u8],
            user: &TestUser<'_>,
            now: i64,
        ) -> CertificateChain {
            let body = DeviceBody {
                device_id: device_id_of(signing),
                user_id: user.user_id,
                user_name: user.name.into(),
                organisation: user.organisation.into(),
                role: user.role.into(),
                signing_public: *signing,
                agreement_public: agreement.to_vec(),
                valid_from_ms: now - 86_400_000,
                valid_until_ms: now + 1000 * 86_400_000,
                issuer: self.admin.verifying_key().to_bytes(),
            };
            CertificateChain {
                certificate: Certificate::sign_device(&body, &self.admin).to_bytes(),
                admin_certificate: self.admin_certificate.clone(),
            }
        }

        /// Enrols and approves `device` for `user`, as a session would have stored it.
        pub(crate) fn enrol(&self, device: &mut Device, user: &TestUser<'_>) {
            let signing = device.identity().signing_public().to_bytes();
            let agreement = device.identity().agreement_public().to_vec();
            let chain = self.chain(&signing, &agreement, user, device.now_ms());
            let server = ServerState {
                url: "https://eenplan.test".into(),
                root_public: self.root_public(),
                escrow_public: eenplan_protocol::envelope::generate_keypair().1,
            };
            let certificate = CertificateState {
                certificate: chain.certificate,
                admin_certificate: chain.admin_certificate,
                lease_hours: 72,
            };
            device
                .store_mut()
                .write(|w| {
                    w.put_state(STATE_SERVER, &cbor(&server))?;
                    w.put_state(STATE_CERTIFICATE, &cbor(&certificate))
                })
                .unwrap();
        }

        /// Gives `plan` on `device` a chain whose first entry `creator` signed (the creator
        /// holds regie), as a sync would have verified and kept it.
        pub(crate) fn start_chain(
            &self,
            device: &mut Device,
            plan: PlanId,
            creator: &SigningKey,
            chain: CertificateChain,
        ) {
            let signed = Entry::create(*plan.as_bytes(), device.now_ms(), chain).sign(creator);
            let roster = Roster::start(&signed, &self.root_public(), &|_, _| false).unwrap();
            let held = HeldChain { entries: vec![signed.to_bytes()], roster };
            device.store_mut().write(|w| w.put_membership(plan, &cbor(&held))).unwrap();
            device.forget_view(&plan);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_address_that_is_not_http_is_refused_before_anything_is_sent() {
        for bad in ["127.0.0.1:8443", "not a url", "ftp://example.org", "https://"] {
            let error = SyncError::from(ServerUrl::parse(bad).unwrap_err());
            assert!(error.to_string().starts_with("the server address is not usable"), "{bad}: {error}");
        }
    }

    /// A device chain valid from `from` for a day, and the root that signed its administrator.
    fn chain(from: i64) -> (CertificateState, [u8; 32]) {
        use eenplan_protocol::certificate::{AdminBody, device_id_of};
        let root = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let admin = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
        let device = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let admin_body = AdminBody {
            admin_public: admin.verifying_key().to_bytes(),
            name: "beheer".into(),
            issued_at_ms: 0,
            organisation: None,
        };
        let body = DeviceBody {
            device_id: device_id_of(device.verifying_key().as_bytes()),
            user_id: 1,
            user_name: "Wim".into(),
            organisation: "Wijkteam Noord".into(),
            role: "wijkteam".into(),
            signing_public: device.verifying_key().to_bytes(),
            agreement_public: vec![7; 32],
            valid_from_ms: from,
            valid_until_ms: from + 86_400_000,
            issuer: admin.verifying_key().to_bytes(),
        };
        let state = CertificateState {
            certificate: Certificate::sign_device(&body, &admin).to_bytes(),
            admin_certificate: Certificate::sign_admin(&admin_body, &root).to_bytes(),
            lease_hours: 72,
        };
        (state, root.verifying_key().to_bytes())
    }

    #[test]
    fn a_certificate_a_few_minutes_ahead_of_the_device_clock_is_accepted() {
        let now = 1_800_000_000_000;
        let (state, root) = chain(now + 2 * 60_000);
        assert_eq!(verify_own(&state, &root, now).unwrap().user_name, "Wim");
        let (state, root) = chain(now - 86_400_000 - 60_000);
        assert!(verify_own(&state, &root, now).is_ok(), "a minute past its end is within the tolerance");
    }

    #[test]
    fn a_certificate_far_ahead_of_the_device_clock_is_blamed_on_the_clock_not_on_trust() {
        let now = 1_800_000_000_000;
        let (state, root) = chain(now + 3 * 86_400_000);
        let error = verify_own(&state, &root, now).unwrap_err();
        assert!(matches!(error, CoreError::Sync(SyncError::ClockSkew { .. })), "{error}");
        assert!(error.to_string().contains("3 days behind"), "{error}");
        // Not for a forgery: a chain under another root is untrusted, whatever the dates.
        let other_root = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key().to_bytes();
        let error = verify_own(&state, &other_root, now).unwrap_err();
        assert!(matches!(error, CoreError::Sync(SyncError::UntrustedCertificate(_))), "{error}");
    }

    #[test]
    fn a_clock_skew_is_described_in_plain_amounts() {
        assert_eq!(describe_skew(-2 * 60_000), "2 minutes behind");
        assert_eq!(describe_skew(3 * 24 * 3_600_000), "3 days ahead");
        assert_eq!(describe_skew(5 * 3_600_000), "5 hours ahead");
    }
}
