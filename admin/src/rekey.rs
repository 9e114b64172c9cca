//! Re-keying: moving documents to a new key epoch after a revocation, an unassignment or a
//! policy change, without any plaintext.
//!
//! The server queues a task per document that must move on, naming every device that may still
//! read it and the older epochs each one lacks; the answer carries each device's certificate
//! chain once (`eenplan_protocol::rekey`). For each task this module:
//!
//! 1. checks every recipient: a device this keyring revoked (or saw on a verified revocation
//!    list) gets nothing, whatever the server says about it; any other must have a
//!    certificate that chains to this keyring's root, names the device the server says it
//!    is, and carries a role that the current (root-signed, not rolled back) policy lets
//!    read the document's compartment — the server chooses recipients, this keyring decides
//!    whom a key is sealed to;
//! 2. opens the older epochs recipients lack from their escrow envelopes, and accepts each key
//!    only if it matches that epoch's signed commitment. Without the escrow secret (an
//!    offline keyring that was not given), an epoch that another recipient holds is left to
//!    that device (it answers the newcomer's key request); a document needing an epoch no
//!    recipient holds waits for a run with the offline keyring;
//! 3. makes a random key for `current_epoch + 1`, commits to it as this administrator (naming
//!    the policy version and the revocation-list version it was made under), seals it to
//!    every recipient and to escrow, seals the older keys to those that lack them, and signs
//!    every envelope;
//! 4. posts the results in CBOR batches of whole documents. The server takes a result only
//!    for the epoch after its current one, so a run that was interrupted, or raced by another
//!    administrator, is simply continued by the next run: a document already done answers
//!    `stale` and disappears from the list.
//!
//! A document that fails a check is refused and nothing is posted for it; it stays queued
//! (and closed for writing) until the problem is fixed and `eenplan-admin rekey` runs again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{IsTerminal, Write};
use std::time::Instant;

use ed25519_dalek::SigningKey;
use eenplan_core::crypto;
use eenplan_protocol::DocumentId;
use eenplan_protocol::api::{self, ESCROW_RECIPIENT};
use eenplan_protocol::certificate::{Certificate, CertificateError, device_id_of};
use eenplan_protocol::envelope::{self, EnvelopeError};
use eenplan_protocol::epoch::{Commitment, Minter, SignedCommitment};
use eenplan_protocol::policy::{COMPARTMENTS, Policy};
use eenplan_protocol::rekey::{
    EpochBlob, MAX_REKEY_REQUEST, REKEY_BATCH_BYTES, RekeyAnswer, RekeyBatch, RekeyEnvelope, RekeyResult,
    RekeyStatus, RekeyTasks,
};
use eenplan_protocol::sync::{Blob, Fixed};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::client::{Client, now_ms};
use crate::error::AdminError;
use crate::keyring::{RevokedRecord, Trust};

/// Tasks fetched per request.
pub const BATCH: usize = 50;
/// A document the server lists again and again within one run is not being taken; after this
/// many attempts it is refused so that the run ends.
const MAX_ATTEMPTS_PER_DOCUMENT: u32 = 8;
/// A batch's own framing beyond its results.
const BATCH_FRAMING: usize = 16;

/// Why one document was not rotated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RekeyError {
    #[error("the server's task is malformed: {0}")]
    Malformed(&'static str),
    #[error("device {device}: its certificate does not chain to this network's root: {source}")]
    UntrustedRecipient {
        device: String,
        #[source]
        source: CertificateError,
    },
    #[error("device {device}: the server lists it with the certificate of device {certified}")]
    RecipientIdMismatch { device: String, certified: String },
    #[error(
        "device {device}: its certified role {role:?} may not read the {compartment} compartment \
         under the current policy"
    )]
    RecipientMayNotRead { device: String, role: String, compartment: &'static str },
    #[error("device {device}: its key cannot be sealed to: {source}")]
    BadRecipientKey {
        device: String,
        #[source]
        source: EnvelopeError,
    },
    #[error("the keyring's escrow key cannot be sealed to: {0}")]
    BadEscrowKey(#[source] EnvelopeError),
    #[error("epoch {epoch}: the server sent no key commitment for it")]
    MissingCommitment { epoch: u32 },
    #[error("epoch {epoch}: the key commitment is refused: {reason}")]
    BadCommitment { epoch: u32, reason: &'static str },
    #[error("epoch {epoch}: the escrow envelope does not open with the escrow key: {source}")]
    EscrowUnopenable {
        epoch: u32,
        #[source]
        source: EnvelopeError,
    },
    #[error("epoch {epoch}: the escrow envelope holds a key that does not match the epoch's commitment")]
    EscrowKeyMismatch { epoch: u32 },
    #[error(
        "no remaining device holds the key of epoch(s) {epochs:?}, which a reader lacks: only escrow \
         can recover them; run `eenplan-admin rekey --offline-keyring PATH`"
    )]
    NeedsEscrow { epochs: Vec<u32> },
    #[error("its result is {bytes} bytes, more than one request may carry ({MAX_REKEY_REQUEST})")]
    TooLarge { bytes: usize },
}

/// What re-keying needs from the keyring, and the policy in force.
pub struct Authority<'k> {
    pub root_public: [u8; 32],
    pub admin: &'k SigningKey,
    /// The administrator's certificate, encoded: it goes into every commitment.
    pub admin_certificate: Vec<u8>,
    /// `None` when the escrow secret is in an offline keyring that was not given.
    pub escrow_secret: Option<&'k [u8; 32]>,
    pub escrow_public: &'k [u8],
    /// Verified against `root_public`, and not older than one the keyring saw, by the caller.
    pub policy: &'k Policy,
    /// The keyring's record of revoked devices, after taking in the server's newest list.
    pub trust: &'k Trust,
}

impl Authority<'_> {
    fn revoked(&self, device: &[u8; 16]) -> Option<&RevokedRecord> {
        self.trust.revoked(device)
    }
}

impl std::fmt::Debug for Authority<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("root_public", &api::hex(&self.root_public))
            .field("policy_version", &self.policy.version)
            .field("revocations_version", &self.trust.revocations_version)
            .field("escrow", &self.escrow_secret.is_some())
            .finish_non_exhaustive()
    }
}

/// A task with its recipients' certificates joined in from the answer's tables.
#[derive(Debug, Clone)]
pub struct Task {
    pub document: [u8; 17],
    pub current_epoch: u32,
    pub recipients: Vec<Listed>,
    pub escrow: Vec<EpochBlob>,
    pub commitments: Vec<EpochBlob>,
}

impl Task {
    fn name(&self) -> String {
        api::hex(&self.document)
    }
}

/// A recipient as the server lists it (its certificate chain empty if the answer's table
/// lacks it).
#[derive(Debug, Clone)]
pub struct Listed {
    pub device: [u8; 16],
    pub certificate: Vec<u8>,
    pub admin_certificate: Vec<u8>,
    pub missing_epochs: Vec<u32>,
}

/// The answer's tasks with certificates joined in.
pub fn tasks_of(answer: RekeyTasks) -> Vec<Task> {
    let admins = &answer.admin_certificates;
    let chains: HashMap<[u8; 16], (&[u8], &[u8])> = answer
        .devices
        .iter()
        .filter_map(|d| {
            let admin = admins.get(usize::try_from(d.admin_certificate).ok()?)?;
            Some((d.device.0, (d.certificate.0.as_slice(), admin.0.as_slice())))
        })
        .collect();
    answer
        .tasks
        .iter()
        .map(|t| Task {
            document: t.document.0,
            current_epoch: t.current_epoch,
            recipients: t
                .recipients
                .iter()
                .map(|r| {
                    let (certificate, admin) = chains.get(&r.device.0).copied().unwrap_or_default();
                    Listed {
                        device: r.device.0,
                        certificate: certificate.to_vec(),
                        admin_certificate: admin.to_vec(),
                        missing_epochs: r.missing_epochs.clone(),
                    }
                })
                .collect(),
            escrow: t.escrow.clone(),
            commitments: t.commitments.clone(),
        })
        .collect()
}

/// One document's new epoch, ready to post.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub result: RekeyResult,
    /// Older epochs some recipient lacks that escrow holds no envelope of: those recipients
    /// cannot read what was written under them (a warning, not a reason to keep the
    /// document closed).
    pub unrecoverable_epochs: Vec<u32>,
    /// Devices the server listed as readers that this keyring revoked: they got nothing.
    pub revoked_listed: Vec<[u8; 16]>,
}

/// The checked recipients of one document, by device id.
type Recipients = BTreeMap<[u8; 16], Recipient>;
/// Older epochs' keys, opened from escrow, by epoch.
type OlderKeys = BTreeMap<u32, Zeroizing<[u8; 32]>>;

/// A recipient whose certificate was checked.
struct Recipient {
    id: [u8; 16],
    agreement_public: Vec<u8>,
    missing: BTreeSet<u32>,
}

/// The organisation `listed`'s certificate names, judged at its own start (a revoked device's
/// certificate may have run out since).
fn certified_organisation(listed: &Listed, authority: &Authority<'_>) -> Option<String> {
    let certificate = Certificate::from_bytes(&listed.certificate).ok()?;
    let issuer = Certificate::from_bytes(&listed.admin_certificate).ok()?;
    let at = certificate.claimed_device_body().ok()?.valid_from_ms;
    certificate.verify_device(&issuer, &authority.root_public, at).ok().map(|body| body.organisation)
}

fn verify_recipient(
    listed: &Listed,
    document: DocumentId,
    current_epoch: u32,
    authority: &Authority<'_>,
    now_ms: i64,
) -> Result<Recipient, RekeyError> {
    let id = listed.device;
    let device = api::hex(&id);
    let untrusted = |source| RekeyError::UntrustedRecipient { device: device.clone(), source };
    let certificate = Certificate::from_bytes(&listed.certificate).map_err(untrusted)?;
    let issuer = Certificate::from_bytes(&listed.admin_certificate).map_err(untrusted)?;
    let body = certificate.verify_device(&issuer, &authority.root_public, now_ms).map_err(untrusted)?;
    if body.device_id != id {
        return Err(RekeyError::RecipientIdMismatch { device, certified: api::hex(&body.device_id) });
    }
    // The server's list is its word; the certified role under the root-signed policy is what
    // decides who may hold this compartment's key. The plan's escalation level is in its
    // membership chain, which this loop does not fetch: a role that reads the compartment at
    // some level may hold it (participation is the server's word here, as it always was for
    // the administrator's re-key; devices check both against the chain).
    let reads_at_some_level = eenplan_protocol::policy::LEVELS
        .iter()
        .any(|level| authority.policy.may_read_at(&body.role, document.compartment, level));
    if !reads_at_some_level {
        return Err(RekeyError::RecipientMayNotRead {
            device,
            role: body.role,
            compartment: COMPARTMENTS.get(usize::from(document.compartment)).copied().unwrap_or("unknown"),
        });
    }
    let missing: BTreeSet<u32> = listed.missing_epochs.iter().copied().collect();
    if missing.iter().any(|e| *e == 0 || *e > current_epoch) {
        return Err(RekeyError::Malformed("a recipient lacks an epoch the document does not have"));
    }
    Ok(Recipient { id, agreement_public: body.agreement_public, missing })
}

/// The commitment of `epoch`, checked as far as this keyring can.
fn verified_commitment(
    blob: &EpochBlob,
    document: DocumentId,
    epoch: u32,
    root_public: &[u8; 32],
) -> Result<Commitment, RekeyError> {
    let bad = |reason| RekeyError::BadCommitment { epoch, reason };
    let signed = SignedCommitment::from_bytes(&blob.data.0).map_err(|_| bad("it does not decode"))?;
    let claimed = signed.claimed().map_err(|_| bad("it does not decode"))?;
    let commitment = match &claimed.minter {
        Minter::Admin { certificate } => {
            let certificate = Certificate::from_bytes(certificate)
                .map_err(|_| bad("its administrator certificate does not decode"))?;
            let admin = certificate
                .verify_admin(root_public)
                .map_err(|_| bad("its administrator certificate does not chain to this network's root"))?;
            signed.verify(&admin.admin_public).map_err(|_| bad("its signature is not its administrator's"))?
        }
        // Only epoch 1 is a device's to make.
        Minter::Device(_) if epoch != 1 => {
            return Err(bad("a device made it, but only administrators make epochs after the first"));
        }
        // A device's signature can only be checked with the device's certificate, which the
        // task does not carry (the device may have been revoked since). The digest still pins
        // the key: what escrow opens must be the key the server holds the commitment to, and
        // every device that receives the key checks the device minter's signature against its
        // certificate itself, so a commitment the server made up is refused where it is used.
        Minter::Device(_) => claimed,
    };
    if commitment.document.0 != document.to_bytes() || commitment.epoch != epoch {
        return Err(bad("it names another document or epoch"));
    }
    Ok(commitment)
}

/// The key of an older `epoch`, from escrow, checked against its commitment; `None` when
/// escrow holds no envelope of it.
fn escrowed_key(
    task: &Task,
    document: DocumentId,
    epoch: u32,
    escrow_secret: &[u8; 32],
    root_public: &[u8; 32],
) -> Result<Option<Zeroizing<[u8; 32]>>, RekeyError> {
    let Some(escrow) = task.escrow.iter().find(|b| b.epoch == epoch) else {
        return Ok(None);
    };
    let blob =
        task.commitments.iter().find(|b| b.epoch == epoch).ok_or(RekeyError::MissingCommitment { epoch })?;
    let commitment = verified_commitment(blob, document, epoch, root_public)?;
    let unopenable = |source| RekeyError::EscrowUnopenable { epoch, source };
    // The sealer's signature is not checked: whoever sealed it, the key is accepted only if it
    // is the committed one.
    let (sealed, _sealer, _signature) = envelope::split_signed(&escrow.data.0).map_err(unopenable)?;
    let key = envelope::open(sealed, escrow_secret, ESCROW_RECIPIENT, document, epoch).map_err(unopenable)?;
    commitment.matches(&key).map_err(|_| RekeyError::EscrowKeyMismatch { epoch })?;
    Ok(Some(key))
}

/// The recipients the keyring accepts, and the devices it refuses to seal to because it
/// revoked them.
fn checked_recipients(
    task: &Task,
    document: DocumentId,
    authority: &Authority<'_>,
    now_ms: i64,
) -> Result<(Recipients, Vec<[u8; 16]>), RekeyError> {
    let mut recipients = Recipients::new();
    let mut revoked = Vec::new();
    for listed in &task.recipients {
        // Whatever the server says about it (active, a reader, a valid certificate): a revoked
        // device gets no key from this keyring. An entry counts only under the organisation
        // the device's own root-verified certificate names (one that does not verify gets no
        // key either way).
        if authority.revoked(&listed.device).is_some_and(|record| {
            certified_organisation(listed, authority).is_none_or(|own| own == record.entry.organisation)
        }) {
            if !revoked.contains(&listed.device) {
                revoked.push(listed.device);
            }
            continue;
        }
        let recipient = verify_recipient(listed, document, task.current_epoch, authority, now_ms)?;
        match recipients.get_mut(&recipient.id) {
            Some(seen) if seen.agreement_public != recipient.agreement_public => {
                return Err(RekeyError::Malformed("a device is listed twice with different keys"));
            }
            Some(seen) => seen.missing.extend(recipient.missing),
            None => {
                recipients.insert(recipient.id, recipient);
            }
        }
    }
    Ok((recipients, revoked))
}

/// The older keys to seal to recipients that lack them, and the epochs nobody can give them.
fn older_keys(
    task: &Task,
    document: DocumentId,
    recipients: &Recipients,
    authority: &Authority<'_>,
) -> Result<(OlderKeys, Vec<u32>), RekeyError> {
    let needed: BTreeSet<u32> = recipients.values().flat_map(|r| r.missing.iter().copied()).collect();
    let mut keys = BTreeMap::new();
    let mut unrecoverable = Vec::new();
    let Some(escrow_secret) = authority.escrow_secret else {
        // Without escrow, a device that holds an epoch seals it to the one that lacks it
        // (the server names the newcomer to it in a key request).
        let orphaned: Vec<u32> =
            needed.into_iter().filter(|e| recipients.values().all(|r| r.missing.contains(e))).collect();
        return if orphaned.is_empty() {
            Ok((keys, unrecoverable))
        } else {
            Err(RekeyError::NeedsEscrow { epochs: orphaned })
        };
    };
    for epoch in needed {
        match escrowed_key(task, document, epoch, escrow_secret, &authority.root_public)? {
            Some(key) => {
                keys.insert(epoch, key);
            }
            None => unrecoverable.push(epoch),
        }
    }
    Ok((keys, unrecoverable))
}

/// Makes one document's new epoch from its task. Nothing is sent; a refusal means nothing
/// may be posted for this document.
pub fn rotate(task: &Task, authority: &Authority<'_>, now_ms: i64) -> Result<Rotation, RekeyError> {
    let document = DocumentId::from_bytes(&task.document)
        .map_err(|_| RekeyError::Malformed("the document id is not a document id"))?;
    // Epoch 1 is made by a device of the plan; a document without it has nothing to rotate.
    if task.current_epoch == 0 {
        return Err(RekeyError::Malformed("the document has no key epoch yet"));
    }
    let new_epoch =
        task.current_epoch.checked_add(1).ok_or(RekeyError::Malformed("the epoch counter is exhausted"))?;
    let (recipients, revoked_listed) = checked_recipients(task, document, authority, now_ms)?;
    let (old_keys, unrecoverable_epochs) = older_keys(task, document, &recipients, authority)?;

    let key = Zeroizing::new(crypto::random_array::<32>());
    let minter = Minter::Admin { certificate: authority.admin_certificate.clone() };
    // The new epoch is judged by the policy in force now (it starts where a change of the
    // write rules takes effect), and was made knowing every revocation up to this version.
    let commitment = Commitment::new(document, new_epoch, &key, minter, now_ms)
        .under_policy(authority.policy.version)
        .under_revocations(authority.trust.revocations_version)
        .sign(authority.admin);
    let sealer = device_id_of(&authority.admin.verifying_key().to_bytes());
    let seal = |public: &[u8], recipient: [u8; 16], epoch: u32, key: &[u8; 32]| {
        let sealed = envelope::seal(public, recipient, document, epoch, key)?;
        let signed = envelope::sign(sealed, sealer, authority.admin, document, epoch, recipient);
        Ok::<_, EnvelopeError>(RekeyEnvelope { recipient: Fixed(recipient), epoch, envelope: Blob(signed) })
    };

    let mut envelopes = Vec::new();
    envelopes.push(
        seal(authority.escrow_public, ESCROW_RECIPIENT, new_epoch, &key).map_err(RekeyError::BadEscrowKey)?,
    );
    for recipient in recipients.values() {
        let bad_key = |source| RekeyError::BadRecipientKey { device: api::hex(&recipient.id), source };
        envelopes.push(seal(&recipient.agreement_public, recipient.id, new_epoch, &key).map_err(bad_key)?);
        for epoch in &recipient.missing {
            if let Some(old) = old_keys.get(epoch) {
                envelopes
                    .push(seal(&recipient.agreement_public, recipient.id, *epoch, old).map_err(bad_key)?);
            }
        }
    }
    let result = RekeyResult {
        document: Fixed(document.to_bytes()),
        new_epoch,
        commitment: Blob(commitment.to_bytes()),
        envelopes,
    };
    let bytes = result.encoded_len();
    if bytes + BATCH_FRAMING > MAX_REKEY_REQUEST {
        return Err(RekeyError::TooLarge { bytes });
    }
    Ok(Rotation { result, unrecoverable_epochs, revoked_listed })
}

/// The server's side of the loop: a trait so the loop can be tested without one.
pub trait RekeyServer {
    /// Up to `limit` pending tasks, oldest first.
    fn tasks(&self, limit: usize) -> Result<RekeyTasks, AdminError>;
    /// Posts a batch (its CBOR body); what became of each document.
    fn complete(&self, body: Vec<u8>) -> Result<RekeyAnswer, AdminError>;
}

impl RekeyServer for Client<'_> {
    fn tasks(&self, limit: usize) -> Result<RekeyTasks, AdminError> {
        self.get_cbor(&format!("{}?limit={limit}", api::PATH_ADMIN_REKEY), MAX_REKEY_REQUEST)
    }

    fn complete(&self, body: Vec<u8>) -> Result<RekeyAnswer, AdminError> {
        let answer = self.post_cbor(api::PATH_ADMIN_REKEY, body)?;
        eenplan_protocol::sync::decode(&answer, MAX_REKEY_REQUEST)
            .map_err(|_| AdminError::BadResponse("the re-keying answer is not CBOR".into()))
    }
}

/// A document that was not rotated, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refused {
    pub document: String,
    pub reason: String,
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Documents this run moved to a new epoch.
    pub documents: u64,
    pub envelopes: u64,
    pub bytes_uploaded: u64,
    pub requests: u64,
    pub seconds: f64,
    /// Tasks the server called stale: another administrator, or an earlier run, finished them.
    pub already_done: u64,
    pub refused: Vec<Refused>,
    /// Devices this keyring revoked that the server listed as readers (hex ids): they got no
    /// key, and the server's records are wrong.
    pub revoked_listed: Vec<String>,
}

impl Summary {
    pub fn text(&self) -> String {
        let mut out = if self.documents == 0 && self.already_done == 0 && self.refused.is_empty() {
            "no document waits for a new key\n".to_string()
        } else {
            format!(
                "rotated {} document{} to a new key: {} envelope{}, {} uploaded in {} request{}, {:.1} s\n",
                self.documents,
                plural(self.documents),
                self.envelopes,
                plural(self.envelopes),
                bytes(self.bytes_uploaded),
                self.requests,
                plural(self.requests),
                self.seconds
            )
        };
        if self.already_done > 0 {
            out.push_str(&format!(
                "{} document{} had been rotated already (by another administrator or an earlier run)\n",
                self.already_done,
                plural(self.already_done)
            ));
        }
        out
    }

    fn note_revoked(&mut self, progress: &mut Progress, document: &str, devices: &[[u8; 16]]) {
        for device in devices {
            let id = api::hex(device);
            progress.warn(&format!(
                "document {document}: the server lists device {id} as a reader, but this keyring revoked it; \
                 it gets no key"
            ));
            if !self.revoked_listed.contains(&id) {
                self.revoked_listed.push(id);
            }
        }
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn bytes(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} kB", n as f64 / 1e3),
        _ => format!("{:.1} MB", n as f64 / 1e6),
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    pub summary: Summary,
    /// The server or the connection failed: the run stopped, and running it again continues.
    pub stopped: Option<AdminError>,
}

/// Who else hears of a run's progress besides stderr: the console's progress page.
pub trait Observer: Send {
    /// `done` documents rotated (or found done) so far, of `total` when the whole remainder is
    /// known.
    fn progress(&mut self, done: u64, total: Option<u64>);
    /// A document or device the run warns about.
    fn warning(&mut self, message: &str);
    /// One step of a longer job (an offboarding) begins.
    fn step(&mut self, message: &str);
}

/// Progress on stderr: one line rewritten in place on a terminal, a line per batch otherwise;
/// and to an [`Observer`], when one listens.
pub struct Progress {
    shown: bool,
    terminal: bool,
    open_line: bool,
    observer: Option<Box<dyn Observer>>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("shown", &self.shown)
            .field("observed", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}

impl Progress {
    pub fn on_stderr() -> Progress {
        Progress { shown: true, terminal: std::io::stderr().is_terminal(), open_line: false, observer: None }
    }

    /// Progress told to `observer` only (nothing on stderr).
    pub fn observed(observer: Box<dyn Observer>) -> Progress {
        Progress { shown: false, terminal: false, open_line: false, observer: Some(observer) }
    }

    #[cfg(test)]
    pub fn hidden() -> Progress {
        Progress { shown: false, terminal: false, open_line: false, observer: None }
    }

    fn line(done: u64, total: Option<u64>) -> String {
        match total {
            Some(total) => format!("rotating keys: {done}/{} documents", total.max(done)),
            None => format!("rotating keys: {done} documents, more to come"),
        }
    }

    fn update(&mut self, done: u64, total: Option<u64>) {
        if let Some(observer) = self.observer.as_mut() {
            observer.progress(done, total);
        }
        if self.shown && self.terminal {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{}", Self::line(done, total));
            let _ = err.flush();
            self.open_line = true;
        }
    }

    fn batch_done(&mut self, done: u64, total: Option<u64>) {
        if let Some(observer) = self.observer.as_mut() {
            observer.progress(done, total);
        }
        if self.shown && !self.terminal {
            eprintln!("{}", Self::line(done, total));
        }
    }

    pub fn warn(&mut self, message: &str) {
        if let Some(observer) = self.observer.as_mut() {
            observer.warning(message);
        }
        if self.shown {
            self.end_line();
            eprintln!("warning: {message}");
        }
    }

    /// One step of a longer job (an offboarding), on a line of its own.
    pub fn note(&mut self, message: &str) {
        if let Some(observer) = self.observer.as_mut() {
            observer.step(message);
        }
        if self.shown {
            self.end_line();
            eprintln!("{message}");
        }
    }

    fn end_line(&mut self) {
        if self.open_line {
            eprintln!();
            self.open_line = false;
        }
    }
}

/// Rotates every pending document. `pending` is the server's count of waiting documents if
/// a command that queued them just learnt it (for the progress line).
pub fn run(
    server: &dyn RekeyServer,
    authority: &Authority<'_>,
    pending: Option<u64>,
    progress: &mut Progress,
) -> Outcome {
    let started = Instant::now();
    let mut run = Run {
        server,
        progress,
        summary: Summary::default(),
        attempts: HashMap::new(),
        moved_to: HashMap::new(),
        total: pending,
        progressed: false,
    };
    let stopped = run.rotate_all(authority).err();
    run.progress.end_line();
    let mut summary = run.summary;
    summary.seconds = started.elapsed().as_secs_f64();
    Outcome { summary, stopped }
}

/// One document's result waiting in a batch.
struct Waiting {
    result: RekeyResult,
    name: String,
    envelopes: u64,
}

/// The state of one run of the loop.
struct Run<'a> {
    server: &'a dyn RekeyServer,
    progress: &'a mut Progress,
    summary: Summary,
    attempts: HashMap<String, u32>,
    /// The epoch each document was moved to in this run.
    moved_to: HashMap<String, u32>,
    total: Option<u64>,
    /// Whether the last round of tasks changed anything at the server.
    progressed: bool,
}

impl Run<'_> {
    fn refuse(&mut self, document: &str, reason: String) {
        self.progress.warn(&format!("document {document}: {reason}; not rotated"));
        self.summary.refused.push(Refused { document: document.to_string(), reason });
    }

    fn done(&self) -> u64 {
        self.summary.documents + self.summary.already_done
    }

    fn rotate_all(&mut self, authority: &Authority<'_>) -> Result<(), AdminError> {
        loop {
            let answer = self.server.tasks(BATCH)?;
            let listed = answer.tasks.len();
            let tasks = tasks_of(answer);
            let done_before = self.done();
            // Refused documents stay queued at the server; they are not tried again in this
            // run. A document listed twice in one answer is done once.
            let mut seen = BTreeSet::new();
            let todo: Vec<Task> = tasks
                .into_iter()
                .filter(|t| !self.summary.refused.iter().any(|r| r.document == t.name()))
                .filter(|t| seen.insert(t.document))
                .collect();
            if listed < BATCH {
                // The whole remainder is in sight.
                self.total = Some(self.total.unwrap_or(0).max(done_before + todo.len() as u64));
            }
            if todo.is_empty() {
                return Ok(());
            }
            self.progressed = false;
            let mut batch: Vec<Waiting> = Vec::new();
            let mut batch_bytes = BATCH_FRAMING;
            for task in todo {
                let Some(waiting) = self.prepare(&task, authority)? else { continue };
                let len = waiting.result.encoded_len();
                if !batch.is_empty() && batch_bytes + len > REKEY_BATCH_BYTES {
                    self.post(std::mem::take(&mut batch))?;
                    batch_bytes = BATCH_FRAMING;
                }
                batch_bytes += len;
                batch.push(waiting);
            }
            if !batch.is_empty() {
                self.post(batch)?;
            }
            self.progress.batch_done(self.done(), self.total);
            if !self.progressed {
                return Ok(());
            }
        }
    }

    /// One task's result, or `None` when the document is refused.
    fn prepare(&mut self, task: &Task, authority: &Authority<'_>) -> Result<Option<Waiting>, AdminError> {
        let name = task.name();
        let tries = self.attempts.entry(name.clone()).or_insert(0);
        *tries += 1;
        if *tries > MAX_ATTEMPTS_PER_DOCUMENT {
            let reason = format!(
                "the server listed it {MAX_ATTEMPTS_PER_DOCUMENT} times in one run without taking a result"
            );
            self.refuse(&name, reason);
            return Ok(None);
        }
        if let Some(&epoch) = self.moved_to.get(&name)
            && task.current_epoch < epoch
        {
            let reason = format!(
                "the server took epoch {epoch} for it but still lists it at epoch {}",
                task.current_epoch
            );
            self.refuse(&name, reason);
            return Ok(None);
        }
        let rotation = match rotate(task, authority, now_ms()?) {
            Ok(rotation) => rotation,
            Err(e) => {
                self.refuse(&name, e.to_string());
                return Ok(None);
            }
        };
        self.summary.note_revoked(self.progress, &name, &rotation.revoked_listed);
        if !rotation.unrecoverable_epochs.is_empty() {
            self.progress.warn(&format!(
                "document {name}: escrow holds no key of epoch(s) {:?}; devices that lack them cannot read \
                 what was written under them",
                rotation.unrecoverable_epochs
            ));
        }
        let envelopes = rotation.result.envelopes.len() as u64;
        Ok(Some(Waiting { result: rotation.result, name, envelopes }))
    }

    /// Posts one batch and takes in what became of each of its documents.
    fn post(&mut self, batch: Vec<Waiting>) -> Result<(), AdminError> {
        let (results, waiting): (Vec<RekeyResult>, Vec<(String, u64, u32)>) =
            batch.into_iter().map(|w| (w.result.clone(), (w.name, w.envelopes, w.result.new_epoch))).unzip();
        let body = RekeyBatch { results }.to_bytes();
        let len = body.len() as u64;
        let answer = self.server.complete(body)?;
        if answer.outcomes.len() != waiting.len() {
            return Err(AdminError::BadResponse(format!(
                "{} outcomes for {} documents",
                answer.outcomes.len(),
                waiting.len()
            )));
        }
        self.summary.bytes_uploaded += len;
        self.summary.requests += 1;
        let before = self.done();
        for ((name, envelopes, epoch), outcome) in waiting.into_iter().zip(&answer.outcomes) {
            if api::hex(&outcome.document.0) != name {
                return Err(AdminError::BadResponse("the outcomes are not in the batch's order".into()));
            }
            match outcome.status {
                RekeyStatus::Done => {
                    self.summary.documents += 1;
                    self.summary.envelopes += envelopes;
                    self.moved_to.insert(name, epoch);
                }
                // Finished meanwhile (another administrator, or an earlier run whose answer
                // was lost): the next listing shows what is left.
                RekeyStatus::Stale => self.summary.already_done += 1,
                // The recipients changed between listing and posting (a device was approved
                // or revoked): the next listing has the new ones.
                RekeyStatus::Incomplete => {}
            }
            self.progressed = true;
        }
        self.total = Some(self.total.unwrap_or(0).max(before).max(self.done() + answer.pending));
        self.progress.update(self.done(), self.total);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use eenplan_protocol::certificate::{AdminBody, DeviceBody};
    use eenplan_protocol::policy::DEFAULT_POLICY_TOML;
    use eenplan_protocol::rekey::{ListedDevice, RekeyOutcome, RekeyRecipient, RekeyTask};
    use eenplan_protocol::revocation::RevokedDevice;
    use eenplan_protocol::wipe::RevocationReason;

    use super::*;

    const NOW: i64 = 1_750_000_000_000;
    const PLAN: [u8; 16] = [0x42; 16];

    /// A network: root, administrator, escrow, and the default policy.
    struct Network {
        root: SigningKey,
        admin: SigningKey,
        admin_certificate: Certificate,
        escrow_secret: Zeroizing<[u8; 32]>,
        escrow_public: Vec<u8>,
        policy: Policy,
        trust: Trust,
        /// Whether the escrow secret is at hand (not in an offline keyring left at home).
        with_escrow: bool,
    }

    impl Network {
        fn new(seed: u8) -> Network {
            let root = SigningKey::from_bytes(&[seed; 32]);
            let admin = SigningKey::from_bytes(&[seed.wrapping_add(1); 32]);
            let admin_certificate = Certificate::sign_admin(
                &AdminBody {
                    admin_public: admin.verifying_key().to_bytes(),
                    name: "Beheer".into(),
                    issued_at_ms: 0,
                    organisation: None,
                },
                &root,
            );
            let (escrow_secret, escrow_public) = envelope::generate_keypair();
            let policy = crate::policy_file::parse(DEFAULT_POLICY_TOML).unwrap().policy;
            Network {
                root,
                admin,
                admin_certificate,
                escrow_secret,
                escrow_public,
                policy,
                trust: Trust::default(),
                with_escrow: true,
            }
        }

        fn authority(&self) -> Authority<'_> {
            Authority {
                root_public: self.root.verifying_key().to_bytes(),
                admin: &self.admin,
                admin_certificate: self.admin_certificate.to_bytes(),
                escrow_secret: self.with_escrow.then_some(&*self.escrow_secret),
                escrow_public: &self.escrow_public,
                policy: &self.policy,
                trust: &self.trust,
            }
        }

        /// A device of `role`, certified by this network's administrator.
        fn device(&self, seed: u8, role: &str) -> Device {
            let signing = SigningKey::from_bytes(&[seed; 32]);
            let (secret, agreement_public) = envelope::generate_keypair();
            let id = device_id_of(&signing.verifying_key().to_bytes());
            let certificate = Certificate::sign_device(
                &DeviceBody {
                    device_id: id,
                    user_id: i64::from(seed),
                    user_name: format!("user {seed}"),
                    organisation: "Wijkteam Noord".into(),
                    role: role.into(),
                    signing_public: signing.verifying_key().to_bytes(),
                    agreement_public,
                    valid_from_ms: 0,
                    valid_until_ms: NOW * 2,
                    issuer: self.admin.verifying_key().to_bytes(),
                },
                &self.admin,
            );
            Device { id, secret, certificate, admin_certificate: self.admin_certificate.clone() }
        }

        /// The escrow envelope and commitment of `epoch`, as a device (epoch 1) or this
        /// administrator (later epochs) would have made them.
        fn epoch(
            &self,
            document: DocumentId,
            epoch: u32,
            key: &[u8; 32],
            committed: &[u8; 32],
        ) -> (EpochBlob, EpochBlob) {
            let minter = SigningKey::from_bytes(&[99; 32]);
            let commitment = if epoch == 1 {
                Commitment::new(document, epoch, committed, Minter::Device(Fixed([7; 16])), NOW).sign(&minter)
            } else {
                let minter = Minter::Admin { certificate: self.admin_certificate.to_bytes() };
                Commitment::new(document, epoch, committed, minter, NOW).sign(&self.admin)
            };
            let sealed = envelope::seal(&self.escrow_public, ESCROW_RECIPIENT, document, epoch, key).unwrap();
            let signed = envelope::sign(sealed, [7; 16], &minter, document, epoch, ESCROW_RECIPIENT);
            (EpochBlob { epoch, data: Blob(signed) }, EpochBlob { epoch, data: Blob(commitment.to_bytes()) })
        }
    }

    struct Device {
        id: [u8; 16],
        secret: Zeroizing<[u8; 32]>,
        certificate: Certificate,
        admin_certificate: Certificate,
    }

    impl Device {
        fn listed(&self, missing: &[u32]) -> Listed {
            Listed {
                device: self.id,
                certificate: self.certificate.to_bytes(),
                admin_certificate: self.admin_certificate.to_bytes(),
                missing_epochs: missing.to_vec(),
            }
        }

        /// Opens this device's envelope of `epoch` in `result`, checking the administrator's
        /// signature on it as a device does.
        fn open(&self, result: &RekeyResult, admin: &SigningKey, epoch: u32) -> [u8; 32] {
            open_for(result, self.id, &self.secret, admin, epoch)
        }
    }

    fn open_for(
        result: &RekeyResult,
        id: [u8; 16],
        secret: &[u8; 32],
        admin: &SigningKey,
        epoch: u32,
    ) -> [u8; 32] {
        let document = DocumentId::from_bytes(&result.document.0).unwrap();
        let found: Vec<&RekeyEnvelope> =
            result.envelopes.iter().filter(|e| e.recipient.0 == id && e.epoch == epoch).collect();
        assert_eq!(found.len(), 1, "one envelope of epoch {epoch} for {}", api::hex(&id));
        let (sealed, sealer, signature) = envelope::split_signed(&found[0].envelope.0).unwrap();
        let admin_public = admin.verifying_key().to_bytes();
        assert_eq!(sealer, device_id_of(&admin_public));
        envelope::verify_signature(sealed, &signature, &admin_public, document, epoch, id).unwrap();
        *envelope::open(sealed, secret, id, document, epoch).unwrap()
    }

    fn zorg() -> DocumentId {
        DocumentId::new(PLAN, 1).unwrap()
    }

    fn task(document: DocumentId, current_epoch: u32, recipients: Vec<Listed>) -> Task {
        Task {
            document: document.to_bytes(),
            current_epoch,
            recipients,
            escrow: Vec::new(),
            commitments: Vec::new(),
        }
    }

    #[test]
    fn every_recipient_and_escrow_get_the_new_epoch_under_a_signed_commitment() {
        let network = Network::new(1);
        let (wijkteam, ggz) = (network.device(10, "wijkteam"), network.device(11, "ggz"));
        let task = task(zorg(), 3, vec![wijkteam.listed(&[]), ggz.listed(&[])]);
        let rotation = rotate(&task, &network.authority(), NOW).unwrap();
        let result = &rotation.result;
        assert_eq!((result.document.0, result.new_epoch), (task.document, 4));
        assert_eq!(result.envelopes.len(), 3);
        assert!(rotation.unrecoverable_epochs.is_empty());

        let key = wijkteam.open(result, &network.admin, 4);
        assert_eq!(ggz.open(result, &network.admin, 4), key);
        assert_eq!(open_for(result, ESCROW_RECIPIENT, &network.escrow_secret, &network.admin, 4), key);

        let signed = SignedCommitment::from_bytes(&result.commitment.0).unwrap();
        let commitment = signed.verify(&network.admin.verifying_key().to_bytes()).unwrap();
        assert_eq!((commitment.document.0, commitment.epoch), (zorg().to_bytes(), 4));
        assert_eq!(commitment.minter, Minter::Admin { certificate: network.admin_certificate.to_bytes() });
        commitment.matches(&key).unwrap();

        // Every run makes a fresh key.
        let again = rotate(&task, &network.authority(), NOW).unwrap();
        assert_ne!(wijkteam.open(&again.result, &network.admin, 4), key);
    }

    #[test]
    fn older_epochs_a_recipient_lacks_are_recovered_from_escrow_and_sealed_to_it() {
        let network = Network::new(1);
        let (old, newcomer) = (network.device(10, "wijkteam"), network.device(11, "wijkteam"));
        let mut task = task(zorg(), 2, vec![old.listed(&[]), newcomer.listed(&[1, 2])]);
        for (epoch, key) in [(1, [1; 32]), (2, [2; 32])] {
            let (escrow, commitment) = network.epoch(zorg(), epoch, &key, &key);
            task.escrow.push(escrow);
            task.commitments.push(commitment);
        }
        let result = rotate(&task, &network.authority(), NOW).unwrap().result;
        assert_eq!(newcomer.open(&result, &network.admin, 1), [1; 32]);
        assert_eq!(newcomer.open(&result, &network.admin, 2), [2; 32]);
        assert_eq!(newcomer.open(&result, &network.admin, 3), old.open(&result, &network.admin, 3));
        // The device that had them gets only the new epoch; escrow gets it too.
        assert_eq!(result.envelopes.len(), 5);
    }

    #[test]
    fn an_older_epoch_escrow_never_held_is_reported_not_fatal() {
        let network = Network::new(1);
        let newcomer = network.device(11, "wijkteam");
        let rotation =
            rotate(&task(zorg(), 1, vec![newcomer.listed(&[1])]), &network.authority(), NOW).unwrap();
        assert_eq!(rotation.unrecoverable_epochs, vec![1]);
        assert_eq!(rotation.result.envelopes.len(), 2);
    }

    #[test]
    fn a_recipient_whose_certificate_does_not_chain_to_the_root_is_refused() {
        let network = Network::new(1);
        let stranger = Network::new(50).device(12, "wijkteam");
        let honest = network.device(10, "wijkteam");
        let task = task(zorg(), 1, vec![honest.listed(&[]), stranger.listed(&[])]);
        assert!(matches!(
            rotate(&task, &network.authority(), NOW),
            Err(RekeyError::UntrustedRecipient { source: CertificateError::BadSignature, .. })
        ));
        // Nor is a certificate signed by this network's administrator but presented with
        // another network's administrator certificate.
        let mut mixed = network.device(12, "wijkteam");
        mixed.admin_certificate = Network::new(50).admin_certificate;
        let task2 = super::tests::task(zorg(), 1, vec![mixed.listed(&[])]);
        assert!(matches!(
            rotate(&task2, &network.authority(), NOW),
            Err(RekeyError::UntrustedRecipient { .. })
        ));
        // An expired certificate is refused as well.
        let expired = network.device(13, "wijkteam");
        let task3 = super::tests::task(zorg(), 1, vec![expired.listed(&[])]);
        assert!(matches!(
            rotate(&task3, &network.authority(), NOW * 3),
            Err(RekeyError::UntrustedRecipient { source: CertificateError::Expired, .. })
        ));
    }

    #[test]
    fn a_recipient_listed_under_another_devices_certificate_is_refused() {
        let network = Network::new(1);
        let (a, b) = (network.device(10, "wijkteam"), network.device(11, "wijkteam"));
        let mut listed = a.listed(&[]);
        listed.certificate = b.listed(&[]).certificate;
        assert!(matches!(
            rotate(&task(zorg(), 1, vec![listed]), &network.authority(), NOW),
            Err(RekeyError::RecipientIdMismatch { .. })
        ));
    }

    #[test]
    fn a_recipient_whose_role_may_not_read_the_compartment_is_refused() {
        let network = Network::new(1);
        let police = network.device(10, "politie");
        let error =
            rotate(&task(zorg(), 1, vec![police.listed(&[])]), &network.authority(), NOW).unwrap_err();
        assert!(
            matches!(&error, RekeyError::RecipientMayNotRead { role, compartment: "zorg", .. } if role == "politie"),
            "{error}"
        );
        // The same device may get the justitie key.
        let justitie = DocumentId::new(PLAN, 3).unwrap();
        assert!(rotate(&task(justitie, 1, vec![police.listed(&[])]), &network.authority(), NOW).is_ok());
    }

    #[test]
    fn an_escrow_envelope_whose_key_does_not_match_its_commitment_is_refused() {
        let network = Network::new(1);
        let newcomer = network.device(11, "wijkteam");
        let mut task = task(zorg(), 2, vec![newcomer.listed(&[2])]);
        let (escrow, commitment) = network.epoch(zorg(), 2, &[2; 32], &[3; 32]);
        task.escrow.push(escrow);
        task.commitments.push(commitment);
        assert_eq!(
            rotate(&task, &network.authority(), NOW).unwrap_err(),
            RekeyError::EscrowKeyMismatch { epoch: 2 }
        );
    }

    #[test]
    fn commitments_are_checked_before_escrow_is_trusted() {
        let network = Network::new(1);
        let newcomer = network.device(11, "wijkteam");
        let base = task(zorg(), 2, vec![newcomer.listed(&[2])]);
        let (escrow, _) = network.epoch(zorg(), 2, &[2; 32], &[2; 32]);

        // No commitment at all.
        let mut missing = base.clone();
        missing.escrow.push(escrow.clone());
        assert_eq!(
            rotate(&missing, &network.authority(), NOW).unwrap_err(),
            RekeyError::MissingCommitment { epoch: 2 }
        );

        // A commitment by another network's administrator.
        let other = Network::new(50);
        let (_, foreign) = other.epoch(zorg(), 2, &[2; 32], &[2; 32]);
        let mut forged = base.clone();
        forged.escrow.push(escrow.clone());
        forged.commitments.push(foreign);
        assert!(matches!(
            rotate(&forged, &network.authority(), NOW),
            Err(RekeyError::BadCommitment { epoch: 2, .. })
        ));

        // A device-made commitment for an epoch after the first.
        let device_made = Commitment::new(zorg(), 2, &[2; 32], Minter::Device(Fixed([7; 16])), NOW)
            .sign(&SigningKey::from_bytes(&[99; 32]));
        let mut by_device = base.clone();
        by_device.escrow.push(escrow.clone());
        by_device.commitments.push(EpochBlob { epoch: 2, data: Blob(device_made.to_bytes()) });
        assert!(matches!(
            rotate(&by_device, &network.authority(), NOW),
            Err(RekeyError::BadCommitment { .. })
        ));

        // A commitment of another epoch presented as this one.
        let (_, epoch3) = network.epoch(zorg(), 3, &[2; 32], &[2; 32]);
        let mut moved = base;
        moved.escrow.push(escrow);
        moved.commitments.push(EpochBlob { epoch: 2, data: epoch3.data });
        assert!(matches!(rotate(&moved, &network.authority(), NOW), Err(RekeyError::BadCommitment { .. })));
    }

    #[test]
    fn malformed_tasks_are_refused_not_panicked_on() {
        let network = Network::new(1);
        let device = network.device(10, "wijkteam");
        let good = task(zorg(), 1, vec![device.listed(&[])]);
        let mut cases = Vec::new();
        let mut unknown_compartment = good.clone();
        unknown_compartment.document[16] = 9;
        cases.push(unknown_compartment);
        let mut no_epoch = good.clone();
        no_epoch.current_epoch = 0;
        cases.push(no_epoch);
        let mut exhausted = good.clone();
        exhausted.current_epoch = u32::MAX;
        cases.push(exhausted);
        let mut future = good.clone();
        future.recipients[0].missing_epochs = vec![2];
        cases.push(future);
        for field in 0..3 {
            let mut t = good.clone();
            match field {
                // Not in the answer's certificate table.
                0 => t.recipients[0].certificate = Vec::new(),
                1 => t.recipients[0].certificate = b"not a certificate".to_vec(),
                _ => t.recipients[0].admin_certificate = vec![0, 0xff],
            }
            cases.push(t);
        }
        let mut bad_escrow = task(zorg(), 2, vec![device.listed(&[2])]);
        let (_, commitment) = network.epoch(zorg(), 2, &[2; 32], &[2; 32]);
        bad_escrow.commitments.push(commitment);
        bad_escrow.escrow.push(EpochBlob { epoch: 2, data: Blob(vec![1, 2]) });
        cases.push(bad_escrow);
        for case in cases {
            assert!(rotate(&case, &network.authority(), NOW).is_err(), "{case:?}");
        }
    }

    #[test]
    fn a_device_the_keyring_revoked_gets_no_key_whatever_the_server_lists() {
        let mut network = Network::new(1);
        let (stolen, remaining) = (network.device(10, "wijkteam"), network.device(11, "wijkteam"));
        let entry = RevokedDevice::sign(
            stolen.id,
            NOW - 1,
            RevocationReason::Stolen,
            "Wijkteam Noord",
            &network.admin,
        );
        network.trust.record(entry);
        network.trust.revocations_version = 4;
        // Its certificate is valid and its role may read zorg: only the keyring's record
        // keeps it out.
        let rotation = rotate(
            &task(zorg(), 1, vec![stolen.listed(&[]), remaining.listed(&[])]),
            &network.authority(),
            NOW,
        )
        .unwrap();
        assert_eq!(rotation.revoked_listed, vec![stolen.id]);
        let result = &rotation.result;
        assert!(
            result.envelopes.iter().all(|e| e.recipient.0 != stolen.id),
            "nothing sealed to the stolen device"
        );
        assert_eq!(result.envelopes.len(), 2, "the remaining device and escrow");
        remaining.open(result, &network.admin, 2);
        let commitment = SignedCommitment::from_bytes(&result.commitment.0).unwrap().claimed().unwrap();
        assert_eq!(commitment.revocations_version, 4, "the commitment names the list it was made under");
    }

    #[test]
    fn without_escrow_an_older_epoch_is_left_to_a_device_that_holds_it_or_the_document_waits() {
        let mut network = Network::new(1);
        network.with_escrow = false;
        let (holder, newcomer) = (network.device(10, "wijkteam"), network.device(11, "wijkteam"));
        let mut with_holder = task(zorg(), 2, vec![holder.listed(&[]), newcomer.listed(&[1, 2])]);
        for (epoch, key) in [(1, [1; 32]), (2, [2; 32])] {
            let (escrow, commitment) = network.epoch(zorg(), epoch, &key, &key);
            with_holder.escrow.push(escrow);
            with_holder.commitments.push(commitment);
        }
        // The holder seals epochs 1 and 2 to the newcomer itself (a key request).
        let result = rotate(&with_holder, &network.authority(), NOW).unwrap().result;
        assert_eq!(result.envelopes.len(), 3, "epoch 3 for both and escrow, nothing older");
        // Nobody but escrow holds epoch 1: the document waits for the offline keyring.
        let orphaned = Task { recipients: vec![newcomer.listed(&[1])], ..with_holder };
        let error = rotate(&orphaned, &network.authority(), NOW).unwrap_err();
        assert_eq!(error, RekeyError::NeedsEscrow { epochs: vec![1] });
        assert!(error.to_string().contains("--offline-keyring"), "{error}");
        network.with_escrow = true;
        let result = rotate(&orphaned, &network.authority(), NOW).unwrap().result;
        assert_eq!(newcomer.open(&result, &network.admin, 1), [1; 32]);
    }

    /// A server in memory that keeps each document's epoch, as the real one does: a result is
    /// taken only for the epoch after the current one.
    struct Memory {
        epochs: RefCell<BTreeMap<[u8; 17], u32>>,
        pending: RefCell<BTreeSet<[u8; 17]>>,
        recipients: Vec<Listed>,
        posted: RefCell<Vec<RekeyResult>>,
        /// Bodies of the batches posted.
        batches: RefCell<Vec<usize>>,
        /// Fail every request after this many results were taken (an interrupted run).
        fail_after: RefCell<Option<usize>>,
    }

    impl Memory {
        fn new(documents: u8, recipients: Vec<Listed>) -> Memory {
            let names: Vec<[u8; 17]> =
                (0..documents).map(|i| DocumentId::new([i; 16], 0).unwrap().to_bytes()).collect();
            Memory {
                epochs: RefCell::new(names.iter().map(|n| (*n, 1)).collect()),
                pending: RefCell::new(names.into_iter().collect()),
                recipients,
                posted: RefCell::new(Vec::new()),
                batches: RefCell::new(Vec::new()),
                fail_after: RefCell::new(None),
            }
        }

        fn down(&self) -> bool {
            self.fail_after.borrow().is_some_and(|n| self.posted.borrow().len() >= n)
        }
    }

    fn unreachable() -> AdminError {
        AdminError::UnexpectedStatus { status: 503, excerpt: "down".into() }
    }

    /// The answer a server gives listing `tasks`: their certificates in the tables.
    fn answer_of(tasks: Vec<Task>) -> RekeyTasks {
        let mut answer = RekeyTasks::default();
        for task in tasks {
            for listed in &task.recipients {
                if !answer.devices.iter().any(|d| d.device.0 == listed.device) {
                    let index = match answer
                        .admin_certificates
                        .iter()
                        .position(|a| a.0 == listed.admin_certificate)
                    {
                        Some(index) => index,
                        None => {
                            answer.admin_certificates.push(Blob(listed.admin_certificate.clone()));
                            answer.admin_certificates.len() - 1
                        }
                    };
                    answer.devices.push(ListedDevice {
                        device: Fixed(listed.device),
                        certificate: Blob(listed.certificate.clone()),
                        admin_certificate: index as u32,
                    });
                }
            }
            answer.tasks.push(RekeyTask {
                document: Fixed(task.document),
                current_epoch: task.current_epoch,
                recipients: task
                    .recipients
                    .iter()
                    .map(|r| RekeyRecipient {
                        device: Fixed(r.device),
                        missing_epochs: r.missing_epochs.clone(),
                    })
                    .collect(),
                escrow: task.escrow,
                commitments: task.commitments,
            });
        }
        answer
    }

    impl RekeyServer for Memory {
        fn tasks(&self, limit: usize) -> Result<RekeyTasks, AdminError> {
            if self.down() {
                return Err(unreachable());
            }
            let epochs = self.epochs.borrow();
            Ok(answer_of(
                self.pending
                    .borrow()
                    .iter()
                    .take(limit)
                    .map(|d| Task {
                        document: *d,
                        current_epoch: epochs[d],
                        recipients: self.recipients.clone(),
                        escrow: Vec::new(),
                        commitments: Vec::new(),
                    })
                    .collect(),
            ))
        }

        fn complete(&self, body: Vec<u8>) -> Result<RekeyAnswer, AdminError> {
            if self.down() {
                return Err(unreachable());
            }
            self.batches.borrow_mut().push(body.len());
            let batch: RekeyBatch = eenplan_protocol::sync::decode(&body, MAX_REKEY_REQUEST).unwrap();
            let mut outcomes = Vec::new();
            for result in batch.results {
                let document = result.document;
                let status = if self.down() {
                    return Err(unreachable());
                } else {
                    let mut epochs = self.epochs.borrow_mut();
                    let current = epochs.get_mut(&document.0).unwrap();
                    if result.new_epoch != *current + 1 || !self.pending.borrow().contains(&document.0) {
                        RekeyStatus::Stale
                    } else {
                        *current = result.new_epoch;
                        self.pending.borrow_mut().remove(&document.0);
                        self.posted.borrow_mut().push(result);
                        RekeyStatus::Done
                    }
                };
                outcomes.push(RekeyOutcome { document, status, message: String::new() });
            }
            Ok(RekeyAnswer { outcomes, pending: self.pending.borrow().len() as u64 })
        }
    }

    #[test]
    fn the_loop_rotates_every_pending_document_across_batches() {
        let network = Network::new(1);
        let device = network.device(10, "wijkteam");
        let server = Memory::new(120, vec![device.listed(&[])]);
        let outcome = run(&server, &network.authority(), Some(120), &mut Progress::hidden());
        assert!(outcome.stopped.is_none(), "{:?}", outcome.stopped);
        assert_eq!(outcome.summary.documents, 120);
        assert_eq!(outcome.summary.envelopes, 240);
        assert!(outcome.summary.bytes_uploaded > 120 * 2 * 1170);
        // Binary: not much more than the envelopes themselves, in a few requests.
        assert!(
            outcome.summary.bytes_uploaded < 120 * 2 * 1400 + 120 * 1000,
            "{}",
            outcome.summary.bytes_uploaded
        );
        assert_eq!(outcome.summary.requests, server.batches.borrow().len() as u64);
        assert!(server.batches.borrow().iter().all(|len| *len <= REKEY_BATCH_BYTES), "{:?}", server.batches);
        assert!(outcome.summary.requests < 10, "{}", outcome.summary.requests);
        assert!(server.pending.borrow().is_empty());
        assert!(server.epochs.borrow().values().all(|e| *e == 2));
        // Nothing left: a second run has nothing to do.
        let again = run(&server, &network.authority(), None, &mut Progress::hidden());
        assert_eq!((again.summary.documents, again.summary.already_done), (0, 0));
        assert_eq!(again.summary.text(), "no document waits for a new key\n");
    }

    #[test]
    fn an_interrupted_run_is_finished_by_the_next_one_with_the_same_end_state() {
        let network = Network::new(1);
        let device = network.device(10, "wijkteam");
        let server = Memory::new(70, vec![device.listed(&[])]);
        *server.fail_after.borrow_mut() = Some(30);
        let first = run(&server, &network.authority(), Some(70), &mut Progress::hidden());
        assert!(first.stopped.is_some());
        let moved = server.posted.borrow().len();
        assert!(moved >= 30, "{moved}");
        assert_eq!(server.pending.borrow().len(), 70 - moved);

        *server.fail_after.borrow_mut() = None;
        let second = run(&server, &network.authority(), None, &mut Progress::hidden());
        assert!(second.stopped.is_none());
        assert_eq!(second.summary.documents as usize, 70 - moved);
        assert!(server.pending.borrow().is_empty());
        assert!(server.epochs.borrow().values().all(|e| *e == 2), "every document moved exactly once");
        assert_eq!(server.posted.borrow().len(), 70);
    }

    #[test]
    fn a_refused_document_is_reported_and_the_others_still_rotate() {
        let network = Network::new(1);
        let (honest, stranger) = (network.device(10, "wijkteam"), Network::new(50).device(12, "wijkteam"));
        let server = Memory::new(3, vec![honest.listed(&[])]);
        // The server's listing of the first document names a device of another network.
        struct Poisoned<'a>(&'a Memory, Listed);
        impl RekeyServer for Poisoned<'_> {
            fn tasks(&self, limit: usize) -> Result<RekeyTasks, AdminError> {
                let mut tasks = tasks_of(self.0.tasks(limit)?);
                if let Some(first) = tasks.first_mut()
                    && first.document == DocumentId::new([0; 16], 0).unwrap().to_bytes()
                {
                    first.recipients.push(self.1.clone());
                }
                Ok(answer_of(tasks))
            }
            fn complete(&self, body: Vec<u8>) -> Result<RekeyAnswer, AdminError> {
                self.0.complete(body)
            }
        }
        let outcome = run(
            &Poisoned(&server, stranger.listed(&[])),
            &network.authority(),
            None,
            &mut Progress::hidden(),
        );
        assert!(outcome.stopped.is_none());
        assert_eq!(outcome.summary.documents, 2);
        assert_eq!(outcome.summary.refused.len(), 1);
        assert!(
            outcome.summary.refused[0].reason.contains("does not chain"),
            "{:?}",
            outcome.summary.refused
        );
        // Nothing was posted for the refused document.
        let refused = &outcome.summary.refused[0].document;
        assert!(server.posted.borrow().iter().all(|r| &api::hex(&r.document.0) != refused));
        assert!(server.pending.borrow().contains(&DocumentId::new([0; 16], 0).unwrap().to_bytes()));
    }

    #[test]
    fn a_server_that_never_takes_a_result_cannot_keep_the_loop_running() {
        let network = Network::new(1);
        let device = network.device(10, "wijkteam");
        struct Forgetful(Vec<Listed>);
        impl RekeyServer for Forgetful {
            fn tasks(&self, _: usize) -> Result<RekeyTasks, AdminError> {
                Ok(answer_of(vec![task(zorg(), 1, self.0.clone())]))
            }
            // Answers that it took the result, and lists the document again anyway.
            fn complete(&self, body: Vec<u8>) -> Result<RekeyAnswer, AdminError> {
                let batch: RekeyBatch = eenplan_protocol::sync::decode(&body, MAX_REKEY_REQUEST).unwrap();
                let outcomes = batch
                    .results
                    .iter()
                    .map(|r| RekeyOutcome {
                        document: r.document,
                        status: RekeyStatus::Incomplete,
                        message: String::new(),
                    })
                    .collect();
                Ok(RekeyAnswer { outcomes, pending: 1 })
            }
        }
        let outcome =
            run(&Forgetful(vec![device.listed(&[])]), &network.authority(), None, &mut Progress::hidden());
        assert!(outcome.stopped.is_none());
        assert_eq!(outcome.summary.documents, 0);
        assert_eq!(outcome.summary.refused.len(), 1);
        assert!(
            outcome.summary.refused[0].reason.contains("without taking a result"),
            "{:?}",
            outcome.summary.refused
        );
    }

    #[test]
    fn summaries_read_as_sentences() {
        let summary = Summary {
            documents: 160,
            envelopes: 1930,
            bytes_uploaded: 4_600_000,
            requests: 5,
            seconds: 12.34,
            already_done: 1,
            refused: Vec::new(),
            revoked_listed: Vec::new(),
        };
        assert_eq!(
            summary.text(),
            "rotated 160 documents to a new key: 1930 envelopes, 4.6 MB uploaded in 5 requests, 12.3 s\n\
             1 document had been rotated already (by another administrator or an earlier run)\n"
        );
        assert_eq!(Progress::line(37, Some(160)), "rotating keys: 37/160 documents");
    }
}
