//! The access log's rows ([`crate::audit`]): one sealed signed event per chain position. Same
//! rules as `records`: reads take `&Connection`, writes take `&Transaction`, and every value
//! is sealed with associated data naming its table and row (the position), so an event moved
//! to another position fails to open.

use rusqlite::{Connection, Transaction, params};

use super::records::aad;
use super::{StoreError, StoreKeys};

const TABLE: &str = "audit_events";

fn row_aad(seq: u64) -> Vec<u8> {
    aad(TABLE, &seq.to_be_bytes(), None)
}

fn position(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Corrupt("an audit position is out of range".into()))
}

pub(super) fn put(tx: &Transaction<'_>, keys: &StoreKeys, seq: u64, event: &[u8]) -> Result<(), StoreError> {
    let sealed = keys.seal.seal(&row_aad(seq), event);
    // A position is written once: the chain never rewrites what it holds.
    tx.prepare_cached("INSERT INTO audit_events (seq, sealed) VALUES (?1, ?2)")?
        .execute(params![position(seq)?, sealed])?;
    Ok(())
}

/// Drops every event at or before `seq`: only what the server acknowledged keeping.
pub(super) fn drop_through(tx: &Transaction<'_>, seq: u64) -> Result<usize, StoreError> {
    Ok(tx.execute("DELETE FROM audit_events WHERE seq <= ?1", [position(seq)?])?)
}

/// Up to `limit` events after position `after`, oldest first, opened.
pub(super) fn after(
    conn: &Connection,
    keys: &StoreKeys,
    after: u64,
    limit: usize,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let mut statement =
        conn.prepare_cached("SELECT seq, sealed FROM audit_events WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement.query_map(params![position(after)?, limit], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, sealed) = row?;
        let seq = u64::try_from(seq).map_err(|_| StoreError::Corrupt("a negative audit position".into()))?;
        let event = keys
            .seal
            .open(&row_aad(seq), &sealed)
            .map_err(|_| StoreError::Corrupt(format!("audit event {seq} fails authentication")))?;
        out.push((seq, event));
    }
    Ok(out)
}

/// How many events wait, and their sealed bytes (without SQLite's own row overhead).
pub(super) fn size(conn: &Connection) -> Result<(u64, u64), StoreError> {
    let (events, bytes): (i64, i64) =
        conn.query_row("SELECT COUNT(*), COALESCE(SUM(length(sealed)), 0) FROM audit_events", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    Ok((u64::try_from(events).unwrap_or(0), u64::try_from(bytes).unwrap_or(0)))
}
