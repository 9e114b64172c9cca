//! The access log (NEN 7513, DESIGN §8): who did what to which plan, when, with what result.
//!
//! Reads happen on phones, offline, where no server sees them. So every device (and the
//! server, for what it does itself) keeps its events as a **hash chain**: event `n` names the
//! hash of event `n − 1`, and each event is signed by the device's Ed25519 key, so one event
//! is evidence on its own and a removed, changed or inserted event shows.
//!
//! ```text
//! event     = CBOR(AuditEvent { seq, prev, at, actor, action, plan, … })
//! signature = Ed25519(device, "eenplan/audit/event/v1" || event)
//! hash      = SHA-256("eenplan/audit/hash/v1" || event || signature)     (the next `prev`)
//! ```
//!
//! A device uploads its events with its next sync as an [`AuditUpload`]: a run of consecutive
//! events sealed (HPKE, X-Wing) to the **audit key** of the device's organisation, which the
//! network root certifies ([`SignedAuditKey`]) and whose secret the organisation's privacy
//! officer or administrator holds. The server sees who uploaded how many events, never what
//! they say; it keeps uploads append-only. The upload is signed by the device over its
//! position and sealed bytes, so the server cannot pass off one device's events as another's.
//!
//! [`verify_chain`] is the one set of rules for judging a chain (gaps, forks, broken links,
//! forged events), run by `eenplan-admin audit verify` and by the benchmark.

use std::collections::HashMap;

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::certificate::bytes;
use crate::sync::{Blob, Fixed};

const EVENT_LABEL: &[u8] = b"eenplan/audit/event/v1";
const HASH_LABEL: &[u8] = b"eenplan/audit/hash/v1";
const UPLOAD_LABEL: &[u8] = b"eenplan/audit/upload/v1";
const KEY_LABEL: &[u8] = b"eenplan/audit/key/v1";
/// The HPKE `info` of a sealed upload.
const SEAL_INFO: &[u8] = b"eenplan/audit/seal/v1";

/// The largest encoded event: names and an object id, never plan content. The names come
/// from a certificate ([`crate::certificate::MAX_CERTIFICATE_LEN`]), so an event always fits.
pub const MAX_EVENT_LEN: usize = crate::certificate::MAX_CERTIFICATE_LEN + 1024;
/// The most events one upload carries.
pub const MAX_UPLOAD_EVENTS: usize = 2000;
/// The largest sealed upload (events plus HPKE overhead).
pub const MAX_UPLOAD_LEN: usize = MAX_UPLOAD_EVENTS * (MAX_EVENT_LEN + 80) + 2048;
/// The most uploads one sync request carries.
pub const MAX_UPLOADS_PER_SYNC: usize = 16;
/// The largest signed audit-key certificate.
pub const MAX_AUDIT_KEY_LEN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("the audit record is not decodable")]
    Malformed,
    #[error("the audit record's signature does not verify")]
    BadSignature,
    #[error("the audit upload does not open with this audit key")]
    Undecryptable,
    #[error("the audit key is not valid for sealing")]
    BadKey,
    #[error("the audit upload's events do not match its header: {0}")]
    Inconsistent(&'static str),
}

/// An upload of a sync request the server refused: the sync's pushes and pull go on, and the
/// device learns which upload it must make again (or drop). The reason is one of
/// [`REFUSE_MALFORMED`], [`REFUSE_WRONG_DEVICE`], [`REFUSE_BAD_SIGNATURE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRefusal {
    /// The upload's index in [`crate::sync::SyncRequest::audit`].
    #[serde(rename = "i")]
    pub index: u32,
    #[serde(rename = "r")]
    pub reason: String,
}

/// The upload does not decode, is larger than [`MAX_UPLOAD_LEN`], or its positions are
/// impossible.
pub const REFUSE_MALFORMED: &str = "audit_malformed";
/// The upload names another device than the one whose session sent it.
pub const REFUSE_WRONG_DEVICE: &str = "audit_wrong_device";
/// The sending device's key did not sign the upload.
pub const REFUSE_BAD_SIGNATURE: &str = "audit_bad_signature";

/// What was done. The codes are the wire form; [`AuditAction::label`] is what people read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AuditAction {
    /// A plan (or one compartment of it) was shown: its read model, conflicts, review, agenda
    /// lines or an adopted version.
    #[serde(rename = "r")]
    Read,
    #[serde(rename = "c")]
    Create,
    #[serde(rename = "w")]
    Change,
    /// Plan content left the device as a file (a transfer file, a copy).
    #[serde(rename = "x")]
    Export,
    #[serde(rename = "i")]
    Import,
    /// The family's copy was made (HTML or PDF).
    #[serde(rename = "p")]
    Print,
    /// Plan keys or content were handed to another device.
    #[serde(rename = "s")]
    Share,
    #[serde(rename = "t")]
    Settle,
    #[serde(rename = "a")]
    Adopt,
    /// Who takes part changed: an addition, removal, handover, escalation.
    #[serde(rename = "m")]
    ParticipantChange,
    #[serde(rename = "n")]
    EmergencyAccess,
    #[serde(rename = "k")]
    KeyRotation,
    #[serde(rename = "v")]
    Revocation,
    /// The plan was closed (afgesloten): its retention period starts.
    #[serde(rename = "z")]
    Close,
    /// The plan was removed from this device (closed or left, after the grace period).
    #[serde(rename = "d")]
    RemoveFromDevice,
    /// The plan was destroyed at the end of its retention period.
    #[serde(rename = "e")]
    Erase,
    /// A family member's personal data was erased from the plan on their request (AVG).
    #[serde(rename = "g")]
    EraseMember,
    /// The server: a device opened a session.
    #[serde(rename = "S")]
    Session,
    /// The server: a sync (pushes taken, bundles delivered).
    #[serde(rename = "Y")]
    Sync,
    /// The server: a signed administrator request.
    #[serde(rename = "A")]
    AdminRequest,
    /// The access log itself was read.
    #[serde(rename = "L")]
    LogRead,
}

impl AuditAction {
    pub const ALL: [AuditAction; 21] = [
        AuditAction::Read,
        AuditAction::Create,
        AuditAction::Change,
        AuditAction::Export,
        AuditAction::Import,
        AuditAction::Print,
        AuditAction::Share,
        AuditAction::Settle,
        AuditAction::Adopt,
        AuditAction::ParticipantChange,
        AuditAction::EmergencyAccess,
        AuditAction::KeyRotation,
        AuditAction::Revocation,
        AuditAction::Close,
        AuditAction::RemoveFromDevice,
        AuditAction::Erase,
        AuditAction::EraseMember,
        AuditAction::Session,
        AuditAction::Sync,
        AuditAction::AdminRequest,
        AuditAction::LogRead,
    ];

    /// The code in CSV and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Read => "read",
            AuditAction::Create => "create",
            AuditAction::Change => "change",
            AuditAction::Export => "export",
            AuditAction::Import => "import",
            AuditAction::Print => "print",
            AuditAction::Share => "share",
            AuditAction::Settle => "settle",
            AuditAction::Adopt => "adopt",
            AuditAction::ParticipantChange => "participant_change",
            AuditAction::EmergencyAccess => "emergency_access",
            AuditAction::KeyRotation => "key_rotation",
            AuditAction::Revocation => "revocation",
            AuditAction::Close => "close",
            AuditAction::RemoveFromDevice => "remove_from_device",
            AuditAction::Erase => "erase",
            AuditAction::EraseMember => "erase_member",
            AuditAction::Session => "session",
            AuditAction::Sync => "sync",
            AuditAction::AdminRequest => "admin_request",
            AuditAction::LogRead => "log_read",
        }
    }

    /// The Dutch verb phrase a family reads: "bekeek het plan".
    pub fn label(self) -> &'static str {
        match self {
            AuditAction::Read => "bekeek",
            AuditAction::Create => "maakte aan",
            AuditAction::Change => "wijzigde",
            AuditAction::Export => "exporteerde",
            AuditAction::Import => "importeerde",
            AuditAction::Print => "maakte een afdruk van",
            AuditAction::Share => "deelde",
            AuditAction::Settle => "besliste een conflict in",
            AuditAction::Adopt => "stelde vast",
            AuditAction::ParticipantChange => "wijzigde de deelnemers van",
            AuditAction::EmergencyAccess => "opende met noodtoegang",
            AuditAction::KeyRotation => "vernieuwde de sleutels van",
            AuditAction::Revocation => "trok een apparaat in voor",
            AuditAction::Close => "sloot af",
            AuditAction::RemoveFromDevice => "verwijderde van het apparaat",
            AuditAction::Erase => "vernietigde",
            AuditAction::EraseMember => "wiste de persoonsgegevens van een gezinslid uit",
            AuditAction::Session => "meldde zich aan",
            AuditAction::Sync => "synchroniseerde",
            AuditAction::AdminRequest => "deed een beheerverzoek",
            AuditAction::LogRead => "las het logboek van",
        }
    }

    pub fn parse(code: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.as_str() == code)
    }
}

/// How the access ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditResult {
    #[serde(rename = "o")]
    Done,
    /// Not allowed (a lease run out, a role that may not, a plan not held).
    #[serde(rename = "d")]
    Refused,
    /// Allowed, but it failed (bad input, a damaged row).
    #[serde(rename = "f")]
    Failed,
}

impl AuditResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditResult::Done => "done",
            AuditResult::Refused => "refused",
            AuditResult::Failed => "failed",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            AuditResult::Done => "gelukt",
            AuditResult::Refused => "geweigerd",
            AuditResult::Failed => "mislukt",
        }
    }
}

/// Who acted: as their certificate names them when the event was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The device (all zeroes for the server and for an administrator's keyring).
    #[serde(rename = "d")]
    pub device: Fixed<16>,
    #[serde(rename = "u")]
    pub user_id: i64,
    #[serde(rename = "n")]
    pub user_name: String,
    #[serde(rename = "o")]
    pub organisation: String,
    #[serde(rename = "r")]
    pub role: String,
}

/// One access.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Position in the writer's chain, from 1.
    #[serde(rename = "n")]
    pub seq: u64,
    /// The hash of event `seq − 1` (zeroes for the first).
    #[serde(rename = "v")]
    pub prev: Fixed<32>,
    /// When, on the writer's clock (a device's clock is anchored to the server's at each
    /// session and never runs back).
    #[serde(rename = "t")]
    pub at_ms: i64,
    #[serde(rename = "a")]
    pub actor: Actor,
    /// On whose behalf, when not the actor's own organisation: the plan's regisseur's
    /// organisation for work done in a case, or the device an administrator acted on.
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    #[serde(rename = "w")]
    pub action: AuditAction,
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Fixed<16>>,
    /// The compartment (0 basis, 1 zorg, 2 veiligheid, 3 justitie).
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub compartment: Option<u8>,
    /// What in the plan (an action's or goal's id, "conflicts", "review"), or the subject of
    /// a server event (a device id in hex).
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(rename = "r")]
    pub result: AuditResult,
    /// Why it was refused or failed, or a count (a sync's pushes).
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl AuditEvent {
    pub fn sign(&self, key: &SigningKey) -> SignedEvent {
        let body = crate::sync::encode(self);
        let signature = key.sign(&[EVENT_LABEL, &body].concat()).to_bytes().to_vec();
        SignedEvent { body, signature }
    }
}

/// An event with its writer's signature, as it is kept and sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedEvent {
    #[serde(rename = "b", with = "bytes")]
    pub body: Vec<u8>,
    #[serde(rename = "s", with = "bytes")]
    pub signature: Vec<u8>,
}

impl SignedEvent {
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::sync::encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<SignedEvent, AuditError> {
        crate::sync::decode(bytes, MAX_EVENT_LEN + 128).map_err(|_| AuditError::Malformed)
    }

    /// The event, unverified.
    pub fn claimed(&self) -> Result<AuditEvent, AuditError> {
        crate::sync::decode(&self.body, MAX_EVENT_LEN).map_err(|_| AuditError::Malformed)
    }

    /// What the next event names as `prev`.
    pub fn hash(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(HASH_LABEL);
        hash.update(&self.body);
        hash.update(&self.signature);
        hash.finalize().into()
    }

    /// The event, if `writer` signed it.
    pub fn verify(&self, writer: &VerifyingKey) -> Result<AuditEvent, AuditError> {
        let signature = Signature::from_slice(&self.signature).map_err(|_| AuditError::BadSignature)?;
        writer
            .verify(&[EVENT_LABEL, &self.body].concat(), &signature)
            .map_err(|_| AuditError::BadSignature)?;
        self.claimed()
    }
}

/// Where a writer's chain stands: what the next event continues from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    #[serde(rename = "n")]
    pub seq: u64,
    #[serde(rename = "h")]
    pub hash: Fixed<32>,
}

impl Default for ChainHead {
    /// Before the first event.
    fn default() -> ChainHead {
        ChainHead { seq: 0, hash: Fixed([0; 32]) }
    }
}

impl ChainHead {
    /// The head after `event`.
    pub fn after(event: &SignedEvent, seq: u64) -> ChainHead {
        ChainHead { seq, hash: Fixed(event.hash()) }
    }
}

/// An organisation's audit key: what its devices seal their events to. Signed by the
/// network root, so a server cannot hand devices a key of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditKey {
    #[serde(rename = "o")]
    pub organisation: String,
    /// X-Wing public key.
    #[serde(rename = "k", with = "bytes")]
    pub public: Vec<u8>,
    /// Raised with each new key of the organisation; a device keeps the highest it verified.
    #[serde(rename = "v")]
    pub version: u32,
    #[serde(rename = "t")]
    pub issued_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAuditKey {
    #[serde(rename = "b", with = "bytes")]
    pub body: Vec<u8>,
    #[serde(rename = "s", with = "bytes")]
    pub signature: Vec<u8>,
}

impl AuditKey {
    pub fn sign(&self, root: &SigningKey) -> SignedAuditKey {
        let body = crate::sync::encode(self);
        let signature = root.sign(&[KEY_LABEL, &body].concat()).to_bytes().to_vec();
        SignedAuditKey { body, signature }
    }
}

impl SignedAuditKey {
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::sync::encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<SignedAuditKey, AuditError> {
        crate::sync::decode(bytes, MAX_AUDIT_KEY_LEN).map_err(|_| AuditError::Malformed)
    }

    /// The key, if the network root signed it and it is an X-Wing key.
    pub fn verify(&self, root_public: &[u8; 32]) -> Result<AuditKey, AuditError> {
        let root = VerifyingKey::from_bytes(root_public).map_err(|_| AuditError::BadSignature)?;
        let signature = Signature::from_slice(&self.signature).map_err(|_| AuditError::BadSignature)?;
        root.verify(&[KEY_LABEL, &self.body].concat(), &signature).map_err(|_| AuditError::BadSignature)?;
        let key: AuditKey =
            crate::sync::decode(&self.body, MAX_AUDIT_KEY_LEN).map_err(|_| AuditError::Malformed)?;
        if key.public.len() != crate::envelope::XWING_PUBLIC_LEN {
            return Err(AuditError::BadKey);
        }
        Ok(key)
    }
}

/// A run of consecutive events of one device, sealed to its organisation's audit key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditUpload {
    #[serde(rename = "d")]
    pub device: Fixed<16>,
    #[serde(rename = "f")]
    pub first: u64,
    #[serde(rename = "l")]
    pub last: u64,
    /// The hash of event `last`: the chain head this upload brings the server's copy to.
    #[serde(rename = "h")]
    pub head: Fixed<32>,
    /// The audit key's version it is sealed to.
    #[serde(rename = "v")]
    pub key_version: u32,
    #[serde(rename = "x")]
    pub sealed: Blob,
    /// Ed25519(device, label || device || first || last || head || key_version || sealed).
    #[serde(rename = "s", with = "bytes")]
    pub signature: Vec<u8>,
}

impl AuditUpload {
    fn signed_bytes(
        device: [u8; 16],
        first: u64,
        last: u64,
        head: [u8; 32],
        version: u32,
        sealed: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(UPLOAD_LABEL.len() + 16 + 8 + 8 + 32 + 4 + sealed.len());
        out.extend_from_slice(UPLOAD_LABEL);
        out.extend_from_slice(&device);
        out.extend_from_slice(&first.to_be_bytes());
        out.extend_from_slice(&last.to_be_bytes());
        out.extend_from_slice(&head);
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(sealed);
        out
    }

    fn aad(device: [u8; 16], first: u64, last: u64, head: [u8; 32]) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&device);
        out.extend_from_slice(&first.to_be_bytes());
        out.extend_from_slice(&last.to_be_bytes());
        out.extend_from_slice(&head);
        out
    }

    /// Seals `events` (consecutive, `first` being the first's seq) to `audit_key` and signs
    /// the upload with the device's key.
    pub fn seal(
        device: [u8; 16],
        key: &SigningKey,
        audit_key: &AuditKey,
        first: u64,
        events: &[SignedEvent],
    ) -> Result<AuditUpload, AuditError> {
        let last_event = events.last().ok_or(AuditError::Inconsistent("no events"))?;
        if events.len() > MAX_UPLOAD_EVENTS {
            return Err(AuditError::Inconsistent("too many events"));
        }
        let last = first + events.len() as u64 - 1;
        let head = last_event.hash();
        let plain = crate::sync::encode(&events);
        let sealed = crate::envelope::seal_message(
            &audit_key.public,
            SEAL_INFO,
            &Self::aad(device, first, last, head),
            &plain,
        )
        .map_err(|_| AuditError::BadKey)?;
        let signature = key
            .sign(&Self::signed_bytes(device, first, last, head, audit_key.version, &sealed))
            .to_bytes()
            .to_vec();
        Ok(AuditUpload {
            device: Fixed(device),
            first,
            last,
            head: Fixed(head),
            key_version: audit_key.version,
            sealed: Blob(sealed),
            signature,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        crate::sync::encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<AuditUpload, AuditError> {
        let upload: AuditUpload =
            crate::sync::decode(bytes, MAX_UPLOAD_LEN + 512).map_err(|_| AuditError::Malformed)?;
        if upload.first == 0
            || upload.last < upload.first
            || upload.last - upload.first >= MAX_UPLOAD_EVENTS as u64
            || upload.last > i64::MAX as u64
        {
            return Err(AuditError::Inconsistent("positions"));
        }
        Ok(upload)
    }

    /// Whether `device` signed this upload: what the server checks before it keeps one.
    pub fn verify_signature(&self, device: &VerifyingKey) -> Result<(), AuditError> {
        let signature = Signature::from_slice(&self.signature).map_err(|_| AuditError::BadSignature)?;
        let signed = Self::signed_bytes(
            self.device.0,
            self.first,
            self.last,
            self.head.0,
            self.key_version,
            &self.sealed.0,
        );
        device.verify(&signed, &signature).map_err(|_| AuditError::BadSignature)
    }

    /// The sealed events, opened with the audit key's secret. Their positions and head must
    /// be the header's; their signatures are judged by [`verify_chain`].
    pub fn open(&self, audit_secret: &[u8; 32]) -> Result<Vec<SignedEvent>, AuditError> {
        let aad = Self::aad(self.device.0, self.first, self.last, self.head.0);
        let plain = crate::envelope::open_message(&self.sealed.0, audit_secret, SEAL_INFO, &aad)
            .map_err(|_| AuditError::Undecryptable)?;
        let events: Vec<SignedEvent> =
            crate::sync::decode(&plain, MAX_UPLOAD_LEN).map_err(|_| AuditError::Malformed)?;
        if events.len() as u64 != self.last - self.first + 1 {
            return Err(AuditError::Inconsistent("event count"));
        }
        if events.last().map(SignedEvent::hash) != Some(self.head.0) {
            return Err(AuditError::Inconsistent("head"));
        }
        Ok(events)
    }
}

/// Something wrong with a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// Events `from..=to` are missing.
    Gap { from: u64, to: u64 },
    /// Two different events claim position `seq`.
    Fork { seq: u64 },
    /// Event `seq` does not name the hash of event `seq − 1`.
    BrokenLink { seq: u64 },
    /// An event that the chain's writer did not sign (or that does not decode).
    Forged { seq: u64 },
    /// An event whose position is not the one its upload gave it.
    Misplaced { seq: u64 },
}

/// A verified chain: its events in order (each position once) and what is wrong with it.
#[derive(Debug, Default)]
pub struct ChainReport {
    pub events: Vec<AuditEvent>,
    pub findings: Vec<Finding>,
}

/// Judges one writer's chain from events as received (any order, duplicates allowed):
/// forged events are left out and reported, a second different event at a position is a
/// fork, a missing position a gap, a `prev` that is not the previous event's hash a broken
/// link. Signatures are checked in batches (ed25519's batch verification), so a region's day
/// of events verifies in seconds.
pub fn verify_chain(writer: &VerifyingKey, received: Vec<(u64, SignedEvent)>) -> ChainReport {
    let mut findings = Vec::new();
    let mut decoded: Vec<(u64, [u8; 32], AuditEvent, SignedEvent)> = Vec::with_capacity(received.len());
    for (position, signed) in received {
        match signed.claimed() {
            Ok(event) if event.seq == position => decoded.push((position, signed.hash(), event, signed)),
            Ok(_) => findings.push(Finding::Misplaced { seq: position }),
            Err(_) => findings.push(Finding::Forged { seq: position }),
        }
    }
    decoded.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    decoded.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    let valid = signatures_valid(writer, &decoded);
    let mut kept: Vec<(u64, [u8; 32], AuditEvent)> = Vec::with_capacity(decoded.len());
    for ((position, hash, event, _), ok) in decoded.into_iter().zip(valid) {
        if !ok {
            findings.push(Finding::Forged { seq: position });
            continue;
        }
        match kept.last() {
            Some((seq, _, _)) if *seq == position => {
                if findings.last() != Some(&Finding::Fork { seq: position }) {
                    findings.push(Finding::Fork { seq: position });
                }
                continue;
            }
            _ => {}
        }
        kept.push((position, hash, event));
    }
    let mut expected = 1;
    let mut previous: Option<[u8; 32]> = None;
    for (position, hash, event) in &kept {
        if *position > expected {
            findings.push(Finding::Gap { from: expected, to: position - 1 });
        } else if let Some(previous) = previous
            && event.prev.0 != previous
        {
            findings.push(Finding::BrokenLink { seq: *position });
        } else if previous.is_none() && *position == 1 && event.prev.0 != [0; 32] {
            findings.push(Finding::BrokenLink { seq: 1 });
        }
        expected = position + 1;
        previous = Some(*hash);
    }
    findings.sort_by_key(finding_position);
    ChainReport { events: kept.into_iter().map(|(_, _, event)| event).collect(), findings }
}

fn finding_position(finding: &Finding) -> u64 {
    match finding {
        Finding::Gap { from, .. } => *from,
        Finding::Fork { seq }
        | Finding::BrokenLink { seq }
        | Finding::Forged { seq }
        | Finding::Misplaced { seq } => *seq,
    }
}

/// Each event's signature, checked in batches; a batch that fails is checked one by one to
/// name the forged events.
fn signatures_valid(writer: &VerifyingKey, events: &[(u64, [u8; 32], AuditEvent, SignedEvent)]) -> Vec<bool> {
    const BATCH: usize = 256;
    let mut valid = Vec::with_capacity(events.len());
    for chunk in events.chunks(BATCH) {
        let messages: Vec<Vec<u8>> =
            chunk.iter().map(|(_, _, _, s)| [EVENT_LABEL, &s.body].concat()).collect();
        let signatures: Option<Vec<Signature>> =
            chunk.iter().map(|(_, _, _, s)| Signature::from_slice(&s.signature).ok()).collect();
        let batch_ok = signatures.as_ref().is_some_and(|signatures| {
            let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
            let keys = vec![*writer; chunk.len()];
            ed25519_dalek::verify_batch(&refs, signatures, &keys).is_ok()
        });
        if batch_ok {
            valid.extend(std::iter::repeat_n(true, chunk.len()));
        } else {
            valid.extend(chunk.iter().map(|(_, _, _, s)| s.verify(writer).is_ok()));
        }
    }
    valid
}

/// Why an upload's events were not judged at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadFault {
    /// It does not decode.
    Malformed,
    /// It names a device whose key the verifier does not hold (no root-verified certificate).
    UnknownDevice,
    /// The device it names did not sign it.
    NotSigned,
    /// It is sealed to an audit key version the verifier does not hold.
    NoKey,
    /// It does not open with the audit key, or its contents are not its header's.
    Unopenable,
}

/// An upload left out of the chains, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UploadProblem {
    /// The device the upload names (zeroes when it does not decode).
    pub device: Fixed<16>,
    pub first: u64,
    pub last: u64,
    pub fault: UploadFault,
}

/// Every device's chain, judged.
#[derive(Debug, Default)]
pub struct UploadsReport {
    /// By device id, with the hash of each chain's newest kept event.
    pub chains: Vec<([u8; 16], ChainReport, Option<ChainHead>)>,
    pub problems: Vec<UploadProblem>,
}

/// One device's events as received: (position, event).
type DeviceEvents = ([u8; 16], Vec<(u64, SignedEvent)>);

/// Opens every upload of an organisation with its audit secrets (by key version), checks
/// each upload's signature against the key of the device it names (`writers`, from
/// root-verified certificates), and judges each device's chain with [`verify_chain`].
/// Uploads are opened and chains judged on `threads` threads, so a region's day of events is
/// checked in seconds.
pub fn verify_uploads(
    uploads: &[Vec<u8>],
    writers: &HashMap<[u8; 16], VerifyingKey>,
    secrets: &HashMap<u32, [u8; 32]>,
    threads: usize,
) -> UploadsReport {
    let threads = threads.max(1);
    let mut report = UploadsReport::default();
    let mut by_device: std::collections::BTreeMap<[u8; 16], Vec<(u64, SignedEvent)>> = Default::default();
    for result in in_parallel(uploads.iter().collect(), threads, |bytes| open_one(bytes, writers, secrets)) {
        match result {
            Ok((device, events)) => by_device.entry(device).or_default().extend(events),
            Err(problem) => report.problems.push(problem),
        }
    }
    let devices: Vec<DeviceEvents> = by_device.into_iter().collect();
    report.chains = in_parallel(devices, threads, |(device, events)| {
        let writer = writers.get(&device)?;
        let head = newest_head(&events);
        Some((device, verify_chain(writer, events), head))
    })
    .into_iter()
    .flatten()
    .collect();
    report
}

/// `work` on every item, the items split into `threads` runs of consecutive items, results
/// in the items' order.
fn in_parallel<T: Send, R: Send>(items: Vec<T>, threads: usize, work: impl Fn(T) -> R + Sync) -> Vec<R> {
    let per_thread = items.len().div_ceil(threads).max(1);
    let mut runs: Vec<Vec<T>> = Vec::new();
    let mut rest = items.into_iter().peekable();
    while rest.peek().is_some() {
        runs.push(rest.by_ref().take(per_thread).collect());
    }
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .into_iter()
            .map(|run| scope.spawn(move || run.into_iter().map(work).collect::<Vec<R>>()))
            .collect();
        // A panicking worker is a bug in this module; its items are lost, not the process.
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    })
}

/// The head after the newest position received (the first event there, when forked).
fn newest_head(events: &[(u64, SignedEvent)]) -> Option<ChainHead> {
    let (seq, event) = events.iter().max_by_key(|(seq, _)| *seq)?;
    Some(ChainHead::after(event, *seq))
}

fn open_one(
    bytes: &[u8],
    writers: &HashMap<[u8; 16], VerifyingKey>,
    secrets: &HashMap<u32, [u8; 32]>,
) -> Result<DeviceEvents, UploadProblem> {
    let upload = AuditUpload::from_bytes(bytes).map_err(|_| UploadProblem {
        device: Fixed([0; 16]),
        first: 0,
        last: 0,
        fault: UploadFault::Malformed,
    })?;
    let problem =
        |fault| UploadProblem { device: upload.device, first: upload.first, last: upload.last, fault };
    let writer = writers.get(&upload.device.0).ok_or_else(|| problem(UploadFault::UnknownDevice))?;
    upload.verify_signature(writer).map_err(|_| problem(UploadFault::NotSigned))?;
    let secret = secrets.get(&upload.key_version).ok_or_else(|| problem(UploadFault::NoKey))?;
    let events = upload.open(secret).map_err(|_| problem(UploadFault::Unopenable))?;
    Ok((upload.device.0, (upload.first..).zip(events).collect()))
}

#[cfg(test)]
mod tests;
