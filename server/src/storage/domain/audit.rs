//! The organisations' audit keys and uploads, and the server's own event chain.

use crate::storage::backend::WriteRows;
use crate::storage::{AuditKeyRecord, Result, ServerEventRecord, StorageError};

pub(super) fn put_audit_key(tx: &dyn WriteRows, key: &AuditKeyRecord) -> Result<bool> {
    if tx.org(key.org)?.is_none() {
        return Err(StorageError::NotFound);
    }
    let keys = tx.audit_keys(key.org)?;
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
    tx.insert_audit_key(key)?;
    Ok(true)
}

pub(super) fn append_server_events(tx: &dyn WriteRows, events: &[ServerEventRecord]) -> Result<()> {
    let next = tx.last_server_event()?.map_or(0, |e| e.seq) + 1;
    for (expected, event) in (next..).zip(events) {
        if event.seq != expected {
            return Err(StorageError::Conflict(format!(
                "server event {} does not continue the chain at {expected}",
                event.seq
            )));
        }
    }
    // Checked whole before the one insert, so a bad batch costs no statement (the
    // transaction would store it whole or not at all either way).
    if events.is_empty() {
        return Ok(());
    }
    tx.insert_server_events(events)
}
