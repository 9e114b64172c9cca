//! Retention on the device (DESIGN §8): closing a plan's case (*afgesloten*), refusing edits
//! to a closed plan, and removing a plan this device no longer needs once the policy's grace
//! period has passed.
//!
//! A device no longer needs a plan when its verified chain shows the plan closed, or no
//! longer lists the device's own user. Both come from the signed chain, never from the
//! server's word: a server cannot make a phone drop a plan it still needs.
//!
//! **The grace period counts from when this device learnt it**, recorded durably the first
//! time a sweep saw the plan closed or left (right after the sync that brought the entry,
//! or at open). That is never earlier than the entry itself, and it gives a worker whose
//! phone was offline the whole grace period to look things up and to push what they wrote
//! before the close, instead of losing the copy at the first sync after a long absence. A
//! user added again within the grace period keeps the plan (the record is dropped).
//!
//! Removal ([`Device::retire_plan`]) deletes every row of the plan in one transaction,
//! drops it from memory, keeps the plan's id (sealed) on a list of retired plans so that
//! what a server still sends for it is ignored (until a chain arrives that lists this
//! device's user in the open plan again: added back, it comes back like a newly shared
//! plan), then checkpoints and truncates the WAL: with `secure_delete` no page or WAL frame
//! keeps a copy of what was deleted.

use std::collections::BTreeMap;

use eenplan_protocol::audit::AuditAction;
use eenplan_protocol::policy::Retention;
use eenplan_protocol::sync::{decode, encode};
use serde::{Deserialize, Serialize};

use crate::device::Device;
use crate::error::CoreError;
use crate::ids::PlanId;
use crate::store::StoreError;
use crate::sync::{Intent, QueuedIntent, QueuedShare, STATE_INTENTS, STATE_SHARES};

/// Sealed: plan → when this device first saw that it no longer needs it (ms).
const STATE_LEAVING: &str = "retention_leaving";
/// Sealed: the plans this device removed; what a server still sends for them is ignored.
pub(crate) const STATE_RETIRED: &str = "retention_retired";
/// The most retired plans remembered: a worker's career of closed cases, and a bound.
const MAX_RETIRED: usize = 10_000;
/// Sealed state: how far each retired plan's chain stood when it left
/// (`BTreeMap<PlanId, u32>`): only a longer chain brings it back, never a replayed prefix.
pub(crate) const STATE_RETIRED_AT: &str = "retention_retired_at";

/// Why a plan leaves this device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetireReason {
    /// The plan was closed (*afgesloten*) and the grace period has passed.
    Closed,
    /// The chain no longer lists this device's user, and the grace period has passed.
    NoLongerParticipant,
}

impl RetireReason {
    /// The reason's code, for the access log.
    pub fn code(self) -> &'static str {
        match self {
            RetireReason::Closed => "closed",
            RetireReason::NoLongerParticipant => "no_longer_participant",
        }
    }

    /// The reason in Dutch, for people.
    pub fn label(self) -> &'static str {
        match self {
            RetireReason::Closed => "het plan is afgesloten",
            RetireReason::NoLongerParticipant => "u neemt niet meer deel aan dit plan",
        }
    }
}

impl Device {
    /// Closes the plan's case (*afgesloten*): the regisseur's act, queued like the other regie
    /// acts and signed by the next sync. From the closing entry on nothing changes in the plan,
    /// and the retention period runs.
    pub fn close_case(&mut self, plan: &PlanId) -> Result<(), CoreError> {
        let roster = self.roster_as_regisseur(plan)?;
        if roster.state().closed_at_ms.is_some() {
            return Err(CoreError::PlanClosed(*plan));
        }
        let queued = self.queued_intents()?;
        if queued.iter().any(|q| q.plan == *plan && q.intent == Intent::Close) {
            return Ok(());
        }
        self.queue_intent(plan, Intent::Close)
    }

    /// When the plan was closed, by its verified chain; `None` while it is open (or no chain
    /// is held).
    pub fn closed_at(&self, plan: &PlanId) -> Result<Option<i64>, CoreError> {
        Ok(self.roster(plan)?.and_then(|r| r.state().closed_at_ms))
    }

    /// Refuses a change to a closed plan. Reads go on until the copy is removed.
    pub(crate) fn refuse_if_closed(&self, plan: &PlanId) -> Result<(), CoreError> {
        match self.closed_at(plan)? {
            Some(_) => Err(CoreError::PlanClosed(*plan)),
            None => Ok(()),
        }
    }

    /// Why this device no longer needs `plan`, by its verified chain; `None` if it does.
    fn leaving(&self, plan: &PlanId, own_user: Option<i64>) -> Result<Option<RetireReason>, CoreError> {
        let Some(roster) = self.roster(plan)? else { return Ok(None) };
        let state = roster.state();
        Ok(if state.closed_at_ms.is_some() {
            Some(RetireReason::Closed)
        } else if own_user.is_some_and(|user| state.participant(user).is_none()) {
            Some(RetireReason::NoLongerParticipant)
        } else {
            None
        })
    }

    /// The retention rules in force here: the root-signed policy this device holds, or the
    /// defaults before it holds one; `None` when the held policy does not verify (nothing is
    /// removed by rules this device cannot check).
    fn retention(&self) -> Option<Retention> {
        self.stored_policy().ok().map(|p| p.map(|p| p.retention()).unwrap_or_default())
    }

    /// Removes every plan this device no longer needs whose grace period has passed, by the
    /// device clock; records when it learnt of the others. Runs at open and after each sync;
    /// hosts may call it (a phone left open for days). Returns the plans removed.
    pub fn retire_expired_plans(&mut self) -> Result<Vec<PlanId>, CoreError> {
        self.ensure_not_wiped()?;
        let own_user = self.own_user_id()?;
        let now = self.now_ms();
        let Some(grace) = self.retention() else { return Ok(Vec::new()) };
        let mut leaving = self.leaving_since()?;
        let before = leaving.clone();
        let mut due = Vec::new();
        let held = self.store().list_plans()?.into_iter().filter_map(Result::ok).map(|h| h.plan);
        for plan in held.collect::<Vec<_>>() {
            match self.leaving(&plan, own_user) {
                Ok(Some(reason)) => {
                    let since = *leaving.entry(plan).or_insert(now);
                    // Edits not yet pushed keep the plan until a sync has taken them: a
                    // clock pushed forward never costs a worker's writing.
                    if now >= grace.grace_end(since) && !self.has_unpushed(&plan)? {
                        due.push((plan, reason));
                    }
                }
                // Needed again (added back within the grace period), or not leaving.
                Ok(None) => {
                    leaving.remove(&plan);
                }
                // A damaged chain is reported where the plan is read; it never removes a plan.
                Err(_) => {}
            }
        }
        if leaving != before {
            let bytes = encode(&leaving);
            self.store_mut().write(|w| w.put_state(STATE_LEAVING, &bytes))?;
        }
        let mut retired = Vec::new();
        for (plan, reason) in due {
            self.retire_plan(&plan, reason)?;
            retired.push(plan);
        }
        Ok(retired)
    }

    /// Removes `plan` from this device for good: every row of it in one transaction (its
    /// documents, changes, outbox, keys, membership chain, review marks and header, its
    /// queued acts and shares), then memory, then the WAL is checkpointed and truncated so
    /// that no copy of a deleted row stays in the files. The plan vanishes from the list;
    /// what a server still sends for it is ignored.
    pub fn retire_plan(&mut self, plan: &PlanId, reason: RetireReason) -> Result<(), CoreError> {
        self.ensure_not_wiped()?;
        // The removal is recorded in the access log in the removal's own transaction.
        let access = crate::audit::Access::on(AuditAction::RemoveFromDevice, *plan).object(reason.code());
        let prepared = self.prepare_events(&[access])?;
        let parked = of_plan(self.store().parked_bundles()?, plan);
        let witnesses = of_plan(self.store().parked_witnesses()?, plan);
        let mut leaving = self.leaving_since()?;
        leaving.remove(plan);
        let mut retired = self.retired_plans()?;
        if !retired.contains(plan) {
            if retired.len() >= MAX_RETIRED {
                retired.remove(0);
            }
            retired.push(*plan);
        }
        let mut retired_at = self.retired_at()?;
        retired_at.retain(|p, _| retired.contains(p));
        // A chain that no longer decodes (a damaged row) holds no position to guard.
        let seq = self.held_chain(plan).ok().flatten().map_or(0, |held| held.roster.seq());
        retired_at.insert(*plan, seq);
        let intents: Vec<QueuedIntent> = self
            .durable_queue::<QueuedIntent>(STATE_INTENTS, "queued membership changes")?
            .into_iter()
            .filter(|q| q.plan != *plan)
            .collect();
        let shares: Vec<QueuedShare> = self
            .durable_queue::<QueuedShare>(STATE_SHARES, "queued shares")?
            .into_iter()
            .filter(|q| q.plan != *plan)
            .collect();
        self.store_mut().write(|w| {
            w.delete_plan(*plan)?;
            for id in &parked {
                w.unpark(*id)?;
            }
            for id in &witnesses {
                w.unpark_witness(*id)?;
            }
            w.put_state(STATE_INTENTS, &encode(&intents))?;
            w.put_state(STATE_SHARES, &encode(&shares))?;
            w.put_state(STATE_LEAVING, &encode(&leaving))?;
            w.put_state(STATE_RETIRED, &encode(&retired))?;
            w.put_state(STATE_RETIRED_AT, &encode(&retired_at))?;
            crate::audit::write_prepared(w, &prepared)
        })?;
        self.audit_committed(prepared);
        self.close_plan(plan);
        self.store_mut().reclaim_space()?;
        Ok(())
    }

    /// How far each retired plan's chain stood when it left.
    pub(crate) fn retired_at(&self) -> Result<BTreeMap<PlanId, u32>, CoreError> {
        self.sealed_state(STATE_RETIRED_AT, "retired plans' chain positions")
    }

    /// Whether the plan holds edits this device has not pushed yet.
    fn has_unpushed(&self, plan: &PlanId) -> Result<bool, CoreError> {
        for compartment in crate::plan::Compartment::ALL {
            if self.store().unpushed(*plan, compartment)? > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub(crate) fn retired_plans(&self) -> Result<Vec<PlanId>, CoreError> {
        self.sealed_state(STATE_RETIRED, "retired plans")
    }

    fn leaving_since(&self) -> Result<BTreeMap<PlanId, i64>, CoreError> {
        self.sealed_state(STATE_LEAVING, "plans leaving this device")
    }

    fn sealed_state<T: for<'de> Deserialize<'de> + Default>(
        &self,
        name: &str,
        what: &str,
    ) -> Result<T, CoreError> {
        match self.store().sync_state(name)? {
            None => Ok(T::default()),
            Some(bytes) => decode(&bytes, usize::MAX)
                .map_err(|_| StoreError::Corrupt(format!("stored {what} are not decodable")).into()),
        }
    }
}

/// The ids of the parked rows (bundles or witnesses, received and waiting for a key) of `plan`.
fn of_plan(parked: Vec<(i64, Vec<u8>)>, plan: &PlanId) -> Vec<i64> {
    parked
        .into_iter()
        .filter(|(_, bytes)| {
            eenplan_protocol::Bundle::decode(bytes.clone())
                .is_ok_and(|b| b.header.document.plan == *plan.as_bytes())
        })
        .map(|(id, _)| id)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::keystore::{KdfParams, PassphraseKeyStore};
    use crate::plan::{Compartment, NoteKind};

    #[test]
    fn retiring_a_plan_removes_every_row_of_it_and_leaves_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let keystore = PassphraseKeyStore::with_params("geheim", KdfParams::INSECURE_FAST_FOR_TESTS);
        let mut device = Device::init(dir.path(), &keystore).unwrap();
        let gone = device.create_plan("Jansen").unwrap();
        let kept = device.create_plan("De Vries").unwrap();
        for plan in [gone, kept] {
            device.edit(&plan, |p| p.add_note(Compartment::Basis, NoteKind::Note, "huisbezoek")).unwrap();
            device.store_mut().write(|w| w.put_membership(plan, b"chain")).unwrap();
            device.store_mut().write(|w| w.put_review_mark(plan, Compartment::Basis, b"heads")).unwrap();
        }
        let outbox = device.store().pending_outbox().unwrap();
        device.retire_plan(&gone, RetireReason::Closed).unwrap();

        let listed: Vec<PlanId> = device
            .list_plans()
            .unwrap()
            .into_iter()
            .filter_map(|e| match e {
                crate::PlanListEntry::Ok(s) => Some(s.id),
                crate::PlanListEntry::Damaged { .. } => None,
            })
            .collect();
        assert_eq!(listed, [kept]);
        let store = device.store();
        assert!(!store.has_plan(gone).unwrap());
        assert!(store.membership(gone).unwrap().is_none());
        assert!(store.review_mark(gone, Compartment::Basis).unwrap().is_none());
        assert!(Compartment::ALL.iter().all(|c| store.latest_doc_key(gone, *c).unwrap().is_none()));
        // The two plans were made alike: half the outbox went with the one retired.
        assert_eq!(store.pending_outbox().unwrap() * 2, outbox);
        assert!(store.membership(kept).unwrap().is_some());
        assert!(device.retired_plans().unwrap().contains(&gone));
        assert!(matches!(device.read(&gone), Err(CoreError::UnknownPlan(_))));
        assert!(device.store().has_plan(kept).unwrap());
    }

    #[test]
    fn a_retired_plan_comes_back_only_for_a_chain_that_went_on_never_for_a_replayed_older_part() {
        use eenplan_protocol::membership::{Act, Entry, Roster, Signer};

        use crate::sync::HeldChain;
        use crate::sync::test_network::{TestNetwork, TestUser};

        let dir = tempfile::tempdir().unwrap();
        let keystore = PassphraseKeyStore::with_params("geheim", KdfParams::INSECURE_FAST_FOR_TESTS);
        let mut device = Device::init(dir.path(), &keystore).unwrap();
        let net = TestNetwork::new();
        let person =
            |user_id, name| TestUser { user_id, name, organisation: "Wijkteam Noord", role: "wijkteam" };
        net.enrol(&mut device, &person(1, "Wim"));
        let wim_key = device.identity().signing_key().clone();
        let signing = device.identity().signing_public().to_bytes();
        let agreement = device.identity().agreement_public().to_vec();
        let now = device.now_ms();
        let wim = net.chain(&signing, &agreement, &person(1, "Wim"), now);
        let newcomer = |seed: u8, user_id, name| {
            let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
            let agreement = eenplan_protocol::envelope::generate_keypair().1;
            net.chain(&key.verifying_key().to_bytes(), &agreement, &person(user_id, name), now)
        };
        let plan = device.create_plan("Jansen").unwrap();
        // The chain as it grows: Wim creates the plan, adds Ans, later adds Carla.
        let mut entries = vec![Entry::create(*plan.as_bytes(), now, wim.clone()).sign(&wim_key)];
        let mut roster = Roster::start(&entries[0], &net.root_public(), &|_, _| false).unwrap();
        let mut chains = vec![HeldChain { entries: vec![entries[0].to_bytes()], roster: roster.clone() }];
        for added in [newcomer(7, 2, "Ans"), newcomer(8, 3, "Carla")] {
            let entry =
                Entry::next(&roster, now, Signer::Device(wim.clone()), Act::Add(added)).sign(&wim_key);
            roster.apply(&entry, &net.root_public(), &|_, _| false).unwrap();
            entries.push(entry);
            let bytes = entries.iter().map(|e| e.to_bytes()).collect();
            chains.push(HeldChain { entries: bytes, roster: roster.clone() });
        }
        let keep = |device: &mut Device, held: &HeldChain| {
            let bytes = eenplan_protocol::sync::encode(held);
            device.store_mut().write(|w| w.put_membership(plan, &bytes)).unwrap();
        };
        // The device held the chain up to Ans's addition when the plan left it.
        keep(&mut device, &chains[1]);
        device.retire_plan(&plan, RetireReason::NoLongerParticipant).unwrap();
        let retired = device.retired_plans().unwrap();

        for (replayed, comes_back) in [(&chains[0], false), (&chains[1], false), (&chains[2], true)] {
            let mut changed = vec![plan];
            let held = BTreeMap::from([(plan, Some(replayed.clone()))]);
            let still = device.still_retired(&mut changed, &held, &retired).unwrap();
            assert_eq!(changed.contains(&plan), comes_back, "a chain of {} entries", replayed.entries.len());
            assert_eq!(still.is_some_and(|list| !list.contains(&plan)), comes_back);
        }
    }
}
