//! Document keys: taking the ones delivered to this device (each checked against the signed
//! commitment of its epoch), sealing them for devices that ask (only to a certified role the
//! policy lets read), making the first key of a document, and the sharing policy that decides
//! all of it.

use std::collections::HashMap;

use eenplan_protocol::certificate::{Certificate, DeviceBody, device_id_of};
use eenplan_protocol::epoch::{Minter, SignedCommitment};
use eenplan_protocol::policy::{Policy, SignedPolicy};
use eenplan_protocol::revocation::RevocationList;
use eenplan_protocol::sync::{
    Blob, EnvelopeDelivery, EnvelopeUpload, Fixed, KeyRequest, MAX_REFUSED_ENVELOPES, RefusedEnvelope,
    RotationUpload,
};
use eenplan_protocol::{DocumentId, envelope};

use super::authors::{EpochRules, Judge, Trust, policy_state};
use super::{
    CertificateState, FIRST_EPOCH, STATE_POLICY, ServerState, SyncError, compartment_of, verify_own,
};
use crate::device::Device;
use crate::error::CoreError;
use crate::ids::PlanId;
use crate::plan::Compartment;

/// Envelopes this device refused and has not yet named to the server.
pub(super) const STATE_COMPLAINTS: &str = "refused-envelopes";

/// Commitments of an answer, by (document, epoch).
pub(super) type Commitments = HashMap<([u8; 17], u32), SignedCommitment>;

/// A document key this sync received and verified, with its epoch's write rules.
pub(super) struct ReceivedKey {
    pub plan: PlanId,
    pub compartment: Compartment,
    pub epoch: u32,
    pub key: zeroize::Zeroizing<[u8; 32]>,
    pub rules: EpochRules,
    /// Whether this device made the key itself (its commitment won): it lays out the document.
    pub minted_here: bool,
    /// The revocation list version the key was made under (see `revocations`).
    pub revocations_version: u32,
}

/// What checking a delivery gives.
struct Opened {
    key: zeroize::Zeroizing<[u8; 32]>,
    rules: EpochRules,
    minted_here: bool,
    revocations_version: u32,
}

impl ReceivedKey {
    pub fn is(&self, plan: PlanId, compartment: Compartment, epoch: u32) -> bool {
        (self.plan, self.compartment, self.epoch) == (plan, compartment, epoch)
    }
}

/// Why a delivered key was not taken.
pub(super) enum KeyRefusal {
    /// Judging it needs a certificate or policy not fetched yet.
    NotFetchedYet,
    /// Refused for good: the reason, and the sealer to complain about.
    Refused { why: String, sealer: [u8; 16] },
}

pub(super) fn commitments_of(blobs: &[Blob]) -> Commitments {
    blobs
        .iter()
        .filter_map(|blob| SignedCommitment::from_bytes(&blob.0).ok())
        .filter_map(|signed| {
            let claimed = signed.claimed().ok()?;
            Some(((claimed.document.0, claimed.epoch), signed))
        })
        .collect()
}

impl Device {
    /// The refused envelopes still to name to the server, oldest first, at most as many as
    /// one request may carry (an envelope is delivered once, so a complaint must outlive a
    /// failed sync).
    pub(super) fn pending_complaints(&self) -> Result<Vec<RefusedEnvelope>, CoreError> {
        Ok(match self.store().sync_state(STATE_COMPLAINTS)? {
            Some(bytes) => super::from_cbor(&bytes, "refused envelopes")?,
            None => Vec::new(),
        })
    }

    /// The complaints to keep after an answer: those not sent with its request, and the new.
    pub(super) fn complaints_after(
        &self,
        sent: &[RefusedEnvelope],
        new: &[RefusedEnvelope],
    ) -> Result<Vec<u8>, CoreError> {
        let mut kept: Vec<RefusedEnvelope> =
            self.pending_complaints()?.into_iter().filter(|c| !sent.contains(c)).collect();
        for complaint in new {
            if !kept.contains(complaint) {
                kept.push(complaint.clone());
            }
        }
        // The oldest go first when the list is full; their keys are asked for again later.
        let excess = kept.len().saturating_sub(MAX_REFUSED_ENVELOPES);
        kept.drain(..excess);
        Ok(super::cbor(&kept))
    }

    /// Checks and opens one delivered key envelope: its sealer's signature, the commitment to
    /// the key (made by an entitled minter), and that the key inside is the committed one.
    pub(super) fn open_delivery(
        &self,
        trust: Trust<'_>,
        delivery: &EnvelopeDelivery,
        commitments: &Commitments,
        policy: Option<&Policy>,
        judge: &mut Judge,
    ) -> Result<ReceivedKey, KeyRefusal> {
        let refused = |why: String, sealer: [u8; 16]| KeyRefusal::Refused { why, sealer };
        let (sealed, sealer, signature) =
            envelope::split_signed(&delivery.envelope.0).map_err(|e| refused(e.to_string(), [0; 16]))?;
        let document =
            DocumentId::from_bytes(&delivery.document.0).map_err(|e| refused(e.to_string(), sealer))?;
        let compartment =
            compartment_of(document).ok_or_else(|| refused("unknown compartment".into(), sealer))?;
        let step = |result: Result<Opened, CoreError>| match result {
            Ok(opened) => Ok(opened),
            Err(CoreError::Sync(SyncError::NotFetchedYet)) => Err(KeyRefusal::NotFetchedYet),
            Err(e) => Err(refused(e.to_string(), sealer)),
        };
        let opened = step(self.check_delivery(
            trust,
            document,
            delivery.epoch,
            (sealed, sealer, &signature),
            commitments,
            policy,
            judge,
        ))?;
        Ok(ReceivedKey {
            plan: PlanId::from_bytes(document.plan),
            compartment,
            epoch: delivery.epoch,
            key: opened.key,
            rules: opened.rules,
            minted_here: opened.minted_here,
            revocations_version: opened.revocations_version,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn check_delivery(
        &self,
        trust: Trust<'_>,
        document: DocumentId,
        epoch: u32,
        (sealed, sealer, signature): (&[u8], [u8; 16], &[u8; 64]),
        commitments: &Commitments,
        policy: Option<&Policy>,
        judge: &mut Judge,
    ) -> Result<Opened, CoreError> {
        let protocol = |why: String| CoreError::from(SyncError::Protocol(why));
        let me = *self.device_id().as_bytes();
        let signed = commitments
            .get(&(document.to_bytes(), epoch))
            .ok_or_else(|| protocol("the server sent no commitment to this key".into()))?;
        let claimed = signed.claimed().map_err(|e| protocol(e.to_string()))?;
        if claimed.document.0 != document.to_bytes() || claimed.epoch != epoch {
            return Err(protocol("the commitment names another document or epoch".into()));
        }
        let admin = match &claimed.minter {
            Minter::Admin { certificate } => Some(
                Certificate::from_bytes(certificate)
                    .and_then(|c| c.verify_admin(trust.root))
                    .map_err(|e| protocol(format!("the commitment's administrator: {e}")))?,
            ),
            Minter::Device(_) => None,
        };
        // The sealer: the administrator who rotated the key, or a device holding it. An
        // administrator who re-sealed an older epoch from escrow is not a device and has no
        // certificate to fetch; such a key is taken on its commitment alone, which the
        // checks below authenticate fully. A sealer that is known must have signed.
        let sealer_public = match &admin {
            Some(admin) if device_id_of(&admin.admin_public) == sealer => Some(admin.admin_public),
            _ => match self.author_certificate(trust, &sealer, judge) {
                Ok(body) => Some(body.signing_public),
                Err(CoreError::Sync(SyncError::Server { status: 404, .. })) => None,
                Err(e) => return Err(e),
            },
        };
        if let Some(sealer_public) = sealer_public {
            envelope::verify_signature(sealed, signature, &sealer_public, document, epoch, me)
                .map_err(|e| protocol(e.to_string()))?;
        }
        let key = envelope::open(sealed, self.identity().agreement_secret(), me, document, epoch)
            .map_err(|e| protocol(e.to_string()))?;
        match (&claimed.minter, admin) {
            (Minter::Admin { .. }, Some(admin)) => {
                signed.verify(&admin.admin_public).map_err(|e| protocol(e.to_string()))?;
                // Whoever makes a key can read it: only a network-wide administrator makes
                // key epochs, never an organisation's.
                if !admin.scope().is_network_wide() {
                    return Err(protocol(format!(
                        "the key was made by an administrator of {}, who makes no key epochs",
                        admin.organisation.unwrap_or_default()
                    )));
                }
            }
            (Minter::Device(minter), _) => {
                let policy = policy.ok_or_else(|| protocol("no sharing policy is known yet".into()))?;
                let body = self
                    .may_have_made(trust, judge, &minter.0, &claimed, document.compartment, policy)?
                    .ok_or_else(|| protocol("its maker's role may not read this compartment".into()))?;
                signed.verify(&body.signing_public).map_err(|e| protocol(e.to_string()))?;
                self.chain_allows_maker(document, &claimed, &body, policy).map_err(protocol)?;
            }
            (Minter::Admin { .. }, None) => {
                return Err(protocol("the commitment's administrator is unknown".into()));
            }
        }
        claimed.matches(&key).map_err(|e| protocol(e.to_string()))?;
        Ok(Opened {
            key,
            rules: EpochRules::of(&claimed),
            minted_here: claimed.minter == Minter::Device(Fixed(me)),
            revocations_version: claimed.revocations_version,
        })
    }

    /// Seals a key this device holds to the device that asked for it, if the requester's
    /// certificate verifies and its certified role may read the compartment under the policy
    /// this device holds. The server's word on who asks counts for nothing.
    pub(super) fn answer_key_request(
        &self,
        server: &ServerState,
        request: &KeyRequest,
        now: i64,
        policy: Option<&Policy>,
        revoked: &RevocationList,
    ) -> Result<Option<EnvelopeUpload>, CoreError> {
        let state = CertificateState {
            certificate: request.certificate.0.clone(),
            admin_certificate: request.admin_certificate.0.clone(),
            lease_hours: 0,
        };
        let body = verify_own(&state, &server.root_public, now)?;
        // The administrators' list, not the server, says who is revoked.
        if revoked.revokes(&body).is_some() {
            return Err(SyncError::UntrustedCertificate(format!(
                "the server asked for a key on behalf of {}, which revocation list version {} names",
                eenplan_protocol::api::hex(&body.device_id),
                revoked.version
            ))
            .into());
        }
        let document =
            DocumentId::from_bytes(&request.document.0).map_err(|e| SyncError::Protocol(e.to_string()))?;
        let Some(compartment) = compartment_of(document) else { return Ok(None) };
        // The sharing policy is an encryption boundary: a key goes only to a device whose
        // certified role may read the compartment, whatever the server asks.
        let Some(policy) = policy else { return Ok(None) };
        let plan = PlanId::from_bytes(document.plan);
        if !policy.may_read_at(&body.role, document.compartment, &self.plan_level(&plan)?) {
            return Err(SyncError::UntrustedCertificate(format!(
                "a device of role {:?} asked for the {compartment} key, which its role may not read",
                body.role
            ))
            .into());
        }
        // The plan's signed membership, not the server, says who takes part.
        if !self.chain_allows_reader(&plan, &body, document.compartment, policy)? {
            return Err(SyncError::UntrustedCertificate(format!(
                "the server asked for the {compartment} key on behalf of {} ({}), whom the plan's signed \
                 membership does not list as a reader",
                body.user_name, body.organisation
            ))
            .into());
        }
        let Some(key) = self.store().doc_key_at(plan, compartment, request.epoch)? else { return Ok(None) };
        let sealed = envelope::seal(&body.agreement_public, body.device_id, document, request.epoch, &key)
            .map_err(|e| SyncError::Protocol(e.to_string()))?;
        let sealed = envelope::sign(
            sealed,
            *self.device_id().as_bytes(),
            self.identity().signing_key(),
            document,
            request.epoch,
            body.device_id,
        );
        Ok(Some(EnvelopeUpload {
            recipient: Fixed(body.device_id),
            document: request.document,
            epoch: request.epoch,
            envelope: Blob(sealed),
        }))
    }

    /// The first key of a document nobody has a key for yet, which this device's role may
    /// read: a key made here before the plan was shared (its creator's) is the one to commit
    /// to; otherwise a new one, which comes back through this device's own envelope only if
    /// this commitment is the first the server received.
    pub(super) fn mint(
        &self,
        document: DocumentId,
        server: &ServerState,
        own: &DeviceBody,
        policy: &Policy,
        revocations_version: u32,
    ) -> Result<(Blob, Vec<EnvelopeUpload>), CoreError> {
        let Some(compartment) = compartment_of(document) else {
            return Err(SyncError::Protocol("unknown compartment".into()).into());
        };
        let plan = PlanId::from_bytes(document.plan);
        let key = match self.store().doc_key_at(plan, compartment, FIRST_EPOCH)? {
            Some(key) => *key,
            None => *crate::crypto::SecretKey::generate().as_bytes(),
        };
        self.mint_uploads(document, FIRST_EPOCH, &key, server, own, (policy.version, revocations_version))
    }

    /// A new epoch of a document the server asked this device to rotate (a reader left):
    /// a fresh key, which comes back through this device's own envelope only if this
    /// commitment is the first the server received. `None` when this device holds no chain
    /// that shows it reading the compartment, or when its chain still lacks what made the
    /// server ask (it is asked again after the next round).
    pub(super) fn rotate(
        &self,
        document: DocumentId,
        epoch: u32,
        server: &ServerState,
        own: &DeviceBody,
        policy: &Policy,
        revocations_version: u32,
    ) -> Result<Option<RotationUpload>, CoreError> {
        let plan = PlanId::from_bytes(document.plan);
        // Only a plan with a chain has device-made later epochs (and a chain to read by).
        if epoch < 2
            || self.roster(&plan)?.is_none()
            || !self.chain_allows_reader(&plan, own, document.compartment, policy)?
        {
            return Ok(None);
        }
        let key = *crate::crypto::SecretKey::generate().as_bytes();
        let (commitment, envelopes) =
            self.mint_uploads(document, epoch, &key, server, own, (policy.version, revocations_version))?;
        Ok(Some(RotationUpload { commitment, envelopes }))
    }

    /// A device-made key is taken only from someone the plan's chain shows reading the
    /// compartment at the position the commitment names (a later epoch must name one).
    fn chain_allows_maker(
        &self,
        document: DocumentId,
        claimed: &eenplan_protocol::epoch::Commitment,
        maker: &DeviceBody,
        policy: &Policy,
    ) -> Result<(), String> {
        let plan = PlanId::from_bytes(document.plan);
        let roster = self.roster(&plan).map_err(|e| e.to_string())?;
        let Some(roster) = roster else {
            // A plan without a chain: the first key is its reader's, later ones an administrator's.
            return if claimed.epoch == FIRST_EPOCH {
                Ok(())
            } else {
                Err("only an administrator makes a later key of a plan without a membership chain".into())
            };
        };
        if claimed.epoch != FIRST_EPOCH && claimed.membership_seq == 0 {
            return Err("a later key made by a device must name its membership position".into());
        }
        if claimed.membership_seq > roster.seq() {
            return Err("the key names membership this device has not received".into());
        }
        let then = roster.state_at(claimed.membership_seq.max(1));
        let reads = then.participant_certified(maker).is_some()
            && super::membership::reads(policy, &maker.role, document.compartment, &then.level);
        if reads {
            Ok(())
        } else {
            Err(format!("{} did not take part as a reader when the key was made", maker.user_name))
        }
    }

    /// Lays out a compartment's document after this device made its first key, so that its
    /// role can write there (the plan's creator may not have been allowed to).
    pub(super) fn start_minted_compartment(
        &mut self,
        plan_id: PlanId,
        compartment: Compartment,
    ) -> Result<(), CoreError> {
        if !self.store().has_plan(plan_id)? {
            return Ok(());
        }
        let mut plan = self.take_plan_or_new(plan_id)?;
        if plan.doc(compartment).is_ok() {
            self.put_back_plan(plan);
            return Ok(());
        }
        let before = plan.heads();
        plan.start_compartment(compartment)?;
        let changes = plan.changes_since(&before);
        // On failure the in-memory plan is dropped so memory never runs ahead of disk.
        self.store_mut().write(|w| w.append_changes(&plan, None, &changes, true))?;
        self.put_back_plan(plan);
        Ok(())
    }

    /// Takes a sharing policy the server sent, if it verifies and is newer than the one held;
    /// keys of compartments this device's role may no longer read are forgotten. `Ok(true)`
    /// when it was taken.
    pub(super) fn accept_policy(
        &mut self,
        server: &ServerState,
        bytes: &[u8],
        own: &DeviceBody,
    ) -> Result<bool, CoreError> {
        let signed = SignedPolicy::from_bytes(bytes).map_err(|e| SyncError::BadPolicy(e.to_string()))?;
        let policy = signed.verify(&server.root_public).map_err(|e| SyncError::BadPolicy(e.to_string()))?;
        let held_version = self.stored_policy()?.map(|p| p.version);
        // A server cannot roll a device back to an older, wider policy.
        if held_version.is_some_and(|held| policy.version <= held) {
            return Ok(false);
        }
        // The one it replaces judges the writes of epochs made under it.
        let previous = self.store().sync_state(STATE_POLICY)?;
        self.forget_unreadable(&policy, &own.role, |w| {
            if let (Some(previous), Some(version)) = (&previous, held_version) {
                w.put_state(&policy_state(version), previous)?;
            }
            w.put_state(STATE_POLICY, bytes)
        })?;
        Ok(true)
    }

    /// Forgets the keys of every compartment `role` may not read under `policy` (a policy or
    /// role change took them away), in one transaction with `also`.
    pub(super) fn forget_unreadable(
        &mut self,
        policy: &Policy,
        role: &str,
        also: impl FnOnce(&mut crate::store::StoreWriter<'_>) -> Result<(), crate::store::StoreError>,
    ) -> Result<(), CoreError> {
        let mut plans: Vec<(PlanId, Vec<Compartment>)> = Vec::new();
        for plan in
            self.store().list_plans()?.into_iter().filter_map(|entry| entry.ok().map(|header| header.plan))
        {
            // By the rules of the plan's escalation level.
            let level = self.plan_level(&plan)?;
            let lost = Compartment::ALL
                .into_iter()
                .filter(|c| !policy.may_read_at(role, *c as u8, &level))
                .collect();
            plans.push((plan, lost));
        }
        self.store_mut().write(|w| {
            also(w)?;
            for (plan, lost) in &plans {
                for compartment in lost {
                    w.delete_doc_keys(*plan, *compartment)?;
                    w.clear_unpushed(*plan, *compartment)?;
                }
            }
            Ok(())
        })?;
        Ok(())
    }
}
