//! What the server keeps, behind one object-safe trait ([`Storage`]). Its rules are written
//! once (`domain`) over the row-level traits of `backend`, which each database implements
//! (`sqlite`, the embedded default, and [`postgres`]); every backend answers the same
//! conformance suite
//! (`server/tests/storage_conformance.rs`).
//!
//! Nothing here can open a plan: bundles and key envelopes are stored as the opaque bytes the
//! devices sealed. A dump of the database shows ids, sizes, times and who may read what.
//!
//! The trait is synchronous. The server calls it from `spawn_blocking` or a writer thread, and
//! batches concurrent pushes into one [`Storage::push_batch`] call (group commit): one durable
//! transaction, one fsync, for however many devices pushed in the meantime. Times are
//! milliseconds since the epoch, always passed in by the caller, so storage has no clock.
//!
//! # The log and the cursor
//!
//! There is one log for the whole network: every pushed bundle gets the next number of one
//! global, strictly increasing sequence, and each document's log is the subsequence of its
//! rows. A device keeps one number, its cursor: the `head` of its last pull. So a pull asks
//! "everything I may read after N", for all documents at once, and costs index seeks per
//! readable document plus the rows that are actually new, never a walk over history.
//!
//! Granting access takes a number of the same sequence (it advances the head without adding a
//! bundle), stored as the participant's `granted_at_seq`. A pull treats a document whose grant
//! is newer than the cursor as new to the device and sends its history: the newest snapshot,
//! if any, and every change after the head that snapshot covers. If the grant merely recorded
//! the current head, a device that had already pulled up to that head would compare
//! `granted_at_seq > since`, see "not new", and never receive the history.
//!
//! Worked example. Ann's device A1, her laptop A2, Bob's new phone B1; one plan P, its
//! `basis` document:
//!
//! ```text
//! seq  event
//!   1  Ann registers P                              (Ann's granted_at_seq 1)
//!   2  A1 pushes changes  a
//!   3  A1 pushes changes  b
//!   4  A1 pushes snapshot s (covers_seq 3: A1 held everything of P/basis up to seq 3)
//!   5  A1 pushes changes  c
//!   6  Bob becomes a participant of P               (Bob's granted_at_seq 6; head is now 6)
//!   7  A1 pushes changes  d
//!
//! B1 pulls since 0:  Bob's grant 6 > 0, so P/basis is new to B1: its history is s and the
//!                    changes after 3 (c), delivered together at position 6; then d. s travels
//!                    with its witness b, A1's newest change up to 3 (see below).
//!                    → [s, c, d], witnesses [b], head 7, complete
//! same, but max_bytes fits s, its witness and c:
//!                    → [s, c], head 6, incomplete
//! same, but max_bytes fits only s and its witness: the page stops inside the block
//!                    → [s], head = a resume token, incomplete
//! B1 pulls with that token: the rest of the block after what s covers, then d
//!                    → [c, d], head 7, complete
//! B1 pulls since 6:  6 > 6 is false, so only what follows 6: → [d], head 7, complete
//! A1 pulls since 7:  nothing new, and its own bundles are never sent back → [], head 7
//! A2 pulls since 3:  Ann's grant 1 ≤ 3, so P/basis is not new to A2: the changes after 3,
//!                    not the snapshot of what it holds → [c, d], head 7, complete
//! ```
//!
//! (A1 pushed s because the server asked it to: a snapshot is stored only against an
//! outstanding request of its author, for its document, covering exactly the position the
//! request named; see [`Storage::request_snapshots`].)
//!
//! Rules of a pull, for each document the user may read:
//!
//! - **new** (`granted_at_seq > since`): the newest snapshot and every change after its
//!   `covers_seq` (without a snapshot: every change). Everything up to the grant is one block
//!   at the grant's position, sent document by document (in document order), each
//!   snapshot first and then its changes in log order.
//! - **known** (`granted_at_seq <= since`): the changes after `since`. Snapshots are not sent
//!   to a device that already follows the document: it holds the changes a snapshot covers,
//!   and sending every compaction to every device would multiply traffic by document size.
//!   But when a snapshot covers more than [`SNAPSHOT_SHORTCUT_CHANGES`] of the changes the
//!   device lacks, it gets that snapshot and the changes after its `covers_seq` instead. The
//!   snapshot's position is fixed by the snapshot itself (the change that is
//!   `SNAPSHOT_SHORTCUT_CHANGES + 1` back from `covers_seq`), so every page of one catch-up
//!   makes the same choice.
//! - never a bundle the pulling device authored: it holds them.
//!
//! Bundles come in order of position: a bundle's seq, except that a history block sits at its
//! grant's position and a shortcut snapshot at its anchor. So within one document a snapshot
//! comes before the changes that follow it, and changes keep log order. The device's key
//! envelopes take positions of the same sequence and travel in the same order, at most
//! [`PullRequest::max_envelopes`] per page.
//!
//! **Witnesses.** Every snapshot goes out with, for each device that wrote change bundles of
//! its document with seq ≤ its `covers_seq`, that device's newest such bundle (two index seeks
//! per author). A receiver checks that each author's changes in the snapshot are exactly those
//! up to its witness, so a writer cannot hide or add history in a snapshot.
//!
//! **Pages.** A page takes units in order — a bundle, a snapshot with its witnesses, an
//! envelope — while they fit `max_bytes`; the first unit always goes, so a page never exceeds
//! the budget except by one unit that alone is larger. A page that stops at a position
//! boundary is incomplete with `head` = the position of its last unit, so the next pull
//! continues exactly there. A page that stops inside a history block stores a
//! resume point (the block, the document it stopped in, and the last change of it sent, or
//! what its snapshot covers) and hands out its token as `head` (top bit set); the next pull
//! with that token sends the rest of the block and then what follows it. Every page of one
//! block sends the snapshots that were newest at its first page, so a snapshot stored
//! meanwhile cannot make a later page skip changes an earlier one did not send. A token
//! another device presents, or one the server does not know, starts from 0: redundant,
//! never missing. A plan whose grant moves while its block is under way (a policy or role
//! that gives a read) comes again from its new grant, as any regrant does. (One imprecision
//! is accepted: a page that ends on a shortcut snapshot, or at the end of a block whose
//! snapshot covers beyond the grant, leaves the cursor inside what the snapshot covers, so
//! changes it holds may follow on the next page; redundant, never missing.) A complete
//! page's `head` is the log head read in the same read transaction, so a push that commits
//! meanwhile is in the next pull, never skipped. This relies on positions becoming visible
//! in commit order: the head is one row that every writer updates (one writer in SQLite; a
//! row lock in PostgreSQL, where a free-running `SEQUENCE` would let seq 8 commit after a
//! reader saw seq 9).
//!
//! **History requests.** Beside the pull a device may ask for documents' change logs after a
//! position ([`HistoryRequest`]), to rebuild a document whose snapshot it refused. Each
//! readable document gets one page: change bundles only, the device's own included, in seq
//! order, from what the pull left of the budget (the pull goes first); `through` is the last
//! seq sent (or the request's `after`), `complete` says nothing followed. A document the
//! device may not read gets no page at all.
//!
//! # Who may read what, and under which key
//!
//! Participation (`participants`) decides which plans a user's devices see; the stored,
//! root-signed sharing policy decides which of a plan's compartments, by the user's role
//! (the role its devices' certificates name). Every read of "readable documents" joins the
//! two, so without a policy nothing is readable. Each document's key has epochs; the first
//! signed commitment stored for a (document, epoch) wins, and the highest committed epoch is
//! the current one. Taking access away (a revocation, an unassignment, a narrower policy)
//! deletes the envelopes that carried the key and queues the document for a new epoch, in the
//! same transaction; an administrator's [`Storage::complete_rotation`] settles it.

mod backend;
mod domain;
pub mod postgres;
mod pull;
pub mod sqlite;

use eenplan_protocol::policy::Policy;
use eenplan_protocol::{Bundle, BundleKind, DocumentId};

pub use domain::{AnswerStart, SessionAsk};
pub use postgres::PostgresStorage;
pub use sqlite::SqliteStorage;

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A plan's id, as in the bundle header.
pub type PlanId = [u8; 16];

/// A plan role that [`Storage::register_plan`] gives the plan's creator.
pub const CREATOR_PLAN_ROLE: &str = "regisseur";

/// A device that already follows a document gets its snapshot instead of the changes when the
/// snapshot replaces more than this many of them. Below it, sending the changes is cheaper
/// than a whole document, and it keeps pulls independent of snapshot uploads.
pub const SNAPSHOT_SHORTCUT_CHANGES: u64 = 500;

/// How long a request for a snapshot stays valid. The asked device answers in its next round,
/// seconds later; an hour leaves room for a slow link and keeps the table small.
pub const SNAPSHOT_REQUEST_TTL_MS: i64 = 60 * 60 * 1000;
/// How long a device's first ask for a document's snapshot keeps other devices from being
/// asked for it. The asked device answers in its next round, seconds later; one that never
/// does (its snapshot too large to send, or in bad faith) holds the others off this long,
/// however often it is asked again, not for as long as its request is renewed.
pub const SNAPSHOT_HOLD_OFF_MS: i64 = 10 * 60 * 1000;
/// The most outstanding snapshot requests one device may have: no more than a device weighs
/// of one answer's `compact` list.
pub const MAX_SNAPSHOT_REQUESTS_PER_DEVICE: usize = eenplan_protocol::sync::MAX_COMPACT_PER_ANSWER;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(pub [u8; 16]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub i64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgId(pub i64);

/// The network's trust anchors, set once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRecord {
    pub root_public: [u8; 32],
    pub escrow_public: Vec<u8>,
    /// The root key's signature over the escrow key, so devices can check what they seal to.
    pub escrow_signature: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRecord {
    pub admin_public: [u8; 32],
    /// Opaque to storage: the root-signed admin certificate.
    pub certificate: Vec<u8>,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    /// How long a device of this organisation may work offline before it must sync.
    pub lease_hours: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub org: OrgId,
    pub name: String,
    pub role: String,
}

/// What a device presents when it claims an enrolment code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    pub device_id: DeviceId,
    pub signing_public: [u8; 32],
    pub agreement_public: Vec<u8>,
    /// The device's MAC over its keys under the code's MAC key (`eenplan_protocol::api::key_mac`).
    /// Opaque to the server, which cannot check or forge it; the administrator checks it.
    pub key_mac: Vec<u8>,
    /// What the device calls itself, its signature checked by the caller.
    pub name: Option<StoredName>,
}

/// A device's name and platform with the device's own signature over them
/// (`eenplan_protocol::device_name`), kept so administrators can check it themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredName {
    pub label: String,
    /// `Platform::as_str`.
    pub platform: String,
    pub signature: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceState {
    /// Enrolled with a code, waiting for an administrator to sign its certificate.
    Pending,
    Active,
    /// Refused for good; its key envelopes are gone.
    Revoked,
}

impl DeviceState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Pending => "pending",
            DeviceState::Active => "active",
            DeviceState::Revoked => "revoked",
        }
    }

    pub fn parse(text: &str) -> Option<DeviceState> {
        match text {
            "pending" => Some(DeviceState::Pending),
            "active" => Some(DeviceState::Active),
            "revoked" => Some(DeviceState::Revoked),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub device_id: DeviceId,
    pub user: UserId,
    pub signing_public: [u8; 32],
    pub agreement_public: Vec<u8>,
    /// What the device sent as [`NewDevice::key_mac`]; empty for devices enrolled before
    /// schema 3.
    pub key_mac: Vec<u8>,
    /// The admin-signed device certificate, once activated.
    pub certificate: Option<Vec<u8>>,
    pub state: DeviceState,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// Why an administrator revoked it (`lost`, `stolen`, `replaced`, `left`).
    pub revocation_reason: Option<String>,
    /// When the device reported, with a signed wipe report, that it erased itself.
    pub wiped_at: Option<i64>,
    /// When (server time) an administrator last re-certified it (a role change); 0 if never.
    /// Sessions opened before it are refused.
    pub certified_at: i64,
    /// When (server time) it last opened a session; `None` if never since the server kept
    /// track. With its organisation's lease it says when the device locks itself.
    pub last_session_at: Option<i64>,
    /// The hash of the nonce its newest self-wipe report carries, as registered at its last
    /// session that registered one (`eenplan_protocol::wipe::wipe_nonce_hash`).
    pub wipe_nonce_hash: Option<[u8; 32]>,
    /// What the device last said it is called.
    pub name: Option<StoredName>,
    /// When (server time) a request with its session token was last recorded, at most once a
    /// minute (`crate::last_seen`); the device was last seen at the later of this and
    /// `last_session_at`.
    pub last_seen_at: Option<i64>,
}

impl AsRef<DeviceRecord> for DeviceRecord {
    fn as_ref(&self) -> &DeviceRecord {
        self
    }
}

impl DeviceRecord {
    /// When the server last saw the device: a session or a recorded request.
    pub fn last_seen(&self) -> Option<i64> {
        self.last_session_at.max(self.last_seen_at)
    }
}

/// What a wipe report was judged by; [`Storage::record_wipe`] stores the report only while
/// the device still stands so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WipeGuard {
    pub state: DeviceState,
    pub last_session_at: Option<i64>,
    pub wipe_nonce_hash: Option<[u8; 32]>,
}

impl WipeGuard {
    pub fn of(device: &DeviceRecord) -> WipeGuard {
        WipeGuard {
            state: device.state,
            last_session_at: device.last_session_at,
            wipe_nonce_hash: device.wipe_nonce_hash,
        }
    }
}

/// What a session changed besides its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRecorded {
    /// The device had been reported wiped; a session with its own key shows it is not, and the
    /// report was forgotten.
    pub wipe_report_cleared: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub user: UserId,
    pub plan_role: String,
    /// The log position of the grant (see the module docs): a cursor below it has not seen
    /// this plan yet.
    pub granted_at_seq: u64,
}

/// A bundle to append. The HTTP layer has checked its framing, signature and the author's
/// right to write the document; storage checks nothing about the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBundle {
    pub document: DocumentId,
    pub bundle_id: [u8; 16],
    pub author: DeviceId,
    pub epoch: u32,
    pub kind: BundleKind,
    /// For snapshots: the log head whose changes of this document the snapshot holds.
    /// Ignored for changes.
    pub covers_seq: Option<u64>,
    pub bytes: Vec<u8>,
    pub received_at: i64,
}

impl NewBundle {
    /// The row for a decoded wire bundle; the header fields come from the bundle itself.
    pub fn from_wire(bundle: Bundle, received_at: i64) -> NewBundle {
        let header = bundle.header;
        let covers_seq = header.kind.covers();
        NewBundle {
            document: header.document,
            bundle_id: header.bundle_id,
            author: DeviceId(header.author),
            epoch: header.epoch,
            kind: header.kind,
            covers_seq,
            bytes: bundle.into_bytes(),
            received_at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Appended {
        seq: u64,
    },
    /// The bundle id was already in the log (a retried push); nothing was stored.
    Duplicate {
        seq: u64,
    },
    /// Refused inside the writing transaction because the document's key moved on (or is
    /// moving) since the request was checked: a revocation that commits between the check
    /// and the write must still keep the old key's holders from reading what is written
    /// after it. `reason` is a [`eenplan_protocol::sync`] rejection code the device retries.
    Refused {
        reason: &'static str,
    },
}

impl PushOutcome {
    pub fn seq(self) -> u64 {
        match self {
            PushOutcome::Appended { seq } | PushOutcome::Duplicate { seq } => seq,
            PushOutcome::Refused { .. } => 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBundle {
    pub seq: u64,
    pub document: DocumentId,
    pub bundle_id: [u8; 16],
    pub author: DeviceId,
    pub epoch: u32,
    pub kind: BundleKind,
    /// Set for snapshots only.
    pub covers_seq: Option<u64>,
    pub bytes: Vec<u8>,
    pub received_at: i64,
}

/// "Send me the change bundles of `document` after log position `after`", whatever
/// snapshots exist (a device that refused a snapshot rebuilds the document from its log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRequest {
    pub document: DocumentId,
    pub after: u64,
}

/// What one pull is asked for; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub user: UserId,
    pub device: DeviceId,
    /// The device's cursor: the `head` of its last page, a log position or a resume token.
    pub since: u64,
    /// The page's budget: bundle, witness and envelope bytes together. One unit (a bundle,
    /// a snapshot with its witnesses, an envelope) always goes out, whatever its size.
    pub max_bytes: usize,
    /// The most key envelopes in the page.
    pub max_envelopes: usize,
    /// The device's mailbox cursor: envelopes stored at a position after it are due. They go
    /// first, ahead of the bundles, each once.
    pub envelopes_after: u64,
    /// Change logs asked for beside the pull, served from what the pull left of the budget.
    pub history: Vec<HistoryRequest>,
}

impl PullRequest {
    /// A pull without history requests, with the protocol's envelope limit.
    pub fn new(user: UserId, device: DeviceId, since: u64, max_bytes: usize) -> PullRequest {
        PullRequest {
            user,
            device,
            since,
            max_bytes,
            max_envelopes: eenplan_protocol::sync::MAX_ENVELOPES_PER_ANSWER,
            // A caller that keeps no mailbox cursor of its own takes the log cursor for it.
            envelopes_after: eenplan_protocol::sync::mailbox_cursor_of_log_cursor(since),
            history: Vec::new(),
        }
    }
}

/// One page of a requested change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryBatch {
    pub document: DocumentId,
    /// Change bundles with seq > the request's `after`, in seq order, the device's own
    /// included.
    pub bundles: Vec<StoredBundle>,
    /// The seq of the last bundle in `bundles`, or the request's `after` when none fitted.
    pub through: u64,
    /// True when the document had no change bundle after `through` when the page was read.
    pub complete: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullBatch {
    pub bundles: Vec<StoredBundle>,
    /// For each snapshot in `bundles`, in the same order: for every device that wrote change
    /// bundles of its document with seq ≤ its `covers_seq`, that device's newest such bundle
    /// (devices in id order).
    pub witnesses: Vec<StoredBundle>,
    /// The device's key envelopes stored after the request's `envelopes_after`, in position
    /// order, ahead of the bundles.
    pub envelopes: Vec<Envelope>,
    /// The mailbox cursor for the next pull: the position of the last envelope sent, or the
    /// request's own.
    pub envelopes_through: u64,
    /// One page per history request the device may read (the first of duplicates), in the
    /// requests' order; documents it may not read get none.
    pub history: Vec<HistoryBatch>,
    /// The cursor for the next pull: a log position, or a resume token
    /// ([`eenplan_protocol::sync::is_resume_token`]) when the page stopped inside a history
    /// block. Always the log head when `complete`.
    pub head: u64,
    /// False when more of the pull is due: pull again at once with `head`. Says nothing about
    /// `history`, whose pages say it themselves.
    pub complete: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocStats {
    /// All bundles of the document, snapshots included.
    pub bundles: u64,
    /// Change bundles after the newest snapshot's `covers_seq` (all of them without one):
    /// what a new reader would have to apply.
    pub bundles_since_snapshot: u64,
    /// The bytes of those change bundles.
    pub bytes_since_snapshot: u64,
    pub latest_snapshot_covers: Option<u64>,
    /// The size of the newest snapshot bundle.
    pub latest_snapshot_bytes: Option<u64>,
}

impl DocStats {
    /// Whether a new reader would fetch the log's tail more cheaply as a fresh snapshot: the
    /// tail holds more than [`COMPACT_AFTER_BUNDLES`] bundles, or more bytes than half the
    /// newest snapshot (and at least [`COMPACT_AFTER_BYTES`]). Changes weigh about ten times
    /// the compressed document they make, so a reader gets about 1.5 times the document at
    /// most, and a writer uploads a snapshot at most once per half a snapshot of changes.
    pub fn wants_snapshot(&self) -> bool {
        self.tail().wants_snapshot()
    }

    /// What [`DocStats::wants_snapshot`] judges by.
    pub fn tail(&self) -> TailStats {
        TailStats {
            bundles_since_snapshot: self.bundles_since_snapshot,
            bytes_since_snapshot: self.bytes_since_snapshot,
            latest_snapshot_bytes: self.latest_snapshot_bytes,
        }
    }
}

/// How often a server process served what it remembers and how often it read it again
/// ([`Storage::remembered_reads`]): the users' accesses (`domain::access`), the devices'
/// missing-key lists and held keys (`domain::key_shares`). A low share served means the
/// versions they are stamped with move often (see ARCHITECTURE, invariants 44 and 46). And of
/// the reads a sync answer asks for ahead with its facts (the device's mailbox, the documents
/// with news, the snapshot candidates' tails), how often the answer took them (`served`) and
/// how often it read again itself: a guess from a remembered access or held keys that no
/// longer held, or no guess.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RememberedReads {
    pub accesses_served: u64,
    pub accesses_read: u64,
    pub missing_keys_served: u64,
    pub missing_keys_read: u64,
    pub held_keys_served: u64,
    pub held_keys_read: u64,
    pub mailbox_ahead_served: u64,
    pub mailbox_ahead_read: u64,
    pub news_ahead_served: u64,
    pub news_ahead_read: u64,
    pub tails_ahead_served: u64,
    pub tails_ahead_read: u64,
    /// Sync answers tried as one statement that sufficed.
    pub one_statement_answers: u64,
    /// Sync answers tried as one statement that asked for a second and ran again in a
    /// transaction.
    pub one_statement_answers_again: u64,
    /// Statements that read the sessions of two or more syncs that arrived together
    /// (PostgreSQL), failed ones too.
    pub session_group_reads: u64,
    /// Sessions read in those statements.
    pub sessions_read_in_groups: u64,
    /// Group reads of sessions that failed; their syncs read their own.
    pub session_group_read_failures: u64,
}

/// A document a device holds a key of, with what a sync answer weighs it by for a snapshot
/// ([`backend::ReadRows::held_tails`]; the answer reads the same from the remembered held
/// keys and [`backend::ReadRows::document_tails`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldTail {
    pub document: DocumentId,
    /// Whether the device holds the key of the document's current epoch: a key of an older
    /// epoch cannot seal a snapshot the current readers open.
    pub current_key_held: bool,
    pub tail: TailStats,
}

/// A document's log after its newest snapshot: the part of [`DocStats`] that decides whether
/// a snapshot is due, which a backend reads without counting the whole log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailStats {
    pub bundles_since_snapshot: u64,
    pub bytes_since_snapshot: u64,
    pub latest_snapshot_bytes: Option<u64>,
}

impl TailStats {
    /// Whether a new reader would fetch the log's tail more cheaply as a fresh snapshot; see
    /// [`DocStats::wants_snapshot`].
    pub fn wants_snapshot(&self) -> bool {
        // The snapshot's writer chose its size: a padded one must not switch compaction off.
        let reference = self.latest_snapshot_bytes.unwrap_or(0).min(COMPACT_REFERENCE_CAP);
        let by_bytes = (reference / 2).max(COMPACT_AFTER_BYTES);
        self.bundles_since_snapshot > COMPACT_AFTER_BUNDLES
            || (self.bundles_since_snapshot > 1 && self.bytes_since_snapshot > by_bytes)
    }
}

/// A document whose log holds more change bundles than this after its newest snapshot is
/// offered for compaction.
pub const COMPACT_AFTER_BUNDLES: u64 = 1000;
/// ... or more change bytes than this and than half its newest snapshot.
pub const COMPACT_AFTER_BYTES: u64 = 16 * 1024;
/// The largest snapshot size the byte rule goes by (a writer could pad one).
pub const COMPACT_REFERENCE_CAP: u64 = 4 * 1024 * 1024;

/// A document's epoch key sealed to one device (HPKE); opaque to storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub recipient: DeviceId,
    pub document: DocumentId,
    pub epoch: u32,
    pub bytes: Vec<u8>,
}

/// What became of one envelope a device sealed ([`Storage::put_envelopes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeOutcome {
    Stored,
    /// The recipient has an envelope for that (document, epoch) already: the first stays, so
    /// a reader cannot replace another device's key with one of its own or with garbage.
    Exists,
    /// The recipient refused an envelope of this sealer for that (document, epoch) before.
    SealerRefused,
    /// The recipient is unknown or revoked.
    NoRecipient,
}

/// A recipient's complaint about an envelope it could not use ([`Storage::refuse_envelopes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeRefusal {
    pub document: DocumentId,
    pub epoch: u32,
    /// Who sealed it, by the envelope's signed trailer.
    pub sealer: DeviceId,
}

/// What became of a key commitment a device made ([`Storage::put_commitment`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitmentOutcome {
    Stored,
    /// Another commitment for the (document, epoch) came first.
    Exists,
    /// It names another policy version than the current one.
    OtherPolicy {
        current: u32,
    },
    /// The minter's user may not (or no longer) read the document.
    NoAccess,
}

/// The network's sharing policy as stored: the root-signed bytes that devices receive and
/// check themselves, and the table they carry. The HTTP layer verifies the signature before it
/// stores anything; storage materialises the table as rows so that queries can join a user's
/// role to the compartments it may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    /// `eenplan_protocol::policy::SignedPolicy` bytes.
    pub signed: Vec<u8>,
    /// The verified table inside `signed`; shared, because every sync reads it twice and
    /// a deep copy of its maps was 3.6% of the server's CPU per push (`load_bench` profile).
    pub policy: std::sync::Arc<Policy>,
}

impl PolicyRecord {
    /// The record of the policy as a backend stored it: verified when it was stored, read
    /// back only for its table. Every sync reads the policy, and decoding its table was 7% of
    /// the server's CPU per push (`load_bench` profile, 2026-12-05), so the last one decoded
    /// is kept, by its exact signed bytes: other bytes are decoded afresh.
    pub(crate) fn from_stored(signed: Vec<u8>) -> Result<PolicyRecord> {
        static LAST: std::sync::Mutex<Option<PolicyRecord>> = std::sync::Mutex::new(None);
        let mut last = LAST.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(known) = last.as_ref().filter(|known| known.signed == signed) {
            return Ok(PolicyRecord { policy: known.policy.clone(), signed });
        }
        let body = eenplan_protocol::policy::SignedPolicy::from_bytes(&signed)
            .map_err(|e| StorageError::Corrupt(format!("the stored policy: {e}")))?
            .body;
        let policy: Policy = eenplan_protocol::sync::decode(&body, eenplan_protocol::policy::MAX_POLICY_LEN)
            .map_err(|e| StorageError::Corrupt(format!("the stored policy's table: {e}")))?;
        let record = PolicyRecord { signed, policy: std::sync::Arc::new(policy) };
        *last = Some(record.clone());
        Ok(record)
    }
}

/// The signed commitment to one document's key for one epoch (`eenplan_protocol::epoch`).
/// Opaque to storage apart from who made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitmentRecord {
    pub document: DocumentId,
    pub epoch: u32,
    /// The device that made the key (epoch 1); `None` when an administrator made it.
    pub minter_device: Option<DeviceId>,
    /// `eenplan_protocol::epoch::SignedCommitment` bytes.
    pub signed: Vec<u8>,
    pub stored_at: i64,
}

/// What an administrator's revocation leaves behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// `lost`, `stolen`, `replaced` or `left`.
    pub reason: String,
    /// The administrator's signed wipe order (`eenplan_protocol::wipe::Signed` bytes), which
    /// the revoked device fetches without a session.
    pub wipe_order: Vec<u8>,
}

/// One version of the administrators' signed revocation list
/// (`eenplan_protocol::revocation`): the HTTP layer verified it and that it extends the
/// version before; storage keeps the bytes and the devices it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationListRecord {
    pub version: u32,
    /// `eenplan_protocol::revocation::SignedRevocationList` bytes.
    pub signed: Vec<u8>,
    /// Every device the list names.
    pub devices: Vec<DeviceId>,
}

/// A device that may read a document, and the epochs of it for which it holds an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader {
    pub device: DeviceRecord,
    pub held_epochs: Vec<u32>,
}

/// A document waiting for a new key epoch, with everything an administrator needs to make it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationTask {
    pub document: DocumentId,
    pub current_epoch: u32,
    /// When the oldest pending reason to rotate it was queued.
    pub queued_at: i64,
    /// Every active device whose user takes part in the plan and whose role may read the
    /// document: those that must receive the new key.
    pub readers: Vec<Reader>,
}

/// An administrator's new epoch for a document: its commitment and the envelopes of the new
/// key (and of older keys readers lacked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedRotation {
    pub document: DocumentId,
    pub new_epoch: u32,
    /// `eenplan_protocol::epoch::SignedCommitment` bytes, by an administrator or (in a plan
    /// with a membership chain) by `minter_device`.
    pub commitment: Vec<u8>,
    /// The device that made the epoch; `None` for an administrator. Checked in the writing
    /// transaction: active, and its user reads the document.
    pub minter_device: Option<DeviceId>,
    pub envelopes: Vec<Envelope>,
    pub now: i64,
}

/// A plan registered with the first entry of its membership chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharteredPlan {
    pub plan: PlanId,
    pub creator: UserId,
    pub created_by: DeviceId,
    /// The creator's certified role: their plan role.
    pub creator_role: String,
    /// `eenplan_protocol::membership::SignedEntry` bytes (seq 1).
    pub charter: Vec<u8>,
    /// The verified `Roster` (CBOR) after it.
    pub roster: Vec<u8>,
    pub now: i64,
}

/// The next entry of a plan's membership chain and what it changes, as the rules above
/// storage worked out ([`crate::membership`]); the backend only writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipUpdate {
    pub plan: PlanId,
    pub seq: u32,
    /// `SignedEntry` bytes.
    pub signed: Vec<u8>,
    /// The verified `Roster` (CBOR) after the entry.
    pub roster: Vec<u8>,
    pub level: String,
    /// Users who take part from now on, with their plan role.
    pub add: Vec<(UserId, String)>,
    /// Users who no longer take part: their grants and envelopes go.
    pub remove: Vec<UserId>,
    /// Participants who read more from now on (a new level): a new grant position, so
    /// their devices receive the newly readable documents from their beginning.
    pub regrant: Vec<UserId>,
    /// Documents whose readers lost someone: each moves to a new epoch.
    pub rotate: Vec<DocumentId>,
    /// The device whose request this is: checked active in the writing transaction.
    pub by_device: Option<DeviceId>,
    /// The closing entry's time, when this entry closes the plan.
    pub closed_at: Option<i64>,
    /// When this entry erases a member (AVG): the base that replaces the document.
    pub erasure: Option<MemberErasure>,
    pub now: i64,
}

/// What an erasure entry writes with it, in the same transaction: the new epoch's commitment
/// and envelopes, the base at a new log position; and what it deletes: every bundle,
/// snapshot, envelope (escrow's too) and commitment of the document's older epochs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberErasure {
    pub document: DocumentId,
    pub epoch: u32,
    /// The log position the base holds everything up to: a bundle of the document after it
    /// is a [`StorageError::Conflict`] (the regisseur's device syncs and tries again).
    pub covers: u64,
    /// The base, stored as a snapshot covering `covers`.
    pub base: NewBundle,
    pub commitment: CommitmentRecord,
    pub envelopes: Vec<Envelope>,
}

/// What an erasure deleted, for the answer and the server's log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberErased {
    pub bundles: u64,
    pub envelopes: u64,
    pub escrow_envelopes: u64,
}

/// What erasing a plan removed ([`Storage::erase_plan`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erasure {
    /// When the plan was erased: now, or the tombstone's time for a plan erased before.
    pub erased_at: i64,
    pub envelopes: u64,
    pub escrow_envelopes: u64,
    pub bundles: u64,
    /// The plan had been erased before; nothing was left to remove.
    pub already: bool,
}

/// Membership entries for one device, after its cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipPage {
    /// `SignedEntry` bytes, by plan and position; a plan's chain is never split.
    pub entries: Vec<Vec<u8>>,
    /// The cursor the device sends next.
    pub through: u64,
    /// Whether every entry up to the log head (as the page was read) is in the page.
    pub complete: bool,
}

/// What a sync reads before anything else ([`Storage::sync_session`]), as of one snapshot:
/// the device its session names, who the device's user is, and what the user's access is
/// stamped with.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncSession {
    pub device: DeviceRecord,
    /// The device's user with its organisation's name (empty when it has none); `None` only
    /// when the user is missing, which the schema's foreign key rules out.
    pub user: Option<(User, String)>,
    /// What [`Storage::session_access`] serves the user's access by.
    pub stamp: SessionStamp,
}

impl AsRef<DeviceRecord> for SyncSession {
    fn as_ref(&self) -> &DeviceRecord {
        &self.device
    }
}

/// The user's access stamp and the current epochs of the documents asked for, read with a
/// sync's session ([`Storage::sync_session`]); what the user's remembered access is served
/// by ([`Storage::session_access`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionStamp {
    pub(crate) user: UserId,
    /// `None` when the user is missing.
    pub(crate) read: Option<backend::StampRead>,
    pub(crate) documents: Vec<DocumentId>,
}

impl SessionStamp {
    /// The documents whose epochs were read with the session, in the order asked.
    pub fn documents(&self) -> &[DocumentId] {
        &self.documents
    }
}

/// What a user may do, as of one commit ([`Storage::user_access`]).
#[derive(Debug, Clone)]
pub struct UserAccess {
    pub user: User,
    /// The name of the user's organisation; empty when it has none.
    pub organisation: String,
    /// `None` only on a database from before policies; shared with every access read under
    /// the same policy.
    pub policy: Option<std::sync::Arc<PolicyRecord>>,
    /// The plans the user takes part in, with their escalation level.
    pub plan_levels: Vec<(PlanId, String)>,
    /// The documents the user may read, as [`Storage::readable_documents`] reports them,
    /// without their granted positions, which a push's checks do not read (the remembered
    /// core keeps them for the sync answers).
    pub readable: Vec<DocumentId>,
    /// The current epoch ([`Storage::current_epoch`]) of each document asked for that the
    /// user reads, in the order asked.
    pub epochs: Vec<(DocumentId, u32)>,
}

/// What a sync answer asks of the store ([`Storage::answer`]), beside the pull itself.
#[derive(Debug, Clone)]
pub struct AnswerQuery {
    /// The pull; its `max_bytes` is the whole page's, of which the membership entries take
    /// their share first.
    pub pull: PullRequest,
    /// The device's membership cursor.
    pub membership_after: u64,
    /// At most this many membership entries and bytes (whole chains are never split).
    pub membership_limit: (usize, usize),
    /// The version of the sharing policy the device holds; a newer one is read.
    pub policy_after: u32,
    /// The version of its organisation's audit key the device holds; a newer one is read.
    pub audit_key_after: u32,
    /// The server's clock (ms): which snapshot requests are still outstanding.
    pub now: i64,
}

/// Everything a sync answer reads, as of one commit ([`Storage::answer`]): the pull page
/// and each fact the answer is built from agree with each other.
#[derive(Debug, PartialEq, Eq)]
pub struct AnswerReads {
    pub membership: MembershipPage,
    /// The pull page; `head` is a resume token when it stopped inside a history block.
    pub batch: PullBatch,
    /// The signed commitment of each (document, epoch) among the page's envelopes, once each.
    pub commitments: Vec<Vec<u8>>,
    /// The policy in force, when newer than the device's.
    pub policy: Option<Vec<u8>>,
    /// For each key the device holds (every envelope it ever got and the keys it made) of a
    /// document its user may read now, the devices that may read the document and have no envelope of
    /// it: (document, epoch, device), in no particular order.
    pub missing_envelopes: Vec<(DocumentId, u32, DeviceId)>,
    /// When the pull and membership pages are complete: the documents it holds a key of, at their
    /// current epoch, whose log tail a new reader would fetch more cheaply as a snapshot
    /// ([`DocStats::wants_snapshot`]), less those beyond the device's bound of outstanding
    /// requests and those another device was first asked for less than
    /// [`SNAPSHOT_HOLD_OFF_MS`] ago. Empty otherwise.
    pub snapshot_candidates: Vec<DocumentId>,
    /// Documents of the user's plans that have no key yet.
    pub unminted: Vec<DocumentId>,
    /// Chartered rotations the user's devices are asked to make: (document, next epoch).
    pub rotations: Vec<(DocumentId, u32)>,
    /// How far the device's audit uploads are stored.
    pub audit_through: u64,
    /// The newest audit key of the device's organisation, when newer than the device's.
    pub audit_key: Option<Vec<u8>>,
}

/// A membership entry as a backend reads it for a device: (plan, position, signed entry).
pub type PositionedEntry = ([u8; 16], u64, Vec<u8>);

/// A page of membership entries from `(plan, position, entry)` rows in position order: whole
/// groups (one plan at one position) only, at most `limit` entries and `max_bytes` unless
/// the first group alone is larger. `through` is the log `head` when every row fits, else
/// just before the first group left out.
pub fn whole_chains_page(
    rows: Vec<PositionedEntry>,
    after: u64,
    head: u64,
    (limit, max_bytes): (usize, usize),
) -> MembershipPage {
    let mut bytes = 0;
    let mut page = MembershipPage { entries: Vec::new(), through: head.max(after), complete: true };
    let mut rows = rows.into_iter().peekable();
    while let Some((plan, position, signed)) = rows.next() {
        let mut group = vec![signed];
        while let Some((_, _, next)) = rows.next_if(|(p, q, _)| *p == plan && *q == position) {
            group.push(next);
        }
        let group_bytes: usize = group.iter().map(Vec::len).sum();
        if !page.entries.is_empty()
            && (page.entries.len() + group.len() > limit || bytes + group_bytes > max_bytes)
        {
            page.through = position.saturating_sub(1);
            page.complete = false;
            return page;
        }
        bytes += group_bytes;
        page.entries.extend(group);
    }
    page
}

/// An access-log upload to keep (DESIGN §8): a device's run of consecutive events, sealed to
/// its organisation's audit key, so storage sees its header and opaque bytes only. The HTTP
/// layer decoded it and checked the device's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditUpload {
    pub device: DeviceId,
    /// The organisation of the device's user: whose audit key opens it.
    pub org: OrgId,
    pub first: u64,
    pub last: u64,
    /// The hash of event `last`.
    pub head: [u8; 32],
    pub key_version: u32,
    /// `eenplan_protocol::audit::AuditUpload` bytes.
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`: the same upload sent again is stored once.
    pub digest: [u8; 32],
    pub received_at: i64,
}

/// An access-log upload as kept, with its place in the one global order of uploads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAuditUpload {
    /// Strictly increasing in the order uploads were stored: the paging cursor.
    pub id: u64,
    pub device: DeviceId,
    pub org: OrgId,
    pub first: u64,
    pub last: u64,
    pub head: [u8; 32],
    pub key_version: u32,
    pub bytes: Vec<u8>,
    pub received_at: i64,
}

/// One version of an organisation's root-signed audit key
/// (`eenplan_protocol::audit::SignedAuditKey` bytes); the HTTP layer verified the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditKeyRecord {
    pub org: OrgId,
    pub version: u32,
    pub signed: Vec<u8>,
    pub stored_at: i64,
}

/// One event of the server's own access log: `eenplan_protocol::audit::SignedEvent` bytes
/// at its position in the server's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEventRecord {
    pub seq: u64,
    pub signed: Vec<u8>,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    #[error("the network is already initialised")]
    AlreadyInitialised,
    #[error("not found")]
    NotFound,
    #[error("expired")]
    Expired,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not allowed in this state: {0}")]
    InvalidState(String),
    #[error("the database is damaged: {0}")]
    Corrupt(String),
    #[error("the database is busy")]
    Busy,
    /// The device a write acts for is revoked (or otherwise not active) by the time the
    /// write's transaction runs: a request authenticated before a revocation writes nothing
    /// after it.
    #[error("the device is not active")]
    DeviceNotActive,
    /// Any other database error. The message is for the server's log, never for a client.
    #[error("database error: {0}")]
    Backend(String),
}

/// The server's storage. Every method is one transaction; writes are durable when they
/// return.
pub trait Storage: Send + Sync {
    // The network.

    fn network(&self) -> Result<Option<NetworkRecord>>;
    /// Sets the trust anchors, the first administrator and the first sharing policy, together,
    /// so the network is never without a policy; [`StorageError::AlreadyInitialised`] if it
    /// has been done before.
    fn init_network(
        &self,
        network: &NetworkRecord,
        first_admin: &AdminRecord,
        policy: &PolicyRecord,
    ) -> Result<()>;
    /// [`StorageError::InvalidState`] before `init_network`; [`StorageError::Conflict`] for a
    /// key that is already an administrator.
    fn add_admin(&self, admin: &AdminRecord) -> Result<()>;
    fn admin(&self, public: &[u8; 32]) -> Result<Option<AdminRecord>>;
    /// The key the server signs its stateless session tokens with: random on the first call,
    /// the same ever after.
    fn server_secret(&self) -> Result<[u8; 32]>;
    /// Records that a signed administrator request with `signature` was taken; it is kept
    /// until `stale_after` (ms), after which its time no longer passes the clock check
    /// anyway. False if it was recorded before: a replay, to this process or another one on
    /// the same database, or from before a restart. Forgets the signatures stale at `now`.
    fn remember_admin_signature(&self, signature: &[u8; 64], stale_after: i64, now: i64) -> Result<bool>;

    // Organisations and users.

    /// [`StorageError::Conflict`] if the name is taken.
    fn add_org(&self, name: &str, lease_hours: u32) -> Result<OrgId>;
    fn orgs(&self) -> Result<Vec<Org>>;
    /// One organisation by id (a device's, per request: not every organisation).
    fn org(&self, org: OrgId) -> Result<Option<Org>>;
    fn org_by_name(&self, name: &str) -> Result<Option<Org>>;
    /// [`StorageError::NotFound`] for an unknown organisation, [`StorageError::Conflict`] if
    /// the organisation already has a user with this name.
    fn add_user(&self, org: OrgId, name: &str, role: &str) -> Result<UserId>;
    fn users(&self) -> Result<Vec<User>>;
    fn user(&self, id: UserId) -> Result<Option<User>>;
    /// The user with its organisation's name (empty when it has none), in one read: who a
    /// device's request is, as the server's log names it.
    fn user_with_organisation(&self, id: UserId) -> Result<Option<(User, String)>>;
    /// Users of every organisation with this name.
    fn user_by_name(&self, name: &str) -> Result<Vec<User>>;

    // Enrolment and devices.

    /// Stores the id of a one-time enrolment code for `user` (derived from the code's secret,
    /// which the server never learns). [`StorageError::NotFound`] for an unknown user,
    /// [`StorageError::Conflict`] for an id already stored.
    fn create_enrolment(&self, code_id: &[u8; 32], user: UserId, expires_at: i64) -> Result<()>;
    /// Uses the code once: creates the device as pending and marks the code used, together.
    /// [`StorageError::NotFound`] for an unknown or used code (indistinguishable on purpose),
    /// [`StorageError::Expired`] at or after its expiry, [`StorageError::Conflict`] for a
    /// device id that exists.
    fn claim_enrolment(&self, code_id: &[u8; 32], device: &NewDevice, now: i64) -> Result<UserId>;
    fn devices(&self) -> Result<Vec<DeviceRecord>>;
    /// The devices of one user, oldest first.
    fn devices_of_user(&self, user: UserId) -> Result<Vec<DeviceRecord>>;
    fn device(&self, id: DeviceId) -> Result<Option<DeviceRecord>>;
    fn pending_devices(&self) -> Result<Vec<DeviceRecord>>;
    fn active_devices_of_user(&self, user: UserId) -> Result<Vec<DeviceRecord>>;
    /// Pending → active with its certificate; [`StorageError::InvalidState`] from any other
    /// state.
    fn activate_device(&self, id: DeviceId, certificate: &[u8]) -> Result<()>;
    /// In one transaction: → revoked (with the time and reason), its key envelopes deleted,
    /// the wipe order stored, and a rotation queued for every document its user may read that
    /// has a key (epoch ≥ 1), since the device holds that key. Returns the number of documents
    /// waiting for a new epoch. Revoking a revoked device changes nothing and returns that
    /// number again. [`StorageError::NotFound`] for an unknown device.
    fn revoke_device(&self, id: DeviceId, revocation: &Revocation, now: i64) -> Result<u64>;
    /// In one transaction, a user's new role: `certificates` (device, new certificate)
    /// replace those of the user's active devices, whose earlier ones are kept, and `now`
    /// becomes their `certified_at`; then, as for a policy change, the envelopes of compartments the new role may
    /// not read are deleted, every document of the user's plans in a compartment the user
    /// loses read or write of is queued for rotation, and a gained read gives the user's
    /// plans a new grant position. Returns the number of documents waiting for a new epoch.
    /// [`StorageError::NotFound`] for an unknown user; [`StorageError::InvalidState`] unless
    /// `certificates` names exactly the user's active devices, or when there is no policy.
    fn change_role(
        &self,
        user: UserId,
        role: &str,
        certificates: &[(DeviceId, Vec<u8>)],
        now: i64,
    ) -> Result<u64>;
    /// A device's replaced certificates, oldest first (the current one is in its record).
    fn older_certificates(&self, id: DeviceId) -> Result<Vec<Vec<u8>>>;
    /// The wipe order waiting for a revoked device; `None` for any other device.
    fn wipe_order(&self, id: DeviceId) -> Result<Option<Vec<u8>>>;
    /// Records the device's signed wipe report (verified and judged by the caller, against
    /// `seen`) and the time it arrived, in one transaction that first checks that the device
    /// still stands as `seen` says; `Ok(false)` (nothing stored) when it changed meanwhile (a
    /// session, a revocation): judge again. A second report keeps the first.
    /// [`StorageError::NotFound`] for an unknown device.
    fn record_wipe(&self, id: DeviceId, report: &[u8], seen: &WipeGuard, now: i64) -> Result<bool>;
    /// A session of `id` opened at `now`: its last session time, and `wipe_nonce_hash` when
    /// given, are recorded, and a wipe report recorded for it is forgotten, all in one
    /// transaction. [`StorageError::NotFound`] for an unknown device.
    fn record_session(
        &self,
        id: DeviceId,
        wipe_nonce_hash: Option<[u8; 32]>,
        now: i64,
    ) -> Result<SessionRecorded>;
    /// The device's new name (its signature checked by the caller).
    /// [`StorageError::NotFound`] for an unknown device.
    fn record_device_name(&self, id: DeviceId, name: &StoredName) -> Result<()>;
    /// The device was seen at `now` (a request with its session token); an earlier time
    /// never replaces a later one. Unknown devices are ignored.
    fn record_last_seen(&self, id: DeviceId, now: i64) -> Result<()>;

    // Plans and access.

    /// Registers a plan created on `created_by` and makes its creator a participant with
    /// role [`CREATOR_PLAN_ROLE`]. `Ok(true)` when the plan is (now) this creator's: newly
    /// registered, or registered before by the same user (a retry changes nothing).
    /// `Ok(false)` when another user registered it; nothing changes.
    /// [`StorageError::DeviceNotActive`] when `created_by` is not active in the writing
    /// transaction.
    fn register_plan(&self, plan: PlanId, creator: UserId, created_by: DeviceId, now: i64) -> Result<bool>;
    /// Grants `user` access (a new log position, see the module docs) or, for a participant,
    /// updates only the role. [`StorageError::NotFound`] for an unknown plan or user.
    fn add_participant(&self, plan: PlanId, user: UserId, plan_role: &str) -> Result<()>;
    /// In one transaction: ends access, deletes the key envelopes of the user's devices for
    /// the plan, and queues a rotation for each of the plan's documents with a key that the
    /// user could read. Returns the number of documents waiting for a new epoch. Removing a
    /// non-participant changes nothing.
    fn remove_participant(&self, plan: PlanId, user: UserId, now: i64) -> Result<u64>;
    fn participants(&self, plan: PlanId) -> Result<Vec<Participant>>;

    // Membership chains (the rules live in `crate::membership`).

    /// Registers a plan with its first membership entry: as [`Storage::register_plan`], and
    /// the chain and roster are stored. `Ok(false)` when another user registered the plan.
    fn register_chartered_plan(&self, plan: &CharteredPlan) -> Result<bool>;
    /// The plan's roster (CBOR) and chain length; `None` for a plan registered without a
    /// chain. [`StorageError::NotFound`] for an unknown plan.
    fn roster(&self, plan: PlanId) -> Result<Option<(u32, Vec<u8>)>>;
    /// In one transaction: appends the entry at a new log position (as the next of the
    /// chain: [`StorageError::Conflict`] when the chain is not at `seq - 1`), stores the roster
    /// and level, grants and ends participation as listed, and queues the rotations. Returns
    /// the number of documents waiting for a new epoch.
    fn append_membership(&self, update: &MembershipUpdate) -> Result<u64>;
    /// As [`Storage::append_membership`] for an entry that erases a member: in the same
    /// transaction, [`MemberErasure`]'s writes and deletions; then, as [`Storage::erase_plan`],
    /// makes sure no copy of a deleted row stays in the backend's files.
    /// [`StorageError::InvalidState`] when the epoch is not the document's next;
    /// [`StorageError::Conflict`] when the chain moved on or a bundle came after `covers`.
    fn append_erasure(&self, update: &MembershipUpdate) -> Result<MemberErased>;

    // Retention (the rules live in `crate::retention`).

    /// The plans whose stored chain ends with a close, with the closing entry's time, oldest
    /// first.
    fn closed_plans(&self) -> Result<Vec<(PlanId, i64)>>;
    /// When this server took in `plan`'s close (never before the close's signed time);
    /// `None` while it is open.
    fn closed_at(&self, plan: PlanId) -> Result<Option<i64>>;
    /// When `plan` was erased; `None` if it was not.
    fn erased_at(&self, plan: PlanId) -> Result<Option<i64>>;
    /// In one transaction: deletes every row of `plan` (every envelope, escrow included,
    /// every bundle and snapshot, key commitments, rotations, snapshot requests, resume
    /// points, refusals, participants, its chain and the plan itself) and leaves a tombstone
    /// (plan, `now`) so the plan cannot be registered again; then makes sure no copy of a
    /// deleted row stays in the backend's files. A plan erased before: the clean-up runs
    /// again and the answer says `already`. [`StorageError::NotFound`] for an unknown plan.
    fn erase_plan(&self, plan: PlanId, now: i64) -> Result<Erasure>;
    /// The chain's signed entries after position `after`, in order.
    fn membership_entries(&self, plan: PlanId, after: u32) -> Result<Vec<Vec<u8>>>;
    /// The entries of `user`'s plans after the membership cursor `after` (a plan granted
    /// after it: its whole chain), whole chains only, at most `limit` entries unless one
    /// chain alone is longer; `limit` is (entries, bytes). A plan `user` was removed from:
    /// its entries up to the one that removed them, so their devices learn of it from the
    /// signed entry (and drop the plan after the grace period).
    fn membership_for(&self, user: UserId, after: u64, limit: (usize, usize)) -> Result<MembershipPage>;
    /// Documents of plans with a chain that wait for a new epoch and that `user` may read,
    /// with the epoch to make.
    fn rotations_for(&self, user: UserId) -> Result<Vec<(DocumentId, u32)>>;
    fn is_participant(&self, plan: PlanId, user: UserId) -> Result<bool>;
    fn plans_of_user(&self, user: UserId) -> Result<Vec<PlanId>>;
    /// The plans `user` takes part in, with each plan's escalation level.
    fn plan_levels_of_user(&self, user: UserId) -> Result<Vec<(PlanId, String)>>;
    /// Every document `user` may read, with the log position of the grant: the compartments
    /// the user's role may read under the stored policy, of every plan the user takes part
    /// in. Nothing without a policy.
    fn readable_documents(&self, user: UserId) -> Result<Vec<(DocumentId, u64)>>;
    /// The user, the policy in force, the user's plans with their levels, the documents the
    /// user may read and the current epoch of each of `documents` the user reads, as of one
    /// snapshot (so that they agree, and a sync's pushes are checked after one round of
    /// reads); `None` for an unknown user. All but the epochs may come from an earlier read
    /// of this process under the same versions (`domain::AccessCache`).
    fn user_access(&self, user: UserId, documents: &[DocumentId]) -> Result<Option<UserAccess>>;
    /// The device, its user with the organisation's name, and the user's access stamp with
    /// the current epoch of each of `documents`, as of one snapshot: what a sync reads
    /// first, one statement on PostgreSQL where the session's device and the stamp were two.
    /// `None` for an unknown device. It may wait for other syncs' reads (PostgreSQL reads the
    /// sessions of syncs that arrive together in one statement), so it is called from a
    /// thread that may block, never from an async task.
    fn sync_session(&self, device: DeviceId, documents: &[DocumentId]) -> Result<Option<SyncSession>>;
    /// [`Storage::sync_session`] of each of `asks`, in their order and as of one snapshot:
    /// one statement on PostgreSQL. There, syncs that arrive while another's session is read
    /// wait, and their sessions are then read this way, at most 64 at a time
    /// (`domain::SessionReads`). Any number of asks is read here.
    fn sync_sessions(&self, asks: &[SessionAsk]) -> Result<Vec<Option<SyncSession>>>;
    /// [`Storage::user_access`] of the session's user and documents, as of the session's
    /// read ([`SyncSession::stamp`]): the remembered core is served without a read while the
    /// stamp read with the session is the one it was read under; otherwise the whole access
    /// is read now. Only for a request that has written nothing the access depends on since
    /// the session's read.
    fn session_access(&self, stamp: &SessionStamp) -> Result<Option<UserAccess>>;
    /// The active devices (not reported wiped) of the participants whose role may read
    /// `document`, with the epochs of it each holds an envelope for.
    fn readers(&self, document: DocumentId) -> Result<Vec<Reader>>;

    // The sharing policy.

    /// The current policy; `None` only before `init_network` (or on a database from before
    /// policies, until an administrator uploads one).
    fn policy(&self) -> Result<Option<PolicyRecord>>;
    /// In one transaction: replaces the policy, gives participants whose role gains read
    /// access a new grant position (so their devices receive the newly readable documents'
    /// history), for every (role, compartment) read it takes away deletes the envelopes of
    /// those participants' devices for those documents, and queues a rotation of each
    /// document with a key in a compartment a role loses read *or write* access to (the new
    /// epoch marks where the new write rules start). Returns the number of documents waiting for a new epoch.
    /// [`StorageError::Conflict`] when the version is not greater than the stored one.
    fn set_policy(&self, policy: &PolicyRecord, now: i64) -> Result<u64>;
    /// A signed policy by version, the current one included; `None` for a version this
    /// network never had.
    fn policy_version(&self, version: u32) -> Result<Option<Vec<u8>>>;

    // Revocation lists.

    /// Stores the next version of the revocation list. `Ok(true)` when stored; `Ok(false)`
    /// when exactly these bytes are stored under this version already (a retried upload);
    /// [`StorageError::Conflict`] when the version is not the newest + 1 (another upload won,
    /// or the caller is behind) or another list holds it.
    fn put_revocation_list(&self, list: &RevocationListRecord, now: i64) -> Result<bool>;
    /// The newest list (`None`: version `None`), or version N; `None` when there is none.
    fn revocation_list(&self, version: Option<u32>) -> Result<Option<(u32, Vec<u8>)>>;
    /// Whether some stored revocation list names `device`.
    fn on_revocation_list(&self, device: DeviceId) -> Result<bool>;

    // Key epochs and rotations.

    /// Stores a commitment, naming `policy_version`, unless one exists for its (document,
    /// epoch): the first writer wins. Checked in the writing transaction: the policy version is
    /// the current one, and a device minter is active
    /// ([`StorageError::DeviceNotActive`] otherwise) and its user may read the document.
    fn put_commitment(&self, commitment: &CommitmentRecord, policy_version: u32)
    -> Result<CommitmentOutcome>;
    fn commitment(&self, document: DocumentId, epoch: u32) -> Result<Option<CommitmentRecord>>;
    /// The highest epoch with a commitment; 0 when nobody has made a key yet.
    fn current_epoch(&self, document: DocumentId) -> Result<u32>;
    /// The documents `user` may read that have no key yet (current epoch 0).
    fn unminted_documents(&self, user: UserId) -> Result<Vec<DocumentId>>;
    /// Every (document, epoch) key `device` holds: those it has an envelope for and those it
    /// made itself (its commitments), in document and epoch order.
    fn held_keys(&self, device: DeviceId) -> Result<Vec<(DocumentId, u32)>>;
    /// Whether a rotation of `document` is waiting.
    fn rotation_pending(&self, document: DocumentId) -> Result<bool>;
    /// How many documents wait for a new epoch.
    fn pending_rotations(&self) -> Result<u64>;
    /// Up to `limit` documents waiting for a new epoch, the longest waiting first, read in one
    /// transaction.
    fn rotation_tasks(&self, limit: usize) -> Result<Vec<RotationTask>>;
    /// In one transaction: stores the administrator's commitment for `new_epoch` and the
    /// envelopes (each taking a log position; the first per (recipient, document, epoch)
    /// stays, as in [`Storage::put_envelopes`]), and removes the rotations queued before the
    /// document reached `new_epoch` (a rotation queued at a later epoch stays). Returns the
    /// number of documents still waiting. [`StorageError::InvalidState`] when no rotation of
    /// the document waits or `new_epoch` is not its current epoch + 1 (nothing is stored
    /// then); [`StorageError::NotFound`] for an unknown recipient and
    /// [`StorageError::InvalidState`] for a revoked one (nothing is stored then either).
    fn complete_rotation(&self, rotation: &CompletedRotation) -> Result<u64>;

    // The log.

    /// Appends every new bundle in one durable transaction and reports, in order, where each
    /// one is. A bundle id already in the log (also earlier in `items`) is a
    /// [`PushOutcome::Duplicate`] and stores nothing. A new snapshot is appended only if it
    /// consumes an outstanding request ([`Storage::request_snapshots`]) of its author for its
    /// document with exactly its `covers`, made less than [`SNAPSHOT_REQUEST_TTL_MS`] before
    /// its `received_at`; otherwise it is [`PushOutcome::Refused`] with
    /// [`eenplan_protocol::sync::REJECT_UNREQUESTED_SNAPSHOT`].
    /// A bundle whose author is revoked by the time this transaction runs is
    /// [`PushOutcome::Refused`] (`eenplan_protocol::sync::REJECT_AUTHOR_REVOKED`).
    fn push_batch(&self, items: &[NewBundle]) -> Result<Vec<PushOutcome>>;
    /// The newest log position (bundles and grants); 0 for an empty log.
    fn head(&self) -> Result<u64>;
    /// One page of what `request.device` lacks after its cursor, its envelopes, and the
    /// history pages it asked for; see the module docs. A page that stops inside a history
    /// block stores where (the only write of a pull) and hands out a resume token as `head`.
    fn pull_page(&self, request: &PullRequest) -> Result<PullBatch>;
    /// [`Storage::pull_page`] without history requests.
    fn pull(&self, user: UserId, device: DeviceId, since: u64, max_bytes: usize) -> Result<PullBatch> {
        self.pull_page(&PullRequest::new(user, device, since, max_bytes))
    }
    fn document_stats(&self, document: DocumentId) -> Result<DocStats>;
    /// The documents `device` holds a key of, each with its tail after the newest snapshot:
    /// what a sync answer weighs to ask the device for snapshots, read whole.
    fn held_tails(&self, device: DeviceId) -> Result<Vec<HeldTail>>;
    /// How often this process served a remembered read and how often it read again, since
    /// it started: for the operator's `/metrics`.
    fn remembered_reads(&self) -> RememberedReads;
    /// Everything a sync answer reads, in one snapshot (one read transaction, or on
    /// PostgreSQL one statement when the remembered state serves the rest), so that it is
    /// built from one commit; see [`AnswerReads`]. Like [`Storage::pull_page`], a page that stops
    /// inside a history block stores where (the only write) and hands out a resume token.
    fn answer(&self, query: &AnswerQuery) -> Result<AnswerReads> {
        self.answer_from(query, self.begin_answer(query))
    }
    /// Begins `query`'s answer before its request's push is committed: guesses what it will
    /// read, from what this process remembers. Where answers are begun in groups
    /// ([`AnswerStart::wants_facts`]) the group commit reads their first statements together
    /// ([`Storage::read_answer_facts`]); [`Storage::answer_from`] finishes each.
    fn begin_answer(&self, query: &AnswerQuery) -> AnswerStart;
    /// Reads the first statement of every answer in `starts` that wants it, after the group
    /// commit that holds their pushes: one statement for up to 64 answers, each answer's
    /// facts of one snapshot. On an error, the answers not read read their own.
    fn read_answer_facts(&self, starts: &mut [&mut AnswerStart]) -> Result<()>;
    /// [`Storage::answer`] of `query`, begun as `start` ([`Storage::begin_answer`], with the
    /// same query but for `now`). An answer whose facts a group read is as of that group's
    /// statement when it needs no other read, and read whole in one transaction otherwise.
    fn answer_from(&self, query: &AnswerQuery, start: AnswerStart) -> Result<AnswerReads>;

    // Snapshot requests.

    /// Records that `device` was asked for snapshots of `documents` covering log position
    /// `covers`, and returns the documents it was asked for: those that no other device has
    /// an unexpired request for, while the device has fewer than
    /// [`MAX_SNAPSHOT_REQUESTS_PER_DEVICE`] (a new request for the same document replaces the
    /// device's older one). Expired requests are dropped. [`StorageError::InvalidState`] when
    /// `covers` is beyond the log head: nobody can hold more than the log.
    fn request_snapshots(
        &self,
        device: DeviceId,
        documents: &[DocumentId],
        covers: u64,
        now: i64,
    ) -> Result<Vec<DocumentId>>;
    /// The unexpired snapshot requests of `device`: (document, covers), in document order.
    fn snapshot_requests(&self, device: DeviceId, now: i64) -> Result<Vec<(DocumentId, u64)>>;

    // Key envelopes.

    /// Stores the envelopes `sealer` sealed (the caller checked each one's signed trailer
    /// names it), in one transaction, and reports each one's fate in order: the first
    /// envelope per (recipient, document, epoch) stays, a sealer the recipient refused for it
    /// is not heard again, and an unknown or revoked recipient gets nothing. An escrow
    /// envelope (recipient `ESCROW_RECIPIENT`) is kept apart, the first per (document, epoch).
    /// [`StorageError::DeviceNotActive`] (nothing stored) when the sealer is not an active
    /// device in the writing transaction.
    fn put_envelopes(&self, sealer: DeviceId, envelopes: &[Envelope]) -> Result<Vec<EnvelopeOutcome>>;
    /// A recipient's complaints about envelopes it could not use. For each, the recipient's
    /// envelope of that (document, epoch) is deleted when the named sealer sealed it (or its
    /// sealer is unknown), so the key is asked for again; when the sealer is known and named,
    /// that sealer's envelopes of that (document, epoch) are refused for the recipient from
    /// then on. A complaint about an envelope the recipient does not hold changes nothing, so
    /// what is recorded grows only with envelopes actually delivered. Returns how many
    /// envelopes were deleted. [`StorageError::DeviceNotActive`] for a recipient that is not
    /// active.
    fn refuse_envelopes(&self, recipient: DeviceId, refusals: &[EnvelopeRefusal]) -> Result<u64>;
    /// Envelopes for `device` stored after log position `since` (each envelope takes a
    /// position when stored). Call it after [`Storage::pull`] with the same cursor, so an
    /// envelope at or below the pull's head is never missed.
    fn envelopes_for(&self, device: DeviceId, since: u64) -> Result<Vec<Envelope>>;
    /// Every epoch key of a plan sealed to the network's escrow key (recipient
    /// `ESCROW_RECIPIENT`), for an administrator who re-keys or recovers the plan.
    fn escrow_envelopes(&self, plan: PlanId) -> Result<Vec<Envelope>>;
    /// Key requests: the active devices (not reported wiped) of the participants whose role
    /// may read `document` and that hold no envelope for `epoch` of it. Any device that holds
    /// the key can answer them.
    fn devices_missing_envelope(&self, document: DocumentId, epoch: u32) -> Result<Vec<DeviceId>>;
    /// [`Storage::devices_missing_envelope`] of each key in `keys`, read in one transaction:
    /// (document, epoch, device), in the order of `keys`, then of devices.
    fn devices_missing_envelopes(
        &self,
        keys: &[(DocumentId, u32)],
    ) -> Result<Vec<(DocumentId, u32, DeviceId)>>;

    // The access log (NEN 7513). Nothing here is ever updated or deleted.

    /// Appends every upload not stored before (by [`NewAuditUpload::digest`]), in one
    /// transaction, and says for each, in order, whether it is new. A *different* upload
    /// that covers positions stored before is kept too: it is evidence of a fork.
    /// [`StorageError::DeviceNotActive`] (nothing stored) when the device is not active.
    fn put_audit_uploads(&self, uploads: &[NewAuditUpload]) -> Result<Vec<bool>>;
    /// The highest event position of `device` the server keeps (0: none).
    fn audit_through(&self, device: DeviceId) -> Result<u64>;
    /// Up to `limit` uploads of devices of `org` with an id after `after`, in id order.
    fn audit_uploads(&self, org: OrgId, after: u64, limit: usize) -> Result<Vec<StoredAuditUpload>>;
    /// Stores the next version of an organisation's audit key. `Ok(false)` when exactly this
    /// key is stored under this version already (a retry); [`StorageError::Conflict`] when the
    /// version is not above the newest; [`StorageError::NotFound`] for an unknown organisation.
    fn put_audit_key(&self, key: &AuditKeyRecord) -> Result<bool>;
    /// Every version of the organisation's audit key, oldest first.
    fn audit_keys(&self, org: OrgId) -> Result<Vec<AuditKeyRecord>>;
    /// The seed of the server's own audit signing key: random on the first call, the same
    /// ever after.
    fn server_audit_seed(&self) -> Result<[u8; 32]>;
    /// Appends events to the server's chain in one durable transaction.
    /// [`StorageError::Conflict`] (nothing stored) unless they continue the stored chain
    /// exactly: the first at the newest position + 1, the rest consecutive.
    fn append_server_events(&self, events: &[ServerEventRecord]) -> Result<()>;
    /// Up to `limit` events of the server's chain after position `after`, in order.
    fn server_events(&self, after: u64, limit: usize) -> Result<Vec<ServerEventRecord>>;
    /// The newest event of the server's chain.
    fn last_server_event(&self) -> Result<Option<ServerEventRecord>>;
}

#[cfg(test)]
mod doc_stats_tests {
    use super::*;

    fn stats(bundles: u64, bytes: u64, snapshot: Option<u64>) -> DocStats {
        DocStats {
            bundles,
            bundles_since_snapshot: bundles,
            bytes_since_snapshot: bytes,
            latest_snapshot_covers: snapshot.map(|_| 1),
            latest_snapshot_bytes: snapshot,
        }
    }

    #[test]
    fn a_tail_is_snapshotted_once_it_outweighs_half_the_snapshot_or_holds_a_thousand_bundles() {
        assert!(!stats(10, COMPACT_AFTER_BYTES, None).wants_snapshot());
        assert!(stats(10, COMPACT_AFTER_BYTES + 1, None).wants_snapshot());
        // Half a 100 KB snapshot is the bar, not 16 KiB.
        assert!(!stats(10, 50_000, Some(100_000)).wants_snapshot());
        assert!(stats(10, 50_001, Some(100_000)).wants_snapshot());
        assert!(stats(COMPACT_AFTER_BUNDLES + 1, 1_000, Some(100_000)).wants_snapshot());
        // A padded snapshot raises the bar no higher than half the cap.
        assert!(stats(10, COMPACT_REFERENCE_CAP / 2 + 1, Some(64 * 1024 * 1024)).wants_snapshot());
        // One big bundle is no log to compact.
        assert!(!stats(1, 1_000_000, None).wants_snapshot());
    }
}
