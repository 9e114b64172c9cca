//! The few primitives the core uses, each from an audited RustCrypto crate:
//! XChaCha20-Poly1305 for every sealed value, HMAC-SHA-256 for keyed lookup hashes,
//! HKDF-SHA-256 to split the store's data key into purpose-bound subkeys.
//!
//! A sealed value is `nonce (24 bytes) || ciphertext || tag (16 bytes)`. The nonce is random:
//! with 192 bits there is no practical risk of reuse, so no nonce state has to survive crashes.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;
/// Bytes a sealed value adds to its plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Opening a sealed value failed: wrong key, tampered bytes, or bytes moved from elsewhere
/// (the associated data no longer matches). The three are indistinguishable by design.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("sealed value failed authentication")]
pub struct OpenError;

/// A 256-bit symmetric key that is wiped from memory when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    pub fn generate() -> Self {
        Self(random_array())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A subkey for one purpose (HKDF-SHA-256, `info` = purpose). Keys for different purposes
    /// are independent, so a lookup hash can never be used to attack a ciphertext.
    pub fn derive(&self, purpose: &[u8]) -> SecretKey {
        let hk = hkdf::Hkdf::<Sha256>::new(None, &self.0);
        let mut out = [0u8; 32];
        // 32 bytes is always a valid HKDF-SHA-256 output length.
        if hk.expand(purpose, &mut out).is_err() {
            unreachable_output_length();
        }
        SecretKey(out)
    }

    /// Seal `plaintext` so that it opens only with this key and the same `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new(&self.0.into());
        let nonce_bytes: [u8; NONCE_LEN] = random_array();
        let nonce = XNonce::from(nonce_bytes);
        let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        out.extend_from_slice(&nonce_bytes);
        match cipher.encrypt(&nonce, Payload { msg: plaintext, aad }) {
            Ok(ct) => out.extend_from_slice(&ct),
            // Encryption only fails for plaintexts beyond 256 GiB, far above any limit we accept.
            Err(_) => unreachable_output_length(),
        }
        out
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(OpenError);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| OpenError)?;
        let cipher = XChaCha20Poly1305::new(&self.0.into());
        cipher.decrypt(&XNonce::from(nonce), Payload { msg: ct, aad }).map_err(|_| OpenError)
    }

    /// HMAC-SHA-256 of `data`: a lookup key that reveals nothing without this key.
    pub fn keyed_hash(&self, data: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable_output_length());
        mac.update(data);
        mac.finalize().into_bytes().into()
    }
}

#[cold]
fn unreachable_output_length() -> ! {
    // The lengths passed above are constants that the primitives accept; reaching this is a
    // bug in this module, not something input can trigger.
    unreachable!("fixed-length crypto parameter rejected")
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// SHA-256 over a sequence of fields, each framed by its length, under a domain label: two
/// different sequences never feed the hash the same bytes. What a stamp of stored rows is
/// made with (`store/read_models.rs`).
pub struct FieldDigest(Sha256);

impl std::fmt::Debug for FieldDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FieldDigest(..)")
    }
}

impl FieldDigest {
    pub fn new(domain: &[u8]) -> FieldDigest {
        let mut digest = FieldDigest(Sha256::new());
        digest.field(domain);
        digest
    }

    pub fn field(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
    }

    pub fn number(&mut self, n: i64) {
        self.field(&n.to_be_bytes());
    }

    /// A field that may be absent (a row that is not there, a NULL column): absent and
    /// empty differ.
    pub fn optional(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            None => self.0.update([0]),
            Some(bytes) => {
                self.0.update([1]);
                self.field(bytes);
            }
        }
    }

    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// Bytes from the operating system's CSPRNG.
pub fn random_array<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill_random(&mut out);
    out
}

pub fn fill_random(buf: &mut [u8]) {
    // Without an OS random source nothing here can be made safe; stop rather than
    // continue with predictable keys or nonces.
    if let Err(e) = getrandom::fill(buf) {
        panic_no_randomness(e);
    }
}

#[cold]
#[allow(clippy::panic)]
fn panic_no_randomness(e: getrandom::Error) -> ! {
    panic!("the operating system has no random source: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_value_opens_only_with_the_same_key_and_associated_data() {
        let key = SecretKey::generate();
        let sealed = key.seal(b"table|row-1", b"Jansen");
        assert_eq!(key.open(b"table|row-1", &sealed).as_deref(), Ok(&b"Jansen"[..]));
        assert_eq!(key.open(b"table|row-2", &sealed), Err(OpenError));
        assert_eq!(SecretKey::generate().open(b"table|row-1", &sealed), Err(OpenError));
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert_eq!(key.open(b"table|row-1", &flipped), Err(OpenError));
        assert_eq!(key.open(b"table|row-1", &sealed[..10]), Err(OpenError));
    }

    #[test]
    fn derived_subkeys_differ_per_purpose() {
        let key = SecretKey::generate();
        assert_ne!(key.derive(b"a"), key.derive(b"b"));
        assert_eq!(key.derive(b"a"), key.derive(b"a"));
    }
}
