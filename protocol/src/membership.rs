//! A plan's signed membership chain: who takes part, who holds regie, and the escalation level.
//!
//! Regie is a function *per plan*: the plan's creator holds it first, then whoever a handover
//! names once they accept. Everything that changes who may read a plan is an **entry** in the
//! plan's chain, signed by the device that made it and linked to the entry before it by hash:
//!
//! ```text
//! entry  = CBOR { p: plan, n: seq (1, 2, …), v: SHA-256 of the previous signed entry (zeros for 1),
//!                 t: made at (ms), g: signer (device certificate chain | administrator certificate),
//!                 a: act }
//! signed = CBOR { b: CBOR(entry), s: Ed25519(signer, "eenplan/membership/v1\n" || b) }
//! ```
//!
//! Acts: `Create` (seq 1: the signer's user holds regie and takes part), `Add` (a participant,
//! named by one of their device certificates, so every reader checks name, organisation and
//! role against the root), `Remove`, `Handover` (offers regie; both are shown until the named
//! participant's `Accept`), `Escalate` (a new level with its legal ground, participants added,
//! regie offered to one of them) and `Deescalate` (a new level, regie handed back at once,
//! participants removed). Only the plan's regisseur signs these, except `Accept` (the one
//! offered regie) and `Handover`/`Remove` by an administrator, for a regisseur who is gone.
//!
//! The server keeps the chain and derives from it which users' devices it serves; every
//! device verifies the chain from its first entry against the root it pinned, keeps the
//! longest chain it verified, and answers key requests, makes keys and judges key makers by
//! that chain, never by the server's word. A removal or a level change that takes a read away
//! authorises any remaining reader device to make the compartment's next epoch
//! ([`crate::epoch::Commitment::membership_seq`]), so no edit waits for an administrator.
//!
//! The chain is plaintext to the server, as the access graph already is: ids, levels, legal
//! grounds and certificates. Reasons for an escalation are plan content and live in the plan's
//! `basis` document, joined to the entry by the step id.

mod roster;
#[cfg(test)]
mod tests;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::certificate::{Certificate, CertificateError, DeviceBody, bytes};
use crate::sync::Fixed;

pub use roster::{Change, Participant, Roster, RosterState, Step};

/// The compartment an erasure re-seals: family members live in `basis`.
pub const ERASED_COMPARTMENT: u8 = 0;

const SIGNATURE_LABEL: &[u8] = b"eenplan/membership/v1\n";
const HASH_LABEL: &[u8] = b"eenplan/membership-hash/v1\n";
/// Largest signed entry accepted (an escalation adding [`MAX_ADDED`] participants fits).
pub const MAX_ENTRY_LEN: usize = 48 * 1024;
/// Participants of one plan, the regisseur included.
pub const MAX_PARTICIPANTS: usize = 256;
/// Entries of one plan's chain: years of handovers and escalations many times over.
pub const MAX_ENTRIES: u32 = 256;
/// Participants one escalation may add or one de-escalation remove.
pub const MAX_ADDED: usize = 16;
/// Escalation levels, lowest first; a plan starts at the first.
pub use crate::policy::LEVELS;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error("the membership entry is malformed")]
    Malformed,
    #[error("the membership entry's signature is not its signer's")]
    BadSignature,
    #[error("a certificate in the membership entry does not verify: {0}")]
    Certificate(#[from] CertificateError),
    #[error("the membership entry's signer was revoked before it was made")]
    RevokedSigner,
    #[error("the membership entry belongs to another plan")]
    OtherPlan,
    #[error("membership entry {got} does not follow entry {held}")]
    OutOfOrder { held: u32, got: u32 },
    #[error("membership entry {0} does not extend the chain this device holds (a fork)")]
    Fork(u32),
    #[error("only the plan's regisseur may do this")]
    NotRegisseur,
    #[error("only the participant offered regie may accept it")]
    NotOffered,
    #[error("user {0} does not take part in this plan")]
    NotParticipant(i64),
    #[error("user {0} already takes part in this plan")]
    AlreadyParticipant(i64),
    #[error("the regisseur cannot be removed; hand regie over first")]
    RegisseurLeaves,
    #[error("unknown escalation level {0:?}")]
    UnknownLevel(String),
    #[error("the plan is already at level {0:?}")]
    SameLevel(String),
    #[error("too many participants or entries")]
    TooMany,
    #[error("the first entry must create the plan, and only the first")]
    NotFirst,
    #[error("the plan is closed (afgesloten): its membership no longer changes")]
    Closed,
    #[error("an erasure must name a key epoch after the document's last erasure")]
    StaleErasure,
    #[error("a plan's close cannot be dated before the chain's last entry")]
    Backdated,
    #[error("an administrator of {0} may act only on participants of its own organisation")]
    OutOfScope(String),
    #[error(
        "a device certified for {organisation} speaks as user {user}, who takes part for another organisation"
    )]
    ForeignCertificate { user: i64, organisation: String },
}

/// The legal ground for sharing at an escalation (*grondslag*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Grondslag {
    /// The region's convenant between the partners of the Zorg- en Veiligheidshuis.
    #[serde(rename = "convenant")]
    Convenant,
    /// The family's consent.
    #[serde(rename = "toestemming")]
    Toestemming,
    /// The meldcode huiselijk geweld en kindermishandeling.
    #[serde(rename = "meldcode")]
    Meldcode,
    /// A statutory task.
    #[serde(rename = "wettelijke_taak")]
    WettelijkeTaak,
}

impl Grondslag {
    pub const ALL: [Grondslag; 4] =
        [Grondslag::Convenant, Grondslag::Toestemming, Grondslag::Meldcode, Grondslag::WettelijkeTaak];

    pub fn as_str(self) -> &'static str {
        match self {
            Grondslag::Convenant => "convenant",
            Grondslag::Toestemming => "toestemming",
            Grondslag::Meldcode => "meldcode",
            Grondslag::WettelijkeTaak => "wettelijke_taak",
        }
    }

    /// The Dutch label people read.
    pub fn label(self) -> &'static str {
        match self {
            Grondslag::Convenant => "convenant",
            Grondslag::Toestemming => "toestemming van het gezin",
            Grondslag::Meldcode => "meldcode",
            Grondslag::WettelijkeTaak => "wettelijke taak",
        }
    }

    pub fn parse(text: &str) -> Option<Grondslag> {
        Grondslag::ALL.into_iter().find(|g| g.as_str() == text)
    }
}

/// Whether `level` is a known escalation level.
pub fn is_level(level: &str) -> bool {
    LEVELS.contains(&level)
}

/// A device certificate with the administrator certificate that signed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateChain {
    #[serde(rename = "c", with = "bytes")]
    pub certificate: Vec<u8>,
    #[serde(rename = "a", with = "bytes")]
    pub admin_certificate: Vec<u8>,
}

impl CertificateChain {
    /// The device this chain certifies, valid at `at_ms` under `root`.
    pub fn verify(&self, root: &[u8; 32], at_ms: i64) -> Result<DeviceBody, MembershipError> {
        let certificate = Certificate::from_bytes(&self.certificate)?;
        let admin = Certificate::from_bytes(&self.admin_certificate)?;
        Ok(certificate.verify_device(&admin, root, at_ms)?)
    }
}

/// Who signed an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Signer {
    /// A participant's device.
    #[serde(rename = "d")]
    Device(CertificateChain),
    /// An administrator (root-certified), for a regisseur who is gone.
    #[serde(rename = "a")]
    Admin(#[serde(with = "bytes")] Vec<u8>),
}

/// Escalating: the step up, its legal ground, who joins, and who is offered regie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    #[serde(rename = "l")]
    pub level: String,
    #[serde(rename = "g")]
    pub grondslag: Grondslag,
    /// Joins the entry to the step in the plan's `basis` document that holds the reason.
    #[serde(rename = "s")]
    pub step: u64,
    #[serde(rename = "+", default)]
    pub add: Vec<CertificateChain>,
    #[serde(rename = "r", default)]
    pub regie: Option<i64>,
}

/// De-escalating: the step down, who holds regie from now on, and who leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deescalation {
    #[serde(rename = "l")]
    pub level: String,
    #[serde(rename = "s")]
    pub step: u64,
    #[serde(rename = "r")]
    pub regie: i64,
    #[serde(rename = "-", default)]
    pub remove: Vec<i64>,
}

/// What an entry does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Act {
    #[serde(rename = "c")]
    Create,
    #[serde(rename = "+")]
    Add(CertificateChain),
    #[serde(rename = "-")]
    Remove(i64),
    #[serde(rename = "h")]
    Handover(i64),
    #[serde(rename = "k")]
    Accept,
    #[serde(rename = "e")]
    Escalate(Escalation),
    #[serde(rename = "d")]
    Deescalate(Deescalation),
    /// Closing the plan (*afgesloten*): care has ended and the retention period starts at
    /// the entry's time. Only the regisseur (or an administrator, for a regisseur who is
    /// gone) closes; nothing follows it.
    #[serde(rename = "z")]
    Close,
    /// Erasing one family member's personal data (AVG): the plan's `basis` document is
    /// replaced by a history-free **base** sealed at a new key epoch, and every bundle and key
    /// envelope of older epochs is deleted. Only the regisseur's device signs it, open or
    /// closed (the retention period is when such a request comes).
    #[serde(rename = "x")]
    Erase(Erasure),
}

/// What an erasure commits to: the base every device replaces `basis` by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    /// The key epoch the base is sealed at; the document's older epochs are gone after it.
    #[serde(rename = "e")]
    pub epoch: u32,
    /// [`crate::Bundle::digest`] of the sealed base bundle: a device takes only that base.
    #[serde(rename = "h")]
    pub base: Fixed<32>,
    /// The server log position the base holds everything up to: the server refuses the
    /// erasure when a bundle of the document came after it (nothing acknowledged is lost).
    #[serde(rename = "c")]
    pub covers: u64,
    /// The hash of the base's one automerge change: what later snapshots of the document
    /// are checked against for it (no change bundle of it exists), even on a device that
    /// has not received the base yet.
    #[serde(rename = "k")]
    pub base_change: Fixed<32>,
}

/// The signed statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(rename = "p")]
    pub plan: Fixed<16>,
    #[serde(rename = "n")]
    pub seq: u32,
    #[serde(rename = "v")]
    pub prev: Fixed<32>,
    #[serde(rename = "t")]
    pub at_ms: i64,
    #[serde(rename = "g")]
    pub signer: Signer,
    #[serde(rename = "a")]
    pub act: Act,
}

/// An entry with its signer's signature, as it travels and is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedEntry {
    #[serde(rename = "b", with = "bytes")]
    pub body: Vec<u8>,
    #[serde(rename = "s", with = "bytes")]
    pub signature: Vec<u8>,
}

impl Entry {
    /// The first entry of a new plan, made on the creator's device.
    pub fn create(plan: [u8; 16], at_ms: i64, signer: CertificateChain) -> Entry {
        Entry {
            plan: Fixed(plan),
            seq: 1,
            prev: Fixed([0; 32]),
            at_ms,
            signer: Signer::Device(signer),
            act: Act::Create,
        }
    }

    /// The entry after `roster`'s head.
    pub fn next(roster: &Roster, at_ms: i64, signer: Signer, act: Act) -> Entry {
        Entry {
            plan: Fixed(roster.plan()),
            seq: roster.seq() + 1,
            prev: Fixed(roster.head()),
            at_ms,
            signer,
            act,
        }
    }

    pub fn sign(&self, key: &SigningKey) -> SignedEntry {
        let body = crate::sync::encode(self);
        let signature = key.sign(&[SIGNATURE_LABEL, &body].concat()).to_bytes().to_vec();
        SignedEntry { body, signature }
    }
}

impl SignedEntry {
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::sync::encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<SignedEntry, MembershipError> {
        crate::sync::decode(bytes, MAX_ENTRY_LEN).map_err(|_| MembershipError::Malformed)
    }

    /// The statement, unverified: to learn its plan and position.
    pub fn claimed(&self) -> Result<Entry, MembershipError> {
        crate::sync::decode(&self.body, MAX_ENTRY_LEN).map_err(|_| MembershipError::Malformed)
    }

    /// What the next entry names as `prev`.
    pub fn hash(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(HASH_LABEL);
        hash.update(&self.body);
        hash.update(&self.signature);
        hash.finalize().into()
    }

    fn verify_signature(&self, public: &[u8; 32]) -> Result<(), MembershipError> {
        let key = VerifyingKey::from_bytes(public).map_err(|_| MembershipError::BadSignature)?;
        let signature: [u8; 64] =
            self.signature.as_slice().try_into().map_err(|_| MembershipError::BadSignature)?;
        key.verify_strict(
            &[SIGNATURE_LABEL, &self.body].concat(),
            &ed25519_dalek::Signature::from_bytes(&signature),
        )
        .map_err(|_| MembershipError::BadSignature)
    }
}

/// Who an entry's signer is, once verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignedBy {
    Device {
        device: [u8; 16],
        user: i64,
    },
    /// `organisation`: the administrator's scope (absent: network-wide).
    Admin {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        organisation: Option<String>,
    },
}

/// Verifies an entry's signature and certificates against `root`, and that its signer was not
/// revoked before it was made (`revoked_before(device, at_ms)` answers from the caller's own
/// list, given the signer's verified certificate: an entry counts only under its
/// organisation, [`crate::revocation::RevocationList::revokes`]). Says nothing about whether the signer may make it: that is [`Roster::apply`].
pub fn verify_signer(
    signed: &SignedEntry,
    root: &[u8; 32],
    revoked_before: &dyn Fn(&DeviceBody, i64) -> bool,
) -> Result<(Entry, SignedBy, Option<DeviceBody>), MembershipError> {
    let entry = signed.claimed()?;
    match &entry.signer {
        Signer::Device(chain) => {
            let body = chain.verify(root, entry.at_ms)?;
            signed.verify_signature(&body.signing_public)?;
            if revoked_before(&body, entry.at_ms) {
                return Err(MembershipError::RevokedSigner);
            }
            let by = SignedBy::Device { device: body.device_id, user: body.user_id };
            Ok((entry, by, Some(body)))
        }
        Signer::Admin(certificate) => {
            let admin = Certificate::from_bytes(certificate)?.verify_admin(root)?;
            signed.verify_signature(&admin.admin_public)?;
            Ok((entry, SignedBy::Admin { name: admin.name, organisation: admin.organisation }, None))
        }
    }
}
