//! [`ReadRows`] and [`WriteRows`] over one PostgreSQL transaction: each method is one
//! function of [`super::rows`] on the transaction's connection.

use eenplan_protocol::DocumentId;

use super::rows;
use super::statements::Connection;
use crate::storage::backend::{
    AccessRead, AdmissionFacts, FactsQuery, ReadRows, SessionRead, StampRead, SyncFacts, WriteRows,
};
use crate::storage::domain::SessionAsk;
use crate::storage::pull::{LogView, ResumePoint};
use crate::storage::{
    AdminRecord, AuditKeyRecord, CommitmentRecord, DeviceId, DeviceRecord, DeviceState, DocStats, Envelope,
    Erasure, HeldTail, MemberErased, NetworkRecord, NewAuditUpload, NewBundle, NewDevice, Org, OrgId,
    Participant, PlanId, PolicyRecord, Reader, Result, ServerEventRecord, StoredAuditUpload, StoredName,
    TailStats, User, UserId,
};

/// The rows of one transaction, read-only or read-write (PostgreSQL refuses a write in a
/// `READ ONLY` transaction itself).
pub(super) struct PgRows<'c>(Connection<'c>);

impl<'c> PgRows<'c> {
    pub(super) fn new(conn: Connection<'c>) -> PgRows<'c> {
        PgRows(conn)
    }

    pub(super) fn into_inner(self) -> Connection<'c> {
        self.0
    }

    /// Takes the log head's row lock: the first statement of every write transaction.
    pub(super) fn lock_head(&self) -> Result<()> {
        rows::lock_head(&self.0)
    }

    fn conn(&self) -> &Connection<'c> {
        &self.0
    }

    fn tx(&self) -> &Connection<'c> {
        &self.0
    }
}

impl ReadRows for PgRows<'_> {
    fn log(&self) -> &dyn LogView {
        &self.0
    }

    fn network(&self) -> Result<Option<NetworkRecord>> {
        rows::network(self.conn())
    }

    fn admin(&self, public: &[u8; 32]) -> Result<Option<AdminRecord>> {
        rows::admin(self.conn(), public)
    }

    fn server_secret(&self) -> Result<Option<[u8; 32]>> {
        rows::server_secret(self.conn())
    }

    fn server_audit_seed(&self) -> Result<Option<[u8; 32]>> {
        rows::server_audit_seed(self.conn())
    }

    fn orgs(&self) -> Result<Vec<Org>> {
        rows::orgs(self.conn())
    }

    fn org_by_name(&self, name: &str) -> Result<Option<Org>> {
        rows::org_by_name(self.conn(), name)
    }

    fn org(&self, org: OrgId) -> Result<Option<Org>> {
        rows::org(self.conn(), org)
    }

    fn users(&self) -> Result<Vec<User>> {
        rows::users(self.conn())
    }

    fn user(&self, id: UserId) -> Result<Option<User>> {
        rows::user(self.conn(), id)
    }

    fn user_with_organisation(&self, id: UserId) -> Result<Option<(User, String)>> {
        rows::user_with_organisation(self.conn(), id)
    }

    fn users_by_name(&self, name: &str) -> Result<Vec<User>> {
        rows::users_by_name(self.conn(), name)
    }

    fn unused_enrolment(&self, code_id: &[u8; 32]) -> Result<Option<(UserId, i64)>> {
        rows::unused_enrolment(self.conn(), code_id)
    }

    fn devices(&self) -> Result<Vec<DeviceRecord>> {
        rows::devices(self.conn())
    }

    fn devices_in_state(&self, state: DeviceState) -> Result<Vec<DeviceRecord>> {
        rows::devices_in_state(self.conn(), state)
    }

    fn devices_of_user(&self, user: UserId) -> Result<Vec<DeviceRecord>> {
        rows::devices_of_user(self.conn(), user)
    }

    fn device(&self, id: DeviceId) -> Result<Option<DeviceRecord>> {
        rows::device(self.conn(), id)
    }

    fn active_devices_of_user(&self, user: UserId) -> Result<Vec<DeviceRecord>> {
        rows::active_devices_of_user(self.conn(), user)
    }

    fn device_state(&self, id: DeviceId) -> Result<Option<DeviceState>> {
        rows::device_state(self.conn(), id)
    }

    fn older_certificates(&self, id: DeviceId) -> Result<Vec<Vec<u8>>> {
        rows::older_certificates(self.conn(), id)
    }

    fn wipe_order(&self, id: DeviceId) -> Result<Option<Vec<u8>>> {
        rows::wipe_order(self.conn(), id)
    }

    fn user_exists(&self, user: UserId) -> Result<bool> {
        rows::user_exists(self.conn(), user)
    }

    fn key_share_version(&self, device: DeviceId) -> Result<Option<(UserId, i64)>> {
        rows::key_share_version(self.conn(), device)
    }

    fn user_key_share_version(&self, user: UserId) -> Result<Option<i64>> {
        rows::user_key_share_version(self.conn(), user)
    }

    fn plan_creator(&self, plan: &PlanId) -> Result<Option<UserId>> {
        rows::plan_creator(self.conn(), plan)
    }

    fn closed_plans(&self) -> Result<Vec<(PlanId, i64)>> {
        rows::closed_plans(self.conn())
    }

    fn closed_at(&self, plan: &PlanId) -> Result<Option<i64>> {
        rows::closed_at(self.conn(), plan)
    }

    fn erased_at(&self, plan: &PlanId) -> Result<Option<i64>> {
        rows::erased_at(self.conn(), plan)
    }

    fn roster(&self, plan: &PlanId) -> Result<Option<(u32, Vec<u8>)>> {
        rows::roster(self.conn(), plan)
    }

    fn membership_entries(&self, plan: &PlanId, after: u32) -> Result<Vec<Vec<u8>>> {
        rows::membership_entries(self.conn(), plan, after)
    }

    fn membership_after(&self, user: UserId, after: u64) -> Result<Vec<crate::storage::PositionedEntry>> {
        rows::membership_after(self.conn(), user, after)
    }

    fn chartered_rotations_for(&self, user: UserId) -> Result<Vec<DocumentId>> {
        rows::chartered_rotations_for(self.conn(), user)
    }

    fn participant_role(&self, plan: &PlanId, user: UserId) -> Result<Option<String>> {
        rows::participant_role(self.conn(), plan, user)
    }

    fn participants(&self, plan: &PlanId) -> Result<Vec<Participant>> {
        rows::participants(self.conn(), plan)
    }

    fn plan_levels_of_user(&self, user: UserId) -> Result<Vec<(PlanId, String)>> {
        rows::plan_levels_of_user(self.conn(), user)
    }

    fn plans_of_user(&self, user: UserId) -> Result<Vec<PlanId>> {
        rows::plans_of_user(self.conn(), user)
    }

    fn readable(&self, user: UserId) -> Result<Vec<(DocumentId, u64)>> {
        rows::readable(self.conn(), user)
    }

    fn readable_in_plan(&self, plan: &PlanId, user: UserId) -> Result<Vec<DocumentId>> {
        rows::readable_in_plan(self.conn(), plan, user)
    }

    fn head(&self) -> Result<u64> {
        rows::head(self.conn())
    }

    fn seq_of_bundle(&self, bundle_id: &[u8; 16]) -> Result<Option<u64>> {
        rows::seq_of_bundle(self.conn(), bundle_id)
    }

    fn document_stats(&self, document: DocumentId) -> Result<DocStats> {
        rows::document_stats(self.conn(), document)
    }

    fn held_tails(&self, device: DeviceId) -> Result<Vec<HeldTail>> {
        rows::held_tails(self.conn(), device)
    }

    fn held_documents(&self, device: DeviceId) -> Result<Vec<(DocumentId, bool)>> {
        rows::held_documents(self.conn(), device)
    }

    fn document_tails(&self, documents: &[DocumentId]) -> Result<Vec<TailStats>> {
        rows::document_tails(self.conn(), documents)
    }

    fn snapshot_requests_of(&self, device: DeviceId, since: i64) -> Result<Vec<(DocumentId, u64)>> {
        rows::snapshot_requests_of(self.conn(), device, since)
    }

    fn snapshot_requested_elsewhere(
        &self,
        document: DocumentId,
        device: DeviceId,
        since: i64,
    ) -> Result<bool> {
        rows::snapshot_requested_elsewhere(self.conn(), document, device, since)
    }

    fn envelope_sealer(
        &self,
        recipient: DeviceId,
        document: DocumentId,
        epoch: u32,
    ) -> Result<Option<Option<DeviceId>>> {
        rows::envelope_sealer(self.conn(), recipient, document, epoch)
    }

    fn sealer_refused(
        &self,
        recipient: DeviceId,
        document: DocumentId,
        epoch: u32,
        sealer: DeviceId,
    ) -> Result<bool> {
        rows::sealer_refused(self.conn(), recipient, document, epoch, sealer)
    }

    fn escrow_envelopes(&self, plan: &[u8; 16]) -> Result<Vec<Envelope>> {
        rows::escrow_envelopes(self.conn(), plan)
    }

    fn envelopes_for(&self, device: DeviceId, since: u64) -> Result<Vec<Envelope>> {
        rows::envelopes_for(self.conn(), device, since)
    }

    fn devices_missing_envelope(&self, document: DocumentId, epoch: u32) -> Result<Vec<DeviceId>> {
        rows::devices_missing_envelope(self.conn(), document, epoch)
    }

    fn devices_missing_held_keys(&self, device: DeviceId) -> Result<Vec<(DocumentId, u32, DeviceId)>> {
        rows::devices_missing_held_keys(self.conn(), device)
    }

    fn readers(&self, document: DocumentId) -> Result<Vec<Reader>> {
        rows::readers(self.conn(), document)
    }

    fn revocation_list(&self, version: Option<u32>) -> Result<Option<(u32, Vec<u8>)>> {
        rows::revocation_list(self.conn(), version)
    }

    fn on_revocation_list(&self, device: DeviceId) -> Result<bool> {
        rows::on_revocation_list(self.conn(), device)
    }

    fn policy(&self) -> Result<Option<PolicyRecord>> {
        rows::policy(self.conn())
    }

    fn policy_version(&self, version: u32) -> Result<Option<Vec<u8>>> {
        rows::policy_version(self.conn(), version)
    }

    fn participants_with_role(&self, role: &str) -> Result<Vec<(PlanId, UserId)>> {
        rows::participants_with_role(self.conn(), role)
    }

    fn commitment(&self, document: DocumentId, epoch: u32) -> Result<Option<CommitmentRecord>> {
        rows::commitment(self.conn(), document, epoch)
    }

    fn policy_version_in_force(&self) -> Result<Option<u32>> {
        rows::policy_version_in_force(self.conn())
    }

    fn current_epoch(&self, document: DocumentId) -> Result<u32> {
        rows::current_epoch(self.conn(), document)
    }

    fn unminted_documents(&self, user: UserId) -> Result<Vec<DocumentId>> {
        rows::unminted_documents(self.conn(), user)
    }

    fn held_keys(&self, device: DeviceId) -> Result<Vec<(DocumentId, u32)>> {
        rows::held_keys(self.conn(), device)
    }

    fn rotation_pending_before(&self, document: DocumentId, epoch: u32) -> Result<bool> {
        rows::rotation_pending_before(self.conn(), document, epoch)
    }

    fn pending_rotations(&self) -> Result<u64> {
        rows::pending_rotations(self.conn())
    }

    fn oldest_rotations(&self, limit: u64) -> Result<Vec<(DocumentId, i64)>> {
        rows::oldest_rotations(self.conn(), limit)
    }

    fn audit_through(&self, device: DeviceId) -> Result<u64> {
        rows::audit_through(self.conn(), device)
    }

    fn audit_uploads(&self, org: OrgId, after: u64, limit: u64) -> Result<Vec<StoredAuditUpload>> {
        rows::audit_uploads(self.conn(), org, after, limit)
    }

    fn audit_keys(&self, org: OrgId) -> Result<Vec<AuditKeyRecord>> {
        rows::audit_keys(self.conn(), org)
    }

    fn last_server_event(&self) -> Result<Option<ServerEventRecord>> {
        rows::last_server_event(self.conn())
    }

    fn server_events(&self, after: u64, limit: u64) -> Result<Vec<ServerEventRecord>> {
        rows::server_events(self.conn(), after, limit)
    }

    fn document_has_bundle_after(&self, document: DocumentId, after: u64) -> Result<bool> {
        rows::document_has_bundle_after(self.conn(), document, after)
    }

    fn sync_facts(&self, query: &FactsQuery) -> Result<SyncFacts> {
        rows::sync_facts(self.conn(), query)
    }

    fn sync_facts_of_group(&self, queries: &[FactsQuery]) -> Result<Vec<SyncFacts>> {
        rows::sync_facts_of_group(self.conn(), queries)
    }

    fn access_stamp(&self, user: UserId, documents: &[DocumentId]) -> Result<Option<StampRead>> {
        rows::access_stamp(self.conn(), user, documents)
    }

    fn sync_session(&self, device: DeviceId, documents: &[DocumentId]) -> Result<Option<SessionRead>> {
        rows::sync_session(self.conn(), device, documents)
    }

    fn sync_sessions(&self, asks: &[SessionAsk]) -> Result<Vec<Option<SessionRead>>> {
        rows::sync_sessions(self.conn(), asks)
    }

    fn user_access(&self, user: UserId, documents: &[DocumentId]) -> Result<Option<AccessRead>> {
        rows::user_access(self.conn(), user, documents)
    }

    fn admission_facts(&self, authors: &[DeviceId], documents: &[DocumentId]) -> Result<AdmissionFacts> {
        rows::admission_facts(self.conn(), authors, documents)
    }
}

impl WriteRows for PgRows<'_> {
    fn insert_network(&self, network: &NetworkRecord) -> Result<bool> {
        rows::insert_network(self.tx(), network)
    }

    fn insert_admin(&self, admin: &AdminRecord) -> Result<bool> {
        rows::insert_admin(self.tx(), admin)
    }

    fn ensure_server_secret(&self, fresh: &[u8; 32]) -> Result<[u8; 32]> {
        rows::ensure_server_secret(self.tx(), fresh)
    }

    fn forget_stale_admin_signatures(&self, now: i64) -> Result<()> {
        rows::forget_stale_admin_signatures(self.tx(), now)
    }

    fn insert_admin_signature(&self, signature: &[u8; 64], stale_after: i64) -> Result<bool> {
        rows::insert_admin_signature(self.tx(), signature, stale_after)
    }

    fn ensure_server_audit_seed(&self, fresh: &[u8; 32]) -> Result<[u8; 32]> {
        rows::ensure_server_audit_seed(self.tx(), fresh)
    }

    fn insert_org(&self, name: &str, lease_hours: u32) -> Result<Option<OrgId>> {
        rows::insert_org(self.tx(), name, lease_hours)
    }

    fn insert_user(&self, org: OrgId, name: &str, role: &str) -> Result<Option<UserId>> {
        rows::insert_user(self.tx(), org, name, role)
    }

    fn insert_enrolment(&self, code_id: &[u8; 32], user: UserId, expires_at: i64) -> Result<bool> {
        rows::insert_enrolment(self.tx(), code_id, user, expires_at)
    }

    fn mark_enrolment_used(&self, code_id: &[u8; 32], device: DeviceId, now: i64) -> Result<()> {
        rows::mark_enrolment_used(self.tx(), code_id, device, now)
    }

    fn insert_device(&self, device: &NewDevice, user: UserId, now: i64) -> Result<bool> {
        rows::insert_device(self.tx(), device, user, now)
    }

    fn activate_device(&self, id: DeviceId, certificate: &[u8]) -> Result<()> {
        rows::activate_device(self.tx(), id, certificate)
    }

    fn recertify_device(
        &self,
        id: DeviceId,
        old: (i64, &[u8]),
        certificate: &[u8],
        certified_at: i64,
    ) -> Result<()> {
        rows::recertify_device(self.tx(), id, old, certificate, certified_at)
    }

    fn set_user_role(&self, user: UserId, role: &str) -> Result<()> {
        rows::set_user_role(self.tx(), user, role)
    }

    fn revoke_device(&self, id: DeviceId, reason: &str, now: i64) -> Result<()> {
        rows::revoke_device(self.tx(), id, reason, now)
    }

    fn insert_wipe_order(&self, id: DeviceId, signed: &[u8], now: i64) -> Result<()> {
        rows::insert_wipe_order(self.tx(), id, signed, now)
    }

    fn insert_wipe_report(&self, id: DeviceId, signed: &[u8], now: i64) -> Result<()> {
        rows::insert_wipe_report(self.tx(), id, signed, now)
    }

    fn record_session(&self, id: DeviceId, wipe_nonce_hash: Option<[u8; 32]>, now: i64) -> Result<bool> {
        rows::record_session(self.tx(), id, wipe_nonce_hash, now)
    }

    fn set_device_name(&self, id: DeviceId, name: &StoredName) -> Result<bool> {
        rows::set_device_name(self.tx(), id, name)
    }

    fn set_last_seen(&self, id: DeviceId, now: i64) -> Result<()> {
        rows::set_last_seen(self.tx(), id, now)
    }

    fn insert_plan(&self, plan: &PlanId, creator: UserId, created_by: DeviceId, now: i64) -> Result<()> {
        rows::insert_plan(self.tx(), plan, creator, created_by, now)
    }

    fn insert_membership(&self, plan: &PlanId, seq: u32, signed: &[u8], position: u64) -> Result<()> {
        rows::insert_membership(self.tx(), plan, seq, signed, position)
    }

    fn set_roster(&self, plan: &PlanId, roster: &[u8], level: &str) -> Result<()> {
        rows::set_roster(self.tx(), plan, roster, level)
    }

    fn set_closed_at(&self, plan: &PlanId, closed_at: i64) -> Result<()> {
        rows::set_closed_at(self.tx(), plan, closed_at)
    }

    fn erase_plan(&self, plan: &PlanId, now: i64) -> Result<Erasure> {
        rows::erase_plan(self.tx(), plan, now)
    }

    fn advance_head(&self, n: u64) -> Result<u64> {
        rows::advance_head(self.tx(), n)
    }

    fn insert_participant(
        &self,
        plan: &PlanId,
        user: UserId,
        plan_role: &str,
        granted_at_seq: u64,
    ) -> Result<()> {
        rows::insert_participant(self.tx(), plan, user, plan_role, granted_at_seq)
    }

    fn set_participant_role(&self, plan: &PlanId, user: UserId, plan_role: &str) -> Result<()> {
        rows::set_participant_role(self.tx(), plan, user, plan_role)
    }

    fn record_leaver(&self, plan: &PlanId, user: UserId, seq: u32) -> Result<()> {
        rows::record_leaver(self.tx(), plan, user, seq)
    }

    fn forget_leaver(&self, plan: &PlanId, user: UserId) -> Result<()> {
        rows::forget_leaver(self.tx(), plan, user)
    }

    fn delete_participant(&self, plan: &PlanId, user: UserId) -> Result<()> {
        rows::delete_participant(self.tx(), plan, user)
    }

    fn append_bundles(&self, first: u64, bundles: &[(&NewBundle, Option<u64>)]) -> Result<Vec<Option<u64>>> {
        rows::append_bundles(self.tx(), first, bundles)
    }

    fn set_head(&self, head: u64) -> Result<()> {
        rows::set_head(self.tx(), head)
    }

    fn insert_resume_point(
        &self,
        device: DeviceId,
        point: &ResumePoint,
        presented: Option<u64>,
    ) -> Result<u64> {
        rows::insert_resume_point(self.tx(), device, point, presented)
    }

    fn expire_snapshot_requests(&self, before: i64) -> Result<()> {
        rows::expire_snapshot_requests(self.tx(), before)
    }

    fn upsert_snapshot_request(
        &self,
        device: DeviceId,
        document: DocumentId,
        covers: u64,
        now: i64,
    ) -> Result<()> {
        rows::upsert_snapshot_request(self.tx(), device, document, covers, now)
    }

    fn take_snapshot_request(
        &self,
        device: DeviceId,
        document: DocumentId,
        covers: u64,
        since: i64,
    ) -> Result<bool> {
        rows::take_snapshot_request(self.tx(), device, document, covers, since)
    }

    fn insert_envelope(&self, envelope: &Envelope, sealer: Option<DeviceId>) -> Result<bool> {
        rows::insert_envelope(self.tx(), envelope, sealer)
    }

    fn delete_envelope(&self, recipient: DeviceId, document: DocumentId, epoch: u32) -> Result<()> {
        rows::delete_envelope(self.tx(), recipient, document, epoch)
    }

    fn insert_refused_sealer(
        &self,
        recipient: DeviceId,
        document: DocumentId,
        epoch: u32,
        sealer: DeviceId,
    ) -> Result<()> {
        rows::insert_refused_sealer(self.tx(), recipient, document, epoch, sealer)
    }

    fn insert_escrow_envelope(&self, envelope: &Envelope) -> Result<bool> {
        rows::insert_escrow_envelope(self.tx(), envelope)
    }

    fn insert_revocation_list(&self, version: u32, signed: &[u8], now: i64) -> Result<()> {
        rows::insert_revocation_list(self.tx(), version, signed, now)
    }

    fn insert_revocation_entry(&self, device: DeviceId, version: u32) -> Result<()> {
        rows::insert_revocation_entry(self.tx(), device, version)
    }

    fn replace_policy(&self, record: &PolicyRecord, now: i64) -> Result<()> {
        rows::replace_policy(self.tx(), record, now)
    }

    fn set_granted_at(&self, plan: &PlanId, user: UserId, granted: u64) -> Result<()> {
        rows::set_granted_at(self.tx(), plan, user, granted)
    }

    fn delete_user_envelopes(&self, document: DocumentId, user: UserId) -> Result<()> {
        rows::delete_user_envelopes(self.tx(), document, user)
    }

    fn insert_commitment(&self, commitment: &CommitmentRecord) -> Result<bool> {
        rows::insert_commitment(self.tx(), commitment)
    }

    fn queue_rotation(&self, document: DocumentId, now: i64) -> Result<()> {
        rows::queue_rotation(self.tx(), document, now)
    }

    fn settle_rotations(&self, document: DocumentId, epoch: u32) -> Result<()> {
        rows::settle_rotations(self.tx(), document, epoch)
    }

    fn insert_audit_upload(&self, upload: &NewAuditUpload) -> Result<bool> {
        rows::insert_audit_upload(self.tx(), upload)
    }

    fn insert_audit_key(&self, key: &AuditKeyRecord) -> Result<()> {
        rows::insert_audit_key(self.tx(), key)
    }

    fn insert_server_events(&self, events: &[ServerEventRecord]) -> Result<()> {
        rows::insert_server_events(self.tx(), events)
    }

    fn delete_document_epochs_before(&self, document: DocumentId, epoch: u32) -> Result<MemberErased> {
        rows::delete_document_epochs_before(self.tx(), document, epoch)
    }
}
