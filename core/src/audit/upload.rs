//! The access log and the sync: events go up with a round's request, sealed to the audit key
//! of the device's organisation; the answer may bring a newer key and says up to where the
//! server keeps this device's events. Sans-IO: the sync layer calls these while it holds the
//! device to prepare a round and to apply its answer.

use eenplan_protocol::audit::{
    AuditError, AuditKey, AuditUpload, MAX_UPLOAD_EVENTS, MAX_UPLOADS_PER_SYNC, SignedAuditKey, SignedEvent,
};
use eenplan_protocol::sync::Blob;

use crate::device::Device;
use crate::error::CoreError;
use crate::store::StoreError;

/// Sync state: the verified signed audit key (its bytes as the root signed them).
const STATE_KEY: &str = "audit_key";
/// Sync state: the last position the server acknowledged keeping (u64, big-endian).
const STATE_THROUGH: &str = "audit_through";

/// Why an audit key from the server was not taken. Never stops a sync: the key is ignored
/// and events wait for a good one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditKeyRefusal {
    #[error("the audit key does not verify against the network root: {0}")]
    Unverified(AuditError),
    #[error("the audit key is for another organisation")]
    OtherOrganisation,
}

/// What a round's request carries of the access log.
#[derive(Debug, Default)]
pub(crate) struct AuditRequest {
    pub uploads: Vec<Blob>,
    /// The version of the audit key held (0: none).
    pub key_version: u32,
    /// The last position sealed into `uploads` (0: none).
    pub last: u64,
}

impl Device {
    /// The audit key of `organisation` this device holds, verified against `root`.
    pub(crate) fn held_audit_key(
        &self,
        root: &[u8; 32],
        organisation: &str,
    ) -> Result<Option<AuditKey>, CoreError> {
        let Some(bytes) = self.store().sync_state(STATE_KEY)? else { return Ok(None) };
        let corrupt = |what: &str| StoreError::Corrupt(format!("the stored audit key {what}"));
        let key = SignedAuditKey::from_bytes(&bytes)
            .and_then(|signed| signed.verify(root))
            .map_err(|_| corrupt("does not verify"))?;
        // A key of another organisation is never stored; one held from before a move to
        // another organisation (a new certificate) is not sealed to.
        Ok((key.organisation == organisation).then_some(key))
    }

    /// The last position the server acknowledged keeping.
    pub(crate) fn audit_acknowledged(&self) -> Result<u64, CoreError> {
        Ok(self
            .store()
            .sync_state(STATE_THROUGH)?
            .and_then(|b| b.as_slice().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0))
    }

    /// The uploads for a round: events after both the acknowledged position and `sent`
    /// (what earlier rounds of this sync carried), in at most [`MAX_UPLOADS_PER_SYNC`] runs of
    /// at most [`MAX_UPLOAD_EVENTS`], about `budget` bytes in all (at least one event). The
    /// events are made durable first. Without an audit key nothing goes: events wait.
    pub(crate) fn audit_request(
        &mut self,
        root: &[u8; 32],
        organisation: &str,
        sent: u64,
        budget: usize,
    ) -> Result<AuditRequest, CoreError> {
        let Some(key) = self.held_audit_key(root, organisation)? else { return Ok(AuditRequest::default()) };
        let mut request = AuditRequest { key_version: key.version, ..AuditRequest::default() };
        let mut after = self.audit_acknowledged()?.max(sent);
        if self.store().audit_events_after(after, 1)?.is_empty() {
            return Ok(request);
        }
        self.store_mut().make_durable()?;
        let mut used = 0usize;
        while request.uploads.len() < MAX_UPLOADS_PER_SYNC {
            let run = consecutive(self.store().audit_events_after(after, MAX_UPLOAD_EVENTS)?);
            let run = within_budget(run, budget.saturating_sub(used), used == 0);
            let Some((first, _)) = run.first() else { break };
            let first = *first;
            let full = run.len() == MAX_UPLOAD_EVENTS;
            used += run.iter().map(|(_, e)| e.len()).sum::<usize>();
            let events = run
                .iter()
                .map(|(seq, bytes)| {
                    SignedEvent::from_bytes(bytes)
                        .map_err(|_| StoreError::Corrupt(format!("audit event {seq} is not decodable")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let upload = AuditUpload::seal(
                *self.device_id().as_bytes(),
                self.identity().signing_key(),
                &key,
                first,
                &events,
            )
            .map_err(|e| StoreError::Corrupt(format!("the audit upload could not be sealed: {e}")))?;
            after = upload.last;
            request.last = upload.last;
            request.uploads.push(Blob(upload.to_bytes()));
            // A run ends short at the end of the events, or at a gap (a row someone removed
            // from the store): after a gap the next run goes too, so the verifier sees the
            // gap rather than a chain that merely stops.
            if !full && self.store().audit_events_after(after, 1)?.is_empty() {
                break;
            }
        }
        Ok(request)
    }

    /// Applies the access-log part of an answer: a newer audit key of the device's own
    /// organisation is taken (a high-water mark: never an older or equal version); events at
    /// or before `through` are dropped, but never beyond what this sync sent (`sent`) nor
    /// beyond the head. A key that is refused is returned as a warning and changes nothing.
    pub(crate) fn take_audit_answer(
        &mut self,
        root: &[u8; 32],
        organisation: &str,
        key: Option<&Blob>,
        through: u64,
        sent: u64,
    ) -> Result<Option<AuditKeyRefusal>, CoreError> {
        let held = self.held_audit_key(root, organisation)?.map_or(0, |k| k.version);
        let (new_key, refusal) = match key.map(|blob| judge_key(root, organisation, &blob.0)) {
            Some(Ok((version, bytes))) if version > held => (Some(bytes), None),
            Some(Err(refusal)) => (None, Some(refusal)),
            _ => (None, None),
        };
        let acknowledged = self.audit_acknowledged()?;
        let keep_through = through.min(sent).min(self.audit_head().seq);
        let drop_to = (keep_through > acknowledged).then_some(keep_through);
        if new_key.is_none() && drop_to.is_none() {
            return Ok(refusal);
        }
        self.store_mut().write(|w| {
            if let Some(bytes) = &new_key {
                w.put_state(STATE_KEY, bytes)?;
            }
            if let Some(to) = drop_to {
                w.drop_audit_events_through(to)?;
                w.put_state(STATE_THROUGH, &to.to_be_bytes())?;
            }
            Ok(())
        })?;
        Ok(refusal)
    }
}

/// A key from the server: its version and bytes, if the root signed it for `organisation`.
fn judge_key(root: &[u8; 32], organisation: &str, bytes: &[u8]) -> Result<(u32, Vec<u8>), AuditKeyRefusal> {
    let key = SignedAuditKey::from_bytes(bytes)
        .and_then(|signed| signed.verify(root))
        .map_err(AuditKeyRefusal::Unverified)?;
    if key.organisation != organisation {
        return Err(AuditKeyRefusal::OtherOrganisation);
    }
    Ok((key.version, bytes.to_vec()))
}

/// The leading run of consecutive positions: an upload carries an unbroken run.
fn consecutive(mut rows: Vec<(u64, Vec<u8>)>) -> Vec<(u64, Vec<u8>)> {
    let Some(first) = rows.first().map(|(seq, _)| *seq) else { return rows };
    let unbroken = rows.iter().enumerate().take_while(|(i, (seq, _))| *seq == first + *i as u64).count();
    rows.truncate(unbroken);
    rows
}

/// The leading events that fit in `budget` bytes; the first always, when `at_least_one`.
fn within_budget(mut rows: Vec<(u64, Vec<u8>)>, budget: usize, at_least_one: bool) -> Vec<(u64, Vec<u8>)> {
    let mut used = 0usize;
    let fits = rows
        .iter()
        .enumerate()
        .take_while(|(i, (_, event))| {
            used += event.len();
            used <= budget || (*i == 0 && at_least_one)
        })
        .count();
    rows.truncate(fits);
    rows
}
