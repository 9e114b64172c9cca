//! A sync's first read, its session ([`crate::storage::Storage::sync_session`]), made in
//! groups where a statement costs a round trip and a plan's start-up (PostgreSQL).
//!
//! Every sync reads its device, the device's user and the user's access stamp before it does
//! anything else: on `load_bench`'s push phase that was half of all the statements
//! PostgreSQL ran (5,050 of about 9,700 for 5,050 pushes, 2026-12-07). Requests that arrive
//! while such a read is running wait, and the first of them then reads for all of them in
//! one statement ([`crate::storage::backend::ReadRows::sync_sessions`]): a leader and its
//! followers, with no thread of its own and no hand-off for a request that finds nobody
//! reading (it reads at once, alone, as before, holding the lead meanwhile).
//!
//! Each request's session is read by a statement that began after the request arrived, as
//! its own statement would be: a revocation committed before a request arrived is seen by
//! it. A group read that fails or panics fails no request: each of its requests reads its
//! own session, so one request's bad input cannot fail the others'. Only a busy database
//! (`StorageError::Busy`, a lock wait that outlasted its retries) fails the whole group at
//! once: reading alone, each would wait as long again.
//!
//! A read that hangs must not hold every sync of the process: a request waits for a leader
//! at most [`PATIENCE`] (then it leaves the queue and reads alone), and one that arrives
//! while the lead is older than that reads alone at once. Waiting happens on the request's
//! own blocking thread (the sync route runs on tokio's blocking pool, never on a runtime
//! worker), so the requests waiting are bounded by that pool, and one statement reads at
//! most [`MAX_SESSIONS_PER_READ`].

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::super::{DeviceId, DocumentId, Result, StorageError, SyncSession};

/// The most sessions one statement reads: a burst of requests is read in statements of this
/// many, so that no statement's parameters and rows grow with the burst.
pub(crate) const MAX_SESSIONS_PER_READ: usize = 64;

/// The longest a request waits for a leader before it reads alone, and the age past which a
/// lead is not joined. A session read takes well under a millisecond; a lead this old is
/// stuck (a lock wait, a dead connection), and the others go their own way as before.
pub(crate) const PATIENCE: Duration = Duration::from_millis(500);

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
    /// [`PATIENCE`], but in tests.
    patience: Duration,
    /// Statements that read a group of two or more sessions, failed ones too.
    group_reads: AtomicU64,
    /// Sessions read in the statements that succeeded.
    grouped_sessions: AtomicU64,
    /// Group reads that failed or panicked.
    failures: AtomicU64,
}

#[derive(Debug)]
struct Queue<A, T> {
    waiting: VecDeque<Arc<Slot<A, T>>>,
    /// Since when a request has been leading (`None`: nobody is; the next one leads).
    lead_since: Option<Instant>,
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
    /// The group read failed for reasons of its own: read alone.
    ReadAlone,
    /// The group read found the database busy: so would a read alone.
    Failed(StorageError),
}

/// Where a request that arrives stands ([`GroupedReads::join`]).
enum Joined {
    Leads,
    Queued,
    /// Behind a lead older than [`PATIENCE`]: it reads alone.
    Alone,
}

/// How a group read went for its leader.
enum GroupRead<T> {
    Read(T),
    ReadAlone,
    Failed(StorageError),
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
            queue: Mutex::new(Queue { waiting: VecDeque::new(), lead_since: None }),
            patience: PATIENCE,
            group_reads: AtomicU64::new(0),
            grouped_sessions: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }
}

impl<A: Clone, T> GroupedReads<A, T> {
    /// What `ask` reads: read with the asks of other requests waiting at the same time by
    /// `read_group` (one statement for up to [`MAX_SESSIONS_PER_READ`], one result per ask
    /// in their order), or alone by `read_one` when nobody else waits, the lead is stuck,
    /// or a group read failed. Call it from a thread that may block, never from an async
    /// task.
    pub(crate) fn read(
        &self,
        ask: A,
        read_group: impl Fn(&[A]) -> Result<Vec<T>>,
        read_one: impl Fn(&A) -> Result<T>,
    ) -> Result<T> {
        let slot = Arc::new(Slot { ask, told: Mutex::new(None), changed: Condvar::new() });
        match self.join(&slot) {
            Joined::Leads => {}
            Joined::Alone => return read_one(&slot.ask),
            Joined::Queued => match self.follow(&slot) {
                Some(Told::Lead) => {}
                Some(Told::Read(session)) => return Ok(*session),
                Some(Told::Failed(e)) => return Err(e),
                Some(Told::ReadAlone) | None => return read_one(&slot.ask),
            },
        }
        let mut leading = self.take_followers();
        if leading.followers.is_empty() {
            // Alone, but still leading: those arriving meanwhile wait, and are read together.
            return read_one(&slot.ask);
        }
        match leading.read_with(&slot.ask, &read_group) {
            GroupRead::Read(session) => Ok(session),
            GroupRead::Failed(e) => Err(e),
            GroupRead::ReadAlone => {
                // The followers read their own meanwhile, and the next request leads.
                drop(leading);
                read_one(&slot.ask)
            }
        }
    }

    /// Takes the lead when nobody has it; queues `slot` behind a lead younger than
    /// [`PATIENCE`]; neither behind an older one (it reads alone).
    fn join(&self, slot: &Arc<Slot<A, T>>) -> Joined {
        let mut queue = lock(&self.queue);
        match queue.lead_since {
            None => {
                queue.lead_since = Some(Instant::now());
                Joined::Leads
            }
            Some(since) if since.elapsed() < self.patience => {
                queue.waiting.push_back(Arc::clone(slot));
                Joined::Queued
            }
            Some(_) => Joined::Alone,
        }
    }

    /// Waits for what `slot` is told. `None` when no leader took it within [`PATIENCE`]: it
    /// has left the queue and reads alone. Once a leader took it, it waits for that leader,
    /// whose guard tells it something however the leader leaves.
    fn follow(&self, slot: &Arc<Slot<A, T>>) -> Option<Told<T>> {
        if let Some(told) = slot.wait_at_most(self.patience) {
            return Some(told);
        }
        let mut queue = lock(&self.queue);
        if let Some(place) = queue.waiting.iter().position(|waiting| Arc::ptr_eq(waiting, slot)) {
            queue.waiting.remove(place);
            return None;
        }
        drop(queue);
        Some(slot.wait())
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
            Some(next) => {
                queue.lead_since = Some(Instant::now());
                next.tell(Told::Lead);
            }
            None => queue.lead_since = None,
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
    /// Reads the leader's session (`own`) with its followers' and tells each follower what
    /// came of it; what the leader does with its own.
    fn read_with(&mut self, own: &A, read_group: &impl Fn(&[A]) -> Result<Vec<T>>) -> GroupRead<T> {
        let size = self.followers.len() + 1;
        self.reads.group_reads.fetch_add(1, Ordering::Relaxed);
        let asks: Vec<A> =
            std::iter::once(own).chain(self.followers.iter().map(|slot| &slot.ask)).cloned().collect();
        let read = self.tell_followers(size, catch_unwind(AssertUnwindSafe(|| read_group(&asks))));
        match &read {
            GroupRead::Read(_) => self.reads.grouped_sessions.fetch_add(size as u64, Ordering::Relaxed),
            GroupRead::ReadAlone | GroupRead::Failed(_) => {
                self.reads.failures.fetch_add(1, Ordering::Relaxed)
            }
        };
        read
    }

    /// Tells each follower what came of the group's read (`read`, of `size` sessions with
    /// the leader's); what the leader does with its own.
    fn tell_followers(&mut self, size: usize, read: std::thread::Result<Result<Vec<T>>>) -> GroupRead<T> {
        match read {
            Ok(Ok(sessions)) if sessions.len() == size => {
                let mut sessions = sessions.into_iter();
                let leaders = sessions.next();
                for (slot, session) in self.followers.drain(..).zip(sessions) {
                    slot.tell(Told::Read(Box::new(session)));
                }
                leaders.map_or(GroupRead::ReadAlone, GroupRead::Read)
            }
            Ok(Err(StorageError::Busy)) => {
                tracing::warn!(sessions = size, "a group's session read found the database busy");
                for slot in self.followers.drain(..) {
                    slot.tell(Told::Failed(StorageError::Busy));
                }
                GroupRead::Failed(StorageError::Busy)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, sessions = size, "a group's session read failed; each reads its own");
                GroupRead::ReadAlone
            }
            Ok(Ok(_)) => {
                tracing::error!(
                    sessions = size,
                    "a group's session read returned another number; each reads its own"
                );
                GroupRead::ReadAlone
            }
            Err(_) => {
                tracing::error!(sessions = size, "a group's session read panicked; each reads its own");
                GroupRead::ReadAlone
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

    /// [`Slot::wait`], for at most `patience`.
    fn wait_at_most(&self, patience: Duration) -> Option<Told<T>> {
        let deadline = Instant::now() + patience;
        let mut told = lock(&self.told);
        loop {
            if let Some(told) = told.take() {
                return Some(told);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            told = self.changed.wait_timeout(told, left).unwrap_or_else(PoisonError::into_inner).0;
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
            lock(&self.queue).lead_since.is_some()
        }

        fn with_patience(patience: Duration) -> Self {
            GroupedReads { patience, ..GroupedReads::default() }
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
        read_behind(reads, followers, read_group, read_one)
    }

    /// [`read_behind_a_leader`], the leader's own read done by `leaders_read` once released.
    fn read_behind(
        reads: &Reads,
        followers: std::ops::RangeInclusive<u32>,
        read_group: impl Fn(&[u32]) -> Result<Vec<u32>> + Sync,
        leaders_read: impl Fn(&u32) -> Result<u32> + Send,
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
                    leaders_read(ask)
                })
            });
            leader_entered.recv().unwrap();
            let waiting: Vec<_> =
                followers.map(|ask| scope.spawn(move || reads.read(ask, read_group, read_one))).collect();
            until(|| reads.waiting() == count);
            release.send(()).unwrap();
            std::iter::once(leader)
                .chain(waiting)
                .map(|thread| thread.join().unwrap_or_else(|_| Err(StorageError::Backend("panicked".into()))))
                .collect()
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
            assert_eq!(reads.counts(), SessionGroupCounts { statements: 1, sessions: 0, failures: 1 });
            // The next request finds nobody reading.
            assert_eq!(
                reads.read(7, |_| panic!("no group"), read_one).unwrap(),
                70,
                "after a group read that {how}"
            );
        }
    }

    #[test]
    fn a_group_read_that_finds_the_database_busy_fails_the_group_without_reading_again() {
        let reads = Reads::default();
        let (outcomes, groups) = read_behind_a_leader(&reads, 1..=3, |_| Err(StorageError::Busy));
        assert!(matches!(outcomes[0], Ok(0)), "the leader's own read came before: {outcomes:?}");
        for outcome in &outcomes[1..] {
            assert_eq!(outcome, &Err(StorageError::Busy), "each of the group, without a read of its own");
        }
        assert_eq!(groups.len(), 1);
        assert_eq!(reads.counts(), SessionGroupCounts { statements: 1, sessions: 0, failures: 1 });
    }

    #[test]
    fn a_leader_whose_lone_read_panics_leaves_its_followers_a_leader() {
        let reads = Reads::default();
        let (outcomes, groups) = read_behind(
            &reads,
            1..=3,
            |asks| Ok(asks.iter().map(|ask| ask * 10).collect()),
            |_| panic!("the lone read's bug"),
        );
        assert!(outcomes[0].is_err(), "the leader's thread panicked");
        let followers: Vec<u32> = outcomes[1..].iter().map(|read| *read.as_ref().unwrap()).collect();
        assert_eq!(followers, [10, 20, 30], "the followers were read by the next leader");
        assert_eq!(groups.len(), 1);
    }

    #[test]
    fn a_request_waits_for_a_stuck_leader_only_so_long_then_reads_alone_as_do_later_ones() {
        let reads = Reads::with_patience(Duration::from_millis(20));
        let (entered, leader_entered) = mpsc::channel();
        std::thread::scope(|scope| {
            let (release, released) = mpsc::channel::<()>();
            let stuck = scope.spawn(|| {
                reads.read(
                    0,
                    |_| panic!("no group"),
                    move |ask| {
                        entered.send(()).unwrap();
                        released.recv().unwrap();
                        read_one(ask)
                    },
                )
            });
            leader_entered.recv().unwrap();
            let no_group = |_: &[u32]| -> Result<Vec<u32>> { panic!("nobody is left to read for") };
            assert_eq!(reads.read(1, no_group, read_one).unwrap(), 10, "queued, then alone");
            assert_eq!(reads.waiting(), 0, "it left the queue");
            assert_eq!(reads.read(2, no_group, read_one).unwrap(), 20, "behind a stale lead: alone at once");
            assert_eq!(reads.waiting(), 0, "it never queued");
            release.send(()).unwrap();
            assert_eq!(stuck.join().unwrap().unwrap(), 0);
        });
        assert!(!reads.leading());
        assert_eq!(reads.counts(), SessionGroupCounts::default());
    }
}
