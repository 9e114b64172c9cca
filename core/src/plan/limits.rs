//! The limits a document's content must stay within: checked on every local edit, and on every
//! document built from received content before it replaces a held one.
//!
//! Received content is held to the same limits as local edits, with one allowance: what
//! concurrent edits can legitimately add up to. A scalar is written whole by one device, so a
//! received scalar meets the local limit exactly; but two workers typing into the same note
//! offline, or adding notes while each sees room for one more, merge into more than either
//! could write alone. Texts, entry counts and the document's size may therefore reach
//! [`super::vocab::RECEIVED_HEADROOM`] times the local limit in a received document.

use automerge::{Automerge, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, ScalarValueRef, Value, ValueRef};

use super::received::Refusal;
use super::vocab::{
    LONG_TEXT_MAX_CHARS, MAX_DOCUMENT_BYTES, MAX_ENTITIES, MAX_KEY_CHARS, MAX_NESTING,
    MAX_RECEIVED_DOCUMENT_BYTES, RECEIVED_HEADROOM, SHORT_TEXT_MAX_CHARS,
};
use super::{Compartment, Plan, PlanError, ValidationError};

/// What a refused document was over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A one-line value: characters (or bytes, for a byte value: four per character).
    ShortText,
    /// A text (a note, an agreement, a description): characters.
    LongText,
    /// Entries of one map or list (a collection of entities, the escalation steps).
    Entries,
    /// Names in the domain list.
    Domains,
    /// Objects nested in objects.
    Nesting,
    /// Characters of a map key.
    KeyLength,
    /// Bytes of one change.
    ChangeSize,
    /// Bytes of the document's columns (what `save` writes before compressing).
    DocumentSize,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limit::ShortText => "one-line value length",
            Limit::LongText => "text length",
            Limit::Entries => "number of entries",
            Limit::Domains => "number of domains",
            Limit::Nesting => "nesting depth",
            Limit::KeyLength => "key length",
            Limit::ChangeSize => "change size",
            Limit::DocumentSize => "document size",
        })
    }
}

/// Checks a document built from received content against every limit: its size, then every
/// visible value (conflicting ones included) of every object, walked without recursion.
pub(super) fn check_received(doc: &Automerge, compartment: Compartment) -> Result<(), PlanError> {
    let over = |limit, at: &str, found, max| PlanError::Refused {
        compartment,
        reason: Refusal::over(limit, shorten(at), found, max),
    };
    let bytes = doc.save_nocompress().len();
    if bytes > MAX_RECEIVED_DOCUMENT_BYTES {
        return Err(over(Limit::DocumentSize, "the document", bytes, MAX_RECEIVED_DOCUMENT_BYTES));
    }
    let mut stack = vec![(ROOT, ObjType::Map, String::new(), 0usize)];
    while let Some((obj, ty, path, depth)) = stack.pop() {
        let (limit, max) = match ty {
            ObjType::Text => (Limit::LongText, LONG_TEXT_MAX_CHARS * RECEIVED_HEADROOM),
            _ => (Limit::Entries, MAX_ENTITIES * RECEIVED_HEADROOM),
        };
        let len = doc.length(&obj);
        if len > max {
            return Err(over(limit, &path, len, max));
        }
        for (key, entry) in entries(doc, &obj, ty)? {
            let key_len = key.chars().count();
            let at = if path.is_empty() { key } else { format!("{path}/{key}") };
            if key_len > MAX_KEY_CHARS {
                return Err(over(Limit::KeyLength, &at, key_len, MAX_KEY_CHARS));
            }
            match entry {
                Entry::Object(..) if depth >= MAX_NESTING => {
                    return Err(over(Limit::Nesting, &at, depth + 1, MAX_NESTING));
                }
                Entry::Object(child, child_ty) => stack.push((child, child_ty, at, depth + 1)),
                Entry::Scalar { len, max } if len > max => return Err(over(Limit::ShortText, &at, len, max)),
                Entry::Scalar { .. } => {}
            }
        }
    }
    Ok(())
}

/// One value in a map or list, as far as the limits care.
enum Entry {
    Object(ObjId, ObjType),
    /// A scalar's size and the most it may have: strings in characters, byte values in bytes.
    Scalar {
        len: usize,
        max: usize,
    },
}

/// Every value of a map or list (none for a text: only its length counts), all concurrent
/// values of a conflicted key included.
fn entries(doc: &Automerge, obj: &ObjId, ty: ObjType) -> Result<Vec<(String, Entry)>, PlanError> {
    let mut out = Vec::new();
    match ty {
        ObjType::Text => {}
        ObjType::Map | ObjType::Table => {
            let items: Vec<_> = doc
                .map_range(obj, ..)
                .map(|i| (i.key.to_string(), i.conflict, item_entry(&i.value, i.id())))
                .collect();
            for (key, conflict, entry) in items {
                if conflict {
                    out.extend(all_values(doc, obj, &key, key.as_str().into())?);
                } else {
                    out.push((key, entry));
                }
            }
        }
        ObjType::List => {
            let items: Vec<_> = doc
                .list_range(obj, ..)
                .map(|i| (i.index, i.conflict, item_entry(&i.value, i.id())))
                .collect();
            for (index, conflict, entry) in items {
                if conflict {
                    out.extend(all_values(doc, obj, &index.to_string(), index.into())?);
                } else {
                    out.push((index.to_string(), entry));
                }
            }
        }
    }
    Ok(out)
}

/// The concurrent values of one conflicted key or index.
fn all_values(
    doc: &Automerge,
    obj: &ObjId,
    key: &str,
    prop: automerge::Prop,
) -> Result<Vec<(String, Entry)>, PlanError> {
    Ok(doc
        .get_all(obj, prop)?
        .into_iter()
        .map(|(value, id)| {
            let entry = match value {
                Value::Object(ty) => Entry::Object(id, ty),
                Value::Scalar(scalar) => owned_scalar(&scalar),
            };
            (key.to_owned(), entry)
        })
        .collect())
}

fn item_entry(value: &ValueRef<'_>, id: ObjId) -> Entry {
    match value {
        ValueRef::Object(ty) => Entry::Object(id, *ty),
        ValueRef::Scalar(ScalarValueRef::Str(s)) => {
            Entry::Scalar { len: s.chars().count(), max: SHORT_TEXT_MAX_CHARS }
        }
        ValueRef::Scalar(ScalarValueRef::Bytes(b) | ScalarValueRef::Unknown { bytes: b, .. }) => {
            Entry::Scalar { len: b.len(), max: MAX_BYTES_VALUE }
        }
        ValueRef::Scalar(_) => Entry::Scalar { len: 0, max: 0 },
    }
}

fn owned_scalar(scalar: &ScalarValue) -> Entry {
    match scalar {
        ScalarValue::Str(s) => Entry::Scalar { len: s.chars().count(), max: SHORT_TEXT_MAX_CHARS },
        ScalarValue::Bytes(b) | ScalarValue::Unknown { bytes: b, .. } => {
            Entry::Scalar { len: b.len(), max: MAX_BYTES_VALUE }
        }
        _ => Entry::Scalar { len: 0, max: 0 },
    }
}

/// A byte value may be as long as a one-line text's UTF-8 (the plan writes none).
const MAX_BYTES_VALUE: usize = SHORT_TEXT_MAX_CHARS * 4;

fn shorten(path: &str) -> String {
    path.chars().take(120).collect()
}

/// The document size as last measured, and the document's op and change counts then: later
/// edits are bounded from these cheaply, and the document is measured again only when that
/// bound passes the limit.
#[derive(Debug, Clone, Copy)]
pub(super) struct SizeMark {
    bytes: usize,
    ops: u64,
    changes: u64,
}

/// The most one op of a local edit adds to the document's columns: a key and a value of at
/// most 228 and 200 characters (4 bytes each), with its ids.
const MAX_OP_BYTES: u64 = 2048;
/// The most one change adds beyond its ops: its hash, time, message and dependencies (one per
/// head it follows, a few dozen at most).
const MAX_CHANGE_OVERHEAD_BYTES: u64 = 4096;

impl Plan {
    /// Refuses a local edit of a document that has reached [`MAX_DOCUMENT_BYTES`]. The edit
    /// itself may take the document past it by its own few kilobytes, which the received
    /// limit's headroom absorbs.
    pub(super) fn check_room(&mut self, compartment: Compartment) -> Result<(), PlanError> {
        let doc = self.doc(compartment)?;
        let stats = doc.stats();
        let bound = self.sizes[compartment.index()].map(|mark| {
            let ops = stats.num_ops.saturating_sub(mark.ops);
            let changes = stats.num_changes.saturating_sub(mark.changes);
            let added = ops
                .saturating_mul(MAX_OP_BYTES)
                .saturating_add(changes.saturating_mul(MAX_CHANGE_OVERHEAD_BYTES));
            (mark.bytes as u64).saturating_add(added)
        });
        if bound.is_some_and(|b| b <= MAX_DOCUMENT_BYTES as u64) {
            return Ok(());
        }
        let bytes = doc.save_nocompress().len();
        self.sizes[compartment.index()] =
            Some(SizeMark { bytes, ops: stats.num_ops, changes: stats.num_changes });
        if bytes >= MAX_DOCUMENT_BYTES {
            return Err(ValidationError::DocumentFull { compartment, bytes, max: MAX_DOCUMENT_BYTES }.into());
        }
        Ok(())
    }
}

/// Refuses adding an entry to a map or list that already holds [`MAX_ENTITIES`].
pub(super) fn check_entries(doc: &Automerge, obj: &ObjId, what: &'static str) -> Result<(), ValidationError> {
    if doc.length(obj) >= MAX_ENTITIES {
        return Err(ValidationError::TooMany { what, max: MAX_ENTITIES });
    }
    Ok(())
}
