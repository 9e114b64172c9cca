//! The pull algorithm (module docs of [`super`]), written once over [`LogView`] so that every
//! backend pages and positions bundles identically; a backend supplies a handful of indexed
//! reads inside one read transaction.
//!
//! Cost: per readable document, one snapshot lookup and one range scan starting after the
//! cursor (or after the snapshot, for a document new to the device); a scan stops once that
//! document alone has filled the page. So a pull costs O(readable documents) index seeks plus
//! the rows it may return, independent of how long the logs are. A single join of
//! participants and bundles would be one statement, but it could not position history
//! blocks or stop per document, and the planner would be free to walk bundles by seq.

use super::{DeviceId, DocumentId, PullBatch, Result, SNAPSHOT_SHORTCUT_CHANGES, StoredBundle, UserId};

/// What a pull needs of a row, without its bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowMeta {
    pub seq: u64,
    pub author: DeviceId,
    pub covers_seq: Option<u64>,
    pub size: u64,
}

/// Reads of one read transaction; every call sees the same state of the log.
pub(crate) trait LogView {
    fn head(&self) -> Result<u64>;
    /// (document, granted_at_seq) of every document `user` may read under the stored policy.
    fn readable(&self, user: UserId) -> Result<Vec<(DocumentId, u64)>>;
    /// The snapshot with the greatest `covers_seq` (then the greatest seq).
    fn latest_snapshot(&self, document: DocumentId) -> Result<Option<RowMeta>>;
    /// The seq of the `nth` newest change bundle with seq ≤ `through` (1 = the newest).
    fn nth_change_back(&self, document: DocumentId, through: u64, nth: u64) -> Result<Option<u64>>;
    /// Visits the change bundles with seq > `after` in seq order until `visit` says stop.
    fn scan_changes(
        &self,
        document: DocumentId,
        after: u64,
        visit: &mut dyn FnMut(RowMeta) -> bool,
    ) -> Result<()>;
    fn fetch(&self, seq: u64) -> Result<StoredBundle>;
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    /// Where the bundle sits for paging: its seq, the grant's position for a history block,
    /// or the anchor of a shortcut snapshot.
    position: u64,
    /// Snapshots before changes within a block.
    rank: u8,
    seq: u64,
    size: u64,
}

pub(crate) fn pull(
    view: &dyn LogView,
    user: UserId,
    device: DeviceId,
    since: u64,
    max_bytes: usize,
) -> Result<PullBatch> {
    let head = view.head()?;
    // Every grant and bundle has a position ≤ head, so nothing can be due.
    if since >= head {
        return Ok(PullBatch { bundles: Vec::new(), head, complete: true });
    }
    let budget = u64::try_from(max_bytes).unwrap_or(u64::MAX);
    let mut candidates = Vec::new();
    let mut truncated = false;
    for (document, granted) in view.readable(user)? {
        truncated |= document_candidates(view, document, granted, device, since, budget, &mut candidates)?;
    }
    candidates.sort_by_key(|c| (c.position, c.rank, c.seq));

    let mut page: Vec<Candidate> = Vec::new();
    let mut total = 0u64;
    let mut last_position = since;
    let mut complete = !truncated;
    let mut rest = candidates.as_slice();
    while let Some(first) = rest.first() {
        let len = rest.iter().take_while(|c| c.position == first.position).count();
        let (block, tail) = rest.split_at(len);
        let size = block.iter().map(|c| c.size).sum::<u64>();
        if !page.is_empty() && total.saturating_add(size) > budget {
            complete = false;
            break;
        }
        page.extend_from_slice(block);
        total = total.saturating_add(size);
        last_position = first.position;
        rest = tail;
    }
    let bundles = page.iter().map(|c| view.fetch(c.seq)).collect::<Result<Vec<_>>>()?;
    Ok(PullBatch { bundles, head: if complete { head } else { last_position }, complete })
}

/// Adds what `document` owes the device to `out`, in position order. Returns true if it
/// stopped early because this document alone already exceeds the page: the rest cannot be
/// in this page, and the page must then not claim to be complete.
fn document_candidates(
    view: &dyn LogView,
    document: DocumentId,
    granted: u64,
    device: DeviceId,
    since: u64,
    budget: u64,
    out: &mut Vec<Candidate>,
) -> Result<bool> {
    let snapshot = view.latest_snapshot(document)?;
    let covers = |s: &RowMeta| s.covers_seq.unwrap_or(0);
    let mut used = 0u64;
    let mut push = |position: u64, rank: u8, row: &RowMeta, used: &mut u64| {
        out.push(Candidate { position, rank, seq: row.seq, size: row.size });
        *used = used.saturating_add(row.size);
    };

    // `block`: the history block's position, for a document new to this cursor.
    let (block, scan_after) = if granted > since {
        let base = snapshot.as_ref().map_or(0, covers);
        // A device that wrote the snapshot holds it; it still needs only the changes after it.
        if let Some(s) = snapshot.as_ref().filter(|s| s.author != device) {
            push(granted, 0, s, &mut used);
        }
        (Some(granted), base)
    } else {
        // "More than N of the changes in (since, covers] are missing" is the same as
        // "since < the (N+1)th newest change up to covers": the anchor. It belongs to the
        // snapshot, not to the cursor, so the decision is the same for every cursor before
        // it, and the snapshot sits at the anchor: a page that stops before the anchor has
        // delivered nothing of this document, and the next pull takes the shortcut again. A
        // page that stops between the anchor and `covers` leaves at most N changes that the
        // next pull sends although the snapshot holds them: redundant, never missing.
        let anchor = match snapshot.as_ref().filter(|s| covers(s) > since) {
            Some(s) => view.nth_change_back(document, covers(s), SNAPSHOT_SHORTCUT_CHANGES + 1)?,
            None => None,
        };
        match (snapshot.as_ref(), anchor) {
            (Some(s), Some(anchor)) if since < anchor => {
                if s.author != device {
                    push(anchor, 0, s, &mut used);
                }
                (None, covers(s))
            }
            _ => (None, since),
        }
    };

    let mut full = used > budget;
    let mut truncated = false;
    view.scan_changes(document, scan_after, &mut |row| {
        if row.author == device {
            return true;
        }
        let position = match block {
            Some(granted) if row.seq <= granted => granted,
            _ => row.seq,
        };
        if full && block != Some(position) {
            truncated = true;
            return false;
        }
        push(position, 1, &row, &mut used);
        full = used > budget;
        true
    })?;
    Ok(truncated)
}
