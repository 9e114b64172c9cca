//! Key commitments: who made a document's key for an epoch, and which key it is.
//!
//! Each compartment document is encrypted under a key per epoch. Whoever makes that key (the
//! *minter*) signs a commitment to it, and the server keeps the first commitment per
//! (document, epoch). A device accepts a key from an envelope only when it matches that
//! commitment and the minter was entitled to make it:
//!
//! - epoch 1 is made by a device whose certified role may read the compartment (the plan's
//!   creator, or the first device of a role that may read a compartment nobody had a key for);
//! - a later epoch is made by an administrator, when a revocation, an unassignment or a
//!   policy change rotates the document, or, in a plan with a membership chain, by a device
//!   whose user the chain shows reading the compartment (after a removal or a change of level,
//!   so that no edit waits for an administrator); such a commitment names the chain position
//!   it was made at.
//!
//! So a participant cannot hand another device a key of its own choosing (the digest would
//! not match), and a server cannot invent an epoch (it cannot sign as an administrator).
//!
//! ```text
//! digest = SHA-256("eenplan/epoch-key/v1\n" || document (17) || epoch (u32 BE) || key (32))
//! signed = CBOR { b: CBOR(Commitment), s: Ed25519(minter, "eenplan/commitment/v1\n" || b) }
//! ```
//!
//! The digest reveals nothing of a 256-bit random key.
//!
//! A commitment also fixes the **write rules of its epoch**: the sharing-policy version in
//! force when the key was made, and (through `made_at_ms`) which certificate of an author was
//! in force. A receiver accepts a bundle if the author may write the compartment under the
//! newest policy and certificate it knows, *or* under the rules of the bundle's own epoch.
//! Every change that takes a read or a write away rotates the documents concerned, so
//! history written while a write was allowed stays valid for devices that fetch it later,
//! and nothing written in the new epoch is judged by the old rules:
//!
//! It also names the **revocation-list version** its minter held
//! ([`crate::revocation`]): a device that holds the commitment knows a list at least that new
//! exists, and must hold it (verified) before it seals any key to anyone, so a server that
//! withholds a newer revocation is caught instead of believed.
//!
//! ```text
//! epoch 1  (policy v1, Gert certified "politie")  Gert writes justitie   → accepted, always
//! admin: Gert becomes "ggz"                       → justitie rotates
//! epoch 2  (policy v1, made after Gert's new certificate)  Gert writes → refused
//! ```

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bundle::DocumentId;
use crate::certificate::bytes;
use crate::sync::Fixed;

const DIGEST_LABEL: &[u8] = b"eenplan/epoch-key/v1\n";
const SIGNATURE_LABEL: &[u8] = b"eenplan/commitment/v1\n";
pub const MAX_COMMITMENT_LEN: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitmentError {
    #[error("the key commitment is malformed")]
    Malformed,
    #[error("the key commitment's signature is not its minter's")]
    BadSignature,
    #[error("the key does not match its commitment")]
    KeyMismatch,
}

/// Who made the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Minter {
    /// A device, by id; its certificate says its role.
    #[serde(rename = "d")]
    Device(Fixed<16>),
    /// An administrator, by signing key, with its certificate (signed by the root) so that a
    /// device can check it without asking anyone.
    #[serde(rename = "a")]
    Admin {
        #[serde(with = "bytes")]
        certificate: Vec<u8>,
    },
}

/// The signed statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commitment {
    #[serde(rename = "d")]
    pub document: Fixed<17>,
    #[serde(rename = "e")]
    pub epoch: u32,
    #[serde(rename = "h")]
    pub digest: Fixed<32>,
    #[serde(rename = "m")]
    pub minter: Minter,
    #[serde(rename = "t")]
    pub made_at_ms: i64,
    /// The sharing-policy version the epoch's writes are judged by; 0 when the minter named
    /// none (then only the newest policy judges).
    #[serde(rename = "p", default, skip_serializing_if = "is_zero")]
    pub policy_version: u32,
    /// The version of the signed revocation list ([`crate::revocation`]) the minter held
    /// when it made the key; 0 when it named none. Whoever holds this commitment and seals
    /// a key to anyone must first hold a verified list at least this new, so a server that
    /// withholds newer revocations is caught rather than believed.
    #[serde(rename = "r", default, skip_serializing_if = "is_zero")]
    pub revocations_version: u32,
    /// The position in the plan's membership chain ([`crate::membership`]) its minter held;
    /// 0 when it named none. A device makes a later epoch only on a chain that shows it a
    /// reader, and a key made at position N carries no new write once someone who could read
    /// at N or after cannot read now.
    #[serde(rename = "g", default, skip_serializing_if = "is_zero")]
    pub membership_seq: u32,
}

fn is_zero(version: &u32) -> bool {
    *version == 0
}

/// A commitment with its minter's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCommitment {
    #[serde(rename = "b", with = "bytes")]
    pub body: Vec<u8>,
    #[serde(rename = "s", with = "bytes")]
    pub signature: Vec<u8>,
}

/// The digest a commitment carries for `key`.
pub fn digest(document: DocumentId, epoch: u32, key: &[u8; 32]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(DIGEST_LABEL);
    hash.update(document.to_bytes());
    hash.update(epoch.to_be_bytes());
    hash.update(key);
    hash.finalize().into()
}

impl Commitment {
    pub fn new(document: DocumentId, epoch: u32, key: &[u8; 32], minter: Minter, made_at_ms: i64) -> Self {
        Commitment {
            document: Fixed(document.to_bytes()),
            epoch,
            digest: Fixed(digest(document, epoch, key)),
            minter,
            made_at_ms,
            policy_version: 0,
            revocations_version: 0,
            membership_seq: 0,
        }
    }

    /// Names the sharing-policy version this epoch's writes are judged by.
    pub fn under_policy(mut self, version: u32) -> Self {
        self.policy_version = version;
        self
    }

    /// Names the revocation-list version this key was made under.
    pub fn under_revocations(mut self, version: u32) -> Self {
        self.revocations_version = version;
        self
    }

    /// Names the membership-chain position this key was made at.
    pub fn at_membership(mut self, seq: u32) -> Self {
        self.membership_seq = seq;
        self
    }

    pub fn sign(&self, key: &SigningKey) -> SignedCommitment {
        let body = crate::sync::encode(self);
        let signature = key.sign(&[SIGNATURE_LABEL, &body].concat()).to_bytes().to_vec();
        SignedCommitment { body, signature }
    }

    pub fn document(&self) -> Result<DocumentId, CommitmentError> {
        DocumentId::from_bytes(&self.document.0).map_err(|_| CommitmentError::Malformed)
    }

    /// Whether `key` is the committed key.
    pub fn matches(&self, key: &[u8; 32]) -> Result<(), CommitmentError> {
        let document = self.document()?;
        if digest(document, self.epoch, key) == self.digest.0 {
            Ok(())
        } else {
            Err(CommitmentError::KeyMismatch)
        }
    }
}

impl SignedCommitment {
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::sync::encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<SignedCommitment, CommitmentError> {
        crate::sync::decode(bytes, MAX_COMMITMENT_LEN).map_err(|_| CommitmentError::Malformed)
    }

    /// The statement, unverified: to learn who must have signed it.
    pub fn claimed(&self) -> Result<Commitment, CommitmentError> {
        crate::sync::decode(&self.body, MAX_COMMITMENT_LEN).map_err(|_| CommitmentError::Malformed)
    }

    /// Checks the signature against the minter's key (a device's key from its verified
    /// certificate, or the administrator key from the verified admin certificate).
    pub fn verify(&self, minter_public: &[u8; 32]) -> Result<Commitment, CommitmentError> {
        let key = VerifyingKey::from_bytes(minter_public).map_err(|_| CommitmentError::BadSignature)?;
        let signature: [u8; 64] =
            self.signature.as_slice().try_into().map_err(|_| CommitmentError::BadSignature)?;
        key.verify_strict(
            &[SIGNATURE_LABEL, &self.body].concat(),
            &ed25519_dalek::Signature::from_bytes(&signature),
        )
        .map_err(|_| CommitmentError::BadSignature)?;
        self.claimed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commitment_binds_key_document_and_epoch_and_its_minter() {
        let document = DocumentId::new([1; 16], 2).unwrap();
        let minter = SigningKey::from_bytes(&[3; 32]);
        let signed = Commitment::new(document, 4, &[9; 32], Minter::Device(Fixed([5; 16])), 1).sign(&minter);
        let back = SignedCommitment::from_bytes(&signed.to_bytes()).unwrap();
        let commitment = back.verify(&minter.verifying_key().to_bytes()).unwrap();
        assert!(commitment.matches(&[9; 32]).is_ok());
        assert_eq!(commitment.matches(&[8; 32]), Err(CommitmentError::KeyMismatch));
        let mut moved = commitment.clone();
        moved.epoch = 5;
        assert_eq!(moved.matches(&[9; 32]), Err(CommitmentError::KeyMismatch));
        let other = SigningKey::from_bytes(&[4; 32]).verifying_key().to_bytes();
        assert_eq!(back.verify(&other), Err(CommitmentError::BadSignature));
        assert_eq!(SignedCommitment::from_bytes(&[1, 2, 3]), Err(CommitmentError::Malformed));
    }

    #[test]
    fn a_commitment_carries_the_policy_version_its_epoch_is_judged_by() {
        let document = DocumentId::new([1; 16], 2).unwrap();
        let minter = SigningKey::from_bytes(&[3; 32]);
        let plain = Commitment::new(document, 1, &[9; 32], Minter::Device(Fixed([5; 16])), 1);
        let signed = plain.clone().under_policy(7).sign(&minter);
        assert_eq!(signed.claimed().unwrap().policy_version, 7);
        // Without one, the field is absent on the wire and reads back as 0.
        let unnamed = plain.sign(&minter);
        assert_eq!(unnamed.claimed().unwrap().policy_version, 0);
        assert!(unnamed.body.len() < signed.body.len());
    }

    #[test]
    fn a_commitment_names_the_revocation_list_it_was_made_under() {
        let document = DocumentId::new([1; 16], 2).unwrap();
        let minter = SigningKey::from_bytes(&[3; 32]);
        let plain = Commitment::new(document, 2, &[9; 32], Minter::Device(Fixed([5; 16])), 1).under_policy(4);
        let signed = plain.clone().under_revocations(6).sign(&minter);
        let claimed = signed.claimed().unwrap();
        assert_eq!((claimed.policy_version, claimed.revocations_version), (4, 6));
        // A commitment from before revocation lists reads back as version 0, and one that
        // names none does not carry the field.
        let unnamed = plain.sign(&minter);
        assert_eq!(unnamed.claimed().unwrap().revocations_version, 0);
        assert!(unnamed.body.len() < signed.body.len());
    }
}
