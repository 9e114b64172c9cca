//! The server's rules, written once over the row-level [`Backend`] traits: every
//! [`Storage`] operation of every backend is one transaction run here. A backend supplies
//! only rows ([`super::backend`]); what a revocation, a role or policy change, a rotation, a
//! membership entry or a push sets off is decided in this module and its children.

use eenplan_protocol::DocumentId;

mod access;
mod answer;
mod audit;
mod devices;
mod key_shares;
mod keys;
mod log;
mod plans;
mod session_reads;
mod tally;

pub(crate) use access::{AccessCache, AccessCore, AccessStamp};
pub use answer::AnswerStart;
pub(crate) use key_shares::KeyShareCache;
pub use session_reads::SessionAsk;
pub(crate) use session_reads::SessionReads;
pub(crate) use tally::AnswerGuesses;

use super::backend::{
    Backend, FactsQuery, FirstRead, ReadRows, SyncFacts, read, read_statement, read_statement_first, write,
};
use super::{
    AdminRecord, AnswerQuery, AnswerReads, AuditKeyRecord, CharteredPlan, CommitmentOutcome,
    CommitmentRecord, CompletedRotation, DeviceId, DeviceRecord, DeviceState, DocStats, Envelope,
    EnvelopeOutcome, EnvelopeRefusal, Erasure, HeldTail, MemberErased, MembershipPage, MembershipUpdate,
    NetworkRecord, NewAuditUpload, NewBundle, NewDevice, Org, OrgId, Participant, PlanId, PolicyRecord,
    PullBatch, PullRequest, PushOutcome, Reader, RememberedReads, Result, Revocation, RevocationListRecord,
    RotationTask, SNAPSHOT_REQUEST_TTL_MS, ServerEventRecord, SessionRecorded, SessionStamp, Storage,
    StorageError, StoredAuditUpload, StoredName, SyncSession, User, UserAccess, UserId, WipeGuard, pull,
};

/// `DocumentId`'s fields are public, so one can be built with a compartment that does not
/// exist; such a row could never be read back as a `DocumentId`.
fn known_compartments(mut documents: impl Iterator<Item = DocumentId>) -> Result<()> {
    match documents.find(|d| d.compartment >= DocumentId::COMPARTMENTS) {
        Some(bad) => Err(StorageError::InvalidState(format!("compartment {} is unknown", bad.compartment))),
        None => Ok(()),
    }
}

/// A page that stopped inside a history block stores where (the only write of a pull) and
/// hands out a resume token as its `head`.
fn keep_resume_point<B: Backend>(
    backend: &B,
    device: DeviceId,
    resume: Option<pull::ResumePoint>,
    presented_token: Option<u64>,
    batch: &mut PullBatch,
) -> Result<()> {
    if let Some(point) = resume {
        let token = write(backend, |tx| tx.insert_resume_point(device, &point, presented_token))?;
        batch.head = eenplan_protocol::sync::RESUME_TOKEN_BIT | token;
    }
    Ok(())
}

/// The most answers whose first statements one statement reads
/// ([`Storage::read_answer_facts`]): a group of 512 requests is eight statements, so that no
/// statement's parameters and rows grow with the batch. `load_bench`'s push phase groups
/// about thirteen (341 statements for 4,550 answers, 2026-12-07).
const MAX_ANSWERS_PER_FACTS_READ: usize = 64;

/// The caches a sync answer of `backend` reads through.
fn answer_caches<B: Backend>(backend: &B) -> answer::Caches<'_> {
    answer::Caches {
        key_shares: backend.key_shares(),
        accesses: backend.accesses(),
        guesses: backend.answer_guesses(),
    }
}

/// An answer built from `facts`, its first statement that a group commit read with its
/// group's, with no statement of its own when the rest is remembered
/// ([`FirstRead::OneStatement`], as a single statement's answer is); when it needs one,
/// read again in a transaction, facts and all ([`FirstRead::Again`]).
fn answer_after_group_facts<B: Backend>(
    backend: &B,
    caches: answer::Caches<'_>,
    query: &AnswerQuery,
    facts: SyncFacts,
    run: impl FnMut(&dyn ReadRows) -> Result<answer::Read>,
) -> Result<(answer::Read, FirstRead)> {
    let mut facts = Some(facts);
    let mut built = None;
    let sufficed = backend.read_without_statements(&mut |rows| {
        let facts =
            facts.take().ok_or_else(|| StorageError::Backend("an answer's facts were used twice".into()))?;
        built = Some(answer::read_after_facts(rows, caches, query, facts)?);
        Ok(())
    })?;
    match built {
        Some(answer) if sufficed => Ok((answer, FirstRead::OneStatement)),
        _ => Ok((read(backend, run)?, FirstRead::Again)),
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

    fn remember_admin_signature(&self, signature: &[u8; 64], stale_after: i64, now: i64) -> Result<bool> {
        write(self, |tx| {
            // Bounded: only signatures whose time is still acceptable stay, a skew window's worth.
            tx.forget_stale_admin_signatures(now)?;
            tx.insert_admin_signature(signature, stale_after)
        })
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

    fn org(&self, org: OrgId) -> Result<Option<Org>> {
        read(self, |rows| rows.org(org))
    }

    fn org_by_name(&self, name: &str) -> Result<Option<Org>> {
        read(self, |rows| rows.org_by_name(name))
    }

    fn add_user(&self, org: OrgId, name: &str, role: &str) -> Result<UserId> {
        write(self, |tx| {
            if tx.org(org)?.is_none() {
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

    fn user_with_organisation(&self, id: UserId) -> Result<Option<(User, String)>> {
        // Who a device is for the server's log (erasure, wipe reports): one statement where a
        // backend overrides the two reads (PostgreSQL). A sync reads it with its session.
        read_statement(self, |rows| rows.user_with_organisation(id))
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
        write(self, |tx| devices::claim_enrolment(tx, code_id, device, now))
    }

    fn devices(&self) -> Result<Vec<DeviceRecord>> {
        read(self, |rows| rows.devices())
    }

    fn devices_of_user(&self, user: UserId) -> Result<Vec<DeviceRecord>> {
        read(self, |rows| rows.devices_of_user(user))
    }

    fn device(&self, id: DeviceId) -> Result<Option<DeviceRecord>> {
        // Every request's session reads it.
        read_statement(self, |rows| rows.device(id))
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
        write(self, |tx| devices::revoke_device(tx, id, revocation, now))
    }

    fn change_role(
        &self,
        user: UserId,
        role: &str,
        certificates: &[(DeviceId, Vec<u8>)],
        now: i64,
    ) -> Result<u64> {
        write(self, |tx| devices::change_role(tx, user, role, certificates, now))
    }

    fn older_certificates(&self, id: DeviceId) -> Result<Vec<Vec<u8>>> {
        read(self, |rows| rows.older_certificates(id))
    }

    fn wipe_order(&self, id: DeviceId) -> Result<Option<Vec<u8>>> {
        read(self, |rows| rows.wipe_order(id))
    }

    fn record_wipe(&self, id: DeviceId, report: &[u8], seen: &WipeGuard, now: i64) -> Result<bool> {
        write(self, |tx| devices::record_wipe(tx, id, report, seen, now))
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
        write(self, |tx| plans::register_plan(tx, plan, creator, created_by, now))
    }

    fn register_chartered_plan(&self, plan: &CharteredPlan) -> Result<bool> {
        write(self, |tx| plans::register_chartered_plan(tx, plan))
    }

    fn roster(&self, plan: PlanId) -> Result<Option<(u32, Vec<u8>)>> {
        read(self, |rows| rows.roster(&plan))
    }

    fn append_membership(&self, update: &MembershipUpdate) -> Result<u64> {
        known_compartments(update.rotate.iter().copied())?;
        write(self, |tx| plans::append_membership_in(tx, update))
    }

    fn append_erasure(&self, update: &MembershipUpdate) -> Result<MemberErased> {
        let erasure =
            update.erasure.as_ref().ok_or_else(|| StorageError::InvalidState("no erasure".into()))?;
        known_compartments(
            std::iter::once(erasure.document).chain(erasure.envelopes.iter().map(|e| e.document)),
        )?;
        let erased = write(self, |tx| {
            // The log as it stands before the entry takes its positions.
            let head = tx.head()?;
            plans::append_membership_in(tx, update)?;
            plans::erase_older_epochs(tx, erasure, head, update.now)
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
        let erasure = write(self, |tx| plans::erase_plan(tx, plan, now))?;
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
        read(self, |rows| answer::membership_page(rows.head()?, rows, user, after, limit))
    }

    fn rotations_for(&self, user: UserId) -> Result<Vec<(DocumentId, u32)>> {
        read(self, |rows| answer::rotations(rows, user))
    }

    fn add_participant(&self, plan: PlanId, user: UserId, plan_role: &str) -> Result<()> {
        write(self, |tx| plans::add_participant(tx, plan, user, plan_role))
    }

    fn remove_participant(&self, plan: PlanId, user: UserId, now: i64) -> Result<u64> {
        write(self, |tx| plans::remove_participant(tx, plan, user, now))
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

    fn user_access(&self, user: UserId, documents: &[DocumentId]) -> Result<Option<UserAccess>> {
        // Every sync with uploads to check reads it after the session's: one statement on
        // PostgreSQL while the process holds the user's core, two when it moved.
        access::user_access(self, user, documents)
    }

    fn sync_session(&self, device: DeviceId, documents: &[DocumentId]) -> Result<Option<SyncSession>> {
        access::sync_session(self, device, documents)
    }

    fn sync_sessions(&self, asks: &[SessionAsk]) -> Result<Vec<Option<SyncSession>>> {
        access::sync_sessions(self, asks)
    }

    fn session_access(&self, stamp: &SessionStamp) -> Result<Option<UserAccess>> {
        access::session_access(self, stamp)
    }

    fn readers(&self, document: DocumentId) -> Result<Vec<Reader>> {
        read(self, |rows| rows.readers(document))
    }

    fn policy(&self) -> Result<Option<PolicyRecord>> {
        read(self, |rows| rows.policy())
    }

    fn set_policy(&self, record: &PolicyRecord, now: i64) -> Result<u64> {
        write(self, |tx| keys::set_policy(tx, record, now))
    }

    fn policy_version(&self, version: u32) -> Result<Option<Vec<u8>>> {
        read(self, |rows| rows.policy_version(version))
    }

    fn put_revocation_list(&self, list: &RevocationListRecord, now: i64) -> Result<bool> {
        write(self, |tx| keys::put_revocation_list(tx, list, now))
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
        write(self, |tx| keys::put_commitment(tx, commitment, policy_version))
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
        known_compartments(
            std::iter::once(rotation.document).chain(rotation.envelopes.iter().map(|e| e.document)),
        )?;
        write(self, |tx| keys::complete_rotation(tx, rotation))
    }

    fn push_batch(&self, items: &[NewBundle]) -> Result<Vec<PushOutcome>> {
        known_compartments(items.iter().map(|b| b.document))?;
        if items.is_empty() {
            return Ok(Vec::new());
        }
        write(self, |tx| log::push_batch(tx, items))
    }

    fn head(&self) -> Result<u64> {
        read(self, |rows| rows.head())
    }

    fn pull_page(&self, request: &PullRequest) -> Result<PullBatch> {
        let page = read(self, |rows| pull::pull(rows.log(), request))?;
        let mut batch = page.batch;
        keep_resume_point(self, request.device, page.resume, page.presented_token, &mut batch)?;
        Ok(batch)
    }

    fn begin_answer(&self, query: &AnswerQuery) -> AnswerStart {
        AnswerStart::begin(&answer_caches(self), query, self.groups_answer_facts())
    }

    fn read_answer_facts(&self, starts: &mut [&mut AnswerStart]) -> Result<()> {
        let mut wanting: Vec<&mut AnswerStart> =
            starts.iter_mut().map(|start| &mut **start).filter(|start| start.wants_facts()).collect();
        for group in wanting.chunks_mut(MAX_ANSWERS_PER_FACTS_READ) {
            let queries: Vec<FactsQuery> = group.iter().filter_map(|start| start.facts_query()).collect();
            let facts = read_statement(self, |rows| rows.sync_facts_of_group(&queries))?;
            if facts.len() != group.len() {
                return Err(StorageError::Backend(format!(
                    "a group read {} answers' facts for {} answers",
                    facts.len(),
                    group.len()
                )));
            }
            for (start, facts) in group.iter_mut().zip(facts) {
                start.facts = Some(facts);
            }
        }
        Ok(())
    }

    fn answer_from(&self, query: &AnswerQuery, mut start: AnswerStart) -> Result<AnswerReads> {
        let caches = answer_caches(self);
        let facts = start.facts_for(query);
        let guess = start.guess;
        let run = |rows: &dyn ReadRows| answer::read(rows, caches, query, &guess.asks);
        let answer::Read { mut reads, resume, presented_token, ahead_used, remembered_used } =
            if let Some(facts) = facts {
                let (answer, first) = answer_after_group_facts(self, caches, query, facts, run)?;
                answer::count_first_read_and_wait(caches.guesses, query.pull.device, first);
                answer
            } else if guess.one_statement {
                let (answer, first) = read_statement_first(self, run)?;
                answer::count_first_read_and_wait(caches.guesses, query.pull.device, first);
                answer
            } else {
                read(self, run)?
            };
        answer::count_reads_ahead(caches.guesses, ahead_used);
        answer::count_remembered(&caches, remembered_used);
        keep_resume_point(self, query.pull.device, resume, presented_token, &mut reads.batch)?;
        Ok(reads)
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
        write(self, |tx| log::request_snapshots(tx, device, documents, covers, now))
    }

    fn snapshot_requests(&self, device: DeviceId, now: i64) -> Result<Vec<(DocumentId, u64)>> {
        read(self, |rows| rows.snapshot_requests_of(device, now.saturating_sub(SNAPSHOT_REQUEST_TTL_MS)))
    }

    fn document_stats(&self, document: DocumentId) -> Result<DocStats> {
        read(self, |rows| rows.document_stats(document))
    }

    fn held_tails(&self, device: DeviceId) -> Result<Vec<HeldTail>> {
        read(self, |rows| rows.held_tails(device))
    }

    fn remembered_reads(&self) -> RememberedReads {
        let (accesses_served, accesses_read) = self.accesses().tally().counts();
        let (missing_keys_served, missing_keys_read) = self.key_shares().tally().counts();
        let (held_keys_served, held_keys_read) = self.key_shares().held_tally().counts();
        let ahead = self.answer_guesses();
        let (mailbox_ahead_served, mailbox_ahead_read) = ahead.mailbox.counts();
        let (news_ahead_served, news_ahead_read) = ahead.news.counts();
        let (tails_ahead_served, tails_ahead_read) = ahead.tails.counts();
        let (one_statement_answers, one_statement_answers_again) = ahead.one_statement.counts();
        let sessions = self.session_reads().map(SessionReads::counts).unwrap_or_default();
        RememberedReads {
            accesses_served,
            accesses_read,
            missing_keys_served,
            missing_keys_read,
            held_keys_served,
            held_keys_read,
            mailbox_ahead_served,
            mailbox_ahead_read,
            news_ahead_served,
            news_ahead_read,
            tails_ahead_served,
            tails_ahead_read,
            one_statement_answers,
            one_statement_answers_again,
            session_group_reads: sessions.statements,
            sessions_read_in_groups: sessions.sessions,
            session_group_read_failures: sessions.failures,
        }
    }

    fn put_envelopes(&self, sealer: DeviceId, envelopes: &[Envelope]) -> Result<Vec<EnvelopeOutcome>> {
        known_compartments(envelopes.iter().map(|e| e.document))?;
        write(self, |tx| {
            devices::require_active(tx, sealer)?;
            envelopes.iter().map(|envelope| keys::put_sealed_envelope(tx, sealer, envelope)).collect()
        })
    }

    fn refuse_envelopes(&self, recipient: DeviceId, refusals: &[EnvelopeRefusal]) -> Result<u64> {
        known_compartments(refusals.iter().map(|r| r.document))?;
        write(self, |tx| keys::refuse_envelopes(tx, recipient, refusals))
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

    fn devices_missing_envelopes(
        &self,
        keys: &[(DocumentId, u32)],
    ) -> Result<Vec<(DocumentId, u32, DeviceId)>> {
        read(self, |rows| answer::missing_envelopes(rows, keys))
    }

    fn put_audit_uploads(&self, uploads: &[NewAuditUpload]) -> Result<Vec<bool>> {
        write(self, |tx| {
            let mut stored = Vec::with_capacity(uploads.len());
            for upload in uploads {
                devices::require_active(tx, upload.device)?;
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
        write(self, |tx| audit::put_audit_key(tx, key))
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
        write(self, |tx| audit::append_server_events(tx, events))
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
