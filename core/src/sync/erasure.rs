//! Erasing one family member's personal data from a plan (AVG), on the device.
//!
//! Automerge keeps every value ever written, so deleting a member's entry is not erasure. The
//! regisseur's device builds a **base** instead: a new, history-free `basis` document without
//! the member ([`crate::plan::base_without_member`]), sealed at the document's next key
//! epoch, and posts it with a signed `Erase` entry that names the base's digest
//! ([`eenplan_protocol::membership::Erasure`]); the server deletes every older bundle and
//! envelope (`eenplan_server::erasure`).
//!
//! ```text
//! regisseur: erase_member(plan, member)   → Intent::Erase queued (no network)
//! sync:      prepare (lock) → in flight, durable → POST /v1/plans/{plan}/erasure (no lock)
//!            → finish (lock): the entry joins the chain, basis becomes the base
//! others:    the entry arrives with the chain; the base (a snapshot whose digest the entry
//!            names, by the entry's signer, at its epoch) replaces basis; their own edits the
//!            server never took are carried onto it ([`crate::plan::rebase_unacknowledged`])
//! ```
//!
//! Nothing is taken on the server's word: a base counts only if the verified chain names its
//! digest, epoch and author; a bundle of `basis` sealed at an older epoch is refused once the
//! chain holds the erasure, and nothing new is sealed under an older key (a device that has
//! not replaced its `basis` yet waits). A device that held edits nobody acknowledged keeps
//! them: they are merged onto the base and pushed at the new epoch, and their old bundles
//! (which carry the old history's dependencies) are never pushed.
//!
//! An erasure in flight is stored before it is posted, so a lost answer or a crash neither
//! makes a second base nor loses the first: the next sync finishes it when the chain shows
//! its entry, posts it again while the chain does not, and drops it when another entry took
//! its place.

use std::collections::HashSet;

use automerge::{Automerge, ChangeHash, ReadDoc};
use eenplan_protocol::api;
use eenplan_protocol::bundle::payload::unpack_changes;
use eenplan_protocol::membership::{
    Act, ERASED_COMPARTMENT, Entry, Erasure, Roster, SignedBy, SignedEntry, Signer,
};
use eenplan_protocol::sync::{ErasureUpload, Fixed, RotationUpload};
use eenplan_protocol::{Bundle, BundleKind, NewBundle};
use serde::{Deserialize, Serialize};

use super::access::Access;
use super::transport::Transport;
use super::{
    PendingBundle, ServerState, SyncError, cbor, decode_heads, document_id, encode_heads, from_cbor,
};
use crate::audit::{Access as Accessed, AuditAction};
use crate::device::Device;
use crate::error::CoreError;
use crate::ids::{EntityId, PlanId};
use crate::plan::{Compartment, ErasedMember, Plan};

pub(super) const STATE_ERASURES: &str = "erasures_in_flight";
/// The compartment an erasure replaces.
pub(crate) const ERASED: Compartment = Compartment::Basis;

/// A plan's newest erasure by its verified chain, with the device that signed it.
pub(super) type HeldErasure = (Erasure, [u8; 16]);

/// An erasure signed and sealed here, kept until the chain shows whether it landed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct InFlight {
    plan: PlanId,
    seq: u32,
    #[serde(with = "eenplan_protocol::bytes")]
    entry: Vec<u8>,
    /// CBOR `ErasureUpload`.
    #[serde(with = "eenplan_protocol::bytes")]
    upload: Vec<u8>,
    /// The base document (`save()`).
    #[serde(with = "eenplan_protocol::bytes")]
    base: Vec<u8>,
    epoch: u32,
}

/// A document replaced by an erasure's base, to write in the transaction that takes it.
pub(super) struct Replacement {
    pub plan: PlanId,
    pub doc: Automerge,
    pub base: Vec<u8>,
    pub base_heads: Vec<u8>,
    /// This device's edits the server never took, merged onto the base as one change.
    pub carried: Option<Vec<u8>>,
    pub epoch: u32,
}

impl Device {
    /// Erases `member`'s personal data from `plan` (AVG): queued, and carried out by the next
    /// sync (nothing here waits on the network). Only the plan's regisseur may; the member
    /// must be in the plan. Returns what the erasure removes, for the confirmation screen.
    /// Recorded in the access log (`erase_member`).
    pub fn erase_member(&mut self, plan: &PlanId, member: EntityId) -> Result<ErasedMember, CoreError> {
        let access = Accessed::on(AuditAction::EraseMember, *plan);
        self.audited(access.clone(), |d| {
            let summary = d.check_erasure(plan, member)?;
            d.queue_intent_recorded(plan, super::membership::Intent::Erase { member }, access)?;
            Ok(summary)
        })
    }

    /// What erasing `member` would remove, and whether this device may.
    fn check_erasure(&mut self, plan: &PlanId, member: EntityId) -> Result<ErasedMember, CoreError> {
        let roster = self.roster(plan)?.ok_or(SyncError::NoChainYet)?;
        if self.own_user_id()? != Some(roster.state().regisseur) {
            return Err(CoreError::NotAllowed(
                "alleen de regisseur van dit plan kan persoonsgegevens wissen".into(),
            ));
        }
        let (actor, now) = (self.device_id().actor(), self.now_ms());
        let loaded = self.loaded_plan(*plan)?;
        let doc = loaded.doc(ERASED)?;
        let (_, summary) =
            crate::plan::base_without_member(doc, loaded.vouched(ERASED), member, actor, now, &|_| true)?;
        Ok(summary)
    }

    /// The newest erasure the plan's verified chain holds: its entry's position and signer's
    /// device.
    pub(super) fn held_erasure(&self, plan: &PlanId) -> Result<Option<(Erasure, [u8; 16])>, CoreError> {
        Ok(self.roster(plan)?.as_ref().and_then(erasure_of))
    }

    /// Tells `plan` whose base its `basis` stands on (the device that signed the chain's
    /// newest erasure), so that the writers the base vouches for are shown.
    pub(crate) fn vouch_erasure(&self, plan: &mut Plan) -> Result<(), CoreError> {
        if let Some((_, signer)) = self.held_erasure(&plan.id())? {
            plan.vouch_base(ERASED, crate::ids::DeviceId::from_bytes(signer).actor());
        }
        Ok(())
    }

    /// Whether `doc`, received for `plan`'s `compartment` outside a sync (a transfer file),
    /// does not start from the base this device stands on after an erasure.
    pub(crate) fn predates_erasure(
        &mut self,
        plan: &PlanId,
        compartment: Compartment,
        doc: &Automerge,
    ) -> Result<bool, CoreError> {
        if compartment != ERASED || self.held_erasure(plan)?.is_none() {
            return Ok(false);
        }
        let held = self.loaded_plan(*plan)?.doc(ERASED).ok().and_then(root_change);
        Ok(held.is_none() || root_change(doc) != held)
    }

    /// The witness of the base's one change, from the verified chain: a later snapshot
    /// holds it although no change bundle of its writer does.
    pub(super) fn base_witness(&self, plan: PlanId) -> Option<super::snapshots::Witness> {
        let (erasure, signer) = self.held_erasure(&plan).ok()??;
        Some(super::snapshots::Witness {
            document: document_id(plan, ERASED),
            author: signer,
            last: ChangeHash(erasure.base_change.0),
            seq: 1,
        })
    }

    /// Whether `epoch` of `compartment` is older than the plan's newest erasure: its bundles
    /// and keys are refused (the server deleted them; only a tampered one sends them).
    pub(super) fn older_than_erasure(
        &self,
        plan: PlanId,
        compartment: Compartment,
        epoch: u32,
    ) -> Result<bool, CoreError> {
        Ok(compartment == ERASED && self.held_erasure(&plan)?.is_some_and(|(e, _)| epoch < e.epoch))
    }

    /// Whether bundles and keys of `basis` at `epoch` belong to before the plan's newest
    /// erasure, or this device has not replaced its `basis` by that erasure's base yet: then
    /// nothing is sealed under `epoch` and no bundle of it is taken.
    pub(super) fn before_erasure(
        &self,
        plan: PlanId,
        compartment: Compartment,
        epoch: u32,
    ) -> Result<bool, CoreError> {
        if compartment != ERASED {
            return Ok(false);
        }
        let Some((erasure, _)) = self.held_erasure(&plan)? else { return Ok(false) };
        if epoch < erasure.epoch {
            return Ok(true);
        }
        // Replacing `basis` deletes the keys of older epochs: one still held means the base
        // has not been taken here yet.
        for older in 1..erasure.epoch {
            if self.store().doc_key_at(plan, compartment, older)?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// This device's own changes of `plan`'s `basis` that no server acknowledged: in pending
    /// bundles, or not sealed yet.
    fn unacknowledged(&self, plan: PlanId, doc: &Automerge) -> Result<HashSet<ChangeHash>, CoreError> {
        let me = self.device_id();
        let since = self.store().sealed_heads(plan, ERASED)?.map(|b| decode_heads(&b)).unwrap_or_default();
        let mut out: HashSet<ChangeHash> = doc
            .get_changes(&since)
            .into_iter()
            .filter(|c| super::author_of(c) == Some(me))
            .map(|c| c.hash())
            .collect();
        let document = document_id(plan, ERASED);
        for (_, payload) in self.store().pending_bundles()? {
            let pending: PendingBundle = from_cbor(&payload, "pending bundle")?;
            let Ok(bundle) = Bundle::decode(pending.bundle) else { continue };
            if bundle.header.document != document {
                continue;
            }
            let Some(key) = self.store().doc_key_at(plan, ERASED, bundle.header.epoch)? else { continue };
            let Ok(opened) = bundle.open(&key) else { continue };
            let Ok(opened) = unpack_changes(me.as_bytes(), &opened) else { continue };
            if let Ok(changes) = crate::plan::parse_received_changes(ERASED, &opened, me) {
                out.extend(changes.iter().map(|c| c.hash()).filter(|h| doc.get_change_by_hash(h).is_some()));
            }
        }
        Ok(out)
    }

    /// `plan`'s `basis` replaced by `base`, with this device's unacknowledged edits carried
    /// onto it. `None` when the plan already stands on this base.
    pub(super) fn onto_base(
        &self,
        plan: &Plan,
        base: Automerge,
        epoch: u32,
    ) -> Result<Option<Replacement>, CoreError> {
        let base_root = root_change(&base);
        let held = plan.doc(ERASED).ok();
        if held.is_some_and(|doc| root_change(doc) == base_root && base_root.is_some()) {
            return Ok(None);
        }
        let saved = base.save();
        let base_heads = encode_heads(&base.get_heads());
        let (doc, carried) = match held {
            Some(old) => {
                let unacknowledged = self.unacknowledged(plan.id(), old)?;
                let actor = self.device_id().actor();
                match crate::plan::rebase_unacknowledged(old, &unacknowledged, &base, actor, self.now_ms())? {
                    Some(rebased) => {
                        let carried = rebased.get_last_local_change().map(|c| c.raw_bytes().to_vec());
                        (rebased, carried)
                    }
                    None => (base, None),
                }
            }
            None => (base, None),
        };
        Ok(Some(Replacement { plan: plan.id(), doc, base: saved, base_heads, carried, epoch }))
    }

    /// Takes `base` as `plan`'s `basis` now, durably (the regisseur's own erasure).
    fn take_base(&mut self, plan_id: PlanId, base: Automerge, epoch: u32) -> Result<(), CoreError> {
        let mut plan = self.take_plan_or_new(plan_id)?;
        let replacement = match self.onto_base(&plan, base, epoch) {
            Ok(Some(r)) => r,
            Ok(None) => {
                self.put_back_plan(plan);
                return Ok(());
            }
            Err(e) => {
                self.put_back_plan(plan);
                return Err(e);
            }
        };
        let written = plan
            .replace_document(ERASED, replacement.doc.clone())
            .map_err(CoreError::from)
            .and_then(|()| self.vouch_erasure(&mut plan))
            .and_then(|()| Ok(self.store_mut().write(|w| write_replacement(w, &replacement))?));
        self.put_back_plan(plan);
        if written.is_err() {
            // The plan in memory must match the store: load it again.
            self.close_plan(&plan_id);
        }
        written
    }

    /// The erasure to post for a queued intent: the one in flight for the plan if the chain
    /// does not show it yet, a new one otherwise. `Ok(None)`: the one in flight landed and
    /// is finished now.
    fn erasure_to_post(
        &mut self,
        server: &ServerState,
        plan: PlanId,
        member: EntityId,
    ) -> Result<Option<InFlight>, CoreError> {
        let mut flights: Vec<InFlight> = self.durable_queue(STATE_ERASURES, "erasures in flight")?;
        if let Some(index) = flights.iter().position(|f| f.plan == plan) {
            let flight = flights[index].clone();
            let roster = self.roster(&plan)?.ok_or(SyncError::NoChainYet)?;
            if roster.seq() < flight.seq {
                return Ok(Some(flight));
            }
            if landed(&roster, &flight)? {
                self.finish_erasure(server, &flight)?;
                return Ok(None);
            }
            flights.remove(index);
            self.put_durable_queue(STATE_ERASURES, &flights)?;
        }
        let flight = self.prepare_erasure(server, plan, member)?;
        flights.push(flight.clone());
        self.put_durable_queue(STATE_ERASURES, &flights)?;
        Ok(Some(flight))
    }

    /// Builds, seals and signs an erasure (see the module docs).
    fn prepare_erasure(
        &mut self,
        server: &ServerState,
        plan: PlanId,
        member: EntityId,
    ) -> Result<InFlight, CoreError> {
        let held = self.held_chain(&plan)?.ok_or(SyncError::NoChainYet)?;
        self.erasure_may_start(plan)?;
        let (current, _) = self
            .store()
            .latest_doc_key(plan, ERASED)?
            .ok_or_else(|| SyncError::ErasureWaits("de sleutel van het plan is er nog niet".into()))?;
        let epoch = current + 1;
        let covers = self.cursor()?;
        let keep = self.family_copy_keys(plan)?;
        let (me, now) = (self.device_id(), self.now_ms());
        let keep_key = |key: &str| !key.starts_with(crate::plan::FAMILY_COPY_PREFIX) || keep.contains(key);
        let loaded = self.loaded_plan(plan)?;
        let doc = loaded.doc(ERASED)?;
        let (base, _) = crate::plan::base_without_member(
            doc,
            loaded.vouched(ERASED),
            member,
            me.actor(),
            now,
            &keep_key,
        )?;
        let base_saved = base.save();
        let key = *crate::crypto::SecretKey::generate().as_bytes();
        let header = NewBundle {
            kind: BundleKind::Snapshot { covers },
            document: document_id(plan, ERASED),
            epoch,
            author: *me.as_bytes(),
        };
        let bundle = Bundle::seal(header, &key, &base_saved, self.identity().signing_key())
            .map_err(|e| SyncError::Protocol(e.to_string()))?;
        let base_change = root_change(&base).ok_or_else(|| SyncError::Protocol("an empty base".into()))?;
        let act = Act::Erase(Erasure {
            epoch,
            base: Fixed(bundle.digest()),
            covers,
            base_change: Fixed(base_change.0),
        });
        let entry = Entry::next(&held.roster, self.now_ms(), Signer::Device(self.own_chain()?), act)
            .sign(self.identity().signing_key())
            .to_bytes();
        let own = self.own_certificate(server)?;
        let policy = self.stored_policy()?.ok_or_else(|| SyncError::BadPolicy("no policy held".into()))?;
        let revocations = self.held_revocations(server)?.version;
        let seq = held.roster.seq() + 1;
        let (commitment, envelopes) = self.mint_uploads_at(
            document_id(plan, ERASED),
            epoch,
            &key,
            server,
            &own,
            (policy.version, revocations, seq),
        )?;
        let upload = ErasureUpload {
            entry: eenplan_protocol::sync::Blob(entry.clone()),
            base: eenplan_protocol::sync::Blob(bundle.into_bytes()),
            rotation: RotationUpload { commitment, envelopes },
        };
        Ok(InFlight { plan, seq, entry, upload: cbor(&upload), base: base_saved, epoch })
    }

    /// An erasure starts only from a `basis` this device holds completely and has pushed:
    /// the base must hold everything the server acknowledged and nothing it did not.
    fn erasure_may_start(&self, plan: PlanId) -> Result<(), CoreError> {
        let waits = |why: &str| Err(SyncError::ErasureWaits(why.into()).into());
        if self.store().unpushed(plan, ERASED)? > 0 {
            return waits("eigen wijzigingen worden eerst verstuurd");
        }
        let document = document_id(plan, ERASED);
        let parked = self.store().parked_bundles()?;
        if parked.iter().any(|(_, b)| Bundle::decode(b.clone()).is_ok_and(|b| b.header.document == document))
        {
            return waits("ontvangen wijzigingen wachten nog op een sleutel");
        }
        if self.before_erasure(plan, ERASED, u32::MAX)? {
            return waits("een eerdere wissing is hier nog niet verwerkt");
        }
        Ok(())
    }

    /// The root keys of the family-copy items the regisseur's rules accept now: the base
    /// keeps only those (in the base they all read as the eraser's, who holds regie).
    fn family_copy_keys(&mut self, plan: PlanId) -> Result<HashSet<String>, CoreError> {
        Ok(self.included_by_regie(&plan)?.into_iter().map(|item| item.key()).collect())
    }

    /// The chain takes the erasure's entry and `basis` becomes its base; then it is no longer
    /// in flight.
    fn finish_erasure(&mut self, server: &ServerState, flight: &InFlight) -> Result<(), CoreError> {
        self.keep_own_entry(server, flight.plan, &flight.entry)?;
        let base = crate::plan::load_received_document(&flight.base, ERASED, flight.plan)?;
        self.take_base(flight.plan, base, flight.epoch)?;
        self.drop_erasure_in_flight(flight.plan)
    }

    fn drop_erasure_in_flight(&mut self, plan: PlanId) -> Result<(), CoreError> {
        let mut flights: Vec<InFlight> = self.durable_queue(STATE_ERASURES, "erasures in flight")?;
        flights.retain(|f| f.plan != plan);
        self.put_durable_queue(STATE_ERASURES, &flights)
    }
}

/// Writes a replacement of `basis` (see [`crate::store::StoreWriter::replace_document`]).
pub(super) fn write_replacement(
    w: &mut crate::store::StoreWriter<'_>,
    r: &Replacement,
) -> Result<(), crate::store::StoreError> {
    w.replace_document(r.plan, ERASED, &r.base, &r.base_heads, r.carried.as_deref(), r.epoch)
}

/// The erasure a verified chain holds, with the device that signed it.
fn erasure_of(roster: &Roster) -> Option<(Erasure, [u8; 16])> {
    let (seq, erasure) = roster.erasure()?;
    let step = roster.steps().iter().find(|s| s.seq == seq)?;
    match step.by {
        SignedBy::Device { device, .. } => Some((*erasure, device)),
        SignedBy::Admin { .. } => None,
    }
}

/// Whether the chain holds the flight's own entry at its position.
fn landed(roster: &Roster, flight: &InFlight) -> Result<bool, CoreError> {
    let ours = SignedEntry::from_bytes(&flight.entry).map_err(|e| SyncError::Protocol(e.to_string()))?;
    Ok(roster.erasure().is_some_and(|(seq, e)| {
        seq == flight.seq && ours.claimed().ok().is_some_and(|c| c.act == Act::Erase(*e))
    }))
}

/// The change a document starts from (no dependencies); a base has exactly one.
fn root_change(doc: &Automerge) -> Option<ChangeHash> {
    doc.get_changes(&[]).into_iter().find(|c| c.deps().is_empty()).map(|c| c.hash())
}

/// Whether `base` is the one document the erasure names: its only root change is the one the
/// entry commits to.
pub(super) fn base_matches(erasure: Option<(Erasure, [u8; 16])>, base: &Automerge) -> bool {
    erasure.is_some_and(|(e, _)| {
        root_change(base) == Some(ChangeHash(e.base_change.0)) && base.get_changes(&[]).len() == 1
    })
}

/// Whether a received snapshot is the base of the chain's newest erasure: its digest, epoch
/// and author are the ones the verified entry names.
pub(super) fn is_named_base(erasure: Option<(Erasure, [u8; 16])>, bundle: &Bundle) -> bool {
    let header = bundle.header;
    erasure.is_some_and(|(e, signer)| {
        header.document.compartment == ERASED_COMPARTMENT
            && header.epoch == e.epoch
            && header.author == signer
            && bundle.digest() == e.base.0
    })
}

/// Posts the queued erasure of `member` and finishes it; returns the entry, as the other
/// acts do (the caller keeps it, a no-op here, and settles the intent).
pub(super) fn carry_out(
    access: &impl Access,
    server: &ServerState,
    transport: &Transport,
    token: &str,
    plan: PlanId,
    member: EntityId,
) -> Result<Vec<u8>, CoreError> {
    let Some(flight) = access.with(|device| device.erasure_to_post(server, plan, member))? else {
        let held = access.with(|device| device.held_chain(&plan))?.ok_or(SyncError::NoChainYet)?;
        return held.entries.last().cloned().ok_or_else(|| SyncError::NoChainYet.into());
    };
    let posted = transport.post(
        &api::erasure_path(plan.as_bytes()),
        Some(token),
        "application/cbor",
        flight.upload.clone(),
        4096,
    );
    match posted {
        Ok(_) => {}
        // The epoch moved on (a rotation this device has no key of yet): made again after
        // the next round, like an entry that met another first.
        Err(SyncError::Server { status: 409, code, message }) if code == "stale" => {
            access.with(|device| device.drop_erasure_in_flight(plan))?;
            return Err(SyncError::Server {
                status: 409,
                code: api::ErrorCode::MembershipConflict.as_str().to_owned(),
                message,
            }
            .into());
        }
        // The chain or the document's log moved on: the next round shows whether the entry
        // landed (a lost answer) or another came first.
        Err(e @ SyncError::Server { status: 409, .. }) => return Err(e.into()),
        Err(e @ SyncError::Server { status, .. }) if (400..500).contains(&status) && status != 401 => {
            access.with(|device| device.drop_erasure_in_flight(plan))?;
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    }
    access.with(|device| device.finish_erasure(server, &flight))?;
    Ok(flight.entry)
}
