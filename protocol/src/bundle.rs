//! Bundles: automerge changes sealed under a document's epoch key and signed by their author.
//!
//! ```text
//! offset  size  field
//!      0     1  format version (2)
//!      1     1  kind (high 4 bits: 0 = changes, 2 = snapshot) and compartment (low 4 bits:
//!               0 basis, 1 zorg, 2 veiligheid, 3 justitie)
//!      2    16  plan id
//!     18    16  author device id
//!     34    16  bundle id (random, drawn by `Bundle::seal`; pushes are idempotent by it)
//!     50   1–5  key epoch, LEB128 (one byte below 128)
//!    [..  1–10  snapshots only: `covers`, the server log position the snapshot covers, LEB128]
//!      h     n  ciphertext || tag (16); associated data = bytes 0..h (the header);
//!               nonce = SHA-256("eenplan/bundle-nonce/v2\n" || header), first 24 bytes
//!    h+n    64  Ed25519 signature by the author over bytes 0..h+n
//! ```
//!
//! A changes bundle's header is 51 bytes while epochs stay below 128. LEB128 fields must be
//! in their shortest form, so a header has exactly one encoding.
//!
//! **The nonce is not sent: it is derived from the header**, which holds the bundle id.
//! XChaCha20-Poly1305 stays secure only while no (key, nonce) pair seals two different
//! plaintexts. The key is one (document, epoch)'s; the id is 16 random bytes that
//! [`Bundle::seal`] draws itself from the operating system for every call, and no caller can
//! choose it ([`NewBundle`] has no id). So every seal has its own nonce, as with the random
//! 24-byte nonce format 1 sent, at the cost of 16 random bytes instead of 24 (a repeat among
//! 2^48 bundles under one key has probability 2^-33). A bundle re-sealed under a new epoch
//! (after a rotation, ARCHITECTURE invariant 15) is a new seal: a new key and a new id. The
//! same bytes pushed again (a retry) are the same ciphertext, not a new encryption.
//! Format 1 (nonce on the wire) is refused with [`BundleError::RetiredVersion`]; a device
//! re-seals its own unsent format-1 bundles ([`open_retired`]).
//!
//! A snapshot's `covers` is part of the signed, authenticated header: the server cannot move
//! a snapshot to another position of the log, and its author is bound to the claim that it
//! holds exactly the document's changes up to that position (receivers check the claim
//! against witness bundles; see `eenplan_core::sync`).
//!
//! Example: a one-field edit is ≈ 90 bytes of automerge change, so its bundle is ≈ 220 bytes.
//! The header is the associated data, so a bundle replayed under another document id, epoch
//! or author fails to decrypt even before its signature is checked; the signature lets the
//! server and every receiver refuse a bundle its claimed author did not write, without any
//! key that opens it.

pub mod payload;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

pub const FORMAT_VERSION: u8 = 2;
/// Format 1: the same fields at fixed widths, and a random nonce sent after the header.
pub const RETIRED_FORMAT_VERSION: u8 = 1;
/// The shortest header: a changes bundle whose epoch fits one LEB128 byte.
pub const HEADER_LEN: usize = EPOCH_OFFSET + 1;
/// The longest header of a changes bundle (the largest epoch).
pub const MAX_HEADER_LEN: usize = EPOCH_OFFSET + MAX_LEB128_U32;
/// The longest header of a snapshot bundle (the largest epoch and `covers`).
pub const MAX_SNAPSHOT_HEADER_LEN: usize = MAX_HEADER_LEN + MAX_LEB128_U64;
pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;
pub const SIGNATURE_LEN: usize = 64;
/// The smallest well-formed bundle: an empty payload.
pub const MIN_BUNDLE_LEN: usize = HEADER_LEN + TAG_LEN + SIGNATURE_LEN;
/// The most a changes bundle adds to its payload: for sizing what fits in one.
pub const MAX_OVERHEAD: usize = MAX_HEADER_LEN + TAG_LEN + SIGNATURE_LEN;
/// The most a snapshot bundle adds to the saved document.
pub const MAX_SNAPSHOT_OVERHEAD: usize = MAX_SNAPSHOT_HEADER_LEN + TAG_LEN + SIGNATURE_LEN;
/// Refused above this before anything else is done: a bundle is one edit or one snapshot.
pub const MAX_BUNDLE_LEN: usize = 16 * 1024 * 1024;

const PLAN_OFFSET: usize = 2;
const AUTHOR_OFFSET: usize = 18;
const ID_OFFSET: usize = 34;
const EPOCH_OFFSET: usize = 50;
const MAX_LEB128_U32: usize = 5;
const MAX_LEB128_U64: usize = 10;
const NONCE_CONTEXT: &[u8] = b"eenplan/bundle-nonce/v2\n";

/// Why a bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("bundle is {len} bytes, shorter than the {min}-byte minimum")]
    Truncated { len: usize, min: usize },
    #[error("bundle is {len} bytes, more than the {max} accepted")]
    TooLarge { len: usize, max: usize },
    #[error("bundle format version {0} is not supported")]
    UnsupportedVersion(u8),
    #[error("bundle format version {0} (with its nonce on the wire) is no longer accepted")]
    RetiredVersion(u8),
    #[error("bundle kind {0} is unknown")]
    UnknownKind(u8),
    #[error("compartment {0} is unknown")]
    UnknownCompartment(u8),
    #[error("a number in the bundle header is not in its shortest form or out of range")]
    BadNumber,
    #[error("the signature does not verify against the author's key")]
    BadSignature,
    #[error("the bundle does not decrypt under this document's epoch key")]
    Undecryptable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BundleKind {
    /// Automerge changes, all written by the bundle's author.
    Changes,
    /// A whole document (`save()`), holding every change the server's log had for it up to
    /// and including position `covers`.
    Snapshot { covers: u64 },
}

impl BundleKind {
    const CHANGES: u8 = 0;
    /// 1 was format 1's snapshot without a signed `covers`; never valid in format 2.
    const SNAPSHOT: u8 = 2;

    pub fn is_snapshot(self) -> bool {
        matches!(self, BundleKind::Snapshot { .. })
    }

    /// The position a snapshot covers; `None` for changes.
    pub fn covers(self) -> Option<u64> {
        match self {
            BundleKind::Changes => None,
            BundleKind::Snapshot { covers } => Some(covers),
        }
    }

    fn code(self) -> u8 {
        match self {
            BundleKind::Changes => Self::CHANGES,
            BundleKind::Snapshot { .. } => Self::SNAPSHOT,
        }
    }
}

/// A compartment document on the wire: the plan id and the compartment's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocumentId {
    pub plan: [u8; 16],
    pub compartment: u8,
}

impl DocumentId {
    pub const COMPARTMENTS: u8 = 4;

    pub fn new(plan: [u8; 16], compartment: u8) -> Result<Self, BundleError> {
        if compartment >= Self::COMPARTMENTS {
            return Err(BundleError::UnknownCompartment(compartment));
        }
        Ok(Self { plan, compartment })
    }

    pub fn to_bytes(&self) -> [u8; 17] {
        let mut out = [0u8; 17];
        out[..16].copy_from_slice(&self.plan);
        out[16] = self.compartment;
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BundleError> {
        let plan: [u8; 16] = bytes
            .get(..16)
            .and_then(|b| b.try_into().ok())
            .ok_or(BundleError::Truncated { len: bytes.len(), min: 17 })?;
        let compartment = *bytes.get(16).ok_or(BundleError::Truncated { len: bytes.len(), min: 17 })?;
        Self::new(plan, compartment)
    }
}

/// What a bundle about to be sealed says: its header without the id, which
/// [`Bundle::seal`] draws itself so that no two seals share a nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewBundle {
    pub kind: BundleKind,
    pub document: DocumentId,
    pub epoch: u32,
    pub author: [u8; 16],
}

/// The authenticated, unencrypted part of a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleHeader {
    pub kind: BundleKind,
    pub document: DocumentId,
    pub epoch: u32,
    pub author: [u8; 16],
    pub bundle_id: [u8; 16],
}

impl BundleHeader {
    /// The header's fields without its id: what sealing the same content anew starts from.
    pub fn unsealed(&self) -> NewBundle {
        NewBundle { kind: self.kind, document: self.document, epoch: self.epoch, author: self.author }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_SNAPSHOT_HEADER_LEN);
        out.push(FORMAT_VERSION);
        out.push(self.kind.code() << 4 | self.document.compartment);
        out.extend_from_slice(&self.document.plan);
        out.extend_from_slice(&self.author);
        out.extend_from_slice(&self.bundle_id);
        leb128_put(&mut out, u64::from(self.epoch));
        if let BundleKind::Snapshot { covers } = self.kind {
            leb128_put(&mut out, covers);
        }
        out
    }

    /// The header at the start of `bytes`, and its length. `bytes` holds at least
    /// [`MIN_BUNDLE_LEN`] bytes, so every fixed-width field is there.
    fn decode(bytes: &[u8]) -> Result<(Self, usize), BundleError> {
        match bytes.first().copied().unwrap_or(0) {
            FORMAT_VERSION => {}
            RETIRED_FORMAT_VERSION => return Err(BundleError::RetiredVersion(RETIRED_FORMAT_VERSION)),
            other => return Err(BundleError::UnsupportedVersion(other)),
        }
        let fixed = |offset: usize| -> [u8; 16] {
            let mut out = [0u8; 16];
            out.copy_from_slice(&bytes[offset..offset + 16]);
            out
        };
        let kind_and_compartment = bytes[1];
        let document = DocumentId::new(fixed(PLAN_OFFSET), kind_and_compartment & 0x0f)?;
        let (epoch, mut len) = leb128_get(bytes, EPOCH_OFFSET)?;
        let epoch = u32::try_from(epoch).map_err(|_| BundleError::BadNumber)?;
        let kind = match kind_and_compartment >> 4 {
            BundleKind::CHANGES => BundleKind::Changes,
            BundleKind::SNAPSHOT => {
                let (covers, end) = leb128_get(bytes, len)?;
                len = end;
                BundleKind::Snapshot { covers }
            }
            other => return Err(BundleError::UnknownKind(other)),
        };
        let min = len + TAG_LEN + SIGNATURE_LEN;
        if bytes.len() < min {
            return Err(BundleError::Truncated { len: bytes.len(), min });
        }
        let header =
            Self { kind, document, epoch, author: fixed(AUTHOR_OFFSET), bundle_id: fixed(ID_OFFSET) };
        Ok((header, len))
    }
}

/// The nonce a header's payload is sealed with: derived, never sent.
fn nonce_of(header: &[u8]) -> XNonce {
    use sha2::Digest as _;
    let mut hash = sha2::Sha256::new();
    hash.update(NONCE_CONTEXT);
    hash.update(header);
    let digest: [u8; 32] = hash.finalize().into();
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&digest[..NONCE_LEN]);
    XNonce::from(nonce)
}

/// Appends `value` as unsigned LEB128.
fn leb128_put(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

/// The unsigned LEB128 number at `offset`, and the offset after it. Only the shortest form
/// of a number that fits 64 bits is taken.
fn leb128_get(bytes: &[u8], offset: usize) -> Result<(u64, usize), BundleError> {
    let mut value = 0u64;
    for i in 0..MAX_LEB128_U64 {
        let Some(&byte) = bytes.get(offset + i) else {
            return Err(BundleError::Truncated { len: bytes.len(), min: offset + i + 1 });
        };
        let bits = u64::from(byte & 0x7f);
        let shift = 7 * i as u32;
        if shift == 63 && bits > 1 {
            return Err(BundleError::BadNumber);
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            // A last byte of zero (other than a lone zero) means a longer form than needed.
            if byte == 0 && i > 0 {
                return Err(BundleError::BadNumber);
            }
            return Ok((value, offset + i + 1));
        }
    }
    Err(BundleError::BadNumber)
}

/// The author a bundle's header names, without checking or copying anything else: for
/// deciding which certificates to fetch before the bundles are judged.
pub fn peek_author(bytes: &[u8]) -> Option<[u8; 16]> {
    peek(bytes, AUTHOR_OFFSET)
}

/// The bundle id a header names, as far as the bytes go: so that even a malformed push can
/// be answered by the id its pusher knows it by.
pub fn peek_id(bytes: &[u8]) -> Option<[u8; 16]> {
    peek(bytes, ID_OFFSET)
}

/// A bundle as its author pushes it: without the author id, which the server knows from the
/// pusher's session and puts back ([`with_author`]) before it checks anything. `None` when
/// `bytes` is not a current-format bundle naming `author`.
pub fn without_author(bytes: &[u8], author: &[u8; 16]) -> Option<Vec<u8>> {
    if peek_author(bytes)? != *author {
        return None;
    }
    Some([&bytes[..AUTHOR_OFFSET], &bytes[AUTHOR_OFFSET + 16..]].concat())
}

/// A pushed bundle ([`without_author`]) with `author` put back: the one encoding of the bundle,
/// as its author signed it. The signature and the AEAD's associated data cover the author, so
/// bytes given another author (by a server that puts back the wrong device) verify against
/// no one's key and open under no key. Too short to hold an author: returned as they are,
/// for [`Bundle::decode`] to refuse.
pub fn with_author(pushed: &[u8], author: &[u8; 16]) -> Vec<u8> {
    match pushed.get(..AUTHOR_OFFSET) {
        Some(head) => [head, &author[..], &pushed[AUTHOR_OFFSET..]].concat(),
        None => pushed.to_vec(),
    }
}

fn peek(bytes: &[u8], offset: usize) -> Option<[u8; 16]> {
    if bytes.first() != Some(&FORMAT_VERSION) {
        return None;
    }
    bytes.get(offset..offset + 16).and_then(|field| field.try_into().ok())
}

/// A parsed bundle whose framing is valid. Its signature and ciphertext are not yet checked:
/// call [`Bundle::verify`] with the author's key, then [`Bundle::open`] with the epoch key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub header: BundleHeader,
    header_len: usize,
    bytes: Vec<u8>,
}

impl Bundle {
    /// Seals `payload` under `epoch_key` with a new random bundle id, and signs the result
    /// with the author's key. Every call is a new id and so a new nonce: sealing other content
    /// (or the same again) never reuses one.
    pub fn seal(
        new: NewBundle,
        epoch_key: &[u8; 32],
        payload: &[u8],
        author: &SigningKey,
    ) -> Result<Bundle, BundleError> {
        let header = BundleHeader {
            kind: new.kind,
            document: new.document,
            epoch: new.epoch,
            author: new.author,
            bundle_id: random_id(),
        };
        let encoded = header.encode();
        let header_len = encoded.len();
        let len = payload.len().saturating_add(header_len + TAG_LEN + SIGNATURE_LEN);
        if len > MAX_BUNDLE_LEN {
            return Err(BundleError::TooLarge { len, max: MAX_BUNDLE_LEN });
        }
        let cipher = XChaCha20Poly1305::new(&(*epoch_key).into());
        let ciphertext = cipher
            .encrypt(&nonce_of(&encoded), Payload { msg: payload, aad: &encoded })
            .map_err(|_| BundleError::TooLarge { len, max: MAX_BUNDLE_LEN })?;
        let mut bytes = Vec::with_capacity(len);
        bytes.extend_from_slice(&encoded);
        bytes.extend_from_slice(&ciphertext);
        let signature = author.sign(&bytes);
        bytes.extend_from_slice(&signature.to_bytes());
        Ok(Bundle { header, header_len, bytes })
    }

    /// Parses the framing. Cheap; checks sizes, version, kind, compartment and numbers only.
    pub fn decode(bytes: Vec<u8>) -> Result<Bundle, BundleError> {
        if bytes.len() > MAX_BUNDLE_LEN {
            return Err(BundleError::TooLarge { len: bytes.len(), max: MAX_BUNDLE_LEN });
        }
        if bytes.len() < MIN_BUNDLE_LEN {
            return Err(BundleError::Truncated { len: bytes.len(), min: MIN_BUNDLE_LEN });
        }
        let (header, header_len) = BundleHeader::decode(&bytes)?;
        Ok(Bundle { header, header_len, bytes })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The length of the header (the associated data) at the start of [`Bundle::as_bytes`].
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// SHA-256 of the whole sealed bundle: how a membership entry names the base of an
    /// erasure ([`crate::membership::Erasure::base`]), so no one can swap it.
    pub fn digest(&self) -> [u8; 32] {
        use sha2::Digest as _;
        let mut hash = sha2::Sha256::new();
        hash.update(b"eenplan/bundle-digest/v1\n");
        hash.update(&self.bytes);
        hash.finalize().into()
    }

    fn signed_part(&self) -> (&[u8], &[u8]) {
        self.bytes.split_at(self.bytes.len() - SIGNATURE_LEN)
    }

    /// Checks the author's signature. Anyone holding the author's public key can do this.
    pub fn verify(&self, author: &VerifyingKey) -> Result<(), BundleError> {
        let (signed, signature) = self.signed_part();
        let signature: [u8; SIGNATURE_LEN] = signature.try_into().map_err(|_| BundleError::BadSignature)?;
        author
            .verify_strict(signed, &Signature::from_bytes(&signature))
            .map_err(|_| BundleError::BadSignature)
    }

    /// Decrypts the payload. Call [`Bundle::verify`] first.
    pub fn open(&self, epoch_key: &[u8; 32]) -> Result<Vec<u8>, BundleError> {
        let (signed, _) = self.signed_part();
        let (header, ciphertext) = signed.split_at(self.header_len);
        let cipher = XChaCha20Poly1305::new(&(*epoch_key).into());
        cipher
            .decrypt(&nonce_of(header), Payload { msg: ciphertext, aad: header })
            .map_err(|_| BundleError::Undecryptable)
    }
}

/// Opens a format-1 bundle this device sealed itself and never got stored (its outbox, kept
/// in its sealed store), so that its changes can be sealed again in the current format: the
/// header it named and the payload. Nothing received is ever opened this way.
pub fn open_retired(bytes: &[u8], epoch_key: &[u8; 32]) -> Result<(BundleHeader, Vec<u8>), BundleError> {
    let header =
        peek_retired(bytes).ok_or(BundleError::UnsupportedVersion(bytes.first().copied().unwrap_or(0)))?;
    let nonce: [u8; NONCE_LEN] = bytes[RETIRED_HEADER_LEN..RETIRED_HEADER_LEN + NONCE_LEN]
        .try_into()
        .map_err(|_| BundleError::Undecryptable)?;
    let ciphertext = &bytes[RETIRED_HEADER_LEN + NONCE_LEN..bytes.len() - SIGNATURE_LEN];
    let cipher = XChaCha20Poly1305::new(&(*epoch_key).into());
    let payload = cipher
        .decrypt(&XNonce::from(nonce), Payload { msg: ciphertext, aad: &bytes[..RETIRED_HEADER_LEN] })
        .map_err(|_| BundleError::Undecryptable)?;
    Ok((header, payload))
}

/// Format 1's header, fixed-width: version, kind, plan, compartment, epoch (4, BE), author, id.
const RETIRED_HEADER_LEN: usize = 55;

/// The header of a well-framed format-1 changes bundle (only those wait in an outbox).
pub fn peek_retired(bytes: &[u8]) -> Option<BundleHeader> {
    let min = RETIRED_HEADER_LEN + NONCE_LEN + TAG_LEN + SIGNATURE_LEN;
    if bytes.len() < min || bytes.len() > MAX_BUNDLE_LEN || bytes[0] != RETIRED_FORMAT_VERSION {
        return None;
    }
    if bytes[1] != BundleKind::CHANGES {
        return None;
    }
    let fixed = |offset: usize| -> Option<[u8; 16]> { bytes.get(offset..offset + 16)?.try_into().ok() };
    let epoch: [u8; 4] = bytes.get(19..23)?.try_into().ok()?;
    Some(BundleHeader {
        kind: BundleKind::Changes,
        document: DocumentId::from_bytes(bytes.get(2..19)?).ok()?,
        epoch: u32::from_be_bytes(epoch),
        author: fixed(23)?,
        bundle_id: fixed(39)?,
    })
}

fn random_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    if getrandom::fill(&mut id).is_err() {
        no_randomness();
    }
    id
}

#[cold]
#[allow(clippy::panic)]
fn no_randomness() -> ! {
    // An id from a broken random source would repeat, and with it the nonce; refusing to
    // continue is the only safe answer, and it is not something input can trigger.
    panic!("the operating system has no random source")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(author: &SigningKey) -> NewBundle {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&author.verifying_key().as_bytes()[..8]);
        NewBundle {
            kind: BundleKind::Changes,
            document: DocumentId::new([7; 16], 1).unwrap(),
            epoch: 3,
            author: id,
        }
    }

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[5; 32])
    }

    #[test]
    fn a_sealed_bundle_verifies_opens_and_round_trips_its_header() {
        let author = key();
        let bundle = Bundle::seal(header(&author), &[1; 32], b"automerge change", &author).unwrap();
        let decoded = Bundle::decode(bundle.as_bytes().to_vec()).unwrap();
        assert_eq!(decoded.header, bundle.header);
        assert_eq!(decoded.header.unsealed(), header(&author));
        decoded.verify(&author.verifying_key()).unwrap();
        assert_eq!(decoded.open(&[1; 32]).unwrap(), b"automerge change");
        assert_eq!(bundle.as_bytes().len(), MIN_BUNDLE_LEN + 16);
        assert_eq!(peek_id(bundle.as_bytes()), Some(bundle.header.bundle_id));
        assert_eq!(peek_author(bundle.as_bytes()), Some(header(&author).author));
    }

    #[test]
    fn two_seals_under_one_key_never_share_an_id_or_a_keystream() {
        // Same key, same header fields, different plaintexts: with a repeated (key, nonce)
        // the ciphertexts would differ exactly as the plaintexts do (c1 ^ c2 == p1 ^ p2).
        let author = key();
        let (p1, p2) = ([0x11u8; 64], [0x22u8; 64]);
        let a = Bundle::seal(header(&author), &[1; 32], &p1, &author).unwrap();
        let b = Bundle::seal(header(&author), &[1; 32], &p2, &author).unwrap();
        assert_ne!(a.header.bundle_id, b.header.bundle_id);
        let body = |bundle: &Bundle| bundle.as_bytes()[HEADER_LEN..HEADER_LEN + 64].to_vec();
        let (c1, c2) = (body(&a), body(&b));
        let cipher_xor: Vec<u8> = c1.iter().zip(&c2).map(|(x, y)| x ^ y).collect();
        let plain_xor: Vec<u8> = p1.iter().zip(&p2).map(|(x, y)| x ^ y).collect();
        assert_ne!(cipher_xor, plain_xor, "two seals reused a keystream");
        assert_eq!((a.open(&[1; 32]).unwrap(), b.open(&[1; 32]).unwrap()), (p1.to_vec(), p2.to_vec()));
    }

    #[test]
    fn the_nonce_is_bound_to_the_id_so_a_bundle_given_another_id_does_not_open() {
        let author = key();
        let bundle = Bundle::seal(header(&author), &[1; 32], b"x", &author).unwrap();
        let mut bytes = bundle.into_bytes();
        bytes[ID_OFFSET] ^= 1;
        let moved = Bundle::decode(bytes).unwrap();
        assert_eq!(moved.open(&[1; 32]), Err(BundleError::Undecryptable));
        assert_eq!(moved.verify(&author.verifying_key()), Err(BundleError::BadSignature));
    }

    #[test]
    fn a_push_without_its_author_is_the_same_bundle_once_the_pusher_is_put_back_and_no_other() {
        let author = key();
        let bundle = Bundle::seal(header(&author), &[1; 32], b"x", &author).unwrap();
        let named = header(&author).author;
        let pushed = without_author(bundle.as_bytes(), &named).unwrap();
        assert_eq!(pushed.len(), bundle.as_bytes().len() - 16);
        assert_eq!(with_author(&pushed, &named), bundle.as_bytes());
        assert_eq!(without_author(bundle.as_bytes(), &[9; 16]), None, "only its own author's");
        // A server that puts back another device: the signature covers the author, and so
        // does the AEAD, whoever's key the receiver checks it with.
        let mallory = SigningKey::from_bytes(&[6; 32]);
        let moved = Bundle::decode(with_author(&pushed, &[9; 16])).unwrap();
        assert_eq!(moved.header.author, [9; 16]);
        assert_eq!(moved.verify(&mallory.verifying_key()), Err(BundleError::BadSignature));
        assert_eq!(moved.verify(&author.verifying_key()), Err(BundleError::BadSignature));
        assert_eq!(moved.open(&[1; 32]), Err(BundleError::Undecryptable));
        assert_eq!(with_author(&[2; 5], &named), vec![2; 5]);
    }

    #[test]
    fn a_bundle_signed_by_someone_else_is_refused() {
        let author = key();
        let bundle = Bundle::seal(header(&author), &[1; 32], b"x", &author).unwrap();
        let other = SigningKey::from_bytes(&[6; 32]);
        assert_eq!(bundle.verify(&other.verifying_key()), Err(BundleError::BadSignature));
    }

    #[test]
    fn a_bundle_replayed_under_another_document_fails_signature_and_decryption() {
        let author = key();
        let bundle = Bundle::seal(header(&author), &[1; 32], b"x", &author).unwrap();
        let mut bytes = bundle.into_bytes();
        bytes[1] = 2; // compartment zorg -> veiligheid
        let moved = Bundle::decode(bytes).unwrap();
        assert_eq!(moved.header.document.compartment, 2);
        assert_eq!(moved.verify(&author.verifying_key()), Err(BundleError::BadSignature));
        assert_eq!(moved.open(&[1; 32]), Err(BundleError::Undecryptable));
    }

    #[test]
    fn a_bundle_replayed_under_another_epoch_fails_signature_and_decryption() {
        let author = key();
        let bundle = Bundle::seal(header(&author), &[1; 32], b"x", &author).unwrap();
        let mut bytes = bundle.into_bytes();
        bytes[EPOCH_OFFSET] = 4;
        let moved = Bundle::decode(bytes).unwrap();
        assert_eq!(moved.header.epoch, 4);
        assert_eq!(moved.verify(&author.verifying_key()), Err(BundleError::BadSignature));
        assert_eq!(moved.open(&[1; 32]), Err(BundleError::Undecryptable));
    }

    #[test]
    fn a_snapshot_carries_its_covered_position_in_the_signed_header() {
        let author = key();
        let snapshot = NewBundle { kind: BundleKind::Snapshot { covers: 4711 }, ..header(&author) };
        let bundle = Bundle::seal(snapshot, &[1; 32], b"saved document", &author).unwrap();
        let decoded = Bundle::decode(bundle.as_bytes().to_vec()).unwrap();
        assert_eq!(decoded.header.kind.covers(), Some(4711));
        decoded.verify(&author.verifying_key()).unwrap();
        assert_eq!(decoded.open(&[1; 32]).unwrap(), b"saved document");
        // Moving it to another position of the log breaks both the signature and the AEAD.
        let mut bytes = bundle.into_bytes();
        bytes[HEADER_LEN] ^= 1; // 4711 = 0xe7 0x24 in LEB128
        let moved = Bundle::decode(bytes).unwrap();
        assert_eq!(moved.header.kind.covers(), Some(4710));
        assert_eq!(moved.verify(&author.verifying_key()), Err(BundleError::BadSignature));
        assert_eq!(moved.open(&[1; 32]), Err(BundleError::Undecryptable));
    }

    #[test]
    fn the_largest_epoch_and_position_round_trip_and_fit_the_longest_header() {
        let author = key();
        let new =
            NewBundle { kind: BundleKind::Snapshot { covers: u64::MAX }, epoch: u32::MAX, ..header(&author) };
        let bundle = Bundle::seal(new, &[1; 32], b"", &author).unwrap();
        assert_eq!(bundle.as_bytes().len(), MAX_SNAPSHOT_OVERHEAD);
        let decoded = Bundle::decode(bundle.into_bytes()).unwrap();
        assert_eq!((decoded.header.epoch, decoded.header.kind.covers()), (u32::MAX, Some(u64::MAX)));
    }

    #[test]
    fn a_wrong_epoch_key_cannot_open_a_bundle() {
        let author = key();
        let bundle = Bundle::seal(header(&author), &[1; 32], b"x", &author).unwrap();
        assert_eq!(bundle.open(&[2; 32]), Err(BundleError::Undecryptable));
    }

    #[test]
    fn a_format_1_bundle_is_a_typed_refusal_and_its_own_sealer_can_still_open_it() {
        // Format 1, as it was sealed: header, random nonce, ciphertext, signature.
        let author = key();
        let mut old = vec![1u8, 0];
        old.extend_from_slice(&[7; 16]);
        old.push(1);
        old.extend_from_slice(&3u32.to_be_bytes());
        old.extend_from_slice(&header(&author).author);
        old.extend_from_slice(&[9; 16]);
        let nonce = [4u8; NONCE_LEN];
        let sealed = XChaCha20Poly1305::new(&[1u8; 32].into())
            .encrypt(&XNonce::from(nonce), Payload { msg: b"old change", aad: &old })
            .unwrap();
        old.extend_from_slice(&nonce);
        old.extend_from_slice(&sealed);
        old.extend_from_slice(&author.sign(&old).to_bytes());
        assert_eq!(Bundle::decode(old.clone()), Err(BundleError::RetiredVersion(1)));
        assert_eq!(peek_id(&old), None);
        let (was, payload) = open_retired(&old, &[1; 32]).unwrap();
        assert_eq!(
            (was.unsealed(), was.bundle_id, payload),
            (header(&author), [9; 16], b"old change".to_vec())
        );
        assert_eq!(open_retired(&old, &[2; 32]), Err(BundleError::Undecryptable));
    }

    #[test]
    fn malformed_framing_is_a_typed_error() {
        assert!(matches!(Bundle::decode(vec![2; 10]), Err(BundleError::Truncated { .. })));
        let mut bytes = vec![0u8; MIN_BUNDLE_LEN];
        assert_eq!(Bundle::decode(bytes.clone()), Err(BundleError::UnsupportedVersion(0)));
        bytes[0] = FORMAT_VERSION;
        bytes[1] = 0x90;
        assert_eq!(Bundle::decode(bytes.clone()), Err(BundleError::UnknownKind(9)));
        bytes[1] = 0x10;
        assert_eq!(Bundle::decode(bytes.clone()), Err(BundleError::UnknownKind(1)));
        bytes[1] = 0x04;
        assert_eq!(Bundle::decode(bytes.clone()), Err(BundleError::UnknownCompartment(4)));
        // A snapshot's `covers` follows the epoch: its header is one byte longer.
        bytes[1] = 0x20;
        assert!(matches!(Bundle::decode(bytes.clone()), Err(BundleError::Truncated { .. })));
        bytes.push(0);
        assert_eq!(Bundle::decode(bytes).unwrap().header.kind.covers(), Some(0));
        assert!(matches!(Bundle::decode(vec![0; MAX_BUNDLE_LEN + 1]), Err(BundleError::TooLarge { .. })));
    }

    #[test]
    fn numbers_in_the_header_are_taken_only_in_their_shortest_form() {
        let mut bytes = vec![0u8; MIN_BUNDLE_LEN + 8];
        bytes[0] = FORMAT_VERSION;
        bytes[EPOCH_OFFSET] = 0x81;
        bytes[EPOCH_OFFSET + 1] = 0x00; // 1, in two bytes
        assert_eq!(Bundle::decode(bytes.clone()), Err(BundleError::BadNumber));
        bytes[EPOCH_OFFSET..EPOCH_OFFSET + 6].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x7f, 0]);
        assert_eq!(Bundle::decode(bytes.clone()), Err(BundleError::BadNumber)); // above u32
        bytes[EPOCH_OFFSET..EPOCH_OFFSET + 6].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0]);
        assert_eq!(Bundle::decode(bytes).unwrap().header.epoch, u32::MAX);
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            if let Ok(bundle) = Bundle::decode(bytes.clone()) {
                let _ = bundle.verify(&key().verifying_key());
                let _ = bundle.open(&[0; 32]);
            }
            let _ = open_retired(&bytes, &[0; 32]);
        }
    }
}
