//! Row-level reads (`&Connection`) and writes (`&Transaction`), and the sealing of each value.

use automerge::Automerge;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use super::{StoreError, StoreKeys};
use crate::ids::PlanId;
use crate::plan::Compartment;

pub(super) const META_WRAPPED_KEY: &str = "wrapped_data_key";
pub(super) const SECRET_IDENTITY: &str = "device_identity";

/// Version of the sealed-record layout, bound into every record's associated data. It changes
/// only when the meaning of a sealed value changes, not with every schema migration, so that
/// a migration never has to re-encrypt the store.
const RECORD_VERSION: &[u8] = b"eenplan/record/v1";

/// What the plan list shows without loading any document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanHeader {
    pub plan: PlanId,
    pub family: String,
}

/// A plan as read from disk.
#[derive(Debug)]
pub struct StoredPlan {
    pub header: PlanHeader,
    pub docs: Vec<(Compartment, Automerge)>,
}

/// Associated data: the record layout version, the table, and the row's key columns.
pub(super) fn aad(table: &str, key: &[u8], extra: Option<i64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_VERSION.len() + table.len() + key.len() + 12);
    out.extend_from_slice(RECORD_VERSION);
    out.push(b'|');
    out.extend_from_slice(table.as_bytes());
    out.push(b'|');
    out.extend_from_slice(key);
    if let Some(n) = extra {
        out.push(b'|');
        out.extend_from_slice(&n.to_be_bytes());
    }
    out
}

fn short_hex(bytes: &[u8]) -> String {
    bytes.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

pub(super) fn put_meta(tx: &Transaction<'_>, name: &str, value: &[u8]) -> Result<(), StoreError> {
    tx.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)", params![name, value])?;
    Ok(())
}

pub(super) fn get_meta(conn: &Connection, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |row| row.get(0)).optional()?)
}

pub(super) fn put_secret(
    tx: &Transaction<'_>,
    keys: &StoreKeys,
    name: &str,
    secret: &[u8],
) -> Result<(), StoreError> {
    let sealed = keys.seal.seal(&aad("secrets", name.as_bytes(), None), secret);
    tx.execute("INSERT OR REPLACE INTO secrets (name, sealed) VALUES (?1, ?2)", params![name, sealed])?;
    Ok(())
}

pub(super) fn get_secret(
    conn: &Connection,
    keys: &StoreKeys,
    name: &str,
) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
    let sealed: Vec<u8> = conn
        .query_row("SELECT sealed FROM secrets WHERE name = ?1", [name], |row| row.get(0))
        .optional()?
        .ok_or_else(|| StoreError::Corrupt(format!("secret {name} is missing")))?;
    keys.seal
        .open(&aad("secrets", name.as_bytes(), None), &sealed)
        .map(zeroize::Zeroizing::new)
        .map_err(|_| StoreError::Corrupt(format!("secret {name} fails authentication")))
}

pub(super) fn put_plan_header(
    tx: &Transaction<'_>,
    keys: &StoreKeys,
    header: &PlanHeader,
) -> Result<(), StoreError> {
    let plan_key = keys.plan_key(header.plan);
    let mut encoded = Vec::new();
    ciborium::into_writer(header, &mut encoded)
        .map_err(|e| StoreError::Corrupt(format!("encoding a plan header: {e}")))?;
    let sealed = keys.seal.seal(&aad("plans", &plan_key, None), &encoded);
    tx.execute(
        "INSERT OR REPLACE INTO plans (plan_key, sealed) VALUES (?1, ?2)",
        params![&plan_key[..], sealed],
    )?;
    Ok(())
}

fn open_header(keys: &StoreKeys, plan_key: &[u8], sealed: &[u8]) -> Result<PlanHeader, String> {
    let plain =
        keys.seal.open(&aad("plans", plan_key, None), sealed).map_err(|_| "header fails authentication")?;
    let header: PlanHeader =
        ciborium::from_reader(plain.as_slice()).map_err(|_| "header is not decodable")?;
    if keys.plan_key(header.plan)[..] != *plan_key {
        return Err("header belongs to another plan".into());
    }
    Ok(header)
}

pub(super) fn list_plan_headers(
    conn: &Connection,
    keys: &StoreKeys,
) -> Result<Vec<Result<PlanHeader, StoreError>>, StoreError> {
    let mut stmt = conn.prepare("SELECT plan_key, sealed FROM plans")?;
    let rows = stmt.query_map([], |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Vec<u8>>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (plan_key, sealed) = row?;
        out.push(open_header(keys, &plan_key, &sealed).map_err(|what| {
            StoreError::CorruptPlanEntry(format!("entry {}…: {what}", short_hex(&plan_key)))
        }));
    }
    Ok(out)
}

pub(super) fn plan_exists(conn: &Connection, keys: &StoreKeys, plan: PlanId) -> Result<bool, StoreError> {
    let plan_key = keys.plan_key(plan);
    Ok(conn
        .query_row("SELECT 1 FROM plans WHERE plan_key = ?1", [&plan_key[..]], |_| Ok(()))
        .optional()?
        .is_some())
}

pub(super) fn load_plan(conn: &Connection, keys: &StoreKeys, plan: PlanId) -> Result<StoredPlan, StoreError> {
    let corrupt = |what: String| StoreError::CorruptPlan { plan, what };
    let plan_key = keys.plan_key(plan);
    let sealed: Vec<u8> = conn
        .query_row("SELECT sealed FROM plans WHERE plan_key = ?1", [&plan_key[..]], |row| row.get(0))
        .optional()?
        .ok_or_else(|| corrupt("the plan entry is missing".into()))?;
    let header = open_header(keys, &plan_key, &sealed).map_err(corrupt)?;
    let mut docs = Vec::new();
    for compartment in Compartment::ALL {
        let doc_key = keys.doc_key(plan, compartment);
        let row: Option<(Option<Vec<u8>>, i64)> = conn
            .query_row(
                "SELECT snapshot, snapshot_gen FROM documents WHERE doc_key = ?1",
                [&doc_key[..]],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let Some((snapshot, generation)) = row else { continue };
        let mut doc = match snapshot {
            Some(sealed) => {
                let saved = keys
                    .seal
                    .open(&aad("documents", &doc_key, Some(generation)), &sealed)
                    .map_err(|_| corrupt(format!("{compartment} snapshot fails authentication")))?;
                // A stored snapshot may be a participant's own encoding (a compartment kept as
                // it was received), so a panic in `load` is one plan's corruption, not a crash.
                crate::plan::guarded(compartment, "loading a stored snapshot", || {
                    Automerge::load(&saved).map_err(crate::plan::PlanError::Automerge)
                })
                .map_err(|e| corrupt(format!("{compartment} snapshot does not load: {e}")))?
            }
            None => Automerge::new(),
        };
        let mut stmt =
            conn.prepare_cached("SELECT seq, sealed FROM changes WHERE doc_key = ?1 ORDER BY seq")?;
        let rows =
            stmt.query_map([&doc_key[..]], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)))?;
        let mut tail = Vec::new();
        for row in rows {
            let (seq, sealed) = row?;
            let change = keys
                .seal
                .open(&aad("changes", &doc_key, Some(seq)), &sealed)
                .map_err(|_| corrupt(format!("{compartment} change {seq} fails authentication")))?;
            tail.extend_from_slice(&change);
        }
        if !tail.is_empty() {
            doc.load_incremental(&tail)
                .map_err(|e| corrupt(format!("{compartment} changes do not apply: {e}")))?;
        }
        docs.push((compartment, doc));
    }
    Ok(StoredPlan { header, docs })
}

/// Appends changes to a document's log; `own` changes also count as unpushed (the outbox).
/// Returns how many change rows the document now has since its snapshot.
/// The document's row, created empty if it is new.
fn ensure_document(
    tx: &Transaction<'_>,
    keys: &StoreKeys,
    plan: PlanId,
    doc_key: &[u8; 32],
) -> Result<(), StoreError> {
    let plan_key = keys.plan_key(plan);
    tx.execute(
        "INSERT INTO documents (doc_key, plan_key, snapshot, snapshot_gen, next_seq, change_rows, unpushed)
         VALUES (?1, ?2, NULL, 0, 1, 0, 0) ON CONFLICT (doc_key) DO NOTHING",
        params![&doc_key[..], &plan_key[..]],
    )?;
    Ok(())
}

pub(super) fn append_doc_changes(
    tx: &Transaction<'_>,
    keys: &StoreKeys,
    plan: PlanId,
    doc_key: &[u8; 32],
    changes: &[Vec<u8>],
    own: bool,
) -> Result<u64, StoreError> {
    ensure_document(tx, keys, plan, doc_key)?;
    let (mut seq, rows): (i64, i64) = tx.query_row(
        "SELECT next_seq, change_rows FROM documents WHERE doc_key = ?1",
        [&doc_key[..]],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    {
        let mut insert =
            tx.prepare_cached("INSERT INTO changes (doc_key, seq, sealed) VALUES (?1, ?2, ?3)")?;
        for change in changes {
            let sealed = keys.seal.seal(&aad("changes", doc_key, Some(seq)), change);
            insert.execute(params![&doc_key[..], seq, sealed])?;
            seq += 1;
        }
    }
    let added = i64::try_from(changes.len()).unwrap_or(i64::MAX);
    let rows = rows.saturating_add(added);
    tx.execute(
        "UPDATE documents SET next_seq = ?2, change_rows = ?3, unpushed = unpushed + ?4 WHERE doc_key = ?1",
        params![&doc_key[..], seq, rows, if own { added } else { 0 }],
    )?;
    Ok(u64::try_from(rows).unwrap_or(0))
}

/// How many change rows a document has waiting for compaction (0 for a document not stored).
pub(super) fn change_rows(tx: &Transaction<'_>, doc_key: &[u8; 32]) -> Result<u64, StoreError> {
    let rows: Option<i64> = tx
        .query_row("SELECT change_rows FROM documents WHERE doc_key = ?1", [&doc_key[..]], |row| row.get(0))
        .optional()?;
    Ok(u64::try_from(rows.unwrap_or(0)).unwrap_or(0))
}

/// Records `count` received changes by compacting at once into `saved` (the document with
/// them applied), instead of sealing them into rows that compaction would drop right away.
pub(super) fn compact_received(
    tx: &Transaction<'_>,
    keys: &StoreKeys,
    plan: PlanId,
    doc_key: &[u8; 32],
    count: usize,
    saved: &[u8],
) -> Result<(), StoreError> {
    ensure_document(tx, keys, plan, doc_key)?;
    // Sequence numbers stay unique across the document's life (they are in the rows' AD).
    tx.execute(
        "UPDATE documents SET next_seq = next_seq + ?2 WHERE doc_key = ?1",
        params![&doc_key[..], i64::try_from(count).unwrap_or(i64::MAX)],
    )?;
    compact(tx, keys, doc_key, saved)
}

/// Replaces a document's snapshot by `saved` (its `save()`) and drops the change rows it covers.
pub(super) fn compact(
    tx: &Transaction<'_>,
    keys: &StoreKeys,
    doc_key: &[u8; 32],
    saved: &[u8],
) -> Result<(), StoreError> {
    let generation: i64 =
        tx.query_row("SELECT snapshot_gen FROM documents WHERE doc_key = ?1", [&doc_key[..]], |row| {
            row.get(0)
        })?;
    let generation = generation + 1;
    let sealed = keys.seal.seal(&aad("documents", doc_key, Some(generation)), saved);
    tx.execute(
        "UPDATE documents SET snapshot = ?2, snapshot_gen = ?3, change_rows = 0 WHERE doc_key = ?1",
        params![&doc_key[..], sealed, generation],
    )?;
    tx.execute("DELETE FROM changes WHERE doc_key = ?1", [&doc_key[..]])?;
    Ok(())
}

pub(super) fn unpushed_total(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row("SELECT COALESCE(SUM(unpushed), 0) FROM documents", [], |row| row.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}
