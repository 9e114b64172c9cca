//! Re-keying: moving documents to a new key epoch after a revocation, an unassignment or a
//! policy change, without any plaintext.
//!
//! The server queues a task per document that must move on, naming every device that may still
//! read it (with its certificate chain) and the older epochs each one lacks. For each task this
//! module:
//!
//! 1. checks every recipient: its certificate chains to this keyring's root, names the device
//!    the server says it is, and carries a role that the current (root-signed) policy lets read
//!    the document's compartment — the server chooses recipients, this keyring decides whom a
//!    key is sealed to;
//! 2. opens the older epochs recipients lack from their escrow envelopes, and accepts each key
//!    only if it matches that epoch's signed commitment;
//! 3. makes a random key for `current_epoch + 1`, commits to it as this administrator, seals it
//!    to every recipient and to escrow, seals the older keys to those that lack them, and signs
//!    every envelope;
//! 4. posts the result. The server takes a result only for the epoch after its current one, so
//!    a run that was interrupted, or raced by another administrator, is simply continued by the
//!    next run: a task already done answers `stale_rekey` and disappears from the list.
//!
//! A document that fails a check is refused and nothing is posted for it; it stays queued
//! (and closed for writing) until the problem is fixed and `eenplan-admin rekey` runs again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{IsTerminal, Write};
use std::time::Instant;

use ed25519_dalek::SigningKey;
use eenplan_core::crypto;
use eenplan_protocol::DocumentId;
use eenplan_protocol::api::{
    self, ESCROW_RECIPIENT, EpochBlob, RekeyEnvelope, RekeyRecipient, RekeyResult, RekeyTask, RotationsQueued,
};
use eenplan_protocol::certificate::{Certificate, CertificateError, device_id_of};
use eenplan_protocol::envelope::{self, EnvelopeError};
use eenplan_protocol::epoch::{Commitment, Minter, SignedCommitment};
use eenplan_protocol::policy::{COMPARTMENTS, Policy};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::client::{Client, now_ms};
use crate::error::AdminError;

/// Tasks fetched per request.
pub const BATCH: usize = 50;
/// A document the server lists again and again within one run is not being taken; after this
/// many attempts it is refused so that the run ends.
const MAX_ATTEMPTS_PER_DOCUMENT: u32 = 8;
/// The server answers these to a result it does not take.
const STALE: &str = "stale_rekey";
const INCOMPLETE: &str = "incomplete_rekey";

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
}

/// What re-keying needs from the keyring, and the policy in force.
pub struct Authority<'k> {
    pub root_public: [u8; 32],
    pub admin: &'k SigningKey,
    /// The administrator's certificate, encoded: it goes into every commitment.
    pub admin_certificate: Vec<u8>,
    pub escrow_secret: &'k [u8; 32],
    pub escrow_public: &'k [u8],
    /// Verified against `root_public` by the caller.
    pub policy: &'k Policy,
}

impl std::fmt::Debug for Authority<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("root_public", &api::hex(&self.root_public))
            .field("policy_version", &self.policy.version)
            .finish_non_exhaustive()
    }
}

/// One document's new epoch, ready to post.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub result: RekeyResult,
    /// Older epochs some recipient lacks that escrow holds no envelope of: those recipients
    /// cannot read what was written under them (a warning, not a reason to keep the
    /// document closed).
    pub unrecoverable_epochs: Vec<u32>,
}

/// A recipient whose certificate was checked.
struct Recipient {
    id: [u8; 16],
    agreement_public: Vec<u8>,
    missing: BTreeSet<u32>,
}

fn unhex_fixed<const N: usize>(text: &str) -> Option<[u8; N]> {
    api::unhex(text)?.try_into().ok()
}

fn verify_recipient(
    listed: &RekeyRecipient,
    document: DocumentId,
    current_epoch: u32,
    authority: &Authority<'_>,
    now_ms: i64,
) -> Result<Recipient, RekeyError> {
    let id: [u8; 16] = unhex_fixed(&listed.device_id)
        .ok_or(RekeyError::Malformed("a recipient's device id is not 16 bytes of hex"))?;
    let device = api::hex(&id);
    let untrusted = |source| RekeyError::UntrustedRecipient { device: device.clone(), source };
    let decode = |text: &str| {
        api::unhex(text)
            .ok_or(CertificateError::Malformed)
            .and_then(|bytes| Certificate::from_bytes(&bytes))
            .map_err(untrusted)
    };
    let certificate = decode(&listed.certificate)?;
    let issuer = decode(&listed.admin_certificate)?;
    let body = certificate.verify_device(&issuer, &authority.root_public, now_ms).map_err(untrusted)?;
    if body.device_id != id {
        return Err(RekeyError::RecipientIdMismatch { device, certified: api::hex(&body.device_id) });
    }
    // The server's list is its word; the certified role under the root-signed policy is what
    // decides who may hold this compartment's key.
    if !authority.policy.may_read(&body.role, document.compartment) {
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
    let bytes = api::unhex(&blob.data).ok_or(bad("it is not hexadecimal"))?;
    let signed = SignedCommitment::from_bytes(&bytes).map_err(|_| bad("it does not decode"))?;
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
    task: &RekeyTask,
    document: DocumentId,
    epoch: u32,
    authority: &Authority<'_>,
) -> Result<Option<Zeroizing<[u8; 32]>>, RekeyError> {
    let Some(escrow) = task.escrow.iter().find(|b| b.epoch == epoch) else {
        return Ok(None);
    };
    let blob =
        task.commitments.iter().find(|b| b.epoch == epoch).ok_or(RekeyError::MissingCommitment { epoch })?;
    let commitment = verified_commitment(blob, document, epoch, &authority.root_public)?;
    let unopenable = |source| RekeyError::EscrowUnopenable { epoch, source };
    let signed = api::unhex(&escrow.data).ok_or(unopenable(EnvelopeError::Malformed))?;
    // The sealer's signature is not checked: whoever sealed it, the key is accepted only if it
    // is the committed one.
    let (sealed, _sealer, _signature) = envelope::split_signed(&signed).map_err(unopenable)?;
    let key = envelope::open(sealed, authority.escrow_secret, ESCROW_RECIPIENT, document, epoch)
        .map_err(unopenable)?;
    commitment.matches(&key).map_err(|_| RekeyError::EscrowKeyMismatch { epoch })?;
    Ok(Some(key))
}

/// Makes one document's new epoch from its task. Nothing is sent; a refusal means nothing
/// may be posted for this document.
pub fn rotate(task: &RekeyTask, authority: &Authority<'_>, now_ms: i64) -> Result<Rotation, RekeyError> {
    let document = api::unhex(&task.document)
        .filter(|bytes| bytes.len() == 17)
        .and_then(|bytes| DocumentId::from_bytes(&bytes).ok())
        .ok_or(RekeyError::Malformed("the document id is not 17 bytes of hex"))?;
    // Epoch 1 is made by a device of the plan; a document without it has nothing to rotate.
    if task.current_epoch == 0 {
        return Err(RekeyError::Malformed("the document has no key epoch yet"));
    }
    let new_epoch =
        task.current_epoch.checked_add(1).ok_or(RekeyError::Malformed("the epoch counter is exhausted"))?;

    let mut recipients: BTreeMap<[u8; 16], Recipient> = BTreeMap::new();
    for listed in &task.recipients {
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

    let needed: BTreeSet<u32> = recipients.values().flat_map(|r| r.missing.iter().copied()).collect();
    let mut old_keys: BTreeMap<u32, Zeroizing<[u8; 32]>> = BTreeMap::new();
    let mut unrecoverable_epochs = Vec::new();
    for epoch in needed {
        match escrowed_key(task, document, epoch, authority)? {
            Some(key) => {
                old_keys.insert(epoch, key);
            }
            None => unrecoverable_epochs.push(epoch),
        }
    }

    let key = Zeroizing::new(crypto::random_array::<32>());
    let minter = Minter::Admin { certificate: authority.admin_certificate.clone() };
    // The new epoch is judged by the policy in force now: it starts where a change of the
    // write rules takes effect.
    let commitment = Commitment::new(document, new_epoch, &key, minter, now_ms)
        .under_policy(authority.policy.version)
        .sign(authority.admin);
    let sealer = device_id_of(&authority.admin.verifying_key().to_bytes());
    let seal = |public: &[u8], recipient: [u8; 16], epoch: u32, key: &[u8; 32]| {
        let sealed = envelope::seal(public, recipient, document, epoch, key)?;
        let signed = envelope::sign(sealed, sealer, authority.admin, document, epoch, recipient);
        Ok::<_, EnvelopeError>(RekeyEnvelope {
            recipient: api::hex(&recipient),
            epoch,
            envelope: api::hex(&signed),
        })
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
    Ok(Rotation {
        result: RekeyResult {
            document: api::hex(&document.to_bytes()),
            new_epoch,
            commitment: api::hex(&commitment.to_bytes()),
            envelopes,
        },
        unrecoverable_epochs,
    })
}

/// The server's side of the loop: a trait so the loop can be tested without one.
pub trait RekeyServer {
    /// Up to `limit` pending tasks, oldest first.
    fn tasks(&self, limit: usize) -> Result<Vec<RekeyTask>, AdminError>;
    /// Posts one result (its JSON body); the documents still waiting, if the server says.
    fn complete(&self, body: Vec<u8>) -> Result<Option<u64>, AdminError>;
}

impl RekeyServer for Client<'_> {
    fn tasks(&self, limit: usize) -> Result<Vec<RekeyTask>, AdminError> {
        self.get(&format!("{}?limit={limit}", api::PATH_ADMIN_REKEY))
    }

    fn complete(&self, body: Vec<u8>) -> Result<Option<u64>, AdminError> {
        let answer = self.post_body(api::PATH_ADMIN_REKEY, body)?;
        Ok(serde_json::from_slice::<RotationsQueued>(&answer).ok().map(|q| q.pending))
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
    pub seconds: f64,
    /// Tasks the server called stale: another administrator, or an earlier run, finished them.
    pub already_done: u64,
    pub refused: Vec<Refused>,
}

impl Summary {
    pub fn text(&self) -> String {
        let mut out = if self.documents == 0 && self.already_done == 0 && self.refused.is_empty() {
            "no document waits for a new key\n".to_string()
        } else {
            format!(
                "rotated {} document{} to a new key: {} envelope{}, {} uploaded, {:.1} s\n",
                self.documents,
                plural(self.documents),
                self.envelopes,
                plural(self.envelopes),
                bytes(self.bytes_uploaded),
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

/// Progress on stderr: one line rewritten in place on a terminal, a line per batch otherwise.
#[derive(Debug)]
pub struct Progress {
    shown: bool,
    terminal: bool,
    open_line: bool,
}

impl Progress {
    pub fn on_stderr() -> Progress {
        Progress { shown: true, terminal: std::io::stderr().is_terminal(), open_line: false }
    }

    #[cfg(test)]
    pub fn hidden() -> Progress {
        Progress { shown: false, terminal: false, open_line: false }
    }

    fn line(done: u64, total: Option<u64>) -> String {
        match total {
            Some(total) => format!("rotating keys: {done}/{} documents", total.max(done)),
            None => format!("rotating keys: {done} documents, more to come"),
        }
    }

    fn update(&mut self, done: u64, total: Option<u64>) {
        if self.shown && self.terminal {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{}", Self::line(done, total));
            let _ = err.flush();
            self.open_line = true;
        }
    }

    fn batch_done(&mut self, done: u64, total: Option<u64>) {
        if self.shown && !self.terminal {
            eprintln!("{}", Self::line(done, total));
        }
    }

    fn warn(&mut self, message: &str) {
        if self.shown {
            self.end_line();
            eprintln!("warning: {message}");
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
    let mut summary = Summary::default();
    let stopped = rotate_all(server, authority, pending, progress, &mut summary).err();
    progress.end_line();
    summary.seconds = started.elapsed().as_secs_f64();
    Outcome { summary, stopped }
}

fn rotate_all(
    server: &dyn RekeyServer,
    authority: &Authority<'_>,
    pending: Option<u64>,
    progress: &mut Progress,
    summary: &mut Summary,
) -> Result<(), AdminError> {
    let mut attempts: HashMap<String, u32> = HashMap::new();
    // The epoch each document was moved to in this run.
    let mut moved_to: HashMap<String, u32> = HashMap::new();
    let mut total = pending;
    let refuse = |summary: &mut Summary, progress: &mut Progress, document: &str, reason: String| {
        progress.warn(&format!("document {document}: {reason}; not rotated"));
        summary.refused.push(Refused { document: document.to_string(), reason });
    };
    loop {
        let tasks = server.tasks(BATCH)?;
        let done_before = summary.documents + summary.already_done;
        // Refused documents stay queued at the server; they are not tried again in this run.
        // A document listed twice in one answer is done once.
        let mut seen = BTreeSet::new();
        let todo: Vec<RekeyTask> = tasks
            .iter()
            .filter(|t| !summary.refused.iter().any(|r| r.document == t.document))
            .filter(|t| seen.insert(t.document.clone()))
            .cloned()
            .collect();
        if tasks.len() < BATCH {
            // The whole remainder is in sight.
            total = Some(total.unwrap_or(0).max(done_before + todo.len() as u64));
        }
        if todo.is_empty() {
            return Ok(());
        }
        let mut progressed = false;
        for task in todo {
            let tries = attempts.entry(task.document.clone()).or_insert(0);
            *tries += 1;
            if *tries > MAX_ATTEMPTS_PER_DOCUMENT {
                let reason = format!(
                    "the server listed it {MAX_ATTEMPTS_PER_DOCUMENT} times in one run without taking a result"
                );
                refuse(summary, progress, &task.document, reason);
                continue;
            }
            if let Some(&epoch) = moved_to.get(&task.document)
                && task.current_epoch < epoch
            {
                let reason = format!(
                    "the server took epoch {epoch} for it but still lists it at epoch {}",
                    task.current_epoch
                );
                refuse(summary, progress, &task.document, reason);
                continue;
            }
            let rotation = match rotate(&task, authority, now_ms()?) {
                Ok(rotation) => rotation,
                Err(e) => {
                    refuse(summary, progress, &task.document, e.to_string());
                    continue;
                }
            };
            if !rotation.unrecoverable_epochs.is_empty() {
                progress.warn(&format!(
                    "document {}: escrow holds no key of epoch(s) {:?}; devices that lack them cannot read \
                     what was written under them",
                    task.document, rotation.unrecoverable_epochs
                ));
            }
            let envelopes = rotation.result.envelopes.len() as u64;
            let body = serde_json::to_vec(&rotation.result).map_err(AdminError::Json)?;
            let len = body.len() as u64;
            match server.complete(body) {
                Ok(left) => {
                    if let Some(left) = left {
                        total = Some(summary.documents + summary.already_done + 1 + left);
                    }
                    summary.documents += 1;
                    summary.envelopes += envelopes;
                    summary.bytes_uploaded += len;
                    moved_to.insert(task.document.clone(), rotation.result.new_epoch);
                    progressed = true;
                }
                // Finished meanwhile (another administrator, or an earlier run whose answer
                // was lost): the next listing shows what is left.
                Err(AdminError::Server { code, .. }) if code == STALE => {
                    summary.already_done += 1;
                    progressed = true;
                }
                // The recipients changed between listing and posting (a device was approved
                // or revoked): the next listing has the new ones.
                Err(AdminError::Server { code, .. }) if code == INCOMPLETE => progressed = true,
                Err(e) => return Err(e),
            }
            progress.update(summary.documents + summary.already_done, total);
        }
        progress.batch_done(summary.documents + summary.already_done, total);
        if !progressed {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use eenplan_protocol::certificate::{AdminBody, DeviceBody};
    use eenplan_protocol::policy::DEFAULT_POLICY_TOML;
    use eenplan_protocol::sync::Fixed;

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
                },
                &root,
            );
            let (escrow_secret, escrow_public) = envelope::generate_keypair();
            let policy = crate::policy_file::parse(DEFAULT_POLICY_TOML).unwrap().policy;
            Network { root, admin, admin_certificate, escrow_secret, escrow_public, policy }
        }

        fn authority(&self) -> Authority<'_> {
            Authority {
                root_public: self.root.verifying_key().to_bytes(),
                admin: &self.admin,
                admin_certificate: self.admin_certificate.to_bytes(),
                escrow_secret: &self.escrow_secret,
                escrow_public: &self.escrow_public,
                policy: &self.policy,
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
            (
                EpochBlob { epoch, data: api::hex(&signed) },
                EpochBlob { epoch, data: api::hex(&commitment.to_bytes()) },
            )
        }
    }

    struct Device {
        id: [u8; 16],
        secret: Zeroizing<[u8; 32]>,
        certificate: Certificate,
        admin_certificate: Certificate,
    }

    impl Device {
        fn listed(&self, missing: &[u32]) -> RekeyRecipient {
            RekeyRecipient {
                device_id: api::hex(&self.id),
                certificate: api::hex(&self.certificate.to_bytes()),
                admin_certificate: api::hex(&self.admin_certificate.to_bytes()),
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
        let document = DocumentId::from_bytes(&api::unhex(&result.document).unwrap()).unwrap();
        let found: Vec<&RekeyEnvelope> =
            result.envelopes.iter().filter(|e| e.recipient == api::hex(&id) && e.epoch == epoch).collect();
        assert_eq!(found.len(), 1, "one envelope of epoch {epoch} for {}", api::hex(&id));
        let signed = api::unhex(&found[0].envelope).unwrap();
        let (sealed, sealer, signature) = envelope::split_signed(&signed).unwrap();
        let admin_public = admin.verifying_key().to_bytes();
        assert_eq!(sealer, device_id_of(&admin_public));
        envelope::verify_signature(sealed, &signature, &admin_public, document, epoch, id).unwrap();
        *envelope::open(sealed, secret, id, document, epoch).unwrap()
    }

    fn zorg() -> DocumentId {
        DocumentId::new(PLAN, 1).unwrap()
    }

    fn task(document: DocumentId, current_epoch: u32, recipients: Vec<RekeyRecipient>) -> RekeyTask {
        RekeyTask {
            document: api::hex(&document.to_bytes()),
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
        assert_eq!((result.document.as_str(), result.new_epoch), (task.document.as_str(), 4));
        assert_eq!(result.envelopes.len(), 3);
        assert!(rotation.unrecoverable_epochs.is_empty());

        let key = wijkteam.open(result, &network.admin, 4);
        assert_eq!(ggz.open(result, &network.admin, 4), key);
        assert_eq!(open_for(result, ESCROW_RECIPIENT, &network.escrow_secret, &network.admin, 4), key);

        let signed = SignedCommitment::from_bytes(&api::unhex(&result.commitment).unwrap()).unwrap();
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
        by_device.commitments.push(EpochBlob { epoch: 2, data: api::hex(&device_made.to_bytes()) });
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
        for document in ["", "zz", "00", &api::hex(&[0; 18]), &api::hex(&[[1; 16].as_slice(), &[9]].concat())]
        {
            let mut t = good.clone();
            t.document = document.to_string();
            cases.push(t);
        }
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
                0 => t.recipients[0].device_id = "abc".into(),
                1 => t.recipients[0].certificate = "not hex".into(),
                _ => t.recipients[0].admin_certificate = "00ff".into(),
            }
            cases.push(t);
        }
        let mut bad_escrow = task(zorg(), 2, vec![device.listed(&[2])]);
        let (_, commitment) = network.epoch(zorg(), 2, &[2; 32], &[2; 32]);
        bad_escrow.commitments.push(commitment);
        bad_escrow.escrow.push(EpochBlob { epoch: 2, data: "0102".into() });
        cases.push(bad_escrow);
        for case in cases {
            assert!(rotate(&case, &network.authority(), NOW).is_err(), "{case:?}");
        }
    }

    /// A server in memory that keeps each document's epoch, as the real one does: a result is
    /// taken only for the epoch after the current one.
    struct Memory {
        epochs: RefCell<BTreeMap<String, u32>>,
        pending: RefCell<BTreeSet<String>>,
        recipients: Vec<RekeyRecipient>,
        posted: RefCell<Vec<RekeyResult>>,
        /// Fail every request after this many results were taken (an interrupted run).
        fail_after: RefCell<Option<usize>>,
    }

    impl Memory {
        fn new(documents: u8, recipients: Vec<RekeyRecipient>) -> Memory {
            let names: Vec<String> =
                (0..documents).map(|i| api::hex(&DocumentId::new([i; 16], 0).unwrap().to_bytes())).collect();
            Memory {
                epochs: RefCell::new(names.iter().map(|n| (n.clone(), 1)).collect()),
                pending: RefCell::new(names.into_iter().collect()),
                recipients,
                posted: RefCell::new(Vec::new()),
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

    impl RekeyServer for Memory {
        fn tasks(&self, limit: usize) -> Result<Vec<RekeyTask>, AdminError> {
            if self.down() {
                return Err(unreachable());
            }
            let epochs = self.epochs.borrow();
            Ok(self
                .pending
                .borrow()
                .iter()
                .take(limit)
                .map(|d| RekeyTask {
                    document: d.clone(),
                    current_epoch: epochs[d],
                    recipients: self.recipients.clone(),
                    escrow: Vec::new(),
                    commitments: Vec::new(),
                })
                .collect())
        }

        fn complete(&self, body: Vec<u8>) -> Result<Option<u64>, AdminError> {
            if self.down() {
                return Err(unreachable());
            }
            let result: RekeyResult = serde_json::from_slice(&body).unwrap();
            let mut epochs = self.epochs.borrow_mut();
            let current = epochs.get_mut(&result.document).unwrap();
            if result.new_epoch != *current + 1 || !self.pending.borrow().contains(&result.document) {
                return Err(AdminError::Server { status: 409, code: STALE.into(), message: "stale".into() });
            }
            *current = result.new_epoch;
            self.pending.borrow_mut().remove(&result.document);
            self.posted.borrow_mut().push(result);
            Ok(Some(self.pending.borrow().len() as u64))
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
        assert_eq!(first.summary.documents, 30);
        assert_eq!(server.pending.borrow().len(), 40);

        *server.fail_after.borrow_mut() = None;
        let second = run(&server, &network.authority(), None, &mut Progress::hidden());
        assert!(second.stopped.is_none());
        assert_eq!(second.summary.documents, 40);
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
        struct Poisoned<'a>(&'a Memory, RekeyRecipient);
        impl RekeyServer for Poisoned<'_> {
            fn tasks(&self, limit: usize) -> Result<Vec<RekeyTask>, AdminError> {
                let mut tasks = self.0.tasks(limit)?;
                if let Some(first) = tasks.first_mut()
                    && first.document == api::hex(&DocumentId::new([0; 16], 0).unwrap().to_bytes())
                {
                    first.recipients.push(self.1.clone());
                }
                Ok(tasks)
            }
            fn complete(&self, body: Vec<u8>) -> Result<Option<u64>, AdminError> {
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
        assert!(server.posted.borrow().iter().all(|r| &r.document != refused));
        assert!(server.pending.borrow().contains(refused));
    }

    #[test]
    fn a_server_that_never_takes_a_result_cannot_keep_the_loop_running() {
        let network = Network::new(1);
        let device = network.device(10, "wijkteam");
        struct Forgetful(Vec<RekeyRecipient>);
        impl RekeyServer for Forgetful {
            fn tasks(&self, _: usize) -> Result<Vec<RekeyTask>, AdminError> {
                Ok(vec![task(zorg(), 1, self.0.clone())])
            }
            fn complete(&self, _: Vec<u8>) -> Result<Option<u64>, AdminError> {
                Ok(None)
            }
        }
        let outcome =
            run(&Forgetful(vec![device.listed(&[])]), &network.authority(), None, &mut Progress::hidden());
        assert!(outcome.stopped.is_none());
        assert_eq!(outcome.summary.documents, 1);
        assert_eq!(outcome.summary.refused.len(), 1);
        assert!(
            outcome.summary.refused[0].reason.contains("still lists it"),
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
            seconds: 12.34,
            already_done: 1,
            refused: Vec::new(),
        };
        assert_eq!(
            summary.text(),
            "rotated 160 documents to a new key: 1930 envelopes, 4.6 MB uploaded, 12.3 s\n\
             1 document had been rotated already (by another administrator or an earlier run)\n"
        );
        assert_eq!(Progress::line(37, Some(160)), "rotating keys: 37/160 documents");
    }
}
