//! Rows of the sync tables. Same rules as `records`: reads take `&Connection`, writes take
//! `&Transaction`, every value is sealed with associated data naming its table and row.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::records::aad;
use super::{EpochKey, PendingBundle, StoreError, StoreKeys};
use crate::ids::PlanId;

pub(super) fn put_state(
    tx: &Transaction<'_>,
    keys: &StoreKeys,
    name: &str,
    value: &[u8],
) -> Result<(), StoreError> {
    let sealed = keys.seal.seal(&aad("sync_state", name.as_bytes(), None), value);
    tx.execute(
        "INSERT INTO sync_state (name, sealed) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET sealed = ?2",
        params![name, sealed],
    )?;
    Ok(())
}

pub(super) fn get_state(
    conn: &Connection,
    keys: &StoreKeys,
    name: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    let sealed: Option<Vec<u8>> = conn
        .query_row("SELECT sealed FROM sync_state WHERE name = ?1", [name], |row| row.get(0))
        .optional()?;
    sealed
        .map(|s| {
            keys.seal
                .open(&aad("sync_state", name.as_bytes(), None), &s)
                .map_err(|_| StoreError::Corrupt(format!("sync state {name} fails authentication")))
        })
        .transpose()
}

pub(super) fn put_doc_key(
    tx: &Transaction<'_>,
    keys: &StoreKeys,
    doc_key: &[u8; 32],
    epoch: u32,
    key: &[u8; 32],
) -> Result<(), StoreError> {
    let sealed = keys.seal.seal(&aad("doc_keys", doc_key, Some(i64::from(epoch))), key);
    tx.execute(
        "INSERT INTO doc_keys (doc_key, epoch, sealed) VALUES (?1, ?2, ?3) ON CONFLICT (doc_key, epoch) DO NOTHING",
        params![&doc_key[..], epoch, sealed],
    )?;
    Ok(())
}

/// The newest epoch key of a document, if this device holds one.
pub(super) fn latest_doc_key(
    conn: &Connection,
    keys: &StoreKeys,
    doc_key: &[u8; 32],
) -> Result<Option<EpochKey>, StoreError> {
    let row: Option<(u32, Vec<u8>)> = conn
        .query_row(
            "SELECT epoch, sealed FROM doc_keys WHERE doc_key = ?1 ORDER BY epoch DESC LIMIT 1",
            [&doc_key[..]],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    row.map(|(epoch, sealed)| open_key(keys, doc_key, epoch, &sealed).map(|k| (epoch, k))).transpose()
}

pub(super) fn doc_key_at(
    conn: &Connection,
    keys: &StoreKeys,
    doc_key: &[u8; 32],
    epoch: u32,
) -> Result<Option<zeroize::Zeroizing<[u8; 32]>>, StoreError> {
    let sealed: Option<Vec<u8>> = conn
        .query_row(
            "SELECT sealed FROM doc_keys WHERE doc_key = ?1 AND epoch = ?2",
            params![&doc_key[..], epoch],
            |row| row.get(0),
        )
        .optional()?;
    sealed.map(|s| open_key(keys, doc_key, epoch, &s)).transpose()
}

fn open_key(
    keys: &StoreKeys,
    doc_key: &[u8; 32],
    epoch: u32,
    sealed: &[u8],
) -> Result<zeroize::Zeroizing<[u8; 32]>, StoreError> {
    let plain = keys
        .seal
        .open(&aad("doc_keys", doc_key, Some(i64::from(epoch))), sealed)
        .map_err(|_| StoreError::Corrupt("a document key fails authentication".into()))?;
    let key: [u8; 32] =
        plain.as_slice().try_into().map_err(|_| StoreError::Corrupt("a document key is malformed".into()))?;
    Ok(zeroize::Zeroizing::new(key))
}

pub(super) fn put_pending_bundle(
    tx: &Transaction<'_>,
    keys: &StoreKeys,
    bundle_id: &[u8; 16],
    doc_key: &[u8; 32],
    changes: u64,
    payload: &[u8],
) -> Result<(), StoreError> {
    let sealed = keys.seal.seal(&aad("pending_bundles", bundle_id, None), payload);
    tx.execute(
        "INSERT INTO pending_bundles (bundle_id, doc_key, changes, sealed) VALUES (?1, ?2, ?3, ?4)",
        params![&bundle_id[..], &doc_key[..], i64::try_from(changes).unwrap_or(i64::MAX), sealed],
    )?;
    Ok(())
}

/// Every pending bundle: (bundle id, its sealed payload opened).
pub(super) fn pending_bundles(conn: &Connection, keys: &StoreKeys) -> Result<Vec<PendingBundle>, StoreError> {
    let mut stmt = conn.prepare("SELECT bundle_id, sealed FROM pending_bundles ORDER BY rowid")?;
    let rows = stmt.query_map([], |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Vec<u8>>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (id, sealed) = row?;
        let id: [u8; 16] =
            id.as_slice().try_into().map_err(|_| StoreError::Corrupt("a bundle id is malformed".into()))?;
        let plain = keys
            .seal
            .open(&aad("pending_bundles", &id, None), &sealed)
            .map_err(|_| StoreError::Corrupt("a pending bundle fails authentication".into()))?;
        out.push((id, plain));
    }
    Ok(out)
}

/// Removes an acknowledged bundle and takes its changes off the document's outbox count.
pub(super) fn acknowledge_bundle(tx: &Transaction<'_>, bundle_id: &[u8; 16]) -> Result<(), StoreError> {
    let row: Option<(Vec<u8>, i64)> = tx
        .query_row(
            "SELECT doc_key, changes FROM pending_bundles WHERE bundle_id = ?1",
            [&bundle_id[..]],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    if let Some((doc_key, changes)) = row {
        tx.execute("DELETE FROM pending_bundles WHERE bundle_id = ?1", [&bundle_id[..]])?;
        tx.execute(
            "UPDATE documents SET unpushed = MAX(0, unpushed - ?2) WHERE doc_key = ?1",
            params![doc_key, changes],
        )?;
    }
    Ok(())
}

pub(super) fn put_sealed_heads(
    tx: &Transaction<'_>,
    keys: &StoreKeys,
    doc_key: &[u8; 32],
    heads: &[u8],
) -> Result<(), StoreError> {
    let sealed = keys.seal.seal(&aad("sealed_heads", doc_key, None), heads);
    tx.execute("UPDATE documents SET sealed_heads = ?2 WHERE doc_key = ?1", params![&doc_key[..], sealed])?;
    Ok(())
}

pub(super) fn sealed_heads(
    conn: &Connection,
    keys: &StoreKeys,
    doc_key: &[u8; 32],
) -> Result<Option<Vec<u8>>, StoreError> {
    let sealed: Option<Option<Vec<u8>>> = conn
        .query_row("SELECT sealed_heads FROM documents WHERE doc_key = ?1", [&doc_key[..]], |row| row.get(0))
        .optional()?;
    sealed
        .flatten()
        .map(|s| {
            keys.seal
                .open(&aad("sealed_heads", doc_key, None), &s)
                .map_err(|_| StoreError::Corrupt("pushed heads fail authentication".into()))
        })
        .transpose()
}

pub(super) fn unpushed(conn: &Connection, doc_key: &[u8; 32]) -> Result<u64, StoreError> {
    let n: Option<i64> = conn
        .query_row("SELECT unpushed FROM documents WHERE doc_key = ?1", [&doc_key[..]], |row| row.get(0))
        .optional()?;
    Ok(u64::try_from(n.unwrap_or(0)).unwrap_or(0))
}

/// Stores the write rules of a document's epoch; the first stored stays (as the server keeps
/// the first commitment).
pub(super) fn put_epoch_rules(
    tx: &Transaction<'_>,
    keys: &StoreKeys,
    doc_key: &[u8; 32],
    epoch: u32,
    rules: &[u8],
) -> Result<(), StoreError> {
    let sealed = keys.seal.seal(&aad("epoch_rules", doc_key, Some(i64::from(epoch))), rules);
    tx.execute(
        "INSERT INTO epoch_rules (doc_key, epoch, sealed) VALUES (?1, ?2, ?3) ON CONFLICT (doc_key, epoch) DO NOTHING",
        params![&doc_key[..], epoch, sealed],
    )?;
    Ok(())
}

pub(super) fn epoch_rules(
    conn: &Connection,
    keys: &StoreKeys,
    doc_key: &[u8; 32],
    epoch: u32,
) -> Result<Option<Vec<u8>>, StoreError> {
    let sealed: Option<Vec<u8>> = conn
        .query_row(
            "SELECT sealed FROM epoch_rules WHERE doc_key = ?1 AND epoch = ?2",
            params![&doc_key[..], epoch],
            |row| row.get(0),
        )
        .optional()?;
    sealed
        .map(|s| {
            keys.seal
                .open(&aad("epoch_rules", doc_key, Some(i64::from(epoch))), &s)
                .map_err(|_| StoreError::Corrupt("an epoch's write rules fail authentication".into()))
        })
        .transpose()
}

pub(super) fn put_certificate(
    tx: &Transaction<'_>,
    keys: &StoreKeys,
    device: &[u8; 16],
    chain: &[u8],
) -> Result<(), StoreError> {
    let device_key = keys.lookup.keyed_hash(&[b"device|".as_slice(), device].concat());
    let sealed = keys.seal.seal(&aad("certificates", &device_key, None), chain);
    tx.execute(
        "INSERT INTO certificates (device_key, sealed) VALUES (?1, ?2) ON CONFLICT (device_key) DO UPDATE SET sealed = ?2",
        params![&device_key[..], sealed],
    )?;
    Ok(())
}

pub(super) fn certificate(
    conn: &Connection,
    keys: &StoreKeys,
    device: &[u8; 16],
) -> Result<Option<Vec<u8>>, StoreError> {
    let device_key = keys.lookup.keyed_hash(&[b"device|".as_slice(), device].concat());
    let sealed: Option<Vec<u8>> = conn
        .query_row("SELECT sealed FROM certificates WHERE device_key = ?1", [&device_key[..]], |row| {
            row.get(0)
        })
        .optional()?;
    sealed
        .map(|s| {
            keys.seal
                .open(&aad("certificates", &device_key, None), &s)
                .map_err(|_| StoreError::Corrupt("a stored certificate fails authentication".into()))
        })
        .transpose()
}

/// The sealed tables of received bundles that wait for a key: [`PARKED_BUNDLES`] and
/// [`PARKED_WITNESSES`].
pub(super) const PARKED_BUNDLES: &str = "parked_bundles";
pub(super) const PARKED_WITNESSES: &str = "parked_witnesses";

pub(super) fn park(
    tx: &Transaction<'_>,
    keys: &StoreKeys,
    table: &'static str,
    bundle: &[u8],
) -> Result<(), StoreError> {
    tx.execute(&format!("INSERT INTO {table} (sealed) VALUES (x'')"), [])?;
    let id = tx.last_insert_rowid();
    let sealed = keys.seal.seal(&aad(table, &id.to_be_bytes(), None), bundle);
    tx.execute(&format!("UPDATE {table} SET sealed = ?2 WHERE id = ?1"), params![id, sealed])?;
    Ok(())
}

pub(super) fn parked(
    conn: &Connection,
    keys: &StoreKeys,
    table: &'static str,
) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT id, sealed FROM {table} ORDER BY id"))?;
    let rows = stmt.query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (id, sealed) = row?;
        let plain = keys
            .seal
            .open(&aad(table, &id.to_be_bytes(), None), &sealed)
            .map_err(|_| StoreError::Corrupt(format!("a row of {table} fails authentication")))?;
        out.push((id, plain));
    }
    Ok(out)
}

pub(super) fn unpark(tx: &Transaction<'_>, table: &'static str, id: i64) -> Result<(), StoreError> {
    tx.execute(&format!("DELETE FROM {table} WHERE id = ?1"), [id])?;
    Ok(())
}

pub(super) fn mark_registered(
    tx: &Transaction<'_>,
    keys: &StoreKeys,
    plan: PlanId,
) -> Result<(), StoreError> {
    let plan_key = keys.plan_key(plan);
    tx.execute(
        "INSERT INTO registered_plans (plan_key) VALUES (?1) ON CONFLICT (plan_key) DO NOTHING",
        [&plan_key[..]],
    )?;
    Ok(())
}

pub(super) fn is_registered(conn: &Connection, keys: &StoreKeys, plan: PlanId) -> Result<bool, StoreError> {
    let plan_key = keys.plan_key(plan);
    Ok(conn
        .query_row("SELECT 1 FROM registered_plans WHERE plan_key = ?1", [&plan_key[..]], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Gives a pending bundle a new id and sealed form (re-sealed under a document's newer key
/// epoch). Its place in the outbox and its change count stay.
pub(super) fn replace_pending_bundle(
    tx: &Transaction<'_>,
    keys: &StoreKeys,
    old_id: &[u8; 16],
    new_id: &[u8; 16],
    payload: &[u8],
) -> Result<(), StoreError> {
    let sealed = keys.seal.seal(&aad("pending_bundles", new_id, None), payload);
    tx.execute(
        "UPDATE pending_bundles SET bundle_id = ?2, sealed = ?3 WHERE bundle_id = ?1",
        params![&old_id[..], &new_id[..], sealed],
    )?;
    Ok(())
}

/// Forgets every epoch key of a document (the sharing policy no longer lets this device's
/// role read it).
pub(super) fn delete_doc_keys(tx: &Transaction<'_>, doc_key: &[u8; 32]) -> Result<(), StoreError> {
    tx.execute("DELETE FROM doc_keys WHERE doc_key = ?1", [&doc_key[..]])?;
    Ok(())
}

pub(super) fn clear_unpushed(tx: &Transaction<'_>, doc_key: &[u8; 32]) -> Result<(), StoreError> {
    tx.execute("UPDATE documents SET unpushed = 0 WHERE doc_key = ?1", [&doc_key[..]])?;
    Ok(())
}

pub(super) fn put_membership(
    tx: &Transaction<'_>,
    keys: &StoreKeys,
    plan: PlanId,
    chain: &[u8],
) -> Result<(), StoreError> {
    let plan_key = keys.plan_key(plan);
    let sealed = keys.seal.seal(&aad("membership", &plan_key, None), chain);
    tx.execute(
        "INSERT INTO membership (plan_key, sealed) VALUES (?1, ?2) ON CONFLICT (plan_key) DO UPDATE SET sealed = ?2",
        params![&plan_key[..], sealed],
    )?;
    Ok(())
}

pub(super) fn membership(
    conn: &Connection,
    keys: &StoreKeys,
    plan: PlanId,
) -> Result<Option<Vec<u8>>, StoreError> {
    let plan_key = keys.plan_key(plan);
    let sealed: Option<Vec<u8>> = conn
        .query_row("SELECT sealed FROM membership WHERE plan_key = ?1", [&plan_key[..]], |row| row.get(0))
        .optional()?;
    sealed
        .map(|s| {
            keys.seal
                .open(&aad("membership", &plan_key, None), &s)
                .map_err(|_| StoreError::Corrupt("a membership chain fails authentication".into()))
        })
        .transpose()
}

/// Drops a document's pending bundles (their changes were carried onto an erasure's base)
/// and zeroes its outbox count.
pub(super) fn drop_pending_of(tx: &Transaction<'_>, doc_key: &[u8; 32]) -> Result<(), StoreError> {
    tx.execute("DELETE FROM pending_bundles WHERE doc_key = ?1", [&doc_key[..]])?;
    clear_unpushed(tx, doc_key)
}

/// Forgets a document's keys and write rules of epochs before `epoch`.
pub(super) fn delete_doc_keys_before(
    tx: &Transaction<'_>,
    doc_key: &[u8; 32],
    epoch: u32,
) -> Result<(), StoreError> {
    tx.execute("DELETE FROM doc_keys WHERE doc_key = ?1 AND epoch < ?2", params![&doc_key[..], epoch])?;
    tx.execute("DELETE FROM epoch_rules WHERE doc_key = ?1 AND epoch < ?2", params![&doc_key[..], epoch])?;
    Ok(())
}
