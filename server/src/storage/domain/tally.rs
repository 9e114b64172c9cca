//! How often a process's remembered reads were served from memory, and how often they were
//! read again from the database: for the operator's `/metrics`
//! ([`crate::storage::Storage::remembered_reads`]).

use std::sync::atomic::{AtomicU64, Ordering};

/// The counts of one cache since the process started.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    served: AtomicU64,
    read: AtomicU64,
}

impl Tally {
    /// A remembered read was served.
    pub(crate) fn served(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
    }

    /// The database was read again: nothing was remembered, or it no longer held.
    pub(crate) fn read(&self) {
        self.read.fetch_add(1, Ordering::Relaxed);
    }

    /// A read that was served when `served`, made in the database otherwise.
    pub(crate) fn count(&self, served: bool) {
        if served { self.served() } else { self.read() }
    }

    /// (served, read).
    pub(crate) fn counts(&self) -> (u64, u64) {
        (self.served.load(Ordering::Relaxed), self.read.load(Ordering::Relaxed))
    }
}

/// How often a sync answer took a read it asked for ahead with its facts (served), and how
/// often it made the read itself (read): the device's mailbox, the documents with news since
/// its cursor, the tails of its snapshot candidates (`domain::answer`).
#[derive(Debug, Default)]
pub(crate) struct AheadTally {
    pub mailbox: Tally,
    pub news: Tally,
    pub tails: Tally,
}
