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
//! Each request comes with its sync answer begun ([`AnswerStart`]). Where the backend reads
//! answers' first statements in groups (PostgreSQL) and the answer wants that, the committed
//! request goes on to a second thread, `answer-facts`, which takes every committed request
//! waiting, reads their answers' first statements together ([`Storage::read_answer_facts`]:
//! one statement for up to 64) and then answers them. The writer meanwhile commits the next
//! batch: the read never holds a commit. A failed read fails no push: its requests are
//! answered without facts, and each answer reads its own. On `load_bench`'s push phase
//! (2026-12-07) the CPU per push of PostgreSQL's processes and `eenplan-server` was 0.73×
//! the old build's by the medians of alternated runs, 0.59–0.90 by round, the runs' ranges
//! overlapping (ARCHITECTURE, "answers' first statements in groups").
//!
//! Shutdown: [`GroupCommit::shutdown`] queues a stop marker behind whatever is waiting, so
//! every push that was submitted is written and answered before the threads end.

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
    answer: AnswerStart,
    reply: Reply,
}

/// A committed request on its way to its reply: through the `answer-facts` thread when its
/// answer wants its facts, at once otherwise.
struct Committed {
    outcomes: Vec<PushOutcome>,
    answer: AnswerStart,
    reply: Reply,
}

/// A request's outcomes, in its bundles' order, and its answer, with its facts when a group
/// read them.
type Outcomes = (Vec<PushOutcome>, AnswerStart);

/// The handle requests use. Dropping it does not stop the threads; call
/// [`GroupCommit::shutdown`].
#[derive(Debug)]
pub struct GroupCommit {
    queue: mpsc::Sender<Message>,
    /// The writer, then the `answer-facts` thread, which ends after the writer.
    threads: Mutex<Vec<JoinHandle<()>>>,
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
    /// Starts the writer thread and the `answer-facts` thread.
    pub fn start(
        storage: Arc<dyn Storage>,
        metrics: Arc<Metrics>,
        events: Arc<LiveEvents>,
    ) -> std::io::Result<GroupCommit> {
        let reader_storage = Arc::clone(&storage);
        let read: ReadFacts = Box::new(move |starts| reader_storage.read_answer_facts(starts));
        GroupCommit::start_reading_with(storage, metrics, events, read)
    }

    /// [`GroupCommit::start`], the answers' facts read by `read`.
    fn start_reading_with(
        storage: Arc<dyn Storage>,
        metrics: Arc<Metrics>,
        events: Arc<LiveEvents>,
        read: ReadFacts,
    ) -> std::io::Result<GroupCommit> {
        let (queue, receiver) = mpsc::channel();
        let (facts_queue, facts_receiver) = mpsc::channel();
        let reader_metrics = Arc::clone(&metrics);
        let reader = std::thread::Builder::new()
            .name("answer-facts".into())
            .spawn(move || fact_reader(&read, &reader_metrics, &facts_receiver))?;
        // The writer owns the only sender to the reader: when the writer ends, the reader
        // answers what it was sent and ends too.
        let writer = std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || writer(&*storage, &metrics, &receiver, &events, &facts_queue))?;
        Ok(GroupCommit { queue, threads: Mutex::new(vec![writer, reader]) })
    }

    /// Appends `items` durably and reports each one's outcome, in order, with `answer`,
    /// which has its first statement read (with the other committed requests' answers') when
    /// it wants that ([`AnswerStart::wants_facts`]), and otherwise comes back as it went.
    /// Returns once the transaction that holds the items has committed (and the facts are
    /// read, or failed to be). Call it on a thread that may block (never a runtime worker):
    /// the thread parks until then, so a sync needs no wake-up through the runtime.
    pub fn push(&self, items: Vec<NewBundle>, answer: AnswerStart) -> Result<Outcomes, CommitError> {
        if items.is_empty() {
            return Ok((Vec::new(), answer));
        }
        let (reply, committed) = oneshot::channel();
        self.queue
            .send(Message::Push(Box::new(Job { items, answer, reply })))
            .map_err(|_| CommitError::Stopped)?;
        Ok(committed.blocking_recv().map_err(|_| CommitError::Stopped)??)
    }

    /// Writes and answers everything queued so far, then stops the threads and waits for
    /// them.
    pub fn shutdown(&self) {
        let _ = self.queue.send(Message::Stop);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("a group-commit thread panicked");
            }
        }
    }
}

type Reply = oneshot::Sender<Result<Outcomes, StorageError>>;

/// How the `answer-facts` thread reads a group's facts ([`Storage::read_answer_facts`]).
type ReadFacts = Box<dyn Fn(&mut [&mut AnswerStart]) -> Result<(), StorageError> + Send>;

fn writer(
    storage: &dyn Storage,
    metrics: &Metrics,
    receiver: &mpsc::Receiver<Message>,
    events: &LiveEvents,
    facts: &mpsc::Sender<Committed>,
) {
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
            commit(storage, metrics, events, facts, jobs);
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
        commit(storage, metrics, events, facts, rest);
    }
}

fn commit(
    storage: &dyn Storage,
    metrics: &Metrics,
    events: &LiveEvents,
    facts: &mpsc::Sender<Committed>,
    jobs: Vec<Job>,
) {
    let all: Vec<NewBundle> = jobs.iter().flat_map(|job| job.items.iter().cloned()).collect();
    match write(storage, metrics, &all) {
        Ok(outcomes) => {
            publish(events, &all, &outcomes);
            let mut outcomes = outcomes.into_iter();
            for Job { items, answer, reply } in jobs {
                let mine: Vec<PushOutcome> = outcomes.by_ref().take(items.len()).collect();
                answer_or_read_facts(facts, Committed { outcomes: mine, answer, reply });
            }
        }
        Err(e) if jobs.len() > 1 => {
            tracing::warn!(error = %e, requests = jobs.len(), "a group commit failed; retrying its requests one by one");
            for Job { items, answer, reply } in jobs {
                match write(storage, metrics, &items) {
                    Ok(outcomes) => {
                        publish(events, &items, &outcomes);
                        answer_or_read_facts(facts, Committed { outcomes, answer, reply });
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
        }
        Err(e) => {
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}

/// Answers a committed request at once, or, when its answer wants its facts read, hands it
/// to the `answer-facts` thread (and answers it at once if that thread is gone).
fn answer_or_read_facts(facts: &mpsc::Sender<Committed>, committed: Committed) {
    let committed = if committed.answer.wants_facts() {
        match facts.send(committed) {
            Ok(()) => return,
            Err(mpsc::SendError(committed)) => committed,
        }
    } else {
        committed
    };
    // A requester that went away (its client hung up) still had its bundles stored.
    let _ = committed.reply.send(Ok((committed.outcomes, committed.answer)));
}

/// The `answer-facts` thread: takes every committed request waiting, reads their answers'
/// first statements together, and answers them, until the writer ends.
fn fact_reader(read: &ReadFacts, metrics: &Metrics, receiver: &mpsc::Receiver<Committed>) {
    while let Ok(first) = receiver.recv() {
        let mut group = vec![first];
        group.extend(receiver.try_iter().take(MAX_BATCH_REQUESTS - 1));
        read_answer_facts(read, metrics, &mut group);
        for Committed { outcomes, answer, reply } in group {
            let _ = reply.send(Ok((outcomes, answer)));
        }
    }
}

/// Reads the first statements of `group`'s answers. A failure, even a panic, is counted and
/// logged and costs only time: an answer left without facts reads its own. A panic must not
/// end the thread, which would drop the requests it holds: their pushes, committed, would
/// be answered as failed.
fn read_answer_facts(read: &ReadFacts, metrics: &Metrics, group: &mut [Committed]) {
    let mut starts: Vec<&mut AnswerStart> = group.iter_mut().map(|committed| &mut committed.answer).collect();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(&mut starts)))
        .unwrap_or_else(|_| Err(StorageError::Backend("the group read of answers' facts panicked".into())));
    let with_facts = group.iter().filter(|committed| committed.answer.has_facts()).count();
    metrics.group_answer_fact_reads.fetch_add(1, Ordering::Relaxed);
    Metrics::add(&metrics.group_answer_facts, with_facts);
    if let Err(e) = result {
        metrics.group_answer_fact_failures.fetch_add(1, Ordering::Relaxed);
        let unread = group.len() - with_facts;
        tracing::warn!(error = %e, unread, "a group read of answers' facts failed; those answers read their own");
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
    use crate::storage::{AnswerQuery, DeviceId, PullRequest, SqliteStorage, UserId};
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

    /// An answer begun for a device of user 1; SQLite reads no answer's facts in groups.
    fn answer(storage: &dyn Storage) -> AnswerStart {
        let start = storage.begin_answer(&AnswerQuery {
            pull: PullRequest::new(UserId(1), DeviceId([2; 16]), 0, 1024),
            membership_after: 0,
            membership_limit: (10, 1024),
            policy_after: 0,
            audit_key_after: 0,
            now: 0,
        });
        assert!(!start.wants_facts());
        start
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
                let (commits, storage) = (commits.clone(), storage.clone());
                tokio::task::spawn_blocking(move || {
                    commits.push(vec![bundle(i, i % 2), bundle(i, i % 2)], answer(&*storage))
                })
            })
            .collect();
        let mut seqs = Vec::new();
        for task in tasks {
            let (outcomes, _) = task.await.unwrap().unwrap();
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
        let after = tokio::task::spawn_blocking(move || commits.push(vec![bundle(99, 0)], answer(&*storage)))
            .await
            .unwrap();
        assert!(matches!(after, Err(CommitError::Stopped)));
    }

    /// Whatever becomes of the group read of the answers' facts, every committed push is
    /// answered with its own outcomes, its answer left to read its own facts, also those
    /// still waiting when the server shuts down; and the failure is counted.
    #[test]
    fn a_group_read_of_answers_facts_that_fails_or_panics_fails_no_push() {
        let failures: [(&str, ReadFacts); 2] = [
            ("fails", Box::new(|_| Err(StorageError::Backend("the database went away".into())))),
            ("panics", Box::new(|_| panic!("a bug in the group read"))),
        ];
        for (what, read) in failures {
            let dir = tempfile::tempdir().unwrap();
            let storage: Arc<dyn Storage> = Arc::new(SqliteStorage::open(dir.path().join("s.db")).unwrap());
            let metrics = Arc::new(Metrics::default());
            let events = Arc::new(LiveEvents::local());
            let commits =
                Arc::new(GroupCommit::start_reading_with(storage, metrics.clone(), events, read).unwrap());
            let push = |commits: &GroupCommit, i: u8| {
                let answer = AnswerStart::wanting_facts(UserId(1), DeviceId([i; 16]));
                commits.push(vec![bundle(i, 0), bundle(i + 100, 1)], answer)
            };
            let check = |(outcomes, answer): Outcomes| {
                let appended = outcomes.iter().filter(|o| matches!(o, PushOutcome::Appended { .. })).count();
                assert_eq!(appended, 2, "{what}: {outcomes:?}");
                assert!(!answer.has_facts() && answer.wants_facts(), "{what}: {answer:?}");
            };
            check(push(&commits, 0).unwrap_or_else(|e| panic!("{what}: the first push: {e}")));
            let threads: Vec<_> = (1..8u8)
                .map(|i| {
                    let commits = commits.clone();
                    std::thread::spawn(move || push(&commits, i))
                })
                .collect();
            let shutdown = {
                let commits = commits.clone();
                std::thread::spawn(move || commits.shutdown())
            };
            for thread in threads {
                // A push queued after the shutdown's stop marker is refused as stopped, and
                // was not written; every other is answered with its own outcomes.
                match thread.join().unwrap() {
                    Ok(outcomes) => check(outcomes),
                    Err(e) => assert!(matches!(e, CommitError::Stopped), "{what}: {e}"),
                }
            }
            shutdown.join().unwrap();
            let reads = metrics.group_answer_fact_reads.load(Ordering::Relaxed);
            assert!(reads > 0, "{what}: the group read ran");
            assert_eq!(metrics.group_answer_fact_failures.load(Ordering::Relaxed), reads, "{what}");
            assert_eq!(metrics.group_answer_facts.load(Ordering::Relaxed), 0, "{what}");
        }
    }
}
