//! A sync's first read, its session ([`crate::storage::Storage::sync_session`]), made in
//! groups where a statement costs a round trip and a plan's start-up (PostgreSQL).
//!
//! Every sync reads its device, the device's user and the user's access stamp before it does
//! anything else: on `load_bench`'s push phase that was half of all the statements
//! PostgreSQL ran (5,050 of about 9,700 for 5,050 pushes, 2026-12-07). Requests that arrive
//! while such a read is running wait, and the first of them then reads for all of them in
//! one statement ([`crate::storage::backend::ReadRows::sync_sessions`]): a leader and its
//! followers, with no thread of its own and no hand-off for a request that finds nobody
//! reading (it reads at once, alone, as before).
//!
//! Each request's session is read by a statement that began after the request arrived, as
//! its own statement would be: a revocation committed before a request arrived is seen by
//! it. A group read that fails or panics fails no request: each of its requests reads its
//! own session, so one request's bad input cannot fail the others'.
//!
//! The waiting requests are bounded by the threads that serve requests (each waits on its
//! own thread), and one statement reads at most [`MAX_SESSIONS_PER_READ`].

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::super::{DeviceId, DocumentId, Result, SyncSession};

/// The most sessions one statement reads: a burst of requests is read in statements of this
/// many, so that no statement's parameters and rows grow with the burst.
pub(crate) const MAX_SESSIONS_PER_READ: usize = 64;

/// What one sync asks its session read for ([`crate::storage::Storage::sync_session`]): its
/// device, and the documents whose current epochs its uploads are checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionAsk {
    pub device: DeviceId,
    pub documents: Vec<DocumentId>,
}

/// The requests of one process waiting for a session read, and its counts for `/metrics`.
pub(crate) type SessionReads = GroupedReads<SessionAsk, Option<SyncSession>>;

/// Reads of `A` for `T` that requests arriving together make in one statement: the first
/// reads, and those arriving meanwhile wait and are read together next.
#[derive(Debug)]
pub(crate) struct GroupedReads<A, T> {
    queue: Mutex<Queue<A, T>>,
    /// Statements that read a group of two or more sessions, failed ones too.
    group_reads: AtomicU64,
    /// Sessions read in those statements.
    grouped_sessions: AtomicU64,
    /// Group reads that failed or panicked; their requests read their own.
    failures: AtomicU64,
}

#[derive(Debug)]
struct Queue<A, T> {
    waiting: VecDeque<Arc<Slot<A, T>>>,
    /// Whether a request is reading for a group now (the next one reads when it is done).
    leading: bool,
}

/// One waiting request: its ask, and what it is told when it may go on.
#[derive(Debug)]
struct Slot<A, T> {
    ask: A,
    told: Mutex<Option<Told<T>>>,
    changed: Condvar,
}

#[derive(Debug)]
enum Told<T> {
    /// Read for the requests waiting now, itself first.
    Lead,
    Read(Box<T>),
    /// The group read failed: read its own.
    ReadAlone,
}

/// (group statements, sessions read in them, failed group reads) since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SessionGroupCounts {
    pub statements: u64,
    pub sessions: u64,
    pub failures: u64,
}

impl<A, T> Default for GroupedReads<A, T> {
    fn default() -> Self {
        GroupedReads {
            queue: Mutex::new(Queue { waiting: VecDeque::new(), leading: false }),
            group_reads: AtomicU64::new(0),
            grouped_sessions: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }
}

impl<A: Clone, T> GroupedReads<A, T> {
    /// What `ask` reads: read with the asks of other requests waiting at the same time by
    /// `read_group` (one statement for up to [`MAX_SESSIONS_PER_READ`], one result per ask
    /// in their order), or alone by `read_one` when nobody else waits or a group read failed.
    pub(crate) fn read(
        &self,
        ask: A,
        read_group: impl Fn(&[A]) -> Result<Vec<T>>,
        read_one: impl Fn(&A) -> Result<T>,
    ) -> Result<T> {
        let slot = Arc::new(Slot { ask, told: Mutex::new(None), changed: Condvar::new() });
        let leads = {
            let mut queue = lock(&self.queue);
            if queue.leading {
                queue.waiting.push_back(Arc::clone(&slot));
            }
            !std::mem::replace(&mut queue.leading, true)
        };
        if !leads {
            match slot.wait() {
                Told::Read(session) => return Ok(*session),
                Told::ReadAlone => return read_one(&slot.ask),
                Told::Lead => {}
            }
        }
        let mut leading = self.take_followers();
        if leading.followers.is_empty() {
            // Alone, but still leading: those arriving meanwhile wait, and are read together.
            return read_one(&slot.ask);
        }
        match leading.read_with(&slot.ask, &read_group) {
            Some(session) => Ok(session),
            None => {
                // The followers read their own meanwhile, and the next request leads.
                drop(leading);
                read_one(&slot.ask)
            }
        }
    }

    /// The lead, with the requests waiting now, up to a statement's worth with the leader's.
    fn take_followers(&self) -> Leading<'_, A, T> {
        let mut queue = lock(&self.queue);
        let more = queue.waiting.len().min(MAX_SESSIONS_PER_READ - 1);
        let followers = queue.waiting.drain(..more).collect();
        Leading { reads: self, followers }
    }
}

impl<A, T> GroupedReads<A, T> {
    /// Hands the lead to the first request waiting, or ends it when none waits.
    fn pass_the_lead(&self) {
        let mut queue = lock(&self.queue);
        match queue.waiting.pop_front() {
            Some(next) => next.tell(Told::Lead),
            None => queue.leading = false,
        }
    }

    pub(crate) fn counts(&self) -> SessionGroupCounts {
        SessionGroupCounts {
            statements: self.group_reads.load(Ordering::Relaxed),
            sessions: self.grouped_sessions.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }
}

/// The lead of a group read, and the followers not yet told their sessions. Dropped, it
/// tells each of them to read its own and passes the lead on, however the leader leaves:
/// no follower waits for a leader that is gone.
struct Leading<'a, A, T> {
    reads: &'a GroupedReads<A, T>,
    followers: Vec<Arc<Slot<A, T>>>,
}

impl<A: Clone, T> Leading<'_, A, T> {
    /// Reads the leader's session (`own`) with its followers' and tells each follower its
    /// own; the leader's, or `None` when the group read failed or panicked (the leader and
    /// its followers then read their own).
    fn read_with(&mut self, own: &A, read_group: &impl Fn(&[A]) -> Result<Vec<T>>) -> Option<T> {
        let size = self.followers.len() + 1;
        self.reads.group_reads.fetch_add(1, Ordering::Relaxed);
        self.reads.grouped_sessions.fetch_add(size as u64, Ordering::Relaxed);
        let asks: Vec<A> =
            std::iter::once(own).chain(self.followers.iter().map(|slot| &slot.ask)).cloned().collect();
        match catch_unwind(AssertUnwindSafe(|| read_group(&asks))) {
            Ok(Ok(sessions)) if sessions.len() == size => {
                let mut sessions = sessions.into_iter();
                let leaders = sessions.next();
                for (slot, session) in self.followers.drain(..).zip(sessions) {
                    slot.tell(Told::Read(Box::new(session)));
                }
                leaders
            }
            failed => {
                self.reads.failures.fetch_add(1, Ordering::Relaxed);
                match failed {
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, sessions = size, "a group's session read failed; each reads its own")
                    }
                    Ok(Ok(_)) => tracing::error!(
                        sessions = size,
                        "a group's session read returned another number of sessions; each reads its own"
                    ),
                    Err(_) => tracing::error!(
                        sessions = size,
                        "a group's session read panicked; each reads its own"
                    ),
                }
                None
            }
        }
    }
}

impl<A, T> Drop for Leading<'_, A, T> {
    fn drop(&mut self) {
        for slot in self.followers.drain(..) {
            slot.tell(Told::ReadAlone);
        }
        self.reads.pass_the_lead();
    }
}

impl<A, T> Slot<A, T> {
    fn tell(&self, told: Told<T>) {
        *lock(&self.told) = Some(told);
        self.changed.notify_one();
    }

    /// Waits until it is told, and takes what.
    fn wait(&self) -> Told<T> {
        let mut told = lock(&self.told);
        loop {
            if let Some(told) = told.take() {
                return told;
            }
            told = self.changed.wait(told).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// A lock whose holder never leaves its data half-changed: a panic elsewhere does not
/// poison it for the requests that follow.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::storage::StorageError;

    type Reads = GroupedReads<u32, u32>;

    impl<A, T> GroupedReads<A, T> {
        fn waiting(&self) -> usize {
            lock(&self.queue).waiting.len()
        }

        fn leading(&self) -> bool {
            lock(&self.queue).leading
        }
    }

    fn read_one(ask: &u32) -> Result<u32> {
        Ok(ask * 10)
    }

    /// Waits (yielding, not sleeping) until `done` holds; a minute without is a hang.
    fn until(done: impl Fn() -> bool) {
        let started = Instant::now();
        while !done() {
            assert!(started.elapsed() < Duration::from_secs(60), "what the test waits for never happened");
            std::thread::yield_now();
        }
    }

    /// Holds a leader reading alone (ask 0) until `followers` have queued behind it, then
    /// lets it finish; every request's outcome (the leader's first) and the asks of each group
    /// read, in order.
    fn read_behind_a_leader(
        reads: &Reads,
        followers: std::ops::RangeInclusive<u32>,
        read_group: impl Fn(&[u32]) -> Result<Vec<u32>> + Sync,
    ) -> (Vec<Result<u32>>, Vec<Vec<u32>>) {
        let groups = Mutex::new(Vec::new());
        let count = followers.clone().count();
        let read_group = |asks: &[u32]| {
            lock(&groups).push(asks.to_vec());
            read_group(asks)
        };
        let (entered, leader_entered) = mpsc::channel();
        let outcomes = std::thread::scope(|scope| {
            // Made in the scope, so that a failed assertion drops it and the leader ends.
            let (release, released) = mpsc::channel::<()>();
            let leader = scope.spawn(move || {
                reads.read(0, read_group, |ask| {
                    entered.send(()).unwrap();
                    released.recv().unwrap();
                    read_one(ask)
                })
            });
            leader_entered.recv().unwrap();
            let waiting: Vec<_> =
                followers.map(|ask| scope.spawn(move || reads.read(ask, read_group, read_one))).collect();
            until(|| reads.waiting() == count);
            release.send(()).unwrap();
            std::iter::once(leader).chain(waiting).map(|thread| thread.join().unwrap()).collect()
        });
        assert!(!reads.leading(), "the lead was not given up");
        (outcomes, groups.into_inner().unwrap())
    }

    #[test]
    fn a_request_that_finds_nobody_reading_reads_alone_at_once() {
        let reads = Reads::default();
        let read = reads.read(4, |_| panic!("nobody else waits: no group read"), read_one);
        assert_eq!(read.unwrap(), 40);
        assert_eq!(reads.counts(), SessionGroupCounts::default());
        assert!(!reads.leading());
    }

    #[test]
    fn requests_that_arrive_while_one_reads_are_read_together_in_one_statement() {
        let reads = Reads::default();
        let (outcomes, groups) =
            read_behind_a_leader(&reads, 1..=5, |asks| Ok(asks.iter().map(|ask| ask * 10).collect()));
        let outcomes: Vec<u32> = outcomes.into_iter().map(Result::unwrap).collect();
        assert_eq!(outcomes, [0, 10, 20, 30, 40, 50], "each request has its own read");
        assert_eq!(groups.len(), 1, "{groups:?}");
        let mut asks = groups[0].clone();
        asks.sort_unstable();
        assert_eq!(asks, [1, 2, 3, 4, 5]);
        assert_eq!(reads.counts(), SessionGroupCounts { statements: 1, sessions: 5, failures: 0 });
    }

    #[test]
    fn a_burst_larger_than_a_statement_is_read_in_statements_of_at_most_64() {
        let reads = Reads::default();
        let (outcomes, groups) =
            read_behind_a_leader(&reads, 1..=100, |asks| Ok(asks.iter().map(|ask| ask * 10).collect()));
        assert!(outcomes.into_iter().enumerate().all(|(ask, read)| read.unwrap() == ask as u32 * 10));
        let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
        assert_eq!(sizes, [MAX_SESSIONS_PER_READ, 100 - MAX_SESSIONS_PER_READ]);
        assert_eq!(reads.counts(), SessionGroupCounts { statements: 2, sessions: 100, failures: 0 });
    }

    #[test]
    fn a_group_read_that_fails_panics_or_miscounts_leaves_each_request_to_read_its_own() {
        type GroupRead = fn(&[u32]) -> Result<Vec<u32>>;
        let failing: [(&str, GroupRead); 3] = [
            ("fails", |_| Err(StorageError::Backend("the database went away".into()))),
            ("panics", |_| panic!("a group read's bug")),
            ("miscounts", |asks| Ok(asks.iter().skip(1).map(|ask| ask * 100).collect())),
        ];
        for (how, read_group) in failing {
            let reads = Reads::default();
            let (outcomes, groups) = read_behind_a_leader(&reads, 1..=3, read_group);
            let outcomes: Vec<u32> = outcomes.into_iter().map(Result::unwrap).collect();
            assert_eq!(outcomes, [0, 10, 20, 30], "a group read that {how}");
            assert_eq!(groups.len(), 1, "a group read that {how}");
            assert_eq!(reads.counts(), SessionGroupCounts { statements: 1, sessions: 3, failures: 1 });
            // The next request finds nobody reading.
            assert_eq!(
                reads.read(7, |_| panic!("no group"), read_one).unwrap(),
                70,
                "after a group read that {how}"
            );
        }
    }
}
