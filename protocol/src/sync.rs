//! The device ⇄ server sync messages (CBOR; short field names, empty lists omitted, because
//! one small edit must cost under 600 bytes on the wire in both directions together).
//!
//! One round trip carries a device's whole sync: `POST /v1/sync` with a [`SyncRequest`] that
//! pushes every sealed bundle in the outbox and asks for everything after the device's
//! cursor; the [`SyncResponse`] acknowledges the pushes, returns the new bundles of every
//! document the device may read, the key envelopes waiting in its mailbox, and the chores the
//! server asks of it (sealing keys for devices that lack them, uploading a snapshot).
//!
//! ```text
//! device                                   server
//!   │ SyncRequest { since: 41,                │
//!   │   push: [bundle(doc A, id x)] } ──────► │ append x as seq 57 (or find it: idempotent)
//!   │                                         │ collect bundles after 41 the device may read
//!   │ ◄─ SyncResponse { all_accepted: true,   │
//!   │   bundles: [seq 44 doc B, seq 50 doc A],│
//!   │   head: 57, complete: true }            │
//!   │ apply, then store cursor 57             │
//! ```
//!
//! The cursor is one number: the server's log is a single sequence across all documents.
//! Documents that became readable after the cursor are sent from their beginning (or their
//! latest snapshot), so a new participant needs no extra round trip.

use serde::{Deserialize, Serialize};

use crate::certificate::bytes;

/// Largest sync request body the server accepts.
pub const MAX_SYNC_REQUEST: usize = 32 * 1024 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// The head returned by the last complete pull.
    #[serde(rename = "s", default)]
    pub since: u64,
    /// Sealed bundles from the outbox.
    #[serde(rename = "p", default, skip_serializing_if = "Vec::is_empty")]
    pub push: Vec<Blob>,
    /// Bundles from the outbox without their author id ([`crate::bundle::without_author`]):
    /// the server puts the session's device back ([`crate::bundle::with_author`]) and then
    /// treats each as a bundle of `p`. The author's signature covers the author, so what the
    /// server puts back is checked by the server and by every receiver, never taken on its
    /// word. Counted with `p` against [`MAX_PUSHES`].
    #[serde(rename = "q", default, skip_serializing_if = "Vec::is_empty")]
    pub push_own: Vec<Blob>,
    /// Plans created on this device and not yet known to the server.
    #[serde(rename = "n", default, skip_serializing_if = "Vec::is_empty")]
    pub new_plans: Vec<Fixed<16>>,
    /// Key envelopes this device sealed for others (answering key requests).
    #[serde(rename = "e", default, skip_serializing_if = "Vec::is_empty")]
    pub envelopes: Vec<EnvelopeUpload>,
    /// Snapshot bundles answering [`SyncResponse::compact`]; each names the log position it
    /// covers in its signed header ([`crate::BundleKind::Snapshot`]).
    #[serde(rename = "c", default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<Blob>,
    /// The version of the sharing policy this device holds (0: none yet).
    #[serde(rename = "pv", default, skip_serializing_if = "is_zero")]
    pub policy_version: u32,
    /// Signed key commitments for keys this device made ([`crate::epoch`]): epoch 1 of its
    /// new plans' documents, and of documents it was asked to [`SyncResponse::mint`].
    #[serde(rename = "cm", default, skip_serializing_if = "Vec::is_empty")]
    pub commitments: Vec<Blob>,
    /// The most bundle bytes the device wants in this answer's pull (0: the server's
    /// default). A phone on a slow link asks for small pages, so each round trip ends well
    /// within its deadline and a cut link loses at most one page. The server clamps it to
    /// [`MIN_PAGE_BYTES`]..=its own maximum.
    #[serde(rename = "mb", default, skip_serializing_if = "is_zero")]
    pub max_bytes: u32,
    /// Documents whose change log the device wants from a position on, bypassing snapshots:
    /// after it refused a snapshot (its witnesses did not match), or to finish such a
    /// history that did not fit one page.
    #[serde(rename = "hi", default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryRequest>,
    /// Envelopes this device received and could not use: they did not open, or held a key
    /// that is not the committed one. The server deletes the device's envelope for each
    /// (document, epoch) when `sealer` sealed it, so the key is asked for again, and takes no
    /// further envelope of that (document, epoch) for this device from that sealer. At most
    /// [`MAX_REFUSED_ENVELOPES`].
    #[serde(rename = "re", default, skip_serializing_if = "Vec::is_empty")]
    pub refused_envelopes: Vec<RefusedEnvelope>,
    /// Where the device's key mailbox stands: the `envelopes_through` of its last answer.
    /// Keys go out ahead of the bundles they open, on a cursor of their own, so a new device
    /// gets its keys before its history (whose log positions are older than the keys').
    /// Absent (an older device): the server takes [`SyncRequest::since`] for it.
    #[serde(rename = "ea", default, skip_serializing_if = "Option::is_none")]
    pub envelopes_after: Option<u64>,
    /// The first entry of each new plan's membership chain ([`crate::membership`]), signed by
    /// this device: the plan's creator holds regie. A plan registered without one (an older
    /// device) has no chain, and its participants are the server's word.
    #[serde(rename = "mc", default, skip_serializing_if = "Vec::is_empty")]
    pub charters: Vec<Blob>,
    /// Where the device's membership cursor stands: the `membership_through` of its last
    /// answer (absent: from the start).
    #[serde(rename = "ma", default, skip_serializing_if = "Option::is_none")]
    pub membership_after: Option<u64>,
    /// New epochs this device made when asked to ([`SyncResponse::rotate`]).
    #[serde(rename = "ro", default, skip_serializing_if = "Vec::is_empty")]
    pub rotations: Vec<RotationUpload>,
    /// This device's access-log events since its last acknowledged upload, sealed to its
    /// organisation's audit key ([`crate::audit::AuditUpload`]); at most
    /// [`crate::audit::MAX_UPLOADS_PER_SYNC`].
    #[serde(rename = "au", default, skip_serializing_if = "Vec::is_empty")]
    pub audit: Vec<Blob>,
    /// The version of its organisation's audit key this device holds (0: none yet).
    #[serde(rename = "av", default, skip_serializing_if = "is_zero")]
    pub audit_key_version: u32,
}

/// A new epoch a device made for a document the server asked it to rotate: the signed
/// commitment (naming the membership position it was made at) and the key sealed to escrow
/// and to the device itself. The other readers ask for it through key requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationUpload {
    #[serde(rename = "cm")]
    pub commitment: Blob,
    #[serde(rename = "e")]
    pub envelopes: Vec<EnvelopeUpload>,
}

/// A member's erasure as the regisseur's device posts it ([`crate::api::erasure_path`]): the
/// signed `Erase` entry, the sealed base it names, and the new epoch's commitment with the
/// key sealed to escrow and to the device itself (other readers ask for it as for any key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureUpload {
    #[serde(rename = "en")]
    pub entry: Blob,
    #[serde(rename = "b")]
    pub base: Blob,
    #[serde(rename = "r")]
    pub rotation: RotationUpload,
}

/// "Make epoch `epoch` of `document`": a removal or a change of level took a read away and
/// this device's user still reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateRequest {
    #[serde(rename = "d")]
    pub document: Fixed<17>,
    #[serde(rename = "ep")]
    pub epoch: u32,
}

/// "The envelope `sealer` sealed to me for this (document, epoch) is no good."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedEnvelope {
    #[serde(rename = "d")]
    pub document: Fixed<17>,
    #[serde(rename = "ep")]
    pub epoch: u32,
    /// The sealer's device id, from the envelope's signed trailer
    /// ([`crate::envelope::split_signed`]).
    #[serde(rename = "by")]
    pub sealer: Fixed<16>,
}

/// The most bundles one sync request pushes (`p`). A device with more waiting pushes the rest
/// in its next round. The limits below bound the work one request can cause (a lookup, a
/// signature check or a write per item) well above what a device sends: a first sync of a
/// worker with two hundred plans fits in one request.
pub const MAX_PUSHES: usize = 1024;
/// The most new plans one request registers (`n`).
pub const MAX_NEW_PLANS: usize = 256;
/// The most key commitments one request carries (`cm`): four compartments per new plan.
pub const MAX_COMMITMENTS: usize = 4 * MAX_NEW_PLANS;
/// The most key envelopes one request carries (`e`): two per commitment (the device itself
/// and escrow), and the answers to other devices' key requests.
pub const MAX_ENVELOPE_UPLOADS: usize = 4096;
/// The most snapshots one request uploads (`c`).
pub const MAX_SNAPSHOTS: usize = 256;
/// The most refused envelopes one request reports (`re`).
pub const MAX_REFUSED_ENVELOPES: usize = 256;
/// The most new epochs one request uploads (`ro`).
pub const MAX_ROTATION_UPLOADS: usize = 256;
/// The most membership entries one answer carries (`ms`); a plan's chain is never split
/// across answers, so this is also the longest chain ([`crate::membership::MAX_ENTRIES`]).
pub const MAX_MEMBERSHIP_PER_ANSWER: usize = 256;
/// The most documents one answer asks a device to rotate (`ro`).
pub const MAX_ROTATE_REQUESTS: usize = 256;

/// The most bundles (changes and snapshots) a device may push per rolling hour. A worker who
/// edits all day pushes one bundle per edited document per sync: a few hundred an hour at
/// most. A device pushing more is flooding, and hears [`crate::api::code::QUOTA_EXCEEDED`].
pub const PUSH_QUOTA_BUNDLES: u64 = 10_000;
/// The most sync-request bytes a device may send per rolling hour: a first push of forty
/// plans with years of history is tens of megabytes.
pub const PUSH_QUOTA_BYTES: u64 = 512 * 1024 * 1024;
/// The window of the push quota.
pub const PUSH_QUOTA_WINDOW_MS: i64 = 3_600_000;

/// A list of a [`SyncRequest`] that is longer than its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the sync request carries {count} {list}; at most {limit} are taken per request")]
pub struct TooManyItems {
    /// The list's name, as people read it ("pushed bundles").
    pub list: &'static str,
    pub count: usize,
    pub limit: usize,
}

impl SyncRequest {
    /// The first list over its limit, if any; the server refuses such a request whole before
    /// doing any of its work.
    pub fn too_many_items(&self) -> Option<TooManyItems> {
        [
            ("pushed bundles", self.push.len() + self.push_own.len(), MAX_PUSHES),
            ("new plans", self.new_plans.len(), MAX_NEW_PLANS),
            ("key commitments", self.commitments.len(), MAX_COMMITMENTS),
            ("key envelopes", self.envelopes.len(), MAX_ENVELOPE_UPLOADS),
            ("snapshots", self.snapshots.len(), MAX_SNAPSHOTS),
            ("refused envelopes", self.refused_envelopes.len(), MAX_REFUSED_ENVELOPES),
            ("plan charters", self.charters.len(), MAX_NEW_PLANS),
            ("new epochs", self.rotations.len(), MAX_ROTATION_UPLOADS),
            ("audit uploads", self.audit.len(), crate::audit::MAX_UPLOADS_PER_SYNC),
        ]
        .into_iter()
        .find(|(_, count, limit)| count > limit)
        .map(|(list, count, limit)| TooManyItems { list, count, limit })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// Bundle ids of pushes now stored (appended or already present), when not every upload
    /// was: see [`SyncResponse::all_accepted`] and [`SyncResponse::stored`].
    #[serde(rename = "a", default, skip_serializing_if = "Vec::is_empty")]
    pub accepted: Vec<Fixed<16>>,
    /// Every bundle of the request (`p` and `c`) is now stored, none was refused: `accepted`
    /// is then left out (one small edit must stay under 600 bytes). The server says it only
    /// when `rejected` is empty; a device never counts a push it also finds in `rejected`.
    #[serde(rename = "t", default, skip_serializing_if = "is_false")]
    pub all_accepted: bool,
    /// Pushes refused, with the reason; the device must not retry them unchanged.
    #[serde(rename = "r", default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<Rejection>,
    /// New bundles for the device, in log order.
    #[serde(rename = "b", default, skip_serializing_if = "Vec::is_empty")]
    pub bundles: Vec<Blob>,
    /// The cursor to send next time. Opaque to the device: when `complete` is false it may be
    /// a resume token (top bit set, [`is_resume_token`]) that marks a place inside a history
    /// block; only a complete answer's `head` is a log position (what a snapshot covers).
    #[serde(rename = "h")]
    pub head: u64,
    /// False when more bundles wait: sync again at once.
    #[serde(rename = "m", default = "yes", skip_serializing_if = "is_true")]
    pub complete: bool,
    #[serde(rename = "e", default, skip_serializing_if = "Vec::is_empty")]
    pub envelopes: Vec<EnvelopeDelivery>,
    #[serde(rename = "k", default, skip_serializing_if = "Vec::is_empty")]
    pub key_requests: Vec<KeyRequest>,
    /// Documents whose logs are long: upload a snapshot of each, covering this answer's
    /// `head` (listed only in a complete answer). The server accepts a snapshot only from the
    /// device it asked, for that document and exactly that position.
    #[serde(rename = "x", default, skip_serializing_if = "Vec::is_empty")]
    pub compact: Vec<Fixed<17>>,
    /// The network's signed sharing policy, when it is newer than the one the device holds.
    #[serde(rename = "pv", default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Blob>,
    /// The signed key commitment of every (document, epoch) in `envelopes`.
    #[serde(rename = "cm", default, skip_serializing_if = "Vec::is_empty")]
    pub commitments: Vec<Blob>,
    /// Documents this device may read for which nobody has made a key yet: the device makes
    /// epoch 1 (the first commitment the server receives wins).
    #[serde(rename = "mt", default, skip_serializing_if = "Vec::is_empty")]
    pub mint: Vec<Fixed<17>>,
    /// For every snapshot in `bundles`: for each device that wrote changes to its document up
    /// to the snapshot's `covers`, that device's newest such change bundle. A receiver checks
    /// the snapshot against them (each author's changes in it are exactly those up to the
    /// witness's last) before it takes the snapshot.
    #[serde(rename = "w", default, skip_serializing_if = "Vec::is_empty")]
    pub witnesses: Vec<Blob>,
    /// The change logs asked for in [`SyncRequest::history`], as far as the page allowed.
    #[serde(rename = "hi", default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryPage>,
    /// The mailbox position to send back as [`SyncRequest::envelopes_after`].
    #[serde(rename = "et", default, skip_serializing_if = "is_zero_u64")]
    pub envelopes_through: u64,
    /// Membership entries of the device's plans after its membership cursor (a plan it
    /// newly takes part in: its whole chain), in order; at most
    /// [`MAX_MEMBERSHIP_PER_ANSWER`], whole chains only. They go ahead of everything else:
    /// the device judges key requests and key makers by them.
    #[serde(rename = "ms", default, skip_serializing_if = "Vec::is_empty")]
    pub membership: Vec<Blob>,
    /// The membership position to send back as [`SyncRequest::membership_after`].
    #[serde(rename = "mh", default, skip_serializing_if = "is_zero_u64")]
    pub membership_through: u64,
    /// Documents whose next epoch this device is asked to make.
    #[serde(rename = "ro", default, skip_serializing_if = "Vec::is_empty")]
    pub rotate: Vec<RotateRequest>,
    /// The newest root-signed audit key of the device's organisation
    /// ([`crate::audit::SignedAuditKey`]), when it is newer than the version the device holds.
    #[serde(rename = "ak", default, skip_serializing_if = "Option::is_none")]
    pub audit_key: Option<Blob>,
    /// The last event position of this device the server now keeps (uploads in this request
    /// stored, or found already stored): the device may drop what is at or before it.
    #[serde(rename = "at", default, skip_serializing_if = "is_zero_u64")]
    pub audit_through: u64,
    /// Uploads of [`SyncRequest::audit`] the server refused, by their index in the request,
    /// with a reason code ([`crate::audit::AuditRefusal`]); the rest of the sync went on.
    #[serde(rename = "ar", default, skip_serializing_if = "Vec::is_empty")]
    pub audit_refused: Vec<crate::audit::AuditRefusal>,
}

impl SyncResponse {
    /// Which of `pushed` (the ids of the bundles the request carried) the server says it
    /// stored: those `accepted` names, or, when it says [`SyncResponse::all_accepted`], every
    /// one of them it does not also list in `rejected`. An id the answer does not account for
    /// is not stored: its bundle stays in the device's outbox and is pushed again.
    pub fn stored(&self, pushed: &[[u8; 16]]) -> Vec<[u8; 16]> {
        let refused = |id: &[u8; 16]| self.rejected.iter().any(|r| r.bundle_id.0 == *id);
        pushed
            .iter()
            .filter(|id| !refused(id) && (self.all_accepted || self.accepted.iter().any(|a| a.0 == **id)))
            .copied()
            .collect()
    }
}

/// The smallest pull page a device may ask for ([`SyncRequest::max_bytes`]); one bundle is
/// always sent, whatever its size, so a page is never empty while bundles wait.
pub const MIN_PAGE_BYTES: u32 = 16 * 1024;

/// "Send me the change bundles of `document` with a log position after `after`."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRequest {
    #[serde(rename = "d")]
    pub document: Fixed<17>,
    #[serde(rename = "af")]
    pub after: u64,
}

/// One page of a document's change log, in log order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    #[serde(rename = "d")]
    pub document: Fixed<17>,
    #[serde(rename = "b", default, skip_serializing_if = "Vec::is_empty")]
    pub bundles: Vec<Blob>,
    /// The log position to ask `after` next time: the last bundle sent (or the request's
    /// own `after` when none fitted).
    #[serde(rename = "t")]
    pub through: u64,
    /// True when no change bundle of the document after `through` existed at the answer.
    #[serde(rename = "m", default = "yes", skip_serializing_if = "is_true")]
    pub complete: bool,
}

/// Rejection reasons after which the device keeps the bundle and re-seals it under the
/// document's next key: the changes are good, only the key is not current.
pub const REJECT_STALE_EPOCH: &str = "stale_epoch";
/// The document is being moved to a new key epoch (a revocation is in progress): nothing is
/// accepted under the old key, so a revoked device can read nothing written after it.
pub const REJECT_ROTATING: &str = "rotating";
/// The author's role may not write the bundle's compartment.
pub const REJECT_NO_WRITE: &str = "no_write";
/// The bundle is sealed under an epoch nobody committed to yet (or a later one than the
/// current). Kept and pushed again: a device's own epoch-1 commitment may have been refused
/// in the same request (it named a policy version that had just been replaced) and is made
/// again when the server lists the document to mint.
pub const REJECT_UNKNOWN_EPOCH: &str = "unknown_epoch";
/// The author was revoked while its request was on its way: nothing is written after a
/// revocation, whenever the request was authenticated.
pub const REJECT_AUTHOR_REVOKED: &str = "author_revoked";

/// A snapshot the server did not ask this device for, or whose signed `covers` is not the
/// position it asked for (the `head` of the answer that listed the document in `compact`).
/// Final: the device drops the snapshot; the server asks again when the log is still long.
pub const REJECT_UNREQUESTED_SNAPSHOT: &str = "unrequested_snapshot";

/// The most history requests one sync request may carry; more is refused whole (400
/// `too_many_history_requests`). A device with more documents to catch up asks for the rest in
/// its next rounds.
pub const MAX_HISTORY_REQUESTS: usize = 64;
/// The most key envelopes one answer delivers; the rest follow in the next round (the answer
/// is then not complete). Envelope bytes also count toward the page's `max_bytes`. A device
/// that lost a reader in 200 plans receives 600 new keys at once: that is two answers.
pub const MAX_ENVELOPES_PER_ANSWER: usize = 512;
/// The most key requests one answer lists, and the most bytes of certificates they may carry
/// (at least one is always listed; a request carries ≈ 3 KB). The rest follow in the next
/// rounds of the same sync. A device that is given 200 plans at once is asked for 600 keys:
/// three answers.
pub const MAX_KEY_REQUESTS_PER_ANSWER: usize = 256;
pub const MAX_KEY_REQUEST_BYTES_PER_ANSWER: usize = 1024 * 1024;
/// The most documents one device is asked to snapshot at a time ([`SyncResponse::compact`]):
/// the server keeps at most this many outstanding requests per device, and a device weighs
/// no more of one answer's list, however long a server in bad faith makes it.
pub const MAX_COMPACT_PER_ANSWER: usize = 16;

/// The bit that marks a cursor as a resume token rather than a log position (positions stay
/// below 2^63).
pub const RESUME_TOKEN_BIT: u64 = 1 << 63;

/// Whether a `head` is a resume token: a place inside a history block that only the server
/// can read. Such a head is never a log position; store it and send it back as `since`.
pub fn is_resume_token(cursor: u64) -> bool {
    cursor & RESUME_TOKEN_BIT != 0
}

/// The key-mailbox cursor that a log cursor stands for, for a device that keeps none of its
/// own (an older build, or one that never had an answer with `envelopes_through`): every
/// envelope up to a log position came with the pages up to it; a resume token names no
/// position, so the mailbox starts over (a key delivered twice changes nothing).
pub fn mailbox_cursor_of_log_cursor(since: u64) -> u64 {
    if is_resume_token(since) { 0 } else { since }
}

/// Whether a rejected bundle should stay in the outbox to be re-sealed and pushed again.
pub fn rejection_is_retryable(reason: &str) -> bool {
    reason == REJECT_STALE_EPOCH || reason == REJECT_ROTATING || reason == REJECT_UNKNOWN_EPOCH
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A fixed-size id carried as a CBOR byte string (an array of numbers would double its size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fixed<const N: usize>(pub [u8; N]);

impl<const N: usize> Serialize for Fixed<N> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de, const N: usize> Deserialize<'de> for Fixed<N> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = bytes::deserialize(d)?;
        let array: [u8; N] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| serde::de::Error::invalid_length(bytes.len(), &"a fixed-size id"))?;
        Ok(Fixed(array))
    }
}

/// Bytes that CBOR carries as a byte string, not as an array of numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Blob(#[serde(with = "bytes")] pub Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    #[serde(rename = "i")]
    pub bundle_id: Fixed<16>,
    #[serde(rename = "w")]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeUpload {
    #[serde(rename = "to")]
    pub recipient: Fixed<16>,
    #[serde(rename = "d")]
    pub document: Fixed<17>,
    #[serde(rename = "ep")]
    pub epoch: u32,
    #[serde(rename = "v")]
    pub envelope: Blob,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeDelivery {
    #[serde(rename = "d")]
    pub document: Fixed<17>,
    #[serde(rename = "ep")]
    pub epoch: u32,
    #[serde(rename = "v")]
    pub envelope: Blob,
}

/// A device that may read `document` but has no envelope for its current epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRequest {
    #[serde(rename = "d")]
    pub document: Fixed<17>,
    #[serde(rename = "ep")]
    pub epoch: u32,
    /// The requesting device's certificate: the sealer verifies it against the pinned root
    /// before sealing anything to the key inside.
    #[serde(rename = "c")]
    pub certificate: Blob,
    #[serde(rename = "ac")]
    pub admin_certificate: Blob,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the message is not a valid sync message")]
pub struct DecodeError;

/// Encodes a sync message.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Encoding these plain structs into a Vec cannot fail.
    let _ = ciborium::into_writer(message, &mut out);
    out
}

/// Decodes a sync message, refusing anything above `max` bytes before parsing.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], max: usize) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError);
    }
    ciborium::from_reader(bytes).map_err(|_| DecodeError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_pull_is_a_few_bytes_and_round_trips() {
        let request = SyncRequest { since: 1234, ..Default::default() };
        let bytes = encode(&request);
        assert!(bytes.len() <= 8, "{} bytes", bytes.len());
        assert_eq!(decode::<SyncRequest>(&bytes, 100).unwrap(), request);
        let response = SyncResponse { head: 99, complete: true, ..Default::default() };
        let bytes = encode(&response);
        assert!(bytes.len() <= 8, "{} bytes", bytes.len());
        assert_eq!(decode::<SyncResponse>(&bytes, 100).unwrap(), response);
    }

    #[test]
    fn a_pushed_bundle_costs_only_a_few_bytes_of_framing() {
        let request = SyncRequest { since: 1_000_000, push: vec![Blob(vec![7; 270])], ..Default::default() };
        assert!(encode(&request).len() <= 270 + 16);
    }

    #[test]
    fn bundles_larger_than_the_decoder_scratch_buffer_round_trip() {
        let response = SyncResponse {
            bundles: vec![Blob(vec![3; 100_000])],
            head: 1,
            complete: true,
            ..Default::default()
        };
        assert_eq!(decode::<SyncResponse>(&encode(&response), 200_000).unwrap(), response);
    }

    #[test]
    fn ids_travel_as_byte_strings() {
        let response =
            SyncResponse { accepted: vec![Fixed([1; 16])], head: 1, complete: true, ..Default::default() };
        let bytes = encode(&response);
        assert!(bytes.len() <= 24, "{} bytes", bytes.len());
        assert_eq!(decode::<SyncResponse>(&bytes, 100).unwrap(), response);
        assert!(decode::<Fixed<16>>(&encode(&Blob(vec![1; 15])), 100).is_err());
    }

    #[test]
    fn an_answer_that_took_every_push_costs_a_flag_instead_of_their_ids() {
        let all = SyncResponse { all_accepted: true, head: 1, complete: true, ..Default::default() };
        let bytes = encode(&all);
        assert!(bytes.len() <= 8, "{} bytes", bytes.len());
        assert_eq!(decode::<SyncResponse>(&bytes, 100).unwrap(), all);
        assert_eq!(all.stored(&[[1; 16], [2; 16]]), vec![[1; 16], [2; 16]]);
    }

    #[test]
    fn a_push_the_answer_does_not_account_for_is_never_counted_as_stored() {
        let pushed = [[1; 16], [2; 16], [3; 16]];
        // Listed: only those named.
        let listed = SyncResponse { accepted: vec![Fixed([2; 16]), Fixed([9; 16])], ..Default::default() };
        assert_eq!(listed.stored(&pushed), vec![[2; 16]]);
        // Neither listed nor flagged (an answer that omits the list without saying all): none.
        assert_eq!(SyncResponse::default().stored(&pushed), Vec::<[u8; 16]>::new());
        // Flagged, yet one refused: never that one.
        let contradictory = SyncResponse {
            all_accepted: true,
            rejected: vec![Rejection { bundle_id: Fixed([3; 16]), reason: REJECT_STALE_EPOCH.into() }],
            ..Default::default()
        };
        assert_eq!(contradictory.stored(&pushed), vec![[1; 16], [2; 16]]);
    }

    #[test]
    fn a_request_over_any_list_limit_is_named_and_one_at_the_limit_is_not() {
        let at_limit = SyncRequest {
            push: vec![Blob(vec![]); MAX_PUSHES],
            refused_envelopes: vec![
                RefusedEnvelope {
                    document: Fixed([0; 17]),
                    epoch: 1,
                    sealer: Fixed([0; 16])
                };
                MAX_REFUSED_ENVELOPES
            ],
            ..Default::default()
        };
        assert_eq!(at_limit.too_many_items(), None);
        let over = SyncRequest { new_plans: vec![Fixed([0; 16]); MAX_NEW_PLANS + 1], ..at_limit.clone() };
        let too_many = over.too_many_items().unwrap();
        assert_eq!(
            (too_many.list, too_many.count, too_many.limit),
            ("new plans", MAX_NEW_PLANS + 1, MAX_NEW_PLANS)
        );
        let back: SyncRequest = decode(&encode(&at_limit), MAX_SYNC_REQUEST).unwrap();
        assert_eq!(back, at_limit);
        // Pushes without their author count with the others.
        let own = SyncRequest { push_own: vec![Blob(vec![])], ..at_limit };
        assert_eq!(own.too_many_items().map(|t| (t.list, t.count)), Some(("pushed bundles", MAX_PUSHES + 1)));
    }

    #[test]
    fn garbage_and_oversized_messages_are_a_typed_error() {
        assert_eq!(decode::<SyncRequest>(b"\xff\x00garbage", 100), Err(DecodeError));
        assert_eq!(decode::<SyncRequest>(&[0; 200], 100), Err(DecodeError));
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = decode::<SyncRequest>(&bytes, 1024);
            let _ = decode::<SyncResponse>(&bytes, 1024);
        }
    }
}
