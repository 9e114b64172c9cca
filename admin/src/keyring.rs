//! The administrator's keyring: the secrets that make someone the network's administrator,
//! and what it has learnt that no server may take back.
//!
//! It holds the administrator's own Ed25519 key and its root-signed certificate, the network's
//! public keys (root, escrow and the root's signature on escrow), the server's URL, the
//! enrolment codes this keyring issued (so that `device approve` can check that a pending
//! device knew a code, and knows whose device the code enrolled), and its **trust record**:
//! every device it revoked or saw revoked on a verified list, the newest revocation-list
//! version and the newest policy versions it signed or verified. A server that lists a
//! revoked device again, or hands out an older list or policy, is refused.
//!
//! The network **root** signing key (which certifies administrators and signs the sharing
//! policy) and the **escrow** secret (every epoch key is also sealed to it, so plans survive
//! the loss of all their devices) are in this keyring too, unless `init --offline-keyring`
//! put them in a separate file (`offline.rs`) that daily administration does without. None
//! of the secrets ever goes to the server: it gets public halves, certificates and enrolment
//! code ids only.
//!
//! File format: `keyring.eenplan` in the data directory, a sealed container (`sealed.rs`,
//! magic `EPADMKR1`) holding CBOR [`Stored`]. Format 1 (before the trust record and the
//! offline split) is read and written back as format 2.

mod file;
pub mod offline;
pub mod request;
mod sealed;

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey};
use eenplan_core::crypto;
use eenplan_core::keystore::KeyStore;
use eenplan_protocol::api::escrow_message;
use eenplan_protocol::certificate::{AdminBody, Certificate};
use eenplan_protocol::revocation::{RevocationError, RevocationList, RevokedDevice};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use self::offline::OfflineKeys;
use self::sealed::{Kind, SealedFile};
use crate::passphrase::Cost;

/// The keyring's file name inside the data directory.
pub const FILE_NAME: &str = "keyring.eenplan";
const KIND: Kind =
    Kind { magic: b"EPADMKR1", aad_label: b"eenplan/admin-keyring/v1", name: "not an eenplan-admin keyring" };
/// 2: the trust record, the root's public key, secrets that may be elsewhere, the first
/// policy. 1 is still read.
const FORMAT_VERSION: u32 = 2;
/// Issued codes are kept this long after they expire: a device that claimed a code just before
/// it expired can still be approved by that code the next days.
const CODE_RETENTION_MS: i64 = 30 * 24 * 60 * 60 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("no keyring in {}: run `eenplan-admin init` first", .0.display())]
    Missing(PathBuf),
    #[error("{} already holds a keyring", .0.display())]
    Exists(PathBuf),
    #[error("no offline keyring at {}", .0.display())]
    OfflineMissing(PathBuf),
    #[error("that offline keyring holds the keys of another network (its root or escrow key differs)")]
    OfflineMismatch,
    /// Also what a tampered wrapped key looks like: the two cannot be told apart.
    #[error("the passphrase does not unlock this keyring")]
    WrongPassphrase,
    #[error("the keyring is damaged or was altered: {0}")]
    Damaged(&'static str),
    #[error("the keyring was written by a newer eenplan-admin (format {0})")]
    UnsupportedVersion(u32),
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl KeyringError {
    fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> KeyringError {
        let path = path.to_path_buf();
        move |source| KeyringError::Io { action, path, source }
    }
}

/// 32 secret bytes from a stored field.
fn secret32(bytes: &[u8], what: &'static str) -> Result<Zeroizing<[u8; 32]>, KeyringError> {
    let mut out = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        return Err(KeyringError::Damaged(what));
    }
    out.copy_from_slice(bytes);
    Ok(out)
}

/// An enrolment code this keyring issued, and the user it was issued to. The code itself (its
/// secret `r`) is not kept: its id recognises it when it is read back, and its MAC key checks
/// the MAC a pending device sent over its keys (see `eenplan_protocol::api`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCode {
    /// `EnrolmentCode::id`, as registered with the server.
    pub code_id: [u8; 32],
    /// `EnrolmentCode::mac_key`: only this keyring and the enrolling device know it.
    pub mac_key: [u8; 32],
    pub user_id: i64,
    pub user_name: String,
    /// The user's organisation and role as they were when the code was issued: what the
    /// certificate says, whatever the server lists later.
    pub org: String,
    pub role: String,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
}

impl std::fmt::Debug for IssuedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCode")
            .field("code_id", &eenplan_protocol::api::hex(&self.code_id))
            .field("user_id", &self.user_id)
            .field("user_name", &self.user_name)
            .field("org", &self.org)
            .field("role", &self.role)
            .field("issued_at_ms", &self.issued_at_ms)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

/// A revoked device as this keyring knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedRecord {
    pub entry: RevokedDevice,
    /// The first verified list version that names it; 0 while this keyring revoked it and no
    /// list at the server names it yet (it is uploaded before anything else is done).
    pub listed_in: u32,
}

/// An organisation's audit key: its devices seal their access-log events to the public half;
/// the secret stays here (never on the server), with the privacy officer or administrator
/// who holds this keyring.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSecret {
    pub org: String,
    pub version: u32,
    #[serde(with = "eenplan_protocol::bytes")]
    pub secret: Vec<u8>,
    #[serde(with = "eenplan_protocol::bytes")]
    pub public: Vec<u8>,
}

impl AuditSecret {
    /// The X-Wing secret, if it is one.
    pub fn secret32(&self) -> Option<[u8; 32]> {
        self.secret.as_slice().try_into().ok()
    }
}

impl Drop for AuditSecret {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl std::fmt::Debug for AuditSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSecret")
            .field("org", &self.org)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Where a chain of the access log stood when this keyring last verified it: a server that
/// later serves less (drops a device's newest uploads, rewrites its own chain) is caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainPin {
    /// The device (zeroes: the server's own chain).
    pub writer: [u8; 16],
    pub seq: u64,
    pub hash: [u8; 32],
}

/// What this keyring has seen and will not be talked out of by a server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trust {
    /// Every device revoked by this keyring or on a list it verified.
    #[serde(default)]
    pub revoked: Vec<RevokedRecord>,
    /// The newest revocation-list version verified (from the server, or after uploading it).
    #[serde(default)]
    pub revocations_version: u32,
    /// The newest policy version this keyring signed and the server took.
    #[serde(default)]
    pub policy_signed: u32,
    /// The newest policy version this keyring verified from the server.
    #[serde(default)]
    pub policy_seen: u32,
}

impl Trust {
    /// This keyring's record of `device`, if it was revoked.
    pub fn revoked(&self, device: &[u8; 16]) -> Option<&RevokedRecord> {
        self.revoked.iter().find(|r| &r.entry.device.0 == device)
    }

    /// The record of `entry`'s device under `entry`'s organisation.
    fn record_of(&self, entry: &RevokedDevice) -> Option<&RevokedRecord> {
        self.revoked
            .iter()
            .find(|r| r.entry.device == entry.device && r.entry.organisation == entry.organisation)
    }

    /// The oldest policy version this keyring accepts from the server.
    pub fn policy_floor(&self) -> u32 {
        self.policy_signed.max(self.policy_seen)
    }

    /// Records a revocation this keyring makes, before anyone else hears of it; a device
    /// revoked before keeps its first record.
    pub fn record(&mut self, entry: RevokedDevice) {
        if self.record_of(&entry).is_none() {
            self.revoked.push(RevokedRecord { entry, listed_in: 0 });
        }
    }

    /// Takes in the server's newest verified list: refused if it is older than one already
    /// seen or drops a revocation a list already confirmed; otherwise its entries are
    /// learnt. Returns the revocations this keyring made that the list still lacks, which
    /// must go into the next version.
    pub fn reconcile(&mut self, server: &RevocationList) -> Result<Vec<RevokedDevice>, RevocationError> {
        if server.version < self.revocations_version {
            return Err(RevocationError::RolledBack {
                held: self.revocations_version,
                given: server.version,
            });
        }
        for record in self.revoked.iter().filter(|r| r.listed_in > 0) {
            if server.entry_of(&record.entry.device.0, &record.entry.organisation) != Some(&record.entry) {
                return Err(RevocationError::NotAppendOnly {
                    held: record.listed_in,
                    given: server.version,
                    device: eenplan_protocol::api::hex(&record.entry.device.0),
                });
            }
        }
        self.learn(server);
        Ok(self.revoked.iter().filter(|r| r.listed_in == 0).map(|r| r.entry.clone()).collect())
    }

    /// Takes every entry of a verified `list` (one the server holds) as confirmed.
    pub fn learn(&mut self, list: &RevocationList) {
        for entry in &list.entries {
            // Per device and organisation: an entry another organisation's administrator
            // wrote for the device revokes nothing on devices, so it never stands in for
            // this keyring's own.
            match self
                .revoked
                .iter_mut()
                .find(|r| r.entry.device == entry.device && r.entry.organisation == entry.organisation)
            {
                // Another administrator's earlier revocation of the same device under the
                // same organisation wins: it is what every device reads.
                Some(record) if record.listed_in == 0 => {
                    *record = RevokedRecord { entry: entry.clone(), listed_in: list.version }
                }
                Some(_) => {}
                None => self.revoked.push(RevokedRecord { entry: entry.clone(), listed_in: list.version }),
            }
        }
        self.revocations_version = self.revocations_version.max(list.version);
    }
}

/// The unlocked daily keyring.
pub struct Keyring {
    pub server: String,
    /// Whether the server confirmed `init`. A keyring is written before the server learns the
    /// network, so that a crash in between never loses the root key; until then, `init` may be
    /// repeated with the same keys.
    pub registered: bool,
    pub root_public: [u8; 32],
    pub escrow_public: Vec<u8>,
    /// Ed25519(root, escrow_message(escrow_public)).
    pub escrow_signature: [u8; 64],
    pub admin_name: String,
    pub admin: SigningKey,
    pub admin_certificate: Certificate,
    pub issued_codes: Vec<IssuedCode>,
    /// The network's first sharing policy, signed by the root at `init`, so that an
    /// interrupted `init` can be finished without the offline keyring.
    pub initial_policy: Vec<u8>,
    pub trust: Trust,
    /// The root and escrow secrets, when this keyring keeps them itself (no offline keyring).
    pub offline: Option<OfflineKeys>,
    /// Every audit key this keyring made, per organisation and version.
    pub audit_keys: Vec<AuditSecret>,
    /// The key the server signs its own access log with, pinned at first use.
    pub server_audit_key: Option<[u8; 32]>,
    /// The newest verified position of each chain of the access log.
    pub audit_pins: Vec<ChainPin>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("server", &self.server)
            .field("registered", &self.registered)
            .field("root_fingerprint", &self.root_fingerprint())
            .field("admin_name", &self.admin_name)
            .field("issued_codes", &self.issued_codes.len())
            .field("holds_offline_keys", &self.offline.is_some())
            .finish_non_exhaustive()
    }
}

fn new_signing_key() -> SigningKey {
    let seed = Zeroizing::new(crypto::random_array::<32>());
    SigningKey::from_bytes(&seed)
}

/// The hex of the first 8 bytes of SHA-256 of a root public key: what people compare out of
/// band to know they talk about the same network.
pub fn fingerprint(root_public: &[u8; 32]) -> String {
    eenplan_protocol::api::hex(&Sha256::digest(root_public)[..8])
}

impl Keyring {
    /// Fresh keys for a new network: root, escrow and this administrator, with the
    /// administrator's certificate and the escrow key signed by the root. The root and
    /// escrow secrets are in [`Keyring::offline`] until the caller moves them elsewhere.
    pub fn generate(server: String, admin_name: String, now_ms: i64) -> Keyring {
        let root = new_signing_key();
        let admin = new_signing_key();
        let (escrow_secret, escrow_public) = eenplan_protocol::envelope::generate_keypair();
        let escrow_signature = root.sign(&escrow_message(&escrow_public)).to_bytes();
        let admin_certificate = Certificate::sign_admin(
            &AdminBody {
                admin_public: admin.verifying_key().to_bytes(),
                name: admin_name.clone(),
                issued_at_ms: now_ms,
                organisation: None,
            },
            &root,
        );
        Keyring {
            server,
            registered: false,
            root_public: root.verifying_key().to_bytes(),
            escrow_public,
            escrow_signature,
            admin_name,
            admin,
            admin_certificate,
            issued_codes: Vec::new(),
            initial_policy: Vec::new(),
            trust: Trust::default(),
            offline: Some(OfflineKeys { root, escrow_secret }),
            audit_keys: Vec::new(),
            server_audit_key: None,
            audit_pins: Vec::new(),
        }
    }

    /// The keyring of an administrator the root certified (`admin accept`): the key made by
    /// `admin request`, the certificate and network keys from the grant. Refused unless the
    /// certificate names this very key and the root signed it and the escrow key.
    pub fn from_grant(
        pending: request::PendingAdmin,
        certificate: Certificate,
        root_public: [u8; 32],
        escrow_public: Vec<u8>,
        escrow_signature: [u8; 64],
    ) -> Result<Keyring, KeyringError> {
        let keyring = Keyring {
            server: pending.server,
            registered: true,
            root_public,
            escrow_public,
            escrow_signature,
            admin_name: pending.name,
            admin: pending.admin,
            admin_certificate: certificate,
            issued_codes: Vec::new(),
            initial_policy: Vec::new(),
            trust: Trust::default(),
            offline: None,
            audit_keys: Vec::new(),
            server_audit_key: None,
            audit_pins: Vec::new(),
        };
        keyring.check()?;
        Ok(keyring)
    }

    pub fn root_public(&self) -> [u8; 32] {
        self.root_public
    }

    pub fn admin_public(&self) -> [u8; 32] {
        self.admin.verifying_key().to_bytes()
    }

    pub fn root_fingerprint(&self) -> String {
        fingerprint(&self.root_public)
    }

    /// Drops codes that expired long ago, so the keyring does not grow without bound.
    pub fn prune_codes(&mut self, now_ms: i64) {
        self.issued_codes.retain(|c| c.expires_at_ms.saturating_add(CODE_RETENTION_MS) > now_ms);
    }

    /// Whether `keys` (an offline keyring's) are this network's root and escrow keys.
    pub fn check_offline(&self, keys: &OfflineKeys, escrow_public: &[u8]) -> Result<(), KeyringError> {
        if keys.root_public() != self.root_public || escrow_public != self.escrow_public.as_slice() {
            return Err(KeyringError::OfflineMismatch);
        }
        Ok(())
    }

    /// Refuses contents whose parts do not belong together: a keyring edited by someone with
    /// the passphrase, or a bug, must not produce certificates the network will refuse.
    fn check(&self) -> Result<(), KeyringError> {
        let body = self
            .admin_certificate
            .verify_admin(&self.root_public)
            .map_err(|_| KeyringError::Damaged("the administrator certificate is not signed by the root"))?;
        if body.admin_public != self.admin_public() {
            return Err(KeyringError::Damaged("the administrator certificate names another key"));
        }
        ed25519_dalek::VerifyingKey::from_bytes(&self.root_public)
            .and_then(|root| {
                root.verify_strict(
                    &escrow_message(&self.escrow_public),
                    &Signature::from_bytes(&self.escrow_signature),
                )
            })
            .map_err(|_| KeyringError::Damaged("the escrow key is not signed by the root"))?;
        if let Some(keys) = &self.offline {
            if keys.root_public() != self.root_public {
                return Err(KeyringError::Damaged("the root secret does not belong to the root public key"));
            }
            if !keys.escrow_matches(&self.escrow_public) {
                return Err(KeyringError::Damaged(
                    "the escrow secret does not belong to the escrow public key",
                ));
            }
        }
        Ok(())
    }

    fn to_stored(&self) -> Stored {
        Stored {
            version: FORMAT_VERSION,
            server: self.server.clone(),
            registered: self.registered,
            root_public: self.root_public.to_vec(),
            root_secret: self.offline.as_ref().map(|k| k.root.to_bytes().to_vec()).unwrap_or_default(),
            escrow_secret: self.offline.as_ref().map(|k| k.escrow_secret.to_vec()).unwrap_or_default(),
            escrow_public: self.escrow_public.clone(),
            escrow_signature: self.escrow_signature.to_vec(),
            admin_name: self.admin_name.clone(),
            admin_secret: self.admin.to_bytes().to_vec(),
            admin_certificate: self.admin_certificate.to_bytes(),
            enrolment_codes: self.issued_codes.clone(),
            initial_policy: self.initial_policy.clone(),
            trust: self.trust.clone(),
            audit_keys: self.audit_keys.clone(),
            server_audit_key: self.server_audit_key.map(|k| k.to_vec()).unwrap_or_default(),
            audit_pins: self.audit_pins.clone(),
        }
    }

    fn from_stored(stored: &Stored) -> Result<Keyring, KeyringError> {
        if stored.version == 0 || stored.version > FORMAT_VERSION {
            return Err(KeyringError::UnsupportedVersion(stored.version));
        }
        let offline = match (stored.root_secret.is_empty(), stored.escrow_secret.is_empty()) {
            (true, true) => None,
            (false, false) => Some(OfflineKeys {
                root: SigningKey::from_bytes(&*secret32(&stored.root_secret, "root key length")?),
                escrow_secret: secret32(&stored.escrow_secret, "escrow key length")?,
            }),
            _ => return Err(KeyringError::Damaged("the root and escrow secrets are kept apart")),
        };
        let root_public: [u8; 32] = match (stored.root_public.as_slice(), &offline) {
            // Format 1 kept the root secret only.
            ([], Some(keys)) => keys.root_public(),
            (bytes, _) => bytes.try_into().map_err(|_| KeyringError::Damaged("root public key length"))?,
        };
        let keyring = Keyring {
            server: stored.server.clone(),
            registered: stored.registered,
            root_public,
            escrow_public: stored.escrow_public.clone(),
            escrow_signature: stored
                .escrow_signature
                .as_slice()
                .try_into()
                .map_err(|_| KeyringError::Damaged("escrow signature length"))?,
            admin_name: stored.admin_name.clone(),
            admin: SigningKey::from_bytes(&*secret32(&stored.admin_secret, "administrator key length")?),
            admin_certificate: Certificate::from_bytes(&stored.admin_certificate)
                .map_err(|_| KeyringError::Damaged("administrator certificate"))?,
            issued_codes: stored.enrolment_codes.clone(),
            initial_policy: stored.initial_policy.clone(),
            trust: stored.trust.clone(),
            offline,
            audit_keys: stored.audit_keys.clone(),
            server_audit_key: match stored.server_audit_key.as_slice() {
                [] => None,
                bytes => {
                    Some(bytes.try_into().map_err(|_| KeyringError::Damaged("server audit key length"))?)
                }
            },
            audit_pins: stored.audit_pins.clone(),
        };
        keyring.check()?;
        Ok(keyring)
    }

    fn encode(&self) -> Result<Zeroizing<Vec<u8>>, KeyringError> {
        let mut plain = Zeroizing::new(Vec::new());
        ciborium::into_writer(&self.to_stored(), &mut *plain)
            .map_err(|_| KeyringError::Damaged("cannot encode"))?;
        Ok(plain)
    }
}

/// The CBOR form. Byte fields are CBOR byte strings; the secret ones are wiped on drop.
#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    server: String,
    registered: bool,
    /// Absent in format 1 (derived from the root secret).
    #[serde(default, with = "eenplan_protocol::bytes")]
    root_public: Vec<u8>,
    /// Empty when the root is in an offline keyring.
    #[serde(default, with = "eenplan_protocol::bytes")]
    root_secret: Vec<u8>,
    /// Empty when escrow is in an offline keyring.
    #[serde(default, with = "eenplan_protocol::bytes")]
    escrow_secret: Vec<u8>,
    #[serde(with = "eenplan_protocol::bytes")]
    escrow_public: Vec<u8>,
    #[serde(with = "eenplan_protocol::bytes")]
    escrow_signature: Vec<u8>,
    admin_name: String,
    #[serde(with = "eenplan_protocol::bytes")]
    admin_secret: Vec<u8>,
    #[serde(with = "eenplan_protocol::bytes")]
    admin_certificate: Vec<u8>,
    /// Under a new name since codes carry a MAC key: the `issued_codes` of older keyrings
    /// (hashes of codes the server no longer accepts) are ignored when read.
    #[serde(default)]
    enrolment_codes: Vec<IssuedCode>,
    #[serde(default, with = "eenplan_protocol::bytes")]
    initial_policy: Vec<u8>,
    #[serde(default)]
    trust: Trust,
    #[serde(default)]
    audit_keys: Vec<AuditSecret>,
    #[serde(default, with = "eenplan_protocol::bytes")]
    server_audit_key: Vec<u8>,
    #[serde(default)]
    audit_pins: Vec<ChainPin>,
}

impl Drop for Stored {
    fn drop(&mut self) {
        self.root_secret.zeroize();
        self.escrow_secret.zeroize();
        self.admin_secret.zeroize();
    }
}

/// An open daily keyring file, locked until dropped (so that a second `eenplan-admin` cannot
/// write it at the same time and lose one of the two updates, for example an issued code).
#[derive(Debug)]
pub struct KeyringFile {
    sealed: SealedFile,
}

pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Whether `dir` holds a keyring (checked before asking for a passphrase).
pub fn exists(dir: &Path) -> bool {
    path_in(dir).exists()
}

impl KeyringFile {
    /// Writes a new keyring into `dir` (created, mode 0700, if needed) under a fresh data key
    /// wrapped by `keystore`. Refuses to replace an existing keyring: that would destroy a
    /// network's keys.
    pub fn create(
        dir: &Path,
        keyring: &Keyring,
        keystore: &dyn KeyStore,
    ) -> Result<KeyringFile, KeyringError> {
        file::create_private_dir(dir).map_err(KeyringError::io("cannot create", dir))?;
        let lock = file::lock(dir)?;
        let path = path_in(dir);
        if path.exists() {
            return Err(KeyringError::Exists(dir.to_path_buf()));
        }
        let sealed = SealedFile::create(path, KIND, lock, keystore, &keyring.encode()?)?;
        Ok(KeyringFile { sealed })
    }

    /// Opens the keyring in `dir` with `keystore`, holding its lock until dropped.
    pub fn open(dir: &Path, keystore: &dyn KeyStore) -> Result<(KeyringFile, Keyring), KeyringError> {
        let path = path_in(dir);
        if !path.exists() {
            return Err(KeyringError::Missing(dir.to_path_buf()));
        }
        let lock = file::lock(dir)?;
        let (sealed, plain) = SealedFile::open(&path, KIND, lock, keystore)?;
        let stored: Stored = ciborium::from_reader(plain.as_slice())
            .map_err(|_| KeyringError::Damaged("the contents do not decode"))?;
        let keyring = Keyring::from_stored(&stored)?;
        Ok((KeyringFile { sealed }, keyring))
    }

    /// Replaces the file atomically with `keyring`'s contents.
    pub fn save(&self, keyring: &Keyring) -> Result<(), KeyringError> {
        self.sealed.save(&keyring.encode()?)
    }

    /// Wraps the data key again when it was wrapped below `cost` (a keyring from before the
    /// current Argon2 cost), with the passphrase `keystore` just proved; `Ok(true)` when it
    /// did. Also writes the contents in the current format.
    pub fn upgrade_kdf(
        &mut self,
        keyring: &Keyring,
        keystore: &dyn KeyStore,
        cost: Cost,
    ) -> Result<bool, KeyringError> {
        if !cost.upgrades(self.sealed.kdf_params()?) {
            return Ok(false);
        }
        self.sealed.rewrap(keystore, &keyring.encode()?)?;
        Ok(true)
    }

    #[cfg(test)]
    fn kdf_params(&self) -> eenplan_core::keystore::KdfParams {
        self.sealed.kdf_params().unwrap_or(eenplan_core::keystore::KdfParams::INSECURE_FAST_FOR_TESTS)
    }
}

#[cfg(test)]
mod tests {
    use eenplan_core::keystore::{KdfParams, PassphraseKeyStore};
    use eenplan_protocol::envelope;
    use eenplan_protocol::wipe::RevocationReason;

    use super::offline::OfflineKeyringFile;
    use super::*;

    fn keystore(passphrase: &str) -> PassphraseKeyStore {
        PassphraseKeyStore::with_params(passphrase, KdfParams::INSECURE_FAST_FOR_TESTS)
    }

    fn sample() -> Keyring {
        let mut keyring = Keyring::generate("https://eenplan.example".into(), "Beheer".into(), 1_000);
        keyring.issued_codes.push(IssuedCode {
            code_id: [7; 32],
            mac_key: [8; 32],
            user_id: 3,
            user_name: "Fatima".into(),
            org: "Wijkteam Noord".into(),
            role: "wijkteam".into(),
            issued_at_ms: 1_000,
            expires_at_ms: 2_000,
        });
        keyring
    }

    #[test]
    fn a_keyring_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = sample();
        drop(KeyringFile::create(dir.path(), &keyring, &keystore("geheim")).unwrap());
        let (file, opened) = KeyringFile::open(dir.path(), &keystore("geheim")).unwrap();
        assert_eq!(opened.server, keyring.server);
        assert!(!opened.registered);
        let (keys, opened_keys) = (keyring.offline.as_ref().unwrap(), opened.offline.as_ref().unwrap());
        assert_eq!(opened_keys.root.to_bytes(), keys.root.to_bytes());
        assert_eq!(opened.admin.to_bytes(), keyring.admin.to_bytes());
        assert_eq!(*opened_keys.escrow_secret, *keys.escrow_secret);
        assert_eq!(opened.root_public, keyring.root_public);
        assert_eq!(opened.trust, keyring.trust);
        assert_eq!(opened.escrow_public, keyring.escrow_public);
        assert_eq!(opened.admin_certificate, keyring.admin_certificate);
        assert_eq!(opened.issued_codes, keyring.issued_codes);
        assert_eq!(opened.root_fingerprint(), keyring.root_fingerprint());

        // Saving again (as `device enrol` does) keeps it readable and keeps the changes.
        let mut changed = opened;
        changed.registered = true;
        let entry = RevokedDevice::sign([4; 16], 9, RevocationReason::Lost, "Wijkteam Noord", &changed.admin);
        changed.trust.record(entry);
        changed.trust.policy_signed = 3;
        file.save(&changed).unwrap();
        drop(file);
        let (_, reopened) = KeyringFile::open(dir.path(), &keystore("geheim")).unwrap();
        assert!(reopened.registered);
        assert_eq!(reopened.trust.revoked(&[4; 16]).map(|r| r.listed_in), Some(0));
        assert_eq!(reopened.trust.policy_floor(), 3);
    }

    #[test]
    fn audit_secrets_the_pinned_server_key_and_chain_pins_survive_the_file_and_stay_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let mut keyring = sample();
        keyring.audit_keys.push(AuditSecret {
            org: "Wijkteam Noord".into(),
            version: 2,
            secret: vec![0xA7; 32],
            public: vec![3; 1216],
        });
        keyring.server_audit_key = Some([4; 32]);
        keyring.audit_pins.push(ChainPin { writer: [5; 16], seq: 41, hash: [6; 32] });
        drop(KeyringFile::create(dir.path(), &keyring, &keystore("geheim")).unwrap());
        let (_, opened) = KeyringFile::open(dir.path(), &keystore("geheim")).unwrap();
        assert_eq!(opened.audit_keys, keyring.audit_keys);
        assert_eq!(opened.audit_keys[0].secret32(), Some([0xA7; 32]));
        assert_eq!(opened.server_audit_key, Some([4; 32]));
        assert_eq!(opened.audit_pins, keyring.audit_pins);
        let bytes = std::fs::read(path_in(dir.path())).unwrap();
        assert!(!bytes.windows(32).any(|w| w == [0xA7; 32]), "the audit secret is sealed");
    }

    #[test]
    fn a_new_keyring_has_a_hybrid_escrow_key_that_survives_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = sample();
        let secret = &keyring.offline.as_ref().unwrap().escrow_secret;
        assert_eq!(keyring.escrow_public.len(), envelope::XWING_PUBLIC_LEN);
        assert_eq!(envelope::public_key_of(secret).unwrap(), keyring.escrow_public);
        drop(KeyringFile::create(dir.path(), &keyring, &keystore("geheim")).unwrap());
        let (_, opened) = KeyringFile::open(dir.path(), &keystore("geheim")).unwrap();
        let document = eenplan_protocol::DocumentId::new([1; 16], 2).unwrap();
        let sealed = envelope::seal(&keyring.escrow_public, [0; 16], document, 3, &[9; 32]).unwrap();
        assert_eq!(envelope::suite_of(&sealed).unwrap(), envelope::SUITE_XWING_CHACHA);
        let opened_secret = &opened.offline.as_ref().unwrap().escrow_secret;
        assert_eq!(*envelope::open(&sealed, opened_secret, [0; 16], document, 3).unwrap(), [9; 32]);
    }

    #[test]
    fn an_escrow_secret_that_does_not_match_its_public_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut keyring = sample();
        keyring.offline.as_mut().unwrap().escrow_secret = envelope::generate_keypair().0;
        drop(KeyringFile::create(dir.path(), &keyring, &keystore("geheim")).unwrap());
        assert!(matches!(KeyringFile::open(dir.path(), &keystore("geheim")), Err(KeyringError::Damaged(_))));
    }

    #[test]
    fn the_escrow_key_works_as_an_envelope_recipient() {
        let keyring = sample();
        let document = eenplan_protocol::DocumentId::new([1; 16], 0).unwrap();
        let sealed = envelope::seal(&keyring.escrow_public, [0; 16], document, 1, &[9; 32]).unwrap();
        let secret = &keyring.offline.as_ref().unwrap().escrow_secret;
        let opened = envelope::open(&sealed, secret, [0; 16], document, 1).unwrap();
        assert_eq!(*opened, [9; 32]);
    }

    #[test]
    fn the_root_fingerprint_is_sixteen_hex_characters_of_the_root_key_hash() {
        let keyring = sample();
        let fingerprint = keyring.root_fingerprint();
        assert_eq!(fingerprint.len(), 16);
        assert_eq!(fingerprint, eenplan_protocol::api::hex(&Sha256::digest(keyring.root_public())[..8]));
    }

    #[test]
    fn a_wrong_passphrase_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        drop(KeyringFile::create(dir.path(), &sample(), &keystore("geheim")).unwrap());
        assert!(matches!(
            KeyringFile::open(dir.path(), &keystore("fout")),
            Err(KeyringError::WrongPassphrase)
        ));
    }

    #[test]
    fn a_tampered_file_is_a_typed_error_never_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        drop(KeyringFile::create(dir.path(), &sample(), &keystore("geheim")).unwrap());
        let path = path_in(dir.path());
        let original = std::fs::read(&path).unwrap();

        let mut flipped = original.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(matches!(KeyringFile::open(dir.path(), &keystore("geheim")), Err(KeyringError::Damaged(_))));

        let mut magic = original.clone();
        magic[0] = b'X';
        std::fs::write(&path, &magic).unwrap();
        assert!(matches!(KeyringFile::open(dir.path(), &keystore("geheim")), Err(KeyringError::Damaged(_))));

        for len in [0, 5, 12, 40, original.len() - 1] {
            std::fs::write(&path, &original[..len]).unwrap();
            assert!(KeyringFile::open(dir.path(), &keystore("geheim")).is_err(), "truncated to {len}");
        }
    }

    #[test]
    fn contents_whose_parts_do_not_belong_together_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut keyring = sample();
        keyring.admin = new_signing_key();
        drop(KeyringFile::create(dir.path(), &keyring, &keystore("geheim")).unwrap());
        assert!(matches!(KeyringFile::open(dir.path(), &keystore("geheim")), Err(KeyringError::Damaged(_))));
    }

    #[test]
    fn an_existing_keyring_is_never_replaced_and_a_missing_one_says_so() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(KeyringFile::open(dir.path(), &keystore("geheim")), Err(KeyringError::Missing(_))));
        drop(KeyringFile::create(dir.path(), &sample(), &keystore("geheim")).unwrap());
        assert!(matches!(
            KeyringFile::create(dir.path(), &sample(), &keystore("geheim")),
            Err(KeyringError::Exists(_))
        ));
    }

    #[test]
    fn writing_is_atomic_private_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("admin");
        let (file, keyring) = {
            drop(KeyringFile::create(&data, &sample(), &keystore("geheim")).unwrap());
            KeyringFile::open(&data, &keystore("geheim")).unwrap()
        };
        file.save(&keyring).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec![FILE_NAME.to_string(), file::LOCK_NAME.to_string()]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path_in(&data)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = std::fs::metadata(&data).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }

    #[test]
    fn the_file_holds_no_secret_in_the_clear() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = sample();
        drop(KeyringFile::create(dir.path(), &keyring, &keystore("geheim")).unwrap());
        let bytes = std::fs::read(path_in(dir.path())).unwrap();
        let keys = keyring.offline.as_ref().unwrap();
        for secret in [
            &keys.root.to_bytes()[..],
            &keyring.admin.to_bytes()[..],
            &keys.escrow_secret[..],
            &keyring.issued_codes[0].mac_key[..],
        ] {
            assert!(!bytes.windows(32).any(|w| w == secret));
        }
        assert!(!bytes.windows(6).any(|w| w == b"Fatima"));
    }

    #[test]
    fn old_expired_codes_are_pruned_recent_ones_kept() {
        let mut keyring = sample();
        keyring.prune_codes(2_000 + CODE_RETENTION_MS - 1);
        assert_eq!(keyring.issued_codes.len(), 1);
        keyring.prune_codes(2_000 + CODE_RETENTION_MS);
        assert!(keyring.issued_codes.is_empty());
    }

    #[test]
    fn a_keyring_of_format_1_opens_and_is_written_back_in_format_2() {
        #[derive(Serialize)]
        struct Format1 {
            version: u32,
            server: String,
            registered: bool,
            #[serde(with = "eenplan_protocol::bytes")]
            root_secret: Vec<u8>,
            #[serde(with = "eenplan_protocol::bytes")]
            escrow_secret: Vec<u8>,
            #[serde(with = "eenplan_protocol::bytes")]
            escrow_public: Vec<u8>,
            #[serde(with = "eenplan_protocol::bytes")]
            escrow_signature: Vec<u8>,
            admin_name: String,
            #[serde(with = "eenplan_protocol::bytes")]
            admin_secret: Vec<u8>,
            #[serde(with = "eenplan_protocol::bytes")]
            admin_certificate: Vec<u8>,
            enrolment_codes: Vec<IssuedCode>,
        }
        let keyring = sample();
        let keys = keyring.offline.as_ref().unwrap();
        let old = Format1 {
            version: 1,
            server: keyring.server.clone(),
            registered: true,
            root_secret: keys.root.to_bytes().to_vec(),
            escrow_secret: keys.escrow_secret.to_vec(),
            escrow_public: keyring.escrow_public.clone(),
            escrow_signature: keyring.escrow_signature.to_vec(),
            admin_name: keyring.admin_name.clone(),
            admin_secret: keyring.admin.to_bytes().to_vec(),
            admin_certificate: keyring.admin_certificate.to_bytes(),
            enrolment_codes: keyring.issued_codes.clone(),
        };
        let mut plain = Vec::new();
        ciborium::into_writer(&old, &mut plain).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path()).unwrap();
        let lock = file::lock(dir.path()).unwrap();
        drop(SealedFile::create(path_in(dir.path()), KIND, lock, &keystore("geheim"), &plain).unwrap());

        let (file, opened) = KeyringFile::open(dir.path(), &keystore("geheim")).unwrap();
        assert_eq!(opened.root_public, keyring.root_public);
        assert_eq!(opened.trust, Trust::default());
        assert!(opened.offline.is_some());
        file.save(&opened).unwrap();
        drop(file);
        let stored: Stored = {
            let lock = file::lock_file(&dir.path().join("other.lock")).unwrap();
            let (_, plain) = SealedFile::open(&path_in(dir.path()), KIND, lock, &keystore("geheim")).unwrap();
            ciborium::from_reader(plain.as_slice()).unwrap()
        };
        assert_eq!(stored.version, FORMAT_VERSION);
        assert_eq!(stored.root_public, keyring.root_public.to_vec());
    }

    #[test]
    fn a_keyring_wrapped_below_the_cost_is_wrapped_again_on_unlock_and_still_opens() {
        let dir = tempfile::tempdir().unwrap();
        drop(KeyringFile::create(dir.path(), &sample(), &keystore("geheim")).unwrap());
        // A stand-in for the real cost, cheap enough for a unit test; the real one is checked
        // in `passphrase` and, end to end, by the CLI tests.
        let higher = KdfParams { m_cost_kib: 64, t_cost: 3, p_cost: 1 };
        let strong = PassphraseKeyStore::with_params("geheim", higher);
        let (mut file, keyring) = KeyringFile::open(dir.path(), &strong).unwrap();
        assert_eq!(file.kdf_params(), KdfParams::INSECURE_FAST_FOR_TESTS);
        assert!(file.upgrade_kdf(&keyring, &strong, Cost(higher)).unwrap());
        assert_eq!(file.kdf_params(), higher);
        assert!(!file.upgrade_kdf(&keyring, &strong, Cost(higher)).unwrap(), "once is enough");
        drop(file);
        // The same passphrase opens it (the parameters travel in the file), a wrong one not.
        let (file, reopened) = KeyringFile::open(dir.path(), &keystore("geheim")).unwrap();
        assert_eq!(file.kdf_params(), higher);
        assert_eq!(reopened.admin.to_bytes(), keyring.admin.to_bytes());
        drop(file);
        assert!(matches!(
            KeyringFile::open(dir.path(), &keystore("fout")),
            Err(KeyringError::WrongPassphrase)
        ));
    }

    #[test]
    fn an_offline_keyring_holds_the_root_and_escrow_and_the_daily_one_neither() {
        let dir = tempfile::tempdir().unwrap();
        let mut keyring = sample();
        let keys = keyring.offline.take().unwrap();
        let offline = dir.path().join("stick").join("offline.eenplan");
        drop(
            OfflineKeyringFile::create(&offline, &keys, &keyring.escrow_public, &keystore("anders")).unwrap(),
        );
        drop(KeyringFile::create(&dir.path().join("daily"), &keyring, &keystore("geheim")).unwrap());

        let (_, daily) = KeyringFile::open(&dir.path().join("daily"), &keystore("geheim")).unwrap();
        assert!(daily.offline.is_none());
        let bytes = std::fs::read(path_in(&dir.path().join("daily"))).unwrap();
        assert!(!bytes.windows(32).any(|w| w == keys.root.to_bytes() || w == keys.escrow_secret.as_slice()));

        assert!(matches!(
            OfflineKeyringFile::open(&offline, &keystore("geheim")),
            Err(KeyringError::WrongPassphrase)
        ));
        let (_, opened, escrow_public) = OfflineKeyringFile::open(&offline, &keystore("anders")).unwrap();
        assert_eq!(opened.root.to_bytes(), keys.root.to_bytes());
        daily.check_offline(&opened, &escrow_public).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&offline).unwrap().permissions().mode() & 0o777, 0o600);
        }

        // Another network's offline keyring is refused, and a missing one named.
        let stranger = sample();
        let foreign = dir.path().join("foreign.eenplan");
        let stranger_keys = stranger.offline.as_ref().unwrap();
        drop(
            OfflineKeyringFile::create(&foreign, stranger_keys, &stranger.escrow_public, &keystore("x"))
                .unwrap(),
        );
        let (_, foreign_keys, foreign_escrow) = OfflineKeyringFile::open(&foreign, &keystore("x")).unwrap();
        assert!(matches!(
            daily.check_offline(&foreign_keys, &foreign_escrow),
            Err(KeyringError::OfflineMismatch)
        ));
        assert!(matches!(
            OfflineKeyringFile::open(&dir.path().join("nothing"), &keystore("x")),
            Err(KeyringError::OfflineMissing(_))
        ));
        // Never replaced, and a daily keyring is not an offline one.
        assert!(matches!(
            OfflineKeyringFile::create(&offline, &keys, &keyring.escrow_public, &keystore("anders")),
            Err(KeyringError::Exists(_))
        ));
        assert!(matches!(
            OfflineKeyringFile::open(&path_in(&dir.path().join("daily")), &keystore("geheim")),
            Err(KeyringError::Damaged(_))
        ));
    }

    #[test]
    fn a_daily_keyring_with_only_one_of_root_and_escrow_is_refused() {
        let keyring = sample();
        let mut stored = keyring.to_stored();
        stored.escrow_secret.clear();
        assert!(matches!(Keyring::from_stored(&stored), Err(KeyringError::Damaged(_))));
        let mut stored = keyring.to_stored();
        stored.root_public = vec![1; 32];
        assert!(matches!(Keyring::from_stored(&stored), Err(KeyringError::Damaged(_))));
    }
}
