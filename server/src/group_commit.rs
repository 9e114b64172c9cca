//! Group commit: one writer thread turns many concurrent pushes into one durable transaction.
//!
//! A push is acknowledged only after its bundles are on stable storage, and with
//! `synchronous=FULL` each transaction costs an fsync (milliseconds on real disks). Requests
//! therefore do not write themselves: each sends its bundles to the writer thread with a
//! reply slot, and the thread takes *everything* queued at that moment, writes it with one
//! [`Storage::push_batch`], and answers each request with its own outcomes. Under load,
//! batches grow by themselves; with one device pushing, a batch is that one request and costs
//! no waiting.
//!
//! ```text
//! request A ─┐                      ┌─► A: [Appended 41]
//! request B ─┼─► queue ─► writer: push_batch([a1, b1, b2, c1]) ─► fsync ─┼─► B: [Appended 42, Duplicate 17]
//! request C ─┘                      └─► C: [Appended 43]
//!                                    then hints: doc(a1), doc(b1), doc(c1) to live connections
//! ```
//!
//! If a whole batch fails, each request is retried alone, so one request's problem (a
//! bundle storage refuses) cannot fail the others. After the commit the thread publishes one
//! hint per document that got a new bundle through [`LiveEvents`] (to this process's live
//! connections, and through the relay to other processes'); live connections filter them by
//! what their device may read. A bundle that was already stored is hinted again: the device
//! retried it because it never heard the answer, perhaps from a server process that died
//! between its commit and its hint.
//!
//! A request whose sync answer is begun ([`GroupCommit::push_and_begin`], with an
//! [`AnswerStart`] that wants its facts) also has its answer's first statement read by the
//! thread, after the commit, in one statement with the rest of the batch's
//! ([`Storage::read_answer_facts`]): on PostgreSQL that statement's start-up and round trip
//! were about half of the database's CPU per push, and a group pays them once. A failed
//! group read fails no push: each answer then reads its own.
//!
//! Shutdown: [`GroupCommit::shutdown`] queues a stop marker behind whatever is waiting, so
//! every push that was submitted is written and answered before the thread ends.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::live_events::LiveEvents;
use crate::metrics::Metrics;
use crate::storage::{AnswerStart, NewBundle, PushOutcome, Storage, StorageError};

/// Stop taking more requests into a batch past these, so one transaction stays bounded.
const MAX_BATCH_REQUESTS: usize = 512;
const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the writer has stopped (the server is shutting down)")]
    Stopped,
}

enum Message {
    Push(Box<Job>),
    Stop,
}

/// One request's bundles, its begun answer, and where its outcome goes.
struct Job {
    items: Vec<NewBundle>,
    answer: Option<AnswerStart>,
    reply: Reply,
}

/// A request's outcomes, in its bundles' order, and its answer, with its facts when the
/// group read them.
type Committed = (Vec<PushOutcome>, Option<AnswerStart>);

/// The handle requests use. Dropping it does not stop the thread; call
/// [`GroupCommit::shutdown`].
#[derive(Debug)]
pub struct GroupCommit {
    queue: mpsc::Sender<Message>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Push(job) => write!(f, "Push({} bundles)", job.items.len()),
            Message::Stop => f.write_str("Stop"),
        }
    }
}

impl GroupCommit {
    /// Starts the writer thread.
    pub fn start(
        storage: Arc<dyn Storage>,
        metrics: Arc<Metrics>,
        events: Arc<LiveEvents>,
    ) -> std::io::Result<GroupCommit> {
        let (queue, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || writer(&*storage, &metrics, &receiver, &events))?;
        Ok(GroupCommit { queue, thread: Mutex::new(Some(thread)) })
    }

    /// Appends `items` durably and reports each one's outcome, in order. Returns once the
    /// transaction that holds them has committed. Call it on a thread that may block (never a
    /// runtime worker): the thread parks until the commit, so a sync needs no wake-up through
    /// the runtime.
    pub fn push(&self, items: Vec<NewBundle>) -> Result<Vec<PushOutcome>, CommitError> {
        self.commit(items, None).map(|(outcomes, _)| outcomes)
    }

    /// [`GroupCommit::push`], and `answer`'s facts read after the commit with the rest of
    /// the batch's, when it wants them ([`AnswerStart::wants_facts`]). `answer` comes back
    /// as it went when nothing is pushed or the group read failed.
    pub fn push_and_begin(
        &self,
        items: Vec<NewBundle>,
        answer: AnswerStart,
    ) -> Result<(Vec<PushOutcome>, AnswerStart), CommitError> {
        let (outcomes, back) = self.commit(items, Some(answer))?;
        let answer = back.ok_or_else(|| {
            CommitError::Storage(StorageError::Backend("the group commit kept a request's answer".into()))
        })?;
        Ok((outcomes, answer))
    }

    fn commit(&self, items: Vec<NewBundle>, answer: Option<AnswerStart>) -> Result<Committed, CommitError> {
        if items.is_empty() {
            return Ok((Vec::new(), answer));
        }
        let (reply, committed) = oneshot::channel();
        self.queue
            .send(Message::Push(Box::new(Job { items, answer, reply })))
            .map_err(|_| CommitError::Stopped)?;
        Ok(committed.blocking_recv().map_err(|_| CommitError::Stopped)??)
    }

    /// Writes everything queued so far, then stops the thread and waits for it.
    pub fn shutdown(&self) {
        let _ = self.queue.send(Message::Stop);
        let thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!("the group-commit thread panicked");
        }
    }
}

type Reply = oneshot::Sender<Result<Committed, StorageError>>;

fn writer(storage: &dyn Storage, metrics: &Metrics, receiver: &mpsc::Receiver<Message>, events: &LiveEvents) {
    let mut stopping = false;
    while !stopping {
        // Block for the first request, then take whatever else is already waiting.
        let Ok(first) = receiver.recv() else { return };
        let mut jobs: Vec<Job> = Vec::new();
        let mut bytes = 0usize;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Push(job) => {
                    bytes = bytes.saturating_add(job.items.iter().map(|b| b.bytes.len()).sum());
                    jobs.push(*job);
                }
                Message::Stop => {
                    stopping = true;
                    break;
                }
            }
            if jobs.len() >= MAX_BATCH_REQUESTS || bytes >= MAX_BATCH_BYTES {
                break;
            }
            next = receiver.try_recv().ok();
        }
        if !jobs.is_empty() {
            commit(storage, metrics, events, jobs);
        }
    }
    // Stopping: a push queued behind the stop marker (none, when the HTTP server has drained
    // first) is still written rather than dropped.
    let rest: Vec<_> = receiver
        .try_iter()
        .filter_map(|m| match m {
            Message::Push(job) => Some(*job),
            Message::Stop => None,
        })
        .collect();
    if !rest.is_empty() {
        commit(storage, metrics, events, rest);
    }
}

fn commit(storage: &dyn Storage, metrics: &Metrics, events: &LiveEvents, mut jobs: Vec<Job>) {
    let all: Vec<NewBundle> = jobs.iter().flat_map(|job| job.items.iter().cloned()).collect();
    match write(storage, metrics, &all) {
        Ok(outcomes) => {
            publish(events, &all, &outcomes);
            read_answer_facts(storage, metrics, &mut jobs);
            let mut outcomes = outcomes.into_iter();
            for Job { items, answer, reply } in jobs {
                let mine: Vec<PushOutcome> = outcomes.by_ref().take(items.len()).collect();
                // A requester that went away (its client hung up) still had its bundles stored.
                let _ = reply.send(Ok((mine, answer)));
            }
        }
        Err(e) if jobs.len() > 1 => {
            tracing::warn!(error = %e, requests = jobs.len(), "a group commit failed; retrying its requests one by one");
            for Job { items, answer, reply } in jobs {
                let result = write(storage, metrics, &items);
                if let Ok(outcomes) = &result {
                    publish(events, &items, outcomes);
                }
                let _ = reply.send(result.map(|outcomes| (outcomes, answer)));
            }
        }
        Err(e) => {
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}

/// The first statement of each committed request's answer that wants it, read together.
/// A failure is logged and costs only time: each answer reads its own facts.
fn read_answer_facts(storage: &dyn Storage, metrics: &Metrics, jobs: &mut [Job]) {
    let mut starts: Vec<&mut AnswerStart> =
        jobs.iter_mut().filter_map(|job| job.answer.as_mut()).filter(|start| start.wants_facts()).collect();
    if starts.is_empty() {
        return;
    }
    let answers = starts.len();
    match storage.read_answer_facts(&mut starts) {
        Ok(()) => {
            metrics.group_answer_fact_reads.fetch_add(1, Ordering::Relaxed);
            Metrics::add(&metrics.group_answer_facts, answers);
        }
        Err(e) => {
            tracing::warn!(error = %e, answers, "a group commit could not read its answers' facts; each reads its own");
        }
    }
}

fn write(
    storage: &dyn Storage,
    metrics: &Metrics,
    items: &[NewBundle],
) -> Result<Vec<PushOutcome>, StorageError> {
    let result = storage.push_batch(items);
    match &result {
        Ok(outcomes) if outcomes.len() == items.len() => {
            metrics.group_commit_batches.fetch_add(1, Ordering::Relaxed);
            Metrics::add(&metrics.group_commit_bundles, items.len());
        }
        Ok(outcomes) => {
            metrics.group_commit_failures.fetch_add(1, Ordering::Relaxed);
            return Err(StorageError::Backend(format!(
                "push_batch answered {} outcomes for {} bundles",
                outcomes.len(),
                items.len()
            )));
        }
        Err(_) => {
            metrics.group_commit_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
    result
}

/// One hint per document that got a bundle, new or retried (see the module's comment).
fn publish(events: &LiveEvents, items: &[NewBundle], outcomes: &[PushOutcome]) {
    let mut seen = HashSet::new();
    for (item, outcome) in items.iter().zip(outcomes) {
        let stored = matches!(outcome, PushOutcome::Appended { .. } | PushOutcome::Duplicate { .. });
        if stored && seen.insert(item.document) {
            events.hint(item.document);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{DeviceId, SqliteStorage};
    use eenplan_protocol::BundleKind;
    use eenplan_protocol::DocumentId;

    fn bundle(id: u8, compartment: u8) -> NewBundle {
        NewBundle {
            document: DocumentId { plan: [1; 16], compartment },
            bundle_id: [id; 16],
            author: DeviceId([2; 16]),
            epoch: 1,
            kind: BundleKind::Changes,
            covers_seq: None,
            bytes: vec![id; 200],
            received_at: 0,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_pushes_are_committed_answered_in_order_and_hinted_once_per_document() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(SqliteStorage::open(dir.path().join("s.db")).unwrap());
        let metrics = Arc::new(Metrics::default());
        let events = Arc::new(LiveEvents::local());
        let commits = Arc::new(GroupCommit::start(storage.clone(), metrics.clone(), events.clone()).unwrap());
        let mut hints = events.hints();
        let tasks: Vec<_> = (0..20u8)
            .map(|i| {
                let commits = commits.clone();
                tokio::task::spawn_blocking(move || commits.push(vec![bundle(i, i % 2), bundle(i, i % 2)]))
            })
            .collect();
        let mut seqs = Vec::new();
        for task in tasks {
            let outcomes = task.await.unwrap().unwrap();
            assert!(matches!(outcomes[0], PushOutcome::Appended { .. }));
            assert_eq!(outcomes[1], PushOutcome::Duplicate { seq: outcomes[0].seq() });
            seqs.push(outcomes[0].seq());
        }
        seqs.sort_unstable();
        seqs.dedup();
        assert_eq!(seqs.len(), 20);
        assert_eq!(storage.head().unwrap(), 20);
        let batches = metrics.group_commit_batches.load(Ordering::Relaxed);
        assert!((1..=20).contains(&batches), "{batches} batches");
        let mut hinted = HashSet::new();
        while let Ok(hint) = hints.try_recv() {
            let crate::live_events::Hint::Document(document) = hint else { panic!("{hint:?}") };
            hinted.insert(document.compartment);
        }
        assert_eq!(hinted, HashSet::from([0, 1]));
        commits.shutdown();
        let after = tokio::task::spawn_blocking(move || commits.push(vec![bundle(99, 0)])).await.unwrap();
        assert!(matches!(after, Err(CommitError::Stopped)));
    }
}
