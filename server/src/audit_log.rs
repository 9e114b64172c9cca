//! The server's own access log (DESIGN §8): the same signed hash chain of
//! [`AuditEvent`]s that devices keep, signed with the server's audit key, so that
//! `eenplan-admin audit verify` judges it with the same rules (`verify_chain`).
//!
//! What it records is what the server knows anyway (device ids, user ids and names, plan
//! ids, counts), so it is stored unsealed. Who acted:
//!
//! | event | actor | `object` / `detail` |
//! |---|---|---|
//! | `Session` | the device's user | — |
//! | `Sync` | the device's user | `detail`: `pushed N, delivered M, audit K` |
//! | `Revocation` | the administrator | `object`: the revoked device (hex) |
//! | `AdminRequest` | the administrator | `object`: `METHOD /path`; `detail`: the error code |
//! | `LogRead` | the administrator | `object`: `plan:…`, `user:…`, `device:…`, `org:…`, `server` |
//!
//! **Durability.** An administrator's request is recorded in its own transaction before its
//! answer ([`ServerAudit::record`]); a log read is recorded *before* anything is read, so
//! the log cannot be read unlogged. Sessions and syncs are the hot path: they are queued
//! ([`ServerAudit::enqueue`]) to one writer thread that signs whatever waits and appends it
//! in one transaction, like the group commit, so a morning peak costs a transaction per
//! batch, not per sync, and the answer never waits for it. The price: a crash loses the
//! session and sync events of the batch in flight (milliseconds); the pushes themselves are
//! durable, and the accesses that matter (reads, edits) are in the devices' own chains.
//!
//! The chain head lives in memory behind one lock that both paths take, so positions are
//! consecutive; storage refuses an append that does not continue the stored chain, and the
//! head is then read again (another process wrote the file, or a write failed halfway).
//! Queued events are taken only under that lock, and a recorded event takes everything
//! queued before it into its own transaction: once an administrator's request is answered,
//! every session and sync before it is in the log too (a log read sees them all).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use ed25519_dalek::SigningKey;
use eenplan_protocol::audit::{Actor, AuditAction, AuditEvent, AuditResult, ChainHead, SignedEvent};
use eenplan_protocol::sync::Fixed;

use crate::auth::now_ms;
use crate::storage::{DeviceRecord, ServerEventRecord, Storage, StorageError, User};

/// Stop taking more events into one transaction past this.
const MAX_BATCH: usize = 4096;
/// How often one batch is signed again after another process appended first.
const APPEND_ATTEMPTS: usize = 8;

/// An event before the chain gives it a position, a time and a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub actor: Actor,
    pub on_behalf_of: Option<String>,
    pub action: AuditAction,
    pub plan: Option<[u8; 16]>,
    pub object: Option<String>,
    pub result: AuditResult,
    pub detail: Option<String>,
}

impl Draft {
    pub fn new(actor: Actor, action: AuditAction) -> Draft {
        Draft {
            actor,
            on_behalf_of: None,
            action,
            plan: None,
            object: None,
            result: AuditResult::Done,
            detail: None,
        }
    }
}

/// Events waiting for the writer thread.
#[derive(Default)]
struct Pending {
    drafts: Vec<Draft>,
    stopping: bool,
}

/// The server's chain: its key, its head, and the writer thread for queued events.
pub struct ServerAudit {
    storage: Arc<dyn Storage>,
    key: SigningKey,
    /// Locked before `pending` wherever both are held.
    head: Mutex<ChainHead>,
    pending: Mutex<Pending>,
    wake: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for ServerAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerAudit").finish_non_exhaustive()
    }
}

impl ServerAudit {
    /// Reads (or makes, once) the server's audit key and the chain's head, and starts the
    /// writer thread.
    pub fn start(storage: Arc<dyn Storage>) -> Result<Arc<ServerAudit>, StorageError> {
        let key = SigningKey::from_bytes(&storage.server_audit_seed()?);
        let head = stored_head(&*storage)?;
        let audit = Arc::new(ServerAudit {
            storage,
            key,
            head: Mutex::new(head),
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            thread: Mutex::new(None),
        });
        let writer = audit.clone();
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.write_queued())
            .map_err(|e| StorageError::Backend(format!("could not start the audit writer: {e}")))?;
        *lock(&audit.thread) = Some(thread);
        Ok(audit)
    }

    /// The key the administrator pins and checks the server's chain with.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Appends `draft` durably before returning, with every event queued before it.
    pub fn record(&self, draft: Draft) -> Result<(), StorageError> {
        let mut head = lock(&self.head);
        let mut drafts = std::mem::take(&mut lock(&self.pending).drafts);
        drafts.push(draft);
        self.append(&mut head, &drafts)
    }

    /// Queues `draft` for the writer thread; never waits for a disk.
    pub fn enqueue(&self, draft: Draft) {
        lock(&self.pending).drafts.push(draft);
        self.wake.notify_one();
    }

    /// Writes everything queued, then stops the writer thread.
    pub fn shutdown(&self) {
        lock(&self.pending).stopping = true;
        self.wake.notify_one();
        let thread = lock(&self.thread).take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!("the audit writer panicked");
        }
    }

    fn write_queued(&self) {
        loop {
            let stopping = {
                let mut pending = lock(&self.pending);
                while pending.drafts.is_empty() && !pending.stopping {
                    pending = self.wake.wait(pending).unwrap_or_else(PoisonError::into_inner);
                }
                pending.stopping
            };
            // Taken under the head's lock, so a recorded event never overtakes them unwritten.
            let mut head = lock(&self.head);
            let drafts = std::mem::take(&mut lock(&self.pending).drafts);
            for batch in drafts.chunks(MAX_BATCH) {
                if let Err(e) = self.append(&mut head, batch) {
                    tracing::error!(error = %e, events = batch.len(), "server audit events were not recorded");
                }
            }
            if stopping {
                return;
            }
        }
    }

    /// Signs `drafts` as the next positions of the chain and stores them in one transaction.
    /// A conflict (the stored chain moved) reads the head again and signs again, up to
    /// [`APPEND_ATTEMPTS`] times: with several server processes on one database, each
    /// appends to the same chain, so a stale head is the normal case, not a fault.
    fn append(&self, head: &mut ChainHead, drafts: &[Draft]) -> Result<(), StorageError> {
        let mut attempt = 1;
        loop {
            let (records, next) = self.sign(drafts, *head);
            match self.storage.append_server_events(&records) {
                Ok(()) => {
                    *head = next;
                    return Ok(());
                }
                Err(StorageError::Conflict(detail)) if attempt < APPEND_ATTEMPTS => {
                    tracing::debug!(%detail, "the server audit chain moved; signing again after its stored head");
                    *head = stored_head(&*self.storage)?;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn sign(&self, drafts: &[Draft], mut head: ChainHead) -> (Vec<ServerEventRecord>, ChainHead) {
        let at = now_ms();
        let mut records = Vec::with_capacity(drafts.len());
        for draft in drafts {
            let seq = head.seq + 1;
            let event = AuditEvent {
                seq,
                prev: head.hash,
                at_ms: at,
                actor: draft.actor.clone(),
                on_behalf_of: draft.on_behalf_of.clone(),
                action: draft.action,
                plan: draft.plan.map(Fixed),
                compartment: None,
                object: draft.object.clone(),
                result: draft.result,
                detail: draft.detail.clone(),
            };
            let signed = event.sign(&self.key);
            head = ChainHead::after(&signed, seq);
            records.push(ServerEventRecord { seq, signed: signed.to_bytes(), at });
        }
        (records, head)
    }
}

/// A poisoned lock only means a thread panicked holding it; the head it guards is only ever
/// replaced whole after a commit.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn stored_head(storage: &dyn Storage) -> Result<ChainHead, StorageError> {
    match storage.last_server_event()? {
        None => Ok(ChainHead::default()),
        Some(record) => {
            let signed = SignedEvent::from_bytes(&record.signed)
                .map_err(|_| StorageError::Corrupt("a server audit event does not decode".into()))?;
            Ok(ChainHead::after(&signed, record.seq))
        }
    }
}

/// The actor of a server event a device caused: its user as the server knows them.
pub fn device_actor(storage: &dyn Storage, device: &DeviceRecord) -> Result<Actor, StorageError> {
    let (user, organisation) = storage.user_with_organisation(device.user)?.ok_or(StorageError::NotFound)?;
    Ok(actor_of(device, user, organisation))
}

/// The actor of a server event a device caused, from its user and organisation as already
/// read.
pub fn actor_of(device: &DeviceRecord, user: User, organisation: String) -> Actor {
    Actor {
        device: Fixed(device.device_id.0),
        user_id: user.id.0,
        user_name: user.name,
        organisation,
        role: user.role,
    }
}

/// The actor of a server event an administrator caused.
pub fn admin_actor(name: &str) -> Actor {
    Actor {
        device: Fixed([0; 16]),
        user_id: 0,
        user_name: name.to_owned(),
        organisation: String::new(),
        role: "beheerder".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SqliteStorage;
    use eenplan_protocol::audit::verify_chain;

    #[test]
    fn recorded_and_queued_events_form_one_chain_that_verifies_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(SqliteStorage::open(dir.path().join("s.db")).unwrap());
        let audit = ServerAudit::start(storage.clone()).unwrap();
        let key = audit.public_key();
        audit.record(Draft::new(admin_actor("Beheer"), AuditAction::AdminRequest)).unwrap();
        for _ in 0..50 {
            audit.enqueue(Draft::new(admin_actor("x"), AuditAction::Sync));
        }
        audit.shutdown();
        let again = ServerAudit::start(storage.clone()).unwrap();
        assert_eq!(again.public_key(), key, "the key is made once");
        again.record(Draft::new(admin_actor("Beheer"), AuditAction::LogRead)).unwrap();
        again.shutdown();
        let events: Vec<(u64, SignedEvent)> = storage
            .server_events(0, 1000)
            .unwrap()
            .into_iter()
            .map(|r| (r.seq, SignedEvent::from_bytes(&r.signed).unwrap()))
            .collect();
        assert_eq!(events.len(), 52);
        let report = verify_chain(&ed25519_dalek::VerifyingKey::from_bytes(&key).unwrap(), events);
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        assert_eq!(report.events.last().unwrap().action, AuditAction::LogRead);
    }
}
