//! The administrator's keyring: the secrets that make someone the network's administrator.
//!
//! It holds the network **root** signing key (which certifies administrators and, through the
//! escrow signature, the escrow key), the **escrow** X25519 secret (every epoch key is also
//! sealed to it, so plans survive the loss of all their devices), the administrator's own
//! Ed25519 key and its root-signed certificate, the server's URL, and the enrolment codes this
//! keyring issued (so that `device approve` can check that a pending device knew a code, and
//! knows whose device the code enrolled). None of the secrets ever goes to the server: it gets
//! public halves, certificates and enrolment code ids only.
//!
//! File format (`keyring.eenplan`, integers big-endian):
//!
//! ```text
//! b"EPADMKR1" || u32 wrapped_len || wrapped data key (eenplan-core PassphraseKeyStore, Argon2id)
//!             || XChaCha20-Poly1305(data key, aad = AAD_LABEL || everything before, CBOR(Stored))
//! ```
//!
//! The random data key is wrapped with the passphrase by eenplan-core's keystore, so this crate
//! adds no key derivation of its own; the contents are sealed with eenplan-core's `SecretKey`.
//! The associated data covers the header and the wrapped key, so neither can be swapped for
//! another keyring's. Saving re-seals under the same data key (fresh nonce) without running
//! Argon2 again, so the passphrase is needed once per command.

mod file;

use std::fs::File;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey};
use eenplan_core::crypto::{self, SecretKey};
use eenplan_core::keystore::{KeyStore, KeyStoreError};
use eenplan_protocol::api::escrow_message;
use eenplan_protocol::certificate::{AdminBody, Certificate};
use eenplan_protocol::envelope;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// The keyring's file name inside the data directory.
pub const FILE_NAME: &str = "keyring.eenplan";
const MAGIC: &[u8; 8] = b"EPADMKR1";
const AAD_LABEL: &[u8] = b"eenplan/admin-keyring/v1";
const FORMAT_VERSION: u32 = 1;
/// A wrapped data key is under 100 bytes; anything far larger is not ours.
const MAX_WRAPPED_LEN: usize = 1024;
/// Thousands of issued codes fit in well under a megabyte; refuse to read arbitrarily large
/// files into memory.
const MAX_FILE_LEN: u64 = 16 * 1024 * 1024;
/// Issued codes are kept this long after they expire: a device that claimed a code just before
/// it expired can still be approved by that code the next days.
const CODE_RETENTION_MS: i64 = 30 * 24 * 60 * 60 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("no keyring in {}: run `eenplan-admin init` first", .0.display())]
    Missing(PathBuf),
    #[error("{} already holds a keyring", .0.display())]
    Exists(PathBuf),
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

/// The unlocked keyring.
pub struct Keyring {
    pub server: String,
    /// Whether the server confirmed `init`. A keyring is written before the server learns the
    /// network, so that a crash in between never loses the root key; until then, `init` may be
    /// repeated with the same keys.
    pub registered: bool,
    pub root: SigningKey,
    pub escrow_secret: Zeroizing<[u8; 32]>,
    pub escrow_public: Vec<u8>,
    /// Ed25519(root, escrow_message(escrow_public)).
    pub escrow_signature: [u8; 64],
    pub admin_name: String,
    pub admin: SigningKey,
    pub admin_certificate: Certificate,
    pub issued_codes: Vec<IssuedCode>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("server", &self.server)
            .field("registered", &self.registered)
            .field("root_fingerprint", &self.root_fingerprint())
            .field("admin_name", &self.admin_name)
            .field("issued_codes", &self.issued_codes.len())
            .finish_non_exhaustive()
    }
}

fn new_signing_key() -> SigningKey {
    let seed = Zeroizing::new(crypto::random_array::<32>());
    SigningKey::from_bytes(&seed)
}

impl Keyring {
    /// Fresh keys for a new network: root, escrow and this administrator, with the
    /// administrator's certificate and the escrow key signed by the root.
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
            },
            &root,
        );
        Keyring {
            server,
            registered: false,
            root,
            escrow_secret,
            escrow_public,
            escrow_signature,
            admin_name,
            admin,
            admin_certificate,
            issued_codes: Vec::new(),
        }
    }

    pub fn root_public(&self) -> [u8; 32] {
        self.root.verifying_key().to_bytes()
    }

    pub fn admin_public(&self) -> [u8; 32] {
        self.admin.verifying_key().to_bytes()
    }

    /// What people compare out of band to know they talk about the same network: hex of the
    /// first 8 bytes of SHA-256 of the root public key.
    pub fn root_fingerprint(&self) -> String {
        let digest = Sha256::digest(self.root_public());
        eenplan_protocol::api::hex(&digest[..8])
    }

    /// Drops codes that expired long ago, so the keyring does not grow without bound.
    pub fn prune_codes(&mut self, now_ms: i64) {
        self.issued_codes.retain(|c| c.expires_at_ms.saturating_add(CODE_RETENTION_MS) > now_ms);
    }

    /// Refuses contents whose parts do not belong together: a keyring edited by someone with
    /// the passphrase, or a bug, must not produce certificates the network will refuse.
    fn check(&self) -> Result<(), KeyringError> {
        let body = self
            .admin_certificate
            .verify_admin(&self.root_public())
            .map_err(|_| KeyringError::Damaged("the administrator certificate is not signed by the root"))?;
        if body.admin_public != self.admin_public() {
            return Err(KeyringError::Damaged("the administrator certificate names another key"));
        }
        self.root
            .verifying_key()
            .verify_strict(
                &escrow_message(&self.escrow_public),
                &Signature::from_bytes(&self.escrow_signature),
            )
            .map_err(|_| KeyringError::Damaged("the escrow key is not signed by the root"))?;
        match self.escrow_public.len() {
            // The escrow secret is the X-Wing seed: it must give the public key the network
            // knows, or every key sealed to escrow would be lost to this keyring.
            envelope::XWING_PUBLIC_LEN => {
                if envelope::public_key_of(&self.escrow_secret).ok().as_deref()
                    != Some(self.escrow_public.as_slice())
                {
                    return Err(KeyringError::Damaged(
                        "the escrow secret does not belong to the escrow public key",
                    ));
                }
            }
            // A keyring made before escrow became hybrid: its X25519 key still opens the
            // envelopes sealed to it.
            envelope::X25519_PUBLIC_LEN => {}
            _ => return Err(KeyringError::Damaged("escrow public key length")),
        }
        Ok(())
    }

    fn to_stored(&self) -> Stored {
        Stored {
            version: FORMAT_VERSION,
            server: self.server.clone(),
            registered: self.registered,
            root_secret: self.root.to_bytes().to_vec(),
            escrow_secret: self.escrow_secret.to_vec(),
            escrow_public: self.escrow_public.clone(),
            escrow_signature: self.escrow_signature.to_vec(),
            admin_name: self.admin_name.clone(),
            admin_secret: self.admin.to_bytes().to_vec(),
            admin_certificate: self.admin_certificate.to_bytes(),
            enrolment_codes: self.issued_codes.clone(),
        }
    }

    fn from_stored(stored: &Stored) -> Result<Keyring, KeyringError> {
        if stored.version != FORMAT_VERSION {
            return Err(KeyringError::UnsupportedVersion(stored.version));
        }
        let secret = |bytes: &[u8], what: &'static str| -> Result<Zeroizing<[u8; 32]>, KeyringError> {
            let mut out = Zeroizing::new([0u8; 32]);
            if bytes.len() != 32 {
                return Err(KeyringError::Damaged(what));
            }
            out.copy_from_slice(bytes);
            Ok(out)
        };
        let root = SigningKey::from_bytes(&*secret(&stored.root_secret, "root key length")?);
        let admin = SigningKey::from_bytes(&*secret(&stored.admin_secret, "administrator key length")?);
        let escrow_secret = secret(&stored.escrow_secret, "escrow key length")?;
        let escrow_signature: [u8; 64] = stored
            .escrow_signature
            .as_slice()
            .try_into()
            .map_err(|_| KeyringError::Damaged("escrow signature length"))?;
        let admin_certificate = Certificate::from_bytes(&stored.admin_certificate)
            .map_err(|_| KeyringError::Damaged("administrator certificate"))?;
        let keyring = Keyring {
            server: stored.server.clone(),
            registered: stored.registered,
            root,
            escrow_secret,
            escrow_public: stored.escrow_public.clone(),
            escrow_signature,
            admin_name: stored.admin_name.clone(),
            admin,
            admin_certificate,
            issued_codes: stored.enrolment_codes.clone(),
        };
        keyring.check()?;
        Ok(keyring)
    }
}

/// The CBOR form. Byte fields are CBOR byte strings; the secret ones are wiped on drop.
#[derive(Serialize, Deserialize)]
struct Stored {
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
    /// Under a new name since codes carry a MAC key: the `issued_codes` of older keyrings
    /// (hashes of codes the server no longer accepts) are ignored when read.
    #[serde(default)]
    enrolment_codes: Vec<IssuedCode>,
}

impl Drop for Stored {
    fn drop(&mut self) {
        self.root_secret.zeroize();
        self.escrow_secret.zeroize();
        self.admin_secret.zeroize();
    }
}

/// An open keyring file: its place, the unwrapped data key, and the lock that keeps a second
/// `eenplan-admin` from writing it at the same time (which would lose one of the two updates,
/// for example an issued code).
pub struct KeyringFile {
    path: PathBuf,
    wrapped: Vec<u8>,
    data_key: SecretKey,
    _lock: File,
}

impl std::fmt::Debug for KeyringFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringFile").field("path", &self.path).finish_non_exhaustive()
    }
}

pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Whether `dir` holds a keyring (checked before asking for a passphrase).
pub fn exists(dir: &Path) -> bool {
    path_in(dir).exists()
}

fn header(wrapped: &[u8]) -> Result<Vec<u8>, KeyringError> {
    let len = u32::try_from(wrapped.len()).map_err(|_| KeyringError::Damaged("wrapped key length"))?;
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + wrapped.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(wrapped);
    Ok(out)
}

impl KeyringFile {
    /// Writes a new keyring into `dir` (created, mode 0700, if needed) under a fresh data key
    /// wrapped by `keystore`. Refuses to replace an existing keyring: that would destroy a
    /// network's root key.
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
        let data_key = SecretKey::generate();
        let wrapped = keystore.wrap(&data_key).map_err(keystore_error)?;
        let file = KeyringFile { path, wrapped, data_key, _lock: lock };
        file.save(keyring)?;
        Ok(file)
    }

    /// Opens the keyring in `dir` with `keystore`, holding its lock until dropped.
    pub fn open(dir: &Path, keystore: &dyn KeyStore) -> Result<(KeyringFile, Keyring), KeyringError> {
        let path = path_in(dir);
        if !path.exists() {
            return Err(KeyringError::Missing(dir.to_path_buf()));
        }
        let lock = file::lock(dir)?;
        let bytes = file::read_limited(&path, MAX_FILE_LEN)?;
        let rest = bytes.strip_prefix(MAGIC).ok_or(KeyringError::Damaged("not an eenplan-admin keyring"))?;
        let len = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or(KeyringError::Damaged("truncated header"))?;
        let len = usize::try_from(len).map_err(|_| KeyringError::Damaged("wrapped key length"))?;
        if len > MAX_WRAPPED_LEN {
            return Err(KeyringError::Damaged("wrapped key length"));
        }
        let wrapped = rest.get(4..4 + len).ok_or(KeyringError::Damaged("truncated header"))?;
        let sealed = &rest[4 + len..];
        let data_key = keystore.unwrap(wrapped).map_err(keystore_error)?;
        let aad = [AAD_LABEL, &header(wrapped)?].concat();
        let plain = Zeroizing::new(
            data_key
                .open(&aad, sealed)
                .map_err(|_| KeyringError::Damaged("the contents do not authenticate"))?,
        );
        let stored: Stored = ciborium::from_reader(plain.as_slice())
            .map_err(|_| KeyringError::Damaged("the contents do not decode"))?;
        let keyring = Keyring::from_stored(&stored)?;
        Ok((KeyringFile { path, wrapped: wrapped.to_vec(), data_key, _lock: lock }, keyring))
    }

    /// Replaces the file atomically with `keyring`'s contents.
    pub fn save(&self, keyring: &Keyring) -> Result<(), KeyringError> {
        let stored = keyring.to_stored();
        let mut plain = Zeroizing::new(Vec::new());
        ciborium::into_writer(&stored, &mut *plain).map_err(|_| KeyringError::Damaged("cannot encode"))?;
        let head = header(&self.wrapped)?;
        let sealed = self.data_key.seal(&[AAD_LABEL, &head].concat(), &plain);
        file::write_atomically(&self.path, &[head, sealed].concat())
    }
}

fn keystore_error(e: KeyStoreError) -> KeyringError {
    match e {
        KeyStoreError::WrongKey => KeyringError::WrongPassphrase,
        KeyStoreError::Malformed(what) => KeyringError::Damaged(what),
        // The passphrase keystore has no platform; should another keystore fail, the keyring
        // cannot be opened either way.
        KeyStoreError::Platform(_) | KeyStoreError::Invalidated(_) => {
            KeyringError::Damaged("the keystore failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use eenplan_core::keystore::{KdfParams, PassphraseKeyStore};

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
        assert_eq!(opened.root.to_bytes(), keyring.root.to_bytes());
        assert_eq!(opened.admin.to_bytes(), keyring.admin.to_bytes());
        assert_eq!(*opened.escrow_secret, *keyring.escrow_secret);
        assert_eq!(opened.escrow_public, keyring.escrow_public);
        assert_eq!(opened.admin_certificate, keyring.admin_certificate);
        assert_eq!(opened.issued_codes, keyring.issued_codes);
        assert_eq!(opened.root_fingerprint(), keyring.root_fingerprint());

        // Saving again (as `device enrol` does) keeps it readable and keeps the changes.
        let mut changed = opened;
        changed.registered = true;
        file.save(&changed).unwrap();
        drop(file);
        let (_, reopened) = KeyringFile::open(dir.path(), &keystore("geheim")).unwrap();
        assert!(reopened.registered);
    }

    #[test]
    fn a_new_keyring_has_a_hybrid_escrow_key_that_survives_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = sample();
        assert_eq!(keyring.escrow_secret.len(), 32);
        assert_eq!(keyring.escrow_public.len(), envelope::XWING_PUBLIC_LEN);
        assert_eq!(envelope::public_key_of(&keyring.escrow_secret).unwrap(), keyring.escrow_public);
        drop(KeyringFile::create(dir.path(), &keyring, &keystore("geheim")).unwrap());
        let (_, opened) = KeyringFile::open(dir.path(), &keystore("geheim")).unwrap();
        let document = eenplan_protocol::DocumentId::new([1; 16], 2).unwrap();
        let sealed = envelope::seal(&keyring.escrow_public, [0; 16], document, 3, &[9; 32]).unwrap();
        assert_eq!(envelope::suite_of(&sealed).unwrap(), envelope::SUITE_XWING_CHACHA);
        assert_eq!(*envelope::open(&sealed, &opened.escrow_secret, [0; 16], document, 3).unwrap(), [9; 32]);
    }

    #[test]
    fn an_escrow_secret_that_does_not_match_its_public_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut keyring = sample();
        keyring.escrow_secret = envelope::generate_keypair().0;
        drop(KeyringFile::create(dir.path(), &keyring, &keystore("geheim")).unwrap());
        assert!(matches!(KeyringFile::open(dir.path(), &keystore("geheim")), Err(KeyringError::Damaged(_))));
    }

    #[test]
    fn the_escrow_key_works_as_an_envelope_recipient() {
        let keyring = sample();
        let document = eenplan_protocol::DocumentId::new([1; 16], 0).unwrap();
        let sealed = envelope::seal(&keyring.escrow_public, [0; 16], document, 1, &[9; 32]).unwrap();
        let opened = envelope::open(&sealed, &keyring.escrow_secret, [0; 16], document, 1).unwrap();
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
        for secret in [
            &keyring.root.to_bytes()[..],
            &keyring.admin.to_bytes()[..],
            &keyring.escrow_secret[..],
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
}
