//! The link's settings and counters, shared by the controlling thread, the accept thread and
//! the relay tasks. One mutex guards them all, and every byte delivered is written under it,
//! so a control that changed them is in effect when it releases the lock.

use std::collections::HashMap;
use std::net::TcpStream;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use super::command::{Admission, Direction};

/// The largest piece a relay reads and forwards at once.
pub(super) const MAX_PIECE: usize = 16 * 1024;
/// How late a rate-capped relay may wake and still send as if on time (timers on a busy
/// machine wake a few ms late; without this, each late wake-up would lower the rate).
const BURST: Duration = Duration::from_millis(20);

/// What the link has carried so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Payload bytes delivered upstream (what clients sent).
    pub bytes_up: u64,
    /// Payload bytes delivered to clients (what upstream answered).
    pub bytes_down: u64,
    /// Connections accepted and forwarded (or, while [`Admission::Unanswered`], held).
    pub connections_accepted: u64,
    /// Connections open now.
    pub connections_open: usize,
    /// Bytes read from connections that are never answered, and dropped.
    pub bytes_unanswered: u64,
}

#[derive(Debug)]
pub(super) struct State {
    latency: [Duration; 2],
    rate: [Option<u64>; 2],
    /// When each direction's link is free again (the token bucket as a virtual clock).
    free_at: [Instant; 2],
    pub(super) cut: bool,
    pub(super) admission: Admission,
    pub(super) stopping: bool,
    stats: Stats,
    /// Open connections; the sender closes one abruptly. Taken (`None`) once fired.
    connections: HashMap<u64, Option<oneshot::Sender<()>>>,
    next_connection: u64,
    /// While connection attempts are dropped: the link's own connection that fills the
    /// listener's backlog of one, so that the kernel drops every other SYN.
    pub(super) filler: Option<TcpStream>,
}

impl State {
    pub(super) fn latency(&self, direction: Direction) -> Duration {
        self.latency[direction.index()]
    }

    /// The size of the next piece to read: at most 20 ms of link time, so that a rate change
    /// applies soon and pieces interleave finely.
    pub(super) fn piece_size(&self, direction: Direction) -> usize {
        match self.rate[direction.index()] {
            Some(rate) => usize::try_from(rate / 50).unwrap_or(MAX_PIECE).clamp(1, MAX_PIECE),
            None => MAX_PIECE,
        }
    }

    /// Books `bytes` on the direction's link; returns when their last bit has left.
    pub(super) fn book(&mut self, direction: Direction, bytes: usize) -> Instant {
        let now = Instant::now();
        let i = direction.index();
        let Some(rate) = self.rate[i] else {
            self.free_at[i] = now;
            return now;
        };
        // A relay that woke a little late (up to BURST) sends as if it had not; after a real
        // pause the link starts afresh, with no credit: a radio link saves up no capacity.
        let start = if now <= self.free_at[i] + BURST { self.free_at[i] } else { now };
        let busy = Duration::from_secs_f64(bytes as f64 / rate.max(1) as f64);
        self.free_at[i] = start + busy;
        self.free_at[i]
    }

    pub(super) fn delivered(&mut self, direction: Direction, bytes: usize) {
        let bytes = bytes as u64;
        match direction {
            Direction::Up => self.stats.bytes_up += bytes,
            Direction::Down => self.stats.bytes_down += bytes,
        }
    }

    pub(super) fn unanswered(&mut self, bytes: usize) {
        self.stats.bytes_unanswered += bytes as u64;
    }

    /// Registers a new connection; the receiver hears when it must be closed abruptly.
    pub(super) fn open_connection(&mut self) -> (u64, oneshot::Receiver<()>) {
        let (reset, on_reset) = oneshot::channel();
        let id = self.next_connection;
        self.next_connection += 1;
        self.connections.insert(id, Some(reset));
        self.stats.connections_accepted += 1;
        (id, on_reset)
    }
}

/// What a relay waits for: go on with a value, or wait until a time or a change.
pub(super) enum Wait<T> {
    Ready(T),
    Until(Instant),
    Change,
}

#[derive(Debug)]
pub(super) struct Shared {
    state: Mutex<State>,
    /// Bumped after every change of the settings, so that waiting relays look again.
    changed: watch::Sender<u64>,
    /// Notified when counters or connections change, and when the admission changes.
    activity: Condvar,
}

impl Shared {
    pub(super) fn new() -> Shared {
        let now = Instant::now();
        Shared {
            state: Mutex::new(State {
                latency: [Duration::ZERO; 2],
                rate: [None; 2],
                free_at: [now; 2],
                cut: false,
                admission: Admission::Accept,
                stopping: false,
                stats: Stats::default(),
                connections: HashMap::new(),
                next_connection: 0,
                filler: None,
            }),
            changed: watch::channel(0).0,
            activity: Condvar::new(),
        }
    }

    /// The state; no code holds the lock while it may panic, so a poisoned lock is usable.
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the state and tells everyone waiting on it.
    pub(super) fn change<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let value = f(&mut self.lock());
        self.changed.send_modify(|generation| *generation = generation.wrapping_add(1));
        self.activity.notify_all();
        value
    }

    /// Tells those waiting for counters that they moved (called with the lock released).
    pub(super) fn counted(&self) {
        self.activity.notify_all();
    }

    pub(super) fn set_latency(&self, direction: Option<Direction>, one_way: Duration) {
        self.change(|s| for_each(direction, |d| s.latency[d.index()] = one_way));
    }

    pub(super) fn set_rate(&self, direction: Option<Direction>, bytes_per_second: Option<u64>) {
        let now = Instant::now();
        self.change(|s| {
            for_each(direction, |d| {
                s.rate[d.index()] = bytes_per_second;
                s.free_at[d.index()] = now;
            })
        });
    }

    pub(super) fn set_cut(&self, cut: bool) {
        self.change(|s| s.cut = cut);
    }

    pub(super) fn stats(&self) -> Stats {
        let s = self.lock();
        Stats { connections_open: s.connections.len(), ..s.stats }
    }

    /// Waits until a relay may go on: `check` looks at the state each time it changes, and
    /// each time the instant it asked for comes.
    pub(super) async fn wait<T>(&self, mut check: impl FnMut(&mut State) -> Wait<T>) -> T {
        let mut changes = self.changed.subscribe();
        loop {
            // Marked as seen before looking, so that a change made after the look wakes us.
            changes.borrow_and_update();
            let next = check(&mut self.lock());
            match next {
                Wait::Ready(value) => return value,
                Wait::Until(due) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(due.into()) => {}
                        _ = changes.changed() => {}
                    }
                }
                // Err only if the sender is gone, and it lives as long as `self`.
                Wait::Change => {
                    let _ = changes.changed().await;
                }
            }
        }
    }

    /// Waits until the link is not cut.
    pub(super) async fn wait_while_cut(&self) {
        self.wait(|s| if s.cut { Wait::Change } else { Wait::Ready(()) }).await;
    }

    pub(super) fn close_connection(&self, id: u64) {
        self.lock().connections.remove(&id);
        self.activity.notify_all();
    }

    /// Fires every open connection's reset and waits until all of them are closed.
    pub(super) fn reset_all(&self) {
        let mut state = self.lock();
        let ids: Vec<u64> = state.connections.keys().copied().collect();
        for reset in state.connections.values_mut().filter_map(Option::take) {
            let _ = reset.send(());
        }
        while ids.iter().any(|id| state.connections.contains_key(id)) {
            state = self.activity.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    pub(super) fn wait_for_stats(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(&Stats) -> bool,
    ) -> Option<Stats> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            let stats = Stats { connections_open: state.connections.len(), ..state.stats };
            if condition(&stats) {
                return Some(stats);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            state = self.activity.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Waits on the admission changing (or a spurious wake-up), at most `timeout`.
    pub(super) fn wait_for_admission<'a>(
        &self,
        state: MutexGuard<'a, State>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, State> {
        match timeout {
            Some(t) => self.activity.wait_timeout(state, t).unwrap_or_else(PoisonError::into_inner).0,
            None => self.activity.wait(state).unwrap_or_else(PoisonError::into_inner),
        }
    }
}

fn for_each(direction: Option<Direction>, mut f: impl FnMut(Direction)) {
    match direction {
        Some(d) => f(d),
        None => Direction::BOTH.into_iter().for_each(f),
    }
}
