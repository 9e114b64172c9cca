//! The log: which pushes are admitted and where they go, and which snapshots are asked for.

use std::collections::BTreeSet;
use std::collections::hash_map::{Entry, HashMap};

use eenplan_protocol::{BundleKind, DocumentId, sync};

use crate::storage::backend::{AdmissionFacts, ReadRows, WriteRows};
use crate::storage::{
    DeviceId, MAX_SNAPSHOT_REQUESTS_PER_DEVICE, NewBundle, PushOutcome, Result, SNAPSHOT_HOLD_OFF_MS,
    SNAPSHOT_REQUEST_TTL_MS, StorageError,
};

/// Admits and appends a batch of pushes (one group commit) in one transaction: each bundle
/// is judged by [`admit`] against the state this transaction sees, then appended at the next
/// log position, or found again if it was stored before (pushes are idempotent by id). The
/// admitted bundles are appended together at the end ([`WriteRows::append_bundles`]): no
/// rule reads the bundles a batch appends except by id, which [`Appending`] answers.
pub(super) fn push_batch(tx: &dyn WriteRows, items: &[NewBundle]) -> Result<Vec<PushOutcome>> {
    let start = tx.head()?;
    let facts = admission_facts(tx, items)?;
    let mut appending = Appending::default();
    let mut decided = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        decided.push(match admit(tx, item, &facts, &appending)? {
            Admission::Refused(reason) => Decided::Done(PushOutcome::Refused { reason }),
            Admission::Stored(seq) => Decided::Done(PushOutcome::Duplicate { seq }),
            Admission::SameAs(earlier) => Decided::SameAs(earlier),
            Admission::Append { covers } => appending.add(index, item, covers),
        });
    }
    let positions =
        if appending.rows.is_empty() { Vec::new() } else { tx.append_bundles(start + 1, &appending.rows)? };
    let outcomes = resolve(tx, items, decided, &positions)?;
    let appended = positions.iter().flatten().count();
    if appended > 0 {
        tx.set_head(start + appended as u64)?;
    }
    Ok(outcomes)
}

/// The batch's authors and documents, each once, as [`admit`] reads them. Read before
/// anything is appended or a snapshot request taken, which change none of them, so each is
/// what a read at its item would find.
fn admission_facts(tx: &dyn WriteRows, items: &[NewBundle]) -> Result<AdmissionFacts> {
    let authors = items.iter().map(|item| item.author).collect::<BTreeSet<_>>();
    let documents = items.iter().map(|item| item.document).collect::<BTreeSet<_>>();
    tx.admission_facts(&Vec::from_iter(authors), &Vec::from_iter(documents))
}

/// The bundles a batch appends, in order, and by id the item that appends each.
#[derive(Default)]
struct Appending<'a> {
    rows: Vec<(&'a NewBundle, Option<u64>)>,
    by_id: HashMap<[u8; 16], usize>,
}

impl<'a> Appending<'a> {
    /// Appends `item` (the batch's `index`th), or finds it appended earlier in the batch.
    fn add(&mut self, index: usize, item: &'a NewBundle, covers: Option<u64>) -> Decided {
        match self.by_id.entry(item.bundle_id) {
            Entry::Occupied(earlier) => Decided::SameAs(*earlier.get()),
            Entry::Vacant(entry) => {
                entry.insert(index);
                self.rows.push((item, covers));
                Decided::Append(self.rows.len() - 1)
            }
        }
    }
}

/// What became of one item before the batch's rows are written.
enum Decided {
    Done(PushOutcome),
    /// The `n`th row to append.
    Append(usize),
    /// A duplicate of the item at this index, appended (or found stored) in this batch.
    SameAs(usize),
}

/// Each item's outcome once the rows are written: an appended row at its position, a row
/// whose id was stored already a duplicate of it, and a repeat within the batch a duplicate
/// of the first.
fn resolve(
    tx: &dyn WriteRows,
    items: &[NewBundle],
    decided: Vec<Decided>,
    positions: &[Option<u64>],
) -> Result<Vec<PushOutcome>> {
    let mut outcomes: Vec<PushOutcome> = Vec::with_capacity(decided.len());
    for (item, decided) in items.iter().zip(decided) {
        outcomes.push(match decided {
            Decided::Done(outcome) => outcome,
            Decided::Append(row) => match positions.get(row).copied().flatten() {
                Some(seq) => PushOutcome::Appended { seq },
                None => PushOutcome::Duplicate { seq: stored_seq(tx, item)? },
            },
            Decided::SameAs(earlier) => match outcomes.get(earlier) {
                Some(PushOutcome::Appended { seq } | PushOutcome::Duplicate { seq }) => {
                    PushOutcome::Duplicate { seq: *seq }
                }
                _ => return Err(StorageError::Corrupt("a repeated push has no first".into())),
            },
        });
    }
    Ok(outcomes)
}

/// The position of a bundle whose id the append found stored.
fn stored_seq(tx: &dyn WriteRows, item: &NewBundle) -> Result<u64> {
    tx.seq_of_bundle(&item.bundle_id)?
        .ok_or_else(|| StorageError::Corrupt("a bundle id conflicts but its row is missing".into()))
}

/// What [`admit`] decided for one pushed bundle.
enum Admission {
    Refused(&'static str),
    /// A snapshot stored before, at this position (a retried upload).
    Stored(u64),
    /// A bundle of the same id (a snapshot or changes) this batch appends already, at the
    /// item of this index.
    SameAs(usize),
    /// Goes into the log; a snapshot with the position it covers.
    Append {
        covers: Option<u64>,
    },
}

/// The rules a push must pass in the transaction that writes it. The route checked the
/// author, the signature and the epoch before the group commit; a revocation, a rotation or a
/// new epoch may have committed since, so they are checked again here.
fn admit(
    tx: &dyn WriteRows,
    item: &NewBundle,
    facts: &AdmissionFacts,
    appending: &Appending<'_>,
) -> Result<Admission> {
    if facts.revoked.contains(&item.author) {
        return Ok(Admission::Refused(sync::REJECT_AUTHOR_REVOKED));
    }
    if facts.rotating.contains(&item.document) {
        return Ok(Admission::Refused(sync::REJECT_ROTATING));
    }
    let current = facts
        .epochs
        .get(&item.document)
        .ok_or_else(|| StorageError::Corrupt("the admission read no epoch of a pushed document".into()))?;
    if item.epoch < *current {
        return Ok(Admission::Refused(sync::REJECT_STALE_EPOCH));
    }
    let BundleKind::Snapshot { covers } = item.kind else {
        return Ok(Admission::Append { covers: None });
    };
    // A retried upload is found, not refused: its request is gone.
    if let Some(&earlier) = appending.by_id.get(&item.bundle_id) {
        return Ok(Admission::SameAs(earlier));
    }
    if let Some(seq) = tx.seq_of_bundle(&item.bundle_id)? {
        return Ok(Admission::Stored(seq));
    }
    // A snapshot is stored only when this server asked this device for it.
    let since = item.received_at.saturating_sub(SNAPSHOT_REQUEST_TTL_MS);
    if !tx.take_snapshot_request(item.author, item.document, covers, since)? {
        return Ok(Admission::Refused(sync::REJECT_UNREQUESTED_SNAPSHOT));
    }
    Ok(Admission::Append { covers: Some(covers) })
}

/// The documents `device` has an unexpired snapshot request for.
pub(super) fn outstanding_requests(
    rows: &dyn ReadRows,
    device: DeviceId,
    now: i64,
) -> Result<BTreeSet<DocumentId>> {
    let since = now.saturating_sub(SNAPSHOT_REQUEST_TTL_MS);
    Ok(rows.snapshot_requests_of(device, since)?.into_iter().map(|(document, _)| document).collect())
}

/// Whether `device`, with the `outstanding` requests, may be asked for a snapshot of
/// `document` now: one it has a request for already, or one more within
/// [`MAX_SNAPSHOT_REQUESTS_PER_DEVICE`]; and no other device was *first* asked for it less
/// than [`SNAPSHOT_HOLD_OFF_MS`] ago. Only the first ask: a device asked again and again
/// that never delivers must not keep compaction from everyone else. The one rule for the
/// sync answer's read and the request's write.
pub(super) fn may_ask(
    rows: &dyn ReadRows,
    outstanding: &BTreeSet<DocumentId>,
    device: DeviceId,
    document: DocumentId,
    now: i64,
) -> Result<bool> {
    let within_bound =
        outstanding.contains(&document) || outstanding.len() < MAX_SNAPSHOT_REQUESTS_PER_DEVICE;
    let held_off_since = now.saturating_sub(SNAPSHOT_HOLD_OFF_MS - 1);
    Ok(within_bound && !rows.snapshot_requested_elsewhere(document, device, held_off_since)?)
}

/// Asks `device` for snapshots of `documents` covering `covers`, those it [`may_ask`] for.
pub(super) fn request_snapshots(
    tx: &dyn WriteRows,
    device: DeviceId,
    documents: &[DocumentId],
    covers: u64,
    now: i64,
) -> Result<Vec<DocumentId>> {
    if covers > tx.head()? {
        return Err(StorageError::InvalidState("a snapshot cannot cover more than the log holds".into()));
    }
    tx.expire_snapshot_requests(now.saturating_sub(SNAPSHOT_REQUEST_TTL_MS))?;
    let mut outstanding = outstanding_requests(tx, device, now)?;
    let mut asked = Vec::new();
    for &document in documents {
        if may_ask(tx, &outstanding, device, document, now)? {
            tx.upsert_snapshot_request(device, document, covers, now)?;
            outstanding.insert(document);
            asked.push(document);
        }
    }
    Ok(asked)
}
