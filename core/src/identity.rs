//! The device's identity: an Ed25519 signing key and an X-Wing (ML-KEM-768 + X25519) key
//! agreement key for key envelopes, generated on first start. The private halves are stored only sealed under the store's data key (which
//! the platform keystore wraps), and never leave the device.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::crypto;
use crate::ids::DeviceId;

/// The device's key pairs.
pub struct DeviceIdentity {
    signing: SigningKey,
    /// The X-Wing secret (its 32-byte seed) that opens key envelopes sealed to this device.
    agreement: Zeroizing<[u8; 32]>,
    /// Derived from `agreement` once: deriving an ML-KEM key takes a while.
    agreement_public: Vec<u8>,
}

impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceIdentity").field("device_id", &self.device_id()).finish_non_exhaustive()
    }
}

/// Serialized private keys had the wrong length.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("stored device keys are malformed")]
pub struct MalformedIdentity;

impl DeviceIdentity {
    pub fn generate() -> Self {
        let seed = Zeroizing::new(crypto::random_array::<32>());
        let (agreement, agreement_public) = eenplan_protocol::envelope::generate_keypair();
        Self { signing: SigningKey::from_bytes(&seed), agreement, agreement_public }
    }

    pub fn device_id(&self) -> DeviceId {
        DeviceId::from_signing_public_key(self.signing.verifying_key().as_bytes())
    }

    pub fn signing_public(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The X-Wing public key (1,216 bytes) that key envelopes are sealed to.
    pub fn agreement_public(&self) -> &[u8] {
        &self.agreement_public
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    pub fn sign(&self, message: &[u8]) -> ed25519_dalek::Signature {
        self.signing.sign(message)
    }

    /// The agreement secret, for HPKE opening in the sync layer.
    pub fn agreement_secret(&self) -> &[u8; 32] {
        &self.agreement
    }

    /// 64 bytes: signing seed then agreement secret. Only ever handed to the store to seal.
    pub(crate) fn to_secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(64));
        out.extend_from_slice(self.signing.as_bytes());
        out.extend_from_slice(&self.agreement[..]);
        out
    }

    pub(crate) fn from_secret_bytes(bytes: &[u8]) -> Result<Self, MalformedIdentity> {
        if bytes.len() != 64 {
            return Err(MalformedIdentity);
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&bytes[..32]);
        let mut agreement = Zeroizing::new([0u8; 32]);
        agreement.copy_from_slice(&bytes[32..]);
        let agreement_public =
            eenplan_protocol::envelope::public_key_of(&agreement).map_err(|_| MalformedIdentity)?;
        Ok(Self { signing: SigningKey::from_bytes(&seed), agreement, agreement_public })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Verifier;

    #[test]
    fn identity_survives_serialisation_and_signs_verifiably() {
        let id = DeviceIdentity::generate();
        let back = DeviceIdentity::from_secret_bytes(&id.to_secret_bytes()).unwrap();
        assert_eq!(back.device_id(), id.device_id());
        assert_eq!(back.agreement_public(), id.agreement_public());
        let sig = back.sign(b"challenge");
        assert!(id.signing_public().verify(b"challenge", &sig).is_ok());
        assert_eq!(DeviceIdentity::from_secret_bytes(&[0u8; 63]).err(), Some(MalformedIdentity));
    }
}
