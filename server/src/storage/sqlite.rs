//! The embedded backend: one SQLite file in WAL mode, the server's default, so that it runs
//! with nothing else installed.
//!
//! One connection writes, behind a mutex: SQLite allows one writer anyway, and with group
//! commit the server hands it whole batches. A few read-only connections serve reads; in WAL
//! mode a reader sees the last commit and never waits for a write in progress, so a long push
//! batch does not stall pulls. `synchronous=FULL`: a write has reached stable storage before
//! its method returns, which is what lets the server acknowledge a push.

mod migrations;
mod rows;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use eenplan_protocol::{BundleKind, DocumentId};
use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior};

use super::{
    AdminRecord, AuditKeyRecord, CREATOR_PLAN_ROLE, CharteredPlan, CommitmentOutcome, CommitmentRecord,
    CompletedRotation, DeviceId, DeviceRecord, DeviceState, DocStats, Envelope, EnvelopeOutcome,
    EnvelopeRefusal, Erasure, MAX_SNAPSHOT_REQUESTS_PER_DEVICE, MemberErased, MemberErasure, MembershipPage,
    MembershipUpdate, NetworkRecord, NewAuditUpload, NewBundle, NewDevice, Org, OrgId, Participant, PlanId,
    PolicyRecord, PullBatch, PullRequest, PushOutcome, Reader, Result, Revocation, RevocationListRecord,
    RotationTask, SNAPSHOT_REQUEST_TTL_MS, ServerEventRecord, SessionRecorded, Storage, StorageError,
    StoredAuditUpload, StoredName, User, UserId, WipeGuard, pull,
};

/// Read connections. Pulls are short read transactions; a few cover the bursts of a morning
/// peak without holding a page cache per client.
const READERS: usize = 4;
/// How long a statement waits for a lock another process holds (a backup, an operator's
/// sqlite3 shell) before it reports [`StorageError::Busy`].
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StorageError::Busy,
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                StorageError::Corrupt(e.to_string())
            }
            Some(ErrorCode::ConstraintViolation) => StorageError::Conflict(e.to_string()),
            // A stored value that does not convert back is not what this server wrote.
            _ if matches!(
                e,
                rusqlite::Error::FromSqlConversionFailure(..)
                    | rusqlite::Error::InvalidColumnType(..)
                    | rusqlite::Error::IntegralValueOutOfRange(..)
            ) =>
            {
                StorageError::Corrupt(e.to_string())
            }
            _ => StorageError::Backend(e.to_string()),
        }
    }
}

pub struct SqliteStorage {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStorage").field("path", &self.path).finish_non_exhaustive()
    }
}

fn connect_writer(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StorageError::Backend(format!("journal mode {mode} instead of WAL")));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Deleted envelopes of a revoked device are overwritten, not left in free pages.
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.pragma_update(None, "cell_size_check", "ON")?;
    conn.pragma_update(None, "trusted_schema", "OFF")?;
    Ok(conn)
}

fn connect_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "cell_size_check", "ON")?;
    conn.pragma_update(None, "trusted_schema", "OFF")?;
    Ok(conn)
}

/// A poisoned lock only means another thread panicked while holding it; its transaction was
/// rolled back when the guard unwound, so the connection is still sound.
fn relock<'a>(lock: &'a Mutex<Connection>) -> MutexGuard<'a, Connection> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `DocumentId`'s fields are public, so one can be built with a compartment that does not
/// exist; such a row could never be read back as a `DocumentId`.
fn known_compartments(mut documents: impl Iterator<Item = DocumentId>) -> Result<()> {
    match documents.find(|d| d.compartment >= DocumentId::COMPARTMENTS) {
        Some(bad) => Err(StorageError::InvalidState(format!("compartment {} is unknown", bad.compartment))),
        None => Ok(()),
    }
}

impl SqliteStorage {
    /// Opens or creates the database at `path` and applies any pending migrations.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStorage> {
        let path = path.as_ref().to_path_buf();
        let mut writer = connect_writer(&path)?;
        let tx = writer.transaction_with_behavior(TransactionBehavior::Immediate)?;
        migrations::migrate(&tx)?;
        tx.commit()?;
        let readers = (0..READERS).map(|_| connect_reader(&path).map(Mutex::new)).collect::<Result<_>>()?;
        Ok(SqliteStorage { path, writer: Mutex::new(writer), readers, next_reader: AtomicUsize::new(0) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one immediate transaction on the writer and commits it durably; an error
    /// from `f` rolls everything back.
    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = relock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f` in one read transaction, so all its reads see the same commit.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Copies the WAL into the database file and truncates it. Waits (the busy timeout) for
    /// readers still using older frames; [`StorageError::Busy`] if they outlast it.
    fn checkpoint_truncate(&self) -> Result<()> {
        let conn = relock(&self.writer);
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
        if busy != 0 {
            return Err(StorageError::Busy);
        }
        Ok(())
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        for lock in &self.readers {
            match lock.try_lock() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        // All busy: queue on one of them, spreading the waiters.
        let index = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        relock(&self.readers[index])
    }
}

impl Storage for SqliteStorage {
    fn network(&self) -> Result<Option<NetworkRecord>> {
        self.read(rows::network)
    }

    fn init_network(
        &self,
        network: &NetworkRecord,
        first_admin: &AdminRecord,
        policy: &PolicyRecord,
    ) -> Result<()> {
        self.write(|tx| {
            if !rows::insert_network(tx, network)? {
                return Err(StorageError::AlreadyInitialised);
            }
            if !rows::insert_admin(tx, first_admin)? {
                return Err(StorageError::Conflict("that key is already an administrator".into()));
            }
            rows::replace_policy(tx, policy, 0)
        })
    }

    fn add_admin(&self, admin: &AdminRecord) -> Result<()> {
        self.write(|tx| {
            if rows::network(tx)?.is_none() {
                return Err(StorageError::InvalidState("the network is not initialised".into()));
            }
            if !rows::insert_admin(tx, admin)? {
                return Err(StorageError::Conflict("that key is already an administrator".into()));
            }
            Ok(())
        })
    }

    fn admin(&self, public: &[u8; 32]) -> Result<Option<AdminRecord>> {
        self.read(|conn| rows::admin(conn, public))
    }

    fn server_secret(&self) -> Result<[u8; 32]> {
        if let Some(secret) = self.read(rows::server_secret)? {
            return Ok(secret);
        }
        let fresh = fresh_secret()?;
        // Two first callers may race here; the insert keeps whichever committed first.
        self.write(|tx| rows::ensure_server_secret(tx, &fresh))
    }

    fn add_org(&self, name: &str, lease_hours: u32) -> Result<OrgId> {
        self.write(|tx| {
            rows::insert_org(tx, name, lease_hours)?
                .ok_or_else(|| StorageError::Conflict(format!("an organisation named {name:?} exists")))
        })
    }

    fn orgs(&self) -> Result<Vec<Org>> {
        self.read(rows::orgs)
    }

    fn org_by_name(&self, name: &str) -> Result<Option<Org>> {
        self.read(|conn| rows::org_by_name(conn, name))
    }

    fn add_user(&self, org: OrgId, name: &str, role: &str) -> Result<UserId> {
        self.write(|tx| {
            if !rows::org_exists(tx, org)? {
                return Err(StorageError::NotFound);
            }
            rows::insert_user(tx, org, name, role)?.ok_or_else(|| {
                StorageError::Conflict(format!("the organisation already has a user named {name:?}"))
            })
        })
    }

    fn users(&self) -> Result<Vec<User>> {
        self.read(rows::users)
    }

    fn user(&self, id: UserId) -> Result<Option<User>> {
        self.read(|conn| rows::user(conn, id))
    }

    fn user_by_name(&self, name: &str) -> Result<Vec<User>> {
        self.read(|conn| rows::users_by_name(conn, name))
    }

    fn create_enrolment(&self, code_id: &[u8; 32], user: UserId, expires_at: i64) -> Result<()> {
        self.write(|tx| {
            if !rows::user_exists(tx, user)? {
                return Err(StorageError::NotFound);
            }
            if !rows::insert_enrolment(tx, code_id, user, expires_at)? {
                return Err(StorageError::Conflict("that enrolment code exists".into()));
            }
            Ok(())
        })
    }

    fn claim_enrolment(&self, code_id: &[u8; 32], device: &NewDevice, now: i64) -> Result<UserId> {
        self.write(|tx| {
            let (user, expires_at) = rows::unused_enrolment(tx, code_id)?.ok_or(StorageError::NotFound)?;
            if now >= expires_at {
                return Err(StorageError::Expired);
            }
            if !rows::insert_device(tx, device, user, now)? {
                return Err(StorageError::Conflict("that device is enrolled already".into()));
            }
            rows::mark_enrolment_used(tx, code_id, device.device_id, now)?;
            Ok(user)
        })
    }

    fn devices(&self) -> Result<Vec<DeviceRecord>> {
        self.read(rows::devices)
    }

    fn devices_of_user(&self, user: UserId) -> Result<Vec<DeviceRecord>> {
        self.read(|conn| rows::devices_of_user(conn, user))
    }

    fn device(&self, id: DeviceId) -> Result<Option<DeviceRecord>> {
        self.read(|conn| rows::device(conn, id))
    }

    fn pending_devices(&self) -> Result<Vec<DeviceRecord>> {
        self.read(|conn| rows::devices_in_state(conn, DeviceState::Pending))
    }

    fn active_devices_of_user(&self, user: UserId) -> Result<Vec<DeviceRecord>> {
        self.read(|conn| rows::active_devices_of_user(conn, user))
    }

    fn activate_device(&self, id: DeviceId, certificate: &[u8]) -> Result<()> {
        self.write(|tx| match rows::device_state(tx, id)? {
            None => Err(StorageError::NotFound),
            Some(DeviceState::Pending) => rows::activate_device(tx, id, certificate),
            Some(state) => Err(StorageError::InvalidState(format!("the device is {}", state.as_str()))),
        })
    }

    fn revoke_device(&self, id: DeviceId, revocation: &Revocation, now: i64) -> Result<u64> {
        self.write(|tx| {
            let record = rows::device(tx, id)?.ok_or(StorageError::NotFound)?;
            match record.state {
                // Keeps the first revocation's time, reason and order.
                DeviceState::Revoked => {}
                // A pending device never received a key: nothing to rotate.
                DeviceState::Pending => {
                    rows::revoke_device(tx, id, &revocation.reason, now)?;
                    rows::insert_wipe_order(tx, id, &revocation.wipe_order, now)?;
                }
                DeviceState::Active => {
                    rows::revoke_device(tx, id, &revocation.reason, now)?;
                    rows::insert_wipe_order(tx, id, &revocation.wipe_order, now)?;
                    for (document, _) in rows::readable(tx, record.user)? {
                        rows::queue_rotation(tx, document, now)?;
                    }
                }
            }
            rows::pending_rotations(tx)
        })
    }

    fn change_role(
        &self,
        user: UserId,
        role: &str,
        certificates: &[(DeviceId, Vec<u8>)],
        now: i64,
    ) -> Result<u64> {
        self.write(|tx| {
            let old_role = rows::user(tx, user)?.ok_or(StorageError::NotFound)?.role;
            let policy = rows::policy(tx)?
                .ok_or_else(|| StorageError::InvalidState("the network has no sharing policy".into()))?
                .policy;
            let devices = rows::active_devices_of_user(tx, user)?;
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
                rows::recertify_device(tx, *device, (old_from, old), certificate, now)?;
            }
            rows::set_user_role(tx, user, role)?;
            let change = policy.role_change(&old_role, role);
            let plans = rows::plans_of_user(tx, user)?;
            for plan in &plans {
                for compartment in &change.rotate {
                    let document = DocumentId { plan: *plan, compartment: *compartment };
                    if change.lost_reads.contains(compartment) {
                        rows::delete_user_envelopes(tx, document, user)?;
                    }
                    rows::queue_rotation(tx, document, now)?;
                }
            }
            if !change.gained_reads.is_empty() && !plans.is_empty() {
                let granted = rows::advance_head(tx, 1)?;
                for plan in &plans {
                    rows::set_granted_at(tx, plan, user, granted)?;
                }
            }
            rows::pending_rotations(tx)
        })
    }

    fn older_certificates(&self, id: DeviceId) -> Result<Vec<Vec<u8>>> {
        self.read(|conn| rows::older_certificates(conn, id))
    }

    fn wipe_order(&self, id: DeviceId) -> Result<Option<Vec<u8>>> {
        self.read(|conn| rows::wipe_order(conn, id))
    }

    fn record_wipe(&self, id: DeviceId, report: &[u8], seen: &WipeGuard, now: i64) -> Result<bool> {
        self.write(|tx| {
            let device = rows::device(tx, id)?.ok_or(StorageError::NotFound)?;
            if WipeGuard::of(&device) != *seen {
                return Ok(false);
            }
            rows::insert_wipe_report(tx, id, report, now)?;
            Ok(true)
        })
    }

    fn record_session(
        &self,
        id: DeviceId,
        wipe_nonce_hash: Option<[u8; 32]>,
        now: i64,
    ) -> Result<SessionRecorded> {
        self.write(|tx| {
            if rows::device_state(tx, id)?.is_none() {
                return Err(StorageError::NotFound);
            }
            let wipe_report_cleared = rows::record_session(tx, id, wipe_nonce_hash, now)?;
            Ok(SessionRecorded { wipe_report_cleared })
        })
    }

    fn record_device_name(&self, id: DeviceId, name: &StoredName) -> Result<()> {
        self.write(|tx| {
            if !rows::set_device_name(tx, id, name)? {
                return Err(StorageError::NotFound);
            }
            Ok(())
        })
    }

    fn record_last_seen(&self, id: DeviceId, now: i64) -> Result<()> {
        self.write(|tx| rows::set_last_seen(tx, id, now))
    }

    fn register_plan(&self, plan: PlanId, creator: UserId, created_by: DeviceId, now: i64) -> Result<bool> {
        self.write(|tx| {
            require_active(tx, created_by)?;
            // An erased plan stays erased: as if another user held it, nothing changes.
            if rows::erased_at(tx, &plan)?.is_some() {
                return Ok(false);
            }
            if let Some(existing) = rows::plan_creator(tx, &plan)? {
                return Ok(existing == creator);
            }
            if !rows::user_exists(tx, creator)? {
                return Err(StorageError::NotFound);
            }
            rows::insert_plan(tx, &plan, creator, created_by, now)?;
            let granted = rows::advance_head(tx, 1)?;
            rows::insert_participant(tx, &plan, creator, CREATOR_PLAN_ROLE, granted)?;
            Ok(true)
        })
    }

    fn register_chartered_plan(&self, plan: &CharteredPlan) -> Result<bool> {
        self.write(|tx| {
            require_active(tx, plan.created_by)?;
            // An erased plan stays erased: as if another user held it, nothing changes.
            if rows::erased_at(tx, &plan.plan)?.is_some() {
                return Ok(false);
            }
            if let Some(existing) = rows::plan_creator(tx, &plan.plan)? {
                return Ok(existing == plan.creator);
            }
            if !rows::user_exists(tx, plan.creator)? {
                return Err(StorageError::NotFound);
            }
            rows::insert_plan(tx, &plan.plan, plan.creator, plan.created_by, plan.now)?;
            let position = rows::advance_head(tx, 1)?;
            rows::insert_membership(tx, &plan.plan, 1, &plan.charter, position)?;
            rows::set_roster(tx, &plan.plan, &plan.roster, eenplan_protocol::membership::LEVELS[0])?;
            let granted = rows::advance_head(tx, 1)?;
            rows::insert_participant(tx, &plan.plan, plan.creator, &plan.creator_role, granted)?;
            Ok(true)
        })
    }

    fn roster(&self, plan: PlanId) -> Result<Option<(u32, Vec<u8>)>> {
        self.read(|conn| rows::roster(conn, &plan))
    }

    fn append_membership(&self, update: &MembershipUpdate) -> Result<u64> {
        known_compartments(update.rotate.iter().copied())?;
        self.write(|tx| append_membership_in(tx, update))
    }

    fn append_erasure(&self, update: &MembershipUpdate) -> Result<MemberErased> {
        let erasure =
            update.erasure.as_ref().ok_or_else(|| StorageError::InvalidState("no erasure".into()))?;
        known_compartments(
            std::iter::once(erasure.document).chain(erasure.envelopes.iter().map(|e| e.document)),
        )?;
        let erased = self.write(|tx| {
            append_membership_in(tx, update)?;
            erase_older_epochs(tx, erasure, update.now)
        })?;
        // As for a whole plan: the deleted cells are zeroed (`secure_delete`) in the pages
        // this commit wrote; the checkpoint puts them over the file and truncates the WAL.
        self.checkpoint_truncate()?;
        Ok(erased)
    }

    fn closed_plans(&self) -> Result<Vec<(PlanId, i64)>> {
        self.read(rows::closed_plans)
    }

    fn closed_at(&self, plan: PlanId) -> Result<Option<i64>> {
        self.read(|conn| rows::closed_at(conn, &plan))
    }

    fn erased_at(&self, plan: PlanId) -> Result<Option<i64>> {
        self.read(|conn| rows::erased_at(conn, &plan))
    }

    fn erase_plan(&self, plan: PlanId, now: i64) -> Result<Erasure> {
        let erasure = self.write(|tx| {
            if let Some(erased_at) = rows::erased_at(tx, &plan)? {
                return Ok(Erasure { erased_at, already: true, ..Erasure::default() });
            }
            if rows::plan_creator(tx, &plan)?.is_none() {
                return Err(StorageError::NotFound);
            }
            rows::erase_plan(tx, &plan, now)
        })?;
        // `secure_delete` zeroed the deleted cells and freed pages in the pages this commit
        // wrote to the WAL; the checkpoint puts them over the old pages in the file, and the
        // truncation leaves no frame with a copy.
        self.checkpoint_truncate()?;
        Ok(erasure)
    }

    fn membership_entries(&self, plan: PlanId, after: u32) -> Result<Vec<Vec<u8>>> {
        self.read(|conn| rows::membership_entries(conn, &plan, after))
    }

    fn membership_for(&self, user: UserId, after: u64, limit: (usize, usize)) -> Result<MembershipPage> {
        self.read(|conn| {
            let head = rows::head(conn)?;
            Ok(super::whole_chains_page(rows::membership_after(conn, user, after)?, after, head, limit))
        })
    }

    fn rotations_for(&self, user: UserId) -> Result<Vec<(DocumentId, u32)>> {
        self.read(|conn| {
            rows::chartered_rotations_for(conn, user)?
                .into_iter()
                .map(|document| Ok((document, rows::current_epoch(conn, document)?.saturating_add(1))))
                .collect()
        })
    }

    fn add_participant(&self, plan: PlanId, user: UserId, plan_role: &str) -> Result<()> {
        self.write(|tx| {
            if rows::plan_creator(tx, &plan)?.is_none() || !rows::user_exists(tx, user)? {
                return Err(StorageError::NotFound);
            }
            match rows::participant_role(tx, &plan, user)? {
                // The grant keeps its position: the user's devices already follow the plan, and
                // which compartments they read follows the user's role, not the plan role.
                Some(_) => rows::set_participant_role(tx, &plan, user, plan_role),
                None => {
                    let granted = rows::advance_head(tx, 1)?;
                    rows::insert_participant(tx, &plan, user, plan_role, granted)
                }
            }
        })
    }

    fn remove_participant(&self, plan: PlanId, user: UserId, now: i64) -> Result<u64> {
        self.write(|tx| {
            // What the user could read, before the participation that grants it goes.
            let lost = rows::readable_in_plan(tx, &plan, user)?;
            rows::delete_participant(tx, &plan, user)?;
            for document in lost {
                rows::queue_rotation(tx, document, now)?;
            }
            rows::pending_rotations(tx)
        })
    }

    fn participants(&self, plan: PlanId) -> Result<Vec<Participant>> {
        self.read(|conn| rows::participants(conn, &plan))
    }

    fn is_participant(&self, plan: PlanId, user: UserId) -> Result<bool> {
        self.read(|conn| Ok(rows::participant_role(conn, &plan, user)?.is_some()))
    }

    fn plans_of_user(&self, user: UserId) -> Result<Vec<PlanId>> {
        self.read(|conn| rows::plans_of_user(conn, user))
    }

    fn plan_levels_of_user(&self, user: UserId) -> Result<Vec<(PlanId, String)>> {
        self.read(|conn| rows::plan_levels_of_user(conn, user))
    }

    fn readable_documents(&self, user: UserId) -> Result<Vec<(DocumentId, u64)>> {
        self.read(|conn| rows::readable(conn, user))
    }

    fn readers(&self, document: DocumentId) -> Result<Vec<Reader>> {
        self.read(|conn| rows::readers(conn, document))
    }

    fn policy(&self) -> Result<Option<PolicyRecord>> {
        self.read(rows::policy)
    }

    fn set_policy(&self, record: &PolicyRecord, now: i64) -> Result<u64> {
        self.write(|tx| {
            let old = rows::policy(tx)?;
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
                for (plan, user) in rows::participants_with_role(tx, &role)? {
                    let document = DocumentId { plan, compartment };
                    rows::delete_user_envelopes(tx, document, user)?;
                    rows::queue_rotation(tx, document, now)?;
                }
            }
            // Writes taken away (reads kept): the keys stay, but the new epoch is where the
            // new write rules start for every receiver.
            for (role, compartment) in old.lost_writes(&record.policy) {
                for (plan, _) in rows::participants_with_role(tx, &role)? {
                    rows::queue_rotation(tx, DocumentId { plan, compartment }, now)?;
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
                regranted.extend(rows::participants_with_role(tx, role)?);
            }
            // Only a grant that someone receives takes a position.
            if !regranted.is_empty() {
                let granted = rows::advance_head(tx, 1)?;
                for (plan, user) in regranted {
                    rows::set_granted_at(tx, &plan, user, granted)?;
                }
            }
            rows::replace_policy(tx, record, now)?;
            rows::pending_rotations(tx)
        })
    }

    fn policy_version(&self, version: u32) -> Result<Option<Vec<u8>>> {
        self.read(|conn| rows::policy_version(conn, version))
    }

    fn put_revocation_list(&self, list: &RevocationListRecord, now: i64) -> Result<bool> {
        self.write(|tx| {
            let newest = rows::revocation_list(tx, None)?;
            if let Some((version, signed)) = rows::revocation_list(tx, Some(list.version))? {
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
            rows::insert_revocation_list(tx, list.version, &list.signed, now)?;
            for device in &list.devices {
                rows::insert_revocation_entry(tx, *device, list.version)?;
            }
            Ok(true)
        })
    }

    fn revocation_list(&self, version: Option<u32>) -> Result<Option<(u32, Vec<u8>)>> {
        self.read(|conn| rows::revocation_list(conn, version))
    }

    fn on_revocation_list(&self, device: DeviceId) -> Result<bool> {
        self.read(|conn| rows::on_revocation_list(conn, device))
    }

    fn put_commitment(
        &self,
        commitment: &CommitmentRecord,
        policy_version: u32,
    ) -> Result<CommitmentOutcome> {
        known_compartments(std::iter::once(commitment.document))?;
        self.write(|tx| {
            if let Some(minter) = commitment.minter_device {
                let user = require_active(tx, minter)?.user;
                let document = commitment.document;
                if !rows::readable_in_plan(tx, &document.plan, user)?.contains(&document) {
                    return Ok(CommitmentOutcome::NoAccess);
                }
            }
            let current = rows::policy_version_in_force(tx)?.unwrap_or(0);
            if policy_version != current {
                return Ok(CommitmentOutcome::OtherPolicy { current });
            }
            Ok(if rows::insert_commitment(tx, commitment)? {
                CommitmentOutcome::Stored
            } else {
                CommitmentOutcome::Exists
            })
        })
    }

    fn commitment(&self, document: DocumentId, epoch: u32) -> Result<Option<CommitmentRecord>> {
        self.read(|conn| rows::commitment(conn, document, epoch))
    }

    fn current_epoch(&self, document: DocumentId) -> Result<u32> {
        self.read(|conn| rows::current_epoch(conn, document))
    }

    fn unminted_documents(&self, user: UserId) -> Result<Vec<DocumentId>> {
        self.read(|conn| rows::unminted_documents(conn, user))
    }

    fn held_keys(&self, device: DeviceId) -> Result<Vec<(DocumentId, u32)>> {
        self.read(|conn| rows::held_keys(conn, device))
    }

    fn rotation_pending(&self, document: DocumentId) -> Result<bool> {
        self.read(|conn| rows::rotation_pending_before(conn, document, u32::MAX))
    }

    fn pending_rotations(&self) -> Result<u64> {
        self.read(rows::pending_rotations)
    }

    fn rotation_tasks(&self, limit: usize) -> Result<Vec<RotationTask>> {
        self.read(|conn| {
            let limit = u64::try_from(limit).unwrap_or(u64::MAX);
            rows::oldest_rotations(conn, limit)?
                .into_iter()
                .map(|(document, queued_at)| {
                    Ok(RotationTask {
                        document,
                        current_epoch: rows::current_epoch(conn, document)?,
                        queued_at,
                        readers: rows::readers(conn, document)?,
                    })
                })
                .collect()
        })
    }

    fn complete_rotation(&self, rotation: &CompletedRotation) -> Result<u64> {
        let document = rotation.document;
        known_compartments(std::iter::once(document).chain(rotation.envelopes.iter().map(|e| e.document)))?;
        self.write(|tx| {
            let current = rows::current_epoch(tx, document)?;
            if current.checked_add(1) != Some(rotation.new_epoch) {
                return Err(StorageError::InvalidState(format!(
                    "the document is at epoch {current}; the next epoch is {}",
                    u64::from(current) + 1
                )));
            }
            if !rows::rotation_pending_before(tx, document, rotation.new_epoch)? {
                return Err(StorageError::InvalidState("no rotation of the document is waiting".into()));
            }
            if let Some(minter) = rotation.minter_device {
                let user = require_active(tx, minter)?.user;
                if !rows::readable_in_plan(tx, &document.plan, user)?.contains(&document) {
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
            if !rows::insert_commitment(tx, &commitment)? {
                return Err(StorageError::InvalidState("the epoch has a commitment already".into()));
            }
            put_envelopes_in(tx, &rotation.envelopes)?;
            rows::settle_rotations(tx, document, rotation.new_epoch)?;
            rows::pending_rotations(tx)
        })
    }

    fn push_batch(&self, items: &[NewBundle]) -> Result<Vec<PushOutcome>> {
        known_compartments(items.iter().map(|b| b.document))?;
        if items.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|tx| {
            let start = rows::head(tx)?;
            let mut head = start;
            let mut outcomes = Vec::with_capacity(items.len());
            let mut revoked: std::collections::HashMap<DeviceId, bool> = std::collections::HashMap::new();
            for item in items {
                // Checked again here, in the transaction that writes: the route checked
                // before the group commit, and a revocation may have committed since.
                let author_revoked = match revoked.entry(item.author) {
                    std::collections::hash_map::Entry::Occupied(entry) => *entry.get(),
                    std::collections::hash_map::Entry::Vacant(entry) => {
                        *entry.insert(rows::device_state(tx, item.author)? == Some(DeviceState::Revoked))
                    }
                };
                if author_revoked {
                    outcomes
                        .push(PushOutcome::Refused { reason: eenplan_protocol::sync::REJECT_AUTHOR_REVOKED });
                    continue;
                }
                if rows::rotation_pending_before(tx, item.document, u32::MAX)? {
                    outcomes.push(PushOutcome::Refused { reason: eenplan_protocol::sync::REJECT_ROTATING });
                    continue;
                }
                if item.epoch < rows::current_epoch(tx, item.document)? {
                    outcomes
                        .push(PushOutcome::Refused { reason: eenplan_protocol::sync::REJECT_STALE_EPOCH });
                    continue;
                }
                let seq = head + 1;
                let covers = match item.kind {
                    BundleKind::Snapshot { covers } => {
                        // A retried upload is found, not refused: its request is gone.
                        if let Some(seq) = rows::seq_of_bundle(tx, &item.bundle_id)? {
                            outcomes.push(PushOutcome::Duplicate { seq });
                            continue;
                        }
                        let since = item.received_at.saturating_sub(SNAPSHOT_REQUEST_TTL_MS);
                        if !rows::take_snapshot_request(tx, item.author, item.document, covers, since)? {
                            outcomes.push(PushOutcome::Refused {
                                reason: eenplan_protocol::sync::REJECT_UNREQUESTED_SNAPSHOT,
                            });
                            continue;
                        }
                        Some(covers)
                    }
                    BundleKind::Changes => None,
                };
                if rows::insert_bundle(tx, seq, item, covers)? {
                    head = seq;
                    outcomes.push(PushOutcome::Appended { seq });
                } else {
                    let seq = rows::seq_of_bundle(tx, &item.bundle_id)?.ok_or_else(|| {
                        StorageError::Corrupt("a bundle id conflicts but its row is missing".into())
                    })?;
                    outcomes.push(PushOutcome::Duplicate { seq });
                }
            }
            if head != start {
                rows::set_head(tx, head)?;
            }
            Ok(outcomes)
        })
    }

    fn head(&self) -> Result<u64> {
        self.read(rows::head)
    }

    fn pull_page(&self, request: &PullRequest) -> Result<PullBatch> {
        let page = self.read(|conn| pull::pull(&rows::SqliteLog(conn), request))?;
        let Some(point) = page.resume else { return Ok(page.batch) };
        let token =
            self.write(|tx| rows::insert_resume_point(tx, request.device, &point, page.presented_token))?;
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
        self.write(|tx| {
            if covers > rows::head(tx)? {
                return Err(StorageError::InvalidState(
                    "a snapshot cannot cover more than the log holds".into(),
                ));
            }
            rows::expire_snapshot_requests(tx, since)?;
            let mut outstanding: std::collections::BTreeSet<DocumentId> =
                rows::snapshot_requests_of(tx, device, since)?.into_iter().map(|(d, _)| d).collect();
            let mut asked = Vec::new();
            for &document in documents {
                let full =
                    outstanding.len() >= MAX_SNAPSHOT_REQUESTS_PER_DEVICE && !outstanding.contains(&document);
                if full || rows::snapshot_requested_elsewhere(tx, document, device, since)? {
                    continue;
                }
                rows::upsert_snapshot_request(tx, device, document, covers, now)?;
                outstanding.insert(document);
                asked.push(document);
            }
            Ok(asked)
        })
    }

    fn snapshot_requests(&self, device: DeviceId, now: i64) -> Result<Vec<(DocumentId, u64)>> {
        self.read(|conn| {
            rows::snapshot_requests_of(conn, device, now.saturating_sub(SNAPSHOT_REQUEST_TTL_MS))
        })
    }

    fn document_stats(&self, document: DocumentId) -> Result<DocStats> {
        self.read(|conn| rows::document_stats(conn, document))
    }

    fn put_envelopes(&self, sealer: DeviceId, envelopes: &[Envelope]) -> Result<Vec<EnvelopeOutcome>> {
        known_compartments(envelopes.iter().map(|e| e.document))?;
        self.write(|tx| {
            require_active(tx, sealer)?;
            envelopes.iter().map(|envelope| put_sealed_envelope(tx, sealer, envelope)).collect()
        })
    }

    fn refuse_envelopes(&self, recipient: DeviceId, refusals: &[EnvelopeRefusal]) -> Result<u64> {
        known_compartments(refusals.iter().map(|r| r.document))?;
        self.write(|tx| {
            require_active(tx, recipient)?;
            let mut deleted = 0;
            for refusal in refusals {
                let Some(stored) = rows::envelope_sealer(tx, recipient, refusal.document, refusal.epoch)?
                else {
                    continue;
                };
                if stored.is_some_and(|sealer| sealer != refusal.sealer) {
                    continue;
                }
                rows::delete_envelope(tx, recipient, refusal.document, refusal.epoch)?;
                deleted += 1;
                if stored.is_some() {
                    rows::insert_refused_sealer(
                        tx,
                        recipient,
                        refusal.document,
                        refusal.epoch,
                        refusal.sealer,
                    )?;
                }
            }
            Ok(deleted)
        })
    }

    fn envelopes_for(&self, device: DeviceId, since: u64) -> Result<Vec<Envelope>> {
        self.read(|conn| rows::envelopes_for(conn, device, since))
    }

    fn escrow_envelopes(&self, plan: PlanId) -> Result<Vec<Envelope>> {
        self.read(|conn| rows::escrow_envelopes(conn, &plan))
    }

    fn devices_missing_envelope(&self, document: DocumentId, epoch: u32) -> Result<Vec<DeviceId>> {
        self.read(|conn| rows::devices_missing_envelope(conn, document, epoch))
    }

    fn put_audit_uploads(&self, uploads: &[NewAuditUpload]) -> Result<Vec<bool>> {
        self.write(|tx| {
            let mut stored = Vec::with_capacity(uploads.len());
            for upload in uploads {
                require_active(tx, upload.device)?;
                stored.push(rows::insert_audit_upload(tx, upload)?);
            }
            Ok(stored)
        })
    }

    fn audit_through(&self, device: DeviceId) -> Result<u64> {
        self.read(|conn| rows::audit_through(conn, device))
    }

    fn audit_uploads(&self, org: OrgId, after: u64, limit: usize) -> Result<Vec<StoredAuditUpload>> {
        let limit = u64::try_from(limit).unwrap_or(u64::MAX);
        self.read(|conn| rows::audit_uploads(conn, org, after, limit))
    }

    fn put_audit_key(&self, key: &AuditKeyRecord) -> Result<bool> {
        self.write(|tx| {
            if !rows::orgs(tx)?.iter().any(|o| o.id == key.org) {
                return Err(StorageError::NotFound);
            }
            let keys = rows::audit_keys(tx, key.org)?;
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
            rows::insert_audit_key(tx, key)?;
            Ok(true)
        })
    }

    fn audit_keys(&self, org: OrgId) -> Result<Vec<AuditKeyRecord>> {
        self.read(|conn| rows::audit_keys(conn, org))
    }

    fn server_audit_seed(&self) -> Result<[u8; 32]> {
        if let Some(seed) = self.read(rows::server_audit_seed)? {
            return Ok(seed);
        }
        let fresh = fresh_secret()?;
        self.write(|tx| rows::ensure_server_audit_seed(tx, &fresh))
    }

    fn append_server_events(&self, events: &[ServerEventRecord]) -> Result<()> {
        self.write(|tx| {
            let next = rows::last_server_event(tx)?.map_or(0, |e| e.seq) + 1;
            for (expected, event) in (next..).zip(events) {
                if event.seq != expected {
                    return Err(StorageError::Conflict(format!(
                        "server event {} does not continue the chain at {expected}",
                        event.seq
                    )));
                }
                rows::insert_server_event(tx, event)?;
            }
            Ok(())
        })
    }

    fn server_events(&self, after: u64, limit: usize) -> Result<Vec<ServerEventRecord>> {
        let limit = u64::try_from(limit).unwrap_or(u64::MAX);
        self.read(|conn| rows::server_events(conn, after, limit))
    }

    fn last_server_event(&self) -> Result<Option<ServerEventRecord>> {
        self.read(rows::last_server_event)
    }
}

fn fresh_secret() -> Result<[u8; 32]> {
    let mut fresh = [0u8; 32];
    getrandom::fill(&mut fresh)
        .map_err(|e| StorageError::Backend(format!("no randomness for a secret: {e}")))?;
    Ok(fresh)
}

/// The device `id` as it stands in this transaction, if it is active.
fn require_active(conn: &Connection, id: DeviceId) -> Result<DeviceRecord> {
    match rows::device(conn, id)? {
        None => Err(StorageError::NotFound),
        Some(device) if device.state == DeviceState::Active => Ok(device),
        Some(_) => Err(StorageError::DeviceNotActive),
    }
}

/// One envelope a device sealed, inside the caller's transaction.
fn put_sealed_envelope(
    tx: &Transaction<'_>,
    sealer: DeviceId,
    envelope: &Envelope,
) -> Result<EnvelopeOutcome> {
    let stored = if envelope.recipient.0 == eenplan_protocol::api::ESCROW_RECIPIENT {
        rows::insert_escrow_envelope(tx, envelope)?
    } else {
        match rows::device_state(tx, envelope.recipient)? {
            None | Some(DeviceState::Revoked) => return Ok(EnvelopeOutcome::NoRecipient),
            Some(DeviceState::Pending | DeviceState::Active) => {}
        }
        if rows::sealer_refused(tx, envelope.recipient, envelope.document, envelope.epoch, sealer)? {
            return Ok(EnvelopeOutcome::SealerRefused);
        }
        rows::insert_envelope(tx, envelope, Some(sealer))?
    };
    Ok(if stored { EnvelopeOutcome::Stored } else { EnvelopeOutcome::Exists })
}

/// Appends a verified membership entry and what it changes (see
/// [`Storage::append_membership`]); the caller's transaction.
fn append_membership_in(tx: &Transaction<'_>, update: &MembershipUpdate) -> Result<u64> {
    if let Some(device) = update.by_device {
        require_active(tx, device)?;
    }
    let held = rows::roster(tx, &update.plan)?.map(|(seq, _)| seq);
    if held.and_then(|seq| seq.checked_add(1)) != Some(update.seq) {
        return Err(StorageError::Conflict(format!(
            "the chain is at entry {}, not {}",
            held.unwrap_or(0),
            update.seq.saturating_sub(1)
        )));
    }
    let position = rows::advance_head(tx, 1)?;
    rows::insert_membership(tx, &update.plan, update.seq, &update.signed, position)?;
    rows::set_roster(tx, &update.plan, &update.roster, &update.level)?;
    if let Some(closed_at) = update.closed_at {
        rows::set_closed_at(tx, &update.plan, closed_at)?;
    }
    for (user, role) in &update.add {
        if !rows::user_exists(tx, *user)? {
            return Err(StorageError::NotFound);
        }
        if rows::participant_role(tx, &update.plan, *user)?.is_none() {
            let granted = rows::advance_head(tx, 1)?;
            rows::insert_participant(tx, &update.plan, *user, role, granted)?;
        }
        rows::forget_leaver(tx, &update.plan, *user)?;
    }
    for user in &update.remove {
        rows::delete_participant(tx, &update.plan, *user)?;
        rows::record_leaver(tx, &update.plan, *user, update.seq)?;
    }
    if !update.regrant.is_empty() {
        let granted = rows::advance_head(tx, 1)?;
        for user in &update.regrant {
            rows::set_granted_at(tx, &update.plan, *user, granted)?;
        }
    }
    for document in &update.rotate {
        rows::queue_rotation(tx, *document, update.now)?;
    }
    rows::pending_rotations(tx)
}

/// The writes and deletions of a member's erasure ([`MemberErasure`]), after its entry.
fn erase_older_epochs(tx: &Transaction<'_>, erasure: &MemberErasure, now: i64) -> Result<MemberErased> {
    let document = erasure.document;
    let current = rows::current_epoch(tx, document)?;
    if current.checked_add(1) != Some(erasure.epoch) {
        return Err(StorageError::InvalidState(format!(
            "the document is at epoch {current}; an erasure makes epoch {}",
            u64::from(current) + 1
        )));
    }
    if rows::document_has_bundle_after(tx, document, erasure.covers)? {
        return Err(StorageError::Conflict("a bundle of the document came after the erasure's base".into()));
    }
    let erased = rows::delete_document_epochs_before(tx, document, erasure.epoch)?;
    if !rows::insert_commitment(tx, &erasure.commitment)? {
        return Err(StorageError::InvalidState("the epoch has a commitment already".into()));
    }
    put_envelopes_in(tx, &erasure.envelopes)?;
    rows::settle_rotations(tx, document, erasure.epoch)?;
    let seq = rows::advance_head(tx, 1)?;
    let base = NewBundle { received_at: now, ..erasure.base.clone() };
    if !rows::insert_bundle(tx, seq, &base, Some(erasure.covers))? {
        return Err(StorageError::Conflict("the base's bundle id is taken".into()));
    }
    Ok(erased)
}

/// An administrator's envelopes for a rotation, inside the caller's transaction: escrow ones
/// apart (the first per document and epoch stays), device ones at a new log position (the
/// first per recipient, document and epoch stays). An unknown or revoked recipient fails the
/// whole rotation.
fn put_envelopes_in(tx: &Transaction<'_>, envelopes: &[Envelope]) -> Result<()> {
    for envelope in envelopes {
        if envelope.recipient.0 == eenplan_protocol::api::ESCROW_RECIPIENT {
            rows::insert_escrow_envelope(tx, envelope)?;
            continue;
        }
        match rows::device_state(tx, envelope.recipient)? {
            None => return Err(StorageError::NotFound),
            Some(DeviceState::Revoked) => {
                return Err(StorageError::InvalidState("the recipient is revoked".into()));
            }
            Some(DeviceState::Pending | DeviceState::Active) => {
                rows::insert_envelope(tx, envelope, None)?;
            }
        }
    }
    Ok(())
}
