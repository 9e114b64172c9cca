//! Snapshots, and the change logs a device asks for when it cannot take one.
//!
//! When a document's log grows long the server asks a device for a snapshot (automerge's
//! `save()`, sealed and signed like a bundle, its covered log position in the signed header).
//! A new reader then starts from the snapshot and the changes after it instead of every change.
//! A snapshot is one device's word about everybody's changes, so a receiver does not take it
//! on that word. With it the server sends **witnesses**: for every device that wrote to the
//! document up to the snapshot's position, that device's newest change bundle up to there,
//! signed by that device. The snapshot is taken only if it holds exactly those devices'
//! changes up to their witnessed last ones:
//!
//! - each witnessed last change is in the snapshot;
//! - every head of the snapshot is a witnessed last change, so nothing newer is in it;
//! - for every device with changes in it, the count of its changes equals the sequence number
//!   of its witnessed last change, so no change was made up under its name (automerge numbers
//!   each device's changes 1, 2, 3, … and each depends on the one before).
//!
//! A snapshot that fails, or whose witnesses cannot be read here, is refused, and the device
//! asks for the document's change log instead (`SyncRequest::history`), page by page, as it
//! does when received changes wait for dependencies that never came. The request is kept in
//! the store until the log is complete, so it survives a restart.
//!
//! A device makes a snapshot only of a document it holds completely: no bundle of it waits
//! here for a key, no change of its own is unpushed, no change lacks its dependencies.

use std::collections::{BTreeMap, HashMap, HashSet};

use automerge::{Automerge, ChangeHash, ReadDoc};
use eenplan_protocol::bundle::{MAX_BUNDLE_LEN, MAX_SNAPSHOT_OVERHEAD};
use eenplan_protocol::sync::{Blob, Fixed, HistoryPage, HistoryRequest, MAX_COMPACT_PER_ANSWER};
use eenplan_protocol::{Bundle, BundleKind, DocumentId, NewBundle};
use serde::{Deserialize, Serialize};

use super::{SyncError, cbor, compartment_of, from_cbor};
use crate::device::Device;
use crate::error::CoreError;
use crate::ids::PlanId;
use crate::plan::{ChangeSummary, Compartment};

pub(super) const STATE_HISTORY: &str = "history";
/// Change logs asked for in one request; the rest follow in later rounds.
const HISTORY_PER_REQUEST: usize = 32;

/// A device's newest change to a document up to a snapshot's position, as its witness shows.
#[derive(Debug, Clone)]
pub(super) struct Witness {
    pub document: DocumentId,
    pub author: [u8; 16],
    pub last: ChangeHash,
    pub seq: u64,
}

impl Witness {
    /// The witness a verified change bundle gives: its last change.
    pub fn of(document: DocumentId, author: [u8; 16], changes: &[automerge::Change]) -> Option<Witness> {
        let last = changes.iter().max_by_key(|c| c.seq())?;
        Some(Witness { document, author, last: last.hash(), seq: last.seq() })
    }
}

/// Checks a snapshot against its document's witnesses (module docs). Reads the snapshot's
/// changes through the plan's guarded boundary, and nothing else of automerge.
pub(super) fn check_snapshot(
    doc: &Automerge,
    compartment: Compartment,
    witnesses: &[&Witness],
) -> Result<(), String> {
    // Hashes, actors, sequence numbers and dependencies only: automerge's change graph holds
    // them as computed from the document's content when it was loaded (`document_change_summaries`).
    let changes = crate::plan::document_change_summaries(doc, compartment).map_err(|e| e.to_string())?;
    check_changes(&changes, witnesses)
}

fn check_changes(changes: &[ChangeSummary], witnesses: &[&Witness]) -> Result<(), String> {
    let mut last: HashMap<[u8; 16], (ChangeHash, u64)> = HashMap::new();
    for witness in witnesses {
        let entry = last.entry(witness.author).or_insert((witness.last, witness.seq));
        if witness.seq > entry.1 {
            *entry = (witness.last, witness.seq);
        }
    }
    let present: HashSet<ChangeHash> = changes.iter().map(|c| c.hash).collect();
    for (author, (hash, _)) in &last {
        if !present.contains(hash) {
            return Err(format!("it lacks the witnessed changes of {}", eenplan_protocol::api::hex(author)));
        }
    }
    // The heads: changes no other change depends on. Each must be a witnessed last change.
    let depended: HashSet<ChangeHash> = changes.iter().flat_map(|c| c.deps.iter().copied()).collect();
    let witnessed: HashSet<ChangeHash> = last.values().map(|(hash, _)| *hash).collect();
    if changes.iter().any(|c| !depended.contains(&c.hash) && !witnessed.contains(&c.hash)) {
        return Err("it holds changes that no witness accounts for".into());
    }
    let mut counts: HashMap<&[u8], u64> = HashMap::new();
    for change in changes {
        *counts.entry(change.actor.as_slice()).or_default() += 1;
    }
    for (actor, count) in counts {
        let expected = <[u8; 16]>::try_from(actor).ok().and_then(|a| last.get(&a)).map(|(_, seq)| *seq);
        if expected != Some(count) {
            return Err(format!(
                "its changes under the name {} are not the ones that device wrote",
                eenplan_protocol::api::hex(actor)
            ));
        }
    }
    Ok(())
}

/// The change logs this device still needs: document → the log position after which the
/// next page starts.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(super) struct HistoryNeeds {
    needs: BTreeMap<Vec<u8>, u64>,
    /// Documents whose log completed in the answer being applied: not asked for again by it.
    #[serde(skip)]
    completed: HashSet<Vec<u8>>,
}

impl HistoryNeeds {
    /// Asks for a document's whole log (again).
    pub fn need(&mut self, document: DocumentId) {
        let key = document.to_bytes().to_vec();
        if !self.completed.contains(&key) {
            self.needs.insert(key, 0);
        }
    }

    /// Asks for a document's whole log again even if this answer completed it: bundles of it
    /// were dropped here (the parking bound), and only the log brings them back.
    pub fn need_again(&mut self, document: DocumentId) {
        let key = document.to_bytes().to_vec();
        self.completed.remove(&key);
        self.needs.insert(key, 0);
    }

    /// Moves on by the pages an answer brought. A document asked for that got no page is one
    /// this device may not read (any more): its request is dropped.
    pub fn advance(&mut self, asked: &[HistoryRequest], pages: &[HistoryPage]) {
        for request in asked {
            if !pages.iter().any(|page| page.document == request.document) {
                self.needs.remove(request.document.0.as_slice());
            }
        }
        for page in pages {
            let key = page.document.0.to_vec();
            if !self.needs.contains_key(&key) {
                continue;
            }
            if page.complete {
                self.needs.remove(&key);
                self.completed.insert(key);
            } else {
                self.needs.insert(key, page.through);
            }
        }
    }

    pub fn has_requests(&self) -> bool {
        !self.needs.is_empty()
    }

    pub fn holds(&self, document: DocumentId) -> bool {
        self.needs.contains_key(document.to_bytes().as_slice())
    }

    fn requests(&self) -> Vec<HistoryRequest> {
        self.needs
            .iter()
            .filter_map(|(document, after)| {
                let document: [u8; 17] = document.as_slice().try_into().ok()?;
                Some(HistoryRequest { document: Fixed(document), after: *after })
            })
            .take(HISTORY_PER_REQUEST)
            .collect()
    }

    pub fn encode(&self) -> Vec<u8> {
        cbor(self)
    }
}

/// What a device does when asked for a snapshot of a document.
#[derive(Debug)]
pub(super) enum Snapshot {
    /// The sealed snapshot, to upload.
    Sealed(Blob),
    /// Its outbox still holds changes of the document: a snapshot now would leave them out
    /// of what it covers. The server asks again on the complete answer after they are pushed,
    /// in the same sync, and the device answers that ask.
    OutboxNotEmpty,
    /// Not now and not in this sync: it does not hold the document completely (a bundle
    /// waits here, its log is being fetched, changes lack dependencies), has no key of it, or
    /// the snapshot would not fit in a bundle.
    Declined,
}

impl Snapshot {
    pub fn sealed(self) -> Option<Blob> {
        match self {
            Snapshot::Sealed(blob) => Some(blob),
            Snapshot::OutboxNotEmpty | Snapshot::Declined => None,
        }
    }
}

/// Weighs an answer's snapshot asks (`compact`) with `make`, and returns what each made.
/// An honest server lists each document once and no more than it keeps requests for, so
/// repeats and the asks past [`MAX_COMPACT_PER_ANSWER`] are not weighed: a long list costs
/// nothing. A document is weighed once a sync (`snapshotted`), except while its outbox still
/// holds changes of it: it is answered once they are pushed, on a later round's ask.
pub(super) fn answer_asks(
    compact: &[Fixed<17>],
    snapshotted: &mut HashSet<[u8; 17]>,
    mut make: impl FnMut([u8; 17]) -> Result<Snapshot, CoreError>,
) -> Vec<Result<Snapshot, CoreError>> {
    let mut weighed = HashSet::new();
    let mut made = Vec::new();
    for document in compact.iter().take(MAX_COMPACT_PER_ANSWER) {
        if snapshotted.contains(&document.0) || !weighed.insert(document.0) {
            continue;
        }
        let snapshot = make(document.0);
        if !matches!(snapshot, Ok(Snapshot::OutboxNotEmpty)) {
            snapshotted.insert(document.0);
        }
        made.push(snapshot);
    }
    made
}

/// Whether a saved document of `len` bytes fits in a sealed snapshot bundle.
fn fits_in_a_snapshot(len: usize) -> bool {
    len.saturating_add(MAX_SNAPSHOT_OVERHEAD) <= MAX_BUNDLE_LEN
}

impl Device {
    pub(super) fn history_needs(&self) -> Result<HistoryNeeds, CoreError> {
        Ok(match self.store().sync_state(STATE_HISTORY)? {
            Some(bytes) => from_cbor(&bytes, "history requests")?,
            None => HistoryNeeds::default(),
        })
    }

    pub(super) fn history_requests(&self) -> Result<Vec<HistoryRequest>, CoreError> {
        Ok(self.history_needs()?.requests())
    }

    /// A sealed snapshot of `document` covering the log up to `covers`, exactly as this device
    /// uploads one when a sync answer lists the document in `compact` (with that answer's
    /// `head`); `None` when it would make none now: it does not hold the document completely,
    /// its outbox holds changes of it, it has no key of it, or the snapshot would not fit in a
    /// bundle (the sync tells these apart; a caller of this only needs the bundle). Public
    /// for tools that speak the sync protocol themselves: the load generator replays a
    /// device's side of a sync and answers the server's asks as the device would.
    pub fn seal_snapshot(&mut self, document: DocumentId, covers: u64) -> Result<Option<Blob>, CoreError> {
        let history = self.history_needs()?;
        Ok(self.snapshot_for(document.to_bytes(), covers, &history)?.sealed())
    }

    /// A sealed snapshot of a document this device holds completely (module docs), covering
    /// the log up to `covers`, or why there is none ([`Snapshot`]).
    pub(super) fn snapshot_for(
        &mut self,
        document: [u8; 17],
        covers: u64,
        history: &HistoryNeeds,
    ) -> Result<Snapshot, CoreError> {
        let Ok(document) = DocumentId::from_bytes(&document) else { return Ok(Snapshot::Declined) };
        let Some(compartment) = compartment_of(document) else { return Ok(Snapshot::Declined) };
        let plan_id = PlanId::from_bytes(document.plan);
        if !self.store().has_plan(plan_id)? || history.holds(document) {
            return Ok(Snapshot::Declined);
        }
        // The count first: asked again every round while the outbox goes up, this is what
        // answers, without reading any bundle or opening the key.
        if self.store().unpushed(plan_id, compartment)? > 0 {
            return Ok(Snapshot::OutboxNotEmpty);
        }
        if self.parked_here(document)? {
            return Ok(Snapshot::Declined);
        }
        if self.in_outbox(document)? {
            return Ok(Snapshot::OutboxNotEmpty);
        }
        let Some((epoch, key)) = self.store().latest_doc_key(plan_id, compartment)? else {
            return Ok(Snapshot::Declined);
        };
        let author = *self.device_id().as_bytes();
        let Ok(plan) = self.loaded_plan(plan_id) else { return Ok(Snapshot::Declined) };
        let Ok(doc) = plan.doc(compartment) else { return Ok(Snapshot::Declined) };
        if !doc.get_missing_deps(&[]).is_empty() {
            return Ok(Snapshot::Declined);
        }
        let saved = doc.save();
        // Too large for any bundle: the log stays as it is (a missed compaction, nothing worse;
        // before, this failed the whole sync, and with it every other plan's).
        if !fits_in_a_snapshot(saved.len()) {
            return Ok(Snapshot::Declined);
        }
        let header = NewBundle { kind: BundleKind::Snapshot { covers }, document, epoch, author };
        let bundle = Bundle::seal(header, &key, &saved, self.identity().signing_key())
            .map_err(|e| SyncError::Protocol(e.to_string()))?;
        Ok(Snapshot::Sealed(Blob(bundle.into_bytes())))
    }

    /// Whether a received bundle of `document` waits here (for its key or its author's
    /// certificate).
    fn parked_here(&self, document: DocumentId) -> Result<bool, CoreError> {
        Ok(self.store().parked_bundles()?.into_iter().any(|(_, bytes)| of_document(bytes, document)))
    }

    /// Whether a bundle of `document` this device sealed waits in its outbox.
    fn in_outbox(&self, document: DocumentId) -> Result<bool, CoreError> {
        for (_, payload) in self.store().pending_bundles()? {
            let pending: super::PendingBundle = from_cbor(&payload, "pending bundle")?;
            if of_document(pending.bundle, document) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

fn of_document(bytes: Vec<u8>, document: DocumentId) -> bool {
    Bundle::decode(bytes).is_ok_and(|b| b.header.document == document)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_too_large_for_a_bundle_is_not_snapshotted_and_one_that_fits_is() {
        let room = MAX_BUNDLE_LEN - MAX_SNAPSHOT_OVERHEAD;
        assert!(fits_in_a_snapshot(room));
        assert!(!fits_in_a_snapshot(room + 1));
        assert!(!fits_in_a_snapshot(usize::MAX));
        // The sealed bundle of the largest document that fits is accepted by the bundle code,
        // with the longest header (the largest epoch and position).
        let key = [1u8; 32];
        let author = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
        let header = NewBundle {
            kind: BundleKind::Snapshot { covers: u64::MAX },
            document: DocumentId::new([3; 16], 0).unwrap(),
            epoch: u32::MAX,
            author: [4; 16],
        };
        assert!(Bundle::seal(header, &key, &vec![0; room], &author).is_ok());
        assert!(Bundle::seal(header, &key, &vec![0; room + 1], &author).is_err());
    }

    /// Answers the asks of one answer of a sync, with what `outcome` says each document makes,
    /// and returns the documents weighed in order.
    fn weigh(asks: &[u8], snapshotted: &mut HashSet<[u8; 17]>, outcome: impl Fn(u8) -> Snapshot) -> Vec<u8> {
        let compact: Vec<Fixed<17>> = asks.iter().map(|&n| Fixed([n; 17])).collect();
        let mut weighed = Vec::new();
        let made = answer_asks(&compact, snapshotted, |document| {
            weighed.push(document[0]);
            Ok(outcome(document[0]))
        });
        assert_eq!(made.len(), weighed.len());
        weighed
    }

    #[test]
    fn an_ask_declined_or_answered_is_not_weighed_again_in_the_sync_and_one_waiting_for_the_outbox_is() {
        let mut snapshotted = HashSet::new();
        // Document 1 is declined, 2 sealed, 3 waits for its outbox to go up.
        let outcome = |n| match n {
            1 => Snapshot::Declined,
            2 => Snapshot::Sealed(Blob(vec![2])),
            _ => Snapshot::OutboxNotEmpty,
        };
        assert_eq!(weigh(&[1, 2, 3], &mut snapshotted, outcome), [1, 2, 3]);
        // The next round's answer asks for all three again: only the one that waited is weighed.
        assert_eq!(weigh(&[1, 2, 3], &mut snapshotted, outcome), [3]);
        assert_eq!(weigh(&[3, 1], &mut snapshotted, |_| Snapshot::Declined), [3]);
        assert_eq!(weigh(&[3, 1, 2], &mut snapshotted, outcome), Vec::<u8>::new());
    }

    #[test]
    fn an_answer_listing_a_document_twice_or_too_many_documents_is_weighed_within_the_bound() {
        let mut snapshotted = HashSet::new();
        let waits = |_| Snapshot::OutboxNotEmpty;
        assert_eq!(weigh(&[7, 7, 8, 7], &mut snapshotted, waits), [7, 8]);
        let many: Vec<u8> = (0..=u8::try_from(MAX_COMPACT_PER_ANSWER * 4).unwrap()).collect();
        let weighed = weigh(&many, &mut snapshotted, waits);
        assert_eq!(weighed, many[..MAX_COMPACT_PER_ANSWER]);
    }

    /// A document written by two devices, and each one's witness (its newest change).
    fn two_authors() -> (Automerge, Vec<Witness>, DocumentId) {
        use automerge::transaction::Transactable;
        let document = DocumentId::new([3; 16], 0).unwrap();
        let mut rita = automerge::AutoCommit::new().with_actor(automerge::ActorId::from(&[1u8; 16][..]));
        rita.put(automerge::ROOT, "a", 1).unwrap();
        rita.put(automerge::ROOT, "b", 2).unwrap();
        let mut wim = rita.fork().with_actor(automerge::ActorId::from(&[2u8; 16][..]));
        wim.put(automerge::ROOT, "c", 3).unwrap();
        rita.merge(&mut wim).unwrap();
        let witness = |doc: &mut automerge::AutoCommit, actor: [u8; 16]| {
            let changes: Vec<automerge::Change> =
                doc.get_changes(&[]).into_iter().filter(|c| c.actor_id().to_bytes() == actor).collect();
            Witness::of(document, actor, &changes).unwrap()
        };
        let witnesses = vec![witness(&mut rita, [1; 16]), witness(&mut rita, [2; 16])];
        (rita.document().clone(), witnesses, document)
    }

    #[test]
    fn a_snapshot_holding_exactly_its_witnessed_changes_is_taken() {
        let (doc, witnesses, _) = two_authors();
        let proof: Vec<&Witness> = witnesses.iter().collect();
        assert_eq!(check_snapshot(&doc, Compartment::Basis, &proof), Ok(()));
    }

    #[test]
    fn the_change_summaries_of_a_loaded_snapshot_are_those_of_the_changes_it_holds() {
        // The check reads automerge's change graph instead of rebuilding every change: the
        // graph of a loaded document must say what the rebuilt changes say.
        let (doc, _, _) = two_authors();
        let loaded = Automerge::load(&doc.save()).unwrap();
        let summaries = crate::plan::document_change_summaries(&loaded, Compartment::Basis).unwrap();
        let rebuilt: Vec<crate::plan::ChangeSummary> = loaded
            .get_changes(&[])
            .into_iter()
            .map(|c| crate::plan::ChangeSummary {
                hash: c.hash(),
                actor: c.actor_id().to_bytes().to_vec(),
                seq: c.seq(),
                deps: c.deps().to_vec(),
            })
            .collect();
        let actors: HashSet<&[u8]> = summaries.iter().map(|s| s.actor.as_slice()).collect();
        assert_eq!(actors.len(), 2, "both authors' changes are listed");
        assert_eq!(summaries, rebuilt);
    }

    #[test]
    fn a_snapshot_that_hides_an_authors_last_change_is_refused() {
        let (doc, witnesses, _) = two_authors();
        // The snapshot as it was before Wim's change: his witness is not in it.
        let rita_only = doc.fork_at(&[witnesses[0].last]).unwrap();
        let proof: Vec<&Witness> = witnesses.iter().collect();
        assert!(check_snapshot(&rita_only, Compartment::Basis, &proof).is_err());
    }

    #[test]
    fn a_snapshot_with_changes_no_witness_accounts_for_is_refused() {
        use automerge::transaction::Transactable;
        let (doc, witnesses, _) = two_authors();
        let proof: Vec<&Witness> = witnesses.iter().collect();
        // A change beyond Rita's witnessed last one, in her name.
        let mut later = automerge::AutoCommit::load(&doc.save())
            .unwrap()
            .with_actor(automerge::ActorId::from(&[1u8; 16][..]));
        later.put(automerge::ROOT, "d", 4).unwrap();
        assert!(check_snapshot(later.document(), Compartment::Basis, &proof).is_err());
        // A change made up under a third device's name, which wrote nothing to the document.
        let mut forged = automerge::AutoCommit::load(&doc.save())
            .unwrap()
            .with_actor(automerge::ActorId::from(&[9u8; 16][..]));
        forged.put(automerge::ROOT, "e", 5).unwrap();
        assert!(check_snapshot(forged.document(), Compartment::Basis, &proof).is_err());
        // Without Wim's witness, his changes in it are unaccounted for.
        assert!(check_snapshot(&doc, Compartment::Basis, &proof[..1]).is_err());
    }

    #[test]
    fn no_snapshot_is_made_of_a_document_with_a_sealed_or_received_bundle_still_waiting() {
        use crate::keystore::{KdfParams, PassphraseKeyStore};
        let dir = tempfile::tempdir().unwrap();
        let keystore = PassphraseKeyStore::with_params("geheim", KdfParams::INSECURE_FAST_FOR_TESTS);
        let mut device = Device::init(dir.path(), &keystore).unwrap();
        let plan = device.create_plan("Jansen").unwrap();
        let document = crate::sync::document_id(plan, Compartment::Basis);
        let none = HistoryNeeds::default();
        // The creator's own changes wait to be pushed: not held completely at the server yet,
        // but once they are pushed, later in the same sync.
        assert!(matches!(
            device.snapshot_for(document.to_bytes(), 7, &none).unwrap(),
            Snapshot::OutboxNotEmpty
        ));
        device.store_mut().write(|w| w.clear_unpushed(plan, Compartment::Basis)).unwrap();
        assert!(
            matches!(device.snapshot_for(document.to_bytes(), 7, &none).unwrap(), Snapshot::Sealed(_)),
            "held completely"
        );
        // A bundle of it this device sealed waits in the outbox while the document's count
        // says nothing is unpushed (`clear_unpushed` clears the count, not the outbox): the
        // outbox decides.
        let (epoch, key) = device.store().latest_doc_key(plan, Compartment::Basis).unwrap().unwrap();
        let me = *device.device_id().as_bytes();
        let sealed = Bundle::seal(
            NewBundle { kind: BundleKind::Changes, document, epoch, author: me },
            &key,
            b"sealed, not yet pushed",
            device.identity().signing_key(),
        )
        .unwrap();
        let pending = super::super::cbor(&super::super::PendingBundle { bundle: sealed.as_bytes().to_vec() });
        let heads = super::super::encode_heads(&[]);
        device
            .store_mut()
            .write(|w| w.put_pending_bundle(plan, Compartment::Basis, &[0x31; 16], 0, &pending, &heads))
            .unwrap();
        assert_eq!(device.store().unpushed(plan, Compartment::Basis).unwrap(), 0);
        assert!(matches!(
            device.snapshot_for(document.to_bytes(), 7, &none).unwrap(),
            Snapshot::OutboxNotEmpty
        ));
        device.store_mut().write(|w| w.acknowledge_bundle(&[0x31; 16])).unwrap();
        assert!(matches!(device.snapshot_for(document.to_bytes(), 7, &none).unwrap(), Snapshot::Sealed(_)));
        // A bundle of the document waits here (its key or its author's certificate is not at
        // hand): a snapshot now would leave its changes out for every later joiner.
        let waiting = Bundle::seal(
            NewBundle { kind: BundleKind::Changes, document, epoch: 2, author: [9; 16] },
            &[1; 32],
            b"later",
            &ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
        )
        .unwrap();
        device.store_mut().write(|w| w.park_bundle(waiting.as_bytes())).unwrap();
        assert!(matches!(device.snapshot_for(document.to_bytes(), 7, &none).unwrap(), Snapshot::Declined));
        // Nor of one whose change log is still being fetched.
        let other = crate::sync::document_id(plan, Compartment::Zorg);
        let mut fetching = HistoryNeeds::default();
        fetching.need(other);
        assert!(matches!(device.snapshot_for(other.to_bytes(), 7, &fetching).unwrap(), Snapshot::Declined));
    }

    #[test]
    fn history_requests_are_dropped_for_documents_the_server_did_not_serve() {
        let (a, b) = (DocumentId::new([1; 16], 0).unwrap(), DocumentId::new([2; 16], 1).unwrap());
        let mut needs = HistoryNeeds::default();
        needs.need(a);
        needs.need(b);
        let asked = needs.requests();
        let page =
            HistoryPage { document: Fixed(a.to_bytes()), bundles: Vec::new(), through: 9, complete: false };
        needs.advance(&asked, &[page]);
        assert!(needs.holds(a) && !needs.holds(b));
        assert_eq!(needs.requests()[0].after, 9);
        let done =
            HistoryPage { document: Fixed(a.to_bytes()), bundles: Vec::new(), through: 12, complete: true };
        needs.advance(&needs.requests(), &[done]);
        assert!(!needs.has_requests());
        // A completed log is not asked for again by the same answer's checks.
        needs.need(a);
        assert!(!needs.has_requests());
    }
}
