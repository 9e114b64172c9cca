//! What live sockets hear: hints that a document changed, and devices revoked.
//!
//! One [`LiveEvents`] per server process holds the two in-process broadcast channels every
//! live socket subscribes to. A route (or the group commit) announces an event *after* the
//! transaction that made it true has committed.
//!
//! When several processes share one PostgreSQL database, a device's socket may be held by
//! another process than the one its plan's push reached. The [`relay`] then carries every
//! event to the other processes over PostgreSQL's `NOTIFY`, and hears theirs with `LISTEN`:
//!
//! ```text
//! instance A: push commits ─► local broadcast ─► A's sockets
//!                          └► relay: NOTIFY eenplan_live 'a1b2…:c:<doc>'
//! instance B: relay LISTEN ─► (not from B) ─► local broadcast ─► B's sockets
//! ```
//!
//! Whatever the relay may have missed (its connection broke, its queue overflowed) becomes a
//! [`Hint::Resync`] on the instances that missed it: every socket there is told
//! `LIVE_RESYNC`, so its device syncs, and looks its device up again, so a revocation that
//! was missed still closes it.

pub mod relay;

use eenplan_protocol::DocumentId;
use tokio::sync::broadcast;

use crate::storage::DeviceId;
pub use relay::RelayTarget;
use relay::{Relay, RelayEvent};

/// Hints a slow live connection may fall behind by before it is told to resync.
pub const HINT_CAPACITY: usize = 4096;
/// Revocations a slow live connection may fall behind by; beyond that it looks its device up.
pub const REVOCATION_CAPACITY: usize = 256;

/// What a live socket is told about documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// The document got new bundles (or new readers): devices that may read it should sync.
    Document(DocumentId),
    /// Hints (and perhaps revocations) were lost on the way: every device should sync, and
    /// every socket look its device up again.
    Resync,
}

/// The process's live events, and the relay to the other processes when there are any.
#[derive(Debug)]
pub struct LiveEvents {
    hints: broadcast::Sender<Hint>,
    revocations: broadcast::Sender<DeviceId>,
    relay: Option<Relay>,
}

impl LiveEvents {
    /// Events for this process only (one server on its own database).
    pub fn local() -> LiveEvents {
        let (hints, _) = broadcast::channel(HINT_CAPACITY);
        let (revocations, _) = broadcast::channel(REVOCATION_CAPACITY);
        LiveEvents { hints, revocations, relay: None }
    }

    /// Events shared with every process that relays through `target`; the relay's threads
    /// start now and connect (and reconnect) on their own.
    pub fn relayed(target: &RelayTarget) -> std::io::Result<LiveEvents> {
        let mut events = LiveEvents::local();
        events.relay = Some(Relay::start(target, events.hints.clone(), events.revocations.clone())?);
        Ok(events)
    }

    /// `document` changed; tells this process's sockets now and the other processes' soon.
    pub fn hint(&self, document: DocumentId) {
        // No receivers (no live connections) is not an error.
        let _ = self.hints.send(Hint::Document(document));
        if let Some(relay) = &self.relay {
            relay.send(RelayEvent::Changed(document));
        }
    }

    /// Hints every document of `plan`: who takes part changed, so the online devices of its
    /// participants sync (a new one receives the plan's history).
    pub fn hint_plan(&self, plan: [u8; 16]) {
        for compartment in 0..DocumentId::COMPARTMENTS {
            self.hint(DocumentId { plan, compartment });
        }
    }

    /// `device` was revoked or re-certified: its sockets, on every process, close.
    pub fn revoked(&self, device: DeviceId) {
        let _ = self.revocations.send(device);
        if let Some(relay) = &self.relay {
            relay.send(RelayEvent::Revoked(device));
        }
    }

    /// Hints from now on.
    pub fn hints(&self) -> broadcast::Receiver<Hint> {
        self.hints.subscribe()
    }

    /// Revocations from now on. A receiver that falls behind re-checks its device instead.
    pub fn revocations(&self) -> broadcast::Receiver<DeviceId> {
        self.revocations.subscribe()
    }

    /// Stops the relay's threads (after sending what is queued); local events keep working.
    pub fn shutdown(&self) {
        if let Some(relay) = &self.relay {
            relay.shutdown();
        }
    }
}
