//! Crypto-shredding: the one place the wrapped data key is destroyed.
//!
//! Why in the database and not in a separate key file: the wrapped key has lived in the `meta`
//! table since the first release, and every copy SQLite could keep of it is within reach here.
//!
//! - The row is deleted with `secure_delete` on (every connection sets it, and it is set again
//!   here because this write is the one that matters): SQLite zeroes the freed cell and any
//!   freed page, so the new page image carries zeros where the key was.
//! - The transaction commits with `synchronous=FULL`: once it returns, the key is gone from the
//!   database as any later reader sees it, even if the process dies the next instant.
//! - `wal_checkpoint(TRUNCATE)` then writes that page image over the old page in the database
//!   file itself and truncates the WAL to zero bytes, so neither the page the key sat in nor an
//!   older WAL frame that held it (the frame written at init, or by a passphrase change) can be
//!   read back from the directory. The wipe deletes both files right after.
//!
//! What no software can promise: flash storage remaps blocks, so a physical copy of an old page
//! may survive in the chip until it is erased. That copy is still only the *wrapped* key: on a
//! phone it opens only with the platform keystore key, which the wipe deletes
//! ([`crate::keystore::KeyStore::destroy`]); on the desktop it needs the passphrase.

use rusqlite::{Connection, TransactionBehavior};

use super::{StoreError, records};

/// The row a wipe leaves instead of the key: the wipe's own record, so that an interrupted wipe
/// is recognised (and completed) by the next open instead of looking like a damaged store.
pub(super) const META_WIPED: &str = "wiped";

pub(super) fn shred(conn: &mut Connection, record: &[u8]) -> Result<(), StoreError> {
    conn.pragma_update(None, "secure_delete", "ON")?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute("DELETE FROM meta WHERE name = ?1", [records::META_WRAPPED_KEY])?;
    // Sealed under the data key, so already unreadable; deleted too so that not even the
    // ciphertext of the device's private keys outlives the wipe.
    tx.execute("DELETE FROM secrets", [])?;
    // Every plan's read model: the plans' content in its most compact, readable-at-a-glance
    // form. Sealed under the destroyed key as well; deleted for the same reason.
    // A store wiped unopened (`Store::shred_at`) may predate the table's migration.
    let has_read_models: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'read_models')",
        [],
        |row| row.get(0),
    )?;
    if has_read_models {
        tx.execute("DELETE FROM read_models", [])?;
    }
    records::put_meta(&tx, META_WIPED, record)?;
    tx.commit()?;
    // The commit above is what destroys the key. The checkpoint removes the last on-disk
    // images of the old page; should it fail (an I/O error), closing the connection
    // checkpoints again and the wipe deletes both files next, so it is not worth failing the
    // wipe over.
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    Ok(())
}
