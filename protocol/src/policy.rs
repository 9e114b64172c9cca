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
//!
//! # Escalation levels
//!
//! The privacy regulation says what may be shared with whom *and when*: at the Zorg- en
//! Veiligheidshuis the procesregisseur and the PGA-expert read more than in regular care. So
//! the policy may give other rules per escalation level ([`LEVELS`], the codes of the plan's
//! escalation level):
//!
//! - `roles` is the base table: the rules at [`BASE_LEVEL`] (`regulier`), and at every other
//!   level for each role that level does not name;
//! - `levels.LEVEL.ROLE` replaces the role's base entry at that level, whole: a level can
//!   widen a role, narrow it, or name a role the base table does not (a role that takes part
//!   only at that level);
//! - a level name outside [`LEVELS`] is refused, and so are rules for the base level itself
//!   (they would be a second base table); a level the policy has no rules for (or one a newer
//!   app introduced) follows the base table.
//!
//! `may_read`/`may_write` answer for the base level; the `*_at` forms for a given level. A
//! policy without level rules encodes exactly as before levels existed, so the signatures of
//! stored policies stay valid.

use std::collections::BTreeMap;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::certificate::bytes;

/// The compartments in document-id order (`DocumentId::compartment`).
pub const COMPARTMENTS: [&str; 4] = ["basis", "zorg", "veiligheid", "justitie"];
/// The escalation levels a policy may give rules for, lowest first (the codes of
/// `eenplan_core::plan::EscalationLevel`).
pub const LEVELS: [&str; 3] = ["regulier", "lokaal", "zorg_en_veiligheidshuis"];
/// The level whose rules are the base table `roles`.
pub const BASE_LEVEL: &str = "regulier";
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
    #[error("unknown escalation level {level:?} (known: regulier, lokaal, zorg_en_veiligheidshuis)")]
    UnknownLevel { level: String },
    #[error("rules for the base level {level:?} belong in the roles table, not under levels")]
    BaseLevelRules { level: String },
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
    /// Level → role → what the role may do at that level, replacing its base entry. Left
    /// out of the encoding when empty, so that a policy without level rules is signed over
    /// the same bytes as before levels existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub levels: BTreeMap<String, BTreeMap<String, Access>>,
    /// How long closed plans are kept and how long a phone keeps a plan it no longer needs.
    /// Left out of the encoding when absent (the defaults apply), so policies signed before
    /// retention existed keep their bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
}

/// Retention (DESIGN §8): Jeugdwet files are kept 20 years after care ends, then destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Years a closed plan is kept after its closing entry, before `retention run` destroys it.
    pub years: u32,
    /// Days a device keeps a closed plan, or one its user no longer takes part in, before it
    /// removes its copy.
    pub grace_days: u32,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention { years: DEFAULT_RETENTION_YEARS, grace_days: DEFAULT_GRACE_DAYS }
    }
}

/// The Jeugdwet's period: 20 years after care ends.
pub const DEFAULT_RETENTION_YEARS: u32 = 20;
pub const DEFAULT_GRACE_DAYS: u32 = 30;
const DAY_MS: i64 = 24 * 3600 * 1000;

impl Retention {
    /// When a plan closed at `closed_at_ms` may be destroyed (years of 365.25 days).
    pub fn end_of(&self, closed_at_ms: i64) -> i64 {
        closed_at_ms.saturating_add(i64::from(self.years).saturating_mul(36525 * DAY_MS / 100))
    }

    /// When a device removes a plan it stopped needing at `since_ms`.
    pub fn grace_end(&self, since_ms: i64) -> i64 {
        since_ms.saturating_add(i64::from(self.grace_days).saturating_mul(DAY_MS))
    }
}

fn index_of(compartment: &str) -> Option<u8> {
    COMPARTMENTS.iter().position(|c| *c == compartment).and_then(|i| u8::try_from(i).ok())
}

fn access_allows(access: Option<&Access>, list: fn(&Access) -> &Vec<String>, compartment: u8) -> bool {
    access.is_some_and(|a| list(a).iter().any(|c| index_of(c) == Some(compartment)))
}

/// Checks one role's entry: known compartments only, and every written compartment also read.
fn validate_access(role: &str, access: &Access) -> Result<(), PolicyError> {
    for compartment in access.read.iter().chain(&access.write) {
        if index_of(compartment).is_none() {
            return Err(PolicyError::UnknownCompartment {
                role: role.to_owned(),
                compartment: compartment.clone(),
            });
        }
    }
    if let Some(compartment) = access.write.iter().find(|c| !access.read.contains(c)) {
        return Err(PolicyError::WriteWithoutRead {
            role: role.to_owned(),
            compartment: compartment.clone(),
        });
    }
    Ok(())
}

/// The change from `before` to `after`, each giving (may read, may write) per
/// compartment index.
fn access_change(before: impl Fn(u8) -> (bool, bool), after: impl Fn(u8) -> (bool, bool)) -> RoleChange {
    let mut change = RoleChange::default();
    for compartment in 0..COMPARTMENTS.len() as u8 {
        let ((read, write), (next_read, next_write)) = (before(compartment), after(compartment));
        let lost_read = read && !next_read;
        if lost_read || (write && !next_write) {
            change.rotate.push(compartment);
        }
        if lost_read {
            change.lost_reads.push(compartment);
        }
        if next_read && !read {
            change.gained_reads.push(compartment);
        }
    }
    change
}

impl Policy {
    /// Checks the table: known compartments only, every written compartment also read, and
    /// level rules only for the known levels above the base one, held to the same rules.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.version == 0 {
            return Err(PolicyError::NoVersion);
        }
        for (role, access) in &self.roles {
            validate_access(role, access)?;
        }
        for (level, roles) in &self.levels {
            if level == BASE_LEVEL {
                return Err(PolicyError::BaseLevelRules { level: level.clone() });
            }
            if !LEVELS.contains(&level.as_str()) {
                return Err(PolicyError::UnknownLevel { level: level.clone() });
            }
            for (role, access) in roles {
                validate_access(role, access)?;
            }
        }
        Ok(())
    }

    /// What `role` may do at `level`: the level's entry for the role if it names one, else
    /// the role's base entry; `None` for a role neither names.
    /// The policy's retention, or the defaults.
    pub fn retention(&self) -> Retention {
        self.retention.unwrap_or_default()
    }

    pub fn access_at(&self, role: &str, level: &str) -> Option<&Access> {
        self.levels.get(level).and_then(|roles| roles.get(role)).or_else(|| self.roles.get(role))
    }

    /// Whether `role` may read the compartment with document-id index `compartment` at the
    /// base level.
    pub fn may_read(&self, role: &str, compartment: u8) -> bool {
        self.may_read_at(role, compartment, BASE_LEVEL)
    }

    /// Whether `role` may write the compartment with document-id index `compartment` at the
    /// base level.
    pub fn may_write(&self, role: &str, compartment: u8) -> bool {
        self.may_write_at(role, compartment, BASE_LEVEL)
    }

    /// Whether `role` may read the compartment with index `compartment` at `level`.
    pub fn may_read_at(&self, role: &str, compartment: u8, level: &str) -> bool {
        access_allows(self.access_at(role, level), |a| &a.read, compartment)
    }

    /// Whether `role` may write the compartment with index `compartment` at `level`.
    pub fn may_write_at(&self, role: &str, compartment: u8, level: &str) -> bool {
        access_allows(self.access_at(role, level), |a| &a.write, compartment)
    }

    /// The compartment indexes `role` may read at the base level, ascending.
    pub fn readable(&self, role: &str) -> Vec<u8> {
        (0..COMPARTMENTS.len() as u8).filter(|c| self.may_read(role, *c)).collect()
    }

    /// Every role that reads the compartment with index `compartment` at `level`: roles of
    /// the base table and roles only that level names, in name order.
    pub fn roles_reading_at(&self, compartment: u8, level: &str) -> Vec<&str> {
        let at_level = self.levels.get(level).into_iter().flat_map(BTreeMap::keys);
        let names: std::collections::BTreeSet<&str> =
            self.roles.keys().chain(at_level).map(String::as_str).collect();
        names.into_iter().filter(|role| self.may_read_at(role, compartment, level)).collect()
    }

    /// Whether the policy names `role` at all, in the base table or at some level: the roles
    /// an administrator may give a user.
    pub fn names_role(&self, role: &str) -> bool {
        self.roles.contains_key(role) || self.levels.values().any(|roles| roles.contains_key(role))
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
        access_change(
            |c| (self.may_read(from, c), self.may_write(from, c)),
            |c| (self.may_read(to, c), self.may_write(to, c)),
        )
    }

    /// What a plan's move from escalation level `from` to `to` does to the access of a
    /// participant in `role`, computed as a role change is: what they lose (read or write)
    /// moves to a new epoch, what they newly read reaches them from the beginning.
    pub fn level_change(&self, role: &str, from: &str, to: &str) -> RoleChange {
        access_change(
            |c| (self.may_read_at(role, c, from), self.may_write_at(role, c, from)),
            |c| (self.may_read_at(role, c, to), self.may_write_at(role, c, to)),
        )
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
        Policy { version: 3, roles, levels: BTreeMap::new(), retention: None }
    }

    fn access(read: &[&str], write: &[&str]) -> Access {
        let names = |list: &[&str]| list.iter().map(|c| c.to_string()).collect();
        Access { read: names(read), write: names(write) }
    }

    /// `policy()` with rules at the Veiligheidshuis: the police narrowed to basis, the
    /// PGA-expert (a role of no base entry) reading justitie and zorg.
    fn with_levels() -> Policy {
        let mut p = policy();
        let zvh = p.levels.entry("zorg_en_veiligheidshuis".into()).or_default();
        zvh.insert("politie".into(), access(&["basis"], &["basis"]));
        zvh.insert("pga_expert".into(), access(&["basis", "zorg", "justitie"], &["zorg", "justitie"]));
        p
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

    #[test]
    fn a_level_entry_replaces_the_base_entry_whole_so_a_level_can_narrow() {
        let p = with_levels();
        let zvh = "zorg_en_veiligheidshuis";
        assert!(p.may_read("politie", 3) && p.may_write("politie", 3));
        assert!(!p.may_read_at("politie", 3, zvh) && !p.may_write_at("politie", 3, zvh));
        assert!(p.may_write_at("politie", 0, zvh));
        assert_eq!(p.access_at("politie", zvh), Some(&access(&["basis"], &["basis"])));
    }

    #[test]
    fn a_role_the_level_does_not_name_keeps_its_base_entry_there_and_at_other_levels() {
        let p = with_levels();
        for level in LEVELS {
            assert_eq!(p.access_at("ggz", level), p.roles.get("ggz"), "{level}");
            assert!(p.may_read_at("ggz", 1, level) && !p.may_write_at("ggz", 1, level));
        }
        assert_eq!(p.access_at("politie", "lokaal"), p.roles.get("politie"));
        // A level no rules exist for, or one a newer app introduced, follows the base table.
        assert!(p.may_read_at("politie", 3, "landelijk"));
        assert_eq!(p.access_at("stranger", "zorg_en_veiligheidshuis"), None);
    }

    #[test]
    fn a_role_only_a_level_names_reads_there_and_nowhere_else() {
        let p = with_levels();
        let zvh = "zorg_en_veiligheidshuis";
        assert!(p.may_read_at("pga_expert", 1, zvh) && p.may_write_at("pga_expert", 3, zvh));
        assert!(!p.may_read_at("pga_expert", 3, "lokaal") && !p.may_read("pga_expert", 0));
        assert!(p.names_role("pga_expert") && p.names_role("ggz") && !p.names_role("stranger"));
    }

    #[test]
    fn the_roles_reading_a_compartment_at_a_level_include_level_only_roles() {
        let p = with_levels();
        assert_eq!(p.roles_reading_at(3, BASE_LEVEL), vec!["politie"]);
        assert_eq!(p.roles_reading_at(3, "zorg_en_veiligheidshuis"), vec!["pga_expert"]);
        assert_eq!(p.roles_reading_at(1, "zorg_en_veiligheidshuis"), vec!["ggz", "pga_expert"]);
        assert_eq!(p.roles_reading_at(0, "lokaal"), vec!["ggz", "politie"]);
    }

    #[test]
    fn a_level_change_rotates_what_a_role_loses_and_grants_what_it_gains() {
        let p = with_levels();
        let zvh = "zorg_en_veiligheidshuis";
        // The police lose justitie (read and write) at the Veiligheidshuis; back down they
        // read it again and lose the basis write the level gave them.
        let up = p.level_change("politie", "lokaal", zvh);
        assert_eq!(up, RoleChange { rotate: vec![3], lost_reads: vec![3], gained_reads: vec![] });
        let down = p.level_change("politie", zvh, "lokaal");
        assert_eq!(down, RoleChange { rotate: vec![0], lost_reads: vec![], gained_reads: vec![3] });
        let leaves = p.level_change("pga_expert", zvh, BASE_LEVEL);
        assert_eq!(
            leaves,
            RoleChange { rotate: vec![0, 1, 3], lost_reads: vec![0, 1, 3], gained_reads: vec![] }
        );
        assert_eq!(p.level_change("ggz", BASE_LEVEL, zvh), RoleChange::default());
    }

    #[test]
    fn level_rules_for_unknown_levels_or_the_base_level_or_breaking_the_table_rules_are_refused() {
        let mut p = with_levels();
        p.levels.insert("landelijk".into(), BTreeMap::new());
        assert_eq!(p.validate(), Err(PolicyError::UnknownLevel { level: "landelijk".into() }));
        let mut p = with_levels();
        p.levels.insert(BASE_LEVEL.into(), BTreeMap::new());
        assert_eq!(p.validate(), Err(PolicyError::BaseLevelRules { level: BASE_LEVEL.into() }));
        let mut p = with_levels();
        p.levels.get_mut("zorg_en_veiligheidshuis").unwrap().insert("om".into(), access(&["geheim"], &[]));
        assert!(matches!(p.validate(), Err(PolicyError::UnknownCompartment { .. })));
        let mut p = with_levels();
        p.levels.get_mut("zorg_en_veiligheidshuis").unwrap().insert("om".into(), access(&[], &["justitie"]));
        assert!(matches!(p.validate(), Err(PolicyError::WriteWithoutRead { .. })));
        assert_eq!(with_levels().validate(), Ok(()));
    }

    /// The policy as encoded before levels existed: a map of `version` and `roles` only.
    #[derive(Serialize, Deserialize)]
    struct PolicyBeforeLevels {
        version: u32,
        roles: BTreeMap<String, Access>,
    }

    #[test]
    fn a_policy_without_level_rules_encodes_exactly_as_before_levels_existed() {
        let p = policy();
        let before = crate::sync::encode(&PolicyBeforeLevels { version: p.version, roles: p.roles.clone() });
        assert_eq!(p.encode(), before);
        let decoded: Policy = crate::sync::decode(&before, MAX_POLICY_LEN).unwrap();
        assert_eq!(decoded.encode(), before);
        // With level rules the encoding differs, and reads back to the same policy.
        let levelled = with_levels();
        assert_ne!(
            levelled.encode(),
            crate::sync::encode(&PolicyBeforeLevels { version: 3, roles: levelled.roles.clone() })
        );
        let back: Policy = crate::sync::decode(&levelled.encode(), MAX_POLICY_LEN).unwrap();
        assert_eq!(back, levelled);
    }
}
