//! Opening a plan to read, independent of its history (issue 13, item 7).
//!
//! Loading a plan's automerge documents costs time that grows with its history (about 75 ms
//! for two busy years of edits, all of it in automerge's `load`); what a screen shows is the
//! read model, which is a small fraction of that work to decode. So each plan's read model
//! (the view its documents materialise into, before the device adds who people are and what
//! the chain says) is kept sealed in the store, and a plan that is not in memory is shown from
//! it. The documents are loaded only to edit them, or when the kept model is not current.
//!
//! **When a kept model counts.** It carries a *stamp*: a digest of every stored row that
//! loading the plan reads, taken as stored (sealed bytes, counters), together with the model's
//! layout and the build that computed it (`store/read_models.rs`). A read takes it only when
//! the stamp of the rows on disk now is the same. Anything that changes those rows — an edit,
//! a sync, a compaction, an import, a damaged or deleted row — changes the stamp, so there is
//! no list of writers to keep in step, and a damaged document still fails the read as it did
//! before the cache existed. A missing, stale, unopenable or undecodable model is a miss: the
//! documents are loaded as before and the model is written again.
//!
//! **What stays live.** The parts of a view that come from elsewhere than the documents —
//! the people behind device ids (certificates), the membership chain, contact cards checked
//! against certificates, action owners resolved against the chain — are added on every read
//! from the device's own records (`Device::view_of`), as they were before; they cost a few
//! row reads and signature checks, not a document load.
//!
//! **When it is written.** When a read materialised the view from the documents and the kept
//! model was not current, in a small `synchronous=NORMAL` transaction of its own (like a
//! read's access-log event): losing it costs one loading of the documents, nothing else.
//! Retiring a plan deletes its row with the plan's other rows; a wipe deletes every row before
//! it deletes the files.

use std::io::{Read, Write};

use crate::crypto::FieldDigest;
use crate::device::Device;
use crate::error::CoreError;
use crate::ids::PlanId;
use crate::plan::PlanView;
use crate::store::StoreError;

/// The layout of a kept model. Change it whenever [`PlanView`] or what materialises it
/// changes meaning; the build's version is part of the stamp as well, so a new release never
/// shows a model an older one computed.
const LAYOUT: &[u8] = b"eenplan/read-model/v1";
/// How the body after the stamp is encoded.
const RAW: u8 = 0;
const DEFLATED: u8 = 1;
/// No view a device can hold comes near this (documents are bounded at a few MiB of
/// columns); a body inflating beyond it is not a model this device wrote.
const MAX_MODEL_BYTES: u64 = 64 * 1024 * 1024;
const STAMP_LEN: usize = 32;

/// The stamp of a plan's stored rows as they are now.
pub(crate) struct Stamp([u8; STAMP_LEN]);

impl Stamp {
    fn of(documents: [u8; 32]) -> Stamp {
        let mut digest = FieldDigest::new(LAYOUT);
        digest.field(env!("CARGO_PKG_VERSION").as_bytes());
        digest.field(&documents);
        Stamp(digest.finish())
    }
}

/// A kept model: the stamp, then the encoding, then the CBOR of the view (deflated when that
/// is smaller).
fn encode(stamp: &Stamp, view: &PlanView) -> Result<Vec<u8>, CoreError> {
    let mut cbor = Vec::new();
    ciborium::into_writer(view, &mut cbor)
        .map_err(|e| CoreError::Store(StoreError::Corrupt(e.to_string())))?;
    // Level 3: for the 10,000-edit benchmark plan's view (110 KB of CBOR) 25 KB in 0.9 ms,
    // against 33 KB in 0.5 ms at level 1 and 24 KB in 1.4 ms at level 6; it is paid on the
    // first read after each change.
    let mut deflater = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(3));
    let deflated = deflater.write_all(&cbor).and_then(|()| deflater.finish()).ok();
    let mut model = Vec::with_capacity(STAMP_LEN + 1 + cbor.len());
    model.extend_from_slice(&stamp.0);
    match deflated {
        Some(deflated) if deflated.len() < cbor.len() => {
            model.push(DEFLATED);
            model.extend_from_slice(&deflated);
        }
        _ => {
            model.push(RAW);
            model.extend_from_slice(&cbor);
        }
    }
    Ok(model)
}

/// The view a kept model holds, if it was kept under `stamp` and decodes; `None` otherwise.
fn decode(stamp: &Stamp, model: &[u8]) -> Option<PlanView> {
    let rest = model.strip_prefix(&stamp.0[..])?;
    let (&encoding, body) = rest.split_first()?;
    let cbor = match encoding {
        RAW => std::borrow::Cow::Borrowed(body),
        DEFLATED => {
            let mut out = Vec::with_capacity(body.len() * 4);
            flate2::read::DeflateDecoder::new(body).take(MAX_MODEL_BYTES + 1).read_to_end(&mut out).ok()?;
            if out.len() as u64 > MAX_MODEL_BYTES {
                return None;
            }
            std::borrow::Cow::Owned(out)
        }
        _ => return None,
    };
    ciborium::from_reader(cbor.as_ref()).ok()
}

impl Device {
    /// The plan's read model as its documents materialise it: from the kept model when the
    /// plan is not in memory and the model is current, else from the documents (loaded if
    /// need be), keeping the model for next time when it was not current.
    pub(crate) fn documents_view(&mut self, plan: &PlanId) -> Result<PlanView, CoreError> {
        let stamp = Stamp::of(self.store().documents_stamp(*plan)?);
        let kept = self.kept_model(plan)?;
        let current = kept.as_deref().is_some_and(|model| model.starts_with(&stamp.0));
        if self.open_plan_ref(plan).is_none()
            && current
            && let Some(view) = kept.as_deref().and_then(|model| decode(&stamp, model))
            && view.id == *plan
        {
            return Ok(view);
        }
        let view = self.loaded_plan(*plan)?.view()?;
        if !current {
            // The read is right without it: a model that could not be kept (a full disk) is
            // computed again by the next read that misses it.
            let _ = self.keep_model(plan, &stamp, &view);
        }
        Ok(view)
    }

    /// The kept model's bytes; `None` when there is none or it fails authentication (a
    /// damaged cache row is a miss, never an error of the read).
    fn kept_model(&self, plan: &PlanId) -> Result<Option<Vec<u8>>, CoreError> {
        match self.store().read_model(*plan) {
            Ok(model) => Ok(model),
            Err(StoreError::CorruptPlan { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn keep_model(&mut self, plan: &PlanId, stamp: &Stamp, view: &PlanView) -> Result<(), CoreError> {
        let model = encode(stamp, view)?;
        Ok(self.store_mut().write_light(|w| w.put_read_model(*plan, &model))?)
    }

    /// The stamp of the plan's stored rows now (the benchmark times it): a digest of
    /// ciphertext and counters, nothing of the plan's content.
    #[doc(hidden)]
    pub fn read_model_stamp(&self, plan: &PlanId) -> Result<[u8; 32], CoreError> {
        Ok(Stamp::of(self.store().documents_stamp(*plan)?).0)
    }

    /// Whether a kept model of `plan` is current (tests and the benchmark's checks).
    #[doc(hidden)]
    pub fn read_model_is_current(&self, plan: &PlanId) -> Result<bool, CoreError> {
        let stamp = Stamp::of(self.store().documents_stamp(*plan)?);
        Ok(self.kept_model(plan)?.is_some_and(|model| decode(&stamp, &model).is_some()))
    }
}

#[cfg(test)]
mod tests;
