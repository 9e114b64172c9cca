//! Removing a whole plan from the store (retention, `crate::retention`): every row keyed by
//! the plan's lookup key or one of its documents' lookup keys, in the caller's transaction.
//! With `secure_delete` the deleted cells are zeroed; [`super::Store::reclaim_space`]
//! afterwards checkpoints the WAL into the file and truncates it, so no frame keeps a copy.

use rusqlite::Transaction;

use super::{StoreError, StoreKeys};
use crate::ids::PlanId;
use crate::plan::Compartment;

/// Tables keyed by a document's lookup key (`doc_key`). `documents` goes last: the others
/// refer to it.
const BY_DOCUMENT: [&str; 6] =
    ["changes", "pending_bundles", "doc_keys", "epoch_rules", "review_marks", "documents"];
/// Tables keyed by the plan's lookup key (`plan_key`). `plans` goes last: `documents`
/// refers to it.
const BY_PLAN: [&str; 5] = ["documents", "membership", "registered_plans", "read_models", "plans"];

/// Deletes every row of `plan`. Returns how many rows went.
pub(super) fn delete_plan(tx: &Transaction<'_>, keys: &StoreKeys, plan: PlanId) -> Result<usize, StoreError> {
    let mut deleted = 0;
    for compartment in Compartment::ALL {
        let doc_key = keys.doc_key(plan, compartment);
        for table in BY_DOCUMENT {
            deleted += tx.execute(&format!("DELETE FROM {table} WHERE doc_key = ?1"), [&doc_key[..]])?;
        }
    }
    let plan_key = keys.plan_key(plan);
    for table in BY_PLAN {
        deleted += tx.execute(&format!("DELETE FROM {table} WHERE plan_key = ?1"), [&plan_key[..]])?;
    }
    Ok(deleted)
}
