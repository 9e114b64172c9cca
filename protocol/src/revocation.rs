//! The signed revocation list: which devices the network's administrators revoked, in a form
//! every device can check without trusting the server.
//!
//! A revocation at the server alone is the server's word: a compromised server can mark a
//! revoked device active again, list it as a reader, or name it in a key request, and an
//! honest device or administrator would then seal the next key to it. So every revocation is
//! also an entry in a list that an administrator signs (with the certificate that chains it
//! to the root), versioned and append-only:
//!
//! ```text
//! list   = CBOR { v: version, t: issued_at_ms, e: [entry, …] (sorted by device id),
//!                 a: admin certificate, k: [admin certificate of each entry's signer] }
//! entry  = CBOR { d: device id (16), t: revoked_at_ms, r: reason, o: the device's organisation,
//!                 a: the adding administrator's key,
//!                 s: Ed25519(that administrator, "eenplan/revocation-entry/v1\n" || CBOR([d, t, r, o])) }
//! signed = CBOR { b: CBOR(list), s: Ed25519(admin, "eenplan/revocations/v1\n" || b) }
//! ```
//!
//! **Scope.** Each entry is signed by the administrator who added it and names the device's
//! organisation; a list verifies only if every entry's administrator is certified by the root
//! and its [`crate::certificate::AdminScope`] covers the organisation the entry names. Whoever
//! judges a device counts an entry only under the organisation of that device's own
//! root-verified certificate ([`RevocationList::revokes`]): an administrator of the police
//! cannot revoke a municipality's device by writing an entry into the list, and neither can a
//! server that rewrites the list (it holds no administrator key). Signing a whole version
//! only orders the entries; it vouches for none of them.
//!
//! Version 1 is the first list; each later version holds every entry of the one before,
//! unchanged, plus the new ones. Version 0 means "no list yet". The server keeps every
//! version (`GET /v1/revocations[?version=N]`, raw signed bytes), and every key commitment an
//! administrator makes names the list version it was made under
//! ([`crate::epoch::Commitment::revocations_version`]). Whoever seals a key (a device answering
//! a key request, the administrator re-keying) must hold a verified list at least as new as
//! the newest version named by any commitment it holds, must take a newer list only if it
//! [extends](RevocationList::check_extends) the one it holds, and never seals to a listed
//! device, whatever the server says about it.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use std::collections::HashMap;

use crate::certificate::{AdminBody, Certificate, DeviceBody, bytes};
use crate::sync::Fixed;
use crate::wipe::RevocationReason;

const SIGNATURE_LABEL: &[u8] = b"eenplan/revocations/v1\n";
const ENTRY_LABEL: &[u8] = b"eenplan/revocation-entry/v1\n";
/// The most administrators whose entries one list may carry.
pub const MAX_LIST_ADMINS: usize = 4_096;
/// The most devices one list may name: decades of lost phones in a large region.
pub const MAX_REVOKED_DEVICES: usize = 100_000;
/// The largest signed list: [`MAX_REVOKED_DEVICES`] entries of at most about 560 bytes (an
/// organisation's name of 200 two-byte characters, the adder's key and signature), and the
/// administrators' certificates. A region's real list is a few hundred entries.
pub const MAX_REVOCATION_LIST_LEN: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevocationError {
    #[error("the revocation list is malformed: {0}")]
    Malformed(&'static str),
    #[error("the revocation list is not signed by an administrator of this network")]
    UntrustedAdministrator,
    #[error("the revocation list's signature does not verify")]
    BadSignature,
    #[error("revocation list version {given} is older than version {held}, which is already known")]
    RolledBack { held: u32, given: u32 },
    #[error(
        "revocation list version {given} drops or changes the revocation of device {device} listed in version {held}"
    )]
    NotAppendOnly { held: u32, given: u32, device: String },
    #[error("two different revocation lists carry version {0}")]
    Forked(u32),
    #[error("a revocation list names at most {MAX_REVOKED_DEVICES} devices")]
    Full,
    #[error("the revocation of device {0} is not signed by an administrator of this network")]
    UnsignedEntry(String),
    #[error("the revocation of device {0} was signed by an administrator of another organisation")]
    OutOfScope(String),
}

/// One revoked device, signed by the administrator who revoked it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedDevice {
    #[serde(rename = "d")]
    pub device: Fixed<16>,
    #[serde(rename = "t")]
    pub revoked_at_ms: i64,
    #[serde(rename = "r")]
    pub reason: RevocationReason,
    /// The organisation of the device, as its certificate names it. (The three fields below
    /// default when absent only so that an administrator's keyring that recorded entries
    /// before they existed still opens; such an entry never verifies in a list.)
    #[serde(rename = "o", default)]
    pub organisation: String,
    /// The administrator who added the entry.
    #[serde(rename = "a", default = "no_admin")]
    pub admin: Fixed<32>,
    #[serde(rename = "s", with = "bytes", default)]
    pub signature: Vec<u8>,
}

fn no_admin() -> Fixed<32> {
    Fixed([0; 32])
}

impl RevokedDevice {
    /// An entry for `device` of `organisation`, signed by `admin`.
    pub fn sign(
        device: [u8; 16],
        revoked_at_ms: i64,
        reason: RevocationReason,
        organisation: &str,
        admin: &SigningKey,
    ) -> RevokedDevice {
        let mut entry = RevokedDevice {
            device: Fixed(device),
            revoked_at_ms,
            reason,
            organisation: organisation.to_owned(),
            admin: Fixed(admin.verifying_key().to_bytes()),
            signature: Vec::new(),
        };
        entry.signature = admin.sign(&entry.message()).to_bytes().to_vec();
        entry
    }

    fn message(&self) -> Vec<u8> {
        let signed = (self.device, self.revoked_at_ms, self.reason, &self.organisation);
        [ENTRY_LABEL, &crate::sync::encode(&signed)].concat()
    }

    /// Checks the entry against its administrator (`admins`: root-verified, by key).
    fn check(&self, admins: &HashMap<[u8; 32], AdminBody>) -> Result<(), RevocationError> {
        let device = crate::api::hex(&self.device.0);
        let admin =
            admins.get(&self.admin.0).ok_or_else(|| RevocationError::UnsignedEntry(device.clone()))?;
        let key = VerifyingKey::from_bytes(&admin.admin_public)
            .map_err(|_| RevocationError::UnsignedEntry(device.clone()))?;
        let signature: [u8; 64] = self
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| RevocationError::UnsignedEntry(device.clone()))?;
        key.verify_strict(&self.message(), &ed25519_dalek::Signature::from_bytes(&signature))
            .map_err(|_| RevocationError::UnsignedEntry(device.clone()))?;
        if !admin.scope().permits_org(&self.organisation) {
            return Err(RevocationError::OutOfScope(device));
        }
        Ok(())
    }
}

/// One version of the list. Entries are sorted by device id and then organisation, each pair
/// once: an entry counts only under the organisation it names, so one written under the wrong
/// organisation (which revokes nothing) must not keep the device's own organisation's
/// administrator from adding the entry that does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationList {
    #[serde(rename = "v")]
    pub version: u32,
    #[serde(rename = "t")]
    pub issued_at_ms: i64,
    #[serde(rename = "e")]
    pub entries: Vec<RevokedDevice>,
    /// The signing administrator's certificate, signed by the root.
    #[serde(rename = "a", with = "bytes")]
    pub admin_certificate: Vec<u8>,
    /// The certificate of every administrator who signed an entry, each once.
    #[serde(rename = "k", default)]
    pub entry_admins: Vec<crate::sync::Blob>,
}

/// A list with its administrator's signature, as it travels and is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRevocationList {
    #[serde(rename = "b", with = "bytes")]
    pub body: Vec<u8>,
    #[serde(rename = "s", with = "bytes")]
    pub signature: Vec<u8>,
}

impl RevocationList {
    /// "No list yet": version 0, nothing revoked. Never signed or sent.
    pub fn none() -> RevocationList {
        RevocationList {
            version: 0,
            issued_at_ms: 0,
            entries: Vec::new(),
            admin_certificate: Vec::new(),
            entry_admins: Vec::new(),
        }
    }

    /// The next version: every entry of this one, unchanged, and `added` (a device already
    /// listed under the same organisation keeps its first entry), signed later by the
    /// administrator of `admin_certificate`.
    pub fn next(
        &self,
        added: &[RevokedDevice],
        admin_certificate: Vec<u8>,
        issued_at_ms: i64,
    ) -> Result<RevocationList, RevocationError> {
        let version = self.version.checked_add(1).ok_or(RevocationError::Malformed("version exhausted"))?;
        let mut entries = self.entries.clone();
        for entry in added {
            if let Err(at) = entries.binary_search_by(|e| key(e).cmp(&key(entry))) {
                entries.insert(at, entry.clone());
            }
        }
        if entries.len() > MAX_REVOKED_DEVICES {
            return Err(RevocationError::Full);
        }
        // The signer vouches for the entries it adds with its own certificate in the table.
        let mut entry_admins = self.entry_admins.clone();
        if !added.is_empty() && !entry_admins.iter().any(|c| c.0 == admin_certificate) {
            entry_admins.push(crate::sync::Blob(admin_certificate.clone()));
        }
        Ok(RevocationList { version, issued_at_ms, entries, admin_certificate, entry_admins })
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// The first entry naming `device`, whatever organisation it names: for bookkeeping.
    /// Judging a device goes through [`RevocationList::revokes`].
    pub fn is_revoked(&self, device: &[u8; 16]) -> Option<&RevokedDevice> {
        let at = self.entries.partition_point(|e| &e.device.0 < device);
        self.entries.get(at).filter(|e| &e.device.0 == device)
    }

    /// The entry naming `device` under `organisation`, if there is one.
    pub fn entry_of(&self, device: &[u8; 16], organisation: &str) -> Option<&RevokedDevice> {
        self.entries
            .binary_search_by(|e| key(e).cmp(&(device, organisation)))
            .ok()
            .and_then(|i| self.entries.get(i))
    }

    /// The entry that revokes `device` (a body from its root-verified certificate): one that
    /// names the device under the organisation its certificate names. An entry written under
    /// another organisation, by an administrator of that one, revokes nothing.
    pub fn revokes(&self, device: &DeviceBody) -> Option<&RevokedDevice> {
        self.entry_of(&device.device_id, &device.organisation)
    }

    pub fn sign(&self, admin: &SigningKey) -> SignedRevocationList {
        let body = crate::sync::encode(self);
        let signature = admin.sign(&[SIGNATURE_LABEL, &body].concat()).to_bytes().to_vec();
        SignedRevocationList { body, signature }
    }

    /// Decodes `bytes` (a [`SignedRevocationList`]) and checks it: its administrator's
    /// certificate chains to `root_public`, that administrator signed it, and its entries are
    /// well formed. Says nothing about whether it is the newest list; see
    /// [`RevocationList::check_extends`].
    pub fn verify(bytes: &[u8], root_public: &[u8; 32]) -> Result<RevocationList, RevocationError> {
        Self::verify_with_admin(bytes, root_public).map(|(list, _)| list)
    }

    /// As [`RevocationList::verify`], with the signing administrator (the server checks it is
    /// one it knows).
    pub fn verify_with_admin(
        bytes: &[u8],
        root_public: &[u8; 32],
    ) -> Result<(RevocationList, AdminBody), RevocationError> {
        let signed: SignedRevocationList = crate::sync::decode(bytes, MAX_REVOCATION_LIST_LEN)
            .map_err(|_| RevocationError::Malformed("it does not decode"))?;
        let list: RevocationList = crate::sync::decode(&signed.body, MAX_REVOCATION_LIST_LEN)
            .map_err(|_| RevocationError::Malformed("its body does not decode"))?;
        let admin = Certificate::from_bytes(&list.admin_certificate)
            .and_then(|c| c.verify_admin(root_public))
            .map_err(|_| RevocationError::UntrustedAdministrator)?;
        let key = VerifyingKey::from_bytes(&admin.admin_public).map_err(|_| RevocationError::BadSignature)?;
        let signature: [u8; 64] =
            signed.signature.as_slice().try_into().map_err(|_| RevocationError::BadSignature)?;
        key.verify_strict(
            &[SIGNATURE_LABEL, &signed.body].concat(),
            &ed25519_dalek::Signature::from_bytes(&signature),
        )
        .map_err(|_| RevocationError::BadSignature)?;
        list.check_shape()?;
        list.check_entries(root_public)?;
        Ok((list, admin))
    }

    /// Every entry signed by a root-certified administrator whose scope covers the
    /// organisation the entry names.
    fn check_entries(&self, root_public: &[u8; 32]) -> Result<(), RevocationError> {
        if self.entry_admins.len() > MAX_LIST_ADMINS {
            return Err(RevocationError::Malformed("too many administrators"));
        }
        let mut admins = HashMap::new();
        for certificate in &self.entry_admins {
            let admin = Certificate::from_bytes(&certificate.0)
                .and_then(|c| c.verify_admin(root_public))
                .map_err(|_| RevocationError::UntrustedAdministrator)?;
            admins.insert(admin.admin_public, admin);
        }
        self.entries.iter().try_for_each(|entry| entry.check(&admins))
    }

    fn check_shape(&self) -> Result<(), RevocationError> {
        if self.version == 0 {
            return Err(RevocationError::Malformed("version 0 is never signed"));
        }
        if self.entries.len() > MAX_REVOKED_DEVICES {
            return Err(RevocationError::Full);
        }
        if !self.entries.windows(2).all(|pair| key(&pair[0]) < key(&pair[1])) {
            return Err(RevocationError::Malformed(
                "the entries are not sorted by device and organisation, each pair once",
            ));
        }
        Ok(())
    }

    /// Whether this list may replace `held`: it is not older, it keeps every entry of `held`
    /// unchanged, and if it has the same version it is the same list.
    pub fn check_extends(&self, held: &RevocationList) -> Result<(), RevocationError> {
        if self.version < held.version {
            return Err(RevocationError::RolledBack { held: held.version, given: self.version });
        }
        if self.version == held.version && held.version > 0 && self.entries != held.entries {
            return Err(RevocationError::Forked(self.version));
        }
        for entry in &held.entries {
            if self.entry_of(&entry.device.0, &entry.organisation) != Some(entry) {
                return Err(RevocationError::NotAppendOnly {
                    held: held.version,
                    given: self.version,
                    device: crate::api::hex(&entry.device.0),
                });
            }
        }
        Ok(())
    }
}

/// What entries are sorted and found by: the device, then the organisation named.
fn key(entry: &RevokedDevice) -> (&[u8; 16], &str) {
    (&entry.device.0, entry.organisation.as_str())
}

impl SignedRevocationList {
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::sync::encode(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: [u8; 32] = [1; 32];

    fn admin(seed: u8, root: &SigningKey) -> (SigningKey, Vec<u8>) {
        let admin = SigningKey::from_bytes(&[seed; 32]);
        let certificate = Certificate::sign_admin(
            &AdminBody {
                admin_public: admin.verifying_key().to_bytes(),
                name: "Beheer".into(),
                issued_at_ms: 0,
                organisation: None,
            },
            root,
        );
        (admin, certificate.to_bytes())
    }

    const ORG: &str = "Wijkteam Noord";

    /// An entry signed by the administrator of [`admin`] with seed 2.
    fn entry(device: u8, at: i64) -> RevokedDevice {
        RevokedDevice::sign(
            [device; 16],
            at,
            RevocationReason::Stolen,
            ORG,
            &SigningKey::from_bytes(&[2; 32]),
        )
    }

    fn scoped_admin(seed: u8, root: &SigningKey, organisation: &str) -> (SigningKey, Vec<u8>) {
        let admin = SigningKey::from_bytes(&[seed; 32]);
        let certificate = Certificate::sign_admin(
            &AdminBody {
                admin_public: admin.verifying_key().to_bytes(),
                name: "Beheer".into(),
                issued_at_ms: 0,
                organisation: Some(organisation.into()),
            },
            root,
        );
        (admin, certificate.to_bytes())
    }

    fn device(id: u8, organisation: &str) -> DeviceBody {
        DeviceBody {
            device_id: [id; 16],
            user_id: 1,
            user_name: "Wim".into(),
            organisation: organisation.into(),
            role: "wijkteam".into(),
            signing_public: [0; 32],
            agreement_public: Vec::new(),
            valid_from_ms: 0,
            valid_until_ms: 1,
            issuer: [0; 32],
        }
    }

    #[test]
    fn an_entry_under_another_organisation_does_not_keep_the_devices_own_administrator_out() {
        let (root, public) = root();
        let (politie, politie_certificate) = scoped_admin(6, &root, "Politie Zaanstreek");
        let (gemeente, gemeente_certificate) = scoped_admin(7, &root, "Gemeente Zaanstad");
        // First the police administrator lists the municipality's phone under its own name
        // (which revokes nothing), then the municipality's administrator revokes it for real.
        let wrong = RevokedDevice::sign([3; 16], 1, RevocationReason::Lost, "Politie Zaanstreek", &politie);
        let first = RevocationList::none().next(&[wrong], politie_certificate, 2).unwrap();
        let first = RevocationList::verify(&first.sign(&politie).to_bytes(), &public).unwrap();
        let right = RevokedDevice::sign([3; 16], 3, RevocationReason::Stolen, "Gemeente Zaanstad", &gemeente);
        let second = first.next(std::slice::from_ref(&right), gemeente_certificate, 4).unwrap();
        let second = RevocationList::verify(&second.sign(&gemeente).to_bytes(), &public).unwrap();
        second.check_extends(&first).unwrap();
        assert_eq!(second.revokes(&device(3, "Gemeente Zaanstad")), Some(&right));
        assert_eq!(second.entries.len(), 2);
        // The same pair twice is still refused.
        let mut twice = second.clone();
        twice.entries.push(right);
        assert!(matches!(
            RevocationList::verify(&twice.sign(&gemeente).to_bytes(), &public),
            Err(RevocationError::Malformed(_))
        ));
    }

    #[test]
    fn an_entry_counts_only_under_the_organisation_of_the_devices_own_certificate() {
        let (root, public) = root();
        let (politie, certificate) = scoped_admin(6, &root, "Politie Zaanstreek");
        // The police administrator writes an entry for a municipality's device under its own
        // organisation's name: the list verifies, and the entry revokes nothing.
        let entry = RevokedDevice::sign([3; 16], 1, RevocationReason::Lost, "Politie Zaanstreek", &politie);
        let list = RevocationList::none().next(&[entry], certificate.clone(), 2).unwrap();
        let list = RevocationList::verify(&list.sign(&politie).to_bytes(), &public).unwrap();
        assert!(list.is_revoked(&[3; 16]).is_some());
        assert!(list.revokes(&device(3, "Gemeente Zaanstad")).is_none());
        assert!(list.revokes(&device(3, "Politie Zaanstreek")).is_some());
        // Under the municipality's name, the list does not verify at all.
        let entry = RevokedDevice::sign([3; 16], 1, RevocationReason::Lost, "Gemeente Zaanstad", &politie);
        let list = RevocationList::none().next(&[entry], certificate, 2).unwrap();
        assert_eq!(
            RevocationList::verify(&list.sign(&politie).to_bytes(), &public),
            Err(RevocationError::OutOfScope(crate::api::hex(&[3; 16])))
        );
    }

    #[test]
    fn an_entry_a_later_signer_changed_or_made_up_does_not_verify() {
        let (root, public) = root();
        let (network_wide, certificate) = admin(2, &root);
        let (politie, politie_certificate) = scoped_admin(6, &root, "Politie Zaanstreek");
        let v1 = RevocationList::none().next(&[entry(3, 1)], certificate, 1).unwrap();
        // The police administrator publishes the next version and rewrites the earlier entry's
        // organisation, or writes one in the network-wide administrator's name.
        let mut moved = v1.next(&[], politie_certificate.clone(), 2).unwrap();
        moved.entries[0].organisation = "Politie Zaanstreek".into();
        assert!(matches!(
            RevocationList::verify(&moved.sign(&politie).to_bytes(), &public),
            Err(RevocationError::UnsignedEntry(_))
        ));
        let mut forged = RevokedDevice::sign([4; 16], 1, RevocationReason::Lost, ORG, &politie);
        forged.admin = Fixed(network_wide.verifying_key().to_bytes());
        let named = v1.next(&[forged], politie_certificate, 2).unwrap();
        assert!(matches!(
            RevocationList::verify(&named.sign(&politie).to_bytes(), &public),
            Err(RevocationError::UnsignedEntry(_))
        ));
    }

    fn root() -> (SigningKey, [u8; 32]) {
        let root = SigningKey::from_bytes(&ROOT);
        let public = root.verifying_key().to_bytes();
        (root, public)
    }

    #[test]
    fn a_list_round_trips_and_names_its_devices() {
        let (root, public) = root();
        let (key, certificate) = admin(2, &root);
        let first = RevocationList::none().next(&[entry(9, 5), entry(3, 6)], certificate.clone(), 7).unwrap();
        let bytes = first.sign(&key).to_bytes();
        let back = RevocationList::verify(&bytes, &public).unwrap();
        assert_eq!(back, first);
        assert_eq!(back.version(), 1);
        assert_eq!(back.is_revoked(&[3; 16]).map(|e| e.revoked_at_ms), Some(6));
        assert!(back.is_revoked(&[4; 16]).is_none());
        // Kept sorted, each device once; a device revoked again keeps its first entry.
        let second = back.next(&[entry(3, 99), entry(5, 8)], certificate, 9).unwrap();
        assert_eq!(second.entry_admins.len(), 1, "each administrator once");
        let devices: Vec<u8> = second.entries.iter().map(|e| e.device.0[0]).collect();
        assert_eq!(devices, [3, 5, 9]);
        assert_eq!(second.is_revoked(&[3; 16]).map(|e| e.revoked_at_ms), Some(6));
        second.check_extends(&back).unwrap();
        second.check_extends(&second).unwrap();
        second.check_extends(&RevocationList::none()).unwrap();
    }

    #[test]
    fn an_older_shorter_or_forked_list_does_not_replace_a_held_one() {
        let (root, _) = root();
        let (_, certificate) = admin(2, &root);
        let v1 = RevocationList::none().next(&[entry(3, 1)], certificate.clone(), 1).unwrap();
        let v2 = v1.next(&[entry(4, 2)], certificate.clone(), 2).unwrap();
        assert_eq!(v1.check_extends(&v2), Err(RevocationError::RolledBack { held: 2, given: 1 }));
        let mut dropped = v2.clone();
        dropped.version = 3;
        dropped.entries.remove(0);
        assert!(matches!(
            dropped.check_extends(&v2),
            Err(RevocationError::NotAppendOnly { held: 2, given: 3, .. })
        ));
        let mut changed = v2.clone();
        changed.version = 3;
        changed.entries[0].revoked_at_ms = 77;
        assert!(matches!(changed.check_extends(&v2), Err(RevocationError::NotAppendOnly { .. })));
        let other = v1.next(&[entry(5, 2)], certificate, 2).unwrap();
        assert_eq!(other.check_extends(&v2), Err(RevocationError::Forked(2)));
    }

    #[test]
    fn forged_foreign_and_malformed_lists_are_refused_without_panicking() {
        let (root, public) = root();
        let (key, certificate) = admin(2, &root);
        let list = RevocationList::none().next(&[entry(3, 1), entry(4, 1)], certificate.clone(), 1).unwrap();
        // Signed by a key that is not the certificate's.
        let forged = list.sign(&SigningKey::from_bytes(&[8; 32])).to_bytes();
        assert_eq!(RevocationList::verify(&forged, &public), Err(RevocationError::BadSignature));
        // An administrator of another network.
        let (other_key, other_certificate) = admin(2, &SigningKey::from_bytes(&[7; 32]));
        let foreign =
            RevocationList { admin_certificate: other_certificate, ..list.clone() }.sign(&other_key);
        assert_eq!(
            RevocationList::verify(&foreign.to_bytes(), &public),
            Err(RevocationError::UntrustedAdministrator)
        );
        // A body changed after signing.
        let mut tampered = list.sign(&key);
        let last = tampered.body.len() - 1;
        tampered.body[last] ^= 1;
        assert!(RevocationList::verify(&tampered.to_bytes(), &public).is_err());
        // Unsorted, duplicated, version 0.
        for bad in [
            RevocationList { entries: vec![entry(4, 1), entry(3, 1)], ..list.clone() },
            RevocationList { entries: vec![entry(3, 1), entry(3, 2)], ..list.clone() },
            RevocationList { version: 0, ..list.clone() },
        ] {
            assert!(matches!(
                RevocationList::verify(&bad.sign(&key).to_bytes(), &public),
                Err(RevocationError::Malformed(_))
            ));
        }
        // Truncations and garbage.
        let good = list.sign(&key).to_bytes();
        for len in 0..good.len() {
            assert!(RevocationList::verify(&good[..len], &public).is_err(), "truncated to {len}");
        }
        assert!(RevocationList::verify(&vec![0xff; MAX_REVOCATION_LIST_LEN + 1], &public).is_err());
    }

    #[test]
    fn a_list_is_bounded() {
        let (root, _) = root();
        let (_, certificate) = admin(2, &root);
        let mut full = RevocationList::none();
        // The largest entries: an organisation name of 200 characters of two bytes each.
        let organisation = "é".repeat(200);
        let template = RevokedDevice::sign(
            [0; 16],
            1,
            RevocationReason::Lost,
            &organisation,
            &SigningKey::from_bytes(&[2; 32]),
        );
        full.entries = (0..MAX_REVOKED_DEVICES as u32)
            .map(|i| {
                let mut id = [0u8; 16];
                id[..4].copy_from_slice(&i.to_be_bytes());
                RevokedDevice { device: Fixed(id), revoked_at_ms: i64::MAX, ..template.clone() }
            })
            .collect();
        assert_eq!(full.next(&[entry(0xff, 1)], certificate.clone(), 1), Err(RevocationError::Full));
        // A full list still encodes within the byte limit.
        let (key, _) = admin(2, &root);
        let signed = full.next(&[], certificate, 1).unwrap().sign(&key).to_bytes();
        assert!(signed.len() <= MAX_REVOCATION_LIST_LEN, "{}", signed.len());
    }
}
