//! The device side of a plan's signed membership chain ([`eenplan_protocol::membership`]):
//! who takes part, who holds regie, the escalation level.
//!
//! - A plan's first entry (`Create`) is signed when the device registers the plan; the chain
//!   comes back from the server with the answer, verified like any other.
//! - Every answer carries the entries of the device's plans after its membership cursor; each
//!   is verified against the chain the device holds (signature and certificates against the
//!   pinned root, the signer's right to make it, position and hash link). The device keeps the
//!   longest chain it verified and never a shorter or a different one.
//! - Acts of the regisseur (hand over, accept, escalate, de-escalate, remove) are queued
//!   durably like shares and signed and posted by a sync, against the newest chain held.
//! - Keys follow the chain, not the server: a key is sealed only to a device whose user the
//!   chain lists, a later epoch made by a device is taken only from a reader the chain lists,
//!   and nothing new is sealed under a key made before someone who could read stopped
//!   reading (the device makes the next epoch instead, when the server asks).

use std::collections::BTreeMap;

use eenplan_protocol::api;
use eenplan_protocol::certificate::DeviceBody;
use eenplan_protocol::membership::{
    Act, CertificateChain, Deescalation, Entry, Escalation, Grondslag, MembershipError, Roster, SignedEntry,
    Signer,
};
use eenplan_protocol::policy::Policy;
use eenplan_protocol::revocation::RevocationList;
use eenplan_protocol::sync::{Blob, SyncResponse};
use serde::{Deserialize, Serialize};

use super::access::Access;
use super::transport::Transport;
use super::{CertificateState, ServerState, SyncError, SyncReport, cbor, from_cbor};
use crate::audit::{Access as Accessed, AuditAction};
use crate::device::Device;
use crate::error::CoreError;
use crate::ids::PlanId;

pub(super) const STATE_MEMBERSHIP_CURSOR: &str = "membership_cursor";
pub(crate) const STATE_INTENTS: &str = "membership_intents";
/// Acts that may wait on one device for a sync.
pub const MAX_QUEUED_INTENTS: usize = 256;

/// A plan's chain as the device keeps it: the signed entries and what they fold into.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HeldChain {
    pub entries: Vec<Vec<u8>>,
    pub roster: Roster,
}

/// An act of (or towards) the plan's regisseur, waiting for a sync to be signed and posted.
/// Users are named as people type them (a name or a user id); the chain resolves them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Intent {
    Remove {
        user: String,
    },
    Handover {
        to: String,
    },
    Accept,
    Escalate {
        level: String,
        grondslag: Grondslag,
        step: u64,
        regie: Option<String>,
        add: Vec<String>,
    },
    Deescalate {
        level: String,
        step: u64,
        regie: String,
        remove: Vec<String>,
    },
    /// Closing the plan (*afgesloten*): the retention period starts at the entry's time.
    Close,
    /// Erasing a family member's personal data (AVG): see [`super::erasure`].
    Erase {
        member: crate::ids::EntityId,
    },
}

impl Intent {
    /// What the access log names the act by.
    pub fn kind(&self) -> &'static str {
        match self {
            Intent::Remove { .. } => "remove",
            Intent::Handover { .. } => "handover",
            Intent::Accept => "accept",
            Intent::Escalate { .. } => "escalate",
            Intent::Deescalate { .. } => "deescalate",
            Intent::Close => "close",
            Intent::Erase { .. } => "erase",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedIntent {
    pub plan: PlanId,
    pub intent: Intent,
    pub queued_at_ms: i64,
}

/// Whether `role` reads compartment `index` at `level`: the one place the device asks.
pub(crate) fn reads(policy: &Policy, role: &str, index: u8, level: &str) -> bool {
    policy.may_read_at(role, index, level)
}

impl Device {
    /// The plan's verified membership chain folded into who takes part now; `None` for a
    /// plan no chain is known of (not registered yet, or registered by an older device).
    pub fn roster(&self, plan: &PlanId) -> Result<Option<Roster>, CoreError> {
        Ok(self.held_chain(plan)?.map(|held| held.roster))
    }

    /// The plan's escalation level by its chain (the base level without one): the sharing
    /// rules in force for it.
    pub(crate) fn plan_level(&self, plan: &PlanId) -> Result<String, CoreError> {
        Ok(self
            .roster(plan)?
            .map_or_else(|| eenplan_protocol::policy::BASE_LEVEL.to_owned(), |r| r.state().level.clone()))
    }

    pub(crate) fn held_chain(&self, plan: &PlanId) -> Result<Option<HeldChain>, CoreError> {
        self.store().membership(*plan)?.map(|bytes| from_cbor(&bytes, "membership chain")).transpose()
    }

    pub(super) fn membership_cursor(&self) -> Result<u64, CoreError> {
        Ok(self
            .store()
            .sync_state(STATE_MEMBERSHIP_CURSOR)?
            .and_then(|b| b.as_slice().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0))
    }

    /// The first entry of a plan this device registers: its user holds regie.
    pub(super) fn charter(&self, plan: PlanId) -> Result<Blob, CoreError> {
        let chain = self.own_chain()?;
        let entry = Entry::create(*plan.as_bytes(), self.now_ms(), chain);
        Ok(Blob(entry.sign(self.identity().signing_key()).to_bytes()))
    }

    pub(super) fn own_chain(&self) -> Result<CertificateChain, CoreError> {
        let CertificateState { certificate, admin_certificate, .. } =
            self.certificate_state()?.ok_or(SyncError::NotApproved)?;
        Ok(CertificateChain { certificate, admin_certificate })
    }

    /// Verifies and keeps the membership entries of an answer, with the cursor, durably.
    /// Entries the device holds already must be the same (else the server shows two chains:
    /// reported, nothing changes); a gap sets the cursor back so the next answer carries the
    /// whole chain. Returns the plans whose roster changed.
    pub(super) fn accept_membership(
        &mut self,
        server: &ServerState,
        response: &SyncResponse,
        report: &mut SyncReport,
    ) -> Result<Vec<PlanId>, CoreError> {
        if response.membership.is_empty() && response.membership_through == self.membership_cursor()? {
            return Ok(Vec::new());
        }
        let revoked = self.held_revocations(server)?;
        let retired = self.retired_plans()?;
        let mut chains: BTreeMap<PlanId, Option<HeldChain>> = BTreeMap::new();
        let mut changed = Vec::new();
        let mut gap = false;
        let mut broken: Vec<PlanId> = Vec::new();
        for Blob(bytes) in &response.membership {
            let Ok(entry) = SignedEntry::from_bytes(bytes) else {
                report.refused.push("a membership entry does not decode".into());
                continue;
            };
            let Ok(claimed) = entry.claimed() else { continue };
            let plan = PlanId::from_bytes(claimed.plan.0);
            if broken.contains(&plan) {
                continue;
            }
            let held = match chains.entry(plan) {
                std::collections::btree_map::Entry::Occupied(held) => held.into_mut(),
                std::collections::btree_map::Entry::Vacant(slot) => slot.insert(self.held_chain(&plan)?),
            };
            match extend(held, &entry, bytes, &server.root_public, &revoked) {
                Ok(true) => {
                    if !changed.contains(&plan) {
                        changed.push(plan);
                    }
                }
                Ok(false) => {}
                Err(MembershipError::OutOfOrder { .. }) => {
                    gap = true;
                    broken.push(plan);
                }
                Err(e) => {
                    report.refused.push(format!("membership of plan {plan}: {e}"));
                    broken.push(plan);
                }
            }
        }
        let unretired = self.still_retired(&mut changed, &chains, &retired)?;
        let cursor = if gap { 0 } else { response.membership_through };
        self.store_mut().write(|w| {
            for plan in &changed {
                if let Some(Some(held)) = chains.get(plan) {
                    w.put_membership(*plan, &cbor(held))?;
                }
            }
            if let Some(retired) = &unretired {
                w.put_state(crate::retention::STATE_RETIRED, &eenplan_protocol::sync::encode(retired))?;
            }
            w.put_state(STATE_MEMBERSHIP_CURSOR, &cursor.to_be_bytes())
        })?;
        for plan in &changed {
            self.forget_view(plan);
        }
        Ok(changed)
    }

    /// A plan this device removed stays removed (its chain is not kept again) unless the
    /// chain that arrived shows this device's user taking part in it, open: added back, it
    /// comes back like a newly shared plan. Drops the others from `changed`; returns the
    /// retired list to store when a plan left it.
    pub(crate) fn still_retired(
        &self,
        changed: &mut Vec<PlanId>,
        chains: &BTreeMap<PlanId, Option<HeldChain>>,
        retired: &[PlanId],
    ) -> Result<Option<Vec<PlanId>>, CoreError> {
        let own_user = self.own_user_id()?;
        let retired_at = self.retired_at()?;
        let mut kept = retired.to_vec();
        changed.retain(|plan| {
            if !retired.contains(plan) {
                return true;
            }
            // Only a chain that went on past where it stood when the plan left brings it back
            // (the user added again): a server replaying the older part of the chain cannot.
            let left_at = retired_at.get(plan).copied().unwrap_or(0);
            let needed = chains.get(plan).and_then(Option::as_ref).is_some_and(|held| {
                let state = held.roster.state();
                held.roster.seq() > left_at
                    && state.closed_at_ms.is_none()
                    && own_user.is_some_and(|user| state.participant(user).is_some())
            });
            if needed {
                kept.retain(|r| r != plan);
            }
            needed
        });
        Ok((kept.len() != retired.len()).then_some(kept))
    }

    /// Keeps an entry this device signed and the server stored (204), so that the next act
    /// signs after it.
    pub(super) fn keep_own_entry(
        &mut self,
        server: &ServerState,
        plan: PlanId,
        bytes: &[u8],
    ) -> Result<(), CoreError> {
        let entry = SignedEntry::from_bytes(bytes).map_err(|e| SyncError::Protocol(e.to_string()))?;
        let mut held = self.held_chain(&plan)?;
        let revoked = self.held_revocations(server)?;
        if extend(&mut held, &entry, bytes, &server.root_public, &revoked)
            .map_err(|e| SyncError::Protocol(e.to_string()))?
            && let Some(held) = &held
        {
            self.store_mut().write(|w| w.put_membership(plan, &cbor(held)))?;
            self.forget_view(&plan);
        }
        Ok(())
    }

    /// Queues an act on the plan's chain, durably; a sync signs and posts it. Recorded in
    /// the access log as `ParticipantChange` (object: the act), in the queue's transaction.
    pub fn queue_intent(&mut self, plan: &PlanId, intent: Intent) -> Result<(), CoreError> {
        let action = match intent {
            Intent::Close => AuditAction::Close,
            Intent::Erase { .. } => AuditAction::EraseMember,
            _ => AuditAction::ParticipantChange,
        };
        let access = Accessed::on(action, *plan).object(intent.kind());
        self.audited(access.clone(), |d| d.queue_intent_recorded(plan, intent, access))
    }

    pub(super) fn queue_intent_recorded(
        &mut self,
        plan: &PlanId,
        intent: Intent,
        access: Accessed,
    ) -> Result<(), CoreError> {
        self.ensure_not_wiped()?;
        if !self.store().has_plan(*plan)? {
            return Err(CoreError::UnknownPlan(*plan));
        }
        let mut queue = self.queued_intents()?;
        if queue.len() >= MAX_QUEUED_INTENTS {
            return Err(SyncError::Protocol(format!(
                "{MAX_QUEUED_INTENTS} changes of participants already wait for a sync; sync first"
            ))
            .into());
        }
        queue.push(QueuedIntent { plan: *plan, intent, queued_at_ms: self.now_ms() });
        self.put_durable_queue_recorded(STATE_INTENTS, &queue, access)
    }

    /// The acts waiting for a sync, oldest first.
    pub fn queued_intents(&self) -> Result<Vec<QueuedIntent>, CoreError> {
        self.durable_queue(STATE_INTENTS, "queued membership changes")
    }

    fn settle_intent(&mut self, settled: &QueuedIntent) -> Result<(), CoreError> {
        let mut queue = self.queued_intents()?;
        if let Some(index) = queue.iter().position(|q| q == settled) {
            queue.remove(index);
        }
        self.put_durable_queue(STATE_INTENTS, &queue)
    }

    /// Whether the chain lets `user` (certified `role`) read compartment `index` of `plan`
    /// now. A plan with no chain: the server's word, as before chains existed.
    pub(super) fn chain_allows_reader(
        &self,
        plan: &PlanId,
        device: &DeviceBody,
        index: u8,
        policy: &Policy,
    ) -> Result<bool, CoreError> {
        Ok(match self.roster(plan)? {
            Some(roster) => {
                let now = roster.state();
                // The participant under the organisation it takes part for: a certificate
                // another organisation's administrator signed with this user id is not them.
                now.participant_certified(device).is_some() && reads(policy, &device.role, index, &now.level)
            }
            None => true,
        })
    }
}

/// Appends `entry` to `held` (starting a chain at entry 1). `Ok(false)`: held already, the
/// same. Errors leave `held` as it was.
fn extend(
    held: &mut Option<HeldChain>,
    entry: &SignedEntry,
    bytes: &[u8],
    root: &[u8; 32],
    revoked: &RevocationList,
) -> Result<bool, MembershipError> {
    let revoked_before =
        |device: &DeviceBody, at: i64| revoked.revokes(device).is_some_and(|r| r.revoked_at_ms <= at);
    let claimed = entry.claimed()?;
    match held {
        None if claimed.seq == 1 => {
            let roster = Roster::start(entry, root, &revoked_before)?;
            *held = Some(HeldChain { entries: vec![bytes.to_vec()], roster });
            Ok(true)
        }
        None => Err(MembershipError::OutOfOrder { held: 0, got: claimed.seq }),
        Some(chain) if claimed.seq <= chain.roster.seq() => {
            let index = usize::try_from(claimed.seq).unwrap_or(usize::MAX).saturating_sub(1);
            let same = chain
                .entries
                .get(index)
                .and_then(|b| SignedEntry::from_bytes(b).ok())
                .is_some_and(|held| held.hash() == entry.hash());
            if same { Ok(false) } else { Err(MembershipError::Fork(claimed.seq)) }
        }
        Some(chain) => {
            chain.roster.apply(entry, root, &revoked_before)?;
            chain.entries.push(bytes.to_vec());
            Ok(true)
        }
    }
}

/// Signs and posts the queued acts of plans with a chain. Returns (done, conflicts): a
/// conflict (another entry came first) leaves the act queued for after the next round.
pub(super) fn carry_out(
    access: &impl Access,
    server: &ServerState,
    transport: &Transport,
    token: &str,
    report: &mut SyncReport,
) -> Result<(usize, usize), CoreError> {
    let queue = access.with(|device| device.queued_intents())?;
    let (mut done, mut conflicts) = (0, 0);
    let mut stalled: Vec<PlanId> = Vec::new();
    for queued in queue {
        if stalled.contains(&queued.plan) {
            continue;
        }
        let outcome = match &queued.intent {
            Intent::Erase { member } => {
                super::erasure::carry_out(access, server, transport, token, queued.plan, *member)
            }
            intent => newcomers(transport, token, intent)
                .map_err(CoreError::from)
                .and_then(|found| access.with(|device| device.sign_intent(server, &queued, &found)))
                .and_then(|bytes| Ok(post_entry(transport, token, queued.plan, &bytes).map(|()| bytes)?)),
        };
        match outcome {
            Ok(bytes) => {
                access.with(|device| {
                    device.keep_own_entry(server, queued.plan, &bytes)?;
                    device.settle_intent(&queued)
                })?;
                done += 1;
            }
            // Not registered yet: it waits for the sync that registers the plan. An erasure
            // waits for its document to be complete and pushed here.
            Err(CoreError::Sync(SyncError::NoChainYet)) => stalled.push(queued.plan),
            Err(CoreError::Sync(e @ SyncError::ErasureWaits(_))) => {
                report.refused.push(e.to_string());
                stalled.push(queued.plan);
            }
            // Waits for an administrator to approve the newcomer's device.
            Err(CoreError::Sync(e @ SyncError::NoApprovedDevice(_))) => {
                report.refused.push(e.to_string());
                stalled.push(queued.plan);
            }
            Err(CoreError::Sync(SyncError::Server { status: 409, code, .. }))
                if code == api::ErrorCode::MembershipConflict.as_str() =>
            {
                conflicts += 1;
                stalled.push(queued.plan);
            }
            Err(CoreError::Sync(SyncError::Server { status, code, message }))
                if (400..500).contains(&status) && status != 401 =>
            {
                report.refused.push(format!("plan {}: {message}", queued.plan));
                report.share_failures.push(super::ShareFailure {
                    plan: queued.plan,
                    user: String::new(),
                    status,
                    code,
                    message,
                });
                access.with(|device| device.settle_intent(&queued))?;
            }
            // The network or the server's state: it waits for the next sync.
            Err(e @ CoreError::Sync(SyncError::Network(_) | SyncError::Server { .. })) => return Err(e),
            // Refused here for good (the chain does not allow it): reported, and it leaves.
            Err(e) => {
                report.refused.push(format!("{REFUSED_ACT}{e}"));
                access.with(|device| device.settle_intent(&queued))?;
            }
        }
    }
    report.shares_done += done;
    Ok((done, conflicts))
}

/// The users an act adds, looked up (with their certificates) before it is signed.
fn newcomers(
    transport: &Transport,
    token: &str,
    intent: &Intent,
) -> Result<Vec<(String, api::UserMatch)>, SyncError> {
    match intent {
        Intent::Escalate { add, .. } => add
            .iter()
            .map(|named| {
                Ok((named.clone(), super::shares::find_user(transport, token, name_and_role(named).0)?))
            })
            .collect(),
        _ => Ok(Vec::new()),
    }
}

fn post_entry(transport: &Transport, token: &str, plan: PlanId, bytes: &[u8]) -> Result<(), SyncError> {
    transport.post(
        &api::membership_path(plan.as_bytes()),
        Some(token),
        "application/cbor",
        bytes.to_vec(),
        4096,
    )?;
    Ok(())
}

impl Device {
    /// The signed entry for a queued act, after the newest chain this device holds.
    fn sign_intent(
        &self,
        server: &ServerState,
        queued: &QueuedIntent,
        found: &[(String, api::UserMatch)],
    ) -> Result<Vec<u8>, CoreError> {
        let held = self.held_chain(&queued.plan)?.ok_or(SyncError::NoChainYet)?;
        let roster = &held.roster;
        let act = match &queued.intent {
            Intent::Remove { user } => Act::Remove(crate::regie::participant_named(roster, user)?),
            Intent::Handover { to } => Act::Handover(crate::regie::participant_named(roster, to)?),
            Intent::Accept => Act::Accept,
            Intent::Close => Act::Close,
            Intent::Erase { .. } => {
                return Err(CoreError::NotAllowed("an erasure is posted with its base".into()));
            }
            Intent::Deescalate { level, step, regie, remove } => Act::Deescalate(Deescalation {
                level: level.clone(),
                step: *step,
                regie: crate::regie::participant_named(roster, regie)?,
                remove: remove
                    .iter()
                    .map(|u| crate::regie::participant_named(roster, u))
                    .collect::<Result<_, _>>()?,
            }),
            Intent::Escalate { level, grondslag, step, regie, add } => {
                let mut chains = Vec::new();
                let mut ids = Vec::new();
                for (named, user) in found.iter().filter(|(named, _)| add.contains(named)) {
                    let (name, role) = name_and_role(named);
                    if roster.state().participant(user.id).is_some() {
                        continue;
                    }
                    let (chain, certified) = chain_of(user, &server.root_public, self.now_ms())
                        .ok_or_else(|| SyncError::NoApprovedDevice(name.to_owned()))?;
                    if let Some(role) = role
                        && role != certified
                    {
                        return Err(CoreError::NotAllowed(format!(
                            "{name} is gecertificeerd als {certified}, niet als {role}"
                        )));
                    }
                    chains.push(chain);
                    ids.push((name.to_owned(), user.id));
                }
                let regie = match regie {
                    None => None,
                    Some(name) => Some(match ids.iter().find(|(n, _)| n == name_and_role(name).0) {
                        Some((_, id)) => *id,
                        None => crate::regie::participant_named(roster, name)?,
                    }),
                };
                Act::Escalate(Escalation {
                    level: level.clone(),
                    grondslag: *grondslag,
                    step: *step,
                    add: chains,
                    regie,
                })
            }
        };
        let entry = Entry::next(roster, self.now_ms(), Signer::Device(self.own_chain()?), act);
        Ok(entry.sign(self.identity().signing_key()).to_bytes())
    }

    /// Signs `act` as the next entry after the chain this device holds, checking nothing: the
    /// chain's rules are enforced by the server and by every device that receives the entry,
    /// never by the signer. For tools and for tests of those rules; the app's acts go through
    /// [`Device::queue_intent`], which checks first.
    pub fn sign_membership_act(&self, plan: &PlanId, act: Act) -> Result<Vec<u8>, CoreError> {
        let held = self.held_chain(plan)?.ok_or(SyncError::NoChainYet)?;
        let entry = Entry::next(&held.roster, self.now_ms(), Signer::Device(self.own_chain()?), act);
        Ok(entry.sign(self.identity().signing_key()).to_bytes())
    }

    /// The signed entry that adds the user a lookup found, after the newest chain held; the
    /// user is named by one of their verified device certificates.
    pub(super) fn sign_addition(
        &self,
        server: &ServerState,
        plan: PlanId,
        user: &api::UserMatch,
    ) -> Result<Option<Vec<u8>>, CoreError> {
        let held = self.held_chain(&plan)?.ok_or(SyncError::NoChainYet)?;
        if held.roster.state().participant(user.id).is_some() {
            return Ok(None);
        }
        let (chain, _) = chain_of(user, &server.root_public, self.now_ms())
            .ok_or_else(|| SyncError::NoApprovedDevice(user.name.clone()))?;
        let entry =
            Entry::next(&held.roster, self.now_ms(), Signer::Device(self.own_chain()?), Act::Add(chain));
        Ok(Some(entry.sign(self.identity().signing_key()).to_bytes()))
    }
}

/// A verified certificate chain of one of `user`'s devices, from a lookup answer: the user
/// is named in a chain by it, so every participant can check who joins.
fn chain_of(found: &api::UserMatch, root: &[u8; 32], now: i64) -> Option<(CertificateChain, String)> {
    found.devices.iter().find_map(|c| {
        let chain = CertificateChain {
            certificate: api::unhex(&c.certificate)?,
            admin_certificate: api::unhex(&c.admin_certificate)?,
        };
        let body = chain.verify(root, now).ok()?;
        (body.user_id == found.id && body.user_name == found.name).then_some((chain, body.role))
    })
}

/// "Zoë:zvh_procesregisseur" → ("Zoë", Some("zvh_procesregisseur")); a plain name has no role.
fn name_and_role(named: &str) -> (&str, Option<&str>) {
    match named.rsplit_once(':') {
        Some((name, role)) if !role.is_empty() && !role.contains(' ') => (name.trim(), Some(role.trim())),
        _ => (named.trim(), None),
    }
}

/// Syncs after acts were queued: `Done` when the server took every queued act, `Queued` when
/// it could not be reached; the server's or the chain's refusal as an error.
pub(super) fn act_now(access: &impl Access) -> Result<super::ShareOutcome, CoreError> {
    let report = match super::driver::sync(access) {
        Ok(report) => report,
        Err(CoreError::Sync(SyncError::Network(_))) => return Ok(super::ShareOutcome::Queued),
        Err(e) => return Err(e),
    };
    if let Some(failure) = report.share_failures.iter().find(|f| f.user.is_empty()) {
        return Err(SyncError::Server {
            status: failure.status,
            code: failure.code.clone(),
            message: failure.message.clone(),
        }
        .into());
    }
    if let Some(refused) = report.refused.iter().find_map(|r| r.strip_prefix(REFUSED_ACT)) {
        return Err(CoreError::NotAllowed(refused.to_owned()));
    }
    let waiting = access.with(|device| device.queued_intents())?;
    Ok(if waiting.is_empty() { super::ShareOutcome::Done } else { super::ShareOutcome::Queued })
}

/// How a sync report names an act the chain refused here.
const REFUSED_ACT: &str = "membership act refused: ";
