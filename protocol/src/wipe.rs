//! Wipe orders (administrator → device) and wipe reports (device → server).
//!
//! Revoking a device leaves a wipe order at the server, signed by the administrator. The
//! revoked device can no longer open a session, so it fetches the order without one; it
//! obeys only an order that names it and is signed by an administrator whose certificate
//! chains to the root it pinned at enrolment, so neither the server nor anyone else can wipe
//! a device. After wiping, the device sends a report signed by its own key (made before the
//! key is destroyed), so the administrator sees that the data is gone.
//!
//! ```text
//! order  = CBOR { b: CBOR(WipeOrder),  s: Ed25519(admin,  "eenplan/wipe-order/v1\n"  || b) }
//! report = CBOR { b: CBOR(WipeReport), s: Ed25519(device, "eenplan/wipe-report/v1\n" || b) }
//! ```
//!
//! A wipe after too many failed unlocks leaves the device without any key to sign with, so
//! that report is signed in advance and kept beside the store, where anyone holding a copy of
//! the device's files can read it. It is therefore bound to a **nonce**: at each session the
//! device draws a fresh one, signs a new report carrying it, and registers
//! [`wipe_nonce_hash`] of it with the server (under its session signature). The server takes
//! a self-wipe report only if its nonce hashes to the newest registered value, only for a
//! device that is revoked or whose lease has lapsed by the server's own record, and forgets
//! the report again when the device opens a session afterwards. A [`WipeCause::Ordered`]
//! report is signed only after a verified wipe order, and taken only for a revoked device.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::certificate::bytes;
use crate::sync::Fixed;

const ORDER_LABEL: &[u8] = b"eenplan/wipe-order/v1\n";
const REPORT_LABEL: &[u8] = b"eenplan/wipe-report/v1\n";
pub const MAX_WIPE_MESSAGE_LEN: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WipeError {
    #[error("the wipe message is malformed")]
    Malformed,
    #[error("the wipe message's signature does not verify")]
    BadSignature,
}

/// Why an administrator revoked a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationReason {
    Lost,
    Stolen,
    Replaced,
    Left,
}

impl RevocationReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationReason::Lost => "lost",
            RevocationReason::Stolen => "stolen",
            RevocationReason::Replaced => "replaced",
            RevocationReason::Left => "left",
        }
    }

    pub fn parse(text: &str) -> Option<RevocationReason> {
        [RevocationReason::Lost, RevocationReason::Stolen, RevocationReason::Replaced, RevocationReason::Left]
            .into_iter()
            .find(|r| r.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WipeOrder {
    #[serde(rename = "d")]
    pub device: Fixed<16>,
    #[serde(rename = "r")]
    pub reason: RevocationReason,
    #[serde(rename = "t")]
    pub issued_at_ms: i64,
    /// The issuing administrator's certificate (signed by the root).
    #[serde(rename = "c", with = "bytes")]
    pub admin_certificate: Vec<u8>,
}

/// Why a device wiped itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WipeCause {
    /// It obeyed a wipe order.
    Ordered,
    /// Too many wrong passphrases or keystore failures.
    FailedUnlocks,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WipeReport {
    #[serde(rename = "d")]
    pub device: Fixed<16>,
    #[serde(rename = "c")]
    pub cause: WipeCause,
    #[serde(rename = "t")]
    pub signed_at_ms: i64,
    /// For a self-wipe report signed in advance: the nonce whose [`wipe_nonce_hash`] the device
    /// registered at its last session. Absent in ordered reports.
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<Fixed<32>>,
}

const NONCE_LABEL: &[u8] = b"eenplan/wipe-nonce/v1\n";

/// What a device registers for the nonce of its newest self-wipe report:
/// `SHA-256("eenplan/wipe-nonce/v1\n" || nonce)`. The server learns the nonce only from the
/// report itself.
pub fn wipe_nonce_hash(nonce: &[u8; 32]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::new().chain_update(NONCE_LABEL).chain_update(nonce).finalize().into()
}

/// A signed wipe order or report, as it travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    #[serde(rename = "b", with = "bytes")]
    pub body: Vec<u8>,
    #[serde(rename = "s", with = "bytes")]
    pub signature: Vec<u8>,
}

impl Signed {
    fn make<T: Serialize>(label: &[u8], value: &T, key: &SigningKey) -> Signed {
        let body = crate::sync::encode(value);
        let signature = key.sign(&[label, &body].concat()).to_bytes().to_vec();
        Signed { body, signature }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        crate::sync::encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Signed, WipeError> {
        crate::sync::decode(bytes, MAX_WIPE_MESSAGE_LEN).map_err(|_| WipeError::Malformed)
    }

    fn check(&self, label: &[u8], public: &[u8; 32]) -> Result<(), WipeError> {
        let key = VerifyingKey::from_bytes(public).map_err(|_| WipeError::BadSignature)?;
        let signature: [u8; 64] =
            self.signature.as_slice().try_into().map_err(|_| WipeError::BadSignature)?;
        key.verify_strict(&[label, &self.body].concat(), &ed25519_dalek::Signature::from_bytes(&signature))
            .map_err(|_| WipeError::BadSignature)
    }

    fn body<T: for<'de> Deserialize<'de>>(&self) -> Result<T, WipeError> {
        crate::sync::decode(&self.body, MAX_WIPE_MESSAGE_LEN).map_err(|_| WipeError::Malformed)
    }
}

impl WipeOrder {
    pub fn sign(&self, admin: &SigningKey) -> Signed {
        Signed::make(ORDER_LABEL, self, admin)
    }

    /// The order as claimed, before the signature is checked (to find the admin certificate).
    pub fn claimed(signed: &Signed) -> Result<WipeOrder, WipeError> {
        signed.body()
    }

    /// Checks the signature against the administrator key from the verified certificate.
    pub fn verify(signed: &Signed, admin_public: &[u8; 32]) -> Result<WipeOrder, WipeError> {
        signed.check(ORDER_LABEL, admin_public)?;
        signed.body()
    }
}

impl WipeReport {
    pub fn sign(&self, device: &SigningKey) -> Signed {
        Signed::make(REPORT_LABEL, self, device)
    }

    pub fn claimed(signed: &Signed) -> Result<WipeReport, WipeError> {
        signed.body()
    }

    pub fn verify(signed: &Signed, device_public: &[u8; 32]) -> Result<WipeReport, WipeError> {
        signed.check(REPORT_LABEL, device_public)?;
        signed.body()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_and_reports_verify_only_under_their_signers_and_labels() {
        let admin = SigningKey::from_bytes(&[1; 32]);
        let device = SigningKey::from_bytes(&[2; 32]);
        let order = WipeOrder {
            device: Fixed([3; 16]),
            reason: RevocationReason::Stolen,
            issued_at_ms: 5,
            admin_certificate: vec![1, 2],
        };
        let signed = Signed::from_bytes(&order.sign(&admin).to_bytes()).unwrap();
        assert_eq!(WipeOrder::verify(&signed, &admin.verifying_key().to_bytes()).unwrap(), order);
        assert_eq!(
            WipeOrder::verify(&signed, &device.verifying_key().to_bytes()),
            Err(WipeError::BadSignature)
        );
        // A report cannot pass for an order, even under the same key.
        let report =
            WipeReport { device: Fixed([3; 16]), cause: WipeCause::Ordered, signed_at_ms: 6, nonce: None };
        let as_report = report.sign(&admin);
        assert_eq!(
            WipeOrder::verify(&as_report, &admin.verifying_key().to_bytes()),
            Err(WipeError::BadSignature)
        );
        assert_eq!(Signed::from_bytes(b"nonsense"), Err(WipeError::Malformed));
        assert_eq!(RevocationReason::parse("lost"), Some(RevocationReason::Lost));
        assert_eq!(RevocationReason::parse("borrowed"), None);
    }

    #[test]
    fn a_self_wipe_report_carries_its_nonce_under_the_signature() {
        let device = SigningKey::from_bytes(&[2; 32]);
        let nonce = [9u8; 32];
        let report = WipeReport {
            device: Fixed([3; 16]),
            cause: WipeCause::FailedUnlocks,
            signed_at_ms: 6,
            nonce: Some(Fixed(nonce)),
        };
        let mut signed = report.sign(&device);
        let public = device.verifying_key().to_bytes();
        assert_eq!(WipeReport::verify(&signed, &public).unwrap().nonce, Some(Fixed(nonce)));
        // Another nonce cannot be put in without breaking the signature.
        let other = WipeReport { nonce: Some(Fixed([8; 32])), ..report };
        signed.body = crate::sync::encode(&other);
        assert_eq!(WipeReport::verify(&signed, &public), Err(WipeError::BadSignature));
        assert_ne!(wipe_nonce_hash(&nonce), wipe_nonce_hash(&[8; 32]));
        assert_ne!(wipe_nonce_hash(&nonce), nonce);
    }
}
