//! Each plan's sealed read model (`crate::read_model` decides what goes in and when it is
//! used), and the stamp of the stored rows a plan's documents are loaded from.
//!
//! The stamp is a digest of those rows' bytes as stored (sealed), not of a version counter:
//! a row damaged on disk (a bad flash block) or deleted changes it as surely as an edit does,
//! so a read model never outlives, or hides, damage to the documents it was computed from.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::records::aad;
use super::{StoreError, StoreKeys};
use crate::crypto::FieldDigest;
use crate::ids::PlanId;
use crate::plan::Compartment;

const TABLE: &str = "read_models";

pub(super) fn put(
    tx: &Transaction<'_>,
    keys: &StoreKeys,
    plan: PlanId,
    model: &[u8],
) -> Result<(), StoreError> {
    let plan_key = keys.plan_key(plan);
    let sealed = keys.seal.seal(&aad(TABLE, &plan_key, None), model);
    tx.execute(
        "INSERT INTO read_models (plan_key, sealed) VALUES (?1, ?2)
         ON CONFLICT (plan_key) DO UPDATE SET sealed = ?2",
        params![&plan_key[..], sealed],
    )?;
    Ok(())
}

/// The plan's read model, opened; `Ok(None)` when there is none. A row that fails
/// authentication is `CorruptPlan`, which the caller takes as a miss.
pub(super) fn get(conn: &Connection, keys: &StoreKeys, plan: PlanId) -> Result<Option<Vec<u8>>, StoreError> {
    let plan_key = keys.plan_key(plan);
    let sealed: Option<Vec<u8>> = conn
        .prepare_cached("SELECT sealed FROM read_models WHERE plan_key = ?1")?
        .query_row([&plan_key[..]], |row| row.get(0))
        .optional()?;
    sealed
        .map(|s| {
            keys.seal.open(&aad(TABLE, &plan_key, None), &s).map_err(|_| StoreError::CorruptPlan {
                plan,
                what: "its read model fails authentication".into(),
            })
        })
        .transpose()
}

/// A digest of every stored row that loading the plan reads (`records::load_plan`): its
/// header, and per compartment the document row (sealed snapshot, its generation, the
/// change counters) or its absence, and each change row. The outbox counter and the sealed
/// heads are left out: they change with a push, not with what the documents hold.
pub(super) fn documents_stamp(
    conn: &Connection,
    keys: &StoreKeys,
    plan: PlanId,
) -> Result<[u8; 32], StoreError> {
    let mut digest = FieldDigest::new(b"eenplan/read-model/documents/v1");
    let plan_key = keys.plan_key(plan);
    let mut header = conn.prepare_cached("SELECT sealed FROM plans WHERE plan_key = ?1")?;
    let mut rows = header.query([&plan_key[..]])?;
    match rows.next()? {
        Some(row) => value(&mut digest, row.get_ref(0)?),
        None => digest.optional(None),
    }
    drop(rows);
    let mut document = conn.prepare_cached(
        "SELECT snapshot, snapshot_gen, next_seq, change_rows FROM documents WHERE doc_key = ?1",
    )?;
    let mut changes =
        conn.prepare_cached("SELECT seq, sealed FROM changes WHERE doc_key = ?1 ORDER BY seq")?;
    for compartment in Compartment::ALL {
        let doc_key = keys.doc_key(plan, compartment);
        let mut rows = document.query([&doc_key[..]])?;
        match rows.next()? {
            None => digest.optional(None),
            Some(row) => {
                digest.optional(Some(compartment.as_str().as_bytes()));
                for column in 0..4 {
                    value(&mut digest, row.get_ref(column)?);
                }
            }
        }
        drop(rows);
        let mut rows = changes.query([&doc_key[..]])?;
        while let Some(row) = rows.next()? {
            value(&mut digest, row.get_ref(0)?);
            value(&mut digest, row.get_ref(1)?);
        }
    }
    Ok(digest.finish())
}

/// One stored value into the digest, whatever its type: a damaged cell that changed type
/// changes the stamp too, and never fails it.
fn value(digest: &mut FieldDigest, value: ValueRef<'_>) {
    match value {
        ValueRef::Null => digest.optional(None),
        ValueRef::Integer(n) => {
            digest.optional(Some(b"i"));
            digest.number(n);
        }
        ValueRef::Real(x) => {
            digest.optional(Some(b"r"));
            digest.field(&x.to_be_bytes());
        }
        ValueRef::Text(bytes) => {
            digest.optional(Some(b"t"));
            digest.field(bytes);
        }
        ValueRef::Blob(bytes) => {
            digest.optional(Some(b"b"));
            digest.field(bytes);
        }
    }
}
