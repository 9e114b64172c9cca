//! Who may write (and make keys) where: a bundle's author and a key's maker, judged by their
//! certificates and the sharing policy.
//!
//! Roles and policies change, and history must not. So a write is judged twice, and passes
//! if either allows it (see [`eenplan_protocol::epoch`]):
//!
//! - by the author's **newest** certificate under the **newest** policy this device holds;
//! - by the **rules of the bundle's epoch**: the policy version its key commitment names, and
//!   the author's certificate in force when that key was made.
//!
//! Every change that takes a read or a write away rotates the documents concerned, so the
//! second judgement covers exactly what was written before the change:
//!
//! ```text
//! Gert (politie) writes justitie in epoch 1         epoch 1: policy v1, made 09:00
//! 10:00 the administrator makes Gert "ggz"          new certificate from 10:00; justitie → epoch 2
//! Anna's new phone fetches Gert's epoch-1 bundle    newest (ggz) says no; epoch 1's rules
//!                                                   (v1, Gert's 09:00 certificate: politie) say yes
//! Gert writes justitie in epoch 2                   both say no: refused
//! ```
//!
//! Certificates come from the local cache first; a cached certificate that refuses a write is
//! fetched again once per sync (the author may have a new role that allows it). Earlier
//! policy versions are fetched from the server by version and checked against the root.
//!
//! Judging runs under the device's lock and never touches the network: what it lacks it
//! records as wanted ([`SyncError::NotFetchedYet`]); the sync's driver fetches every wanted
//! certificate and policy at once, without the lock, and applies the answer again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use eenplan_protocol::api::{self, CertificateInfo, PolicyInfo, hex, unhex};
use eenplan_protocol::certificate::{Certificate, DeviceBody};
use eenplan_protocol::epoch::Commitment;
use eenplan_protocol::membership::Roster;
use eenplan_protocol::policy::{BASE_LEVEL, Policy, SignedPolicy};
use serde::{Deserialize, Serialize};

use super::membership::HeldChain;
use super::transport::Transport;
use super::{CertificateState, STATE_POLICY, SyncError, cbor, from_cbor, verify_own};
use crate::crypto::sha256;
use crate::device::Device;
use crate::error::CoreError;
use crate::ids::PlanId;
use crate::plan::Compartment;

/// What judging checks against: the pinned root, at a moment.
#[derive(Debug, Clone, Copy)]
pub(super) struct Trust<'a> {
    pub root: &'a [u8; 32],
    pub now: i64,
}

/// The outcome of one fetch.
#[derive(Debug, Clone)]
enum Fetched {
    Found(Vec<u8>),
    /// The server knows no such device (or policy version).
    NotFound,
    /// The fetch failed for a reason that may pass.
    Failed(String),
}

/// A device's certificates as this device caches them, oldest first; the last is current.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AuthorChains {
    chains: Vec<CertificateState>,
}

/// The write rules of one key epoch, from its commitment.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(super) struct EpochRules {
    pub policy_version: u32,
    pub made_at_ms: i64,
    /// The membership-chain position the key was made at (0: none named).
    #[serde(default)]
    pub membership_seq: u32,
}

impl EpochRules {
    pub fn of(commitment: &Commitment) -> EpochRules {
        EpochRules {
            policy_version: commitment.policy_version,
            made_at_ms: commitment.made_at_ms,
            membership_seq: commitment.membership_seq,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        cbor(self)
    }
}

/// What judging needs to remember during one sync: certificates and policies fetched (stored
/// with the sync's result; a device fetched in this sync is not fetched again), and what the
/// current pass found missing.
#[derive(Debug, Default)]
pub(super) struct Judge {
    /// Device → encoded [`AuthorChains`] (or why not), fetched in this sync.
    certificates: HashMap<[u8; 16], Fetched>,
    /// Earlier policy versions → signed bytes (or why not), fetched in this sync.
    policy_bytes: HashMap<u32, Fetched>,
    /// Earlier policies fetched and verified in this sync: version → (policy, signed bytes).
    pub policies: BTreeMap<u32, (Policy, Vec<u8>)>,
    wanted_certificates: BTreeSet<[u8; 16]>,
    wanted_policies: BTreeSet<u32>,
    /// The newest revocation list, fetched in this sync ([`super::revocations`]).
    revocations: Option<Fetched>,
    wanted_revocations: bool,
    /// What judging read before, by exactly what it was read from: a first sync judges
    /// hundreds of bundles, witnesses and envelopes by a few authors and one chain per plan.
    memo: Memo,
}

/// Entries a [`Memo`] map holds before it starts again: a peer that names many authors or
/// plans costs the reads again, never unbounded memory.
const MAX_MEMO: usize = 1024;

/// Results of pure functions of their inputs, keyed by those inputs (the digest of the bytes
/// read, the root, the moment), so an entry is never stale: a changed chain or certificate is
/// a new key, and nothing needs forgetting between passes or rounds.
#[derive(Debug, Default)]
struct Memo {
    certificates: HashMap<ChainsRead, Vec<DeviceBody>>,
    /// Digest of a plan's stored membership chain → the roster it folds into.
    rosters: HashMap<[u8; 32], Arc<Roster>>,
}

/// What a device's verified certificates are read from: the author, the SHA-256 of its
/// encoded chains, the root and the moment they were checked at.
type ChainsRead = ([u8; 16], [u8; 32], [u8; 32], i64);

impl Memo {
    fn keep<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, value: V) {
        if map.len() >= MAX_MEMO {
            map.clear();
        }
        map.insert(key, value);
    }
}

/// The newest revocation list as far as this sync fetched it.
pub(super) enum RevocationsFetch {
    NotYet,
    Found(Vec<u8>),
    Missing(String),
}

impl Judge {
    /// Whether the last pass asked for something not fetched yet.
    pub fn wants(&self) -> bool {
        !self.wanted_certificates.is_empty() || !self.wanted_policies.is_empty() || self.wanted_revocations
    }

    /// Forgets what a pass asked for; the next pass asks again for what it still lacks.
    pub fn clear_wants(&mut self) {
        self.wanted_certificates.clear();
        self.wanted_policies.clear();
        self.wanted_revocations = false;
    }

    /// `author`'s certificates verified from `encoded` ([`verify_chains`]), once per sync for
    /// the same bytes, root and moment.
    fn verified(
        &mut self,
        trust: Trust<'_>,
        author: &[u8; 16],
        encoded: &[u8],
    ) -> Result<Vec<DeviceBody>, CoreError> {
        let key = (*author, sha256(encoded), *trust.root, trust.now);
        if let Some(bodies) = self.memo.certificates.get(&key) {
            return Ok(bodies.clone());
        }
        let bodies = verify_chains(trust, author, encoded)?;
        Memo::keep(&mut self.memo.certificates, key, bodies.clone());
        Ok(bodies)
    }

    /// Asks for `device`'s certificates unless this sync fetched them or `cached` holds them.
    pub fn want_unless_known(&mut self, device: [u8; 16], cached: bool) {
        if !cached && !self.certificates.contains_key(&device) {
            self.wanted_certificates.insert(device);
        }
    }

    pub fn want_revocations(&mut self) {
        self.wanted_revocations = true;
    }

    pub fn revocations(&self) -> RevocationsFetch {
        match &self.revocations {
            None => RevocationsFetch::NotYet,
            Some(Fetched::Found(bytes)) => RevocationsFetch::Found(bytes.clone()),
            Some(Fetched::NotFound) => RevocationsFetch::Missing("the server has no revocation list".into()),
            Some(Fetched::Failed(why)) => RevocationsFetch::Missing(why.clone()),
        }
    }

    /// The certificates fetched in this sync that the server had: for the local cache.
    pub fn fetched_certificates(&self) -> impl Iterator<Item = (&[u8; 16], &Vec<u8>)> {
        self.certificates.iter().filter_map(|(device, fetched)| match fetched {
            Fetched::Found(bytes) => Some((device, bytes)),
            Fetched::NotFound | Fetched::Failed(_) => None,
        })
    }

    /// Fetches everything the last pass asked for. Runs without the device: only the
    /// transport and this judge. A server that cannot be reached ends the sync; any other
    /// failure is recorded for the thing asked for (its bundle waits for the next sync).
    pub fn fetch_wanted(&mut self, transport: &Transport, token: &str) -> Result<(), CoreError> {
        for device in std::mem::take(&mut self.wanted_certificates) {
            let path = format!("{}?device={}", api::PATH_CERTIFICATES, hex(&device));
            let fetched = match transport.get_json::<CertificateInfo>(&path, Some(token)) {
                Ok(info) => match encode_chains(&info) {
                    Ok(bytes) => Fetched::Found(bytes),
                    Err(e) => Fetched::Failed(e.to_string()),
                },
                Err(e) => fetch_failure(e)?,
            };
            self.certificates.insert(device, fetched);
        }
        for version in std::mem::take(&mut self.wanted_policies) {
            let path = format!("{}?version={version}", api::PATH_POLICY);
            let fetched = match transport.get_json::<PolicyInfo>(&path, Some(token)) {
                Ok(info) => match unhex(&info.policy) {
                    Some(bytes) => Fetched::Found(bytes),
                    None => Fetched::Failed("the policy is not hex".into()),
                },
                Err(e) => fetch_failure(e)?,
            };
            self.policy_bytes.insert(version, fetched);
        }
        if std::mem::take(&mut self.wanted_revocations) {
            self.revocations = Some(match transport.get_bytes(api::PATH_REVOCATIONS, Some(token)) {
                Ok(bytes) => Fetched::Found(bytes),
                Err(e) => fetch_failure(e)?,
            });
        }
        Ok(())
    }
}

/// A fetch that failed: the network ends the sync, a 404 is an answer, the rest may pass.
fn fetch_failure(error: SyncError) -> Result<Fetched, CoreError> {
    match error {
        SyncError::Network(_) | SyncError::Revoked => Err(error.into()),
        SyncError::Server { status: 404, .. } => Ok(Fetched::NotFound),
        other => Ok(Fetched::Failed(other.to_string())),
    }
}

/// The chains of a [`CertificateInfo`], oldest first, as the cache keeps them.
fn encode_chains(info: &CertificateInfo) -> Result<Vec<u8>, SyncError> {
    let mut chains = Vec::with_capacity(info.older.len() + 1);
    for older in &info.older {
        chains.push(CertificateState::from_hex(
            &older.certificate,
            &older.admin_certificate,
            info.lease_hours,
        )?);
    }
    chains.push(CertificateState::from_hex(&info.certificate, &info.admin_certificate, info.lease_hours)?);
    Ok(cbor(&AuthorChains { chains }))
}

/// The sync-state name under which an earlier policy version is kept.
pub(super) fn policy_state(version: u32) -> String {
    format!("{STATE_POLICY}-v{version}")
}

/// The certificate of `bodies` (oldest first) that was in force at `at`: the newest one that
/// started by then, or the first for a device certified later.
fn in_force(bodies: &[DeviceBody], at: i64) -> Option<&DeviceBody> {
    bodies.iter().rev().find(|b| b.valid_from_ms <= at).or_else(|| bodies.first())
}

fn decode_chains(bytes: &[u8]) -> Result<Vec<CertificateState>, CoreError> {
    // A cache entry from before role changes holds one chain.
    match from_cbor::<AuthorChains>(bytes, "author certificates") {
        Ok(all) => Ok(all.chains),
        Err(_) => Ok(vec![from_cbor::<CertificateState>(bytes, "author certificate")?]),
    }
}

/// The verified certificates of `author` (oldest first, the last current) in its encoded
/// chains, checked against the root at `trust.now`.
fn verify_chains(trust: Trust<'_>, author: &[u8; 16], encoded: &[u8]) -> Result<Vec<DeviceBody>, CoreError> {
    let mut bodies = Vec::new();
    for state in decode_chains(encoded)? {
        // A bundle outlives its author's certificate: history written while a certificate
        // was valid stays readable after it expires. Check the chain, not today's date;
        // the server refuses sessions to devices that may no longer write.
        let window = Certificate::from_bytes(&state.certificate)
            .and_then(|c| c.claimed_device_body())
            .map_err(|e| SyncError::UntrustedCertificate(e.to_string()))?;
        let at = trust.now.min(window.valid_until_ms).max(window.valid_from_ms);
        bodies.push(verify_own(&state, trust.root, at)?);
    }
    let Some(current) = bodies.last() else {
        return Err(SyncError::UntrustedCertificate("no certificate".into()).into());
    };
    // A new role keeps the device's keys; a "certificate" with other keys is another
    // device's, whoever signed it.
    let keys = (current.device_id, current.signing_public, current.agreement_public.clone());
    if current.device_id != *author
        || bodies.iter().any(|b| (b.device_id, b.signing_public, b.agreement_public.clone()) != keys)
    {
        return Err(SyncError::UntrustedCertificate("certificate of another device".into()).into());
    }
    bodies.sort_by_key(|b| b.valid_from_ms);
    Ok(bodies)
}

impl Device {
    /// The verified certificates of a device, oldest first (the last is current): from this
    /// sync's fetches, the local cache, or (when neither has them, or `fresh` asks for the
    /// server's newest and this sync has not fetched them yet) wanted from the server.
    pub(super) fn author_certificates(
        &self,
        trust: Trust<'_>,
        author: &[u8; 16],
        judge: &mut Judge,
        fresh: bool,
    ) -> Result<Vec<DeviceBody>, CoreError> {
        let encoded = match judge.certificates.get(author) {
            Some(Fetched::Found(bytes)) => bytes.clone(),
            Some(Fetched::NotFound) => {
                return Err(SyncError::Server {
                    status: 404,
                    code: "unknown_device".into(),
                    message: format!("the server knows no device {}", hex(author)),
                }
                .into());
            }
            Some(Fetched::Failed(why)) => return Err(SyncError::Protocol(why.clone()).into()),
            None => match (fresh, self.store().certificate(author)?) {
                (false, Some(cached)) => cached,
                _ => {
                    judge.wanted_certificates.insert(*author);
                    return Err(SyncError::NotFetchedYet.into());
                }
            },
        };
        judge.verified(trust, author, &encoded)
    }

    /// The device's current certificate body.
    pub(super) fn author_certificate(
        &self,
        trust: Trust<'_>,
        author: &[u8; 16],
        judge: &mut Judge,
    ) -> Result<DeviceBody, CoreError> {
        let mut bodies = self.author_certificates(trust, author, judge, false)?;
        bodies.pop().ok_or_else(|| SyncError::UntrustedCertificate("no certificate".into()).into())
    }

    /// The policy of `version`, verified against the root: the one held, one kept or fetched
    /// earlier, or fetched now.
    fn policy_at(
        &self,
        trust: Trust<'_>,
        version: u32,
        newest: &Policy,
        judge: &mut Judge,
    ) -> Result<Policy, CoreError> {
        if newest.version == version {
            return Ok(newest.clone());
        }
        if let Some((policy, _)) = judge.policies.get(&version) {
            return Ok(policy.clone());
        }
        let (bytes, from_server) =
            match (self.store().sync_state(&policy_state(version))?, judge.policy_bytes.get(&version)) {
                (Some(bytes), _) => (bytes, false),
                (None, Some(Fetched::Found(bytes))) => (bytes.clone(), true),
                (None, Some(Fetched::NotFound)) => {
                    return Err(
                        SyncError::BadPolicy(format!("the server has no policy version {version}")).into()
                    );
                }
                (None, Some(Fetched::Failed(why))) => return Err(SyncError::Protocol(why.clone()).into()),
                (None, None) => {
                    judge.wanted_policies.insert(version);
                    return Err(SyncError::NotFetchedYet.into());
                }
            };
        let policy = SignedPolicy::from_bytes(&bytes)
            .and_then(|signed| signed.verify(trust.root))
            .map_err(|e| SyncError::BadPolicy(e.to_string()))?;
        if policy.version != version {
            return Err(
                SyncError::BadPolicy(format!("asked for version {version}, got {}", policy.version)).into()
            );
        }
        if from_server {
            judge.policies.insert(version, (policy.clone(), bytes));
        }
        Ok(policy)
    }

    /// The write rules of an epoch whose key this device took earlier.
    pub(super) fn stored_epoch_rules(
        &self,
        plan: PlanId,
        compartment: Compartment,
        epoch: u32,
    ) -> Result<Option<EpochRules>, CoreError> {
        self.store()
            .epoch_rules(plan, compartment, epoch)?
            .map(|bytes| from_cbor::<EpochRules>(&bytes, "epoch rules"))
            .transpose()
    }

    /// Whether `author` may write `compartment` in `epoch` of `plan` (module docs). `rules`
    /// are the epoch's write rules when this sync just received its key.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn may_write(
        &self,
        trust: Trust<'_>,
        judge: &mut Judge,
        author: &[u8; 16],
        plan: PlanId,
        compartment: Compartment,
        epoch: u32,
        rules: Option<EpochRules>,
        newest: &Policy,
    ) -> Result<bool, CoreError> {
        let rules = match rules {
            Some(rules) => Some(rules),
            None => self.stored_epoch_rules(plan, compartment, epoch)?,
        };
        let then = rules.map(|r| (r.policy_version, r.made_at_ms));
        let since = rules.map_or((0, i64::MAX), |r| (r.membership_seq, r.made_at_ms));
        let levels = self.levels_of(judge, plan, since)?;
        let allowed = self.allowed_by(trust, judge, author, then, newest, |policy, role| {
            levels.iter().any(|level| policy.may_write_at(role, compartment as u8, level))
        })?;
        Ok(allowed.is_some())
    }

    /// Whether the device that made a key (its commitment) may read the compartment: by its
    /// newest certificate under the newest policy, or by the certificate and policy in force
    /// when it made the key. A cached certificate that says no is fetched again once (the
    /// maker may have been given a role that reads it since).
    pub(super) fn may_have_made(
        &self,
        trust: Trust<'_>,
        judge: &mut Judge,
        minter: &[u8; 16],
        commitment: &Commitment,
        compartment: u8,
        newest: &Policy,
    ) -> Result<Option<DeviceBody>, CoreError> {
        let then = Some((commitment.policy_version, commitment.made_at_ms));
        let plan = commitment
            .document()
            .map(|d| PlanId::from_bytes(d.plan))
            .map_err(|e| SyncError::Protocol(e.to_string()))?;
        let levels = self.levels_of(judge, plan, (commitment.membership_seq, commitment.made_at_ms))?;
        self.allowed_by(trust, judge, minter, then, newest, |policy, role| {
            levels.iter().any(|level| policy.may_read_at(role, compartment, level))
        })
    }

    /// Every escalation level the plan was at since an epoch was made (at membership position
    /// `seq`, or, when its maker named none, at the position in force at `made_at_ms`): a
    /// write in that epoch was made at one of them, and is judged by its rules. A device with
    /// more of the chain judges by more levels, never fewer, so a write it took stays taken.
    fn levels_of(
        &self,
        judge: &mut Judge,
        plan: PlanId,
        (seq, made_at_ms): (u32, i64),
    ) -> Result<Vec<String>, CoreError> {
        Ok(match self.judged_roster(judge, plan)? {
            Some(roster) => {
                let seq = if seq == 0 { roster.seq_at_time(made_at_ms) } else { seq };
                roster.levels_since(seq)
            }
            None => vec![BASE_LEVEL.to_owned()],
        })
    }

    /// The plan's roster by its stored chain ([`Device::roster`]), read once per chain a sync
    /// sees.
    fn judged_roster(&self, judge: &mut Judge, plan: PlanId) -> Result<Option<Arc<Roster>>, CoreError> {
        let Some(bytes) = self.store().membership(plan)? else { return Ok(None) };
        let key = sha256(&bytes);
        if let Some(roster) = judge.memo.rosters.get(&key) {
            return Ok(Some(Arc::clone(roster)));
        }
        let roster = Arc::new(from_cbor::<HeldChain>(&bytes, "membership chain")?.roster);
        Memo::keep(&mut judge.memo.rosters, key, Arc::clone(&roster));
        Ok(Some(roster))
    }

    /// The one rule behind [`Device::may_write`] and [`Device::may_have_made`]: `permits`
    /// holds for the device's newest certificate under the newest policy, or for its
    /// certificate in force at `then`'s time under `then`'s policy version (none named: 0).
    /// Certificates come from the cache first; if they say no, they are fetched once more
    /// (the device may have a new role since). Returns the device's current certificate.
    fn allowed_by(
        &self,
        trust: Trust<'_>,
        judge: &mut Judge,
        device: &[u8; 16],
        then: Option<(u32, i64)>,
        newest: &Policy,
        permits: impl Fn(&Policy, &str) -> bool,
    ) -> Result<Option<DeviceBody>, CoreError> {
        for fresh in [false, true] {
            if fresh && judge.certificates.contains_key(device) {
                break;
            }
            let bodies = self.author_certificates(trust, device, judge, fresh)?;
            let Some(current) = bodies.last() else { break };
            if permits(newest, &current.role) {
                return Ok(Some(current.clone()));
            }
            if let Some((version, at)) = then.filter(|(version, _)| *version > 0) {
                let policy = self.policy_at(trust, version, newest, judge)?;
                if in_force(&bodies, at).is_some_and(|body| permits(&policy, &body.role)) {
                    return Ok(Some(current.clone()));
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(role: &str, from: i64) -> DeviceBody {
        DeviceBody {
            device_id: [1; 16],
            user_id: 1,
            user_name: "Gert".into(),
            organisation: "Politie".into(),
            role: role.into(),
            signing_public: [2; 32],
            agreement_public: vec![3],
            valid_from_ms: from,
            valid_until_ms: from + 1_000,
            issuer: [4; 32],
        }
    }

    /// A root, an administrator it certified, and one device's chain as the cache keeps it
    /// (signed by `signer`, which is the administrator unless a forger's key is given).
    fn chains(signer: Option<&ed25519_dalek::SigningKey>) -> ([u8; 32], [u8; 16], Vec<u8>) {
        use ed25519_dalek::SigningKey;
        use eenplan_protocol::certificate::{AdminBody, device_id_of};
        let root = SigningKey::from_bytes(&[7; 32]);
        let admin = SigningKey::from_bytes(&[8; 32]);
        let device = SigningKey::from_bytes(&[9; 32]);
        let admin_body = AdminBody {
            admin_public: admin.verifying_key().to_bytes(),
            name: "beheer".into(),
            issued_at_ms: 0,
            organisation: None,
        };
        let admin_certificate = Certificate::sign_admin(&admin_body, &root).to_bytes();
        let signing_public = device.verifying_key().to_bytes();
        let body = DeviceBody {
            device_id: device_id_of(&signing_public),
            signing_public,
            issuer: admin.verifying_key().to_bytes(),
            ..body("wijkteam", 0)
        };
        let certificate = Certificate::sign_device(&body, signer.unwrap_or(&admin)).to_bytes();
        let state = CertificateState { certificate, admin_certificate, lease_hours: 72 };
        (root.verifying_key().to_bytes(), body.device_id, cbor(&AuthorChains { chains: vec![state] }))
    }

    #[test]
    fn a_chain_verified_earlier_in_a_sync_vouches_for_those_bytes_only() {
        let (root, author, good) = chains(None);
        let forger = ed25519_dalek::SigningKey::from_bytes(&[6; 32]);
        let (_, _, forged) = chains(Some(&forger));
        let trust = Trust { root: &root, now: 500 };
        let mut judge = Judge::default();
        let bodies = judge.verified(trust, &author, &good).unwrap();
        assert_eq!(bodies.last().map(|b| b.device_id), Some(author));
        // The same author and moment, other bytes: verified on their own, and refused.
        assert!(judge.verified(trust, &author, &forged).is_err());
        // Known bytes stay good, under the same root only.
        assert!(judge.verified(trust, &author, &good).is_ok());
        let other_root = [1; 32];
        assert!(judge.verified(Trust { root: &other_root, now: 500 }, &author, &good).is_err());
    }

    #[test]
    fn the_certificate_in_force_is_the_newest_that_had_started_or_else_the_first() {
        let bodies = [body("politie", 100), body("ggz", 200)];
        assert_eq!(in_force(&bodies, 150).map(|b| b.role.as_str()), Some("politie"));
        assert_eq!(in_force(&bodies, 200).map(|b| b.role.as_str()), Some("ggz"));
        assert_eq!(in_force(&bodies, 50).map(|b| b.role.as_str()), Some("politie"));
        assert!(in_force(&[], 50).is_none());
    }
}
