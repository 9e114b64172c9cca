//! The pull algorithm (module docs of [`super`]), written once over [`LogView`] so that every
//! backend pages and positions bundles identically; a backend supplies a handful of indexed
//! reads inside one read transaction, and stores the [`ResumePoint`] of a page that stopped
//! inside a history block.
//!
//! Cost: per readable document, one snapshot lookup and one range scan starting after the
//! cursor (or after the snapshot, for a document new to the device); a scan stops once that
//! document alone has filled the page. Per snapshot sent, two index seeks per author of its
//! document (the witnesses). So a pull costs O(readable documents) index seeks plus the rows
//! it may return, independent of how long the logs are. A single join of participants and
//! bundles would be one statement, but it could not position history blocks or stop per
//! document, and the planner would be free to walk bundles by seq.

use std::cmp::Ordering;
use std::collections::HashSet;

use eenplan_protocol::sync::RESUME_TOKEN_BIT;

use super::backend::AheadReads;
use super::{
    DeviceId, DocumentId, Envelope, HistoryBatch, PullBatch, PullRequest, Result, SNAPSHOT_SHORTCUT_CHANGES,
    StoredBundle, UserId,
};

/// What a pull needs of a row, without its bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowMeta {
    pub seq: u64,
    pub author: DeviceId,
    pub covers_seq: Option<u64>,
    pub size: u64,
}

/// Where a page that stopped inside a history block continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResumePoint {
    /// The block's position (a grant): everything before it was delivered.
    pub block: u64,
    /// The block's documents before this one were delivered whole.
    pub document: DocumentId,
    /// This document's block was delivered up to this seq: its last change sent, or the
    /// position its snapshot covers when the page stopped right after the snapshot.
    pub after: u64,
    /// The log head when the block's first page was read. Every page of the block sends
    /// the documents' newest snapshots as of then, so a snapshot stored while the block is
    /// under way changes nothing about what its earlier pages sent or its later ones send.
    pub seen_head: u64,
}

/// Reads of one read transaction; every call sees the same state of the log.
pub(crate) trait LogView {
    fn head(&self) -> Result<u64>;
    /// (document, granted_at_seq) of every document `user` may read under the stored policy.
    fn readable(&self, user: UserId) -> Result<Vec<(DocumentId, u64)>>;
    /// Of the snapshots with seq ≤ `through`, the one with the greatest `covers_seq` (then
    /// the greatest seq).
    fn latest_snapshot(&self, document: DocumentId, through: u64) -> Result<Option<RowMeta>>;
    /// The document's oldest snapshot.
    fn first_snapshot(&self, document: DocumentId) -> Result<Option<RowMeta>>;
    /// The seq of the `nth` newest change bundle with seq ≤ `through` (1 = the newest).
    fn nth_change_back(&self, document: DocumentId, through: u64, nth: u64) -> Result<Option<u64>>;
    /// Of `documents`, those with a bundle (a change or a snapshot) after `since` that
    /// `device` did not write: of a document granted at or before `since`, a pull from
    /// `since` sends nothing else. Costs one seek per document, where reading the document's
    /// newest snapshot and scanning its changes cost two.
    fn documents_with_news(
        &self,
        documents: &[DocumentId],
        since: u64,
        device: DeviceId,
    ) -> Result<HashSet<DocumentId>>;
    /// Visits the change bundles with seq > `after` in seq order until `visit` says stop.
    fn scan_changes(
        &self,
        document: DocumentId,
        after: u64,
        visit: &mut dyn FnMut(RowMeta) -> bool,
    ) -> Result<()>;
    /// The smallest author id greater than `after` among the document's change bundles.
    fn next_author(&self, document: DocumentId, after: Option<DeviceId>) -> Result<Option<DeviceId>>;
    /// `author`'s change bundle of `document` with the greatest seq ≤ `through`.
    fn newest_change_by(
        &self,
        document: DocumentId,
        author: DeviceId,
        through: u64,
    ) -> Result<Option<RowMeta>>;
    /// Up to `limit` of `device`'s envelopes stored after position `after`, with their
    /// positions, in position order.
    fn envelopes_after(&self, device: DeviceId, after: u64, limit: usize) -> Result<Vec<(u64, Envelope)>>;
    /// The resume point that `token` names, if this backend handed it to `device`.
    fn resume_point(&self, device: DeviceId, token: u64) -> Result<Option<ResumePoint>>;
    fn fetch(&self, seq: u64) -> Result<StoredBundle>;
    /// The bundles at `seqs`, in that order: a page's bundles, one read each by default. A
    /// backend whose reads are round trips reads them in one (PostgreSQL does).
    fn fetch_many(&self, seqs: &[u64]) -> Result<Vec<StoredBundle>> {
        seqs.iter().map(|&seq| self.fetch(seq)).collect()
    }
}

/// A page as the algorithm leaves it: when it stopped inside a history block, the backend
/// stores `resume` and puts its token in `batch.head`.
pub(crate) struct Page {
    pub batch: PullBatch,
    pub resume: Option<ResumePoint>,
    /// The token the device presented, which it may present again (its answer may be lost).
    pub presented_token: Option<u64>,
    /// Where the page took the reads a caller may make ahead from ([`Seen::ahead`]).
    pub sources: AheadSources,
}

/// Where a read that a caller may make ahead came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The reads made ahead ([`Seen::ahead`]) held exactly this read.
    Ahead,
    /// The page made the read itself.
    Database,
}

/// Of a page's reads that a caller may make ahead, where each came from; `None` when the
/// page did not need it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AheadSources {
    /// [`LogView::envelopes_after`].
    pub mailbox: Option<Source>,
    /// [`LogView::documents_with_news`].
    pub news: Option<Source>,
}

/// Log positions and seqs are stored as SQL integers; nothing can lie beyond this.
pub(crate) const MAX_POSITION: u64 = i64::MAX as u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum What {
    Snapshot { covers: u64 },
    Change,
}

/// One thing a page sends whole: a bundle, or a snapshot with its witnesses.
#[derive(Debug, Clone, Copy)]
struct Unit {
    /// Where it sits for paging: a bundle's seq, the grant's position for a history block,
    /// the anchor of a shortcut snapshot.
    position: u64,
    /// Orders the documents of one history block.
    document: DocumentId,
    /// Snapshots before changes within a document.
    what: What,
    /// The bundle's seq.
    seq: u64,
    size: u64,
    /// Part of the history block at `position`: a page may stop inside it.
    in_block: bool,
}

impl Unit {
    fn order(&self) -> (u64, DocumentId, u8, u64) {
        let rank = match self.what {
            What::Snapshot { .. } => 0,
            What::Change => 1,
        };
        (self.position, self.document, rank, self.seq)
    }

    /// How far its document's block is delivered once this unit is.
    fn delivered_through(&self) -> u64 {
        match self.what {
            What::Snapshot { covers } => covers,
            What::Change => self.seq,
        }
    }
}

/// The bytes a page may still take; the first unit of the whole answer always fits.
struct Budget {
    limit: u64,
    used: u64,
    any: bool,
}

impl Budget {
    /// A budget with no room left: what uses it gets nothing (and says it is not complete).
    fn spent() -> Budget {
        Budget { limit: 0, used: 0, any: true }
    }

    fn take(&mut self, size: u64) -> bool {
        if self.any && self.used.saturating_add(size) > self.limit {
            return false;
        }
        self.used = self.used.saturating_add(size);
        self.any = true;
        true
    }
}

/// Where the device stands: a log position, or a place inside a history block.
struct Start {
    since: u64,
    resume: Option<ResumePoint>,
    token: Option<u64>,
}

impl Start {
    fn of(view: &dyn LogView, device: DeviceId, cursor: u64) -> Result<Start> {
        if cursor & RESUME_TOKEN_BIT == 0 {
            return Ok(Start { since: cursor, resume: None, token: None });
        }
        let token = cursor & !RESUME_TOKEN_BIT;
        Ok(match view.resume_point(device, token)? {
            // Everything before the block was delivered.
            Some(point) => {
                Start { since: point.block.saturating_sub(1), resume: Some(point), token: Some(token) }
            }
            // A token this device was never given, or one forgotten since: start over. The
            // device receives what it holds again, and loses nothing.
            None => Start { since: 0, resume: None, token: None },
        })
    }
}

pub(crate) fn pull(view: &dyn LogView, request: &PullRequest) -> Result<Page> {
    let seen =
        Seen { head: view.head()?, readable: view.readable(request.user)?, ahead: AheadReads::default() };
    pull_at(view, request, &seen)
}

/// What a pull reads first, read by a caller that needs it too in the same transaction (the
/// sync answer): the log head, and the user's readable documents with the position each was
/// granted at; and reads the caller made ahead in that transaction, which the pull takes
/// where it would make exactly the same read.
pub(crate) struct Seen {
    pub head: u64,
    pub readable: Vec<(DocumentId, u64)>,
    pub ahead: AheadReads,
}

/// [`pull`] with its first reads done by the caller, in the same transaction.
pub(crate) fn pull_at(view: &dyn LogView, request: &PullRequest, seen: &Seen) -> Result<Page> {
    let (head, readable) = (seen.head, seen.readable.as_slice());
    let start = Start::of(view, request.device, request.since)?;
    let mut budget =
        Budget { limit: u64::try_from(request.max_bytes).unwrap_or(u64::MAX), used: 0, any: false };
    // Keys first: they open the bundles after them, and a new device's keys were sealed after
    // the history it is due (their positions are later).
    let mut sources = AheadSources::default();
    let mailbox = Mailbox::take(view, request, head, seen, &mut sources, &mut budget)?;
    let readable_documents: HashSet<DocumentId> = readable.iter().map(|(document, _)| *document).collect();
    if !mailbox.complete {
        // More keys are due than one page holds: no bundle yet, since one that arrived ahead
        // of its key would only wait on the device. The log cursor stays where it is; the
        // history requests get their (empty) pages, so that none reads as refused.
        let batch = PullBatch {
            envelopes: mailbox.envelopes,
            envelopes_through: mailbox.through,
            head: request.since,
            complete: false,
            history: history(view, request, &readable_documents, &mut Budget::spent())?,
            ..PullBatch::default()
        };
        return Ok(Page { batch, resume: None, presented_token: start.token, sources });
    }
    let stream = Stream::collect(view, request, &start, seen, budget.limit, &mut sources)?;
    let taken = take_units(view, &stream.units, &mut budget)?;
    let (head, complete, resume) = stream.end(&taken, &start, request.since, head);

    let mut batch = PullBatch {
        bundles: Vec::new(),
        witnesses: Vec::new(),
        envelopes: mailbox.envelopes,
        envelopes_through: mailbox.through,
        history: Vec::new(),
        head,
        complete,
    };
    let seqs: Vec<u64> = stream.units[..taken.units].iter().map(|unit| unit.seq).collect();
    batch.bundles = view.fetch_many(&seqs)?;
    batch.witnesses = view.fetch_many(&taken.witnesses)?;
    batch.history = history(view, request, &readable_documents, &mut budget)?;
    Ok(Page { batch, resume, presented_token: start.token, sources })
}

/// A read's limit as a SQL `LIMIT` parameter: `usize::MAX` means no limit, which fits no
/// `BIGINT`.
pub(crate) fn limit_param(limit: usize) -> u64 {
    u64::try_from(limit).unwrap_or(u64::MAX).min(MAX_POSITION)
}

/// The read of the device's envelopes a page makes when the log head is `head`: (after,
/// limit). A caller that asks for it ahead, before the head is read, passes [`MAX_POSITION`]:
/// no head lies beyond it, so the ask then holds unless the device's cursor is beyond the log.
pub(crate) fn mailbox_read(request: &PullRequest, head: u64) -> (u64, usize) {
    // A cursor beyond the log is no position this server gave: start the mailbox over (a key
    // delivered twice is harmless) rather than withhold every key for good.
    let after = if request.envelopes_after > head { 0 } else { request.envelopes_after };
    // One more than fits, so that a page stopped by the limit is not taken for the end.
    (after, request.max_envelopes.max(1).saturating_add(1))
}

/// The envelopes a page carries: those after the device's mailbox cursor, in position order,
/// at most [`PullRequest::max_envelopes`] and within the budget (the first always).
struct Mailbox {
    envelopes: Vec<Envelope>,
    through: u64,
    complete: bool,
}

impl Mailbox {
    fn take(
        view: &dyn LogView,
        request: &PullRequest,
        head: u64,
        seen: &Seen,
        sources: &mut AheadSources,
        budget: &mut Budget,
    ) -> Result<Mailbox> {
        let limit = request.max_envelopes.max(1);
        let (after, read) = mailbox_read(request, head);
        let due = match seen.ahead.mailbox(request.device, after, read) {
            Some(due) => {
                sources.mailbox = Some(Source::Ahead);
                due.to_vec()
            }
            None => {
                sources.mailbox = Some(Source::Database);
                view.envelopes_after(request.device, after, read)?
            }
        };
        let mut out = Mailbox { envelopes: Vec::new(), through: after, complete: true };
        for (position, envelope) in due {
            if out.envelopes.len() >= limit
                || !budget.take(u64::try_from(envelope.bytes.len()).unwrap_or(u64::MAX))
            {
                out.complete = false;
                break;
            }
            out.through = position;
            out.envelopes.push(envelope);
        }
        Ok(out)
    }
}

/// Of `readable`, the documents granted at or before the cursor `since`: those a pull from
/// `since` sends only what is new of ([`LogView::documents_with_news`]).
pub(crate) fn followed(readable: &[(DocumentId, u64)], since: u64) -> Vec<DocumentId> {
    readable.iter().filter(|(_, granted)| *granted <= since).map(|(document, _)| *document).collect()
}

/// The cursor a pull of `request` starts from, unless it is a resume token (whose start is
/// the stored point's).
pub(crate) fn plain_cursor(request: &PullRequest) -> Option<u64> {
    (request.since & RESUME_TOKEN_BIT == 0).then_some(request.since)
}

/// Everything due to the device, in page order (bundles without their bytes).
struct Stream {
    units: Vec<Unit>,
    /// The first position a document's scan left out because that document alone filled the
    /// page: nothing from there on can be in this page.
    cut: Option<u64>,
}

impl Stream {
    fn collect(
        view: &dyn LogView,
        request: &PullRequest,
        start: &Start,
        seen: &Seen,
        budget: u64,
        sources: &mut AheadSources,
    ) -> Result<Stream> {
        let (head, readable) = (seen.head, seen.readable.as_slice());
        let mut stream = Stream { units: Vec::new(), cut: None };
        // Every grant, bundle and envelope has a position ≤ head, so nothing can be due.
        if start.since >= head {
            return Ok(stream);
        }
        // Of a document granted before the cursor, the pull sends a snapshot by another
        // device that is after the cursor (a due snapshot's anchor or base is), and the other
        // devices' changes after it; and only a base the device itself wrote, covering less
        // than the cursor, could add changes at or before the cursor, which the device holds
        // (an erasure refuses a base with changes after what it covers). So a document without
        // a bundle after the cursor by another device is skipped. In a busy region the head
        // always moves, and most of a device's documents have no such bundle; they are found
        // in one read, not in two reads each.
        let followed = followed(readable, start.since);
        let read;
        let news = match seen.ahead.news(request.device, &followed, start.since) {
            Some(news) => {
                sources.news = Some(Source::Ahead);
                news
            }
            None => {
                sources.news = Some(Source::Database);
                read = view.documents_with_news(&followed, start.since, request.device)?;
                &read
            }
        };
        for &(document, granted) in readable {
            if granted <= start.since && !news.contains(&document) {
                continue;
            }
            let plan = DocumentPlan::new(view, document, granted, request.device, start)?;
            if let Some(position) = plan.units(view, request.device, budget, &mut stream.units)? {
                stream.cut = Some(stream.cut.map_or(position, |c| c.min(position)));
            }
        }
        stream.units.sort_by_key(Unit::order);
        Ok(stream)
    }

    /// The page's head, whether it is complete, and where it stopped inside a block: the log
    /// head when nothing is left; inside a block when the next unit is at the last one's
    /// block position; else the last position sent (every unit at or before it was).
    fn end(&self, taken: &Taken, start: &Start, since: u64, head: u64) -> (u64, bool, Option<ResumePoint>) {
        let last = taken.units.checked_sub(1).map(|i| self.units[i]);
        let next = self.units.get(taken.units).map(|u| u.position).into_iter().chain(self.cut).min();
        match (last, next) {
            (_, None) => (head, true, None),
            (Some(last), Some(next)) if next == last.position && last.in_block => {
                // Later pages of the block keep the snapshots its first page chose.
                let seen_head =
                    start.resume.filter(|p| p.block == last.position).map_or(head, |p| p.seen_head);
                let point = ResumePoint {
                    block: last.position,
                    document: last.document,
                    after: last.delivered_through(),
                    seen_head,
                };
                // The backend replaces the head with the point's token.
                (since, false, Some(point))
            }
            (Some(last), Some(_)) => (last.position, false, None),
            // Only when nothing fitted at all: the same cursor again.
            (None, Some(_)) => (since, false, None),
        }
    }
}

struct Taken {
    units: usize,
    witnesses: Vec<u64>,
}

/// Takes units in order while they fit the budget; a snapshot takes its witnesses with it.
fn take_units(view: &dyn LogView, units: &[Unit], budget: &mut Budget) -> Result<Taken> {
    let mut taken = Taken { units: 0, witnesses: Vec::new() };
    for unit in units {
        let mut size = unit.size;
        let mut witnesses = Vec::new();
        if let What::Snapshot { covers } = unit.what {
            witnesses = witnesses_of(view, unit.document, covers)?;
            size = witnesses.iter().fold(size, |total, w| total.saturating_add(w.size));
        }
        if !budget.take(size) {
            break;
        }
        taken.units += 1;
        taken.witnesses.extend(witnesses.iter().map(|w| w.seq));
    }
    Ok(taken)
}

/// For every device that wrote change bundles of `document` up to `covers`, its newest one:
/// what a receiver checks a snapshot against. Two index seeks per author.
fn witnesses_of(view: &dyn LogView, document: DocumentId, covers: u64) -> Result<Vec<RowMeta>> {
    let mut out = Vec::new();
    let mut after = None;
    while let Some(author) = view.next_author(document, after)? {
        if let Some(row) = view.newest_change_by(document, author, covers)? {
            out.push(row);
        }
        after = Some(author);
    }
    Ok(out)
}

/// The snapshot a document's log starts with after a member's erasure: its oldest, when no
/// change bundle is at or before what it covers.
fn erasure_base(view: &dyn LogView, document: DocumentId) -> Result<Option<RowMeta>> {
    let Some(first) = view.first_snapshot(document)? else { return Ok(None) };
    let covers = first.covers_seq.unwrap_or(0);
    Ok(view.nth_change_back(document, covers, 1)?.is_none().then_some(first))
}

/// Serves the history requests from what the pull left of the budget.
fn history(
    view: &dyn LogView,
    request: &PullRequest,
    readable: &HashSet<DocumentId>,
    budget: &mut Budget,
) -> Result<Vec<HistoryBatch>> {
    let mut served = HashSet::new();
    let mut out = Vec::new();
    for asked in &request.history {
        if !readable.contains(&asked.document) || !served.insert(asked.document) {
            continue;
        }
        let (mut seqs, mut through, mut complete) = (Vec::new(), asked.after, true);
        // After a member's erasure the log starts with its base: a whole change log starts
        // there (the changes after it depend on it).
        if let Some(base) = erasure_base(view, asked.document)?.filter(|b| b.seq > asked.after) {
            if !budget.take(base.size) {
                out.push(HistoryBatch {
                    document: asked.document,
                    bundles: Vec::new(),
                    through,
                    complete: false,
                });
                continue;
            }
            seqs.push(base.seq);
            through = base.seq;
        }
        view.scan_changes(asked.document, asked.after.min(MAX_POSITION), &mut |row| {
            if !budget.take(row.size) {
                complete = false;
                return false;
            }
            seqs.push(row.seq);
            through = row.seq;
            true
        })?;
        let bundles = view.fetch_many(&seqs)?;
        out.push(HistoryBatch { document: asked.document, bundles, through, complete });
    }
    Ok(out)
}

/// What one document owes the device: a snapshot (at a position), then its changes after
/// `scan_after`, those up to `block` sitting at the block's position.
struct DocumentPlan {
    document: DocumentId,
    snapshot: Option<(u64, RowMeta, bool)>,
    scan_after: u64,
    block: Option<u64>,
}

impl DocumentPlan {
    fn new(
        view: &dyn LogView,
        document: DocumentId,
        granted: u64,
        device: DeviceId,
        start: &Start,
    ) -> Result<DocumentPlan> {
        let covers = |s: &RowMeta| s.covers_seq.unwrap_or(0);
        let plan = |snapshot, scan_after, block| DocumentPlan { document, snapshot, scan_after, block };
        if granted > start.since {
            let resumed = start.resume.filter(|p| p.block == granted);
            if let Some(point) = resumed {
                match document.cmp(&point.document) {
                    // Delivered whole, with the snapshot that was newest then (or none).
                    Ordering::Less => {
                        let base = view.latest_snapshot(document, point.seen_head)?.map_or(0, |s| covers(&s));
                        return Ok(plan(None, base.max(granted), None));
                    }
                    Ordering::Equal => return Ok(plan(None, point.after, Some(granted))),
                    Ordering::Greater => {}
                }
            }
            // New to this cursor: the newest snapshot (as of the block's first page) and
            // everything after what it covers.
            let through = resumed.map_or(MAX_POSITION, |p| p.seen_head);
            let snapshot = view.latest_snapshot(document, through)?;
            let base = snapshot.as_ref().map_or(0, covers);
            // A device that wrote the snapshot holds it; it still needs the changes after it.
            let snapshot = snapshot.filter(|s| s.author != device).map(|s| (granted, s, true));
            return Ok(plan(snapshot, base, Some(granted)));
        }
        // "More than N of the changes in (since, covers] are missing" is the same as
        // "since < the (N+1)th newest change up to covers": the anchor. It belongs to the
        // snapshot, not to the cursor, so the decision is the same for every cursor before it,
        // and the snapshot sits at the anchor: a page that stops before the anchor has
        // delivered nothing of this document, and the next pull takes the shortcut again. A
        // page that stops between the anchor and `covers` leaves at most N changes that the
        // next pull sends although the snapshot holds them: redundant, never missing.
        let snapshot = view.latest_snapshot(document, MAX_POSITION)?;
        // A snapshot with no change at or before what it covers is an erasure's base
        // (everything before it was deleted): every device whose cursor is before the base's
        // own position needs it, however little it lacked.
        let base = match snapshot.as_ref() {
            Some(s) => view.nth_change_back(document, covers(s), 1)?.is_none(),
            None => false,
        };
        let snapshot = snapshot.filter(|s| if base { s.seq > start.since } else { covers(s) > start.since });
        let anchor = match snapshot.as_ref() {
            Some(s) if base => Some(s.seq),
            Some(s) => view.nth_change_back(document, covers(s), SNAPSHOT_SHORTCUT_CHANGES + 1)?,
            None => None,
        };
        Ok(match (snapshot, anchor) {
            (Some(s), Some(anchor)) if start.since < anchor => {
                let base = covers(&s);
                plan(Some((anchor, s, false)).filter(|_| s.author != device), base, None)
            }
            _ => plan(None, start.since, None),
        })
    }

    /// Adds the document's units to `out`, in position order. Returns the position of the
    /// first one left out when this document alone filled the page: nothing from there on can
    /// be in this page, and the page must not claim to be complete.
    fn units(
        &self,
        view: &dyn LogView,
        device: DeviceId,
        budget: u64,
        out: &mut Vec<Unit>,
    ) -> Result<Option<u64>> {
        let mut used = 0u64;
        if let Some((position, s, in_block)) = self.snapshot {
            let what = What::Snapshot { covers: s.covers_seq.unwrap_or(0) };
            out.push(Unit { position, document: self.document, what, seq: s.seq, size: s.size, in_block });
            used = s.size;
        }
        let mut cut = None;
        view.scan_changes(self.document, self.scan_after, &mut |row| {
            if row.author == device {
                return true;
            }
            let (position, in_block) = match self.block {
                Some(block) if row.seq <= block => (block, true),
                _ => (row.seq, false),
            };
            if used > budget {
                cut = Some(position);
                return false;
            }
            out.push(Unit {
                position,
                document: self.document,
                what: What::Change,
                seq: row.seq,
                size: row.size,
                in_block,
            });
            used = used.saturating_add(row.size);
            true
        })?;
        Ok(cut)
    }
}
