//! The row-level interface every backend implements, and nothing more: reads in one read
//! transaction ([`ReadRows`]), writes in one write transaction ([`WriteRows`]), and a
//! [`Backend`] that runs a closure inside either. The rules (who may do what, what a
//! revocation or a policy change sets off, which push is admitted) are written once above
//! these traits, in [`super::domain`]; a backend only reads and writes rows, so a second
//! backend cannot get a rule wrong.
//!
//! Every method maps to one statement or a short fixed series of them. A method that reports
//! `bool` says whether a row was inserted or changed (`false`: it was there already).

use std::collections::{HashMap, HashSet};

use eenplan_protocol::DocumentId;

use super::domain::{AccessCore, AccessStamp, SessionAsk};
use super::pull::{LogView, ResumePoint};
use super::{
    AdminRecord, AuditKeyRecord, CommitmentRecord, DeviceId, DeviceRecord, DeviceState, DocStats, Envelope,
    Erasure, HeldTail, MemberErased, NetworkRecord, NewAuditUpload, NewBundle, NewDevice, Org, OrgId,
    Participant, PlanId, PolicyRecord, PositionedEntry, Reader, Result, ServerEventRecord, StoredAuditUpload,
    StoredName, TailStats, User, UserId,
};

/// A database the domain layer runs its transactions on.
///
/// A closure may run more than once if the backend retries a transaction that lost a race
/// (PostgreSQL's serialization failures); it must therefore only read and write through the
/// rows it is given, and return what it computed. An error from the closure rolls the
/// transaction back.
pub(crate) trait Backend: Send + Sync {
    /// Runs `f` in one read transaction: all its reads see the same commit.
    fn read(&self, f: &mut dyn FnMut(&dyn ReadRows) -> Result<()>) -> Result<()>;
    /// Runs `f`, which reads with one statement on this backend, as [`Backend::read`] does; a
    /// backend whose transaction costs round trips runs it without one (PostgreSQL, which
    /// refuses a second statement there).
    fn read_statement(&self, f: &mut dyn FnMut(&dyn ReadRows) -> Result<()>) -> Result<()> {
        self.read(f)
    }
    /// Runs `f`, a read that often needs one statement and sometimes more, as
    /// [`Backend::read_statement`] does where a transaction costs round trips, and when `f`
    /// asks for a second statement there, discards what it did and runs it again in a read
    /// transaction ([`FirstRead::Again`]). A backend without that cost runs it in a read
    /// transaction at once ([`FirstRead::Transaction`]).
    fn read_statement_first(&self, f: &mut dyn FnMut(&dyn ReadRows) -> Result<()>) -> Result<FirstRead> {
        self.read(f).map(|()| FirstRead::Transaction)
    }
    /// Whether the sync answers of a group commit's requests are better begun with one
    /// statement for all of them ([`ReadRows::sync_facts_of_group`]) than with one each: on
    /// a backend where a statement costs a round trip and a plan's start-up (PostgreSQL),
    /// not on one where a read is a call into the process (SQLite).
    fn groups_answer_facts(&self) -> bool {
        false
    }
    /// Where the sessions of syncs that arrive together are read in one statement
    /// ([`super::domain::SessionReads`]): on a backend where a statement costs a round trip
    /// and a plan's start-up (PostgreSQL), not on one where a read is a call into the
    /// process (SQLite).
    fn session_reads(&self) -> Option<&super::domain::SessionReads> {
        None
    }
    /// Runs `f`, a read whose first statement was read before (in a group,
    /// [`ReadRows::sync_facts_of_group`]), where every statement is refused: `true` when
    /// `f` needed none. `false` when it asked for one, whatever it returned then: the
    /// caller reads again in a transaction. A backend that does not group answer facts
    /// runs nothing and returns `false`.
    fn read_without_statements(&self, f: &mut dyn FnMut(&dyn ReadRows) -> Result<()>) -> Result<bool> {
        let _ = f;
        Ok(false)
    }
    /// Runs `f` in one write transaction and commits it durably before returning.
    fn write(&self, f: &mut dyn FnMut(&dyn WriteRows) -> Result<()>) -> Result<()>;
    /// After a commit that deleted what must leave no copy (an erasure): makes sure no
    /// journal or free page the backend keeps still holds the deleted bytes.
    fn purge_deleted(&self) -> Result<()>;
    /// This process's lists of the devices lacking a key a device holds
    /// ([`super::domain::KeyShareCache`]).
    fn key_shares(&self) -> &super::domain::KeyShareCache;
    /// This process's accesses of users ([`super::domain::AccessCache`]).
    fn accesses(&self) -> &super::domain::AccessCache;
    /// What this process's sync answers guessed ahead, and how often it held.
    fn answer_guesses(&self) -> &super::domain::AnswerGuesses;
}

/// How [`Backend::read_statement_first`] ran its read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FirstRead {
    /// As one statement, in the statement's own snapshot.
    OneStatement,
    /// It asked for a second statement, so it ran again in a read transaction.
    Again,
    /// In a read transaction: the backend saves nothing by a single statement.
    Transaction,
}

/// Runs `f` in one read transaction of `backend` and returns its result.
pub(crate) fn read<B: Backend + ?Sized, T>(
    backend: &B,
    f: impl FnMut(&dyn ReadRows) -> Result<T>,
) -> Result<T> {
    returning(|run| backend.read(run), f)
}

/// [`read`] for a read of one statement ([`Backend::read_statement`]).
pub(crate) fn read_statement<B: Backend + ?Sized, T>(
    backend: &B,
    f: impl FnMut(&dyn ReadRows) -> Result<T>,
) -> Result<T> {
    returning(|run| backend.read_statement(run), f)
}

/// [`read`] for a read that often needs one statement ([`Backend::read_statement_first`]).
pub(crate) fn read_statement_first<B: Backend + ?Sized, T>(
    backend: &B,
    f: impl FnMut(&dyn ReadRows) -> Result<T>,
) -> Result<(T, FirstRead)> {
    returning_with(|run| backend.read_statement_first(run), f)
}

/// `f`'s result, from a read that `read` runs it in.
fn returning<T>(
    read: impl FnOnce(&mut dyn FnMut(&dyn ReadRows) -> Result<()>) -> Result<()>,
    f: impl FnMut(&dyn ReadRows) -> Result<T>,
) -> Result<T> {
    returning_with(read, f).map(|(out, ())| out)
}

/// `f`'s result, from a read that `read` runs it in, with what `read` reports of the run.
fn returning_with<T, R>(
    read: impl FnOnce(&mut dyn FnMut(&dyn ReadRows) -> Result<()>) -> Result<R>,
    mut f: impl FnMut(&dyn ReadRows) -> Result<T>,
) -> Result<(T, R)> {
    let mut out = None;
    let run = read(&mut |rows| {
        out = Some(f(rows)?);
        Ok(())
    })?;
    let out =
        out.ok_or_else(|| super::StorageError::Backend("a read transaction ended without running".into()))?;
    Ok((out, run))
}

/// Runs `f` in one write transaction of `backend` and returns its result once committed.
pub(crate) fn write<B: Backend + ?Sized, T>(
    backend: &B,
    mut f: impl FnMut(&dyn WriteRows) -> Result<T>,
) -> Result<T> {
    let mut out = None;
    backend.write(&mut |rows| {
        out = Some(f(rows)?);
        Ok(())
    })?;
    out.ok_or_else(|| super::StorageError::Backend("a write transaction ended without running".into()))
}

/// The rows a sync answer reads of a user and a device beside the log's pages and the
/// user's remembered access ([`ReadRows::sync_facts`]); each field is what the single read it
/// names returns.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyncFacts {
    /// [`ReadRows::head`].
    pub head: u64,
    /// The version of [`ReadRows::policy`].
    pub policy: Option<u32>,
    /// [`ReadRows::membership_after`].
    pub membership: Vec<PositionedEntry>,
    /// The last of [`ReadRows::audit_keys`] of the user's organisation (the newest): its
    /// version and signed bytes; `None` for an unknown user.
    pub audit_key: Option<(u32, Vec<u8>)>,
    /// [`ReadRows::audit_through`].
    pub audit_through: u64,
    /// [`ReadRows::key_share_version`] of the device.
    pub key_shares: Option<(UserId, i64)>,
    /// The reads asked for ahead ([`FactsQuery::ahead`]), each with its ask.
    pub ahead: AheadReads,
}

/// What [`ReadRows::sync_facts`] reads: a sync answer's facts of `user` and `device`, and the
/// reads the answer is expected to make after them ([`AheadAsks`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FactsQuery {
    pub user: UserId,
    pub device: DeviceId,
    /// The membership entries are those after this log position.
    pub membership_after: u64,
    pub ahead: AheadAsks,
}

/// Reads of the device a sync answer is expected to make after its facts, asked for with
/// them so that a backend where a round trip costs reads them in the same statement. Each ask
/// is a guess from what the server remembers (the user's access, the device's held keys) and
/// from the request; the answer uses a result only for exactly the read it would make
/// ([`AheadReads`]), and reads anything else itself. A wrong guess costs a read, never a
/// wrong answer: the results are of the same transaction as every other read.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct AheadAsks {
    /// [`LogView::envelopes_after`] of the device.
    pub mailbox: Option<MailboxAsk>,
    /// [`LogView::documents_with_news`] for the device.
    pub news: Option<NewsAsk>,
    /// [`ReadRows::document_tails`].
    pub tails: Option<Vec<DocumentId>>,
}

/// An ask of a device's mailbox ([`LogView::envelopes_after`]): (after, limit).
pub(crate) type MailboxAsk = (u64, usize);

/// An ask of the documents with news for a device ([`LogView::documents_with_news`]):
/// (documents, since).
pub(crate) type NewsAsk = (Vec<DocumentId>, u64);

/// What [`AheadAsks`] read, each result with the ask it answers; `None` where the backend
/// left an ask unread. No news is read when the cursor is at the log's head or past it: a
/// pull from there reads none.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct AheadReads {
    /// The device the mailbox and the news were read for.
    pub device: Option<DeviceId>,
    pub mailbox: Option<(MailboxAsk, Vec<(u64, Envelope)>)>,
    pub news: Option<(NewsAsk, HashSet<DocumentId>)>,
    pub tails: Option<(Vec<DocumentId>, Vec<TailStats>)>,
}

impl AheadReads {
    /// `device`'s envelopes after `after`, at most `limit`, if that was read ahead.
    pub(crate) fn mailbox(&self, device: DeviceId, after: u64, limit: usize) -> Option<&[(u64, Envelope)]> {
        self.mailbox
            .as_ref()
            .filter(|(ask, _)| self.device == Some(device) && *ask == (after, limit))
            .map(|(_, read)| read.as_slice())
    }

    /// Of `documents`, those with news after `since` for `device`, if that was read ahead.
    pub(crate) fn news(
        &self,
        device: DeviceId,
        documents: &[DocumentId],
        since: u64,
    ) -> Option<&HashSet<DocumentId>> {
        self.news
            .as_ref()
            .filter(|((asked, asked_since), _)| {
                self.device == Some(device) && asked.as_slice() == documents && *asked_since == since
            })
            .map(|(_, read)| read)
    }

    /// The tails of `documents`, in their order, if that was read ahead.
    pub(crate) fn tails(&self, documents: &[DocumentId]) -> Option<&[TailStats]> {
        self.tails
            .as_ref()
            .filter(|(asked, _)| asked.as_slice() == documents)
            .map(|(_, read)| read.as_slice())
    }
}

impl SyncFacts {
    /// The [`AccessStamp`] of `user` read with these facts: the device's key-share version
    /// is its user's, so it is the stamp only when that user is `user`.
    pub(crate) fn stamp_of(&self, user: UserId) -> Option<AccessStamp> {
        self.key_shares_of(user).map(|(_, key_shares)| AccessStamp { key_shares, policy: self.policy })
    }

    /// The device's key-share version when the device's user is `user`.
    pub(crate) fn key_shares_of(&self, user: UserId) -> Option<(UserId, i64)> {
        self.key_shares.filter(|(of, _)| *of == user)
    }
}

/// What [`ReadRows::access_stamp`] read: the stamp, and the epochs of the documents asked for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StampRead {
    pub stamp: AccessStamp,
    pub epochs: Vec<(DocumentId, u32)>,
}

/// What [`ReadRows::sync_session`] read: the device, its user with the organisation's name
/// and the user's stamp with the epochs asked for (both `None` when the user is missing).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SessionRead {
    pub device: DeviceRecord,
    pub user: Option<(User, String)>,
    pub stamp: Option<StampRead>,
}

/// What [`ReadRows::user_access`] read: the core, the stamp it holds under, and the epochs
/// of the documents asked for that the user reads.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AccessRead {
    pub stamp: AccessStamp,
    pub core: AccessCore,
    pub epochs: Vec<(DocumentId, u32)>,
}

/// What the group commit's admission reads of a batch's authors and documents
/// ([`ReadRows::admission_facts`]); each field is what the single read it names returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct AdmissionFacts {
    /// The authors whose [`ReadRows::device_state`] is revoked.
    pub revoked: HashSet<DeviceId>,
    /// The documents for which [`ReadRows::rotation_pending_before`] `u32::MAX` holds.
    pub rotating: HashSet<DocumentId>,
    /// [`ReadRows::current_epoch`] of each document.
    pub epochs: HashMap<DocumentId, u32>,
}

/// Reads inside one transaction.
pub(crate) trait ReadRows {
    /// The pull's reads ([`super::pull`]), in this same transaction.
    fn log(&self) -> &dyn LogView;

    fn network(&self) -> Result<Option<NetworkRecord>>;

    fn admin(&self, public: &[u8; 32]) -> Result<Option<AdminRecord>>;

    fn server_secret(&self) -> Result<Option<[u8; 32]>>;

    fn server_audit_seed(&self) -> Result<Option<[u8; 32]>>;

    fn orgs(&self) -> Result<Vec<Org>>;

    fn org_by_name(&self, name: &str) -> Result<Option<Org>>;

    /// One organisation by id: what a request of one of its devices needs, without reading
    /// every organisation of the network.
    fn org(&self, org: OrgId) -> Result<Option<Org>>;

    fn users(&self) -> Result<Vec<User>>;

    fn user(&self, id: UserId) -> Result<Option<User>>;

    /// The user with the name of its organisation (empty when it has none): who a request
    /// of one of its devices is, as the server's log names it. Two reads here, one
    /// statement where a round trip costs (PostgreSQL). It is read through
    /// [`Backend::read_statement`], so a backend whose one-statement reads refuse a second
    /// statement must override it.
    fn user_with_organisation(&self, id: UserId) -> Result<Option<(User, String)>> {
        let Some(user) = self.user(id)? else { return Ok(None) };
        let organisation = self.org(user.org)?.map(|o| o.name).unwrap_or_default();
        Ok(Some((user, organisation)))
    }

    fn users_by_name(&self, name: &str) -> Result<Vec<User>>;

    /// An unused code's user and expiry.
    fn unused_enrolment(&self, code_id: &[u8; 32]) -> Result<Option<(UserId, i64)>>;

    fn devices(&self) -> Result<Vec<DeviceRecord>>;

    fn devices_in_state(&self, state: DeviceState) -> Result<Vec<DeviceRecord>>;

    fn devices_of_user(&self, user: UserId) -> Result<Vec<DeviceRecord>>;

    fn device(&self, id: DeviceId) -> Result<Option<DeviceRecord>>;

    fn active_devices_of_user(&self, user: UserId) -> Result<Vec<DeviceRecord>>;

    fn device_state(&self, id: DeviceId) -> Result<Option<DeviceState>>;

    /// A device's replaced certificates, oldest first.
    fn older_certificates(&self, id: DeviceId) -> Result<Vec<Vec<u8>>>;

    /// The order waiting for `id`, if it is revoked.
    fn wipe_order(&self, id: DeviceId) -> Result<Option<Vec<u8>>>;

    fn user_exists(&self, user: UserId) -> Result<bool>;

    /// The device's user and that user's key-share version, `None` for an unknown device. The
    /// schema's triggers change it with every row that decides which devices lack a key the
    /// user's devices hold: envelopes and commitments of the user's plans, their participants
    /// and levels, the roles and devices (state, wipe report) of everyone taking part in
    /// them. The policy's access rows are not among them: they change with the policy's
    /// version.
    fn key_share_version(&self, device: DeviceId) -> Result<Option<(UserId, i64)>>;

    /// [`ReadRows::key_share_version`] of a user, `None` for an unknown user.
    fn user_key_share_version(&self, user: UserId) -> Result<Option<i64>>;

    fn plan_creator(&self, plan: &PlanId) -> Result<Option<UserId>>;

    fn closed_plans(&self) -> Result<Vec<(PlanId, i64)>>;

    fn closed_at(&self, plan: &PlanId) -> Result<Option<i64>>;

    fn erased_at(&self, plan: &PlanId) -> Result<Option<i64>>;

    /// The chain length and roster of a plan with a chain; `NotFound` for an unknown plan.
    fn roster(&self, plan: &PlanId) -> Result<Option<(u32, Vec<u8>)>>;

    fn membership_entries(&self, plan: &PlanId, after: u32) -> Result<Vec<Vec<u8>>>;

    /// (plan, position, entry) of `user`'s plans after `after`: an entry's position is its own,
    /// or the user's grant when that is later (a newly granted plan's whole chain at once).
    fn membership_after(&self, user: UserId, after: u64) -> Result<Vec<super::PositionedEntry>>;

    /// Documents of plans with a chain that wait for a new epoch and that `user` reads.
    fn chartered_rotations_for(&self, user: UserId) -> Result<Vec<DocumentId>>;

    fn participant_role(&self, plan: &PlanId, user: UserId) -> Result<Option<String>>;

    fn participants(&self, plan: &PlanId) -> Result<Vec<Participant>>;

    /// The plans `user` participates in, with their escalation level.
    fn plan_levels_of_user(&self, user: UserId) -> Result<Vec<(PlanId, String)>>;

    /// The plans `user` participates in.
    fn plans_of_user(&self, user: UserId) -> Result<Vec<PlanId>>;

    /// (document, granted_at_seq) of every document `user` may read: the participant's plans
    /// joined with the compartments the user's role reads under the stored policy.
    fn readable(&self, user: UserId) -> Result<Vec<(DocumentId, u64)>>;

    /// The readable documents of one plan for `user`.
    fn readable_in_plan(&self, plan: &PlanId, user: UserId) -> Result<Vec<DocumentId>>;

    fn head(&self) -> Result<u64>;

    fn seq_of_bundle(&self, bundle_id: &[u8; 16]) -> Result<Option<u64>>;

    fn document_stats(&self, document: DocumentId) -> Result<DocStats>;
    /// Each document `device` holds a key of, by document: whether it holds the current
    /// epoch's, and the log after the newest snapshot. One statement for all of them: a
    /// regisseur's device holds hundreds. A sync answer reads the two parts apart
    /// ([`ReadRows::held_documents`], remembered, and [`ReadRows::document_tails`]).
    fn held_tails(&self, device: DeviceId) -> Result<Vec<HeldTail>>;

    /// [`ReadRows::held_tails`] without the tails, which move with every push: each document
    /// `device` holds a key of, by document, with whether it holds the current epoch's.
    fn held_documents(&self, device: DeviceId) -> Result<Vec<(DocumentId, bool)>> {
        Ok(self.held_tails(device)?.into_iter().map(|held| (held.document, held.current_key_held)).collect())
    }

    /// The log after the newest snapshot of each of `documents`, in their order, as
    /// [`ReadRows::held_tails`] reads it.
    fn document_tails(&self, documents: &[DocumentId]) -> Result<Vec<TailStats>>;

    /// (document, covers) of `device`'s requests made at or after `since`.
    fn snapshot_requests_of(&self, device: DeviceId, since: i64) -> Result<Vec<(DocumentId, u64)>>;

    /// Whether a device other than `device` was first asked for a snapshot of `document` at
    /// or after `since`; renewing a request does not move its first ask.
    fn snapshot_requested_elsewhere(
        &self,
        document: DocumentId,
        device: DeviceId,
        since: i64,
    ) -> Result<bool>;

    /// `Some(sealer)` when the recipient holds an envelope of (document, epoch); the sealer is
    /// `None` when not known (an administrator's rotation).
    fn envelope_sealer(
        &self,
        recipient: DeviceId,
        document: DocumentId,
        epoch: u32,
    ) -> Result<Option<Option<DeviceId>>>;

    fn sealer_refused(
        &self,
        recipient: DeviceId,
        document: DocumentId,
        epoch: u32,
        sealer: DeviceId,
    ) -> Result<bool>;

    fn escrow_envelopes(&self, plan: &[u8; 16]) -> Result<Vec<Envelope>>;

    fn envelopes_for(&self, device: DeviceId, since: u64) -> Result<Vec<Envelope>>;

    fn devices_missing_envelope(&self, document: DocumentId, epoch: u32) -> Result<Vec<DeviceId>>;

    /// [`ReadRows::devices_missing_envelope`] of every key `device` holds (by envelope, or
    /// because it made the key), in one statement: (document, epoch, device), ordered by
    /// document, epoch and device. Every complete sync answer asks it; key by key it was two
    /// statements per held document (a round trip each on PostgreSQL).
    fn devices_missing_held_keys(&self, device: DeviceId) -> Result<Vec<(DocumentId, u32, DeviceId)>>;

    /// The active, not wiped devices of the participants whose role may read `document`, each
    /// with the epochs it holds: by envelope, or because it made the key.
    fn readers(&self, document: DocumentId) -> Result<Vec<Reader>>;

    /// The newest stored version, or version `version`: (version, signed bytes).
    fn revocation_list(&self, version: Option<u32>) -> Result<Option<(u32, Vec<u8>)>>;

    fn on_revocation_list(&self, device: DeviceId) -> Result<bool>;

    fn policy(&self) -> Result<Option<PolicyRecord>>;

    /// An earlier (or the current) signed policy, by version.
    fn policy_version(&self, version: u32) -> Result<Option<Vec<u8>>>;

    /// (plan, user) of every participant whose user has `role`.
    fn participants_with_role(&self, role: &str) -> Result<Vec<(PlanId, UserId)>>;

    fn commitment(&self, document: DocumentId, epoch: u32) -> Result<Option<CommitmentRecord>>;

    /// The version of the current policy; `None` before there is one.
    fn policy_version_in_force(&self) -> Result<Option<u32>>;

    fn current_epoch(&self, document: DocumentId) -> Result<u32>;

    fn unminted_documents(&self, user: UserId) -> Result<Vec<DocumentId>>;

    fn held_keys(&self, device: DeviceId) -> Result<Vec<(DocumentId, u32)>>;

    /// Whether a rotation queued before `epoch` waits (any, for `u32::MAX`).
    fn rotation_pending_before(&self, document: DocumentId, epoch: u32) -> Result<bool>;

    fn pending_rotations(&self) -> Result<u64>;

    /// (document, oldest queued_at) of the longest-waiting rotations.
    fn oldest_rotations(&self, limit: u64) -> Result<Vec<(DocumentId, i64)>>;

    fn audit_through(&self, device: DeviceId) -> Result<u64>;

    fn audit_uploads(&self, org: OrgId, after: u64, limit: u64) -> Result<Vec<StoredAuditUpload>>;

    fn audit_keys(&self, org: OrgId) -> Result<Vec<AuditKeyRecord>>;

    fn last_server_event(&self) -> Result<Option<ServerEventRecord>>;

    fn server_events(&self, after: u64, limit: u64) -> Result<Vec<ServerEventRecord>>;

    /// Whether the log holds a bundle of `document` after position `after`.
    fn document_has_bundle_after(&self, document: DocumentId, after: u64) -> Result<bool>;

    /// What the group commit's admission reads of a batch, one by one here, in one
    /// statement where a round trip costs (PostgreSQL): inside the write transaction, which
    /// holds the log head's lock, every round trip is time no other push can commit.
    fn admission_facts(&self, authors: &[DeviceId], documents: &[DocumentId]) -> Result<AdmissionFacts> {
        let mut facts = AdmissionFacts::default();
        for &author in authors {
            if self.device_state(author)? == Some(DeviceState::Revoked) {
                facts.revoked.insert(author);
            }
        }
        for &document in documents {
            if self.rotation_pending_before(document, u32::MAX)? {
                facts.rotating.insert(document);
            }
            facts.epochs.insert(document, self.current_epoch(document)?);
        }
        Ok(facts)
    }

    /// The stamp of `user`'s access ([`super::domain::AccessCache`]) and the current epoch
    /// of each of `documents`, in the order given; `None` for an unknown user. What a sync
    /// with uploads to check reads when its process holds the user's access core: one small
    /// statement on PostgreSQL.
    fn access_stamp(&self, user: UserId, documents: &[DocumentId]) -> Result<Option<StampRead>> {
        let Some(key_shares) = self.user_key_share_version(user)? else { return Ok(None) };
        let stamp = AccessStamp { key_shares, policy: self.policy_version_in_force()? };
        let epochs = documents.iter().map(|&d| Ok((d, self.current_epoch(d)?))).collect::<Result<_>>()?;
        Ok(Some(StampRead { stamp, epochs }))
    }

    /// What a sync reads first ([`super::Storage::sync_session`]): the device, its user with
    /// the organisation's name, and the user's stamp with the current epoch of each of
    /// `documents`; `None` for an unknown device. One by one here, in one statement where a
    /// round trip costs (PostgreSQL).
    fn sync_session(&self, device: DeviceId, documents: &[DocumentId]) -> Result<Option<SessionRead>> {
        let Some(device) = self.device(device)? else { return Ok(None) };
        let user = self.user_with_organisation(device.user)?;
        let stamp = if user.is_some() { self.access_stamp(device.user, documents)? } else { None };
        Ok(Some(SessionRead { device, user, stamp }))
    }

    /// [`ReadRows::sync_session`] of each of `asks`, in their order: one statement where a
    /// statement costs a round trip and a plan's start-up (PostgreSQL, which groups them,
    /// [`Backend::session_reads`]), one read after another here.
    fn sync_sessions(&self, asks: &[SessionAsk]) -> Result<Vec<Option<SessionRead>>> {
        asks.iter().map(|ask| self.sync_session(ask.device, &ask.documents)).collect()
    }

    /// What a sync with uploads to check reads of `user` otherwise
    /// ([`super::Storage::user_access`]): the core with the stamp it holds under, and the
    /// epochs of those of `documents` the user reads; `None` for an unknown user. One by one
    /// here, in one statement where a round trip costs (PostgreSQL).
    fn user_access(&self, user: UserId, documents: &[DocumentId]) -> Result<Option<AccessRead>> {
        let Some(record) = self.user(user)? else { return Ok(None) };
        let Some(key_shares) = self.user_key_share_version(user)? else { return Ok(None) };
        let policy = self.policy()?;
        let stamp = AccessStamp { key_shares, policy: policy.as_ref().map(|p| p.policy.version) };
        let readable = self.readable(user)?;
        let reads: HashSet<&DocumentId> = readable.iter().map(|(document, _)| document).collect();
        let epochs = documents
            .iter()
            .filter(|d| reads.contains(d))
            .map(|&d| Ok((d, self.current_epoch(d)?)))
            .collect::<Result<_>>()?;
        let core = AccessCore {
            organisation: self.org(record.org)?.map(|o| o.name).unwrap_or_default(),
            user: record,
            policy: policy.map(std::sync::Arc::new),
            plan_levels: self.plan_levels_of_user(user)?,
            readable,
            unminted: self.unminted_documents(user)?,
            rotations: self
                .chartered_rotations_for(user)?
                .into_iter()
                .map(|d| Ok((d, self.current_epoch(d)?)))
                .collect::<Result<_>>()?,
        };
        Ok(Some(AccessRead { stamp, core, epochs }))
    }

    /// Every sync answer's reads of a user and a device beside the log's pages and the
    /// user's remembered access, and the reads asked for ahead: read one by one here (the
    /// mailbox and the news; the tails are left to the answer), in one statement where a
    /// round trip costs (PostgreSQL, which reads all three).
    fn sync_facts(&self, query: &FactsQuery) -> Result<SyncFacts> {
        let FactsQuery { user, device, membership_after, ref ahead } = *query;
        let audit_key = match self.user(user)? {
            Some(user) => self.audit_keys(user.org)?.pop().map(|key| (key.version, key.signed)),
            None => None,
        };
        let (log, head) = (self.log(), self.head()?);
        let mailbox = match ahead.mailbox {
            Some((after, limit)) => Some(((after, limit), log.envelopes_after(device, after, limit)?)),
            None => None,
        };
        let news = match &ahead.news {
            Some((documents, since)) if *since < head => {
                Some(((documents.clone(), *since), log.documents_with_news(documents, *since, device)?))
            }
            _ => None,
        };
        Ok(SyncFacts {
            head,
            policy: self.policy_version_in_force()?,
            membership: self.membership_after(user, membership_after)?,
            audit_key,
            audit_through: self.audit_through(device)?,
            key_shares: self.key_share_version(device)?,
            // No tails: a backend without round trips gains nothing by reading them ahead, and
            // only a complete answer weighs them (SQLite reads each tail's kept row).
            ahead: AheadReads { device: Some(device), mailbox, news, tails: None },
        })
    }

    /// [`ReadRows::sync_facts`] of each of `queries`, in their order and in one snapshot:
    /// one statement where a statement costs a round trip and a plan's start-up (PostgreSQL,
    /// [`Backend::groups_answer_facts`]), one read after another here.
    fn sync_facts_of_group(&self, queries: &[FactsQuery]) -> Result<Vec<SyncFacts>> {
        queries.iter().map(|query| self.sync_facts(query)).collect()
    }
}

/// Writes inside one transaction; its reads see the transaction's own writes.
pub(crate) trait WriteRows: ReadRows {
    /// False if the network was set before.
    fn insert_network(&self, network: &NetworkRecord) -> Result<bool>;

    /// False if the key is an administrator already.
    fn insert_admin(&self, admin: &AdminRecord) -> Result<bool>;

    /// Stores `fresh` unless a secret exists; returns the one that is stored.
    fn ensure_server_secret(&self, fresh: &[u8; 32]) -> Result<[u8; 32]>;

    /// Deletes the admin signatures whose `stale_after` is before `now`.
    fn forget_stale_admin_signatures(&self, now: i64) -> Result<()>;

    /// False if `signature` is stored already.
    fn insert_admin_signature(&self, signature: &[u8; 64], stale_after: i64) -> Result<bool>;

    /// Stores `fresh` unless a seed exists; returns the one that is stored.
    fn ensure_server_audit_seed(&self, fresh: &[u8; 32]) -> Result<[u8; 32]>;

    /// None if the name is taken.
    fn insert_org(&self, name: &str, lease_hours: u32) -> Result<Option<OrgId>>;

    /// None if the organisation has a user of this name.
    fn insert_user(&self, org: OrgId, name: &str, role: &str) -> Result<Option<UserId>>;

    /// False if the code id is stored already.
    fn insert_enrolment(&self, code_id: &[u8; 32], user: UserId, expires_at: i64) -> Result<bool>;

    fn mark_enrolment_used(&self, code_id: &[u8; 32], device: DeviceId, now: i64) -> Result<()>;

    /// False if the device id exists.
    fn insert_device(&self, device: &NewDevice, user: UserId, now: i64) -> Result<bool>;

    fn activate_device(&self, id: DeviceId, certificate: &[u8]) -> Result<()>;

    /// Replaces an active device's certificate, keeping the one it replaces.
    fn recertify_device(
        &self,
        id: DeviceId,
        old: (i64, &[u8]),
        certificate: &[u8],
        certified_at: i64,
    ) -> Result<()>;

    fn set_user_role(&self, user: UserId, role: &str) -> Result<()>;

    fn revoke_device(&self, id: DeviceId, reason: &str, now: i64) -> Result<()>;

    /// Keeps the first order stored for a device.
    fn insert_wipe_order(&self, id: DeviceId, signed: &[u8], now: i64) -> Result<()>;

    /// Keeps the first report stored for a device.
    fn insert_wipe_report(&self, id: DeviceId, signed: &[u8], now: i64) -> Result<()>;

    /// A session's time and, when given, the nonce hash it registered; forgets a wipe report
    /// (true if there was one).
    fn record_session(&self, id: DeviceId, wipe_nonce_hash: Option<[u8; 32]>, now: i64) -> Result<bool>;

    /// Whether the device exists (and so took the name).
    fn set_device_name(&self, id: DeviceId, name: &StoredName) -> Result<bool>;

    fn set_last_seen(&self, id: DeviceId, now: i64) -> Result<()>;

    fn insert_plan(&self, plan: &PlanId, creator: UserId, created_by: DeviceId, now: i64) -> Result<()>;

    fn insert_membership(&self, plan: &PlanId, seq: u32, signed: &[u8], position: u64) -> Result<()>;

    fn set_roster(&self, plan: &PlanId, roster: &[u8], level: &str) -> Result<()>;

    fn set_closed_at(&self, plan: &PlanId, closed_at: i64) -> Result<()>;

    /// Deletes every row of `plan` and leaves its tombstone.
    fn erase_plan(&self, plan: &PlanId, now: i64) -> Result<Erasure>;

    /// Takes the next `n` log positions and returns the last of them.
    fn advance_head(&self, n: u64) -> Result<u64>;

    fn insert_participant(
        &self,
        plan: &PlanId,
        user: UserId,
        plan_role: &str,
        granted_at_seq: u64,
    ) -> Result<()>;

    fn set_participant_role(&self, plan: &PlanId, user: UserId, plan_role: &str) -> Result<()>;

    /// Remembers that entry `seq` of `plan`'s chain removed `user` (see `membership_after`).
    fn record_leaver(&self, plan: &PlanId, user: UserId, seq: u32) -> Result<()>;

    /// A user who takes part again is a participant, not a leaver.
    fn forget_leaver(&self, plan: &PlanId, user: UserId) -> Result<()>;

    fn delete_participant(&self, plan: &PlanId, user: UserId) -> Result<()>;

    /// Appends each of `bundles` (with the position a snapshot covers) whose id is not
    /// stored, at consecutive positions from `first` in the order given: the position each
    /// took, `None` for one whose id was stored already. Their ids differ from each other.
    /// One statement where the backend can (a group commit's round trips on PostgreSQL).
    fn append_bundles(&self, first: u64, bundles: &[(&NewBundle, Option<u64>)]) -> Result<Vec<Option<u64>>>;

    fn set_head(&self, head: u64) -> Result<()>;

    /// Stores where a page stopped inside a history block and returns its token. The device's
    /// other points go, except the one it presented (it may present it again when this answer is
    /// lost), so a device has at most two.
    fn insert_resume_point(
        &self,
        device: DeviceId,
        point: &ResumePoint,
        presented: Option<u64>,
    ) -> Result<u64>;

    /// Drops the requests made before `before`.
    fn expire_snapshot_requests(&self, before: i64) -> Result<()>;

    /// Records (or renews) `device`'s request for a snapshot of `document` covering `covers`.
    fn upsert_snapshot_request(
        &self,
        device: DeviceId,
        document: DocumentId,
        covers: u64,
        now: i64,
    ) -> Result<()>;

    /// Consumes `device`'s request for a snapshot of `document` covering exactly `covers`, made
    /// at or after `since`; false when there is none.
    fn take_snapshot_request(
        &self,
        device: DeviceId,
        document: DocumentId,
        covers: u64,
        since: i64,
    ) -> Result<bool>;

    /// Stores an envelope at a new log position unless the recipient has one for its (document,
    /// epoch): the first stays. The recipient's next sync after its cursor delivers it, and later
    /// syncs do not repeat it. False if one was there.
    fn insert_envelope(&self, envelope: &Envelope, sealer: Option<DeviceId>) -> Result<bool>;

    fn delete_envelope(&self, recipient: DeviceId, document: DocumentId, epoch: u32) -> Result<()>;

    fn insert_refused_sealer(
        &self,
        recipient: DeviceId,
        document: DocumentId,
        epoch: u32,
        sealer: DeviceId,
    ) -> Result<()>;

    /// The first escrow envelope of a (document, epoch) stays: it comes from the key's creator,
    /// and no later participant may replace it with one the escrow key cannot open. False if one
    /// was there.
    fn insert_escrow_envelope(&self, envelope: &Envelope) -> Result<bool>;

    fn insert_revocation_list(&self, version: u32, signed: &[u8], now: i64) -> Result<()>;

    /// Records that `device` is listed, from `version` on (a device listed before keeps its
    /// first version).
    fn insert_revocation_entry(&self, device: DeviceId, version: u32) -> Result<()>;

    /// Replaces the policy and its materialised table.
    fn replace_policy(&self, record: &PolicyRecord, now: i64) -> Result<()>;

    fn set_granted_at(&self, plan: &PlanId, user: UserId, granted: u64) -> Result<()>;

    /// Deletes the envelopes of `user`'s devices for one document.
    fn delete_user_envelopes(&self, document: DocumentId, user: UserId) -> Result<()>;

    /// False if the (document, epoch) has a commitment already.
    fn insert_commitment(&self, commitment: &CommitmentRecord) -> Result<bool>;

    /// Queues a rotation of `document` at its current epoch; a document without a key has
    /// nothing to rotate.
    fn queue_rotation(&self, document: DocumentId, now: i64) -> Result<()>;

    /// Removes the rotations of `document` queued before it reached `epoch`.
    fn settle_rotations(&self, document: DocumentId, epoch: u32) -> Result<()>;

    /// True when the upload is new; false when one with its digest is stored.
    fn insert_audit_upload(&self, upload: &NewAuditUpload) -> Result<bool>;

    fn insert_audit_key(&self, key: &AuditKeyRecord) -> Result<()>;

    /// Stores `events`; a position stored already is a conflict. One statement where the
    /// backend can (a batch of the server's own log is one round trip on PostgreSQL).
    fn insert_server_events(&self, events: &[ServerEventRecord]) -> Result<()>;

    /// Deletes every bundle and snapshot of `document` (all of them are of older epochs when an
    /// erasure makes `epoch`), its envelopes and escrow envelopes and commitments before
    /// `epoch`, and the snapshots asked of it.
    fn delete_document_epochs_before(&self, document: DocumentId, epoch: u32) -> Result<MemberErased>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Envelope;

    /// A device's mailbox holds the keys sealed to it: what was read ahead for one device's
    /// answer is served to that device's very read only, never to another device's.
    #[test]
    fn reads_made_ahead_for_one_device_are_served_to_that_devices_very_read_only() {
        let (ann, bob) = (DeviceId([1; 16]), DeviceId([2; 16]));
        let document = DocumentId { plan: [7; 16], compartment: 0 };
        let envelope = Envelope { recipient: ann, document, epoch: 1, bytes: vec![9; 32] };
        let reads = AheadReads {
            device: Some(ann),
            mailbox: Some(((5, 64), vec![(6, envelope)])),
            news: Some(((vec![document], 5), HashSet::from([document]))),
            tails: None,
        };
        assert_eq!(reads.mailbox(ann, 5, 64).map(<[_]>::len), Some(1));
        assert!(reads.mailbox(bob, 5, 64).is_none(), "another device's read");
        assert!(reads.mailbox(ann, 4, 64).is_none() && reads.mailbox(ann, 5, 63).is_none(), "another ask");
        assert!(reads.news(ann, &[document], 5).is_some());
        assert!(reads.news(bob, &[document], 5).is_none(), "another device's read");
        assert!(reads.news(ann, &[document], 4).is_none(), "another cursor");
        let nobodys = AheadReads { device: None, ..reads };
        assert!(nobodys.mailbox(ann, 5, 64).is_none() && nobodys.news(ann, &[document], 5).is_none());
    }
}
