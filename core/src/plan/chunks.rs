//! automerge's binary framing, read just far enough to refuse received bytes that automerge
//! must never parse: chunks of the wrong kind, and compressed data that would inflate past the
//! document limit (a few kilobytes of deflate can claim gigabytes, and running out of memory
//! aborts the process, which no boundary can catch).
//!
//! A chunk is `magic (4) | checksum (4) | type (1) | uLEB128 length | body`. A document body
//! starts with its actors, its heads and the metadata of its change and op columns (each a
//! `uLEB128 spec | uLEB128 length` pair, bit 3 of the spec marking a deflated column), then the
//! column data in that order. <https://automerge.org/automerge-binary-format-spec/>

use std::io::Read;

use super::received::Refusal;

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
/// Magic, checksum and type, before the length.
const FIXED_HEADER: usize = 9;
const HASH_LEN: usize = 32;
const DEFLATE_BIT: u64 = 0b1000;
/// Where a document whose columns inflate past the limit is refused.
pub const DEFLATED_COLUMNS: &str = "the document's columns, measured before inflating them";

/// The kind of an automerge chunk, by its type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKind {
    /// A whole document (`save()`).
    Document,
    /// One change, as `Change::raw_bytes` gives it.
    Change,
    /// One change, deflated. Our devices never send these.
    CompressedChange,
    /// Several changes in one chunk. Our devices never send these.
    Bundle,
    Unknown(u8),
}

impl ChunkKind {
    fn from_byte(byte: u8) -> Self {
        match byte {
            0 => ChunkKind::Document,
            1 => ChunkKind::Change,
            2 => ChunkKind::CompressedChange,
            3 => ChunkKind::Bundle,
            other => ChunkKind::Unknown(other),
        }
    }
}

impl std::fmt::Display for ChunkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChunkKind::Document => f.write_str("document"),
            ChunkKind::Change => f.write_str("change"),
            ChunkKind::CompressedChange => f.write_str("compressed change"),
            ChunkKind::Bundle => f.write_str("change bundle"),
            ChunkKind::Unknown(byte) => write!(f, "unknown ({byte})"),
        }
    }
}

/// One chunk of a byte string: its kind, the whole chunk, and its body.
#[derive(Debug, Clone, Copy)]
pub(super) struct Chunk<'a> {
    pub kind: ChunkKind,
    pub bytes: &'a [u8],
    pub body: &'a [u8],
}

/// Splits concatenated chunks, refusing any that is truncated or does not start with the magic.
pub(super) fn split(mut bytes: &[u8]) -> Result<Vec<Chunk<'_>>, Refusal> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let chunk = first(bytes)?;
        bytes = &bytes[chunk.bytes.len()..];
        out.push(chunk);
    }
    Ok(out)
}

fn first(bytes: &[u8]) -> Result<Chunk<'_>, Refusal> {
    if bytes.len() < FIXED_HEADER || bytes[..4] != MAGIC {
        return Err(framing("a chunk does not start with automerge's magic bytes"));
    }
    let mut rest = &bytes[FIXED_HEADER..];
    let body_len = uleb(&mut rest)?;
    let header_len = bytes.len() - rest.len();
    let body_len = usize::try_from(body_len).map_err(|_| truncated())?;
    let total = header_len.checked_add(body_len).ok_or_else(truncated)?;
    if total > bytes.len() {
        return Err(truncated());
    }
    Ok(Chunk {
        kind: ChunkKind::from_byte(bytes[8]),
        bytes: &bytes[..total],
        body: &bytes[header_len..total],
    })
}

/// The size of a document chunk's column data once every deflated column is inflated,
/// refusing as soon as it passes `max` (inflation stops there: nothing larger is ever held).
pub(super) fn inflated_columns_len(body: &[u8], max: usize) -> Result<usize, Refusal> {
    let mut rest = body;
    let actors = uleb(&mut rest)?;
    for _ in 0..actors {
        let len = uleb(&mut rest)?;
        skip(&mut rest, len)?;
    }
    let heads = uleb(&mut rest)?;
    skip(&mut rest, heads.checked_mul(HASH_LEN as u64).ok_or_else(truncated)?)?;
    let mut columns = column_metadata(&mut rest)?;
    columns.extend(column_metadata(&mut rest)?);
    let mut total: usize = 0;
    for (spec, len) in columns {
        let len = usize::try_from(len).map_err(|_| truncated())?;
        if len > rest.len() {
            return Err(truncated());
        }
        let (data, tail) = rest.split_at(len);
        rest = tail;
        let budget = max.saturating_sub(total);
        let size = if spec & DEFLATE_BIT != 0 { inflated_len(data, budget)? } else { len };
        total = total.saturating_add(size);
        if total > max {
            return Err(Refusal::over(super::Limit::DocumentSize, DEFLATED_COLUMNS, total, max));
        }
    }
    Ok(total)
}

fn column_metadata(rest: &mut &[u8]) -> Result<Vec<(u64, u64)>, Refusal> {
    let count = uleb(rest)?;
    // Each column takes at least two bytes of metadata: a count beyond that is a lie, and
    // must not size an allocation.
    if count > (rest.len() / 2) as u64 {
        return Err(truncated());
    }
    (0..count).map(|_| Ok((uleb(rest)?, uleb(rest)?))).collect()
}

/// Inflates `data` into nothing, counting; stops one byte past `budget`.
fn inflated_len(data: &[u8], budget: usize) -> Result<usize, Refusal> {
    let limit = u64::try_from(budget).unwrap_or(u64::MAX).saturating_add(1);
    let mut decoder = flate2::bufread::DeflateDecoder::new(data).take(limit);
    let len = std::io::copy(&mut decoder, &mut std::io::sink())
        .map_err(|e| framing(format!("a deflated column does not inflate: {e}")))?;
    Ok(usize::try_from(len).unwrap_or(usize::MAX))
}

fn uleb(rest: &mut &[u8]) -> Result<u64, Refusal> {
    leb128::read::unsigned(rest).map_err(|_| truncated())
}

fn skip(rest: &mut &[u8], len: u64) -> Result<(), Refusal> {
    let len = usize::try_from(len).map_err(|_| truncated())?;
    *rest = rest.get(len..).ok_or_else(truncated)?;
    Ok(())
}

fn truncated() -> Refusal {
    framing("a chunk is truncated or its lengths overflow")
}

fn framing(detail: impl Into<String>) -> Refusal {
    Refusal::Framing(detail.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;

    fn document_with(text: &str) -> Vec<u8> {
        let mut doc = automerge::AutoCommit::new();
        let obj = doc
            .put_object(automerge::ROOT, "text", automerge::ObjType::Text)
            .unwrap_or_else(|e| panic!("{e}"));
        doc.splice_text(&obj, 0, 0, text).unwrap_or_else(|e| panic!("{e}"));
        doc.save()
    }

    #[test]
    fn a_saved_document_is_one_document_chunk_whose_columns_inflate_to_their_real_size() {
        let text = "huisbezoek ".repeat(2_000);
        let saved = document_with(&text);
        let chunks = split(&saved).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].kind, ChunkKind::Document);
        let inflated = inflated_columns_len(chunks[0].body, usize::MAX).unwrap_or_else(|e| panic!("{e}"));
        assert!(inflated > text.len() && inflated > saved.len(), "{inflated} vs {}", saved.len());
        // The same limit refuses it once it is a byte short.
        assert!(inflated_columns_len(chunks[0].body, inflated - 1).is_err());
        assert_eq!(inflated_columns_len(chunks[0].body, inflated).ok(), Some(inflated));
    }

    #[test]
    fn changes_split_at_their_boundaries_and_a_truncated_one_is_refused() {
        let mut doc = automerge::AutoCommit::new();
        doc.put(automerge::ROOT, "a", 1).unwrap_or_else(|e| panic!("{e}"));
        doc.put(automerge::ROOT, "b", 2).unwrap_or_else(|e| panic!("{e}"));
        let changes: Vec<Vec<u8>> = doc.get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect();
        let joined = changes.concat();
        let chunks = split(&joined).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(chunks.iter().map(|c| c.bytes.to_vec()).collect::<Vec<_>>(), changes);
        assert!(chunks.iter().all(|c| c.kind == ChunkKind::Change));
        assert!(split(&joined[..joined.len() - 1]).is_err());
        assert!(split(b"not automerge at all").is_err());
        assert!(split(&[]).map(|c| c.is_empty()).unwrap_or(false));
    }
}
