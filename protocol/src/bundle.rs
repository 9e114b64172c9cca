//! Bundles: automerge changes sealed under a document's epoch key and signed by their author.
//!
//! ```text
//! offset  size  field
//!      0     1  format version (1)
//!      1     1  kind: 0 = changes, 2 = snapshot (1, a snapshot without `covers`, is retired)
//!      2    16  plan id
//!     18     1  compartment (0 basis, 1 zorg, 2 veiligheid, 3 justitie)
//!     19     4  key epoch, big-endian
//!     23    16  author device id
//!     39    16  bundle id (random; pushes are idempotent by it)
//!    [55     8  snapshots only: `covers`, the server log position the snapshot covers, BE]
//!      h    24  XChaCha20-Poly1305 nonce (h = 55 for changes, 63 for snapshots)
//!   h+24     n  ciphertext || tag (16); associated data = bytes 0..h (the header)
//! h+24+n    64  Ed25519 signature by the author over bytes 0..h+24+n
//! ```
//!
//! A snapshot's `covers` is part of the signed, authenticated header: the server cannot move
//! a snapshot to another position of the log, and its author is bound to the claim that it
//! holds exactly the document's changes up to that position (receivers check the claim
//! against witness bundles; see `eenplan_core::sync`).
//!
//! Example: a one-field edit is ≈ 110 bytes of automerge change, so its bundle is ≈ 270 bytes.
//! The header is the associated data, so a bundle replayed under another document id, epoch
//! or author fails to decrypt even before its signature is checked; the signature lets the
//! server and every receiver refuse a bundle its claimed author did not write, without any
//! key that opens it.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

pub const FORMAT_VERSION: u8 = 1;
/// The header of a changes bundle; a snapshot's is [`SNAPSHOT_HEADER_LEN`].
pub const HEADER_LEN: usize = 55;
/// The header of a snapshot bundle: [`HEADER_LEN`] and the 8-byte `covers`.
pub const SNAPSHOT_HEADER_LEN: usize = HEADER_LEN + 8;
pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;
pub const SIGNATURE_LEN: usize = 64;
/// The smallest well-formed bundle: an empty payload.
pub const MIN_BUNDLE_LEN: usize = HEADER_LEN + NONCE_LEN + TAG_LEN + SIGNATURE_LEN;
/// Refused above this before anything else is done: a bundle is one edit or one snapshot.
pub const MAX_BUNDLE_LEN: usize = 16 * 1024 * 1024;

/// Why a bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("bundle is {len} bytes, shorter than the {min}-byte minimum")]
    Truncated { len: usize, min: usize },
    #[error("bundle is {len} bytes, more than the {max} accepted")]
    TooLarge { len: usize, max: usize },
    #[error("bundle format version {0} is not supported")]
    UnsupportedVersion(u8),
    #[error("bundle kind {0} is unknown")]
    UnknownKind(u8),
    #[error("a snapshot without a signed log position is no longer accepted")]
    RetiredSnapshot,
    #[error("compartment {0} is unknown")]
    UnknownCompartment(u8),
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
    /// A snapshot without a signed `covers` (format of before the hardening); refused.
    const RETIRED_SNAPSHOT: u8 = 1;
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

    fn header_len(self) -> usize {
        match self {
            BundleKind::Changes => HEADER_LEN,
            BundleKind::Snapshot { .. } => SNAPSHOT_HEADER_LEN,
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
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.kind.header_len()];
        out[0] = FORMAT_VERSION;
        out[2..19].copy_from_slice(&self.document.to_bytes());
        out[19..23].copy_from_slice(&self.epoch.to_be_bytes());
        out[23..39].copy_from_slice(&self.author);
        out[39..55].copy_from_slice(&self.bundle_id);
        match self.kind {
            BundleKind::Changes => out[1] = BundleKind::CHANGES,
            BundleKind::Snapshot { covers } => {
                out[1] = BundleKind::SNAPSHOT;
                out[55..63].copy_from_slice(&covers.to_be_bytes());
            }
        }
        out
    }

    /// The header at the start of `bytes`, and its length. `bytes` holds at least
    /// [`MIN_BUNDLE_LEN`] bytes, so a changes header is always there.
    fn decode(bytes: &[u8]) -> Result<(Self, usize), BundleError> {
        let truncated = || BundleError::Truncated { len: bytes.len(), min: MIN_BUNDLE_LEN };
        if bytes.first().copied() != Some(FORMAT_VERSION) {
            return Err(BundleError::UnsupportedVersion(bytes.first().copied().unwrap_or(0)));
        }
        let kind = match bytes.get(1).copied().ok_or_else(truncated)? {
            BundleKind::CHANGES => BundleKind::Changes,
            BundleKind::SNAPSHOT => {
                let covers: [u8; 8] = bytes
                    .get(HEADER_LEN..SNAPSHOT_HEADER_LEN)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(truncated)?;
                BundleKind::Snapshot { covers: u64::from_be_bytes(covers) }
            }
            BundleKind::RETIRED_SNAPSHOT => return Err(BundleError::RetiredSnapshot),
            other => return Err(BundleError::UnknownKind(other)),
        };
        let len = kind.header_len();
        if bytes.len() < len + NONCE_LEN + TAG_LEN + SIGNATURE_LEN {
            return Err(BundleError::Truncated {
                len: bytes.len(),
                min: len + NONCE_LEN + TAG_LEN + SIGNATURE_LEN,
            });
        }
        let mut epoch = [0u8; 4];
        epoch.copy_from_slice(&bytes[19..23]);
        let mut author = [0u8; 16];
        author.copy_from_slice(&bytes[23..39]);
        let mut bundle_id = [0u8; 16];
        bundle_id.copy_from_slice(&bytes[39..55]);
        let header = Self {
            kind,
            document: DocumentId::from_bytes(&bytes[2..19])?,
            epoch: u32::from_be_bytes(epoch),
            author,
            bundle_id,
        };
        Ok((header, len))
    }
}

/// The author a bundle's header names, without checking or copying anything else: for
/// deciding which certificates to fetch before the bundles are judged.
pub fn peek_author(bytes: &[u8]) -> Option<[u8; 16]> {
    bytes.get(23..39).and_then(|author| author.try_into().ok())
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
    /// Seals `payload` under `epoch_key` and signs the result with the author's key.
    pub fn seal(
        header: BundleHeader,
        epoch_key: &[u8; 32],
        payload: &[u8],
        author: &SigningKey,
    ) -> Result<Bundle, BundleError> {
        let header_len = header.kind.header_len();
        let len = payload.len().saturating_add(MIN_BUNDLE_LEN - HEADER_LEN + header_len);
        if len > MAX_BUNDLE_LEN {
            return Err(BundleError::TooLarge { len, max: MAX_BUNDLE_LEN });
        }
        let encoded = header.encode();
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        let cipher = XChaCha20Poly1305::new(&(*epoch_key).into());
        let ciphertext = cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: payload, aad: &encoded })
            .map_err(|_| BundleError::TooLarge { len, max: MAX_BUNDLE_LEN })?;
        let mut bytes = Vec::with_capacity(len);
        bytes.extend_from_slice(&encoded);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ciphertext);
        let signature = author.sign(&bytes);
        bytes.extend_from_slice(&signature.to_bytes());
        Ok(Bundle { header, header_len, bytes })
    }

    /// Parses the framing. Cheap; checks sizes, version, kind and compartment only.
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
        let (header, rest) = signed.split_at(self.header_len);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| BundleError::Undecryptable)?;
        let cipher = XChaCha20Poly1305::new(&(*epoch_key).into());
        cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: ciphertext, aad: header })
            .map_err(|_| BundleError::Undecryptable)
    }
}

fn fill_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        no_randomness();
    }
}

#[cold]
#[allow(clippy::panic)]
fn no_randomness() -> ! {
    // A nonce from a broken random source would repeat; refusing to continue is the only
    // safe answer, and it is not something input can trigger.
    panic!("the operating system has no random source")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(author: &SigningKey) -> BundleHeader {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&author.verifying_key().as_bytes()[..8]);
        BundleHeader {
            kind: BundleKind::Changes,
            document: DocumentId::new([7; 16], 1).unwrap(),
            epoch: 3,
            author: id,
            bundle_id: [9; 16],
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
        assert_eq!(decoded.header, header(&author));
        decoded.verify(&author.verifying_key()).unwrap();
        assert_eq!(decoded.open(&[1; 32]).unwrap(), b"automerge change");
        assert_eq!(bundle.as_bytes().len(), MIN_BUNDLE_LEN + 16);
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
        bytes[18] = 2; // compartment zorg -> veiligheid
        let moved = Bundle::decode(bytes).unwrap();
        assert_eq!(moved.verify(&author.verifying_key()), Err(BundleError::BadSignature));
        assert_eq!(moved.open(&[1; 32]), Err(BundleError::Undecryptable));
    }

    #[test]
    fn a_snapshot_carries_its_covered_position_in_the_signed_header() {
        let author = key();
        let snapshot = BundleHeader { kind: BundleKind::Snapshot { covers: 4711 }, ..header(&author) };
        let bundle = Bundle::seal(snapshot, &[1; 32], b"saved document", &author).unwrap();
        let decoded = Bundle::decode(bundle.as_bytes().to_vec()).unwrap();
        assert_eq!(decoded.header.kind.covers(), Some(4711));
        decoded.verify(&author.verifying_key()).unwrap();
        assert_eq!(decoded.open(&[1; 32]).unwrap(), b"saved document");
        // Moving it to another position of the log breaks both the signature and the AEAD.
        let mut bytes = bundle.into_bytes();
        bytes[62] ^= 1;
        let moved = Bundle::decode(bytes).unwrap();
        assert_eq!(moved.header.kind.covers(), Some(4710));
        assert_eq!(moved.verify(&author.verifying_key()), Err(BundleError::BadSignature));
        assert_eq!(moved.open(&[1; 32]), Err(BundleError::Undecryptable));
    }

    #[test]
    fn a_wrong_epoch_key_cannot_open_a_bundle() {
        let author = key();
        let bundle = Bundle::seal(header(&author), &[1; 32], b"x", &author).unwrap();
        assert_eq!(bundle.open(&[2; 32]), Err(BundleError::Undecryptable));
    }

    #[test]
    fn malformed_framing_is_a_typed_error() {
        assert!(matches!(Bundle::decode(vec![1; 10]), Err(BundleError::Truncated { .. })));
        let mut bytes = vec![0u8; MIN_BUNDLE_LEN];
        assert_eq!(Bundle::decode(bytes.clone()), Err(BundleError::UnsupportedVersion(0)));
        bytes[0] = FORMAT_VERSION;
        bytes[1] = 9;
        assert_eq!(Bundle::decode(bytes.clone()), Err(BundleError::UnknownKind(9)));
        bytes[1] = 1;
        assert_eq!(Bundle::decode(bytes.clone()), Err(BundleError::RetiredSnapshot));
        bytes[1] = 2;
        assert!(matches!(Bundle::decode(bytes.clone()), Err(BundleError::Truncated { .. })));
        bytes[1] = 0;
        bytes[18] = 4;
        assert_eq!(Bundle::decode(bytes), Err(BundleError::UnknownCompartment(4)));
        assert!(matches!(Bundle::decode(vec![0; MAX_BUNDLE_LEN + 1]), Err(BundleError::TooLarge { .. })));
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            if let Ok(bundle) = Bundle::decode(bytes) {
                let _ = bundle.verify(&key().verifying_key());
                let _ = bundle.open(&[0; 32]);
            }
        }
    }
}
