//! Applying a round's answer, in named steps over one [`Pass`]: take the policy, open the
//! delivered keys, judge every received bundle (and the ones parked before), check snapshots
//! against their witnesses, merge, and commit everything with the cursor in one transaction;
//! then note the chores the answer asked for. Nothing is written until every bundle has been
//! judged, so a pass that lacks a certificate is simply run again after the driver fetched it.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};

use automerge::Automerge;
use eenplan_protocol::bundle::payload::unpack_changes;
use eenplan_protocol::certificate::DeviceBody;
use eenplan_protocol::policy::Policy;
use eenplan_protocol::sync::{Fixed, RefusedEnvelope, SyncResponse, rejection_is_retryable};
use eenplan_protocol::{Bundle, BundleKind, DocumentId};

use super::authors::{Judge, Trust};
use super::driver::Run;
use super::erasure::HeldErasure;
use super::keys::{Commitments, KeyRefusal, ReceivedKey, commitments_of};
use super::outgoing::Outgoing;
use super::revocations::Revocations;
use super::snapshots::{HistoryNeeds, Snapshot, Witness, answer_asks};
use super::{ServerState, SyncError, SyncReport, compartment_of};
use crate::device::Device;
use crate::error::CoreError;
use crate::ids::PlanId;
use crate::plan::{Added, Compartment, Plan};

mod arrive;

use crate::store::PlanHeader;
use arrive::{Job, SnapshotArrival};
use eenplan_protocol::api::hex;

const STATE_CURSOR: &str = super::STATE_CURSOR;
/// Received bundles that may wait here for a key or a certificate. Beyond it the newest are
/// dropped and their documents' logs asked for again (nothing is lost, only fetched twice):
/// a peer cannot fill the device's disk with bundles it can never open. A server that keeps
/// serving bundles whose key never comes is stopped by the driver's round limit.
pub(super) const MAX_PARKED: usize = 4096;

/// A plan merged in this pass, its header, and what it gained: written with the answer.
type PlanWrite = (Plan, Option<PlanHeader>, Vec<Added>);

/// What applying an answer came to.
pub(super) enum Applied {
    Done {
        more: bool,
    },
    /// Judging needs certificates or policies: fetch them (without the device), apply again.
    NeedsFetch,
}

/// One pass over an answer: what it verified, before anything is written.
struct Pass<'a> {
    server: &'a ServerState,
    own: DeviceBody,
    now: i64,
    policy: Option<Policy>,
    commitments: Commitments,
    keys: Vec<ReceivedKey>,
    /// Documents with a bundle waiting here: their later bundles wait too, so that changes
    /// go in in the order they were written.
    waiting: HashSet<DocumentId>,
    to_park: Vec<Vec<u8>>,
    /// The witnesses kept with snapshots parked before this pass: the answer that brings a
    /// snapshot's key does not carry its witnesses again.
    held_witnesses: Vec<(i64, Vec<u8>)>,
    history: HistoryNeeds,
    /// The administrators' revocation list this pass judges by.
    revocations: Option<Revocations>,
    /// Envelopes this device could not use, to name to the server so that it drops them and
    /// asks the key's other holders again.
    complaints: Vec<RefusedEnvelope>,
    /// `basis` documents replaced by an erasure's base, written before the changes.
    replacements: Vec<super::erasure::Replacement>,
    /// Each plan's newest erasure by its verified chain, read once per pass (the chains were
    /// taken before anything is judged): judging a bundle of `basis` needs it.
    erasures: RefCell<HashMap<PlanId, Option<HeldErasure>>>,
    report: SyncReport,
}

/// A received bundle, judged.
enum Verdict {
    Changes {
        plan: PlanId,
        compartment: Compartment,
        changes: Vec<automerge::Change>,
    },
    /// Opened, not yet parsed: loaded with its plan's other arrivals (`arrive`).
    Snapshot {
        plan: PlanId,
        snapshot: SnapshotArrival,
    },
    /// The base of a member's erasure that the plan's chain names: it replaces `basis`.
    Base {
        plan: PlanId,
        epoch: u32,
        doc: Box<Automerge>,
    },
    /// Waits for its key or its author's certificate.
    Park,
    Refuse(String),
}

/// What one plan receives in this pass.
#[derive(Default)]
struct Arrivals {
    bases: Vec<(u32, Box<Automerge>)>,
    snapshots: Vec<SnapshotArrival>,
    changes: Vec<(Compartment, Vec<automerge::Change>)>,
}

impl<'a> Pass<'a> {
    fn trust(&self) -> Trust<'a> {
        Trust { root: &self.server.root_public, now: self.now }
    }
}

impl Device {
    /// Applies one answer. `last`: no more fetching; what still lacks a certificate waits.
    pub(super) fn apply_response(
        &mut self,
        server: &ServerState,
        run: &mut Run,
        outgoing: &Outgoing,
        response: &SyncResponse,
        last: bool,
    ) -> Result<Applied, CoreError> {
        let own = self.own_certificate(server)?;
        // The policy first: every check below reads it. Taking it is durable at once, and
        // taking it again on a second pass changes nothing.
        let policy_arrived = match &response.policy {
            Some(blob) => self.accept_policy(server, &blob.0, &own)?,
            None => false,
        };
        // Then the membership chains: keys are sealed and taken by them. Durable at once, and
        // taking the same entries again changes nothing.
        self.accept_membership(server, response, &mut run.report)?;
        let mut pass = Pass {
            server,
            own,
            now: self.now_ms(),
            policy: self.stored_policy()?,
            commitments: commitments_of(&response.commitments),
            keys: Vec::new(),
            waiting: HashSet::new(),
            to_park: Vec::new(),
            held_witnesses: self.store().parked_witnesses()?,
            history: self.history_needs()?,
            revocations: None,
            complaints: Vec::new(),
            replacements: Vec::new(),
            erasures: RefCell::default(),
            report: SyncReport::default(),
        };
        let judge = &mut run.judge;
        self.want_every_author(judge, response)?;
        self.receive_keys(&mut pass, judge, response);
        let named = pass.keys.iter().map(|k| k.revocations_version).max().unwrap_or(0);
        pass.revocations = Some(self.revocations_for_pass(server, named, judge)?);
        let (arrivals, parked_ids) = self.judge_bundles(&mut pass, judge, response)?;
        let witnesses = self.read_witnesses(&mut pass, judge, response, &arrivals);
        if judge.wants() && !last {
            return Ok(Applied::NeedsFetch);
        }
        pass.history.advance(&outgoing.request.history, &response.history);
        let writes = self.merge_arrivals(&mut pass, arrivals, &witnesses)?;
        let accepted = self.commit_answer(&mut pass, judge, outgoing, response, writes, &parked_ids)?;
        // The access log's part, once per answer (after the last pass): a bad audit key is
        // reported and ignored, never a reason to stop the sync.
        let audit_key = response.audit_key.as_ref();
        let (root, organisation) = (&server.root_public, pass.own.organisation.clone());
        let through = response.audit_through;
        if let Some(refusal) =
            self.take_audit_answer(root, &organisation, audit_key, through, run.audit_sent)?
        {
            pass.report.refused.push(format!("audit key from the server ignored: {refusal}"));
        }
        // One document that cannot be laid out here must not fail the others' sync.
        let minted: Vec<(PlanId, Compartment)> = pass
            .keys
            .iter()
            .filter(|k| k.minted_here && k.epoch == super::FIRST_EPOCH)
            .map(|k| (k.plan, k.compartment))
            .collect();
        for (plan, compartment) in minted {
            if let Err(e) = self.start_minted_compartment(plan, compartment) {
                pass.report
                    .refused
                    .push(format!("plan {plan} {compartment} could not be laid out here: {e}"));
            }
        }
        self.note_chores(&mut pass, run, response)?;
        let unsent = self.pending_changes()? > 0 && !self.store().pending_bundles()?.is_empty();
        let register_now =
            (policy_arrived || !outgoing.registered.is_empty()) && !self.unregistered_plans()?.is_empty();
        let more = !response.complete
            || !run.uploads.is_empty()
            || register_now
            || pass.history.has_requests()
            || (unsent && (accepted > 0 || !pass.keys.is_empty()));
        merge_reports(&mut run.report, pass.report);
        Ok(Applied::Done { more })
    }

    /// Asks at once for the certificate of every author of the answer's (and the parked)
    /// bundles that this device does not know: bundles wait in order behind one that waits,
    /// so judging alone would discover one unknown author per pass.
    fn want_every_author(&self, judge: &mut Judge, response: &SyncResponse) -> Result<(), CoreError> {
        let mut parked = self.store().parked_bundles()?;
        parked.extend(self.store().parked_witnesses()?);
        let received = response
            .bundles
            .iter()
            .chain(response.witnesses.iter())
            .chain(response.history.iter().flat_map(|page| page.bundles.iter()))
            .map(|b| b.0.as_slice());
        let mut seen = HashSet::new();
        for bytes in parked.iter().map(|(_, b)| b.as_slice()).chain(received) {
            let Some(author) = eenplan_protocol::bundle::peek_author(bytes) else { continue };
            if seen.insert(author) {
                judge.want_unless_known(author, self.store().certificate(&author)?.is_some());
            }
        }
        Ok(())
    }

    /// Opens every delivered key envelope; keys in this answer may be needed by its bundles.
    fn receive_keys(&self, pass: &mut Pass<'_>, judge: &mut Judge, response: &SyncResponse) {
        for delivery in &response.envelopes {
            match self.open_delivery(pass.trust(), delivery, &pass.commitments, pass.policy.as_ref(), judge) {
                // A key of what a member's erasure replaced opens nothing that may be taken.
                Ok(key) if self.older_than_erasure(key.plan, key.compartment, key.epoch).unwrap_or(true) => {}
                Ok(key) => pass.keys.push(key),
                Err(KeyRefusal::NotFetchedYet) => {}
                Err(KeyRefusal::Refused { why, sealer }) => {
                    pass.complaints.push(RefusedEnvelope {
                        document: delivery.document,
                        epoch: delivery.epoch,
                        sealer: Fixed(sealer),
                    });
                    let compartment = DocumentId::from_bytes(&delivery.document.0)
                        .ok()
                        .and_then(compartment_of)
                        .map_or_else(|| "an unknown compartment".to_owned(), |c| c.to_string());
                    pass.report.refused.push(format!(
                        "key for {compartment} epoch {} sealed by {}: {why}",
                        delivery.epoch,
                        hex(&sealer)
                    ));
                }
            }
        }
        pass.report.envelopes_received += pass.keys.len();
    }

    /// The key of a document's epoch: received in this answer, or held.
    fn key_for(
        &self,
        pass: &Pass<'_>,
        plan: PlanId,
        compartment: Compartment,
        epoch: u32,
    ) -> Result<Option<[u8; 32]>, CoreError> {
        if let Some(k) = pass.keys.iter().find(|k| k.is(plan, compartment, epoch)) {
            return Ok(Some(*k.key));
        }
        Ok(self.store().doc_key_at(plan, compartment, epoch)?.map(|k| *k))
    }

    /// Judges the parked bundles first, then the answer's (the pull's, then the history
    /// pages'), in order. Returns what each plan receives and the parked rows judged.
    fn judge_bundles(
        &self,
        pass: &mut Pass<'_>,
        judge: &mut Judge,
        response: &SyncResponse,
    ) -> Result<(BTreeMap<PlanId, Arrivals>, Vec<i64>), CoreError> {
        let parked = self.store().parked_bundles()?;
        let parked_ids = parked.iter().map(|(id, _)| *id).collect();
        let received =
            response.bundles.iter().chain(response.history.iter().flat_map(|page| page.bundles.iter()));
        let mut arrivals: BTreeMap<PlanId, Arrivals> = BTreeMap::new();
        for bytes in parked.into_iter().map(|(_, b)| b).chain(received.map(|b| b.0.clone())) {
            let document = Bundle::decode(bytes.clone()).ok().map(|b| b.header.document);
            let verdict = match document {
                Some(document) if pass.waiting.contains(&document) => Verdict::Park,
                _ => self.judge_bundle(pass, judge, &bytes)?,
            };
            match verdict {
                Verdict::Changes { plan, compartment, changes } => {
                    pass.report.received_bundles += 1;
                    arrivals.entry(plan).or_default().changes.push((compartment, changes));
                }
                Verdict::Snapshot { plan, snapshot } => {
                    pass.report.received_bundles += 1;
                    arrivals.entry(plan).or_default().snapshots.push(snapshot);
                }
                Verdict::Base { plan, epoch, doc } => {
                    pass.report.received_bundles += 1;
                    arrivals.entry(plan).or_default().bases.push((epoch, doc));
                }
                Verdict::Park => {
                    if let Some(document) = document {
                        pass.waiting.insert(document);
                    }
                    pass.to_park.push(bytes);
                }
                Verdict::Refuse(why) => pass.report.refused.push(why),
            }
        }
        Ok((arrivals, parked_ids))
    }

    /// One bundle: its author's certificate and signature, the sharing policy (by the newest
    /// rules or its epoch's, see `authors`), its key, and what it holds.
    fn judge_bundle(&self, pass: &Pass<'_>, judge: &mut Judge, bytes: &[u8]) -> Result<Verdict, CoreError> {
        let bundle = match Bundle::decode(bytes.to_vec()) {
            Ok(b) => b,
            Err(e) => return Ok(Verdict::Refuse(format!("bundle: {e}"))),
        };
        let header = bundle.header;
        let from = hex(&header.author);
        let Some(compartment) = compartment_of(header.document) else {
            return Ok(Verdict::Refuse(format!("bundle from {from}: unknown compartment")));
        };
        let plan = PlanId::from_bytes(header.document.plan);
        let erasure = match compartment {
            super::erasure::ERASED => self.erasure_in_pass(pass, plan)?,
            _ => None,
        };
        // What a member's erasure replaced is gone for good: only a tampered server sends it.
        if erasure.is_some_and(|(e, _)| header.epoch < e.epoch) {
            return Ok(Verdict::Refuse(format!(
                "bundle from {from}: sealed before a member's data was erased from the plan"
            )));
        }
        let named_base = header.kind.is_snapshot() && super::erasure::is_named_base(erasure, &bundle);
        let author = match self.author_certificate(pass.trust(), &header.author, judge) {
            Ok(body) => body,
            // An untrusted chain is a forgery: refuse. Anything else (not fetched yet, or the
            // certificate could not be fetched now) waits here, because the cursor moves on.
            Err(CoreError::Sync(e @ SyncError::UntrustedCertificate(_))) => {
                return Ok(Verdict::Refuse(format!("bundle from {from}: {e}")));
            }
            Err(_) => return Ok(Verdict::Park),
        };
        let verifying = ed25519_dalek::VerifyingKey::from_bytes(&author.signing_public)
            .map_err(|_| SyncError::UntrustedCertificate("author key".into()))?;
        if let Err(e) = bundle.verify(&verifying) {
            return Ok(Verdict::Refuse(format!("bundle from {from}: {e}")));
        }
        // The sharing policy, checked here as well as at the server: a server that relays a
        // write the author's role may not make gains nothing. Judged only with the epoch's key
        // at hand: its arrival brings the epoch's write rules.
        let Some(newest) = &pass.policy else { return Ok(Verdict::Park) };
        let Some(key) = self.key_for(pass, plan, compartment, header.epoch)? else {
            return Ok(Verdict::Park);
        };
        let rules = pass.keys.iter().find(|k| k.is(plan, compartment, header.epoch)).map(|k| k.rules);
        match self.may_write(
            pass.trust(),
            judge,
            &header.author,
            plan,
            compartment,
            header.epoch,
            rules,
            newest,
        ) {
            Ok(true) => {}
            Ok(false) => {
                return Ok(Verdict::Refuse(format!(
                    "bundle from {from}: the role {:?} may not write {compartment}",
                    author.role
                )));
            }
            Err(CoreError::Sync(e @ (SyncError::UntrustedCertificate(_) | SyncError::BadPolicy(_)))) => {
                return Ok(Verdict::Refuse(format!("bundle from {from}: {e}")));
            }
            Err(_) => return Ok(Verdict::Park),
        }
        if let Some(why) = self.written_after_revocation(pass, &author, plan, compartment, header.epoch)? {
            return Ok(Verdict::Refuse(format!("bundle from {from}: {why}")));
        }
        let payload = match bundle.open(&key) {
            Ok(p) => p,
            Err(e) => return Ok(Verdict::Refuse(format!("bundle from {from}: {e}"))),
        };
        Ok(match header.kind {
            // The signature vouches for the author only: a change inside that claims another
            // actor would put words in someone else's mouth (and could block that actor's real
            // change with the same sequence number).
            // A packed change is rebuilt under the signed author and no one else, and every
            // change, rebuilt or carried in full, is checked to be the author's.
            BundleKind::Changes => {
                let author = crate::ids::DeviceId::from_bytes(header.author);
                let changes =
                    unpack_changes(&header.author, &payload).map_err(|e| e.to_string()).and_then(|c| {
                        crate::plan::parse_received_changes(compartment, &c, author)
                            .map_err(|e| e.to_string())
                    });
                match changes {
                    Ok(changes) => Verdict::Changes { plan, compartment, changes },
                    Err(e) => Verdict::Refuse(format!("bundle from {from}: {e}")),
                }
            }
            // The base the verified chain names, by its signer (checked above): it replaces
            // `basis`, loaded through the same guarded boundary.
            BundleKind::Snapshot { .. } if named_base => {
                match crate::plan::load_received_document(&payload, compartment, plan) {
                    Ok(doc) if super::erasure::base_matches(erasure, &doc) => {
                        Verdict::Base { plan, epoch: header.epoch, doc: Box::new(doc) }
                    }
                    Ok(_) => Verdict::Refuse(format!("base from {from}: not the change its erasure names")),
                    Err(e) => Verdict::Refuse(format!("base from {from}: {e}")),
                }
            }
            // Loaded later, through the plan's guarded boundary, with the plan's other arrivals
            // (`arrive`): a crafted document is a refusal.
            BundleKind::Snapshot { .. } => Verdict::Snapshot {
                plan,
                snapshot: SnapshotArrival { compartment, author: header.author, payload: payload.to_vec() },
            },
        })
    }

    /// The plan's newest erasure and its signer's device, read from the chain once per pass.
    fn erasure_in_pass(&self, pass: &Pass<'_>, plan: PlanId) -> Result<Option<HeldErasure>, CoreError> {
        if let Some(known) = pass.erasures.borrow().get(&plan) {
            return Ok(*known);
        }
        let erasure = self.held_erasure(&plan)?;
        pass.erasures.borrow_mut().insert(plan, erasure);
        Ok(erasure)
    }

    /// Why a bundle of a device the revocation list names is refused: its epoch's key was made
    /// after the revocation, so it was written by a revoked device (with a server's help).
    fn written_after_revocation(
        &self,
        pass: &Pass<'_>,
        author: &DeviceBody,
        plan: PlanId,
        compartment: Compartment,
        epoch: u32,
    ) -> Result<Option<String>, CoreError> {
        let Some(revoked) = pass.revocations.as_ref().and_then(|r| r.list.revokes(author)) else {
            return Ok(None);
        };
        let made_at = match pass.keys.iter().find(|k| k.is(plan, compartment, epoch)) {
            Some(key) => Some(key.rules.made_at_ms),
            None => self.stored_epoch_rules(plan, compartment, epoch)?.map(|rules| rules.made_at_ms),
        };
        Ok(made_at
            .filter(|made| *made >= revoked.revoked_at_ms)
            .map(|_| "its author was revoked before this key epoch began".to_owned()))
    }

    /// Reads the witnesses of the snapshots in this answer (the answer's, and those kept with
    /// a parked snapshot); one that cannot be read leaves its snapshot unproven (it is then
    /// not taken).
    fn read_witnesses(
        &self,
        pass: &mut Pass<'_>,
        judge: &mut Judge,
        response: &SyncResponse,
        arrivals: &BTreeMap<PlanId, Arrivals>,
    ) -> Vec<Witness> {
        let with_snapshot: HashSet<DocumentId> = arrivals
            .iter()
            .flat_map(|(plan, a)| a.snapshots.iter().map(|s| super::document_id(*plan, s.compartment)))
            .collect();
        let held: Vec<Vec<u8>> = pass.held_witnesses.iter().map(|(_, b)| b.clone()).collect();
        let mut out = Vec::new();
        for blob in response.witnesses.iter().map(|b| &b.0).chain(held.iter()) {
            let Ok(bundle) = Bundle::decode(blob.clone()) else { continue };
            if !with_snapshot.contains(&bundle.header.document) {
                continue;
            }
            match self.judge_bundle(pass, judge, blob) {
                Ok(Verdict::Changes { changes, .. }) => {
                    if let Some(witness) = Witness::of(bundle.header.document, bundle.header.author, &changes)
                    {
                        out.push(witness);
                    }
                }
                Ok(Verdict::Refuse(why)) => pass.report.refused.push(format!("witness: {why}")),
                _ => {}
            }
        }
        out
    }

    /// Merges what arrived into the plans in memory (copies: the plans themselves are put
    /// back only once the writes commit). Returns the plans to write. The plans are taken
    /// and their erasure bases applied here, one after the other (that reads the store); the
    /// automerge work of different plans then runs at once (`arrive`).
    fn merge_arrivals(
        &mut self,
        pass: &mut Pass<'_>,
        arrivals: BTreeMap<PlanId, Arrivals>,
        witnesses: &[Witness],
    ) -> Result<Vec<PlanWrite>, CoreError> {
        let retired = self.retired_plans()?;
        let (mut jobs, mut replaced) = (Vec::new(), Vec::new());
        for (plan_id, arrived) in arrivals {
            // A plan this device removed stays removed, whatever a server still sends.
            if retired.contains(&plan_id) {
                continue;
            }
            let mut plan = match self.take_plan_or_new(plan_id) {
                Ok(plan) => plan,
                Err(CoreError::Store(e)) => {
                    pass.report
                        .refused
                        .push(format!("plan {plan_id} is damaged here, its changes were not applied: {e}"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            replaced.push(self.take_bases(pass, &mut plan, arrived.bases));
            let before = plan.heads();
            let mut proof: Vec<Witness> = Vec::new();
            if !arrived.snapshots.is_empty() {
                let documents: HashSet<DocumentId> =
                    arrived.snapshots.iter().map(|s| super::document_id(plan_id, s.compartment)).collect();
                proof.extend(witnesses.iter().filter(|w| documents.contains(&w.document)).cloned());
                // An erasure's base is the document's first change: its witness is the chain.
                proof.extend(self.base_witness(plan_id));
            }
            let (snapshots, changes) = (arrived.snapshots, arrived.changes);
            jobs.push(Job { plan, before, snapshots, changes, witnesses: proof });
        }
        let mut writes = Vec::new();
        for (merged, replaced) in arrive::merge_plans(jobs, arrive::threads()).into_iter().zip(replaced) {
            let plan_id = merged.plan.id();
            let plan = merged.plan;
            pass.report.refused.extend(merged.refused.iter().map(|r| r.message(plan_id)));
            for document in merged.history {
                pass.history.need(document);
            }
            // Counted, not rebuilt: a compartment that arrived whole is stored whole, and the
            // bytes of its thousands of changes would only be counted (`append_received`).
            let added = merged.added;
            if added.is_empty() && !replaced {
                self.put_back_plan(plan);
                continue;
            }
            pass.report.applied_changes += added.iter().map(|a| a.count).sum::<usize>();
            let family = plan.family().unwrap_or_default();
            if !self.store().has_plan(plan_id)? {
                pass.report.new_plans.push(plan_id);
            }
            pass.report.plans_updated.push(plan_id);
            writes.push((plan, Some(PlanHeader { plan: plan_id, family }), added));
        }
        Ok(writes)
    }

    /// Replaces `plan`'s `basis` by the erasure bases that arrived (the newest one counts),
    /// carrying this device's unacknowledged edits; the store is written with the answer.
    /// Returns whether anything was replaced.
    fn take_bases(&self, pass: &mut Pass<'_>, plan: &mut Plan, bases: Vec<(u32, Box<Automerge>)>) -> bool {
        let Some((epoch, base)) = bases.into_iter().max_by_key(|(epoch, _)| *epoch) else { return false };
        let replacement = self.onto_base(plan, *base, epoch).and_then(|r| match r {
            Some(r) => {
                plan.replace_document(super::erasure::ERASED, r.doc.clone())?;
                self.vouch_erasure(plan)?;
                Ok(Some(r))
            }
            None => Ok(None),
        });
        match replacement {
            Ok(Some(r)) => {
                pass.replacements.push(r);
                true
            }
            Ok(None) => false,
            Err(e) => {
                pass.report.refused.push(format!("base of plan {}: {e}", plan.id()));
                false
            }
        }
    }

    /// Writes everything this answer brought, with the cursor, in one transaction. Returns how
    /// many pushes left the outbox.
    fn commit_answer(
        &mut self,
        pass: &mut Pass<'_>,
        judge: &Judge,
        outgoing: &Outgoing,
        response: &SyncResponse,
        writes: Vec<PlanWrite>,
        parked_ids: &[i64],
    ) -> Result<usize, CoreError> {
        // A bundle refused only for its key epoch stays in the outbox: it is sealed again under
        // the document's next key once that arrives, so an edit made offline across a rotation
        // is never lost.
        // Only what the answer says it stored of what this round pushed leaves the outbox.
        let mut done: Vec<[u8; 16]> = response.stored(&outgoing.pushed);
        for rejection in &response.rejected {
            if rejection_is_retryable(&rejection.reason) {
                pass.report.resealed += 1;
            } else {
                done.push(rejection.bundle_id.0);
                pass.report.refused.push(format!(
                    "pushed bundle {}: {}",
                    hex(&rejection.bundle_id.0),
                    rejection.reason
                ));
            }
        }
        // Past the bound, the newest arrivals go (their documents' logs are fetched again
        // instead): a document's oldest bundle is the one the others wait behind, and
        // dropping it would leave the later ones to arrive without it.
        let kept = pass.to_park.len().min(MAX_PARKED);
        for dropped in pass.to_park.drain(kept..) {
            if let Ok(bundle) = Bundle::decode(dropped) {
                pass.history.need_again(bundle.header.document);
            }
        }
        if judge.fetched_certificates().next().is_some() {
            // Read models name people by these certificates.
            self.forget_views();
        }
        let witnesses = witnesses_to_park(pass, response);
        let history = pass.history.encode();
        let revocation_writes = pass.revocations.as_ref().map(Revocations::writes).unwrap_or_default();
        let complaints = self.complaints_after(&outgoing.request.refused_envelopes, &pass.complaints)?;
        let retired = self.retired_plans()?;
        let result = self.store_mut().write(|w| {
            for id in &done {
                w.acknowledge_bundle(id)?;
            }
            for replacement in &pass.replacements {
                // A plan new here: its entry first (the document row refers to it).
                if let Some((plan, header, _)) = writes.iter().find(|(p, _, _)| p.id() == replacement.plan) {
                    w.append_changes(plan, header.as_ref(), &[], false)?;
                }
                super::erasure::write_replacement(w, replacement)?;
            }
            for key in pass.keys.iter().filter(|k| !retired.contains(&k.plan)) {
                w.put_doc_key(key.plan, key.compartment, key.epoch, &key.key)?;
                w.put_epoch_rules(key.plan, key.compartment, key.epoch, &key.rules.encode())?;
                // The server delivers keys only of plans it knows: without this, the next sync
                // would register another user's plan as new and seal its keys to escrow again.
                w.mark_registered(key.plan)?;
            }
            for (plan, header, added) in &writes {
                w.append_received(plan, header.as_ref(), added)?;
            }
            for id in parked_ids {
                w.unpark(*id)?;
            }
            for bytes in &pass.to_park {
                w.park_bundle(bytes)?;
            }
            for (id, _) in &pass.held_witnesses {
                w.unpark_witness(*id)?;
            }
            for bytes in &witnesses {
                w.park_witness(bytes)?;
            }
            for (device, chains) in judge.fetched_certificates() {
                w.put_certificate(device, chains)?;
            }
            for (version, (_, signed)) in &judge.policies {
                w.put_state(&super::authors::policy_state(*version), signed)?;
            }
            for plan in &outgoing.registered {
                w.mark_registered(*plan)?;
            }
            w.put_state(super::snapshots::STATE_HISTORY, &history)?;
            for (name, value) in &revocation_writes {
                w.put_state(name, value)?;
            }
            w.put_state(super::keys::STATE_COMPLAINTS, &complaints)?;
            // As the server says, even backwards: a key received twice is checked against its
            // commitment again and changes nothing, and a cursor the server pushed too far
            // must not stop keys for good (the server resets one beyond its head).
            let mailbox = response.envelopes_through;
            w.put_state(super::STATE_MAILBOX, &mailbox.to_be_bytes())?;
            w.put_state(STATE_CURSOR, &response.head.to_be_bytes())
        });
        for (plan, _, _) in writes {
            if result.is_ok() {
                self.put_back_plan(plan);
            }
        }
        result?;
        Ok(done.len())
    }

    /// The chores an answer asked for, sent with the next round: keys for devices that lack
    /// them, snapshots of long logs, first keys of documents nobody keyed yet.
    fn note_chores(
        &mut self,
        pass: &mut Pass<'_>,
        run: &mut Run,
        response: &SyncResponse,
    ) -> Result<(), CoreError> {
        let uploads = &mut run.uploads;
        let revocations = pass.revocations.as_ref();
        let revoked = match revocations {
            Some(r) if r.current() => Some(&r.list),
            _ => {
                if !response.key_requests.is_empty() {
                    let why = revocations.and_then(|r| r.problem.clone()).unwrap_or_default();
                    pass.report.refused.push(format!(
                        "{} key requests not answered: this device lacks the newest revocation list ({why})",
                        response.key_requests.len()
                    ));
                }
                None
            }
        };
        for request in response.key_requests.iter().filter(|_| revoked.is_some()) {
            let requester = eenplan_protocol::certificate::Certificate::from_bytes(&request.certificate.0)
                .ok()
                .and_then(|c| c.claimed_device_body().ok())
                .map(|b| b.device_id)
                .unwrap_or_default();
            if !uploads.answered.insert((request.document.0, request.epoch, requester)) {
                continue;
            }
            let revoked = revoked.ok_or(CoreError::Inconsistent)?;
            match self.answer_key_request(pass.server, request, pass.now, pass.policy.as_ref(), revoked) {
                Ok(Some(upload)) => uploads.envelopes.push(upload),
                Ok(None) => {}
                Err(e) => pass.report.refused.push(format!("key request: {e}")),
            }
        }
        if response.complete {
            let history = &pass.history;
            let asks = answer_asks(&response.compact, &mut uploads.snapshotted, |document| {
                self.snapshot_for(document, response.head, history)
            });
            for made in asks {
                match made {
                    Ok(Snapshot::Sealed(upload)) => uploads.snapshots.push(upload),
                    Ok(Snapshot::OutboxNotEmpty | Snapshot::Declined) => {}
                    // A snapshot that cannot be made now is only a missed optimisation.
                    Err(e) => pass.report.refused.push(format!("snapshot not made: {e}")),
                }
            }
        }
        if let Some(policy) = pass.policy.clone() {
            self.note_rotations(pass, uploads, response, &policy);
            for document in &response.mint {
                let Ok(document) = DocumentId::from_bytes(&document.0) else { continue };
                let level = self.plan_level(&PlanId::from_bytes(document.plan))?;
                if !policy.may_read_at(&pass.own.role, document.compartment, &level)
                    || !uploads.minted.insert(document.to_bytes())
                {
                    continue;
                }
                let held = pass.revocations.as_ref().map_or(0, |r| r.list.version);
                match self.mint(document, pass.server, &pass.own, &policy, held) {
                    Ok((commitment, envelopes)) => {
                        uploads.commitments.push(commitment);
                        uploads.envelopes.extend(envelopes);
                    }
                    Err(e) => pass.report.refused.push(format!("no first key made for a document: {e}")),
                }
            }
        }
        Ok(())
    }
}

impl Device {
    /// New epochs the server asked for: a reader left a plan this device still reads.
    fn note_rotations(
        &self,
        pass: &mut Pass<'_>,
        uploads: &mut super::outgoing::Uploads,
        response: &SyncResponse,
        policy: &Policy,
    ) {
        for request in &response.rotate {
            let Ok(document) = DocumentId::from_bytes(&request.document.0) else { continue };
            if !uploads.rotated.insert((document.to_bytes(), request.epoch)) {
                continue;
            }
            let held = pass.revocations.as_ref().map_or(0, |r| r.list.version);
            match self.rotate(document, request.epoch, pass.server, &pass.own, policy, held) {
                Ok(Some(upload)) => uploads.rotations.push(upload),
                // Asked again later, once the chain shows why.
                Ok(None) => {
                    uploads.rotated.remove(&(document.to_bytes(), request.epoch));
                }
                Err(e) => pass.report.refused.push(format!("no new key made for a document: {e}")),
            }
        }
    }
}

fn merge_reports(into: &mut SyncReport, round: SyncReport) {
    into.received_bundles += round.received_bundles;
    into.applied_changes += round.applied_changes;
    for plan in round.plans_updated {
        if !into.plans_updated.contains(&plan) {
            into.plans_updated.push(plan);
        }
    }
    for plan in round.new_plans {
        if !into.new_plans.contains(&plan) {
            into.new_plans.push(plan);
        }
    }
    into.envelopes_received += round.envelopes_received;
    into.refused.extend(round.refused);
    into.resealed += round.resealed;
}

/// The witnesses to keep for the snapshots this pass parks: the answer's and those kept
/// before, of the same documents, each once. Bounded by the parked snapshots, whose number
/// is bounded ([`MAX_PARKED`]).
fn witnesses_to_park(pass: &Pass<'_>, response: &SyncResponse) -> Vec<Vec<u8>> {
    let header = |bytes: &[u8]| Bundle::decode(bytes.to_vec()).ok().map(|b| b.header);
    let waiting: HashSet<DocumentId> = pass
        .to_park
        .iter()
        .filter_map(|bytes| header(bytes))
        .filter(|h| matches!(h.kind, BundleKind::Snapshot { .. }))
        .map(|h| h.document)
        .collect();
    let mut seen = HashSet::new();
    response
        .witnesses
        .iter()
        .map(|b| b.0.as_slice())
        .chain(pass.held_witnesses.iter().map(|(_, b)| b.as_slice()))
        .filter(|bytes| header(bytes).is_some_and(|h| waiting.contains(&h.document)))
        .filter(|bytes| seen.insert(bytes.to_vec()))
        .map(<[u8]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_that_breaks_the_layout_is_refused_alone_and_the_others_of_its_sync_apply() {
        use crate::plan::NoteKind;
        use automerge::transaction::Transactable;
        let clock: std::sync::Arc<dyn crate::clock::Clock> = std::sync::Arc::new(crate::clock::SystemClock);
        let id = PlanId::random();
        let mut origin =
            Plan::create(id, crate::ids::DeviceId::from_bytes([1; 16]), "Jansen", None, clock.clone())
                .unwrap();
        let docs = Compartment::ALL.into_iter().map(|c| (c, origin.doc(c).unwrap().clone())).collect();
        let mut receiver =
            Plan::from_documents(id, crate::ids::DeviceId::from_bytes([2; 16]), docs, clock).unwrap();
        let parse = |raw: Vec<Vec<u8>>| {
            raw.into_iter().map(|r| automerge::Change::from_bytes(r).unwrap()).collect::<Vec<_>>()
        };
        let bundle = |plan: &mut Plan, text: &str| {
            let before = plan.heads();
            plan.add_note(Compartment::Basis, NoteKind::Note, text).unwrap();
            let (compartment, raw) = plan.changes_since(&before).remove(0);
            (compartment, parse(raw))
        };
        let first = bundle(&mut origin, "eerste");
        // The same author, on the side: a change that removes the family name.
        let mut fork = origin.doc(Compartment::Basis).unwrap().fork();
        fork.set_actor(automerge::ActorId::from(&[1u8; 16][..]));
        let heads = fork.get_heads();
        let mut tx = fork.transaction();
        tx.delete(automerge::ROOT, "family").unwrap();
        tx.commit();
        let bad = (Compartment::Basis, fork.get_changes(&heads));
        let second = bundle(&mut origin, "tweede");

        let refused = arrive::merge_bundles(&mut receiver, arrive::by_compartment(vec![first, bad, second]));
        assert_eq!(refused.len(), 1, "{refused:?}");
        // Notes written in the same millisecond have no fixed order.
        let mut notes: Vec<String> = receiver.view().unwrap().notes.into_iter().map(|n| n.text).collect();
        notes.sort();
        assert_eq!(notes, ["eerste", "tweede"]);
        assert_eq!(receiver.view().unwrap().family, "Jansen");
    }
}
