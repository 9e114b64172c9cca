//! The one boundary through which bytes from elsewhere (a received bundle's changes, a received
//! snapshot, a transfer file's documents) reach automerge, and through which documents built
//! from them are read.
//!
//! automerge 0.12 panics on some malformed input: index out of bounds and failed unwraps in
//! its column decoders, both while parsing and while applying changes that parsed
//! (`core/tests/data/automerge-crashers/` keeps the ones found). Whoever can send us bytes can
//! send those, so every call that hands automerge received bytes, or reads a document built
//! from them, runs inside [`guarded`], which turns a panic into [`PlanError::Refused`]: a crafted
//! bundle is a refused bundle, never a crashed sync. What a panic cannot be caught from
//! (exhausting memory) is refused before automerge sees the bytes: sizes are bounded, deflated
//! chunks are measured by inflating them into nothing (`chunks.rs`), and chunks of a kind our
//! devices never send are not parsed at all.

use std::panic::{AssertUnwindSafe, catch_unwind};

// With `panic = "abort"` no panic unwinds to `guarded`, and a crafted bundle would end the app.
#[cfg(panic = "abort")]
compile_error!("eenplan-core needs panic = \"unwind\": it catches automerge's panics on received input");

use automerge::{Automerge, Change, ChangeHash};

use super::chunks::{self, ChunkKind};
use super::limits::{self, Limit};
use super::{Compartment, Plan, PlanError, read, view};
use crate::ids::{DeviceId, PlanId};

/// Why received bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not automerge's framing, or truncated.
    #[error("{0}")]
    Framing(String),
    /// A chunk of a kind that has no place here (a compressed change, a document among changes).
    #[error("a {found} chunk where a {expected} chunk belongs")]
    UnexpectedChunk { expected: ChunkKind, found: ChunkKind },
    /// automerge parsed the bytes and refused them, or refused to apply them.
    #[error("automerge refused it: {0}")]
    Automerge(String),
    /// automerge panicked on it: the input is crafted or automerge has a bug; either way it
    /// is not applied.
    #[error("automerge failed while {operation}: {message}")]
    AutomergePanicked { operation: &'static str, message: String },
    /// A change in a bundle was written under another device's actor id: the bundle's
    /// signature vouches for its author only, so such a change would put words in someone
    /// else's mouth (and could block that device's real change with the same sequence number).
    #[error("a change by {actor} in a bundle signed by {author}")]
    ForeignChange { author: DeviceId, actor: String },
    /// Bigger than what a device may write (see [`super::vocab`] for the limits).
    #[error("{limit} at {at}: {found}, more than the {max} allowed")]
    OverLimit { limit: Limit, at: String, found: u64, max: u64 },
}

impl Refusal {
    pub(super) fn over(limit: Limit, at: impl Into<String>, found: usize, max: usize) -> Self {
        let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        Refusal::OverLimit { limit, at: at.into(), found: wide(found), max: wide(max) }
    }
}

/// Runs `f`, which hands automerge received bytes or reads a document built from them, and
/// turns a panic inside it into a refusal.
///
/// Unwind safety: every closure passed here either only reads, or builds or modifies a
/// document that it owns and that is dropped when this returns an error (a received document
/// being loaded, or the copy of a held document that received changes are merged into). A
/// panic can therefore leave nothing half-modified that anyone reads afterwards: the plan in
/// memory is changed only after `f` returned `Ok`. automerge's documents share no interior
/// mutability between copies (their `Arc`s hold immutable mark sets), so a copy is
/// independent of the held document.
pub(crate) fn guarded<T>(
    compartment: Compartment,
    operation: &'static str,
    f: impl FnOnce() -> Result<T, PlanError>,
) -> Result<T, PlanError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            let message = message.chars().take(200).collect();
            Err(PlanError::Refused { compartment, reason: Refusal::AutomergePanicked { operation, message } })
        }
    }
}

fn refused(compartment: Compartment, reason: Refusal) -> PlanError {
    PlanError::Refused { compartment, reason }
}

/// The changes of a received `Changes` bundle (its payload: change chunks back to back), each
/// of which must be `author`'s own. Refused whole if any chunk is not a plain change chunk, is
/// larger than one edit can be, does not parse, or was written by another actor.
pub fn parse_received_changes(
    compartment: Compartment,
    payload: &[u8],
    author: DeviceId,
) -> Result<Vec<Change>, PlanError> {
    let chunks = chunks::split(payload).map_err(|r| refused(compartment, r))?;
    let mut out = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        let change = parse_chunk(compartment, chunk)?;
        if change.actor_id().to_bytes() != author.as_bytes() {
            let actor = change.actor_id().to_hex_string().chars().take(64).collect();
            return Err(refused(compartment, Refusal::ForeignChange { author, actor }));
        }
        out.push(change);
    }
    Ok(out)
}

/// One received change (a single chunk), by any author.
pub fn parse_change(compartment: Compartment, bytes: &[u8]) -> Result<Change, PlanError> {
    match chunks::split(bytes).map_err(|r| refused(compartment, r))?.as_slice() {
        [chunk] => parse_chunk(compartment, *chunk),
        _ => Err(refused(compartment, Refusal::Framing("expected exactly one change chunk".into()))),
    }
}

fn parse_chunk(compartment: Compartment, chunk: chunks::Chunk<'_>) -> Result<Change, PlanError> {
    if chunk.kind != ChunkKind::Change {
        return Err(refused(
            compartment,
            Refusal::UnexpectedChunk { expected: ChunkKind::Change, found: chunk.kind },
        ));
    }
    let max = super::vocab::MAX_CHANGE_BYTES;
    if chunk.bytes.len() > max {
        return Err(refused(
            compartment,
            Refusal::over(Limit::ChangeSize, "a change", chunk.bytes.len(), max),
        ));
    }
    guarded(compartment, "parsing a change", || {
        Change::from_bytes(chunk.bytes.to_vec())
            .map_err(|e| refused(compartment, Refusal::Automerge(e.to_string())))
    })
}

/// A received document (a snapshot, or a transfer file's `save()`): loaded, and checked to be
/// this plan's, to have the plan's layout and to stay within the limits, before anyone uses it.
/// It must be exactly one document chunk whose columns inflate to no more than
/// [`super::vocab::MAX_RECEIVED_DOCUMENT_BYTES`].
pub fn load_received_document(
    bytes: &[u8],
    compartment: Compartment,
    plan: PlanId,
) -> Result<Automerge, PlanError> {
    load_received(bytes, compartment, plan).map(ReceivedDocument::into_inner)
}

/// A received document as [`load_received_document`] loaded and checked it, for the
/// compartment and plan it was checked for: [`Plan::merge_received`] takes it as a new
/// compartment's document without checking it a second time.
#[derive(Debug)]
pub struct ReceivedDocument {
    doc: Automerge,
    compartment: Compartment,
    plan: PlanId,
    /// What the check read, which the plan's view takes instead of reading it again.
    memo: view::Memo,
}

impl ReceivedDocument {
    pub fn doc(&self) -> &Automerge {
        &self.doc
    }

    pub fn into_inner(self) -> Automerge {
        self.doc
    }
}

/// [`load_received_document`], keeping what the document was checked for.
pub fn load_received(
    bytes: &[u8],
    compartment: Compartment,
    plan: PlanId,
) -> Result<ReceivedDocument, PlanError> {
    let LoadedDocument { doc, .. } = load_unchecked(bytes, compartment)?;
    let memo = guarded(compartment, "checking a document", || check(&doc, compartment, plan))?;
    Ok(ReceivedDocument { doc, compartment, plan, memo })
}

/// A received document, loaded but not yet checked for its plan, layout and limits: only
/// [`Plan::take_loaded`] takes it, and checks what it builds from it.
#[derive(Debug)]
pub struct LoadedDocument {
    doc: Automerge,
}

impl LoadedDocument {
    pub fn doc(&self) -> &Automerge {
        &self.doc
    }
}

/// Loads a received document (exactly one document chunk whose columns inflate to no more
/// than [`super::vocab::MAX_RECEIVED_DOCUMENT_BYTES`]) without checking its content: for a
/// document that is checked once together with the changes that follow it.
pub fn load_unchecked(bytes: &[u8], compartment: Compartment) -> Result<LoadedDocument, PlanError> {
    let max = super::vocab::MAX_RECEIVED_DOCUMENT_BYTES;
    if bytes.len() > max {
        return Err(refused(
            compartment,
            Refusal::over(Limit::DocumentSize, "the document", bytes.len(), max),
        ));
    }
    let chunk = match chunks::split(bytes).map_err(|r| refused(compartment, r))?.as_slice() {
        [chunk] if chunk.kind == ChunkKind::Document => *chunk,
        [chunk, ..] if chunk.kind != ChunkKind::Document => {
            let found = chunk.kind;
            return Err(refused(
                compartment,
                Refusal::UnexpectedChunk { expected: ChunkKind::Document, found },
            ));
        }
        _ => {
            return Err(refused(compartment, Refusal::Framing("expected exactly one document chunk".into())));
        }
    };
    chunks::inflated_columns_len(chunk.body, max).map_err(|r| refused(compartment, r))?;
    let doc = guarded(compartment, "loading a document", || {
        Automerge::load(chunk.bytes).map_err(|e| refused(compartment, Refusal::Automerge(e.to_string())))
    })?;
    Ok(LoadedDocument { doc })
}

/// What a snapshot's check needs of one change in a document: not its operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSummary {
    pub hash: ChangeHash,
    pub actor: Vec<u8>,
    pub seq: u64,
    pub deps: Vec<ChangeHash>,
}

/// Every change of a received document, oldest first (what a snapshot holds), without its
/// operations: read from automerge's change graph instead of rebuilding each change from the
/// document's op columns (`get_changes`, which cost as much as loading the document again).
///
/// The graph says exactly what the rebuilt changes would. In automerge 0.12, loading a
/// document (`storage/document.rs`, `Document::reconstruct`) rebuilds every change from the
/// document's ops, computes each one's hash from those bytes (`ChangeCollector::collect`),
/// refuses the document when an actor's sequence numbers are not 1, 2, 3, … in order
/// (`ChangesOutOfOrder`) or when the heads derived from the rebuilt changes differ from the
/// heads the document states (`MismatchingHeads`, under the default `VerificationMode::Check`),
/// and then builds the graph from those rebuilt changes (`ChangeGraph::finalize` stores
/// `change.hash()`; each dependency is the same index into the same list that the rebuilt
/// change's dependency hashes were read from). A hash here is therefore the hash of content
/// the document holds, never a value the sender wrote down (see the test below).
pub fn document_change_summaries(
    doc: &Automerge,
    compartment: Compartment,
) -> Result<Vec<ChangeSummary>, PlanError> {
    guarded(compartment, "listing a document's changes", || {
        Ok(doc
            .get_changes_meta(&[])
            .into_iter()
            .map(|m| ChangeSummary {
                hash: m.hash,
                actor: m.actor.to_bytes().to_vec(),
                seq: m.seq,
                deps: m.deps,
            })
            .collect())
    })
}

/// Checks a document that arrived from elsewhere before it joins a plan: the right plan id, a
/// layout that materialises, and content within the limits.
pub fn validate_document(doc: &Automerge, compartment: Compartment, plan: PlanId) -> Result<(), PlanError> {
    guarded(compartment, "checking a document", || check(doc, compartment, plan).map(|_| ()))
}

/// The checks, returning what the layout check read (see [`view::Memo`]).
fn check(doc: &Automerge, compartment: Compartment, plan: PlanId) -> Result<view::Memo, PlanError> {
    read::check_plan_id(doc, compartment, plan)?;
    limits::check_received(doc, compartment)?;
    view::check_layout(doc, compartment)
}

impl Plan {
    /// Applies changes that another device wrote (raw automerge change bytes, in any order:
    /// changes whose dependencies are missing wait inside automerge until those arrive). A
    /// compartment this plan did not hold yet is created from them.
    /// The result is checked before it replaces the document, so changes that would leave a
    /// compartment without the plan layout, or beyond the limits, are refused and change
    /// nothing.
    pub fn apply_changes(&mut self, compartment: Compartment, raw: &[Vec<u8>]) -> Result<(), PlanError> {
        let changes =
            raw.iter().map(|bytes| parse_change(compartment, bytes)).collect::<Result<Vec<_>, _>>()?;
        self.apply_parsed(compartment, changes)
    }

    /// [`Plan::apply_changes`] for changes already parsed (a sync parses them once, with
    /// [`parse_received_changes`], to check their author).
    pub fn apply_parsed(&mut self, compartment: Compartment, changes: Vec<Change>) -> Result<(), PlanError> {
        let (id, author) = (self.id, self.author.actor());
        let held = self.docs[compartment.index()].as_ref();
        let candidate = guarded(compartment, "applying changes", || {
            // A copy: the held document changes only if all of this succeeds. A compartment not
            // held yet starts from its creator's first change.
            let mut candidate = held.cloned().unwrap_or_else(|| Automerge::new().with_actor(author));
            candidate
                .apply_changes(changes)
                .map_err(|e| refused(compartment, Refusal::Automerge(e.to_string())))?;
            let memo = check(&candidate, compartment, id)?;
            Ok((candidate, memo))
        })?;
        self.put_checked(compartment, candidate);
        Ok(())
    }

    /// Merges a received document (from [`load_received_document`]) into the held one, or
    /// takes it as the compartment's document if none is held. Checked like
    /// [`Plan::apply_parsed`]; the held document changes only on success.
    pub fn merge_document(&mut self, compartment: Compartment, incoming: Automerge) -> Result<(), PlanError> {
        self.merge_checked(compartment, incoming, None)
    }

    /// [`Plan::merge_document`] for a document from [`load_received`]. Taken whole (no document
    /// of the compartment is held), a document checked for this compartment and plan is exactly
    /// what was checked (the actor set here is not content), so it is not checked again: that
    /// would read the whole document a second time for nothing.
    pub fn merge_received(
        &mut self,
        compartment: Compartment,
        incoming: ReceivedDocument,
    ) -> Result<(), PlanError> {
        let checked =
            (incoming.compartment == compartment && incoming.plan == self.id).then_some(incoming.memo);
        self.merge_checked(compartment, incoming.doc, checked)
    }

    /// Merges `incoming`; `checked` is what its check read when it was checked for this
    /// compartment and plan.
    fn merge_checked(
        &mut self,
        compartment: Compartment,
        mut incoming: Automerge,
        checked: Option<view::Memo>,
    ) -> Result<(), PlanError> {
        let (id, author) = (self.id, self.author.actor());
        let held = self.docs[compartment.index()].as_ref();
        let merged = guarded(compartment, "merging a document", || {
            let mut candidate = match (held, checked) {
                (Some(doc), _) => {
                    let mut candidate = doc.clone();
                    candidate
                        .merge(&mut incoming)
                        .map_err(|e| refused(compartment, Refusal::Automerge(e.to_string())))?;
                    candidate
                }
                (None, Some(memo)) => {
                    incoming.set_actor(author);
                    return Ok((incoming, memo));
                }
                (None, None) => incoming,
            };
            candidate.set_actor(author);
            let memo = check(&candidate, compartment, id)?;
            Ok((candidate, memo))
        })?;
        self.put_checked(compartment, merged);
        Ok(())
    }

    /// Takes a received document and the changes that follow it (a snapshot and the bundles
    /// after it, in one answer): merged into a copy of the held document or taken whole, the
    /// changes applied, and the result checked once, as [`Plan::apply_parsed`] checks a
    /// batch of changes (what is held is checked, not each step towards it). The held
    /// document changes only on success.
    pub fn take_loaded(
        &mut self,
        compartment: Compartment,
        loaded: LoadedDocument,
        changes: Vec<Change>,
    ) -> Result<(), PlanError> {
        let (id, author) = (self.id, self.author.actor());
        let held = self.docs[compartment.index()].as_ref();
        let taken = guarded(compartment, "merging a document", || {
            let mut incoming = loaded.doc;
            let mut candidate = match held {
                Some(doc) => {
                    let mut candidate = doc.clone();
                    candidate
                        .merge(&mut incoming)
                        .map_err(|e| refused(compartment, Refusal::Automerge(e.to_string())))?;
                    candidate
                }
                None => incoming,
            };
            if !changes.is_empty() {
                candidate
                    .apply_changes(changes)
                    .map_err(|e| refused(compartment, Refusal::Automerge(e.to_string())))?;
            }
            candidate.set_actor(author);
            let memo = check(&candidate, compartment, id)?;
            Ok((candidate, memo))
        })?;
        self.put_checked(compartment, taken);
        Ok(())
    }

    /// Replaces a compartment's document by an erasure's base (with this device's carried
    /// edits), checked like a received document; the held document changes only on success.
    pub(crate) fn replace_document(
        &mut self,
        compartment: Compartment,
        doc: Automerge,
    ) -> Result<(), PlanError> {
        let (id, author) = (self.id, self.author.actor());
        let replaced = guarded(compartment, "replacing a document", || {
            let mut candidate = doc;
            candidate.set_actor(author);
            let memo = check(&candidate, compartment, id)?;
            Ok((candidate, memo))
        })?;
        self.put_checked(compartment, replaced);
        Ok(())
    }

    /// Holds a checked document, with what its check read for the view.
    fn put_checked(&mut self, compartment: Compartment, (doc, memo): (Automerge, view::Memo)) {
        self.docs[compartment.index()] = Some(doc);
        self.parts[compartment.index()] = Some(memo);
    }
}
