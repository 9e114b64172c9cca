//! Numbered schema migrations. `PRAGMA user_version` holds the number of the last one applied;
//! each runs once, in order, inside the opening transaction.

use rusqlite::Transaction;

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "CREATE TABLE meta (
         name  TEXT PRIMARY KEY,
         value BLOB NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE secrets (
         name   TEXT PRIMARY KEY,
         sealed BLOB NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE plans (
         plan_key BLOB PRIMARY KEY,
         sealed   BLOB NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE documents (
         doc_key      BLOB PRIMARY KEY,
         plan_key     BLOB NOT NULL REFERENCES plans(plan_key),
         snapshot     BLOB,
         snapshot_gen INTEGER NOT NULL,
         next_seq     INTEGER NOT NULL,
         -- change rows since the snapshot: compaction is due when this reaches the threshold
         change_rows  INTEGER NOT NULL,
         -- changes this device wrote that no server has acknowledged (the outbox)
         unpushed     INTEGER NOT NULL,
         -- sealed automerge heads up to which this device's changes are sealed into bundles
         sealed_heads BLOB
     ) WITHOUT ROWID;
     CREATE INDEX documents_by_plan ON documents(plan_key);
     CREATE TABLE changes (
         doc_key BLOB NOT NULL REFERENCES documents(doc_key),
         seq     INTEGER NOT NULL,
         sealed  BLOB NOT NULL,
         PRIMARY KEY (doc_key, seq)
     ) WITHOUT ROWID;",
    // 2: sync with a server.
    "CREATE TABLE sync_state (
         name   TEXT PRIMARY KEY,
         sealed BLOB NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE doc_keys (
         doc_key BLOB NOT NULL,
         epoch   INTEGER NOT NULL,
         sealed  BLOB NOT NULL,
         PRIMARY KEY (doc_key, epoch)
     ) WITHOUT ROWID;
     -- a rowid table: bundles are pushed in the order they were sealed
     CREATE TABLE pending_bundles (
         bundle_id BLOB NOT NULL UNIQUE,
         doc_key   BLOB NOT NULL REFERENCES documents(doc_key),
         changes   INTEGER NOT NULL,
         sealed    BLOB NOT NULL
     );
     CREATE TABLE certificates (
         device_key BLOB PRIMARY KEY,
         sealed     BLOB NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE parked_bundles (
         id     INTEGER PRIMARY KEY,
         sealed BLOB NOT NULL
     );
     CREATE TABLE registered_plans (
         plan_key BLOB PRIMARY KEY
     ) WITHOUT ROWID;",
    // 3: the write rules of each key epoch (the policy version and start its commitment
    //    names), by which a bundle of that epoch is judged.
    "CREATE TABLE epoch_rules (
         doc_key BLOB NOT NULL,
         epoch   INTEGER NOT NULL,
         sealed  BLOB NOT NULL,
         PRIMARY KEY (doc_key, epoch)
     ) WITHOUT ROWID;",
    // 4: each plan's verified membership chain (its signed entries and the roster they fold
    //    into), by the plan's lookup key.
    "CREATE TABLE membership (
         plan_key BLOB PRIMARY KEY,
         sealed   BLOB NOT NULL
     ) WITHOUT ROWID;",
    // 5: the heads a reader last marked reviewed, per document (sealed: change hashes of
    //    plan content), by the document's lookup key.
    "CREATE TABLE review_marks (
         doc_key BLOB PRIMARY KEY,
         sealed  BLOB NOT NULL
     ) WITHOUT ROWID;",
    // 6: the access log (NEN 7513): this device's signed, hash-linked events by position,
    //    each sealed, kept until the server acknowledged them (`crate::audit`). The chain's
    //    head, the organisation's audit key and the acknowledged position are sealed sync
    //    state.
    "CREATE TABLE audit_events (
         seq    INTEGER PRIMARY KEY,
         sealed BLOB NOT NULL
     );",
    // 7: each plan's read model (what `Device::read` shows, before the device adds who
    //    people are and the chain), sealed with the stamp of the stored rows it was computed
    //    from (`crate::read_model`), so that a plan not in memory is shown without loading
    //    its documents. A cache: deleting every row loses nothing. A rowid table, as its
    //    rows are large (tens of kilobytes) and looked up by one key.
    "CREATE TABLE read_models (
         plan_key BLOB NOT NULL UNIQUE,
         sealed   BLOB NOT NULL
     );",
    // 8: the witnesses of parked snapshots (sealed received change bundles), kept until the
    //    snapshot's key arrives: the answer that brings the key does not carry them again,
    //    and without them the snapshot would be refused and its whole change log fetched.
    "CREATE TABLE parked_witnesses (
         id     INTEGER PRIMARY KEY,
         sealed BLOB NOT NULL
     );",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub(super) fn migrate(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let current: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema { found: current, known: SCHEMA_VERSION });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(current).unwrap_or(0)) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_refuse_a_newer_schema() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        migrate(&tx).unwrap();
        migrate(&tx).unwrap();
        tx.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        assert!(matches!(migrate(&tx), Err(StoreError::NewerSchema { .. })));
    }
}
