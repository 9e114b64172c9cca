//! Key envelopes: a document's epoch key sealed to one device (or to the network's escrow
//! key) with HPKE (RFC 9180, the `hpke` crate).
//!
//! ```text
//! suite (u16, big-endian) || encapsulated key || HPKE ciphertext of the 32-byte epoch key
//! info = "eenplan/envelope/v1"
//! aad  = document id (17) || epoch (u32) || recipient device id (16)
//! ```
//!
//! Plans are kept for 15–20 years (Jeugdwet), so an envelope recorded today must stay closed
//! to a quantum computer of tomorrow ("harvest now, decrypt later"). New envelopes therefore
//! use suite 2, the hybrid X-Wing KEM (ML-KEM-768 + X25519): it stays safe while either half
//! does. Suite 1 (X25519 alone) is still opened, so that envelopes sealed before the switch
//! stay readable. Which suite a recipient gets follows from its public key: 1,216 bytes is an
//! X-Wing key, 32 bytes an X25519 key. A recipient's secret is 32 bytes in both suites (the
//! X-Wing secret is its seed), so one secret opens whichever suite its public key was given to.
//!
//! Sizes: a suite-1 envelope is 2 + 32 + 48 = 82 bytes, a suite-2 envelope 2 + 1,120 + 48 =
//! 1,170 bytes (plus the 80-byte signature trailer of [`sign`] in both cases).
//!
//! The associated data binds an envelope to its document, epoch and recipient, so the server
//! cannot hand one device's envelope to another or present an old epoch's key as the current
//! one.

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::{X25519HkdfSha256, XWing};
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};

use crate::bundle::DocumentId;

const INFO: &[u8] = b"eenplan/envelope/v1";
/// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305. Opened, no longer sealed to
/// new keys.
pub const SUITE_X25519_CHACHA: u16 = 1;
/// X-Wing (ML-KEM-768 + X25519), HKDF-SHA256, ChaCha20-Poly1305: what new keys get.
pub const SUITE_XWING_CHACHA: u16 = 2;
/// Public key lengths that name the suite.
pub const X25519_PUBLIC_LEN: usize = 32;
pub const XWING_PUBLIC_LEN: usize = 1216;
const X25519_ENC_LEN: usize = 32;
const XWING_ENC_LEN: usize = 1120;
pub const MAX_ENVELOPE_LEN: usize = 2048;

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
    #[error("the envelope is sealed with suite {envelope}, but the recipient's key is of suite {key}")]
    WrongSuite { envelope: u16, key: u16 },
}

/// A recipient's 32-byte secret, named by the suite its public key belongs to.
#[derive(Clone, Copy)]
pub enum RecipientSecret<'a> {
    /// An X-Wing seed (every device and escrow key made since the switch).
    XWing(&'a [u8; 32]),
    /// An X25519 secret (keys made before the switch; opened, never made any more).
    X25519(&'a [u8; 32]),
}

impl std::fmt::Debug for RecipientSecret<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret itself never reaches a log.
        f.write_str(match self {
            RecipientSecret::XWing(_) => "RecipientSecret::XWing",
            RecipientSecret::X25519(_) => "RecipientSecret::X25519",
        })
    }
}

impl<'a> RecipientSecret<'a> {
    /// The secret of the key pair whose public half is `public` (its length names the suite).
    pub fn for_public(public: &[u8], secret: &'a [u8; 32]) -> Result<RecipientSecret<'a>, EnvelopeError> {
        match public.len() {
            XWING_PUBLIC_LEN => Ok(RecipientSecret::XWing(secret)),
            X25519_PUBLIC_LEN => Ok(RecipientSecret::X25519(secret)),
            _ => Err(EnvelopeError::BadRecipientKey),
        }
    }

    /// The suite envelopes to this key are sealed with.
    pub fn suite(&self) -> u16 {
        match self {
            RecipientSecret::XWing(_) => SUITE_XWING_CHACHA,
            RecipientSecret::X25519(_) => SUITE_X25519_CHACHA,
        }
    }
}

fn aad(document: DocumentId, epoch: u32, recipient: [u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(37);
    out.extend_from_slice(&document.to_bytes());
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(&recipient);
    out
}

fn seal_with<K: hpke::Kem>(
    suite: u16,
    recipient_public: &[u8],
    aad: &[u8],
    key: &[u8; 32],
) -> Result<Vec<u8>, EnvelopeError> {
    seal_message_with::<K>(suite, recipient_public, INFO, aad, key)
}

fn seal_message_with<K: hpke::Kem>(
    suite: u16,
    recipient_public: &[u8],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let public = K::PublicKey::from_bytes(recipient_public).map_err(|_| EnvelopeError::BadRecipientKey)?;
    let (encapped, ciphertext) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, K>(
        &OpModeS::Base,
        &public,
        info,
        plaintext,
        aad,
    )
    .map_err(|_| EnvelopeError::BadRecipientKey)?;
    let encapped = encapped.to_bytes();
    let mut out = Vec::with_capacity(2 + encapped.len() + ciphertext.len());
    out.extend_from_slice(&suite.to_be_bytes());
    out.extend_from_slice(&encapped);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

fn open_with<K: hpke::Kem>(
    rest: &[u8],
    enc_len: usize,
    recipient_secret: &[u8; 32],
    aad: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    open_message_with::<K>(rest, enc_len, recipient_secret, INFO, aad)
}

fn open_message_with<K: hpke::Kem>(
    rest: &[u8],
    enc_len: usize,
    recipient_secret: &[u8; 32],
    info: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let encapped = rest.get(..enc_len).ok_or(EnvelopeError::Malformed)?;
    let encapped = K::EncappedKey::from_bytes(encapped).map_err(|_| EnvelopeError::Malformed)?;
    let secret = K::PrivateKey::from_bytes(recipient_secret).map_err(|_| EnvelopeError::Undecryptable)?;
    hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, K>(
        &OpModeR::Base,
        &secret,
        &encapped,
        info,
        &rest[enc_len..],
        aad,
    )
    .map_err(|_| EnvelopeError::Undecryptable)
}

/// Seals `key` to `recipient_public`: an X-Wing public key (suite 2), or an X25519 one
/// (suite 1, for recipients enrolled before the switch).
pub fn seal(
    recipient_public: &[u8],
    recipient: [u8; 16],
    document: DocumentId,
    epoch: u32,
    key: &[u8; 32],
) -> Result<Vec<u8>, EnvelopeError> {
    let aad = aad(document, epoch, recipient);
    match recipient_public.len() {
        XWING_PUBLIC_LEN => seal_with::<XWing>(SUITE_XWING_CHACHA, recipient_public, &aad, key),
        X25519_PUBLIC_LEN => seal_with::<X25519HkdfSha256>(SUITE_X25519_CHACHA, recipient_public, &aad, key),
        _ => Err(EnvelopeError::BadRecipientKey),
    }
}

/// The suite an envelope was sealed with (its first two bytes).
pub fn suite_of(envelope: &[u8]) -> Result<u16, EnvelopeError> {
    match envelope {
        [a, b, ..] => Ok(u16::from_be_bytes([*a, *b])),
        _ => Err(EnvelopeError::Malformed),
    }
}

/// Opens an envelope with the recipient's X-Wing secret (seed): what every device and every
/// escrow key made since the switch holds. A suite-1 envelope is refused
/// ([`EnvelopeError::WrongSuite`]); a holder of an older X25519 key uses [`open_as`].
pub fn open(
    envelope: &[u8],
    recipient_secret: &[u8; 32],
    recipient: [u8; 16],
    document: DocumentId,
    epoch: u32,
) -> Result<zeroize::Zeroizing<[u8; 32]>, EnvelopeError> {
    open_as(envelope, RecipientSecret::XWing(recipient_secret), recipient, document, epoch)
}

/// Opens an envelope with a secret of the named suite. The suite the envelope claims must be
/// the key's: the envelope's first bytes never decide how the secret is used.
pub fn open_as(
    envelope: &[u8],
    recipient_secret: RecipientSecret<'_>,
    recipient: [u8; 16],
    document: DocumentId,
    epoch: u32,
) -> Result<zeroize::Zeroizing<[u8; 32]>, EnvelopeError> {
    if envelope.len() > MAX_ENVELOPE_LEN {
        return Err(EnvelopeError::Malformed);
    }
    let suite = suite_of(envelope)?;
    if suite != SUITE_XWING_CHACHA && suite != SUITE_X25519_CHACHA {
        return Err(EnvelopeError::UnsupportedSuite(suite));
    }
    if suite != recipient_secret.suite() {
        return Err(EnvelopeError::WrongSuite { envelope: suite, key: recipient_secret.suite() });
    }
    let rest = &envelope[2..];
    let aad = aad(document, epoch, recipient);
    let plain = match recipient_secret {
        RecipientSecret::XWing(secret) => open_with::<XWing>(rest, XWING_ENC_LEN, secret, &aad)?,
        RecipientSecret::X25519(secret) => open_with::<X25519HkdfSha256>(rest, X25519_ENC_LEN, secret, &aad)?,
    };
    let key: [u8; 32] = plain.as_slice().try_into().map_err(|_| EnvelopeError::Malformed)?;
    Ok(zeroize::Zeroizing::new(key))
}

/// Seals a message of any length to an X-Wing public key (suite 2 only: keys made for this
/// are new), under a caller's `info` label and associated data. The audit log seals each
/// upload to its organisation's audit key this way.
pub fn seal_message(
    recipient_public: &[u8],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    if recipient_public.len() != XWING_PUBLIC_LEN {
        return Err(EnvelopeError::BadRecipientKey);
    }
    seal_message_with::<XWing>(SUITE_XWING_CHACHA, recipient_public, info, aad, plaintext)
}

/// Opens what [`seal_message`] sealed, with the X-Wing secret (seed).
pub fn open_message(
    sealed: &[u8],
    recipient_secret: &[u8; 32],
    info: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let suite = suite_of(sealed)?;
    if suite != SUITE_XWING_CHACHA {
        return Err(EnvelopeError::UnsupportedSuite(suite));
    }
    open_message_with::<XWing>(&sealed[2..], XWING_ENC_LEN, recipient_secret, info, aad)
}

/// The X-Wing public key of a 32-byte X-Wing secret (seed).
pub fn public_key_of(secret: &[u8; 32]) -> Result<Vec<u8>, EnvelopeError> {
    let secret =
        <XWing as hpke::Kem>::PrivateKey::from_bytes(secret).map_err(|_| EnvelopeError::Malformed)?;
    Ok(XWing::sk_to_pk(&secret).to_bytes().to_vec())
}

/// A fresh X-Wing key pair in the encoding [`seal`] and [`open`] take (devices, escrow).
pub fn generate_keypair() -> (zeroize::Zeroizing<[u8; 32]>, Vec<u8>) {
    let (secret, public) = XWing::gen_keypair();
    let mut out = [0u8; 32];
    out.copy_from_slice(&secret.to_bytes());
    (zeroize::Zeroizing::new(out), public.to_bytes().to_vec())
}

/// A fresh X25519 key pair (suite 1): for reading old envelopes in tests and the size
/// comparison in the benchmark; new keys are X-Wing.
pub fn generate_x25519_keypair() -> (zeroize::Zeroizing<[u8; 32]>, Vec<u8>) {
    let (secret, public) = X25519HkdfSha256::gen_keypair();
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
    fn new_envelopes_use_the_hybrid_suite_and_old_x25519_ones_still_open() {
        let (secret, public) = generate_keypair();
        assert_eq!(public.len(), XWING_PUBLIC_LEN);
        assert_eq!(*public_key_of(&secret).unwrap(), public);
        let hybrid = seal(&public, [1; 16], doc(), 2, &[42; 32]).unwrap();
        assert_eq!(suite_of(&hybrid).unwrap(), SUITE_XWING_CHACHA);
        assert_eq!(hybrid.len(), 1170);
        let (old_secret, old_public) = generate_x25519_keypair();
        let classic = seal(&old_public, [1; 16], doc(), 2, &[42; 32]).unwrap();
        assert_eq!(suite_of(&classic).unwrap(), SUITE_X25519_CHACHA);
        assert_eq!(classic.len(), 82);
        let old_key = RecipientSecret::for_public(&old_public, &old_secret).unwrap();
        assert_eq!(*open_as(&classic, old_key, [1; 16], doc(), 2).unwrap(), [42; 32]);
        // The suite byte decides the KEM: a hybrid envelope relabelled as suite 1 is malformed
        // or undecryptable, never opened with the wrong half.
        let mut relabelled = hybrid.clone();
        relabelled[1] = 1;
        assert!(open(&relabelled, &secret, [1; 16], doc(), 2).is_err());
        assert!(open(&hybrid, &old_secret, [1; 16], doc(), 2).is_err());
    }

    #[test]
    fn the_key_not_the_envelope_decides_the_suite() {
        // A suite-1 envelope sealed to the X25519 key that an X-Wing seed reads as, when the
        // seed is taken for an X25519 scalar: it must not open for the seed's holder.
        let (seed, public) = generate_keypair();
        let as_x25519 = <X25519HkdfSha256 as hpke::Kem>::PrivateKey::from_bytes(seed.as_slice()).unwrap();
        let classic_public = X25519HkdfSha256::sk_to_pk(&as_x25519).to_bytes().to_vec();
        let downgraded = seal(&classic_public, [1; 16], doc(), 2, &[42; 32]).unwrap();
        assert_eq!(suite_of(&downgraded).unwrap(), SUITE_X25519_CHACHA);
        assert_eq!(
            open(&downgraded, &seed, [1; 16], doc(), 2).unwrap_err(),
            EnvelopeError::WrongSuite { envelope: SUITE_X25519_CHACHA, key: SUITE_XWING_CHACHA }
        );
        let hybrid_key = RecipientSecret::for_public(&public, &seed).unwrap();
        assert_eq!(
            open_as(&downgraded, hybrid_key, [1; 16], doc(), 2).unwrap_err(),
            EnvelopeError::WrongSuite { envelope: SUITE_X25519_CHACHA, key: SUITE_XWING_CHACHA }
        );
        // And the other way round: a holder of an X25519 key refuses a hybrid envelope.
        let (old_secret, old_public) = generate_x25519_keypair();
        let hybrid = seal(&public, [1; 16], doc(), 2, &[42; 32]).unwrap();
        let old_key = RecipientSecret::for_public(&old_public, &old_secret).unwrap();
        assert_eq!(
            open_as(&hybrid, old_key, [1; 16], doc(), 2).unwrap_err(),
            EnvelopeError::WrongSuite { envelope: SUITE_XWING_CHACHA, key: SUITE_X25519_CHACHA }
        );
        assert_eq!(*open_as(&hybrid, hybrid_key, [1; 16], doc(), 2).unwrap(), [42; 32]);
        assert_eq!(RecipientSecret::for_public(&[0; 5], &seed).unwrap_err(), EnvelopeError::BadRecipientKey);
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
