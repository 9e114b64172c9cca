//! The encrypted, crash-safe local store.
//!
//! One SQLite file (WAL, `synchronous=FULL`, exclusive lock: one writer, one process). Every
//! value that carries plan content or key material is sealed with XChaCha20-Poly1305 under a
//! subkey of the device's data key, with associated data `eenplan/v1|table|row key`, so a
//! value copied into another row, document or table fails to open. Lookup keys that would
//! reveal which plans a device holds are HMAC-SHA-256 of the plan id under a second subkey.
//!
//! An edit is one SQLite transaction that appends each new automerge change to the
//! document's change table and, for changes this device wrote, counts it in the document's
//! outbox counter. Opening a document loads the sealed snapshot and applies the changes after
//! it. When a document has gathered [`COMPACT_AFTER_CHANGES`] changes, the same transaction
//! replaces them by a new snapshot (`save()`), so a plan with years of history opens with one
//! decryption and one load.
//!
//! The outbox needs no copy of the changes: an automerge document keeps its whole history, so
//! "this device's changes not covered by the pushed heads" is exactly what awaits a push, and
//! a snapshot can never drop unsent work.
//!
//! ```text
//! meta      (name)            wrapped data key (the KeyStore's blob), schema facts
//! secrets   (name)            sealed device identity
//! plans     (plan_key)        sealed header: plan id, family name
//! documents (doc_key)         plan_key, sealed snapshot and its generation, next change seq,
//!                             change rows since the snapshot, unpushed own changes (outbox),
//!                             sealed heads up to which own changes are sealed into bundles
//! changes   (doc_key, seq)    sealed automerge change
//! sync_state (name)           sealed: server, pinned root, certificates, cursor, lease
//! doc_keys  (doc_key, epoch)  sealed document epoch keys
//! epoch_rules (doc_key, epoch) sealed write rules of the epoch (policy version, start)
//! pending_bundles (bundle id) sealed bundles pushed but not yet acknowledged
//! certificates (device_key)   sealed certificates of bundle authors, verified
//! parked_bundles (id)         sealed received bundles whose key has not arrived yet
//! parked_witnesses (id)       sealed witnesses of the parked snapshots
//! membership (plan_key)       sealed verified membership chain of the plan
//! review_marks (doc_key)      sealed heads (and time) the reader last marked reviewed
//! audit_events (seq)          sealed signed access-log events, until the server keeps them
//! read_models (plan_key)      sealed read model of the plan and the stamp of the rows above
//!                             it was computed from (a cache, `crate::read_model`)
//! ```

mod audit_records;
mod migrations;
mod read_models;
mod records;
mod retire;
mod review_marks;
mod shred;
mod sync_records;

use std::path::{Path, PathBuf};

use automerge::Automerge;
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use crate::crypto::SecretKey;
use crate::identity::DeviceIdentity;
use crate::ids::PlanId;
use crate::keystore::{KeyStore, KeyStoreError};
use crate::plan::{Compartment, Plan};

pub use records::{PlanHeader, StoredPlan};

/// A document key and its epoch.
pub type EpochKey = (u32, zeroize::Zeroizing<[u8; 32]>);
/// A bundle awaiting acknowledgement: its id and its stored payload.
pub type PendingBundle = ([u8; 16], Vec<u8>);

/// File name of the database inside the device's data directory.
pub const DB_FILE: &str = "eenplan.db";
/// A document's change rows are folded into its snapshot when they reach this many.
pub const COMPACT_AFTER_CHANGES: u64 = 64;

/// Errors of the local store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("another eenplan process is using this data directory")]
    Busy,
    #[error("the store is damaged: {0}")]
    Corrupt(String),
    #[error("plan {plan} is damaged on this device ({what}); other plans are unaffected")]
    CorruptPlan { plan: PlanId, what: String },
    #[error("a stored plan entry is damaged ({0}); other plans are unaffected")]
    CorruptPlanEntry(String),
    #[error("the store was written by a newer eenplan (schema {found}, this one knows {known})")]
    NewerSchema { found: i64, known: i64 },
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy,
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Sqlite(e),
        }
    }
}

/// Failing to open the store: either the keystore refused, or the store itself.
#[derive(Debug, thiserror::Error)]
pub enum OpenStoreError {
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no store at {0}")]
    Missing(PathBuf),
    #[error("a store already exists at {0}")]
    Exists(PathBuf),
    /// The store's key material was destroyed by a wipe; the bytes are the record the wipe
    /// left (see `crate::wipe`), so that an interrupted wipe can be completed.
    #[error("the store at this path was wiped")]
    Wiped(Vec<u8>),
}

/// Subkeys of the data key, one per purpose.
pub(crate) struct StoreKeys {
    seal: SecretKey,
    lookup: SecretKey,
}

impl StoreKeys {
    fn from_data_key(data_key: &SecretKey) -> Self {
        Self {
            seal: data_key.derive(b"eenplan/store/seal/v1"),
            lookup: data_key.derive(b"eenplan/store/lookup/v1"),
        }
    }

    pub(crate) fn plan_key(&self, plan: PlanId) -> [u8; 32] {
        self.lookup.keyed_hash(&[b"plan|".as_slice(), plan.as_bytes()].concat())
    }

    pub(crate) fn doc_key(&self, plan: PlanId, compartment: Compartment) -> [u8; 32] {
        self.lookup.keyed_hash(
            &[b"doc|".as_slice(), plan.as_bytes(), b"|", compartment.as_str().as_bytes()].concat(),
        )
    }
}

/// The open store. Owns the only connection; all writes go through it.
pub struct Store {
    conn: Connection,
    keys: StoreKeys,
    /// Kept (zeroised on drop) so that the offline lease can re-wrap it under a key that
    /// expires, without asking the platform keystore to unwrap it again (which may need the
    /// user's authentication).
    data_key: SecretKey,
    path: PathBuf,
    /// False from the moment [`Store::write_light`] lowers `synchronous` until it is `FULL`
    /// again: every other commit first makes sure it is, so a failed restore can never let an
    /// edit be acknowledged before it is on stable storage.
    synchronous_full: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish_non_exhaustive()
    }
}

fn connect(path: &Path, create: bool) -> Result<Connection, StoreError> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)?;
    // The store has one owner (the exclusive lock below). A second open must hear `Busy` at
    // once instead of waiting out rusqlite's default busy timeout (5 s) for a lock that is
    // held until the owner closes.
    conn.busy_timeout(std::time::Duration::ZERO)?;
    if create {
        // Only takes effect before the first table exists: lets compaction give pages back.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    }
    // Exclusive locking before WAL: one process owns the store (two writers with the same
    // automerge actor would fork its history), and no shared-memory index is created.
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt(format!("journal mode {mode} instead of WAL")));
    }
    // FULL: a commit is on stable storage before the edit is acknowledged.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.pragma_update(None, "cell_size_check", "ON")?;
    conn.pragma_update(None, "trusted_schema", "OFF")?;
    // The bundled SQLite is built with STAT4, whose planner lets a bound value choose the
    // plan, so each new binding expired a cached statement and SQLite parsed it again (a
    // document's rows are read by one cached statement per document). One plan per statement.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    // The WAL is reused after each checkpoint; without a limit it keeps its largest size.
    conn.pragma_update(None, "journal_size_limit", 1024 * 1024)?;
    // Take the exclusive lock now, so a second process fails at open, not at its first edit.
    conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")?;
    Ok(conn)
}

impl Store {
    /// Creates a new store with a fresh data key (wrapped by `keystore`) and device identity.
    pub fn create(dir: &Path, keystore: &dyn KeyStore) -> Result<(Store, DeviceIdentity), OpenStoreError> {
        let path = dir.join(DB_FILE);
        if path.exists() {
            return Err(OpenStoreError::Exists(path));
        }
        let mut conn = connect(&path, true)?;
        let data_key = SecretKey::generate();
        let wrapped = keystore.wrap(&data_key)?;
        let keys = StoreKeys::from_data_key(&data_key);
        let identity = DeviceIdentity::generate();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(StoreError::from)?;
        migrations::migrate(&tx)?;
        records::put_meta(&tx, records::META_WRAPPED_KEY, &wrapped)?;
        records::put_secret(&tx, &keys, records::SECRET_IDENTITY, &identity.to_secret_bytes())?;
        tx.commit().map_err(StoreError::from)?;
        Ok((Store { conn, keys, data_key, path, synchronous_full: true }, identity))
    }

    /// Opens an existing store, unwrapping its data key with `keystore`.
    pub fn open(dir: &Path, keystore: &dyn KeyStore) -> Result<(Store, DeviceIdentity), OpenStoreError> {
        let path = dir.join(DB_FILE);
        if !path.exists() {
            return Err(OpenStoreError::Missing(path));
        }
        let mut conn = connect(&path, false)?;
        {
            let tx =
                conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(StoreError::from)?;
            migrations::migrate(&tx)?;
            tx.commit().map_err(StoreError::from)?;
        }
        if let Some(record) = records::get_meta(&conn, shred::META_WIPED)? {
            return Err(OpenStoreError::Wiped(record));
        }
        let wrapped = records::get_meta(&conn, records::META_WRAPPED_KEY)?
            .ok_or_else(|| StoreError::Corrupt("the wrapped data key is missing".into()))?;
        let data_key = keystore.unwrap(&wrapped)?;
        let keys = StoreKeys::from_data_key(&data_key);
        let secret = records::get_secret(&conn, &keys, records::SECRET_IDENTITY)?;
        let identity = DeviceIdentity::from_secret_bytes(&secret)
            .map_err(|_| StoreError::Corrupt("the device identity is malformed".into()))?;
        Ok((Store { conn, keys, data_key, path, synchronous_full: true }, identity))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn data_key(&self) -> &SecretKey {
        &self.data_key
    }

    #[cfg(test)]
    pub(crate) fn wrapped_key_for_tests(&self) -> Vec<u8> {
        records::get_meta(&self.conn, records::META_WRAPPED_KEY).ok().flatten().unwrap_or_default()
    }

    /// Crypto-shredding: destroys the wrapped data key and the sealed identity, leaves
    /// `record` in their place, and closes the database file (see `shred.rs` for why this
    /// leaves no copy in the WAL or a free page). Afterwards the store is an empty in-memory
    /// database: a call that still reaches it fails instead of recreating files in the wiped
    /// directory, and the keys in memory are replaced (the old ones are zeroised on drop).
    pub(crate) fn shred(&mut self, record: &[u8]) -> Result<(), StoreError> {
        let placeholder = Connection::open_in_memory()?;
        self.ensure_full()?;
        shred::shred(&mut self.conn, record)?;
        drop(std::mem::replace(&mut self.conn, placeholder));
        self.data_key = SecretKey::generate();
        self.keys = StoreKeys::from_data_key(&self.data_key);
        Ok(())
    }

    /// [`Store::shred`] for a store that could not be opened (no key at hand).
    pub(crate) fn shred_at(dir: &Path, record: &[u8]) -> Result<(), StoreError> {
        let mut conn = connect(&dir.join(DB_FILE), false)?;
        shred::shred(&mut conn, record)
    }

    /// The record a wipe left in the store at `dir`, if one did: a wipe interrupted after the
    /// key was destroyed but before the wipe marker was written.
    pub(crate) fn wipe_record_at(dir: &Path) -> Result<Option<Vec<u8>>, StoreError> {
        let conn = connect(&dir.join(DB_FILE), false)?;
        records::get_meta(&conn, shred::META_WIPED)
    }

    /// Re-wraps the data key under another keystore (a new passphrase). No data is rewritten.
    pub fn rewrap(&mut self, current: &dyn KeyStore, new: &dyn KeyStore) -> Result<(), OpenStoreError> {
        let wrapped = records::get_meta(&self.conn, records::META_WRAPPED_KEY)?
            .ok_or_else(|| StoreError::Corrupt("the wrapped data key is missing".into()))?;
        let data_key = current.unwrap(&wrapped)?;
        let rewrapped = new.wrap(&data_key)?;
        self.ensure_full()?;
        let tx =
            self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(StoreError::from)?;
        records::put_meta(&tx, records::META_WRAPPED_KEY, &rewrapped)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(())
    }

    /// Every plan on the device; a damaged entry is reported in place, never hiding the rest.
    pub fn list_plans(&self) -> Result<Vec<Result<PlanHeader, StoreError>>, StoreError> {
        records::list_plan_headers(&self.conn, &self.keys)
    }

    pub fn has_plan(&self, plan: PlanId) -> Result<bool, StoreError> {
        records::plan_exists(&self.conn, &self.keys, plan)
    }

    /// Reads, decrypts and loads every stored compartment document of a plan.
    pub fn load_plan(&self, plan: PlanId) -> Result<StoredPlan, StoreError> {
        records::load_plan(&self.conn, &self.keys, plan)
    }

    /// The plan's read model as [`crate::read_model`] stored it, opened; `Err(CorruptPlan)`
    /// when the row fails authentication.
    pub(crate) fn read_model(&self, plan: PlanId) -> Result<Option<Vec<u8>>, StoreError> {
        read_models::get(&self.conn, &self.keys, plan)
    }

    /// A digest of every stored row that loading `plan` reads, as stored (sealed): it changes
    /// whenever one of them does, by an edit, a sync, a compaction or damage.
    pub(crate) fn documents_stamp(&self, plan: PlanId) -> Result<[u8; 32], StoreError> {
        read_models::documents_stamp(&self.conn, &self.keys, plan)
    }

    /// Durably records new changes of `plan` in one transaction. `header` is written when the
    /// plan is new or its header changed. A compartment whose change rows reach
    /// [`COMPACT_AFTER_CHANGES`] is compacted into a snapshot of the plan's current document in
    /// the same transaction. `to_outbox` is true for changes this device wrote (they await a
    /// push) and false for changes received from others.
    pub fn append_changes(
        &mut self,
        plan: &Plan,
        header: Option<&PlanHeader>,
        changes: &[(Compartment, Vec<Vec<u8>>)],
        to_outbox: bool,
    ) -> Result<(), StoreError> {
        self.write(|w| w.append_changes(plan, header, changes, to_outbox))
    }

    /// Folds a document's change rows into one sealed snapshot of `doc`.
    pub fn compact(
        &mut self,
        plan: PlanId,
        compartment: Compartment,
        doc: &Automerge,
    ) -> Result<(), StoreError> {
        self.ensure_full()?;
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        records::compact(&tx, &self.keys, &self.keys.doc_key(plan, compartment), &doc.save())?;
        tx.commit()?;
        Ok(())
    }

    /// Runs `f` in one immediate transaction: everything it writes commits together or not
    /// at all.
    pub fn write<T>(
        &mut self,
        f: impl FnOnce(&mut StoreWriter<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.ensure_full()?;
        self.transaction(f)
    }

    fn transaction<T>(
        &mut self,
        f: impl FnOnce(&mut StoreWriter<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut writer = StoreWriter { tx: &tx, keys: &self.keys };
        let out = f(&mut writer)?;
        tx.commit()?;
        Ok(out)
    }

    /// [`Store::write`] committed with `synchronous=NORMAL`: in WAL mode the commit survives
    /// a killed process (it is in the WAL) but not a power cut until the next `FULL` commit
    /// or checkpoint syncs the WAL. Only for what [`crate::audit`] records outside a write
    /// (reads, refusals): see its module documentation for why; and for a plan's read model
    /// ([`crate::read_model`]), a cache whose loss costs one loading of the documents. The
    /// connection is back at
    /// `FULL` afterwards, whatever `f` did.
    pub(crate) fn write_light<T>(
        &mut self,
        f: impl FnOnce(&mut StoreWriter<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.ensure_full()?;
        self.synchronous_full = false;
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let out = self.transaction(f);
        self.ensure_full()?;
        out
    }

    /// The connection's `synchronous` setting (2: FULL).
    #[cfg(test)]
    pub(crate) fn synchronous(&self) -> i64 {
        self.conn.query_row("PRAGMA synchronous", [], |row| row.get(0)).unwrap_or(-1)
    }

    /// Puts `synchronous` back to `FULL` if a light write left it lower.
    fn ensure_full(&mut self) -> Result<(), StoreError> {
        if !self.synchronous_full {
            self.conn.pragma_update(None, "synchronous", "FULL")?;
            self.synchronous_full = true;
        }
        Ok(())
    }

    /// Makes every commit so far durable, `NORMAL` ones included: a checkpoint syncs the WAL
    /// before it copies it into the database (SQLite's documented behaviour for
    /// `synchronous` NORMAL and FULL alike). Run before events leave the device.
    pub(crate) fn make_durable(&mut self) -> Result<(), StoreError> {
        self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Up to `limit` access-log events after position `after`, oldest first.
    pub(crate) fn audit_events_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        audit_records::after(&self.conn, &self.keys, after, limit)
    }

    /// How many access-log events wait on this device, and their sealed bytes.
    pub(crate) fn audit_log_size(&self) -> Result<(u64, u64), StoreError> {
        audit_records::size(&self.conn)
    }

    pub fn sync_state(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        sync_records::get_state(&self.conn, &self.keys, name)
    }

    pub fn latest_doc_key(
        &self,
        plan: PlanId,
        compartment: Compartment,
    ) -> Result<Option<EpochKey>, StoreError> {
        sync_records::latest_doc_key(&self.conn, &self.keys, &self.keys.doc_key(plan, compartment))
    }

    pub fn doc_key_at(
        &self,
        plan: PlanId,
        compartment: Compartment,
        epoch: u32,
    ) -> Result<Option<zeroize::Zeroizing<[u8; 32]>>, StoreError> {
        sync_records::doc_key_at(&self.conn, &self.keys, &self.keys.doc_key(plan, compartment), epoch)
    }

    /// Bundles sealed for a push and not yet acknowledged, oldest first.
    pub fn pending_bundles(&self) -> Result<Vec<PendingBundle>, StoreError> {
        sync_records::pending_bundles(&self.conn, &self.keys)
    }

    /// The heads up to which this device's changes of a document are sealed into bundles.
    pub fn sealed_heads(
        &self,
        plan: PlanId,
        compartment: Compartment,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        sync_records::sealed_heads(&self.conn, &self.keys, &self.keys.doc_key(plan, compartment))
    }

    pub fn unpushed(&self, plan: PlanId, compartment: Compartment) -> Result<u64, StoreError> {
        sync_records::unpushed(&self.conn, &self.keys.doc_key(plan, compartment))
    }

    /// The write rules of a document's epoch, as recorded when its key arrived.
    pub fn epoch_rules(
        &self,
        plan: PlanId,
        compartment: Compartment,
        epoch: u32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        sync_records::epoch_rules(&self.conn, &self.keys, &self.keys.doc_key(plan, compartment), epoch)
    }

    pub fn certificate(&self, device: &[u8; 16]) -> Result<Option<Vec<u8>>, StoreError> {
        sync_records::certificate(&self.conn, &self.keys, device)
    }

    pub fn parked_bundles(&self) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        sync_records::parked(&self.conn, &self.keys, sync_records::PARKED_BUNDLES)
    }

    /// The witnesses kept for parked snapshots (change bundles, as received).
    pub fn parked_witnesses(&self) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        sync_records::parked(&self.conn, &self.keys, sync_records::PARKED_WITNESSES)
    }

    pub fn is_registered(&self, plan: PlanId) -> Result<bool, StoreError> {
        sync_records::is_registered(&self.conn, &self.keys, plan)
    }

    /// The plan's membership chain as [`crate::membership`] stored it.
    pub fn membership(&self, plan: PlanId) -> Result<Option<Vec<u8>>, StoreError> {
        sync_records::membership(&self.conn, &self.keys, plan)
    }

    /// The heads of a document its reader last marked reviewed, as [`crate::review`] stored
    /// them.
    pub fn review_mark(&self, plan: PlanId, compartment: Compartment) -> Result<Option<Vec<u8>>, StoreError> {
        review_marks::get(&self.conn, &self.keys, &self.keys.doc_key(plan, compartment))
    }

    /// Returns free pages to the file system and truncates the WAL. Freed pages were
    /// already zeroed (`secure_delete`); the truncation is what leaves no WAL frame with a
    /// copy of a deleted row, which retiring a plan (`crate::retention`) relies on.
    pub fn reclaim_space(&mut self) -> Result<(), StoreError> {
        // incremental_vacuum frees one page per step: run it to the end, not one step.
        let mut vacuum = self.conn.prepare("PRAGMA incremental_vacuum")?;
        let mut rows = vacuum.query([])?;
        while rows.next()?.is_some() {}
        drop(rows);
        drop(vacuum);
        self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Number of changes this device wrote that no server has acknowledged yet.
    pub fn pending_outbox(&self) -> Result<u64, StoreError> {
        records::unpushed_total(&self.conn)
    }

    /// Bytes on disk of the database and its WAL.
    pub fn disk_usage(&self) -> u64 {
        let wal = self.path.with_extension("db-wal");
        [&self.path, &wal].iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum()
    }
}

/// Writes inside one [`Store::write`] transaction.
pub struct StoreWriter<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    keys: &'a StoreKeys,
}

impl std::fmt::Debug for StoreWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreWriter")
    }
}

impl StoreWriter<'_> {
    /// Appends received (or own) changes of a plan, as [`Store::append_changes`] does.
    pub fn append_changes(
        &mut self,
        plan: &Plan,
        header: Option<&PlanHeader>,
        changes: &[(Compartment, Vec<Vec<u8>>)],
        own: bool,
    ) -> Result<(), StoreError> {
        if let Some(header) = header {
            records::put_plan_header(self.tx, self.keys, header)?;
        }
        for (compartment, changes) in changes {
            let doc_key = self.keys.doc_key(plan.id(), *compartment);
            // Received in bulk (a new device's first sync, a long absence): the rows would be
            // compacted in this very transaction, so the snapshot is written straight away.
            if !own
                && let Ok(doc) = plan.doc(*compartment)
                && records::change_rows(self.tx, &doc_key)? + changes.len() as u64 >= COMPACT_AFTER_CHANGES
            {
                records::compact_received(
                    self.tx,
                    self.keys,
                    plan.id(),
                    &doc_key,
                    changes.len(),
                    &doc.save(),
                )?;
                continue;
            }
            let rows = records::append_doc_changes(self.tx, self.keys, plan.id(), &doc_key, changes, own)?;
            if rows >= COMPACT_AFTER_CHANGES
                && let Ok(doc) = plan.doc(*compartment)
            {
                records::compact(self.tx, self.keys, &doc_key, &doc.save())?;
            }
        }
        Ok(())
    }

    /// Records what a sync merged into a plan ([`Plan::added_since`]) as received changes, as
    /// [`StoreWriter::append_changes`] does with `own` false. A compartment that reaches
    /// compaction with them (a new device's first sync, a long absence) is stored as its
    /// document at once and its changes only counted, so their bytes are rebuilt only for
    /// the compartments whose changes are stored as rows.
    pub fn append_received(
        &mut self,
        plan: &Plan,
        header: Option<&PlanHeader>,
        added: &[crate::plan::Added],
    ) -> Result<(), StoreError> {
        if let Some(header) = header {
            records::put_plan_header(self.tx, self.keys, header)?;
        }
        for added in added {
            let Ok(doc) = plan.doc(added.compartment) else { continue };
            let doc_key = self.keys.doc_key(plan.id(), added.compartment);
            if records::change_rows(self.tx, &doc_key)? + added.count as u64 >= COMPACT_AFTER_CHANGES {
                // Encoded on the merge thread where it could be (a received snapshot's own
                // bytes load into the same document: `records::load_plan` loads what
                // `plan::load_unchecked` loaded); a `save()` here otherwise.
                let saved = match &added.saved {
                    Some(bytes) => std::borrow::Cow::Borrowed(bytes.as_slice()),
                    None => std::borrow::Cow::Owned(doc.save()),
                };
                records::compact_received(self.tx, self.keys, plan.id(), &doc_key, added.count, &saved)?;
                continue;
            }
            let changes = plan.changes_in(added.compartment, &added.since);
            let rows = records::append_doc_changes(self.tx, self.keys, plan.id(), &doc_key, &changes, false)?;
            if rows >= COMPACT_AFTER_CHANGES {
                records::compact(self.tx, self.keys, &doc_key, &doc.save())?;
            }
        }
        Ok(())
    }

    /// Appends one sealed access-log event at its chain position.
    pub(crate) fn put_audit_event(&mut self, seq: u64, event: &[u8]) -> Result<(), StoreError> {
        audit_records::put(self.tx, self.keys, seq, event)
    }

    /// Drops the access-log events at or before `seq` (the server keeps them).
    pub(crate) fn drop_audit_events_through(&mut self, seq: u64) -> Result<usize, StoreError> {
        audit_records::drop_through(self.tx, seq)
    }

    pub fn put_state(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        sync_records::put_state(self.tx, self.keys, name, value)
    }

    /// Replaces the wrapped data key (the offline lease re-binds it to an expiring key).
    pub(crate) fn put_wrapped_key(&mut self, wrapped: &[u8]) -> Result<(), StoreError> {
        records::put_meta(self.tx, records::META_WRAPPED_KEY, wrapped)
    }

    pub fn put_doc_key(
        &mut self,
        plan: PlanId,
        compartment: Compartment,
        epoch: u32,
        key: &[u8; 32],
    ) -> Result<(), StoreError> {
        sync_records::put_doc_key(self.tx, self.keys, &self.keys.doc_key(plan, compartment), epoch, key)
    }

    /// Records a bundle about to be pushed, and the heads its changes reach, so that a retry
    /// after a lost response pushes the same bundle (the server deduplicates by its id).
    pub fn put_pending_bundle(
        &mut self,
        plan: PlanId,
        compartment: Compartment,
        bundle_id: &[u8; 16],
        changes: u64,
        bundle: &[u8],
        heads: &[u8],
    ) -> Result<(), StoreError> {
        let doc_key = self.keys.doc_key(plan, compartment);
        sync_records::put_pending_bundle(self.tx, self.keys, bundle_id, &doc_key, changes, bundle)?;
        sync_records::put_sealed_heads(self.tx, self.keys, &doc_key, heads)
    }

    pub fn acknowledge_bundle(&mut self, bundle_id: &[u8; 16]) -> Result<(), StoreError> {
        sync_records::acknowledge_bundle(self.tx, bundle_id)
    }

    /// Swaps a pending bundle for its re-sealed form (same changes, newer key epoch).
    pub fn replace_pending_bundle(
        &mut self,
        old_id: &[u8; 16],
        new_id: &[u8; 16],
        bundle: &[u8],
    ) -> Result<(), StoreError> {
        sync_records::replace_pending_bundle(self.tx, self.keys, old_id, new_id, bundle)
    }

    /// Takes a document's changes off the outbox count: they will never be pushed.
    pub fn clear_unpushed(&mut self, plan: PlanId, compartment: Compartment) -> Result<(), StoreError> {
        sync_records::clear_unpushed(self.tx, &self.keys.doc_key(plan, compartment))
    }

    /// Replaces a document by an erasure's base (module `crate::sync::erasure`): the base is
    /// its new snapshot, every older change row, pending bundle and key of an older epoch
    /// goes, and `carried` (this device's unacknowledged edits, rebased onto the base) is its
    /// one change waiting to be pushed. `secure_delete` zeroes what is deleted.
    pub fn replace_document(
        &mut self,
        plan: PlanId,
        compartment: Compartment,
        base: &[u8],
        base_heads: &[u8],
        carried: Option<&[u8]>,
        epoch: u32,
    ) -> Result<(), StoreError> {
        let doc_key = self.keys.doc_key(plan, compartment);
        sync_records::drop_pending_of(self.tx, &doc_key)?;
        sync_records::delete_doc_keys_before(self.tx, &doc_key, epoch)?;
        records::compact_received(self.tx, self.keys, plan, &doc_key, 1, base)?;
        sync_records::put_sealed_heads(self.tx, self.keys, &doc_key, base_heads)?;
        self.tx.execute("DELETE FROM review_marks WHERE doc_key = ?1", [&doc_key[..]])?;
        if let Some(change) = carried {
            records::append_doc_changes(self.tx, self.keys, plan, &doc_key, &[change.to_vec()], true)?;
        }
        Ok(())
    }

    /// Forgets a document's keys (its compartment is no longer readable for this device).
    pub fn delete_doc_keys(&mut self, plan: PlanId, compartment: Compartment) -> Result<(), StoreError> {
        sync_records::delete_doc_keys(self.tx, &self.keys.doc_key(plan, compartment))
    }

    pub fn put_epoch_rules(
        &mut self,
        plan: PlanId,
        compartment: Compartment,
        epoch: u32,
        rules: &[u8],
    ) -> Result<(), StoreError> {
        sync_records::put_epoch_rules(self.tx, self.keys, &self.keys.doc_key(plan, compartment), epoch, rules)
    }

    pub fn put_certificate(&mut self, device: &[u8; 16], chain: &[u8]) -> Result<(), StoreError> {
        sync_records::put_certificate(self.tx, self.keys, device, chain)
    }

    pub fn park_bundle(&mut self, bundle: &[u8]) -> Result<(), StoreError> {
        sync_records::park(self.tx, self.keys, sync_records::PARKED_BUNDLES, bundle)
    }

    pub fn unpark(&mut self, id: i64) -> Result<(), StoreError> {
        sync_records::unpark(self.tx, sync_records::PARKED_BUNDLES, id)
    }

    /// Keeps a witness of a parked snapshot until the snapshot's key arrives.
    pub fn park_witness(&mut self, bundle: &[u8]) -> Result<(), StoreError> {
        sync_records::park(self.tx, self.keys, sync_records::PARKED_WITNESSES, bundle)
    }

    pub fn unpark_witness(&mut self, id: i64) -> Result<(), StoreError> {
        sync_records::unpark(self.tx, sync_records::PARKED_WITNESSES, id)
    }

    pub fn mark_registered(&mut self, plan: PlanId) -> Result<(), StoreError> {
        sync_records::mark_registered(self.tx, self.keys, plan)
    }

    pub fn put_membership(&mut self, plan: PlanId, chain: &[u8]) -> Result<(), StoreError> {
        sync_records::put_membership(self.tx, self.keys, plan, chain)
    }

    /// Deletes every row of `plan`: documents, changes, outbox, keys and their rules, its
    /// membership chain, review marks, its read model, its header. Returns how many rows
    /// went. Follow the transaction with [`Store::reclaim_space`] so that no copy stays in
    /// the WAL.
    pub fn delete_plan(&mut self, plan: PlanId) -> Result<usize, StoreError> {
        retire::delete_plan(self.tx, self.keys, plan)
    }

    /// Replaces the plan's read model (what [`crate::read_model`] keeps).
    pub(crate) fn put_read_model(&mut self, plan: PlanId, model: &[u8]) -> Result<(), StoreError> {
        read_models::put(self.tx, self.keys, plan, model)
    }

    /// Replaces the heads of a document marked reviewed.
    pub fn put_review_mark(
        &mut self,
        plan: PlanId,
        compartment: Compartment,
        mark: &[u8],
    ) -> Result<(), StoreError> {
        review_marks::put(self.tx, self.keys, &self.keys.doc_key(plan, compartment), mark)
    }
}

#[cfg(test)]
mod connection_tests {
    use rusqlite::StatementStatus;

    use super::*;

    #[test]
    fn a_cached_statement_is_not_prepared_again_when_its_parameters_change() {
        let dir = tempfile::tempdir().unwrap();
        let conn = connect(&dir.path().join("store.sqlite"), true).unwrap();
        conn.execute_batch(
            "CREATE TABLE changes (doc_key BLOB, seq INTEGER, sealed BLOB, PRIMARY KEY (doc_key, seq))",
        )
        .unwrap();
        let sql = "SELECT seq, sealed FROM changes WHERE doc_key = ?1 ORDER BY seq";
        for key in [[1u8; 32], [2; 32], [3; 32]] {
            let rows = conn
                .prepare_cached(sql)
                .unwrap()
                .query_map([key], |row| row.get::<_, i64>(0))
                .unwrap()
                .count();
            assert_eq!(rows, 0);
        }
        assert_eq!(conn.prepare_cached(sql).unwrap().get_status(StatementStatus::RePrepare), 0);
    }
}
