//! The PostgreSQL backend, for an operator who runs several server processes on one database
//! or wants the database on its own machine: `eenplan-server serve --database postgres://…`.
//!
//! The synchronous `postgres` client, without TLS: the database is on loopback or a private
//! network, and the build stays free of OpenSSL. Connections come from a small pool of its own
//! (a mutex over idle connections, at most [`MAX_CONNECTIONS`]); it keeps each connection's
//! prepared statements with it, which a generic pool (`r2d2_postgres`) would not.
//!
//! Writes run one after another, as in SQLite: every write transaction (`READ COMMITTED`)
//! first locks the log head row (`SELECT … FOR UPDATE`), so a writer's statements see every
//! write committed before it, check-then-insert rules hold across processes, and positions
//! become visible in commit order (the head is that one row, never a sequence). A deadlock or
//! serialization failure (SQLSTATE 40P01 / 40001, which this scheme should not produce) or a
//! lock wait past [`LOCK_TIMEOUT`] runs the whole closure again, at most [`ATTEMPTS`] times,
//! then reports [`StorageError::Busy`]. Reads run in `REPEATABLE READ READ ONLY`
//! transactions: a pull sees one snapshot. `synchronous_commit` stays on (the default), so a
//! commit has reached the server's disk before the method returns.

mod migrations;
mod rows;
mod statements;
mod transactions;

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use postgres::error::SqlState;
use postgres::{Client, IsolationLevel, NoTls};

use super::backend::{Backend, FirstRead, ReadRows, WriteRows};
use super::{Result, StorageError};
use statements::{Connection, StatementCache};
use transactions::PgRows;

/// Connections per server process. Writes take turns anyway; reads (pulls) run side by side.
const MAX_CONNECTIONS: usize = 8;
/// How often a transaction that lost a race runs again before the caller hears `Busy`.
const ATTEMPTS: usize = 5;
/// How long a statement waits for a row lock (the head, held by another process's write).
const LOCK_TIMEOUT: &str = "10s";
/// How long the purge waits for its exclusive locks while pulls and pushes finish.
const PURGE_LOCK_TIMEOUT: &str = "60s";
/// How long the purge waits for the snapshots and transactions from before the erasure that
/// hold back VACUUM's horizon ([`SESSIONS_HOLDING_BACK`]) to end.
const PURGE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);
/// Every table a plan's erasure or a member's erasure deletes rows from; the purge rewrites
/// them (see [`Backend::purge_deleted`]).
const ERASED_TABLES: &str = "bundles, envelopes, escrow_envelopes, commitments, rotations, snapshot_requests, \
     pull_resumes, refused_sealers, participants, membership_leavers, membership, plans, document_tails, document_tails_stale";

impl From<statements::Error> for StorageError {
    fn from(e: statements::Error) -> Self {
        match e {
            statements::Error::Postgres(e) => from_postgres(&e),
            statements::Error::FromSqlConversionFailure(..)
            | statements::Error::IntegralValueOutOfRange(..) => StorageError::Corrupt(e.to_string()),
            other => StorageError::Backend(other.to_string()),
        }
    }
}

/// The server's error text of a PostgreSQL error: its code and message, never the statement.
fn from_postgres(e: &postgres::Error) -> StorageError {
    let Some(db) = e.as_db_error() else {
        // The cause (refused, timed out, closed) is the part an operator needs.
        let cause = std::error::Error::source(e).map(|c| format!(": {c}")).unwrap_or_default();
        return StorageError::Backend(format!("postgres: {e}{cause}"));
    };
    let code = db.code();
    if code.code().starts_with("23") {
        StorageError::Conflict(db.message().to_owned())
    } else if retryable(code) {
        StorageError::Busy
    } else if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED {
        StorageError::Corrupt(db.message().to_owned())
    } else {
        StorageError::Backend(format!("postgres {}: {}", code.code(), db.message()))
    }
}

fn retryable(code: &SqlState) -> bool {
    [SqlState::T_R_SERIALIZATION_FAILURE, SqlState::T_R_DEADLOCK_DETECTED, SqlState::LOCK_NOT_AVAILABLE]
        .contains(code)
}

/// A pooled connection and the statements prepared on it.
struct Pooled {
    client: Client,
    statements: StatementCache,
}

/// Connections to one database.
pub struct PostgresStorage {
    config: postgres::Config,
    /// The URL without its password, for logs.
    shown: String,
    idle: Mutex<Vec<Pooled>>,
    /// Connections open or being opened, idle or not.
    open: Mutex<usize>,
    returned: Condvar,
    key_shares: super::domain::KeyShareCache,
    accesses: super::domain::AccessCache,
    answer_guesses: super::domain::AnswerGuesses,
    session_reads: super::domain::SessionReads,
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStorage").field("database", &self.shown).finish_non_exhaustive()
    }
}

/// A connection on loan; back to the pool when dropped, unless it broke.
struct Loan<'p> {
    pool: &'p PostgresStorage,
    conn: Option<Pooled>,
}

impl Loan<'_> {
    /// The connection; it is only taken out when the loan ends.
    fn pooled(&mut self) -> Result<&mut Pooled> {
        self.conn.as_mut().ok_or_else(|| StorageError::Backend("a connection used after its return".into()))
    }
}

impl Drop for Loan<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if conn.client.is_closed() {
            // A broken connection may be a failover: what the caches hold may come from rows
            // the new primary never saw (`domain::access`).
            self.pool.forget_remembered();
            *relock(&self.pool.open) -= 1;
        } else {
            relock(&self.pool.idle).push(conn);
        }
        self.pool.returned.notify_one();
    }
}

/// A poisoned lock only means another thread panicked holding it; the pool's lists are
/// whole (a push or a pop either happened or did not).
fn relock<T>(lock: &Mutex<T>) -> MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f` on `connection`, which refuses statements past the ones it allows: `true` when
/// that sufficed, `false` when `f` asked for a refused one, whatever `f` returned then (a
/// closure that went on without the refused read must not be taken at its word).
fn sufficed(connection: Connection<'_>, f: &mut dyn FnMut(&dyn ReadRows) -> Result<()>) -> Result<bool> {
    let rows = PgRows::new(connection);
    let result = f(&rows);
    if rows.into_inner().refused_a_second_statement() {
        return Ok(false);
    }
    result.map(|()| true)
}

/// `url` without its password, so that it can be logged: neither the one before the host nor
/// a `password` parameter, which tokio-postgres takes as well.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "<database URL>".into() };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let tail = without_password_parameter(tail);
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split_once(':').map_or(user, |(name, _)| name);
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => format!("{scheme}://{authority}{tail}"),
    }
}

/// A URL's path and query without its `password` parameters. Names are compared decoded, as
/// tokio-postgres decodes them (`pass%77ord` is a password too).
fn without_password_parameter(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else { return tail.to_owned() };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|parameter| {
            let name = parameter.split_once('=').map_or(*parameter, |(name, _)| name);
            percent_encoding::percent_decode_str(name).decode_utf8_lossy() != "password"
        })
        .collect();
    if kept.is_empty() { path.to_owned() } else { format!("{path}?{}", kept.join("&")) }
}

impl PostgresStorage {
    /// Connects to the database at `url` (`postgres://user[:password]@host[:port]/db`) and
    /// applies any pending migrations.
    pub fn open(url: &str) -> Result<PostgresStorage> {
        let shown = redact_url(url);
        let config: postgres::Config = url
            .parse()
            .map_err(|e| StorageError::Backend(format!("the database URL {shown} does not parse: {e}")))?;
        let storage = PostgresStorage {
            config,
            shown,
            idle: Mutex::new(Vec::new()),
            open: Mutex::new(0),
            returned: Condvar::new(),
            key_shares: super::domain::KeyShareCache::new(),
            accesses: super::domain::AccessCache::new(),
            answer_guesses: super::domain::AnswerGuesses::default(),
            session_reads: super::domain::SessionReads::default(),
        };
        off_runtime(|| -> Result<()> {
            let mut loan = storage.loan()?;
            let client = &mut loan.pooled()?.client;
            // READ COMMITTED whatever the database's default: a migration's statements after
            // its first lock (the log head's) then read what every writer committed before it.
            let mut tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::ReadCommitted)
                .start()
                .map_err(statements::Error::from)?;
            migrations::migrate(&mut tx)?;
            tx.commit().map_err(statements::Error::from)?;
            Ok(())
        })?;
        Ok(storage)
    }

    /// The database, without the URL's password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Empties the caches stamped with versions of this database's rows.
    fn forget_remembered(&self) {
        self.key_shares.clear();
        self.accesses.clear();
    }

    fn connect(&self) -> Result<Pooled> {
        // A new connection may reach another primary than the open ones did.
        self.forget_remembered();
        let mut client = self.config.connect(NoTls).map_err(|e| from_postgres(&e))?;
        client
            // Generic plans: every statement is prepared once per connection and its best plan
            // does not depend on the values (keys and positions, each looked up by index).
            // Left to choose, PostgreSQL planned the answer's statements afresh on every
            // execution (a custom plan), which cost it as much as running them.
            .batch_execute(&format!(
                "SET lock_timeout = '{LOCK_TIMEOUT}'; SET synchronous_commit = on; \
                 SET plan_cache_mode = force_generic_plan"
            ))
            .map_err(|e| from_postgres(&e))?;
        Ok(Pooled { client, statements: StatementCache::new() })
    }

    /// An idle connection, a new one while fewer than [`MAX_CONNECTIONS`] are open, or the
    /// next one returned.
    fn loan(&self) -> Result<Loan<'_>> {
        let mut idle = relock(&self.idle);
        loop {
            if let Some(conn) = idle.pop() {
                return Ok(Loan { pool: self, conn: Some(conn) });
            }
            let mut open = relock(&self.open);
            if *open < MAX_CONNECTIONS {
                *open += 1;
                drop((open, idle));
                return match self.connect() {
                    Ok(conn) => Ok(Loan { pool: self, conn: Some(conn) }),
                    Err(e) => {
                        *relock(&self.open) -= 1;
                        self.returned.notify_one();
                        Err(e)
                    }
                };
            }
            drop(open);
            idle = self.returned.wait(idle).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Runs `attempt` again while it fails with a race PostgreSQL reports (`Busy`).
    fn retrying(&self, mut attempt: impl FnMut() -> Result<()>) -> Result<()> {
        let mut last = StorageError::Busy;
        for _ in 0..ATTEMPTS {
            match off_runtime(&mut attempt) {
                Err(StorageError::Busy) => last = StorageError::Busy,
                other => return other,
            }
        }
        Err(last)
    }

    fn write_once(&self, f: &mut dyn FnMut(&dyn WriteRows) -> Result<()>) -> Result<()> {
        let mut loan = self.loan()?;
        let Pooled { client, statements } = loan.pooled()?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()
            .map_err(statements::Error::from)?;
        let rows = PgRows::new(Connection::new(tx, statements));
        rows.lock_head()?;
        f(&rows)?;
        rows.into_inner().commit()?;
        Ok(())
    }

    fn read_once(&self, f: &mut dyn FnMut(&dyn ReadRows) -> Result<()>) -> Result<()> {
        let mut loan = self.loan()?;
        let Pooled { client, statements } = loan.pooled()?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(statements::Error::from)?;
        let rows = PgRows::new(Connection::new(tx, statements));
        f(&rows)?;
        rows.into_inner().commit()?;
        Ok(())
    }

    fn read_statement_once(&self, f: &mut dyn FnMut(&dyn ReadRows) -> Result<()>) -> Result<()> {
        let mut loan = self.loan()?;
        let Pooled { client, statements } = loan.pooled()?;
        f(&PgRows::new(Connection::single(client, statements)))
    }

    /// `f` as one statement: `true` when that sufficed. `false` when `f` asked for a second
    /// one, whatever `f` returned then: a closure that went on without the refused read
    /// must not be taken at its word.
    fn one_statement_once(&self, f: &mut dyn FnMut(&dyn ReadRows) -> Result<()>) -> Result<bool> {
        let mut loan = self.loan()?;
        let Pooled { client, statements } = loan.pooled()?;
        sufficed(Connection::single(client, statements), f)
    }

    fn vacuum_full(&self) -> Result<()> {
        let mut loan = self.loan()?;
        let client = &mut loan.pooled()?.client;
        wait_for_older_sessions(client)?;
        // One statement per call: several in one string would run as one transaction block,
        // where VACUUM cannot run.
        for sql in [
            format!("SET lock_timeout = '{PURGE_LOCK_TIMEOUT}'"),
            format!("VACUUM (FULL) {ERASED_TABLES}"),
            format!("SET lock_timeout = '{LOCK_TIMEOUT}'"),
        ] {
            client.batch_execute(&sql).map_err(|e| from_postgres(&e))?;
        }
        Ok(())
    }
}

/// How many sessions, prepared transactions and replication slots of the cluster hold back
/// VACUUM's horizon to before `horizon`. VACUUM keeps a deleted row while a session of this
/// database has a snapshot (`backend_xmin`) or a running transaction id (`backend_xid`)
/// older than the deletion: a write transaction between two statements has an xid and no
/// snapshot, and counts as much as a reader. Of other databases, the running transaction ids
/// count: `VACUUM (FULL)`'s own snapshot starts at the oldest transaction still running in the
/// cluster, whatever its database. (The conformance test under parallel load found the erased
/// rows copied 1 run in 3 while a `DROP DATABASE` elsewhere held an xid; counting every
/// session of the cluster, 0 in 4; counting other databases' transactions only, 0 in 4,
/// 2026-12-05.) Their snapshots do not count, so a long report in another database does not
/// hold up an erasure. A prepared transaction and a replication slot's `xmin` (a standby's
/// feedback) hold the horizon without a session.
const SESSIONS_HOLDING_BACK: &str =
    "WITH now (xmax) AS (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint)
     SELECT (SELECT count(*) FROM pg_stat_activity
             WHERE pid <> pg_backend_pid()
               AND (SELECT xmax FROM now) - CASE
                     WHEN datname = current_database() OR datname IS NULL
                     THEN greatest(age(backend_xmin), age(backend_xid))
                     ELSE age(backend_xid) END < $1)
          + (SELECT count(*) FROM pg_prepared_xacts
             WHERE (SELECT xmax FROM now) - age(transaction) < $1)
          + (SELECT count(*) FROM pg_replication_slots
             WHERE (SELECT xmax FROM now) - age(xmin) < $1)";

/// Waits until nothing (a pull that began before the erasure, a push on another instance
/// that is still open, an autovacuum `ANALYZE`, a transaction in another database) holds
/// VACUUM's horizon before the deletion: `VACUUM (FULL)` copies the rows it keeps for them
/// into the new files. Polls, at most
/// [`PURGE_WAIT`]; then `Busy`.
fn wait_for_older_sessions(client: &mut Client) -> Result<()> {
    let horizon: i64 = client
        .query_one("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint", &[])
        .and_then(|row| row.try_get(0))
        .map_err(|e| from_postgres(&e))?;
    let deadline = std::time::Instant::now() + PURGE_WAIT;
    loop {
        let older: i64 = client
            .query_one(SESSIONS_HOLDING_BACK, &[&horizon])
            .and_then(|row| row.try_get(0))
            .map_err(|e| from_postgres(&e))?;
        if older == 0 {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(StorageError::Busy);
        }
        // PostgreSQL tells no one when a session's snapshot ends, so this polls the catalogue
        // (a retry interval against an outside condition, bounded by the deadline above).
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Runs `f`, which blocks on the client's own runtime, outside any tokio worker: the sync
/// client cannot wait on a worker thread, and the server's callers are async routes too.
fn off_runtime<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl Backend for PostgresStorage {
    fn write(&self, f: &mut dyn FnMut(&dyn WriteRows) -> Result<()>) -> Result<()> {
        self.retrying(|| self.write_once(f))
    }

    fn read(&self, f: &mut dyn FnMut(&dyn ReadRows) -> Result<()>) -> Result<()> {
        self.retrying(|| self.read_once(f))
    }

    fn read_statement(&self, f: &mut dyn FnMut(&dyn ReadRows) -> Result<()>) -> Result<()> {
        self.retrying(|| self.read_statement_once(f))
    }

    fn read_statement_first(&self, f: &mut dyn FnMut(&dyn ReadRows) -> Result<()>) -> Result<FirstRead> {
        let mut sufficed = false;
        self.retrying(|| {
            sufficed = self.one_statement_once(f)?;
            Ok(())
        })?;
        if sufficed {
            return Ok(FirstRead::OneStatement);
        }
        self.read(f).map(|()| FirstRead::Again)
    }

    fn groups_answer_facts(&self) -> bool {
        true
    }

    fn session_reads(&self) -> Option<&super::domain::SessionReads> {
        Some(&self.session_reads)
    }

    /// No connection is taken from the pool: none is needed, and a statement is refused
    /// before it could use one.
    fn read_without_statements(&self, f: &mut dyn FnMut(&dyn ReadRows) -> Result<()>) -> Result<bool> {
        let mut statements = StatementCache::new();
        sufficed(Connection::spent(&mut statements), f)
    }

    /// Waits for snapshots that still see the deleted rows, then rewrites every table an
    /// erasure deletes from (`VACUUM FULL`): the new files hold only the live rows, and the old ones are truncated and unlinked. A plain `VACUUM` would not
    /// do: it marks the space of deleted rows free but leaves their bytes in the pages until
    /// something overwrites them. What this does not reach (ARCHITECTURE.md, decisions): the
    /// WAL segments that logged the rows until PostgreSQL recycles them, WAL archives and base
    /// backups, and filesystem blocks the old files occupied.
    fn purge_deleted(&self) -> Result<()> {
        self.retrying(|| self.vacuum_full())
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
    use super::redact_url;

    #[test]
    fn a_logged_database_url_keeps_user_host_and_database_and_never_the_password() {
        let cases = [
            ("postgres://ann:s3cret@db.example:5433/eenplan", "postgres://ann@db.example:5433/eenplan"),
            ("postgres://ann:p@ss:w@db/eenplan?x=1", "postgres://ann@db/eenplan?x=1"),
            ("postgresql://ann@127.0.0.1/db", "postgresql://ann@127.0.0.1/db"),
            ("postgres://db.example/db", "postgres://db.example/db"),
            ("postgres://ann@db/eenplan?password=s3cret", "postgres://ann@db/eenplan"),
            (
                "postgres://ann@db/eenplan?sslmode=disable&password=s3cret&application_name=x",
                "postgres://ann@db/eenplan?sslmode=disable&application_name=x",
            ),
            ("postgres://ann@db/eenplan?pass%77ord=s3cret", "postgres://ann@db/eenplan"),
            (
                "postgres://ann@%2Fvar%2Frun%2Fpostgresql/eenplan",
                "postgres://ann@%2Fvar%2Frun%2Fpostgresql/eenplan",
            ),
            ("s3cret", "<database URL>"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown);
            assert!(!redact_url(url).contains("s3cret") && !redact_url(url).contains("ss:w"));
        }
    }
}
