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
mod transactions;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use super::backend::{Backend, ReadRows, WriteRows};
use super::{Result, StorageError};
use transactions::{SqliteRead, SqliteWrite};

/// Read connections. Pulls are short read transactions; a few cover the bursts of a morning
/// peak without holding a page cache per client.
const READERS: usize = 4;
/// Prepared statements kept per connection: more than the distinct statements of
/// `rows.rs`, so that none is compiled twice on one connection (rusqlite keeps 16 by default,
/// which a single sync request cycles through).
const STATEMENT_CACHE: usize = 256;
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
    key_shares: super::domain::KeyShareCache,
    accesses: super::domain::AccessCache,
    answer_guesses: super::domain::AnswerGuesses,
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
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    stable_plans(&conn)?;
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

/// The bundled SQLite is built with `SQLITE_ENABLE_STAT4`, whose planner lets the value
/// bound to a parameter choose the plan: every new binding then expires the cached statement
/// and SQLite parses and plans it again at its next step. That was about a quarter of the
/// server's CPU per sync (`load_bench` profile, 2026-12-04). The query planner stability
/// guarantee keeps one plan per statement, which is all this schema needs (it has no
/// `ANALYZE` statistics for STAT4 to use anyway).
fn stable_plans(conn: &Connection) -> Result<()> {
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

fn connect_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    stable_plans(&conn)?;
    conn.pragma_update(None, "cell_size_check", "ON")?;
    conn.pragma_update(None, "trusted_schema", "OFF")?;
    Ok(conn)
}

/// A poisoned lock only means another thread panicked while holding it; its transaction was
/// rolled back when the guard unwound, so the connection is still sound.
fn relock<'a>(lock: &'a Mutex<Connection>) -> MutexGuard<'a, Connection> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
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
        Ok(SqliteStorage {
            path,
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            key_shares: super::domain::KeyShareCache::new(),
            accesses: super::domain::AccessCache::new(),
            answer_guesses: super::domain::AnswerGuesses::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
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

/// A read transaction begun and ended by cached statements. `Connection::transaction`
/// compiles `BEGIN` and `COMMIT` anew each time (`execute_batch`); a sync opens four or more
/// read transactions, and the compiling was 2% of the server's CPU per push (`load_bench`
/// profile, 2026-12-05). Dropped unended (an error or a panic in the reads), it rolls back,
/// so the connection goes back to the pool outside any transaction.
struct ReadTransaction<'c> {
    conn: &'c Connection,
}

impl<'c> ReadTransaction<'c> {
    fn begin(conn: &'c Connection) -> Result<ReadTransaction<'c>> {
        if !conn.is_autocommit() {
            // Only a rollback that failed in `drop` leaves one open: end it here.
            rollback(conn)?;
        }
        conn.prepare_cached("BEGIN DEFERRED")?.execute([])?;
        Ok(ReadTransaction { conn })
    }

    fn end(self) -> Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    }
}

impl Drop for ReadTransaction<'_> {
    fn drop(&mut self) {
        if !self.conn.is_autocommit() {
            // Nothing was written; one that fails here is rolled back by the next `begin`.
            let _ = rollback(self.conn);
        }
    }
}

fn rollback(conn: &Connection) -> Result<()> {
    conn.prepare_cached("ROLLBACK")?.execute([])?;
    Ok(())
}

impl Backend for SqliteStorage {
    /// On the single writer connection, as an immediate transaction: it takes the write lock
    /// at its start, so it never fails half-way for a lock another writer holds.
    fn write(&self, f: &mut dyn FnMut(&dyn WriteRows) -> Result<()>) -> Result<()> {
        let mut conn = relock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        f(&SqliteWrite::new(&tx))?;
        tx.commit()?;
        Ok(())
    }

    fn read(&self, f: &mut dyn FnMut(&dyn ReadRows) -> Result<()>) -> Result<()> {
        let conn = self.reader();
        let tx = ReadTransaction::begin(&conn)?;
        f(&SqliteRead::new(&conn))?;
        tx.end()
    }

    /// `secure_delete` zeroed the deleted cells and freed pages in the pages the commit wrote
    /// to the WAL; the checkpoint puts them over the old pages in the file, and the
    /// truncation leaves no frame with a copy.
    fn purge_deleted(&self) -> Result<()> {
        self.checkpoint_truncate()
    }

    fn key_shares(&self) -> &super::domain::KeyShareCache {
        &self.key_shares
    }

    fn accesses(&self) -> &super::domain::AccessCache {
        &self.accesses
    }

    fn answer_guesses(&self) -> &super::domain::AnswerGuesses {
        &self.answer_guesses
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    use super::*;

    /// Runs one statement of the sync answer with three different bindings and reports how
    /// often SQLite prepared it again.
    fn repreparations(conn: &Connection) -> i32 {
        let sql = "SELECT COALESCE(MAX(last_seq), 0) FROM audit_uploads WHERE device_id = ?1";
        for device in [[1u8; 16], [2; 16], [3; 16]] {
            let through: i64 =
                conn.prepare_cached(sql).unwrap().query_row([device], |row| row.get(0)).unwrap();
            assert_eq!(through, 0);
        }
        conn.prepare_cached(sql).unwrap().get_status(StatementStatus::RePrepare)
    }

    #[test]
    fn a_cached_statement_is_not_prepared_again_when_its_parameters_change() {
        let dir = std::env::temp_dir().join(format!("eenplan-sqlite-reprepare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let storage = SqliteStorage::open(dir.join("server.sqlite")).unwrap();
        assert_eq!(repreparations(&relock(&storage.writer)), 0, "on the writer");
        assert_eq!(repreparations(&storage.reader()), 0, "on a reader");
        drop(storage);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_read_that_fails_or_panics_gives_its_connection_back_outside_a_transaction() {
        let dir = std::env::temp_dir().join(format!("eenplan-sqlite-read-ends-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let storage = SqliteStorage::open(dir.join("server.sqlite")).unwrap();
        let failed = storage.read(&mut |rows| {
            rows.head()?;
            Err(StorageError::InvalidState("on purpose".into()))
        });
        assert!(matches!(failed, Err(StorageError::InvalidState(_))), "{failed:?}");
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            storage.read(&mut |rows| {
                rows.head()?;
                panic!("on purpose")
            })
        }));
        assert!(panicked.is_err());
        for reader in &storage.readers {
            assert!(relock(reader).is_autocommit(), "a reader was left inside a transaction");
        }
        let mut head = None;
        storage
            .read(&mut |rows| {
                head = Some(rows.head()?);
                Ok(())
            })
            .unwrap();
        assert_eq!(head, Some(0));
        drop(storage);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
