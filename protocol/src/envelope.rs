//! Key envelopes: a document's epoch key sealed to one device (or to the network's escrow
//! key) with HPKE (RFC 9180, the `hpke` crate).
//!
//! ```text
//! suite (u16, big-endian) || encapsulated key || HPKE ciphertext of the 32-byte epoch key
//! info = "eenplan/envelope/v1"
//! aad  = document id (17) || epoch (u32) || recipient device id (16)
//! ```
//!
//! The suite identifier lets a later version move to another KEM (the post-quantum hybrid
//! X-Wing) while old envelopes stay readable. The associated data binds an envelope to its
//! document, epoch and recipient, so the server cannot hand one device's envelope to another
//! or present an old epoch's key as the current one.

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};

use crate::bundle::DocumentId;

const INFO: &[u8] = b"eenplan/envelope/v1";
/// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305.
pub const SUITE_X25519_CHACHA: u16 = 1;
const X25519_ENC_LEN: usize = 32;
pub const MAX_ENVELOPE_LEN: usize = 2048;

type Kem = X25519HkdfSha256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("envelope suite {0} is not supported")]
    UnsupportedSuite(u16),
    #[error("the envelope is malformed")]
    Malformed,
    #[error("the recipient's public key is not valid")]
    BadRecipientKey,
    #[error("the envelope does not open with this key, or is bound to another document, epoch or device")]
    Undecryptable,
    #[error("the envelope's signature is not its sealer's")]
    BadSignature,
}

fn aad(document: DocumentId, epoch: u32, recipient: [u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(37);
    out.extend_from_slice(&document.to_bytes());
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(&recipient);
    out
}

/// Seals `key` to `recipient_public` (an X25519 public key).
pub fn seal(
    recipient_public: &[u8],
    recipient: [u8; 16],
    document: DocumentId,
    epoch: u32,
    key: &[u8; 32],
) -> Result<Vec<u8>, EnvelopeError> {
    let public = <Kem as hpke::Kem>::PublicKey::from_bytes(recipient_public)
        .map_err(|_| EnvelopeError::BadRecipientKey)?;
    let (encapped, ciphertext) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeS::Base,
        &public,
        INFO,
        key,
        &aad(document, epoch, recipient),
    )
    .map_err(|_| EnvelopeError::BadRecipientKey)?;
    let mut out = Vec::with_capacity(2 + X25519_ENC_LEN + ciphertext.len());
    out.extend_from_slice(&SUITE_X25519_CHACHA.to_be_bytes());
    out.extend_from_slice(&encapped.to_bytes());
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Opens an envelope with the recipient's X25519 secret.
pub fn open(
    envelope: &[u8],
    recipient_secret: &[u8; 32],
    recipient: [u8; 16],
    document: DocumentId,
    epoch: u32,
) -> Result<zeroize::Zeroizing<[u8; 32]>, EnvelopeError> {
    if envelope.len() > MAX_ENVELOPE_LEN || envelope.len() < 2 {
        return Err(EnvelopeError::Malformed);
    }
    let suite = u16::from_be_bytes([envelope[0], envelope[1]]);
    if suite != SUITE_X25519_CHACHA {
        return Err(EnvelopeError::UnsupportedSuite(suite));
    }
    let rest = &envelope[2..];
    let encapped = rest.get(..X25519_ENC_LEN).ok_or(EnvelopeError::Malformed)?;
    let encapped =
        <Kem as hpke::Kem>::EncappedKey::from_bytes(encapped).map_err(|_| EnvelopeError::Malformed)?;
    let secret = <Kem as hpke::Kem>::PrivateKey::from_bytes(recipient_secret)
        .map_err(|_| EnvelopeError::Undecryptable)?;
    let plain = hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeR::Base,
        &secret,
        &encapped,
        INFO,
        &rest[X25519_ENC_LEN..],
        &aad(document, epoch, recipient),
    )
    .map_err(|_| EnvelopeError::Undecryptable)?;
    let key: [u8; 32] = plain.as_slice().try_into().map_err(|_| EnvelopeError::Malformed)?;
    Ok(zeroize::Zeroizing::new(key))
}

/// A fresh X25519 key pair in the encoding [`seal`] and [`open`] take (for escrow keys).
pub fn generate_keypair() -> (zeroize::Zeroizing<[u8; 32]>, Vec<u8>) {
    let (secret, public) = Kem::gen_keypair();
    let mut out = [0u8; 32];
    out.copy_from_slice(&secret.to_bytes());
    (zeroize::Zeroizing::new(out), public.to_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> DocumentId {
        DocumentId::new([3; 16], 0).unwrap()
    }

    #[test]
    fn an_envelope_opens_only_for_its_recipient_document_and_epoch() {
        let (secret, public) = generate_keypair();
        let sealed = seal(&public, [1; 16], doc(), 2, &[42; 32]).unwrap();
        assert_eq!(*open(&sealed, &secret, [1; 16], doc(), 2).unwrap(), [42; 32]);
        assert_eq!(open(&sealed, &secret, [9; 16], doc(), 2).unwrap_err(), EnvelopeError::Undecryptable);
        assert_eq!(open(&sealed, &secret, [1; 16], doc(), 3).unwrap_err(), EnvelopeError::Undecryptable);
        let other = DocumentId::new([3; 16], 1).unwrap();
        assert_eq!(open(&sealed, &secret, [1; 16], other, 2).unwrap_err(), EnvelopeError::Undecryptable);
        let (wrong, _) = generate_keypair();
        assert_eq!(open(&sealed, &wrong, [1; 16], doc(), 2).unwrap_err(), EnvelopeError::Undecryptable);
    }

    #[test]
    fn malformed_envelopes_are_a_typed_error() {
        let (secret, public) = generate_keypair();
        let sealed = seal(&public, [1; 16], doc(), 2, &[42; 32]).unwrap();
        for len in 0..sealed.len() {
            assert!(open(&sealed[..len], &secret, [1; 16], doc(), 2).is_err());
        }
        let mut other_suite = sealed.clone();
        other_suite[1] = 9;
        assert_eq!(
            open(&other_suite, &secret, [1; 16], doc(), 2).unwrap_err(),
            EnvelopeError::UnsupportedSuite(9)
        );
        assert_eq!(
            seal(&[1, 2, 3], [1; 16], doc(), 2, &[0; 32]).unwrap_err(),
            EnvelopeError::BadRecipientKey
        );
    }
}

/// What travels: an envelope, the id of the device that sealed it, and that device's
/// signature. HPKE base mode proves nothing about the sender (anyone with the recipient's
/// public key can seal), so without the signature a server could hand a device a key of its
/// own choosing and read what the device encrypts with it next.
///
/// `signed = envelope || sealer device id (16) || Ed25519(sealer, label || aad || envelope)`
pub const SIGNED_TRAILER_LEN: usize = 16 + 64;
const SIGNATURE_LABEL: &[u8] = b"eenplan/envelope-signature/v1\n";

fn signed_message(envelope: &[u8], document: DocumentId, epoch: u32, recipient: [u8; 16]) -> Vec<u8> {
    [SIGNATURE_LABEL, &aad(document, epoch, recipient), envelope].concat()
}

/// Appends the sealer's id and signature to a sealed envelope.
pub fn sign(
    envelope: Vec<u8>,
    sealer: [u8; 16],
    sealer_key: &ed25519_dalek::SigningKey,
    document: DocumentId,
    epoch: u32,
    recipient: [u8; 16],
) -> Vec<u8> {
    use ed25519_dalek::Signer;
    let signature = sealer_key.sign(&signed_message(&envelope, document, epoch, recipient));
    let mut out = envelope;
    out.extend_from_slice(&sealer);
    out.extend_from_slice(&signature.to_bytes());
    out
}

/// A signed envelope's parts: the HPKE envelope, the sealer's device id, its signature.
pub type SignedParts<'a> = (&'a [u8], [u8; 16], [u8; 64]);

/// Splits a signed envelope into its parts.
pub fn split_signed(signed: &[u8]) -> Result<SignedParts<'_>, EnvelopeError> {
    if signed.len() > MAX_ENVELOPE_LEN || signed.len() < SIGNED_TRAILER_LEN + 2 {
        return Err(EnvelopeError::Malformed);
    }
    let (envelope, trailer) = signed.split_at(signed.len() - SIGNED_TRAILER_LEN);
    let (sealer, signature) = trailer.split_at(16);
    let sealer: [u8; 16] = sealer.try_into().map_err(|_| EnvelopeError::Malformed)?;
    let signature: [u8; 64] = signature.try_into().map_err(|_| EnvelopeError::Malformed)?;
    Ok((envelope, sealer, signature))
}

/// Checks the sealer's signature over a signed envelope's parts.
pub fn verify_signature(
    envelope: &[u8],
    signature: &[u8; 64],
    sealer_public: &[u8; 32],
    document: DocumentId,
    epoch: u32,
    recipient: [u8; 16],
) -> Result<(), EnvelopeError> {
    let key =
        ed25519_dalek::VerifyingKey::from_bytes(sealer_public).map_err(|_| EnvelopeError::Undecryptable)?;
    key.verify_strict(
        &signed_message(envelope, document, epoch, recipient),
        &ed25519_dalek::Signature::from_bytes(signature),
    )
    .map_err(|_| EnvelopeError::BadSignature)
}

#[cfg(test)]
mod signature_tests {
    use super::*;

    #[test]
    fn a_signed_envelope_verifies_only_for_its_sealer_recipient_document_and_epoch() {
        let (_, public) = generate_keypair();
        let document = DocumentId::new([3; 16], 0).unwrap();
        let sealer = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
        let sealed = seal(&public, [1; 16], document, 1, &[42; 32]).unwrap();
        let signed = sign(sealed, [7; 16], &sealer, document, 1, [1; 16]);
        let (envelope, sealer_id, signature) = split_signed(&signed).unwrap();
        assert_eq!(sealer_id, [7; 16]);
        let sealer_public = sealer.verifying_key().to_bytes();
        assert!(verify_signature(envelope, &signature, &sealer_public, document, 1, [1; 16]).is_ok());
        assert_eq!(
            verify_signature(envelope, &signature, &sealer_public, document, 2, [1; 16]),
            Err(EnvelopeError::BadSignature)
        );
        assert_eq!(
            verify_signature(envelope, &signature, &sealer_public, document, 1, [2; 16]),
            Err(EnvelopeError::BadSignature)
        );
        let other = ed25519_dalek::SigningKey::from_bytes(&[5; 32]).verifying_key().to_bytes();
        assert_eq!(
            verify_signature(envelope, &signature, &other, document, 1, [1; 16]),
            Err(EnvelopeError::BadSignature)
        );
        assert_eq!(split_signed(&signed[..40]), Err(EnvelopeError::Malformed));
    }
}
