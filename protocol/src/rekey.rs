//! Re-keying between the administrator's CLI and the server: CBOR bodies, bounded in bytes,
//! one certificate table per answer.
//!
//! A revocation in a plan with many reader devices moves each of its documents to a new key
//! sealed to every remaining reader: with X-Wing envelopes (1,170 bytes each) a document read
//! by 60 devices needs some 75 KB of envelopes. So the bodies are binary, a request carries
//! as many *whole* documents as fit [`MAX_REKEY_REQUEST`] (the CLI aims at
//! [`REKEY_BATCH_BYTES`]), and every document is taken or refused on its own, so an
//! interrupted run resumes where it stopped. A task names its recipients by device id; each
//! device's certificate travels once per answer, in a table, with its administrator's
//! certificate once in another.
//!
//! ```text
//! admin: GET  /v1/admin/rekey?limit=50                       (Accept: application/cbor)
//!        ← RekeyTasks { a: [admin cert, …], d: [{i: device, c: cert, a: 0}, …],
//!                       t: [{d: document, e: 1, r: [{d: device, m: []}, …], s: [], c: []}, …] }
//! admin: POST /v1/admin/rekey  RekeyBatch { r: [{d: document, e: 2, c: commitment,
//!                                               v: [{to: device, e: 2, v: envelope}, …]}, …] }
//!        ← RekeyAnswer { o: [{d: document, s: "done"}, {d: …, s: "stale", m: "…"}], p: 158 }
//! ```
//!
//! The server's answer to `GET` stops adding tasks before it would pass
//! [`MAX_REKEY_ANSWER`] bytes (it always carries at least one).

use serde::{Deserialize, Serialize};

use crate::sync::{Blob, Fixed};

/// The media type of both bodies.
pub const CONTENT_TYPE: &str = "application/cbor";
/// The largest `POST /v1/admin/rekey` body the server reads. One document's result must fit:
/// some 6,000 X-Wing envelopes (recipients × epochs they lack).
pub const MAX_REKEY_REQUEST: usize = 8 * 1024 * 1024;
/// What the CLI puts in one request at most, unless a single document is larger.
pub const REKEY_BATCH_BYTES: usize = 1024 * 1024;
/// The server keeps a task list under this many bytes.
pub const MAX_REKEY_ANSWER: usize = 8 * 1024 * 1024;

/// `GET /v1/admin/rekey?limit=N`: the documents waiting longest for a new epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekeyTasks {
    /// The certificates of the administrators who certified the listed devices.
    #[serde(rename = "a", default)]
    pub admin_certificates: Vec<Blob>,
    /// Every device some task names, once.
    #[serde(rename = "d", default)]
    pub devices: Vec<ListedDevice>,
    #[serde(rename = "t", default)]
    pub tasks: Vec<RekeyTask>,
}

/// A device's certificate, as the server holds it: checked by the CLI against its own root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedDevice {
    #[serde(rename = "i")]
    pub device: Fixed<16>,
    #[serde(rename = "c")]
    pub certificate: Blob,
    /// Index into [`RekeyTasks::admin_certificates`].
    #[serde(rename = "a")]
    pub admin_certificate: u32,
}

/// One document that must move to a new key epoch. The CLI makes the new key, seals it to
/// every recipient and to escrow, commits to it, and seals older epochs a recipient lacks
/// (opened from `escrow`, checked against `commitments`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekeyTask {
    #[serde(rename = "d")]
    pub document: Fixed<17>,
    /// The result must make `current_epoch + 1`.
    #[serde(rename = "e")]
    pub current_epoch: u32,
    #[serde(rename = "r", default)]
    pub recipients: Vec<RekeyRecipient>,
    /// Escrow envelopes of the epochs some recipient lacks.
    #[serde(rename = "s", default)]
    pub escrow: Vec<EpochBlob>,
    /// Signed key commitments of those epochs.
    #[serde(rename = "c", default)]
    pub commitments: Vec<EpochBlob>,
}

/// A device that may read the document after the rotation, by the server's word.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekeyRecipient {
    /// Listed in [`RekeyTasks::devices`].
    #[serde(rename = "d")]
    pub device: Fixed<16>,
    /// Epochs before the new one for which it holds no envelope.
    #[serde(rename = "m", default)]
    pub missing_epochs: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochBlob {
    #[serde(rename = "e")]
    pub epoch: u32,
    #[serde(rename = "b")]
    pub data: Blob,
}

/// `POST /v1/admin/rekey`: whole documents' new epochs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekeyBatch {
    #[serde(rename = "r", default)]
    pub results: Vec<RekeyResult>,
}

/// One document's new epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekeyResult {
    #[serde(rename = "d")]
    pub document: Fixed<17>,
    #[serde(rename = "e")]
    pub new_epoch: u32,
    /// The administrator's signed commitment to the new key
    /// ([`crate::epoch::SignedCommitment`] bytes).
    #[serde(rename = "c")]
    pub commitment: Blob,
    /// Signed envelopes: the new epoch for every recipient and for escrow
    /// ([`crate::api::ESCROW_RECIPIENT`]), and older epochs recipients lacked.
    #[serde(rename = "v", default)]
    pub envelopes: Vec<RekeyEnvelope>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekeyEnvelope {
    #[serde(rename = "to")]
    pub recipient: Fixed<16>,
    #[serde(rename = "e")]
    pub epoch: u32,
    #[serde(rename = "v")]
    pub envelope: Blob,
}

/// The answer to a [`RekeyBatch`]: what became of each document, in the batch's order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekeyAnswer {
    #[serde(rename = "o", default)]
    pub outcomes: Vec<RekeyOutcome>,
    /// Documents still waiting for a new epoch, this batch's refused ones included.
    #[serde(rename = "p")]
    pub pending: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekeyOutcome {
    #[serde(rename = "d")]
    pub document: Fixed<17>,
    #[serde(rename = "s")]
    pub status: RekeyStatus,
    /// Why, for a document not taken.
    #[serde(rename = "m", default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// What the server did with one document's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RekeyStatus {
    /// The new epoch is stored.
    Done,
    /// The document is no longer waiting, or is at another epoch: another run (or an
    /// administrator) moved it. Fetch the tasks again.
    Stale,
    /// The result does not cover the document's readers, or its commitment or envelopes
    /// are not acceptable; nothing was stored.
    Incomplete,
}

impl RekeyBatch {
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::sync::encode(self)
    }
}

impl RekeyResult {
    /// The bytes this result adds to a [`RekeyBatch`].
    pub fn encoded_len(&self) -> usize {
        crate::sync::encode(self).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_round_trips_and_costs_little_beyond_its_envelopes() {
        let envelope =
            |to: u8| RekeyEnvelope { recipient: Fixed([to; 16]), epoch: 2, envelope: Blob(vec![7; 1234]) };
        let result = RekeyResult {
            document: Fixed([1; 17]),
            new_epoch: 2,
            commitment: Blob(vec![3; 500]),
            envelopes: (0..60).map(envelope).collect(),
        };
        let batch = RekeyBatch { results: vec![result.clone()] };
        let bytes = batch.to_bytes();
        let back: RekeyBatch = crate::sync::decode(&bytes, MAX_REKEY_REQUEST).unwrap();
        assert_eq!(back, batch);
        // Binary: the 60 envelopes and the commitment, plus under 30 bytes each of framing.
        assert!(bytes.len() < 60 * 1234 + 500 + 60 * 30, "{}", bytes.len());
        assert!(result.encoded_len() < bytes.len() + 1);
    }

    #[test]
    fn outcomes_name_their_status_in_words() {
        let answer = RekeyAnswer {
            outcomes: vec![RekeyOutcome {
                document: Fixed([1; 17]),
                status: RekeyStatus::Stale,
                message: "x".into(),
            }],
            pending: 3,
        };
        let bytes = crate::sync::encode(&answer);
        assert!(bytes.windows(5).any(|w| w == b"stale"));
        assert_eq!(crate::sync::decode::<RekeyAnswer>(&bytes, 1024).unwrap(), answer);
    }
}
