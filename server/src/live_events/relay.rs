//! The relay between server processes that share one PostgreSQL database: each event goes
//! out with `NOTIFY eenplan_live`, and every process `LISTEN`s for the others'.
//!
//! Two threads per process, each on its own connection (outside the storage pool, whose
//! connections run transactions):
//! - the *notifier* takes what is queued (at most [`BATCH`] events) and sends it in one
//!   statement. A failed send drops that batch and marks the relay as having lost events;
//!   the first send that succeeds afterwards adds a `resync` for every other process.
//! - the *listener* hears every process's events and hands on those of other processes to the
//!   local broadcast channels. After each (re)connection it tells its own sockets to resync,
//!   since whatever was sent while it was not listening is gone.
//!
//! A payload is `<instance>:<kind>:<id>`, all hex: the sending process's random instance id
//! (so a process skips its own events, which it delivered locally already), `c` (a document
//! changed), `r` (a device revoked) or `s` (resync, no id). An event carries no authority: a
//! hint only makes a device sync through the ordinary checks, and a socket that hears its
//! device revoked looks the device up before it says so.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use eenplan_protocol::DocumentId;
use eenplan_protocol::api::{hex, unhex};
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};
use tokio::sync::broadcast;

use super::{HINT_CAPACITY, Hint};
use crate::storage::DeviceId;

/// The PostgreSQL channel every process of one database talks on.
const CHANNEL: &str = "eenplan_live";
/// Events waiting for the notifier; past this they are dropped and the others told to resync.
const QUEUE: usize = HINT_CAPACITY;
/// Events sent in one statement.
const BATCH: usize = 512;
/// How long a thread waits for work before it looks at the stop flag again.
const POLL: Duration = Duration::from_millis(500);
/// The longest wait between two attempts to reach the database.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The database the relay talks through: the same one the storage uses.
#[derive(Clone)]
pub struct RelayTarget(postgres::Config);

impl std::fmt::Debug for RelayTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration holds the password.
        f.write_str("RelayTarget(..)")
    }
}

impl RelayTarget {
    /// `url` is `postgres://user[:password]@host[:port]/db`, as given to `serve --database`.
    pub fn parse(url: &str) -> Result<RelayTarget, String> {
        let mut config: postgres::Config =
            url.parse().map_err(|e| format!("the database URL does not parse: {e}"))?;
        config
            .application_name("eenplan-relay")
            .connect_timeout(Duration::from_secs(5))
            // A listener on a silently dead connection would hear nothing and never know.
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        Ok(RelayTarget(config))
    }

    fn connect(&self) -> Result<Client, postgres::Error> {
        self.0.connect(NoTls)
    }
}

/// One event between processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RelayEvent {
    Changed(DocumentId),
    Revoked(DeviceId),
    /// The sender lost events: every receiver tells its sockets to resync.
    Resync,
}

/// Why a payload was not understood (another program may `NOTIFY` on the same channel).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum PayloadError {
    #[error("not <instance>:<kind>:<id>")]
    Shape,
    #[error("an id that is not hex of the right length")]
    Id,
    #[error("an unknown kind {0:?}")]
    Kind(String),
}

type Instance = [u8; 8];

fn encode(instance: &Instance, event: RelayEvent) -> String {
    let me = hex(instance);
    match event {
        RelayEvent::Changed(document) => format!("{me}:c:{}", hex(&document.to_bytes())),
        RelayEvent::Revoked(device) => format!("{me}:r:{}", hex(&device.0)),
        RelayEvent::Resync => format!("{me}:s:"),
    }
}

fn decode(payload: &str) -> Result<(Instance, RelayEvent), PayloadError> {
    let mut parts = payload.splitn(3, ':');
    let (Some(instance), Some(kind), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(PayloadError::Shape);
    };
    let instance: Instance = unhex(instance).and_then(|b| b.try_into().ok()).ok_or(PayloadError::Id)?;
    let event = match kind {
        "c" => {
            let bytes = unhex(id).ok_or(PayloadError::Id)?;
            RelayEvent::Changed(DocumentId::from_bytes(&bytes).map_err(|_| PayloadError::Id)?)
        }
        "r" => {
            RelayEvent::Revoked(DeviceId(unhex(id).and_then(|b| b.try_into().ok()).ok_or(PayloadError::Id)?))
        }
        "s" if id.is_empty() => RelayEvent::Resync,
        other => return Err(PayloadError::Kind(other.to_owned())),
    };
    Ok((instance, event))
}

/// The relay's side of one process.
#[derive(Debug)]
pub(crate) struct Relay {
    outgoing: SyncSender<RelayEvent>,
    /// An event was dropped because the queue was full.
    overflowed: Arc<AtomicBool>,
    stop: Arc<Stop>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Relay {
    pub(crate) fn start(
        target: &RelayTarget,
        hints: broadcast::Sender<Hint>,
        revocations: broadcast::Sender<DeviceId>,
    ) -> std::io::Result<Relay> {
        let mut instance = [0u8; 8];
        getrandom::fill(&mut instance).map_err(std::io::Error::other)?;
        let (outgoing, queue) = mpsc::sync_channel(QUEUE);
        let overflowed = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(Stop::default());
        let notifier = Notifier {
            target: target.clone(),
            instance,
            queue,
            overflowed: overflowed.clone(),
            stop: stop.clone(),
        };
        let listener = Listener { target: target.clone(), instance, hints, revocations, stop: stop.clone() };
        let threads = vec![
            std::thread::Builder::new().name("relay-notify".into()).spawn(move || notifier.run())?,
            std::thread::Builder::new().name("relay-listen".into()).spawn(move || listener.run())?,
        ];
        Ok(Relay { outgoing, overflowed, stop, threads: Mutex::new(threads) })
    }

    /// Queues `event` for the other processes; never waits.
    pub(crate) fn send(&self, event: RelayEvent) {
        match self.outgoing.try_send(event) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => self.overflowed.store(true, Ordering::Release),
        }
    }

    /// Sends what is queued, then stops both threads and waits for them.
    pub(crate) fn shutdown(&self) {
        self.stop.set();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("a relay thread panicked");
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.set();
    }
}

/// The relay's stop signal: a flag the threads look at, and a wake-up for a thread waiting
/// out a backoff, so that shutdown is not held up by it.
#[derive(Debug, Default)]
struct Stop {
    stopped: Mutex<bool>,
    woken: Condvar,
}

impl Stop {
    fn set(&self) {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.woken.notify_all();
    }

    fn is_set(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits `timeout`, or less if the relay stops meanwhile.
    fn wait(&self, timeout: Duration) {
        let stopped = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = self.woken.wait_timeout_while(stopped, timeout, |stopped| !*stopped);
    }
}

/// Waits between attempts to reach the database: 100 ms, doubling, at most [`MAX_BACKOFF`];
/// cut short when the relay stops.
struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);

    fn wait(&mut self, stop: &Stop) {
        stop.wait(self.0);
        self.0 = (self.0 * 2).min(MAX_BACKOFF);
    }
}

struct Notifier {
    target: RelayTarget,
    instance: Instance,
    queue: Receiver<RelayEvent>,
    overflowed: Arc<AtomicBool>,
    stop: Arc<Stop>,
}

impl Notifier {
    fn run(self) {
        let mut client: Option<Client> = None;
        // Events were dropped since the last batch that reached the database.
        let mut lost = false;
        let mut backoff = Backoff(Backoff::FIRST);
        loop {
            let stopping = self.stop.is_set();
            let first = match self.queue.recv_timeout(POLL) {
                Ok(event) => Some(event),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut batch: Vec<String> = first
                .into_iter()
                .chain(self.queue.try_iter().take(BATCH - 1))
                .map(|event| encode(&self.instance, event))
                .collect();
            lost |= self.overflowed.swap(false, Ordering::AcqRel);
            if lost {
                batch.push(encode(&self.instance, RelayEvent::Resync));
            }
            if !batch.is_empty() {
                match self.send(&mut client, &batch) {
                    Ok(()) => {
                        lost = false;
                        backoff = Backoff(Backoff::FIRST);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, events = batch.len(), "the relay could not notify the other servers");
                        client = None;
                        lost = true;
                        if !stopping {
                            backoff.wait(&self.stop);
                        }
                    }
                }
            }
            // Stopping: everything queued before the flag was set has had its one attempt.
            if stopping && first.is_none() {
                return;
            }
        }
    }

    /// Sends `payloads` in one statement. A connection found dead (the database restarted, or
    /// cut it) is replaced and the statement tried once more, so that the batch survives it.
    fn send(&self, client: &mut Option<Client>, payloads: &[String]) -> Result<(), postgres::Error> {
        const NOTIFY: &str = "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p";
        if let Some(connected) = client.as_mut().filter(|c| !c.is_closed()) {
            match connected.execute(NOTIFY, &[&CHANNEL, &payloads]) {
                Ok(_) => return Ok(()),
                Err(e) if !connected.is_closed() => return Err(e),
                Err(_) => {}
            }
        }
        let connected = client.insert(self.target.connect()?);
        connected.execute(NOTIFY, &[&CHANNEL, &payloads])?;
        Ok(())
    }
}

/// Why the listener's connection ended.
#[derive(Debug, thiserror::Error)]
enum Broken {
    #[error(transparent)]
    Postgres(#[from] postgres::Error),
    #[error("the database closed the connection")]
    Closed,
}

struct Listener {
    target: RelayTarget,
    instance: Instance,
    hints: broadcast::Sender<Hint>,
    revocations: broadcast::Sender<DeviceId>,
    stop: Arc<Stop>,
}

impl Listener {
    fn run(self) {
        let mut backoff = Backoff(Backoff::FIRST);
        while !self.stop.is_set() {
            let mut client = match self.listen() {
                Ok(client) => client,
                Err(e) => {
                    tracing::warn!(error = %e, "the relay cannot listen to the other servers");
                    backoff.wait(&self.stop);
                    continue;
                }
            };
            backoff = Backoff(Backoff::FIRST);
            // Whatever was sent before this LISTEN (at start, or while disconnected) is gone.
            let _ = self.hints.send(Hint::Resync);
            if let Err(e) = self.hear(&mut client) {
                tracing::warn!(error = %e, "the relay lost its connection; reconnecting");
            }
        }
    }

    fn listen(&self) -> Result<Client, postgres::Error> {
        let mut client = self.target.connect()?;
        client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
        Ok(client)
    }

    /// Hands on other processes' events until the connection breaks or the relay stops.
    fn hear(&self, client: &mut Client) -> Result<(), Broken> {
        while !self.stop.is_set() {
            {
                let mut notifications = client.notifications();
                let mut waiting = notifications.timeout_iter(POLL);
                while let Some(notification) = waiting.next()? {
                    self.hand_on(notification.payload());
                    if self.stop.is_set() {
                        return Ok(());
                    }
                }
            }
            // `None` is a quiet interval, or the end of the connection.
            if client.is_closed() {
                return Err(Broken::Closed);
            }
        }
        Ok(())
    }

    fn hand_on(&self, payload: &str) {
        match decode(payload) {
            Ok((from, _)) if from == self.instance => {}
            Ok((_, RelayEvent::Changed(document))) => {
                let _ = self.hints.send(Hint::Document(document));
            }
            Ok((_, RelayEvent::Revoked(device))) => {
                let _ = self.revocations.send(device);
            }
            Ok((_, RelayEvent::Resync)) => {
                let _ = self.hints.send(Hint::Resync);
            }
            Err(e) => tracing::warn!(error = %e, "an event on the relay's channel that is not the relay's"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_survives_its_payload() {
        let me = [7u8; 8];
        let document = DocumentId { plan: [3; 16], compartment: 2 };
        for event in
            [RelayEvent::Changed(document), RelayEvent::Revoked(DeviceId([9; 16])), RelayEvent::Resync]
        {
            assert_eq!(decode(&encode(&me, event)), Ok((me, event)));
        }
    }

    #[test]
    fn payloads_the_relay_did_not_write_are_refused_with_a_reason() {
        let me = hex(&[7u8; 8]);
        assert_eq!(decode("hello"), Err(PayloadError::Shape));
        assert_eq!(decode(&format!("{me}:c")), Err(PayloadError::Shape));
        assert_eq!(decode("zz:c:00"), Err(PayloadError::Id));
        assert_eq!(decode(&format!("{me}:c:{}", hex(&[0; 16]))), Err(PayloadError::Id));
        // A compartment that does not exist.
        assert_eq!(decode(&format!("{me}:c:{}", hex(&[0; 17]).replace("00", "09"))), Err(PayloadError::Id));
        assert_eq!(decode(&format!("{me}:r:{}", hex(&[1; 17]))), Err(PayloadError::Id));
        assert_eq!(decode(&format!("{me}:x:")), Err(PayloadError::Kind("x".into())));
        assert_eq!(decode(&format!("{me}:s:00")), Err(PayloadError::Kind("s".into())));
    }
}
