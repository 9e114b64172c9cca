//! The heads a reader last marked reviewed ([`crate::review`]), one sealed row per document,
//! keyed by the document's lookup key: change hashes are plan content's fingerprints, so
//! they are sealed like the sync records and never stored beside a plain plan id.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::records::aad;
use super::{StoreError, StoreKeys};

const TABLE: &str = "review_marks";

pub(super) fn put(
    tx: &Transaction<'_>,
    keys: &StoreKeys,
    doc_key: &[u8; 32],
    mark: &[u8],
) -> Result<(), StoreError> {
    let sealed = keys.seal.seal(&aad(TABLE, doc_key, None), mark);
    tx.execute(
        "INSERT INTO review_marks (doc_key, sealed) VALUES (?1, ?2) ON CONFLICT (doc_key) DO UPDATE SET sealed = ?2",
        params![&doc_key[..], sealed],
    )?;
    Ok(())
}

pub(super) fn get(
    conn: &Connection,
    keys: &StoreKeys,
    doc_key: &[u8; 32],
) -> Result<Option<Vec<u8>>, StoreError> {
    let sealed: Option<Vec<u8>> = conn
        .query_row("SELECT sealed FROM review_marks WHERE doc_key = ?1", [&doc_key[..]], |row| row.get(0))
        .optional()?;
    sealed
        .map(|s| {
            keys.seal
                .open(&aad(TABLE, doc_key, None), &s)
                .map_err(|_| StoreError::Corrupt("a review mark fails authentication".into()))
        })
        .transpose()
}
