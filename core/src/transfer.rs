//! Transfer files: a whole plan, carried between two devices by hand (a USB stick, a test).
//!
//! Before the sync server exists this is how two stores exchange changes; it stays useful for
//! moving a plan to a new device. The file holds each compartment's automerge `save()`, and
//! is sealed, because a file on a stick is as exposed as a file on a stolen phone:
//!
//! ```text
//! "EPX1" || u32 wrapped-key length || passphrase-wrapped file key (Argon2id)
//!        || XChaCha20-Poly1305(file key, aad = "eenplan/transfer/v1" || header, CBOR body)
//! ```

use serde::{Deserialize, Serialize};

use crate::crypto::SecretKey;
use crate::ids::PlanId;
use crate::keystore::{KeyStore, KeyStoreError, PassphraseKeyStore};
use crate::plan::Compartment;

const MAGIC: &[u8; 4] = b"EPX1";
const AAD: &[u8] = b"eenplan/transfer/v1";
/// A transfer file larger than this is refused before any parsing: plans are kilobytes to a
/// few megabytes, and an attacker's file must not exhaust a phone's memory.
pub const MAX_TRANSFER_BYTES: usize = 64 * 1024 * 1024;
const MAX_WRAPPED_KEY: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("not an eenplan changes file")]
    NotATransferFile,
    #[error("the file is larger than the {max} bytes accepted")]
    TooLarge { max: usize },
    #[error("the file is truncated")]
    Truncated,
    #[error("the transfer passphrase does not open this file, or the file was altered")]
    WrongPassphraseOrTampered,
    #[error("the file's key could not be unwrapped: {0}")]
    KeyStore(#[from] KeyStoreError),
    #[error("the file's contents are not decodable")]
    Undecodable,
    #[error("the {compartment} document in the file is not valid: {detail}")]
    Document { compartment: Compartment, detail: String },
    #[error("the file holds a plan that is new here but not its basis compartment")]
    MissingBasis,
}

/// The plan inside a transfer file: each held compartment's `save()`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Contents {
    pub plan: PlanId,
    #[serde(with = "docs_serde")]
    pub docs: Vec<(Compartment, Vec<u8>)>,
}

mod docs_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::plan::Compartment;

    #[derive(Serialize, Deserialize)]
    struct Doc {
        compartment: Compartment,
        #[serde(with = "eenplan_protocol::bytes")]
        saved: Vec<u8>,
    }

    pub fn serialize<S: Serializer>(docs: &[(Compartment, Vec<u8>)], s: S) -> Result<S::Ok, S::Error> {
        docs.iter().map(|(c, b)| Doc { compartment: *c, saved: b.clone() }).collect::<Vec<_>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(Compartment, Vec<u8>)>, D::Error> {
        Ok(Vec::<Doc>::deserialize(d)?.into_iter().map(|doc| (doc.compartment, doc.saved)).collect())
    }
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub plan: PlanId,
    pub family: String,
    pub new_plan: bool,
    /// Changes that were new to this device.
    pub changes: usize,
}

/// Seals a plan's documents into a transfer file under `passphrase`.
pub fn seal(
    plan: PlanId,
    docs: Vec<(Compartment, Vec<u8>)>,
    passphrase: &str,
) -> Result<Vec<u8>, TransferError> {
    let mut body = Vec::new();
    ciborium::into_writer(&Contents { plan, docs }, &mut body).map_err(|_| TransferError::Undecodable)?;
    let file_key = SecretKey::generate();
    let wrapped = PassphraseKeyStore::new(passphrase).wrap(&file_key)?;
    let mut out = Vec::with_capacity(body.len() + wrapped.len() + 64);
    out.extend_from_slice(MAGIC);
    let len = u32::try_from(wrapped.len()).map_err(|_| TransferError::Undecodable)?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&wrapped);
    let sealed = file_key.seal(&[AAD, &out[..]].concat(), &body);
    out.extend_from_slice(&sealed);
    if out.len() > MAX_TRANSFER_BYTES {
        return Err(TransferError::TooLarge { max: MAX_TRANSFER_BYTES });
    }
    Ok(out)
}

/// Opens a transfer file; the contents are authenticated but not yet validated as a plan.
pub fn open(file: &[u8], passphrase: &str) -> Result<Contents, TransferError> {
    if file.len() > MAX_TRANSFER_BYTES {
        return Err(TransferError::TooLarge { max: MAX_TRANSFER_BYTES });
    }
    if file.len() < 8 {
        return Err(if file.starts_with(&MAGIC[..file.len().min(4)]) && !file.is_empty() {
            TransferError::Truncated
        } else {
            TransferError::NotATransferFile
        });
    }
    if &file[..4] != MAGIC {
        return Err(TransferError::NotATransferFile);
    }
    let len = u32::from_be_bytes([file[4], file[5], file[6], file[7]]) as usize;
    if len > MAX_WRAPPED_KEY {
        return Err(TransferError::NotATransferFile);
    }
    let header_end = 8 + len;
    let header = file.get(..header_end).ok_or(TransferError::Truncated)?;
    let file_key = PassphraseKeyStore::new(passphrase).unwrap(&header[8..]).map_err(|e| match e {
        KeyStoreError::WrongKey => TransferError::WrongPassphraseOrTampered,
        other => TransferError::KeyStore(other),
    })?;
    let body = file_key
        .open(&[AAD, header].concat(), &file[header_end..])
        .map_err(|_| TransferError::WrongPassphraseOrTampered)?;
    ciborium::from_reader(body.as_slice()).map_err(|_| TransferError::Undecodable)
}
