//! The server's rules, written once over the row-level [`Backend`] traits: every
//! [`Storage`] operation of every backend is one transaction run here. A backend supplies
//! only rows ([`super::backend`]); what a revocation, a role or policy change, a rotation, a
//! membership entry or a push sets off is decided in this module and its children.

use eenplan_protocol::{BundleKind, DocumentId};

use super::backend::{Backend, ReadRows, WriteRows, read, write};
use super::{
    AdminRecord, AuditKeyRecord, CREATOR_PLAN_ROLE, CharteredPlan, CommitmentOutcome, CommitmentRecord,
    CompletedRotation, DeviceId, DeviceRecord, DeviceState, DocStats, Envelope, EnvelopeOutcome,
    EnvelopeRefusal, Erasure, MAX_SNAPSHOT_REQUESTS_PER_DEVICE, MemberErased, MemberErasure, MembershipPage,
    MembershipUpdate, NetworkRecord, NewAuditUpload, NewBundle, NewDevice, Org, OrgId, Participant, PlanId,
    PolicyRecord, PullBatch, PullRequest, PushOutcome, Reader, Result, Revocation, RevocationListRecord,
    RotationTask, SNAPSHOT_REQUEST_TTL_MS, ServerEventRecord, SessionRecorded, Storage, StorageError,
    StoredAuditUpload, StoredName, User, UserId, WipeGuard, pull,
};

/// `DocumentId`'s fields are public, so one can be built with a compartment that does not
/// exist; such a row could never be read back as a `DocumentId`.
fn known_compartments(mut documents: impl Iterator<Item = DocumentId>) -> Result<()> {
    match documents.find(|d| d.compartment >= DocumentId::COMPARTMENTS) {
        Some(bad) => Err(StorageError::InvalidState(format!("compartment {} is unknown", bad.compartment))),
        None => Ok(()),
    }
}

impl<B: Backend> Storage for B {
    fn network(&self) -> Result<Option<NetworkRecord>> {
        read(self, |rows| rows.network())
    }

    fn init_network(
        &self,
        network: &NetworkRecord,
        first_admin: &AdminRecord,
        policy: &PolicyRecord,
    ) -> Result<()> {
        write(self, |tx| {
            if !tx.insert_network(network)? {
                return Err(StorageError::AlreadyInitialised);
            }
            if !tx.insert_admin(first_admin)? {
                return Err(StorageError::Conflict("that key is already an administrator".into()));
            }
            tx.replace_policy(policy, 0)
        })
    }

    fn add_admin(&self, admin: &AdminRecord) -> Result<()> {
        write(self, |tx| {
            if tx.network()?.is_none() {
                return Err(StorageError::InvalidState("the network is not initialised".into()));
            }
            if !tx.insert_admin(admin)? {
                return Err(StorageError::Conflict("that key is already an administrator".into()));
            }
            Ok(())
        })
    }

    fn admin(&self, public: &[u8; 32]) -> Result<Option<AdminRecord>> {
        read(self, |rows| rows.admin(public))
    }

    fn server_secret(&self) -> Result<[u8; 32]> {
        if let Some(secret) = read(self, |rows| rows.server_secret())? {
            return Ok(secret);
        }
        let fresh = fresh_secret()?;
        // Two first callers may race here; the insert keeps whichever committed first.
        write(self, |tx| tx.ensure_server_secret(&fresh))
    }

    fn add_org(&self, name: &str, lease_hours: u32) -> Result<OrgId> {
        write(self, |tx| {
            tx.insert_org(name, lease_hours)?
                .ok_or_else(|| StorageError::Conflict(format!("an organisation named {name:?} exists")))
        })
    }

    fn orgs(&self) -> Result<Vec<Org>> {
        read(self, |rows| rows.orgs())
    }

    fn org_by_name(&self, name: &str) -> Result<Option<Org>> {
        read(self, |rows| rows.org_by_name(name))
    }

    fn add_user(&self, org: OrgId, name: &str, role: &str) -> Result<UserId> {
        write(self, |tx| {
            if !tx.org_exists(org)? {
                return Err(StorageError::NotFound);
            }
            tx.insert_user(org, name, role)?.ok_or_else(|| {
                StorageError::Conflict(format!("the organisation already has a user named {name:?}"))
            })
        })
    }

    fn users(&self) -> Result<Vec<User>> {
        read(self, |rows| rows.users())
    }

    fn user(&self, id: UserId) -> Result<Option<User>> {
        read(self, |rows| rows.user(id))
    }

    fn user_by_name(&self, name: &str) -> Result<Vec<User>> {
        read(self, |rows| rows.users_by_name(name))
    }

    fn create_enrolment(&self, code_id: &[u8; 32], user: UserId, expires_at: i64) -> Result<()> {
        write(self, |tx| {
            if !tx.user_exists(user)? {
                return Err(StorageError::NotFound);
            }
            if !tx.insert_enrolment(code_id, user, expires_at)? {
                return Err(StorageError::Conflict("that enrolment code exists".into()));
            }
            Ok(())
        })
    }

    fn claim_enrolment(&self, code_id: &[u8; 32], device: &NewDevice, now: i64) -> Result<UserId> {
        write(self, |tx| {
            let (user, expires_at) = tx.unused_enrolment(code_id)?.ok_or(StorageError::NotFound)?;
            if now >= expires_at {
                return Err(StorageError::Expired);
            }
            if !tx.insert_device(device, user, now)? {
                return Err(StorageError::Conflict("that device is enrolled already".into()));
            }
            tx.mark_enrolment_used(code_id, device.device_id, now)?;
            Ok(user)
        })
    }

    fn devices(&self) -> Result<Vec<DeviceRecord>> {
        read(self, |rows| rows.devices())
    }

    fn devices_of_user(&self, user: UserId) -> Result<Vec<DeviceRecord>> {
        read(self, |rows| rows.devices_of_user(user))
    }

    fn device(&self, id: DeviceId) -> Result<Option<DeviceRecord>> {
        read(self, |rows| rows.device(id))
    }

    fn pending_devices(&self) -> Result<Vec<DeviceRecord>> {
        read(self, |rows| rows.devices_in_state(DeviceState::Pending))
    }

    fn active_devices_of_user(&self, user: UserId) -> Result<Vec<DeviceRecord>> {
        read(self, |rows| rows.active_devices_of_user(user))
    }

    fn activate_device(&self, id: DeviceId, certificate: &[u8]) -> Result<()> {
        write(self, |tx| match tx.device_state(id)? {
            None => Err(StorageError::NotFound),
            Some(DeviceState::Pending) => tx.activate_device(id, certificate),
            Some(state) => Err(StorageError::InvalidState(format!("the device is {}", state.as_str()))),
        })
    }

    fn revoke_device(&self, id: DeviceId, revocation: &Revocation, now: i64) -> Result<u64> {
        write(self, |tx| {
            let record = tx.device(id)?.ok_or(StorageError::NotFound)?;
            match record.state {
                // Keeps the first revocation's time, reason and order.
                DeviceState::Revoked => {}
                // A pending device never received a key: nothing to rotate.
                DeviceState::Pending => {
                    tx.revoke_device(id, &revocation.reason, now)?;
                    tx.insert_wipe_order(id, &revocation.wipe_order, now)?;
                }
                DeviceState::Active => {
                    tx.revoke_device(id, &revocation.reason, now)?;
                    tx.insert_wipe_order(id, &revocation.wipe_order, now)?;
                    for (document, _) in tx.readable(record.user)? {
                        tx.queue_rotation(document, now)?;
                    }
                }
            }
            tx.pending_rotations()
        })
    }

    fn change_role(
        &self,
        user: UserId,
        role: &str,
        certificates: &[(DeviceId, Vec<u8>)],
        now: i64,
    ) -> Result<u64> {
        write(self, |tx| {
            let old_role = tx.user(user)?.ok_or(StorageError::NotFound)?.role;
            let policy = tx
                .policy()?
                .ok_or_else(|| StorageError::InvalidState("the network has no sharing policy".into()))?
                .policy;
            let devices = tx.active_devices_of_user(user)?;
            let named: std::collections::BTreeSet<DeviceId> = certificates.iter().map(|c| c.0).collect();
            let active: std::collections::BTreeSet<DeviceId> = devices.iter().map(|d| d.device_id).collect();
            if named != active || named.len() != certificates.len() {
                return Err(StorageError::InvalidState(
                    "the new certificates must cover exactly the user's active devices".into(),
                ));
            }
            for (device, certificate) in certificates {
                let Some(record) = devices.iter().find(|d| d.device_id == *device) else { continue };
                let old = record.certificate.as_deref().unwrap_or_default();
                // Kept under the time it started, which orders a device's certificates.
                let old_from = eenplan_protocol::certificate::Certificate::from_bytes(old)
                    .and_then(|c| c.claimed_device_body())
                    .map_or(record.created_at, |body| body.valid_from_ms);
                tx.recertify_device(*device, (old_from, old), certificate, now)?;
            }
            tx.set_user_role(user, role)?;
            let change = policy.role_change(&old_role, role);
            let plans = tx.plans_of_user(user)?;
            for plan in &plans {
                for compartment in &change.rotate {
                    let document = DocumentId { plan: *plan, compartment: *compartment };
                    if change.lost_reads.contains(compartment) {
                        tx.delete_user_envelopes(document, user)?;
                    }
                    tx.queue_rotation(document, now)?;
                }
            }
            if !change.gained_reads.is_empty() && !plans.is_empty() {
                let granted = tx.advance_head(1)?;
                for plan in &plans {
                    tx.set_granted_at(plan, user, granted)?;
                }
            }
            tx.pending_rotations()
        })
    }

    fn older_certificates(&self, id: DeviceId) -> Result<Vec<Vec<u8>>> {
        read(self, |rows| rows.older_certificates(id))
    }

    fn wipe_order(&self, id: DeviceId) -> Result<Option<Vec<u8>>> {
        read(self, |rows| rows.wipe_order(id))
    }

    fn record_wipe(&self, id: DeviceId, report: &[u8], seen: &WipeGuard, now: i64) -> Result<bool> {
        write(self, |tx| {
            let device = tx.device(id)?.ok_or(StorageError::NotFound)?;
            if WipeGuard::of(&device) != *seen {
                return Ok(false);
            }
            tx.insert_wipe_report(id, report, now)?;
            Ok(true)
        })
    }

    fn record_session(
        &self,
        id: DeviceId,
        wipe_nonce_hash: Option<[u8; 32]>,
        now: i64,
    ) -> Result<SessionRecorded> {
        write(self, |tx| {
            if tx.device_state(id)?.is_none() {
                return Err(StorageError::NotFound);
            }
            let wipe_report_cleared = tx.record_session(id, wipe_nonce_hash, now)?;
            Ok(SessionRecorded { wipe_report_cleared })
        })
    }

    fn record_device_name(&self, id: DeviceId, name: &StoredName) -> Result<()> {
        write(self, |tx| {
            if !tx.set_device_name(id, name)? {
                return Err(StorageError::NotFound);
            }
            Ok(())
        })
    }

    fn record_last_seen(&self, id: DeviceId, now: i64) -> Result<()> {
        write(self, |tx| tx.set_last_seen(id, now))
    }

    fn register_plan(&self, plan: PlanId, creator: UserId, created_by: DeviceId, now: i64) -> Result<bool> {
        write(self, |tx| {
            require_active(tx, created_by)?;
            // An erased plan stays erased: as if another user held it, nothing changes.
            if tx.erased_at(&plan)?.is_some() {
                return Ok(false);
            }
            if let Some(existing) = tx.plan_creator(&plan)? {
                return Ok(existing == creator);
            }
            if !tx.user_exists(creator)? {
                return Err(StorageError::NotFound);
            }
            tx.insert_plan(&plan, creator, created_by, now)?;
            let granted = tx.advance_head(1)?;
            tx.insert_participant(&plan, creator, CREATOR_PLAN_ROLE, granted)?;
            Ok(true)
        })
    }

    fn register_chartered_plan(&self, plan: &CharteredPlan) -> Result<bool> {
        write(self, |tx| {
            require_active(tx, plan.created_by)?;
            // An erased plan stays erased: as if another user held it, nothing changes.
            if tx.erased_at(&plan.plan)?.is_some() {
                return Ok(false);
            }
            if let Some(existing) = tx.plan_creator(&plan.plan)? {
                return Ok(existing == plan.creator);
            }
            if !tx.user_exists(plan.creator)? {
                return Err(StorageError::NotFound);
            }
            tx.insert_plan(&plan.plan, plan.creator, plan.created_by, plan.now)?;
            let position = tx.advance_head(1)?;
            tx.insert_membership(&plan.plan, 1, &plan.charter, position)?;
            tx.set_roster(&plan.plan, &plan.roster, eenplan_protocol::membership::LEVELS[0])?;
            let granted = tx.advance_head(1)?;
            tx.insert_participant(&plan.plan, plan.creator, &plan.creator_role, granted)?;
            Ok(true)
        })
    }

    fn roster(&self, plan: PlanId) -> Result<Option<(u32, Vec<u8>)>> {
        read(self, |rows| rows.roster(&plan))
    }

    fn append_membership(&self, update: &MembershipUpdate) -> Result<u64> {
        known_compartments(update.rotate.iter().copied())?;
        write(self, |tx| append_membership_in(tx, update))
    }

    fn append_erasure(&self, update: &MembershipUpdate) -> Result<MemberErased> {
        let erasure =
            update.erasure.as_ref().ok_or_else(|| StorageError::InvalidState("no erasure".into()))?;
        known_compartments(
            std::iter::once(erasure.document).chain(erasure.envelopes.iter().map(|e| e.document)),
        )?;
        let erased = write(self, |tx| {
            append_membership_in(tx, update)?;
            erase_older_epochs(tx, erasure, update.now)
        })?;
        // As for a whole plan: the deleted cells are zeroed (`secure_delete`) in the pages
        // this commit wrote; the checkpoint puts them over the file and truncates the WAL.
        self.purge_deleted()?;
        Ok(erased)
    }

    fn closed_plans(&self) -> Result<Vec<(PlanId, i64)>> {
        read(self, |rows| rows.closed_plans())
    }

    fn closed_at(&self, plan: PlanId) -> Result<Option<i64>> {
        read(self, |rows| rows.closed_at(&plan))
    }

    fn erased_at(&self, plan: PlanId) -> Result<Option<i64>> {
        read(self, |rows| rows.erased_at(&plan))
    }

    fn erase_plan(&self, plan: PlanId, now: i64) -> Result<Erasure> {
        let erasure = write(self, |tx| {
            if let Some(erased_at) = tx.erased_at(&plan)? {
                return Ok(Erasure { erased_at, already: true, ..Erasure::default() });
            }
            if tx.plan_creator(&plan)?.is_none() {
                return Err(StorageError::NotFound);
            }
            tx.erase_plan(&plan, now)
        })?;
        // `secure_delete` zeroed the deleted cells and freed pages in the pages this commit
        // wrote to the WAL; the checkpoint puts them over the old pages in the file, and the
        // truncation leaves no frame with a copy.
        self.purge_deleted()?;
        Ok(erasure)
    }

    fn membership_entries(&self, plan: PlanId, after: u32) -> Result<Vec<Vec<u8>>> {
        read(self, |rows| rows.membership_entries(&plan, after))
    }

    fn membership_for(&self, user: UserId, after: u64, limit: (usize, usize)) -> Result<MembershipPage> {
        read(self, |rows| {
            let head = rows.head()?;
            Ok(super::whole_chains_page(rows.membership_after(user, after)?, after, head, limit))
        })
    }

    fn rotations_for(&self, user: UserId) -> Result<Vec<(DocumentId, u32)>> {
        read(self, |rows| {
            rows.chartered_rotations_for(user)?
                .into_iter()
                .map(|document| Ok((document, rows.current_epoch(document)?.saturating_add(1))))
                .collect()
        })
    }

    fn add_participant(&self, plan: PlanId, user: UserId, plan_role: &str) -> Result<()> {
        write(self, |tx| {
            if tx.plan_creator(&plan)?.is_none() || !tx.user_exists(user)? {
                return Err(StorageError::NotFound);
            }
            match tx.participant_role(&plan, user)? {
                // The grant keeps its position: the user's devices already follow the plan, and
                // which compartments they read follows the user's role, not the plan role.
                Some(_) => tx.set_participant_role(&plan, user, plan_role),
                None => {
                    let granted = tx.advance_head(1)?;
                    tx.insert_participant(&plan, user, plan_role, granted)
                }
            }
        })
    }

    fn remove_participant(&self, plan: PlanId, user: UserId, now: i64) -> Result<u64> {
        write(self, |tx| {
            // What the user could read, before the participation that grants it goes.
            let lost = tx.readable_in_plan(&plan, user)?;
            tx.delete_participant(&plan, user)?;
            for document in lost {
                tx.queue_rotation(document, now)?;
            }
            tx.pending_rotations()
        })
    }

    fn participants(&self, plan: PlanId) -> Result<Vec<Participant>> {
        read(self, |rows| rows.participants(&plan))
    }

    fn is_participant(&self, plan: PlanId, user: UserId) -> Result<bool> {
        read(self, |rows| Ok(rows.participant_role(&plan, user)?.is_some()))
    }

    fn plans_of_user(&self, user: UserId) -> Result<Vec<PlanId>> {
        read(self, |rows| rows.plans_of_user(user))
    }

    fn plan_levels_of_user(&self, user: UserId) -> Result<Vec<(PlanId, String)>> {
        read(self, |rows| rows.plan_levels_of_user(user))
    }

    fn readable_documents(&self, user: UserId) -> Result<Vec<(DocumentId, u64)>> {
        read(self, |rows| rows.readable(user))
    }

    fn readers(&self, document: DocumentId) -> Result<Vec<Reader>> {
        read(self, |rows| rows.readers(document))
    }

    fn policy(&self) -> Result<Option<PolicyRecord>> {
        read(self, |rows| rows.policy())
    }

    fn set_policy(&self, record: &PolicyRecord, now: i64) -> Result<u64> {
        write(self, |tx| {
            let old = tx.policy()?;
            if let Some(old) = &old
                && record.policy.version <= old.policy.version
            {
                return Err(StorageError::Conflict(format!(
                    "policy version {} is not newer than {}",
                    record.policy.version, old.policy.version
                )));
            }
            let old = old.map(|o| o.policy).unwrap_or_default();
            // Reads taken away: those participants' devices lose the keys, and the documents
            // move to an epoch they will not get.
            for (role, compartment) in old.lost_reads(&record.policy) {
                for (plan, user) in tx.participants_with_role(&role)? {
                    let document = DocumentId { plan, compartment };
                    tx.delete_user_envelopes(document, user)?;
                    tx.queue_rotation(document, now)?;
                }
            }
            // Writes taken away (reads kept): the keys stay, but the new epoch is where the
            // new write rules start for every receiver.
            for (role, compartment) in old.lost_writes(&record.policy) {
                for (plan, _) in tx.participants_with_role(&role)? {
                    tx.queue_rotation(DocumentId { plan, compartment }, now)?;
                }
            }
            // Reads given: a new grant position makes the plan new to those devices' cursors,
            // so their next pull sends the newly readable documents from their beginning
            // (the plan's other documents again too: redundant, never missing).
            let gained = record.policy.lost_reads(&old);
            let roles: std::collections::BTreeSet<&str> =
                gained.iter().map(|(role, _)| role.as_str()).collect();
            let mut regranted = Vec::new();
            for role in roles {
                regranted.extend(tx.participants_with_role(role)?);
            }
            // Only a grant that someone receives takes a position.
            if !regranted.is_empty() {
                let granted = tx.advance_head(1)?;
                for (plan, user) in regranted {
                    tx.set_granted_at(&plan, user, granted)?;
                }
            }
            tx.replace_policy(record, now)?;
            tx.pending_rotations()
        })
    }

    fn policy_version(&self, version: u32) -> Result<Option<Vec<u8>>> {
        read(self, |rows| rows.policy_version(version))
    }

    fn put_revocation_list(&self, list: &RevocationListRecord, now: i64) -> Result<bool> {
        write(self, |tx| {
            let newest = tx.revocation_list(None)?;
            if let Some((version, signed)) = tx.revocation_list(Some(list.version))? {
                return if signed == list.signed {
                    Ok(false)
                } else {
                    Err(StorageError::Conflict(format!("another revocation list is version {version}")))
                };
            }
            let next = newest.map_or(1, |(version, _)| version.saturating_add(1));
            if list.version != next {
                return Err(StorageError::Conflict(format!("the next revocation list is version {next}")));
            }
            tx.insert_revocation_list(list.version, &list.signed, now)?;
            for device in &list.devices {
                tx.insert_revocation_entry(*device, list.version)?;
            }
            Ok(true)
        })
    }

    fn revocation_list(&self, version: Option<u32>) -> Result<Option<(u32, Vec<u8>)>> {
        read(self, |rows| rows.revocation_list(version))
    }

    fn on_revocation_list(&self, device: DeviceId) -> Result<bool> {
        read(self, |rows| rows.on_revocation_list(device))
    }

    fn put_commitment(
        &self,
        commitment: &CommitmentRecord,
        policy_version: u32,
    ) -> Result<CommitmentOutcome> {
        known_compartments(std::iter::once(commitment.document))?;
        write(self, |tx| {
            if let Some(minter) = commitment.minter_device {
                let user = require_active(tx, minter)?.user;
                let document = commitment.document;
                if !tx.readable_in_plan(&document.plan, user)?.contains(&document) {
                    return Ok(CommitmentOutcome::NoAccess);
                }
            }
            let current = tx.policy_version_in_force()?.unwrap_or(0);
            if policy_version != current {
                return Ok(CommitmentOutcome::OtherPolicy { current });
            }
            Ok(if tx.insert_commitment(commitment)? {
                CommitmentOutcome::Stored
            } else {
                CommitmentOutcome::Exists
            })
        })
    }

    fn commitment(&self, document: DocumentId, epoch: u32) -> Result<Option<CommitmentRecord>> {
        read(self, |rows| rows.commitment(document, epoch))
    }

    fn current_epoch(&self, document: DocumentId) -> Result<u32> {
        read(self, |rows| rows.current_epoch(document))
    }

    fn unminted_documents(&self, user: UserId) -> Result<Vec<DocumentId>> {
        read(self, |rows| rows.unminted_documents(user))
    }

    fn held_keys(&self, device: DeviceId) -> Result<Vec<(DocumentId, u32)>> {
        read(self, |rows| rows.held_keys(device))
    }

    fn rotation_pending(&self, document: DocumentId) -> Result<bool> {
        read(self, |rows| rows.rotation_pending_before(document, u32::MAX))
    }

    fn pending_rotations(&self) -> Result<u64> {
        read(self, |rows| rows.pending_rotations())
    }

    fn rotation_tasks(&self, limit: usize) -> Result<Vec<RotationTask>> {
        read(self, |rows| {
            let limit = u64::try_from(limit).unwrap_or(u64::MAX);
            rows.oldest_rotations(limit)?
                .into_iter()
                .map(|(document, queued_at)| {
                    Ok(RotationTask {
                        document,
                        current_epoch: rows.current_epoch(document)?,
                        queued_at,
                        readers: rows.readers(document)?,
                    })
                })
                .collect()
        })
    }

    fn complete_rotation(&self, rotation: &CompletedRotation) -> Result<u64> {
        let document = rotation.document;
        known_compartments(std::iter::once(document).chain(rotation.envelopes.iter().map(|e| e.document)))?;
        write(self, |tx| {
            let current = tx.current_epoch(document)?;
            if current.checked_add(1) != Some(rotation.new_epoch) {
                return Err(StorageError::InvalidState(format!(
                    "the document is at epoch {current}; the next epoch is {}",
                    u64::from(current) + 1
                )));
            }
            if !tx.rotation_pending_before(document, rotation.new_epoch)? {
                return Err(StorageError::InvalidState("no rotation of the document is waiting".into()));
            }
            if let Some(minter) = rotation.minter_device {
                let user = require_active(tx, minter)?.user;
                if !tx.readable_in_plan(&document.plan, user)?.contains(&document) {
                    return Err(StorageError::InvalidState("the minter may not read the document".into()));
                }
            }
            let commitment = CommitmentRecord {
                document,
                epoch: rotation.new_epoch,
                minter_device: rotation.minter_device,
                signed: rotation.commitment.clone(),
                stored_at: rotation.now,
            };
            if !tx.insert_commitment(&commitment)? {
                return Err(StorageError::InvalidState("the epoch has a commitment already".into()));
            }
            put_envelopes_in(tx, &rotation.envelopes)?;
            tx.settle_rotations(document, rotation.new_epoch)?;
            tx.pending_rotations()
        })
    }

    fn push_batch(&self, items: &[NewBundle]) -> Result<Vec<PushOutcome>> {
        known_compartments(items.iter().map(|b| b.document))?;
        if items.is_empty() {
            return Ok(Vec::new());
        }
        write(self, |tx| {
            let start = tx.head()?;
            let mut head = start;
            let mut outcomes = Vec::with_capacity(items.len());
            let mut revoked: std::collections::HashMap<DeviceId, bool> = std::collections::HashMap::new();
            for item in items {
                // Checked again here, in the transaction that writes: the route checked
                // before the group commit, and a revocation may have committed since.
                let author_revoked = match revoked.entry(item.author) {
                    std::collections::hash_map::Entry::Occupied(entry) => *entry.get(),
                    std::collections::hash_map::Entry::Vacant(entry) => {
                        *entry.insert(tx.device_state(item.author)? == Some(DeviceState::Revoked))
                    }
                };
                if author_revoked {
                    outcomes
                        .push(PushOutcome::Refused { reason: eenplan_protocol::sync::REJECT_AUTHOR_REVOKED });
                    continue;
                }
                if tx.rotation_pending_before(item.document, u32::MAX)? {
                    outcomes.push(PushOutcome::Refused { reason: eenplan_protocol::sync::REJECT_ROTATING });
                    continue;
                }
                if item.epoch < tx.current_epoch(item.document)? {
                    outcomes
                        .push(PushOutcome::Refused { reason: eenplan_protocol::sync::REJECT_STALE_EPOCH });
                    continue;
                }
                let seq = head + 1;
                let covers = match item.kind {
                    BundleKind::Snapshot { covers } => {
                        // A retried upload is found, not refused: its request is gone.
                        if let Some(seq) = tx.seq_of_bundle(&item.bundle_id)? {
                            outcomes.push(PushOutcome::Duplicate { seq });
                            continue;
                        }
                        let since = item.received_at.saturating_sub(SNAPSHOT_REQUEST_TTL_MS);
                        if !tx.take_snapshot_request(item.author, item.document, covers, since)? {
                            outcomes.push(PushOutcome::Refused {
                                reason: eenplan_protocol::sync::REJECT_UNREQUESTED_SNAPSHOT,
                            });
                            continue;
                        }
                        Some(covers)
                    }
                    BundleKind::Changes => None,
                };
                if tx.insert_bundle(seq, item, covers)? {
                    head = seq;
                    outcomes.push(PushOutcome::Appended { seq });
                } else {
                    let seq = tx.seq_of_bundle(&item.bundle_id)?.ok_or_else(|| {
                        StorageError::Corrupt("a bundle id conflicts but its row is missing".into())
                    })?;
                    outcomes.push(PushOutcome::Duplicate { seq });
                }
            }
            if head != start {
                tx.set_head(head)?;
            }
            Ok(outcomes)
        })
    }

    fn head(&self) -> Result<u64> {
        read(self, |rows| rows.head())
    }

    fn pull_page(&self, request: &PullRequest) -> Result<PullBatch> {
        let page = read(self, |rows| pull::pull(rows.log(), request))?;
        let Some(point) = page.resume else { return Ok(page.batch) };
        let token = write(self, |tx| tx.insert_resume_point(request.device, &point, page.presented_token))?;
        Ok(PullBatch { head: eenplan_protocol::sync::RESUME_TOKEN_BIT | token, ..page.batch })
    }

    fn request_snapshots(
        &self,
        device: DeviceId,
        documents: &[DocumentId],
        covers: u64,
        now: i64,
    ) -> Result<Vec<DocumentId>> {
        known_compartments(documents.iter().copied())?;
        if documents.is_empty() {
            return Ok(Vec::new());
        }
        let since = now.saturating_sub(SNAPSHOT_REQUEST_TTL_MS);
        write(self, |tx| {
            if covers > tx.head()? {
                return Err(StorageError::InvalidState(
                    "a snapshot cannot cover more than the log holds".into(),
                ));
            }
            tx.expire_snapshot_requests(since)?;
            let mut outstanding: std::collections::BTreeSet<DocumentId> =
                tx.snapshot_requests_of(device, since)?.into_iter().map(|(d, _)| d).collect();
            let mut asked = Vec::new();
            for &document in documents {
                let full =
                    outstanding.len() >= MAX_SNAPSHOT_REQUESTS_PER_DEVICE && !outstanding.contains(&document);
                if full || tx.snapshot_requested_elsewhere(document, device, since)? {
                    continue;
                }
                tx.upsert_snapshot_request(device, document, covers, now)?;
                outstanding.insert(document);
                asked.push(document);
            }
            Ok(asked)
        })
    }

    fn snapshot_requests(&self, device: DeviceId, now: i64) -> Result<Vec<(DocumentId, u64)>> {
        read(self, |rows| rows.snapshot_requests_of(device, now.saturating_sub(SNAPSHOT_REQUEST_TTL_MS)))
    }

    fn document_stats(&self, document: DocumentId) -> Result<DocStats> {
        read(self, |rows| rows.document_stats(document))
    }

    fn put_envelopes(&self, sealer: DeviceId, envelopes: &[Envelope]) -> Result<Vec<EnvelopeOutcome>> {
        known_compartments(envelopes.iter().map(|e| e.document))?;
        write(self, |tx| {
            require_active(tx, sealer)?;
            envelopes.iter().map(|envelope| put_sealed_envelope(tx, sealer, envelope)).collect()
        })
    }

    fn refuse_envelopes(&self, recipient: DeviceId, refusals: &[EnvelopeRefusal]) -> Result<u64> {
        known_compartments(refusals.iter().map(|r| r.document))?;
        write(self, |tx| {
            require_active(tx, recipient)?;
            let mut deleted = 0;
            for refusal in refusals {
                let Some(stored) = tx.envelope_sealer(recipient, refusal.document, refusal.epoch)? else {
                    continue;
                };
                if stored.is_some_and(|sealer| sealer != refusal.sealer) {
                    continue;
                }
                tx.delete_envelope(recipient, refusal.document, refusal.epoch)?;
                deleted += 1;
                if stored.is_some() {
                    tx.insert_refused_sealer(recipient, refusal.document, refusal.epoch, refusal.sealer)?;
                }
            }
            Ok(deleted)
        })
    }

    fn envelopes_for(&self, device: DeviceId, since: u64) -> Result<Vec<Envelope>> {
        read(self, |rows| rows.envelopes_for(device, since))
    }

    fn escrow_envelopes(&self, plan: PlanId) -> Result<Vec<Envelope>> {
        read(self, |rows| rows.escrow_envelopes(&plan))
    }

    fn devices_missing_envelope(&self, document: DocumentId, epoch: u32) -> Result<Vec<DeviceId>> {
        read(self, |rows| rows.devices_missing_envelope(document, epoch))
    }

    fn put_audit_uploads(&self, uploads: &[NewAuditUpload]) -> Result<Vec<bool>> {
        write(self, |tx| {
            let mut stored = Vec::with_capacity(uploads.len());
            for upload in uploads {
                require_active(tx, upload.device)?;
                stored.push(tx.insert_audit_upload(upload)?);
            }
            Ok(stored)
        })
    }

    fn audit_through(&self, device: DeviceId) -> Result<u64> {
        read(self, |rows| rows.audit_through(device))
    }

    fn audit_uploads(&self, org: OrgId, after: u64, limit: usize) -> Result<Vec<StoredAuditUpload>> {
        let limit = u64::try_from(limit).unwrap_or(u64::MAX);
        read(self, |rows| rows.audit_uploads(org, after, limit))
    }

    fn put_audit_key(&self, key: &AuditKeyRecord) -> Result<bool> {
        write(self, |tx| {
            if !tx.orgs()?.iter().any(|o| o.id == key.org) {
                return Err(StorageError::NotFound);
            }
            let keys = tx.audit_keys(key.org)?;
            if let Some(same) = keys.iter().find(|k| k.version == key.version)
                && same.signed == key.signed
            {
                return Ok(false);
            }
            let newest = keys.last().map_or(0, |k| k.version);
            if key.version <= newest {
                return Err(StorageError::Conflict(format!(
                    "audit key version {} is not above {newest}",
                    key.version
                )));
            }
            tx.insert_audit_key(key)?;
            Ok(true)
        })
    }

    fn audit_keys(&self, org: OrgId) -> Result<Vec<AuditKeyRecord>> {
        read(self, |rows| rows.audit_keys(org))
    }

    fn server_audit_seed(&self) -> Result<[u8; 32]> {
        if let Some(seed) = read(self, |rows| rows.server_audit_seed())? {
            return Ok(seed);
        }
        let fresh = fresh_secret()?;
        write(self, |tx| tx.ensure_server_audit_seed(&fresh))
    }

    fn append_server_events(&self, events: &[ServerEventRecord]) -> Result<()> {
        write(self, |tx| {
            let next = tx.last_server_event()?.map_or(0, |e| e.seq) + 1;
            for (expected, event) in (next..).zip(events) {
                if event.seq != expected {
                    return Err(StorageError::Conflict(format!(
                        "server event {} does not continue the chain at {expected}",
                        event.seq
                    )));
                }
                tx.insert_server_event(event)?;
            }
            Ok(())
        })
    }

    fn server_events(&self, after: u64, limit: usize) -> Result<Vec<ServerEventRecord>> {
        let limit = u64::try_from(limit).unwrap_or(u64::MAX);
        read(self, |rows| rows.server_events(after, limit))
    }

    fn last_server_event(&self) -> Result<Option<ServerEventRecord>> {
        read(self, |rows| rows.last_server_event())
    }
}

fn fresh_secret() -> Result<[u8; 32]> {
    let mut fresh = [0u8; 32];
    getrandom::fill(&mut fresh)
        .map_err(|e| StorageError::Backend(format!("no randomness for a secret: {e}")))?;
    Ok(fresh)
}

/// The device `id` as it stands in this transaction, if it is active.
fn require_active(rows: &dyn ReadRows, id: DeviceId) -> Result<DeviceRecord> {
    match rows.device(id)? {
        None => Err(StorageError::NotFound),
        Some(device) if device.state == DeviceState::Active => Ok(device),
        Some(_) => Err(StorageError::DeviceNotActive),
    }
}

/// One envelope a device sealed, inside the caller's transaction.
fn put_sealed_envelope(tx: &dyn WriteRows, sealer: DeviceId, envelope: &Envelope) -> Result<EnvelopeOutcome> {
    let stored = if envelope.recipient.0 == eenplan_protocol::api::ESCROW_RECIPIENT {
        tx.insert_escrow_envelope(envelope)?
    } else {
        match tx.device_state(envelope.recipient)? {
            None | Some(DeviceState::Revoked) => return Ok(EnvelopeOutcome::NoRecipient),
            Some(DeviceState::Pending | DeviceState::Active) => {}
        }
        if tx.sealer_refused(envelope.recipient, envelope.document, envelope.epoch, sealer)? {
            return Ok(EnvelopeOutcome::SealerRefused);
        }
        tx.insert_envelope(envelope, Some(sealer))?
    };
    Ok(if stored { EnvelopeOutcome::Stored } else { EnvelopeOutcome::Exists })
}

/// Appends a verified membership entry and what it changes (see
/// [`Storage::append_membership`]); the caller's transaction.
fn append_membership_in(tx: &dyn WriteRows, update: &MembershipUpdate) -> Result<u64> {
    if let Some(device) = update.by_device {
        require_active(tx, device)?;
    }
    let held = tx.roster(&update.plan)?.map(|(seq, _)| seq);
    if held.and_then(|seq| seq.checked_add(1)) != Some(update.seq) {
        return Err(StorageError::Conflict(format!(
            "the chain is at entry {}, not {}",
            held.unwrap_or(0),
            update.seq.saturating_sub(1)
        )));
    }
    let position = tx.advance_head(1)?;
    tx.insert_membership(&update.plan, update.seq, &update.signed, position)?;
    tx.set_roster(&update.plan, &update.roster, &update.level)?;
    if let Some(closed_at) = update.closed_at {
        tx.set_closed_at(&update.plan, closed_at)?;
    }
    for (user, role) in &update.add {
        if !tx.user_exists(*user)? {
            return Err(StorageError::NotFound);
        }
        if tx.participant_role(&update.plan, *user)?.is_none() {
            let granted = tx.advance_head(1)?;
            tx.insert_participant(&update.plan, *user, role, granted)?;
        }
        tx.forget_leaver(&update.plan, *user)?;
    }
    for user in &update.remove {
        tx.delete_participant(&update.plan, *user)?;
        tx.record_leaver(&update.plan, *user, update.seq)?;
    }
    if !update.regrant.is_empty() {
        let granted = tx.advance_head(1)?;
        for user in &update.regrant {
            tx.set_granted_at(&update.plan, *user, granted)?;
        }
    }
    for document in &update.rotate {
        tx.queue_rotation(*document, update.now)?;
    }
    tx.pending_rotations()
}

/// The writes and deletions of a member's erasure ([`MemberErasure`]), after its entry.
fn erase_older_epochs(tx: &dyn WriteRows, erasure: &MemberErasure, now: i64) -> Result<MemberErased> {
    let document = erasure.document;
    let current = tx.current_epoch(document)?;
    if current.checked_add(1) != Some(erasure.epoch) {
        return Err(StorageError::InvalidState(format!(
            "the document is at epoch {current}; an erasure makes epoch {}",
            u64::from(current) + 1
        )));
    }
    if tx.document_has_bundle_after(document, erasure.covers)? {
        return Err(StorageError::Conflict("a bundle of the document came after the erasure's base".into()));
    }
    let erased = tx.delete_document_epochs_before(document, erasure.epoch)?;
    if !tx.insert_commitment(&erasure.commitment)? {
        return Err(StorageError::InvalidState("the epoch has a commitment already".into()));
    }
    put_envelopes_in(tx, &erasure.envelopes)?;
    tx.settle_rotations(document, erasure.epoch)?;
    let seq = tx.advance_head(1)?;
    let base = NewBundle { received_at: now, ..erasure.base.clone() };
    if !tx.insert_bundle(seq, &base, Some(erasure.covers))? {
        return Err(StorageError::Conflict("the base's bundle id is taken".into()));
    }
    Ok(erased)
}

/// An administrator's envelopes for a rotation, inside the caller's transaction: escrow ones
/// apart (the first per document and epoch stays), device ones at a new log position (the
/// first per recipient, document and epoch stays). An unknown or revoked recipient fails the
/// whole rotation.
fn put_envelopes_in(tx: &dyn WriteRows, envelopes: &[Envelope]) -> Result<()> {
    for envelope in envelopes {
        if envelope.recipient.0 == eenplan_protocol::api::ESCROW_RECIPIENT {
            tx.insert_escrow_envelope(envelope)?;
            continue;
        }
        match tx.device_state(envelope.recipient)? {
            None => return Err(StorageError::NotFound),
            Some(DeviceState::Revoked) => {
                return Err(StorageError::InvalidState("the recipient is revoked".into()));
            }
            Some(DeviceState::Pending | DeviceState::Active) => {
                tx.insert_envelope(envelope, None)?;
            }
        }
    }
    Ok(())
}
