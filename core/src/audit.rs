//! The device side of the access log (NEN 7513, DESIGN §8): every access to plan content
//! through [`Device`] is a signed, hash-linked event in the device's sealed store, uploaded
//! with the next sync, sealed to the audit key of the device's organisation
//! ([`eenplan_protocol::audit`] has the wire form and the rules that judge a chain).
//!
//! **Where events are made.** Each public entry point of [`Device`] that returns or changes
//! plan content runs as one *access* ([`Device::audited`]): the entry point that a host calls
//! records; entry points it calls in turn (an adoption reads the plan, the family's copy reads
//! the adoptions) record nothing of their own, so one tap is one event and neither the CLI
//! nor the bindings can reach plan content around it. An access that fails is recorded too:
//! `Refused` when it was not allowed (the lease ran out, an unknown plan, a role or a chain
//! that does not allow it, a compartment not held), `Failed` when it was allowed and went
//! wrong; `detail` is the error's kind ([`error_kind`]), never its message (messages may
//! quote plan content). No event holds plan content: plan ids, compartment indices and entity
//! ids (`object`) only. `audit/tests.rs` checks each group of entry points.
//!
//! **Decisions.**
//! - *An edit is one event per changed compartment*, written in the edit's own transaction
//!   (`Device::edit`): the log says which compartment was written, and an acknowledged edit
//!   always has its events while a rolled-back one has none. The same holds for creating a
//!   plan (`Create`), importing a transfer file (`Import`), settling (`Settle`), adopting
//!   (`Adopt`), and queueing a change of participants (`ParticipantChange`, in the queue's
//!   transaction). An edit that changes nothing records one event without a compartment.
//! - *The agenda records one `Read` per plan it showed lines of* (object `agenda`), in one
//!   transaction: a plan the agenda looked at but showed nothing of reached no one's eyes.
//! - *The plan list is not recorded*: it names families (as a table of contents does), and
//!   every plan opened from it is. Loading a plan into memory (`open_plan`), compaction and
//!   review marks show nothing and are not recorded either; neither are the membership
//!   (the access graph, which the server sees anyway) nor the test hooks that open bytes
//!   from elsewhere (`open_sealed_bundle`, `held_document_key`).
//! - *Key sharing has no entry point of its own*: a sync seals keys to the devices the chain
//!   lists; the act that lets them read (adding a participant) is the recorded event.
//! - *Fail closed.* When the event of a read cannot be written, the read returns that error
//!   instead of the content. When the event of a refusal cannot be written, the refusal is
//!   returned all the same.
//! - *Durability.* The store commits with `synchronous=FULL` (an fsync per commit: about a
//!   millisecond or more on a phone's flash, five times the 0.2 ms a read may cost for its
//!   event). Events of writes ride in the write's own `FULL` transaction. Events recorded
//!   outside a write — reads and refusals, where nothing else changed — commit with
//!   `synchronous=NORMAL` ([`crate::store::Store::write_light`]): in WAL mode such a commit
//!   survives a killed app (it is in the WAL, which the OS holds), and is lost only by a
//!   power cut before the next `FULL` commit or checkpoint, which syncs the WAL and with it
//!   every earlier event. The chain's head is in the same transaction as its events, so a
//!   lost tail leaves a shorter chain, never a broken one. `Print` and `Export` (content
//!   leaving the device) commit `FULL`. Before any event is uploaded the device checkpoints
//!   ([`crate::store::Store::make_durable`]): the server never holds an event the device
//!   could lose and then write again differently at the same position.
//! - *Who acts* is the device's own certificate (user id, name, organisation, role), as
//!   verified against the pinned root; a certificate whose validity has passed still names
//!   its holder. Before enrolment the actor is the device id with user 0 and empty names.
//!   `on_behalf_of` is the organisation of the plan's regisseur by the verified chain, when
//!   it is not the actor's own.
//! - *The user cannot delete events.* No API does; they leave the device only when the
//!   server acknowledged keeping them ([`SyncResponse::audit_through`]), never beyond what
//!   this device sent it, and the head stays so the chain continues. A wipe destroys them
//!   with everything else.
//!
//! [`SyncResponse::audit_through`]: eenplan_protocol::sync::SyncResponse::audit_through

mod record;
mod upload;

#[cfg(test)]
mod tests;

use eenplan_protocol::audit::{Actor, AuditEvent, ChainHead};
pub use eenplan_protocol::audit::{AuditAction, AuditResult, SignedEvent};

use crate::device::Device;
use crate::error::CoreError;
use crate::ids::PlanId;
use crate::plan::{Compartment, PlanError};
use crate::store::{Store, StoreError, StoreWriter};

pub(crate) use record::conflict_entity;
pub use upload::AuditKeyRefusal;

/// What a screen that shows plan content tells its user: "dit wordt vastgelegd".
pub const NOTICE: &str = "Wat u in dit plan bekijkt of wijzigt, wordt vastgelegd in het toegangslogboek: wie, \
     wanneer en welk plan (NEN 7513). De inhoud van het plan staat daar niet in.";

/// [`NOTICE`], for hosts that call functions.
pub fn notice() -> &'static str {
    NOTICE
}

/// The access-log events waiting on a device ([`Device::audit_backlog`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AuditBacklog {
    pub events: u64,
    pub sealed_bytes: u64,
}

/// Sync state: the chain's head ([`ChainHead`], CBOR).
const STATE_HEAD: &str = "audit_head";

/// One access, before it is signed: ids only, never plan content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Access {
    pub action: AuditAction,
    pub plan: Option<PlanId>,
    pub compartment: Option<Compartment>,
    pub object: Option<String>,
    pub result: AuditResult,
    pub detail: Option<String>,
}

impl Access {
    /// `action` on `plan`, done.
    pub(crate) fn on(action: AuditAction, plan: PlanId) -> Access {
        Access { plan: Some(plan), ..Access::of(action) }
    }

    /// `action` on no plan in particular (the agenda, an import before its file is open).
    pub(crate) fn of(action: AuditAction) -> Access {
        Access {
            action,
            plan: None,
            compartment: None,
            object: None,
            result: AuditResult::Done,
            detail: None,
        }
    }

    pub(crate) fn object(self, object: impl Into<String>) -> Access {
        Access { object: Some(object.into()), ..self }
    }

    pub(crate) fn compartment(self, compartment: Compartment) -> Access {
        Access { compartment: Some(compartment), ..self }
    }

    /// The same access, ended by `error`.
    fn ended_by(self, error: &CoreError) -> Access {
        let (result, kind) = error_kind(error);
        Access { result, detail: Some(kind.to_owned()), ..self }
    }
}

/// Whether an error was a refusal or a failure, and its kind: what goes into `detail` (the
/// error's message may quote plan content, its kind never does).
pub(crate) fn error_kind(error: &CoreError) -> (AuditResult, &'static str) {
    use AuditResult::{Failed, Refused};
    match error {
        CoreError::LeaseExpired { .. } => (Refused, "lease_expired"),
        CoreError::UnknownPlan(_)
        | CoreError::NoMatchingPlan(_)
        | CoreError::AmbiguousPlan(_)
        | CoreError::PlanPrefixTooShort(_) => (Refused, "unknown_plan"),
        CoreError::NotAllowed(_) => (Refused, "not_allowed"),
        CoreError::AdoptedVersionResealed { .. } => (Refused, "resealed"),
        CoreError::Plan(PlanError::CompartmentNotHeld(_)) => (Refused, "compartment_not_held"),
        CoreError::Wiped => (Refused, "wiped"),
        CoreError::Closed => (Refused, "closed"),
        CoreError::PlanClosed(_) => (Refused, "plan_closed"),
        CoreError::Plan(PlanError::Invalid(_)) | CoreError::InvalidDeviceLabel(_) => (Failed, "invalid"),
        CoreError::Plan(_) => (Failed, "plan"),
        CoreError::Store(_) => (Failed, "store"),
        CoreError::KeyStore(_) | CoreError::WrongUnlock { .. } => (Failed, "keystore"),
        CoreError::Sync(_) => (Failed, "sync"),
        CoreError::Transfer(_) => (Failed, "transfer"),
        CoreError::Io { .. } => (Failed, "io"),
        CoreError::Inconsistent => (Failed, "inconsistent"),
        CoreError::NotInitialised | CoreError::AlreadyInitialised => (Failed, "device"),
    }
}

/// The entry point being served: what it records, and whether it has.
#[derive(Debug)]
struct Frame {
    access: Access,
    /// The action an edit inside this entry point records (`Change`, or `Settle`/`Adopt`
    /// when the edit is the act itself).
    edits_as: AuditAction,
    recorded: bool,
}

/// The chain as this device holds it, and the access being served.
#[derive(Debug, Default)]
pub(crate) struct AuditState {
    head: ChainHead,
    /// Whether an entry point is being served: set by the outermost one, cleared by a guard
    /// that also runs when a call panics, so that no later call is taken for a nested one
    /// (which records nothing).
    serving: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The entry point being served; meaningful only while `serving` is set.
    frame: Option<Frame>,
    /// Who acts, by the stored certificate record it was read from: verifying a certificate
    /// costs more than a read may.
    actor: Option<(Vec<u8>, Actor)>,
}

impl AuditState {
    pub(crate) fn load(store: &Store) -> Result<AuditState, StoreError> {
        let head = match store.sync_state(STATE_HEAD)? {
            Some(bytes) => eenplan_protocol::sync::decode(&bytes, 256)
                .map_err(|_| StoreError::Corrupt("the access log's head is not decodable".into()))?,
            None => ChainHead::default(),
        };
        Ok(AuditState { head, ..AuditState::default() })
    }
}

/// Events signed and numbered, not yet written: written in a write's own transaction
/// ([`write_prepared`]), then taken in with [`Device::audit_committed`].
#[derive(Debug)]
#[must_use]
pub(crate) struct Prepared {
    events: Vec<(u64, Vec<u8>)>,
    head: ChainHead,
    actions: Vec<AuditAction>,
}

/// Writes prepared events and the chain's new head, in the caller's transaction.
pub(crate) fn write_prepared(w: &mut StoreWriter<'_>, prepared: &Prepared) -> Result<(), StoreError> {
    for (seq, event) in &prepared.events {
        w.put_audit_event(*seq, event)?;
    }
    if !prepared.events.is_empty() {
        w.put_state(STATE_HEAD, &eenplan_protocol::sync::encode(&prepared.head))?;
    }
    Ok(())
}

fn sign(
    device: &Device,
    actor: &Actor,
    at_ms: i64,
    head: ChainHead,
    access: &Access,
    on_behalf_of: Option<String>,
) -> eenplan_protocol::audit::SignedEvent {
    let seq = head.seq + 1;
    let event = AuditEvent {
        seq,
        prev: head.hash,
        at_ms,
        actor: actor.clone(),
        on_behalf_of,
        action: access.action,
        plan: access.plan.map(|p| eenplan_protocol::sync::Fixed(*p.as_bytes())),
        compartment: access.compartment.map(|c| c as u8),
        object: access.object.clone(),
        result: access.result,
        detail: access.detail.clone(),
    };
    event.sign(device.identity().signing_key())
}
