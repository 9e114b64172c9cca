//! Certificates: who a key belongs to, signed by a key the verifier already trusts.
//!
//! The chain is short and fixed: the network **root** key (held by administrators, pinned by
//! every device at enrolment) signs **administrator** certificates; an administrator signs
//! **device** certificates. The server stores and relays certificates but cannot mint one,
//! because it holds neither the root nor an administrator key.
//!
//! A certificate is the CBOR array `[body bytes, signature]`. The signature covers a
//! domain-separation label and the exact body bytes, so verification never depends on
//! re-encoding the body:
//!
//! ```text
//! signature = Ed25519(issuer, "eenplan/certificate/device/v1" || body)
//! ```

mod scope;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

pub use self::scope::AdminScope;

const ADMIN_LABEL: &[u8] = b"eenplan/certificate/admin/v1";
const DEVICE_LABEL: &[u8] = b"eenplan/certificate/device/v1";
/// Certificates are small; refusing large ones early bounds the decoder's work.
pub const MAX_CERTIFICATE_LEN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("the certificate is not decodable")]
    Malformed,
    #[error("the certificate's signature does not verify")]
    BadSignature,
    #[error("the certificate was issued by a key this network does not trust")]
    UnknownIssuer,
    #[error("the certificate is not valid at this time")]
    Expired,
    #[error("the certificate's device id does not match its signing key")]
    DeviceIdMismatch,
    #[error("the certificate was issued by an administrator of another organisation")]
    OutOfScope,
}

/// An administrator: a key the root allowed to approve devices and run the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminBody {
    pub admin_public: [u8; 32],
    pub name: String,
    pub issued_at_ms: i64,
    /// The one organisation this administrator serves; absent for a network-wide
    /// administrator. Left out of the encoding when absent, so certificates signed before
    /// the field existed verify unchanged (and stay network-wide). See [`AdminScope`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation: Option<String>,
}

impl AdminBody {
    /// Where this administrator may act.
    pub fn scope(&self) -> AdminScope {
        AdminScope::of(self)
    }
}

/// A device, bound to a user of an organisation in a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceBody {
    pub device_id: [u8; 16],
    pub user_id: i64,
    pub user_name: String,
    pub organisation: String,
    pub role: String,
    pub signing_public: [u8; 32],
    pub agreement_public: Vec<u8>,
    pub valid_from_ms: i64,
    pub valid_until_ms: i64,
    /// The administrator key that signed this certificate.
    pub issuer: [u8; 32],
}

/// A signed certificate as it travels and is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    #[serde(with = "bytes")]
    body: Vec<u8>,
    #[serde(with = "bytes")]
    signature: Vec<u8>,
}

/// Serde helpers that carry `Vec<u8>` as a CBOR byte string (any length).
pub mod bytes {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        // byte_buf, not bytes: ciborium's reader only borrows strings up to its 4 KiB scratch
        // buffer, and bundles are larger.
        d.deserialize_byte_buf(Visitor)
    }
}

/// The device id a signing key implies: the first 16 bytes of its SHA-256.
pub fn device_id_of(signing_public: &[u8; 32]) -> [u8; 16] {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(signing_public);
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id
}

fn sign<T: Serialize>(label: &[u8], body: &T, issuer: &SigningKey) -> Certificate {
    let mut encoded = Vec::new();
    // Encoding a plain struct into a Vec cannot fail.
    let _ = ciborium::into_writer(body, &mut encoded);
    sign_raw(label, encoded, issuer)
}

fn sign_raw(label: &[u8], encoded: Vec<u8>, issuer: &SigningKey) -> Certificate {
    let signature = issuer.sign(&[label, &encoded].concat());
    Certificate { body: encoded, signature: signature.to_bytes().to_vec() }
}

impl Certificate {
    pub fn sign_admin(body: &AdminBody, root: &SigningKey) -> Certificate {
        sign(ADMIN_LABEL, body, root)
    }

    pub fn sign_device(body: &DeviceBody, admin: &SigningKey) -> Certificate {
        sign(DEVICE_LABEL, body, admin)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = ciborium::into_writer(self, &mut out);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Certificate, CertificateError> {
        if bytes.len() > MAX_CERTIFICATE_LEN {
            return Err(CertificateError::Malformed);
        }
        ciborium::from_reader(bytes).map_err(|_| CertificateError::Malformed)
    }

    fn check(&self, label: &[u8], issuer: &[u8; 32]) -> Result<(), CertificateError> {
        let key = VerifyingKey::from_bytes(issuer).map_err(|_| CertificateError::UnknownIssuer)?;
        let signature: [u8; 64] =
            self.signature.as_slice().try_into().map_err(|_| CertificateError::Malformed)?;
        key.verify_strict(&[label, &self.body].concat(), &Signature::from_bytes(&signature))
            .map_err(|_| CertificateError::BadSignature)
    }

    /// The administrator this certificate names, if the root signed it.
    pub fn verify_admin(&self, root_public: &[u8; 32]) -> Result<AdminBody, CertificateError> {
        self.check(ADMIN_LABEL, root_public)?;
        ciborium::from_reader(self.body.as_slice()).map_err(|_| CertificateError::Malformed)
    }

    /// The administrator body this certificate *claims*, without checking the signature: for
    /// a certificate verified before (the server's stored administrators).
    pub fn claimed_admin_body(&self) -> Result<AdminBody, CertificateError> {
        ciborium::from_reader(self.body.as_slice()).map_err(|_| CertificateError::Malformed)
    }

    /// The device body this certificate *claims*, without checking any signature: only for
    /// finding which administrator certificate to verify it against (its `issuer`), never
    /// for trusting what it says. Call [`Certificate::verify_device`] before relying on it.
    pub fn claimed_device_body(&self) -> Result<DeviceBody, CertificateError> {
        ciborium::from_reader(self.body.as_slice()).map_err(|_| CertificateError::Malformed)
    }

    /// The device this certificate names, if `admin` (itself certified by the root) signed
    /// it and it is valid at `now_ms`.
    pub fn verify_device(
        &self,
        admin: &Certificate,
        root_public: &[u8; 32],
        now_ms: i64,
    ) -> Result<DeviceBody, CertificateError> {
        let admin = admin.verify_admin(root_public)?;
        let body: DeviceBody =
            ciborium::from_reader(self.body.as_slice()).map_err(|_| CertificateError::Malformed)?;
        if body.issuer != admin.admin_public {
            return Err(CertificateError::UnknownIssuer);
        }
        self.check(DEVICE_LABEL, &body.issuer)?;
        if device_id_of(&body.signing_public) != body.device_id {
            return Err(CertificateError::DeviceIdMismatch);
        }
        if now_ms < body.valid_from_ms || now_ms > body.valid_until_ms {
            return Err(CertificateError::Expired);
        }
        // An organisation's administrator certifies only its own organisation's devices:
        // whoever relies on a device certificate (the server, every device) checks it here.
        if !admin.scope().permits_device(&body) {
            return Err(CertificateError::OutOfScope);
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain() -> (SigningKey, SigningKey, Certificate, DeviceBody) {
        let root = SigningKey::from_bytes(&[1; 32]);
        let admin = SigningKey::from_bytes(&[2; 32]);
        let device = SigningKey::from_bytes(&[3; 32]);
        let admin_cert = Certificate::sign_admin(
            &AdminBody {
                admin_public: admin.verifying_key().to_bytes(),
                name: "beheer".into(),
                issued_at_ms: 0,
                organisation: None,
            },
            &root,
        );
        let body = DeviceBody {
            device_id: device_id_of(device.verifying_key().as_bytes()),
            user_id: 7,
            user_name: "Fatima".into(),
            organisation: "Wijkteam Noord".into(),
            role: "wijkteam".into(),
            signing_public: device.verifying_key().to_bytes(),
            agreement_public: vec![9; 32],
            valid_from_ms: 100,
            valid_until_ms: 200,
            issuer: admin.verifying_key().to_bytes(),
        };
        (root, admin, admin_cert, body)
    }

    #[test]
    fn a_device_certificate_verifies_through_its_administrator_to_the_root() {
        let (root, admin, admin_cert, body) = chain();
        let cert = Certificate::sign_device(&body, &admin);
        let decoded = Certificate::from_bytes(&cert.to_bytes()).unwrap();
        let root_public = root.verifying_key().to_bytes();
        assert_eq!(decoded.claimed_device_body().unwrap().issuer, admin.verifying_key().to_bytes());
        assert_eq!(decoded.verify_device(&admin_cert, &root_public, 150).unwrap(), body);
        assert_eq!(decoded.verify_device(&admin_cert, &root_public, 201), Err(CertificateError::Expired));
    }

    #[test]
    fn a_certificate_signed_by_an_uncertified_key_is_refused() {
        let (root, _, admin_cert, mut body) = chain();
        let rogue = SigningKey::from_bytes(&[4; 32]);
        let root_public = root.verifying_key().to_bytes();
        let cert = Certificate::sign_device(&body, &rogue);
        assert_eq!(cert.verify_device(&admin_cert, &root_public, 150), Err(CertificateError::BadSignature));
        body.issuer = rogue.verifying_key().to_bytes();
        let cert = Certificate::sign_device(&body, &rogue);
        assert_eq!(cert.verify_device(&admin_cert, &root_public, 150), Err(CertificateError::UnknownIssuer));
        let other_root = [5; 32];
        assert!(cert.verify_device(&admin_cert, &other_root, 150).is_err());
    }

    #[test]
    fn a_device_id_that_does_not_match_its_key_is_refused() {
        let (root, admin, admin_cert, mut body) = chain();
        body.device_id = [0; 16];
        let cert = Certificate::sign_device(&body, &admin);
        let root_public = root.verifying_key().to_bytes();
        assert_eq!(
            cert.verify_device(&admin_cert, &root_public, 150),
            Err(CertificateError::DeviceIdMismatch)
        );
    }

    #[test]
    fn malformed_certificates_are_a_typed_error() {
        assert_eq!(Certificate::from_bytes(b"garbage"), Err(CertificateError::Malformed));
        assert_eq!(Certificate::from_bytes(&[0; MAX_CERTIFICATE_LEN + 1]), Err(CertificateError::Malformed));
    }
}
