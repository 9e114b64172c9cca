//! The sharing policy: which role may read and write which compartment of a plan.
//!
//! The table is configuration, not code (regions differ), so it travels as data signed by the
//! network root. The administrator writes it as TOML (`protocol/policy/default.toml` ships
//! with the project), `eenplan-admin` turns it into a [`Policy`], signs its canonical CBOR
//! encoding and uploads it; the server and every device verify that signature against the
//! root they pinned, and refuse a policy whose version is not newer than the one they hold.
//!
//! ```text
//! signed = CBOR { b: CBOR(Policy), s: Ed25519(root, "eenplan/policy/v1\n" || b) }
//! ```
//!
//! Where it is enforced:
//! - a device seals a compartment's key only to a device whose certified role may read it;
//! - the server serves a compartment only to such devices, and refuses a pushed bundle whose
//!   author's role may not write its compartment;
//! - every receiving device refuses such a bundle too, so a server that relays a forged write
//!   gains nothing.
//!
//! The role is the one in the device's certificate, signed by an administrator: every party
//! can check it without trusting the server. A role the policy does not name may do nothing.

use std::collections::BTreeMap;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::certificate::bytes;

/// The compartments in document-id order (`DocumentId::compartment`).
pub const COMPARTMENTS: [&str; 4] = ["basis", "zorg", "veiligheid", "justitie"];
/// The policy that ships with the project, as the administrator's TOML.
pub const DEFAULT_POLICY_TOML: &str = include_str!("../policy/default.toml");
const LABEL: &[u8] = b"eenplan/policy/v1\n";
/// Largest signed policy accepted.
pub const MAX_POLICY_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the policy is malformed: {0}")]
    Malformed(String),
    #[error("the policy is not signed by this network's root key")]
    BadSignature,
    #[error(
        "role {role:?} names an unknown compartment {compartment:?} (known: basis, zorg, veiligheid, justitie)"
    )]
    UnknownCompartment { role: String, compartment: String },
    #[error("role {role:?} may write {compartment:?} without reading it; a writer must read what it merges")]
    WriteWithoutRead { role: String, compartment: String },
    #[error("the policy version must be at least 1")]
    NoVersion,
}

/// What one role may do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    #[serde(default)]
    pub read: Vec<String>,
    #[serde(default)]
    pub write: Vec<String>,
}

/// What a change of one user's role does to their access, by compartment index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleChange {
    /// Compartments whose documents move to a new key epoch: the user loses read or write.
    pub rotate: Vec<u8>,
    /// Compartments the user may no longer read: their devices' keys go.
    pub lost_reads: Vec<u8>,
    /// Compartments the user may now read.
    pub gained_reads: Vec<u8>,
}

/// The role → compartment table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub version: u32,
    #[serde(default)]
    pub roles: BTreeMap<String, Access>,
}

fn index_of(compartment: &str) -> Option<u8> {
    COMPARTMENTS.iter().position(|c| *c == compartment).and_then(|i| u8::try_from(i).ok())
}

impl Policy {
    /// Checks the table: known compartments only, and every written compartment also read.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.version == 0 {
            return Err(PolicyError::NoVersion);
        }
        for (role, access) in &self.roles {
            for compartment in access.read.iter().chain(&access.write) {
                if index_of(compartment).is_none() {
                    return Err(PolicyError::UnknownCompartment {
                        role: role.clone(),
                        compartment: compartment.clone(),
                    });
                }
            }
            if let Some(compartment) = access.write.iter().find(|c| !access.read.contains(c)) {
                return Err(PolicyError::WriteWithoutRead {
                    role: role.clone(),
                    compartment: compartment.clone(),
                });
            }
        }
        Ok(())
    }

    /// Whether `role` may read the compartment with document-id index `compartment`.
    pub fn may_read(&self, role: &str, compartment: u8) -> bool {
        self.roles.get(role).is_some_and(|a| a.read.iter().any(|c| index_of(c) == Some(compartment)))
    }

    /// Whether `role` may write the compartment with document-id index `compartment`.
    pub fn may_write(&self, role: &str, compartment: u8) -> bool {
        self.roles.get(role).is_some_and(|a| a.write.iter().any(|c| index_of(c) == Some(compartment)))
    }

    /// The compartment indexes `role` may read, ascending.
    pub fn readable(&self, role: &str) -> Vec<u8> {
        (0..COMPARTMENTS.len() as u8).filter(|c| self.may_read(role, *c)).collect()
    }

    /// (role, compartment) pairs readable under `self` but not under `next`: what a change to
    /// `next` takes away, and so which documents must move to a new key epoch.
    pub fn lost_reads(&self, next: &Policy) -> Vec<(String, u8)> {
        let mut out = Vec::new();
        for role in self.roles.keys() {
            for compartment in self.readable(role) {
                if !next.may_read(role, compartment) {
                    out.push((role.clone(), compartment));
                }
            }
        }
        out
    }

    /// (role, compartment) pairs writable under `self` but not under `next`. A write taken
    /// away moves the document to a new epoch too: receivers judge a write by the rules of
    /// the epoch it was written in (see [`crate::epoch`]), so the boundary must be an epoch.
    pub fn lost_writes(&self, next: &Policy) -> Vec<(String, u8)> {
        let mut out = Vec::new();
        for (role, access) in &self.roles {
            for compartment in access.write.iter().filter_map(|c| index_of(c)) {
                if !next.may_write(role, compartment) {
                    out.push((role.clone(), compartment));
                }
            }
        }
        out
    }

    /// What moving a user from role `from` to role `to` does to their access: the
    /// compartments they lose (read or write; each must move to a new epoch) and those they
    /// may newly read (their devices must receive them from the beginning).
    pub fn role_change(&self, from: &str, to: &str) -> RoleChange {
        let mut change = RoleChange::default();
        for compartment in 0..COMPARTMENTS.len() as u8 {
            let lost_read = self.may_read(from, compartment) && !self.may_read(to, compartment);
            let lost_write = self.may_write(from, compartment) && !self.may_write(to, compartment);
            if lost_read || lost_write {
                change.rotate.push(compartment);
            }
            if lost_read {
                change.lost_reads.push(compartment);
            }
            if self.may_read(to, compartment) && !self.may_read(from, compartment) {
                change.gained_reads.push(compartment);
            }
        }
        change
    }

    /// The canonical encoding that is signed (CBOR; maps are ordered, so one policy has one
    /// encoding).
    pub fn encode(&self) -> Vec<u8> {
        crate::sync::encode(self)
    }

    /// Signs the policy with the network root key.
    pub fn sign(&self, root: &SigningKey) -> Result<SignedPolicy, PolicyError> {
        self.validate()?;
        let body = self.encode();
        let signature = root.sign(&[LABEL, &body].concat()).to_bytes();
        Ok(SignedPolicy { body, signature: signature.to_vec() })
    }
}

/// A policy with the root's signature, as it travels and is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPolicy {
    #[serde(rename = "b", with = "bytes")]
    pub body: Vec<u8>,
    #[serde(rename = "s", with = "bytes")]
    pub signature: Vec<u8>,
}

impl SignedPolicy {
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::sync::encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<SignedPolicy, PolicyError> {
        crate::sync::decode(bytes, MAX_POLICY_LEN)
            .map_err(|_| PolicyError::Malformed("not a signed policy".into()))
    }

    /// Checks the root's signature and the table, and returns the policy.
    pub fn verify(&self, root_public: &[u8; 32]) -> Result<Policy, PolicyError> {
        let root = VerifyingKey::from_bytes(root_public).map_err(|_| PolicyError::BadSignature)?;
        let signature: [u8; 64] =
            self.signature.as_slice().try_into().map_err(|_| PolicyError::BadSignature)?;
        root.verify_strict(&[LABEL, &self.body].concat(), &ed25519_dalek::Signature::from_bytes(&signature))
            .map_err(|_| PolicyError::BadSignature)?;
        let policy: Policy = crate::sync::decode(&self.body, MAX_POLICY_LEN)
            .map_err(|_| PolicyError::Malformed("the signed body is not a policy".into()))?;
        policy.validate()?;
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        let mut roles = BTreeMap::new();
        roles.insert(
            "politie".to_string(),
            Access { read: vec!["basis".into(), "justitie".into()], write: vec!["justitie".into()] },
        );
        roles.insert("ggz".to_string(), Access { read: vec!["basis".into(), "zorg".into()], write: vec![] });
        Policy { version: 3, roles }
    }

    #[test]
    fn roles_read_and_write_only_what_the_table_says_and_unknown_roles_nothing() {
        let p = policy();
        assert!(p.may_read("politie", 3) && p.may_write("politie", 3));
        assert!(!p.may_read("politie", 1) && !p.may_write("politie", 0));
        assert!(p.may_read("ggz", 1) && !p.may_write("ggz", 1));
        assert!(!p.may_read("stranger", 0));
        assert_eq!(p.readable("ggz"), vec![0, 1]);
    }

    #[test]
    fn a_signed_policy_verifies_only_against_its_root_and_untampered() {
        let root = SigningKey::from_bytes(&[7; 32]);
        let signed = policy().sign(&root).unwrap();
        let back = SignedPolicy::from_bytes(&signed.to_bytes()).unwrap();
        assert_eq!(back.verify(&root.verifying_key().to_bytes()).unwrap(), policy());
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key().to_bytes();
        assert_eq!(back.verify(&other), Err(PolicyError::BadSignature));
        let mut tampered = back.clone();
        let last = tampered.body.len() - 1;
        tampered.body[last] ^= 1;
        assert_eq!(tampered.verify(&root.verifying_key().to_bytes()), Err(PolicyError::BadSignature));
        assert!(SignedPolicy::from_bytes(&[0xff, 0x00]).is_err());
    }

    #[test]
    fn a_table_with_unknown_compartments_or_blind_writers_is_refused() {
        let mut p = policy();
        p.roles.get_mut("ggz").unwrap().read.push("geheim".into());
        assert!(matches!(p.validate(), Err(PolicyError::UnknownCompartment { .. })));
        let mut p = policy();
        p.roles.get_mut("ggz").unwrap().write.push("justitie".into());
        assert!(matches!(p.validate(), Err(PolicyError::WriteWithoutRead { .. })));
    }

    #[test]
    fn lost_reads_name_what_a_new_version_takes_away() {
        let old = policy();
        let mut new = policy();
        new.version = 4;
        new.roles.get_mut("ggz").unwrap().read.retain(|c| c != "zorg");
        assert_eq!(old.lost_reads(&new), vec![("ggz".to_string(), 1)]);
        assert!(new.lost_reads(&old).is_empty());
        assert!(old.lost_writes(&new).is_empty());
        let mut read_only = policy();
        read_only.roles.get_mut("politie").unwrap().write.clear();
        assert_eq!(old.lost_writes(&read_only), vec![("politie".to_string(), 3)]);
        assert!(old.lost_reads(&read_only).is_empty());
    }

    #[test]
    fn a_role_change_rotates_what_the_user_loses_and_grants_what_they_gain() {
        let change = policy().role_change("politie", "ggz");
        // justitie: read and write lost; zorg gained; basis kept.
        assert_eq!(change, RoleChange { rotate: vec![3], lost_reads: vec![3], gained_reads: vec![1] });
        let back = policy().role_change("ggz", "politie");
        assert_eq!(back, RoleChange { rotate: vec![1], lost_reads: vec![1], gained_reads: vec![3] });
        assert_eq!(policy().role_change("ggz", "ggz"), RoleChange::default());
    }
}
