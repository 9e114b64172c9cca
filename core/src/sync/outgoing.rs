//! What a round sends: this device's unsent changes sealed into bundles (durably, before the
//! push), plans new to the server with the commitments to their keys, the chores the last
//! answer asked for (key envelopes for others, snapshots, first keys), and the change logs it
//! still needs. Prepared under the device's lock, sent without it.

use std::collections::HashSet;

use eenplan_protocol::bundle::payload::pack_changes;
use eenplan_protocol::bundle::{
    BundleError, MAX_BUNDLE_LEN, MAX_OVERHEAD, open_retired, peek_retired, without_author,
};
use eenplan_protocol::certificate::DeviceBody;
use eenplan_protocol::epoch::{Commitment, Minter};
use eenplan_protocol::policy::Policy;
use eenplan_protocol::sync::{
    Blob, EnvelopeUpload, Fixed, MAX_NEW_PLANS, MAX_PUSHES, RotationUpload, SyncRequest,
};
use eenplan_protocol::{Bundle, BundleKind, DocumentId, NewBundle, envelope};

use super::driver::Run;
use super::{
    ESCROW_RECIPIENT, PendingBundle, ServerState, SyncError, author_of, cbor, compartment_of, decode_heads,
    document_id, encode_heads, from_cbor,
};
use crate::device::Device;
use crate::error::CoreError;
use crate::ids::PlanId;
use crate::plan::Compartment;

/// A round's request, the plans it registers, and the ids of the bundles it pushes (what
/// the answer's acknowledgement is read against).
#[derive(Debug)]
pub(super) struct Outgoing {
    pub request: SyncRequest,
    pub registered: Vec<PlanId>,
    pub pushed: Vec<[u8; 16]>,
}

/// Chores an answer asked for, sent with the next round.
#[derive(Debug, Default)]
pub(super) struct Uploads {
    pub envelopes: Vec<EnvelopeUpload>,
    pub snapshots: Vec<Blob>,
    /// Commitments to keys this device made in answer to `mint`.
    pub commitments: Vec<Blob>,
    /// Documents minted in this sync.
    pub minted: HashSet<[u8; 17]>,
    /// New epochs this device made when asked to rotate a document.
    pub rotations: Vec<RotationUpload>,
    /// (document, epoch) rotated in this sync.
    pub rotated: HashSet<([u8; 17], u32)>,
    /// Key requests already answered in this sync: a request the server keeps repeating
    /// (it dropped the envelope) is not answered again, so the sync settles.
    pub answered: HashSet<([u8; 17], u32, [u8; 16])>,
    /// Documents already snapshotted in this sync.
    pub snapshotted: HashSet<[u8; 17]>,
}

impl Uploads {
    pub fn is_empty(&self) -> bool {
        self.envelopes.is_empty()
            && self.snapshots.is_empty()
            && self.commitments.is_empty()
            && self.rotations.is_empty()
    }
}

/// The most a bundle's changes may take, so the sealed bundle stays within the limit.
const MAX_CHANGES_PER_BUNDLE: usize = MAX_BUNDLE_LEN - MAX_OVERHEAD;
/// Changes are grouped into bundles of about this much (a single larger change goes alone):
/// a day of notes then crosses a poor link in rounds that each finish well within the
/// deadlines, instead of as one upload that outlasts them.
const BUNDLE_TARGET: usize = 16 * 1024;

impl Device {
    /// Seals what is unsent and builds the round's request.
    pub(super) fn prepare_round(
        &mut self,
        server: &ServerState,
        run: &mut Run,
    ) -> Result<Outgoing, CoreError> {
        run.report.refused.extend(self.seal_outgoing()?);
        let own = self.own_certificate(server)?;
        let policy = self.stored_policy()?;
        let mut request = SyncRequest {
            since: self.cursor()?,
            envelopes_after: Some(self.mailbox_cursor()?),
            membership_after: Some(self.membership_cursor()?),
            policy_version: policy.as_ref().map_or(0, |p| p.version),
            max_bytes: run.page.bytes(),
            ..Default::default()
        };
        // A plan is registered (with the commitments to its keys) only once the device knows
        // the sharing policy, which says which of its keys it may hand on; until then its
        // bundles wait, since the server would refuse them.
        let unregistered = self.unregistered_plans()?;
        let (mut registered, mut waiting) = match &policy {
            Some(_) => (unregistered, Vec::new()),
            None => (Vec::new(), unregistered),
        };
        // The server takes at most this many new plans (and their commitments) per request;
        // the rest register in the next rounds, and their bundles wait until then.
        if registered.len() > MAX_NEW_PLANS {
            waiting.extend(registered.split_off(MAX_NEW_PLANS));
        }
        if let Some(policy) = &policy {
            for plan in &registered {
                let (commitments, envelopes) = self.registration_uploads(*plan, server, policy, &own)?;
                request.new_plans.push(Fixed(*plan.as_bytes()));
                request.charters.push(self.charter(*plan)?);
                request.commitments.extend(commitments);
                request.envelopes.extend(envelopes);
            }
        }
        let (pushed_ids, push): (Vec<_>, Vec<_>) =
            self.pushes(&waiting, run.page.push_budget() as usize)?.into_iter().unzip();
        // Own bundles go without their author id: the server puts the session's device back,
        // and the signature over it decides (`bundle::with_author`).
        let me = *self.device_id().as_bytes();
        for blob in push {
            match without_author(&blob.0, &me) {
                Some(pushed) => request.push_own.push(Blob(pushed)),
                None => request.push.push(blob),
            }
        }
        run.report.pushed_bundles += request.push.len() + request.push_own.len();
        // The access log rides along in what the round's budget leaves (a quarter at least).
        let budget = run.page.push_budget() as usize;
        let pushed: usize = request.push.iter().chain(&request.push_own).map(|b| b.0.len()).sum();
        let audit_budget = budget.saturating_sub(pushed).max(budget / 4);
        let audit =
            self.audit_request(&server.root_public, &own.organisation, run.audit_sent, audit_budget)?;
        request.audit = audit.uploads;
        request.audit_key_version = audit.key_version;
        run.audit_sent = run.audit_sent.max(audit.last);
        let uploads = &mut run.uploads;
        request.commitments.append(&mut uploads.commitments);
        request.rotations.append(&mut uploads.rotations);
        run.report.envelopes_sent += uploads.envelopes.len();
        run.report.snapshots_sent += uploads.snapshots.len();
        request.envelopes.append(&mut uploads.envelopes);
        request.snapshots.append(&mut uploads.snapshots);
        request.history = self.history_requests()?;
        request.refused_envelopes = self.pending_complaints()?;
        Ok(Outgoing { request, registered, pushed: pushed_ids })
    }

    /// The outbox's bundles for this round, oldest first, up to about `budget` bytes (at
    /// least one): a day of offline notes goes over a poor link in rounds that each finish
    /// in time. Bundles of plans waiting for registration stay.
    fn pushes(&self, waiting: &[PlanId], budget: usize) -> Result<Vec<([u8; 16], Blob)>, CoreError> {
        let mut out = Vec::new();
        let mut used = 0usize;
        for (id, payload) in self.store().pending_bundles()? {
            let pending: PendingBundle = from_cbor(&payload, "pending bundle")?;
            let header = Bundle::decode(pending.bundle.clone()).ok().map(|b| b.header);
            let waits = header.is_some_and(|h| {
                let plan = PlanId::from_bytes(h.document.plan);
                waiting.contains(&plan)
                    // Sealed before a member's erasure: carried onto the base instead.
                    || super::compartment_of(h.document)
                        .is_some_and(|c| self.before_erasure(plan, c, h.epoch).unwrap_or(true))
            });
            if waits {
                continue;
            }
            if out.len() >= MAX_PUSHES
                || (!out.is_empty() && used.saturating_add(pending.bundle.len()) > budget)
            {
                break;
            }
            used = used.saturating_add(pending.bundle.len());
            out.push((id, Blob(pending.bundle)));
        }
        Ok(out)
    }

    pub(super) fn unregistered_plans(&self) -> Result<Vec<PlanId>, CoreError> {
        let mut out = Vec::new();
        for entry in self.plan_entries()? {
            if let crate::PlanListEntry::Ok(summary) = entry
                && !self.store().is_registered(summary.id)?
                && self.store().latest_doc_key(summary.id, Compartment::Basis)?.is_some()
            {
                out.push(summary.id);
            }
        }
        Ok(out)
    }

    /// What registering a plan made here sends: for each compartment this device's role may
    /// read, the commitment to the key it made and that key sealed to escrow and to itself.
    /// Keys of compartments the role may not read are forgotten here and now: another role's
    /// device makes that compartment's key when it first needs one.
    fn registration_uploads(
        &mut self,
        plan: PlanId,
        server: &ServerState,
        policy: &Policy,
        own: &DeviceBody,
    ) -> Result<(Vec<Blob>, Vec<EnvelopeUpload>), CoreError> {
        let mut commitments = Vec::new();
        let mut envelopes = Vec::new();
        let mut forget = Vec::new();
        for compartment in Compartment::ALL {
            let Some((epoch, key)) = self.store().latest_doc_key(plan, compartment)? else { continue };
            if !policy.may_read(&own.role, compartment as u8) {
                forget.push(compartment);
                continue;
            }
            let document = document_id(plan, compartment);
            let revocations = self.held_revocations(server)?.version;
            let (commitment, sealed) =
                self.mint_uploads(document, epoch, &key, server, own, (policy.version, revocations))?;
            commitments.push(commitment);
            envelopes.extend(sealed);
        }
        if !forget.is_empty() {
            // What was written there before the device knew the policy stays on this device
            // only: it no longer counts as waiting for a push.
            self.store_mut().write(|w| {
                for compartment in &forget {
                    w.delete_doc_keys(plan, *compartment)?;
                    w.clear_unpushed(plan, *compartment)?;
                }
                Ok(())
            })?;
        }
        Ok((commitments, envelopes))
    }

    /// The signed commitment to a key this device made, and the key sealed to escrow and to
    /// this device itself (so the server knows it holds it, and a reinstalled store could
    /// get it back).
    pub(super) fn mint_uploads(
        &self,
        document: DocumentId,
        epoch: u32,
        key: &[u8; 32],
        server: &ServerState,
        own: &DeviceBody,
        versions: (u32, u32),
    ) -> Result<(Blob, Vec<EnvelopeUpload>), CoreError> {
        // Its co-readers check by the plan's chain that this device read the compartment then.
        let membership = self.roster(&PlanId::from_bytes(document.plan))?.map_or(0, |r| r.seq());
        self.mint_uploads_at(document, epoch, key, server, own, (versions.0, versions.1, membership))
    }

    /// As [`Device::mint_uploads`], naming chain position `membership` (an erasure names
    /// the entry it is about to post).
    pub(super) fn mint_uploads_at(
        &self,
        document: DocumentId,
        epoch: u32,
        key: &[u8; 32],
        server: &ServerState,
        own: &DeviceBody,
        (policy_version, revocations_version, membership): (u32, u32, u32),
    ) -> Result<(Blob, Vec<EnvelopeUpload>), CoreError> {
        let me = *self.device_id().as_bytes();
        // The epoch's writes are judged by the policy this device holds now (see `authors`),
        // and its co-readers learn which revocation list it held (see `revocations`).
        let commitment = Commitment::new(document, epoch, key, Minter::Device(Fixed(me)), self.now_ms())
            .under_policy(policy_version)
            .under_revocations(revocations_version)
            .at_membership(membership)
            .sign(self.identity().signing_key());
        let mut envelopes = Vec::new();
        for (recipient, public) in
            [(ESCROW_RECIPIENT, &server.escrow_public[..]), (me, &own.agreement_public[..])]
        {
            let sealed = envelope::seal(public, recipient, document, epoch, key)
                .map_err(|e| SyncError::Protocol(e.to_string()))?;
            let sealed =
                envelope::sign(sealed, me, self.identity().signing_key(), document, epoch, recipient);
            envelopes.push(EnvelopeUpload {
                recipient: Fixed(recipient),
                document: Fixed(document.to_bytes()),
                epoch,
                envelope: Blob(sealed),
            });
        }
        Ok((Blob(commitment.to_bytes()), envelopes))
    }

    /// Re-seals pending bundles whose document has a newer key than the one they were sealed
    /// under (a rotation happened while they waited, perhaps offline), so that their changes
    /// reach the others under the key the server accepts, and the old key's holders (a
    /// revoked device among them) never see them.
    fn reseal_stale_pending(&mut self) -> Result<(), CoreError> {
        let mut replaced = Vec::new();
        for (id, payload) in self.store().pending_bundles()? {
            let pending: PendingBundle = from_cbor(&payload, "pending bundle")?;
            let Some((was, payload)) = self.stale_payload(&pending.bundle)? else { continue };
            let plan = PlanId::from_bytes(was.document.plan);
            let Some(compartment) = compartment_of(was.document) else { continue };
            let Some((epoch, key)) = self.store().latest_doc_key(plan, compartment)? else { continue };
            // A new seal: a new id (drawn by `seal`), so a new nonce, under the newest key.
            let sealed =
                Bundle::seal(NewBundle { epoch, ..was }, &key, &payload, self.identity().signing_key())
                    .map_err(|e| SyncError::Protocol(e.to_string()))?;
            let new_id = sealed.header.bundle_id;
            replaced.push((id, new_id, cbor(&PendingBundle { bundle: sealed.into_bytes() })));
        }
        if replaced.is_empty() {
            return Ok(());
        }
        self.store_mut().write(|w| {
            for (old, new, bundle) in &replaced {
                w.replace_pending_bundle(old, new, bundle)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// The header fields and payload of a pending bundle that must be sealed again: one
    /// whose document has a newer key than it was sealed under (unless it was sealed before
    /// a member's erasure: such changes depend on the history it removed and are carried
    /// onto the base instead, `erasure`), or one in the retired format 1, which the server
    /// no longer takes. `None`: it stays as it is.
    fn stale_payload(&self, bytes: &[u8]) -> Result<Option<(NewBundle, Vec<u8>)>, CoreError> {
        let (was, retired) = match Bundle::decode(bytes.to_vec()) {
            Ok(bundle) => (bundle.header, false),
            Err(BundleError::RetiredVersion(_)) => match peek_retired(bytes) {
                Some(header) => (header, true),
                None => return Ok(None),
            },
            Err(_) => return Ok(None),
        };
        let Some(compartment) = compartment_of(was.document) else { return Ok(None) };
        let plan = PlanId::from_bytes(was.document.plan);
        let Some((epoch, _)) = self.store().latest_doc_key(plan, compartment)? else { return Ok(None) };
        if (epoch <= was.epoch && !retired) || self.before_erasure(plan, compartment, was.epoch)? {
            return Ok(None);
        }
        let Some(old_key) = self.store().doc_key_at(plan, compartment, was.epoch)? else { return Ok(None) };
        let payload = if retired {
            open_retired(bytes, &old_key).map(|(_, payload)| payload)
        } else {
            Bundle::decode(bytes.to_vec()).and_then(|bundle| bundle.open(&old_key))
        };
        Ok(payload.ok().map(|payload| (was.unsealed(), payload)))
    }

    /// Seals this device's unsent changes of each document into bundles, durably. A document
    /// that cannot be sealed (damaged here, or a change too large for any bundle) keeps its
    /// changes and is reported; it never stops the other documents' push.
    fn seal_outgoing(&mut self) -> Result<Vec<String>, CoreError> {
        self.reseal_stale_pending()?;
        // Changes to a compartment this device's role may not write stay on the device: every
        // other party would refuse them.
        let writable = match (self.stored_policy()?, self.server_state()?) {
            (Some(policy), Some(server)) => self.own_certificate(&server).ok().map(|own| (policy, own.role)),
            _ => None,
        };
        let mut problems = Vec::new();
        let mut sealed = Vec::new();
        let plans: Vec<PlanId> = self
            .plan_entries()?
            .into_iter()
            .filter_map(|e| match e {
                crate::PlanListEntry::Ok(s) => Some(s.id),
                crate::PlanListEntry::Damaged { .. } => None,
            })
            .collect();
        for plan_id in plans {
            for compartment in Compartment::ALL {
                if self.store().unpushed(plan_id, compartment)? == 0 {
                    continue;
                }
                if let Some((policy, role)) = &writable
                    && !policy.may_write_at(role, compartment as u8, &self.plan_level(&plan_id)?)
                {
                    continue;
                }
                match self.seal_document(plan_id, compartment) {
                    Ok(bundles) => sealed.extend(bundles),
                    Err(why) => {
                        problems.push(format!("plan {plan_id} {compartment}: {why}; its changes wait here"))
                    }
                }
            }
        }
        if !sealed.is_empty() {
            self.store_mut().write(|w| {
                for Sealed { plan, compartment, id, changes, bundle, heads } in &sealed {
                    let pending = cbor(&PendingBundle { bundle: bundle.clone() });
                    w.put_pending_bundle(*plan, *compartment, id, *changes, &pending, heads)?;
                }
                Ok(())
            })?;
        }
        Ok(problems)
    }

    /// Whether the plan's chain shows that someone who could read the document at the
    /// membership position its current key was made at cannot read it now: then nothing new
    /// goes under that key, whatever the server says, and waits for the next epoch.
    fn epoch_outlived(&self, plan: PlanId, compartment: Compartment, epoch: u32) -> Result<bool, CoreError> {
        let (Some(roster), Some(policy)) = (self.roster(&plan)?, self.stored_policy()?) else {
            return Ok(false);
        };
        // The position the key was made at: named by its maker, or (an administrator's key)
        // the one in force when it was made.
        let made_at = match self.store().epoch_rules(plan, compartment, epoch)? {
            Some(bytes) => {
                let rules = from_cbor::<super::authors::EpochRules>(&bytes, "epoch rules")?;
                match rules.membership_seq {
                    0 => roster.seq_at_time(rules.made_at_ms),
                    seq => seq,
                }
            }
            None => 1,
        };
        let reads =
            |role: &str, level: &str| super::membership::reads(&policy, role, compartment as u8, level);
        Ok(roster.lost_readers_since(made_at.max(1), &reads))
    }

    /// This device's changes of one document not sealed yet, as bundles within the size limit.
    fn seal_document(&mut self, plan_id: PlanId, compartment: Compartment) -> Result<Vec<Sealed>, String> {
        let store_error = |e: crate::store::StoreError| e.to_string();
        let Some((epoch, key)) = self.store().latest_doc_key(plan_id, compartment).map_err(store_error)?
        else {
            return Ok(Vec::new());
        };
        if self.before_erasure(plan_id, compartment, epoch).map_err(|e| e.to_string())? {
            return Err("a member's data was erased from the plan; its edits wait for the new base".into());
        }
        if self.epoch_outlived(plan_id, compartment, epoch).map_err(|e| e.to_string())? {
            return Err("someone who could read it no longer takes part; the next key is being made".into());
        }
        let since = self
            .store()
            .sealed_heads(plan_id, compartment)
            .map_err(store_error)?
            .map(|b| decode_heads(&b))
            .unwrap_or_default();
        let me = self.device_id();
        let signing = self.identity().signing_key().clone();
        let plan = self.loaded_plan(plan_id).map_err(|e| e.to_string())?;
        let doc = plan.doc(compartment).map_err(|e| e.to_string())?;
        let own: Vec<automerge::Change> =
            doc.get_changes(&since).into_iter().filter(|c| author_of(c) == Some(me)).collect();
        let heads = encode_heads(&doc.get_heads());
        let mut out = Vec::new();
        for group in chunk_changes(own)? {
            // Own changes go packed: the receivers rebuild each one's actor from the signed
            // author (`bundle::payload`).
            let payload = pack_changes(me.as_bytes(), group.iter().map(|c| c.raw_bytes()));
            let new = NewBundle {
                kind: BundleKind::Changes,
                document: document_id(plan_id, compartment),
                epoch,
                author: *me.as_bytes(),
            };
            let bundle = Bundle::seal(new, &key, &payload, &signing).map_err(|e| e.to_string())?;
            out.push(Sealed {
                plan: plan_id,
                compartment,
                id: bundle.header.bundle_id,
                changes: group.len() as u64,
                bundle: bundle.into_bytes(),
                heads: heads.clone(),
            });
        }
        Ok(out)
    }
}

/// One bundle sealed for the outbox.
struct Sealed {
    plan: PlanId,
    compartment: Compartment,
    id: [u8; 16],
    changes: u64,
    bundle: Vec<u8>,
    heads: Vec<u8>,
}

/// Groups changes, in order, into bundles of about [`BUNDLE_TARGET`] bytes of payload; a change
/// larger than that goes alone, and one larger than any bundle may be is refused.
fn chunk_changes(changes: Vec<automerge::Change>) -> Result<Vec<Vec<automerge::Change>>, String> {
    let mut groups: Vec<Vec<automerge::Change>> = Vec::new();
    let mut size = 0usize;
    for change in changes {
        let len = change.raw_bytes().len();
        if len > MAX_CHANGES_PER_BUNDLE {
            return Err(format!("a change of {len} bytes is larger than any bundle may be"));
        }
        match groups.last_mut() {
            Some(group) if size + len <= BUNDLE_TARGET => {
                group.push(change);
                size += len;
            }
            _ => {
                groups.push(vec![change]);
                size = len;
            }
        }
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};
    use ed25519_dalek::Signer;

    use super::*;
    use crate::keystore::{KdfParams, PassphraseKeyStore};

    /// A format-1 changes bundle, as this device sealed them before format 2.
    fn format_1(
        document: DocumentId,
        epoch: u32,
        author: [u8; 16],
        key: &[u8; 32],
        payload: &[u8],
    ) -> Vec<u8> {
        let mut bytes = vec![1u8, 0];
        bytes.extend_from_slice(&document.to_bytes());
        bytes.extend_from_slice(&epoch.to_be_bytes());
        bytes.extend_from_slice(&author);
        bytes.extend_from_slice(&[0x31; 16]);
        let nonce = [0x42u8; 24];
        let sealed = XChaCha20Poly1305::new(&(*key).into())
            .encrypt(&XNonce::from(nonce), Payload { msg: payload, aad: &bytes })
            .unwrap();
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        let signature = ed25519_dalek::SigningKey::from_bytes(&[3; 32]).sign(&bytes);
        bytes.extend_from_slice(&signature.to_bytes());
        bytes
    }

    #[test]
    fn an_unsent_format_1_bundle_is_sealed_again_in_the_current_format_with_a_new_id() {
        let dir = tempfile::tempdir().unwrap();
        let keystore = PassphraseKeyStore::with_params("geheim", KdfParams::INSECURE_FAST_FOR_TESTS);
        let mut device = Device::init(dir.path(), &keystore).unwrap();
        let plan = device.create_plan("Jansen").unwrap();
        let (epoch, key) = device.store().latest_doc_key(plan, Compartment::Basis).unwrap().unwrap();
        let document = document_id(plan, Compartment::Basis);
        let me = *device.device_id().as_bytes();
        let old = format_1(document, epoch, me, &key, b"changes made before the upgrade");
        let pending = cbor(&PendingBundle { bundle: old });
        let heads = super::super::encode_heads(&[]);
        device
            .store_mut()
            .write(|w| w.put_pending_bundle(plan, Compartment::Basis, &[0x31; 16], 1, &pending, &heads))
            .unwrap();

        device.reseal_stale_pending().unwrap();

        let outbox = device.store().pending_bundles().unwrap();
        assert_eq!(outbox.len(), 1);
        let (id, payload) = &outbox[0];
        let bundle = Bundle::decode(from_cbor::<PendingBundle>(payload, "pending").unwrap().bundle).unwrap();
        assert_ne!(*id, [0x31; 16], "a new seal keeps no old id");
        assert_eq!(bundle.header.bundle_id, *id);
        assert_eq!(
            bundle.header.unsealed(),
            NewBundle { kind: BundleKind::Changes, document, epoch, author: me }
        );
        bundle.verify(&device.identity().signing_key().verifying_key()).unwrap();
        assert_eq!(bundle.open(&key).unwrap(), b"changes made before the upgrade");
    }
}
